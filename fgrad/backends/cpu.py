"""The CPU backend: kernel IR programs compiled by LLVM (llvmlite MCJIT) for the host.

``compile_program(program)`` compiles each *distinct* kernel of the program once: kernels are
named by their structure (``kernel_symbol``: their text with params by position, so the
identical layers of a model share one kernel), each is rendered to an LLVM module of its own
(``fgrad.lower.llvm.render_kernel_module``) and optimised for the host CPU name and features
(``llvm_worker.PIPELINES``: LLVM's O3, without its loop passes for kernels fgrad has
register-tiled itself) by ``llvm_pool``'s worker processes while this one renders the next.
The program's entry function calls the kernels by symbol. The result is a ``CpuExecutable``
whose call is ONE native call: a generated wrapper, a CPython function of its own
(``native_call``), takes the NumPy arrays themselves (reading each array's data pointer from
the ndarray struct), so the per-call Python work is checking inputs and allocating outputs.

Caches: kernels and entry functions are kept in memory (a kernel loaded once serves every
program calling it) and as object files in ``$FGRAD_CACHE_DIR/llvm`` (default
``~/.cache/fgrad``; ``FGRAD_CACHE_DIR=off`` disables it) with a checksum; a corrupt entry is
rebuilt. ``compile_program(..., save_as=key)`` also saves the program's manifest, from which
``load_program(key)`` rebuilds the executable in a later process without the program (a warm
start). External routines a program calls (``ExternCall``: LAPACK) are named by symbol in the
object code and bound to their addresses in this process before it is loaded
(``fgrad.lower.extern``); a program calling a host callback (``fgrad.lower.host_callback``)
keeps its entry in memory only, and raises the callback's exception once the native call
returns. Threads: ``FGRAD_NUM_THREADS`` (default: all cores)
for ``parallel`` loops, run by the pool in ``threadpool`` (its object code is cached on disk
beside the kernels, ``threadpool_*.pool``); ``thread_budget(n)`` lowers
that for the programs compiled inside it (each virtual device compiles its programs
with its share of the cores, ``share_of_threads``).

Debugging (``FGRAD_DEBUG`` or ``fgrad.config.debug``): 1 logs compiles and cache
misses, 2 prints each kernel's time per call (a timing build of the program),
3 prints the kernel IR, 4 the LLVM IR.
"""
from __future__ import annotations

import collections
import contextlib
import contextvars
import ctypes
import functools
import hashlib
import mmap
import os
import pickle
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import llvmlite.binding as llvm
from fgrad.lower import llvm_ir as ir
import numpy as np

from fgrad.backends.disk_cache import DiskCache
from fgrad.backends import background, llvm_pool, llvm_worker, native_call, threadpool, tiers
from fgrad.backends.base import Device, Executable
from fgrad.config import config, positive_int_env
from fgrad.lower.extern import raise_pending_error, routine_address
from fgrad.lower.host_callback import is_callback_symbol
from fgrad.lower.kernel import (
    FULL, Buffer, ExternCall, Kernel, Program, Range, calls_per_run, format_kernel, format_program, kernels_of,
    plan_memory, short_name, walk_steps, walk_stmts,
)
from fgrad.lower.target import LoweringTarget
from fgrad.lower.llvm import (
    ENTRY, I64, KERNEL_TABLE, Target, call_sites, kernel_slots, render_kernel_module, render_program,
    vector_bytes_for,
)
from fgrad.lower.llvm_loops import estimated_ops

CPU = Device("cpu", 0)
CACHE_VERSION = "fgrad-llvm-3"
_MAGIC = b"FGRADOBJ1\n"
_lock = threading.RLock()
_memory_cache: dict[str, "_Code"] = {}


# --- LLVM set-up ------------------------------------------------------------------------

def _init_llvm() -> None:
    llvm_worker.init_llvm()


# The thread budget of the programs compiled in this context (this thread, or an asyncio task):
# set by ``thread_budget``, e.g. for each virtual device's share of the cores. None: no limit.
_thread_budget: contextvars.ContextVar[int | None] = contextvars.ContextVar("fgrad_thread_budget",
                                                                          default=None)


@contextlib.contextmanager
def thread_budget(threads: int) -> Iterator[int]:
    """Within the block (on this thread only), CPU programs are lowered and compiled for at
    most ``threads`` threads; yields the effective count (``num_threads()``).

    The count is part of the compiled program (its parallel loops and GEMM tiling are chosen
    for it), so a program compiled inside the block keeps its budget wherever it is called:

        >>> with thread_budget(1):          # doctest: +SKIP
        ...     exe = compile_program(program)  # single-threaded code
    """
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"thread_budget: threads must be a positive integer, got {threads!r}")
    token = _thread_budget.set(int(threads))
    try:
        yield num_threads()
    finally:
        _thread_budget.reset(token)


def share_of_threads(parts: int) -> int:
    """Threads for each of ``parts`` programs running at once: ``num_threads() // parts``, at
    least 1 (so N virtual devices on N cores each run single-threaded, side by side)."""
    if isinstance(parts, bool) or not isinstance(parts, (int, np.integer)) or parts < 1:
        raise ValueError(f"share_of_threads: parts must be a positive integer, got {parts!r}")
    return max(1, num_threads() // int(parts))


def num_threads() -> int:
    """Threads for parallel loops: ``FGRAD_NUM_THREADS``, else the number of usable cores; at
    most the budget set by an enclosing ``thread_budget``."""
    budget = _thread_budget.get()
    total = _configured_threads()
    return total if budget is None else min(total, budget)


def _configured_threads() -> int:
    configured = positive_int_env("FGRAD_NUM_THREADS")
    if configured is not None:
        return configured
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


#: CPU features LLVM is told this CPU lacks although it has them: AMD's SSE4a (``extrq``,
#: ``insertq``) are legacy-SSE instructions that LLVM mixes into AVX code; on an AMD Zen 3 one
#: ``extrq`` per row in a vectorised loop made the MNIST step's max-pool gradient 5x slower
#: (13.5 ms at 8 lanes instead of 2.7)
DISABLED_FEATURES = ("sse4a",)


def _usable_features(features: str) -> str:
    return ",".join(f"-{f[1:]}" if f[1:] in DISABLED_FEATURES and f.startswith("+") else f
                    for f in features.split(",") if f)


def host_target(threads: int | None = None) -> Target:
    """The target for this machine (CPU name and features from LLVM's host detection)."""
    _init_llvm()
    features = _usable_features(llvm.get_host_cpu_features().flatten())
    threads = num_threads() if threads is None else threads
    return Target(llvm.get_process_triple(), llvm.get_host_cpu_name(), features,
                  vector_bytes_for(features), threads)


def lowering_target() -> LoweringTarget:
    """What the lowering needs to know about this CPU now: its vector width and the threads a
    parallel loop may use (``num_threads``, within an enclosing ``thread_budget``)."""
    target = host_target()
    return LoweringTarget("cpu", vector_bytes=target.vector_bytes, threads=target.num_threads)


_machines: dict[str, llvm.TargetMachine] = {}


def target_machine(target: Target, *, fresh: bool = False) -> llvm.TargetMachine:
    """An O3 LLVM target machine for ``target`` (cached unless ``fresh``: an execution engine
    takes ownership of its target machine, so each engine gets its own)."""
    tm = None if fresh else _machines.get(target.key())
    if tm is None:
        tm = llvm_worker.make_target_machine(target.triple, target.cpu, target.features)
        if not fresh:
            _machines[target.key()] = tm
    return tm


def _ensure_runtime(target: Target) -> None:
    """Make the symbols generated code calls (the thread pool's entry point) resolvable."""
    if target.num_threads > 1:
        # as many pools as programs of this budget fit on the machine at once (one per device)
        pools = max(1, _configured_threads() // target.num_threads)
        address = threadpool.ensure_pool(target.num_threads, lambda: target_machine(target, fresh=True),
                                         lambda: _pool_object(target), pools)
        llvm.add_symbol("fgrad_parallel", address)
    native_call.bind_symbols()


def _pool_object(target: Target) -> bytes:
    """The thread pool's object code, from the disk cache when there (building it with LLVM
    takes ~25 ms of every new process's first call)."""
    key = hashlib.sha256("\n".join((_VERSION, target.triple, target.cpu, target.features)).encode())
    path = _disk_cache.entry("threadpool_" + key.hexdigest()[:40], ".pool")
    obj = _disk_cache.read(path) if path is not None else None
    if obj is None:
        obj = threadpool.compile_pool(target.triple, target_machine(target, fresh=True))
        _disk_cache.write(path, obj)
    return obj


def extern_routines(program: Program) -> list[str]:
    """The external routines (``ExternCall``: LAPACK, BLAS) the program's entry calls by symbol."""
    return sorted({s.routine for s in walk_steps(program.body) if isinstance(s, ExternCall)})


def _bind_externs(symbols: Sequence[str]) -> None:
    """Bind each external routine's symbol to its address in this process, for the loader
    (the cached object code names the routine, never an address)."""
    for symbol in symbols:
        llvm.add_symbol(symbol, routine_address(symbol))


# --- compilation and caches ---------------------------------------------------------------

class _Code:
    """Loaded machine code for one program text: its engine and the engines of the kernels it
    calls (kept alive while the code is), and its entry points."""

    def __init__(self, engine: llvm.ExecutionEngine, kernel_engines: list, nargs: int,
                 timing_sites: int, slots: Sequence[str] = ()) -> None:
        self.engine = engine
        self.kernel_engines = kernel_engines
        #: set by the first call of a program whose tiered kernels' final builds wait for it
        self.first_call: threading.Event | None = None
        #: the entry's kernel table (``KERNEL_TABLE``): slot k calls kernel ``slots[k]``
        self.slots = list(slots)
        self.table = (ctypes.c_void_p * max(len(self.slots), 1)).from_address(
            engine.get_global_value_address(KERNEL_TABLE)) if self.slots else None
        #: the native wrapper (``native_call.add_wrapper``) as Python functions: ``call_objects`` leaves the
        #: outputs writeable, ``call_fresh`` marks them read-only; None without a wrapper
        self.call_objects = self.call_fresh = None
        self._method_definitions: list = []
        if native_call.LAYOUT is not None:
            address = engine.get_function_address("fgrad_call")
            self.call_objects = native_call.python_function(address, False, self._method_definitions)
            self.call_fresh = native_call.python_function(address, True, self._method_definitions)
        self.call_pointers = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(engine.get_function_address(ENTRY))
        self.timing_sites = timing_sites
        if timing_sites:
            self.cycles = (ctypes.c_int64 * timing_sites).from_address(
                engine.get_global_value_address("fgrad_cycles"))
            self.calls = (ctypes.c_int64 * timing_sites).from_address(
                engine.get_global_value_address("fgrad_calls"))


def _log(level: int, message: str) -> None:
    if config.debug >= level:
        print(f"[fgrad cpu] {message}", file=sys.stderr, flush=True)


_disk_cache = DiskCache("llvm", _MAGIC, lambda level, message: _log(level, message))

#: LLVM's optimisation pipeline (``llvm_worker.PIPELINES``) for programs' entry functions
ENTRY_PIPELINE = "entry"


#: a kernel estimated to do fewer scalar ops per call than this (``estimated_ops``) is compiled
#: with LLVM's "quick" pipeline unless it is register-tiled (see ``llvm_worker.PIPELINES``).
#: Measured per kernel with ``benchmarks/kernel_pipelines.py`` (2026-12-06, MNIST step, 1
#: thread): "quick" code runs 1.1-12x slower than "O3" (a threefry loop LLVM vectorises 12x,
#: max-pool 1.8-3x, sums 1.6-2.5x); below this bound a kernel's O3 run time is a few
#: microseconds, so that costs nothing one can see, while its LLVM time drops 2-5x.
QUICK_KERNEL_OPS = 1 << 20

_PIPELINE_CHOICES = ("auto", "O3", "tiled", "quick", "tiled-first", "O3-first")


def tiered() -> bool:
    """``FGRAD_TIERED`` (default on): compile heavy kernels quick first and their final builds
    in the background. Off ("0"), every kernel is compiled with its final pipeline before
    the first call; a forced pipeline (``FGRAD_LLVM_KERNEL_PIPELINE``) or per-kernel timing
    (``FGRAD_DEBUG=2``) also turn it off. Without compile workers (one core, or
    ``FGRAD_COMPILE_WORKERS=0``) the final builds are compiled by the background thread itself."""
    value = os.environ.get("FGRAD_TIERED", "1").strip().lower()
    if value not in ("0", "1", "off", "on", "false", "true", ""):
        raise ValueError(f"FGRAD_TIERED must be 1 (on) or 0 (off), got {value!r}")
    # FGRAD_DEBUG=2 times each kernel: the times should be those of the code that stays
    return value not in ("0", "off", "false") and forced_pipeline() == "auto" and config.debug < 2


def forced_pipeline() -> str:
    """``FGRAD_LLVM_KERNEL_PIPELINE``: "auto" (the default: ``kernel_pipeline`` chooses per
    kernel), or "O3", "tiled", "quick", "tiled-first" or "O3-first" for every kernel, to measure
    what the choice costs."""
    forced = os.environ.get("FGRAD_LLVM_KERNEL_PIPELINE", "auto")
    if forced not in _PIPELINE_CHOICES:
        raise ValueError(f"FGRAD_LLVM_KERNEL_PIPELINE must be one of {', '.join(map(repr, _PIPELINE_CHOICES))}, "
                         f"got {forced!r}")
    return forced


def saved_program_salt() -> str:
    """What a saved program's key must add to the target's: the forced pipeline, and where
    an ndarray object keeps its type, data pointer and flags (the entry's wrapper reads them
    there), so a program saved under another NumPy or setting is never loaded."""
    return f"pipeline={forced_pipeline()}|layout={native_call.LAYOUT}"


def kernel_pipeline(kernel: Kernel) -> str:
    """LLVM's optimisation pipeline for ``kernel`` (``llvm_worker.PIPELINES``): "tiled" for a
    kernel fgrad has vectorised and register-tiled itself (a fully unrolled vector loop: GEMM
    micro-kernels, panel packing), "quick" for one with little work (``QUICK_KERNEL_OPS``),
    else "O3"; unless ``forced_pipeline`` names one."""
    forced = forced_pipeline()
    if forced != "auto":
        return forced
    if any(isinstance(s, Range) and s.unroll == FULL and s.vectorize for s in walk_stmts(kernel.body)):
        return "tiled"
    return "quick" if estimated_ops(kernel.body) < QUICK_KERNEL_OPS else "O3"


#: every distinct kernel loaded in this process, by symbol: the engine holding its code and the
#: address programs' kernel tables point at (a tiered kernel's quick build, until its final
#: build replaces it)
_kernel_engines: dict[str, llvm.ExecutionEngine] = {}
_kernel_addresses: dict[str, int] = {}
#: tiered kernels whose final build is still being compiled, and the (code, slot) of every
#: kernel table that waits for it
_waiting: dict[str, list[tuple[weakref.ref, int]]] = {}

#: kernels by where their code came from ("compiled", "disk", "memory"); tests read it
kernel_sources: collections.Counter = collections.Counter()


def _code_version() -> str:
    """A hash of the code that decides what machine code a program becomes, so that a
    changed renderer never loads stale objects from the disk cache."""
    h = hashlib.sha256(CACHE_VERSION.encode() + llvm.llvm_version_info.__repr__().encode())
    renderer = sorted((Path(__file__).resolve().parent.parent / "lower").glob("*.py"))   # every file of the lowering
    for path in [*renderer, Path(threadpool.__file__), Path(llvm_worker.__file__), Path(native_call.__file__),
                 Path(__file__)]:
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


_VERSION = _code_version()


def program_key(program: Program, target: Target, timing: bool, symbols: dict[int, str]) -> str:
    """The cache key of a program's entry: a hash of its text with each call naming its kernel's
    symbol (``kernel_symbol``, which stands for the kernel's structure), the target and the
    renderer's code."""
    text = "\n".join((_VERSION, target.key(), f"timing={timing}", str(native_call.LAYOUT),
                      format_program(program, kernel_names=symbols)))
    return hashlib.sha256(text.encode()).hexdigest()


def kernel_symbol(kernel: Kernel, target: Target) -> str:
    """The name a kernel's code is exported and cached under: a hash of its structure (its
    text with params named by position, so kernels that differ only in the buffers they are
    called on share it), the target, a forced pipeline and the renderer's code (``auto``
    pipelines are a function of the structure: no need to work them out for every call site).
    Kernels equal in params and body (the same layer's kernel in each layer of a model: their
    expressions are shared objects, so comparing them is cheap) take the symbol already worked
    out rather than printing the kernel again."""
    memo_key = (target.key(), forced_pipeline(), kernel.params, kernel.may_alias, kernel.body)
    symbol = _symbols.get(memo_key)
    if symbol is None:
        text = "\n".join((_VERSION, memo_key[0], memo_key[1], format_kernel(kernel, structural=True)))
        symbol = "fgk_" + hashlib.sha256(text.encode()).hexdigest()[:40]
        if len(_symbols) >= _SYMBOLS_MAX:
            _symbols.clear()
        _symbols[memo_key] = symbol
    return symbol


#: ``kernel_symbol``'s results by target, pipeline and kernel structure; cleared when full (a 12-layer
#: GPT step fills 548 entries, which hold about 32,000 objects alive)
_symbols: dict[tuple, str] = {}
_SYMBOLS_MAX = 1 << 12


def _compile(program: Program, target: Target, timing: bool, tier: bool = True) -> tuple[_Code, str, list[str]]:
    """Machine code for ``program`` (from the memory cache, or its entry function and each
    distinct kernel from the memory cache, the disk cache or LLVM), the entry's key and the
    kernels' symbols (in the order of its kernel table). ``tier`` False: never tiered."""
    kernels = kernels_of(program)
    symbols = {id(k): kernel_symbol(k, target) for k in kernels}
    key = program_key(program, target, timing, symbols)
    distinct = {symbols[id(k)]: k for k in kernels}
    with _lock:
        if config.debug >= 3:
            print(format_program(program), file=sys.stderr, flush=True)
        hit = _memory_cache.get(key)
        if hit is not None:
            return hit, key, list(distinct)
        t0 = time.perf_counter()
        new = {sym: k for sym, k in distinct.items() if sym not in _kernel_addresses}
        kernel_sources["memory"] += len(distinct) - len(new)
        entry = _EntryJob(program, target, timing, symbols, key)
        objects, quick_first = _objects(new, entry, target, tier)
        for sym in quick_first:
            _waiting.setdefault(sym, [])
        reused = [_kernel_engines[s] for s in distinct if s not in new]
        code = _load(objects.pop(entry.name), objects, list(new), reused, target, len(program.externals) + 1,
                     len(call_sites(program)) if timing else 0, extern_routines(program),
                     kernel_slots(program, symbols))
        if quick_first:
            # the final builds wait for the program's first call (or FIRST_CALL_WAIT_S), so that
            # compiling them does not slow that call down on the same cores
            code.first_call = threading.Event()
        for sym, (text, pipeline) in quick_first.items():
            background.compiler.submit(sym, text, target, pipeline, functools.partial(_final_build, sym, target),
                                       after=code.first_call)
        _memory_cache[key] = code
        _log(1, f"program {program.name}: {len(kernels)} kernels, {len(distinct)} distinct "
                f"({len(distinct) - len(new)} already loaded); ready in {time.perf_counter() - t0:.3f}s"
                + (f"; {len(quick_first)} run quick builds until their final builds, compiling in the "
                   "background, replace them" if quick_first else ""))
        return code, key, list(distinct)


class _EntryJob:
    """The program's entry function (its steps: calls of the kernels' symbols) as a compile job."""

    def __init__(self, program: Program, target: Target, timing: bool, symbols: dict, key: str) -> None:
        self.program, self.target, self.timing, self.symbols = program, target, timing, symbols
        self.name = f"entry_{key}"
        # a host callback's symbol names a function of this process: such an entry is never kept on disk
        in_memory_only = any(is_callback_symbol(r) for r in extern_routines(program))
        self.path = None if in_memory_only else _disk_cache.entry(key, ".o")

    def text(self) -> str:
        module = render_program(self.program, self.target, timing=self.timing, symbols=self.symbols).module
        if native_call.LAYOUT is not None:
            first_output = len(self.program.inputs)
            outputs = range(first_output, first_output + len(self.program.outputs))
            native_call.add_wrapper(module, len(self.program.externals) + 1, outputs)
        return str(module)


def _objects(kernels: dict[str, Kernel], entry: _EntryJob, target: Target,
             tier: bool = True) -> tuple[dict[str, bytes], dict[str, tuple[str, str]]]:
    """Object code of the entry (under ``entry.name``) and of each kernel: from the disk cache,
    else rendered here and compiled by ``llvm_pool`` (in worker processes, in parallel) and
    written to the disk cache. An object may hold a group of small kernels (``_grouped_jobs``),
    named by its group's key. With ``tiered()``, kernels ``_tiers`` picks are compiled quick
    and not cached; they are returned too, ``{symbol: (text, final pipeline)}``, for the
    background compile of their final builds."""
    entry_obj = _disk_cache.read(entry.path) if entry.path and config.debug < 4 else None
    objects, missing = _read_kernels(kernels) if config.debug < 4 else ({}, list(kernels))
    kernel_sources["disk"] += len(kernels) - len(missing)
    if entry_obj is not None:
        objects[entry.name] = entry_obj
    if not missing and entry_obj is not None:
        return objects, {}
    t0 = time.perf_counter()
    quick_first: dict[str, str] = {}       # the tiered kernels' first pipelines
    if tier and tiered():
        calls: collections.Counter = collections.Counter()
        for call, times in calls_per_run(entry.program.body):
            calls[entry.symbols[id(call.kernel)]] += times
        compilers = llvm_pool.worker_count() + 1
        first = {name: tiers.first_build(kernels[name], kernel_pipeline(kernels[name]), calls[name],
                                         target.num_threads, compilers) for name in missing}
        quick_first = {name: pipeline for name, pipeline in first.items() if pipeline is not None}
    texts: dict[str, tuple[str, str]] = {}
    order = _longest_first(missing + ([] if entry_obj is not None else [entry.name]), kernels, entry.name,
                           quick_first)

    def rendered():
        for name in order:
            is_entry = name == entry.name
            text = entry.text() if is_entry else str(render_kernel_module(kernels[name], target, name))
            if config.debug >= 4:
                print(text, file=sys.stderr, flush=True)
            pipeline = ENTRY_PIPELINE if is_entry else kernel_pipeline(kernels[name])
            if name in quick_first:
                texts[name] = (text, pipeline)
                pipeline = quick_first[name]
            yield name, text, pipeline

    groups: dict[str, tuple[str, ...]] = {}
    compiled = llvm_pool.compile_modules(_grouped_jobs(rendered(), groups, set(quick_first) | {entry.name}),
                                         target)
    if entry.name in compiled and entry.path:
        _disk_cache.write(entry.path, compiled[entry.name])
    for name, obj in compiled.items():
        members = groups.get(name, (name,))
        if name != entry.name and not any(member in quick_first for member in members):
            _cache_object(name, obj, groups.get(name))
    kernel_sources["compiled"] += len(missing) - len(quick_first)
    kernel_sources["quick first"] += len(quick_first)
    _log(1, f"compiled {len(missing)} kernels{' and the entry' if entry.name in compiled else ''} in "
            f"{time.perf_counter() - t0:.3f}s ({len(compiled)} objects, {len(groups)} of them groups of small "
            f"kernels; {llvm_pool.worker_count()} worker processes; {len(quick_first)} quick first); "
            f"{len(kernels) - len(missing)} loaded from the disk cache")
    return {**objects, **compiled}, texts


#: kernels compiled "quick" whose text is at most this long are compiled in groups, one LLVM
#: module of at most ``GROUP_CHARS`` characters each: LLVM spends ~0.5 ms on every object
#: whatever its size (setting up its code generator), the LLVM time of most of the MNIST step's
#: 75 kernels. Measured on its quick kernels: 0.31 s compiled one by one, 0.25 s linked into one.
GROUP_KERNEL_CHARS = 24_000
GROUP_CHARS = 64_000
_GROUP_REF = b"FGRADREF "      # a kernel's cache entry that names the group object holding it
_GROUP = b"FGRADGRP "          # a group object's cache entry: its kernels' symbols, then its code


def _grouped_jobs(jobs, groups: dict[str, tuple[str, ...]], apart: set):
    """The compile jobs ``(name, text, pipeline)`` with runs of small "quick" kernels merged into
    groups (a tuple of texts, named by a hash of their symbols, recorded in ``groups``); kernels
    in ``apart`` (the entry; quick-first kernels, which are never cached) never share a group
    with the others."""
    pending: dict[bool, list] = {True: [], False: []}

    def flush(separate: bool):
        run, pending[separate] = pending[separate], []
        if len(run) == 1:
            return run[0]
        members = tuple(name for name, _, _ in run)
        key = "fgg_" + hashlib.sha256("\n".join(members).encode()).hexdigest()[:40]
        groups[key] = members
        return key, tuple(text for _, text, _ in run), "quick"

    for name, text, pipeline in jobs:
        if pipeline != "quick" or len(text) > GROUP_KERNEL_CHARS:
            yield name, text, pipeline
            continue
        separate = name in apart
        pending[separate].append((name, text, pipeline))
        if sum(len(t) for _, t, _ in pending[separate]) >= GROUP_CHARS:
            yield flush(separate)
    for separate in (True, False):
        if pending[separate]:
            yield flush(separate)


def _cache_object(name: str, obj: bytes, members: tuple[str, ...] | None) -> None:
    """Write a compiled kernel object to the disk cache: a kernel's under its symbol; a group's
    (``members``) under its key, with an entry per member kernel naming it."""
    if _disk_cache.directory() is None:
        return
    if members is None:
        _disk_cache.write(_disk_cache.entry(name, ".o"), obj)
        return
    _disk_cache.write(_disk_cache.entry(name, ".o"), _GROUP + " ".join(members).encode() + b"\n" + obj)
    for member in members:
        _disk_cache.write(_disk_cache.entry(member, ".o"), _GROUP_REF + name.encode())


def _read_kernels(symbols) -> tuple[dict[str, bytes], list[str]]:
    """The objects holding ``symbols`` in the disk cache (by object name) and the symbols not found. A group that defines a kernel another object read
    here defines too is not used (one engine cannot load a symbol twice): its kernel is missing."""
    objects: dict[str, bytes] = {}
    provided: dict[str, str] = {}
    missing = []
    for sym in symbols:
        if sym in provided:
            continue
        found = _read_kernel(sym)
        if found is None or any(member in provided for member in found[2]):
            missing.append(sym)
            continue
        name, obj, members = found
        objects[name] = obj
        provided.update(dict.fromkeys(members, name))
    return objects, missing


def _read_kernel(sym: str) -> tuple[str, bytes, tuple[str, ...]] | None:
    """(object name, object code, kernels it defines) of kernel ``sym`` in the disk cache."""
    path = _disk_cache.entry(sym, ".o")
    data = _disk_cache.read(path) if path else None
    if data is None or not data.startswith(_GROUP_REF):
        return None if data is None else (sym, data, (sym,))
    key = data[len(_GROUP_REF):].decode()
    group = _disk_cache.read(_disk_cache.entry(key, ".o"))
    if group is None or not group.startswith(_GROUP):
        return None
    head, _, obj = group[len(_GROUP):].partition(b"\n")
    members = tuple(head.decode().split(" "))
    return (key, obj, members) if sym in members else None


def _longest_first(names, kernels: dict[str, Kernel], entry: str, quick: set = frozenset()) -> list[str]:
    """The order to render and compile in: the entry, then the register-tiled kernels (LLVM's
    longest jobs), then the other "O3" kernels and last the "quick" ones (and those compiled
    quick first), each by the size of their text, largest first, so that the last jobs, which
    decide when the workers all finish, are short ones."""
    rank = {"tiled": 2, "O3": 1}

    def cost(name: str) -> tuple:
        if name == entry:
            return (3, 0)
        kernel = kernels[name]
        return (0 if name in quick else rank.get(kernel_pipeline(kernel), 0), len(format_kernel(kernel)))
    return sorted(names, key=cost, reverse=True)


def _load(entry: bytes, objects: dict[str, bytes], new: Sequence[str], reused: list, target: Target,
          nargs: int, timing_sites: int, externs: Sequence[str] = (), slots: Sequence[str] = ()) -> _Code:
    """One engine for the entry and the objects holding the new kernels ``new``, whose addresses
    are recorded for later programs; the entry's kernel table then points at each kernel's
    current build. ``externs``: the external routines the entry calls, bound to their
    addresses first."""
    _ensure_runtime(target)
    _bind_externs(externs)
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), target_machine(target, fresh=True))
    for obj in [*objects.values(), entry]:
        engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
    engine.finalize_object()
    for sym in new:
        _kernel_addresses[sym] = engine.get_function_address(sym)
        _kernel_engines[sym] = engine
    code = _Code(engine, list(dict.fromkeys(reused)), nargs, timing_sites, slots)
    for k, sym in enumerate(code.slots):
        code.table[k] = _kernel_addresses[sym]
        if sym in _waiting:
            _waiting[sym].append((weakref.ref(code), k))
    return code


def _final_build(sym: str, target: Target, obj: bytes) -> None:
    """A tiered kernel's final build is compiled (on the background thread): cache it, load
    it, and point every kernel table that calls the kernel at it."""
    _disk_cache.write(_disk_cache.entry(sym, ".o"), obj)
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), target_machine(target, fresh=True))
    engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
    engine.finalize_object()
    address = engine.get_function_address(sym)
    with _lock:
        _retired_engines.append(_kernel_engines.get(sym))     # a call may still run the quick build
        _kernel_engines[sym], _kernel_addresses[sym] = engine, address
        for ref, k in _waiting.pop(sym, []):
            code = ref()
            if code is not None:
                code.table[k] = address
                code.kernel_engines.append(engine)
        kernel_sources["final builds"] += 1
    _log(1, f"kernel {sym}: final build swapped in")


#: the engines of replaced quick builds, kept: another thread may be running one
_retired_engines: list = []


def wait_for_background_compiles(timeout: float | None = None) -> bool:
    """Block until every tiered kernel's final build is compiled and swapped in (True), or
    ``timeout`` seconds have passed (False). Benchmarks call it before timing steps."""
    return background.compiler.wait(timeout)


def start_compile_workers() -> None:
    """Start LLVM's worker processes (``llvm_pool``) ahead of a compile, so they are ready when
    the first module is rendered."""
    llvm_pool.start_workers()


def compile_program(program: Program, *, target: Target | None = None, aliases: dict | None = None,
                    save_as: str | None = None) -> "CpuExecutable":
    """Compile a kernel IR program for this CPU; call the result with NumPy arrays.

    ``aliases`` (``{output: input}``): outputs the executable may write over donated inputs.
    ``save_as``: also keep the program on disk under this key (``load_program`` finds it in a
    later process without the program itself).

        >>> exe = compile_program(program)
        >>> (y,) = exe(x)
    """
    if not isinstance(program, Program):
        raise TypeError(f"compile_program takes a kernel IR Program, got {type(program).__name__}")
    target = target or host_target()
    timing = config.debug >= 2
    code, entry, symbols = _compile(program, target, timing)
    arena = plan_memory(program).size
    if save_as is not None and not timing:
        _save_manifest(save_as, program, arena, aliases or {}, entry, symbols)
    return CpuExecutable(program, code, arena, call_sites(program) if timing else None, aliases)


def compile_timed(program: Program, *, target: Target | None = None) -> "CpuExecutable":
    """A timing build of ``program`` (what ``FGRAD_DEBUG=2`` runs) with every kernel in its final
    build, never tiered, that prints nothing: after calls, ``take_site_seconds()`` returns the
    seconds spent in each call site (``llvm.call_sites`` order). BEAM times candidates with it."""
    target = target or host_target()
    code, _, _ = _compile(program, target, True, tier=False)
    exe = CpuExecutable(program, code, plan_memory(program).size, call_sites(program), None)
    exe.print_timing = False
    return exe


def code_version() -> str:
    """A hash of the code that decides what machine code a program becomes (the lowering, the
    renderers, this backend): caches of anything measured on that code key by it."""
    return _VERSION


#: the largest total of constants a saved program keeps on disk (more: it is not saved)
_MANIFEST_CONSTANT_BYTES = 16 << 20


def _save_manifest(key: str, program: Program, arena: int, aliases: dict, entry: str,
                   symbols: list[str]) -> None:
    """What ``load_program`` needs to rebuild the executable: the program's buffers and
    constants, its arena size, the donation aliases and where its code is cached (the entry's
    key and the kernels' symbols)."""
    path = _disk_cache.entry(key, ".program")
    if path is None or sum(a.nbytes for a in program.constants.values()) > _MANIFEST_CONSTANT_BYTES:
        return
    spec = lambda bufs: [(b.name, b.dtype.name, b.shape) for b in bufs]
    manifest = {
        "name": program.name, "inputs": spec(program.inputs), "outputs": spec(program.outputs),
        "constants": [(b.name, a.dtype.name, a.shape, a.tobytes()) for b, a in program.constants.items()],
        "arena": arena, "aliases": dict(aliases), "entry": entry, "kernels": symbols,
        "externs": extern_routines(program),
    }
    _disk_cache.write(path, pickle.dumps(manifest, protocol=pickle.HIGHEST_PROTOCOL))


def disk_cache_enabled() -> bool:
    """Whether compiled code is kept on disk now (``FGRAD_CACHE_DIR`` is not off)."""
    return _disk_cache.directory() is not None


def load_program(key: str, *, target: Target | None = None) -> "CpuExecutable | None":
    """The executable saved under ``key`` by ``compile_program(..., save_as=key)``, in this
    process or an earlier one; None when it (or any of its code) is not in the caches."""
    target = target or host_target()
    if config.debug >= 2:
        return None                         # timing builds are never saved
    path = _disk_cache.entry(key, ".program")
    data = _disk_cache.read(path) if path else None
    if data is None:
        return None
    m = pickle.loads(data)
    bufs = lambda spec: tuple(Buffer(name, np.dtype(dtype), shape) for name, dtype, shape in spec)
    constants = {Buffer(name, np.dtype(dtype), shape): np.frombuffer(raw, dtype).reshape(shape)
                 for name, dtype, shape, raw in m["constants"]}
    program = Program(m["name"], bufs(m["inputs"]), bufs(m["outputs"]), (), constants)
    with _lock:
        code = _memory_cache.get(m["entry"])
        if code is None:
            code = _load_saved(m, target, len(program.externals) + 1)
            if code is None:
                return None
            _memory_cache[m["entry"]] = code
    return CpuExecutable(program, code, m["arena"], None, m["aliases"])


def _load_saved(manifest: dict, target: Target, nargs: int) -> "_Code | None":
    """Load a saved program's entry and kernels from the caches (None if any is missing)."""
    new = [sym for sym in dict.fromkeys(manifest["kernels"]) if sym not in _kernel_addresses]
    objects, missing = _read_kernels(new)
    if missing:
        return None
    path = _disk_cache.entry(manifest["entry"], ".o")
    entry = _disk_cache.read(path) if path else None
    if entry is None:
        return None
    kernel_sources["disk"] += len(new)
    kernel_sources["memory"] += len(manifest["kernels"]) - len(new)
    reused = [_kernel_engines[s] for s in manifest["kernels"] if s not in new]
    return _load(entry, objects, new, reused, target, nargs, 0, manifest.get("externs", ()), manifest["kernels"])


# --- running -----------------------------------------------------------------------------

def arena_buffer(size: int) -> np.ndarray:
    """A program's arena: ``size`` bytes, page-aligned, in small pages (``FGRAD_ARENA_HUGEPAGES=1``:
    in transparent huge pages, NumPy's default for large arrays).

    Small pages, because the first touch of fresh huge pages can be very slow on a virtual
    machine: on this project's 2-core VM, the first call of a 4-layer GPT step (141.6 MB arena,
    code from the disk cache) took 1.0-2.7 s with huge pages and 0.30-0.42 s without; the
    MNIST step's 0.39-0.66 s and 0.10-0.13 s. Later steps ran as fast with either (1 thread).
    """
    size = max(size, 1)
    huge = os.environ.get("FGRAD_ARENA_HUGEPAGES", "0").strip()
    if huge not in ("0", "1", ""):
        raise ValueError(f"FGRAD_ARENA_HUGEPAGES must be 0 (small pages, the default) or 1 (huge pages), got {huge!r}")
    if huge == "1" or not hasattr(mmap, "MADV_NOHUGEPAGE"):
        return np.empty(size, np.uint8)
    pages = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    pages.madvise(mmap.MADV_NOHUGEPAGE)
    return np.frombuffer(pages, np.uint8)     # the array keeps the mapping alive


class CpuExecutable(Executable):
    """A compiled program; ``exe(*inputs, out=None) -> list of outputs`` in one native call."""

    device = CPU

    def __init__(self, program: Program, code: _Code, arena_size: int, timing_sites,
                 aliases: dict | None = None) -> None:
        self.program = program
        #: ``{output index: input index}``: outputs that may be written over donated inputs
        self.aliases = dict(aliases or {})
        self._code = code
        self._inputs = [(b.name, b.dtype, b.size, b.shape) for b in program.inputs]
        self._outputs = [(b.shape, b.dtype) for b in program.outputs]
        self._constants = list(program.constants.values())
        self._arena = arena_buffer(arena_size)
        self._lock = threading.Lock()
        self._sites = timing_sites
        #: a timing build prints each call's kernel times (``compile_timed`` turns it off)
        self.print_timing = True
        self._fast = code.call_objects
        self._first_call = code.first_call
        #: the program may stop early (a host callback raised): the error is raised after the call
        self._may_stop = any(isinstance(s, ExternCall) and s.returns_status for s in walk_steps(program.body))
        self._running_in: int | None = None       # the thread running it (programs calling back only)

    def __call__(self, *inputs: Any, out: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
        if len(inputs) != len(self._inputs):
            raise TypeError(f"program {self.program.name} takes {len(self._inputs)} inputs, "
                            f"got {len(inputs)}")
        # inputs of the right dtype, size and layout pass as they are, without a call each
        args = [x if type(x) is np.ndarray and x.dtype == spec[1] and x.size == spec[2] and x.flags.c_contiguous
                else self._checked_input(k, x) for k, (x, spec) in enumerate(zip(inputs, self._inputs))]
        outs = [np.empty(shape, dtype) for shape, dtype in self._outputs] if out is None \
            else self._checked_outputs(out)
        if self._may_stop:
            return self._call_calling_back(args, outs)
        if self._fast is not None and self._sites is None:      # the usual call: one native call
            with self._lock:
                if self._fast(*args, *outs, *self._constants, self._arena) is not None:
                    self._call_with_pointers(args + outs + self._constants + [self._arena])   # out= subclasses
        else:
            with self._lock:
                self._native(args, outs, self._arena)
        if self._first_call is not None:       # the background builds may start now
            self._first_call.set()
            self._first_call = None
        return outs

    def fast_call(self) -> Callable[[list], list | None] | None:
        """For ``jit``'s cached dispatch: ``call(values) -> outputs``, read-only, that skips the
        checks a caller has already made (each value has the input's dtype and size, as the
        value of an Array matching the program's avals has), or None where the usual call must
        run (timing builds, host callbacks, no native wrapper). ``call`` returns None, having
        run nothing, when a value is not a C-contiguous ndarray: the caller takes the usual path."""
        if self._code.call_fresh is None or self._sites is not None or self._may_stop or self._first_call:
            return None
        native, arena, consts, code = self._code.call_fresh, self._arena, self._constants, self._code
        acquire, release = self._lock.acquire, self._lock.release
        empty, specs = np.empty, tuple(self._outputs)

        def call(values: list) -> list | None:
            outs = [empty(shape, dtype) for shape, dtype in specs]
            acquire()       # bound methods and try/finally: 0.1 µs less than ``with lock``
            try:
                refused = native(*values, *outs, *consts, arena)
            finally:
                release()
            return outs if refused is None else None
        call.code = code        # the machine code lives as long as the call does
        return call

    def _native(self, args: list, outs: list, arena: np.ndarray) -> None:
        t0 = time.perf_counter() if self._sites is not None else 0.0
        if self._fast is None or self._fast(*args, *outs, *self._constants, arena) is not None:
            self._call_with_pointers(args + outs + self._constants + [arena])
        if self._sites is not None and self.print_timing:
            self._report_timing(time.perf_counter() - t0)

    def _call_calling_back(self, args: list, outs: list) -> list[np.ndarray]:
        """Run a program that calls back into Python (``fgrad.lower.host_callback``). The
        callback may call this same executable again from this thread (recursion): that call
        gets an arena of its own rather than waiting forever for the lock its caller holds. A
        callback's exception stopped the program: it is raised here."""
        me = threading.get_ident()
        if self._running_in == me:
            self._native(args, outs, np.empty_like(self._arena))
        else:
            with self._lock:
                self._running_in = me
                try:
                    self._native(args, outs, self._arena)
                finally:
                    self._running_in = None
        raise_pending_error()
        return outs

    def _checked_input(self, k: int, x: Any) -> np.ndarray:
        name, dtype, size, shape = self._inputs[k]
        if type(x) is np.ndarray and x.dtype == dtype and x.size == size and x.flags.c_contiguous:
            return x
        arr = np.asarray(x)
        if arr.dtype != dtype or arr.size != size:
            raise TypeError(f"program {self.program.name}: input {k} ({name}) must be "
                            f"{short_name(dtype)}{list(shape)}, got {arr.dtype.name}{list(arr.shape)}")
        return np.ascontiguousarray(arr)

    def _checked_outputs(self, out: Sequence[np.ndarray]) -> list[np.ndarray]:
        out = list(out)
        if len(out) != len(self._outputs):
            raise TypeError(f"program {self.program.name} has {len(self._outputs)} outputs, "
                            f"got {len(out)} out arrays")
        for k, (o, (shape, dtype)) in enumerate(zip(out, self._outputs)):
            if not (isinstance(o, np.ndarray) and o.dtype == dtype and o.shape == tuple(shape)
                    and o.flags.c_contiguous and o.flags.writeable):
                raise TypeError(f"program {self.program.name}: out[{k}] must be a writeable "
                                f"contiguous {short_name(dtype)}{list(shape)} array")
        return out

    def _call_with_pointers(self, arrays: list[np.ndarray]) -> None:
        ptrs = (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])
        self._code.call_pointers(ctypes.addressof(ptrs))

    def take_site_seconds(self) -> list[float]:
        """A timing build's seconds in each call site since the last take (then zeroed)."""
        code, rate = self._code, cycles_per_second()
        seconds = [code.cycles[k] / rate for k in range(len(self._sites or ()))]
        for k in range(len(seconds)):
            code.calls[k] = code.cycles[k] = 0
        return seconds

    def _report_timing(self, wall: float) -> None:
        code = self._code
        ghz = cycles_per_second() / 1e9
        lines = [f"[fgrad cpu] program {self.program.name}: {wall * 1e6:.1f} us"]
        for k, call in enumerate(self._sites):
            n, cycles = code.calls[k], code.cycles[k]
            if not n:
                continue
            us = cycles / ghz / 1e3
            flops = call.kernel.flops * n
            rate = f"  {flops / (us * 1e3):7.2f} GFLOP/s" if flops and us else ""
            nbytes = sum(b.nbytes for b in call.args) * n
            lines.append(f"  {call.kernel.name:32s} x{n:<4d} {us:10.1f} us  "
                         f"{nbytes / (us * 1e3) if us else 0:7.2f} GB/s{rate}")
            code.calls[k] = code.cycles[k] = 0
        print("\n".join(lines), file=sys.stderr, flush=True)


_cycle_rate: float | None = None


def cycles_per_second() -> float:
    """The rate of the cycle counter (``llvm.readcyclecounter``) measured against the wall clock."""
    global _cycle_rate
    if _cycle_rate is None:
        _init_llvm()
        target = host_target(1)
        m = ir.Module("clock")
        m.triple = target.triple
        fn = ir.Function(m, ir.FunctionType(I64, []), "read_clock")
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        b.ret(b.call(ir.Function(m, ir.FunctionType(I64, []), "llvm.readcyclecounter"), []))
        engine = llvm.create_mcjit_compiler(llvm.parse_assembly(str(m)), target_machine(target, fresh=True))
        engine.finalize_object()
        read = ctypes.CFUNCTYPE(ctypes.c_int64)(engine.get_function_address("read_clock"))
        c0, t0 = read(), time.perf_counter()
        time.sleep(0.02)
        c1, t1 = read(), time.perf_counter()
        _cycle_rate = (c1 - c0) / (t1 - t0)
    return _cycle_rate


def clear_memory_cache() -> None:
    """Forget compiled programs and kernels held in memory (the disk cache stays); code already
    handed out keeps working."""
    with _lock:
        _memory_cache.clear()
        _kernel_engines.clear()
        _kernel_addresses.clear()
