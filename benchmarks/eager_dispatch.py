"""Eager dispatch cost: fgrad (outside jit) vs NumPy on tiny arrays, µs per op.

Each op runs on a float32[8] array; the time is the median over repeats of the mean
over a batch of calls, so it measures Python/dispatch overhead rather than math.
The target (issue 2) is an overhead over NumPy below 10 µs for ``x + 1``.

    python benchmarks/eager_dispatch.py [--repeats 15] [--number 5000]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import timeit

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fgrad.numpy as fnp  # noqa: E402

CASES = [
    ("x + 1", "x + 1", "n + 1"),
    ("x * y", "x * y", "n * m"),
    ("exp(x)", "fnp.exp(x)", "np.exp(n)"),
    ("sum(x)", "fnp.sum(x)", "np.sum(n)"),
    ("x[2:5]", "x[2:5]", "n[2:5]"),
    ("x @ y", "x @ y", "n @ m"),
]


def cpu_idle_fraction(interval: float = 0.5) -> float:
    """Fraction of CPU time spent idle over ``interval`` seconds (from /proc/stat)."""
    def snapshot():
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        return fields[3] + fields[4], sum(fields)
    try:
        idle0, total0 = snapshot()
        time.sleep(interval)
        idle1, total1 = snapshot()
    except OSError:
        return float("nan")
    return (idle1 - idle0) / max(total1 - total0, 1)


def median_us(stmt: str, env: dict, number: int, repeats: int) -> float:
    times = timeit.repeat(stmt, globals=env, number=number, repeat=repeats)
    return statistics.median(times) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--number", type=int, default=5000)
    args = parser.parse_args()

    idle = cpu_idle_fraction()
    print(f"CPU idle before the run: {idle:.0%} ({os.cpu_count()} cores)"
          + ("  -- busy machine, numbers will be noisy" if idle < 0.5 else ""))
    n = np.arange(8, dtype=np.float32)
    m = np.arange(8, dtype=np.float32) + 1
    env = {"fnp": fnp, "np": np, "n": n, "m": m, "x": fnp.asarray(n), "y": fnp.asarray(m)}
    for _, ours, theirs in CASES:  # warm caches
        eval(ours, env), eval(theirs, env)

    print(f"{'op (float32[8])':<18}{'fgrad µs':>10}{'NumPy µs':>10}{'overhead µs':>13}")
    for name, ours, theirs in CASES:
        # interleave the two so that load changes hit both alike
        pairs = [(median_us(ours, env, args.number, 3), median_us(theirs, env, args.number, 3))
                 for _ in range(max(1, args.repeats // 3))]
        t_ours = statistics.median(p[0] for p in pairs)
        t_theirs = statistics.median(p[1] for p in pairs)
        print(f"{name:<18}{t_ours:>10.2f}{t_theirs:>10.2f}{t_ours - t_theirs:>13.2f}")
    print("target: overhead of x + 1 below 10 µs")


if __name__ == "__main__":
    main()
