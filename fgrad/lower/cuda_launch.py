"""The launch plan of a rendered CUDA program: plain data a runtime executes (see ``cuda``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Union

import numpy as np

from fgrad.lower.kernel import Call, ExternCall, Loop, Program, Switch, While, plan_memory


# --- the launch plan ---------------------------------------------------------------------------

@dataclass(frozen=True)
class BufferSlot:
    """A program buffer as the runtime sees it; ``offset`` is its arena offset (temporaries)."""

    name: str
    dtype: str
    shape: tuple
    kind: str                  # "input", "output", "constant" or "temporary"
    offset: int | None = None

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class Launch:
    """``kernel<<<grid, block>>>`` on the buffers at indices ``args`` (in param order)."""

    kernel: str
    grid: int
    block: int
    args: tuple


@dataclass(frozen=True)
class Repeat:
    """``body`` ``count`` times; ``index`` (a buffer index or None) receives the iteration number."""

    count: int
    index: int | None
    body: tuple


@dataclass(frozen=True)
class WhileLoop:
    """loop { before; if not buffers[cond][0] (read from the device): break; body }."""

    cond: int
    before: tuple
    body: tuple


@dataclass(frozen=True)
class Branch:
    """Run ``branches[clamp(buffers[index][0])]`` (read from the device)."""

    index: int
    branches: tuple


PlanStep = Union[Launch, Repeat, WhileLoop, Branch]


@dataclass(frozen=True)
class LaunchPlan:
    """What the host does to run a rendered program (see the module docstring)."""

    buffers: tuple
    arena_bytes: int
    steps: tuple
    kernel_modes: dict         # kernel name -> "gemm", "grid", "segments", "block" or "single"

    def launches(self) -> Iterator[Launch]:
        """Every ``Launch``, nested ones included, in program order."""
        yield from _walk_launches(self.steps)


def _walk_launches(steps: Iterable[PlanStep]) -> Iterator[Launch]:
    for s in steps:
        if isinstance(s, Launch):
            yield s
        elif isinstance(s, Repeat):
            yield from _walk_launches(s.body)
        elif isinstance(s, WhileLoop):
            yield from _walk_launches(s.before)
            yield from _walk_launches(s.body)
        else:
            for b in s.branches:
                yield from _walk_launches(b)


# --- the entry point ---------------------------------------------------------------------------

def buffer_slots(program: Program) -> tuple[list[BufferSlot], dict[int, int]]:
    """The plan's buffers in calling-convention order, and each buffer's index (by id)."""
    memory = plan_memory(program)
    kinds = ([(b, "input") for b in program.inputs] + [(b, "output") for b in program.outputs]
             + [(b, "constant") for b in program.constants]
             + [(b, "temporary") for b in program.temporaries()])
    slots, index_of = [], {}
    for b, kind in kinds:
        offset = memory.offset(b) if kind == "temporary" else None
        index_of[id(b)] = len(slots)
        slots.append(BufferSlot(b.name, b.dtype.name, b.shape, kind, offset))
    return slots, index_of


def plan_steps(steps: tuple, names: dict, sizes: dict, index_of: dict) -> tuple:
    """Program steps as plan steps: kernel C names, launch sizes and buffer indices."""
    out = []
    for s in steps:
        if isinstance(s, Call):
            grid, block = sizes[id(s.kernel)]
            out.append(Launch(names[id(s.kernel)], grid, block, tuple(index_of[id(b)] for b in s.args)))
        elif isinstance(s, Loop):
            index = None if s.index is None else index_of[id(s.index)]
            out.append(Repeat(s.count, index, plan_steps(s.body, names, sizes, index_of)))
        elif isinstance(s, While):
            out.append(WhileLoop(index_of[id(s.cond)], plan_steps(s.before, names, sizes, index_of),
                                 plan_steps(s.body, names, sizes, index_of)))
        elif isinstance(s, Switch):
            out.append(Branch(index_of[id(s.index)],
                              tuple(plan_steps(b, names, sizes, index_of) for b in s.branches)))
        elif isinstance(s, ExternCall):
            raise NotImplementedError(
                f"the CUDA renderer cannot call host routine {s.routine} (a LAPACK decomposition) "
                "from a GPU program; backends.cuda.compile_program runs such programs on the host "
                "CPU (compile them with backends.cpu.compile_program)")
        else:
            raise TypeError(f"{s!r} is not a program step")
    return tuple(out)


# --- kernels -------------------------------------------------------------------------------------
