"""lax functions built from primitives: associative_scan, cumprod/cummax/cummin/cumlogsumexp,
top_k, sort_key_val, clamp, select, broadcast, shift_right_arithmetic, population_count, clz,
nextafter;
against NumPy (hypothesis), jit (native path), grad vs finite differences, vmap vs a loop;
the values were also compared with jax.lax 0.10.2 once (identical)."""
import warnings

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import fgrad
from fgrad import lax
from fgrad import numpy as fnp
from fgrad.core.primitive import Primitive
from tests.util import check_grads, check_vmap


@pytest.fixture(autouse=True)
def native_only():
    with warnings.catch_warnings():
        warnings.simplefilter("error", fgrad.ReferencePathWarning)
        yield


floats = hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=9),
                    elements=st.floats(-3, 3, width=32))


def numpy_cumulative(name, x, axis, reverse):
    ufunc = {"cumprod": np.multiply, "cummax": np.maximum, "cummin": np.minimum, "cumlogsumexp": np.logaddexp}[name]
    x = np.flip(x, axis) if reverse else x
    out = ufunc.accumulate(x.astype(np.float64), axis=axis)
    return np.flip(out, axis) if reverse else out


@pytest.mark.parametrize("name", ["cumprod", "cummax", "cummin", "cumlogsumexp"])
@given(x=floats, data=st.data())
def test_cumulative_reductions_match_numpy(name, x, data):
    axis = data.draw(st.integers(0, x.ndim - 1))
    reverse = data.draw(st.booleans())
    f = getattr(lax, name)
    want = numpy_cumulative(name, x, axis, reverse)
    np.testing.assert_allclose(np.asarray(f(x, axis=axis, reverse=reverse)), want, rtol=2e-5, atol=1e-5)
    jitted = fgrad.jit(lambda v: f(v, axis=axis, reverse=reverse))(x)
    np.testing.assert_allclose(np.asarray(jitted), want, rtol=2e-5, atol=1e-5)


def test_cumulative_reductions_keep_nan_and_infinities():
    x = np.array([1.0, np.nan, 2.0, -np.inf, np.inf], np.float32)
    np.testing.assert_array_equal(np.asarray(lax.cummax(x)), [1, np.nan, np.nan, np.nan, np.nan])
    y = np.array([-np.inf, -np.inf, 0.0, np.inf, np.inf], np.float32)
    np.testing.assert_array_equal(np.asarray(lax.cumlogsumexp(y)), np.logaddexp.accumulate(y))


@pytest.mark.parametrize("name", ["cumprod", "cumlogsumexp", "cummax"])
def test_cumulative_gradients(name):
    x = np.array([[0.5, -1.2, 2.0, 0.7, 1.1], [1.3, 0.4, -0.6, 2.2, -0.9]])
    check_grads(lambda v: getattr(lax, name)(v, axis=1), (x,), order=2 if name != "cummax" else 1)
    check_vmap(lambda v: getattr(lax, name)(v, axis=0, reverse=True), (x,))


def test_cumlogsumexp_curvature_at_ties_matches_the_analytic_hessian():
    """Ties (x1 == x2) are where a max/abs formula's second derivative goes wrong; the Hessian
    of sum_i w_i cumlogsumexp(x)_i is written out here: d/dx_j = sum_{i>=j} w_i p_ij with
    p_ij = e^(x_j - out_i), and d2/dx_j dx_l = sum_{i>=max(j,l)} w_i (p_ij [j == l] - p_ij p_il)."""
    x = np.array([0.42, 1.19, -1.0, -1.0, 1.19])
    w = np.array([0.3, 1.1, -0.7, 0.5, 0.9])
    with fgrad.config.override(enable_x64=True):
        hess = np.asarray(fgrad.hessian(lambda v: (lax.cumlogsumexp(v) * w).sum())(x))
    out = np.logaddexp.accumulate(x)
    p = np.exp(x[None, :] - out[:, None]) * np.tri(len(x))              # p[i, j], j <= i
    want = np.einsum("i,ij->j", w, p) * np.eye(len(x)) - np.einsum("i,ij,il->jl", w, p, p)
    np.testing.assert_allclose(hess, want, rtol=1e-10, atol=1e-12)


@given(hnp.arrays(np.int32, st.integers(1, 17), elements=st.integers(-50, 50)))
def test_associative_scan_of_a_pytree_matches_a_loop(x):
    out = lax.associative_scan(lambda a, b: {"s": a["s"] + b["s"], "m": fnp.maximum(a["m"], b["m"])},
                               {"s": x, "m": x * 3})
    np.testing.assert_array_equal(np.asarray(out["s"]), np.cumsum(x))
    np.testing.assert_array_equal(np.asarray(out["m"]), np.maximum.accumulate(x * 3))


def test_associative_scan_errors():
    with pytest.raises(ValueError, match="same length"):
        lax.associative_scan(lambda a, b: a, (np.ones(3), np.ones(4)))
    with pytest.raises(ValueError, match="out of range"):
        lax.associative_scan(lambda a, b: a + b, np.ones(3), axis=2)


@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 3), st.integers(1, 9)),
                  elements=st.sampled_from([0.0, 1.0, -1.0, 2.5, np.nan, np.inf])), st.data())
def test_top_k_matches_a_stable_descending_sort(x, data):
    k = data.draw(st.integers(0, x.shape[-1]))
    values, indices = fgrad.jit(lambda v: lax.top_k(v, k))(x)
    # NaNs count as larger than every number (inf included); ties: lower index first
    order = np.array([sorted(range(len(row)), key=lambda i: (not np.isnan(row[i]), -np.nan_to_num(row[i], posinf=np.inf), i))[:k]
                      for row in x], dtype=np.int64).reshape(x.shape[0], k)
    np.testing.assert_array_equal(np.asarray(indices), order)
    np.testing.assert_array_equal(np.asarray(values), np.take_along_axis(x, order, -1))
    assert np.asarray(indices).dtype == np.int32
    with pytest.raises(ValueError, match="k must be an int"):
        lax.top_k(x, x.shape[-1] + 1)


@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)),
                  elements=st.sampled_from([0.0, 1.0, -1.0, 2.5, np.nan])), st.integers(-3, 2), st.data())
def test_top_k_along_any_axis_is_top_k_of_the_moved_axis(x, axis, data):
    k = data.draw(st.integers(0, x.shape[axis]))
    values, indices = lax.top_k(x, k, axis=axis)
    want_v, want_i = lax.top_k(np.moveaxis(x, axis, -1), k)
    np.testing.assert_array_equal(np.asarray(values), np.moveaxis(np.asarray(want_v), -1, axis))
    np.testing.assert_array_equal(np.asarray(indices), np.moveaxis(np.asarray(want_i), -1, axis))
    # JAX 0.10's top_k(x, 1, axis=0) of [[1, 5, 3], [4, 2, 6]]
    v, i = lax.top_k(np.array([[1.0, 5, 3], [4, 2, 6]], np.float32), 1, axis=0)
    assert np.asarray(v).tolist() == [[4.0, 5.0, 6.0]] and np.asarray(i).tolist() == [[1, 0, 1]]
    with pytest.raises(ValueError, match="axis 3 is out of range"):
        lax.top_k(x, 1, axis=3)


def test_sort_key_val_clamp_select_broadcast():
    keys, vals = np.array([3, 1, 2, 1]), np.array([10.0, 20.0, 30.0, 40.0], np.float32)
    k, v = lax.sort_key_val(keys, vals)
    np.testing.assert_array_equal(np.asarray(k), [1, 1, 2, 3])
    np.testing.assert_array_equal(np.asarray(v), [20, 40, 30, 10])
    x = np.array([-2.0, 0.2, 3.0], np.float32)
    np.testing.assert_array_equal(np.asarray(lax.clamp(np.float32(-1), x, np.float32(1))), np.float32([-1, 0.2, 1]))
    np.testing.assert_array_equal(np.asarray(lax.clamp(np.zeros(3, np.float32), x, np.ones(3, np.float32))),
                                  np.float32([0, 0.2, 1]))
    np.testing.assert_array_equal(np.asarray(lax.select(x > 0, x, -x)), np.abs(x))
    assert lax.broadcast(x, (2, 4)).shape == (2, 4, 3)


def test_clamp_derivatives_are_jaxs_at_ties():
    """JAX 0.10.2's clamp jvp: x's derivative only strictly inside (min, max), min's where
    min > x (and min < max), max's where max < x; zero at ties and NaN (fgrad's min(max())
    split ties: d/dx 0.5 at x == min)."""
    x = np.array([0.0, 0.3, 1.0, 2.0, -1.0, np.nan], np.float32)
    lo, hi = np.zeros(6, np.float32), np.ones(6, np.float32)
    for g in (fgrad.grad(lambda a: fnp.sum(lax.clamp(0.0, a, 1.0))),
              fgrad.jit(fgrad.grad(lambda a: fnp.sum(lax.clamp(0.0, a, 1.0))))):
        np.testing.assert_array_equal(np.asarray(g(x)), [0, 1, 0, 0, 0, 0])
    _, tangent = fgrad.jvp(lax.clamp, (lo, x, hi), (np.ones(6, np.float32), 2 * np.ones(6, np.float32),
                                                    4 * np.ones(6, np.float32)))
    np.testing.assert_array_equal(np.asarray(tangent), [0, 2, 0, 4, 1, 0])
    d_lo = fgrad.grad(lambda m: lax.clamp(m, np.float32(0.5), np.float32(1.0)))
    assert [float(d_lo(np.float32(v))) for v in (0.5, 0.2, 0.7, 2.0)] == [0.0, 0.0, 1.0, 0.0]


SHIFT_INPUTS = hnp.arrays(np.int32, st.integers(1, 12), elements=st.integers(-2**31, 2**31 - 1))


@given(SHIFT_INPUTS, st.integers(0, 40))
def test_shift_right_arithmetic_matches_numpy(x, s):
    want = x >> min(s, 31)                     # shifts of the bit width or more give 0 or -1
    got = fgrad.jit(lambda v: lax.shift_right_arithmetic(v, np.int32(s)))(x)
    np.testing.assert_array_equal(np.asarray(got), want)
    u = x.view(np.uint32)
    np.testing.assert_array_equal(np.asarray(lax.shift_right_arithmetic(u, np.uint32(min(s, 31)))), u >> min(s, 31))


@given(SHIFT_INPUTS)
def test_population_count_and_clz_match_python(x):
    bits = [format(int(v) & 0xFFFFFFFF, "032b") for v in x]
    np.testing.assert_array_equal(np.asarray(fgrad.jit(lax.population_count)(x)), [b.count("1") for b in bits])
    np.testing.assert_array_equal(np.asarray(fgrad.jit(lax.clz)(x)), [len(b) - len(b.lstrip("0")) for b in bits])
    with pytest.raises(TypeError, match="integer"):
        lax.population_count(np.ones(2, np.float32))


def test_primitives_are_exported_as_jax_names():
    for name in ("add_p", "mul_p", "scan_p", "while_p", "sort_p", "dot_general_p", "reduce_sum_p"):
        assert isinstance(getattr(lax, name), Primitive)
    assert "add" in str(fgrad.make_jaxpr(lambda a: a + 1)(1.0)) and lax.add_p.name == "add"


# --- nextafter ---------------------------------------------------------------------------------------

NEXTAFTER_SPECIAL = [0.0, -0.0, 1.0, -1.0, 1.5, -2.5, 1e-3, np.inf, -np.inf, np.nan, 65504.0, 6e-8, 1e-40]


@pytest.mark.parametrize("dtype", [np.float16, "bfloat16", np.float32, np.float64])
def test_nextafter_is_bit_exact_against_numpy(dtype):
    dtype = np.dtype(ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype)
    bits = f"u{dtype.itemsize}"
    with fgrad.config.override(enable_x64=dtype == np.float64), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        values = np.array(NEXTAFTER_SPECIAL, np.float64).astype(dtype)
        a, b = (v.reshape(-1) for v in np.meshgrid(values, values))
        want = np.nextafter(a, b)
        if dtype == np.float16:   # NumPy's float16 gives x at x == y (+-0.); C, JAX and fgrad give y
            want = np.where(a == b, b, want)
        for got in (lax.nextafter(a, b), fgrad.jit(lax.nextafter)(a, b)):
            got = np.asarray(got)
            assert got.dtype == dtype
            nan = np.isnan(want.astype(np.float64))
            np.testing.assert_array_equal(np.isnan(got.astype(np.float64)), nan)
            np.testing.assert_array_equal(got.view(bits)[~nan], want.view(bits)[~nan])


def test_nextafter_matches_jax_recorded_values():
    # JAX 0.10.2 on the CPU: these bit patterns (float32 subnormals from zero included)
    assert np.asarray(lax.nextafter(np.float32(0), np.float32(-1))).view(np.uint32) == 0x80000001
    assert np.asarray(lax.nextafter(np.float32(np.inf), np.float32(0))) == np.float32(3.4028235e38)
    assert np.asarray(lax.nextafter(np.float16(65504), np.float16(np.inf))) == np.inf
    assert np.asarray(lax.nextafter(np.float16(0), np.float16(1))).view(np.uint16) == 1
    assert float(lax.nextafter(1.0, 2.0)) == float(np.nextafter(np.float32(1), np.float32(2)))
    np.testing.assert_array_equal(np.asarray(lax.nextafter(np.ones(3, np.float32), 2.0)),
                                  np.full(3, np.nextafter(np.float32(1), np.float32(2))))
    assert np.isnan(np.asarray(lax.nextafter(np.float32(np.nan), np.float32(0))))


@given(st.floats(width=16), st.floats(width=16))
def test_nextafter_matches_numpy_on_any_float16_pair(x, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = np.float16(y) if x == y else np.nextafter(np.float16(x), np.float16(y))   # see above
        got = np.asarray(lax.nextafter(np.float16(x), np.float16(y)))
    assert got.dtype == np.float16
    assert (np.isnan(got) and np.isnan(want)) or got.view(np.uint16) == want.view(np.uint16)


def test_nextafter_vmaps_and_is_strict_about_dtypes_and_shapes():
    x = np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4)
    y = np.float32(0.5)
    check_vmap(lambda a: lax.nextafter(a, fnp.float32(0.5)), (fnp.asarray(x),), in_axes=1)
    got = fgrad.vmap(lax.nextafter, in_axes=(0, None))(x, y)
    np.testing.assert_array_equal(np.asarray(got), np.nextafter(x, y))
    with pytest.raises(TypeError, match="one dtype"):
        lax.nextafter(np.float32(1), np.float16(2))      # JAX: same dtypes required
    with pytest.raises(TypeError, match="floating-point"):
        lax.nextafter(np.int32(1), np.int32(2))
    with pytest.raises(TypeError, match="one shape"):
        lax.nextafter(np.ones(3, np.float32), np.ones((2, 1), np.float32))
