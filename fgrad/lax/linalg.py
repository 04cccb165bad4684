"""fgrad.lax.linalg: ``jax.lax.linalg``'s decompositions at the primitive level (strict shapes
and dtypes, LAPACK's conventions), so that ``import fgrad.lax.linalg`` and
``from fgrad.lax import linalg`` both work as they do in JAX."""
from __future__ import annotations

from typing import Any

import numpy as np

from fgrad.control_flow import fori_loop, scan
from fgrad.core import dtypes
from fgrad.core.trace import get_aval
from fgrad.ops.elementwise import abs as abs_, convert_element_type, div, eq, mul, sub
from fgrad.ops.extremum import max as max_
from fgrad.ops.indexing import dynamic_index_in_dim
from fgrad.ops.lax_composites import select
from fgrad.ops.linalg import *  # noqa: F401,F403
from fgrad.ops.linalg import __all__ as _decompositions
from fgrad.ops import linalg_rules  # noqa: F401  (their derivative and batching rules)
from fgrad.ops.reduction import reduce_max, reduce_or, reduce_sum
from fgrad.ops.shape import broadcast_in_dim, iota, transpose

__all__ = list(_decompositions) + ["lu_pivots_to_permutation", "tridiagonal_solve"]


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


def tridiagonal_solve(dl: Any, d: Any, du: Any, b: Any, *, perturb_singular: bool = False) -> Any:
    """``jax.lax.linalg.tridiagonal_solve(dl, d, du, b, *, perturb_singular=False)``: ``x`` with
    ``A x = b`` for the tridiagonal ``A`` of sub-, main and super-diagonals ``dl``, ``d``, ``du``
    (each ``[..., m]``; ``dl[..., 0]`` and ``du[..., m-1]`` are ignored) and ``b[..., m, n]``.

    Thomas's algorithm (elimination without pivoting: exact for the diagonally dominant systems
    it is meant for). A singular system (a zero pivot) gives NaN, as JAX's LAPACK path does;
    with ``perturb_singular`` a zero pivot becomes ``eps * max|A|`` instead. Differentiable.
    """
    avals = [get_aval(v) for v in (dl, d, du, b)]
    for k, aval in enumerate(avals):
        if not dtypes.is_differentiable(aval.dtype):
            raise TypeError(f"tridiagonal_solve does not accept dtype {aval.dtype} at position {k}: it takes "
                            "floating or complex arrays")
    if len({a.dtype for a in avals}) != 1:
        raise TypeError(f"tridiagonal_solve takes one dtype, got {[a.dtype.name for a in avals]}")
    if len(avals[3].shape) < 2:
        raise TypeError(f"Input 3 to tridiagonal_solve must have rank at least 2, but got shape={avals[3].shape}")
    diag_shape = avals[3].shape[:-1]
    for name, aval in zip(("dl", "d", "du"), avals[:3]):
        if aval.shape != diag_shape:
            raise TypeError(f"tridiagonal_solve: {name} must have shape {diag_shape} (b's without its last axis), "
                            f"got {aval.shape}")
    *batch, m, n = avals[3].shape
    if m == 0:
        return b
    rank = len(batch)
    to_front = (rank, *range(rank))
    rows = [transpose(v, to_front) for v in (dl, d, du)]                 # [m, ...]
    rhs = transpose(b, (rank, *range(rank), rank + 1))                    # [m, ..., n]
    zero = broadcast_in_dim(np.zeros((), avals[3].dtype), (*batch,), ())
    first_row = eq(iota(np.int32, (m, *batch), 0), 0)
    last_row = eq(iota(np.int32, (m, *batch), 0), m - 1)
    lower = select(first_row, broadcast_in_dim(zero, (m, *batch), tuple(range(1, rank + 1))), rows[0])
    upper = select(last_row, broadcast_in_dim(zero, (m, *batch), tuple(range(1, rank + 1))), rows[2])
    wide = lambda v: broadcast_in_dim(v, (*batch, n), tuple(range(rank)))   # noqa: E731  [...] -> [..., n]
    tiny = _perturbation(rows, avals[3].dtype) if perturb_singular else None

    def forward(carry, row):
        c_prev, y_prev = carry
        lo, di, up, bi = row
        pivot = sub(di, mul(lo, c_prev))
        if tiny is not None:
            pivot = select(eq(pivot, zero), tiny, pivot)
        c = div(up, pivot)
        y = div(sub(bi, mul(wide(lo), y_prev)), wide(pivot))
        return (c, y), (c, y, eq(pivot, zero))

    init = (zero, broadcast_in_dim(np.zeros((), avals[3].dtype), (*batch, n), ()))
    _, (cs, ys, zero_pivot) = scan(forward, init, (lower, rows[1], upper, rhs))

    def backward(x_next, row):
        c, y = row
        x = sub(y, mul(wide(c), x_next))
        return x, x
    _, xs = scan(backward, init[1], (cs, ys), reverse=True)
    if tiny is None:      # LAPACK reports a singular system; JAX then returns NaN
        singular = wide(reduce_or(zero_pivot, (0,)))
        nan = broadcast_in_dim(np.full((), np.nan, avals[3].dtype), (m, *batch, n), ())
        xs = select(broadcast_in_dim(singular, (m, *batch, n), tuple(range(1, rank + 2))), nan, xs)
    return transpose(xs, (*range(1, rank + 1), 0, rank + 1))


def _perturbation(rows: list, dtype: np.dtype) -> Any:
    """``eps * max|A|`` per system: what a zero pivot becomes with ``perturb_singular``."""
    biggest = reduce_max(max_(max_(abs_(rows[0]), abs_(rows[1])), abs_(rows[2])), (0,))
    aval = get_aval(biggest)
    eps = broadcast_in_dim(np.asarray(np.finfo(dtype).eps, aval.dtype), aval.shape, ())
    return convert_element_type(mul(biggest, eps), dtype)
