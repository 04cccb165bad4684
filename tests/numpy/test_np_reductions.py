"""fgrad.numpy reductions vs NumPy: every axis form, keepdims, dtypes, empty and size-1 axes."""
import warnings

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fgrad
from fgrad import numpy as fnp

from np_helpers import ALL, NUMERIC, arrays, assert_matches, shapes


@st.composite
def array_and_axis(draw, dtypes=NUMERIC, lo=-10, hi=10, nonempty=False):
    dtype = draw(st.sampled_from(dtypes))
    shape = draw(shapes)
    if nonempty:
        shape = tuple(max(s, 1) for s in shape)
    x = draw(arrays(dtype, shape, lo, hi))
    nd = len(shape)
    choices = [st.none()]
    if nd:
        choices.append(st.integers(-nd, nd - 1))
        choices.append(st.lists(st.integers(0, nd - 1), unique=True, max_size=nd).map(
            lambda axes: tuple(a - nd if i % 2 else a for i, a in enumerate(axes))))
    axis = draw(st.one_of(*choices))
    return x, axis


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@pytest.mark.parametrize("name", ["sum", "prod", "mean", "var", "std", "any", "all", "count_nonzero"])
@settings(max_examples=20, deadline=None)
@given(case=array_and_axis(dtypes=ALL, lo=-3, hi=3), keepdims=st.booleans())
def test_reductions_match_numpy(name, case, keepdims):
    x, axis = case
    if name in ("var", "std", "mean") and x.dtype == np.bool_:
        x = x.astype(np.int32)
    got = getattr(fnp, name)(fnp.asarray(x), axis=axis, keepdims=keepdims)
    want = _quiet(getattr(np, name), x, axis=axis, keepdims=keepdims)
    assert_matches(got, want, rtol=2e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["max", "min", "amax", "amin", "ptp"])
@settings(max_examples=20, deadline=None)
@given(case=array_and_axis(dtypes=NUMERIC, nonempty=True), keepdims=st.booleans())
def test_extrema_match_numpy(name, case, keepdims):
    x, axis = case
    want = getattr(np, name)(x, axis=axis, keepdims=keepdims)
    assert_matches(getattr(fnp, name)(fnp.asarray(x), axis=axis, keepdims=keepdims), want)


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@settings(max_examples=20, deadline=None)
@given(case=array_and_axis(dtypes=NUMERIC, lo=-3, hi=3, nonempty=True), keepdims=st.booleans())
def test_arg_extrema_match_numpy(name, case, keepdims):
    x, axis = case
    if isinstance(axis, tuple):
        axis = axis[0] if axis else None
    want = getattr(np, name)(x, axis=axis, keepdims=keepdims)
    assert_matches(getattr(fnp, name)(fnp.asarray(x), axis=axis, keepdims=keepdims), want)


def test_argmax_nan_and_ties_follow_numpy():
    x = np.array([[1, 3, 3], [np.nan, 2, np.nan]], np.float32)
    assert_matches(fnp.argmax(fnp.asarray(x), axis=1), np.argmax(x, axis=1))
    assert_matches(fnp.argmin(fnp.asarray(x), axis=1), np.argmin(x, axis=1))
    assert_matches(fnp.max(fnp.asarray(x), axis=1), np.max(x, axis=1))


@settings(max_examples=20, deadline=None)
@given(case=array_and_axis(dtypes=ALL, lo=-5, hi=5))
def test_cumsum(case):
    x, axis = case
    if isinstance(axis, tuple):
        axis = axis[0] if axis else None
    # as JAX: integers keep their dtype (NumPy widens them), bools count in the default int
    dtype = np.int32 if x.dtype == np.bool_ else fnp.asarray(x).dtype
    assert_matches(fnp.cumsum(fnp.asarray(x), axis=axis), np.cumsum(x, axis=axis, dtype=dtype), rtol=1e-5, atol=1e-5)


def test_accumulation_dtypes_follow_numpy_narrowed():
    u8 = fnp.asarray(np.array([200, 100], np.uint8))
    assert fnp.sum(u8).dtype == np.uint32 and int(fnp.sum(u8)) == 300
    assert fnp.sum(fnp.asarray([True, True])).dtype == np.int32
    assert fnp.mean(fnp.asarray([1, 2])).dtype == np.float32
    assert fnp.cumsum(u8).tolist() == [200, 44] and fnp.cumsum(u8).dtype == np.uint8   # JAX's (wraps)
    assert fnp.cumulative_sum(u8).tolist() == [200, 300]          # the array API's: sum's dtype
    assert fnp.sum(u8, dtype=fnp.uint8).tolist() == 44
    assert fnp.max(u8).dtype == np.uint8 and fnp.argmax(u8).dtype == np.int32
    assert fnp.mean(fnp.asarray(np.ones(3, np.float16))).dtype == np.float16


def test_where_initial_and_ddof():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    mask = x % 3 != 0
    X = fnp.asarray(x)
    assert_matches(fnp.sum(X, axis=1, where=mask), np.sum(x, axis=1, where=mask))
    assert_matches(fnp.sum(X, initial=5.0), np.sum(x, initial=5.0))
    assert_matches(fnp.max(X, axis=0, where=mask, initial=-1.0), np.max(x, axis=0, where=mask, initial=-1.0))
    assert_matches(fnp.mean(X, axis=0, where=mask), np.mean(x, axis=0, where=mask))
    assert_matches(fnp.var(X, axis=1, ddof=1), np.var(x, axis=1, ddof=1))
    assert_matches(fnp.std(X, ddof=2), np.std(x, ddof=2))
    assert_matches(fnp.prod(X[:, :2] + 1, axis=0), np.prod(x[:, :2] + 1, axis=0))
    assert_matches(fnp.any(X > 10, where=mask), np.any(x > 10, where=mask))


def test_var_and_std_are_nan_where_ddof_reaches_the_count():
    """JAX 0.10.2: var/std are NaN where N - ddof <= 0 (fgrad gave inf, and a negative variance
    through where=); the gradient there is 0 / (N - ddof), NaN at ddof == N, as JAX's."""
    x = fnp.arange(6.0).reshape(2, 3)
    for f in (lambda v: fnp.var(v, axis=1, ddof=3), fgrad.jit(lambda v: fnp.std(v, axis=1, ddof=3)),
              lambda v: fnp.var(v, ddof=9)):
        assert np.isnan(np.asarray(f(x))).all()
    mask = np.array([[True, True, False], [True, True, True]])
    assert_matches(fnp.var(x, axis=1, ddof=2, where=mask), [np.nan, 2.0])
    assert np.isnan(np.asarray(fnp.var(x, axis=1, ddof=3, where=mask))).all()
    assert np.isnan(np.asarray(fgrad.grad(lambda v: fnp.var(v, ddof=3))(fnp.arange(3.0)))).all()
    assert np.asarray(fgrad.grad(lambda v: fnp.var(v, ddof=4))(fnp.arange(3.0))).tolist() == [0.0, 0.0, 0.0]
    assert_matches(fnp.var(x, axis=1, ddof=1), [1.0, 1.0])


def test_average():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    w = np.array([1, 2, 3, 4], np.float32)
    assert_matches(fnp.average(fnp.asarray(x), axis=1, weights=fnp.asarray(w)), np.average(x, axis=1, weights=w))
    assert_matches(fnp.average(fnp.asarray(x)), np.average(x))


def test_reduction_errors():
    with pytest.raises(ValueError, match="zero-size array"):
        fnp.max(fnp.zeros((0, 3)), axis=0)
    assert fnp.max(fnp.zeros((0, 3)), axis=1).shape == (0,)
    with pytest.raises(ValueError, match="empty"):
        fnp.argmax(fnp.zeros((0,)))
    with pytest.raises(ValueError, match="out of bounds"):
        fnp.sum(fnp.ones((2, 3)), axis=2)
    with pytest.raises(ValueError, match="repeated axis"):
        fnp.sum(fnp.ones((2, 3)), axis=(0, -2))
    with pytest.raises(TypeError, match="axis must be an integer"):
        fnp.sum(fnp.ones((2, 3)), axis=1.5)
    with pytest.raises(TypeError, match="out="):
        fnp.sum(fnp.ones(2), out=np.zeros(()))
    with pytest.raises(ValueError, match="initial"):
        fnp.max(fnp.ones(2), where=fnp.asarray([True, False]))


def test_methods_forward_to_reductions():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    X = fnp.asarray(x)
    assert_matches(X.sum(axis=0), x.sum(axis=0))
    assert_matches(X.mean(1, keepdims=True), x.mean(1, keepdims=True))
    assert_matches(X.max(), x.max())
    assert_matches(X.min(axis=1), x.min(axis=1))
    assert_matches(X.argmax(axis=1), x.argmax(axis=1))
    assert_matches(X.argmin(), x.argmin())
    assert_matches(X.prod(axis=1), x.prod(axis=1))
    assert_matches(X.var(), x.var())
    assert_matches(X.std(axis=0, ddof=1), x.std(axis=0, ddof=1))
    assert_matches(X.cumsum(axis=1), x.cumsum(axis=1))
    assert_matches((X > 2).any(axis=0), (x > 2).any(axis=0))
    assert_matches((X > 2).all(), (x > 2).all())


@pytest.mark.parametrize("op, reference", [("sum", np.sum), ("prod", np.prod), ("cumulative_sum", np.cumsum)])
def test_small_unsigned_ints_accumulate_in_uint64_with_x64(op, reference):
    # issue 17: with x64 these raised "does not support dtype uint64"; NumPy and JAX give uint64
    # (jnp.cumsum keeps uint8, see test_accumulation_dtypes_follow_numpy_narrowed)
    x = np.array([200, 100, 3, 255], np.uint8)
    with fgrad.config.override(enable_x64=True):
        f = getattr(fnp, op)
        for got in (f(fnp.asarray(x)), fgrad.jit(f)(fnp.asarray(x))):
            assert_matches(got, reference(x))
            assert got.dtype == np.uint64 and got.dtype == fnp.uint64
    assert getattr(fnp, op)(fnp.asarray(x)).dtype == np.uint32   # without x64: uint32, as JAX


# --- promote_integers (JAX's keyword of sum and prod) -------------------------------------------

#: JAX 0.10.2's result dtypes (x64 off): promote_integers=True widens small ints to int32 and
#: unsigned ones to uint32; False keeps them; bools give int32 either way.
PROMOTED_DTYPES = [
    # input,      promote_integers=True, False
    (np.bool_, np.int32, np.int32),
    (np.int8, np.int32, np.int8),
    (np.int16, np.int32, np.int16),
    (np.int32, np.int32, np.int32),
    (np.uint8, np.uint32, np.uint8),
    (np.uint16, np.uint32, np.uint16),
    (np.uint32, np.uint32, np.uint32),
    (np.float16, np.float16, np.float16),
    (np.float32, np.float32, np.float32),
    (np.complex64, np.complex64, np.complex64),
]


@pytest.mark.parametrize("name", ["sum", "prod"])
@pytest.mark.parametrize("dtype, promoted, kept", PROMOTED_DTYPES)
def test_promote_integers_result_dtype_is_jaxs(name, dtype, promoted, kept):
    x = fnp.ones((2, 3), dtype)
    assert getattr(fnp, name)(x).dtype == promoted
    assert getattr(fnp, name)(x, axis=1, promote_integers=True).dtype == promoted
    assert getattr(fnp, name)(x, axis=1, promote_integers=False).dtype == kept
    assert getattr(x, name)(promote_integers=False).dtype == kept     # the Array method too
    assert getattr(fnp, name)(x, dtype=np.complex64, promote_integers=False).dtype == np.complex64   # dtype wins


def test_promote_integers_false_wraps_as_jax_does():
    # JAX 0.10.2: sum(int8[100, 100], promote_integers=False) == -56, prod == 16;
    # sum(uint8[200, 200], initial=3, promote_integers=False) == 147
    assert_matches(fnp.sum(fnp.array([100, 100], np.int8), promote_integers=False), np.int8(-56), dtype=np.int8)
    assert_matches(fnp.prod(fnp.array([100, 100], np.int8), promote_integers=False), np.int8(16), dtype=np.int8)
    assert_matches(fnp.sum(fnp.array([200, 200], np.uint8), initial=3, promote_integers=False), np.uint8(147),
                   dtype=np.uint8)
    assert_matches(fnp.sum(fnp.array([100, 100], np.int8)), np.int32(200))
    assert_matches(fnp.sum(fnp.array([True, True]), promote_integers=False), np.int32(2))


def test_promote_integers_with_x64_widens_to_64_bits():
    with fgrad.config.override(enable_x64=True):
        x = fnp.asarray(np.array([2**31 - 1, 1], np.int32))
        assert_matches(fnp.sum(x), np.int64(2**31), dtype=np.int64)
        assert_matches(fnp.sum(x, promote_integers=False), np.int32(-2**31), dtype=np.int32)
        assert fnp.sum(fnp.ones(2, np.uint32)).dtype == np.uint64
        assert fnp.prod(fnp.ones(2, np.uint8), promote_integers=False).dtype == np.uint8


@pytest.mark.parametrize("name", ["sum", "prod"])
@settings(max_examples=20, deadline=None)
@given(case=array_and_axis(dtypes=(np.int8, np.uint8, np.int16, np.bool_), lo=-100, hi=100),
       keepdims=st.booleans())
def test_promote_integers_false_is_numpy_in_the_input_dtype(name, case, keepdims):
    x, axis = case
    kept = np.int32 if x.dtype == np.bool_ else x.dtype
    want = _quiet(getattr(np, name), x, axis=axis, keepdims=keepdims, dtype=kept)
    f = fgrad.jit(lambda v: getattr(fnp, name)(v, axis=axis, keepdims=keepdims, promote_integers=False))
    assert_matches(f(fnp.asarray(x)), want, dtype=kept)
    promoted = getattr(fnp, name)(fnp.asarray(x), axis=axis, keepdims=keepdims)
    assert_matches(promoted, _quiet(getattr(np, name), x, axis=axis, keepdims=keepdims).astype(promoted.dtype),
                   dtype=promoted.dtype)


def test_promote_integers_under_vmap():
    x = fnp.asarray(np.array([[100, 100, 1], [-128, -1, 0]], np.int8))
    got = fgrad.vmap(lambda r: fnp.sum(r, promote_integers=False))(x)
    assert_matches(got, np.array([-55, 127], np.int8), dtype=np.int8)


def test_half_precision_mean_var_std_accumulate_in_float32():
    # JAX sums float16/bfloat16 in float32 for mean, var and std and rounds the result back
    # (JAX 0.10.2: mean(full(5000, 30, f16)) == 30, var == 0); fgrad summed in float16: inf
    x = np.full(5000, 30, np.float16)
    for f in (fnp.mean, fnp.var, fnp.std, fnp.average, fgrad.jit(fnp.mean), fgrad.jit(fnp.var)):
        out = f(x)
        assert out.dtype == np.float16 and np.isfinite(np.asarray(out))
    assert float(fnp.mean(x)) == 30.0 and float(fnp.var(x)) == 0.0
    a = (np.random.default_rng(0).standard_normal((3, 700)) * 50 + 300).astype(np.float16)
    mask = a > 300
    for dtype in (np.float16, ml_dtypes.bfloat16):
        h = a.astype(dtype)
        wide = h.astype(np.float32)
        assert_matches(fnp.mean(h, axis=1), wide.mean(axis=1).astype(dtype), rtol=0, atol=0)
        assert_matches(fnp.mean(h, axis=1, where=mask), np.mean(wide, axis=1, where=mask).astype(dtype), rtol=0, atol=0)
        assert_matches(fnp.var(h, axis=1), wide.var(axis=1).astype(dtype), rtol=1e-2, atol=0)
        assert_matches(fnp.std(h, axis=1, where=mask), np.std(wide, axis=1, where=mask).astype(dtype), rtol=1e-2, atol=0)
        assert fnp.var(h, axis=1).dtype == dtype


def test_bool_dtype_sums_and_products_are_or_and_and():
    # JAX 0.10.2: with dtype=bool, sum/cumsum are a (running) "or", prod/cumprod an "and"
    x = fnp.array([[True, False], [False, False]])
    np.testing.assert_array_equal(np.asarray(fnp.sum(x, axis=0, dtype=bool)), [True, False])
    np.testing.assert_array_equal(np.asarray(fnp.prod(x, axis=1, dtype=bool)), [False, False])
    assert not bool(fnp.sum(x, dtype=bool, where=fnp.array([[False, True], [True, True]])))
    assert bool(fnp.sum(x, dtype=bool, initial=True))
    assert bool(fnp.sum(fnp.array([1, 2, 0]), dtype=bool))
    np.testing.assert_array_equal(np.asarray(fgrad.jit(lambda v: fnp.cumsum(v, axis=1, dtype=bool))(x)),
                                  [[True, True], [False, False]])
    v = fnp.array([True, False, True])
    np.testing.assert_array_equal(np.asarray(fnp.cumsum(v, dtype=bool)), [True, True, True])
    np.testing.assert_array_equal(np.asarray(fnp.cumprod(v, dtype=bool)), [True, False, False])
    assert fnp.cumprod(v, dtype=bool).dtype == np.bool_


def test_nanmean_with_an_integer_dtype_and_x64_index_outputs():
    # JAX 0.10.2: nanmean(..., dtype=int32) is the mean converted to int32; unique's indices and
    # bincount's counts are the default int (int64 with x64)
    assert fnp.nanmean(fnp.array([1.0, 2, np.nan, 4]), dtype=fnp.int32).dtype == np.int32
    assert int(fnp.nanmean(fnp.array([1.0, 2, np.nan, 4]), dtype=fnp.int32)) == 2
    with fgrad.config.override(enable_x64=True):
        _, index, inverse, counts = fnp.unique(fnp.array([3, 1, 3]), return_index=True, return_inverse=True,
                                               return_counts=True)
        assert index.dtype == inverse.dtype == counts.dtype == np.int64
        np.testing.assert_array_equal(np.asarray(counts), [1, 2])
        assert fnp.bincount(fnp.array([0, 2, 2])).dtype == np.int64
    assert fnp.bincount(fnp.array([0, 2, 2])).dtype == np.int32
