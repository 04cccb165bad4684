"""fgrad.numpy elementwise functions vs NumPy: values, dtypes (JAX promotion), broadcasting."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import fgrad
from fgrad import numpy as fnp

from np_helpers import ALL, NUMERIC, arrays, assert_matches, canonical, shapes

# name -> (input domain, tolerance scale); evaluated on float32 and on integer inputs
FLOAT_UNARY = {
    "exp": (-20, 20, 1), "log": (0.01, 100, 1), "log1p": (-0.9, 100, 1), "expm1": (-20, 20, 1),
    "log2": (0.01, 100, 1), "log10": (0.01, 100, 1), "exp2": (-20, 20, 1), "sqrt": (0, 100, 1),
    "cbrt": (-100, 100, 2), "sin": (-10, 10, 1), "cos": (-10, 10, 1), "tan": (-1.4, 1.4, 4),
    "tanh": (-10, 10, 1), "sinh": (-20, 20, 2), "cosh": (-20, 20, 2), "arcsin": (-1, 1, 2),
    "arccos": (-1, 1, 2), "arctan": (-100, 100, 2), "arcsinh": (-1e6, 1e6, 2),
    "arccosh": (1, 1e6, 2), "arctanh": (-0.99, 0.99, 4), "deg2rad": (-360, 360, 1),
    "rad2deg": (-7, 7, 1), "reciprocal": (0.1, 10, 1), "fabs": (-10, 10, 1), "sinc": (-5, 5, 1),
}
SAME_DTYPE_UNARY = ("negative", "positive", "abs", "absolute", "square", "sign", "floor", "ceil", "trunc",
                    "fix")
BOOL_UNARY = ("isnan", "isinf", "isfinite", "signbit", "logical_not")

ARITHMETIC = ("add", "subtract", "multiply", "maximum", "minimum", "fmax", "fmin", "equal", "not_equal",
              "less", "less_equal", "greater", "greater_equal", "logical_and", "logical_or", "logical_xor")
DIVISION = ("floor_divide", "remainder", "mod", "fmod", "true_divide", "divide")
FLOAT_BINARY = ("arctan2", "hypot", "logaddexp", "logaddexp2", "copysign")


def _np(name):
    return getattr(np, name)


def _quiet(fn, *args):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return fn(*args)


@pytest.mark.parametrize("name", sorted(FLOAT_UNARY))
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_float_unary_matches_numpy(name, data):
    lo, hi, scale = FLOAT_UNARY[name]
    x = data.draw(arrays(np.float32, data.draw(shapes), lo, hi))
    want = _quiet(_np(name), x)
    assert_matches(getattr(fnp, name)(fnp.asarray(x)), want, rtol=1e-5 * scale, atol=1e-5 * scale)


@pytest.mark.parametrize("name", ["exp", "sqrt", "sin", "log1p", "arctan", "tan", "rint"])
@pytest.mark.parametrize("dtype", [np.int32, np.uint8, np.bool_])
def test_float_unary_of_integers_gives_default_float(name, dtype):
    x = np.array([0, 1, 2, 3]).astype(dtype)
    got = getattr(fnp, name)(fnp.asarray(x))
    assert got.dtype == np.float32  # JAX's rule; NumPy would give float16 for uint8/bool
    np.testing.assert_allclose(np.asarray(got), _quiet(_np(name), x.astype(np.float64)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", SAME_DTYPE_UNARY + BOOL_UNARY)
@pytest.mark.parametrize("dtype", NUMERIC)
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_unary_keeps_numpy_dtype(name, dtype, data):
    x = data.draw(arrays(dtype, data.draw(shapes), -50, 50))
    want = _quiet(_np(name), x)
    assert_matches(getattr(fnp, name)(fnp.asarray(x)), want)


def test_special_float_values():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -2.5, 3.5], np.float32)
    X = fnp.asarray(x)
    for name in ("isnan", "isinf", "isfinite", "isposinf", "isneginf", "floor", "ceil", "trunc", "rint",
                 "sign", "abs", "exp", "tanh", "arctan", "sinh", "cosh", "arcsinh"):
        assert_matches(getattr(fnp, name)(X), _quiet(_np(name), x), rtol=1e-6)
    assert_matches(fnp.nan_to_num(X), np.nan_to_num(x))
    assert_matches(fnp.round(fnp.asarray(np.array([0.5, 1.5, 2.5, -0.5, 2.675], np.float32)), 0),
                   np.round(np.array([0.5, 1.5, 2.5, -0.5, 2.675], np.float32)))


@settings(max_examples=20, deadline=None)
@given(data=st.data(), decimals=st.integers(-2, 3))
def test_round_decimals(data, decimals):
    x = data.draw(arrays(np.float32, data.draw(shapes), -1000, 1000))
    assert_matches(fnp.round(fnp.asarray(x), decimals), np.round(x, decimals), rtol=1e-6, atol=1e-3)
    i = data.draw(arrays(np.int32, data.draw(shapes), -10000, 10000))
    assert_matches(fnp.around(fnp.asarray(i), decimals), np.round(i, decimals))


binary_shapes = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4)


@pytest.mark.parametrize("name", ARITHMETIC)
@settings(max_examples=12, deadline=None)
@given(data=st.data(), dtypes=st.tuples(st.sampled_from(ALL), st.sampled_from(ALL)))
def test_binary_matches_numpy_with_broadcasting_and_promotion(name, data, dtypes):
    if name == "subtract" and dtypes == (np.bool_, np.bool_):
        dtypes = (np.bool_, np.int32)
    (sa, sb), _ = data.draw(binary_shapes)
    a = data.draw(arrays(dtypes[0], sa, -20, 20))
    b = data.draw(arrays(dtypes[1], sb, -20, 20))
    want = _quiet(_np(name), a, b)
    assert_matches(getattr(fnp, name)(fnp.asarray(a), fnp.asarray(b)), want, rtol=1e-6)


@pytest.mark.parametrize("name", DIVISION)
@settings(max_examples=15, deadline=None)
@given(data=st.data(), dtype=st.sampled_from(NUMERIC), signs=st.booleans())
def test_division_family_follows_numpy_signs(name, data, dtype, signs):
    (sa, sb), _ = data.draw(binary_shapes)
    a = data.draw(arrays(dtype, sa, -50, 50))
    b = data.draw(arrays(dtype, sb, -9, 9))
    if signs and dtype != np.uint8:
        b = np.where(b == 0, 3, b).astype(dtype)  # also exercise the no-zero path
    want = _quiet(_np(name), a, b)
    if name == "floor_divide" and np.dtype(dtype).kind in "iu":
        want = np.where(b == 0, _jax_int_floor_divide_by_zero(np.broadcast_to(a, want.shape)), want).astype(want.dtype)
    assert_matches(getattr(fnp, name)(fnp.asarray(a), fnp.asarray(b)), want, rtol=1e-6, atol=1e-5)


def _jax_int_floor_divide_by_zero(a):
    """JAX's x // 0 for integers (NumPy's is 0): lax.div's -1 (all ones when unsigned), less 1
    where a != 0 if signed."""
    if a.dtype.kind == "u":
        return np.full_like(a, np.iinfo(a.dtype).max)
    return np.where(a == 0, -1, -2).astype(a.dtype)


def test_integer_division_by_zero_follows_jax():
    a = fnp.asarray(np.array([7, -7, 0], np.int32))
    assert (a // 0).tolist() == [-2, -2, -1]           # JAX 0.10.2
    assert (a % 0).tolist() == [0, 0, 0]
    assert fnp.fmod(a, 0).tolist() == [0, 0, 0]
    assert (fnp.asarray(np.array([7, 0], np.uint8)) // 0).tolist() == [255, 255]


def test_integer_floor_division_rounds_toward_minus_infinity():
    a = fnp.asarray(np.array([7, -7, 7, -7, 0, 5], np.int32))
    b = fnp.asarray(np.array([2, 2, -2, -2, 3, 0], np.int32))
    assert (a // b).tolist() == [3, -4, -4, 3, 0, -2]   # 5 // 0 is -2, as in JAX
    assert (a % b).tolist() == [1, 1, -1, -1, 0, 0]
    q, r = fnp.divmod(a, b)
    assert q.tolist() == [3, -4, -4, 3, 0, -2] and r.tolist() == [1, 1, -1, -1, 0, 0]


@pytest.mark.parametrize("name", FLOAT_BINARY)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_float_binary_matches_numpy(name, data):
    (sa, sb), _ = data.draw(binary_shapes)
    a = data.draw(arrays(np.float32, sa, -30, 30))
    b = data.draw(arrays(np.float32, sb, -30, 30))
    assert_matches(getattr(fnp, name)(fnp.asarray(a), fnp.asarray(b)), _quiet(_np(name), a, b),
                   rtol=1e-5, atol=1e-5)


def test_arctan2_quadrants_and_zeros():
    y = np.array([0, 0, 1, -1, 1, -1, 0, 3, -3, np.inf, -np.inf, np.inf], np.float32)
    x = np.array([1, -1, 0, 0, 1, -1, 0, -2, -2, np.inf, 1, -np.inf], np.float32)
    assert_matches(fnp.arctan2(fnp.asarray(y), fnp.asarray(x)), np.arctan2(y, x), rtol=1e-6)


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_power(data):
    (sa, sb), _ = data.draw(binary_shapes)
    base = data.draw(arrays(np.float32, sa, 0.1, 5))
    exponent = data.draw(arrays(np.float32, sb, -3, 3))
    assert_matches(fnp.power(fnp.asarray(base), fnp.asarray(exponent)), np.power(base, exponent), rtol=1e-5)
    ib = data.draw(arrays(np.int32, sa, -6, 6))
    ie = data.draw(arrays(np.int32, sb, 0, 9))
    assert_matches(fnp.power(fnp.asarray(ib), fnp.asarray(ie)), np.power(ib, ie))
    ue = data.draw(arrays(np.uint8, sb, 0, 7))
    assert_matches(fnp.asarray(ue.astype(np.uint8)) ** 2, ue ** 2)
    for n in (-2, 0, 1, 3):
        assert_matches(fnp.asarray(base) ** n, base.astype(np.float32) ** n, rtol=1e-5)


def test_power_edge_cases():
    assert (fnp.asarray(np.array([2, -1, 1, 3], np.int32)) ** fnp.asarray(np.array([-1, -3, -2, -1], np.int32))
            ).tolist() == [0, -1, 1, 0]
    with pytest.raises(ValueError, match="negative integer powers"):
        fnp.asarray(np.array([2], np.int32)) ** -1


@pytest.mark.parametrize("name", ["bitwise_and", "bitwise_or", "bitwise_xor", "left_shift", "right_shift"])
@settings(max_examples=15, deadline=None)
@given(data=st.data(), dtype=st.sampled_from((np.int32, np.uint8)))
def test_bitwise(name, data, dtype):
    (sa, sb), _ = data.draw(binary_shapes)
    a = data.draw(arrays(dtype, sa, -1000 if dtype == np.int32 else 0, 1000 if dtype == np.int32 else 255))
    b = data.draw(arrays(dtype, sb, 0, 7))
    assert_matches(getattr(fnp, name)(fnp.asarray(a), fnp.asarray(b)), _np(name)(a, b))
    assert_matches(fnp.invert(fnp.asarray(a)), np.invert(a))


# --- promotion with weak Python scalars (JAX's rules) ---------------------------------------

@pytest.mark.parametrize("array_dtype, scalar, op, expected", [
    (np.uint8, 1, "add", np.uint8), (np.uint8, 1.0, "add", np.float32), (np.float32, 2.0, "multiply", np.float32),
    (np.int32, 2, "true_divide", np.float32), (np.int32, 2.5, "multiply", np.float32),
    (np.bool_, 1, "add", np.int32), (np.bool_, True, "logical_and", np.bool_), (np.uint8, 3, "floor_divide", np.uint8),
    (np.float16, 2.0, "multiply", np.float16), (np.int32, 2, "power", np.int32), (np.uint8, 2, "maximum", np.uint8),
])
def test_weak_python_scalars(array_dtype, scalar, op, expected):
    x = fnp.asarray(np.array([1, 2, 3]).astype(array_dtype))
    assert getattr(fnp, op)(x, scalar).dtype == expected
    assert getattr(fnp, op)(scalar, x).dtype == expected if op not in ("power",) else True


@pytest.mark.parametrize("a, b, expected", [
    (np.int32, np.float32, np.float32), (np.uint8, np.int32, np.int32), (np.uint8, np.bool_, np.uint8),
    (np.float16, np.float32, np.float32), (np.uint8, np.float16, np.float16), (np.uint32, np.int32, np.int32),
    (np.int32, np.float16, np.float16),
])
def test_array_promotion_table(a, b, expected):
    x = fnp.asarray(np.ones(2, a))
    y = fnp.asarray(np.ones(2, b))
    assert (x + y).dtype == expected and (y + x).dtype == expected
    assert fnp.result_type(a, b) == expected and fnp.promote_types(a, b) == expected


def test_scalar_only_operations_stay_weak():
    out = fnp.add(1, 2.5)
    assert out.dtype == np.float32 and out.weak_type
    assert (fnp.asarray(np.ones(2, np.float16)) * out).dtype == np.float16


def test_x64_mode_keeps_64_bit():
    with fgrad.config.override(enable_x64=True):
        x = fnp.asarray(np.arange(3.0))
        assert x.dtype == np.float64 and (x * 2).dtype == np.float64
        assert (fnp.asarray(np.arange(3)) / 2).dtype == np.float64
        assert fnp.sum(fnp.asarray(np.ones(2, np.int32))).dtype == np.int64


def test_python_int_overflow_names_the_dtype():
    with pytest.raises(OverflowError, match="uint8"):
        fnp.asarray(np.array([1], np.uint8)) + 300


# --- where, clip, logic ----------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(data=st.data(), dtypes=st.tuples(st.sampled_from(ALL), st.sampled_from(ALL)))
def test_where_broadcasts_three_ways(data, dtypes):
    (sc, sa, sb), _ = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=3))
    cond = data.draw(arrays(np.bool_, sc))
    a, b = data.draw(arrays(dtypes[0], sa)), data.draw(arrays(dtypes[1], sb))
    assert_matches(fnp.where(fnp.asarray(cond), fnp.asarray(a), fnp.asarray(b)), np.where(cond, a, b))
    assert_matches(fnp.where(fnp.asarray(a), 1.0, 0.0), np.where(a, np.float32(1), np.float32(0)))


@settings(max_examples=20, deadline=None)
@given(data=st.data(), dtype=st.sampled_from(NUMERIC))
def test_clip(data, dtype):
    x = data.draw(arrays(dtype, data.draw(shapes), 0, 30))
    assert_matches(fnp.clip(fnp.asarray(x), 3, 20), np.clip(x, 3, 20))
    assert_matches(fnp.clip(fnp.asarray(x), max=7), np.clip(x, None, 7))
    assert_matches(fnp.asarray(x).clip(min=2), np.clip(x, 2, None))


# --- issue 17: signed zeros and the sign of NaN ------------------------------------------------------

@pytest.mark.parametrize("name", ["sinh", "arcsinh", "asinh", "tanh", "arctanh", "sin", "arcsin", "tan", "arctan"])
@pytest.mark.parametrize("x64", [False, True])
def test_odd_functions_keep_minus_zero(name, x64):
    with fgrad.config.override(enable_x64=x64):
        f = getattr(fnp, name)
        x = fnp.asarray([-0.0, 0.0])
        for out in (f(x), fgrad.jit(f)(x), f(-0.0), fgrad.vmap(f)(x)):
            np.testing.assert_array_equal(np.signbit(np.asarray(out)), np.signbit(np.asarray(x)[:np.size(out)]))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_signbit_reads_the_sign_bit_of_nan(dtype):
    x = np.array([-np.nan, np.nan, -0.0, 0.0, -np.inf, np.inf, -1.5, 2.0], dtype)
    with fgrad.config.override(enable_x64=True):
        for signbit in (fnp.signbit, fgrad.jit(fnp.signbit)):
            assert_matches(signbit(fnp.asarray(x)), np.signbit(x))
        assert_matches(fnp.copysign(fnp.ones(8, dtype), fnp.asarray(x)), np.copysign(np.ones(8, dtype), x))
    assert bool(fnp.signbit(-fnp.nan)) and not bool(fnp.signbit(fnp.nan))
