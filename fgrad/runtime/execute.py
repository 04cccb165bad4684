"""Running a per-device program on every device of a mesh: the runtime ``shard`` and the
data-parallel path of ``jit`` share.

``run_shard`` places global arguments by their ``PartitionSpec`` s, runs the per-device
jaxpr's ``DeviceProgram`` (``fgrad.runtime.device_program``) on each local device
concurrently and puts the per-device results back together as ``ShardedArray`` s.

Each device is a thread (compiled code and NumPy release the GIL) whose programs are
compiled for its share of the cores (``fgrad.backends.cpu.thread_budget``: with N devices
on C cores, C // N threads each, at least 1), so devices do not oversubscribe the machine.
The communicator is a barrier plus shared slots (MPI across processes; a GPU backend
registers its own in ``communicator_factories``). A failing device aborts the barrier, so
the others stop instead of hanging.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

import numpy as np

from fgrad.backends.base import Buffer
from fgrad.config import config
from fgrad.core.array import Array
from fgrad.core.ir import ClosedJaxpr
from fgrad.core.partition import PartitionSpec
from fgrad.core.types import ShapedArray
from fgrad.backends.cuda import collectives as cuda_collectives
from fgrad.ops.shard import global_aval, shard_p
from fgrad.runtime import distributed
from fgrad.runtime.communicator import CollectiveError, Communicator
from fgrad.runtime.device_program import DeviceProgram, device_context, device_program
from fgrad.runtime.sharding import Mesh, NamedSharding, ShardedArray, host_block, replica_leader, shard_value

__all__ = ["run_shard", "run_on_devices", "communicator_factories"]


# --- running a DeviceProgram on the devices ----------------------------------------------------------

_pools: dict[int, ThreadPoolExecutor] = {}


def _pool(workers: int) -> ThreadPoolExecutor:
    pool = _pools.get(workers)
    if pool is None:
        pool = _pools[workers] = ThreadPoolExecutor(workers, thread_name_prefix="fgrad-device")
    return pool


#: Makes the communicator of one run, per platform of the mesh's devices:
#: ``factory(mesh, local_ranks) -> Communicator``. The CPU's (threads, MPI across processes)
#: is the default; a GPU's is NCCL (``fgrad.backends.cuda.collectives``), set on first use.
communicator_factories: dict[str, Callable[[Mesh, list[int]], Communicator]] = {}


def _communicator(mesh: Mesh, ranks: list[int]) -> Communicator:
    platforms = sorted({d.platform for d in mesh.device_list})
    if len(platforms) > 1:
        raise ValueError(f"{mesh} mixes devices of platforms {platforms}; a mesh's devices must all be "
                         "GPUs or all CPU devices (build it from fgrad.devices(backend=...))")
    if platforms[0] == "cuda" and "cuda" not in communicator_factories:
        communicator_factories.setdefault("cuda", cuda_collectives.communicator_factory)   # NCCL
    factory = communicator_factories.get(platforms[0])
    if factory is not None:
        return factory(mesh, ranks)
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
    if not np.array_equal(host_block(block), host_block(leader_block), equal_nan=True):
        unnamed = [a for a in mesh.axis_names if a not in spec.mentioned()]
        raise ValueError(f"shard({name}): output {k} has out_spec {spec}, which says it is the same on every "
                         f"device along mesh axes {unnamed}, but device {mesh.device_list[rank]} computed a "
                         f"different block than device {mesh.device_list[leader]}. Name the axis in the out "
                         "spec to keep every device's block, or reduce over it (psum/pmean/all_gather).")


def _shard_impl(*args, jaxpr, mesh, in_specs, out_specs, name, check_vma=True):
    return run_shard(jaxpr, mesh, in_specs, out_specs, args, name)


shard_p.def_impl(_shard_impl)   # the primitive is fgrad.ops.shard's; running it is the runtime's
