"""``lax.linalg.tridiagonal_solve`` against NumPy's dense solve (hypothesis), batched and complex,
its gradients, jit and vmap, and JAX 0.10's answers for singular systems."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fgrad
from fgrad.lax.linalg import tridiagonal_solve
from tests.util import check_grads, natively


def dense(dl, d, du):
    """The tridiagonal matrices (``[..., m, m]``) of the three diagonals."""
    m = d.shape[-1]
    a = np.zeros(d.shape + (m,), np.result_type(dl, d, du))
    idx = np.arange(m)
    a[..., idx, idx] = d
    a[..., idx[1:], idx[:-1]] = dl[..., 1:]
    a[..., idx[:-1], idx[1:]] = du[..., :-1]
    return a


def system(rng, batch, m, n, dtype=np.float32):
    parts = [rng.standard_normal(batch + (m,)) for _ in range(3)]
    dl, d, du = parts[0], parts[1] + 4 * np.sign(parts[1] + 1e-3), parts[2]   # diagonally dominant
    b = rng.standard_normal(batch + (m, n))
    if np.dtype(dtype).kind == "c":
        dl, du, b = dl + 0.5j * dl[..., ::-1], du - 0.25j, b + 1j * b[..., ::-1, :]
    return [np.asarray(v, dtype) for v in (dl, d, du, b)]


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([(), (3,), (2, 2)]), st.integers(1, 8), st.integers(1, 3),
       st.sampled_from([np.float32, np.complex64]), st.integers(0, 2**16))
def test_matches_a_dense_solve(batch, m, n, dtype, seed):
    dl, d, du, b = system(np.random.default_rng(seed), batch, m, n, dtype)
    want = np.linalg.solve(dense(dl, d, du).astype(np.complex128), b.astype(np.complex128))
    got = tridiagonal_solve(dl, d, du, b)
    assert got.dtype == dtype and got.shape == b.shape
    np.testing.assert_allclose(np.asarray(got), want, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(natively(tridiagonal_solve, dl, d, du, b), want, rtol=2e-5, atol=2e-5)


def test_ignores_the_corners_and_vmaps():
    dl, d, du, b = system(np.random.default_rng(1), (), 6, 2)
    x = np.asarray(tridiagonal_solve(dl, d, du, b))
    dl[0], du[-1] = 100.0, np.nan                     # outside the matrix: never read
    np.testing.assert_array_equal(np.asarray(tridiagonal_solve(dl, d, du, b)), x)
    rows = fgrad.vmap(tridiagonal_solve, in_axes=(None, None, None, 0))(dl, d, du, np.stack([b, 2 * b]))
    np.testing.assert_allclose(np.asarray(rows[1]), 2 * x, rtol=1e-6)


def test_gradients():
    dl, d, du, b = system(np.random.default_rng(2), (), 5, 2)
    check_grads(tridiagonal_solve, (dl, d, du, b), order=1, modes=("fwd", "rev"))
    # JAX 0.10.2's gradient of sum(x) with respect to d for this generator's seed-0 system
    rng = np.random.default_rng(0)
    dl0 = rng.standard_normal(5).astype(np.float32)
    d0 = (rng.standard_normal(5) + 4).astype(np.float32)
    du0 = rng.standard_normal(5).astype(np.float32)
    b0 = rng.standard_normal((5, 2)).astype(np.float32)
    g = fgrad.grad(lambda d: tridiagonal_solve(dl0, d, du0, b0).sum())(d0)
    np.testing.assert_allclose(np.asarray(g), [0.06853282, -0.00162619, -0.05600692, -0.11922206, -0.20514226],
                               rtol=1e-5, atol=1e-7)


def test_singular_systems_as_jax():
    zeros, ones = np.zeros(3, np.float32), np.ones((3, 1), np.float32)
    d = np.array([1.0, 0.0, 1.0], np.float32)
    assert np.isnan(np.asarray(tridiagonal_solve(zeros, d, zeros, ones))).all()          # LAPACK: info > 0
    perturbed = np.asarray(tridiagonal_solve(zeros, d, zeros, ones, perturb_singular=True))
    np.testing.assert_array_equal(perturbed, [[1.0], [8388608.0], [1.0]])               # JAX's values


def test_errors():
    dl, d, du, b = system(np.random.default_rng(3), (), 4, 1)
    with pytest.raises(TypeError, match="rank at least 2"):
        tridiagonal_solve(dl, d, du, b[:, 0])
    with pytest.raises(TypeError, match="dtype int32"):
        tridiagonal_solve(dl.astype(np.int32), d.astype(np.int32), du.astype(np.int32), b.astype(np.int32))
    with pytest.raises(TypeError, match="du must have shape"):
        tridiagonal_solve(dl, d, du[:3], b)
