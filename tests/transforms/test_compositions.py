"""Transforms composed in every order, on small real models (an MLP and a 2-layer convnet),
with and without jit: grad∘grad, vmap∘grad, grad∘vmap, jvp∘vjp."""
import numpy as np
import pytest

import fgrad
from fgrad import jit, lax, numpy as fnp
from tests.util import check_grads

RNG = np.random.default_rng(0)


def _arr(*shape, scale=0.5):
    return fnp.asarray((RNG.standard_normal(shape) * scale).astype(np.float32))


MLP = {"w1": _arr(4, 8), "b1": _arr(8), "w2": _arr(8, 3), "b2": _arr(3)}
X, Y = _arr(5, 4, scale=1.0), fnp.asarray(np.array([0, 2, 1, 1, 0], np.int32))


def mlp_loss(params, x, y):
    h = fnp.tanh(x @ params["w1"] + params["b1"])
    logits = h @ params["w2"] + params["b2"]
    logp = logits - fnp.log(fnp.sum(fnp.exp(logits), axis=-1, keepdims=True))
    onehot = (y[..., None] == fnp.arange(3)).astype(np.float32)
    return -fnp.mean(fnp.sum(logp * onehot, axis=-1))


CONV = {"k1": _arr(4, 1, 3, 3), "k2": _arr(2, 4, 3, 3), "w": _arr(2 * 3 * 3, 3)}
IMGS = _arr(3, 1, 7, 7, scale=1.0)


def conv_loss(params, imgs, y):
    h = lax.conv_general_dilated(imgs, params["k1"], (1, 1), ((0, 0), (0, 0)))
    h = fnp.tanh(h)
    h = lax.conv_general_dilated(h, params["k2"], (1, 1), ((0, 0), (0, 0)))
    logits = fnp.reshape(h, (h.shape[0], -1)) @ params["w"]
    return fnp.mean((logits - y[..., None].astype(np.float32)) ** 2)


MODELS = [(mlp_loss, MLP, X, Y), (conv_loss, CONV, IMGS, fnp.asarray(np.array([0, 1, 2], np.int32)))]
WRAPS = {"plain": lambda f: f, "jit": jit}


@pytest.mark.parametrize("loss,params,x,y", MODELS, ids=["mlp", "convnet"])
def test_gradients_match_finite_differences_to_second_order(loss, params, x, y):
    check_grads(lambda p, xx: loss(p, xx, y), (params, x), order=2, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("wrap", WRAPS, ids=list(WRAPS))
@pytest.mark.parametrize("loss,params,x,y", MODELS, ids=["mlp", "convnet"])
def test_vmap_of_grad_is_per_example_gradients(loss, params, x, y, wrap):
    per_example = WRAPS[wrap](fgrad.vmap(fgrad.grad(loss), in_axes=(None, 0, 0)))
    got = per_example(params, x[:, None] if loss is mlp_loss else x[:, None], y[:, None])
    for i in range(x.shape[0]):
        want = fgrad.grad(loss)(params, x[i:i + 1], y[i:i + 1])
        for key in params:
            np.testing.assert_allclose(np.asarray(got[key][i]), np.asarray(want[key]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("wrap", WRAPS, ids=list(WRAPS))
@pytest.mark.parametrize("loss,params,x,y", MODELS, ids=["mlp", "convnet"])
def test_grad_of_vmap_equals_grad_of_loop(loss, params, x, y, wrap):
    def batched_total(p):
        per = fgrad.vmap(lambda xi, yi: loss(p, xi[None], yi[None]))(x, y)
        return fnp.sum(per)

    def looped_total(p):
        return sum(loss(p, x[i:i + 1], y[i:i + 1]) for i in range(x.shape[0]))
    got = WRAPS[wrap](fgrad.grad(batched_total))(params)
    want = fgrad.grad(looped_total)(params)
    for key in params:
        np.testing.assert_allclose(np.asarray(got[key]), np.asarray(want[key]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("wrap", WRAPS, ids=list(WRAPS))
@pytest.mark.parametrize("loss,params,x,y", MODELS, ids=["mlp", "convnet"])
def test_grad_of_grad_hessian_vector_product(loss, params, x, y, wrap):
    v = fgrad.tree.tree_map(lambda p: fnp.asarray(RNG.standard_normal(p.shape).astype(np.float32)), params)

    def hvp(p):
        g = fgrad.grad(loss)(p, x, y)
        return sum(fnp.sum(g[k] * v[k]) for k in p)
    got = WRAPS[wrap](fgrad.grad(hvp))(params)
    # forward-over-reverse gives the same Hessian-vector product
    _, want = fgrad.jvp(lambda p: fgrad.grad(loss)(p, x, y), (params,), (v,))
    for key in params:
        np.testing.assert_allclose(np.asarray(got[key]), np.asarray(want[key]), rtol=2e-3, atol=2e-4)


@pytest.mark.parametrize("wrap", WRAPS, ids=list(WRAPS))
def test_jvp_of_vjp_is_linear_in_cotangent(wrap):
    f = lambda p: fgrad.grad(mlp_loss)(p, X, Y)["w1"]

    def vjp_apply(p, ct):
        _, pullback = fgrad.vjp(f, p)
        return pullback(ct)[0]["b1"]
    ct = _arr(4, 8)
    out, tangent = WRAPS[wrap](lambda p, c, t: fgrad.jvp(lambda cc: vjp_apply(p, cc), (c,), (t,)))(MLP, ct, ct)
    np.testing.assert_allclose(np.asarray(tangent), np.asarray(out), rtol=1e-4, atol=1e-6)


def test_jacfwd_equals_jacrev_and_hessian_is_symmetric():
    f = lambda x: fnp.tanh(x) * fnp.sum(x ** 2)
    x = _arr(4, scale=1.0)
    np.testing.assert_allclose(np.asarray(fgrad.jacfwd(f)(x)), np.asarray(fgrad.jacrev(f)(x)), rtol=1e-5, atol=1e-6)
    h = np.asarray(fgrad.hessian(lambda x: fnp.sum(fnp.sin(x) * x ** 2))(x))
    np.testing.assert_allclose(h, h.T, rtol=1e-5, atol=1e-6)


def test_grad_errors():
    with pytest.raises(TypeError, match=r"shape \(3,\)"):
        fgrad.grad(lambda x: x * 2)(fnp.ones(3))
    with pytest.raises(TypeError, match="int32"):
        fgrad.grad(lambda x: fnp.sum(x))(fnp.asarray(np.arange(3, dtype=np.int32)))
    with pytest.raises(TypeError, match=r"\['aux'\]"):
        fgrad.vjp(lambda x: {"aux": "text", "y": x}, fnp.ones(2))
