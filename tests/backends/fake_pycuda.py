"""A fake pycuda, the part ``fgrad.backends.cuda.PycudaDriver`` calls, for tests without a GPU.

What it models is what a GPU machine would punish: pycuda's contexts. Each thread has its own
context stack; a call that needs a context (allocating, copying, loading a module, launching,
making a stream or an event) fails unless the right one is current on the calling thread, as
CUDA's ``invalid context`` / ``invalid resource handle`` errors do; pycuda aborts the process
when a thread ends with its stack not empty, so tests check ``stack(thread)`` is empty after
a thread's work. Memory is host memory (copies round-trip); launches are recorded, and with
``kernels_on_host`` they run: the "cubin" of the fake ``pycuda.compiler.compile`` is the CUDA C,
which ``module_from_buffer`` compiles for the host (``tests/lower/cuda_host.py``), so the real
``PycudaDriver`` runs fgrad's programs end to end. ``graph_api`` stands in for the driver API's
stream capture: a capture records launches and device copies, and work a capture cannot take
(allocations, pageable copies, memsets, synchronizing) fails and invalidates it, as in CUDA.

    fake = FakePycuda(gpus=2)
    fake.install(monkeypatch)          # sys.modules['pycuda', 'pycuda.driver', ...]
"""
from __future__ import annotations

import hashlib
import itertools
import pathlib
import struct
import sys
import threading
import types

import numpy as np


class FakeCudaError(RuntimeError):
    """What the fake raises where CUDA would fail."""


class FakePycuda:
    """The fake's state: GPUs, per-thread context stacks, memory and recorded launches."""

    CUBIN = b"fake cubin\n"

    def __init__(self, gpus: int = 1, kernels_on_host: pathlib.Path | None = None):
        self.gpus = gpus
        self.stacks: dict[int, list] = {}          # thread ident -> context stack (bottom first)
        self.memory: dict[int, np.ndarray] = {}    # pointer (a host address) -> its bytes
        self.launches: list[tuple] = []            # (kernel name, context ordinal, grid, block, args)
        self.lock = threading.Lock()
        self.kernels_on_host = kernels_on_host     # a folder for the host builds, or None: launches do not run
        self._host_modules: dict = {}
        self._handles = itertools.count(1000)
        self.captures: dict[int, list] = {}        # stream handle -> what its capture recorded
        self.graphs: dict[int, list] = {}          # executable graph handle -> its recorded work
        self.graph_api = _FakeGraphApi(self)      # what ``fgrad.backends.cuda.graph_api()`` returns
        self.modules = self._build_modules()

    # -- the context stack of the calling thread
    def stack(self, ident: int | None = None) -> list:
        """The context stack of thread ``ident`` (default: the calling thread)."""
        ident = threading.get_ident() if ident is None else ident
        with self.lock:
            return self.stacks.setdefault(ident, [])

    def current(self):
        stack = self.stack()
        return stack[-1] if stack else None

    def require(self, context, what: str) -> None:
        """Raise as CUDA does when ``context`` is not current on this thread."""
        current = self.current()
        if current is None:
            raise FakeCudaError(f"{what} failed: invalid device context - no currently active context?")
        if context is not None and current is not context:
            raise FakeCudaError(f"{what} failed: invalid resource handle (context of GPU {context.ordinal} "
                                f"is not current; GPU {current.ordinal}'s is)")

    def host_module(self, image: bytes):
        """The kernels of a fake cubin compiled for the host (once per source)."""
        from tests.lower.cuda_host import HostModule
        if not image.startswith(self.CUBIN):
            raise FakeCudaError("cuModuleLoadData failed: not an image of the fake compiler")
        digest = hashlib.sha256(image).hexdigest()[:16]
        with self.lock:
            module = self._host_modules.get(digest)
        if module is None:
            module = HostModule(image[len(self.CUBIN):].decode(), self.kernels_on_host / digest, "module")
            with self.lock:
                self._host_modules[digest] = module
        return module

    def refuse_while_capturing(self, stream, what: str) -> None:
        """CUDA's error for work a capture cannot take: on the capturing stream (or, for
        ``stream=None``, an allocation while any stream captures); the capture is invalidated."""
        handles = list(self.captures) if stream is None else [stream.handle] if stream.handle in self.captures else []
        for handle in handles:
            self.captures[handle] = None
        if handles:
            raise FakeCudaError(f"{what} failed: operation not permitted when stream is capturing")

    def install(self, monkeypatch) -> None:
        """For the test: the fake modules in ``sys.modules``, and ``fgrad.backends.cuda`` set to
        use them from a clean start (no retained context, none current, the fake's compiler and
        graph calls instead of NVRTC and libcuda)."""
        from fgrad.backends import cuda
        for name, module in self.modules.items():
            monkeypatch.setitem(sys.modules, name, module)
        monkeypatch.setattr(cuda.PycudaDriver, "_contexts", {})
        monkeypatch.setattr(cuda.driver, "_resident", [None])
        monkeypatch.setattr(cuda.driver, "find_nvrtc", lambda: None)
        monkeypatch.setattr(cuda.driver, "graph_api", lambda: self.graph_api)

    def _build_modules(self) -> dict:
        fake = self

        class Context:
            def __init__(self, ordinal):
                self.ordinal = ordinal

            def push(self):
                fake.stack().append(self)

            @staticmethod
            def pop():
                stack = fake.stack()
                if not stack:
                    raise FakeCudaError("context::pop failed: cannot pop non-current context")
                stack.pop()

            @staticmethod
            def get_current():
                return fake.current()

        class Device:
            def __init__(self, ordinal):
                if not 0 <= ordinal < fake.gpus:
                    raise FakeCudaError(f"cuDeviceGet failed: invalid device ordinal {ordinal}")
                self.ordinal = ordinal

            @staticmethod
            def count():
                return fake.gpus

            def retain_primary_context(self):
                return Context(self.ordinal)

            def name(self):
                return "Fake pycuda GPU"

            def compute_capability(self):
                return (9, 0)

            def total_memory(self):
                return 1 << 34

        class Stream:
            def __init__(self, flags=0):
                fake.require(None, "cuStreamCreate")
                self.context = fake.current()
                self.handle = next(fake._handles)

            def synchronize(self):      # pycuda activates the stream's context itself
                fake.refuse_while_capturing(self, "cuStreamSynchronize")

        class DeviceAllocation:
            def __init__(self, nbytes):
                fake.require(None, "cuMemAlloc")
                fake.refuse_while_capturing(None, "cuMemAlloc")
                data = np.full(max(nbytes, 1), 0xFF, np.uint8)     # poison: unwritten reads show
                self.ptr = data.ctypes.data
                fake.memory[self.ptr] = data

            def __int__(self):
                return self.ptr

            def free(self):             # pycuda activates the allocation's context itself
                fake.memory.pop(self.ptr)

        def locate(ptr, nbytes):
            for base, data in fake.memory.items():
                if base <= ptr and ptr + nbytes <= base + data.size:
                    return data, ptr - base
            raise FakeCudaError(f"an access of {nbytes} bytes at {ptr:#x} is outside every allocation")

        def on_stream(stream, what):
            fake.require(stream.context, what)

        def memcpy_htod_async(ptr, host, stream):
            on_stream(stream, "cuMemcpyHtoDAsync")
            fake.refuse_while_capturing(stream, "cuMemcpyHtoDAsync from pageable memory")
            raw = np.ascontiguousarray(host).reshape(-1).view(np.uint8)
            data, at = locate(int(ptr), raw.size)
            data[at:at + raw.size] = raw

        def memcpy_dtoh_async(host, ptr, stream):
            on_stream(stream, "cuMemcpyDtoHAsync")
            fake.refuse_while_capturing(stream, "cuMemcpyDtoHAsync to pageable memory")
            data, at = locate(int(ptr), host.nbytes)
            host.reshape(-1).view(np.uint8)[:] = data[at:at + host.nbytes]

        def memcpy_dtod_async(dst, src, nbytes, stream):
            on_stream(stream, "cuMemcpyDtoDAsync")

            def copy():
                source, at = locate(int(src), nbytes)
                target, to = locate(int(dst), nbytes)
                target[to:to + nbytes] = source[at:at + nbytes]
            if stream.handle in fake.captures:          # a memcpy node of the graph
                fake.captures[stream.handle].append(copy)
            else:
                copy()

        def memset_d8_async(ptr, value, nbytes, stream):
            on_stream(stream, "cuMemsetD8Async")
            fake.refuse_while_capturing(stream, "cuMemsetD8Async")
            data, at = locate(int(ptr), nbytes)
            data[at:at + nbytes] = value

        class Function:
            def __init__(self, module, name):
                self.module, self.name, self.arg_format = module, name, None

            def prepare(self, arg_types):
                self.arg_format = "".join(arg_types)

            def _launch_kernel(self, grid, block, args, shared, stream):
                fake.require(self.module.context, f"cuLaunchKernel({self.name})")
                if stream is not None:
                    on_stream(stream, f"cuLaunchKernel({self.name})")
                args = bytes(args)              # the driver copies the arguments at the call

                def run():
                    fake.launches.append((self.name, self.module.context.ordinal, grid, block, args))
                    if self.module.host is not None:
                        pointers = struct.unpack(f"{len(args) // struct.calcsize('P')}P", args)
                        self.module.host.launch_pointers(self.name, list(pointers), tuple(grid), block[0])
                if stream is not None and stream.handle in fake.captures:
                    fake.captures[stream.handle].append(run)
                else:
                    run()

            def prepared_async_call(self, grid, block, stream, *args):
                self._launch_kernel(grid, block, pack(self.arg_format, *args), 0, stream)

        class Module:
            def __init__(self, image):
                fake.require(None, "cuModuleLoadData")
                self.context, self.image = fake.current(), image
                self.host = fake.host_module(image) if fake.kernels_on_host is not None else None

            def get_function(self, name):
                return Function(self, name)

        class Event:
            def __init__(self):
                fake.require(None, "cuEventCreate")

            def record(self, stream=None):
                if stream is not None:
                    on_stream(stream, "cuEventRecord")

            def time_since(self, other):
                return 0.0

        def pack(fmt, *args):
            return struct.pack(fmt, *args)

        driver = types.ModuleType("pycuda.driver")
        driver.__dict__.update(
            init=lambda: None, Device=Device, Context=Context, Stream=Stream, Event=Event,
            mem_alloc=DeviceAllocation, memcpy_htod_async=memcpy_htod_async,
            memcpy_dtoh_async=memcpy_dtoh_async, memcpy_dtod_async=memcpy_dtod_async,
            memset_d8_async=memset_d8_async, module_from_buffer=Module, MemoryError=MemoryError)
        pvt_struct = types.ModuleType("pycuda._pvt_struct")
        pvt_struct.pack = pack
        tools = types.ModuleType("pycuda.tools")
        tools.clear_context_caches = lambda: None
        compiler = types.ModuleType("pycuda.compiler")
        compiler.compile = lambda source, options=None, arch=None, no_extern_c=False: fake.CUBIN + source.encode()
        package = types.ModuleType("pycuda")
        package.__path__ = []
        package.VERSION_TEXT = "fake"
        package.driver, package._pvt_struct, package.tools, package.compiler = driver, pvt_struct, tools, compiler
        return {"pycuda": package, "pycuda.driver": driver, "pycuda._pvt_struct": pvt_struct,
                "pycuda.tools": tools, "pycuda.compiler": compiler}


class _FakeGraphApi:
    """``fgrad.backends.cuda.CudaGraphApi``'s calls on the fake: a capture records the stream's
    launches and device copies (work it cannot take invalidates it), a graph replays them."""

    def __init__(self, fake: FakePycuda):
        self.fake = fake
        self.handles = itertools.count(1 << 20)

    def begin_capture(self, stream: int) -> None:
        if stream in self.fake.captures:
            raise FakeCudaError("cuStreamBeginCapture_v2 failed: the stream is already capturing")
        self.fake.captures[stream] = []

    def end_capture(self, stream: int) -> int:
        if stream not in self.fake.captures:
            raise FakeCudaError("cuStreamEndCapture failed: the stream is not capturing")
        work = self.fake.captures.pop(stream)
        if work is None:
            raise FakeCudaError("cuStreamEndCapture failed: the capture was invalidated")
        handle = next(self.handles)
        self.fake.graphs[handle] = work
        return handle

    def abort_capture(self, stream: int) -> None:
        self.fake.captures.pop(stream, None)

    def launch(self, executable: int, stream: int) -> None:
        for run in self.fake.graphs[executable]:
            run()

    def destroy(self, executable: int) -> None:
        del self.fake.graphs[executable]
