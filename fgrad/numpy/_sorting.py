"""Sorting, searching and counting: sort, argsort, nonzero, argwhere, flatnonzero, and
``where`` (whose one-argument form is ``nonzero``)."""
from __future__ import annotations

from typing import Any

import numpy as np

from fgrad import lax
from fgrad.core import dtypes
from fgrad.core.trace import ConcretizationError, get_aval
from fgrad.numpy._indexing import _INDEX_DTYPE, _concrete_value, _iota
from fgrad.numpy._manip import atleast_1d, flip, ravel, stack
from fgrad.numpy._math import _to_bool, floor_divide, remainder, where_select
from fgrad.numpy._util import canonical_axis, host_to_array, static_int, to_array
from fgrad.ops import sort as sort_ops

__all__ = ["where", "nonzero", "argwhere", "flatnonzero", "sort", "argsort", "sort_complex"]


def where(condition, x=None, y=None, /, *, size=None, fill_value=None):
    """``x`` where ``condition`` is true, else ``y`` (all three broadcast).

    With only ``condition``, returns ``nonzero(condition)`` (needs a concrete condition).
    """
    if x is None and y is None:
        return nonzero(condition, size=size, fill_value=fill_value)
    if x is None or y is None:
        raise TypeError("where: pass both x and y, or neither (where(condition) means nonzero)")
    return where_select(condition, x, y)


def nonzero(a, *, size: int | None = None, fill_value: Any = None) -> tuple:
    """Indices of the non-zero elements, one array of the default int (int32; int64 with x64)
    per axis, as JAX.

    Without ``size`` the input must be concrete (the result's length depends on its
    values). With ``size``, the first ``size`` indices are returned, padded with
    ``fill_value`` (default 0); this works on traced inputs.
    """
    a = to_array(a, "nonzero")
    aval = get_aval(a)
    if aval.ndim == 0:
        raise ValueError("nonzero: calling nonzero on 0-d arrays is not allowed; use fnp.atleast_1d")
    if size is None:
        value = _concrete_value(a, lambda: ConcretizationError(
            f"nonzero: the input is traced ({aval.str_short()}), so the number of non-zero elements is "
            "unknown while tracing; pass size=N (and fill_value=...)"))
        return tuple(host_to_array(ix, dtypes.default_int()) for ix in np.nonzero(value))
    # JAX's indices are the default int (int64 with x64)
    return tuple(lax.convert_element_type(ix, dtypes.default_int())
                 for ix in _nonzero_sized(a, static_int("nonzero", "size", size), fill_value))


def _nonzero_sized(a: Any, size: int, fill_value: Any) -> tuple:
    aval = get_aval(a)
    flat_mask = lax.reshape(_to_bool(a), (aval.size,))
    as_int = lax.convert_element_type(flat_mask, _INDEX_DTYPE)
    # element k goes to slot (number of hits before it); misses and overflow go to a spare slot
    slot = lax.sub(lax.cumsum(as_int, axis=0), _INDEX_DTYPE.type(1))
    spare = lax.full((aval.size,), size, _INDEX_DTYPE)
    slot = lax.min(lax.select_n(flat_mask, spare, slot), spare)
    slot = lax.reshape(slot, (aval.size, 1))
    fills = fill_value if isinstance(fill_value, (tuple, list)) else [fill_value] * aval.ndim
    flat_index = lax.scatter(lax.full((size + 1,), 0, _INDEX_DTYPE), slot, _iota(aval.size), (0,))
    found = lax.scatter(lax.full((size + 1,), False, dtypes.bool_), slot,
                        lax.full((aval.size,), True, dtypes.bool_), (0,))
    flat_index = lax.slice(flat_index, (0,), (size,))
    found = lax.slice(found, (0,), (size,))
    out, rest = [], flat_index
    for d in reversed(range(aval.ndim)):
        coord = remainder(rest, aval.shape[d]) if aval.shape[d] else rest
        rest = floor_divide(rest, aval.shape[d]) if aval.shape[d] else rest
        fill = fills[d] if fills[d] is not None else 0
        out.append(lax.select_n(found, lax.full((size,), fill, _INDEX_DTYPE), coord))
    return tuple(reversed(out))


def argwhere(a, *, size: int | None = None, fill_value: Any = None) -> Any:
    """Indices of the non-zero elements as an ``(N, ndim)`` array."""
    a = to_array(a, "argwhere")
    if get_aval(a).ndim == 0:
        a = atleast_1d(a)
    return stack(nonzero(a, size=size, fill_value=fill_value), axis=1)


def flatnonzero(a, *, size: int | None = None, fill_value: Any = None) -> Any:
    """Indices of the non-zero elements of the flattened array."""
    return nonzero(ravel(to_array(a, "flatnonzero")), size=size, fill_value=fill_value)[0]


def _sort_operand(a, axis: int | None, name: str):
    """``a`` as an array and ``axis`` as a non-negative axis (the flattened array for None)."""
    a = to_array(a, name)
    if axis is None:
        a, axis = ravel(a), 0
    ndim = get_aval(a).ndim
    if ndim == 0:
        raise ValueError(f"{name}: cannot sort a 0-d array; use fnp.atleast_1d")
    return a, canonical_axis(name, axis, ndim)


_SORT_KINDS = ("quicksort", "mergesort", "heapsort", "stable")


def _check_sort_options(name: str, kind: Any, order: Any) -> None:
    """Validate NumPy's ``kind=`` and ``order=``: fgrad always sorts stably, which is a valid
    result of every NumPy ``kind``; ``order=`` names fields of structured arrays, which fgrad
    (like JAX) does not have."""
    if kind is not None and kind not in _SORT_KINDS:
        raise ValueError(f"{name}: kind={kind!r} is not a sort kind; use one of {_SORT_KINDS} "
                         "(fgrad always sorts stably, which satisfies every kind), or stable=True")
    if order is not None:
        raise TypeError(f"{name}: order={order!r} is not supported: it selects fields of structured "
                        "arrays, and fgrad arrays have no fields (as in JAX); sort each key array instead (argsort, then "
                        "take_along_axis for the other keys)")


def sort(a, axis: int | None = -1, *, kind=None, order=None, stable: bool = True, descending: bool = False):
    """Sorted copy of ``a`` along ``axis`` (flattened when None); NaNs sort last.

    The sort is always stable, so every NumPy ``kind`` ('quicksort', 'mergesort', 'heapsort',
    'stable') is honoured; ``order=`` (structured-array fields) raises a TypeError.
    """
    _check_sort_options("sort", kind, order)
    a, axis = _sort_operand(a, axis, "sort")
    out = sort_ops.sort(a, dimension=axis)
    return flip(out, axis) if descending else out


def argsort(a, axis: int | None = -1, *, kind=None, order=None, stable: bool = True, descending: bool = False):
    """Indices that sort ``a`` along ``axis`` (stable; the default int, int64 with x64, as JAX);
    ``descending`` reverses the order
    but keeps equal elements in their input order, as JAX does.

    Every NumPy ``kind`` is honoured (the sort is stable); ``order=`` raises a TypeError.
    """
    _check_sort_options("argsort", kind, order)
    a, axis = _sort_operand(a, axis, "argsort")
    if descending:   # as JAX: ties (and NaNs, first) keep their order; no negation to overflow
        order = sort_ops.argsort(flip(a, axis), dimension=axis)
        order = flip((get_aval(a).shape[axis] - 1) - order, axis)
    else:
        order = sort_ops.argsort(a, dimension=axis)
    return lax.convert_element_type(order, dtypes.default_int())


def sort_complex(a):
    """``jnp.sort_complex(a)``: ``a`` sorted along its last axis by real part, then imaginary
    part, as a complex array (real inputs become complex64, or complex128 with 64-bit)."""
    a = to_array(a, "sort_complex")
    dtype = get_aval(a).dtype
    if not dtypes.is_complex(dtype):
        real = dtype if dtype in (dtypes.float32, dtypes.float64) else dtypes.default_float()
        a = lax.convert_element_type(a, dtypes.complex_dtype(real))
    return sort(a, axis=-1)
