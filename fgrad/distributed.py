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

The public face of ``fgrad.runtime.distributed`` (the multi-device runtime package).
"""
from fgrad.runtime.distributed import (  # noqa: F401 (the public names)
    INSTALL_HINT, mpi_available, initialize, peers, shutdown, is_initialized, process_index,
    process_count, allgather_object, broadcast_object, barrier, MpiCommunicator, communicator,
    ThreadCommunicator)

from fgrad.runtime.distributed import __all__  # noqa: F401
