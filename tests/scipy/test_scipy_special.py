"""fgrad.scipy.special against JAX 0.10.2's jax.scipy.special (x64), values written as constants."""
import math

import numpy as np

import fgrad
from fgrad import numpy as fnp
from fgrad.scipy import special as fsp


def test_values_match_jax():
    with fgrad.config.override(enable_x64=True):
        assert float(fsp.xlogy(0.0, 0.0)) == 0.0
        assert math.isnan(float(fsp.xlogy(0.0, math.nan)))
        assert float(fsp.xlog1py(0.0, -1.0)) == 0.0
        np.testing.assert_allclose(float(fsp.xlogy(2.0, 3.0)), 2.1972245773362196, rtol=1e-15)
        np.testing.assert_allclose(float(fsp.logit(0.25)), -1.0986122886681098, rtol=1e-15)
        np.testing.assert_allclose(float(fsp.expit(0.3)), 0.574442516811659, rtol=1e-15)
        np.testing.assert_allclose(float(fsp.logsumexp(fnp.arange(6.0).reshape(2, 3))), 5.456193316018123,
                                   rtol=1e-15)
        np.testing.assert_array_equal(np.asarray(fsp.logsumexp(fnp.zeros((0, 2)), axis=0)), [-np.inf, -np.inf])
        np.testing.assert_allclose(float(fsp.erf(0.3)), 0.3286267594591274, rtol=1e-15)
        np.testing.assert_allclose(float(fsp.erfc(5.0)), 1.5374597944280353e-12, rtol=1e-14)
        assert fsp.erf(1).dtype == fnp.float64     # ints promote to the default float


def test_derivatives_match_jax():
    with fgrad.config.override(enable_x64=True):
        assert [float(v) for v in fgrad.grad(fsp.xlogy, (0, 1))(0.0, 1.0)] == [0.0, 0.0]
        np.testing.assert_allclose([float(v) for v in fgrad.grad(fsp.xlog1py, (0, 1))(2.0, 1.0)],
                                   [0.6931471805599453, 1.0], rtol=1e-15)
        np.testing.assert_allclose(float(fgrad.grad(fsp.logit)(0.25)), 5.333333333333333, rtol=1e-15)
        np.testing.assert_allclose(float(fgrad.jit(fgrad.grad(fsp.erf))(0.0)), 2 / math.sqrt(math.pi), rtol=1e-15)
