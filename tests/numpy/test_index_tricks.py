"""fgrad.numpy index tricks and construction (fgrad/numpy/_index_tricks.py) vs NumPy, with JAX's
answers (recorded from JAX 0.10.2) where they differ; jit (native path asserted) vs eager,
grad vs finite differences, vmap vs a loop."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import fgrad
from fgrad import numpy as fnp
from fgrad.compile import pipeline

from np_helpers import arrays, assert_matches, nonempty_shapes
from tests.util import check_grads, check_jit_matches_eager, check_vmap, natively

pytestmark = pytest.mark.filterwarnings("error::fgrad.ReferencePathWarning")

rng = np.random.default_rng(1)
A = rng.standard_normal((3, 4, 5)).astype(np.float32)
M = rng.standard_normal((4, 4)).astype(np.float32)
I32 = np.array([12, -8, 0, 0, 270], np.int32)




def assert_all_match(got, want, **kw):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert_matches(g, w, **kw)


def numpy_updated(update, base, *args, **kwargs):
    """NumPy's in-place ``update`` applied to a copy of ``base``, returned."""
    out = np.array(base)
    update(out, *args, **kwargs)
    return out


# --- index arrays ----------------------------------------------------------------------------------

def test_index_helpers_match_numpy():
    assert_matches(fnp.indices((2, 3)), np.indices((2, 3)))
    assert_all_match(fnp.indices((2, 3, 1), sparse=True), np.indices((2, 3, 1), sparse=True))
    assert_matches(fnp.indices((2, 3), dtype=fnp.float32), np.indices((2, 3), dtype=np.float32))
    for k in (-1, 0, 2):
        assert_all_match(fnp.tril_indices(4, k, 3), np.tril_indices(4, k, 3))
        assert_all_match(fnp.triu_indices(4, k), np.triu_indices(4, k))
        assert_all_match(fnp.tril_indices_from(np.ones((3, 5)), k), np.tril_indices_from(np.ones((3, 5)), k))
        assert_all_match(fnp.triu_indices_from(np.ones((3, 5)), k), np.triu_indices_from(np.ones((3, 5)), k))
        assert_all_match(fnp.mask_indices(3, fnp.triu, k), np.mask_indices(3, np.triu, k))
    assert_all_match(fnp.diag_indices(3, 3), np.diag_indices(3, 3))
    assert_all_match(fnp.diag_indices_from(np.ones((3, 3, 3))), np.diag_indices_from(np.ones((3, 3, 3))))
    with pytest.raises(ValueError, match="all sides equal"):
        fnp.diag_indices_from(np.ones((2, 3)))


@given(st.lists(st.integers(1, 4), min_size=1, max_size=3), st.data())
def test_unravel_and_ravel_multi_index_round_trip(dims, data):
    size = int(np.prod(dims))
    flat = np.array(data.draw(st.lists(st.integers(0, size - 1), min_size=1, max_size=6)), np.int32)
    assert_all_match(fnp.unravel_index(flat, dims), [c.astype(np.int32) for c in np.unravel_index(flat, dims)])
    coords = np.unravel_index(flat, dims)
    for order in ("C", "F"):
        want = np.ravel_multi_index(coords, dims, order=order).astype(np.int32)
        assert_matches(fnp.ravel_multi_index([c.astype(np.int32) for c in coords], dims, order=order), want)


def test_unravel_and_ravel_out_of_range_as_jax():
    # JAX 0.10.2: unravel_index([-1, 13, -13, 5], (3, 4)) -> ([2, 2, 0, 1], [3, 3, 0, 1])
    got = fnp.unravel_index(np.array([-1, 13, -13, 5], np.int32), (3, 4))
    assert_all_match(got, [np.array([2, 2, 0, 1], np.int32), np.array([3, 3, 0, 1], np.int32)])
    idx = (np.array([0, 2, 5], np.int32), np.array([3, -1, 1], np.int32))
    assert_matches(fnp.ravel_multi_index(idx, (3, 4), mode="clip"), np.ravel_multi_index(idx, (3, 4), mode="clip"),
                   dtype=np.int32)
    assert_matches(fnp.ravel_multi_index(idx, (3, 4), mode="wrap"), np.ravel_multi_index(idx, (3, 4), mode="wrap"),
                   dtype=np.int32)
    with pytest.raises(ValueError, match="invalid entry"):
        fnp.ravel_multi_index(idx, (3, 4))
    with pytest.raises(fgrad.ConcretizationError, match="mode='raise'"):
        fgrad.jit(lambda i: fnp.ravel_multi_index((i, i), (3, 4)))(np.array([1], np.int32))


def test_ix_grids_and_concatenators_match_numpy():
    rows, cols = np.array([0, 2]), np.array([True, False, True, True])
    assert_matches(A[fnp.ix_(rows, cols) + (0,)], A[np.ix_(rows, cols) + (0,)])
    assert_matches(fnp.mgrid[0:3, 1:5:2], np.mgrid[0:3, 1:5:2])
    assert_matches(fnp.mgrid[0:1:5j], np.mgrid[0:1:5j].astype(np.float32))
    assert_matches(fnp.mgrid[0:1:3j, 0:4], np.mgrid[0:1:3j, 0:4].astype(np.float32))
    assert_all_match(fnp.ogrid[0:3, 1:5:2], np.ogrid[0:3, 1:5:2])
    assert_matches(fnp.r_[np.array([1, 2]), 0, 3:6], np.r_[np.array([1, 2]), 0, 3:6])
    assert_matches(fnp.r_[0:1:5j, np.array([7.0])], np.r_[0:1:5j, np.array([7.0])].astype(np.float32))
    assert_matches(fnp.r_["0,2", np.array([1, 2]), np.array([3, 4])], np.r_["0,2", [1, 2], [3, 4]])
    assert_matches(fnp.r_["1,2,0", np.array([1, 2]), np.array([3, 4])], np.r_["1,2,0", [1, 2], [3, 4]])
    assert_matches(fnp.r_["-1", M, M], np.r_["-1", M, M])
    assert_matches(fnp.c_[np.array([1, 2]), np.array([3, 4])], np.c_[[1, 2], [3, 4]])
    assert_matches(fnp.c_[M, np.arange(4.0)], np.c_[M, np.arange(4.0)].astype(np.float32))
    with pytest.raises(ValueError, match="matrix directives"):
        fnp.r_["r", [1, 2]]


# --- selection --------------------------------------------------------------------------------------

@given(arrays(np.float32, (9,), -3, 3))
def test_select_and_piecewise_match_numpy(x):
    assert_matches(fnp.select([x < 0, x > 1], [x * 2, x * x], default=-1.0),
                   np.select([x < 0, x > 1], [x * 2, x * x], default=-1.0))
    funcs = [lambda v: -v, lambda v: v * 3, 7.0]
    assert_matches(fnp.piecewise(x, [x < 0, x > 1], funcs), np.piecewise(x, [x < 0, x > 1], funcs))
    assert_matches(fnp.piecewise(x, [x < 0, x > -1], [1.0, lambda v: v + 1]),
                   np.piecewise(x, [x < 0, x > -1], [1.0, lambda v: v + 1]))


def test_choose_compress_extract():
    idx = np.array([[0, 1], [2, 1]])
    choices = [np.zeros((2, 2), np.float32), np.ones(2, np.float32), np.float32(5)]
    assert_matches(fnp.choose(idx, choices), np.choose(idx, choices))
    # JAX: choose([0, 1, 5], [arange(3), 10 * arange(3)], mode='clip' or 'wrap') -> [0, 10, 20]
    for mode in ("clip", "wrap"):
        got = fnp.choose(np.array([0, 1, 5]), [np.arange(3), np.arange(3) * 10], mode=mode)
        assert_matches(got, np.array([0, 10, 20], np.int32))
    with pytest.raises(ValueError, match="invalid entry"):
        fnp.choose(np.array([0, 3]), choices[:2])
    cond = np.array([True, False, True])
    assert_matches(fnp.compress(cond, A[0], axis=0), np.compress(cond, A[0], axis=0))
    assert_matches(fnp.compress(np.array([False, True]), A[0, 0]), np.compress([False, True], A[0, 0]))
    assert_matches(fnp.compress(cond, np.arange(3), size=3, fill_value=-1), np.array([0, 2, -1], np.int32))
    assert_matches(fnp.extract(A > 0.5, A), np.extract(A > 0.5, A))
    with pytest.raises(ValueError, match="out of bounds|only"):
        fnp.compress(np.array([True, False, True, True]), np.arange(3))
    with pytest.raises(fgrad.ConcretizationError):
        fgrad.jit(lambda x: fnp.extract(x > 0, x))(A)
    assert_matches(natively(lambda x: fnp.extract(x > 0, x, size=60), A),
                   np.concatenate([np.extract(A > 0, A), np.zeros(60 - (A > 0).sum(), np.float32)]))
    with pytest.raises(ValueError, match="size must be"):
        fnp.extract(A > 0, A, size=61)


# --- joining and removing ----------------------------------------------------------------------------------

INSERT_CASES = [
    (np.arange(4), 1, np.array([9, 8]), None),
    (np.arange(6).reshape(2, 3), [1, 1, -1], 9, 1),
    (np.arange(6).reshape(2, 3), [0, 3], np.array([[7, 8], [5, 6]]), 1),
    (np.arange(6).reshape(2, 3), 1, np.array([7, 8]), 1),
    (np.arange(6).reshape(2, 3), [2], np.array([7, 8, 9]), 0),
    (np.arange(6), slice(None, None, 2), np.array([7, 8, 9]), None),
    (np.arange(6).reshape(2, 3), -1, 5.5, 0),
    (np.arange(6).reshape(2, 3), 3, np.array([1, 2]), -1),
]


@pytest.mark.parametrize("case", range(len(INSERT_CASES)))
def test_insert_matches_numpy(case):
    arr, obj, values, axis = INSERT_CASES[case]
    assert_matches(fnp.insert(arr, obj, values, axis=axis), np.insert(arr, obj, values, axis=axis))


@pytest.mark.parametrize("obj", [1, -1, [0, 2], slice(0, 4, 2), np.array([True, False, True, False, False])])
def test_delete_and_append_match_numpy(obj):
    x = np.arange(20).reshape(4, 5)
    assert_matches(fnp.delete(x, obj, axis=1), np.delete(x, obj, axis=1))
    if not isinstance(obj, np.ndarray):
        assert_matches(fnp.delete(x, obj), np.delete(x, obj))
    assert_matches(fnp.append(A[0], A[1], axis=1), np.append(A[0], A[1], axis=1))
    assert_matches(fnp.append(A[0], 7), np.append(A[0], 7))
    with pytest.raises(IndexError, match="out of bounds"):
        fnp.delete(x, 9, axis=1)
    with pytest.raises(fgrad.ConcretizationError, match="static"):
        fgrad.jit(lambda i: fnp.delete(x, i))(np.int32(1))


def test_block_matches_numpy():
    blocks = [[np.ones((2, 2)), np.zeros((2, 1))], [np.full((1, 3), 2.0)]]
    assert_matches(fnp.block(blocks), np.block(blocks).astype(np.float32))
    assert_matches(fnp.block([np.ones(2), 3.0]), np.block([np.ones(2), 3.0]).astype(np.float32))
    assert_matches(fnp.block([[A[0]], [A[1]]]), np.block([[A[0]], [A[1]]]))
    assert_matches(fnp.block([[[A]]]), np.block([[[A]]]))
    assert_matches(fnp.copy(A), A)
    with pytest.raises(ValueError, match="depths"):
        fnp.block([[np.ones(2)], np.ones(2)])


# --- functional updates ---------------------------------------------------------------------------------

def test_fill_diagonal_put_and_put_along_axis_match_numpy():
    z = np.zeros((3, 4), np.float32)
    assert_matches(fnp.fill_diagonal(z, np.array([1.0, 2.0]), inplace=False),
                   numpy_updated(np.fill_diagonal, z, np.array([1.0, 2.0])))
    assert_matches(fnp.fill_diagonal(np.zeros((3, 3, 3)), 7.0, inplace=False),
                   numpy_updated(np.fill_diagonal, np.zeros((3, 3, 3), np.float32), 7.0))
    order = np.argsort(A, axis=1)[:, :2]
    assert_matches(fnp.put_along_axis(A, order, -1.0, axis=1, inplace=False),
                   numpy_updated(np.put_along_axis, A, order, -1.0, axis=1))
    z5 = np.zeros(5, np.float32)
    assert_matches(fnp.put(z5, np.array([1, 3, 4]), np.array([7.0, 8.0]), inplace=False),
                   numpy_updated(np.put, z5, [1, 3, 4], [7.0, 8.0]))
    # JAX 0.10.2: out-of-range indices are dropped (mode None), wrapped or clipped
    assert_matches(fnp.put(z5, np.array([1, 7]), np.array([3.0, 4.0]), inplace=False), [0, 3, 0, 0, 0], dtype=np.float32)
    assert_matches(fnp.put(z5, np.array([1, 7, 2]), np.array([3.0, 4.0]), mode="wrap", inplace=False),
                   [0, 3, 3, 0, 0], dtype=np.float32)
    assert_matches(fnp.put(z5, np.array([1, 7, 2]), np.array([3.0, 4.0]), mode="clip", inplace=False),
                   [0, 3, 3, 0, 4], dtype=np.float32)
    assert_matches(fnp.put_along_axis(np.zeros((2, 3)), np.array([[1], [5]]), 2.0, axis=1, inplace=False),
                   [[0, 2, 0], [0, 0, 0]], dtype=np.float32)
    for fn, args in ((fnp.put, (z5, [1], 1.0)), (fnp.fill_diagonal, (z, 1.0)),
                     (fnp.put_along_axis, (z, np.zeros((3, 1), np.int32), 1.0, 1))):
        with pytest.raises(ValueError, match="inplace=False"):
            fn(*args)
    with pytest.raises(NotImplementedError, match="wrap"):
        fnp.fill_diagonal(z, 1.0, wrap=True, inplace=False)


# --- construction, shapes, splits ---------------------------------------------------------------------

def test_construction_and_shape_helpers_match_numpy():
    assert_matches(fnp.vander(np.array([1.0, 2.0, 3.0]), 4), np.vander(np.array([1.0, 2.0, 3.0]), 4).astype(np.float32))
    assert_matches(fnp.vander(np.array([1, 2, 3]), increasing=True), np.vander([1, 2, 3], increasing=True))
    assert fnp.vander(np.ones(3), 0).shape == (3, 0)
    assert_matches(fnp.diagflat(np.array([[1, 2], [3, 4]]), -1), np.diagflat([[1, 2], [3, 4]], -1))
    assert_matches(fnp.resize(np.arange(3), (2, 4)), np.resize(np.arange(3), (2, 4)))
    assert_matches(fnp.resize(A, 7), np.resize(A, 7))
    assert_matches(fnp.resize(np.zeros(0), (2,)), np.zeros(2, np.float32))   # JAX: zeros
    for axis, start in ((2, 0), (0, 3), (1, 1), (-1, -3)):
        assert_matches(fnp.rollaxis(A, axis, start), np.rollaxis(A, axis, start))
    assert_all_match(fnp.hsplit(A, 2), np.hsplit(A, 2))
    assert_all_match(fnp.hsplit(np.arange(6), 3), np.hsplit(np.arange(6), 3))
    assert_all_match(fnp.vsplit(A, [1]), np.vsplit(A, [1]))
    assert_all_match(fnp.dsplit(A, [1, 3]), np.dsplit(A, [1, 3]))
    with pytest.raises(ValueError, match="3 or more"):
        fnp.dsplit(M, 2)
    for trim in ("fb", "f", "b"):
        x = np.array([0, 0, 1, 0, 2, 0])
        assert_matches(fnp.trim_zeros(x, trim), np.trim_zeros(x, trim))
    assert fnp.trim_zeros(np.zeros(3)).shape == (0,)


def test_apply_along_axis_over_axes_and_vectorize():
    assert_matches(fnp.apply_along_axis(lambda v: v.sum() * v[0], 1, A),
                   np.apply_along_axis(lambda v: v.sum() * v[0], 1, A), rtol=1e-5)
    assert_matches(fnp.apply_along_axis(lambda v: v[::-1][:2], 0, A), np.apply_along_axis(lambda v: v[::-1][:2], 0, A))
    assert_matches(fnp.apply_along_axis(lambda v, s: fnp.outer(v, v) * s, -1, A[0], 2.0),
                   np.apply_along_axis(lambda v, s: np.outer(v, v) * s, -1, A[0], 2.0), rtol=1e-5)
    assert_matches(fnp.apply_over_axes(fnp.sum, A, [0, 2]), np.apply_over_axes(np.sum, A, [0, 2]), rtol=1e-5)
    assert_matches(fnp.vectorize(lambda u, v: u * 2 + v)(A, A[0, 0]), A * 2 + A[0, 0])
    dot = fnp.vectorize(lambda u, v: (u * v).sum(), signature="(n),(n)->()")
    assert_matches(dot(A, A[0, 0]), (A * A[0, 0]).sum(-1), rtol=1e-5)
    mv = fnp.vectorize(lambda m, v: m @ v, signature="(m,n),(n)->(m)")
    assert_matches(mv(A, A[:, 0]), np.einsum("bij,bj->bi", A, A[:, 0]), rtol=1e-5)
    two = fnp.vectorize(lambda v: (v.min(), v.max()), signature="(n)->(),()")
    assert_all_match(two(A), (A.min(-1), A.max(-1)))
    scaled = fnp.vectorize(lambda v, scale, shift=0.0: v * scale + shift, excluded={1})
    assert_matches(scaled(A, 3.0, shift=A[0, 0]), A * 3 + A[0, 0])
    outer = fnp.vectorize(lambda u, v: u * 10 + v)
    assert_matches(outer(np.arange(3)[:, None], np.arange(4)[None, :]), np.arange(3)[:, None] * 10 + np.arange(4))
    assert_matches(outer(np.ones((1, 1, 2)), 5), np.full((1, 1, 2), 15.0, np.float32))
    assert_matches(fnp.vectorize(lambda u, b=1.0: u - b)(A[0], b=A[1, 0]), A[0] - A[1, 0])   # NumPy's rule
    jitted_outer = natively(lambda u, v: outer(u, v), np.float32(A[0, :, :1]), np.float32(A[1, :1, :]))
    np.testing.assert_allclose(jitted_outer, A[0, :, :1] * 10 + A[1, :1, :], rtol=1e-6)
    with pytest.raises(ValueError, match="inconsistent"):
        dot(A, np.ones(3))
    with pytest.raises(ValueError, match="signature"):
        fnp.vectorize(lambda v: v, signature="(n->()")


# --- products, sorting ------------------------------------------------------------------------------------

def test_matvec_vecmat_lexsort():
    assert_matches(fnp.matvec(A, A[:, 0]), np.einsum("bij,bj->bi", A, A[:, 0]), rtol=1e-5)
    assert_matches(fnp.matvec(A, A[0, 0]), A @ A[0, 0], rtol=1e-5)
    assert_matches(fnp.vecmat(A[:, 0, :4], A), np.einsum("bi,bij->bj", A[:, 0, :4], A), rtol=1e-5)
    k1, k2 = np.array([1, 0, 1, 0, 2]), np.array([3, 3, 1, 1, 0])
    assert_matches(fnp.lexsort((k2, k1)), np.lexsort((k2, k1)).astype(np.int32))
    assert_matches(fnp.lexsort(np.stack([k2, k1])), np.lexsort(np.stack([k2, k1])).astype(np.int32))
    keys = (A[0] > 0, np.round(A[1]))
    assert_matches(fnp.lexsort(keys, axis=0), np.lexsort(keys, axis=0).astype(np.int32))


@given(nonempty_shapes, st.data())
def test_partition_and_argpartition_partition(shape, data):
    x = data.draw(arrays(np.int32, shape, -3, 3))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    kth = data.draw(st.integers(0, shape[axis] - 1))
    want = np.sort(x, axis=axis)
    part = np.asarray(fnp.partition(x, kth, axis=axis))
    pivot = np.take(want, [kth], axis=axis)
    np.testing.assert_array_equal(np.take(part, [kth], axis=axis), pivot)
    assert np.all(np.take(part, range(kth), axis=axis) <= pivot)
    assert np.all(np.take(part, range(kth + 1, shape[axis]), axis=axis) >= pivot)
    idx = np.asarray(fnp.argpartition(x, kth, axis=axis))
    np.testing.assert_array_equal(np.sort(idx, axis=axis), np.sort(np.argsort(x, axis=axis), axis=axis))
    np.testing.assert_array_equal(np.take(np.take_along_axis(x, idx, axis), [kth], axis=axis), pivot)
    assert np.all(np.take(np.take_along_axis(x, idx, axis), range(kth), axis=axis) <= pivot)


def test_partition_order_as_jax():
    # JAX 0.10.2: the part before kth ascends, the part after descends; argpartition lists the
    # kth + 1 smallest (ties by index) then the other indices in increasing order
    x = np.array([3, 1, 4, 1, 5, 9, 2, 6], np.int32)
    assert_matches(fnp.partition(x, 3), np.array([1, 1, 2, 3, 9, 6, 5, 4], np.int32))
    assert_matches(fnp.argpartition(x, 3), np.array([1, 3, 6, 0, 2, 4, 5, 7], np.int32))
    with pytest.raises(ValueError, match="out of bounds"):
        fnp.partition(x, 8)


def test_place_fromfunction():
    a, mask = np.arange(12).reshape(3, 4), (np.arange(12).reshape(3, 4) % 3) == 1
    assert_matches(fnp.place(a, mask, np.array([44, 55]), inplace=False), numpy_updated(np.place, a, mask, [44, 55]))
    with pytest.raises(ValueError, match="inplace=False"):
        fnp.place(a, mask, [1])
    f = lambda i, j: i * 10 + j  # noqa: E731
    assert_matches(fnp.fromfunction(f, (2, 3), dtype=int), np.fromfunction(f, (2, 3), dtype=int))
    g = lambda i, j, scale: (i - j) * scale  # noqa: E731
    assert_matches(fnp.fromfunction(g, (3, 2), scale=0.5), np.fromfunction(g, (3, 2), scale=0.5).astype(np.float32))


# --- transforms ------------------------------------------------------------------------------------------

TRANSFORM_CASES = {
    "unravel_index": (lambda i: fnp.unravel_index(i, (3, 4)), (np.array([-1, 13, -13, 5], np.int32),)),
    "ravel_multi_index": (lambda i: fnp.ravel_multi_index((i, i), (300, 400), mode="wrap"), (I32,)),
    "select": (lambda x: fnp.select([x < 0, x > 1], [x * 2, x * x], -1.0), (A,)),
    "piecewise": (lambda x: fnp.piecewise(x, [x < 0, x > 1], [lambda v: -v, 7.0, 3.0]), (A,)),
    "choose": (lambda i, x: fnp.choose(i, [x, -x, 2 * x], mode="clip"), (np.array([0, 1, 5, 2, -1], np.int32), A[0, 0])),
    "compress": (lambda x: fnp.compress(x[0, 0] > 0, x[0], axis=1, size=3, fill_value=-9.0), (A,)),
    "append/insert/delete": (lambda x: fnp.insert(fnp.delete(fnp.append(x, x[:1], axis=0), [0, 2], axis=2),
                                                   [1, 3], 9.0, axis=2), (A,)),
    "block": (lambda x: fnp.block([[x[0], x[1]], [x[2], x[2]]]), (A,)),
    "fill_diagonal/put": (lambda x: fnp.put(fnp.fill_diagonal(x, 5.0, inplace=False), fnp.array([0, 7, 100]),
                                            fnp.array([1.0, 2.0]), inplace=False), (M,)),
    "put_along_axis": (lambda x: fnp.put_along_axis(x, fnp.argsort(x, axis=1)[:, :1], 0.0, 1, inplace=False), (A,)),
    "vander/resize": (lambda x: fnp.vander(x[0]) + fnp.resize(x, (4, 4)), (M,)),
    "apply_along_axis": (lambda x: fnp.apply_along_axis(lambda v: fnp.sort(v)[1:3], 1, x), (A,)),
    "vectorize": (lambda x: fnp.vectorize(lambda m, v: m @ v, signature="(m,n),(n)->(m)")(x, x[:, 0]), (A,)),
    "matvec/vecmat": (lambda x: fnp.matvec(x, x[:, 0]) + fnp.vecmat(x[:, :, 0], x)[..., :4], (A,)),
    "lexsort": (lambda x: fnp.lexsort([x[0], x[0] > 0]), (A,)),
    "partition": (lambda x: fnp.partition(x, 2, axis=1), (A,)),
    "argpartition": (lambda x: fnp.argpartition(x, 2, axis=1), (A,)),
    "unstack/place/fromfunction": (lambda x: fnp.stack(fnp.unstack(fnp.place(x, x > 0, x[0], inplace=False), axis=2))
                                   + fnp.fromfunction(lambda i, j, k: i - x[0, 0, 0] * j, (5, 3, 4)), (A,)),
    "indices/mgrid/r_": (lambda x: x[:2, :3] * fnp.indices((2, 3))[0] + fnp.mgrid[0:2, 0:3][1] + fnp.r_[x[0, :2], 1.0], (M,)),
}


@pytest.mark.parametrize("name", sorted(TRANSFORM_CASES))
def test_jit_is_native_and_matches_eager(name):
    f, args = TRANSFORM_CASES[name]
    check_jit_matches_eager(f, args)


X = rng.uniform(-1.0, 1.0, (3, 5))

GRAD_CASES = {
    "select/piecewise": (lambda x: fnp.select([x < 0], [x * x], x * 3) + fnp.piecewise(x, [x > 0.5], [fnp.sin, fnp.cos]), (X,)),
    "choose/compress": (lambda x: fnp.choose(np.array([0, 1, 0, 1, 1]), [x[0], x[1]])
                        + fnp.compress(np.array([True, False, True, True, False]), x, axis=1, size=5)[0], (X,)),
    "insert/delete/append/block": (lambda x: fnp.block([[fnp.insert(x, 1, x[:, 0] * 2, axis=1)],
                                                         [fnp.append(fnp.delete(x, 0, axis=1), x[:, :2], axis=1)]]),
                                   (X,)),
    "put/fill_diagonal/put_along_axis": (lambda x: fnp.put(fnp.fill_diagonal(x, x[0, 0] * 3, inplace=False),
                                                           np.array([1, 4]), x[1, :2], inplace=False)
                                         + fnp.put_along_axis(x, np.array([[1], [0], [2]]), x[:, :1] ** 2, 1,
                                                              inplace=False), (X,)),
    "vander/resize": (lambda x: fnp.vander(x[0], 4) + fnp.resize(x, (5, 4)), (X,)),
    "apply_along_axis/vectorize": (lambda x: fnp.apply_along_axis(lambda v: v * v.sum(), 0, x)
                                   + fnp.vectorize(lambda v: v @ v, signature="(n)->()")(x)[:, None], (X,)),
    "matvec/vecmat": (lambda x, y: fnp.matvec(x, y) + fnp.vecmat(y[:3], x)[:3], (X, X[0])),
    "partition": (lambda x: fnp.partition(x, 2, axis=1), (X,)),
    "unstack/place": (lambda x: fnp.place(x, np.arange(15).reshape(3, 5) % 2 == 0, x[0, :3] * 2, inplace=False)
                      + fnp.unstack(x)[1], (X,)),
    "fromfunction": (lambda s: fnp.fromfunction(lambda i, j: fnp.sin(i * s) + j, (3, 2)), (np.array(0.7),)),
}


@pytest.mark.parametrize("name", sorted(GRAD_CASES))
def test_grad_matches_finite_differences(name):
    f, args = GRAD_CASES[name]
    check_grads(f, args, order=1)


VMAP_CASES = {
    "unravel_index": (lambda i: fnp.stack(fnp.unravel_index(i, (3, 4))), (np.array([[1, 5], [13, -1]], np.int32),), (0,)),
    "select": (lambda x: fnp.select([x < 0, x > 1], [x * 2, x * x], -1.0), (A,), (1,)),
    "choose": (lambda i, x: fnp.choose(i, [x, -x], mode="wrap"), (np.array([[0, 1, 3, 2, 0]] * 3, np.int32), A[:, 0]), (0, 0)),
    "insert/delete": (lambda x: fnp.delete(fnp.insert(x, [0, 2], 1.0), 3), (A,), (2,)),
    "put_along_axis": (lambda x, i: fnp.put_along_axis(x, i, 0.0, 0, inplace=False),
                       (A, np.array([[[1], [0], [3], [2]]] * 3, np.int32).transpose(0, 1, 2)[:, :, :1]), (0, 0)),
    "vander": (lambda x: fnp.vander(x, 3), (A[0],), (0,)),
    "vectorize": (lambda x: fnp.vectorize(lambda v: fnp.sort(v)[:2], signature="(n)->(k)")(x), (A,), (0,)),
    "lexsort/argpartition": (lambda x: fnp.lexsort([x, x > 0]) + fnp.argpartition(x, 1), (A[0],), (0,)),
    "place": (lambda x, v: fnp.place(x, x > 0, v, inplace=False), (A, A[:, 0, :2]), (0, 0)),
}


@pytest.mark.parametrize("name", sorted(VMAP_CASES))
def test_vmap_matches_a_loop(name):
    f, args, in_axes = VMAP_CASES[name]
    check_vmap(f, args, in_axes=in_axes, rtol=1e-5, atol=1e-5)
