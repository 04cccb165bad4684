"""fgrad.scipy.special.spence against scipy.special.spence (float32 and float64, hypothesis),
JAX 0.10.2's recorded float32 values, its corners (x < 0 gives NaN, as JAX), jit, vmap and the
derivative log(x) / (1 - x)."""
import numpy as np
import pytest
import scipy.special as sp
from hypothesis import given, settings, strategies as st

import fgrad
from fgrad import numpy as fnp
from fgrad.scipy import special as fsp

pytestmark = [pytest.mark.filterwarnings("error::fgrad.ReferencePathWarning"),
              pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning"),
              pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")]

positive = st.one_of(st.floats(0, 3), st.floats(0, 1e8), st.floats(1e-30, 1e-3))


@settings(max_examples=60, deadline=None)
@given(x=st.lists(positive, min_size=1, max_size=8))
def test_float64_matches_scipy(x):
    x = np.array(x, np.float64)
    with fgrad.config.override(enable_x64=True):
        got = np.asarray(fsp.spence(fnp.asarray(x)))
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, sp.spence(x), rtol=1e-13, atol=1e-15)


@settings(max_examples=60, deadline=None)
@given(x=st.lists(positive.map(np.float32), min_size=1, max_size=8))
def test_float32_matches_scipy_eager_and_jit(x):
    x = np.array(x, np.float32)
    want = sp.spence(x.astype(np.float64))
    for got in (fsp.spence(x), fgrad.jit(fsp.spence)(x)):
        assert got.dtype == np.float32
        np.testing.assert_allclose(np.asarray(got), want, rtol=4e-6, atol=4e-7)


def test_corners_and_jax_recorded_values():
    x = np.array([-1., 0., 1e-8, 0.1, 0.4999, 0.5, 0.7, 1., 1.2, 1.5, 1.6, 2., 2.5, 10., 1e6, np.inf, np.nan,
                  -np.inf, -0.], np.float32)
    # JAX 0.10.2 (float32); x < 0, inf and NaN give NaN; spence(-0.) = spence(0) = pi**2 / 6
    want = [np.nan, 1.644934058189392, 1.644934058189392, 1.2997146844863892, 0.5823795795440674,
            0.5822403430938721, 0.3261295557022095, 0.0, -0.19080018997192383, -0.4484141767024994,
            -0.5281072854995728, -0.8224668502807617, -1.1473808288574219, -3.9506640434265137,
            -97.07908630371094, np.nan, np.nan, np.nan, 1.644934058189392]
    np.testing.assert_allclose(np.asarray(fsp.spence(x)), np.array(want, np.float32), rtol=1e-6, equal_nan=True)
    assert np.isnan(sp.spence(np.float64(-1.0)))          # SciPy agrees for real x < 0


def test_derivative_is_log_x_over_one_minus_x():
    x = np.array([0.1, 0.5, 0.7, 1.2, 1.6, 2.5, 10.], np.float32)
    got = fgrad.vmap(fgrad.grad(fsp.spence))(x)
    # JAX 0.10.2 agrees except at 1.2 and 1.6, where its piecewise branches make the gradient NaN
    np.testing.assert_allclose(np.asarray(got), np.log(x) / (1 - x), rtol=2e-5)
    with fgrad.config.override(enable_x64=True):
        for x0 in (0.05, 0.3, 0.9, 1.1, 1.7, 3.0, 40.0):
            g = float(fgrad.grad(fsp.spence)(np.float64(x0)))
            np.testing.assert_allclose(g, np.log(x0) / (1 - x0), rtol=1e-11)
    g = np.asarray(fgrad.grad(lambda v: fsp.spence(v).sum())(np.array([-1., 0.5], np.float32)))
    assert g[0] == 0 and np.isfinite(g[1])                 # the NaN branch passes no NaN on


def test_rejects_other_dtypes_as_jax():
    with pytest.raises(TypeError, match="float32 or float64"):
        fsp.spence(np.array([1, 2], np.int32))
    with pytest.raises(TypeError, match="float32 or float64"):
        fsp.spence(np.float16(0.5))
