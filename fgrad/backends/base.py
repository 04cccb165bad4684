"""What every backend provides: devices, buffers on them, and compiled executables.

A ``Backend`` compiles a kernel IR ``Program`` (``fgrad.lower.kernel``) for a device into
an ``Executable``: calling it with arrays runs the whole program (on the CPU, one
native call) and returns the outputs. ``Buffer`` is memory on a device holding
one array; the CPU backend uses NumPy arrays directly, a GPU backend wraps its
device allocations. ``Driver`` is every call the CUDA backend makes into one GPU:
``fgrad.backends.cuda.PycudaDriver`` implements it with pycuda, the tests' fake
drivers with NumPy (``tests/backends/test_driver_protocol.py`` checks both).
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Protocol, Sequence, runtime_checkable

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


@runtime_checkable
class Backend(Protocol):
    """A platform's compiler: ``backend.compile(program, device)`` -> an ``Executable`` that
    runs the kernel IR ``program`` on ``device``."""

    platform: str

    def compile(self, program: Any, device: Device) -> Executable:
        """Compile ``program`` (a ``fgrad.lower.kernel.Program``) for ``device``."""
        ...


@runtime_checkable
class Driver(Protocol):
    """Every call the CUDA backend makes into one GPU (``driver_class(ordinal)`` opens GPU
    ``ordinal``; ``fgrad.backends.cuda.use_driver`` chooses the class).

    Pointers are Python ints; copies, memsets and launches are queued on ``stream`` and
    ``synchronize`` waits for them. ``load_module`` receives the compiled image and the kernel
    IR objects by name: a real driver loads the image, a fake one may run the IR instead.
    """

    ordinal: int
    stream: Any

    @staticmethod
    def device_count() -> int:
        """GPUs visible to this driver (0 when there are none or the driver is missing)."""
        ...

    def close(self) -> None:
        """Wait for the stream and release what the driver holds (at exit)."""
        ...

    # -- the device
    def name(self) -> str:
        """The GPU's name."""
        ...

    def compute_capability(self) -> tuple[int, int]:
        """(major, minor), e.g. (9, 0) for an H100."""
        ...

    def total_memory(self) -> int:
        """Bytes of device memory."""
        ...

    # -- memory
    def mem_alloc(self, nbytes: int) -> tuple[int, Any]:
        """(pointer, handle) of ``nbytes`` of device memory."""
        ...

    def mem_free(self, handle: Any) -> None:
        """Give an allocation back."""
        ...

    def is_out_of_memory(self, error: Exception) -> bool:
        """Whether ``error`` (from ``mem_alloc``) means the device is out of memory."""
        ...

    def copy_htod(self, ptr: int, host: np.ndarray) -> None:
        """Queue a copy of a contiguous host array to ``ptr``."""
        ...

    def copy_dtoh(self, host: np.ndarray, ptr: int) -> None:
        """Queue a copy from ``ptr`` into a contiguous host array."""
        ...

    def copy_dtod(self, dst: int, src: int, nbytes: int) -> None:
        """Queue a device-to-device copy of ``nbytes``."""
        ...

    def memset_async(self, ptr: int, value: int, nbytes: int) -> None:
        """Queue setting ``nbytes`` bytes at ``ptr`` to ``value``."""
        ...

    def context_scope(self) -> ContextManager[None]:
        """The device current on the calling thread for a ``with`` block."""
        ...

    # -- code
    def compiler_id(self) -> str:
        """Names the compiler ``compile`` uses (part of the compiled-image cache key)."""
        ...

    def compile(self, source: str, arch: str, options: Sequence[str]) -> bytes:
        """The compiled image of CUDA C ``source`` for ``arch`` (e.g. 'sm_90')."""
        ...

    def load_module(self, image: bytes, kernels: dict) -> Any:
        """Load a compiled image; ``kernels`` maps kernel names to their kernel IR."""
        ...

    def launcher(self, module: Any, name: str, nargs: int) -> Callable:
        """``launch(grid, block, stream, *pointers)`` for kernel ``name`` of ``module``."""
        ...

    def synchronize(self) -> None:
        """Wait until everything queued on the stream has run."""
        ...

    def event(self) -> Any:
        """An event (``.record(stream)``), for per-kernel timing."""
        ...

    def elapsed_ms(self, start: Any, end: Any) -> float:
        """Milliseconds between two recorded events (after a synchronize)."""
        ...

    # -- CUDA graphs
    def supports_graphs(self) -> bool:
        """Whether stream capture and graph launches are available."""
        ...

    def begin_capture(self) -> None:
        """Capture what is queued on the stream from now on, instead of running it."""
        ...

    def end_capture(self) -> Any:
        """End the capture: the instantiated graph of everything queued since ``begin_capture``."""
        ...

    def abort_capture(self) -> None:
        """End a capture and discard what it recorded."""
        ...

    def launch_graph(self, graph: Any) -> None:
        """Queue a graph from ``end_capture`` on the stream."""
        ...

    def destroy_graph(self, graph: Any) -> None:
        """Free a graph from ``end_capture``."""
        ...


def protocol_methods(protocol: type) -> list[str]:
    """The public methods a ``Protocol`` class declares (what an implementation must have)."""
    return sorted(name for name, value in vars(protocol).items()
                  if not name.startswith("_") and (callable(value) or isinstance(value, staticmethod)))


class PlacementError(ValueError):
    """Arrays committed to two devices were combined (``devices``: the two)."""

    def __init__(self, message: str, devices: tuple) -> None:
        super().__init__(message)
        self.devices = devices


#: [number of GPUs] once probed (by ``fgrad.backends.cuda.gpu_count``, which owns it); read
#: directly by ``jit``'s fast path, which consults the default platform on every call.
gpu_count_cache: list = []
