"""``shard``: run a function on every device of a mesh (shard_map semantics), and the
device runtime it shares with the data-parallel path ``jit`` takes for placed arguments.

Explicit form::

    shard(f, mesh, in_specs, out_specs, check_vma=True)(*args)

``f`` sees per-device *blocks*: each argument is cut by its ``PartitionSpec`` (a pytree
prefix of the arguments) and device ``r`` gets block ``r``; ``f`` may call the collectives
of ``fgrad.lax`` (psum, pmean, pmax, pmin, all_gather, psum_scatter, ppermute,
axis_index) over the mesh axis names. The per-device results are put back together by
``out_specs``; a mesh axis an out spec does not name means "the same on every device
along it", and the block of coordinate 0 is used. With ``check_vma`` (the default) that is
checked while tracing: every value is typed with the mesh axes it varies over
(``fgrad.core.vma``; invariant values meeting varying ones are cast with ``pvary``, whose
transpose is ``psum``). Without it, it is checked at run time when ``FGRAD_DEBUG`` >= 1.

How it runs:

1. Before tracing, the arguments are checked against the specs (arity, pytree structure
   with key paths, axis names, divisibility of every split dimension) so mistakes are
   errors, never hangs.
2. ``f`` is traced once on block avals with the mesh axes bound, into a jaxpr; ``shard_p``
   is a primitive carrying it with the mesh and specs, so ``grad``/``jvp``/``vmap``/``jit``
   transform ``shard`` through the rules below (jvp via ``jvp_jaxpr``, partial evaluation
   via ``partial_eval_jaxpr`` with residuals stacked over the devices, transposition via
   ``backward_pass``. Typed, the body's own pvary/psum transposes make cotangents of
   replicated inputs come out summed; with ``check_vma=False`` cotangents of outputs
   replicated over an axis are divided by its size and those of inputs replicated over an
   axis are psum'd over it, as in shard_map without replication checking).
3. ``DeviceProgram`` (``fgrad.transforms.device_program``) splits the per-device jaxpr at
   its collectives. Equations are staged by how many collectives they depend on; each stage
   is ONE compiled program (``fgrad.lower``), and all collectives between two stages are
   performed together in one exchange of a ``Communicator`` (``fgrad.devices``).
   ``axis_index`` becomes an input. Calls (jit, remat, custom_vjp...) holding collectives
   are inlined first; a loop or branch holding them runs on the host around compiled
   programs of its bodies, split the same way.
4. Each device is a thread (compiled code and NumPy release the GIL) whose programs are
   compiled for its share of the cores (``fgrad.backends.cpu.thread_budget``: with N
   devices on C cores, C // N threads each, at least 1), so devices do not oversubscribe
   the machine. The communicator is a barrier plus shared slots (MPI across processes).
   A failing device aborts the barrier, so the others stop instead of hanging.

Data parallelism by placement (``jit`` on ``device_put`` arguments) is the pass in
``fgrad.transforms.data_parallel``, which runs its per-device jaxpr through ``run_shard``.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

import numpy as np

from fgrad import tree
from fgrad.backends.base import Buffer
from fgrad.config import config
from fgrad.core import vma
from fgrad.core.array import Array
from fgrad.core.ir import ClosedJaxpr, Eqn, Jaxpr
from fgrad.core.primitive import Primitive
from fgrad.core.trace import (EVAL, current_interpreter, dce_jaxpr, dce_rules, get_aval, set_interpreter,
                              trace_to_jaxpr, Tracer)
from fgrad.core.types import ShapedArray
from fgrad.devices import CollectiveError, Communicator
from fgrad.ops import collective
from fgrad.sharding import (Mesh, NamedSharding, PartitionSpec, ShardedArray, block_shape, check_spec, is_spec,
                            replica_leader, shard_value)
from fgrad.transforms.device_program import DeviceProgram, device_context, device_program
from fgrad.transforms.jvp import jvp_jaxpr, jvp_rules
from fgrad.transforms.partial_eval import partial_eval_jaxpr, partial_eval_rules
from fgrad.transforms.vjp import backward_pass, is_undefined, transpose_rules, UndefinedPrimal
from fgrad.transforms.vmap import vmap_jaxpr, vmap_rules

__all__ = ["shard", "shard_p"]


# --- running a DeviceProgram on the devices ----------------------------------------------------------

_pools: dict[int, ThreadPoolExecutor] = {}


def _pool(workers: int) -> ThreadPoolExecutor:
    pool = _pools.get(workers)
    if pool is None:
        pool = _pools[workers] = ThreadPoolExecutor(workers, thread_name_prefix="fgrad-device")
    return pool


#: Makes the communicator of one run, per platform of the mesh's devices:
#: ``factory(mesh, local_ranks) -> Communicator``. The CPU's (threads, MPI across processes)
#: is the default; a GPU backend registers its own (NCCL, ``fgrad.backends.cuda.collectives``).
communicator_factories: dict[str, Callable[[Mesh, list[int]], Communicator]] = {}


def _communicator(mesh: Mesh, ranks: list[int]) -> Communicator:
    platforms = sorted({d.platform for d in mesh.device_list})
    if len(platforms) > 1:
        raise ValueError(f"{mesh} mixes devices of platforms {platforms}; a mesh's devices must all be "
                         "GPUs or all CPU devices (build it from fgrad.devices(backend=...))")
    if platforms[0] == "cuda" and "cuda" not in communicator_factories:
        from fgrad.backends.cuda import collectives as cuda_collectives
        communicator_factories.setdefault("cuda", cuda_collectives.communicator_factory)   # NCCL
    factory = communicator_factories.get(platforms[0])
    if factory is not None:
        return factory(mesh, ranks)
    from fgrad import distributed
    return distributed.communicator(mesh.size, ranks)


def run_on_devices(program: DeviceProgram, per_rank_args: dict[int, list]) -> dict[int, list]:
    """Run ``program`` on each local device concurrently; returns each rank's outputs."""
    if device_context.comm is not None:
        raise NotImplementedError("shard inside a function that already runs per device (nested shard) "
                                  "is not supported; use collectives over several mesh axes instead")
    mesh = program.mesh
    ranks = sorted(per_rank_args)
    program.prepare(ranks)
    comm = _communicator(mesh, ranks)
    results: dict[int, list] = {}
    errors: dict[int, BaseException] = {}

    def work(rank: int) -> None:
        device_context.comm, device_context.rank, device_context.mesh = comm, rank, mesh
        try:
            results[rank] = program.run(rank, comm, per_rank_args[rank])
        except BaseException as err:  # noqa: BLE001 - re-raised below, in the caller's thread
            errors[rank] = err
            comm.abort()
        finally:
            device_context.comm, device_context.mesh = None, None

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


def _shard_abstract_eval(*avals, jaxpr, mesh, in_specs, out_specs, name, check_vma=True):
    return [global_aval(a, s, mesh) for a, s in zip(jaxpr.out_avals, out_specs)]


def _shard_impl(*args, jaxpr, mesh, in_specs, out_specs, name, check_vma=True):
    return run_shard(jaxpr, mesh, in_specs, out_specs, args, name)


shard_p.def_abstract_eval(_shard_abstract_eval)
shard_p.def_impl(_shard_impl)
vma.vma_rules[shard_p] = vma.typed_by_body   # global values: invariant outside shard


def _closure_convert(closed: ClosedJaxpr) -> tuple[ClosedJaxpr, list]:
    j = closed.jaxpr
    return ClosedJaxpr(Jaxpr([], [*j.constvars, *j.invars], j.eqns, j.outvars), []), list(closed.consts)


def _bind_shard(closed: ClosedJaxpr, args: Sequence[Any], mesh: Mesh, in_specs: Sequence[PartitionSpec],
                out_specs: Sequence[PartitionSpec], name: str, check_vma: bool) -> list:
    """Bind ``shard_p`` on a jaxpr that may have constants (they become replicated inputs)."""
    converted, consts = _closure_convert(closed)
    return shard_p.bind(*consts, *args, jaxpr=converted, mesh=mesh,
                        in_specs=(PartitionSpec(),) * len(consts) + tuple(in_specs),
                        out_specs=tuple(out_specs), name=name, check_vma=check_vma)


def _traced(mesh: Mesh, check_vma: bool, fun: Callable, *args):
    """Run a jaxpr-building helper with the mesh axes visible to collectives (and manual, so
    values are typed with the axes they vary over, unless ``check_vma`` is off)."""
    with collective.axis_frame(mesh.shape), vma.manual_axes_frame(mesh.axis_names if check_vma else ()):
        return fun(*args)


def _shard_jvp(primals, tangents, jaxpr, mesh, in_specs, out_specs, name, check_vma=True):
    nonzero = [t is not None for t in tangents]
    jvp_closed, _ = _traced(mesh, check_vma, lambda: jvp_jaxpr(jaxpr, nonzero, instantiate=True))
    tangent_specs = [s for s, nz in zip(in_specs, nonzero) if nz]
    outs = _bind_shard(jvp_closed, [*primals, *[t for t in tangents if t is not None]], mesh,
                       [*in_specs, *tangent_specs], [*out_specs, *out_specs], f"jvp({name})", check_vma)
    n = len(out_specs)
    return outs[:n], outs[n:]


def _insert_unsplit(spec: PartitionSpec, dim: int) -> PartitionSpec:
    entries = list(spec) + [None] * max(0, dim - len(spec))
    entries.insert(dim, None)
    return PartitionSpec(*entries)


def _shard_vmap(axis, vals, dims, jaxpr, mesh, in_specs, out_specs, name, check_vma=True):
    if axis.name is not None and axis.name in mesh.shape:
        raise ValueError(f"vmap(axis_name={axis.name!r}) around shard: the name is also a mesh axis of "
                         f"{mesh}; rename one of them")
    n_out = len(out_specs)
    batched, _ = _traced(mesh, check_vma, lambda: vmap_jaxpr(jaxpr, axis, dims, [0] * n_out))
    new_in = [s if d is None else _insert_unsplit(s, d) for s, d in zip(in_specs, dims)]
    new_out = [_insert_unsplit(s, 0) for s in out_specs]
    return _bind_shard(batched, vals, mesh, new_in, new_out, f"vmap({name})", check_vma), [0] * n_out


def _stacked_spec(mesh: Mesh) -> PartitionSpec:
    """Per-device values (residuals) stacked along a new leading dim over every mesh axis."""
    return PartitionSpec(tuple(mesh.axis_names))


def _shard_partial_eval(interp, args, jaxpr, mesh, in_specs, out_specs, name, check_vma=True):
    from fgrad.ops.shape import reshape
    unknowns = [interp.is_unknown(a) for a in args]
    known, unknown, out_unknowns, num_res = _traced(mesh, check_vma, lambda: partial_eval_jaxpr(jaxpr, unknowns))
    n_known_outs = len(out_unknowns) - sum(out_unknowns)

    def known_stacked(*xs):  # residuals get a leading axis of 1: stacked over devices, globally N
        outs = known(*xs)
        return [*outs[:n_known_outs], *[reshape(r, (1, *get_aval(r).shape)) for r in outs[n_known_outs:]]]

    def unknown_unstacked(*xs):
        res = [reshape(r, get_aval(r).shape[1:]) for r in xs[:num_res]]
        return unknown(*res, *xs[num_res:])

    known_j = _traced(mesh, check_vma, lambda: trace_to_jaxpr(known_stacked, known.in_avals))
    res_avals = [a.update(shape=(1, *a.shape)) for a in unknown.in_avals[:num_res]]
    unknown_j = _traced(mesh, check_vma,
                        lambda: trace_to_jaxpr(unknown_unstacked, [*res_avals, *unknown.in_avals[num_res:]]))
    res_spec = _stacked_spec(mesh)
    known_specs = [s for s, u in zip(in_specs, unknowns) if not u]
    unknown_specs = [s for s, u in zip(in_specs, unknowns) if u]
    known_out_specs = [s for s, u in zip(out_specs, out_unknowns) if not u]
    unknown_out_specs = [s for s, u in zip(out_specs, out_unknowns) if u]
    with set_interpreter(interp.parent):
        known_outs = _bind_shard(known_j, [a for a, u in zip(args, unknowns) if not u], mesh, known_specs,
                                 [*known_out_specs, *[res_spec] * num_res], name, check_vma)
    residuals = known_outs[n_known_outs:]
    converted, consts = _closure_convert(unknown_j)
    unknown_outs = interp.stage(shard_p, [*consts, *residuals, *[a for a, u in zip(args, unknowns) if u]], dict(
        jaxpr=converted, mesh=mesh, in_specs=(PartitionSpec(),) * len(consts) + (res_spec,) * num_res
        + tuple(unknown_specs), out_specs=tuple(unknown_out_specs), name=f"linear({name})", check_vma=check_vma))
    known_it, unknown_it = iter(known_outs[:n_known_outs]), iter(unknown_outs)
    return [next(unknown_it) if u else next(known_it) for u in out_unknowns]


def _unnamed_size(spec: PartitionSpec, mesh: Mesh) -> tuple[tuple[str, ...], int]:
    axes = tuple(a for a in mesh.axis_names if a not in spec.mentioned())
    return axes, int(np.prod([mesh.shape[a] for a in axes])) if axes else 1


def _shard_transpose(cts, *args, jaxpr, mesh, in_specs, out_specs, name, check_vma=True):
    from fgrad.ops.elementwise import div
    from fgrad.transforms.jvp import zeros_like_aval
    linear = [is_undefined(a) for a in args]
    nonlin_avals = [a for a, lin in zip(jaxpr.in_avals, linear) if not lin]
    ct_avals = [a.strip_weak_type() for a in jaxpr.out_avals]

    def body(*xs):
        nonlin, cts_in = iter(xs[:len(nonlin_avals)]), xs[len(nonlin_avals):]
        scaled = list(cts_in)
        if not check_vma:
            for k, (ct, spec) in enumerate(zip(cts_in, out_specs)):
                _, size = _unnamed_size(spec, mesh)
                # untyped: each of the `size` copies of a replicated output carries 1/size of its cotangent
                scaled[k] = div(ct, np.asarray(size, get_aval(ct).dtype)) if size > 1 else ct
        full = [UndefinedPrimal(a) if lin else next(nonlin) for a, lin in zip(jaxpr.in_avals, linear)]
        res = backward_pass(jaxpr.jaxpr, jaxpr.consts, full, scaled)
        out = []
        for ct, a, lin, spec in zip(res, jaxpr.in_avals, linear, in_specs):
            if not lin:
                continue
            ct = zeros_like_aval(a.strip_weak_type()) if ct is None else ct
            # typed, a replicated input's cotangent is already summed (pvary transposes to psum)
            axes = (tuple(sorted(get_aval(ct).vma - set(spec.mentioned()), key=str)) if check_vma
                    else _unnamed_size(spec, mesh)[0])
            out.append(collective.psum_p.bind(ct, axis_name=axes) if axes else ct)
        return out

    transposed = _traced(mesh, check_vma, lambda: trace_to_jaxpr(body, [*nonlin_avals, *ct_avals]))
    cts = [zeros_like_aval(a) if ct is None else ct for ct, a in
           zip(cts, _shard_abstract_eval(jaxpr=jaxpr, mesh=mesh, in_specs=in_specs, out_specs=out_specs, name=name))]
    outs = _bind_shard(transposed, [*[a for a in args if not is_undefined(a)], *cts], mesh,
                       [*[s for s, lin in zip(in_specs, linear) if not lin], *out_specs],
                       [s for s, lin in zip(in_specs, linear) if lin], f"transpose({name})", check_vma)
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


def _check_out_vma(where: str, spec: PartitionSpec, aval: ShapedArray) -> None:
    """An output may vary only over the mesh axes its out spec names."""
    unnamed = sorted(aval.vma - set(spec.mentioned()), key=str)
    if not unnamed:
        return
    axes = ", ".join(repr(a) for a in unnamed)
    names = unnamed[0] if len(unnamed) == 1 else tuple(unnamed)
    raise ValueError(
        f"{where} varies across devices along mesh axes {axes} ({aval.str_short()}), but its out spec {spec} "
        f"does not name {'it' if len(unnamed) == 1 else 'them'}, which says the output is the same on every "
        f"device. Reduce it first (lax.psum(x, {names!r}) or lax.pmean(x, {names!r}), or all_gather), or "
        f"name the axis in the out spec (e.g. P({unnamed[0]!r})) to keep every device's block; "
        "shard(..., check_vma=False) skips this check.")


def _check_mesh_of(leaf: Any, mesh: Mesh, where: str) -> None:
    if isinstance(leaf, ShardedArray) and leaf.sharding.mesh != mesh:
        raise ValueError(f"{where} is placed on {leaf.sharding.mesh}, but shard runs on {mesh}: arrays on "
                         "different meshes; device_put it onto the shard's mesh first")


def shard(f: Callable, mesh: Mesh, in_specs: Any, out_specs: Any, *, check_vma: bool = True) -> Callable:
    """Run ``f`` once per device of ``mesh`` on per-device blocks (JAX's shard_map).

    ``in_specs``: a PartitionSpec per argument (a pytree prefix of the arguments);
    ``out_specs``: likewise for the outputs. Inside ``f`` the collectives of
    ``fgrad.lax`` work over the mesh axis names.

    Replication typing (``check_vma=True``, the default, as in JAX): every value inside
    ``f`` knows which mesh axes it varies over (an argument split over ``'data'`` varies
    over ``'data'``, a ``P()`` one is the same on every device; ``psum``/``pmean``/
    ``all_gather`` make values invariant). A replicated value used with a varying one is
    cast implicitly (``pvary``), so ``grad`` inside or outside ``shard`` sums a replicated
    parameter's gradient over the devices, and returning a value that varies over an axis
    its out spec does not name is an error. ``check_vma=False`` turns this off: nothing is
    checked, an unnamed axis's output is taken from the devices at coordinate 0 (checked
    equal only when ``FGRAD_DEBUG`` >= 1), and gradients are as in shard_map with
    ``check_vma=False``.

    >>> mesh = Mesh(fgrad.devices(4), ("i",))                       # doctest: +SKIP
    >>> total = shard(lambda x: lax.psum(x.sum(), "i"), mesh, P("i"), P())(fnp.arange(8.))   # doctest: +SKIP
    Array(28., dtype=float32)
    >>> loss = lambda w, x: lax.psum(fnp.sum(fnp.tanh(x @ w)), "i")   # doctest: +SKIP
    >>> g = shard(grad(loss), mesh, (P(), P("i")), P())(w, x)   # = grad of the whole-batch loss   # doctest: +SKIP
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
        if check_vma:
            block_avals = [a.update(vma=frozenset(s.mentioned())) for a, s in zip(block_avals, specs)]
        key = (in_tree, tuple(block_avals), tuple(specs))
        entry = cache.get(key)
        if entry is None:
            entry = _trace(f, name, mesh, in_tree, block_avals, out_specs, check_vma)
            if not any(isinstance(c, Tracer) for c in entry[1]):
                cache[key] = entry
        converted, consts, out_tree, flat_out_specs = entry
        all_specs = (PartitionSpec(),) * len(consts) + tuple(specs)
        if current_interpreter() is EVAL:
            outs = run_shard(converted, mesh, all_specs, flat_out_specs, [*consts, *leaves], name)
        else:
            outs = shard_p.bind(*consts, *leaves, jaxpr=converted, mesh=mesh, in_specs=all_specs,
                                out_specs=flat_out_specs, name=name, check_vma=check_vma)
        return tree.tree_unflatten(out_tree, outs)

    sharded.__name__ = f"shard({name})"
    sharded.__doc__ = getattr(f, "__doc__", None)
    return sharded


def _trace(f: Callable, name: str, mesh: Mesh, in_tree, block_avals: list, out_specs: Any, check_vma: bool):
    from fgrad.transforms.vjp import check_output_leaves
    box: list = []

    def flat_fun(*blocks):
        out = f(*tree.tree_unflatten(in_tree, list(blocks)))
        check_output_leaves(out, name)
        out_leaves, out_tree = tree.tree_flatten(out)
        box.append((out, out_tree))
        return out_leaves

    with collective.axis_env_here(), collective.axis_frame(mesh.shape), \
            vma.manual_axes_frame(mesh.axis_names if check_vma else ()):
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
        _check_out_vma(where, spec, aval)
    converted, consts = _closure_convert(closed)
    return converted, consts, out_tree, tuple(flat_out_specs)
