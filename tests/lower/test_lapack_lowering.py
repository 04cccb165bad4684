"""Decompositions under jit call LAPACK inside the program's one native call
(``fgrad.lower.lapack``: ``ExternCall`` steps whose symbols ``fgrad.lower.extern`` binds when the
code is loaded). Each primitive jitted vs eager and vs what it must satisfy (L L^T = a,
a[perm] = L U, Q R = a, a v = v w, u s vh = a) for 1x1, odd, rectangular and batched float32 and
float64 matrices, with the native path asserted and the LAPACK routine checked in the program;
a decomposition fused into a larger program; grad and vmap under jit; a program reloaded from
the disk cache by a fresh process; the interpreter; the GPU (the program runs on the host, with a
warning); a missing SciPy; and ``ExternCall`` itself with a routine of the test's own."""
from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import fgrad
from fgrad import lax, numpy as fnp
from fgrad.backends import cpu
from fgrad.compile import pipeline
from fgrad.lower import complex_split, extern, kernel as K
from fgrad.lower.interpret import run_program
from fgrad.lower.schedule import lower_program
from fgrad.transforms.jit import closure_convert
from tests.util import check_grads, native

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LA = lax.linalg
SHAPES = [((), 1, 1), ((), 3, 3), ((), 5, 3), ((), 3, 5), ((2,), 4, 2), ((2, 3), 3, 4), ((1,), 6, 6)]
DTYPES = [np.float32, np.float64]




def tolerance(dtype) -> dict:
    return dict(rtol=2e-4, atol=2e-4) if np.dtype(dtype) == np.float32 else dict(rtol=1e-10, atol=1e-10)


def well_conditioned(rng, shape, dtype):
    x = rng.standard_normal(shape)
    k = min(shape[-2:])
    x[..., range(k), range(k)] += 4.0 * np.sign(x[..., range(k), range(k)] + 0.5)
    return x.astype(dtype)


def spd(rng, batch, n, dtype):
    x = rng.standard_normal(batch + (n, n))
    return (x @ np.swapaxes(x, -1, -2) + n * np.eye(n)).astype(dtype)


def mT(x):
    return np.swapaxes(x, -1, -2)


# --- what each decomposition must satisfy ----------------------------------------------------------

def check_cholesky(a, outs, tol):
    (l,) = outs
    assert np.all(np.triu(l, 1) == 0)
    np.testing.assert_allclose(l @ mT(l), a, **tol)


def check_lu(a, outs, tol):
    lu, piv, perm = outs
    m, n = a.shape[-2:]
    k = min(m, n)
    lower = np.tril(lu, -1)[..., :, :k] + np.eye(m, k, dtype=lu.dtype)
    upper = np.triu(lu)[..., :k, :]
    permuted = np.take_along_axis(a, perm[..., :, None].astype(np.int64), axis=-2)
    np.testing.assert_allclose(lower @ upper, permuted, **tol)
    assert piv.dtype == perm.dtype == np.int32 and np.all(np.sort(perm, -1) == np.arange(m))


def check_qr(a, outs, tol):
    q, r = outs
    np.testing.assert_allclose(q @ r, a, **tol)
    np.testing.assert_allclose(mT(q) @ q, np.broadcast_to(np.eye(q.shape[-1]), mT(q).shape[:-1] + (q.shape[-1],)), **tol)
    assert np.all(np.tril(r, -1) == 0)


def check_eigh(a, outs, tol):
    v, w = outs
    full = np.tril(a) + mT(np.tril(a, -1))
    np.testing.assert_allclose(full @ v, v * w[..., None, :], **tol)
    assert np.all(np.diff(w, axis=-1) >= 0)


def check_svd(a, outs, tol):
    u, s, vh = outs
    k = s.shape[-1]
    np.testing.assert_allclose((u[..., :, :k] * s[..., None, :]) @ vh[..., :k, :], a, **tol)
    assert np.all(np.diff(s, axis=-1) <= 0) and np.all(s >= 0)


def check_trsm(args, outs, tol, left_side, lower, transpose_a):
    a, b = args
    (x,) = outs
    tri = np.tril(a) if lower else np.triu(a)
    op = mT(tri) if transpose_a else tri
    np.testing.assert_allclose(op @ x if left_side else x @ op, b, **tol)


def cases(rng, batch, m, n, dtype):
    """(name, f, args, LAPACK routines the program must call, check(args, outs, tol))."""
    square = well_conditioned(rng, batch + (m, m), dtype)
    rect = well_conditioned(rng, batch + (m, n), dtype)
    p = "s" if np.dtype(dtype) == np.float32 else "d"
    out = [("cholesky", lambda a: [LA.cholesky(a, symmetrize_input=False)], [spd(rng, batch, m, dtype)],
            {"potrf"}, lambda args, outs, tol: check_cholesky(args[0], outs, tol)),
           ("lu", lambda a: list(LA.lu(a)), [rect], {"getrf"}, lambda args, outs, tol: check_lu(args[0], outs, tol)),
           ("eigh", lambda a: list(LA.eigh(a, symmetrize_input=False)), [square], {"syevd"},
            lambda args, outs, tol: check_eigh(args[0], outs, tol)),
           ("eigh_upper", lambda a: list(LA.eigh(mT(a), lower=False, symmetrize_input=False)), [square], {"syevd"},
            lambda args, outs, tol: check_eigh(args[0], outs, tol))]
    for full in (True, False):
        out.append((f"qr_full={full}", lambda a, full=full: list(LA.qr(a, full_matrices=full)), [rect],
                    {"geqrf", "orgqr"}, lambda args, outs, tol: check_qr(args[0], outs, tol)))
        out.append((f"svd_full={full}", lambda a, full=full: list(LA.svd(a, full_matrices=full)), [rect],
                    {"gesdd"}, lambda args, outs, tol: check_svd(args[0], outs, tol)))
    out.append(("svd_values", lambda a: [LA.svd(a, compute_uv=False)], [rect], {"gesdd"},
                lambda args, outs, tol: np.testing.assert_allclose(outs[0], np.linalg.svd(args[0], compute_uv=False), **tol)))
    for left, lower, trans, unit in [(True, True, False, False), (False, False, True, False),
                                     (True, False, True, True), (False, True, False, True)]:
        b = well_conditioned(rng, batch + ((m, n) if left else (n, m)), dtype)
        solve = (lambda a, b, left=left, lower=lower, trans=trans, unit=unit:
                 [LA.triangular_solve(a, b, left_side=left, lower=lower, transpose_a=trans, unit_diagonal=unit)])
        a = square.copy()
        if unit:
            a[..., range(m), range(m)] = 1.0       # what unit_diagonal assumes (it reads no diagonal)
            a *= 0.3
            a[..., range(m), range(m)] = 7.0       # ...and must not read
        check = (lambda args, outs, tol, left=left, lower=lower, trans=trans, unit=unit: check_trsm(
            (_unit(args[0]) if unit else args[0], args[1]), outs, tol, left, lower, trans))
        out.append((f"triangular_solve_{left}_{lower}_{trans}_{unit}", solve, [a, b], {"trsm"}, check))
    return [(name, f, args, {f"fgrad_lapack_{p}{r}" for r in routines}, check)
            for name, f, args, routines, check in out]


def _unit(a):
    a = a.copy()
    a[..., range(a.shape[-1]), range(a.shape[-1])] = 1.0
    return a


def extern_routines(f, args) -> set[str]:
    converted, _ = closure_convert(fgrad.make_jaxpr(f)(*args))
    program = lower_program(converted, target="cpu")
    return {s.routine for s in K.walk_steps(program.body) if isinstance(s, K.ExternCall)}


def as_numpy(outs):
    return [np.asarray(o) for o in outs]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("batch,m,n", SHAPES, ids=lambda s: str(s))
def test_jit_calls_lapack_and_matches_eager(batch, m, n, dtype):
    rng = np.random.default_rng(m * 10 + n)
    with fgrad.config.override(enable_x64=True):
        for name, f, args, routines, check in cases(rng, batch, m, n, dtype):
            args = [fnp.asarray(a) for a in args]
            eager = as_numpy(f(*args))
            with native():
                jitted = as_numpy(fgrad.jit(f)(*args))
            assert extern_routines(f, args) == routines, name
            for e, j in zip(eager, jitted):
                assert e.dtype == j.dtype == (np.int32 if e.dtype.kind == "i" else dtype), name
                assert e.shape == j.shape, name
                np.testing.assert_allclose(j, e, err_msg=name, **tolerance(dtype))
            check([np.asarray(a) for a in args], jitted, tolerance(dtype))


def test_failures_give_nan_as_eager():
    """cholesky of a matrix that is not positive definite, eigh and svd of non-finite input:
    NaN for that matrix only; lu of a singular matrix is no failure."""
    bad = np.stack([np.eye(3), -np.eye(3), np.diag([1.0, np.nan, 1.0])])
    nonfinite = np.stack([np.eye(3), np.where(np.eye(3) > 0, 1.0, np.inf)])
    fs = [(lambda a: [LA.cholesky(a)], bad), (lambda a: list(LA.eigh(a)), nonfinite),
          (lambda a: list(LA.svd(a)), nonfinite), (lambda a: list(LA.lu(a)), np.ones((2, 4, 4)))]
    with fgrad.config.override(enable_x64=True):
        for f, x in fs:
            eager = as_numpy(f(fnp.asarray(x)))
            with native():
                jitted = as_numpy(fgrad.jit(f)(fnp.asarray(x)))
            for e, j in zip(eager, jitted):
                np.testing.assert_array_equal(j, e)
    chol = as_numpy(fgrad.jit(lambda a: [LA.cholesky(a)])(fnp.asarray(bad.astype(np.float32))))[0]
    assert np.isfinite(chol[0]).all() and np.isnan(chol[1][np.tril_indices(3)]).all()  # (as eager, OpenBLAS's)
    assert (np.triu(chol[1], 1) == 0).all()   # JAX: tril(NaN), zeros above the diagonal


def test_empty_matrices_match_eager():
    with fgrad.config.override(enable_x64=True):
        for shape in [(0, 0), (3, 0), (0, 3), (2, 0, 3), (0, 2, 2)]:
            x = fnp.asarray(np.ones(shape))
            for f in (lambda a: list(LA.lu(a)), lambda a: list(LA.qr(a)), lambda a: list(LA.qr(a, full_matrices=False)),
                      lambda a: list(LA.svd(a)), lambda a: list(LA.svd(a, full_matrices=False))):
                eager, jitted = as_numpy(f(x)), as_numpy(fgrad.jit(f)(x))
                for e, j in zip(eager, jitted):
                    assert e.shape == j.shape and e.dtype == j.dtype
                    np.testing.assert_array_equal(j, e)


# --- in a larger program ----------------------------------------------------------------------------

def test_a_decomposition_fuses_into_a_larger_program():
    """Producers fuse into the copy the routine reads, consumers into the lazy reads of its
    results: a Gaussian-process style log-likelihood and a PCA projection in one program."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((7, 3))
    y = rng.standard_normal(7)

    def f(x, y):
        d = fnp.sum((x[:, None, :] - x[None, :, :]) ** 2, axis=-1)
        k = fnp.exp(-0.5 * d) + 0.1 * fnp.eye(7)
        chol = LA.cholesky(k)
        alpha = LA.triangular_solve(chol, y[:, None], left_side=True, lower=True)
        loglik = -0.5 * fnp.sum(alpha ** 2) - fnp.sum(fnp.log(fnp.diagonal(chol)))
        centred = x - fnp.mean(x, axis=0)
        _, s, vh = LA.svd(centred, full_matrices=False)
        return loglik, centred @ vh.T * 2.0, s ** 2

    with fgrad.config.override(enable_x64=True):
        with native():
            got = as_numpy(fgrad.jit(f)(fnp.asarray(x), fnp.asarray(y)))
        routines = extern_routines(f, (fnp.asarray(x), fnp.asarray(y)))
    assert routines == {"fgrad_lapack_dpotrf", "fgrad_lapack_dtrsm", "fgrad_lapack_dgesdd"}
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    chol = np.linalg.cholesky(np.exp(-0.5 * d) + 0.1 * np.eye(7))
    alpha = np.linalg.solve(chol, y)
    np.testing.assert_allclose(got[0], -0.5 * alpha @ alpha - np.log(np.diag(chol)).sum(), rtol=1e-10)
    centred = x - x.mean(0)
    _, s, vh = np.linalg.svd(centred, full_matrices=False)
    np.testing.assert_allclose(np.abs(got[1]), np.abs(centred @ vh.T * 2.0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got[2], s ** 2, rtol=1e-10)


# --- transforms under jit ---------------------------------------------------------------------------

def _sym(a):
    return a @ a.T + a.shape[-1] * fnp.eye(a.shape[-1])


GRAD_CASES = {
    "cholesky": lambda a: fnp.sum(LA.cholesky(_sym(a)) * fnp.arange(16.0).reshape(4, 4)),
    "triangular_solve": lambda a: fnp.sum(LA.triangular_solve(a + 6 * fnp.eye(4), a[:, :3] + 1.0, left_side=True,
                                                              lower=True) ** 2),
    "lu": lambda a: fnp.sum(LA.lu(a + 6 * fnp.eye(4))[0] * fnp.arange(16.0).reshape(4, 4)),
    "qr": lambda a: fnp.sum(LA.qr(a[:, :3], full_matrices=False)[1] * fnp.arange(9.0).reshape(3, 3))
    + fnp.sum(LA.qr(a[:, :3], full_matrices=False)[0] ** 3),
    "eigh": lambda a: fnp.sum(LA.eigh(_sym(a))[1] * fnp.arange(4.0))
    + fnp.sum(LA.eigh(_sym(a))[0] ** 2 * fnp.arange(16.0).reshape(4, 4)),
    "svd": lambda a: fnp.sum(LA.svd(a[:, :3], full_matrices=False)[1] * fnp.arange(3.0))
    + fnp.sum((LA.svd(a[:, :3], full_matrices=False)[0] ** 2) * fnp.arange(12.0).reshape(4, 3)),
}


@pytest.mark.parametrize("name", sorted(GRAD_CASES))
def test_grad_under_jit_matches_finite_differences(name):
    f = GRAD_CASES[name]
    rng = np.random.default_rng(7)
    a = rng.standard_normal((4, 4))
    with fgrad.config.override(enable_x64=True):
        x = fnp.asarray(a)
        with native():
            g = np.asarray(fgrad.jit(fgrad.grad(f))(x))
        eps, want = 1e-6, np.zeros_like(a)
        for i in np.ndindex(a.shape):
            d = np.zeros_like(a)
            d[i] = eps
            want[i] = (float(f(fnp.asarray(a + d))) - float(f(fnp.asarray(a - d)))) / (2 * eps)
        np.testing.assert_allclose(g, want, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(g, np.asarray(fgrad.grad(f)(x)), rtol=1e-9, atol=1e-9)
        assert extern_routines(fgrad.grad(f), (x,))      # the derivative program calls LAPACK too
    check_grads(fgrad.jit(f), (a,), order=1)


@pytest.mark.parametrize("name", ["cholesky", "lu", "qr", "eigh", "svd", "triangular_solve"])
def test_vmap_under_jit_matches_a_loop(name):
    fs = {"cholesky": lambda a: LA.cholesky(_sym(a)), "lu": lambda a: LA.lu(a),
          "qr": lambda a: LA.qr(a), "eigh": lambda a: LA.eigh(_sym(a)), "svd": lambda a: LA.svd(a[:, :3]),
          "triangular_solve": lambda a: LA.triangular_solve(a + 5 * fnp.eye(4), a.T, lower=True)}
    f = fs[name]
    xs = np.random.default_rng(8).standard_normal((3, 4, 4)).astype(np.float32)
    with native():
        got = fgrad.tree.tree_leaves(fgrad.jit(fgrad.vmap(f))(fnp.asarray(xs)))
    loop = [fgrad.tree.tree_leaves(f(fnp.asarray(x))) for x in xs]
    for k, g in enumerate(got):
        np.testing.assert_allclose(np.asarray(g), np.stack([np.asarray(r[k]) for r in loop]), rtol=1e-4, atol=1e-4)


# --- the interpreter ---------------------------------------------------------------------------------

@pytest.mark.parametrize("batch,m,n", [((), 3, 3), ((2,), 4, 3)], ids=str)
def test_the_interpreter_runs_the_lapack_programs(batch, m, n):
    """The IR's definition calls each routine through ctypes, on the same pointers."""
    rng = np.random.default_rng(11)
    with fgrad.config.override(enable_x64=True):
        for name, f, args, routines, check in cases(rng, batch, m, n, np.float64):
            converted, consts = closure_convert(fgrad.make_jaxpr(f)(*[fnp.asarray(a) for a in args]))
            program = lower_program(converted, target="cpu")
            got = run_program(program, *[np.asarray(c) for c in consts], *args)
            eager = as_numpy(f(*[fnp.asarray(a) for a in args]))
            for e, g in zip(eager, got):
                np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-10, err_msg=name)


# --- the disk cache: object code names the routine, the loader binds it --------------------------------

#: every decomposition in one program (run by the test and by the script, in fresh processes)
PROGRAM = textwrap.dedent("""
    def f(a):
        l = lax.linalg.cholesky(a @ a.T + 4 * fnp.eye(4))
        q, r = lax.linalg.qr(l + 1.0)
        u, s, vh = lax.linalg.svd(r)
        v, w = lax.linalg.eigh(a + a.T)
        lu, piv, perm = lax.linalg.lu(a)
        x = lax.linalg.triangular_solve(l, a, left_side=True, lower=True)
        return q, s, w, lu, perm, x
""")

#: a fresh process's first lines: with "warm", lowering or LLVM again fails the run
RELOAD_PRELUDE = textwrap.dedent("""
    import sys, numpy as np, fgrad
    from fgrad import lax, numpy as fnp
    from fgrad.backends import llvm_pool
    from fgrad.compile import pipeline
    if sys.argv[1] == "warm":
        def fail(*a, **k):
            raise SystemExit("lowered or compiled again: the program should load from the disk cache")
        pipeline.lower_program = fail
        llvm_pool.compile_modules = fail
    fgrad.config.update("enable_x64", True)
""")

RELOAD_SCRIPT = RELOAD_PRELUDE + PROGRAM + textwrap.dedent("""
    outs = fgrad.jit(f)(fnp.asarray(np.arange(16.0).reshape(4, 4) / 7.0 + np.eye(4)))
    np.save(sys.argv[2], np.concatenate([np.asarray(o, np.float64).ravel() for o in outs]))
""")


def test_a_program_reloaded_from_the_disk_cache_in_a_fresh_process(tmp_path):
    """The first process compiles (LLVM in worker processes that never bind the routine) and
    saves; the second loads the objects and binds the LAPACK symbols itself."""
    script = tmp_path / "reload.py"
    script.write_text(RELOAD_SCRIPT)
    env = dict(os.environ, FGRAD_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=ROOT)
    runs = {}
    for run in ("cold", "warm"):
        done = subprocess.run([sys.executable, str(script), run, str(tmp_path / f"{run}.npy")], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[run] = np.load(tmp_path / f"{run}.npy")
    assert list((tmp_path / "cache" / "llvm").glob("*.program"))
    np.testing.assert_array_equal(runs["warm"], runs["cold"])
    namespace: dict = {"lax": lax, "fnp": fnp}
    exec(PROGRAM, namespace)
    with fgrad.config.override(enable_x64=True):
        eager = namespace["f"](fnp.asarray(np.arange(16.0).reshape(4, 4) / 7.0 + np.eye(4)))
        want = np.concatenate([np.asarray(o, np.float64).ravel() for o in eager])
    np.testing.assert_allclose(runs["warm"], want, rtol=1e-10, atol=1e-12)


def test_the_manifest_names_the_routines_to_bind(tmp_path, monkeypatch):
    monkeypatch.setenv("FGRAD_CACHE_DIR", str(tmp_path))
    x = fnp.asarray(np.eye(3, dtype=np.float32) * 2)
    fgrad.jit(lambda a: LA.cholesky(a) + 1.0)(x)
    manifests = [cpu._disk_cache.read(p) for p in (tmp_path / "llvm").glob("*.program")]
    assert any(pickle.loads(m)["externs"] == ["fgrad_lapack_spotrf"] for m in manifests)


# --- the GPU: the program runs on the host, and says so ---------------------------------------------------

from tests.backends.emulated_gpu import emulated  # noqa: F401,E402 (the fixture)


def test_on_the_emulated_gpu_a_decomposition_runs_on_the_host_with_a_warning(emulated):
    rng = np.random.default_rng(5)
    a = spd(rng, (2,), 4, np.float32)
    f = lambda a: (LA.cholesky(a) * 2.0, LA.eigh(a)[1])
    with fgrad.config.override(backend="cpu"):
        want = [np.asarray(v) for v in fgrad.jit(f)(fnp.asarray(a))]
    f = fgrad.jit(f)
    with fgrad.config.override(backend="cuda"):
        with pytest.warns(fgrad.HostFallbackWarning, match=r"LAPACK \(spotrf, ssyevd"):
            got = f(fgrad.device_put(a))
        assert all(isinstance(v, fgrad.backends.cuda.CudaArray) for v in got)
        got = [np.asarray(v) for v in got]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)


def test_the_cuda_renderer_refuses_an_extern_call_loudly():
    from fgrad.lower.cuda import render_program
    converted, _ = closure_convert(fgrad.make_jaxpr(lambda a: LA.qr(a))(fnp.asarray(np.eye(3, dtype=np.float32))))
    program = lower_program(converted, target="gpu")
    with pytest.raises(NotImplementedError, match="fgrad_lapack_sgeqrf.*host CPU"):
        render_program(program)


# --- without SciPy --------------------------------------------------------------------------------------

def test_without_scipy_the_lowering_says_to_install_it(monkeypatch, tmp_path):
    import scipy.linalg
    monkeypatch.setenv("FGRAD_CACHE_DIR", str(tmp_path))
    monkeypatch.delattr(scipy.linalg, "cython_lapack")
    monkeypatch.setitem(sys.modules, "scipy.linalg.cython_lapack", None)
    monkeypatch.setattr(extern, "_addresses", {})
    with pytest.raises(extern.MissingSciPy, match="pip install scipy"):
        fgrad.jit(lambda a: LA.cholesky(a) * 3.0)(fnp.asarray(np.eye(2, dtype=np.float32)))


# --- ExternCall itself ----------------------------------------------------------------------------------

_SCALE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)


@_SCALE
def _scale_rows(n_ptr, factor_ptr, data_ptr):
    """``data[:n] *= factor`` (a routine of the test's own, Fortran style: every argument by pointer)."""
    n = ctypes.c_int32.from_address(n_ptr).value
    factor = ctypes.c_double.from_address(factor_ptr).value
    data = (ctypes.c_double * n).from_address(data_ptr)
    for i in range(n):
        data[i] *= factor


def _scaling_program():
    x, out = K.Buffer("x", K.float64, (3, 4)), K.Buffer("out", K.float64, (3, 4))
    work, row = K.Buffer("work", K.float64, (3, 4)), K.Buffer("row", K.INDEX, ())
    p, q = K.Param("p", K.float64, 12), K.Param("q", K.float64, 12)
    i = K.Var("i")
    copy = K.Kernel("copy", (p, q), (K.Range(i, 0, 12, (q.store(i, p[i]),)),))
    scale = K.ExternCall("fgrad_test_scale", (K.Const(3, K.int32), K.Const(10.0, K.float64),
                                              K.BufferAt(work, row, 4, 1)))
    return K.Program("scaled", (x,), (out,), (K.Call(copy, (x, work)), K.Loop(3, (scale,), row),
                                             K.Call(copy, (work, out))))


def test_extern_call_of_a_registered_routine_in_llvm_and_the_interpreter(tmp_path, monkeypatch):
    monkeypatch.setenv("FGRAD_CACHE_DIR", str(tmp_path))
    extern.register_routine("fgrad_test_scale", lambda: ctypes.cast(_scale_rows, ctypes.c_void_p).value)
    program = _scaling_program()
    text = str(program)
    assert "extern fgrad_test_scale(3:i32, 10.0:f64, work[row*4+1:])" in text
    x = np.arange(12.0).reshape(3, 4)
    want = x.copy()
    want[:, 1:] *= 10.0
    np.testing.assert_array_equal(run_program(program, x)[0], want)
    np.testing.assert_array_equal(cpu.compile_program(program)(x)[0], want)


def test_extern_call_arguments_are_checked():
    buf = K.Buffer("b", K.float32, (4,))
    with pytest.raises(TypeError, match="a Buffer, a BufferAt or a Const"):
        K.ExternCall("fgrad_lapack_spotrf", (buf, 3))
    with pytest.raises(ValueError, match="not an identifier"):
        K.ExternCall("not a name", (buf,))
    with pytest.raises(ValueError, match="stride must be a non-negative int"):
        K.BufferAt(buf, K.Buffer("i", K.INDEX, ()), -1)
    with pytest.raises(TypeError, match="index of a BufferAt"):
        K.BufferAt(buf, K.Buffer("f", K.float32, ()), 1)
    with pytest.raises(KeyError, match="no external routine"):
        extern.routine_address("fgrad_nothing_here")


def test_the_interpreter_bounds_checks_buffer_at():
    x, out = K.Buffer("x", K.float64, (4,)), K.Buffer("out", K.float64, (4,))
    p, q = K.Param("p", K.float64, 4), K.Param("q", K.float64, 4)
    i = K.Var("i")
    copy = K.Kernel("copy", (p, q), (K.Range(i, 0, 4, (q.store(i, p[i]),)),))
    call = K.ExternCall("fgrad_lapack_dscal", (K.Const(1, K.int32), K.Const(2.0, K.float64),
                                               K.BufferAt(out, offset=5), K.Const(1, K.int32)))
    program = K.Program("oob", (x,), (out,), (K.Call(copy, (x, out)), call))
    with pytest.raises(IndexError, match="element 5 of a buffer of 4"):
        run_program(program, np.ones(4))


def test_decompositions_inside_scan_and_cond_bodies():
    """A routine call nested in the program's own loops and branches (its batch loop inside
    scan's loop; its scratch buffers live for the whole enclosing loop)."""
    rng = np.random.default_rng(12)
    xs = spd(rng, (5,), 3, np.float64)

    def f(xs):
        def body(carry, a):
            l = LA.cholesky(a)
            w = fgrad.lax.cond(carry > 0, lambda a: LA.eigh(a)[1], lambda a: LA.svd(a, compute_uv=False), a)
            return -carry + 1e-3 * fnp.sum(l), w          # the sign alternates: both branches run
        return fgrad.lax.scan(body, fnp.asarray(0.5), xs)

    with fgrad.config.override(enable_x64=True):
        with native():
            carry, ws = fgrad.jit(f)(fnp.asarray(xs))
    c, want = 0.5, []
    for a in xs:
        want.append(np.linalg.eigvalsh(a) if c > 0 else np.linalg.svd(a, compute_uv=False))
        c = -c + 1e-3 * np.linalg.cholesky(a).sum()
    np.testing.assert_allclose(float(carry), c, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(ws), np.stack(want), rtol=1e-10)


# --- complex matrices: the c/z routines on the parts interleaved --------------------------------------

def _crand(rng, shape, dtype):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


def complex_cases(rng, dtype):
    """(name, f, args, routines): each decomposition of complex matrices and what it must call."""
    a = _crand(rng, (2, 4, 4), dtype) + 3 * np.eye(4, dtype=dtype)
    h = (a @ np.conj(mT(a))).astype(dtype)
    w = _crand(rng, (3, 5), dtype)
    return [("cholesky", lambda x: [LA.cholesky(x)], [h], {"potrf"}),
            ("lu", lambda x: list(LA.lu(x)), [w], {"getrf"}),
            ("qr", lambda x: list(LA.qr(x, full_matrices=True)), [w.T.copy()], {"geqrf", "ungqr"}),
            ("eigh", lambda x: list(LA.eigh(x, lower=False)), [h], {"heevd"}),
            ("svd", lambda x: list(LA.svd(x, full_matrices=False)), [w], {"gesdd"}),
            ("svd_values", lambda x: [LA.svd(x, compute_uv=False)], [w.T.copy()], {"gesdd"}),
            ("triangular_solve", lambda x, b: [LA.triangular_solve(x, b, left_side=True, lower=True, transpose_a=True,
                                                                     conjugate_a=True)],
             [a, _crand(rng, (2, 4, 3), dtype)], {"trsm"})]


def split_program(f, args):
    """The real program a jitted complex ``f`` compiles (the parts' program), lowered."""
    converted, consts = closure_convert(fgrad.make_jaxpr(f)(*[fnp.asarray(a) for a in args]))
    assert not consts
    split = complex_split.split_complex(converted)
    return split, lower_program(split.closed, target="cpu")


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128], ids=lambda d: np.dtype(d).name)
def test_complex_decompositions_call_the_complex_routines_natively_and_in_the_interpreter(dtype):
    rng = np.random.default_rng(21)
    prefix = "c" if np.dtype(dtype) == np.complex64 else "z"
    with fgrad.config.override(enable_x64=True):
        for name, f, args, routines in complex_cases(rng, dtype):
            split, program = split_program(f, args)
            called = {s.routine for s in K.walk_steps(program.body) if isinstance(s, K.ExternCall)}
            assert called == {f"fgrad_lapack_{prefix}{r}" for r in routines}, name
            eager = as_numpy(f(*[fnp.asarray(a) for a in args]))
            interpreted = split.wrap(lambda *parts: run_program(program, *parts))(*args)
            with native():
                jitted = as_numpy(fgrad.jit(f)(*[fnp.asarray(a) for a in args]))
            for e, i, j in zip(eager, interpreted, jitted):
                assert e.dtype == i.dtype == j.dtype, name
                np.testing.assert_allclose(i, e, err_msg=name, **tolerance(np.finfo(dtype).dtype))
                np.testing.assert_allclose(j, e, err_msg=name, **tolerance(np.finfo(dtype).dtype))


COMPLEX_RELOAD_SCRIPT = RELOAD_PRELUDE + textwrap.dedent("""

    def f(a):
        h = a @ fnp.conj(a.T) + 4 * fnp.eye(4)
        q, r = lax.linalg.qr(lax.linalg.cholesky(h) + 1j)
        v, w = lax.linalg.eigh(h)
        return q, lax.linalg.svd(r, compute_uv=False), w, fnp.linalg.solve(a, h)
    a = np.arange(16.0).reshape(4, 4) / 7.0 + 1j * np.eye(4) + np.eye(4)
    outs = fgrad.jit(f)(fnp.asarray(a))
    np.save(sys.argv[2], np.concatenate([np.asarray(o, np.complex128).ravel() for o in outs]))
""")


def test_a_complex_program_reloaded_from_the_disk_cache_in_a_fresh_process(tmp_path):
    script = tmp_path / "reload.py"
    script.write_text(COMPLEX_RELOAD_SCRIPT)
    env = dict(os.environ, FGRAD_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=ROOT)
    runs = {}
    for run in ("cold", "warm"):
        done = subprocess.run([sys.executable, str(script), run, str(tmp_path / f"{run}.npy")], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[run] = np.load(tmp_path / f"{run}.npy")
    manifests = [pickle.loads(cpu._disk_cache.read(p)) for p in (tmp_path / "cache" / "llvm").glob("*.program")]
    assert any({"fgrad_lapack_zpotrf", "fgrad_lapack_zheevd", "fgrad_lapack_zgesdd"} <= set(m["externs"])
               for m in manifests)
    np.testing.assert_array_equal(runs["warm"], runs["cold"])
