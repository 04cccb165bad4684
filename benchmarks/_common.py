"""Helpers shared by the benchmark scripts: machine checks, thread control, timing, tables.

Any script in ``benchmarks/`` may use these (``from _common import ...`` works when the
script is run as ``python benchmarks/NAME.py``, since Python puts the script's folder on
``sys.path``):

- ``cpu_busy_fraction`` / ``idle_warning`` / ``wait_for_idle``: is the machine quiet?
  (/proc/stat sampled over an interval; other people's jobs ruin timings on 2 cores);
  ``busy_cpu_seconds`` measures others' load during a timed section
- ``thread_env`` + ``pin_threads``: run a configuration with N threads in every framework
  (environment variables must be set before NumPy/JAX/PyTorch are imported, so a
  configuration runs in its own subprocess: ``run_worker``); ``cold_cache_env`` empties
  the on-disk compilation caches so first calls measure compiles
- ``time_per_call`` / ``interleaved_medians``: µs per call, median over repeats
- ``Table``: one aligned text table with a title and notes (also as Markdown)
- ``machine_description``: CPU model, cores, SIMD level, date, for the README
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import timeit
from typing import Any, Callable, Iterable, Sequence

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT_PREFIX = "BENCHMARK-RESULT "


# --- is the machine idle? ------------------------------------------------------------------

def _cpu_times() -> tuple[int, int]:
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return idle, sum(fields)


def cpu_busy_fraction(interval: float = 1.0) -> float:
    """Fraction of all cores' time spent busy over ``interval`` seconds (NaN without /proc)."""
    try:
        idle0, total0 = _cpu_times()
        time.sleep(interval)
        idle1, total1 = _cpu_times()
    except (OSError, ValueError, IndexError):
        return float("nan")
    return 1.0 - (idle1 - idle0) / max(total1 - total0, 1)


def busy_cpu_seconds() -> float:
    """Seconds of CPU time all cores have spent busy since boot (NaN without /proc/stat).
    The difference over an interval, less this process's own CPU time, is the load that
    other processes put on the machine meanwhile."""
    try:
        idle, total = _cpu_times()
    except (OSError, ValueError, IndexError):
        return float("nan")
    return (total - idle) / os.sysconf("SC_CLK_TCK")


def idle_warning(busy: float, threshold: float = 0.10) -> str | None:
    """A warning line when ``busy`` (from ``cpu_busy_fraction``) says others are using the CPUs."""
    if busy != busy:  # NaN
        return "WARNING: could not read /proc/stat; the machine may not be idle"
    if busy > threshold:
        return (f"WARNING: machine not idle before timing ({busy:.0%} of {os.cpu_count()} cores busy "
                "over 1 s); numbers will be noisy, rerun when it is quiet")
    return None


def wait_for_idle(max_wait_s: float, threshold: float = 0.10) -> float:
    """Sample once a second until the machine is idle or ``max_wait_s`` passed; the last sample."""
    deadline = time.monotonic() + max_wait_s
    busy = cpu_busy_fraction()
    while busy > threshold and time.monotonic() < deadline:
        busy = cpu_busy_fraction()
    return busy


# --- threads ---------------------------------------------------------------------------------

def thread_env(threads: int, base: dict | None = None) -> dict:
    """An environment in which NumPy (OpenBLAS/MKL), OpenMP, fgrad, XLA and PyTorch use
    ``threads`` threads. Must be in place before those libraries are imported."""
    env = dict(os.environ if base is None else base)
    n = str(threads)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                 "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "FGRAD_NUM_THREADS"):
        env[name] = n
    xla = [flag for flag in env.get("XLA_FLAGS", "").split()
           if not flag.startswith(("--xla_cpu_multi_thread_eigen", "intra_op_parallelism_threads"))]
    if threads == 1:
        xla += ["--xla_cpu_multi_thread_eigen=false", "intra_op_parallelism_threads=1"]
    env["XLA_FLAGS"] = " ".join(xla)
    env["BENCHMARK_THREADS"] = n
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep XLA's start-up chatter out of the tables
    return env


def pin_threads(threads: int) -> list[int]:
    """Restrict this process to its first ``threads`` CPUs, so thread pools that size themselves
    from the CPUs they may run on (XLA's, PyTorch's) see ``threads``. Returns the CPUs used."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return []
    chosen = allowed[:max(1, threads)]
    os.sched_setaffinity(0, chosen)
    return chosen


def run_worker(script: str, args: Sequence[str], threads: int, timeout_s: float | None = None,
               extra_env: dict | None = None) -> dict:
    """Run ``python script *args`` with ``threads`` threads in a fresh process and return the
    dict it printed with ``emit_result`` (or ``{"error": ...}`` when it failed)."""
    env = thread_env(threads)
    env.update(extra_env or {})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO_ROOT, env.get("PYTHONPATH")]))
    try:
        proc = subprocess.run([sys.executable, script, *args], env=env, capture_output=True,
                              text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["no output"]
    return {"error": f"exit {proc.returncode}: {tail[0][:160]}"}


def cold_cache_env(folder: str) -> dict:
    """Variables that point every framework's on-disk compilation cache at an empty ``folder``
    (or switch it off), so that a first call measures a real compile, not a cache load."""
    return {"FGRAD_CACHE_DIR": os.path.join(folder, "fgrad"),
            "TORCHINDUCTOR_CACHE_DIR": os.path.join(folder, "inductor"),
            "TORCHINDUCTOR_FX_GRAPH_CACHE": "0", "TORCHINDUCTOR_AUTOGRAD_CACHE": "0",
            "TRITON_CACHE_DIR": os.path.join(folder, "triton"),
            "JAX_ENABLE_COMPILATION_CACHE": "false"}


def emit_result(result: dict) -> None:
    """Print a worker's result on one line for ``run_worker`` to pick up."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


# --- timing ----------------------------------------------------------------------------------

def single_call_seconds(fn: Callable[[], Any], repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` single calls of ``fn()``, after one untimed warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def time_per_call(fn: Callable[[], Any], number: int, repeats: int) -> list[float]:
    """Seconds per call of ``fn()``: one entry per repeat, each the mean over ``number`` calls."""
    return [t / number for t in timeit.repeat(fn, number=number, repeat=repeats)]


def interleaved_medians(cases: dict[str, Callable[[], Any]], number: int, rounds: int,
                        repeats_per_round: int = 3) -> dict[str, float]:
    """Median seconds per call of each case, alternating the cases round by round so that a
    change of machine load hits all of them alike."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            samples[name] += time_per_call(fn, number, repeats_per_round)
    return {name: statistics.median(values) for name, values in samples.items()}


def calls_for(fn: Callable[[], Any], target_s: float = 0.02, limit: int = 1_000_000) -> int:
    """How many calls of ``fn`` take about ``target_s`` (so a timing batch is neither tiny nor long)."""
    number = 1
    while number < limit:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        if time.perf_counter() - start >= target_s:
            break
        number *= 2
    return number


def fgrad_final_code_wait(name: str) -> float:
    """For fgrad (tiered compilation): seconds until the final builds of the kernels that ran
    quick builds first are swapped in (0 for other frameworks, whose first call compiles all)."""
    if not name.startswith("fgrad"):
        return 0.0
    from fgrad.backends import cpu
    wait = getattr(cpu, "wait_for_background_compiles", None)     # fgrad before tiering: nothing to wait for
    start = time.perf_counter()
    if wait is not None:
        wait()
    return time.perf_counter() - start


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (``ru_maxrss`` is KiB on Linux)."""
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def current_rss_mib() -> float:
    """Resident memory of this process now, MiB (NaN where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


# --- description and tables ------------------------------------------------------------------

def machine_description() -> str:
    """One line: date, CPU model, usable cores, SIMD level, Python and NumPy versions."""
    model = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model in ("", platform.machine()):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "SSE"
    fma = "+FMA" if "fma" in flags else ""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    import numpy
    return (f"{datetime.date.today().isoformat()}, {model}, {cores} cores, {simd}{fma}, "
            f"Python {platform.python_version()}, NumPy {numpy.__version__}")


def module_version(name: str) -> str | None:
    """The installed version of a package, or None when it is not installed (no import)."""
    from importlib import metadata
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


class Table:
    """A text table: a title, header notes (warnings, machine), rows, and footnotes."""

    def __init__(self, title: str, columns: Sequence[str]):
        self.title = title
        self.columns = list(columns)
        self.header_notes: list[str] = []
        self.rows: list[list[str]] = []
        self.footnotes: list[str] = []

    def add_row(self, *cells: Any) -> None:
        self.rows.append([format_cell(c) for c in cells])

    def numeric_columns(self) -> list[bool]:
        """Which columns hold only numbers (or dashes): those are right-aligned."""
        def is_number(cell: str) -> bool:
            try:
                float(cell.rstrip("x%"))
                return True
            except ValueError:
                return cell == "-"
        return [bool(self.rows) and all(is_number(r[i]) for r in self.rows) for i in range(len(self.columns))]

    def render(self) -> str:
        widths = [max(len(str(col)), *(len(r[i]) for r in self.rows)) if self.rows else len(col)
                  for i, col in enumerate(self.columns)]
        numeric = self.numeric_columns()

        def line(cells: Iterable[str]) -> str:
            return "  ".join(c.rjust(w) if right else c.ljust(w)
                             for c, w, right in zip(cells, widths, numeric)).rstrip()

        out = [self.title, *self.header_notes, line(self.columns),
               "  ".join("-" * w for w in widths)]
        out += [line(r) for r in self.rows]
        out += self.footnotes
        return "\n".join(out)

    def markdown(self) -> str:
        out = [f"**{self.title}**", ""] + [f"{n}  " for n in self.header_notes]
        out += [""] if self.header_notes else []
        out += ["| " + " | ".join(self.columns) + " |",
                "|" + "|".join("---:" if right else "---" for right in self.numeric_columns()) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in self.rows]
        out += [""] + [f"{n}  " for n in self.footnotes]
        return "\n".join(out)


def format_cell(value: Any) -> str:
    """Numbers with a sensible number of digits; None as a dash."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:
            return "-"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


# --- JAX peers without optax ------------------------------------------------------------------

def jax_adamw(lr: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0):
    """(optimizer, apply_updates) for the JAX peers: optax's adam/adamw when optax is installed,
    else the same update written out (an object with optax's ``init``/``update``)."""
    try:
        import optax
        opt = optax.adamw(lr, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay) if weight_decay else \
            optax.adam(lr, b1=b1, b2=b2, eps=eps)
        return opt, optax.apply_updates
    except ImportError:
        pass
    import jax
    import jax.numpy as jnp
    tree_map = jax.tree_util.tree_map

    class AdamW:
        @staticmethod
        def init(params):
            zeros = tree_map(jnp.zeros_like, params)
            return (jnp.zeros((), jnp.int32), zeros, zeros)

        @staticmethod
        def update(grads, state, params=None):
            count, mu, nu = state
            count = count + 1
            mu = tree_map(lambda m, g: b1 * m + (1 - b1) * g, mu, grads)
            nu = tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, nu, grads)
            c1, c2 = 1 - b1 ** count, 1 - b2 ** count
            step = lambda m, v: (m / c1) / (jnp.sqrt(v / c2) + eps)
            if weight_decay:
                updates = tree_map(lambda m, v, p: -lr * (step(m, v) + weight_decay * p), mu, nu, params)
            else:
                updates = tree_map(lambda m, v: -lr * step(m, v), mu, nu)
            return updates, (count, mu, nu)

    return AdamW(), lambda params, updates: tree_map(lambda p, u: p + u, params, updates)


def add_machine_header(table: "Table", busy: float) -> None:
    """Head ``table`` with the machine's description and, if it was not idle (``busy``, the
    fraction measured before timing), a warning to rerun."""
    table.header_notes.append(machine_description())
    warning = idle_warning(busy)
    if warning:
        table.header_notes.append(warning)
