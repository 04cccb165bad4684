"""stop_gradient and the threefry2x32 cipher: Random123's known answers, a pure-Python
reference on hypothesis-drawn words, broadcasting, vmap, errors and staging."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import fgrad
from fgrad import lax
from fgrad import numpy as fnp
from fgrad.core.ir import eval_jaxpr, typecheck_jaxpr
from fgrad.ops import misc
from fgrad.transforms.jvp import jvp_rules, not_differentiable
from fgrad.transforms.vmap import vmap_rules

from tests.util import check_vmap

U32 = np.dtype(np.uint32)
MASK = 0xFFFFFFFF


# --- stop_gradient -----------------------------------------------------------------------------

def test_stop_gradient_is_the_identity_eagerly():
    for value in (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2], np.int32),
                  np.array(True), np.zeros((0, 2), np.uint8)):
        out = lax.stop_gradient(fnp.asarray(value))
        assert out.dtype == value.dtype and out.shape == value.shape
        np.testing.assert_array_equal(np.asarray(out), value)


def test_stop_gradient_blocks_first_and_higher_derivatives():
    f = lambda x: lax.mul(x, lax.stop_gradient(lax.mul(x, x)))  # noqa: E731 - d/dx = x**2
    x = fnp.asarray(np.float32(3.0))
    assert float(fgrad.grad(f)(x)) == 9.0
    assert float(fgrad.grad(fgrad.grad(f))(x)) == 0.0
    _, tangent = fgrad.jvp(lax.stop_gradient, (x,), (fnp.asarray(np.float32(1.0)),))
    assert float(tangent) == 0.0
    out, vjp_fn = fgrad.vjp(lambda v: lax.mul(lax.stop_gradient(v), 2.0), fnp.asarray(np.ones(3, np.float32)))
    np.testing.assert_array_equal(np.asarray(vjp_fn(fnp.asarray(np.ones(3, np.float32)))[0]), np.zeros(3))


def test_stop_gradient_maps_over_pytrees():
    tree = {"w": fnp.asarray(np.ones((2, 2), np.float32)), "steps": fnp.asarray(np.int32(4)),
            "pair": (fnp.asarray(np.float32(2.0)), None)}
    out = lax.stop_gradient(tree)
    assert sorted(out) == ["pair", "steps", "w"] and out["pair"][1] is None
    assert out["steps"].dtype == np.int32 and int(out["steps"]) == 4

    def loss(params):
        frozen = lax.stop_gradient(params)
        return lax.add(lax.mul(params["w"], frozen["w"]).sum(), lax.mul(frozen["pair"][0], params["pair"][0]))

    params = {"w": fnp.asarray(np.full((2, 2), 3.0, np.float32)), "pair": (fnp.asarray(np.float32(2.0)), None)}
    grads = fgrad.grad(loss)(params)
    np.testing.assert_array_equal(np.asarray(grads["w"]), np.full((2, 2), 3.0))
    assert float(grads["pair"][0]) == 2.0


@pytest.mark.parametrize("in_axes, shape", [(0, (4, 3)), (1, (3, 4)), (-1, (2, 3, 4)), (None, (3,))])
def test_stop_gradient_vmap_passes_the_batch_dim_through(in_axes, shape):
    x = fnp.asarray(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
    if in_axes is None:
        out = fgrad.vmap(lambda a, b: lax.add(lax.stop_gradient(a), b), in_axes=(None, 0))(
            x, fnp.asarray(np.ones((4, 3), np.float32)))
        np.testing.assert_array_equal(np.asarray(out), np.broadcast_to(np.asarray(x) + 1, (4, 3)))
        return
    check_vmap(lax.stop_gradient, (x,), in_axes=(in_axes,))
    closed = fgrad.make_jaxpr(fgrad.vmap(lax.stop_gradient, in_axes=in_axes, out_axes=in_axes))(x)
    assert [e.primitive.name for e in closed.eqns] == ["stop_gradient"]  # no transposes added


def test_stop_gradient_stages_as_a_primitive():
    closed = fgrad.make_jaxpr(lambda x: lax.mul(lax.stop_gradient(x), x))(fnp.asarray(np.ones(3, np.float32)))
    typecheck_jaxpr(closed.jaxpr)
    assert "b:f32[3] = stop_gradient a" in str(closed)
    assert misc.stop_gradient_p in not_differentiable and misc.stop_gradient_p in vmap_rules


# --- threefry2x32 ------------------------------------------------------------------------------

def threefry_reference(k0, k1, x0, x1):
    """Threefry-2x32, 20 rounds, on Python ints: five groups of four rounds, each group
    followed by a key injection."""
    def rotl(v, d):
        return ((v << d) | (v >> (32 - d))) & MASK
    ks = (k0, k1, k0 ^ k1 ^ 0x1BD11BDA)
    x0, x1 = (x0 + ks[0]) & MASK, (x1 + ks[1]) & MASK
    for group in range(5):
        for d in ((13, 15, 26, 6), (17, 29, 16, 24))[group % 2]:
            x0 = (x0 + x1) & MASK
            x1 = rotl(x1, d) ^ x0
        x0 = (x0 + ks[(group + 1) % 3]) & MASK
        x1 = (x1 + ks[(group + 2) % 3] + group + 1) & MASK
    return x0, x1


# Random123's kat_vectors for threefry2x32_20: (key, counter) -> result
KNOWN_ANSWERS = [
    ((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
]


@pytest.mark.parametrize("key, counter, expected", KNOWN_ANSWERS)
@pytest.mark.parametrize("impl", [misc.threefry2x32, misc.threefry2x32_expanded, threefry_reference])
def test_known_answer_vectors(impl, key, counter, expected):
    y1, y2 = impl(*key, *counter)
    assert (int(y1), int(y2)) == expected


def _reference_arrays(k1, k2, x1, x2):
    shape = np.broadcast_shapes(*(np.shape(a) for a in (k1, k2, x1, x2)))
    flat = [np.broadcast_to(a, shape).ravel().tolist() for a in (k1, k2, x1, x2)]
    pairs = [threefry_reference(*words) for words in zip(*flat)]
    return [np.array([p[i] for p in pairs], U32).reshape(shape) for i in (0, 1)]


words = st.one_of(st.sampled_from([0, 1, MASK, 0x80000000]), st.integers(0, MASK))


@st.composite
def four_operands(draw):
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    return [draw(hnp.arrays(U32, draw(st.sampled_from([shape, ()])), elements=words)) for _ in range(4)]


@settings(max_examples=40, deadline=None)
@given(operands=four_operands())
def test_threefry_matches_the_python_reference_with_broadcasting(operands):
    y1, y2 = misc.threefry2x32(*[fnp.asarray(a) for a in operands])
    want1, want2 = _reference_arrays(*operands)
    for got, want in ((y1, want1), (y2, want2)):
        assert got.dtype == U32 and got.shape == want.shape
        np.testing.assert_array_equal(np.asarray(got), want)


@settings(max_examples=15, deadline=None)
@given(operands=four_operands())
def test_expanded_form_gives_the_same_bits_from_lax_bit_ops(operands):
    args = [fnp.asarray(a) for a in operands]
    for got, want in zip(misc.threefry2x32_expanded(*args), misc.threefry2x32(*args)):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_expanded_form_stages_only_integer_add_xor_and_shifts():
    u = fnp.asarray(np.arange(3, dtype=np.uint32))
    closed = fgrad.make_jaxpr(misc.threefry2x32_expanded)(u, u, u, u)
    typecheck_jaxpr(closed.jaxpr)
    assert {e.primitive.name for e in closed.eqns} == {"add", "xor", "or", "shift_left", "shift_right_logical"}


def test_python_ints_are_uint32_words():
    y = misc.threefry2x32(0x13198A2E, 0x03707344, fnp.asarray(np.array([0x243F6A88], U32)), 0x85A308D3)
    assert [np.asarray(v).tolist() for v in y] == [[0xC4923A9C], [0x483DF7A0]]
    with pytest.raises(ValueError, match="uint32"):
        misc.threefry2x32(-1, 0, 0, 0)
    with pytest.raises(ValueError, match="uint32"):
        misc.threefry2x32(2 ** 32, 0, 0, 0)


def test_threefry_rejects_other_dtypes_and_mismatched_shapes():
    u = fnp.asarray(np.zeros(3, U32))
    with pytest.raises(TypeError, match="threefry2x32: key2 must be uint32, got i32\\[3\\].*convert_element_type"):
        misc.threefry2x32(u, fnp.asarray(np.zeros(3, np.int32)), u, u)
    with pytest.raises(TypeError, match="threefry2x32: operands must have the same shape"):
        misc.threefry2x32(u, u, u, fnp.asarray(np.zeros(4, U32)))


@pytest.mark.parametrize("in_axes, shapes", [
    ((0, 0, 0, 0), [(4, 3)] * 4),
    ((1, None, 1, None), [(3, 4), (3,), (3, 4), ()]),
    ((-1, 0, None, 1), [(2, 4), (4, 2), (2,), (2, 4)]),
    ((0, None, None, None), [(4,), (), (5,), (5,)]),      # a batched scalar key meets counter arrays
    ((0, None, 1, None), [(4,), (), (5, 4), ()]),         # ... and a counter batched on axis 1
])
def test_threefry_vmap_matches_a_loop(in_axes, shapes):
    rng = np.random.default_rng(0)
    args = [fnp.asarray(rng.integers(0, 2 ** 32, s, dtype=np.uint64).astype(U32)) for s in shapes]
    check_vmap(misc.threefry2x32, args, in_axes=in_axes)


def test_threefry_is_not_differentiable_and_stages_two_results():
    assert misc.threefry2x32_p in not_differentiable and misc.threefry2x32_p not in jvp_rules

    def noisy(x):  # the bits depend on x only through an integer conversion: zero gradient
        bits, _ = misc.threefry2x32(lax.convert_element_type(x, np.uint32), 7, 1, 2)
        return lax.add(lax.mul(lax.convert_element_type(bits, np.float32), 1e-9), x)

    assert float(fgrad.grad(noisy)(fnp.asarray(np.float32(3.0)))) == 1.0
    u = fnp.asarray(np.arange(3, dtype=np.uint32))
    closed = fgrad.make_jaxpr(misc.threefry2x32)(u, u, u, u)
    typecheck_jaxpr(closed.jaxpr)
    assert "e:u32[3] f:u32[3] = threefry2x32 a b c d" in str(closed)
    staged = eval_jaxpr(closed.jaxpr, closed.consts, u, u, u, u)
    for got, want in zip(staged, misc.threefry2x32(u, u, u, u)):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_counter_streams_look_uniform():
    """A smoke test of the bits: 2**16 counters under one key, bit frequencies near 1/2."""
    counters = fnp.asarray(np.arange(2 ** 16, dtype=U32))
    y1, y2 = misc.threefry2x32(0x12345678, 0x9ABCDEF0, counters, 0)
    bits = np.unpackbits(np.concatenate([np.asarray(y1), np.asarray(y2)]).view(np.uint8))
    assert abs(bits.mean() - 0.5) < 0.005
    assert len(np.unique(np.asarray(y1))) > 2 ** 16 - 5
