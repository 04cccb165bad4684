"""Shape primitives: broadcast_in_dim, reshape, transpose, squeeze, expand_dims, slice,
pad, concatenate, rev and iota; plus lax-level helpers built on them (full, full_like,
zeros_like, slice_in_dim, index_in_dim, broadcasted_iota). The indexing primitives
(dynamic_slice, gather, scatter...) live in ``fgrad.ops.indexing``.

All but iota are linear in their array operands, so each has a transpose rule beside its
JVP and vmap rules. ``slice`` takes static, in-bounds ``start <= limit`` per dimension and
positive strides.
"""
from __future__ import annotations

import builtins
from typing import Any, Sequence

import numpy as np

from fgrad.core import dtypes
from fgrad.core import partition
from fgrad.core.partition import PARTIAL, bind_like, partition_error, partition_rules, rank, replicated, with_layout
from fgrad.core.primitive import Primitive
from fgrad.core.trace import get_aval
from fgrad.core.types import ShapedArray
from fgrad.ops import elementwise as ew
from fgrad.ops._util import as_operand, canonical_axes, shape_error
from fgrad.core.rules import (cheap_to_recompute, is_undefined, jvp_rules, not_differentiable, transpose_rules,
                              vmap_rules)
from fgrad.ops import reduction as red

__all__ = [
    "broadcast_in_dim", "reshape", "transpose", "full", "full_like", "zeros_like",
    "squeeze", "expand_dims", "slice", "slice_in_dim", "index_in_dim",
    "pad", "concatenate", "rev", "iota", "broadcasted_iota",
]

_INDEX_DTYPE = dtypes.int32


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
    aval = x.aval
    summed = [d for d in range(len(shape)) if d not in broadcast_dimensions]
    ones = [d for i, d in enumerate(broadcast_dimensions) if aval.shape[i] == 1 and shape[d] != 1]
    out = red.reduce_sum(ct, tuple(sorted(summed + ones))) if summed or ones else ct
    return [reshape(out, aval.shape)]


def _broadcast_in_dim_vmap(axis, vals, dims, shape, broadcast_dimensions):
    (x,), (d,) = vals, dims
    x = moveaxis(x, d, 0, axis.size)
    return broadcast_in_dim(x, (axis.size, *shape), (0, *[b + 1 for b in broadcast_dimensions])), 0


transpose_rules[broadcast_in_dim_p] = _broadcast_in_dim_transpose
# scan's backward pass re-broadcasts a saved value rather than stacking its broadcast (a
# softmax's row sums, broadcast over every score, cost the scanned GPT step 4 MiB per layer)
cheap_to_recompute.add(broadcast_in_dim_p)
vmap_rules[broadcast_in_dim_p] = _broadcast_in_dim_vmap


def broadcast_in_dim(x: Any, shape: Sequence[int], broadcast_dimensions: Sequence[int]) -> Any:
    """Broadcast ``x`` to ``shape``; operand dim i maps to output dim ``broadcast_dimensions[i]``."""
    shape = tuple(int(s) for s in shape)
    dims = tuple(int(d) for d in broadcast_dimensions)
    aval = get_aval(x)
    if aval.shape == shape and dims == tuple(range(len(shape))) and type(x) not in (int, float, bool, complex):
        return x
    return broadcast_in_dim_p.bind(x, shape=shape, broadcast_dimensions=dims)


def full(shape: Sequence[int], fill_value: Any, dtype=None) -> Any:
    """An array of ``shape`` filled with ``fill_value`` (a scalar, possibly traced)."""
    if dtype is None:
        dtype = get_aval(fill_value).dtype
    dtype = dtypes.canonicalize(dtype)
    if type(fill_value) in (int, float, bool, complex) or isinstance(fill_value, (np.generic, np.ndarray)):
        fill_value = np.asarray(fill_value, dtype)[()]
    else:
        fill_value = ew.convert_element_type(fill_value, dtype)
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

def moveaxis(x: Any, src: int | None, dst: int, axis_size: int) -> Any:
    """Move the batch dim of ``x`` from ``src`` to ``dst`` (broadcasting it in if ``src`` is None)."""
    aval = get_aval(x)
    if src is None:
        shape = list(aval.shape)
        shape.insert(dst, axis_size)
        dims = tuple(i for i in range(len(shape)) if i != dst)
        return broadcast_in_dim(x, tuple(shape), dims)
    if src == dst:
        return x
    perm = [i for i in range(aval.ndim) if i != src]
    perm.insert(dst, src)
    return transpose(x, tuple(perm))


def bdim_at_front(x: Any, bdim: int | None, axis_size: int) -> Any:
    """``x`` with its batch dim (``bdim``, or none) first."""
    return moveaxis(x, bdim, 0, axis_size)


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
    aval = x.aval if is_undefined(x) else get_aval(x)
    zero = _scalar(0, aval.dtype)
    unpadded = pad(ct, zero, [(-low, -high, 0) for low, high, _ in padding_config])
    ct_x = slice(unpadded, (0,) * aval.ndim, get_aval(unpadded).shape, [i + 1 for _, _, i in padding_config])
    ct_value = None
    if is_undefined(padding_value):
        every = tuple(range(aval.ndim))
        ct_value = ew.sub(red.reduce_sum(ct, every), red.reduce_sum(ct_x, every))
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
    if dtypes.kind(dtype) not in "iuf":
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


# --- partition rules (the data-parallel pass, fgrad.core.partition) ----------------------------------------

def _broadcast_in_dim_split_partition(ctx, eqn, x, d, rest):
    shape, dims = eqn.params["shape"], eqn.params["broadcast_dimensions"]
    out_d = dims[d]
    local = list(shape)
    local[out_d] = get_aval(x).shape[d]
    return with_layout(bind_like(eqn, [x], shape=tuple(local)), out_d)


def _broadcast_in_dim_partition(ctx, eqn, ins):
    out = partition.linear_unary(_broadcast_in_dim_split_partition)(ctx, eqn, ins)
    (x, layout), = ins
    if layout is None:
        shape, dims = eqn.params["shape"], eqn.params["broadcast_dimensions"]

        def split_of(d):  # broadcast straight into the block
            operand = x
            if d in dims and get_aval(x).shape[dims.index(d)] != 1:
                operand = ctx.split(x, None, dims.index(d), eqn)
            return bind_like(eqn, [operand], shape=ctx.local_shape(shape, d))[0]
        ctx.split_recipes[id(out[0][0])] = (out[0][0], split_of)
    return out


def _iota_partition(ctx, eqn, ins):
    out = bind_like(eqn, [])[0]
    shape, dim, dtype = eqn.params["shape"], eqn.params["dimension"], eqn.params["dtype"]

    def split_of(d):
        local = bind_like(eqn, [], shape=ctx.local_shape(shape, d))[0]
        if d != dim:
            return local
        offset = ctx.block_start(shape[d] // ctx.n)
        return ew.add(local, ew.convert_element_type(offset, dtype))
    ctx.split_recipes[id(out)] = (out, split_of)
    return [(out, None)]


def _reshape_split_partition(ctx, eqn, x, d, rest):
    in_shape, out_shape = eqn.invars[0].aval.shape, eqn.params["new_sizes"]
    prefix = int(np.prod(in_shape[:d]))
    for out_d in range(len(out_shape)):
        if int(np.prod(out_shape[:out_d])) == prefix and out_shape[out_d] % ctx.n == 0:
            return with_layout(bind_like(eqn, [x], new_sizes=ctx.local_shape(out_shape, out_d)), out_d)
    raise partition_error(eqn, f"reshaping {eqn.invars[0].aval.str_short()} to {tuple(out_shape)} mixes the split "
                               f"dimension {d} with the others")


def _transpose_split_partition(ctx, eqn, x, d, rest):
    return with_layout(bind_like(eqn, [x]), eqn.params["permutation"].index(d))


def _squeeze_split_partition(ctx, eqn, x, d, rest):
    dims = eqn.params["dimensions"]
    return with_layout(bind_like(eqn, [x]), d - sum(1 for k in dims if k < d))


def _expand_dims_split_partition(ctx, eqn, x, d, rest):
    new = set(eqn.params["dimensions"])
    kept = [k for k in range(rank(eqn.outvars[0])) if k not in new]
    return with_layout(bind_like(eqn, [x]), kept[d])


def _slice_split_partition(ctx, eqn, x, d, rest):
    p = eqn.params
    size = eqn.invars[0].aval.shape[d]
    whole = p["start_indices"][d] == 0 and p["limit_indices"][d] == size and (p["strides"] or [1] * size)[d] == 1
    if not whole:
        raise partition_error(eqn, f"it slices the split dimension {d}")
    limits = list(p["limit_indices"])
    limits[d] = get_aval(x).shape[d]
    return with_layout(bind_like(eqn, [x], limit_indices=tuple(limits)), d)


def _pad_split_partition(ctx, eqn, x, d, rest):
    if tuple(eqn.params["padding_config"][d]) != (0, 0, 0):
        raise partition_error(eqn, f"it pads the split dimension {d}")
    return with_layout(bind_like(eqn, [x, *rest]), d)


def _concatenate_partition(ctx, eqn, ins):
    layouts = [l for _, l in ins]
    if all(l is None for l in layouts):
        return with_layout(bind_like(eqn, [v for v, _ in ins]), None)
    if all(l == PARTIAL for l in layouts):
        return with_layout(bind_like(eqn, [v for v, _ in ins]), PARTIAL)
    dim = eqn.params["dimension"]
    split = next((l for l in layouts if isinstance(l, int)), None)
    if split is None or split == dim:
        if split == dim:
            raise partition_error(eqn, f"it concatenates along the split dimension {dim}")
        return replicated(ctx, eqn, ins)
    return with_layout(bind_like(eqn, [ctx.split(v, l, split, eqn) for v, l in ins]), split)


partition_rules[broadcast_in_dim_p] = _broadcast_in_dim_partition
partition_rules[iota_p] = _iota_partition
partition_rules[reshape_p] = partition.linear_unary(_reshape_split_partition)
partition_rules[transpose_p] = partition.linear_unary(_transpose_split_partition)
partition_rules[squeeze_p] = partition.linear_unary(_squeeze_split_partition)
partition_rules[expand_dims_p] = partition.linear_unary(_expand_dims_split_partition)
partition_rules[slice_p] = partition.linear_unary(_slice_split_partition)
partition_rules[pad_p] = partition.linear_unary(_pad_split_partition)
partition_rules[concatenate_p] = _concatenate_partition
partition_rules[rev_p] = partition.along_dims(lambda p: p["dimensions"], reduces=False)
