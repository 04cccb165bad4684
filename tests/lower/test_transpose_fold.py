"""``transpose(dot_general(a, b))`` lowered as ``dot_general(b, a)`` (``fgrad.lower.transpose_fold``):
which products fold, and that jit gives eager's results with and without the fold."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import fgrad
import fgrad.numpy as fnp
from fgrad import lax
from fgrad.lower.transpose_fold import fold_transposed_products


def _primitives(jaxpr):
    return [eqn.primitive.name for eqn in jaxpr.eqns]


def _rand(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_weight_gradient_of_x_times_w_transposed_folds():
    """d/dw sum((x @ w.T)^2) is a product and a transpose; folded, one product remains, with
    the operands exchanged, and jit's gradient is eager's."""
    def loss(w, x):
        return fnp.sum((x @ w.T) ** 2)
    w, x = _rand((5, 7), 0), _rand((11, 7), 1)
    jaxpr = fgrad.make_jaxpr(fgrad.grad(loss))(w, x).jaxpr
    folded = fold_transposed_products(jaxpr)
    assert _primitives(folded).count("transpose") < _primitives(jaxpr).count("transpose")
    assert _primitives(folded).count("dot_general") == _primitives(jaxpr).count("dot_general")
    got = fgrad.jit(fgrad.grad(loss))(w, x)
    np.testing.assert_allclose(np.asarray(got), 2 * ((x @ w.T).T @ x), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("permutation,folds", [((1, 0), True), ((0, 1), False)])
def test_only_a_transpose_exchanging_the_operands_free_dims_folds(permutation, folds):
    f = lambda a, b: fnp.transpose(a @ b, permutation) * 2.0
    a, b = _rand((3, 4), 2), _rand((4, 6), 3)
    jaxpr = fgrad.make_jaxpr(f)(a, b).jaxpr
    assert (fold_transposed_products(jaxpr) is not jaxpr) == folds
    np.testing.assert_allclose(np.asarray(fgrad.jit(f)(a, b)), np.transpose(a @ b, permutation) * 2,
                               rtol=1e-5, atol=1e-5)


def test_a_product_read_elsewhere_too_is_not_folded():
    """The product is also an output: it is stored in its own layout, and the transpose read from it."""
    f = lambda a, b: (a @ b, (a @ b).T + 1.0)
    g = lambda a, b: (lambda p: (p, p.T + 1.0))(a @ b)
    a, b = _rand((3, 4), 4), _rand((4, 6), 5)
    jaxpr = fgrad.make_jaxpr(g)(a, b).jaxpr
    assert fold_transposed_products(jaxpr) is jaxpr
    for fn in (f, g):
        p, t = fgrad.jit(fn)(a, b)
        np.testing.assert_allclose(np.asarray(p), a @ b, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(t), (a @ b).T + 1, rtol=1e-5, atol=1e-5)


@given(st.integers(1, 3), st.integers(1, 9), st.integers(1, 9), st.integers(1, 9), st.integers(0, 3))
def test_batched_products_fold_to_eager_results(batch, m, n, k, seed):
    """(batch, m, k) x (batch, k, n) -> transpose to (batch, n, m): folds, and matches NumPy."""
    a, b = _rand((batch, m, k), seed), _rand((batch, k, n), seed + 1)
    dims = (((2,), (1,)), ((0,), (0,)))
    f = lambda a, b: fnp.transpose(lax.dot_general(a, b, dims), (0, 2, 1)) - 1.0
    jaxpr = fgrad.make_jaxpr(f)(a, b).jaxpr
    assert "transpose" not in _primitives(fold_transposed_products(jaxpr))
    np.testing.assert_allclose(np.asarray(fgrad.jit(f)(a, b)), np.transpose(a @ b, (0, 2, 1)) - 1,
                               rtol=1e-4, atol=1e-4)


def _attention_output(p, v):
    """(batch, heads, tokens, tokens) x (batch, heads, tokens, dim), heads merged back:
    (batch, tokens, heads, dim)."""
    out = lax.dot_general(p, v, (((3,), (2,)), ((0, 1), (0, 1))))
    return fnp.transpose(out, (0, 2, 1, 3)).reshape(p.shape[0], p.shape[2], -1) * 0.5


def test_heads_merged_back_are_stored_by_the_gemm_in_place():
    """A transpose that keeps the last dimension last folds into its product as an
    out_permutation where the CPU templates compute it; jit matches NumPy either way."""
    p, v = _rand((2, 3, 17, 17), 6), _rand((2, 3, 17, 8), 7)
    jaxpr = fgrad.make_jaxpr(_attention_output)(p, v).jaxpr
    assert fold_transposed_products(jaxpr) is jaxpr                       # no template: kept
    folded = fold_transposed_products(jaxpr, lambda eqn: True)
    assert "transpose" not in _primitives(folded)
    (product,) = [eqn for eqn in folded.eqns if eqn.primitive.name == "dot_general"]
    assert product.params["out_permutation"] == (0, 2, 1, 3)
    want = np.transpose(p @ v, (0, 2, 1, 3)).reshape(2, 17, 24) * 0.5
    np.testing.assert_allclose(np.asarray(fgrad.jit(_attention_output)(p, v)), want, rtol=1e-4, atol=1e-4)
    grads = fgrad.jit(fgrad.grad(lambda p, v: fnp.sum(_attention_output(p, v) ** 2), argnums=(0, 1)))(p, v)
    eager = fgrad.grad(lambda p, v: fnp.sum(_attention_output(p, v) ** 2), argnums=(0, 1))(p, v)
    for g, e in zip(grads, eager):
        np.testing.assert_allclose(np.asarray(g), np.asarray(e), rtol=1e-4, atol=1e-4)


def test_a_transpose_moving_the_last_dimension_is_not_folded_into_the_store():
    p, v = _rand((2, 3, 5, 5), 8), _rand((2, 3, 5, 4), 9)
    f = lambda p, v: fnp.transpose(lax.dot_general(p, v, (((3,), (2,)), ((0, 1), (0, 1)))), (0, 3, 1, 2)) + 1.0
    jaxpr = fgrad.make_jaxpr(f)(p, v).jaxpr
    assert fold_transposed_products(jaxpr, lambda eqn: True) is jaxpr
    np.testing.assert_allclose(np.asarray(fgrad.jit(f)(p, v)), np.transpose(p @ v, (0, 3, 1, 2)) + 1,
                               rtol=1e-4, atol=1e-4)


def test_heads_merged_and_reshaped_feed_the_next_matmul_in_place():
    """Attention's output, stored with its heads merged back and reshaped to (tokens, features),
    is a row-major A: the next matmul reads it where it lies (no pack_a), and jit matches NumPy."""
    from fgrad.lower import kernel as K
    from fgrad.lower.schedule import lower_program
    from fgrad.transforms.jit import closure_convert
    p, v, w = _rand((2, 3, 64, 64), 10), _rand((2, 3, 64, 32), 11), _rand((96, 40), 12)

    def f(p, v, w):
        out = lax.dot_general(p, v, (((3,), (2,)), ((0, 1), (0, 1))))
        return fnp.transpose(out, (0, 2, 1, 3)).reshape(2, 64, 96) @ w
    program = lower_program(closure_convert(fgrad.make_jaxpr(f)(p, v, w))[0])
    names = [k.name for k in K.kernels_of(program)]
    assert len([n for n in names if n.endswith("_gemm")]) == 2 and not [n for n in names if n.endswith("_pack_a")]
    want = np.transpose(p @ v, (0, 2, 1, 3)).reshape(2, 64, 96) @ w
    np.testing.assert_allclose(np.asarray(fgrad.jit(f)(p, v, w)), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape", [(3, 4, 5), (2, 3, 16, 32)])
def test_a_folded_transpose_that_is_the_programs_output(shape):
    """The folded product writes the program's output buffer directly (exchanged operands for a
    matrix product, an out_permutation for merged heads)."""
    if len(shape) == 3:
        m, k, n = shape
        a, b = _rand((m, k), 13), _rand((k, n), 14)
        f, want = (lambda a, b: (a @ b).T), (a @ b).T
    else:
        a, b = _rand(shape[:3] + (shape[2],), 13), _rand(shape, 14)
        f = lambda a, b: fnp.transpose(lax.dot_general(a, b, (((3,), (2,)), ((0, 1), (0, 1)))), (0, 2, 1, 3))
        want = np.transpose(a @ b, (0, 2, 1, 3))
    np.testing.assert_allclose(np.asarray(fgrad.jit(f)(a, b)), want, rtol=1e-4, atol=1e-4)
