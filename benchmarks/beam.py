"""BEAM: fgrad's searched contraction schedules against its heuristics, ms/step and search seconds.

For the MNIST training step (``mnist_step.py``'s model and step, batch 128) and single GEMMs of
the shapes the models use, with ``FGRAD_BEAM`` = 0 (the heuristics), 2 and 4: each
(case, BEAM, threads) runs in a fresh process on an empty cache, so its first call includes the
whole search; a second process on the same cache then shows the cached choices' first call (and searches
what the first one's budget left unsearched).

Columns: ms per step/call (median of the timed calls after warm-up), the speed-up over BEAM=0 of
the same case and threads, the search's seconds and contractions searched (``beam.search_stats``),
and both first calls. ``FGRAD_BEAM_BUDGET_S`` (``--budget``) bounds each program's search.
Run it on a quiet machine (``--wait-idle``); the header says how busy the machine was.

    FGRAD_DATA_DIR=... python benchmarks/beam.py                       # all cases, BEAM 0,2,4, 2 threads
    python benchmarks/beam.py --cases gemm-1024 --beam 0,2 --threads 1,2 --steps 20
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

from _common import (REPO_ROOT, Table, add_machine_header, emit_result, pin_threads, run_worker,
                     wait_for_idle)

#: single GEMMs (batch, m, n, k): 1024^3, the MNIST dense layer's forward and weight gradient
#: (128x1600 @ 1600x10; 1600x128 @ 128x10), and a GPT attention product per head (8 heads)
GEMMS = {"gemm-1024": (1, 1024, 1024, 1024), "dense-fwd": (1, 128, 10, 1600),
         "dense-wgrad": (1, 1600, 10, 128), "attn-8x128x128x64": (8, 128, 128, 64)}
CASES = ["mnist", *GEMMS]


def build_case(case: str):
    """A function running one step (MNIST) or one GEMM call, compiled on its first call."""
    sys.path.insert(0, REPO_ROOT)
    if case == "mnist":
        import mnist_step
        return mnist_step.build_fgrad(0)
    import numpy as np
    import fgrad
    batch, m, n, k = GEMMS[case]
    rng = np.random.default_rng(0)
    lead = (batch,) if batch > 1 else ()
    a = rng.standard_normal(lead + (m, k)).astype(np.float32)
    b = rng.standard_normal(lead + (k, n)).astype(np.float32)
    f = fgrad.jit(lambda a, b: a @ b)
    return lambda: np.asarray(f(a, b))


def worker(case: str, threads: int, warmup: int, steps: int) -> dict:
    """One (case, BEAM, threads) in this fresh process: first call, then timed calls."""
    pin_threads(threads)
    from fgrad.backends import beam, cpu
    run = build_case(case)
    start = time.perf_counter()
    run()
    first_call_s = time.perf_counter() - start
    cpu.wait_for_background_compiles()
    for _ in range(warmup):
        run()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    return {"first_call_s": first_call_s, "ms": statistics.median(times),
            "search_s": beam.search_stats["seconds"], "searched": beam.search_stats["searched"],
            "cached": beam.search_stats["cached"]}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {','.join(CASES)}")
    parser.add_argument("--beam", default="0,2,4", help="comma-separated beam widths (0: the heuristics)")
    parser.add_argument("--threads", default="2", help="comma-separated thread counts")
    parser.add_argument("--steps", type=int, default=20, help="timed calls per run")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls after the first")
    parser.add_argument("--budget", type=float, default=60.0, help="FGRAD_BEAM_BUDGET_S: search seconds per program")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per subprocess")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="S",
                        help="wait up to S seconds for the machine to become idle first")
    parser.add_argument("--worker", nargs=4, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def measure(args, case: str, width: int, threads: int) -> tuple[dict, dict]:
    """(cold run, warm run): the first on an empty cache (it searches), the second on its cache."""
    with tempfile.TemporaryDirectory(prefix="fgrad-beam-bench-") as folder:
        env = {"FGRAD_CACHE_DIR": folder, "FGRAD_BEAM": str(width), "FGRAD_BEAM_BUDGET_S": str(args.budget)}
        worker_args = ["--worker", case, str(threads), str(args.warmup), str(args.steps)]
        cold = run_worker(__file__, worker_args, threads, args.timeout, env)
        warm = run_worker(__file__, worker_args, threads, args.timeout, env)
    return cold, warm


def table(args) -> Table:
    busy = wait_for_idle(args.wait_idle)
    result = Table("BEAM: searched contraction schedules vs the heuristics (fgrad, CPU)",
                   ["case", "threads", "BEAM", "ms/step", "vs BEAM=0", "search s", "searched",
                    "first call s", "2nd run: first call s", "2nd run searched"])
    add_machine_header(result, busy)
    for case in args.cases.split(","):
        for threads in [int(t) for t in args.threads.split(",")]:
            base = None
            for width in [int(w) for w in args.beam.split(",")]:
                cold, warm = measure(args, case, width, threads)
                if "error" in cold:
                    result.rows.append([case, str(threads), str(width), cold["error"][:60], "", "", "", "", "", ""])
                    continue
                base = cold["ms"] if width == 0 else base
                speedup = f"{base / cold['ms']:.2f}x" if base else "-"
                result.add_row(case, threads, width, cold["ms"], speedup, cold["search_s"], cold["searched"],
                           cold["first_call_s"], warm.get("first_call_s"), warm.get("searched"))
    result.footnotes.append("ms/step: MNIST training step (batch 128) or one GEMM call, median; "
                            f"search budget {args.budget:g} s per program; first call on an empty cache "
                            "(it searches), then in a second process on that cache (which searches only what the "
                            "budget left unsearched)")
    return result


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        case, threads, warmup, steps = args.worker
        emit_result(worker(case, int(threads), int(warmup), int(steps)))
        return
    unknown = [c for c in args.cases.split(",") if c not in CASES]
    if unknown:
        raise SystemExit(f"unknown case(s) {unknown}; choose from {CASES}")
    if "mnist" in args.cases.split(",") and not os.environ.get("FGRAD_DATA_DIR"):
        print("note: the MNIST case reads the dataset from FGRAD_DATA_DIR (or downloads it)", file=sys.stderr)
    print(table(args).render())


if __name__ == "__main__":
    main()
