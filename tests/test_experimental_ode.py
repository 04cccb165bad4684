"""fgrad.experimental.ode.odeint against closed forms (exponential decay, the harmonic oscillator),
scipy.integrate.solve_ivp, and values recorded from JAX 0.10.2's odeint (tests/data/jax_ode.npz:
float32 runs, and float64 runs ending in "64", which the same algorithm reproduces to ~1e-12);
adjoint gradients against closed forms, finite differences and JAX's; jit and vmap."""
from __future__ import annotations

import pathlib
import warnings

import numpy as np
import pytest
import scipy.integrate

import fgrad
from fgrad import numpy as fnp
from fgrad.experimental.ode import odeint
from tests.util import check_grads

pytestmark = pytest.mark.filterwarnings("error::fgrad.ReferencePathWarning")

JAX = np.load(pathlib.Path(__file__).parent / "data" / "jax_ode.npz")


def decay(y, t, k):
    return -k * y


def oscillator(state, t, w):
    return {"x": state["v"], "v": -w ** 2 * state["x"]}


def van_der_pol(y, t, mu):
    return fnp.stack([y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]])


def test_exponential_decay():
    t = fnp.linspace(0., 2., 5)
    ys = odeint(decay, 1.0, t, 2.0)
    assert ys.shape == (5,) and ys.dtype == np.float32
    np.testing.assert_allclose(np.asarray(ys), np.exp(-2 * np.linspace(0, 2, 5)), rtol=2e-6)
    np.testing.assert_allclose(np.asarray(ys), JAX["decay"], rtol=2e-6)


def test_harmonic_oscillator_pytree_state():
    t = np.linspace(0., 3., 7)
    ys = odeint(oscillator, {"x": fnp.array([1.0, 0.5]), "v": fnp.zeros(2)}, fnp.asarray(t), 1.5)
    assert ys["x"].shape == (7, 2) and ys["v"].shape == (7, 2)
    np.testing.assert_allclose(np.asarray(ys["x"]), np.outer(np.cos(1.5 * t), [1.0, 0.5]), atol=5e-6)
    np.testing.assert_allclose(np.asarray(ys["v"]), np.outer(-1.5 * np.sin(1.5 * t), [1.0, 0.5]), atol=5e-6)
    np.testing.assert_allclose(np.asarray(ys["x"]), JAX["osc_x"], atol=5e-6)
    np.testing.assert_allclose(np.asarray(ys["v"]), JAX["osc_v"], atol=5e-6)


def test_nonlinear_system_against_scipy_and_jax_float64():
    with fgrad.config.override(enable_x64=True):
        t = np.linspace(0., 4., 5)
        ys = odeint(van_der_pol, fnp.array([2.0, 0.0]), fnp.asarray(t), 1.0)
        assert ys.dtype == np.float64
        np.testing.assert_allclose(np.asarray(ys), JAX["vdp_default64"], rtol=1e-10, atol=1e-12)
        ref = scipy.integrate.solve_ivp(lambda s, y: [y[1], (1 - y[0] ** 2) * y[1] - y[0]], (0., 4.), [2.0, 0.0],
                                        t_eval=t, rtol=1e-11, atol=1e-12, method="DOP853")
        np.testing.assert_allclose(np.asarray(ys), ref.y.T, rtol=1e-6, atol=1e-7)
        # loose tolerances and a truncated step budget: the step control itself must match JAX's
        loose = odeint(van_der_pol, fnp.array([2.0, 0.0]), fnp.linspace(0., 4., 9), 1.0, rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(np.asarray(loose), JAX["vdp_loose64"], rtol=1e-9, atol=1e-10)
        truncated = odeint(van_der_pol, fnp.array([2.0, 0.0]), fnp.linspace(0., 4., 5), 1.0, mxstep=3)
        np.testing.assert_allclose(np.asarray(truncated), JAX["vdp_mxstep64"], rtol=1e-6)


def test_tolerances_and_hmax_float32():
    loose = odeint(van_der_pol, fnp.array([2.0, 0.0]), fnp.linspace(0., 4., 9), 1.0, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(np.asarray(loose), JAX["vdp_loose"], atol=2e-3)   # float32 rounding, rtol 1e-3
    capped = odeint(van_der_pol, fnp.array([2.0, 0.0]), fnp.linspace(0., 4., 5), 1.0, rtol=1e-3, atol=1e-3,
                    hmax=0.05)
    np.testing.assert_allclose(np.asarray(capped), JAX["vdp_hmax"], atol=2e-5)


def test_gradients_match_jax():
    def loss(y0, ts, mu):
        return fnp.sum(odeint(van_der_pol, y0, ts, mu) ** 2)
    args = (fnp.array([2.0, 0.0]), fnp.linspace(0., 2., 4), 1.0)
    for f in (fgrad.grad(loss, argnums=(0, 1, 2)), fgrad.jit(fgrad.grad(loss, argnums=(0, 1, 2)))):
        gy, gt, gmu = f(*args)
        np.testing.assert_allclose(np.asarray(gy), JAX["vdp_grad_y0"], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(np.asarray(gt), JAX["vdp_grad_t"], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(np.asarray(gmu), JAX["vdp_grad_mu"], rtol=1e-4)


def test_gradients_closed_form_decay():
    """y(t) = y0 exp(-k (t - t0)): dy/dk = -(t - t0) y, dy/dy0 = exp(-k (t - t0)), dy/dt = -k y,
    dy/dt0 = k y; and the same through a value the right-hand side closes over."""
    with fgrad.config.override(enable_x64=True):
        y0, k, t0, t1 = 1.5, 0.7, 0.2, 1.3
        y = y0 * np.exp(-k * (t1 - t0))
        final = lambda y0, t, k: odeint(decay, y0, t, k)[-1]  # noqa: E731
        gy0, gt, gk = fgrad.grad(final, argnums=(0, 1, 2))(y0, fnp.array([t0, t1]), k)
        np.testing.assert_allclose([float(gy0), float(gk)], [y / y0, -(t1 - t0) * y], rtol=1e-7)
        np.testing.assert_allclose(np.asarray(gt), [k * y, -k * y], rtol=1e-7)
        closed = fgrad.grad(lambda k: odeint(lambda y, t: -k * y, y0, fnp.array([t0, t1]))[-1])(k)
        np.testing.assert_allclose(float(closed), -(t1 - t0) * y, rtol=1e-7)


def test_gradients_finite_differences():
    def f(x, v, w):
        out = odeint(oscillator, {"x": x, "v": v}, fnp.linspace(0., 1., 3), w)
        return out["x"] * out["v"]
    check_grads(f, (np.array([1.0, 0.3]), np.array([0.2, -0.4]), 1.3), order=1, modes=("rev",))


def test_jit_and_vmap():
    t = fnp.linspace(0., 4., 9)
    starts = np.array([[2.0, 0.0], [1.0, 0.5], [0.1, -1.0]], np.float32)
    jitted = fgrad.jit(lambda y0, mu: odeint(van_der_pol, y0, t, mu, rtol=1e-5, atol=1e-5))
    batched = fgrad.vmap(jitted, in_axes=(0, None))(starts, 1.0)
    for i in range(3):
        one = odeint(van_der_pol, starts[i], t, 1.0, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(batched[i]), np.asarray(one), rtol=1e-5, atol=1e-6)
    rates = np.array([0.5, 1.0, 2.0], np.float32)
    grads = fgrad.vmap(fgrad.grad(lambda k: odeint(decay, 1.0, fnp.array([0., 1.]), k)[-1]))(rates)
    np.testing.assert_allclose(np.asarray(grads), -np.exp(-rates), rtol=1e-5)


def test_single_time():
    np.testing.assert_array_equal(np.asarray(odeint(decay, fnp.ones(2), fnp.array([0.5]), 1.0)), np.ones((1, 2)))


# fgrad stages custom_vjp's forward-mode stand-in inside odeint's jit and raises when running it
# (after warning that it has no lowering); JAX raises the same TypeError while tracing
def test_forward_mode_raises_as_in_jax():
    with warnings.catch_warnings(), pytest.raises(TypeError, match="forward-mode"):
        warnings.simplefilter("ignore", fgrad.ReferencePathWarning)
        fgrad.jvp(lambda k: odeint(decay, 1.0, fnp.array([0., 1.]), k), (1.0,), (1.0,))


def test_errors_match_jax():
    with pytest.raises(TypeError, match=r"t must be an array of floats, but got \[0 1 2\]"):
        odeint(van_der_pol, fnp.ones(2), fnp.arange(3), 1.0)
    with pytest.raises(TypeError, match="The contents of odeint \\*args must be arrays or scalars, but got a."):
        odeint(van_der_pol, fnp.ones(2), fnp.linspace(0., 1., 3), "a")
