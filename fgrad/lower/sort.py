"""Lowering of ``sort_p``: a stable bottom-up merge sort along one axis, in plain kernel IR.

The sorted axis is moved last into scratch "lanes" (one per key operand, plus the int32
position of each element within its row when some operand is not a key), and
``ceil(log2(n))`` merge passes ping-pong the lanes between two buffers: pass ``p`` merges
neighbouring sorted runs of width ``w = 2**p`` into runs of ``2w``. Every row is independent,
and so is every *chunk* of ``CHUNK`` outputs of a row: a chunk finds where its first output
comes from in the two runs by a binary search along its diagonal of the merge (the "merge
path" co-rank), then merges sequentially, so a pass has ``rows * ceil(n / CHUNK)`` parallel
tasks whatever the run width, and the work is O(n log n) (plus O((n / CHUNK) log^2 n) for
the searches).

Order (NumPy's and JAX's): keys compare lexicographically; floats with ``-0.0 == 0.0`` and
every NaN after every number; ties keep their input order (the left run wins). Key outputs
are read from the sorted lanes; any other operand is gathered through the sorted positions
(lazily, so ``argsort``'s iota operand costs nothing).

One kernel does all passes: the program runs it in a ``Loop`` whose counter gives the pass
(two calls per iteration, the second with the buffers swapped), so both renderers and the
interpreter get the sort from loops, loads, stores, selects and locals alone.
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
    """One merge pass: for each (row, chunk of outputs) in parallel, find the chunk's start in
    the two runs it merges from (binary search), then merge ``chunk`` outputs."""
    index = lambda v: K.as_expr(v, K.INDEX)
    chunk = min(CHUNK[target], 1 << (n - 1).bit_length())
    per_row = -(-n // chunk)
    p = counter[0] * 2 + offset[0]
    width = K.op("shl", index(1), p)
    span = width * 2
    task = kb.var("task")
    base = (task // per_row) * n
    start = (task % per_row) * chunk
    stop = K.minimum(start + chunk, index(n))
    lo = start - (start & (span - 1))             # the pair of runs [lo, mid) and [mid, hi)
    mid, hi = K.minimum(lo + width, index(n)), K.minimum(lo + span, index(n))
    diag = start - lo
    keys = src[:num_keys]
    at = lambda i: base + i

    # co-rank: how many of the first ``diag`` outputs come from the left run
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

    # the sequential merge of this chunk's outputs; a new pair of runs starts at multiples of 2w
    left, right, left_end, right_end, take = (K.Local(f"merge_{s}", K.INDEX)
                                              for s in ("i", "j", "mid", "hi", "right"))
    k = kb.var("k")
    i, j = K.minimum(left[0], left_end[0] - 1), K.minimum(right[0], right_end[0] - 1)
    left_ok, right_ok = K.op("lt", left[0], left_end[0]), K.op("lt", right[0], right_end[0])
    from_right = right_ok & (~left_ok | _before(keys, at(j), at(i)))
    chosen = K.ne(take[0], index(0))
    merge = [
        K.DefineLocal(left, lo + few[0]),
        K.DefineLocal(right, mid + diag - few[0]),
        K.DefineLocal(left_end, mid),
        K.DefineLocal(right_end, hi),
        K.Range(k, start, stop, [
            K.If(K.eq(k & (span - 1), index(0)), [
                left.store(0, k), right.store(0, K.minimum(k + width, index(n))),
                left_end.store(0, K.minimum(k + width, index(n))), right_end.store(0, K.minimum(k + span, index(n)))]),
            K.DefineLocal(take, K.cast(from_right, K.INDEX)),
            *[d.store(at(k), K.select(chosen, s[at(j)], s[at(i)])) for s, d in zip(src, dst)],
            left.store(0, left[0] + 1 - take[0]),
            right.store(0, right[0] + take[0]),
        ]),
    ]
    tasks = rows * per_row
    # the tasks are independent; on the CPU, threads pay off only for enough work
    parallel = tasks > 1 and (target == "gpu" or rows * n >= PARALLEL_MIN_ELEMENTS // 4)
    return [K.Range(task, 0, tasks, search + merge, parallel=parallel)]


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
