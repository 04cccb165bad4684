"""``fgrad.numpy.linalg.eig`` / ``eigvals`` and ``lax.linalg.eig`` (issue 17): values vs NumPy
(hypothesis), jit natively (LAPACK's geev through a host callback inside the native program),
eigenvalue gradients vs JAX's (recorded by scripts/record_jax_complex.py) and finite
differences, vmap vs a Python loop."""
from __future__ import annotations

import pathlib

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import fgrad
from fgrad import lax
from fgrad import numpy as fnp
from tests.util import check_grads, check_vmap, natively

JAX = np.load(pathlib.Path(__file__).parent.parent / "numpy" / "data" / "jax_complex.npz")
C64 = np.dtype(np.complex64)


def _matrices(dtype, n, batch=()):
    # tiny entries (|x| < 1e-3) become 0: LAPACK's sgeev (fgrad's and JAX's alike) balances
    # [[2e-16, 2e-16], [1, 1]] into an inaccurate eigenvector, which no oracle here would accept
    part = st.floats(-3, 3, width=32, allow_subnormal=False).map(lambda v: 0.0 if abs(v) < 1e-3 else v)
    elements = st.builds(complex, part, part) if np.dtype(dtype).kind == "c" else part
    return hnp.arrays(dtype, batch + (n, n), elements=elements)


def _check_decomposition(a, w, v, tol):
    """``a v = v diag(w)``, unit columns, and NumPy's eigenvalues (as sets)."""
    a, w, v = np.asarray(a, np.complex128), np.asarray(w), np.asarray(v)
    scale = max(1.0, float(np.max(np.abs(a), initial=0)))
    np.testing.assert_allclose(a @ v, v * w[..., None, :], atol=tol * scale * a.shape[-1])
    np.testing.assert_allclose(np.linalg.norm(v, axis=-2), 1, rtol=tol)
    want = np.linalg.eigvals(a)
    _same_multiset(w, want, tol * scale * 10)


def _same_multiset(got, want, atol):
    """Each matrix's eigenvalues equal NumPy's as multisets (greedy nearest matching: a sort
    would order rounding-close values differently)."""
    for g_row, w_row in zip(np.reshape(got, (-1, np.shape(got)[-1])), np.reshape(want, (-1, np.shape(want)[-1]))):
        left = list(w_row)
        for g in g_row:
            k = int(np.argmin([abs(g - x) for x in left]))
            assert abs(g - left[k]) <= atol, (g_row, w_row)
            left.pop(k)


@pytest.mark.parametrize("dtype", [np.float32, np.complex64])
@given(data=st.data())
def test_eig_matches_numpy(dtype, data):
    n = data.draw(st.integers(1, 5))
    batch = data.draw(st.sampled_from([(), (2,)]))
    a = data.draw(_matrices(dtype, n, batch))
    w, v = fnp.linalg.eig(fnp.asarray(a))
    assert w.dtype == C64 and v.dtype == C64 and w.shape == batch + (n,) and v.shape == batch + (n, n)
    _check_decomposition(a, w, v, 2e-4)
    np.testing.assert_array_equal(np.asarray(fnp.linalg.eigvals(fnp.asarray(a))), np.asarray(w))


def test_eig_in_64_bits_left_vectors_and_errors():
    with fgrad.config.override(enable_x64=True):
        a = JAX["EIG_A"]
        w, vl, vr = lax.linalg.eig(fnp.asarray(a))
        assert w.dtype == np.complex128
        _check_decomposition(a, w, vr, 1e-12)
        np.testing.assert_allclose(np.conj(np.asarray(vl)).T @ a, np.asarray(w)[:, None] * np.conj(np.asarray(vl)).T,
                                   atol=1e-12)
        _same_multiset(np.asarray(w), JAX["EIG_W"], 1e-12)
        zw = fnp.linalg.eigvals(fnp.asarray(a + 1j * a[::-1]))
        _same_multiset(np.asarray(zw), JAX["EIG_ZW"], 1e-12)
    nan = fnp.linalg.eigvals(np.array([[np.nan, 1.0], [0.0, 1.0]], np.float32))
    assert np.all(np.isnan(np.asarray(nan).real) & np.isnan(np.asarray(nan).imag))      # as JAX
    with pytest.raises(ValueError, match="square"):
        fnp.linalg.eig(fnp.ones((2, 3)))
    with pytest.raises(TypeError, match="float32, float64, complex64 or complex128"):
        lax.linalg.eig(fnp.ones((2, 2), fnp.float16))


@pytest.mark.parametrize("dtype", [np.float32, np.complex64])
def test_jit_runs_natively_and_matches_eager(dtype):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 4, 4)).astype(dtype)
    if np.dtype(dtype).kind == "c":
        a = (a + 1j * rng.standard_normal((3, 4, 4))).astype(dtype)
    for f in (fnp.linalg.eigvals, lambda m: fnp.linalg.eig(m * 2)[1] + 1):
        np.testing.assert_allclose(natively(f, fnp.asarray(a)), np.asarray(f(fnp.asarray(a))), rtol=1e-6, atol=1e-6)


EIG_FUNCS = {
    "real2_imag": lambda a: fnp.sum(fnp.real(fnp.linalg.eigvals(a)) ** 2 + fnp.imag(fnp.linalg.eigvals(a))),
    "abs_prod": lambda a: fnp.abs(fnp.prod(fnp.linalg.eigvals(a) + 1j)),
    "exp_sum": lambda a: fnp.real(fnp.sum(fnp.exp(fnp.linalg.eigvals(a) * (0.5 - 0.25j)))),
}


@pytest.mark.parametrize("name", sorted(EIG_FUNCS))
def test_eigenvalue_grads_match_jax_and_finite_differences(name):
    f = EIG_FUNCS[name]
    with fgrad.config.override(enable_x64=True):
        a = fnp.asarray(JAX["EIG_A"])
        np.testing.assert_allclose(float(f(a)), JAX[f"eig_value_{name}"], rtol=1e-12)
        np.testing.assert_allclose(np.asarray(fgrad.grad(f)(a)), JAX[f"eig_grad_{name}"], rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(natively(fgrad.grad(f), a), JAX[f"eig_grad_{name}"], rtol=1e-9, atol=1e-10)
    check_grads(f, (JAX["EIG_A"],), order=1, modes=("fwd", "rev"))


def test_grad_through_complex_matrices_and_eigenvector_error():
    with fgrad.config.override(enable_x64=True):
        za = fnp.asarray(JAX["EIG_A"] + 1j * JAX["EIG_A"][::-1])
        grad = fgrad.grad(lambda z: fnp.sum(fnp.abs(fnp.linalg.eigvals(z)) ** 2))(za)
        np.testing.assert_allclose(np.asarray(grad), JAX["eig_grad_complex"], rtol=1e-9, atol=1e-10)
        with pytest.raises(NotImplementedError, match="non-symmetric eigenvectors"):
            fgrad.grad(lambda m: fnp.sum(fnp.real(fnp.linalg.eig(m)[1])))(fnp.asarray(JAX["EIG_A"]))


def test_vmap_matches_a_python_loop():
    rng = np.random.default_rng(2)
    a = fnp.asarray(rng.standard_normal((3, 4, 4)).astype(np.float32))
    check_vmap(lambda m: fnp.sort(fnp.real(fnp.linalg.eigvals(m))), (a,), rtol=1e-5, atol=1e-5)
    check_vmap(lambda m: fnp.linalg.eigvals(m), (fnp.moveaxis(a, 0, 2),), in_axes=2, rtol=1e-5, atol=1e-5)
    check_vmap(fgrad.grad(EIG_FUNCS["real2_imag"]), (a,), rtol=1e-3, atol=1e-3)
