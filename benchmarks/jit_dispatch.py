"""Cached jit dispatch: µs per call of ``f(x) = x + 1`` on a float32[8] array.

The array is tiny, so the time is what a framework spends getting a cached compiled
program from Python to the CPU and back: fgrad ``jit`` (on an fgrad Array and on a NumPy
array) vs JAX ``jax.jit`` (with ``block_until_ready``, the bare asynchronous dispatch, and on a
NumPy array) vs NumPy's ``x + 1`` vs
PyTorch eager ``x + 1``; fgrad's eager ``x + 1`` is listed beside them. JAX and PyTorch
rows appear when they are installed (``bash benchmarks/install_peers.sh``).
Target (issue 19): fgrad's cached jit dispatch <= 3 µs (issue 4 asked for 10).

    python benchmarks/jit_dispatch.py [--rounds 5] [--threads N] [--markdown]
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable

from _common import (REPO_ROOT, Table, calls_for, cpu_busy_fraction, idle_warning, interleaved_medians,
                     machine_description, module_version, pin_threads, thread_env)

TARGET_US = 3.0


def fgrad_cases() -> dict[str, Callable[[], Any]]:
    sys.path.insert(0, REPO_ROOT)
    import numpy as np
    import fgrad
    import fgrad.numpy as fnp

    f = fgrad.jit(lambda x: x + 1)
    x = fnp.asarray(np.arange(8, dtype=np.float32))
    expected = np.arange(8, dtype=np.float32) + 1
    n = np.arange(8, dtype=np.float32)
    if not (np.array_equal(np.asarray(f(x)), expected) and np.array_equal(np.asarray(f(n)), expected)):
        raise RuntimeError("fgrad.jit(x + 1) gave a wrong result")
    return {"fgrad jit": lambda: f(x), "fgrad jit on a NumPy array": lambda: f(n),
            "fgrad eager x + 1": lambda: x + 1}


def numpy_cases() -> dict[str, Callable[[], Any]]:
    import numpy as np
    n = np.arange(8, dtype=np.float32)
    return {"NumPy x + 1": lambda: n + 1}


def jax_cases() -> dict[str, Callable[[], Any]]:
    import jax
    import jax.numpy as jnp
    import numpy as np
    f = jax.jit(lambda x: x + 1)
    x = jnp.arange(8, dtype=jnp.float32)
    n = np.arange(8, dtype=np.float32)
    f(x).block_until_ready()
    return {"JAX jit + block_until_ready": lambda: f(x).block_until_ready(),
            "JAX jit (async dispatch only)": lambda: f(x),
            "JAX jit on a NumPy array + block_until_ready": lambda: f(n).block_until_ready()}


def torch_cases() -> dict[str, Callable[[], Any]]:
    import torch
    t = torch.arange(8, dtype=torch.float32)
    return {"PyTorch eager x + 1": lambda: t + 1}


PEERS = [("fgrad", fgrad_cases, "numpy"), ("NumPy", numpy_cases, "numpy"),
         ("JAX", jax_cases, "jax"), ("PyTorch", torch_cases, "torch")]


def collect_cases() -> tuple[dict[str, Callable[[], Any]], list[str]]:
    """Every case that can run here, and a note for each framework that cannot."""
    cases: dict[str, Callable[[], Any]] = {}
    missing = []
    for label, make, package in PEERS:
        if module_version(package) is None:
            missing.append(f"{label}: not installed (bash benchmarks/install_peers.sh)")
            continue
        try:
            new = make()
            for fn in new.values():
                fn()  # warm up caches and compile
            cases.update(new)
        except Exception as error:  # a broken peer must not hide the others
            missing.append(f"{label}: failed ({type(error).__name__}: {str(error)[:120]})")
    return cases, missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of interleaved timing (3 repeats each)")
    parser.add_argument("--threads", type=int, default=None, help="threads for every framework (default: all)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args()
    if args.threads is not None:
        os.environ.update(thread_env(args.threads))  # before any framework is imported
        pin_threads(args.threads)

    busy = cpu_busy_fraction()
    cases, missing = collect_cases()
    numbers = {name: calls_for(fn) for name, fn in cases.items()}
    seconds = interleaved_medians({name: fn for name, fn in cases.items()}, number=max(numbers.values()),
                                  rounds=args.rounds) if cases else {}
    numpy_us = seconds.get("NumPy x + 1", float("nan")) * 1e6

    table = Table("Cached dispatch of f(x) = x + 1 on float32[8] (µs per call, median)",
                  ["implementation", "µs/call", "vs NumPy"])
    table.header_notes.append(machine_description())
    warning = idle_warning(busy)
    if warning:
        table.header_notes.append(warning)
    for name, s in seconds.items():
        table.add_row(name, s * 1e6, f"{s * 1e6 / numpy_us:.1f}x")
    versions = ", ".join(f"{p} {module_version(p)}" for p in ("jax", "torch") if module_version(p))
    table.footnotes += [f"peers: {versions or 'none installed'}"] + [f"not measured: {m}" for m in missing]
    fgrad_us = seconds.get("fgrad jit", float("nan")) * 1e6
    verdict = "met" if fgrad_us <= TARGET_US else "NOT met"
    table.footnotes.append(f"target: fgrad jit <= {TARGET_US:.0f} µs -> {verdict} ({fgrad_us:.2f} µs)")
    print(table.markdown() if args.markdown else table.render())


if __name__ == "__main__":
    main()
