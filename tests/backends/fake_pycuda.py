"""A fake pycuda, the part ``fgrad.backends.cuda.PycudaDriver`` calls, for tests without a GPU.

What it models is what a GPU machine would punish: pycuda's contexts. Each thread has its own
context stack; a call that needs a context (allocating, copying, loading a module, launching,
making a stream or an event) fails unless the right one is current on the calling thread, as
CUDA's ``invalid context`` / ``invalid resource handle`` errors do; pycuda aborts the process
when a thread ends with its stack not empty, so tests check ``stack(thread)`` is empty after
a thread's work. Memory is bytes (copies round-trip); kernels do not run, launches are recorded.

    fake = FakePycuda(gpus=2)
    fake.install(monkeypatch)          # sys.modules['pycuda', 'pycuda.driver', ...]
"""
from __future__ import annotations

import itertools
import struct
import sys
import threading
import types

import numpy as np


class FakeCudaError(RuntimeError):
    """What the fake raises where CUDA would fail."""


class FakePycuda:
    """The fake's state: GPUs, per-thread context stacks, memory and recorded launches."""

    def __init__(self, gpus: int = 1):
        self.gpus = gpus
        self.stacks: dict[int, list] = {}          # thread ident -> context stack (bottom first)
        self.memory: dict[int, bytearray] = {}     # pointer -> bytes
        self.launches: list[tuple] = []            # (kernel name, context ordinal, grid, block, args)
        self.lock = threading.Lock()
        self._pointers = itertools.count(1 << 32, 1 << 24)
        self._handles = itertools.count(1000)
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

    def install(self, monkeypatch) -> None:
        """Put the fake modules in ``sys.modules`` for the test."""
        for name, module in self.modules.items():
            monkeypatch.setitem(sys.modules, name, module)

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
                self._primary = None

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
                pass

        class DeviceAllocation:
            def __init__(self, nbytes):
                fake.require(None, "cuMemAlloc")
                self.ptr = next(fake._pointers)
                fake.memory[self.ptr] = bytearray(nbytes)

            def __int__(self):
                return self.ptr

            def free(self):             # pycuda activates the allocation's context itself
                fake.memory.pop(self.ptr)

        def locate(ptr, nbytes):
            for base, data in fake.memory.items():
                if base <= ptr and ptr + nbytes <= base + len(data):
                    return data, ptr - base
            raise FakeCudaError(f"an access of {nbytes} bytes at {ptr:#x} is outside every allocation")

        def on_stream(stream, what):
            fake.require(stream.context, what)

        def memcpy_htod_async(ptr, host, stream):
            on_stream(stream, "cuMemcpyHtoDAsync")
            raw = np.ascontiguousarray(host).tobytes()
            data, at = locate(int(ptr), len(raw))
            data[at:at + len(raw)] = raw

        def memcpy_dtoh_async(host, ptr, stream):
            on_stream(stream, "cuMemcpyDtoHAsync")
            data, at = locate(int(ptr), host.nbytes)
            host.reshape(-1).view(np.uint8)[:] = np.frombuffer(bytes(data[at:at + host.nbytes]), np.uint8)

        def memcpy_dtod_async(dst, src, nbytes, stream):
            on_stream(stream, "cuMemcpyDtoDAsync")
            source, at = locate(int(src), nbytes)
            target, to = locate(int(dst), nbytes)
            target[to:to + nbytes] = source[at:at + nbytes]

        def memset_d8_async(ptr, value, nbytes, stream):
            on_stream(stream, "cuMemsetD8Async")
            data, at = locate(int(ptr), nbytes)
            data[at:at + nbytes] = bytes([value]) * nbytes

        class Function:
            def __init__(self, module, name):
                self.module, self.name, self.arg_format = module, name, None

            def prepare(self, arg_types):
                self.arg_format = "".join(arg_types)

            def _launch_kernel(self, grid, block, args, shared, stream):
                fake.require(self.module.context, f"cuLaunchKernel({self.name})")
                if stream is not None:
                    on_stream(stream, f"cuLaunchKernel({self.name})")
                fake.launches.append((self.name, self.module.context.ordinal, grid, block, bytes(args)))

            def prepared_async_call(self, grid, block, stream, *args):
                self._launch_kernel(grid, block, pack(self.arg_format, *args), 0, stream)

        class Module:
            def __init__(self, image):
                fake.require(None, "cuModuleLoadData")
                self.context, self.image = fake.current(), image

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
        compiler.compile = lambda source, options=None, arch=None, no_extern_c=False: b"fake cubin " + source.encode()
        package = types.ModuleType("pycuda")
        package.__path__ = []
        package.VERSION_TEXT = "fake"
        package.driver, package._pvt_struct, package.tools, package.compiler = driver, pvt_struct, tools, compiler
        return {"pycuda": package, "pycuda.driver": driver, "pycuda._pvt_struct": pvt_struct,
                "pycuda.tools": tools, "pycuda.compiler": compiler}
