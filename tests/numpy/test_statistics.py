"""fgrad.numpy statistics and comparisons (fgrad/numpy/_statistics.py) vs NumPy, with JAX's
answers (recorded from JAX 0.10.2) where JAX and NumPy differ; jit (native path asserted) vs
eager, grad vs finite differences, vmap vs a loop."""
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st

import fgrad
from fgrad import numpy as fnp
from fgrad.compile import pipeline

from np_helpers import arrays, assert_matches, nonempty_shapes
from tests.util import check_grads, check_jit_matches_eager, check_vmap, natively

pytestmark = pytest.mark.filterwarnings("error::fgrad.ReferencePathWarning")

rng = np.random.default_rng(0)
A = rng.standard_normal((3, 4, 5)).astype(np.float32)
AN = A.copy()
AN[0, 1, :] = np.nan
AN[1, 2, 3] = np.nan
XP = np.array([0.0, 1.0, 2.5, 4.0], np.float32)
FP = np.array([1.0, 3.0, -1.0, 2.0], np.float32)
EDGES = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 1e-9, 1 + 1e-6], np.float32)


def numpy_quiet(f, *args, **kwargs):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return f(*args, **kwargs)




# --- comparisons ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("equal_nan", [False, True])
def test_isclose_edges_match_numpy(equal_nan):
    a, b = np.meshgrid(EDGES, EDGES)
    assert_matches(fnp.isclose(a, b, equal_nan=equal_nan), np.isclose(a, b, equal_nan=equal_nan))
    assert_matches(fnp.isclose(a, b, rtol=0.5, atol=0.1), np.isclose(a, b, rtol=0.5, atol=0.1))
    assert bool(fnp.allclose(a, a, equal_nan=True)) and not bool(fnp.allclose(a, a))


@given(arrays(np.float32, (6,), -5, 5), arrays(np.float32, (6,), -5, 5))
def test_isclose_matches_numpy(x, y):
    y = np.where(np.arange(6) % 2 == 0, x + np.float32(1e-6) * x, y).astype(np.float32)
    assert_matches(fnp.isclose(x, y), np.isclose(x, y))
    assert bool(fnp.allclose(x, y)) == np.allclose(x, y)


def test_isclose_integers_are_compared_as_floats_as_in_jax():
    # JAX: isclose(1000000000, 1000000001) is True (promoted to float), and ints give bools
    assert bool(fnp.isclose(np.int32(1000000000), np.int32(1000000001)))
    assert_matches(fnp.isclose(np.array([1, 2], np.int32), np.array([1, 3], np.int32)), [True, False])


def test_array_equal_and_equiv():
    assert bool(fnp.array_equal(A, A)) and not bool(fnp.array_equal(A, A[:2]))
    assert not bool(fnp.array_equal(AN, AN)) and bool(fnp.array_equal(AN, AN, equal_nan=True))
    assert bool(fnp.array_equiv(np.ones((2, 3)), 1)) and bool(fnp.array_equiv(A[0], A[0][None]))
    assert not bool(fnp.array_equiv(A[0], A[0, 0])) and not bool(fnp.array_equiv(A, A[..., :2]))


# --- cumulative products, differences, integrals ---------------------------------------------------------

@given(st.sampled_from([np.float32, np.int32, np.uint8, np.bool_]), nonempty_shapes, st.data())
def test_cumprod_matches_numpy(dtype, shape, data):
    x = data.draw(arrays(dtype, shape, -2, 2))
    axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    # as JAX: bools accumulate in int32, other dtypes in themselves (wrapping); NumPy widens
    target = np.int32 if dtype == np.bool_ else dtype
    with np.errstate(over="ignore"):
        want = np.cumprod(x.astype(target), axis=axis, dtype=target)
    assert_matches(fnp.cumprod(x, axis=axis), want, rtol=1e-5)


def test_cumulative_prod_array_api():
    assert_matches(fnp.cumulative_prod(A, axis=1, include_initial=True),
                   np.cumulative_prod(A, axis=1, include_initial=True))
    assert_matches(fnp.cumulative_prod(np.arange(1, 6), include_initial=True),
                   np.cumulative_prod(np.arange(1, 6), include_initial=True).astype(np.int32))
    assert fnp.cumprod(np.array([3, 200, 2], np.uint8)).dtype == np.uint8      # JAX: [3, 88, 176]
    assert fnp.nancumsum(np.array([True, True])).dtype == np.int32
    with pytest.raises(ValueError, match="axis is required"):
        fnp.cumulative_prod(A)


@pytest.mark.parametrize("jitted", [False, True])
def test_cumprod_gradient_through_infinities_is_jaxs(jitted):
    # d cumprod(a)[-1] / d a = products of the other entries: inf, not inf * 0 = nan from the
    # zero cotangents of the earlier prefixes (JAX 0.10.2: [inf, inf, inf])
    grad = fgrad.grad(lambda a: fnp.cumprod(a)[-1])
    grad = fgrad.jit(grad) if jitted else grad
    np.testing.assert_array_equal(np.asarray(grad(np.array([3.0, np.inf, np.inf], np.float32))), [np.inf] * 3)
    x = np.random.default_rng(0).standard_normal((3, 5))
    check_grads(lambda x: fnp.cumprod(x, axis=1), (x,), order=2)


@given(st.sampled_from([np.float32, np.int32, np.bool_]), nonempty_shapes, st.integers(0, 3), st.data())
def test_diff_matches_numpy(dtype, shape, n, data):
    x = data.draw(arrays(dtype, shape))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    assert_matches(fnp.diff(x, n=n, axis=axis), np.diff(x, n=n, axis=axis))


def test_diff_prepend_append_and_ediff1d():
    got = fnp.diff(A, n=2, axis=1, prepend=0.5, append=A[:, :1])
    assert_matches(got, np.diff(A, n=2, axis=1, prepend=np.float32(0.5), append=A[:, :1]))
    assert_matches(fnp.ediff1d(A[0], to_begin=[1, 2], to_end=3), np.ediff1d(A[0], to_begin=[1, 2], to_end=3))
    assert_matches(fnp.ediff1d(np.array([1, 2, 4]), to_begin=np.array([0.5])), np.array([0, 1, 2], np.int32))
    assert fnp.diff(np.array([1, 2]), n=3).shape == (0,)
    with pytest.raises(ValueError, match="non-negative"):
        fnp.diff(A, n=-1)


@pytest.mark.parametrize("edge_order", [1, 2])
def test_gradient_matches_numpy(edge_order):
    coords = np.cumsum(rng.uniform(0.5, 1.5, 4))
    assert_matches(fnp.gradient(A, edge_order=edge_order), np.gradient(A, edge_order=edge_order), rtol=1e-4)
    assert_matches(fnp.gradient(A, 1.0, coords, 2.0, edge_order=edge_order),
                   np.gradient(A, 1.0, coords, 2.0, edge_order=edge_order), rtol=1e-4, atol=1e-5)
    assert_matches(fnp.gradient(A, coords, axis=-2, edge_order=edge_order),
                   np.gradient(A, coords, axis=-2, edge_order=edge_order), rtol=1e-4, atol=1e-5)
    assert_matches(fnp.gradient(A, 0.5, axis=(2, 0), edge_order=edge_order),
                   np.gradient(A, 0.5, axis=(2, 0), edge_order=edge_order), rtol=1e-4)
    assert_matches(fnp.gradient(np.arange(5) ** 2), np.gradient(np.arange(5) ** 2).astype(np.float32))
    with pytest.raises(ValueError, match="at least edge_order"):
        fnp.gradient(np.ones(2), edge_order=2)


@given(nonempty_shapes, st.data())
def test_trapezoid_matches_numpy(shape, data):
    y = data.draw(arrays(np.float32, shape))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = np.cumsum(data.draw(arrays(np.float32, (shape[axis],), 0, 2)))
    assert_matches(fnp.trapezoid(y, dx=0.5, axis=axis), np.trapezoid(y, dx=0.5, axis=axis), rtol=1e-4, atol=1e-4)
    assert_matches(fnp.trapezoid(y, x, axis=axis), np.trapezoid(y, x, axis=axis).astype(np.float32),
                   rtol=1e-4, atol=1e-4)


# --- interp, convolve ------------------------------------------------------------------------------------

@given(arrays(np.float32, (7,), 0, 10), arrays(np.float32, (5,), -10, 10), arrays(np.float32, (9,), -2, 12))
def test_interp_matches_numpy(steps, fp, x):
    xp = np.cumsum(steps[:5]).astype(np.float32) + np.arange(5, dtype=np.float32) * 1e-2
    assert_matches(fnp.interp(x, xp, fp), np.interp(x, xp, fp).astype(np.float32), rtol=1e-4, atol=1e-4)
    assert_matches(fnp.interp(x, xp, fp, left=-99.0, right=99.0),
                   np.interp(x, xp, fp, left=-99, right=99).astype(np.float32), rtol=1e-4, atol=1e-4)
    assert_matches(fnp.interp(x, xp, fp, period=7.0),
                   np.interp(x, xp, fp, period=7.0).astype(np.float32), rtol=1e-4, atol=1e-3)


def test_interp_narrow_segments_extrapolate_and_dtype_follow_jax():
    """JAX 0.10.2's values: a segment narrower than 10 eps is still interpolated (only one no
    wider than spacing(eps) is flat; fgrad gave 1.0 at x = 0 and 5e-8), "extrapolate" extends the
    end segments, and fp's dtype is promoted apart from x's (float16 x, int fp: float32)."""
    xp, fp = np.array([0.0, 1e-7, 1.0], np.float32), np.array([0.0, 1.0, 2.0], np.float32)
    x = np.array([-1, 0, 5e-8, 1e-7, 0.5, 1.0, 3], np.float32)
    for f in (fnp.interp, fgrad.jit(fnp.interp)):
        assert_matches(f(x, xp, fp), [0.0, 0.0, 0.5, 1.0, 1.5, 2.0, 2.0], rtol=1e-6)
    assert_matches(fnp.interp(x, xp, fp, period=1.5), [1.5, 0.0, 0.5, 1.0, 1.5, 2.0, 0.0], rtol=1e-5, atol=1e-6)
    assert_matches(fnp.interp(x, xp, fp, left="extrapolate", right="extrapolate"),
                   [-1e7, 0.0, 0.5, 1.0, 1.5, 2.0, 4.0000005], rtol=1e-6)
    grad = fgrad.grad(lambda v: fnp.sum(fnp.interp(v, xp, fp)))(x)
    assert_matches(grad, [0.0, 1e7, 1e7, 1.0000001, 1.0000001, 1.0000001, 0.0], rtol=1e-5)
    out = fnp.interp(x.astype(np.float16), np.array([0, 5]), np.array([0, 10]))
    assert out.dtype == np.float32
    with pytest.raises(ValueError, match="extrapolate"):
        fnp.interp(x, xp, fp, left="clamp")


def test_interp_corners():
    assert_matches(fnp.interp(np.array([1, 2]), np.array([0, 3]), np.array([0, 3])), [1.0, 2.0], dtype=np.float32)
    assert np.isnan(np.asarray(fnp.interp(np.nan, XP, FP)))
    assert_matches(fnp.interp(np.array([-1.0, 0.0, 9.0]), np.array([2.0]), np.array([5.0])), [5.0, 5.0, 5.0])
    with pytest.raises(ValueError, match="same length"):
        fnp.interp(1.0, XP, FP[:2])


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("lengths", [(7, 3), (7, 4), (3, 7), (4, 4), (1, 5)])
def test_convolve_correlate_match_numpy(mode, lengths):
    a, v = rng.standard_normal(lengths[0]), rng.standard_normal(lengths[1])
    a32, v32 = a.astype(np.float32), v.astype(np.float32)
    assert_matches(fnp.convolve(a32, v32, mode), np.convolve(a, v, mode).astype(np.float32), rtol=1e-4, atol=1e-5)
    assert_matches(fnp.correlate(a32, v32, mode), np.correlate(a, v, mode).astype(np.float32), rtol=1e-4, atol=1e-5)


def test_convolve_of_integers_is_float_and_errors():
    assert_matches(fnp.convolve(np.array([1, 2]), np.array([1, 2, 3])), np.array([1, 4, 7, 6], np.float32))
    with pytest.raises(ValueError, match="empty"):
        fnp.convolve(np.ones(0), np.ones(2))
    with pytest.raises(ValueError, match="mode"):
        fnp.convolve(np.ones(3), np.ones(2), "wide")
    with pytest.raises(ValueError, match="1-d"):
        fnp.correlate(np.ones((2, 2)), np.ones(2))


# --- quantiles ------------------------------------------------------------------------------------------

def jax_quantile(x, q, axis, method):
    """JAX's rule (ties of 'nearest' go to the lower value; NumPy rounds the index to even)."""
    x = np.asarray(x, np.float64)
    if method != "nearest":
        return np.quantile(x, q, axis=axis, method=method)
    moved = np.moveaxis(x, axis if axis is not None else 0, -1) if axis is not None else x.reshape(-1)
    s = np.sort(moved, axis=-1)
    pos = np.asarray(q)[..., None] * (s.shape[-1] - 1)
    low, high = np.floor(pos).astype(int), np.ceil(pos).astype(int)
    pick = np.where(pos - low <= 0.5, low, high)
    out = np.take(s, pick.reshape(-1), axis=-1)
    return np.moveaxis(out, -1, 0).reshape(np.shape(q) + s.shape[:-1])


@given(nonempty_shapes, st.sampled_from(["linear", "lower", "higher", "midpoint", "nearest"]), st.data())
def test_quantile_matches_numpy(shape, method, data):
    x = data.draw(arrays(np.float32, shape))
    axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    q = data.draw(st.one_of(st.floats(0, 1, width=32), st.lists(st.floats(0, 1, width=32), min_size=1, max_size=3)))
    want = jax_quantile(x, q, axis, method)
    assert_matches(fnp.quantile(x, q, axis=axis, method=method), want.astype(np.float32), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, 1, -1, (0, 2), (2, 0, 1)])
def test_quantile_axes_keepdims_and_relatives(axis, keepdims):
    q = np.array([0.1, 0.5, 0.93])
    assert_matches(fnp.quantile(A, q, axis=axis, keepdims=keepdims),
                   np.quantile(A, q, axis=axis, keepdims=keepdims).astype(np.float32), rtol=1e-5)
    assert_matches(fnp.percentile(A, 30.0, axis=axis, keepdims=keepdims, method="higher"),
                   np.percentile(A, 30.0, axis=axis, keepdims=keepdims, method="higher"))
    assert_matches(fnp.median(A, axis=axis, keepdims=keepdims), np.median(A, axis=axis, keepdims=keepdims))
    assert_matches(fnp.median(AN, axis=axis, keepdims=keepdims), np.median(AN, axis=axis, keepdims=keepdims))
    assert_matches(fnp.nanmedian(AN, axis=axis, keepdims=keepdims),
                   numpy_quiet(np.nanmedian, AN, axis=axis, keepdims=keepdims))
    assert_matches(fnp.nanquantile(AN, q, axis=axis, keepdims=keepdims),
                   numpy_quiet(np.nanquantile, AN, q, axis=axis, keepdims=keepdims).astype(np.float32), rtol=1e-5)
    assert_matches(fnp.nanpercentile(AN, [3, 50], axis=axis, keepdims=keepdims, method="lower"),
                   numpy_quiet(np.nanpercentile, AN, [3, 50], axis=axis, keepdims=keepdims, method="lower"))


def test_quantile_jax_corners():
    # JAX 0.10.2: quantile of ints is float (also for 'lower'), median of an even count is the midpoint
    assert_matches(fnp.quantile(np.array([1, 2, 3, 4]), 0.5, method="lower"), np.float32(2.0))
    assert_matches(fnp.quantile(np.array([1, 2, 3, 4]), 0.5), np.float32(2.5))
    assert_matches(fnp.median(np.array([1, 2])), np.float32(1.5))
    assert_matches(fnp.quantile(np.arange(4.0), 0.5, method="nearest"), np.float32(1.0))  # NumPy: 2.0
    with pytest.raises(ValueError, match="method"):
        fnp.quantile(A, 0.5, method="hazen")
    with pytest.raises(ValueError, match="zero- or one-dimensional"):
        fnp.quantile(A, np.ones((2, 2)) / 2)
    with pytest.raises(ValueError, match="empty"):
        fnp.median(np.ones(0))
    with pytest.raises(TypeError, match="method="):
        fnp.quantile(A, 0.5, interpolation="linear")


# --- NaN-ignoring reductions ---------------------------------------------------------------------------

NAN_REDUCTIONS = ["nansum", "nanprod", "nanmean", "nanvar", "nanstd", "nanmin", "nanmax"]


@pytest.mark.parametrize("name", NAN_REDUCTIONS)
@pytest.mark.parametrize("axis", [None, 0, -1, (0, 2)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_nan_reductions_match_numpy(name, axis, keepdims):
    want = numpy_quiet(getattr(np, name), AN, axis=axis, keepdims=keepdims)
    assert_matches(getattr(fnp, name)(AN, axis=axis, keepdims=keepdims), want, rtol=1e-5, atol=1e-6)


@given(st.sampled_from(NAN_REDUCTIONS), st.sampled_from([np.float32, np.int32, np.bool_]), nonempty_shapes,
       st.data())
def test_nan_reductions_property(name, dtype, shape, data):
    x = data.draw(arrays(dtype, shape, -3, 3))
    if dtype == np.float32:
        holes = data.draw(arrays(np.bool_, shape))
        x = np.where(holes, np.float32(np.nan), x)
    axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    want = numpy_quiet(getattr(np, name), x, axis=axis)
    if name in ("nanmean", "nanvar", "nanstd") and dtype != np.float32:
        want = np.asarray(want, np.float32)
    assert_matches(getattr(fnp, name)(x, axis=axis), want, rtol=1e-4, atol=1e-5)


def test_nanvar_ddof_and_nanarg():
    assert_matches(fnp.nanvar(AN, axis=2, ddof=1), numpy_quiet(np.nanvar, AN, axis=2, ddof=1), rtol=1e-5)
    assert np.isnan(np.asarray(fnp.nanvar(np.array([1.0, np.nan]), ddof=1)))
    assert_matches(fnp.nanargmax(AN[1], axis=1), np.nanargmax(AN[1], axis=1).astype(np.int32))
    assert_matches(fnp.nanargmin(AN[1], axis=0, keepdims=True),
                   np.nanargmin(AN[1], axis=0, keepdims=True).astype(np.int32))
    # JAX: an all-NaN slice gives -1 (NumPy raises)
    assert_matches(fnp.nanargmax(AN, axis=2), np.array([[-1 if np.isnan(r).all() else np.nanargmax(r)
                                                         for r in plane] for plane in AN], np.int32))
    assert int(fnp.nanargmin(np.array([np.nan, np.nan]))) == -1
    assert_matches(fnp.nancumsum(AN, axis=1), np.nancumsum(AN, axis=1), rtol=1e-5)
    assert_matches(fnp.nancumprod(AN, axis=None), np.nancumprod(AN, axis=None), rtol=1e-4)
    assert_matches(fnp.nanmax(np.array([3, 1], np.int32)), np.int32(3))


# --- cov, corrcoef ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("rowvar", [True, False])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("ddof", [None, 0, 2])
def test_cov_matches_numpy(rowvar, bias, ddof):
    m, y = A[0], A[1] * 2
    assert_matches(fnp.cov(m, rowvar=rowvar, bias=bias, ddof=ddof), np.cov(m, rowvar=rowvar, bias=bias, ddof=ddof),
                   rtol=1e-4, atol=1e-5)
    assert_matches(fnp.cov(m, y, rowvar=rowvar, bias=bias, ddof=ddof),
                   np.cov(m, y, rowvar=rowvar, bias=bias, ddof=ddof), rtol=1e-4, atol=1e-5)


def test_cov_weights_and_corrcoef():
    m = A[0]
    fw, aw = np.array([1, 2, 1, 3, 1]), np.array([0.5, 1, 2, 1, 0.3], np.float32)
    for kw in ({"fweights": fw}, {"aweights": aw}, {"fweights": fw, "aweights": aw, "ddof": 0}):
        assert_matches(fnp.cov(m, **kw), np.cov(m, **kw).astype(np.float32), rtol=1e-4, atol=1e-5)
    assert_matches(fnp.cov(m[0]), np.float32(np.cov(m[0])), rtol=1e-5)
    assert_matches(fnp.corrcoef(m), np.corrcoef(m).astype(np.float32), rtol=1e-4, atol=1e-5)
    assert_matches(fnp.corrcoef(m, A[1], rowvar=False), np.corrcoef(m, A[1], rowvar=False).astype(np.float32),
                   rtol=1e-4, atol=1e-5)
    assert_matches(fnp.corrcoef(m[0]), np.float32(1.0))
    with pytest.raises(TypeError, match="fweights must be integers"):
        fnp.cov(m, fweights=aw)


# --- transforms ------------------------------------------------------------------------------------------

TRANSFORM_CASES = {
    "isclose": (lambda x: fnp.isclose(x, x + 1e-3), (A,)),
    "array_equal": (lambda x: fnp.array_equal(x, x, equal_nan=True), (AN,)),
    "cumprod": (lambda x: fnp.cumprod(x, axis=1), (A,)),
    "cumulative_prod": (lambda x: fnp.cumulative_prod(x, axis=2, include_initial=True), (A,)),
    "diff": (lambda x: fnp.diff(x, n=2, prepend=0.0), (A,)),
    "ediff1d": (lambda x: fnp.ediff1d(x, to_begin=1.0), (A,)),
    "gradient": (lambda x: fnp.gradient(x, 0.5, np.array([0.0, 1.0, 1.5, 3.0]), 1.0, edge_order=2), (A,)),
    "trapezoid": (lambda x: fnp.trapezoid(x, XP, axis=1), (A,)),
    "interp": (lambda x: fnp.interp(x, XP, FP), (A,)),
    "interp period": (lambda x: fnp.interp(x, XP, FP, period=3.0), (A,)),
    "convolve": (lambda x: fnp.convolve(x[0, 0], x[1, 1, :3], "same"), (A,)),
    "correlate": (lambda x: fnp.correlate(x[0, 0], x[1, 1, :3], "full"), (A,)),
    "quantile": (lambda x: fnp.quantile(x, fnp.array([0.2, 0.7]), axis=(0, 2), keepdims=True), (A,)),
    "median": (lambda x: fnp.median(x, axis=1), (A,)),
    "nanmedian": (lambda x: fnp.nanmedian(x, axis=2), (AN,)),
    "nanpercentile": (lambda x: fnp.nanpercentile(x, 30.0, axis=-1, method="nearest"), (AN,)),
    "nansum/nanprod": (lambda x: fnp.nansum(x, axis=1) + fnp.nanprod(x, axis=1), (AN,)),
    "nanmean/nanvar/nanstd": (lambda x: fnp.nanmean(x, 2) + fnp.nanvar(x, 2, ddof=1) + fnp.nanstd(x, 2), (AN,)),
    "nanmax/nanmin": (lambda x: fnp.nanmax(x, axis=2) - fnp.nanmin(x, axis=2), (AN,)),
    "nanargmax/nanargmin": (lambda x: fnp.nanargmax(x, axis=2) * 10 + fnp.nanargmin(x, axis=2), (AN,)),
    "nancumsum/nancumprod": (lambda x: fnp.nancumsum(x, axis=2) + fnp.nancumprod(x, axis=2), (AN,)),
    "cov": (lambda x: fnp.cov(x[0], aweights=fnp.abs(x[1, 0])), (A,)),
    "corrcoef": (lambda x: fnp.corrcoef(x[0]), (A,)),
}


@pytest.mark.parametrize("name", sorted(TRANSFORM_CASES))
def test_jit_is_native_and_matches_eager(name):
    f, args = TRANSFORM_CASES[name]
    check_jit_matches_eager(f, args, equal_nan=True)


X = rng.uniform(-1.0, 1.0, (3, 5))
XN = X.copy()
XN[0, 1] = XN[2, 4] = np.nan

GRAD_CASES = {
    "cumprod": (lambda x: fnp.cumprod(x, axis=1), (X,)),
    "diff/ediff1d": (lambda x: fnp.diff(x, n=2, axis=0, append=x[:1]) + fnp.ediff1d(x)[:5], (X,)),
    "gradient": (lambda x: fnp.gradient(x, np.array([0.0, 1.0, 1.5]), 0.5, edge_order=2)[0], (X,)),
    "gradient wrt spacing": (lambda c: fnp.gradient(np.sin(np.arange(5.0)), c), (np.array([0.0, 0.7, 1.5, 2.0, 3.1]),)),
    "trapezoid": (lambda x, c: fnp.trapezoid(x, c, axis=1), (X, np.array([0.0, 0.5, 1.5, 2.0, 3.5]))),
    "interp": (lambda x, fp: fnp.interp(x * 2, XP.astype(np.float64), fp), (X, FP.astype(np.float64))),
    "interp wrt xp": (lambda xp: fnp.interp(np.array([0.3, 1.7, 3.3]), xp, FP.astype(np.float64)),
                      (np.array([0.0, 1.0, 2.5, 4.0]),)),
    "convolve": (lambda a, v: fnp.convolve(a, v, "same") + fnp.correlate(a, v, "full")[:5], (X[0], X[1, :3])),
    "quantile": (lambda x: fnp.quantile(x, np.array([0.3, 0.8]), axis=1), (X,)),
    "median/percentile": (lambda x: fnp.median(x, axis=0) + fnp.percentile(x, 40.0, axis=0, method="midpoint"), (X,)),
    "nanquantile/nanmedian": (lambda x: fnp.nanquantile(x, 0.3, axis=1) + fnp.nanmedian(x, axis=1), (XN,)),
    "nansum/nanmean/nanprod": (lambda x: fnp.nansum(x, 1) * fnp.nanmean(x, 1) + fnp.nanprod(x, 1), (XN,)),
    "nanvar/nanstd": (lambda x: fnp.nanvar(x, 1) + fnp.nanstd(x + 3.0, 1, ddof=1), (XN,)),
    "nanmax/nanmin": (lambda x: fnp.nanmax(x, 1) + fnp.nanmin(x, 1), (XN,)),
    "nancumsum/nancumprod": (lambda x: fnp.nancumsum(x, 1) + fnp.nancumprod(x, 1), (XN,)),
    "cov/corrcoef": (lambda x: fnp.cov(x, bias=True) + fnp.corrcoef(x), (X,)),
}


@pytest.mark.parametrize("name", sorted(GRAD_CASES))
def test_grad_matches_finite_differences(name):
    f, args = GRAD_CASES[name]
    check_grads(f, args, order=1)


VMAP_CASES = {
    "cumprod": (lambda x: fnp.cumprod(x), (A,), (2,)),
    "gradient": (lambda x: fnp.gradient(x, edge_order=2), (A,), (0,)),
    "interp": (lambda x, fp: fnp.interp(x, XP, fp), (A[:, 0], A[:, 1, :4]), (0, 0)),
    "convolve": (lambda a, v: fnp.convolve(a, v, "same"), (A[:, 0], A[:, 1, :3]), (0, 0)),
    "quantile": (lambda x: fnp.quantile(x, np.array([0.25, 0.6]), axis=0, method="nearest"), (A,), (1,)),
    "nanmedian": (lambda x: fnp.nanmedian(x), (AN,), (0,)),
    "nanvar/nanargmax": (lambda x: fnp.nanvar(x, axis=0) + fnp.nanargmax(x, axis=0), (AN,), (2,)),
    "cov": (lambda x: fnp.cov(x), (A,), (0,)),
    "isclose": (lambda x, y: fnp.isclose(x, y, atol=0.5), (A, A[::-1]), (0, 0)),
}


@pytest.mark.parametrize("name", sorted(VMAP_CASES))
def test_vmap_matches_a_loop(name):
    f, args, in_axes = VMAP_CASES[name]
    check_vmap(f, args, in_axes=in_axes, rtol=1e-5, atol=1e-5)


# --- 'inverted_cdf' quantiles (with weights) and nanvar's mean= ---------------------------------------

@given(st.lists(st.sampled_from([0.0, 1.0, 2.0, -3.5, 7.25, 1e3]), min_size=1, max_size=12),
       st.lists(st.floats(0.0, 1.0), min_size=1, max_size=4))
def test_inverted_cdf_matches_numpy(values, qs):
    a, q = np.asarray(values, np.float32), np.asarray(qs, np.float32)
    np.testing.assert_array_equal(np.asarray(fnp.quantile(a, q, method="inverted_cdf")),
                                  np.quantile(a, q.astype(np.float64), method="inverted_cdf").astype(np.float32))


def test_weighted_inverted_cdf_matches_jax_and_numpy():
    # JAX 0.10.2's answers (NumPy 2 agrees)
    x = np.array([3.0, 1, 4, 1, 5, 9, 2, 6], np.float32)
    np.testing.assert_array_equal(np.asarray(fnp.quantile(x, np.array([0.0, 0.1, 0.3, 0.5, 0.77, 1.0]),
                                                          method="inverted_cdf")), [1, 1, 2, 3, 6, 9])
    w = np.array([1.0, 1, 1, 1, 4], np.float32)
    np.testing.assert_array_equal(np.asarray(fnp.quantile(np.arange(5.0), np.array([0.2, 0.5, 0.9]), weights=w,
                                                          method="inverted_cdf")), [1, 3, 4])
    grid = np.arange(10.0, dtype=np.float32).reshape(2, 5)
    np.testing.assert_array_equal(np.asarray(fnp.quantile(grid, 0.5, axis=1, weights=w, method="inverted_cdf")),
                                  [3, 8])
    full = fnp.quantile(grid, 0.5, axis=1, keepdims=True, weights=grid, method="inverted_cdf")
    np.testing.assert_array_equal(np.asarray(full), [[3], [7]])
    np.testing.assert_array_equal(np.asarray(full), np.quantile(grid, 0.5, axis=1, keepdims=True, weights=grid,
                                                                method="inverted_cdf"))
    assert float(fnp.percentile(np.arange(10.0), 30, method="inverted_cdf")) == 2.0
    assert float(fnp.nanquantile(np.array([1.0, np.nan, 3, 2]), 0.5, method="inverted_cdf")) == 2.0
    assert np.isnan(float(fnp.quantile(np.array([1.0, np.nan, 3, 2]), 0.5, method="inverted_cdf")))
    assert float(fgrad.jit(lambda v: fnp.quantile(v, 0.5, method="inverted_cdf"))(x)) == 3.0
    np.testing.assert_array_equal(np.asarray(fgrad.grad(lambda v: fnp.quantile(v, 0.5, method="inverted_cdf"))(x)),
                                  [1, 0, 0, 0, 0, 0, 0, 0])
    with pytest.raises(NotImplementedError, match="Only method 'inverted_cdf' supports weights"):
        fnp.quantile(x, 0.5, weights=np.ones(8))
    with pytest.raises(ValueError, match="weights must have the shape"):
        fnp.quantile(grid, 0.5, axis=None, weights=w, method="inverted_cdf")


def test_nanvar_and_nanstd_about_a_given_mean():
    # JAX 0.10.2: nanvar([1, 2, nan, 4], mean=2) == 5/3; nanstd(..., axis=0, mean=[[1, 2]]) == [0, sqrt 2]
    np.testing.assert_allclose(float(fnp.nanvar(np.array([1.0, 2, np.nan, 4]), mean=np.array(2.0))), 5 / 3, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(fnp.nanstd(np.array([[1.0, 2], [np.nan, 4]]), axis=0,
                                                     mean=np.array([[1.0, 2.0]]))), [0, np.sqrt(2)], rtol=1e-6)
