"""JAX's activation set in fgrad.nn (softplus, elu, selu, celu, leaky_relu, relu6, hard_*, log_sigmoid,
silu/swish, glu, standardize), one_hot and the softmax family's axis/where: values vs NumPy references
in float64 and vs values recorded from JAX 0.10.2, derivatives vs finite differences and vs
``jax.grad`` at the kinks (recorded), jit vs eager, vmap vs a loop, and the errors for bad input."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import fgrad
from fgrad import nn
from fgrad import numpy as fnp

from tests.util import check_grads, check_vmap

#: jit must run natively: a fall back to the reference path fails the test.
pytestmark = pytest.mark.filterwarnings("error::fgrad.ReferencePathWarning")
SMALL = settings(max_examples=10, deadline=None)
VALUES = hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
                    elements=st.floats(-8, 8, width=32))
SELU_SCALE, SELU_ALPHA = 1.0507009873554805, 1.6732632423543772


def np_softplus(x):
    return np.logaddexp(x, 0.0)


def np_elu(x, alpha=1.0):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


def np_relu6(x):
    return np.clip(x, 0.0, 6.0)


def np_hard_sigmoid(x):
    return np_relu6(x + 3.0) / 6.0


REFERENCES = {
    "softplus": (nn.softplus, np_softplus),
    "log_sigmoid": (nn.log_sigmoid, lambda x: -np_softplus(-x)),
    "elu": (nn.elu, np_elu),
    "elu_alpha": (lambda x: nn.elu(x, alpha=0.3), lambda x: np_elu(x, 0.3)),
    "selu": (nn.selu, lambda x: SELU_SCALE * np_elu(x, SELU_ALPHA)),
    "celu": (nn.celu, lambda x: np.maximum(x, 0) + np.expm1(np.minimum(x, 0))),
    "celu_alpha": (lambda x: nn.celu(x, alpha=0.5), lambda x: np.maximum(x, 0) + 0.5 * np.expm1(np.minimum(x, 0) / 0.5)),
    "leaky_relu": (nn.leaky_relu, lambda x: np.where(x >= 0, x, 0.01 * x)),
    "leaky_relu_slope": (lambda x: nn.leaky_relu(x, negative_slope=0.2), lambda x: np.where(x >= 0, x, 0.2 * x)),
    "relu6": (nn.relu6, np_relu6),
    "hard_tanh": (nn.hard_tanh, lambda x: np.clip(x, -1.0, 1.0)),
    "hard_sigmoid": (nn.hard_sigmoid, np_hard_sigmoid),
    "hard_silu": (nn.hard_silu, lambda x: x * np_hard_sigmoid(x)),
    "swish": (nn.swish, lambda x: x / (1 + np.exp(-x))),
    "soft_sign": (nn.soft_sign, lambda x: x / (np.abs(x) + 1)),
    "squareplus": (nn.squareplus, lambda x: (x + np.sqrt(x * x + 4)) / 2),
    "squareplus_b": (lambda x: nn.squareplus(x, b=0.5), lambda x: (x + np.sqrt(x * x + 0.5)) / 2),
    "sparse_plus": (nn.sparse_plus, lambda x: np.where(x <= -1, 0.0, np.where(x >= 1, x, (x + 1) ** 2 / 4))),
    "sparse_sigmoid": (nn.sparse_sigmoid, lambda x: np.clip(x + 1, 0, 2) / 2),
    "mish": (nn.mish, lambda x: x * np.tanh(np_softplus(x))),
    "identity": (nn.identity, lambda x: x),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
@SMALL
@given(x=VALUES)
def test_activation_matches_numpy(name, x):
    fn, ref = REFERENCES[name]
    got = np.asarray(fn(fnp.asarray(x)))
    assert got.shape == x.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, ref(x.astype(np.float64)), rtol=3e-6, atol=3e-6)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_activation_jit_vmap_grads(name):
    fn, ref = REFERENCES[name]
    x = np.array([[-4.5, -2.2, -0.7], [0.3, 1.1, 3.7]], np.float32)  # away from every kink
    np.testing.assert_allclose(np.asarray(fgrad.jit(fn)(fnp.asarray(x))), ref(x.astype(np.float64)), rtol=3e-6, atol=3e-6)
    check_vmap(fn, (x,))
    check_grads(fn, (x.astype(np.float64),), order=2)


def test_aliases_are_the_same_functions():
    assert nn.swish is nn.silu and nn.hard_swish is nn.hard_silu


# jax.vmap(jax.grad(f)) at these points, recorded from JAX 0.10.2 (float32).
KINK_POINTS = np.array([-6.0, -3.0, -1.0, 0.0, 1.0, 3.0, 6.0], np.float32)
JAX_KINK_GRADS = {
    "relu": [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0],
    "relu6": [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0],
    "leaky_relu": [0.01, 0.01, 0.01, 1.0, 1.0, 1.0, 1.0],
    "hard_tanh": [0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0],
    "hard_sigmoid": [0.0, 0.0, 1 / 6, 1 / 6, 1 / 6, 0.0, 0.0],
    "hard_silu": [0.0, 0.0, 1 / 6, 0.5, 5 / 6, 1.0, 1.0],
    "elu": [0.00247877836227417, 0.049787044525146484, 0.3678794503211975, 1.0, 1.0, 1.0, 1.0],
    "celu": [0.00247877836227417, 0.049787044525146484, 0.3678794503211975, 1.0, 1.0, 1.0, 1.0],
    "selu": [0.004357938654720783, 0.08753056824207306, 0.6467686295509338, 1.7580993175506592,
             1.0507010221481323, 1.0507010221481323, 1.0507010221481323],
    "softplus": [0.0024726230185478926, 0.04742587357759476, 0.26894140243530273, 0.5, 0.7310585379600525,
                 0.9525741338729858, 0.9975273013114929],
    "log_sigmoid": [0.9975273013114929, 0.9525741338729858, 0.7310585379600525, 0.5, 0.26894140243530273,
                    0.04742587357759476, 0.0024726230185478926],
    "sparse_plus": [0.0, 0.0, 0.0, 0.5, 1.0, 1.0, 1.0],
    "sparse_sigmoid": [0.0, 0.0, 0.25, 0.5, 0.25, 0.0, 0.0],
    "soft_sign": [0.02040816843509674, 0.0625, 0.25, 1.0, 0.25, 0.0625, 0.02040816843509674],
    "mish": [-0.012359967455267906, -0.09339311718940735, 0.05921675264835358, 0.6000000238418579,
             1.0490361452102661, 1.0211061239242554, 1.0001333951950073],
}


@pytest.mark.parametrize("name", sorted(JAX_KINK_GRADS))
def test_derivatives_at_kinks_match_jax(name):
    fn = getattr(nn, name)
    grads = fgrad.vmap(fgrad.grad(fn))(fnp.asarray(KINK_POINTS))
    np.testing.assert_allclose(np.asarray(grads), JAX_KINK_GRADS[name], rtol=2e-6, atol=1e-7)
    jitted = fgrad.jit(fgrad.vmap(fgrad.grad(fn)))(fnp.asarray(KINK_POINTS))
    np.testing.assert_allclose(np.asarray(jitted), JAX_KINK_GRADS[name], rtol=2e-6, atol=1e-7)


def test_relu6_second_derivative_and_nan():
    second = fgrad.vmap(fgrad.grad(fgrad.grad(nn.relu6)))(fnp.asarray(KINK_POINTS))
    np.testing.assert_array_equal(np.asarray(second), 0.0)
    x = fnp.asarray([np.nan, 2.0])
    assert np.isnan(np.asarray(nn.relu6(x))[0])
    np.testing.assert_array_equal(np.asarray(fgrad.vmap(fgrad.grad(nn.relu6))(x)), [0.0, 1.0])


def test_stable_forms_at_extreme_inputs():
    x = fnp.asarray([-1000.0, -100.0, 0.0, 100.0, 1000.0])
    exact = np.logaddexp(np.array([-1000.0, -100.0, 0.0, 100.0, 1000.0]), 0.0)  # float64, no overflow
    np.testing.assert_allclose(np.asarray(nn.softplus(x)), exact, rtol=1e-6, atol=1e-45)
    np.testing.assert_allclose(np.asarray(nn.log_sigmoid(x)), -exact[::-1], rtol=1e-6, atol=1e-45)
    assert abs(float(nn.softplus(fnp.asarray(0.0))) - math.log(2)) < 1e-7
    np.testing.assert_allclose(np.asarray(nn.elu(x)), [-1.0, -1.0, 0.0, 100.0, 1000.0])
    for fn in (nn.softplus, nn.log_sigmoid, nn.elu, nn.selu, nn.celu, nn.silu):
        grads = np.asarray(fgrad.vmap(fgrad.grad(fn))(x))
        assert np.all(np.isfinite(grads)), (fn.__name__, grads)


def test_recorded_jax_values():
    # JAX's CPU flushes the subnormal softplus(-100) = 3.8e-44 to 0; fgrad keeps it (atol covers it).
    x = fnp.asarray([-100.0, -20.0, 0.0, 20.0, 100.0])
    np.testing.assert_allclose(np.asarray(nn.softplus(x)), [0.0, 2.06115369216775e-09, 0.6931471824645996, 20.0, 100.0],
                               rtol=1e-6, atol=1e-40)
    np.testing.assert_allclose(np.asarray(nn.log_sigmoid(x)),
                               [-100.0, -20.0, -0.6931471824645996, -2.06115369216775e-09, 0.0], rtol=1e-6, atol=1e-40)
    y = fnp.asarray([-3.0, -0.5, 0.0, 2.0])
    np.testing.assert_allclose(np.asarray(nn.selu(y)), [-1.670568823814392, -0.6917582154273987, 0.0, 2.1014020442962646],
                               rtol=1e-6)
    np.testing.assert_allclose(np.asarray(nn.celu(y, 0.5)), [-0.4987606108188629, -0.31606027483940125, 0.0, 2.0],
                               rtol=1e-6)


def test_dtypes_follow_jax():
    ints = fnp.asarray(np.array([-2, 0, 3, 7], np.int32))
    assert nn.hard_tanh(ints).dtype == np.int32  # JAX keeps an integer input integer
    np.testing.assert_array_equal(np.asarray(nn.hard_tanh(ints)), [-1, 0, 1, 1])
    for fn in (nn.relu6, nn.softplus, nn.elu, nn.leaky_relu, nn.hard_sigmoid, nn.celu):
        assert fn(ints).dtype == np.float32, fn.__name__
    halves = fnp.asarray(np.array([-1.0, 2.0], np.float16))
    for fn in (nn.relu6, nn.softplus, nn.elu, nn.selu, nn.leaky_relu, nn.hard_silu, nn.log_sigmoid):
        assert fn(halves).dtype == np.float16, fn.__name__


# --- glu --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_glu_matches_numpy(axis):
    x = np.random.default_rng(1).standard_normal((4, 6, 2)).astype(np.float32)
    first, second = np.split(x.astype(np.float64), 2, axis=axis)
    want = first / (1 + np.exp(-second))
    np.testing.assert_allclose(np.asarray(nn.glu(fnp.asarray(x), axis=axis)), want, rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(np.asarray(fgrad.jit(lambda v: nn.glu(v, axis=axis))(fnp.asarray(x))), want,
                               rtol=2e-6, atol=2e-6)
    check_grads(lambda v: nn.glu(v, axis=axis), (x.astype(np.float64),))


def test_glu_vmap():
    check_vmap(nn.glu, (np.random.default_rng(2).standard_normal((3, 5, 4)).astype(np.float32),))


def test_glu_odd_axis_is_a_clear_error():
    with pytest.raises(ValueError, match="must be even"):
        nn.glu(fnp.ones((2, 3)))


# --- standardize ------------------------------------------------------------------------------------

def np_standardize(x, axis, epsilon=1e-5):
    x = x.astype(np.float64)
    mean = x.mean(axis=axis, keepdims=True)
    return (x - mean) / np.sqrt(x.var(axis=axis, keepdims=True) + epsilon)


@pytest.mark.parametrize("algorithm", ["fast", "stable"])
@pytest.mark.parametrize("axis", [-1, 0, (0, 2), None])
def test_standardize_matches_numpy(axis, algorithm):
    x = np.random.default_rng(3).standard_normal((3, 4, 5)).astype(np.float32) * 2 + 1
    got = nn.standardize(fnp.asarray(x), axis=axis, algorithm=algorithm)
    np.testing.assert_allclose(np.asarray(got), np_standardize(x, axis), rtol=1e-4, atol=1e-5)
    jitted = fgrad.jit(lambda v: nn.standardize(v, axis=axis, algorithm=algorithm))(fnp.asarray(x))
    np.testing.assert_allclose(np.asarray(jitted), np_standardize(x, axis), rtol=1e-4, atol=1e-5)


def test_standardize_given_mean_variance_where_and_recorded_jax():
    x = np.array([[1.5, -2.0, 0.25, 4.0], [3.0, 3.0, 3.0, 3.0]], np.float32)
    np.testing.assert_allclose(np.asarray(nn.standardize(fnp.asarray(x))),
                               [[0.2594831883907318, -1.3550788164138794, -0.3171461224555969, 1.412741780281067],
                                [0.0, 0.0, 0.0, 0.0]], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(nn.standardize(fnp.asarray(x), axis=None, mean=1.0, variance=4.0)),
                               (x - 1.0) / np.sqrt(4.0 + 1e-5), rtol=1e-6)
    mask = np.array([[True, True, False, True], [True, False, True, True]])
    got = nn.standardize(fnp.asarray(x), where=fnp.asarray(mask))
    for row in range(2):
        kept = x[row][mask[row]].astype(np.float64)
        want = (x[row] - kept.mean()) / np.sqrt(kept.var() + 1e-5)
        np.testing.assert_allclose(np.asarray(got)[row], want, rtol=1e-5, atol=1e-6)


def test_standardize_grads_vmap_and_bad_algorithm():
    x = np.random.default_rng(4).standard_normal((3, 5))
    check_grads(lambda v: nn.standardize(v, algorithm="stable"), (x,), order=1)
    check_grads(lambda v: nn.standardize(v, axis=0), (x,), order=1)
    check_vmap(nn.standardize, (x.astype(np.float32),), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="unknown algorithm"):
        nn.standardize(fnp.asarray(x), algorithm="welford")


# --- one_hot ----------------------------------------------------------------------------------------

def np_one_hot(x, n, axis=-1):
    out = (np.asarray(x)[..., None] == np.arange(n)).astype(np.float32)
    return np.moveaxis(out, -1, axis)


@pytest.mark.parametrize("axis", [-1, 0, 1, -2])
def test_one_hot_axis_and_out_of_range_labels(axis):
    labels = np.array([[0, 3, -1], [5, 2, 4]], np.int32)  # -1 and 5 are out of range for 5 classes
    want = np_one_hot(labels, 5, axis)
    got = nn.one_hot(fnp.asarray(labels), 5, axis=axis)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(got), want)
    np.testing.assert_array_equal(np.asarray(fgrad.jit(lambda v: nn.one_hot(v, 5, axis=axis))(fnp.asarray(labels))),
                                  want)
    assert np.asarray(got).sum() == 4  # the two out-of-range labels give all-zero rows


def test_one_hot_recorded_jax_values():
    np.testing.assert_array_equal(np.asarray(nn.one_hot(fnp.asarray([-1, 0, 2, 3, 5]), 3)),
                                  [[0, 0, 0], [1, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0]])
    # A float label compares as a float, as in JAX: 1.7 matches no class.
    np.testing.assert_array_equal(np.asarray(nn.one_hot(fnp.asarray([0.0, 1.7, 2.0]), 3)),
                                  [[1, 0, 0], [0, 0, 0], [0, 0, 1]])
    assert nn.one_hot(fnp.asarray([0, 1]), 0).shape == (2, 0)


def test_one_hot_dtype_vmap_and_errors():
    labels = np.array([[1, 0], [2, 2], [0, 1]], np.int32)
    got = nn.one_hot(fnp.asarray(labels), 3, dtype=fnp.int32)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(np.asarray(got), np_one_hot(labels, 3))
    check_vmap(lambda v: nn.one_hot(v, 3, axis=0), (labels,))
    with pytest.raises(ValueError, match="num_classes must be >= 0"):
        nn.one_hot(fnp.asarray([0]), -2)
    with pytest.raises(TypeError, match="num_classes must be a Python int"):
        nn.one_hot(fnp.asarray([0]), 2.5)
    with pytest.raises(ValueError, match="axis 3 is out of range"):
        nn.one_hot(fnp.asarray([0, 1]), 2, axis=3)


# --- softmax family: tuple / None axes and where ----------------------------------------------------

@pytest.mark.parametrize("axis", [(0, 2), (1, 2), None, -2])
def test_softmax_tuple_and_none_axes(axis):
    x = np.random.default_rng(5).standard_normal((2, 3, 4)).astype(np.float32) * 4
    x64 = x.astype(np.float64)
    shifted = x64 - x64.max(axis=axis, keepdims=True)
    log_sm = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    np.testing.assert_allclose(np.asarray(nn.log_softmax(fnp.asarray(x), axis=axis)), log_sm, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(nn.softmax(fnp.asarray(x), axis=axis)), np.exp(log_sm), rtol=1e-5, atol=1e-6)
    check_grads(lambda v: nn.log_softmax(v, axis=axis), (x64,), order=1)


def test_softmax_where_matches_jax():
    x = fnp.asarray([[1.0, 2.0, 3.0, 4.0], [0.0, -1.0, 5.0, 2.0]])
    mask = fnp.asarray([[True, True, False, True], [False, True, True, True]])
    # Recorded from jax.nn.softmax / log_softmax(x, where=mask), JAX 0.10.2.
    np.testing.assert_allclose(np.asarray(nn.softmax(x, where=mask)),
                               [[0.04201007, 0.1141952, 0.0, 0.8437947], [0.0, 0.00235563, 0.95033026, 0.04731416]],
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.asarray(nn.log_softmax(x, where=mask)),
                               [[-3.169846, -2.169846, -np.inf, -0.16984603], [-np.inf, -6.0509458, -0.05094571, -3.0509458]],
                               rtol=1e-5)
