"""How each kernel runs on a GPU: the GPU lowering's choice of kernel mode (grid, segments,
gemm, block, single) and launch size, the GEMM pattern a kernel must match for the tiled
template, and the per-thread work estimate. The CUDA renderer reads the chosen
``KernelMode`` and only writes text."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from fgrad.lower.cuda_contraction import TILE, is_tf32_round
from fgrad.lower.kernel import (
    Accumulate, Const, DefineLocal, Expr, If, Kernel, Load, LocalLoad, LocalStore, Op, Range, Store,
    const_int, float32, float64, free_vars, stmt_exprs, walk_expr, walk_stmts,
)


BLOCK_SIZE = 256            # threads per block of a grid-mode kernel
MAX_GRID = 65535            # blocks at most; the grid-stride loop covers the rest
DEFAULT_GRID = 1024         # when the trip count is only known at run time
MAX_BLOCK = 1024            # threads of a block-mode kernel
MAX_THREADS = MAX_GRID * MAX_BLOCK      # the most threads that stride over one loop
GEMM_MIN_SIZE = 32          # M, N and K of a contraction worth the tiled GEMM template
GEMM_MIN_BLOCKS = 64        # and the 64x64 output tiles it needs to fill a GPU


@dataclass(frozen=True)
class KernelMode:
    """How a kernel runs on the GPU: its mode, grid and block, and its GEMM pattern (gemm mode)."""

    mode: str                  # "gemm", "grid", "segments", "block" or "single"
    grid: int
    block: int
    gemm: "GemmPattern | None" = None


def kernel_mode(kernel: Kernel) -> KernelMode:
    """The mode ``cuda.render_kernel`` renders ``kernel`` in (see ``cuda``'s docstring)."""
    gemm = gemm_pattern(kernel)
    if gemm is not None:
        return KernelMode("gemm", gemm.blocks, gemm.threads, gemm)
    return KernelMode(*choose_mode(kernel.body))


def choose_mode(body: tuple) -> tuple[str, int, int]:
    """(mode, grid, block) of a kernel body that is not a GEMM (see ``cuda``'s docstring)."""
    if len(body) == 1 and isinstance(body[0], Range) and distributable(body[0]):
        n = flat_trip(body[0])
        if n is None:
            return "grid", DEFAULT_GRID, BLOCK_SIZE
        return ("grid", *_grid_size(n))
    if independent_ranges(body) and None not in (trips := [flat_trip(r) for r in body]):
        return ("segments", *_grid_size(sum(trips)))
    ranges = [s for s in body if isinstance(s, Range) and distributable(s)]
    if ranges and len(body) > 1:
        trips = [flat_trip(r) for r in ranges]
        n = MAX_BLOCK if None in trips else max(trips)
        return "block", 1, min(MAX_BLOCK, max(32, -(-n // 32) * 32))
    return "single", 1, 1


def flattened(r: Range) -> list[Range]:
    """``r`` and the distributable ranges with constant bounds nested directly inside it
    (iterations independent at every level are independent as pairs, triples...)."""
    if const_trip(r) is None:
        return [r]
    chain = [r]
    while (len(chain[-1].body) == 1 and isinstance(chain[-1].body[0], Range)
           and const_trip(chain[-1].body[0]) is not None and distributable(chain[-1].body[0])):
        chain.append(chain[-1].body[0])
    return chain


def flat_trip(r: Range) -> int | None:
    """The iterations of ``flattened(r)`` together (None: not known before run time)."""
    trips = [const_trip(x) for x in flattened(r)]
    return None if None in trips else int(np.prod(trips, dtype=np.int64))


def thread_iterations(kernel: Kernel) -> int:
    """An upper bound on the loop iterations one thread of ``kernel`` runs (loops of unknown
    trip count counted as 1): the length of the longest serial chain. On a GPU a kernel is
    as slow as that chain, however many threads run beside it."""
    gemm = gemm_pattern(kernel)
    if gemm is not None:
        return gemm.k                      # each thread walks K, 16 multiply-adds per step
    mode, grid, block = choose_mode(kernel.body)
    if mode == "grid":
        rounds = -(-(flat_trip(kernel.body[0]) or 1) // (grid * block))
        return rounds * max(1, _iterations(flattened(kernel.body[0])[-1].body))
    if mode == "segments":
        total = sum(flat_trip(r) for r in kernel.body)
        rounds = -(-total // (grid * block))
        return rounds * max(max(1, _iterations(flattened(r)[-1].body)) for r in kernel.body)
    if mode == "single":
        return _iterations(kernel.body)
    total = 0
    for s in kernel.body:
        if isinstance(s, Range) and distributable(s):
            chain = flattened(s)
            per_thread = -(-(flat_trip(s) or 1) // block)
            total += per_thread * max(1, _iterations(chain[-1].body))
        else:
            total += _iterations((s,))
    return total


def _iterations(stmts: tuple) -> int:
    count = 0
    for s in stmts:
        if isinstance(s, Range):
            count += (const_trip(s) or 1) * max(1, _iterations(s.body))
        elif isinstance(s, If):
            count += max(_iterations(s.then), _iterations(s.else_))
    return count


def const_trip(r: Range) -> int | None:
    """The trip count of ``r`` when its bounds are constants, else None."""
    start, stop = const_int(r.start), const_int(r.stop)
    if start is None or stop is None:
        return None
    return max(0, -(-(stop - start) // r.step))


def locals_used(stmts: tuple) -> set[str]:
    """Names of the locals ``stmts`` read or write."""
    used = set()
    for s in walk_stmts(stmts):
        if isinstance(s, (LocalStore, Accumulate)):
            used.add(s.local)
        for e in stmt_exprs(s):
            used |= {n.local for n in walk_expr(e) if isinstance(n, LocalLoad)}
    return used


def _locals_defined(stmts: tuple) -> set[str]:
    return {s.local.name for s in walk_stmts(stmts) if isinstance(s, DefineLocal)}


def _all_exprs(stmts: tuple) -> Iterator[Expr]:
    for s in walk_stmts(stmts):
        for e in stmt_exprs(s):
            yield from walk_expr(e)


def distributable(r: Range) -> bool:
    """Whether the iterations of top-level range ``r`` may run on different threads."""
    if locals_used(r.body) - _locals_defined(r.body):
        return False
    if r.parallel:
        return True
    stores = [s for s in walk_stmts(r.body) if isinstance(s, Store)]
    store_indices: dict[str, set] = {}
    for s in stores:
        if r.var.name not in free_vars(s.index):
            return False
        if any(isinstance(n, (Load, LocalLoad)) for n in walk_expr(s.index)):
            return False
        store_indices.setdefault(s.param, set()).add(s.index)
    for e in _all_exprs(r.body):
        if isinstance(e, Load) and e.param in store_indices and e.index not in store_indices[e.param]:
            return False
    return True


def independent_ranges(body: tuple) -> bool:
    """Whether ``body`` is two or more distributable ranges none of which reads or writes a
    param another one writes (so they may run side by side: ``segments`` mode)."""
    if len(body) < 2 or not all(isinstance(s, Range) and distributable(s) for s in body):
        return False
    writes = [{x.param for x in walk_stmts((s,)) if isinstance(x, Store)} for s in body]
    reads = [{e.param for e in _all_exprs((s,)) if isinstance(e, Load)} for s in body]
    for i in range(len(body)):
        for j in range(i + 1, len(body)):
            if writes[i] & (reads[j] | writes[j]) or writes[j] & reads[i]:
                return False
    return True


def _grid_size(n: int) -> tuple[int, int]:
    """(grid, block) for a grid-stride loop over ``n`` iterations."""
    block = BLOCK_SIZE if n >= BLOCK_SIZE else max(32, -(-n // 32) * 32)
    return max(1, min(MAX_GRID, -(-n // block))), block


@dataclass(frozen=True)
class GemmPattern:
    """A kernel ``for b, m, n: acc = sum_k a(b, m, k) * b_expr(b, k, n); store(acc)`` (the GPU
    lowering's ``gpu_lowering.gemm``): rendered as the tiled shared-memory GEMM template."""

    b: str
    m_var: str
    n_var: str
    k_var: str
    batch: int
    m: int
    n: int
    k: int
    a: Expr
    b_expr: Expr
    store: Store
    dtype: np.dtype
    tf32: bool = False          # both operands rounded to TF32: the tensor-core template

    @property
    def threads(self) -> int:
        return 128 if self.tf32 else 256

    @property
    def blocks(self) -> int:
        return gemm_tiles(self.batch, self.m, self.n)


def gemm_tiles(batch: int, m: int, n: int) -> int:
    """The template's 64x64 output tiles (one block each) of a (batch, m, n) output."""
    return batch * -(-m // TILE) * -(-n // TILE)


def gemm_worthwhile(batch: int, m: int, n: int, k: int) -> bool:
    """Whether a (batch, m, n, k) contraction is big enough for the tiled GEMM template."""
    return min(m, n, k) >= GEMM_MIN_SIZE and gemm_tiles(batch, m, n) >= GEMM_MIN_BLOCKS


def gemm_pattern(kernel: Kernel) -> GemmPattern | None:
    """The kernel as a ``GemmPattern``, or None when it is not exactly one (or too small)."""
    nest, vars_ = kernel.body, []
    for _ in range(3):
        if len(nest) != 1 or not isinstance(nest[0], Range) or const_trip(nest[0]) is None \
                or const_int(nest[0].start) != 0 or nest[0].step != 1:
            return None
        vars_.append(nest[0])
        nest = nest[0].body
    if len(nest) != 3 or not isinstance(nest[0], DefineLocal) or not isinstance(nest[1], Range) \
            or not isinstance(nest[2], Store):
        return None
    define, fold, store = nest
    acc = define.local
    if acc.size != 1 or acc.dtype not in (float32, float64) or not isinstance(define.init, Const) \
            or define.init.value != 0 or const_trip(fold) is None or const_int(fold.start) != 0 or fold.step != 1:
        return None
    if len(fold.body) != 1 or not isinstance(fold.body[0], Accumulate):
        return None
    update = fold.body[0]
    value = update.value
    while isinstance(value, Op) and value.op == "cast" and value.dtype == acc.dtype:
        value = value.args[0]
    if update.local != acc.name or update.op != "add" or const_int(update.index) != 0 \
            or not isinstance(value, Op) or value.op != "mul" or value.dtype != acc.dtype:
        return None
    b, m, n = (r.var.name for r in vars_)
    k = fold.var.name
    x, y = value.args
    if _loads_in_locals(x) or _loads_in_locals(y):
        return None
    if not (free_vars(x) <= {b, m, k} and free_vars(y) <= {b, k, n}):
        x, y = y, x
        if not (free_vars(x) <= {b, m, k} and free_vars(y) <= {b, k, n}):
            return None
    if not free_vars(store.index) | free_vars(store.value) <= {b, m, n} or store.mask is not None:
        return None
    if any(isinstance(e, LocalLoad) and (e.local != acc.name or const_int(e.index) != 0)
           for e in walk_expr(store.value)):
        return None
    sizes = [const_trip(r) for r in vars_] + [const_trip(fold)]
    if not gemm_worthwhile(*sizes):
        return None
    tf32 = acc.dtype == float32 and is_tf32_round(x) and is_tf32_round(y)
    return GemmPattern(b, m, n, k, *sizes, x, y, store, acc.dtype, tf32)


def _loads_in_locals(e: Expr) -> bool:
    return any(isinstance(n, LocalLoad) for n in walk_expr(e))
