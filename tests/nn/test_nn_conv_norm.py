"""Conv1d/2d/3d, ConvTranspose1d/2d/3d, GroupNorm, InstanceNorm, BatchNorm, N-d and adaptive pooling,
Identity and Flatten vs NumPy references (direct loops in float64), gradients vs finite differences
(float64), jit (natively) vs eager, vmap vs a Python loop (BatchNorm's cross-example statistics
through ``axis_name``), PyTorch-default initialisation, and the errors for bad arguments."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fgrad
from fgrad import nn, random, tree
from fgrad import numpy as fnp
from fgrad.devices import devices
from fgrad.sharding import Mesh, P
from fgrad.transforms.shard import shard

from tests.nn.test_nn_layers import assert_uniform
from tests.util import check_grads, check_vmap

#: jit must run natively: a fall back to the reference path fails the test.
pytestmark = pytest.mark.filterwarnings("error::fgrad.ReferencePathWarning")
NP_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def normal(seed, shape):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# --- NumPy references ------------------------------------------------------------------------------

def np_conv(x, w, b, stride, pads, dilation, groups, mode="zeros"):
    """Direct N-d cross-correlation, one output position at a time; ``pads`` as (low, high) pairs."""
    nsp = w.ndim - 2
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0), *pads], mode=NP_MODES[mode])
    k = w.shape[2:]
    out_sizes = [(xp.shape[2 + d] - dilation[d] * (k[d] - 1) - 1) // stride[d] + 1 for d in range(nsp)]
    out = np.zeros((x.shape[0], w.shape[0], *out_sizes))
    out_per_group, in_per_group = w.shape[0] // groups, w.shape[1]
    axes = list(range(1, nsp + 2))
    for pos in np.ndindex(*out_sizes):
        window = tuple(slice(p * s, p * s + d * (kk - 1) + 1, d) for p, s, d, kk in zip(pos, stride, dilation, k))
        for g in range(groups):
            patch = xp[(slice(None), slice(g * in_per_group, (g + 1) * in_per_group)) + window]
            out[(slice(None), slice(g * out_per_group, (g + 1) * out_per_group)) + pos] = \
                np.tensordot(patch, w[g * out_per_group:(g + 1) * out_per_group], axes=(axes, axes))
    return out if b is None else out + b.reshape((1, -1) + (1,) * nsp)


def np_conv_transpose(x, w, b, stride, padding, output_padding, dilation, groups):
    """The transposed convolution by its definition: every input element scatters ``x * kernel``
    to positions ``i * stride + t * dilation``; then ``padding`` is cropped from both ends."""
    nsp = w.ndim - 2
    n, c_in, *in_sizes = x.shape
    in_per_group, out_per_group, *k = w.shape[0] // groups, *w.shape[1:]
    full_sizes = [(i - 1) * s + d * (kk - 1) + 1 + op for i, s, d, kk, op in
                  zip(in_sizes, stride, dilation, k, output_padding)]
    full = np.zeros((n, out_per_group * groups, *full_sizes))
    for pos in np.ndindex(*in_sizes):
        for taps in np.ndindex(*k):
            target = tuple(p * s + t * d for p, s, t, d in zip(pos, stride, taps, dilation))
            for g in range(groups):
                xs = x[(slice(None), slice(g * in_per_group, (g + 1) * in_per_group)) + pos].astype(np.float64)
                ws = w[(slice(g * in_per_group, (g + 1) * in_per_group), slice(None)) + taps]
                full[(slice(None), slice(g * out_per_group, (g + 1) * out_per_group)) + target] += xs @ ws
    out = full[(slice(None), slice(None)) + tuple(slice(p, size - p) for p, size in zip(padding, full_sizes))]
    return out if b is None else out + b.reshape((1, -1) + (1,) * nsp)


def np_group_norm(x, groups, w, b, eps):
    n, c = x.shape[:2]
    g = x.astype(np.float64).reshape(n, groups, -1)
    y = ((g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + eps)).reshape(x.shape)
    shape = (1, c) + (1,) * (x.ndim - 2)
    return y * w.reshape(shape) + b.reshape(shape)


def np_pool(x, kernel, stride, padding, op):
    nsp = len(kernel)
    fill = -np.inf if op == "max" else 0.0
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0), *[(p, p) for p in padding]], constant_values=fill)
    out_sizes = [(xp.shape[2 + d] - kernel[d]) // stride[d] + 1 for d in range(nsp)]
    out = np.zeros(x.shape[:2] + tuple(out_sizes))
    for pos in np.ndindex(*out_sizes):
        window = xp[(Ellipsis,) + tuple(slice(p * s, p * s + k) for p, s, k in zip(pos, stride, kernel))]
        flat = window.reshape(x.shape[:2] + (-1,))
        out[(Ellipsis,) + pos] = flat.max(-1) if op == "max" else flat.mean(-1)
    return out


def np_adaptive_avg_pool(x, out_sizes):
    out = np.zeros(x.shape[:2] + tuple(out_sizes))
    for pos in np.ndindex(*out_sizes):
        window = tuple(slice(math.floor(i * n / o), math.ceil((i + 1) * n / o))
                       for i, n, o in zip(pos, x.shape[2:], out_sizes))
        out[(Ellipsis,) + pos] = x[(Ellipsis,) + window].astype(np.float64).reshape(x.shape[:2] + (-1,)).mean(-1)
    return out


# --- convolutions ----------------------------------------------------------------------------------

CONVS = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
TRANSPOSES = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}


@st.composite
def conv_case(draw, transpose=False):
    nsp = draw(st.integers(1, 3))
    groups = draw(st.sampled_from([1, 1, 2]))
    ints = lambda lo, hi: tuple(draw(st.integers(lo, hi)) for _ in range(nsp))   # noqa: E731
    kernel, stride, dilation = ints(1, 3), ints(1, 2), ints(1, 2)
    case = dict(nsp=nsp, c_in=groups * draw(st.integers(1, 2)), c_out=groups * draw(st.integers(1, 2)),
                kernel=kernel, stride=stride, dilation=dilation, groups=groups, bias=draw(st.booleans()),
                n=draw(st.integers(1, 2)), seed=draw(st.integers(0, 99)))
    if transpose:
        case["padding"] = ints(0, 1)
        case["output_padding"] = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
        case["sizes"] = ints(1, 3)
    else:
        case["padding"] = draw(st.sampled_from(["same", "valid", "ints"])) if stride == (1,) * nsp else "ints"
        case["mode"] = draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate", "circular"]))
        case["sizes"] = tuple(d * (k - 1) + 1 + draw(st.integers(0, 3)) for k, d in zip(kernel, dilation))
        if case["padding"] == "ints":
            case["padding"] = tuple(draw(st.integers(0, min(2, size - 1))) for size in case["sizes"])
    return case


def explicit_pads(padding, kernel, dilation):
    if padding == "valid":
        return [(0, 0)] * len(kernel)
    if padding == "same":
        return [(d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel, dilation)]
    return [(p, p) for p in padding]


@settings(max_examples=30, deadline=None)
@given(conv_case())
def test_conv_nd_matches_a_direct_numpy_loop(case):
    conv = CONVS[case["nsp"]](case["c_in"], case["c_out"], case["kernel"], case["stride"], case["padding"],
                              case["dilation"], case["groups"], case["bias"], case["mode"],
                              key=random.key(case["seed"]))
    x = normal(case["seed"], (case["n"], case["c_in"], *case["sizes"]))
    want = np_conv(x, np.asarray(conv.weight), None if conv.bias is None else np.asarray(conv.bias), case["stride"],
                   explicit_pads(case["padding"], case["kernel"], case["dilation"]), case["dilation"], case["groups"],
                   case["mode"])
    np.testing.assert_allclose(np.asarray(conv(fnp.asarray(x))), want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(conv(fnp.asarray(x[0]))), want[0], rtol=1e-4, atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(conv_case(transpose=True))
def test_conv_transpose_nd_matches_the_scatter_definition(case):
    layer = TRANSPOSES[case["nsp"]](case["c_in"], case["c_out"], case["kernel"], case["stride"], case["padding"],
                                    case["output_padding"], case["groups"], case["bias"], case["dilation"],
                                    key=random.key(case["seed"]))
    x = normal(case["seed"], (case["n"], case["c_in"], *case["sizes"]))
    out_sizes = [(n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n, s, p, d, k, op in
                 zip(case["sizes"], case["stride"], case["padding"], case["dilation"], case["kernel"],
                     case["output_padding"])]
    if min(out_sizes) < 1:
        with pytest.raises(ValueError, match="leaves no output"):
            layer(fnp.asarray(x))
        return
    want = np_conv_transpose(x, np.asarray(layer.weight), None if layer.bias is None else np.asarray(layer.bias),
                             case["stride"], case["padding"], case["output_padding"], case["dilation"], case["groups"])
    got = np.asarray(layer(fnp.asarray(x)))
    assert got.shape == want.shape == (case["n"], case["c_out"], *out_sizes)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_conv_transpose_is_the_gradient_of_conv():
    """conv_transpose(y, w) is the vjp of conv(., w) at y, for the same stride/padding/dilation/groups."""
    w = fnp.asarray(normal(0, (4, 3, 3, 2)))   # conv: 6 -> 4 channels with groups 2; transpose: 4 -> 6
    x = fnp.asarray(normal(1, (2, 6, 9, 8)))
    options = dict(stride=(2, 3), padding=(1, 1), dilation=(1, 2), groups=2)
    y, vjp = fgrad.vjp(lambda v: nn.conv2d(v, w, **options), x)
    ct = fnp.asarray(normal(2, y.shape))
    (want,) = vjp(ct)
    got = nn.conv_transpose2d(ct, w, output_padding=(0, 1), **options)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)


def test_conv_init_follows_pytorch():
    conv = nn.Conv3d(4, 200, (3, 2, 2), groups=2, key=random.key(1))
    assert conv.weight.shape == (200, 2, 3, 2, 2)
    assert_uniform(conv.weight, 1 / math.sqrt(2 * 12))
    assert_uniform(conv.bias, 1 / math.sqrt(2 * 12))
    up = nn.ConvTranspose1d(300, 6, 5, groups=3, key=random.key(2))
    assert up.weight.shape == (300, 2, 5)   # (in, out / groups, k); fan_in = out / groups * k
    assert_uniform(up.weight, 1 / math.sqrt(2 * 5))
    assert nn.Conv1d(2, 3, 4, bias=False, key=random.key(3)).bias is None


def test_conv_grads_match_finite_differences():
    conv1 = nn.Conv1d(2, 4, 3, stride=2, padding="valid", dilation=2, groups=2, padding_mode="circular",
                      key=random.key(4))
    conv3 = nn.Conv3d(2, 2, 2, padding=(1, 0, 1), key=random.key(5))
    check_grads(lambda c, v: fnp.tanh(c(v)), (conv1, normal(6, (2, 2, 9))), order=1)
    check_grads(lambda c, v: c(v), (conv3, normal(7, (1, 2, 3, 3, 2))), order=1)
    up = nn.ConvTranspose2d(2, 4, (2, 3), stride=2, padding=(0, 1), output_padding=1, groups=2, key=random.key(8))
    check_grads(lambda c, v: fnp.tanh(c(v)), (up, normal(9, (2, 2, 3, 2))), order=2)
    check_grads(lambda v: nn.conv1d(v, fnp.ones((1, 1, 3)), padding="same", padding_mode="reflect"),
                (normal(10, (1, 1, 5)),), order=1)


def test_conv_vmap_over_inputs_and_weights_equals_a_loop():
    xs, ws = normal(11, (3, 2, 2, 7)), normal(12, (3, 4, 1, 3))
    check_vmap(lambda x, w: nn.conv1d(x, w, stride=2, padding=1, groups=2), (xs, ws), rtol=1e-5, atol=1e-5)
    check_vmap(lambda x, w: nn.conv_transpose1d(x, w, stride=2, groups=2), (xs[:, :, :, :4],
                                                                            normal(13, (3, 2, 2, 3))),
               rtol=1e-5, atol=1e-5)
    x3 = normal(14, (2, 1, 1, 3, 3, 3))
    check_vmap(lambda x: nn.conv3d(x, fnp.ones((2, 1, 2, 2, 2)), padding="same"), (x3,), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("nsp", [1, 2, 3])
def test_conv_layers_jit_natively_with_gradients(nsp):
    conv = CONVS[nsp](2, 4, 3, stride=1, padding="same", dilation=2, groups=2, padding_mode="replicate",
                      key=random.key(nsp))
    up = TRANSPOSES[nsp](4, 2, 2, stride=2, key=random.key(nsp + 10))
    x = fnp.asarray(normal(nsp, (2, 2) + (5,) * nsp))

    def loss(c, u, v):
        return fnp.sum(u(fnp.tanh(c(v))) ** 2)
    grads = fgrad.grad(loss, argnums=(0, 1, 2))
    np.testing.assert_allclose(np.asarray(fgrad.jit(loss)(conv, up, x)), np.asarray(loss(conv, up, x)), rtol=1e-5)
    for got, want in zip(tree.tree_leaves(fgrad.jit(grads)(conv, up, x)), tree.tree_leaves(grads(conv, up, x))):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-5)


def test_conv_errors():
    with pytest.raises(ValueError, match="padding='same' is not supported for strided"):
        nn.Conv1d(1, 1, 3, stride=2, padding="same", key=random.key(0))
    with pytest.raises(ValueError, match="padding must be an int, a tuple of ints, 'same' or 'valid'"):
        nn.Conv2d(1, 1, 3, padding="full", key=random.key(0))
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        nn.Conv3d(1, 1, 3, padding_mode="mirror", key=random.key(0))
    with pytest.raises(ValueError, match="kernel_size must be an int or a triple of ints"):
        nn.Conv3d(1, 1, (3, 3), key=random.key(0))
    with pytest.raises(ValueError, match=r"Conv1d expects an NCL \(or unbatched CL\) input"):
        nn.Conv1d(1, 1, 3, key=random.key(0))(fnp.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match="Conv3d: expects 2 input channels, got 3"):
        nn.Conv3d(2, 1, 1, key=random.key(0))(fnp.zeros((3, 2, 2, 2)))
    with pytest.raises(ValueError, match="padding_mode='reflect' needs padding <"):
        nn.Conv1d(1, 1, 3, padding=3, padding_mode="reflect", key=random.key(0))(fnp.zeros((1, 3)))
    with pytest.raises(ValueError, match="only padding_mode='zeros'"):
        nn.ConvTranspose2d(1, 1, 3, padding_mode="reflect", key=random.key(0))
    with pytest.raises(ValueError, match="output_padding .* must be smaller than either stride"):
        nn.ConvTranspose1d(1, 1, 3, stride=2, output_padding=2, key=random.key(0))
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.ConvTranspose3d(3, 4, 2, groups=2, key=random.key(0))
    with pytest.raises(ValueError, match="weight must have 4 dimensions"):
        nn.conv2d(fnp.zeros((1, 1, 4, 4)), fnp.zeros((1, 1, 3)))
    with pytest.raises(TypeError, match="explicit PRNG key"):
        nn.Conv1d(1, 1, 3, key=None)


# --- normalisation ---------------------------------------------------------------------------------

def test_group_and_instance_norm_match_numpy():
    x = normal(20, (3, 6, 4, 5)) * 3 + 2
    w, b = normal(21, (6,)), normal(22, (6,))
    norm = nn.GroupNorm(3, 6, eps=1e-3).replace(weight=fnp.asarray(w), bias=fnp.asarray(b))
    np.testing.assert_allclose(np.asarray(norm(fnp.asarray(x))), np_group_norm(x, 3, w, b, 1e-3), rtol=1e-4, atol=1e-5)
    plain = nn.GroupNorm(2, 6)
    np.testing.assert_array_equal(np.asarray(plain.weight), np.ones(6))
    np.testing.assert_array_equal(np.asarray(plain.bias), np.zeros(6))
    np.testing.assert_allclose(np.asarray(nn.GroupNorm(1, 6, affine=False)(fnp.asarray(x))),
                               np_group_norm(x, 1, np.ones(6), np.zeros(6), 1e-5), rtol=1e-4, atol=1e-5)
    instance = nn.InstanceNorm2d(6)
    assert tree.tree_leaves(instance) == []   # affine=False by default, as in PyTorch
    want = np_group_norm(x, 6, np.ones(6), np.zeros(6), 1e-5)
    np.testing.assert_allclose(np.asarray(instance(fnp.asarray(x))), want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(instance(fnp.asarray(x[1]))), want[1], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(nn.instance_norm(fnp.asarray(x))), want, rtol=1e-4, atol=1e-5)


def test_norm_grads_jit_and_vmap():
    norm = nn.GroupNorm(2, 4).replace(weight=fnp.asarray(normal(23, (4,))), bias=fnp.asarray(normal(24, (4,))))
    x = normal(25, (2, 4, 3))
    check_grads(lambda m, v: m(v), (norm, x), order=2)
    check_grads(lambda v: nn.InstanceNorm1d(4)(v), (x,), order=1)
    np.testing.assert_allclose(np.asarray(fgrad.jit(norm)(fnp.asarray(x))), np.asarray(norm(fnp.asarray(x))), rtol=1e-6)
    check_vmap(lambda v: norm(v), (normal(26, (3, 2, 4, 3)),), rtol=1e-5, atol=1e-5)


def np_batch_norm_steps(xs, w, b, momentum, eps, mean, var):
    """A NumPy training loop: per step, the normalised output and the running statistics."""
    outs = []
    for x in xs:
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, -1) + (1,) * (x.ndim - 2)
        batch_mean, batch_var = x.mean(axes), x.var(axes)
        n = x.size // x.shape[1]
        outs.append((x - batch_mean.reshape(shape)) / np.sqrt(batch_var.reshape(shape) + eps) * w.reshape(shape)
                    + b.reshape(shape))
        mean = (1 - momentum) * mean + momentum * batch_mean
        var = (1 - momentum) * var + momentum * batch_var * n / (n - 1)
    return outs, mean, var


def test_batch_norm_training_steps_match_numpy_and_eval_uses_running_stats():
    xs = [normal(30 + i, (5, 3, 4)).astype(np.float64) * (i + 1) + i for i in range(4)]
    w, b = normal(34, (3,)), normal(35, (3,))
    bn = nn.BatchNorm1d(3, eps=1e-4, momentum=0.2).replace(weight=fnp.asarray(w), bias=fnp.asarray(b))
    state = bn.init_state()
    np.testing.assert_array_equal(np.asarray(state.running_mean), np.zeros(3))
    np.testing.assert_array_equal(np.asarray(state.running_var), np.ones(3))
    want_ys, want_mean, want_var = np_batch_norm_steps(xs, w, b, 0.2, 1e-4, np.zeros(3), np.ones(3))
    step = fgrad.jit(lambda m, s, x: m(x, s, training=True))
    for x, want in zip(xs, want_ys):
        y, state = step(bn, state, fnp.asarray(x.astype(np.float32)))
        np.testing.assert_allclose(np.asarray(y), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(state.running_mean), want_mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(state.running_var), want_var, rtol=1e-5, atol=1e-5)
    assert int(state.num_batches_tracked) == 4
    x = normal(36, (2, 3, 4))
    y, same = bn(fnp.asarray(x), state, training=False)
    assert same is state
    shape = (1, 3, 1)
    want = (x - want_mean.reshape(shape)) / np.sqrt(want_var.reshape(shape) + 1e-4)
    want = want * w.reshape(shape) + b.reshape(shape)
    np.testing.assert_allclose(np.asarray(y), want, rtol=1e-4, atol=1e-4)


def test_batch_norm_without_running_stats_channels_last_and_functional():
    x = normal(40, (6, 2, 3))
    bn = nn.BatchNorm(3, track_running_stats=False, channel_axis=-1)
    assert bn.init_state() is None
    (want,), _, _ = np_batch_norm_steps([np.moveaxis(x, -1, 1)], np.ones(3), np.zeros(3), 0.1, 1e-5, 0, 1)
    for training in (True, False):   # batch statistics in both modes
        y, state = bn(fnp.asarray(x), None, training=training)
        assert state is None
        np.testing.assert_allclose(np.asarray(y), np.moveaxis(want, 1, -1), rtol=1e-4, atol=1e-4)
    y, mean, var = nn.batch_norm(fnp.asarray(x), fnp.zeros(3), fnp.ones(3), training=True, momentum=1.0,
                                 channel_axis=2)
    np.testing.assert_allclose(np.asarray(mean), x.mean((0, 1)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(var), x.var((0, 1), ddof=1), rtol=1e-5, atol=1e-6)


def test_batch_norm_gradients_match_finite_differences_and_skip_the_state():
    bn = nn.BatchNorm2d(2, momentum=0.3).replace(weight=fnp.asarray(normal(41, (2,))),
                                                  bias=fnp.asarray(normal(42, (2,))))
    state = bn.init_state()
    x = normal(43, (3, 2, 2, 2))
    check_grads(lambda m, v: m(v, state, training=True)[0], (bn, x), order=2)
    check_grads(lambda m, v: m(v, state, training=False)[0], (bn, x), order=1)
    # The state's update is stop_gradient-ed: differentiating the new running mean gives zero.
    g = fgrad.grad(lambda v: fnp.sum(bn(v, state, training=True)[1].running_mean))(fnp.asarray(x))
    np.testing.assert_array_equal(np.asarray(g), np.zeros(x.shape))


def test_batch_norm_vmap_with_axis_name_equals_the_whole_batch():
    """Per-example calls under vmap(axis_name=...) with channel_axis=0 see the whole batch's
    statistics (lax.pmean, as Equinox does) and update the unbatched state like one full-batch call."""
    x = normal(50, (6, 3, 4)) * 2 + 1
    w, b = fnp.asarray(normal(51, (3,))), fnp.asarray(normal(52, (3,)))
    whole = nn.BatchNorm1d(3).replace(weight=w, bias=b)
    per_example = nn.BatchNorm(3, axis_name="batch", channel_axis=0).replace(weight=w, bias=b)
    want_y, want_state = whole(fnp.asarray(x), whole.init_state(), training=True)
    mapped = fgrad.vmap(lambda v, s: per_example(v, s, training=True), in_axes=(0, None), out_axes=(0, None),
                        axis_name="batch")
    for run in (mapped, fgrad.jit(mapped)):
        y, state = run(fnp.asarray(x), per_example.init_state())
        np.testing.assert_allclose(np.asarray(y), np.asarray(want_y), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(state.running_mean), np.asarray(want_state.running_mean), rtol=1e-5)
        np.testing.assert_allclose(np.asarray(state.running_var), np.asarray(want_state.running_var), rtol=1e-5)
    # Without axis_name, vmap is a loop of independent batches (each of 2 examples).
    independent = nn.BatchNorm1d(3)
    check_vmap(lambda v: independent(v, independent.init_state(), training=True)[0],
               (x.reshape(3, 2, 3, 4),), rtol=1e-5, atol=1e-5)


def test_batch_norm_under_shard_with_axis_name_equals_the_whole_batch():
    """Each of 4 devices normalises its local (2, C, L) block with the statistics of all 8 examples
    (lax.pmean over the mesh axis); the replicated state comes back as one full-batch call's."""
    x = normal(53, (8, 3, 5))
    whole = nn.BatchNorm1d(3)
    want_y, want_state = whole(fnp.asarray(x), whole.init_state(), training=True)
    bn = nn.BatchNorm1d(3, axis_name="i")
    step = shard(lambda block, s: bn(block, s, training=True), Mesh(devices(4), ("i",)), (P("i"), P()),
                 (P("i"), P()))
    for run in (step, fgrad.jit(step)):
        y, state = run(x, bn.init_state())
        np.testing.assert_allclose(np.asarray(y), np.asarray(want_y), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(state.running_var), np.asarray(want_state.running_var), rtol=1e-5)
        np.testing.assert_allclose(np.asarray(state.running_mean), np.asarray(want_state.running_mean),
                                   rtol=1e-5, atol=1e-7)


def test_norm_errors():
    with pytest.raises(ValueError, match="num_channels .6. must be divisible by num_groups .4."):
        nn.GroupNorm(4, 6)
    with pytest.raises(ValueError, match=r"GroupNorm\(2, 4\) expects an \(N, 4, \*\) input"):
        nn.GroupNorm(2, 4)(fnp.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match="track_running_stats=True is not supported"):
        nn.InstanceNorm2d(3, track_running_stats=True)
    with pytest.raises(ValueError, match="expected more than 1 spatial element"):
        nn.InstanceNorm1d(3)(fnp.zeros((2, 3, 1)))
    bn = nn.BatchNorm2d(3)
    with pytest.raises(ValueError, match=r"expected 4-D input \(N, C, ...\), got shape \(3, 4, 4\)"):
        bn(fnp.zeros((3, 4, 4)), bn.init_state(), training=True)
    with pytest.raises(TypeError, match="state must be the BatchNormState"):
        bn(fnp.zeros((2, 3, 4, 4)), None, training=True)
    with pytest.raises(TypeError, match="training must be a Python bool"):
        bn(fnp.zeros((2, 3, 4, 4)), bn.init_state(), training=None)
    with pytest.raises(TypeError, match="training"):
        bn(fnp.zeros((2, 3, 4, 4)), bn.init_state())
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(fnp.zeros((1, 3)), nn.BatchNorm1d(3).init_state(), training=True)
    with pytest.raises(ValueError, match="channel_axis=0"):
        nn.BatchNorm(3)(fnp.zeros((3,)), nn.BatchNorm(3).init_state(), training=True)
    with pytest.raises(ValueError, match="momentum must be in"):
        nn.BatchNorm(3, momentum=2.0)
    with pytest.raises(ValueError, match="pass running_mean and running_var"):
        nn.batch_norm(fnp.zeros((2, 3)), None, None)


# --- pooling, Identity, Flatten --------------------------------------------------------------------

@pytest.mark.parametrize("nsp", [1, 3])
def test_nd_pooling_matches_numpy(nsp):
    x = normal(60 + nsp, (2, 3) + (5,) * nsp)
    kernel, stride, padding = (3,) * nsp, (2,) * nsp, (1,) * nsp
    max_pool = {1: nn.MaxPool1d, 3: nn.MaxPool3d}[nsp](3, 2, 1)
    avg_pool = {1: nn.AvgPool1d, 3: nn.AvgPool3d}[nsp](2)
    np.testing.assert_allclose(np.asarray(max_pool(fnp.asarray(x))), np_pool(x, kernel, stride, padding, "max"))
    want_avg = np_pool(x, (2,) * nsp, (2,) * nsp, (0,) * nsp, "avg")
    np.testing.assert_allclose(np.asarray(avg_pool(fnp.asarray(x))), want_avg, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(fgrad.jit(max_pool)(fnp.asarray(x[0]))),
                               np_pool(x[:1], kernel, stride, padding, "max")[0])


def test_adaptive_avg_pool_matches_numpy_grads_jit_vmap():
    x = normal(70, (2, 3, 7, 5))
    for size, want_size in ((3, (3, 3)), ((2, None), (2, 5)), ((7, 5), (7, 5)), (1, (1, 1)), ((4, 9), (4, 9))):
        got = nn.AdaptiveAvgPool2d(size)(fnp.asarray(x))
        np.testing.assert_allclose(np.asarray(got), np_adaptive_avg_pool(x, want_size), rtol=1e-5, atol=1e-6)
    x3 = normal(71, (1, 2, 3, 4, 5))
    np.testing.assert_allclose(np.asarray(fgrad.jit(nn.AdaptiveAvgPool3d((2, 3, 2)))(fnp.asarray(x3))),
                               np_adaptive_avg_pool(x3, (2, 3, 2)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(nn.adaptive_avg_pool1d(fnp.asarray(x[0, :, 0]), 3)),
                               np_adaptive_avg_pool(x[:1, :, 0], (3,))[0], rtol=1e-5, atol=1e-6)
    check_grads(lambda v: nn.adaptive_avg_pool2d(v, (3, 2)), (x,), order=1)
    check_vmap(lambda v: nn.adaptive_avg_pool2d(v, 2), (x,), rtol=1e-5, atol=1e-6)


def test_identity_and_flatten():
    x = fnp.asarray(normal(80, (2, 3, 4, 5)))
    assert nn.Identity(54, unused="argument")(x) is x
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 2)(x).shape == (24, 5)
    assert nn.Flatten(-3, -2)(x).shape == (2, 12, 5)
    np.testing.assert_array_equal(np.asarray(nn.flatten(x, 1, 2)), np.asarray(x).reshape(2, 12, 5))
    assert nn.flatten(fnp.zeros((0, 3, 2))).shape == (0, 6)
    model = nn.Sequential(nn.Conv1d(3, 4, 2, key=random.key(0)), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Identity())
    assert fgrad.jit(model)(fnp.zeros((5, 3, 6))).shape == (5, 4)
    with pytest.raises(ValueError, match="start_dim .2. must not come after end_dim .1."):
        nn.flatten(x, 2, 1)
