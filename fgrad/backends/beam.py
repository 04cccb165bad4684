"""BEAM: the CPU contractions' schedules searched by timing them here, cached on disk (the loop
kernels' vector widths: ``beam_widths.py``).

With ``fgrad.config.beam`` = N > 0 (``FGRAD_BEAM=N``), compiling a CPU program first lowers it
recording each contraction whose schedule matters (``gemm_schedule.TunableGemm``: the packed
GEMM template behind ``dot_general`` and convolutions), then, for each distinct one (by
``contraction.problem_key``), ``choose_schedules`` looks its choice up in the disk cache or
searches it: a beam of width N over ``gemm_schedule.neighbours`` (register tile, k/row/column
blocks, k split, B packing, orientation, unpacked loop), starting from the heuristics' schedule.
Each round builds ONE standalone program holding the default, the beam and the new candidates
(each its own copy of the contraction on the same random inputs of the real shapes; int
inputs are zeros, so that an index never leaves its array), compiles it as a timing build
(``cpu.compile_timed``: final builds, per-call-site cycle counters), checks every candidate's
result against the default's (within float reassociation bounds: ``_agrees``), then runs it
several times: each candidate's time is the median over runs of its kernels' times, and the
candidates of a round run interleaved, so machine noise hits them alike. The N fastest form the
next beam; the search stops when a round finds nothing faster, after ``MAX_ROUNDS``, or when
the program's budget (``fgrad.config.beam_budget_s``) is spent. A schedule replaces the default
only when at least ``MIN_GAIN`` faster. The pipeline then lowers the program again with the
choices (``LoweringTarget.with_schedules``).

Choices are cached under ``$FGRAD_CACHE_DIR/beam`` keyed by the problem, the beam width, this
CPU (LLVM's target: CPU name, features, thread count; and its model name) and fgrad's code
(``cpu.code_version``), so a search runs once per contraction per machine. A corrupt entry is
removed and searched again, with a ``BeamWarning``. A search the budget cuts short keeps (and
caches) the best schedule it found; contractions the budget left unsearched keep the
heuristics' schedules for now, and the program is not saved for warm starts, so that the next
compile searches them (each compile thus finishes at least one search).

    FGRAD_BEAM=2 python train.py           # first run searches; later runs read the cache
    FGRAD_BEAM=2 FGRAD_DEBUG=2 python train.py   # per contraction: default, searched, choice
"""
from __future__ import annotations

import collections
import functools
import hashlib
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from fgrad.backends import cpu
from fgrad.backends.disk_cache import DiskCache
from fgrad.config import config
from fgrad.lower import kernel as K
from fgrad.lower.gemm_schedule import GemmSchedule, TunableGemm, canonical, neighbours, valid
from fgrad.lower.llvm import Target, call_sites

BEAM_VERSION = "fgrad-beam-1"
_MAGIC = b"FGRADBEAM1\n"

#: a searched schedule replaces the heuristics' only when this much faster (less is noise)
MIN_GAIN = 0.03
#: a round goes on with the search only when its best is this much faster than the beam's best
MIN_STEP = 0.015
#: the most rounds (beam expansions) one contraction's search makes
MAX_ROUNDS = 6
#: a round's timed runs last about this long in all, between MIN_RUNS and MAX_RUNS runs
ROUND_TIMING_S = 0.15
MIN_RUNS, MAX_RUNS = 3, 25
#: the search shows a progress line on stderr once it has taken this long
PROGRESS_AFTER_S = 1.0

#: what the searches did in this process: "searched", "cached" (choices read from the cache),
#: "candidates" (schedules timed), "rejected" (results that disagreed with the default's),
#: "unfinished" (cut short by the budget: its best so far kept), "skipped" (left to the heuristics: budget spent or
#: not standalone), "failed", "seconds"; tests read it
search_stats: collections.Counter = collections.Counter()


class BeamWarning(UserWarning):
    """BEAM found a corrupt cache entry or could not time a contraction, or cannot search a
    GPU program's schedules (it carries on)."""


def warn_not_searched_on_gpu() -> None:
    """BEAM is on and a GPU program is compiled: say, once per process, that its contractions
    keep their fixed tiling (the search covers CPU schedules only), rather than ignore it."""
    if _warned_gpu:
        return
    _warned_gpu.append(True)
    warnings.warn("FGRAD_BEAM / fgrad.config.beam searches the schedules of CPU contractions only: GPU "
                  "programs keep their fixed GEMM tiling (64x64 tiles, 16-deep slabs) and are not searched",
                  BeamWarning, stacklevel=3)


_warned_gpu: list = []


def width() -> int:
    """The beam width now (``fgrad.config.beam``; 0: no search)."""
    return config.beam


def salt(beam_width: int) -> str:
    """What a saved program's key adds for BEAM, so a searched build and a default one never
    alias, nor builds searched on two CPU models sharing a cache (empty when BEAM is off)."""
    return f"|beam={beam_width}|{_cpu_model()}" if beam_width else ""


@dataclass
class _Choice:
    schedule: GemmSchedule
    default_s: float
    best_s: float
    candidates: int
    search_s: float
    cached: bool = False


def choose_schedules(tunables: list[TunableGemm], target: Target, beam_width: int,
                     budget_s: float | None = None) -> tuple[dict[str, GemmSchedule], bool]:
    """The schedules to lower ``tunables`` with (``{problem key: schedule}``, only those that
    differ from the heuristics'), read from the cache or searched with a beam of ``beam_width``
    within ``budget_s`` seconds (default ``config.beam_budget_s``); and whether every
    contraction was searched or found in the cache (False: the budget left some to the
    heuristics, so the program should not be saved: the next compile searches them)."""
    budget = config.beam_budget_s if budget_s is None else budget_s
    distinct = list({t.key: t for t in tunables}.values())
    distinct.sort(key=lambda t: -t.problem.flops)          # the largest first, while budget remains
    progress = _Progress(len(distinct), budget)
    choices, settled = {}, True
    for index, tunable in enumerate(distinct):
        choice, found = _choice_for(tunable, target, beam_width, progress, index)
        settled &= found
        if choice is not None and choice.schedule != canonical(tunable.problem, tunable.default):
            choices[tunable.key] = choice.schedule
    progress.finish()
    return choices, settled


def _choice_for(tunable: TunableGemm, target: Target, beam_width: int, progress: "_Progress",
                index: int) -> tuple["_Choice | None", bool]:
    """The cached choice, or a search's (None: keep the default); and False when the budget
    was spent before the search could start."""
    name = _entry_name(tunable, target, beam_width)
    choice = _memo.get(name) or _read_entry(name, tunable)
    if choice is not None:
        search_stats["cached"] += 1
        _memo[name] = choice
        _report(tunable, choice)
        return choice, True
    if progress.spent():
        search_stats["skipped"] += 1
        return None, False
    choice = _search(tunable, target, beam_width, progress, index)
    if choice is not None:
        _memo[name] = replace(choice, cached=True)
        _write_entry(name, tunable, choice)
        _report(tunable, choice)
    return choice, True


def _report(tunable: TunableGemm, choice: _Choice) -> None:
    """``FGRAD_DEBUG=2``: the contraction's default and searched times and the choice."""
    if config.debug < 2:
        return
    speedup = choice.default_s / choice.best_s if choice.best_s else 1.0
    where = "cached" if choice.cached else f"{choice.candidates} candidates in {choice.search_s:.1f}s"
    print(f"[fgrad beam] {tunable.name} {tunable.problem.describe()}: default {choice.default_s * 1e6:.1f} us, "
          f"searched {choice.best_s * 1e6:.1f} us ({speedup:.2f}x; {where}): {choice.schedule.describe()} "
          f"(default {tunable.default.describe()})", file=sys.stderr, flush=True)


# --- the search ---------------------------------------------------------------------------------

def _search(tunable: TunableGemm, target: Target, beam_width: int, progress: "_Progress",
            index: int) -> "_Choice | None":
    """The contraction's searched choice (None: left to the heuristics)."""
    start = time.perf_counter()
    try:
        bench = _Bench(tunable, target)
        choice = _beam_search(bench, beam_width, progress, index)
    except _NotStandalone as why:
        _log(1, f"{tunable.name} left to the heuristics ({why})")
        search_stats["skipped"] += 1
        return None
    except Exception as error:        # a candidate that does not compile or run: keep the default
        warnings.warn(f"BEAM could not time {tunable.name} ({tunable.problem.describe()}): {error!r}; "
                      "it keeps the default schedule", BeamWarning, stacklevel=3)
        search_stats["failed"] += 1
        return None
    choice.search_s = time.perf_counter() - start
    search_stats["searched"] += 1
    search_stats["seconds"] += choice.search_s
    return choice


def _beam_search(bench: "_Bench", beam_width: int, progress: "_Progress", index: int) -> "_Choice":
    """Rounds of: time the default, the beam and the new neighbours of the beam together; keep
    the ``beam_width`` fastest. Stops when a round's best is not ``MIN_STEP`` faster than the
    beam's, when no new neighbour is left, after ``MAX_ROUNDS`` or when the budget is spent."""
    tunable = bench.tunable
    problem = tunable.problem
    default = canonical(problem, tunable.default)
    beam, fresh = [default], neighbours(problem, default)
    tried = {default, *fresh}
    for round_ in range(MAX_ROUNDS):
        progress.show(index, tunable, round_, len(tried))
        times = bench.measure([default] + [s for s in beam if s != default] + fresh)
        ranked = sorted(times, key=times.get)
        leader = min(beam, key=lambda s: times.get(s, math.inf))
        improved = round_ == 0 or (ranked[0] not in beam and
                                   times[ranked[0]] < times.get(leader, math.inf) * (1 - MIN_STEP))
        beam = ranked[:beam_width]
        fresh = [s for s in dict.fromkeys(n for b in beam for n in neighbours(problem, b)) if s not in tried]
        tried.update(fresh)
        if not improved or not fresh:
            break
        if progress.spent():
            search_stats["unfinished"] += 1
            break
    best, default_s, best_s = _confirmed(bench, default, beam[0], times)
    return _Choice(best, default_s, best_s, len(tried), 0.0)


def _confirmed(bench: "_Bench", default: GemmSchedule, best: GemmSchedule,
               times: dict) -> tuple[GemmSchedule, float, float]:
    """The winner against the default alone, timed again (the fastest of many noisy timings is
    biased low): it replaces the default only when ``MIN_GAIN`` faster there too."""
    if best == default:
        return default, times[default], times[default]
    again = bench.measure([default, best], confirm=True)
    if best not in again or again[best] > again[default] * (1 - MIN_GAIN):
        return default, again[default], again[default]
    return best, again[default], again[best]


class _NotStandalone(Exception):
    """The contraction cannot be timed on its own (its output is also one of its inputs)."""


class _Bench:
    """One contraction as standalone timing programs: its inputs (the buffers its kernels read),
    with random data of the real shapes, and the schedules' kernels seen so far."""

    def __init__(self, tunable: TunableGemm, target: Target) -> None:
        self.tunable, self.target = tunable, target
        probe = tunable.build(tunable.default, "beam_probe", _like(tunable.output, "beam_probe_out"))
        made = {id(b) for b in probe.temporaries}
        self.inputs = [b for b in K.buffers_of(probe.steps) if id(b) not in made and b.name != "beam_probe_out"]
        if any(b is tunable.output for b in self.inputs):
            raise _NotStandalone("it reads its own output")
        rng = np.random.default_rng(0)
        self.data = [_random_input(b, rng) for b in self.inputs]
        self.seen: dict[tuple, GemmSchedule] = {}
        self.rounds = 0

    def measure(self, schedules: list[GemmSchedule], confirm: bool = False) -> dict[GemmSchedule, float]:
        """Seconds per call of each schedule (the first is the reference every result must
        agree with), timed in one program; schedules whose code an earlier one already had,
        or whose result disagrees, are left out. ``confirm``: only schedules timed before,
        with twice the runs."""
        self.rounds += 1
        plans, outputs, steps = [], [], []
        for schedule in schedules:
            k = len(plans)
            out = _like(self.tunable.output, f"beam{self.rounds}_{k}_out")
            plan = self.tunable.build(schedule, f"beam{self.rounds}_{k}", out)
            code = tuple(K.format_kernel(s.kernel, structural=True) for s in plan.steps)
            if self.seen.setdefault(code, schedule) != schedule and not confirm:
                continue                  # the same kernels as a schedule timed before
            plans.append((schedule, plan))
            outputs.append(out)
            steps.extend(plan.steps)
        program = K.Program(f"beam_{self.rounds}", tuple(self.inputs), tuple(outputs), tuple(steps))
        exe = cpu.compile_timed(program, target=self.target)
        cpu.wait_for_background_compiles()     # kernels loaded earlier as quick builds: final ones
        owner = {id(call): k for k, (_, plan) in enumerate(plans) for call in plan.steps}
        sites = [owner[id(call)] for call in call_sites(program)]
        results = [np.zeros(b.shape, b.dtype) for b in outputs]
        exe(*self.data, out=results)
        agree = [_agrees(r, results[0], self.tunable.problem.k) for r in results]
        search_stats["rejected"] += agree.count(False)
        search_stats["candidates"] += 0 if confirm else len(plans)
        runs = _timed_runs(exe, self.data, results, sites, len(plans), 2 if confirm else 1)
        return {schedule: statistics.median(run[k] for run in runs)
                for k, (schedule, _) in enumerate(plans) if agree[k]}


def _timed_runs(exe, data: list, outs: list, sites: list[int], count: int, scale: int = 1) -> list[list[float]]:
    """Per run, each candidate's seconds (its call sites' sum); as many runs as fit in
    ``scale`` x ``ROUND_TIMING_S`` (within ``scale`` x ``MIN_RUNS``..``MAX_RUNS``), after one to
    warm up."""
    exe.take_site_seconds()
    runs: list[list[float]] = []
    while True:
        exe(*data, out=outs)
        per = [0.0] * count
        for k, seconds in zip(sites, exe.take_site_seconds()):
            per[k] += seconds
        runs.append(per)
        total = sum(sum(r) for r in runs[1:])
        enough = len(runs) > scale * MIN_RUNS and total >= scale * ROUND_TIMING_S
        if enough or len(runs) > scale * MAX_RUNS:
            return runs[1:]


def _like(buf: K.Buffer, name: str) -> K.Buffer:
    return K.Buffer(name, buf.dtype, buf.shape)


def _random_input(buf: K.Buffer, rng: np.random.Generator) -> np.ndarray:
    """Floats in [0.5, 1.5) (positive: a fused log or sqrt stays finite); integers and bools
    zero, since an integer input may index another array."""
    if K.is_float(buf.dtype):
        return rng.uniform(0.5, 1.5, buf.shape).astype(buf.dtype)
    return np.zeros(buf.shape, buf.dtype)


def _agrees(result: np.ndarray, reference: np.ndarray, k: int) -> bool:
    """Equal up to reassociating sums of ``k`` products: |x - ref| <= 4 k eps (|ref| + max|ref|)."""
    x, ref = result.astype(np.float64), reference.astype(np.float64)
    eps = float(np.finfo(np.float64 if reference.dtype == np.float64 else np.float32).eps)
    finite = ref[np.isfinite(ref)]
    scale = float(np.max(np.abs(finite))) if finite.size else 1.0
    tol = 4 * max(k, 1) * eps
    return bool(np.allclose(x, ref, rtol=tol, atol=tol * scale, equal_nan=True))


class _Progress:
    """One line on stderr, rewritten in place, once the searches have taken over a second."""

    def __init__(self, total: int, budget_s: float) -> None:
        self.total, self.budget_s = total, budget_s
        self.start = time.perf_counter()
        self.shown = False

    def spent(self) -> bool:
        return time.perf_counter() - self.start >= self.budget_s

    def show(self, index: int, tunable: TunableGemm, round_: int, tried: int) -> None:
        elapsed = time.perf_counter() - self.start
        if elapsed < PROGRESS_AFTER_S:
            return
        self.shown = True
        line = (f"[fgrad beam] contraction {index + 1}/{self.total} {tunable.name} ({tunable.problem.describe()}): "
                f"round {round_ + 1}, {tried} schedules; {elapsed:.1f}s of {self.budget_s:g}s")
        print("\r" + line.ljust(110), end="", file=sys.stderr, flush=True)

    def finish(self) -> None:
        if self.shown:
            print(file=sys.stderr, flush=True)


# --- the cache ------------------------------------------------------------------------------------

def _log(level: int, message: str) -> None:
    if config.debug >= level:
        print(f"[fgrad beam] {message}", file=sys.stderr, flush=True)


_disk_cache = DiskCache("beam", _MAGIC, _log)
#: choices found or read in this process, by entry name (``clear_memory`` forgets them)
_memo: dict[str, _Choice] = {}
#: every such table (``beam_widths`` adds the loop kernels' widths)
memos: list[dict] = [_memo]


def clear_memory() -> None:
    """Forget the choices held in memory, the loop kernels' widths too (the disk cache stays):
    the next compile reads it."""
    for memo in memos:
        memo.clear()


@functools.lru_cache(maxsize=1)
def _cpu_model() -> str:
    """This CPU's model name (``/proc/cpuinfo``), part of BEAM's cache keys."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _entry_name(tunable: TunableGemm, target: Target, beam_width: int) -> str:
    text = "\n".join((BEAM_VERSION, tunable.key, target.key(), _cpu_model(), f"width={beam_width}",
                      cpu.code_version()))
    return hashlib.sha256(text.encode()).hexdigest()


def _read_entry(name: str, tunable: TunableGemm) -> "_Choice | None":
    """The cached choice, or None (missing; or corrupt: removed, with a warning)."""
    path = _disk_cache.entry(name, ".json")
    if path is None or not path.exists():
        return None
    data = _disk_cache.read(path)
    try:
        if data is None:
            raise ValueError("its checksum does not match")
        entry = json.loads(data.decode())
        schedule = GemmSchedule.from_json(entry["schedule"])
        if not valid(tunable.problem, schedule):
            raise ValueError(f"schedule {schedule.describe()} does not fit {tunable.problem.describe()}")
        times = [float(entry[k]) for k in ("default_s", "best_s")]
        if not all(math.isfinite(t) and t >= 0 for t in times):
            raise ValueError(f"bad times {times}")
        return _Choice(schedule, times[0], times[1], int(entry["candidates"]), float(entry["search_s"]), True)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as why:
        warnings.warn(f"BEAM cache entry {path} is corrupt ({why}); searching {tunable.name} "
                      f"({tunable.problem.describe()}) again", BeamWarning, stacklevel=2)
        try:
            os.unlink(path)
        except OSError:
            pass
        return None


def _write_entry(name: str, tunable: TunableGemm, choice: _Choice) -> None:
    path = _disk_cache.entry(name, ".json")
    if path is None:
        return
    entry = {"problem": tunable.problem.describe(), "schedule": choice.schedule.to_json(),
             "default_s": choice.default_s, "best_s": choice.best_s, "candidates": choice.candidates,
             "search_s": choice.search_s}
    _disk_cache.write(path, json.dumps(entry).encode())
