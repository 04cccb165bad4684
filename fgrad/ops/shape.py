"""Shape primitives: broadcast_in_dim, reshape, transpose, squeeze, expand_dims, slice,
dynamic_slice, dynamic_update_slice, gather, scatter, pad, concatenate, rev and iota;
plus lax-level helpers built on them (full, full_like, zeros_like, slice_in_dim,
index_in_dim, dynamic_slice_in_dim, dynamic_index_in_dim, take, take_along_axis,
scatter_add/max/min/mul, broadcasted_iota).

All but iota are linear in their array operands (their index operands are integers and
carry no derivative), so each has a transpose rule beside its JVP and vmap rules;
scatter is linear in its "set" and "add" modes, and in the operand for "mul".

Index conventions, shared with ``fgrad.numpy``'s indexing:

- ``slice`` takes static, in-bounds ``start <= limit`` per dimension and positive strides.
- ``dynamic_slice`` / ``dynamic_update_slice`` clamp each start index into
  ``[0, size - window]`` so the window always fits (as XLA does); nothing wraps.
- ``gather`` with ``mode="clip"`` (the default) clamps each index into
  ``[0, size - 1]``; with ``mode="fill"`` an out-of-bounds index yields ``fill_value``.
- ``scatter`` drops every update whose index is out of bounds.
- Negative indices are out of bounds at this level; ``fgrad.numpy`` adds the axis size
  to them first, as NumPy's wrap-around requires.
"""
from __future__ import annotations

import builtins
from typing import Any, Sequence

import numpy as np

from fgrad.core import dtypes
from fgrad.core.primitive import Primitive
from fgrad.core.trace import get_aval
from fgrad.core.types import ShapedArray
from fgrad.ops import elementwise as ew
from fgrad.ops._util import as_operand, canonical_axes, shape_error
from fgrad.transforms.jvp import jvp_rules, not_differentiable
from fgrad.transforms.vjp import is_undefined, transpose_rules
from fgrad.transforms.vmap import moveaxis, vmap_rules

__all__ = [
    "broadcast_in_dim", "reshape", "transpose", "full", "full_like", "zeros_like",
    "squeeze", "expand_dims", "slice", "slice_in_dim", "index_in_dim",
    "dynamic_slice", "dynamic_slice_in_dim", "dynamic_index_in_dim", "dynamic_update_slice",
    "gather", "take", "take_along_axis",
    "scatter", "scatter_add", "scatter_max", "scatter_min", "scatter_mul",
    "pad", "concatenate", "rev", "iota", "broadcasted_iota",
]

_INDEX_DTYPE = dtypes.int32
GATHER_MODES = ("clip", "fill")
SCATTER_MODES = ("set", "add", "max", "min", "mul")


def _linear_jvp(prim: Primitive):
    def rule(primals, tangents, **params):
        return prim.bind(*primals, **params), prim.bind(*tangents, **params)
    return rule


def _zeros(aval: ShapedArray) -> Any:
    return full(aval.shape, 0, aval.dtype)


def _ints(values: Any) -> tuple[int, ...]:
    if isinstance(values, (int, np.integer)):
        return (int(values),)
    return tuple(int(v) for v in values)


def _scalar(value: Any, dtype: np.dtype) -> np.generic:
    return np.asarray(value, dtype)[()]


def _unbatched_shape(x: Any, bdim: int | None) -> tuple[int, ...]:
    shape = get_aval(x).shape
    return shape if bdim is None else shape[:bdim] + shape[bdim + 1:]


def _to_front(vals: Sequence[Any], dims: Sequence[int | None], size: int) -> list[Any]:
    """Every value with its batch dim moved (or broadcast) to the front."""
    return [moveaxis(v, d, 0, size) for v, d in zip(vals, dims)]


def _check_int_tuple(op: str, name: str, values: Any, length: int, shape_str: str) -> None:
    if len(values) != length:
        raise shape_error(op, f"{name} {tuple(values)} must have one entry per dimension of {shape_str}")


# --- broadcast_in_dim -------------------------------------------------------------------------

def _broadcast_in_dim_rule(x: ShapedArray, shape: tuple, broadcast_dimensions: tuple) -> ShapedArray:
    op = "broadcast_in_dim"
    if len(broadcast_dimensions) != x.ndim:
        raise shape_error(op, f"broadcast_dimensions {broadcast_dimensions} must have one entry per "
                          f"operand dimension ({x.str_short()})")
    if any(not 0 <= d < len(shape) for d in broadcast_dimensions) or \
            list(broadcast_dimensions) != sorted(set(broadcast_dimensions)):
        raise shape_error(op, f"broadcast_dimensions {broadcast_dimensions} must be strictly increasing "
                          f"and within the target rank {len(shape)}")
    for i, d in enumerate(broadcast_dimensions):
        if x.shape[i] not in (1, shape[d]):
            raise shape_error(op, f"operand dimension {i} (size {x.shape[i]}) cannot broadcast to "
                              f"dimension {d} (size {shape[d]}) of {shape}")
    if any(s < 0 for s in shape):
        raise shape_error(op, f"negative dimension in target shape {shape}")
    return ShapedArray(shape, x.dtype, x.weak_type)


def _broadcast_in_dim_impl(x: np.ndarray, shape: tuple, broadcast_dimensions: tuple) -> np.ndarray:
    expanded = [1] * len(shape)
    for i, d in enumerate(broadcast_dimensions):
        expanded[d] = x.shape[i]
    return np.broadcast_to(np.reshape(x, expanded), shape)


broadcast_in_dim_p = Primitive("broadcast_in_dim")
broadcast_in_dim_p.def_impl(_broadcast_in_dim_impl)
broadcast_in_dim_p.def_abstract_eval(_broadcast_in_dim_rule)
jvp_rules[broadcast_in_dim_p] = _linear_jvp(broadcast_in_dim_p)


def _broadcast_in_dim_transpose(ct, x, shape, broadcast_dimensions):
    from fgrad.ops.reduction import reduce_sum
    aval = x.aval
    summed = [d for d in range(len(shape)) if d not in broadcast_dimensions]
    ones = [d for i, d in enumerate(broadcast_dimensions) if aval.shape[i] == 1 and shape[d] != 1]
    out = reduce_sum(ct, tuple(sorted(summed + ones))) if summed or ones else ct
    return [reshape(out, aval.shape)]


def _broadcast_in_dim_vmap(axis, vals, dims, shape, broadcast_dimensions):
    (x,), (d,) = vals, dims
    x = moveaxis(x, d, 0, axis.size)
    return broadcast_in_dim(x, (axis.size, *shape), (0, *[b + 1 for b in broadcast_dimensions])), 0


transpose_rules[broadcast_in_dim_p] = _broadcast_in_dim_transpose
vmap_rules[broadcast_in_dim_p] = _broadcast_in_dim_vmap


def broadcast_in_dim(x: Any, shape: Sequence[int], broadcast_dimensions: Sequence[int]) -> Any:
    """Broadcast ``x`` to ``shape``; operand dim i maps to output dim ``broadcast_dimensions[i]``."""
    shape = tuple(int(s) for s in shape)
    dims = tuple(int(d) for d in broadcast_dimensions)
    aval = get_aval(x)
    if aval.shape == shape and dims == tuple(range(len(shape))) and type(x) not in (int, float, bool):
        return x
    return broadcast_in_dim_p.bind(x, shape=shape, broadcast_dimensions=dims)


def full(shape: Sequence[int], fill_value: Any, dtype=None) -> Any:
    """An array of ``shape`` filled with ``fill_value`` (a scalar, possibly traced)."""
    if dtype is None:
        dtype = get_aval(fill_value).dtype
    dtype = dtypes.canonicalize(dtype)
    if type(fill_value) in (int, float, bool) or isinstance(fill_value, (np.generic, np.ndarray)):
        fill_value = np.asarray(fill_value, dtype)[()]
    else:
        from fgrad.ops.elementwise import convert_element_type
        fill_value = convert_element_type(fill_value, dtype)
    return broadcast_in_dim_p.bind(fill_value, shape=tuple(int(s) for s in shape), broadcast_dimensions=())


# --- reshape ----------------------------------------------------------------------------------

def _reshape_rule(x: ShapedArray, new_sizes: tuple) -> ShapedArray:
    if int(np.prod(new_sizes, dtype=np.int64)) != x.size or any(s < 0 for s in new_sizes):
        raise shape_error("reshape", f"cannot reshape {x.str_short()} ({x.size} elements) to {new_sizes}",
                          "The new shape must have the same number of elements")
    return ShapedArray(new_sizes, x.dtype, x.weak_type)


reshape_p = Primitive("reshape")
reshape_p.def_impl(lambda x, new_sizes: np.reshape(x, new_sizes))
reshape_p.def_abstract_eval(_reshape_rule)
jvp_rules[reshape_p] = _linear_jvp(reshape_p)
transpose_rules[reshape_p] = lambda ct, x, new_sizes: [reshape(ct, x.aval.shape)]


def _reshape_vmap(axis, vals, dims, new_sizes):
    (x,), (d,) = vals, dims
    return reshape(moveaxis(x, d, 0, axis.size), (axis.size, *new_sizes)), 0


vmap_rules[reshape_p] = _reshape_vmap


def reshape(x: Any, new_sizes: Sequence[int]) -> Any:
    """Reshape ``x`` (row-major order) to ``new_sizes``."""
    new_sizes = tuple(int(s) for s in new_sizes)
    if get_aval(x).shape == new_sizes:
        return x
    return reshape_p.bind(x, new_sizes=new_sizes)


# --- transpose --------------------------------------------------------------------------------

def _transpose_rule(x: ShapedArray, permutation: tuple) -> ShapedArray:
    if sorted(permutation) != list(range(x.ndim)):
        raise shape_error("transpose", f"permutation {permutation} is not a permutation of the "
                          f"{x.ndim} axes of {x.str_short()}")
    return ShapedArray(tuple(x.shape[p] for p in permutation), x.dtype, x.weak_type)


transpose_p = Primitive("transpose")
transpose_p.def_impl(lambda x, permutation: np.transpose(x, permutation))
transpose_p.def_abstract_eval(_transpose_rule)
jvp_rules[transpose_p] = _linear_jvp(transpose_p)
transpose_rules[transpose_p] = lambda ct, x, permutation: [
    transpose(ct, tuple(int(i) for i in np.argsort(permutation)))]


def _transpose_vmap(axis, vals, dims, permutation):
    (x,), (d,) = vals, dims
    return transpose(moveaxis(x, d, 0, axis.size), (0, *[p + 1 for p in permutation])), 0


vmap_rules[transpose_p] = _transpose_vmap


def transpose(x: Any, permutation: Sequence[int]) -> Any:
    """Permute the axes of ``x``: output axis i is input axis ``permutation[i]``."""
    permutation = tuple(int(p) for p in permutation)
    if permutation == tuple(range(len(permutation))) and get_aval(x).ndim == len(permutation):
        return x
    return transpose_p.bind(x, permutation=permutation)


# --- full_like / zeros_like -------------------------------------------------------------------

def full_like(x: Any, fill_value: Any, dtype=None, shape: Sequence[int] | None = None) -> Any:
    """An array like ``x`` (its shape and dtype unless given) filled with ``fill_value``."""
    aval = get_aval(x)
    return full(aval.shape if shape is None else shape, fill_value, aval.dtype if dtype is None else dtype)


def zeros_like(x: Any) -> Any:
    """Zeros with the shape and dtype of ``x``."""
    return full_like(x, 0)


# --- squeeze / expand_dims --------------------------------------------------------------------

def _squeeze_rule(x: ShapedArray, dimensions: tuple) -> ShapedArray:
    for d in dimensions:
        if not 0 <= d < x.ndim or x.shape[d] != 1:
            size = x.shape[d] if 0 <= d < x.ndim else "out of range"
            raise shape_error("squeeze", f"cannot squeeze dimension {d} of {x.str_short()} (size {size})",
                              "Only dimensions of size 1 can be squeezed; use reshape or a reduction")
    shape = tuple(s for i, s in enumerate(x.shape) if i not in dimensions)
    return ShapedArray(shape, x.dtype, x.weak_type)


def _squeeze_vmap(axis, vals, dims, dimensions):
    x = moveaxis(vals[0], dims[0], 0, axis.size)
    return squeeze_p.bind(x, dimensions=tuple(d + 1 for d in dimensions)), 0


squeeze_p = Primitive("squeeze")
squeeze_p.def_impl(lambda x, dimensions: np.reshape(x, _squeeze_rule(get_aval(x), dimensions).shape))
squeeze_p.def_abstract_eval(_squeeze_rule)
jvp_rules[squeeze_p] = _linear_jvp(squeeze_p)
transpose_rules[squeeze_p] = lambda ct, x, dimensions: [reshape(ct, x.aval.shape)]
vmap_rules[squeeze_p] = _squeeze_vmap


def squeeze(x: Any, dimensions: Sequence[int]) -> Any:
    """Remove the size-1 ``dimensions`` of ``x``.

    >>> squeeze(fgrad.numpy.ones((1, 3, 1)), (0, 2)).shape   # (3,)   # doctest: +SKIP
    """
    dims = tuple(sorted(canonical_axes("squeeze", _ints(dimensions), get_aval(x).ndim)))
    return x if not dims else squeeze_p.bind(x, dimensions=dims)


def _expand_dims_rule(x: ShapedArray, dimensions: tuple) -> ShapedArray:
    ndim = x.ndim + len(dimensions)
    if any(not 0 <= d < ndim for d in dimensions) or len(set(dimensions)) != len(dimensions):
        raise shape_error("expand_dims", f"dimensions {dimensions} must be distinct positions in the "
                          f"rank-{ndim} result of expanding {x.str_short()}")
    sizes = iter(x.shape)
    shape = tuple(1 if i in dimensions else next(sizes) for i in range(ndim))
    return ShapedArray(shape, x.dtype, x.weak_type)


def _expand_dims_vmap(axis, vals, dims, dimensions):
    x = moveaxis(vals[0], dims[0], 0, axis.size)
    return expand_dims_p.bind(x, dimensions=tuple(d + 1 for d in dimensions)), 0


expand_dims_p = Primitive("expand_dims")
expand_dims_p.def_impl(lambda x, dimensions: np.reshape(x, _expand_dims_rule(get_aval(x), dimensions).shape))
expand_dims_p.def_abstract_eval(_expand_dims_rule)
jvp_rules[expand_dims_p] = _linear_jvp(expand_dims_p)
transpose_rules[expand_dims_p] = lambda ct, x, dimensions: [squeeze(ct, dimensions)]
vmap_rules[expand_dims_p] = _expand_dims_vmap


def expand_dims(x: Any, dimensions: Sequence[int]) -> Any:
    """Insert size-1 dimensions at positions ``dimensions`` of the result (negative count from
    the result's end).

    >>> expand_dims(fgrad.numpy.ones(3), (0, -1)).shape   # (1, 3, 1)   # doctest: +SKIP
    """
    dims = _ints(dimensions)
    dims = tuple(sorted(canonical_axes("expand_dims", dims, get_aval(x).ndim + len(dims))))
    return x if not dims else expand_dims_p.bind(x, dimensions=dims)


# --- slice ------------------------------------------------------------------------------------

def _slice_rule(x: ShapedArray, start_indices: tuple, limit_indices: tuple, strides: tuple | None) -> ShapedArray:
    op, where = "slice", x.str_short()
    strides = strides or (1,) * x.ndim
    for name, values in (("start_indices", start_indices), ("limit_indices", limit_indices),
                         ("strides", strides)):
        _check_int_tuple(op, name, values, x.ndim, where)
    shape = []
    for d, (size, lo, hi, step) in enumerate(zip(x.shape, start_indices, limit_indices, strides)):
        if not 0 <= lo <= hi <= size:
            raise shape_error(op, f"dimension {d} of {where}: need 0 <= start ({lo}) <= limit ({hi}) "
                              f"<= size ({size})", "Static slices must lie inside the array; use "
                              "dynamic_slice for clamped, traced starts")
        if step < 1:
            raise shape_error(op, f"strides must be >= 1, got {strides}", "Reverse with lax.rev first")
        shape.append(-(-(hi - lo) // step))
    return ShapedArray(tuple(shape), x.dtype, x.weak_type)


def _slice_impl(x, start_indices, limit_indices, strides):
    strides = strides or (1,) * x.ndim
    return x[tuple(builtins.slice(lo, hi, s) for lo, hi, s in zip(start_indices, limit_indices, strides))]


def _slice_transpose(ct, x, start_indices, limit_indices, strides):
    shape = x.aval.shape
    strides = strides or (1,) * len(shape)
    config = []
    for size, lo, n, step in zip(shape, start_indices, get_aval(ct).shape, strides):
        extent = n + builtins.max(n - 1, 0) * (step - 1)
        config.append((lo, size - lo - extent, step - 1))
    return [pad(ct, _scalar(0, x.aval.dtype), config)]


def _slice_vmap(axis, vals, dims, start_indices, limit_indices, strides):
    x = moveaxis(vals[0], dims[0], 0, axis.size)
    strides = None if strides is None else (1, *strides)
    return slice_p.bind(x, start_indices=(0, *start_indices), limit_indices=(axis.size, *limit_indices),
                        strides=strides), 0


slice_p = Primitive("slice")
slice_p.def_impl(_slice_impl)
slice_p.def_abstract_eval(_slice_rule)
jvp_rules[slice_p] = _linear_jvp(slice_p)
transpose_rules[slice_p] = _slice_transpose
vmap_rules[slice_p] = _slice_vmap


def slice(x: Any, start_indices: Sequence[int], limit_indices: Sequence[int],  # noqa: A001 - lax name
          strides: Sequence[int] | None = None) -> Any:
    """``x[start:limit:stride]`` in every dimension, with static in-bounds bounds.

    >>> slice(fgrad.numpy.arange(10), (1,), (8,), (3,))   # [1, 4, 7]   # doctest: +SKIP
    """
    shape = get_aval(x).shape
    starts, limits = _ints(start_indices), _ints(limit_indices)
    steps = None if strides is None else _ints(strides)
    if steps is not None and all(s == 1 for s in steps) and len(steps) == len(shape):
        steps = None
    if starts == (0,) * len(shape) and limits == shape and steps is None:
        return x
    return slice_p.bind(x, start_indices=starts, limit_indices=limits, strides=steps)


def slice_in_dim(x: Any, start_index: int | None, limit_index: int | None, stride: int = 1,
                 axis: int = 0) -> Any:
    """``slice`` along one ``axis``; ``None`` or negative bounds count as in Python slicing."""
    shape = get_aval(x).shape
    axis = canonical_axes("slice_in_dim", (int(axis),), len(shape))[0]
    size = shape[axis]
    lo = 0 if start_index is None else int(start_index) + (size if start_index < 0 else 0)
    hi = size if limit_index is None else int(limit_index) + (size if limit_index < 0 else 0)
    starts, limits, strides = [0] * len(shape), list(shape), [1] * len(shape)
    starts[axis], limits[axis], strides[axis] = lo, hi, int(stride)
    return slice(x, starts, limits, strides)


def index_in_dim(x: Any, index: int, axis: int = 0, keepdims: bool = True) -> Any:
    """The static ``index`` (negative counts from the end) along ``axis``."""
    size = get_aval(x).shape[canonical_axes("index_in_dim", (int(axis),), get_aval(x).ndim)[0]]
    if not -size <= index < size:
        raise IndexError(f"index_in_dim: index {index} is out of bounds for axis {axis} of size {size}")
    index = int(index) % size
    out = slice_in_dim(x, index, index + 1, 1, axis)
    return out if keepdims else squeeze(out, (axis,))


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


def _start_operands(op: str, start_indices: Any, shape: Sequence[int], window: Sequence[int]) -> list:
    """Start indices as integer scalars; Python ints are clamped now (they are static)."""
    if not isinstance(start_indices, (tuple, list)):
        aval = get_aval(start_indices)
        if aval.ndim != 1:
            raise TypeError(f"{op}: start_indices must be a sequence of scalars or a 1-D integer array, "
                            f"got {aval.str_short()}")
        start_indices = [index_in_dim(start_indices, i, 0, keepdims=False) for i in range(aval.shape[0])]
    if len(start_indices) != len(shape):
        raise TypeError(f"{op}: got {len(start_indices)} start indices for an operand of rank {len(shape)}; "
                        "pass one per dimension")
    out = []
    for s, n, w in zip(start_indices, shape, window):
        if isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_)):
            s = _scalar(builtins.min(builtins.max(int(s), 0), builtins.max(n - w, 0)), _INDEX_DTYPE)
        out.append(s)
    return out


def dynamic_slice(x: Any, start_indices: Any, slice_sizes: Sequence[int]) -> Any:
    """The window of ``slice_sizes`` starting at ``start_indices`` (scalars, possibly traced, or a
    1-D integer array). Starts are clamped into ``[0, size - slice_size]`` so the window fits.

    >>> dynamic_slice(fgrad.numpy.arange(5), (4,), (2,))   # [3, 4]: the start clamps to 3   # doctest: +SKIP
    """
    sizes = _ints(slice_sizes)
    starts = _start_operands("dynamic_slice", start_indices, get_aval(x).shape, sizes)
    return dynamic_slice_p.bind(x, *starts, slice_sizes=sizes)


def dynamic_slice_in_dim(x: Any, start_index: Any, slice_size: int, axis: int = 0) -> Any:
    """``dynamic_slice`` along one ``axis`` (the other dimensions are kept whole)."""
    shape = get_aval(x).shape
    axis = canonical_axes("dynamic_slice_in_dim", (int(axis),), len(shape))[0]
    starts = [0] * len(shape)
    starts[axis] = start_index
    sizes = list(shape)
    sizes[axis] = int(slice_size)
    return dynamic_slice(x, starts, sizes)


def dynamic_index_in_dim(x: Any, index: Any, axis: int = 0, keepdims: bool = True) -> Any:
    """The element at (traced, clamped) ``index`` along ``axis``."""
    out = dynamic_slice_in_dim(x, index, 1, axis)
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


def dynamic_update_slice(x: Any, update: Any, start_indices: Any) -> Any:
    """``x`` with the window at ``start_indices`` replaced by ``update``. Starts are clamped into
    ``[0, size - update_size]`` so the update always lands whole.

    >>> dynamic_update_slice(fgrad.numpy.zeros(4), fgrad.numpy.ones(2), (3,))   # [0, 0, 1, 1]   # doctest: +SKIP
    """
    starts = _start_operands("dynamic_update_slice", start_indices, get_aval(x).shape, get_aval(update).shape)
    return dynamic_update_slice_p.bind(x, update, *starts)


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
    if mode == "clip" and int(np.prod(batch)) > 0 and any(x.shape[a] == 0 for a in axes):
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
    if mode == "clip":
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
    if mode == "clip":  # the positions actually read, so nothing is dropped below
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
    (``mode="fill"``, default fill 0). Negative indices are out of bounds here.

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
        return out, ew.add(from_x, parts.add_at(ew.mul(tu, parts.product_of_others())))
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

    def product_of_others(self):
        """For each update: the operand times every *other* update landing on its position
        (a "mul" scatter's derivative in that update), exact where some updates are 0."""
        is_zero = ew.eq(self.updates, 0)
        nonzero = ew.select_n(is_zero, self.updates, full_like(self.updates, 1))
        product = self.read(ew.mul(self.x, self.scatter(full_like(self.x, 1), nonzero, "mul")))
        zero_count = self.read(self.add_at(self.as_float(is_zero)))
        without_me = ew.mul(ew.div(product, nonzero), self.as_float(ew.eq(zero_count, 0)))
        zero_me = ew.mul(product, self.as_float(ew.eq(zero_count, 1)))
        return ew.select_n(is_zero, without_me, zero_me)

    def extremum_tangent(self, out, tx, tu):
        """max/min: the tangent of whichever values attain the result, ties sharing it equally."""
        x_hit = ew.eq(self.x, out)
        u_hit = ew.eq(self.updates, self.read(out))
        count = ew.add(self.as_float(x_hit), self.add_at(self.as_float(u_hit)))
        total = ew.add(self.masked(x_hit, tx), self.add_at(self.masked(u_hit, tu)))
        return ew.div(total, ew.max(count, 1))


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


# --- pad --------------------------------------------------------------------------------------

def _padded_size(size: int, low: int, high: int, interior: int) -> int:
    return low + high + size + builtins.max(size - 1, 0) * interior


def _pad_rule(x: ShapedArray, padding_value: ShapedArray, padding_config: tuple) -> ShapedArray:
    op = "pad"
    if padding_value.shape != () or padding_value.dtype != x.dtype:
        raise shape_error(op, f"padding_value must be a scalar of the operand's dtype ({x.str_short()}), "
                          f"got {padding_value.str_short()}", "Pass a scalar of the same dtype")
    _check_int_tuple(op, "padding_config", padding_config, x.ndim, x.str_short())
    shape = []
    for d, (size, (low, high, interior)) in enumerate(zip(x.shape, padding_config)):
        if interior < 0:
            raise shape_error(op, f"interior padding must be >= 0, got {interior} in dimension {d}")
        out = _padded_size(size, low, high, interior)
        if out < 0:
            raise shape_error(op, f"padding {(low, high, interior)} of dimension {d} (size {size}) of "
                              f"{x.str_short()} gives a negative size {out}", "Crop less")
        shape.append(out)
    return ShapedArray(tuple(shape), x.dtype, x.weak_type)


def _pad_impl(x, padding_value, padding_config):
    out_shape = _pad_rule(get_aval(x), get_aval(padding_value), padding_config).shape
    spread = np.full([_padded_size(n, 0, 0, i) for n, (_, _, i) in zip(x.shape, padding_config)],
                     padding_value, x.dtype)
    spread[tuple(builtins.slice(None, None, i + 1) for _, _, i in padding_config)] = x
    out = np.full(out_shape, padding_value, x.dtype)
    src, dst = [], []
    for n, (low, high, _) in zip(spread.shape, padding_config):
        start, stop = builtins.max(-low, 0), n - builtins.max(-high, 0)
        if stop <= start:
            return out  # everything was cropped away
        src.append(builtins.slice(start, stop))
        dst.append(builtins.slice(builtins.max(low, 0), builtins.max(low, 0) + stop - start))
    out[tuple(dst)] = spread[tuple(src)]
    return out


def _pad_transpose(ct, x, padding_value, padding_config):
    from fgrad.ops.reduction import reduce_sum
    aval = x.aval if is_undefined(x) else get_aval(x)
    zero = _scalar(0, aval.dtype)
    unpadded = pad(ct, zero, [(-low, -high, 0) for low, high, _ in padding_config])
    ct_x = slice(unpadded, (0,) * aval.ndim, get_aval(unpadded).shape, [i + 1 for _, _, i in padding_config])
    ct_value = None
    if is_undefined(padding_value):
        every = tuple(range(aval.ndim))
        ct_value = ew.sub(reduce_sum(ct, every), reduce_sum(ct_x, every))
    return [ct_x if is_undefined(x) else None, ct_value]


def _pad_vmap(axis, vals, dims, padding_config):
    (x, value), (x_dim, value_dim) = vals, dims
    shape = _unbatched_shape(x, x_dim)
    x = moveaxis(x, x_dim, 0, axis.size)
    config = ((0, 0, 0), *padding_config)
    if value_dim is None:
        return pad_p.bind(x, value, padding_config=config), 0
    # a per-member padding value: pad with zeros, then select the value where the padding is
    padded = pad_p.bind(x, _scalar(0, get_aval(x).dtype), padding_config=config)
    is_operand = pad_p.bind(full(shape, True, dtypes.bool_), np.False_, padding_config=padding_config)
    out_shape = get_aval(padded).shape
    is_operand = broadcast_in_dim(is_operand, out_shape, tuple(range(1, len(out_shape))))
    value = broadcast_in_dim(moveaxis(value, value_dim, 0, axis.size), out_shape, (0,))
    return ew.select_n(is_operand, value, padded), 0


pad_p = Primitive("pad")
pad_p.def_impl(_pad_impl)
pad_p.def_abstract_eval(_pad_rule)
jvp_rules[pad_p] = _linear_jvp(pad_p)
transpose_rules[pad_p] = _pad_transpose
vmap_rules[pad_p] = _pad_vmap


def pad(x: Any, padding_value: Any, padding_config: Sequence[tuple[int, int, int]]) -> Any:
    """Pad ``x`` with ``padding_value`` (a scalar): per dimension ``(low, high, interior)`` adds
    ``low``/``high`` elements at the ends (negative values crop) and ``interior`` between
    neighbours.

    >>> pad(fgrad.numpy.ones(2), 0.0, [(1, -1, 2)])   # [0, 1, 0, 0]   # doctest: +SKIP
    """
    config = tuple((int(lo), int(hi), int(i)) for lo, hi, i in padding_config)
    padding_value = as_operand(padding_value, get_aval(x).dtype)
    return pad_p.bind(x, padding_value, padding_config=config)


# --- concatenate ------------------------------------------------------------------------------

def _concatenate_rule(*xs: ShapedArray, dimension: int) -> ShapedArray:
    op = "concatenate"
    if not xs:
        raise shape_error(op, "needs at least one operand")
    first = xs[0]
    shown = ", ".join(x.str_short() for x in xs)
    if not 0 <= dimension < first.ndim:
        raise shape_error(op, f"dimension {dimension} is out of range for operands {shown}",
                          "Scalars cannot be concatenated; reshape them to rank 1 first")
    for x in xs:
        if x.dtype != first.dtype:
            raise shape_error(op, f"operands must have one dtype, got {shown}",
                              "Convert them with lax.convert_element_type")
        if x.ndim != first.ndim or any(a != b for d, (a, b) in enumerate(zip(x.shape, first.shape))
                                       if d != dimension):
            raise shape_error(op, f"operands must have equal shapes except in dimension {dimension}, "
                              f"got {shown}", "Reshape or broadcast them first")
    shape = list(first.shape)
    shape[dimension] = sum(x.shape[dimension] for x in xs)
    return ShapedArray(tuple(shape), first.dtype, all(x.weak_type for x in xs))


def _concatenate_transpose(ct, *xs, dimension):
    cts, offset = [], 0
    for x in xs:
        aval = x.aval if is_undefined(x) else get_aval(x)
        size = aval.shape[dimension]
        cts.append(slice_in_dim(ct, offset, offset + size, 1, dimension) if is_undefined(x) else None)
        offset += size
    return cts


def _concatenate_vmap(axis, vals, dims, dimension):
    return concatenate_p.bind(*_to_front(vals, dims, axis.size), dimension=dimension + 1), 0


concatenate_p = Primitive("concatenate")
concatenate_p.def_impl(lambda *xs, dimension: np.concatenate(xs, axis=dimension))
concatenate_p.def_abstract_eval(_concatenate_rule)
jvp_rules[concatenate_p] = _linear_jvp(concatenate_p)
transpose_rules[concatenate_p] = _concatenate_transpose
vmap_rules[concatenate_p] = _concatenate_vmap


def concatenate(operands: Sequence[Any], dimension: int) -> Any:
    """Join ``operands`` (same rank and dtype) along ``dimension``."""
    operands = list(operands)
    if not operands:
        raise ValueError("concatenate: needs at least one operand")
    ndim = get_aval(operands[0]).ndim
    dimension = int(dimension)
    if ndim and -ndim <= dimension < 0:
        dimension += ndim
    if len(operands) == 1 and 0 <= dimension < ndim:
        return operands[0]
    return concatenate_p.bind(*operands, dimension=dimension)


# --- rev --------------------------------------------------------------------------------------

def _rev_rule(x: ShapedArray, dimensions: tuple) -> ShapedArray:
    if any(not 0 <= d < x.ndim for d in dimensions) or len(set(dimensions)) != len(dimensions):
        raise shape_error("rev", f"dimensions {dimensions} must be distinct dimensions of {x.str_short()}")
    return x


def _rev_vmap(axis, vals, dims, dimensions):
    x = moveaxis(vals[0], dims[0], 0, axis.size)
    return rev_p.bind(x, dimensions=tuple(d + 1 for d in dimensions)), 0


rev_p = Primitive("rev")
rev_p.def_impl(lambda x, dimensions: np.flip(x, dimensions))
rev_p.def_abstract_eval(_rev_rule)
jvp_rules[rev_p] = _linear_jvp(rev_p)
transpose_rules[rev_p] = lambda ct, x, dimensions: [rev(ct, dimensions)]
vmap_rules[rev_p] = _rev_vmap


def rev(x: Any, dimensions: Sequence[int]) -> Any:
    """Reverse ``x`` along ``dimensions``."""
    dims = tuple(sorted(canonical_axes("rev", _ints(dimensions), get_aval(x).ndim)))
    return x if not dims else rev_p.bind(x, dimensions=dims)


# --- iota -------------------------------------------------------------------------------------

def _iota_rule(*, dtype: np.dtype, shape: tuple, dimension: int) -> ShapedArray:
    if dtype.kind not in "iuf":
        raise shape_error("iota", f"dtype must be numeric, got {dtype.name}", "Use an integer or float dtype")
    if not 0 <= dimension < len(shape) or any(s < 0 for s in shape):
        raise shape_error("iota", f"dimension {dimension} must be a dimension of the (non-negative) "
                          f"shape {shape}")
    return ShapedArray(shape, dtype)


def _iota_impl(*, dtype, shape, dimension):
    counts = np.arange(shape[dimension], dtype=dtype)
    return np.broadcast_to(counts.reshape([-1 if d == dimension else 1 for d in range(len(shape))]), shape)


iota_p = Primitive("iota")
iota_p.def_impl(_iota_impl)
iota_p.def_abstract_eval(_iota_rule)
not_differentiable.add(iota_p)  # no operands: it is a constant
vmap_rules[iota_p] = lambda axis, vals, dims, **params: (iota_p.bind(**params), None)


def iota(dtype: Any, shape: int | Sequence[int], dimension: int = 0) -> Any:
    """An array of ``shape`` counting 0, 1, 2, ... along ``dimension`` (constant along the others).
    ``iota(dtype, n)`` is JAX's 1-D ``lax.iota``.

    >>> iota(fgrad.numpy.int32, (2, 3), 1)   # [[0, 1, 2], [0, 1, 2]]   # doctest: +SKIP
    """
    shape = _ints(shape)
    ndim = len(shape)
    dimension = int(dimension) + (ndim if ndim and dimension < 0 else 0)
    return iota_p.bind(dtype=dtypes.canonicalize(dtype), shape=shape, dimension=dimension)


def broadcasted_iota(dtype: Any, shape: Sequence[int], dimension: int) -> Any:
    """JAX's name for ``iota`` over a multi-dimensional ``shape``."""
    return iota(dtype, shape, dimension)
