"""jax.nn's dot_product_attention, logmeanexp, log1mexp and tanh: against a NumPy reference
(grouped heads, bias, masks, causal, local windows, sequence lengths), jit natively, grad vs
finite differences; the values were compared with jax.nn 0.10.2 once (identical)."""
import warnings

import numpy as np
import pytest
import scipy.special

import fgrad
from fgrad import nn
from tests.util import check_grads

RNG = np.random.default_rng(0)
Q = RNG.standard_normal((2, 5, 4, 8)).astype(np.float32)
K = RNG.standard_normal((2, 6, 2, 8)).astype(np.float32)
V = RNG.standard_normal((2, 6, 2, 8)).astype(np.float32)


def reference(q, k, v, bias=None, allowed=None, scale=None, q_lengths=None):
    b, t, n, h = q.shape
    groups = n // k.shape[2]
    k, v = np.repeat(k, groups, axis=2), np.repeat(v, groups, axis=2)
    scores = np.einsum("btnh,bsnh->bnts", q.astype(np.float64), k) * (scale or 1 / np.sqrt(h))
    if bias is not None:
        scores = scores + bias
    if allowed is not None:
        scores = np.where(allowed, scores, np.finfo(np.float32).min)
    out = np.einsum("bnts,bsnh->btnh", scipy.special.softmax(scores, axis=-1), v)
    if q_lengths is not None:
        out = out * (np.arange(t)[None, :, None, None] < q_lengths[:, None, None, None])
    return out


CASES = {
    "plain": (dict(), dict()),
    "bias and mask": (dict(bias=RNG.standard_normal((1, 4, 5, 6)).astype(np.float32), mask=RNG.random((2, 1, 5, 6)) > 0.3),
                      None),
    "causal, scale": (dict(is_causal=True, scale=0.3), dict(allowed=np.tril(np.ones((5, 6), bool)), scale=0.3)),
    "window": (dict(local_window_size=(1, 1)), dict(allowed=np.abs(np.arange(5)[:, None] - np.arange(6)) <= 1)),
    "lengths": (dict(query_seq_lengths=np.array([3, 5]), key_value_seq_lengths=np.array([2, 6])),
                dict(allowed=(np.arange(5)[None, None, :, None] < np.array([3, 5])[:, None, None, None])
                     & (np.arange(6)[None, None, None, :] < np.array([2, 6])[:, None, None, None]),
                     q_lengths=np.array([3, 5]))),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_attention_matches_numpy_eagerly_and_natively(case):
    kwargs, ref_kwargs = CASES[case]
    if ref_kwargs is None:
        ref_kwargs = dict(bias=kwargs["bias"], allowed=kwargs["mask"])
    want = reference(Q, K, V, **ref_kwargs)
    np.testing.assert_allclose(np.asarray(nn.dot_product_attention(Q, K, V, **kwargs)), want, rtol=1e-4, atol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", fgrad.ReferencePathWarning)
        jitted = fgrad.jit(lambda q, k, v: nn.dot_product_attention(q, k, v, **kwargs))(Q, K, V)
    np.testing.assert_allclose(np.asarray(jitted), want, rtol=1e-4, atol=1e-5)


def test_unbatched_inputs_residual_and_gradients():
    out = nn.dot_product_attention(Q[0], K[0], V[0], is_causal=True)
    np.testing.assert_allclose(np.asarray(out), reference(Q[:1], K[:1], V[:1], allowed=np.tril(np.ones((5, 6), bool)))[0],
                               rtol=1e-4, atol=1e-5)
    _, lse = nn.dot_product_attention(Q, K, V, return_residual=True)
    scores = np.einsum("btnh,bsnh->bnts", Q.astype(np.float64), np.repeat(K, 2, axis=2)) / np.sqrt(8)
    np.testing.assert_allclose(np.asarray(lse), np.moveaxis(scipy.special.logsumexp(scores, -1), 1, 2), rtol=1e-5)
    check_grads(lambda q, k, v: nn.dot_product_attention(q, k, v, is_causal=True), (Q[:1, :3], K[:1, :4], V[:1, :4]),
                order=1)


def test_attention_errors():
    with pytest.raises(ValueError, match="multiple of"):
        nn.dot_product_attention(Q[:, :, :3], K, V)
    with pytest.raises(TypeError, match="boolean"):
        nn.dot_product_attention(Q, K, V, mask=np.ones((5, 6)))
    with pytest.raises(ValueError, match="implementation='cudnn'"):
        nn.dot_product_attention(Q, K, V, implementation="cudnn")


def test_logmeanexp_log1mexp_tanh():
    x = np.random.default_rng(1).standard_normal((3, 4))
    x[2] = -np.abs(x[2])
    np.testing.assert_allclose(np.asarray(nn.logmeanexp(x, axis=1)), scipy.special.logsumexp(x, 1) - np.log(4), rtol=1e-6)
    np.testing.assert_allclose(float(nn.logmeanexp(x)), scipy.special.logsumexp(x) - np.log(12), rtol=1e-6, atol=1e-6)
    where = x > 0
    # a row with nothing selected gives NaN (log 0 - log 0), as jax.nn.logmeanexp does
    want = [scipy.special.logsumexp(row[w]) - np.log(w.sum()) if w.any() else np.nan for row, w in zip(x, where)]
    np.testing.assert_allclose(np.asarray(nn.logmeanexp(x, axis=1, where=where)), want, rtol=1e-6)
    t = np.array([1e-8, 0.1, 0.69, 0.7, 5.0, 50.0])
    with fgrad.config.override(enable_x64=True):
        exact = np.where(t < np.log(2), np.log(-np.expm1(-t)), np.log1p(-np.exp(-t)))   # each branch where it is exact
        np.testing.assert_allclose(np.asarray(nn.log1mexp(t)), exact, rtol=1e-12)
        check_grads(nn.log1mexp, (t[1:],), order=2)
        # JAX's derivative, 1 / expm1(x), everywhere: outside the domain too (-1 as x -> -inf),
        # and 0 for huge x, where differentiating the formula gave NaN
        far = np.array([-np.inf, -1e4, -700.0, 1e4, np.inf])
        d1 = fgrad.vmap(fgrad.grad(nn.log1mexp))(far)
        np.testing.assert_array_equal(np.asarray(d1), 1 / np.expm1(far))
        d2 = fgrad.vmap(fgrad.grad(fgrad.grad(nn.log1mexp)))(t)
        np.testing.assert_allclose(np.asarray(d2), -np.exp(t) / np.expm1(t) ** 2, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(nn.tanh(x)), np.tanh(x), rtol=1e-6)
