"""Memory planning: arena offsets of a program's temporaries from their lifetimes."""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from fgrad.lower.kernel_stmt import Buffer, ExternCall, Loop, Program, Step, Switch, While, walk_steps

ALIGN = 64


@dataclass(frozen=True)
class MemoryPlan:
    """Arena offsets (bytes) of a program's temporaries, and the arena's size."""

    offsets: dict
    size: int

    def offset(self, buf: Buffer) -> int:
        return self.offsets[id(buf)]


def buffer_lifetimes(program: Program) -> dict[int, tuple[int, int]]:
    """For each temporary (by id), the first and last step position that may use it.

    Steps are numbered in program order; a use inside a loop counts for the
    whole loop, since the next iteration may read what this one wrote.
    """
    spans: dict[int, list[int]] = {}
    counter = [0]

    def touch(buf: Buffer | None, lo: int, hi: int) -> None:
        if buf is not None:
            span = spans.setdefault(id(buf), [lo, hi])
            span[0], span[1] = min(span[0], lo), max(span[1], hi)

    def visit(steps: tuple, loop_span: tuple[int, int] | None) -> None:
        for s in steps:
            pos = counter[0]
            counter[0] += 1
            if isinstance(s, (Loop, While)):
                end = pos + _count_steps(s) - 1
                span = loop_span or (pos, end)
                touch(s.index if isinstance(s, Loop) else s.cond, *span)
                visit(s.body if isinstance(s, Loop) else s.before + s.body, span)
            elif isinstance(s, Switch):
                touch(s.index, *(loop_span or (pos, pos)))
                for b in s.branches:
                    visit(b, loop_span)
            else:
                for b in s.buffers if isinstance(s, ExternCall) else s.args:
                    touch(b, *(loop_span or (pos, pos)))

    visit(program.body, None)
    return {k: (v[0], v[1]) for k, v in spans.items()}


def _count_steps(step: Step) -> int:
    return sum(1 for _ in walk_steps((step,)))


#: each program's plan, computed once (the renderer and the backend both ask for it)
_plans: "weakref.WeakKeyDictionary[Program, MemoryPlan]" = weakref.WeakKeyDictionary()


def plan_memory(program: Program) -> MemoryPlan:
    """Place temporaries in one arena so that buffers alive at the same time never overlap.

    Lifetimes come from ``buffer_lifetimes``; placement is greedy, largest first,
    at the lowest 64-byte aligned offset free for the whole lifetime.
    """
    plan = _plans.get(program)
    if plan is None:
        plan = _plans[program] = _placed(program)
    return plan


def _placed(program: Program) -> MemoryPlan:
    lifetimes = buffer_lifetimes(program)
    temps = sorted(program.temporaries(), key=lambda b: (-b.nbytes, lifetimes[id(b)]))
    # the placed buffers' lifetimes and byte ranges, as arrays: each placement compares with all
    # of them at once (a Python loop over pairs took 0.1 s for a 12-layer transformer's 1,055)
    starts, ends, los, his = (np.zeros(len(temps), np.int64) for _ in range(4))
    offsets: dict[int, int] = {}
    for n, buf in enumerate(temps):
        start, end = lifetimes[id(buf)]
        size = _aligned(buf.nbytes)
        offset = _first_fit(size, *_alive_during(start, end, starts[:n], ends[:n], los[:n], his[:n]))
        offsets[id(buf)] = offset
        starts[n], ends[n], los[n], his[n] = start, end, offset, offset + size
    return MemoryPlan(offsets, int(his.max(initial=0)))


def _alive_during(start: int, end: int, starts, ends, los, his) -> tuple[np.ndarray, np.ndarray]:
    """The byte ranges (first, end) of the placed buffers alive at some step of start..end,
    ordered by first byte, then end byte."""
    alive = (starts <= end) & (ends >= start)
    lo, hi = los[alive], his[alive]
    order = np.lexsort((hi, lo))
    return lo[order], hi[order]


def _first_fit(size: int, lo: np.ndarray, hi: np.ndarray) -> int:
    """The lowest offset where ``size`` bytes fit between busy ranges ``lo``..``hi`` (sorted):
    before range k, everything below the highest end of ranges 0..k-1 is taken."""
    taken = np.maximum.accumulate(np.concatenate(([0], hi)))
    fits = np.flatnonzero(taken[:-1] + size <= lo)
    return int(taken[fits[0]] if fits.size else taken[-1])


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN
