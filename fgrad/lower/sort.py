"""Lowering of ``sort_p``: a stable sort along one axis in plain kernel IR (loops, loads,
stores, selects and locals, so both renderers and the interpreter get it for free).

The sorted axis is moved last into scratch "lanes" (one per key operand, plus the int32
position of each element within its row when some operand is not a key); passes ping-pong
the lanes between two buffers. Every row is independent, and each pass splits the rows into
chunks, the tasks of one parallel loop. Two algorithms:

* **merge** (the GPU; short rows on the CPU): ``ceil(log2(n))`` bottom-up merge passes, pass
  ``p`` merging neighbouring sorted runs of width ``w = 2**p``. A task writes ``CHUNK``
  outputs: it finds where its first output comes from in the two runs by a binary search
  along its diagonal of the merge (the "merge path" co-rank), then merges sequentially,
  branch-free, so a pass has ``rows * ceil(n / CHUNK)`` tasks whatever the run width; O(n log n).
  One kernel does every pass: the program runs it in a ``Loop`` whose counter gives the pass
  (two calls per iteration, the second with the buffers swapped).
* **radix** (the CPU, rows of ``RADIX_MIN_LENGTH`` or more): LSD radix sort, one pass per key
  byte (the last key's lowest byte first) over an order-preserving integer key: a count per
  (row, chunk) and byte value, one exclusive scan per row, a stable scatter per chunk.

Order (NumPy's and JAX's): keys compare lexicographically; floats with ``-0.0 == 0.0`` and
every NaN after every number; ties keep their input order. Key outputs are read from the
sorted lanes; any other operand is gathered through the sorted positions (lazily, so
``argsort``'s iota operand costs nothing).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from fgrad.core.types import ShapedArray
from fgrad.lower import kernel as K
from fgrad.lower.schedule import (BufferValue, KernelBuilder, LazyValue, Lowerer, Value, ir_dtype, loop_nest,
                                  ravel, PARALLEL_MIN_ELEMENTS)

#: Outputs one task of a merge pass writes (CPU: long sequential merges, few tasks; GPU: many
#: short ones, to fill its threads).
CHUNK = {"cpu": 2048, "gpu": 32}
#: Rows at least this long are radix sorted (CPU: a merge pass is a chain of dependent loads and
#: compares, ~15 cycles an element; a byte of radix sort a few cycles, plus 256 counters per row
#: and chunk, which shorter rows would not amortise). None: never (the GPU, whose threads would
#: each need a 256-entry counter table).
RADIX_MIN_LENGTH = {"cpu": 256, "gpu": None}
#: Elements one task of a radix pass counts and scatters.
RADIX_CHUNK = 1 << 14
BUCKETS = 256
_RADIX_KEY_DTYPES = (K.bool_, K.uint8, K.uint16, K.uint32, K.int8, K.int16, K.int32, K.int64, K.float32,
                     K.float64)


def lower_sort(lw: Lowerer, eqn, ins: Sequence[Value]) -> list[Value]:
    """The lowering rule of ``sort_p`` (see the module docstring)."""
    dimension, num_keys = eqn.params["dimension"], eqn.params["num_keys"]
    shape = ins[0].aval.shape
    n = shape[dimension]
    size = math.prod(shape)
    if size == 0 or n <= 1:
        return list(ins)
    moved = tuple(s for d, s in enumerate(shape) if d != dimension) + (n,)
    rows = size // n
    lane_dtypes = [ir_dtype(v.aval.dtype) for v in ins[:num_keys]]
    with_positions = len(ins) > num_keys
    if with_positions:
        lane_dtypes.append(K.int32 if n <= np.iinfo(np.int32).max else K.INDEX)
    front = [lw.new_buffer(ShapedArray(moved, dt), "sorta") for dt in lane_dtypes]
    back = [lw.new_buffer(ShapedArray(moved, dt), "sortb") for dt in lane_dtypes]
    _fill_lanes(lw, ins[:num_keys], front, with_positions, shape, dimension)
    radix_min = RADIX_MIN_LENGTH[lw.target]
    if radix_min is not None and n >= radix_min and all(dt in _RADIX_KEY_DTYPES for dt in lane_dtypes[:num_keys]):
        passes = _radix_passes(lw, front, back, num_keys, rows, n)
    else:
        passes = (n - 1).bit_length()
        _merge_passes(lw, front, back, num_keys, rows, n, passes)
    final = back if passes % 2 else front
    outs: list[Value] = []
    for k, (value, var) in enumerate(zip(ins, eqn.outvars)):
        if k < num_keys:
            outs.append(_sorted_lane(var.aval, final[k], dimension))
        else:
            outs.append(_gathered(var.aval, value, final[-1], dimension))
    return outs


def _row_major(idx: Sequence[K.Expr], shape: Sequence[int], dimension: int) -> K.Expr:
    """The flat index in the moved layout (the sorted axis last) of multi-index ``idx``."""
    order = [d for d in range(len(shape)) if d != dimension] + [dimension]
    return ravel([idx[d] for d in order], [shape[d] for d in order])


def _fill_lanes(lw: Lowerer, keys: Sequence[Value], lanes: Sequence[K.Buffer], with_positions: bool,
                shape: Sequence[int], dimension: int) -> None:
    """Copy the keys into their lanes (sorted axis last) and number the positions."""
    kb = KernelBuilder()
    idx = [kb.var() for _ in shape]
    flat = _row_major(idx, shape, dimension)
    body = [kb.param(buf).store(flat, K.cast(key.read(kb, idx), buf.dtype)) for key, buf in zip(keys, lanes)]
    if with_positions:
        body.append(kb.param(lanes[-1]).store(flat, K.cast(idx[dimension], lanes[-1].dtype)))
    size = math.prod(shape)
    lw.emit(kb, "sort_fill", loop_nest(idx, shape, body, size, vectorize_inner=dimension == len(shape) - 1))


def _less(a: K.Expr, b: K.Expr) -> K.Expr:
    """``a`` sorts strictly before ``b``: NaN after everything, -0.0 equal to 0.0."""
    lt = K.op("lt", a, b)
    if K.is_float(a.dtype):
        lt = lt | (K.ne(b, b) & K.eq(a, a))
    return lt


def _same(a: K.Expr, b: K.Expr) -> K.Expr:
    eq = K.eq(a, b)
    if K.is_float(a.dtype):
        eq = eq | (K.ne(a, a) & K.ne(b, b))
    return eq


def _before(keys: Sequence[K.Param], i: K.Expr, j: K.Expr) -> K.Expr:
    """Element ``i`` sorts strictly before element ``j`` (lexicographically over ``keys``)."""
    first = _less(keys[-1][i], keys[-1][j])
    for key in reversed(keys[:-1]):
        a, b = key[i], key[j]
        first = _less(a, b) | (_same(a, b) & first)
    return first


def _merge_passes(lw: Lowerer, front: list[K.Buffer], back: list[K.Buffer], num_keys: int, rows: int,
                  n: int, passes: int) -> None:
    """``passes`` merge passes over the lanes, the first reading ``front``; pass ``p`` is
    ``2 * counter + offset`` where the program's loop counter and a constant offset (0 for
    front -> back, 1 for back -> front) are the kernel's first two params."""
    counter = K.Buffer(f"sortpass{next(lw.names)}", K.INDEX, ())
    scalar = ShapedArray((), np.dtype(np.int64))
    offset = [lw.constant(scalar, np.int64(k)).buffer for k in (0, 1)]
    kb = KernelBuilder()
    body = _merge_kernel(kb, kb.param(counter), kb.param(offset[0]), [kb.param(b) for b in front],
                         [kb.param(b) for b in back], num_keys, rows, n, lw.target)
    kernel, _ = kb.kernel(f"sort_merge_{next(lw.names)}", body, 0)
    forward = K.Call(kernel, (counter, offset[0], *front, *back))
    backward = K.Call(kernel, (counter, offset[1], *back, *front))
    if passes >= 2:
        lw.steps.append(K.Loop(passes // 2, (forward, backward), counter))
    if passes % 2:
        last = lw.constant(scalar, np.int64(passes // 2)).buffer
        lw.steps.append(K.Call(kernel, (last, offset[0], *front, *back)))


def _merge_kernel(kb: KernelBuilder, counter: K.Param, offset: K.Param, src: list[K.Param],
                  dst: list[K.Param], num_keys: int, rows: int, n: int, target: str) -> list:
    """One merge pass: each (row, chunk of outputs), in parallel, merges the pairs of runs its
    outputs come from (several short ones, or part of one long one: then it first finds where
    its first output comes from, by a binary search)."""
    index = lambda v: K.as_expr(v, K.INDEX)
    chunk = min(CHUNK[target], 1 << (n - 1).bit_length())
    per_row = -(-n // chunk)
    p = counter[0] * 2 + offset[0]
    width = K.op("shl", index(1), p)
    span = K.op("shl", index(2), p)
    task = kb.var("task")
    base = (task // per_row) * n
    start = (task % per_row) * chunk
    stop = K.minimum(start + chunk, index(n))
    first = start - (start & (span - 1))          # where the first pair of runs begins
    pair = kb.var("pair")
    lo = first + K.op("shl", pair, p + 1)         # the pair of runs [lo, mid) and [mid, hi)
    mid, hi = K.minimum(lo + width, index(n)), K.minimum(lo + span, index(n))
    begin, end = K.maximum(start, lo), K.minimum(stop, hi)
    diag = begin - lo
    keys = src[:num_keys]
    at = lambda i: base + i

    # co-rank: how many of the pair's first ``diag`` outputs come from the left run
    few, many, probe = (K.Local(f"corank_{s}", K.INDEX) for s in ("lo", "hi", "mid"))
    step = kb.var("search")
    search = [
        K.DefineLocal(few, K.maximum(diag - (hi - mid), index(0))),
        K.DefineLocal(many, K.minimum(diag, mid - lo)),
        K.Range(step, 0, p + 1, [K.If(K.op("lt", few[0], many[0]), [
            K.DefineLocal(probe, K.op("shr", few[0] + many[0], index(1))),
            K.If(_before(keys, at(mid + diag - probe[0] - 1), at(lo + probe[0])),
                 [many.store(0, probe[0])], [few.store(0, probe[0] + 1)])])]),
    ]

    # the branch-free sequential merge of outputs [begin, end)
    left, right, take = (K.Local(f"merge_{s}", K.INDEX) for s in ("i", "j", "right"))
    k = kb.var("k")
    i, j = K.minimum(left[0], mid - 1), K.minimum(right[0], hi - 1)    # always in bounds
    from_right = K.op("lt", right[0], hi) & (~K.op("lt", left[0], mid) | _before(keys, at(j), at(i)))
    chosen = K.ne(take[0], index(0))
    merge = [
        K.DefineLocal(left, lo + few[0]),
        K.DefineLocal(right, mid + diag - few[0]),
        K.Range(k, begin, end, [
            K.DefineLocal(take, K.cast(from_right, K.INDEX)),
            *[d.store(at(k), K.select(chosen, s[at(j)], s[at(i)])) for s, d in zip(src, dst)],
            left.store(0, left[0] + 1 - take[0]),
            right.store(0, right[0] + take[0]),
        ]),
    ]
    pairs = K.op("shr", stop - first + span - 1, p + 1)
    tasks = rows * per_row
    # the tasks are independent; on the CPU, threads pay off only for enough work
    parallel = tasks > 1 and (target == "gpu" or rows * n >= PARALLEL_MIN_ELEMENTS // 4)
    return [K.Range(task, 0, tasks, [K.Range(pair, 0, pairs, search + merge)], parallel=parallel)]


def _radix_key(x: K.Expr) -> K.Expr:
    """An unsigned-ordered integer for ``x``: ``a`` sorts before ``b`` iff key(a) < key(b) as
    unsigned bits, with -0.0 and 0.0 equal and every NaN last (all NaNs equal)."""
    dtype = x.dtype
    if dtype in (K.bool_, K.uint8, K.uint16):
        return K.cast(x, K.uint32)
    if dtype in (K.int8, K.int16):     # the sign bit flipped, in the lane's own bytes
        unsigned = K.uint8 if dtype == K.int8 else K.uint16
        return K.cast(K.bitcast(x, unsigned), K.uint32) ^ K.Const(1 << (8 * dtype.itemsize - 1), K.uint32)
    if dtype == K.uint32:
        return x
    if dtype == K.int32:
        return K.bitcast(x, K.uint32) ^ K.Const(1 << 31, K.uint32)
    if dtype == K.int64:
        return x ^ K.Const(-(1 << 63), K.int64)
    if dtype == K.float32:
        bits = K.bitcast(x, K.uint32)
        key = K.select(K.ne(bits >> K.Const(31, K.uint32), K.Const(0, K.uint32)), ~bits, bits | K.Const(1 << 31, K.uint32))
        zero, nan = K.Const(1 << 31, K.uint32), K.Const((1 << 32) - 1, K.uint32)
    else:
        assert dtype == K.float64, dtype   # the IR has no uint64: the same bits in an int64
        bits = K.bitcast(x, K.int64)
        key = K.select(K.op("lt", bits, K.Const(0, K.int64)), ~bits, bits ^ K.Const(-(1 << 63), K.int64))
        zero, nan = K.Const(-(1 << 63), K.int64), K.Const(-1, K.int64)
    key = K.select(K.eq(x, K.Const(0.0, dtype)), zero, key)
    return K.select(K.ne(x, x), nan, key)


def _digit(x: K.Expr, shift: K.Expr) -> K.Expr:
    """Byte ``shift // 8`` of ``x``'s radix key, as an index."""
    key = _radix_key(x)
    return K.cast(K.op("shr", key, K.cast(shift, key.dtype)) & K.Const(BUCKETS - 1, key.dtype), K.INDEX)


def _radix_passes(lw: Lowerer, front: list[K.Buffer], back: list[K.Buffer], num_keys: int, rows: int,
                  n: int) -> int:
    """LSD radix sort of the lanes by the keys, a byte a pass (the last key's lowest byte
    first): per pass, each (row, chunk) task counts its bytes, one scan per row turns the
    counts into where each task's bucket starts, and each task scatters its elements there in
    order (so the sort is stable). Returns the number of passes (they ping-pong the lanes)."""
    chunk = min(RADIX_CHUNK, n)
    per_row = -(-n // chunk)
    counts = lw.new_buffer(ShapedArray((rows * BUCKETS * per_row,), np.dtype(np.int64)), "radixcounts")
    scan = _bucket_scan_kernel(lw, counts, rows, per_row)
    scalar = ShapedArray((), np.dtype(np.int64))
    passes = 0
    for k in reversed(range(num_keys)):
        count_kernel = _count_kernel(lw, front[k], counts, rows, n, chunk)
        scatter_kernel = _scatter_kernel(lw, front, back, k, counts, rows, n, chunk)
        for byte in range(front[k].dtype.itemsize):
            shift = lw.constant(scalar, np.int64(8 * byte)).buffer
            src, dst = (front, back) if passes % 2 == 0 else (back, front)
            lw.steps.append(K.Call(count_kernel, (shift, src[k], counts)))
            lw.steps.append(scan)
            lw.steps.append(K.Call(scatter_kernel, (shift, *src, *dst, counts)))
            passes += 1
    return passes


def _task_bounds(kb: KernelBuilder, n: int, chunk: int, per_row: int):
    task = kb.var("task")
    row, part = task // per_row, task % per_row
    start = part * chunk
    return task, row, part, row * n, start, K.minimum(start + chunk, K.as_expr(n, K.INDEX))


def _parallel(tasks: int, work: int) -> bool:
    return tasks > 1 and work >= PARALLEL_MIN_ELEMENTS // 4


def _count_kernel(lw: Lowerer, lane: K.Buffer, counts: K.Buffer, rows: int, n: int, chunk: int) -> K.Kernel:
    """Per (row, chunk): how many of its elements have each byte value, into
    ``counts[row, byte, chunk]`` (so that one scan along a row orders them for the scatter)."""
    kb = KernelBuilder()
    shift, src, out = kb.param(K.Buffer("shift", K.INDEX, ())), kb.param(lane), kb.param(counts)
    per_row = -(-n // chunk)
    task, row, part, base, start, stop = _task_bounds(kb, n, chunk, per_row)
    tally = K.Local("tally", K.INDEX, BUCKETS)
    k, b = kb.var("k"), kb.var("b")
    body = [K.DefineLocal(tally, K.Const(0, K.INDEX)),
            K.Range(k, start, stop, [tally.accumulate(_digit(src[base + k], shift[0]), "add", K.Const(1, K.INDEX))]),
            K.Range(b, 0, BUCKETS, [out.store((row * BUCKETS + b) * per_row + part, tally[b])])]
    kernel, _ = kb.kernel(f"radix_count_{next(lw.names)}", [
        K.Range(task, 0, rows * per_row, body, parallel=_parallel(rows * per_row, rows * n))])
    return kernel


def _bucket_scan_kernel(lw: Lowerer, counts: K.Buffer, rows: int, per_row: int) -> K.Call:
    """Counts -> exclusive prefix sums along each row (bucket-major, then chunk)."""
    kb = KernelBuilder()
    c = kb.param(counts)
    row, t = kb.var("row"), kb.var("t")
    total, here = K.Local("total", K.INDEX), K.Local("here", K.INDEX)
    length = BUCKETS * per_row
    body = [K.DefineLocal(total, K.Const(0, K.INDEX)),
            K.Range(t, 0, length, [K.DefineLocal(here, c[row * length + t]),
                                   c.store(row * length + t, total[0]),
                                   total.accumulate(0, "add", here[0])])]
    kern, args = kb.kernel(f"radix_scan_{next(lw.names)}", [
        K.Range(row, 0, rows, body, parallel=_parallel(rows, rows * length))])
    return K.Call(kern, args)


def _scatter_kernel(lw: Lowerer, front: list[K.Buffer], back: list[K.Buffer], key: int, counts: K.Buffer,
                    rows: int, n: int, chunk: int) -> K.Kernel:
    """Per (row, chunk): each element, in order, to the next free place of its byte's bucket."""
    kb = KernelBuilder()
    shift = kb.param(K.Buffer("shift", K.INDEX, ()))
    src, dst = [kb.param(b) for b in front], [kb.param(b) for b in back]
    starts = kb.param(counts)
    per_row = -(-n // chunk)
    task, row, part, base, start, stop = _task_bounds(kb, n, chunk, per_row)
    place, where = K.Local("place", K.INDEX, BUCKETS), K.Local("where", K.INDEX)
    k, b = kb.var("k"), kb.var("b")
    digit = _digit(src[key][base + k], shift[0])
    body = [K.DefineLocal(place),
            K.Range(b, 0, BUCKETS, [place.store(b, starts[(row * BUCKETS + b) * per_row + part])]),
            K.Range(k, start, stop, [
                K.DefineLocal(where, place[digit]),
                *[d.store(base + where[0], s[base + k]) for s, d in zip(src, dst)],
                place.store(digit, where[0] + 1)])]
    kernel, _ = kb.kernel(f"radix_scatter_{next(lw.names)}", [
        K.Range(task, 0, rows * per_row, body, parallel=_parallel(rows * per_row, rows * n))])
    return kernel


def _sorted_lane(aval: ShapedArray, lane: K.Buffer, dimension: int) -> Value:
    """A key output: its sorted lane, read back in the operand's layout."""
    if dimension == aval.ndim - 1:
        return BufferValue(aval, lane)
    return LazyValue(aval, lambda kb, idx: kb.param(lane)[_row_major(idx, aval.shape, dimension)], 1, ())


def _gathered(aval: ShapedArray, value: Value, positions: K.Buffer, dimension: int) -> Value:
    """A non-key output: ``value`` read at the sorted positions along ``dimension``."""
    def read(kb, idx):
        src = list(idx)
        src[dimension] = K.cast(kb.param(positions)[_row_major(idx, aval.shape, dimension)], K.INDEX)
        return value.read(kb, src)
    return LazyValue(aval, read, value.cost + 2, (value,))
