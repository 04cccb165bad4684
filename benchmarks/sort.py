"""Sorting: jitted ``sort`` of float32[1_000_000] and of float32[1000, 1000] along its rows, ms.

Rows: ``fgrad.jit`` of ``lax.sort`` (native: LSD radix sort on the CPU, ``fgrad.lower.sort``),
``fgrad.jit`` of ``lax.argsort``, the same programs on the reference path
(``FGRAD_JIT_BACKEND=reference``: what a sort cost before it had a lowering), NumPy's
``np.sort`` (default kind: a SIMD quicksort, not stable) and ``np.sort(kind="stable")``
(the order fgrad and JAX give), and JAX's ``jit(jnp.sort)`` where installed (or in the Python
given by ``--jax-python``). Each thread count runs in a fresh process. A script, not a test:

    python benchmarks/sort.py [--threads 1,2] [--jax-python /path/to/python] [--markdown]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from _common import (REPO_ROOT, RESULT_PREFIX, Table, cpu_busy_fraction, emit_result, idle_warning,
                     machine_description, pin_threads, run_worker, single_call_seconds, thread_env)

SHAPES = {"f32[1000000]": (1_000_000,), "f32[1000,1000] rows": (1000, 1000)}


def _data(shape):
    import numpy as np
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def fgrad_cases(shape):
    sys.path.insert(0, REPO_ROOT)
    import numpy as np
    import fgrad
    from fgrad import lax, numpy as fnp
    x = fnp.asarray(_data(shape))
    sort, argsort = fgrad.jit(lambda a: lax.sort(a, -1)), fgrad.jit(lambda a: lax.argsort(a, -1))
    if not np.array_equal(np.asarray(sort(x)), np.sort(np.asarray(x), axis=-1)):
        raise RuntimeError("fgrad's sort gave a wrong result")
    label = "reference path" if os.environ.get("FGRAD_JIT_BACKEND") == "reference" else "native"
    return {f"fgrad.jit sort ({label})": lambda: np.asarray(sort(x)),
            f"fgrad.jit argsort ({label})": lambda: np.asarray(argsort(x))}


def numpy_cases(shape):
    import numpy as np
    x = _data(shape)
    return {"np.sort (quicksort, unstable)": lambda: np.sort(x, axis=-1),
            "np.sort(kind='stable')": lambda: np.sort(x, axis=-1, kind="stable")}


def jax_cases(shape):
    import jax
    import jax.numpy as jnp
    x = jnp.asarray(_data(shape))
    f = jax.jit(lambda a: jnp.sort(a, axis=-1))
    return {"JAX jit(jnp.sort)": lambda: f(x).block_until_ready()}


def worker(impl: str, shape_name: str) -> None:
    pin_threads(int(os.environ.get("BENCHMARK_THREADS", "1")))
    makers = {"fgrad": fgrad_cases, "fgrad-reference": fgrad_cases, "numpy": numpy_cases, "jax": jax_cases}
    try:
        cases = makers[impl](SHAPES[shape_name])
    except ImportError as e:
        emit_result({"skipped": f"{impl} not installed ({e.name})"})
        return
    except Exception as e:
        emit_result({"error": f"{type(e).__name__}: {str(e)[:120]}"})
        return
    emit_result({name: 1e3 * statistics.median(single_call_seconds(fn, 7)) for name, fn in cases.items()})


def _worker_in(python: str, impl: str, shape_name: str, threads: int) -> dict:
    """``run_worker`` with another Python interpreter (one where JAX is installed)."""
    env = thread_env(threads)
    env["PYTHONPATH"] = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.run([python, __file__, "--worker", impl, shape_name], env=env, capture_output=True,
                          text=True, timeout=900)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    return {"error": f"exit {proc.returncode}: {(proc.stderr.strip().splitlines() or ['no output'])[-1][:160]}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--impl", default="fgrad,fgrad-reference,numpy,jax")
    parser.add_argument("--jax-python", help="a Python with JAX installed, for the JAX row")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    busy = cpu_busy_fraction()
    threads = [int(t) for t in args.threads.split(",")]
    columns = [f"{s}, {t} thr" for s in SHAPES for t in threads]
    table = Table(f"sort along the last axis, ms per call (median of 7)  ({machine_description()})",
                  ["implementation"] + columns)
    rows: dict[str, list] = {}
    notes = []
    for impl in args.impl.split(","):
        env = {"FGRAD_JIT_BACKEND": "reference"} if impl == "fgrad-reference" else {}
        for s in SHAPES:
            for t in threads:
                if impl == "jax" and args.jax_python:
                    res = _worker_in(args.jax_python, impl, s, t)
                else:
                    res = run_worker(__file__, ["--worker", impl, s], t, timeout_s=900, extra_env=env)
                if "skipped" in res or "error" in res:
                    notes.append(f"{impl} {s} ({t} threads): {res.get('skipped') or res.get('error')}")
                    continue
                for name, ms in res.items():
                    rows.setdefault(name, [None] * len(columns))[columns.index(f"{s}, {t} thr")] = ms
    for name, cells in rows.items():
        table.add_row(name, *[c if c is not None else None for c in cells])
    warning = idle_warning(busy)
    lines = [table.markdown() if args.markdown else table.render()] + notes + ([warning] if warning else [])
    print("\n".join(lines))


if __name__ == "__main__":
    main()
