"""JAX's windowed gather and scatter (GatherDimensionNumbers / ScatterDimensionNumbers),
scatter_sub, scatter_apply and index_take: values recorded from jax.lax 0.10.2
(data/jax_lax_slicing.npz, made by running ``cases`` below with jax.lax), every mode; jit and
vmap against eager; grad against finite differences; JAX's errors."""
import pathlib

import numpy as np
import pytest

import fgrad
from fgrad import lax
from tests.util import check_grads, check_vmap

JAX = np.load(pathlib.Path(__file__).parent / "data" / "jax_lax_slicing.npz")
G, S = lax.GatherDimensionNumbers, lax.ScatterDimensionNumbers
X = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
IDX = np.array([[[2], [0]], [[1], [5]]], np.int32)
IDX2 = np.array([[1, 3], [0, 0], [1, -2], [0, 2]], np.int32)
GDN_BATCH = G(offset_dims=(1,), collapsed_slice_dims=(1,), start_index_map=(1,), operand_batching_dims=(0,),
              start_indices_batching_dims=(0,))
GDN_WIN = G(offset_dims=(1, 2), collapsed_slice_dims=(0,), start_index_map=(0, 2))
SDN = S(update_window_dims=(1, 2), inserted_window_dims=(0,), scatter_dims_to_operand_dims=(0, 2))
SDN1 = S(update_window_dims=(), inserted_window_dims=(0,), scatter_dims_to_operand_dims=(0,))
UPD = np.arange(1, 17, dtype=np.float32).reshape(4, 2, 2)
SCATTERS = ["scatter", "scatter_add", "scatter_sub", "scatter_mul", "scatter_min", "scatter_max"]


def cases(l):
    out = {"g_batch": l.gather(X, IDX, GDN_BATCH, (1, 1, 4))}
    for m in [None, "clip", "fill", "promise_in_bounds"]:
        out[f"g_win_{m}"] = l.gather(X, IDX2, GDN_WIN, (1, 2, 2), mode=m)
    out["g_win_fill7"] = l.gather(X, IDX2, GDN_WIN, (1, 2, 2), mode="fill", fill_value=7)
    out["g_int_fill"] = l.gather(X.astype(np.int32), IDX2, GDN_WIN, (1, 2, 2), mode="fill")
    out["g_u_fill"] = l.gather(X.astype(np.uint8), IDX2, GDN_WIN, (1, 2, 2), mode="fill")
    dn3 = G(offset_dims=(0,), collapsed_slice_dims=(0, 1), start_index_map=(0, 1))
    out["g_front"] = l.gather(X, np.array([[[1, 2]], [[0, 1]]], np.int32), dn3, (1, 1, 3))
    for name in SCATTERS:
        for m in [None, "clip", "promise_in_bounds"]:
            out[f"{name}_{m}"] = getattr(l, name)(X, IDX2, UPD, SDN, mode=m)
    sdnb = S(update_window_dims=(1,), inserted_window_dims=(1,), scatter_dims_to_operand_dims=(1,),
             operand_batching_dims=(0,), scatter_indices_batching_dims=(0,))
    out["s_batch"] = l.scatter_add(X, IDX, np.ones((2, 4, 2), np.float32), sdnb)
    where = np.array([[1], [1], [3], [9]], np.int32)
    out["apply"] = l.scatter_apply(np.arange(5.0, dtype=np.float32), where, lambda v: v * 10, SDN1, update_shape=(4,))
    out["apply_clip"] = l.scatter_apply(np.arange(5.0, dtype=np.float32), where, lambda v: v * 10, SDN1,
                                        update_shape=(4,), mode="clip")
    src = np.arange(12, dtype=np.int32).reshape(3, 4)
    out["index_take"] = l.index_take(src, (np.array([0, 1, -1], np.int32), np.array([2, 7, -5], np.int32)), (0, 1))
    out["index_take1"] = l.index_take(src, (np.array([0, 2, -1], np.int32),), (1,))
    return {k: np.asarray(v) for k, v in out.items()}


RESULTS = cases(lax)


@pytest.mark.parametrize("name", sorted(JAX.files))
def test_matches_recorded_jax(name):
    want, got = JAX[name], RESULTS[name]
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("mode", ["clip", "fill"])
def test_gather_jit_vmap_grad(mode):
    f = lambda x: lax.gather(x, IDX2, GDN_WIN, (1, 2, 2), mode=mode, fill_value=0.0)
    np.testing.assert_array_equal(fgrad.jit(f)(X), f(X))
    check_vmap(f, (np.stack([X, X + 1]),))
    check_grads(f, (X,), order=1)
    # the index operand batched too
    g = lambda i: lax.gather(X, i, GDN_WIN, (1, 2, 2), mode=mode, fill_value=0.0)
    check_vmap(g, (np.stack([IDX2, IDX2[::-1]]),))


@pytest.mark.parametrize("name", ["scatter_add", "scatter_sub", "scatter_mul", "scatter"])
@pytest.mark.parametrize("mode", [None, "clip"])
def test_scatter_jit_vmap_grad(name, mode):
    unique = np.array([[1, 2], [0, 0], [1, 0], [0, 2]], np.int32)  # distinct windows: set's derivative is defined
    f = lambda x, u: getattr(lax, name)(x, unique, u, SDN, mode=mode)
    np.testing.assert_allclose(fgrad.jit(f)(X, UPD), f(X, UPD))
    check_vmap(f, (np.stack([X, X + 1]), np.stack([UPD, -UPD])))
    check_grads(f, (X, UPD), order=1)


def test_gather_batching_dims_grad_and_jit():
    f = lambda x: lax.gather(x, IDX, GDN_BATCH, (1, 1, 4))
    np.testing.assert_array_equal(fgrad.jit(f)(X), f(X))
    check_grads(f, (X,), order=2)


def test_scatter_apply_jit_vmap():
    where = np.array([[1], [1], [3], [9]], np.int32)
    f = lambda x: lax.scatter_apply(x, where, lambda v: v * 2 + 1, SDN1, update_shape=(4,))
    x = np.arange(5.0, dtype=np.float32)
    np.testing.assert_array_equal(f(x), [0, 7, 2, 7, 4])   # index 1 twice: applied twice, as XLA
    np.testing.assert_array_equal(fgrad.jit(f)(x), f(x))
    np.testing.assert_array_equal(fgrad.vmap(f)(np.stack([x, -x])), np.stack([f(x), f(-x)]))


def test_point_forms_still_work():
    x = np.arange(6.0, dtype=np.float32)
    np.testing.assert_array_equal(lax.gather(x, np.array([[4], [9]]), (0,)), [4, 5])
    np.testing.assert_array_equal(lax.scatter_sub(x, np.array([[1]]), np.ones(1, np.float32), (0,)),
                                  [0, 0, 2, 3, 4, 5])


def test_modes():
    assert lax.GatherScatterMode.from_any("drop") is lax.GatherScatterMode.FILL_OR_DROP
    assert lax.GatherScatterMode.from_any(None) is lax.GatherScatterMode.FILL_OR_DROP
    with pytest.raises(ValueError, match="Unknown gather mode"):
        lax.GatherScatterMode.from_any("wrap")
    with pytest.raises(NotImplementedError, match="ONE_HOT"):
        lax.gather(X, IDX2, GDN_WIN, (1, 2, 2), mode="one_hot")


@pytest.mark.parametrize("call, exc", [
    (lambda: lax.gather(X, IDX2, GDN_WIN, (1, 2)), TypeError),                          # slice_sizes rank
    (lambda: lax.gather(X, IDX2, GDN_WIN, (2, 2, 2)), TypeError),                       # collapsed size 2
    (lambda: lax.gather(X, IDX2.astype(np.float32), GDN_WIN, (1, 2, 2)), ValueError),   # float indices
    (lambda: lax.gather(X, IDX2[:, :1], GDN_WIN, (1, 2, 2)), TypeError),                # index vector length
    (lambda: lax.gather(X, IDX2, GDN_WIN), TypeError),                                  # no slice_sizes
    (lambda: lax.scatter_add(X, IDX2, UPD[:, 0], SDN), TypeError),                     # updates window rank
    (lambda: lax.scatter_add(X, IDX2, UPD[:3], SDN), TypeError),                        # updates batch
    (lambda: lax.scatter_add(X, IDX2, np.ones((4, 2, 9), np.float32), SDN), TypeError),  # window too big
])
def test_errors(call, exc):
    with pytest.raises(exc):
        call()
