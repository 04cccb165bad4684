"""Special functions as primitives: ``atan2``, ``atan``, ``asin``, ``acos``, ``tan``, ``sinh``,
``cosh``, ``asinh``, ``acosh``, ``atanh``, ``cbrt``, ``exp2``, ``erf``, ``erfc``, ``erf_inv`` (JAX's lax
primitives of those names).

Each is a primitive of its own, not a composition, so that its derivative is the
mathematical one everywhere (JAX's rules), including where a composition through
``sign``/``abs``/``select`` would differentiate to 0 (``sinh`` at 0, ``atan2`` on an axis).
Eagerly each runs the exact NumPy function. Compiled code runs its *decomposition*: a
function of simpler primitives registered in ``decompositions``, which the lowering
traces on the equation's operand types and inlines. Decompositions keep signed zeros,
infinities and NaNs as NumPy does (``atan2(-0., -0.) == -pi``, ``sinh(-0.) == -0.``).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from fgrad.core import dtypes
from fgrad.core.partition import register_unpartitioned
from fgrad.core.primitive import Primitive
from fgrad.core.trace import get_aval
from fgrad.ops import elementwise as ew
from fgrad.ops.elementwise import _bind2, _define, _quiet, _same_type_rule
from fgrad.ops.shape import broadcast_in_dim
from fgrad.core.rules import jvp_rules, symbolic_zero_rules

__all__ = ["atan2", "atan", "asin", "acos", "tan", "sinh", "cosh", "asinh", "acosh", "atanh", "cbrt", "exp2", "erf", "erfc", "erf_inv"]

#: primitive -> function of simpler primitives computing it (the lowering inlines it)
decompositions: dict[Primitive, Callable[..., Any]] = {}
#: primitives whose decomposition takes float16/bfloat16 operands as they are; the others' are
#: given them widened to float32 (and round once at the end)
exact_in_half: set[Primitive] = set()


def _special(name: str, impl: Callable, kinds: str = ew.FLOAT) -> Primitive:
    return _define(name, _quiet(impl), _same_type_rule(name, kinds))


atan2_p = _special("atan2", np.arctan2)
atan_p = _special("atan", np.arctan, ew.INEXACT)
asin_p = _special("asin", np.arcsin, ew.INEXACT)
acos_p = _special("acos", np.arccos, ew.INEXACT)
tan_p = _special("tan", np.tan, ew.INEXACT)
sinh_p = _special("sinh", ew.complex_trig(np.sinh, lambda a, b: (np.sinh(a) * np.cos(b), np.cosh(a) * np.sin(b)),
                                          (("im", "im"),), ("re",)), ew.INEXACT)
cosh_p = _special("cosh", ew.complex_trig(np.cosh, lambda a, b: (np.cosh(a) * np.cos(b), np.sinh(a) * np.sin(b)),
                                          (("im", "im"),), ("im",)), ew.INEXACT)
asinh_p = _special("asinh", np.arcsinh, ew.INEXACT)
acosh_p = _special("acosh", np.arccosh, ew.INEXACT)
atanh_p = _special("atanh", np.arctanh, ew.INEXACT)
cbrt_p = _special("cbrt", np.cbrt)
exp2_p = _special("exp2", np.exp2)
# erf/erfc: NumPy has none, so eagerly W. J. Cody's rational approximations (below) in float64
erf_p = _special("erf", lambda x: _cody_erf(np.asarray(x, np.float64), _NumpyOps, False).astype(x.dtype))
erfc_p = _special("erfc", lambda x: _cody_erf(np.asarray(x, np.float64), _NumpyOps, True).astype(x.dtype))
erf_inv_p = _special("erf_inv", lambda x: _erf_inv(np.asarray(x, np.float64), _NumpyOps).astype(x.dtype))


def atan2(x, y):
    """``arctan(x / y)`` in the quadrant of the point ``(y, x)``, in [-pi, pi] (NumPy's
    ``arctan2(x, y)``; signed zeros as in NumPy)."""
    return _bind2(atan2_p, x, y)


def atan(x): return atan_p.bind(x)
def asin(x): return asin_p.bind(x)
def acos(x): return acos_p.bind(x)
def tan(x): return tan_p.bind(x)
def sinh(x): return sinh_p.bind(x)
def cosh(x): return cosh_p.bind(x)
def asinh(x): return asinh_p.bind(x)
def acosh(x): return acosh_p.bind(x)
def atanh(x): return atanh_p.bind(x)
def cbrt(x): return cbrt_p.bind(x)
def exp2(x): return exp2_p.bind(x)


def erf(x):
    """The error function ``2/sqrt(pi) * integral(exp(-t**2), 0, x)``, accurate to float64."""
    return erf_p.bind(x)


def erfc(x):
    """``1 - erf(x)``, accurate for large ``x`` too (where ``1 - erf(x)`` cancels to 0)."""
    return erfc_p.bind(x)


def erf_inv(x):
    """The inverse of ``erf`` on [-1, 1] (``±inf`` at ``±1``, NaN outside)."""
    return erf_inv_p.bind(x)


# --- JVP rules (JAX's formulas, written with primitives so they differentiate again) ---------

def _c(x, value):
    return ew._const(x, value)


def _jvp(prim: Primitive, derivative: Callable[[Any, Any], Any]) -> None:
    """``t_out = t * derivative(x, y)`` for a unary primitive (``y = prim(x)``)."""
    def rule(primals, tangents):
        (x,), (t,) = primals, tangents
        y = prim.bind(x)
        return y, ew.mul(t, derivative(x, y))
    jvp_rules[prim] = rule


def _one_minus_square(x):
    return ew.sub(_c(x, 1), ew.square(x))


_jvp(atan_p, lambda x, y: ew.div(_c(x, 1), ew.add(_c(x, 1), ew.square(x))))
_jvp(asin_p, lambda x, y: ew.rsqrt(_one_minus_square(x)))
_jvp(acos_p, lambda x, y: ew.neg(ew.rsqrt(_one_minus_square(x))))
_jvp(tan_p, lambda x, y: ew.add(_c(x, 1), ew.square(y)))
_jvp(sinh_p, lambda x, y: cosh(x))
_jvp(cosh_p, lambda x, y: sinh(x))
_jvp(asinh_p, lambda x, y: ew.rsqrt(ew.add(ew.square(x), _c(x, 1))))
_jvp(acosh_p, lambda x, y: ew.rsqrt(ew.sub(ew.square(x), _c(x, 1))))
_jvp(atanh_p, lambda x, y: ew.div(ew.div(_c(x, 1), ew.add(_c(x, 1), x)), ew.sub(_c(x, 1), x)))
_jvp(cbrt_p, lambda x, y: ew.mul(_c(x, 1 / 3), ew.integer_pow(y, -2)))
_jvp(exp2_p, lambda x, y: ew.mul(y, _c(x, math.log(2.0))))
_jvp(erf_p, lambda x, y: ew.mul(_c(x, 2 / math.sqrt(math.pi)), ew.exp(ew.neg(ew.square(x)))))
_jvp(erfc_p, lambda x, y: ew.mul(_c(x, -2 / math.sqrt(math.pi)), ew.exp(ew.neg(ew.square(x)))))
_jvp(erf_inv_p, lambda x, y: ew.mul(_c(x, math.sqrt(math.pi) / 2), ew.exp(ew.square(y))))


def _atan2_jvp(primals, tangents):
    (x, y), (tx, ty) = primals, tangents
    out = atan2(x, y)
    denominator = ew.add(ew.square(x), ew.square(y))
    return out, ew._terms(out, None if tx is None else ew.mul(tx, ew.div(y, denominator)),
                          None if ty is None else ew.mul(ty, ew.div(ew.neg(x), denominator)))


jvp_rules[atan2_p] = _atan2_jvp
symbolic_zero_rules.add(atan2_p)   # its terms skip symbolic-zero tangents, as JAX's defjvp


# --- decompositions (what compiled code computes) -----------------------------------------------

def _k(x, value: float):
    """``value`` as a scalar of ``x``'s dtype."""
    return get_aval(x).dtype.type(value)


def _full_like(x, value):
    return ew._full_like(x, value)


def signbit(x):
    """True for negative numbers, -0. and nothing else (NaN: False)."""
    negative = ew.lt(x, _k(x, 0))
    minus_zero = ew.bitwise_and(ew.eq(x, _k(x, 0)), ew.lt(ew.div(_k(x, 1), x), _k(x, 0)))
    return ew.bitwise_or(negative, minus_zero)


def _with_sign_of(x, magnitude):
    """``magnitude`` (>= 0 or NaN) with the sign of ``x``, -0. included."""
    return ew.select_n(signbit(x), magnitude, ew.neg(magnitude))


def _same_shape(x, y):
    sx, sy = get_aval(x).shape, get_aval(y).shape
    if sx == sy:
        return x, y
    return (broadcast_in_dim(x, sy, ()), y) if not sx else (x, broadcast_in_dim(y, sx, ()))


# atan on [0, 1]: one range reduction to |t| <= tan(pi/8), then an odd minimax polynomial
# (float32 accuracy); float64 gets one Newton step on tan(theta) = a.
_ATAN_COEFFS = (8.05374449538e-2, -1.38776856032e-1, 1.99777106478e-1, -3.33329491539e-1)
_TAN_PI_8 = math.tan(math.pi / 8)


def _atan_unit(a):
    """arctan of ``a`` in [0, 1]."""
    big = ew.gt(a, _k(a, _TAN_PI_8))
    t = ew.select_n(big, a, ew.div(ew.sub(a, _k(a, 1)), ew.add(a, _k(a, 1))))
    z = ew.mul(t, t)
    poly = _full_like(a, _ATAN_COEFFS[0])
    for coeff in _ATAN_COEFFS[1:]:
        poly = ew.add(ew.mul(poly, z), _k(a, coeff))
    theta = ew.add(ew.mul(ew.mul(poly, z), t), t)
    theta = ew.select_n(big, theta, ew.add(theta, _k(a, math.pi / 4)))
    if get_aval(a).dtype == dtypes.float64:
        c = ew.cos(theta)
        theta = ew.sub(theta, ew.mul(c, ew.sub(ew.sin(theta), ew.mul(a, c))))
    return theta


def _atan2_decomposition(y, x):
    y, x = _same_shape(y, x)
    ax, ay = ew.abs(x), ew.abs(y)
    hi, lo = ew.max(ax, ay), ew.min(ax, ay)
    both_inf = ew.bitwise_and(ew.eq(ax, _k(x, np.inf)), ew.eq(ay, _k(x, np.inf)))
    safe_hi = ew.select_n(ew.eq(hi, _k(x, 0)), hi, _full_like(hi, 1))
    ratio = ew.select_n(both_inf, ew.div(lo, safe_hi), _full_like(hi, 1))
    theta = _atan_unit(ratio)
    theta = ew.select_n(ew.gt(ay, ax), theta, ew.sub(_k(x, math.pi / 2), theta))
    theta = ew.select_n(signbit(x), theta, ew.sub(_k(x, math.pi), theta))
    return _with_sign_of(y, theta)


def _atan_decomposition(x):
    return _atan2_decomposition(x, _full_like(x, 1))


def _sqrt_one_minus_square(x):
    return ew.sqrt(ew.mul(ew.sub(_k(x, 1), x), ew.add(_k(x, 1), x)))


def _asin_decomposition(x):
    return _atan2_decomposition(x, _sqrt_one_minus_square(x))


def _acos_decomposition(x):
    return _atan2_decomposition(_sqrt_one_minus_square(x), x)


def _tan_decomposition(x):
    return ew.div(ew.sin(x), ew.cos(x))


def _half_exp(a):
    """``exp(a) / 2`` for ``a >= 0`` without overflowing early (exp(a) alone overflows first)."""
    limit = _k(a, 88.0 if get_aval(a).dtype != dtypes.float64 else 709.0)
    below = ew.lt(a, limit)
    small = ew.select_n(below, _full_like(a, 0), a)
    large = ew.select_n(below, a, _full_like(a, limit))
    return ew.select_n(below, ew.exp(ew.sub(large, _k(a, math.log(2.0)))), ew.mul(ew.exp(small), _k(a, 0.5)))


def _sinh_decomposition(x):
    ax = ew.abs(x)
    small = ew.lt(ax, _k(x, 1))
    xs = ew.select_n(small, _full_like(ax, 0), ax)
    xl = ew.select_n(small, ax, _full_like(ax, 1))
    near_zero = ew.mul(ew.sub(ew.expm1(xs), ew.expm1(ew.neg(xs))), _k(x, 0.5))
    half_exp = _half_exp(xl)
    large = ew.sub(half_exp, ew.div(_k(x, 0.25), half_exp))
    return _with_sign_of(x, ew.select_n(small, large, near_zero))


def _cosh_decomposition(x):
    half_exp = _half_exp(ew.abs(x))
    return ew.add(half_exp, ew.div(_k(x, 0.25), half_exp))


def _large_threshold(x) -> float:
    """Beyond this, asinh/acosh(x) = log(2x) to working precision (and x*x would overflow)."""
    return 2.0 ** 12 if get_aval(x).dtype != dtypes.float64 else 2.0 ** 27


def _asinh_decomposition(x):
    a = ew.abs(x)
    large = ew.gt(a, _k(x, _large_threshold(x)))
    small_a = ew.select_n(large, a, _full_like(a, 0))
    large_a = ew.select_n(large, _full_like(a, 1), a)
    sq = ew.mul(small_a, small_a)
    near = ew.log1p(ew.add(small_a, ew.div(sq, ew.add(_k(x, 1), ew.sqrt(ew.add(sq, _k(x, 1)))))))
    far = ew.add(ew.log(large_a), _k(x, math.log(2.0)))
    return _with_sign_of(x, ew.select_n(large, near, far))


def _acosh_decomposition(x):
    large = ew.gt(x, _k(x, _large_threshold(x)))
    t = ew.sub(ew.select_n(large, x, _full_like(x, 1)), _k(x, 1))
    near = ew.log1p(ew.add(t, ew.sqrt(ew.add(ew.mul(t, _k(x, 2)), ew.mul(t, t)))))
    far = ew.add(ew.log(ew.select_n(large, _full_like(x, 1), x)), _k(x, math.log(2.0)))
    out = ew.select_n(large, near, far)
    return ew.select_n(ew.lt(x, _k(x, 1)), out, _full_like(x, np.nan))


def _atanh_decomposition(x):
    a = ew.abs(x)   # odd: compute on |x|, where log1p's argument 2a / (1 - a) is >= 0 and accurate
    return _with_sign_of(x, ew.mul(ew.log1p(ew.div(ew.mul(a, _k(x, 2)), ew.sub(_k(x, 1), a))), _k(x, 0.5)))


def _cbrt_decomposition(x):
    a = ew.abs(x)
    root = ew.pow(a, _k(x, 1 / 3))
    # one Newton step on root**3 == a fixes pow's error from the rounded exponent 1/3
    finite_nonzero = ew.bitwise_and(ew.is_finite(root), ew.gt(root, _k(x, 0)))
    safe = ew.select_n(finite_nonzero, _full_like(root, 1), root)
    step = ew.div(ew.sub(safe, ew.div(a, ew.mul(safe, safe))), _k(x, 3))
    root = ew.select_n(finite_nonzero, root, ew.sub(safe, step))
    return _with_sign_of(x, root)


def _exp2_decomposition(x):
    # 2**x = 2**n * e**(f ln2) with n = round(x) and f = x - n exact, so the error is exp's on
    # |f ln2| <= 0.35 (exp(x ln2) would carry x ln2's rounding error, ~|x| ulp); 2**n is two
    # exact powers, so that neither overflows before the product does
    finite = ew.is_finite(x)
    safe = ew.select_n(finite, _full_like(x, 0), x)
    n = ew.round(safe, "to_nearest_even")
    fraction = ew.exp(ew.mul(ew.sub(safe, n), _k(x, math.log(2.0))))
    half = ew.floor(ew.mul(n, _k(x, 0.5)))
    two = _full_like(x, 2)
    scaled = ew.mul(ew.mul(fraction, ew.pow(two, half)), ew.pow(two, ew.sub(n, half)))
    return ew.select_n(finite, ew.exp(x), scaled)    # exp(±inf) and exp(nan) are 2**x's too


# --- erf and erfc: W. J. Cody, "Rational Chebyshev approximations for the error function",
# Math. Comp. 23 (1969), coefficients of his CALERF (netlib specfun). One algorithm, written over an
# op table, serves eager NumPy (float64) and compiled code (float64; narrower floats compute in
# float64 and round once, so float32 is within 1 ulp).
# |x| <= 0.46875: erf = x * A(x²) / B(x²)
_ERF_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
          3.20937758913846947e03, 1.85777706184603153e-1)
_ERF_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
          2.84423683343917062e03)
# 0.46875 < |x| <= 4: erfc = exp(-x²) * C(|x|) / D(|x|)
_ERF_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
          2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
          2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)
_ERF_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
          1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
          3.43936767414372164e03, 1.23033935480374942e03)
# |x| > 4: erfc = exp(-x²) / |x| * (1/sqrt(pi) - z * P(z) / Q(z)), z = 1/x²
_ERF_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
          1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)
_ERF_Q = (2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1,
          6.05183413124413191e-2, 2.33520497626869185e-3)
_ERF_SMALL, _ERF_BIG = 0.46875, 27.3   # beyond _ERF_BIG, erfc underflows to 0 in float64


class _NumpyOps:
    abs, exp, floor, neg, log, sqrt = np.abs, np.exp, np.floor, np.negative, np.log, np.sqrt
    add, sub, mul, div, le, lt = np.add, np.subtract, np.multiply, np.divide, np.less_equal, np.less

    @staticmethod
    def k(x, value):
        return x.dtype.type(value)

    @staticmethod
    def where(pred, if_true, if_false):
        return np.where(pred, if_true, if_false)


class _LaxOps:
    abs, exp, floor, neg, log, sqrt = ew.abs, ew.exp, ew.floor, ew.neg, ew.log, ew.sqrt
    add, sub, mul, div, le, lt = ew.add, ew.sub, ew.mul, ew.div, ew.le, ew.lt

    @staticmethod
    def k(x, value):
        return _k(x, value)

    @staticmethod
    def where(pred, if_true, if_false):
        return ew.select_n(pred, if_false, if_true)


def _rational(ops, z, numerator, denominator, lead_num: float):
    """``(lead_num*z^n + num[0]*z^(n-1) + ... + num[n-1]) / (z^m + den[0]*z^(m-1) + ... + den[m-1])``,
    Cody's Horner form (the numerator's leading coefficient is its *last* entry)."""
    num = ops.mul(z, ops.k(z, lead_num))
    den = z
    for a, b in zip(numerator[:-1], denominator[:-1]):
        num = ops.mul(ops.add(num, ops.k(z, a)), z)
        den = ops.mul(ops.add(den, ops.k(z, b)), z)
    return ops.div(ops.add(num, ops.k(z, numerator[-1])), ops.add(den, ops.k(z, denominator[-1])))


def _cody_erf(x, ops, complement: bool):
    """erf(x) (or erfc(x) with ``complement``) with Cody's approximations; NaN in, NaN out."""
    with np.errstate(all="ignore"):
        y = ops.abs(x)
        small = ops.le(y, ops.k(x, _ERF_SMALL))
        # |x| small: x * A(x²) / B(x²) (x itself keeps -0.)
        y_small = ops.where(small, y, ops.k(x, 0.0))
        near = ops.mul(x, _rational(ops, ops.mul(y_small, y_small), _ERF_A[:4], _ERF_B, _ERF_A[4]))
        # erfc(|x|) for |x| > 0.46875
        y_far = ops.where(small, ops.k(x, 1.0), y)
        middle = _rational(ops, y_far, _ERF_C[:8], _ERF_D, _ERF_C[8])
        z = ops.div(ops.k(x, 1.0), ops.mul(y_far, y_far))
        tail_ratio = ops.mul(z, _rational(ops, z, _ERF_P[:5], _ERF_Q, _ERF_P[5]))
        tail = ops.div(ops.sub(ops.k(x, 1 / math.sqrt(math.pi)), tail_ratio), y_far)
        # exp(-y²) as exp(-t²) * exp(-(y-t)(y+t)) with t = y rounded down to 1/16: no error
        # from rounding y² (which exp would amplify by y²)
        t = ops.div(ops.floor(ops.mul(y_far, ops.k(x, 16.0))), ops.k(x, 16.0))
        gauss = ops.mul(ops.exp(ops.neg(ops.mul(t, t))),
                        ops.exp(ops.neg(ops.mul(ops.sub(y_far, t), ops.add(y_far, t)))))
        erfc_y = ops.mul(ops.where(ops.le(y_far, ops.k(x, 4.0)), middle, tail), gauss)
        erfc_y = ops.where(ops.le(ops.k(x, _ERF_BIG), y_far), ops.k(x, 0.0), erfc_y)   # NaN stays
        negative = ops.lt(x, ops.k(x, 0.0))
        if complement:
            far = ops.where(negative, ops.sub(ops.k(x, 2.0), erfc_y), erfc_y)
            return ops.where(small, ops.sub(ops.k(x, 1.0), near), far)
        far = ops.where(negative, ops.sub(erfc_y, ops.k(x, 1.0)), ops.sub(ops.k(x, 1.0), erfc_y))
        return ops.where(small, near, far)


# erf_inv: M. Giles' single-precision approximation ("Approximating the erfinv function", GPU
# Computing Gems, 2011) in w = -log(1 - a²), then Newton steps on erf (erfc near 1) in float64
_ERF_INV_CENTRAL = (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087,
                    -0.00125372503, -0.00417768164, 0.246640727, 1.50140941)
_ERF_INV_TAIL = (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773,
                 -0.0076224613, 0.00943887047, 1.00167406, 2.83297682)


_ERF_INV_NEWTON_STEPS = 4   # from Giles' start, 4 reach a few ulp up to 1 - 2**-53


def _horner(ops, w, coeffs):
    p = ops.k(w, 0.0)
    for c in coeffs:
        p = ops.add(ops.mul(p, w), ops.k(w, c))
    return p


def _erf_inv(x, ops):
    with np.errstate(all="ignore"):
        a = ops.abs(x)
        inside = ops.lt(a, ops.k(x, 1.0))
        a_safe = ops.where(inside, a, ops.k(x, 0.5))
        w = ops.neg(ops.log(ops.mul(ops.sub(ops.k(x, 1.0), a_safe), ops.add(ops.k(x, 1.0), a_safe))))
        central = ops.lt(w, ops.k(x, 5.0))
        w_c = ops.where(central, ops.sub(w, ops.k(x, 2.5)), ops.k(x, 0.0))
        w_t = ops.where(central, ops.k(x, 0.0), ops.sub(ops.sqrt(w), ops.k(x, 3.0)))
        root = ops.mul(ops.where(central, _horner(ops, w_c, _ERF_INV_CENTRAL), _horner(ops, w_t, _ERF_INV_TAIL)),
                       a_safe)
        # Newton on erf(root) = a, as erfc(root) = 1 - a (exact for a >= 0.5) where erf is near 1
        upper = ops.lt(ops.k(x, 0.5), a_safe)
        target = ops.where(upper, ops.sub(ops.k(x, 1.0), a_safe), a_safe)
        # (near 1 on log(erfc), which is nearly quadratic: Giles' start is poor beyond float32's range)
        log_target = ops.log(target)
        for _ in range(_ERF_INV_NEWTON_STEPS):
            slope = ops.mul(ops.k(x, 2 / math.sqrt(math.pi)), ops.exp(ops.neg(ops.mul(root, root))))
            tail = _cody_erf(root, ops, True)
            step_upper = ops.div(ops.mul(ops.sub(log_target, ops.log(tail)), tail), slope)
            step_lower = ops.div(ops.sub(_cody_erf(root, ops, False), target), slope)
            root = ops.sub(root, ops.where(upper, step_upper, step_lower))
        one = ops.k(x, 1.0)
        magnitude = ops.where(inside, root, ops.where(ops.le(a, one), ops.k(x, np.inf), ops.k(x, np.nan)))
        signed = ops.where(ops.lt(x, ops.k(x, 0.0)), ops.neg(magnitude), magnitude)
        return ops.where(ops.le(a, ops.k(x, 0.0)), x, signed)     # ±0 -> ±0


def _in_float64(x, fn):
    """``fn`` computed in float64 (narrower floats round once at the end)."""
    dtype = get_aval(x).dtype
    if dtype == dtypes.float64:
        return fn(x)
    return ew.convert_element_type(fn(ew.convert_element_type(x, dtypes.float64)), dtype)


def _erf_decomposition(x, complement: bool):
    return _in_float64(x, lambda wide: _cody_erf(wide, _LaxOps, complement))


decompositions.update({
    atan2_p: _atan2_decomposition, atan_p: _atan_decomposition, asin_p: _asin_decomposition,
    acos_p: _acos_decomposition, tan_p: _tan_decomposition, sinh_p: _sinh_decomposition,
    cosh_p: _cosh_decomposition, asinh_p: _asinh_decomposition, acosh_p: _acosh_decomposition,
    atanh_p: _atanh_decomposition, cbrt_p: _cbrt_decomposition, exp2_p: _exp2_decomposition,
    erf_p: lambda x: _erf_decomposition(x, False), erfc_p: lambda x: _erf_decomposition(x, True),
    erf_inv_p: lambda x: _in_float64(x, lambda wide: _erf_inv(wide, _LaxOps)),
})


# --- partition rules (the data-parallel pass, fgrad.core.partition) ----------------------------------------

# These elementwise functions have no data-parallel rule yet (the partitioner predates them):
# a split operand is a DataParallelError, other layouts run on whole values. They could take
# partition.elementwise(), as fgrad.ops.elementwise's functions do.
register_unpartitioned("elementwise, no rule yet: split operands are an error", atan2_p, atan_p, asin_p, acos_p,
                       tan_p, sinh_p, cosh_p, asinh_p, acosh_p, atanh_p, cbrt_p, exp2_p, erf_p, erfc_p, erf_inv_p)
