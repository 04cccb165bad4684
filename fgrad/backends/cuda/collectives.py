"""Collectives of device programs on GPUs: ``NcclCommunicator`` over the CUDA runtime.

``fgrad.shard`` (and ``jit`` on arguments placed with ``device_put`` on a mesh of GPUs)
runs one device program per GPU, split at its collectives (``fgrad.transforms.shard``).
Between two stages the collectives run through NCCL on each GPU's stream, on the buffers
the stages left on the GPU; nothing goes back to the host between stages.

``CudaNcclRuntime`` gives ``NcclCommunicator`` what it needs from the CUDA backend
per rank of a mesh: buffers from that GPU's caching allocator, zero-filled ones by an
asynchronous memset, the GPU's stream, and its context made current around NCCL set-up.
``fgrad.transforms.shard`` installs ``communicator_factory`` for the 'cuda' platform when it
first runs a mesh of GPUs. The NCCL communicators of a mesh are made
once and reused by every run on it (``nccl.communicator_factory``). A 1-GPU mesh runs no
NCCL call (a collective over one device is its operand) and never loads the library.

Several GPUs: one process runs all the GPUs it sees (one thread per rank, each GPU's context
current around its calls), or a mesh spans processes (``mpirun``, then
``fgrad.distributed.initialize()``): ``devices(backend="cuda")`` then lists every process's
GPUs (``fgrad.backends.cuda.process_gpus``), each process runs its own ranks, and the communicator's host
channel is ``fgrad.distributed``'s (MPI carries the NCCL unique ids). Several fake GPUs in one
process are what most tests run; two processes with a fake GPU each, ``test_distributed``.
"""
from __future__ import annotations

import contextlib
from typing import Any, ContextManager, Sequence

import numpy as np

from fgrad.backends.cuda import nccl
from fgrad.backends.cuda.devices import runtime
from fgrad.backends.cuda.memory import CudaBuffer, CudaRuntime
from fgrad.runtime.communicator import CollectiveRequest

__all__ = ["CudaNcclRuntime", "CudaNcclCommunicator", "communicator_factory"]


class CudaNcclRuntime(nccl.NcclRuntime):
    """The CUDA runtime of each GPU of ``mesh`` (opened when a rank first needs it)."""

    def __init__(self, mesh: Any):
        self.mesh = mesh

    def device(self, rank: int) -> CudaRuntime:
        """The runtime (driver, stream, allocator) of rank's GPU."""
        return runtime(self.mesh.device_list[rank])

    def empty(self, rank: int, shape: tuple, dtype: np.dtype) -> CudaBuffer:
        """An uninitialised buffer from rank's allocator."""
        return self.device(rank).empty(tuple(shape), np.dtype(dtype))

    def zeros(self, rank: int, shape: tuple, dtype: np.dtype) -> CudaBuffer:
        """A buffer zeroed by a memset queued on rank's stream."""
        rt = self.device(rank)
        out = rt.empty(tuple(shape), np.dtype(dtype))
        if out.nbytes:
            rt.driver.memset_async(out.ptr, 0, out.nbytes)
        return out

    def pointer(self, buffer: CudaBuffer) -> int:
        """The buffer's device address."""
        return buffer.ptr

    def stream(self, rank: int) -> int:
        """The handle of the stream rank's GPU queues everything on."""
        return int(self.device(rank).stream.handle)

    def device_scope(self, rank: int) -> ContextManager:
        """Rank's context, current on this thread while NCCL binds a communicator to it."""
        scope = getattr(self.device(rank).driver, "context_scope", None)
        return scope() if scope is not None else contextlib.nullcontext()

    def reshape(self, rank: int, buffer: CudaBuffer, shape: tuple) -> CudaBuffer:
        """A copy of ``buffer`` in ``shape``, queued on rank's stream."""
        rt = self.device(rank)
        out = rt.empty(tuple(shape), buffer.dtype)
        if out.nbytes != buffer.nbytes:
            raise ValueError(f"reshape of a {buffer.dtype.name}{list(buffer.shape)} buffer to {list(shape)}: "
                             "the sizes differ")
        if out.nbytes:
            rt.driver.copy_dtod(out.ptr, buffer.ptr, out.nbytes)
        return out


class CudaNcclCommunicator(nccl.NcclCommunicator):
    """``NcclCommunicator`` that also takes host operands: a collective nested in control
    flow that runs on the host (the reference evaluator) hands in NumPy arrays; they are
    copied to the GPU and the results copied back."""

    runtime: CudaNcclRuntime

    def run(self, rank: int, requests: Sequence[CollectiveRequest]) -> list:
        """Perform a batch of collectives; host operands give host results."""
        on_host = [not isinstance(r.value, CudaBuffer) for r in requests]
        if any(on_host):
            rt = self.runtime.device(rank)
            requests = [r._replace(value=rt.put(np.asarray(r.value))) if host else r
                        for r, host in zip(requests, on_host)]
        results = super().run(rank, requests)
        return [out.to_numpy() if host else out for out, host in zip(results, on_host)]


#: ``shard.communicator_factories['cuda']``: NCCL communicators reused per mesh.
communicator_factory = nccl.communicator_factory(CudaNcclRuntime, cls=CudaNcclCommunicator)

