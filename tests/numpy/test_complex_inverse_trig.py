"""arcsin, arccos, arctan, arcsinh, arccosh, arctanh of complex64/complex128 values under jit run
natively (Kahan's formulas, fgrad.lower.complex_math) and agree with NumPy (the eager path)
within a few ulps, on a grid that holds both sides of every branch cut (signed zeros), the
branch points, tiny and huge values; with the same signs of zero parts and the same infinities.

JAX 0.10.2 differs from NumPy at some points on the cuts (it ignores the sign of a zero
imaginary part there: ``arccosh(0.5 - 0j)`` is ``+1.047j`` in JAX, ``-1.047j`` in NumPy and
C99); fgrad follows NumPy, eagerly and compiled alike."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fgrad
from fgrad import numpy as fnp
from tests.util import check_vmap, natively

NAMES = ["arcsin", "arccos", "arctan", "arcsinh", "arccosh", "arctanh"]
CDTYPES = [np.complex64, np.complex128]
EDGES = [0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 1.5, -1.5, 2.0, -2.0, 1e-3, -1e-3, 1e-7, 1e-20, 3.0, -7.0,
         1e3, -1e3, 1e10, -1e10, 0.999, -0.999, 1.001, -1.001, 1e30]


def grid(dtype, extra=()):
    """Every pair of ``EDGES`` (and ``extra``) as (real, imaginary) parts, zeros of both signs."""
    values = EDGES + list(extra)
    re, im = np.meshgrid(values, values)
    z = np.empty(re.size, dtype)
    z.real, z.imag = re.ravel(), im.ravel()       # part by part: the signs of zeros survive
    return z


def assert_like_numpy(got, want, dtype, ulps=4):
    real = np.finfo(dtype).dtype
    finite = np.isfinite(want)
    np.testing.assert_array_equal(np.isfinite(got), finite)
    np.testing.assert_array_equal(got[~finite], want[~finite])           # the poles: same infinities
    scale = np.maximum(np.abs(want[finite]), np.finfo(real).tiny)
    err = np.abs(got[finite] - want[finite]) / scale / np.finfo(real).eps
    assert err.max() <= ulps, (err.max(), got[finite][err.argmax()], want[finite][err.argmax()])
    for part in ("real", "imag"):                                         # the cuts' sides, signed zeros
        np.testing.assert_array_equal(np.signbit(getattr(got, part)), np.signbit(getattr(want, part)))


@pytest.mark.parametrize("dtype", CDTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_native_inverse_functions_match_numpy_on_the_cuts_and_signed_zeros(name, dtype):
    with fgrad.config.override(enable_x64=True), np.errstate(all="ignore"):
        z = grid(dtype, [1e-200] if dtype == np.complex128 else [])
        f = getattr(fnp, name)
        want = getattr(np, name)(z)
        got = natively(f, z)
        assert got.dtype == dtype
        assert_like_numpy(got, want, dtype)
        np.testing.assert_array_equal(np.asarray(f(z)), want)               # eager is NumPy's


@settings(max_examples=20, deadline=None)
@given(name=st.sampled_from(NAMES), dtype=st.sampled_from(CDTYPES), seed=st.integers(0, 2 ** 31),
       log_scale=st.floats(-6, 6))
def test_native_inverse_functions_match_numpy_on_random_values(name, dtype, seed, log_scale):
    rng = np.random.default_rng(seed)
    z = ((rng.standard_normal(64) + 1j * rng.standard_normal(64)) * 10.0 ** log_scale).astype(dtype)
    with fgrad.config.override(enable_x64=True):
        assert_like_numpy(natively(getattr(fnp, name), z), getattr(np, name)(z), dtype)


@pytest.mark.parametrize("name", NAMES)
def test_holomorphic_derivatives_under_jit_match_finite_differences(name):
    """``arccosh``'s rule is JAX's ``1 / sqrt(z^2 - 1)``, the derivative only where ``Re z > 0``
    (elsewhere its negative): it is checked against that formula, and against finite differences
    where they agree."""
    f = getattr(fnp, name)
    z = np.array([0.3 + 0.4j, -1.7 + 0.2j, 2.5 - 1.5j, -0.1 - 3j])
    with fgrad.config.override(enable_x64=True):
        grad = natively(fgrad.vmap(fgrad.grad(f, holomorphic=True)), z)
        eps = 1e-6
        checked = z.real > 0 if name == "arccosh" else np.ones(z.shape, bool)
        for direction in (1, 1j):                 # holomorphic: the same derivative both ways
            fd = (np.asarray(f(z + eps * direction)) - np.asarray(f(z - eps * direction))) / (2 * eps * direction)
            np.testing.assert_allclose(grad[checked], fd[checked], rtol=1e-7, atol=1e-7)
        if name == "arccosh":
            np.testing.assert_allclose(grad, 1 / np.sqrt(z * z - 1), rtol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_vmap_matches_a_loop(name):
    z = grid(np.complex64)[:60].reshape(3, 20)
    check_vmap(getattr(fnp, name), (z,), rtol=1e-6, atol=1e-6)
