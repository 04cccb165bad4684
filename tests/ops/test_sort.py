"""sort / argsort: eager vs NumPy (stable, NaNs last, several keys), derivatives vs finite
differences, vmap vs a Python loop, jit vs eager, errors."""
import inspect

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import fgrad
from fgrad import lax
from fgrad import numpy as fnp

from tests.util import check_grads, check_vmap

SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5)


@st.composite
def operand_and_dimension(draw, elements=st.floats(-3, 3, width=32)):
    shape = draw(SHAPES)
    x = draw(hnp.arrays(np.float32, shape, elements=elements))
    return x, draw(st.integers(-len(shape), len(shape) - 1))


@settings(max_examples=40, deadline=None)
@given(operand_and_dimension(st.one_of(st.sampled_from([0.0, 1.0, np.nan, np.inf, -np.inf]),
                                       st.floats(-3, 3, width=32))))
def test_sort_and_argsort_match_numpy(case):
    x, dim = case
    np.testing.assert_array_equal(np.asarray(lax.sort(fnp.asarray(x), dim)), np.sort(x, axis=dim))
    got = np.asarray(lax.argsort(fnp.asarray(x), dim))
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, np.argsort(x, axis=dim, kind="stable"))


def test_argsort_is_stable_on_ties():
    x = np.array([2, 1, 2, 1, 0, 2], np.int32)
    np.testing.assert_array_equal(np.asarray(lax.argsort(fnp.asarray(x))), [4, 1, 3, 0, 2, 5])


def test_sort_with_two_keys_is_lexicographic():
    major = np.array([1, 0, 1, 0, 1], np.int32)
    minor = np.array([5., 3., 1., 4., 1.], np.float32)
    payload = np.arange(5, dtype=np.int32)
    outs = lax.sort([fnp.asarray(major), fnp.asarray(minor), fnp.asarray(payload)], num_keys=2)
    order = np.lexsort([minor, major])
    for got, want in zip(outs, (major, minor, payload)):
        np.testing.assert_array_equal(np.asarray(got), want[order])


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 3), st.integers(1, 5), st.data())
def test_sort_grads_match_finite_differences(rows, cols, data):
    # distinct values: the permutation is locally constant, so sort is differentiable there
    values = data.draw(st.permutations(list(range(rows * cols))))
    x = (np.array(values, np.float64).reshape(rows, cols) * 0.37 - 1.0)
    dim = data.draw(st.integers(0, 1))
    check_grads(lambda a: lax.sort(a, dim) * lax.sort(a, dim), (x,), order=2)


def test_sort_of_values_by_key_differentiates_the_payload():
    keys = fnp.asarray(np.array([3, 1, 2], np.int32))
    w = np.array([10., 20., 30.], np.float32)
    grad = fgrad.grad(lambda v: (lax.sort([keys, v])[1] * fnp.asarray(w)).sum())(
        fnp.asarray(np.array([1., 2., 3.], np.float32)))
    np.testing.assert_allclose(np.asarray(grad), [30., 10., 20.])


@settings(max_examples=15, deadline=None)
@given(operand_and_dimension(), st.sampled_from([0, 1, -1]))
def test_sort_vmap_matches_loop(case, in_axis):
    x, _ = case
    if x.ndim < 2 or in_axis >= x.ndim or x.shape[in_axis] == 0:
        return
    check_vmap(lambda a: lax.sort(a, 0), (fnp.asarray(x),), in_axes=in_axis)
    check_vmap(lambda a: lax.argsort(a, -1), (fnp.asarray(x),), in_axes=in_axis)


def test_sort_under_jit_matches_eager():
    x = np.random.default_rng(0).standard_normal((4, 7)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(fgrad.jit(lambda a: lax.argsort(a, 0))(fnp.asarray(x))),
                                  np.argsort(x, axis=0, kind="stable"))


def test_sort_errors_name_the_problem():
    with pytest.raises(ValueError, match="dimension 2 is out of range"):
        lax.sort(fnp.asarray(np.zeros((2, 2), np.float32)), 2)
    with pytest.raises(ValueError, match="rank >= 1"):
        lax.argsort(fnp.asarray(np.float32(1.0)))
    with pytest.raises(TypeError, match="share one shape"):
        lax.sort([fnp.asarray(np.zeros(2, np.float32)), fnp.asarray(np.zeros(3, np.float32))])


# --- JAX's signature: sort(operand, dimension=-1, is_stable=True, num_keys=1) --------------------

def test_sort_signature_is_jaxs():
    params = list(inspect.signature(lax.sort).parameters.items())
    assert [(n, p.default) for n, p in params[1:]] == [("dimension", -1), ("is_stable", True), ("num_keys", 1)]


def test_sort_is_stable_keyword_and_position():
    # JAX 0.10.2: sort([3, 1, nan, -0, 0, 1, -inf], is_stable=False) == [-inf, -0, 0, 1, 1, 3, nan]
    x = fnp.asarray(np.array([3., 1., np.nan, -0., 0., 1., -np.inf], np.float32))
    want = np.array([-np.inf, -0., 0., 1., 1., 3., np.nan], np.float32)
    for got in (lax.sort(x, is_stable=False), lax.sort(x, 0, False), lax.sort(x, -1, True)):
        np.testing.assert_array_equal(np.asarray(got), want)
    assert np.signbit(np.asarray(lax.sort(x, 0, False))[1])          # -0.0 before 0.0: input order kept
    # the third positional argument is is_stable, not num_keys: two operands, one key
    keys, values = fnp.asarray(np.array([2, 1, 2, 1, 0], np.int32)), fnp.arange(5.0)
    out = lax.sort((keys, values), 0, False)
    assert isinstance(out, tuple) and len(out) == 2
    np.testing.assert_array_equal(np.asarray(out[1]), [4., 1., 3., 0., 2.])
    out = lax.sort([values, keys], -1, False, 2)
    np.testing.assert_array_equal(np.asarray(out[0]), np.arange(5.0))


@settings(max_examples=20, deadline=None)
@given(operand_and_dimension(st.sampled_from([0.0, -0.0, 1.0, 2.0, np.nan, -np.inf])), st.booleans())
def test_unstable_sort_gives_numpys_order_under_jit_and_vmap(case, stable):
    x, dim = case
    payload = np.arange(x.size, dtype=np.int32).reshape(x.shape)
    f = fgrad.jit(lambda a, p: lax.sort((a, p), dim, is_stable=stable))
    keys, perm = f(fnp.asarray(x), fnp.asarray(payload))
    np.testing.assert_array_equal(np.asarray(keys), np.sort(x, axis=dim))
    # whatever order equal keys take, the payload is a permutation that sorts the keys
    assert sorted(np.asarray(perm).reshape(-1).tolist()) == list(range(x.size))
    np.testing.assert_array_equal(np.asarray(keys), x.reshape(-1)[np.asarray(perm).reshape(-1)].reshape(x.shape))
    if x.ndim >= 2 and x.shape[0]:
        batched = fgrad.vmap(lambda a: lax.sort(a, -1, is_stable=stable))(fnp.asarray(x))
        np.testing.assert_array_equal(np.asarray(batched), np.sort(x, axis=-1))
