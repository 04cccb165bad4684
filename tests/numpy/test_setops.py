"""unique and the array API's unique_*, set operations, searchsorted, digitize, isin, bincount
and histogram: against NumPy (hypothesis), JAX's documented choices where they differ from
NumPy (recorded below), eagerly, under jit (native path only) and under vmap."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fgrad
from fgrad import numpy as fnp
from fgrad.core.trace import ConcretizationError


@pytest.fixture(autouse=True)
def native_only():
    with warnings.catch_warnings():
        warnings.simplefilter("error", fgrad.ReferencePathWarning)
        yield


def arrays(dtype=np.float32, max_size=12, with_nan=True):
    """Small arrays with many ties (few distinct values), NaNs and signed zeros for floats."""
    if np.dtype(dtype).kind == "f":
        pool = [0.0, -0.0, 1.0, -2.5, 3.0, np.inf, -np.inf] + ([np.nan] if with_nan else [])
    else:
        pool = [0, 1, -3, 7, 2] if np.dtype(dtype).kind == "i" else [0, 1, 3, 7, 2]
    return st.lists(st.sampled_from(pool), max_size=max_size).map(lambda v: np.array(v, dtype=dtype))


def same(got, want):
    got = np.asarray(got)
    assert got.shape == np.shape(want), (got.shape, np.shape(want))
    np.testing.assert_array_equal(got, want)


# --- unique ----------------------------------------------------------------------------------------------

def numpy_unique_equal_nan(x):
    """NumPy's unique with every output, NaNs collapsed (NumPy's default equal_nan=True)."""
    return np.unique(x, return_index=True, return_inverse=True, return_counts=True)


@given(arrays(np.float32))
def test_unique_matches_numpy(x):
    values, index, inverse, counts = fnp.unique(x, return_index=True, return_inverse=True, return_counts=True)
    want = numpy_unique_equal_nan(x)
    same(values, want[0])
    same(index, want[1])
    same(inverse, want[2].reshape(x.shape))
    same(counts, want[3])
    same(np.asarray(values)[np.asarray(inverse)], x)


@given(arrays(np.int32), st.integers(1, 8))
def test_unique_with_size_under_jit_pads_like_jax(x, size):
    f = fgrad.jit(lambda x: fnp.unique(x, size=size, return_index=True, return_counts=True))
    values, index, counts = f(x)
    want_v, want_i, want_c = np.unique(x, return_index=True, return_counts=True)
    k = min(size, len(want_v))
    same(np.asarray(values)[:k], want_v[:k])
    same(np.asarray(index)[:k], want_i[:k])
    same(np.asarray(counts)[:k], want_c[:k])
    if len(x):   # JAX pads values with the smallest one, indices and counts with 0
        assert (np.asarray(values)[k:] == want_v[0]).all()
        assert (np.asarray(index)[k:] == 0).all() and (np.asarray(counts)[k:] == 0).all()


def test_unique_fill_value_and_nan_handling():
    x = np.array([[3.0, 1.0, np.nan], [1.0, np.nan, 2.0]], np.float32)
    same(fnp.unique(x, size=6, fill_value=-1), [1, 2, 3, np.nan, -1, -1])
    same(fnp.unique(x, equal_nan=False), [1, 2, 3, np.nan, np.nan])
    got = fnp.unique_all(x)          # the array API: NaNs are distinct (recorded from jax.numpy)
    same(got.values, [1, 2, 3, np.nan, np.nan])
    same(got.indices, [1, 5, 0, 2, 4])
    same(got.inverse_indices, [[2, 0, 3], [0, 4, 1]])
    same(got.counts, [2, 1, 1, 1, 1])
    same(fnp.unique_values(np.array([2, 1, 2])), [1, 2])
    same(fnp.unique_counts(np.array([2, 1, 2])).counts, [1, 2])
    same(fnp.unique_inverse(np.array([[2, 1], [2, 5]])).inverse_indices, [[1, 0], [1, 2]])


@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=1, max_size=8))
def test_unique_rows_match_numpy(rows):
    x = np.array(rows, np.int32)
    values, index, inverse, counts = fnp.unique(x, axis=0, return_index=True, return_inverse=True,
                                                return_counts=True)
    want = np.unique(x, axis=0, return_index=True, return_inverse=True, return_counts=True)
    same(values, want[0])
    same(index, want[1])
    same(inverse, want[2].reshape(-1))
    same(counts, want[3])
    same(fnp.unique(x.T, axis=1), np.unique(x.T, axis=1))


def test_unique_of_a_traced_input_needs_a_size():
    with pytest.raises(ConcretizationError, match="size=N"):
        fgrad.jit(fnp.unique)(np.array([1, 2, 2]))
    with pytest.raises(ValueError, match="sorted=False"):
        fnp.unique(np.array([1]), sorted=False)


def test_unique_under_vmap_with_size_equals_a_loop():
    xs = np.array([[3, 1, 3, 0], [2, 2, 2, 2], [5, 4, 3, 2]], np.int32)
    got = fgrad.vmap(lambda x: fnp.unique(x, size=3, fill_value=-1))(xs)
    want = [np.asarray(fnp.unique(x, size=3, fill_value=-1)) for x in xs]
    same(got, np.stack(want))


def test_empty_inputs():
    e = np.zeros((0,), np.float32)
    same(fnp.unique(e), np.unique(e))
    same(fnp.unique_all(e).counts, np.zeros(0, np.int32))
    same(fnp.searchsorted(e, np.array([1.0, 2.0])), [0, 0])
    same(fnp.isin(np.array([1, 2]), np.zeros(0, np.int32)), [False, False])
    same(fnp.bincount(np.zeros(0, np.int32), minlength=2), [0, 0])


# --- searchsorted, digitize, isin --------------------------------------------------------------------------

@given(arrays(np.float32), arrays(np.float32, max_size=6), st.sampled_from(["left", "right"]))
def test_searchsorted_matches_numpy(a, v, side):
    a = np.sort(a)                     # NumPy's order: NaNs last, as fgrad's
    same(fnp.searchsorted(a, v, side=side), np.searchsorted(a, v, side=side))
    same(fgrad.jit(lambda a, v: fnp.searchsorted(a, v, side=side))(a, v), np.searchsorted(a, v, side=side))


@given(arrays(np.int32, with_nan=False), st.integers(-5, 10))
def test_searchsorted_with_sorter_and_scalars(a, v):
    sorter = np.argsort(a, kind="stable")
    same(fnp.searchsorted(a, v, sorter=sorter), np.searchsorted(a, v, sorter=sorter))


@pytest.mark.parametrize("right", [False, True])
@pytest.mark.parametrize("bins", [[1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [1.0, 1.0, 2.0], [2.0, 1.0, 1.0], [4.0]])
def test_digitize_matches_numpy(bins, right):
    x = np.array([0.0, 1.0, 1.5, 2.0, 5.0, -np.inf, np.inf], np.float32)
    same(fnp.digitize(x, np.array(bins, np.float32), right=right), np.digitize(x, bins, right=right))
    jitted = fgrad.jit(lambda x, b: fnp.digitize(x, b, right=right))(x, np.array(bins, np.float32))
    same(jitted, np.digitize(x, bins, right=right))


@given(arrays(np.float32, with_nan=True), arrays(np.float32, max_size=5), st.booleans())
def test_isin_matches_numpy(element, tests, invert):
    same(fnp.isin(element, tests, invert=invert), np.isin(element, tests, invert=invert))


# --- set operations --------------------------------------------------------------------------------------------

@given(arrays(np.int32), arrays(np.int32))
def test_set_operations_match_numpy(a, b):
    same(fnp.union1d(a, b), np.union1d(a, b))
    same(fnp.setdiff1d(a, b), np.setdiff1d(a, b))
    same(fnp.setxor1d(a, b), np.setxor1d(a, b))
    values, ia, ib = fnp.intersect1d(a, b, return_indices=True)
    want = np.intersect1d(a, b, return_indices=True)
    for g, w in zip((values, ia, ib), want):
        same(g, w)


@given(arrays(np.int32), arrays(np.int32))
def test_set_operations_with_size_under_jit(a, b):
    size = 4
    for name in ("union1d", "setdiff1d", "setxor1d", "intersect1d"):
        got = np.asarray(fgrad.jit(lambda a, b: getattr(fnp, name)(a, b, size=size, fill_value=-9))(a, b))
        want = getattr(np, name)(a, b)[:size]
        same(got[:len(want)], want)
        assert (got[len(want):] == -9).all()


def test_set_operations_assume_unique():
    a, b = np.array([5, 1, 3]), np.array([3, 4])
    same(fnp.setdiff1d(a, b, assume_unique=True), np.setdiff1d(a, b, assume_unique=True))
    same(fnp.setxor1d(a, b, assume_unique=True), np.setxor1d(a, b, assume_unique=True))


# --- bincount and histogram ---------------------------------------------------------------------------------

@given(st.lists(st.integers(0, 6), max_size=10), st.integers(0, 9), st.booleans())
def test_bincount_matches_numpy(values, minlength, weighted):
    x = np.array(values, np.int32)
    w = np.linspace(0.5, 2.0, len(x)).astype(np.float32) if weighted else None
    want = np.bincount(x, w, minlength=minlength)
    np.testing.assert_allclose(np.asarray(fnp.bincount(x, w, minlength=minlength)), want, rtol=1e-6)
    got = fgrad.jit(lambda x: fnp.bincount(x, length=5))(x)     # values past length are dropped
    np.testing.assert_array_equal(np.asarray(got), np.bincount(x, minlength=7)[:5])


def test_bincount_counts_negative_values_in_the_first_bin():
    """JAX 0.10.2 clips x to 0 (NumPy raises): bincount([-1, -1, 1, 3, 10], length=5) is
    [2, 1, 0, 1, 0]; fgrad dropped negatives ([0, 1, 0, 1, 0]) and raised without length."""
    x = np.array([-1, -1, 1, 3, 10], np.int32)
    for f in (lambda v: fnp.bincount(v, length=5), fgrad.jit(lambda v: fnp.bincount(v, length=5))):
        np.testing.assert_array_equal(np.asarray(f(x)), [2, 1, 0, 1, 0])
    np.testing.assert_array_equal(np.asarray(fnp.bincount(np.array([1, -1]))), [1, 1])
    np.testing.assert_array_equal(np.asarray(fnp.bincount(np.array([-3, -1]), weights=np.array([0.5, 2.0]))), [2.5])


def test_bincount_errors():
    with pytest.raises(ConcretizationError, match="length=N"):
        fgrad.jit(fnp.bincount)(np.array([1, 2]))
    with pytest.raises(TypeError, match="1-D array of non-negative ints"):
        fnp.bincount(np.array([1.0]))


@given(st.lists(st.integers(-40, 40).map(lambda v: v / 4), min_size=1, max_size=20), st.integers(1, 6), st.booleans())
def test_histogram_matches_numpy(values, bins, density):
    x = np.array(values, np.float32)
    counts, edges = fnp.histogram(x, bins=bins, density=density)
    want_counts, want_edges = np.histogram(x.astype(np.float64), bins=bins, density=density)
    np.testing.assert_allclose(np.asarray(edges), want_edges, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(counts), want_counts, rtol=1e-4, atol=1e-6)


def test_histogram_range_weights_and_edges_under_jit():
    x = np.array([0.0, 0.5, 1.0, 1.0, 2.0, 9.0], np.float32)
    w = np.arange(6, dtype=np.float32)
    f = fgrad.jit(lambda x, w: fnp.histogram(x, bins=4, range=(0.0, 2.0), weights=w))
    counts, edges = f(x, w)
    want = np.histogram(x, bins=4, range=(0, 2), weights=w)
    np.testing.assert_allclose(np.asarray(counts), want[0])
    np.testing.assert_allclose(np.asarray(edges), want[1])
    edges = np.array([0.0, 1.0, 5.0], np.float32)
    np.testing.assert_allclose(np.asarray(fnp.histogram(x, bins=edges)[0]), np.histogram(x, bins=edges)[0])
    np.testing.assert_allclose(np.asarray(fnp.histogram_bin_edges(x, 3)), np.histogram_bin_edges(x, 3), rtol=1e-6)


# --- histogram2d, histogramdd -----------------------------------------------------------------------------

quarters = st.integers(-44, 44).map(lambda v: v / 4)    # on and beside the edges below, exactly


@st.composite
def samples_and_bins(draw, max_d=3):
    d = draw(st.integers(1, max_d))
    n = draw(st.integers(0, 25))
    sample = np.array(draw(st.lists(st.lists(quarters, min_size=d, max_size=d), min_size=n, max_size=n)),
                      np.float32).reshape(n, d)
    # per dimension: an int count over range (-10, 10) (exact float32 edges), or explicit edges
    bins, ranges = [], []
    for _ in range(d):
        if draw(st.booleans()):
            bins.append(draw(st.sampled_from([1, 2, 4, 5, 8, 10])))
            ranges.append((-10.0, 10.0))
        else:
            edges = sorted(draw(st.sets(st.integers(-40, 40).map(lambda v: v / 4), min_size=2, max_size=6)))
            bins.append(np.array(edges, np.float32))
            ranges.append(None)
    return sample, bins, ranges


@settings(max_examples=40, deadline=None)
@given(case=samples_and_bins(), weighted=st.booleans(), density=st.booleans())
def test_histogramdd_matches_numpy(case, weighted, density):
    sample, bins, ranges = case
    weights = np.linspace(0.5, 2.0, len(sample)).astype(np.float32) if weighted else None
    if density and (weights is None or not weights.size):
        weights = None
    hist, edges = fnp.histogramdd(sample, bins=bins, range=ranges, weights=weights, density=density)
    with np.errstate(all="ignore"):
        want, want_edges = np.histogramdd(sample.astype(np.float64), bins=bins, range=ranges, weights=weights,
                                          density=density)
    assert hist.shape == want.shape and len(edges) == len(want_edges)
    assert hist.dtype == (np.float32 if (weighted or density) else np.int32)    # JAX's dtypes
    for e, w in zip(edges, want_edges):
        assert e.dtype == np.float32
        np.testing.assert_allclose(np.asarray(e), w, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(hist), want, rtol=2e-5, atol=1e-6, equal_nan=True)


@settings(max_examples=25, deadline=None)
@given(case=samples_and_bins(max_d=2).filter(lambda c: c[0].shape[1] == 2), density=st.booleans())
def test_histogram2d_matches_numpy_under_jit(case, density):
    sample, bins, ranges = case
    x, y = sample[:, 0], sample[:, 1]
    f = fgrad.jit(lambda x, y: fnp.histogram2d(x, y, bins=bins, range=ranges, density=density))
    hist, x_edges, y_edges = f(x, y)
    with np.errstate(all="ignore"):
        want = np.histogram2d(x.astype(np.float64), y.astype(np.float64), bins=bins, range=ranges,
                              density=density)
    for got, w in zip((hist, x_edges, y_edges), want):
        np.testing.assert_allclose(np.asarray(got), w, rtol=2e-5, atol=1e-6, equal_nan=True)


def test_histogram2d_bins_forms_range_nan_and_jax_values():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(50).astype(np.float32), rng.standard_normal(50).astype(np.float32)
    for bins in (10, 3, (2, 5), [3, np.array([-1., 0., 2.])], np.array([-1., 0., 0.5, 2.])):
        hist, xe, ye = fnp.histogram2d(x, y, bins=bins)
        want, wxe, wye = np.histogram2d(x.astype(np.float64), y.astype(np.float64), bins=bins)
        np.testing.assert_array_equal(np.asarray(hist), want)
        np.testing.assert_allclose(np.asarray(xe), wxe, rtol=1e-6, atol=1e-6)   # float32 edges
        np.testing.assert_allclose(np.asarray(ye), wye, rtol=1e-6, atol=1e-6)
    # JAX 0.10.2: outside the range is dropped, the last edge counts, NaN is dropped
    x2, y2 = np.array([0., 1., 2., 1., 0.5]), np.array([0., 1., 1., 3., 0.5])
    hist = fnp.histogram2d(x2, y2, bins=2, range=[[0, 1], [0, 2]])[0]
    assert hist.dtype == np.int32
    np.testing.assert_array_equal(np.asarray(hist), [[1, 0], [1, 1]])
    hist = fnp.histogram2d(np.array([0., np.nan, 1.]), np.array([0., 1., 1.]), bins=2, range=[[0, 1], [0, 1]])[0]
    np.testing.assert_array_equal(np.asarray(hist), [[1, 0], [0, 1]])
    # JAX 0.10.2: density of arange(5) against itself, 3 bins (float32)
    hist = fnp.histogram2d(np.arange(5), np.arange(5), bins=3, density=True)[0]
    np.testing.assert_allclose(np.asarray(hist), np.diag([0.225, 0.1125, 0.225]), rtol=1e-6)
    # a range per dimension may be None; weights give their dtype; vmap over weight sets
    w = np.abs(x)
    hist = fnp.histogram2d(x, y, bins=4, range=[None, (-1, 1)], weights=w)[0]
    np.testing.assert_allclose(np.asarray(hist), np.histogram2d(x, y, bins=4, range=[None, (-1, 1)], weights=w)[0],
                               rtol=1e-5)
    ws = np.stack([w, w * 2, np.ones_like(w)])
    batched = fgrad.vmap(lambda wi: fnp.histogram2d(x, y, bins=3, range=[(-2, 2), (-2, 2)], weights=wi)[0])(ws)
    want = np.stack([np.histogram2d(x, y, bins=3, range=[(-2, 2), (-2, 2)], weights=wi)[0] for wi in ws])
    np.testing.assert_allclose(np.asarray(batched), want, rtol=1e-5)


def test_histogramdd_gradient_in_the_weights_and_errors():
    sample = np.array([[0.1, 0.2], [0.6, 0.7], [0.9, 0.1], [0.4, 0.8]], np.float32)
    g = fgrad.grad(lambda w: (fnp.histogramdd(sample, bins=2, range=[(0, 1), (0, 1)], weights=w)[0]
                              * fnp.array([[1., 2.], [3., 4.]])).sum())(np.ones(4, np.float32))
    np.testing.assert_array_equal(np.asarray(g), [1., 4., 3., 2.])   # each sample's bin weight
    with pytest.raises(ValueError, match="one entry per dimension"):
        fnp.histogramdd(sample, bins=[2, 3, 4])
    with pytest.raises(ValueError, match="range must be a sequence of 2"):
        fnp.histogramdd(sample, range=[(0, 1)])
    with pytest.raises(ValueError, match="one weight per sample"):
        fnp.histogramdd(sample, weights=np.ones(3))
    with pytest.raises(ValueError, match="1-D of one length"):
        fnp.histogram2d(np.ones(3), np.ones(4))
