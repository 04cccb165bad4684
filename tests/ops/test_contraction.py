"""dot_general and conv_general_dilated: eager results vs np.einsum and a direct-loop
convolution on hypothesis-drawn shapes and parameters (0-size dims, negative padding,
dilations, groups, other layouts); derivatives vs finite differences to second order;
vmap vs a Python loop with in_axes 0, 1, -1 and None; shape errors; staged jaxprs."""
import itertools
import string

import numpy as np
import pytest
from hypothesis import given, strategies as st

import fgrad
from fgrad import lax
from fgrad import numpy as fnp
from fgrad.core.ir import typecheck_jaxpr

from tests.util import check_grads, check_vmap


def f32(x):
    return fnp.asarray(np.asarray(x, np.float32))


def stack(x, axis, scale=(1.0, -2.0)):
    """A batch of two variants of ``x`` along ``axis`` (for vmap)."""
    return np.stack([x * s for s in scale], axis=axis)


# ============================================================================================
# dot_general
# ============================================================================================

@st.composite
def dot_problems(draw, max_side=3):
    """Random operand layouts: each role's dims shuffled into both operands.

    Returns (lhs_shape, rhs_shape, dimension_numbers, einsum spec)."""
    counts = [draw(st.integers(0, 2)) for _ in range(4)]  # batch, contracting, lhs free, rhs free
    roles = [(role, i) for role, n in zip(("b", "c", "l", "r"), counts) for i in range(n)]
    size = {r: draw(st.integers(0, max_side)) for r in roles}
    lhs_items = draw(st.permutations([r for r in roles if r[0] in "bcl"]))
    rhs_items = draw(st.permutations([r for r in roles if r[0] in "bcr"]))
    letter = {r: string.ascii_letters[k] for k, r in enumerate(roles)}
    dims = lambda items, kind: tuple(items.index((kind, i)) for i in range(counts["bc".index(kind)]))
    dimension_numbers = ((dims(lhs_items, "c"), dims(rhs_items, "c")), (dims(lhs_items, "b"), dims(rhs_items, "b")))
    out = [("b", i) for i in range(counts[0])] + [r for r in lhs_items if r[0] == "l"] + \
        [r for r in rhs_items if r[0] == "r"]
    spec = "".join(letter[r] for r in lhs_items) + "," + "".join(letter[r] for r in rhs_items) + "->" + \
        "".join(letter[r] for r in out)
    return (tuple(size[r] for r in lhs_items), tuple(size[r] for r in rhs_items), dimension_numbers, spec)


@given(dot_problems(), st.sampled_from([np.float32, np.int32]), st.integers(0, 2 ** 16))
def test_dot_general_matches_einsum(problem, dtype, seed):
    lhs_shape, rhs_shape, dn, spec = problem
    rng = np.random.default_rng(seed)
    a = rng.integers(-4, 5, lhs_shape).astype(dtype)
    b = rng.integers(-4, 5, rhs_shape).astype(dtype)
    got = np.asarray(lax.dot_general(fnp.asarray(a), fnp.asarray(b), dn))
    want = np.einsum(spec, a, b)
    assert got.dtype == dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)  # small integers: exact in float32 too


@pytest.mark.parametrize("jitted", [False, True])
@given(dot_problems(), st.integers(0, 2 ** 16))
def test_one_term_contractions_keep_the_sign_of_zero(jitted, problem, seed):
    """A contraction with one term per output is that term, as in XLA: 0 * -x is -0 (a sum
    started from +0 would make it +0); others match einsum."""
    lhs_shape, rhs_shape, dn, spec = problem
    rng = np.random.default_rng(seed)
    a = rng.choice(np.array([0.0, -0.0, 1.5, -2.0], np.float32), lhs_shape)
    b = rng.choice(np.array([0.0, -0.0, 0.5, -3.0], np.float32), rhs_shape)
    dot = lambda a, b: lax.dot_general(a, b, dn)
    got = np.asarray((fgrad.jit(dot) if jitted else dot)(fnp.asarray(a), fnp.asarray(b)))
    want = np.einsum(spec, a, b)
    np.testing.assert_array_equal(got, want)
    if int(np.prod([lhs_shape[d] for d in dn[0][0]])) == 1:   # einsum sums from +0: xor the signs
        sa, sb = np.signbit(a).astype(int), np.signbit(b).astype(int)
        negative = np.einsum(spec, sa, 1 - sb) + np.einsum(spec, 1 - sa, sb)
        np.testing.assert_array_equal(np.signbit(got), negative.astype(bool))


def test_dot_of_one_element_vectors_is_their_product():
    for f in (fnp.dot, fgrad.jit(fnp.dot)):
        assert np.signbit(np.asarray(f(f32([0.0]), f32([-0.51]))))
        np.testing.assert_array_equal(np.asarray(f(f32([[2.0], [-0.0]]), f32([[3.0, -1.0]]))),
                                      [[6.0, -2.0], [-0.0, 0.0]])


def test_dot_general_preferred_element_type_and_matmul():
    a = np.arange(6, dtype=np.int32).reshape(2, 3)
    out = lax.dot_general(fnp.asarray(a), fnp.asarray(a.T.copy()), (((1,), (0,)), ((), ())),
                          preferred_element_type=np.float32)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(out), a @ a.T)


@given(dot_problems(), st.integers(0, 2 ** 16))
def test_dot_general_gradients_to_second_order(problem, seed):
    lhs_shape, rhs_shape, dn, _ = problem
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(lhs_shape), rng.standard_normal(rhs_shape)
    check_grads(lambda a, b: lax.dot_general(a, b, dn), (a, b), order=2)


@given(dot_problems(), st.sampled_from([(0, None), (None, 0), (1, -1), (-1, 1), (0, 0)]),
       st.integers(0, 2 ** 16))
def test_dot_general_vmap_matches_a_loop(problem, in_axes, seed):
    lhs_shape, rhs_shape, dn, _ = problem
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(lhs_shape), rng.standard_normal(rhs_shape)
    args = []
    for x, axis in zip((a, b), in_axes):
        if axis is not None and abs(axis) > x.ndim:
            axis = 0
        args.append((x, axis))
    in_axes = tuple(axis for _, axis in args)
    batched = [f32(x if axis is None else stack(x, axis)) for x, axis in args]
    check_vmap(lambda a, b: lax.dot_general(a, b, dn), batched, in_axes=in_axes, rtol=1e-5, atol=1e-5)


def test_dot_general_transposes_are_dot_generals():
    dn = (((2,), (1,)), ((0,), (0,)))
    a, b = f32(np.ones((2, 3, 4))), f32(np.ones((2, 4, 5)))
    closed = fgrad.make_jaxpr(fgrad.grad(lambda a, b: lax.reduce_sum(lax.dot_general(a, b, dn), (0, 1, 2)),
                                         argnums=(0, 1)))(a, b)
    typecheck_jaxpr(closed.jaxpr)
    names = {eqn.primitive.name for eqn in closed.jaxpr.eqns}
    assert names <= {"dot_general", "transpose", "broadcast_in_dim"}, names


@pytest.mark.parametrize("lhs, rhs, dn, match", [
    ((2, 3), (4, 5), (((1,), (0,)), ((), ())), r"contracting dims .* must match"),
    ((2, 3), (3, 5), (((1,), (0,)), ((0,), (1,))), r"both contracting and batch|batch dims"),
    ((2, 3), (3, 5), (((2,), (0,)), ((), ())), r"lhs_contracting \(2,\) must be distinct axes"),
    ((2, 3), (3, 5), (((1,), ()), ((), ())), r"as many contracting dims"),
])
def test_dot_general_shape_errors(lhs, rhs, dn, match):
    with pytest.raises(TypeError, match="dot_general: .*" + match):
        lax.dot_general(fnp.ones(lhs), fnp.ones(rhs), dn)


def test_dot_general_dtype_and_argument_errors():
    with pytest.raises(TypeError, match="same dtype"):
        lax.dot_general(fnp.ones((2, 3)), fnp.ones((3, 2), np.int32), (((1,), (0,)), ((), ())))
    with pytest.raises(TypeError, match="dimension_numbers must be"):
        lax.dot_general(fnp.ones((2, 3)), fnp.ones((3, 2)), ((1,), (0,)))


# ============================================================================================
# conv_general_dilated
# ============================================================================================

def reference_conv(x, w, strides, padding, lhs_dilation, rhs_dilation, groups=1, batch_groups=1):
    """The definition, one output element at a time (canonical NC... / OI... layouts)."""
    nsp = x.ndim - 2
    n, c = x.shape[:2]
    o, i = w.shape[:2]
    dilated = np.zeros((n, c, *[(s - 1) * d + 1 if s else 0 for s, d in zip(x.shape[2:], lhs_dilation)]))
    dilated[(slice(None), slice(None), *[slice(None, None, d) for d in lhs_dilation])] = x
    padded = np.pad(dilated, [(0, 0), (0, 0)] + [(max(lo, 0), max(hi, 0)) for lo, hi in padding])
    padded = padded[(slice(None), slice(None), *[slice(max(0, -lo), padded.shape[2 + k] - max(0, -hi))
                                                  for k, (lo, hi) in enumerate(padding)])]
    extents = [(k - 1) * d + 1 for k, d in zip(w.shape[2:], rhs_dilation)]
    out_sizes = [(p - e) // s + 1 if p >= e else 0 for p, e, s in zip(padded.shape[2:], extents, strides)]
    out_n = n // batch_groups
    per_group = o // max(groups, batch_groups)
    out = np.zeros((out_n, o, *out_sizes))
    for b, f in itertools.product(range(out_n), range(o)):
        g = f // per_group
        for pos in itertools.product(*[range(s) for s in out_sizes]):
            total = 0.0
            for ci, tap in itertools.product(range(i), itertools.product(*[range(k) for k in w.shape[2:]])):
                image, channel = (g * out_n + b, ci) if batch_groups > 1 else (b, g * i + ci)
                where = tuple(p * s + t * d for p, s, t, d in zip(pos, strides, tap, rhs_dilation))
                total += padded[(image, channel, *where)] * w[(f, ci, *tap)]
            out[(b, f, *pos)] = total
    return out


@st.composite
def conv_problems(draw, max_spatial=2, min_size=0):
    nsp = draw(st.integers(1, max_spatial))
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    batch_groups = 1 if groups > 1 else draw(st.sampled_from([1, 1, 2]))
    ints = lambda lo, hi: tuple(draw(st.integers(lo, hi)) for _ in range(nsp))
    n = draw(st.integers(min_size, 2)) * batch_groups
    i = draw(st.integers(max(min_size, 1), 2))
    o = draw(st.integers(max(min_size, 1), 2)) * max(groups, batch_groups)
    x_shape = (n, i * groups, *ints(min_size, 5))
    w_shape = (o, i, *ints(1, 3))
    params = dict(window_strides=ints(1, 2), padding=tuple(zip(ints(-1, 2), ints(-1, 2))),
                  lhs_dilation=ints(1, 2), rhs_dilation=ints(1, 2), feature_group_count=groups,
                  batch_group_count=batch_groups)
    return x_shape, w_shape, params


def reference(x, w, params):
    return reference_conv(x, w, params["window_strides"], params["padding"], params["lhs_dilation"],
                          params["rhs_dilation"], params["feature_group_count"], params["batch_group_count"])


@given(conv_problems(max_spatial=3), st.integers(0, 2 ** 16))
def test_conv_matches_a_direct_loop(problem, seed):
    x_shape, w_shape, params = problem
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    got = np.asarray(lax.conv_general_dilated(f32(x), f32(w), **params))
    want = reference(x, w, params)
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("channels, groups", [(1, 1), (16, 1), (32, 2), (16, 16)])
def test_conv_wide_and_narrow_channels(channels, groups):
    # wide channels take the channels-last patch layout, narrow ones channels-first
    rng = np.random.default_rng(channels + groups)
    x, w = rng.standard_normal((2, channels, 7, 6)), rng.standard_normal((2 * groups, channels // groups, 3, 2))
    params = dict(window_strides=(2, 1), padding=((1, 0), (0, 1)), lhs_dilation=(1, 1),
                  rhs_dilation=(1, 2), feature_group_count=groups, batch_group_count=1)
    got = np.asarray(lax.conv_general_dilated(f32(x), f32(w), **params))
    np.testing.assert_allclose(got, reference(x, w, params), rtol=1e-4, atol=1e-4)


@given(conv_problems(min_size=1), st.integers(0, 2 ** 16))
def test_conv_gradients_to_second_order(problem, seed):
    x_shape, w_shape, params = problem
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    check_grads(lambda x, w: lax.conv_general_dilated(x, w, **params), (x, w), order=2)


@given(conv_problems(min_size=1), st.integers(0, 2 ** 16), st.booleans())
def test_outputs_made_of_padding_and_holes_send_no_cotangent(problem, seed, jitted):
    # An output whose window is all padding or lhs-dilation holes is 0 whatever x and w are:
    # an infinite cotangent there (sqrt or cbrt of that 0) must not reach either gradient as
    # inf * 0 = nan. XLA never multiplies padding or holes; JAX's gradients stay finite.
    x_shape, w_shape, params = problem
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    structural = reference(np.ones(x_shape), np.ones(w_shape), params) == 0
    ct = rng.standard_normal(structural.shape)
    conv = lambda x, w: lax.conv_general_dilated(x, w, **params)

    def grads(ct):
        pull = lambda x, w, ct: fgrad.vjp(conv, x, w)[1](ct)
        pull = fgrad.jit(pull) if jitted else pull
        return [np.asarray(g) for g in pull(f32(x), f32(w), f32(ct))]

    with np.errstate(invalid="ignore"):
        got = grads(np.where(structural, np.inf, ct))
    want = grads(np.where(structural, 0.0, ct))
    for g, h in zip(got, want):
        assert np.isfinite(h).all()
        np.testing.assert_array_equal(g, h)


def test_cbrt_of_a_transposed_conv_has_a_finite_kernel_gradient():
    # fuzz seed 5652: outputs 0, 2 and 4 are padding or holes; JAX gives the same value
    x = np.array([[[-3.0732417, 0.26919714, -0.59812516]]], np.float32)
    w = np.array([[[-0.3106533]]], np.float32)
    conv = lambda w: lax.conv_general_dilated(f32(x), w, (1,), [(1, 0)], lhs_dilation=(2,),
                                              rhs_dilation=(2,))
    loss = lambda w: fnp.sum(fnp.cbrt(conv(w)))
    want = np.sum(x / 3 * np.cbrt(x * w[0, 0, 0]) ** -2)   # d/dw cbrt(x w), summed
    for grad in (fgrad.grad(loss), fgrad.jit(fgrad.grad(loss))):
        np.testing.assert_allclose(np.asarray(grad(f32(w))).ravel(), [want], rtol=1e-5)


@given(conv_problems(min_size=1), st.sampled_from([(0, None), (None, 1), (-1, -1), (1, 0), (2, None)]),
       st.integers(0, 2 ** 16))
def test_conv_vmap_matches_a_loop(problem, in_axes, seed):
    x_shape, w_shape, params = problem
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    batched = [f32(v if axis is None else stack(v, axis)) for v, axis in zip((x, w), in_axes)]
    check_vmap(lambda x, w: lax.conv_general_dilated(x, w, **params), batched, in_axes=in_axes,
               rtol=1e-5, atol=1e-5)


def test_conv_layouts_match_the_canonical_one():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 5, 6, 4)), rng.standard_normal((3, 2, 2, 6))  # NHWC, HWIO
    conv = lambda x, w, dn: lax.conv_general_dilated(x, w, (2, 1), "SAME", None, (1, 2), dn,
                                                     feature_group_count=2)
    got = np.asarray(conv(f32(x), f32(w), ("NHWC", "HWIO", "NHWC")))
    want = np.asarray(conv(f32(x.transpose(0, 3, 1, 2)), f32(w.transpose(3, 2, 0, 1)), ("NCHW", "OIHW", "NCHW")))
    np.testing.assert_allclose(got, want.transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-5)
    check_grads(lambda x, w: conv(x, w, ("NHWC", "HWIO", "NHWC")), (x, w), order=2)
    check_vmap(lambda x, w: conv(x, w, ("NHWC", "HWIO", "NCHW")), (f32(stack(x, 1)), f32(stack(w, 3))),
               in_axes=(1, 3), rtol=1e-5, atol=1e-5)


def test_same_and_valid_padding():
    x, w = np.ones((1, 1, 5, 4), np.float32), np.ones((1, 1, 3, 2), np.float32)
    same = lax.conv_general_dilated(fnp.asarray(x), fnp.asarray(w), (2, 1), "SAME")
    valid = lax.conv_general_dilated(fnp.asarray(x), fnp.asarray(w), (1, 1), "VALID")
    assert same.shape == (1, 1, 3, 4) and valid.shape == (1, 1, 3, 3)
    np.testing.assert_allclose(np.asarray(same)[0, 0, :, 0], [4.0, 6.0, 4.0])  # (1, 1) rows padding
    assert lax.padtype_to_pads((5, 4), (3, 2), (2, 1), "SAME") == ((1, 1), (0, 1))


def test_mnist_convnet_gradients_compose():
    """grad of a small conv -> relu -> max-pool -> dense loss, to second order, and vmapped."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 1, 6, 6))
    w1, w2 = rng.standard_normal((3, 1, 3, 3)) / 3, rng.standard_normal((2, 3 * 2 * 2)) / 3

    def loss(w1, w2, x):
        h = lax.conv_general_dilated(x, w1, (1, 1), "VALID", dimension_numbers=("NCHW", "OIHW", "NCHW"))
        h = lax.max(h, 0.0)
        h = lax.reduce_window(h, "max", (1, 1, 2, 2), (1, 1, 2, 2))
        logits = lax.dot_general(lax.reshape(h, (2, 12)), w2, (((1,), (1,)), ((), ())))
        return lax.reduce_sum(lax.square(logits), (0, 1))

    check_grads(loss, (w1, w2, x), order=2, modes=("rev",))
    g = fgrad.grad(loss, argnums=(0, 1))(f32(w1), f32(w2), f32(x))
    assert g[0].shape == w1.shape and g[1].shape == w2.shape
    per_example = fgrad.vmap(fgrad.grad(lambda w1, x: loss(w1, f32(w2), x)), in_axes=(None, 0))
    xs = f32(np.stack([x, 2 * x]))
    got = per_example(f32(w1), xs)
    for k in range(2):
        want = fgrad.grad(lambda w1: loss(w1, f32(w2), f32(np.asarray(xs)[k])))(f32(w1))
        np.testing.assert_allclose(np.asarray(got)[k], np.asarray(want), rtol=1e-4, atol=1e-5)


def test_conv_gradient_jaxpr_is_made_of_convolutions():
    x, w = f32(np.ones((2, 4, 6, 6))), f32(np.ones((4, 2, 3, 3)))
    conv = lambda x, w: lax.reduce_sum(lax.conv_general_dilated(x, w, (2, 2), ((1, 1), (1, 1)),
                                                                feature_group_count=2), (0, 1, 2, 3))
    closed = fgrad.make_jaxpr(fgrad.grad(conv, argnums=(0, 1)))(x, w)
    typecheck_jaxpr(closed.jaxpr)
    names = [eqn.primitive.name for eqn in closed.jaxpr.eqns]
    assert names.count("conv_general_dilated") == 2
    assert set(names) <= {"conv_general_dilated", "transpose", "reshape", "rev", "broadcast_in_dim"}


@pytest.mark.parametrize("x_shape, w_shape, kwargs, error, match", [
    ((1, 3, 5, 5), (2, 2, 3, 3), {}, TypeError, "lhs has 3 input features but the kernel expects 2"),
    ((1, 4, 5, 5), (3, 2, 3, 3), {"feature_group_count": 2}, TypeError, "not divisible by feature_group_count"),
    ((3, 4, 5, 5), (2, 4, 3, 3), {"batch_group_count": 2}, TypeError, "divisible by batch_group_count=2"),
    ((2, 4, 5, 5), (2, 2, 3, 3), {"feature_group_count": 2, "batch_group_count": 2}, ValueError, "cannot both"),
    ((1, 3, 5), (2, 3, 3, 3), {}, TypeError, "same rank"),
    ((1, 3, 5, 5), (2, 3, 3, 0), {}, TypeError, "empty spatial dimension"),
    ((1, 3, 5, 5), (2, 3, 3, 3), {"window_strides": (1,)}, TypeError, "one entry per spatial dimension"),
    ((1, 3, 5, 5), (2, 3, 3, 3), {"window_strides": (0, 1)}, ValueError, "window_strides must be positive"),
    ((1, 3, 5, 5), (2, 3, 3, 3), {"padding": "FULL"}, ValueError, "'SAME', 'SAME_LOWER', 'VALID'"),
    ((1, 3, 5, 5), (2, 3, 3, 3), {"dimension_numbers": ("NCHW", "OIHW", "NCXY")}, ValueError, "spatial letters"),
])
def test_conv_shape_errors(x_shape, w_shape, kwargs, error, match):
    kwargs = {"window_strides": (1,) * (len(x_shape) - 2), "padding": "VALID", **kwargs}
    with pytest.raises(error, match=match):
        lax.conv_general_dilated(fnp.ones(x_shape), fnp.ones(w_shape), **kwargs)


def test_conv_dtype_errors():
    with pytest.raises(TypeError, match="same dtype"):
        lax.conv_general_dilated(fnp.ones((1, 1, 3)), fnp.ones((1, 1, 2), np.int32), (1,), "VALID")
    with pytest.raises(TypeError, match="bool"):
        lax.conv_general_dilated(fnp.ones((1, 1, 3)) > 0, fnp.ones((1, 1, 2)) > 0, (1,), "VALID")


def test_jvp_of_a_contraction_skips_the_constant_operands_zero_tangent():
    # JAX 0.10.2: d/dx (x @ W) along ones at x = [[inf, 1]] is ones @ W, with no `x @ 0` (NaN) term
    w = np.array([[1., 2.], [3., 4.]], np.float32)
    x = np.array([[np.inf, 1.]], np.float32)
    np.testing.assert_array_equal(fgrad.jvp(lambda x: x @ w, (x,), (np.ones_like(x),))[1], [[4., 6.]])
    k = np.ones((1, 1, 2), np.float32)
    conv = lambda x: fgrad.lax.conv_general_dilated(x.reshape(1, 1, 2), k, (1,), "VALID")
    np.testing.assert_array_equal(fgrad.jvp(conv, (x,), (np.ones_like(x),))[1], [[[2.]]])
