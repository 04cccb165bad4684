"""The new layers equal PyTorch's for the same weights (outputs and input/weight gradients):
Embedding, LayerNorm, RMSNorm, MultiheadAttention (self- and cross-attention, causal, boolean
mask) and Sequential. Skipped when PyTorch is not installed."""
import numpy as np
import pytest

import fgrad
from fgrad import nn, random
from fgrad import numpy as fnp

torch = pytest.importorskip("torch")


def t(a):
    return torch.tensor(np.asarray(a))


def f(a):
    return fnp.asarray(a.detach().numpy())


def normal(seed, shape):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_embedding_equals_torch():
    torch.manual_seed(0)
    ref = torch.nn.Embedding(11, 4)
    ours = nn.Embedding(11, 4, key=random.key(0)).replace(weight=f(ref.weight))
    ids = np.random.default_rng(0).integers(0, 11, (3, 5))
    np.testing.assert_array_equal(np.asarray(ours(fnp.asarray(ids.astype(np.int32)))),
                                  ref(torch.tensor(ids)).detach().numpy())


@pytest.mark.parametrize("shape", [(6,), (3, 4)])
def test_layer_norm_equals_torch_with_gradients(shape):
    torch.manual_seed(1)
    ref = torch.nn.LayerNorm(shape, eps=1e-3)
    with torch.no_grad():
        ref.weight.normal_()
        ref.bias.normal_()
    ours = nn.LayerNorm(shape, eps=1e-3).replace(weight=f(ref.weight), bias=f(ref.bias))
    x = normal(1, (2,) + shape)
    xt = t(x).requires_grad_()
    (ref(xt) ** 2).sum().backward()
    g_model, g_x = fgrad.grad(lambda m, v: fnp.sum(m(v) ** 2), argnums=(0, 1))(ours, fnp.asarray(x))
    np.testing.assert_allclose(np.asarray(ours(fnp.asarray(x))), ref(t(x)).detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(g_x), xt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(g_model.weight), ref.weight.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(g_model.bias), ref.bias.grad.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("eps", [None, 0.01])
def test_rms_norm_equals_torch(eps):
    if not hasattr(torch.nn, "RMSNorm"):
        pytest.skip("this PyTorch has no RMSNorm")
    ref = torch.nn.RMSNorm(5, eps=eps)
    with torch.no_grad():
        ref.weight.normal_()
    ours = nn.RMSNorm(5, eps=eps).replace(weight=f(ref.weight))
    x = normal(2, (3, 5)) * 1e-3   # small values make eps matter
    np.testing.assert_allclose(np.asarray(ours(fnp.asarray(x))), ref(t(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


def torch_attention(embed_dim, heads, bias, seed):
    torch.manual_seed(seed)
    ref = torch.nn.MultiheadAttention(embed_dim, heads, bias=bias, batch_first=True)
    if bias:
        with torch.no_grad():
            ref.in_proj_bias.normal_()
            ref.out_proj.bias.normal_()
    ours = nn.MultiheadAttention(embed_dim, heads, bias=bias, key=random.key(seed))
    out_proj = ours.out_proj.replace(weight=f(ref.out_proj.weight),
                                     bias=f(ref.out_proj.bias) if bias else None)
    ours = ours.replace(in_proj_weight=f(ref.in_proj_weight), out_proj=out_proj,
                        in_proj_bias=f(ref.in_proj_bias) if bias else None)
    return ref, ours


@pytest.mark.parametrize("bias", [True, False])
def test_causal_self_attention_equals_torch_with_gradients(bias):
    ref, ours = torch_attention(8, 2, bias, seed=3)
    x = normal(3, (2, 5, 8))
    xt = t(x).requires_grad_()
    causal_mask = torch.triu(torch.ones(5, 5, dtype=torch.bool), diagonal=1)   # torch: True = masked
    want, _ = ref(xt, xt, xt, attn_mask=causal_mask, need_weights=False)
    (want ** 2).sum().backward()
    got = ours(fnp.asarray(x), causal=True)
    np.testing.assert_allclose(np.asarray(got), want.detach().numpy(), rtol=1e-4, atol=1e-5)
    g_model, g_x = fgrad.grad(lambda m, v: fnp.sum(m(v, causal=True) ** 2), argnums=(0, 1))(ours, fnp.asarray(x))
    np.testing.assert_allclose(np.asarray(g_x), xt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(g_model.in_proj_weight), ref.in_proj_weight.grad.numpy(),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(g_model.out_proj.weight), ref.out_proj.weight.grad.numpy(),
                               rtol=1e-4, atol=1e-4)


def test_cross_attention_with_a_mask_equals_torch():
    ref, ours = torch_attention(12, 3, True, seed=4)
    q, k, v = normal(4, (2, 4, 12)), normal(5, (2, 6, 12)), normal(6, (2, 6, 12))
    attend = np.random.default_rng(4).random((4, 6)) < 0.6
    attend[:, 0] = True
    want, _ = ref(t(q), t(k), t(v), attn_mask=t(~attend), need_weights=False)
    got = ours(fnp.asarray(q), fnp.asarray(k), fnp.asarray(v), mask=fnp.asarray(attend))
    np.testing.assert_allclose(np.asarray(got), want.detach().numpy(), rtol=1e-4, atol=1e-5)


def test_sequential_equals_torch():
    torch.manual_seed(7)
    ref = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.GELU(approximate="tanh"), torch.nn.LayerNorm(6),
                              torch.nn.Linear(6, 2))
    first = nn.Linear(4, 6, key=random.key(0)).replace(weight=f(ref[0].weight), bias=f(ref[0].bias))
    last = nn.Linear(6, 2, key=random.key(1)).replace(weight=f(ref[3].weight), bias=f(ref[3].bias))
    ours = nn.Sequential(first, nn.gelu, nn.LayerNorm(6), last)
    x = normal(7, (3, 4))
    np.testing.assert_allclose(np.asarray(ours(fnp.asarray(x))), ref(t(x)).detach().numpy(), rtol=1e-5, atol=1e-5)
