"""Contraction templates: dot_general and convolution as packed, blocked, register-tiled GEMMs.

Every contraction here is a batched GEMM ``C[b, i, j] = sum_k A[b, i, k] * B[b, k, j]``
whose operands are *expressions*, not arrays: ``Operand.value(b, row, col, valid)``
returns the element as kernel IR, so transposed operands, broadcast weights,
fused elementwise producers and the im2col view of a convolution input are all
read in place, and ``Output.index`` places C anywhere (NCHW conv outputs, the
batch-major layout of dot_general) with an optional fused ``epilogue`` (bias, relu).

The plan (``gemm``) is three kernels:

1. ``pack_a``: A into panels of ``mr`` rows, k-major (``Ap[batch][panel][k][mr]``),
   zero-padded past the last row; skipped when A is a plain array contiguous along k
   (``_reads_a_in_place``): the micro-kernel then reads its mr rows where they lie;
2. ``pack_b``: B into panels of ``nr`` columns (``Bp[batch][panel][k][nr]``);
3. ``gemm``: parallel over (batch, row block of ``mc``, column block of ``nc``); for
   each k block of ``kc``, each nr-panel, each mr-panel, an ``mr x nr`` register
   tile (``nr`` = two SIMD vectors) accumulated with broadcast-FMA over the k block
   (A's panel from L2, B's micro-panel from L1). Between k blocks the tile is kept
   in C; the epilogue runs with the last k block. Edge tiles use masked stores.

Packing costs O(mk + kn) against O(mnk) arithmetic and makes every layout
equally fast. Small problems (``small_gemm``) skip packing: one vectorised loop
over j (or a vectorised dot product over k when n is tiny).

Convolutions (``fgrad.lower.convolution.conv``) are the GEMM with M = output features per group, N = output
positions, K = (input features per group) x (window), batch = images x groups:
``pack_b`` *is* the im2col gather (padding by masked loads, strides and lhs/rhs
dilation by index arithmetic), so no im2col buffer beyond the packed panels exists.
Their gradients (input: a conv with lhs dilation and a flipped kernel; weight: a
conv with batch and feature dims exchanged) take the same path through
``dimension_numbers``. Why GEMM and not a direct convolution loop: measured on
the MNIST shapes (``benchmarks/matmul.py --conv``): see ``conv``'s docstring.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from fgrad.lower import kernel as K
from fgrad.lower.gemm_schedule import (  # noqa: F401  (GemmConfig, choose_config: this module's API too)
    GemmConfig, GemmProblem, GemmSchedule, GemmTuning, TunableGemm, choose_config, register_rows, valid,
)
from fgrad.lower.kernel import (
    row_major_strides,
    AUTO, FULL, Buffer, Call, Const, DefineLocal, Expr, If, Kernel, Local, Param, Range, Var,
)

ValueFn = Callable[[Expr, Expr, Expr, Expr], Expr]
IndexFn = Callable[[Expr, Expr, Expr], Expr]
EpilogueFn = Callable[[Expr, Expr, Expr, Expr], Expr]


def param(buf: Buffer) -> Param:
    """The kernel param through which templates read or write program buffer ``buf``."""
    return Param(buf.name, buf.dtype, buf.size)


@dataclass(frozen=True)
class Operand:
    """One GEMM input. ``value(b, row, col, valid)`` is its element as kernel IR.

    ``valid`` is a bool expression, False on the zero padding past the matrix's
    edge: loads must be masked with it (``param(buf).load(index, valid)``).
    ``buffers`` are the program buffers the expression reads (as ``param(buf)``).
    ``batches`` is how many distinct batches the operand has (default: one per
    GEMM batch) and ``batch_of(b)`` maps a GEMM batch to the operand's own, so a
    weight shared by all batches is packed once.
    ``steps``: (along row, along col) in elements when ``value`` is one load from one buffer
    at an index that is affine in ``row`` and in ``col`` (no division), so that any element
    inside the operand may be read unmasked; the GEMM may then read A where it lies instead
    of packing it (``_reads_a_in_place``). None otherwise.
    ``runs``: each row is a contiguous run along col whose start costs more to work out than
    a step along it (a shifted convolution's taps): B's per-tile pack then loops over rows
    outside panels.
    """

    buffers: tuple
    value: ValueFn
    batches: int | None = None
    batch_of: Callable[[Expr], Expr] | None = None
    steps: tuple[int, int] | None = None
    runs: bool = False


def strided(buf: Buffer, strides: Sequence[int], offset: int = 0, batches: int | None = None,
            batch_of: Callable[[Expr], Expr] | None = None) -> Operand:
    """An operand read from ``buf`` at ``offset + b*strides[0] + row*strides[1] + col*strides[2]``."""
    p = param(buf)
    sb, sr, sc = strides

    def value(b: Expr, r: Expr, c: Expr, valid: Expr) -> Expr:
        return p.load(offset + b * sb + r * sr + c * sc, valid)
    return Operand((buf,), value, batches, batch_of, steps=(sr, sc))


@dataclass(frozen=True)
class Output:
    """Where C goes: ``index(b, i, j)`` into ``buffer``; ``epilogue(value, b, i, j)`` is applied
    before the final store and may read ``buffers`` (as ``param(buf)``). ``mask(b, i, j)``, when
    given, is False for elements of C that are computed but not stored (the columns a shifted
    convolution computes past each output row: ``conv``); ``index`` must stay inside the buffer
    for them too."""

    buffer: Buffer
    index: IndexFn
    epilogue: EpilogueFn | None = None
    buffers: tuple = ()
    mask: IndexFn | None = None

    def store(self, bb: Expr, i: Expr, j: Expr, value: Expr, edge: Expr | None = None):
        """The store of C[bb, i, j] = ``value`` where ``edge`` (None: always) and ``mask`` hold."""
        kept = None if self.mask is None else self.mask(bb, i, j)
        both = kept if edge is None else (edge if kept is None else K.logical_and(edge, kept))
        return param(self.buffer).store(self.index(bb, i, j), value, both)


@dataclass
class Contraction:
    """The steps that compute a contraction, the temporaries they need, and its flop count."""

    steps: tuple
    temporaries: tuple = ()
    flops: int = 0
    kernels: tuple = field(default=())


def _padded_work(m: int, n: int, vector_bytes: int, itemsize: int) -> int:
    """Multiply-adds the register tiles do for one k step, padding included."""
    mr, nr = register_rows(m, vector_bytes), 2 * max(vector_bytes // itemsize, 1)
    return math.ceil(m / mr) * mr * math.ceil(n / nr) * nr


def _zero(dtype: np.dtype) -> Const:
    return Const(0, dtype)


def _min(a, b) -> Expr:
    return K.op("min", a, b)


def _index(var: Var, narrow: bool) -> Expr:
    """A loop variable as the index dtype: int32 when every index fits (cheaper SIMD division,
    32-bit gathers), else the loop's int64."""
    return K.cast(var, K.int32) if narrow else var


def _fits_int32(*sizes: int) -> bool:
    return max(sizes, default=0) < 2 ** 31 - 1


def _stride_of(index: IndexFn, which: int) -> int | None:
    """The constant step of ``index(b, i, j)`` in argument ``which`` (None if not constant)."""
    zero = [Const(0), Const(0), Const(0)]
    one = list(zero)
    one[which] = Const(1)
    a, b = index(*zero), index(*one)
    if isinstance(a, Const) and isinstance(b, Const):
        return b.value - a.value
    return None


def _transposed(op: Operand) -> Operand:
    return Operand(op.buffers, lambda b, r, c, valid: op.value(b, c, r, valid), op.batches, op.batch_of,
                   None if op.steps is None else op.steps[::-1])


def _transposed_output(out: Output) -> Output:
    index, epi, mask = out.index, out.epilogue, out.mask
    return Output(out.buffer, lambda bb, i, j: index(bb, j, i),
                  None if epi is None else (lambda v, bb, i, j: epi(v, bb, j, i)), out.buffers,
                  None if mask is None else (lambda bb, i, j: mask(bb, j, i)))


def gemm(name: str, *, batch: int, m: int, n: int, k: int, a: Operand, b: Operand, out: Output,
         dtype: np.dtype, config: GemmConfig | None = None, vector_bytes: int = 64,
         threads: int = 2, tuning: GemmTuning | None = None, plans: dict | None = None) -> Contraction:
    """The steps computing ``out[index(b, i, j)] = epilogue(sum_k A[b,i,k] B[b,k,j], b, i, j)``.

    ``name`` prefixes the kernels and temporary buffers made here (unique per program).
    ``threads`` is the thread count the tiling should keep busy; ``vector_bytes`` the SIMD
    width (``Target.vector_bytes``). Append ``steps`` to the program; its temporaries are
    planned with the others.

    If C is contiguous along i rather than j, C^T = B^T A^T is computed instead,
    so the tile stores stay contiguous vectors. ``config`` forces a tiling; else the
    heuristics choose the schedule (``default_schedule``), unless ``tuning`` holds a searched
    one for this problem (``problem_key``; BEAM), and ``tuning.met`` records the problem.
    ``plans`` (a dict kept for one program): a contraction with the same ``problem_key`` as an
    earlier one reuses its plan (``_reused``), unless a schedule is forced or searched.
    """
    dtype = K.as_dtype(dtype)
    flops = 2 * batch * m * n * k
    if m * n * k == 0 or batch == 0:
        if _should_transpose(out, m, n, k, vector_bytes, dtype.itemsize):
            out, m, n = _transposed_output(out), n, m
        return _fill_output(name, batch, m, n, out, dtype, flops)
    if plans is not None and config is None and tuning is None and out.epilogue is None:
        problem = GemmProblem(batch, m, n, k, dtype, vector_bytes, threads)
        return _reused(plans, name, problem, a, b, out, lambda: gemm(
            name, batch=batch, m=m, n=n, k=k, a=a, b=b, out=out, dtype=dtype, vector_bytes=vector_bytes,
            threads=threads))
    if config is not None:
        schedule = GemmSchedule(_should_transpose(out, m, n, k, vector_bytes, dtype.itemsize), config)
    else:
        schedule = default_schedule(batch, m, n, k, out, dtype, vector_bytes, threads, a.steps, b.steps)
        if tuning is not None and batch * m * n * k >= MIN_TUNED_MACS:
            problem = GemmProblem(batch, m, n, k, dtype, vector_bytes, threads)
            schedule = _tuned(name, problem, schedule, a, b, out, tuning)
    return scheduled_gemm(name, batch, m, n, k, a, b, out, dtype, schedule, vector_bytes)


#: contractions smaller than this many multiply-adds are left to the heuristics (BEAM skips them:
#: they take a microsecond or two whatever their schedule)
MIN_TUNED_MACS = 1 << 16


def default_schedule(batch: int, m: int, n: int, k: int, out: Output, dtype: np.dtype,
                     vector_bytes: int, threads: int, a_steps: tuple | None = None,
                     b_steps: tuple | None = None) -> GemmSchedule:
    """The heuristics' schedule: the orientation with contiguous stores (or much less padding),
    the unpacked loop for small problems, else ``choose_config``'s tiling and a k split that
    gives every thread tiles. ``a_steps``/``b_steps``: the operands' ``Operand.steps``, which
    tell whether the micro-kernel reads its A in place and how far apart that A's rows lie."""
    a_in_place = _read_in_place(a_steps, m, register_rows(m, vector_bytes))
    transpose = _should_transpose(out, m, n, k, vector_bytes, dtype.itemsize, a_in_place and m >= 2 * n)
    if transpose:
        m, n = n, m
        a_steps = None if b_steps is None else b_steps[::-1]      # the template's A is B^T
    if _small(m, n, k, batch):
        return GemmSchedule(transpose)
    in_place = a_steps is not None and a_steps[1] == 1
    cfg = choose_config(dtype, m, n, k, batch, vector_bytes, threads,
                        a_steps[0] * dtype.itemsize if in_place else None)
    return GemmSchedule(transpose, cfg, _k_splits(batch, m, n, k, cfg, threads))


def _tuned(name: str, problem: GemmProblem, default: GemmSchedule, a: Operand, b: Operand, out: Output,
           tuning: GemmTuning) -> GemmSchedule:
    """The searched schedule for this problem when ``tuning`` has a valid one, else ``default``;
    records the problem in ``tuning.met``."""
    key = problem_key(problem, a, b, out)
    if tuning.met is not None:
        def build(schedule: GemmSchedule, prefix: str, into: Buffer) -> Contraction:
            moved = Output(into, out.index, out.epilogue, out.buffers, out.mask)
            return scheduled_gemm(prefix, problem.batch, problem.m, problem.n, problem.k, a, b, moved,
                                  problem.dtype, schedule, problem.vector_bytes)
        tuning.met.append(TunableGemm(key, name, problem, default, out.buffer, build))
    chosen = tuning.choices.get(key)
    return chosen if chosen is not None and valid(problem, chosen) else default


def _reused(plans: dict, name: str, problem: GemmProblem, a: Operand, b: Operand, out: Output,
            build: Callable[[], Contraction]) -> Contraction:
    """``build()``, or the plan of an earlier contraction with the same ``problem_key`` called on
    this one's buffers: a model's identical layers share their kernels (building a register-tiled
    GEMM's costs a few ms of Python; a 12-layer GPT step has 219 contractions of about 30 kinds),
    and each gets temporaries of its own, named after ``name``."""
    key = (problem_key(problem, a, b, out), a.runs, b.runs)
    buffers = _by_position(a, b, out)
    cached = plans.get(key)
    if cached is None:
        plan = build()
        if all(isinstance(step, Call) for step in plan.steps):
            plans[key] = (plan, buffers)
        return plan
    plan, first = cached
    rebound = {id(old): new for old, new in zip(first, buffers)}
    temporaries = []
    for temp in plan.temporaries:
        rebound[id(temp)] = Buffer(f"{name}_{temp.name.rsplit('_', 1)[-1]}", temp.dtype, temp.shape)
        temporaries.append(rebound[id(temp)])
    steps = tuple(Call(step.kernel, tuple(rebound[id(buf)] for buf in step.args)) for step in plan.steps)
    return Contraction(steps, tuple(temporaries), plan.flops, plan.kernels)


def _by_position(a: Operand, b: Operand, out: Output) -> list[Buffer]:
    """The buffers a contraction reads and writes, in the order ``problem_key`` numbers them."""
    seen: dict[str, Buffer] = {}
    for buf in (*a.buffers, *b.buffers, out.buffer):
        seen.setdefault(buf.name, buf)
    return list(seen.values())


def problem_key(problem: GemmProblem, a: Operand, b: Operand, out: Output) -> str:
    """The text naming a contraction for BEAM's choices: its sizes and dtype, and how each
    operand's element and the output's place are computed (with the buffers named by position
    and their sizes), without the epilogue. Identical layers, or the same GEMM in two programs,
    share it; a different layout, stride or fused producer does not."""
    names = {buf.name: f"${k}:{K.short_name(buf.dtype)}[{buf.size}]" for k, buf in enumerate(_by_position(a, b, out))}
    bv, rv, cv = Var("b"), Var("r"), Var("c")
    true = Const(True, K.bool_)
    fmt = lambda e: K.format_expr(e, names)

    def operand(op: Operand) -> str:
        batch_of = fmt(op.batch_of(bv)) if op.batch_of is not None else "b"
        return f"batches={op.batches} batch_of={batch_of} value={fmt(op.value(bv, rv, cv, true))}"
    kept = "" if out.mask is None else " where " + fmt(out.mask(bv, rv, cv))
    return "\n".join((f"gemm {problem.describe()} batch={problem.batch}", "A " + operand(a), "B " + operand(b),
                      "C " + fmt(out.index(bv, rv, cv)) + kept))


def scheduled_gemm(name: str, batch: int, m: int, n: int, k: int, a: Operand, b: Operand, out: Output,
                   dtype: np.dtype, schedule: GemmSchedule, vector_bytes: int = 64) -> Contraction:
    """The contraction's steps with ``schedule`` (``gemm`` after choosing it); ``vector_bytes``
    sizes the unpacked template's vectors."""
    dtype = K.as_dtype(dtype)
    flops = 2 * batch * m * n * k
    if schedule.transpose:
        out = _transposed_output(out)
        a, b, m, n = _transposed(b), _transposed(a), n, m
    cfg = schedule.config
    if cfg is None:
        kern = small_gemm(name, batch=batch, m=m, n=n, k=k, a=a, b=b, out=out, dtype=dtype,
                          lanes=max(vector_bytes // dtype.itemsize, 1))
        return Contraction((Call(kern, _buffers_of(kern, a, b, out)),), (), flops, (kern,))
    if schedule.splits > 1:
        return _split_k_gemm(name, batch, m, n, k, a, b, out, dtype, cfg, flops, schedule.splits,
                             schedule.local_b)
    return _packed_gemm(name, batch, m, n, k, a, b, out, dtype, cfg, flops, schedule.local_b)


def _should_transpose(out: Output, m: int, n: int, k: int, vector_bytes: int, itemsize: int,
                      keeps_a_in_place: bool = False) -> bool:
    """Compute C^T = B^T A^T when C is contiguous along i but not j, or when that orientation
    wastes much less work on tile padding and C is small next to the arithmetic, unless
    ``keeps_a_in_place``: the micro-kernel reads A in place and A is the bigger operand, so that
    transposed it would be packed as B, an m x k copy costing more than a skinny product's
    padding (``a @ b.T`` with a 2048 x 512, 1 thread: b 33 x 512, 29 GFLOP/s transposed and 56
    not; b 10 x 512, 11 and 57; 512 x 1024 by 48 x 1024: 34 and 74)."""
    along_j, along_i = _stride_of(out.index, 2), _stride_of(out.index, 1)
    if along_j != 1 and along_i == 1:
        return True
    if m * n == 0 or keeps_a_in_place:
        return False
    work, swapped = _padded_work(m, n, vector_bytes, itemsize), _padded_work(n, m, vector_bytes, itemsize)
    return swapped < 0.75 * work and k >= 256


def _k_splits(batch: int, m: int, n: int, k: int, cfg: GemmConfig, threads: int) -> int:
    """How many slices to split k into so that every thread has tiles (1: no split)."""
    tiles = batch * math.ceil(m / cfg.mc) * math.ceil(n / cfg.nc)
    if threads <= 1 or tiles >= threads or k < 4 * cfg.kc:
        return 1
    return min(math.ceil(2 * threads / tiles), k // cfg.kc)


def _split_k_gemm(name: str, batch: int, m: int, n: int, k: int, a: Operand, b: Operand, out: Output,
                  dtype: np.dtype, cfg: GemmConfig, flops: int, splits: int,
                  local_b: bool | None = None) -> Contraction:
    """Partial products over k slices as extra batches, then a kernel summing them (+ epilogue)."""
    ks = math.ceil(k / splits)
    partial = Buffer(f"{name}_partial", dtype, (splits * batch * m * n,))

    def sliced(op: Operand, k_axis: int) -> Operand:
        """The operand of batch (slice, b): k runs over slice * ks + [0, ks), masked past k."""
        own = op.batches if op.batches is not None else batch
        mapping = op.batch_of or (lambda bb: bb)

        def value(ob: Expr, r: Expr, c: Expr, valid: Expr) -> Expr:
            part, inner = ob // own, ob % own
            kk = part * ks + (c if k_axis == 2 else r)
            idx = (r, kk) if k_axis == 2 else (kk, c)
            return op.value(inner, *idx, K.logical_and(valid, kk < k))
        return Operand(op.buffers, value, splits * own, lambda bb: (bb // batch) * own + mapping(bb % batch))

    to_partial = Output(partial, lambda bb, i, j: (bb * m + i) * n + j)
    parts = _packed_gemm(f"{name}_split", splits * batch, m, n, ks, sliced(a, 2), sliced(b, 1), to_partial,
                         dtype, cfg, flops, local_b)
    reduce = _sum_partials(name, partial, splits, batch, m, n, out, dtype)
    return Contraction(parts.steps + (Call(reduce, _buffers_of(reduce, partial, out)),),
                       parts.temporaries + (partial,), flops, parts.kernels + (reduce,))


def _sum_partials(name: str, partial: Buffer, splits: int, batch: int, m: int, n: int, out: Output,
                  dtype: np.dtype) -> Kernel:
    t, j, s = Var("t"), Var("j"), Var("s")
    bb, i = t // m, t % m
    acc = Local("acc", dtype)
    pp = param(partial)
    total = acc[0] if out.epilogue is None else out.epilogue(acc[0], bb, i, j)
    inner = (K.DefineLocal(acc, _zero(dtype)),
             Range(s, 0, splits, (acc.accumulate(0, "add", pp[((s * batch + bb) * m + i) * n + j]),)),
             out.store(bb, i, j, total))
    body = (Range(t, 0, batch * m, (Range(j, 0, n, inner, vectorize=AUTO),), parallel=True),)
    return Kernel(f"{name}_sum", _params(partial, out), body)


def _small(m: int, n: int, k: int, batch: int) -> bool:
    return m * n * k <= 32 ** 3 or m < 4 or n < 8


def _buffers_of(kern: Kernel, *sources) -> tuple:
    """The program buffers for ``kern``'s params, by name, from operands/outputs/buffers."""
    by_name = {}
    for src in sources:
        bufs = src.buffers if isinstance(src, (Operand, Output)) else (src,)
        if isinstance(src, Output):
            bufs = (src.buffer,) + tuple(src.buffers)
        for buf in bufs:
            by_name[buf.name] = buf
    return tuple(by_name[p.name] for p in kern.params)


def _params(*sources) -> tuple:
    seen: dict[str, Param] = {}
    for src in sources:
        bufs = (src.buffer,) + tuple(src.buffers) if isinstance(src, Output) else \
            (src.buffers if isinstance(src, Operand) else (src,))
        for buf in bufs:
            seen.setdefault(buf.name, param(buf))
    return tuple(seen.values())


def _fill_output(name: str, batch: int, m: int, n: int, out: Output, dtype: np.dtype,
                 flops: int) -> Contraction:
    """k == 0: C is epilogue(0) (and nothing at all if C is empty)."""
    if batch * m * n == 0:
        return Contraction((), (), 0, ())
    t, j = Var("t"), Var("j")
    bb, i = t // m, t % m
    value = _zero(dtype) if out.epilogue is None else out.epilogue(_zero(dtype), bb, i, j)
    body = (Range(t, 0, batch * m, (Range(j, 0, n, (out.store(bb, i, j, value),),
                                          vectorize=AUTO),), parallel=True),)
    kern = Kernel(f"{name}_zero", _params(out), body)
    return Contraction((Call(kern, _buffers_of(kern, out)),), (), flops, (kern,))


# --- the small template ------------------------------------------------------------------

def small_gemm(name: str, *, batch: int, m: int, n: int, k: int, a: Operand, b: Operand,
               out: Output, dtype: np.dtype, lanes: int) -> Kernel:
    """No packing: parallel over (batch, i); vectorised over j with per-lane sums, or over k."""
    tv, jv, kv = Var("t"), Var("j"), Var("kk")
    narrow = _fits_int32(batch * m * n, batch * m * k, batch * k * n, out.buffer.size,
                         *(b.size for b in a.buffers + b.buffers))
    t, j, kk = (_index(v, narrow) for v in (tv, jv, kv))
    bb, i = t // m, t % m
    ba = a.batch_of(bb) if a.batch_of else bb
    bbb = b.batch_of(bb) if b.batch_of else bb
    true = Const(True, K.bool_)
    acc = Local("acc", dtype)
    product = a.value(ba, i, kk, true) * b.value(bbb, kk, j, true)
    result = acc[0] if out.epilogue is None else out.epilogue(acc[0], bb, i, j)
    store = out.store(bb, i, j, result)
    if n >= lanes:
        inner = (K.DefineLocal(acc, _zero(dtype)),
                 Range(kv, 0, k, (acc.accumulate(0, "add", product),)), store)
        loop_j = Range(jv, 0, n, inner, vectorize=AUTO)
    else:
        inner = (K.DefineLocal(acc, _zero(dtype)),
                 Range(kv, 0, k, (acc.accumulate(0, "add", product),), vectorize=AUTO), store)
        loop_j = Range(jv, 0, n, inner)
    body = (Range(tv, 0, batch * m, (loop_j,), parallel=True),)
    return Kernel(f"{name}_small", _params(a, b, out), body, flops=2 * batch * m * n * k)


# --- the packed template ------------------------------------------------------------------

LOCAL_B_BYTES = 1 << 20    # a batch's packed B up to this size is packed per tile, on the stack


def _packed_gemm(name: str, batch: int, m: int, n: int, k: int, a: Operand, b: Operand,
                 out: Output, dtype: np.dtype, cfg: GemmConfig, flops: int,
                 local_b: bool | None = None) -> Contraction:
    """pack A (once), pack B (once, or per tile into a stack buffer that stays in L2 when each
    batch has its own B and one tile; ``local_b`` True or False forces either, where the stack
    buffer fits), then the tiles."""
    pm, pn = math.ceil(m / cfg.mr), math.ceil(n / cfg.nr)
    a_batches = a.batches if a.batches is not None else batch
    b_batches = b.batches if b.batches is not None else batch
    tiles_per_batch = math.ceil(pm / (cfg.mc // cfg.mr)) * math.ceil(pn / (cfg.nc // cfg.nr))
    fits = pn * k * cfg.nr * dtype.itemsize <= LOCAL_B_BYTES
    if local_b is None:
        local_b = b_batches == batch and tiles_per_batch == 1
    local_b = local_b and fits
    if _reads_a_in_place(a, m, cfg):
        ap, steps, kernels, temps = a, [], [], []
    else:
        ap = Buffer(f"{name}_ap", dtype, (a_batches * pm * k * cfg.mr,))
        pack_a = _pack_a_kernel(name, a, ap, a_batches, pm, m, k, cfg, dtype)
        steps, kernels, temps = [Call(pack_a, _buffers_of(pack_a, a, ap))], [pack_a], [ap]
    if local_b:
        main = _gemm_kernel(name, batch, m, n, k, a, b, ap, b, out, pm, pn, cfg, dtype, flops)
        steps.append(Call(main, _buffers_of(main, ap, b, out)))
    else:
        bp = Buffer(f"{name}_bp", dtype, (b_batches * pn * k * cfg.nr,))
        pack_b = _pack_b_kernel(name, b, bp, b_batches, pn, n, k, cfg, dtype)
        main = _gemm_kernel(name, batch, m, n, k, a, b, ap, bp, out, pm, pn, cfg, dtype, flops)
        steps += [Call(pack_b, _buffers_of(pack_b, b, bp)), Call(main, _buffers_of(main, ap, bp, out))]
        kernels.append(pack_b)
        temps.append(bp)
    kernels.append(main)
    return Contraction(tuple(steps), tuple(temps), flops, tuple(kernels))


def _reads_a_in_place(a: Operand, m: int, cfg: GemmConfig) -> bool:
    """Whether the micro-kernel reads A where it lies rather than from packed panels: when A
    is a plain array (``Operand.steps``) contiguous along k, its mr rows are mr contiguous
    streams the broadcast loads walk as well as a packed panel's, and packing would only copy
    it (in the GPT step, packs of such A were 12% of the time); contiguous along the rows (a
    k-major A^T), each k step's mr elements are one contiguous run, a packed panel's row in
    all but its stride (the GPT step's weight and attention gradients, 1 thread: packs
    6.4 -> 0.6 ms, their GEMMs about 4 ms slower)."""
    return _read_in_place(a.steps, m, cfg.mr)


def _read_in_place(steps: tuple | None, m: int, mr: int) -> bool:
    """``_reads_a_in_place`` from A's ``Operand.steps`` and the register tile's rows."""
    return steps is not None and 1 in steps and m >= mr


def _pack_a_kernel(name: str, a: Operand, ap: Buffer, batches: int, pm: int, m: int, k: int,
                   cfg: GemmConfig, dtype: np.dtype) -> Kernel:
    """Ap[t*k*mr + q] = A[bb, ip*mr + q % mr, q // mr] (0 past row m), t = bb*pm + ip.

    With 512-bit SIMD, one vectorised loop over the panel in storage order: contiguous stores,
    gathered loads. Narrower SIMD (AVX2) has slow gathers (AMD Zen 3: 5-9 GB/s, 17% of the GPT
    step), so there the panel is copied a column of mr elements at a time, unrolled.
    """
    tv, qv = Var("t"), Var("q")
    narrow = _fits_int32(ap.size, *(b.size for b in a.buffers))
    t, q = _index(tv, narrow), _index(qv, narrow)
    if a.steps is not None and a.steps[0] == 1 and cfg.lanes * dtype.itemsize == 64:
        return _pack_a_by_k_rows(name, a, ap, batches, pm, m, k, cfg, dtype, narrow)
    if cfg.lanes * dtype.itemsize < 64:
        kv, rv = Var("kk"), Var("r")
        kk, r = _index(kv, narrow), _index(rv, narrow)
        row = (t % pm) * cfg.mr + r

        def column(edge: bool) -> Range:
            """The panel's k columns of mr elements; reads are masked only in the panel past
            row m (per-element masks kept LLVM from copying a column as whole vectors: the
            GPT step's k-major packs went 9.8 -> 7.7 ms, 2 threads)."""
            valid = row < m if edge else Const(True, K.bool_)
            value = a.value(t // pm, row, kk, valid)
            value = K.select(valid, value, _zero(dtype)) if edge else value
            store = param(ap).store(t * (k * cfg.mr) + kk * cfg.mr + r, value)
            return Range(kv, 0, k, (Range(rv, 0, cfg.mr, (store,), unroll=FULL),))
        inner = column(False) if m % cfg.mr == 0 else If((t % pm) * cfg.mr + cfg.mr <= m, (column(False),),
                                                          (column(True),))
        return Kernel(f"{name}_pack_a", _params(a, ap), (Range(tv, 0, batches * pm, (inner,), parallel=True),))
    row = (t % pm) * cfg.mr + q % cfg.mr
    valid = row < m if pm * cfg.mr > m else Const(True, K.bool_)      # no mask where panels cover m
    value = K.select(valid, a.value(t // pm, row, q // cfg.mr, valid), _zero(dtype))
    store = param(ap).store(t * (k * cfg.mr) + q, value)
    body = (Range(tv, 0, batches * pm, (Range(qv, 0, k * cfg.mr, (store,), vectorize=AUTO),),
                  parallel=True),)
    return Kernel(f"{name}_pack_a", _params(a, ap), body)


def _pack_a_by_k_rows(name: str, a: Operand, ap: Buffer, batches: int, pm: int, m: int, k: int,
                      cfg: GemmConfig, dtype: np.dtype, narrow: bool) -> Kernel:
    """``_pack_a_kernel`` for a plain A stored k-major that is not read in place (fewer rows than
    a panel; with more, ``_reads_a_in_place``): each k row of A is contiguous along the rows, so
    a block of k rows is copied into every panel, mr elements at a time (one masked vector load
    and store), reading A once in order. Gathering a panel in storage order walked A a column
    at a time, 56 bytes per 2 KiB row (the GPT step's MLP weight gradient, before it was read
    in place: 1.8 ms for 4 MiB against 0.45 ms by k rows)."""
    tv, kv, pv, rv = Var("t"), Var("kk"), Var("ip"), Var("r")
    t, kk, ip, r = (_index(v, narrow) for v in (tv, kv, pv, rv))
    blocks = math.ceil(k / PACK_K_BLOCK)
    bb, start = t // blocks, (t % blocks) * PACK_K_BLOCK

    def panels(first: int, stop: int, edge: bool) -> Range:
        row = ip * cfg.mr + r
        valid = row < m if edge else Const(True, K.bool_)
        value = a.value(bb, row, kk, valid)
        value = K.select(valid, value, _zero(dtype)) if edge else value
        store = param(ap).store(((bb * pm + ip) * k + kk) * cfg.mr + r, value)
        loop_k = Range(kv, start, _min(start + PACK_K_BLOCK, k), (Range(rv, 0, cfg.mr, (store,), vectorize=cfg.lanes),))
        return Range(pv, first, stop, (loop_k,))
    full = m // cfg.mr
    rows = (panels(0, full, False),) if full else ()
    if full < pm:
        rows += (panels(full, pm, True),)
    return Kernel(f"{name}_pack_a", _params(a, ap), (Range(tv, 0, batches * blocks, rows, parallel=True),))


def _pack_b_kernel(name: str, b: Operand, bp: Buffer, batches: int, pn: int, n: int, k: int,
                   cfg: GemmConfig, dtype: np.dtype) -> Kernel:
    """Bp[(t*k + kk)*nr + jj] = B[bb, kk, jp*nr + jj] (0 past column n), t = bb*pn + jp."""
    tv = Var("t")
    narrow = _fits_int32(bp.size, *(buf.size for buf in b.buffers))
    t = _index(tv, narrow)
    dest = param(bp)
    if b.steps is None and k > PACK_K_BLOCK:
        return _pack_b_by_k_blocks(name, b, bp, batches, pn, n, k, cfg, dtype, narrow)
    loops = _pack_b_loops(b, t // pn, t % pn, pn, n, k, cfg, dtype, narrow,
                          lambda index, value: dest.store(t * (k * cfg.nr) + index, value))
    body = (Range(tv, 0, batches * pn, loops, parallel=True),)
    return Kernel(f"{name}_pack_b", _params(b, bp), body)


#: rows of B that ``_pack_b_by_k_blocks`` packs into every panel before moving on
PACK_K_BLOCK = 128


def _pack_b_by_k_blocks(name: str, b: Operand, bp: Buffer, batches: int, pn: int, n: int, k: int,
                        cfg: GemmConfig, dtype: np.dtype, narrow: bool) -> Kernel:
    """``_pack_b_kernel`` for a B computed element by element (an im2col view): a block of k rows
    into every panel, then the next block. Packing a whole panel first walks all of B's source
    once per panel (the MNIST conv2's weight gradient: its 2.7 MB input 18 times)."""
    tv = Var("t")
    t = _index(tv, narrow)
    blocks = math.ceil(k / PACK_K_BLOCK)
    bb, start = t // blocks, (t % blocks) * PACK_K_BLOCK
    dest = param(bp)
    loops = _pack_b_loops(b, bb, None, pn, n, k, cfg, dtype, narrow,
                          lambda index, value: dest.store(bb * (pn * k * cfg.nr) + index, value),
                          rows=(start, _min(start + PACK_K_BLOCK, k)))
    return Kernel(f"{name}_pack_b", _params(b, bp), (Range(tv, 0, batches * blocks, loops, parallel=True),))


def _pack_b_loops(b: Operand, batch: Expr, panel: Expr | None, pn: int, n: int, k: int, cfg: GemmConfig,
                  dtype: np.dtype, narrow: bool, store: Callable[[Expr, Expr], object],
                  rows: tuple | None = None) -> tuple:
    """Statements packing one panel of B (or, with ``panel`` None, all pn panels at offset
    panel*k*nr): store(offset in the panel, value), zero past column n. ``rows``: (start, stop)
    of the k rows to pack (default all)."""
    jv, kv, pv = Var("jj"), Var("kk"), Var("pp")
    jj, kk = _index(jv, narrow), _index(kv, narrow)
    pp = panel if panel is not None else _index(pv, narrow)
    col = pp * cfg.nr + jj
    valid = col < n if pn * cfg.nr > n else Const(True, K.bool_)
    value = K.select(valid, b.value(batch, kk, col, valid), _zero(dtype))
    offset = kk * cfg.nr + jj if panel is not None else (pp * k + kk) * cfg.nr + jj
    inner = Range(jv, 0, cfg.nr, (store(offset, value),), vectorize=cfg.lanes, unroll=FULL)
    start, stop = rows if rows is not None else (0, k)
    if panel is None and b.runs:     # each row's offset worked out once, not once per panel
        return (Range(kv, start, stop, (Range(pv, 0, pn, (inner,)),)),)
    loops: tuple = (Range(kv, start, stop, (inner,)),)
    return loops if panel is not None else (Range(pv, 0, pn, loops),)


def _gemm_kernel(name: str, batch: int, m: int, n: int, k: int, a: Operand, b: Operand,
                 ap: Buffer, bp: Buffer, out: Output, pm: int, pn: int, cfg: GemmConfig,
                 dtype: np.dtype, flops: int) -> Kernel:
    mcp, ncp = cfg.mc // cfg.mr, cfg.nc // cfg.nr          # panels per block
    tm, tn = math.ceil(pm / mcp), math.ceil(pn / ncp)
    nkb = math.ceil(k / cfg.kc)
    tv, kbv, jpv, ipv = Var("t"), Var("kb"), Var("jp"), Var("ip")
    local_b = isinstance(bp, Operand)
    a_in_place = isinstance(ap, Operand)
    b_sizes = [buf.size for buf in bp.buffers] if local_b else [bp.size]
    a_sizes = [buf.size for buf in ap.buffers] if a_in_place else [ap.size]
    narrow = _fits_int32(*a_sizes, out.buffer.size, pn * k * cfg.nr, *b_sizes,
                         *(buf.size for buf in out.buffers))
    t, kb, jp, ip = (_index(v, narrow) for v in (tv, kbv, jpv, ipv))
    bb = t // (tm * tn)
    row_block, col_block = (t // tn) % tm, t % tn
    b_batch = b.batch_of(bb) if b.batch_of else bb
    prologue: tuple = ()
    if local_b:       # this tile's B, packed into a stack buffer that stays in cache
        panel = Local("bpack", dtype, pn * k * cfg.nr)
        prologue = (DefineLocal(panel),) + _pack_b_loops(bp, b_batch, None, pn, n, k, cfg, dtype, narrow,
                                                         lambda index, value: panel.store(index, value))
        b_at = lambda jp_, offset: panel[jp_ * (k * cfg.nr) + offset]
    else:
        packed = param(bp)
        b_at = lambda jp_, offset: packed[(b_batch * pn + jp_) * (k * cfg.nr) + offset]
    a_batch = a.batch_of(bb) if a.batch_of else bb
    if a_in_place:    # rows past m read row m-1: their sums are never stored
        row = (lambda i: i) if m % cfg.mr == 0 else (lambda i: _min(i, m - 1))
        a_at = lambda ip_, it, kk_: a.value(a_batch, row(ip_ * cfg.mr + it), kk_, None)
    else:
        packed_a = param(ap)
        a_at = lambda ip_, it, kk_: packed_a[((a_batch * pm + ip_) * k + kk_) * cfg.mr + it]
    tile = _Tile(cfg, dtype, m, n, k, pm, pn, out, a_at, b_at, bb, narrow)
    idt = t.dtype
    if nkb == 1:
        micro = tile.body(ip, jp, Const(0, idt), Const(k, idt), first=True, last=True)
    else:
        pc = kb * cfg.kc
        micro = tile.body(ip, jp, pc, _min(k - pc, cfg.kc), first=None, last=None, kb=kb, nkb=nkb)
    loop_i = Range(ipv, row_block * mcp, _min(row_block * mcp + mcp, pm), micro)
    loop_j = Range(jpv, col_block * ncp, _min(col_block * ncp + ncp, pn), (loop_i,))
    inner = (loop_j,) if nkb == 1 else (Range(kbv, 0, nkb, (loop_j,)),)
    body = (Range(tv, 0, batch * tm * tn, prologue + inner, parallel=True),)
    return Kernel(f"{name}_gemm", _params(ap, bp, out), body, flops=flops)


class _Tile:
    """Builds the register-tile micro-kernel: mr x nr accumulators, FMA over a k block."""

    def __init__(self, cfg: GemmConfig, dtype: np.dtype, m: int, n: int, k: int, pm: int, pn: int,
                 out: Output, a_at: Callable[[Expr, Expr, Expr], Expr], b_at: Callable[[Expr, Expr], Expr],
                 batch: Expr, narrow: bool) -> None:
        self.cfg, self.dtype, self.m, self.n, self.k, self.pm, self.pn = cfg, dtype, m, n, k, pm, pn
        self.out, self.a_at, self.b_at, self.narrow = out, a_at, b_at, narrow
        self.batch = batch
        self.acc = Local("acc", dtype, cfg.mr * cfg.nr)

    def each(self, fn: Callable[[Expr, Expr], tuple]) -> Range:
        """for it in 0..mr, jt in 0..nr (vector lanes), fully unrolled: fn(it, jt)."""
        itv, jtv = Var("it"), Var("jt")
        it, jt = _index(itv, self.narrow), _index(jtv, self.narrow)
        return Range(itv, 0, self.cfg.mr, (Range(jtv, 0, self.cfg.nr, fn(it, jt), vectorize=self.cfg.lanes,
                                                  unroll=FULL),), unroll=FULL)

    def body(self, ip: Expr, jp: Expr, pc: Expr, klen: Expr, first, last, kb: Expr | None = None,
             nkb: int = 1) -> tuple:
        cfg, acc = self.cfg, self.acc
        i0, j0 = ip * cfg.mr, jp * cfg.nr
        out = param(self.out.buffer)
        slot = lambda it, jt: it * cfg.nr + jt
        ragged = bool(self.m % cfg.mr or self.n % cfg.nr)

        def where(it: Expr, jt: Expr, edge: bool = ragged) -> tuple[Expr, Expr | None]:
            """Where element (it, jt) of the tile goes, and whether it exists (None: always)."""
            conds = ([i0 + it < self.m] if self.m % cfg.mr else []) + \
                    ([j0 + jt < self.n] if self.n % cfg.nr else [])
            conds = conds if edge else []
            kept = None if self.out.mask is None else self.out.mask(self.batch, i0 + it, j0 + jt)
            if kept is not None:
                conds.append(kept)
            return self.out.index(self.batch, i0 + it, j0 + jt), (K.logical_and(*conds) if conds else None)

        def inside_or_edge(make: Callable[[bool], Range]) -> tuple:
            """``make(edge)``'s statements, masked only on the tiles that cross C's last row or
            column: masked vector loads and stores are microcoded and slow on some CPUs (AMD
            Zen 3: a 1024^3 GEMM at 1 thread ran 57.7 GFLOP/s with every tile masked, 68.9 so)."""
            if not ragged:
                return (make(False),)
            full = K.logical_and(*([i0 + cfg.mr <= self.m] if self.m % cfg.mr else []),
                                 *([j0 + cfg.nr <= self.n] if self.n % cfg.nr else []))
            return (If(full, (make(False),), (make(True),)),)

        zero = self.each(lambda it, jt: (acc.store(slot(it, jt), _zero(self.dtype)),))
        reload = inside_or_edge(lambda edge: self.each(
            lambda it, jt: (acc.store(slot(it, jt), out.load(*where(it, jt, edge))),)))
        kv = Var("kk")
        kk = _index(kv, self.narrow)
        b_offset = (pc + kk) * cfg.nr
        fma = self.each(lambda it, jt: (acc.store(slot(it, jt), K.fma(self.a_at(ip, it, pc + kk), self.b_at(jp, b_offset + jt),
                                                                     acc[slot(it, jt)])),))
        epi = self.out.epilogue
        final = inside_or_edge(lambda edge: self.each(
            lambda it, jt: (out.store(where(it, jt, edge)[0], acc[slot(it, jt)] if epi is None else
                                      epi(acc[slot(it, jt)], self.batch, i0 + it, j0 + jt), where(it, jt, edge)[1]),)))
        partial = inside_or_edge(lambda edge: self.each(
            lambda it, jt: (out.store(where(it, jt, edge)[0], acc[slot(it, jt)], where(it, jt, edge)[1]),)))
        start = (zero,) if first else (If(K.eq(kb, 0), (zero,), reload),)
        # without an epilogue, the last k block stores what the others do: one copy of the code
        end = final if last or epi is None else (If(K.eq(kb, nkb - 1), final, partial),)
        return (DefineLocal(acc),) + start + (Range(kv, 0, klen, (fma,)),) + end


# --- array sources, dot_general and convolution ---------------------------------------------

@dataclass(frozen=True)
class Source:
    """An array a contraction reads: its ``shape``, the buffers behind it, and how to read one
    element: ``read(multi_index, valid)`` (loads masked by ``valid``). ``strides`` (elements) when
    it is a plain strided array, which lets grouped dimensions collapse into one index. The
    indices may be int32 expressions (templates use 32-bit index math when sizes allow), so
    build index constants from Python ints, which take the index's dtype.

        Source.array(buf)                       # a C-contiguous buffer
        Source(shape, (buf,), lambda idx, valid: relu(...))   # a fused producer
    """

    shape: tuple
    buffers: tuple
    read: Callable[[tuple, Expr], Expr]
    strides: tuple | None = None
    offset: int = 0

    @staticmethod
    def array(buf: Buffer, shape: Sequence[int] | None = None, strides: Sequence[int] | None = None,
              offset: int = 0) -> "Source":
        shape = tuple(buf.shape if shape is None else shape)
        strides = tuple(row_major_strides(shape) if strides is None else strides)
        p = param(buf)

        def read(idx: tuple, valid: Expr) -> Expr:
            start = Const(offset, idx[0].dtype if idx else K.INDEX)
            return p.load(start + sum((i * s for i, s in zip(idx, strides)), Const(0, start.dtype)), valid)
        return Source(shape, (buf,), read, strides, offset)


def _as_source(x) -> Source:
    return x if isinstance(x, Source) else Source.array(x)


def _decode(flat: Expr, sizes: Sequence[int]) -> list[Expr]:
    """Row-major coordinates of ``flat`` in an array of ``sizes``."""
    coords, rest = [], flat
    for k, size in enumerate(reversed(sizes)):
        last = k == len(sizes) - 1
        coords.append(rest if last else rest % size)
        rest = rest // size
    return list(reversed(coords))


def _merged(sizes: list[int], strides: list[int]) -> list[tuple[int, int]]:
    """Merge adjacent (size, stride) dims that form one linear run (row-major nesting)."""
    out: list[tuple[int, int]] = []
    for size, stride in zip(sizes, strides):
        if out and out[-1][1] == stride * size:
            out[-1] = (out[-1][0] * size, stride)
        else:
            out.append((size, stride))
    return out


def _grouped_operand(src: Source, groups: tuple[Sequence[int], Sequence[int], Sequence[int]],
                     batches: int | None = None, batch_of=None) -> Operand:
    """An Operand whose (batch, row, col) index the dims ``groups`` of ``src`` (row-major within each)."""
    shape = src.shape

    if src.strides is not None:
        p = param(src.buffers[0])
        runs = [_merged([shape[d] for d in g], [src.strides[d] for d in g]) for g in groups]

        def value(b: Expr, r: Expr, c: Expr, valid: Expr) -> Expr:
            index: Expr = Const(src.offset, b.dtype)
            for flat, run in zip((b, r, c), runs):
                for coord, (_, stride) in zip(_decode(flat, [s for s, _ in run]), run):
                    index = index + coord * stride
            return p.load(index, valid)
        affine = len(runs[1]) <= 1 and len(runs[2]) <= 1
        steps = tuple(run[0][1] if run else 0 for run in runs[1:]) if affine else None
        return Operand(src.buffers, value, batches, batch_of, steps)

    def value(b: Expr, r: Expr, c: Expr, valid: Expr) -> Expr:
        idx: list = [None] * len(shape)
        for flat, g in zip((b, r, c), groups):
            for d, coord in zip(g, _decode(flat, [shape[d] for d in g])):
                idx[d] = coord
        return src.read(tuple(idx), valid)
    return Operand(src.buffers, value, batches, batch_of)


def dot_general(name: str, lhs, rhs, out: Buffer, dimension_numbers, *,
                epilogue: Callable[[Expr, tuple], Expr] | None = None, epilogue_buffers: tuple = (),
                vector_bytes: int = 64, threads: int = 2, config: GemmConfig | None = None,
                tuning: GemmTuning | None = None, plans: dict | None = None,
                out_permutation: tuple | None = None) -> Contraction:
    """``out = dot_general(lhs, rhs)`` with JAX's ``((lhs_contract, rhs_contract), (lhs_batch, rhs_batch))``.

    ``lhs``/``rhs`` are Buffers (C-contiguous) or ``Source``s; ``out`` has JAX's layout
    (batch dims, lhs free dims, rhs free dims), C-contiguous, or with ``out_permutation`` holds
    ``transpose(result, out_permutation)``. ``epilogue(value, out_index)`` is applied to each
    result element (its index in JAX's layout) before it is stored. ``config``, ``tuning`` and
    ``plans``: see ``gemm``.
    """
    lhs, rhs = _as_source(lhs), _as_source(rhs)
    (lc, rc), (lb, rb) = dimension_numbers
    lf = [d for d in range(len(lhs.shape)) if d not in lc and d not in lb]
    rf = [d for d in range(len(rhs.shape)) if d not in rc and d not in rb]
    _check_dot(name, lhs.shape, rhs.shape, lc, rc, lb, rb)
    batch_sizes = [lhs.shape[d] for d in lb]
    m_sizes, n_sizes = [lhs.shape[d] for d in lf], [rhs.shape[d] for d in rf]
    batch, m, n = math.prod(batch_sizes), math.prod(m_sizes), math.prod(n_sizes)
    k = math.prod(lhs.shape[d] for d in lc)
    a = _grouped_operand(lhs, (lb, lf, lc))
    b = _grouped_operand(rhs, (rb, rc, rf))
    out_shape = tuple(batch_sizes + m_sizes + n_sizes)
    coords = lambda bb, i, j: tuple(_decode(bb, batch_sizes) + _decode(i, m_sizes) + _decode(j, n_sizes))
    index = lambda bb, i, j: (bb * m + i) * n + j
    if out_permutation is not None:
        stored = row_major_strides([out_shape[d] for d in out_permutation])
        stride = {d: st for d, st in zip(out_permutation, stored)}
        index = lambda bb, i, j: functools.reduce(
            lambda acc, term: acc + term, [c * stride[d] for d, c in enumerate(coords(bb, i, j))])
    output = _output(out, out_shape, index, coords, epilogue, epilogue_buffers)
    return gemm(name, batch=batch, m=m, n=n, k=k, a=a, b=b, out=output, dtype=out.dtype,
                config=config, vector_bytes=vector_bytes, threads=threads, tuning=tuning, plans=plans)


def _check_dot(name, lshape, rshape, lc, rc, lb, rb) -> None:
    if len(lc) != len(rc) or len(lb) != len(rb):
        raise ValueError(f"{name}: dot_general needs as many lhs as rhs contracting/batch dims, "
                         f"got {lc}/{rc} and {lb}/{rb}")
    for l, r in list(zip(lc, rc)) + list(zip(lb, rb)):
        if lshape[l] != rshape[r]:
            raise ValueError(f"{name}: dot_general lhs dim {l} (size {lshape[l]}) does not match "
                             f"rhs dim {r} (size {rshape[r]})")


def _output(out: Buffer, shape: tuple, index: IndexFn, coords: Callable, epilogue, buffers,
            mask: IndexFn | None = None) -> Output:
    if math.prod(shape) != out.size:
        raise ValueError(f"output buffer {out!r} has {out.size} elements, the contraction {math.prod(shape)}")
    epi = None if epilogue is None else (lambda v, bb, i, j: epilogue(v, coords(bb, i, j)))
    return Output(out, index, epi, tuple(buffers), mask)
