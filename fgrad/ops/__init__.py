"""The primitive set, one module per family. Importing this package registers every
primitive's rules with the transforms."""
from fgrad.ops import elementwise, special, shape, indexing, reduction  # noqa: F401
from fgrad.ops import contraction, window  # noqa: F401
from fgrad.ops import control, collective  # noqa: F401
from fgrad.ops import call, custom  # noqa: F401
from fgrad.ops import sort  # noqa: F401
from fgrad.ops import misc  # noqa: F401
