"""Indexing primitives: dynamic_slice, dynamic_update_slice, gather and scatter; plus the
lax-level helpers built on them (dynamic_slice_in_dim, dynamic_index_in_dim,
dynamic_update_slice_in_dim, dynamic_update_index_in_dim, take, take_along_axis,
scatter_add/max/min/mul).

All are linear in their array operands (their index operands are integers and carry no
derivative), so each has a transpose rule beside its JVP and vmap rules; scatter is linear
in its "set" and "add" modes, and in the operand for "mul".

Index conventions (JAX's), shared with ``fgrad.numpy``'s indexing:

- ``dynamic_slice`` / ``dynamic_update_slice`` (the functions) first count a negative
  start from the end (add the dimension's size; unsigned starts are never negative), then
  the primitives clamp each start into ``[0, size - window]`` so the window always fits
  (as XLA does); nothing wraps twice and nothing is dropped.
- ``gather`` with ``mode="clip"`` (the default) clamps each index into
  ``[0, size - 1]``; with ``mode="fill"`` an out-of-bounds index yields ``fill_value``.
- ``scatter`` drops every update whose index is out of bounds.
- Negative gather/scatter indices are out of bounds at this level; ``fgrad.numpy`` adds
  the axis size to them first, as NumPy's wrap-around requires.
"""
from __future__ import annotations

import builtins
from typing import Any, Sequence

import numpy as np

from fgrad.core import dtypes
from fgrad.core.partition import PARTIAL, bind_like, partition_rules, rank, replicated, with_layout
from fgrad.core.primitive import Primitive
from fgrad.core.trace import get_aval
from fgrad.core.types import ShapedArray
from fgrad.ops import elementwise as ew
from fgrad.ops._util import as_operand, canonical_axes, shape_error
from fgrad.ops.reduction import reduce_and, reduce_prod
from fgrad.ops.shape import (_INDEX_DTYPE, _check_int_tuple, _ints, _scalar, _to_front, _unbatched_shape, _zeros,
                             broadcast_in_dim, concatenate, expand_dims, full, full_like, index_in_dim, iota,
                             reshape, squeeze, transpose, zeros_like)
from fgrad.core.rules import is_undefined, jvp_rules, transpose_rules, vmap_rules
from fgrad.ops.shape import moveaxis

__all__ = [
    "dynamic_slice", "dynamic_slice_in_dim", "dynamic_index_in_dim", "dynamic_update_slice",
    "dynamic_update_slice_in_dim", "dynamic_update_index_in_dim",
    "gather", "take", "take_along_axis",
    "scatter", "scatter_add", "scatter_max", "scatter_min", "scatter_mul",
]

GATHER_MODES = ("clip", "fill", "promise_in_bounds")
_PAIRWISE_LIMIT = 1 << 22  # elements of scatter-mul's (updates x updates) derivative table
SCATTER_MODES = ("set", "add", "max", "min", "mul")

# --- dynamic_slice / dynamic_update_slice ---------------------------------------------------

def _check_start_indices(op: str, starts: Sequence[ShapedArray], x: ShapedArray) -> None:
    if len(starts) != x.ndim:
        raise shape_error(op, f"got {len(starts)} start indices for the {x.ndim} dimensions of {x.str_short()}",
                          "Pass one start index per dimension")
    for s in starts:
        if s.shape != () or s.dtype.kind not in "iu":
            raise shape_error(op, f"start indices must be integer scalars, got {s.str_short()}",
                              "Convert with .astype(fgrad.numpy.int32); index with a scalar per dimension")


def _clamped_starts(starts: Sequence[Any], shape: Sequence[int], window: Sequence[int]) -> tuple:
    """Concrete start indices clamped so the window fits (XLA's rule)."""
    return tuple(builtins.min(builtins.max(int(s), 0), n - w) for s, n, w in zip(starts, shape, window))


def _window(starts: Sequence[int], sizes: Sequence[int]) -> tuple:
    return tuple(builtins.slice(s, s + n) for s, n in zip(starts, sizes))


def _dynamic_slice_rule(x: ShapedArray, *starts: ShapedArray, slice_sizes: tuple) -> ShapedArray:
    op = "dynamic_slice"
    _check_start_indices(op, starts, x)
    _check_int_tuple(op, "slice_sizes", slice_sizes, x.ndim, x.str_short())
    if any(not 0 <= n <= s for n, s in zip(slice_sizes, x.shape)):
        raise shape_error(op, f"slice_sizes {slice_sizes} must lie within the operand {x.str_short()}",
                          "Each slice size must be between 0 and the dimension's size")
    return ShapedArray(slice_sizes, x.dtype, x.weak_type)


def _dynamic_slice_impl(x, *starts, slice_sizes):
    return x[_window(_clamped_starts(starts, x.shape, slice_sizes), slice_sizes)]


def _dynamic_slice_jvp(primals, tangents, slice_sizes):
    x, *starts = primals
    return (dynamic_slice_p.bind(x, *starts, slice_sizes=slice_sizes),
            dynamic_slice_p.bind(tangents[0], *starts, slice_sizes=slice_sizes))


def _dynamic_slice_transpose(ct, x, *starts, slice_sizes):
    zeros = _zeros(x.aval)
    return [dynamic_update_slice_p.bind(zeros, ct, *starts), *[None] * len(starts)]


def _dynamic_slice_vmap(axis, vals, dims, slice_sizes):
    (x, *starts), (x_dim, *start_dims) = vals, dims
    if all(d is None for d in start_dims):
        x = moveaxis(x, x_dim, 0, axis.size)
        return dynamic_slice_p.bind(x, _scalar(0, _INDEX_DTYPE), *starts,
                                    slice_sizes=(axis.size, *slice_sizes)), 0
    shape = _unbatched_shape(x, x_dim)
    with_counter = x_dim is not None  # an unbatched operand is read in place, not copied per member
    coords = _window_coordinates(starts, start_dims, shape, slice_sizes, axis.size, with_counter)
    axes = tuple(range(len(shape) + with_counter))
    return gather_p.bind(x if x_dim is None else moveaxis(x, x_dim, 0, axis.size), coords, axes=axes,
                         mode="clip", fill_value=None), 0


def _window_coordinates(starts, start_dims, shape, sizes, batch: int, with_counter: bool = True) -> Any:
    """int32 coordinates (batch, *sizes, ndim) of each batch member's clamped window: a batched
    dynamic slice as a point gather. ``with_counter`` prepends the member's own index."""
    grid = (batch, *sizes)
    columns = [iota(_INDEX_DTYPE, (*grid, 1), 0)] if with_counter else []
    for d, (start, start_dim) in enumerate(zip(starts, start_dims)):
        start = moveaxis(_clamp_index(start, shape[d] - sizes[d]), start_dim, 0, batch)
        position = ew.add(broadcast_in_dim(start, grid, (0,)), iota(_INDEX_DTYPE, grid, d + 1))
        columns.append(reshape(position, (*grid, 1)))
    return concatenate(columns, len(grid)) if columns else full((*grid, 0), 0, _INDEX_DTYPE)


def _clamp_index(index: Any, upper: int) -> Any:
    """An integer index (array) clamped into [0, upper], as int32."""
    dtype = get_aval(index).dtype
    if dtype.kind == "i":
        index = ew.max(index, 0)
    if upper < np.iinfo(dtype).max:
        index = ew.min(index, upper)
    return ew.convert_element_type(index, _INDEX_DTYPE)


dynamic_slice_p = Primitive("dynamic_slice")
dynamic_slice_p.def_impl(_dynamic_slice_impl)
dynamic_slice_p.def_abstract_eval(_dynamic_slice_rule)
jvp_rules[dynamic_slice_p] = _dynamic_slice_jvp
transpose_rules[dynamic_slice_p] = _dynamic_slice_transpose
vmap_rules[dynamic_slice_p] = _dynamic_slice_vmap


def _start_operands(op: str, start_indices: Any, shape: Sequence[int], window: Sequence[int],
                    allow_negative_indices: bool | Sequence[bool] = True) -> list:
    """Start indices as integer scalars, a negative one counted from the end (JAX's rule);
    Python ints are also clamped now (they are static)."""
    if not isinstance(start_indices, (tuple, list)):
        aval = get_aval(start_indices)
        if aval.ndim != 1:
            raise TypeError(f"{op}: start_indices must be a sequence of scalars or a 1-D integer array, "
                            f"got {aval.str_short()}")
        start_indices = [index_in_dim(start_indices, i, 0, keepdims=False) for i in range(aval.shape[0])]
    if len(start_indices) != len(shape):
        raise TypeError(f"{op}: got {len(start_indices)} start indices for an operand of rank {len(shape)}; "
                        "pass one per dimension")
    if isinstance(allow_negative_indices, bool):
        allow_negative_indices = [allow_negative_indices] * len(shape)
    out = []
    for s, n, w, negative_ok in zip(start_indices, shape, window, allow_negative_indices):
        if isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_)):
            s = int(s) + (n if negative_ok and s < 0 else 0)
            s = _scalar(builtins.min(builtins.max(s, 0), builtins.max(n - w, 0)), _INDEX_DTYPE)
        elif negative_ok:
            s = _from_end_if_negative(s, n)
        out.append(s)
    return out


def _from_end_if_negative(start: Any, size: int) -> Any:
    """``start + size`` where ``start < 0``, in the start's own dtype (as JAX: ``size`` is
    converted to it first); unsigned starts are returned as they are."""
    dtype = get_aval(start).dtype
    if dtype.kind != "i":
        return start
    size = np.asarray(size).astype(dtype)[()]  # wraps where the dtype is too narrow, as JAX's cast does
    return ew.select_n(ew.lt(start, dtype.type(0)), start, ew.add(start, size))


def dynamic_slice(x: Any, start_indices: Any, slice_sizes: Sequence[int], *,
                  allow_negative_indices: bool | Sequence[bool] = True) -> Any:
    """The window of ``slice_sizes`` starting at ``start_indices`` (scalars, possibly traced, or a
    1-D integer array). A negative start counts from the end (``size`` is added to it; with
    ``allow_negative_indices=False`` it is left as it is); then starts are clamped into
    ``[0, size - slice_size]`` so the window fits.

    >>> dynamic_slice(fgrad.numpy.arange(5), (4,), (2,))   # [3, 4]: the start clamps to 3   # doctest: +SKIP
    >>> dynamic_slice(fgrad.numpy.arange(5), (-2,), (2,))  # [3, 4]: -2 counts from the end   # doctest: +SKIP
    """
    sizes = _ints(slice_sizes)
    starts = _start_operands("dynamic_slice", start_indices, get_aval(x).shape, sizes, allow_negative_indices)
    return dynamic_slice_p.bind(x, *starts, slice_sizes=sizes)


def _in_dim(shape: Sequence[int], axis: int, op: str, value: Any, rest: Any) -> tuple[int, list]:
    axis = canonical_axes(op, (int(axis),), len(shape))[0]
    values = [rest] * len(shape)
    values[axis] = value
    return axis, values


def dynamic_slice_in_dim(x: Any, start_index: Any, slice_size: int, axis: int = 0, *,
                         allow_negative_indices: bool = True) -> Any:
    """``dynamic_slice`` along one ``axis`` (the other dimensions are kept whole)."""
    shape = get_aval(x).shape
    axis, starts = _in_dim(shape, axis, "dynamic_slice_in_dim", start_index, 0)
    sizes = list(shape)
    sizes[axis] = int(slice_size)
    return dynamic_slice(x, starts, sizes, allow_negative_indices=allow_negative_indices)


def dynamic_index_in_dim(x: Any, index: Any, axis: int = 0, keepdims: bool = True, *,
                         allow_negative_indices: bool = True) -> Any:
    """The element at (traced, clamped) ``index`` along ``axis``; a negative one counts from the end."""
    out = dynamic_slice_in_dim(x, index, 1, axis, allow_negative_indices=allow_negative_indices)
    return out if keepdims else squeeze(out, (axis,))


def _dynamic_update_slice_rule(x: ShapedArray, update: ShapedArray, *starts: ShapedArray) -> ShapedArray:
    op = "dynamic_update_slice"
    _check_start_indices(op, starts, x)
    if update.dtype != x.dtype:
        raise shape_error(op, f"the update {update.str_short()} must have the operand's dtype ({x.str_short()})",
                          "Convert it with lax.convert_element_type")
    if update.ndim != x.ndim or any(u > s for u, s in zip(update.shape, x.shape)):
        raise shape_error(op, f"the update {update.str_short()} must have the operand's rank and fit "
                          f"inside it ({x.str_short()})", "Reshape or slice the update")
    return ShapedArray(x.shape, x.dtype, x.weak_type)


def _dynamic_update_slice_impl(x, update, *starts):
    out = np.array(x, copy=True)
    out[_window(_clamped_starts(starts, x.shape, update.shape), update.shape)] = update
    return out


def _dynamic_update_slice_jvp(primals, tangents):
    x, update, *starts = primals
    return (dynamic_update_slice_p.bind(x, update, *starts),
            dynamic_update_slice_p.bind(tangents[0], tangents[1], *starts))


def _dynamic_update_slice_transpose(ct, x, update, *starts):
    update_aval = update.aval if is_undefined(update) else get_aval(update)
    ct_x = dynamic_update_slice_p.bind(ct, _zeros(update_aval), *starts) if is_undefined(x) else None
    ct_update = (dynamic_slice_p.bind(ct, *starts, slice_sizes=update_aval.shape)
                 if is_undefined(update) else None)
    return [ct_x, ct_update, *[None] * len(starts)]


def _dynamic_update_slice_vmap(axis, vals, dims, **_):
    (x, update, *starts), (x_dim, update_dim, *start_dims) = vals, dims
    shape, window = _unbatched_shape(x, x_dim), _unbatched_shape(update, update_dim)
    x, update = _to_front((x, update), (x_dim, update_dim), axis.size)
    if all(d is None for d in start_dims):
        return dynamic_update_slice_p.bind(x, update, _scalar(0, _INDEX_DTYPE), *starts), 0
    coords = _window_coordinates(starts, start_dims, shape, window, axis.size)
    return scatter_p.bind(x, coords, update, axes=tuple(range(len(shape) + 1)), mode="set"), 0


dynamic_update_slice_p = Primitive("dynamic_update_slice")
dynamic_update_slice_p.def_impl(_dynamic_update_slice_impl)
dynamic_update_slice_p.def_abstract_eval(_dynamic_update_slice_rule)
jvp_rules[dynamic_update_slice_p] = _dynamic_update_slice_jvp
transpose_rules[dynamic_update_slice_p] = _dynamic_update_slice_transpose
vmap_rules[dynamic_update_slice_p] = _dynamic_update_slice_vmap


def dynamic_update_slice(x: Any, update: Any, start_indices: Any, *,
                         allow_negative_indices: bool | Sequence[bool] = True) -> Any:
    """``x`` with the window at ``start_indices`` replaced by ``update``. A negative start counts
    from the end (as in ``dynamic_slice``); then starts are clamped into ``[0, size - update_size]``
    so the update always lands whole.

    >>> dynamic_update_slice(fgrad.numpy.zeros(4), fgrad.numpy.ones(2), (3,))   # [0, 0, 1, 1]   # doctest: +SKIP
    >>> dynamic_update_slice(fgrad.numpy.zeros(4), fgrad.numpy.ones(1), (-1,))  # [0, 0, 0, 1]   # doctest: +SKIP
    """
    starts = _start_operands("dynamic_update_slice", start_indices, get_aval(x).shape, get_aval(update).shape,
                             allow_negative_indices)
    return dynamic_update_slice_p.bind(x, update, *starts)


def dynamic_update_slice_in_dim(x: Any, update: Any, start_index: Any, axis: int, *,
                                allow_negative_indices: bool = True) -> Any:
    """``dynamic_update_slice`` with the start given along one ``axis`` (0 along the others)."""
    _, starts = _in_dim(get_aval(x).shape, axis, "dynamic_update_slice_in_dim", start_index, 0)
    return dynamic_update_slice(x, update, starts, allow_negative_indices=allow_negative_indices)


def dynamic_update_index_in_dim(x: Any, update: Any, index: Any, axis: int, *,
                                allow_negative_indices: bool = True) -> Any:
    """``x`` with the slice at ``index`` along ``axis`` replaced by ``update`` (which may lack
    that axis)."""
    axis = canonical_axes("dynamic_update_index_in_dim", (int(axis),), get_aval(x).ndim)[0]
    if get_aval(update).ndim == get_aval(x).ndim - 1:
        update = expand_dims(update, (axis,))
    return dynamic_update_slice_in_dim(x, update, index, axis, allow_negative_indices=allow_negative_indices)


# --- gather -----------------------------------------------------------------------------------
# A point gather: ``indices`` has shape ``batch + (len(axes),)``; each index vector picks one
# position along ``axes`` of the operand and keeps its other dimensions whole. The result has
# shape ``batch + (operand dims not in axes, in order)``. It covers NumPy's integer-array
# indexing: ``x[i]`` is axes=(0,), ``x[:, i]`` axes=(1,), ``x[i, j]`` axes=(0, 1) with the
# index arrays broadcast and stacked on a last axis.

def _rest_dims(ndim: int, axes: Sequence[int]) -> list[int]:
    return [d for d in range(ndim) if d not in axes]


def _check_indices(op: str, x: ShapedArray, indices: ShapedArray, axes: tuple) -> tuple[int, ...]:
    """Validate ``indices``/``axes``; return the batch shape."""
    if indices.dtype.kind not in "iu":
        raise shape_error(op, f"indices must be integers, got {indices.str_short()}",
                          "Convert them with .astype(fgrad.numpy.int32)")
    if indices.ndim < 1 or indices.shape[-1] != len(axes):
        raise shape_error(op, f"indices {indices.str_short()} must end in a dimension of size len(axes) = "
                          f"{len(axes)} (one index per indexed axis {axes})",
                          "Stack the index arrays on a last axis, e.g. indices[..., None] for one axis")
    if any(not 0 <= a < x.ndim for a in axes) or len(set(axes)) != len(axes):
        raise shape_error(op, f"axes {axes} must be distinct dimensions of the operand {x.str_short()}")
    return indices.shape[:-1]


def _gather_rule(x: ShapedArray, indices: ShapedArray, axes: tuple, mode: str, fill_value: Any) -> ShapedArray:
    op = "gather"
    batch = _check_indices(op, x, indices, axes)
    if mode not in GATHER_MODES:
        raise ValueError(f"gather: mode must be one of {GATHER_MODES}, got {mode!r}")
    if mode != "fill" and int(np.prod(batch)) > 0 and any(x.shape[a] == 0 for a in axes):
        raise shape_error(op, f"cannot gather from an empty axis of {x.str_short()} with mode='clip'",
                          "Use mode='fill' to get fill values instead")
    shape = (*batch, *[x.shape[d] for d in _rest_dims(x.ndim, axes)])
    return ShapedArray(shape, x.dtype, x.weak_type)


def _index_columns(x_shape, indices, axes):
    """The index vectors split per axis (int64), and which of them are in bounds."""
    columns = [np.asarray(indices[..., j], np.int64) for j in range(len(axes))]
    valid = np.ones(indices.shape[:-1], bool)
    for c, a in zip(columns, axes):
        valid &= (c >= 0) & (c < x_shape[a])
    return columns, valid


def _gather_impl(x, indices, axes, mode, fill_value):
    out_shape = _gather_rule(get_aval(x), get_aval(indices), axes, mode, fill_value).shape
    columns, valid = _index_columns(x.shape, indices, axes)
    fill = np.zeros((), x.dtype) if fill_value is None else np.asarray(fill_value).astype(x.dtype)
    if any(x.shape[a] == 0 for a in axes):
        return np.full(out_shape, fill, x.dtype)
    moved = np.transpose(x, (*axes, *_rest_dims(x.ndim, axes)))
    if mode != "fill":  # "clip" and "promise_in_bounds" read the same
        columns = [np.clip(c, 0, x.shape[a] - 1) for c, a in zip(columns, axes)]
    else:
        columns = [np.where(valid, c, 0) for c in columns]
    out = np.broadcast_to(moved[tuple(columns)], out_shape)
    if mode == "fill":
        out = np.where(valid.reshape(valid.shape + (1,) * (len(out_shape) - valid.ndim)), out, fill)
    return out


def _gather_jvp(primals, tangents, axes, mode, fill_value):
    x, indices = primals
    # the fill value is a constant: out-of-bounds positions have zero tangent
    return (gather_p.bind(x, indices, axes=axes, mode=mode, fill_value=fill_value),
            gather_p.bind(tangents[0], indices, axes=axes, mode=mode, fill_value=None))


def _gather_transpose(ct, x, indices, axes, mode, fill_value):
    # JAX's rule per mode: "clip" adds at the positions actually read; "fill" and
    # "promise_in_bounds" (which reads clamped) scatter unclamped, so out-of-bounds
    # index vectors (negative ones too) drop their cotangent
    if mode == "clip":
        indices = _clip_indices(indices, [x.aval.shape[a] for a in axes])
    return [scatter_p.bind(_zeros(x.aval), indices, ct, axes=axes, mode="add"), None]


def _clip_indices(indices: Any, sizes: Sequence[int]) -> Any:
    """Index vectors clamped into [0, size - 1] per component."""
    aval = get_aval(indices)
    if aval.dtype.kind == "i":
        indices = ew.max(indices, 0)
    upper = np.array([builtins.max(n - 1, 0) for n in sizes], np.int64)
    if aval.shape[-1] and upper.min() < np.iinfo(aval.dtype).max:
        upper = np.minimum(upper, np.iinfo(aval.dtype).max).astype(aval.dtype)
        upper = broadcast_in_dim(upper, aval.shape, (aval.ndim - 1,))
        indices = ew.min(indices, upper)
    return indices


def _with_batch_counter(indices: Any, size: int) -> Any:
    """Prepend each batch member's own index to its index vectors (indices: batch dim first)."""
    aval = get_aval(indices)
    if np.iinfo(aval.dtype).max < size - 1:
        indices = ew.convert_element_type(indices, _INDEX_DTYPE)
    dtype = get_aval(indices).dtype
    counter = iota(dtype, (*aval.shape[:-1], 1), 0)
    return concatenate([counter, indices], aval.ndim - 1)


def _gather_vmap(axis, vals, dims, axes, mode, fill_value):
    (x, indices), (x_dim, i_dim) = vals, dims
    params = dict(mode=mode, fill_value=fill_value)
    if i_dim is None:
        x = moveaxis(x, x_dim, 0, axis.size)
        out = gather_p.bind(x, indices, axes=tuple(a + 1 for a in axes), **params)
        return out, get_aval(indices).ndim - 1
    indices = moveaxis(indices, i_dim, 0, axis.size)
    if x_dim is None:
        return gather_p.bind(x, indices, axes=axes, **params), 0
    x = moveaxis(x, x_dim, 0, axis.size)
    indices = _with_batch_counter(indices, axis.size)
    return gather_p.bind(x, indices, axes=(0, *[a + 1 for a in axes]), **params), 0


gather_p = Primitive("gather")
gather_p.def_impl(_gather_impl)
gather_p.def_abstract_eval(_gather_rule)
jvp_rules[gather_p] = _gather_jvp
transpose_rules[gather_p] = _gather_transpose
vmap_rules[gather_p] = _gather_vmap


def _as_indices(indices: Any) -> Any:
    """Index arrays as fgrad sees them: Python sequences as int32, NumPy ones canonicalised."""
    if isinstance(indices, (list, tuple, int)):
        return np.asarray(indices, _INDEX_DTYPE)
    if isinstance(indices, (np.ndarray, np.generic)):
        return np.asarray(indices, dtypes.canonicalize(indices.dtype))
    return indices


def _canonical_index_axes(op: str, axes: Any, ndim: int) -> tuple[int, ...]:
    return canonical_axes(op, _ints(axes), ndim)  # order kept: it pairs with the index vector


def gather(x: Any, indices: Any, axes: int | Sequence[int], *, mode: str = "clip",
           fill_value: Any = None) -> Any:
    """Point gather: ``out[b..., r...] = x[indices[b..., :] placed on axes, r... on the other dims]``.

    ``indices`` is an integer array of shape ``batch + (len(axes),)``; the result has shape
    ``batch + (the dims of x not in axes, in order)``. Out-of-bounds index vectors are
    clamped into range (``mode="clip"``, JAX's default for gather) or give ``fill_value``
    (``mode="fill"``, default fill 0). ``mode="promise_in_bounds"`` (NumPy-style ``x[i]``)
    reads clamped like "clip", but its gradient drops out-of-bounds positions as "fill"
    does (JAX's). Negative indices are out of bounds here.

    NumPy equivalents (after broadcasting the index arrays to one shape ``batch``):
    ``x[i]`` is ``gather(x, i[..., None], (0,))``; ``x[:, i]`` is ``gather(x, i[..., None], (1,))``
    moved so the batch dims sit at axis 1; ``x[i, j]`` is ``gather(x, stack([i, j], -1), (0, 1))``.
    NumPy puts the batch dims first when the indexed axes are not adjacent, and in place of
    the first indexed axis when they are; this primitive always puts them first.
    Its transpose is ``scatter_add`` (duplicates accumulate).
    """
    if mode not in GATHER_MODES:
        raise ValueError(f"gather: mode must be one of {GATHER_MODES}, got {mode!r}")
    axes = _canonical_index_axes("gather", axes, get_aval(x).ndim)
    if fill_value is not None:
        fill_value = np.asarray(fill_value).item()
    return gather_p.bind(x, _as_indices(indices), axes=axes, mode=mode, fill_value=fill_value)


def take(x: Any, indices: Any, axis: int = 0, *, mode: str = "clip", fill_value: Any = None) -> Any:
    """``numpy.take``: elements along ``axis`` at integer ``indices`` (any shape); the result has
    shape ``x.shape[:axis] + indices.shape + x.shape[axis + 1:]``. Out-of-bounds: see ``gather``."""
    aval = get_aval(x)
    axis = canonical_axes("take", (int(axis),), aval.ndim)[0]
    indices = _as_indices(indices)
    batch_ndim = get_aval(indices).ndim
    out = gather(x, expand_dims(indices, (-1,)), (axis,), mode=mode, fill_value=fill_value)
    # gather gives batch + rest; move the batch dims to where the axis was
    rest = list(range(batch_ndim, batch_ndim + aval.ndim - 1))
    perm = rest[:axis] + list(range(batch_ndim)) + rest[axis:]
    return transpose(out, perm)


def take_along_axis(x: Any, indices: Any, axis: int, *, mode: str = "clip", fill_value: Any = None) -> Any:
    """``numpy.take_along_axis``: ``out[..., k, ...] = x[..., indices[..., k, ...], ...]`` along ``axis``.

    ``indices`` has the rank of ``x``; its other dimensions must equal x's or be 1 (broadcast).
    Out-of-bounds: see ``gather``.
    """
    aval, idx_aval = get_aval(x), get_aval(_as_indices(indices))
    indices = _as_indices(indices)
    axis = canonical_axes("take_along_axis", (int(axis),), aval.ndim)[0]
    if idx_aval.ndim != aval.ndim or any(i not in (1, s) for d, (i, s) in enumerate(zip(idx_aval.shape, aval.shape))
                                          if d != axis):
        raise TypeError(f"take_along_axis: indices {idx_aval.str_short()} must have the rank of x "
                        f"{aval.str_short()} and match its dimensions other than axis {axis} (or be 1)")
    shape = tuple(idx_aval.shape[d] if d == axis else aval.shape[d] for d in range(aval.ndim))
    columns = []
    for d in range(aval.ndim):
        if d == axis:
            column = ew.convert_element_type(indices, _INDEX_DTYPE) if idx_aval.dtype.itemsize < 4 else indices
            column = broadcast_in_dim(column, shape, tuple(range(aval.ndim)))
        else:
            column = iota(idx_aval.dtype if idx_aval.dtype.itemsize >= 4 else _INDEX_DTYPE, shape, d)
        columns.append(reshape(column, (*shape, 1)))
    coords = concatenate(columns, aval.ndim)
    return gather(x, coords, tuple(range(aval.ndim)), mode=mode, fill_value=fill_value)


# --- scatter ----------------------------------------------------------------------------------
# The inverse of gather: ``updates`` has gather's output shape, ``batch + (operand dims not in
# axes)``; each update slice is combined into the operand at its index vector. Updates whose
# index is out of bounds are dropped. Duplicate indices combine ("add", "max", "min", "mul"),
# or one of them wins ("set": unspecified which; the NumPy implementation keeps the last).

def _scatter_rule(x: ShapedArray, indices: ShapedArray, updates: ShapedArray, axes: tuple,
                  mode: str) -> ShapedArray:
    op = "scatter"
    batch = _check_indices(op, x, indices, axes)
    if mode not in SCATTER_MODES:
        raise ValueError(f"scatter: mode must be one of {SCATTER_MODES}, got {mode!r}")
    if updates.dtype != x.dtype:
        raise shape_error(op, f"updates {updates.str_short()} must have the operand's dtype ({x.str_short()})",
                          "Convert them with lax.convert_element_type")
    want = (*batch, *[x.shape[d] for d in _rest_dims(x.ndim, axes)])
    if updates.shape != want:
        raise shape_error(op, f"updates {updates.str_short()} must have shape {want} (the index batch "
                          f"{batch} then the operand's non-indexed dims) for operand {x.str_short()}",
                          "Broadcast the updates first (fgrad.numpy's .at[] does this)")
    return ShapedArray(x.shape, x.dtype, x.weak_type)


_SCATTER_UFUNCS = {"add": np.add, "max": np.maximum, "min": np.minimum, "mul": np.multiply}


def _scatter_impl(x, indices, updates, axes, mode):
    out = np.array(x, copy=True)
    moved = np.transpose(out, (*axes, *_rest_dims(x.ndim, axes)))  # a view: writes land in out
    columns, valid = _index_columns(x.shape, indices, axes)
    updates = np.asarray(updates)[valid]
    if not axes:  # every valid update applies to the whole operand
        if len(updates):
            moved[...] = updates[-1] if mode == "set" else _SCATTER_UFUNCS[mode].reduce(
                np.concatenate([moved[None], updates]), axis=0)
        return out
    where = tuple(c[valid] for c in columns)
    if mode == "set":
        moved[where] = updates
    else:
        _SCATTER_UFUNCS[mode].at(moved, where, updates)
    return out


def _scatter_jvp(primals, tangents, axes, mode):
    x, indices, updates = primals
    tx, _, tu = tangents
    out = scatter_p.bind(x, indices, updates, axes=axes, mode=mode)
    parts = _ScatterParts(x, indices, updates, axes)
    if mode == "add":
        return out, scatter_p.bind(tx, indices, tu, axes=axes, mode="add")
    if mode == "set":
        kept, landed = parts.set_masks()
        return out, ew.add(parts.masked(kept, tx), parts.add_at(parts.masked(landed, tu)))
    if mode == "mul":
        from_x = scatter_p.bind(tx, indices, updates, axes=axes, mode="mul")
        return out, ew.add(from_x, parts.mul_tangent_from_updates(tu))
    return out, parts.extremum_tangent(out, tx, tu)


class _ScatterParts:
    """The pieces scatter's derivative rules are assembled from (all built from primitives,
    so the rules differentiate again and batch)."""

    def __init__(self, x, indices, updates, axes):
        self.x_aval, self.u_aval = get_aval(x), get_aval(updates)
        self.x, self.indices, self.updates, self.axes = x, indices, updates, axes

    def scatter(self, target, values, mode):
        return scatter_p.bind(target, self.indices, values, axes=self.axes, mode=mode)

    def add_at(self, values):
        return self.scatter(_zeros(self.x_aval), values, "add")

    def read(self, source, fill_value=None):
        return gather_p.bind(source, self.indices, axes=self.axes, mode="fill", fill_value=fill_value)

    @staticmethod
    def masked(mask, values):
        return ew.select_n(mask, zeros_like(values), values)

    def as_float(self, mask):
        return ew.convert_element_type(mask, self.x_aval.dtype)

    def set_masks(self):
        """Which operand elements a "set" keeps, and which updates land (beat their duplicates):
        scatter each update's serial number and read back which one stuck."""
        serial = reshape(iota(_INDEX_DTYPE, (self.u_aval.size,)), self.u_aval.shape)
        owner = self.scatter(full(self.x_aval.shape, -1, _INDEX_DTYPE), serial, "set")
        return ew.eq(owner, -1), ew.eq(self.read(owner, fill_value=-1), serial)

    def mul_tangent_from_updates(self, tu):
        """A "mul" scatter's derivative in the updates: the operand times, scattered, each
        update's tangent times the product of every *other* update landing on its position.
        Where an update is alone at its position this is JAX's ``x * scatter_add(0, i, t)``
        exactly, derivatives and transposes included (no product of the others appears there,
        so an infinite cotangent is never multiplied by its zero tangent), and an infinite or
        NaN operand that no index touches gives NaN as in JAX. Duplicates multiply the others
        pairwise (products only, so every derivative order is exact with zeros anywhere) or,
        past a size where the (updates x updates) table is too big, divide the position's
        product by their own."""
        landing = self.scatter(full(self.x_aval.shape, 0, _INDEX_DTYPE), full(self.u_aval.shape, 1, _INDEX_DTYPE), "add")
        m = int(np.prod(self.u_aval.shape[:self.batch_ndim], dtype=np.int64))
        others = self._pairwise_others() if m * self.u_aval.size <= _PAIRWISE_LIMIT else self._divided_others()
        shared = ew.mul(self.x, self.add_at(ew.mul(tu, others)))
        return ew.select_n(ew.le(landing, 1), shared, ew.mul(self.x, self.add_at(tu)))

    @property
    def batch_ndim(self) -> int:
        return get_aval(self.indices).ndim - 1

    def _pairwise_others(self):
        """prod over the other updates at the same index vector, from an (m, m, rest) table."""
        batch = self.u_aval.shape[:self.batch_ndim]
        rest = self.u_aval.shape[self.batch_ndim:]
        m = int(np.prod(batch, dtype=np.int64))
        columns = get_aval(self.indices).shape[-1]
        flat_idx = reshape(self.indices, (m, columns))
        same = reduce_and(ew.eq(broadcast_in_dim(flat_idx, (m, m, columns), (0, 2)),
                                broadcast_in_dim(flat_idx, (m, m, columns), (1, 2))), (2,))
        same = ew.bitwise_and(same, ew.ne(iota(_INDEX_DTYPE, (m, m), 0), iota(_INDEX_DTYPE, (m, m), 1)))
        table = (m, m, *rest)
        flat_u = broadcast_in_dim(reshape(self.updates, (m, *rest)), table, (1, *range(2, 2 + len(rest))))
        picked = ew.select_n(broadcast_in_dim(same, table, (0, 1)), full_like(flat_u, 1), flat_u)
        return reshape(reduce_prod(picked, (1,)), self.u_aval.shape)

    def _divided_others(self):
        """The position's product over the nonzero updates, divided by this one's (if nonzero);
        times 0 where another update at the position is 0. Exact values; higher derivatives
        through the division carry rounding."""
        is_zero = ew.eq(self.updates, 0)
        nonzero = ew.select_n(is_zero, self.updates, full_like(self.updates, 1))
        product = self.read(self.scatter(full_like(self.x, 1), nonzero, "mul"))
        zero_count = self.read(self.add_at(self.as_float(is_zero)))
        without_me = ew.mul(ew.div(product, nonzero), self.as_float(ew.eq(zero_count, 0)))
        zero_me = ew.mul(product, self.as_float(ew.eq(zero_count, 1)))
        return ew.select_n(is_zero, without_me, zero_me)

    def extremum_tangent(self, out, tx, tu):
        """max/min, JAX's rule: at each indexed position the values attaining the result share
        its tangent equally (the operand counting once), elsewhere the operand's tangent passes
        through. Written as ``tx`` plus a correction scattered at the indices, its coefficients
        multiplying the tangents (not selecting them), so a NaN or infinite tangent at an
        indexed position propagates exactly as in JAX; a NaN operand that no index touches
        keeps its tangent."""
        won = ew.eq(self.updates, self.read(out))
        kept = ew.eq(self.read(self.x), self.read(out))
        winners = self.read(self.add_at(self.as_float(won)))
        refs = self.read(self.add_at(full_like(self.updates, 1)))
        one = full_like(winners, 1)
        shared = ew.div(one, ew.add(winners, one))
        zero = zeros_like(winners)
        # 1 / winners is infinite where no update won; ``won`` is False there, so it is never picked
        update_coef = ew.select_n(won, zero, ew.select_n(kept, ew.div(one, winners), shared))
        operand_coef = ew.div(ew.sub(ew.select_n(kept, zero, shared), one), refs)
        correction = ew.add(ew.mul(self.read(tx), operand_coef), ew.mul(tu, update_coef))
        return ew.add(tx, self.add_at(correction))


def _scatter_transpose(ct, x, indices, updates, axes, mode):
    if mode not in ("add", "set", "mul"):
        raise NotImplementedError(f"scatter: mode {mode!r} is not linear and cannot be transposed")
    if mode == "mul":
        if is_undefined(updates):
            raise NotImplementedError("scatter: mode 'mul' is linear in the operand only, not the updates")
        return [scatter_p.bind(ct, indices, updates, axes=axes, mode="mul"), None, None]
    u_aval = updates.aval if is_undefined(updates) else get_aval(updates)
    x_aval = x.aval if is_undefined(x) else get_aval(x)
    ct_x = ct if is_undefined(x) else None
    ct_u = (gather_p.bind(ct, indices, axes=axes, mode="fill", fill_value=None)
            if is_undefined(updates) else None)
    if mode == "set":
        parts = _ScatterParts(_zeros(x_aval), indices, _zeros(u_aval), axes)
        kept, landed = parts.set_masks()
        ct_x = None if ct_x is None else parts.masked(kept, ct_x)
        ct_u = None if ct_u is None else parts.masked(landed, ct_u)
    return [ct_x, None, ct_u]


def _scatter_vmap(axis, vals, dims, axes, mode):
    (x, indices, updates), (x_dim, i_dim, u_dim) = vals, dims
    if i_dim is None:
        batch_ndim = get_aval(indices).ndim - 1
        x = moveaxis(x, x_dim, 0, axis.size)
        updates = moveaxis(updates, u_dim, batch_ndim, axis.size)
        return scatter_p.bind(x, indices, updates, axes=tuple(a + 1 for a in axes), mode=mode), 0
    x, indices, updates = _to_front((x, indices, updates), (x_dim, i_dim, u_dim), axis.size)
    indices = _with_batch_counter(indices, axis.size)
    return scatter_p.bind(x, indices, updates, axes=(0, *[a + 1 for a in axes]), mode=mode), 0


scatter_p = Primitive("scatter")
scatter_p.def_impl(_scatter_impl)
scatter_p.def_abstract_eval(_scatter_rule)
jvp_rules[scatter_p] = _scatter_jvp
transpose_rules[scatter_p] = _scatter_transpose
vmap_rules[scatter_p] = _scatter_vmap


def scatter(x: Any, indices: Any, updates: Any, axes: int | Sequence[int], *, mode: str = "set") -> Any:
    """``x`` with ``updates`` written at the index vectors ``indices`` along ``axes`` (gather's layout:
    ``indices`` is ``batch + (len(axes),)``, ``updates`` is ``batch + the dims of x not in axes``).

    ``mode`` combines each update with what is there: "set" (duplicate indices: one of them
    wins, unspecified which), "add", "max", "min", "mul" (duplicates accumulate). Updates whose
    index vector is out of bounds (negative included) are dropped. These back
    ``x.at[idx].set/add/max/min/multiply``.

    >>> scatter(fgrad.numpy.zeros(4), [[1], [1], [9]], fgrad.numpy.ones(3), (0,), mode="add")
    ... # [0, 2, 0, 0]: the two updates at 1 add up; index 9 is dropped   # doctest: +SKIP
    """
    if mode not in SCATTER_MODES:
        raise ValueError(f"scatter: mode must be one of {SCATTER_MODES}, got {mode!r}")
    axes = _canonical_index_axes("scatter", axes, get_aval(x).ndim)
    updates = as_operand(updates, get_aval(x).dtype)
    return scatter_p.bind(x, _as_indices(indices), updates, axes=axes, mode=mode)


def scatter_add(x: Any, indices: Any, updates: Any, axes: int | Sequence[int]) -> Any:
    """``scatter`` with mode "add" (the transpose of ``gather``)."""
    return scatter(x, indices, updates, axes, mode="add")


def scatter_max(x: Any, indices: Any, updates: Any, axes: int | Sequence[int]) -> Any:
    """``scatter`` with mode "max"."""
    return scatter(x, indices, updates, axes, mode="max")


def scatter_min(x: Any, indices: Any, updates: Any, axes: int | Sequence[int]) -> Any:
    """``scatter`` with mode "min"."""
    return scatter(x, indices, updates, axes, mode="min")


def scatter_mul(x: Any, indices: Any, updates: Any, axes: int | Sequence[int]) -> Any:
    """``scatter`` with mode "mul"."""
    return scatter(x, indices, updates, axes, mode="mul")


# --- partition rules (the data-parallel pass, fgrad.core.partition) ----------------------------------------
#
# gather(x, indices, axes): the output is indices.shape[:-1] followed by x's dims not in axes.
# A split dimension of x that is not indexed, or a split batch dimension of the indices,
# carries over to the output; a split indexed dimension (the indices address the whole
# dimension) is gathered first.

def _gather_partition(ctx, eqn, ins):
    (x, lx), (idx, li) = ins
    axes, batch_nd = eqn.params["axes"], rank(eqn.invars[1]) - 1
    fill_is_zero = eqn.params["mode"] != "fill" or eqn.params["fill_value"] in (None, 0)
    if lx == PARTIAL and li is None and fill_is_zero:   # linear in x
        return with_layout(bind_like(eqn, [x, idx]), PARTIAL)
    if lx == PARTIAL or (isinstance(lx, int) and lx in axes):
        x, lx = ctx.full(x, lx), None
    if li == PARTIAL or li == batch_nd or (isinstance(lx, int) and isinstance(li, int)):
        idx, li = ctx.full(idx, li), None
    if isinstance(lx, int):
        return with_layout(bind_like(eqn, [x, idx]), batch_nd + _rest_dims(rank(eqn.invars[0]), axes).index(lx))
    return with_layout(bind_like(eqn, [x, idx]), li)


def _scatter_partition(ctx, eqn, ins):
    (x, lx), (idx, li), (upd, lu) = ins
    axes, batch_nd = eqn.params["axes"], rank(eqn.invars[1]) - 1
    rest = _rest_dims(rank(eqn.invars[0]), axes)
    if lx == PARTIAL and lu == PARTIAL and li is None and eqn.params["mode"] == "add":   # linear
        return with_layout(bind_like(eqn, [x, idx, upd]), PARTIAL)
    from_updates = rest[lu - batch_nd] if isinstance(lu, int) and lu >= batch_nd else None
    d = lx if isinstance(lx, int) and lx not in axes else from_updates
    if d is None or li == PARTIAL or isinstance(li, int) or (isinstance(lu, int) and lu < batch_nd):
        return replicated(ctx, eqn, ins)
    # every device updates its block of a dimension the indices do not address
    vals = [ctx.split(x, lx, d, eqn), ctx.full(idx, li), ctx.split(upd, lu, batch_nd + rest.index(d), eqn)]
    return with_layout(bind_like(eqn, vals), d)


def _whole_split_partition(ctx, eqn, layouts: list, shape: Sequence[int], window: Sequence[int]):
    """The dimension split in ``layouts`` if the window spans it whole (so its start is 0)."""
    split = next((l for l in layouts if isinstance(l, int)), None)
    if split is not None and window[split] == shape[split] and shape[split] % ctx.n == 0:
        return split
    return None


def _dynamic_slice_partition(ctx, eqn, ins):
    (x, lx), *starts = ins
    starts = [ctx.full(v, l) for v, l in starts]
    sizes = eqn.params["slice_sizes"]
    d = _whole_split_partition(ctx, eqn, [lx], eqn.invars[0].aval.shape, sizes)
    if d is not None:
        return with_layout(bind_like(eqn, [x, *starts], slice_sizes=ctx.local_shape(sizes, d)), d)
    if lx == PARTIAL:
        return with_layout(bind_like(eqn, [x, *starts]), PARTIAL)
    return with_layout(bind_like(eqn, [ctx.full(x, lx), *starts]), None)


def _dynamic_update_slice_partition(ctx, eqn, ins):
    (x, lx), (upd, lu), *starts = ins
    starts = [ctx.full(v, l) for v, l in starts]
    d = _whole_split_partition(ctx, eqn, [lx, lu], eqn.invars[0].aval.shape, eqn.invars[1].aval.shape)
    if d is not None:
        return with_layout(bind_like(eqn, [ctx.split(x, lx, d, eqn), ctx.split(upd, lu, d, eqn), *starts]), d)
    if lx == PARTIAL and lu == PARTIAL:
        return with_layout(bind_like(eqn, [x, upd, *starts]), PARTIAL)
    return with_layout(bind_like(eqn, [ctx.full(x, lx), ctx.full(upd, lu), *starts]), None)


partition_rules[gather_p] = _gather_partition
partition_rules[scatter_p] = _scatter_partition
partition_rules[dynamic_slice_p] = _dynamic_slice_partition
partition_rules[dynamic_update_slice_p] = _dynamic_update_slice_partition
