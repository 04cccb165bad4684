"""``fgrad.linear_transpose`` against the explicit transposed matrix, vjp, and JAX 0.10's answers."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fgrad
from fgrad import numpy as fnp


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 5), st.integers(1, 5), st.integers(0, 2**16))
def test_transpose_of_a_matrix_product_is_the_transposed_matrix(m, n, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, n)).astype(np.float32)
    ct = rng.standard_normal(m).astype(np.float32)
    (got,) = fgrad.linear_transpose(lambda x: a @ x, np.zeros(n, np.float32))(ct)
    np.testing.assert_allclose(np.asarray(got), a.T @ ct, rtol=1e-5, atol=1e-5)
    _, pullback = fgrad.vjp(lambda x: a @ x, np.ones(n, np.float32))
    np.testing.assert_allclose(np.asarray(got), np.asarray(pullback(ct)[0]), rtol=1e-6, atol=1e-6)


def test_pytrees_jit_and_jax_values():
    # JAX 0.10.2: linear_transpose(lambda x, y: (0.5 x - y, x.sum()), ones(3), ones(3))(([1, 2, 3], 10))
    f_t = fgrad.linear_transpose(lambda x, y: (0.5 * x - y, x.sum()), fnp.ones(3), fnp.ones(3))
    gx, gy = f_t((fnp.array([1.0, 2, 3]), 10.0))
    np.testing.assert_allclose(np.asarray(gx), [10.5, 11, 11.5])
    np.testing.assert_allclose(np.asarray(gy), [-1, -2, -3])
    np.testing.assert_allclose(np.asarray(fgrad.jit(fgrad.linear_transpose(fnp.cumsum, fnp.ones(4)))(fnp.ones(4))[0]),
                               [4, 3, 2, 1])
    (z,) = fgrad.linear_transpose(fnp.fft.fft, fnp.ones(4, fnp.complex64))(fnp.arange(4.0).astype(fnp.complex64))
    np.testing.assert_allclose(np.asarray(z), [6, -2 + 2j, -2, -2 - 2j], atol=1e-6)
    (unused,) = fgrad.linear_transpose(lambda x: fnp.zeros(2), fnp.ones(3))(fnp.ones(2))
    np.testing.assert_array_equal(np.asarray(unused), np.zeros(3))


def test_errors():
    with pytest.raises(TypeError, match="not linear"):
        fgrad.linear_transpose(lambda x: x * x, 1.0)(1.0)
    with pytest.raises(TypeError, match="float inputs"):
        fgrad.linear_transpose(lambda x: x, 1)
    f_t = fgrad.linear_transpose(lambda x: (x, x), fnp.ones(2))
    with pytest.raises(ValueError, match="output's structure"):
        f_t(fnp.ones(2))
    with pytest.raises(ValueError, match="cotangent of shape"):
        f_t((fnp.ones(3), fnp.ones(2)))
