"""max/min/mul scatters of complex64/complex128 values (``x.at[idx].max/min/multiply``,
``lax.scatter``): eagerly NumPy's ``ufunc.at`` (lexicographic max/min with NumPy's NaN rules,
the complex product), under jit one native kernel over both parts (``scatter_parts_p``), bit
for bit the eager result; JAX 0.10.2's outputs (data/jax_complex_scatter.npz, recorded by
scripts/record_jax_complex_scatter.py) for values and gradients; vmap against a loop."""
import pathlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fgrad
from fgrad import lax, numpy as fnp
from fgrad.ops import complex_parts as cp
from tests.util import check_vmap, natively

JAX = np.load(pathlib.Path(__file__).parent / "data" / "jax_complex_scatter.npz")
CDTYPES = [np.complex64, np.complex128]
KINDS = {"max": np.maximum, "min": np.minimum, "multiply": np.multiply}


def crand_int(rng, shape, dtype):
    """Small integer parts: many ties in both parts, the lexicographic order's corners."""
    return (rng.integers(-2, 3, shape) + 1j * rng.integers(-2, 3, shape)).astype(dtype)


def numpy_update(x, idx, u, kind):
    want = np.array(x, copy=True)
    wrapped = np.where(idx < 0, idx + len(x), idx)
    ok = (wrapped >= 0) & (wrapped < len(x))                 # out-of-bounds updates are dropped
    KINDS[kind].at(want, wrapped[ok], u[ok])
    return want


@pytest.mark.parametrize("dtype", CDTYPES)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_scatters_with_duplicates_nans_and_dropped_indices_match_numpy_natively_bit_for_bit(kind, dtype):
    rng = np.random.default_rng(hash(kind) % 2 ** 32)
    x = crand_int(rng, (6, 3), dtype)
    u = crand_int(rng, (9, 3), dtype)
    u[3, 1] = complex(np.nan, 1)
    u[2, 2] = complex(2, np.nan)
    x[0, 0] = complex(np.nan, np.nan)
    idx = np.array([1, 1, 4, 1, 0, 9, -1, 1, 0])

    def f(x, u):
        return getattr(x.at[idx], kind)(u)
    with fgrad.config.override(enable_x64=True):
        want = numpy_update(x, idx, u, kind)
        eager = np.asarray(f(fnp.asarray(x), u))
        jitted = natively(f, x, u)
    assert jitted.dtype == dtype
    np.testing.assert_array_equal(eager, want)
    np.testing.assert_array_equal(jitted, want)


@settings(max_examples=15, deadline=None)
@given(kind=st.sampled_from(sorted(KINDS)), dtype=st.sampled_from(CDTYPES), seed=st.integers(0, 2 ** 31),
       n=st.integers(1, 12))
def test_random_scatters_match_numpy_natively(kind, dtype, seed, n):
    rng = np.random.default_rng(seed)
    x = crand_int(rng, (5, 2), dtype)
    u = crand_int(rng, (n, 2), dtype)
    idx = rng.integers(-6, 7, n)
    with fgrad.config.override(enable_x64=True):
        got = natively(lambda x, u: getattr(x.at[idx], kind)(u), x, u)
    np.testing.assert_array_equal(got, numpy_update(x, idx, u, kind))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_values_and_gradients_match_jax(kind):
    with fgrad.config.override(enable_x64=True):
        x, u, idx = JAX["x"], JAX["u"], JAX["idx"]
        np.testing.assert_array_equal(natively(lambda x, u: getattr(x.at[idx], kind)(u), x, u), JAX[kind])
        np.testing.assert_array_equal(natively(lambda x, u: getattr(x.at[2], kind)(u[0]), x, u), JAX[f"{kind}_row"])
        unique = np.array([1, 4, 0, 3])
        grads = fgrad.grad(lambda x, u: fnp.sum(fnp.abs(getattr(x.at[unique], kind)(u)) ** 2), argnums=(0, 1))
        got_x, got_u = grads(x, u[:4] + 0.25j)
        np.testing.assert_allclose(np.asarray(got_x), JAX[f"grad_x_{kind}"], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(np.asarray(got_u), JAX[f"grad_u_{kind}"], rtol=1e-12, atol=1e-12)


def test_lax_scatter_with_window_dims_and_scalar_updates_natively():
    rng = np.random.default_rng(5)
    x = crand_int(rng, (4, 3, 2), np.complex64)
    indices = np.array([[0, 1], [0, 1], [3, 2], [9, 0]])
    u = crand_int(rng, (4, 2), np.complex64)
    for mode in ("max", "min", "mul"):
        def f(x, u):
            return lax.scatter(x, indices, u, (0, 1), mode=mode)
        np.testing.assert_array_equal(natively(f, x, u), np.asarray(f(fnp.asarray(x), u)))

    def g(x):
        return x.at[np.array([0, 0, 2]), 1].multiply(2j).at[np.array([1, 1])].max(1 + 1j)
    np.testing.assert_array_equal(natively(g, x), np.asarray(g(fnp.asarray(x))))


def test_jvp_of_a_mul_scatter_is_holomorphic_and_matches_finite_differences():
    rng = np.random.default_rng(7)
    x, u = crand_int(rng, (5,), np.complex128) + 0.5, crand_int(rng, (4,), np.complex128) + 0.25j
    idx = np.array([1, 3, 1, 0])
    tx, tu = crand_int(rng, (5,), np.complex128), crand_int(rng, (4,), np.complex128)

    def f(x, u):
        return x.at[idx].multiply(u)
    with fgrad.config.override(enable_x64=True):
        _, jt = fgrad.jvp(f, (x, u), (tx, tu))
        eps = 1e-6
        fd = (np.asarray(f(fnp.asarray(x + eps * tx), u + eps * tu))
              - np.asarray(f(fnp.asarray(x - eps * tx), u - eps * tu))) / (2 * eps)
        np.testing.assert_allclose(np.asarray(jt), fd, rtol=1e-8, atol=1e-8)
        jitted = natively(lambda x, u, tx, tu: fgrad.jvp(f, (x, u), (tx, tu))[1], x, u, tx, tu)
        np.testing.assert_allclose(jitted, np.asarray(jt), rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_vmap_matches_a_loop_natively_too(kind):
    rng = np.random.default_rng(11)
    x, u = crand_int(rng, (3, 5), np.complex64), crand_int(rng, (3, 4), np.complex64)
    idx = np.array([[1, 1, 0, 4], [2, 2, 2, 2], [0, 9, -1, 3]])

    def f(x, i, u):
        return getattr(fnp.asarray(x).at[i], kind)(u)
    check_vmap(f, (x, idx, u))
    check_vmap(f, (x[0], idx, u), in_axes=(None, 0, 0))
    looped = np.stack([np.asarray(f(fnp.asarray(x[k]), idx[k], u[k])) for k in range(3)])
    np.testing.assert_array_equal(natively(fgrad.vmap(f), x, idx, u), looped)


def test_the_parts_primitive_batches_and_checks_its_operands():
    rng = np.random.default_rng(13)
    x, u = crand_int(rng, (3, 5), np.complex64), crand_int(rng, (3, 2), np.complex64)
    idx = np.array([[1], [1]])

    def f(x_re, x_im, u_re, u_im):
        return cp.scatter_parts_p.bind(x_re, x_im, idx, u_re, u_im, axes=(0,), mode="mul")
    parts = (x.real, x.imag, u.real, u.imag)
    check_vmap(f, parts)
    check_vmap(f, (x[0].real, x.imag, u.real, u[0].imag), in_axes=(None, 0, 0, None))
    with pytest.raises(ValueError, match="mode"):
        cp.scatter_parts_p.bind(x[0].real, x[0].imag, idx, u[0].real, u[0].imag, axes=(0,), mode="add")
    with pytest.raises(TypeError, match="real parts"):
        cp.scatter_parts_p.bind(x[0], x[0].imag, idx, u[0].real, u[0].imag, axes=(0,), mode="max")
