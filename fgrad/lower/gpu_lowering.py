"""How the GPU lowering writes folds and contractions (``lower_program(target="gpu")``).

A GPU runs ~270k threads at once and is as slow as its longest serial chain, so the CPU's
loop nests (one accumulator walked along the contracted dims, packed GEMM panels per
thread) do not fit it. Here:

* ``gemm``: a big float contraction as ``for b, m, n: sum_k x(b, m, k) * y(b, k, n)``, which
  the CUDA renderer turns into its tiled shared-memory GEMM (``cuda.gemm_pattern``), with
  split-K when there are few output tiles and a long K;
* ``fold``: any other reduction or contraction, each thread folding a register tile of
  outputs, long folds over few outputs split into partials folded again.

The rules in ``rules.py`` call these for ``lw.target == "gpu"``; nothing here names a
primitive.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from fgrad.core.types import ShapedArray
from fgrad.lower import kernel as K
from fgrad.lower.cuda_contraction import tf32_round
from fgrad.lower.gpu_modes import gemm_worthwhile
from fgrad.lower.schedule import KernelBuilder, Lowerer, ir_dtype, nest, ravel, reduce_identity, unravel

GPU_THREADS = 1 << 18       # threads that fill an H100/H200 (132 SMs x 2048 resident)
GPU_MIN_CHUNK = 32          # terms a thread folds at least before a reduction is split further
GPU_LONG_CHAIN = 4096       # terms per thread that are worth a split even with many threads


def split_count(threads: int, red_size: int) -> int:
    """How many chunks to split a fold of ``red_size`` terms on ``threads`` threads into (1:
    no split): enough to fill the GPU when there are few threads, unless the fold is short;
    a quarter of a full GPU is enough unless the chains are long."""
    if red_size <= 2 * GPU_MIN_CHUNK or threads >= GPU_THREADS:
        return 1
    if threads >= GPU_THREADS // 4 and red_size <= GPU_LONG_CHAIN:
        return 1
    return max(1, min(-(-GPU_THREADS // threads), red_size // GPU_MIN_CHUNK))


def fold(lw: Lowerer, buf: K.Buffer, aval: ShapedArray, red_sizes: Sequence[int],
         term: Callable[[KernelBuilder, list, list], K.Expr], op_name: str, name: str,
         flops: int = 0, epilogue: Callable | None = None) -> None:
    """GPU: ``buf[o] = fold(op_name, term(kb, o, k) for every k in red_sizes)``.

    Each thread folds a *tile* of ``GPU_TILE`` outputs along one output dim in registers
    when some operand load does not depend on that dim (a conv's input does not depend on
    its output feature): the load is then read once per tile instead of once per output
    (``tile_dim``). That makes enough threads unless the fold has few outputs and many
    terms (a bias or weight gradient: 32 outputs of 86528 terms each), which would be a
    few threads running long serial chains; such a fold is split: one thread per (chunk,
    tile) folds a chunk of the leading reduced dims (whole rows of the trailing ones, no
    index division inside a row) into partials, and the partials are folded the same way,
    recursively. ``epilogue(kb, value, o)`` (a deferred contraction's pointwise reader)
    maps each folded value before it is stored."""
    dtype = ir_dtype(aval.dtype)
    red = int(np.prod(red_sizes, dtype=np.int64))
    out_size = aval.size
    tiled = tile_dim(aval.shape, red_sizes, term)
    tile = GPU_TILE if tiled is not None else 1
    splits = split_count(out_size // tile, red)
    kb = KernelBuilder()
    o = [kb.var("o") for _ in aval.shape]
    loop_shape = [n // tile if d == tiled else n for d, n in enumerate(aval.shape)]
    tiles = [o if tiled is None else
             [o[d] * tile + t if d == tiled else o[d] for d in range(len(o))] for t in range(tile)]
    flats = [ravel(idx, aval.shape) if aval.shape else K.Const(0, K.INDEX) for idx in tiles]
    acc = K.Local("acc", dtype, tile)
    init = K.DefineLocal(acc, reduce_identity(op_name, dtype))

    def updates(k: list) -> list:
        return [acc.accumulate(t, op_name, K.cast(term(kb, idx, k), dtype)) for t, idx in enumerate(tiles)]
    if splits == 1:
        k = [kb.var("k") for _ in red_sizes]
        out = kb.param(buf)
        loops = nest(k, red_sizes, updates(k))
        results = [acc[t] if epilogue is None else K.cast(epilogue(kb, acc[t], idx), buf.dtype)
                   for t, idx in enumerate(tiles)]
        stores = [out.store(f, v) for f, v in zip(flats, results)]
        lw.emit(kb, name, nest(o, loop_shape, [init, *loops, *stores]), flops)
        return
    want = -(-red // splits)                   # terms per thread
    cut = 1                                    # red_sizes[:cut] are split, red_sizes[cut:] kept whole
    while cut < len(red_sizes) and int(np.prod(red_sizes[cut:], dtype=np.int64)) > want:
        cut += 1
    rows, row = int(np.prod(red_sizes[:cut], dtype=np.int64)), int(np.prod(red_sizes[cut:], dtype=np.int64))
    per_chunk = max(1, want // row)
    splits = -(-rows // per_chunk)
    partial = K.Buffer(f"part{next(lw.names)}", dtype, (splits, out_size))
    part = kb.param(partial)
    s, j = kb.var("s"), kb.var("j")
    inner = [kb.var("k") for _ in red_sizes[cut:]]
    r = s * per_chunk + j                      # the row of the leading dims
    loops = nest(inner, red_sizes[cut:], updates(unravel(r, red_sizes[:cut]) + inner))
    if rows % per_chunk:
        loops = [K.If(K.op("lt", r, K.Const(rows, K.INDEX)), loops)]
    stores = [part.store(s * out_size + f, acc[t]) for t, f in enumerate(flats)]
    body = [init, K.Range(j, 0, per_chunk, loops), *stores]
    lw.emit(kb, f"{name}_part", [K.Range(s, 0, splits, nest(o, loop_shape, body), parallel=True)], flops)

    def partial_term(kb2: KernelBuilder, o2: list, k2: list) -> K.Expr:
        flat2 = ravel(o2, aval.shape) if aval.shape else K.Const(0, K.INDEX)
        return kb2.param(partial)[k2[0] * out_size + flat2]
    fold(lw, buf, aval, (splits,), partial_term, op_name, name, epilogue=epilogue)


def gemm(lw: Lowerer, buf: K.Buffer, aval: ShapedArray, red_sizes: Sequence[int],
         product: Callable[[KernelBuilder, list, list], K.Expr], name: str, flops: int,
         epilogue: Callable | None) -> bool:
    """GPU: a big float contraction as ``for b, m, n: sum_k a(b, m, k) * b(b, k, n)``, the
    shape the CUDA renderer turns into its tiled shared-memory GEMM (``cuda.gemm_pattern``):
    output dims read by both operands (or neither) are the batch, those read by one operand
    only are its free dims (m or n), the contracted dims are k; each group is flattened.
    Returns False (nothing emitted) when the product is not of two operands or the
    contraction is too small for the template to pay."""
    dtype = ir_dtype(aval.dtype)
    if dtype not in (K.float32, K.float64) or not aval.shape:
        return False
    groups = gemm_groups(aval.shape, red_sizes, product)
    if groups is None:
        return False
    if len(aval.shape) - 1 in groups[1]:       # the output's contiguous dim along the tile's n:
        groups = (groups[0], groups[2], groups[1])    # neighbouring threads store neighbours
    sizes = [int(np.prod([aval.shape[d] for d in g], dtype=np.int64)) for g in groups]
    red = int(np.prod(red_sizes, dtype=np.int64))
    split = 1 if gemm_worthwhile(*sizes, red) else gemm_split(sizes, red)
    if split is None:
        return False
    chunk = red // split
    kb = KernelBuilder()
    vb, vm, vn, vk = kb.var("b"), kb.var("m"), kb.var("n"), kb.var("k")
    batch, s = (vb, None) if split == 1 else (vb % sizes[0], vb // sizes[0])   # vb = (s, b) when split
    o: list = [None] * len(aval.shape)
    for var, dims in zip((batch, vm, vn), groups):
        for d, idx in zip(dims, unravel(var, [aval.shape[d] for d in dims])):
            o[d] = idx
    acc = K.Local("acc", dtype)
    if split == 1:
        out, index = kb.param(buf), ravel(o, aval.shape)
        value = acc[0] if epilogue is None else K.cast(epilogue(kb, acc[0], o), buf.dtype)
    else:
        partial = K.Buffer(f"part{next(lw.names)}", dtype, (split, aval.size))
        out, value, index = kb.param(partial), acc[0], s * aval.size + ravel(o, aval.shape)
    term = K.cast(product(kb, o, unravel(vk if s is None else s * chunk + vk, red_sizes)), dtype)
    if lw.precision == "tf32" and dtype == K.float32:     # tensor-core inputs (see cuda_contraction)
        while isinstance(term, K.Op) and term.op == "cast":
            term = term.args[0]
        term = tf32_round(K.cast(term.args[0], dtype)) * tf32_round(K.cast(term.args[1], dtype))
    k_loop = K.Range(vk, 0, chunk, [acc.accumulate(0, "add", term)])
    body = [K.DefineLocal(acc, K.Const(0, dtype)), k_loop, out.store(index, value)]
    loops = K.Range(vb, 0, sizes[0] * split, [K.Range(vm, 0, sizes[1], [K.Range(vn, 0, sizes[2], body)])],
                    parallel=True)
    lw.emit(kb, f"{name}_gemm", [loops], flops)
    if split > 1:           # the partial sums of the K chunks, folded
        def partial_term(kb2: KernelBuilder, o2: list, k2: list) -> K.Expr:
            return kb2.param(partial)[k2[0] * aval.size + ravel(o2, aval.shape)]
        fold(lw, buf, aval, (split,), partial_term, "add", name, epilogue=epilogue)
    return True


GEMM_MIN_CHUNK = 256        # K terms per split-K chunk at least (16 shared-memory slabs)


def gemm_split(sizes: Sequence[int], red: int) -> int | None:
    """Split-K for a GEMM with too few output tiles to fill the GPU but a long K (a weight
    gradient: 64 x 288 outputs over K = 15488): the smallest divisor of K that gives enough
    tiles with chunks of at least ``GEMM_MIN_CHUNK``; None when there is none."""
    batch, m, n = sizes
    for split in range(2, red // GEMM_MIN_CHUNK + 1):
        if red % split == 0 and gemm_worthwhile(batch * split, m, n, red // split):
            return split
    return None


def gemm_groups(shape: Sequence[int], red_sizes: Sequence[int], product: Callable) -> tuple | None:
    """(batch dims, m dims, n dims) of the output: read by both factors of the product (or
    neither), by the first only, by the second only; None unless the product is ``x * y``."""
    o = [K.Var(f"probe_o{d}") for d in range(len(shape))]
    k = [K.Var(f"probe_k{d}") for d in range(len(red_sizes))]
    expr = product(KernelBuilder(), o, k)
    while isinstance(expr, K.Op) and expr.op == "cast":
        expr = expr.args[0]
    if not isinstance(expr, K.Op) or expr.op != "mul":
        return None
    x, y = (K.free_vars(a) for a in expr.args)
    groups: tuple = ([], [], [])
    for d, var in enumerate(o):
        in_x, in_y = var.name in x, var.name in y
        groups[1 if in_x and not in_y else 2 if in_y and not in_x else 0].append(d)
    return groups


GPU_TILE = 4                # outputs per thread along the tiled dim


def tile_dim(shape: Sequence[int], red_sizes: Sequence[int], term: Callable) -> int | None:
    """The output dim whose ``GPU_TILE`` neighbouring outputs one thread should fold together,
    or None. Worth it when a load that varies along the innermost output dim (a load the
    threads of a warp do not share) ignores the tiled dim: the tile reads it once. The
    innermost dim itself is never tiled (neighbouring threads keep reading neighbouring
    elements), and the tiled dim must divide evenly."""
    if len(shape) < 2:
        return None
    o = [K.Var(f"probe_o{d}") for d in range(len(shape))]
    k = [K.Var(f"probe_k{d}") for d in range(len(red_sizes))]
    expr = term(KernelBuilder(), o, k)
    innermost = o[-1].name
    loads = [n for n in K.walk_expr(expr) if isinstance(n, K.Load)]
    uses = [K.free_vars(n.index) | (K.free_vars(n.mask) if n.mask is not None else frozenset()) for n in loads]
    costly = [u for u in uses if innermost in u]
    best, best_shared = None, 0
    for d in range(len(shape) - 1):
        if shape[d] < GPU_TILE or shape[d] % GPU_TILE:
            continue
        shared = sum(1 for u in costly if o[d].name not in u)
        if shared > best_shared:
            best, best_shared = d, shared
    return best
