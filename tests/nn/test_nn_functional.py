"""fgrad.nn functions vs NumPy references (activations, the softmax family with large inputs,
pooling with kernel/stride/padding, dropout statistics, flatten) and their derivatives vs
finite differences."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import fgrad
from fgrad import nn, random
from fgrad import numpy as fnp

from tests.util import check_grads

SMALL = settings(max_examples=12, deadline=None)
ACTIVATION_VALUES = hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
                               elements=st.floats(-6, 6, width=32))


def run(fn, *args, **kwargs):
    return np.asarray(fn(*[fnp.asarray(a) for a in args], **kwargs))


def np_sigmoid(x):
    return 1 / (1 + np.exp(-x.astype(np.float64)))


def np_erf(x):
    return np.vectorize(math.erf)(x)


REFERENCES = {
    "relu": (nn.relu, lambda x: np.maximum(x, 0)),
    "sigmoid": (nn.sigmoid, np_sigmoid),
    "silu": (nn.silu, lambda x: x * np_sigmoid(x)),
    "gelu_tanh": (nn.gelu, lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))),
    "gelu_exact": (lambda x: nn.gelu(x, approximate=False), lambda x: 0.5 * x * (1 + np_erf(x / math.sqrt(2)))),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
@SMALL
@given(x=ACTIVATION_VALUES)
def test_activation_matches_numpy(name, x):
    fn, ref = REFERENCES[name]
    got = run(fn, x)
    assert got.shape == x.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, ref(x.astype(np.float64)), rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_activation_grads(name):
    fn, _ = REFERENCES[name]
    x = np.array([-2.5, -0.7, 0.3, 1.1, 3.0])  # away from relu's kink
    check_grads(fn, (x,), order=2 if name != "gelu_exact" else 1)


def test_relu_derivative_at_zero_is_zero():
    np.testing.assert_array_equal(np.asarray(fgrad.grad(lambda x: nn.relu(x).sum())(fnp.zeros((3,)))), 0.0)


def np_logsumexp(x, axis):
    x = x.astype(np.float64)
    m = np.max(x, axis=axis, keepdims=True)
    return np.squeeze(np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m, axis=axis)


@SMALL
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5),
                  elements=st.floats(-20, 20, width=32)), st.data())
def test_softmax_family_matches_numpy(x, data):
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    lse = np_logsumexp(x, axis)
    np.testing.assert_allclose(run(nn.logsumexp, x, axis=axis), lse, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(run(nn.logsumexp, x, axis=axis, keepdims=True), np.expand_dims(lse, axis),
                               rtol=1e-5, atol=1e-5)
    log_sm = x - np.expand_dims(lse, axis)
    np.testing.assert_allclose(run(nn.log_softmax, x, axis=axis), log_sm, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(run(nn.softmax, x, axis=axis), np.exp(log_sm), rtol=1e-5, atol=1e-6)


def test_softmax_family_is_stable_for_large_inputs():
    x = np.array([[1e4, 0.0, -1e4], [1e4, 1e4, 1e4], [-1e4, -1e4 + 1, -3e4]], np.float32)
    lse = run(nn.logsumexp, x, axis=-1)
    np.testing.assert_allclose(lse, np_logsumexp(x, -1), rtol=1e-6)
    assert np.all(np.isfinite(run(nn.log_softmax, x)))
    np.testing.assert_allclose(run(nn.softmax, x).sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(run(nn.softmax, x)[1], 1 / 3, rtol=1e-6)
    g = np.asarray(fgrad.grad(lambda v: nn.logsumexp(v, axis=-1).sum())(fnp.asarray(x)))
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g.sum(-1), 1.0, rtol=1e-6)


def test_logsumexp_reduces_every_axis_by_default_as_jax_nn_does():
    """jax.nn.logsumexp is jax.scipy.special.logsumexp: axis=None, b=, return_sign=, where=."""
    import scipy.special
    from fgrad.scipy import special
    x = np.random.default_rng(3).standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_allclose(run(nn.logsumexp, x), scipy.special.logsumexp(x), rtol=1e-6)
    assert nn.logsumexp is special.logsumexp
    out, sign = nn.logsumexp(fnp.asarray([1.0, 2.0]), b=fnp.asarray([1.0, -1.0]), return_sign=True)
    want, want_sign = scipy.special.logsumexp([1.0, 2.0], b=[1.0, -1.0], return_sign=True)
    np.testing.assert_allclose(float(out), want, rtol=1e-6)
    assert float(sign) == want_sign


def test_logsumexp_of_all_minus_infinity_is_minus_infinity():
    assert run(nn.logsumexp, np.full(3, -np.inf, np.float32)) == -np.inf


def test_softmax_family_grads():
    x = np.random.default_rng(0).standard_normal((3, 4)) * 3
    check_grads(lambda v: nn.logsumexp(v, axis=-1), (x,))
    check_grads(lambda v: nn.log_softmax(v, axis=0), (x,))
    check_grads(lambda v: nn.softmax(v, axis=1), (x,))
    check_grads(lambda v: nn.logsumexp(v, axis=None), (x,))


def test_one_hot():
    labels = np.array([3, 0, 9], np.uint8)
    np.testing.assert_array_equal(run(nn.one_hot, labels, 10), np.eye(10, dtype=np.float32)[labels])


# --- pooling ---------------------------------------------------------------------------------------

def np_pool(x, kernel, stride, padding, mode):
    kh, kw = kernel
    sh, sw = stride
    ph, pw = padding
    fill = -np.inf if mode == "max" else 0.0
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    out_h = (xp.shape[2] - kh) // sh + 1
    out_w = (xp.shape[3] - kw) // sw + 1
    out = np.empty(x.shape[:2] + (out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            window = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
            out[:, :, i, j] = window.max(axis=(2, 3)) if mode == "max" else window.sum(axis=(2, 3)) / (kh * kw)
    return out


@st.composite
def pool_case(draw):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    h = draw(st.integers(kernel[0], 7))
    w = draw(st.integers(kernel[1], 7))
    x = draw(hnp.arrays(np.float32, (draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w),
                        elements=st.floats(-5, 5, width=32)))
    return x, kernel, stride, padding


@settings(max_examples=25, deadline=None)
@given(pool_case())
def test_pooling_matches_numpy(case):
    x, kernel, stride, padding = case
    for fn, mode in ((nn.max_pool2d, "max"), (nn.avg_pool2d, "avg")):
        got = run(fn, x, kernel, stride, padding)
        np.testing.assert_allclose(got, np_pool(x, kernel, stride, padding, mode), rtol=1e-5, atol=1e-6)


def test_pooling_defaults_and_unbatched_input():
    x = np.arange(2 * 6 * 6, dtype=np.float32).reshape(2, 6, 6)
    got = np.asarray(nn.max_pool2d(fnp.asarray(x), 2))   # stride defaults to the kernel size; CHW input
    np.testing.assert_array_equal(got, np_pool(x[None], (2, 2), (2, 2), (0, 0), "max")[0])
    assert nn.avg_pool2d(fnp.asarray(x[None]), (3, 2)).shape == (1, 2, 2, 3)


def test_pooling_grads():
    rng = np.random.default_rng(1)
    x = rng.permutation(2 * 5 * 5).reshape(1, 2, 5, 5) * 0.1   # distinct values: no max ties
    check_grads(lambda v: nn.max_pool2d(v, 2), (x,))
    check_grads(lambda v: nn.max_pool2d(v, 3, stride=1, padding=1), (x,))
    check_grads(lambda v: nn.avg_pool2d(v, (2, 3), stride=(1, 2), padding=(1, 1)), (x,))


def test_pooling_errors():
    with pytest.raises(ValueError, match="NCHW"):
        nn.max_pool2d(fnp.zeros((4, 4)), 2)
    with pytest.raises(ValueError, match="kernel_size"):
        nn.avg_pool2d(fnp.zeros((1, 1, 4, 4)), (1, 2, 3))


# --- dropout and flatten ------------------------------------------------------------------------

def test_dropout_statistics():
    x = fnp.ones((400, 250))
    for rate in (0.1, 0.5, 0.8):
        y = np.asarray(nn.dropout(x, rate, key=random.key(int(rate * 10))))
        kept = y != 0
        assert abs(kept.mean() - (1 - rate)) < 0.01
        np.testing.assert_allclose(y[kept], 1 / (1 - rate), rtol=1e-6)
        assert abs(y.mean() - 1.0) < 0.03   # the scaling keeps the expectation


def test_dropout_is_deterministic_per_key_and_identity_when_deterministic():
    x = fnp.asarray(np.random.default_rng(0).standard_normal((8, 8)).astype(np.float32))
    k = random.key(3)
    np.testing.assert_array_equal(np.asarray(nn.dropout(x, 0.5, key=k)), np.asarray(nn.dropout(x, 0.5, key=k)))
    assert nn.dropout(x, 0.5, deterministic=True) is x
    assert nn.dropout(x, 0.0, key=k) is x


def test_dropout_grad_masks_like_the_forward_pass():
    x = fnp.asarray(np.random.default_rng(0).standard_normal(1000).astype(np.float32))
    k = random.key(4)
    y = np.asarray(nn.dropout(x, 0.3, key=k))
    g = np.asarray(fgrad.grad(lambda v: nn.dropout(v, 0.3, key=k).sum())(x))
    np.testing.assert_allclose(g, np.where(y != 0, 1 / 0.7, 0.0), rtol=1e-6)


def test_dropout_errors():
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\)"):
        nn.dropout(fnp.zeros((2,)), 1.0, key=random.key(0))
    with pytest.raises(ValueError, match="needs a PRNG key"):
        nn.dropout(fnp.zeros((2,)), 0.5)


def test_flatten():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    np.testing.assert_array_equal(run(nn.flatten, x), x.reshape(2, -1))
    np.testing.assert_array_equal(run(nn.flatten, x, start_dim=2), x.reshape(2, 3, -1))
    np.testing.assert_array_equal(run(nn.flatten, x, start_dim=0), x.reshape(-1))
    np.testing.assert_array_equal(run(nn.flatten, x, start_dim=-1), x)


@pytest.mark.parametrize("transform", [lambda f: f, fgrad.jit])
def test_softmax_family_over_a_zero_size_axis(transform):
    """JAX: the max shift is ``max(initial=-inf)``: logsumexp over an empty axis is -inf, and
    softmax / log_softmax of an empty axis are the empty array."""
    lse = transform(lambda x: nn.logsumexp(x, axis=0))(fnp.zeros((0, 2)))
    np.testing.assert_array_equal(np.asarray(lse), [-np.inf, -np.inf])
    assert float(transform(lambda x: nn.logsumexp(x, axis=None))(fnp.zeros((3, 0)))) == -np.inf
    for f in (nn.softmax, nn.log_softmax):
        assert transform(f)(fnp.zeros((4, 2, 0))).shape == (4, 2, 0)
    assert fgrad.grad(lambda x: nn.logsumexp(x, axis=0).sum())(fnp.zeros((0, 2))).shape == (0, 2)


def test_max_reductions_over_empty_axes_follow_jax():
    with pytest.raises(ValueError):
        fnp.max(fnp.zeros((0, 2)), axis=0)
    with pytest.raises(ValueError):
        fnp.argmax(fnp.zeros((0, 2)), axis=0)
    with pytest.raises(ValueError):
        fnp.max(fnp.ones(3), where=fnp.array([True, False, True]))
    assert float(fnp.max(fnp.array([1., 5., 2.]), where=fnp.array([True, False, True]), initial=0.)) == 2.
    assert float(fnp.min(fnp.zeros((0,)), initial=3.)) == 3.
