"""MaxPool2d / AvgPool2d layers and the MLP module, against the functional forms and NumPy."""
from __future__ import annotations

import numpy as np
import pytest

import fgrad
import fgrad.numpy as fnp
from fgrad import nn, random


def test_pool_layers_are_the_functional_pools():
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 8)).astype(np.float32)
    np.testing.assert_array_equal(nn.MaxPool2d(2)(x), nn.max_pool2d(x, 2))
    np.testing.assert_array_equal(nn.AvgPool2d(3, stride=2, padding=1)(x), nn.avg_pool2d(x, 3, 2, 1))
    # NumPy reference for the 2x2 max pool: crop to even sizes, then max over each block
    ref = x[:, :, :8, :8].reshape(2, 3, 4, 2, 4, 2).max(axis=(3, 5))
    np.testing.assert_array_equal(nn.MaxPool2d(2)(x), ref)
    assert fgrad.tree.tree_leaves(nn.MaxPool2d(2)) == []          # no parameters
    np.testing.assert_array_equal(fgrad.jit(lambda m, v: m(v))(nn.AvgPool2d(2), x), nn.avg_pool2d(x, 2))


def test_mlp_composes_its_linear_layers():
    mlp = nn.MLP(5, 3, width_size=7, depth=2, activation=nn.gelu, key=random.key(0))
    assert [(layer.in_features, layer.out_features) for layer in mlp.layers] == [(5, 7), (7, 7), (7, 3)]
    x = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    h = x
    for layer in mlp.layers[:-1]:
        h = np.asarray(nn.gelu(h @ np.asarray(layer.weight).T + np.asarray(layer.bias)))
    expected = h @ np.asarray(mlp.layers[-1].weight).T + np.asarray(mlp.layers[-1].bias)
    np.testing.assert_allclose(np.asarray(mlp(x)), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(fgrad.jit(lambda m, v: m(v))(mlp, x)), expected, rtol=1e-5, atol=1e-6)


def test_mlp_depth_zero_is_one_linear_and_final_activation_applies():
    mlp = nn.MLP(4, 2, width_size=99, depth=0, final_activation=nn.sigmoid, use_bias=False, key=random.key(3))
    (layer,) = mlp.layers
    assert layer.bias is None and layer.weight.shape == (2, 4)
    x = np.ones((1, 4), np.float32)
    np.testing.assert_allclose(np.asarray(mlp(x)), 1 / (1 + np.exp(-(x @ np.asarray(layer.weight).T))), rtol=1e-6)


def test_mlp_trains_under_grad():
    mlp = nn.MLP(2, 1, width_size=8, depth=1, key=random.key(1))
    x = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], np.float32)
    y = np.array([[1.0], [1.0], [0.0]], np.float32)
    loss = lambda m: fnp.mean((m(x) - y) ** 2)
    grads = fgrad.grad(loss)(mlp)
    assert [g.weight.shape for g in grads.layers] == [(8, 2), (1, 8)]
    step = fgrad.jit(lambda m: fgrad.tree.tree_map(lambda p, g: p - 0.1 * g, m, fgrad.grad(loss)(m)))
    before = float(loss(mlp))
    for _ in range(20):
        mlp = step(mlp)
    assert float(loss(mlp)) < before


def test_mlp_rejects_bad_arguments():
    with pytest.raises(ValueError, match="depth must be a non-negative int"):
        nn.MLP(2, 2, 4, -1, key=random.key(0))
    with pytest.raises(TypeError, match="explicit PRNG key"):
        nn.MLP(2, 2, 4, 1, key=None)
