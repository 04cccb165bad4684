"""From CUDA C to a loaded image: compiler options, the compiled-image caches (memory and
disk), splitting a program's source into modules that compile in parallel, and the limit on
per-thread locals above which a program runs on the host instead.

``compile_source`` compiles with the driver's compiler (NVRTC in-process, else pycuda's
``nvcc``); images are cached in memory and in ``$FGRAD_CACHE_DIR/cuda`` (default
``~/.cache/fgrad``; ``off`` disables), keyed by a hash of the source, the architecture, the
options and the compiler; a corrupt entry is rebuilt.
"""
from __future__ import annotations

import hashlib
import os
import time
from typing import Sequence

import numpy as np

from fgrad.backends.cuda.memory import CudaRuntime
from fgrad.backends.cuda.util import CudaError, lock as _lock, log as _log
from fgrad.backends.disk_cache import DiskCache
from fgrad.lower.cuda import kernels_by_name
from fgrad.lower.kernel import DefineLocal, Program, walk_stmts

CACHE_VERSION = "fgrad-cuda-1"
_MAGIC = b"FGRADCUBIN1\n"
_disk_cache = DiskCache("cuda", _MAGIC, lambda level, message: _log(level, message))

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
    path = _disk_cache.entry(key, ".cubin")
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

