"""fgrad.numpy's further elementwise math (fgrad/numpy/_math_extra.py) vs NumPy, with JAX's
answers (recorded from JAX 0.10.2) where they differ; jit (native path asserted) vs eager,
grad vs finite differences, vmap vs a loop."""
import warnings

import numpy as np
import pytest
from hypothesis import given

import fgrad
from fgrad import numpy as fnp
from fgrad.compile import pipeline

from np_helpers import arrays, assert_matches
from tests.util import check_grads, check_vmap, natively

pytestmark = pytest.mark.filterwarnings("error::fgrad.ReferencePathWarning")

F32_EDGES = np.array([0.0, -0.0, 1.0, -3.0, 0.3, -5e3, 1e-40, -1e-45, 3.4e38, np.inf, -np.inf, np.nan], np.float32)
INTS = np.array([12, -8, 0, 0, 270, 2**31 - 1, -2**31 + 1, 7], np.int32)
INTS2 = np.array([18, 12, 5, 0, 192, 3, 6, -7], np.int32)




def quiet(f, *args):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return f(*args)


def test_frexp_matches_numpy_with_subnormals_and_specials():
    m, e = fnp.frexp(F32_EDGES[:9])
    want_m, want_e = np.frexp(F32_EDGES[:9])
    assert_matches(m, want_m)
    assert_matches(e, want_e.astype(np.int32))
    m, e = fnp.frexp(F32_EDGES[9:])          # JAX: inf/nan give (x, 0)
    assert_matches(m, F32_EDGES[9:])
    assert_matches(e, np.zeros(3, np.int32))
    with fgrad.config.override(enable_x64=True):
        x = np.array([0.0, 1.0, -3.0, 1e-310, 0.1, 1e300])
        assert_all = [assert_matches(g, w) for g, w in zip(fnp.frexp(x), np.frexp(x))]
        assert len(assert_all) == 2


@given(arrays(np.float32, (8,), -1e6, 1e6))
def test_frexp_ldexp_round_trip(x):
    m, e = fnp.frexp(x)
    assert_matches(m, np.frexp(x)[0])
    assert_matches(fnp.ldexp(m, e), x)


def test_ldexp_matches_numpy_across_the_range():
    x = np.array([1.0, 2.0, 3.0, 1e-40, 7.0, 3e38, -1.5, 0.0, 1.0], np.float32)
    k = np.array([3, -200, 130, 100, -140, -300, 127, 500, -149], np.int32)
    assert_matches(quiet(fnp.ldexp, x, k), quiet(np.ldexp, x, k))
    with pytest.raises(TypeError, match="integers"):
        fnp.ldexp(x, x)


def test_modf_spacing_heaviside():
    x = F32_EDGES
    frac, whole = quiet(fnp.modf, x)
    want_frac, want_whole = np.modf(x)
    want_frac = np.where(np.isinf(x), np.nan, want_frac)   # JAX: modf(+-inf) has a NaN fraction
    assert_matches(frac, want_frac)
    assert_matches(whole, want_whole)
    assert np.signbit(np.asarray(whole)[1]) and not np.signbit(np.asarray(frac)[1])   # JAX: modf(-0.) = (0., -0.)
    finite = F32_EDGES[:8]
    want = np.where(np.signbit(finite) & (finite == 0), -np.spacing(finite), np.spacing(finite))  # JAX: spacing(-0.) < 0
    assert_matches(fnp.spacing(finite), want, rtol=0, atol=0)
    assert np.isnan(np.asarray(fnp.spacing(F32_EDGES[9:]))).all()
    assert_matches(fnp.heaviside(np.array([-1.0, 0.0, 2.0, np.nan]), 0.5), np.heaviside([-1.0, 0.0, 2.0, np.nan], 0.5),
                   dtype=np.float32)
    assert_matches(fnp.heaviside(np.array([-1, 0, 2]), 0.5), np.array([0.0, 0.5, 1.0], np.float32))


@given(arrays(np.int32, (6,), -1000, 1000), arrays(np.int32, (6,), -1000, 1000))
def test_gcd_lcm_match_numpy(x, y):
    assert_matches(fnp.gcd(x, y), np.gcd(x, y))
    assert_matches(fnp.lcm(x, y), np.lcm(x, y))


def test_gcd_lcm_corners():
    assert_matches(fnp.gcd(INTS, INTS2), np.gcd(INTS, INTS2))
    assert_matches(fnp.lcm(INTS[:5], INTS2[:5]), np.lcm(INTS[:5], INTS2[:5]))
    assert_matches(fnp.gcd(np.array([[12], [9]], np.uint8), np.array([8, 6, 0], np.uint8)),
                   np.gcd(np.array([[12], [9]], np.uint8), np.array([8, 6, 0], np.uint8)))
    with pytest.raises(TypeError, match="integers"):
        fnp.gcd(np.ones(2), np.ones(2))


def test_gcd_lcm_of_the_most_negative_integer_end():
    # abs(-128) wraps to -128 in int8: Euclid's loop with a keep-a-above-b swap cycled for ever
    # (JAX 0.10.2 hangs on these too); NumPy's answers, eagerly and compiled
    for dtype in (np.int8, np.int16, np.int32):
        low = np.iinfo(dtype).min
        v = np.array([low, low + 1, -3, -1, 0, 1, 2, 6, 12, np.iinfo(dtype).max], dtype)
        a, b = np.repeat(v, v.size), np.tile(v, v.size)
        assert_matches(fnp.gcd(a, b), np.gcd(a, b))
        assert_matches(natively(fnp.gcd, a, b), np.gcd(a, b))
        assert_matches(fnp.lcm(a, b), np.lcm(a, b))


def test_lcm_wraps_as_numpy_and_jax():
    # the product |x1| * (|x2| / gcd) wraps in the dtype; JAX 0.10.2 gave these same values
    a = np.array([2, 7, 100, 127, 12, 18], np.int8)
    b = np.array([127, 100, 7, 2, 127, 100], np.int8)
    assert_matches(fnp.lcm(a, b), np.array([-2, -68, -68, -2, -12, -124], np.int8))


def test_i0_matches_numpy():
    x = np.linspace(-30, 30, 121)
    assert_matches(fnp.i0(x.astype(np.float32)), np.i0(x).astype(np.float32), rtol=3e-6)
    with fgrad.config.override(enable_x64=True):
        x = np.concatenate([np.linspace(-60, 60, 1201), [19.999, 20.0, 20.001]])
        np.testing.assert_allclose(np.asarray(fnp.i0(x)), np.i0(x), rtol=1e-14)
        assert np.asarray(fnp.i0(np.array([1000.0]))).item() == np.inf


@given(arrays(np.float32, (4, 3), -3, 3), arrays(np.float32, (3,), -3, 3))
def test_cross_and_angle_match_numpy(a, b):
    assert_matches(fnp.cross(a, b), np.cross(a, b), rtol=1e-5, atol=1e-5)
    assert_matches(fnp.cross(a[:, :2], b), np.cross(np.pad(a[:, :2], ((0, 0), (0, 1))), b), rtol=1e-5, atol=1e-5)
    assert_matches(fnp.cross(a[:, :2], b[:2]), np.cross(np.pad(a[:, :2], ((0, 0), (0, 1))),
                                                        np.pad(b[:2], (0, 1)))[:, 2], rtol=1e-5, atol=1e-5)
    assert_matches(fnp.cross(a[:3].T, b[:, None], axisa=0, axisb=0, axisc=0),
                   np.cross(a[:3].T, b[:, None], axisa=0, axisb=0, axisc=0), rtol=1e-5, atol=1e-5)
    assert_matches(fnp.angle(a), np.angle(a))
    assert_matches(fnp.angle(a, deg=True), np.angle(a, deg=True), rtol=1e-5)


def test_cross_rejects_other_lengths():
    with pytest.raises(ValueError, match="2 or 3 components"):
        fnp.cross(np.ones(4), np.ones(3))


def test_complex_predicates_on_real_arrays():
    x = np.array([1.0, 2.0])
    assert_matches(fnp.iscomplex(x), [False, False], dtype=np.bool_)
    assert_matches(fnp.isreal(x), [True, True], dtype=np.bool_)
    assert fnp.isrealobj(fnp.ones(2)) and not fnp.iscomplexobj(np.ones(2)) and fnp.iscomplexobj(np.ones(2, complex))


@pytest.mark.parametrize("args", [(1.0, 1000.0, 4), (-1.0, -1000.0, 5), (2.0, 0.5, 7), (3, 300, 3)])
@pytest.mark.parametrize("endpoint", [True, False])
def test_geomspace_matches_numpy(args, endpoint):
    assert_matches(fnp.geomspace(*args, endpoint=endpoint), np.geomspace(*args, endpoint=endpoint).astype(np.float32),
                   rtol=1e-5)


def test_geomspace_arrays_axis_dtype():
    start, stop = np.array([1.0, 2.0]), np.array([100.0, 50.0])
    assert_matches(fnp.geomspace(start, stop, 4, axis=1), np.geomspace(start, stop, 4, axis=1).astype(np.float32),
                   rtol=1e-5)
    assert_matches(fnp.geomspace(1, 256, 9, dtype=fnp.int32), np.geomspace(1, 256, 9).round().astype(np.int32))


@pytest.mark.parametrize("bitorder", ["big", "little"])
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_packbits_unpackbits_match_numpy(bitorder, axis):
    bits = np.random.default_rng(0).integers(-1, 2, (3, 11)).astype(np.int32)
    packed = np.packbits(bits != 0, axis=axis, bitorder=bitorder)
    assert_matches(fnp.packbits(bits, axis=axis, bitorder=bitorder), packed)
    assert_matches(fnp.unpackbits(packed, axis=axis, bitorder=bitorder),
                   np.unpackbits(packed, axis=axis, bitorder=bitorder))
    for count in (3, 20, -3):
        assert_matches(fnp.unpackbits(packed, axis=axis, count=count, bitorder=bitorder),
                       np.unpackbits(packed, axis=axis, count=count, bitorder=bitorder))
    with pytest.raises(TypeError, match="uint8"):
        fnp.unpackbits(bits)


@pytest.mark.parametrize("dtype", [np.int32, np.uint8, np.uint32, np.bool_])
def test_bitwise_count_matches_numpy(dtype):
    info = np.iinfo(dtype) if dtype != np.bool_ else None
    values = [0, 1, 7] + ([int(info.min), int(info.max)] if info else [])
    x = np.array(values + ([-1, -8] if dtype == np.int32 else []), dtype)
    assert_matches(fnp.bitwise_count(x), np.bitwise_count(x))


TRANSFORM_CASES = {
    "frexp": (lambda x: fnp.frexp(x), (F32_EDGES,)),
    "ldexp": (lambda x, k: fnp.ldexp(x, k), (F32_EDGES[:8], INTS[:8] % 300)),
    "modf/spacing/heaviside": (lambda x: (fnp.modf(x), fnp.spacing(x), fnp.heaviside(x, 0.5)), (F32_EDGES,)),
    "gcd/lcm": (lambda x, y: (fnp.gcd(x, y), fnp.lcm(x, y)), (INTS[:5], INTS2[:5])),
    "i0": (lambda x: fnp.i0(x * 10), (F32_EDGES[:6],)),
    "angle/cross": (lambda x: (fnp.angle(x), fnp.cross(x[:3], x[3:6]), fnp.cross(x[:2], x[2:4])), (F32_EDGES,)),
    "geomspace": (lambda x: fnp.geomspace(x[0] ** 2 + 1, 100.0, 5), (F32_EDGES[2:4],)),
    "packbits/unpackbits": (lambda x: fnp.unpackbits(fnp.packbits(x > 0), count=12), (F32_EDGES,)),
    "bitwise_count/iscomplex": (lambda i: (fnp.bitwise_count(i), fnp.iscomplex(i)), (INTS,)),
}


@pytest.mark.parametrize("name", sorted(TRANSFORM_CASES))
def test_jit_is_native_and_matches_eager(name):
    f, args = TRANSFORM_CASES[name]
    eager = fgrad.tree.tree_map(np.asarray, quiet(f, *args))
    jitted = natively(f, *args)
    for e, j in zip(fgrad.tree.tree_leaves(eager), fgrad.tree.tree_leaves(jitted)):
        assert e.shape == j.shape and e.dtype == j.dtype
        np.testing.assert_allclose(j, e, rtol=2e-6, atol=0, equal_nan=True)


X = np.random.default_rng(2).uniform(-3.0, 3.0, (3, 4))

GRAD_CASES = {
    "ldexp": (lambda x: fnp.ldexp(x, np.array([1, -2, 3, 0], np.int32)), (X,)),
    "modf": (lambda x: fnp.modf(x * 0.9 + 0.05)[0], (X,)),
    "i0 small and large": (lambda x: fnp.i0(x) + fnp.i0(x * 9.0), (X,)),
    "geomspace": (lambda a, b: fnp.geomspace(a, b, 5), (np.array([2.0, 3.0]), np.array([50.0, 4.0]))),
    "cross": (lambda a, b: fnp.cross(a[:, :3], b[:3]) + fnp.cross(a[:, :2], b[:2])[:, None], (X, X[1])),
}


@pytest.mark.parametrize("name", sorted(GRAD_CASES))
def test_grad_matches_finite_differences(name):
    f, args = GRAD_CASES[name]
    check_grads(f, args, order=1)


def test_i0_gradient_is_i1():
    x = np.linspace(-25, 25, 11)
    with fgrad.config.override(enable_x64=True):
        slope = fgrad.vmap(fgrad.grad(fnp.i0))(x)
    scipy_special = pytest.importorskip("scipy.special")
    np.testing.assert_allclose(np.asarray(slope), scipy_special.i1(x), rtol=1e-12)


VMAP_CASES = {
    "frexp": (lambda x: fnp.frexp(x)[0] * fnp.frexp(x)[1], (np.float32(X),), (0,)),
    "gcd": (lambda x, y: fnp.gcd(x, y), (INTS.reshape(2, 4), INTS2.reshape(2, 4)), (0, 0)),
    "gcd with an unbatched side": (lambda x, y: fnp.lcm(x, y), (INTS2[:4].reshape(2, 2), INTS[:2]), (0, None)),
    "i0/spacing": (lambda x: fnp.i0(x) + fnp.spacing(x), (np.float32(X),), (1,)),
    "packbits": (lambda x: fnp.packbits(x > 0), (np.float32(X),), (0,)),
    "bitwise_count": (lambda i: fnp.bitwise_count(i), (INTS.reshape(4, 2),), (1,)),
    "cross": (lambda a, b: fnp.cross(a, b), (np.float32(X[:, :3]), np.float32(X[::-1, 1:])), (0, 0)),
}


@pytest.mark.parametrize("name", sorted(VMAP_CASES))
def test_vmap_matches_a_loop(name):
    f, args, in_axes = VMAP_CASES[name]
    check_vmap(f, args, in_axes=in_axes, rtol=1e-6, atol=0)
