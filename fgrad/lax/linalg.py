"""fgrad.lax.linalg: ``jax.lax.linalg``'s decompositions at the primitive level (strict shapes
and dtypes, LAPACK's conventions), so that ``import fgrad.lax.linalg`` and
``from fgrad.lax import linalg`` both work as they do in JAX."""
from __future__ import annotations

from typing import Any

import numpy as np

from fgrad.control_flow import fori_loop
from fgrad.core.trace import get_aval
from fgrad.ops.elementwise import eq
from fgrad.ops.indexing import dynamic_index_in_dim
from fgrad.ops.lax_composites import select
from fgrad.ops.linalg import *  # noqa: F401,F403
from fgrad.ops.linalg import __all__ as _decompositions
from fgrad.ops import linalg_rules  # noqa: F401  (their derivative and batching rules)
from fgrad.ops.reduction import reduce_sum
from fgrad.ops.shape import broadcast_in_dim, iota

__all__ = list(_decompositions) + ["lu_pivots_to_permutation"]


def lu_pivots_to_permutation(pivots: Any, permutation_size: int) -> Any:
    """``jax.lax.linalg.lu_pivots_to_permutation(pivots, permutation_size)``: the permutation
    that getrf's row swaps ``pivots[..., k]`` (row k swapped with row ``pivots[k]``, in order)
    make of ``range(permutation_size)``, as int32 ``[..., permutation_size]``.

    >>> lu_pivots_to_permutation(np.array([2, 2, 2], np.int32), 4)
    Array([2, 0, 1, 3], dtype=int32)
    """
    aval = get_aval(pivots)
    if aval.dtype != np.int32:
        raise TypeError(f"lu_pivots_to_permutation takes int32 pivots, got {aval.dtype}; convert them with "
                        ".astype(np.int32)")
    if len(aval.shape) < 1:
        raise ValueError("lu_pivots_to_permutation takes pivots with at least one dimension, got a scalar")
    batch, k = tuple(aval.shape[:-1]), aval.shape[-1]
    size = int(permutation_size)
    if size < k:
        raise ValueError(f"Output permutation size {size} has to exceed the trailing dimension of the pivots. "
                         f"Got pivots size {k}")
    axis = len(batch)
    positions = broadcast_in_dim(iota(np.int32, size), batch + (size,), (axis,))

    def swap(i, perm):
        at_i = eq(positions, broadcast_in_dim(i, batch + (size,), ()))
        at_j = eq(positions, broadcast_in_dim(dynamic_index_in_dim(pivots, i, axis, keepdims=True),
                                              batch + (size,), tuple(range(axis + 1))))
        zero = np.zeros((), np.int32)
        p_i = broadcast_in_dim(reduce_sum(select(at_i, perm, broadcast_in_dim(zero, perm.shape, ())), (axis,)),
                               batch + (size,), tuple(range(axis)))
        p_j = broadcast_in_dim(reduce_sum(select(at_j, perm, broadcast_in_dim(zero, perm.shape, ())), (axis,)),
                               batch + (size,), tuple(range(axis)))
        return select(at_i, p_j, select(at_j, p_i, perm))
    return fori_loop(0, k, swap, positions)
