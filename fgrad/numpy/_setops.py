"""Set operations and binning: unique (and the array API's unique_all/_counts/_inverse/
_values), isin, union1d, intersect1d, setdiff1d, setxor1d, searchsorted, digitize, bincount,
histogram, histogram_bin_edges, histogram2d, histogramdd.

Everything is built from sort, cumsum, gather and scatter, so it runs eagerly, under ``jit``
natively and under ``vmap``. Results whose length depends on the data (unique values, set
operations, ``bincount`` without ``length``) need concrete inputs, or, as in JAX, a static
``size=`` (padded with ``fill_value``) when the input is traced.
"""
from __future__ import annotations

import builtins
import math
from typing import Any, NamedTuple

import numpy as np

from fgrad import lax
from fgrad.core import dtypes
from fgrad.core.trace import ConcretizationError, get_aval
from fgrad.numpy._indexing import _INDEX_DTYPE, _concrete_value
from fgrad.numpy._manip import concatenate, moveaxis, ravel, reshape
from fgrad.numpy._math import isnan, logical_and, logical_not, logical_or, not_equal, where_select
from fgrad.numpy._reductions import max as _max, min as _min, sum as _sum
from fgrad.numpy._creation import linspace
from fgrad.numpy._util import static_int, to_array
from fgrad.ops import sort as sort_ops

__all__ = ["unique", "unique_all", "unique_counts", "unique_inverse", "unique_values", "isin", "union1d",
           "intersect1d", "setdiff1d", "setxor1d", "searchsorted", "digitize", "bincount", "histogram",
           "histogram_bin_edges", "histogram2d", "histogramdd"]


class UniqueAllResult(NamedTuple):
    values: Any
    indices: Any
    inverse_indices: Any
    counts: Any


class UniqueCountsResult(NamedTuple):
    values: Any
    counts: Any


class UniqueInverseResult(NamedTuple):
    values: Any
    inverse_indices: Any


# --- helpers ----------------------------------------------------------------------------------------------

def _count_of(flags: Any, op: str, size: int | None) -> int:
    """How many results there are: ``size`` when given, else the number of set ``flags``
    (which must then be concrete)."""
    if size is not None:
        return static_int(op, "size", size)
    value = _concrete_value(flags, lambda: ConcretizationError(
        f"{op}: the input is traced, so the number of results is unknown while tracing; pass size=N "
        "(and fill_value=...) as in JAX"))
    return int(np.count_nonzero(value))


def _compact(flags: Any, values: Any, size: int, fill: Any) -> Any:
    """The entries of ``values`` (along axis 0) where ``flags`` is set, in order, in ``size``
    slots; the slots left over hold ``fill`` (broadcast along the other axes)."""
    n = get_aval(flags).shape[0]
    aval = get_aval(values)
    as_int = lax.convert_element_type(flags, _INDEX_DTYPE)
    slot = lax.sub(lax.cumsum(as_int, axis=0), _INDEX_DTYPE.type(1))
    spare = lax.full((n,), size, _INDEX_DTYPE)
    slot = lax.min(lax.select_n(flags, spare, slot), spare)   # misses and overflow: a spare slot
    base = lax.full((size + 1,) + aval.shape[1:], 0, aval.dtype)
    out = lax.scatter(base, lax.reshape(slot, (n, 1)), values, (0,))
    out = lax.slice(out, (0,) * aval.ndim, (size,) + aval.shape[1:])
    filled = _compacted_mask(flags, size)
    fill = lax.convert_element_type(to_array(fill), aval.dtype)
    fill = lax.broadcast_in_dim(fill, (size,) + aval.shape[1:], tuple(range(1, aval.ndim))[-get_aval(fill).ndim:]
                                if get_aval(fill).ndim else ())
    mask = lax.broadcast_in_dim(filled, (size,) + aval.shape[1:], (0,))
    return lax.select_n(mask, fill, out)


def _compacted_mask(flags: Any, size: int) -> Any:
    """True for the first ``min(size, count(flags))`` of ``size`` slots."""
    count = lax.reduce_sum(lax.convert_element_type(flags, _INDEX_DTYPE), (0,))
    return lax.lt(lax.iota(_INDEX_DTYPE, size), count)


def _differs(a: Any, b: Any, equal_nan: bool) -> Any:
    """``a != b`` elementwise; with ``equal_nan`` two NaNs count as equal."""
    diff = not_equal(a, b)
    if equal_nan and dtypes.is_float(get_aval(a).dtype):
        diff = logical_and(diff, logical_not(logical_and(isnan(a), isnan(b))))
    return diff


def _rows(ar: Any, axis: int | None, op: str) -> tuple[Any, tuple]:
    """``ar`` as a 2-D array of the items to compare (one per row) and the shape of one item."""
    ar = to_array(ar, op)
    aval = get_aval(ar)
    if axis is None:
        return reshape(ar, (aval.size, 1)), ()
    if aval.ndim == 0:
        raise ValueError(f"{op}: axis={axis} is invalid for a 0-d array; pass axis=None")
    axis = axis % aval.ndim if -aval.ndim <= axis < aval.ndim else None
    if axis is None:
        raise ValueError(f"{op}: axis is out of range for an array of rank {aval.ndim}")
    moved = moveaxis(ar, axis, 0)
    item = get_aval(moved).shape[1:]
    return reshape(moved, (aval.shape[axis], math.prod(item))), item


def _sorted_rows(rows: Any) -> tuple[Any, Any]:
    """``rows`` sorted lexicographically (column 0 first, stable) and the permutation that did it."""
    n, width = get_aval(rows).shape
    columns = [lax.reshape(lax.slice(rows, (0, c), (n, c + 1)), (n,)) for c in range(width)]
    perm = lax.iota(_INDEX_DTYPE, n)
    outs = sort_ops.sort(columns + [perm], dimension=0, num_keys=max(width, 1))
    return (lax.concatenate([lax.reshape(c, (n, 1)) for c in outs[:-1]], 1) if width else rows), outs[-1]


# --- unique -----------------------------------------------------------------------------------------------

def unique(ar, return_index: bool = False, return_inverse: bool = False, return_counts: bool = False,
           axis: int | None = None, *, equal_nan: bool = True, size: int | None = None, fill_value: Any = None,
           sorted: bool = True):  # noqa: A002 (JAX's keyword)
    """``jnp.unique(ar, return_index=False, return_inverse=False, return_counts=False, axis=None, *,
    equal_nan=True, size=None, fill_value=None, sorted=True)``: the sorted unique elements of ``ar``
    (of the flattened array, or unique slices along ``axis``), optionally with the index of each
    one's first occurrence, the inverse (``values[inverse]`` rebuilds ``ar``; shaped like ``ar``
    when ``axis`` is None) and the counts.

    With ``equal_nan`` all NaNs are one value. Under ``jit`` pass ``size``: the first ``size``
    uniques are kept, padded with ``fill_value`` (default: the smallest value); indices and
    counts are padded with 0.
    """
    if not sorted:
        raise ValueError("unique: sorted=False is not supported (as in JAX, results are always sorted); "
                         "drop the argument")
    rows, item = _rows(ar, axis, "unique")
    n = get_aval(rows).shape[0]
    values, perm = _sorted_rows(rows)
    if n:
        first = lax.reduce_or(_differs(values[1:], values[:-1], equal_nan), (1,))
        is_first = concatenate([lax.full((1,), True, dtypes.bool_), first])
    else:
        is_first = lax.full((0,), True, dtypes.bool_)
    count = _count_of(is_first, "unique", size)
    fill = values[0] if fill_value is None and n else (0 if fill_value is None else fill_value)  # the smallest
    uniques = _compact(is_first, values, count, fill)
    uniques = reshape(uniques, (count,) + item)
    if axis is not None:
        uniques = moveaxis(uniques, 0, axis % get_aval(to_array(ar)).ndim)
    outs = [uniques]
    if return_index:
        outs.append(_compact(is_first, perm, count, 0))
    group = lax.sub(lax.cumsum(lax.convert_element_type(is_first, _INDEX_DTYPE), axis=0), _INDEX_DTYPE.type(1))
    if return_inverse:
        inverse = lax.scatter(lax.full((n,), 0, _INDEX_DTYPE), lax.reshape(perm, (n, 1)), group, (0,))
        outs.append(reshape(inverse, get_aval(to_array(ar)).shape) if axis is None else inverse)
    if return_counts:
        counts = lax.scatter_add(lax.full((count + 1,), 0, _INDEX_DTYPE),
                                 lax.reshape(lax.min(group, lax.full((n,), count, _INDEX_DTYPE)), (n, 1)),
                                 lax.full((n,), 1, _INDEX_DTYPE), (0,))
        outs.append(lax.slice(counts, (0,), (count,)))
    # the index arrays in the default int (int64 with x64), as JAX's
    outs[1:] = [lax.convert_element_type(o, dtypes.default_int()) for o in outs[1:]]
    return outs[0] if len(outs) == 1 else tuple(outs)


def unique_all(x, /, *, size: int | None = None, fill_value: Any = None) -> UniqueAllResult:
    """Array API ``unique_all(x)``: (values, indices, inverse_indices, counts); NaNs are distinct."""
    return UniqueAllResult(*unique(x, True, True, True, equal_nan=False, size=size, fill_value=fill_value))


def unique_counts(x, /, *, size: int | None = None, fill_value: Any = None) -> UniqueCountsResult:
    """Array API ``unique_counts(x)``: (values, counts); NaNs are distinct."""
    return UniqueCountsResult(*unique(x, return_counts=True, equal_nan=False, size=size, fill_value=fill_value))


def unique_inverse(x, /, *, size: int | None = None, fill_value: Any = None) -> UniqueInverseResult:
    """Array API ``unique_inverse(x)``: (values, inverse_indices shaped like x); NaNs are distinct."""
    return UniqueInverseResult(*unique(x, return_inverse=True, equal_nan=False, size=size, fill_value=fill_value))


def unique_values(x, /, *, size: int | None = None, fill_value: Any = None) -> Any:
    """Array API ``unique_values(x)``: the sorted unique elements; NaNs are distinct."""
    return unique(x, equal_nan=False, size=size, fill_value=fill_value)


# --- searching ------------------------------------------------------------------------------------------------

def _sorts_before(a: Any, b: Any) -> Any:
    """``a`` sorts strictly before ``b`` in sort's order (NaNs after every number)."""
    lt = lax.lt(a, b)
    if dtypes.is_float(get_aval(a).dtype):
        lt = logical_or(lt, logical_and(isnan(b), logical_not(isnan(a))))
    return lt


def searchsorted(a, v, side: str = "left", sorter: Any = None, *, method: str = "scan"):
    """``jnp.searchsorted(a, v, side='left', sorter=None, *, method='scan')``: where each element
    of ``v`` would be inserted into the sorted 1-D ``a`` to keep it sorted (int32, shaped like ``v``).

    ``side='left'`` gives the first suitable position, 'right' the last. NaNs order after every
    number, as in ``sort``. A binary search of ``ceil(log2(len(a) + 1))`` gather steps; every
    ``method`` JAX accepts gives the same result here.
    """
    if side not in ("left", "right"):
        raise ValueError(f"searchsorted: side must be 'left' or 'right', got {side!r}")
    if method not in ("scan", "scan_unrolled", "sort", "compare_all"):
        raise ValueError(f"searchsorted: method must be one of 'scan', 'scan_unrolled', 'sort', 'compare_all', "
                         f"got {method!r}")
    a, v = to_array(a, "searchsorted"), to_array(v, "searchsorted")
    if get_aval(a).ndim != 1:
        raise ValueError(f"searchsorted: a must be 1-D, got shape {get_aval(a).shape}")
    if sorter is not None:
        a = lax.take(a, to_array(sorter, "searchsorted"), 0)
    dtype = dtypes.promote((get_aval(a).dtype, get_aval(a).weak_type), (get_aval(v).dtype, get_aval(v).weak_type))[0]
    a, v = lax.convert_element_type(a, dtype), lax.convert_element_type(v, dtype)
    n = get_aval(a).shape[0]
    shape = get_aval(v).shape
    lo, hi = lax.full(shape, 0, _INDEX_DTYPE), lax.full(shape, n, _INDEX_DTYPE)
    last = lax.full(shape, max(n - 1, 0), _INDEX_DTYPE)
    for _ in range(n.bit_length()):    # ceil(log2(n + 1)) halvings leave lo == hi
        active = lax.lt(lo, hi)
        mid = lax.div(lax.add(lo, hi), _INDEX_DTYPE.type(2))
        pivot = lax.take(a, lax.min(mid, last), 0)
        go_right = _sorts_before(pivot, v) if side == "left" else logical_not(_sorts_before(v, pivot))
        lo = lax.select_n(logical_and(active, go_right), lo, lax.add(mid, _INDEX_DTYPE.type(1)))
        hi = lax.select_n(logical_and(active, logical_not(go_right)), hi, mid)
    return lo


def digitize(x, bins, right: bool = False, *, method: str | None = None):
    """``jnp.digitize(x, bins, right=False)``: the index of the bin each element of ``x`` falls in,
    for monotonically increasing or decreasing ``bins`` (NumPy's conventions)."""
    x, bins = to_array(x, "digitize"), to_array(bins, "digitize")
    if get_aval(bins).ndim != 1:
        raise ValueError(f"digitize: bins must be 1-D, got shape {get_aval(bins).shape}")
    n = get_aval(bins).shape[0]
    if n == 0:
        return lax.full(get_aval(x).shape, 0, _INDEX_DTYPE)
    side = "left" if right else "right"
    kwargs = {} if method is None else {"method": method}
    increasing = searchsorted(bins, x, side=side, **kwargs)
    decreasing = lax.sub(lax.full(get_aval(x).shape, n, _INDEX_DTYPE),
                         searchsorted(lax.rev(bins, (0,)), x, side=side, **kwargs))
    rising = lax.le(bins[0], bins[n - 1])
    return where_select(rising, increasing, decreasing)


def isin(element, test_elements, assume_unique: bool = False, invert: bool = False, *, method: str = "auto"):
    """``jnp.isin(element, test_elements, assume_unique=False, invert=False, *, method='auto')``:
    whether each element of ``element`` is in ``test_elements`` (shaped like ``element``)."""
    element, tests = to_array(element, "isin"), ravel(to_array(test_elements, "isin"))
    dtype = dtypes.promote((get_aval(element).dtype, False), (get_aval(tests).dtype, False))[0]
    element, tests = lax.convert_element_type(element, dtype), lax.convert_element_type(tests, dtype)
    m = get_aval(tests).shape[0]
    if m == 0:
        found = lax.full(get_aval(element).shape, False, dtypes.bool_)
    else:
        tests = sort_ops.sort(tests, dimension=0)
        at = lax.min(searchsorted(tests, element), lax.full(get_aval(element).shape, m - 1, _INDEX_DTYPE))
        found = lax.eq(lax.take(tests, at, 0), element)
    return logical_not(found) if invert else found


# --- set operations on 1-D arrays ------------------------------------------------------------------------

def union1d(ar1, ar2, *, size: int | None = None, fill_value: Any = None):
    """``jnp.union1d(ar1, ar2, *, size=None, fill_value=None)``: the sorted unique elements of both."""
    both = concatenate([ravel(to_array(ar1, "union1d")), ravel(to_array(ar2, "union1d"))])
    return unique(both, size=size, fill_value=fill_value)


def setdiff1d(ar1, ar2, assume_unique: bool = False, *, size: int | None = None, fill_value: Any = None):
    """``jnp.setdiff1d(ar1, ar2, assume_unique=False, *, size=None, fill_value=None)``: the sorted
    unique elements of ``ar1`` that are not in ``ar2`` (padded with ``fill_value``, default 0)."""
    ar1 = ravel(to_array(ar1, "setdiff1d"))
    values = ar1 if assume_unique else _unique_padded(ar1)
    keep = logical_and(_valid_mask(ar1, values, assume_unique), isin(values, ar2, invert=True))
    return _select_sorted(values, keep, "setdiff1d", size, fill_value)


def intersect1d(ar1, ar2, assume_unique: bool = False, return_indices: bool = False, *,
                size: int | None = None, fill_value: Any = None):
    """``jnp.intersect1d(ar1, ar2, assume_unique=False, return_indices=False, *, size, fill_value)``:
    the sorted unique elements in both arrays; with ``return_indices``, also the index of each
    one's first occurrence in ``ar1`` and in ``ar2``."""
    ar1, ar2 = ravel(to_array(ar1, "intersect1d")), ravel(to_array(ar2, "intersect1d"))
    v1, i1 = _unique_with_first(ar1)
    v2, i2 = _unique_with_first(ar2)
    keep = logical_and(_valid_mask(ar1, v1, False), isin(v1, ar2))
    values = _select_sorted(v1, keep, "intersect1d", size, fill_value)
    if not return_indices:
        return values
    count = get_aval(values).shape[0]
    idx1 = _compact(keep, i1, count, 0)
    m = get_aval(v2).shape[0]
    at = lax.min(searchsorted(v2, values), lax.full((count,), max(m - 1, 0), _INDEX_DTYPE))
    idx2 = lax.take(i2, at, 0) if m else lax.full((count,), 0, _INDEX_DTYPE)
    valid = _compacted_mask(keep, count)
    return values, idx1, lax.select_n(valid, lax.full((count,), 0, _INDEX_DTYPE), idx2)


def setxor1d(ar1, ar2, assume_unique: bool = False, *, size: int | None = None, fill_value: Any = None):
    """``jnp.setxor1d(ar1, ar2, assume_unique=False, *, size=None, fill_value=None)``: the sorted
    unique elements in exactly one of the arrays."""
    ar1, ar2 = ravel(to_array(ar1, "setxor1d")), ravel(to_array(ar2, "setxor1d"))
    dtype = dtypes.promote((get_aval(ar1).dtype, False), (get_aval(ar2).dtype, False))[0]
    ar1, ar2 = lax.convert_element_type(ar1, dtype), lax.convert_element_type(ar2, dtype)
    u1, u2 = (ar1, ar2) if assume_unique else (_unique_padded(ar1), _unique_padded(ar2))
    only1 = logical_and(_valid_mask(ar1, u1, assume_unique), isin(u1, ar2, invert=True))
    only2 = logical_and(_valid_mask(ar2, u2, assume_unique), isin(u2, ar1, invert=True))
    values, keep = sort_ops.sort([concatenate([u1, u2]), concatenate([only1, only2])], dimension=0, num_keys=1)
    return _select_sorted(values, keep, "setxor1d", size, fill_value)


def _unique_with_first(ar: Any) -> tuple[Any, Any]:
    """The sorted unique values of 1-D ``ar`` padded to its length (with its largest value,
    so they stay sorted), and each one's first index."""
    n = get_aval(ar).shape[0]
    if n == 0:
        return ar, lax.full((0,), 0, _INDEX_DTYPE)
    values, index = unique(ar, return_index=True, size=n, fill_value=_max(ar))
    return values, index


def _unique_padded(ar: Any) -> Any:
    return _unique_with_first(ar)[0]


def _valid_mask(ar: Any, uniques: Any, assume_unique: bool) -> Any:
    """Which slots of ``uniques`` (``_unique_padded(ar)``) hold a real unique value, not padding."""
    n = get_aval(uniques).shape[0]
    if assume_unique or n == 0:
        return lax.full((n,), True, dtypes.bool_)
    first = concatenate([lax.full((1,), True, dtypes.bool_), _differs(uniques[1:], uniques[:-1], True)])
    return first


def _select_sorted(values: Any, keep: Any, op: str, size: int | None, fill_value: Any) -> Any:
    count = _count_of(keep, op, size)
    return _compact(keep, values, count, 0 if fill_value is None else fill_value)


# --- binning ---------------------------------------------------------------------------------------------------

def bincount(x, weights=None, minlength: int = 0, *, length: int | None = None):
    """``jnp.bincount(x, weights=None, minlength=0, *, length=None)``: the number of occurrences
    (or summed ``weights``) of each value in the int array ``x``. Under ``jit`` pass ``length``
    (values at or past it are dropped). As in JAX, negative values count in the first bin."""
    x = to_array(x, "bincount")
    aval = get_aval(x)
    if aval.ndim != 1 or (not dtypes.is_int(aval.dtype) and aval.dtype != dtypes.bool_):
        raise TypeError(f"bincount: x must be a 1-D array of non-negative ints, got {aval.str_short()}")
    minlength = static_int("bincount", "minlength", minlength)
    if length is None:
        value = _concrete_value(x, lambda: ConcretizationError(
            "bincount: x is traced, so the number of bins is unknown while tracing; pass length=N as in JAX"))
        length = max(minlength, max(0, int(value.max())) + 1 if value.size else 0)
    length = static_int("bincount", "length", length)
    if weights is None:      # counts in the default int (int64 with x64), as JAX's
        updates = lax.full(aval.shape, 1, dtypes.default_int())
    else:
        updates = to_array(weights, "bincount")
        if get_aval(updates).dtype == dtypes.bool_:
            updates = lax.convert_element_type(updates, dtypes.default_int())
    target = lax.full((length,), 0, get_aval(updates).dtype)
    index = lax.convert_element_type(x, _INDEX_DTYPE)
    index = lax.reshape(lax.max(index, _INDEX_DTYPE.type(0)), (aval.shape[0], 1))   # JAX: clip(x, 0)
    return lax.scatter_add(target, index, updates, (0,))


def histogram_bin_edges(a, bins: Any = 10, range: Any = None, weights: Any = None):  # noqa: A002
    """``jnp.histogram_bin_edges(a, bins=10, range=None, weights=None)``: ``bins + 1`` evenly
    spaced edges over ``range`` (default: the data's min and max), or ``bins`` itself when it is
    an array of edges."""
    a = ravel(to_array(a, "histogram_bin_edges"))
    dtype = dtypes.default_float() if not dtypes.is_float(get_aval(a).dtype) else get_aval(a).dtype
    if not isinstance(bins, (int, np.integer)):   # edges, in a's floating dtype (as JAX)
        return to_array(bins, "histogram_bin_edges").astype(dtype)
    bins = static_int("histogram_bin_edges", "bins", bins)
    if bins < 1:
        raise ValueError(f"histogram_bin_edges: bins must be a positive int, got {bins}")
    if range is None:
        if get_aval(a).size == 0:
            lo, hi = 0.0, 1.0
        else:
            lo, hi = _min(a).astype(dtype), _max(a).astype(dtype)
    else:
        lo, hi = range
    lo, hi = to_array(lo).astype(dtype), to_array(hi).astype(dtype)
    same = lax.eq(lo, hi)            # NumPy widens an empty range by 0.5 on each side
    lo = where_select(same, lo - 0.5, lo)
    hi = where_select(same, hi + 0.5, hi)
    return linspace(lo, hi, bins + 1, dtype=dtype)


def histogram(a, bins: Any = 10, range: Any = None, weights: Any = None, density: bool | None = None):  # noqa: A002
    """``jnp.histogram(a, bins=10, range=None, weights=None, density=None)``: (counts, edges).
    Bins are half open except the last, which includes its right edge; values outside the
    edges are not counted. With ``density`` the counts are normalised to integrate to 1."""
    a = ravel(to_array(a, "histogram"))
    edges = histogram_bin_edges(a, bins, range, weights)
    nbins = get_aval(edges).shape[0] - 1
    where = lax.sub(searchsorted(edges, a, side="right"), _INDEX_DTYPE.type(1))
    on_last_edge = lax.eq(a.astype(get_aval(edges).dtype), edges[nbins])
    where = where_select(on_last_edge, nbins - 1, where)
    outside = logical_or(lax.lt(where, _INDEX_DTYPE.type(0)), lax.ge(where, _INDEX_DTYPE.type(nbins)))
    where = where_select(outside, nbins, where)         # dropped by the scatter below
    n = get_aval(a).shape[0]
    if weights is None:
        updates = lax.full((n,), 1, get_aval(edges).dtype)
    else:
        updates = ravel(to_array(weights, "histogram")).astype(get_aval(edges).dtype)
    counts = lax.scatter_add(lax.full((nbins,), 0, get_aval(updates).dtype), lax.reshape(where, (n, 1)), updates, (0,))
    if density:
        widths = edges[1:] - edges[:-1]
        counts = counts / (_sum(counts) * widths)
    return counts, edges


def histogramdd(sample, bins: Any = 10, range: Any = None, weights: Any = None,  # noqa: A002
                density: bool | None = None):
    """``jnp.histogramdd(sample, bins=10, range=None, weights=None, density=None)``: the
    D-dimensional histogram of the ``(N, D)`` array ``sample`` and its list of D edge arrays.

    ``bins`` is an int for every dimension, or one entry per dimension (an int or an array of
    edges); ``range`` is None or one ``(lo, hi)`` pair (or None) per dimension. Bins are half open
    except the last of each dimension, which includes its right edge; samples outside the edges
    (and NaNs) are not counted. Counts are int32 without ``weights`` (JAX's; NumPy gives floats),
    the weights' dtype with them; ``density`` divides by the total and by each bin's volume.

    >>> h, edges = fnp.histogramdd(fnp.array([[0., 0.], [1., 1.], [1., 0.]]), bins=2)
    >>> h
    Array([[1, 0],
           [1, 1]], dtype=int32)
    """
    sample = to_array(sample, "histogramdd")
    if not dtypes.is_float(get_aval(sample).dtype):
        sample = sample.astype(dtypes.default_float())
    if get_aval(sample).ndim != 2:
        raise ValueError(f"histogramdd: sample must be a 2-D (N, D) array, got shape {get_aval(sample).shape}")
    n, d = get_aval(sample).shape
    if weights is not None:
        weights = to_array(weights, "histogramdd")
        if get_aval(weights).shape != (n,):
            raise ValueError(f"histogramdd: weights of shape {get_aval(weights).shape} must have one weight per "
                             f"sample ({n},)")
        if not dtypes.is_float(get_aval(weights).dtype):
            weights = weights.astype(get_aval(sample).dtype)
    if range is not None and (len(range) != d or any(r is not None and np.shape(r)[0] != 2 for r in range)):
        raise ValueError(f"histogramdd: for sample of shape {(n, d)}, range must be a sequence of {d} (lo, hi) "
                         f"pairs or Nones, got {range!r}")
    per_dim = _bins_per_dimension(bins, d)
    edges_by_dim, index, stride = [], lax.full((n,), 0, _INDEX_DTYPE), 1
    columns = [reshape(lax.slice(sample, (0, i), (n, i + 1)), (n,)) for i in builtins.range(d)]
    for i in reversed(builtins.range(d)):
        edges = histogram_bin_edges(columns[i], per_dim[i], None if range is None else range[i])
        size = get_aval(edges).shape[0] + 1          # with an underflow and an overflow bin
        where = searchsorted(edges, columns[i], side="right")
        where = where_select(lax.eq(columns[i], edges[size - 2]), where - 1, where)
        where = lax.clamp(_INDEX_DTYPE.type(0), where.astype(_INDEX_DTYPE), _INDEX_DTYPE.type(size - 1))
        index = index + where * _INDEX_DTYPE.type(stride)
        stride *= size
        edges_by_dim.insert(0, edges)
    sizes = tuple(get_aval(e).shape[0] + 1 for e in edges_by_dim)
    hist = reshape(bincount(index, weights, length=stride), sizes)
    hist = lax.slice(hist, (1,) * d, tuple(s - 1 for s in sizes))   # drop the under- and overflow bins
    if density:
        hist = hist.astype(get_aval(sample).dtype)
        hist = hist / _sum(hist)
        for i, edges in enumerate(edges_by_dim):
            widths = edges[1:] - edges[:-1]
            hist = hist / reshape(widths, tuple(-1 if j == i else 1 for j in builtins.range(d)))
    return hist, edges_by_dim


def _bins_per_dimension(bins: Any, d: int) -> list:
    if isinstance(bins, (int, np.integer)):
        return [bins] * d
    try:
        per_dim = list(bins)
    except TypeError:
        raise TypeError(f"histogramdd: bins must be an int or one entry per dimension, got {bins!r}") from None
    if len(per_dim) != d:
        raise ValueError(f"histogramdd: bins must have one entry per dimension ({d}), got {len(per_dim)}")
    return per_dim


def histogram2d(x, y, bins: Any = 10, range: Any = None, weights: Any = None,  # noqa: A002
                density: bool | None = None):
    """``jnp.histogram2d(x, y, bins=10, range=None, weights=None, density=None)``: the 2-D
    histogram of the points ``(x[i], y[i])``: ``(counts, x_edges, y_edges)``, as ``histogramdd``.
    ``bins`` is an int, a pair (of ints or edge arrays), or one array of edges for both axes.

    >>> h, xe, ye = fnp.histogram2d(fnp.array([0., 1., 1.]), fnp.array([0., 1., 0.]), bins=2)
    >>> h
    Array([[1, 0],
           [1, 1]], dtype=int32)
    """
    x, y = to_array(x, "histogram2d"), to_array(y, "histogram2d")
    if get_aval(x).ndim != 1 or get_aval(x).shape != get_aval(y).shape:
        raise ValueError(f"histogram2d: x and y must be 1-D of one length, got shapes {get_aval(x).shape} and "
                         f"{get_aval(y).shape}")
    try:
        count = len(bins)
    except TypeError:
        count = 1
    if count not in (1, 2):   # one array of edges, for both axes
        bins = [bins, bins]
    dtype = dtypes.promote((get_aval(x).dtype, False), (get_aval(y).dtype, False))[0]
    sample = lax.concatenate([reshape(v.astype(dtype), (-1, 1)) for v in (x, y)], 1)
    hist, (x_edges, y_edges) = histogramdd(sample, bins, range, weights, density)
    return hist, x_edges, y_edges
