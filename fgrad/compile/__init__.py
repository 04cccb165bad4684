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

import time
from typing import Callable

from fgrad.compile import gpu
from fgrad.compile.cache import ExecutableCache, executables
from fgrad.compile.pipeline import (compile_jaxpr, compiled_by_path, fall_back_to_reference, native_enabled,
                                    reference_executable)
from fgrad.config import config
from fgrad.core.ir import ClosedJaxpr

__all__ = ["gpu", "ExecutableCache", "executables", "compile_jaxpr", "compiled_by_path", "executable_for",
           "fall_back_to_reference", "native_enabled", "reference_executable"]


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
    run = compile_jaxpr(jaxpr, donated=donated, device=device)
    if config.debug >= 1:
        print(f"[fgrad] compiled {len(jaxpr.eqns)} equations in {time.perf_counter() - start:.3f}s", flush=True)
    return run
