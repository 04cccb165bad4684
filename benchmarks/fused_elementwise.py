"""Fused elementwise: ``tanh(x*2+1)*x`` over 4M float32, GB/s (4 bytes read + 4 written per element).

Rows: fgrad's kernel IR program compiled by the CPU backend (one vectorised, parallel
loop with the polynomial tanh), ``fgrad.jit`` of the same function where the native
path takes it, NumPy (three passes and temporaries), and JAX / PyTorch where installed.
Each thread count runs in a fresh process holding every implementation, whose calls are
interleaved (a machine whose speed drifts by 2-3x between processes made separate
processes' figures incomparable). Also prints the cost of calling a trivial
compiled program (the backend's per-call overhead), and the copy ``y = x`` (fgrad's parallel
kernel and NumPy's ``copyto``): the machine's copy bandwidth in the same run. Targets: >= 2x
NumPy (issue 4); fgrad.jit >= JAX's jit and >= 80% of the best copy (issue 19).

    python benchmarks/fused_elementwise.py [--size 4194304] [--threads 1,2] [--markdown]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from _common import (REPO_ROOT, single_call_seconds, Table, cpu_busy_fraction, emit_result, idle_warning,
                     machine_description, pin_threads, run_worker)

TARGET_RATIO = 2.0
#: the machine's copy bandwidth, measured in the same run (issue 19: fgrad.jit >= 80% of it)
COPY_ROW = "copy y = x (fgrad kernel IR, out=)"
NUMPY_COPY_ROW = "copy y = x (NumPy copyto)"
COPY_TARGET = 0.8


#: rounds of interleaved calls (3 calls of each implementation per round)
ROUNDS = 8


def fgrad_program_case(n: int):
    sys.path.insert(0, REPO_ROOT)
    import numpy as np
    from fgrad.backends.cpu import compile_program, wait_for_background_compiles
    from fgrad.lower import kernel as K

    x, y, i = K.Param("x", K.float32, n), K.Param("y", K.float32, n), K.Var("i")
    value = K.op("tanh", x[i] * 2.0 + 1.0) * x[i]
    kern = K.Kernel("fused", (x, y), (K.Range(i, 0, n, (y.store(i, value),), parallel=True,
                                              vectorize=K.AUTO, unroll=2),))
    bx, by = K.Buffer("x", K.float32, n), K.Buffer("y", K.float32, n)
    exe = compile_program(K.Program("fused", (bx,), (by,), (K.Call(kern, (bx, by)),)))
    data = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    out = np.empty_like(data)
    (got,) = exe(data)
    wait_for_background_compiles()
    if not np.allclose(got, np.tanh(data * 2 + 1) * data, atol=1e-5):
        raise RuntimeError("fgrad program gave a wrong result")
    copy = compile_program(K.Program("copy", (bx,), (by,), (K.Call(K.Kernel(
        "copy", (x, y), (K.Range(i, 0, n, (y.store(i, x[i]),), parallel=True, vectorize=K.AUTO, unroll=2),)),
        (bx, by)),)))
    copy(data, out=[out])
    wait_for_background_compiles()
    return {"fgrad kernel IR (fresh output)": lambda: exe(data),
            "fgrad kernel IR (out=)": lambda: exe(data, out=[out]),
            COPY_ROW: lambda: copy(data, out=[out])}


def fgrad_jit_case(n: int):
    sys.path.insert(0, REPO_ROOT)
    import numpy as np
    import fgrad
    import fgrad.numpy as fnp

    from fgrad.backends.cpu import wait_for_background_compiles
    f = fgrad.jit(lambda x: fnp.tanh(x * 2 + 1) * x)
    x = fnp.asarray(np.random.default_rng(0).standard_normal(n).astype(np.float32))
    np.asarray(f(x))
    wait_for_background_compiles()      # time the final build, not the quick one (tiered compilation)
    return {"fgrad.jit": lambda: f(x)}


def numpy_case(n: int):
    import numpy as np
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    out = np.empty_like(x)
    return {"NumPy": lambda: np.tanh(x * 2 + 1) * x, NUMPY_COPY_ROW: lambda: np.copyto(out, x)}


def jax_case(n: int):
    import jax
    import jax.numpy as jnp
    f = jax.jit(lambda x: jnp.tanh(x * 2 + 1) * x)
    x = jnp.asarray(__import__("numpy").random.default_rng(0).standard_normal(n).astype("float32"))
    return {"JAX jit": lambda: f(x).block_until_ready()}


def torch_case(n: int):
    import torch
    x = torch.randn(n)
    return {"PyTorch eager": lambda: torch.tanh(x * 2 + 1) * x}


def dispatch_case():
    """µs per call of a compiled program on float32[8] (y = x + 1)."""
    sys.path.insert(0, REPO_ROOT)
    import numpy as np
    from fgrad.backends.cpu import compile_program
    from fgrad.lower import kernel as K
    x, y, i = K.Param("x", K.float32, 8), K.Param("y", K.float32, 8), K.Var("i")
    kern = K.Kernel("inc", (x, y), (K.Range(i, 0, 8, (y.store(i, x[i] + 1.0),), vectorize=K.AUTO),))
    bx, by = K.Buffer("x", K.float32, 8), K.Buffer("y", K.float32, 8)
    exe = compile_program(K.Program("inc", (bx,), (by,), (K.Call(kern, (bx, by)),)))
    data = np.arange(8, dtype=np.float32)
    number = 20000
    best = min(_time_calls(lambda: exe(data), number) for _ in range(5))
    return best * 1e6


def _time_calls(fn, number: int) -> float:
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


MAKERS = {"fgrad": fgrad_program_case, "fgrad-jit": fgrad_jit_case, "numpy": numpy_case,
          "jax": jax_case, "torch": torch_case}


def worker(impls: str, n: int) -> None:
    """Every implementation in ``impls`` in this one process, their calls interleaved round by
    round (``ROUNDS``), so that the machine's speed changes hit them all alike."""
    pin_threads(int(os.environ.get("BENCHMARK_THREADS", "1")))
    cases, notes = {}, []
    for impl in impls.split(","):
        try:
            cases.update(MAKERS[impl](n))
        except ImportError as e:
            notes.append(f"{impl}: not installed ({e.name})")
        except Exception as e:       # a peer or a path that cannot run this function
            notes.append(f"{impl}: {type(e).__name__}: {str(e)[:120]}")
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():
        fn()                         # warm-up
    for _ in range(ROUNDS):
        for name, fn in cases.items():
            samples[name] += single_call_seconds(fn, 3)
    result = {name: n * 8 / statistics.median(sorted(times)[: max(3, len(times) // 2)]) / 1e9
              for name, times in samples.items()}
    if "fgrad" in impls.split(","):
        result["dispatch_us"] = dispatch_case()
    emit_result({"gbs": result, "notes": notes})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4 * 1024 * 1024)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--impl", default="fgrad,fgrad-jit,numpy,jax,torch")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.size)
        return
    busy = cpu_busy_fraction()
    threads = [int(t) for t in args.threads.split(",")]
    table = Table(f"tanh(x*2+1)*x over {args.size} float32, GB/s  ({machine_description()})",
                  ["implementation"] + [f"{t} thread{'s' if t > 1 else ''}" for t in threads])
    rows: dict[str, list] = {}
    notes, dispatch = [], {}
    for t in threads:
        res = run_worker(__file__, ["--worker", args.impl, "--size", str(args.size)], t, timeout_s=900)
        if "error" in res:
            notes.append(f"{t} threads: {res['error']}")
            continue
        notes += [f"{note} ({t} threads)" for note in res["notes"]]
        gbs = res["gbs"]
        if "dispatch_us" in gbs:
            dispatch[t] = gbs.pop("dispatch_us")
        for name, value in gbs.items():
            rows.setdefault(name, [None] * len(threads))[threads.index(t)] = value
    for name, cells in rows.items():
        table.add_row(name, *[f"{c:.2f}" if c is not None else "-" for c in cells])
    numpy_row = rows.get("NumPy")
    best_fgrad = rows.get("fgrad kernel IR (fresh output)")
    lines = [table.markdown() if args.markdown else table.render()]
    if numpy_row and best_fgrad:
        ratios = [f"{t} thr: {f / n:.1f}x" for t, f, n in zip(threads, best_fgrad, numpy_row) if f and n]
        lines.append(f"fgrad / NumPy: {', '.join(ratios)} (target >= {TARGET_RATIO:.0f}x)")
    copy_rows = [rows[name] for name in (COPY_ROW, NUMPY_COPY_ROW) if name in rows]
    copies = [max((c for c in cells if c), default=None) for cells in zip(*copy_rows)]
    jit_row = rows.get("fgrad.jit")
    if jit_row and copies:
        ratios = [f"{t} thr: {j / c:.0%}" for t, j, c in zip(threads, jit_row, copies) if j and c]
        lines.append(f"fgrad.jit / the best copy: {', '.join(ratios)} (target >= {COPY_TARGET:.0%})")
    jax_row = rows.get("JAX jit")
    if jit_row and jax_row:
        ratios = [f"{t} thr: {j / x:.2f}x" for t, j, x in zip(threads, jit_row, jax_row) if j and x]
        lines.append(f"fgrad.jit / JAX jit: {', '.join(ratios)} (target >= 1x)")
    if dispatch:
        lines.append("trivial compiled program call (float32[8]): "
                     + ", ".join(f"{us:.2f} us ({t} thr)" for t, us in dispatch.items()))
    warning = idle_warning(busy)
    lines += notes + ([warning] if warning else [])
    print("\n".join(lines))


if __name__ == "__main__":
    main()
