"""fgrad.numpy polynomials, unwrap and windows (fgrad/numpy/_polynomial.py) vs NumPy (JAX's own
answers are in test_jax_recorded_breadth.py); jit (native path asserted) vs eager, grad vs
finite differences, vmap vs a loop."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import fgrad
from fgrad import numpy as fnp
from fgrad.compile import pipeline

from np_helpers import arrays, assert_matches
from tests.util import check_grads, check_jit_matches_eager, check_vmap, natively

pytestmark = pytest.mark.filterwarnings("error::fgrad.ReferencePathWarning")

coefficients = st.integers(1, 5).flatmap(lambda n: arrays(np.float32, (n,), -3, 3))




@given(coefficients, coefficients, arrays(np.float32, (4,), -2, 2))
def test_polynomial_arithmetic_matches_numpy(p, q, x):
    assert_matches(fnp.polyval(p, x), np.polyval(p, x), rtol=1e-4, atol=1e-4)
    assert_matches(fnp.polyadd(p, q), np.polyadd(p, q))
    assert_matches(fnp.polysub(p, q), np.polysub(p, q))
    want = np.convolve(p, q)            # np.polymul trims leading zeros; JAX keeps them
    assert_matches(fnp.polymul(p, q), want, rtol=1e-5, atol=1e-5)
    assert_matches(fnp.polyder(p), np.polyder(p).astype(np.float32) if len(p) > 1 else np.zeros(0, np.float32))
    assert_matches(fnp.polyint(p, 2, k=[1.0, -2.0]), np.polyint(p, 2, k=[1.0, -2.0]).astype(np.float32), rtol=1e-5)


@given(arrays(np.float32, (5,), -3, 3), st.integers(1, 3), arrays(np.float32, (4,), -2, 2))
def test_polydiv_inverts_polymul(u, n, roots):
    v = np.poly(roots[:n]).astype(np.float32)
    quotient, remainder = fnp.polydiv(u, v)
    want_q, want_r = np.polydiv(u.astype(np.float64), v.astype(np.float64))
    assert_matches(quotient, want_q.astype(np.float32), rtol=1e-3, atol=1e-3)
    r = np.asarray(remainder)
    assert r.shape == u.shape and np.allclose(r[: len(u) - len(want_r)], 0, atol=1e-3)
    np.testing.assert_allclose(r[len(u) - len(want_r):], want_r, rtol=1e-3, atol=1e-3)
    assert_matches(fnp.poly(roots[:n]), v, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("deg", [0, 1, 3, 6])
def test_polyfit_matches_numpy(deg):
    rng = np.random.default_rng(deg)
    x = np.linspace(-2, 3, 20)
    y = np.polyval([0.5, -1, 2, 3], x) + rng.normal(0, 0.1, 20)
    ys, w = np.stack([y, 2 * y - 1], 1), rng.uniform(0.5, 2, 20)
    with fgrad.config.override(enable_x64=True):
        assert_matches(fnp.polyfit(x, y, deg), np.polyfit(x, y, deg), rtol=1e-12, atol=1e-12)
        assert_matches(fnp.polyfit(x, ys, deg, w=w), np.polyfit(x, ys, deg, w=w), rtol=1e-12, atol=1e-12)
    assert_matches(fnp.polyfit(np.float32(x), np.float32(y), deg), np.polyfit(x, y, deg).astype(np.float32),
                   rtol=1e-4, atol=1e-5)
    with pytest.raises(NotImplementedError, match="full=True"):
        fnp.polyfit(x, y, deg, full=True)
    with pytest.raises(ValueError, match="cannot determine"):
        fnp.polyfit(x[:2], y[:2], 2)


def test_poly_and_polyint_errors():
    with pytest.raises(ValueError, match="1-d roots or a square matrix"):
        fnp.poly(np.ones((2, 3)))
    with pytest.raises(ValueError, match="k must be"):
        fnp.polyint(np.ones(3), 2, k=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="non-negative"):
        fnp.polyder(np.ones(3), -1)


@pytest.mark.parametrize("axis", [0, -1])
@pytest.mark.parametrize("discont", [None, 4.0])
def test_unwrap_matches_numpy(axis, discont):
    phase = np.cumsum(np.random.default_rng(3).uniform(-4, 4, (3, 9)), axis=1).astype(np.float32)
    wrapped = np.mod(phase + np.pi, 2 * np.pi) - np.pi
    assert_matches(fnp.unwrap(wrapped, discont=discont, axis=axis),
                   np.unwrap(wrapped, discont=discont, axis=axis), rtol=1e-5, atol=1e-4)
    assert_matches(fnp.unwrap(wrapped, period=5.0, axis=axis), np.unwrap(wrapped, period=5.0, axis=axis),
                   rtol=1e-5, atol=1e-4)
    assert_matches(fnp.unwrap(np.array([0, 5, 9, 2, 14]), period=8), np.unwrap([0, 5, 9, 2, 14], period=8))


@pytest.mark.parametrize("M", [0, 1, 2, 5, 8, 33])
def test_windows_match_numpy(M):
    for name in ("bartlett", "blackman", "hamming", "hanning"):
        assert_matches(getattr(fnp, name)(M), getattr(np, name)(M).astype(np.float32), atol=1e-6)
    for beta in (0.0, 5.0, 14.0):
        assert_matches(fnp.kaiser(M, beta), np.kaiser(M, beta).astype(np.float32), rtol=2e-5, atol=1e-6)


P = np.array([2.0, -5.0, 3.0, -1.0], np.float32)
Q = np.array([4.0, 1.0], np.float32)

TRANSFORM_CASES = {
    "poly": (lambda r: fnp.poly(r), (np.array([1.0, -2.0, 0.5], np.float32),)),
    "polyadd/polysub/polymul": (lambda p, q: fnp.polyadd(fnp.polymul(p, q), fnp.polysub(q, p)), (P, Q)),
    "polydiv": (lambda p, q: fnp.polydiv(p, q), (P, Q)),
    "polyval/polyder/polyint": (lambda p, x: fnp.polyval(fnp.polyder(p), x) + fnp.polyval(fnp.polyint(p, k=1.0), x),
                                (P, np.linspace(-1, 1, 5).astype(np.float32))),
    "polyfit": (lambda x, y: fnp.polyfit(x, y, 2, w=x + 2.0), (np.linspace(-1, 1, 7, dtype=np.float32),
                                                             np.float32(np.random.default_rng(6).normal(size=(7, 2))))),
    "unwrap": (lambda x: fnp.unwrap(x, axis=0), (np.float32(np.random.default_rng(4).uniform(-3, 3, (6, 2))),)),
    "kaiser/windows": (lambda beta: fnp.kaiser(7, beta) + fnp.hanning(7) + fnp.bartlett(7), (np.float32(6.0),)),
}


@pytest.mark.parametrize("name", sorted(TRANSFORM_CASES))
def test_jit_is_native_and_matches_eager(name):
    f, args = TRANSFORM_CASES[name]
    check_jit_matches_eager(f, args)


GRAD_CASES = {
    "poly": (lambda r: fnp.poly(r), (np.array([1.0, -2.0, 0.5]),)),
    "polymul/polydiv": (lambda p, q: fnp.polymul(p, q) + fnp.concatenate(fnp.polydiv(p, q))[:5], (np.float64(P), np.float64(Q))),
    "polyval in p and x": (lambda p, x: fnp.polyval(p, x), (np.float64(P), np.linspace(-1, 1, 4))),
    "polyder/polyint": (lambda p: fnp.polyint(fnp.polyder(p), k=0.5) * 2.0, (np.float64(P),)),
    "unwrap": (lambda x: fnp.unwrap(x), (np.array([0.1, 2.9, -2.9, 0.3, 3.0]),)),
    "polyfit in x and y": (lambda x, y: fnp.polyfit(x, y, 2), (np.linspace(-1, 1, 6), np.cos(np.arange(6.0)))),
    "kaiser beta": (lambda b: fnp.kaiser(6, b), (np.array(4.0),)),
}


@pytest.mark.parametrize("name", sorted(GRAD_CASES))
def test_grad_matches_finite_differences(name):
    f, args = GRAD_CASES[name]
    check_grads(f, args, order=1)


def test_vmap_matches_a_loop():
    roots = np.float32(np.random.default_rng(5).uniform(-1, 1, (4, 3)))
    check_vmap(fnp.poly, (roots,), rtol=1e-5, atol=1e-5)
    check_vmap(lambda p, x: fnp.polyval(p, x), (roots, roots[:, 0]), in_axes=(0, 0), rtol=1e-5, atol=1e-5)
    check_vmap(lambda p: fnp.polydiv(p, Q)[0], (roots,), rtol=1e-5, atol=1e-5)
    check_vmap(lambda b: fnp.kaiser(5, b), (np.float32([0.5, 3.0, 8.0]),), rtol=1e-5, atol=1e-6)
    check_vmap(lambda x: fnp.unwrap(x), (roots * 4,), in_axes=(1,), rtol=1e-5, atol=1e-5)
    check_vmap(lambda y: fnp.polyfit(np.linspace(0, 1, 3, dtype=np.float32), y, 1), (roots,), rtol=1e-4, atol=1e-5)
