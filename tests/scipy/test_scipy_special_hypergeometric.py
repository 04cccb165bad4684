"""fgrad.scipy.special's hyp1f1, hyp2f1, bessel_jn and sph_harm_y against scipy.special where JAX
agrees with it, JAX 0.10.2's recorded values where it does not (its domains, NaN and inf cases,
clipping), jit, vmap and derivatives (finite differences; the recorded JAX gradients)."""
import numpy as np
import pytest
import scipy.special as sp

import fgrad
from fgrad import numpy as fnp
from fgrad.scipy import special as fsp

pytestmark = [pytest.mark.filterwarnings("error::fgrad.ReferencePathWarning"),
              pytest.mark.filterwarnings("ignore::RuntimeWarning")]


def x64():
    return fgrad.config.override(enable_x64=True)


def _rel(got, want):
    got = np.asarray(got, np.float64)
    return np.abs(got - want) / np.abs(want)


# --- hyp1f1 --------------------------------------------------------------------------------------

def test_hyp1f1_matches_scipy_where_the_series_is_accurate():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.1, 10, 300), rng.uniform(0.1, 10, 300)
    x = rng.uniform(0, 30, 300)
    x_big = rng.uniform(100, 300, 100)
    with x64():
        # JAX's error here: 1e-14 (x >= 0) and 1.2e-14 (asymptotic, x >= 100)
        assert np.max(_rel(fsp.hyp1f1(a, b, x), sp.hyp1f1(a, b, x))) < 1e-12
        assert np.max(_rel(fsp.hyp1f1(a[:100], b[:100], x_big), sp.hyp1f1(a[:100], b[:100], x_big))) < 1e-12
    f32 = [v.astype(np.float32) for v in (a, b, x)]
    want = sp.hyp1f1(*[v.astype(np.float64) for v in f32])
    for got in (fsp.hyp1f1(*f32), fgrad.jit(fsp.hyp1f1)(*f32)):
        assert got.dtype == np.float32 and np.max(_rel(got, want)) < 1e-4     # JAX: 5e-5 here


def test_hyp1f1_jax_cases_and_gradients():
    with x64():
        # JAX 0.10.2: 1F1(0; 0; 1) = 1 (SciPy: inf), b = 0 -> inf, a = b -> exp(x), and at
        # x = -150 the asymptotic series is wrong (-4.78e-68; SciPy 0.00667)
        got = [float(fsp.hyp1f1(*args)) for args in ((0., 0., 1.), (1., 0., 1.), (-2., 1., 3.), (2., 2., 3.))]
        np.testing.assert_allclose(got, [1.0, np.inf, -0.5, np.exp(3.0)], rtol=1e-14)
        np.testing.assert_allclose(float(fsp.hyp1f1(1., 2., -150.)), -4.783397315442941e-68, rtol=1e-6)
        grads = [float(fgrad.grad(fsp.hyp1f1, argnums=i)(1.5, 2.5, 0.7)) for i in range(3)]
        np.testing.assert_allclose(grads, [0.42270308, -0.26072618, 0.99987798], rtol=1e-7)     # JAX's
        h = 1e-6
        for i in range(3):
            up, down = [1.5, 2.5, 0.7], [1.5, 2.5, 0.7]
            up[i] += h
            down[i] -= h
            np.testing.assert_allclose(grads[i], (sp.hyp1f1(*up) - sp.hyp1f1(*down)) / (2 * h), rtol=1e-6)
    with pytest.raises(ValueError, match="complex"):
        fsp.hyp1f1(1., 2., 1j)


# --- hyp2f1 --------------------------------------------------------------------------------------

def test_hyp2f1_matches_scipy_inside_the_unit_interval():
    rng = np.random.default_rng(1)
    a, b = rng.uniform(-3, 5, 600), rng.uniform(-3, 5, 600)
    c, x = rng.uniform(0.1, 8, 600), rng.uniform(-0.9, 0.9, 600)
    want = sp.hyp2f1(a, b, c, x)
    with x64():
        assert np.max(_rel(fsp.hyp2f1(a, b, c, x), want)) < 1e-11          # JAX: 9.8e-12
    f32 = [v.astype(np.float32) for v in (a, b, c, x)]
    want = sp.hyp2f1(*[v.astype(np.float64) for v in f32])
    for got in (fsp.hyp2f1(*f32), fgrad.jit(fsp.hyp2f1)(*f32)):
        assert got.dtype == np.float32 and np.max(_rel(got, want)) < 2e-4    # JAX: 4.8e-5


def test_hyp2f1_jax_domain_and_transformations():
    f = fsp.hyp2f1
    with x64():
        # JAX 0.10.2's values: inf for x > 1 and at c = 0 or a negative integer (SciPy 1.875 for
        # (-3, 2, -5, .5)), the divergent series for x < -1 (SciPy 0.4507), Gauss's sum at x = 1
        cases = [((1., 2., 3., 1.5), np.inf), ((1., 2., 3., -2.), 2.4091144741934595e+72),
                 ((1., 2., 4.5, 1.), 2.333333333333333), ((1., 2., 3., 1.), np.inf),
                 ((1., 2., 0., .5), np.inf), ((1., 2., -2., .5), np.inf),
                 ((-3., 2., 1.5, .5), -0.028571428571428414), ((-3., 2., -5., .5), np.inf),
                 ((1., 2., 5., .95), 1.8482018624247785), ((1., 2., 3., .95), 4.533478722557308),
                 ((1.5, 2., 3.5, .95), 6.571177030764363), ((.3, .6, 1.2, .99), 1.5046290109258584)]
        for args, want in cases:
            np.testing.assert_allclose(float(f(*args)), want, rtol=1e-12, err_msg=str(args))
        grads = [float(fgrad.grad(f, argnums=i)(1.5, 2.5, 3.7, 0.3)) for i in range(4)]
        np.testing.assert_allclose(grads, [0.33980212, 0.21148636, -0.14635928, 1.94609772], rtol=1e-7)
        h = 1e-6
        for i in range(4):
            up, down = [1.5, 2.5, 3.7, 0.3], [1.5, 2.5, 3.7, 0.3]
            up[i] += h
            down[i] -= h
            np.testing.assert_allclose(grads[i], (sp.hyp2f1(*up) - sp.hyp2f1(*down)) / (2 * h), rtol=1e-6)


def test_hypergeometric_vmap_matches_a_loop():
    a = np.array([0.5, 1.5, -2.0, 3.0], np.float32)
    x = np.array([0.1, -0.4, 0.95, 0.6], np.float32)
    batched = np.asarray(fgrad.vmap(lambda ai, xi: fsp.hyp2f1(ai, 1.2, 2.5, xi))(a, x))
    looped = [float(fsp.hyp2f1(ai, 1.2, 2.5, xi)) for ai, xi in zip(a, x)]
    np.testing.assert_allclose(batched, looped, rtol=1e-6)
    batched = np.asarray(fgrad.vmap(lambda xi: fsp.hyp1f1(0.7, 1.9, xi))(x * 10))
    np.testing.assert_allclose(batched, [float(fsp.hyp1f1(0.7, 1.9, xi)) for xi in x * 10], rtol=1e-6)


# --- bessel_jn -----------------------------------------------------------------------------------

def test_bessel_jn_matches_scipy_in_float64():
    z = np.concatenate([np.linspace(0.01, 20, 200), -np.linspace(0.01, 10, 30)])
    want = np.stack([sp.jv(k, z) for k in range(6)])
    with x64():
        for got in (fsp.bessel_jn(z, v=5), fgrad.jit(lambda t: fsp.bessel_jn(t, v=5))(z)):
            assert got.shape == (6, z.size) and got.dtype == np.float64
            assert np.max(np.abs(np.asarray(got) - want)) < 2e-15            # JAX: 4.0e-16
        # JAX 0.10.2's values
        np.testing.assert_allclose(np.asarray(fsp.bessel_jn(np.array([0.5, 3.0, 12.0]), v=3)),
                                   [[0.9384698072408129, -0.26005195490193345, 0.0476893107968336],
                                    [0.24226845767487387, 0.3390589585259364, -0.22344710449062757],
                                    [0.03060402345868264, 0.4860912605858911, -0.08493049487860485],
                                    [0.002563729994587244, 0.30906272225525167, 0.19513693953109262]],
                                   rtol=1e-14)
        assert np.isnan(np.asarray(fsp.bessel_jn(0.0, v=2))).all()          # JAX: NaN at z = 0
        g = fgrad.grad(lambda t: fsp.bessel_jn(t, v=1)[0])(2.5)             # J0' = -J1
        np.testing.assert_allclose(float(g), -sp.j1(2.5), rtol=1e-10)


def test_bessel_jn_keeps_jax_float32_overflow_and_checks_arguments():
    # JAX 0.10.2 float32: the recurrence from 1e-16 overflows for small |z|: all NaN at 2.5 ...
    assert np.isnan(np.asarray(fsp.bessel_jn(np.float32(2.5), v=2))).all()
    # ... and fewer iterations avoid it (JAX: bessel_jn(2., v=0, n_iter=5) = [0.22444183] in x64)
    np.testing.assert_allclose(np.asarray(fsp.bessel_jn(np.float32(2.), v=0, n_iter=5)), [0.22444183], rtol=1e-5)
    assert fsp.bessel_jn(2, v=1).dtype == np.float32
    with pytest.raises(TypeError, match="v must be a Python int"):
        fsp.bessel_jn(1.0, v=1.5)
    with pytest.raises(ValueError, match="complex"):
        fsp.bessel_jn(1j, v=1)


# --- sph_harm_y ----------------------------------------------------------------------------------

def _harmonic_points(rng, count, top):
    n = rng.integers(0, top, count)
    m = np.array([rng.integers(-k, k + 1) for k in n])
    return n, m, rng.uniform(0, np.pi, count), rng.uniform(0, 2 * np.pi, count)


def test_sph_harm_y_matches_scipy():
    rng = np.random.default_rng(2)
    n, m, theta, phi = _harmonic_points(rng, 120, 8)
    want = sp.sph_harm_y(n, m, theta, phi)
    t32, p32 = theta.astype(np.float32), phi.astype(np.float32)
    for got in (fsp.sph_harm_y(n, m, t32, p32),
                fgrad.jit(fsp.sph_harm_y, static_argnames="n_max")(n, m, t32, p32, n_max=7)):
        assert got.dtype == np.complex64 and np.max(np.abs(np.asarray(got) - want)) < 3e-6   # JAX 9.1e-7
    with x64():
        n, m, theta, phi = _harmonic_points(rng, 80, 40)
        got = fsp.sph_harm_y(n, m, theta, phi)
        assert got.dtype == np.complex128
        assert np.max(np.abs(np.asarray(got) - sp.sph_harm_y(n, m, theta, phi))) < 1e-13    # JAX 5e-15


def test_sph_harm_y_jax_conventions():
    # n above n_max is clipped to n_max (JAX: Y_5^1 with n_max=3 is Y_3^1 = -0.42197064-0.13053082j)
    got = complex(fsp.sph_harm_y(np.array([5]), np.array([1]), np.array([0.5]), np.array([0.3]), n_max=3)[0])
    np.testing.assert_allclose(got, sp.sph_harm_y(3, 1, 0.5, 0.3), rtol=1e-6)
    # a scalar theta becomes 1-D; |m| > n gives SciPy's 0 (JAX's value there is undefined garbage)
    got = fsp.sph_harm_y(np.array([2, 3]), np.array([3, -4]), 0.5, 0.3)
    assert got.shape == (2,) and np.all(np.asarray(got) == 0)
    with pytest.raises(NotImplementedError, match="diff_n"):
        fsp.sph_harm_y(np.array([1]), np.array([0]), 0.7, 0.1, diff_n=1)
    np.testing.assert_allclose(np.asarray(fsp.sph_harm_y(np.array([1]), np.array([0]), 0.0, 0.0, diff_n=0)),
                               [np.sqrt(3 / (4 * np.pi))], rtol=1e-6)
    # d/dtheta Re Y_2^1 at theta = 0.5, phi = 0.3: JAX 0.10.2 gives -0.3987666
    g = fgrad.grad(lambda t: fnp.real(fsp.sph_harm_y(np.array([2]), np.array([1]), t, np.array([0.3]))).sum())
    np.testing.assert_allclose(np.asarray(g(np.array([0.5], np.float32))), [-0.3987666], rtol=1e-5)
    batched = fgrad.vmap(lambda t: fsp.sph_harm_y(np.array([3]), np.array([-2]), t, np.array([1.1]), n_max=3))
    thetas = np.array([[0.2], [1.0], [2.9]], np.float32)
    np.testing.assert_allclose(np.asarray(batched(thetas))[:, 0], sp.sph_harm_y(3, -2, thetas[:, 0], 1.1), atol=2e-6)
