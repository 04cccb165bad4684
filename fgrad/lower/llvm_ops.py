"""Scalar-op emission on LLVM values (scalars and vectors alike): one ``op_<name>`` method
per op of ``scalar_ops.TABLE``, except the transcendentals that ``mathlib`` expands into
polynomials. ``RENDERED_OPS`` is checked against the table at import."""
from __future__ import annotations

import math

from fgrad.lower import llvm_ir as ir
import numpy as np

from fgrad.lower import mathlib
from fgrad.lower.kernel import bool_, is_float
from fgrad.lower.llvm_base import I1, ModuleContext, splat_constant, value_type
from fgrad.lower.scalar_ops import check_coverage


# --- op lowering on LLVM values (scalar or vector alike) --------------------------------------

class Lowering:
    """Emits one scalar op on LLVM values; vectors of any width work the same way."""

    def __init__(self, mc: ModuleContext, builder: ir.IRBuilder) -> None:
        self.mc, self.b = mc, builder

    def const_like(self, like: ir.Value, value) -> ir.Constant:
        t = like.type
        if isinstance(t, ir.VectorType):
            return splat_constant(ir.Constant(t.element, value), t.count)
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

    def _positive_divisor(self, y: ir.Value) -> int | None:
        """``y``'s value when it is a positive integer constant (or a splat of one), else None."""
        c = y.constant if isinstance(y, ir.Constant) else None
        return c if isinstance(c, int) and not isinstance(c, bool) and c > 0 else None

    def divides_slowly(self, y: ir.Value) -> bool:
        """Whether dividing a vector of int64 by ``y`` is a scalar division per lane: unless ``y``
        is a constant power of two (a shift, a mask)."""
        c = self._positive_divisor(y)
        return c is None or c & (c - 1) != 0

    def _by_constant(self, name: str, x: ir.Value, c: int, dt: np.dtype) -> ir.Value:
        """Floored ``x // c`` or ``x % c`` for a positive constant ``c``: a shift or a mask for a
        power of two, else one division and a sign fix (no checks for 0 or -1 needed)."""
        b, k = self.b, c.bit_length() - 1
        if c == 1 << k:
            if name == "floordiv":
                return (b.ashr if dt.kind == "i" else b.lshr)(x, self.const_like(x, k))
            return b.and_(x, self.const_like(x, c - 1))
        cc = self.const_like(x, c)
        if dt.kind == "u":
            return b.udiv(x, cc) if name == "floordiv" else b.urem(x, cc)
        r = b.srem(x, cc)
        negative = b.icmp_signed("<", r, self.const_like(x, 0))
        if name == "mod":
            return b.select(negative, b.add(r, cc), r)
        q = b.sdiv(x, cc)
        return b.select(negative, b.sub(q, self.const_like(x, 1)), q)

    def op_floordiv(self, a, dt, out):
        c = self._positive_divisor(a[1])
        if c is not None:
            return self._by_constant("floordiv", a[0], c, dt)
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
        c = self._positive_divisor(a[1])
        if c is not None:
            return self._by_constant("mod", a[0], c, dt)
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
        to = self._like(a[0], value_type(out))
        return a[0] if a[0].type == to else self.b.bitcast(a[0], to)   # bfloat16 <-> 16-bit ints

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


#: the ops this renderer implements: a ``Lowering.op_<name>`` method each, or (the float
#: transcendentals, and float floordiv/mod) a ``mathlib`` expansion; checked against the table
RENDERED_OPS = check_coverage("the LLVM renderer", {
    *(name[len("op_"):] for name in vars(Lowering) if name.startswith("op_")), *mathlib.EXPANDED})
