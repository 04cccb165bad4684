"""``lax.ragged_dot`` against a NumPy loop over the groups (and values recorded from JAX 0.10),
its gradients, jit and vmap; ``lax.platform_dependent``."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fgrad
from fgrad import lax
from fgrad import numpy as fnp
from tests.util import check_grads, natively


def ragged_dot_loop(lhs, rhs, sizes):
    out = np.zeros((lhs.shape[0], rhs.shape[2]), np.result_type(lhs, rhs))
    start = 0
    for g, size in enumerate(sizes):
        stop = min(start + max(int(size), 0), lhs.shape[0])
        out[start:stop] = lhs[start:stop] @ rhs[g]
        start = stop
    return out


def test_values_recorded_from_jax():
    lhs, rhs = np.arange(12.0, dtype=np.float32).reshape(6, 2), np.arange(24.0, dtype=np.float32).reshape(3, 2, 4)
    got = lax.ragged_dot(lhs, rhs, np.array([2, 1, 2], np.int32))
    np.testing.assert_array_equal(got, [[4, 5, 6, 7], [12, 17, 22, 27], [92, 101, 110, 119], [236, 249, 262, 275],
                                        [308, 325, 342, 359], [0, 0, 0, 0]])
    over = lax.ragged_dot(lhs, rhs, np.array([2, 3, 4], np.int32))      # groups past the rows: cut short
    np.testing.assert_array_equal(over[5], [380, 401, 422, 443])
    assert lax.ragged_dot(lhs.astype(fnp.bfloat16), rhs.astype(fnp.bfloat16), np.array([2, 1, 2], np.int32)).dtype \
        == fnp.bfloat16


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 9), st.integers(1, 4), st.integers(1, 5), st.integers(1, 4), st.integers(0, 2**16))
def test_matches_a_loop_over_groups(m, k, n, g, seed):
    rng = np.random.default_rng(seed)
    lhs = rng.standard_normal((m, k)).astype(np.float32)
    rhs = rng.standard_normal((g, k, n)).astype(np.float32)
    sizes = rng.integers(0, m + 1, g).astype(np.int32)
    want = ragged_dot_loop(lhs, rhs, sizes)
    np.testing.assert_allclose(lax.ragged_dot(lhs, rhs, sizes), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(natively(lax.ragged_dot, lhs, rhs, sizes), want, rtol=1e-5, atol=1e-5)


def test_gradients_jit_and_vmap():
    rng = np.random.default_rng(0)
    lhs, rhs = rng.standard_normal((7, 3)), rng.standard_normal((3, 3, 2))
    sizes = np.array([3, 0, 3], np.int32)
    check_grads(lambda a, b: lax.ragged_dot(a, b, sizes), (lhs.astype(np.float32), rhs.astype(np.float32)), order=1)
    g_rhs = fgrad.grad(lambda b: lax.ragged_dot(lhs.astype(np.float32), b, sizes).sum())(rhs.astype(np.float32))
    np.testing.assert_allclose(g_rhs[1], 0.0)                       # an empty group gets no gradient
    np.testing.assert_allclose(g_rhs[0], np.repeat(lhs[:3].sum(0)[:, None], 2, 1), rtol=1e-5)
    batched = fgrad.vmap(lambda a: lax.ragged_dot(a, rhs.astype(np.float32), sizes))(
        np.stack([lhs, 2 * lhs]).astype(np.float32))
    np.testing.assert_allclose(batched[1], 2 * ragged_dot_loop(lhs, rhs, sizes), rtol=1e-5)


def test_errors_name_the_mistake():
    lhs, rhs = np.ones((4, 2), np.float32), np.ones((3, 2, 5), np.float32)
    with pytest.raises(TypeError, match="group dimension size to be 2, got 3"):
        lax.ragged_dot(lhs, rhs, np.array([2, 2], np.int32))
    with pytest.raises(TypeError, match="integer group_sizes"):
        lax.ragged_dot(lhs, rhs, np.array([1.0, 1.0, 2.0]))
    with pytest.raises(TypeError, match="columns"):
        lax.ragged_dot(np.ones((4, 3), np.float32), rhs, np.array([1, 1, 2], np.int32))
    with pytest.raises(NotImplementedError, match="group_offset"):
        lax.ragged_dot(lhs, rhs, np.array([1, 1, 2], np.int32), group_offset=np.array([0], np.int32))


def test_platform_dependent_picks_this_platforms_branch():
    on_cpu = fgrad.default_backend() == "cpu"
    assert float(lax.platform_dependent(2.0, cpu=lambda x: x * 3, default=lambda x: x)) == (6.0 if on_cpu else 2.0)
    assert float(lax.platform_dependent(2.0, cuda=lambda x: x * 3, default=lambda x: x)) == (2.0 if on_cpu else 6.0)
    if on_cpu:
        assert float(fgrad.jit(lambda x: lax.platform_dependent(x, cpu=lambda v: v + 1))(1.0)) == 2.0
        with pytest.raises(ValueError, match="no branch for platform 'cpu'"):
            lax.platform_dependent(1.0, cuda=lambda x: x)
