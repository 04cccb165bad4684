"""Values and derivatives where finite differences say nothing (degenerate eigenvalues, singular
matrices, kinks of norms, non-symmetric inputs to symmetric routines), against JAX 0.10.2's
outputs recorded in data/jax_linalg.npz by scripts/record_jax_linalg.py (float64)."""
import pathlib

import numpy as np
import pytest

import fgrad
from fgrad import numpy as fnp
from fgrad.lax import linalg as L
from fgrad.scipy import linalg as fsl

JAX = np.load(pathlib.Path(__file__).parent / "data" / "jax_linalg.npz")
la = fnp.linalg


@pytest.fixture(autouse=True)
def x64():
    with fgrad.config.override(enable_x64=True):
        yield


def same(got, key, rtol=1e-9, atol=1e-9):
    np.testing.assert_allclose(np.asarray(got), JAX[key], rtol=rtol, atol=atol, equal_nan=True)


def test_eigh_at_a_degenerate_eigenvalue_gives_jaxs_infinities():
    (w, v), (dw, dv) = fgrad.jvp(la.eigh, (JAX["eigh_degenerate_a"],), (JAX["eigh_degenerate_t"],))
    same(w, "eigh_degenerate_w")
    same(v, "eigh_degenerate_v")
    same(dw, "eigh_degenerate_dw")
    got = np.asarray(dv)
    want = JAX["eigh_degenerate_dv"]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-9, atol=1e-12)


def test_eigh_jvp_of_a_non_symmetric_input_symmetrizes_the_primal_as_jax():
    (v, w), (dv, dw) = fgrad.jvp(lambda m: L.eigh(m, symmetrize_input=False), (JAX["eigh_nonsym_x"],),
                                 (JAX["eigh_nonsym_t"],))
    same(v, "eigh_nonsym_v")
    same(w, "eigh_nonsym_w")
    same(dv, "eigh_nonsym_dv")
    same(dw, "eigh_nonsym_dw")


def test_cholesky_jvp_with_a_non_symmetric_tangent_is_jaxs():
    L_, dL = fgrad.jvp(lambda s: L.cholesky(s, symmetrize_input=False), (JAX["chol_spd"],), (JAX["chol_t"],))
    same(L_, "chol_L")
    same(dL, "chol_dL")
    same(fgrad.grad(lambda s: fnp.sum(fnp.sin(la.cholesky(s))))(JAX["chol_spd"]), "chol_grad_public")


def test_det_derivatives_at_singular_matrices_are_jaxs():
    same(fgrad.grad(la.det)(JAX["det_sing1"]), "det_sing1_grad")
    same(fgrad.grad(la.det)(JAX["det_sing2"]), "det_sing2_grad")
    same(fgrad.grad(la.det)(np.zeros((5, 5))), "det_zero5_grad")
    same(fgrad.hessian(la.det)(JAX["det_sing1"]), "det_sing1_hess", rtol=1e-7, atol=1e-7)


def test_slogdet_and_inv_near_singular_are_jaxs():
    """A singular matrix: finite, huge inverses like JAX's. Their entries of order 1 are rounding
    noise (eps times the largest entry, ~0.8 here) that differs with the LAPACK build and CPU, so
    those are compared within that scale; the huge entries to 1e-6."""
    sign, logdet = la.slogdet(JAX["det_sing1"])
    same(np.stack([sign, logdet]), "slogdet_sing1", rtol=1e-6)
    for got, key in [(fgrad.grad(lambda s: la.slogdet(s)[1])(JAX["det_sing1"]), "slogdet_sing1_grad"),
                     (la.inv(JAX["det_sing1"]), "inv_sing1")]:
        noise = 4 * np.finfo(np.float64).eps * np.abs(JAX[key]).max()
        same(got, key, rtol=1e-6, atol=noise)


def test_norm_gradients_at_kinks_are_jaxs():
    same(fgrad.grad(la.norm)(np.zeros(3)), "norm_grad_zero")
    same(fgrad.grad(lambda v: la.norm(v, np.inf))(np.array([1.0, -3.0, 3.0])), "norm_inf_grad")
    same(fgrad.grad(lambda v: la.norm(v, 1))(np.array([0.0, -2.0, 1.0])), "norm_1_grad_zero")
    for name, ord_ in [("2", 2), ("nuc", "nuc"), ("m2", -2), ("fro", "fro"), ("1", 1), ("inf", np.inf)]:
        same(fgrad.grad(lambda q: la.norm(q, ord_))(JAX["matnorm_x"]), f"matnorm_grad_{name}")


def test_svd_pinv_lstsq_expm_match_jax():
    x = JAX["svd_x"]
    same(fgrad.grad(lambda q: fnp.sum(la.svd(q, full_matrices=False)[0] ** 3)
                    + fnp.sum(la.svd(q, full_matrices=False)[2] ** 3))(x), "svd_grad")
    same(fgrad.grad(lambda q: fnp.sum(fnp.sin(la.pinv(q))))(JAX["pinv_x"]), "pinv_grad")
    same(fgrad.grad(lambda q: fnp.sum(fnp.sin(la.pinv(q, hermitian=True))))(JAX["pinv_herm_x"]), "pinv_herm_grad")
    same(fgrad.grad(lambda q: fnp.sum(fnp.sin(fsl.expm(q))))(JAX["expm_x"]), "expm_grad")
    same(fsl.expm(JAX["expm_x"] * 40), "expm_big", rtol=1e-11)
    x_, r_, k_, s_ = la.lstsq(JAX["lstsq_a"], JAX["lstsq_b"])
    same(x_, "lstsq_x")
    same(r_, "lstsq_resid")
    same(s_, "lstsq_s")
    assert int(k_) == int(JAX["lstsq_rank"])
    same(fgrad.grad(lambda q: fnp.sum(la.lstsq(q, JAX["lstsq_b"])[0] ** 2))(JAX["lstsq_a"]), "lstsq_grad")
    u, s, vh = la.svd(JAX["hermitian_svd_x"], hermitian=True)
    same(u, "hermitian_svd_u")
    same(s, "hermitian_svd_s")
    same(vh, "hermitian_svd_vh")


def test_triangular_solve_and_lu_jvps_are_jaxs():
    def trs(p, q):
        return L.triangular_solve(p, q, left_side=False, lower=True, transpose_a=True, unit_diagonal=True)
    x, dx = fgrad.jvp(trs, (JAX["trs_a"], JAX["trs_b"]), (JAX["trs_da"], JAX["trs_db"]))
    same(x, "trs_x")
    same(dx, "trs_dx")
    (lu, piv, perm), (dlu, _, _) = fgrad.jvp(L.lu, (JAX["lu_a"],), (JAX["lu_da"],))
    same(lu, "lu_lu")
    np.testing.assert_array_equal(np.asarray(piv), JAX["lu_piv"])
    np.testing.assert_array_equal(np.asarray(perm), JAX["lu_perm"])
    same(dlu, "lu_dlu")


def test_what_jax_cannot_differentiate_raises_here_too():
    rng = np.random.default_rng(0)
    def raises(f):
        try:
            f()
        except NotImplementedError:
            return True
        return False
    assert raises(lambda: fgrad.jvp(la.qr, (rng.standard_normal((3, 5)),), (rng.standard_normal((3, 5)),))) \
        == bool(JAX["raises_qr_wide"])
    assert raises(lambda: fgrad.jvp(la.svd, (rng.standard_normal((3, 3)),), (rng.standard_normal((3, 3)),))) \
        == bool(JAX["raises_svd_full_square"])
    assert raises(lambda: fgrad.jvp(la.svd, (rng.standard_normal((4, 3)),), (rng.standard_normal((4, 3)),))) \
        == bool(JAX["raises_svd_full_rect"])
