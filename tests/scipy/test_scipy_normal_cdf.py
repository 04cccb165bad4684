"""ndtr, log_ndtr, ndtri against SciPy's values (recorded once), far into the tails, with
gradients, jit and vmap."""
from __future__ import annotations

import numpy as np
import pytest

import fgrad
import fgrad.numpy as fnp
import fgrad.scipy.special as fsp
from fgrad.config import config

X = [-300.0, -40.0, -20.5, -19.9, -10.5, -5.0, -1.0, 0.0, 0.5, 3.0, 4.9, 7.9, 8.1, 30.0]
NDTR = [0.0, 0.0, 1.0764673258790346e-93, 2.034643208782624e-88, 4.319006317809202e-26, 2.866515718791933e-07,
        0.15865525393145707, 0.5, 0.6914624612740131, 0.9986501019683699, 0.9999995208167234,
        0.9999999999999986, 0.9999999999999998, 1.0]
LOG_NDTR = [-45006.62273211866, -804.6084420137539, -214.06672896326387, -201.91716770733265, -58.40418706107325,
            -15.064998393988727, -1.8410216450092634, -0.6931471805599453, -0.36894641528865635,
            -0.0013508099647481925, -4.791833913986615e-07, -1.394517146659262e-15, -2.7479593923982217e-16,
            -4.906713927147908e-198]
P = [1e-300, 1e-100, 1e-20, 1e-05, 0.01, 0.3, 0.5, 0.7, 0.99, 0.9999999999]
NDTRI = [-37.0470962993612, -21.273453560965322, -9.262340089798409, -4.264890793922825, -2.3263478740408408,
         -0.5244005127080409, 0.0, 0.5244005127080407, 2.3263478740408408, 6.361340889697422]


@pytest.fixture
def x64():
    with config.override(enable_x64=True):
        yield


def _rel_err(got, want, dtype):
    got, want = np.asarray(got, np.float64), np.asarray(want, dtype).astype(np.float64)
    return np.abs(got - want) / np.maximum(np.abs(want), np.finfo(dtype).tiny)


@pytest.mark.parametrize("fn, want", [(fsp.ndtr, NDTR), (fsp.log_ndtr, LOG_NDTR)])
def test_float64_tails(x64, fn, want):
    got = fn(fnp.asarray(np.array(X)))
    assert got.dtype == np.float64
    assert _rel_err(got, want, np.float64).max() < 1e-10
    np.testing.assert_allclose(np.asarray(fgrad.jit(fn)(np.array(X))), np.asarray(got), rtol=1e-14)


@pytest.mark.parametrize("fn, want", [(fsp.ndtr, NDTR), (fsp.log_ndtr, LOG_NDTR)])
def test_float32_tails(fn, want):
    got = fn(np.array(X, np.float32))
    assert got.dtype == np.float32
    assert _rel_err(got, want, np.float32).max() < 1e-5


def test_ndtri_inverts_ndtr_to_the_last_digits(x64):
    got = fsp.ndtri(np.array(P))
    assert _rel_err(got[np.array(NDTRI) != 0], np.array(NDTRI)[np.array(NDTRI) != 0], np.float64).max() < 1e-12
    assert float(got[P.index(0.5)]) == 0.0
    p32 = np.array([1e-37, 1e-20, 1e-5, 0.01, 0.3, 0.9, 0.999], np.float32)
    back = np.asarray(fsp.ndtr(fsp.ndtri(p32)), np.float64)
    assert (np.abs(back - p32) / p32).max() < 1e-5


def test_special_values():
    assert np.asarray(fsp.ndtr(np.array([-np.inf, np.inf], np.float32))).tolist() == [0.0, 1.0]
    assert np.asarray(fsp.log_ndtr(np.array([np.inf], np.float32))).tolist() == [0.0]
    assert np.isneginf(np.asarray(fsp.log_ndtr(np.array([-np.inf], np.float32)))).all()
    edges = np.asarray(fsp.ndtri(np.array([0.0, 1.0, -0.5, 1.5, np.nan], np.float32)))
    assert np.isneginf(edges[0]) and np.isposinf(edges[1]) and np.isnan(edges[2:]).all()


def test_gradients_are_finite_and_exact_in_the_tails(x64):
    x = np.array([-40.0, -15.0, -3.0, 0.0, 3.0, 6.0, 20.0])
    grad = np.asarray(fgrad.grad(lambda v: fsp.log_ndtr(v).sum())(x))
    # d/dx log Phi(x) = phi(x) / Phi(x) = exp(-x^2/2 - log sqrt(2 pi) - log Phi(x)); about -x far left
    assert np.isfinite(grad).all()
    at_minus_40 = np.exp(-800.0 - 0.5 * np.log(2 * np.pi) - LOG_NDTR[X.index(-40.0)])
    np.testing.assert_allclose(grad[0], at_minus_40, rtol=1e-10)
    mid = np.array([-3.0, 0.0, 3.0])
    from math import erfc
    expected = [np.exp(-v * v / 2) / np.sqrt(2 * np.pi) / (0.5 * erfc(-v / np.sqrt(2))) for v in mid]
    np.testing.assert_allclose(grad[2:5], expected, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(fgrad.grad(lambda v: fsp.ndtr(v).sum())(mid)),
                               np.exp(-mid * mid / 2) / np.sqrt(2 * np.pi), rtol=1e-12)


def test_vmap_matches_the_loop():
    xs = np.linspace(-12, 9, 12, dtype=np.float32).reshape(3, 4)
    mapped = np.asarray(fgrad.vmap(fsp.log_ndtr)(xs))
    looped = np.stack([np.asarray(fsp.log_ndtr(row)) for row in xs])
    np.testing.assert_array_equal(mapped, looped)
