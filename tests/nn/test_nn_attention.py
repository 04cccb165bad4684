"""MultiheadAttention: forward vs a NumPy reference (self- and cross-attention, causal and
boolean masks, with and without bias), gradients vs finite differences, eager vs jit, vmap
over unbatched inputs vs the batched call, initialisation as PyTorch, and errors."""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import fgrad
from fgrad import nn, random
from fgrad import numpy as fnp

from tests.nn.test_nn_layers import assert_uniform
from tests.util import check_grads, check_vmap


def np_softmax(s):
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_attention(attn, query, key, value, causal=False, mask=None):
    """Per batch element, per head, with explicit loops over heads: a direct transcription."""
    e, h = attn.embed_dim, attn.num_heads
    d = e // h
    w = np.asarray(attn.in_proj_weight, np.float64)
    b = np.zeros(3 * e) if attn.in_proj_bias is None else np.asarray(attn.in_proj_bias, np.float64)
    q = np.asarray(query, np.float64) @ w[:e].T + b[:e]
    k = np.asarray(key, np.float64) @ w[e:2 * e].T + b[e:2 * e]
    v = np.asarray(value, np.float64) @ w[2 * e:].T + b[2 * e:]
    batch, tq, tk = q.shape[0], q.shape[1], k.shape[1]
    allowed = np.ones((batch, h, tq, tk), bool)
    if causal:
        allowed &= np.tril(np.ones((tq, tk), bool))
    if mask is not None:
        allowed &= np.broadcast_to(mask, allowed.shape)
    out = np.zeros((batch, tq, e))
    for n in range(batch):
        for head in range(h):
            cols = slice(head * d, (head + 1) * d)
            scores = q[n, :, cols] @ k[n, :, cols].T / math.sqrt(d)
            scores = np.where(allowed[n, head], scores, np.finfo(np.float32).min)
            out[n, :, cols] = np_softmax(scores) @ v[n, :, cols]
    wo = np.asarray(attn.out_proj.weight, np.float64)
    bo = 0 if attn.out_proj.bias is None else np.asarray(attn.out_proj.bias, np.float64)
    return out @ wo.T + bo


def with_random_biases(attn, seed):
    """Torch's init zeroes the biases; random ones make the tests see them used."""
    if attn.in_proj_bias is None:
        return attn
    rng = np.random.default_rng(seed)
    out_proj = attn.out_proj.replace(bias=fnp.asarray(rng.standard_normal(attn.embed_dim).astype(np.float32)))
    in_bias = fnp.asarray(rng.standard_normal(3 * attn.embed_dim).astype(np.float32))
    return attn.replace(in_proj_bias=in_bias, out_proj=out_proj)


def normal(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


@given(st.sampled_from([(4, 1), (4, 2), (6, 3), (8, 4)]), st.integers(1, 2), st.integers(1, 5),
       st.integers(1, 4), st.booleans(), st.booleans(), st.booleans(), st.integers(0, 1000))
def test_attention_matches_numpy(dims, batch, tq, tk, self_attention, causal, bias, seed):
    embed_dim, heads = dims
    attn = with_random_biases(nn.MultiheadAttention(embed_dim, heads, bias=bias, key=random.key(seed)), seed)
    rng = np.random.default_rng(seed)
    query = normal(rng, (batch, tq, embed_dim))
    key, value = (query, query) if self_attention else (normal(rng, (batch, tk, embed_dim)),
                                                       normal(rng, (batch, tk, embed_dim)))
    want = np_attention(attn, query, key, value, causal=causal)
    got = attn(fnp.asarray(query), None if self_attention else fnp.asarray(key),
               None if self_attention else fnp.asarray(value), causal=causal)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-5)


def test_boolean_mask_true_means_attend_and_combines_with_causal():
    attn = with_random_biases(nn.MultiheadAttention(4, 2, key=random.key(1)), 1)
    rng = np.random.default_rng(1)
    x = normal(rng, (2, 5, 4))
    mask = rng.random((2, 1, 5, 5)) < 0.6
    mask[..., 0] = True   # every row attends somewhere
    for causal in (False, True):
        want = np_attention(attn, x, x, x, causal=causal, mask=mask)
        got = attn(fnp.asarray(x), causal=causal, mask=fnp.asarray(mask))
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-5)
    per_head_key_mask = rng.random((2, 5)) < 0.7
    per_head_key_mask[:, 0] = True
    mask = per_head_key_mask[:, None, None, :]   # (B, 1, 1, Tk): padding-style
    want = np_attention(attn, x, x, x, mask=mask)
    np.testing.assert_allclose(np.asarray(attn(fnp.asarray(x), mask=fnp.asarray(mask))), want,
                               rtol=1e-4, atol=1e-5)


def test_causal_output_ignores_the_future():
    attn = nn.MultiheadAttention(4, 2, key=random.key(2))
    x = normal(np.random.default_rng(2), (1, 6, 4))
    changed = x.copy()
    changed[:, 4:] += 10.0
    a = np.asarray(attn(fnp.asarray(x), causal=True))
    b = np.asarray(attn(fnp.asarray(changed), causal=True))
    np.testing.assert_allclose(a[:, :4], b[:, :4], rtol=1e-5, atol=1e-6)
    assert not np.allclose(a[:, 4:], b[:, 4:])


def test_value_defaults_to_key_and_unbatched_inputs_work():
    attn = with_random_biases(nn.MultiheadAttention(6, 2, key=random.key(3)), 3)
    rng = np.random.default_rng(3)
    q, kv = normal(rng, (4, 6)), normal(rng, (3, 6))
    want = np_attention(attn, q[None], kv[None], kv[None])[0]
    np.testing.assert_allclose(np.asarray(attn(fnp.asarray(q), fnp.asarray(kv))), want, rtol=1e-4, atol=1e-5)


def test_attention_under_jit_equals_eager():
    attn = with_random_biases(nn.MultiheadAttention(8, 2, key=random.key(4)), 4)
    x = fnp.asarray(normal(np.random.default_rng(4), (2, 5, 8)))
    jitted = fgrad.jit(lambda m, v: m(v, causal=True))
    np.testing.assert_allclose(np.asarray(jitted(attn, x)), np.asarray(attn(x, causal=True)), rtol=1e-5, atol=1e-6)
    mask = fnp.asarray(np.random.default_rng(4).random((2, 1, 1, 5)) < 0.7) | fnp.asarray(np.eye(5, dtype=bool))
    masked = fgrad.jit(lambda m, v, k: m(v, mask=k))
    np.testing.assert_allclose(np.asarray(masked(attn, x, mask)), np.asarray(attn(x, mask=mask)), rtol=1e-5, atol=1e-6)


def test_attention_vmap_over_unbatched_inputs_equals_the_batched_call():
    attn = with_random_biases(nn.MultiheadAttention(4, 2, key=random.key(5)), 5)
    x = fnp.asarray(normal(np.random.default_rng(5), (3, 5, 4)))
    check_vmap(lambda v: attn(v, causal=True), (x,), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(fgrad.vmap(lambda v: attn(v, causal=True))(x)),
                               np.asarray(attn(x, causal=True)), rtol=1e-5, atol=1e-6)


def test_attention_grads_match_finite_differences():
    attn = with_random_biases(nn.MultiheadAttention(4, 2, key=random.key(6)), 6)
    rng = np.random.default_rng(6)
    x, kv = rng.standard_normal((1, 3, 4)), rng.standard_normal((1, 2, 4))
    check_grads(lambda m, v: m(v, causal=True), (attn, x), order=1)
    check_grads(lambda m, v, s: m(v, s), (attn, x, kv), order=1, modes=("rev",))


def test_attention_init_follows_pytorch():
    attn = nn.MultiheadAttention(64, 4, key=random.key(7))
    assert attn.in_proj_weight.shape == (192, 64) and attn.in_proj_bias.shape == (192,)
    assert_uniform(attn.in_proj_weight, math.sqrt(6 / (64 + 192)))
    assert_uniform(attn.out_proj.weight, 1 / math.sqrt(64))
    np.testing.assert_array_equal(np.asarray(attn.in_proj_bias), 0)
    np.testing.assert_array_equal(np.asarray(attn.out_proj.bias), 0)
    no_bias = nn.MultiheadAttention(8, 2, bias=False, key=random.key(8))
    assert no_bias.in_proj_bias is None and no_bias.out_proj.bias is None


def test_attention_errors():
    with pytest.raises(ValueError, match=r"embed_dim \(10\) must be divisible by num_heads \(4\)"):
        nn.MultiheadAttention(10, 4, key=random.key(0))
    with pytest.raises(TypeError, match="explicit PRNG key"):
        nn.MultiheadAttention(8, 2, key=None)
    attn = nn.MultiheadAttention(8, 2, key=random.key(0))
    with pytest.raises(ValueError, match=r"query must have last dimension 8, got shape \(2, 3, 6\)"):
        attn(fnp.zeros((2, 3, 6)))
    with pytest.raises(ValueError, match="all be"):
        attn(fnp.zeros((2, 3, 8)), fnp.zeros((3, 8)))
    with pytest.raises(ValueError, match="key and value need the same"):
        attn(fnp.zeros((2, 3, 8)), fnp.zeros((2, 4, 8)), fnp.zeros((2, 5, 8)))
    with pytest.raises(TypeError, match="mask must be boolean"):
        attn(fnp.zeros((2, 3, 8)), mask=fnp.ones((3, 3)))
    with pytest.raises(ValueError, match=r"does not broadcast to .* \(2, 2, 3, 3\)"):
        attn(fnp.zeros((2, 3, 8)), mask=fnp.ones((4, 3), bool))
