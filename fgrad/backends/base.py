"""What every backend provides: devices, buffers on them, and compiled executables.

A backend compiles a kernel IR ``Program`` (``fgrad.lower.kernel``) into an
``Executable``: calling it with arrays runs the whole program (on the CPU, one
native call) and returns the outputs. ``Buffer`` is memory on a device holding
one array; the CPU backend uses NumPy arrays directly, a GPU backend wraps its
device allocations.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np


@dataclass(frozen=True)
class Device:
    """One device: ``platform`` ('cpu', 'cuda') and its index on that platform."""

    platform: str
    index: int = 0

    def __repr__(self) -> str:
        return f"{self.platform}:{self.index}"


class Buffer(abc.ABC):
    """Memory on one device holding an array of ``shape`` and ``dtype``."""

    device: Device
    shape: tuple[int, ...]
    dtype: np.dtype

    @abc.abstractmethod
    def to_numpy(self) -> np.ndarray:
        """A host copy (or view, on the CPU) of the contents."""


class Executable(abc.ABC):
    """A compiled program. ``exe(*inputs)`` returns the outputs as a list of arrays."""

    device: Device

    @abc.abstractmethod
    def __call__(self, *inputs: Any, out: Sequence[Any] | None = None) -> list[Any]:
        """Run the program; outputs go to fresh arrays, or into ``out`` when given."""
