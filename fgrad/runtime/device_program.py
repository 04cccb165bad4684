"""The per-device program ``shard`` runs on every device: its jaxpr split at the collectives
into natively compiled stages, the collectives run between them by a ``Communicator``.

How a per-device jaxpr becomes a ``DeviceProgram``:

1. Call-like equations (``call_body_params``: jit, remat, custom_jvp/custom_vjp calls) whose
   bodies use a mesh axis are inlined (the program is only run now: differentiation has
   already happened), so the collectives in them are top-level equations.
2. Equations are staged by how many collectives they depend on. Each stage is ONE compiled
   program (``fgrad.lower``), and all collectives between two stages are performed together
   in one exchange of the communicator. ``axis_index`` becomes an input (the device's
   coordinate).
3. A control-flow equation (one with a ``HostDriver``: cond, while, scan) whose bodies use a
   mesh axis also sits between two stages, as a *host node*: its branch or loop runs on the
   host, and each of its bodies is a DeviceProgram of its own (split and compiled once, by
   these same steps), run per branch taken or per iteration. Every device runs the same
   nodes in the same order, so their collectives stay in lockstep. A node whose path (the
   branch taken, the trip count) may differ between devices, by the replication typing,
   cannot hold collectives: that is an error before anything runs, as in JAX (without
   ``check_vma`` the communicator finds such a divergence at run time and raises).
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Sequence

import numpy as np

from fgrad.backends.base import Buffer
from fgrad.core.ir import ClosedJaxpr, Eqn, Jaxpr, Literal, Var, inline_calls, nested_jaxprs
from fgrad.core.primitive import Primitive
from fgrad.ops import collective
from fgrad.ops.control import HostDriver, host_drivers
from fgrad.runtime.communicator import CollectiveRequest, Communicator
from fgrad.runtime.sharding import Mesh, host_block
from fgrad.transforms.vmap import binds_axis_name
from fgrad.backends import cpu, cuda
from fgrad.compile.cache import executables
from fgrad.compile.pipeline import compile_jaxpr

__all__ = ["DeviceProgram", "device_program", "COLLECTIVE_KINDS"]


# --- collectives on devices ---------------------------------------------------------------------------

#: The collective primitives a device program exchanges through its communicator, by kind.
COLLECTIVE_KINDS: dict[Primitive, str] = {
    collective.psum_p: "psum", collective.pmax_p: "pmax", collective.pmin_p: "pmin",
    collective.all_gather_p: "all_gather", collective.psum_scatter_p: "psum_scatter",
    collective.ppermute_p: "ppermute",
}


class _DeviceContext(threading.local):
    """The device this thread is running (set only while it runs a device program)."""

    def __init__(self):
        self.comm: Communicator | None = None
        self.rank = 0
        self.mesh: Mesh | None = None


device_context = _DeviceContext()


def axis_names_of(params: dict) -> tuple:
    names = params["axis_name"]
    return names if isinstance(names, tuple) else (names,)


def group_of(mesh: Mesh, rank: int, names: tuple) -> tuple[int, ...]:
    for name in names:
        if name not in mesh.shape:
            raise collective.unbound_axis_error(name)
    return mesh.group(rank, names)


def _device_impl(kind: str, fallback: Callable) -> Callable:
    """A collective's implementation: through the device's communicator inside a device
    program, else the primitive's own implementation (the unbound-axis error)."""
    def impl(x, **params):
        if device_context.comm is None:
            return fallback(x, **params)
        group = group_of(device_context.mesh, device_context.rank, axis_names_of(params))
        request = CollectiveRequest(kind, np.asarray(x), group, params)
        return device_context.comm.run(device_context.rank, [request])[0]
    return impl


def _device_axis_index(*, axis_name, _fallback=collective.axis_index_p.impl):
    if device_context.comm is None:
        return _fallback(axis_name=axis_name)
    group_of(device_context.mesh, device_context.rank, (axis_name,))
    return np.int32(device_context.mesh.coords(device_context.rank)[axis_name])


# The backend runs the collectives. A device program never evaluates one itself (they are
# stage boundaries or inside host nodes); a program that still reaches the reference
# evaluator with one inside reaches the communicator through these implementations, and
# outside a device program they keep raising the unbound-axis error.
for _prim, _kind in COLLECTIVE_KINDS.items():
    _prim.def_impl(_device_impl(_kind, _prim.impl))
collective.axis_index_p.def_impl(_device_axis_index)


# --- what the bodies of an equation do with the mesh axes --------------------------------------------

def uses_mesh_axis(eqn: Eqn, mesh: Mesh) -> bool:
    """Do the jaxprs inside ``eqn`` name a mesh axis (a collective or ``axis_index``)?"""
    inner = {k: v for k, v in eqn.params.items() if k != "axis_name"}
    return any(binds_axis_name(inner, a) for a in mesh.axis_names)


def communicating_axes(eqn: Eqn, mesh: Mesh) -> frozenset:
    """The mesh axes that collectives inside ``eqn``'s jaxprs exchange over."""
    axes: set = set()
    for jaxpr in nested_jaxprs(eqn.params.values()):
        for inner in jaxpr.eqns:
            if inner.primitive in COLLECTIVE_KINDS:
                axes.update(axis_names_of(inner.params))
            axes |= communicating_axes(inner, mesh)
    return frozenset(axes) & frozenset(mesh.axis_names)


def _closed_bodies(values) -> list[ClosedJaxpr]:
    found: list[ClosedJaxpr] = []
    for value in values:
        if isinstance(value, ClosedJaxpr):
            found.append(value)
        elif isinstance(value, (tuple, list)):
            found.extend(_closed_bodies(value))
    return found


def _literal_value(atom: Literal) -> np.ndarray:
    return np.asarray(atom.value, atom.aval.dtype)


def _axes(axes) -> str:
    return ", ".join(repr(a) for a in sorted(axes, key=str))


# --- the program ----------------------------------------------------------------------------------------

class _HostNode:
    """A control-flow equation whose bodies use mesh axes: driven from the host, each body a
    DeviceProgram of its own (see the module doc)."""

    def __init__(self, eqn: Eqn, driver: HostDriver, mesh: Mesh, name: str):
        self.eqn = eqn
        self.driver = driver
        self.programs: dict[int, DeviceProgram] = {}
        for k, body in enumerate(_closed_bodies(eqn.params.values())):
            if id(body) not in self.programs:
                self.programs[id(body)] = DeviceProgram(body, mesh, f"{name}_body{k}")

    def compile(self, ranks: Sequence[int]) -> None:
        for program in self.programs.values():
            program.compile(ranks)

    def run(self, rank: int, comm: Communicator, args: list) -> list:
        """Drive the equation as device ``rank``: the driver decides on host values, and each
        body it runs is this device's compiled program of it."""
        def run_body(body: ClosedJaxpr, body_args: Sequence[Any]) -> list:
            outs = self.programs[id(body)].run(rank, comm, body_args, finish=False)
            return [np.asarray(host_block(o)) for o in outs]

        return self.driver.drive(run_body, *[host_block(a) for a in args], **self.eqn.params)


class _Boundary:
    """What runs between two stages: the collectives, performed together in one exchange
    (``eqns``), then the host nodes, in program order."""

    def __init__(self):
        self.eqns: list[Eqn] = []
        self.nodes: list[_HostNode] = []


class DeviceProgram:
    """A per-device jaxpr split at its collectives into compiled stages (see the module doc)."""

    def __init__(self, closed: ClosedJaxpr, mesh: Mesh, name: str):
        self.mesh = mesh
        self.name = name
        closed = inline_calls(closed, lambda eqn: uses_mesh_axis(eqn, mesh))
        jaxpr = closed.jaxpr
        self.consts = dict(zip(jaxpr.constvars, closed.consts))   # those of inlined bodies
        self.invars = list(jaxpr.invars)
        self.outvars = list(jaxpr.outvars)
        self.index_vars: list[tuple[Var, str]] = []  # axis_index outputs, fed per device
        stage_of: dict[Var, int] = {v: 0 for v in [*jaxpr.constvars, *jaxpr.invars]}
        stages: list[list[Eqn]] = [[]]
        boundaries: list[_Boundary] = [_Boundary()]
        for eqn in jaxpr.eqns:
            if eqn.primitive is collective.axis_index_p:
                axis = eqn.params["axis_name"]
                group_of(mesh, 0, (axis,))
                self.index_vars.append((eqn.outvars[0], axis))
                stage_of[eqn.outvars[0]] = 0
                continue
            stage = max([stage_of[v] for v in eqn.invars if isinstance(v, Var)], default=0)
            while len(stages) <= stage + 1:
                stages.append([])
                boundaries.append(_Boundary())
            if eqn.primitive in COLLECTIVE_KINDS:
                group_of(mesh, 0, axis_names_of(eqn.params))
                boundaries[stage].eqns.append(eqn)
            elif (node := self._host_node(eqn, sum(len(b.nodes) for b in boundaries))) is not None:
                boundaries[stage].nodes.append(node)
            else:
                stages[stage].append(eqn)
                stage_of.update((v, stage) for v in eqn.outvars)
                continue
            stage_of.update((v, stage + 1) for v in eqn.outvars)
        while stages and not stages[-1] and not boundaries[-1].eqns and not boundaries[-1].nodes:
            stages.pop()
            boundaries.pop()
        self.boundaries = boundaries
        self.segments = self._segments(stages, boundaries)
        # a device that skips a collective (a branch or trip count differing between devices,
        # unchecked without check_vma) meets the others once more at the end and errs there
        self.nested_collectives = any(communicating_axes(e, mesh) for e in jaxpr.eqns)
        self._executables: dict[int, list[Callable | None]] = {}
        self._lock = threading.Lock()

    def _host_node(self, eqn: Eqn, number: int) -> _HostNode | None:
        """The host node of a control-flow equation whose bodies use a mesh axis, else None."""
        driver = host_drivers.get(eqn.primitive)
        if driver is None or not uses_mesh_axis(eqn, self.mesh):
            return None
        varying, talking = driver.decision_vma(eqn), communicating_axes(eqn, self.mesh)
        if varying and talking:
            raise ValueError(
                f"shard({self.name}): a `{eqn.primitive.name}` has collectives over mesh axes {_axes(talking)} "
                f"inside it, but the path it takes (which branch, how many iterations) differs between devices "
                f"along mesh axes {_axes(varying)}: its predicate varies over them. Every device must run the "
                "same collectives in the same order, so devices taking different paths would wait for each "
                f"other forever. Compute the collective outside the {eqn.primitive.name} on every device (and "
                "pick its result with the predicate), or make the predicate the same on every device (reduce "
                "it first, e.g. with lax.pmax or lax.psum). (shard(..., check_vma=False) skips this check; "
                "devices that do take different paths then stop with a CollectiveError.)")
        return _HostNode(eqn, driver, self.mesh, f"{self.name}_{eqn.primitive.name}{number}")

    def _segments(self, stages: list[list[Eqn]], boundaries: list[_Boundary]) -> list:
        """Per stage: (const-free jaxpr, its input vars, its output vars), or None when empty."""
        needed_after: list[set[Var]] = [set() for _ in stages]
        later: set[Var] = {v for v in self.outvars if isinstance(v, Var)}
        for k in reversed(range(len(stages))):
            after = [*boundaries[k].eqns, *[n.eqn for n in boundaries[k].nodes]]
            later |= {v for e in after for v in e.invars if isinstance(v, Var)}
            needed_after[k] = set(later)
            later |= {v for e in stages[k] for v in e.invars if isinstance(v, Var)}
        segments = []
        for k, eqns in enumerate(stages):
            defined = {v for e in eqns for v in e.outvars}
            inputs: list[Var] = []
            for e in eqns:
                for v in e.invars:
                    if isinstance(v, Var) and v not in defined and v not in inputs:
                        inputs.append(v)
            outputs = [v for e in eqns for v in e.outvars if v in needed_after[k]]
            if not outputs:
                segments.append(None)
                continue
            segments.append((ClosedJaxpr(Jaxpr([], inputs, eqns, outputs), []), inputs, outputs))
        return segments

    @property
    def nodes(self) -> list[_HostNode]:
        return [n for b in self.boundaries for n in b.nodes]

    def prepare(self, ranks: Sequence[int]) -> None:
        """Compile every stage (and every host node's bodies') once per device that will run
        it (compiled programs hold scratch memory, so devices running at once each need their
        own). The devices run side by side, so each is compiled for the device's share of the
        cores."""
        with self._lock, cpu.thread_budget(cpu.share_of_threads(len(ranks))):
            self.compile(ranks)

    def compile(self, ranks: Sequence[int]) -> None:
        for rank in ranks:
            if rank not in self._executables:
                device = self.mesh.device_list[rank]   # a GPU's stages compile for it
                self._executables[rank] = [
                    None if seg is None else compile_jaxpr(seg[0], f"{self.name}_stage{k}", device=device)
                    for k, seg in enumerate(self.segments)]
        for node in self.nodes:
            node.compile(ranks)

    def run(self, rank: int, comm: Communicator, args: Sequence[Any], finish: bool = True) -> list[Any]:
        """Run the program as device ``rank``; collectives go through ``comm``. On a GPU,
        blocks already there (a ShardedArray's) are used in place and others copied in once,
        stages and collectives pass GPU buffers along, and the outputs stay on the GPU.
        ``finish=False`` for a host node's body: the program it is part of meets the others
        at its end."""
        device = self.mesh.device_list[rank]
        on_gpu = device.platform == "cuda"
        if on_gpu:
            rt = cuda.runtime(device)
            args = [a if isinstance(a, Buffer) and a.device == device else rt.put(np.asarray(host_block(a)))
                    for a in args]
        env: dict[Var, Any] = dict(self.consts)
        env.update(zip(self.invars, args))
        coords = self.mesh.coords(rank)
        for var, axis in self.index_vars:
            env[var] = np.int32(coords[axis])

        def read(atom):
            return _literal_value(atom) if isinstance(atom, Literal) else env[atom]

        executables = self._executables[rank]
        for k, segment in enumerate(self.segments):
            if segment is not None:
                _, inputs, outputs = segment
                env.update(zip(outputs, executables[k](*[env[v] for v in inputs])))
            boundary = self.boundaries[k]
            if boundary.eqns:
                requests = [CollectiveRequest(COLLECTIVE_KINDS[e.primitive],
                                              read(e.invars[0]) if on_gpu else np.asarray(read(e.invars[0])),
                                              self.mesh.group(rank, axis_names_of(e.params)), e.params)
                            for e in boundary.eqns]
                env.update(zip([e.outvars[0] for e in boundary.eqns], comm.run(rank, requests)))
            for node in boundary.nodes:
                env.update(zip(node.eqn.outvars, node.run(rank, comm, [read(a) for a in node.eqn.invars])))
        if finish and self.nested_collectives:
            comm.finish(rank)
        if on_gpu:
            return [read(v) if isinstance(read(v), Buffer) else rt.put(np.asarray(read(v))) for v in self.outvars]
        return [read(v) for v in self.outvars]


def device_program(closed: ClosedJaxpr, mesh: Mesh, name: str) -> DeviceProgram:
    """The DeviceProgram of a const-free per-device jaxpr on ``mesh``, kept (with the stages it
    compiles per device) in the one executable cache."""
    return executables.get_or_compile(("device-program", id(closed), mesh), lambda: DeviceProgram(closed, mesh, name),
                                      keep_alive=closed)
