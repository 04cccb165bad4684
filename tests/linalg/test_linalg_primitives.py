"""The decomposition primitives (fgrad.ops.linalg via fgrad.lax.linalg): values against
NumPy/SciPy, the contract the native lowering keeps (triangles read, NaN on failure, pivots),
jvp/vjp against finite differences, vmap against a loop, jit against eager, the data-parallel rule."""
import itertools
import warnings

import numpy as np
import pytest
import scipy.linalg as sla
from hypothesis import given, settings, strategies as st

import fgrad
from fgrad import lax, numpy as fnp
from fgrad.lax import linalg as L
from tests.linalg.linalg_util import check_jit, spd, symmetric, tol, well_conditioned
from tests.util import check_grads, check_vmap

DTYPES = [np.float32, np.float64]
BATCHES = [(), (3,), (2, 2)]
FEW = settings(max_examples=8)


@pytest.fixture(autouse=True)
def x64():
    with fgrad.config.override(enable_x64=True):
        yield


def rng_for(*key):
    return np.random.default_rng(abs(hash(key)) % 2 ** 32)


# --- values -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", BATCHES)
def test_cholesky_matches_numpy_and_reads_only_the_lower_triangle(dtype, batch):
    a = spd(rng_for("chol", batch), batch + (4, 4), dtype)
    got = np.asarray(L.cholesky(a, symmetrize_input=False))
    assert got.dtype == dtype
    np.testing.assert_allclose(got, np.linalg.cholesky(a), **tol(dtype))
    assert np.all(np.triu(got, 1) == 0)
    garbage = a + np.triu(np.full(a.shape, 100.0, dtype), 1)
    np.testing.assert_array_equal(np.asarray(L.cholesky(garbage, symmetrize_input=False)), got)


def test_cholesky_of_a_matrix_that_is_not_positive_definite_is_nan_in_that_matrix_only():
    a = spd(rng_for("chol-nan"), (3, 3, 3))
    a[1] = -a[1]
    got = np.asarray(L.cholesky(a))
    # JAX 0.10.2: tril(NaN), zeros above the diagonal (fgrad gave NaN there too)
    assert np.isnan(np.tril(got[1])[np.tril_indices(3)]).all() and (np.triu(got[1], 1) == 0).all()
    np.testing.assert_allclose(got[[0, 2]], np.linalg.cholesky(a[[0, 2]]), rtol=1e-12)
    # NaN inputs pass potrf's positivity test: the NaNs propagate (JAX 0.10.2 gives the same)
    np.testing.assert_array_equal(np.asarray(L.cholesky(np.full((2, 2), np.nan))), [[np.nan, 0], [np.nan, np.nan]])
    np.testing.assert_array_equal(np.asarray(L.cholesky(np.array([[4.0, 1.0], [1.0, np.nan]]))),
                                  [[2.0, 0.0], [0.5, np.nan]])


def test_cholesky_tangent_of_a_failed_factor_is_nan_below_the_diagonal_only():
    # JAX 0.10.2: [[nan, 0], [nan, nan]] (the factor's upper triangle is 0 whatever the input)
    a = np.array([[1.0, 2.0], [2.0, 1.0]])
    for jvp in (fgrad.jvp, fgrad.jit(fgrad.jvp, static_argnums=0)):
        _, t = jvp(L.cholesky, (a,), (np.ones_like(a),))
        np.testing.assert_array_equal(np.asarray(t), [[np.nan, 0.0], [np.nan, np.nan]])


def _op(a, lower, transpose_a, unit_diagonal):
    """The triangular matrix triangular_solve uses: the named triangle, maybe unit diagonal, maybe transposed."""
    t = np.tril(a) if lower else np.triu(a)
    if unit_diagonal:
        t = t - np.diag(np.diag(t)) + np.eye(len(a))
    return t.T if transpose_a else t


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("flags", list(itertools.product([False, True], repeat=4)))
def test_triangular_solve_every_flag_matches_scipy(dtype, flags):
    left_side, lower, transpose_a, unit_diagonal = flags
    rng = rng_for("trs", flags)
    a = well_conditioned(rng, (2, 4, 4), dtype)
    b = rng.standard_normal((2, 4, 3) if left_side else (2, 3, 4)).astype(dtype)
    got = np.asarray(L.triangular_solve(a, b, left_side=left_side, lower=lower, transpose_a=transpose_a,
                                        unit_diagonal=unit_diagonal))
    assert got.dtype == dtype
    for i in range(2):
        op = _op(a[i].astype(np.float64), lower, transpose_a, unit_diagonal)
        want = sla.solve(op, b[i]) if left_side else sla.solve(op.T, b[i].T).T
        np.testing.assert_allclose(got[i], want, **tol(dtype))
    # only the named triangle is read (and not the diagonal with unit_diagonal)
    other = np.triu(np.full(a.shape, 7.0, dtype), 1) if lower else np.tril(np.full(a.shape, 7.0, dtype), -1)
    garbage = a + other + (np.eye(4, dtype=dtype) * 5 if unit_diagonal else 0)
    again = L.triangular_solve(garbage, b, left_side=left_side, lower=lower, transpose_a=transpose_a,
                               unit_diagonal=unit_diagonal)
    np.testing.assert_array_equal(np.asarray(again), got)


def test_triangular_solve_with_a_zero_pivot_gives_inf_as_trsm():
    a = np.array([[2.0, 0.0], [1.0, 0.0]])
    got = np.asarray(L.triangular_solve(a, np.eye(2), left_side=True, lower=True))
    assert np.isinf(got).any() and np.isfinite(got[0]).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 4), (5, 3), (3, 5), (2, 4, 4), (2, 3, 5, 2)])
def test_lu_reconstructs_and_matches_getrf(dtype, shape):
    a = np.random.default_rng(len(shape) * 7 + shape[-1]).standard_normal(shape).astype(dtype)
    lu, pivots, permutation = (np.asarray(x) for x in L.lu(a))
    m, n = shape[-2:]
    k = min(m, n)
    assert lu.dtype == dtype and pivots.dtype == np.int32 and permutation.dtype == np.int32
    assert pivots.shape == shape[:-2] + (k,) and permutation.shape == shape[:-2] + (m,)
    for index in np.ndindex(*shape[:-2]):
        lower = np.tril(lu[index], -1)[:, :k] + np.eye(m, k)
        upper = np.triu(lu[index])[:k]
        np.testing.assert_allclose(lower @ upper, a[index][permutation[index]], **tol(dtype))
        if m == n:
            want_lu, want_piv = sla.lu_factor(a[index])
            np.testing.assert_array_equal(pivots[index], want_piv)
            np.testing.assert_allclose(lu[index], want_lu, **tol(dtype))
        perm = np.arange(m)
        for i, p in enumerate(pivots[index]):
            perm[[i, p]] = perm[[p, i]]
        np.testing.assert_array_equal(permutation[index], perm)


def test_lu_of_a_singular_matrix_still_factors():
    a = np.array([[1.0, 2.0], [2.0, 4.0]])
    lu, pivots, permutation = (np.asarray(x) for x in L.lu(a))
    np.testing.assert_array_equal(pivots, [1, 1])
    np.testing.assert_array_equal(permutation, [1, 0])
    np.testing.assert_allclose(lu, [[2.0, 4.0], [0.5, 0.0]])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 4), (5, 3), (3, 5), (2, 5, 3)])
@pytest.mark.parametrize("full_matrices", [True, False])
def test_qr_matches_numpy(dtype, shape, full_matrices):
    a = np.random.default_rng(shape[-1] + 10 * shape[-2]).standard_normal(shape).astype(dtype)
    q, r = (np.asarray(x) for x in L.qr(a, full_matrices=full_matrices))
    wq, wr = np.linalg.qr(a, mode="complete" if full_matrices else "reduced")
    assert q.shape == wq.shape and r.shape == wr.shape and q.dtype == dtype
    np.testing.assert_allclose(q, wq, **tol(dtype))
    np.testing.assert_allclose(r, wr, **tol(dtype))
    np.testing.assert_allclose(q @ r, a, **tol(dtype))
    assert np.all(np.tril(r, -1) == 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("lower", [True, False])
def test_eigh_matches_numpy_and_reads_only_the_named_triangle(dtype, batch, lower):
    a = symmetric(rng_for("eigh", batch, lower), batch + (5, 5), dtype)
    v, w = (np.asarray(x) for x in L.eigh(a, lower=lower, symmetrize_input=False))
    np.testing.assert_allclose(w, np.linalg.eigvalsh(a), **tol(dtype))
    assert np.all(np.diff(w, axis=-1) >= 0)
    np.testing.assert_allclose(a @ v, v * w[..., None, :], **tol(dtype))
    other = np.triu(np.full(a.shape, 9.0, dtype), 1) if lower else np.tril(np.full(a.shape, 9.0, dtype), -1)
    again = L.eigh(a + other, lower=lower, symmetrize_input=False)
    np.testing.assert_array_equal(np.asarray(again[1]), w)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 4), (5, 3), (3, 5), (2, 2, 5, 3)])
@pytest.mark.parametrize("full_matrices", [True, False])
def test_svd_matches_numpy(dtype, shape, full_matrices):
    a = np.random.default_rng(shape[-1] * shape[-2]).standard_normal(shape).astype(dtype)
    u, s, vh = (np.asarray(x) for x in L.svd(a, full_matrices=full_matrices))
    wu, ws, wvh = np.linalg.svd(a, full_matrices=full_matrices)
    assert u.shape == wu.shape and vh.shape == wvh.shape and s.dtype == dtype
    np.testing.assert_allclose(s, ws, **tol(dtype))
    k = min(shape[-2:])
    np.testing.assert_allclose((u[..., :k] * s[..., None, :]) @ vh[..., :k, :], a, **tol(dtype))
    np.testing.assert_allclose(np.asarray(L.svd(a, compute_uv=False)), ws, **tol(dtype))


def test_nan_inputs_give_nan_results_as_jax():
    nan = np.full((3, 3), np.nan)
    assert all(np.isnan(np.asarray(x)).all() for x in L.eigh(nan))
    assert all(np.isnan(np.asarray(x)).all() for x in L.svd(nan))


@pytest.mark.parametrize("fn", [lambda a: L.cholesky(a), lambda a: L.lu(a), lambda a: L.qr(a),
                                lambda a: L.eigh(a), lambda a: L.svd(a)])
def test_empty_matrices(fn):
    for shape in [(0, 0), (2, 0, 0)]:
        for out in fgrad.tree.tree_leaves(fn(np.zeros(shape))):
            assert np.asarray(out).size == 0


@pytest.mark.parametrize("bad", [np.int32, np.float16])
def test_unsupported_dtypes_raise_naming_the_supported_ones(bad):
    a = np.eye(3).astype(bad)
    for fn in (lambda: L.cholesky(a, symmetrize_input=False), lambda: L.lu(a), lambda: L.qr(a),
               lambda: L.eigh(a, symmetrize_input=False), lambda: L.svd(a),
               lambda: L.triangular_solve(a, a)):
        with pytest.raises(TypeError, match="float32, float64, complex64 and complex128"):
            fn()


def test_shape_errors_name_the_mistake():
    with pytest.raises(TypeError, match="rank >= 2"):
        L.lu(np.ones(3))
    with pytest.raises(TypeError, match="square"):
        L.cholesky(np.ones((2, 3)), symmetrize_input=False)
    with pytest.raises(TypeError, match="batch dimensions"):
        L.triangular_solve(np.eye(3)[None], np.ones((2, 3, 3)), left_side=True)
    with pytest.raises(TypeError, match="rows"):
        L.triangular_solve(np.eye(3), np.ones((2, 3)), left_side=True)


# --- derivatives --------------------------------------------------------------------------------------

@FEW
@given(seed=st.integers(0, 2 ** 31), n=st.integers(1, 4), batch=st.sampled_from([(), (2,)]))
def test_cholesky_derivatives_match_finite_differences(seed, n, batch):
    a = spd(np.random.default_rng(seed), batch + (n, n))
    check_grads(lambda x: L.cholesky(x), (a,), order=2, eps=1e-6)


@FEW
@given(seed=st.integers(0, 2 ** 31), flags=st.tuples(*[st.booleans()] * 4), m=st.integers(1, 4),
       n=st.integers(1, 4))
def test_triangular_solve_derivatives_match_finite_differences(seed, flags, m, n):
    left_side, lower, transpose_a, unit_diagonal = flags
    rng = np.random.default_rng(seed)
    a = well_conditioned(rng, (m, m))
    b = rng.standard_normal((m, n) if left_side else (n, m))
    def f(a, b):
        return L.triangular_solve(a, b, left_side=left_side, lower=lower, transpose_a=transpose_a,
                                  unit_diagonal=unit_diagonal)
    check_grads(f, (a, b), order=2, eps=1e-6)


@FEW
@given(seed=st.integers(0, 2 ** 31), m=st.integers(1, 5), n=st.integers(1, 5))
def test_lu_derivative_matches_finite_differences(seed, m, n):
    a = well_conditioned(np.random.default_rng(seed), (m, n), boost=4.0)
    check_grads(lambda x: L.lu(x)[0], (a,), order=1, eps=1e-6)


@FEW
@given(seed=st.integers(0, 2 ** 31), m=st.integers(1, 5), n=st.integers(1, 5), full=st.booleans())
def test_qr_derivatives_match_finite_differences(seed, m, n, full):
    a = well_conditioned(np.random.default_rng(seed), (m, n))
    check_grads(lambda x: L.qr(x, full_matrices=full), (a,), order=1, eps=1e-6)


@FEW
@given(seed=st.integers(0, 2 ** 31), n=st.integers(1, 5), lower=st.booleans())
def test_eigh_derivatives_match_finite_differences(seed, n, lower):
    a = symmetric(np.random.default_rng(seed), (n, n)) + np.diag(np.arange(n) * 2.0)   # separated eigenvalues
    def f(x):
        return L.eigh(lin_symmetric(x), lower=lower)
    check_grads(f, (a,), order=1, eps=1e-6)


def lin_symmetric(x):
    """Symmetric tangents (the eigenvector derivative of a symmetric input)."""
    return (x + fnp.matrix_transpose(x)) / 2


@FEW
@given(seed=st.integers(0, 2 ** 31), m=st.integers(1, 5), n=st.integers(1, 5), compute_uv=st.booleans())
def test_svd_derivatives_match_finite_differences(seed, m, n, compute_uv):
    rng = np.random.default_rng(seed)
    k = min(m, n)
    u, _ = np.linalg.qr(rng.standard_normal((m, k)))
    v, _ = np.linalg.qr(rng.standard_normal((n, k)))
    a = (u * (np.arange(k, 0, -1) + 1.0)) @ v.T        # separated, non-zero singular values
    check_grads(lambda x: L.svd(x, full_matrices=False, compute_uv=compute_uv), (a,), order=1, eps=1e-6)


def test_svd_derivative_with_full_matrices_of_a_rectangular_input_raises_as_jax():
    with pytest.raises(NotImplementedError, match="full matrices"):
        fgrad.jvp(lambda x: L.svd(x, full_matrices=True), (np.ones((3, 2)),), (np.ones((3, 2)),))


def test_triangular_solve_transposes_in_b():
    rng = np.random.default_rng(3)
    a, b, ct = well_conditioned(rng, (4, 4)), rng.standard_normal((4, 2)), rng.standard_normal((4, 2))
    _, vjp = fgrad.vjp(lambda b: L.triangular_solve(a, b, left_side=True, lower=True), b)
    (got,) = vjp(ct)
    np.testing.assert_allclose(np.asarray(got), np.linalg.solve(np.tril(a).T, ct), rtol=1e-12)


# --- vmap ----------------------------------------------------------------------------------------------

def test_vmap_matches_a_loop_at_any_batch_position():
    rng = np.random.default_rng(5)
    check_vmap(lambda x: L.cholesky(x), (spd(rng, (3, 4, 4)),))
    check_vmap(lambda x: L.lu(x), (np.moveaxis(well_conditioned(rng, (3, 4, 5)), 0, 2),), in_axes=2)
    check_vmap(lambda x: L.qr(x, full_matrices=False), (rng.standard_normal((2, 3, 5, 3)),), in_axes=1)
    check_vmap(lambda x: L.eigh(x), (symmetric(rng, (3, 4, 4)),), rtol=1e-8, atol=1e-8)
    check_vmap(lambda x: L.svd(x, full_matrices=False), (rng.standard_normal((3, 4, 2)),), rtol=1e-8, atol=1e-8)
    a, b = well_conditioned(rng, (3, 4, 4)), rng.standard_normal((3, 4, 2))
    for axes in [(0, 0), (None, 0), (0, None)]:
        args = (a[0] if axes[0] is None else a, b[0] if axes[1] is None else b)
        check_vmap(lambda p, q: L.triangular_solve(p, q, left_side=True, lower=True), args, in_axes=axes)


def test_vmap_of_grad_matches_a_loop():
    a = spd(np.random.default_rng(6), (3, 3, 3))
    check_vmap(fgrad.grad(lambda x: fnp.sum(L.cholesky(x) ** 2)), (a,), rtol=1e-8, atol=1e-8)


# --- jit ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_jit_matches_eager(dtype):
    rng = np.random.default_rng(7)
    check_jit(lambda x: L.cholesky(x), spd(rng, (2, 4, 4), dtype))
    check_jit(lambda x: L.lu(x), well_conditioned(rng, (2, 3, 5), dtype))
    check_jit(lambda x: L.qr(x, full_matrices=True), rng.standard_normal((5, 3)).astype(dtype))
    check_jit(lambda x: L.eigh(x, lower=False), symmetric(rng, (4, 4), dtype))
    check_jit(lambda x: L.svd(x), rng.standard_normal((2, 3, 4)).astype(dtype))
    check_jit(lambda a, b: L.triangular_solve(a, b, transpose_a=True), well_conditioned(rng, (4, 4), dtype),
              rng.standard_normal((2, 4)).astype(dtype))


def test_jit_of_grad_matches_eager():
    a = spd(np.random.default_rng(8), (4, 4))
    check_jit(fgrad.grad(lambda x: fnp.sum(lax.sin(L.cholesky(x)))), a, rtol=1e-10)
    check_jit(fgrad.grad(lambda x: fnp.sum(L.eigh(x)[0][..., 0] ** 3)), a, rtol=1e-8)


# --- data-parallel rule ----------------------------------------------------------------------------------

def test_a_split_batch_stays_split_and_a_split_matrix_is_gathered():
    from fgrad.sharding import Mesh, NamedSharding, P, device_put
    mesh = Mesh(fgrad.devices(2), ("data",))
    a = spd(np.random.default_rng(9), (4, 4, 4))
    f = fgrad.jit(lambda x: L.cholesky(x) * 2)
    for spec in (P("data"), P(None, "data")):
        with warnings.catch_warnings():   # each device's program calls LAPACK natively
            warnings.simplefilter("error", fgrad.ReferencePathWarning)
            got = f(device_put(a, NamedSharding(mesh, spec)))
        np.testing.assert_allclose(np.asarray(got), 2 * np.linalg.cholesky(a), rtol=1e-12)
