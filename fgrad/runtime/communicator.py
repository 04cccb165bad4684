"""Collectives among the members of one program run: ``Communicator`` defines each collective
from one operation, ``exchange`` (every member hands in a list of arrays and receives every
member's lists); ``ThreadCommunicator`` implements it with a barrier and shared slots (the MPI
flavour in ``fgrad.runtime.distributed`` extends the barrier across processes). A GPU backend
implements ``Communicator.run`` directly (e.g. with NCCL group calls) instead.
"""
from __future__ import annotations

import abc
import os
import threading
from typing import NamedTuple, Sequence

import numpy as np

__all__ = ["Communicator", "ThreadCommunicator", "CollectiveRequest", "CollectiveError",
           "request_signature", "check_signatures"]


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
