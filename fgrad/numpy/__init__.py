"""fgrad.numpy: the NumPy API over fgrad's primitives (import as ``fnp``)."""
from fgrad.numpy._core import *  # noqa: F401,F403
from fgrad.numpy._core import _getitem, _IndexUpdateHelper  # noqa: F401
