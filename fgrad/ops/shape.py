"""Shape primitives: broadcast_in_dim, reshape, transpose (and the ``full`` helper).

Every one is linear, so each has a transpose rule beside its JVP and vmap rules.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from fgrad.core import dtypes
from fgrad.core.primitive import Primitive
from fgrad.core.trace import get_aval
from fgrad.core.types import ShapedArray
from fgrad.ops._util import shape_error
from fgrad.transforms.jvp import jvp_rules
from fgrad.transforms.vjp import transpose_rules
from fgrad.transforms.vmap import vmap_rules, moveaxis

__all__ = ["broadcast_in_dim", "reshape", "transpose", "full"]


def _linear_jvp(prim: Primitive):
    def rule(primals, tangents, **params):
        return prim.bind(*primals, **params), prim.bind(*tangents, **params)
    return rule


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
