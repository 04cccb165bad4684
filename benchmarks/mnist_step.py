"""The MNIST training step at batch 128: fgrad vs JAX vs PyTorch, ms/step and compile seconds.

The model is the tinygrad tutorial's (the Keras mnist_convnet): Conv2d(1,32,3) -> relu ->
max_pool 2 -> Conv2d(32,64,3) -> relu -> max_pool 2 -> flatten -> dropout 0.5 ->
Linear(1600,10); Adam 1e-3; sparse categorical cross-entropy; each step samples its batch
of 128 at random from the real MNIST training set (``fgrad.datasets.mnist()``; set
``FGRAD_DATA_DIR``). Implementations:

  fgrad          one ``fgrad.jit`` step over (model, opt_state, key): sampling, forward,
                 backward, Adam (fgrad.nn / fgrad.optim / fgrad.random)
  jax            one ``jax.jit`` step, optax Adam (a hand-written Adam without optax),
                 pooling with ``lax.reduce_window``
  jax-reshape    the same with reshape-based pooling (crop, reshape, max over the 2x2 axes)
  torch          PyTorch eager (torch.optim.Adam)
  torch-compile  PyTorch with ``torch.compile`` on the loss (forward + AOT backward) and
                 on ``optimizer.step``

Every (implementation, thread count) runs in a fresh subprocess whose thread settings are
fixed before any framework is imported (see ``_common.thread_env``). Reported: ms/step
(median of the timed steps after warm-up), the first call (trace + compile + one step) in
seconds, GFLOP/s from the analytic FLOP count of the step, and the loss after the run
(a check that every implementation trains). Peers are optional
(``bash benchmarks/install_peers.sh``).

    python benchmarks/mnist_step.py                            # all, 1 and 2 threads
    python benchmarks/mnist_step.py --impl fgrad,jax --threads 2 --steps 50 --repeats 3
    python benchmarks/mnist_step.py --steps-memory 300         # peak RSS of a 300-step run
    python benchmarks/mnist_step.py --steps-memory 7000        # the issue's 7000-step comparison
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from typing import Callable

from _common import (REPO_ROOT, Table, add_machine_header, busy_cpu_seconds, cold_cache_env,
                     cpu_busy_fraction, current_rss_mib, emit_result, fgrad_final_code_wait, jax_adamw,
                     module_version, peak_rss_mib, pin_threads, run_worker, wait_for_idle)

BATCH = 128
LEARNING_RATE = 1e-3
IMPLEMENTATIONS = ["fgrad", "jax", "jax-reshape", "torch", "torch-compile"]
PACKAGE_OF = {"fgrad": "numpy", "jax": "jax", "jax-reshape": "jax", "torch": "torch",
              "torch-compile": "torch"}


# --- the FLOP count --------------------------------------------------------------------------

def step_flops(batch: int = BATCH) -> dict[str, int]:
    """FLOPs (2 per multiply-add) of the contractions in one training step, by part.

    conv1 needs no input gradient (its input is the data); everything elementwise (relu,
    pooling, softmax, Adam) is left out: it is < 1% of the total."""
    conv1 = 2 * batch * 32 * 26 * 26 * (1 * 3 * 3)     # out (B,32,26,26), 9 MACs each
    conv2 = 2 * batch * 64 * 11 * 11 * (32 * 3 * 3)    # out (B,64,11,11), 288 MACs each
    dense = 2 * batch * 1600 * 10
    return {"conv1 forward": conv1, "conv1 weight grad": conv1,
            "conv2 forward": conv2, "conv2 input grad": conv2, "conv2 weight grad": conv2,
            "dense forward": dense, "dense input grad": dense, "dense weight grad": dense}


# --- the implementations: each returns a function that runs one step and returns its loss -------

def load_mnist_numpy():
    """The training set as NumPy arrays, through fgrad's loader (checksummed real MNIST)."""
    import numpy as np
    sys.path.insert(0, REPO_ROOT)
    from fgrad import datasets
    X_train, Y_train, _, _ = datasets.mnist()
    return np.asarray(X_train), np.asarray(Y_train)


def build_fgrad(seed: int) -> Callable[[], float]:
    sys.path.insert(0, REPO_ROOT)
    import fgrad
    import fgrad.numpy as fnp
    from fgrad import datasets, nn, optim, random

    class Model(nn.Module):
        def __init__(self, *, key):
            k1, k2, k3 = random.split(key, 3)
            self.c1 = nn.Conv2d(1, 32, 3, key=k1)
            self.c2 = nn.Conv2d(32, 64, 3, key=k2)
            self.l1 = nn.Linear(1600, 10, key=k3)

        def __call__(self, x, dropout_key):
            x = nn.max_pool2d(nn.relu(self.c1(x)), 2)
            x = nn.max_pool2d(nn.relu(self.c2(x)), 2)
            return self.l1(nn.dropout(nn.flatten(x), 0.5, key=dropout_key))

    X_train, Y_train, _, _ = datasets.mnist()
    num_train = X_train.shape[0]
    optimizer = optim.adam(LEARNING_RATE)

    @fgrad.jit
    def step(model, opt_state, key):
        key, sample_key, dropout_key = random.split(key, 3)
        index = random.randint(sample_key, (BATCH,), 0, num_train)
        x, y = X_train[index].astype(fnp.float32) / 255.0, Y_train[index]

        def loss_fn(m):
            return nn.sparse_categorical_crossentropy(m(x, dropout_key), y)

        loss, grads = fgrad.value_and_grad(loss_fn)(model)
        updates, opt_state = optimizer.update(grads, opt_state, model)
        return optim.apply_updates(model, updates), opt_state, key, loss

    init_key, run_key = random.split(random.key(seed))
    model = Model(key=init_key)
    state = [model, optimizer.init(model), run_key]

    def run() -> float:
        out = step(*state)
        state[:] = out[:3]
        return float(out[3])

    return run


def _jax_pool_reduce_window(x):
    import jax.numpy as jnp
    from jax import lax
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")


def _jax_pool_reshape(x):
    b, c, h, w = x.shape
    x = x[:, :, :h // 2 * 2, :w // 2 * 2]
    return x.reshape(b, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def _jax_init_params(key):
    """PyTorch's default initialisation: weights and biases uniform in ±1/sqrt(fan_in)."""
    import jax
    import jax.numpy as jnp
    shapes = {"c1": ((32, 1, 3, 3), 9), "c2": ((64, 32, 3, 3), 288), "l1": ((10, 1600), 1600)}
    params = {}
    for name, (shape, fan_in) in shapes.items():
        key, kw, kb = jax.random.split(key, 3)
        bound = 1.0 / fan_in ** 0.5
        params[name] = {"w": jax.random.uniform(kw, shape, jnp.float32, -bound, bound),
                        "b": jax.random.uniform(kb, shape[:1], jnp.float32, -bound, bound)}
    return params


def build_jax(seed: int, pool: Callable) -> Callable[[], float]:
    import jax
    import jax.numpy as jnp
    from jax import lax

    def conv(x, p):
        y = lax.conv_general_dilated(x, p["w"], (1, 1), "VALID", dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return y + p["b"][None, :, None, None]

    def model(params, x, dropout_key):
        x = pool(jax.nn.relu(conv(x, params["c1"])))
        x = pool(jax.nn.relu(conv(x, params["c2"])))
        x = x.reshape(x.shape[0], -1)
        keep = jax.random.bernoulli(dropout_key, 0.5, x.shape)
        x = jnp.where(keep, x / 0.5, 0.0)
        return x @ params["l1"]["w"].T + params["l1"]["b"]

    optimizer, apply_updates = jax_adamw(LEARNING_RATE)

    # The data are arguments, not closed over, so XLA does not embed 47 MB of constants.
    @jax.jit
    def step(params, opt_state, key, X, Y):
        key, sample_key, dropout_key = jax.random.split(key, 3)
        index = jax.random.randint(sample_key, (BATCH,), 0, X.shape[0])
        x, y = X[index].astype(jnp.float32) / 255.0, Y[index].astype(jnp.int32)

        def loss_fn(p):
            logp = jax.nn.log_softmax(model(p, x, dropout_key))
            return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return apply_updates(params, updates), opt_state, key, loss

    X_np, Y_np = load_mnist_numpy()
    X, Y = jnp.asarray(X_np), jnp.asarray(Y_np)
    del X_np, Y_np
    init_key, run_key = jax.random.split(jax.random.PRNGKey(seed))
    params = _jax_init_params(init_key)
    state = [params, optimizer.init(params), run_key]

    def run() -> float:
        out = jax.block_until_ready(step(*state, X, Y))
        state[:] = out[:3]
        return float(out[3])

    return run


def build_torch(seed: int, compiled: bool) -> Callable[[], float]:
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.set_num_threads(int(os.environ.get("BENCHMARK_THREADS", torch.get_num_threads())))
    torch.manual_seed(seed)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(1, 32, 3)
            self.c2 = nn.Conv2d(32, 64, 3)
            self.l1 = nn.Linear(1600, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.c1(x)), 2)
            x = F.max_pool2d(F.relu(self.c2(x)), 2)
            return self.l1(F.dropout(x.flatten(1), 0.5, training=self.training))

    model = Model()
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)

    def loss_fn(x, y):
        return F.cross_entropy(model(x), y)

    def optimizer_step():
        optimizer.step()

    if compiled:
        loss_fn = torch.compile(loss_fn)
        optimizer_step = torch.compile(optimizer_step)
    X_np, Y_np = load_mnist_numpy()
    with warnings.catch_warnings():  # the loader's arrays are read-only; the step only reads them
        warnings.simplefilter("ignore", UserWarning)
        X, Y = torch.from_numpy(X_np), torch.from_numpy(Y_np).long()

    def run() -> float:
        index = torch.randint(0, X.shape[0], (BATCH,))
        x, y = X[index].float() / 255.0, Y[index]
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(x, y)
        loss.backward()
        optimizer_step()
        return loss.item()

    return run


def build(name: str, seed: int) -> Callable[[], float]:
    if name == "fgrad":
        return build_fgrad(seed)
    if name == "jax":
        return build_jax(seed, _jax_pool_reduce_window)
    if name == "jax-reshape":
        return build_jax(seed, _jax_pool_reshape)
    if name in ("torch", "torch-compile"):
        return build_torch(seed, compiled=name == "torch-compile")
    raise ValueError(f"unknown implementation {name!r}; choose from {', '.join(IMPLEMENTATIONS)}")


def fgrad_jit_path() -> str:
    """Which path fgrad's compiled programs took: native (LLVM), reference (eager NumPy per
    primitive), or both (a program the native path could not take falls back)."""
    try:
        from fgrad.compile.cache import executables
        kinds = {"reference" if "reference_executable" in getattr(run, "__qualname__", "") else "native"
                 for run in executables.programs("program")}
    except Exception:  # internals moved: say so rather than guess
        return "path unknown"
    return "+".join(sorted(kinds)) + " path" if kinds else "path unknown"


def version_of(name: str) -> str:
    if name == "fgrad":
        return f"fgrad ({fgrad_jit_path()})"
    if name.startswith("jax"):
        optax = module_version("optax")
        return f"jax {module_version('jax')}" + (f" + optax {optax}" if optax else " + hand-written Adam")
    return f"torch {module_version('torch')}"


# --- the worker: one implementation, one thread count, one fresh process -------------------------

def worker(name: str, threads: int, warmup: int, steps: int, seed: int) -> dict:
    """Time ``1 + warmup + steps`` steps; returns the first call's seconds and each timed step's ms."""
    cpus = pin_threads(threads)
    run = build(name, seed)
    rss_before = current_rss_mib()
    start = time.perf_counter()
    loss = run()
    first_call_s = time.perf_counter() - start
    rss_after_first = current_rss_mib()
    final_code_s = first_call_s + fgrad_final_code_wait(name)   # timed steps run the final code
    for _ in range(warmup):
        loss = run()
    step_ms, cpu_ms = [], []
    busy0, own0, wall0 = busy_cpu_seconds(), time.process_time(), time.perf_counter()
    for _ in range(steps):
        start, start_cpu = time.perf_counter(), time.process_time()
        loss = run()
        step_ms.append((time.perf_counter() - start) * 1e3)
        cpu_ms.append((time.process_time() - start_cpu) * 1e3)
    others = (busy_cpu_seconds() - busy0 - (time.process_time() - own0)) / (time.perf_counter() - wall0)
    return {"impl": name, "threads": threads, "cpus": cpus, "version": version_of(name),
            "first_call_s": first_call_s, "final_code_s": final_code_s, "step_ms": step_ms, "cpu_ms": cpu_ms,
            "loss": loss,
            "others_load": max(others, 0.0),
            "rss_before_mib": rss_before, "rss_after_first_mib": rss_after_first,
            "rss_end_mib": current_rss_mib(), "peak_rss_mib": peak_rss_mib()}


# --- the driver ------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--impl", default=",".join(IMPLEMENTATIONS),
                        help=f"comma-separated implementations from {','.join(IMPLEMENTATIONS)}")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per run (after warm-up)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps after the first call")
    parser.add_argument("--repeats", type=int, default=1, help="runs per (implementation, threads)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps-memory", type=int, default=None, metavar="N",
                        help="instead of timing: run N steps per implementation (all threads) and "
                             "report peak resident memory (e.g. 300; 7000 for the issue's comparison)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds allowed per subprocess (default: 1800 for timing, none for memory)")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="S",
                        help="wait up to S seconds for the machine to become idle before starting")
    parser.add_argument("--warm-caches", action="store_true",
                        help="keep the frameworks' on-disk compilation caches (default: empty ones, so "
                             "the first call measures a compile)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.impls = [s.strip() for s in args.impl.split(",") if s.strip()]
    unknown = [s for s in args.impls if s not in IMPLEMENTATIONS]
    if unknown:
        parser.error(f"unknown implementation(s) {', '.join(unknown)}; choose from {', '.join(IMPLEMENTATIONS)}")
    try:
        args.thread_counts = [int(s) for s in args.threads.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--threads takes comma-separated integers, got {args.threads!r}")
    if not args.thread_counts or min(args.thread_counts) < 1:
        parser.error("--threads needs at least one positive thread count")
    if args.steps < 1 or args.warmup < 0 or args.repeats < 1:
        parser.error("--steps and --repeats must be >= 1 and --warmup >= 0")
    if args.steps_memory is not None and args.steps_memory < 1:
        parser.error("--steps-memory must be >= 1")
    return args


def measure(args: argparse.Namespace, name: str, threads: int, warmup: int, steps: int,
            timeout_s: float | None) -> dict:
    """One worker run; unless --warm-caches, with empty on-disk compilation caches."""
    worker = worker_args(args, name, threads, warmup, steps)
    if args.warm_caches:
        return run_worker(__file__, worker, threads, timeout_s=timeout_s)
    with tempfile.TemporaryDirectory(prefix="fgrad-bench-") as folder:
        return run_worker(__file__, worker, threads, timeout_s=timeout_s, extra_env=cold_cache_env(folder))


def worker_args(args: argparse.Namespace, name: str, threads: int, warmup: int, steps: int) -> list[str]:
    return ["--worker", name, "--threads", str(threads), "--warmup", str(warmup),
            "--steps", str(steps), "--seed", str(args.seed)]


def available(names: list[str]) -> tuple[list[str], list[str]]:
    ok, missing = [], []
    for name in names:
        (ok if module_version(PACKAGE_OF[name]) else missing).append(name)
    return ok, missing


def timing_table(args: argparse.Namespace, busy: float) -> Table:
    flops = sum(step_flops().values())
    impls, missing = available(args.impls)
    results: dict[tuple[str, int], list[dict]] = {}
    for _ in range(args.repeats):  # the repeats interleave, so a load change hits everyone
        for threads in args.thread_counts:
            for name in impls:
                result = measure(args, name, threads, args.warmup, args.steps, args.timeout or 1800)
                results.setdefault((name, threads), []).append(result)
                print(f"  measured {name} with {threads} thread(s): "
                      f"{_summary(result)}", file=sys.stderr, flush=True)

    table = Table(f"MNIST training step, batch {BATCH} ({flops / 1e9:.2f} GFLOP/step; "
                  f"median of {args.steps} timed steps after {args.warmup} warm-up, x{args.repeats} runs)",
                  ["implementation", "threads", "ms/step", "min ms", "CPU ms/step", "first call s",
                   "final code s", "GFLOP/s", "others' load", "loss at end", "version"])
    add_machine_header(table, busy)
    table.header_notes.append("first call = trace + compile + one step, with "
                              + ("the on-disk compilation caches as they were" if args.warm_caches
                                 else "empty on-disk compilation caches (fgrad, Inductor)"))
    for (name, threads), runs in results.items():
        good = [r for r in runs if "error" not in r]
        if not good:
            table.add_row(name, threads, None, None, None, None, None, None, None, None, runs[0]["error"])
            continue
        ms = [t for r in good for t in r["step_ms"]]
        cpu_ms = statistics.median(t for r in good for t in r["cpu_ms"])
        median_ms = statistics.median(ms)
        table.add_row(name, threads, median_ms, min(ms), cpu_ms,
                      statistics.median(r["first_call_s"] for r in good),
                      statistics.median(r["final_code_s"] for r in good),
                      flops / (median_ms * 1e-3) / 1e9, max(r["others_load"] for r in good),
                      good[-1]["loss"], good[0]["version"])
    table.footnotes.append("final code s: fgrad's first call, then the wait until the final builds of the kernels "
                           "it compiled quick first (tiered compilation) are swapped in; the timed steps run "
                           "those (other frameworks: the first call)")
    table.footnotes.append("CPU ms/step: process CPU time (all threads) per step; with 1 thread it stays "
                           "close to an idle machine's ms/step when others load the CPUs")
    table.footnotes.append("others' load: cores kept busy by other processes during the timed steps "
                           "(worst run); above ~0.1 that row's wall times are inflated: rerun it")
    table.footnotes.append("FLOPs counted analytically (2 per multiply-add): conv forwards, conv2's input "
                           "and weight gradients, conv1's weight gradient, the dense layer and its gradients")
    table.footnotes += [f"not measured: {m} ({PACKAGE_OF[m]} not installed; bash benchmarks/install_peers.sh)"
                        for m in missing]
    return table


def memory_table(args: argparse.Namespace, busy: float) -> Table:
    impls, missing = available(args.impls)
    threads = max(args.thread_counts)
    table = Table(f"Peak resident memory of a {args.steps_memory}-step MNIST run (batch {BATCH}, "
                  f"{threads} thread(s), fresh process each)",
                  ["implementation", "steps", "peak RSS MiB", "RSS MiB: before 1st step", "after 1st",
                   "at end", "ms/step", "loss at end", "version"])
    add_machine_header(table, busy)
    for name in impls:
        r = measure(args, name, threads, 0, args.steps_memory - 1, args.timeout)
        print(f"  measured {name}: {_summary(r)}", file=sys.stderr, flush=True)
        if "error" in r:
            table.add_row(name, args.steps_memory, None, None, None, None, None, None, r["error"])
            continue
        median_ms = statistics.median(r["step_ms"]) if r["step_ms"] else None
        table.add_row(name, len(r["step_ms"]) + 1, r["peak_rss_mib"], r["rss_before_mib"],
                      r["rss_after_first_mib"], r["rss_end_mib"], median_ms, r["loss"], r["version"])
    table.footnotes.append("peak RSS = getrusage(RUSAGE_SELF).ru_maxrss of the worker process; "
                           "'before 1st step' includes the imports, the data set and the initial model; "
                           "'at end' above 'after 1st' means memory grows with the step count")
    table.footnotes += [f"not measured: {m} ({PACKAGE_OF[m]} not installed)" for m in missing]
    return table


def _summary(result: dict) -> str:
    if "error" in result:
        return result["error"]
    ms = result["step_ms"]
    return (f"first call {result['first_call_s']:.2f} s, "
            f"{statistics.median(ms) if ms else float('nan'):.1f} ms/step, loss {result['loss']:.3f}")


def default_data_dir() -> None:
    """Point FGRAD_DATA_DIR at the checkout's ../shared/data when it is unset and that exists."""
    shared = os.path.join(os.path.dirname(REPO_ROOT), "shared", "data")
    if "FGRAD_DATA_DIR" not in os.environ and os.path.isdir(os.path.join(shared, "mnist")):
        os.environ["FGRAD_DATA_DIR"] = shared


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    default_data_dir()
    if args.worker is not None:
        emit_result(worker(args.worker, args.thread_counts[0], args.warmup, args.steps, args.seed))
        return
    busy = wait_for_idle(args.wait_idle) if args.wait_idle > 0 else cpu_busy_fraction()
    table = memory_table(args, busy) if args.steps_memory else timing_table(args, busy)
    print(table.markdown() if args.markdown else table.render())


if __name__ == "__main__":
    main()
