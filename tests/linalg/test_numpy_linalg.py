"""fgrad.numpy.linalg against numpy.linalg: values (batched, float32/float64, corner cases),
gradients against finite differences, vmap against a loop, jit against eager."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fgrad
from fgrad import numpy as fnp
from tests.linalg.linalg_util import check_jit, spd, symmetric, tol, well_conditioned
from tests.util import check_grads, check_vmap

la = fnp.linalg
from tests.linalg.linalg_util import DTYPES, close, rng, x64  # noqa: E402,F401 (x64: an autouse fixture)

FEW = settings(max_examples=8)


# --- values ----------------------------------------------------------------------------------------

def test_fnp_linalg_is_the_module():
    assert fnp.linalg is la and la.solve.__module__ == "fgrad.numpy.linalg"


@pytest.mark.parametrize("dtype", DTYPES)
def test_solve_inv_det_slogdet_match_numpy(dtype):
    a = well_conditioned(rng(1), (2, 3, 5, 5), dtype)
    b = rng(2).standard_normal((2, 3, 5, 2)).astype(dtype)
    close(la.solve(a, b), np.linalg.solve(a, b), dtype)
    close(la.solve(a[0, 0], b[0, 0, :, 0]), np.linalg.solve(a[0, 0], b[0, 0, :, 0]), dtype)
    close(la.inv(a), np.linalg.inv(a), dtype)
    for n in (1, 2, 3, 4, 5):
        sub = a[..., :n, :n]
        close(la.det(sub), np.linalg.det(sub), dtype)
        sign, logdet = la.slogdet(sub)
        want_sign, want_logdet = np.linalg.slogdet(sub)
        close(sign, want_sign, dtype)
        close(logdet, want_logdet, dtype)
        close(la.slogdet(sub, method="qr").logabsdet, want_logdet, dtype)
        close(la.slogdet(sub, method="qr").sign, want_sign, dtype)
    assert la.det(a).dtype == dtype


def test_solve_broadcasts_batch_dimensions_as_jax():
    a = well_conditioned(rng(3), (3, 1, 4, 4))
    b = rng(4).standard_normal((2, 4, 3))
    got = la.solve(a, b)
    assert got.shape == (3, 2, 4, 3)
    close(got, np.linalg.solve(a, b))
    close(la.solve(a, b[0, :, 0]), np.linalg.solve(a, b[0, :, 0]))         # 1-D b: one vector for every matrix
    with pytest.raises(ValueError, match=r"b\[\.\.\., None\]"):
        la.solve(a[:, 0], b[0].T)                                         # a batch of vectors is refused
    with pytest.raises(ValueError, match="square"):
        la.solve(np.ones((2, 3)), np.ones(2))


def test_integer_inputs_promote_to_float():
    a = np.array([[2, 1], [1, 3]])
    assert la.inv(a).dtype == np.float64 and la.det(a).dtype == np.float64
    close(la.solve(a, np.array([1, 2])), np.linalg.solve(a, [1, 2]))


def test_det_and_slogdet_of_singular_and_empty_matrices():
    singular = np.array([[1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0], [0.0, 1.0, 0.0, 1.0], [1.0, 0.0, 2.0, 5.0]])
    assert float(la.det(singular)) == 0.0
    sign, logdet = la.slogdet(singular)
    assert float(sign) == 0.0 and float(logdet) == -np.inf
    assert float(la.det(np.zeros((0, 0)))) == 1.0
    close(la.det(-np.eye(4)), 1.0)
    close(la.slogdet(-np.eye(5)).sign, -1.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_decompositions_match_numpy(dtype):
    s = spd(rng(5), (2, 4, 4), dtype)
    close(la.cholesky(s), np.linalg.cholesky(s), dtype)
    close(la.cholesky(s, upper=True), np.linalg.cholesky(s, upper=True), dtype)
    w, v = la.eigh(s)
    close(w, np.linalg.eigh(s).eigenvalues, dtype)
    close(la.eigvalsh(s, UPLO="U"), np.linalg.eigvalsh(s, UPLO="U"), dtype)
    with pytest.raises(ValueError, match="UPLO"):
        la.eigh(s, UPLO="X")
    a = rng(6).standard_normal((2, 5, 3)).astype(dtype)
    for mode in ("reduced", "complete"):
        q, r = la.qr(a, mode=mode)
        wq, wr = np.linalg.qr(a, mode=mode)
        close(q, wq, dtype)
        close(r, wr, dtype)
    close(la.qr(a, mode="r"), np.linalg.qr(a, mode="r"), dtype)
    for full in (True, False):
        u, sv, vh = la.svd(a, full_matrices=full)
        wu, ws, wvh = np.linalg.svd(a, full_matrices=full)
        assert u.shape == wu.shape and vh.shape == wvh.shape
        close(sv, ws, dtype)
    close(la.svd(a, compute_uv=False), np.linalg.svd(a, compute_uv=False), dtype)
    close(la.svdvals(a), np.linalg.svd(a, compute_uv=False), dtype)


def test_hermitian_svd_matches_numpy():
    h = symmetric(rng(7), (3, 4, 4))
    u, s, vh = la.svd(h, hermitian=True)
    close(s, np.linalg.svd(h, hermitian=True, compute_uv=False))
    close((np.asarray(u) * np.asarray(s)[..., None, :]) @ np.asarray(vh), h)
    close(la.svd(h, hermitian=True, compute_uv=False), np.linalg.svd(h, compute_uv=False))


@pytest.mark.parametrize("ord", [None, 1, 2, np.inf, -np.inf, 0, 3, -1, 0.5])
def test_vector_norms_match_numpy(ord):
    x = rng(8).standard_normal((3, 5))
    x[0, 1] = 0.0
    for axis in (0, 1, -1):
        for keepdims in (False, True):
            close(la.norm(x, ord, axis=axis, keepdims=keepdims), np.linalg.norm(x, ord, axis=axis, keepdims=keepdims))
    close(la.norm(x[0], ord), np.linalg.norm(x[0], ord))
    close(la.vector_norm(x, ord=2 if ord is None else ord), np.linalg.vector_norm(x, ord=2 if ord is None else ord))


@pytest.mark.parametrize("ord", [None, "fro", "nuc", 1, -1, 2, -2, np.inf, -np.inf])
def test_matrix_norms_match_numpy(ord):
    x = rng(9).standard_normal((2, 4, 3))
    for axis in [(1, 2), (2, 1), (0, 2), (-1, -3)]:
        for keepdims in (False, True):
            close(la.norm(x, ord, axis=axis, keepdims=keepdims), np.linalg.norm(x, ord, axis=axis, keepdims=keepdims))
    close(la.norm(x[0], ord), np.linalg.norm(x[0], ord))
    close(la.matrix_norm(x, ord="fro" if ord is None else ord), np.linalg.matrix_norm(x, ord="fro" if ord is None else ord))


def test_norm_errors_and_defaults():
    x = rng(10).standard_normal((2, 3, 4))
    close(la.norm(x), np.linalg.norm(x))                   # no ord, no axis: the flattened 2-norm
    with pytest.raises(ValueError, match="Improper number of axes"):
        la.norm(x, 2)
    with pytest.raises(ValueError, match="Invalid order"):
        la.norm(x[0], "inf")
    with pytest.raises(ValueError, match="Invalid order"):
        la.norm(x, 3, axis=(0, 1))


def test_lstsq_pinv_rank_power_cond_match_numpy():
    a = rng(11).standard_normal((6, 3))
    b = rng(12).standard_normal((6, 2))
    x, resid, rank, s = la.lstsq(a, b)
    wx, wresid, wrank, ws = np.linalg.lstsq(a, b)
    close(x, wx)
    close(resid, wresid)
    assert int(rank) == wrank and rank.dtype == np.int32
    close(s, ws)
    close(la.lstsq(a, b[:, 0])[0], np.linalg.lstsq(a, b[:, 0])[0])
    deficient = a @ np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0]])     # rank 2
    assert int(la.lstsq(deficient, b)[2]) == 2 and int(la.matrix_rank(deficient)) == 2
    assert la.lstsq(deficient, b, numpy_resid=True)[1].shape == (0,)
    close(la.lstsq(deficient, b)[0], np.linalg.lstsq(deficient, b)[0])
    close(la.pinv(deficient), np.linalg.pinv(deficient))
    close(la.pinv(a.T, rtol=0.5), np.linalg.pinv(a.T, rtol=0.5))
    h = symmetric(rng(13), (4, 4))
    close(la.pinv(h, hermitian=True), np.linalg.pinv(h, hermitian=True))
    close(la.matrix_rank(np.stack([a, deficient])), [3, 2])
    assert int(la.matrix_rank(np.zeros(3))) == 0 and int(la.matrix_rank(np.ones(3))) == 1
    m = well_conditioned(rng(14), (2, 3, 3))
    for n in (-3, -1, 0, 1, 2, 3, 5, 8):
        close(la.matrix_power(m, n), np.linalg.matrix_power(m, n), rtol=1e-9)
    assert la.matrix_power(np.eye(2, dtype=np.int32), 3).dtype == np.int32
    for p in (None, 2, -2, 1, -1, np.inf, -np.inf, "fro"):
        close(la.cond(m, p), np.linalg.cond(m, p), rtol=1e-9)


def test_array_api_names_match_numpy():
    r = rng(15)
    x, y = r.standard_normal((2, 4, 3)), r.standard_normal((2, 4, 3))
    close(la.cross(x, y), np.linalg.cross(x, y))
    close(la.cross(x, y[0], axis=-1), np.cross(x, y[0]))
    close(la.cross(np.moveaxis(x, 2, 0), np.moveaxis(y, 2, 0), axis=0), np.moveaxis(np.cross(x, y), 2, 0))
    with pytest.raises(ValueError, match="3-dimensional vectors"):
        la.cross(x[..., :2], y[..., :2])
    close(la.outer(x[0, 0], y[0, 1]), np.linalg.outer(x[0, 0], y[0, 1]))
    with pytest.raises(ValueError, match="one-dimensional"):
        la.outer(x, y)
    close(la.trace(x[:, :3]), np.linalg.trace(x[:, :3]))
    close(la.trace(x, offset=1), np.linalg.trace(x, offset=1))
    close(la.diagonal(x, offset=-1), np.linalg.diagonal(x, offset=-1))
    close(la.vecdot(x, y), np.linalg.vecdot(x, y))
    close(la.matmul(x, np.swapaxes(y, -1, -2)), np.linalg.matmul(x, np.swapaxes(y, -1, -2)))
    y3 = np.transpose(y, (1, 2, 0))
    close(la.tensordot(x, y3, axes=2), np.linalg.tensordot(x, y3, axes=2))
    close(la.matrix_transpose(x), np.linalg.matrix_transpose(x))
    assert la.matmul(x, np.swapaxes(y, -1, -2), preferred_element_type=np.float32).dtype == np.float32


def test_tensor_functions_and_multi_dot_match_numpy():
    r = rng(16)
    t = well_conditioned(r, (6, 6)).reshape(2, 3, 6)
    close(la.tensorinv(t, ind=2), np.linalg.tensorinv(t, ind=2))
    a = well_conditioned(r, (6, 6)).reshape(2, 3, 2, 3)
    b = r.standard_normal((2, 3))
    close(la.tensorsolve(a, b), np.linalg.tensorsolve(a, b))
    a2, b2 = well_conditioned(r, (6, 6)).reshape(6, 3, 2).transpose(0, 2, 1), r.standard_normal(6)
    close(la.tensorsolve(a2, b2, axes=(1,)), np.linalg.tensorsolve(a2, b2, axes=(1,)))
    chain = [r.standard_normal(s) for s in [(7,), (7, 2), (2, 9), (9, 3), (3,)]]
    close(la.multi_dot(chain), np.linalg.multi_dot(chain))
    close(la.multi_dot(chain[1:4]), np.linalg.multi_dot(chain[1:4]))
    with pytest.raises(ValueError, match="at least two"):
        la.multi_dot(chain[:1])


# --- gradients ----------------------------------------------------------------------------------------

@FEW
@given(seed=st.integers(0, 2 ** 31), n=st.integers(1, 5), k=st.integers(1, 3))
def test_solve_inv_det_slogdet_gradients_match_finite_differences(seed, n, k):
    r = np.random.default_rng(seed)
    a, b = well_conditioned(r, (n, n)), r.standard_normal((n, k))
    check_grads(la.solve, (a, b), order=2, eps=1e-6)
    check_grads(la.solve, (a, b[:, 0]), order=1, eps=1e-6)
    check_grads(la.inv, (a,), order=1, eps=1e-6)
    check_grads(la.det, (a,), order=2, eps=1e-6)
    check_grads(lambda x: la.slogdet(x).logabsdet, (a,), order=2, eps=1e-6)
    check_grads(lambda x: la.slogdet(x, method="qr").logabsdet, (a,), order=1, eps=1e-6)


@FEW
@given(seed=st.integers(0, 2 ** 31), m=st.integers(1, 5), n=st.integers(1, 5))
def test_decomposition_gradients_match_finite_differences(seed, m, n):
    r = np.random.default_rng(seed)
    s = spd(r, (n, n))
    check_grads(lambda x: la.cholesky(x, upper=True), (s,), order=1, eps=1e-6)
    check_grads(lambda x: la.eigvalsh(x), (s,), order=1, eps=1e-6)
    a = well_conditioned(r, (m, n))
    check_grads(lambda x: la.qr(x), (a,), order=1, eps=1e-6)
    check_grads(lambda x: la.svd(x, compute_uv=False), (a,), order=1, eps=1e-6)
    check_grads(lambda x: la.norm(x, "nuc"), (a,), order=1, eps=1e-6)
    check_grads(lambda x: la.norm(x, 2), (a,), order=1, eps=1e-6)
    check_grads(la.pinv, (a,), order=1, eps=1e-6)
    rhs = r.standard_normal((m, 2))
    check_grads(lambda x, y: la.lstsq(x, y)[0], (a, rhs), order=1, eps=1e-6)


def test_norm_and_power_gradients_match_finite_differences():
    r = rng(17)
    x = r.standard_normal((3, 4))
    for ord in (None, 1, 3, np.inf, 0.5):
        check_grads(lambda v: la.norm(v, ord, axis=1), (x,), order=1, eps=1e-6)
    for ord in ("fro", 1, -1, np.inf, -2):
        check_grads(lambda v: la.norm(v, ord), (x,), order=1, eps=1e-6)
    m = well_conditioned(r, (3, 3))
    check_grads(lambda v: la.matrix_power(v, -3), (m,), order=1, eps=1e-6)
    check_grads(lambda v: la.matrix_power(v, 5), (m,), order=1, eps=1e-6)


def test_grad_of_det_at_a_singular_matrix_is_the_cofactor_matrix():
    a = rng(18).standard_normal((4, 4))
    a[3] = a[0] - a[2]
    cofactor = np.array([[(-1) ** (i + j) * np.linalg.det(np.delete(np.delete(a, i, 0), j, 1)) for j in range(4)]
                         for i in range(4)])
    close(fgrad.grad(la.det)(a), cofactor, rtol=1e-8, atol=1e-8)
    np.testing.assert_array_equal(np.asarray(fgrad.grad(la.det)(np.zeros((5, 5)))), np.zeros((5, 5)))


# --- vmap and jit -----------------------------------------------------------------------------------

def test_vmap_matches_a_loop():
    r = rng(19)
    a, b = well_conditioned(r, (3, 4, 4)), r.standard_normal((3, 4))
    check_vmap(la.solve, (a, b), rtol=1e-10, atol=1e-10)
    check_vmap(la.solve, (a, b[0]), in_axes=(0, None), rtol=1e-10, atol=1e-10)
    check_vmap(la.det, (a,), rtol=1e-10, atol=1e-10)
    check_vmap(la.slogdet, (a,), rtol=1e-10, atol=1e-10)
    check_vmap(la.inv, (a,), rtol=1e-10, atol=1e-10)
    check_vmap(lambda x: la.norm(x, 2), (a,), rtol=1e-10, atol=1e-10)
    check_vmap(la.pinv, (r.standard_normal((3, 2, 5)),), rtol=1e-10, atol=1e-10)
    check_vmap(lambda x, y: la.lstsq(x, y)[0], (r.standard_normal((3, 5, 2)), r.standard_normal((3, 5))),
               rtol=1e-10, atol=1e-10)
    check_vmap(la.matrix_rank, (a,))
    check_vmap(fgrad.grad(la.det), (a,), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_jit_matches_eager(dtype):
    r = rng(20)
    a = well_conditioned(r, (2, 4, 4), dtype)
    b = r.standard_normal((2, 4, 3)).astype(dtype)
    check_jit(la.solve, a, b)
    check_jit(la.inv, a)
    check_jit(la.det, a)
    check_jit(la.det, a[:, :3, :3], uses_decomposition=False)       # 3x3: a closed form
    check_jit(la.slogdet, a)
    check_jit(lambda x: la.norm(x, "nuc", axis=(1, 2)), a)
    check_jit(lambda x: la.norm(x, np.inf, axis=(1, 2)), a, uses_decomposition=False)
    check_jit(lambda x: la.lstsq(x, b[0])[0], a[0])
    check_jit(la.pinv, a)
    check_jit(lambda x: la.matrix_power(x, -2), a)
    check_jit(la.cross, a[..., :3], b[..., :3], uses_decomposition=False)
    check_jit(fgrad.grad(lambda x: la.slogdet(x).logabsdet.sum()), a)
    check_jit(fgrad.grad(lambda x: la.det(x).sum()), a)
