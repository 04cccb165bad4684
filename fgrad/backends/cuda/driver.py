"""``PycudaDriver``: every call fgrad makes into a GPU, for one device, through pycuda.

A context per device (the primary one, current around each call: ``in_context``),
allocation, asynchronous copies on the device's one stream, module loading, prepared
launches, stream sync, and CUDA graphs (``fgrad.backends.cuda.graphs``). Tests swap in a
fake driver (``use_driver``) that keeps memory in NumPy and runs each launch's kernel IR
with ``fgrad.lower.interpret``: ``load_module`` receives the compiled image AND the kernel IR
objects by name; the real driver ignores the IR, a fake ignores the image. The interface
both implement is ``fgrad.backends.base.Driver``.

pycuda is an optional dependency (``fgrad[cuda]``): it is imported where a driver is made,
never when fgrad is.
"""
from __future__ import annotations

import contextlib
import functools
import os
import threading
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from fgrad.backends.cuda.graphs import graph_api
from fgrad.backends.cuda.nvrtc import find_nvrtc
from fgrad.backends.cuda.util import CudaError, log as _log

_MAIN_THREAD = threading.main_thread().ident
_resident: list = [None]      # the context fgrad left current on the main thread (popped at exit)


def in_context(method: Callable) -> Callable:
    """Run a ``PycudaDriver`` method with its GPU's context current on the calling thread.

    pycuda keeps a context stack per thread and aborts the process when a thread ends with
    its stack not empty. So the main thread keeps the context of the GPU it used last
    pushed (switching where another GPU's call comes; popped at exit), while any other
    thread pushes the context for the one call and pops it afterwards.
    """
    def call(self, *args, **kwargs):
        if threading.get_ident() == _MAIN_THREAD:
            if _resident[0] is not self._context:
                self._make_resident()
            return method(self, *args, **kwargs)
        self._context.push()
        try:
            return method(self, *args, **kwargs)
        finally:
            self._drv.Context.pop()
    return functools.wraps(method)(call)      # keeps the signature (the Driver protocol test reads it)


class PycudaDriver:
    """Every GPU call fgrad makes, for one device, through pycuda.

    Pointers are Python ints. Copies and launches are queued on the driver's one
    stream; ``synchronize`` waits for it. The context is the device's primary context,
    current around every call (``in_context``): a process may run several GPUs, and call
    them from any thread.
    """

    @staticmethod
    def device_count() -> int:
        """GPUs visible to pycuda (0 when pycuda or the CUDA driver is missing)."""
        try:
            import pycuda.driver as drv      # optional dependency (fgrad[cuda]): imported on use
            drv.init()
            return drv.Device.count()
        except Exception:  # ImportError, or a CUDA error when no driver/GPU is present
            return 0

    _contexts: dict = {}     # ordinal -> primary context, retained once per process

    def __init__(self, ordinal: int) -> None:
        import pycuda.driver as drv          # optional dependency (fgrad[cuda]): imported on use
        drv.init()
        self._drv = drv
        self.ordinal = ordinal
        self._device = drv.Device(ordinal)
        if ordinal not in PycudaDriver._contexts:
            PycudaDriver._contexts[ordinal] = self._device.retain_primary_context()
        self._context = PycudaDriver._contexts[ordinal]
        self.stream = self._new_stream()

    @in_context
    def _new_stream(self) -> Any:
        return self._drv.Stream()

    def _make_resident(self) -> None:
        """On the main thread: this GPU's context current from now on (replacing the one
        fgrad left there)."""
        if _resident[0] is not None:
            self._drv.Context.pop()
            _resident[0] = None
        self._context.push()
        _resident[0] = self._context

    def close(self) -> None:
        """Wait for the stream; at exit (after the allocator gave its blocks back), pop the
        context fgrad left current on the main thread, as pycuda's own ``autoprimaryctx``
        does."""
        try:
            self.synchronize()
            if _resident[0] is not None and threading.get_ident() == _MAIN_THREAD:
                self._drv.Context.pop()
                _resident[0] = None
                from pycuda.tools import clear_context_caches   # optional dependency, as above
                clear_context_caches()
        except Exception:  # the process is exiting; the driver may already be gone
            pass

    def name(self) -> str:
        """The GPU's name."""
        return self._device.name()

    def compute_capability(self) -> tuple[int, int]:
        """(major, minor), e.g. (9, 0) for an H100/H200."""
        return tuple(self._device.compute_capability())

    def total_memory(self) -> int:
        """Bytes of device memory."""
        return int(self._device.total_memory())

    @in_context
    def mem_alloc(self, nbytes: int) -> tuple[int, Any]:
        """(pointer, handle) of ``nbytes`` of device memory."""
        handle = self._drv.mem_alloc(nbytes)
        return int(handle), handle

    @in_context
    def mem_free(self, handle: Any) -> None:
        """Give an allocation back to the driver."""
        handle.free()

    def is_out_of_memory(self, error: Exception) -> bool:
        """Whether ``error`` (from ``mem_alloc``) means the device is out of memory."""
        oom = getattr(self._drv, "MemoryError", ())
        return isinstance(error, oom) or "out of memory" in str(error).lower()

    @in_context
    def copy_htod(self, ptr: int, host: np.ndarray) -> None:
        """Queue a copy of a contiguous host array to device memory at ``ptr``."""
        self._drv.memcpy_htod_async(ptr, host, self.stream)

    @in_context
    def copy_dtoh(self, host: np.ndarray, ptr: int) -> None:
        """Queue a copy from device memory at ``ptr`` into a contiguous host array."""
        self._drv.memcpy_dtoh_async(host, ptr, self.stream)

    @in_context
    def copy_dtod(self, dst: int, src: int, nbytes: int) -> None:
        """Queue a device-to-device copy of ``nbytes``."""
        self._drv.memcpy_dtod_async(dst, src, nbytes, self.stream)

    @in_context
    def memset_async(self, ptr: int, value: int, nbytes: int) -> None:
        """Queue setting ``nbytes`` bytes at ``ptr`` to ``value`` (e.g. zeroing a buffer)."""
        self._drv.memset_d8_async(ptr, value, nbytes, self.stream)

    @contextlib.contextmanager
    def context_scope(self) -> Iterator[None]:
        """This device's context current on the calling thread for the block (pushed and
        popped: NCCL binds a communicator to the current device)."""
        self._context.push()
        try:
            yield
        finally:
            self._context.pop()

    def compiler_id(self) -> str:
        """Names the compiler ``compile`` uses (part of the cache key)."""
        nvrtc = find_nvrtc()
        return f"nvrtc-{nvrtc.version}" if nvrtc else "pycuda-nvcc"

    def compile(self, source: str, arch: str, options: Sequence[str]) -> bytes:
        """A cubin: NVRTC in-process, else pycuda's compiler (nvcc, as ``SourceModule`` does)."""
        nvrtc = find_nvrtc()
        if nvrtc is not None:
            try:
                return nvrtc.compile(source, arch, options)
            except CudaError as e:
                _log(1, f"NVRTC failed, falling back to pycuda/nvcc: {e}")
        from pycuda.compiler import compile as nvcc_compile   # optional dependency, as above
        return nvcc_compile(source, options=list(options), arch=arch, no_extern_c=True)

    @in_context
    def load_module(self, image: bytes, kernels: dict) -> Any:
        """Load a compiled image; ``kernels`` (name -> kernel IR) is for fake drivers."""
        return self._drv.module_from_buffer(image)

    @in_context
    def launcher(self, module: Any, name: str, nargs: int) -> Callable:
        """``launch(grid, block, stream, *pointers)`` for kernel ``name`` of ``module``.

        ``prepared_async_call`` minus its per-call Python (a warning path and texture
        references fgrad never uses): pack the pointers, launch. ``FGRAD_CUDA_LAUNCH=prepared``
        uses pycuda's own call instead.
        """
        fn = module.get_function(name)
        fn.prepare("P" * nargs)
        launch_kernel = getattr(fn, "_launch_kernel", None)
        context, elsewhere = self._context, self._call_in_context
        if launch_kernel is None or os.environ.get("FGRAD_CUDA_LAUNCH") == "prepared":
            prepared = fn.prepared_async_call

            def launch_prepared(grid, block, stream, *ptrs):
                if _resident[0] is context and threading.get_ident() == _MAIN_THREAD:
                    prepared(grid, block, stream, *ptrs)
                else:
                    elsewhere(prepared, grid, block, stream, *ptrs)
            return launch_prepared
        from pycuda._pvt_struct import pack      # optional dependency, as above
        fmt = fn.arg_format

        def launch(grid, block, stream, *ptrs):
            if _resident[0] is context and threading.get_ident() == _MAIN_THREAD:    # the common case
                launch_kernel(grid, block, pack(fmt, *ptrs), 0, stream)
            else:
                elsewhere(launch_kernel, grid, block, pack(fmt, *ptrs), 0, stream)
        return launch

    @in_context
    def _call_in_context(self, fn: Callable, *args) -> Any:
        return fn(*args)

    @in_context
    def synchronize(self) -> None:
        """Wait until everything queued on the stream has run."""
        self.stream.synchronize()

    @in_context
    def event(self) -> Any:
        """A CUDA event (``.record(stream)``), for per-kernel timing."""
        return self._drv.Event()

    @in_context
    def elapsed_ms(self, start: Any, end: Any) -> float:
        """Milliseconds between two recorded events (after a synchronize)."""
        return end.time_since(start)

    # -- CUDA graphs (the driver API through ctypes: pycuda has none)
    def supports_graphs(self) -> bool:
        """Whether stream capture and graph launches are available."""
        return graph_api() is not None

    @in_context
    def begin_capture(self) -> None:
        """Capture what is queued on the stream from now on, instead of running it. Until
        ``end_capture``, nothing may allocate, free, copy synchronously or synchronize."""
        graph_api().begin_capture(self.stream.handle)

    @in_context
    def end_capture(self) -> Any:
        """End the capture: the instantiated graph of everything queued since ``begin_capture``
        (raises ``CudaError`` when the capture failed; the stream no longer captures)."""
        return graph_api().end_capture(self.stream.handle)

    @in_context
    def abort_capture(self) -> None:
        """End a capture and discard what it recorded."""
        graph_api().abort_capture(self.stream.handle)

    @in_context
    def launch_graph(self, graph: Any) -> None:
        """Queue a graph from ``end_capture`` on the stream."""
        graph_api().launch(graph, self.stream.handle)

    @in_context
    def destroy_graph(self, graph: Any) -> None:
        """Free a graph from ``end_capture``."""
        graph_api().destroy(graph)

