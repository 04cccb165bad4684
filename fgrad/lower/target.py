"""What the lowering knows about the machine it lowers for, as data.

The compile layer builds a ``LoweringTarget`` from the backend (``backends.cpu.lowering_target``
for this CPU: its vector width and the threads a parallel loop may use; a GPU target for
``backends.cuda``) and hands it to ``schedule.lower_program``; the lowering never asks a
backend itself.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

#: The vector width and thread count assumed when a caller names only the kind ("cpu"):
#: tests and tools that lower without compiling. The compile path always passes the real ones.
DEFAULT_VECTOR_BYTES = 32
DEFAULT_THREADS = 1


@dataclass(frozen=True)
class LoweringTarget:
    """``kind`` "cpu" or "gpu"; ``precision`` "highest" or "tf32" (GPU float32 GEMMs may round
    their operands to TF32); ``vector_bytes`` and ``threads`` size the CPU's packed GEMM
    templates (register tiles and the split of work over threads). ``schedules``: searched
    schedules (BEAM, ``backends/beam.py``) as ``(problem key, GemmSchedule)`` pairs; a CPU
    contraction whose ``contraction.problem_key`` is among them uses that schedule instead of
    the heuristics' (``with_schedules`` builds such a target)."""

    kind: str = "cpu"
    precision: str = "highest"
    vector_bytes: int = DEFAULT_VECTOR_BYTES
    threads: int = DEFAULT_THREADS
    schedules: tuple = ()

    def __post_init__(self) -> None:
        if self.kind not in ("cpu", "gpu"):
            raise ValueError(f"lowering target: kind must be 'cpu' or 'gpu', got {self.kind!r}")
        if self.precision not in ("highest", "tf32"):
            raise ValueError(f"lowering target: precision must be 'highest' or 'tf32', got {self.precision!r}")
        if self.vector_bytes < 1 or self.threads < 1:
            raise ValueError(f"lowering target: vector_bytes and threads must be positive, got "
                             f"{self.vector_bytes} and {self.threads}")

    def with_schedules(self, choices: dict) -> "LoweringTarget":
        """This target with the searched schedules ``choices`` (``{problem key: GemmSchedule}``)."""
        return replace(self, schedules=tuple(sorted(choices.items(), key=lambda kv: kv[0])))


def as_target(target: "LoweringTarget | str", precision: str | None = None) -> LoweringTarget:
    """``target`` as a ``LoweringTarget`` (a kind name gets the defaults), with ``precision``
    overriding its precision when given."""
    if isinstance(target, str):
        target = LoweringTarget(target)
    elif not isinstance(target, LoweringTarget):
        raise TypeError(f"lowering target must be 'cpu', 'gpu' or a LoweringTarget, got {target!r}")
    if precision is not None and precision != target.precision:
        target = replace(target, precision=precision)
    return target
