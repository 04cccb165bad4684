"""A char-level GPT training step: fgrad vs JAX vs PyTorch, ms/step, compile seconds, GFLOP/s.

The model is issue 15's (nanoGPT's shakespeare_char, scaled down, as examples/gpt.py):
vocabulary 65, context 128, 4 layers (``--layers N``), 4 heads, d_model 128, token and learned
position embeddings, pre-LayerNorm blocks (causal softmax self-attention; MLP 4x wide with
GELU, the tanh approximation in every framework), a final LayerNorm, the output layer tied to
the token embedding; mean cross-entropy; AdamW with lr 3e-4, b1 0.9, b2 0.999, eps 1e-8,
weight decay 0.01 on every parameter in every framework; batch 16. Every implementation
starts from the same parameters (NumPy, nanoGPT's initialisation, seeded) and trains on the
same fixed batch (seeded NumPy random ids). Implementations:

  fgrad          fgrad.nn modules (Embedding, LayerNorm, MultiheadAttention, Linear); the
                 whole step (value_and_grad + optim.adamw) under one ``fgrad.jit``
  jax            the same functions over a dict of arrays; one ``jax.jit`` step, optax.adamw
                 (a hand-written AdamW without optax)
  torch          PyTorch eager, attention by F.scaled_dot_product_attention(is_causal=True)
                 (as nanoGPT), torch.optim.AdamW
  torch-compile  the same with ``torch.compile`` on the loss (forward + AOT backward) and on
                 ``optimizer.step``
  fgrad-scan,    (only when named) fgrad's and JAX's models with the blocks' parameters
  jax-scan       stacked on a leading layer axis and the blocks run by ``lax.scan``: one
                 block is traced and compiled whatever the depth (flax's ``nn.scan`` idiom)

Every (implementation, thread count) runs in a fresh subprocess (``_common.run_worker``) with
empty on-disk compilation caches, so "first call" measures a cold compile; fgrad's worker then
runs a second time on the cache the first one filled ("warm start": a new process whose first
call loads compiled code from disk). fgrad's first loss must equal JAX's (relative 1e-5).

    python benchmarks/gpt_step.py                                   # everything, 1 and 2 threads
    python benchmarks/gpt_step.py --impl fgrad,jax --layers 2 --threads 2
    python benchmarks/gpt_step.py --depths 2,4,8,12                 # cold compile s vs depth
    python benchmarks/gpt_step.py --impl fgrad,fgrad-scan,jax,jax-scan --depths 4,12   # also scanned
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from typing import Callable

from _common import (REPO_ROOT, Table, add_machine_header, busy_cpu_seconds, cold_cache_env,
                     cpu_busy_fraction, emit_result, fgrad_final_code_wait, jax_adamw, module_version,
                     pin_threads, run_worker, wait_for_idle)
from mnist_step import fgrad_jit_path  # no framework imports at its top: safe before thread settings

VOCAB, CONTEXT, HEADS, D_MODEL, BATCH = 65, 128, 4, 128, 16
LEARNING_RATE, WEIGHT_DECAY, BETAS, EPS = 3e-4, 0.01, (0.9, 0.999), 1e-8
IMPLEMENTATIONS = ["fgrad", "jax", "torch", "torch-compile"]
#: the blocks' parameters stacked along a leading layer axis and run by ``lax.scan``: a
#: program whose size does not grow with depth (not in the default list; name them)
SCANNED = ["fgrad-scan", "jax-scan"]
PACKAGE_OF = {"fgrad": "numpy", "jax": "jax", "torch": "torch", "torch-compile": "torch",
              "fgrad-scan": "numpy", "jax-scan": "jax"}
LOSS_RTOL = 1e-5


# --- parameters, data and the FLOP count --------------------------------------------------------

def init_params(layers: int, seed: int) -> dict:
    """nanoGPT's initialisation, by PyTorch-style names (``blocks.0.attn.in_proj_weight``):
    weights N(0, 0.02), each block's two residual projections N(0, 0.02/sqrt(2 layers)),
    biases 0, LayerNorm weights 1."""
    import numpy as np
    rng = np.random.default_rng(seed)
    e, residual_std = D_MODEL, 0.02 / math.sqrt(2 * layers)

    def normal(shape, std=0.02):
        return (rng.standard_normal(shape) * std).astype(np.float32)

    def zeros(n):
        return np.zeros(n, np.float32)

    params = {"wte.weight": normal((VOCAB, e)), "wpe.weight": normal((CONTEXT, e))}
    for i in range(layers):
        p = f"blocks.{i}."
        params.update({
            p + "ln1.weight": np.ones(e, np.float32), p + "ln1.bias": zeros(e),
            p + "attn.in_proj_weight": normal((3 * e, e)), p + "attn.in_proj_bias": zeros(3 * e),
            p + "attn.out_proj.weight": normal((e, e), residual_std), p + "attn.out_proj.bias": zeros(e),
            p + "ln2.weight": np.ones(e, np.float32), p + "ln2.bias": zeros(e),
            p + "fc.weight": normal((4 * e, e)), p + "fc.bias": zeros(4 * e),
            p + "proj.weight": normal((e, 4 * e), residual_std), p + "proj.bias": zeros(e)})
    params.update({"ln_f.weight": np.ones(e, np.float32), "ln_f.bias": zeros(e)})
    return params


def stacked_params(params: dict, layers: int) -> dict:
    """``init_params`` with each block parameter stacked over the layers: ``blocks.ln1.weight``
    of shape (layers, d_model) for the ``blocks.{i}.ln1.weight``, the scanned models' layout."""
    import numpy as np
    first = "blocks.0."
    stacked = {name: value for name, value in params.items() if not name.startswith("blocks.")}
    for name in params:
        if name.startswith(first):
            rest = name[len(first):]
            stacked["blocks." + rest] = np.stack([params[f"blocks.{i}.{rest}"] for i in range(layers)])
    return stacked


def fixed_batch(seed: int):
    """Input ids (BATCH, CONTEXT) and next-id targets, from one seeded random id sequence per row."""
    import numpy as np
    ids = np.random.default_rng(seed + 1).integers(0, VOCAB, (BATCH, CONTEXT + 1)).astype(np.int32)
    return ids[:, :-1], ids[:, 1:]


def parameter_count(layers: int) -> int:
    """All parameters (the position embedding included)."""
    per_layer = 12 * D_MODEL ** 2 + 13 * D_MODEL
    return VOCAB * D_MODEL + CONTEXT * D_MODEL + layers * per_layer + 2 * D_MODEL


def step_flops(layers: int) -> int:
    """FLOPs of one step, nanoGPT's ``estimate_mfu`` count: ``6 N`` per token for the matrix
    products of forward and backward (N = parameters less the position embedding, which is
    looked up, not multiplied; the token embedding counts once, as the tied output layer),
    plus ``12 * layers * d_model * context`` per token for attention's q·k and weights·v
    (forward and backward, over the full T x T score matrix that the causal mask then hides)."""
    tokens = BATCH * CONTEXT
    n = parameter_count(layers) - CONTEXT * D_MODEL
    return 6 * n * tokens + 12 * layers * D_MODEL * CONTEXT * tokens


# --- the implementations: each returns a function that runs one step and returns its loss -------

def build_fgrad(layers: int, seed: int, scan: bool = False) -> Callable[[], float]:
    sys.path.insert(0, REPO_ROOT)
    import fgrad
    import fgrad.numpy as fnp
    from fgrad import lax, nn, optim, random, tree

    class Block(nn.Module):
        def __init__(self, *, key):
            k1, k2, k3 = random.split(key, 3)
            self.ln1, self.ln2 = nn.LayerNorm(D_MODEL), nn.LayerNorm(D_MODEL)
            self.attn = nn.MultiheadAttention(D_MODEL, HEADS, key=k1)
            self.fc = nn.Linear(D_MODEL, 4 * D_MODEL, key=k2)
            self.proj = nn.Linear(4 * D_MODEL, D_MODEL, key=k3)

        def __call__(self, x):
            x = x + self.attn(self.ln1(x), causal=True)
            return x + self.proj(nn.gelu(self.fc(self.ln2(x)), approximate=True))

    class GPT(nn.Module):
        def __init__(self, *, key):
            keys = list(random.split(key, layers + 2))
            self.wte = nn.Embedding(VOCAB, D_MODEL, key=keys[0])
            self.wpe = nn.Embedding(CONTEXT, D_MODEL, key=keys[1])
            self.blocks = tuple(Block(key=k) for k in keys[2:])
            if scan:      # one Block whose every leaf has a leading layer axis
                self.blocks = tree.tree_map(lambda *leaves: fnp.stack(leaves), *self.blocks)
            self.ln_f = nn.LayerNorm(D_MODEL)

        def __call__(self, ids):
            x = self.wte(ids) + self.wpe.weight[:ids.shape[-1]]
            if scan:
                x, _ = lax.scan(lambda h, block: (block(h), None), x, self.blocks)
            else:
                for block in self.blocks:
                    x = block(x)
            return fnp.matmul(self.ln_f(x), self.wte.weight.T)

    def with_params(model, params):
        paths = [tree.keystr(path, simple=True, separator=".") for path, _ in tree.tree_leaves_with_path(model)]
        if scan:
            params = stacked_params(params, layers)
        return tree.tree_unflatten(tree.tree_structure(model), [fnp.asarray(params[p]) for p in paths])

    optimizer = optim.adamw(LEARNING_RATE, b1=BETAS[0], b2=BETAS[1], eps=EPS, weight_decay=WEIGHT_DECAY)

    @fgrad.jit
    def step(model, opt_state, x, y):
        def loss_fn(m):
            return nn.sparse_categorical_crossentropy(m(x), y)

        loss, grads = fgrad.value_and_grad(loss_fn)(model)
        updates, opt_state = optimizer.update(grads, opt_state, model)
        return optim.apply_updates(model, updates), opt_state, loss

    model = with_params(GPT(key=random.key(seed)), init_params(layers, seed))
    x, y = (fnp.asarray(a) for a in fixed_batch(seed))
    state = [model, optimizer.init(model)]

    def run() -> float:
        model, opt_state, loss = step(*state, x, y)
        state[:] = [model, opt_state]
        return float(loss)

    return run


def build_jax(layers: int, seed: int, scan: bool = False) -> Callable[[], float]:
    import jax
    import jax.numpy as jnp

    def layer_norm(x, p, name):
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) * jax.lax.rsqrt(var + 1e-5) * p[name + ".weight"] + p[name + ".bias"]

    def linear(x, p, name):
        return x @ p[name + ".weight"].T + p[name + ".bias"]

    def attention(x, p, name):
        b, t, e = x.shape
        qkv = x @ p[name + ".in_proj_weight"].T + p[name + ".in_proj_bias"]
        q, k, v = (qkv[..., i * e:(i + 1) * e].reshape(b, t, HEADS, e // HEADS).transpose(0, 2, 1, 3)
                   for i in range(3))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(e // HEADS)
        scores = jnp.where(jnp.tril(jnp.ones((t, t), bool)), scores, jnp.finfo(scores.dtype).min)
        heads = jax.nn.softmax(scores, axis=-1) @ v
        return linear(heads.transpose(0, 2, 1, 3).reshape(b, t, e), p, name + ".out_proj")

    def block(x, p, b):
        x = x + attention(layer_norm(x, p, b + "ln1"), p, b + "attn")
        return x + linear(jax.nn.gelu(linear(layer_norm(x, p, b + "ln2"), p, b + "fc"), approximate=True),
                          p, b + "proj")

    def model(p, ids):
        x = p["wte.weight"][ids] + p["wpe.weight"][:ids.shape[-1]]
        if scan:
            blocks = {name[len("blocks."):]: value for name, value in p.items() if name.startswith("blocks.")}
            x, _ = jax.lax.scan(lambda h, q: (block(h, q, ""), None), x, blocks)
        else:
            for i in range(layers):
                x = block(x, p, f"blocks.{i}.")
        return layer_norm(x, p, "ln_f") @ p["wte.weight"].T

    def loss_fn(p, x, y):
        logp = jax.nn.log_softmax(model(p, x))
        return -jnp.mean(jnp.take_along_axis(logp, y[..., None], axis=-1))

    optimizer, _ = jax_adamw(LEARNING_RATE, BETAS[0], BETAS[1], EPS, WEIGHT_DECAY)

    @jax.jit
    def step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return jax.tree_util.tree_map(lambda a, u: a + u, params, updates), opt_state, loss

    initial = init_params(layers, seed)
    params = {name: jnp.asarray(value) for name, value in
              (stacked_params(initial, layers) if scan else initial).items()}
    x, y = (jnp.asarray(a) for a in fixed_batch(seed))
    state = [params, optimizer.init(params)]

    def run() -> float:
        params, opt_state, loss = jax.block_until_ready(step(*state, x, y))
        state[:] = [params, opt_state]
        return float(loss)

    return run


def build_torch(layers: int, seed: int, compiled: bool) -> Callable[[], float]:
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.set_num_threads(int(os.environ.get("BENCHMARK_THREADS", torch.get_num_threads())))

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.in_proj_weight = nn.Parameter(torch.empty(3 * D_MODEL, D_MODEL))
            self.in_proj_bias = nn.Parameter(torch.empty(3 * D_MODEL))
            self.out_proj = nn.Linear(D_MODEL, D_MODEL)

        def forward(self, x):
            b, t, e = x.shape
            qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
            q, k, v = (part.view(b, t, HEADS, e // HEADS).transpose(1, 2) for part in qkv.split(e, dim=-1))
            heads = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.out_proj(heads.transpose(1, 2).reshape(b, t, e))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(D_MODEL), nn.LayerNorm(D_MODEL)
            self.attn = Attention()
            self.fc, self.proj = nn.Linear(D_MODEL, 4 * D_MODEL), nn.Linear(4 * D_MODEL, D_MODEL)

        def forward(self, x):
            x = x + self.attn(self.ln1(x))
            return x + self.proj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(VOCAB, D_MODEL), nn.Embedding(CONTEXT, D_MODEL)
            self.blocks = nn.ModuleList(Block() for _ in range(layers))
            self.ln_f = nn.LayerNorm(D_MODEL)

        def forward(self, ids):
            x = self.wte(ids) + self.wpe.weight[:ids.shape[-1]]
            for block in self.blocks:
                x = block(x)
            return self.ln_f(x) @ self.wte.weight.T

    model = GPT()
    model.load_state_dict({name: torch.from_numpy(value) for name, value in init_params(layers, seed).items()})
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, betas=BETAS, eps=EPS,
                                  weight_decay=WEIGHT_DECAY)
    x, y = (torch.from_numpy(a).long() for a in fixed_batch(seed))

    def loss_fn(x, y):
        return F.cross_entropy(model(x).reshape(-1, VOCAB), y.reshape(-1))

    def optimizer_step():
        optimizer.step()

    if compiled:
        loss_fn = torch.compile(loss_fn)
        optimizer_step = torch.compile(optimizer_step)

    def run() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(x, y)
        loss.backward()
        optimizer_step()
        return loss.item()

    return run


def build(name: str, layers: int, seed: int) -> Callable[[], float]:
    if name in ("fgrad", "fgrad-scan"):
        return build_fgrad(layers, seed, scan=name == "fgrad-scan")
    if name in ("jax", "jax-scan"):
        return build_jax(layers, seed, scan=name == "jax-scan")
    if name in ("torch", "torch-compile"):
        return build_torch(layers, seed, compiled=name == "torch-compile")
    raise ValueError(f"unknown implementation {name!r}; choose from {', '.join(IMPLEMENTATIONS + SCANNED)}")


def version_of(name: str) -> str:
    if name.startswith("fgrad"):
        return f"fgrad ({fgrad_jit_path()})"
    if name.startswith("jax"):
        optax = module_version("optax")
        return f"jax {module_version('jax')}" + (f" + optax {optax}" if optax else " + hand-written AdamW")
    return f"torch {module_version('torch')}"


# --- the worker: one implementation, one thread count, one fresh process -------------------------

def worker(name: str, threads: int, layers: int, warmup: int, steps: int, seed: int) -> dict:
    """Time ``1 + warmup + steps`` steps; returns the first call's seconds and loss and each timed
    step's ms."""
    cpus = pin_threads(threads)
    run = build(name, layers, seed)
    start = time.perf_counter()
    first_loss = run()
    first_call_s = time.perf_counter() - start
    loss = first_loss
    final_code_s = first_call_s + fgrad_final_code_wait(name)   # timed steps run the final code
    for _ in range(warmup):
        loss = run()
    step_ms = []
    busy0, own0, wall0 = busy_cpu_seconds(), time.process_time(), time.perf_counter()
    for _ in range(steps):
        start = time.perf_counter()
        loss = run()
        step_ms.append((time.perf_counter() - start) * 1e3)
    elapsed = max(time.perf_counter() - wall0, 1e-9)
    others = (busy_cpu_seconds() - busy0 - (time.process_time() - own0)) / elapsed
    return {"impl": name, "threads": threads, "cpus": cpus, "layers": layers, "version": version_of(name),
            "first_call_s": first_call_s, "final_code_s": final_code_s, "first_loss": first_loss, "loss": loss,
            "step_ms": step_ms,
            "others_load": max(others, 0.0)}


# --- the driver ------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--impl", default=",".join(IMPLEMENTATIONS),
                        help=f"comma-separated implementations from {','.join(IMPLEMENTATIONS + SCANNED)} "
                             "(the -scan ones stack the blocks and run them with lax.scan)")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--layers", type=int, default=4, help="transformer blocks")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per run (after warm-up)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps after the first call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--depths", default=None, metavar="2,4,8,12",
                        help="instead of timing steps: cold first-call seconds of fgrad and jax at these depths "
                             "(the largest --threads value)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed per subprocess")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="S",
                        help="wait up to S seconds for the machine to become idle before starting")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.impls = [s.strip() for s in args.impl.split(",") if s.strip()]
    unknown = [s for s in args.impls if s not in IMPLEMENTATIONS + SCANNED]
    if unknown:
        parser.error(f"unknown implementation(s) {', '.join(unknown)}; "
                     f"choose from {', '.join(IMPLEMENTATIONS + SCANNED)}")
    args.thread_counts = _positive_ints(parser, "--threads", args.threads)
    args.depth_list = _positive_ints(parser, "--depths", args.depths) if args.depths else None
    if args.layers < 1 or args.steps < 1 or args.warmup < 0:
        parser.error("--layers and --steps must be >= 1 and --warmup >= 0")
    return args


def _positive_ints(parser: argparse.ArgumentParser, flag: str, text: str) -> list[int]:
    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        parser.error(f"{flag} takes comma-separated integers, got {text!r}")
    if not values or min(values) < 1:
        parser.error(f"{flag} needs at least one positive integer")
    return values


def worker_args(name: str, threads: int, layers: int, warmup: int, steps: int, seed: int) -> list[str]:
    return ["--worker", name, "--threads", str(threads), "--layers", str(layers), "--warmup", str(warmup),
            "--steps", str(steps), "--seed", str(seed)]


def measure(args: argparse.Namespace, name: str, threads: int, layers: int, warmup: int, steps: int) -> dict:
    """One worker run with empty on-disk compilation caches; for fgrad, a second process on the
    cache the first filled adds ``warm_start_s`` (its first call)."""
    with tempfile.TemporaryDirectory(prefix="fgrad-bench-") as folder:
        env = cold_cache_env(folder)
        result = run_worker(__file__, worker_args(name, threads, layers, warmup, steps, args.seed), threads,
                            timeout_s=args.timeout, extra_env=env)
        if name.startswith("fgrad") and "error" not in result and not args.depth_list:
            warm = run_worker(__file__, worker_args(name, threads, layers, 0, 1, args.seed), threads,
                              timeout_s=args.timeout, extra_env=env)
            result["warm_start_s"] = warm.get("first_call_s")
    return result


def available(names: list[str]) -> tuple[list[str], list[str]]:
    ok, missing = [], []
    for name in names:
        (ok if module_version(PACKAGE_OF[name]) else missing).append(name)
    return ok, missing


def timing_tables(args: argparse.Namespace, busy: float) -> list[Table]:
    flops = step_flops(args.layers)
    impls, missing = available(args.impls)
    results: dict[tuple[str, int], dict] = {}
    for threads in args.thread_counts:
        for name in impls:
            results[name, threads] = result = measure(args, name, threads, args.layers, args.warmup, args.steps)
            print(f"  measured {name} with {threads} thread(s): {_summary(result)}", file=sys.stderr, flush=True)

    table = Table(f"GPT training step, {args.layers} layers, batch {BATCH} x {CONTEXT} tokens "
                  f"({parameter_count(args.layers) / 1e6:.2f} M parameters, {flops / 1e9:.2f} GFLOP/step; "
                  f"median of {args.steps} timed steps after {args.warmup} warm-up)",
                  ["implementation", "threads", "ms/step", "min ms", "first call s", "final code s", "warm start s",
                   "warm ready s", "GFLOP/s", "first loss", "loss at end", "others' load", "version"])
    add_machine_header(table, busy)
    table.header_notes.append("first call = trace + compile + one step, empty on-disk compilation caches; "
                              "warm start = fgrad's first call in a second process, on the disk cache the "
                              "first filled, and warm ready = that less one step (the median ms/step): the time until the "
                              "program is loaded; final code = fgrad's first call, then the wait until the final "
                              "builds of the kernels it compiled quick first are swapped in (timed steps run those)")
    for (name, threads), r in results.items():
        if "error" in r:
            table.add_row(name, threads, *[None] * 10, r["error"])
            continue
        median_ms = statistics.median(r["step_ms"])
        table.add_row(name, threads, median_ms, min(r["step_ms"]), r["first_call_s"], r.get("final_code_s"),
                      r.get("warm_start_s"),
                      r["warm_start_s"] - median_ms / 1e3 if r.get("warm_start_s") is not None else None,
                      flops / (median_ms * 1e-3) / 1e9, f"{r['first_loss']:.6f}", f"{r['loss']:.4f}",
                      r["others_load"], r["version"])
    table.footnotes.append("GFLOP/s: (6 N + 12 layers d_model context) x tokens per step over the median ms/step "
                           "(N = parameters less the position embedding; nanoGPT's estimate_mfu count)")
    table.footnotes.append("every framework: GELU tanh approximation; AdamW lr 3e-4, betas (0.9, 0.999), "
                           "eps 1e-8, weight decay 0.01 on all parameters; identical initial parameters and batch")
    table.footnotes += [f"not measured: {m} ({PACKAGE_OF[m]} not installed; bash benchmarks/install_peers.sh)"
                        for m in missing]
    return [table, loss_check_table(results, args.thread_counts)]


def loss_check_table(results: dict, thread_counts: list[int]) -> Table:
    """fgrad's first loss against JAX's, per thread count (the same parameters and batch); the
    scanned models' too when both ran."""
    table = Table(f"First loss, fgrad vs JAX (same parameters and batch; relative tolerance {LOSS_RTOL:g})",
                  ["threads", "fgrad", "jax", "relative difference", "check"])
    pairs = [("fgrad", "jax")] + [("fgrad-scan", "jax-scan")] * any(name in SCANNED for name, _ in results)
    for a, b in pairs:
        for threads in thread_counts:
            ours, theirs = results.get((a, threads), {}), results.get((b, threads), {})
            label = threads if a == "fgrad" else f"{threads} (scan)"
            if "first_loss" not in ours or "first_loss" not in theirs:
                table.add_row(label, _loss_cell(ours), _loss_cell(theirs), None, "not compared")
                continue
            difference = abs(ours["first_loss"] - theirs["first_loss"]) / abs(theirs["first_loss"])
            table.add_row(label, _loss_cell(ours), _loss_cell(theirs), f"{difference:.1e}",
                          "PASS" if difference <= LOSS_RTOL else "FAIL")
    return table


def _loss_cell(result: dict) -> str | None:
    return f"{result['first_loss']:.7f}" if "first_loss" in result else None


def depth_table(args: argparse.Namespace, busy: float) -> Table:
    threads = max(args.thread_counts)
    impls, missing = available([name for name in ("fgrad", "jax", *SCANNED) if name in args.impls])
    cold: dict[tuple[str, int], dict] = {}
    for layers in args.depth_list:
        for name in impls:
            cold[name, layers] = result = measure(args, name, threads, layers, 0, 3)
            print(f"  measured {name} at {layers} layers: {_summary(result)}", file=sys.stderr, flush=True)
    reference = 4 if 4 in args.depth_list else args.depth_list[0]
    ours = [name for name in impls if name.startswith("fgrad")]
    pairs = [(name, "jax" + name[len("fgrad"):]) for name in ours if "jax" + name[len("fgrad"):] in impls]
    table = Table(f"Cold first call (trace + compile + one step) vs depth, {threads} thread(s), empty caches",
                  ["layers", "parameters M", *[f"{name} s" for name in impls],
                   *[f"{name} compile s" for name in impls],
                   *[f"{name} final code s" for name in ours],
                   *[f"{name} / {reference} layers" for name in ours],
                   *[f"{name} compile / {reference} layers" for name in ours],
                   *[f"{a} / {b}" for a, b in pairs]])
    add_machine_header(table, busy)
    compile_s = {key: _compile_seconds(result) for key, result in cold.items()}
    for layers in args.depth_list:
        row = [layers, parameter_count(layers) / 1e6, *[cold[name, layers].get("first_call_s") for name in impls]]
        row += [compile_s[name, layers] for name in impls]
        row += [cold[name, layers].get("final_code_s") for name in ours]
        row += [_ratio(cold[name, layers].get("first_call_s"), cold[name, reference].get("first_call_s"))
                for name in ours]
        row += [_ratio(compile_s[name, layers], compile_s[name, reference]) for name in ours]
        row += [_ratio(cold[a, layers].get("first_call_s"), cold[b, layers].get("first_call_s")) for a, b in pairs]
        table.add_row(*row)
    table.footnotes.append("compile s = the first call less the fastest of the three steps after it (which run "
                           "the final code): what the first call spends beyond running the step")
    errors = [f"{name} at {layers} layers: {r['error']}" for (name, layers), r in cold.items() if "error" in r]
    table.footnotes += errors + [f"not measured: {m} ({PACKAGE_OF[m]} not installed)" for m in missing]
    if any(name in SCANNED for name in impls):
        table.footnotes.append("-scan: the blocks' parameters stacked on a leading layer axis and run by "
                               "lax.scan (one block traced and compiled, whatever the depth)")
    return table


def _compile_seconds(result: dict) -> float | None:
    """The first call's seconds less one steady step's: its trace and compile."""
    if "first_call_s" not in result or not result.get("step_ms"):
        return None
    return result["first_call_s"] - min(result["step_ms"]) / 1e3


def _ratio(a: float | None, b: float | None) -> str | None:
    return f"{a / b:.2f}x" if a is not None and b else None


def _summary(result: dict) -> str:
    if "error" in result:
        return result["error"]
    ms = result["step_ms"]
    warm = f", warm start {result['warm_start_s']:.2f} s" if result.get("warm_start_s") is not None else ""
    return (f"first call {result['first_call_s']:.2f} s{warm}, {statistics.median(ms):.1f} ms/step, "
            f"first loss {result['first_loss']:.6f}, loss {result['loss']:.4f}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker is not None:
        emit_result(worker(args.worker, args.thread_counts[0], args.layers, args.warmup, args.steps, args.seed))
        return
    busy = wait_for_idle(args.wait_idle) if args.wait_idle > 0 else cpu_busy_fraction()
    tables = [depth_table(args, busy)] if args.depth_list else timing_tables(args, busy)
    print("\n\n".join(t.markdown() if args.markdown else t.render() for t in tables))


if __name__ == "__main__":
    main()
