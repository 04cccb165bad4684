"""fgrad.lax: the primitive-level API (strict shapes and dtypes), plus control flow
and collectives."""
from fgrad.ops.elementwise import *  # noqa: F401,F403
from fgrad.ops.complex_parts import *  # noqa: F401,F403
from fgrad.ops.extremum import max, min  # noqa: F401  (complex operands too)
from fgrad.ops.fft import fft, FftType  # noqa: F401  (jax.lax.fft)
from fgrad.ops.special import *  # noqa: F401,F403
from fgrad.ops.special_gamma import *  # noqa: F401,F403
from fgrad.ops.special_incomplete import *  # noqa: F401,F403
from fgrad.ops.shape import *  # noqa: F401,F403
from fgrad.ops.indexing import *  # noqa: F401,F403
from fgrad.ops.reduction import *  # noqa: F401,F403
from fgrad.ops.contraction import *  # noqa: F401,F403
from fgrad.ops.lax_helpers import *  # noqa: F401,F403
from fgrad.ops.lax_composites import *  # noqa: F401,F403
from fgrad.ops.lax_shape_helpers import *  # noqa: F401,F403
from fgrad.ops.conv_helpers import *  # noqa: F401,F403
from fgrad.ops.window import *  # noqa: F401,F403
from fgrad.ops.collective import *  # noqa: F401,F403
from fgrad.control_flow import *  # noqa: F401,F403
from fgrad.lax_generic import reduce  # noqa: F401
from fgrad.ops.precision import reduce_precision, reduce_precision_p  # noqa: F401
from fgrad.ops.sort import *  # noqa: F401,F403
from fgrad.ops.misc import *  # noqa: F401,F403
from fgrad.lax import linalg  # noqa: F401  (jax.lax.linalg)
from fgrad.lax._placement import *  # noqa: F401,F403
from fgrad.lax._solvers import *  # noqa: F401,F403
from fgrad.lax._ragged import *  # noqa: F401,F403
from fgrad.ops.linear_solve import linear_solve_p  # noqa: F401  (custom_linear_solve's primitive)
from fgrad.lax._slicing import *  # noqa: F401,F403  (gather/scatter: JAX's dimension-number forms too)
from fgrad.lax._logaddexp import cumlogsumexp  # noqa: F401  (JAX's logaddexp derivative)

# JAX exposes every primitive as ``jax.lax.<name>_p`` (to inspect jaxprs and write rules); so
# does fgrad, for the primitives of the modules above (decompositions: ``fgrad.lax.linalg``).
from fgrad.core.primitive import Primitive as _Primitive  # noqa: E402
from fgrad.ops import (collective as _collective, complex_parts as _complex_parts,  # noqa: E402
                       contraction as _contraction, control as _control, elementwise as _elementwise,
                       fft as _fft, indexing as _indexing, misc as _misc, reduction as _reduction, shape as _shape,
                       sort as _sort, special as _special, special_gamma as _special_gamma,
                       special_incomplete as _special_incomplete, window as _window)

for _module in (_elementwise, _special, _special_gamma, _special_incomplete, _complex_parts, _fft, _shape, _indexing,
                _reduction, _contraction, _window, _collective, _control, _sort, _misc):
    globals().update({name: value for name, value in vars(_module).items()
                      if name.endswith("_p") and isinstance(value, _Primitive)})
del _module
