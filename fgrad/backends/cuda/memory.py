"""GPU memory: the caching allocator, a GPU's runtime (driver, stream, allocator) and the
buffers it hands out.

``CachingAllocator``: size-class free lists over the driver's ``mem_alloc``; nothing is
preallocated, freed blocks are kept for reuse (safe without events: all work of a device
runs on its one stream, in order). ``live_bytes`` / ``peak_bytes`` / ``cached_bytes``.
"""
from __future__ import annotations

import atexit
import math
import threading
from typing import Any, Sequence

import numpy as np

from fgrad.backends.base import Buffer, Device

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

    def put(self, host: np.ndarray, prefer: Sequence[int] = ()) -> CudaBuffer:
        """Copy a host array to a fresh device buffer (queued; returns at once); ``prefer``
        as for ``CachingAllocator.alloc``."""
        shape = np.shape(host)
        host = np.ascontiguousarray(host)       # (0-d arrays come back 1-d: keep the shape)
        buf = CudaBuffer(self, shape, host.dtype, prefer)
        if host.nbytes:
            self.driver.copy_htod(buf.ptr, host)
        return buf

    def empty(self, shape: tuple, dtype: np.dtype) -> CudaBuffer:
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

