"""Devices and the collectives among them.

On the CPU fgrad offers N *virtual devices* (``FGRAD_CPU_DEVICES=N``, default 1): each is
a thread that runs its own copy of a per-device program, so N of them run concurrently
(compiled code and NumPy release the GIL). After ``fgrad.distributed.initialize()`` the
device list spans every process: process ``p`` owns its own N virtual devices.

Collectives (psum, all_gather, ...) of one program run go through a ``Communicator``
(``fgrad.runtime.communicator``, re-exported here). The base class defines each collective from one operation, ``exchange`` (every member
hands in a list of arrays and receives every member's lists); ``ThreadCommunicator``
implements it with a barrier and shared slots, and the MPI flavour in
``fgrad.distributed`` extends the barrier across processes. A GPU backend implements
``Communicator.run`` directly (e.g. with NCCL group calls) instead.

Where a GPU is usable (pycuda imports and sees one) and ``FGRAD_BACKEND`` is not 'cpu',
``devices()`` lists the GPUs instead (``cuda:0``, ...; see ``fgrad.backends.cuda``).

>>> fgrad.devices()              # FGRAD_CPU_DEVICES=4   # doctest: +SKIP
[cpu:0, cpu:1, cpu:2, cpu:3]
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from fgrad.backends import cuda
from fgrad.backends.base import Device, PlacementError, gpu_count_cache
from fgrad.config import config
from fgrad.runtime import distributed
from fgrad.runtime.communicator import (CollectiveError, CollectiveRequest, Communicator,  # noqa: F401 (re-exported)
                                        ThreadCommunicator, check_signatures, request_signature)

__all__ = ["VirtualCpuDevice", "PlacementError", "devices", "default_platform", "local_devices", "device_count", "local_device_count",
           "default_device", "Communicator", "ThreadCommunicator", "CollectiveRequest",
           "CollectiveError"]




@dataclass(frozen=True)
class VirtualCpuDevice(Device):
    """One virtual CPU device; ``process_index`` is the process that runs it (0 without MPI)."""

    process_index: int = 0

    def __repr__(self) -> str:
        return f"{self.platform}:{self.index}"


def _env_device_count() -> int:
    value = os.environ.get("FGRAD_CPU_DEVICES", "").strip()
    if not value:
        return 1
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"FGRAD_CPU_DEVICES must be a positive integer, got {value!r}")
    return n


def _process_info() -> tuple[int, int]:
    """(this process's index, the number of processes): (0, 1) unless fgrad.distributed is up."""
    return distributed.process_index(), distributed.process_count()




def _gpu_count() -> int:
    if gpu_count_cache:
        return gpu_count_cache[0]
    return cuda.gpu_count()


def default_platform() -> str:
    """'cuda' when ``fgrad.config.backend`` (``FGRAD_BACKEND``) says so, or is unset and a GPU
    is usable (pycuda imports and sees one); else 'cpu'."""
    backend = config.backend
    if backend is None:
        return "cuda" if (gpu_count_cache[0] if gpu_count_cache else _gpu_count()) else "cpu"
    if backend == "cpu":
        return "cpu"
    if backend == "cuda":
        if not _gpu_count():
            raise RuntimeError("FGRAD_BACKEND=cuda (fgrad.config.backend) but no GPU is usable: pycuda "
                               "must import and see an NVIDIA GPU (pip install 'fgrad[cuda]'); use "
                               "FGRAD_BACKEND=cpu otherwise")
        return "cuda"
    raise ValueError(f"FGRAD_BACKEND (fgrad.config.backend) must be 'cpu' or 'cuda', got {backend!r}")


def devices(n: int | None = None, backend: str | None = None) -> list[Device]:
    """Every device of ``backend`` (default: ``default_platform()``): the GPUs for 'cuda';
    for 'cpu', ``n`` virtual CPU devices per process (default ``FGRAD_CPU_DEVICES``, else 1).

    Tests pass ``n`` to get a fixed count of CPU devices whatever the environment says.

    >>> mesh = fgrad.sharding.Mesh(fgrad.devices(4), ("data",))   # doctest: +SKIP
    >>> fgrad.devices()          # on a machine with one GPU   # doctest: +SKIP
    [cuda:0]
    """
    if backend is None and n is None:
        backend = default_platform()
    if backend == "cuda":
        return cuda.gpu_devices()
    if backend not in (None, "cpu"):
        raise ValueError(f"devices: backend must be 'cpu' or 'cuda', got {backend!r}")
    if n is None:
        n = _env_device_count()
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"devices(n): n must be a positive integer, got {n!r}")
    _, count = _process_info()
    return [VirtualCpuDevice("cpu", p * int(n) + i, p) for p in range(count) for i in range(int(n))]


def local_devices(n: int | None = None, backend: str | None = None) -> list[Device]:
    """The devices this process runs (all of them without MPI)."""
    me, _ = _process_info()
    return [d for d in devices(n, backend) if getattr(d, "process_index", me) == me]


def device_count() -> int:
    """The number of devices over all processes."""
    return len(devices())


def local_device_count() -> int:
    """The number of devices this process runs."""
    return len(local_devices())


def default_device() -> Device:
    """Where ``device_put(x)`` and jitted calls on host arrays go: this process's first device
    (a GPU when ``default_platform()`` is 'cuda')."""
    return local_devices()[0]


def is_local(device: Device) -> bool:
    """Does this process run ``device``?"""
    me, _ = _process_info()
    return getattr(device, "process_index", 0) == me
