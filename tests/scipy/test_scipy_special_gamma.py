"""The gamma family (lax.lgamma, digamma, polygamma, igamma, igammac, igamma_grad_a,
random_gamma_grad, betainc and scipy.special's functions built on them) against SciPy at many
points, against mpmath values recorded once (where SciPy itself is less accurate: next to
lgamma's zeros, large a), against JAX 0.10.2's recorded special values; jit (native path,
asserted), vmap, and derivatives against finite differences."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.special as ss
from hypothesis import given, strategies as st

import fgrad
import fgrad.scipy.special as fsp
from fgrad import lax
from fgrad.compile import pipeline
from fgrad.config import config
from tests.util import check_vmap


@pytest.fixture
def x64():
    with config.override(enable_x64=True):
        yield


def native(f, *args):
    """``jit(f)(*args)``, asserting that it compiled natively (no reference-path fallback)."""
    before = dict(pipeline.compiled_by_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", fgrad.ReferencePathWarning)
        out = fgrad.jit(f)(*args)
    assert pipeline.compiled_by_path["reference"] == before.get("reference", 0)
    return np.asarray(out)


def rel_err(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return np.abs(got - want) / np.maximum(np.abs(want), 1e-300)


def sample_x(rng):
    """Points over lgamma/digamma's domain: both signs, tiny, huge, next to 1 and 2."""
    x = np.concatenate([rng.uniform(-40, 40, 1500), 10 ** rng.uniform(-300, 300, 300),
                        -10 ** rng.uniform(-5, 12, 200), rng.uniform(0.4, 2.6, 400)])
    return x[x != np.round(x)]


# --- lgamma / digamma / polygamma -------------------------------------------------------------------

def test_lgamma_and_digamma_match_scipy_in_float64(x64):
    x = sample_x(np.random.default_rng(0))
    for ours, theirs in [(fsp.gammaln, ss.gammaln), (fsp.digamma, ss.digamma)]:
        want = theirs(x)
        got = np.asarray(ours(x))
        # relative error, measured against the function's scale near its zeros (where SciPy too
        # is only absolutely accurate): the bound holds at 1e-13 relative away from them
        scale = np.maximum(np.abs(want), 1.0)
        assert (np.abs(got - want) / scale).max() < 2e-13
        assert np.median(rel_err(got, want)) < 1e-15
        np.testing.assert_allclose(native(ours, x), got, rtol=1e-13, atol=1e-300)


# mpmath (40 digits), recorded once: relative accuracy next to the zeros, tiny and huge x
LGAMMA = [(0.999999999, 5.77215649399226e-10), (1.000000000003, -1.7316727714991649e-12),
          (1.9999999999, -4.2278437004755317e-11), (2.00000002, 8.455686779566964e-09),
          (0.9999, 5.7729791561193866e-05), (1.4616321459683623, -0.12148629053584961),
          (1e-300, 690.7755278982137), (-2.5, -0.056243716497674054), (-10000000000.5, -220258509322.20462)]
DIGAMMA = [(0.999999999, -0.5772156665464668), (2.00000002, 0.4227843479971483),
           (1.4616321459683623, 9.676722326577634e-10), (1.4616318449683623, -2.903017135300224e-07),
           (1e-300, -9.999999999999999e+299), (3e+305, 703.387065651852), (-2.5, 1.103156640645243),
           (-10000000000.5, 23.025850930040455)]


@pytest.mark.parametrize("fn, table", [(fsp.gammaln, LGAMMA), (fsp.digamma, DIGAMMA)], ids=["lgamma", "digamma"])
def test_relative_accuracy_next_to_the_zeros(x64, fn, table):
    x, want = np.array(table).T
    assert rel_err(fn(x), want).max() < 5e-14
    assert rel_err(native(fn, x), want).max() < 5e-14


def test_float32_is_within_a_few_ulp():
    x = sample_x(np.random.default_rng(1)).astype(np.float32)
    x = x[(np.abs(x) < 1e30) & (x != np.round(x))]
    for ours, theirs in [(fsp.gammaln, ss.gammaln), (fsp.digamma, ss.digamma)]:
        want = theirs(x.astype(np.float64))
        finite = np.isfinite(want.astype(np.float32))          # (digamma(denormal) overflows float32)
        for got in (np.asarray(ours(x)), native(ours, x)):
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got[~finite], want[~finite].astype(np.float32))
            scale = np.maximum(np.abs(want[finite]), 1.0)
            assert (np.abs(got[finite] - want[finite]) / scale).max() < 3e-7


def test_special_values_are_jax_s():
    x = np.array([0.0, -0.0, -1.0, -2.0, -1e20, np.inf, -np.inf, np.nan], np.float32)
    assert np.asarray(fsp.gammaln(x)).tolist()[:7] == [np.inf] * 5 + [np.inf, np.inf]
    assert np.isnan(np.asarray(fsp.gammaln(x))[7])
    dig = np.asarray(fsp.digamma(x))
    assert np.isnan(dig[[0, 1, 2, 3, 4, 6, 7]]).all() and dig[5] == np.inf
    assert np.asarray(native(lax.lgamma, x)).tolist()[:7] == np.asarray(fsp.gammaln(x)).tolist()[:7]
    with config.override(enable_x64=True):
        np.testing.assert_allclose(np.asarray(fsp.gamma(np.array([-0.5, 0.0, -0.0, 5.0, np.inf]))),
                                   [-3.5449077018110318, np.inf, -np.inf, 24.0, np.inf], rtol=1e-14)
        assert np.isnan(np.asarray(fsp.gamma(np.array([-1.0, -np.inf, np.nan])))).all()
        np.testing.assert_array_equal(np.asarray(fsp.gammasgn(np.array([-1.0, -0.5, 0.0, -0.0, 2.0, -1.5]))),
                                      [np.nan, -1.0, 1.0, -1.0, 1.0, 1.0])
        np.testing.assert_array_equal(np.asarray(fsp.loggamma(np.array([-0.5, 0.0, 1.0, np.inf]))),
                                      [np.nan, np.nan, 0.0, np.inf])


@pytest.mark.parametrize("n", [1, 2, 3, 6, 10])
def test_polygamma_matches_scipy(x64, n):
    x = sample_x(np.random.default_rng(n))
    x = x[(np.abs(x) < 1e4) & (np.abs(x - np.round(x)) > 1e-3)]
    want = ss.polygamma(n, x)
    ok = np.isfinite(want) & (np.abs(want) > 1e-290)
    got = np.asarray(fsp.polygamma(n, x))
    assert rel_err(got[ok], want[ok]).max() < 1e-12
    assert rel_err(native(fsp.polygamma, np.full_like(x, float(n)), x)[ok], want[ok]).max() < 1e-12


def test_polygamma_edges_are_jax_s(x64):
    got = np.asarray(fsp.polygamma(np.array([0.0, 1.0, 1.0, 1.0, 1.5, -1.0, 3.0]),
                                   np.array([1.5, 0.0, -1.0, np.inf, 2.0, 2.0, -2.5])))
    assert got[1] == np.inf and got[2] == np.inf and np.isnan(got[3:6]).all()
    np.testing.assert_allclose(got[[0, 6]], [ss.digamma(1.5), ss.polygamma(3, -2.5)], rtol=1e-13)


def test_beta_functions(x64):
    rng = np.random.default_rng(5)
    a, b = 10 ** rng.uniform(-2, 3, 2000), 10 ** rng.uniform(-2, 3, 2000)
    want = ss.betaln(a, b)      # SciPy's own error (~1e-12 absolute when a << b) is the bound
    assert (np.abs(np.asarray(fsp.betaln(a, b)) - want) / np.maximum(np.abs(want), 1.0)).max() < 1e-11
    for a_, b_, want in [(1e10, 1.0, -23.025850929940457), (0.26, 119.6, 0.0035120677790900353),
                         (1e8, 1e8, -138629444.05681732), (3.0, 4.0, -4.0943445622221)]:
        assert rel_err(fsp.betaln(a_, b_), want) < 1e-13                 # mpmath, recorded
    np.testing.assert_allclose(np.asarray(fsp.beta(np.array([-0.5, 1.0, 2.0]), np.array([1.0, -1.5, 3.0]))),
                               [-2.0, -0.6666666666666666, 1 / 12], rtol=1e-14)


def test_multigammaln_and_factorial(x64):
    a = np.array([3.0, 7.5, 20.0])
    np.testing.assert_allclose(np.asarray(fsp.multigammaln(a, 3)), [ss.multigammaln(v, 3) for v in a], rtol=1e-13)
    with pytest.raises(TypeError, match="Python int"):
        fsp.multigammaln(a, 2.5)
    np.testing.assert_allclose(np.asarray(fsp.factorial(np.array([-1.0, 0.0, 3.0, 3.5]))),
                               [0.0, 1.0, 6.0, 11.631728396567448], rtol=1e-13)


def test_zeta(x64):
    x, q = np.array([2.0, 3.0, 5.5, 1.0, 0.5]), np.array([1.0, 2.5, 0.1, 1.0, 1.0])
    got = np.asarray(fsp.zeta(x, q))
    np.testing.assert_allclose(got[:3], ss.zeta(x[:3], q[:3]), rtol=1e-13)
    assert got[3] == np.inf and np.isnan(got[4])


# --- the derivatives ------------------------------------------------------------------------------

def test_derivative_chain(x64):
    x = np.array([-2.5, -0.3, 0.2, 1.0, 1.4616, 3.0, 50.0])
    grad = fgrad.vmap(fgrad.grad(fsp.gammaln))
    np.testing.assert_allclose(np.asarray(grad(x)), ss.digamma(x), rtol=1e-13)
    np.testing.assert_allclose(np.asarray(fgrad.vmap(fgrad.grad(fsp.digamma))(x)), ss.polygamma(1, x), rtol=1e-12)
    second = fgrad.vmap(fgrad.grad(fgrad.grad(fsp.digamma)))
    np.testing.assert_allclose(np.asarray(second(x)), ss.polygamma(2, x), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(fgrad.jit(fgrad.vmap(fgrad.grad(lambda v: fsp.polygamma(2, v))))(x)),
                               ss.polygamma(3, x), rtol=1e-12)
    with pytest.raises(ValueError, match="order m"):
        fgrad.grad(lambda m: fsp.polygamma(m, 2.0))(1.0)


@given(st.floats(0.05, 60.0), st.floats(0.01, 90.0))
def test_igamma_derivatives_match_finite_differences(a, x):
    # P + Q = 1: difference whichever of the two is the smaller (the other's differences cancel
    # catastrophically near 1: Q at a=3, x=0.0117 gave finite differences 2.5e-5 off)
    small = ss.gammainc if ss.gammainc(a, x) <= 0.5 else ss.gammaincc
    with config.override(enable_x64=True):
        for fn, own in [(fsp.gammainc, ss.gammainc), (fsp.gammaincc, ss.gammaincc)]:
            ref = small if own is small else (lambda a, x: -small(a, x))
            da, dx = (float(v) for v in fgrad.grad(fn, (0, 1))(a, x))
            h = 1e-6 * max(a, 1e-2)
            fd_a = (ref(a + h, x) - ref(a - h, x)) / (2 * h)
            hx = 1e-6 * x
            fd_x = (ref(a, x + hx) - ref(a, x - hx)) / (2 * hx)
            assert abs(da - fd_a) <= 1e-6 * abs(fd_a) + 1e-9
            assert abs(dx - fd_x) <= 1e-6 * abs(fd_x) + 1e-9


def test_second_derivatives_of_the_incomplete_gamma(x64):
    a, x, h = 2.5, 1.7, 1e-5
    # d2P/(da dx) = dP/dx (log x - digamma(a)), both ways round
    mixed = float(fgrad.grad(lambda v: fgrad.grad(fsp.gammainc, 0)(a, v))(x))
    fd = (float(lax.igamma_grad_a(a, x + h)) - float(lax.igamma_grad_a(a, x - h))) / (2 * h)
    np.testing.assert_allclose(mixed, fd, rtol=1e-7)
    np.testing.assert_allclose(float(fgrad.grad(lambda u: fgrad.grad(fsp.gammainc, 1)(u, x))(a)), mixed, rtol=1e-12)
    with pytest.raises(ValueError, match="not differentiable with respect to a"):
        fgrad.grad(fgrad.grad(fsp.gammainc, 0), 0)(a, x)
    with pytest.raises(ValueError, match="random_gamma_grad is not differentiable"):
        fgrad.grad(lax.random_gamma_grad)(a, x)
    # an empty array has no second derivative to miss: its Hessian is empty, as JAX's
    empty = np.zeros((0,))
    second = fgrad.hessian(lambda v: fsp.gammainc(v * v + 0.25, fgrad.numpy.full_like(v, 0.5)).sum())(empty)
    assert np.asarray(second).shape == (0, 0)
    assert np.asarray(fgrad.grad(lambda v: fsp.betainc(v, v, fgrad.numpy.full_like(v, 0.3)).sum())(empty)).shape == (0,)


def test_random_gamma_grad_matches_jax(x64):
    a, x = np.array([2.0, 0.3, 50.0]), np.array([1.5, 0.01, 45.0])
    jax_values = [0.93663907, 0.14920695, 0.95141019]                   # lax.random_gamma_grad, JAX 0.10.2
    np.testing.assert_allclose(np.asarray(lax.random_gamma_grad(a, x)), jax_values, rtol=1e-7)
    np.testing.assert_allclose(native(lax.random_gamma_grad, a, x), jax_values, rtol=1e-7)
    np.testing.assert_allclose(np.asarray(lax.igamma_grad_a(a, x)), [-0.31348864, -1.24035813, -0.04554329],
                               rtol=1e-7)
    # implicit differentiation: x(a) with P(a, x(a)) = u, so dx/da = -(dP/da) / (dP/dx)
    u, h = 0.3, 1e-6
    x_of = lambda a_: ss.gammaincinv(a_, u)                            # noqa: E731
    fd = (x_of(2.0 + h) - x_of(2.0 - h)) / (2 * h)
    np.testing.assert_allclose(float(lax.random_gamma_grad(2.0, x_of(2.0))), fd, rtol=1e-7)


def test_betainc_derivative_in_x_and_the_error_for_a_and_b(x64):
    a, b, x = 2.5, 0.7, 0.35
    h = 1e-6
    fd = (ss.betainc(a, b, x + h) - ss.betainc(a, b, x - h)) / (2 * h)
    np.testing.assert_allclose(float(fgrad.grad(fsp.betainc, 2)(a, b, x)), fd, rtol=1e-7)
    with pytest.raises(ValueError, match="with respect to a and b"):
        fgrad.grad(fsp.betainc)(a, b, x)


# --- incomplete gamma and beta -------------------------------------------------------------------

def test_incomplete_gamma_matches_scipy(x64):
    rng = np.random.default_rng(7)
    a = 10 ** rng.uniform(-3, 2.5, 3000)
    x = a * np.exp(rng.normal(0, 1, a.size))
    for ours, theirs in [(fsp.gammainc, ss.gammainc), (fsp.gammaincc, ss.gammaincc)]:
        want = theirs(a, x)
        ok = want > 1e-290
        got = np.asarray(ours(a, x))
        assert rel_err(got[ok], want[ok]).max() < 1e-12
        np.testing.assert_allclose(native(ours, a, x), got, rtol=1e-12, atol=1e-300)


IGAMMA = [(0.5, 1e-3, 0.03567059172967989, 0.9643294082703201), (30.0, 1e-5, 3.769951145241386e-183, 1.0),
          (1e4, 9.9e3, 0.15865119219356466, 0.8413488078064354), (1e4, 1.02e4, 0.9767126778664011, 0.023287322133598805),
          (1e5, 1.002e5, 0.7366620100051987, 0.2633379899948013), (3.0, 60.0, 1.0, 1.6295866529378224e-23),
          (0.01, 0.7, 0.9962340091703982, 0.003765990829601872), (200.0, 150.0, 5.7096885742082446e-05, 0.9999429031142579)]


def test_incomplete_gamma_against_mpmath_far_out(x64):
    a, x, p, q = np.array(IGAMMA).T
    assert rel_err(fsp.gammainc(a, x), p).max() < 1e-12
    assert rel_err(fsp.gammaincc(a, x), q).max() < 1e-13


def test_small_a_keeps_q_relative_accurate(x64):
    # mpmath (30 digits), recorded once: Q is small and P near 1, where Q = 1 - P would cancel
    a = np.array([0.00028306763810818095, 0.00926618866508671, 0.0013395157558382877, 1e-4])
    x = np.array([0.883456837793946, 1.050281854126366, 0.9892726242900539, 0.01])
    want = [7.582257165165331e-05, 0.0018880535030106002, 0.00029961843298516284, 0.00040371956587111204]
    assert rel_err(fsp.gammaincc(a, x), want).max() < 1e-14
    assert rel_err(native(lax.igammac, a, x), want).max() < 1e-14


def test_incomplete_gamma_special_values_are_jax_s(x64):
    a = np.array([0.0, 0.0, 1.0, -1.0, 1.0, np.inf, 1.0, 2.0, np.nan, 0.5])
    x = np.array([0.0, 1.0, 0.0, 1.0, -1.0, 1.0, np.inf, np.inf, 1.0, 0.0])
    np.testing.assert_array_equal(np.asarray(fsp.gammainc(a, x)), [np.nan, 1, 0, np.nan, np.nan, np.nan, 1, 1, np.nan, 0])
    np.testing.assert_array_equal(np.asarray(fsp.gammaincc(a, x)), [np.nan, 0, 1, np.nan, np.nan, np.nan, 0, 0, np.nan, 1])
    np.testing.assert_array_equal(native(lax.igamma, a, x), np.asarray(fsp.gammainc(a, x)))


def test_betainc_matches_scipy_and_mpmath(x64):
    rng = np.random.default_rng(8)
    a, b, x = 10 ** rng.uniform(-2, 2.5, 3000), 10 ** rng.uniform(-2, 2.5, 3000), rng.uniform(0, 1, 3000)
    want = ss.betainc(a, b, x)
    ok = want > 1e-290
    got = np.asarray(fsp.betainc(a, b, x))
    assert rel_err(got[ok], want[ok]).max() < 1e-11
    np.testing.assert_allclose(native(lax.betainc, a, b, x), got, rtol=1e-12, atol=1e-300)
    recorded = [(0.5, 0.5, 0.3, 0.36901011956554536), (500.0, 600.0, 0.45, 0.3816937336648402),
                (1e-3, 2.0, 0.9, 0.9999946344990698), (20.0, 0.5, 0.999, 0.8424161860163615),
                (2.0, 3.0, 1e-8, 5.99999992e-16)]
    a, b, x, want = np.array(recorded).T
    assert rel_err(fsp.betainc(a, b, x), want).max() < 1e-12
    edges = fsp.betainc(np.array([1.0, 1.0, 0.0, 1.0, 2.0, 2.0, 2.0]), np.array([1.0, 0.0, 2.0, -1.0, 1.0, 1.0, 2.0]),
                        np.array([0.5, 0.5, 0.5, 0.5, -0.1, 1.1, 1.0]))
    np.testing.assert_array_equal(np.asarray(edges), [0.5, 0.0, 1.0, np.nan, np.nan, np.nan, 1.0])   # JAX's


def test_float32_incomplete_functions():
    rng = np.random.default_rng(9)
    a = (10 ** rng.uniform(-2, 2, 500)).astype(np.float32)
    x = (a * np.exp(rng.normal(0, 1, a.size))).astype(np.float32)
    want = ss.gammainc(a.astype(np.float64), x.astype(np.float64))
    ok = want > 1e-30
    for got in (np.asarray(fsp.gammainc(a, x)), native(lax.igamma, a, x)):
        assert got.dtype == np.float32
        assert rel_err(got[ok], want[ok]).max() < 1e-6


def test_vmap_matches_the_loop():
    rng = np.random.default_rng(10)
    a = (10 ** rng.uniform(-1, 2, (3, 5))).astype(np.float32)
    x = (a * rng.uniform(0.2, 3.0, (3, 5))).astype(np.float32)
    check_vmap(lax.igamma, (a, x), rtol=0, atol=0)
    check_vmap(lax.lgamma, (a - 3.3,), rtol=0, atol=0)
    check_vmap(lambda v: lax.betainc(v, v, np.float32(0.3)), (a[0],), rtol=0, atol=0)
    check_vmap(fgrad.grad(lambda v, w: lax.igammac(v, w)), (a[0], x[0]), rtol=0, atol=0)


# --- logsumexp and the information measures ------------------------------------------------------

def test_logsumexp_options_match_jax(x64):
    out, sign = fsp.logsumexp(np.array([1.0, 2.0, 3.0]), b=np.array([1.0, -2.0, 0.5]), return_sign=True)
    np.testing.assert_allclose([float(out), float(sign)], [0.70164195, -1.0], rtol=1e-8)
    assert np.isnan(float(fsp.logsumexp(np.array([1.0, 2.0, 3.0]), b=np.array([1.0, -2.0, 0.5]))))
    masked = fsp.logsumexp(np.array([[1.0, 2.0, 3.0], [4, 5, 6]]), axis=1,
                           where=np.array([[True, False, True], [False] * 3]))
    np.testing.assert_allclose(np.asarray(masked), [3.12692801, -np.inf], rtol=1e-8)
    out, sign = fsp.logsumexp(np.array([-np.inf, -np.inf]), return_sign=True)
    assert float(out) == -np.inf and float(sign) == 0.0
    rng = np.random.default_rng(11)
    a, b = rng.normal(size=(4, 6)), rng.uniform(0, 2, (4, 6))
    want = np.log(np.sum(b * np.exp(a), axis=0, keepdims=True))
    np.testing.assert_allclose(np.asarray(fsp.logsumexp(a, axis=0, b=b, keepdims=True)), want, rtol=1e-13)
    np.testing.assert_allclose(native(lambda u, v: fsp.logsumexp(u, axis=0, b=v), a, b), want[0], rtol=1e-13)
    grad = np.asarray(fgrad.grad(lambda u: fsp.logsumexp(u, b=b))(a))
    np.testing.assert_allclose(grad, b * np.exp(a) / np.sum(b * np.exp(a)), rtol=1e-12)


def test_information_measures_match_jax(x64):
    x = np.array([-1.0, 0.0, 0.0, 1.0, 2.0, np.nan, 1.0, 0.0])
    y = np.array([1.0, 0.0, 1.0, 0.0, 3.0, 1.0, np.inf, -1.0])
    np.testing.assert_allclose(np.asarray(fsp.kl_div(x, y)), [np.inf, 0, 1, np.inf, 0.18906978, np.nan, np.nan, np.inf],
                               rtol=1e-7)
    np.testing.assert_allclose(np.asarray(fsp.rel_entr(x, y)),
                               [np.inf, 0, 0, np.inf, -0.81093022, np.inf, -np.inf, np.inf], rtol=1e-7)
    np.testing.assert_allclose(np.asarray(fsp.entr(np.array([-1.0, 0.0, 0.5, np.inf, np.nan]))),
                               [-np.inf, 0.0, 0.34657359, -np.inf, np.nan], rtol=1e-7)
    p = np.random.default_rng(12).uniform(0.1, 2, 20)
    np.testing.assert_allclose(np.asarray(fsp.kl_div(p, p[::-1])), ss.kl_div(p, p[::-1]), rtol=1e-13)


# --- Bessel I0 / I1, poch, comb, boxcox ------------------------------------------------------------

def test_bessel_functions_match_scipy(x64):
    x = np.concatenate([np.linspace(-60, 60, 2001), [19.999, 20.0, 20.001, 1e-300, 700.0]])
    for ours, theirs in [(fsp.i0e, ss.i0e), (fsp.i1e, ss.i1e), (fsp.i0, ss.i0), (fsp.i1, ss.i1)]:
        want = theirs(x)
        ok = want != 0
        assert rel_err(np.asarray(ours(x))[ok], want[ok]).max() < 1e-14
        np.testing.assert_allclose(native(ours, x), np.asarray(ours(x)), rtol=1e-14, atol=1e-300)
    # JAX's values at the edges
    edges = np.array([0.0, np.inf, -np.inf, np.nan])
    np.testing.assert_array_equal(np.asarray(fsp.i0e(edges)), [1.0, 0.0, 0.0, np.nan])
    np.testing.assert_array_equal(np.asarray(fsp.i1e(edges)), [0.0, 0.0, -0.0, np.nan])
    assert np.isnan(np.asarray(fsp.i0(np.array([np.inf])))).all()          # 0 * inf, as JAX
    x32 = np.linspace(-30, 30, 301, dtype=np.float32)
    assert rel_err(np.asarray(fsp.i0e(x32)), ss.i0e(x32.astype(np.float64))).max() < 1e-6
    # d/dx I0 = I1, d/dx I1 = I0 - I1 / x
    xs = np.array([-7.0, 0.3, 5.0, 25.0])
    np.testing.assert_allclose(np.asarray(fgrad.vmap(fgrad.grad(fsp.i0))(xs)), ss.i1(xs), rtol=1e-13)
    np.testing.assert_allclose(np.asarray(fgrad.vmap(fgrad.grad(fsp.i1))(xs)), ss.i0(xs) - ss.i1(xs) / xs, rtol=1e-12)


@pytest.mark.parametrize("jitted", [False, True])
def test_scaled_bessel_derivatives_match_jax_at_the_corners(x64, jitted):
    # JAX's rules: i0e' = i1e - sign(x) i0e (0 at 0, where |x| would give -1); i1e' = 1/2 below
    # epsilon and at NaN; an infinite cotangent stays infinite. Answers from JAX 0.10.2.
    x = np.array([0.0, -0.0, 1e-300, -0.3, 2.5])
    first = {lax.bessel_i0e: [0.0, 0.0, -1.0, 0.6452030645427088, -0.06346179208093622],
             lax.bessel_i1e: [0.5, 0.5, 0.5, 0.2706111957432461, -0.019172067731570375]}
    second = {lax.bessel_i0e: [0.5, 0.5, 1.5, 0.9158142602859549, 0.044289724349365844],
              lax.bessel_i1e: [0.0, 0.0, 0.0, 0.5692120167652331, -0.003567353331735048]}
    for f in first:
        d1, d2 = fgrad.vmap(fgrad.grad(f)), fgrad.vmap(fgrad.grad(fgrad.grad(f)))
        d1, d2 = (fgrad.jit(d1), fgrad.jit(d2)) if jitted else (d1, d2)
        np.testing.assert_allclose(np.asarray(d1(x)), first[f], rtol=1e-11, atol=1e-300)
        np.testing.assert_allclose(np.asarray(d2(x)), second[f], rtol=1e-11, atol=1e-300)
    pull = lambda f, x, ct: fgrad.vjp(f, x)[1](ct)[0]      # noqa: E731
    if jitted:
        pull = fgrad.jit(pull, static_argnums=0)
    np.testing.assert_array_equal(float(pull(lax.bessel_i0e, 0.5, np.inf)), -np.inf)
    np.testing.assert_array_equal(float(pull(lax.bessel_i1e, 0.0, np.inf)), np.inf)
    np.testing.assert_array_equal(float(pull(lax.bessel_i1e, np.nan, 1.0)), 0.5)
    np.testing.assert_array_equal(float(pull(lax.bessel_i0e, np.inf, np.inf)), np.nan)     # inf * 0


def test_poch_comb_boxcox_match_jax(x64):
    np.testing.assert_allclose(np.asarray(fsp.poch(np.array([2.0, -1.5, 0.0, 3.0, -2.0]), np.array([3.0, 2.0, 2.0, -1.0, 1.0]))),
                               [24.0, 0.75, 0.0, 0.5, np.nan], rtol=1e-14)
    np.testing.assert_allclose(np.asarray(fsp.comb(np.array([5.0, 5.0, 3.0, -1.0, 4.5]), np.array([2.0, 6.0, -1.0, 1.0, 2.0]))),
                               [10.0, 0.0, 0.0, 0.0, 7.875], rtol=1e-13)
    np.testing.assert_allclose(np.asarray(fsp.comb(np.array([5.0, 5.0]), np.array([2.0, 6.0]), repetition=True)),
                               [15.0, 210.0], rtol=1e-13)
    np.testing.assert_allclose(np.asarray(fsp.boxcox(np.array([2.0, 0.0, -1.0, 3.0]), np.array([0.5, 0.5, 0.5, 0.0]))),
                               [0.8284271247461903, -2.0, np.nan, 1.0986122886681098], rtol=1e-14)
    np.testing.assert_allclose(np.asarray(fsp.boxcox1p(np.array([1.0, -1.0, -2.0, 1e-10]), np.array([0.5, 0.5, 0.5, 0.0]))),
                               [0.8284271247461903, -2.0, np.nan, np.log1p(1e-10)], rtol=1e-14)
    z, m = np.random.default_rng(13).uniform(0.5, 20, (2, 50))
    np.testing.assert_allclose(np.asarray(fsp.poch(z, m)), ss.poch(z, m), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(fsp.boxcox(z, m / 40 - 0.25)), ss.boxcox(z, m / 40 - 0.25), rtol=1e-13)
    np.testing.assert_allclose(np.asarray(lax.zeta(z + 1.0, m)), ss.zeta(z + 1.0, m), rtol=1e-13)


def test_bernoulli_erfcx_and_the_exponential_integrals(x64):
    exact = [1, -1 / 2, 1 / 6, 0, -1 / 30, 0, 1 / 42, 0, -1 / 30, 0, 5 / 66, 0, -691 / 2730]    # (SciPy's: 1e-12)
    np.testing.assert_array_equal(np.asarray(fsp.bernoulli(12)), exact)
    with pytest.raises(TypeError, match="Python int"):
        fsp.bernoulli(2.5)
    x = np.concatenate([np.linspace(-20, 60, 801), 10 ** np.linspace(-5, 3, 100)])
    assert rel_err(fsp.erfcx(x), ss.erfcx(x)).max() < 1e-13
    np.testing.assert_allclose(native(fsp.erfcx, x), np.asarray(fsp.erfcx(x)), rtol=1e-14)
    edges = np.asarray(fsp.erfcx(np.array([-30.0, np.inf, -np.inf, np.nan])))      # JAX's values
    assert edges[0] == np.inf and edges[1] == 0.0 and edges[2] == np.inf and np.isnan(edges[3])
    xp = 10 ** np.linspace(-8, 2.8, 400)
    want = ss.exp1(xp)
    ok = want > 0
    assert rel_err(np.asarray(fsp.exp1(xp))[ok], want[ok]).max() < 1e-14
    xe = np.concatenate([xp, -xp])
    xe = xe[np.abs(xe - 0.3725) > 0.01]             # (Ei's zero: only absolutely accurate there)
    assert rel_err(fsp.expi(xe), ss.expi(xe)).max() < 1e-13
    np.testing.assert_allclose(native(fsp.expi, xe), np.asarray(fsp.expi(xe)), rtol=1e-13)
    np.testing.assert_array_equal(np.asarray(fsp.exp1(np.array([0.0, -1.0, np.inf]))), [np.inf, np.nan, np.nan])
    assert np.isnan(float(fsp.expi(0.0)))
    # d/dx E1(x) = -exp(-x)/x, d/dx Ei(x) = exp(x)/x, d/dx erfcx(x) = 2 x erfcx(x) - 2/sqrt(pi)
    v = np.array([0.3, 1.7, 9.0])
    np.testing.assert_allclose(np.asarray(fgrad.vmap(fgrad.grad(fsp.exp1))(v)), -np.exp(-v) / v, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(fgrad.vmap(fgrad.grad(fsp.expi))(v)), np.exp(v) / v, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(fgrad.vmap(fgrad.grad(fsp.erfcx))(v)),
                               2 * v * ss.erfcx(v) - 2 / np.sqrt(np.pi), rtol=1e-11)


def test_jax_keyword_names_and_log_ndtr_series_order():
    # JAX 0.10 names the arguments p and q: kl_div(p=1, q=2) == 1 - log 2, rel_entr(p=1, q=2) == -log 2
    np.testing.assert_allclose(float(fsp.kl_div(p=1.0, q=2.0)), 1 - np.log(2.0), rtol=1e-6)
    np.testing.assert_allclose(float(fsp.rel_entr(p=1.0, q=2.0)), -np.log(2.0), rtol=1e-6)
    x = np.array([-40.0, -5.0, 0.0], np.float32)
    for order in (0, 3, 30):
        np.testing.assert_allclose(np.asarray(fsp.log_ndtr(x, series_order=order)), np.asarray(fsp.log_ndtr(x)))
    np.testing.assert_allclose(np.asarray(fsp.log_ndtr(x)), ss.log_ndtr(x.astype(np.float64)), rtol=1e-6)
    for order, error in ((-1, ValueError), (31, ValueError), (2.5, TypeError)):
        with pytest.raises(error, match="series_order"):
            fsp.log_ndtr(1.0, series_order=order)
