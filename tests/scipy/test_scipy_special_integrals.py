"""fgrad.scipy.special's wofz, dawsn, fresnel, sici, expn and owens_t against scipy.special
(float32 and float64), JAX 0.10.2's recorded values and corners, jit, vmap, and derivatives
(finite differences and the identities F' = 1 - 2xF, S' = sin(pi x^2/2), Si' = sin(x)/x, ...).
Tolerances name JAX's own error against SciPy (measured with JAX 0.10.2 on the same ranges)."""
import numpy as np
import pytest
import scipy.special as sp
from hypothesis import given, settings, strategies as st

import fgrad
from fgrad import numpy as fnp
from fgrad.scipy import special as fsp

pytestmark = [pytest.mark.filterwarnings("error::fgrad.ReferencePathWarning"),
              pytest.mark.filterwarnings("ignore::RuntimeWarning")]

X = np.concatenate([np.linspace(-10, 10, 401), np.geomspace(1e-8, 1e7, 120), -np.geomspace(1e-8, 1e7, 120)])
X = X.astype(np.float32).astype(np.float64)          # exact in float32 too: one reference for both


def x64():
    return fgrad.config.override(enable_x64=True)


def _rel(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    nonzero = want != 0
    assert np.array_equal(got[~nonzero], want[~nonzero])
    return np.max(np.abs(got - want)[nonzero] / np.abs(want[nonzero]))


# --- dawsn ---------------------------------------------------------------------------------------

def test_dawsn_matches_scipy_both_widths_eager_and_jit():
    want = sp.dawsn(X)
    # JAX: 2.5e-7 (float32), 1e-14 (float64); fgrad: 5.7e-7, 1e-14
    for got in (fsp.dawsn(X.astype(np.float32)), fgrad.jit(fsp.dawsn)(X.astype(np.float32))):
        assert got.dtype == np.float32 and _rel(got, want) < 1e-6
    with x64():
        got = fsp.dawsn(X)
        assert got.dtype == np.float64 and _rel(got, want) < 3e-14


def test_dawsn_corners_and_derivative_identity():
    x = np.array([0., -0., np.inf, -np.inf, np.nan, 1e-30, 1e30], np.float32)
    got = np.asarray(fsp.dawsn(x))
    np.testing.assert_array_equal(got, np.array([0., -0., 0., -0., np.nan, 1e-30, 5e-31], np.float32))
    assert np.signbit(got[1])
    assert fsp.dawsn(1).dtype == np.float32 and fsp.dawsn(np.int32(1)).dtype == np.float32
    with pytest.raises(ValueError, match="complex"):
        fsp.dawsn(1j)
    with x64():
        xs = np.array([-7., -2., 0., 0.3, 1.5, 4.0, 6.0, 9.0])
        g = fgrad.vmap(fgrad.grad(fsp.dawsn))(xs)
        np.testing.assert_allclose(np.asarray(g), 1 - 2 * xs * sp.dawsn(xs), rtol=1e-12, atol=1e-14)
        h = 1e-6
        fd = (np.asarray(fsp.dawsn(xs + h)) - np.asarray(fsp.dawsn(xs - h))) / (2 * h)
        np.testing.assert_allclose(np.asarray(g), fd, rtol=1e-6, atol=1e-9)


# --- wofz ----------------------------------------------------------------------------------------

def _wofz_points(rng):
    z = rng.uniform(-8, 8, 600) + 1j * rng.uniform(-8, 8, 600)
    return np.concatenate([z, rng.standard_normal(200) * 100 + 1j * rng.standard_normal(200) * 100,
                           np.linspace(-10, 10, 101)])


def test_wofz_matches_scipy():
    z = _wofz_points(np.random.default_rng(0))
    want = sp.wofz(z)
    finite = np.isfinite(want) & (np.abs(want) < 1e30)
    upper = z.imag >= 0
    with x64():
        got = np.asarray(fsp.wofz(z))
        assert got.dtype == np.complex128
        err = np.abs(got - want) / np.abs(want)
        assert np.max(err[finite]) < 1e-12                 # JAX: 4.5e-13; fgrad 3.1e-13
    for got in (fsp.wofz(z.astype(np.complex64)), fgrad.jit(fsp.wofz)(z.astype(np.complex64))):
        got = np.asarray(got)
        assert got.dtype == np.complex64
        err = np.abs(got - want) / np.abs(want)
        # upper half plane: JAX 3.7e-7, fgrad 4.0e-7; below it both lose digits to cancellation
        # in 2 exp(-z^2) - w(-z) (JAX 7.7e-5 where finite)
        assert np.max(err[finite & upper]) < 1e-6
        small = finite & ~upper & (np.abs(want) < 1e6)
        assert np.max(np.abs(got - want)[small] / np.maximum(np.abs(want[small]), 1.0)) < 1e-3


def test_wofz_dtypes_values_and_derivative():
    assert fsp.wofz(np.float32(1.)).dtype == np.complex64 and fsp.wofz(1.).dtype == np.complex64
    with x64():
        assert fsp.wofz(1.).dtype == np.complex128
        assert fsp.wofz(np.float32(1.)).dtype == np.complex64
        # JAX 0.10.2: wofz(0) = 1.0000000000000304 (Weideman's truncation), wofz(inf) = nan + nan j
        np.testing.assert_allclose(complex(fsp.wofz(0.)), 1.0000000000000304, rtol=1e-15)
        assert np.isnan(complex(fsp.wofz(complex(np.inf, 0))).real)
        got = complex(fsp.wofz(complex(-30, -30)))
        np.testing.assert_allclose(got, -1.9918512673237585 - 0.27380525107522824j, rtol=1e-12)
        z = np.array([0.3 + 0.2j, -1.0 + 0.5j, 2.0 - 1.0j])
        t = np.ones_like(z)
        _, dw = fgrad.jvp(fsp.wofz, (z,), (t,))
        w = sp.wofz(z)
        np.testing.assert_allclose(np.asarray(dw), -2 * z * w + 2j / np.sqrt(np.pi), rtol=1e-11)
        g = fgrad.grad(lambda x: fnp.imag(fsp.wofz(x)))(0.7)     # = 2/sqrt(pi) (1 - 2x F(x))
        np.testing.assert_allclose(float(g), 2 / np.sqrt(np.pi) * (1 - 1.4 * sp.dawsn(0.7)), rtol=1e-11)


# --- fresnel -------------------------------------------------------------------------------------

def test_fresnel_matches_scipy():
    # SciPy returns exactly 1/2 beyond about 3.7e7 (its phase pi x^2/2 has no digits left there);
    # fgrad reduces x^2 modulo 4 exactly and agrees with mpmath, as JAX does (5.8e-9 off SciPy)
    x = X[np.abs(X) < 3e7]
    s, c = sp.fresnel(x)
    for got_s, got_c in (fsp.fresnel(x.astype(np.float32)), fgrad.jit(fsp.fresnel)(x.astype(np.float32))):
        assert got_s.dtype == got_c.dtype == np.float32
        # JAX: 1.6e-5 and 1.3e-5 (float32); fgrad 4.3e-7 and 5.8e-7
        assert _rel(got_s, s) < 2e-6 and _rel(got_c, c) < 2e-6
    with x64():
        got_s, got_c = fsp.fresnel(x)
        assert _rel(got_s, s) < 1e-12 and _rel(got_c, c) < 1e-12
        # x = 75805243.67559245: mpmath S = 0.5000000029007765, JAX 0.5000000029016956 (both 2e-12
        # relative, Weideman's expansion far out), SciPy 0.5
        np.testing.assert_allclose(float(fsp.fresnel(75805243.67559245)[0]), 0.5000000029007765, rtol=3e-12)


def test_fresnel_corners_and_derivatives():
    x = np.array([0., np.inf, -np.inf, np.nan, 1e-30, 1e30], np.float32)
    s, c = (np.asarray(v) for v in fsp.fresnel(x))
    np.testing.assert_array_equal(s, np.array([0., .5, -.5, np.nan, 0., .5], np.float32))
    np.testing.assert_array_equal(c, np.array([0., .5, -.5, np.nan, 1e-30, .5], np.float32))
    with x64():
        xs = np.array([-3.3, -0.5, 0.2, 1.0, 1.7, 2.5, 40.0])
        ds = fgrad.vmap(fgrad.grad(lambda v: fsp.fresnel(v)[0]))(xs)
        dc = fgrad.vmap(fgrad.grad(lambda v: fsp.fresnel(v)[1]))(xs)
        np.testing.assert_allclose(np.asarray(ds), np.sin(np.pi * xs ** 2 / 2), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(np.asarray(dc), np.cos(np.pi * xs ** 2 / 2), rtol=1e-9, atol=1e-12)
        h = 1e-6
        fd = (np.asarray(fsp.fresnel(xs + h)[0]) - np.asarray(fsp.fresnel(xs - h)[0])) / (2 * h)
        np.testing.assert_allclose(np.asarray(ds), fd, atol=1e-6)


# --- sici ----------------------------------------------------------------------------------------

def test_sici_matches_scipy():
    si, ci = sp.sici(X)
    for got_si, got_ci in (fsp.sici(X.astype(np.float32)), fgrad.jit(fsp.sici)(X.astype(np.float32))):
        # JAX (float32): Si 1.5e-7 relative, Ci 1.4e-6 absolute (1e-4 relative at Ci's zero);
        # fgrad: 2.2e-7 and 1.4e-6
        assert _rel(got_si, si) < 5e-7
        assert np.max(np.abs(np.asarray(got_ci, np.float64) - ci)[X != 0]) < 3e-6
    with x64():
        got_si, got_ci = fsp.sici(X)
        assert _rel(got_si, si) < 2e-15
        assert np.max(np.abs(np.asarray(got_ci) - ci)[X != 0]) < 3e-15       # JAX: 6.7e-16


def test_sici_corners_and_derivatives():
    x = np.array([0., -0., np.inf, -np.inf, np.nan, -2.0], np.float32)
    si, ci = (np.asarray(v) for v in fsp.sici(x))
    # as JAX and SciPy: Ci(0) = -inf, Ci(-inf) = NaN, Ci(-x) = Ci(x); Si odd with Si(-0) = -0
    np.testing.assert_array_equal(si[:5], np.array([0., -0., np.pi / 2, -np.pi / 2, np.nan], np.float32))
    assert np.signbit(si[1])
    np.testing.assert_array_equal(ci[:5], np.array([-np.inf, -np.inf, 0., np.nan, np.nan], np.float32))
    np.testing.assert_allclose(ci[5], sp.sici(2.0)[1], rtol=1e-6)
    with pytest.raises(ValueError, match="complex"):
        fsp.sici(np.complex64(1))
    with x64():
        xs = np.array([-5.0, 0.5, 3.9, 4.1, 20.0])
        dsi = fgrad.vmap(fgrad.grad(lambda v: fsp.sici(v)[0]))(xs)
        dci = fgrad.vmap(fgrad.grad(lambda v: fsp.sici(v)[1]))(xs)
        np.testing.assert_allclose(np.asarray(dsi), np.sin(xs) / xs, rtol=1e-12)
        np.testing.assert_allclose(np.asarray(dci), np.cos(xs) / xs, rtol=1e-12)


# --- expn ----------------------------------------------------------------------------------------

def test_expn_matches_scipy():
    rng = np.random.default_rng(1)
    n = rng.integers(0, 30, 400).astype(float)
    x = np.concatenate([rng.uniform(0, 3, 200), np.geomspace(1e-6, 600, 200)])
    want = sp.expn(n.astype(int), x)
    with x64():
        got = fsp.expn(n, x)
        assert got.dtype == np.float64 and _rel(got, want) < 1e-13
    keep = want > 1e-30                                  # float32's range
    for got in (fsp.expn(n.astype(np.float32), x.astype(np.float32)),
                fgrad.jit(fsp.expn)(n.astype(np.float32), x.astype(np.float32))):
        assert got.dtype == np.float32 and _rel(np.asarray(got)[keep], want[keep]) < 2e-5


def test_expn_corners_and_derivative():
    with x64():
        n = np.array([-1., 2., 1., 0., 3., 2.5, 3., 2., 0.])
        x = np.array([1., -1., 0., 0., 0., 1., np.inf, np.nan, 2.])
        got = np.asarray(fsp.expn(n, x))
        np.testing.assert_allclose(got, [np.nan, np.nan, np.inf, np.inf, 0.5, np.nan, 0., np.nan, np.exp(-2) / 2])
        assert fsp.expn(3, 1).dtype == np.float64
        xs = np.array([0.3, 1.0, 2.5, 10.0])
        for order in (1., 2., 5.):
            g = fgrad.vmap(fgrad.grad(lambda v: fsp.expn(order, v)))(xs)
            np.testing.assert_allclose(np.asarray(g), -sp.expn(int(order) - 1, xs), rtol=1e-12)
        assert float(fgrad.grad(fsp.expn)(2., 1.)) == 0.0           # n is an integer order
    with pytest.raises(ValueError, match="complex"):
        fsp.expn(1, 1j)


# --- owens_t -------------------------------------------------------------------------------------

def test_owens_t_matches_scipy():
    rng = np.random.default_rng(2)
    h = np.concatenate([rng.uniform(-6, 6, 600), rng.standard_normal(200) * 20])
    a = np.concatenate([rng.uniform(-5, 5, 600), rng.standard_normal(200) * 50])
    want = sp.owens_t(h, a)
    for got in (fsp.owens_t(h.astype(np.float32), a.astype(np.float32)),
                fgrad.jit(fsp.owens_t)(h.astype(np.float32), a.astype(np.float32))):
        # absolute, as JAX's (relative error is lost where T underflows): JAX 3.5e-8, fgrad 3.2e-8
        assert got.dtype == np.float32 and np.max(np.abs(np.asarray(got, np.float64) - want)) < 6e-8
    with x64():
        assert np.max(np.abs(np.asarray(fsp.owens_t(h, a)) - want)) < 2e-16   # JAX 8.3e-17


def test_owens_t_corners_and_derivatives():
    # JAX 0.10.2: T(0, 1) = 1/8, T(1, inf) = 0.07932762696572854, T(inf, 1) = T(1, 0) = 0, NaN -> NaN
    got = np.asarray(fsp.owens_t(np.array([0., 1., np.inf, 1., np.nan]), np.array([1., np.inf, 1., 0., 1.])))
    np.testing.assert_allclose(got, [0.125, 0.07932762696572854, 0., 0., np.nan], rtol=1e-6)
    with x64():
        h = np.array([0.3, -1.2, 2.0, 0.5])
        a = np.array([0.4, 2.5, -0.7, 1.0])
        dh, da = fgrad.vmap(fgrad.grad(fsp.owens_t, argnums=(0, 1)))(h, a)
        step = 1e-6
        fd_h = (sp.owens_t(h + step, a) - sp.owens_t(h - step, a)) / (2 * step)
        fd_a = (sp.owens_t(h, a + step) - sp.owens_t(h, a - step)) / (2 * step)
        np.testing.assert_allclose(np.asarray(dh), fd_h, rtol=1e-6, atol=1e-10)
        np.testing.assert_allclose(np.asarray(da), fd_a, rtol=1e-6, atol=1e-10)


@settings(max_examples=8, deadline=None)
@given(x=st.lists(st.floats(-30, 30), min_size=1, max_size=4))
def test_vmap_matches_a_loop(x):
    x = np.array(x, np.float32)
    for f in (fsp.dawsn, lambda v: fsp.fresnel(v)[1], lambda v: fsp.sici(v)[0], lambda v: fsp.owens_t(v, 0.5)):
        batched = np.asarray(fgrad.vmap(f)(x))
        looped = np.array([np.asarray(f(v)) for v in x])
        np.testing.assert_allclose(batched, looped, rtol=1e-6, atol=1e-7)
