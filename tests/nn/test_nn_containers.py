"""Dropout (the layer), Sequential and Lambda: values vs NumPy / manual composition, keys,
jit, grad structure, and errors."""
import numpy as np
import pytest

import fgrad
from fgrad import nn, random, tree
from fgrad import numpy as fnp

from tests.util import check_vmap


def test_dropout_without_key_or_deterministic_is_the_identity():
    x = fnp.asarray(np.arange(12, dtype=np.float32).reshape(3, 4))
    drop = nn.Dropout(0.5)
    np.testing.assert_array_equal(np.asarray(drop(x)), np.asarray(x))
    np.testing.assert_array_equal(np.asarray(drop(x, key=random.key(0), deterministic=True)), np.asarray(x))
    assert tree.tree_leaves(drop) == []


def test_dropout_zeroes_about_rate_and_scales_the_rest():
    x = np.random.default_rng(0).uniform(1, 2, (200, 100)).astype(np.float32)
    y = np.asarray(nn.Dropout(0.3)(fnp.asarray(x), key=random.key(1)))
    dropped = y == 0
    assert abs(dropped.mean() - 0.3) < 4 * np.sqrt(0.3 * 0.7 / x.size)
    np.testing.assert_allclose(y[~dropped], x[~dropped] / 0.7, rtol=1e-6)


def test_dropout_is_a_function_of_the_key_and_matches_the_functional_form_under_jit():
    x = fnp.ones((4, 8))
    drop = nn.Dropout(0.5)
    a = np.asarray(drop(x, key=random.key(2)))
    b = np.asarray(fgrad.jit(lambda d, v, k: d(v, key=k))(drop, x, random.key(2)))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, np.asarray(nn.dropout(x, 0.5, key=random.key(2))))
    assert not np.array_equal(a, np.asarray(drop(x, key=random.key(3))))


def test_dropout_rejects_bad_rates():
    with pytest.raises(ValueError, match=r"Dropout: rate must be in \[0, 1\), got 1.0"):
        nn.Dropout(1.0)


def test_sequential_equals_the_manual_composition():
    k1, k2 = random.split(random.key(4))
    first, second = nn.Linear(3, 5, key=k1), nn.Linear(5, 2, key=k2)
    model = nn.Sequential(first, nn.relu, nn.LayerNorm(5), second)
    x = fnp.asarray(np.random.default_rng(4).standard_normal((6, 3)).astype(np.float32))
    want = second(nn.LayerNorm(5)(nn.relu(first(x))))
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(want), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(fgrad.jit(lambda m, v: m(v))(model, x)), np.asarray(want),
                               rtol=1e-5, atol=1e-6)
    assert len(model) == 4 and model[0] is first and isinstance(model[1], nn.Lambda)


def test_sequential_vmaps_over_examples():
    model = nn.Sequential(nn.Linear(3, 4, key=random.key(8)), nn.gelu, nn.Linear(4, 2, key=random.key(9)))
    x = fnp.asarray(np.random.default_rng(8).standard_normal((5, 3)).astype(np.float32))
    check_vmap(lambda v: model(v), (x,), rtol=1e-5, atol=1e-6)


def test_sequential_splits_its_key_among_the_layers_that_take_one():
    model = nn.Sequential(nn.Dropout(0.5), fnp.tanh, nn.Dropout(0.5))
    x = fnp.ones((8, 8))
    key = random.key(5)
    k0, _, k2 = random.split(key, 3)
    want = nn.dropout(fnp.tanh(nn.dropout(x, 0.5, key=k0)), 0.5, key=k2)
    np.testing.assert_array_equal(np.asarray(model(x, key=key)), np.asarray(want))
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(fnp.tanh(x)))


def test_grad_of_a_sequential_has_its_structure():
    model = nn.Sequential(nn.Linear(2, 3, key=random.key(6)), nn.relu, nn.Linear(3, 1, key=random.key(7)))
    x = fnp.ones((4, 2))
    grads = fgrad.grad(lambda m: fnp.sum(m(x)))(model)
    assert type(grads) is nn.Sequential and type(grads[0]) is nn.Linear
    assert tree.tree_structure(grads) == tree.tree_structure(model)
    # d/d(bias of the last layer) of sum over 4 rows is 4
    np.testing.assert_allclose(np.asarray(grads[2].bias), [4.0])


def test_sequential_rejects_non_callables():
    with pytest.raises(TypeError, match=r"Sequential: layer 1 \(int\) is not callable"):
        nn.Sequential(nn.relu, 3)
    with pytest.raises(TypeError, match="Lambda: expected a callable"):
        nn.Lambda("relu")
