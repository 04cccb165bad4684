"""Render kernel IR programs to LLVM IR with ``llvmlite.ir``.

A program becomes one module: an internal function per kernel (buffer params are
``noalias`` pointers) and one entry point ``fgrad_main(ptr args)`` whose ``args``
array holds the external buffers (inputs, outputs, constants) followed by the
arena for temporaries. Program loops, while loops and switches become native
control flow in ``fgrad_main``.

Inside a kernel
---------------
Every value is rendered in one of three forms: *uniform* (one scalar), *vector*
(one value per SIMD lane) or *affine* (an integer ``base + lane * stride`` kept
symbolic, so ``x[i * 4 + j]`` in a loop vectorised over ``j`` is one contiguous
vector load while over ``i`` it is a strided gather). Expressions are rendered
once per scope (structural CSE); a store forgets what it may have changed.

``vectorize`` loops run a main loop of whole vectors (``unroll`` of them per
trip), then single vectors, then a scalar tail. ``Accumulate`` into a local
defined outside the loop becomes a per-lane partial reduction folded into the
local after the vector loops. ``FULL``-unrolled loops are emitted once per
iteration with the loop variable a constant, so locals indexed by unrolled
variables (register tiles) become SSA registers. Locals live in allocas that
LLVM promotes to registers; a local whose indices are not constants after
unrolling is a stack array instead.

Rendering is optimistic: a pattern the vector form cannot express (a branch on a
per-lane value, a loop bound that varies per lane, ...) raises ``_Unsupported``
and the kernel is rendered again with that loop scalar (or that local as an
array). So annotations never change results, only speed.

``exp``/``log``/``tanh``/... are expanded by ``fgrad.lower.mathlib`` into
polynomials that vectorise; ``sin``/``cos`` of huge arguments and ``pow``/``rem``
of floats call the C library per lane.

Parallel loops
--------------
A ``parallel`` loop is outlined into a function over an iteration range. At run
time its trip count and estimated work decide the number of chunks (each at least
``PARALLEL_MIN_WORK`` estimated ops and a whole number of vectors; at most
``CHUNKS_PER_THREAD`` per thread); one chunk runs directly, several go to the CPU
backend's thread pool through ``fgrad_parallel(fn, ctx, nchunks, threads)``
(``fgrad.backends.threadpool``, which explains why it is not libgomp). Loops that
touch locals of the enclosing code stay serial.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Callable, Iterable

import llvmlite.ir as ir
import numpy as np

from fgrad.config import config
from fgrad.lower import mathlib
from fgrad.lower.interpret import apply_op
from fgrad.lower.kernel import (
    AUTO, FULL, Accumulate, Buffer, Call, Const, DefineLocal, Expr, If, Kernel, Load, Local,
    LocalLoad, LocalStore, Loop, MemoryPlan, Op, Program, Range, Store, Switch, Var, While,
    bool_, float16, float32, float64, is_float, kernels_of, plan_memory, stmt_exprs, walk_expr, wrap_int,
    walk_steps, walk_stmts,
)

I64 = ir.IntType(64)
I32 = ir.IntType(32)
I8 = ir.IntType(8)
I1 = ir.IntType(1)
PTR = ir.PointerType()
VOID = ir.VoidType()
PARALLEL_MIN_WORK = 1 << 14      # estimated scalar ops per chunk of a parallel loop, at least
CHUNKS_PER_THREAD = 4            # so a thread slowed down by other jobs holds up little work
ENTRY = "fgrad_main"


@dataclass(frozen=True)
class Target:
    """What code is generated for: LLVM triple, CPU name and features, SIMD width, threads."""

    triple: str
    cpu: str
    features: str
    vector_bytes: int
    num_threads: int = 1

    def key(self) -> str:
        return f"{self.triple}|{self.cpu}|{self.features}|{self.vector_bytes}|{self.num_threads}"


def vector_bytes_for(features: str) -> int:
    """The widest SIMD register, in bytes, that a feature string (``+avx2,...``) offers."""
    flags = set(features.split(","))
    if "+avx512f" in flags:
        return 64
    if "+avx" in flags or "+avx2" in flags:
        return 32
    return 16


def value_type(dtype: np.dtype) -> ir.Type:
    """The LLVM register type of a dtype (bool is i1)."""
    if dtype == bool_:
        return I1
    if dtype == float32:
        return ir.FloatType()
    if dtype == float16:
        return ir.HalfType()
    if dtype == float64:
        return ir.DoubleType()
    return ir.IntType(dtype.itemsize * 8)


def memory_type(dtype: np.dtype) -> ir.Type:
    """The LLVM in-memory type of a dtype (bool is one byte)."""
    return I8 if dtype == bool_ else value_type(dtype)


def _type_bytes(t: ir.Type) -> int:
    """Size of a scalar LLVM type in bytes (i1 counts as one)."""
    if isinstance(t, ir.FloatType):
        return 4
    if isinstance(t, ir.HalfType):
        return 2
    if isinstance(t, ir.DoubleType):
        return 8
    return max(t.width // 8, 1)


def _mangle(t: ir.Type) -> str:
    if isinstance(t, ir.VectorType):
        return f"v{t.count}{_mangle(t.element)}"
    if isinstance(t, ir.FloatType):
        return "f32"
    if isinstance(t, ir.HalfType):
        return "f16"
    if isinstance(t, ir.DoubleType):
        return "f64"
    if isinstance(t, ir.PointerType):
        return "p0"
    return f"i{t.width}"


class _Unsupported(Exception):
    """The vector/register form cannot express something; re-render without that hint."""

    def __init__(self, kind: str, key: object, reason: str) -> None:
        super().__init__(reason)
        self.kind, self.key, self.reason = kind, key, reason


# --- rendered values --------------------------------------------------------------------

MAX_DEINTERLEAVE_STRIDE = 4     # strided lanes up to this stride load contiguously + shuffle


class Val:
    """A rendered expression: uniform scalar ('u'), per-lane vector ('v') or affine integer ('a').

    ``align``: for 'a', a known divisor of the base (0: unknown). ``pattern``: for an integer
    'v', an optional ``(base, stride, div)`` saying lane k is ``base + stride * (k // div)``
    (what ``(i // 2) * 2`` makes of a loop index): loads at such indices need only
    ``w / div`` distinct elements, fetched contiguously and shuffled rather than gathered.
    Both are hints; the value itself is always complete."""

    __slots__ = ("kind", "value", "stride", "align", "pattern")

    def __init__(self, kind: str, value: ir.Value, stride: int = 0, align: int = 0,
                 pattern: tuple | None = None) -> None:
        self.kind, self.value, self.stride = kind, value, stride
        self.align, self.pattern = align, pattern

    @property
    def uniform(self) -> bool:
        return self.kind == "u"


def _const_value(v: ir.Value):
    """The Python value of a scalar LLVM constant, else None."""
    if isinstance(v, ir.Constant) and not isinstance(v.type, ir.VectorType) \
            and isinstance(v.constant, (int, float, bool)):
        return v.constant
    return None


# --- module-level helpers ------------------------------------------------------------------

class ModuleContext:
    """The module being built, its target, and declarations shared by all kernels."""

    def __init__(self, target: Target, name: str = "fgrad") -> None:
        self.target = target
        self.module = ir.Module(name=name)
        self.module.triple = target.triple
        self._names: set[str] = set()

    def unique(self, name: str) -> str:
        base, n = name, 1
        while name in self._names or name in self.module.globals:
            name = f"{base}.{n}"
            n += 1
        self._names.add(name)
        return name

    def declare(self, name: str, ret: ir.Type, args: Iterable[ir.Type]) -> ir.Function:
        fn = self.module.globals.get(name)
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(ret, list(args)), name)
        return fn

    def intrinsic(self, base: str, ret: ir.Type, args: list[ir.Type],
                  overloads: Iterable[ir.Type]) -> ir.Function:
        name = base + "".join("." + _mangle(t) for t in overloads)
        return self.declare(name, ret, args)

    def discard(self, names: Iterable[str]) -> None:
        for name in names:
            self.module.globals.pop(name, None)


# --- op lowering on LLVM values (scalar or vector alike) --------------------------------------

class _Lowering:
    """Emits one scalar op on LLVM values; vectors of any width work the same way."""

    def __init__(self, mc: ModuleContext, builder: ir.IRBuilder) -> None:
        self.mc, self.b = mc, builder

    def const_like(self, like: ir.Value, value) -> ir.Constant:
        t = like.type
        if isinstance(t, ir.VectorType):
            return _splat_constant(ir.Constant(t.element, value), t.count)
        return ir.Constant(t, value)

    def call(self, base: str, args: list[ir.Value], ret: ir.Type | None = None) -> ir.Value:
        t = args[0].type
        ret = ret or t
        fn = self.mc.intrinsic(base, ret, [a.type for a in args], [t])
        return self.b.call(fn, args)

    def apply(self, name: str, args: list[ir.Value], dt: np.dtype, out: np.dtype) -> ir.Value:
        method = getattr(self, "op_" + name, None)
        if method is None:
            raise NotImplementedError(f"the LLVM renderer has no lowering for op {name}")
        return method(args, dt, out)

    # unary
    def op_neg(self, a, dt, out):
        return self.b.fneg(a[0]) if is_float(dt) else self.b.neg(a[0])

    def op_abs(self, a, dt, out):
        x = a[0]
        if is_float(dt):
            return self.call("llvm.fabs", [x])
        if dt.kind == "u":
            return x
        return self.b.select(self.b.icmp_signed("<", x, self.const_like(x, 0)), self.b.neg(x), x)

    def op_sign(self, a, dt, out):
        x, b = a[0], self.b
        one, zero = self.const_like(x, 1), self.const_like(x, 0)
        if is_float(dt):
            minus = self.const_like(x, -1.0)
            inner = b.select(b.fcmp_ordered("<", x, zero), minus, x)    # ±0 and NaN stay as they are
            return b.select(b.fcmp_ordered(">", x, zero), one, inner)
        if dt.kind == "u":
            return b.select(b.icmp_unsigned(">", x, zero), one, zero)
        inner = b.select(b.icmp_signed("<", x, zero), self.const_like(x, -1), zero)
        return b.select(b.icmp_signed(">", x, zero), one, inner)

    def op_sqrt(self, a, dt, out):
        return self.call("llvm.sqrt", a)

    def op_rsqrt(self, a, dt, out):
        return self.b.fdiv(self.const_like(a[0], 1.0), self.call("llvm.sqrt", a))

    def op_floor(self, a, dt, out):
        return self.call("llvm.floor", a)

    def op_ceil(self, a, dt, out):
        return self.call("llvm.ceil", a)

    def op_round(self, a, dt, out):
        return self.call("llvm.round", a)

    def op_round_even(self, a, dt, out):
        return self.call("llvm.roundeven", a)

    def op_is_finite(self, a, dt, out):
        return self.b.fcmp_ordered("<", self.call("llvm.fabs", a), self.const_like(a[0], math.inf))

    def op_not(self, a, dt, out):
        return self.b.xor(a[0], self.const_like(a[0], -1 if dt != bool_ else 1))

    def op_sin(self, a, dt, out):       # libm, for the slow lanes of mathlib.sin
        return self.call("llvm.sin", a)

    def op_cos(self, a, dt, out):
        return self.call("llvm.cos", a)

    # binary arithmetic
    def op_add(self, a, dt, out):
        return self.b.fadd(*a) if is_float(dt) else self.b.add(*a)

    def op_sub(self, a, dt, out):
        return self.b.fsub(*a) if is_float(dt) else self.b.sub(*a)

    def op_mul(self, a, dt, out):
        return self.b.fmul(*a) if is_float(dt) else self.b.mul(*a)

    def op_fma(self, a, dt, out):
        if is_float(dt):
            return self.call("llvm.fma", a)
        return self.b.add(self.b.mul(a[0], a[1]), a[2])

    def op_pow(self, a, dt, out):
        if is_float(dt):
            return self.call("llvm.pow", a)
        return self._int_pow(a, dt)

    def _int_pow(self, a, dt):
        """Square-and-multiply in a loop that runs while any lane has exponent bits left."""
        x, e0 = a
        b = self.b
        one, zero = self.const_like(x, 1), self.const_like(x, 0)
        pre = b.block
        header = b.append_basic_block("ipow.header")
        body = b.append_basic_block("ipow.body")
        done = b.append_basic_block("ipow.done")
        b.branch(header)
        b.position_at_end(header)
        result, base, e = b.phi(x.type), b.phi(x.type), b.phi(x.type)
        for phi, start in ((result, one), (base, x), (e, e0)):
            phi.add_incoming(start, pre)
        more = b.icmp_unsigned("!=", e, zero)
        if isinstance(more.type, ir.VectorType):
            fn = self.mc.intrinsic("llvm.vector.reduce.or", I1, [more.type], [more.type])
            more = b.call(fn, [more])
        b.cbranch(more, body, done)
        b.position_at_end(body)
        odd = b.icmp_unsigned("!=", b.and_(e, one), zero)
        result.add_incoming(b.select(odd, b.mul(result, base), result), body)
        base.add_incoming(b.mul(base, base), body)
        e.add_incoming(b.lshr(e, one), body)
        b.branch(header)
        b.position_at_end(done)
        if dt.kind == "u":
            return result
        minus_one = self.const_like(x, -1)
        odd_exp = b.icmp_unsigned("!=", b.and_(e0, one), zero)
        negative = b.select(b.icmp_signed("==", x, minus_one), b.select(odd_exp, minus_one, one), zero)
        negative = b.select(b.icmp_signed("==", x, one), one, negative)
        return b.select(b.icmp_signed("<", e0, zero), negative, result)

    def _int_div_parts(self, a, dt):
        """(x, safe divisor, b == 0, b == -1): the divisor never traps (0 or INT_MIN / -1)."""
        x, y = a
        b = self.b
        zero = b.icmp_unsigned("==", y, self.const_like(y, 0))
        bad = zero
        minus_one = None
        if dt.kind == "i":
            minus_one = b.icmp_signed("==", y, self.const_like(y, -1))
            bad = b.or_(zero, minus_one)
        safe = b.select(bad, self.const_like(y, 1), y)
        return x, safe, zero, minus_one

    def op_div(self, a, dt, out):
        if is_float(dt):
            return self.b.fdiv(*a)
        x, y, zero, minus_one = self._int_div_parts(a, dt)
        b = self.b
        q = b.sdiv(x, y) if dt.kind == "i" else b.udiv(x, y)
        if minus_one is not None:
            q = b.select(minus_one, b.neg(x), q)
        return b.select(zero, self.const_like(x, 0), q)

    def op_rem(self, a, dt, out):
        if is_float(dt):
            return self.b.frem(*a)
        x, y, zero, minus_one = self._int_div_parts(a, dt)
        b = self.b
        r = b.srem(x, y) if dt.kind == "i" else b.urem(x, y)
        bad = zero if minus_one is None else b.or_(zero, minus_one)
        return b.select(bad, self.const_like(x, 0), r)

    def op_floordiv(self, a, dt, out):
        x, y, zero, minus_one = self._int_div_parts(a, dt)
        b = self.b
        if dt.kind == "u":
            return b.select(zero, self.const_like(x, 0), b.udiv(x, y))
        q, r = b.sdiv(x, y), b.srem(x, y)
        c0 = self.const_like(x, 0)
        adjust = b.and_(b.icmp_signed("!=", r, c0),
                        b.xor(b.icmp_signed("<", r, c0), b.icmp_signed("<", y, c0)))
        q = b.select(adjust, b.sub(q, self.const_like(x, 1)), q)
        q = b.select(minus_one, b.neg(x), q)
        return b.select(zero, c0, q)

    def op_mod(self, a, dt, out):
        x, y, zero, minus_one = self._int_div_parts(a, dt)
        b = self.b
        c0 = self.const_like(x, 0)
        if dt.kind == "u":
            return b.select(zero, c0, b.urem(x, y))
        r = b.srem(x, y)
        adjust = b.and_(b.icmp_signed("!=", r, c0),
                        b.xor(b.icmp_signed("<", r, c0), b.icmp_signed("<", y, c0)))
        r = b.select(adjust, b.add(r, y), r)
        return b.select(b.or_(zero, minus_one), c0, r)

    def _minmax(self, a, dt, is_max: bool):
        x, y = a
        b = self.b
        if dt == bool_:
            return b.or_(x, y) if is_max else b.and_(x, y)
        if is_float(dt):
            keep = b.fcmp_ordered(">" if is_max else "<", x, y)
            keep = b.or_(keep, b.fcmp_unordered("uno", x, x))
            # equal operands: the bitwise and (max) / or (min) orders -0. below 0., as XLA
            bits = self._like(x, ir.IntType(dt.itemsize * 8))
            xi, yi = b.bitcast(x, bits), b.bitcast(y, bits)
            tie = b.bitcast(b.and_(xi, yi) if is_max else b.or_(xi, yi), x.type)
            return b.select(keep, x, b.select(b.fcmp_ordered("==", x, y), tie, y))
        cmp = b.icmp_signed if dt.kind == "i" else b.icmp_unsigned
        return b.select(cmp(">" if is_max else "<", x, y), x, y)

    def op_max(self, a, dt, out):
        return self._minmax(a, dt, True)

    def op_min(self, a, dt, out):
        return self._minmax(a, dt, False)

    def op_and(self, a, dt, out):
        return self.b.and_(*a)

    def op_or(self, a, dt, out):
        return self.b.or_(*a)

    def op_xor(self, a, dt, out):
        return self.b.xor(*a)

    def op_shl(self, a, dt, out):
        x, s = a
        b = self.b
        out_of_range = b.icmp_unsigned(">=", s, self.const_like(s, dt.itemsize * 8))
        shifted = b.shl(x, b.select(out_of_range, self.const_like(s, 0), s))
        return b.select(out_of_range, self.const_like(x, 0), shifted)

    def op_shr(self, a, dt, out):
        x, s = a
        b = self.b
        bits = dt.itemsize * 8
        out_of_range = b.icmp_unsigned(">=", s, self.const_like(s, bits))
        if dt.kind == "i":    # a too-large shift fills with the sign bit
            return b.ashr(x, b.select(out_of_range, self.const_like(s, bits - 1), s))
        shifted = b.lshr(x, b.select(out_of_range, self.const_like(s, 0), s))
        return b.select(out_of_range, self.const_like(x, 0), shifted)

    def _compare(self, sym: str, a, dt):
        if is_float(dt):
            if sym == "!=":
                return self.b.fcmp_unordered("!=", *a)
            return self.b.fcmp_ordered(sym, *a)
        if dt.kind == "i":
            return self.b.icmp_signed(sym, *a)
        return self.b.icmp_unsigned(sym, *a)

    def op_eq(self, a, dt, out): return self._compare("==", a, dt)
    def op_ne(self, a, dt, out): return self._compare("!=", a, dt)
    def op_lt(self, a, dt, out): return self._compare("<", a, dt)
    def op_le(self, a, dt, out): return self._compare("<=", a, dt)
    def op_gt(self, a, dt, out): return self._compare(">", a, dt)
    def op_ge(self, a, dt, out): return self._compare(">=", a, dt)

    def op_select(self, a, dt, out):
        return self.b.select(*a)

    def op_bitcast(self, a, dt, out):
        return self.b.bitcast(a[0], self._like(a[0], value_type(out)))

    def _like(self, like: ir.Value, element: ir.Type) -> ir.Type:
        t = like.type
        return ir.VectorType(element, t.count) if isinstance(t, ir.VectorType) else element

    def op_cast(self, a, src, dst):
        x, b = a[0], self.b
        to = self._like(x, value_type(dst))
        if dst == bool_:
            zero = self.const_like(x, 0.0 if is_float(src) else 0)
            return b.fcmp_unordered("!=", x, zero) if is_float(src) else b.icmp_unsigned("!=", x, zero)
        if src == bool_:
            return b.uitofp(x, to) if is_float(dst) else b.zext(x, to)
        if is_float(src) and is_float(dst):
            return b.fpext(x, to) if dst.itemsize > src.itemsize else b.fptrunc(x, to)
        if is_float(dst):
            return b.sitofp(x, to) if src.kind == "i" else b.uitofp(x, to)
        if is_float(src):
            name = "llvm.fptosi.sat" if dst.kind == "i" else "llvm.fptoui.sat"
            fn = self.mc.intrinsic(name, to, [x.type], [to, x.type])
            return b.call(fn, [x])
        if dst.itemsize == src.itemsize:
            return x
        if dst.itemsize < src.itemsize:
            return b.trunc(x, to)
        return b.sext(x, to) if src.kind == "i" else b.zext(x, to)


# --- kernel rendering -------------------------------------------------------------------------

@dataclass
class _VecCtx:
    """The vector loop being rendered: its lanes, and partial reductions of outer locals."""

    range: Range
    width: int
    init_block: ir.Block
    partials: dict
    mask: ir.Value | None = None        # the tail iteration's active lanes (<w x i1>)
    last_lane: ir.Value | None = None   # and the index of its last active lane (i32)


class _SlotLocal:
    """A local kept in registers: one alloca per constant index or per vector of lanes."""

    def __init__(self, r: "_KernelRenderer", local: Local, init: Val | None,
                 init_block: ir.Block | None, lanes: int) -> None:
        self.r, self.local, self.init, self.init_block = r, local, init, init_block
        self.lanes = lanes               # > 1: defined inside a vector loop, one value per lane
        self.slots: dict[tuple[int, int], ir.Value] = {}
        # per-lane partial sums of vector loops accumulating into slot i: (alloca, op); kept
        # across the loops around those vector loops, folded in only when the slot is read
        self.partials: dict[int, tuple[ir.Value, str]] = {}

    def add_partial(self, i: int, name: str, value: ir.Value) -> None:
        """Accumulate a vector ``value`` into slot ``i``'s per-lane partial (made on first use,
        reset to the identity where the local is defined)."""
        r, b = self.r, self.r.b
        entry = self.partials.get(i)
        if entry is not None and (entry[1] != name or entry[0].allocated_type != value.type):
            self.fold(i)
            entry = None
        if entry is None:
            vt = value.type
            partial = r.alloca(vt)
            init = ir.IRBuilder(self.init_block)
            init.position_before(self.init_block.terminator)
            identity = ir.Constant(vt, [_reduce_identity(name, self.local.dtype)] * vt.count)
            init.store(identity, partial)
            entry = self.partials[i] = (partial, name)
        current = Val("v", _load(b, entry[0]))
        b.store(r.combine(name, current, Val("v", value), self.local.dtype).value, entry[0])

    def fold(self, i: int) -> None:
        """Add slot ``i``'s pending partial into it and reset the partial (before reading it)."""
        entry = self.partials.get(i)
        if entry is None:
            return
        r, b = self.r, self.r.b
        partial, name = entry
        total = r.horizontal(name, _load(b, partial), self.local.dtype)
        slot = self._slot(i, 1)
        b.store(r.combine(name, Val("u", _load(b, slot)), Val("u", total), self.local.dtype).value, slot)
        identity = [_reduce_identity(name, self.local.dtype)] * partial.allocated_type.count
        b.store(ir.Constant(partial.allocated_type, identity), partial)

    def fold_all(self) -> None:
        for i in list(self.partials):
            self.fold(i)

    def _slot(self, start: int, width: int) -> ir.Value:
        key = (start, width)
        slot = self.slots.get(key)
        if slot is not None:
            return slot
        if not 0 <= start and start + width <= self.local.size:
            raise IndexError(f"local {self.local.name}[{start}] is out of bounds (size {self.local.size})")
        for (s, w) in self.slots:
            if s < start + width and start < s + w:
                raise _Unsupported("local", self.local.name, "mixed-width access to a register local")
        t = value_type(self.local.dtype)
        slot_type = ir.VectorType(t, width) if width > 1 else t
        slot = self.r.alloca(slot_type)
        self.slots[key] = slot
        if self.init is not None:
            b = ir.IRBuilder(self.init_block)
            b.position_before(self.init_block.terminator)
            value = self.init.value
            if width > 1 and not isinstance(value.type, ir.VectorType):
                value = _splat(b, value, width)
            b.store(value, slot)
        return slot

    def _covering(self, i: int) -> tuple[ir.Value, int] | None:
        for (s, w), slot in self.slots.items():
            if w > 1 and s <= i < s + w:
                return slot, i - s
        return None

    def load(self, index: Val) -> Val:
        b = self.r.b
        if self.lanes > 1:
            return Val("v", _load(b, self._slot(self._const(index), self.lanes)))
        self.fold_all()
        if index.kind == "u":
            i = self._const(index)
            cover = self._covering(i)
            if cover is not None:
                return Val("u", b.extract_element(_load(b, cover[0]), I32(cover[1])))
            return Val("u", _load(b, self._slot(i, 1)))
        start, width = self._vector_index(index)
        return Val("v", _load(b, self._slot(start, width)))

    def store(self, index: Val, value: Val) -> None:
        b, r = self.r.b, self.r
        if self.lanes > 1:
            b.store(r.vector(value, self.local.dtype), self._slot(self._const(index), self.lanes))
            return
        self.fold_all()
        if index.kind == "u":
            if not value.uniform:
                raise _Unsupported("loop", r.vec_key(), f"per-lane value stored to local "
                                   f"{self.local.name} at one index")
            i = self._const(index)
            cover = self._covering(i)
            if cover is not None:
                vec = b.insert_element(_load(b, cover[0]), value.value, I32(cover[1]))
                b.store(vec, cover[0])
            else:
                b.store(value.value, self._slot(i, 1))
            return
        start, width = self._vector_index(index)
        b.store(r.vector(value, self.local.dtype), self._slot(start, width))

    def accumulate(self, index: Val, name: str, value: Val) -> None:
        r = self.r
        if index.kind == "u" and self.lanes == 1 and r.vec is not None:
            r.accumulate_partial(self, self._const(index), name, value)
            return
        current = self.load(index)
        self.store(index, r.combine(name, current, value, self.local.dtype))

    def _const(self, index: Val) -> int:
        c = _const_value(index.value) if index.kind == "u" else None
        if c is None:
            raise _Unsupported("local", self.local.name, "index is not a constant after unrolling")
        return int(c)

    def _vector_index(self, index: Val) -> tuple[int, int]:
        c = _const_value(index.value) if index.kind == "a" else None
        if c is None or index.stride != 1:
            raise _Unsupported("local", self.local.name, "per-lane index is not base + lane")
        return int(c), self.r.vec.width


class _ArrayLocal:
    """A local as a stack array, for indices only known at run time."""

    def __init__(self, r: "_KernelRenderer", local: Local, init: Val | None) -> None:
        if r.vec is not None:
            raise _Unsupported("loop", r.vec_key(), f"array local {local.name} inside a vector loop")
        self.r, self.local = r, local
        self.elem = value_type(local.dtype)
        array = r.alloca(ir.ArrayType(self.elem, local.size))
        # an opaque pointer to element 0, so scalar and vector accesses both type-check
        self.base = r.b.inttoptr(r.b.ptrtoint(array, I64), PTR)
        if init is not None:
            r.counted_loop(I64(0), I64(local.size), 1, lambda n: r.b.store(init.value, self._ptr(n)))

    def _base(self) -> ir.Value:
        return self.base

    def _ptr(self, i: ir.Value) -> ir.Value:
        return _gep(self.r.b, self.base, [i], self.elem)

    def load(self, index: Val) -> Val:
        r = self.r
        if index.kind == "u":
            return Val("u", r.b.load(self._ptr(r.index64(index.value)), typ=self.elem))
        if index.kind == "a" and index.stride == 1:
            vt = ir.VectorType(self.elem, r.vec.width)
            return Val("v", r.b.load(self._ptr(r.index64(index.value)), typ=vt,
                                     align=self.local.dtype.itemsize))
        return Val("v", r.gather(self._base(), self.elem, index, None))

    def store(self, index: Val, value: Val) -> None:
        r = self.r
        if index.kind == "u":
            if not value.uniform:
                raise _Unsupported("loop", r.vec_key(), "per-lane value stored at one index")
            r.b.store(value.value, self._ptr(r.index64(index.value)))
        elif index.kind == "a" and index.stride == 1:
            r.b.store(r.vector(value, self.local.dtype), self._ptr(r.index64(index.value)),
                      align=self.local.dtype.itemsize)
        else:
            r.scatter(self._base(), self.elem, index, r.vector(value, self.local.dtype))

    def accumulate(self, index: Val, name: str, value: Val) -> None:
        r = self.r
        if r.vec is not None and index.kind != "a":
            raise _Unsupported("loop", r.vec_key(), "vector accumulate into a stack array")
        self.store(index, r.combine(name, self.load(index), value, self.local.dtype))


def _gep(b: ir.IRBuilder, ptr: ir.Value, indices: list, etype: ir.Type) -> ir.Value:
    """An inbounds GEP; llvmlite wants the element type only for opaque pointers."""
    if getattr(ptr.type, "is_opaque", True):
        return b.gep(ptr, indices, inbounds=True, source_etype=etype)
    return b.gep(ptr, indices, inbounds=True)


def _load(b: ir.IRBuilder, slot: ir.AllocaInstr) -> ir.Value:
    return b.load(slot, typ=slot.allocated_type)


def _splat_constant(value: ir.Constant, width: int) -> ir.Value:
    """``<width x T> splat (value)``, printed compactly (LLVM >= 19 syntax)."""
    vt = ir.VectorType(value.type, width)
    if value.constant in (0, 0.0, False) and not (isinstance(value.constant, float)
                                                  and math.copysign(1, value.constant) < 0):
        return ir.Constant(vt, None)
    splat = ir.FormattedConstant(I8, f"splat ({value})")
    splat.type = vt          # set afterwards: llvmlite would split the text of an aggregate
    return splat


def _splat(b: ir.IRBuilder, value: ir.Value, width: int) -> ir.Value:
    if isinstance(value, ir.Constant) and not isinstance(value.type, ir.VectorType):
        return _splat_constant(value, width)
    vt = ir.VectorType(value.type, width)
    v = b.insert_element(ir.Constant(vt, ir.Undefined), value, I32(0))
    return b.shuffle_vector(v, ir.Constant(vt, ir.Undefined), ir.Constant(ir.VectorType(I32, width),
                                                                          [0] * width))


_IDENTITY = {"add": 0, "mul": 1, "or": 0, "xor": 0}


def _reduce_identity(name: str, dtype: np.dtype):
    if name in _IDENTITY:
        v = _IDENTITY[name]
        return bool(v) if dtype == bool_ else (float(v) if is_float(dtype) else v)
    if name == "and":
        return True if dtype == bool_ else -1
    big = math.inf if is_float(dtype) else None
    if dtype == bool_:
        return name == "min"
    if big is None:
        info = np.iinfo(dtype)
        return int(info.min) if name == "max" else int(info.max)
    return -big if name == "max" else big


class _KernelRenderer:
    """Renders one kernel into an LLVM function (plus outlined parallel bodies)."""

    def __init__(self, mc: ModuleContext, kernel: Kernel, fn_name: str,
                 scalar_loops: set, array_locals: set, serial_loops: set, scalar_tails: set) -> None:
        self.mc, self.kernel = mc, kernel
        self.scalar_loops, self.array_locals, self.serial_loops = scalar_loops, array_locals, serial_loops
        self.scalar_tails = scalar_tails
        self.created: list[str] = []
        self.fn = self.new_function(fn_name, [PTR] * len(kernel.params))
        for p, arg in zip(kernel.params, self.fn.args):
            if p.name not in kernel.may_alias:
                arg.add_attribute("noalias")
        self.params = {p.name: (arg, p) for p, arg in zip(kernel.params, self.fn.args)}
        self.start_function(self.fn)
        self.in_parallel = False

    # -- function-level state
    def new_function(self, name: str, args: list[ir.Type]) -> ir.Function:
        fn = ir.Function(self.mc.module, ir.FunctionType(VOID, args), self.mc.unique(name))
        fn.linkage = "internal"
        self.created.append(fn.name)
        return fn

    def start_function(self, fn: ir.Function) -> None:
        entry = fn.append_basic_block("entry")
        self.alloca_builder = ir.IRBuilder(entry)
        body = fn.append_basic_block("body")
        self.alloca_builder.branch(body)
        self.alloca_builder.position_at_start(entry)
        self.b = ir.IRBuilder(body)
        self.low = _Lowering(self.mc, self.b)
        self.env: dict[str, Val] = {}
        self.locals: dict[str, object] = {}
        self.memo: list[dict[Expr, Val]] = [{}]
        self.vec: _VecCtx | None = None

    def save_state(self) -> tuple:
        return (self.alloca_builder, self.b, self.low, self.env, self.locals, self.memo, self.vec,
                self.params, self.in_parallel)

    def restore_state(self, state: tuple) -> None:
        (self.alloca_builder, self.b, self.low, self.env, self.locals, self.memo, self.vec,
         self.params, self.in_parallel) = state

    def alloca(self, t: ir.Type) -> ir.Value:
        return self.alloca_builder.alloca(t)

    def render(self) -> ir.Function:
        self.block(self.kernel.body)
        self.b.ret_void()
        return self.fn

    # -- memo (structural CSE within scopes)
    def push(self) -> None:
        self.memo.append({})

    def pop(self) -> None:
        self.memo.pop()

    def forget(self, name: str) -> None:
        for layer in self.memo:
            for e in [e for e in layer if name in e.reads]:
                del layer[e]

    # -- helpers on values
    def vec_key(self) -> object:
        return id(self.vec.range) if self.vec else None

    def width(self) -> int:
        return self.vec.width if self.vec else 1

    def vector(self, v: Val, dtype: np.dtype) -> ir.Value:
        """The per-lane LLVM value of ``v`` in the current vector loop."""
        if v.kind == "v":
            return v.value
        w = self.vec.width
        if v.kind == "u":
            return _splat(self.b, v.value, w)
        base = _splat(self.b, v.value, w)
        lanes = ir.Constant(ir.VectorType(v.value.type, w), [k * v.stride for k in range(w)])
        return self.b.add(base, lanes)

    def index64(self, v: ir.Value) -> ir.Value:
        if v.type == I64:
            return v
        c = _const_value(v)
        if c is not None:
            return I64(int(c))
        return self.b.sext(v, I64) if isinstance(v.type, ir.IntType) else v

    def element_ptr(self, param: str, index: ir.Value) -> ir.Value:
        ptr, p = self.params[param]
        return _gep(self.b, ptr, [self.index64(index)], memory_type(p.dtype))

    # -- expressions
    def emit(self, e: Expr) -> Val:
        for layer in reversed(self.memo):
            hit = layer.get(e)
            if hit is not None:
                return hit
        v = self._emit(e)
        self.memo[-1][e] = v
        return v

    def _emit(self, e: Expr) -> Val:
        if isinstance(e, Const):
            return Val("u", ir.Constant(value_type(e.dtype), e.value))
        if isinstance(e, Var):
            return self.env[e.name]
        if isinstance(e, Load):
            return self.emit_load(e)
        if isinstance(e, LocalLoad):
            return self.local(e.local).load(self.emit(e.index))
        return self.emit_op(e)

    def local(self, name: str):
        storage = self.locals.get(name)
        if storage is None:     # defined outside an outlined parallel body
            raise _Unsupported("parallel", self.parallel_key, f"local {name} used in a parallel loop")
        return storage

    def emit_load(self, e: Load) -> Val:
        index = self.emit(e.index)
        mask = self.emit(e.mask) if e.mask is not None else None
        p = self.params[e.param][1]
        if p.size == 0 and mask is not None:
            return Val("u", ir.Constant(value_type(e.dtype), 0))
        if index.uniform and (mask is None or mask.uniform):
            return Val("u", self.scalar_load(e, index.value, mask.value if mask else None))
        mask = self.tail_mask(mask)
        if index.kind == "a" and index.stride == 1:
            return Val("v", self.contiguous_load(e, index.value, mask))
        if index.kind == "a" and 2 <= index.stride <= MAX_DEINTERLEAVE_STRIDE:
            return Val("v", self.strided_load(e, index.value, index.stride, mask))
        if index.kind == "v" and index.pattern is not None and 1 <= index.pattern[1] <= MAX_DEINTERLEAVE_STRIDE:
            return Val("v", self.pattern_load(e, index.pattern, mask))
        vmask = self.vector(mask, bool_) if mask is not None else None
        raw = self.gather(self.params[e.param][0], memory_type(e.dtype), index, vmask)
        return Val("v", self.from_memory(raw, e.dtype))

    def scalar_load(self, e: Load, index: ir.Value, mask: ir.Value | None) -> ir.Value:
        b = self.b
        if mask is not None:
            index = b.select(mask, self.index64(index), I64(0))
        raw = b.load(self.element_ptr(e.param, index), typ=memory_type(e.dtype))
        value = self.from_memory(raw, e.dtype)
        if mask is not None:
            value = b.select(mask, value, ir.Constant(value.type, 0))
        return value

    def contiguous_load(self, e: Load, base: ir.Value, mask: Val | None) -> ir.Value:
        w, b = self.vec.width, self.b
        vt = ir.VectorType(memory_type(e.dtype), w)
        ptr = self.element_ptr(e.param, base)
        if mask is None:
            raw = b.load(ptr, typ=vt, align=e.dtype.itemsize)
        else:
            vmask = self.vector(mask, bool_)
            fn = self.mc.intrinsic("llvm.masked.load", vt, [PTR, I32, vmask.type, vt], [vt, PTR])
            raw = b.call(fn, [ptr, I32(e.dtype.itemsize), vmask, ir.Constant(vt, None)])
        return self.from_memory(raw, e.dtype)

    def strided_load(self, e: Load, base: ir.Value, stride: int, mask: Val | None) -> ir.Value:
        """Lanes ``base + k * stride`` as one masked load of ``w * stride`` contiguous elements
        (only every stride-th enabled, so nothing past the last lane is touched) and a
        shuffle picking them out: cheaper than a gather for window and strided-conv reads."""
        w, b = self.vec.width, self.b
        wide = w * stride
        vt = ir.VectorType(memory_type(e.dtype), wide)
        mt = ir.VectorType(I1, wide)
        picked = [k * stride for k in range(w)]
        if mask is None:
            wide_mask = ir.Constant(mt, [k % stride == 0 for k in range(wide)])
        else:
            lanes = self.vector(mask, bool_)
            none = ir.Constant(ir.VectorType(I1, w), [0] * w)
            spread = [k // stride if k % stride == 0 else w for k in range(wide)]
            wide_mask = b.shuffle_vector(lanes, none, ir.Constant(ir.VectorType(I32, wide), spread))
        fn = self.mc.intrinsic("llvm.masked.load", vt, [PTR, I32, mt, vt], [vt, PTR])
        raw = b.call(fn, [self.element_ptr(e.param, base), I32(e.dtype.itemsize), wide_mask, ir.Constant(vt, None)])
        lanes_out = b.shuffle_vector(raw, raw, ir.Constant(ir.VectorType(I32, w), picked))
        return self.from_memory(lanes_out, e.dtype)

    def pattern_load(self, e: Load, pattern: tuple, mask: Val | None) -> ir.Value:
        """Lanes ``min(base + stride * (k // div), clamp)``: the ``w / div`` distinct elements in
        one masked contiguous load (every stride-th enabled, none past ``clamp``), then a
        shuffle repeating each ``div`` times; lanes past ``clamp`` take its element. An element
        is fetched when any of its lanes is enabled."""
        base, stride, div, clamp = pattern
        w, b = self.vec.width, self.b
        distinct = w // div
        wide = distinct * stride
        vt = ir.VectorType(memory_type(e.dtype), wide)
        mt = ir.VectorType(I1, wide)
        if mask is None:
            wide_mask = ir.Constant(mt, [k % stride == 0 for k in range(wide)])
        else:
            lanes = self.vector(mask, bool_)
            group = None
            for d in range(div):
                pick = b.shuffle_vector(lanes, lanes, ir.Constant(ir.VectorType(I32, distinct),
                                                                  [j * div + d for j in range(distinct)]))
                group = pick if group is None else b.or_(group, pick)
            none = ir.Constant(ir.VectorType(I1, distinct), [0] * distinct)
            spread = [k // stride if k % stride == 0 else distinct for k in range(wide)]
            wide_mask = b.shuffle_vector(group, none, ir.Constant(ir.VectorType(I32, wide), spread))
        if clamp is not None:       # offsets k*stride (k % stride == 0) up to clamp - base
            room = b.sub(self.index64(clamp), self.index64(base))
            offsets = ir.Constant(ir.VectorType(I64, wide), list(range(wide)))
            wide_mask = b.and_(wide_mask, b.icmp_signed("<=", offsets, _splat(b, room, wide)))
        fn = self.mc.intrinsic("llvm.masked.load", vt, [PTR, I32, mt, vt], [vt, PTR])
        raw = b.call(fn, [self.element_ptr(e.param, base), I32(e.dtype.itemsize), wide_mask, ir.Constant(vt, None)])
        picked = [(k // div) * stride for k in range(w)]
        value = b.shuffle_vector(raw, raw, ir.Constant(ir.VectorType(I32, w), picked))
        if clamp is not None:
            edge = b.load(self.element_ptr(e.param, clamp), typ=memory_type(e.dtype))
            lane_offsets = ir.Constant(ir.VectorType(I64, w), picked)
            past = b.icmp_signed(">", lane_offsets, _splat(b, room, w))
            value = b.select(past, _splat(b, edge, w), value)
        if mask is not None:        # a lane whose group was fetched for another lane still reads 0
            value = b.select(lanes, value, ir.Constant(value.type, None))
        return self.from_memory(value, e.dtype)

    def gather(self, base: ir.Value, elem: ir.Type, index: Val, mask: ir.Value | None) -> ir.Value:
        """A SIMD gather from ``base[index]`` (masked-off lanes yield 0 and touch no memory)."""
        w = self.vec.width
        ptrs = self.lane_pointers(base, elem, index)
        vt = ir.VectorType(elem, w)
        mask = mask if mask is not None else ir.Constant(ir.VectorType(I1, w), [1] * w)
        fn = self.mc.intrinsic("llvm.masked.gather", vt, [ptrs.type, I32, mask.type, vt], [vt, ptrs.type])
        return self.b.call(fn, [ptrs, I32(_type_bytes(elem)), mask,
                                ir.Constant(vt, None)])

    def scatter(self, base: ir.Value, elem: ir.Type, index: Val, value: ir.Value,
                mask: ir.Value | None = None) -> None:
        """A SIMD scatter to ``base[index]``; lanes are stored in order, so the last lane wins."""
        w = self.vec.width
        ptrs = self.lane_pointers(base, elem, index)
        mask = mask if mask is not None else ir.Constant(ir.VectorType(I1, w), [1] * w)
        fn = self.mc.intrinsic("llvm.masked.scatter", VOID, [value.type, ptrs.type, I32, mask.type],
                               [value.type, ptrs.type])
        self.b.call(fn, [value, ptrs, I32(_type_bytes(elem)), mask])

    def lane_pointers(self, base: ir.Value, elem: ir.Type, index: Val) -> ir.Value:
        """``<w x ptr>`` to base[index[k]] (a vector GEP; 32-bit indices stay 32-bit)."""
        idx = self.vector(index, None)
        g = self.b.gep(base, [idx], inbounds=True, source_etype=elem)
        g.type = ir.VectorType(PTR, self.vec.width)     # llvmlite types vector GEPs as scalar ptr
        return g

    def from_memory(self, raw: ir.Value, dtype: np.dtype) -> ir.Value:
        if dtype != bool_:
            return raw
        return self.b.icmp_unsigned("!=", raw, self.low.const_like(raw, 0))

    def to_memory(self, value: ir.Value, dtype: np.dtype) -> ir.Value:
        if dtype != bool_:
            return value
        t = value.type
        to = ir.VectorType(I8, t.count) if isinstance(t, ir.VectorType) else I8
        return self.b.zext(value, to)

    def emit_op(self, e: Op) -> Val:
        name, arg_dtype = e.op, e.args[0].dtype if e.op != "select" else e.args[1].dtype
        if name in mathlib.EXPANDED and is_float(arg_dtype):
            if name in ("sin", "cos"):
                return self.emit_sin_cos(e)
            return self.emit(mathlib.expand(name, e.args))
        args = [self.emit(a) for a in e.args]
        if all(a.uniform for a in args):
            return Val("u", self.scalar_op(e, [a.value for a in args], arg_dtype))
        affine = self.affine_op(e, args)
        if affine is not None:
            return affine
        pattern = self.lane_pattern(e, args)
        if isinstance(pattern, Val):
            return pattern
        values = [self.vector(a, x.dtype) for a, x in zip(args, e.args)]
        return Val("v", self.low.apply(name, values, arg_dtype, e.dtype), pattern=pattern)

    def lane_pattern(self, e: Op, args: list[Val]):
        """For integer index arithmetic: the ``pattern`` of the result (see ``Val``), a whole
        Val when the result is a per-lane constant (``i % c`` of an aligned loop index), or
        None."""
        if e.dtype.kind not in "iu" or self.vec is None:
            return None
        w, name = self.vec.width, e.op
        if name in ("floordiv", "mod") and args[0].kind == "a" and args[0].stride == 1 and args[1].uniform:
            c = _const_value(args[1].value)
            if c is None or c <= 0 or w % int(c) or not args[0].align or args[0].align % int(c):
                return None
            c = int(c)
            if name == "mod":       # the base is a multiple of c: lane k gives k % c
                return Val("v", ir.Constant(ir.VectorType(value_type(e.dtype), w), [k % c for k in range(w)]))
            base = self.b.sdiv(args[0].value, ir.Constant(args[0].value.type, c))   # exact
            return (base, 1, c, None)
        patterned = [a for a in args if a.pattern is not None]
        if len(patterned) != 1 or name not in ("add", "sub", "mul", "cast", "min"):
            return None
        base, stride, div, clamp = patterned[0].pattern
        if name == "cast":
            cast = lambda v: None if v is None else self.fold_or_apply("cast", [v], [e.args[0].dtype], e.dtype)
            return (cast(base), stride, div, cast(clamp))
        other = args[1] if args[0] is patterned[0] else args[0]
        if not other.uniform:
            return None
        apply = lambda op, v: None if v is None else self.fold_or_apply(op, [v, other.value], [e.dtype] * 2, e.dtype)
        if name == "min":           # min(pattern, u): the lanes past u read u's element
            if clamp is not None or stride < 0:
                return None
            return (base, stride, div, other.value)
        if name == "mul":
            c = _const_value(other.value)
            if c is None or (clamp is not None and c < 0):
                return None
            return (apply("mul", base), stride * int(c), div, apply("mul", clamp))
        if name == "sub" and args[1] is patterned[0]:
            return None
        return (apply(name, base), stride, div, apply(name, clamp))

    def scalar_op(self, e: Op, values: list[ir.Value], arg_dtype: np.dtype) -> ir.Value:
        return self.fold_or_apply(e.op, values, [a.dtype for a in e.args], e.dtype)

    def fold_or_apply(self, name: str, values: list[ir.Value], arg_dtypes: list[np.dtype],
                      dtype: np.dtype) -> ir.Value:
        """The op on scalars; computed here (with the interpreter's semantics) when all are constants."""
        consts = [_const_value(v) for v in values]
        if all(c is not None for c in consts) and name not in ("sin", "cos"):
            fast = _fold_index_op(name, consts, dtype)
            if fast is not None:
                return ir.Constant(value_type(dtype), fast)
            scalars = [d.type(c) for d, c in zip(arg_dtypes, consts)]
            folded = apply_op(name, scalars, dtype)
            return ir.Constant(value_type(dtype), _python_value(folded, dtype))
        arg_dtype = arg_dtypes[1] if name == "select" else arg_dtypes[0]
        return self.low.apply(name, values, arg_dtype, dtype)

    def affine_op(self, e: Op, args: list[Val]) -> Val | None:
        """Keep integer index arithmetic on affine values symbolic (base + lane * stride)."""
        if not e.dtype.kind in "iu" or any(a.kind == "v" for a in args):
            return None
        name = e.op
        if name in ("add", "sub"):
            a, b = args
            sa, sb = a.stride if a.kind == "a" else 0, b.stride if b.kind == "a" else 0
            base = self.fold_or_apply(name, [a.value, b.value], [e.dtype] * 2, e.dtype)
            stride = sa + sb if name == "add" else sa - sb
            return Val("a", base, stride) if stride else Val("u", base)
        if name == "mul":
            if args[0].kind == args[1].kind:
                return None
            a, b = args if args[0].kind == "a" else (args[1], args[0])
            c = _const_value(b.value)
            if c is None:
                return None
            base = self.fold_or_apply("mul", [a.value, b.value], [e.dtype] * 2, e.dtype)
            return Val("a", base, a.stride * int(c)) if c else Val("u", base)
        if name == "neg":
            base = self.fold_or_apply("neg", [args[0].value], [e.dtype], e.dtype)
            return Val("a", base, -args[0].stride)
        if name == "cast" and e.args[0].dtype.kind in "iu":
            base = self.fold_or_apply("cast", [args[0].value], [e.args[0].dtype], e.dtype)
            return Val("a", base, args[0].stride)
        return None

    def emit_sin_cos(self, e: Op) -> Val:
        """The polynomial on normal arguments; C library calls when any lane is huge."""
        x = e.args[0]
        arg = self.emit(x)
        ok = self.emit(mathlib.fast_sin_cos_ok(x))
        b = self.b
        all_ok = ok.value
        if not ok.uniform:
            all_ok = self.reduce_bool_and(ok.value)
        fast_block = b.append_basic_block("trig.fast")
        slow_block = b.append_basic_block("trig.slow")
        merge = b.append_basic_block("trig.done")
        b.cbranch(all_ok, fast_block, slow_block)
        b.position_at_end(fast_block)
        self.push()
        fast = self.emit(mathlib.expand(e.op, (x,)))
        self.pop()
        uniform = arg.uniform and fast.uniform
        fast_value = fast.value if uniform else self.vector(fast, e.dtype)
        fast_end = b.block
        b.branch(merge)
        b.position_at_end(slow_block)
        slow_arg = arg.value if uniform else self.vector(arg, e.dtype)
        slow_value = self.per_lane_call(e.op, slow_arg)
        slow_end = b.block
        b.branch(merge)
        b.position_at_end(merge)
        phi = b.phi(fast_value.type)
        phi.add_incoming(fast_value, fast_end)
        phi.add_incoming(slow_value, slow_end)
        return Val("u" if uniform else "v", phi)

    def per_lane_call(self, name: str, x: ir.Value) -> ir.Value:
        b = self.b
        if not isinstance(x.type, ir.VectorType):
            return self.low.apply(name, [x], None, None)
        out = ir.Constant(x.type, ir.Undefined)
        for k in range(x.type.count):
            lane = self.low.apply(name, [b.extract_element(x, I32(k))], None, None)
            out = b.insert_element(out, lane, I32(k))
        return out

    def reduce_bool_and(self, v: ir.Value) -> ir.Value:
        fn = self.mc.intrinsic("llvm.vector.reduce.and", I1, [v.type], [v.type])
        return self.b.call(fn, [v])

    def combine(self, name: str, a: Val, b: Val, dtype: np.dtype) -> Val:
        if a.uniform and b.uniform:
            return Val("u", self.low.apply(name, [a.value, b.value], dtype, dtype))
        return Val("v", self.low.apply(name, [self.vector(a, dtype), self.vector(b, dtype)],
                                       dtype, dtype))

    # -- statements
    def block(self, stmts: tuple) -> None:
        saved = dict(self.locals)
        for s in stmts:
            getattr(self, "stmt_" + type(s).__name__)(s)
        self.locals = saved

    def stmt_Store(self, s: Store) -> None:
        index, value = self.emit(s.index), self.emit(s.value)
        mask = self.emit(s.mask) if s.mask is not None else None
        dtype = self.params[s.param][1].dtype
        if self.vec is not None and self.vec.mask is not None and not (index.uniform and value.uniform):
            self.store_in_tail(s, dtype, index, value, mask)
        elif mask is not None and mask.uniform and index.uniform:
            with self.b.if_then(mask.value):
                self.store_unmasked(s.param, dtype, index, value)
        elif mask is None or (mask.uniform and _const_value(mask.value)):
            self.store_unmasked(s.param, dtype, index, value)
        else:
            self.store_masked(s.param, dtype, index, value, self.vector(mask, bool_))
        self.forget(s.param)

    def store_in_tail(self, s: Store, dtype: np.dtype, index: Val, value: Val, mask: Val | None) -> None:
        """A store inside a masked tail: only active lanes store; at one index, the last one."""
        if index.uniform:
            if mask is not None and not mask.uniform:
                raise _Unsupported("tail", self.vec_key(), "per-lane store mask at one index")
            v = self.b.extract_element(self.vector(value, dtype), self.vec.last_lane)
            if mask is not None:
                with self.b.if_then(mask.value):
                    self.b.store(self.to_memory(v, dtype), self.element_ptr(s.param, index.value))
            else:
                self.b.store(self.to_memory(v, dtype), self.element_ptr(s.param, index.value))
            return
        self.store_masked(s.param, dtype, index, value, self.tail_mask(mask).value)

    def store_unmasked(self, param: str, dtype: np.dtype, index: Val, value: Val) -> None:
        b = self.b
        if index.uniform:
            v = value.value
            if not value.uniform:      # the last lane is the last iteration's store
                v = b.extract_element(v, I32(self.vec.width - 1))
            b.store(self.to_memory(v, dtype), self.element_ptr(param, index.value))
        elif index.kind == "a" and index.stride == 1:
            v = self.to_memory(self.vector(value, dtype), dtype)
            b.store(v, self.element_ptr(param, index.value), align=dtype.itemsize)
        else:
            v = self.to_memory(self.vector(value, dtype), dtype)
            self.scatter(self.params[param][0], memory_type(dtype), index, v)

    def store_masked(self, param: str, dtype: np.dtype, index: Val, value: Val, mask: ir.Value) -> None:
        """Vector store of the lanes where ``mask`` holds (contiguous: one masked store)."""
        b = self.b
        v = self.to_memory(self.vector(value, dtype), dtype)
        if index.kind == "a" and index.stride == 1:
            fn = self.mc.intrinsic("llvm.masked.store", VOID, [v.type, PTR, I32, mask.type], [v.type, PTR])
            b.call(fn, [v, self.element_ptr(param, index.value), I32(dtype.itemsize), mask])
            return
        self.scatter(self.params[param][0], memory_type(dtype), index, v, mask)

    def stmt_DefineLocal(self, s: DefineLocal) -> None:
        init = self.emit(s.init) if s.init is not None else None
        loc = s.local
        if loc.name in self.array_locals:
            if init is not None and not init.uniform:
                raise _Unsupported("loop", self.vec_key(), "per-lane init of an array local")
            self.locals[loc.name] = _ArrayLocal(self, loc, init)
        else:
            lanes = self.vec.width if self.vec else 1
            if init is not None and lanes > 1:
                init = Val("v", self.vector(init, loc.dtype))
            elif init is not None and not init.uniform:
                raise _Unsupported("loop", self.vec_key(), "per-lane init of an outer local")
            init_block = None
            if init is not None:      # a block to put the init stores of lazily made slots into
                init_block = self.b.append_basic_block(f"init.{loc.name}")
                self.b.branch(init_block)
                self.b.position_at_end(init_block)
                after = self.b.append_basic_block(f"after.{loc.name}")
                self.b.branch(after)
                self.b.position_at_end(after)
            self.locals[loc.name] = _SlotLocal(self, loc, init, init_block, lanes)
        self.forget(loc.name)

    def stmt_LocalStore(self, s: LocalStore) -> None:
        self.local(s.local).store(self.emit(s.index), self.emit(s.value))
        self.forget(s.local)

    def stmt_Accumulate(self, s: Accumulate) -> None:
        self.local(s.local).accumulate(self.emit(s.index), s.op, self.emit(s.value))
        self.forget(s.local)

    def stmt_If(self, s: If) -> None:
        cond = self.emit(s.cond)
        if not cond.uniform:
            raise _Unsupported("loop", self.vec_key(), "branch on a per-lane condition")
        b = self.b
        then_block = b.append_basic_block("then")
        else_block = b.append_basic_block("else")
        merge = b.append_basic_block("endif")
        b.cbranch(cond.value, then_block, else_block)
        for block, body in ((then_block, s.then), (else_block, s.else_)):
            b.position_at_end(block)
            self.push()
            self.block(body)
            self.pop()
            b.branch(merge)
        b.position_at_end(merge)

    def accumulate_partial(self, storage: _SlotLocal, index: int, name: str, value: Val) -> None:
        """Accumulate into an outer local inside a vector loop: per-lane partials, folded later
        (when the local is next read, so loops around the vector loop don't fold each time)."""
        key = (storage.local.name, index)
        ctx, dtype = self.vec, storage.local.dtype
        if storage.init_block is not None:
            vector = self.vector(value, dtype)
            if ctx.mask is not None:
                identity = ir.Constant(vector.type, [_reduce_identity(name, dtype)] * ctx.width)
                vector = self.b.select(ctx.mask, vector, identity)
            storage.add_partial(index, name, vector)
            return
        entry = ctx.partials.get(key)
        if entry is None:
            vt = ir.VectorType(value_type(dtype), ctx.width)
            partial = self.alloca(vt)
            b = ir.IRBuilder(ctx.init_block)
            b.position_before(ctx.init_block.terminator)
            b.store(ir.Constant(vt, [_reduce_identity(name, dtype)] * ctx.width), partial)
            ctx.partials[key] = (partial, storage, index, name)
        elif entry[3] != name:
            raise _Unsupported("loop", self.vec_key(), "two reduction ops on one local")
        else:
            partial = entry[0]
        current = Val("v", _load(self.b, partial))
        if ctx.mask is not None:
            identity = ir.Constant(ir.VectorType(value_type(dtype), ctx.width), [_reduce_identity(name, dtype)] * ctx.width)
            value = Val("v", self.b.select(ctx.mask, self.vector(value, dtype), identity))
        self.b.store(self.combine(name, current, value, dtype).value, partial)

    def finish_partials(self, ctx: _VecCtx) -> None:
        """Fold each partial's lanes into its local (after the vector loops)."""
        for partial, storage, index, name in ctx.partials.values():
            dtype = storage.local.dtype
            lanes = _load(self.b, partial)
            total = self.horizontal(name, lanes, dtype)
            current = storage.load(Val("u", I64(index)))
            storage.store(Val("u", I64(index)), self.combine(name, current, Val("u", total), dtype))
            self.forget(storage.local.name)

    def horizontal(self, name: str, v: ir.Value, dtype: np.dtype) -> ir.Value:
        """Reduce the lanes of a vector with ``name`` by halving (a shuffle tree)."""
        b = self.b
        n = v.type.count
        while n > 1:
            half = n // 2
            lo = b.shuffle_vector(v, v, ir.Constant(ir.VectorType(I32, half), list(range(half))))
            hi = b.shuffle_vector(v, v, ir.Constant(ir.VectorType(I32, half), list(range(half, n))))
            v = self.low.apply(name, [lo, hi], dtype, dtype)
            n = half
        return b.extract_element(v, I32(0))

    # -- loops
    def stmt_Range(self, s: Range) -> None:
        start, stop = self.emit(s.start), self.emit(s.stop)
        if not (start.uniform and stop.uniform):
            raise _Unsupported("loop", self.vec_key(), f"bounds of loop {s.var.name} vary per lane")
        if s.parallel and not self.in_parallel and self.vec is None and id(s) not in self.serial_loops \
                and self.mc.target.num_threads > 1:
            self.parallel_range(s, self.index64(start.value), self.index64(stop.value))
        else:
            self.render_range(s, self.index64(start.value), self.index64(stop.value))

    def lanes_for(self, s: Range) -> int:
        if not s.vectorize or self.vec is not None or id(s) in self.scalar_loops:
            return 1
        if s.vectorize != AUTO:
            return s.vectorize
        sizes = [self.kernel.param(n.param).dtype.itemsize for st in walk_stmts(s.body)
                 for e in stmt_exprs(st) for n in walk_expr(e) if isinstance(n, Load)]
        sizes += [self.kernel.param(st.param).dtype.itemsize for st in walk_stmts(s.body)
                  if isinstance(st, Store)]
        sizes += [st.local.dtype.itemsize for st in walk_stmts(s.body) if isinstance(st, DefineLocal)]
        widest = max(sizes, default=8)
        return max(self.mc.target.vector_bytes // widest, 1)

    def render_range(self, s: Range, start: ir.Value, stop: ir.Value) -> None:
        w = self.lanes_for(s)
        trip = self.trip_count(start, stop, s.step)
        tc = _const_value(trip)
        if s.unroll == FULL and tc is not None:
            self.unrolled(s, start, int(tc), w)
            return
        factor = max(s.unroll, 1)
        done: ir.Value = I64(0)
        if w > 1:
            done = self.vector_loops(s, start, trip, w, factor)
            factor = 1
        if factor > 1:
            main_end = self.round_down(trip, factor)
            self.counted_loop(done, main_end, factor,
                              lambda n: [self.iteration(s, self.iv(start, s.step, self.b.add(n, I64(u))), 1)
                                         for u in range(factor)])
            done = main_end
        self.counted_loop(done, trip, 1, lambda n: self.iteration(s, self.iv(start, s.step, n), 1))

    def enter_vector(self, s: Range, w: int) -> tuple[_VecCtx, _VecCtx | None]:
        """Start rendering ``s`` as ``w``-lane vectors: a block for the partials' initial values
        before the loop; returns the new context and the one to restore."""
        b = self.b
        init_block = b.append_basic_block("vec.init")
        b.branch(init_block)
        b.position_at_end(init_block)
        after = b.append_basic_block("vec.main")
        b.branch(after)
        b.position_at_end(after)
        outer, self.vec = self.vec, _VecCtx(s, w, init_block, {})
        return self.vec, outer

    def leave_vector(self, ctx: _VecCtx, outer: _VecCtx | None) -> None:
        self.vec = outer
        self.finish_partials(ctx)

    def vector_loops(self, s: Range, start: ir.Value, trip: ir.Value, w: int, factor: int) -> ir.Value:
        b = self.b
        ctx, outer = self.enter_vector(s, w)
        main_end = self.round_down(trip, w * factor)
        self.counted_loop(I64(0), main_end, w * factor,
                          lambda n: [self.iteration(s, self.iv(start, s.step, b.add(n, I64(u * w))), w)
                                     for u in range(factor)])
        end = main_end
        if factor > 1:
            end = self.round_down(trip, w)
            self.counted_loop(main_end, end, w, lambda n: self.iteration(s, self.iv(start, s.step, n), w))
        if id(s) not in self.scalar_tails:
            self.masked_tail(s, start, end, trip, ctx)
            end = trip
        self.leave_vector(ctx, outer)
        return end

    def masked_tail(self, s: Range, start: ir.Value, end: ir.Value, trip: ir.Value, ctx: _VecCtx) -> None:
        """The last ``trip - end`` (< w) iterations as one vector iteration with inactive lanes
        masked: loads and stores of those lanes touch no memory, partial reductions skip them."""
        b, w = self.b, ctx.width
        rem = b.sub(trip, end)
        if _const_value(rem) == 0:
            return
        lanes = ir.Constant(ir.VectorType(I64, w), list(range(w)))
        with b.if_then(b.icmp_signed(">", rem, I64(0))):
            ctx.mask = b.icmp_signed("<", lanes, _splat(b, rem, w))
            ctx.last_lane = b.trunc(b.sub(rem, I64(1)), I32)
            self.iteration(s, self.iv(start, s.step, end), w)
            ctx.mask = ctx.last_lane = None

    def tail_mask(self, mask: Val | None) -> Val | None:
        """``mask`` and'ed with the tail's active lanes (inside a masked tail)."""
        tail = self.vec.mask if self.vec is not None else None
        if tail is None:
            return mask
        if mask is None:
            return Val("v", tail)
        return Val("v", self.b.and_(self.vector(mask, bool_), tail))

    def unrolled(self, s: Range, start: ir.Value, trip: int, w: int) -> None:
        start_c = _const_value(start)
        n = 0
        if w > 1 and trip >= w:
            ctx, outer = self.enter_vector(s, w)
            while n + w <= trip:
                self.iteration(s, self.const_iv(start, start_c, s.step, n), w)
                n += w
            self.leave_vector(ctx, outer)
        while n < trip:
            self.iteration(s, self.const_iv(start, start_c, s.step, n), 1)
            n += 1

    def const_iv(self, start: ir.Value, start_c, step: int, n: int) -> ir.Value:
        if start_c is not None:
            return I64(int(start_c) + n * step)
        return self.b.add(start, I64(n * step))

    def iv(self, start: ir.Value, step: int, n: ir.Value) -> ir.Value:
        c = _const_value(start)
        scaled = n if step == 1 else self.b.mul(n, I64(step))
        return scaled if c == 0 else self.b.add(start, scaled)

    def iteration(self, s: Range, iv: ir.Value, w: int) -> None:
        self.push()
        old = self.env.get(s.var.name)
        aligned = isinstance(s.start, Const) and s.start.value == 0
        self.env[s.var.name] = Val("a", iv, s.step, w * s.step if aligned else 0) if w > 1 else Val("u", iv)
        self.block(s.body)
        if old is None:
            del self.env[s.var.name]
        else:
            self.env[s.var.name] = old
        self.pop()

    def trip_count(self, start: ir.Value, stop: ir.Value, step: int) -> ir.Value:
        a, c = _const_value(start), _const_value(stop)
        if a is not None and c is not None:
            return I64(max(0, -(-(int(c) - int(a)) // step)))
        b = self.b
        span = b.sub(self.index64(stop), self.index64(start))
        span = b.select(b.icmp_signed("<", span, I64(0)), I64(0), span)
        if step == 1:
            return span
        return b.udiv(b.add(span, I64(step - 1)), I64(step))

    def round_down(self, n: ir.Value, k: int) -> ir.Value:
        c = _const_value(n)
        if c is not None:
            return I64(int(c) // k * k)
        if k == 1:
            return n
        return self.b.sub(n, self.b.urem(n, I64(k)))

    def counted_loop(self, lo: ir.Value, hi: ir.Value, step: int, body: Callable[[ir.Value], object]) -> None:
        """for n in range(lo, hi, step): body(n) — hi - lo is a multiple of step or the loop ends early."""
        lc, hc = _const_value(lo), _const_value(hi)
        if lc is not None and hc is not None and hc <= lc:
            return
        b = self.b
        counter = self.alloca(I64)
        b.store(self.index64(lo), counter)
        header = b.append_basic_block("loop.header")
        body_block = b.append_basic_block("loop.body")
        exit_block = b.append_basic_block("loop.exit")
        b.branch(header)
        b.position_at_end(header)
        n = b.load(counter, typ=I64)
        b.cbranch(b.icmp_signed("<", n, self.index64(hi)), body_block, exit_block)
        b.position_at_end(body_block)
        self.push()
        body(n)
        self.pop()
        b.store(b.add(n, I64(step)), counter)
        b.branch(header)
        b.position_at_end(exit_block)

    # -- parallel loops
    parallel_key = None

    def parallel_range(self, s: Range, start: ir.Value, stop: ir.Value) -> None:
        """Outline the loop over a [lo, hi) range; split it into chunks for the thread pool
        (``fgrad_parallel``) when its estimated work is big enough, else call it directly."""
        captured = sorted(self.env)
        chunk_fn = self.outline_chunk(s, captured)
        b = self.b
        values = [arg for arg, _ in (self.params[p.name] for p in self.kernel.params)]
        args = values + [self.env[n].value for n in captured]
        trip = self.trip_count(start, stop, s.step)
        grain = max(1, self.lanes_for(s)) * max(1, s.unroll)
        cost = max(1, _estimate_cost(s.body) // max(1, self.lanes_for(s)))
        threads = self.mc.target.num_threads
        # chunks: at most CHUNKS_PER_THREAD per thread, each >= PARALLEL_MIN_WORK and >= grain
        by_work = b.udiv(b.mul(trip, I64(cost)), I64(PARALLEL_MIN_WORK))
        by_grain = b.udiv(b.add(trip, I64(grain - 1)), I64(grain))
        nchunks = self.umin(self.umin(by_work, by_grain), I64(threads * CHUNKS_PER_THREAD))
        with b.if_else(b.icmp_signed(">", nchunks, I64(1))) as (then, otherwise):
            with then:
                per = b.udiv(b.add(trip, b.sub(nchunks, I64(1))), nchunks)
                per = b.mul(b.udiv(b.add(per, I64(grain - 1)), I64(grain)), I64(grain))
                fields = [b.ptrtoint(v, I64) for v in values] + [self.env[n].value for n in captured] \
                    + [self.index64(start), self.index64(stop), trip, per]
                ctx = self.alloca(ir.ArrayType(I64, len(fields)))
                for k, v in enumerate(fields):
                    b.store(v, _gep(b, ctx, [I64(0), I64(k)], ir.ArrayType(I64, len(fields))))
                pool_fn = self.outline_pool_body(s, chunk_fn, len(captured), len(fields))
                run = self.mc.declare("fgrad_parallel", VOID, [PTR, PTR, I64, I64])
                b.call(run, [pool_fn, ctx, nchunks, I64(threads)])
            with otherwise:
                b.call(chunk_fn, args + [self.index64(start), self.index64(stop)])

    def umin(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.select(self.b.icmp_unsigned("<", a, b), a, b)

    def outline_chunk(self, s: Range, captured: list[str]) -> ir.Function:
        args = [PTR] * len(self.kernel.params) + [I64] * (len(captured) + 2)
        fn = self.new_function(f"{self.fn.name}.par", args)
        for p, arg in zip(self.kernel.params, fn.args):
            if p.name not in self.kernel.may_alias:
                arg.add_attribute("noalias")
        state = self.save_state()
        try:
            self.start_function(fn)
            self.in_parallel = True
            self.parallel_key = id(s)
            self.params = {p.name: (arg, p) for p, arg in zip(self.kernel.params, fn.args)}
            nparams = len(self.kernel.params)
            for k, name in enumerate(captured):
                self.env[name] = Val("u", fn.args[nparams + k])
            lo, hi = fn.args[-2], fn.args[-1]
            self.render_range(s, lo, hi)
            self.b.ret_void()
        finally:
            self.restore_state(state)
            self.parallel_key = None
        return fn

    def outline_pool_body(self, s: Range, chunk_fn: ir.Function, ncaptured: int,
                          nfields: int) -> ir.Function:
        """fn(ctx, c): chunk ``c`` of the loop (iterations [c*per, min(trip, (c+1)*per)))."""
        fn = ir.Function(self.mc.module, ir.FunctionType(VOID, [PTR, I64]), self.mc.unique(f"{self.fn.name}.pool"))
        fn.linkage = "internal"
        self.created.append(fn.name)
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        nparams = len(self.kernel.params)
        arr_t = ir.ArrayType(I64, nfields)
        fields = [b.load(_gep(b, fn.args[0], [I64(0), I64(k)], arr_t), typ=I64) for k in range(nfields)]
        ptrs = [b.inttoptr(f, PTR) for f in fields[:nparams]]
        start, stop, trip, per = fields[-4:]
        lo = b.mul(fn.args[1], per)
        hi = b.add(lo, per)
        hi = b.select(b.icmp_signed("<", hi, trip), hi, trip)
        first = b.add(start, b.mul(lo, I64(s.step)))
        last = b.add(start, b.mul(hi, I64(s.step)))
        last = b.select(b.icmp_signed("<", last, stop), last, stop)
        b.call(chunk_fn, ptrs + fields[nparams:nparams + ncaptured] + [first, last])
        b.ret_void()
        return fn


def _estimate_cost(stmts: tuple) -> int:
    """Rough scalar-op count of one execution of ``stmts`` (unknown trip counts count as 16)."""
    total = 0
    for s in stmts:
        total += sum(sum(1 for _ in walk_expr(e)) for e in stmt_exprs(s))
        if isinstance(s, Range):
            a, c = s.start, s.stop
            trip = (c.value - a.value) // s.step if isinstance(a, Const) and isinstance(c, Const) else 16
            total += max(trip, 0) * _estimate_cost(s.body)
        elif isinstance(s, If):
            total += max(_estimate_cost(s.then), _estimate_cost(s.else_))
    return total


_INDEX_FOLDS = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
                 "floordiv": lambda a, b: a // b if b else 0, "mod": lambda a, b: a % b if b else 0,
                 "min": min, "max": max}


def _fold_index_op(name: str, consts: list, dtype: np.dtype) -> int | None:
    """Integer index arithmetic on constants, computed directly (the common case, kept fast)."""
    fn = _INDEX_FOLDS.get(name)
    if fn is None or dtype.kind != "i" or len(consts) != 2:
        return None
    return wrap_int(fn(int(consts[0]), int(consts[1])), dtype)


def _python_value(x, dtype: np.dtype):
    if dtype == bool_:
        return bool(x)
    return float(x) if is_float(dtype) else int(x)


def render_kernel(mc: ModuleContext, kernel: Kernel) -> ir.Function:
    """Add ``kernel`` to the module as an internal function of noalias buffer pointers."""
    scalar_loops: set = set()
    array_locals: set = set()
    serial_loops: set = set()
    scalar_tails: set = set()
    for _ in range(64):
        r = _KernelRenderer(mc, kernel, f"k.{kernel.name}", scalar_loops, array_locals, serial_loops, scalar_tails)
        try:
            return r.render()
        except _Unsupported as why:
            mc.discard(r.created)
            if config.debug >= 3:
                print(f"[fgrad llvm] kernel {kernel.name}: {why.reason}; re-rendering without "
                      f"that {why.kind} hint", file=sys.stderr)
            target = {"loop": scalar_loops, "local": array_locals, "parallel": serial_loops,
                      "tail": scalar_tails}[why.kind]
            if why.key in target or why.key is None:
                raise RuntimeError(f"kernel {kernel.name}: cannot render ({why.reason})") from None
            target.add(why.key)
    raise RuntimeError(f"kernel {kernel.name}: too many rendering retries")


# --- programs -------------------------------------------------------------------------------

@dataclass
class RenderedProgram:
    """The LLVM module of a program, its memory plan, and (for timing) its call sites."""

    module: ir.Module
    plan: MemoryPlan
    call_sites: list          # Call steps in the order of the timing counters
    timing: bool


def render_program(program: Program, target: Target, *, timing: bool = False) -> RenderedProgram:
    """One module with ``fgrad_main(ptr args)``: args = externals..., then the arena pointer.

    With ``timing``, each call site adds its cycle count and call count to the
    globals ``fgrad_cycles`` and ``fgrad_calls``.
    """
    mc = ModuleContext(target, program.name)
    plan = plan_memory(program)
    functions = {id(k): render_kernel(mc, k) for k in kernels_of(program)}
    entry = ir.Function(mc.module, ir.FunctionType(VOID, [PTR]), ENTRY)
    renderer = _ProgramRenderer(mc, program, plan, functions, entry, timing)
    renderer.render()
    return RenderedProgram(mc.module, plan, renderer.call_sites, timing)


class _ProgramRenderer:
    """Renders program steps into the entry function."""

    def __init__(self, mc: ModuleContext, program: Program, plan: MemoryPlan, functions: dict,
                 entry: ir.Function, timing: bool) -> None:
        self.mc, self.program, self.plan, self.functions = mc, program, plan, functions
        allocas = entry.append_basic_block("entry")
        body = entry.append_basic_block("body")
        self.alloca_builder = ir.IRBuilder(allocas)
        self.alloca_builder.branch(body)
        self.alloca_builder.position_at_start(allocas)
        self.b = ir.IRBuilder(body)
        self.timing = timing
        self.call_sites: list[Call] = []
        externals = program.externals
        n = len(externals) + 1
        arr_t = ir.ArrayType(PTR, n)
        slot = lambda k: _gep(self.b, entry.args[0], [I64(0), I64(k)], arr_t)
        self.pointers = {id(buf): self.b.load(slot(k), typ=PTR) for k, buf in enumerate(externals)}
        self.arena = self.b.load(slot(len(externals)), typ=PTR)
        if timing:
            ncalls = sum(1 for s in _walk_calls(program.body))
            self.cycles = self._counter_global("fgrad_cycles", ncalls)
            self.calls = self._counter_global("fgrad_calls", ncalls)

    def _counter_global(self, name: str, n: int) -> ir.GlobalVariable:
        g = ir.GlobalVariable(self.mc.module, ir.ArrayType(I64, max(n, 1)), name)
        g.initializer = ir.Constant(g.value_type, None)
        return g

    def render(self) -> None:
        self.steps(self.program.body)
        self.b.ret_void()

    def pointer(self, buf: Buffer) -> ir.Value:
        p = self.pointers.get(id(buf))
        if p is None:
            p = _gep(self.b, self.arena, [I64(self.plan.offset(buf))], I8)
        return p

    def steps(self, steps: tuple) -> None:
        for s in steps:
            getattr(self, "step_" + type(s).__name__)(s)

    def step_Call(self, s: Call) -> None:
        args = [self.pointer(buf) for buf in s.args]
        fn = self.functions[id(s.kernel)]
        if not self.timing:
            self.b.call(fn, args)
            return
        k = len(self.call_sites)
        self.call_sites.append(s)
        clock = self.mc.declare("llvm.readcyclecounter", I64, [])
        t0 = self.b.call(clock, [])
        self.b.call(fn, args)
        t1 = self.b.call(clock, [])
        self._bump(self.cycles, k, self.b.sub(t1, t0))
        self._bump(self.calls, k, I64(1))

    def _bump(self, g: ir.GlobalVariable, k: int, amount: ir.Value) -> None:
        ptr = _gep(self.b, g, [I64(0), I64(k)], g.value_type)
        self.b.store(self.b.add(self.b.load(ptr, typ=I64), amount), ptr)

    def scalar(self, buf: Buffer) -> ir.Value:
        """The value of a one-element buffer, widened to i64 (floats and bools: != 0)."""
        raw = self.b.load(self.pointer(buf), typ=memory_type(buf.dtype))
        if is_float(buf.dtype):
            return self.b.zext(self.b.fcmp_unordered("!=", raw, ir.Constant(raw.type, 0.0)), I64)
        if buf.dtype.kind == "i":
            return self.b.sext(raw, I64) if raw.type != I64 else raw
        return self.b.zext(raw, I64) if raw.type != I64 else raw

    def step_Loop(self, s: Loop) -> None:
        b = self.b
        counter = self.alloca_builder.alloca(I64)
        b.store(I64(0), counter)
        header = b.append_basic_block("ploop.header")
        body = b.append_basic_block("ploop.body")
        done = b.append_basic_block("ploop.exit")
        b.branch(header)
        b.position_at_end(header)
        i = b.load(counter, typ=I64)
        b.cbranch(b.icmp_signed("<", i, I64(s.count)), body, done)
        b.position_at_end(body)
        if s.index is not None:
            t = memory_type(s.index.dtype)
            value = i if t == I64 else b.trunc(i, t)
            b.store(value, self.pointer(s.index))
        self.steps(s.body)
        b.store(b.add(i, I64(1)), counter)
        b.branch(header)
        b.position_at_end(done)

    def step_While(self, s: While) -> None:
        b = self.b
        header = b.append_basic_block("while.header")
        body = b.append_basic_block("while.body")
        done = b.append_basic_block("while.exit")
        b.branch(header)
        b.position_at_end(header)
        self.steps(s.before)
        b.cbranch(b.icmp_unsigned("!=", self.scalar(s.cond), I64(0)), body, done)
        b.position_at_end(body)
        self.steps(s.body)
        b.branch(header)
        b.position_at_end(done)

    def step_Switch(self, s: Switch) -> None:
        b = self.b
        n = len(s.branches)
        index = self.scalar(s.index)
        index = b.select(b.icmp_signed("<", index, I64(0)), I64(0), index)
        index = b.select(b.icmp_signed(">", index, I64(n - 1)), I64(n - 1), index)
        done = b.append_basic_block("switch.exit")
        blocks = [b.append_basic_block(f"case{k}") for k in range(n)]
        sw = b.switch(index, blocks[-1])
        for k, block in enumerate(blocks[:-1]):
            sw.add_case(I64(k), block)
        for block, steps in zip(blocks, s.branches):
            b.position_at_end(block)
            self.steps(steps)
            b.branch(done)
        b.position_at_end(done)


def call_sites(program: Program) -> list[Call]:
    """The program's Call steps in the order of the timing counters."""
    return list(_walk_calls(program.body))


def _walk_calls(steps: tuple):
    return (s for s in walk_steps(steps) if isinstance(s, Call))
