"""Contractions: 1024^3 float32 matmul GFLOP/s, and (``--conv``) the MNIST convolutions.

Matmul rows: ``fgrad.jit(lambda a, b: a @ b)`` (the packed GEMM template of
``fgrad.lower.contraction``, tiled for the run's thread count), NumPy (OpenBLAS), and JAX / PyTorch where installed; one column per thread
count, each configuration in a fresh process. Target (issue 4): fgrad >= 75% of NumPy.

``--gpt``: the GPT step's contractions (``GPT_GEMMS``: skinny, transposed and batched shapes),
fgrad against NumPy and the peers (issue 19: SGEMM >= 95% of OpenBLAS, on these shapes too).

``--conv``: the MNIST convnet at batch 128 — conv1 1->32 3x3 on 28x28, conv2 32->64 3x3
on 13x13 — forward, input gradient (conv2 only; conv1's input is the data) and weight
gradient, each as a convolution the way JAX's transpose rules write them. fgrad runs
them through ``convolution.conv`` (im2col packing + GEMM) and, for the forward and
input-gradient forms, through a direct convolution loop nest written here in kernel
IR (vectorised over output columns, 8 output channels per register block): the
comparison behind the choice of GEMM.

    python benchmarks/matmul.py [--size 1024] [--threads 1,2] [--conv | --gpt] [--impl fgrad,numpy] [--markdown]
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys

from _common import (REPO_ROOT, single_call_seconds, Table, cpu_busy_fraction, emit_result, idle_warning,
                     machine_description, pin_threads, run_worker)

TARGET = 0.75
CONVS = {   # name: (lhs shape, rhs shape, out shape, padding, dimension numbers)
    "conv1 fwd": ((128, 1, 28, 28), (32, 1, 3, 3), (128, 32, 26, 26), 0, "fwd"),
    "conv1 wgrad": ((128, 1, 28, 28), (128, 32, 26, 26), (32, 1, 3, 3), 0, "wgrad"),
    "conv2 fwd": ((128, 32, 13, 13), (64, 32, 3, 3), (128, 64, 11, 11), 0, "fwd"),
    "conv2 dgrad": ((128, 64, 11, 11), (64, 32, 3, 3), (128, 32, 13, 13), 2, "dgrad"),
    "conv2 wgrad": ((128, 32, 13, 13), (128, 64, 11, 11), (64, 32, 3, 3), 0, "wgrad"),
}
DN = {"fwd": ((0, 1, 2, 3), (0, 1, 2, 3), (0, 1, 2, 3)),
      "dgrad": ((0, 1, 2, 3), (1, 0, 2, 3), (0, 1, 2, 3)),      # rhs read as (I, O, H, W), flipped
      "wgrad": ((1, 0, 2, 3), (1, 0, 2, 3), (1, 0, 2, 3))}      # batch <-> feature


#: the GPT step's contractions (benchmarks/gpt_step.py, 4 layers: 2,048 tokens, d_model 128, 4
#: heads of 32, MLP 512, vocabulary 65): name -> (batch, m, k, n, layout); layout "nn" is
#: A @ B, "nt" A @ B^T (B stored n x k), "tn" A^T @ B (A stored k x m: weight gradients)
GPT_GEMMS = {
    "qkv fwd": (1, 2048, 128, 384, "nn"), "mlp up fwd": (1, 2048, 128, 512, "nn"),
    "mlp down fwd": (1, 2048, 512, 128, "nn"), "lm head fwd": (1, 2048, 128, 65, "nt"),
    "mlp down dgrad": (1, 2048, 128, 512, "nt"), "mlp up wgrad": (1, 128, 2048, 512, "tn"),
    "qkv wgrad": (1, 128, 2048, 384, "tn"), "scores (64 heads)": (64, 128, 32, 128, "nt"),
    "values (64 heads)": (64, 128, 128, 32, "nn"), "scores dgrad (64 heads)": (64, 128, 128, 32, "tn"),
}


def _spot_check(got, a, b, label: str) -> None:
    """Check 16 entries of ``got = a @ b`` (batched when 3-d) without BLAS: a NumPy matmul
    here would wake OpenBLAS's threads, which keep spinning on the cores for a while and slow
    the timed calls down by a third."""
    import numpy as np
    a3, b3, g3 = (x.reshape((-1,) + x.shape[-2:]) for x in (a, b, got))
    for bb, i, j in np.random.default_rng(1).integers(0, [len(g3), *g3.shape[1:]], (16, 3)):
        want = float((a3[bb, i].astype(np.float64) * b3[bb, :, j]).sum())
        if abs(g3[bb, i, j] - want) > 1e-3 * abs(want) + 1e-2:
            raise RuntimeError(f"fgrad gave a wrong result for {label}")


def gemm_flops(name: str) -> int:
    batch, m, k, n, _ = GPT_GEMMS[name]
    return 2 * batch * m * k * n


def gemm_operands(name: str):
    """The case's operands as stored, and the function of them each framework computes."""
    import numpy as np
    batch, m, k, n, layout = GPT_GEMMS[name]
    rng = np.random.default_rng(0)
    lead = (batch,) if batch > 1 else ()
    a = rng.random(lead + ((k, m) if layout == "tn" else (m, k)), np.float32)
    b = rng.random(lead + ((n, k) if layout == "nt" else (k, n)), np.float32)
    t = lambda x, xp: xp.swapaxes(x, -1, -2)
    product = {"nn": lambda x, y, xp: x @ y, "nt": lambda x, y, xp: x @ t(y, xp),
               "tn": lambda x, y, xp: t(x, xp) @ y}[layout]
    return a, b, product


def gemm_cases(impl: str, name: str) -> dict:
    import numpy as np
    a, b, product = gemm_operands(name)
    if impl == "fgrad":
        sys.path.insert(0, REPO_ROOT)
        import fgrad
        f = fgrad.jit(lambda x, y: product(x, y, fgrad.numpy))
        fa, fb = fgrad.numpy.asarray(a), fgrad.numpy.asarray(b)
        t = lambda x: np.swapaxes(x, -1, -2)
        layout = GPT_GEMMS[name][4]
        _spot_check(np.asarray(f(fa, fb)), t(a) if layout == "tn" else a, t(b) if layout == "nt" else b, name)
        from fgrad.backends.cpu import wait_for_background_compiles
        wait_for_background_compiles()
        return {"fgrad": lambda: f(fa, fb)}
    if impl == "numpy":
        return {"NumPy (OpenBLAS)": lambda: product(a, b, np)}
    if impl == "jax":
        import jax
        import jax.numpy as jnp
        f = jax.jit(lambda x, y: product(x, y, jnp))
        ja, jb = jnp.asarray(a), jnp.asarray(b)
        return {"JAX jit": lambda: f(ja, jb).block_until_ready()}
    if impl == "torch":
        import torch
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        return {"PyTorch": lambda: product(ta, tb, torch)}
    raise ValueError(impl)


def conv_flops(name: str) -> int:
    lhs, rhs, out, _, kind = CONVS[name]
    if kind == "wgrad":
        return 2 * math.prod(rhs) * lhs[1] * out[2] * out[3]
    return 2 * math.prod(out) * rhs[2] * rhs[3] * (rhs[1] if kind == "fwd" else rhs[0])


def _median_seconds(fn, repeats: int = 9) -> float:
    return statistics.median(single_call_seconds(fn, repeats))


# --- matmul workers ----------------------------------------------------------------------

def matmul_cases(impl: str, n: int) -> dict:
    import numpy as np
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), np.float32), rng.random((n, n), np.float32)
    if impl == "fgrad":     # what users run: fgrad.jit of a @ b (the packed GEMM template inside)
        sys.path.insert(0, REPO_ROOT)
        import fgrad
        matmul = fgrad.jit(lambda x, y: x @ y)
        fa, fb = fgrad.numpy.asarray(a), fgrad.numpy.asarray(b)
        _spot_check(np.asarray(matmul(fa, fb)), a, b, "1024^3")
        from fgrad.backends.cpu import wait_for_background_compiles
        wait_for_background_compiles()     # time the final builds, not the quick first ones
        return {"fgrad": lambda: matmul(fa, fb)}
    if impl == "numpy":
        out = np.empty((n, n), np.float32)
        return {"NumPy (OpenBLAS)": lambda: np.matmul(a, b, out=out)}
    if impl == "jax":
        import jax
        import jax.numpy as jnp
        f = jax.jit(jnp.matmul)
        ja, jb = jnp.asarray(a), jnp.asarray(b)
        return {"JAX jit": lambda: f(ja, jb).block_until_ready()}
    if impl == "torch":
        import torch
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        return {"PyTorch": lambda: torch.matmul(ta, tb)}
    raise ValueError(impl)


# --- convolution workers -------------------------------------------------------------------

def _direct_conv_kernel(name, lhs, rhs, out, pad, flip_io):
    """out[n, o, y, x] = sum_{c, ky, kx} w * x[n, c, y + ky - pad, x + kx - pad] (stride 1), NCHW.

    Vectorised over x (masked loads do the padding), 8 output channels per block held
    in per-lane registers, parallel over (image, channel block).
    """
    from fgrad.lower import contraction as C
    from fgrad.lower import kernel as K
    n, cin, h, w = lhs.shape
    _, cout, oh, ow = out.shape
    k = rhs.shape[2]
    cob = 8
    blocks = math.ceil(cout / cob)
    px, pw, po = C.param(lhs), C.param(rhs), C.param(out)
    t, oy, ox, ci, ky, kx, c = (K.Var(v) for v in ("t", "oy", "ox", "ci", "ky", "kx", "c"))
    img, o0 = t // blocks, (t % blocks) * cob
    acc = K.Local("acc", K.float32, cob)
    iy, ix = oy + ky - pad, ox + kx - pad
    ok = K.logical_and(iy >= 0, iy < h, ix >= 0, ix < w)
    xv = px.load(((img * cin + ci) * h + K.select(ok, iy, K.Const(0))) * w + K.select(ok, ix, K.Const(0)), ok)
    o = K.minimum(o0 + c, K.Const(cout - 1))
    widx = ((ci * cout + o) * k + (k - 1 - ky)) * k + (k - 1 - kx) if flip_io else ((o * cin + ci) * k + ky) * k + kx
    update = K.Range(c, 0, cob, (acc.accumulate(c, "add", pw[widx] * xv),), unroll=K.FULL)
    taps = K.Range(ky, 0, k, (K.Range(kx, 0, k, (update,), unroll=K.FULL),), unroll=K.FULL)
    stores = K.Range(c, 0, cob, (K.If(o0 + c < cout, (po.store(((img * cout + o0 + c) * oh + oy) * ow + ox,
                                                                 acc[c]),)),), unroll=K.FULL)
    body = (K.DefineLocal(acc, K.Const(0.0, K.float32)), K.Range(ci, 0, cin, (taps,)), stores)
    row = K.Range(oy, 0, oh, (K.Range(ox, 0, ow, body, vectorize=K.AUTO),))
    return K.Kernel(name, (px, pw, po), (K.Range(t, 0, n * blocks, (row,), parallel=True),),
                    flops=2 * n * cout * oh * ow * cin * k * k)


def conv_cases(impl: str, name: str) -> dict:
    import numpy as np
    lshape, rshape, oshape, pad, kind = CONVS[name]
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(lshape, np.float32), rng.standard_normal(rshape, np.float32)
    if impl in ("fgrad-gemm", "fgrad-direct"):
        sys.path.insert(0, REPO_ROOT)
        from fgrad.backends.cpu import compile_program, wait_for_background_compiles
        from fgrad.lower import convolution
        from fgrad.lower import kernel as K
        lb, rb, ob = K.Buffer("x", K.float32, lshape), K.Buffer("w", K.float32, rshape), \
            K.Buffer("o", K.float32, oshape)
        if impl == "fgrad-gemm":
            from fgrad.backends.cpu import lowering_target
            machine = lowering_target()     # the SIMD width and threads jit's lowering uses here
            con = convolution.conv("cv", lb, rb, ob, window_strides=(1, 1), padding=[(pad, pad)] * 2,
                                   dimension_numbers=DN[kind], threads=machine.threads,
                                   vector_bytes=machine.vector_bytes)
            steps = con.steps
        elif kind == "wgrad":
            return {}
        else:
            kern = _direct_conv_kernel("direct", lb, rb, ob, pad, kind == "dgrad")
            steps = (K.Call(kern, (lb, rb, ob)),)
        exe = compile_program(K.Program("cv", (lb, rb), (ob,), steps))
        out = np.empty(oshape, np.float32)
        exe(x, w, out=[out])
        wait_for_background_compiles()     # time the final builds, not the quick first ones
        return {impl: lambda: exe(x, w, out=[out])}
    if impl == "torch":
        import torch
        import torch.nn.functional as F
        tx, tw = torch.from_numpy(x), torch.from_numpy(w)
        if kind == "fwd":
            return {"PyTorch": lambda: F.conv2d(tx, tw)}
        if kind == "dgrad":       # x is dy, w the weight
            return {"PyTorch": lambda: torch.nn.grad.conv2d_input(oshape, tw, tx)}
        return {"PyTorch": lambda: torch.nn.grad.conv2d_weight(tx, oshape, tw)}   # w is dy
    if impl == "jax":
        import jax
        from jax import lax
        f = jax.jit(lambda a, b: lax.conv_general_dilated(a, b, (1, 1), [(pad, pad)] * 2,
                                                          dimension_numbers=_jax_dn(kind)))
        ja, jb = jax.numpy.asarray(x), jax.numpy.asarray(w)
        return {"JAX jit": lambda: f(ja, jb).block_until_ready()}
    raise ValueError(impl)


def _jax_dn(kind: str) -> tuple[str, str, str]:
    """The same convolution forms as DN, in lax's layout strings."""
    return {"fwd": ("NCHW", "OIHW", "NCHW"), "dgrad": ("NCHW", "IOHW", "NCHW"),
            "wgrad": ("CNHW", "IOHW", "CNHW")}[kind]


def worker(args) -> None:
    pin_threads(int(os.environ.get("BENCHMARK_THREADS", "1")))
    try:
        if args.conv_case:
            cases = conv_cases(args.worker, args.conv_case)
            flops = conv_flops(args.conv_case)
        elif args.gemm_case:
            cases = gemm_cases(args.worker, args.gemm_case)
            flops = gemm_flops(args.gemm_case)
        else:
            cases = matmul_cases(args.worker, args.size)
            flops = 2 * args.size ** 3
    except ImportError as e:
        emit_result({"skipped": f"{args.worker} not installed ({e.name})"})
        return
    except Exception as e:
        emit_result({"error": f"{type(e).__name__}: {str(e)[:160]}"})
        return
    emit_result({name: flops / _median_seconds(fn) / 1e9 for name, fn in cases.items()})


def _collect(args, threads, impls, conv_case=None, gemm_case=None):
    rows, notes = {}, []
    for impl in impls:
        for t in threads:
            extra = ["--conv-case", conv_case] if conv_case else ["--gemm-case", gemm_case] if gemm_case else []
            res = run_worker(__file__, ["--worker", impl, "--size", str(args.size)] + extra, t, timeout_s=900)
            if "skipped" in res or "error" in res:
                notes.append(f"{impl} ({t} thr{', ' + conv_case if conv_case else ''}): "
                             f"{res.get('skipped') or res.get('error')}")
                continue
            for name, value in res.items():
                rows.setdefault(name, [None] * len(threads))[threads.index(t)] = value
    return rows, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--impl", default="fgrad,numpy,jax,torch")
    parser.add_argument("--conv", action="store_true", help="the MNIST convolutions instead")
    parser.add_argument("--gpt", action="store_true", help="the GPT step's matmul shapes instead")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--conv-case", help=argparse.SUPPRESS)
    parser.add_argument("--gemm-case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    busy = cpu_busy_fraction()
    threads = [int(t) for t in args.threads.split(",")]
    heads = [f"{t} thread{'s' if t > 1 else ''}" for t in threads]
    out = []
    if args.conv:
        table = Table(f"MNIST convolutions at batch 128, GFLOP/s ({machine_description()})",
                      ["convolution", "implementation"] + heads)
        notes = []
        for case in CONVS:
            rows, more = _collect(args, threads, ["fgrad-gemm", "fgrad-direct", "jax", "torch"], case)
            notes += more
            for name, cells in rows.items():
                table.add_row(case, name, *[f"{c:.1f}" if c else "-" for c in cells])
        out.append(table.markdown() if args.markdown else table.render())
        out += notes
    elif args.gpt:
        table = Table(f"The GPT step's contractions (4 layers), GFLOP/s ({machine_description()})",
                      ["contraction", "batch x m x k x n", "implementation"] + heads + ["fgrad / NumPy"])
        notes = []
        for case, (batch, m, k, n, layout) in GPT_GEMMS.items():
            rows, more = _collect(args, threads, args.impl.split(","), gemm_case=case)
            notes += more
            ref, ours = rows.get("NumPy (OpenBLAS)"), rows.get("fgrad")
            ratio = " / ".join(f"{o / r:.0%}" for o, r in zip(ours, ref) if o and r) if ref and ours else "-"
            for name, cells in rows.items():
                table.add_row(case, f"{batch}x{m}x{k}x{n} {layout}", name, *[f"{c:.1f}" if c else "-" for c in cells],
                              ratio if name == "fgrad" else "")
        out.append(table.markdown() if args.markdown else table.render())
        out += notes
    else:
        rows, notes = _collect(args, threads, args.impl.split(","))
        table = Table(f"{args.size}^3 float32 matmul, GFLOP/s ({machine_description()})",
                      ["implementation"] + heads)
        for name, cells in rows.items():
            table.add_row(name, *[f"{c:.1f}" if c else "-" for c in cells])
        out.append(table.markdown() if args.markdown else table.render())
        ref, ours = rows.get("NumPy (OpenBLAS)"), rows.get("fgrad")
        if ref and ours:
            out.append("fgrad / NumPy: " + ", ".join(f"{t} thr {o / r:.0%}" for t, o, r in zip(threads, ours, ref)
                                                    if o and r) + f" (target >= {TARGET:.0%})")
        out += notes
    warning = idle_warning(busy)
    print("\n".join(out + ([warning] if warning else [])))


if __name__ == "__main__":
    main()
