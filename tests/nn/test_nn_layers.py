"""Linear and Conv2d: forward vs NumPy (a direct convolution loop), PyTorch-default
initialisation checked statistically, batched/unbatched inputs, gradients vs finite
differences, and errors."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fgrad
from fgrad import nn, random, tree
from fgrad import numpy as fnp

from tests.util import check_grads


def np_conv2d(x, w, b, stride, padding, dilation, groups):
    """Direct NCHW/OIHW cross-correlation, one output element at a time."""
    n, c_in, h, wd = x.shape
    c_out, c_per_group, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out_h = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    out_w = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, c_out, out_h, out_w))
    out_per_group = c_out // groups
    for o in range(c_out):
        g = o // out_per_group
        channels = slice(g * c_per_group, (g + 1) * c_per_group)
        for i in range(out_h):
            for j in range(out_w):
                patch = xp[:, channels, i * sh:i * sh + dh * (kh - 1) + 1:dh, j * sw:j * sw + dw * (kw - 1) + 1:dw]
                out[:, o, i, j] = np.sum(patch * w[o], axis=(1, 2, 3))
    return out + (0 if b is None else b[None, :, None, None])


def test_linear_matches_numpy_on_batched_and_unbatched_inputs():
    layer = nn.Linear(5, 3, key=random.key(0))
    w, b = np.asarray(layer.weight), np.asarray(layer.bias)
    assert w.shape == (3, 5) and b.shape == (3,)
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(layer(fnp.asarray(x))), x @ w.T + b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(layer(fnp.asarray(x[0]))), x[0] @ w.T + b, rtol=1e-5, atol=1e-6)
    x3 = x.reshape(2, 2, 5)
    np.testing.assert_allclose(np.asarray(layer(fnp.asarray(x3))), x3 @ w.T + b, rtol=1e-5, atol=1e-6)


def test_linear_without_bias():
    layer = nn.Linear(4, 2, bias=False, key=random.key(1))
    assert layer.bias is None and len(tree.tree_leaves(layer)) == 1
    x = np.ones((3, 4), np.float32)
    np.testing.assert_allclose(np.asarray(layer(fnp.asarray(x))), x @ np.asarray(layer.weight).T, rtol=1e-6)


def assert_uniform(values, bound):
    """Values look uniform on [-bound, bound]: range, mean, variance and a quartile."""
    v = np.asarray(values, np.float64).ravel()
    n = v.size
    assert np.all(np.abs(v) <= bound)
    assert np.abs(v).max() > bound * (1 - 20 / n)
    assert abs(v.mean()) < 4 * bound / math.sqrt(3 * n)
    assert abs(v.var() - bound ** 2 / 3) < 5 * 0.3 * bound ** 2 / math.sqrt(n)  # sd of v**2 is 0.3 b**2
    assert abs(np.mean(v < -bound / 2) - 0.25) < 4 * math.sqrt(0.25 * 0.75 / n)


def test_linear_init_follows_pytorch_kaiming_uniform():
    layer = nn.Linear(1600, 10, key=random.key(2))
    assert_uniform(layer.weight, 1 / math.sqrt(1600))
    big_bias = nn.Linear(4, 20000, key=random.key(3))
    assert_uniform(big_bias.bias, 1 / math.sqrt(4))


def test_conv_init_follows_pytorch_kaiming_uniform():
    conv = nn.Conv2d(32, 64, 3, key=random.key(4))
    assert conv.weight.shape == (64, 32, 3, 3) and conv.bias.shape == (64,)
    assert_uniform(conv.weight, 1 / math.sqrt(32 * 9))
    grouped = nn.Conv2d(8, 400, (3, 2), groups=4, key=random.key(5))
    assert grouped.weight.shape == (400, 2, 3, 2)
    assert_uniform(grouped.bias, 1 / math.sqrt(2 * 3 * 2))


def test_init_depends_only_on_the_key():
    a, b = nn.Conv2d(1, 4, 3, key=random.key(7)), nn.Conv2d(1, 4, 3, key=random.key(7))
    np.testing.assert_array_equal(np.asarray(a.weight), np.asarray(b.weight))
    c = nn.Conv2d(1, 4, 3, key=random.key(8))
    assert not np.array_equal(np.asarray(a.weight), np.asarray(c.weight))
    assert not np.array_equal(np.asarray(a.weight).ravel()[:4], np.asarray(a.bias))


@st.composite
def conv_case(draw):
    groups = draw(st.sampled_from([1, 1, 2]))
    c_in = groups * draw(st.integers(1, 2))
    c_out = groups * draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    h = draw(st.integers(dilation[0] * (kernel[0] - 1) + 1, 7))
    w = draw(st.integers(dilation[1] * (kernel[1] - 1) + 1, 7))
    return dict(c_in=c_in, c_out=c_out, kernel=kernel, stride=stride, padding=padding, dilation=dilation,
                groups=groups, bias=draw(st.booleans()), n=draw(st.integers(1, 2)), h=h, w=w,
                seed=draw(st.integers(0, 100)))


@settings(max_examples=25, deadline=None)
@given(conv_case())
def test_conv2d_matches_a_direct_numpy_loop(case):
    conv = nn.Conv2d(case["c_in"], case["c_out"], case["kernel"], stride=case["stride"], padding=case["padding"],
                     dilation=case["dilation"], groups=case["groups"], bias=case["bias"],
                     key=random.key(case["seed"]))
    x = np.random.default_rng(case["seed"]).standard_normal(
        (case["n"], case["c_in"], case["h"], case["w"])).astype(np.float32)
    want = np_conv2d(x, np.asarray(conv.weight), None if conv.bias is None else np.asarray(conv.bias),
                     case["stride"], case["padding"], case["dilation"], case["groups"])
    np.testing.assert_allclose(np.asarray(conv(fnp.asarray(x))), want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(conv(fnp.asarray(x[0]))), want[0], rtol=1e-4, atol=1e-5)


def test_conv2d_and_linear_grads_match_finite_differences():
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1, key=random.key(9))
    lin = nn.Linear(12, 2, key=random.key(10))
    x = np.random.default_rng(1).standard_normal((2, 2, 4, 4))

    def model(c, l, v):
        return l(nn.flatten(fnp.tanh(c(v))))

    check_grads(model, (conv, lin, x), order=1)


def test_grad_of_a_layer_has_the_layer_structure():
    lin = nn.Linear(3, 2, key=random.key(11))
    x = fnp.ones((5, 3))
    g = fgrad.grad(lambda layer: layer(x).sum())(lin)
    assert type(g) is nn.Linear
    np.testing.assert_allclose(np.asarray(g.bias), [5.0, 5.0])
    np.testing.assert_allclose(np.asarray(g.weight), np.full((2, 3), 5.0))


def test_layer_errors():
    with pytest.raises(TypeError, match="explicit PRNG key"):
        nn.Linear(2, 3, key=None)
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2, key=random.key(0))
    with pytest.raises(ValueError, match="kernel_size must be an int or a pair"):
        nn.Conv2d(1, 1, (1, 2, 3), key=random.key(0))
    conv = nn.Conv2d(1, 2, 3, key=random.key(0))
    with pytest.raises(ValueError, match="NCHW"):
        conv(fnp.zeros((5, 5)))
    with pytest.raises(ValueError, match=r"expects 1 input channels, got 3"):
        conv(fnp.zeros((2, 3, 5, 5)))
    with pytest.raises(ValueError, match=r"Linear\(4 -> 2\): expects inputs with last dimension 4, got"):
        nn.Linear(4, 2, key=random.key(0))(fnp.zeros((3, 5)))
