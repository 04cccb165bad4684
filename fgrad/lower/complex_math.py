"""Complex arithmetic on real parts: the formulas the complex-program pass
(``fgrad.lower.complex_split``) writes for each elementwise operation on complex values.

A complex value is a ``Pair`` of real values (its real and imaginary parts: arrays, tracers or
NumPy scalars); each function here takes and returns Pairs, binding real primitives only. The
formulas are the eager implementation's (NumPy's: Smith's division, C99's ``csqrt`` method,
Kahan's ``tanh``; ``log |z|`` and ``|z|`` of complex64 in float64, of complex128 with exact
squares near the unit circle; XLA's accurate ``log1p``), so finite results agree with eager
evaluation to rounding.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fgrad.core import dtypes
from fgrad.core.trace import get_aval
from fgrad.ops import elementwise as ew
from fgrad.ops import shape as sh
from fgrad.ops import special


@dataclass(frozen=True)
class Pair:
    """A complex value as its two real parts (arrays, tracers or NumPy scalars)."""
    re: Any
    im: Any


def array(part, like):
    """A part that is a NumPy scalar (a literal's) as an array shaped like ``like``."""
    if isinstance(part, (np.generic, np.ndarray)) and np.ndim(part) == 0:
        aval = get_aval(like)
        return sh.full(aval.shape, part, aval.dtype)
    return part


def add(x: Pair, y: Pair) -> Pair:
    return Pair(ew.add(x.re, y.re), ew.add(x.im, y.im))


def neg(z: Pair) -> Pair:
    return Pair(ew.neg(z.re), ew.neg(z.im))


def const(like, value: float):
    """``value`` as a NumPy scalar of ``like``'s (real) dtype."""
    return get_aval(like).dtype.type(value)


def mul(x: Pair, y: Pair) -> Pair:
    """(a + ib)(c + id) = (ac - bd) + i(ad + bc), NumPy's formula."""
    return Pair(ew.sub(ew.mul(x.re, y.re), ew.mul(x.im, y.im)), ew.add(ew.mul(x.re, y.im), ew.mul(x.im, y.re)))


def div(x: Pair, y: Pair) -> Pair:
    """NumPy's complex division (Smith's algorithm; by a zero divisor, the parts over 0)."""
    a, b, c, d = x.re, x.im, y.re, y.im
    abs_c, abs_d = ew.abs(c), ew.abs(d)
    by_re = ew.ge(abs_c, abs_d)
    zero = ew.bitwise_and(ew.eq(abs_c, const(c, 0)), ew.eq(abs_d, const(d, 0)))
    ratio = ew.div(d, c)                                     # |c| >= |d|
    scale = ew.div(const(c, 1), ew.add(c, ew.mul(d, ratio)))
    re1, im1 = ew.mul(ew.add(a, ew.mul(b, ratio)), scale), ew.mul(ew.sub(b, ew.mul(a, ratio)), scale)
    ratio2 = ew.div(c, d)                                    # |c| < |d|
    scale2 = ew.div(const(c, 1), ew.add(d, ew.mul(c, ratio2)))
    re2, im2 = ew.mul(ew.add(ew.mul(a, ratio2), b), scale2), ew.mul(ew.sub(ew.mul(b, ratio2), a), scale2)
    re0, im0 = ew.div(a, abs_c), ew.div(b, abs_c)
    pick = lambda p0, p1, p2: ew.select_n(by_re, p2, ew.select_n(zero, p1, p0))   # noqa: E731
    return Pair(pick(re0, re1, re2), pick(im0, im1, im2))


def parts(z) -> Pair:
    return z if isinstance(z, Pair) else Pair(z, const(z, 0))


def same_shape(x: Pair, like) -> Pair:
    return Pair(array(x.re, like), array(x.im, like))


def abs_(z: Pair):
    """``hypot(re, im)``: float32 parts as ``sqrt(x^2 + y^2)`` in float64 (exact squares, no
    overflow), float64 ones as ``hi * sqrt(1 + (lo / hi)**2)`` (inf if either part is and
    neither is NaN; NaN if either is, as in JAX)."""
    if in_float64(z.re):
        x, y = wide(z.re), wide(z.im)
        return narrow(ew.sqrt(ew.add(ew.mul(x, x), ew.mul(y, y))), z.re)
    ax, ay = ew.abs(z.re), ew.abs(z.im)
    hi, lo = ew.max(ax, ay), ew.min(ax, ay)
    zero = ew.eq(hi, const(hi, 0))
    safe = ew.select_n(zero, hi, const(hi, 1))
    ratio = ew.div(lo, safe)
    out = ew.select_n(zero, ew.mul(hi, ew.sqrt(ew.add(const(hi, 1), ew.mul(ratio, ratio)))), const(hi, 0))
    infinite = ew.bitwise_or(ew.eq(ax, const(ax, np.inf)), ew.eq(ay, const(ay, np.inf)))
    out = ew.select_n(infinite, out, const(hi, np.inf))
    nan_part = ew.bitwise_or(ew.ne(ax, ax), ew.ne(ay, ay))
    return ew.select_n(nan_part, out, const(hi, np.nan))


def exp(z: Pair) -> Pair:
    e = ew.exp(z.re)
    # exp(x + 0i) is real (no inf * 0 = NaN in the imaginary part), as C99's cexp
    im = ew.select_n(ew.eq(z.im, const(z.im, 0)), ew.mul(e, ew.sin(z.im)), z.im)
    return Pair(ew.mul(e, ew.cos(z.im)), im)


def in_float64(part) -> bool:
    return get_aval(part).dtype == dtypes.float32


def wide(x):
    return ew.convert_element_type_p.bind(x, new_dtype=dtypes.float64, weak_type=False)


def narrow(x, like):
    return ew.convert_element_type_p.bind(x, new_dtype=get_aval(like).dtype, weak_type=False)


def log_abs(z: Pair):
    """``log |z|``, accurate near ``|z| == 1`` too (where ``log`` of a rounded ``|z|`` loses the
    digits): float32 parts in float64 (their squares are exact there), float64 parts by
    ``log1p((hi - 1)(hi + 1) + lo^2) / 2`` near 1."""
    if in_float64(z.re):
        x, y = wide(z.re), wide(z.im)   # (no float64 constants: they narrow without x64)
        return ew.mul(narrow(ew.log(ew.add(ew.mul(x, x), ew.mul(y, y))), z.re), const(z.re, 0.5))
    hi, lo = ew.max(ew.abs(z.re), ew.abs(z.im)), ew.min(ew.abs(z.re), ew.abs(z.im))
    near = ew.bitwise_and(ew.gt(hi, const(hi, 0.5)), ew.lt(hi, const(hi, 2)))
    around_one = ew.mul(ew.log1p(x2y2m1(hi, lo)), const(hi, 0.5))
    return ew.select_n(near, ew.log(abs_(z)), around_one)


def exact_square(a) -> tuple:
    """``a * a`` as ``(p, e)`` with ``p + e`` exact (Dekker's product, Veltkamp's split; the
    lowering does not contract into FMAs, so each step rounds as written)."""
    c = ew.mul(a, const(a, 134217729.0))            # 2^27 + 1
    high = ew.sub(c, ew.sub(c, a))
    low = ew.sub(a, high)
    p = ew.mul(a, a)
    e = ew.add(ew.add(ew.sub(ew.mul(high, high), p), ew.mul(ew.add(high, high), low)), ew.mul(low, low))
    return p, e


def x2y2m1(hi, lo):
    """``hi^2 + lo^2 - 1`` for 1/2 < hi < 2 without cancellation (as C libraries' clog): the
    squares split exactly, ``p_hi - 1`` exact (Sterbenz), small terms added first."""
    p_hi, e_hi = exact_square(hi)
    p_lo, e_lo = exact_square(lo)
    return ew.add(ew.add(ew.sub(p_hi, const(hi, 1)), p_lo), ew.add(e_lo, e_hi))


def log(z: Pair) -> Pair:
    return Pair(log_abs(z), special.atan2(z.im, z.re))


def sqrt(z: Pair) -> Pair:
    """``jnp.sqrt``: C99's (``sqrt_c99``), except that, as in JAX, a zero imaginary part has no
    sign (``sqrt(-1 - 0j) = +1j``), an infinite one gives ``inf + b j`` unless the real part
    is NaN, and a NaN part gives ``nan + nan j``."""
    a, b = z.re, _unsigned(z.im)
    root = sqrt_c99(Pair(a, b))
    infinite_b = ew.bitwise_and(ew.eq(ew.abs(b), const(b, np.inf)), ew.eq(a, a))
    return Pair(ew.select_n(infinite_b, root.re, const(a, np.inf)), ew.select_n(infinite_b, root.im, b))


def sqrt_c99(z: Pair) -> Pair:
    """C99's method: t = sqrt((|a| + |z|) / 2); a >= 0: (t, b / 2t), else (|b| / 2t, ±t); a
    signed zero imaginary part picks its side of the cut (Kahan's inverse functions rely on it)."""
    a, b = z.re, z.im
    t = ew.sqrt(ew.mul(ew.add(ew.abs(a), abs_(z)), const(a, 0.5)))
    zero = ew.eq(t, const(t, 0))
    half_b = ew.div(b, ew.mul(ew.select_n(zero, t, const(t, 1)), const(t, 2)))
    nonneg = ew.ge(a, const(a, 0))
    re = ew.select_n(nonneg, ew.abs(half_b), t)
    im = ew.select_n(nonneg, copysign(t, b), half_b)
    return Pair(ew.select_n(zero, re, const(a, 0)), ew.select_n(zero, im, b))


def copysign(x, sign_of):
    negative = special.signbit(sign_of)
    return ew.select_n(negative, ew.abs(x), ew.neg(ew.abs(x)))


def _zero_where_zero(part, factor_arg):
    """``part``, or +0 where ``factor_arg`` (whose sine is a factor of it) is ±0: as in JAX,
    ``sin(0 + inf j)`` is ``0 + inf j`` (not ``0 * inf`` = NaN), and that zero has no sign."""
    return ew.select_n(ew.eq(factor_arg, const(factor_arg, 0)), part, const(part, 0))


def _unsigned(part):
    """``part`` with a zero made +0, as JAX gives it (the eager rules: ``elementwise.complex_trig``)."""
    return _zero_where_zero(part, part)


def sin(z: Pair) -> Pair:
    return Pair(_zero_where_zero(ew.mul(ew.sin(z.re), special.cosh(z.im)), z.re),
                ew.mul(ew.cos(z.re), special.sinh(z.im)))


def cos(z: Pair) -> Pair:
    return Pair(ew.mul(ew.cos(z.re), special.cosh(z.im)),
                _zero_where_zero(ew.neg(ew.mul(ew.sin(z.re), special.sinh(z.im))), z.re))


def sinh(z: Pair) -> Pair:
    return Pair(_unsigned(ew.mul(special.sinh(z.re), ew.cos(z.im))),
                _zero_where_zero(ew.mul(special.cosh(z.re), ew.sin(z.im)), z.im))


def cosh(z: Pair) -> Pair:
    return Pair(ew.mul(special.cosh(z.re), ew.cos(z.im)),
                _unsigned(_zero_where_zero(ew.mul(special.sinh(z.re), ew.sin(z.im)), z.im)))


def tanh(z: Pair) -> Pair:
    """Kahan's formula (as C libraries compute ``ctanh``): with t = tan b, s = sinh a,
    tanh(a + ib) = (s sqrt(1 + s^2) (1 + t^2) + i t) / (1 + (1 + t^2) s^2), which has no
    cancellation near the poles; once |a| > 20, sign(a) + i 4 sin b cos b e^(-2|a|)."""
    a, b = z.re, z.im
    big = ew.gt(ew.abs(a), const(a, 20))
    safe_a = ew.select_n(big, a, const(a, 0))
    t, s = special.tan(b), special.sinh(safe_a)
    beta = ew.add(const(t, 1), ew.mul(t, t))
    rho = ew.sqrt(ew.add(const(s, 1), ew.mul(s, s)))
    den = ew.add(const(s, 1), ew.mul(beta, ew.mul(s, s)))
    tail = ew.mul(ew.mul(const(a, 4), ew.mul(ew.sin(b), ew.cos(b))), ew.exp(ew.mul(ew.abs(a), const(a, -2))))
    re = ew.select_n(big, ew.div(ew.mul(beta, ew.mul(rho, s)), den), ew.sign(a))
    im = ew.select_n(big, ew.div(t, den), tail)
    return Pair(re, im)


def tan(z: Pair) -> Pair:
    """tan(z) = -i tanh(iz)."""
    t = tanh(Pair(ew.neg(z.im), z.re))
    return Pair(t.im, ew.neg(t.re))


def expm1(z: Pair) -> Pair:
    """expm1(a + ib) = (expm1(a) cos b - 2 sin^2(b/2)) + i e^a sin b: exact near 0. A zero
    imaginary part stays that zero (expm1(inf + 0j) = inf + 0j, not inf*0 = NaN), as in JAX."""
    half = ew.sin(ew.mul(z.im, const(z.im, 0.5)))
    re = ew.sub(ew.mul(ew.expm1(z.re), ew.cos(z.im)), ew.mul(const(half, 2), ew.mul(half, half)))
    im = ew.mul(ew.exp(z.re), ew.sin(z.im))
    return Pair(re, ew.select_n(ew.eq(z.im, const(z.im, 0)), im, z.im))


def log1p(z: Pair) -> Pair:
    """log(1 + z), accurate for small z, as the eager implementation and XLA: for |z| < 1/2 the
    real part ``log1p(2x + x^2 + y^2) / 2`` (float32 parts in float64), else ``log |1 + z|``."""
    x, y = z.re, z.im
    one_plus = Pair(ew.add(x, const(x, 1)), y)
    if in_float64(x):
        wx, wy = wide(x), wide(y)       # (no float64 constants: they narrow without x64)
        arg = ew.add(ew.add(wx, wx), ew.add(ew.mul(wx, wx), ew.mul(wy, wy)))
        small = ew.lt(abs_(z), const(x, 0.5))
        re = ew.select_n(small, log_abs(one_plus), ew.mul(narrow(ew.log1p(arg), x), const(x, 0.5)))
    else:
        small = ew.lt(abs_(z), const(x, 0.5))
        arg = ew.add(ew.mul(x, const(x, 2)), ew.add(ew.mul(x, x), ew.mul(y, y)))
        re = ew.select_n(small, log_abs(one_plus), ew.mul(ew.log1p(arg), const(x, 0.5)))
    return Pair(re, special.atan2(y, one_plus.re))


def one(z: Pair) -> Pair:
    return Pair(const(z.re, 1), const(z.re, 0))


def integer_pow(z: Pair, y: int) -> Pair:
    """Binary exponentiation, as the eager implementation multiplies (1/result for y < 0)."""
    result, base, n = None, z, abs(y)
    while n:
        if n & 1:
            result = base if result is None else mul(result, base)
        n >>= 1
        if n:
            base = mul(base, base)
    if result is None:
        return same_shape(one(z), z.re)
    return same_shape(div(one(z), result), z.re) if y < 0 else result


def power(x: Pair, y: Pair) -> Pair:
    """exp(y log x), with XLA's (JAX's) ``0 ** y``: 1 for ``y == 0``, 0 for a real ``y > 0``,
    NaN otherwise (as the eager implementation)."""
    out = exp(mul(y, log(x)))
    x_zero = ew.bitwise_and(ew.eq(x.re, const(x.re, 0)), ew.eq(x.im, const(x.im, 0)))
    y_real = ew.eq(y.im, const(y.im, 0))
    y_zero = ew.bitwise_and(ew.eq(y.re, const(y.re, 0)), y_real)
    y_positive = ew.bitwise_and(ew.gt(y.re, const(y.re, 0)), y_real)
    nan = const(x.re, np.nan)
    zero_re = ew.select_n(y_zero, ew.select_n(y_positive, nan, const(x.re, 0)), const(x.re, 1))
    zero_im = ew.select_n(ew.bitwise_or(y_zero, y_positive), nan, const(x.im, 0))
    return Pair(ew.select_n(x_zero, out.re, zero_re), ew.select_n(x_zero, out.im, zero_im))


# --- inverse trigonometric and hyperbolic functions ----------------------------------------------------
# Kahan's formulas ("Branch cuts for complex elementary functions", 1987): through sqrt(1 - z) and
# sqrt(1 + z), written so that no step cancels, and with 1 - z's imaginary part -y (not 0 - y), so
# that the sign of a zero imaginary part picks the side of a branch cut as C99 (and NumPy) do.

def _one_minus(z: Pair) -> Pair:
    return Pair(ew.sub(const(z.re, 1), z.re), ew.neg(z.im))


def _plus_one(z: Pair, one: float = 1.0) -> Pair:
    return Pair(ew.add(z.re, const(z.re, one)), z.im)


def asin(z: Pair) -> Pair:
    """``asin z = atan2(x, Re(s1 s2)) + i asinh(Im(conj(s1) s2))``, ``s1 = sqrt(1 - z)``,
    ``s2 = sqrt(1 + z)``."""
    s1, s2 = sqrt_c99(_one_minus(z)), sqrt_c99(_plus_one(z))
    re = special.atan2(z.re, ew.sub(ew.mul(s1.re, s2.re), ew.mul(s1.im, s2.im)))
    return Pair(re, special.asinh(ew.sub(ew.mul(s1.re, s2.im), ew.mul(s1.im, s2.re))))


def acos(z: Pair) -> Pair:
    """``acos z = 2 atan2(Re s1, Re s2) + i asinh(Im(conj(s2) s1))``, ``s1 = sqrt(1 - z)``,
    ``s2 = sqrt(1 + z)``."""
    s1, s2 = sqrt_c99(_one_minus(z)), sqrt_c99(_plus_one(z))
    re = ew.mul(const(z.re, 2), special.atan2(s1.re, s2.re))
    return Pair(re, special.asinh(ew.sub(ew.mul(s2.re, s1.im), ew.mul(s2.im, s1.re))))


def acosh(z: Pair) -> Pair:
    """``acosh z = asinh(Re(conj(s1) s2)) + 2i atan2(Im s1, Re s2)``, ``s1 = sqrt(z - 1)``,
    ``s2 = sqrt(z + 1)``."""
    s1, s2 = sqrt_c99(_plus_one(z, -1.0)), sqrt_c99(_plus_one(z))
    re = special.asinh(ew.add(ew.mul(s1.re, s2.re), ew.mul(s1.im, s2.im)))
    return Pair(re, ew.mul(const(z.re, 2), special.atan2(s1.im, s2.re)))


def asinh(z: Pair) -> Pair:
    """``asinh z = -i asin(iz)``."""
    w = asin(Pair(ew.neg(z.im), z.re))
    return Pair(w.im, ew.neg(w.re))


def atanh(z: Pair) -> Pair:
    """``atanh(x + iy) = sign(x) log1p(4|x| / ((1 - |x|)^2 + y^2)) / 4 + i atan2(2y, (1 - x)(1 + x) - y^2) / 2``:
    no cancellation, the side of the cut from the sign of a zero ``y``, ``±inf`` at ``±1``;
    float32 parts in float64, float64 ones scaled so that no square underflows."""
    x, y = z.re, z.im
    if in_float64(x):   # the sign is copied in float32: signbit's float64 constants narrow without x64
        magnitude, im = _atanh_parts(wide(x), wide(y), lambda v: wide(const(x, v)))
        return Pair(copysign(narrow(magnitude, x), x), narrow(im, y))
    magnitude, im = _atanh_parts(x, y, lambda v: const(x, v))
    return Pair(copysign(magnitude, x), im)


def _atanh_parts(x, y, k) -> tuple:
    """atanh's real part's magnitude and its imaginary part; ``k(v)``: the constant ``v`` in
    the parts' dtype."""
    ax = ew.abs(x)
    one_minus = ew.sub(k(1), ax)
    scale = ew.max(ew.abs(one_minus), ew.abs(y))
    pole = ew.eq(scale, k(0))                                     # x = ±1, y = 0
    scale = ew.select_n(pole, scale, k(1))
    u, v = ew.div(one_minus, scale), ew.div(y, scale)
    norm = ew.select_n(pole, ew.add(ew.mul(u, u), ew.mul(v, v)), k(1))   # in [1, 2]
    ratio = ew.div(ew.div(ew.div(ew.mul(k(4), ax), scale), scale), norm)
    near = ew.mul(ew.log1p(ratio), k(0.25))
    far = ew.mul(ew.sub(ew.log(ew.div(ew.mul(k(4), ax), norm)), ew.mul(k(2), ew.log(scale))), k(0.25))
    magnitude = ew.select_n(ew.gt(ratio, k(2.0 ** 60)), near, far)   # log1p(r) == log(r) there
    magnitude = ew.select_n(pole, magnitude, k(np.inf))
    below = ew.sub(ew.mul(ew.sub(k(1), x), ew.add(k(1), x)), ew.mul(y, y))
    return magnitude, ew.mul(special.atan2(ew.add(y, y), below), k(0.5))


def atan(z: Pair) -> Pair:
    """``atan z = -i atanh(iz)``."""
    w = atanh(Pair(ew.neg(z.im), z.re))
    return Pair(w.im, ew.neg(w.re))
