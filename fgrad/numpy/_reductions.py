"""Reductions: sum, mean, max/min, prod, argmax/argmin, var/std, any/all, cumsum...

``axis`` is None (all axes), an int or a tuple of ints, negative ones counting from
the end; ``keepdims`` keeps reduced axes as size 1. Integer and bool sums (and
products, cumsums) accumulate in the default integer type, unsigned ones in
uint32, as NumPy does with 64-bit types narrowed (and JAX does).
"""
from __future__ import annotations

import builtins
from typing import Any

import numpy as np

from fgrad import lax
from fgrad.core import dtypes
from fgrad.core.trace import get_aval
from fgrad.numpy._manip import broadcast_to, concatenate, diagonal
from fgrad.numpy._math import multiply, subtract, true_divide, where_select
from fgrad.numpy._util import canonical_axes, canonical_axis, inexact_for_int, optional_dtype, reject_out, to_array

__all__ = ["sum", "mean", "max", "min", "amax", "amin", "prod", "argmax", "argmin", "var", "std",
           "any", "all", "cumsum", "cumulative_sum", "count_nonzero", "average", "ptp", "trace"]


def _keep_dims(out: Any, in_shape: tuple[int, ...], axes: tuple[int, ...]) -> Any:
    return lax.reshape(out, tuple(1 if i in axes else s for i, s in enumerate(in_shape)))


def _accumulation_dtype(dtype: np.dtype, promote_integers: bool = True) -> np.dtype:
    """NumPy's sum/prod dtype: small ints and bools widen to the default (unsigned) int. With
    ``promote_integers=False`` (JAX's keyword) integers keep their dtype; bools still count in the
    default int, as JAX does."""
    if dtype == dtypes.bool_:
        return dtypes.default_int()
    if not promote_integers:
        return dtype
    if dtype.kind == "i" and dtype.itemsize < dtypes.default_int().itemsize:
        return dtypes.default_int()
    default_uint = dtypes.canonicalize(np.uint64)   # uint32 unless enable_x64
    if dtype.kind == "u" and dtype.itemsize < default_uint.itemsize:
        return default_uint
    return dtype


def _prepare(op: str, a: Any, axis: Any, dtype: Any, widen: bool,
             promote_integers: bool = True) -> tuple[Any, tuple[int, ...]]:
    a = to_array(a, op)
    aval = get_aval(a)
    axes = canonical_axes(op, axis, aval.ndim)
    target = optional_dtype(dtype) or (_accumulation_dtype(aval.dtype, promote_integers) if widen else aval.dtype)
    if target != aval.dtype:
        a = lax.convert_element_type(a, target)
    return a, axes


def _finish(out: Any, shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> Any:
    return _keep_dims(out, shape, axes) if keepdims else out


def _apply_where(op: str, a: Any, where: Any, identity: Any) -> Any:
    if where is None:
        return a
    return where_select(where, a, identity)


def sum(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None,  # noqa: A001
        promote_integers=True):
    """Sum of elements over ``axis``.

    Without ``dtype``, bools and integers narrower than the default int sum in the default int
    (int32 unless x64), unsigned ones in uint32; ``promote_integers=False`` (as JAX) keeps an
    integer input's dtype, so the sum wraps around in it (bools still give the default int).

    >>> fnp.sum(fnp.ones((2, 3)), axis=1)
    Array([3., 3.], dtype=float32)
    >>> fnp.sum(fnp.array([100, 100], fnp.int8), promote_integers=False)
    Array(-56, dtype=int8)
    """
    reject_out("sum", out)
    a, axes = _prepare("sum", a, axis, dtype, widen=True, promote_integers=promote_integers)
    shape = get_aval(a).shape
    a = _apply_where("sum", a, where, get_aval(a).dtype.type(0))
    if get_aval(a).dtype == dtypes.bool_:       # dtype=bool: as JAX, bools add as "or"
        result = lax.reduce_or(a, axes)
        if initial is not None:
            result = lax.bitwise_or(result, np.bool_(initial))
        return _finish(result, shape, axes, keepdims)
    result = lax.reduce_sum(a, axes)
    if initial is not None:
        result = lax.add(result, get_aval(result).dtype.type(initial))
    return _finish(result, shape, axes, keepdims)


def prod(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None,
         promote_integers=True):
    """Product of elements over ``axis``; integer dtypes as in ``sum`` (``promote_integers=False``
    keeps an integer input's dtype, as JAX).

    >>> fnp.prod(fnp.array([16, 16], fnp.uint8), promote_integers=False)
    Array(0, dtype=uint8)
    """
    reject_out("prod", out)
    a, axes = _prepare("prod", a, axis, dtype, widen=True, promote_integers=promote_integers)
    shape = get_aval(a).shape
    a = _apply_where("prod", a, where, get_aval(a).dtype.type(1))
    if get_aval(a).dtype == dtypes.bool_:       # dtype=bool: as JAX, bools multiply as "and"
        result = lax.reduce_and(a, axes)
        if initial is not None:
            result = lax.bitwise_and(result, np.bool_(initial))
        return _finish(result, shape, axes, keepdims)
    result = lax.reduce_prod(a, axes)
    if initial is not None:
        result = lax.mul(result, get_aval(result).dtype.type(initial))
    return _finish(result, shape, axes, keepdims)


def _extreme(name: str, lax_fn, combine):
    def op(a, axis=None, out=None, keepdims=False, initial=None, where=None):
        reject_out(name, out)
        a, axes = _prepare(name, a, axis, None, widen=False)
        aval = get_aval(a)
        if where is not None:
            if initial is None:
                raise ValueError(f"{name}: reducing with where= needs initial= (the value for "
                                 "positions where nothing is selected)")
            a = _apply_where(name, a, where, aval.dtype.type(initial))
        if initial is None and builtins.any(aval.shape[i] == 0 for i in axes):
            raise ValueError(f"{name}: zero-size array to reduction operation {name} which has no "
                             f"identity (shape {aval.shape}, axis {axis}); pass initial=...")
        result = lax_fn(a, axes)
        if initial is not None:
            result = combine(result, aval.dtype.type(initial))
        return _finish(result, aval.shape, axes, keepdims)
    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"The {name}imum of elements over ``axis`` (NaN propagates)."
    return op


max = _extreme("max", lambda a, axes: lax.reduce_max(a, axes), lambda r, v: lax.max(r, v))  # noqa: A001
min = _extreme("min", lambda a, axes: lax.reduce_min(a, axes), lambda r, v: lax.min(r, v))  # noqa: A001
amax, amin = max, min


def _arg_extreme(name: str, lax_fn):
    def op(a, axis=None, out=None, keepdims=False):
        reject_out(name, out)
        a = to_array(a, name)
        aval = get_aval(a)
        if axis is None:
            shape = aval.shape
            a = lax.reshape(a, (aval.size,))
            result = _arg_reduce(name, lax_fn, a, 0)
            return lax.reshape(result, (1,) * len(shape)) if keepdims else result
        ax = canonical_axis(name, axis, aval.ndim)
        result = _arg_reduce(name, lax_fn, a, ax)
        return _keep_dims(result, aval.shape, (ax,)) if keepdims else result
    op.__name__ = op.__qualname__ = name
    op.__doc__ = (f"Index of the {name[3:]}imum along ``axis`` (of the flattened array when None); "
                  "the first one on ties, the first NaN if any.")
    return op


def _arg_reduce(name: str, lax_fn, a: Any, axis: int) -> Any:
    aval = get_aval(a)
    if aval.ndim == 0 or aval.shape[axis] == 0:
        raise ValueError(f"{name}: attempt to get {name} of an empty sequence (shape {aval.shape})")
    return lax_fn(a, axis, dtypes.default_int())


argmax = _arg_extreme("argmax", lambda a, axis, index_dtype: lax.argmax(a, axis, index_dtype))
argmin = _arg_extreme("argmin", lambda a, axis, index_dtype: lax.argmin(a, axis, index_dtype))


def _count(shape: tuple[int, ...], axes: tuple[int, ...]) -> int:
    n = 1
    for ax in axes:
        n *= shape[ax]
    return n


def _mean_dtype(aval_dtype: np.dtype, dtype: Any) -> np.dtype:
    if dtype is not None:
        return dtypes.canonicalize(dtype)
    return aval_dtype if dtypes.is_differentiable(aval_dtype) else inexact_for_int(aval_dtype, False)


def _upcast_half(dtype: np.dtype) -> np.dtype:
    """float16 and bfloat16 sums run in float32, as JAX's mean/var/std do (a float16 sum of 5000
    values of 30 overflows)."""
    return np.dtype(np.float32) if dtype in (np.dtype(np.float16), dtypes.bfloat16) else dtype


def mean(a, axis=None, dtype=None, out=None, keepdims=False, where=None):
    """``jax.numpy.mean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=None)``:
    arithmetic mean over ``axis`` (integers give the default float; float16 and bfloat16 are
    summed in float32 and the mean rounded back, as JAX)."""
    reject_out("mean", out)
    a = to_array(a, "mean")
    aval = get_aval(a)
    target = _mean_dtype(aval.dtype, dtype)
    compute = _upcast_half(target)
    axes = canonical_axes("mean", axis, aval.ndim)
    if where is not None:
        count = sum(_broadcast_mask(where, aval.shape), axis=axis, keepdims=keepdims, dtype=compute)
    else:
        count = compute.type(_count(aval.shape, axes))
    total = sum(a, axis=axis, dtype=compute, keepdims=keepdims, where=where)
    return lax.convert_element_type(lax.div(total, count), target)


def _broadcast_mask(where: Any, shape: tuple[int, ...]) -> Any:
    return broadcast_to(where, shape)


def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, mean=None,
        correction=None):
    """Variance over ``axis``: ``sum(|x - mean|**2) / (N - ddof)`` (real for complex ``a``, as JAX);
    NaN where ``N - ddof <= 0``, as JAX (NumPy: inf or negative). float16 and bfloat16 are
    computed in float32 and the result rounded back, as JAX."""
    reject_out("var", out)
    if correction is not None:
        ddof = correction
    a = to_array(a, "var")
    aval = get_aval(a)
    result = _mean_dtype(aval.dtype, dtype)
    target = _upcast_half(result)
    a = lax.convert_element_type(a, target)
    axes = canonical_axes("var", axis, aval.ndim)
    if mean is None:
        center = _mean_fn(a, axis=axis, keepdims=True, where=where)
    else:
        center = to_array(mean)
        if get_aval(center).dtype in (np.dtype(np.float16), dtypes.bfloat16):
            center = lax.convert_element_type(center, target)
    centered = subtract(a, center)
    squares = lax.mul(centered, centered)
    if dtypes.is_complex(target):   # |x - mean|**2, a real number
        squares = lax.real(lax.mul(centered, lax.conj(centered)))
        target, result = dtypes.real_dtype(target), dtypes.real_dtype(result)
    # JAX: NaN where N - ddof <= 0 (after dividing by it, so the gradient there is 0 / (N - ddof))
    if where is not None:
        n = sum(_broadcast_mask(where, aval.shape), axis=axis, keepdims=keepdims, dtype=target)
        n = lax.sub(n, target.type(ddof))
        out = lax.div(sum(squares, axis=axis, keepdims=keepdims, where=where), n)
        return where_select(lax.gt(n, target.type(0)), lax.convert_element_type(out, result), np.nan)
    n = _count(aval.shape, axes) - ddof
    out = lax.convert_element_type(lax.div(sum(squares, axis=axis, keepdims=keepdims), target.type(n)), result)
    return out if n > 0 else where_select(False, out, np.nan)


_mean_fn = mean


def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, mean=None,
        correction=None):
    """Standard deviation over ``axis``: ``sqrt(var(...))``."""
    return lax.sqrt(var(a, axis, dtype, out, ddof, keepdims, where=where, mean=mean, correction=correction))


def _truth(op: str, a: Any) -> Any:
    a = to_array(a, op)
    aval = get_aval(a)
    return a if aval.dtype == dtypes.bool_ else lax.ne(a, aval.dtype.type(0))


def any(a, axis=None, out=None, keepdims=False, *, where=None):  # noqa: A001
    """True if any element along ``axis`` is truthy."""
    reject_out("any", out)
    a = _truth("any", a)
    shape = get_aval(a).shape
    axes = canonical_axes("any", axis, len(shape))
    a = _apply_where("any", a, where, np.bool_(False))
    return _finish(lax.reduce_or(a, axes), shape, axes, keepdims)


def all(a, axis=None, out=None, keepdims=False, *, where=None):  # noqa: A001
    """True if every element along ``axis`` is truthy."""
    reject_out("all", out)
    a = _truth("all", a)
    shape = get_aval(a).shape
    axes = canonical_axes("all", axis, len(shape))
    a = _apply_where("all", a, where, np.bool_(True))
    return _finish(lax.reduce_and(a, axes), shape, axes, keepdims)


def cumsum(a, axis=None, dtype=None, out=None):
    """Cumulative sum along ``axis`` (of the flattened array when None)."""
    reject_out("cumsum", out)
    a = to_array(a, "cumsum")
    if axis is None:
        a = lax.reshape(a, (get_aval(a).size,))
        axis = 0
    aval = get_aval(a)
    axis = canonical_axis("cumsum", axis, aval.ndim)
    # as JAX: integers keep their dtype (unlike sum), bools count in the default int
    target = optional_dtype(dtype) or (dtypes.default_int() if aval.dtype == dtypes.bool_ else aval.dtype)
    a = lax.convert_element_type(a, target)
    if target == dtypes.bool_:                  # dtype=bool: a running "or", as JAX
        return lax.cummax(a, axis=axis)
    return lax.cumsum(a, axis=axis)


def cumulative_sum(x, /, *, axis=None, dtype=None, include_initial=False):
    """Array-API cumulative sum; ``include_initial`` prepends a zero."""
    x = to_array(x, "cumulative_sum")
    if axis is None:
        if get_aval(x).ndim > 1:
            raise ValueError("cumulative_sum: axis is required for arrays of rank > 1")
        axis = 0
    out = cumsum(x, axis, dtype or _accumulation_dtype(get_aval(x).dtype))   # the array API: sum's dtype
    if include_initial:
        aval = get_aval(out)
        axis = canonical_axis("cumulative_sum", axis, aval.ndim)
        zero_shape = tuple(1 if i == axis else s for i, s in enumerate(aval.shape))
        out = concatenate([lax.full(zero_shape, 0, aval.dtype), out], axis=axis)
    return out


def count_nonzero(a, axis=None, keepdims=False):
    """Number of non-zero elements along ``axis``."""
    return sum(_truth("count_nonzero", a), axis=axis, keepdims=keepdims, dtype=dtypes.default_int())


def average(a, axis=None, weights=None, returned=False, keepdims=False):
    """Weighted average along ``axis`` (the plain mean without ``weights``)."""
    if weights is None:
        avg = mean(a, axis=axis, keepdims=keepdims)
        count = _count(get_aval(to_array(a)).shape, canonical_axes("average", axis, get_aval(to_array(a)).ndim))
        return (avg, lax.full(get_aval(avg).shape, count, get_aval(avg).dtype)) if returned else avg
    a, weights = to_array(a), to_array(weights)
    aval, waval = get_aval(a), get_aval(weights)
    if waval.shape != aval.shape:
        if axis is None or waval.ndim != 1:
            raise TypeError(f"average: weights of shape {waval.shape} differ from a's shape {aval.shape}; "
                            "1-D weights need an int axis")
        ax = canonical_axis("average", axis, aval.ndim)
        if waval.shape[0] != aval.shape[ax]:
            raise TypeError(f"average: weights of length {waval.shape[0]} do not match axis {ax} of "
                            f"shape {aval.shape}")
        weights = broadcast_to(lax.reshape(weights, tuple(waval.shape[0] if i == ax else 1
                                                          for i in range(aval.ndim))), aval.shape)
    total_w = sum(weights, axis=axis, keepdims=keepdims)
    avg = true_divide(sum(multiply(a, weights), axis=axis, keepdims=keepdims), total_w)
    return (avg, broadcast_to(total_w, get_aval(avg).shape)) if returned else avg


def ptp(a, axis=None, keepdims=False):
    """Peak to peak: ``max - min`` along ``axis``."""
    return subtract(max(a, axis=axis, keepdims=keepdims), min(a, axis=axis, keepdims=keepdims))


def trace(a, offset: int = 0, axis1: int = 0, axis2: int = 1, dtype=None):
    """Sum along the ``offset`` diagonal."""
    return sum(diagonal(a, offset, axis1, axis2), axis=-1, dtype=dtype)
