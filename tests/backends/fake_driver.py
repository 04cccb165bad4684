"""A fake CUDA driver for tests without a GPU: device memory is NumPy, launches run the
kernel IR interpreter (``fgrad.lower.interpret``), and every call is counted.

It has ``PycudaDriver``'s interface (``fgrad.backends.cuda``); install it with
``cuda.use_driver(FakeDriver)``. Pointers are integers in a fake address space, so
pointer arithmetic (arena offsets) works as on a GPU; an access outside an allocation
raises.

CUDA graphs as CUDA has them: between ``begin_capture`` and ``end_capture`` launches are
recorded with their pointers, not run; an allocation, free, copy, memset or synchronize
there raises and invalidates the capture (``end_capture`` then raises too); ``launch_graph``
runs the recorded launches on the pointers captured; a destroyed graph cannot be launched.
"""
from __future__ import annotations

import bisect
import contextlib
import time
from collections import Counter
from functools import partial

import numpy as np

from fgrad.lower.interpret import run_kernel


class FakeOutOfMemory(RuntimeError):
    """What the fake raises when ``memory_limit`` would be exceeded."""


class FakeCaptureError(RuntimeError):
    """What the fake raises for a stream capture gone wrong (CUDA's capture errors)."""


class _FakeGraph:
    """An instantiated graph: the launches recorded during a capture."""

    def __init__(self, launches: tuple) -> None:
        self.launches, self.destroyed = launches, False


class FakeDriver:
    """One fake GPU. Class attributes configure every instance (tests set them)."""

    count = 1                       # GPUs the fake machine has
    host_pointers = False           # pointers are the host addresses of the NumPy memory (a fake NCCL reads them)
    memory_limit = 1 << 40          # bytes mem_alloc hands out before out-of-memory
    calls: Counter = Counter()      # every method call, over all fake devices
    compiled: list = []             # sources handed to compile, in order
    fail_compile = False
    graphs = True                   # supports_graphs()
    fail_capture = None             # "begin", "launch" (invalidates the capture), "end" or "graph_launch"

    @staticmethod
    def device_count() -> int:
        return FakeDriver.count

    @classmethod
    def reset(cls, count: int = 1) -> None:
        cls.count, cls.memory_limit, cls.fail_compile, cls.host_pointers = count, 1 << 40, False, False
        cls.graphs, cls.fail_capture = True, None
        cls.calls = Counter()
        cls.compiled = []

    def __init__(self, ordinal: int) -> None:
        self.ordinal = ordinal
        self.stream = _FakeStream(ordinal)
        self._next = 1 << 20
        self._bases: list[int] = []
        self._memory: dict[int, np.ndarray] = {}
        self.allocated = 0
        self._capture: list | None = None     # launches recorded while the stream captures
        self._capture_error: str | None = None
        self.live_graphs = 0                  # graphs made by end_capture and not destroyed

    def close(self) -> None:
        """Nothing to release (the memory is NumPy's); counted."""
        self.calls["close"] += 1

    # -- device facts
    def name(self) -> str:
        return "Fake GPU"

    def compute_capability(self) -> tuple[int, int]:
        return (9, 0)

    def total_memory(self) -> int:
        return self.memory_limit

    # -- memory
    def mem_alloc(self, nbytes: int):
        self.calls["mem_alloc"] += 1
        self._refuse_while_capturing("mem_alloc")
        if self.allocated + nbytes > self.memory_limit:
            raise FakeOutOfMemory("cuMemAlloc failed: out of memory")
        memory = np.full(nbytes, 0xFF, np.uint8)   # poison: unwritten reads show
        if self.host_pointers:
            ptr = memory.ctypes.data
        else:
            ptr = self._next
            self._next += -(-nbytes // 256) * 256 + 256
        self._memory[ptr] = memory
        bisect.insort(self._bases, ptr)
        self.allocated += nbytes
        return ptr, ptr

    def mem_free(self, handle) -> None:
        self.calls["mem_free"] += 1
        self._refuse_while_capturing("mem_free")
        self.allocated -= self._memory.pop(handle).size
        self._bases.remove(handle)

    def is_out_of_memory(self, error: Exception) -> bool:
        return isinstance(error, FakeOutOfMemory)

    def view(self, ptr: int, nbytes: int) -> np.ndarray:
        """The bytes [ptr, ptr + nbytes) of one allocation."""
        k = bisect.bisect_right(self._bases, ptr) - 1
        if k < 0:
            raise IndexError(f"fake GPU: pointer {ptr:#x} is not in any allocation")
        base = self._bases[k]
        mem = self._memory[base]
        if ptr - base + nbytes > mem.size:
            raise IndexError(f"fake GPU: [{ptr:#x}, +{nbytes}) overruns the allocation at {base:#x} "
                             f"of {mem.size} bytes")
        return mem[ptr - base:ptr - base + nbytes]

    # -- copies (done at once: the fake stream is always idle)
    def copy_htod(self, ptr: int, host: np.ndarray) -> None:
        self.calls["copy_htod"] += 1
        self._refuse_while_capturing("copy_htod")
        data = np.ascontiguousarray(host).reshape(-1).view(np.uint8)
        self.view(ptr, data.size)[:] = data

    def copy_dtoh(self, host: np.ndarray, ptr: int) -> None:
        self.calls["copy_dtoh"] += 1
        self._refuse_while_capturing("copy_dtoh")
        flat = host.reshape(-1).view(np.uint8)
        flat[:] = self.view(ptr, flat.size)

    def copy_dtod(self, dst: int, src: int, nbytes: int) -> None:
        self.calls["copy_dtod"] += 1

        def execute(ptrs: tuple) -> None:
            to, of = ptrs
            self.view(to, nbytes)[:] = self.view(of, nbytes).copy()
        if self._capture is not None:      # an async device copy on the stream: a memcpy node
            if self._capture_error:
                raise FakeCaptureError(f"fake GPU: copy_dtod: the capture is invalidated ({self._capture_error})")
            self.calls["captured_copy"] += 1
            self._capture.append(("copy_dtod", execute, (dst, src)))
            return
        execute((dst, src))

    def memset_async(self, ptr: int, value: int, nbytes: int) -> None:
        self.calls["memset"] += 1
        self._refuse_while_capturing("memset_async")
        self.view(ptr, nbytes)[:] = value

    @contextlib.contextmanager
    def context_scope(self):
        self.calls["context_push"] += 1
        yield

    # -- code
    def compiler_id(self) -> str:
        return "fake-compiler"

    def compile(self, source: str, arch: str, options) -> bytes:
        self.calls["compile"] += 1
        if FakeDriver.fail_compile:
            raise RuntimeError("fake compile error: expected ';'")
        FakeDriver.compiled.append(source)
        return b"FAKE CUBIN " + arch.encode() + b"\n" + source.encode()

    def load_module(self, image: bytes, kernels: dict):
        self.calls["load_module"] += 1
        if not image.startswith(b"FAKE CUBIN "):
            raise ValueError("fake GPU: not a cubin from the fake compiler")
        return dict(kernels)

    def launcher(self, module: dict, name: str, nargs: int):
        """``launch(grid, block, stream, *pointers)``: run at once, or recorded while the stream
        captures; what running means is ``_executor``'s."""
        execute, kind = self._executor(module, name, nargs)

        def launch(grid, block, stream, *ptrs):
            if stream is not self.stream or len(ptrs) != nargs:
                raise ValueError(f"fake GPU: launch of {name} on {stream!r} with {len(ptrs)} args")
            if self._capture is not None:
                self.calls["captured_launch"] += 1
                if FakeDriver.fail_capture == "launch":
                    self._capture_error = "a launch the capture does not support"
                if self._capture_error:
                    raise FakeCaptureError(f"fake GPU: launch of {name}: the capture is invalidated "
                                           f"({self._capture_error})")
                self._capture.append((name, lambda p: execute(p, grid, block), tuple(ptrs)))
                return
            self.calls["launch"] += 1
            self.calls[kind] += 1
            execute(ptrs, grid, block)
        return launch

    def _executor(self, module: dict, name: str, nargs: int):
        """(``execute(pointers, grid, block)``, its call counter's name): kernel IR runs on the
        interpreter; a native kernel (a ``GemmSpec``) on its NumPy ``reference``."""
        kernel = module[name]
        if hasattr(kernel, "reference"):
            params, run = [(kernel.dtype, size) for size in kernel.sizes], kernel.reference
        else:
            params, run = [(p.dtype, p.size) for p in kernel.params], partial(run_kernel, kernel)
        if len(params) != nargs:
            raise TypeError(f"kernel {name} has {len(params)} params, prepared with {nargs}")

        def execute(ptrs: tuple, grid=None, block=None) -> None:
            run(*[self.view(ptr, size * dtype.itemsize).view(dtype) for ptr, (dtype, size) in zip(ptrs, params)])
        return execute, "native_launch" if hasattr(kernel, "reference") else "ir_launch"

    def synchronize(self) -> None:
        self.calls["synchronize"] += 1
        self._refuse_while_capturing("synchronize")

    # -- CUDA graphs
    def supports_graphs(self) -> bool:
        return FakeDriver.graphs

    def _refuse_while_capturing(self, what: str) -> None:
        if self._capture is not None:
            self._capture_error = self._capture_error or f"{what} during the capture"
            raise FakeCaptureError(f"fake GPU: {what} while the stream is capturing a graph "
                                   "(CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED); the capture is invalidated")

    def begin_capture(self) -> None:
        self.calls["begin_capture"] += 1
        if self._capture is not None:
            raise FakeCaptureError("fake GPU: the stream is already capturing")
        if FakeDriver.fail_capture == "begin":
            raise FakeCaptureError("fake GPU: cuStreamBeginCapture failed: operation not supported")
        self._capture, self._capture_error = [], None

    def end_capture(self) -> _FakeGraph:
        self.calls["end_capture"] += 1
        if self._capture is None:
            raise FakeCaptureError("fake GPU: cuStreamEndCapture on a stream that is not capturing")
        launches, error = tuple(self._capture), self._capture_error
        self._capture = self._capture_error = None
        if error:
            raise FakeCaptureError(f"fake GPU: cuStreamEndCapture: the capture was invalidated ({error})")
        if FakeDriver.fail_capture == "end":
            raise FakeCaptureError("fake GPU: cuGraphInstantiateWithFlags failed: out of memory")
        self.live_graphs += 1
        return _FakeGraph(launches)

    def abort_capture(self) -> None:
        self.calls["abort_capture"] += 1
        self._capture = self._capture_error = None

    def launch_graph(self, graph: _FakeGraph) -> None:
        self.calls["graph_launch"] += 1
        self._refuse_while_capturing("launch_graph")
        if graph.destroyed:
            raise FakeCaptureError("fake GPU: cuGraphLaunch of a destroyed graph")
        if FakeDriver.fail_capture == "graph_launch":
            raise FakeCaptureError("fake GPU: cuGraphLaunch failed: invalid handle")
        for _, execute, ptrs in graph.launches:
            self.calls["graph_kernel"] += 1
            execute(ptrs)

    def destroy_graph(self, graph: _FakeGraph) -> None:
        self.calls["graph_destroy"] += 1
        if graph.destroyed:
            raise FakeCaptureError("fake GPU: cuGraphExecDestroy of a graph destroyed before")
        graph.destroyed = True
        self.live_graphs -= 1

    def event(self):
        return _FakeEvent()

    def elapsed_ms(self, start, end) -> float:
        return (end.time - start.time) * 1e3


class _FakeStream:
    """A device's one stream; ``handle`` is what NCCL calls receive (as pycuda's Stream)."""

    def __init__(self, ordinal: int) -> None:
        self.handle = 0x5000 + ordinal

    def __repr__(self) -> str:
        return f"<fake stream {self.handle:#x}>"


class _FakeEvent:
    """Records the host clock: the fake stream runs each launch before the call returns."""

    time = 0.0

    def record(self, stream) -> None:
        self.time = time.perf_counter()
