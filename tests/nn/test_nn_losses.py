"""Losses vs NumPy: sparse categorical cross-entropy (uint8 and int32 labels, large logits,
reductions), cross-entropy with target probabilities, mean squared error; their gradients vs
finite differences; errors."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import fgrad
from fgrad import nn
from fgrad import numpy as fnp

from tests.util import check_grads


def np_log_softmax(x):
    x = x.astype(np.float64)
    shifted = x - x.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


@st.composite
def logits_and_labels(draw, label_dtype=np.uint8):
    batch = draw(st.integers(1, 6))
    classes = draw(st.integers(1, 10))
    logits = draw(hnp.arrays(np.float32, (batch, classes), elements=st.floats(-30, 30, width=32)))
    labels = draw(hnp.arrays(label_dtype, (batch,), elements=st.integers(0, classes - 1)))
    return logits, labels


@settings(max_examples=25, deadline=None)
@given(logits_and_labels(), st.sampled_from([np.uint8, np.int32]))
def test_sparse_categorical_crossentropy_matches_numpy(case, label_dtype):
    logits, labels = case
    labels = labels.astype(label_dtype)
    per_example = -np_log_softmax(logits)[np.arange(len(labels)), labels]
    got = nn.sparse_categorical_crossentropy(fnp.asarray(logits), fnp.asarray(labels), reduction="none")
    np.testing.assert_allclose(np.asarray(got), per_example, rtol=1e-5, atol=1e-5)
    mean = nn.sparse_categorical_crossentropy(fnp.asarray(logits), fnp.asarray(labels))
    assert mean.shape == () and mean.dtype == np.float32
    np.testing.assert_allclose(float(mean), per_example.mean(), rtol=1e-5, atol=1e-5)
    total = nn.sparse_categorical_crossentropy(fnp.asarray(logits), fnp.asarray(labels), reduction="sum")
    np.testing.assert_allclose(float(total), per_example.sum(), rtol=1e-5, atol=1e-4)


def test_sparse_categorical_crossentropy_is_stable_for_huge_logits():
    logits = np.array([[1e4, -1e4, 0.0], [0.0, 5e3, 1e4]], np.float32)
    labels = np.array([1, 2], np.uint8)
    got = np.asarray(nn.sparse_categorical_crossentropy(fnp.asarray(logits), fnp.asarray(labels), reduction="none"))
    np.testing.assert_allclose(got, [2e4, 0.0], rtol=1e-6, atol=1e-6)
    g = np.asarray(fgrad.grad(lambda z: nn.sparse_categorical_crossentropy(z, fnp.asarray(labels)))(fnp.asarray(logits)))
    np.testing.assert_allclose(g, [[0.5, -0.5, 0.0], [0.0, 0.0, 0.0]], atol=1e-6)


def test_sparse_categorical_crossentropy_grads_and_softmax_minus_onehot():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((4, 5))
    labels = np.array([0, 4, 2, 2], np.uint8)
    check_grads(lambda z: nn.sparse_categorical_crossentropy(z, fnp.asarray(labels)), (logits,))
    g = np.asarray(fgrad.grad(lambda z: nn.sparse_categorical_crossentropy(z, fnp.asarray(labels)))(
        fnp.asarray(logits.astype(np.float32))))
    want = (np.exp(np_log_softmax(logits)) - np.eye(5)[labels]) / 4
    np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-6)


def test_cross_entropy_with_probabilities():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((3, 4)).astype(np.float32)
    targets = rng.dirichlet(np.ones(4), size=3).astype(np.float32)
    want = -(targets * np_log_softmax(logits)).sum(-1)
    np.testing.assert_allclose(float(nn.cross_entropy(fnp.asarray(logits), fnp.asarray(targets))), want.mean(),
                               rtol=1e-5)
    np.testing.assert_allclose(np.asarray(nn.cross_entropy(fnp.asarray(logits), fnp.asarray(targets),
                                                           reduction="none")), want, rtol=1e-5)
    check_grads(nn.cross_entropy, (logits.astype(np.float64), targets.astype(np.float64)))


def test_mse():
    rng = np.random.default_rng(2)
    p, t = rng.standard_normal((5, 2)).astype(np.float32), rng.standard_normal((5, 2)).astype(np.float32)
    np.testing.assert_allclose(float(nn.mse(fnp.asarray(p), fnp.asarray(t))), ((p - t) ** 2).mean(), rtol=1e-5)
    np.testing.assert_allclose(float(nn.mse(fnp.asarray(p), fnp.asarray(t), reduction="sum")),
                               ((p - t) ** 2).sum(), rtol=1e-5)
    check_grads(nn.mse, (p.astype(np.float64), t.astype(np.float64)))


def test_loss_errors_name_the_mistake():
    logits = fnp.zeros((4, 10))
    with pytest.raises(ValueError, match=r"need labels of shape \(4,\), got \(4, 10\)"):
        nn.sparse_categorical_crossentropy(logits, fnp.zeros((4, 10), fnp.int32))
    with pytest.raises(TypeError, match="labels must be integers, got float32"):
        nn.sparse_categorical_crossentropy(logits, fnp.zeros((4,)))
    with pytest.raises(ValueError, match="reduction must be"):
        nn.mse(logits, logits, reduction="avg")
    with pytest.raises(ValueError, match="differ"):
        nn.cross_entropy(logits, fnp.zeros((4, 9)))
    with pytest.raises(ValueError, match="shapes differ"):
        nn.mse(logits, fnp.zeros((10, 4)))
