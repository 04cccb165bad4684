"""Special-function primitives (ops/special.py: atan2, atan, asin, acos, tan, sinh, cosh, asinh,
acosh, atanh, cbrt, exp2, erf, erfc): eager == NumPy exactly (erf/erfc: == math.erf to a few ulp) (signed zeros, infinities, NaN), compiled (their
decompositions) == eager to a few ulp with signed zeros kept, derivatives vs finite
differences to second order and vs JAX's values at the points where a composition through
``sign``/``abs`` used to get them wrong, vmap vs a loop."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import fgrad
from fgrad import lax
from fgrad import numpy as fnp
from fgrad.ops import special

from tests.util import check_grads, check_vmap

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
EDGES = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 1e-30, -1e-30, 30.0, -30.0, 1e5, -1e5,
         math.inf, -math.inf, math.nan]

# name: (lax function, NumPy function, sampler of points where it is smooth)
UNARY = {
    "atan": (lax.atan, np.arctan, lambda r, s: r.uniform(-3, 3, s)),
    "asin": (lax.asin, np.arcsin, lambda r, s: r.uniform(-0.9, 0.9, s)),
    "acos": (lax.acos, np.arccos, lambda r, s: r.uniform(-0.9, 0.9, s)),
    "tan": (lax.tan, np.tan, lambda r, s: r.uniform(-1.3, 1.3, s)),
    "sinh": (lax.sinh, np.sinh, lambda r, s: r.uniform(-3, 3, s)),
    "cosh": (lax.cosh, np.cosh, lambda r, s: r.uniform(-3, 3, s)),
    "asinh": (lax.asinh, np.arcsinh, lambda r, s: r.uniform(-3, 3, s)),
    "acosh": (lax.acosh, np.arccosh, lambda r, s: r.uniform(1.2, 4, s)),
    "atanh": (lax.atanh, np.arctanh, lambda r, s: r.uniform(-0.9, 0.9, s)),
    "cbrt": (lax.cbrt, np.cbrt, lambda r, s: r.uniform(0.2, 3, s) * r.choice([-1, 1], s)),
    "exp2": (lax.exp2, np.exp2, lambda r, s: r.uniform(-3, 3, s)),
    "erf": (lax.erf, lambda x: _math_fn(math.erf, x), lambda r, s: r.uniform(-3, 3, s)),
    "erfc": (lax.erfc, lambda x: _math_fn(math.erfc, x), lambda r, s: r.uniform(-3, 3, s)),
}
# NumPy has no erf: the oracle is math.erf, which eager fgrad (Cody's approximations) meets to a
# few ulp, not bit for bit
ORACLE_ULP = {"erf": 4, "erfc": 8}
COMPILED_ULP = {"erfc": 8}


def _math_fn(fn, x):
    x = np.asarray(x)
    return np.vectorize(fn, otypes=[np.float64])(x.astype(np.float64)).astype(x.dtype)


def values(dtype, shape):
    width = dtype.itemsize * 8
    return hnp.arrays(dtype, shape, elements=st.one_of(st.sampled_from(EDGES), st.floats(width=width),
                                                       st.floats(-5, 5, width=width)))


def same_bits(got, want, ulp=0):
    """Equal values with equal signs of zero and NaN where NaN; floats to ``ulp`` ulps."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    zero = want == 0
    np.testing.assert_array_equal(np.signbit(got[zero]), np.signbit(want[zero]))
    eps = np.finfo(want.dtype).eps * ulp
    np.testing.assert_allclose(got, want, rtol=eps, atol=0 if not ulp else np.finfo(want.dtype).tiny)


SPECIAL_PRIMITIVES = sorted((getattr(special, n) for n in dir(special) if n.endswith("_p")), key=lambda p: p.name)


def test_every_special_primitive_is_tested_and_has_a_decomposition():
    # ops.special's own primitives; the gamma family (ops.special_gamma, special_incomplete)
    # registers its decompositions in the same table and is tested in tests/scipy
    assert {p.name for p in SPECIAL_PRIMITIVES} == set(UNARY) | {"atan2", "erf_inv"}
    assert set(SPECIAL_PRIMITIVES) <= set(special.decompositions)


# --- values -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(UNARY))
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_eager_is_numpy_and_jit_matches_it(name, data):
    fn, oracle, _ = UNARY[name]
    dtype = data.draw(st.sampled_from([F32, F64]), label="dtype")
    x = data.draw(values(dtype, data.draw(hnp.array_shapes(min_dims=0, max_dims=2, max_side=5))), label="x")
    with fgrad.config.override(enable_x64=dtype == F64):
        eager = np.asarray(fn(fnp.asarray(x)))
        compiled = np.asarray(fgrad.jit(fn)(fnp.asarray(x)))
    with np.errstate(all="ignore"):
        same_bits(eager, oracle(x), ulp=ORACLE_ULP.get(name, 0))
    same_bits(compiled, eager, ulp=COMPILED_ULP.get(name, 4))


@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_atan2_eager_is_numpy_and_jit_matches_it(data):
    dtype = data.draw(st.sampled_from([F32, F64]), label="dtype")
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=2, max_side=5))
    y, x = data.draw(values(dtype, shape), label="y"), data.draw(values(dtype, shape), label="x")
    with fgrad.config.override(enable_x64=dtype == F64):
        eager = np.asarray(lax.atan2(fnp.asarray(y), fnp.asarray(x)))
        compiled = np.asarray(fgrad.jit(lax.atan2)(fnp.asarray(y), fnp.asarray(x)))
    same_bits(eager, np.arctan2(y, x))
    same_bits(compiled, eager, ulp=4)


def test_signed_zeros_infinities_and_nan_compiled():
    z = np.array([0.0, -0.0, math.inf, -math.inf, math.nan], np.float32)
    for name, (fn, oracle, _) in UNARY.items():
        with np.errstate(all="ignore"):
            same_bits(fgrad.jit(fn)(z), oracle(z), ulp=1)
    ys, xs = np.meshgrid(z, z)
    same_bits(fgrad.jit(lax.atan2)(ys.ravel(), xs.ravel()), np.arctan2(ys.ravel(), xs.ravel()), ulp=1)
    assert float(fgrad.jit(lax.atan2)(np.float32(-0.0), np.float32(-0.0))) == -np.float32(math.pi)


@pytest.mark.parametrize("prim", SPECIAL_PRIMITIVES, ids=lambda p: p.name)
def test_float16_compiles_in_float32_like_eager(prim):
    """float16 decompositions run in float32 and round once, as eager (NumPy's float16 loops)
    does: sinh(11.5) is 4.934e4 in float16, though the exp(11.5) inside it overflows float16."""
    x = np.array([-11.5, -10.0, -3.0, -0.5, 0.0, 0.5, 0.9, 3.0, 10.0, 11.5, 6.0e4], np.float16)
    args = [x] if prim.name != "atan2" else [x, x[::-1].copy()]
    fun = lambda *a: prim.bind(*a)
    with np.errstate(all="ignore"):
        eager = np.asarray(fun(*map(fnp.asarray, args)))
        compiled = np.asarray(fgrad.jit(fun)(*map(fnp.asarray, args)))
    assert compiled.dtype == eager.dtype == np.float16
    np.testing.assert_allclose(compiled.astype(np.float32), eager.astype(np.float32), rtol=2e-3, atol=0)


def test_exp2_is_accurate_across_the_exponent_range():
    # exp(x * ln2) was ~35 ulp off near the ends of float32's range
    x = np.linspace(-125, 127, 5001).astype(np.float32)
    for got in (fnp.exp2(x), fgrad.jit(fnp.exp2)(x)):
        np.testing.assert_allclose(np.asarray(got), np.exp2(x.astype(np.float64)), rtol=2 * np.finfo(np.float32).eps)


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("name", ["erf", "erfc"])
def test_erf_is_accurate_eagerly_and_compiled(name, dtype):
    """Against math.erf/erfc on a grid, the tails (erfc down to its last subnormals) and the
    corners; eager and compiled agree on signed zeros, infinities and NaN."""
    fn, oracle, _ = UNARY[name]
    grid = np.concatenate([np.linspace(-28, 28, 20001), np.geomspace(1e-300, 28, 2000),
                           -np.geomspace(1e-300, 28, 2000), [0.0, -0.0, math.inf, -math.inf, math.nan]])
    x = grid.astype(dtype)
    want = oracle(x)
    with fgrad.config.override(enable_x64=dtype == F64):
        for got in (fn(fnp.asarray(x)), fgrad.jit(fn)(fnp.asarray(x))):
            got = np.asarray(got)
            assert got.dtype == dtype
            np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
            zero = want == 0
            np.testing.assert_array_equal(np.signbit(got[zero]), np.signbit(want[zero]))
            ok = ~np.isnan(want)
            ulps = np.abs(got[ok].astype(np.float64) - want[ok]) / np.spacing(np.abs(want[ok]))
            assert ulps.max() <= (1 if dtype == F32 else 8), (name, x[ok][np.argmax(ulps)])
    assert float(lax.erf(-0.0)) == 0.0 and np.signbit(float(lax.erf(-0.0)))
    assert [float(v) for v in lax.erfc(fnp.asarray([-math.inf, math.inf, 0.0]))] == [2.0, 0.0, 1.0]


# (y, erf_inv(y), first and second derivative): JAX 0.10.2, x64 (JAX's value at 0.999999 is
# ~1e-12 relative off; fgrad's is checked by erf(erf_inv(y)) == y instead)
ERF_INV_JAX = [(0.0, 0.0, 0.8862269254527579, 0.0), (-0.0, -0.0, 0.8862269254527579, -0.0),
               (0.5, 0.47693627620446977, 1.1125848189719496, 1.1807463499933992),
               (-0.9, -1.163087153676674, 3.4280428114518395, -27.335985073827004),
               (1.0, math.inf, math.inf, math.inf), (-1.0, -math.inf, math.inf, -math.inf)]


def test_erf_inv_matches_jax_and_inverts_erf():
    with fgrad.config.override(enable_x64=True):
        d1 = fgrad.grad(lax.erf_inv)
        for y, x, dx, ddx in ERF_INV_JAX:
            got = [float(lax.erf_inv(y)), float(fgrad.jit(lax.erf_inv)(y)), float(d1(y)), float(fgrad.grad(d1)(y))]
            np.testing.assert_allclose(got, [x, x, dx, ddx], rtol=1e-14)
            assert [np.signbit(v) for v in got] == [np.signbit(v) for v in (x, x, dx, ddx)]
        assert math.isnan(float(lax.erf_inv(1.5))) and math.isnan(float(fgrad.jit(lax.erf_inv)(math.nan)))
        y = np.concatenate([np.linspace(-1, 1, 4001)[1:-1], 1 - np.geomspace(2 ** -53, 0.5, 200)])
        for x in (np.asarray(lax.erf_inv(y)), np.asarray(fgrad.jit(lax.erf_inv)(y))):
            back = np.where(y > 0.5, 1 - np.vectorize(math.erfc)(x), np.vectorize(math.erf)(x))
            np.testing.assert_allclose(back, y, rtol=2e-15, atol=0)   # erf rounds too
    y32 = np.linspace(-0.999, 0.999, 2001).astype(np.float32)
    for x in (lax.erf_inv(y32), fgrad.jit(lax.erf_inv)(y32)):
        x = np.asarray(x)
        assert x.dtype == np.float32
        np.testing.assert_allclose(np.vectorize(math.erf)(x.astype(np.float64)), y32, rtol=3e-7)


def test_exact_gelu_uses_erfc():
    """JAX: gelu(x, approximate=False) = x * erfc(-x / sqrt(2)) / 2, exact to float64 (it was a
    1.5e-7 approximation of erf); values and derivatives from JAX 0.10.2 (x64)."""
    from fgrad import nn
    want = {1.0: (0.8413447460685429, 1.0833154705876862, 0.24197072451914328),
            -3.0: (-0.004049694094890279, -0.01194564720418392, -0.03102293888356603),
            -10.0: (-7.619853024160472e-23, -7.618400096464759e-22, -7.540706654172238e-21),
            0.0: (0.0, 0.5, 0.7978845608028654)}
    g = lambda x: nn.gelu(x, approximate=False)  # noqa: E731
    with fgrad.config.override(enable_x64=True):
        for x, (v, d1, d2) in want.items():
            np.testing.assert_allclose([float(g(x)), float(fgrad.jit(g)(x)), float(fgrad.grad(g)(x)),
                                        float(fgrad.grad(fgrad.grad(g))(x))], [v, v, d1, d2], rtol=1e-14)
    assert any(e.primitive.name == "erfc" for e in fgrad.make_jaxpr(g)(1.0).eqns)


def test_numpy_functions_use_the_primitives():
    closed = fgrad.make_jaxpr(lambda x: [fnp.arctan2(x, x), fnp.arcsinh(x), fnp.cbrt(x), fnp.tan(x)])(1.0)
    assert {e.primitive.name for e in closed.eqns} == {"atan2", "asinh", "cbrt", "tan"}
    # the old composition through sign() lost the sign of -0. (JAX: -pi)
    assert float(fnp.arctan2(fnp.arcsinh(-0.0), fnp.arcsinh(-0.0))) == -np.float32(math.pi)


# --- derivatives --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(UNARY))
@settings(max_examples=4, deadline=None)
@given(shape=hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3), seed=st.integers(0, 2**16))
def test_grads_match_finite_differences(name, shape, seed):
    fn, _, sample = UNARY[name]
    check_grads(fn, (sample(np.random.default_rng(seed), shape),), order=2)


@settings(max_examples=6, deadline=None)
@given(shape=hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3), seed=st.integers(0, 2**16))
def test_atan2_grads_match_finite_differences(shape, seed):
    rng = np.random.default_rng(seed)
    y, x = rng.uniform(-2, 2, shape), rng.uniform(0.3, 2, shape) * rng.choice([-1, 1], shape)
    check_grads(lax.atan2, (y, x), order=2)
    check_grads(lambda a: lax.atan2(a, 1.5), (y,), order=2)      # a rank-0 operand broadcasts


def _d(fn, x, order=1):
    with fgrad.config.override(enable_x64=True):
        for _ in range(order):
            fn = fgrad.grad(fn)
        return float(fn(np.float64(x)))


# (function, point, order, JAX 0.10.2's value): these were 0 (or wrong) when the functions
# were compositions through sign(), abs() and select()
JAX_DERIVATIVES = [
    (fnp.arctan, 0.0, 1, 1.0), (fnp.arctan, 1.0, 1, 0.5), (fnp.arctan, 1.0, 2, -0.5),
    (fnp.arcsin, 0.0, 1, 1.0), (fnp.arcsin, 0.5, 2, 0.7698003589195009), (fnp.arcsin, 1.0, 1, math.inf),
    (fnp.arccos, 0.0, 1, -1.0), (fnp.arccos, -0.5, 2, 0.7698003589195009),
    (fnp.sinh, 0.0, 1, 1.0), (fnp.sinh, -0.0, 2, -0.0), (fnp.cosh, 0.0, 2, 1.0),
    (fnp.arcsinh, 0.0, 1, 1.0), (fnp.arcsinh, 1.0, 2, -0.35355339059327373),
    (fnp.cbrt, 0.0, 1, math.inf), (fnp.cbrt, -1.0, 1, 1 / 3), (fnp.cbrt, -1.0, 2, 2 / 9),
    (fnp.tan, 0.5, 2, 1.4186890138709112), (fnp.arccosh, 2.0, 2, -0.38490017945975047),
    (fnp.arccosh, 1.0, 1, math.inf), (fnp.arctanh, 0.5, 2, 16 / 9), (fnp.arctanh, 1.0, 1, math.inf),
    (lax.erf, 0.0, 1, 1.1283791670955126), (lax.erf, -0.0, 2, 0.0), (lax.erf, 0.5, 2, -0.8787825789354448),
    (lax.erf, 3.0, 1, 0.00013925305194674786), (lax.erf, -30.0, 1, 0.0),
    (lax.erfc, 0.0, 1, -1.1283791670955126), (lax.erfc, -0.0, 2, -0.0), (lax.erfc, 0.5, 2, 0.8787825789354448),
    (lax.erfc, 3.0, 1, -0.00013925305194674786), (lax.erfc, -30.0, 1, -0.0),
]


@pytest.mark.parametrize("fn,x,order,want", JAX_DERIVATIVES,
                         ids=[f"{f.__name__}-{x}-d{o}" for f, x, o, _ in JAX_DERIVATIVES])
def test_derivatives_at_awkward_points_match_jax(fn, x, order, want):
    got = _d(fn, x, order)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert np.signbit(got) == np.signbit(want)


def _partials(f, y, x, order):
    with fgrad.config.override(enable_x64=True):
        args = (np.float64(y), np.float64(x))
        d = fgrad.hessian(f, (0, 1)) if order == 2 else fgrad.grad(f, (0, 1))
        return np.asarray(d(*args), np.float64)


def test_atan2_derivatives_match_jax():
    np.testing.assert_array_equal(_partials(fnp.arctan2, -0.5, 0.5, 1), [1.0, 1.0])   # was (-0, 0)
    np.testing.assert_array_equal(_partials(fnp.arctan2, -0.5, 0.5, 2), [[2.0, 0.0], [0.0, -2.0]])
    np.testing.assert_array_equal(_partials(fnp.arctan2, 0.0, 1.0, 1), [1.0, 0.0])
    np.testing.assert_array_equal(_partials(fnp.arctan2, 1.0, 0.0, 1), [0.0, -1.0])
    assert np.isnan(_partials(fnp.arctan2, 0.0, 0.0, 1)).all()                         # 0 / 0, as JAX


def test_jvp_and_jit_of_grad_agree():
    x = np.array([-1.0, -0.0, 0.0, 0.5], np.float32)
    for name, (fn, _, _) in UNARY.items():
        if name in ("acosh",):
            continue
        ones = fnp.ones_like(fnp.asarray(x))
        _, tangent = fgrad.jvp(fn, (fnp.asarray(x),), (ones,))
        reverse = fgrad.jit(fgrad.vmap(fgrad.grad(fn)))(x)
        np.testing.assert_allclose(np.asarray(tangent), np.asarray(reverse), rtol=1e-6)


# --- vmap ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(UNARY))
def test_vmap_matches_a_loop(name):
    fn, _, sample = UNARY[name]
    rng = np.random.default_rng(0)
    for shape, axis in [((4, 3), 0), ((3, 4), 1), ((4,), 0)]:
        check_vmap(fn, (fnp.asarray(sample(rng, shape).astype(np.float32)),), in_axes=(axis,))


def test_atan2_vmap_matches_a_loop():
    rng = np.random.default_rng(0)
    for ys, ya, xs, xa in [((4, 3), 0, (4, 3), 0), ((3, 4), 1, (3,), None), ((4,), 0, (3, 4), 1)]:
        args = (fnp.asarray(rng.uniform(-2, 2, ys).astype(np.float32)),
                fnp.asarray(rng.uniform(-2, 2, xs).astype(np.float32)))
        check_vmap(lax.atan2, args, in_axes=(ya, xa), rtol=1e-6)


def test_dtype_errors_name_the_op():
    with pytest.raises(TypeError, match="^sinh: .*int32"):
        lax.sinh(fnp.asarray(np.arange(3, dtype=np.int32)))
    with pytest.raises(TypeError, match="^atan2: .*same dtype"):
        lax.atan2(fnp.asarray(np.ones(2, np.float32)), fnp.asarray(np.ones(2, np.float16)))
