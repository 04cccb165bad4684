"""Elementwise primitives: unary math, binary arithmetic, comparisons, logic and shifts,
``select_n`` and ``convert_element_type``.

Operands share one shape and one dtype, except rank-0 operands, which broadcast (so
jaxprs can say ``mul b 2.0``). At this level a Python scalar operand takes the dtype of
the array it meets, if its value fits that dtype. Each primitive is one registration
block: NumPy impl, shape/dtype rule, JVP rule, transpose rule when linear; all share one
vmap rule.

Integer edge cases follow XLA, so that eager and compiled code agree: ``x / 0 == -1``
(all bits set), ``x % 0 == x``, ``INT_MIN / -1 == INT_MIN``, ``INT_MIN % -1 == 0``;
shifts by a negative amount or by at least the bit width give 0; float-to-int
conversion truncates toward zero, saturates at the integer range and maps NaN to 0.
"""
from __future__ import annotations

import builtins
import enum
import warnings
from typing import Any, Callable

import numpy as np

from fgrad.core import dtypes
from fgrad.core import partition
from fgrad.core.partition import PARTIAL, is_float, partition_rules
from fgrad.core.primitive import Primitive
from fgrad.core.trace import get_aval
from fgrad.core.types import ShapedArray
from fgrad.ops._util import all_weak, as_operand, elementwise_shape, same_dtype, shape_error
from fgrad.core.rules import (cheap_to_recompute, is_undefined, jvp_rules, not_differentiable, symbolic_zero_rules,
                              transpose_rules, vmap_rules)
from fgrad.ops import reduction as red
from fgrad.ops import shape as sh

__all__ = [
    "neg", "exp", "log", "log1p", "expm1", "tanh", "logistic", "sin", "cos", "sqrt", "rsqrt",
    "abs", "sign", "floor", "ceil", "round", "RoundingMethod", "is_finite", "bitwise_not",
    "add", "sub", "mul", "div", "rem", "pow", "max", "min", "bitwise_and", "bitwise_or",
    "bitwise_xor", "eq", "ne", "lt", "le", "gt", "ge", "select_n", "convert_element_type",
    "bitcast_convert_type",
    "integer_pow", "square", "shift_left", "shift_right_logical",
]

_PY_SCALARS = (int, float, bool, complex)

# dtype kinds each family accepts (NumPy kind letters: b bool, i signed, u unsigned, f float,
# c complex)
FLOAT, NUMERIC, INTEGER, INTEGER_OR_BOOL, ANY = "f", "iuf", "iu", "iub", "biuf"
INEXACT, NUMBER, ANY_C = "fc", "iufc", "biufc"   # the same families with complex (JAX accepts it)
_KIND_NAMES = {FLOAT: "floating-point (real)", NUMERIC: "real numeric (int or float, not bool or complex)",
               INTEGER: "integer", INTEGER_OR_BOOL: "integer or bool", ANY: "real (bool, int or float)",
               INEXACT: "floating-point or complex", NUMBER: "numeric (int, float or complex, not bool)",
               ANY_C: "any"}


# --- shared rules -----------------------------------------------------------------------

def _check_kinds(op: str, dtype: np.dtype, kinds: str) -> None:
    if dtypes.kind(dtype) not in kinds:
        fix = ("Convert with .astype(fgrad.numpy.float32)" if kinds == FLOAT
               else "Convert with .astype(...) / lax.convert_element_type")
        raise shape_error(op, f"requires {_KIND_NAMES[kinds]} operands, got {dtype.name}", fix)


def _same_type_rule(op: str, kinds: str) -> Callable:
    def rule(*avals: ShapedArray, **params) -> ShapedArray:
        shape = elementwise_shape(op, avals)
        dtype = same_dtype(op, avals)
        _check_kinds(op, dtype, kinds)
        return ShapedArray(shape, dtype, all_weak(avals))
    return rule


def _compare_rule(op: str) -> Callable:
    def rule(x: ShapedArray, y: ShapedArray) -> ShapedArray:
        shape = elementwise_shape(op, (x, y))
        dtype = same_dtype(op, (x, y))
        if dtypes.is_complex(dtype) and op not in ("eq", "ne"):
            raise shape_error(op, f"complex numbers are not ordered, got {dtype.name} operands",
                              "Compare real parts (lax.real) or magnitudes (lax.abs)")
        return ShapedArray(shape, dtypes.bool_)
    return rule


def _unbatched_shape(aval: ShapedArray, bdim: int | None) -> tuple[int, ...]:
    return aval.shape if bdim is None else aval.shape[:bdim] + aval.shape[bdim + 1:]


def _batch_operand(x: Any, bdim: int | None, shape: tuple, out_shape: tuple, size: int) -> Any:
    """Put the batch dim of one operand first, materialising it where rank-0 broadcasting
    cannot do the job (a batched scalar meeting arrays, an unbatched array meeting batched ones)."""
    if bdim is None:
        return x if shape == () else sh.broadcast_in_dim(x, (size, *shape), tuple(range(1, len(shape) + 1)))
    x = sh.moveaxis(x, bdim, 0, size)
    if shape == () and out_shape != ():
        x = sh.broadcast_in_dim(x, (size, *out_shape), (0,))
    return x


def elementwise_vmap_rule(primitive: Primitive) -> Callable:
    """The vmap rule of every elementwise primitive (single or multiple results): batch
    dims go first, then the primitive applies to the whole batch at once."""
    def rule(axis, vals, dims, **params):
        shapes = [_unbatched_shape(get_aval(v), d) for v, d in zip(vals, dims)]
        out_shape = next((s for s in shapes if s != ()), ())
        moved = [_batch_operand(v, d, s, out_shape, axis.size) for v, d, s in zip(vals, dims, shapes)]
        out = primitive.bind(*moved, **params)
        return out, ([0] * len(out) if primitive.multiple_results else 0)
    return rule


def _unbroadcast(aval: ShapedArray, ct: Any) -> Any:
    """Sum a cotangent back down to a rank-0 operand that was broadcast."""
    ct_aval = get_aval(ct)
    if aval.shape == () and ct_aval.shape != ():
        ct = red.reduce_sum(ct, tuple(range(ct_aval.ndim)))
    if get_aval(ct).dtype != aval.dtype:   # complex -> real keeps the real part (JAX's transpose)
        ct = convert_element_type_p.bind(ct, new_dtype=aval.dtype, weak_type=False)
    return ct


def _quiet(ufunc: Callable) -> Callable:
    """A NumPy function without floating-point warnings (log(0), 0/0, overflow): fgrad
    returns inf/nan quietly, as compiled code does."""
    def run(*args):
        with np.errstate(all="ignore"):
            return ufunc(*args)
    run.__name__ = getattr(ufunc, "__name__", "impl")
    return run


def _define(name: str, impl: Callable, rule: Callable) -> Primitive:
    prim = Primitive(name)
    prim.def_impl(impl)
    prim.def_abstract_eval(rule)
    vmap_rules[prim] = elementwise_vmap_rule(prim)
    return prim


def _unary(name: str, impl: Callable, kinds: str = FLOAT) -> Primitive:
    return _define(name, impl, _same_type_rule(name, kinds))


def _binary(name: str, impl: Callable, kinds: str = NUMERIC) -> Primitive:
    return _define(name, impl, _same_type_rule(name, kinds))


def _fit_scalar(op: str, value: Any, dtype: np.dtype) -> Any:
    """A Python scalar as a NumPy scalar of ``dtype``; TypeError if its value does not fit."""
    kind = dtypes.kind(dtype)
    fits = (type(value) is bool or (type(value) is int and kind in "iufc")
            or (type(value) is float and kind in "fc") or (type(value) is complex and kind == "c"))
    if fits and kind in "iu" and type(value) is int:
        info = np.iinfo(dtype)
        fits = info.min <= value <= info.max
    if not fits:
        raise TypeError(f"{op}: the Python scalar {value!r} does not fit the other operand's dtype "
                        f"{dtype.name}. Pass an array of the intended dtype, or use fgrad.numpy, "
                        "which promotes dtypes")
    return np.asarray(value, dtype)[()]


def _bind2(prim: Primitive, x: Any, y: Any) -> Any:
    """Bind a binary primitive; a Python scalar takes the other operand's dtype."""
    x_py, y_py = type(x) in _PY_SCALARS, type(y) in _PY_SCALARS
    if x_py and not y_py:
        x = _fit_scalar(prim.name, x, get_aval(y).dtype)
    elif y_py and not x_py:
        y = _fit_scalar(prim.name, y, get_aval(x).dtype)
    elif x_py and y_py and type(x) is not type(y):
        dtype, _ = dtypes.promote((get_aval(x).dtype, True), (get_aval(y).dtype, True))
        cast = {"f": float, "c": complex}.get(dtypes.kind(dtype), int)
        x, y = cast(x), cast(y)  # still weakly typed Python scalars
    return prim.bind(x, y)


# --- unary math ---------------------------------------------------------------------------

def _log1p_impl(x: np.ndarray) -> np.ndarray:
    """NumPy's log1p, except for complex ``x``, where NumPy computes ``log(1 + x)`` (all digits
    lost for tiny ``x``): XLA's accurate form, as JAX, with the real part
    ``log1p(2 re + re^2 + im^2) / 2`` (complex64 in float64) for ``|x| < 1/2``."""
    x = np.asarray(x)
    if not dtypes.is_complex(x.dtype):
        return np.log1p(x)
    wide = x.astype(np.complex128)
    re, im = wide.real, wide.imag
    small = np.abs(wide) < 0.5
    near = 0.5 * np.log1p(2 * re + re * re + im * im)
    out = np.empty(x.shape, x.dtype)
    out.real = np.where(small, near, np.log(np.hypot(1 + re, im)))
    out.imag = np.arctan2(im, 1 + re)
    return out


def _logistic_impl(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (1 / (1 + np.exp(-x))).astype(x.dtype)


def _rsqrt_impl(x: np.ndarray) -> np.ndarray:
    # a half result is rounded once, from float32, as XLA computes it (and jit does)
    wide = x.astype(np.float32) if dtypes.is_half(x.dtype) else x
    with np.errstate(divide="ignore", invalid="ignore"):
        return (1 / np.sqrt(wide)).astype(x.dtype)


def _sign_impl(x: np.ndarray) -> np.ndarray:
    """NumPy's sign, except that a float zero keeps its sign (``sign(-0.) == -0.``, as XLA)."""
    x = np.asarray(x)
    out = np.sign(x)
    return np.where(x == 0, x, out) if dtypes.kind(x.dtype) == "f" else out


def _max_impl(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """NumPy's maximum (NaN wins), except that max(-0., 0.) is 0. either way round, as XLA."""
    out = np.maximum(x, y)
    if dtypes.kind(out.dtype) != "f":
        return out
    return np.where(x == y, np.where(np.signbit(x), y, x), out).astype(out.dtype)


def _min_impl(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """NumPy's minimum (NaN wins), except that min(-0., 0.) is -0. either way round, as XLA."""
    out = np.minimum(x, y)
    if dtypes.kind(out.dtype) != "f":
        return out
    return np.where(x == y, np.where(np.signbit(x), x, y), out).astype(out.dtype)


def _abs_rule(x: ShapedArray) -> ShapedArray:
    """``abs`` keeps a real dtype and maps complex to its real part's dtype (|z| is real)."""
    _check_kinds("abs", x.dtype, NUMBER)
    return ShapedArray(x.shape, dtypes.real_dtype(x.dtype), x.weak_type)


def _is_finite_rule(x: ShapedArray) -> ShapedArray:
    _check_kinds("is_finite", x.dtype, FLOAT)
    return ShapedArray(x.shape, dtypes.bool_)


neg_p = _unary("neg", np.negative, NUMBER)
def _exp_impl(x):
    """NumPy's exp; a complex input with an infinite or NaN part gets JAX's (and fgrad's compiled)
    ``exp(re) * (cos(im), sin(im))``, with a zero imaginary part kept: NumPy gives
    ``exp(inf + inf j) = inf + nan j`` where JAX gives ``nan + nan j``."""
    out = np.asarray(np.exp(x))
    if not np.iscomplexobj(x):
        return out
    special = ~np.isfinite(x)
    if special.any():
        e, y = np.exp(x.real), x.imag
        formula = np.empty_like(out)
        formula.real, formula.imag = e * np.cos(y), np.where(y == 0, y, e * np.sin(y))
        out = np.where(special, formula, out)
    return out


def _nan_part(z: np.ndarray) -> np.ndarray:
    """Where a complex array has a NaN real or imaginary part."""
    return np.isnan(z.real) | np.isnan(z.imag)


def _log_impl(x):
    """NumPy's log, except that a complex input with a NaN part gives ``nan + nan j``, as in JAX
    (NumPy: ``log(inf + nan j) = inf + nan j``)."""
    out = np.asarray(np.log(x))
    if np.iscomplexobj(x):
        out = np.where(_nan_part(x), out.dtype.type(complex(np.nan, np.nan)), out)
    return out


exp_p = _unary("exp", _quiet(_exp_impl), INEXACT)
log_p = _unary("log", _quiet(_log_impl), INEXACT)
log1p_p = _unary("log1p", _quiet(_log1p_impl), INEXACT)
def _expm1(x):
    """NumPy's expm1, except that a complex input's zero imaginary part stays that zero (NumPy
    gives expm1(inf + 0j) = inf + nan j; JAX and C99's cexp give inf + 0j)."""
    out = np.asarray(np.expm1(x))
    if np.iscomplexobj(x):
        out.imag = np.where(np.imag(x) == 0, np.imag(x), out.imag)
    return out


expm1_p = _unary("expm1", _quiet(_expm1), INEXACT)
tanh_p = _unary("tanh", np.tanh, INEXACT)
logistic_p = _unary("logistic", _logistic_impl, INEXACT)
def complex_trig(np_fn: Callable, parts: Callable, zeros: tuple = (), unsigned: tuple = ()) -> Callable:
    """NumPy's ``np_fn``, except on complex numbers where JAX's (and fgrad's compiled) products of
    real functions of the parts differ from C99's special cases: an input with an infinite or
    NaN part gets ``parts(re, im)`` (so ``inf * 0`` is NaN, as in JAX); for each ``(part, of)``
    in ``zeros`` the result's ``part`` ("re" or "im") is +0 wherever the input's ``of`` part is
    ±0 (a factor of it is then zero: ``sin(0 + inf j) = 0 + inf j``, not NaN); and a zero in a
    part named in ``unsigned`` is +0 (JAX gives those zeros no sign)."""
    def impl(x):
        out = np.asarray(np_fn(x))
        if not np.iscomplexobj(x):
            return out
        a, b = x.real, x.imag
        special = ~np.isfinite(x)
        if special.any():
            formula = np.empty_like(out)
            formula.real, formula.imag = parts(a, b)
            out = np.where(special, formula, out)
        for part, of in zeros:
            _plus_zero_where(out.real if part == "re" else out.imag, (a if of == "re" else b) == 0)
        for part in unsigned:
            target = out.real if part == "re" else out.imag
            _plus_zero_where(target, target == 0)
        return out
    return _quiet(impl)


def _plus_zero_where(part: np.ndarray, where: np.ndarray) -> None:
    """Set ``part`` (a view of a complex array's real or imaginary part) to +0 where ``where``."""
    part[...] = np.where(where, 0, part)


sin_p = _unary("sin", complex_trig(np.sin, lambda a, b: (np.sin(a) * np.cosh(b), np.cos(a) * np.sinh(b)),
                                   (("re", "re"),)), INEXACT)
cos_p = _unary("cos", complex_trig(np.cos, lambda a, b: (np.cos(a) * np.cosh(b), -(np.sin(a) * np.sinh(b))),
                                   (("im", "re"),)), INEXACT)
def _sqrt_impl(x):
    """NumPy's sqrt, except on complex numbers as JAX computes them: a zero imaginary part has no
    sign (``sqrt(-1 - 0j)`` is ``+1j``, NumPy's ``-1j``), and a NaN part gives ``nan + nan j``
    (NumPy: ``sqrt(nan + inf j) = inf + inf j``, ``sqrt(inf + nan j) = inf + nan j``)."""
    if not np.iscomplexobj(x):
        return np.sqrt(x)
    x = np.array(x)
    _plus_zero_where(x.imag, x.imag == 0)
    out = np.asarray(np.sqrt(x))
    return np.where(_nan_part(x), out.dtype.type(complex(np.nan, np.nan)), out)


sqrt_p = _unary("sqrt", _quiet(_sqrt_impl), INEXACT)
rsqrt_p = _unary("rsqrt", _rsqrt_impl, INEXACT)
def _abs_impl(x):
    """NumPy's abs, except that a complex number with a NaN part has a NaN modulus, as in JAX
    (NumPy and C99's ``cabs`` give inf for ``inf + nan j``; fgrad's compiled code gave NaN)."""
    out = np.abs(x)
    if np.iscomplexobj(x):
        out = np.where(_nan_part(x), out.dtype.type(np.nan), out)
    return out


abs_p = _define("abs", _abs_impl, _abs_rule)
sign_p = _unary("sign", _sign_impl, NUMBER)
floor_p = _unary("floor", np.floor)
ceil_p = _unary("ceil", np.ceil)
is_finite_p = _define("is_finite", np.isfinite, _is_finite_rule)
not_p = _unary("not", np.invert, INTEGER_OR_BOOL)  # logical not on bool, bitwise on ints


def neg(x): return neg_p.bind(x)
def exp(x): return exp_p.bind(x)
def log(x): return log_p.bind(x)
def log1p(x): return log1p_p.bind(x)
def expm1(x): return expm1_p.bind(x)
def tanh(x): return tanh_p.bind(x)
def logistic(x): return logistic_p.bind(x)
def sin(x): return sin_p.bind(x)
def cos(x): return cos_p.bind(x)
def sqrt(x): return sqrt_p.bind(x)
def rsqrt(x): return rsqrt_p.bind(x)
def abs(x): return abs_p.bind(x)  # noqa: A001 - lax name
def sign(x): return sign_p.bind(x)
def floor(x): return floor_p.bind(x)
def ceil(x): return ceil_p.bind(x)
def is_finite(x): return is_finite_p.bind(x)
def bitwise_not(x): return not_p.bind(x)


# round ------------------------------------------------------------------------------------

_ROUNDING_METHODS = {"away_from_zero": "away_from_zero", 0: "away_from_zero",
                     "to_nearest_even": "to_nearest_even", 1: "to_nearest_even"}


def _round_impl(x: np.ndarray, rounding_method: str) -> np.ndarray:
    if rounding_method == "to_nearest_even":
        return np.rint(x)
    # x - trunc(x) is exact, unlike floor(|x| + 0.5), which misrounds 0.49999997 and 2**23 + 1
    whole = np.trunc(x)
    with np.errstate(invalid="ignore"):
        step = np.abs(x - whole) >= 0.5
    return np.where(step, whole + np.sign(x), whole).astype(x.dtype)


round_p = _define("round", _round_impl, _same_type_rule("round", FLOAT))


class RoundingMethod(enum.IntEnum):
    """``jax.lax.RoundingMethod``: how ``round`` breaks ties."""
    AWAY_FROM_ZERO = 0
    TO_NEAREST_EVEN = 1


def round(x, rounding_method: str | int = "away_from_zero"):  # noqa: A001 - lax name
    """Round to the nearest integer; ties away from zero (default, or 0) or to even
    (``"to_nearest_even"``, or 1)."""
    method = _ROUNDING_METHODS.get(rounding_method) if isinstance(rounding_method, (str, int)) else None
    if method is None:
        raise ValueError(f"round: rounding_method must be 'away_from_zero' (0) or 'to_nearest_even' (1), "
                         f"got {rounding_method!r}")
    return round_p.bind(x, rounding_method=method)


# integer_pow -------------------------------------------------------------------------------

def _integer_pow_rule(x: ShapedArray, y: int) -> ShapedArray:
    _check_kinds("integer_pow", x.dtype, NUMBER)
    if y < 0 and not dtypes.is_differentiable(x.dtype):
        raise shape_error("integer_pow", f"a negative exponent ({y}) needs a float base, got {x.str_short()}",
                          "Convert the base with .astype(fgrad.numpy.float32)")
    return ShapedArray(x.shape, x.dtype, x.weak_type)


def _integer_pow_impl(x: np.ndarray, y: int) -> np.ndarray:
    """Binary exponentiation (the multiplications compiled code does; exact for ints).
    float16 computes in float32, so that x**-4 does not overflow on the way."""
    x = np.asarray(x)
    wide = x.astype(np.float32) if dtypes.is_half(x.dtype) else x
    result, base, n = np.ones_like(wide), wide, builtins.abs(y)
    with np.errstate(all="ignore"):
        while n:
            if n & 1:
                result = result * base
            n >>= 1
            if n:
                base = base * base
        return ((1 / result) if y < 0 else result).astype(x.dtype)


integer_pow_p = _define("integer_pow", _integer_pow_impl, _integer_pow_rule)


def integer_pow(x, y: int):
    """``x ** y`` for a static Python int ``y`` (negative ``y`` needs a float ``x``)."""
    if isinstance(y, bool) or not isinstance(y, (int, np.integer)):
        raise TypeError(f"integer_pow: the exponent must be a Python int, got {y!r}; "
                        "for a traced or float exponent use lax.pow")
    return integer_pow_p.bind(x, y=int(y))


def square(x):
    """``x * x``."""
    return integer_pow(x, 2)


# --- binary ---------------------------------------------------------------------------------

def _int_division_parts(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(quotient truncated toward zero, remainder with the dividend's sign) of integer arrays,
    exact at every width. A zero divisor, and -1 (which overflows at INT_MIN), divide as 1."""
    x, y = np.asarray(x), np.asarray(y)
    unsafe = (y == 0) | (y == -1) if x.dtype.kind == "i" else (y == 0)
    safe_y = np.where(unsafe, np.ones_like(y), y)
    quotient = np.floor_divide(x, safe_y)
    remainder = x - quotient * safe_y
    floored = (remainder != 0) & ((x < 0) != (safe_y < 0))  # floor differs from truncation
    quotient = np.where(floored, quotient + 1, quotient)
    remainder = np.where(floored, remainder - safe_y, remainder)
    if x.dtype.kind == "i":  # x / -1 == -x (wrapping: INT_MIN / -1 == INT_MIN), remainder 0
        quotient = np.where(y == -1, np.negative(x), quotient)
    return quotient.astype(x.dtype), remainder.astype(x.dtype)


def _div_impl(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if np.asarray(x).dtype.kind in "iu":  # C-style truncating division, like lax.div
        quotient, _ = _int_division_parts(x, y)
        return np.where(y == 0, np.asarray(-1).astype(quotient.dtype), quotient)  # x / 0 == -1
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.true_divide(x, y)


def _rem_impl(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if np.asarray(x).dtype.kind in "iu":
        _, remainder = _int_division_parts(x, y)
        return np.where(y == 0, x, remainder)  # x % 0 == x
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.fmod(x, y)


def _shift_amount(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shift amounts as unsigned values, and where they shift everything out (XLA: result 0)."""
    unsigned = np.dtype(f"u{np.asarray(x).dtype.itemsize}")
    amount = np.asarray(y).astype(unsigned)  # negative amounts become huge ones
    return amount, amount >= 8 * unsigned.itemsize


def _shift_left_impl(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    amount, out_of_range = _shift_amount(x, y)
    x = np.asarray(x)
    shifted = np.left_shift(x, np.where(out_of_range, 0, amount).astype(x.dtype))
    return np.where(out_of_range, np.zeros_like(x), shifted)


def _shift_right_logical_impl(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    amount, out_of_range = _shift_amount(x, y)
    x = np.asarray(x)
    bits = x.view(amount.dtype)
    shifted = np.right_shift(bits, np.where(out_of_range, 0, amount).astype(amount.dtype))
    return np.where(out_of_range, np.zeros_like(bits), shifted).view(x.dtype)


def _pow_impl(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """C's ``pow`` on every element, as the compiled code and JAX compute it. NumPy replaces a
    power by one number 0.5 with ``sqrt`` (and 2 with a square, -1 with a reciprocal), which
    differs at -inf and -0 (``pow(-inf, 0.5)`` is inf, ``sqrt(-inf)`` NaN), so the exponent is
    always passed as a full 1-d array."""
    shape = np.broadcast_shapes(np.shape(x), np.shape(y))
    xs = np.broadcast_to(x, shape).reshape(-1)
    ys = np.array(np.broadcast_to(y, shape)).reshape(-1)
    out = np.power(xs, ys)
    return (_complex_zero_base(xs, ys, out) if out.dtype.kind == "c" else out).reshape(shape)


def _complex_zero_base(x: np.ndarray, y: np.ndarray, out: np.ndarray) -> np.ndarray:
    """XLA's (JAX's) complex ``0 ** y``: 1 for ``y == 0``, 0 for a real ``y > 0``, NaN otherwise
    (NumPy gives 0 whenever ``y``'s real part is positive)."""
    zero = x == 0
    if not zero.any():
        return out
    real_positive = (y.imag == 0) & (y.real > 0)
    at_zero = np.where(y == 0, 1, np.where(real_positive, 0, complex(np.nan, np.nan))).astype(out.dtype)
    return np.where(zero, at_zero, out)


add_p = _binary("add", np.add, NUMBER)
sub_p = _binary("sub", np.subtract, NUMBER)
mul_p = _binary("mul", np.multiply, NUMBER)
div_p = _binary("div", _div_impl, NUMBER)
rem_p = _binary("rem", _rem_impl)
pow_p = _binary("pow", _quiet(_pow_impl), INEXACT)
max_p = _binary("max", _max_impl, ANY)
min_p = _binary("min", _min_impl, ANY)
and_p = _binary("and", np.bitwise_and, INTEGER_OR_BOOL)
or_p = _binary("or", np.bitwise_or, INTEGER_OR_BOOL)
xor_p = _binary("xor", np.bitwise_xor, INTEGER_OR_BOOL)
shift_left_p = _binary("shift_left", _shift_left_impl, INTEGER)
shift_right_logical_p = _binary("shift_right_logical", _shift_right_logical_impl, INTEGER)


def add(x, y): return _bind2(add_p, x, y)
def sub(x, y): return _bind2(sub_p, x, y)
def mul(x, y): return _bind2(mul_p, x, y)
def pow(x, y): return _bind2(pow_p, x, y)  # noqa: A001 - lax name
def max(x, y): return _bind2(max_p, x, y)  # noqa: A001 - lax name
def min(x, y): return _bind2(min_p, x, y)  # noqa: A001 - lax name
def bitwise_and(x, y): return _bind2(and_p, x, y)
def bitwise_or(x, y): return _bind2(or_p, x, y)
def bitwise_xor(x, y): return _bind2(xor_p, x, y)
def shift_left(x, y): return _bind2(shift_left_p, x, y)


def div(x, y):
    """``x / y``; integers truncate toward zero (``x / 0 == -1``, as XLA)."""
    return _bind2(div_p, x, y)


def rem(x, y):
    """Remainder with the sign of ``x`` (C's ``fmod``); integer ``x % 0 == x``, as XLA."""
    return _bind2(rem_p, x, y)


def shift_right_logical(x, y):
    """Shift the bits of ``x`` right by ``y``, filling with zeros (for signed ints too)."""
    return _bind2(shift_right_logical_p, x, y)


# --- comparisons ----------------------------------------------------------------------------

def _compare(name: str, impl: Callable) -> Primitive:
    prim = _define(name, impl, _compare_rule(name))
    not_differentiable.add(prim)
    return prim


eq_p = _compare("eq", np.equal)   # eq and ne take complex operands too; the orderings do not
ne_p = _compare("ne", np.not_equal)
lt_p = _compare("lt", np.less)
le_p = _compare("le", np.less_equal)
gt_p = _compare("gt", np.greater)
ge_p = _compare("ge", np.greater_equal)
# piecewise-constant or integer-valued: zero derivative, as in JAX
not_differentiable.update({is_finite_p, sign_p, floor_p, ceil_p, round_p, not_p, and_p, or_p,
                           xor_p, shift_left_p, shift_right_logical_p})


def eq(x, y): return _bind2(eq_p, x, y)
def ne(x, y): return _bind2(ne_p, x, y)
def lt(x, y): return _bind2(lt_p, x, y)
def le(x, y): return _bind2(le_p, x, y)
def gt(x, y): return _bind2(gt_p, x, y)
def ge(x, y): return _bind2(ge_p, x, y)


# --- select_n and convert_element_type ------------------------------------------------------

def _select_n_rule(pred: ShapedArray, *cases: ShapedArray) -> ShapedArray:
    if not cases:
        raise shape_error("select_n", "needs at least one case")
    if pred.dtype.kind not in "biu":
        raise shape_error("select_n", f"the predicate must be bool or an integer, got {pred.str_short()}",
                          "Compare to get a bool predicate, e.g. lax.gt(x, 0)")
    if pred.dtype == dtypes.bool_ and len(cases) > 2:
        raise shape_error("select_n", f"a bool predicate selects between exactly 2 cases, got {len(cases)}",
                          "Use an int32 predicate for more cases")
    shape = elementwise_shape("select_n", (pred, *cases))
    dtype = same_dtype("select_n", cases)
    return ShapedArray(shape, dtype, all_weak(cases))


def _select_n_impl(pred, *cases):
    if len(cases) == 1:
        return np.broadcast_to(cases[0], np.broadcast_shapes(np.shape(pred), np.shape(cases[0])))
    if np.asarray(pred).dtype == np.bool_:
        return np.where(pred, cases[1], cases[0])
    # out-of-range indices clip to the first/last case
    return np.choose(np.asarray(pred).astype(np.int64), np.broadcast_arrays(*cases), mode="clip")


select_n_p = _define("select_n", _select_n_impl, _select_n_rule)


def select_n(which, *cases):
    """``cases[which]`` elementwise: ``which`` bool (2 cases: False→0, True→1) or int."""
    return select_n_p.bind(which, *cases)


def _convert_rule(x: ShapedArray, new_dtype: np.dtype, weak_type: bool = False) -> ShapedArray:
    return ShapedArray(x.shape, new_dtype, weak_type)


def _float_to_int(x: np.ndarray, new_dtype: np.dtype) -> np.ndarray:
    """Truncate toward zero, saturate at the int range, NaN → 0 (XLA's conversion)."""
    info = np.iinfo(new_dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        whole = np.trunc(x)
        too_big, too_small = whole >= info.max, whole <= info.min  # info.max may round up as a float
        in_range = np.where(too_big | too_small | np.isnan(x), 0, whole).astype(new_dtype)
    return np.where(too_big, new_dtype.type(info.max), np.where(too_small, new_dtype.type(info.min), in_range))


def _convert_impl(x: np.ndarray, new_dtype: np.dtype, weak_type: bool = False) -> np.ndarray:
    x = np.asarray(x)
    if dtypes.is_complex(x.dtype) and not dtypes.is_complex(new_dtype):
        x = x.real                       # XLA: complex -> real keeps the real part (bool too)
    if new_dtype == np.bool_:
        return x != 0
    if dtypes.is_complex(new_dtype) and x.dtype == dtypes.bfloat16:
        x = x.astype(np.float32)         # ml_dtypes' bfloat16 has no direct complex cast
    if dtypes.kind(x.dtype) == "f" and new_dtype.kind in "iu":
        return _float_to_int(x, new_dtype)
    with np.errstate(over="ignore"):
        if new_dtype == dtypes.bfloat16 and x.dtype != dtypes.bfloat16:
            x = x.astype(np.float32)   # as XLA: through float32 (rounding twice from wider types)
        return x.astype(new_dtype)


convert_element_type_p = _define("convert_element_type", _convert_impl, _convert_rule)


def convert_element_type(x, new_dtype, weak_type: bool = False):
    """Cast ``x`` to ``new_dtype``. Floats cast to ints truncate toward zero, saturate at the
    int range and map NaN to 0; ints cast to narrower ints wrap around. Complex cast to a real
    dtype (bool included) keeps the real part, with NumPy's ``ComplexWarning``, as JAX's
    ``lax.convert_element_type``."""
    new_dtype = dtypes.canonicalize(new_dtype)
    aval = get_aval(x)
    if aval.dtype == new_dtype and aval.weak_type == weak_type and type(x) not in _PY_SCALARS:
        return x
    if dtypes.is_complex(aval.dtype) and not dtypes.is_complex(new_dtype):   # JAX warns the same
        warnings.warn("Casting complex values to real discards the imaginary part",
                      np.exceptions.ComplexWarning, stacklevel=2)
    return convert_element_type_p.bind(x, new_dtype=new_dtype, weak_type=bool(weak_type))


def _bitcast_rule(x: ShapedArray, new_dtype: np.dtype) -> ShapedArray:
    new_dtype = np.dtype(new_dtype)
    if x.dtype.itemsize != new_dtype.itemsize or dtypes.bool_ in (x.dtype, new_dtype):
        raise TypeError(f"bitcast_convert_type: cannot reinterpret {x.dtype.name} as {new_dtype.name}; "
                        "both must be non-bool dtypes of one size (float32 <-> int32/uint32, "
                        "float64 <-> int64)")
    return ShapedArray(x.shape, new_dtype)


bitcast_convert_type_p = _define("bitcast_convert_type",
                                 lambda x, new_dtype: np.asarray(x).view(new_dtype), _bitcast_rule)
not_differentiable.add(bitcast_convert_type_p)


def bitcast_convert_type(x, new_dtype):
    """The bits of ``x`` reinterpreted as ``new_dtype`` (same size, as ``lax.bitcast_convert_type``
    for equal widths): ``bitcast_convert_type(-0., int32)`` is ``-2**31``."""
    return bitcast_convert_type_p.bind(x, new_dtype=dtypes.canonicalize(new_dtype))


# --- JVP rules ------------------------------------------------------------------------------

def _const(x, value):
    return as_operand(value, get_aval(x).dtype)


def _full_like(x, value):
    aval = get_aval(x)
    return sh.full(aval.shape, value, aval.dtype)


def _zeros_like(x):
    return _full_like(x, 0)


def _jvp_unary(prim: Primitive, derivative: Callable[[Any, Any], Any]) -> None:
    """Register ``t_out = t * derivative(x, y)`` for a unary primitive (y = prim(x))."""
    def rule(primals, tangents, **params):
        (x,), (t,) = primals, tangents
        y = prim.bind(x, **params)
        return y, mul(t, derivative(x, y))
    jvp_rules[prim] = rule


jvp_rules[neg_p] = lambda p, t: (neg(p[0]), neg(t[0]))
_jvp_unary(exp_p, lambda x, y: y)


def _divided_jvp(prim: Primitive, denominator: Callable[[Any], Any]) -> None:
    """Register ``t_out = t / denominator(x)``, JAX's form for log and log1p: ``t * (1 / d)``
    would overflow to inf where d is subnormal and t small, and the quotient is finite."""
    def rule(primals, tangents, **params):
        (x,), (t,) = primals, tangents
        return prim.bind(x, **params), div(t, denominator(x))
    jvp_rules[prim] = rule


_divided_jvp(log_p, lambda x: x)
_divided_jvp(log1p_p, lambda x: add(x, _const(x, 1)))
_jvp_unary(expm1_p, lambda x, y: add(y, _const(x, 1)))


# t (1 - y*y), not JAX's (t + t y)(1 - y): the same for finite t, but JAX's reads t twice, and
# its transpose then stores the cotangent between two kernels (a GELU layer's backward pass
# gained a 4 MB round trip). An infinite t gives inf here where JAX's gives NaN for y < 0
# (docs/conventions.md).
_jvp_unary(tanh_p, lambda x, y: sub(_const(x, 1), mul(y, y)))
_jvp_unary(logistic_p, lambda x, y: mul(y, sub(_const(x, 1), y)))
_jvp_unary(sin_p, lambda x, y: cos(x))
_jvp_unary(cos_p, lambda x, y: neg(sin(x)))
_jvp_unary(sqrt_p, lambda x, y: div(_const(x, 0.5), y))
_jvp_unary(rsqrt_p, lambda x, y: mul(_const(x, -0.5), div(y, x)))


def _abs_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    # JAX's rule: select(x >= 0, t, -t), so |x| has derivative 1 at 0 (at -0. too)
    return abs(x), select_n(ge(x, _const(x, 0)), neg(t), t)


jvp_rules[abs_p] = _abs_jvp


def _integer_pow_jvp(primals, tangents, y):
    (x,), (t,) = primals, tangents
    out = integer_pow(x, y)
    if y == 0:
        return out, _zeros_like(out)
    deriv = _const(x, y) if y == 1 else mul(_const(x, y), integer_pow(x, y - 1))
    return out, mul(t, deriv)


jvp_rules[integer_pow_p] = _integer_pow_jvp


# Binary rules in JAX's defjvp style: one term per operand, and none for an operand whose
# tangent is a symbolic zero (None), so 0 * inf never makes a zero tangent NaN.

def _terms(out, *terms):
    """The sum of the terms that are not None, shaped like ``out`` (a rank-0 operand's term
    broadcasts)."""
    present = [t for t in terms if t is not None]
    total = present[0]
    for t in present[1:]:
        total = add(total, t)
    shape = get_aval(out).shape
    return total if get_aval(total).shape == shape else sh.broadcast_in_dim(total, shape, ())


def _term(t, fn):
    return None if t is None else fn(t)


def _add_jvp(primals, tangents):
    out = add(*primals)
    return out, _terms(out, *tangents)


def _sub_jvp(primals, tangents):
    out = sub(*primals)
    return out, _terms(out, tangents[0], _term(tangents[1], neg))


def _mul_jvp(primals, tangents):
    (x, y), (tx, ty) = primals, tangents
    out = mul(x, y)
    return out, _terms(out, _term(tx, lambda t: mul(t, y)), _term(ty, lambda t: mul(x, t)))


def _div_jvp(primals, tangents):
    (x, y), (tx, ty) = primals, tangents
    out = div(x, y)
    # JAX's rule, term for term: tx / y - ty * x * y**-2 (so its infinities and signed zeros)
    return out, _terms(out, _term(tx, lambda t: div(t, y)),
                       _term(ty, lambda t: mul(mul(neg(t), x), integer_pow(y, -2))))


def _pow_jvp(primals, tangents):
    (x, y), (tx, ty) = primals, tangents
    out = pow(x, y)
    # JAX's rules for a float exponent: d/dx x^y = y x^(y-1) with no special case (so NaN at
    # x == y == 0, as in JAX); d/dy x^y = log(x) x^y with log(0) read as 0 (0 where x == 0)
    def dy(t):
        return mul(t, mul(out, log(select_n(eq(x, _const(x, 0)), x, _full_like(x, 1)))))
    return out, _terms(out, _term(tx, lambda t: mul(t, mul(y, pow(x, sub(y, _const(y, 1)))))), _term(ty, dy))


def _minmax_jvp(prim: Primitive) -> Callable:
    def rule(primals, tangents):
        (x, y), (tx, ty) = primals, tangents
        out = prim.bind(x, y)
        # JAX's rule: each tangent times [picked] / (2 if tied else 1), so ties split the tangent
        # half/half, and a NaN cotangent stays NaN on the side not picked (0 * NaN)
        def share(t, mine, other):
            picked = select_n(eq(mine, out), _zeros_like(out), _full_like(out, 1))
            return mul(t, div(picked, select_n(eq(other, out), _full_like(out, 1), _full_like(out, 2))))
        return out, _terms(out, _term(tx, lambda t: share(t, x, y)), _term(ty, lambda t: share(t, y, x)))
    return rule


def _rem_jvp(primals, tangents):
    (x, y), (tx, ty) = primals, tangents
    out = rem(x, y)
    # rem(x, y) = x - y * trunc(x / y); JAX's rule writes trunc(q) as sign(q) * floor(|q|)
    def dy(t):
        q = div(x, y)
        return neg(mul(t, mul(sign(q), floor(abs(q)))))
    return out, _terms(out, tx, _term(ty, dy))


jvp_rules[add_p] = _add_jvp
jvp_rules[sub_p] = _sub_jvp
jvp_rules[mul_p] = _mul_jvp


def _select_n_jvp(primals, tangents):
    pred, *cases = primals
    _, *case_tangents = tangents
    return select_n(pred, *cases), select_n(pred, *case_tangents)


def _convert_jvp(primals, tangents, new_dtype, weak_type):
    (x,), (t,) = primals, tangents
    out = convert_element_type_p.bind(x, new_dtype=new_dtype, weak_type=weak_type)
    if t is None or not dtypes.is_differentiable(new_dtype):
        return out, None
    return out, convert_element_type_p.bind(t, new_dtype=new_dtype, weak_type=weak_type)


jvp_rules[div_p] = _div_jvp
jvp_rules[pow_p] = _pow_jvp
symbolic_zero_rules.update({add_p, sub_p, mul_p, div_p, pow_p, max_p, min_p, rem_p})
jvp_rules[max_p] = _minmax_jvp(max_p)
jvp_rules[min_p] = _minmax_jvp(min_p)
jvp_rules[rem_p] = _rem_jvp
jvp_rules[select_n_p] = _select_n_jvp
jvp_rules[convert_element_type_p] = _convert_jvp


# --- transpose rules (the linear primitives) -----------------------------------------------

def _add_transpose(ct, x, y):
    return [_unbroadcast(x.aval, ct) if is_undefined(x) else None,
            _unbroadcast(y.aval, ct) if is_undefined(y) else None]


def _sub_transpose(ct, x, y):
    return [_unbroadcast(x.aval, ct) if is_undefined(x) else None,
            _unbroadcast(y.aval, neg(ct)) if is_undefined(y) else None]


def _mul_transpose(ct, x, y):
    if is_undefined(x) and is_undefined(y):
        raise TypeError("mul: cannot transpose a product of two linear values (it is not linear)")
    if is_undefined(x):
        return [_unbroadcast(x.aval, mul(ct, y)), None]
    return [None, _unbroadcast(y.aval, mul(x, ct))]


def _div_transpose(ct, x, y):
    if is_undefined(y):
        raise TypeError("div: the divisor cannot be linear")
    return [_unbroadcast(x.aval, div(ct, y)), None]


def _select_n_transpose(ct, pred, *cases):
    if is_undefined(pred):
        raise TypeError("select_n: the predicate cannot be linear")
    zeros = _zeros_like(ct)
    return [None, *[_unbroadcast(c.aval, select_n(pred, *[ct if j == i else zeros for j in range(len(cases))]))
                    if is_undefined(c) else None for i, c in enumerate(cases)]]


def _convert_transpose(ct, x, new_dtype, weak_type):
    return [convert_element_type_p.bind(ct, new_dtype=x.aval.dtype, weak_type=x.aval.weak_type)]


transpose_rules[neg_p] = lambda ct, x: [neg(ct)]
transpose_rules[add_p] = _add_transpose
transpose_rules[sub_p] = _sub_transpose
transpose_rules[mul_p] = _mul_transpose
transpose_rules[div_p] = _div_transpose
transpose_rules[select_n_p] = _select_n_transpose
transpose_rules[convert_element_type_p] = _convert_transpose


# --- partition rules (the data-parallel pass, fgrad.core.partition) ----------------------------------------
#
# Every operation here is elementwise; the predicate says when a result is a partial sum
# because its PARTIAL operands are (the operation is linear in them).

def _sum_of_partials(eqn, layouts) -> bool:
    return all(l == PARTIAL for l in layouts)


def _one_partial_times_replicated(eqn, layouts) -> bool:
    return layouts.count(PARTIAL) == 1 and layouts.count(None) == 1


def _partial_over_replicated(eqn, layouts) -> bool:
    return layouts[0] == PARTIAL and layouts[1] is None and is_float(eqn.outvars[0].aval)


def _select_of_partials(eqn, layouts) -> bool:
    return layouts[0] is None and all(l == PARTIAL for l in layouts[1:])


def _float_to_float(eqn, layouts) -> bool:
    return is_float(eqn.invars[0].aval) and is_float(eqn.outvars[0].aval)


def always_linear(eqn, layouts) -> bool:
    """For an operation linear in its one operand (``neg``, ``stop_gradient``)."""
    return True


_PLAIN_ELEMENTWISE = (exp_p, log_p, log1p_p, expm1_p, tanh_p, logistic_p, sin_p, cos_p, sqrt_p, rsqrt_p, abs_p,
                      sign_p, floor_p, ceil_p, is_finite_p, not_p, round_p, bitcast_convert_type_p, integer_pow_p,
                      rem_p, pow_p, max_p, min_p, and_p, or_p, xor_p, shift_left_p, shift_right_logical_p, eq_p, ne_p,
                      lt_p, le_p, gt_p, ge_p)
for _prim in _PLAIN_ELEMENTWISE:
    partition_rules[_prim] = partition.elementwise()
partition_rules[neg_p] = partition.elementwise(always_linear)
partition_rules[add_p] = partition_rules[sub_p] = partition.elementwise(_sum_of_partials)
partition_rules[mul_p] = partition.elementwise(_one_partial_times_replicated)
partition_rules[div_p] = partition.elementwise(_partial_over_replicated)
partition_rules[select_n_p] = partition.elementwise(_select_of_partials)
partition_rules[convert_element_type_p] = partition.elementwise(_float_to_float)
# every elementwise primitive but pow (a log, a multiply and an exp per element) is recomputed
# by scan's backward pass rather than stacked by its forward pass
cheap_to_recompute.update(p for p in (*_PLAIN_ELEMENTWISE, neg_p, add_p, sub_p, mul_p, div_p, select_n_p,
                                      convert_element_type_p) if p is not pow_p)
