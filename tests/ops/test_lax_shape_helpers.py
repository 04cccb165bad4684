"""jax.lax's split, tile, stack, unstack, collapse, broadcast_shapes/_to_rank/_like, empty,
stage, reciprocal, mulhi, reduce_xor and batch_matmul: against NumPy (hypothesis where it
fits) and exact integer arithmetic, jit (native), vmap vs a loop, grad vs finite differences,
and the errors JAX raises (types checked against jax 0.10.2)."""
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import fgrad
from fgrad import lax
from fgrad import numpy as fnp
from tests.util import check_grads, check_vmap


@pytest.fixture(autouse=True)
def native_only():
    with warnings.catch_warnings():
        warnings.simplefilter("error", fgrad.ReferencePathWarning)
        yield


X = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7


def test_split():
    parts = lax.split(X, (1, 0, 3), axis=2)
    for got, want in zip(parts, np.split(X, [1, 1], axis=2)):
        np.testing.assert_array_equal(got, want)
    assert [p.shape for p in lax.split(X, (2, 1), axis=-2)] == [(2, 2, 4), (2, 1, 4)]
    check_grads(lambda x: lax.split(x, (1, 3), 2), (X,), order=2)
    check_vmap(lambda x: lax.split(x, (2, 1), 1), (np.stack([X, -X]),))
    with pytest.raises(ValueError, match="sum"):
        lax.split(X, (2, 3), 2)
    with pytest.raises(ValueError, match="nonnegative"):
        lax.split(X, (-1, 5), 2)


@given(x=hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
                    elements=st.floats(-5, 5, width=32)), data=st.data())
def test_tile_against_numpy(x, data):
    reps = tuple(data.draw(st.lists(st.integers(0, 3), min_size=x.ndim, max_size=x.ndim)))
    np.testing.assert_array_equal(lax.tile(x, reps), np.tile(x, reps) if x.ndim else x)
    np.testing.assert_array_equal(fgrad.jit(lambda v: lax.tile(v, reps))(x), np.tile(x, reps) if x.ndim else x)


def test_tile_grad_vmap_errors():
    check_grads(lambda x: lax.tile(x, (2, 1, 3)), (X,), order=2)
    check_vmap(lambda x: lax.tile(x, (2, 3)), (X,))
    with pytest.raises(TypeError, match="reps length"):
        lax.tile(X, (2,))


def test_stack_unstack():
    np.testing.assert_array_equal(lax.stack([X, X + 1], axis=1), np.stack([X, X + 1], 1))
    np.testing.assert_array_equal(lax.stack([X, X + 1], axis=-1), np.stack([X, X + 1], -1))
    for got, want in zip(lax.unstack(X, 1), np.moveaxis(X, 1, 0)):
        np.testing.assert_array_equal(got, want)
    assert len(lax.unstack(X, -1)) == 4
    check_grads(lambda a, b: lax.stack([a, b], 2), (X, X * 2), order=2)
    check_grads(lambda a: lax.unstack(a, 1), (X,), order=1)
    check_vmap(lambda a: lax.unstack(a, 0), (X,))
    np.testing.assert_array_equal(fgrad.jit(lambda a: lax.stack(lax.unstack(a, 2)[::-1], 2))(X), X[..., ::-1])
    with pytest.raises(TypeError, match="same dtypes"):
        lax.stack([X, X.astype(np.int32)])
    with pytest.raises(ValueError, match="same shape"):
        lax.stack([X, X[0]])
    with pytest.raises(ValueError):
        lax.stack([])
    with pytest.raises(ValueError):
        lax.unstack(np.float32(1))


def test_collapse_and_broadcasts():
    assert lax.collapse(X, 1).shape == (2, 12)
    assert lax.collapse(X, 0, 2).shape == (6, 4)
    assert lax.collapse(X, -2, -1).shape == (2, 3, 4)
    np.testing.assert_array_equal(lax.collapse(X, 0, 2), X.reshape(6, 4))
    with pytest.raises(ValueError):
        lax.collapse(X, 2, 1)
    assert lax.broadcast_shapes((2, 1), (3,)) == (2, 3)
    assert lax.broadcast_shapes((5, 1, 0), (1, 7, 1)) == (5, 7, 0)
    with pytest.raises(ValueError, match="incompatible"):
        lax.broadcast_shapes((2, 1), (3, 2))
    assert lax.broadcast_to_rank(np.ones(3, np.float32), 3).shape == (1, 1, 3)
    assert lax.broadcast_to_rank(X, 1).shape == X.shape
    np.testing.assert_array_equal(lax.broadcast_like(X[0, 0], X), np.broadcast_to(X[0, 0], X.shape))
    with pytest.raises(ValueError):
        lax.broadcast_like(np.ones(3, np.float32), np.ones((3, 2), np.float32))
    e = lax.empty((2, 3), np.int32)
    assert e.shape == (2, 3) and e.dtype == np.int32
    s = lax.stage(2.0)
    assert isinstance(s, fgrad.Array) and s.dtype == np.float32 and s.weak_type
    assert fgrad.grad(lambda x: lax.stage(x) * 3)(1.0) == 3


def test_reciprocal():
    x = np.array([0.5, -4, 3], np.float32)
    np.testing.assert_allclose(lax.reciprocal(x), 1 / x)
    check_grads(lax.reciprocal, (x,), order=2)
    with pytest.raises(TypeError):
        lax.reciprocal(np.int32(3))


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32])
def test_mulhi_exact(dtype):
    info, rng = np.iinfo(dtype), np.random.default_rng(1)
    a = rng.integers(info.min, info.max, 200, dtype=dtype, endpoint=True)
    b = rng.integers(info.min, info.max, 200, dtype=dtype, endpoint=True)
    a[:4], b[:4] = [info.min, info.max, info.min, -1 if info.min else 0], [info.min, info.max, info.max, info.min]
    bits = 8 * np.dtype(dtype).itemsize
    want = np.array([(int(p) * int(q)) >> bits for p, q in zip(a, b)], np.int64).astype(dtype)
    np.testing.assert_array_equal(lax.mulhi(a, b), want)
    np.testing.assert_array_equal(fgrad.jit(lax.mulhi)(a, b), want)
    np.testing.assert_array_equal(fgrad.vmap(lax.mulhi)(a.reshape(20, 10), b.reshape(20, 10)), want.reshape(20, 10))


def test_mulhi_values_and_errors():
    assert int(lax.mulhi(np.int32(-7), np.int32(123456789))) == -1       # jax 0.10.2
    assert int(lax.mulhi(np.uint32(4000000000), np.uint32(4000000000))) == 3725290298
    assert int(lax.mulhi(np.int8(-100), np.int8(100))) == -40
    with pytest.raises(TypeError, match="integer"):
        lax.mulhi(np.float32(4), np.float32(4))
    with pytest.raises(TypeError, match="same dtypes"):
        lax.mulhi(np.int32(4), np.uint32(4))


@given(x=hnp.arrays(st.sampled_from([np.int32, np.uint8, np.int16, np.bool_]),
                    hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=6)), data=st.data())
def test_reduce_xor_against_numpy(x, data):
    axes = data.draw(st.lists(st.integers(0, x.ndim - 1), unique=True, max_size=x.ndim))
    want = np.bitwise_xor.reduce(x, axis=tuple(axes)) if axes else x
    np.testing.assert_array_equal(lax.reduce_xor(x, axes), want)
    np.testing.assert_array_equal(fgrad.jit(lambda v: lax.reduce_xor(v, axes))(x), want)


def test_reduce_xor_vmap_errors():
    x = np.arange(30, dtype=np.int32).reshape(5, 6) * 7
    check_vmap(lambda v: lax.reduce_xor(v, (0,)), (np.stack([x, x + 1]),))
    with pytest.raises(TypeError, match="bool or int"):
        lax.reduce_xor(np.ones(3, np.float32), (0,))


def test_batch_matmul():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 3, 4)).astype(np.float32), rng.standard_normal((2, 4, 5)).astype(np.float32)
    np.testing.assert_allclose(lax.batch_matmul(a, b), a @ b, rtol=1e-5)
    np.testing.assert_allclose(fgrad.jit(lax.batch_matmul)(a, b), a @ b, rtol=1e-5)
    np.testing.assert_allclose(lax.batch_matmul(a[0], b[0]), a[0] @ b[0], rtol=1e-5)
    check_grads(lax.batch_matmul, (a, b), order=2)
    check_vmap(lax.batch_matmul, (a, b))
    with pytest.raises(ValueError, match="same ndim"):
        lax.batch_matmul(a, b[0])
    with pytest.raises(TypeError):
        lax.batch_matmul(a, b[:1])
    assert fnp.asarray(lax.batch_matmul(a, b, precision=lax.Precision.HIGHEST)).shape == (2, 3, 5)


X8 = np.array([[3, 1, 4, 1, 5, 9, 2, 6], [2, 7, 1, 8, 2, 8, 1, 8]], np.float32)


def test_approx_k_match_recorded_jax():   # values and indices recorded from jax 0.10.2 (CPU: exact)
    v, i = lax.approx_max_k(X8, 3)
    np.testing.assert_array_equal(v, [[9, 6, 5], [8, 8, 8]])
    np.testing.assert_array_equal(i, [[5, 7, 4], [3, 5, 7]])
    v, i = lax.approx_min_k(X8, 3, recall_target=0.5)
    np.testing.assert_array_equal(v, [[1, 1, 2], [1, 1, 2]])
    np.testing.assert_array_equal(i, [[1, 3, 6], [2, 6, 0]])
    v, i = lax.approx_max_k(X8, 2, reduction_dimension=0)
    np.testing.assert_array_equal(i, [[0, 1, 0, 1, 0, 0, 0, 1], [1, 0, 1, 0, 1, 1, 1, 0]])
    v, i = lax.approx_max_k(np.array([1, np.nan, 3], np.float32), 2)
    assert np.isnan(np.asarray(v)[0]) and list(np.asarray(i)) == [1, 2]
    assert i.dtype == np.int32


@given(x=hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6),
                    elements=st.floats(-100, 100, width=32)), data=st.data())
def test_approx_k_against_numpy(x, data):
    dim = data.draw(st.integers(0, x.ndim - 1))
    k = data.draw(st.integers(1, x.shape[dim]))
    order = np.argsort(-x, axis=dim, kind="stable")
    v, i = lax.approx_max_k(x, k, reduction_dimension=dim)
    np.testing.assert_array_equal(v, np.take_along_axis(x, np.take(order, range(k), axis=dim), dim))
    v, i = fgrad.jit(lambda a: lax.approx_min_k(a, k, reduction_dimension=dim))(x)
    np.testing.assert_array_equal(i, np.take(np.argsort(x, axis=dim, kind="stable"), range(k), axis=dim))


def test_approx_k_grad_vmap_errors():
    check_grads(lambda a: lax.approx_max_k(a, 2)[0], (X8 + np.arange(8) * 0.01,), order=1)
    check_grads(lambda a: lax.approx_min_k(a, 2, reduction_dimension=0)[0], (X8 + np.arange(8) * 0.01,), order=1)
    check_vmap(lambda a: lax.approx_min_k(a, 3), (X8,))
    with pytest.raises(ValueError, match="floating"):
        lax.approx_max_k(X8.astype(np.int32), 2)
    with pytest.raises(ValueError, match="k must"):
        lax.approx_max_k(X8, 9)
    with pytest.raises(ValueError, match="recall_target"):
        lax.approx_max_k(X8, 2, recall_target=1.5)
