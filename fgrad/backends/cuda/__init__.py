"""The CUDA backend: kernel IR programs rendered to CUDA C (``fgrad.lower.cuda``), compiled
to a cubin, and launched on one stream per GPU.

A package split by concern, bottom up (each module imports only those above it here):

* ``util``: ``CudaError``, the debug log, the backend's lock.
* ``nvrtc``: NVRTC through ctypes (CUDA C -> cubin in-process); ``graphs``: the driver's
  CUDA-graph calls through ctypes, and replaying a program's launches as a graph.
* ``driver``: ``PycudaDriver``, every GPU call fgrad makes (the ``fgrad.backends.base.Driver``
  interface, which the tests' fake drivers implement too).
* ``memory``: ``CachingAllocator``, ``CudaRuntime`` (a GPU's driver, stream and allocator),
  ``CudaBuffer``.
* ``compiler``: compiler options, the compiled-image caches (memory and disk), splitting a
  program into modules that compile in parallel.
* ``devices``: ``gpu_devices``, ``CudaDevice``, ``use_driver``, ``runtime(device)``.
* ``arrays``: ``CudaArray`` (data stay on the GPU until read), ``put``, ``common_device``.
* ``executable``: ``compile_program`` -> ``CudaExecutable`` (runs a launch plan; CUDA graphs),
  ``HostExecutable`` for programs that run on the host.
* ``gemm``: ``NativeGemm``, a CUDA C GEMM template for eager ``dot_general``.
* ``nccl`` and ``collectives``: NCCL bindings and the communicator GPU meshes use.

Turning jaxprs into programs (``jit`` on a GPU, eager per-primitive programs) is the compile
layer's: ``fgrad.compile.gpu``. This backend never imports it; ``arrays.set_eager_apply`` is
the hook through which it runs eager operations on ``CudaArray``s.
"""
from fgrad.backends.cuda.arrays import CudaArray, common_device, placement_error, put, set_eager_apply
from fgrad.backends.cuda.compiler import (CACHE_VERSION, compile_options, compile_source, compile_workers,
                                          kernels_with_large_locals, max_local_bytes, source_key, split_source)
from fgrad.backends.cuda.devices import (CudaDevice, gpu_count, gpu_devices, local_gpu_devices, on_driver_change,
                                         process_gpus, runtime, use_driver)
from fgrad.backends.cuda.driver import PycudaDriver, in_context
from fgrad.backends.cuda.executable import (CudaBackend, CudaExecutable, HostExecutable, backend, compile_program,
                                            host_fallback)
from fgrad.backends.cuda.gemm import NativeGemm, native_dot_general
from fgrad.backends.cuda.graphs import CudaGraphApi, graph_api, graph_launches, graphs_enabled
from fgrad.backends.cuda.memory import Block, CachingAllocator, CudaBuffer, CudaRuntime, size_class
from fgrad.backends.cuda.nvrtc import Nvrtc, find_nvrtc
from fgrad.backends.cuda.util import CudaError

__all__ = [
    "backend", "Block", "CACHE_VERSION", "CachingAllocator", "common_device", "compile_options",
    "compile_program", "compile_source", "compile_workers", "CudaArray", "CudaBackend", "CudaBuffer",
    "CudaDevice", "CudaError", "CudaExecutable", "CudaGraphApi", "CudaRuntime", "find_nvrtc", "gpu_count",
    "gpu_devices", "graph_api", "graph_launches", "graphs_enabled", "host_fallback", "HostExecutable",
    "in_context", "kernels_with_large_locals", "local_gpu_devices", "max_local_bytes", "native_dot_general",
    "NativeGemm", "Nvrtc", "on_driver_change", "placement_error", "process_gpus", "put", "PycudaDriver",
    "runtime", "set_eager_apply", "size_class", "source_key", "split_source", "use_driver",
]
