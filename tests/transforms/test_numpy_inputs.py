"""NumPy float64 data passed straight into transforms: with x64 off it is narrowed exactly as
fgrad.numpy.asarray narrows it (JAX's behaviour), under every transform; grad of a function of a
float64 NumPy array used to fail with "mul: operands must have the same dtype, f32 vs f64"."""
import numpy as np
import pytest

import fgrad
from fgrad import lax
from fgrad import numpy as fnp

X = np.array([0.3, -1.2, 2.5])


def f(v):
    return (fnp.sin(v) * 2.0 + v * np.float64(0.5)).sum()


@pytest.mark.parametrize("x64", [False, True])
def test_every_transform_narrows_numpy_inputs_as_asarray_does(x64):
    want_dtype = np.float64 if x64 else np.float32
    with fgrad.config.override(enable_x64=x64):
        reference = fnp.asarray(X)
        assert reference.dtype == want_dtype
        results = {
            "eager": f(X), "jit": fgrad.jit(f)(X), "grad": fgrad.grad(f)(X),
            "jit(grad)": fgrad.jit(fgrad.grad(f))(X), "vmap": fgrad.vmap(lambda v: fnp.sin(v) * v)(X),
            "jvp": fgrad.jvp(f, (X,), (np.ones(3),))[1], "vjp": fgrad.vjp(f, X)[1](np.float64(1.0))[0],
            "hessian": fgrad.hessian(f)(X), "lax": lax.add(X, np.float64(1.0)),
            "grad scalar": fgrad.grad(lambda s: s * s * np.float64(3))(np.float64(2.0)),
        }
        for name, value in results.items():
            assert fnp.asarray(value).dtype == want_dtype, name
        np.testing.assert_allclose(np.asarray(results["grad"]), 2 * np.cos(X) + 0.5, rtol=1e-6)
        np.testing.assert_allclose(np.asarray(results["jit(grad)"]), np.asarray(results["grad"]), rtol=1e-6)
        np.testing.assert_allclose(float(results["grad scalar"]), 12.0)
        np.testing.assert_allclose(np.asarray(results["vmap"]), np.sin(X) * X, rtol=1e-6)
