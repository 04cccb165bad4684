"""BEAM for loop kernels: each vectorised loop kernel timed at a few vector widths, cached on disk.

The best vector width of a loop kernel depends on the CPU more than the heuristics can say: on
an AMD Zen 3 (AVX2), the MNIST step's max-pool over rows of 26 floats runs 1.15 ms at the 8
lanes the heuristics pick and 0.83 ms at 4, while its gradient is fastest at 8 (4.6 ms, against
6.3 at 4). With BEAM on (``fgrad.config.beam`` > 0), after
the contractions' search (``beam.py``), ``choose_vector_widths`` takes each distinct kernel of
the program whose loops the renderer vectorises by itself (``vectorize=AUTO``; not the
contractions' kernels, whose widths their schedules fix) and that does enough work to be worth
timing, builds ONE timing program holding the kernel as it is and with every ``AUTO`` loop at
each width of ``WIDTH_CANDIDATES`` (0: scalar), on the same random inputs of the real shapes,
checks that every variant writes what the kernel as it is writes (within float reassociation
bounds), times them interleaved, and keeps the fastest when it is at least ``beam.MIN_GAIN``
faster. Choices are cached under ``$FGRAD_CACHE_DIR/beam`` keyed by the kernel's structure,
this CPU and fgrad's code, like the contractions'; ``FGRAD_DEBUG=2`` prints each kernel's
times and choice. Kernels that read a buffer they also write are left as they are (their
inputs could not be made up independently of their outputs).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import statistics
import sys
import time
import warnings

import numpy as np

from fgrad.backends import beam, cpu
from fgrad.config import config
from fgrad.lower import kernel as K
from fgrad.lower.kernel_stmt import with_bodies
from fgrad.lower.llvm import Target, call_sites
from fgrad.lower.llvm_loops import estimated_ops

#: the widths timed beside the kernel as it is: lanes (0: scalar), for every AUTO loop
WIDTH_CANDIDATES = (0, 4, 8, 16)
#: kernels estimated to do fewer scalar operations per call are not searched: microseconds
#: to gain, against the seconds a timing build costs
MIN_SEARCH_OPS = 1 << 20


def choose_vector_widths(program: K.Program, target: Target, budget_s: float | None = None
                         ) -> tuple[K.Program, bool]:
    """``program`` with each searchable kernel at its chosen width (cached or searched within
    ``budget_s`` seconds, default ``config.beam_budget_s``), and whether every such kernel was
    searched or found in the cache (False: the budget left some, so the program should not be
    saved)."""
    budget = config.beam_budget_s if budget_s is None else budget_s
    start = time.perf_counter()
    kernels = [k for k in K.kernels_of(program) if _searchable(k)]
    texts = {id(k): K.format_kernel(k, structural=True) for k in kernels}
    distinct: dict[str, K.Kernel] = {}
    for kernel in kernels:
        distinct.setdefault(texts[id(kernel)], kernel)
    chosen: dict[str, int] = {}
    settled, shown = True, False
    ordered = sorted(distinct.items(), key=lambda item: -estimated_ops(item[1].body))
    for index, (text, kernel) in enumerate(ordered):
        elapsed = time.perf_counter() - start
        if elapsed >= beam.PROGRESS_AFTER_S:
            shown = True
            line = f"[fgrad beam] loop kernel {index + 1}/{len(ordered)} {kernel.name}: {elapsed:.1f}s of {budget:g}s"
            print("\r" + line.ljust(110), end="", file=sys.stderr, flush=True)
        name = _entry_name(text, target)
        width = _memo.get(name)
        if width is None:
            width = _read_entry(name, kernel)
        if width is None:
            if time.perf_counter() - start >= budget:
                beam.search_stats["widths skipped"] += 1
                settled = False
                continue
            width = _search(kernel, target, name)
        if width is not None and width != "as is":
            chosen[text] = width
    if shown:
        print(file=sys.stderr, flush=True)
    widths = {kid: chosen[text] for kid, text in texts.items() if text in chosen}
    if not widths:
        return program, settled
    return _with_widths(program, widths), settled


def _searchable(kernel: K.Kernel) -> bool:
    if kernel.flops or not any(isinstance(s, K.Range) and s.vectorize == K.AUTO for s in K.walk_stmts(kernel.body)):
        return False
    if estimated_ops(kernel.body) < MIN_SEARCH_OPS:
        return False
    return not kernel.read_params & kernel.written_params


def at_width(kernel: K.Kernel, width: int) -> K.Kernel:
    """``kernel`` with every loop the renderer vectorises by itself at ``width`` lanes (0: scalar)."""
    def stmts(body: tuple) -> tuple:
        out = []
        for s in body:
            if isinstance(s, K.Range):
                s = dataclasses.replace(s, body=stmts(s.body), vectorize=width if s.vectorize == K.AUTO else s.vectorize)
            elif isinstance(s, K.If):
                s = dataclasses.replace(s, then=stmts(s.then), else_=stmts(s.else_))
            out.append(s)
        return tuple(out)
    return dataclasses.replace(kernel, body=stmts(kernel.body))


def _with_widths(program: K.Program, widths: dict[int, int]) -> K.Program:
    """``program`` with each kernel whose id ``widths`` holds at that width."""
    remade: dict[int, K.Kernel] = {}

    def steps(body: tuple) -> tuple:
        out = []
        for s in body:
            if isinstance(s, K.Call) and id(s.kernel) in widths:
                kernel = remade.setdefault(id(s.kernel), at_width(s.kernel, widths[id(s.kernel)]))
                s = K.Call(kernel, s.args)
            out.append(with_bodies(s, steps))
        return tuple(out)
    return dataclasses.replace(program, body=steps(program.body))


def _search(kernel: K.Kernel, target: Target, name: str):
    """The fastest width ("as is" for the kernel's own), timed and cached; None when it could
    not be timed (a warning says why)."""
    started = time.perf_counter()
    try:
        times = _measure(kernel, target)
    except Exception as error:        # a variant that does not compile or run: keep the kernel
        warnings.warn(f"BEAM could not time the vector widths of kernel {kernel.name}: {error!r}; "
                      "it keeps the kernel as it is", beam.BeamWarning, stacklevel=3)
        beam.search_stats["widths failed"] += 1
        return None
    default_s = times["as is"]
    best = min(times, key=times.get)
    if times[best] > default_s * (1 - beam.MIN_GAIN):
        best = "as is"
    beam.search_stats["widths searched"] += 1
    _memo[name] = best
    _write_entry(name, kernel, best, times, time.perf_counter() - started)
    _report(kernel, best, times, cached=False)
    return best


def _measure(kernel: K.Kernel, target: Target) -> dict:
    """Seconds per call of the kernel as it is and at each candidate width whose result agrees."""
    written = set(kernel.written_params)
    shared = {p.name: K.Buffer(f"w_{p.name}", p.dtype, (p.size,)) for p in kernel.params if p.name not in written}
    variants = {"as is": kernel, **{w: at_width(kernel, w) for w in WIDTH_CANDIDATES}}
    outputs, calls, owners = [], [], []
    for k, (label, variant) in enumerate(variants.items()):
        outs = {p.name: K.Buffer(f"w{k}_{p.name}", p.dtype, (p.size,)) for p in kernel.params if p.name in written}
        outputs.append(list(outs.values()))
        calls.append(K.Call(variant, tuple(shared.get(p.name) or outs[p.name] for p in kernel.params)))
        owners.append(label)
    program = K.Program("beam_widths", tuple(shared.values()), tuple(b for outs in outputs for b in outs),
                        tuple(calls))
    exe = cpu.compile_timed(program, target=target)
    cpu.wait_for_background_compiles()
    rng = np.random.default_rng(0)
    data = [beam._random_input(b, rng) for b in shared.values()]
    results = [np.zeros(b.shape, b.dtype) for outs in outputs for b in outs]
    exe(*data, out=results)
    per = len(written)
    reference = results[:per]
    bound = max(p.size for p in kernel.params)
    agree = [all(beam._agrees(r, ref, bound) for r, ref in zip(results[k * per:(k + 1) * per], reference))
             for k in range(len(variants))]
    owner_of = {id(call): k for k, call in enumerate(calls)}
    sites = [owner_of[id(call)] for call in call_sites(program)]
    runs = beam._timed_runs(exe, data, results, sites, len(variants))
    beam.search_stats["widths rejected"] += agree.count(False)
    return {label: statistics.median(run[k] for run in runs) for k, label in enumerate(owners) if agree[k]}


def _report(kernel: K.Kernel, best, times: dict, cached: bool) -> None:
    """``FGRAD_DEBUG=2``: the kernel's time as it is, at each width, and the choice."""
    if config.debug < 2:
        return
    each = ", ".join(f"{'scalar' if w == 0 else w}: {t * 1e6:.1f} us" for w, t in times.items() if w != "as is")
    print(f"[fgrad beam] kernel {kernel.name}: as is {times.get('as is', math.nan) * 1e6:.1f} us; {each}; "
          f"chose {'scalar' if best == 0 else best}{' (cached)' if cached else ''}", file=sys.stderr, flush=True)


# --- the cache -------------------------------------------------------------------------------

#: choices found or read in this process, by entry name (``beam.clear_memory`` forgets them)
_memo: dict[str, object] = {}
beam.memos.append(_memo)


def _entry_name(structure: str, target: Target) -> str:
    text = "\n".join((beam.BEAM_VERSION, "widths", structure, target.key(), beam._cpu_model(), cpu.code_version()))
    return hashlib.sha256(text.encode()).hexdigest()


def _read_entry(name: str, kernel: K.Kernel):
    """The cached width ("as is" or lanes), or None (missing; or corrupt: removed, with a warning)."""
    path = beam._disk_cache.entry(name, ".width")
    if path is None or not path.exists():
        return None
    data = beam._disk_cache.read(path)
    try:
        if data is None:
            raise ValueError("its checksum does not match")
        entry = json.loads(data.decode())
        width = entry["width"]
        if width != "as is" and width not in WIDTH_CANDIDATES:
            raise ValueError(f"width {width!r} is not a candidate")
        times = {k: float(v) for k, v in entry["times"].items()}
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as why:
        warnings.warn(f"BEAM cache entry {path} is corrupt ({why}); timing kernel {kernel.name}'s vector "
                      "widths again", beam.BeamWarning, stacklevel=2)
        try:
            os.unlink(path)
        except OSError:
            pass
        return None
    beam.search_stats["widths cached"] += 1
    _memo[name] = width
    _report(kernel, width, {("as is" if k == "as is" else int(k)): v for k, v in times.items()}, cached=True)
    return width


def _write_entry(name: str, kernel: K.Kernel, width, times: dict, search_s: float) -> None:
    path = beam._disk_cache.entry(name, ".width")
    if path is None:
        return
    entry = {"kernel": kernel.name, "width": width, "times": {str(k): v for k, v in times.items()},
             "search_s": search_s}
    beam._disk_cache.write(path, json.dumps(entry).encode())
