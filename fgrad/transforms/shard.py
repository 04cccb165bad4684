"""``shard``: run a function on every device of a mesh (shard_map semantics), and the
data-parallel path ``jit`` takes for arguments placed with ``device_put``.

Explicit form::

    shard(f, mesh, in_specs, out_specs)(*args)

``f`` sees per-device *blocks*: each argument is cut by its ``PartitionSpec`` (a pytree
prefix of the arguments) and device ``r`` gets block ``r``; ``f`` may call the collectives
of ``fgrad.lax`` (psum, pmean, pmax, pmin, all_gather, psum_scatter, ppermute,
axis_index) over the mesh axis names. The per-device results are put back together by
``out_specs``; a mesh axis an out spec does not name means "the same on every device
along it" (checked when ``FGRAD_DEBUG`` >= 1), and the block of coordinate 0 is used.

How it runs:

1. Before tracing, the arguments are checked against the specs (arity, pytree structure
   with key paths, axis names, divisibility of every split dimension) so mistakes are
   errors, never hangs.
2. ``f`` is traced once on block avals with the mesh axes bound, into a jaxpr; ``shard_p``
   is a primitive carrying it with the mesh and specs, so ``grad``/``jvp``/``vmap``/``jit``
   transform ``shard`` through the rules below (jvp via ``jvp_jaxpr``, partial evaluation
   via ``partial_eval_jaxpr`` with residuals stacked over the devices, transposition via
   ``transpose_jaxpr``, where cotangents of outputs replicated over an axis are divided by
   its size and cotangents of inputs replicated over an axis are psum'd over it, as in
   shard_map without replication checking).
3. ``DeviceProgram`` splits the per-device jaxpr at its top-level collectives. Equations
   are staged by how many collectives they depend on; each stage is ONE compiled program
   (``fgrad.lower``), and all collectives between two stages are performed together in
   one exchange of a ``Communicator`` (``fgrad.devices``). ``axis_index`` becomes an
   input. Collectives nested in control flow run through the collective primitives'
   implementations, which reach the device's communicator through a thread-local context.
4. Each device is a thread (compiled code and NumPy release the GIL) whose programs are
   compiled for its share of the cores (``fgrad.backends.cpu.thread_budget``: with N
   devices on C cores, C // N threads each, at least 1), so devices do not oversubscribe
   the machine. The communicator is a barrier plus shared slots (MPI across processes).
   A failing device aborts the barrier, so the others stop instead of hanging.

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
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

import numpy as np

from fgrad import tree
from fgrad.backends.base import Buffer
from fgrad.config import config
from fgrad.core.array import Array
from fgrad.core.ir import ClosedJaxpr, Eqn, Jaxpr, Literal, Var
from fgrad.core.primitive import Primitive
from fgrad.core.trace import (EVAL, current_interpreter, dce_jaxpr, dce_rules, get_aval, set_interpreter,
                              trace_to_jaxpr, Tracer)
from fgrad.core.types import ShapedArray
from fgrad.devices import CollectiveError, CollectiveRequest, Communicator
from fgrad.ops import collective
from fgrad.sharding import (Mesh, NamedSharding, PartitionSpec, ShardedArray, block_shape, check_spec, is_spec,
                            replica_leader, shard_value)
from fgrad.transforms.jvp import jvp_jaxpr, jvp_rules
from fgrad.transforms.partial_eval import partial_eval_jaxpr, partial_eval_rules
from fgrad.transforms.vjp import backward_pass, is_undefined, transpose_rules, UndefinedPrimal
from fgrad.transforms.vmap import binds_axis_name, vmap_jaxpr, vmap_rules

__all__ = ["shard", "shard_p", "DataParallelError", "data_parallel_call", "check_placement"]


class DataParallelError(ValueError):
    """``jit`` on sharded arguments met a layout its data-parallel pass does not handle."""


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


_device = _DeviceContext()


def _axis_names(params: dict) -> tuple:
    names = params["axis_name"]
    return names if isinstance(names, tuple) else (names,)


def _group(mesh: Mesh, rank: int, names: tuple) -> tuple[int, ...]:
    for name in names:
        if name not in mesh.shape:
            raise collective.unbound_axis_error(name)
    return mesh.group(rank, names)


def _device_impl(kind: str, fallback: Callable) -> Callable:
    """A collective's implementation: through the device's communicator inside a device
    program, else the primitive's own implementation (the unbound-axis error)."""
    def impl(x, **params):
        if _device.comm is None:
            return fallback(x, **params)
        group = _group(_device.mesh, _device.rank, _axis_names(params))
        request = CollectiveRequest(kind, np.asarray(x), group, params)
        return _device.comm.run(_device.rank, [request])[0]
    return impl


def _device_axis_index(*, axis_name, _fallback=collective.axis_index_p.impl):
    if _device.comm is None:
        return _fallback(axis_name=axis_name)
    _group(_device.mesh, _device.rank, (axis_name,))
    return np.int32(_device.mesh.coords(_device.rank)[axis_name])


# The backend runs the collectives: inside a device program a collective nested in control
# flow (run by the reference evaluator) reaches the communicator through these
# implementations; outside one they keep raising the unbound-axis error.
for _prim, _kind in COLLECTIVE_KINDS.items():
    _prim.def_impl(_device_impl(_kind, _prim.impl))
collective.axis_index_p.def_impl(_device_axis_index)


# --- the per-device program ------------------------------------------------------------------------------

def _literal_value(atom: Literal) -> np.ndarray:
    return np.asarray(atom.value, atom.aval.dtype)


class _Boundary:
    """The collectives performed together between two stages."""

    def __init__(self):
        self.eqns: list[Eqn] = []


class DeviceProgram:
    """A per-device jaxpr split at its collectives into compiled stages (see the module doc)."""

    def __init__(self, closed: ClosedJaxpr, mesh: Mesh, name: str):
        if closed.consts:
            raise ValueError("DeviceProgram: closure-convert the jaxpr first")
        self.mesh = mesh
        self.name = name
        jaxpr = closed.jaxpr
        self.invars = list(jaxpr.invars)
        self.outvars = list(jaxpr.outvars)
        self.index_vars: list[tuple[Var, str]] = []  # axis_index outputs, fed per device
        stage_of: dict[Var, int] = {v: 0 for v in jaxpr.invars}
        stages: list[list[Eqn]] = [[]]
        boundaries: list[_Boundary] = [_Boundary()]
        for eqn in jaxpr.eqns:
            if eqn.primitive is collective.axis_index_p:
                name_ = eqn.params["axis_name"]
                _group(mesh, 0, (name_,))
                self.index_vars.append((eqn.outvars[0], name_))
                stage_of[eqn.outvars[0]] = 0
                continue
            stage = max([stage_of[v] for v in eqn.invars if isinstance(v, Var)], default=0)
            while len(stages) <= stage + 1:
                stages.append([])
                boundaries.append(_Boundary())
            if eqn.primitive in COLLECTIVE_KINDS:
                _group(mesh, 0, _axis_names(eqn.params))
                boundaries[stage].eqns.append(eqn)
                stage_of.update((v, stage + 1) for v in eqn.outvars)
            else:
                stages[stage].append(eqn)
                stage_of.update((v, stage) for v in eqn.outvars)
        while stages and not stages[-1] and not boundaries[-1].eqns:
            stages.pop()
            boundaries.pop()
        self.boundaries = boundaries
        self.segments = self._segments(stages, boundaries)
        # collectives inside control flow may be skipped by some devices: meet once more at the end
        self.nested_collectives = any(binds_axis_name({k: v for k, v in e.params.items() if k != "axis_name"}, a)
                                      for e in jaxpr.eqns for a in mesh.axis_names)
        self._executables: dict[int, list[Callable | None]] = {}
        self._lock = threading.Lock()

    def _segments(self, stages: list[list[Eqn]], boundaries: list[_Boundary]) -> list:
        """Per stage: (const-free jaxpr, its input vars, its output vars), or None when empty."""
        needed_after: list[set[Var]] = [set() for _ in stages]
        later: set[Var] = {v for v in self.outvars if isinstance(v, Var)}
        for k in reversed(range(len(stages))):
            later |= {v for e in boundaries[k].eqns for v in e.invars if isinstance(v, Var)}
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

    def prepare(self, ranks: Sequence[int]) -> None:
        """Compile every stage once per device that will run it (compiled programs hold
        scratch memory, so devices running at once each need their own). The devices run
        side by side, so each program is compiled for the device's share of the cores."""
        from fgrad.backends import cpu
        from fgrad.lower.pipeline import compile_jaxpr
        with self._lock, cpu.thread_budget(cpu.share_of_threads(len(ranks))):
            for rank in ranks:
                if rank not in self._executables:
                    device = self.mesh.device_list[rank]   # a GPU's stages compile for it
                    self._executables[rank] = [
                        None if seg is None else compile_jaxpr(seg[0], f"{self.name}_stage{k}", device=device)
                        for k, seg in enumerate(self.segments)]

    def run(self, rank: int, comm: Communicator, args: Sequence[Any]) -> list[Any]:
        """Run the program as device ``rank``; collectives go through ``comm``. On a GPU,
        blocks already there (a ShardedArray's) are used in place and others copied in once,
        stages and collectives pass GPU buffers along, and the outputs stay on the GPU."""
        device = self.mesh.device_list[rank]
        on_gpu = device.platform == "cuda"
        if on_gpu:
            from fgrad.backends import cuda
            from fgrad.sharding import host_block
            rt = cuda.runtime(device)
            args = [a if isinstance(a, Buffer) and a.device == device else rt.put(np.asarray(host_block(a)))
                    for a in args]
        env: dict[Var, Any] = dict(zip(self.invars, args))
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
            eqns = self.boundaries[k].eqns
            if eqns:
                requests = [CollectiveRequest(COLLECTIVE_KINDS[e.primitive],
                                              read(e.invars[0]) if on_gpu else np.asarray(read(e.invars[0])),
                                              self.mesh.group(rank, _axis_names(e.params)), e.params)
                            for e in eqns]
                env.update(zip([e.outvars[0] for e in eqns], comm.run(rank, requests)))
        if self.nested_collectives:
            comm.finish(rank)
        if on_gpu:
            return [read(v) if isinstance(read(v), Buffer) else rt.put(np.asarray(read(v))) for v in self.outvars]
        return [read(v) for v in self.outvars]


_programs: dict[tuple, tuple[ClosedJaxpr, DeviceProgram]] = {}
_programs_lock = threading.Lock()


def device_program(closed: ClosedJaxpr, mesh: Mesh, name: str) -> DeviceProgram:
    """The (cached) DeviceProgram of a const-free per-device jaxpr on ``mesh``."""
    key = (id(closed), mesh)
    entry = _programs.get(key)
    if entry is not None and entry[0] is closed:
        return entry[1]
    program = DeviceProgram(closed, mesh, name)
    with _programs_lock:
        _programs[key] = (closed, program)
    return program


_pools: dict[int, ThreadPoolExecutor] = {}


def _pool(workers: int) -> ThreadPoolExecutor:
    pool = _pools.get(workers)
    if pool is None:
        pool = _pools[workers] = ThreadPoolExecutor(workers, thread_name_prefix="fgrad-device")
    return pool


#: Makes the communicator of one run, per platform of the mesh's devices:
#: ``factory(mesh, local_ranks) -> Communicator``. The CPU's (threads, MPI across processes)
#: is the default; a GPU backend registers its own (NCCL, ``fgrad.backends.nccl``).
communicator_factories: dict[str, Callable[[Mesh, list[int]], Communicator]] = {}


def _communicator(mesh: Mesh, ranks: list[int]) -> Communicator:
    platforms = sorted({d.platform for d in mesh.device_list})
    if len(platforms) > 1:
        raise ValueError(f"{mesh} mixes devices of platforms {platforms}; a mesh's devices must all be "
                         "GPUs or all CPU devices (build it from fgrad.devices(backend=...))")
    if platforms[0] == "cuda" and "cuda" not in communicator_factories:
        from fgrad.backends import cuda_collectives
        cuda_collectives.register()       # NCCL
    factory = communicator_factories.get(platforms[0])
    if factory is not None:
        return factory(mesh, ranks)
    from fgrad import distributed
    return distributed.communicator(mesh.size, ranks)


def run_on_devices(program: DeviceProgram, per_rank_args: dict[int, list]) -> dict[int, list]:
    """Run ``program`` on each local device concurrently; returns each rank's outputs."""
    if _device.comm is not None:
        raise NotImplementedError("shard inside a function that already runs per device (nested shard) "
                                  "is not supported; use collectives over several mesh axes instead")
    mesh = program.mesh
    ranks = sorted(per_rank_args)
    program.prepare(ranks)
    comm = _communicator(mesh, ranks)
    results: dict[int, list] = {}
    errors: dict[int, BaseException] = {}

    def work(rank: int) -> None:
        _device.comm, _device.rank, _device.mesh = comm, rank, mesh
        try:
            results[rank] = program.run(rank, comm, per_rank_args[rank])
        except BaseException as err:  # noqa: BLE001 - re-raised below, in the caller's thread
            errors[rank] = err
            comm.abort()
        finally:
            _device.comm, _device.mesh = None, None

    if len(ranks) == 1:
        work(ranks[0])
    else:
        futures = [_pool(len(ranks) - 1).submit(work, r) for r in ranks[1:]]
        work(ranks[0])
        for f in futures:
            f.result()
    if errors:
        first = next((e for e in errors.values() if not isinstance(e, CollectiveError)), None)
        raise first if first is not None else next(iter(errors.values()))
    return results


# --- running a per-device jaxpr on global values ---------------------------------------------------------

def block_aval(aval: ShapedArray, spec: PartitionSpec, mesh: Mesh, where: str) -> ShapedArray:
    """The per-device aval of a global ``aval`` split by ``spec``."""
    return ShapedArray(block_shape(spec, mesh, aval.shape, where), aval.dtype, aval.weak_type)


def global_aval(aval: ShapedArray, spec: PartitionSpec, mesh: Mesh) -> ShapedArray:
    """The global aval of per-device blocks ``aval`` put together by ``spec``."""
    shape = list(aval.shape)
    for d in range(min(len(spec), len(shape))):
        for axis in spec.axes(d):
            shape[d] *= mesh.shape[axis]
    return ShapedArray(tuple(shape), aval.dtype, aval.weak_type)


def run_shard(closed: ClosedJaxpr, mesh: Mesh, in_specs: Sequence[PartitionSpec],
              out_specs: Sequence[PartitionSpec], args: Sequence[Any], name: str) -> list[ShardedArray]:
    """Run a const-free per-device jaxpr on global ``args``; outputs are ShardedArrays."""
    program = device_program(closed, mesh, name)
    placed = []
    for arg, spec, aval in zip(args, in_specs, closed.in_avals):
        target = NamedSharding(mesh, spec)
        if isinstance(arg, ShardedArray) and arg.sharding.mesh != mesh:
            arg = Array(np.asarray(arg), arg.aval)  # another mesh: assemble, then re-cut
        placed.append(shard_value(arg, target, f"shard({name})", global_aval(aval, spec, mesh)))
    ranks = mesh.local_ranks()
    outs = run_on_devices(program, {r: [p.shards[r] for p in placed] for r in ranks})
    return [_assemble_output(k, [outs.get(r, [None] * len(out_specs))[k] for r in range(mesh.size)],
                             spec, aval, mesh, name)
            for k, (spec, aval) in enumerate(zip(out_specs, closed.out_avals))]


def _assemble_output(k: int, blocks: list, spec: PartitionSpec, aval: ShapedArray, mesh: Mesh,
                     name: str) -> ShardedArray:
    shards = []
    for rank, block in enumerate(blocks):
        leader = replica_leader(spec, mesh, rank)
        if block is None:
            shards.append(None)
            continue
        if config.debug >= 1 and leader != rank and blocks[leader] is not None:
            _check_replica(k, block, blocks[leader], rank, leader, spec, mesh, name)
        if isinstance(block, Buffer):      # a GPU keeps its own block (a replica's is on another GPU)
            shards.append(block)
        else:
            shards.append(np.asarray(block if blocks[leader] is None else blocks[leader], aval.dtype))
    sharding = NamedSharding(mesh, spec)
    return ShardedArray._from_shards(shards, sharding, global_aval(aval, spec, mesh).strip_weak_type())


def _check_replica(k, block, leader_block, rank, leader, spec, mesh, name) -> None:
    from fgrad.sharding import host_block
    if not np.array_equal(host_block(block), host_block(leader_block), equal_nan=True):
        unnamed = [a for a in mesh.axis_names if a not in spec.mentioned()]
        raise ValueError(f"shard({name}): output {k} has out_spec {spec}, which says it is the same on every "
                         f"device along mesh axes {unnamed}, but device {mesh.device_list[rank]} computed a "
                         f"different block than device {mesh.device_list[leader]}. Name the axis in the out "
                         "spec to keep every device's block, or reduce over it (psum/pmean/all_gather).")


# --- the primitive ---------------------------------------------------------------------------------------

shard_p = Primitive("shard", multiple_results=True)


def _shard_abstract_eval(*avals, jaxpr, mesh, in_specs, out_specs, name):
    return [global_aval(a, s, mesh) for a, s in zip(jaxpr.out_avals, out_specs)]


def _shard_impl(*args, jaxpr, mesh, in_specs, out_specs, name):
    return run_shard(jaxpr, mesh, in_specs, out_specs, args, name)


shard_p.def_abstract_eval(_shard_abstract_eval)
shard_p.def_impl(_shard_impl)


def _closure_convert(closed: ClosedJaxpr) -> tuple[ClosedJaxpr, list]:
    j = closed.jaxpr
    return ClosedJaxpr(Jaxpr([], [*j.constvars, *j.invars], j.eqns, j.outvars), []), list(closed.consts)


def _bind_shard(closed: ClosedJaxpr, args: Sequence[Any], mesh: Mesh, in_specs: Sequence[PartitionSpec],
                out_specs: Sequence[PartitionSpec], name: str) -> list:
    """Bind ``shard_p`` on a jaxpr that may have constants (they become replicated inputs)."""
    converted, consts = _closure_convert(closed)
    return shard_p.bind(*consts, *args, jaxpr=converted, mesh=mesh,
                        in_specs=(PartitionSpec(),) * len(consts) + tuple(in_specs),
                        out_specs=tuple(out_specs), name=name)


def _traced(mesh: Mesh, fun: Callable, *args):
    """Run a jaxpr-building helper with the mesh axes visible to collectives."""
    with collective.axis_frame(mesh.shape):
        return fun(*args)


def _shard_jvp(primals, tangents, jaxpr, mesh, in_specs, out_specs, name):
    nonzero = [t is not None for t in tangents]
    jvp_closed, _ = _traced(mesh, lambda: jvp_jaxpr(jaxpr, nonzero, instantiate=True))
    tangent_specs = [s for s, nz in zip(in_specs, nonzero) if nz]
    outs = _bind_shard(jvp_closed, [*primals, *[t for t in tangents if t is not None]], mesh,
                       [*in_specs, *tangent_specs], [*out_specs, *out_specs], f"jvp({name})")
    n = len(out_specs)
    return outs[:n], outs[n:]


def _insert_unsplit(spec: PartitionSpec, dim: int) -> PartitionSpec:
    entries = list(spec) + [None] * max(0, dim - len(spec))
    entries.insert(dim, None)
    return PartitionSpec(*entries)


def _shard_vmap(axis, vals, dims, jaxpr, mesh, in_specs, out_specs, name):
    if axis.name is not None and axis.name in mesh.shape:
        raise ValueError(f"vmap(axis_name={axis.name!r}) around shard: the name is also a mesh axis of "
                         f"{mesh}; rename one of them")
    n_out = len(out_specs)
    batched, _ = _traced(mesh, lambda: vmap_jaxpr(jaxpr, axis, dims, [0] * n_out))
    new_in = [s if d is None else _insert_unsplit(s, d) for s, d in zip(in_specs, dims)]
    new_out = [_insert_unsplit(s, 0) for s in out_specs]
    return _bind_shard(batched, vals, mesh, new_in, new_out, f"vmap({name})"), [0] * n_out


def _stacked_spec(mesh: Mesh) -> PartitionSpec:
    """Per-device values (residuals) stacked along a new leading dim over every mesh axis."""
    return PartitionSpec(tuple(mesh.axis_names))


def _shard_partial_eval(interp, args, jaxpr, mesh, in_specs, out_specs, name):
    from fgrad.ops.shape import reshape
    unknowns = [interp.is_unknown(a) for a in args]
    known, unknown, out_unknowns, num_res = _traced(mesh, lambda: partial_eval_jaxpr(jaxpr, unknowns))
    n_known_outs = len(out_unknowns) - sum(out_unknowns)

    def known_stacked(*xs):  # residuals get a leading axis of 1: stacked over devices, globally N
        outs = known(*xs)
        return [*outs[:n_known_outs], *[reshape(r, (1, *get_aval(r).shape)) for r in outs[n_known_outs:]]]

    def unknown_unstacked(*xs):
        res = [reshape(r, get_aval(r).shape[1:]) for r in xs[:num_res]]
        return unknown(*res, *xs[num_res:])

    known_j = _traced(mesh, lambda: trace_to_jaxpr(known_stacked, known.in_avals))
    res_avals = [a.update(shape=(1, *a.shape)) for a in unknown.in_avals[:num_res]]
    unknown_j = _traced(mesh, lambda: trace_to_jaxpr(unknown_unstacked, [*res_avals, *unknown.in_avals[num_res:]]))
    res_spec = _stacked_spec(mesh)
    known_specs = [s for s, u in zip(in_specs, unknowns) if not u]
    unknown_specs = [s for s, u in zip(in_specs, unknowns) if u]
    known_out_specs = [s for s, u in zip(out_specs, out_unknowns) if not u]
    unknown_out_specs = [s for s, u in zip(out_specs, out_unknowns) if u]
    with set_interpreter(interp.parent):
        known_outs = _bind_shard(known_j, [a for a, u in zip(args, unknowns) if not u], mesh, known_specs,
                                 [*known_out_specs, *[res_spec] * num_res], name)
    residuals = known_outs[n_known_outs:]
    converted, consts = _closure_convert(unknown_j)
    unknown_outs = interp.stage(shard_p, [*consts, *residuals, *[a for a, u in zip(args, unknowns) if u]], dict(
        jaxpr=converted, mesh=mesh, in_specs=(PartitionSpec(),) * len(consts) + (res_spec,) * num_res
        + tuple(unknown_specs), out_specs=tuple(unknown_out_specs), name=f"linear({name})"))
    known_it, unknown_it = iter(known_outs[:n_known_outs]), iter(unknown_outs)
    return [next(unknown_it) if u else next(known_it) for u in out_unknowns]


def _unnamed_size(spec: PartitionSpec, mesh: Mesh) -> tuple[tuple[str, ...], int]:
    axes = tuple(a for a in mesh.axis_names if a not in spec.mentioned())
    return axes, int(np.prod([mesh.shape[a] for a in axes])) if axes else 1


def _shard_transpose(cts, *args, jaxpr, mesh, in_specs, out_specs, name):
    from fgrad.ops.elementwise import div
    from fgrad.transforms.jvp import zeros_like_aval
    linear = [is_undefined(a) for a in args]
    nonlin_avals = [a for a, lin in zip(jaxpr.in_avals, linear) if not lin]
    ct_avals = [a.strip_weak_type() for a in jaxpr.out_avals]

    def body(*xs):
        nonlin, cts_in = iter(xs[:len(nonlin_avals)]), xs[len(nonlin_avals):]
        scaled = []
        for ct, spec in zip(cts_in, out_specs):
            _, size = _unnamed_size(spec, mesh)
            # an output replicated over `size` devices: each device's copy carries 1/size of it
            scaled.append(div(ct, np.asarray(size, get_aval(ct).dtype)) if size > 1 else ct)
        full = [UndefinedPrimal(a) if lin else next(nonlin) for a, lin in zip(jaxpr.in_avals, linear)]
        res = backward_pass(jaxpr.jaxpr, jaxpr.consts, full, scaled)
        out = []
        for ct, a, lin, spec in zip(res, jaxpr.in_avals, linear, in_specs):
            if not lin:
                continue
            ct = zeros_like_aval(a.strip_weak_type()) if ct is None else ct
            axes, size = _unnamed_size(spec, mesh)
            out.append(collective.psum_p.bind(ct, axis_name=axes) if size > 1 else ct)
        return out

    transposed = _traced(mesh, lambda: trace_to_jaxpr(body, [*nonlin_avals, *ct_avals]))
    cts = [zeros_like_aval(a) if ct is None else ct for ct, a in
           zip(cts, _shard_abstract_eval(jaxpr=jaxpr, mesh=mesh, in_specs=in_specs, out_specs=out_specs, name=name))]
    outs = _bind_shard(transposed, [*[a for a in args if not is_undefined(a)], *cts], mesh,
                       [*[s for s, lin in zip(in_specs, linear) if not lin], *out_specs],
                       [s for s, lin in zip(in_specs, linear) if lin], f"transpose({name})")
    it = iter(outs)
    return [next(it) if lin else None for lin in linear]


def _shard_dce(used_outputs, eqn):
    params = eqn.params
    pruned, used_inputs = dce_jaxpr(params["jaxpr"].jaxpr, used_outputs)
    pruned = Jaxpr([], [v for v, u in zip(pruned.invars, used_inputs) if u], pruned.eqns, pruned.outvars)
    new = dict(params, jaxpr=ClosedJaxpr(pruned, []),
               in_specs=tuple(s for s, u in zip(params["in_specs"], used_inputs) if u),
               out_specs=tuple(s for s, u in zip(params["out_specs"], used_outputs) if u))
    return Eqn(shard_p, [a for a, u in zip(eqn.invars, used_inputs) if u],
               [v for v, u in zip(eqn.outvars, used_outputs) if u], new)


jvp_rules[shard_p] = _shard_jvp
vmap_rules[shard_p] = _shard_vmap
partial_eval_rules[shard_p] = _shard_partial_eval
transpose_rules[shard_p] = _shard_transpose
dce_rules[shard_p] = _shard_dce


# --- the user-facing transform --------------------------------------------------------------------------

def _flat_specs(specs: Any, values: Any, what: str, name: str) -> list[PartitionSpec]:
    try:
        return tree.broadcast_prefix(specs, values, is_leaf=lambda x: is_spec(x) or x is None)
    except ValueError as err:
        raise ValueError(f"shard({name}): {what} must be a PartitionSpec or a pytree prefix of the "
                         f"{'arguments' if what == 'in_specs' else 'outputs'} with PartitionSpec leaves: {err}") from None


def _check_leaf_spec(spec: Any, leaf: Any, mesh: Mesh, where: str) -> ShapedArray:
    if spec is None:
        raise TypeError(f"{where}: the spec is None; use P() for a replicated value")
    check_spec(spec, mesh, where)
    try:
        aval = get_aval(leaf)
    except TypeError:
        raise TypeError(f"{where}: expected an array, got a {type(leaf).__name__}") from None
    return block_aval(aval, spec, mesh, where)


def _check_mesh_of(leaf: Any, mesh: Mesh, where: str) -> None:
    if isinstance(leaf, ShardedArray) and leaf.sharding.mesh != mesh:
        raise ValueError(f"{where} is placed on {leaf.sharding.mesh}, but shard runs on {mesh}: arrays on "
                         "different meshes; device_put it onto the shard's mesh first")


def shard(f: Callable, mesh: Mesh, in_specs: Any, out_specs: Any) -> Callable:
    """Run ``f`` once per device of ``mesh`` on per-device blocks (JAX's shard_map).

    ``in_specs``: a PartitionSpec per argument (a pytree prefix of the arguments);
    ``out_specs``: likewise for the outputs. Inside ``f`` the collectives of
    ``fgrad.lax`` work over the mesh axis names.

    >>> mesh = Mesh(fgrad.devices(4), ("i",))                       # doctest: +SKIP
    >>> total = shard(lambda x: lax.psum(x.sum(), "i"), mesh, P("i"), P())(fnp.arange(8.))   # doctest: +SKIP
    Array(28., dtype=float32)
    """
    if not callable(f):
        raise TypeError(f"shard expects a function, got {type(f).__name__}")
    if not isinstance(mesh, Mesh):
        raise TypeError(f"shard: mesh must be a fgrad.sharding.Mesh, got {type(mesh).__name__}")
    name = getattr(f, "__name__", "fun")
    if isinstance(in_specs, list):
        in_specs = tuple(in_specs)
    cache: dict = {}

    def sharded(*args):
        if isinstance(in_specs, tuple) and len(in_specs) != len(args):
            raise ValueError(f"shard({name}): in_specs has {len(in_specs)} entries but {name} was called with "
                             f"{len(args)} positional arguments; give one PartitionSpec (or pytree of them) "
                             "per argument")
        specs_tree = in_specs if isinstance(in_specs, tuple) else (in_specs,) * len(args)
        path_leaves, in_tree = tree.tree_flatten_with_path(args)
        specs = _flat_specs(specs_tree, args, "in_specs", name)
        leaves = [leaf for _, leaf in path_leaves]
        block_avals = []
        for (path, leaf), spec in zip(path_leaves, specs):
            where = f"shard({name}): argument {tree.keystr(path) or '<root>'}"
            _check_mesh_of(leaf, mesh, where)
            block_avals.append(_check_leaf_spec(spec, leaf, mesh, where))
        key = (in_tree, tuple(block_avals), tuple(specs))
        entry = cache.get(key)
        if entry is None:
            entry = _trace(f, name, mesh, in_tree, block_avals, out_specs)
            if not any(isinstance(c, Tracer) for c in entry[1]):
                cache[key] = entry
        converted, consts, out_tree, flat_out_specs = entry
        all_specs = (PartitionSpec(),) * len(consts) + tuple(specs)
        if current_interpreter() is EVAL:
            outs = run_shard(converted, mesh, all_specs, flat_out_specs, [*consts, *leaves], name)
        else:
            outs = shard_p.bind(*consts, *leaves, jaxpr=converted, mesh=mesh, in_specs=all_specs,
                                out_specs=flat_out_specs, name=name)
        return tree.tree_unflatten(out_tree, outs)

    sharded.__name__ = f"shard({name})"
    sharded.__doc__ = getattr(f, "__doc__", None)
    return sharded


def _trace(f: Callable, name: str, mesh: Mesh, in_tree, block_avals: list, out_specs: Any):
    from fgrad.transforms.vjp import check_output_leaves
    box: list = []

    def flat_fun(*blocks):
        out = f(*tree.tree_unflatten(in_tree, list(blocks)))
        check_output_leaves(out, name)
        out_leaves, out_tree = tree.tree_flatten(out)
        box.append((out, out_tree))
        return out_leaves

    with collective.axis_env_here(), collective.axis_frame(mesh.shape):
        closed = trace_to_jaxpr(flat_fun, block_avals)
    out, out_tree = box[0]
    flat_out_specs = _flat_specs(out_specs, out, "out_specs", name)
    for (path, _), spec, aval in zip(tree.tree_flatten_with_path(out)[0], flat_out_specs, closed.out_avals):
        where = f"shard({name}): output {tree.keystr(path) or '<root>'}"
        if spec is None:
            raise TypeError(f"{where}: the out spec is None; use P() for a replicated output")
        check_spec(spec, mesh, where)
        if len(spec) > aval.ndim:
            raise ValueError(f"{where}: {spec} has {len(spec)} entries but the per-device output has rank "
                             f"{aval.ndim} ({aval.str_short()})")
    converted, consts = _closure_convert(closed)
    return converted, consts, out_tree, tuple(flat_out_specs)


# --- data parallelism by placement: the sharding-propagation pass -----------------------------------------
#
# A layout is None (replicated: every device holds the whole value), an int d (split along
# dimension d over the data axis) or PARTIAL (every device holds a term; the value is their
# sum). Rules: rule(ctx, eqn, ins) -> [(local value, layout)] per output, where ins are the
# operands' (local value, layout) pairs and eqn carries the global avals and params.

PARTIAL = "partial"
dp_rules: dict[Primitive, Callable] = {}


def _dp_error(eqn: Eqn, detail: str) -> DataParallelError:
    return DataParallelError(
        f"jit on sharded arrays: the data-parallel pass cannot run `{eqn.primitive.name}` here: {detail}. "
        "Write this step with fgrad.shard(f, mesh, in_specs, out_specs) and explicit collectives, or "
        "device_put that input replicated (P()).")


def _layout_str(layout) -> str:
    return "replicated" if layout is None else "a partial sum" if layout == PARTIAL else f"split along dim {layout}"


class _DataParallelContext:
    """Layout conversions in the per-device program, each emitted at most once per value."""

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
            raise _dp_error(eqn, f"dimension {d} of a {get_aval(value).str_short()} operand must be split over "
                                 f"{self.n} devices to meet a split operand, and {size} is not divisible by {self.n}")
        return self._memoized(value, ("split", d), lambda: self._slice(value, d, eqn))

    def _slice(self, value: Any, d: int, eqn: Eqn) -> Any:
        recipe = self.split_recipes.get(id(value))
        if recipe is not None:
            return recipe[1](d)
        from fgrad.ops.elementwise import mul
        from fgrad.ops.indexing import dynamic_slice
        shape = get_aval(value).shape
        block = shape[d] // self.n
        start = mul(collective.axis_index(self.axis), np.int32(block))
        starts = [0] * len(shape)
        starts[d] = start
        return dynamic_slice(value, starts, tuple(block if i == d else s for i, s in enumerate(shape)))

    def local_shape(self, shape: Sequence[int], d: int) -> tuple[int, ...]:
        return tuple(s // self.n if i == d else s for i, s in enumerate(shape))


def _bind(eqn: Eqn, vals: Sequence[Any], **params) -> list:
    out = eqn.primitive.bind(*vals, **dict(eqn.params, **params))
    return list(out) if eqn.primitive.multiple_results else [out]


def _all(outs: list, layout) -> list:
    return [(o, layout) for o in outs]


def _replicated(ctx, eqn, ins) -> list:
    """Run on whole values (partial sums are summed first)."""
    return _all(_bind(eqn, [ctx.full(v, l) for v, l in ins]), None)


def _default_rule(ctx, eqn, ins):
    for k, (_, layout) in enumerate(ins):
        if isinstance(layout, int):
            raise _dp_error(eqn, f"operand {k} ({eqn.invars[k].aval.str_short()}) is {_layout_str(layout)} and "
                                 "this operation has no data-parallel rule")
    if eqn.primitive in COLLECTIVE_KINDS or eqn.primitive is collective.axis_index_p:
        raise _dp_error(eqn, "collectives need named axes, which only explicit shard binds")
    return _replicated(ctx, eqn, ins)


def _rank(atom) -> int:
    return len(atom.aval.shape)


# -- elementwise -------------------------------------------------------------------------------------------

def _is_float(aval) -> bool:
    return np.dtype(aval.dtype).kind == "f"


def _linear_in_partials(eqn: Eqn, layouts: list) -> bool:
    """Is the output a partial sum when the PARTIAL operands are (the op is linear in them)?"""
    from fgrad.ops import elementwise as ew
    from fgrad.ops.misc import stop_gradient_p
    prim, partial = eqn.primitive, [l == PARTIAL for l in layouts]
    rep = [l is None for l in layouts]
    if prim in (ew.add_p, ew.sub_p):
        return all(partial)
    if prim in (ew.neg_p, stop_gradient_p):
        return True
    if prim is ew.convert_element_type_p:
        return _is_float(eqn.invars[0].aval) and _is_float(eqn.outvars[0].aval)
    if prim is ew.mul_p:
        return sum(partial) == 1 and sum(rep) == 1
    if prim is ew.div_p:
        return partial[0] and rep[1] and _is_float(eqn.outvars[0].aval)
    if prim is ew.select_n_p:
        return rep[0] and all(partial[1:])
    return False


def _elementwise_rule(ctx, eqn, ins):
    layouts = [l for _, l in ins]
    arrays = [_rank(a) > 0 for a in eqn.invars]
    split = next((l for l, a in zip(layouts, arrays) if isinstance(l, int) and a), None)
    if split is not None:
        vals = [ctx.split(v, l, split, eqn) if a else ctx.full(v, l) for (v, l), a in zip(ins, arrays)]
        return _all(_bind(eqn, vals), split)
    if PARTIAL in layouts:
        if not _linear_in_partials(eqn, layouts):
            return _replicated(ctx, eqn, ins)
        outs = _bind(eqn, [v for v, _ in ins])
        if layouts.count(PARTIAL) == 1 and not eqn.primitive.multiple_results:
            ctx.full_recipes[id(outs[0])] = (outs[0], lambda: _bind(eqn, [ctx.full(v, l) for v, l in ins])[0])
        return _all(outs, PARTIAL)
    outs = _bind(eqn, [v for v, _ in ins])
    if not eqn.primitive.multiple_results and any(arrays):
        def split_of(d, ins=ins, arrays=arrays):  # compute on blocks instead of slicing the result
            return _bind(eqn, [ctx.split(v, None, d, eqn) if a else v for (v, _), a in zip(ins, arrays)])[0]
        ctx.split_recipes[id(outs[0])] = (outs[0], split_of)
    return _all(outs, None)


def _linear_unary(rule_for_split: Callable) -> Callable:
    """A rule for a shape operation linear in its one operand: partial stays partial."""
    def rule(ctx, eqn, ins):
        (x, layout), *rest = ins
        if any(l is not None for _, l in rest):
            return _replicated(ctx, eqn, ins)
        if layout is None:
            return _all(_bind(eqn, [x, *[v for v, _ in rest]]), None)
        if layout == PARTIAL:
            outs = _bind(eqn, [x, *[v for v, _ in rest]])
            ctx.full_recipes[id(outs[0])] = (outs[0], lambda: _bind(eqn, [ctx.full(x, PARTIAL), *[v for v, _ in rest]])[0])
            return _all(outs, PARTIAL)
        return rule_for_split(ctx, eqn, x, layout, [v for v, _ in rest])
    return rule


# -- shape operations ----------------------------------------------------------------------------------------

def _broadcast_in_dim_split(ctx, eqn, x, d, rest):
    shape, dims = eqn.params["shape"], eqn.params["broadcast_dimensions"]
    out_d = dims[d]
    local = list(shape)
    local[out_d] = get_aval(x).shape[d]
    return _all(_bind(eqn, [x], shape=tuple(local)), out_d)


def _broadcast_in_dim_rule(ctx, eqn, ins):
    out = _linear_unary(_broadcast_in_dim_split)(ctx, eqn, ins)
    (x, layout), = ins
    if layout is None:
        shape, dims = eqn.params["shape"], eqn.params["broadcast_dimensions"]

        def split_of(d):  # broadcast straight into the block
            operand = x
            if d in dims and get_aval(x).shape[dims.index(d)] != 1:
                operand = ctx.split(x, None, dims.index(d), eqn)
            return _bind(eqn, [operand], shape=ctx.local_shape(shape, d))[0]
        ctx.split_recipes[id(out[0][0])] = (out[0][0], split_of)
    return out


def _iota_rule(ctx, eqn, ins):
    from fgrad.ops.elementwise import add, convert_element_type, mul
    out = _bind(eqn, [])[0]
    shape, dim, dtype = eqn.params["shape"], eqn.params["dimension"], eqn.params["dtype"]

    def split_of(d):
        local = _bind(eqn, [], shape=ctx.local_shape(shape, d))[0]
        if d != dim:
            return local
        offset = mul(collective.axis_index(ctx.axis), np.int32(shape[d] // ctx.n))
        return add(local, convert_element_type(offset, dtype))
    ctx.split_recipes[id(out)] = (out, split_of)
    return [(out, None)]


def _reshape_split(ctx, eqn, x, d, rest):
    in_shape, out_shape = eqn.invars[0].aval.shape, eqn.params["new_sizes"]
    prefix = int(np.prod(in_shape[:d]))
    for out_d in range(len(out_shape)):
        if int(np.prod(out_shape[:out_d])) == prefix and out_shape[out_d] % ctx.n == 0:
            return _all(_bind(eqn, [x], new_sizes=ctx.local_shape(out_shape, out_d)), out_d)
    raise _dp_error(eqn, f"reshaping {eqn.invars[0].aval.str_short()} to {tuple(out_shape)} mixes the split "
                         f"dimension {d} with the others")


def _transpose_split(ctx, eqn, x, d, rest):
    return _all(_bind(eqn, [x]), eqn.params["permutation"].index(d))


def _squeeze_split(ctx, eqn, x, d, rest):
    dims = eqn.params["dimensions"]
    return _all(_bind(eqn, [x]), d - sum(1 for k in dims if k < d))


def _expand_dims_split(ctx, eqn, x, d, rest):
    new = set(eqn.params["dimensions"])
    kept = [k for k in range(_rank(eqn.outvars[0])) if k not in new]
    return _all(_bind(eqn, [x]), kept[d])


def _slice_split(ctx, eqn, x, d, rest):
    p = eqn.params
    size = eqn.invars[0].aval.shape[d]
    whole = p["start_indices"][d] == 0 and p["limit_indices"][d] == size and (p["strides"] or [1] * size)[d] == 1
    if not whole:
        raise _dp_error(eqn, f"it slices the split dimension {d}")
    limits = list(p["limit_indices"])
    limits[d] = get_aval(x).shape[d]
    return _all(_bind(eqn, [x], limit_indices=tuple(limits)), d)


def _pad_split(ctx, eqn, x, d, rest):
    if tuple(eqn.params["padding_config"][d]) != (0, 0, 0):
        raise _dp_error(eqn, f"it pads the split dimension {d}")
    return _all(_bind(eqn, [x, *rest]), d)


def _concatenate_rule(ctx, eqn, ins):
    layouts = [l for _, l in ins]
    if all(l is None for l in layouts):
        return _all(_bind(eqn, [v for v, _ in ins]), None)
    if all(l == PARTIAL for l in layouts):
        return _all(_bind(eqn, [v for v, _ in ins]), PARTIAL)
    dim = eqn.params["dimension"]
    split = next((l for l in layouts if isinstance(l, int)), None)
    if split is None or split == dim:
        if split == dim:
            raise _dp_error(eqn, f"it concatenates along the split dimension {dim}")
        return _replicated(ctx, eqn, ins)
    return _all(_bind(eqn, [ctx.split(v, l, split, eqn) for v, l in ins]), split)


# -- reductions and per-dimension operations --------------------------------------------------------------------

def _reduce_sum_split(ctx, eqn, x, d, rest):
    axes = eqn.params["axes"]
    if d in axes:  # each device sums its block: the terms of a partial sum
        return _all(_bind(eqn, [x]), PARTIAL)
    return _all(_bind(eqn, [x]), d - sum(1 for a in axes if a < d))


def _extremum_rule(collective_prim: Primitive) -> Callable:
    def rule(ctx, eqn, ins):
        (x, layout), = ins
        axes = eqn.params["axes"]
        if not isinstance(layout, int):
            return _replicated(ctx, eqn, ins)
        out = _bind(eqn, [x])[0]
        if layout in axes:  # each device reduces its block, then the blocks' results meet
            return [(collective_prim.bind(out, axis_name=(ctx.axis,)), None)]
        return [(out, layout - sum(1 for a in axes if a < layout))]
    return rule


def _along_dims(dims_of: Callable[[dict], Sequence[int]], reduces: bool) -> Callable:
    """Operations that work along some dimensions and treat the others independently."""
    def rule(ctx, eqn, ins):
        layouts = [l for _, l in ins]
        split = next((l for l in layouts if isinstance(l, int)), None)
        if split is None:
            return _replicated(ctx, eqn, ins)
        dims = tuple(dims_of(eqn.params))
        if split in dims:  # it needs the whole dimension: gather it, every device computes it all
            return _replicated(ctx, eqn, ins)
        out_d = split - sum(1 for a in dims if a < split) if reduces else split
        vals = [ctx.split(v, l, split, eqn) if _rank(a) else ctx.full(v, l) for (v, l), a in zip(ins, eqn.invars)]
        return _all(_bind(eqn, vals), out_d)
    return rule


# -- contractions ----------------------------------------------------------------------------------------------

def _dot_general_rule(ctx, eqn, ins):
    (x, lx), (y, ly) = ins
    if PARTIAL in (lx, ly):
        if {lx, ly} == {PARTIAL, None}:
            return _all(_bind(eqn, [x, y]), PARTIAL)
        x, y = ctx.full(x, lx), ctx.full(y, ly)
        lx, ly = None, None
    if lx is None and ly is None:
        return _all(_bind(eqn, [x, y]), None)
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    lfree = [k for k in range(_rank(eqn.invars[0])) if k not in lc and k not in lb]
    rfree = [k for k in range(_rank(eqn.invars[1])) if k not in rc and k not in rb]
    if isinstance(lx, int):
        if lx in lc:
            y = ctx.split(y, ly, rc[lc.index(lx)], eqn)
            return _all(_bind(eqn, [x, y]), PARTIAL)
        if lx in lb:
            y = ctx.split(y, ly, rb[lb.index(lx)], eqn)
            return _all(_bind(eqn, [x, y]), lb.index(lx))
        y = ctx.full(y, ly)
        return _all(_bind(eqn, [x, y]), len(lb) + lfree.index(lx))
    if ly in rc:
        x = ctx.split(x, lx, lc[rc.index(ly)], eqn)
        return _all(_bind(eqn, [x, y]), PARTIAL)
    if ly in rb:
        x = ctx.split(x, lx, lb[rb.index(ly)], eqn)
        return _all(_bind(eqn, [x, y]), rb.index(ly))
    return _all(_bind(eqn, [x, y]), len(lb) + len(lfree) + rfree.index(ly))


def _conv_rule(ctx, eqn, ins):
    (x, lx), (w, lw) = ins
    p = eqn.params
    if PARTIAL in (lx, lw):
        if {lx, lw} == {PARTIAL, None}:
            return _all(_bind(eqn, [x, w]), PARTIAL)
        x, w, lx, lw = ctx.full(x, lx), ctx.full(w, lw), None, None
    if lx is None and lw is None:
        return _all(_bind(eqn, [x, w]), None)
    dn = p["dimension_numbers"]
    lhs_batch, lhs_feature = dn.lhs_spec[0], dn.lhs_spec[1]
    rhs_out, rhs_in = dn.rhs_spec[0], dn.rhs_spec[1]
    groups = p["feature_group_count"] != 1 or p["batch_group_count"] != 1
    if lx == lhs_batch and not groups:
        return _all(_bind(eqn, [x, ctx.full(w, lw)]), dn.out_spec[0])
    if (lx == lhs_feature or lw == rhs_in) and not groups and lx in (None, lhs_feature) and lw in (None, rhs_in):
        x, w = ctx.split(x, lx, lhs_feature, eqn), ctx.split(w, lw, rhs_in, eqn)
        return _all(_bind(eqn, [x, w]), PARTIAL)
    if lw == rhs_out and lx is None and not groups:
        return _all(_bind(eqn, [x, w]), dn.out_spec[1])
    raise _dp_error(eqn, f"lhs {_layout_str(lx)} and rhs {_layout_str(lw)} with dimension numbers {dn} "
                         f"(feature groups {p['feature_group_count']}, batch groups {p['batch_group_count']})")


# -- windows ---------------------------------------------------------------------------------------------------

def _window_is_trivial(params: dict, d: int) -> bool:
    pad = params.get("padding")
    return (params["window_dimensions"][d] == 1 and params["window_strides"][d] == 1
            and (pad is None or tuple(pad[d]) == (0, 0))
            and params.get("base_dilation", [1] * (d + 1))[d] == 1
            and params.get("window_dilation", [1] * (d + 1))[d] == 1)


def _window_rule(linear: bool) -> Callable:
    def rule(ctx, eqn, ins):
        layouts = [l for _, l in ins]
        if PARTIAL in layouts and not (linear and layouts == [PARTIAL]):
            ins = [(ctx.full(v, l), None) for v, l in ins]
            layouts = [None] * len(ins)
        if layouts == [PARTIAL]:
            return _all(_bind(eqn, [ins[0][0]]), PARTIAL)
        split = next((l for l in layouts if isinstance(l, int)), None)
        if split is None:
            return _all(_bind(eqn, [v for v, _ in ins]), None)
        if not _window_is_trivial(eqn.params, split):
            raise _dp_error(eqn, f"its window spans the split dimension {split}")
        return _all(_bind(eqn, [ctx.split(v, l, split, eqn) for v, l in ins]), split)
    return rule


# -- indexing ----------------------------------------------------------------------------------------------------
#
# gather(x, indices, axes): the output is indices.shape[:-1] followed by x's dims not in axes.
# A split dimension of x that is not indexed, or a split batch dimension of the indices,
# carries over to the output; a split indexed dimension (the indices address the whole
# dimension) is gathered first.

def _rest_dims(ndim: int, axes: Sequence[int]) -> list[int]:
    return [d for d in range(ndim) if d not in axes]


def _gather_rule(ctx, eqn, ins):
    (x, lx), (idx, li) = ins
    axes, batch_nd = eqn.params["axes"], _rank(eqn.invars[1]) - 1
    fill_is_zero = eqn.params["mode"] != "fill" or eqn.params["fill_value"] in (None, 0)
    if lx == PARTIAL and li is None and fill_is_zero:   # linear in x
        return _all(_bind(eqn, [x, idx]), PARTIAL)
    if lx == PARTIAL or (isinstance(lx, int) and lx in axes):
        x, lx = ctx.full(x, lx), None
    if li == PARTIAL or li == batch_nd or (isinstance(lx, int) and isinstance(li, int)):
        idx, li = ctx.full(idx, li), None
    if isinstance(lx, int):
        return _all(_bind(eqn, [x, idx]), batch_nd + _rest_dims(_rank(eqn.invars[0]), axes).index(lx))
    return _all(_bind(eqn, [x, idx]), li)


def _scatter_rule(ctx, eqn, ins):
    (x, lx), (idx, li), (upd, lu) = ins
    axes, batch_nd = eqn.params["axes"], _rank(eqn.invars[1]) - 1
    rest = _rest_dims(_rank(eqn.invars[0]), axes)
    if lx == PARTIAL and lu == PARTIAL and li is None and eqn.params["mode"] == "add":   # linear
        return _all(_bind(eqn, [x, idx, upd]), PARTIAL)
    from_updates = rest[lu - batch_nd] if isinstance(lu, int) and lu >= batch_nd else None
    d = lx if isinstance(lx, int) and lx not in axes else from_updates
    if d is None or li == PARTIAL or isinstance(li, int) or (isinstance(lu, int) and lu < batch_nd):
        return _replicated(ctx, eqn, ins)
    # every device updates its block of a dimension the indices do not address
    vals = [ctx.split(x, lx, d, eqn), ctx.full(idx, li), ctx.split(upd, lu, batch_nd + rest.index(d), eqn)]
    return _all(_bind(eqn, vals), d)


def _whole_split(ctx, eqn, layouts: list, shape: Sequence[int], window: Sequence[int]):
    """The dimension split in ``layouts`` if the window spans it whole (so its start is 0)."""
    split = next((l for l in layouts if isinstance(l, int)), None)
    if split is not None and window[split] == shape[split] and shape[split] % ctx.n == 0:
        return split
    return None


def _dynamic_slice_rule(ctx, eqn, ins):
    (x, lx), *starts = ins
    starts = [ctx.full(v, l) for v, l in starts]
    sizes = eqn.params["slice_sizes"]
    d = _whole_split(ctx, eqn, [lx], eqn.invars[0].aval.shape, sizes)
    if d is not None:
        return _all(_bind(eqn, [x, *starts], slice_sizes=ctx.local_shape(sizes, d)), d)
    if lx == PARTIAL:
        return _all(_bind(eqn, [x, *starts]), PARTIAL)
    return _all(_bind(eqn, [ctx.full(x, lx), *starts]), None)


def _dynamic_update_slice_rule(ctx, eqn, ins):
    (x, lx), (upd, lu), *starts = ins
    starts = [ctx.full(v, l) for v, l in starts]
    d = _whole_split(ctx, eqn, [lx, lu], eqn.invars[0].aval.shape, eqn.invars[1].aval.shape)
    if d is not None:
        return _all(_bind(eqn, [ctx.split(x, lx, d, eqn), ctx.split(upd, lu, d, eqn), *starts]), d)
    if lx == PARTIAL and lu == PARTIAL:
        return _all(_bind(eqn, [x, upd, *starts]), PARTIAL)
    return _all(_bind(eqn, [ctx.full(x, lx), ctx.full(upd, lu), *starts]), None)


# -- control flow: bodies become per-device bodies ----------------------------------------------------------------
#
# A body is walked on its operands' layouts into a per-device jaxpr. Branches of a cond (its
# index is replicated, so every device takes the same branch) must agree on their outputs'
# layouts, and a loop body must give its carries the layouts it got: where they differ the
# value is made whole (replicated) and the body walked again, until the layouts are stable.

KEEP = "keep"


def _local_aval(aval: ShapedArray, layout, n: int) -> ShapedArray:
    if not isinstance(layout, int):
        return aval
    return aval.update(shape=tuple(s // n if i == layout else s for i, s in enumerate(aval.shape)))


def _convert(ctx, value, layout, target):
    """``value`` in the ``target`` layout: the layout it has (or KEEP), or None (made whole)."""
    if target == KEEP or target == layout:
        return value, layout
    return ctx.full(value, layout), None


def _per_device_body(ctx, closed: ClosedJaxpr, layouts: list, want: list | None = None):
    """The per-device jaxpr of ``closed`` on inputs of ``layouts``, and its outputs' layouts
    (converted to ``want``'s entries other than KEEP)."""
    out_layouts: list = []

    def body(*xs):
        inner = _DataParallelContext(ctx.mesh, ctx.axis)
        outs = _walk(inner, closed.jaxpr, [(c, None) for c in closed.consts], list(zip(xs, layouts)))
        if want is not None:
            outs = [_convert(inner, v, l, w) for (v, l), w in zip(outs, want)]
        out_layouts[:] = [l for _, l in outs]
        return [v for v, _ in outs]

    avals = [_local_aval(a, l, ctx.n) for a, l in zip(closed.in_avals, layouts)]
    return trace_to_jaxpr(body, avals), out_layouts


def _agree(layout_lists: list[list]) -> list:
    """Per position: the layout every list gives it, else None (replicated)."""
    return [ls[0] if all(l == ls[0] for l in ls) else None for ls in zip(*layout_lists)]


def _cond_rule(ctx, eqn, ins):
    from fgrad.ops.control import bind_cond
    (index, li), *ops = ins
    layouts = [l for _, l in ops]
    branches = eqn.params["branches"]
    walked = [_per_device_body(ctx, b, layouts) for b in branches]
    target = _agree([outs for _, outs in walked])
    if any(outs != target for _, outs in walked):
        walked = [_per_device_body(ctx, b, layouts, target) for b in branches]
    outs = bind_cond(ctx.full(index, li), [v for v, _ in ops], [j for j, _ in walked])
    return list(zip(outs, target))


def _loop_layouts(carry: list, body_of: Callable[[list], list]) -> list:
    """Carry layouts the loop body keeps: start from the initial ones and replicate every
    carry the body changes, until none changes (at most one pass per carry)."""
    layouts = [l for _, l in carry]
    while True:
        after = body_of(layouts)
        joined = _agree([layouts, after])
        if joined == layouts:
            return layouts
        layouts = joined


def _scan_rule(ctx, eqn, ins):
    from fgrad.ops.control import bind_scan
    p = eqn.params
    nc, nk = p["num_consts"], p["num_carry"]
    consts, carry, xs = ins[:nc], ins[nc:nc + nk], ins[nc + nk:]
    xs = [(ctx.full(v, l), None) if l == 0 else (v, l) for v, l in xs]   # the scanned axis stays whole
    x_layouts = [l - 1 if isinstance(l, int) else l for _, l in xs]
    const_layouts = [l for _, l in consts]

    def walk(carry_layouts, want=None):
        return _per_device_body(ctx, p["jaxpr"], [*const_layouts, *carry_layouts, *x_layouts], want)

    carry_layouts = _loop_layouts(carry, lambda ls: walk(ls)[1][:nk])
    body, out_layouts = walk(carry_layouts, [*carry_layouts, *[KEEP] * (len(p["jaxpr"].out_avals) - nk)])
    carry = [_convert(ctx, v, l, t)[0] for (v, l), t in zip(carry, carry_layouts)]
    outs = bind_scan([v for v, _ in consts], carry, [v for v, _ in xs], body, p["length"], p["reverse"], p["unroll"])
    y_layouts = [l + 1 if isinstance(l, int) else l for l in out_layouts[nk:]]
    return list(zip(outs, [*carry_layouts, *y_layouts]))


def _while_rule(ctx, eqn, ins):
    from fgrad.ops.control import bind_while
    p = eqn.params
    ncc, nbc = p["cond_nconsts"], p["body_nconsts"]
    cond_consts, body_consts, carry = ins[:ncc], ins[ncc:ncc + nbc], ins[ncc + nbc:]
    body_const_layouts = [l for _, l in body_consts]

    def walk_body(carry_layouts, want=None):
        return _per_device_body(ctx, p["body_jaxpr"], [*body_const_layouts, *carry_layouts], want)

    carry_layouts = _loop_layouts(carry, lambda ls: walk_body(ls)[1])
    body, _ = walk_body(carry_layouts, carry_layouts)
    cond, _ = _per_device_body(ctx, p["cond_jaxpr"], [*[l for _, l in cond_consts], *carry_layouts], [None])
    carry = [_convert(ctx, v, l, t)[0] for (v, l), t in zip(carry, carry_layouts)]
    outs = bind_while([v for v, _ in cond_consts], [v for v, _ in body_consts], carry, cond, body)
    return list(zip(outs, carry_layouts))


# -- calls: their bodies are walked inline ---------------------------------------------------------------------

def _call_rule(param: str) -> Callable:
    def rule(ctx, eqn, ins):
        body = eqn.params[param]
        return _walk(ctx, body.jaxpr, [(c, None) for c in body.consts], ins)
    return rule


def _walk(ctx, jaxpr: Jaxpr, consts: list, ins: list) -> list:
    """Emit the per-device program of ``jaxpr`` given its inputs' (value, layout)."""
    env: dict[Var, tuple[Any, Any]] = dict(zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, ins))

    def read(atom):
        return (atom.value, None) if isinstance(atom, Literal) else env[atom]

    for eqn in jaxpr.eqns:
        rule = dp_rules.get(eqn.primitive, _default_rule)
        env.update(zip(eqn.outvars, rule(ctx, eqn, [read(a) for a in eqn.invars])))
    return [read(v) for v in jaxpr.outvars]


def _register_dp_rules() -> None:
    from fgrad.ops import contraction, control, elementwise as ew, indexing, misc, reduction, shape as sh, window
    from fgrad.ops.sort import sort_p
    from fgrad.transforms import custom, jit as jit_module, remat
    for value in vars(ew).values():
        if isinstance(value, Primitive):
            dp_rules[value] = _elementwise_rule
    dp_rules[misc.stop_gradient_p] = _elementwise_rule
    dp_rules[misc.threefry2x32_p] = _elementwise_rule
    dp_rules[sh.broadcast_in_dim_p] = _broadcast_in_dim_rule
    dp_rules[sh.iota_p] = _iota_rule
    for prim, split_rule in ((sh.reshape_p, _reshape_split), (sh.transpose_p, _transpose_split),
                             (sh.squeeze_p, _squeeze_split), (sh.expand_dims_p, _expand_dims_split),
                             (sh.slice_p, _slice_split), (sh.pad_p, _pad_split)):
        dp_rules[prim] = _linear_unary(split_rule)
    dp_rules[sh.concatenate_p] = _concatenate_rule
    dp_rules[sh.rev_p] = _along_dims(lambda p: p["dimensions"], reduces=False)
    dp_rules[reduction.reduce_sum_p] = _linear_unary(_reduce_sum_split)
    dp_rules[reduction.reduce_max_p] = _extremum_rule(collective.pmax_p)
    dp_rules[reduction.reduce_min_p] = _extremum_rule(collective.pmin_p)
    for prim in (reduction.reduce_prod_p, reduction.reduce_and_p, reduction.reduce_or_p,
                 reduction.argmax_p, reduction.argmin_p):
        dp_rules[prim] = _along_dims(lambda p: p["axes"], reduces=True)
    dp_rules[reduction.cumsum_p] = _along_dims(lambda p: (p["axis"],), reduces=False)
    dp_rules[sort_p] = _along_dims(lambda p: (p["dimension"],), reduces=False)
    dp_rules[contraction.dot_general_p] = _dot_general_rule
    dp_rules[contraction.conv_general_dilated_p] = _conv_rule
    dp_rules[window.reduce_window_sum_p] = _window_rule(linear=True)
    for prim in (window.reduce_window_max_p, window.reduce_window_min_p,
                 window.select_and_scatter_add_p, window.select_and_gather_add_p):
        dp_rules[prim] = _window_rule(linear=False)
    dp_rules[indexing.gather_p] = _gather_rule
    dp_rules[indexing.scatter_p] = _scatter_rule
    dp_rules[indexing.dynamic_slice_p] = _dynamic_slice_rule
    dp_rules[indexing.dynamic_update_slice_p] = _dynamic_update_slice_rule
    dp_rules[control.cond_p] = _cond_rule
    dp_rules[control.scan_p] = _scan_rule
    dp_rules[control.while_p] = _while_rule
    dp_rules[jit_module.jit_p] = _call_rule("jaxpr")
    dp_rules[remat.remat_p] = _call_rule("jaxpr")
    dp_rules[custom.custom_jvp_call_p] = _call_rule("call")
    dp_rules[custom.custom_vjp_call_p] = _call_rule("call")


_register_dp_rules()


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


_plans: dict[tuple, _Plan] = {}


def _plan(jaxpr: ClosedJaxpr, mesh: Mesh, axis: str, layouts: list, name: str) -> _Plan:
    key = (id(jaxpr), mesh, axis, tuple(layouts))
    plan = _plans.get(key)
    if plan is not None and plan.jaxpr is jaxpr:
        return plan
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
    converted, consts = _closure_convert(closed)  # constants made while emitting: replicated inputs
    plan = _Plan(jaxpr, converted, consts, (PartitionSpec(),) * len(consts) + tuple(_spec_of(l, axis) for l in layouts),
                 tuple(_spec_of(l, axis) for l in out_layouts))
    _plans[key] = plan
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
    from fgrad.transforms.jit import executable_for
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
