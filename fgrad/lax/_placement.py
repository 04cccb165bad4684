"""``jax.lax.optimization_barrier`` and ``jax.lax.with_sharding_constraint``: functions that
are the identity on values and speak to the compiler (what it may fuse, where a value lies)."""
from __future__ import annotations

from typing import Any

from fgrad import tree
from fgrad.core.trace import Tracer, get_aval
from fgrad.ops.lax_shape_helpers import stage
from fgrad.runtime.sharding import NamedSharding, PartitionSpec, block_shape, device_put

__all__ = ["optimization_barrier", "with_sharding_constraint"]


def optimization_barrier(operand: Any) -> Any:
    """``jax.lax.optimization_barrier(operand)``: the identity on a pytree of arrays (each leaf
    becomes an fgrad array). In JAX it also stops XLA from moving computation across it; fgrad's
    scheduler does not reorder work to save memory the way XLA's rematerialization does, so the
    identity is what it needs. Differentiable (the derivative is the identity) and batchable.

    >>> y, z = optimization_barrier((x, 2 * x))   # doctest: +SKIP
    """
    return tree.tree_map(stage, operand)


def with_sharding_constraint(x: Any, shardings: Any) -> Any:
    """``jax.lax.with_sharding_constraint(x, shardings)``: ``x`` (a pytree) laid out as
    ``shardings`` says: one ``NamedSharding`` or a pytree prefix of ``x`` of them (a bare
    ``PartitionSpec`` needs a mesh, so only ``NamedSharding`` places an array).

    Outside a trace this is ``fgrad.device_put(x, shardings)``: the result is a ShardedArray cut
    as asked. Inside ``jit``/``grad``/``vmap`` the constraint is checked (rank, mesh axes,
    divisibility) and the values pass through unchanged, as ``device_put`` does there: fgrad's
    data-parallel partitioner picks each intermediate's layout by its own rules, so a
    constraint inside ``jit`` does not force a layout. Values are never affected either way.
    """
    leaves, _ = tree.tree_flatten(x)
    is_target = lambda t: t is None or isinstance(t, (NamedSharding, PartitionSpec))
    try:
        targets = tree.broadcast_prefix(shardings, x, is_leaf=is_target)
    except ValueError as err:
        raise ValueError(f"with_sharding_constraint: shardings must be one sharding or a pytree prefix of x: "
                         f"{err}") from None
    for leaf, target in zip(leaves, targets):
        _check(leaf, target)
    if any(isinstance(leaf, Tracer) for leaf in leaves):
        return x
    if any(isinstance(t, PartitionSpec) for t in targets):
        raise ValueError("with_sharding_constraint: a bare PartitionSpec names no mesh outside jit; pass "
                         "NamedSharding(mesh, spec)")
    return device_put(x, shardings)


def _check(leaf: Any, target: Any) -> None:
    aval = get_aval(leaf)
    if target is None:
        return
    if not isinstance(target, (NamedSharding, PartitionSpec)):
        raise TypeError(f"with_sharding_constraint: expected NamedSharding or PartitionSpec shardings, got "
                        f"{type(target).__name__}")
    spec = target.spec if isinstance(target, NamedSharding) else target
    if len(spec) > aval.ndim:
        raise ValueError(f"with_sharding_constraint: the spec {spec} has {len(spec)} entries but the array "
                         f"{aval.str_short()} has rank {aval.ndim}")
    if isinstance(target, NamedSharding):
        block_shape(spec, target.mesh, aval.shape, "with_sharding_constraint")
