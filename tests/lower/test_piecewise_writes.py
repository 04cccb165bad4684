"""Kernels writing concatenations and one-dimension pads (and pointwise functions of them)
loop by loop over the pieces (``schedule.PiecewiseValue``): against NumPy and eager, and
with reads of the same value at other indices, which must still pick their piece."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fgrad
import fgrad.numpy as fnp
from fgrad.compile.pipeline import lower_program
from fgrad.lower import kernel as K


def _program(f, *args):
    closed = fgrad.make_jaxpr(f)(*args)
    return lower_program(closed, "piecewise", "cpu")


def _selects_in_stores(program) -> int:
    """How many selects the programs' stored values contain."""
    count = 0
    for step in K.walk_steps(program.body):
        if isinstance(step, K.Call):
            for s in K.walk_stmts(step.kernel.body):
                if isinstance(s, K.Store):
                    count += sum(1 for n in K.walk_expr(s.value) if isinstance(n, K.Op) and n.op == "select")
    return count


@settings(deadline=None)
@given(st.integers(1, 3), st.data())
def test_concatenations_under_pointwise_ops_match_numpy(ndim, data):
    shape = data.draw(st.lists(st.integers(1, 5), min_size=ndim, max_size=ndim))
    axis = data.draw(st.integers(0, ndim - 1))
    widths = data.draw(st.lists(st.integers(0, 4), min_size=1, max_size=4))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    parts = []
    for w in widths:
        s = list(shape)
        s[axis] = w
        parts.append(rng.standard_normal(s).astype(np.float32))
    if sum(widths) == 0:
        parts[0] = rng.standard_normal(shape).astype(np.float32)
    other = rng.standard_normal(np.concatenate(parts, axis).shape).astype(np.float32)

    def f(other, *parts):
        return fnp.tanh(fnp.concatenate(parts, axis=axis)) * 2.0 + other

    want = np.tanh(np.concatenate(parts, axis)) * 2 + other
    np.testing.assert_allclose(fgrad.jit(f)(other, *parts), want, rtol=1e-5, atol=1e-6)


@settings(deadline=None)
@given(st.integers(1, 3), st.data())
def test_sums_of_one_dimension_pads_match_numpy_and_their_gradients_eager(ndim, data):
    """The gradient of slicing an array in pieces is a sum of pads, one per piece."""
    shape = data.draw(st.lists(st.integers(1, 6), min_size=ndim, max_size=ndim))
    axis = data.draw(st.integers(0, ndim - 1))
    cuts = sorted(data.draw(st.lists(st.integers(0, shape[axis]), min_size=1, max_size=3)))
    bounds = [0, *cuts, shape[axis]]
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x = rng.standard_normal(shape).astype(np.float32)

    def loss(x):
        total = 0.0
        for k, (a, b) in enumerate(zip(bounds, bounds[1:])):
            if b > a:       # a static slice, whose transpose is a pad
                piece = x[tuple(slice(a, b) if d == axis else slice(None) for d in range(ndim))]
                total = total + fnp.sum(fnp.sin(piece) * (k + 1))
        return total

    got = fgrad.jit(fgrad.grad(loss))(x)
    weights = np.zeros(shape[axis], np.float32)
    for k, (a, b) in enumerate(zip(bounds, bounds[1:])):
        weights[a:b] += k + 1
    expand = [1] * ndim
    expand[axis] = shape[axis]
    np.testing.assert_allclose(got, np.cos(x) * weights.reshape(expand), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got, fgrad.grad(loss)(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("lo,hi", [(0, 3), (2, 0), (1, 4)])
def test_pads_of_one_dimension_are_written_without_selects(lo, hi):
    """Along an outer dimension any split is taken; along the innermost one, only ranges of at
    least ``PIECE_MIN_INNER`` elements (narrower ones stay one vector loop with selects)."""
    x = np.arange(12, dtype=np.float32).reshape(3, 4)

    def outer(x):
        return fnp.pad(x, ((lo, hi), (0, 0)), constant_values=-1.0) * 3.0

    def inner(x):
        return fnp.pad(x, ((0, 0), (lo, hi)), constant_values=-1.0) * 3.0

    np.testing.assert_array_equal(fgrad.jit(outer)(x), np.pad(x, ((lo, hi), (0, 0)), constant_values=-1) * 3)
    np.testing.assert_array_equal(fgrad.jit(inner)(x), np.pad(x, ((0, 0), (lo, hi)), constant_values=-1) * 3)
    assert _selects_in_stores(_program(outer, x)) == 0
    assert _selects_in_stores(_program(inner, x)) > 0
    wide = np.arange(48, dtype=np.float32).reshape(3, 16)

    def inner_wide(x):
        return fnp.pad(x, ((0, 0), (8 * bool(lo), 8 * bool(hi))), constant_values=-1.0) * 3.0

    np.testing.assert_array_equal(fgrad.jit(inner_wide)(wide),
                                  np.pad(wide, ((0, 0), (8 * bool(lo), 8 * bool(hi))), constant_values=-1) * 3)
    assert _selects_in_stores(_program(inner_wide, wide)) == 0


def test_split_gradient_is_written_without_selects():
    qkv = np.random.default_rng(0).standard_normal((2, 8, 48)).astype(np.float32)

    def loss(qkv):
        q, k, v = fnp.split(qkv, 3, axis=-1)
        return fnp.sum(q * k + v)

    np.testing.assert_allclose(fgrad.jit(fgrad.grad(loss))(qkv), fgrad.grad(loss)(qkv), rtol=1e-6)
    assert _selects_in_stores(_program(fgrad.grad(loss), qkv)) == 0


def test_reads_at_other_indices_still_pick_their_piece():
    """A concatenation added to its own reverse along the split axis: the reversed read is at
    another index, so it must not take the range's piece."""
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = 100 + np.arange(10, dtype=np.float32).reshape(2, 5)

    def f(a, b):
        c = fnp.concatenate([a, b], axis=1)
        return c + c[:, ::-1] * 10.0

    c = np.concatenate([a, b], 1)
    np.testing.assert_array_equal(fgrad.jit(f)(a, b), c + c[:, ::-1] * 10)


def test_pads_with_interior_or_negative_padding_keep_the_general_form():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    from fgrad import lax

    def f(x):
        return lax.pad(x, np.float32(0), ((0, 0, 0), (1, -1, 1))) + 1.0

    want = np.zeros((3, 8), np.float32)
    want[:, 1:8:2] = x
    want = want[:, :7] + 1
    np.testing.assert_array_equal(fgrad.jit(f)(x), want)
