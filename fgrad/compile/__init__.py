"""The one compile path: a jaxpr, lowered for a target, compiled by a backend, cached.

    closed jaxpr ──lower.rules.lower_program(target)──▶ kernel-IR program
                 ──backends.cpu.compile_program / backends.cuda.compile_program──▶ executable

``pipeline.compile_jaxpr`` does one compilation (CPU or a GPU ``device``), with the
reference-path fallback (warned) and the split around ``shard`` calls; ``executable_for``
is the cached entry point ``jit`` uses, backed by the process's one bounded executable
cache (``cache.executables``). ``gpu`` holds the GPU's entry points (a jitted call on
GPU arguments, eager per-primitive programs), which compile through the same cache.
"""
from __future__ import annotations

import contextlib
import gc
import threading
import time
from typing import Callable, Iterator

from fgrad.compile import gpu
from fgrad.compile.cache import ExecutableCache, executables
from fgrad.compile.pipeline import (compile_jaxpr, compiled_by_path, fall_back_to_reference, native_enabled,
                                    reference_executable)
from fgrad.config import config
from fgrad.core.ir import ClosedJaxpr

__all__ = ["gpu", "ExecutableCache", "executables", "collector_paused", "compile_jaxpr", "compiled_by_path",
           "executable_for", "fall_back_to_reference", "native_enabled", "reference_executable"]

_pause_lock = threading.Lock()
_pauses = 0                 # how many pauses (of any thread) are under way
_resume = False             # whether the last pause to end turns the collector back on


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while tracing and compiling: those phases make
    hundreds of thousands of short-lived objects, so the collector ran again and again over
    every object the process holds (30-35% of a GPT step's compile: 0.18 s of 0.52 s at 4
    layers, 0.5 s of 1.6 s at 12). Reference counting still frees nearly all of it; the rest
    waits for the collector's next run. Re-entrant and shared by threads (the last pause to
    end turns it back on), and a collector the program had turned off stays off."""
    global _pauses, _resume
    with _pause_lock:
        if _pauses == 0:
            _resume = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pauses -= 1
            if _pauses == 0 and _resume:
                gc.enable()


def executable_for(jaxpr: ClosedJaxpr, donated: tuple = (), device=None,
                   on_evict: Callable[[], None] | None = None) -> Callable[..., list]:
    """The compiled program for a const-free jaxpr on ``device`` (the CPU when None), compiled
    on first use and then taken from the executable cache; ``donated`` inputs (indices) may
    have their buffers reused for outputs. ``on_evict`` is called if the cache drops it."""
    key = ("program", id(jaxpr), donated, device)
    return executables.get_or_compile(key, lambda: _compile_timed(jaxpr, donated, device),
                                      keep_alive=jaxpr, on_evict=on_evict)


def _compile_timed(jaxpr: ClosedJaxpr, donated: tuple, device) -> Callable[..., list]:
    start = time.perf_counter()
    with collector_paused():
        run = compile_jaxpr(jaxpr, donated=donated, device=device)
    if config.debug >= 1:
        print(f"[fgrad] compiled {len(jaxpr.eqns)} equations in {time.perf_counter() - start:.3f}s", flush=True)
    return run
