"""Devices and the collectives among them.

On the CPU fgrad offers N *virtual devices* (``FGRAD_CPU_DEVICES=N``, default 1): each is
a thread that runs its own copy of a per-device program, so N of them run concurrently
(compiled code and NumPy release the GIL). After ``fgrad.distributed.initialize()`` the
device list spans every process: process ``p`` owns its own N virtual devices.

Collectives (psum, all_gather, ...) of one program run go through a ``Communicator``.
The base class defines each collective from one operation, ``exchange`` (every member
hands in a list of arrays and receives every member's lists); ``ThreadCommunicator``
implements it with a barrier and shared slots, and the MPI flavour in
``fgrad.distributed`` extends the barrier across processes. A GPU backend implements
``Communicator.run`` directly (e.g. with NCCL group calls) instead.

Where a GPU is usable (pycuda imports and sees one) and ``FGRAD_BACKEND`` is not 'cpu',
``devices()`` lists the GPUs instead (``cuda:0``, ...; see ``fgrad.backends.cuda``).

>>> fgrad.devices()              # FGRAD_CPU_DEVICES=4   # doctest: +SKIP
[cpu:0, cpu:1, cpu:2, cpu:3]

The public face of ``fgrad.runtime.devices`` (the multi-device runtime package).
"""
from fgrad.runtime.devices import (  # noqa: F401 (the public names)
    PlacementError, VirtualCpuDevice, gpu_count_cache, default_platform, devices, local_devices,
    device_count, local_device_count, default_device, is_local)
from fgrad.runtime.communicator import (  # noqa: F401 (the public names)
    CollectiveError, CollectiveRequest, Communicator, request_signature, check_signatures,
    ThreadCommunicator)

from fgrad.runtime.devices import __all__  # noqa: F401
