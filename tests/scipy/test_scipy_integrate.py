"""fgrad.scipy.integrate.trapezoid against scipy.integrate.trapezoid (float32, float64), JAX
0.10.2's recorded dtypes on integer and float16 input, jit (natively), grad vs finite
differences (in y and in x) and vmap vs a loop."""
from __future__ import annotations

import pathlib

import numpy as np
import pytest
import scipy.integrate

import fgrad
import fgrad.scipy.integrate as integrate
from fgrad import numpy as fnp
from tests.util import check_grads, check_jit_matches_eager, check_vmap

RECORDED = np.load(pathlib.Path(__file__).parent / "data" / "scipy_more_jax.npz")
RNG = np.random.default_rng(3)


def _sorted_points(shape, dtype):
    return np.cumsum(RNG.uniform(0.1, 1.0, shape), axis=-1).astype(dtype)


CASES = {
    "1d": lambda d: ((RNG.standard_normal(7).astype(d),), {}),
    "1d_dx": lambda d: ((RNG.standard_normal(5).astype(d),), {"dx": 0.25}),
    "1d_x": lambda d: ((RNG.standard_normal(6).astype(d), _sorted_points(6, d)), {}),
    "2d_axis0_x1d": lambda d: ((RNG.standard_normal((5, 3)).astype(d), _sorted_points(5, d)), {"axis": 0}),
    "2d_x2d": lambda d: ((RNG.standard_normal((3, 4)).astype(d), _sorted_points((3, 4), d)), {}),
    "3d_axis1_dx": lambda d: ((RNG.standard_normal((2, 4, 3)).astype(d),), {"dx": 1.5, "axis": 1}),
    "single_sample": lambda d: ((RNG.standard_normal((2, 1)).astype(d),), {}),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", list(CASES))
def test_matches_scipy(dtype, case):
    args, kwargs = CASES[case](dtype)
    with fgrad.config.override(enable_x64=dtype == np.float64):
        got = np.asarray(integrate.trapezoid(*args, **kwargs))
    want = scipy.integrate.trapezoid(*args, **kwargs)
    assert got.dtype == dtype and got.shape == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32 else 1e-13, atol=1e-6)


@pytest.mark.parametrize("key,call", [
    ("int", lambda y, h: integrate.trapezoid(y)),
    ("int_x", lambda y, h: integrate.trapezoid(y, np.array([0, 2, 5], np.int32))),
    ("half", lambda y, h: integrate.trapezoid(h, dx=0.5))])
def test_dtypes_and_values_are_jaxs(key, call):
    ints = np.arange(6, dtype=np.int32).reshape(2, 3)
    half = (np.arange(6, dtype=np.float16) / 3).reshape(2, 3)
    got, want = np.asarray(call(ints, half)), RECORDED[f"trapezoid/x32/{key}"]
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-3)


def test_jit_is_native_and_matches_eager():
    y, x = RNG.standard_normal((4, 6)).astype(np.float32), _sorted_points(6, np.float32)
    check_jit_matches_eager(lambda y, x: integrate.trapezoid(y, x), (fnp.asarray(y), fnp.asarray(x)))
    check_jit_matches_eager(lambda y: integrate.trapezoid(y, dx=0.3, axis=0), (fnp.asarray(y),))


def test_grad_matches_finite_differences():
    y, x = RNG.standard_normal((3, 5)), _sorted_points((3, 5), np.float64)
    check_grads(lambda y, x: integrate.trapezoid(y, x), (y, x), order=2)
    check_grads(lambda y: integrate.trapezoid(y, dx=0.5, axis=0), (y,), order=1)


def test_vmap_matches_a_loop():
    ys, x = RNG.standard_normal((4, 6)).astype(np.float32), _sorted_points(6, np.float32)
    check_vmap(lambda y, x: integrate.trapezoid(y, x), (ys, x), in_axes=(0, None))
    check_vmap(lambda y, x: integrate.trapezoid(y, x), (ys.T, ys.T * 0 + x[:, None]), in_axes=1)


def test_import_forms():
    import fgrad.scipy as fsp
    assert fsp.integrate.trapezoid is integrate.trapezoid
