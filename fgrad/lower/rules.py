"""Lowering rules: how each primitive becomes kernel IR (registered in ``schedule.lowering_rules``).

Elementwise and layout primitives return lazy values (fused into their readers; the
layout and indexing ones, with scatter, live in ``layout_rules``);
reductions, contractions, windows, scatters and control flow emit kernels or
program steps. A primitive without a rule makes its program fall back to the
reference path (``NotLowerable``).
"""
from __future__ import annotations

import functools
import math
from typing import Callable, Sequence

import numpy as np

from fgrad.config import config as fgrad_config
from fgrad.core.ir import ClosedJaxpr, Jaxpr
from fgrad.core.primitive import pvary_p
from fgrad.core.trace import trace_to_jaxpr
from fgrad.core.types import ShapedArray
from fgrad.lower import contraction as templates, convolution, kernel as K
from fgrad.lower import gpu_lowering as gpu
from fgrad.lower.layout_rules import (RULES as LAYOUT_RULES, in_range as _in_range, lazy as _lazy,
                                      masked_read as _masked_read, out_aval as _out_aval)
from fgrad.lower.sort import lower_sort
from fgrad.lower.transpose_fold import fold_transposed_products
from fgrad.lower.target import LoweringTarget
from fgrad.lower.window_rules import RULES as WINDOW_RULES
from fgrad.lower.lapack import RULES as LAPACK_RULES
from fgrad.lower.host_callback import RULES as CALLBACK_RULES
from fgrad.lower import schedule
from fgrad.lower.schedule import (BufferValue, DeferredValue, KernelBuilder, LazyValue, Lowerer, NotLowerable, Value,
                                  ir_dtype, loop_nest, lowering_rules, nest, ravel, reduce_identity,
                                  row_major_strides, runs_own_programs)
from fgrad.ops import control, contraction, elementwise as ew, misc, reduction, special
from fgrad.ops.sort import sort_p
from fgrad.ops import call, custom, linear_solve
from fgrad.ops import precision, special_gamma, special_incomplete  # noqa: F401  (register their decompositions)
from fgrad.ops.shard import shard_p
from fgrad.lower.contraction import param, Source


# --- elementwise ------------------------------------------------------------------------------

_UNARY_OPS = {ew.neg_p: "neg", ew.exp_p: "exp", ew.log_p: "log", ew.log1p_p: "log1p", ew.expm1_p: "expm1",
              ew.tanh_p: "tanh", ew.logistic_p: "logistic", ew.sin_p: "sin", ew.cos_p: "cos",
              ew.sqrt_p: "sqrt", ew.rsqrt_p: "rsqrt", ew.abs_p: "abs", ew.sign_p: "sign",
              ew.floor_p: "floor", ew.ceil_p: "ceil", ew.is_finite_p: "is_finite", ew.not_p: "not"}
_BINARY_OPS = {ew.add_p: "add", ew.sub_p: "sub", ew.mul_p: "mul", ew.pow_p: "pow", ew.max_p: "max",
               ew.min_p: "min", ew.and_p: "and", ew.or_p: "or", ew.xor_p: "xor", ew.eq_p: "eq",
               ew.ne_p: "ne", ew.lt_p: "lt", ew.le_p: "le", ew.gt_p: "gt", ew.ge_p: "ge"}


def _elementwise(scalar_fn: Callable[..., K.Expr], cost: int = 1) -> Callable:
    def rule(lw, eqn, ins):
        aval = _out_aval(eqn)

        def fn(kb, idx):
            return scalar_fn(*[v.read(kb, idx if v.aval.shape else []) for v in ins], **eqn.params)
        return [_lazy(aval, fn, *ins, extra_cost=cost, pointwise=True)]
    rule.pointwise = True     # reads each input at its own index (schedule may recompute inputs)
    return rule


# Ops that cost several adds: a value made by one is stored when read twice (schedule's
# CHEAP_COST), unless every reader is elementwise and recomputing it is safe (schedule's
# RECOMPUTE_COST; never into a reduction or a conv). Measured: a conv reading ``x_uint8 / 255``
# 9 taps x 32 features times per element took 2.8 ms recomputing it, 0.6 ms reading it stored.
SLOW_OPS = frozenset({"div", "rem", "pow", "exp", "log", "log1p", "expm1", "tanh", "logistic", "sin", "cos",
                      "sqrt", "rsqrt"})
SLOW_COST = schedule.SLOW_COST

for _prim, _name in _UNARY_OPS.items():
    lowering_rules[_prim] = _elementwise(lambda x, _n=_name: K.op(_n, x), SLOW_COST if _name in SLOW_OPS else 1)
for _prim, _name in _BINARY_OPS.items():
    lowering_rules[_prim] = _elementwise(lambda x, y, _n=_name: K.op(_n, x, y), SLOW_COST if _name in SLOW_OPS else 1)


def _half_logistic(half: np.dtype) -> Callable[[K.Expr], K.Expr]:
    """A float16/bfloat16 logistic as XLA expands it (and eager computes it): ``1 / (1 + exp(-x))``
    with each step rounded to ``half`` (the equation's result is rounded as any other)."""
    def fn(x: K.Expr) -> K.Expr:
        e = schedule.round_half(K.op("exp", K.op("neg", x)), half)
        return K.op("div", 1.0, schedule.round_half(K.op("add", e, 1.0), half))
    return fn


def _logistic(lw, eqn, ins):
    half = _out_aval(eqn).dtype
    if half not in K.HALF:
        return _plain_logistic(lw, eqn, ins)
    return _elementwise(_half_logistic(half), SLOW_COST + 2)(lw, eqn, ins)


_plain_logistic = lowering_rules[ew.logistic_p]
lowering_rules[ew.logistic_p] = _logistic
_logistic.pointwise = True


def _int_zero_guard(x: K.Expr, y: K.Expr, on_zero: K.Expr, result: K.Expr) -> K.Expr:
    return K.select(K.eq(y, 0), on_zero, result) if K.is_int(x.dtype) else result


lowering_rules[ew.div_p] = _elementwise(lambda x, y: _int_zero_guard(x, y, K.Const(-1, x.dtype), K.div(x, y)),
                                       SLOW_COST)
lowering_rules[ew.rem_p] = _elementwise(lambda x, y: _int_zero_guard(x, y, x, K.op("rem", x, y)), SLOW_COST)
lowering_rules[ew.round_p] = _elementwise(
    lambda x, rounding_method: K.op("round_even" if rounding_method in ("to_nearest_even", 1) else "round", x))


def _shift(op_name: str) -> Callable:
    def fn(x, y):
        if x.dtype.itemsize == 8:       # int64 (the kernel IR has no uint64)
            return _shift_int64(op_name, x, y)
        unsigned = np.dtype(f"u{x.dtype.itemsize}")
        amount = K.bitcast(y, unsigned) if y.dtype != unsigned else y
        bits = K.bitcast(x, unsigned) if x.dtype != unsigned else x
        shifted = K.op(op_name, bits, amount)
        shifted = K.select(K.op("ge", amount, K.Const(8 * unsigned.itemsize, unsigned)), K.Const(0, unsigned), shifted)
        return K.bitcast(shifted, x.dtype) if x.dtype != unsigned else shifted
    return fn


def _shift_int64(op_name: str, x: K.Expr, y: K.Expr) -> K.Expr:
    """int64 shifts without uint64: the IR's ``shl`` is already 0 for amounts outside [0, 64);
    a logical right shift is the arithmetic one with the sign's copies masked off."""
    if op_name == "shl":
        return K.op("shl", x, y)
    high_ones = K.op("shl", K.Const(-1, x.dtype), K.Const(64, x.dtype) - y)   # 0 when y == 0
    logical = K.op("and", K.op("shr", x, y), K.op("not", high_ones))
    in_range = K.logical_and(K.op("ge", y, K.Const(0, y.dtype)), K.op("lt", y, K.Const(64, y.dtype)))
    return K.select(in_range, logical, K.Const(0, x.dtype))


lowering_rules[ew.shift_left_p] = _elementwise(_shift("shl"))
lowering_rules[ew.shift_right_logical_p] = _elementwise(_shift("shr"))


def _integer_pow(x: K.Expr, y: int) -> K.Expr:
    result, base, n = None, x, abs(y)
    while n:
        if n & 1:
            result = base if result is None else result * base
        n >>= 1
        if n:
            base = base * base
    result = K.Const(1, x.dtype) if result is None else result
    return K.Const(1, x.dtype) / result if y < 0 else result


lowering_rules[ew.integer_pow_p] = _elementwise(lambda x, y: _integer_pow(x, y))


def _convert(x: K.Expr, new_dtype, weak_type=False) -> K.Expr:
    target = ir_dtype(np.dtype(new_dtype))
    if target == K.bool_:
        return K.ne(x, K.Const(0, x.dtype)) if x.dtype != K.bool_ else x
    if np.dtype(new_dtype) in K.HALF:   # straight to the half type (float64 -> float32 -> float16 rounds twice)
        return K.cast(K.cast(x, np.dtype(new_dtype)), target)
    return K.cast(x, target)


def _bitcast_rule(lw, eqn, ins):
    """``bitcast_convert_type``: half values (float32 in the IR) are bitcast from their 16 bits."""
    src, dst = ins[0].aval.dtype, np.dtype(eqn.params["new_dtype"])

    def fn(kb, idx):
        x = ins[0].read(kb, idx if ins[0].aval.shape else [])
        bits = K.bitcast(K.cast(x, src) if src in K.HALF else x, dst)
        return K.cast(bits, K.float32) if dst in K.HALF else bits
    return [_lazy(_out_aval(eqn), fn, *ins, pointwise=True)]


lowering_rules[ew.convert_element_type_p] = _elementwise(_convert)
lowering_rules[ew.bitcast_convert_type_p] = _bitcast_rule


def _select_n(pred: K.Expr, *cases: K.Expr) -> K.Expr:
    if len(cases) == 1:
        return cases[0]
    if pred.dtype == K.bool_:
        return K.select(pred, cases[1], cases[0])
    out = cases[-1]
    for i in range(len(cases) - 2, -1, -1):
        out = K.select(K.op("le", pred, K.Const(i, pred.dtype)), cases[i], out)
    return out


lowering_rules[ew.select_n_p] = _elementwise(_select_n)


# Primitives lowered through their decomposition (ops.special: atan2, sinh, cbrt...): the
# decomposition is traced once per operand types and inlined like a call.
@functools.lru_cache(maxsize=4096)
def _decomposition_jaxpr(prim, avals: tuple, params: tuple) -> ClosedJaxpr:
    decompose = special.decompositions[prim]

    def body(*xs):
        half = next((x.aval.dtype for x in xs if x.aval.dtype in K.HALF), None)
        if half is None or prim in special.exact_in_half:
            return [decompose(*xs, **dict(params))]
        # float16 computes in float32 and rounds once, as NumPy's float16 loops (eager) do: a
        # decomposition's intermediate (sinh's exp(x)) may overflow float16 where the result does not
        wide = [ew.convert_element_type(x, np.float32) for x in xs]
        return [ew.convert_element_type(decompose(*wide, **dict(params)), half)]
    with fgrad_config.override(enable_x64=True):   # the operand types are given: keep float64 as it is
        return trace_to_jaxpr(body, avals)


def _decomposed(prim) -> Callable:
    def rule(lw, eqn, ins):
        avals = tuple(v.aval for v in ins)
        return _inline(lw, _decomposition_jaxpr(prim, avals, tuple(sorted(eqn.params.items()))), ins)
    return rule


for _prim in special.decompositions:
    lowering_rules[_prim] = _decomposed(_prim)
lowering_rules[misc.stop_gradient_p] = lambda lw, eqn, ins: [ins[0]]
lowering_rules[misc.checkpoint_name_p] = lambda lw, eqn, ins: [ins[0]]
lowering_rules[pvary_p] = lambda lw, eqn, ins: [ins[0]]   # a type cast: the identity on values


lowering_rules.update(LAYOUT_RULES)
lowering_rules.update(WINDOW_RULES)
lowering_rules.update(LAPACK_RULES)      # decompositions call LAPACK (fgrad.lower.lapack)
lowering_rules.update(CALLBACK_RULES)    # host callbacks call Python (fgrad.lower.host_callback)


# --- reductions ----------------------------------------------------------------------------------

_REDUCE = {reduction.reduce_sum_p: "add", reduction.reduce_max_p: "max", reduction.reduce_min_p: "min",
           reduction.reduce_prod_p: "mul", reduction.reduce_and_p: "and", reduction.reduce_or_p: "or"}


def _reduce(op_name: str) -> Callable:
    def rule(lw: Lowerer, eqn, ins):
        (x,) = ins
        axes = tuple(eqn.params["axes"])
        aval = _out_aval(eqn)
        buf = lw.output_buffer(eqn.outvars[0], aval)
        dtype = ir_dtype(aval.dtype)
        shape = x.aval.shape
        if lw.target == "gpu" and x.aval.size:
            def term(kb, o, k):
                o, k = iter(o), iter(k)
                return x.read(kb, [next(k) if d in axes else next(o) for d in range(len(shape))])
            reduced = [shape[d] for d in range(len(shape)) if d in axes]
            gpu.fold(lw, buf, aval, reduced, term, op_name, f"reduce_{op_name}", x.aval.size)
            return [BufferValue(aval, buf)]
        kb = KernelBuilder()
        out = kb.param(buf)
        idx = [kb.var() for _ in shape]
        kept = [d for d in range(len(shape)) if d not in axes]
        out_flat = ravel([idx[d] for d in kept], aval.shape) if kept else K.Const(0, K.INDEX)
        value = K.cast(x.read(kb, idx), dtype)
        if not shape or not axes or (len(shape) - 1) in axes:
            body = _inner_reduction(op_name, out, out_flat, value, idx, shape, kept, axes, dtype, x.aval.size)
        else:
            body = _outer_reduction(op_name, out, out_flat, value, idx, shape, aval, dtype, axes)
        lw.emit(kb, f"reduce_{op_name}", body, flops=x.aval.size)
        return [BufferValue(aval, buf)]
    return rule


def _inner_reduction(op_name, out, out_flat, value, idx, shape, kept, axes, dtype, work) -> list:
    """The innermost dim is reduced: loops over the kept dims (outer, parallel when the work
    is large) around loops over the reduced dims with one accumulator per output element,
    vectorised along the innermost (contiguous) dim."""
    acc = K.Local(f"acc_{idx[0].name if idx else 'x'}", dtype)
    inner = [acc.accumulate(0, op_name, value)]
    reduced = [d for d in range(len(shape)) if d not in kept]
    for depth in reversed(reduced):
        inner = [K.Range(idx[depth], 0, shape[depth], inner,
                         vectorize=K.AUTO if depth == len(shape) - 1 and shape[depth] > 1 else 0)]
    body = [K.DefineLocal(acc, reduce_identity(op_name, dtype)), *inner, out.store(out_flat, acc[0])]
    outer_shape = [shape[d] for d in kept]
    return loop_nest([idx[d] for d in kept], outer_shape, body, work, vectorize_inner=False) \
        if kept else body


def _outer_reduction(op_name, out, out_flat, value, idx, shape, aval, dtype, axes) -> list:
    """Some kept dims are inner: initialise the output, then accumulate into it in input order.
    Only a kept innermost dim is vectorised: along a reduced one each iteration reads the
    previous one's store."""
    init_var = K.Var("init")
    init = [K.Range(init_var, 0, aval.size, [out.store(init_var, reduce_identity(op_name, dtype))],
                    vectorize=K.AUTO)] if aval.size else []
    update = [out.store(out_flat, K.op(op_name, out[out_flat], value))]
    for depth in range(len(shape) - 1, -1, -1):
        inner_kept = depth == len(shape) - 1 and depth not in axes and shape[depth] > 1
        update = [K.Range(idx[depth], 0, shape[depth], update, vectorize=K.AUTO if inner_kept else 0)]
    return init + update


for _prim, _op in _REDUCE.items():
    lowering_rules[_prim] = _reduce(_op)
    lowering_rules[_prim].reads_each_once = True


def _argreduce(better: str) -> Callable:
    def rule(lw: Lowerer, eqn, ins):
        (x,) = ins
        (axis,) = eqn.params["axes"]
        aval = _out_aval(eqn)
        buf = lw.output_buffer(eqn.outvars[0], aval)
        xdtype = ir_dtype(x.aval.dtype)
        kb = KernelBuilder()
        out = kb.param(buf)
        shape = x.aval.shape
        idx = [kb.var() for _ in shape]
        kept = [d for d in range(len(shape)) if d != axis]
        best, where = K.Local("best", xdtype), K.Local("where", K.INDEX)
        value = x.read(kb, idx)
        beats = K.op(better, value, best[0])
        if K.is_float(xdtype):  # the first NaN wins, as in np.argmax
            is_nan = K.ne(value, value)
            beats = K.select(K.ne(best[0], best[0]), K.Const(False, K.bool_), K.op("or", beats, is_nan))
        scan = K.Range(idx[axis], 0, shape[axis], [
            K.If(K.op("or", beats, K.eq(idx[axis], K.Const(0, K.INDEX))),
                 [best.store(0, value), where.store(0, idx[axis])])])
        out_flat = ravel([idx[d] for d in kept], aval.shape) if kept else K.Const(0, K.INDEX)
        body = [K.DefineLocal(best), K.DefineLocal(where, K.Const(0, K.INDEX)), scan,
                out.store(out_flat, K.cast(where[0], ir_dtype(aval.dtype)))]
        lw.emit(kb, f"arg{better}", loop_nest([idx[d] for d in kept], [shape[d] for d in kept], body,
                                               aval.size * 8, vectorize_inner=False))
        return [BufferValue(aval, buf)]
    return rule


lowering_rules[reduction.argmax_p] = _argreduce("gt")
lowering_rules[reduction.argmin_p] = _argreduce("lt")
lowering_rules[sort_p] = lower_sort      # a merge sort in kernel IR (fgrad.lower.sort)


def _cumsum(lw: Lowerer, eqn, ins):
    (x,) = ins
    axis, reverse = eqn.params["axis"], eqn.params["reverse"]
    aval = _out_aval(eqn)
    buf = lw.output_buffer(eqn.outvars[0], aval)
    dtype = ir_dtype(aval.dtype)
    kb = KernelBuilder()
    out = kb.param(buf)
    shape = x.aval.shape
    idx = [kb.var() for _ in shape]
    n = shape[axis]
    pos = (n - 1 - idx[axis]) if reverse else idx[axis]
    full = list(idx)
    full[axis] = pos
    acc = K.Local("run", dtype)
    scan = K.Range(idx[axis], 0, n, [acc.accumulate(0, "add", K.cast(x.read(kb, full), dtype)),
                                     out.store(ravel(full, shape), acc[0])])
    kept = [d for d in range(len(shape)) if d != axis]
    body = [K.DefineLocal(acc, K.Const(0, dtype)), scan]
    if aval.size:
        lw.emit(kb, "cumsum", loop_nest([idx[d] for d in kept], [shape[d] for d in kept], body, aval.size,
                                        vectorize_inner=False))
    return [BufferValue(aval, buf)]


lowering_rules[reduction.cumsum_p] = _cumsum


# --- contraction templates (packed, register-tiled GEMMs from fgrad.lower.contraction) ------------

class _NamedKernelBuilder(KernelBuilder):
    """Names params after their buffers, as the contraction templates do."""

    def param(self, buf: K.Buffer) -> K.Param:
        self.params.setdefault(id(buf), (buf, param(buf)))
        return self.params[id(buf)][1]


def _source(value: Value):
    """A template ``Source`` reading ``value`` in place (fused producers included)."""
    if value.buffer is not None:
        return Source.array(value.buffer)
    if isinstance(value, LazyValue) and value.row_major is not None:      # a reshaped buffer
        return Source.array(value.row_major, value.aval.shape)
    kb = _NamedKernelBuilder()
    value.read(kb, [K.Var(f"probe{d}") for d in range(value.aval.ndim)])
    buffers = tuple(b for b, _ in kb.params.values())
    zero = K.Const(0, ir_dtype(value.aval.dtype))

    def read(idx, valid):
        safe = [K.select(valid, K.cast(i, K.INDEX), K.Const(0, K.INDEX)) for i in idx]
        return K.select(valid, value.read(_NamedKernelBuilder(), safe), zero)
    return Source(tuple(value.aval.shape), buffers, read)


def _template_options(lw: Lowerer) -> dict:
    """The CPU GEMM templates' machine figures, from the lowering target, and BEAM's searched
    schedules (``Lowerer.tuning``)."""
    return dict(vector_bytes=lw.machine.vector_bytes, threads=lw.machine.threads, tuning=lw.tuning)


def _use_templates(lw: Lowerer, *values: Value) -> bool:
    """The packed GEMM templates: float operands, on the CPU (see ``lower_program``)."""
    return lw.target == "cpu" and all(K.is_float(ir_dtype(v.aval.dtype)) and v.aval.size > 0 for v in values)


# --- contractions -------------------------------------------------------------------------------

def _contraction(lw: Lowerer, buf: K.Buffer, aval: ShapedArray, contract_sizes: Sequence[int],
                 product: Callable[[KernelBuilder, list, list], K.Expr], name: str) -> list[Value]:
    """``buf[o] = sum_k product(o, k)``. CPU: loops over the output (all but the last outer,
    the first parallel), then the contracted dims, then the last output dim, vectorised;
    each step accumulates into the output element. GPU: the output loops outermost (a grid
    of one thread per element), each summing its k loops in a register."""
    out_shape = aval.shape
    dtype = ir_dtype(aval.dtype)
    kb = KernelBuilder()
    out = kb.param(buf)
    o = [kb.var("o") for _ in out_shape]
    k = [kb.var("k") for _ in contract_sizes]
    size = int(np.prod(out_shape, dtype=np.int64))
    if size == 0:
        return [BufferValue(aval, buf)]
    flops = 2 * size * int(np.prod(contract_sizes, dtype=np.int64))
    flat = ravel(o, out_shape)
    term = K.cast(product(kb, o, k), dtype)
    if not out_shape:
        acc = K.Local("acc", dtype)
        body = [K.DefineLocal(acc, K.Const(0, dtype)),
                *nest(k, contract_sizes, [acc.accumulate(0, "add", term)]), out.store(0, acc[0])]
        lw.emit(kb, name, body, flops)
        return [BufferValue(aval, buf)]
    if lw.target == "gpu":     # deferred, so that a pointwise reader becomes its epilogue
        def emit(epilogue, into):
            dest = into if into is not None else buf
            if not gpu.gemm(lw, dest, aval, contract_sizes, product, name, flops, epilogue):
                gpu.fold(lw, dest, aval, contract_sizes, product, "add", name, flops, epilogue)
            return BufferValue(aval, dest)
        if any(target is buf for target in lw.targets.values()):
            return [emit(None, None)]
        return [DeferredValue(aval, emit)]
    last = len(out_shape) - 1
    inner = [K.Range(o[last], 0, out_shape[last], [out.store(flat, out[flat] + term)],
                     vectorize=K.AUTO if out_shape[last] > 1 else 0)]
    zero = [K.Range(o[last], 0, out_shape[last], [out.store(flat, K.Const(0, dtype))], vectorize=K.AUTO)]
    body = zero + nest(k, contract_sizes, inner)
    outer = body
    for depth in range(last - 1, -1, -1):
        outer = [K.Range(o[depth], 0, out_shape[depth], outer,
                         parallel=depth == 0 and flops >= (1 << 20) and out_shape[0] > 1)]
    lw.emit(kb, name, outer, flops)
    return [BufferValue(aval, buf)]


#: a contraction operand whose elements cost more than this (two slow ops: GELU's tanh form
#: costs 21) is computed into a buffer by a vector loop first, rather than fused into the
#: templates' operand reads: packing reads operands element by element along k, so a fused
#: tanh ran there as scalar code (1.7 GB/s: 19.7 ms of a scanned 4-layer GPT step's 190),
#: and once stored, a row-major A is read where it lies, with no pack at all
OPERAND_MAX_COST = 2 * SLOW_COST


def _stored_if_costly(lw: Lowerer, value: Value) -> Value:
    """``value``, materialised first when it is a fused value dearer than ``OPERAND_MAX_COST``."""
    return lw.materialize(value) if isinstance(value, LazyValue) and value.cost > OPERAND_MAX_COST else value


def _dot_general(lw, eqn, ins):
    lhs, rhs = ins
    if _use_templates(lw, lhs, rhs):
        lhs, rhs = _stored_if_costly(lw, lhs), _stored_if_costly(lw, rhs)
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    lfree = [d for d in range(lhs.aval.ndim) if d not in lc and d not in lb]
    rfree = [d for d in range(rhs.aval.ndim) if d not in rc and d not in rb]
    contract = [lhs.aval.shape[d] for d in lc]
    dtype = ir_dtype(_out_aval(eqn).dtype)

    def product(kb, o, k):
        nb, nl = len(lb), len(lfree)
        li: list = [None] * lhs.aval.ndim
        ri: list = [None] * rhs.aval.ndim
        for j, (a, b) in enumerate(zip(lb, rb)):
            li[a] = ri[b] = o[j]
        for j, d in enumerate(lfree):
            li[d] = o[nb + j]
        for j, d in enumerate(rfree):
            ri[d] = o[nb + nl + j]
        for j, (a, b) in enumerate(zip(lc, rc)):
            li[a] = ri[b] = k[j]
        return K.cast(lhs.read(kb, li), dtype) * K.cast(rhs.read(kb, ri), dtype)
    aval = _out_aval(eqn)
    permutation = eqn.params.get("out_permutation")
    if permutation is not None and not _stores_permuted(lw, eqn):
        raise NotLowerable(f"dot_general with out_permutation {permutation} outside the CPU GEMM templates")
    if int(np.prod(contract, dtype=np.int64)) == 1:
        # one term per output: a broadcast multiply that fuses with its neighbours. It also
        # gives XLA's signed zeros (0 * -x is -0; a sum started from +0 would make it +0)
        return [_lazy(aval, lambda kb, idx: product(kb, idx, [K.Const(0, K.INDEX)] * len(contract)),
                      lhs, rhs, extra_cost=1)]
    buf = lw.output_buffer(eqn.outvars[0], aval)
    if _use_templates(lw, lhs, rhs) and ir_dtype(lhs.aval.dtype) == ir_dtype(rhs.aval.dtype) == dtype:
        plan = templates.dot_general(f"dot{next(lw.names)}", _source(lhs), _source(rhs), buf,
                                     eqn.params["dimension_numbers"], plans=lw.plans, out_permutation=permutation,
                                     **_template_options(lw))
        lw.steps.extend(plan.steps)
        return [BufferValue(aval, buf)]
    return _contraction(lw, buf, aval, contract, product, "dot")


def _stores_permuted(lw: Lowerer, eqn) -> bool:
    """Whether ``_dot_general`` computes this product with the GEMM templates, which can store
    its result transposed (``transpose_fold``)."""
    lhs, rhs = (v.aval for v in eqn.invars)
    (lc, _), _ = eqn.params["dimension_numbers"]
    floats = {ir_dtype(a.dtype) for a in (lhs, rhs, eqn.outvars[0].aval)}
    return (lw.target == "cpu" and len(floats) == 1 and K.is_float(floats.pop()) and lhs.size > 0 and rhs.size > 0
            and math.prod(lhs.shape[d] for d in lc) > 1)


lowering_rules[contraction.dot_general_p] = _dot_general
schedule.jaxpr_rewrites.append(lambda lw, jaxpr: fold_transposed_products(jaxpr, lambda eqn: _stores_permuted(lw, eqn)))


def _conv(lw, eqn, ins):
    lhs, rhs = ins
    p = eqn.params
    dn = p["dimension_numbers"]
    lhs_spec, rhs_spec, out_spec = dn.lhs_spec, dn.rhs_spec, dn.out_spec
    out_aval = _out_aval(eqn)
    nsp = len(lhs_spec) - 2
    batch_groups = p["batch_group_count"]
    groups = p["feature_group_count"] * batch_groups   # at most one of the two is > 1
    images = out_aval.shape[out_spec[0]]
    out_feat = rhs.aval.shape[rhs_spec[0]]
    in_feat_per_group = rhs.aval.shape[rhs_spec[1]]
    window = [rhs.aval.shape[d] for d in rhs_spec[2:]]
    in_sizes = [lhs.aval.shape[d] for d in lhs_spec[2:]]
    dtype = ir_dtype(out_aval.dtype)
    # canonical output order (N, O, spatial...), then a lazy transpose to out_spec
    canon_shape = (out_aval.shape[out_spec[0]], out_aval.shape[out_spec[1]],
                   *[out_aval.shape[d] for d in out_spec[2:]])

    def product(kb, o, k):
        n, f, sp = o[0], o[1], o[2:]
        c, taps = k[0], k[1:]
        group = K.floordiv(f, K.Const(out_feat // groups, K.INDEX)) if groups > 1 else None
        li: list = [None] * lhs.aval.ndim
        if batch_groups > 1:   # the group picks the images; every input feature is read
            li[lhs_spec[0]], li[lhs_spec[1]] = group * images + n, c
        else:
            li[lhs_spec[0]], li[lhs_spec[1]] = n, c if group is None else group * in_feat_per_group + c
        masks = []
        for j in range(nsp):
            pos = sp[j] * p["window_strides"][j] + taps[j] * p["rhs_dilation"][j] - p["padding"][j][0]
            dil = p["lhs_dilation"][j]
            if dil > 1:
                masks.append(K.eq(K.op("mod", pos, K.Const(dil, K.INDEX)), K.Const(0, K.INDEX)))
                pos = K.floordiv(pos, K.Const(dil, K.INDEX))
            masks.append(_in_range(pos, in_sizes[j]))
            li[lhs_spec[2 + j]] = pos
        ri: list = [None] * rhs.aval.ndim
        ri[rhs_spec[0]], ri[rhs_spec[1]] = f, c
        for j in range(nsp):
            ri[rhs_spec[2 + j]] = taps[j]
        needs_mask = any(pd != (0, 0) for pd in p["padding"]) or any(d > 1 for d in p["lhs_dilation"])
        lhs_value = (_masked_read(kb, lhs, li, K.logical_and(*masks), K.Const(0, ir_dtype(lhs.aval.dtype)))
                     if needs_mask else lhs.read(kb, li))
        return K.cast(lhs_value, dtype) * K.cast(rhs.read(kb, ri), dtype)

    if lw.target == "cpu" and _few_positions_long_window(p, out_aval, out_spec, window, groups):
        return [_conv_few_positions(lw, eqn, lhs, rhs, out_aval, lhs_spec, rhs_spec, out_spec, dtype)]
    if _use_templates(lw, lhs, rhs) and ir_dtype(lhs.aval.dtype) == ir_dtype(rhs.aval.dtype) == dtype:
        return [_conv_template(lw, eqn, lhs, rhs, out_aval, tuple(lhs_spec), tuple(rhs_spec), tuple(out_spec))]
    canon_aval = ShapedArray(canon_shape, out_aval.dtype)
    sizes = [in_feat_per_group, *window]
    if tuple(out_spec) == tuple(range(len(out_spec))):
        return _contraction(lw, lw.output_buffer(eqn.outvars[0], out_aval), out_aval, sizes, product, "conv")
    (canon,) = _contraction(lw, lw.new_buffer(canon_aval), canon_aval, sizes, product, "conv")

    def index_map(idx):
        canon_idx: list = [None] * len(out_spec)
        canon_idx[0], canon_idx[1] = idx[out_spec[0]], idx[out_spec[1]]
        for j, d in enumerate(out_spec[2:]):
            canon_idx[2 + j] = idx[d]
        return canon_idx
    return [LazyValue(out_aval, lambda kb, idx: canon.read(kb, index_map(idx)), 0)]


FEW_POSITIONS, LONG_WINDOW, FEW_OUTPUTS = 16, 64, 1024


def _few_positions_long_window(p: dict, out_aval: ShapedArray, out_spec, window: Sequence[int], groups: int) -> bool:
    """A conv with a handful of output positions per (image, feature) and a long window: the
    weight gradient of a small-kernel conv with few input channels (MNIST's conv1: 3x3
    positions, a 26x26 "window", K = 128 x 676). A GEMM would pack its whole K x N operand
    to use each element nine times; a direct loop reads it once."""
    positions = math.prod(out_aval.shape[d] for d in out_spec[2:])
    return (groups == 1 and 0 < positions <= FEW_POSITIONS and math.prod(window) >= LONG_WINDOW
            and 0 < out_aval.size <= FEW_OUTPUTS and all(d == 1 for d in p["lhs_dilation"]))


def _conv_few_positions(lw: Lowerer, eqn, lhs: Value, rhs: Value, out_aval: ShapedArray,
                        lhs_spec, rhs_spec, out_spec, dtype) -> Value:
    """``out[n, f, pos] = sum_{c, t} lhs[n, c, pos*s + t*d - lo] * rhs[f, c, t]``: parallel over
    features, one accumulator per output position, vectorised along the window's last dim
    (contiguous in both operands when the window dilation is 1)."""
    p = eqn.params
    buf = lw.output_buffer(eqn.outvars[0], out_aval)
    kb = KernelBuilder()
    out = kb.param(buf)
    n_img, n_feat = out_aval.shape[out_spec[0]], out_aval.shape[out_spec[1]]
    out_sp = [out_aval.shape[d] for d in out_spec[2:]]
    window = [rhs.aval.shape[d] for d in rhs_spec[2:]]
    in_sp = [lhs.aval.shape[d] for d in lhs_spec[2:]]
    channels = rhs.aval.shape[rhs_spec[1]]
    f, n, c = kb.var("f"), kb.var("n"), kb.var("c")
    taps = [kb.var("t") for _ in window]
    acc = K.Local(f"acc_{f.name}", dtype, math.prod(out_sp))
    ri: list = [None] * rhs.aval.ndim
    ri[rhs_spec[0]], ri[rhs_spec[1]] = f, c
    for d, t in zip(rhs_spec[2:], taps):
        ri[d] = t
    weight = K.cast(rhs.read(kb, ri), dtype)
    updates = []
    for slot, pos in enumerate(np.ndindex(*out_sp)):
        li: list = [None] * lhs.aval.ndim
        li[lhs_spec[0]], li[lhs_spec[1]] = n, c
        masks = []
        for j, (d, t) in enumerate(zip(lhs_spec[2:], taps)):
            coord = t * p["rhs_dilation"][j] + (pos[j] * p["window_strides"][j] - p["padding"][j][0])
            if p["padding"][j] != (0, 0):
                masks.append(_in_range(coord, in_sp[j]))
            li[d] = coord
        value = (_masked_read(kb, lhs, li, K.logical_and(*masks), K.Const(0, ir_dtype(lhs.aval.dtype)))
                 if masks else lhs.read(kb, li))
        updates.append(acc.accumulate(slot, "add", K.cast(value, dtype) * weight))
    inner = updates
    for depth in range(len(window) - 1, -1, -1):
        inner = [K.Range(taps[depth], 0, window[depth], inner,
                         vectorize=K.AUTO if depth == len(window) - 1 and window[depth] > 1 else 0)]
    stores = []
    for slot, pos in enumerate(np.ndindex(*out_sp)):
        oi: list = [None] * out_aval.ndim
        oi[out_spec[0]], oi[out_spec[1]] = n, f
        for d, q in zip(out_spec[2:], pos):
            oi[d] = K.Const(q, K.INDEX)
        stores.append(out.store(ravel(oi, out_aval.shape), acc[slot]))
    per_image = [K.DefineLocal(acc, K.Const(0, dtype)), K.Range(c, 0, channels, inner), *stores]
    work = out_aval.size * channels * math.prod(window)
    body = [K.Range(f, 0, n_feat, [K.Range(n, 0, n_img, per_image)],
                    parallel=work >= PARALLEL_MIN_WORK and n_feat > 1)]
    lw.emit(kb, "conv_direct", body, flops=2 * work)
    return BufferValue(out_aval, buf)


PARALLEL_MIN_WORK = 1 << 16


FEATURE_MAJOR_MAX_POSITIONS = 64    # measured on the MNIST convs: folding 121 or 169 positions loses


def _conv_template(lw: Lowerer, eqn, lhs: Value, rhs: Value, out_aval: ShapedArray,
                   lhs_spec: tuple, rhs_spec: tuple, out_spec: tuple) -> Value:
    """The conv as a packed GEMM (``convolution.conv``).

    With few output positions per image (a weight gradient: 3x3 "positions", the input
    channels as "images") the GEMM is wide only when the images fold into its columns,
    which needs each image's positions contiguous next to the other images'. When the
    output's layout keeps features between them, the result is computed feature-major
    into a temporary and read back through a lazy transpose (a few KiB; copied into the
    output buffer when the result is a program output, as a weight gradient is in a
    data-parallel stage that all-reduces it next: computed in place there, the GEMM took
    2.6x as long)."""
    p = eqn.params
    spatial = math.prod(out_aval.shape[d] for d in out_spec[2:])
    images, features = out_aval.shape[out_spec[0]], out_aval.shape[out_spec[1]]
    target = lw.targets.get(eqn.outvars[0])
    feature_major = (images > 1 and features > 1 and spatial < FEATURE_MAJOR_MAX_POSITIONS
                     and not _images_fold(out_aval.shape, out_spec, spatial))
    lhs_source, rhs_source = _source(_stored_if_costly(lw, lhs)), _source(_stored_if_costly(lw, rhs))

    def emit(buf: K.Buffer, spec: tuple, epilogue=None, grid_output: bool = False) -> None:
        epi, epi_buffers = _template_epilogue(epilogue, out_aval)
        plan = convolution.conv(f"conv{next(lw.names)}", lhs_source, rhs_source, buf,
                              window_strides=p["window_strides"], padding=p["padding"],
                              lhs_dilation=p["lhs_dilation"], rhs_dilation=p["rhs_dilation"],
                              dimension_numbers=(lhs_spec, rhs_spec, spec),
                              feature_group_count=p["feature_group_count"],
                              batch_group_count=p["batch_group_count"], epilogue=epi,
                              epilogue_buffers=epi_buffers, grid_output=grid_output, **_template_options(lw))
        lw.steps.extend(plan.steps)

    if feature_major:
        phys_dims = (out_spec[1], out_spec[0], *out_spec[2:])
        phys_aval = ShapedArray(tuple(out_aval.shape[d] for d in phys_dims), out_aval.dtype)
        physical = BufferValue(phys_aval, lw.new_buffer(phys_aval))
        emit(physical.buffer, (1, 0, *range(2, len(out_spec))))
        return LazyValue(out_aval, lambda kb, idx: physical.read(kb, [idx[d] for d in phys_dims]), 0)
    if target is not None:
        emit(target, out_spec)
        return BufferValue(out_aval, target)

    def deferred(epilogue, into):
        buf = into if into is not None else lw.new_buffer(out_aval)
        emit(buf, out_spec, epilogue)
        return BufferValue(out_aval, buf)
    grid = convolution.shifted_grid(lhs.aval.shape, rhs.aval.shape, window_strides=p["window_strides"],
                                  padding=p["padding"], lhs_dilation=p["lhs_dilation"],
                                  rhs_dilation=p["rhs_dilation"], dimension_numbers=(lhs_spec, rhs_spec, out_spec),
                                  feature_group_count=p["feature_group_count"],
                                  batch_group_count=p["batch_group_count"])
    if grid is None or grid == tuple(out_aval.shape[d] for d in out_spec[2:]):
        return DeferredValue(out_aval, deferred)
    grid_aval = ShapedArray((images, features, *grid), out_aval.dtype)

    def on_grid(epilogue):
        """The shifted GEMM's own layout, each row as wide as the padded input's: its stores stay
        contiguous, and readers take the first output-width columns of each row."""
        held = BufferValue(grid_aval, lw.new_buffer(grid_aval))
        emit(held.buffer, tuple(range(len(out_spec))), _natural_order(epilogue, out_spec), grid_output=True)
        return LazyValue(out_aval, lambda kb, idx: held.read(kb, [idx[d] for d in out_spec]), 0)
    return DeferredValue(out_aval, deferred, on_grid, lw.materialize)


def _natural_order(epilogue, out_spec: Sequence[int]):
    """An epilogue taking output coordinates in ``out_spec``'s order, taking them in (images,
    features, spatial...) order instead."""
    if epilogue is None:
        return None

    def reordered(kb, value, natural):
        idx: list = [None] * len(out_spec)
        for k, d in enumerate(out_spec):
            idx[d] = natural[k]
        return epilogue(kb, value, idx)
    return reordered


def _template_epilogue(epilogue, aval: ShapedArray):
    """A deferred value's ``epilogue(kb, value, idx)`` in the templates' terms: a function of
    (value, output coordinates) reading params named after their buffers, and those buffers."""
    if epilogue is None:
        return None, ()
    probe = _NamedKernelBuilder()
    epilogue(probe, K.Const(0, ir_dtype(aval.dtype)), [K.Var(f"probe{d}") for d in range(aval.ndim)])
    buffers = tuple(b for b, _ in probe.params.values())
    return (lambda value, coords: epilogue(_NamedKernelBuilder(), value, [K.cast(c, K.INDEX) for c in coords])), \
        buffers


def _images_fold(shape: Sequence[int], out_spec: Sequence[int], spatial: int) -> bool:
    """Whether a conv output in ``shape`` keeps each image's positions contiguous, one image
    after the other (``convolution.conv`` then folds images into the GEMM's columns)."""
    strides = row_major_strides(shape)
    return strides[out_spec[0]] == spatial and \
        tuple(strides[d] for d in out_spec[2:]) == row_major_strides([shape[d] for d in out_spec[2:]])


lowering_rules[contraction.conv_general_dilated_p] = _conv


# --- calls and decompositions ----------------------------------------------------------------

def _inline(lw: Lowerer, closed: ClosedJaxpr, ins: Sequence[Value]) -> list[Value]:
    consts = [lw.constant(v.aval, np.asarray(c)) for v, c in zip(closed.jaxpr.constvars, closed.consts)]
    j = closed.jaxpr
    flat = Jaxpr([], [*j.constvars, *j.invars], j.eqns, j.outvars)
    return lw.lower(flat, [*consts, *ins])


def _call(param: str) -> Callable:
    def rule(lw, eqn, ins):
        return _inline(lw, eqn.params[param], ins)
    return rule


lowering_rules[call.jit_p] = _call("jaxpr")
lowering_rules[call.remat_p] = _call("jaxpr")
lowering_rules[custom.custom_jvp_call_p] = _call("call")
lowering_rules[custom.custom_vjp_call_p] = _call("call")
lowering_rules[linear_solve.linear_solve_p] = _call("call")
runs_own_programs.add(shard_p)      # per-device programs split at the collectives (transforms.shard)


def _threefry2x32(lw: Lowerer, eqn, ins):
    """One kernel for the whole cipher: every word operation's result goes to a register
    (a local slot), so the 20 rounds stay short statements rather than one huge expression
    or a kernel per round."""
    aval = _out_aval(eqn)
    shape = aval.shape
    bufs = [lw.output_buffer(v, aval) for v in eqn.outvars]
    kb = KernelBuilder()
    outs = [kb.param(b) for b in bufs]
    idx = [kb.var() for _ in shape]
    words = [v.read(kb, idx if v.aval.shape else []) for v in ins]
    registers = f"tf{next(lw.names)}"
    stmts: list = []

    def keep(expr: K.Expr) -> K.Expr:
        slot = K.Const(len(stmts), K.INDEX)
        stmts.append(K.LocalStore(registers, slot, expr))
        return K.LocalLoad(registers, slot, K.uint32)

    def word(x) -> K.Expr:
        return x if isinstance(x, K.Expr) else K.Const(int(x), K.uint32)

    def rotate_left(v: K.Expr, distance: int) -> K.Expr:
        return K.op("or", K.op("shl", v, K.Const(distance, K.uint32)), K.op("shr", v, K.Const(32 - distance, K.uint32)))

    y1, y2 = misc.threefry_rounds(*words, add=lambda a, b: keep(word(a) + word(b)),
                                  xor=lambda a, b: keep(K.op("xor", word(a), word(b))), rotate_left=rotate_left)
    flat = ravel(idx, shape) if shape else K.Const(0, K.INDEX)
    body = [K.DefineLocal(K.Local(registers, K.uint32, len(stmts))), *stmts,
            outs[0].store(flat, y1), outs[1].store(flat, y2)]
    if aval.size:
        lw.emit(kb, "threefry", loop_nest(idx, shape, body, aval.size * 16))
    return [BufferValue(aval, b) for b in bufs]


lowering_rules[misc.threefry2x32_p] = _threefry2x32


# --- control flow -----------------------------------------------------------------------------

def _scalar_buffer(lw: Lowerer, value: Value) -> K.Buffer:
    return lw.materialize(value).buffer


def _cond(lw: Lowerer, eqn, ins):
    index, operands = ins[0], [lw.materialize(v) for v in ins[1:]]
    outs = [lw.output_buffer(v, v.aval) for v in eqn.outvars]
    branches = []
    for branch in eqn.params["branches"]:
        sub = lw.child()
        _inline_into(sub, branch, operands, outs)
        branches.append(tuple(sub.steps))
    lw.steps.append(K.Switch(_scalar_buffer(lw, index), tuple(branches)))
    return [BufferValue(v.aval, b) for v, b in zip(eqn.outvars, outs)]


def _inline_into(lw: Lowerer, closed: ClosedJaxpr, ins: Sequence[Value], outs: Sequence[K.Buffer]) -> None:
    results = _inline(lw, closed, ins)
    for value, buf in zip(results, outs):
        if value.buffer is not buf:
            lw.materialize(value, into=buf)


def _carry_loop_parts(lw: Lowerer, init: Sequence[Value]) -> tuple[list[K.Buffer], list[K.Buffer]]:
    carry = [lw.new_buffer(v.aval, "carry") for v in init]
    for value, buf in zip(init, carry):
        lw.materialize(value, into=buf, overwritten=True)  # the loop writes over it
    fresh = [lw.new_buffer(v.aval, "next") for v in init]
    return carry, fresh


def _copy_steps(lw: Lowerer, srcs: Sequence[K.Buffer], dsts: Sequence[K.Buffer], avals) -> None:
    for src, dst, aval in zip(srcs, dsts, avals):
        lw.materialize(BufferValue(aval, src), into=dst)


def _while(lw: Lowerer, eqn, ins):
    p = eqn.params
    nc, nb = p["cond_nconsts"], p["body_nconsts"]
    cond_consts = [lw.materialize(v) for v in ins[:nc]]
    body_consts = [lw.materialize(v) for v in ins[nc:nc + nb]]
    init = ins[nc + nb:]
    carry, fresh = _carry_loop_parts(lw, init)
    carry_vals = [BufferValue(v.aval, b) for v, b in zip(init, carry)]
    pred = lw.new_buffer(p["cond_jaxpr"].out_avals[0], "pred")
    before = lw.child()
    _inline_into(before, p["cond_jaxpr"], [*cond_consts, *carry_vals], [pred])
    body = lw.child()
    _inline_into(body, p["body_jaxpr"], [*body_consts, *carry_vals], fresh)
    _copy_steps(body, fresh, carry, [v.aval for v in init])
    lw.steps.append(K.While(pred, tuple(before.steps), tuple(body.steps)))
    return [BufferValue(v.aval, b) for v, b in zip(eqn.outvars, carry)]


def _scan(lw: Lowerer, eqn, ins):
    p = eqn.params
    nconst, ncarry, length, reverse = p["num_consts"], p["num_carry"], p["length"], p["reverse"]
    consts = [lw.materialize(v) for v in ins[:nconst]]
    init, xs = ins[nconst:nconst + ncarry], [lw.materialize(v) for v in ins[nconst + ncarry:]]
    carry, fresh = _carry_loop_parts(lw, init)
    carry_vals = [BufferValue(v.aval, b) for v, b in zip(init, carry)]
    counter = K.Buffer(f"step{next(lw.names)}", K.INDEX, ())
    ys = [lw.output_buffer(v, v.aval) for v in eqn.outvars[ncarry:]]

    def position(kb):
        i = kb.param(counter)[0]
        return (length - 1 - i) if reverse else i

    x_vals = [LazyValue(ShapedArray(x.aval.shape[1:], x.aval.dtype),
                        lambda kb, idx, x=x: x.read(kb, [position(kb), *idx]), 1) for x in xs]
    body = lw.child()
    results = _inline(body, p["jaxpr"], [*consts, *carry_vals, *x_vals])
    for value, buf in zip(results[:ncarry], fresh):
        body.materialize(value, into=buf)
    for value, ybuf, yvar in zip(results[ncarry:], ys, eqn.outvars[ncarry:]):
        _write_row(body, ybuf, value, position)
    _copy_steps(body, fresh, carry, [v.aval for v in init])
    if length:
        lw.steps.append(K.Loop(length, tuple(body.steps), counter))
    return [*[BufferValue(v.aval, b) for v, b in zip(eqn.outvars[:ncarry], carry)],
            *[BufferValue(v.aval, b) for v, b in zip(eqn.outvars[ncarry:], ys)]]


def _write_row(lw: Lowerer, buf: K.Buffer, value: Value, position: Callable) -> None:
    """``buf[position] = value`` for one step's slice of a stacked output."""
    kb = KernelBuilder()
    out = kb.param(buf)
    shape = value.aval.shape
    idx = [kb.var() for _ in shape]
    row = position(kb)
    flat = ravel([row, *idx], buf.shape)
    body = [out.store(flat, K.cast(value.read(kb, idx), buf.dtype))]
    lw.emit(kb, "stack", loop_nest(idx, shape, body, value.aval.size))


lowering_rules[control.cond_p] = _cond
lowering_rules[control.while_p] = _while
lowering_rules[control.scan_p] = _scan


def lower_program(closed: ClosedJaxpr, name: str = "jit", target: LoweringTarget | str = "cpu",
                  precision: str | None = None, tunables: list | None = None) -> K.Program:
    """``schedule.lower_program`` with this module's rules: the entry point of the lowering
    (the compile path calls it; see ``schedule.lower_program`` for the arguments)."""
    return schedule.lower_program(closed, name, target, precision, tunables)
