"""Elementwise primitives: eager results vs NumPy / exact Python oracles on hypothesis-drawn
shapes, values and dtypes; dtype and shape errors; derivatives vs finite differences to
second order (and JAX's conventions at the awkward points); vmap vs a Python loop;
transposes; traced tangents; jaxpr printing and type checking."""
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import fgrad
from fgrad import lax
from fgrad import numpy as fnp
from fgrad.core.ir import eval_jaxpr, typecheck_jaxpr
from fgrad.ops import elementwise as ew
from fgrad.transforms.jvp import jvp_rules, not_differentiable
from fgrad.transforms.vjp import transpose_rules
from fgrad.transforms.vmap import vmap_rules

from tests.util import check_grads, check_vmap

F16, F32, F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)
U8, U32, I32, I64, BOOL = (np.dtype(t) for t in (np.uint8, np.uint32, np.int32, np.int64, np.bool_))
ALL_DTYPES = [F16, F32, F64, U8, U32, I32, I64, BOOL]
X64_DTYPES = {F64, I64}
KINDS = {"float": "f", "numeric": "iuf", "integer": "iu", "intbool": "iub", "any": "biuf"}
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)


def valid_dtypes(kind):
    return [d for d in ALL_DTYPES if d.kind in KINDS[kind]]


def x64_for(*dtypes):
    return fgrad.config.override(enable_x64=any(d in X64_DTYPES for d in dtypes))


def elements(dtype):
    """Values of ``dtype`` with its edge cases: 0, -0, ±1, extremes, ±inf, NaN."""
    if dtype.kind == "b":
        return st.booleans()
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        edges = [v for v in (0, 1, -1, 2, info.min, info.max, info.min + 1) if info.min <= v <= info.max]
        return st.one_of(st.sampled_from(edges), st.integers(int(info.min), int(info.max)))
    width = dtype.itemsize * 8
    edges = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.5, -2.5, math.inf, -math.inf, math.nan]
    return st.one_of(st.sampled_from(edges), st.floats(width=width), st.floats(-10, 10, width=width))


def arrays(dtype, shape):
    return hnp.arrays(dtype, shape, elements=elements(dtype))


def run(fn, *np_args, **params):
    """Apply an fgrad op eagerly to fgrad Arrays made from NumPy values; NumPy back."""
    out = fn(*[fnp.asarray(a) for a in np_args], **params)
    if isinstance(out, (tuple, list)):
        return [np.asarray(o) for o in out]
    return np.asarray(out)


def assert_same(got, want, dtype=None, rtol=0.0):
    """Same shape and dtype; equal values (NaN where NaN), up to ``rtol`` for floats."""
    want = np.asarray(want, dtype if dtype is not None else np.asarray(want).dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    got = np.asarray(got)
    if want.dtype.kind == "f" and rtol:
        np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-37, equal_nan=True)
    else:
        np.testing.assert_array_equal(got, want)


def wrap(value, dtype):
    """A Python int wrapped around to ``dtype``'s range (two's complement)."""
    bits = dtype.itemsize * 8
    value &= (1 << bits) - 1
    return value - (1 << bits) if dtype.kind == "i" and value >= 1 << (bits - 1) else value


def elementwise_oracle(fn, dtype, *arrays_):
    """Apply a Python scalar function elementwise over broadcast NumPy arrays."""
    shape = np.broadcast_shapes(*(a.shape for a in arrays_))
    flat = [np.broadcast_to(a, shape).ravel().tolist() for a in arrays_]
    return np.array([fn(*vals) for vals in zip(*flat)], dtype=dtype).reshape(shape)


# --- oracles ---------------------------------------------------------------------------------

def round_away(x):
    if not math.isfinite(x):
        return x
    exact = Fraction(x)
    whole = math.floor(abs(exact) + Fraction(1, 2))
    return math.copysign(float(whole), x) if whole else math.copysign(0.0, x)


def round_even(x):
    return x if not math.isfinite(x) else math.copysign(float(round(x)), x)


def logistic64(x):
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x.astype(np.float64)))


def rsqrt64(x):
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1 / np.sqrt(x.astype(np.float64))


# name: (lax function, oracle on a NumPy array, kind of dtypes, rtol for floats)
UNARY = {
    "neg": (lax.neg, np.negative, "numeric", 0),
    "exp": (lax.exp, np.exp, "float", 0),
    "log": (lax.log, np.log, "float", 0),
    "log1p": (lax.log1p, np.log1p, "float", 0),
    "expm1": (lax.expm1, np.expm1, "float", 0),
    "tanh": (lax.tanh, np.tanh, "float", 0),
    "logistic": (lax.logistic, logistic64, "float", 2e-6),
    "sin": (lax.sin, np.sin, "float", 0),
    "cos": (lax.cos, np.cos, "float", 0),
    "sqrt": (lax.sqrt, np.sqrt, "float", 0),
    "rsqrt": (lax.rsqrt, rsqrt64, "float", 2e-6),
    "abs": (lax.abs, np.abs, "numeric", 0),
    "sign": (lax.sign, np.sign, "numeric", 0),
    "floor": (lax.floor, np.floor, "float", 0),
    "ceil": (lax.ceil, np.ceil, "float", 0),
    "round_away": (lax.round, np.vectorize(round_away, otypes=[np.float64]), "float", 0),
    "round_even": (lambda x: lax.round(x, "to_nearest_even"),
                   np.vectorize(round_even, otypes=[np.float64]), "float", 0),
    "is_finite": (lax.is_finite, np.isfinite, "float", 0),
    "not": (lax.bitwise_not, np.invert, "intbool", 0),
}


def int_div(a, b, dtype):
    if b == 0:
        return wrap(-1, dtype)
    q = abs(a) // abs(b)
    return wrap(q if (a < 0) == (b < 0) else -q, dtype)


def int_rem(a, b, dtype):
    if b == 0:
        return a
    q = abs(a) // abs(b)
    return wrap(a - b * (q if (a < 0) == (b < 0) else -q), dtype)


def shift_left(a, s, dtype):
    bits = dtype.itemsize * 8
    return wrap(a << s, dtype) if 0 <= s < bits else 0


def shift_right_logical(a, s, dtype):
    bits = dtype.itemsize * 8
    return wrap((a % (1 << bits)) >> s, dtype) if 0 <= s < bits else 0


def _quiet(f):
    def g(*args):
        with np.errstate(all="ignore"):
            return f(*args)
    return g


def _by_kind(float_fn, int_fn):
    """An oracle: ``float_fn`` on float arrays, ``int_fn`` elementwise on Python ints."""
    def oracle(x, y):
        if x.dtype.kind == "f":
            return _quiet(float_fn)(x, y)
        return elementwise_oracle(lambda a, b: int_fn(a, b, x.dtype), x.dtype, x, y)
    return oracle


# name: (lax function, oracle, kind of dtypes, result dtype or None for the operands')
BINARY = {
    "add": (lax.add, _quiet(np.add), "numeric", None),
    "sub": (lax.sub, _quiet(np.subtract), "numeric", None),
    "mul": (lax.mul, _quiet(np.multiply), "numeric", None),
    "div": (lax.div, _by_kind(np.true_divide, int_div), "numeric", None),
    "rem": (lax.rem, _by_kind(np.fmod, int_rem), "numeric", None),
    "pow": (lax.pow, _quiet(np.power), "float", None),
    "max": (lax.max, np.maximum, "any", None),
    "min": (lax.min, np.minimum, "any", None),
    "and": (lax.bitwise_and, np.bitwise_and, "intbool", None),
    "or": (lax.bitwise_or, np.bitwise_or, "intbool", None),
    "xor": (lax.bitwise_xor, np.bitwise_xor, "intbool", None),
    "shift_left": (lax.shift_left, _by_kind(None, shift_left), "integer", None),
    "shift_right_logical": (lax.shift_right_logical, _by_kind(None, shift_right_logical), "integer", None),
    "eq": (lax.eq, np.equal, "any", BOOL),
    "ne": (lax.ne, np.not_equal, "any", BOOL),
    "lt": (lax.lt, np.less, "any", BOOL),
    "le": (lax.le, np.less_equal, "any", BOOL),
    "gt": (lax.gt, np.greater, "any", BOOL),
    "ge": (lax.ge, np.greater_equal, "any", BOOL),
}


@st.composite
def binary_operands(draw, dtype):
    """Two arrays of one shape, or one of them rank-0 (it broadcasts), or both rank-0."""
    shape = draw(SHAPES)
    pattern = draw(st.sampled_from(["same", "left scalar", "right scalar"]))
    x_shape = () if pattern == "left scalar" else shape
    y_shape = () if pattern == "right scalar" else shape
    return draw(arrays(dtype, x_shape)), draw(arrays(dtype, y_shape))


# --- eager vs oracles --------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(UNARY))
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_unary_eager_matches_numpy(name, data):
    fn, oracle, kind, rtol = UNARY[name]
    dtype = data.draw(st.sampled_from(valid_dtypes(kind)), label="dtype")
    x = data.draw(arrays(dtype, data.draw(SHAPES)), label="x")
    with x64_for(dtype):
        got = run(fn, x)
    with np.errstate(all="ignore"):
        want = oracle(x)
    result_dtype = BOOL if name == "is_finite" else dtype
    assert_same(got, want, result_dtype, 2e-3 if rtol and dtype == F16 else rtol)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning", "ignore:overflow:RuntimeWarning")
@pytest.mark.parametrize("name", sorted(BINARY))
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_binary_eager_matches_numpy(name, data):
    fn, oracle, kind, result_dtype = BINARY[name]
    dtype = data.draw(st.sampled_from(valid_dtypes(kind)), label="dtype")
    x, y = data.draw(binary_operands(dtype), label="operands")
    with x64_for(dtype):
        got = run(fn, x, y)
    assert_same(got, oracle(x, y), result_dtype or dtype)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_integer_division_edges_follow_xla(data):
    dtype = data.draw(st.sampled_from([I32, U8, U32, I64]))
    info = np.iinfo(dtype)
    edge = st.sampled_from([v for v in (0, -1, 1, info.min, info.max, 7, -7) if info.min <= v <= info.max])
    x = np.array(data.draw(st.lists(edge, min_size=1, max_size=8)), dtype)
    y = np.array(data.draw(st.lists(edge, min_size=len(x), max_size=len(x))), dtype)
    with x64_for(dtype):
        assert_same(run(lax.div, x, y), elementwise_oracle(lambda a, b: int_div(a, b, dtype), dtype, x, y))
        assert_same(run(lax.rem, x, y), elementwise_oracle(lambda a, b: int_rem(a, b, dtype), dtype, x, y))


def test_integer_division_conventions_spelled_out():
    x = np.array([7, -7, 7, -7, 5, -2**31, -2**31], np.int32)
    y = np.array([2, 2, -2, -2, 0, -1, 0], np.int32)
    assert run(lax.div, x, y).tolist() == [3, -3, -3, 3, -1, -2**31, -1]
    assert run(lax.rem, x, y).tolist() == [1, -1, 1, -1, 5, 0, -2**31]
    assert run(lax.div, np.array([9], np.uint8), np.array([0], np.uint8)).tolist() == [255]


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_shift_amounts_out_of_range_give_zero(data):
    dtype = data.draw(st.sampled_from([I32, U8, U32]))
    bits = dtype.itemsize * 8
    x = data.draw(arrays(dtype, (6,)))
    s = np.array(data.draw(st.lists(st.sampled_from([0, 1, bits - 1, bits, bits + 3, -1, 255]), min_size=6,
                                    max_size=6)), np.int64)
    s = np.array([wrap(int(v), dtype) for v in s], dtype)
    for fn, oracle in ((lax.shift_left, shift_left), (lax.shift_right_logical, shift_right_logical)):
        want = elementwise_oracle(lambda a, b: oracle(a, b, dtype), dtype, x, s)
        assert_same(run(fn, x, s), want)


def test_round_edge_values():
    x = np.array([0.49999997, 0.5, 1.5, 2.5, -0.5, -2.5, 8388609.0, -0.2, 0.0, np.inf, np.nan], np.float32)
    away = run(lax.round, x)
    even = run(lambda v: lax.round(v, 1), x)
    np.testing.assert_array_equal(away, [0, 1, 2, 3, -1, -3, 8388609, -0.0, 0, np.inf, np.nan])
    np.testing.assert_array_equal(even, [0, 0, 2, 2, -0.0, -2, 8388609, -0.0, 0, np.inf, np.nan])
    assert np.signbit(away[7]) and np.signbit(even[4])
    with pytest.raises(ValueError, match="rounding_method"):
        lax.round(fnp.asarray(x), "up")


# --- integer_pow, select_n, convert_element_type ------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_integer_pow_matches_exact_powers(data):
    dtype = data.draw(st.sampled_from(valid_dtypes("numeric")), label="dtype")
    shape = data.draw(SHAPES)
    if dtype.kind == "f":
        y = data.draw(st.integers(-4, 6))
        small = st.one_of(st.sampled_from([0.0, -0.0, 1.0, math.inf, -math.inf, math.nan]),
                          st.floats(-100, 100, width=dtype.itemsize * 8))
        x = data.draw(hnp.arrays(dtype, shape, elements=small))
        with np.errstate(all="ignore"):
            want = np.power(x.astype(np.float64), y).astype(dtype)
        rtol = 1e-2 if dtype == F16 else 1e-5
    else:
        y = data.draw(st.integers(0, 9))
        x = data.draw(arrays(dtype, shape))
        want = elementwise_oracle(lambda a: wrap(a ** y, dtype), dtype, x)
        rtol = 0
    with x64_for(dtype):
        assert_same(run(lambda v: lax.integer_pow(v, y), x), want, dtype, rtol)


def test_integer_pow_argument_errors():
    with pytest.raises(TypeError, match="integer_pow.*negative exponent"):
        lax.integer_pow(fnp.asarray(np.arange(3, dtype=np.int32)), -1)
    with pytest.raises(TypeError, match="integer_pow.*Python int"):
        lax.integer_pow(fnp.asarray(np.ones(3, np.float32)), 2.0)
    with pytest.raises(TypeError, match="integer_pow.*bool"):
        lax.integer_pow(fnp.asarray(np.ones(3, bool)), 2)
    assert run(lax.square, np.array([3, -4], np.int32)).tolist() == [9, 16]


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_select_n_matches_a_python_loop(data):
    dtype = data.draw(st.sampled_from(ALL_DTYPES), label="dtype")
    shape = data.draw(SHAPES)
    n = data.draw(st.integers(1, 4), label="cases")
    pred_dtype = BOOL if n <= 2 and data.draw(st.booleans()) else I32
    pred_shape = data.draw(st.sampled_from([shape, ()]))
    if pred_dtype == BOOL:
        pred = data.draw(hnp.arrays(BOOL, pred_shape))
    else:
        pred = data.draw(hnp.arrays(I32, pred_shape, elements=st.integers(0, n - 1)))
    cases = [data.draw(arrays(dtype, data.draw(st.sampled_from([shape, ()])))) for _ in range(n)]
    with x64_for(dtype):
        got = run(lax.select_n, pred, *cases)
    out_shape = np.broadcast_shapes(pred.shape, *(c.shape for c in cases))
    index = np.broadcast_to(np.minimum(pred.astype(np.int64), n - 1), out_shape)
    want = np.empty(out_shape, dtype)
    for pos in np.ndindex(out_shape):
        want[pos] = np.broadcast_to(cases[index[pos]], out_shape)[pos]
    assert_same(got, want)


def test_select_n_errors():
    x = fnp.asarray(np.ones(3, np.float32))
    with pytest.raises(TypeError, match="select_n.*predicate must be bool or an integer.*f32"):
        lax.select_n(x, x, x)
    with pytest.raises(TypeError, match="select_n.*exactly 2 cases"):
        lax.select_n(fnp.asarray(np.ones(3, bool)), x, x, x)
    with pytest.raises(TypeError, match="select_n.*at least one case"):
        lax.select_n(fnp.asarray(np.ones(3, bool)))
    with pytest.raises(TypeError, match="select_n.*same dtype"):
        lax.select_n(fnp.asarray(np.ones(3, bool)), x, fnp.asarray(np.ones(3, np.int32)))
    with pytest.raises(TypeError, match="select_n.*same shape"):
        lax.select_n(fnp.asarray(np.ones(2, bool)), x, x)


def convert_oracle(x, dtype):
    """Python semantics of convert_element_type: truncate, saturate, NaN → 0; ints wrap."""
    def one(v):
        if dtype.kind == "b":
            return v != 0
        if dtype.kind in "iu" and isinstance(v, float):
            if math.isnan(v):
                return 0
            info = np.iinfo(dtype)
            return int(max(info.min, min(info.max, math.trunc(v) if math.isfinite(v) else v)))
        if dtype.kind in "iu":
            return wrap(int(v), dtype)
        return v
    with np.errstate(over="ignore"):
        return elementwise_oracle(one, dtype, x)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_convert_element_type_matches_python_semantics(data):
    src = data.draw(st.sampled_from(ALL_DTYPES), label="from")
    dst = data.draw(st.sampled_from(ALL_DTYPES), label="to")
    x = data.draw(arrays(src, data.draw(SHAPES)), label="x")
    with x64_for(src, dst):
        got = run(lambda v: lax.convert_element_type(v, dst), x)
    assert_same(got, convert_oracle(x, dst), dst)


def test_convert_element_type_saturates_and_keeps_weak_type_on_request():
    x = np.array([np.nan, 3e9, -3e9, -1.7, 1.7, np.inf, -np.inf, 2147483520.0], np.float32)
    assert run(lambda v: lax.convert_element_type(v, np.int32), x).tolist() == \
        [0, 2**31 - 1, -2**31, -1, 1, 2**31 - 1, -2**31, 2147483520]
    assert run(lambda v: lax.convert_element_type(v, np.uint8), np.array([300, -3, 255.9], np.float32)).tolist() \
        == [255, 0, 255]
    weak = lax.convert_element_type(fnp.asarray(np.ones(2, np.int32)), np.float32, weak_type=True)
    assert weak.dtype == F32 and weak.weak_type
    assert lax.convert_element_type(3, np.float32).dtype == F32
    assert lax.convert_element_type(fnp.asarray(np.ones(2, np.float32)), np.complex64).dtype == np.complex64
    with pytest.raises(TypeError, match="complex256"):
        lax.convert_element_type(fnp.asarray(np.ones(2, np.float32)), np.clongdouble)


# --- dtype, shape and Python-scalar rules ------------------------------------------------------

def _all_ops():
    ops = {name: (spec[0], 1, spec[2]) for name, spec in UNARY.items()}
    ops.update({name: (spec[0], 2, spec[2]) for name, spec in BINARY.items()})
    ops["integer_pow"] = (lambda x: lax.integer_pow(x, 2), 1, "numeric")
    return ops


@pytest.mark.parametrize("name", sorted(_all_ops()))
def test_invalid_dtypes_raise_type_errors_naming_the_op(name):
    fn, arity, kind = _all_ops()[name]
    op = {"round_away": "round", "round_even": "round"}.get(name, name)
    for dtype in ALL_DTYPES:
        with x64_for(dtype):
            args = [fnp.asarray(np.zeros(2, dtype))] * arity
            if dtype in valid_dtypes(kind):
                fn(*args)
                continue
            with pytest.raises(TypeError, match=f"^{op}: .*{dtype.name}"):
                fn(*args)


@pytest.mark.parametrize("name", sorted(BINARY))
def test_mismatched_shapes_and_dtypes_raise_type_errors(name):
    fn, _, kind, _ = BINARY[name]
    dtype = valid_dtypes(kind)[-1 if kind != "float" else 1]
    a, b = fnp.asarray(np.zeros((2, 3), dtype)), fnp.asarray(np.zeros((3,), dtype))
    same_shape = rf"{name}: operands must have the same shape.*\[2,3\].*\[3\].*broadcast_in_dim"
    with pytest.raises(TypeError, match=same_shape):
        fn(a, b)
    other = next(d for d in (U8, F32) if d != dtype)
    with pytest.raises(TypeError, match=rf"{name}: operands must have the same dtype.*convert_element_type"):
        fn(a, fnp.asarray(np.zeros((2, 3), other)))


def test_python_scalars_take_the_array_dtype_when_they_fit():
    u8 = fnp.asarray(np.array([250, 3], np.uint8))
    assert run(lax.add, np.array([250, 3], np.uint8), np.uint8(10)).dtype == U8
    assert lax.add(u8, 10).dtype == U8 and lax.add(u8, 10).tolist() == [4, 13]
    assert lax.mul(fnp.asarray(np.ones(2, np.float32)), 2).dtype == F32
    assert lax.bitwise_and(fnp.asarray(np.array([True, False])), True).tolist() == [True, False]
    for bad_x, bad_y in [(fnp.asarray(np.ones(2, np.int32)), 2.5), (u8, 256), (u8, -1),
                         (fnp.asarray(np.array([True])), 1)]:
        with pytest.raises(TypeError, match="does not fit"):
            lax.add(bad_x, bad_y) if bad_x.dtype != BOOL else lax.bitwise_and(bad_x, bad_y)


def test_python_scalar_operands_give_weak_results_when_staged():
    closed = fgrad.make_jaxpr(lambda x: [lax.neg(2.0), lax.add(1, 2.5), lax.add(x, 2.0), lax.mul(3, 2)])(
        fnp.asarray(np.ones(2, np.float32)))
    typecheck_jaxpr(closed.jaxpr)
    assert [(v.aval.str_short(), v.aval.weak_type) for v in closed.jaxpr.outvars] == \
        [("f32[]", True), ("f32[]", True), ("f32[2]", False), ("i32[]", True)]
    assert lax.add(1, 2.5).item() == 3.5 and lax.add(1, 2.5).dtype == F32
    with fgrad.config.override(enable_x64=True):
        assert lax.mul(3, 2).dtype == I64


def test_python_scalar_operands_give_weak_results_eagerly():
    assert lax.neg(2.0).weak_type and lax.add(1, 2.5).weak_type


def test_zero_size_and_scalar_shapes():
    empty = fnp.asarray(np.zeros((0, 3), np.float32))
    assert lax.add(empty, 1.0).shape == (0, 3)
    assert lax.select_n(fnp.asarray(np.zeros((0, 3), bool)), empty, 2.0).shape == (0, 3)
    assert lax.exp(fnp.asarray(np.float32(0.0))).shape == ()


# --- differentiation ---------------------------------------------------------------------------

DIFFERENTIABLE_UNARY = {  # name: (function, sampler of valid points)
    "neg": (lax.neg, lambda r, s: r.uniform(-3, 3, s)),
    "exp": (lax.exp, lambda r, s: r.uniform(-3, 3, s)),
    "log": (lax.log, lambda r, s: r.uniform(0.2, 4, s)),
    "log1p": (lax.log1p, lambda r, s: r.uniform(-0.8, 3, s)),
    "expm1": (lax.expm1, lambda r, s: r.uniform(-3, 3, s)),
    "tanh": (lax.tanh, lambda r, s: r.uniform(-3, 3, s)),
    "logistic": (lax.logistic, lambda r, s: r.uniform(-4, 4, s)),
    "sin": (lax.sin, lambda r, s: r.uniform(-3, 3, s)),
    "cos": (lax.cos, lambda r, s: r.uniform(-3, 3, s)),
    "sqrt": (lax.sqrt, lambda r, s: r.uniform(0.2, 4, s)),
    "rsqrt": (lax.rsqrt, lambda r, s: r.uniform(0.2, 4, s)),
    "abs": (lax.abs, lambda r, s: r.uniform(0.1, 3, s) * r.choice([-1, 1], s)),
    "integer_pow_0": (lambda x: lax.integer_pow(x, 0), lambda r, s: r.uniform(-2, 2, s)),
    "integer_pow_1": (lambda x: lax.integer_pow(x, 1), lambda r, s: r.uniform(-2, 2, s)),
    "integer_pow_3": (lambda x: lax.integer_pow(x, 3), lambda r, s: r.uniform(-2, 2, s)),
    "integer_pow_-2": (lambda x: lax.integer_pow(x, -2), lambda r, s: r.uniform(0.5, 2, s) * r.choice([-1, 1], s)),
    "square": (lax.square, lambda r, s: r.uniform(-2, 2, s)),
    "convert_f64_weak": (lambda x: lax.convert_element_type(x, np.float64, weak_type=True),
                         lambda r, s: r.uniform(-2, 2, s)),
}


def _away_from_ties(r, s):
    x, y = r.uniform(-2, 2, s), r.uniform(-2, 2, s)
    return x, np.where(np.abs(x - y) < 0.05, y + 0.5, y)


def _rem_points(r, s):
    x, y = r.uniform(0.1, 4, s) * r.choice([-1, 1], s), r.uniform(0.6, 1.7, s) * r.choice([-1, 1], s)
    frac = np.abs(x / y) % 1
    return np.where((frac < 0.05) | (frac > 0.95), x + 0.3 * y, x), y


DIFFERENTIABLE_BINARY = {  # name: (function, sampler of valid (x, y))
    "add": (lax.add, lambda r, s: (r.uniform(-2, 2, s), r.uniform(-2, 2, s))),
    "sub": (lax.sub, lambda r, s: (r.uniform(-2, 2, s), r.uniform(-2, 2, s))),
    "mul": (lax.mul, lambda r, s: (r.uniform(-2, 2, s), r.uniform(-2, 2, s))),
    "div": (lax.div, lambda r, s: (r.uniform(-2, 2, s), r.uniform(0.5, 2, s) * r.choice([-1, 1], s))),
    "rem": (lax.rem, _rem_points),
    "pow": (lax.pow, lambda r, s: (r.uniform(0.3, 3, s), r.uniform(-2, 2, s))),
    "max": (lax.max, _away_from_ties),
    "min": (lax.min, _away_from_ties),
}


@st.composite
def grad_shapes(draw):
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3))
    pattern = draw(st.sampled_from(["same", "left scalar", "right scalar"]))
    return (() if pattern == "left scalar" else shape), (() if pattern == "right scalar" else shape)


@pytest.mark.parametrize("name", sorted(DIFFERENTIABLE_UNARY))
@settings(max_examples=4, deadline=None)
@given(shape=hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3), seed=st.integers(0, 2**16))
def test_unary_grads_match_finite_differences(name, shape, seed):
    fn, sample = DIFFERENTIABLE_UNARY[name]
    check_grads(fn, (sample(np.random.default_rng(seed), shape),), order=2)


@pytest.mark.parametrize("name", sorted(DIFFERENTIABLE_BINARY))
@settings(max_examples=4, deadline=None)
@given(shapes=grad_shapes(), seed=st.integers(0, 2**16))
def test_binary_grads_match_finite_differences(name, shapes, seed):
    fn, sample = DIFFERENTIABLE_BINARY[name]
    rng = np.random.default_rng(seed)
    x, y = sample(rng, np.broadcast_shapes(*shapes))
    x = x if shapes[0] else np.asarray(x.reshape(-1)[0])  # a rank-0 operand broadcasts
    y = y if shapes[1] else np.asarray(y.reshape(-1)[0])
    if name in ("max", "min"):
        assume(np.all(np.abs(x - y) > 0.05))
    if name == "rem":
        frac = np.abs(x / y) % 1
        assume(np.all((frac > 0.05) & (frac < 0.95)))
    check_grads(fn, (np.asarray(x, np.float64), np.asarray(y, np.float64)), order=2)


@settings(max_examples=4, deadline=None)
@given(shape=hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3), seed=st.integers(0, 2**16),
       n=st.integers(2, 3))
def test_select_n_grads_match_finite_differences(shape, seed, n):
    rng = np.random.default_rng(seed)
    which = rng.integers(0, n, shape).astype(np.int32) if n > 2 else rng.random(shape) < 0.5
    cases = [rng.uniform(-2, 2, shape) for _ in range(n)]
    check_grads(lambda *cs: lax.select_n(fnp.asarray(which), *cs), cases, order=2)
    check_grads(lambda c: lax.select_n(fnp.asarray(which), c, 1.5), (cases[0],), order=2)


def _logistic(x):
    return 1 / (1 + np.exp(-x))


CLOSED_FORMS = {  # name: (first derivative, second derivative), on DIFFERENTIABLE_UNARY's points
    "neg": (lambda x: -np.ones_like(x), np.zeros_like),
    "exp": (np.exp, np.exp),
    "log": (lambda x: 1 / x, lambda x: -1 / x ** 2),
    "log1p": (lambda x: 1 / (1 + x), lambda x: -1 / (1 + x) ** 2),
    "expm1": (np.exp, np.exp),
    "tanh": (lambda x: 1 - np.tanh(x) ** 2, lambda x: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2)),
    "logistic": (lambda x: _logistic(x) * (1 - _logistic(x)),
                 lambda x: _logistic(x) * (1 - _logistic(x)) * (1 - 2 * _logistic(x))),
    "sin": (np.cos, lambda x: -np.sin(x)),
    "cos": (lambda x: -np.sin(x), lambda x: -np.cos(x)),
    "sqrt": (lambda x: 0.5 * x ** -0.5, lambda x: -0.25 * x ** -1.5),
    "rsqrt": (lambda x: -0.5 * x ** -1.5, lambda x: 0.75 * x ** -2.5),
    "abs": (np.sign, np.zeros_like),
    "integer_pow_0": (np.zeros_like, np.zeros_like),
    "integer_pow_1": (np.ones_like, np.zeros_like),
    "integer_pow_3": (lambda x: 3 * x ** 2, lambda x: 6 * x),
    "integer_pow_-2": (lambda x: -2 * x ** -3.0, lambda x: 6 * x ** -4.0),
    "square": (lambda x: 2 * x, lambda x: 2 * np.ones_like(x)),
    "convert_f64_weak": (np.ones_like, np.zeros_like),
}


@pytest.mark.parametrize("jitted", [False, True])
def test_derivative_formulas_at_infinite_cotangents_and_subnormals(jitted):
    # tanh: t (1 - y*y), so an infinite t stays infinite (JAX's (t + t y)(1 - y) gives
    # [nan, inf, nan] here: docs/conventions.md); log: JAX's t / x, finite where 1 / x overflows
    x = np.array([-0.8, 1.03, -1.5], np.float32)
    tanh_grad = fgrad.grad(lambda x: fnp.sum(fnp.tanh(x) / 0.0))
    log_grad = fgrad.grad(lambda x: 1e-5 * fnp.log(x))
    if jitted:
        tanh_grad, log_grad = fgrad.jit(tanh_grad), fgrad.jit(log_grad)
    np.testing.assert_array_equal(np.asarray(tanh_grad(x)), [np.inf, np.inf, np.inf])
    with fgrad.config.override(enable_x64=True):
        np.testing.assert_allclose(float(log_grad(1e-310)), 1e-5 / 1e-310, rtol=1e-12)


@pytest.mark.parametrize("name", sorted(CLOSED_FORMS))
def test_unary_derivatives_match_closed_forms(name):
    fn, sample = DIFFERENTIABLE_UNARY[name]
    first, second = CLOSED_FORMS[name]
    x = sample(np.random.default_rng(3), (5,))
    with fgrad.config.override(enable_x64=True):
        d1 = fgrad.grad(lambda v: fn(v).sum())
        d2 = fgrad.grad(lambda v: d1(v).sum())
        ones = fnp.asarray(np.ones(5))
        fwd1 = lambda v: fgrad.jvp(fn, (v,), (ones,))[1]  # noqa: E731
        fwd2 = fgrad.jvp(fwd1, (fnp.asarray(x),), (ones,))[1]
        for got, want in [(d1(fnp.asarray(x)), first(x)), (fwd1(fnp.asarray(x)), first(x)),
                          (d2(fnp.asarray(x)), second(x)), (fwd2, second(x))]:
            np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-12)


BINARY_PARTIALS = {  # name: (d/dx, d/dy) at scalar points
    "add": (lambda x, y: 1.0, lambda x, y: 1.0),
    "sub": (lambda x, y: 1.0, lambda x, y: -1.0),
    "mul": (lambda x, y: y, lambda x, y: x),
    "div": (lambda x, y: 1 / y, lambda x, y: -x / y ** 2),
    "rem": (lambda x, y: 1.0, lambda x, y: -math.trunc(x / y)),
    "pow": (lambda x, y: y * x ** (y - 1), lambda x, y: x ** y * math.log(x)),
    "max": (lambda x, y: float(x > y), lambda x, y: float(y > x)),
    "min": (lambda x, y: float(x < y), lambda x, y: float(y < x)),
}


@pytest.mark.parametrize("name", sorted(BINARY_PARTIALS))
def test_binary_partials_match_closed_forms(name):
    fn, sample = DIFFERENTIABLE_BINARY[name]
    xs, ys = sample(np.random.default_rng(4), (6,))
    for x, y in zip(xs.tolist(), ys.tolist()):
        for argnums, partial in enumerate(BINARY_PARTIALS[name]):
            np.testing.assert_allclose(_grad(fn, x, y, argnums=argnums), partial(x, y), rtol=1e-12)


def test_pow_second_partials_match_closed_forms():
    x, y = 1.7, 0.6
    hessian = {(0, 0): y * (y - 1) * x ** (y - 2), (0, 1): x ** (y - 1) * (1 + y * math.log(x)),
               (1, 0): x ** (y - 1) * (1 + y * math.log(x)), (1, 1): x ** y * math.log(x) ** 2}
    for (i, j), want in hessian.items():
        got = _grad(lambda a, b: fgrad.grad(lax.pow, argnums=i)(a, b), x, y, argnums=j)
        np.testing.assert_allclose(got, want, rtol=1e-12)


def _grad(f, *args, argnums=0):
    with fgrad.config.override(enable_x64=True):
        return np.asarray(fgrad.grad(f, argnums=argnums)(*[fnp.asarray(np.float64(a)) for a in args]))


def test_abs_has_derivative_one_at_zero_like_jax():
    # JAX's rule is select(x >= 0, t, -t): +1 at 0 and at -0. (it was sign(x), so 0 there)
    assert _grad(lax.abs, 0.0) == 1.0
    assert _grad(lax.abs, -0.0) == 1.0
    assert _grad(fgrad.grad(lax.abs), 0.0) == 0.0
    assert _grad(lax.abs, -2.0) == -1.0
    x = fnp.asarray(np.array([-1.0, 0.0, 2.0], np.float32))
    _, tangent = fgrad.jvp(lax.abs, (x,), (fnp.ones_like(x),))
    assert np.asarray(tangent).tolist() == [-1.0, 1.0, 1.0]


def test_max_min_order_minus_zero_below_zero_like_xla():
    # JAX: max(0., -0.) == max(-0., 0.) == 0. and min of them -0.; NumPy returns an operand
    x = np.array([0.0, -0.0, 0.0, -0.0, np.nan, 1.0], np.float32)
    y = np.array([-0.0, 0.0, 0.0, -0.0, 1.0, np.nan], np.float32)
    for op, signs in ((lax.max, [False, False, False, True]), (lax.min, [True, True, False, True])):
        for got in (op(fnp.asarray(x), fnp.asarray(y)), fgrad.jit(op)(x, y)):
            got = np.asarray(got)
            assert np.signbit(got[:4]).tolist() == signs and np.isnan(got[4:]).all()


def test_sign_keeps_the_sign_of_zero_eagerly_and_compiled():
    x = np.array([-0.0, 0.0, -2.0, 3.0, np.nan], np.float32)
    for got in (lax.sign(fnp.asarray(x)), fgrad.jit(lax.sign)(x), fnp.sign(-0.0)):
        got = np.asarray(got)
        want = np.array([-0.0, 0.0, -1.0, 1.0, np.nan], np.float32)[:got.size]
        np.testing.assert_array_equal(got, want)
        assert np.signbit(got.ravel()[0])


@pytest.mark.parametrize("op", [lax.max, lax.min])
def test_max_min_split_the_tangent_at_ties(op):
    assert _grad(op, 1.0, 1.0, argnums=0) == 0.5 and _grad(op, 1.0, 1.0, argnums=1) == 0.5
    assert _grad(lambda x: op(x, x), 1.5) == 1.0
    check_grads(lambda x: op(x, x), (np.array([0.5, -1.0]),), order=2)
    x = fnp.asarray(np.array([1.0, 2.0, 3.0], np.float32))
    _, tangent = fgrad.jvp(lambda a: op(a, 2.0), (x,), (fnp.asarray(np.ones(3, np.float32)),))
    expected = [0.0, 0.5, 1.0] if op is lax.max else [1.0, 0.5, 0.0]
    assert np.asarray(tangent).tolist() == expected


def test_pow_derivatives_at_zero_base_follow_jax():
    assert _grad(lax.pow, 0.0, 2.0, argnums=0) == 0.0
    assert _grad(lax.pow, 0.0, 2.0, argnums=1) == 0.0       # log(0) read as 0
    assert np.isnan(_grad(lax.pow, 0.0, 0.0, argnums=0))    # JAX: y * x^(y-1) = 0 * inf, no special case
    assert _grad(lax.pow, 3.0, 0.0, argnums=0) == 0.0
    assert _grad(fgrad.grad(lax.pow), 0.0, 2.0) == 2.0      # d2/dx2 x^2
    assert _grad(fgrad.grad(lax.pow, argnums=1), 0.0, 2.0, argnums=0) == 0.0


def _pow_hessian(x, y):
    with fgrad.config.override(enable_x64=True):
        return np.asarray(fgrad.hessian(lax.pow, (0, 1))(np.float64(x), np.float64(y)), np.float64)


def test_pow_second_derivatives_at_zero_exponent_and_base_match_jax():
    # (JAX 0.10.2's values.) The old jvp's select(y == 0, 0, ...) hid x^y's dependence on y:
    # d2/dxdy at (2, 0) was 0 one way round and 0.5 the other.
    np.testing.assert_allclose(_pow_hessian(2.0, 0.0), [[0.0, 0.5], [0.5, math.log(2) ** 2]], rtol=1e-15)
    np.testing.assert_array_equal(_pow_hessian(1.0, 0.0), [[0.0, 1.0], [1.0, 0.0]])
    np.testing.assert_array_equal(_pow_hessian(0.0, 2.0), [[2.0, 0.0], [0.0, 0.0]])
    assert np.isnan(_pow_hessian(0.0, 0.0)).all()
    assert np.isnan(_pow_hessian(-2.0, 2.0)).all()
    hessian = _pow_hessian(1.7, 0.6)
    np.testing.assert_allclose(hessian, hessian.T, rtol=1e-14)


@pytest.mark.parametrize("op", [lax.max, lax.min])
def test_max_min_cotangent_is_zero_times_the_incoming_one(op):
    # JAX multiplies the cotangent by 0 on the side not picked, so a NaN cotangent stays NaN
    # there (fnp.hypot(nan, 1) has NaN gradients in JAX through this)
    with fgrad.config.override(enable_x64=True):
        _, vjp_fn = fgrad.vjp(op, fnp.asarray(np.float64(2.0)), fnp.asarray(np.float64(1.0)))
        dx, dy = vjp_fn(fnp.asarray(np.float64(np.nan)))
    assert np.isnan(np.asarray(dx)) and np.isnan(np.asarray(dy))


def test_binary_rules_skip_symbolic_zero_tangents():
    # d/dx of x * c at x = inf is c: the zero tangent of the constant c must not meet x = inf
    # as 0 * inf (JAX's defjvp has no term for it); same for the other binary rules
    from fgrad.transforms.jvp import symbolic_zero_rules
    assert {ew.add_p, ew.sub_p, ew.mul_p, ew.div_p, ew.pow_p, ew.max_p, ew.min_p, ew.rem_p} <= symbolic_zero_rules
    with fgrad.config.override(enable_x64=True):
        inf = fnp.asarray(np.float64(np.inf))
        for f, want in ((lambda x: lax.mul(x, fnp.asarray(np.float64(2.0))), 2.0),
                        (lambda x: lax.pow(fnp.asarray(np.float64(1.0)), x), 0.0)):
            assert float(fgrad.jvp(f, (inf,), (fnp.asarray(np.float64(1.0)),))[1]) == want
        y = fnp.asarray(np.float64(0.0))
        second = fgrad.grad(fgrad.grad(lax.div), argnums=1)(fnp.asarray(np.float64(1.0)), y)
        assert float(second) == -np.inf     # JAX: d/dy (1 / y) at 0, not 0 * inf


def test_sqrt_and_integer_pow_at_zero():
    assert _grad(lax.sqrt, 0.0) == np.inf                   # as JAX: 0.5 / sqrt(0)
    assert _grad(lambda x: lax.integer_pow(x, 0), 0.0) == 0.0
    assert _grad(lambda x: lax.integer_pow(x, 2), 0.0) == 0.0
    assert _grad(fgrad.grad(lambda x: lax.integer_pow(x, 2)), 0.0) == 2.0


def test_piecewise_constant_ops_have_zero_gradient():
    for fn in (lax.sign, lax.floor, lax.ceil, lax.round, lambda x: lax.round(x, 1)):
        assert _grad(lambda x: lax.add(fn(x), lax.mul(x, 0.0)), 1.3) == 0.0


def test_convert_element_type_gradients_cross_dtypes():
    with fgrad.config.override(enable_x64=True):
        x = fnp.asarray(np.array([1.0, 2.0]))
        g = fgrad.grad(lambda v: lax.convert_element_type(v, np.float32).sum())(x)
        assert g.dtype == F64 and np.asarray(g).tolist() == [1.0, 1.0]
        through_int = fgrad.grad(lambda v: lax.convert_element_type(
            lax.convert_element_type(v, np.int32), np.float64).sum())(x)
        assert np.asarray(through_int).tolist() == [0.0, 0.0]


def test_differentiation_rules_are_registered_for_every_primitive():
    prims = [getattr(ew, n) for n in dir(ew) if n.endswith("_p")]
    assert len(prims) >= 38
    linear = {ew.neg_p, ew.add_p, ew.sub_p, ew.mul_p, ew.div_p, ew.select_n_p, ew.convert_element_type_p}
    for prim in prims:
        assert prim in vmap_rules, prim
        assert (prim in jvp_rules) != (prim in not_differentiable), prim
        assert (prim in transpose_rules) == (prim in linear), prim


# --- tangents that are themselves traced --------------------------------------------------------

ALL_DIFFERENTIABLE = {**{n: (f, 1) for n, (f, _) in DIFFERENTIABLE_UNARY.items()},
                      **{n: (f, 2) for n, (f, _) in DIFFERENTIABLE_BINARY.items()},
                      "select_n": (lambda a, b: lax.select_n(fnp.asarray(np.array([True, False, True])), a, b), 2)}


def _points(name, arity):
    rng = np.random.default_rng(0)
    if name in DIFFERENTIABLE_UNARY:
        return (DIFFERENTIABLE_UNARY[name][1](rng, (3,)).astype(np.float32),)
    if name in DIFFERENTIABLE_BINARY:
        return tuple(a.astype(np.float32) for a in DIFFERENTIABLE_BINARY[name][1](rng, (3,)))
    return tuple(rng.uniform(-1, 1, 3).astype(np.float32) for _ in range(arity))


@pytest.mark.parametrize("name", sorted(ALL_DIFFERENTIABLE))
def test_jvp_rules_accept_traced_tangents(name):
    fn, arity = ALL_DIFFERENTIABLE[name]
    primals = [fnp.asarray(p) for p in _points(name, arity)]
    rng = np.random.default_rng(1)
    t0 = [fnp.asarray(rng.standard_normal(3).astype(np.float32)) for _ in range(arity)]
    t1 = [fnp.asarray(rng.standard_normal(3).astype(np.float32)) for _ in range(arity)]

    def tangent_out(*ts):
        return fgrad.jvp(fn, tuple(primals), tuple(ts))[1]

    want1 = np.asarray(tangent_out(*t1))
    # the tangent map is linear, so its own jvp (tangents traced by an outer jvp) is itself
    _, outer = fgrad.jvp(tangent_out, tuple(t0), tuple(t1))
    np.testing.assert_allclose(np.asarray(outer), want1, rtol=1e-5, atol=1e-6)
    # tangents batched by vmap
    stacked = [fnp.asarray(np.stack([np.asarray(a), np.asarray(b)])) for a, b in zip(t0, t1)]
    batched = np.asarray(fgrad.vmap(tangent_out)(*stacked))
    np.testing.assert_allclose(batched[1], want1, rtol=1e-5, atol=1e-6)
    # primals and tangents both staged
    closed = fgrad.make_jaxpr(lambda ps, ts: fgrad.jvp(fn, tuple(ps), tuple(ts)))(primals, t1)
    typecheck_jaxpr(closed.jaxpr)
    staged = eval_jaxpr(closed.jaxpr, closed.consts, *primals, *t1)
    np.testing.assert_allclose(np.asarray(staged[1]), want1, rtol=1e-5, atol=1e-6)


# --- vmap --------------------------------------------------------------------------------------

B = 4
# (x shape, x axis, y shape, y axis): every way a batch dim can meet an elementwise op
BINARY_LAYOUTS = [
    ((B, 3), 0, (B, 3), 0),
    ((3, B), 1, (3,), None),
    ((2, 3, B), -1, (B, 2, 3), 0),
    ((2, 3), None, (2, B, 3), 1),
    ((B,), 0, (3,), None),       # a batched scalar meets an unbatched array
    ((B,), 0, (3, B), 1),        # ... and an array batched on another axis
    ((2, B), 1, (B,), 0),
    ((), None, (B, 3), 0),       # an unbatched scalar
    ((B,), 0, (B,), 0),
    ((3, B), 1, (), None),
]
UNARY_LAYOUTS = [((B, 3), 0), ((3, B), 1), ((2, 3, B), -1), ((B,), 0), ((2, B, 3), -2)]


def _values(dtype, shape, rng, name=""):
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        high = 8 if name.startswith("shift") else 100
        low = 1 if name in ("div", "rem") else (0 if dtype.kind == "u" or name.startswith("shift") else -100)
        return rng.integers(low, high, shape).astype(dtype)
    low = 0.1 if name in ("log", "sqrt", "rsqrt", "pow", "log1p") else -3
    return rng.uniform(low, 3, shape).astype(dtype)


def _vmap_dtypes(kind):
    return [d for d in (F32, I32, U8, BOOL) if d.kind in KINDS[kind]]


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_vmap_matches_a_loop(name):
    fn, _, kind, _ = UNARY[name]
    rng = np.random.default_rng(0)
    for dtype in _vmap_dtypes(kind):
        for shape, axis in UNARY_LAYOUTS:
            check_vmap(fn, (fnp.asarray(_values(dtype, shape, rng, name)),), in_axes=(axis,))


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_vmap_matches_a_loop(name):
    fn, _, kind, _ = BINARY[name]
    rng = np.random.default_rng(0)
    for dtype in _vmap_dtypes(kind):
        for x_shape, x_axis, y_shape, y_axis in BINARY_LAYOUTS:
            args = (fnp.asarray(_values(dtype, x_shape, rng, name)), fnp.asarray(_values(dtype, y_shape, rng, name)))
            check_vmap(fn, args, in_axes=(x_axis, y_axis), rtol=1e-6)


def test_select_n_convert_and_integer_pow_vmap_match_a_loop():
    rng = np.random.default_rng(0)
    for p_shape, p_axis, c_shape, c_axis in BINARY_LAYOUTS:
        pred = fnp.asarray(rng.integers(0, 3, p_shape).astype(np.int32))
        a, b, c = (fnp.asarray(rng.standard_normal(c_shape).astype(np.float32)) for _ in range(3))
        check_vmap(lambda p, x, y, z: lax.select_n(p, x, y, z), (pred, a, b, c),
                   in_axes=(p_axis, c_axis, c_axis, c_axis))
        check_vmap(lambda p, x: lax.select_n(lax.gt(p, 0), x, 2.0), (pred, a), in_axes=(p_axis, c_axis))
    for shape, axis in UNARY_LAYOUTS:
        x = fnp.asarray(rng.uniform(-3, 3, shape).astype(np.float32))
        check_vmap(lambda v: lax.convert_element_type(v, np.int32), (x,), in_axes=(axis,))
        check_vmap(lambda v: lax.integer_pow(v, 3), (x,), in_axes=(axis,), rtol=1e-5)
        check_vmap(lambda v: lax.round(v, "to_nearest_even"), (x,), in_axes=(axis,))


def test_vmap_of_grad_and_grad_of_vmap():
    x = fnp.asarray(np.linspace(0.5, 2, 6, dtype=np.float32).reshape(2, 3))
    f = lambda v: lax.mul(lax.sin(v), lax.max(v, 1.0))  # noqa: E731
    per_row = fgrad.vmap(fgrad.grad(lambda r: f(r).sum()))(x)
    whole = fgrad.grad(lambda m: fgrad.vmap(f)(m).sum())(x)
    np.testing.assert_allclose(np.asarray(per_row), np.asarray(whole), rtol=1e-6)


# --- transposes (via vjp) ----------------------------------------------------------------------

LINEAR = {  # f affine in its argument; (shape of that argument, shape of the output)
    "neg": (lax.neg, (3,), (3,)),
    "add_scalar_to_array": (lambda s: lax.add(s, fnp.asarray(np.arange(3.0, dtype=np.float32))), (), (3,)),
    "sub_array_from_scalar": (lambda s: lax.sub(fnp.asarray(np.ones(3, np.float32)), s), (), (3,)),
    "mul_scalar_by_array": (lambda s: lax.mul(fnp.asarray(np.arange(3.0, dtype=np.float32)), s), (), (3,)),
    "mul_array_by_scalar": (lambda x: lax.mul(x, 2.5), (3,), (3,)),
    "div_by_array": (lambda x: lax.div(x, fnp.asarray(np.array([1.0, 2.0, 4.0], np.float32))), (3,), (3,)),
    "select_n_scalar_case": (lambda s: lax.select_n(fnp.asarray(np.array([True, False, True])),
                                                     fnp.asarray(np.ones(3, np.float32)), s), (), (3,)),
    "select_n_3": (lambda x: lax.select_n(fnp.asarray(np.array([0, 2, 1], np.int32)), x, lax.neg(x), 1.0),
                   (3,), (3,)),
    "convert_to_f16": (lambda x: lax.convert_element_type(x, np.float16), (3,), (3,)),
}


@pytest.mark.parametrize("name", sorted(LINEAR))
def test_transposes_satisfy_the_adjoint_identity(name):
    fn, in_shape, out_shape = LINEAR[name]
    rng = np.random.default_rng(0)
    t = rng.standard_normal(in_shape).astype(np.float32)
    ct = rng.standard_normal(out_shape).astype(np.float32)
    out, vjp_fn = fgrad.vjp(fn, fnp.asarray(np.zeros(in_shape, np.float32)))
    (ct_in,) = vjp_fn(fnp.asarray(ct.astype(np.asarray(out).dtype)))
    assert ct_in.shape == in_shape and ct_in.dtype == F32
    linear_part = np.asarray(fn(fnp.asarray(t)), np.float64) - np.asarray(out, np.float64)
    lhs = np.vdot(ct.astype(np.float64), linear_part)                                # <ct, L t>
    rhs = np.vdot(np.asarray(ct_in, np.float64), t.astype(np.float64))             # <L^T ct, t>
    np.testing.assert_allclose(lhs, rhs, rtol=1e-3 if "f16" in name else 1e-5, atol=1e-5)


# --- jaxprs ------------------------------------------------------------------------------------

def test_printed_jaxpr_uses_jax_grammar_with_inline_literals():
    closed = fgrad.make_jaxpr(lambda x: lax.mul(lax.sin(x), 2.0))(fnp.asarray(np.ones(3, np.float32)))
    assert str(closed) == ("{ lambda ; a:f32[3]. let\n"
                           "    b:f32[3] = sin a\n"
                           "    c:f32[3] = mul b 2.0\n"
                           "  in (c,) }")


def _every_op(x, i, p):
    """One use of each elementwise primitive (x float32[3], i int32[3], p bool[3])."""
    u = lax.abs(x)
    outs = [f(x) for f in (lax.neg, lax.exp, lax.tanh, lax.logistic, lax.sin, lax.cos, lax.abs, lax.sign,
                           lax.floor, lax.ceil, lax.round, lax.is_finite)]
    outs += [lax.round(x, "to_nearest_even"), lax.log(u), lax.log1p(u), lax.expm1(x), lax.sqrt(u), lax.rsqrt(u),
             lax.integer_pow(x, 3), lax.bitwise_not(i), lax.bitwise_not(p)]
    outs += [f(x, lax.add(u, 1.0)) for f in (lax.add, lax.sub, lax.mul, lax.div, lax.rem, lax.max, lax.min,
                                             lax.eq, lax.ne, lax.lt, lax.le, lax.gt, lax.ge)]
    outs += [lax.pow(u, x), lax.bitwise_and(i, 6), lax.bitwise_or(p, True), lax.bitwise_xor(i, i),
             lax.shift_left(i, 2), lax.shift_right_logical(i, 1), lax.div(i, 2), lax.rem(i, 3)]
    outs += [lax.select_n(p, x, 0.0), lax.select_n(lax.rem(i, 3), x, u, 1.0),
             lax.convert_element_type(x, np.int32), lax.convert_element_type(i, np.uint8),
             lax.bitcast_convert_type(x, np.int32), lax.bitcast_convert_type(i, np.uint32)]
    return outs


def test_staged_jaxpr_of_every_op_typechecks_and_evaluates_like_eager():
    args = (fnp.asarray(np.array([-1.5, 0.0, 2.5], np.float32)), fnp.asarray(np.array([-7, 0, 9], np.int32)),
            fnp.asarray(np.array([True, False, True])))
    closed = fgrad.make_jaxpr(_every_op)(*args)
    typecheck_jaxpr(closed.jaxpr)
    names = {e.primitive.name for e in closed.eqns}
    assert {p.name for p in (getattr(ew, n) for n in dir(ew) if n.endswith("_p"))} <= names
    text = str(closed)
    assert "round[rounding_method='to_nearest_even']" in text and "integer_pow[y=3]" in text
    assert "convert_element_type[new_dtype=u8 weak_type=False]" in text
    for staged, eager in zip(eval_jaxpr(closed.jaxpr, closed.consts, *args), _every_op(*args)):
        assert staged.dtype == eager.dtype
        np.testing.assert_array_equal(np.asarray(staged), np.asarray(eager))


def test_grad_jaxprs_typecheck():
    x = fnp.asarray(np.array([0.5, 1.0, 2.0], np.float32))
    f = lambda v: lax.div(lax.pow(v, lax.max(v, 1.0)), lax.add(lax.rsqrt(v), 1.0)).sum()  # noqa: E731
    for g in (fgrad.grad(f), fgrad.grad(lambda v: fgrad.grad(f)(v).sum())):
        typecheck_jaxpr(fgrad.make_jaxpr(g)(x).jaxpr)


def test_bitcast_convert_type_reinterprets_bits_like_numpy_view():
    x = np.array([-0.0, 0.0, -np.nan, np.nan, -1.0, 2.5, -np.inf], np.float32)
    for dtype in (np.int32, np.uint32):
        want = x.view(dtype)
        for f in (lax.bitcast_convert_type, fgrad.jit(lax.bitcast_convert_type, static_argnums=1)):
            got = f(fnp.asarray(x), dtype)
            assert got.dtype == dtype and np.array_equal(np.asarray(got), want)
        batched = fgrad.vmap(lambda v: lax.bitcast_convert_type(v, dtype))(fnp.asarray(x.reshape(7, 1)))
        assert np.array_equal(np.asarray(batched), want.reshape(7, 1))
    back = lax.bitcast_convert_type(lax.bitcast_convert_type(fnp.asarray(x), np.int32), np.float32)
    assert np.array_equal(np.asarray(back).view(np.int32), x.view(np.int32))
    assert lax.bitcast_convert_type(fnp.asarray(np.float32(-0.0)), np.int32).shape == ()
    parts = lax.bitcast_convert_type(fnp.asarray(x), np.uint8)      # narrower: a trailing axis, as JAX
    assert np.array_equal(np.asarray(parts), x.view(np.uint8).reshape(7, 4))
    with pytest.raises(TypeError, match="cannot reinterpret float32 as bool"):
        lax.bitcast_convert_type(fnp.asarray(x), np.bool_)


def test_pow_by_one_number_is_cs_pow_not_numpys_shortcuts():
    # NumPy turns x ** 0.5 into sqrt(x): NaN at -inf and -0 at -0; C's pow (and JAX, and the
    # compiled code) give inf and +0. Eager, jit and every exponent form must agree.
    x = np.array([-np.inf, -0.0, 0.0, 4.0, np.inf], np.float32)
    want = np.array([np.inf, 0.0, 0.0, 2.0, np.inf], np.float32)
    for y in (np.float32(0.5), np.array(0.5, np.float32), np.full(5, 0.5, np.float32)):
        for run in (lax.pow, fgrad.jit(lax.pow)):
            got = np.asarray(run(x, y))
            np.testing.assert_array_equal(got, want)
            assert not np.signbit(got[1])
    np.testing.assert_array_equal(np.asarray(fnp.asarray(x) ** 0.5), want)
    assert float(lax.pow(np.float32(-np.inf), np.float32(0.5))) == np.inf
