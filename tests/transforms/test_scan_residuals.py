"""Reverse mode through ``scan``: which residuals the forward loop stacks for the backward one.

Cheap elementwise residuals (``fgrad.core.rules.cheap_to_recompute``) are recomputed by the
backward loop from the residuals it gets anyway, as the unrolled program's fused kernels
would; gradients stay those of the unrolled loop and of finite differences."""
from __future__ import annotations

import numpy as np

import fgrad
from fgrad import lax, numpy as fnp
from fgrad.ops.control import scan_p
from tests.util import check_grads

LENGTH, D = 3, 4


def _block(h, w):
    w1, w2 = w
    return h + fgrad.nn.gelu(h @ w1) @ w2, None


def _loss_scan(params, x, block=_block):
    h, _ = lax.scan(block, x, params)
    return (h ** 2).mean()


def _loss_unrolled(params, x, block=_block):
    h = x
    for i in range(LENGTH):
        h, _ = block(h, fgrad.tree.tree_map(lambda p: p[i], params))
    return (h ** 2).mean()


def _params(seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((LENGTH, D, 2 * D)).astype(dtype) * 0.5
    w2 = rng.standard_normal((LENGTH, 2 * D, D)).astype(dtype) * 0.5
    x = rng.standard_normal((5, D)).astype(dtype)
    return (fnp.asarray(w1), fnp.asarray(w2)), fnp.asarray(x)


def _forward_scan_stacks(jaxpr) -> int:
    """How many per-iteration outputs (ys) the first scan of a gradient program stacks."""
    eqn = next(e for e in jaxpr.jaxpr.eqns if e.primitive is scan_p)
    return len(eqn.outvars) - eqn.params["num_carry"]


def test_only_the_matrix_product_and_the_carry_are_stacked():
    """GELU's tanh, its square, 1 - t^2, 1 + t, 0.5 u and gelu(u) were stacked too (7 arrays
    per iteration); they are recomputed from u = h @ w1 by the backward loop."""
    params, x = _params()
    stacks = _forward_scan_stacks(fgrad.make_jaxpr(fgrad.grad(_loss_scan))(params, x))
    assert stacks == 2, stacks


def test_recomputed_residuals_give_the_unrolled_gradients():
    params, x = _params(1)
    for fn in (fgrad.value_and_grad(_loss_scan), fgrad.jit(fgrad.value_and_grad(_loss_scan))):
        value, grads = fn(params, x)
        ref_value, ref_grads = fgrad.value_and_grad(_loss_unrolled)(params, x)
        np.testing.assert_allclose(np.asarray(value), np.asarray(ref_value), rtol=1e-6)
        for g, r in zip(fgrad.tree.tree_leaves(grads), fgrad.tree.tree_leaves(ref_grads)):
            np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=2e-5, atol=1e-6)


def test_recomputation_from_xs_slices_and_loop_invariants_is_differentiable_twice():
    """The recomputed residual tanh(x * w) * s reads an xs slice, a loop-invariant closure
    value and a literal; the second-order check runs the copied equations' own derivatives."""
    def f(c, xs, w):
        s = fnp.exp(w)           # loop-invariant

        def body(c, x):
            t = fnp.tanh(x * w) * s + 0.5
            return c * t, fnp.sin(c) * t
        return lax.scan(body, c, xs)
    args = (fnp.asarray([0.3, -0.2]), fnp.asarray(np.linspace(-1, 1, 8).reshape(4, 2)), fnp.asarray([0.7, 1.2]))
    check_grads(f, args, order=2)
    check_grads(lambda c, xs, w: f(c, xs[::-1], w), args, order=1)


def test_the_mlp_block_against_finite_differences():
    params, x = _params(2, np.float64)
    check_grads(lambda p, x: _loss_scan(p, x), (params, x), order=1)


def _softmax_block(h, w):
    """Attention-like: softmax over a (5, 5) score matrix, whose row sums are broadcast."""
    s = (h @ w) @ h.T
    e = fnp.exp(s - lax.stop_gradient(s.max(axis=1, keepdims=True)))
    return h + (e / e.sum(axis=1, keepdims=True)) @ h, None


def test_a_broadcast_residual_is_stacked_before_its_broadcast():
    """The softmax's denominator, broadcast over the row, was stacked at the scores' size; now
    its (5, 1) row sums are stacked and the backward loop broadcasts them again. Every stacked
    residual is smaller than a score matrix per step or is one the backward pass reads whole,
    and the gradients equal the unrolled loop's and finite differences."""
    rng = np.random.default_rng(3)
    w = fnp.asarray(rng.standard_normal((LENGTH, D, D)).astype(np.float32) * 0.3)
    x = fnp.asarray(rng.standard_normal((5, D)).astype(np.float32))
    loss_scan = lambda w, x: _loss_scan(w, x, _softmax_block)              # noqa: E731
    loss_unrolled = lambda w, x: _loss_unrolled(w, x, _softmax_block)      # noqa: E731
    jaxpr = fgrad.make_jaxpr(fgrad.grad(loss_scan))(w, x)
    eqn = next(e for e in jaxpr.jaxpr.eqns if e.primitive is scan_p)
    stacked = [v.aval.shape[1:] for v in eqn.outvars[eqn.params["num_carry"]:]]
    assert (5, 1) in stacked and stacked.count((5, 5)) <= 1, stacked
    for fn in (fgrad.grad(loss_scan), fgrad.jit(fgrad.grad(loss_scan))):
        np.testing.assert_allclose(np.asarray(fn(w, x)), np.asarray(fgrad.grad(loss_unrolled)(w, x)),
                                   rtol=1e-4, atol=1e-5)      # float32 sums of terms up to ~20
    check_grads(loss_scan, (w, x), order=1, modes=["rev"])
