"""``fgrad.pmap`` (JAX's pmap as shard over a one-axis mesh) on 4 virtual CPU devices, against
vmap and JAX 0.10's answers (recorded with --xla_force_host_platform_device_count=4)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fgrad
from fgrad import lax
from fgrad import numpy as fnp

D4 = fgrad.devices(4)
X = np.arange(8.0, dtype=np.float32).reshape(4, 2)


def test_collectives_axes_and_static_arguments_as_jax():
    np.testing.assert_array_equal(np.asarray(fgrad.pmap(lambda v: lax.psum(v, "i"), "i", devices=D4)(X)),
                                  np.tile([12.0, 16.0], (4, 1)))
    total, mean = fgrad.pmap(lambda v: (v.sum(), lax.pmean(v, "i")), "i", out_axes=(0, None), devices=D4)(X)
    np.testing.assert_array_equal(np.asarray(total), [1, 5, 9, 13])
    np.testing.assert_array_equal(np.asarray(mean), [3, 4])
    np.testing.assert_array_equal(np.asarray(fgrad.pmap(lambda v: v * 2, in_axes=1, out_axes=1, devices=D4)(X.T)),
                                  2 * X.T)
    np.testing.assert_array_equal(np.asarray(fgrad.pmap(lambda v, w: v * w, in_axes=(0, None), devices=D4)(X, 3.0)),
                                  3 * X)
    np.testing.assert_array_equal(
        np.asarray(fgrad.pmap(lambda v, n: v ** n, static_broadcasted_argnums=1, devices=D4)(X, 2)), X ** 2)
    np.testing.assert_array_equal(np.asarray(fgrad.pmap(lambda d: d["a"] + d["b"], devices=D4)({"a": X, "b": X})),
                                  2 * X)


def test_gradients_have_pmaps_semantics():
    # JAX's pmap has no replication typing: psum transposes to psum, so each device gets 4 * v_i
    grad = fgrad.pmap(fgrad.grad(lambda w, v: lax.psum(fnp.sum(w * v), "i")), "i", in_axes=(None, 0), devices=D4)
    np.testing.assert_array_equal(np.asarray(grad(np.ones(2, np.float32), X)), 4 * X)


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 4), st.integers(0, 2**16))
def test_pmap_equals_vmap(n, seed):
    x = np.random.default_rng(seed).standard_normal((n, 3)).astype(np.float32)
    f = lambda v: fnp.tanh(v) * lax.psum(v, "i") - lax.pmax(v, "i")   # noqa: E731
    np.testing.assert_allclose(np.asarray(fgrad.pmap(f, "i", devices=D4)(x)),
                               np.asarray(fgrad.vmap(f, axis_name="i")(x)), rtol=1e-6, atol=1e-6)


def test_errors_name_the_fix():
    with pytest.raises(ValueError, match="FGRAD_CPU_DEVICES=8"):
        fgrad.pmap(lambda v: v, devices=D4)(np.ones((8, 2)))
    with pytest.raises(ValueError, match="inconsistent sizes"):
        fgrad.pmap(lambda a, b: a + b, devices=D4)(np.ones((2, 1)), np.ones((3, 1)))
    with pytest.raises(ValueError, match="not an axis"):
        fgrad.pmap(lambda v: v, in_axes=2, devices=D4)(np.ones((2, 2)))
    with pytest.raises(TypeError, match="expects a function"):
        fgrad.pmap(3)
