"""Multi-process fgrad over MPI (mpi4py): ``initialize()`` once per process, then the same
programs as on one machine.

MPI is the bootstrap and the transport: ``mpirun -n P python train.py`` starts P processes;
``initialize()`` makes each one aware of the others, so ``fgrad.devices()`` lists every
process's virtual devices (process ``p`` runs ``FGRAD_CPU_DEVICES`` of them) and a mesh may
span processes. Each process runs only its own devices; their collectives meet through
``MpiCommunicator``: the local members meet at a thread barrier, then one thread
all-gathers the process's contributions with MPI. Placing an array (``device_put``) keeps
only the local shards, and reading a sharded array back (``np.asarray``) is itself a
collective every process must call.

Without mpi4py nothing here is needed: ``is_initialized()`` is False and fgrad runs in one
process. Installing it (Debian)::

    apt-get install -y openmpi-bin libopenmpi-dev && pip install mpi4py

On GPUs a process alone on its host runs every GPU it sees; processes sharing a host take one
GPU each, in process order. ``initialize()`` exchanges each process's host name and GPU count
(``peers()``), so ``fgrad.devices()`` lists every process's GPUs. Their collectives run with NCCL
(``fgrad.backends.cuda.nccl``): the unique id of each NCCL communicator is made by one member and
reaches the other processes over MPI (``broadcast_object`` for a world communicator,
``world_comm``; the host communicator's all-gather for ``NcclCommunicator``'s per-group
communicators).

>>> from fgrad import distributed
>>> distributed.initialize()          # under mpirun -n 2   # doctest: +SKIP
>>> distributed.process_index(), distributed.process_count()   # doctest: +SKIP
(0, 2)
"""
from __future__ import annotations

import socket
import threading
from typing import Any, Callable, Sequence

from fgrad.runtime.communicator import ThreadCommunicator

__all__ = ["initialize", "shutdown", "is_initialized", "process_index", "process_count",
           "allgather_object", "broadcast_object", "peers", "barrier", "MpiCommunicator", "mpi_available"]

INSTALL_HINT = "apt-get install -y openmpi-bin libopenmpi-dev && pip install mpi4py"


class _State:
    """The process-wide MPI state (set once by ``initialize``)."""

    def __init__(self):
        self.comm: Any = None
        self.rank = 0
        self.size = 1
        self.peers: tuple = ({},)      # per process: its host name and how many GPUs it sees
        self.lock = threading.Lock()  # MPI calls from several threads go one at a time


_state = _State()


def mpi_available() -> bool:
    """Can mpi4py be imported here?"""
    try:
        import mpi4py  # noqa: F401 (only its presence matters)
    except ImportError:
        return False
    return True


def initialize(comm: Any = None) -> None:
    """Join the processes started by ``mpirun``: afterwards ``fgrad.devices()`` spans them all.

    ``comm`` defaults to MPI's world communicator. Calling it again is a no-op.
    """
    if _state.comm is not None:
        return
    try:
        from mpi4py import MPI
    except ImportError:
        raise RuntimeError("fgrad.distributed.initialize() needs mpi4py (and an MPI library); "
                           f"install them with: {INSTALL_HINT}") from None
    comm = MPI.COMM_WORLD if comm is None else comm
    _state.comm, _state.rank, _state.size = comm, comm.Get_rank(), comm.Get_size()
    _state.peers = tuple(allgather_object(_local_info()))


#: Functions giving what the other processes need to know of this one, beyond its host name:
#: ``fgrad.backends.cuda`` adds its GPU count (probed with the CUDA driver installed then).
local_info_providers: list[Callable[[], dict]] = []


def _local_info() -> dict:
    """What the other processes need to know of this one: its host and its GPU count."""
    info = {"host": socket.gethostname(), "gpus": 0}
    for provider in local_info_providers:
        info.update(provider())
    return info


def peers() -> tuple:
    """Per process (by index): ``{"host": name, "gpus": GPUs it sees}``, exchanged by
    ``initialize`` (``({},)`` before). ``fgrad.backends.cuda`` builds the GPU list from it
    (and rebuilds it when this is another tuple: a new ``initialize`` or ``shutdown``)."""
    return _state.peers


def shutdown() -> None:
    """Leave the process group (fgrad goes back to single-process); MPI itself stays up."""
    if _state.comm is not None:
        barrier()
    _state.comm, _state.rank, _state.size, _state.peers = None, 0, 1, ({},)


def is_initialized() -> bool:
    """Has ``initialize()`` run in this process?"""
    return _state.comm is not None


def process_index() -> int:
    """This process's rank (0 when not initialized)."""
    return _state.rank


def process_count() -> int:
    """The number of processes (1 when not initialized)."""
    return _state.size


def allgather_object(value: Any) -> list:
    """Every process's ``value``, indexed by process (a collective: every process must call it)."""
    if _state.comm is None:
        return [value]
    with _state.lock:
        return _state.comm.allgather(value)


def broadcast_object(value: Any, root: int = 0) -> Any:
    """Process ``root``'s ``value`` on every process (a collective)."""
    if _state.comm is None:
        return value
    with _state.lock:
        return _state.comm.bcast(value, root=root)


def barrier() -> None:
    """Wait until every process gets here."""
    if _state.comm is not None:
        with _state.lock:
            _state.comm.Barrier()


class MpiCommunicator(ThreadCommunicator):
    """Members spread over processes: threads meet locally, then one thread all-gathers the
    process's slots over MPI (every process's members run the same collectives in order)."""

    def _gather(self, slots: list) -> list:
        mine = {r: slots[r] for r in self.local_ranks}
        merged: list = [None] * self.size
        for part in allgather_object(mine):
            for r, values in part.items():
                merged[r] = values
        return merged


def communicator(size: int, local_ranks: Sequence[int]) -> ThreadCommunicator:
    """The communicator for a run over ``size`` members of which ``local_ranks`` run here."""
    if _state.comm is None or len(local_ranks) == size:
        return ThreadCommunicator(size, local_ranks)
    return MpiCommunicator(size, local_ranks)
