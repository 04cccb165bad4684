"""Array creation, promotion/broadcasting and the elementwise/reduction API (minimal core)."""
from __future__ import annotations

from typing import Any

import numpy as np

from fgrad.core import dtypes
from fgrad.core.array import Array
from fgrad.core.trace import Tracer, get_aval
from fgrad.core.types import ShapedArray
from fgrad.ops import elementwise as ew
from fgrad.ops import reduction as red
from fgrad.ops import shape as sh

float32, float64, int32, int64, uint8, uint32, bool_, float16 = (
    dtypes.float32, dtypes.float64, dtypes.int32, dtypes.int64, dtypes.uint8, dtypes.uint32,
    dtypes.bool_, dtypes.float16)


def asarray(x: Any, dtype=None) -> Any:
    """Convert ``x`` (array-like, scalar, nested list) to an fgrad Array (tracers pass through)."""
    if isinstance(x, (Array, Tracer)):
        return x if dtype is None else astype(x, dtype)
    value = np.asarray(x)
    if dtype is None:
        if type(x) in (int, float, bool):
            dtype = dtypes.python_scalar_dtype(x)
        else:
            dtype = dtypes.canonicalize(value.dtype)
    dtype = dtypes.canonicalize(dtype)
    value = np.array(value, dtype=dtype)
    value.flags.writeable = False
    return Array(value, ShapedArray(value.shape, dtype, type(x) in (int, float)))


def array(x: Any, dtype=None) -> Any:
    """Like ``asarray`` (fgrad arrays are immutable, so no copy is needed)."""
    return asarray(x, dtype)


def astype(x: Any, dtype) -> Any:
    return ew.convert_element_type(x, dtype)


def _promote(*args: Any) -> list[Any]:
    """Promote dtypes (weak Python scalars adapt) and broadcast shapes, NumPy-style."""
    avals = [get_aval(a) for a in args]
    dtype, weak = dtypes.promote(*[(a.dtype, a.weak_type) for a in avals])
    shape = np.broadcast_shapes(*[a.shape for a in avals]) if len({a.shape for a in avals}) > 1 else avals[0].shape
    out = []
    for a, aval in zip(args, avals):
        if type(a) in (int, float, bool):
            out.append(np.asarray(a, dtype)[()])
            continue
        if aval.dtype != dtype:
            a = ew.convert_element_type(a, dtype, weak)
        if aval.shape != shape and aval.shape != ():
            a = sh.broadcast_in_dim(a, shape, tuple(range(len(shape) - aval.ndim, len(shape))))
        out.append(a)
    return out


def _binary(prim_fn):
    def f(x, y):
        return prim_fn(*_promote(x, y))
    return f


add = _binary(ew.add)
subtract = _binary(ew.sub)
multiply = _binary(ew.mul)
maximum = _binary(ew.max)
minimum = _binary(ew.min)
equal = _binary(ew.eq)
not_equal = _binary(ew.ne)
less = _binary(ew.lt)
less_equal = _binary(ew.le)
greater = _binary(ew.gt)
greater_equal = _binary(ew.ge)


def true_divide(x, y):
    x, y = _promote(x, y)
    if not dtypes.is_float(get_aval(x).dtype):
        x, y = astype(x, dtypes.default_float()), astype(y, dtypes.default_float())
    return ew.div(x, y)


divide = true_divide


def _float_unary(prim_fn):
    def f(x):
        x = asarray(x) if type(x) in (int, float, bool) else x
        if not dtypes.is_float(get_aval(x).dtype):
            x = astype(x, dtypes.default_float())
        return prim_fn(x)
    return f


sin, cos, exp, log, tanh, sqrt = (_float_unary(f) for f in (ew.sin, ew.cos, ew.exp, ew.log, ew.tanh, ew.sqrt))


def negative(x):
    return ew.neg(x)


def sum(x, axis=None, dtype=None, keepdims=False):  # noqa: A001
    x = asarray(x) if not isinstance(x, (Array, Tracer)) else x
    ndim = get_aval(x).ndim
    axes = tuple(range(ndim)) if axis is None else ((axis,) if isinstance(axis, int) else tuple(axis))
    out = red.reduce_sum(x, axes)
    if keepdims:
        axes = tuple(a % ndim for a in axes)
        out = sh.reshape(out, tuple(1 if i in axes else s for i, s in enumerate(get_aval(x).shape)))
    return out


def mean(x, axis=None, dtype=None, keepdims=False):
    x = asarray(x) if not isinstance(x, (Array, Tracer)) else x
    aval = get_aval(x)
    axes = tuple(range(aval.ndim)) if axis is None else ((axis,) if isinstance(axis, int) else tuple(axis))
    n = int(np.prod([aval.shape[a] for a in axes]))
    return true_divide(sum(x, axes, keepdims=keepdims), n)


def ones(shape, dtype=None):
    return sh.full((shape,) if isinstance(shape, int) else shape, 1, dtype or dtypes.default_float())


def zeros(shape, dtype=None):
    return sh.full((shape,) if isinstance(shape, int) else shape, 0, dtype or dtypes.default_float())


def reshape(x, shape, order="C"):
    return sh.reshape(x, shape)


def transpose(x, axes=None):
    nd = get_aval(x).ndim
    return sh.transpose(x, tuple(reversed(range(nd))) if axes is None else axes)


def _getitem(x, index):
    raise NotImplementedError("indexing lands with the fgrad.numpy issue work")


class _IndexUpdateHelper:
    def __init__(self, x):
        self.x = x
