"""Embedding, LayerNorm and RMSNorm: forward vs NumPy, gradients vs finite differences (and
Embedding's weight gradient vs ``np.add.at``), eager vs jit, vmap vs a loop, initialisation
and errors."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import fgrad
from fgrad import nn, random, tree
from fgrad import numpy as fnp

from tests.util import check_grads, check_vmap


def np_layer_norm(x, weight, bias, eps, n_axes):
    x = np.asarray(x, np.float64)
    axes = tuple(range(x.ndim - n_axes, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps)
    y = y if weight is None else y * np.asarray(weight, np.float64)
    return y if bias is None else y + np.asarray(bias, np.float64)


def np_rms_norm(x, weight, eps, n_axes):
    x = np.asarray(x, np.float64)
    axes = tuple(range(x.ndim - n_axes, x.ndim))
    y = x / np.sqrt((x * x).mean(axis=axes, keepdims=True) + eps)
    return y if weight is None else y * np.asarray(weight, np.float64)


def random_affine(norm, seed):
    """The norm with random (not ones/zeros) weight and bias, so the test sees them used."""
    rng = np.random.default_rng(seed)
    changes = {name: fnp.asarray(rng.standard_normal(getattr(norm, name).shape).astype(np.float32))
               for name in ("weight", "bias") if getattr(norm, name, None) is not None}
    return norm.replace(**changes)


# --- Embedding -------------------------------------------------------------------------------

def test_embedding_gathers_rows_for_any_ids_shape():
    emb = nn.Embedding(7, 3, key=random.key(0))
    w = np.asarray(emb.weight)
    assert w.shape == (7, 3) and emb.weight.dtype == fnp.float32
    ids = np.array([[0, 6, 2], [2, 2, 5]], np.int32)
    np.testing.assert_array_equal(np.asarray(emb(fnp.asarray(ids))), w[ids])
    np.testing.assert_array_equal(np.asarray(emb(3)), w[3])
    np.testing.assert_array_equal(np.asarray(emb([1, 4])), w[[1, 4]])
    np.testing.assert_array_equal(np.asarray(fgrad.jit(lambda e, i: e(i))(emb, fnp.asarray(ids))), w[ids])


def test_embedding_init_is_standard_normal_and_depends_on_the_key():
    w = np.asarray(nn.Embedding(200, 100, key=random.key(1)).weight, np.float64)
    n = w.size
    assert abs(w.mean()) < 4 / np.sqrt(n)
    assert abs(w.var() - 1) < 4 * np.sqrt(2 / n)
    assert abs(np.mean(w < -1) - 0.1587) < 4 * np.sqrt(0.16 * 0.84 / n)
    other = np.asarray(nn.Embedding(200, 100, key=random.key(2)).weight)
    assert not np.array_equal(w.astype(np.float32), other)


def test_embedding_weight_gradient_scatter_adds_the_cotangent():
    emb = nn.Embedding(5, 2, key=random.key(3))
    ids = np.array([[1, 1, 4], [0, 1, 3]], np.int32)
    ct = np.random.default_rng(0).standard_normal((2, 3, 2)).astype(np.float32)

    def loss(e):
        return fnp.sum(e(fnp.asarray(ids)) * ct)

    want = np.zeros((5, 2), np.float32)
    np.add.at(want, ids, ct)
    for fn in (fgrad.grad(loss), fgrad.jit(fgrad.grad(loss))):
        got = fn(emb)
        assert type(got) is nn.Embedding
        np.testing.assert_allclose(np.asarray(got.weight), want, rtol=1e-6, atol=1e-6)


def test_embedding_vmaps_over_ids():
    emb = nn.Embedding(9, 4, key=random.key(4))
    ids = np.random.default_rng(1).integers(0, 9, (3, 5)).astype(np.int32)
    check_vmap(lambda i: emb(i), (fnp.asarray(ids),))


def test_embedding_rejects_float_ids():
    emb = nn.Embedding(4, 2, key=random.key(5))
    with pytest.raises(TypeError, match=r"Embedding\(4, 2\): ids must be integers, got dtype float32; convert"):
        emb(fnp.asarray([1.0, 2.0]))
    with pytest.raises(TypeError, match="explicit PRNG key"):
        nn.Embedding(4, 2, key=None)


# --- LayerNorm -------------------------------------------------------------------------------

@given(st.integers(1, 2), st.booleans(), st.booleans(), st.integers(0, 1000))
def test_layer_norm_matches_numpy(n_axes, affine, bias, seed):
    shape = (3, 4, 5)[3 - n_axes - 1:]
    ln = nn.LayerNorm(shape[-n_axes:], elementwise_affine=affine, bias=bias)
    ln = random_affine(ln, seed)
    x = (np.random.default_rng(seed).standard_normal(shape) * 3 + 1).astype(np.float32)
    want = np_layer_norm(x, None if ln.weight is None else np.asarray(ln.weight),
                         None if ln.bias is None else np.asarray(ln.bias), 1e-5, n_axes)
    np.testing.assert_allclose(np.asarray(ln(fnp.asarray(x))), want, rtol=1e-4, atol=1e-5)


def test_layer_norm_parameters_are_torch_defaults():
    ln = nn.LayerNorm((2, 3))
    np.testing.assert_array_equal(np.asarray(ln.weight), np.ones((2, 3)))
    np.testing.assert_array_equal(np.asarray(ln.bias), np.zeros((2, 3)))
    assert nn.LayerNorm(4, bias=False).bias is None
    assert len(tree.tree_leaves(nn.LayerNorm(4, elementwise_affine=False))) == 0


def test_layer_norm_eps_and_jit():
    ln = random_affine(nn.LayerNorm(6, eps=0.5), 1)
    x = np.random.default_rng(2).standard_normal((4, 6)).astype(np.float32) * 0.3
    want = np_layer_norm(x, np.asarray(ln.weight), np.asarray(ln.bias), 0.5, 1)
    got = fgrad.jit(lambda m, v: m(v))(ln, fnp.asarray(x))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)


def test_layer_norm_grads_match_finite_differences():
    ln = random_affine(nn.LayerNorm(5), 3)
    x = np.random.default_rng(3).standard_normal((2, 5))
    check_grads(lambda m, v: m(v), (ln, x), order=1)


def test_layer_norm_vmap_equals_a_loop():
    ln = random_affine(nn.LayerNorm(4), 4)
    x = np.random.default_rng(4).standard_normal((3, 2, 4)).astype(np.float32)
    check_vmap(lambda v: ln(v), (fnp.asarray(x),), rtol=1e-5, atol=1e-6)


def test_layer_norm_errors():
    with pytest.raises(ValueError, match=r"trailing dimensions must be \(4,\), got input shape \(2, 5\)"):
        nn.LayerNorm(4)(fnp.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"trailing dimensions must be \(2, 3\)"):
        nn.LayerNorm((2, 3))(fnp.zeros((3,)))
    with pytest.raises(ValueError, match="normalized_shape must be a positive int"):
        nn.LayerNorm(())


# --- RMSNorm ---------------------------------------------------------------------------------

@given(st.integers(1, 2), st.booleans(), st.sampled_from([None, 1e-6, 0.1]), st.integers(0, 1000))
def test_rms_norm_matches_numpy(n_axes, affine, eps, seed):
    shape = (2, 3, 4)[3 - n_axes - 1:]
    norm = random_affine(nn.RMSNorm(shape[-n_axes:], eps=eps, elementwise_affine=affine), seed)
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    want = np_rms_norm(x, None if norm.weight is None else np.asarray(norm.weight),
                       np.finfo(np.float32).eps if eps is None else eps, n_axes)
    np.testing.assert_allclose(np.asarray(norm(fnp.asarray(x))), want, rtol=1e-5, atol=1e-6)


def test_rms_norm_default_eps_is_the_dtype_epsilon():
    """A zero input row distinguishes eps choices: x / sqrt(0 + eps) * 0 = 0 either way, so use a
    tiny row instead: its output is x / sqrt(x**2 + eps)."""
    x = np.full((1, 2), 1e-4, np.float32)
    got = np.asarray(nn.RMSNorm(2)(fnp.asarray(x)))
    want = 1e-4 / np.sqrt(1e-8 + np.finfo(np.float32).eps)
    np.testing.assert_allclose(got, np.full((1, 2), want), rtol=1e-5)


def test_rms_norm_grads_jit_and_vmap():
    norm = random_affine(nn.RMSNorm(3), 5)
    x = np.random.default_rng(5).standard_normal((2, 3))
    check_grads(lambda m, v: m(v), (norm, x), order=1)
    x32 = fnp.asarray(x.astype(np.float32))
    np.testing.assert_allclose(np.asarray(fgrad.jit(lambda m, v: m(v))(norm, x32)), np.asarray(norm(x32)),
                               rtol=1e-6, atol=1e-6)
    check_vmap(lambda v: norm(v), (x32,), rtol=1e-5, atol=1e-6)


def test_rms_norm_errors():
    with pytest.raises(ValueError, match=r"RMSNorm\(normalized_shape=\(3,\)\): the input's trailing"):
        nn.RMSNorm(3)(fnp.zeros((3, 4)))
