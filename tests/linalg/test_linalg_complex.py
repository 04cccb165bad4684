"""The decompositions on complex64/complex128 matrices (fgrad.ops.linalg, fgrad.numpy.linalg):
values against NumPy/SciPy, jit against eager with the native path asserted (complex LAPACK
routines called inside the program), jvp/vjp against finite differences in complex128 (complex
tangents: real and imaginary directions both), gradients of real-valued and holomorphic
functions against JAX 0.10.2's outputs (data/jax_complex_linalg.npz, recorded by
scripts/record_jax_complex_linalg.py), vmap against a loop."""
import itertools
import pathlib

import numpy as np
import pytest
import scipy.linalg as sla
from hypothesis import given, settings, strategies as st

import fgrad
from fgrad import numpy as fnp, tree
from fgrad.lax import linalg as L
from tests.linalg.complex_linalg_cases import funcs, holomorphic
from tests.linalg.linalg_util import check_jit
from tests.util import check_vmap

CDTYPES = [np.complex64, np.complex128]
BATCHES = [(), (3,), (2, 2)]
FEW = settings(max_examples=6, deadline=None)
JAX = np.load(pathlib.Path(__file__).parent / "data" / "jax_complex_linalg.npz")
la = fnp.linalg


@pytest.fixture(autouse=True)
def x64():
    with fgrad.config.override(enable_x64=True):
        yield


def crand(rng, shape, dtype=np.complex128):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


def rng_for(*key):
    return np.random.default_rng(abs(hash(key)) % 2 ** 32)


def tol(dtype):
    return dict(rtol=5e-4, atol=5e-4) if np.dtype(dtype) == np.complex64 else dict(rtol=1e-10, atol=1e-10)


def hermitian_pd(rng, shape, dtype=np.complex128):
    x = crand(rng, shape)
    return (x @ np.conj(np.swapaxes(x, -1, -2)) + shape[-1] * np.eye(shape[-1])).astype(dtype)


def hermitian(rng, shape, dtype=np.complex128):
    x = crand(rng, shape)
    return ((x + np.conj(np.swapaxes(x, -1, -2))) / 2).astype(dtype)


def well_conditioned(rng, shape, dtype=np.complex128, boost=3.0):
    x = crand(rng, shape)
    k = min(shape[-2:])
    x[..., np.arange(k), np.arange(k)] += boost
    return x.astype(dtype)


def H(x):
    return np.conj(np.swapaxes(x, -1, -2))


# --- values vs NumPy/SciPy, eager and jitted (native) --------------------------------------------------

@pytest.mark.parametrize("dtype", CDTYPES)
@pytest.mark.parametrize("batch", BATCHES)
def test_cholesky_matches_numpy_and_reads_only_the_lower_triangle(dtype, batch):
    a = hermitian_pd(rng_for("chol", batch), batch + (4, 4), dtype)
    got = np.asarray(L.cholesky(a, symmetrize_input=False))
    assert got.dtype == dtype
    np.testing.assert_allclose(got, np.linalg.cholesky(a), **tol(dtype))
    assert np.all(np.triu(got, 1) == 0)
    garbage = a + np.triu(np.full(a.shape, 100 - 50j, dtype), 1)
    np.testing.assert_array_equal(np.asarray(L.cholesky(garbage, symmetrize_input=False)), got)
    check_jit(lambda x: L.cholesky(x, symmetrize_input=False), garbage, **tol(dtype))


def test_cholesky_symmetrizes_with_the_conjugate_transpose_and_fails_as_nan():
    a = hermitian_pd(rng_for("chol-herm"), (4, 4))
    skew = crand(rng_for("skew"), (4, 4))
    skew = skew - H(skew)                                   # (skew + skew^H) / 2 == 0
    np.testing.assert_allclose(np.asarray(L.cholesky(a + skew)), np.linalg.cholesky(a), rtol=1e-12)
    bad = np.stack([a, -a])
    lower = np.tril(np.ones((4, 4), bool))       # JAX: NaN in the lower triangle, zeros above
    for got in (np.asarray(L.cholesky(bad)), np.asarray(fgrad.jit(L.cholesky)(bad))):
        assert np.isnan(got[1][lower]).all() and (got[1][~lower] == 0).all() and np.isfinite(got[0]).all()


def _op(a, lower, transpose_a, conjugate_a, unit_diagonal):
    t = np.tril(a) if lower else np.triu(a)
    if unit_diagonal:
        t = t - np.diag(np.diag(t)) + np.eye(len(a))
    t = np.conj(t) if conjugate_a else t
    return t.T if transpose_a else t


@pytest.mark.parametrize("dtype", CDTYPES)
@pytest.mark.parametrize("flags", list(itertools.product([False, True], repeat=5)))
def test_triangular_solve_every_flag_matches_scipy_eager_and_native(dtype, flags):
    left_side, lower, transpose_a, conjugate_a, unit_diagonal = flags
    rng = rng_for("trs", flags)
    a = well_conditioned(rng, (2, 4, 4), dtype)
    b = crand(rng, (2, 4, 3) if left_side else (2, 3, 4), dtype)

    def f(a, b):
        return L.triangular_solve(a, b, left_side=left_side, lower=lower, transpose_a=transpose_a,
                                  conjugate_a=conjugate_a, unit_diagonal=unit_diagonal)
    got = np.asarray(f(a, b))
    assert got.dtype == dtype
    for i in range(2):
        op = _op(a[i].astype(np.complex128), lower, transpose_a, conjugate_a, unit_diagonal)
        want = sla.solve(op, b[i]) if left_side else sla.solve(op.T, b[i].T).T
        np.testing.assert_allclose(got[i], want, **tol(dtype))
    other = np.triu(np.full(a.shape, 7 + 7j, dtype), 1) if lower else np.tril(np.full(a.shape, 7 - 3j, dtype), -1)
    garbage = a + other + (np.eye(4, dtype=dtype) * 5j if unit_diagonal else 0)
    np.testing.assert_array_equal(np.asarray(f(garbage, b)), got)
    check_jit(f, garbage, b, **tol(dtype))


@pytest.mark.parametrize("dtype", CDTYPES)
@pytest.mark.parametrize("shape", [(4, 4), (5, 3), (3, 5), (2, 3, 5, 2)])
def test_lu_reconstructs_and_matches_getrf(dtype, shape):
    a = crand(rng_for("lu", shape), shape, dtype)
    lu, pivots, permutation = (np.asarray(x) for x in L.lu(a))
    m, n = shape[-2:]
    k = min(m, n)
    assert lu.dtype == dtype and pivots.dtype == np.int32 and permutation.dtype == np.int32
    for index in np.ndindex(*shape[:-2]):
        lower = np.tril(lu[index], -1)[:, :k] + np.eye(m, k)
        upper = np.triu(lu[index])[:k]
        np.testing.assert_allclose(lower @ upper, a[index][permutation[index]], **tol(dtype))
        if m == n:
            want_lu, want_piv = sla.lu_factor(a[index])
            np.testing.assert_array_equal(pivots[index], want_piv)
            np.testing.assert_allclose(lu[index], want_lu, **tol(dtype))
    check_jit(L.lu, a, **tol(dtype))


@pytest.mark.parametrize("dtype", CDTYPES)
@pytest.mark.parametrize("shape", [(4, 4), (5, 3), (3, 5), (2, 5, 3)])
@pytest.mark.parametrize("full_matrices", [True, False])
def test_qr_matches_numpy(dtype, shape, full_matrices):
    a = crand(rng_for("qr", shape), shape, dtype)
    q, r = (np.asarray(x) for x in L.qr(a, full_matrices=full_matrices))
    wq, wr = np.linalg.qr(a, mode="complete" if full_matrices else "reduced")
    assert q.shape == wq.shape and r.shape == wr.shape and q.dtype == dtype and r.dtype == dtype
    np.testing.assert_allclose(q, wq, **tol(dtype))
    np.testing.assert_allclose(r, wr, **tol(dtype))
    np.testing.assert_allclose(q @ r, a, **tol(dtype))
    np.testing.assert_allclose(H(q) @ q, np.broadcast_to(np.eye(q.shape[-1]), H(q).shape[:-1] + (q.shape[-1],)),
                               **tol(dtype))
    check_jit(lambda x: L.qr(x, full_matrices=full_matrices), a, **tol(dtype))


@pytest.mark.parametrize("dtype", CDTYPES)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("lower", [True, False])
def test_eigh_real_eigenvalues_match_numpy_and_read_only_the_named_triangle(dtype, batch, lower):
    a = hermitian(rng_for("eigh", batch, lower), batch + (5, 5), dtype)
    v, w = (np.asarray(x) for x in L.eigh(a, lower=lower, symmetrize_input=False))
    real = np.finfo(dtype).dtype
    assert w.dtype == real and v.dtype == dtype
    np.testing.assert_allclose(w, np.linalg.eigvalsh(a, UPLO="L" if lower else "U"), **tol(dtype))
    np.testing.assert_allclose(a @ v, v * w[..., None, :], **tol(dtype))
    np.testing.assert_allclose(H(v) @ v, np.broadcast_to(np.eye(5), v.shape), **tol(dtype))
    other = np.triu(np.full(a.shape, 9 + 2j, dtype), 1) if lower else np.tril(np.full(a.shape, 9 - 1j, dtype), -1)
    again = L.eigh(a + other, lower=lower, symmetrize_input=False)
    np.testing.assert_array_equal(np.asarray(again[1]), w)
    check_jit(lambda x: L.eigh(x, lower=lower, symmetrize_input=False), a + other, **tol(dtype))


@pytest.mark.parametrize("dtype", CDTYPES)
@pytest.mark.parametrize("shape", [(4, 4), (5, 3), (3, 5), (2, 2, 5, 3)])
@pytest.mark.parametrize("full_matrices", [True, False])
def test_svd_real_singular_values_match_numpy(dtype, shape, full_matrices):
    a = crand(rng_for("svd", shape), shape, dtype)
    u, s, vh = (np.asarray(x) for x in L.svd(a, full_matrices=full_matrices))
    wu, ws, wvh = np.linalg.svd(a, full_matrices=full_matrices)
    assert u.shape == wu.shape and vh.shape == wvh.shape and s.dtype == np.finfo(dtype).dtype and u.dtype == dtype
    np.testing.assert_allclose(s, ws, **tol(dtype))
    k = min(shape[-2:])
    np.testing.assert_allclose((u[..., :k] * s[..., None, :]) @ vh[..., :k, :], a, **tol(dtype))
    np.testing.assert_allclose(np.asarray(L.svd(a, compute_uv=False)), ws, **tol(dtype))
    check_jit(lambda x: L.svd(x, full_matrices=full_matrices), a, **tol(dtype))
    check_jit(lambda x: L.svd(x, compute_uv=False), a, **tol(dtype))


def test_nan_inputs_give_nan_results_natively_too():
    z = np.full((2, 3, 3), np.nan + 0j)
    z[0] = hermitian_pd(rng_for("nan"), (3, 3))
    for f in (lambda x: L.eigh(x), lambda x: L.svd(x)):
        for outs in (f(z), fgrad.jit(f)(z)):
            for out in outs:
                out = np.asarray(out)
                assert np.isnan(out[1]).all() and np.isfinite(out[0]).all()


@pytest.mark.parametrize("fn", [lambda a: L.cholesky(a), lambda a: L.lu(a), lambda a: L.qr(a),
                                lambda a: L.eigh(a), lambda a: L.svd(a)])
def test_empty_complex_matrices_eager_and_native(fn):
    for shape in [(0, 0), (2, 0, 0)]:
        a = np.zeros(shape, np.complex64)
        for out, jitted in zip(tree.tree_leaves(fn(a)), tree.tree_leaves(check_jit(fn, a))):
            assert np.asarray(out).size == 0 and np.asarray(jitted).size == 0


# --- numpy.linalg on complex matrices ------------------------------------------------------------------

def _numpy_cases(rng, dtype):
    a = well_conditioned(rng, (2, 4, 4), dtype)
    h = hermitian_pd(rng, (2, 4, 4), dtype)
    w = crand(rng, (5, 3), dtype)
    low_rank = (crand(rng, (4, 2)) @ crand(rng, (2, 5))).astype(dtype)
    return {
        "solve": (la.solve, np.linalg.solve, (a, crand(rng, (2, 4, 3), dtype))),
        "solve_vector": (la.solve, np.linalg.solve, (a[0], crand(rng, (4,), dtype))),
        "inv": (la.inv, np.linalg.inv, (a,)),
        "det_lu": (la.det, np.linalg.det, (well_conditioned(rng, (2, 5, 5), dtype),)),
        "det_2x2": (la.det, np.linalg.det, (a[:, :2, :2],)),
        "det_3x3": (la.det, np.linalg.det, (a[:, :3, :3],)),
        "slogdet": (lambda x: tuple(la.slogdet(x)), lambda x: tuple(np.linalg.slogdet(x)), (a,)),
        "slogdet_2x2": (lambda x: tuple(la.slogdet(x)), lambda x: tuple(np.linalg.slogdet(x)), (a[:, :2, :2],)),
        "cholesky": (la.cholesky, np.linalg.cholesky, (h,)),
        "cholesky_upper": (lambda x: la.cholesky(x, upper=True), lambda x: np.linalg.cholesky(x, upper=True), (h,)),
        "eigvalsh": (la.eigvalsh, np.linalg.eigvalsh, (h,)),
        "svdvals": (la.svdvals, lambda x: np.linalg.svd(x, compute_uv=False), (w,)),
        "svd_hermitian": (lambda x: la.svd(x, hermitian=True, compute_uv=False),
                          lambda x: np.linalg.svd(x, hermitian=True, compute_uv=False), (h,)),
        "pinv": (la.pinv, np.linalg.pinv, (w,)),
        "pinv_hermitian": (lambda x: la.pinv(x, hermitian=True), lambda x: np.linalg.pinv(x, hermitian=True), (h,)),
        "matrix_rank": (la.matrix_rank, np.linalg.matrix_rank, (low_rank,)),
        "lstsq": (lambda x, y: la.lstsq(x, y)[:3], lambda x, y: np.linalg.lstsq(x, y)[:3],
                  (w, crand(rng, (5, 2), dtype))),
        "norm_2": (lambda x: la.norm(x, 2), lambda x: np.linalg.norm(x, 2), (w,)),
        "norm_nuc": (lambda x: la.norm(x, "nuc"), lambda x: np.linalg.norm(x, "nuc"), (w,)),
        "cond": (la.cond, np.linalg.cond, (a,)),
        "qr_r": (lambda x: la.qr(x, mode="r"), lambda x: np.linalg.qr(x, mode="r"), (w,)),
        "matrix_power": (lambda x: la.matrix_power(x, -2), lambda x: np.linalg.matrix_power(x, -2), (a,)),
    }


@pytest.mark.parametrize("dtype", CDTYPES)
@pytest.mark.parametrize("name", sorted(_numpy_cases(np.random.default_rng(0), np.complex64)))
def test_numpy_linalg_matches_numpy_eager_and_native(dtype, name):
    f, want_f, args = _numpy_cases(rng_for("np", name), dtype)[name]
    got, want = f(*args), want_f(*args)
    for g, w in zip(tree.tree_leaves(got), tree.tree_leaves(want)):
        g = np.asarray(g)
        assert g.dtype.kind == np.asarray(w).dtype.kind or g.dtype.kind == "i", (g.dtype, np.asarray(w).dtype)
        np.testing.assert_allclose(g, w, **tol(dtype))
    check_jit(f, *args, **tol(dtype))


def test_slogdet_of_a_singular_complex_matrix_and_qr_method_raise_as_jax():
    a = crand(rng_for("sing"), (4, 4))
    a[:, 2] = 0                                 # an exactly zero pivot
    sign, logdet = la.slogdet(a)
    assert complex(sign) == 0 and float(logdet) == -np.inf
    with pytest.raises(NotImplementedError, match="complex"):
        la.slogdet(a, method="qr")


# --- derivatives vs finite differences (complex128, complex tangents and cotangents) -----------------------

def check_complex_grads(f, args, eps=1e-6, rtol=1e-6, seed=0):
    """``jvp`` against central differences along random complex directions (real and imaginary
    parts of every entry move), and ``vjp`` against the jvp through JAX's pairing ``Re sum(ct * t)``
    (the transpose of an R-linear map, no conjugation)."""
    rng = np.random.default_rng(seed)
    tangents = [crand(rng, np.shape(a)) for a in args]
    _, jt = fgrad.jvp(f, tuple(args), tuple(tangents))
    plus = f(*[a + eps * t for a, t in zip(args, tangents)])
    minus = f(*[a - eps * t for a, t in zip(args, tangents)])
    fd = tree.tree_map(lambda p, m: (np.asarray(p) - np.asarray(m)) / (2 * eps), plus, minus)
    for got, want in zip(tree.tree_leaves(jt), tree.tree_leaves(fd)):
        scale = 1 + np.abs(want).max()
        np.testing.assert_allclose(np.asarray(got), want, rtol=rtol, atol=rtol * scale,
                                   err_msg="jvp disagrees with finite differences")
    out, vjp = fgrad.vjp(f, *args)
    cts = tree.tree_map(lambda o: crand(rng, np.shape(o)) if np.iscomplexobj(np.asarray(o))
                        else rng.standard_normal(np.shape(o)), out)
    cts_in = vjp(tree.tree_map(fnp.asarray, cts))
    lhs = sum(np.sum(np.asarray(c) * w).real for c, w in zip(tree.tree_leaves(cts), tree.tree_leaves(fd)))
    rhs = sum(np.sum(np.asarray(c) * t).real for c, t in zip(cts_in, tangents))
    np.testing.assert_allclose(rhs, lhs, rtol=rtol * 10, atol=rtol * 10, err_msg="vjp disagrees with jvp")


@FEW
@given(seed=st.integers(0, 2 ** 31), n=st.integers(1, 4), batch=st.sampled_from([(), (2,)]))
def test_cholesky_derivatives(seed, n, batch):
    """Through the input's Hermitian part (potrf reads the diagonal's real part only; JAX's rule
    for a non-Hermitian tangent is checked against JAX below)."""
    check_complex_grads(lambda x: L.cholesky(x),
                        [hermitian_pd(np.random.default_rng(seed), batch + (n, n))])


@FEW
@given(seed=st.integers(0, 2 ** 31), flags=st.tuples(*[st.booleans()] * 5), m=st.integers(1, 4),
       n=st.integers(1, 3))
def test_triangular_solve_derivatives(seed, flags, m, n):
    left_side, lower, transpose_a, conjugate_a, unit_diagonal = flags
    rng = np.random.default_rng(seed)
    b = crand(rng, (m, n) if left_side else (n, m))

    def f(a, b):
        return L.triangular_solve(a, b, left_side=left_side, lower=lower, transpose_a=transpose_a,
                                  conjugate_a=conjugate_a, unit_diagonal=unit_diagonal)
    check_complex_grads(f, [well_conditioned(rng, (m, m)), b])


@FEW
@given(seed=st.integers(0, 2 ** 31), m=st.integers(1, 5), n=st.integers(1, 5))
def test_lu_derivatives(seed, m, n):
    check_complex_grads(lambda x: L.lu(x)[0], [well_conditioned(np.random.default_rng(seed), (m, n), boost=4.0)])


@FEW
@given(seed=st.integers(0, 2 ** 31), m=st.integers(1, 5), n=st.integers(1, 5), full=st.booleans())
def test_qr_derivatives(seed, m, n, full):
    check_complex_grads(lambda x: L.qr(x, full_matrices=full), [well_conditioned(np.random.default_rng(seed), (m, n))])


def _separated_hermitian(rng, n):
    return hermitian(rng, (n, n)) + np.diag(np.arange(n) * 3.0)


@FEW
@given(seed=st.integers(0, 2 ** 31), n=st.integers(1, 5), lower=st.booleans())
def test_eigh_derivatives_of_eigenvalues_and_of_phase_free_functions_of_eigenvectors(seed, n, lower):
    """Eigenvectors are defined up to a phase each: their derivatives are checked through
    ``|v|^2`` and the projectors ``v_i v_i^H``, which do not depend on it."""
    a = _separated_hermitian(np.random.default_rng(seed), n)
    check_complex_grads(lambda x: L.eigh(x, lower=lower)[1], [a])
    check_complex_grads(lambda x: fnp.abs(L.eigh(x, lower=lower)[0]) ** 2, [a])
    check_complex_grads(lambda x: (lambda v: v[:, :1] @ fnp.conj(v[:, :1]).T)(L.eigh(x, lower=lower)[0]), [a])


@FEW
@given(seed=st.integers(0, 2 ** 31), m=st.integers(1, 5), n=st.integers(1, 5))
def test_svd_derivatives_of_singular_values_and_of_phase_free_functions_of_vectors(seed, m, n):
    rng = np.random.default_rng(seed)
    k = min(m, n)
    u, _ = np.linalg.qr(crand(rng, (m, k)))
    v, _ = np.linalg.qr(crand(rng, (n, k)))
    a = (u * (np.arange(k, 0, -1) + 1.0)) @ H(v)          # separated, non-zero singular values
    check_complex_grads(lambda x: L.svd(x, compute_uv=False), [a])
    check_complex_grads(lambda x: fnp.abs(L.svd(x, full_matrices=False)[0]) ** 2, [a])
    check_complex_grads(lambda x: fnp.abs(L.svd(x, full_matrices=False)[2]) ** 2, [a])
    check_complex_grads(lambda x: (lambda u, s, vh: (u[:, :1] * s[:1]) @ vh[:1])(*L.svd(x, full_matrices=False)), [a])


@pytest.mark.parametrize("name", ["solve", "inv", "det", "slogdet", "pinv", "lstsq", "cholesky_upper", "eigvalsh"])
def test_numpy_linalg_derivatives(name):
    rng = rng_for("np-grad", name)
    a = well_conditioned(rng, (4, 4))
    w = crand(rng, (5, 3))
    f, args = {
        "solve": (la.solve, [a, crand(rng, (4, 2))]),
        "inv": (la.inv, [a]),
        "det": (la.det, [a]),
        "slogdet": (lambda x: tuple(la.slogdet(x)), [a]),
        "pinv": (la.pinv, [w]),
        "lstsq": (lambda x, y: la.lstsq(x, y)[0], [w, crand(rng, (5, 2))]),
        "cholesky_upper": (lambda x: la.cholesky(x @ fnp.conj(x.T), upper=True), [a]),
        "eigvalsh": (la.eigvalsh, [_separated_hermitian(rng, 4)]),
    }[name]
    check_complex_grads(f, args)


# --- against JAX's recorded outputs: real-valued and holomorphic functions ----------------------------------

REAL_VALUED = funcs(fnp, L)
HOLOMORPHIC = holomorphic(fnp, L)


def same(got, key, rtol=1e-9, atol=1e-9):
    got, want = np.asarray(got), JAX[key]
    assert got.dtype == want.dtype, (key, got.dtype, want.dtype)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", sorted(REAL_VALUED))
def test_grad_of_real_valued_functions_matches_jax(name):
    f, arg = REAL_VALUED[name]
    value, grad = fgrad.value_and_grad(f)(JAX[arg])
    same(value, f"value_{name}")
    same(grad, f"grad_{name}")


@pytest.mark.parametrize("name", ["abs_det", "svd_sum", "eigvalsh_weighted", "qr", "cholesky", "inv"])
def test_grad_of_real_valued_functions_runs_natively_under_jit(name):
    f, arg = REAL_VALUED[name]
    got = check_jit(fgrad.grad(f), JAX[arg], rtol=1e-9, atol=1e-9)
    same(got, f"grad_{name}")


@pytest.mark.parametrize("name", sorted(HOLOMORPHIC))
def test_holomorphic_grad_matches_jax(name):
    f, arg = HOLOMORPHIC[name]
    value, grad = fgrad.value_and_grad(f, holomorphic=True)(JAX[arg])
    same(value, f"holo_value_{name}")
    same(grad, f"holo_grad_{name}")


def test_jvps_and_vjps_match_jax():
    t = JAX["tangent"]
    (w, _), (dw, _) = fgrad.jvp(la.eigh, (JAX["H"],), ((t + H(t)) / 2,))
    same(w, "eigh_w")
    same(dw, "eigh_dw")
    s, ds = fgrad.jvp(lambda x: la.svd(x, compute_uv=False), (JAX["W"],), (JAX["svd_t"],))
    same(s, "svd_s")
    same(ds, "svd_ds")
    L_, dL = fgrad.jvp(lambda x: L.cholesky(x, symmetrize_input=False), (JAX["H"],), (t,))
    same(L_, "chol_L")
    same(dL, "chol_dL")
    (sign, logdet), (dsign, dlogdet) = fgrad.jvp(lambda x: tuple(la.slogdet(x)), (JAX["A"],), (t,))
    for got, key in ((sign, "sign"), (logdet, "logdet"), (dsign, "dsign"), (dlogdet, "dlogdet")):
        same(got, f"slogdet_{key}")
    _, vjp = fgrad.vjp(la.solve, JAX["A"], JAX["B"])
    got_a, got_b = vjp(JAX["vjp_ct"])
    same(got_a, "vjp_solve_a")
    same(got_b, "vjp_solve_b")


# --- vmap -----------------------------------------------------------------------------------------------

def test_vmap_matches_a_loop_at_any_batch_position():
    rng = rng_for("vmap")
    check_vmap(lambda x: L.cholesky(x), (hermitian_pd(rng, (3, 4, 4)),), rtol=1e-10, atol=1e-10)
    check_vmap(lambda x: L.lu(x), (np.moveaxis(well_conditioned(rng, (3, 4, 5)), 0, 2),), in_axes=2)
    check_vmap(lambda x: L.qr(x, full_matrices=False), (crand(rng, (2, 3, 5, 3)),), in_axes=1,
               rtol=1e-10, atol=1e-10)
    check_vmap(lambda x: L.eigh(x), (hermitian(rng, (3, 4, 4)),), rtol=1e-8, atol=1e-8)
    check_vmap(lambda x: L.svd(x, full_matrices=False), (crand(rng, (3, 4, 2)),), rtol=1e-8, atol=1e-8)
    a, b = well_conditioned(rng, (3, 4, 4)), crand(rng, (3, 4, 2))
    for axes in [(0, 0), (None, 0), (0, None)]:
        args = (a[0] if axes[0] is None else a, b[0] if axes[1] is None else b)
        check_vmap(lambda p, q: L.triangular_solve(p, q, left_side=True, lower=True, transpose_a=True,
                                                   conjugate_a=True), args, in_axes=axes, rtol=1e-10, atol=1e-10)


def test_vmap_of_grad_and_jit_of_vmap_match_a_loop():
    a = well_conditioned(rng_for("vmap-grad"), (3, 4, 4))
    check_vmap(fgrad.grad(lambda x: fnp.abs(la.det(x))), (a,), rtol=1e-8, atol=1e-8)
    check_vmap(fgrad.grad(lambda x: fnp.sum(la.svd(x, compute_uv=False))), (a,), rtol=1e-8, atol=1e-8)
    check_jit(fgrad.vmap(lambda x: la.eigvalsh(x @ fnp.conj(x.T))), a, rtol=1e-9, atol=1e-9)


# --- scipy.linalg on complex matrices -----------------------------------------------------------------

def _scipy_cases(rng, dtype):
    from fgrad.scipy import linalg as fsl
    a = well_conditioned(rng, (4, 4), dtype)
    h = hermitian_pd(rng, (4, 4), dtype)
    b = crand(rng, (4, 2), dtype)
    cases = {
        "cholesky_upper": (lambda x: fsl.cholesky(x), lambda x: sla.cholesky(x), (h,)),
        "cholesky_lower": (lambda x: fsl.cholesky(x, lower=True), lambda x: sla.cholesky(x, lower=True), (h,)),
        "cho_solve_upper": (lambda x, y: fsl.cho_solve(fsl.cho_factor(x), y),
                            lambda x, y: sla.cho_solve(sla.cho_factor(x), y), (h, b)),
        "cho_solve_lower": (lambda x, y: fsl.cho_solve(fsl.cho_factor(x, lower=True), y),
                            lambda x, y: sla.cho_solve(sla.cho_factor(x, lower=True), y), (h, b)),
        "polar_right": (lambda x: fsl.polar(x), lambda x: sla.polar(x), (a,)),
        "polar_left": (lambda x: fsl.polar(x, side="left"), lambda x: sla.polar(x, side="left"), (a,)),
        "expm": (lambda x: fsl.expm(x), lambda x: sla.expm(x), (a * 0.3,)),
        "lu": (lambda x: fsl.lu(x), lambda x: sla.lu(x), (a,)),
        "lu_permute_l": (lambda x: fsl.lu(x, permute_l=True), lambda x: sla.lu(x, permute_l=True), (a,)),
        "qr": (lambda x: fsl.qr(x), lambda x: sla.qr(x), (a,)),
        "eigh_values": (lambda x: fsl.eigh(x, eigvals_only=True), lambda x: sla.eigh(x, eigvals_only=True), (h,)),
        "svd_values": (lambda x: fsl.svd(x, compute_uv=False), lambda x: sla.svd(x, compute_uv=False), (a,)),
        "inv": (fsl.inv, sla.inv, (a,)),
        "det": (fsl.det, sla.det, (a,)),
    }
    for trans in (0, 1, 2):
        cases[f"solve_triangular_{trans}"] = (
            lambda x, y, t=trans: fsl.solve_triangular(x, y, trans=t, lower=True),
            lambda x, y, t=trans: sla.solve_triangular(x, y, trans=t, lower=True), (a, b))
        cases[f"lu_solve_{trans}"] = (lambda x, y, t=trans: fsl.lu_solve(fsl.lu_factor(x), y, trans=t),
                                      lambda x, y, t=trans: sla.lu_solve(sla.lu_factor(x), y, trans=t), (a, b))
    for assume_a in ("gen", "sym", "her", "pos"):
        matrix = {"gen": a, "sym": a + a.T, "her": (h - 2 * np.eye(4)).astype(dtype), "pos": h}[assume_a]
        cases[f"solve_{assume_a}"] = (lambda x, y, k=assume_a: fsl.solve(x, y, assume_a=k, lower=True),
                                      lambda x, y, k=assume_a: sla.solve(x, y, assume_a=k, lower=True), (matrix, b))
    return cases


@pytest.mark.parametrize("dtype", CDTYPES)
@pytest.mark.parametrize("name", sorted(_scipy_cases(np.random.default_rng(0), np.complex64)))
def test_scipy_linalg_matches_scipy_eager_and_native(dtype, name):
    f, want_f, args = _scipy_cases(rng_for("scipy", name), dtype)[name]
    got, want = f(*args), want_f(*args)
    for g, w in zip(tree.tree_leaves(got), tree.tree_leaves(want)):
        assert np.asarray(g).dtype == (np.finfo(dtype).dtype if name.endswith("_values") else dtype)
        np.testing.assert_allclose(np.asarray(g), w, **tol(dtype))
    check_jit(f, *args, **tol(dtype))


def test_hermitian_svd_with_vectors_reconstructs_the_matrix_eager_and_native():
    a = hermitian(rng_for("herm-svd"), (2, 4, 4))
    a[1] -= 3 * np.eye(4)                                  # negative eigenvalues too

    def f(x):
        return tuple(la.svd(x, hermitian=True))
    for u, s, vh in (f(a), check_jit(f, a, rtol=1e-10, atol=1e-10)):
        u, s, vh = (np.asarray(t) for t in (u, s, vh))
        np.testing.assert_allclose(s, np.linalg.svd(a, compute_uv=False), rtol=1e-10)
        np.testing.assert_allclose((u * s[..., None, :]) @ vh, a, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(H(u) @ u, np.broadcast_to(np.eye(4), a.shape), atol=1e-10)
