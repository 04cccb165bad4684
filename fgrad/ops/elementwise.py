"""Elementwise primitives: unary math, binary arithmetic, comparisons, logic,
``select_n`` and ``convert_element_type``.

Operands share one shape, except rank-0 operands, which broadcast (so jaxprs can
say ``mul b 2.0``). Each primitive is one registration block: NumPy impl, shape/
dtype rule, JVP rule, transpose rule when linear; all share one vmap rule.
"""
from __future__ import annotations

import builtins
from typing import Any, Callable

import numpy as np

from fgrad.core import dtypes
from fgrad.core.primitive import Primitive
from fgrad.core.trace import get_aval
from fgrad.core.types import ShapedArray
from fgrad.ops._util import all_weak, as_operand, elementwise_shape, same_dtype, shape_error
from fgrad.transforms.jvp import jvp_rules, not_differentiable
from fgrad.transforms.vjp import transpose_rules, is_undefined
from fgrad.transforms.vmap import vmap_rules

__all__ = [
    "neg", "exp", "log", "log1p", "expm1", "tanh", "logistic", "sin", "cos", "sqrt", "rsqrt",
    "abs", "sign", "floor", "ceil", "round", "is_finite", "bitwise_not",
    "add", "sub", "mul", "div", "rem", "pow", "max", "min", "bitwise_and", "bitwise_or",
    "bitwise_xor", "eq", "ne", "lt", "le", "gt", "ge", "select_n", "convert_element_type",
    "integer_pow", "square", "shift_left", "shift_right_logical",
]


# --- shared rules -----------------------------------------------------------------------

def _same_type_rule(op: str, float_only: bool = False, int_only: bool = False) -> Callable:
    def rule(*avals: ShapedArray) -> ShapedArray:
        shape = elementwise_shape(op, avals)
        dtype = same_dtype(op, avals)
        if float_only and not dtypes.is_float(dtype):
            raise shape_error(op, f"requires floating-point operands, got {dtype.name}",
                              "Convert with .astype(fgrad.numpy.float32)")
        if int_only and dtype.kind not in "iub":
            raise shape_error(op, f"requires integer or bool operands, got {dtype.name}")
        return ShapedArray(shape, dtype, all_weak(avals))
    return rule


def _compare_rule(op: str) -> Callable:
    def rule(x: ShapedArray, y: ShapedArray) -> ShapedArray:
        shape = elementwise_shape(op, (x, y))
        same_dtype(op, (x, y))
        return ShapedArray(shape, dtypes.bool_)
    return rule


def _elementwise_vmap(primitive: Primitive) -> Callable:
    def rule(axis, vals, dims, **params):
        from fgrad.ops.shape import broadcast_in_dim, transpose
        out_rank = builtins.max(get_aval(v).ndim - (d is not None) for v, d in zip(vals, dims))
        moved = []
        for v, d in zip(vals, dims):
            aval = get_aval(v)
            if d is None:
                moved.append(v if aval.ndim == 0 else broadcast_in_dim(
                    v, (axis.size, *aval.shape), tuple(range(1, aval.ndim + 1))))
                continue
            if d != 0:
                perm = [d, *[i for i in range(aval.ndim) if i != d]]
                v = transpose(v, tuple(perm))
                aval = get_aval(v)
            if aval.ndim == 1 and out_rank > 0:  # a batched scalar meeting arrays
                other = next(get_aval(w).shape[(dw is not None):] for w, dw in zip(vals, dims)
                             if get_aval(w).ndim - (dw is not None) == out_rank)
                v = broadcast_in_dim(v, (axis.size, *other), (0,))
            moved.append(v)
        out = primitive.bind(*moved, **params)
        return out, 0
    return rule


def _unbroadcast(aval: ShapedArray, ct: Any) -> Any:
    """Sum a cotangent back down to a rank-0 operand that was broadcast."""
    from fgrad.ops.reduction import reduce_sum
    ct_aval = get_aval(ct)
    if aval.shape == () and ct_aval.shape != ():
        ct = reduce_sum(ct, tuple(range(ct_aval.ndim)))
    if get_aval(ct).dtype != aval.dtype:
        ct = convert_element_type(ct, aval.dtype)
    return ct


def _define(name: str, impl: Callable, rule: Callable) -> Primitive:
    prim = Primitive(name)
    prim.def_impl(impl)
    prim.def_abstract_eval(rule)
    vmap_rules[prim] = _elementwise_vmap(prim)
    return prim


def _unary(name: str, impl: Callable, float_only: bool = True) -> Primitive:
    return _define(name, impl, _same_type_rule(name, float_only=float_only))


def _binary(name: str, impl: Callable, float_only: bool = False) -> Primitive:
    return _define(name, impl, _same_type_rule(name, float_only=float_only))


def _bind2(prim: Primitive, x: Any, y: Any) -> Any:
    """Bind a binary primitive; a Python scalar takes the other operand's dtype."""
    if type(x) in (int, float, bool) and type(y) not in (int, float, bool):
        x = as_operand(x, get_aval(y).dtype)
    elif type(y) in (int, float, bool):
        y = as_operand(y, get_aval(x).dtype)
    return prim.bind(x, y)


# --- unary math ---------------------------------------------------------------------------

neg_p = _unary("neg", np.negative, float_only=False)
exp_p = _unary("exp", np.exp)
log_p = _unary("log", np.log)
log1p_p = _unary("log1p", np.log1p)
expm1_p = _unary("expm1", np.expm1)
tanh_p = _unary("tanh", np.tanh)
logistic_p = _unary("logistic", lambda x: _logistic_impl(x))
sin_p = _unary("sin", np.sin)
cos_p = _unary("cos", np.cos)
sqrt_p = _unary("sqrt", np.sqrt)
rsqrt_p = _unary("rsqrt", lambda x: (1 / np.sqrt(x)).astype(x.dtype))
abs_p = _unary("abs", np.abs, float_only=False)
sign_p = _unary("sign", np.sign, float_only=False)
floor_p = _unary("floor", np.floor)
ceil_p = _unary("ceil", np.ceil)
round_p = _define("round", lambda x, rounding_method="away_from_zero": _round_impl(x, rounding_method),
                  lambda x, rounding_method="away_from_zero": _same_type_rule("round", True)(x))
is_finite_p = _define("is_finite", np.isfinite, lambda x: _is_finite_rule(x))
not_p = _define("not", lambda x: np.invert(x) if x.dtype != np.bool_ else np.logical_not(x),
                _same_type_rule("not", int_only=True))
integer_pow_p = _define("integer_pow", lambda x, y: _integer_pow_impl(x, y),
                        lambda x, y: _same_type_rule("integer_pow")(x))


def _is_finite_rule(x: ShapedArray) -> ShapedArray:
    if not dtypes.is_float(x.dtype):
        raise shape_error("is_finite", f"requires a float operand, got {x.str_short()}")
    return ShapedArray(x.shape, dtypes.bool_)


def _logistic_impl(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (1 / (1 + np.exp(-x))).astype(x.dtype)


def _round_impl(x: np.ndarray, method: str) -> np.ndarray:
    if method == "to_nearest_even":
        return np.round(x)
    return (np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(x.dtype)


def _integer_pow_impl(x: np.ndarray, y: int) -> np.ndarray:
    if y < 0 and x.dtype.kind != "f":
        raise ValueError("integer_pow: negative exponents need a float base")
    return np.asarray(x ** y, dtype=x.dtype) if y >= 0 else np.asarray(1 / x ** (-y), dtype=x.dtype)


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


def round(x, rounding_method: str = "away_from_zero"):  # noqa: A001 - lax name
    """Round to the nearest integer; ties away from zero (default) or ``"to_nearest_even"``."""
    if rounding_method not in ("away_from_zero", "to_nearest_even"):
        raise ValueError(f"round: rounding_method must be 'away_from_zero' or 'to_nearest_even', "
                         f"got {rounding_method!r}")
    return round_p.bind(x, rounding_method=rounding_method)


def integer_pow(x, y: int):
    """``x ** y`` for a static Python int ``y``."""
    return integer_pow_p.bind(x, y=int(y))


def square(x):
    return integer_pow(x, 2)


# --- binary ---------------------------------------------------------------------------------

add_p = _binary("add", np.add)
sub_p = _binary("sub", np.subtract)
mul_p = _binary("mul", np.multiply)
div_p = _binary("div", lambda x, y: _div_impl(x, y))
rem_p = _binary("rem", lambda x, y: _rem_impl(x, y))
pow_p = _binary("pow", lambda x, y: np.power(x, y), float_only=True)
max_p = _binary("max", np.maximum)
min_p = _binary("min", np.minimum)
and_p = _define("and", np.bitwise_and, _same_type_rule("and", int_only=True))
or_p = _define("or", np.bitwise_or, _same_type_rule("or", int_only=True))
xor_p = _define("xor", np.bitwise_xor, _same_type_rule("xor", int_only=True))
shift_left_p = _define("shift_left", np.left_shift, _same_type_rule("shift_left", int_only=True))
shift_right_logical_p = _define("shift_right_logical", lambda x, y: _shift_right_logical(x, y),
                                _same_type_rule("shift_right_logical", int_only=True))


def _div_impl(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if np.result_type(x, y).kind in "iu":  # C-style truncating division, like lax.div
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.trunc(np.true_divide(x, np.where(y == 0, 1, y)))
        return q.astype(np.result_type(x, y))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.true_divide(x, y)


def _rem_impl(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        if np.result_type(x, y).kind in "iu":
            return np.fmod(x, np.where(y == 0, 1, y))
        return np.fmod(x, y)


def _shift_right_logical(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    unsigned = np.dtype(f"u{x.dtype.itemsize}")
    return np.right_shift(x.view(unsigned) if x.ndim else np.asarray(x).view(unsigned),
                          np.asarray(y).astype(unsigned)).view(x.dtype)


def add(x, y): return _bind2(add_p, x, y)
def sub(x, y): return _bind2(sub_p, x, y)
def mul(x, y): return _bind2(mul_p, x, y)
def div(x, y): return _bind2(div_p, x, y)
def rem(x, y): return _bind2(rem_p, x, y)
def pow(x, y): return _bind2(pow_p, x, y)  # noqa: A001 - lax name
def max(x, y): return _bind2(max_p, x, y)  # noqa: A001 - lax name
def min(x, y): return _bind2(min_p, x, y)  # noqa: A001 - lax name
def bitwise_and(x, y): return _bind2(and_p, x, y)
def bitwise_or(x, y): return _bind2(or_p, x, y)
def bitwise_xor(x, y): return _bind2(xor_p, x, y)
def shift_left(x, y): return _bind2(shift_left_p, x, y)
def shift_right_logical(x, y): return _bind2(shift_right_logical_p, x, y)


# --- comparisons ----------------------------------------------------------------------------

def _compare(name: str, impl: Callable) -> Primitive:
    prim = _define(name, impl, _compare_rule(name))
    not_differentiable.add(prim)
    return prim


eq_p = _compare("eq", np.equal)
ne_p = _compare("ne", np.not_equal)
lt_p = _compare("lt", np.less)
le_p = _compare("le", np.less_equal)
gt_p = _compare("gt", np.greater)
ge_p = _compare("ge", np.greater_equal)
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
    if pred.dtype != dtypes.bool_ and pred.dtype.kind not in "iu":
        raise shape_error("select_n", f"the predicate must be bool or int32, got {pred.str_short()}")
    if pred.dtype == dtypes.bool_ and len(cases) > 2:
        raise shape_error("select_n", "a bool predicate selects between exactly 2 cases")
    shape = elementwise_shape("select_n", (pred, *cases))
    dtype = same_dtype("select_n", cases)
    return ShapedArray(shape, dtype, all_weak(cases))


def _select_n_impl(pred, *cases):
    if len(cases) == 1:
        return np.broadcast_to(cases[0], np.broadcast_shapes(np.shape(pred), np.shape(cases[0])))
    if pred.dtype == np.bool_:
        return np.where(pred, cases[1], cases[0])
    return np.choose(pred.astype(np.int64), np.broadcast_arrays(*cases), mode="clip")


select_n_p = _define("select_n", _select_n_impl, _select_n_rule)


def select_n(which, *cases):
    """``cases[which]`` elementwise: ``which`` bool (2 cases: False→0, True→1) or int."""
    return select_n_p.bind(which, *cases)


def _convert_rule(x: ShapedArray, new_dtype: np.dtype, weak_type: bool = False) -> ShapedArray:
    return ShapedArray(x.shape, new_dtype, weak_type)


def _convert_impl(x: np.ndarray, new_dtype: np.dtype, weak_type: bool = False) -> np.ndarray:
    if new_dtype == np.bool_:
        return x != 0
    if x.dtype.kind == "f" and new_dtype.kind in "iu":
        with np.errstate(invalid="ignore"):
            return np.trunc(x).astype(new_dtype)
    return x.astype(new_dtype)


convert_element_type_p = _define("convert_element_type", _convert_impl, _convert_rule)


def convert_element_type(x, new_dtype, weak_type: bool = False):
    """Cast ``x`` to ``new_dtype`` (floats truncate toward zero when cast to ints)."""
    new_dtype = dtypes.canonicalize(new_dtype)
    aval = get_aval(x)
    if aval.dtype == new_dtype and aval.weak_type == weak_type and type(x) not in (int, float, bool):
        return x
    return convert_element_type_p.bind(x, new_dtype=new_dtype, weak_type=bool(weak_type))


# --- JVP rules ------------------------------------------------------------------------------

def _jvp_unary(prim: Primitive, derivative: Callable[[Any, Any], Any]) -> None:
    """Register ``t_out = derivative(x, y) * t`` for a unary primitive (y = prim(x))."""
    def rule(primals, tangents, **params):
        (x,), (t,) = primals, tangents
        y = prim.bind(x, **params)
        return y, mul(t, derivative(x, y))
    jvp_rules[prim] = rule


jvp_rules[neg_p] = lambda p, t: (neg(p[0]), neg(t[0]))
_jvp_unary(exp_p, lambda x, y: y)
_jvp_unary(log_p, lambda x, y: div(_one(x), x))
_jvp_unary(log1p_p, lambda x, y: div(_one(x), add(x, _one(x))))
_jvp_unary(expm1_p, lambda x, y: add(y, _one(x)))
_jvp_unary(tanh_p, lambda x, y: sub(_one(x), mul(y, y)))
_jvp_unary(logistic_p, lambda x, y: mul(y, sub(_one(x), y)))
_jvp_unary(sin_p, lambda x, y: cos(x))
_jvp_unary(cos_p, lambda x, y: neg(sin(x)))
_jvp_unary(sqrt_p, lambda x, y: div(_const(x, 0.5), y))
_jvp_unary(rsqrt_p, lambda x, y: mul(_const(x, -0.5), div(y, x)))
_jvp_unary(abs_p, lambda x, y: sign(x))


def _one(x):
    return as_operand(1, get_aval(x).dtype)


def _const(x, value):
    return as_operand(value, get_aval(x).dtype)


def _integer_pow_jvp(primals, tangents, y):
    (x,), (t,) = primals, tangents
    out = integer_pow(x, y)
    if y == 0:
        return out, mul(t, _const(x, 0))
    deriv = _const(x, y) if y == 1 else mul(_const(x, y), integer_pow(x, y - 1))
    return out, mul(t, deriv)


jvp_rules[integer_pow_p] = _integer_pow_jvp
jvp_rules[add_p] = lambda p, t: (add(*p), add(*t))
jvp_rules[sub_p] = lambda p, t: (sub(*p), sub(*t))
jvp_rules[mul_p] = lambda p, t: (mul(*p), add(mul(t[0], p[1]), mul(p[0], t[1])))


def _div_jvp(primals, tangents):
    (x, y), (tx, ty) = primals, tangents
    out = div(x, y)
    return out, sub(div(tx, y), mul(ty, div(out, y)))


def _pow_jvp(primals, tangents):
    (x, y), (tx, ty) = primals, tangents
    out = pow(x, y)
    # d/dx x^y = y x^(y-1) (0 where x == 0 and y == 0, as JAX); d/dy x^y = log(x) x^y (0 where x == 0)
    zero = _const(x, 0)
    dx = mul(y, pow(x, sub(y, _one(y))))
    dx = select_n(eq(y, zero), dx, _const(x, 0) if get_aval(dx).shape == () else mul(dx, zero))
    safe_log = log(select_n(eq(x, zero), x, _one(x) if get_aval(x).shape == () else add(mul(x, zero), _one(x))))
    dy = mul(out, safe_log)
    return out, add(mul(tx, dx), mul(ty, dy))


def _minmax_jvp(prim: Primitive, pick_x: Callable) -> Callable:
    def rule(primals, tangents):
        (x, y), (tx, ty) = primals, tangents
        out = prim.bind(x, y)
        # ties split the tangent evenly (JAX's convention for max/min)
        half = _const(x, 0.5)
        tie = eq(x, y)
        tx_w = select_n(tie, select_n(pick_x(x, y), _zeros_as(tx, out), _bcast(tx, out)), mul(_bcast(tx, out), half))
        ty_w = select_n(tie, select_n(pick_x(x, y), _bcast(ty, out), _zeros_as(ty, out)), mul(_bcast(ty, out), half))
        return out, add(tx_w, ty_w)
    return rule


def _bcast(t, like):
    from fgrad.ops.shape import broadcast_in_dim
    shape = get_aval(like).shape
    return t if get_aval(t).shape == shape else broadcast_in_dim(t, shape, ())


def _zeros_as(t, like):
    from fgrad.ops.shape import full
    return full(get_aval(like).shape, 0, get_aval(t).dtype)


jvp_rules[div_p] = _div_jvp
jvp_rules[pow_p] = _pow_jvp
jvp_rules[max_p] = _minmax_jvp(max_p, gt)
jvp_rules[min_p] = _minmax_jvp(min_p, lt)


def _rem_jvp(primals, tangents):
    (x, y), (tx, ty) = primals, tangents
    out = rem(x, y)
    # rem(x, y) = x - y * trunc(x / y)
    trunc = sub(x, out)
    return out, sub(tx, mul(ty, div(trunc, y)))


jvp_rules[rem_p] = _rem_jvp


def _select_n_jvp(primals, tangents):
    pred, *cases = primals
    _, *case_tangents = tangents
    return select_n(pred, *cases), select_n(pred, *case_tangents)


jvp_rules[select_n_p] = _select_n_jvp


def _convert_jvp(primals, tangents, new_dtype, weak_type):
    (x,), (t,) = primals, tangents
    out = convert_element_type_p.bind(x, new_dtype=new_dtype, weak_type=weak_type)
    if t is None or not dtypes.is_differentiable(new_dtype):
        return out, None
    return out, convert_element_type_p.bind(t, new_dtype=new_dtype, weak_type=weak_type)


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
    zeros = _zeros_as(ct, ct)
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
