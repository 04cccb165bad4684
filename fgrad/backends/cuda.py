"""The CUDA backend: kernel IR programs rendered to CUDA C (``fgrad.lower.cuda``), compiled
to a cubin, and launched on one stream per GPU.

Layers, bottom up:

* ``PycudaDriver``: every call into the GPU goes through this one small class (a
  context per device, allocation, asynchronous copies on the stream, module loading,
  prepared launches, stream sync). Tests swap in a fake driver (``use_driver``) that
  keeps memory in NumPy and runs each launch's kernel IR with ``fgrad.lower.interpret``:
  ``load_module`` receives the compiled image AND the kernel IR objects by name; the
  real driver ignores the IR, a fake ignores the image.
* ``CachingAllocator``: size-class free lists over ``mem_alloc``; nothing is
  preallocated, freed blocks are kept for reuse (safe without events: all work of a
  device runs on its one stream, in order). ``live_bytes`` / ``peak_bytes`` / ``cached_bytes``.
* ``compile_source``: NVRTC through ctypes (``libnvrtc.so*`` of the CUDA toolkit or of the
  ``nvidia-cuda-nvrtc`` wheel; ``FGRAD_NVRTC`` names one), to a cubin, else pycuda's
  compiler (``nvcc``, what ``SourceModule`` runs); cubins are cached in memory and in
  ``$FGRAD_CACHE_DIR/cuda`` (default ``~/.cache/fgrad``; ``off`` disables), keyed by a
  hash of the source, the architecture, the options and the compiler; a corrupt entry
  is rebuilt.
* ``CudaExecutable``: runs a ``LaunchPlan``: the arena and outputs come from the
  allocator, host inputs are copied in (device inputs are used in place), launches are
  queued in order with precomputed argument getters (no other Python work per kernel),
  loops and branches read a scalar back only where the plan says so. Outputs are
  ``CudaArray``s: their data stay on the GPU until read (``np.asarray``, ``.item()``,
  printing), which is the only time fgrad waits for the GPU (and ``block_until_ready``).
* Eager operations on ``CudaArray``s run per-primitive programs (one equation lowered
  through the same pipeline), compiled once per (primitive, params, avals, device).

* CUDA graphs: a straight-line plan (launches, and loops without an iteration counter; no
  scalar read back) is captured into a CUDA graph the second time a call uses the same device
  pointers (inputs, outputs, constants, arena), and replayed with one ``cuGraphLaunch`` from
  then on (up to ``GRAPH_CACHE_SIZE`` graphs per program). A graph bakes its kernels' pointers
  in, so it is looked up by exactly those pointers; for them to recur in a training loop, a
  program asks the allocator for the blocks its outputs (and copied-in inputs, and arena) had
  in its last two calls. pycuda has no graph API: ``CudaGraphApi`` calls the driver API in
  ``libcuda.so.1`` through ctypes. ``FGRAD_CUDA_GRAPHS=0`` turns graphs off (plain launches;
  read at every call); a failing capture falls back to plain launches and turns graphs off for
  that program (logged at ``FGRAD_DEBUG=1``). A capture records everything queued on the
  device's stream, so a program must not be called while another thread queues work on the
  same GPU.

``FGRAD_DEBUG=1`` logs compiles and cache misses, ``2`` each kernel's GPU time per call
(CUDA events; the call then waits for the GPU, and graphs are not used), ``3`` the kernel IR,
``4`` the CUDA C.
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import glob
import hashlib
import math
import operator
import os
import re
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from fgrad import distributed
from fgrad.backends.disk_cache import DiskCache
from fgrad.backends.base import Buffer, Device, Executable
from fgrad.config import _env_flag, config
from fgrad.core.array import Array
from fgrad.core.trace import get_aval
from fgrad.core.types import ShapedArray
from fgrad.devices import PlacementError, gpu_count_cache
from fgrad.lower.fallback import HostFallbackWarning, warn_fallback
from fgrad.lower.cuda import Branch, Launch, LaunchPlan, Repeat, WhileLoop, kernels_by_name, render_program
from fgrad.lower.kernel import DefineLocal, Program, format_program, walk_stmts

CACHE_VERSION = "fgrad-cuda-1"
_MAGIC = b"FGRADCUBIN1\n"
_lock = threading.RLock()


class CudaError(RuntimeError):
    """The GPU, its driver or its compiler failed (the message says which step and why)."""


def _log(level: int, message: str) -> None:
    if config.debug >= level:
        print(f"[fgrad cuda] {message}", file=sys.stderr, flush=True)


_disk_cache = DiskCache("cuda", _MAGIC, lambda level, message: _log(level, message))


# --- NVRTC through ctypes ----------------------------------------------------------------------

def _nvrtc_candidates() -> list[str]:
    found = [os.environ["FGRAD_NVRTC"]] if os.environ.get("FGRAD_NVRTC") else []
    name = ctypes.util.find_library("nvrtc")
    if name:
        found.append(name)
    wheels = [f"{p}/nvidia/{sub}/lib/libnvrtc.so*" for p in sys.path if p for sub in ("cu*", "cuda_nvrtc")]
    for pattern in ("/usr/local/cuda*/targets/*/lib/libnvrtc.so*", "/usr/local/cuda*/lib64/libnvrtc.so*",
                    "/usr/lib/x86_64-linux-gnu/libnvrtc.so*", *wheels):   # wheels: nvidia-cuda-nvrtc
        found += sorted((p for p in glob.glob(pattern) if "builtins" not in p), reverse=True)
    return found


class Nvrtc:
    """NVRTC (CUDA's runtime compiler) loaded with ctypes: CUDA C source -> cubin in-process."""

    def __init__(self, path: str) -> None:
        lib = ctypes.CDLL(path)
        P, C = ctypes.c_void_p, ctypes.c_char_p
        lib.nvrtcGetErrorString.restype = C
        lib.nvrtcCreateProgram.argtypes = [ctypes.POINTER(P), C, C, ctypes.c_int, P, P]
        lib.nvrtcCompileProgram.argtypes = [P, ctypes.c_int, ctypes.POINTER(C)]
        for fn in ("nvrtcGetProgramLogSize", "nvrtcGetCUBINSize"):
            getattr(lib, fn).argtypes = [P, ctypes.POINTER(ctypes.c_size_t)]
        for fn in ("nvrtcGetProgramLog", "nvrtcGetCUBIN"):
            getattr(lib, fn).argtypes = [P, C]
        lib.nvrtcDestroyProgram.argtypes = [ctypes.POINTER(P)]
        self.lib, self.path = lib, path
        self.include_dirs = _cuda_include_dirs(path)
        major, minor = ctypes.c_int(), ctypes.c_int()
        self._check(lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "nvrtcVersion")
        self.version = (major.value, minor.value)

    def _check(self, result: int, what: str, log: str = "") -> None:
        if result:
            text = self.lib.nvrtcGetErrorString(result).decode()
            raise CudaError(f"NVRTC {what} failed: {text}" + (f"\n{log}" if log else ""))

    def compile(self, source: str, arch: str, options: Sequence[str]) -> bytes:
        """The cubin of ``source`` for ``arch`` (e.g. 'sm_90')."""
        lib, prog = self.lib, ctypes.c_void_p()
        self._check(lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), b"fgrad.cu", 0, None, None),
                    "nvrtcCreateProgram")
        try:
            opts = [f"--gpu-architecture={arch}", *options, *(f"-I{d}" for d in self.include_dirs)]
            opts = [o.encode() for o in opts]
            array = (ctypes.c_char_p * len(opts))(*opts)
            result = lib.nvrtcCompileProgram(prog, len(opts), array)
            if result:
                size = ctypes.c_size_t()
                lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
                log = ctypes.create_string_buffer(size.value)
                lib.nvrtcGetProgramLog(prog, log)
                self._check(result, "compilation", log.value.decode(errors="replace")[-4000:])
            size = ctypes.c_size_t()
            self._check(lib.nvrtcGetCUBINSize(prog, ctypes.byref(size)), "nvrtcGetCUBINSize")
            cubin = ctypes.create_string_buffer(size.value)
            self._check(lib.nvrtcGetCUBIN(prog, cubin), "nvrtcGetCUBIN")
            return cubin.raw
        finally:
            lib.nvrtcDestroyProgram(ctypes.byref(prog))


def _cuda_include_dirs(nvrtc_path: str) -> list[str]:
    """Where CUDA's headers are (``mma.h`` for tensor cores is not built into NVRTC): beside the
    library (``targets/<arch>/lib`` -> ``targets/<arch>/include``), ``$CUDA_HOME``, /usr/local/cuda*."""
    lib = Path(os.path.realpath(nvrtc_path)).parent
    candidates = [lib.parent / "include", Path(os.environ.get("CUDA_HOME", "/nonexistent")) / "include",
                  Path(os.environ.get("CUDA_PATH", "/nonexistent")) / "include", Path("/usr/local/cuda/include"),
                  *sorted(Path(p) for p in glob.glob("/usr/local/cuda-*/include"))[::-1]]
    for d in candidates:
        if (d / "mma.h").is_file():
            return [str(d)]
    return []


_nvrtc: list = []


def find_nvrtc() -> Nvrtc | None:
    """NVRTC if a ``libnvrtc.so*`` loads (``FGRAD_NVRTC`` names one explicitly), else None."""
    if not _nvrtc:
        loaded = None
        for path in _nvrtc_candidates():
            try:
                loaded = Nvrtc(path)
                break
            except (OSError, AttributeError, CudaError):
                continue
        _nvrtc.append(loaded)
    return _nvrtc[0]


# --- CUDA graphs through the driver API (ctypes) ---------------------------------------------------

CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1     # only this thread's unsafe calls break the capture
CU_STREAM_CAPTURE_STATUS_NONE = 0


class CudaGraphApi:
    """Stream capture and graph replay from the CUDA driver API, loaded with ctypes from
    ``libcuda.so.1`` (the library pycuda loaded: the same driver state and contexts).

    Handles (streams, graphs, executable graphs) are pointer-sized; every call's ``CUresult``
    is checked and a failure raises ``CudaError`` naming the call and the driver's message.
    """

    def __init__(self, path: str = "libcuda.so.1") -> None:
        lib = ctypes.CDLL(path)
        P, R = ctypes.c_void_p, ctypes.c_int

        def bind(name: str, *argtypes) -> Callable:
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = list(argtypes), R
            return fn
        self._get_error_string = bind("cuGetErrorString", R, ctypes.POINTER(ctypes.c_char_p))
        self._begin_capture = bind("cuStreamBeginCapture_v2", P, R)
        self._end_capture = bind("cuStreamEndCapture", P, ctypes.POINTER(P))
        self._is_capturing = bind("cuStreamIsCapturing", P, ctypes.POINTER(R))
        self._instantiate = bind("cuGraphInstantiateWithFlags", ctypes.POINTER(P), P, ctypes.c_ulonglong)
        self._launch = bind("cuGraphLaunch", P, P)
        self._exec_destroy = bind("cuGraphExecDestroy", P)
        self._graph_destroy = bind("cuGraphDestroy", P)
        self.path = path

    def _check(self, result: int, call: str) -> None:
        if result:
            text = ctypes.c_char_p()
            if self._get_error_string(result, ctypes.byref(text)) or not text.value:
                message = "unknown error"
            else:
                message = text.value.decode(errors="replace")
            raise CudaError(f"{call} failed: CUDA error {result}: {message}")

    def begin_capture(self, stream: int) -> None:
        """Start capturing the work queued on ``stream`` (nothing runs until the graph does)."""
        self._check(self._begin_capture(stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL), "cuStreamBeginCapture_v2")

    def end_capture(self, stream: int) -> int:
        """End the capture on ``stream`` and instantiate it: the executable graph's handle.
        The stream is out of capture mode afterwards, also when this raises."""
        graph = ctypes.c_void_p()
        result = self._end_capture(stream, ctypes.byref(graph))
        try:
            self._check(result, "cuStreamEndCapture")
            if not graph.value:
                raise CudaError("cuStreamEndCapture returned no graph")
            executable = ctypes.c_void_p()
            self._check(self._instantiate(ctypes.byref(executable), graph, 0), "cuGraphInstantiateWithFlags")
            return executable.value
        finally:
            if graph.value:           # the executable graph does not need its template
                self._graph_destroy(graph)

    def abort_capture(self, stream: int) -> None:
        """End a capture whose work is not wanted (discard the graph); raises if the stream
        is still capturing afterwards."""
        graph = ctypes.c_void_p()
        self._end_capture(stream, ctypes.byref(graph))
        if graph.value:
            self._graph_destroy(graph)
        status = ctypes.c_int()
        self._check(self._is_capturing(stream, ctypes.byref(status)), "cuStreamIsCapturing")
        if status.value != CU_STREAM_CAPTURE_STATUS_NONE:
            raise CudaError(f"the stream is still capturing (status {status.value}) after cuStreamEndCapture")

    def launch(self, executable: int, stream: int) -> None:
        """Queue the executable graph on ``stream``."""
        self._check(self._launch(executable, stream), "cuGraphLaunch")

    def destroy(self, executable: int) -> None:
        """Free an executable graph (work already queued still runs)."""
        self._check(self._exec_destroy(executable), "cuGraphExecDestroy")


_graph_api: list = []


def graph_api() -> CudaGraphApi | None:
    """The driver's graph calls, or None when ``libcuda.so.1`` or one of the calls is missing
    (a driver older than CUDA 11.4); loaded once."""
    if not _graph_api:
        try:
            _graph_api.append(CudaGraphApi())
        except (OSError, AttributeError) as e:
            _log(1, f"CUDA graphs unavailable, jitted programs launch kernel by kernel: {e}")
            _graph_api.append(None)
    return _graph_api[0]


def graphs_enabled() -> bool:
    """Whether jitted programs may replay as CUDA graphs (``FGRAD_CUDA_GRAPHS``, default on;
    ``0``/``false``/``off`` turns them off). Read at every call."""
    return _env_flag("FGRAD_CUDA_GRAPHS", True)


# --- the driver ----------------------------------------------------------------------------------

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
    call.__name__, call.__doc__ = method.__name__, method.__doc__
    return call


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
            import pycuda.driver as drv
            drv.init()
            return drv.Device.count()
        except Exception:  # ImportError, or a CUDA error when no driver/GPU is present
            return 0

    _contexts: dict = {}     # ordinal -> primary context, retained once per process

    def __init__(self, ordinal: int) -> None:
        import pycuda.driver as drv
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
                from pycuda.tools import clear_context_caches
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
        from pycuda.compiler import compile as nvcc_compile
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
        from pycuda._pvt_struct import pack
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


_driver_class: list = [PycudaDriver]
_runtimes: dict[int, "CudaRuntime"] = {}
_gpu_count = gpu_count_cache       # [count] once probed; fgrad.devices reads it on every jit call


def use_driver(driver_class: type) -> None:
    """Use ``driver_class`` (``PycudaDriver``'s interface) for every GPU from now on; forgets
    the open runtimes and compiled programs (tests install a fake driver this way)."""
    with _lock:
        _driver_class[0] = driver_class
        _runtimes.clear()
        _gpu_count.clear()
        _device_lists[0] = None
        _executables.clear()
        _eager_programs.clear()
        _memory_cache.clear()
        _scalar_buffers.clear()


def gpu_count() -> int:
    """How many GPUs the current driver sees (probed once)."""
    if not _gpu_count:
        _gpu_count.append(int(_driver_class[0].device_count()))
    return _gpu_count[0]


@dataclass(frozen=True)
class CudaDevice(Device):
    """One GPU: ``index`` numbers it among every process's GPUs (``cuda:i``), ``process_index``
    is the process that runs it and ``ordinal`` its number among that process's GPUs."""

    process_index: int = 0
    ordinal: int = 0

    def __repr__(self) -> str:
        return f"{self.platform}:{self.index}"


_device_lists: list = [None, [], []]   # the peers they were built from, every GPU, this process's


def gpu_devices() -> list[CudaDevice]:
    """``cuda:0 ... cuda:N-1``: this process's GPUs, or after ``fgrad.distributed.initialize()``
    every process's (``process_gpus``), numbered in process order."""
    return list(_gpu_lists()[1])


def local_gpu_devices() -> list[CudaDevice]:
    """The GPUs this process runs (all of ``gpu_devices()`` without ``fgrad.distributed``)."""
    return list(_gpu_lists()[2])


def _gpu_lists() -> list:
    """[peers, every GPU, this process's GPUs], rebuilt when ``fgrad.distributed``'s peers
    change (jit consults the default GPU on every call)."""
    peers = distributed.peers()
    if _device_lists[0] is not peers:
        if distributed.is_initialized():
            listed = [(p, ordinal) for p, ordinals in enumerate(process_gpus(peers)) for ordinal in ordinals]
        else:
            listed = [(0, i) for i in range(gpu_count())]
        every = [CudaDevice("cuda", i, p, ordinal) for i, (p, ordinal) in enumerate(listed)]
        me = distributed.process_index()
        _device_lists[:] = [peers, every, [d for d in every if d.process_index == me]]
    return _device_lists


def process_gpus(peers: Sequence[dict]) -> list[list[int]]:
    """Per process, the ordinals of the GPUs it runs, from each process's host and GPU count
    (``fgrad.distributed.peers()``). A process alone on its host runs every GPU it sees; where
    several processes share a host, the k-th of them (in process order) runs one GPU, ordinal
    k (modulo what it sees, so with ``CUDA_VISIBLE_DEVICES`` set per process each runs its
    ordinal 0). NCCL needs distinct GPUs: start at most one process per GPU."""
    per_host: dict = {}
    for p, info in enumerate(peers):
        per_host.setdefault(info.get("host"), []).append(p)
    out = []
    for p, info in enumerate(peers):
        count, sharing = int(info.get("gpus", 0)), per_host[info.get("host")]
        if count == 0:
            out.append([])
        elif len(sharing) == 1:
            out.append(list(range(count)))
        else:
            out.append([sharing.index(p) % count])
    return out


def runtime(device: Device) -> "CudaRuntime":
    """The runtime (driver, stream, allocator) of GPU ``device``, opened on first use."""
    rt = _runtimes.get(device.index)
    if rt is None:
        with _lock:
            rt = _runtimes.get(device.index)
            if rt is None:
                listed = _listed(device)
                rt = _runtimes[device.index] = CudaRuntime(listed, _driver_class[0](listed.ordinal))
    return rt


def _listed(device: Device) -> CudaDevice:
    """``device`` as ``gpu_devices`` lists it, if this process runs it (else an error naming
    the process that does, or the GPUs when it is none of them)."""
    if device.platform == "cuda":
        for listed in _gpu_lists()[1]:
            if listed.index == device.index:
                if listed.process_index != distributed.process_index():
                    raise ValueError(f"{device!r} is run by process {listed.process_index}, not by this one "
                                     f"(process {distributed.process_index()}); fgrad.local_devices() lists "
                                     "this process's GPUs")
                return listed
    raise ValueError(f"{device!r} is not a GPU of this machine; the GPUs are "
                     f"{gpu_devices()} (fgrad.devices() lists every device)")


# --- memory --------------------------------------------------------------------------------------

def size_class(nbytes: int) -> int:
    """The allocation size for a request: 512-byte granules up to 4 KiB, then 8 classes per
    power of two (at most 12.5% waste)."""
    if nbytes <= 4096:
        return max(512, -(-nbytes // 512) * 512)
    step = 1 << max(9, (nbytes - 1).bit_length() - 4)
    return -(-nbytes // step) * step


class Block:
    """One allocation: its device pointer, its size class, the driver's handle, and whether
    its last user named preferred blocks (a jitted program's output: wanted back next time)."""

    __slots__ = ("ptr", "size", "handle", "hinted")

    def __init__(self, ptr: int, size: int, handle: Any) -> None:
        self.ptr, self.size, self.handle, self.hinted = ptr, size, handle, False


class CachingAllocator:
    """Device memory in size classes; freed blocks wait in per-class free lists for reuse.

    Stream-ordered: a block freed while kernels that use it are still queued may be
    handed out at once, because the next user's work is queued behind them on the
    same stream. A caller may name the blocks it prefers (``alloc(n, prefer=pointers)``):
    a jitted program asks for the blocks its outputs had in the last calls, so that a
    training loop's pointers recur and its CUDA graphs replay; other requests take the most
    recently freed block that such a program did not hold, where there is one, so that
    e.g. a batch copied in each step does not take an output's block.
    """

    SCAN = 64        # free blocks looked at for one that no program wants back

    def __init__(self, driver: Any) -> None:
        self.driver = driver
        self.free_lists: dict[int, dict[int, Block]] = {}    # size -> {pointer: block}, LIFO
        self.live_bytes = 0
        self.peak_bytes = 0
        self.cached_bytes = 0
        self.allocations = 0       # calls into the driver's mem_alloc
        self._lock = threading.Lock()

    def alloc(self, nbytes: int, prefer: Sequence[int] = ()) -> Block:
        """A block of at least ``nbytes`` bytes: a free one of its class when there is one
        (the first of the pointers ``prefer`` that is free, else the last freed), else new."""
        size = size_class(nbytes)
        with self._lock:
            free = self.free_lists.get(size)
            if free:
                block = self._take(free, prefer)
                self.cached_bytes -= size
            else:
                block = self._fresh(size)
            block.hinted = bool(prefer)
            self.live_bytes += size
            self.peak_bytes = max(self.peak_bytes, self.live_bytes)
        return block

    def _take(self, free: dict[int, Block], prefer: Sequence[int]) -> Block:
        for ptr in prefer:
            block = free.pop(ptr, None)
            if block is not None:
                return block
        for n, ptr in enumerate(reversed(free)):
            if n == self.SCAN:
                break
            if not free[ptr].hinted:
                return free.pop(ptr)
        return free.popitem()[1]

    def _fresh(self, size: int) -> Block:
        try:
            ptr, handle = self.driver.mem_alloc(size)
        except Exception as e:
            if not self.driver.is_out_of_memory(e) or not self.cached_bytes:
                raise
            self._release_cached()
            ptr, handle = self.driver.mem_alloc(size)
        self.allocations += 1
        return Block(ptr, size, handle)

    def free(self, block: Block) -> None:
        """Return ``block`` to its free list."""
        with self._lock:
            self.free_lists.setdefault(block.size, {})[block.ptr] = block
            self.live_bytes -= block.size
            self.cached_bytes += block.size

    def empty_cache(self) -> None:
        """Give every cached (free) block back to the driver."""
        with self._lock:
            self._release_cached()

    def _release_cached(self) -> None:
        self.driver.synchronize()       # queued work may still use a cached block
        for blocks in self.free_lists.values():
            for b in blocks.values():
                self.driver.mem_free(b.handle)
        self.free_lists.clear()
        self.cached_bytes = 0

    def reset_peak(self) -> None:
        """Start measuring the peak from now."""
        self.peak_bytes = self.live_bytes


class CudaRuntime:
    """One GPU: its driver, its allocator and the counters tests and benchmarks read."""

    def __init__(self, device: Device, driver: Any) -> None:
        self.device = device
        self.driver = driver
        self.stream = getattr(driver, "stream", None)
        self.allocator = CachingAllocator(driver)
        major, minor = driver.compute_capability()
        self.arch = f"sm_{major}{minor}"
        atexit.register(self._close)

    def _close(self) -> None:
        try:
            self.allocator.empty_cache()
        except Exception:  # the process is exiting; the driver may already be gone
            pass
        close = getattr(self.driver, "close", None)
        if close is not None:
            close()

    def put(self, host: np.ndarray, prefer: Sequence[int] = ()) -> "CudaBuffer":
        """Copy a host array to a fresh device buffer (queued; returns at once); ``prefer``
        as for ``CachingAllocator.alloc``."""
        shape = np.shape(host)
        host = np.ascontiguousarray(host)       # (0-d arrays come back 1-d: keep the shape)
        buf = CudaBuffer(self, shape, host.dtype, prefer)
        if host.nbytes:
            self.driver.copy_htod(buf.ptr, host)
        return buf

    def empty(self, shape: tuple, dtype: np.dtype) -> "CudaBuffer":
        """An uninitialised device buffer."""
        return CudaBuffer(self, shape, dtype)

    def synchronize(self) -> None:
        """Wait until the GPU finished everything queued so far."""
        self.driver.synchronize()

    def memory_stats(self) -> dict[str, int]:
        """Bytes in use, the peak, bytes cached for reuse, and driver allocations made."""
        a = self.allocator
        return {"live_bytes": a.live_bytes, "peak_bytes": a.peak_bytes, "cached_bytes": a.cached_bytes,
                "allocations": a.allocations}


class CudaBuffer(Buffer):
    """An array's memory on a GPU; given back to the allocator when garbage collected."""

    __slots__ = ("runtime", "block", "shape", "dtype", "ptr", "nbytes")

    def __init__(self, rt: CudaRuntime, shape: tuple, dtype: np.dtype, prefer: Sequence[int] = ()) -> None:
        self.runtime, self.shape, self.dtype = rt, tuple(shape), np.dtype(dtype)
        self.nbytes = math.prod(self.shape) * self.dtype.itemsize
        self.block = rt.allocator.alloc(max(1, self.nbytes), prefer)
        self.ptr = self.block.ptr

    @property
    def device(self) -> Device:
        """The GPU this buffer is on."""
        return self.runtime.device

    def to_numpy(self) -> np.ndarray:
        """Copy to the host, waiting for the GPU (the one place reads synchronise)."""
        host = np.empty(self.shape, self.dtype)
        if host.nbytes:
            self.runtime.driver.copy_dtoh(host, self.ptr)
        self.runtime.synchronize()
        return host

    def __del__(self) -> None:
        block, self.block = getattr(self, "block", None), None
        if block is not None:
            try:
                self.runtime.allocator.free(block)
            except Exception:  # interpreter shutdown
                pass


# --- arrays on a GPU -------------------------------------------------------------------------

class CudaArray(Array):
    """An ``fgrad.Array`` whose data live on a GPU until they are read.

    Reading (``np.asarray``, ``.item()``, printing, comparisons in Python) copies the
    data to the host once, waiting for the GPU; ``block_until_ready()`` only waits.
    Operations on it run on its GPU; combining it with an array on another device
    raises an error that suggests ``fgrad.device_put``.
    """

    __slots__ = ("_buffer", "_host")

    def __init__(self, *args, **kwargs):
        raise TypeError("create GPU arrays with fgrad.device_put(x, device) or by running a "
                        "function on a GPU")

    @classmethod
    def _wrap(cls, buffer: CudaBuffer, aval: ShapedArray) -> "CudaArray":
        self = object.__new__(cls)
        self.aval = aval
        self.device = buffer.runtime.device
        self._buffer = buffer
        self._host = None
        return self

    @property
    def _value(self) -> np.ndarray:
        host = self._host
        if host is None:
            host = self._buffer.to_numpy()
            host.flags.writeable = False
            self._host = host
        return host

    def block_until_ready(self) -> "CudaArray":
        """Wait until the GPU has computed this array."""
        self._buffer.runtime.synchronize()
        return self

    def copy(self) -> "CudaArray":
        """The array itself (arrays are immutable)."""
        return self

    def __reduce__(self):
        return (Array, (np.array(self._value), self.aval))

    @staticmethod
    def _device_process(primitive, args, params):
        """The eager interpreter's hook: run ``primitive`` on the arguments' GPU."""
        return eager_apply(primitive, args, params)


def put(x: Any, device: Device, aval: ShapedArray | None = None) -> CudaArray:
    """Place ``x`` on GPU ``device`` (a no-op when it is already there)."""
    if isinstance(x, CudaArray):
        if x.device == device:
            return x
        return CudaArray._wrap(runtime(device).put(x._value), x.aval)  # GPU -> host -> GPU
    if aval is None:
        from fgrad import numpy as fnp
        array = x if isinstance(x, Array) else fnp.asarray(x)
        aval, x = array.aval, array._value
    return CudaArray._wrap(runtime(device).put(np.asarray(x, aval.dtype)), aval)


def placement_error(a: Device, b: Device) -> PlacementError:
    """The error for combining arrays committed to devices ``a`` and ``b``."""
    return PlacementError(f"arrays on two devices, {a!r} and {b!r}, were combined; move one of them "
                      f"first, e.g. x = fgrad.device_put(x, fgrad.devices()[0]) (or device_put(x, "
                      f"{b!r})), so that every operand is on the same device", (a, b))


def common_device(args: Sequence[Any], default: Device | None = None) -> Device:
    """The one device the arrays among ``args`` are committed to (by ``device_put``, or as GPU
    arrays), else ``default`` or this process's first GPU; two different ones raise the
    two-devices error. Uncommitted host arrays follow."""
    found = None
    for x in args:
        d = getattr(x, "device", None) if isinstance(x, Array) else None
        if d is None:
            continue
        if found is None:
            found = d
        elif d != found:
            raise placement_error(found, d)
    if found is None:
        found = default if default is not None else local_gpu_devices()[0]
    return found


# --- compilation -----------------------------------------------------------------------------

_memory_cache: dict[str, bytes] = {}


def compile_options() -> tuple[str, ...]:
    """Compiler options for every program (``FGRAD_CUDA_OPTIONS`` adds more, space-separated)."""
    extra = tuple(os.environ.get("FGRAD_CUDA_OPTIONS", "").split())
    return ("-std=c++17",) + extra


def source_key(source: str, arch: str, options: Sequence[str], compiler: str) -> str:
    """The cache key of a compiled module."""
    text = "\n".join((CACHE_VERSION, arch, " ".join(options), compiler, source))
    return hashlib.sha256(text.encode()).hexdigest()


def compile_source(rt: CudaRuntime, source: str) -> bytes:
    """The compiled image of ``source`` for ``rt``'s GPU: memory cache, disk cache or compiler.
    Thread-safe; compilers run outside the lock, so modules compile in parallel."""
    options = compile_options()
    key = source_key(source, rt.arch, options, rt.driver.compiler_id())
    with _lock:
        image = _memory_cache.get(key)
    if image is not None:
        return image
    t0 = time.perf_counter()
    directory = _disk_cache.directory()
    path = directory / f"{key}.cubin" if directory else None
    image = _disk_cache.read(path) if path else None
    how = "loaded from the disk cache"
    if image is None:
        how = "compiled (not in the memory or disk cache)"
        try:
            image = rt.driver.compile(source, rt.arch, options)
        except Exception as e:
            raise CudaError(f"compiling CUDA C for {rt.arch} failed: {e}") from e
        if path:
            _disk_cache.write(path, image)
    with _lock:
        _memory_cache[key] = image
    _log(1, f"module {key[:12]} ({len(source)} chars): {how} in {time.perf_counter() - t0:.3f}s")
    return image


def compile_program(program: Program, device: Device) -> "CudaExecutable":
    """Compile a kernel IR program for GPU ``device``; call the result with arrays.

        >>> exe = compile_program(program, fgrad.devices()[0])      # doctest: +SKIP
        >>> (y,) = exe(x)          # a CudaBuffer list; inputs: NumPy arrays or CudaBuffers
    """
    if not isinstance(program, Program):
        raise TypeError(f"compile_program takes a kernel IR Program, got {type(program).__name__}")
    rt = runtime(device)
    too_big = kernels_with_large_locals(program)
    if too_big:
        _log(1, f"program {program.name}: runs on the host CPU (LLVM), not the GPU: per-thread locals of "
                f"{', '.join(f'{k} {n // 1024} KiB' for k, n in too_big)} exceed {max_local_bytes() // 1024} KiB "
                "(FGRAD_CUDA_MAX_LOCAL_BYTES); the GPU would reserve that much local memory for every "
                "resident thread")
        from fgrad.backends.cpu import compile_program as compile_for_cpu
        why = f"per-thread locals too large for a GPU: {too_big[0][0]} {too_big[0][1] // 1024} KiB"
        warn_fallback(program.name, f"{why} (FGRAD_CUDA_MAX_LOCAL_BYTES is {max_local_bytes() // 1024} KiB)",
                      key=program, category=HostFallbackWarning)
        return host_fallback(compile_for_cpu(program), device, why)
    source, plan = render_program(program)
    if config.debug >= 3:
        print(format_program(program), file=sys.stderr, flush=True)
    if config.debug >= 4:
        print(source, file=sys.stderr, flush=True)
    kernels = kernels_by_name(program)
    chunks = split_source(source, compile_workers())
    with ThreadPoolExecutor(len(chunks)) as pool:   # NVRTC and nvcc run outside the GIL
        images = list(pool.map(lambda chunk: compile_source(rt, chunk[0]), chunks))
    modules = {}
    for (_, names), image in zip(chunks, images):
        module = rt.driver.load_module(image, {n: kernels[n] for n in names})
        modules.update((n, module) for n in names)
    return CudaExecutable(program, plan, rt, modules)


def max_local_bytes() -> int:
    """Per-thread local memory a kernel may use on the GPU (``FGRAD_CUDA_MAX_LOCAL_BYTES``,
    default 64 KiB): the driver reserves it for every thread that can be resident, ~270k on
    an H100/H200, so 64 KiB already costs ~17 GiB."""
    value = os.environ.get("FGRAD_CUDA_MAX_LOCAL_BYTES", "").strip()
    if not value:
        return 64 << 10
    if not value.isdigit():
        raise ValueError(f"FGRAD_CUDA_MAX_LOCAL_BYTES must be a number of bytes, got {value!r}")
    return int(value)


def kernels_with_large_locals(program: Program) -> list[tuple[str, int]]:
    """(kernel, bytes) of the kernels whose locals (e.g. a CPU-sized packing buffer of a
    contraction template) exceed ``max_local_bytes()``, largest first."""
    limit, out = max_local_bytes(), []
    for name, kernel in kernels_by_name(program).items():
        size = sum(s.local.size * np.dtype(s.local.dtype).itemsize
                   for s in walk_stmts(kernel.body) if isinstance(s, DefineLocal))
        if size > limit:
            out.append((name, size))
    return sorted(out, key=lambda kv: -kv[1])


def compile_workers() -> int:
    """Compiler threads for one program (``FGRAD_CUDA_COMPILE_THREADS``, default the cores, <= 16)."""
    value = os.environ.get("FGRAD_CUDA_COMPILE_THREADS", "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"FGRAD_CUDA_COMPILE_THREADS must be a positive integer, got {value!r}")
        return int(value)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(16, cores))


_KERNEL_START = '\nextern "C" __global__ void '
MIN_CHUNK = 16_000          # characters of kernels per compiled module, at least


def split_source(source: str, parts: int) -> list[tuple[str, list[str]]]:
    """Split a rendered program into at most ``parts`` sources (the prelude, then a share of the
    kernels, balanced by length) that compile in parallel: [(source, kernel names)]."""
    prelude, *texts = source.split(_KERNEL_START)
    kernels = [(t[:t.index("(")], _KERNEL_START + t) for t in texts]
    parts = max(1, min(parts, len(kernels), sum(len(t) for _, t in kernels) // MIN_CHUNK))
    groups: list[list] = [[] for _ in range(parts)]
    sizes = [0] * parts
    for name, text in sorted(kernels, key=lambda k: -len(k[1])):
        k = sizes.index(min(sizes))
        groups[k].append((name, text))
        sizes[k] += len(text)
    order = {name: i for i, (name, _) in enumerate(kernels)}
    out = []
    for group in groups:
        group.sort(key=lambda k: order[k[0]])       # program order inside each module
        out.append((prelude + "".join(text for _, text in group), [name for name, _ in group]))
    return out


# --- running a launch plan -------------------------------------------------------------------

def _getter(indices: tuple) -> Callable[[list], tuple]:
    """``ptrs -> tuple(ptrs[i] for i in indices)`` as one C call."""
    if len(indices) >= 2:
        return operator.itemgetter(*indices)
    if len(indices) == 1:
        i = indices[0]
        return lambda ptrs: (ptrs[i],)
    return lambda ptrs: ()


GRAPH_CACHE_SIZE = 8          # graphs kept per executable (least recently used evicted)
GRAPH_SEEN_SIZE = 16          # pointer tuples remembered, not yet captured, per executable
GRAPH_MIN_LAUNCHES = 2        # a single launch gains nothing from a graph
GRAPH_MAX_LAUNCHES = 10_000   # kernels in one graph (counted loops unrolled), at most
GRAPH_GIVE_UP = 16            # captures with fewer replays than that: graphs off for the program


def graph_launches(steps: tuple) -> int | None:
    """Graph nodes one call makes when ``steps`` are straight-line (``Launch``, and ``Repeat``
    unrolled: an indexed loop's counter is a device-to-device copy from the executable's
    table of iteration numbers, one more node per iteration), else None: a while loop or a
    branch reads a scalar back from the GPU, which a graph cannot."""
    total = 0
    for s in steps:
        if isinstance(s, Launch):
            total += 1
        elif isinstance(s, Repeat):
            body = graph_launches(s.body)
            if body is None:
                return None
            total += s.count * (body + (s.index is not None))
        else:
            return None
    return total


class CudaExecutable(Executable):
    """A compiled program on one GPU: ``exe(*inputs) -> list of CudaBuffer`` (nothing waits).

    A straight-line plan replays as a CUDA graph once a call repeats the device pointers of
    an earlier one (``graph_captures`` graphs made, ``graph_replays`` calls that launched one
    made earlier; see the module docstring).
    """

    def __init__(self, program: Program, plan: LaunchPlan, rt: CudaRuntime, modules: dict) -> None:
        self.program, self.plan, self.runtime, self.device = program, plan, rt, rt.device
        self.driver, self.stream = rt.driver, rt.stream
        self._modules = modules          # kernel name -> the loaded module that holds it
        slots = plan.buffers
        self._inputs = [(s.name, np.dtype(s.dtype), tuple(s.shape), s.nbytes) for s in slots if s.kind == "input"]
        self._outputs = [(tuple(s.shape), np.dtype(s.dtype)) for s in slots if s.kind == "output"]
        self._constants = [rt.put(v) for v in program.constants.values()]   # uploaded once
        self._temps = [(s.offset, s.dtype) for s in slots if s.kind == "temporary"]
        self._launchers: dict[str, Callable] = {}
        self._scalar: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        self._events: list | None = None     # (kernel, start, end) of a timed call (FGRAD_DEBUG=2)
        self._iteration_numbers: list = []   # indexed loops' counters, on the device
        self._steps = self._build(plan.steps)
        self._timed_steps: list | None = None
        self.launches_per_call = sum(1 for _ in plan.launches())
        kernels = graph_launches(plan.steps)
        supports = getattr(self.driver, "supports_graphs", None)
        self._graphable = (kernels is not None and GRAPH_MIN_LAUNCHES <= kernels <= GRAPH_MAX_LAUNCHES
                           and supports is not None and supports())
        self._graphs: OrderedDict[tuple, Any] = OrderedDict()     # pointers -> graph, LRU order
        self._seen: OrderedDict[tuple, None] = OrderedDict()      # pointers run once, not captured
        self.graph_captures = 0
        self.graph_replays = 0
        # per host input, output and the arena: its pointers in the last two calls, which its
        # next block is taken from when free (so that a loop's pointers, and graphs, recur)
        self._prefer: list[tuple] = [(0, 0)] * (len(self._inputs) + len(self._outputs) + 1)

    # -- turning the plan into closures, once
    def _launcher(self, launch: Launch) -> Callable:
        fn = self._launchers.get(launch.kernel)
        if fn is None:
            fn = self._launchers[launch.kernel] = self.driver.launcher(self._modules[launch.kernel], launch.kernel,
                                                                         len(launch.args))
        if self._events is not None:
            return self._timed(fn, launch.kernel)
        return fn

    def _timed(self, fn: Callable, kernel: str) -> Callable:
        """``fn`` between two recorded events (FGRAD_DEBUG=2)."""
        driver, events = self.driver, self._events

        def launch(grid, block, stream, *ptrs):
            start, end = driver.event(), driver.event()
            start.record(stream)
            fn(grid, block, stream, *ptrs)
            end.record(stream)
            events.append((kernel, start, end))
        return launch

    def _steps_for_call(self) -> list:
        if config.debug < 2:
            return self._steps
        if self._timed_steps is None:
            self._events = []
            self._timed_steps = self._build(self.plan.steps)
        return self._timed_steps

    def _report_timing(self) -> None:
        """Per-kernel GPU time of the call just made (waits for it)."""
        self.runtime.synchronize()
        totals: dict[str, list] = {}
        for kernel, start, end in self._events:
            entry = totals.setdefault(kernel, [0, 0.0])
            entry[0] += 1
            entry[1] += self.driver.elapsed_ms(start, end)
        self._events.clear()
        modes = self.plan.kernel_modes
        sizes = {launch.kernel: (launch.grid, launch.block) for launch in self.plan.launches()}
        total = sum(ms for _, ms in totals.values())
        lines = [f"[fgrad cuda] program {self.program.name}: {total * 1e3:.1f} us of kernels"]
        for kernel, (n, ms) in sorted(totals.items(), key=lambda kv: -kv[1][1]):
            grid, block = sizes[kernel]
            lines.append(f"  {kernel:36s} x{n:<4d} {ms * 1e3:10.1f} us  {modes[kernel]:6s} "
                         f"grid {grid:6d} block {block:4d}")
        print("\n".join(lines), file=sys.stderr, flush=True)

    def _build(self, steps: tuple) -> list[Callable[[list], None]]:
        out, batch = [], []
        for s in steps:
            if isinstance(s, Launch):
                batch.append((self._launcher(s), (s.grid, 1), (s.block, 1, 1), _getter(s.args)))
                continue
            if batch:
                out.append(self._launch_all(tuple(batch)))
                batch = []
            out.append(self._control(s))
        if batch:
            out.append(self._launch_all(tuple(batch)))
        return out

    def _launch_all(self, launches: tuple) -> Callable[[list], None]:
        stream = self.stream

        def run(ptrs: list) -> None:
            for fn, grid, block, get in launches:
                fn(grid, block, stream, *get(ptrs))
        return run

    def _read_scalar(self, index: int) -> Callable[[list], Any]:
        host = np.empty(1, self.plan.buffers[index].dtype)
        driver = self.driver

        def read(ptrs: list):
            driver.copy_dtoh(host, ptrs[index])
            driver.synchronize()
            return host[0]
        return read

    def _control(self, s) -> Callable[[list], None]:
        if isinstance(s, Repeat):
            return self._repeat(s)
        if isinstance(s, WhileLoop):
            before, body, cond = self._build(s.before), self._build(s.body), self._read_scalar(s.cond)

            def run_while(ptrs: list) -> None:
                while True:
                    _run(before, ptrs)
                    if not cond(ptrs):
                        break
                    _run(body, ptrs)
            return run_while
        if isinstance(s, Branch):
            branches, index = [self._build(b) for b in s.branches], self._read_scalar(s.index)

            def run_branch(ptrs: list) -> None:
                _run(branches[min(max(int(index(ptrs)), 0), len(branches) - 1)], ptrs)
            return run_branch
        raise TypeError(f"unknown launch plan step {s!r}")

    def _repeat(self, s: Repeat) -> Callable[[list], None]:
        body, count, driver = self._build(s.body), s.count, self.driver
        if s.index is None:
            def run_repeat(ptrs: list) -> None:
                for _ in range(count):
                    _run(body, ptrs)
            return run_repeat
        # the iteration numbers live on the device as long as the executable: each iteration
        # copies its own device to device (asynchronous, and a graph can capture it)
        numbers = self.runtime.put(np.arange(count, dtype=self.plan.buffers[s.index].dtype))
        self._iteration_numbers.append(numbers)
        first, size, index = numbers.ptr, numbers.dtype.itemsize, s.index

        def run_indexed(ptrs: list) -> None:
            for k in range(count):
                driver.copy_dtod(ptrs[index], first + k * size, size)
                _run(body, ptrs)
        return run_indexed

    # -- one call
    def __call__(self, *inputs: Any, out: Sequence[Any] | None = None) -> list[CudaBuffer]:
        if out is not None:
            raise TypeError("CudaExecutable: out= is not supported; outputs are fresh GPU buffers")
        if len(inputs) != len(self._inputs):
            raise TypeError(f"program {self.program.name} takes {len(self._inputs)} inputs, got {len(inputs)}")
        rt, prefer, n = self.runtime, self._prefer, len(inputs)
        held = [self._input_buffer(k, x, prefer[k]) for k, x in enumerate(inputs)]
        outs = [CudaBuffer(rt, shape, dtype, prefer[n + j]) for j, (shape, dtype) in enumerate(self._outputs)]
        arena = rt.allocator.alloc(self.plan.arena_bytes, prefer[-1]) if self._temps else None
        mine = held + outs
        ptrs = [b.ptr for b in mine] + [b.ptr for b in self._constants]
        self._prefer = [(b.ptr, p[0]) for b, p in zip(mine, prefer)] + [(arena.ptr if arena else 0, prefer[-1][0])]
        if arena is not None:
            ptrs += [arena.ptr + offset for offset, _ in self._temps]
        try:
            with self._lock:
                if self._graphable and config.debug < 2 and graphs_enabled():
                    self._run_as_graph(ptrs)
                else:
                    steps = self._steps_for_call()
                    _run(steps, ptrs)
                    if steps is self._timed_steps:
                        self._report_timing()
        finally:
            if arena is not None:       # stream-ordered: the next user queues behind this call
                rt.allocator.free(arena)
        return outs

    # -- CUDA graphs
    def _run_as_graph(self, ptrs: list) -> None:
        """One call: replay the graph captured for exactly these pointers, else capture one
        if they were seen before, else plain launches (remembering the pointers)."""
        key = tuple(ptrs)
        graph = self._graphs.get(key)
        if graph is not None:
            if self._launch_graph(graph):
                self._graphs.move_to_end(key)
                self.graph_replays += 1
            else:
                _run(self._steps, ptrs)
            return
        if key not in self._seen:
            self._seen[key] = None
            if len(self._seen) > GRAPH_SEEN_SIZE:
                self._seen.popitem(last=False)
            _run(self._steps, ptrs)
            return
        del self._seen[key]
        if self.graph_captures >= GRAPH_GIVE_UP and self.graph_replays < self.graph_captures:
            self._graphs_failed(f"{self.graph_captures} graphs captured, {self.graph_replays} replayed: "
                                "the pointers of calls rarely recur (e.g. outputs kept alive)")
            _run(self._steps, ptrs)
            return
        graph = self._capture(ptrs)
        if graph is not None:
            self._graphs[key] = graph
            while len(self._graphs) > GRAPH_CACHE_SIZE:     # (in-flight graphs are freed when done)
                self._destroy_graph(self._graphs.popitem(last=False)[1])
        if graph is None or not self._launch_graph(graph):
            _run(self._steps, ptrs)      # nothing ran while capturing

    def _capture(self, ptrs: list) -> Any:
        """The launches of one call captured as a graph (not run), or None when capturing
        failed (then graphs are off for this executable; the stream captures no more)."""
        driver = self.driver
        try:
            driver.begin_capture()
        except Exception as e:
            self._graphs_failed(f"beginning a stream capture failed: {e}")
            return None
        try:
            _run(self._steps, ptrs)
        except BaseException as e:
            try:
                driver.abort_capture()
            except Exception as abort_error:
                raise CudaError(f"program {self.program.name}: a launch failed while capturing a CUDA graph "
                                f"({e}) and ending the capture failed too: {abort_error}") from e
            if not isinstance(e, Exception):
                raise
            self._graphs_failed(f"a launch failed while capturing: {e}")
            return None
        try:
            graph = driver.end_capture()
        except Exception as e:
            self._graphs_failed(f"ending the capture failed: {e}")
            return None
        self.graph_captures += 1
        _log(1, f"program {self.program.name}: captured CUDA graph {self.graph_captures} "
                f"({len(self._graphs) + 1} cached)")
        return graph

    def _launch_graph(self, graph: Any) -> bool:
        """Queue a cached ``graph``; False (graphs off for this executable, nothing queued)
        when the launch failed."""
        try:
            self.driver.launch_graph(graph)
            return True
        except Exception as e:
            self._graphs_failed(f"launching a graph failed: {e}")
            return False

    def _graphs_failed(self, why: str) -> None:
        _log(1, f"program {self.program.name}: CUDA graphs off for this program, plain launches from now on: {why}")
        self._graphable = False
        self._seen.clear()
        self._release_graphs()

    def _destroy_graph(self, graph: Any) -> None:
        try:
            self.driver.destroy_graph(graph)
        except Exception as e:
            _log(1, f"program {self.program.name}: destroying a CUDA graph failed: {e}")

    def _release_graphs(self) -> None:
        graphs = getattr(self, "_graphs", None)
        while graphs:
            self._destroy_graph(graphs.popitem()[1])

    def __del__(self) -> None:
        try:
            if not sys.is_finalizing():     # at exit the driver may be gone; the process ends anyway
                self._release_graphs()
        except Exception:
            pass

    def _input_buffer(self, k: int, x: Any, prefer: tuple = ()) -> CudaBuffer:
        name, dtype, shape, nbytes = self._inputs[k]
        buf = x._buffer if type(x) is CudaArray else x
        if type(buf) is not CudaBuffer:
            host = np.asarray(x)
            if host.dtype != dtype or host.nbytes != nbytes:
                raise TypeError(f"program {self.program.name}: input {k} ({name}) must be "
                                f"{dtype.name}{list(shape)}, got {host.dtype.name}{list(host.shape)}")
            return self.runtime.put(host, prefer)
        if buf.runtime is not self.runtime:
            raise placement_error(buf.runtime.device, self.device)
        if buf.dtype != dtype or buf.nbytes != nbytes:
            raise TypeError(f"program {self.program.name}: input {k} ({name}) must be "
                            f"{dtype.name}{list(shape)}, got {buf.dtype.name}{list(buf.shape)}")
        return buf


def _run(fns: list, ptrs: list) -> None:
    for fn in fns:
        fn(ptrs)


# --- from jaxprs: jit and eager operations ------------------------------------------------------

class HostExecutable:
    """A host executable (the reference path, or the CPU backend) taking and giving GPU buffers:
    inputs are read back (waiting for the GPU), outputs copied to it. ``on_host`` says why."""

    def __init__(self, run: Callable, device: Device, why: str) -> None:
        self.run, self.runtime, self.on_host = run, runtime(device), why
        self.launches_per_call = 0

    def __call__(self, *inputs: Any) -> list[CudaBuffer]:
        host = [x.to_numpy() if isinstance(x, CudaBuffer) else np.asarray(x) for x in inputs]
        return [self.runtime.put(np.asarray(o)) for o in self.run(*host)]


def host_fallback(run: Callable, device: Device, why: str = "no kernel-IR lowering") -> HostExecutable:
    """Wrap a host executable to take and give GPU buffers (see ``HostExecutable``)."""
    return HostExecutable(run, device, why)


_executables: dict[tuple, tuple] = {}


def call_jitted(jaxpr, consts: Sequence[Any], leaves: Sequence[Any], in_dtypes: Sequence[np.dtype],
                name: str) -> list[CudaArray] | None:
    """Run a jitted (const-free) jaxpr on the GPU of its arguments (``jit``'s GPU path); None
    when the arguments are committed to the CPU (the caller runs it there).

    The program is compiled once per (jaxpr, device, ``config.matmul_precision``: 'tf32'
    makes its float32 GEMMs tensor-core ones); the closed-over constants are copied to the
    device once.
    """
    device = common_device([*consts, *leaves])
    if device.platform != "cuda":
        return None
    key = (id(jaxpr), device.index, config.matmul_precision)
    entry = _executables.get(key)
    if entry is None or entry[0] is not jaxpr:
        from fgrad.compile.pipeline import compile_jaxpr
        run = compile_jaxpr(jaxpr, name, device=device)
        device_consts = [put(c, device) for c in consts]
        entry = _executables[key] = (jaxpr, run, device_consts)
    _, run, device_consts = entry
    args = [x if isinstance(x, CudaArray) else np.asarray(x, d) for x, d in zip(leaves, in_dtypes)]
    outs = run(*device_consts, *args)
    return [CudaArray._wrap(b, a) for b, a in zip(outs, jaxpr.out_avals)]


_eager_programs: dict[tuple, Callable] = {}


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, np.ndarray):
        return (value.dtype.str, value.shape, value.tobytes())
    return value


def _eager_aval(x: Any) -> ShapedArray:
    return x.aval if isinstance(x, Array) else get_aval(x)


def eager_apply(primitive, args: Sequence[Any], params: dict) -> Any:
    """One primitive on GPU arrays: a one-equation program, compiled once per signature."""
    device = common_device(args)
    if device.platform != "cuda":      # unreachable with a GPU operand: common_device raised
        raise placement_error(device, next(x.device for x in args if isinstance(x, CudaArray)))
    avals = tuple(_eager_aval(x) for x in args)
    try:
        key = (primitive, _freeze(params), avals, device.index)
        hash(key)
    except TypeError:
        key = None
    if key is not None and primitive in _native_rules:
        key = (key, config.matmul_precision)
    run = _eager_programs.get(key) if key is not None else None
    if run is None:
        native = _native_rules.get(primitive)
        run = native(avals, params, device) if native is not None else None
        if run is None:
            run = _compile_eager(primitive, avals, params, device)
        if key is not None:
            _eager_programs[key] = run
    rt = runtime(device)
    outs = run(*[x if type(x) is CudaArray else _operand_buffer(rt, x, a) for x, a in zip(args, avals)])
    if primitive.multiple_results:
        return outs
    return outs[0]


_scalar_buffers: dict[tuple, CudaBuffer] = {}
SCALAR_CACHE_SIZE = 512


def _operand_buffer(rt: CudaRuntime, x: Any, aval: ShapedArray) -> Any:
    """A host operand of an eager op on the GPU. Scalars (``x + 1``) are kept on the device by
    value, so repeated constants cost no copy (programs never write their inputs)."""
    value = np.asarray(x._value if isinstance(x, Array) else x, aval.dtype)
    if value.ndim:
        return value
    key = (rt.device.index, value.dtype.str, value.tobytes())
    buf = _scalar_buffers.get(key)
    if buf is None or buf.runtime is not rt:
        if len(_scalar_buffers) >= SCALAR_CACHE_SIZE:
            _scalar_buffers.clear()
        buf = _scalar_buffers[key] = rt.put(value)
    return buf


def _compile_eager(primitive, avals: tuple, params: dict, device: Device) -> Callable:
    from fgrad.core.trace import trace_to_jaxpr
    from fgrad.compile.pipeline import compile_jaxpr
    from fgrad.transforms.jit import closure_convert

    def one(*xs):
        out = primitive.bind(*xs, **params)
        return list(out) if primitive.multiple_results else [out]
    closed, consts = closure_convert(trace_to_jaxpr(one, list(avals), dce=False))
    run = compile_jaxpr(closed, f"eager_{_c_name(primitive.name)}", device=device)
    device_consts = [put(c, device) for c in consts]
    out_avals = closed.out_avals

    def call(*xs):
        outs = run(*device_consts, *xs)
        return [CudaArray._wrap(b, a) for b, a in zip(outs, out_avals)]
    return call


def _c_name(name: str) -> str:
    return re.sub(r"\W", "_", name)


# --- native kernels: CUDA C templates for primitives the kernel IR cannot express well -----------

class NativeGemm:
    """A compiled ``fgrad.lower.cuda_contraction`` GEMM on one GPU: ``call(a, b) -> [CudaArray]``."""

    def __init__(self, spec, out_aval: ShapedArray, device: Device) -> None:
        from fgrad.lower.cuda_contraction import render_gemm
        self.spec, self.out_aval, self.runtime = spec, out_aval, runtime(device)
        name = f"fg_gemm_{spec.precision}"
        source, self.grid, self.block = render_gemm(spec, name)
        if config.debug >= 4:
            print(source, file=sys.stderr, flush=True)
        driver = self.runtime.driver
        module = driver.load_module(compile_source(self.runtime, source), {name: spec})
        self._launch = driver.launcher(module, name, 3)

    def __call__(self, a: Any, b: Any) -> list:
        rt = self.runtime
        bufs = [x._buffer if isinstance(x, CudaArray) else rt.put(np.asarray(x, self.spec.dtype)) for x in (a, b)]
        for buf in bufs:
            if buf.runtime is not rt:
                raise placement_error(buf.runtime.device, rt.device)
        out = CudaBuffer(rt, self.out_aval.shape, self.out_aval.dtype)
        self._launch(self.grid, self.block, rt.stream, bufs[0].ptr, bufs[1].ptr, out.ptr)
        return [CudaArray._wrap(out, self.out_aval)]


def _native_dot_general(avals: tuple, params: dict, device: Device) -> Callable | None:
    """A tiled GEMM (TF32 tensor cores under ``config.matmul_precision == 'tf32'``) for a float
    ``dot_general`` with at most one batch, free and contracting dimension per operand."""
    from fgrad.core.trace import _cached_abstract_eval
    from fgrad.lower.cuda_contraction import GemmSpec
    from fgrad.ops.contraction import dot_general_p
    lhs, rhs = avals
    dtype = lhs.dtype
    if rhs.dtype != dtype or dtype.kind != "f" or dtype.itemsize not in (4, 8) or 0 in lhs.shape + rhs.shape:
        return None
    if params.get("preferred_element_type") not in (None, dtype):
        return None
    precision = config.matmul_precision if dtype == np.float32 else "highest"
    try:
        spec = GemmSpec.for_dot_general(lhs.shape, rhs.shape, params["dimension_numbers"], dtype, precision)
    except ValueError:
        return None
    if spec is None:
        return None
    out_aval = _cached_abstract_eval(dot_general_p, list(avals), params)
    return NativeGemm(spec, out_aval, device)


def _native_rules_table() -> dict:
    from fgrad.ops.contraction import dot_general_p
    return {dot_general_p: _native_dot_general}


_native_rules: dict = _native_rules_table()
