"""fgrad.scipy.linalg's Schur family, eigh_tridiagonal and qr_multiply against scipy.linalg and
values recorded from jax 0.10.2: reconstructions, batching, jit, vmap, which gradients exist
(JAX's: none through schur/hessenberg), and the inputs JAX rejects."""
import numpy as np
import pytest
import scipy.linalg as sla
from hypothesis import given, settings, strategies as st

import fgrad
from fgrad import numpy as fnp
from fgrad.scipy import linalg as fsl
from tests.linalg.linalg_util import DTYPES, check_jit, close, rng, x64  # noqa: F401 (x64: an autouse fixture)
from tests.util import check_grads, check_vmap

FEW = settings(max_examples=6)

# jax 0.10.2, x64 on
A3 = np.array([[4.0, 3, 0], [1, 3, 1], [1, 1, 2]])
JAX_SQRTM_A3 = np.array([[1.9524590593317401, 0.8399955744207015, -0.08445383789313043],
                         [0.25184724550918974, 1.6443092552271297, 0.3363010834023202],
                         [0.2799985248069004, 0.25184724550919, 1.3924620097179405]])
JAX_FUNM_SIN_A3 = np.array([[0.14302052706757232, -1.2044806016242653, -0.23388305196759301],
                            [-0.47945455119728625, 0.46655304361979744, -0.2455714992296927],
                            [-0.40149353387475567, -0.4794545511972869, 0.9460075948170847]])
JAX_SYLVESTER_A3 = np.array([[0.05901761132718613, 0.06830398112135644, 0.07354804876982911],
                             [0.06830398112135647, 0.08423283660359218, 0.0947646724642748],
                             [0.07354804876982916, 0.09476467246427485, 0.11056242625529875]])


def unitary_error(z):
    z = np.asarray(z)
    return np.abs(z.conj().swapaxes(-1, -2) @ z - np.eye(z.shape[-1])).max()


@pytest.mark.parametrize("dtype", DTYPES + [np.complex64, np.complex128])
def test_schur_reconstructs_and_matches_scipy(dtype):
    a = rng(1).standard_normal((5, 5)).astype(dtype)
    if np.dtype(dtype).kind == "c":
        a = a + 1j * rng(2).standard_normal((5, 5)).astype(dtype)
    eps = 1e-4 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-10
    for output in ("real", "complex"):
        T, Z = fsl.schur(a, output=output)
        T, Z = np.asarray(T), np.asarray(Z)
        assert T.dtype == sla.schur(a, output=output)[0].dtype
        assert np.abs(Z @ T @ Z.conj().T - a).max() < 10 * eps and unitary_error(Z) < eps
        below = np.tril(T, -2 if output == "real" and T.dtype.kind == "f" else -1)
        assert np.all(below == 0)
        np.testing.assert_allclose(T, sla.schur(a, output=output)[0], rtol=100 * eps, atol=100 * eps)


def test_schur_and_hessenberg_batch_jit_and_vmap():
    a = rng(3).standard_normal((3, 4, 4))
    T, Z = fsl.schur(a)
    for i in range(3):
        close(T[i], sla.schur(a[i])[0]), close(Z[i], sla.schur(a[i])[1])
    check_jit(lambda x: fsl.schur(x, output="complex"), a)
    check_vmap(lambda x: fsl.schur(x), (a,))
    H, Q = fsl.hessenberg(a, calc_q=True)
    for i in range(3):
        close(H[i], sla.hessenberg(a[i])), close(Q[i], sla.hessenberg(a[i], calc_q=True)[1])
    check_jit(lambda x: fsl.hessenberg(x, calc_q=True), a)
    check_vmap(lambda x: fsl.hessenberg(x), (a,))


@pytest.mark.parametrize("dtype", [np.float32, np.complex128])
def test_hessenberg_reconstructs(dtype):
    a = rng(4).standard_normal((6, 6)).astype(dtype)
    H, Q = (np.asarray(x) for x in fsl.hessenberg(a, calc_q=True))
    assert H.dtype == np.dtype(dtype) and np.all(np.tril(H, -2) == 0)
    eps = 1e-4 if dtype == np.float32 else 1e-10
    assert np.abs(Q @ H @ Q.conj().T - a).max() < 10 * eps and unitary_error(Q) < eps
    assert np.asarray(fsl.hessenberg(a)).shape == (6, 6)
    assert fsl.hessenberg(np.zeros((0, 0)), calc_q=True)[1].shape == (0, 0)


def test_schur_family_nan_inputs_give_lapacks_nans_as_jax():
    # recorded from jax 0.10.2 (LAPACK's own output: info == 0)
    T, Z = fsl.schur(np.full((2, 2), np.nan, np.float32))
    assert np.isnan(np.asarray(Z)).all() and np.asarray(T)[1, 0] == 0 and np.isnan(np.asarray(T)[0]).all()
    H, Q = fsl.hessenberg(np.full((3, 3), np.nan), calc_q=True)
    assert np.asarray(H)[2, 0] == 0 and np.asarray(Q)[0, 0] == 1 and np.isnan(np.asarray(Q)[1:, 1:]).all()


def test_rsf2csf_matches_scipy_and_batches():
    for seed in range(3):
        T, Z = sla.schur(rng(seed).standard_normal((5, 5)))
        Tc, Zc = fsl.rsf2csf(T, Z)
        wT, wZ = sla.rsf2csf(T, Z)
        close(Tc, wT), close(Zc, wZ)
        assert np.all(np.tril(np.asarray(Tc), -1) == 0)
    Ts, Zs = zip(*(sla.schur(rng(s).standard_normal((4, 4))) for s in range(2)))
    got = fsl.rsf2csf(np.stack(Ts), np.stack(Zs))
    close(got[0][1], sla.rsf2csf(Ts[1], Zs[1])[0])
    check_vmap(fsl.rsf2csf, (np.stack(Ts), np.stack(Zs)))
    check_jit(fsl.rsf2csf, Ts[0], Zs[0])
    assert fsl.rsf2csf(np.ones((1, 1), np.float32), np.ones((1, 1), np.float32))[0].dtype == np.complex64


def test_rsf2csf_differentiates_as_jax_does():
    # JAX's derivative (recorded, jax 0.10.2): a composition whose zeroed subdiagonal and rotation
    # choice make it differ from finite differences, so it is compared with JAX's, not with them
    T = np.array([[-0.5, 3.2, 0.8, -0.6], [-1.2, -0.5, -0.8, -0.4], [0, 0, -1.3, -0.6], [0, 0, 0, 0.15]])
    weights = 1.0 + np.arange(16).reshape(4, 4)

    def f(t):
        return fnp.real(fsl.rsf2csf(t, np.eye(4))[0] * weights).sum()
    jax_grad = np.array([[1.5851457844873234, -2.2848543461093236, 3.6556307750696537, 4.177863742936747],
                         [-2.7596115896248645, 5.414854215512676, -1.5666989036012802, -2.0889318714683736],
                         [9.0, 0.0, 11.0, 12.0], [13.0, 14.0, 0.0, 16.0]])
    close(fgrad.grad(f)(T), jax_grad)
    close(fgrad.jvp(f, (T,), (np.ones((4, 4)),))[1], 81.13339780720256)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128])
def test_sqrtm_squares_back_and_matches_scipy(dtype):
    a = (rng(6).standard_normal((5, 5)) + 3 * np.eye(5)).astype(dtype)   # no eigenvalue on the branch cut
    s = np.asarray(fsl.sqrtm(a))
    assert s.dtype.kind == "c"
    eps = 1e-4 if dtype == np.float32 else 1e-9
    assert np.abs(s @ s - a).max() < 10 * eps
    np.testing.assert_allclose(s, sla.sqrtm(a.astype(np.complex128)), rtol=100 * eps, atol=100 * eps)


def test_sqrtm_matches_recorded_jax_corners():
    close(fsl.sqrtm(A3), JAX_SQRTM_A3)
    close(fsl.sqrtm(np.zeros((2, 2))), np.zeros((2, 2)))                   # 0 / 0 entries are 0
    assert np.isnan(np.asarray(fsl.sqrtm(np.array([[0.0, 1], [0, 0]])))).all()  # no square root: NaN
    assert fsl.sqrtm(np.eye(3, dtype=np.int32)).dtype == np.complex128     # ints become complex


def test_sqrtm_funm_sylvester_under_jit_and_vmap():
    a = rng(7).standard_normal((2, 4, 4)) + 4 * np.eye(4)
    check_jit(fsl.sqrtm, a[0], rtol=1e-8, atol=1e-8)
    check_vmap(fsl.sqrtm, (a,), rtol=1e-8, atol=1e-8)
    check_jit(lambda x: fsl.funm(x, fnp.exp), a[0], rtol=1e-8, atol=1e-8)
    check_vmap(lambda x: fsl.funm(x, fnp.exp), (a,), rtol=1e-8, atol=1e-8)
    check_jit(fsl.solve_sylvester, a[0], a[1], a[0], rtol=1e-8, atol=1e-8)
    check_vmap(fsl.solve_sylvester, (a, a, a), rtol=1e-8, atol=1e-8)


def test_funm_matches_scipy_and_recorded_jax():
    close(fsl.funm(A3, fnp.sin), JAX_FUNM_SIN_A3)
    a = rng(8).standard_normal((5, 5))
    close(fsl.funm(a, fnp.exp), sla.expm(a), rtol=1e-8, atol=1e-8)
    F, err = fsl.funm(a, fnp.exp, disp=False)
    assert np.asarray(err).dtype == np.float64 and 0 < float(err) <= 1
    assert fsl.funm(a.astype(np.float32), fnp.exp).dtype == np.complex64


@FEW
@given(st.integers(1, 5), st.integers(1, 5), st.integers(0, 10**6))
def test_solve_sylvester_solves(m, n, seed):
    with fgrad.config.override(enable_x64=True):
        g = np.random.default_rng(seed)
        a = g.standard_normal((m, m)) + 3 * np.eye(m)
        b = g.standard_normal((n, n)) + 3 * np.eye(n)
        c = g.standard_normal((m, n))
        for method in ("schur", "eigen"):
            x = np.asarray(fsl.solve_sylvester(a, b, c, method=method))
            np.testing.assert_allclose(a @ x + x @ b, c, atol=1e-8)
            np.testing.assert_allclose(x, sla.solve_sylvester(a, b, c), atol=1e-8)


def test_solve_sylvester_corners():
    close(fsl.solve_sylvester(A3, A3.T + 2 * np.eye(3), np.ones((3, 3))), JAX_SYLVESTER_A3)
    eye = np.eye(2, dtype=np.float32)
    assert np.isnan(np.asarray(fsl.solve_sylvester(eye, -eye, eye))).all()   # A and -B share eigenvalues
    a = rng(9).standard_normal((2, 3, 3)) + 3 * np.eye(3)
    got = fsl.solve_sylvester(a, a[0], a[0])
    close(got[1], sla.solve_sylvester(a[1], a[0], a[0]))
    c = a[0] + 1j * a[1]
    assert fsl.solve_sylvester(a[0], a[1], c).dtype == np.complex128
    check_grads(lambda c: fsl.solve_sylvester(a[0], a[1], c), (a[0],), order=1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_eigh_tridiagonal_matches_scipy(dtype):
    d = rng(10).standard_normal(7).astype(dtype)
    e = rng(11).standard_normal(6).astype(dtype)
    want = sla.eigh_tridiagonal(d, e, eigvals_only=True)
    close(fsl.eigh_tridiagonal(d, e, eigvals_only=True), want, dtype)
    close(fsl.eigh_tridiagonal(d, e, eigvals_only=True, select="i", select_range=(2, 4)), want[2:5], dtype)
    w, v = (np.asarray(x) for x in fsl.eigh_tridiagonal(d, e))
    dense = np.diag(d) + np.diag(e, 1) + np.diag(e, -1)
    assert np.abs(dense @ v - v * w).max() < (1e-4 if dtype == np.float32 else 1e-10)


def test_eigh_tridiagonal_recorded_jax_values_jit_vmap():
    d, e = np.array([1.0, 2, 3, 4], np.float32), np.array([0.5, 0.5, 0.5], np.float32)
    jax_values = np.array([0.77457774, 1.9775844, 3.0224159, 4.225422], np.float32)   # jax 0.10.2
    np.testing.assert_array_equal(np.asarray(fsl.eigh_tridiagonal(d, e, eigvals_only=True)), jax_values)
    np.testing.assert_array_equal(np.asarray(fsl.eigh_tridiagonal(d, e, eigvals_only=True, tol=0.1)),
                                  np.array([0.7812461, 1.9687488, 3.031251, 4.218754], np.float32))
    hermitian = fsl.eigh_tridiagonal(d.astype(np.complex64), (1j * e).astype(np.complex64))
    assert hermitian[0].dtype == np.float32 and hermitian[1].dtype == np.complex64
    np.testing.assert_allclose(np.asarray(hermitian[0]), jax_values, rtol=1e-6)
    check_jit(lambda d, e: fsl.eigh_tridiagonal(d, e, eigvals_only=True), d, e, uses_decomposition=False)
    check_vmap(lambda d, e: fsl.eigh_tridiagonal(d, e, eigvals_only=True), (np.stack([d, d + 1]), np.stack([e, e])))
    assert fsl.eigh_tridiagonal(d[:1], e[:0])[1].shape == (1, 1)


def test_qr_multiply_matches_scipy():
    for shape in ((5, 3), (3, 5), (4, 4)):
        a = rng(12).standard_normal(shape)
        m, n = shape
        k = min(m, n)
        for pivoting in (False, True):
            for conjugate in (False, True):
                for mode, c in (("right", rng(13).standard_normal((2, m))), ("left", rng(14).standard_normal((k, 2))),
                                ("right", rng(15).standard_normal(m)), ("left", rng(16).standard_normal(k))):
                    got = fsl.qr_multiply(a, c, mode=mode, pivoting=pivoting, conjugate=conjugate)
                    want = sla.qr_multiply(a, c, mode=mode, pivoting=pivoting, conjugate=conjugate)
                    for g, w in zip(got, want):
                        close(g, w)
    a = rng(17).standard_normal((2, 5, 3))
    got = fsl.qr_multiply(a, np.ones((2, 5)))
    close(got[0][1], sla.qr_multiply(a[1], np.ones((2, 5)))[0])
    check_jit(lambda a: fsl.qr_multiply(a, np.ones((2, 5)), pivoting=True), a)
    check_vmap(lambda a: fsl.qr_multiply(a, np.ones((2, 5)), pivoting=True), (a,))


NOT_DIFFERENTIABLE = [
    (lambda a: fsl.schur(a)[0].sum(), "schur"),
    (lambda a: fsl.hessenberg(a).sum(), "hessenberg"),
    (lambda a: fnp.real(fsl.sqrtm(a)).sum(), "schur"),
    (lambda a: fnp.real(fsl.funm(a, fnp.exp)).sum(), "schur"),
    (lambda a: fsl.solve_sylvester(a, a, a).sum(), "schur"),
    (lambda a: fsl.qr_multiply(a, np.ones((2, 3)), pivoting=True)[0].sum(), "geqp3"),
]


@pytest.mark.parametrize("f, name", NOT_DIFFERENTIABLE)
def test_no_derivatives_where_jax_has_none(f, name):
    a = rng(18).standard_normal((3, 3)) + 3 * np.eye(3)
    with pytest.raises(NotImplementedError, match=f"'{name}'"):
        fgrad.grad(f)(a)
    with pytest.raises(ValueError, match="Reverse-mode"):
        fgrad.grad(lambda d: fsl.eigh_tridiagonal(d, np.ones(2), eigvals_only=True).sum())(np.arange(3.0))


ERRORS = [
    (lambda: fsl.schur(np.ones((3, 3), np.int32)), TypeError, "dtype"),
    (lambda: fsl.schur(np.ones((3, 3)), output="x"), ValueError, "output"),
    (lambda: fsl.schur(np.ones((3, 4))), ValueError, "square"),
    (lambda: fsl.schur(np.ones(3)), TypeError, "rank"),
    (lambda: fsl.hessenberg(np.ones((3, 3), np.int32)), TypeError, "dtype"),
    (lambda: fsl.hessenberg(np.ones((3, 4))), ValueError, "n, n"),
    (lambda: fsl.sqrtm(np.ones((3, 3)), blocksize=2), NotImplementedError, "blocked"),
    (lambda: fsl.sqrtm(np.ones((2, 3, 3))), ValueError, "vmap"),
    (lambda: fsl.sqrtm(np.ones((3, 4))), ValueError, "square"),
    (lambda: fsl.sqrtm(np.ones((0, 0))), IndexError, "0 x 0"),
    (lambda: fsl.rsf2csf(np.ones((2, 3)), np.ones((3, 3))), ValueError, "'T' must be square"),
    (lambda: fsl.rsf2csf(np.ones((2, 2)), np.ones((3, 3))), ValueError, "must match"),
    (lambda: fsl.rsf2csf(np.ones((0, 0)), np.ones((0, 0))), IndexError, "0 x 0"),
    (lambda: fsl.funm(np.ones((2, 3, 3)), fnp.exp), ValueError, "square"),
    (lambda: fsl.funm(np.ones((3, 3), np.int32), fnp.exp), TypeError, "dtype"),
    (lambda: fsl.solve_sylvester(np.ones((3, 3)), np.ones((3, 3)), np.ones((3, 3)), method="x"), ValueError, "method"),
    (lambda: fsl.solve_sylvester(np.ones((3, 3)), np.ones((2, 2)), np.ones((3, 3))), ValueError, "Incompatible"),
    (lambda: fsl.eigh_tridiagonal(np.ones(3, np.int32), np.ones(2, np.int32)), TypeError, "float32 and float64"),
    (lambda: fsl.eigh_tridiagonal(np.ones(3), np.ones(2, np.float32)), TypeError, "same dtype"),
    (lambda: fsl.eigh_tridiagonal(np.ones((2, 3)), np.ones((2, 2))), TypeError, "vmap"),
    (lambda: fsl.eigh_tridiagonal(np.ones(3), np.ones(3)), TypeError, "n - 1"),
    (lambda: fsl.eigh_tridiagonal(np.ones(3), np.ones(2), select="i"), ValueError, "select_range"),
    (lambda: fsl.eigh_tridiagonal(np.ones(3), np.ones(2), select="i", select_range=(2, 1)), ValueError, "empty"),
    (lambda: fsl.eigh_tridiagonal(np.ones(3), np.ones(2), select="v", select_range=(0, 1)), NotImplementedError, "'v'"),
    (lambda: fsl.eigh_tridiagonal(np.ones(3), np.ones(2), select="x"), ValueError, "select"),
    (lambda: fsl.qr_multiply(np.ones((5, 3)), np.ones((2, 4))), ValueError, "c @ Q"),
    (lambda: fsl.qr_multiply(np.ones((5, 3)), np.ones((4, 2)), mode="left"), ValueError, "Q @ c"),
    (lambda: fsl.qr_multiply(np.ones((5, 3)), np.ones((2, 5)), mode="x"), ValueError, "mode"),
]


@pytest.mark.parametrize("call, error, match", ERRORS)
def test_inputs_jax_rejects_are_rejected_the_same_way(call, error, match):
    with pytest.raises(error, match=match):
        call()
