"""The public face of ``fgrad.runtime.distributed`` (the multi-device runtime): its names, and its
documentation as this module's."""

from fgrad.runtime.distributed import (  # noqa: F401 (the public names)
    INSTALL_HINT, mpi_available, initialize, peers, shutdown, is_initialized, process_index,
    process_count, allgather_object, broadcast_object, barrier, MpiCommunicator, communicator,
    ThreadCommunicator)

from fgrad.runtime import distributed as _runtime_distributed
from fgrad.runtime.distributed import __all__  # noqa: F401

__doc__ = _runtime_distributed.__doc__
