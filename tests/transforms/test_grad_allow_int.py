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


# --- float0 tangents and cotangents in jvp, vjp and through jit (JAX 0.10's behaviour) -------------

F0 = fgrad.dtypes.float0


def test_jvp_takes_float0_tangents_for_integer_and_bool_primals():
    f = lambda x, i, b: (x * i, i * 2, fnp.where(b, x, 0.0))
    primals = (fnp.ones(2), fnp.arange(2), fnp.array([True, False]))
    tangents = (fnp.full((2,), 3.0), np.zeros((2,), F0), np.zeros((2,), F0))
    out, tan = fgrad.jvp(f, primals, tangents)
    np.testing.assert_array_equal(tan[0], [0.0, 3.0])                   # d(x*i) = i dx
    np.testing.assert_array_equal(tan[2], [3.0, 0.0])
    assert tan[1].dtype == F0 and tan[1].shape == (2,)                  # an integer output: float0
    _, (t_bool,) = fgrad.jvp(lambda x: (x > 0,), (fnp.ones(3),), (fnp.ones(3),))
    assert t_bool.dtype == F0 and t_bool.shape == (3,)


@pytest.mark.parametrize("primal,tangent,match", [
    (1.0, 1, "float32 primal must have dtype float32, got int32"),
    (1, 1, "int32 primal must have dtype float0, got int32"),
    (1.0, np.zeros((), F0), "float32 primal must have dtype float32, got float0"),
    (fnp.ones(2), fnp.ones(2, fnp.float16), "got float16"),
])
def test_jvp_rejects_tangent_dtypes_as_jax_does(primal, tangent, match):
    with pytest.raises(TypeError, match=match):
        fgrad.jvp(lambda x: x * 2, (primal,), (tangent,))


def test_jvp_checks_float0_tangent_shapes():
    with pytest.raises(ValueError, match="different primal and tangent shapes"):
        fgrad.jvp(lambda i: i * 2, (fnp.arange(2),), (np.zeros(3, F0),))


def test_vjp_gives_float0_for_integer_inputs_and_takes_float0_cotangents():
    _, g = fgrad.vjp(lambda x, i: (x * i, i), 1.5, 2)
    for ct in [(1.0, np.zeros((), F0)), (1.0, 3)]:           # JAX takes either for an int output
        dx, di = g(ct)
        assert float(dx) == 2.0 and di.dtype == F0 and di.shape == ()
    with pytest.raises(ValueError, match="float0 cotangent for an output of type f32"):
        g((np.zeros((), F0), 3))


def test_float0_outputs_pass_through_jit():
    step = fgrad.jit(fgrad.grad(lambda x, n: x * n, argnums=(0, 1), allow_int=True))
    for _ in range(2):                                      # traced, then cached
        dx, dn = step(2.0, 3)
        assert float(dx) == 3.0 and dn.dtype == F0 and dn.shape == ()
    jvp_in_jit = fgrad.jit(lambda x, i: fgrad.jvp(lambda x, i: (x * i, i), (x, i),
                                                  (fnp.ones_like(x), np.zeros(i.shape, F0))))
    (y, k), (ty, tk) = jvp_in_jit(fnp.ones(2), fnp.arange(2))
    np.testing.assert_array_equal(ty, [0.0, 1.0])
    assert tk.dtype == F0 and tk.shape == (2,)
    only = fgrad.jit(lambda i: np.zeros(i.shape, F0))(fnp.arange(4))
    assert only.dtype == F0 and only.shape == (4,)


def test_dtypes_itemsize_bits_and_scalar_type_of():
    # values recorded from jax.dtypes 0.10
    d = fgrad.dtypes
    assert d.finfo is fnp.finfo and d.iinfo is fnp.iinfo
    assert [d.itemsize_bits(t) for t in (fnp.bfloat16, fnp.bool_, np.int8, np.float64, np.complex64)] == \
        [16, 8, 8, 64, 64]
    with pytest.raises(ValueError, match="unexpected input"):
        d.itemsize_bits(d.float0)
    assert [d.scalar_type_of(v) for v in (1.0, True, 3, 1j)] == [float, bool, int, complex]
    assert [d.scalar_type_of(fnp.ones(2, t)) for t in (fnp.int8, fnp.bfloat16, fnp.bool_, fnp.uint32)] == \
        [int, float, bool, int]
