"""Data parallelism by placement: the path ``jit`` takes for arguments placed with
``device_put`` on a mesh (the per-device program then runs through the runtime
``shard`` uses, ``fgrad.runtime.execute``).

The two lines (data parallelism by placement)::

    params = device_put(params, NamedSharding(mesh, P()))        # replicated
    batch = device_put(batch, NamedSharding(mesh, P('data')))    # split along dim 0
    params, loss = step(params, batch)                           # a jit-ted step

``jit`` hands calls with ShardedArray arguments to ``data_parallel_call``: a sharding
propagation pass walks the global jaxpr and gives each value a *layout*: replicated,
split along one dimension (over one mesh axis), or a partial sum (every device holds a
term). Elementwise operations of split and replicated values stay split (replicated
operands are sliced locally); reductions and contractions over the split dimension
give partial sums; a partial sum that meets anything but a linear operation is psum'd
(once per value, and as early as the linear chain allows); outputs that end partial are
psum'd, split outputs stay split. Gathers and scatters keep a split dimension they do
not index (and a split batch of indices); an operation that needs the whole split
dimension (sort, cumsum or argmax along it, an indexed or sliced-at-random dimension)
all-gathers it first and gives a replicated result. Bodies of cond, scan and while are
walked on their operands' layouts; branch outputs and loop carries that disagree are made
replicated (carries: iterated to a fixed point). The pass emits the per-device jaxpr and
runs it like ``shard``. Layouts it does not handle (static slices, pads or reshapes that
cut the split dimension) raise ``DataParallelError``: use explicit ``shard``.

This module is the pass's interpreter; the per-primitive rules are registered beside each
primitive in ``fgrad.ops`` (``fgrad.core.partition.partition_rules``, which documents the
rules and the context they are given).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from fgrad.compile import executable_for, executables
from fgrad.config import config
from fgrad.core.array import Array
from fgrad.core.ir import ClosedJaxpr, Eqn, Jaxpr, Literal, Var, closure_convert
from fgrad.core.partition import (PARTIAL, DataParallelError, PartitionSpec, convert_layout,  # noqa: F401
                                  default_rule, partition_error, partition_rules)
from fgrad.core.trace import get_aval, trace_to_jaxpr
from fgrad.core.types import ShapedArray
from fgrad.ops import collective
from fgrad.ops.elementwise import mul
from fgrad.ops.indexing import dynamic_slice
from fgrad.runtime.execute import run_shard
from fgrad.runtime.sharding import Mesh, NamedSharding, ShardedArray

__all__ = ["DataParallelError", "data_parallel_call", "check_placement"]


# --- the sharding-propagation pass: its interpreter ---------------------------------------------------------
#
# Each value gets a layout (``fgrad.core.partition``): None (replicated), an int d (split along
# dimension d over the data axis) or PARTIAL (a partial sum). Every equation is handed to its
# primitive's rule in ``partition_rules`` (registered beside the primitive in ``fgrad.ops``),
# which emits the per-device equations; primitives without one run on whole values.

class _DataParallelContext:
    """Layout conversions in the per-device program, each emitted at most once per value
    (the ``ctx`` of ``fgrad.core.partition``'s rules)."""

    def __init__(self, mesh: Mesh, axis: str):
        self.mesh, self.axis, self.n = mesh, axis, mesh.shape[axis]
        self._memo: dict[tuple, tuple[Any, Any]] = {}
        self.split_recipes: dict[int, tuple[Any, Callable]] = {}   # replicated value -> make(d) of its split
        self.full_recipes: dict[int, tuple[Any, Callable]] = {}    # partial value -> make() of its sum

    def _memoized(self, value: Any, target: Any, make: Callable) -> Any:
        key = (id(value), target)
        hit = self._memo.get(key)
        if hit is None:
            hit = self._memo[key] = (value, make())  # the value is kept so its id stays unique
        return hit[1]

    def full(self, value: Any, layout) -> Any:
        """The whole value on every device: psum a partial sum, all_gather a split value."""
        if layout is None:
            return value
        if layout == PARTIAL:
            return self._memoized(value, "full", lambda: self._sum(value))
        return self._memoized(value, "full", lambda: collective.all_gather(value, self.axis, axis=layout, tiled=True))

    def _sum(self, value: Any) -> Any:
        recipe = self.full_recipes.get(id(value))
        if recipe is not None:  # a linear function of one partial value: psum that one instead
            return recipe[1]()
        return collective.psum_p.bind(value, axis_name=(self.axis,))

    def split(self, value: Any, layout, d: int, eqn: Eqn) -> Any:
        """This device's block of the value along dimension ``d``."""
        if layout == d:
            return value
        if layout == PARTIAL:
            return self._memoized(value, ("split", d), lambda: collective.psum_scatter(
                value, self.axis, scatter_dimension=d, tiled=True))
        if layout is not None:
            value = self.full(value, layout)
        size = get_aval(value).shape[d]
        if size % self.n:
            raise partition_error(eqn, f"dimension {d} of a {get_aval(value).str_short()} operand must be split "
                                       f"over {self.n} devices to meet a split operand, and {size} is not divisible "
                                       f"by {self.n}")
        return self._memoized(value, ("split", d), lambda: self._slice(value, d, eqn))

    def _slice(self, value: Any, d: int, eqn: Eqn) -> Any:
        recipe = self.split_recipes.get(id(value))
        if recipe is not None:
            return recipe[1](d)
        shape = get_aval(value).shape
        block = shape[d] // self.n
        starts = [0] * len(shape)
        starts[d] = self.block_start(block)
        return dynamic_slice(value, starts, tuple(block if i == d else s for i, s in enumerate(shape)))

    def local_shape(self, shape: Sequence[int], d: int) -> tuple[int, ...]:
        """``shape`` with dimension ``d`` cut to one device's block."""
        return tuple(s // self.n if i == d else s for i, s in enumerate(shape))

    def block_start(self, block: int) -> Any:
        """This device's offset (int32) along a dimension cut into blocks of ``block``."""
        return mul(collective.axis_index(self.axis), np.int32(block))

    def pmax(self, value: Any) -> Any:
        """The maximum of ``value`` over the devices of the data axis."""
        return collective.pmax_p.bind(value, axis_name=(self.axis,))

    def pmin(self, value: Any) -> Any:
        """The minimum of ``value`` over the devices of the data axis."""
        return collective.pmin_p.bind(value, axis_name=(self.axis,))

    def walk(self, jaxpr: Jaxpr, consts: list, ins: list) -> list:
        """Emit the per-device program of ``jaxpr`` inline, given its inputs' (value, layout)."""
        return _walk(self, jaxpr, consts, ins)

    def per_device_body(self, closed: ClosedJaxpr, layouts: list, want: list | None = None):
        """The per-device jaxpr of ``closed`` on inputs of ``layouts``, and its outputs' layouts
        (converted to ``want``'s entries other than KEEP)."""
        return _per_device_body(self, closed, layouts, want)


def _local_aval(aval: ShapedArray, layout, n: int) -> ShapedArray:
    if not isinstance(layout, int):
        return aval
    return aval.update(shape=tuple(s // n if i == layout else s for i, s in enumerate(aval.shape)))


def _per_device_body(ctx, closed: ClosedJaxpr, layouts: list, want: list | None = None):
    out_layouts: list = []

    def body(*xs):
        inner = _DataParallelContext(ctx.mesh, ctx.axis)
        outs = _walk(inner, closed.jaxpr, [(c, None) for c in closed.consts], list(zip(xs, layouts)))
        if want is not None:
            outs = [convert_layout(inner, v, l, w) for (v, l), w in zip(outs, want)]
        out_layouts[:] = [l for _, l in outs]
        return [v for v, _ in outs]

    avals = [_local_aval(a, l, ctx.n) for a, l in zip(closed.in_avals, layouts)]
    return trace_to_jaxpr(body, avals), out_layouts


def _walk(ctx, jaxpr: Jaxpr, consts: list, ins: list) -> list:
    """Emit the per-device program of ``jaxpr`` given its inputs' (value, layout)."""
    env: dict[Var, tuple[Any, Any]] = dict(zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, ins))

    def read(atom):
        return (atom.value, None) if isinstance(atom, Literal) else env[atom]

    for eqn in jaxpr.eqns:
        rule = partition_rules.get(eqn.primitive, default_rule)
        env.update(zip(eqn.outvars, rule(ctx, eqn, [read(a) for a in eqn.invars])))
    return [read(v) for v in jaxpr.outvars]


# -- the entry point jit calls -----------------------------------------------------------------------------------

def _spec_of(layout, axis: str) -> PartitionSpec:
    return PartitionSpec() if layout is None else PartitionSpec(*([None] * layout), axis)


def _input_layouts(args: Sequence[Any]) -> tuple[Mesh, str, list]:
    mesh, axis, layouts = None, None, []
    for k, arg in enumerate(args):
        if not isinstance(arg, ShardedArray):
            layouts.append(None)
            continue
        sharding = arg.sharding
        if mesh is None:
            mesh = sharding.mesh
        elif sharding.mesh != mesh:
            raise DataParallelError(f"jit: arguments are placed on different meshes ({mesh} and {sharding.mesh}); "
                                    "device_put them all onto one mesh")
        split = [(d, sharding.spec.axes(d)) for d in range(len(sharding.spec)) if sharding.spec.axes(d)]
        if not split:
            layouts.append(None)
            continue
        if len(split) > 1 or len(split[0][1]) > 1:
            raise DataParallelError(f"jit: an argument placed with {sharding.spec} is split over several mesh axes "
                                    "or dimensions; the data-parallel path splits one dimension over one axis. "
                                    "Use fgrad.shard for other layouts.")
        d, (name,) = split[0]
        if axis is None:
            axis = name
        elif name != axis:
            raise DataParallelError(f"jit: arguments are split over different mesh axes ({axis!r} and {name!r}); "
                                    "the data-parallel path splits over one axis. Use fgrad.shard for more.")
        layouts.append(d)
    return mesh, axis if axis is not None else mesh.axis_names[0], layouts


def check_placement(leaves: Sequence[Any]) -> None:
    """Raise ``DataParallelError`` for arguments the data-parallel path cannot run (placed on
    different meshes, split over several axes); ``jit`` calls it before tracing."""
    _input_layouts(leaves)


class _Plan:
    """The per-device program of one jaxpr for one placement of its inputs."""

    __slots__ = ("jaxpr", "body", "consts", "in_specs", "out_specs")

    def __init__(self, jaxpr, body, consts, in_specs, out_specs):
        self.jaxpr, self.body, self.consts = jaxpr, body, consts
        self.in_specs, self.out_specs = in_specs, out_specs


def _plan(jaxpr: ClosedJaxpr, mesh: Mesh, axis: str, layouts: list, name: str) -> _Plan:
    """The per-device program of ``jaxpr`` split along ``axis`` (cached in the executable cache)."""
    return executables.get_or_compile(("data-parallel", id(jaxpr), mesh, axis, tuple(layouts)),
                                      lambda: _build_plan(jaxpr, mesh, axis, layouts, name), keep_alive=jaxpr)


def _build_plan(jaxpr: ClosedJaxpr, mesh: Mesh, axis: str, layouts: list, name: str) -> _Plan:
    n = mesh.shape[axis]
    local_avals = []
    for k, (aval, layout) in enumerate(zip(jaxpr.in_avals, layouts)):
        local_avals.append(aval if layout is None else aval.update(shape=tuple(
            s // n if i == layout else s for i, s in enumerate(aval.shape))))
    out_layouts: list = []

    def body(*xs):
        ctx = _DataParallelContext(mesh, axis)
        outs = _walk(ctx, jaxpr.jaxpr, [(c, None) for c in jaxpr.consts], list(zip(xs, layouts)))
        out_layouts[:] = [None if l == PARTIAL else l for _, l in outs]
        return [ctx.full(v, l) if l == PARTIAL else v for v, l in outs]

    with collective.axis_frame(mesh.shape):
        closed = trace_to_jaxpr(body, local_avals)
    converted, consts = closure_convert(closed)  # constants made while emitting: replicated inputs
    plan = _Plan(jaxpr, converted, consts, (PartitionSpec(),) * len(consts) + tuple(_spec_of(l, axis) for l in layouts),
                 tuple(_spec_of(l, axis) for l in out_layouts))
    return plan


def data_parallel_call(jaxpr: ClosedJaxpr, consts: Sequence[Any], leaves: Sequence[Any],
                       name: str = "jit") -> list[ShardedArray]:
    """Run a jit-ted function's (const-free) jaxpr data-parallel over the mesh its sharded
    arguments are placed on; returns ShardedArrays (replicated, or split like the batch)."""
    args = [*consts, *leaves]
    mesh, axis, layouts = _input_layouts(args)
    if all(layout is None for layout in layouts):
        return _run_replicated(jaxpr, mesh, args, name)
    plan = _plan(jaxpr, mesh, axis, layouts, name)
    if config.debug >= 1:
        print(f"[fgrad] {name}: data-parallel over {mesh} axis {axis!r}; inputs "
              f"{[str(s) for s in plan.in_specs]}, outputs {[str(s) for s in plan.out_specs]}", flush=True)
    return run_shard(plan.body, mesh, plan.in_specs, plan.out_specs, [*plan.consts, *args], name)


def _run_replicated(jaxpr: ClosedJaxpr, mesh: Mesh, args: Sequence[Any], name: str) -> list[ShardedArray]:
    """Nothing is split, so every device would compute the same values: compute them once,
    with all the cores (e.g. evaluating a replicated model), and place them replicated."""
    if config.debug >= 1:
        print(f"[fgrad] {name}: every argument is replicated on {mesh}; computed once", flush=True)
    values = [a._value if isinstance(a, Array) else np.asarray(a, aval.dtype)
              for a, aval in zip(args, jaxpr.in_avals)]
    outs = executable_for(jaxpr)(*values)
    sharding, local = NamedSharding(mesh, PartitionSpec()), set(mesh.local_ranks())
    placed = []
    for out, aval in zip(outs, jaxpr.out_avals):
        out = np.asarray(out)
        if any(out is v for v in values) or not out.flags.owndata:
            out = np.array(out)   # never freeze (or share) the caller's memory
        out.flags.writeable = False
        placed.append(ShardedArray._from_shards([out if r in local else None for r in range(mesh.size)],
                                                sharding, aval.strip_weak_type()))
    return placed
