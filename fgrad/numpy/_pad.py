"""``pad``: NumPy's padding modes (JAX's ``jax.numpy.pad``).

Index modes ('edge', 'wrap', even 'reflect'/'symmetric') gather the positions NumPy's own
``pad`` of ``arange(n)`` reads; the others ('linear_ramp', the statistics 'mean', 'median',
'maximum', 'minimum', odd reflections, a callable) build the padding from slices of the array,
one axis after another as NumPy does, so every mode differentiates, vmaps and jits.
"""
from __future__ import annotations

import builtins
from typing import Any, Callable

import numpy as np

from fgrad import lax
from fgrad.core.trace import get_aval
from fgrad.numpy._creation import linspace
from fgrad.numpy._index_tricks import apply_along_axis
from fgrad.numpy._indexing import take
from fgrad.numpy._manip import _slice_axis, flip, squeeze
from fgrad.numpy._math import round, subtract, multiply
from fgrad.numpy._reductions import max, mean, min
from fgrad.numpy._statistics import median
from fgrad.numpy._util import broadcast_to_shape, is_array, to_array

__all__ = ["pad"]

#: The keyword arguments each mode takes (NumPy's and JAX's).
_MODE_KWARGS = {
    "constant": ("constant_values",), "empty": (), "edge": (), "wrap": (),
    "linear_ramp": ("end_values",), "maximum": ("stat_length",), "minimum": ("stat_length",),
    "mean": ("stat_length",), "median": ("stat_length",),
    "reflect": ("reflect_type",), "symmetric": ("reflect_type",),
}
_STATISTICS = {"maximum": max, "minimum": min, "mean": mean, "median": median}


def pad(array, pad_width, mode: str | Callable = "constant", **kwargs):
    """``jax.numpy.pad(array, pad_width, mode='constant', **kwargs)``: ``array`` padded by
    ``pad_width`` (an int, a ``(before, after)`` pair, or a pair per axis), as ``numpy.pad``.

    Modes and their keywords: 'constant' (``constant_values``: a scalar, a pair or a pair per
    axis), 'empty' (zeros, as JAX), 'edge', 'wrap', 'reflect' and 'symmetric' (``reflect_type``
    'even' or 'odd'), 'linear_ramp' (``end_values``), 'maximum', 'minimum', 'mean' and 'median'
    (``stat_length``: how many edge elements the statistic reads; integer arrays round it
    half to even), or a callable ``f(row, (before, after), axis, kwargs)`` that returns the
    zero-padded 1-d ``row`` filled in. A 0-d array comes back unchanged.

    >>> fnp.pad(fnp.array([1., 2., 4.]), (2, 1), mode="reflect", reflect_type="odd")
    Array([-2.,  0.,  1.,  2.,  4.,  6.], dtype=float32)
    >>> fnp.pad(fnp.array([1, 2, 6]), 1, mode="mean", stat_length=2)
    Array([2, 1, 2, 6, 4], dtype=int32)
    """
    array = to_array(array, "pad")
    aval = get_aval(array)
    widths = _pairs("pad_width", pad_width, aval.ndim, integers=True)
    if any(lo < 0 or hi < 0 for lo, hi in widths):
        raise ValueError(f"pad: pad widths must be non-negative, got {[list(w) for w in widths]}")
    if callable(mode):
        return _pad_callable(array, widths, mode, kwargs)
    if mode not in _MODE_KWARGS:
        raise ValueError(f"pad: mode {mode!r} is not supported; supported modes: {', '.join(_MODE_KWARGS)} "
                         "or a callable")
    unknown = set(kwargs) - set(_MODE_KWARGS[mode])
    if unknown:
        raise ValueError(f"pad: unsupported keyword arguments for mode {mode!r}: {sorted(unknown)}")
    if aval.ndim == 0:
        return array
    if mode == "constant":
        return _pad_constant(array, widths, kwargs.get("constant_values", 0))
    if mode == "empty":
        return _pad_constant(array, widths, 0)
    for axis, (lo, hi) in enumerate(widths):
        if aval.shape[axis] == 0 and (lo or hi):
            raise ValueError(f"pad: cannot pad the empty axis {axis} in mode {mode!r} (shape {aval.shape})")
    if mode == "linear_ramp":
        return _pad_linear_ramp(array, widths, _pairs("end_values", kwargs.get("end_values", 0), aval.ndim))
    if mode in _STATISTICS:
        stat_length = kwargs.get("stat_length")
        lengths = None if stat_length is None else _pairs("stat_length", stat_length, aval.ndim, integers=True)
        return _pad_statistic(array, widths, lengths, _STATISTICS[mode])
    reflect_type = kwargs.get("reflect_type", "even")
    if reflect_type not in ("even", "odd"):
        raise ValueError(f"pad: reflect_type must be 'even' or 'odd', got {reflect_type!r}")
    if reflect_type == "odd":
        return _pad_odd_reflection(array, widths, mode)
    return _pad_by_index(array, widths, mode)


def _pairs(name: str, value: Any, ndim: int, integers: bool = False) -> list[tuple[Any, Any]]:
    """``value`` (a scalar, a pair, or a pair per axis; concrete) as ``ndim`` (before, after) pairs."""
    values = np.asarray(value)
    if integers and values.dtype.kind not in "iu":
        raise TypeError(f"pad: {name} must be integers, got {value!r}")
    try:
        values = np.broadcast_to(values, (ndim, 2))
    except ValueError:
        raise ValueError(f"pad: {name} {value!r} does not fit an array of rank {ndim}; give one value, "
                         "one (before, after) pair, or a pair per axis") from None
    convert = int if integers else (lambda v: v.item())
    return [(convert(lo), convert(hi)) for lo, hi in values]


def _pad_constant(array, widths, constant_values):
    aval = get_aval(array)
    if is_array(constant_values) and get_aval(constant_values).ndim == 0:
        value = lax.convert_element_type(constant_values, aval.dtype)
        return lax.pad(array, value, [(lo, hi, 0) for lo, hi in widths])
    values = np.asarray(constant_values)
    if values.ndim == 0:
        return lax.pad(array, aval.dtype.type(values), [(lo, hi, 0) for lo, hi in widths])
    values = np.broadcast_to(values, (aval.ndim, 2))
    for axis, (lo, hi) in enumerate(widths):
        for side, width in ((0, lo), (1, hi)):
            if width:
                config = [(0, 0, 0)] * aval.ndim
                config[axis] = (width, 0, 0) if side == 0 else (0, width, 0)
                array = lax.pad(array, aval.dtype.type(values[axis, side]), config)
    return array


def _pad_by_index(array, widths, mode: str):
    """'edge', 'wrap' and even reflections: a gather of the positions NumPy's pad reads."""
    for axis, (lo, hi) in enumerate(widths):
        if lo or hi:
            n = get_aval(array).shape[axis]
            index = np.pad(np.arange(n, dtype=np.int32), (lo, hi), mode=mode)
            array = take(array, index, axis=axis)
    return array


def _repeat_along(x, axis: int, count: int):
    """``x`` (size 1 along ``axis``) repeated ``count`` times along it."""
    shape = list(get_aval(x).shape)
    shape[axis] = count
    return broadcast_to_shape(x, tuple(shape))


def _pad_statistic(array, widths, lengths, statistic):
    """Each side filled with ``statistic`` of its first/last ``stat_length`` elements (all when
    None), computed after the earlier axes were padded, as NumPy does."""
    integer = get_aval(array).dtype.kind in "iu"
    for axis, (lo, hi) in enumerate(widths):
        if not (lo or hi):
            continue
        n = get_aval(array).shape[axis]
        if lengths is None:
            before = after = statistic(array, axis=axis, keepdims=True)
        else:
            length_lo, length_hi = lengths[axis]
            if length_lo <= 0 or length_hi <= 0:
                raise ValueError(f"pad: stat_length {lengths[axis]} for axis {axis} yields no value for padding; "
                                 "give lengths >= 1")
            before = statistic(_slice_axis(array, axis, 0, builtins.min(length_lo, n)), axis=axis, keepdims=True)
            after = statistic(_slice_axis(array, axis, n - builtins.min(length_hi, n), n), axis=axis, keepdims=True)
        dtype = get_aval(array).dtype
        if integer:   # NumPy and JAX round a mean or median of integers half to even
            before, after = round(before), round(after)
        before, after = (lax.convert_element_type(v, dtype) for v in (before, after))
        array = lax.concatenate([_repeat_along(before, axis, lo), array, _repeat_along(after, axis, hi)], axis)
    return array


def _pad_linear_ramp(array, widths, end_values):
    """Each side a ramp from its end value towards the edge element (``linspace`` without the
    endpoint; integer arrays floor it, as NumPy and JAX)."""
    dtype = get_aval(array).dtype
    for axis, (lo, hi) in enumerate(widths):
        if not (lo or hi):
            continue
        n = get_aval(array).shape[axis]
        edge_lo = squeeze(_slice_axis(array, axis, 0, 1), axis)
        edge_hi = squeeze(_slice_axis(array, axis, n - 1, n), axis)
        ramp_lo = linspace(end_values[axis][0], edge_lo, lo, endpoint=False, dtype=dtype, axis=axis)
        ramp_hi = flip(linspace(end_values[axis][1], edge_hi, hi, endpoint=False, dtype=dtype, axis=axis), axis)
        array = lax.concatenate([ramp_lo, array, ramp_hi], axis)
    return array


def _pad_odd_reflection(array, widths, mode: str):
    """``reflect_type='odd'``: each reflected block is ``2 * edge - block``, and the next block
    reflects about the new edge (NumPy's iteration for pads wider than the axis)."""
    for axis, (lo, hi) in enumerate(widths):
        n = get_aval(array).shape[axis]
        offset = 1 if mode == "reflect" and n > 1 else 0
        for before, width in ((True, lo), (False, hi)):
            array = _odd_blocks(array, axis, n, offset, width, before)
    return array


def _odd_blocks(array, axis: int, n: int, offset: int, width: int, before: bool):
    size = get_aval(array).shape[axis]
    edge = _slice_axis(array, axis, 0, 1) if before else _slice_axis(array, axis, size - 1, size)
    while width > 0:
        chunk = builtins.min(width, n - offset)
        width -= chunk
        size = get_aval(array).shape[axis]
        start = offset if before else size - chunk - offset
        block = subtract(multiply(2, edge), flip(_slice_axis(array, axis, start, start + chunk), axis))
        if n > 1:   # the next block reflects about this block's outer element
            edge = _slice_axis(block, axis, 0, 1) if before else _slice_axis(block, axis, chunk - 1, chunk)
        array = lax.concatenate([block, array] if before else [array, block], axis)
    return array


def _pad_callable(array, widths, func: Callable, kwargs: dict):
    """JAX's callable mode: zero-pad, then ``func(row, (before, after), axis, kwargs)`` on every
    1-d slice along each axis in turn."""
    padded = _pad_constant(array, widths, 0)
    for axis in range(get_aval(padded).ndim):
        padded = apply_along_axis(func, axis, padded, widths[axis], axis, kwargs)
    return padded
