"""``jax.lax``'s general gather and scatter, which take ``GatherDimensionNumbers`` /
``ScatterDimensionNumbers`` (XLA's windowed forms), written over fgrad's point gather and
scatter primitives (``fgrad.ops.indexing``): every element of a window becomes one index vector
into the operand. Being compositions, they differentiate and batch as those primitives do.

``fgrad.lax.gather`` / ``scatter*`` accept both forms: dimension numbers select JAX's form;
a plain axis or axes select fgrad's point form (``gather(x, indices, axes)``), which existing
fgrad code uses.

Out-of-bounds windows follow ``GatherScatterMode``: CLIP clamps the window's start so the whole
window fits; FILL_OR_DROP fills a gathered window (all of it, if any part is out of bounds) with
``fill_value`` and drops a scattered one whole; PROMISE_IN_BOUNDS gathers as CLIP and scatters
as FILL_OR_DROP (what XLA does).
"""
from __future__ import annotations

import enum
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from fgrad.control_flow import while_loop
from fgrad.core import dtypes
from fgrad.core.trace import get_aval
from fgrad.ops import elementwise as ew
from fgrad.ops import indexing as ix
from fgrad.ops import shape as sh
from fgrad.ops.reduction import reduce_max
from fgrad.ops._util import as_operand

__all__ = ["GatherScatterMode", "GatherDimensionNumbers", "ScatterDimensionNumbers", "gather", "scatter",
           "scatter_add", "scatter_sub", "scatter_mul", "scatter_min", "scatter_max", "scatter_apply",
           "index_take"]

_INT = dtypes.int32


class GatherScatterMode(enum.Enum):
    """``jax.lax.GatherScatterMode``: what a gather or scatter does with out-of-bounds indices
    (see this module's doc). ``ONE_HOT`` (an XLA lowering strategy) is not supported: passing
    it raises."""
    CLIP = 1
    FILL_OR_DROP = 2
    PROMISE_IN_BOUNDS = 3
    ONE_HOT = 4

    @staticmethod
    def from_any(s: Any) -> "GatherScatterMode":
        """The mode named by ``s``: a ``GatherScatterMode``, "clip", "fill"/"drop" (and ``None``),
        "promise_in_bounds" or "one_hot"."""
        if isinstance(s, GatherScatterMode):
            return s
        names = {"clip": GatherScatterMode.CLIP, None: GatherScatterMode.FILL_OR_DROP,
                 "fill": GatherScatterMode.FILL_OR_DROP, "drop": GatherScatterMode.FILL_OR_DROP,
                 "promise_in_bounds": GatherScatterMode.PROMISE_IN_BOUNDS, "one_hot": GatherScatterMode.ONE_HOT}
        if not isinstance(s, (str, type(None))) or s not in names:
            raise ValueError(f'Unknown gather mode "{s}"; use "clip", "fill", "drop" or "promise_in_bounds"')
        return names[s]


class GatherDimensionNumbers(NamedTuple):
    """``jax.lax.GatherDimensionNumbers``: how a windowed gather maps index vectors and windows
    to the operand and the output (XLA's Gather semantics; the index vector is the last axis of
    ``start_indices``)."""
    offset_dims: tuple
    collapsed_slice_dims: tuple
    start_index_map: tuple
    operand_batching_dims: tuple = ()
    start_indices_batching_dims: tuple = ()


class ScatterDimensionNumbers(NamedTuple):
    """``jax.lax.ScatterDimensionNumbers``: how a windowed scatter maps index vectors and update
    windows to the operand (XLA's Scatter semantics)."""
    update_window_dims: Sequence[int]
    inserted_window_dims: Sequence[int]
    scatter_dims_to_operand_dims: Sequence[int]
    operand_batching_dims: Sequence[int] = ()
    scatter_indices_batching_dims: Sequence[int] = ()


def _mode(op: str, mode: Any, default: GatherScatterMode) -> GatherScatterMode:
    parsed = default if mode is None else GatherScatterMode.from_any(mode)
    if parsed is GatherScatterMode.ONE_HOT:
        raise NotImplementedError(f"{op}: mode ONE_HOT (an XLA lowering strategy) is not supported by fgrad; "
                                  "use 'clip' or 'fill'")
    return parsed


def _ints(values: Any) -> tuple:
    return tuple(int(v) for v in values)


def _check_dims(op: str, what: str, dims: tuple, rank: int, sorted_: bool = False) -> None:
    if any(not 0 <= d < rank for d in dims) or len(set(dims)) != len(dims):
        raise TypeError(f"{op}: {what} {dims} must be distinct dimensions in [0, {rank})")
    if sorted_ and list(dims) != sorted(dims):
        raise TypeError(f"{op}: {what} {dims} must be sorted")


# --- the index vectors of every window element ------------------------------------------------------

def _window_indices(op: str, operand_shape: tuple, indices: Any, out_shape: tuple, window_positions: tuple,
                    window_dims: tuple, window_sizes: dict, index_map: tuple, operand_batching: tuple,
                    indices_batching: tuple, clip: bool) -> Any:
    """Index vectors ``out_shape + (rank,)`` into the operand: per operand dimension, the window's
    start (from the index vector, a batch position, or 0) plus the element's offset in the
    window. ``window_dims[i]`` (an operand dimension) varies along output ``window_positions[i]``.
    Windows that do not fit get the index -1 in every element (out of bounds: dropped/filled)
    unless ``clip``, which clamps their start."""
    rank = len(operand_shape)
    batch_positions = [p for p in range(len(out_shape)) if p not in window_positions]
    ind = ew.convert_element_type(indices, _INT) if get_aval(indices).dtype != _INT else indices
    starts, fits = [], None
    for d in range(rank):
        size = window_sizes.get(d, 1)
        if d in index_map:
            vector = sh.squeeze(sh.index_in_dim(ind, index_map.index(d), get_aval(ind).ndim - 1), (get_aval(ind).ndim - 1,))
            start = sh.broadcast_in_dim(vector, out_shape, tuple(batch_positions))
            upper = as_operand(operand_shape[d] - size, _INT)
            if clip:
                start = ew.max(ew.min(start, upper), as_operand(0, _INT))
            else:
                ok = ew.bitwise_and(ew.ge(start, as_operand(0, _INT)), ew.le(start, upper))
                fits = ok if fits is None else ew.bitwise_and(fits, ok)
        elif d in operand_batching:
            start = sh.iota(_INT, out_shape, batch_positions[indices_batching[operand_batching.index(d)]])
        else:
            start = None
        if d in window_dims:
            offset = sh.iota(_INT, out_shape, window_positions[window_dims.index(d)])
            start = offset if start is None else ew.add(start, offset)
        starts.append(sh.full(out_shape, 0, _INT) if start is None else start)
    vectors = sh.concatenate([sh.expand_dims(s, (len(out_shape),)) for s in starts], len(out_shape))
    if fits is not None:
        fits = sh.broadcast_in_dim(fits, out_shape + (rank,), tuple(range(len(out_shape))))
        vectors = ew.select_n(fits, sh.full(out_shape + (rank,), -1, _INT), vectors)
    return vectors


# --- gather -------------------------------------------------------------------------------------------

def gather(operand: Any, start_indices: Any, dimension_numbers: Any, slice_sizes: Sequence[int] | None = None, *,
           unique_indices: bool = False, indices_are_sorted: bool = False, mode: Any = None,
           fill_value: Any = None) -> Any:
    """``jax.lax.gather(operand, start_indices, dimension_numbers, slice_sizes, *,
    unique_indices=False, indices_are_sorted=False, mode=None, fill_value=None)``: XLA's windowed
    gather. ``mode`` defaults to CLIP; FILL_OR_DROP fills with ``fill_value`` (default NaN for
    inexact types, the minimum for signed, the maximum for unsigned, True for bool, as JAX).

    With an axis or axes instead of ``GatherDimensionNumbers`` this is fgrad's point gather
    ``gather(x, indices, axes, mode="clip", fill_value=None)`` (see ``fgrad.ops.indexing.gather``).
    """
    if not isinstance(dimension_numbers, GatherDimensionNumbers):
        if slice_sizes is not None:
            raise TypeError("gather: slice_sizes needs dimension_numbers to be a lax.GatherDimensionNumbers")
        return ix.gather(operand, start_indices, dimension_numbers, mode="clip" if mode is None else mode,
                         fill_value=fill_value)
    if slice_sizes is None:
        raise TypeError("gather: missing slice_sizes (one window size per operand dimension)")
    parsed = _mode("gather", mode, GatherScatterMode.CLIP)
    x, ind = ix._as_indices(operand), ix._as_indices(start_indices)
    aval, ind_aval = get_aval(x), get_aval(ind)
    dn = GatherDimensionNumbers(*(_ints(f) for f in dimension_numbers))
    out_shape, window_dims = _gather_shape(aval.shape, ind_aval, dn, _ints(slice_sizes))
    vectors = _window_indices("gather", aval.shape, ind, out_shape, dn.offset_dims, window_dims,
                              {d: int(s) for d, s in enumerate(slice_sizes)}, dn.start_index_map,
                              dn.operand_batching_dims, dn.start_indices_batching_dims,
                              clip=parsed is not GatherScatterMode.FILL_OR_DROP)
    point_mode = "fill" if parsed is GatherScatterMode.FILL_OR_DROP else "clip"
    if point_mode == "fill" and fill_value is None:
        fill_value = _default_fill(aval.dtype)
    return ix.gather(x, vectors, tuple(range(aval.ndim)), mode=point_mode, fill_value=fill_value)


def _default_fill(dtype: np.dtype) -> Any:
    if dtypes.is_float(dtype) or dtype.kind == "c":
        return float("nan")
    if dtype.kind == "i":
        return int(np.iinfo(dtype).min)
    if dtype.kind == "u":
        return int(np.iinfo(dtype).max)
    return True


def _gather_shape(shape: tuple, ind_aval: Any, dn: GatherDimensionNumbers, slice_sizes: tuple) -> tuple:
    op, rank = "gather", len(shape)
    if ind_aval.dtype.kind not in "iu":
        raise ValueError(f"gather: start_indices must have an integer type, got {ind_aval.dtype.name}")
    if ind_aval.ndim == 0:
        raise TypeError("gather: start_indices must have at least one dimension (the last holds the index vector)")
    if len(slice_sizes) != rank:
        raise TypeError(f"gather: slice_sizes {slice_sizes} must have one entry per operand dimension ({rank})")
    if any(not 0 <= s <= n for s, n in zip(slice_sizes, shape)):
        raise TypeError(f"gather: slice_sizes {slice_sizes} must be in [0, operand shape {shape}]")
    if len(dn.start_index_map) != ind_aval.shape[-1]:
        raise TypeError(f"gather: {len(dn.start_index_map)} elements in start_index_map, but the index vector "
                        f"(the last dimension of start_indices {ind_aval.shape}) has {ind_aval.shape[-1]}; they must "
                        "be equal")
    removed = dn.collapsed_slice_dims + dn.operand_batching_dims
    _check_dims(op, "collapsed_slice_dims + operand_batching_dims", removed, rank)
    _check_dims(op, "start_index_map", dn.start_index_map, rank)
    if set(dn.start_index_map) & set(dn.operand_batching_dims):
        raise TypeError("gather: start_index_map and operand_batching_dims must not share dimensions")
    if any(slice_sizes[d] > 1 for d in removed):
        raise TypeError(f"gather: collapsed and batching dimensions {removed} must have slice size 0 or 1, "
                        f"got slice_sizes {slice_sizes}")
    batch_shape = ind_aval.shape[:-1]
    if len(dn.operand_batching_dims) != len(dn.start_indices_batching_dims):
        raise TypeError("gather: operand_batching_dims and start_indices_batching_dims must have one length")
    _check_dims(op, "start_indices_batching_dims", dn.start_indices_batching_dims, len(batch_shape))
    for d, b in zip(dn.operand_batching_dims, dn.start_indices_batching_dims):
        if shape[d] != batch_shape[b]:
            raise TypeError(f"gather: operand batching dimension {d} (size {shape[d]}) and start_indices batching "
                            f"dimension {b} (size {batch_shape[b]}) must have one size")
    window_dims = tuple(d for d in range(rank) if d not in removed)
    out_rank = len(batch_shape) + len(window_dims)
    _check_dims(op, "offset_dims", dn.offset_dims, out_rank, sorted_=True)
    if len(dn.offset_dims) != len(window_dims):
        raise TypeError(f"gather: offset_dims {dn.offset_dims} must have one entry per operand dimension that is "
                        f"neither collapsed nor batching ({len(window_dims)})")
    batch_iter, window_iter = iter(batch_shape), iter(slice_sizes[d] for d in window_dims)
    out_shape = tuple(next(window_iter) if p in dn.offset_dims else next(batch_iter) for p in range(out_rank))
    return out_shape, window_dims


# --- scatter ------------------------------------------------------------------------------------------

def _scatter_vectors(op: str, x: Any, ind: Any, updates_shape: tuple, dn: ScatterDimensionNumbers,
                     parsed: GatherScatterMode) -> Any:
    aval, ind_aval = get_aval(x), get_aval(ind)
    rank = aval.ndim
    if ind_aval.dtype.kind not in "iu":
        raise ValueError(f"{op}: scatter_indices must have an integer type, got {ind_aval.dtype.name}")
    if ind_aval.ndim == 0:
        raise TypeError(f"{op}: scatter_indices must have at least one dimension (the last holds the index vector)")
    if len(dn.scatter_dims_to_operand_dims) != ind_aval.shape[-1]:
        raise TypeError(f"{op}: scatter_dims_to_operand_dims {dn.scatter_dims_to_operand_dims} must have one entry "
                        f"per element of the index vector (the last dimension of {ind_aval.shape})")
    removed = dn.inserted_window_dims + dn.operand_batching_dims
    _check_dims(op, "inserted_window_dims + operand_batching_dims", removed, rank)
    _check_dims(op, "scatter_dims_to_operand_dims", dn.scatter_dims_to_operand_dims, rank)
    window_dims = tuple(d for d in range(rank) if d not in removed)
    batch_shape = ind_aval.shape[:-1]
    _check_dims(op, "update_window_dims", dn.update_window_dims, len(updates_shape), sorted_=True)
    if len(dn.update_window_dims) != len(window_dims) or \
            len(updates_shape) != len(batch_shape) + len(window_dims):
        raise TypeError(f"{op}: updates of shape {updates_shape} must have the index batch dimensions "
                        f"{batch_shape} plus one window dimension per operand dimension that is neither inserted "
                        f"nor batching ({len(window_dims)}), at update_window_dims {dn.update_window_dims}")
    scatter_positions = [p for p in range(len(updates_shape)) if p not in dn.update_window_dims]
    if tuple(updates_shape[p] for p in scatter_positions) != batch_shape:
        raise TypeError(f"{op}: the scatter dimensions of updates {updates_shape} must match the index batch "
                        f"dimensions {batch_shape}")
    sizes = {d: updates_shape[p] for d, p in zip(window_dims, dn.update_window_dims)}
    if any(sizes[d] > aval.shape[d] for d in window_dims):
        raise TypeError(f"{op}: update window sizes {tuple(sizes.values())} exceed the operand shape {aval.shape}")
    return _window_indices(op, aval.shape, ind, updates_shape, dn.update_window_dims, window_dims, sizes,
                           dn.scatter_dims_to_operand_dims, dn.operand_batching_dims,
                           dn.scatter_indices_batching_dims, clip=parsed is GatherScatterMode.CLIP)


def _scatter(op: str, point_mode: str, operand: Any, scatter_indices: Any, updates: Any, dimension_numbers: Any,
             mode: Any, negate: bool = False) -> Any:
    if not isinstance(dimension_numbers, ScatterDimensionNumbers):
        if op == "scatter" and isinstance(mode, str):   # fgrad's point form: mode is the combiner
            return ix.scatter(operand, scatter_indices, updates, dimension_numbers, mode=mode)
        if mode is not None:
            raise TypeError(f"{op}: mode needs dimension_numbers to be a lax.ScatterDimensionNumbers (fgrad's "
                            "point scatter drops out-of-bounds updates)")
        updates = ew.neg(as_operand(updates, get_aval(operand).dtype)) if negate else updates
        return ix.scatter(operand, scatter_indices, updates, dimension_numbers, mode=point_mode)
    parsed = _mode(op, mode, GatherScatterMode.FILL_OR_DROP)
    x, ind = ix._as_indices(operand), ix._as_indices(scatter_indices)
    updates = as_operand(updates, get_aval(x).dtype)
    dn = ScatterDimensionNumbers(*(_ints(f) for f in dimension_numbers))
    vectors = _scatter_vectors(op, x, ind, get_aval(updates).shape, dn, parsed)
    if negate:
        updates = ew.neg(updates)
    return ix.scatter(x, vectors, updates, tuple(range(get_aval(x).ndim)), mode=point_mode)


def _scatter_doc(name: str, what: str) -> str:
    return (f"``jax.lax.{name}(operand, scatter_indices, updates, dimension_numbers, *, "
            "indices_are_sorted=False, unique_indices=False, mode=None)``: XLA's windowed scatter; "
            f"{what}. ``mode`` defaults to FILL_OR_DROP (a window out of bounds anywhere is dropped whole); "
            "CLIP clamps each window into range.\n\nWith an axis or axes instead of "
            "``ScatterDimensionNumbers`` this is fgrad's point scatter (``fgrad.ops.indexing.scatter``).")


def _define_scatter(name: str, point_mode: str, what: str, negate: bool = False) -> Callable:
    def scatter_fn(operand: Any, scatter_indices: Any, updates: Any, dimension_numbers: Any, *,
                   indices_are_sorted: bool = False, unique_indices: bool = False, mode: Any = None) -> Any:
        return _scatter(name, point_mode, operand, scatter_indices, updates, dimension_numbers, mode, negate)
    scatter_fn.__name__ = scatter_fn.__qualname__ = name
    scatter_fn.__doc__ = _scatter_doc(name, what)
    return scatter_fn


scatter = _define_scatter("scatter", "set", "each update replaces the operand element (one of duplicates wins)")
scatter_add = _define_scatter("scatter_add", "add", "updates are added (duplicates accumulate)")
scatter_sub = _define_scatter("scatter_sub", "add", "updates are subtracted (duplicates accumulate)", negate=True)
scatter_mul = _define_scatter("scatter_mul", "mul", "elements are multiplied by the updates")
scatter_min = _define_scatter("scatter_min", "min", "each element becomes the minimum of itself and its updates")
scatter_max = _define_scatter("scatter_max", "max", "each element becomes the maximum of itself and its updates")


def scatter_apply(operand: Any, scatter_indices: Any, func: Callable, dimension_numbers: ScatterDimensionNumbers, *,
                  update_shape: Sequence[int] = (), indices_are_sorted: bool = False, unique_indices: bool = False,
                  mode: Any = None) -> Any:
    """``jax.lax.scatter_apply(operand, scatter_indices, func, dimension_numbers, *,
    update_shape=(), indices_are_sorted=False, unique_indices=False, mode=None)``: ``func``
    applied elementwise to the operand elements the scatter (with updates of ``update_shape``)
    addresses, once per update that reaches them (twice for an index given twice, as XLA).
    Like JAX's, it is not differentiable.
    """
    if not isinstance(dimension_numbers, ScatterDimensionNumbers):
        raise TypeError("scatter_apply: dimension_numbers must be a lax.ScatterDimensionNumbers")
    x = ix._as_indices(operand)
    counts = scatter_add(sh.full(get_aval(x).shape, 0, _INT), scatter_indices,
                         sh.full(tuple(int(d) for d in update_shape), 1, _INT), dimension_numbers, mode=mode)
    rounds = reduce_max(counts, tuple(range(get_aval(counts).ndim))) if get_aval(counts).ndim else counts

    def body(carry):
        i, value = carry
        applied = func(value)
        return ew.add(i, as_operand(1, _INT)), ew.select_n(ew.gt(counts, i), value, applied)
    return while_loop(lambda carry: ew.lt(carry[0], rounds), body, (np.zeros((), np.int32), x))[1]


def index_take(src: Any, idxs: Any, axes: Sequence[int]) -> Any:
    """``jax.lax.index_take(src, idxs, axes)``: ``idxs`` is a sequence of index arrays, one per
    axis in ``axes`` (negative indices wrap, others clamp); element ``k`` of the result is the
    slice of ``src`` at ``(idxs[0][k], idxs[1][k], ...)`` on ``axes``, the other dimensions kept."""
    axes = tuple(int(a) for a in axes)
    columns = [sh.expand_dims(ix._as_indices(i), (1,)) for i in idxs]
    shape = get_aval(src).shape
    indices = sh.concatenate(columns, 1)
    sizes = sh.broadcast_in_dim(np.asarray([shape[a] for a in axes], get_aval(indices).dtype),
                                get_aval(indices).shape, (1,))
    indices = ew.rem(ew.add(ew.rem(indices, sizes), sizes), sizes)    # a Python-style modulo
    slice_sizes = tuple(1 if d in axes else n for d, n in enumerate(shape))
    dn = GatherDimensionNumbers(offset_dims=tuple(range(1, len(shape) - len(axes) + 1)), collapsed_slice_dims=axes,
                                start_index_map=axes)
    return gather(src, indices, dn, slice_sizes)
