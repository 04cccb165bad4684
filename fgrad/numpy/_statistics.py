"""Statistics and comparisons: isclose/allclose/array_equal, cumprod, diff/gradient/trapezoid,
interp, convolve/correlate, quantiles and medians, the NaN-ignoring reductions, cov/corrcoef.

Each is a composition of fgrad.numpy / fgrad.lax functions, so it runs eagerly, natively
under ``jit``, and under ``grad`` and ``vmap``. JAX's semantics are the spec where they
differ from NumPy's (named in each docstring): quantiles of integers are floats,
``nanargmin`` of an all-NaN slice is -1, ``median`` uses the midpoint of the middle pair.
"""
from __future__ import annotations

import builtins
import math

import numpy as np

from fgrad import lax
from fgrad.core import dtypes
from fgrad.core.trace import get_aval
from fgrad.numpy._indexing import take, take_along_axis
from fgrad.numpy._manip import _slice_axis, broadcast_to, concatenate, diagonal, flip, moveaxis, ravel, reshape
from fgrad.numpy._math import (abs, add, equal, isfinite, isnan, logical_and, logical_not, logical_or, multiply,
                               sqrt, subtract, true_divide, where_select, clip, floor, ceil, not_equal,
                               remainder, conj, real, maximum, minimum, less)
from fgrad.numpy._reductions import (all, any, argmax, argmin, max, mean, min, prod,
                                     sum)
from fgrad.numpy._sorting import sort
from fgrad.numpy._util import (asarray, broadcast_shapes_for, canonical_axes, canonical_axis,
                               optional_dtype, promote, promote_float, reject_out, static_int, to_array)

__all__ = ["isclose", "allclose", "array_equal", "array_equiv", "cumprod", "cumulative_prod", "diff",
           "ediff1d", "gradient", "trapezoid", "interp", "convolve", "correlate", "median", "quantile",
           "percentile", "nansum", "nanprod", "nanmean", "nanvar", "nanstd", "nanmin", "nanmax",
           "nanargmin", "nanargmax", "nancumsum", "nancumprod", "nanmedian", "nanquantile",
           "nanpercentile", "cov", "corrcoef"]


# --- comparisons ---------------------------------------------------------------------------------

def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """``jax.numpy.isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False)``: elementwise
    ``|a - b| <= atol + rtol * |b|``; infinities are close only to themselves, NaN to nothing
    (to NaN when ``equal_nan``). Integer and bool operands are compared as floats, as in JAX.

    >>> fnp.isclose(fnp.array([1.0, fnp.inf]), fnp.array([1.0 + 1e-9, fnp.inf]))
    Array([ True,  True], dtype=bool)
    """
    a, b = (promote_float("isclose", v) for v in promote("isclose", a, b))
    finite = isfinite(b)
    tolerance = add(atol, multiply(rtol, abs(b)))   # real, for complex operands too
    gap = abs(subtract(where_select(finite, a, 0), where_select(finite, b, 0)))
    out = logical_or(equal(a, b), logical_and(finite, lax.le(gap, tolerance)))
    if equal_nan:
        out = logical_or(out, logical_and(isnan(a), isnan(b)))
    return out


def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """``jax.numpy.allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False)``: ``all(isclose(...))``
    as a 0-d bool array."""
    return all(isclose(a, b, rtol, atol, equal_nan))


def array_equal(a1, a2, equal_nan=False):
    """``jax.numpy.array_equal(a1, a2, equal_nan=False)``: True (a 0-d bool array) when the shapes
    are the same and every element is equal; NaNs equal each other only with ``equal_nan``."""
    a1, a2 = to_array(a1, "array_equal"), to_array(a2, "array_equal")
    if get_aval(a1).shape != get_aval(a2).shape:
        return asarray(False)
    return _all_equal(a1, a2, equal_nan)


def _all_equal(a1, a2, equal_nan: bool):
    same = equal(a1, a2)
    if equal_nan:
        same = logical_or(same, logical_and(isnan(a1), isnan(a2)))
    return all(same)


def array_equiv(a1, a2):
    """``jax.numpy.array_equiv(a1, a2)``: True when the shapes broadcast together and every element
    of the broadcast pair is equal (False when they do not broadcast)."""
    a1, a2 = to_array(a1, "array_equiv"), to_array(a2, "array_equiv")
    try:
        broadcast_shapes_for("array_equiv", get_aval(a1).shape, get_aval(a2).shape)
    except TypeError:
        return asarray(False)
    return _all_equal(a1, a2, False)


# --- cumulative products -------------------------------------------------------------------------

def _shift_in(x, axis: int, k: int, fill):
    """``x`` shifted ``k`` places forward along ``axis``, the first ``k`` entries ``fill``."""
    config = [(0, 0, 0)] * get_aval(x).ndim
    config[axis] = (k, -k, 0)
    return lax.pad(x, get_aval(x).dtype.type(fill), config)


def _cumulative_operand(op: str, a, axis, dtype):
    a = to_array(a, op)
    if axis is None:
        a, axis = ravel(a), 0
    aval = get_aval(a)
    axis = canonical_axis(op, axis, aval.ndim)
    # as JAX: bools accumulate in the default int, other dtypes in themselves (fnp.cumsum widens
    # small ints as NumPy does; JAX's cumsum/cumprod do not)
    target = optional_dtype(dtype) or (dtypes.default_int() if aval.dtype == dtypes.bool_ else aval.dtype)
    return lax.convert_element_type(a, target), axis


def cumprod(a, axis=None, dtype=None, out=None):
    """``jax.numpy.cumprod(a, axis=None, dtype=None, out=None)``: cumulative product along
    ``axis`` (of the flattened array when None); bools accumulate in the default int, other
    dtypes in themselves (as JAX; NumPy widens small ints).

    >>> fnp.cumprod(fnp.array([1, 2, 3, 4]))
    Array([ 1,  2,  6, 24], dtype=int32)
    """
    reject_out("cumprod", out)
    a, axis = _cumulative_operand("cumprod", a, axis, dtype)
    if get_aval(a).dtype == dtypes.bool_:       # dtype=bool: a running "and", as JAX
        return lax.cummin(a, axis=axis)
    # lax's associative scan, as JAX: a doubling scan's gradient multiplies the zero cotangents
    # of earlier prefixes by their infinities (cumprod([3, inf, inf])[-1]'s gradient was nan)
    return lax.cumprod(a, axis=axis)


def cumulative_prod(x, /, *, axis=None, dtype=None, include_initial=False):
    """``jax.numpy.cumulative_prod(x, /, *, axis=None, dtype=None, include_initial=False)``: the
    array API's cumulative product; ``axis`` may be omitted only for 1-d input, and
    ``include_initial`` prepends a one."""
    x = to_array(x, "cumulative_prod")
    if axis is None:
        if get_aval(x).ndim != 1:
            raise ValueError("cumulative_prod: axis is required for arrays of rank other than 1, "
                             f"got shape {get_aval(x).shape}; pass axis=...")
        axis = 0
    out = cumprod(x, axis, dtype)
    if include_initial:
        axis = canonical_axis("cumulative_prod", axis, get_aval(out).ndim)
        out = _shift_in(_pad_end(out, axis, 1), axis, 1, 1)
    return out


def _pad_end(x, axis: int, k: int):
    config = [(0, 0, 0)] * get_aval(x).ndim
    config[axis] = (0, k, 0)
    return lax.pad(x, get_aval(x).dtype.type(0), config)


# --- differences, gradients, integrals ------------------------------------------------------------

def _edge_piece(op: str, piece, a, axis: int):
    """A ``prepend``/``append`` value broadcast to ``a``'s shape with length 1 along ``axis`` (if 0-d)."""
    piece = to_array(piece, op)
    aval = get_aval(a)
    if get_aval(piece).ndim == 0:
        piece = broadcast_to(piece, tuple(1 if i == axis else s for i, s in enumerate(aval.shape)))
    return piece


def diff(a, n=1, axis=-1, prepend=None, append=None):
    """``jax.numpy.diff(a, n=1, axis=-1, prepend=None, append=None)``: the ``n``-th discrete
    difference along ``axis``; bool input gives ``a[1:] != a[:-1]``.

    >>> fnp.diff(fnp.array([1, 4, 9, 16]), n=2)
    Array([2, 2], dtype=int32)
    """
    a = to_array(a, "diff")
    n = static_int("diff", "n", n)
    if n < 0:
        raise ValueError(f"diff: order n must be non-negative, got n={n}")
    if n == 0:
        return a
    if get_aval(a).ndim == 0:
        raise ValueError("diff: requires an input of at least one dimension, got a 0-d array")
    axis = canonical_axis("diff", axis, get_aval(a).ndim)
    pieces = [_edge_piece("diff", p, a, axis) for p in (prepend,) if p is not None] + [a]
    pieces += [_edge_piece("diff", p, a, axis) for p in (append,) if p is not None]
    if len(pieces) > 1:
        a = concatenate(pieces, axis=axis)
    for _ in range(n):
        length = get_aval(a).shape[axis]
        if length == 0:
            break
        hi, lo = _slice_axis(a, axis, 1, length), _slice_axis(a, axis, 0, length - 1)
        a = not_equal(hi, lo) if get_aval(a).dtype == dtypes.bool_ else subtract(hi, lo)
    return a


def ediff1d(ary, to_end=None, to_begin=None):
    """``jax.numpy.ediff1d(ary, to_end=None, to_begin=None)``: differences of the flattened array,
    with ``to_begin`` / ``to_end`` (flattened) joined at the ends."""
    flat = ravel(to_array(ary, "ediff1d"))
    out = diff(flat) if get_aval(flat).shape[0] else flat
    pieces = [ravel(asarray(to_begin))] if to_begin is not None else []
    pieces += [out] + ([ravel(asarray(to_end))] if to_end is not None else [])
    if len(pieces) == 1:
        return out
    dtype = get_aval(out).dtype
    return concatenate([lax.convert_element_type(p, dtype) for p in pieces])


def _axis_spacing(op: str, spacing, n: int):
    """A scalar step (uniform grid) or the 1-d differences of a coordinate array of length ``n``."""
    spacing = to_array(spacing, op)
    aval = get_aval(spacing)
    if aval.ndim == 0:
        return spacing, True
    if aval.ndim != 1 or aval.shape[0] != n:
        raise ValueError(f"{op}: a spacing array must be 1-d with the length of its axis ({n}), got "
                         f"shape {aval.shape}; pass a scalar step or the coordinates along that axis")
    return diff(promote_float(op, spacing)), False


def _along(x, axis: int, ndim: int):
    """A 1-d ``x`` shaped to broadcast along ``axis`` of an ``ndim``-d array."""
    return reshape(x, tuple(-1 if i == axis else 1 for i in range(ndim)))


def _gradient_axis(f, spacing, axis: int, edge_order: int):
    n, ndim = get_aval(f).shape[axis], get_aval(f).ndim

    def part(start, stop):
        return _slice_axis(f, axis, start, n + stop if stop <= 0 else stop)
    dx, uniform = _axis_spacing("gradient", spacing, n)
    if uniform:
        interior = true_divide(subtract(part(2, 0), part(0, -2)), multiply(2.0, dx))
        if edge_order == 1:
            first = true_divide(subtract(part(1, 2), part(0, 1)), dx)
            last = true_divide(subtract(part(n - 1, 0), part(n - 2, -1)), dx)
        else:
            first = true_divide(-1.5 * part(0, 1) + 2.0 * part(1, 2) - 0.5 * part(2, 3), dx)
            last = true_divide(0.5 * part(n - 3, -2) - 2.0 * part(n - 2, -1) + 1.5 * part(n - 1, 0), dx)
        return concatenate([first, interior, last], axis=axis)
    dx1, dx2 = _along(dx[:-1], axis, ndim), _along(dx[1:], axis, ndim)
    interior = (part(0, -2) * (-dx2 / (dx1 * (dx1 + dx2))) + part(1, -1) * ((dx2 - dx1) / (dx1 * dx2))
                + part(2, 0) * (dx1 / (dx2 * (dx1 + dx2))))
    if edge_order == 1:
        first = (part(1, 2) - part(0, 1)) / dx[0]
        last = (part(n - 1, 0) - part(n - 2, -1)) / dx[-1]
    else:
        d1, d2 = dx[0], dx[1]
        first = (part(0, 1) * (-(2.0 * d1 + d2) / (d1 * (d1 + d2))) + part(1, 2) * ((d1 + d2) / (d1 * d2))
                 + part(2, 3) * (-d1 / (d2 * (d1 + d2))))
        d1, d2 = dx[-2], dx[-1]
        last = (part(n - 3, -2) * (d2 / (d1 * (d1 + d2))) + part(n - 2, -1) * (-(d2 + d1) / (d1 * d2))
                + part(n - 1, 0) * ((2.0 * d2 + d1) / (d2 * (d1 + d2))))
    return concatenate([first, interior, last], axis=axis)


def gradient(f, *varargs, axis=None, edge_order=None):
    """``jax.numpy.gradient(f, *varargs, axis=None, edge_order=None)``: central differences in the
    interior and one-sided ones (first order, or second with ``edge_order=2``) at the ends.

    ``varargs`` is nothing (unit spacing), one spacing for every axis, or one per axis, each a
    scalar step or the coordinates along that axis (non-uniform grids use NumPy's second-order
    formulas). One array for one axis, else a list. JAX rejects ``edge_order``; fgrad accepts
    1 or 2, as NumPy does.
    """
    f = promote_float("gradient", f)
    ndim = get_aval(f).ndim
    if axis is None:
        axes = tuple(range(ndim))
    else:
        axes = tuple(canonical_axis("gradient", ax, ndim) for ax in (axis if isinstance(axis, (list, tuple))
                                                                     else (axis,)))
    edge_order = 1 if edge_order is None else edge_order
    if edge_order not in (1, 2):
        raise ValueError(f"gradient: edge_order must be 1 or 2, got {edge_order!r}")
    if len(varargs) == 0:
        spacings = [1.0] * len(axes)
    elif len(varargs) == 1 and get_aval(to_array(varargs[0])).ndim == 0:
        spacings = list(varargs) * len(axes)
    elif len(varargs) == len(axes):
        spacings = list(varargs)
    else:
        raise TypeError(f"gradient: expected 0, 1 or {len(axes)} spacing arguments (one per axis), "
                        f"got {len(varargs)}")
    out = []
    for ax, spacing in zip(axes, spacings):
        if get_aval(f).shape[ax] < edge_order + 1:
            raise ValueError(f"gradient: each differentiated axis needs at least edge_order + 1 = "
                             f"{edge_order + 1} elements, axis {ax} has {get_aval(f).shape[ax]}")
        out.append(_gradient_axis(f, spacing, ax, edge_order))
    return out[0] if len(out) == 1 else out


def trapezoid(y, x=None, dx=1.0, axis=-1):
    """``jax.numpy.trapezoid(y, x=None, dx=1.0, axis=-1)``: the trapezoidal-rule integral of ``y``
    along ``axis``, at coordinates ``x`` (1-d, or broadcasting with ``y``) or with step ``dx``."""
    y = promote_float("trapezoid", y)
    axis = canonical_axis("trapezoid", axis, get_aval(y).ndim)
    n = get_aval(y).shape[axis]
    if x is None:
        steps = dx
    else:
        x = promote_float("trapezoid", x)
        if get_aval(x).ndim == 1:
            steps = _along(diff(x), axis, get_aval(y).ndim)
        else:
            steps = diff(x, axis=axis)
    upper = _slice_axis(y, axis, builtins.min(1, n), n)
    mids = multiply(upper, 0.5) + multiply(_slice_axis(y, axis, 0, builtins.max(n - 1, 0)), 0.5)
    return sum(multiply(steps, mids), axis=axis)


# --- interpolation and convolution -----------------------------------------------------------------

def _count_at_or_below(xp, x):
    """For sorted 1-d ``xp``: how many entries are ``<= x`` (``searchsorted(xp, x, 'right')``), by a
    vectorised binary search unrolled ``ceil(log2(len(xp) + 1))`` times."""
    n = get_aval(xp).shape[0]
    lo = lax.full(get_aval(x).shape, 0, dtypes.default_int())
    hi = lax.full(get_aval(x).shape, n, dtypes.default_int())
    for _ in range(builtins.max(1, math.ceil(math.log2(n + 1)))):
        mid = lax.div(lax.add(lo, hi), dtypes.default_int().type(2))
        probe = take(xp, clip(mid, 0, n - 1))
        go_right = logical_and(lax.le(probe, x), lax.lt(mid, hi))
        lo = lax.select_n(go_right, lo, lax.add(mid, dtypes.default_int().type(1)))
        hi = lax.select_n(go_right, mid, hi)
    return lo


def interp(x, xp, fp, left=None, right=None, period=None):
    """``jax.numpy.interp(x, xp, fp, left=None, right=None, period=None)``: piecewise-linear
    interpolation of the points ``(xp, fp)`` (``xp`` increasing) at ``x``; ``left``/``right``
    (default ``fp[0]``/``fp[-1]``; "extrapolate" extends the end segments) outside the range, or
    periodic coordinates with ``period``. The result's dtype is ``x``'s and ``xp``'s (promoted to
    inexact) promoted with ``fp``'s, as in JAX.

    >>> fnp.interp(2.5, fnp.array([1.0, 2.0, 3.0]), fnp.array([3.0, 2.0, 0.0]))
    Array(1., dtype=float32)
    """
    x, xp = (promote_float("interp", v) for v in promote("interp", x, xp, shape=False))
    fp = promote_float("interp", fp)  # JAX: fp's dtype is promoted apart from x's and xp's
    if get_aval(xp).ndim != 1 or get_aval(fp).ndim != 1 or get_aval(xp).shape != get_aval(fp).shape:
        raise ValueError(f"interp: xp and fp must be 1-d and of the same length, got shapes "
                         f"{get_aval(xp).shape} and {get_aval(fp).shape}")
    if get_aval(xp).shape[0] == 0:
        raise ValueError("interp: xp and fp must not be empty")
    for name, bound in (("left", left), ("right", right)):
        if isinstance(bound, str) and bound != "extrapolate":
            raise ValueError(f"interp: the only valid string value of `{name}` is 'extrapolate', got {bound!r}")
    if period is not None:
        if isinstance(period, (int, float)) and period == 0:
            raise ValueError("interp: period must be a non-zero value")
        period = abs(asarray(period))
        x, xp = remainder(x, period), remainder(xp, period)
        order = lax.argsort(xp)
        xp, fp = take(xp, order), take(fp, order)
        xp = concatenate([xp[-1:] - period, xp, xp[:1] + period])
        fp = concatenate([fp[-1:], fp, fp[:1]])
    return _interp_segments(x, xp, fp, left, right, period is None)


def _interp_segments(x, xp, fp, left, right, bounded: bool):
    """JAX's interpolation on the segment ``xp[i-1] <= x < xp[i]``; a segment no wider than
    ``spacing(eps)`` takes its left value; ``left``/``right`` outside ``xp`` unless
    "extrapolate" (or periodic, ``bounded`` false)."""
    n = get_aval(xp).shape[0]
    i = clip(_count_at_or_below(xp, x), 1, builtins.max(n - 1, 1))
    below = clip(i - 1, 0, n - 1)
    i = clip(i, 0, n - 1)
    x_lo, x_hi, f_lo, f_hi = take(xp, below), take(xp, i), take(fp, below), take(fp, i)
    dx = subtract(x_hi, x_lo)
    flat = lax.le(abs(dx), float(np.spacing(np.finfo(get_aval(xp).dtype).eps)))
    f = where_select(flat, f_lo, f_lo + multiply(true_divide(subtract(x, x_lo), where_select(flat, 1, dx)),
                                                  subtract(f_hi, f_lo)))
    if bounded and not isinstance(left, str):
        f = where_select(lax.lt(x, xp[0]), fp[0] if left is None else left, f)
    if bounded and not isinstance(right, str):
        f = where_select(lax.gt(x, xp[-1]), fp[-1] if right is None else right, f)
    return f


def _conv(op: str, x, y, mode: str, precision, preferred_element_type):
    x, y = to_array(x, op), to_array(y, op)
    if get_aval(x).ndim != 1 or get_aval(y).ndim != 1:
        raise ValueError(f"{op}: only 1-d inputs are supported, got shapes {get_aval(x).shape} and "
                         f"{get_aval(y).shape}")
    if preferred_element_type is None:
        x, y = (promote_float(op, v) for v in promote(op, x, y, shape=False))
    else:
        x, y = promote(op, x, y, shape=False)
    nx, ny = get_aval(x).shape[0], get_aval(y).shape[0]
    if nx == 0 or ny == 0:
        raise ValueError(f"{op}: inputs cannot be empty, got shapes {(nx,)} and {(ny,)}")
    reverse_out = False
    if op == "correlate":
        y = conj(y)
        if nx < ny:
            x, y, reverse_out = y, x, True
    else:
        if nx < ny:
            x, y = y, x
        y = flip(y)
    m = get_aval(y).shape[0]
    pads = {"valid": (0, 0), "same": (m // 2, m - m // 2 - 1), "full": (m - 1, m - 1)}
    if mode not in pads:
        raise ValueError(f"{op}: mode must be one of 'full', 'same', 'valid', got {mode!r}")
    out = lax.conv_general_dilated(reshape(x, (1, 1, -1)), reshape(y, (1, 1, -1)), (1,), [pads[mode]],
                                   precision=precision, preferred_element_type=preferred_element_type)
    out = reshape(out, (-1,))
    return flip(out) if reverse_out else out


def convolve(a, v, mode="full", *, precision=None, preferred_element_type=None):
    """``jax.numpy.convolve(a, v, mode='full', *, precision=None, preferred_element_type=None)``:
    discrete linear convolution of two 1-d arrays (``mode`` 'full', 'same' or 'valid');
    integer inputs give floats unless ``preferred_element_type`` is given, as in JAX."""
    return _conv("convolve", a, v, mode, precision, preferred_element_type)


def correlate(a, v, mode="valid", *, precision=None, preferred_element_type=None):
    """``jax.numpy.correlate(a, v, mode='valid', *, precision=None, preferred_element_type=None)``:
    cross-correlation ``c[k] = sum_n a[n + k] * conj(v[n])`` of two 1-d arrays."""
    return _conv("correlate", a, v, mode, precision, preferred_element_type)


# --- quantiles -------------------------------------------------------------------------------------

_QUANTILE_METHODS = ("linear", "lower", "higher", "midpoint", "nearest", "inverted_cdf")


def _reduced_to_last(op: str, a, axis):
    """``a`` with the reduced axes moved to the end and merged into one; also the kept-dims shape."""
    aval = get_aval(a)
    axes = canonical_axes(op, axis, aval.ndim)
    kept = [d for d in range(aval.ndim) if d not in axes]
    a = lax.transpose(a, tuple(kept + list(axes))) if kept + list(axes) != list(range(aval.ndim)) else a
    rest = tuple(aval.shape[d] for d in kept)
    n = math.prod(aval.shape[d] for d in axes)
    keep_shape = tuple(1 if d in axes else s for d, s in enumerate(aval.shape))
    return lax.reshape(a, rest + (n,)), rest, keep_shape


def _gather_positions(sorted_a, positions):
    """``sorted_a[..., positions[q, ...]]``: ``positions`` has shape ``(Q,) + rest``."""
    index = moveaxis(positions, 0, -1)
    return moveaxis(take_along_axis(sorted_a, index, axis=-1), -1, 0)


def _interpolate(method: str, low_v, high_v, high_weight, dtype):
    """The quantile between the order statistics ``low_v`` and ``high_v`` by ``method`` (JAX's)."""
    if method == "linear":
        return low_v * (1.0 - high_weight) + high_v * high_weight
    if method == "lower":
        return low_v
    if method == "higher":
        return high_v
    if method == "nearest":
        return where_select(lax.le(high_weight, dtype.type(0.5)), low_v, high_v)
    return (low_v + high_v) * 0.5


def _quantile(op: str, a, q, axis, method: str, keepdims: bool, squash_nans: bool, interpolation,
              weights=None):
    if interpolation is not None:
        raise TypeError(f"{op}: the interpolation= argument was renamed; use method=...")
    if method not in _QUANTILE_METHODS:
        raise ValueError(f"{op}: method must be one of {_QUANTILE_METHODS} (as in JAX), got {method!r}")
    if weights is not None and method != "inverted_cdf":
        raise NotImplementedError(f"{method} doesn't support weights. Only method 'inverted_cdf' supports weights.")
    a, q = promote(op, to_array(a, op), q, shape=False)
    a, q = promote_float(op, a), promote_float(op, q)
    q_shape = get_aval(q).shape
    if len(q_shape) > 1:
        raise ValueError(f"{op}: q must be zero- or one-dimensional, got shape {q_shape}")
    flat, rest, keep_shape = _reduced_to_last(op, a, axis)
    n = get_aval(flat).shape[-1]
    if n == 0:
        raise ValueError(f"{op}: cannot take a quantile over an empty axis (shape {get_aval(a).shape})")
    dtype = get_aval(flat).dtype
    nan_here = isnan(flat)
    if squash_nans:
        count = lax.convert_element_type(sum(logical_not(nan_here), axis=-1), dtype)
    else:
        flat = where_select(any(nan_here, axis=-1, keepdims=True), np.nan, flat)
        count = lax.full(rest, n, dtype)
    q_col = reshape(q, (-1,) + (1,) * len(rest))
    if method == "inverted_cdf":
        out = _inverted_cdf(op, flat, nan_here, q_col, _weights_like(op, weights, a, axis, dtype), dtype)
    else:
        ordered = sort(flat, axis=-1)
        position = multiply(q_col, subtract(count, 1.0))
        top = maximum(subtract(count, 1.0), 0.0)
        low = minimum(maximum(floor(position), 0.0), top)
        high = minimum(maximum(ceil(position), 0.0), top)
        high_weight = subtract(position, floor(position))
        low_v = _gather_positions(ordered, lax.convert_element_type(low, dtypes.default_int()))
        high_v = _gather_positions(ordered, lax.convert_element_type(high, dtypes.default_int()))
        out = _interpolate(method, low_v, high_v, high_weight, dtype)
    out_shape = q_shape + (keep_shape if keepdims else rest)
    return reshape(out, out_shape)


def _weights_like(op: str, weights, a, axis, dtype):
    """``weights`` as an array of ``a``'s shape, reduced to its last axis as ``a`` is (ones when
    None); a 1-d ``weights`` runs along an int ``axis``, as in NumPy and JAX."""
    shape = get_aval(a).shape
    if weights is None:
        w = lax.full(shape, 1, dtype)
    else:
        w = promote_float(op, to_array(weights, op)).astype(dtype)
        w_shape = get_aval(w).shape
        if w_shape != shape:
            if len(w_shape) != 1 or not isinstance(axis, (int, np.integer)) \
                    or w_shape[0] != shape[canonical_axis(op, axis, len(shape))]:
                raise ValueError(f"{op}: weights must have the shape of a {shape}, or be 1-d along an int axis; "
                                 f"got shape {w_shape} for axis={axis!r}")
            w = moveaxis(broadcast_to(w, shape[:canonical_axis(op, axis, len(shape))] +
                                      shape[canonical_axis(op, axis, len(shape)) + 1:] + w_shape), -1,
                         canonical_axis(op, axis, len(shape)))
    return _reduced_to_last(op, w, axis)[0]


def _inverted_cdf(op: str, flat, nan_here, q_col, weights, dtype):
    """The first sorted value at which the (weighted) empirical CDF reaches ``q`` (NumPy's and
    JAX's 'inverted_cdf'); NaNs weigh nothing."""
    weights = where_select(nan_here, dtype.type(0), weights)
    ordered, ordered_w = lax.sort((flat, weights), dimension=-1, num_keys=1)
    cdf = lax.cumsum(ordered_w, axis=get_aval(ordered_w).ndim - 1)
    total = cdf[..., -1:]
    cdf = true_divide(cdf, total)
    below = less(cdf[None], q_col[..., None])                         # [Q, rest..., n]
    index = sum(below.astype(dtypes.default_int()), axis=-1)
    n = get_aval(flat).shape[-1]
    index = minimum(index, n - 1)
    return _gather_positions(ordered, index)


def quantile(a, q, axis=None, out=None, overwrite_input=False, method="linear", keepdims=False, *,
             interpolation=None, weights=None):
    """``jax.numpy.quantile(a, q, axis=None, out=None, overwrite_input=False, method='linear',
    keepdims=False, *, weights=None)``: the ``q``-th quantiles (``q`` in [0, 1], 0-d or 1-d; its
    axis leads the result) over ``axis`` (None, an int or a tuple). ``method``: 'linear',
    'lower', 'higher', 'midpoint', 'nearest' (ties go to the lower value, as in JAX) or
    'inverted_cdf' (the first value whose empirical CDF reaches ``q``; the only one taking
    ``weights``, of ``a``'s shape or 1-d along an int ``axis``). A NaN in a slice makes its
    result NaN. Results are floating point (JAX's rule), integers included.
    """
    reject_out("quantile", out)
    return _quantile("quantile", a, q, axis, method, keepdims, False, interpolation, weights)


def percentile(a, q, axis=None, out=None, overwrite_input=False, method="linear", keepdims=False, *,
               interpolation=None, weights=None):
    """``jax.numpy.percentile(a, q, axis=None, out=None, overwrite_input=False, method='linear',
    keepdims=False)``: ``quantile`` with ``q`` in percent."""
    reject_out("percentile", out)
    return _quantile("percentile", a, true_divide(q, 100.0), axis, method, keepdims, False, interpolation, weights)


def median(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    """``jax.numpy.median(a, axis=None, out=None, overwrite_input=False, keepdims=False)``: the
    middle value (the midpoint of the middle pair for even counts) over ``axis``."""
    reject_out("median", out)
    return _quantile("median", a, 0.5, axis, "midpoint", keepdims, False, None)


def nanquantile(a, q, axis=None, out=None, overwrite_input=False, method="linear", keepdims=False, *,
                interpolation=None, weights=None):
    """``jax.numpy.nanquantile(...)``: ``quantile`` ignoring NaNs (NaN for an all-NaN slice)."""
    reject_out("nanquantile", out)
    return _quantile("nanquantile", a, q, axis, method, keepdims, True, interpolation, weights)


def nanpercentile(a, q, axis=None, out=None, overwrite_input=False, method="linear", keepdims=False, *,
                  interpolation=None, weights=None):
    """``jax.numpy.nanpercentile(...)``: ``percentile`` ignoring NaNs."""
    reject_out("nanpercentile", out)
    return _quantile("nanpercentile", a, true_divide(q, 100.0), axis, method, keepdims, True, interpolation, weights)


def nanmedian(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    """``jax.numpy.nanmedian(a, axis=None, out=None, overwrite_input=False, keepdims=False)``:
    ``median`` ignoring NaNs (NaN for an all-NaN slice)."""
    reject_out("nanmedian", out)
    return _quantile("nanmedian", a, 0.5, axis, "midpoint", keepdims, True, None)


# --- reductions that ignore NaN ----------------------------------------------------------------------

def _nan_replaced(op: str, a, value):
    """``a`` with NaNs replaced by ``value`` (integers and bools have none)."""
    a = to_array(a, op)
    if not dtypes.is_float(get_aval(a).dtype):
        return a
    return where_select(isnan(a), get_aval(a).dtype.type(value), a)


def nansum(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    """``jax.numpy.nansum(a, axis=None, dtype=None, out=None, keepdims=False, initial=None,
    where=None)``: ``sum`` treating NaN as zero."""
    return sum(_nan_replaced("nansum", a, 0), axis, dtype, out, keepdims, initial, where)


def nanprod(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    """``jax.numpy.nanprod(...)``: ``prod`` treating NaN as one."""
    return prod(_nan_replaced("nanprod", a, 1), axis, dtype, out, keepdims, initial, where)


def _nan_count(a, axis, keepdims, where, dtype):
    present = logical_not(isnan(a))
    return sum(present, axis=axis, keepdims=keepdims, where=where, dtype=dtype)


def nanmean(a, axis=None, dtype=None, out=None, keepdims=False, where=None):
    """``jax.numpy.nanmean(a, axis=None, dtype=None, out=None, keepdims=False, where=None)``: the
    mean of the non-NaN elements (NaN where there are none)."""
    reject_out("nanmean", out)
    a = to_array(a, "nanmean")
    if not dtypes.is_float(get_aval(a).dtype):
        return mean(a, axis, dtype, keepdims=keepdims, where=where)
    target = optional_dtype(dtype) or get_aval(a).dtype
    total = nansum(a, axis, target, keepdims=keepdims, where=where)
    result = true_divide(total, _nan_count(a, axis, keepdims, where, target))
    return result if dtypes.is_float(target) else lax.convert_element_type(result, target)   # dtype=int: as JAX


def nanvar(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, where=None, mean=None):
    """``jax.numpy.nanvar(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, where=None,
    mean=None)``: the variance of the non-NaN elements (about ``mean`` when given, which must
    broadcast as a ``keepdims=True`` mean would); NaN where at most ``ddof`` are present."""
    reject_out("nanvar", out)
    a = promote_float("nanvar", a)
    target = optional_dtype(dtype) or get_aval(a).dtype
    a = lax.convert_element_type(a, target)
    center = nanmean(a, axis, keepdims=True, where=where) if mean is None else asarray(mean, target)
    centered = where_select(isnan(a), target.type(0), subtract(a, center))
    total = sum(lax.mul(centered, centered), axis=axis, keepdims=keepdims, where=where)
    count = subtract(_nan_count(a, axis, keepdims, where, target), target.type(ddof))
    too_few = lax.le(count, target.type(0))
    return where_select(too_few, np.nan, true_divide(total, where_select(too_few, target.type(1), count)))


def nanstd(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, where=None, mean=None):
    """``jax.numpy.nanstd(...)``: ``sqrt(nanvar(...))``."""
    return sqrt(nanvar(a, axis, dtype, out, ddof, keepdims, where, mean))


def _nan_extreme(name: str, reduce, fill: float):
    def op(a, axis=None, out=None, keepdims=False, initial=None, where=None):
        reject_out(name, out)
        a = to_array(a, name)
        if not dtypes.is_float(get_aval(a).dtype):
            return reduce(a, axis, keepdims=keepdims, initial=initial, where=where)
        nan_here = isnan(a)
        result = reduce(where_select(nan_here, fill, a), axis, keepdims=keepdims, initial=initial, where=where)
        all_nan = all(nan_here, axis=axis, keepdims=keepdims, where=where)
        return where_select(all_nan, np.nan, result)
    op.__name__ = op.__qualname__ = name
    op.__doc__ = (f"``jax.numpy.{name}(a, axis=None, out=None, keepdims=False, initial=None, where=None)``: "
                  f"``{name[3:]}`` ignoring NaNs (NaN for an all-NaN slice).")
    return op


nanmax = _nan_extreme("nanmax", max, -np.inf)
nanmin = _nan_extreme("nanmin", min, np.inf)


def _nan_arg_extreme(name: str, reduce, fill: float):
    def op(a, axis=None, out=None, keepdims=False):
        reject_out(name, out)
        a = to_array(a, name)
        if not dtypes.is_float(get_aval(a).dtype):
            return reduce(a, axis, keepdims=keepdims)
        nan_here = isnan(a)
        result = reduce(where_select(nan_here, fill, a), axis, keepdims=keepdims)
        return where_select(all(nan_here, axis=axis, keepdims=keepdims), -1, result)
    op.__name__ = op.__qualname__ = name
    op.__doc__ = (f"``jax.numpy.{name}(a, axis=None, out=None, keepdims=False)``: ``{name[3:]}`` "
                  "ignoring NaNs; -1 for an all-NaN slice (JAX's answer; NumPy raises).")
    return op


nanargmax = _nan_arg_extreme("nanargmax", argmax, -np.inf)
nanargmin = _nan_arg_extreme("nanargmin", argmin, np.inf)


def nancumsum(a, axis=None, dtype=None, out=None):
    """``jax.numpy.nancumsum(a, axis=None, dtype=None, out=None)``: ``cumsum`` treating NaN as zero."""
    reject_out("nancumsum", out)
    a, axis = _cumulative_operand("nancumsum", _nan_replaced("nancumsum", a, 0), axis, dtype)
    return lax.cumsum(a, axis=axis)


def nancumprod(a, axis=None, dtype=None, out=None):
    """``jax.numpy.nancumprod(a, axis=None, dtype=None, out=None)``: ``cumprod`` treating NaN as one."""
    reject_out("nancumprod", out)
    return cumprod(_nan_replaced("nancumprod", a, 1), axis, dtype)


# --- covariance ----------------------------------------------------------------------------------------

def _observations(op: str, m, transpose):
    """``m`` as a 2-d (variables, observations) array; ``transpose(x)`` says whether to flip it."""
    m = promote_float(op, m)
    if get_aval(m).ndim > 2:
        raise ValueError(f"{op}: m has more than 2 dimensions (shape {get_aval(m).shape})")
    x = reshape(m, (1, -1)) if get_aval(m).ndim < 2 else m
    return lax.transpose(x, (1, 0)) if transpose(m, x) else x


def _weights(op: str, w, n: int, integer: bool):
    w = to_array(w, op)
    if get_aval(w).ndim != 1 or get_aval(w).shape[0] != n:
        raise ValueError(f"{op}: weights must be 1-d with one entry per observation ({n}), got shape "
                         f"{get_aval(w).shape}")
    if integer and dtypes.is_float(get_aval(w).dtype):
        raise TypeError(f"{op}: fweights must be integers, got {get_aval(w).dtype}; use aweights for "
                        "real-valued weights")
    return promote_float(op, abs(w))   # as JAX: negative weights count by their size (NumPy raises)


def cov(m, y=None, rowvar=True, bias=False, ddof=None, fweights=None, aweights=None, dtype=None):
    """``jax.numpy.cov(m, y=None, rowvar=True, bias=False, ddof=None, fweights=None, aweights=None,
    dtype=None)``: the covariance matrix of the variables in the rows of ``m`` (columns when
    ``rowvar`` is False; as JAX, any 2-d ``m`` is then transposed), with frequency and/or
    reliability weights; NaN without observations, as JAX computes it."""
    if ddof is not None and ddof != int(ddof):
        raise ValueError(f"cov: ddof must be an integer, got {ddof!r}")
    x = _observations("cov", m, lambda orig, x: not rowvar and get_aval(orig).ndim != 1)
    if get_aval(x).shape[0] == 0:
        return lax.full((0, 0), 0, get_aval(x).dtype)
    if y is not None:
        x = concatenate([x, _observations("cov", y, lambda orig, x: not rowvar and get_aval(x).shape[0] != 1)],
                        axis=0)
    if dtype is not None:
        x = lax.convert_element_type(x, dtypes.canonicalize(dtype))
    n_vars, n_obs = get_aval(x).shape
    if n_obs == 0:
        return lax.full(() if n_vars == 1 else (n_vars, n_vars), np.nan, get_aval(x).dtype)
    ddof = (0 if bias else 1) if ddof is None else ddof
    w = aw = None
    if fweights is not None:
        w = _weights("cov", fweights, n_obs, True)
    if aweights is not None:
        aw = _weights("cov", aweights, n_obs, False)
        w = aw if w is None else multiply(w, aw)
    if w is None:
        avg = mean(x, axis=1, keepdims=True)
        fact = float(n_obs - ddof)
    else:
        w = lax.convert_element_type(w, get_aval(x).dtype)
        w_sum = sum(w)
        avg = true_divide(sum(multiply(x, w), axis=1, keepdims=True), w_sum)
        fact = w_sum - ddof if aw is None else w_sum - ddof * sum(multiply(w, aw)) / w_sum
    centered = subtract(x, avg)
    weighted = centered if w is None else multiply(centered, w)
    # as JAX: a negative normaliser (ddof above the count) is used as is (NumPy clamps it to 0)
    c = true_divide(lax.dot_general(weighted, conj(centered), (((1,), (1,)), ((), ()))),
                    asarray(fact, get_aval(centered).dtype))
    return reshape(c, ()) if get_aval(c).shape == (1, 1) else c


def corrcoef(x, y=None, rowvar=True):
    """``jax.numpy.corrcoef(x, y=None, rowvar=True)``: Pearson correlation coefficients,
    ``cov / sqrt(outer(var, var))``, clipped to [-1, 1]."""
    c = cov(x, y, rowvar)
    if get_aval(c).ndim == 0:
        return true_divide(c, c)
    d = sqrt(real(diagonal(c)))
    c = true_divide(true_divide(c, d[:, None]), d[None, :])
    return clip(c, -1.0, 1.0)
