"""fgrad.numpy: the NumPy API over fgrad's primitives (import as ``fnp``).

Every function is built from primitives, so it runs eagerly, under ``grad``/``vmap``
and inside ``jit`` alike. Promotion follows JAX (float32/int32 defaults; Python
scalars are weakly typed), broadcasting and indexing follow NumPy.

    >>> import fgrad.numpy as fnp
    >>> x = fnp.arange(6.0).reshape(2, 3)
    >>> fnp.sum(x * 2, axis=1)
    Array([ 6., 24.], dtype=float32)

The submodules import each other at top level, in one direction only (each may use
those listed before it): _util (argument conversion, promotion, asarray) -> _dtypes,
_math (elementwise) -> _indexing (x[idx], .at, take) -> _manip (shapes, joining) ->
_sorting (sort, nonzero, where), _reductions -> _creation -> _linalg -> _setops (unique, set
operations, searchsorted, histograms) -> _statistics, _index_tricks, _math_extra -> _pad, _polynomial,
_ufunc (compositions of all the above); _interop (host I/O); _view (Array.view).
"""
import sys as _sys

from fgrad.core.array import Array as ndarray  # noqa: F401
from fgrad.numpy._dtypes import *  # noqa: F401,F403
from fgrad.numpy._creation import *  # noqa: F401,F403
from fgrad.numpy._math import *  # noqa: F401,F403
from fgrad.numpy._reductions import *  # noqa: F401,F403
from fgrad.numpy._manip import *  # noqa: F401,F403
from fgrad.numpy._linalg import *  # noqa: F401,F403
from fgrad.numpy._indexing import *  # noqa: F401,F403
from fgrad.numpy._sorting import *  # noqa: F401,F403
from fgrad.numpy._setops import *  # noqa: F401,F403
from fgrad.numpy._statistics import *  # noqa: F401,F403
from fgrad.numpy._index_tricks import *  # noqa: F401,F403
from fgrad.numpy._pad import *  # noqa: F401,F403
from fgrad.numpy._math_extra import *  # noqa: F401,F403
from fgrad.numpy._polynomial import *  # noqa: F401,F403
from fgrad.numpy._interop import *  # noqa: F401,F403
from fgrad.numpy._ufunc import *  # noqa: F401,F403
from fgrad.numpy._namespace import (__array_api_version__, __array_namespace_info__,  # noqa: F401
                                    _namespace_for, from_dlpack)
from fgrad.numpy._util import host_device as _host_device, place as _place  # noqa: F401  (used by Array)
from fgrad.numpy._indexing import _getitem, _IndexUpdateHelper  # noqa: F401  (used by Array)
from fgrad.numpy._view import array_view as _array_view  # noqa: F401  (Array.view)
from fgrad.numpy import linalg  # noqa: F401  (fnp.linalg, as jnp.linalg)
from fgrad.numpy import fft  # noqa: F401  (fnp.fft, as jnp.fft)
from fgrad.core import array as _array_module

_array_module.bind_numpy(_sys.modules[__name__])
