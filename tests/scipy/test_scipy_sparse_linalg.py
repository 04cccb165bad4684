"""fgrad.scipy.sparse.linalg (cg, gmres, bicgstab) against numpy.linalg.solve and scipy, against
JAX 0.10.2's iterates recorded after a few steps (tests/scipy/data/jax_sparse_linalg.npz: the same
algorithms stopped early by maxiter/restart, so the iterations themselves are compared), under jit
and vmap, and implicit gradients against the closed form -(A^-T g) x^T and finite differences."""
from __future__ import annotations

import pathlib

import numpy as np
import pytest
import scipy.sparse.linalg
from hypothesis import given, settings, strategies as st

import fgrad
from fgrad import numpy as fnp
from fgrad.scipy.sparse.linalg import bicgstab, cg, gmres
from tests.util import check_grads

pytestmark = pytest.mark.filterwarnings("error::fgrad.ReferencePathWarning")

JAX = np.load(pathlib.Path(__file__).parent / "data" / "jax_sparse_linalg.npz")
A, N, B, P = JAX["A"], JAX["N"], JAX["b"], JAX["P"]     # SPD, nonsymmetric, rhs, Jacobi preconditioner
SOLVERS = {
    "cg": lambda A, b, **kw: cg(A, b, **kw),
    "bicgstab": lambda A, b, **kw: bicgstab(A, b, **kw),
    "gmres-batched": lambda A, b, **kw: gmres(A, b, solve_method="batched", **kw),
    "gmres-incremental": lambda A, b, **kw: gmres(A, b, solve_method="incremental", **kw),
}
NONSYMMETRIC = ["bicgstab", "gmres-batched", "gmres-incremental"]


def matrix_for(name):
    return A if name == "cg" else N


@pytest.mark.parametrize("name", list(SOLVERS))
@pytest.mark.parametrize("as_function", [False, True])
def test_solution_matches_numpy(name, as_function):
    M = matrix_for(name)
    operator = (lambda v: fnp.dot(M, v)) if as_function else M
    x, info = SOLVERS[name](operator, B, tol=1e-6)
    np.testing.assert_allclose(np.asarray(x), np.linalg.solve(M, B), rtol=1e-4, atol=1e-5)
    if name.startswith("gmres"):
        assert info.dtype == np.int32 and int(info) == 0
    else:
        assert info is None


def test_matches_scipy_float64():
    with fgrad.config.override(enable_x64=True):
        for name, ours, theirs in [("cg", cg, scipy.sparse.linalg.cg), ("bicgstab", bicgstab, scipy.sparse.linalg.bicgstab),
                                   ("gmres", gmres, scipy.sparse.linalg.gmres)]:
            M = matrix_for(name).astype(np.float64)
            x, _ = ours(M, B.astype(np.float64), tol=1e-12)
            want, _ = theirs(M, B.astype(np.float64), rtol=1e-12, atol=0.0)
            assert x.dtype == np.float64
            np.testing.assert_allclose(np.asarray(x), want, rtol=1e-9, atol=1e-11, err_msg=name)


@pytest.mark.parametrize("key,call", [
    ("cg_2", lambda: cg(A, B, maxiter=2)),
    ("cg_M_2", lambda: cg(A, B, maxiter=2, M=P)),
    ("bicgstab_2", lambda: bicgstab(N, B, maxiter=2)),
    ("bicgstab_M_2", lambda: bicgstab(N, B, maxiter=2, M=P)),
    ("gmres_batched_r2_m1", lambda: gmres(N, B, restart=2, maxiter=1, solve_method="batched")),
    ("gmres_incremental_r2_m1", lambda: gmres(N, B, restart=2, maxiter=1, solve_method="incremental")),
    ("gmres_batched_r3_m2_M", lambda: gmres(N, B, restart=3, maxiter=2, M=P, solve_method="batched")),
    ("gmres_incremental_r3_m2_M", lambda: gmres(N, B, restart=3, maxiter=2, M=P, solve_method="incremental")),
])
def test_unconverged_iterates_match_jax(key, call):
    np.testing.assert_allclose(np.asarray(call()[0]), JAX[key], rtol=2e-5, atol=2e-6)


def test_x0_atol_and_preconditioner_as_function():
    x, _ = cg(A, B, x0=np.linalg.solve(A, B), maxiter=0)   # already the answer: no step needed
    np.testing.assert_allclose(np.asarray(x), np.linalg.solve(A, B), rtol=1e-6)
    x, _ = bicgstab(N, B, M=lambda r: fnp.dot(P, r), atol=1e-6, tol=0.0)
    np.testing.assert_allclose(np.asarray(x), np.linalg.solve(N, B), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", list(SOLVERS))
def test_pytree_right_hand_side(name):
    """A block-diagonal operator on {"u": (2,), "v": (3,)}."""
    M = matrix_for(name)
    mu, mv = M[:2, :2], M[2:5, 2:5]

    def matvec(t):
        return {"u": fnp.dot(mu, t["u"]), "v": fnp.dot(mv, t["v"])}
    x, _ = SOLVERS[name](matvec, {"u": B[:2], "v": B[2:5]}, tol=1e-6)
    np.testing.assert_allclose(np.asarray(x["u"]), np.linalg.solve(mu, B[:2]), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(x["v"]), np.linalg.solve(mv, B[2:5]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", list(SOLVERS))
def test_jit_and_vmap(name):
    M = matrix_for(name)
    rhs = np.random.default_rng(1).standard_normal((3, 6)).astype(np.float32)
    solve = fgrad.jit(lambda M, b: SOLVERS[name](M, b, tol=1e-6)[0])
    np.testing.assert_allclose(np.asarray(solve(M, B)), np.linalg.solve(M, B), rtol=1e-4, atol=1e-5)
    batched = fgrad.vmap(lambda b: SOLVERS[name](M, b, tol=1e-6)[0])(rhs)
    np.testing.assert_allclose(np.asarray(batched), np.linalg.solve(M, rhs.T).T, rtol=1e-4, atol=1e-5)
    # a batch of matrices too, under jit
    mats = np.stack([M, M + np.eye(6, dtype=np.float32), 2 * M])
    batched = fgrad.jit(fgrad.vmap(lambda m, b: SOLVERS[name](m, b, tol=1e-6)[0]))(mats, rhs)
    np.testing.assert_allclose(np.asarray(batched), np.linalg.solve(mats, rhs[..., None])[..., 0], rtol=1e-4,
                               atol=1e-5)


@pytest.mark.parametrize("name", list(SOLVERS))
def test_gradients_are_the_implicit_ones(name):
    """d(w . x)/db = A^-T w and d(w . x)/dA = -(A^-T w) x^T, with A a matrix or closed over."""
    M = matrix_for(name)
    w = np.linspace(-1, 1, 6).astype(np.float32)
    x = np.linalg.solve(M, B)
    lam = np.linalg.solve(M.T, w)

    def loss(M, b):
        return fnp.dot(w, SOLVERS[name](M, b, tol=1e-7)[0])

    def loss_closed(M, b):
        return fnp.dot(w, SOLVERS[name](lambda v: fnp.dot(M, v), b, tol=1e-7)[0])
    for f in (fgrad.grad(loss, argnums=(0, 1)), fgrad.jit(fgrad.grad(loss_closed, argnums=(0, 1)))):
        gM, gb = f(M, B)
        np.testing.assert_allclose(np.asarray(gb), lam, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(np.asarray(gM), -np.outer(lam, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["cg", "gmres-batched"])
def test_gradients_finite_differences_and_second_order(name):
    M = matrix_for(name)

    def f(M, b):
        return SOLVERS[name](M, b, tol=1e-12)[0]
    check_grads(f, (M, B), order=1, modes=("rev",))
    # reverse over reverse: the transposed solve is differentiated by its own rule
    hess = fgrad.jacrev(fgrad.jacrev(lambda b: fnp.dot(f(M, b), b)))(B)
    inverse = np.linalg.inv(M)
    np.testing.assert_allclose(np.asarray(hess), inverse + inverse.T, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", list(SOLVERS))
def test_forward_mode_solves_the_tangent_system(name):
    """jvp: dx = A^-1 (db - dA x), with A a matrix or closed over; jacfwd and a jitted hessian
    (forward over reverse) too, as JAX's custom_linear_solve gives them."""
    M = matrix_for(name)
    dM = np.outer(np.linspace(0.5, 1, 6), np.linspace(-1, 1, 6)).astype(np.float32) * 0.1
    db = np.linspace(1, -1, 6).astype(np.float32)
    x = np.linalg.solve(M, B)
    want = np.linalg.solve(M, db - dM @ x)
    solve = lambda M, b: SOLVERS[name](M, b, tol=1e-7)[0]                        # noqa: E731
    closed = lambda M, b: SOLVERS[name](lambda v: fnp.dot(M, v), b, tol=1e-7)[0]  # noqa: E731
    for f in (solve, fgrad.jit(closed)):
        _, dx = fgrad.jvp(f, (M, B), (dM, db))
        np.testing.assert_allclose(np.asarray(dx), want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(fgrad.jacfwd(lambda b: solve(M, b))(B)), np.linalg.inv(M),
                               rtol=1e-4, atol=1e-5)
    hess = fgrad.jit(fgrad.hessian(lambda b: fnp.dot(solve(M, b), b)))(B)
    inverse = np.linalg.inv(M)
    np.testing.assert_allclose(np.asarray(hess), inverse + inverse.T, rtol=1e-4, atol=1e-5)


def test_vmap_of_grad():
    rhs = np.random.default_rng(2).standard_normal((4, 6)).astype(np.float32)
    grads = fgrad.vmap(fgrad.grad(lambda b: gmres(N, b, tol=1e-7)[0].sum()))(rhs)
    np.testing.assert_allclose(np.asarray(grads), np.tile(np.linalg.solve(N.T, np.ones(6)), (4, 1)), rtol=1e-4)


def test_complex_hermitian_cg():
    rng = np.random.default_rng(4)
    Z = rng.standard_normal((4, 4)) + 1j * rng.standard_normal((4, 4))
    H = (Z @ Z.conj().T + 4 * np.eye(4)).astype(np.complex64)
    b = (rng.standard_normal(4) + 1j * rng.standard_normal(4)).astype(np.complex64)
    x, _ = cg(H, b, tol=1e-6)
    assert x.dtype == np.complex64
    np.testing.assert_allclose(np.asarray(x), np.linalg.solve(H, b), rtol=1e-4, atol=1e-5)


def test_errors_match_jax():
    with pytest.raises(ValueError, match=r"must be a square matrix, but has shape: \(2, 3\)"):
        cg(np.ones((2, 3), np.float32), np.ones(2, np.float32))
    with pytest.raises(ValueError, match="arrays in x0 and b must have matching shapes"):
        cg(A, B, x0=np.ones(3, np.float32))
    with pytest.raises(ValueError, match="x0 and b must have matching tree structure"):
        bicgstab(N, B, x0=(B,))
    with pytest.raises(ValueError, match="invalid solve_method x, must be either 'incremental' or 'batched'"):
        gmres(N, B, solve_method="x")
    with pytest.raises(TypeError, match="linear operator must be either a function or ndarray"):
        cg(3, B)


@settings(max_examples=10)
@given(st.integers(1, 7), st.integers(0, 2 ** 16))
def test_random_spd_systems(n, seed):
    rng = np.random.default_rng(seed)
    Q = rng.standard_normal((n, n))
    M = (Q @ Q.T + n * np.eye(n)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    want = np.linalg.solve(M, b)
    for name in SOLVERS:
        got = np.asarray(SOLVERS[name](M, b, tol=1e-6)[0])
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4, err_msg=name)
