"""fgrad.scipy.stats against JAX 0.10.2's recorded outputs (tests/scipy/data/stats_jax.npz: the
same special values everywhere the parameters are valid, out-of-support points and NaNs
included), against scipy.stats in float64 and float32, jit (native, asserted) against eager,
vmap against a loop, gradients against finite differences, ppf inverting cdf (hypothesis)."""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.stats as sst
from hypothesis import given, strategies as st

import fgrad
import fgrad.scipy.stats as fst
from fgrad.compile import pipeline
from fgrad.config import config
from fgrad.lower.schedule import lowering_rules
from fgrad.ops.linalg import cholesky_p
from tests.scipy.stats_cases import METHODS, cases, valid
from tests.util import check_grads, check_vmap

RECORDED = np.load(Path(__file__).parent / "data" / "stats_jax.npz")
CASES = cases()


@pytest.fixture
def x64():
    with config.override(enable_x64=True):
        yield


def _fn(dist, method):
    return getattr(getattr(fst, dist), method)


def _agree(got, want, scipy_value, rtol, atol=1e-30, scipy_rtol=1e-12, majority=0.6):
    """Each value equals JAX's (to ``rtol``, inf and NaN exactly), or, where JAX's formula loses
    digits (far tails, ``1 - q``, tan's rounding at q = 0), SciPy's (to ``scipy_rtol``)."""
    got, want, scipy_value = (np.asarray(v, np.float64) for v in (got, want, scipy_value))
    like_jax = np.isclose(got, want, rtol=rtol, atol=atol, equal_nan=True)
    like_scipy = np.isclose(got, scipy_value, rtol=scipy_rtol, atol=max(atol, 1e-300), equal_nan=True)
    bad = ~like_jax & ~like_scipy
    assert not bad.any(), (got[bad][:4], want[bad][:4], scipy_value[bad][:4])
    assert like_jax.mean() > majority       # SciPy is the fallback oracle, not the main one


@pytest.mark.parametrize("dist, method, args", CASES, ids=[f"{d}.{m}" for d, m, _ in CASES])
def test_matches_jax_where_the_parameters_are_valid(x64, dist, method, args):
    ok = valid(dist, method, args)
    args = [a[ok] for a in args]
    with np.errstate(all="ignore"):
        scipy_value = getattr(getattr(sst, dist), method)(*args)
    _agree(_fn(dist, method)(*args), RECORDED[f"{dist}.{method}"][ok], scipy_value, rtol=1e-6)


@pytest.mark.parametrize("dist, method, args", CASES, ids=[f"{d}.{m}" for d, m, _ in CASES])
def test_float32_matches_jax(dist, method, args):
    exact = np.all([a.astype(np.float32).astype(np.float64) == a for a in args], axis=0)   # (1 - 1e-9 is 1)
    ok = valid(dist, method, args) & (exact | np.any([np.isnan(a) for a in args], axis=0))
    args = [a[ok] for a in args]
    with np.errstate(all="ignore"):
        scipy_value = getattr(getattr(sst, dist), method)(*args)
    got = np.asarray(_fn(dist, method)(*[a.astype(np.float32) for a in args]))
    assert got.dtype == np.float32
    _agree(got, RECORDED[f"{dist}.{method}"][ok], scipy_value, rtol=2e-5, atol=1e-6, scipy_rtol=2e-5, majority=0.3)


def _native_all(dist):
    """One jitted program evaluating every method of ``dist`` on its cases."""
    methods = METHODS[dist]
    args = {m: a for d, m, a in CASES if d == dist}
    fns = [_fn(dist, m) for m in methods]
    before = dict(pipeline.compiled_by_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", fgrad.ReferencePathWarning)
        outs = fgrad.jit(lambda all_args: [f(*all_args[m]) for f, m in zip(fns, methods)])(args)
    assert pipeline.compiled_by_path["reference"] == before.get("reference", 0)
    return dict(zip(methods, outs)), args


@pytest.mark.parametrize("dist", sorted(METHODS))
def test_jit_is_native_and_matches_eager(x64, dist):
    compiled, args = _native_all(dist)
    for method, out in compiled.items():
        np.testing.assert_allclose(np.asarray(out), np.asarray(_fn(dist, method)(*args[method])),
                                   rtol=1e-12, atol=1e-300, err_msg=f"{dist}.{method}")


RNG = np.random.default_rng(0)


def test_continuous_values_at_random_points_match_scipy(x64):
    x = RNG.normal(0, 3, 200)
    loc, scale = RNG.normal(0, 1, 200), RNG.uniform(0.1, 4, 200)
    for dist in ("norm", "logistic", "laplace", "cauchy", "gumbel_r", "gumbel_l"):
        for method in METHODS[dist]:
            if method in ("ppf", "isf"):
                continue
            np.testing.assert_allclose(np.asarray(_fn(dist, method)(x, loc, scale)),
                                       getattr(getattr(sst, dist), method)(x, loc, scale),
                                       rtol=1e-11, atol=1e-300, err_msg=f"{dist}.{method}")
    a, b = RNG.uniform(0.2, 30, 200), RNG.uniform(0.2, 30, 200)
    u = RNG.uniform(0, 1, 200)
    for method in METHODS["beta"]:
        np.testing.assert_allclose(np.asarray(_fn("beta", method)(u, a, b)), getattr(sst.beta, method)(u, a, b),
                                   rtol=1e-10, err_msg=f"beta.{method}")
    for method in METHODS["gamma"]:
        np.testing.assert_allclose(np.asarray(_fn("gamma", method)(u * 40, a, 0.0, scale)),
                                   getattr(sst.gamma, method)(u * 40, a, 0.0, scale), rtol=1e-10,
                                   err_msg=f"gamma.{method}")
    np.testing.assert_allclose(np.asarray(fst.t.logpdf(x, a, loc, scale)), sst.t.logpdf(x, a, loc, scale), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(fst.chi2.sf(u * 60, a)), sst.chi2.sf(u * 60, a), rtol=1e-10)


def test_tails_keep_their_accuracy(x64):
    np.testing.assert_allclose(float(fst.norm.logcdf(-40.0)), sst.norm.logcdf(-40.0), rtol=1e-13)
    np.testing.assert_allclose(float(fst.norm.isf(1e-300)), sst.norm.isf(1e-300), rtol=1e-13)
    np.testing.assert_allclose(float(fst.expon.logcdf(1e-20)), sst.expon.logcdf(1e-20), rtol=1e-13)
    np.testing.assert_allclose(float(fst.gamma.sf(200.0, 3.0)), sst.gamma.sf(200.0, 3.0), rtol=1e-12)
    np.testing.assert_allclose(float(fst.gamma.logcdf(200.0, 3.0)), sst.gamma.logcdf(200.0, 3.0), rtol=1e-12)
    np.testing.assert_allclose(float(fst.cauchy.cdf(-1e10)), sst.cauchy.cdf(-1e10), rtol=1e-13)
    np.testing.assert_allclose(float(fst.cauchy.ppf(1e-12)), sst.cauchy.ppf(1e-12), rtol=1e-12)
    np.testing.assert_allclose(float(fst.truncnorm.logpdf(9.0, 8.0, 12.0)), sst.truncnorm.logpdf(9.0, 8.0, 12.0),
                               rtol=1e-12)
    np.testing.assert_allclose(float(fst.gumbel_r.logsf(-3.0)), sst.gumbel_r.logsf(-3.0), rtol=1e-12)


def test_discrete_and_multivariate(x64):
    k = np.arange(-1.0, 15.0)
    np.testing.assert_allclose(np.asarray(fst.poisson.pmf(k, 3.5)), sst.poisson.pmf(k, 3.5), rtol=1e-13)
    np.testing.assert_allclose(np.asarray(fst.poisson.cdf(k + 0.5, 3.5)), sst.poisson.cdf(k + 0.5, 3.5), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(fst.binom.logpmf(k, 12.0, 0.3)), sst.binom.logpmf(k, 12, 0.3), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(fst.nbinom.pmf(k, 2.5, 0.4)), sst.nbinom.pmf(k, 2.5, 0.4), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(fst.geom.pmf(k, 0.2)), sst.geom.pmf(k, 0.2), rtol=1e-13)
    np.testing.assert_allclose(np.asarray(fst.betabinom.pmf(k, 12.0, 2.0, 3.5)), sst.betabinom.pmf(k, 12, 2.0, 3.5),
                               rtol=1e-11)
    counts, p = np.array([[2.0, 3.0, 5.0], [1.0, 1.0, 7.0]]), np.array([0.2, 0.3, 0.5])
    np.testing.assert_allclose(np.asarray(fst.multinomial.logpmf(counts, 10, p)),
                               sst.multinomial.logpmf(counts, 10, p), rtol=1e-13)
    assert float(fst.multinomial.logpmf(np.array([1.0, 1.0, 1.0]), 4, p)) == -np.inf
    x, alpha = np.array([0.2, 0.3, 0.5]), np.array([1.5, 2.0, 3.5])
    np.testing.assert_allclose(float(fst.dirichlet.logpdf(x, alpha)), sst.dirichlet.logpdf(x, alpha), rtol=1e-13)
    np.testing.assert_allclose(float(fst.dirichlet.pdf(x[:2], alpha)), sst.dirichlet.pdf(x, alpha), rtol=1e-13)
    points = np.array([[0.2, 0.1], [0.3, 0.6], [0.5, 0.3]])          # (K, n): one point per column
    np.testing.assert_allclose(np.asarray(fst.dirichlet.logpdf(points, alpha)), sst.dirichlet.logpdf(points, alpha),
                               rtol=1e-13)
    assert float(fst.dirichlet.logpdf(np.array([0.5, 0.6, -0.1]), alpha)) == -np.inf
    with pytest.raises(ValueError, match="first axis"):
        fst.dirichlet.logpdf(np.ones(5) / 5, alpha)


# --- derivatives ------------------------------------------------------------------------------------

@pytest.mark.parametrize("f, args", [
    (lambda x, loc, scale: fst.norm.logpdf(x, loc, scale), (0.7, -0.3, 1.7)),
    (lambda x, loc, scale: fst.norm.logcdf(x, loc, scale), (-3.0, 0.5, 0.8)),
    (lambda x, a, scale: fst.gamma.logpdf(x, a, 0.0, scale), (2.3, 1.7, 1.4)),
    (lambda x, a, scale: fst.gamma.cdf(x, a, 0.0, scale), (2.3, 1.7, 1.4)),
    (lambda x, a, b: fst.beta.logpdf(x, a, b), (0.35, 2.5, 1.3)),
    (lambda x, df, scale: fst.t.logpdf(x, df, 0.0, scale), (1.2, 3.5, 0.9)),
    (lambda mu: fst.poisson.logpmf(4.0, mu), (2.7,)),
    (lambda x, df: fst.chi2.sf(x, df), (3.1, 2.2)),
    (lambda x, a, b: fst.truncnorm.logpdf(x, a, b), (0.4, -1.0, 2.0)),
    (lambda x, loc, scale: fst.cauchy.logsf(x, loc, scale), (1.0, 0.2, 0.7)),
    (lambda x, loc, scale: fst.logistic.logpdf(x, loc, scale), (1.0, 0.2, 0.7)),
    (lambda x, beta: fst.gennorm.logpdf(x, beta), (0.6, 1.7)),
    (lambda x, b: fst.pareto.logpdf(x, b, 0.0, 1.0), (2.6, 1.3)),
    (lambda p: fst.binom.logpmf(3.0, 10.0, p), (0.35,)),
    (lambda x, alpha: fst.dirichlet.logpdf(x, alpha), (np.array([0.2, 0.3, 0.5]), np.array([1.5, 2.0, 3.5]))),
], ids=["norm.logpdf", "norm.logcdf", "gamma.logpdf", "gamma.cdf", "beta.logpdf", "t.logpdf", "poisson.logpmf",
        "chi2.sf", "truncnorm.logpdf", "cauchy.logsf", "logistic.logpdf", "gennorm.logpdf", "pareto.logpdf",
        "binom.logpmf", "dirichlet.logpdf"])
def test_gradients_match_finite_differences(f, args):
    check_grads(f, args, order=1, eps=1e-6, rtol=1e-7, atol=1e-8)


def test_gradient_of_a_beta_cdf_in_x(x64):
    grad = fgrad.grad(lambda x: fst.beta.cdf(x, 2.5, 1.3))(0.4)
    np.testing.assert_allclose(float(grad), sst.beta.pdf(0.4, 2.5, 1.3), rtol=1e-12)


def test_vmap_matches_the_loop():
    xs = np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4)
    check_vmap(lambda x: fst.norm.logcdf(x, 0.5, 2.0), (xs,), rtol=0, atol=0)
    check_vmap(lambda x, a: fst.gamma.sf(x, a), (np.abs(xs) + 0.1, np.abs(xs[::-1]) + 0.5), rtol=0, atol=0)
    check_vmap(lambda x, a: fst.beta.logpdf(x, a, 2.0), (np.abs(xs) / 4 + 0.1, np.abs(xs) + 0.5), in_axes=(0, None),
               rtol=0, atol=0)


# --- properties -------------------------------------------------------------------------------------

INVERTIBLE = ["norm", "logistic", "cauchy", "expon", "gumbel_r", "gumbel_l"]


@given(st.sampled_from(INVERTIBLE), st.floats(1e-6, 1 - 1e-6), st.floats(-5, 5), st.floats(0.1, 10))
def test_ppf_inverts_cdf(dist, q, loc, scale):
    with config.override(enable_x64=True):
        x = _fn(dist, "ppf")(q, loc, scale)
        assert math.isclose(float(_fn(dist, "cdf")(x, loc, scale)), q, rel_tol=1e-9, abs_tol=1e-15)


@given(st.floats(0.05, 50), st.floats(0.05, 50), st.floats(0.0, 1.0))
def test_beta_cdf_and_sf_sum_to_one(a, b, x):
    with config.override(enable_x64=True):
        total = float(fst.beta.cdf(x, a, b)) + float(fst.beta.sf(x, a, b))
        assert math.isclose(total, 1.0, rel_tol=1e-12)


# --- multivariate_normal ----------------------------------------------------------------------------

def _spd(rng, n, batch=()):
    a = rng.normal(size=batch + (n, n))
    return a @ np.swapaxes(a, -1, -2) + 0.5 * np.eye(n)


def test_multivariate_normal_matches_scipy(x64):
    rng = np.random.default_rng(3)
    cov, mean, x = _spd(rng, 4), rng.normal(size=4), rng.normal(size=(3, 5, 4))
    np.testing.assert_allclose(np.asarray(fst.multivariate_normal.logpdf(x, mean, cov)),
                               sst.multivariate_normal.logpdf(x, mean, cov), rtol=1e-13)
    np.testing.assert_allclose(np.asarray(fst.multivariate_normal.pdf(x[0], mean, cov)),
                               sst.multivariate_normal.pdf(x[0], mean, cov), rtol=1e-13)
    covs = _spd(rng, 4, (3,))
    np.testing.assert_allclose(np.asarray(fst.multivariate_normal.logpdf(x[:, 0], mean, covs)),
                               [sst.multivariate_normal.logpdf(x[i, 0], mean, covs[i]) for i in range(3)], rtol=1e-13)
    np.testing.assert_allclose(np.asarray(fst.multivariate_normal.logpdf(x[0], mean, 2.0)),
                               sst.multivariate_normal.logpdf(x[0], mean, 2.0 * np.eye(4)), rtol=1e-13)
    np.testing.assert_allclose(float(fst.multivariate_normal.logpdf(0.3, 0.1, 2.0)), sst.norm.logpdf(0.3, 0.1, 2 ** 0.5),
                               rtol=1e-14)
    with pytest.raises(ValueError, match="cov must be"):
        fst.multivariate_normal.logpdf(x, mean, np.eye(3))


def test_multivariate_normal_grad_jit_vmap(x64):
    rng = np.random.default_rng(4)
    cov, mean, x = _spd(rng, 3), rng.normal(size=3), rng.normal(size=(6, 3))
    # d/dmean log N(x; mean, cov) = cov^-1 (x - mean)
    grad = fgrad.grad(lambda m: fst.multivariate_normal.logpdf(x[0], m, cov))(mean)
    np.testing.assert_allclose(np.asarray(grad), np.linalg.solve(cov, x[0] - mean), rtol=1e-12)
    check_grads(lambda m, c: fst.multivariate_normal.logpdf(x[1], m, c @ c.T + np.eye(3)),
                (mean, rng.normal(size=(3, 3))), order=1, eps=1e-6, rtol=1e-7, atol=1e-8)
    before = dict(pipeline.compiled_by_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fgrad.ReferencePathWarning)
        jitted = fgrad.jit(fst.multivariate_normal.logpdf)(x, mean, cov)
    if cholesky_p in lowering_rules:       # native once the LAPACK lowering (branch lapack) is merged
        assert pipeline.compiled_by_path["reference"] == before.get("reference", 0)
    np.testing.assert_allclose(np.asarray(jitted), sst.multivariate_normal.logpdf(x, mean, cov), rtol=1e-13)
    check_vmap(lambda v: fst.multivariate_normal.logpdf(v, mean, cov), (x,), rtol=1e-13, atol=0)


def test_poisson_entropy(x64):
    # mpmath sums (30 digits), recorded once; JAX's own values are ~1e-6 off at mu = 100
    mu = np.array([100.0, 999.0, 1001.0, 5000.0])
    want = [3.720686072260259, 4.872232463975691, 4.873232631142843, 5.677518460579035]
    np.testing.assert_allclose(np.asarray(fst.poisson.entropy(mu)), want, rtol=5e-13)
    small = np.array([1e-5, 0.5, 3.0, 20.0])
    np.testing.assert_allclose(np.asarray(fst.poisson.entropy(small)), [sst.poisson.entropy(m) for m in small],
                               rtol=1e-13)
    edges = np.asarray(fst.poisson.entropy(np.array([0.0, -1.0, np.nan, np.inf])))
    assert edges[0] == 0.0 and np.isnan(edges[1:3]).all() and edges[3] == np.inf      # JAX's
    np.testing.assert_allclose(np.asarray(fgrad.jit(fst.poisson.entropy)(small)), np.asarray(fst.poisson.entropy(small)),
                               rtol=1e-13)
    # dH/dmu = sum_k pmf'(k) (-log pmf(k) - 1) -> finite differences
    h = 1e-6
    fd = (float(fst.poisson.entropy(7.0 + h)) - float(fst.poisson.entropy(7.0 - h))) / (2 * h)
    np.testing.assert_allclose(float(fgrad.grad(fst.poisson.entropy)(7.0)), fd, rtol=1e-7)


# --- sem, rankdata, mode ----------------------------------------------------------------------------

def _native(f, *args):
    before = dict(pipeline.compiled_by_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", fgrad.ReferencePathWarning)
        out = fgrad.jit(f)(*args)
    assert pipeline.compiled_by_path["reference"] == before.get("reference", 0)
    return out


def test_sem_matches_scipy(x64):
    a = np.random.default_rng(5).normal(size=(4, 7))
    for axis in (0, 1, None):
        np.testing.assert_allclose(np.asarray(fst.sem(a, axis=axis)), sst.sem(a, axis=axis), rtol=1e-13)
    np.testing.assert_allclose(np.asarray(fst.sem(a, axis=1, ddof=0, keepdims=True)),
                               sst.sem(a, axis=1, ddof=0)[:, None], rtol=1e-13)
    b = a.copy()
    b[1, 2] = np.nan
    np.testing.assert_allclose(np.asarray(fst.sem(b, axis=1, nan_policy="omit")), sst.sem(b, axis=1, nan_policy="omit"),
                               rtol=1e-13)
    assert np.isnan(np.asarray(fst.sem(b, axis=1))[1])
    with pytest.raises(NotImplementedError, match="raise"):
        fst.sem(b, nan_policy="raise")
    np.testing.assert_allclose(np.asarray(_native(lambda v: fst.sem(v, axis=1), a)), sst.sem(a, axis=1), rtol=1e-13)
    check_grads(lambda v: fst.sem(v, axis=0), (a,), order=1, eps=1e-6, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("method", ["average", "min", "max", "dense", "ordinal"])
def test_rankdata_matches_scipy(x64, method):
    a = np.random.default_rng(6).integers(0, 5, (3, 8)).astype(np.float64)       # many ties
    np.testing.assert_array_equal(np.asarray(fst.rankdata(a, method)), sst.rankdata(a, method))
    for axis in (0, 1):
        np.testing.assert_array_equal(np.asarray(fst.rankdata(a, method, axis=axis)), sst.rankdata(a, method, axis=axis))
    np.testing.assert_array_equal(np.asarray(_native(lambda v: fst.rankdata(v, method, axis=1), a)),
                                  sst.rankdata(a, method, axis=1))
    assert np.isnan(np.asarray(fst.rankdata(np.array([1.0, np.nan, 2.0]), method))).all()    # JAX's


def test_mode_matches_scipy(x64):
    a = np.random.default_rng(7).integers(0, 4, (5, 9)).astype(np.float64)
    for axis in (0, 1):
        got, want = fst.mode(a, axis=axis), sst.mode(a, axis=axis)
        np.testing.assert_array_equal(np.asarray(got.mode), want.mode)
        np.testing.assert_array_equal(np.asarray(got.count), want.count)
    got = fst.mode(np.array([[1, 2], [1, 3]]), axis=None, keepdims=True)
    assert np.asarray(got.mode).tolist() == [[1]] and np.asarray(got.count).tolist() == [[2]]   # JAX's
    jitted = _native(lambda v: fst.mode(v, axis=1), a)
    np.testing.assert_array_equal(np.asarray(jitted.mode), sst.mode(a, axis=1).mode)
    with pytest.raises(NotImplementedError, match="omit"):
        fst.mode(a, nan_policy="omit")


# --- gaussian_kde ---------------------------------------------------------------------------------------

def test_gaussian_kde_matches_scipy(x64):
    rng = np.random.default_rng(8)
    data, weights, points = rng.normal(size=(2, 30)), rng.uniform(0.5, 2, 30), rng.normal(size=(2, 7))
    for bw in (None, "silverman", 0.4):
        ours, theirs = fst.gaussian_kde(data, bw, weights), sst.gaussian_kde(data, bw, weights)
        np.testing.assert_allclose(np.asarray(ours.covariance), theirs.covariance, rtol=1e-13)
        np.testing.assert_allclose(np.asarray(ours.pdf(points)), theirs.pdf(points), rtol=1e-12)
        np.testing.assert_allclose(np.asarray(ours.logpdf(points)), theirs.logpdf(points), rtol=1e-12)
        np.testing.assert_allclose(float(ours.integrate_gaussian(np.zeros(2), np.eye(2))),
                                   theirs.integrate_gaussian(np.zeros(2), np.eye(2)), rtol=1e-12)
        np.testing.assert_allclose(float(ours.integrate_kde(ours)), theirs.integrate_kde(theirs), rtol=1e-12)
    one_d = fst.gaussian_kde(data[0])
    np.testing.assert_allclose(float(one_d.integrate_box_1d(-0.5, 1.0)),
                               sst.gaussian_kde(data[0]).integrate_box_1d(-0.5, 1.0), rtol=1e-12)
    np.testing.assert_allclose(float(fst.gaussian_kde(data, lambda k: 0.3).covariance[0, 0]),
                               sst.gaussian_kde(data, 0.3).covariance[0, 0], rtol=1e-13)
    with pytest.raises(NotImplementedError, match="bandwidth"):
        one_d.set_bandwidth("scott")
    with pytest.raises(ValueError, match="one-dimensional"):
        fst.gaussian_kde(data).integrate_box_1d(0.0, 1.0)


def test_gaussian_kde_is_a_pytree_for_jit_and_grad(x64):
    rng = np.random.default_rng(9)
    kde = fst.gaussian_kde(rng.normal(size=(2, 20)))
    points = rng.normal(size=(2, 5))
    np.testing.assert_allclose(np.asarray(_native(lambda k, p: k.logpdf(p), kde, points)),
                               np.asarray(kde.logpdf(points)), rtol=1e-13)
    # d/dx log p(x) against finite differences
    check_grads(lambda p: kde.logpdf(p), (points,), order=1, eps=1e-6, rtol=1e-7, atol=1e-8)
    samples = kde.resample(fgrad.random.key(0), (4000,))
    assert samples.shape == (2, 4000)
    np.testing.assert_allclose(np.asarray(samples).mean(axis=1), np.asarray(kde.dataset).mean(axis=1), atol=0.1)
