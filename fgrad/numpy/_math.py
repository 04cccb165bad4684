"""Elementwise functions under NumPy's names, with NumPy/JAX broadcasting and promotion.

Functions that only make sense for real numbers (``exp``, ``sin``, ``true_divide``...)
promote integer and bool inputs to the default float, as JAX does. Functions
with a kink or a corner follow JAX's formulas, so their derivatives there are JAX's
(docs/conventions.md); ``tan``, ``arctan2``, ``sinh``... are primitives of their own
(fgrad/ops/special.py).
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable

import numpy as np

from fgrad import lax
from fgrad.core import dtypes
from fgrad.core.trace import get_aval
from fgrad.lax._logaddexp import logaddexp as _jax_logaddexp, logaddexp2 as _jax_logaddexp2
from fgrad.transforms.custom import custom_jvp
from fgrad.numpy._util import (PY_SCALARS, broadcast_shapes_for, broadcast_to_shape, check_dtype_kind, promote,
                               promote2, promote_float, reject_out, static_int, to_array)

__all__ = [
    "add", "subtract", "multiply", "divide", "true_divide", "floor_divide", "remainder", "mod", "fmod",
    "divmod", "power", "pow", "float_power", "negative", "positive", "abs", "absolute", "fabs", "sign",
    "exp", "exp2", "log", "log1p", "expm1", "log2", "log10", "sqrt", "cbrt", "square", "reciprocal",
    "sin", "cos", "tan", "tanh", "sinh", "cosh", "arcsin", "arccos", "arctan", "arctan2", "arcsinh",
    "arccosh", "arctanh", "asin", "acos", "atan", "atan2", "asinh", "acosh", "atanh", "hypot",
    "deg2rad", "rad2deg", "degrees", "radians", "logaddexp", "logaddexp2", "sinc", "floor", "ceil", "trunc", "fix", "rint",
    "round", "around", "maximum", "minimum", "fmax", "fmin", "clip", "logical_and",
    "logical_or", "logical_not", "logical_xor", "bitwise_and", "bitwise_or", "bitwise_xor",
    "bitwise_not", "bitwise_invert", "invert", "left_shift", "right_shift", "bitwise_left_shift",
    "bitwise_right_shift", "equal", "not_equal", "less", "less_equal", "greater", "greater_equal",
    "isnan", "isinf", "isfinite", "isposinf", "isneginf", "nan_to_num", "real", "imag", "conj",
    "conjugate", "signbit", "copysign", "nextafter",
]


def _const(x: Any, value: float) -> Any:
    """``value`` as a scalar of ``x``'s dtype (a weakly typed literal, in effect)."""
    return get_aval(x).dtype.type(value)


def _named(name: str, doc: str, fn: Callable) -> Callable:
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    return fn


# --- arithmetic ----------------------------------------------------------------------------------

def _binary(name: str, lax_fn: Callable, doc: str) -> Callable:
    def op(x1, x2, /, out=None):
        if out is not None:
            reject_out(name, out)
        return lax_fn(*promote2(name, x1, x2))
    return _named(name, doc, op)


def _or_for_bool(lax_fn: Callable, bool_fn: Callable) -> Callable:
    """``lax_fn``, except on bools, where NumPy's + and max are `or` (and * and min are `and`)."""
    def fn(x, y):
        return bool_fn(x, y) if get_aval(x).dtype == dtypes.bool_ else lax_fn(x, y)
    return fn


add = _binary("add", _or_for_bool(lax.add, lax.bitwise_or),
              "``x1 + x2`` elementwise, with broadcasting and promotion.")
multiply = _binary("multiply", _or_for_bool(lax.mul, lax.bitwise_and), "``x1 * x2`` elementwise.")


maximum = _binary("maximum", _or_for_bool(lax.max, lax.bitwise_or),
                  "Elementwise maximum (a float NaN wins, as in NumPy and JAX; complex: JAX's "
                  "lexicographic order, where a NaN part loses the comparison).")
minimum = _binary("minimum", _or_for_bool(lax.min, lax.bitwise_and),
                  "Elementwise minimum (a float NaN wins, as in NumPy and JAX; complex: JAX's "
                  "lexicographic order, where a NaN part loses the comparison).")
equal = _binary("equal", lax.eq, "``x1 == x2`` elementwise (bool result).")
not_equal = _binary("not_equal", lax.ne, "``x1 != x2`` elementwise.")


def _lexicographic(order: Callable) -> Callable:
    """An ordering of real numbers, extended to complex numbers as JAX orders them: by real
    part, then by imaginary part (``1+2j < 2+0j`` and ``1+1j < 1+2j``)."""
    def compare(x, y):
        if not dtypes.is_complex(get_aval(x).dtype):
            return order(x, y)
        xr, yr = lax.real(x), lax.real(y)
        strict = lax.lt if order in (lax.lt, lax.le) else lax.gt
        return lax.bitwise_or(strict(xr, yr), lax.bitwise_and(lax.eq(xr, yr), order(lax.imag(x), lax.imag(y))))
    return compare


less = _binary("less", _lexicographic(lax.lt), "``x1 < x2`` elementwise (complex: by real, then imaginary part).")
less_equal = _binary("less_equal", _lexicographic(lax.le), "``x1 <= x2`` elementwise.")
greater = _binary("greater", _lexicographic(lax.gt), "``x1 > x2`` elementwise.")
greater_equal = _binary("greater_equal", _lexicographic(lax.ge), "``x1 >= x2`` elementwise.")


def subtract(x1, x2, /, out=None):
    """``x1 - x2`` elementwise."""
    reject_out("subtract", out)
    x, y = promote2("subtract", x1, x2)
    if get_aval(x).dtype == dtypes.bool_:
        raise TypeError("subtract: boolean subtraction is not supported; use fnp.logical_xor or "
                        "convert to an integer dtype first")
    return lax.sub(x, y)


def true_divide(x1, x2, /, out=None):
    """``x1 / x2`` elementwise; integer inputs give the default float (``int32 / 2`` is float32)."""
    reject_out("true_divide", out)
    x, y = promote2("true_divide", x1, x2)
    if not dtypes.is_differentiable(get_aval(x).dtype):
        x, y = promote("true_divide", x1, x2, to_float=True)
    return lax.div(x, y)


divide = true_divide


def _int_divmod(x, y):
    """Floor division and modulo of integers, with NumPy's signs. By zero, as JAX: the modulo
    is 0 and the quotient is lax.div's -1 (all ones unsigned), less 1 where x != 0 (signed)."""
    zero = _const(x, 0)
    q, r = lax.div(x, y), lax.rem(x, y)
    if get_aval(x).dtype.kind == "u":
        fix = lax.full(get_aval(q).shape, False, dtypes.bool_)
    else:  # JAX's test, sign(x) != sign(y) and a remainder; y == 0 counts as a sign change
        fix = lax.bitwise_and(lax.ne(r, zero), lax.ne(lax.sign(x), lax.sign(y)))
    q = lax.select_n(fix, q, lax.sub(q, _const(x, 1)))
    r = lax.select_n(fix, r, lax.add(r, y))
    return q, lax.select_n(lax.eq(y, zero), r, _zeros_like(r))


def _float_divmod(x, y):
    """NumPy's float divmod, by JAX's formula (CPython's float_divmod): the remainder has the
    sign of y, the quotient round((x - mod) / y) (``x / 0`` by zero), so its derivative is 0."""
    mod = lax.rem(x, y)
    div = lax.div(lax.select_n(lax.eq(y, _const(y, 0)), lax.sub(x, mod), x), y)
    fix = lax.bitwise_and(lax.ne(mod, _const(x, 0)), lax.ne(lax.sign(y), lax.sign(mod)))
    mod = lax.select_n(fix, mod, lax.add(mod, y))
    div = lax.select_n(fix, div, lax.sub(div, _const(x, 1)))
    return lax.round(div), mod


def _divmod_operands(op: str, x1, x2):
    x, y = promote2(op, x1, x2)
    if get_aval(x).dtype == dtypes.bool_:
        x, y = (lax.convert_element_type(v, dtypes.default_int()) for v in (x, y))
    x, y = _same_shape(x, y)
    return x, y


def _same_shape(x, y):
    """Broadcast rank-0 operands against the other (the select chains need equal shapes)."""
    sx, sy = get_aval(x).shape, get_aval(y).shape
    if sx == sy:
        return x, y
    if not sx:
        return lax.broadcast_in_dim(x, sy, ()), y
    return x, lax.broadcast_in_dim(y, sx, ())


def _weak_as_operands(out: Any, x: Any, y: Any) -> Any:
    """``out`` (or each of a pair) weakly typed when both promoted operands are, as JAX's result
    (``int8_array // 2.5`` is a weak float32); the select chains below make it strong."""
    if not (get_aval(x).weak_type and get_aval(y).weak_type):
        return out
    if isinstance(out, tuple):
        return tuple(_weak_as_operands(o, x, y) for o in out)
    return lax.convert_element_type(out, get_aval(out).dtype, weak_type=True)


def floor_divide(x1, x2, /, out=None):
    """``x1 // x2`` with NumPy's floor semantics (rounds toward -inf, not toward zero)."""
    reject_out("floor_divide", out)
    x, y = _divmod_operands("floor_divide", x1, x2)
    if dtypes.is_float(get_aval(x).dtype):
        return _weak_as_operands(_float_divmod(x, y)[0], x, y)
    return _weak_as_operands(_int_divmod(x, y)[0], x, y)


def remainder(x1, x2, /, out=None):
    """``x1 % x2`` with NumPy's signs (the result has the sign of ``x2``)."""
    reject_out("remainder", out)
    x, y = _divmod_operands("remainder", x1, x2)
    if dtypes.is_float(get_aval(x).dtype):  # JAX's formula (its derivative too), not divmod's
        zero = _const(x, 0)
        mod = lax.rem(x, y)
        plus = lax.bitwise_and(lax.ne(lax.lt(mod, zero), lax.lt(y, zero)), lax.ne(mod, zero))
        return _weak_as_operands(lax.select_n(plus, mod, lax.add(mod, y)), x, y)
    return _weak_as_operands(_int_divmod(x, y)[1], x, y)


mod = remainder


def divmod(x1, x2, /):  # noqa: A001 - NumPy name
    """``(x1 // x2, x1 % x2)`` with NumPy's semantics."""
    x, y = _divmod_operands("divmod", x1, x2)
    if dtypes.is_float(get_aval(x).dtype):
        return _weak_as_operands(_float_divmod(x, y), x, y)
    return _weak_as_operands(_int_divmod(x, y), x, y)


def fmod(x1, x2, /):
    """C-style remainder: the result has the sign of ``x1``."""
    x, y = _divmod_operands("fmod", x1, x2)
    if dtypes.is_float(get_aval(x).dtype):
        return _weak_as_operands(lax.rem(x, y), x, y)
    out = lax.select_n(lax.eq(y, _const(y, 0)), lax.rem(x, y), _zeros_like(x))  # NumPy: x % 0 == 0
    return _weak_as_operands(out, x, y)


def power(x1, x2, /, out=None):
    """``x1 ** x2``. A Python-int exponent uses repeated multiplication (``lax.integer_pow``);
    integer arrays raised to integer arrays stay integers."""
    reject_out("power", out)
    x1 = _bool_base_as_int32("power", x1, x2)
    if type(x2) is int and type(x1) not in PY_SCALARS:
        x = to_array(x1, "power")
        if x2 < 0 and not dtypes.is_differentiable(get_aval(x).dtype):
            raise ValueError("power: integers to negative integer powers are not allowed; "
                             "convert the base to a float first")
        return lax.integer_pow(x, x2)
    x, y = promote2("power", x1, x2)
    dtype = get_aval(x).dtype
    if dtypes.is_complex(dtype):
        return lax.pow(*_same_shape(x, y))
    if dtypes.is_float(dtype):
        x_dtype = get_aval(to_array(x1)).dtype if type(x1) not in PY_SCALARS else None
        y_dtype = get_aval(to_array(x2)).dtype if type(x2) not in PY_SCALARS else None
        if x_dtype is not None and dtypes.is_float(x_dtype) and y_dtype is not None and y_dtype.kind in "iu":
            return _pow_integer_exponent(*_same_shape(x, y))
        return lax.pow(x, y)
    return _int_power(*_same_shape(x, y))


def _bool_base_as_int32(op: str, x, exponent=None):
    """A bool base of ``power``/``square`` as int32, as JAX computes it (whatever 64-bit says);
    as the exponent's dtype where that is an integer array of rank >= 1 (JAX: ``bool ** int8[n]``
    is int8; a 0-d exponent takes JAX's eager ``integer_pow`` path, int32)."""
    dtype = dtypes.int32
    if exponent is not None and type(exponent) not in PY_SCALARS:
        exp_aval = get_aval(to_array(exponent, op))
        if exp_aval.dtype.kind in "iu" and exp_aval.ndim:
            dtype = exp_aval.dtype
    if type(x) is bool:
        return np.dtype(dtype).type(x)
    if type(x) not in PY_SCALARS and get_aval(to_array(x, op)).dtype == dtypes.bool_:
        return lax.convert_element_type(to_array(x, op), dtype)
    return x


pow = power  # noqa: A001 - NumPy 2 name


@custom_jvp
def _pow_integer_exponent(x, y):
    """``x ** y`` for a float base and an integer-valued exponent array (as floats). JAX's
    derivative for that case: ``d/dx`` is 0 where ``y == 0`` (even at ``x == 0``), and ``y``
    gets none, so ``x ** arange(n)`` differentiates at 0."""
    return lax.pow(x, y)


@_pow_integer_exponent.defjvp
def _pow_integer_exponent_jvp(primals, tangents):
    (x, y), (tx, _) = primals, tangents
    y_is_zero = lax.eq(y, _const(y, 0))
    safe_y = lax.select_n(y_is_zero, y, _ones_like(y))
    jac = lax.select_n(y_is_zero, lax.mul(safe_y, _pow_integer_exponent(x, lax.sub(y, _const(y, 1)))),
                       _zeros_like(y))
    return _pow_integer_exponent(x, y), lax.mul(tx, jac)


def _int_power(x, y):
    """Integer power by squaring over every bit of the exponent (negative exponents give
    0, or ±1 for bases ±1, as the exact result truncated toward zero)."""
    dtype = get_aval(x).dtype
    one, zero = _const(x, 1), _const(x, 0)
    acc, base, exponent = _ones_like(x), x, y
    for _ in range(dtype.itemsize * 8 - (dtype.kind == "i")):
        odd = lax.ne(lax.bitwise_and(exponent, one), zero)
        acc = lax.select_n(odd, acc, lax.mul(acc, base))
        base = lax.mul(base, base)
        exponent = lax.shift_right_logical(exponent, one)
    if dtype.kind == "u":
        return acc
    odd_exp = lax.ne(lax.bitwise_and(y, one), zero)
    minus_one = lax.select_n(odd_exp, _ones_like(x), lax.neg(_ones_like(x)))
    negative = lax.select_n(lax.eq(x, one), lax.select_n(lax.eq(x, _const(x, -1)), _zeros_like(x), minus_one),
                            _ones_like(x))
    return lax.select_n(lax.lt(y, zero), acc, negative)


def float_power(x1, x2, /):
    """``x1 ** x2`` computed in the default float dtype (float64 with x64)."""
    x, y = promote("float_power", x1, x2, to_float=True)
    return lax.pow(x, y)


def _ones_like(x):
    aval = get_aval(x)
    return lax.full(aval.shape, 1, aval.dtype)


def _zeros_like(x):
    aval = get_aval(x)
    return lax.full(aval.shape, 0, aval.dtype)


def negative(x, /):
    """``-x`` elementwise."""
    x = to_array(x, "negative")
    if get_aval(x).dtype == dtypes.bool_:
        raise TypeError("negative: the `-` operator is not supported for bool arrays; use fnp.logical_not")
    return lax.neg(x)


def positive(x, /):
    """``+x`` (returns ``x``)."""
    return to_array(x, "positive")


def abs(x, /):  # noqa: A001 - NumPy name
    """Absolute value (unsigned and bool inputs are returned as they are)."""
    x = to_array(x, "abs")
    if get_aval(x).dtype.kind in "ub":
        return x
    return lax.abs(x)


absolute = abs


def fabs(x, /):
    """Absolute value as a float (complex input is a TypeError, as NumPy's and JAX's ufunc)."""
    x = promote_float("fabs", x)
    if dtypes.is_complex(get_aval(x).dtype):
        raise TypeError("ufunc 'fabs' does not support complex dtypes; use fnp.abs for the magnitude")
    return lax.abs(x)


def sign(x, /):
    """-1, 0 or 1 by the sign of ``x`` (NaN for NaN); ``x / |x|`` for complex ``x``."""
    x = to_array(x, "sign")
    check_dtype_kind("sign", x, "iufc", "numeric (not bool)")
    return lax.sign(x)   # complex: x / |x| (0 at 0), as NumPy 2 and JAX


# --- transcendental functions ----------------------------------------------------------------------

def _float_unary(name: str, lax_fn: Callable, doc: str) -> Callable:
    def op(x, /):
        return lax_fn(promote_float(name, x))
    return _named(name, doc, op)


exp = _float_unary("exp", lax.exp, "``e ** x`` elementwise.")
log = _float_unary("log", lax.log, "Natural logarithm.")
log1p = _float_unary("log1p", lax.log1p, "``log(1 + x)``, accurate for small ``x``.")
expm1 = _float_unary("expm1", lax.expm1, "``exp(x) - 1``, accurate for small ``x``.")
sqrt = _float_unary("sqrt", lax.sqrt, "Square root (NaN for negative inputs).")
sin = _float_unary("sin", lax.sin, "Sine.")
cos = _float_unary("cos", lax.cos, "Cosine.")
tanh = _float_unary("tanh", lax.tanh, "Hyperbolic tangent.")

_LN2 = math.log(2.0)
_LN10 = math.log(10.0)


def exp2(x, /):
    """``2 ** x`` (``exp(x * log(2))`` for complex ``x``, as JAX)."""
    x = promote_float("exp2", x)
    if dtypes.is_complex(get_aval(x).dtype):
        return lax.exp(lax.mul(x, _const(x, _LN2)))
    return lax.exp2(x)


def _complex_log_scaled(x, base: float):
    """``log(x) / log(base)`` for complex ``x``, part by part (as JAX: ``log2(0j)`` is -inf+0j,
    where a complex division would make the imaginary part NaN)."""
    out = lax.log(x)
    scale = _const(lax.real(out), math.log(base))
    return lax.complex(lax.div(lax.real(out), scale), lax.div(lax.imag(out), scale))


def log2(x, /):
    """Base-2 logarithm (``log(x) / log(2)``, as JAX)."""
    x = promote_float("log2", x)
    if dtypes.is_complex(get_aval(x).dtype):
        return _complex_log_scaled(x, 2)
    return lax.div(lax.log(x), lax.log(_const(x, 2)))


def log10(x, /):
    """Base-10 logarithm."""
    x = promote_float("log10", x)
    if dtypes.is_complex(get_aval(x).dtype):
        return _complex_log_scaled(x, 10)
    return lax.mul(lax.log(x), _const(x, 1 / _LN10))


cbrt = _float_unary("cbrt", lax.cbrt, "Real cube root (negative for negative ``x``).")


def square(x, /):
    """``x * x`` (a bool array squares as int32, as in JAX)."""
    return lax.integer_pow(to_array(_bool_base_as_int32("square", x), "square"), 2)


def reciprocal(x, /):
    """``1 / x`` (integers become the default float)."""
    x = promote_float("reciprocal", x)
    return lax.integer_pow(x, -1)


tan = _float_unary("tan", lax.tan, "Tangent.")
sinh = _float_unary("sinh", lax.sinh, "Hyperbolic sine.")
cosh = _float_unary("cosh", lax.cosh, "Hyperbolic cosine.")
arctan = _float_unary("arctan", lax.atan, "Inverse tangent.")
arcsin = _float_unary("arcsin", lax.asin, "Inverse sine (NaN outside [-1, 1]).")
arccos = _float_unary("arccos", lax.acos, "Inverse cosine (NaN outside [-1, 1]).")
arcsinh = _float_unary("arcsinh", lax.asinh, "Inverse hyperbolic sine.")
arccosh = _float_unary("arccosh", lax.acosh, "Inverse hyperbolic cosine (NaN below 1).")
arctanh = _float_unary("arctanh", lax.atanh, "Inverse hyperbolic tangent (±inf at ±1, NaN outside [-1, 1]).")


def arctan2(x1, x2, /):
    """The angle of the point ``(x2, x1)``, in [-pi, pi] (signed zeros as in NumPy)."""
    y, x = promote("arctan2", x1, x2, to_float=True)
    return lax.atan2(*_same_shape(y, x))


asin, acos, atan, atan2, asinh, acosh, atanh = arcsin, arccos, arctan, arctan2, arcsinh, arccosh, arctanh


def hypot(x1, x2, /):
    """``sqrt(x1**2 + x2**2)`` without intermediate overflow (JAX's formula, so its derivatives
    at 0 and at ``|x1| == |x2|`` are JAX's)."""
    x, y = _same_shape(*promote("hypot", x1, x2, to_float=True))
    ax, ay = lax.abs(x), lax.abs(y)
    is_inf = lax.bitwise_or(lax.eq(ax, _const(x, np.inf)), lax.eq(ay, _const(x, np.inf)))
    hi, lo = lax.max(ax, ay), lax.min(ax, ay)
    hi_is_zero = lax.eq(hi, _const(x, 0))
    safe_hi = lax.select_n(hi_is_zero, hi, _ones_like(hi))
    out = lax.mul(hi, lax.sqrt(lax.add(_const(x, 1), lax.square(lax.div(lo, safe_hi)))))
    out = lax.select_n(hi_is_zero, out, hi)
    return lax.select_n(is_inf, out, lax.full(get_aval(x).shape, np.inf, get_aval(x).dtype))


def deg2rad(x, /):
    """Degrees to radians."""
    x = promote_float("deg2rad", x)
    return lax.mul(x, _const(x, math.pi / 180))


def rad2deg(x, /):
    """Radians to degrees."""
    x = promote_float("rad2deg", x)
    return lax.mul(x, _const(x, 180 / math.pi))


radians, degrees = deg2rad, rad2deg


def logaddexp(x1, x2, /):
    """``log(exp(x1) + exp(x2))`` without overflow."""
    return _jax_logaddexp(*_same_shape(*promote("logaddexp", x1, x2, to_float=True)))


def logaddexp2(x1, x2, /):
    """``log2(2**x1 + 2**x2)`` without overflow."""
    return _jax_logaddexp2(*_same_shape(*promote("logaddexp2", x1, x2, to_float=True)))


def sinc(x, /):
    """``sin(pi x) / (pi x)``, 1 at 0; smooth there to every order (JAX's formula: the value
    and derivatives at 0 come from the Maclaurin series through a custom_jvp)."""
    x = promote_float("sinc", x)
    zero = lax.eq(x, _const(x, 0))
    pi_x = lax.mul(x, _const(x, math.pi))
    safe_pi_x = lax.select_n(zero, pi_x, _ones_like(x))
    return lax.select_n(zero, lax.div(lax.sin(safe_pi_x), safe_pi_x), _sinc_maclaurin(0, pi_x))


@functools.partial(custom_jvp, nondiff_argnums=(0,))
def _sinc_maclaurin(k: int, x):
    """The k-th derivative of ``sin(x) / x`` at 0, shaped like ``x`` (its own derivative is
    term k + 1)."""
    zero = lax.mul(x, _const(x, 0))
    return zero if k % 2 else lax.add(zero, _const(x, (-1) ** (k // 2) / (k + 1)))


@_sinc_maclaurin.defjvp
def _sinc_maclaurin_jvp(k, primals, tangents):
    (x,), (t,) = primals, tangents
    return _sinc_maclaurin(k, x), lax.mul(_sinc_maclaurin(k + 1, x), t)


# --- rounding ------------------------------------------------------------------------------------

def _round_float(name: str, lax_fn: Callable, doc: str) -> Callable:
    def op(x, /):
        x = to_array(x, name)
        return lax_fn(x) if dtypes.is_float(get_aval(x).dtype) else x
    return _named(name, doc, op)


floor = _round_float("floor", lax.floor, "Round toward -inf (integer inputs are returned as they are).")
ceil = _round_float("ceil", lax.ceil, "Round toward +inf (integer inputs are returned as they are).")


def _trunc(x):
    return lax.select_n(lax.lt(x, _const(x, 0)), lax.floor(x), lax.ceil(x))


trunc = _round_float("trunc", _trunc, "Round toward zero (integer inputs are returned as they are).")
fix = _round_float("fix", _trunc, "Round toward zero (as ``trunc``).")
def rint(x, /):
    """Round to the nearest integer, ties to even (integers become the default float, as in JAX)."""
    return lax.round(promote_float("rint", x), "to_nearest_even")


def round(a, decimals: int = 0, out=None):  # noqa: A001 - NumPy name
    """Round to ``decimals`` decimals, ties to even (NumPy's ``round``)."""
    reject_out("round", out)
    a = to_array(a, "round")
    decimals = static_int("round", "decimals", decimals)
    dtype = get_aval(a).dtype
    if dtypes.is_complex(dtype):     # each part on its own, as JAX
        return lax.complex(round(lax.real(a), decimals), round(lax.imag(a), decimals))
    if not dtypes.is_float(dtype):
        if decimals >= 0:
            return a
        factor = dtype.type(10 ** -decimals)
        x = lax.convert_element_type(a, dtypes.default_float())
        scaled = lax.round(lax.div(x, _const(x, factor)), "to_nearest_even")
        return lax.convert_element_type(lax.mul(scaled, _const(x, factor)), dtype)
    if decimals == 0:
        return lax.round(a, "to_nearest_even")
    factor = _const(a, 10.0 ** decimals)
    return lax.div(lax.round(lax.mul(a, factor), "to_nearest_even"), factor)


around = round


def fmax(x1, x2, /):
    """Elementwise maximum that ignores NaN (NaN only when both are NaN). As in JAX, it is
    ``where(x1 > x2 or isnan(x2), x1, x2)``: at a tie the derivative goes all to ``x2``."""
    x, y = _same_shape(*promote2("fmax", x1, x2))
    return lax.select_n(lax.bitwise_or(lax.gt(x, y), isnan(y)), y, x)


def fmin(x1, x2, /):
    """Elementwise minimum that ignores NaN; ``where(x1 < x2 or isnan(x2), x1, x2)``, as JAX."""
    x, y = _same_shape(*promote2("fmin", x1, x2))
    return lax.select_n(lax.bitwise_or(lax.lt(x, y), isnan(y)), y, x)


# --- selection -----------------------------------------------------------------------------------

def _to_bool(x):
    x = to_array(x)
    aval = get_aval(x)
    if aval.dtype == dtypes.bool_:
        return x
    return lax.ne(x, aval.dtype.type(0))


def where_select(condition, x, y):
    """``x`` where ``condition`` is true, else ``y`` (all three broadcast): ``fnp.where``'s
    three-argument form (``fgrad.numpy._sorting.where`` adds the one-argument form)."""
    cond = _to_bool(condition)
    x, y = promote("where", x, y, shape=False)
    shapes = [get_aval(v).shape for v in (cond, x, y)]
    shape = broadcast_shapes_for("where", *shapes)
    cond, x, y = (broadcast_to_shape(v, shape) if get_aval(v).ndim else v for v in (cond, x, y))
    return lax.select_n(cond, y, x)


def clip(arr=None, /, min=None, max=None, *, a=None, a_min=None, a_max=None, out=None):  # noqa: A002
    """``jnp.clip(arr, /, min=None, max=None)`` (the array API's ``clip(x, /, min, max)``): limit
    values to ``[min, max]`` (either bound may be None). NumPy's keyword spelling
    ``clip(a=, a_min=, a_max=)`` works too."""
    reject_out("clip", out)
    for new_name, old_name, new_value, old_value in (("arr", "a", arr, a), ("min", "a_min", min, a_min),
                                                      ("max", "a_max", max, a_max)):
        if new_value is not None and old_value is not None:
            raise TypeError(f"clip: got both {new_name} and {old_name} (the same argument); pass one of them")
    lo = a_min if a_min is not None else min
    hi = a_max if a_max is not None else max
    if arr is None and a is None:
        raise TypeError("clip: missing the array to clip (the first argument)")
    out = to_array(arr if arr is not None else a, "clip")
    if lo is not None:
        out = maximum(out, lo)
    if hi is not None:
        out = minimum(out, hi)
    return out


# --- logic and bits ------------------------------------------------------------------------------

def _logical(name: str, lax_fn: Callable) -> Callable:
    def op(x1, x2, /):
        x, y = promote(name, _to_bool(x1), _to_bool(x2))
        return lax_fn(x, y)
    return _named(name, f"Elementwise logical {name.split('_')[1]} (inputs are truth-tested).", op)


logical_and = _logical("logical_and", lax.bitwise_and)
logical_or = _logical("logical_or", lax.bitwise_or)
logical_xor = _logical("logical_xor", lax.bitwise_xor)


def logical_not(x, /):
    """Elementwise logical not."""
    return lax.bitwise_not(_to_bool(x))


def _bitwise(name: str, lax_fn: Callable) -> Callable:
    def op(x1, x2, /):
        x, y = promote2(name, x1, x2)
        check_dtype_kind(name, x, "iub", "integer or bool")
        return lax_fn(x, y)
    return _named(name, f"Elementwise {name} of integer or bool arrays.", op)


bitwise_and = _bitwise("bitwise_and", lax.bitwise_and)
bitwise_or = _bitwise("bitwise_or", lax.bitwise_or)
bitwise_xor = _bitwise("bitwise_xor", lax.bitwise_xor)


def invert(x, /):
    """Bitwise not (logical not for bools)."""
    x = to_array(x, "invert")
    check_dtype_kind("invert", x, "iub", "integer or bool")
    return lax.bitwise_not(x)


bitwise_not = bitwise_invert = invert


def left_shift(x1, x2, /):
    """``x1 << x2``."""
    x, y = promote2("left_shift", x1, x2)
    check_dtype_kind("left_shift", x, "iu", "integer")
    return lax.shift_left(x, y)


def right_shift(x1, x2, /):
    """``x1 >> x2`` (arithmetic for signed integers, as in NumPy)."""
    x, y = promote2("right_shift", x1, x2)
    check_dtype_kind("right_shift", x, "iu", "integer")
    if get_aval(x).dtype.kind == "u":
        return lax.shift_right_logical(x, y)
    x, y = _same_shape(x, y)
    negative = lax.lt(x, _const(x, 0))
    shifted_neg = lax.bitwise_not(lax.shift_right_logical(lax.bitwise_not(x), y))
    return lax.select_n(negative, lax.shift_right_logical(x, y), shifted_neg)


bitwise_left_shift, bitwise_right_shift = left_shift, right_shift


# --- classification ------------------------------------------------------------------------------

def _bool_full(x, value: bool):
    return lax.full(get_aval(x).shape, value, dtypes.bool_)


def isnan(x, /):
    """True where ``x`` is NaN."""
    x = to_array(x, "isnan")
    return lax.ne(x, x) if dtypes.is_differentiable(get_aval(x).dtype) else _bool_full(x, False)


def isinf(x, /):
    """True where ``x`` is +inf or -inf."""
    x = to_array(x, "isinf")
    if dtypes.is_complex(get_aval(x).dtype):   # either part infinite (NumPy and JAX)
        return lax.bitwise_or(isinf(lax.real(x)), isinf(lax.imag(x)))
    if not dtypes.is_float(get_aval(x).dtype):
        return _bool_full(x, False)
    return lax.eq(lax.abs(x), _const(x, np.inf))


def isposinf(x, /):
    """True where ``x`` is +inf."""
    x = to_array(x, "isposinf")
    return lax.eq(x, _const(x, np.inf)) if dtypes.is_float(get_aval(x).dtype) else _bool_full(x, False)


def isneginf(x, /):
    """True where ``x`` is -inf."""
    x = to_array(x, "isneginf")
    return lax.eq(x, _const(x, -np.inf)) if dtypes.is_float(get_aval(x).dtype) else _bool_full(x, False)


def isfinite(x, /):
    """True where ``x`` is neither infinite nor NaN."""
    x = to_array(x, "isfinite")
    if dtypes.is_complex(get_aval(x).dtype):   # both parts finite
        return lax.bitwise_and(lax.is_finite(lax.real(x)), lax.is_finite(lax.imag(x)))
    return lax.is_finite(x) if dtypes.is_float(get_aval(x).dtype) else _bool_full(x, True)


def signbit(x, /):
    """True where the sign bit of ``x`` is set (negative numbers and -0.0)."""
    x = to_array(x, "signbit")
    if get_aval(x).dtype.kind in "ub":
        return _bool_full(x, False)
    return _negative_or_minus_zero(x)


def _negative_or_minus_zero(x):
    """The sign bit: set for negative numbers, -0. and NaNs with the sign bit (``-nan``)."""
    dtype = get_aval(x).dtype
    if not dtypes.is_float(dtype):
        return lax.lt(x, _const(x, 0))
    if dtypes.is_half(dtype):   # widening keeps the sign bit (of NaNs too)
        x, dtype = lax.convert_element_type(x, dtypes.float32), dtypes.float32
    bits = lax.bitcast_convert_type(x, dtypes.int64 if dtype == dtypes.float64 else dtypes.int32)
    return lax.lt(bits, _const(bits, 0))


def copysign(x1, x2, /):
    """``|x1|`` with the sign of ``x2``."""
    x, y = _same_shape(*promote("copysign", x1, x2, to_float=True))
    ax = lax.abs(x)
    return lax.select_n(_negative_or_minus_zero(y), ax, lax.neg(ax))


def nextafter(x1, x2, /):
    """The next representable value after ``x1`` in the direction of ``x2`` (``x2`` itself when
    they are equal; NaN when either is NaN; from zero, the smallest subnormal with ``x2``'s sign):
    ``lax.nextafter`` after promoting (integers to the default float) and broadcasting."""
    x, y = _same_shape(*promote("nextafter", x1, x2, to_float=True))
    return lax.nextafter(x, y)


def nan_to_num(x, copy: bool = True, nan: float = 0.0, posinf: float | None = None,
               neginf: float | None = None):
    """Replace NaN by ``nan`` and ±inf by ``posinf``/``neginf`` (default: the dtype's extremes)."""
    x = to_array(x, "nan_to_num")
    dtype = get_aval(x).dtype
    if dtypes.is_complex(dtype):     # each part on its own, as NumPy and JAX
        parts = [nan_to_num(p, copy, nan, posinf, neginf) for p in (lax.real(x), lax.imag(x))]
        return lax.complex(*parts)
    if not dtypes.is_float(dtype):
        return x
    info = np.finfo(dtype)
    posinf = info.max if posinf is None else posinf
    neginf = info.min if neginf is None else neginf
    shape = get_aval(x).shape
    x = lax.select_n(lax.ne(x, x), x, lax.full(shape, nan, dtype))
    x = lax.select_n(lax.eq(x, _const(x, np.inf)), x, lax.full(shape, posinf, dtype))
    return lax.select_n(lax.eq(x, _const(x, -np.inf)), x, lax.full(shape, neginf, dtype))


def real(x, /):
    """``jnp.real(x)``: the real part (float32 for complex64; ``x`` itself for real arrays)."""
    x = to_array(x, "real")
    return lax.real(x) if dtypes.is_complex(get_aval(x).dtype) else x


def imag(x, /):
    """``jnp.imag(x)``: the imaginary part (float32 for complex64; zeros for real arrays)."""
    x = to_array(x, "imag")
    return lax.imag(x) if dtypes.is_complex(get_aval(x).dtype) else _zeros_like(x)


def conj(x, /):
    """``jnp.conj(x)``: the complex conjugate (``x`` itself for real arrays)."""
    x = to_array(x, "conj")
    return lax.conj(x) if dtypes.is_complex(get_aval(x).dtype) else x


conjugate = conj
