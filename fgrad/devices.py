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
"""
from __future__ import annotations

import abc
import os
import threading
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np

from fgrad.backends.base import Device
from fgrad.config import config

__all__ = ["VirtualCpuDevice", "PlacementError", "devices", "default_platform", "local_devices", "device_count", "local_device_count",
           "default_device", "Communicator", "ThreadCommunicator", "CollectiveRequest",
           "CollectiveError"]


class PlacementError(ValueError):
    """Arrays committed to two devices were combined (``devices``: the two)."""

    def __init__(self, message: str, devices: tuple) -> None:
        super().__init__(message)
        self.devices = devices


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
    from fgrad import distributed
    return distributed.process_index(), distributed.process_count()


#: [number of GPUs] once probed (by ``fgrad.backends.cuda.gpu_count``, which owns it); read here
#: directly because jit consults ``default_platform`` on every call.
gpu_count_cache: list = []


def _gpu_count() -> int:
    if gpu_count_cache:
        return gpu_count_cache[0]
    from fgrad.backends import cuda
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
        from fgrad.backends import cuda
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


# --- collectives ---------------------------------------------------------------------------------

class CollectiveError(RuntimeError):
    """A collective could not complete: a device failed, diverged, or timed out."""


class CollectiveRequest(NamedTuple):
    """One collective of one member: ``kind`` (psum, pmax, pmin, all_gather, psum_scatter,
    ppermute), this member's ``value``, the ``group`` of member ranks it combines with (in
    axis order) and the primitive's params."""

    kind: str
    value: np.ndarray
    group: tuple[int, ...]
    params: dict


class Communicator(abc.ABC):
    """Collectives among the ``size`` members (ranks ``0..size-1``) of one program run.

    Every member must call ``run`` with the same sequence of collectives; the base class
    builds each from ``exchange``.
    """

    size: int

    @abc.abstractmethod
    def exchange(self, rank: int, values: list) -> list[list]:
        """Hand in this member's ``values``; get every member's list, indexed by rank."""

    def abort(self) -> None:
        """Release every member blocked in a collective (they raise CollectiveError)."""

    def run(self, rank: int, requests: Sequence[CollectiveRequest]) -> list[np.ndarray]:
        """Perform a batch of collectives in one exchange; returns this member's results."""
        if not requests:
            return []
        signature = request_signature(requests)
        everyone = self.exchange(rank, [signature, *[r.value for r in requests]])
        check_signatures(rank, signature, [None if e is None else e[0] for e in everyone])
        return [_combine(r, [everyone[m][k + 1] for m in r.group], rank)
                for k, r in enumerate(requests)]

    def finish(self, rank: int) -> None:
        """Meet the others once more at the end of a program: a member still waiting in a
        collective then gets an error instead of waiting forever."""
        for other, theirs in enumerate(self.exchange(rank, [_END])):
            if theirs is not None and theirs[0] != _END:
                raise _diverged(rank, _END, other, theirs[0])


_END = "end of program"


def request_signature(requests: Sequence[CollectiveRequest]) -> list[tuple]:
    """What members must agree on: each collective's kind, group, shape and dtype."""
    return [(r.kind, r.group, tuple(r.value.shape), np.dtype(r.value.dtype).str) for r in requests]


def check_signatures(rank: int, signature: list, everyone: list) -> None:
    """Raise CollectiveError if a member that shares a group with ``rank`` (or any member at
    the end of its program) is at other collectives; ``everyone[m]`` is member m's signature
    (None where unknown)."""
    for other, theirs in enumerate(everyone):
        if theirs is None or theirs == signature:
            continue
        if theirs == _END or (_same_groups(signature, rank, other) and not _agree(signature, theirs, rank, other)):
            raise _diverged(rank, signature, other, theirs)


def _agree(mine: list, theirs: list, rank: int, other: int) -> bool:
    """Same collectives (kind, shape, dtype) in the same order, and the same group wherever
    either side's group holds both members (a group that holds only one of them, e.g. over
    another mesh axis, differs legitimately)."""
    if theirs == _END or len(mine) != len(theirs):
        return False
    for (kind, group, shape, dtype), (kind2, group2, shape2, dtype2) in zip(mine, theirs):
        if (kind, shape, dtype) != (kind2, shape2, dtype2):
            return False
        if (other in group or rank in group2) and group != group2:
            return False
    return True


def _diverged(rank: int, mine, other: int, theirs) -> CollectiveError:
    return CollectiveError(
        f"device {rank} is at {_describe(mine)} while device {other} is at {_describe(theirs)}; every "
        "device must run the same collectives in the same order (no collectives in branches or loops "
        "that differ between devices)")


def _same_groups(mine, rank: int, other: int) -> bool:
    """Only members that share a group must agree (others' groups legitimately differ)."""
    return any(rank in g and other in g for _, g, *_ in mine)


def _describe(signature) -> str:
    if signature == _END:
        return "the end of its program"
    return "collectives " + ", ".join(f"{kind}{list(shape)}" for kind, _, shape, _ in signature)


def _combine(request: CollectiveRequest, values: list[np.ndarray], rank: int) -> np.ndarray:
    """The collective's result for ``rank``, from the group members' values (in group order)."""
    kind, params, me = request.kind, request.params, request.group.index(rank)
    if kind == "psum":
        return _sum(values)
    if kind == "pmax":
        return np.maximum.reduce(values) if len(values) > 1 else values[0]
    if kind == "pmin":
        return np.minimum.reduce(values) if len(values) > 1 else values[0]
    if kind == "all_gather":
        join = np.concatenate if params["tiled"] else np.stack
        return join(values, axis=params["axis"])
    if kind == "psum_scatter":
        total, d = _sum(values), params["scatter_dimension"]
        if params["tiled"]:
            return np.split(total, len(values), axis=d)[me]
        return np.take(total, me, axis=d)
    if kind == "ppermute":
        for src, dst in params["perm"]:
            if dst == me:
                return values[src]
        return np.zeros_like(values[me])
    raise ValueError(f"unknown collective {kind!r}")


def _sum(values: list[np.ndarray]) -> np.ndarray:
    # Added in group order on every member, so every member gets bitwise the same result.
    if values[0].dtype == np.bool_:
        return np.logical_or.reduce(values)
    total = values[0].copy() if len(values) > 1 else values[0]
    for v in values[1:]:
        total += v
    return total


def _timeout() -> float:
    value = os.environ.get("FGRAD_COLLECTIVE_TIMEOUT", "").strip()
    return float(value) if value else 600.0


class ThreadCommunicator(Communicator):
    """Members are threads of this process: a barrier plus shared slots.

    Slots alternate between two sets, so one barrier per exchange suffices: a member can
    only overwrite a set after everyone passed the next barrier, i.e. finished reading it.
    """

    def __init__(self, size: int, local_ranks: Sequence[int] | None = None):
        self.size = size
        self.local_ranks = list(range(size)) if local_ranks is None else list(local_ranks)
        self._slots: list[list] = [[None] * size, [None] * size]
        self._results: list[list] = [[], []]
        self._round = {r: 0 for r in self.local_ranks}
        self._barrier = threading.Barrier(len(self.local_ranks), action=self._combine_slots)
        self._which = 0

    def _combine_slots(self) -> None:
        """Runs in one member once all local members arrived: publish this round's slots."""
        self._results[self._which] = self._gather(list(self._slots[self._which]))
        self._which ^= 1

    def _gather(self, slots: list) -> list:
        """Every member's contribution; single-process: just the slots."""
        return slots

    def exchange(self, rank: int, values: list) -> list[list]:
        which = self._round[rank] & 1
        self._round[rank] += 1
        self._slots[which][rank] = values
        try:
            self._barrier.wait(_timeout())
        except threading.BrokenBarrierError:
            raise CollectiveError("a collective was abandoned: another device failed or timed out "
                                  f"(FGRAD_COLLECTIVE_TIMEOUT={_timeout():g}s)") from None
        return self._results[which]

    def abort(self) -> None:
        self._barrier.abort()
