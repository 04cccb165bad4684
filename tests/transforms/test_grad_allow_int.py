"""``grad(..., allow_int=True)`` and ``fgrad.dtypes``: integer and bool arguments get JAX's
float0 zeros as their gradient; float ones are differentiated as usual (vs finite differences)."""
from __future__ import annotations

import numpy as np
import pytest

import fgrad
from fgrad import numpy as fnp


def test_integer_arguments_get_float0_zeros():
    g = fgrad.grad(lambda x, n: x * n, argnums=(0, 1), allow_int=True)(2.0, fnp.array([3]).sum())
    assert float(g[0]) == 3.0
    assert isinstance(g[1], np.ndarray) and g[1].dtype == fgrad.dtypes.float0 and g[1].shape == ()
    value, g = fgrad.value_and_grad(lambda x: x.astype(fnp.float32) ** 2, allow_int=True)(fnp.array(3))
    assert float(value) == 9.0 and g.dtype == fgrad.dtypes.float0


def test_pytrees_mixing_floats_ints_and_bools():
    params = {"w": fnp.asarray([1.0, 2.0]), "k": fnp.asarray([2, 3]), "on": fnp.asarray(True)}
    f = lambda p: (p["w"] * p["k"]).sum() * p["on"].astype(fnp.float32)
    g = fgrad.grad(f, allow_int=True)(params)
    np.testing.assert_array_equal(np.asarray(g["w"]), [2.0, 3.0])
    assert g["k"].dtype == fgrad.dtypes.float0 and g["k"].shape == (2,)
    assert g["on"].dtype == fgrad.dtypes.float0
    eps = 1e-3
    fd = (f({**params, "w": params["w"] + fnp.asarray([eps, 0.0])}) - f(params)) / eps
    np.testing.assert_allclose(float(fd), float(g["w"][0]), rtol=1e-3)


def test_without_allow_int_integers_are_still_an_error():
    with pytest.raises(TypeError, match="grad requires float inputs"):
        fgrad.grad(lambda n: n.astype(fnp.float32))(fnp.array(3))


def test_dtypes_module_has_jax_names():
    assert fgrad.dtypes.canonicalize_dtype(np.float64) == np.float32
    assert fgrad.dtypes.issubdtype(fgrad.dtypes.bfloat16, fnp.floating)
    assert fgrad.dtypes.result_type(np.int8, np.float16) == np.float16
