"""Reductions: reduce_sum (more of the family lives here too)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from fgrad.core.primitive import Primitive
from fgrad.core.trace import get_aval
from fgrad.core.types import ShapedArray
from fgrad.ops._util import canonical_axes
from fgrad.transforms.jvp import jvp_rules
from fgrad.transforms.vjp import transpose_rules
from fgrad.transforms.vmap import vmap_rules

__all__ = ["reduce_sum"]


def _reduced_shape(x: ShapedArray, axes: tuple) -> tuple:
    return tuple(s for i, s in enumerate(x.shape) if i not in axes)


def _reduce_sum_rule(x: ShapedArray, axes: tuple) -> ShapedArray:
    canonical_axes("reduce_sum", axes, x.ndim)
    return ShapedArray(_reduced_shape(x, axes), x.dtype, x.weak_type)


def _reduce_sum_impl(x: np.ndarray, axes: tuple) -> np.ndarray:
    return np.sum(x, axis=axes, dtype=x.dtype)


reduce_sum_p = Primitive("reduce_sum")
reduce_sum_p.def_impl(_reduce_sum_impl)
reduce_sum_p.def_abstract_eval(_reduce_sum_rule)
jvp_rules[reduce_sum_p] = lambda p, t, axes: (reduce_sum(p[0], axes), reduce_sum(t[0], axes))


def _reduce_sum_transpose(ct, x, axes):
    from fgrad.ops.shape import broadcast_in_dim
    kept = tuple(i for i in range(x.aval.ndim) if i not in axes)
    return [broadcast_in_dim(ct, x.aval.shape, kept)]


def _reduce_sum_vmap(axis, vals, dims, axes):
    (x,), (d,) = vals, dims
    new_axes = tuple(a + (a >= d) for a in axes)
    out_dim = d - sum(a < d for a in new_axes)
    return reduce_sum(x, new_axes), out_dim


transpose_rules[reduce_sum_p] = _reduce_sum_transpose
vmap_rules[reduce_sum_p] = _reduce_sum_vmap


def reduce_sum(x: Any, axes: Sequence[int]) -> Any:
    """Sum ``x`` over ``axes``."""
    ndim = get_aval(x).ndim
    axes = tuple(sorted(canonical_axes("reduce_sum", tuple(axes), ndim)))
    return reduce_sum_p.bind(x, axes=axes)
