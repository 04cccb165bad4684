"""fgrad on one NVIDIA GPU, beside JAX and PyTorch on the same GPU: one table.

Rows (issue 6's targets in the last column):
  MNIST step       examples/mnist.py's jitted training step at batch 128 (sampling, forward,
                   backward, Adam) with the CUDA backend: ms/step (median, reading the loss
                   each step as the example does; keys passed from the host as the example
                   does) and the first call (trace + compile + step); replayed as CUDA graphs
                   (the default), again with ``FGRAD_CUDA_GRAPHS=0`` (kernel by kernel), and
                   with ``matmul_precision = "tf32"`` (the conv GEMMs on tensor cores)
  matmul           4096^3 float32 ``x @ y`` TFLOP/s: fgrad jitted (the GEMM template filled
                   from the kernel IR) and eager (the template with strided reads, of
                   lower/cuda_contraction.py), without and with TF32 allowed
                   (``fgrad.config.matmul_precision = "tf32"``)
  elementwise      fused ``tanh(x * 2 + 1) * x`` over 64M float32: GB/s (8 bytes/element),
                   against a device-to-device copy of the same bytes
  dispatch         eager ``x + 1`` on a small GPU array, and a cached jitted call: us/op
  MNIST training   examples/mnist.py's ``train`` on the GPU for --train-steps: test accuracy
  MNIST step, shard  the same step in the tutorial's two lines on a 1-GPU mesh
                   (``make_data_parallel_step``: jit over a replicated model and a split
                   batch, i.e. shard's device programs with the NCCL communicator, which a
                   1-GPU mesh answers without NCCL): ms/step, and the loss against the plain step's

Each part runs in its own subprocess with a timeout, its full output in ``--log-dir``;
a part that fails or times out leaves a dash (and its reason under the table), never
the rest of the table. Peers appear when importable with a GPU.

    python benchmarks/gpu.py [--log-dir gpu-logs] [--parts fgrad-mnist,jax,...] [--timeout 300]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from _common import REPO_ROOT, Table, format_cell

RESULT = "GPU-RESULT "
BATCH = 128
PARTS = ["fgrad-dispatch", "fgrad-elementwise", "fgrad-mnist", "fgrad-matmul", "fgrad-mnist-train", "jax",
         "torch", "fgrad-mnist-shard", "fgrad-mnist-forced"]   # most wanted first: a spent --budget skips the rest
LONGER = {"fgrad-mnist": 1.5, "fgrad-mnist-forced": 1.5, "fgrad-mnist-shard": 1.5}   # parts given more than --timeout
#: fgrad-mnist-forced: the step on the GPU even where a kernel's per-thread locals exceed the
#: runtime's 64 KiB guard (which sends such programs to the host CPU); 512 KiB is ptxas's limit.
FORCED_ENV = {"FGRAD_CUDA_MAX_LOCAL_BYTES": str(512 << 10)}
ELEMENTS = 64 << 20


def emit(**values: Any) -> None:
    print(RESULT + json.dumps(values), flush=True)


def timed(fn: Callable[[], Any], sync: Callable[[], Any], repeats: int, min_s: float = 0.2) -> float:
    """Seconds per call: the median of ``repeats`` rounds, each long enough to time."""
    fn()
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    once = max(time.perf_counter() - t0, 1e-7)
    number = max(1, int(min_s / once))
    rounds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        sync()
        rounds.append((time.perf_counter() - t0) / number)
    return statistics.median(rounds)


# --- fgrad ------------------------------------------------------------------------------------

def _fgrad():
    os.environ.setdefault("FGRAD_BACKEND", "cuda")
    sys.path.insert(0, REPO_ROOT)
    import fgrad
    from fgrad.backends import cuda
    device = fgrad.devices()[0]
    print(f"fgrad devices: {fgrad.devices()}; driver: {cuda.runtime(device).driver.name()}; "
          f"compiler: {cuda.runtime(device).driver.compiler_id()}", flush=True)
    return fgrad, cuda, device


def mnist_data():
    """MNIST from fgrad's loader (FGRAD_DATA_DIR), else random data of the same shapes."""
    import numpy as np
    from fgrad import datasets
    try:
        X, Y, _, _ = datasets.mnist(download=False)
        return np.asarray(X), np.asarray(Y), "MNIST"
    except Exception as e:  # no data on this machine: the step costs the same on random pixels
        print(f"MNIST not available ({e}); timing on random data", flush=True)
        rng = np.random.default_rng(0)
        return (rng.integers(0, 256, (60000, 1, 28, 28), dtype=np.uint8),
                rng.integers(0, 10, (60000,), dtype=np.uint8), "random data")


def mnist_example():
    """examples/mnist.py, imported as a module."""
    spec = importlib.util.spec_from_file_location("mnist_example", os.path.join(REPO_ROOT, "examples", "mnist.py"))
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    return example


def example_and_data(fgrad, device):
    """examples/mnist.py, and the training set (or random stand-ins) on ``device``."""
    X, Y, source = mnist_data()
    return mnist_example(), fgrad.device_put(X, device), fgrad.device_put(Y, device), source


def time_mnist_steps(step, state: list, keys: list, steps: int) -> dict:
    """ms per step of ``step`` on ``state`` = [model, opt_state] (updated in place): the median
    reading the loss each step, the minimum, and queued back to back with one wait at the end."""
    times = []
    for i in range(1, steps + 1):
        t0 = time.perf_counter()
        state[0], state[1], loss = step(state[0], state[1], keys[i])
        last = float(loss)
        times.append(time.perf_counter() - t0)
        if sum(times) > 30:             # slow kernels: time fewer steps rather than none
            steps = i
            break
    t0 = time.perf_counter()
    for i in range(1, steps + 1):
        state[0], state[1], loss = step(state[0], state[1], keys[i])
    loss.block_until_ready()
    pipelined_ms = (time.perf_counter() - t0) / steps * 1e3
    return {"step_ms": statistics.median(times) * 1e3, "min_ms": min(times) * 1e3, "pipelined_ms": pipelined_ms,
            "loss_last": last, "steps": steps}


def worker_fgrad_mnist(steps: int) -> None:
    fgrad, cuda, device = _fgrad()
    from fgrad import optim, random
    example, X, Y, source = example_and_data(fgrad, device)
    init_key, run_key = random.split(random.key(0))
    model = example.Model(key=init_key)
    optimizer = optim.adam(1e-3)
    opt_state = optimizer.init(model)
    step = example.make_step(optimizer, X, Y, BATCH)
    # host keys, as examples/mnist.py's train passes them: each is copied into the block the
    # previous one had, so the step's device pointers recur and its CUDA graphs replay
    keys = [random.fold_in(run_key, i) for i in range(steps + 1)]
    t0 = time.perf_counter()
    model, opt_state, loss = step(model, opt_state, keys[0])
    first_loss = float(loss)
    first_s = time.perf_counter() - t0
    print(f"first call {first_s:.2f} s, loss {first_loss:.3f}", flush=True)
    emit(first_s=first_s, loss_first=first_loss, data=source)      # kept if a later stage times out
    state = [model, opt_state]
    graphs = time_mnist_steps(step, state, keys, steps)
    from fgrad.compile.cache import executables
    exe = max((run for run, _ in executables.programs("gpu-jit")),
              key=lambda run: getattr(run, "launches_per_call", 0))       # the step's program
    counts = {"graph_captures": getattr(exe, "graph_captures", None), "graph_replays": getattr(exe, "graph_replays", None)}
    print(f"{graphs['steps']} steps, median {graphs['step_ms']:.3f} ms, pipelined {graphs['pipelined_ms']:.3f} ms "
          f"(CUDA graphs: {counts})", flush=True)
    emit(step_ms=graphs["step_ms"], pipelined_ms=graphs["pipelined_ms"], **counts)
    os.environ["FGRAD_CUDA_GRAPHS"] = "0"     # read at every call: the same program, kernel by kernel
    plain = time_mnist_steps(step, state, keys, graphs["steps"])
    del os.environ["FGRAD_CUDA_GRAPHS"]
    print(f"FGRAD_CUDA_GRAPHS=0: median {plain['step_ms']:.3f} ms, pipelined {plain['pipelined_ms']:.3f} ms", flush=True)
    emit(plain_step_ms=plain["step_ms"], plain_pipelined_ms=plain["pipelined_ms"])
    fgrad.config.update("matmul_precision", "tf32")      # the conv GEMMs on tensor cores (a new compile)
    tf32 = time_mnist_steps(step, state, keys, graphs["steps"])
    fgrad.config.update("matmul_precision", "highest")
    print(f"matmul_precision=tf32: median {tf32['step_ms']:.3f} ms, loss {tf32['loss_last']:.3f}", flush=True)
    emit(tf32_step_ms=tf32["step_ms"], tf32_loss_last=tf32["loss_last"])
    fgrad.config.update("debug", 2)           # one more step with per-kernel GPU times, into the log
    model, opt_state, loss = step(state[0], state[1], keys[0])
    float(loss)
    fgrad.config.update("debug", 0)
    stats = cuda.runtime(device).memory_stats()
    emit(step_ms=graphs["step_ms"], min_ms=graphs["min_ms"], pipelined_ms=graphs["pipelined_ms"],
         plain_step_ms=plain["step_ms"], plain_min_ms=plain["min_ms"], plain_pipelined_ms=plain["pipelined_ms"],
         first_s=first_s, loss_first=first_loss, loss_last=graphs["loss_last"], data=source,
         launches=getattr(exe, "launches_per_call", None), peak_mib=stats["peak_bytes"] / 2**20,
         on_host=getattr(exe, "on_host", None), **counts)


def worker_fgrad_mnist_shard(steps: int) -> None:
    """The MNIST step in the two lines on a mesh of one GPU, beside the plain jitted step."""
    fgrad, cuda, device = _fgrad()
    from fgrad import optim, random
    from fgrad.sharding import Mesh, NamedSharding, P, device_put
    example, X, Y, source = example_and_data(fgrad, device)
    mesh = Mesh([device], ("data",))
    init_key, run_key = random.split(random.key(0))
    optimizer = optim.adam(1e-3)
    model = example.Model(key=init_key)
    plain = example.make_step(optimizer, X, Y, BATCH)
    _, _, plain_loss = plain(model, optimizer.init(model), random.fold_in(run_key, 0))
    replicated = NamedSharding(mesh, P())
    model, opt_state = device_put(model, replicated), device_put(optimizer.init(model), replicated)
    step = example.make_data_parallel_step(optimizer, X, Y, BATCH, mesh)
    t0 = time.perf_counter()
    model, opt_state, loss = step(model, opt_state, random.fold_in(run_key, 0))
    first_loss = float(loss)
    first_s = time.perf_counter() - t0
    print(f"first call {first_s:.2f} s, loss {first_loss:.4f} (plain step: {float(plain_loss):.4f})", flush=True)
    emit(shard_first_s=first_s, shard_loss_first=first_loss, plain_loss_first=float(plain_loss), data=source)
    times = []
    for i in range(1, steps + 1):
        t0 = time.perf_counter()
        model, opt_state, loss = step(model, opt_state, random.fold_in(run_key, i))
        last = float(loss)
        times.append(time.perf_counter() - t0)
        if sum(times) > 30:
            break
    print(f"{len(times)} steps, median {statistics.median(times) * 1e3:.3f} ms, loss {last:.4f}", flush=True)
    emit(shard_step_ms=statistics.median(times) * 1e3, shard_loss_last=last, shard_steps=len(times))


def worker_fgrad_mnist_train(steps: int) -> None:
    """examples/mnist.py's ``train`` with the CUDA backend: test accuracy after ``steps`` steps."""
    fgrad, cuda, device = _fgrad()
    from fgrad import datasets
    result = mnist_example().train(steps, eval_every=steps, progress=False, data=datasets.mnist(download=False))
    step, loss, accuracy = result.curve[-1]
    emit(train_steps=step, train_loss=loss, test_accuracy=accuracy, train_wall_s=result.wall_s)


def worker_fgrad_matmul(size: int) -> None:
    """``x @ y``: jitted and eager (the CUDA C GEMM templates), float32 and with TF32 allowed. Starts at 1024^3 and grows to ``size`` only while a call stays short."""
    fgrad, cuda, device = _fgrad()
    import numpy as np
    rng = np.random.default_rng(0)
    cases = [("eager", "tf32", lambda x, y: x @ y), ("eager", "highest", lambda x, y: x @ y),
             ("jit", "highest", fgrad.jit(lambda x, y: x @ y)), ("jit", "tf32", fgrad.jit(lambda x, y: x @ y))]
    sync = cuda.runtime(device).synchronize
    for mode, precision, f in cases:
        fgrad.config.update("matmul_precision", precision)
        n = min(1024, size)
        while True:
            a = fgrad.device_put(rng.standard_normal((n, n), dtype=np.float32), device)
            b = fgrad.device_put(rng.standard_normal((n, n), dtype=np.float32), device)
            out = f(a, b)
            ref = np.asarray(a)[:64].astype(np.float64) @ np.asarray(b).astype(np.float64)
            err = float(np.max(np.abs(np.asarray(out)[:64] - ref)) / np.max(np.abs(ref)))
            t0 = time.perf_counter()
            f(a, b).block_until_ready()
            once = time.perf_counter() - t0
            print(f"{mode} {precision} {n}^3: one call {once * 1e3:.1f} ms, relative error {err:.2e}", flush=True)
            if n >= size or once * (size / n) ** 3 > 20:
                break
            n = min(size, n * 4)
        seconds = timed(lambda: f(a, b), sync, 3, min_s=0.5) if once < 2 else once
        emit(**{f"{mode}_{precision}": {"tflops": 2 * n ** 3 / seconds / 1e12, "n": n, "rel_err": err}})


def worker_fgrad_elementwise() -> None:
    fgrad, cuda, device = _fgrad()
    import numpy as np
    import fgrad.numpy as fnp
    x = fgrad.device_put(np.random.default_rng(0).standard_normal(ELEMENTS, dtype=np.float32), device)
    f = fgrad.jit(lambda x: fnp.tanh(x * 2 + 1) * x)
    y = f(x)
    np.testing.assert_allclose(np.asarray(y)[:4096], np.tanh(np.asarray(x)[:4096] * 2 + 1) * np.asarray(x)[:4096],
                               rtol=1e-5, atol=1e-6)
    sync = cuda.runtime(device).synchronize
    fused = timed(lambda: f(x), sync, 5)
    rt = cuda.runtime(device)
    dst = rt.empty((ELEMENTS,), np.float32)
    copy = timed(lambda: rt.driver.copy_dtod(dst.ptr, x._buffer.ptr, ELEMENTS * 4), sync, 5)
    emit(fused_gbs=8 * ELEMENTS / fused / 1e9, copy_gbs=8 * ELEMENTS / copy / 1e9)


def worker_fgrad_dispatch() -> None:
    fgrad, cuda, device = _fgrad()
    import numpy as np
    x = fgrad.device_put(np.arange(8, dtype=np.float32), device)
    sync = cuda.runtime(device).synchronize
    eager = timed(lambda: x + 1, sync, 5)
    f = fgrad.jit(lambda v: v + 1)
    jitted = timed(lambda: f(x), sync, 5)
    np.testing.assert_array_equal(np.asarray(f(x)), np.arange(8) + 1)
    emit(eager_us=eager * 1e6, jit_us=jitted * 1e6)


# --- peers ------------------------------------------------------------------------------------

def worker_jax(steps: int) -> None:
    import jax
    import jax.numpy as jnp
    if jax.default_backend() != "gpu":
        raise SystemExit(f"JAX has no GPU here (default backend {jax.default_backend()})")
    out = {"version": jax.__version__}
    key = jax.random.PRNGKey(0)
    for label, precision in (("f32", jax.lax.Precision.HIGHEST), ("tf32", jax.lax.Precision.DEFAULT)):
        a = jax.random.normal(key, (4096, 4096), jnp.float32)
        f = jax.jit(lambda x, y, p=precision: jnp.matmul(x, y, precision=p))
        s = timed(lambda: f(a, a), lambda: f(a, a).block_until_ready(), 3)
        out[f"{label}_tflops"] = 2 * 4096 ** 3 / s / 1e12
    x = jax.random.normal(key, (ELEMENTS,), jnp.float32)
    g = jax.jit(lambda x: jnp.tanh(x * 2 + 1) * x)
    state = {}
    s = timed(lambda: state.__setitem__("y", g(x)), lambda: state["y"].block_until_ready(), 5)
    out["fused_gbs"] = 8 * ELEMENTS / s / 1e9
    small = jnp.arange(8, dtype=jnp.float32)
    inc = jax.jit(lambda v: v + 1)
    s = timed(lambda: state.__setitem__("y", inc(small)), lambda: state["y"].block_until_ready(), 5)
    out["jit_us"] = s * 1e6
    s = timed(lambda: state.__setitem__("y", small + 1), lambda: state["y"].block_until_ready(), 5)
    out["eager_us"] = s * 1e6
    try:
        sys.path.insert(0, os.path.join(REPO_ROOT, "benchmarks"))
        import mnist_step
        run = mnist_step.build_jax(0, mnist_step._jax_pool_reduce_window)
        t0 = time.perf_counter()
        run()
        out["first_s"] = time.perf_counter() - t0
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
        out["step_ms"] = statistics.median(times) * 1e3
    except Exception as e:  # e.g. no MNIST data here
        print(f"JAX MNIST step skipped: {e!r}", flush=True)
    emit(**out)


def worker_torch() -> None:
    import torch
    if not torch.cuda.is_available():
        raise SystemExit("PyTorch sees no GPU")
    dev = torch.device("cuda")
    sync = torch.cuda.synchronize
    out = {"version": torch.__version__}
    a = torch.randn(4096, 4096, device=dev)
    for label, tf32 in (("f32", False), ("tf32", True)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        s = timed(lambda: a @ a, sync, 3)
        out[f"{label}_tflops"] = 2 * 4096 ** 3 / s / 1e12
    x = torch.randn(ELEMENTS, device=dev)
    s = timed(lambda: torch.tanh(x * 2 + 1) * x, sync, 5)
    out["fused_gbs"] = 8 * ELEMENTS / s / 1e9   # three kernels in eager mode
    y = torch.empty_like(x)
    s = timed(lambda: y.copy_(x), sync, 5)
    out["copy_gbs"] = 8 * ELEMENTS / s / 1e9
    small = torch.arange(8, dtype=torch.float32, device=dev)
    out["eager_us"] = timed(lambda: small + 1, sync, 5) * 1e6
    emit(**out)


WORKERS = {
    "fgrad-mnist": lambda a: worker_fgrad_mnist(a.steps),
    "fgrad-mnist-forced": lambda a: worker_fgrad_mnist(a.steps),
    "fgrad-mnist-train": lambda a: worker_fgrad_mnist_train(a.train_steps),
    "fgrad-mnist-shard": lambda a: worker_fgrad_mnist_shard(a.steps),
    "fgrad-matmul": lambda a: worker_fgrad_matmul(a.size),
    "fgrad-elementwise": lambda a: worker_fgrad_elementwise(),
    "fgrad-dispatch": lambda a: worker_fgrad_dispatch(),
    "jax": lambda a: worker_jax(a.steps),
    "torch": lambda a: worker_torch(),
}


# --- the driver: subprocesses, logs, the table ---------------------------------------------------

def run_part(part: str, args: argparse.Namespace, deadline: float) -> dict:
    log = Path(args.log_dir) / f"{part}.log"
    limit = min(args.timeout * LONGER.get(part, 1.0), deadline - time.perf_counter())
    if limit < 10:
        print(f"[gpu.py] {part}: skipped, the --budget is spent", flush=True)
        return {"status": "skipped: the --budget was spent"}
    cmd = [sys.executable, "-u", os.path.abspath(__file__), "--worker", part, "--steps", str(args.steps),
           "--size", str(args.size), "--train-steps", str(args.train_steps)]
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(FORCED_ENV if part == "fgrad-mnist-forced" else {}))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO_ROOT, env.get("PYTHONPATH")]))
    t0 = time.perf_counter()
    with open(log, "w") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        try:
            rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, timeout=limit).returncode
        except subprocess.TimeoutExpired:
            rc = None
    text = log.read_text(errors="replace")
    results = {}
    for line in text.splitlines():
        if line.startswith(RESULT):
            results.update(json.loads(line[len(RESULT):]))
    took = time.perf_counter() - t0
    if results and rc == 0:
        status = f"ok in {took:.0f} s"
    elif rc is None:
        status = f"timed out after {took:.0f} s" + (" (partial results)" if results else "")
    else:
        last = [line for line in text.splitlines() if line.strip()][-1:] or ["no output"]
        status = f"exit {rc}: {last[0][:140]}"
    print(f"[gpu.py] {part}: {status} (log {log})", flush=True)
    return {"status": status, **results}


def build_table(r: dict, notes: list[str]) -> Table:
    fm, fmat, fel, fd = (r.get(p, {}) for p in ("fgrad-mnist", "fgrad-matmul", "fgrad-elementwise", "fgrad-dispatch"))
    jx, th = r.get("jax", {}), r.get("torch", {})
    t = Table("fgrad on the GPU (issue 6)", ["metric", "fgrad", "JAX", "PyTorch", "target"])
    t.add_row("MNIST step ms (b128, loss read)", fm.get("step_ms"), jx.get("step_ms"), None, "<=1.0, aim 0.3")
    t.add_row("MNIST step ms, FGRAD_CUDA_GRAPHS=0", fm.get("plain_step_ms"), None, None, "")
    t.add_row("MNIST step ms, pipelined", fm.get("pipelined_ms"), None, None, "")
    t.add_row("MNIST step ms, pipelined, FGRAD_CUDA_GRAPHS=0", fm.get("plain_pipelined_ms"), None, None, "")
    t.add_row("MNIST step ms, matmul_precision=tf32", fm.get("tf32_step_ms"), None, None, "aim <0.5")
    forced = r.get("fgrad-mnist-forced", {})
    if fm.get("on_host"):
        t.add_row("MNIST step ms, GPU forced", forced.get("step_ms"), None, None, "")
    t.add_row("MNIST first call s", fm.get("first_s"), jx.get("first_s"), None, "")
    sh = r.get("fgrad-mnist-shard", {})
    t.add_row("MNIST step ms, 1-GPU shard (two lines)", sh.get("shard_step_ms"), None, None, "")
    jit32, nat32, tf32, jtf32 = (fmat.get(k, {}) for k in ("jit_highest", "eager_highest", "eager_tf32", "jit_tf32"))
    t.add_row(f"matmul {jit32.get('n', 4096)}^3 f32 jit TFLOP/s", jit32.get("tflops"), jx.get("f32_tflops"),
              th.get("f32_tflops"), "")
    t.add_row(f"matmul {nat32.get('n', 4096)}^3 f32 GEMM template", nat32.get("tflops"), None, None, "")
    t.add_row(f"matmul {tf32.get('n', 4096)}^3 TF32 TFLOP/s", tf32.get("tflops"), jx.get("tf32_tflops"),
              th.get("tf32_tflops"), ">=20")
    t.add_row(f"matmul {jtf32.get('n', 4096)}^3 TF32 jit TFLOP/s", jtf32.get("tflops"), None, None, ">=20")
    t.add_row("fused elementwise GB/s", fel.get("fused_gbs"), jx.get("fused_gbs"), th.get("fused_gbs"), "")
    t.add_row("device copy GB/s", fel.get("copy_gbs"), None, th.get("copy_gbs"), "")
    ratio = fel["fused_gbs"] / fel["copy_gbs"] * 100 if fel.get("fused_gbs") and fel.get("copy_gbs") else None
    t.add_row("elementwise / copy %", ratio, None, None, ">=70")
    tr = r.get("fgrad-mnist-train", {})
    t.add_row(f"MNIST test accuracy % ({tr.get('train_steps', '-')} steps)",
              tr["test_accuracy"] * 100 if tr.get("test_accuracy") is not None else None, None, None, "= CPU's")
    t.add_row("eager x + 1 us/op", fd.get("eager_us"), jx.get("eager_us"), th.get("eager_us"), "")
    t.add_row("cached jit call us", fd.get("jit_us"), jx.get("jit_us"), None, "")
    if fm.get("first_s") is not None:
        t.footnotes.append(f"MNIST: {fm.get('data', '?')}, loss {format_cell(fm.get('loss_first'))} -> "
                           f"{format_cell(fm.get('loss_last'))}, {fm.get('launches', '?')} launches/step, "
                           f"peak {format_cell(fm.get('peak_mib'))} MiB; CUDA graphs: "
                           f"{fm.get('graph_captures', '?')} captured, {fm.get('graph_replays', '?')} steps replayed")
    if sh.get("shard_loss_first") is not None:
        t.footnotes.append(f"1-GPU shard: first call {format_cell(sh.get('shard_first_s'))} s, first loss "
                           f"{format_cell(sh.get('shard_loss_first'))} (plain step "
                           f"{format_cell(sh.get('plain_loss_first'))}), after {sh.get('shard_steps', '?')} "
                           f"steps {format_cell(sh.get('shard_loss_last'))}")
    if fm.get("on_host"):
        t.footnotes.append(f"MNIST step ran on the host CPU ({fm['on_host']}); 'GPU forced' raises "
                           f"the guard ({FORCED_ENV}), first call {format_cell(forced.get('first_s'))} s")
    t.footnotes += [f"{part}: {res['status']}" for part, res in r.items() if not res["status"].startswith("ok")]
    t.footnotes += notes
    return t


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--worker", choices=list(WORKERS), help=argparse.SUPPRESS)
    p.add_argument("--parts", default=",".join(PARTS), help="comma-separated parts to run")
    p.add_argument("--log-dir", default="gpu-logs", help="folder for each part's full output")
    p.add_argument("--timeout", type=float, default=100, help="seconds per part (MNIST: 1.5x)")
    p.add_argument("--budget", type=float, default=1e9, help="seconds for all parts together")
    p.add_argument("--steps", type=int, default=50, help="timed MNIST steps")
    p.add_argument("--size", type=int, default=4096, help="matmul size")
    p.add_argument("--train-steps", type=int, default=500, help="steps of examples/mnist.py's training")
    p.add_argument("--note", action="append", default=[], help="a line to print under the table")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        WORKERS[args.worker](args)
        return 0
    Path(args.log_dir).mkdir(parents=True, exist_ok=True)
    parts = [p for p in args.parts.split(",") if p]
    unknown = set(parts) - set(WORKERS)
    if unknown:
        raise SystemExit(f"unknown parts {sorted(unknown)}; known: {', '.join(PARTS)}")
    deadline = time.perf_counter() + args.budget
    results = {part: run_part(part, args, deadline) for part in parts}
    (Path(args.log_dir) / "results.json").write_text(json.dumps(results, indent=1))
    print()
    print(build_table(results, args.note).render(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
