"""``jax.lax.ragged_dot`` (grouped matrix products, as in mixture-of-experts layers) and
``jax.lax.platform_dependent``, written with lax operations."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from fgrad.core.trace import get_aval
from fgrad.ops.contraction import dot_general
from fgrad.ops.elementwise import convert_element_type, eq, le
from fgrad.ops.lax_composites import select
from fgrad.ops.reduction import cumsum, reduce_sum
from fgrad.ops.shape import broadcast_in_dim, iota
from fgrad.runtime.devices import default_platform

__all__ = ["ragged_dot", "platform_dependent"]


def ragged_dot(lhs: Any, rhs: Any, group_sizes: Any, precision: Any = None, preferred_element_type: Any = None,
               group_offset: Any = None, out_sharding: Any = None) -> Any:
    """``jax.lax.ragged_dot(lhs, rhs, group_sizes, precision=None, preferred_element_type=None,
    group_offset=None)``: ``lhs[m, k]``'s rows split into ``g`` consecutive groups of
    ``group_sizes[g]`` rows, group ``i`` multiplied by ``rhs[i, k, n]``; rows past the groups
    give zeros. Differentiable in ``lhs`` and ``rhs``.

    >>> ragged_dot(x, experts, np.array([2, 1, 2], np.int32))   # doctest: +SKIP
    """
    if group_offset is not None:
        raise NotImplementedError("ragged_dot: group_offset is not supported (nor is it by JAX's CPU backend)")
    if out_sharding is not None:
        raise NotImplementedError("ragged_dot: out_sharding is not supported; shard the result with "
                                  "lax.with_sharding_constraint")
    la, ra, ga = get_aval(lhs), get_aval(rhs), get_aval(group_sizes)
    if len(la.shape) != 2 or len(ra.shape) != 3 or len(ga.shape) != 1:
        raise TypeError(f"ragged_dot takes lhs[m, k], rhs[g, k, n] and group_sizes[g], got shapes {la.shape}, "
                        f"{ra.shape} and {ga.shape}")
    if not np.issubdtype(ga.dtype, np.integer):
        raise TypeError(f"ragged_dot requires integer group_sizes, got {ga.dtype}")
    (m, k), (g, k2, n) = la.shape, ra.shape
    if k != k2:
        raise TypeError(f"ragged_dot: lhs has {k} columns but rhs's groups have {k2} rows")
    if ga.shape[0] != g:
        raise TypeError(f"expected rhs group dimension size to be {ga.shape[0]}, got {g}.")
    # group of each row: how many group ends lie at or before it (g: past the last group)
    ends = broadcast_in_dim(cumsum(convert_element_type(group_sizes, np.int32)), (g, m), (0,))
    rows = iota(np.int32, (g, m), 1)
    group_of_row = reduce_sum(convert_element_type(le(ends, rows), np.int32), (0,))
    one_hot = eq(broadcast_in_dim(group_of_row, (m, g), (0,)), iota(np.int32, (m, g), 1))
    products = dot_general(lhs, rhs, (((1,), (1,)), ((), ())), precision=precision,
                           preferred_element_type=preferred_element_type)          # [m, g, n]
    zeros = broadcast_in_dim(np.zeros((), get_aval(products).dtype), (m, g, n), ())
    return reduce_sum(select(broadcast_in_dim(one_hot, (m, g, n), (0, 1)), products, zeros), (1,))


def platform_dependent(*args: Any, default: Callable | None = None, **per_platform: Callable) -> Any:
    """``jax.lax.platform_dependent(*args, default=None, **per_platform)``: the branch for the
    platform the program runs on (``cpu``, ``cuda``; JAX's ``gpu`` names the CUDA one too) applied to
    ``args``, else ``default``. fgrad decides while tracing, from the default backend."""
    platform = default_platform()
    branch = per_platform.get(platform) or (per_platform.get("gpu") if platform == "cuda" else None) or default
    if branch is None:
        raise ValueError(f"platform_dependent: no branch for platform {platform!r} and no default "
                         f"(branches given: {sorted(per_platform)})")
    return branch(*args)
