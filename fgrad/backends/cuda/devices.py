"""Which GPUs there are (``gpu_devices``, ``CudaDevice``), which driver runs them
(``use_driver``), and each GPU's runtime (``runtime``), opened on first use.

Without ``fgrad.distributed`` the GPUs are the ones the driver sees; after
``fgrad.distributed.initialize()`` the list spans every process (``process_gpus``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from fgrad.runtime import distributed
from fgrad.backends.base import Device
from fgrad.backends.cuda.compiler import _memory_cache
from fgrad.backends.cuda.driver import PycudaDriver
from fgrad.backends.cuda.memory import CudaRuntime
from fgrad.backends.cuda.util import lock as _lock
from fgrad.backends.base import gpu_count_cache

_driver_class: list = [PycudaDriver]
_runtimes: dict[int, CudaRuntime] = {}
_gpu_count = gpu_count_cache       # [count] once probed; fgrad.devices reads it on every jit call


def use_driver(driver_class: type) -> None:
    """Use ``driver_class`` (a ``fgrad.backends.base.Driver``) for every GPU from now on; forgets
    the open runtimes and compiled programs (tests install a fake driver this way)."""
    with _lock:
        _driver_class[0] = driver_class
        _runtimes.clear()
        _gpu_count.clear()
        _device_lists[0] = None
        _memory_cache.clear()
        for forget in _driver_listeners:
            forget()


#: Called by ``use_driver`` after it switched drivers: higher layers that keep programs or
#: buffers of the old driver's GPUs (``fgrad.compile.gpu``) register a function that drops them.
_driver_listeners: list[Callable[[], None]] = []


def on_driver_change(forget: Callable[[], None]) -> None:
    """Call ``forget()`` whenever ``use_driver`` installs a driver (once per registered function)."""
    if forget not in _driver_listeners:
        _driver_listeners.append(forget)


def gpu_count() -> int:
    """How many GPUs the current driver sees (probed once)."""
    if not _gpu_count:
        _gpu_count.append(int(_driver_class[0].device_count()))
    return _gpu_count[0]


@dataclass(frozen=True)
class CudaDevice(Device):
    """One GPU: ``index`` numbers it among every process's GPUs (``cuda:i``), ``process_index``
    is the process that runs it and ``ordinal`` its number among that process's GPUs."""

    process_index: int = 0
    ordinal: int = 0

    def __repr__(self) -> str:
        return f"{self.platform}:{self.index}"


_device_lists: list = [None, [], []]   # the peers they were built from, every GPU, this process's


def gpu_devices() -> list[CudaDevice]:
    """``cuda:0 ... cuda:N-1``: this process's GPUs, or after ``fgrad.distributed.initialize()``
    every process's (``process_gpus``), numbered in process order."""
    return list(_gpu_lists()[1])


def local_gpu_devices() -> list[CudaDevice]:
    """The GPUs this process runs (all of ``gpu_devices()`` without ``fgrad.distributed``)."""
    return list(_gpu_lists()[2])


def _gpu_lists() -> list:
    """[peers, every GPU, this process's GPUs], rebuilt when ``fgrad.distributed``'s peers
    change (jit consults the default GPU on every call)."""
    peers = distributed.peers()
    if _device_lists[0] is not peers:
        if distributed.is_initialized():
            listed = [(p, ordinal) for p, ordinals in enumerate(process_gpus(peers)) for ordinal in ordinals]
        else:
            listed = [(0, i) for i in range(gpu_count())]
        every = [CudaDevice("cuda", i, p, ordinal) for i, (p, ordinal) in enumerate(listed)]
        me = distributed.process_index()
        _device_lists[:] = [peers, every, [d for d in every if d.process_index == me]]
    return _device_lists


def process_gpus(peers: Sequence[dict]) -> list[list[int]]:
    """Per process, the ordinals of the GPUs it runs, from each process's host and GPU count
    (``fgrad.distributed.peers()``). A process alone on its host runs every GPU it sees; where
    several processes share a host, the k-th of them (in process order) runs one GPU, ordinal
    k (modulo what it sees, so with ``CUDA_VISIBLE_DEVICES`` set per process each runs its
    ordinal 0). NCCL needs distinct GPUs: start at most one process per GPU."""
    per_host: dict = {}
    for p, info in enumerate(peers):
        per_host.setdefault(info.get("host"), []).append(p)
    out = []
    for p, info in enumerate(peers):
        count, sharing = int(info.get("gpus", 0)), per_host[info.get("host")]
        if count == 0:
            out.append([])
        elif len(sharing) == 1:
            out.append(list(range(count)))
        else:
            out.append([sharing.index(p) % count])
    return out


def runtime(device: Device) -> CudaRuntime:
    """The runtime (driver, stream, allocator) of GPU ``device``, opened on first use."""
    rt = _runtimes.get(device.index)
    if rt is None:
        with _lock:
            rt = _runtimes.get(device.index)
            if rt is None:
                listed = _listed(device)
                rt = _runtimes[device.index] = CudaRuntime(listed, _driver_class[0](listed.ordinal))
    return rt


def _listed(device: Device) -> CudaDevice:
    """``device`` as ``gpu_devices`` lists it, if this process runs it (else an error naming
    the process that does, or the GPUs when it is none of them)."""
    if device.platform == "cuda":
        for listed in _gpu_lists()[1]:
            if listed.index == device.index:
                if listed.process_index != distributed.process_index():
                    raise ValueError(f"{device!r} is run by process {listed.process_index}, not by this one "
                                     f"(process {distributed.process_index()}); fgrad.local_devices() lists "
                                     "this process's GPUs")
                return listed
    raise ValueError(f"{device!r} is not a GPU of this machine; the GPUs are "
                     f"{gpu_devices()} (fgrad.devices() lists every device)")


distributed.local_info_providers.append(lambda: {"gpus": gpu_count()})
