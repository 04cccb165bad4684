"""fgrad.scipy.linalg's special matrices against scipy.linalg: values, dtypes with and without
x64 (JAX's, recorded from jax 0.10.2 where they differ from SciPy's), batching, jit, vmap,
gradients against finite differences, and the errors JAX raises for bad input."""
import numpy as np
import pytest
import scipy.linalg as sla
from hypothesis import given, settings, strategies as st

import fgrad
from fgrad.scipy import linalg as fsl
from tests.util import check_grads, check_vmap

FEW = settings(max_examples=10)


def close(got, want, rtol=1e-12, atol=1e-12):
    got = np.asarray(got)
    assert got.shape == np.shape(want), (got.shape, np.shape(want))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


@pytest.fixture
def x64():
    with fgrad.config.override(enable_x64=True):
        yield


vectors = st.integers(1, 6).map(lambda n: np.random.default_rng(n).standard_normal(n))


@FEW
@given(vectors, vectors)
def test_vector_built_matrices_match_scipy(c, r):
    with fgrad.config.override(enable_x64=True):
        close(fsl.circulant(c), sla.circulant(c))
        close(fsl.hankel(c, r), sla.hankel(c, r))
        close(fsl.hankel(c), sla.hankel(c))
        close(fsl.toeplitz(c, r), sla.toeplitz(c, r))
        close(fsl.fiedler(c), sla.fiedler(c))
        if len(c) >= 2:
            close(fsl.companion(c), sla.companion(c))
            close(fsl.fiedler_companion(c), sla.fiedler_companion(c))
            close(fsl.leslie(c, c[1:]), sla.leslie(c, c[1:]))
        for mode in ("full", "same", "valid"):
            close(fsl.convolution_matrix(c, len(r), mode), sla.convolution_matrix(c, len(r), mode))


def test_complex_toeplitz_is_hermitian_and_complex_inputs_keep_their_type(x64):
    z = np.array([1.0, 2j, 3 - 1j])
    close(fsl.toeplitz(z), sla.toeplitz(z))
    close(fsl.hankel(z), sla.hankel(z))
    close(fsl.companion(z), sla.companion(z))
    got = fsl.fiedler(z)                      # |a_i - a_j|: real, as JAX
    assert got.dtype == np.float64
    close(got, np.abs(z[:, None] - z[None, :]))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_fixed_matrices_match_scipy(n, x64):
    close(fsl.hilbert(n), sla.hilbert(n))
    close(fsl.invhilbert(n), sla.invhilbert(n), rtol=1e-9)
    for kind in ("symmetric", "lower", "upper"):
        close(fsl.pascal(n, kind), sla.pascal(n, kind))
        close(fsl.invpascal(n, kind), sla.invpascal(n, kind))
    close(fsl.helmert(n), sla.helmert(n))
    close(fsl.helmert(n, full=True), sla.helmert(n, full=True))
    for scale in (None, "sqrtn", "n"):
        close(fsl.dft(n, scale), sla.dft(n, scale))
    if n & (n - 1) == 0:
        close(fsl.hadamard(n), sla.hadamard(n))


def test_dft_is_the_fft_and_inverse_pairs_are_inverses(x64):
    x = np.random.default_rng(1).standard_normal(6)
    close(fsl.dft(6) @ x, np.fft.fft(x))
    close(fsl.pascal(6) @ fsl.invpascal(6), np.eye(6))
    close(fsl.hilbert(5) @ fsl.invhilbert(5), np.eye(5), atol=1e-8)


# dtypes recorded from jax 0.10.2 (x64 off, x64 on)
DTYPE_CASES = [
    (lambda: fsl.circulant(np.array([1, 2, 3])), ("int32", "int64")),
    (lambda: fsl.hankel(np.array([1, 2, 3]), np.array([3.0, 4.0])), ("float32", "float64")),
    (lambda: fsl.leslie(np.array([1, 2, 3]), np.array([5, 6])), ("int32", "int64")),
    (lambda: fsl.companion(np.array([1, 2, 3])), ("float32", "float64")),
    (lambda: fsl.companion(np.array([1, 2, 3], np.float32)), ("float32", "float32")),
    (lambda: fsl.fiedler_companion(np.array([1, 2, 3, 4])), ("float32", "float64")),
    (lambda: fsl.fiedler(np.array([1, 4, 12])), ("int32", "int64")),
    (lambda: fsl.fiedler(np.array([1, 5], np.uint8)), ("uint8", "uint8")),
    (lambda: fsl.convolution_matrix(np.array([1, 2, 3]), 4), ("int32", "int64")),
    (lambda: fsl.dft(3), ("complex64", "complex128")),
    (lambda: fsl.dft(3, dtype=np.complex128), ("complex64", "complex128")),
    (lambda: fsl.hadamard(4), ("int32", "int64")),
    (lambda: fsl.hadamard(4, np.float32), ("float32", "float32")),
    (lambda: fsl.helmert(3), ("float32", "float64")),
    (lambda: fsl.invhilbert(3), ("float32", "float64")),
    (lambda: fsl.pascal(3), ("float32", "float32")),
    (lambda: fsl.invpascal(3), ("float32", "float64")),
]


@pytest.mark.parametrize("make, want", DTYPE_CASES)
def test_dtypes_follow_jax_with_and_without_x64(make, want):
    for enabled, dtype in zip((False, True), want):
        with fgrad.config.override(enable_x64=enabled):
            assert make().dtype == np.dtype(dtype)


def test_hadamard_wraps_in_unsigned_types_and_rejects_bool():
    close(fsl.hadamard(2, np.uint8), np.array([[1, 1], [1, 255]], np.uint8))
    with pytest.raises(TypeError):
        fsl.hadamard(2, bool)
    with pytest.raises(TypeError):
        fsl.fiedler(np.array([True, False]))


def test_batches_broadcast_as_jax():
    # shapes recorded from jax 0.10.2
    assert fsl.circulant(np.ones((2, 3))).shape == (2, 3, 3)
    assert fsl.leslie(np.ones((2, 3)), np.ones((4, 1, 2))).shape == (4, 2, 3, 3)
    assert fsl.hankel(np.ones((2, 3)), np.ones(4)).shape == (2, 3, 4)
    assert fsl.companion(np.ones((2, 3))).shape == (2, 2, 2)
    assert fsl.fiedler_companion(np.ones((2, 4))).shape == (2, 3, 3)
    assert fsl.convolution_matrix(np.ones((2, 3)), 4).shape == (2, 6, 4)
    assert fsl.circulant(3.0).shape == (1, 1) and fsl.fiedler(2.0).shape == (1, 1)
    assert fsl.fiedler_companion(np.array([2.0])).shape == (0, 0)
    assert fsl.circulant(np.ones(0)).shape == (0, 0)
    assert fsl.helmert(1).shape == (0, 1) and fsl.pascal(0).shape == (0, 0) and fsl.dft(0).shape == (0, 0)
    rows = np.random.default_rng(2).standard_normal((3, 4))
    close(fsl.fiedler_companion(rows), np.stack([sla.fiedler_companion(r) for r in rows]), rtol=1e-6, atol=1e-6)


def test_jit_vmap_and_grad_of_the_vector_built_matrices():
    c = np.random.default_rng(3).standard_normal((3, 4)).astype(np.float32)
    for f in (fsl.circulant, fsl.companion, fsl.fiedler_companion, fsl.hankel, fsl.toeplitz, fsl.fiedler,
              lambda v: fsl.convolution_matrix(v, 3, "same"), lambda v: fsl.leslie(v, v[1:])):
        np.testing.assert_allclose(np.asarray(fgrad.jit(f)(c[0])), np.asarray(f(c[0])), rtol=1e-6)
        check_vmap(f, (c,))
    check_grads(lambda v: fsl.companion(v).sum(), (c[0] + 3,), order=1)
    check_grads(lambda v: (fsl.fiedler_companion(v) ** 2).sum(), (c[0] + 3,), order=1)
    check_grads(lambda v: (fsl.convolution_matrix(v, 3) * np.arange(18.0).reshape(6, 3)).sum(), (c[0],))
    check_grads(lambda v: (fsl.leslie(v, v[1:] ** 2) @ v).sum(), (c[0],))


ERRORS = [
    (lambda: fsl.companion(np.array([1.0])), ValueError, "at least 2"),
    (lambda: fsl.leslie(np.array([1.0]), np.ones(0)), ValueError, "at least 2"),
    (lambda: fsl.leslie(np.ones(3), np.ones(1)), ValueError, "one less"),
    (lambda: fsl.fiedler_companion(np.ones(0)), ValueError, "nonzero length"),
    (lambda: fsl.hankel(1.0), ValueError, "at least 1-dimensional"),
    (lambda: fsl.convolution_matrix(np.ones(3), 0), ValueError, "positive integer"),
    (lambda: fsl.convolution_matrix(np.ones(3), 2.0), TypeError, "integer"),
    (lambda: fsl.convolution_matrix(1.0, 2), ValueError, "at least 1-dimensional"),
    (lambda: fsl.convolution_matrix(np.ones(0), 2), ValueError, "at least 1"),
    (lambda: fsl.convolution_matrix(np.ones(3), 2, "bad"), ValueError, "mode"),
    (lambda: fsl.dft(3, "x"), ValueError, "scale"),
    (lambda: fsl.dft(3, dtype=np.float32), ValueError, "complex"),
    (lambda: fsl.hadamard(3), ValueError, "power of 2"),
    (lambda: fsl.hadamard(0), ValueError, "power of 2"),
    (lambda: fsl.helmert(0), ValueError, "positive integer"),
    (lambda: fsl.pascal(3, "x"), ValueError, "kind"),
    (lambda: fsl.invpascal(3, "x"), ValueError, "kind"),
]


@pytest.mark.parametrize("call, error, match", ERRORS)
def test_bad_input_raises_jaxs_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
