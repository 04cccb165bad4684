"""Index tricks and array construction: indices, tri/diag index helpers, (un)ravel_index, ix_,
r_/c_/mgrid/ogrid, select/piecewise/choose, compress/extract, append/insert/delete, block,
functional updates (fill_diagonal, put, put_along_axis), vander, resize, splits,
apply_along_axis/apply_over_axes/vectorize, lexsort and partition.

Compositions of fgrad.numpy / fgrad.lax functions (eager, native under ``jit``, ``grad``,
``vmap``). Arguments that set an output's shape (``insert``/``delete`` positions, ``kth``,
grid slices) must be static, as in JAX; functional updates need ``inplace=False`` as in JAX.
"""
from __future__ import annotations

import functools
import math
import re
from typing import Any

import numpy as np

from fgrad import lax
from fgrad.core import dtypes
from fgrad.core.trace import ConcretizationError, Tracer, get_aval
from fgrad.numpy._creation import arange, full, linspace, meshgrid, zeros
from fgrad.numpy._indexing import _concrete_value, take, take_along_axis
from fgrad.numpy._manip import (_slice_axis, atleast_1d, broadcast_arrays, broadcast_shapes, broadcast_to,
                                concatenate, diag, flip, moveaxis, ravel, reshape, split, stack, swapaxes, tile)
from fgrad.numpy._math import _to_bool, clip, conj, floor_divide, remainder, where_select
from fgrad.numpy._linalg import matmul
from fgrad.numpy._sorting import argsort, nonzero
from fgrad.numpy._util import (array, asarray, canonical_axis, host_to_array, is_array, normalize_shape,
                               optional_dtype, reject_out, static_int, to_array)
from fgrad.ops import sort as sort_ops
from fgrad.transforms.vmap import vmap

__all__ = ["indices", "tril_indices", "tril_indices_from", "triu_indices", "triu_indices_from",
           "diag_indices", "diag_indices_from", "mask_indices", "unravel_index", "ravel_multi_index", "ix_",
           "r_", "c_", "mgrid", "ogrid", "select", "piecewise", "choose", "compress", "extract", "append",
           "insert", "delete", "block", "copy", "fill_diagonal", "put_along_axis", "put", "vander",
           "diagflat", "resize", "rollaxis", "hsplit", "vsplit", "dsplit", "trim_zeros",
           "apply_along_axis", "apply_over_axes", "vectorize", "matvec", "vecmat", "lexsort",
           "partition", "argpartition", "place", "fromfunction"]

_INT = dtypes.default_int


def _static_array(op: str, x: Any, what: str) -> np.ndarray:
    """The host value of ``x``; a ConcretizationError naming ``op`` when it is traced."""
    if isinstance(x, Tracer):
        return _concrete_value(x, lambda: ConcretizationError(
            f"{op}: {what} must be static (it sets the result's shape), but it is traced "
            f"({get_aval(x).str_short()}); pass a Python value or a NumPy array"))
    return np.asarray(x)


# --- index arrays ----------------------------------------------------------------------------------

def indices(dimensions, dtype=None, sparse=False):
    """``jax.numpy.indices(dimensions, dtype=None, sparse=False)``: the index grid of a shape, as
    one ``(len(dimensions), *dimensions)`` array (a tuple of broadcastable arrays when sparse)."""
    dims = normalize_shape("indices", dimensions)
    dtype = optional_dtype(dtype) or _INT()
    grids = []
    for i, n in enumerate(dims):
        shape = tuple(n if j == i else 1 for j in range(len(dims)))
        grid = lax.reshape(lax.iota(dtype, n), shape)
        grids.append(grid if sparse else broadcast_to(grid, dims))
    if sparse:
        return tuple(grids)
    return stack(grids) if grids else zeros((0,), dtype)


def _host_indices(*arrays: np.ndarray) -> tuple:
    return tuple(host_to_array(np.asarray(a), _INT()) for a in arrays)


def tril_indices(n, k=0, m=None):
    """``jax.numpy.tril_indices(n, k=0, m=None)``: row and column indices of the lower triangle."""
    n, k = static_int("tril_indices", "n", n), static_int("tril_indices", "k", k)
    m = n if m is None else static_int("tril_indices", "m", m)
    return _host_indices(*np.tril_indices(n, k, m))


def triu_indices(n, k=0, m=None):
    """``jax.numpy.triu_indices(n, k=0, m=None)``: row and column indices of the upper triangle."""
    n, k = static_int("triu_indices", "n", n), static_int("triu_indices", "k", k)
    m = n if m is None else static_int("triu_indices", "m", m)
    return _host_indices(*np.triu_indices(n, k, m))


def _matrix_shape(op: str, arr) -> tuple[int, int]:
    shape = get_aval(to_array(arr, op)).shape
    if len(shape) != 2:
        raise ValueError(f"{op}: input must be 2-d, got shape {shape}")
    return shape


def tril_indices_from(arr, k=0):
    """``jax.numpy.tril_indices_from(arr, k=0)``: ``tril_indices`` for ``arr``'s (2-d) shape."""
    n, m = _matrix_shape("tril_indices_from", arr)
    return tril_indices(n, k, m)


def triu_indices_from(arr, k=0):
    """``jax.numpy.triu_indices_from(arr, k=0)``: ``triu_indices`` for ``arr``'s (2-d) shape."""
    n, m = _matrix_shape("triu_indices_from", arr)
    return triu_indices(n, k, m)


def diag_indices(n, ndim=2):
    """``jax.numpy.diag_indices(n, ndim=2)``: ``ndim`` copies of ``arange(n)``, indexing the main
    diagonal of an ``(n,) * ndim`` array."""
    n, ndim = static_int("diag_indices", "n", n), static_int("diag_indices", "ndim", ndim)
    if n < 0 or ndim < 0:
        raise ValueError(f"diag_indices: n and ndim must be non-negative, got n={n}, ndim={ndim}")
    return (arange(n),) * ndim


def diag_indices_from(arr):
    """``jax.numpy.diag_indices_from(arr)``: ``diag_indices`` for a square (all sides equal) array."""
    shape = get_aval(to_array(arr, "diag_indices_from")).shape
    if len(shape) < 2 or len(set(shape)) != 1:
        raise ValueError(f"diag_indices_from: input must be at least 2-d with all sides equal, got {shape}")
    return diag_indices(shape[0], len(shape))


def mask_indices(n, mask_func, k=0, *, size=None):
    """``jax.numpy.mask_indices(n, mask_func, k=0, *, size=None)``: the indices where
    ``mask_func(ones((n, n)), k)`` is non-zero (``size`` as in ``nonzero``)."""
    n = static_int("mask_indices", "n", n)
    return nonzero(mask_func(full((n, n), 1, _INT()), k), size=size)


def unravel_index(indices, shape):
    """``jax.numpy.unravel_index(indices, shape)``: flat indices as a tuple of coordinate arrays.
    As in JAX, negative indices in ``[-size, 0)`` count from the end and others out of range
    are clamped to the first / last element."""
    idx = to_array(indices, "unravel_index")
    if get_aval(idx).dtype.kind not in "iu":
        raise TypeError(f"unravel_index: indices must be integers, got {get_aval(idx).str_short()}")
    dims = normalize_shape("unravel_index", shape)
    coords: list[Any] = [None] * len(dims)
    rest = idx
    for i in reversed(range(len(dims))):
        coords[i], rest = remainder(rest, dims[i]), floor_divide(rest, dims[i])
    above = lax.gt(rest, get_aval(rest).dtype.type(0))
    below = lax.lt(rest, get_aval(rest).dtype.type(-1)) if get_aval(idx).dtype.kind == "i" else None
    out = []
    for n, c in zip(dims, coords):
        c = where_select(above, n - 1, c)
        out.append(c if below is None else where_select(below, 0, c))
    return tuple(out)


def ravel_multi_index(multi_index, dims, mode="raise", order="C"):
    """``jax.numpy.ravel_multi_index(multi_index, dims, mode='raise', order='C')``: coordinate
    arrays to flat indices. ``mode`` 'raise' (needs concrete indices), 'wrap', 'clip' or
    'ignore'; ``order`` 'C' or 'F'."""
    dims = normalize_shape("ravel_multi_index", dims)
    if len(multi_index) != len(dims):
        raise ValueError(f"ravel_multi_index: got {len(multi_index)} index arrays for {len(dims)} dims")
    arrays = [to_array(i, "ravel_multi_index") for i in multi_index]
    for a in arrays:
        if get_aval(a).dtype.kind not in "iu":
            raise TypeError(f"ravel_multi_index: only integer indices are allowed, got {get_aval(a).str_short()}")
    if mode == "raise":
        for a, d in zip(arrays, dims):
            value = _static_array("ravel_multi_index", a, "indices with mode='raise' (use 'wrap' or 'clip')")
            if np.any((value < 0) | (value >= d)):
                raise ValueError(f"ravel_multi_index: invalid entry in coordinates array (dims {dims}); "
                                 "pass mode='wrap' or mode='clip' to map it into range")
    elif mode == "clip":
        arrays = [clip(a, 0, d - 1) for a, d in zip(arrays, dims)]
    elif mode == "wrap":
        arrays = [remainder(a, d) for a, d in zip(arrays, dims)]
    elif mode != "ignore":
        raise ValueError(f"ravel_multi_index: mode must be 'raise', 'wrap', 'clip' or 'ignore', got {mode!r}")
    if order not in ("C", "F"):
        raise ValueError(f"ravel_multi_index: order must be 'C' or 'F', got {order!r}")
    sizes = dims if order == "F" else dims[::-1]
    strides = np.cumprod((1,) + sizes[:-1]).tolist()
    strides = strides if order == "F" else strides[::-1]
    out = asarray(0, _INT())
    for a, s in zip(arrays, strides):
        out = out + lax.convert_element_type(a, _INT()) * int(s)
    return out


def ix_(*args):
    """``jax.numpy.ix_(*args)``: 1-d index arrays reshaped to index an open mesh (``a[ix_(i, j)]``
    selects the cross product); boolean arrays become their (concrete) nonzero indices."""
    out = []
    for i, a in enumerate(args):
        a = to_array(a, "ix_")
        if get_aval(a).ndim != 1:
            raise ValueError(f"ix_: arguments must be 1-d, got shape {get_aval(a).shape} at position {i}")
        if get_aval(a).dtype == dtypes.bool_:
            a = nonzero(a)[0]
        out.append(reshape(a, tuple(-1 if j == i else 1 for j in range(len(args)))))
    return tuple(out)


# --- grids and concatenation by slices -------------------------------------------------------------

def _slice_values(op: str, s: slice):
    """``arange`` for a static slice, or ``linspace`` (end included) when its step is imaginary."""
    start = 0 if s.start is None else s.start
    step = 1 if s.step is None else s.step
    for v in (start, s.stop, step):
        if isinstance(v, Tracer):
            raise ConcretizationError(f"{op}: slice bounds must be static numbers, got a traced value")
    if isinstance(step, complex):
        return linspace(start, s.stop, int(abs(step)), endpoint=True)
    return arange(start, s.stop, step)


class _Grid:
    """``mgrid[...]`` / ``ogrid[...]``: dense or open grids from static slices."""

    def __init__(self, sparse: bool, name: str):
        self.sparse, self.name = sparse, name

    def __getitem__(self, key):
        if isinstance(key, slice):
            return _slice_values(self.name, key)
        ranges = [_slice_values(self.name, k) for k in key]
        if any(get_aval(r).dtype != get_aval(ranges[0]).dtype for r in ranges):
            ranges = [lax.convert_element_type(r, dtypes.default_float()) for r in ranges]
        grids = meshgrid(*ranges, indexing="ij", sparse=self.sparse)
        return list(grids) if self.sparse else stack(grids)

    def __repr__(self) -> str:
        return f"fgrad.numpy.{self.name}"


mgrid = _Grid(False, "mgrid")
ogrid = _Grid(True, "ogrid")


def _directive(op: str, text: str) -> tuple[int, int, int]:
    if text in ("r", "c"):
        raise ValueError(f"{op}: the matrix directives 'r' and 'c' are not supported (fgrad, like JAX, has "
                         "no matrix class); use fnp.atleast_2d")
    try:
        parts = [int(p) for p in text.split(",")]
    except ValueError:
        raise ValueError(f"{op}: could not understand the directive {text!r}; expected 'axis', "
                         "'axis,ndmin' or 'axis,ndmin,trans1d'") from None
    return tuple(parts + [0, 1, -1][len(parts):])[:3]


def _with_ndmin(x, ndmin: int, trans1d: int):
    """NumPy's AxisConcatenator: ``x`` given ``ndmin`` dimensions, its own axes placed at ``trans1d``."""
    ndim = get_aval(x).ndim
    if ndim >= ndmin:
        return x
    x = array(x, ndmin=ndmin)
    if trans1d == -1:
        return x
    k2, k1 = ndmin - ndim, trans1d
    k1 = k1 + k2 + 1 if k1 < 0 else k1
    order = list(range(ndmin))
    return lax.transpose(x, tuple(order[:k1] + order[k2:] + order[k1:k2]))


class _AxisConcatenator:
    """``r_[...]`` / ``c_[...]``: arrays, scalars and static slices joined along an axis."""

    def __init__(self, name: str, axis: int, ndmin: int, trans1d: int):
        self.name, self.axis, self.ndmin, self.trans1d = name, axis, ndmin, trans1d

    def __getitem__(self, key):
        items = list(key) if isinstance(key, tuple) else [key]
        axis, ndmin, trans1d = self.axis, self.ndmin, self.trans1d
        if items and isinstance(items[0], str):
            axis, ndmin, trans1d = _directive(self.name, items.pop(0))
        pieces = []
        for item in items:
            if isinstance(item, str):
                raise ValueError(f"{self.name}: a string directive may only come first, got {item!r}")
            if isinstance(item, slice):
                piece = _slice_values(self.name, item)
                if ndmin > 1:
                    piece = array(piece, ndmin=ndmin)
                    if trans1d != -1:
                        piece = swapaxes(piece, -1, trans1d)
            else:
                piece = _with_ndmin(asarray(item), ndmin, trans1d)
            pieces.append(atleast_1d(piece) if get_aval(piece).ndim == 0 else piece)
        if not pieces:
            return zeros((0,), dtypes.default_float())
        return concatenate(pieces, axis=axis)

    def __len__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return f"fgrad.numpy.{self.name}"


r_ = _AxisConcatenator("r_", 0, 1, -1)
c_ = _AxisConcatenator("c_", -1, 2, 0)


# --- selection -------------------------------------------------------------------------------------

def select(condlist, choicelist, default=0):
    """``jax.numpy.select(condlist, choicelist, default=0)``: per element, the choice of the first
    true condition (``default`` where none is)."""
    if len(condlist) != len(choicelist):
        raise ValueError(f"select: condlist and choicelist must have the same length, got "
                         f"{len(condlist)} and {len(choicelist)}")
    if len(condlist) == 0:
        raise ValueError("select: condlist must not be empty")
    out = default
    for cond, choice in reversed(list(zip(condlist, choicelist))):
        out = where_select(cond, choice, out)
    shapes = [get_aval(to_array(v)).shape for v in list(condlist) + list(choicelist) + [default]]
    return broadcast_to(out, broadcast_shapes(*shapes))


def piecewise(x, condlist, funclist, *args, **kw):
    """``jax.numpy.piecewise(x, condlist, funclist, *args, **kw)``: ``funclist[i]`` (a callable,
    called as ``f(x, *args, **kw)`` on the whole array, or a constant) where ``condlist[i]``
    holds, later conditions winning; one extra entry of ``funclist`` covers the rest (else 0).
    Results are cast to ``x``'s dtype."""
    x = to_array(x, "piecewise")
    conds = [condlist] if is_array(condlist) and get_aval(condlist).ndim == get_aval(x).ndim else list(condlist)
    n = len(conds)
    if len(funclist) not in (n, n + 1):
        raise ValueError(f"piecewise: funclist needs {n} or {n + 1} entries for {n} conditions, got "
                         f"{len(funclist)}")
    dtype = get_aval(x).dtype

    def value(f):
        out = f(x, *args, **kw) if callable(f) else f
        return lax.convert_element_type(broadcast_to(asarray(out), get_aval(x).shape), dtype)
    out = value(funclist[n]) if len(funclist) == n + 1 else lax.full(get_aval(x).shape, 0, dtype)
    for cond, f in zip(conds, funclist):
        out = where_select(cond, value(f), out)
    return out


def choose(a, choices, out=None, mode="raise"):
    """``jax.numpy.choose(a, choices, out=None, mode='raise')``: ``choices[a[i]][i]`` (all
    broadcast); ``mode`` 'raise' (needs a concrete ``a``), 'wrap' or 'clip'."""
    if out is not None:
        raise TypeError("choose: the out= argument is not supported (fgrad arrays are immutable)")
    a = to_array(a, "choose")
    n = len(choices)
    if mode == "raise":
        value = _static_array("choose", a, "a with mode='raise' (use mode='wrap' or 'clip')")
        if np.any((value < 0) | (value >= n)):
            raise ValueError(f"choose: invalid entry in choice array (choices has {n} entries); "
                             "pass mode='wrap' or mode='clip'")
    elif mode == "wrap":
        a = remainder(a, n)
    elif mode == "clip":
        a = clip(a, 0, n - 1)
    else:
        raise ValueError(f"choose: mode must be 'raise', 'wrap' or 'clip', got {mode!r}")
    a, *rest = broadcast_arrays(a, *choices)
    stacked = stack(rest)
    return take_along_axis(stacked, reshape(a, (1,) + get_aval(a).shape), axis=0)[0]


def compress(condition, a, axis=None, *, out=None, size=None, fill_value=0):
    """``jax.numpy.compress(condition, a, axis=None, *, out=None, size=None, fill_value=0)``: the
    slices of ``a`` along ``axis`` (the flattened array when None) where the 1-d ``condition``
    is true. The count depends on the values: pass ``size`` (padding with ``fill_value``) under jit."""
    reject_out("compress", out)
    condition = _to_bool(to_array(condition, "compress"))
    if get_aval(condition).ndim != 1:
        raise ValueError(f"compress: condition must be 1-d, got shape {get_aval(condition).shape}")
    a = to_array(a, "compress")
    if axis is None:
        a, axis = ravel(a), 0
    axis = canonical_axis("compress", axis, get_aval(a).ndim)
    n, length = get_aval(a).shape[axis], get_aval(condition).shape[0]
    if length > n:
        if not isinstance(condition, Tracer) and np.any(np.asarray(condition)[n:]):
            raise ValueError(f"compress: condition has {length} entries but axis {axis} has only {n}; "
                             "entries past the end must be False")
        condition = condition[:n]
    if size is not None and not 0 <= static_int("compress", "size", size) <= n:
        raise ValueError(f"compress: size must be in [0, {n}] (the axis length), got {size}")
    if length < n:
        condition = concatenate([condition, lax.full((n - length,), False, dtypes.bool_)])
    (positions,) = nonzero(condition, size=size, fill_value=n)
    return take(a, positions, axis=axis, mode="fill", fill_value=fill_value)


def extract(condition, arr, *, size=None, fill_value=0):
    """``jax.numpy.extract(condition, arr, *, size=None, fill_value=0)``: the elements of ``arr``
    where ``condition`` is true, flattened (``size`` as in ``compress``)."""
    return compress(ravel(to_array(condition, "extract")), ravel(to_array(arr, "extract")), size=size,
                    fill_value=fill_value)


# --- joining and removing ------------------------------------------------------------------------------

def append(arr, values, axis=None):
    """``jax.numpy.append(arr, values, axis=None)``: ``values`` joined to the end of ``arr`` (both
    flattened when ``axis`` is None)."""
    arr, values = to_array(arr, "append"), to_array(values, "append")
    if axis is None:
        return concatenate([ravel(arr), ravel(values)])
    return concatenate([arr, values], axis=axis)


def _positions(op: str, obj, n: int) -> np.ndarray:
    """A static int, slice, int sequence or boolean mask over ``n`` positions, as an int array."""
    if isinstance(obj, slice):
        return np.arange(n)[obj]
    value = _static_array(op, obj, "the positions (obj)")
    if value.dtype == np.bool_:
        if value.shape != (n,):
            raise ValueError(f"{op}: a boolean obj needs shape ({n},), got {value.shape}")
        return np.nonzero(value)[0]
    if value.dtype.kind not in "iu":
        raise IndexError(f"{op}: obj must be integers, a slice or a boolean mask, got dtype {value.dtype}")
    return value.astype(np.int64)


def insert(arr, obj, values, axis=None):
    """``jax.numpy.insert(arr, obj, values, axis=None)``: ``values`` inserted before the static
    position(s) ``obj`` along ``axis`` (of the flattened array when None), as NumPy does."""
    arr = to_array(arr, "insert")
    if axis is None:
        arr, axis = ravel(arr), 0
    axis = canonical_axis("insert", axis, get_aval(arr).ndim)
    shape, n = get_aval(arr).shape, get_aval(arr).shape[axis]
    values = lax.convert_element_type(to_array(values, "insert"), get_aval(arr).dtype)
    where = _positions("insert", obj, n)
    one = where.size == 1
    scalar = np.ndim(where) == 0 and not isinstance(obj, slice)
    where = np.where(where < 0, where + n, where).reshape(-1)
    if np.any((where < 0) | (where > n)):
        raise IndexError(f"insert: index {obj} is out of bounds for axis {axis} with size {n}")
    values = array(values, ndmin=len(shape))
    if scalar:
        values = moveaxis(values, 0, axis)
    count = get_aval(values).shape[axis] if one else len(where)
    if one:
        where = np.repeat(where, count)
    values = broadcast_to(values, tuple(count if i == axis else s for i, s in enumerate(shape)))
    order = np.argsort(where, kind="stable")
    new_at = np.empty(count, np.int64)
    new_at[order] = where[order] + np.arange(count)
    source = np.empty(n + count, np.int64)
    old_mask = np.ones(n + count, bool)
    old_mask[new_at] = False
    source[old_mask] = np.arange(n)
    source[new_at] = n + np.arange(count)
    joined = concatenate([arr, values], axis=axis)
    return take(joined, host_to_array(source, _INT()), axis=axis)


def delete(arr, obj, axis=None, *, assume_unique_indices=False):
    """``jax.numpy.delete(arr, obj, axis=None, *, assume_unique_indices=False)``: ``arr`` without
    the static position(s) ``obj`` (int, slice, int sequence or boolean mask) along ``axis``
    (the flattened array when None); out-of-range positions raise, as in NumPy."""
    arr = to_array(arr, "delete")
    if axis is None:
        arr, axis = ravel(arr), 0
    axis = canonical_axis("delete", axis, get_aval(arr).ndim)
    n = get_aval(arr).shape[axis]
    drop = _positions("delete", obj, n).reshape(-1)
    if np.any((drop < -n) | (drop >= n)):
        raise IndexError(f"delete: index {obj} is out of bounds for axis {axis} with size {n}")
    keep = np.ones(n, bool)
    keep[drop] = False
    return take(arr, host_to_array(np.nonzero(keep)[0], _INT()), axis=axis)


def _block_depth(x) -> int:
    if isinstance(x, list):
        if not x:
            raise ValueError("block: lists must not be empty")
        depths = {_block_depth(v) for v in x}
        if len(depths) != 1:
            raise ValueError("block: list depths are mismatched; every leaf must be nested equally deep")
        return 1 + depths.pop()
    if isinstance(x, tuple):
        raise TypeError("block: arrays must be nested in lists, not tuples")
    return 0


def _max_ndim(x) -> int:
    return max(_max_ndim(v) for v in x) if isinstance(x, list) else get_aval(to_array(x, "block")).ndim


def _block(x, depth: int, ndim: int):
    if not isinstance(x, list):
        return array(to_array(x, "block"), ndmin=ndim)
    return concatenate([_block(v, depth - 1, ndim) for v in x], axis=-depth)


def block(arrays):
    """``jax.numpy.block(arrays)``: an array assembled from nested lists of blocks; the innermost
    lists join along the last axis, the next ones along the second-to-last, and so on."""
    depth = _block_depth(arrays)
    if depth == 0:
        return to_array(arrays, "block")
    return _block(arrays, depth, max(depth, _max_ndim(arrays)))


def copy(a, order=None):
    """``jax.numpy.copy(a, order=None)``: ``a`` as an fgrad array (fgrad arrays are immutable, so
    no copy of data is needed to be safe)."""
    return asarray(a)


# --- functional updates -------------------------------------------------------------------------------

def _check_not_inplace(op: str, inplace: bool) -> None:
    if inplace:
        raise ValueError(f"{op}: fgrad arrays are immutable, so {op} cannot modify one in place; pass "
                         "inplace=False to get the updated array back (as in JAX)")


def fill_diagonal(a, val, wrap=False, *, inplace=True):
    """``jax.numpy.fill_diagonal(a, val, wrap=False, *, inplace=True)``: ``a`` with its main
    diagonal set to ``val`` (repeated as needed). Needs ``inplace=False``; ``wrap=True`` is not
    supported (as in JAX)."""
    _check_not_inplace("fill_diagonal", inplace)
    if wrap:
        raise NotImplementedError("fill_diagonal: wrap=True is not supported (as in JAX); pass wrap=False")
    a = to_array(a, "fill_diagonal")
    shape = get_aval(a).shape
    if len(shape) < 2 or (len(shape) > 2 and len(set(shape)) != 1):
        raise ValueError(f"fill_diagonal: array must be at least 2-d, with all sides equal when more than "
                         f"2-d; got shape {shape}")
    n = min(shape)
    val = to_array(val, "fill_diagonal")
    if get_aval(val).ndim:
        flat = ravel(val)
        reps = -(-n // max(get_aval(flat).shape[0], 1))
        val = tile(flat, reps)[:n]
    return a.at[diag_indices(n, len(shape))].set(val)


def put_along_axis(arr, indices, values, axis, inplace=True, *, mode=None):
    """``jax.numpy.put_along_axis(arr, indices, values, axis, inplace=True, *, mode=None)``: the
    functional inverse of ``take_along_axis`` (needs ``inplace=False``); out-of-range indices
    are dropped unless ``mode='clip'``."""
    _check_not_inplace("put_along_axis", inplace)
    arr, indices = to_array(arr, "put_along_axis"), to_array(indices, "put_along_axis")
    if axis is None:
        arr, indices, axis = ravel(arr), ravel(indices), 0
    shape = get_aval(arr).shape
    axis = canonical_axis("put_along_axis", axis, len(shape))
    if get_aval(indices).ndim != len(shape):
        raise ValueError(f"put_along_axis: indices must have the array's rank {len(shape)}, got shape "
                         f"{get_aval(indices).shape}")
    ishape = broadcast_shapes(tuple(1 if i == axis else s for i, s in enumerate(shape)), get_aval(indices).shape)
    index = []
    for d in range(len(shape)):
        if d == axis:
            index.append(broadcast_to(indices, ishape))
        else:
            grid = reshape(lax.iota(_INT(), ishape[d]), tuple(-1 if i == d else 1 for i in range(len(shape))))
            index.append(broadcast_to(grid, ishape))
    return arr.at[tuple(index)].set(values, mode=mode)


def put(a, ind, v, mode=None, *, inplace=True):
    """``jax.numpy.put(a, ind, v, mode=None, *, inplace=True)``: ``a`` with its flattened elements
    at ``ind`` replaced by ``v`` (cycled to ``ind``'s size); needs ``inplace=False``. ``mode``
    None/'fill'/'drop' drops out-of-range indices, 'clip' clamps, 'wrap' wraps ('raise' is not
    supported, as in JAX)."""
    _check_not_inplace("put", inplace)
    a = to_array(a, "put")
    flat, ind = ravel(a), ravel(to_array(ind, "put"))
    v = ravel(to_array(v, "put"))
    count, nv = get_aval(ind).shape[0], get_aval(v).shape[0]
    if nv == 0:
        return a
    if nv != count:
        v = tile(v, -(-count // nv))[:count]
    n = get_aval(flat).shape[0]
    if mode == "wrap":
        ind, mode = remainder(ind, n), None
    elif mode == "clip":   # as JAX: clamp first, so -1 means 0 (the .at clip would wrap it first)
        ind, mode = clip(ind, 0, n - 1), None
    elif mode == "raise":
        raise NotImplementedError("put: mode='raise' is not supported (as in JAX); use 'clip', 'wrap' or None")
    elif mode not in (None, "fill", "drop", "clip"):
        raise ValueError(f"put: mode must be None, 'fill', 'drop', 'clip' or 'wrap', got {mode!r}")
    updated = flat.at[ind].set(v, mode="drop" if mode == "fill" else mode)
    return reshape(updated, get_aval(a).shape)


# --- construction ----------------------------------------------------------------------------------

def vander(x, N=None, increasing=False):
    """``jax.numpy.vander(x, N=None, increasing=False)``: the Vandermonde matrix of the 1-d ``x``,
    columns ``x**(N-1), ..., x, 1`` (reversed when ``increasing``), by repeated products in
    ``x``'s dtype (as JAX)."""
    x = to_array(x, "vander")
    if get_aval(x).ndim != 1:
        raise ValueError(f"vander: x must be 1-d, got shape {get_aval(x).shape}")
    n = get_aval(x).shape[0] if N is None else static_int("vander", "N", N)
    if n < 0:
        raise ValueError(f"vander: N must be non-negative, got {n}")
    m = get_aval(x).shape[0]
    cols = [lax.full((m,), 1, get_aval(x).dtype)] if n else []
    for _ in range(1, n):
        cols.append(lax.mul(cols[-1], x))
    out = stack(cols, axis=1) if cols else zeros((m, 0), get_aval(x).dtype)
    return out if increasing else flip(out, axis=1)


def diagflat(v, k=0):
    """``jax.numpy.diagflat(v, k=0)``: a 2-d array with the flattened ``v`` on its ``k``-th diagonal."""
    return diag(ravel(to_array(v, "diagflat")), k)


def resize(a, new_shape):
    """``jax.numpy.resize(a, new_shape)``: ``a`` flattened, repeated cyclically to fill
    ``new_shape`` (zeros when ``a`` is empty)."""
    a = ravel(to_array(a, "resize"))
    shape = normalize_shape("resize", new_shape)
    size, n = math.prod(shape), get_aval(a).shape[0]
    if n == 0:
        return lax.full(shape, 0, get_aval(a).dtype)
    if size > n:
        a = tile(a, -(-size // n))
    return reshape(a[:size], shape)


def rollaxis(a, axis, start=0):
    """``jax.numpy.rollaxis(a, axis, start=0)``: ``axis`` moved to lie before ``start`` (prefer
    ``moveaxis``)."""
    a = to_array(a, "rollaxis")
    ndim = get_aval(a).ndim
    axis = canonical_axis("rollaxis", axis, ndim)
    start = static_int("rollaxis", "start", start)
    if not -ndim <= start <= ndim:
        raise np.exceptions.AxisError(f"rollaxis: start {start} is out of bounds for an array of dimension {ndim}")
    start = start + ndim if start < 0 else start
    if start > axis:
        start -= 1
    return moveaxis(a, axis, start) if axis != start else a


def _split_along(op: str, ary, indices_or_sections, axis: int, min_ndim: int):
    ary = to_array(ary, op)
    if get_aval(ary).ndim < min_ndim:
        raise ValueError(f"{op}: only works on arrays of {min_ndim} or more dimensions, got shape "
                         f"{get_aval(ary).shape}")
    return split(ary, indices_or_sections, axis=axis)


def hsplit(ary, indices_or_sections):
    """``jax.numpy.hsplit(ary, indices_or_sections)``: split along axis 1 (axis 0 for 1-d)."""
    ary = to_array(ary, "hsplit")
    return _split_along("hsplit", ary, indices_or_sections, 1 if get_aval(ary).ndim > 1 else 0, 1)


def vsplit(ary, indices_or_sections):
    """``jax.numpy.vsplit(ary, indices_or_sections)``: split along axis 0 (arrays of 2+ dims)."""
    return _split_along("vsplit", ary, indices_or_sections, 0, 2)


def dsplit(ary, indices_or_sections):
    """``jax.numpy.dsplit(ary, indices_or_sections)``: split along axis 2 (arrays of 3+ dims)."""
    return _split_along("dsplit", ary, indices_or_sections, 2, 3)


def trim_zeros(filt, trim="fb"):
    """``jax.numpy.trim_zeros(filt, trim='fb')``: the 1-d ``filt`` without its leading ('f') and/or
    trailing ('b') zeros. The result's length depends on the values, so ``filt`` must be
    concrete (not traced), as in JAX."""
    filt = to_array(filt, "trim_zeros")
    if get_aval(filt).ndim != 1:
        raise ValueError(f"trim_zeros: filt must be 1-d, got shape {get_aval(filt).shape}")
    value = _static_array("trim_zeros", filt, "filt")
    nz = np.nonzero(value)[0]
    if nz.size == 0:
        return filt[:0]
    start = int(nz[0]) if "f" in trim.lower() else 0
    stop = int(nz[-1]) + 1 if "b" in trim.lower() else value.shape[0]
    return filt[start:stop]


# --- applying functions ------------------------------------------------------------------------------

def apply_along_axis(func1d, axis, arr, *args, **kwargs):
    """``jax.numpy.apply_along_axis(func1d, axis, arr, *args, **kwargs)``: ``func1d`` applied to
    each 1-d slice along ``axis`` (by ``vmap`` over the other axes); its output dims take the
    place of ``axis``."""
    arr = to_array(arr, "apply_along_axis")
    ndim = get_aval(arr).ndim
    axis = canonical_axis("apply_along_axis", axis, ndim)

    def func(x):
        return func1d(x, *args, **kwargs)
    for i in range(1, ndim - axis):
        func = vmap(func, in_axes=i, out_axes=-1)
    for _ in range(axis):
        func = vmap(func, in_axes=0, out_axes=0)
    return func(arr)


def apply_over_axes(func, a, axes):
    """``jax.numpy.apply_over_axes(func, a, axes)``: ``a = func(a, axis)`` for each axis in turn,
    a reduced axis put back as size 1."""
    a = to_array(a, "apply_over_axes")
    for axis in [axes] if isinstance(axes, int) else axes:
        b = func(a, axis)
        if get_aval(b).ndim == get_aval(a).ndim - 1:
            b = lax.expand_dims(b, (canonical_axis("apply_over_axes", axis, get_aval(a).ndim),))
        elif get_aval(b).ndim != get_aval(a).ndim:
            raise ValueError("apply_over_axes: func must return an array of the same rank or one less, got "
                             f"shape {get_aval(b).shape} from shape {get_aval(a).shape}")
        a = b
    return a


_DIM = r"\w+"
_ARGS = rf"\((?:{_DIM}(?:,{_DIM})*)?\)"
_ARG_LIST = rf"{_ARGS}(?:,{_ARGS})*"
_SIGNATURE = re.compile(rf"^{_ARG_LIST}->{_ARG_LIST}$")


def _parse_signature(signature: str) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    compact = signature.replace(" ", "")
    if not _SIGNATURE.match(compact):
        raise ValueError(f"vectorize: not a valid gufunc signature: {signature!r} (e.g. '(m,n),(n)->(m)')")
    ins, outs = compact.split("->")
    parse = lambda part: [tuple(re.findall(_DIM, arg)) for arg in re.findall(_ARGS, part)]  # noqa: E731
    return parse(ins), parse(outs)


def _core_sizes(args, in_core) -> dict:
    sizes: dict = {}
    for i, (arg, core) in enumerate(zip(args, in_core)):
        shape = get_aval(arg).shape
        if len(shape) < len(core):
            raise ValueError(f"vectorize: argument {i} has shape {shape}, fewer dims than its core "
                             f"dims {core}")
        for name, size in zip(core, shape[len(shape) - len(core):]):
            if sizes.setdefault(name, size) != size:
                raise ValueError(f"vectorize: core dimension {name!r} has inconsistent sizes "
                                 f"{sizes[name]} and {size}")
    return sizes


def _check_outputs(out, out_core, sizes: dict, multiple: bool) -> None:
    outs = out if multiple else (out,)
    if multiple and (not isinstance(out, tuple) or len(out) != len(out_core)):
        raise ValueError(f"vectorize: the function must return a tuple of {len(out_core)} arrays")
    for o, core in zip(outs, out_core):
        shape = get_aval(to_array(o)).shape
        if len(shape) != len(core):
            raise ValueError(f"vectorize: an output has shape {shape}, expected core dims {core}")
        for name, size in zip(core, shape):
            if sizes.setdefault(name, size) != size:
                raise ValueError(f"vectorize: output core dimension {name!r} has size {size}, expected "
                                 f"{sizes[name]}")


def _map_loop_dims(call, arrays, cores, loop: tuple):
    """``call`` mapped over the ``loop`` dims: a ``vmap`` per dim, which leaves unmapped (``None``)
    the arguments of size 1 there, so nothing is broadcast in memory (as JAX does)."""
    squeezed, reversed_shapes = [], []
    for a, core in zip(arrays, cores):
        shape = get_aval(a).shape
        noncore = shape[:len(shape) - len(core)]
        reversed_shapes.append(((1,) * (len(loop) - len(noncore)) + noncore)[::-1])
        ones_at = tuple(i for i, n in enumerate(noncore) if n == 1)
        squeezed.append(lax.squeeze(a, ones_at) if ones_at else a)
    mapped, expand = call, []
    for from_end, sizes in enumerate(zip(*reversed_shapes)):
        in_axes = tuple(None if n == 1 else 0 for n in sizes)
        if all(axis is None for axis in in_axes):
            expand.append(len(loop) - 1 - from_end)
        else:
            mapped = vmap(mapped, in_axes=in_axes)
    out = mapped(*squeezed)
    if not expand:
        return out
    grow = lambda r: lax.expand_dims(to_array(r), tuple(sorted(expand)))  # noqa: E731
    return tuple(grow(r) for r in out) if isinstance(out, tuple) else grow(out)


def vectorize(pyfunc, *, excluded=frozenset(), signature=None):
    """``jax.numpy.vectorize(pyfunc, *, excluded=frozenset(), signature=None)``: ``pyfunc``
    written for single elements (or, with a gufunc ``signature`` like ``'(n),(n)->()'``, for
    core dims) applied over the broadcast leading dims of its arguments, by ``vmap``.
    ``excluded`` names positional indices or keywords passed through unvectorized; other keywords
    are vectorized like the positional arguments (NumPy's rule; JAX 0.10.2 drops them). Size-1
    loop dims are not broadcast in memory: the ``vmap`` leaves such arguments unmapped."""
    if signature is not None:
        in_core, out_core = _parse_signature(signature)
    else:
        in_core = out_core = None

    @functools.wraps(pyfunc)
    def wrapped(*args, **kwargs):
        fixed_kw = {k: v for k, v in kwargs.items() if k in excluded}
        vec_keys = [k for k in kwargs if k not in excluded]
        vec_pos = [i for i in range(len(args)) if i not in excluded]
        arrays = [to_array(args[i], "vectorize") for i in vec_pos] + [to_array(kwargs[k], "vectorize")
                                                                     for k in vec_keys]
        cores = in_core if in_core is not None else [()] * len(arrays)
        if len(cores) != len(arrays):
            raise TypeError(f"vectorize: the signature has {len(cores)} inputs, got {len(arrays)} "
                            "vectorized arguments")
        sizes = _core_sizes(arrays, cores)
        loop = broadcast_shapes(*[get_aval(a).shape[:get_aval(a).ndim - len(c)] for a, c in zip(arrays, cores)])

        def call(*vals):
            full_args = list(args)
            for i, v in zip(vec_pos, vals):
                full_args[i] = v
            kw = dict(fixed_kw, **dict(zip(vec_keys, vals[len(vec_pos):])))
            out = pyfunc(*full_args, **kw)
            if out_core is not None:
                _check_outputs(out, out_core, dict(sizes), len(out_core) > 1 or isinstance(out, tuple))
            return out
        return _map_loop_dims(call, arrays, cores, loop)
    return wrapped


# --- products, sorting ---------------------------------------------------------------------------------

def matvec(x1, x2, /):
    """``jax.numpy.matvec(x1, x2, /)``: batched matrix-vector products, ``(..., m, n) @ (..., n)``."""
    x2 = to_array(x2, "matvec")
    return matmul(x1, lax.expand_dims(x2, (get_aval(x2).ndim,)))[..., 0]


def vecmat(x1, x2, /):
    """``jax.numpy.vecmat(x1, x2, /)``: batched vector-matrix products ``conj(x1) @ x2``,
    ``(..., n)`` and ``(..., n, m)`` to ``(..., m)``."""
    x1 = conj(to_array(x1, "vecmat"))
    return matmul(lax.expand_dims(x1, (get_aval(x1).ndim - 1,)), x2)[..., 0, :]


def lexsort(keys, axis=-1):
    """``jax.numpy.lexsort(keys, axis=-1)``: indices that sort by the last key, ties broken by the
    one before it, and so on (stable)."""
    keys = list(keys) if not is_array(keys) else [keys[i] for i in range(get_aval(keys).shape[0])]
    if not keys:
        raise TypeError("lexsort: need at least one key")
    keys = broadcast_arrays(*[to_array(k, "lexsort") for k in keys])
    shape = get_aval(keys[0]).shape
    if not shape:
        raise TypeError("lexsort: keys must be at least 1-d")
    axis = canonical_axis("lexsort", axis, len(shape))
    iota = lax.broadcasted_iota(_INT(), shape, axis)
    return sort_ops.sort(tuple(reversed(keys)) + (iota,), dimension=axis, num_keys=len(keys))[-1]


def _partition_operand(op: str, a, kth, axis):
    a = to_array(a, op)
    axis = canonical_axis(op, axis, get_aval(a).ndim)
    n = get_aval(a).shape[axis]
    kth = static_int(op, "kth", kth)
    if not -n <= kth < n:
        raise ValueError(f"{op}: kth {kth} is out of bounds for an axis of length {n}")
    return a, kth % n, axis, n


def partition(a, kth, axis=-1):
    """``jax.numpy.partition(a, kth, axis=-1)``: ``a`` rearranged so that position ``kth`` holds the
    value it would in sorted order, smaller values before it and larger after. As in JAX (its
    top-k), the part before is ascending and the part after descending, equal values taken in
    index order (so gradients at ties reach the same elements); ``kth`` must be static."""
    a, kth, axis, n = _partition_operand("partition", a, kth, axis)
    smallest = _slice_axis(argsort(a, axis=axis), axis, 0, kth + 1)
    largest = _slice_axis(argsort(a, axis=axis, descending=True), axis, 0, n - kth - 1)
    return take_along_axis(a, concatenate([smallest, largest], axis=axis), axis=axis)


def argpartition(a, kth, axis=-1):
    """``jax.numpy.argpartition(a, kth, axis=-1)``: indices that partition ``a`` (see ``partition``):
    the ``kth + 1`` smallest in ascending order (ties by index), then the remaining indices in
    increasing index order, as JAX returns them."""
    a, kth, axis, n = _partition_operand("argpartition", a, kth, axis)
    order = argsort(a, axis=axis)
    bottom = _slice_axis(order, axis, 0, kth + 1)
    rank = argsort(order, axis=axis)
    in_bottom = lax.convert_element_type(lax.le(rank, _INT().type(kth)), _INT())
    rest = _slice_axis(argsort(in_bottom, axis=axis), axis, 0, n - kth - 1)
    # int32 even with x64, as JAX's (argsort's indices are the default int)
    return lax.convert_element_type(concatenate([bottom, rest], axis=axis), dtypes.int32)


# --- more construction and updates ----------------------------------------------------------------

def place(arr, mask, vals, *, inplace=True):
    """``jax.numpy.place(arr, mask, vals, *, inplace=True)``: ``arr`` with the positions where
    ``mask`` is true filled, in order, by ``vals`` (cycled); needs ``inplace=False``."""
    _check_not_inplace("place", inplace)
    arr = to_array(arr, "place")
    mask = _to_bool(broadcast_to(to_array(mask, "place"), get_aval(arr).shape))
    vals = ravel(to_array(vals, "place"))
    count = get_aval(vals).shape[0]
    if count == 0:
        raise ValueError("place: vals must not be empty (there is nothing to place)")
    order = lax.cumsum(lax.convert_element_type(ravel(mask), _INT()), axis=0) - 1
    values = take(vals, remainder(order, count))
    return where_select(mask, reshape(values, get_aval(arr).shape), arr)


def fromfunction(function, shape, *, dtype=float, **kwargs):
    """``jax.numpy.fromfunction(function, shape, *, dtype=float, **kwargs)``: ``function`` called on
    the index of every position (by ``vmap`` over each axis, as JAX does, so it sees scalars)."""
    shape = normalize_shape("fromfunction", shape)
    dtype = dtypes.canonicalize(np.dtype(dtype))
    func = functools.partial(function, **kwargs) if kwargs else function
    for i in range(len(shape)):
        in_axes = [0 if i == j else None for j in range(len(shape))]
        func = vmap(func, in_axes=tuple(in_axes[::-1]))
    return func(*(arange(n, dtype=dtype) for n in shape))
