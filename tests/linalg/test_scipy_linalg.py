"""fgrad.scipy.linalg against scipy.linalg: values (batched where SciPy batches), gradients
against finite differences, vmap against a loop, jit against eager."""
import numpy as np
import pytest
import scipy.linalg as sla
from hypothesis import given, settings, strategies as st

import fgrad
from fgrad import numpy as fnp
from fgrad.scipy import linalg as fsl
from tests.linalg.linalg_util import check_jit, spd, tol, well_conditioned
from tests.util import check_grads, check_vmap

from tests.linalg.linalg_util import DTYPES, close, rng, x64  # noqa: E402,F401 (x64: an autouse fixture)

FEW = settings(max_examples=8)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cholesky_family_matches_scipy(dtype):
    s = spd(rng(1), (4, 4), dtype)
    b = rng(2).standard_normal((4, 3)).astype(dtype)
    for lower in (False, True):
        close(fsl.cholesky(s, lower=lower), sla.cholesky(s, lower=lower), dtype)
        c, flag = fsl.cho_factor(s, lower=lower)
        assert flag is lower
        close(fsl.cho_solve((c, lower), b), sla.cho_solve(sla.cho_factor(s, lower=lower), b), dtype)
        close(fsl.cho_solve((c, lower), b[:, 0]), sla.cho_solve(sla.cho_factor(s, lower=lower), b[:, 0]), dtype)
    # only the named triangle is read: SciPy's contract (no symmetrization)
    garbage = s + np.triu(np.full_like(s, 50.0), 1)
    close(fsl.cholesky(garbage, lower=True), sla.cholesky(s, lower=True), dtype)
    batch = spd(rng(3), (2, 4, 4), dtype)
    close(fsl.cholesky(batch), np.stack([sla.cholesky(m) for m in batch]), dtype)


@pytest.mark.parametrize("trans", [0, 1, 2, "N", "T", "C"])
@pytest.mark.parametrize("lower", [False, True])
@pytest.mark.parametrize("unit_diagonal", [False, True])
def test_solve_triangular_matches_scipy(trans, lower, unit_diagonal):
    a = well_conditioned(rng(4), (4, 4))
    b = rng(5).standard_normal((4, 2))
    want = sla.solve_triangular(a, b, trans=trans, lower=lower, unit_diagonal=unit_diagonal)
    close(fsl.solve_triangular(a, b, trans=trans, lower=lower, unit_diagonal=unit_diagonal), want)
    close(fsl.solve_triangular(a, b[:, 0], trans=trans, lower=lower, unit_diagonal=unit_diagonal), want[:, 0])


def test_solve_triangular_batches_and_warns_on_a_batch_of_vectors_as_jax():
    a = well_conditioned(rng(6), (3, 4, 4))
    b = rng(7).standard_normal((3, 4))
    with pytest.warns(FutureWarning, match="batched 1D solves"):
        got = fsl.solve_triangular(a, b, lower=True)
    close(got, np.stack([sla.solve_triangular(a[i], b[i], lower=True) for i in range(3)]))
    with pytest.raises(ValueError, match="trans"):
        fsl.solve_triangular(a, b, trans=3)


@pytest.mark.parametrize("assume_a", ["gen", "sym", "pos"])
def test_solve_matches_scipy(assume_a):
    s = spd(rng(8), (5, 5))
    b = rng(9).standard_normal((5, 2))
    for lower in (False, True):
        tri = np.tril(s) if lower else np.triu(s)
        arg = s if assume_a == "gen" else tri
        close(fsl.solve(arg, b, lower=lower, assume_a=assume_a), sla.solve(arg, b, lower=lower, assume_a=assume_a))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 4), (5, 3), (3, 5), (2, 4, 3)])
def test_lu_matches_scipy(dtype, shape):
    a = rng(10).standard_normal(shape).astype(dtype)
    p, l, u = fsl.lu(a)
    wp, wl, wu = sla.lu(a)
    close(p, wp, dtype)
    close(l, wl, dtype)
    close(u, wu, dtype)
    pl, u2 = fsl.lu(a, permute_l=True)
    close(pl, sla.lu(a, permute_l=True)[0], dtype)
    close(u2, wu, dtype)


@pytest.mark.parametrize("trans", [0, 1, 2])
def test_lu_factor_and_lu_solve_match_scipy(trans):
    a = rng(11).standard_normal((5, 5))
    b = rng(12).standard_normal((5, 3))
    lu, piv = fsl.lu_factor(a)
    want_lu, want_piv = sla.lu_factor(a)
    close(lu, want_lu)
    np.testing.assert_array_equal(np.asarray(piv), want_piv)
    close(fsl.lu_solve((lu, piv), b, trans=trans), sla.lu_solve((want_lu, want_piv), b, trans=trans))
    close(fsl.lu_solve((lu, piv), b[:, 0], trans=trans), sla.lu_solve((want_lu, want_piv), b[:, 0], trans=trans))
    batch = rng(13).standard_normal((2, 4, 4))
    lu_b, piv_b = fsl.lu_factor(batch)
    rhs = rng(14).standard_normal((2, 4, 1))
    close(fsl.lu_solve((lu_b, piv_b), rhs, trans=trans), np.stack(
        [sla.lu_solve(sla.lu_factor(m), r, trans=trans) for m, r in zip(batch, rhs)]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_qr_svd_eigh_inv_det_match_scipy(dtype):
    a = rng(15).standard_normal((5, 3)).astype(dtype)
    for mode in ("full", "economic"):
        q, r = fsl.qr(a, mode=mode)
        wq, wr = sla.qr(a, mode=mode)
        close(q, wq, dtype)
        close(r, wr, dtype)
    (r,) = fsl.qr(a, mode="r")
    close(r, sla.qr(a, mode="r")[0], dtype)
    with pytest.raises(NotImplementedError, match="pivoting"):
        fsl.qr(a, pivoting=True)
    u, s, vh = fsl.svd(a, full_matrices=False)
    close(s, sla.svd(a, full_matrices=False)[1], dtype)
    close(fsl.svd(a, compute_uv=False), sla.svd(a, compute_uv=False), dtype)
    h = spd(rng(16), (4, 4), dtype)
    for lower in (True, False):
        w, v = fsl.eigh(h, lower=lower)
        close(w, sla.eigh(h, lower=lower)[0], dtype)
        close(fsl.eigh(h, eigvals_only=True), sla.eigh(h, eigvals_only=True), dtype)
    with pytest.raises(NotImplementedError, match="b=None"):
        fsl.eigh(h, b=h)
    close(fsl.inv(h), sla.inv(h), dtype)
    close(fsl.det(h), sla.det(h), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [1e-4, 0.05, 0.5, 1.5, 4.0, 30.0])
def test_expm_matches_scipy_at_every_pade_degree(dtype, scale):
    a = rng(17).standard_normal((4, 4))
    a = a / np.abs(a).sum(0).max() * scale          # 1-norm = scale: every degree, and squarings
    got = fsl.expm(a.astype(dtype))
    assert got.dtype == dtype
    want = sla.expm(a)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=(1e-5 if dtype == np.float32 else 1e-12) * np.abs(want).max())


def test_expm_batches_handles_triangular_and_gives_nan_past_max_squarings():
    a = rng(18).standard_normal((2, 3, 3))
    close(fsl.expm(a), sla.expm(a))
    up = np.triu(a[0])
    close(fsl.expm(up, upper_triangular=True), sla.expm(up))
    assert np.isnan(np.asarray(fsl.expm(a[0] * 1e6, max_squarings=4))).all()
    with pytest.raises(ValueError, match="square"):
        fsl.expm(np.ones((2, 3)))


def test_block_diag_matches_scipy():
    parts = [np.eye(2), np.float64(3.0), np.ones((1, 3)), np.arange(4.0).reshape(2, 2), np.ones((0, 2))]
    close(fsl.block_diag(*parts), sla.block_diag(*parts))
    assert fsl.block_diag().shape == (1, 0)
    assert fsl.block_diag(np.ones(2, np.int32), np.ones((1, 1), np.int32)).dtype == np.int32
    with pytest.raises(ValueError, match="at most 2 dimensions"):
        fsl.block_diag(np.ones((1, 1, 1)))


# --- gradients, vmap, jit ------------------------------------------------------------------------------

@FEW
@given(seed=st.integers(0, 2 ** 31), n=st.integers(1, 4), lower=st.booleans())
def test_gradients_match_finite_differences(seed, n, lower):
    r = np.random.default_rng(seed)
    s, b = spd(r, (n, n)), r.standard_normal((n, 2))
    # symmetric perturbations only: cholesky reads one triangle, and its jvp (JAX's) assumes a symmetric tangent
    check_grads(lambda x: fsl.cholesky((x + x.T) / 2, lower=lower), (s,), order=1, eps=1e-6)
    check_grads(lambda c, y: fsl.cho_solve((c, lower), y), (np.linalg.cholesky(s), b), order=1, eps=1e-6)
    check_grads(lambda x, y: fsl.solve_triangular(x, y, lower=lower, trans=1), (well_conditioned(r, (n, n)), b),
                order=1, eps=1e-6)
    a = well_conditioned(r, (n, n), boost=4.0)
    check_grads(lambda x: fsl.lu(x)[1:], (a,), order=1, eps=1e-6)
    lu, piv = fsl.lu_factor(a)
    check_grads(lambda x, y: fsl.lu_solve((x, piv), y), (np.asarray(lu), b), order=1, eps=1e-6)
    check_grads(lambda x: fsl.expm(x), (r.standard_normal((n, n)),), order=1, eps=1e-6)
    check_grads(lambda x: fsl.block_diag(x, x[:1] * 2), (b,), order=1, eps=1e-6)


def test_expm_gradient_matches_finite_differences_with_squarings():
    a = rng(19).standard_normal((3, 3)) * 3
    check_grads(lambda x: fsl.expm(x), (a,), order=1, eps=1e-6, rtol=1e-6)


def test_vmap_matches_a_loop():
    r = rng(20)
    s = spd(r, (3, 4, 4))
    b = r.standard_normal((3, 4, 2))
    check_vmap(lambda x: fsl.cholesky(x), (s,), rtol=1e-10, atol=1e-10)
    check_vmap(lambda c, y: fsl.cho_solve((c, True), y), (np.linalg.cholesky(s), b), rtol=1e-10, atol=1e-10)
    check_vmap(lambda x, y: fsl.solve_triangular(x, y, lower=True), (s, b[0]), in_axes=(0, None),
               rtol=1e-10, atol=1e-10)
    check_vmap(lambda x: fsl.lu(x), (r.standard_normal((3, 4, 3)),), rtol=1e-10, atol=1e-10)
    lu, piv = fsl.lu_factor(well_conditioned(r, (3, 4, 4)))
    check_vmap(lambda x, p, y: fsl.lu_solve((x, p), y), (lu, piv, b), rtol=1e-10, atol=1e-10)
    check_vmap(lambda x: fsl.expm(x), (r.standard_normal((3, 3, 3)) * 2,), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_jit_matches_eager(dtype):
    r = rng(21)
    s = spd(r, (2, 4, 4), dtype)
    b = r.standard_normal((2, 4, 3)).astype(dtype)
    check_jit(lambda x: fsl.cholesky(x), s)
    check_jit(lambda c, y: fsl.cho_solve((c, False), y), fsl.cholesky(s), b)
    check_jit(lambda x, y: fsl.solve_triangular(x, y, trans="T"), s, b)
    check_jit(lambda x: fsl.lu(x), s)
    check_jit(lambda x, y: fsl.lu_solve(fsl.lu_factor(x), y), s, b)
    check_jit(lambda x: fsl.qr(x, mode="economic"), b)
    check_jit(lambda x: fsl.eigh(x), s)
    check_jit(lambda x: fsl.expm(x), s / 4, rtol=1e-4 if dtype == np.float32 else 1e-10)
    check_jit(lambda x: fsl.block_diag(x, x), b[0], uses_decomposition=False)
    check_jit(fgrad.grad(lambda x: fnp.sum(fsl.expm(x))), s[0] / 4, rtol=1e-4 if dtype == np.float32 else 1e-9)


# --- expm_frechet, polar, toeplitz, hilbert ------------------------------------------------------------

def test_expm_frechet_polar_toeplitz_hilbert_match_scipy():
    r = rng(22)
    a, e = r.standard_normal((4, 4)), r.standard_normal((4, 4))
    expm_a, frechet = fsl.expm_frechet(a, e)
    want_expm, want_frechet = sla.expm_frechet(a, e)
    close(expm_a, want_expm, rtol=1e-12)
    close(frechet, want_frechet, rtol=1e-12)
    close(fsl.expm_frechet(a, e, compute_expm=False), want_frechet, rtol=1e-12)
    with pytest.raises(ValueError, match="same shape"):
        fsl.expm_frechet(a, e[:3, :3])
    for shape in [(5, 3), (4, 4), (3, 5)]:
        b = r.standard_normal(shape)
        for side in ("right", "left"):
            u, p = fsl.polar(b, side=side)
            want_u, want_p = sla.polar(b, side=side)
            close(p, want_p)
            if shape[0] >= shape[1] or side == "left":
                close(u, want_u)
    with pytest.raises(ValueError, match="side"):
        fsl.polar(a, side="up")
    close(fsl.toeplitz([1.0, 2.0, 3.0], [1.0, 5.0, 6.0, 7.0]), sla.toeplitz([1.0, 2.0, 3.0], [1.0, 5.0, 6.0, 7.0]))
    close(fsl.toeplitz([4.0, 2.0]), sla.toeplitz([4.0, 2.0]))
    batch = fsl.toeplitz(r.standard_normal((2, 3)), r.standard_normal(4))
    assert batch.shape == (2, 3, 4)
    assert fsl.toeplitz(np.zeros(0), np.ones(2)).shape == (0, 2)
    close(fsl.hilbert(5), sla.hilbert(5))


def test_polar_and_toeplitz_gradients_match_finite_differences():
    r = rng(23)
    b = well_conditioned(r, (4, 3))
    check_grads(lambda x: fsl.polar(x), (b,), order=1, eps=1e-6)
    check_grads(lambda x: fsl.polar(x, side="left")[1], (b,), order=1, eps=1e-6)
    check_grads(fsl.toeplitz, (r.standard_normal(3), r.standard_normal(4)), order=1, eps=1e-6)
    check_jit(lambda x: fsl.polar(x), b)
    check_jit(fsl.toeplitz, r.standard_normal(3), r.standard_normal(5), uses_decomposition=False)
