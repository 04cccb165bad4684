"""Sorting: ``sort_p`` sorts several same-shaped operands along one dimension by the first
``num_keys`` of them (stable, NaNs last as in NumPy). ``argsort`` is sort of (x, iota)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from fgrad.core.primitive import Primitive
from fgrad.core.trace import get_aval
from fgrad.core.types import ShapedArray
from fgrad.ops._util import shape_error
from fgrad.transforms.jvp import jvp_rules
from fgrad.transforms.vmap import vmap_rules

__all__ = ["sort", "argsort"]


def _sort_rule(*operands: ShapedArray, dimension: int, num_keys: int) -> list[ShapedArray]:
    shapes = {a.shape for a in operands}
    if len(shapes) != 1:
        raise shape_error("sort", f"operands must share one shape, got {[a.str_short() for a in operands]}")
    if not 0 <= dimension < operands[0].ndim:
        raise shape_error("sort", f"dimension {dimension} is out of range for rank {operands[0].ndim}")
    if not 1 <= num_keys <= len(operands):
        raise shape_error("sort", f"num_keys={num_keys} must be between 1 and {len(operands)}")
    return list(operands)


def _sort_impl(*operands: np.ndarray, dimension: int, num_keys: int) -> list[np.ndarray]:
    keys = [np.moveaxis(k, dimension, -1) for k in operands[:num_keys]]
    flat_keys = [k.reshape(-1, k.shape[-1]) if k.size else k.reshape(0, k.shape[-1]) for k in keys]
    order = np.empty(flat_keys[0].shape, np.int64)
    for row in range(flat_keys[0].shape[0]):
        order[row] = np.lexsort([k[row] for k in reversed(flat_keys)])
    order = order.reshape(keys[0].shape)
    return [np.moveaxis(np.take_along_axis(np.moveaxis(x, dimension, -1), order, axis=-1), -1, dimension)
            for x in operands]


sort_p = Primitive("sort", multiple_results=True)
sort_p.def_impl(_sort_impl)
sort_p.def_abstract_eval(_sort_rule)


def _sort_jvp(primals, tangents, dimension, num_keys):
    from fgrad.ops.shape import iota
    shape = get_aval(primals[0]).shape
    index = iota(np.dtype(np.int32), shape, dimension)
    outs = sort_p.bind(*primals, index, dimension=dimension, num_keys=num_keys)
    perm = outs[-1]
    from fgrad.ops.shape import take_along_axis
    return outs[:-1], [None if t is None else take_along_axis(t, perm, dimension) for t in tangents]


def _sort_vmap(axis, vals, dims, dimension, num_keys):
    from fgrad.transforms.vmap import moveaxis
    vals = [moveaxis(v, d, 0, axis.size) for v, d in zip(vals, dims)]
    return sort_p.bind(*vals, dimension=dimension + 1, num_keys=num_keys), [0] * len(vals)


jvp_rules[sort_p] = _sort_jvp
vmap_rules[sort_p] = _sort_vmap


def sort(operands: Any | Sequence[Any], dimension: int = -1, num_keys: int = 1) -> Any:
    """Sort ``operands`` (one array or a sequence) along ``dimension`` by the first ``num_keys``."""
    single = not isinstance(operands, (tuple, list))
    ops = [operands] if single else list(operands)
    ndim = get_aval(ops[0]).ndim
    if not -ndim <= dimension < ndim:
        raise ValueError(f"sort: dimension {dimension} out of range for rank {ndim}")
    outs = sort_p.bind(*ops, dimension=dimension % ndim, num_keys=int(num_keys))
    return outs[0] if single else outs


def argsort(x: Any, dimension: int = -1) -> Any:
    """Indices (int32) that sort ``x`` along ``dimension`` (stable)."""
    from fgrad.ops.shape import iota
    aval = get_aval(x)
    dimension = dimension % aval.ndim
    index = iota(np.dtype(np.int32), aval.shape, dimension)
    return sort_p.bind(x, index, dimension=dimension, num_keys=1)[1]
