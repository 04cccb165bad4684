"""Lowering rules of the window primitives (``reduce_window_*``, ``select_and_scatter_add``,
``select_and_gather_add``): ``RULES``, which ``rules.py`` adds to ``schedule.lowering_rules``."""
from __future__ import annotations

import itertools
import math
from typing import Callable, Sequence

import numpy as np

from fgrad.core.types import ShapedArray
from fgrad.lower import kernel as K
from fgrad.lower.layout_rules import in_range as _in_range, lazy as _lazy, masked_read as _masked_read, out_aval as _out_aval
from fgrad.lower.schedule import (BufferValue, KernelBuilder, LazyValue, Lowerer, Value, ir_dtype, loop_nest, nest,
                                  ravel, reduce_identity)
from fgrad.ops import window


#: Lowering rules by primitive.
RULES: dict = {}


# --- reduce_window and its gradients --------------------------------------------------------------------------------------

def _window_positions(params: dict, out_idx: list, taps: list, in_shape: Sequence[int]):
    """Input coordinates of window tap ``taps`` for output ``out_idx``, and where they are valid."""
    coords, masks = [], []
    for d, (o, t, n) in enumerate(zip(out_idx, taps, in_shape)):
        lo = params["padding"][d][0]
        pos = o * params["window_strides"][d] + t * params["window_dilation"][d] - lo
        base = params["base_dilation"][d]
        if base > 1:
            masks.append(K.eq(K.op("mod", pos, K.Const(base, K.INDEX)), K.Const(0, K.INDEX)))
            pos = K.floordiv(pos, K.Const(base, K.INDEX))
        if lo or params["padding"][d][1] or base > 1:
            masks.append(_in_range(pos, n))
        coords.append(pos)
    return coords, masks


def _reduce_window(op_name: str) -> Callable:
    def rule(lw: Lowerer, eqn, ins):
        (x,) = ins
        aval = _out_aval(eqn)
        buf = lw.output_buffer(eqn.outvars[0], aval)
        dtype = ir_dtype(aval.dtype)
        kb = KernelBuilder()
        out = kb.param(buf)
        o = [kb.var("o") for _ in aval.shape]
        t = [kb.var("w") for _ in aval.shape]
        coords, masks = _window_positions(eqn.params, o, t, x.aval.shape)
        ident = reduce_identity(op_name, dtype)
        value = _masked_read(kb, x, coords, K.logical_and(*masks), ident) if masks else x.read(kb, coords)
        acc = K.Local("win", dtype)
        inner = nest(t, eqn.params["window_dimensions"], [acc.accumulate(0, op_name, value)])
        start = ident
        if op_name == "add" and K.is_float(dtype) and math.prod(eqn.params["window_dimensions"]) == 1:
            start = K.Const(-0.0, dtype)   # a one-tap window is its element, -0. included (as XLA's)
        body = [K.DefineLocal(acc, start), *inner, out.store(ravel(o, aval.shape), acc[0])]
        if aval.size:
            lw.emit(kb, f"window_{op_name}", loop_nest(o, aval.shape, body, aval.size * 4, vectorize_inner=True))
        return [BufferValue(aval, buf)]
    return rule


RULES[window.reduce_window_sum_p] = _reduce_window("add")
RULES[window.reduce_window_max_p] = _reduce_window("max")
RULES[window.reduce_window_min_p] = _reduce_window("min")


def _select_in_window(kb, params: dict, x: Value, o: list, select: str):
    """Locals holding the first max (min) of ``x``'s window at output ``o`` and its flat input index."""
    t = [kb.var("w") for _ in o]
    xdtype = ir_dtype(x.aval.dtype)
    coords, masks = _window_positions(params, o, t, x.aval.shape)
    valid = K.logical_and(*masks) if masks else K.Const(True, K.bool_)
    value = _masked_read(kb, x, coords, valid, reduce_identity(select, xdtype)) if masks else x.read(kb, coords)
    best, where = K.Local("best", xdtype), K.Local("where", K.INDEX)
    beats = K.op("gt" if select == "max" else "lt", value, best[0])
    if K.is_float(xdtype):
        beats = K.select(K.ne(best[0], best[0]), K.Const(False, K.bool_), K.op("or", beats, K.ne(value, value)))
    first = K.eq(where[0], K.Const(-1, K.INDEX))
    update = K.If(K.logical_and(valid, K.op("or", first, beats)),
                  [best.store(0, value), where.store(0, ravel(coords, x.aval.shape))])
    stmts = [K.DefineLocal(best, reduce_identity(select, xdtype)), K.DefineLocal(where, K.Const(-1, K.INDEX)),
             *nest(t, params["window_dimensions"], [update])]
    return stmts, where


MAX_GATHER_SCATTER_LOADS = 64


def _gather_candidates(params: dict, pos: K.Expr, d: int, n: int, out_size: int) -> list[tuple[K.Expr, list]]:
    """The windows along dim ``d`` that may contain input position ``pos`` (``0 <= pos < n``):
    (window, conditions) pairs; the window is valid when all its conditions hold.

    In padded coordinates ``p = pos + lo`` window ``o`` covers ``o*s + t*wd`` for taps
    ``t < W``; the candidates are ``o = p // s - k`` for ``k < ceil(((W-1)*wd + 1) / s)``,
    each valid when in range and when ``p - o*s`` is a whole tap. A condition that the
    static ranges of ``p`` decide is left out; an out-of-range window is clamped so its
    reads stay in bounds."""
    s, wd, w = params["window_strides"][d], params["window_dilation"][d], params["window_dimensions"][d]
    lo = params["padding"][d][0]
    p = pos + K.Const(lo, K.INDEX) if lo else pos
    span = (w - 1) * wd
    candidates = []
    for k in range(-(-(span + 1) // s)):
        if k * s > span:
            continue
        base = p if s == 1 else K.floordiv(p, K.Const(s, K.INDEX))
        o = base - K.Const(k, K.INDEX) if k else base
        o_min, o_max = lo // s - k, (n - 1 + lo) // s - k
        conditions, safe = [], o
        if o_min < 0:
            conditions.append(K.op("ge", o, K.Const(0, K.INDEX)))
            safe = K.maximum(safe, K.Const(0, K.INDEX))
        if o_max > out_size - 1:
            conditions.append(K.op("lt", o, K.Const(out_size, K.INDEX)))
            safe = K.minimum(safe, K.Const(out_size - 1, K.INDEX))
        offset = p - o * s
        if k * s + s - 1 > span:
            conditions.append(K.op("le", offset, K.Const(span, K.INDEX)))
        if wd > 1:
            conditions.append(K.eq(K.op("mod", offset, K.Const(wd, K.INDEX)), K.Const(0, K.INDEX)))
        candidates.append((safe, conditions))
    return candidates


def _selected_position(kb, params: dict, x: Value, o: list, select: str, ordinal: bool = False) -> K.Expr:
    """The flat input index of the first max (min) of ``x``'s window ``o``, -1 if the window is
    all padding (the choice ``_select_in_window`` makes: the first NaN, else the first extreme).
    With ``ordinal``, the tap's number in the window (row-major) instead of its input index.

    As expressions: the window's extreme by a fold of max (min), which propagates NaN, then
    the first valid tap equal to it. Each tap appears a bounded number of times, so the
    expression stays linear in the window size (a fold of select-on-compare would nest the
    running best four times per tap)."""
    xdtype = ir_dtype(x.aval.dtype)
    taps = []
    for t in np.ndindex(*params["window_dimensions"]):
        coords, masks = _window_positions(params, o, [K.Const(v, K.INDEX) for v in t], x.aval.shape)
        valid = K.logical_and(*masks) if masks else None
        value = (_masked_read(kb, x, coords, valid, reduce_identity(select, xdtype)) if masks
                 else x.read(kb, coords))
        taps.append((value, valid, K.Const(len(taps), K.INDEX) if ordinal else ravel(coords, x.aval.shape)))
    extreme = taps[0][0]
    for value, _, _ in taps[1:]:
        extreme = K.op(select, extreme, value)
    where = K.Const(-1, K.INDEX)
    for value, valid, flat in reversed(taps):
        hit = K.eq(value, extreme)
        if K.is_float(xdtype):      # a NaN tap makes the extreme NaN: the first NaN is chosen
            hit = K.op("or", hit, K.ne(value, value))
        if valid is not None:
            hit = K.logical_and(valid, hit)
        where = K.select(hit, flat, where)
    return where


def _gather_form_loads(params: dict, x_aval: ShapedArray, ct_aval: ShapedArray) -> int | None:
    """Loads per element of the gather form of select_and_scatter_add, None when it does not apply."""
    if any(b != 1 for b in params["base_dilation"]):
        return None
    candidates = 1
    for s, wd, w in zip(params["window_strides"], params["window_dilation"], params["window_dimensions"]):
        candidates *= -(-((w - 1) * wd + 1) // s)
    loads = candidates * (math.prod(params["window_dimensions"]) + 1)
    return loads if loads <= MAX_GATHER_SCATTER_LOADS and x_aval.size and ct_aval.size else None


def _select_and_scatter_add(lw: Lowerer, eqn, ins):
    ct, x = ins
    params = {k: v for k, v in eqn.params.items() if k != "select"}
    if _windows_apart(params) and x.aval.size and ct.aval.size:
        return [_select_and_scatter_apart(lw, eqn, params, ct, x)]
    loads = _gather_form_loads(params, x.aval, ct.aval)
    if loads is not None:
        return [_select_and_scatter_gathered(eqn, params, ct, x, loads)]
    return [_select_and_scatter_kernel(lw, eqn, params, ct, x)]


def _select_and_scatter_gathered(eqn, params: dict, ct: Value, x: Value, loads: int) -> LazyValue:
    """select_and_scatter_add as a gather: each input position sums the cotangents of the
    windows that contain it and selected it. Parallel and fusible, unlike the scatter."""
    aval = _out_aval(eqn)
    dtype = ir_dtype(aval.dtype)

    def fn(kb, idx):
        per_dim = [_gather_candidates(params, i, d, n, m)
                   for d, (i, n, m) in enumerate(zip(idx, x.aval.shape, ct.aval.shape))]
        here = ravel(idx, x.aval.shape)
        total = None
        for combo in itertools.product(*per_dim):
            o = [window for window, _ in combo]
            conditions = [c for _, window_conditions in combo for c in window_conditions]
            chosen = K.eq(_selected_position(kb, params, x, o, eqn.params["select"]), here)
            term = K.select(K.logical_and(*conditions, chosen), K.cast(ct.read(kb, o), dtype), K.Const(0, dtype))
            total = term if total is None else total + term
        return total
    return _lazy(aval, fn, ct, x, extra_cost=loads)


def _windows_apart(params: dict) -> bool:
    """Whether no input position lies in two windows (each stride spans the dilated window), as
    in max pooling with stride = window: each position then has one window to look at."""
    return all(b == 1 for b in params["base_dilation"]) and all(
        s >= (w - 1) * wd + 1 for s, w, wd in
        zip(params["window_strides"], params["window_dimensions"], params["window_dilation"]))


def _select_and_scatter_apart(lw: Lowerer, eqn, params: dict, ct: Value, x: Value) -> LazyValue:
    """select_and_scatter_add over windows that do not overlap: a kernel stores each window's
    selected tap (its number in the window) once, and input position p takes its window's
    cotangent where p is that tap. The gather form would find each window's selection again for
    every one of its positions (the MNIST max-pool gradients: 6.6 of 61 ms a step, 1 thread)."""
    aval = _out_aval(eqn)
    dtype = ir_dtype(aval.dtype)
    dims = params["window_dimensions"]
    tap_dtype = np.int8 if math.prod(dims) < 127 else np.int32
    chosen = BufferValue(ShapedArray(ct.aval.shape, np.dtype(tap_dtype)), lw.new_buffer(
        ShapedArray(ct.aval.shape, np.dtype(tap_dtype)), "tap"))
    kb = KernelBuilder()
    o = [kb.var("o") for _ in ct.aval.shape]
    tap = _selected_position(kb, params, x, o, eqn.params["select"], ordinal=True)
    store = kb.param(chosen.buffer).store(ravel(o, ct.aval.shape), K.cast(tap, ir_dtype(np.dtype(tap_dtype))))
    lw.emit(kb, "select_tap", loop_nest(o, ct.aval.shape, [store], ct.aval.size * math.prod(dims)))

    def fn(kb, idx):
        window, taps, conditions = [], [], []
        for d, (i, n, m) in enumerate(zip(idx, x.aval.shape, ct.aval.shape)):
            s, wd, w = params["window_strides"][d], params["window_dilation"][d], dims[d]
            lo = params["padding"][d][0]
            p = i + K.Const(lo, K.INDEX) if lo else i
            o_d = K.floordiv(p, K.Const(s, K.INDEX)) if s > 1 else p
            offset = p - o_d * s if s > 1 else K.Const(0, K.INDEX)
            if (s - 1) > (w - 1) * wd:
                conditions.append(K.op("le", offset, K.Const((w - 1) * wd, K.INDEX)))
            if wd > 1:
                conditions.append(K.eq(K.op("mod", offset, K.Const(wd, K.INDEX)), K.Const(0, K.INDEX)))
            if lo < 0 or (n - 1 + lo) // s > m - 1:
                conditions.append(_in_range(o_d, m))
                o_d = K.minimum(K.maximum(o_d, K.Const(0, K.INDEX)), K.Const(m - 1, K.INDEX))
            window.append(o_d)
            taps.append(K.floordiv(offset, K.Const(wd, K.INDEX)) if wd > 1 else offset)
        ordinal = K.cast(ravel(taps, dims), chosen.buffer.dtype)
        hit = K.eq(chosen.read(kb, window), ordinal)
        return K.select(K.logical_and(*conditions, hit), K.cast(ct.read(kb, window), dtype), K.Const(0, dtype))
    return _lazy(aval, fn, ct, chosen, extra_cost=2)


def _select_and_scatter_kernel(lw: Lowerer, eqn, params: dict, ct: Value, x: Value) -> BufferValue:
    aval = _out_aval(eqn)
    buf = lw.output_buffer(eqn.outvars[0], aval)
    dtype = ir_dtype(aval.dtype)
    kb = KernelBuilder()
    out = kb.param(buf)
    init_var = K.Var("z")
    zero = [K.Range(init_var, 0, aval.size, [out.store(init_var, K.Const(0, dtype))], vectorize=K.AUTO)]
    o = [kb.var("o") for _ in ct.aval.shape]
    stmts, where = _select_in_window(kb, params, x, o, eqn.params["select"])
    add = K.If(K.op("ge", where[0], K.Const(0, K.INDEX)),
               [out.store(where[0], out[where[0]] + K.cast(ct.read(kb, o), dtype))])
    body = nest(o, ct.aval.shape, [*stmts, add])
    if aval.size:
        lw.emit(kb, "select_scatter", zero + (body if ct.aval.size else []))
    return BufferValue(aval, buf)


def _select_and_gather_add(lw: Lowerer, eqn, ins):
    t, x = ins
    params = {k: v for k, v in eqn.params.items() if k != "select"}
    aval = _out_aval(eqn)
    buf = lw.output_buffer(eqn.outvars[0], aval)
    dtype = ir_dtype(aval.dtype)
    tb = lw.materialize(t)
    kb = KernelBuilder()
    out = kb.param(buf)
    src = kb.param(tb.buffer)
    o = [kb.var("o") for _ in aval.shape]
    stmts, where = _select_in_window(kb, params, x, o, eqn.params["select"])
    picked = K.select(K.op("ge", where[0], K.Const(0, K.INDEX)),
                      src.load(K.maximum(where[0], K.Const(0, K.INDEX))), K.Const(0, dtype))
    body = nest(o, aval.shape, [*stmts, out.store(ravel(o, aval.shape), picked)])
    if aval.size:
        lw.emit(kb, "select_gather", body)
    return [BufferValue(aval, buf)]


RULES[window.select_and_scatter_add_p] = _select_and_scatter_add
RULES[window.select_and_gather_add_p] = _select_and_gather_add


