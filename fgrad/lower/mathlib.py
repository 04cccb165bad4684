"""Vectorisable float math, written as kernel IR expressions.

Renderers that have no fast vector ``exp``/``log``/... (the LLVM one: libm calls
would scalarise every SIMD loop) replace those ops by ``expand(op, args)``:
range reduction plus polynomials built from add/mul/fma/select/bitcast, which
render to straight-line SIMD code at any lane count. The same expansion serves
float32 and float64 (different constants and degrees). Accuracy, measured by
``tests/lower/test_mathlib.py`` against NumPy: float32 within a few ulp, float64
within ~1e-15 relative, including inf, nan, denormals and large arguments.

``sin``/``cos`` reduce the argument with a three-part pi/2 in float64 (float32
inputs are widened), accurate for ``|x| <= SIN_COS_FAST_LIMIT``; renderers
handle larger arguments with the C library (``fast_sin_cos_ok`` is the test).
Coefficients are Taylor coefficients: on the reduced ranges used here they are
within rounding of minimax ones and need no fitted tables.
"""
from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import numpy as np

from fgrad.lower.kernel import (
    Const, Expr, bitcast, cast, float32, float64, fma, int32, int64, op, select,
)

EXPANDED = frozenset({"exp", "log", "log1p", "expm1", "tanh", "logistic", "sin", "cos",
                      "floordiv", "mod"})
SIN_COS_FAST_LIMIT = 2.0 ** 19 * math.pi / 2


class _Format:
    """Bit layout and constants of one float format."""

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = dtype
        self.int = int32 if dtype == float32 else int64
        self.mant_bits = 23 if dtype == float32 else 52
        self.bias = 127 if dtype == float32 else 1023
        self.exp_max = 88.72283935546875 if dtype == float32 else 709.782712893384
        self.exp_min = -103.97208404541016 if dtype == float32 else -745.1332191019412
        self.expm1_min = -17.4 if dtype == float32 else -37.5      # below: expm1 rounds to -1
        self.tanh_max = 9.1 if dtype == float32 else 19.1           # above: tanh rounds to 1
        # P with expm1(r) ~= r + r^2 P(r) on the reduced range: fitted in float32, Taylor in float64
        self.expm1_coeffs = list(_EXPM1_F32) if dtype == float32 else [1 / math.factorial(n) for n in range(2, 15)]
        self.log_terms = 4 if dtype == float32 else 10              # terms of the atanh series
        self.tiny = float(np.finfo(dtype).tiny)
        self.ln2_hi, self.ln2_lo = _split(_LN2, 12 if dtype == float32 else 32)

    def c(self, value: float) -> Const:
        return Const(value, self.dtype)

    def i(self, value: int) -> Const:
        return Const(value, self.int)


_LN2 = Fraction(Decimal("0.69314718055994530941723212145817656807550013436026"))


def _split(value: Fraction, bits: int) -> tuple[float, float]:
    """An exact ``value`` as hi + lo floats, hi with ``bits`` significant bits (so k*hi is exact)."""
    m, e = math.frexp(float(value))
    hi = math.ldexp(math.floor(m * 2 ** bits), e - bits)
    return hi, float(value - Fraction(hi))


def _horner(x: Expr, coeffs: list[float], f: _Format) -> Expr:
    """``coeffs[0] + x*(coeffs[1] + x*(...))`` with fused multiply-adds."""
    acc: Expr = f.c(coeffs[-1])
    for c in reversed(coeffs[:-1]):
        acc = fma(acc, x, f.c(c))
    return acc


def _pow2(k: Expr, f: _Format) -> Expr:
    """2**k as a float for integer k within the normal exponent range."""
    return bitcast((k + f.bias) << f.mant_bits, f.dtype)


def _reduce_ln2(x: Expr, f: _Format) -> tuple[Expr, Expr]:
    """x = k*ln2 + r with |r| <= ln2/2: returns (k as an integer expression, r)."""
    kf = op("round_even", x * f.c(1 / math.log(2)))
    r = fma(kf, f.c(-f.ln2_hi), x)
    r = fma(kf, f.c(-f.ln2_lo), r)
    # The integer value of kf, read from the bits of kf + 1.5*2**mant (exact while |kf| < 2**(mant-1)).
    magic = f.c(1.5 * 2.0 ** f.mant_bits)
    k = bitcast(kf + magic, f.int) - bitcast(magic, f.int)
    return k, r


#: P with expm1(r) ~= r + r^2 P(r) for |r| <= ln2/2 in float32, fitted here for the least
#: largest relative error (iterated weighted least squares on Chebyshev nodes): 1.3e-8, a
#: fifth of a float32 ulp, with 5 coefficients where the Taylor series needs 7
_EXPM1_F32 = (0.4999999815514618, 0.16666543670036504, 0.04166719964893108, 0.008366513952115172,
              0.001388252257260329)


def _expm1_poly(r: Expr, f: _Format) -> Expr:
    """expm1(r) for |r| <= ln2/2: r + r^2 P(r), P the fitted polynomial in float32 and the
    Taylor series r^2/2 + r^3/6 + ... in float64 (``_Format.expm1_coeffs``)."""
    return fma(r * r, _horner(r, f.expm1_coeffs, f), r)


def _scale(p: Expr, k: Expr, f: _Format) -> Expr:
    """p * 2**k in two steps, so results that are denormal or near overflow come out right."""
    k1 = k >> 1
    return p * _pow2(k1, f) * _pow2(k - k1, f)


def exp(x: Expr) -> Expr:
    f = _Format(x.dtype)
    k, r = _reduce_ln2(x, f)
    result = _scale(_expm1_poly(r, f) + 1.0, k, f)
    result = select(x > f.exp_max, f.c(math.inf), result)
    return select(x < f.exp_min, f.c(0.0), result)


def _expm1_moderate(x: Expr, f: _Format) -> tuple[Expr, Expr, Expr]:
    """expm1(x) for finite x whose 2**k stays a normal float (|x| below about 80, or 700 in
    float64), and the ``k`` and ``p`` it came from: 2**k * p + (2**k - 1), rounded once (fma)."""
    k, r = _reduce_ln2(x, f)
    p = _expm1_poly(r, f)
    s = _pow2(k, f)
    return fma(s, p, s - 1.0), k, p


def expm1(x: Expr) -> Expr:
    f = _Format(x.dtype)
    small, k, p = _expm1_moderate(x, f)      # k stays small where expm1 differs from exp
    big = _scale(p + 1.0, k, f)
    result = select(x > f.c(20.0 if x.dtype == float32 else 40.0), big, small)
    result = select(x > f.exp_max, f.c(math.inf), result)
    result = select(op("eq", x, f.c(0.0)), x, result)      # expm1(-0.) is -0.
    return select(x < f.expm1_min, f.c(-1.0), result)


def log(x: Expr) -> Expr:
    f = _Format(x.dtype)
    denormal = x < f.tiny
    xs = select(denormal, x * 2.0 ** f.mant_bits, x)
    bits = bitcast(xs, f.int)
    e = ((bits >> f.mant_bits) & ((1 << (x.dtype.itemsize * 8 - 1 - f.mant_bits)) - 1)) - f.bias
    e = e - select(denormal, f.i(f.mant_bits), f.i(0))
    m = bitcast((bits & ((1 << f.mant_bits) - 1)) | (f.bias << f.mant_bits), x.dtype)   # [1, 2)
    big = m > math.sqrt(2)
    m = select(big, m * 0.5, m)
    e = e + select(big, f.i(1), f.i(0))
    result = _log1p_reduced(m - 1.0, f)
    ef = cast(e, x.dtype)
    result = fma(ef, f.c(f.ln2_hi), fma(ef, f.c(f.ln2_lo), result))
    return _log_specials(x, result, f)


def _log1p_reduced(g: Expr, f: _Format) -> Expr:
    """log(1+g) for sqrt(1/2)-1 <= g <= sqrt(2)-1, via s = g/(2+g) and the atanh series."""
    s = g / (g + 2.0)
    z = s * s
    r = z * _horner(z, [2 / (2 * n + 3) for n in range(f.log_terms)], f)
    hfsq = 0.5 * g * g
    return g - (hfsq - s * (hfsq + r))


def _log_specials(x: Expr, result: Expr, f: _Format) -> Expr:
    result = select(op("eq", x, f.c(0.0)), f.c(-math.inf), result)
    result = select(x < 0.0, f.c(math.nan), result)
    result = select(op("eq", x, f.c(math.inf)), x, result)
    return select(op("ne", x, x), x, result)


def log1p(x: Expr) -> Expr:
    f = _Format(x.dtype)
    u = x + 1.0
    d = u - 1.0
    result = select(op("eq", d, f.c(0.0)), x, log(u) * (x / d))
    return select(op("eq", x, f.c(math.inf)), x, result)


def tanh(x: Expr) -> Expr:
    f = _Format(x.dtype)
    ax = op("abs", x)
    # |x| is clamped where tanh rounds to 1, so expm1(2|x|) needs none of expm1's special
    # cases (overflow, large or negative arguments, -0): its moderate-range core alone, the
    # same bits for 20-25% less work (the fused tanh benchmark at 2 threads)
    big = ax > f.tanh_max
    e, _, _ = _expm1_moderate(select(big, f.c(f.tanh_max), ax) * 2.0, f)    # a NaN stays NaN
    t = select(big, f.c(1.0), e / (e + 2.0))
    return _copysign(t, x, f)                                 # tanh(-0.) is -0.


def logistic(x: Expr) -> Expr:
    f = _Format(x.dtype)
    e = exp(-op("abs", x))
    return select(x >= 0.0, f.c(1.0), e) / (e + 1.0)


# --- sin and cos -------------------------------------------------------------------

_PIO2_1 = 1.57079632673412561417e+00    # first 33 bits of pi/2
_PIO2_2 = 6.07710050630396597660e-11    # next 33 bits
_PIO2_3 = 2.02226624879595063154e-21    # the rest


def fast_sin_cos_ok(x: Expr) -> Expr:
    """True where ``sin``/``cos`` below are accurate (everywhere but huge finite arguments)."""
    return op("not", op("abs", x) > SIN_COS_FAST_LIMIT)


def sin(x: Expr) -> Expr:
    return _sin_cos(x, 0)


def cos(x: Expr) -> Expr:
    return _sin_cos(x, 1)


def _sin_cos(x: Expr, shift: int) -> Expr:
    wide = cast(x, float64) if x.dtype == float32 else x
    f = _Format(float64)
    kf = op("round_even", wide * (2 / math.pi))
    r = fma(kf, f.c(-_PIO2_1), wide)
    r = fma(kf, f.c(-_PIO2_2), r)
    r = fma(kf, f.c(-_PIO2_3), r)
    magic = f.c(1.5 * 2.0 ** 52)
    quadrant = (bitcast(kf + magic, int64) + shift) & 3
    z = r * r
    s = fma(z * r, _horner(z, [(-1) ** (n + 1) / math.factorial(2 * n + 3) for n in range(8)], f), r)
    c = fma(z, _horner(z, [(-1) ** (n + 1) / math.factorial(2 * n + 2) for n in range(9)], f),
            f.c(1.0))
    value = select(op("eq", quadrant & 1, Const(0, int64)), s, c)
    value = select(op("eq", quadrant & 2, Const(0, int64)), value, -value)
    if shift == 0:
        value = select(op("eq", wide, f.c(0.0)), wide, value)   # sin(-0.) is -0.
    return cast(value, x.dtype)


# --- floor division and floor modulo of floats (NumPy's divmod) ----------------------

def floordiv(a: Expr, b: Expr) -> Expr:
    f = _Format(a.dtype)
    m = op("rem", a, b)
    d = (a - m) / b
    d = select(_ne(m, f.c(0.0)) & _ne(b < 0.0, m < 0.0), d - 1.0, d)
    fl = op("floor", d)
    fl = select(d - fl > 0.5, fl + 1.0, fl)
    zero_sign = _copysign(f.c(0.0), a / b, f)
    result = select(op("ne", d, f.c(0.0)), fl, zero_sign)
    return select(op("eq", b, f.c(0.0)), a / b, result)


def mod(a: Expr, b: Expr) -> Expr:
    f = _Format(a.dtype)
    m = op("rem", a, b)
    fixed = select(_ne(b < 0.0, m < 0.0), m + b, m)
    return select(op("ne", m, f.c(0.0)), fixed, _copysign(f.c(0.0), b, f))


def _copysign(mag: Expr, sign: Expr, f: _Format) -> Expr:
    bits = mag.dtype.itemsize * 8
    sign_bit, magnitude = f.i(-(1 << (bits - 1))), f.i((1 << (bits - 1)) - 1)
    bits = (bitcast(mag, f.int) & magnitude) | (bitcast(sign, f.int) & sign_bit)
    return bitcast(bits, mag.dtype)


def _ne(a: Expr, b) -> Expr:
    return op("ne", a, b)


def expand(name: str, args: tuple[Expr, ...]) -> Expr:
    """The polynomial/bit-twiddling form of float op ``name`` (one of ``EXPANDED``)."""
    fn = {"exp": exp, "log": log, "log1p": log1p, "expm1": expm1, "tanh": tanh,
          "logistic": logistic, "sin": sin, "cos": cos, "floordiv": floordiv, "mod": mod}[name]
    return fn(*args)
