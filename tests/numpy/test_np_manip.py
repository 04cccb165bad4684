"""Array creation and shape manipulation vs NumPy."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fgrad
from fgrad import numpy as fnp

from np_helpers import ALL, arrays, assert_matches, nonempty_shapes, shapes


# --- creation ------------------------------------------------------------------------------------

def test_creation_functions_match_numpy():
    assert_matches(fnp.zeros((2, 3)), np.zeros((2, 3), np.float32))
    assert_matches(fnp.ones(4, dtype=fnp.int32), np.ones(4, np.int32))
    assert_matches(fnp.full((2,), 7), np.full((2,), 7, np.int32))
    assert_matches(fnp.full((2, 2), 1.5), np.full((2, 2), 1.5, np.float32))
    assert_matches(fnp.full((2, 3), fnp.asarray([1.0, 2.0, 3.0])), np.full((2, 3), [1.0, 2.0, 3.0], np.float32))
    assert_matches(fnp.empty((0, 2)), np.empty((0, 2), np.float32))
    x = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert_matches(fnp.zeros_like(fnp.asarray(x)), np.zeros_like(x))
    assert_matches(fnp.ones_like(x, dtype=fnp.float32), np.ones_like(x, np.float32))
    assert_matches(fnp.full_like(x, 3), np.full_like(x, 3))
    assert_matches(fnp.empty_like(x, shape=(4,)), np.zeros(4, np.uint8))
    assert_matches(fnp.eye(3), np.eye(3, dtype=np.float32))
    assert_matches(fnp.eye(3, 5, k=-1, dtype=fnp.int32), np.eye(3, 5, k=-1, dtype=np.int32))
    assert_matches(fnp.identity(2), np.identity(2, np.float32))
    assert_matches(fnp.tri(3, 4, 1), np.tri(3, 4, 1, np.float32))
    for got, want in zip(fnp.meshgrid(fnp.arange(3), fnp.arange(2.0), indexing="xy"),
                         np.meshgrid(np.arange(3), np.arange(2.0, dtype=np.float32), indexing="xy")):
        assert_matches(got, want)
    for got, want in zip(fnp.meshgrid(fnp.arange(3), fnp.arange(2), fnp.arange(4), indexing="ij", sparse=True),
                         np.meshgrid(np.arange(3), np.arange(2), np.arange(4), indexing="ij", sparse=True)):
        assert_matches(got, want)


@settings(max_examples=60, deadline=None)
@given(start=st.integers(-20, 20), stop=st.integers(-20, 20), step=st.integers(-5, 5).filter(bool),
       floats=st.booleans())
def test_arange(start, stop, step, floats):
    if floats:
        start, stop, step = start / 4, stop / 3, step / 2
    assert_matches(fnp.arange(start, stop, step), np.arange(start, stop, step), rtol=1e-5, atol=1e-5)
    assert_matches(fnp.arange(abs(stop)), np.arange(abs(stop)), rtol=1e-6)


def test_arange_takes_the_dtype_of_numpy_scalar_bounds():
    # JAX 0.10.2 promotes the bounds (Python numbers weakly): these dtypes and values were
    # recorded from jnp.arange; fgrad gave int32 / float32 for NumPy scalars
    cases = [((np.int8(3),), np.int8, [0, 1, 2]), ((np.float16(3),), np.float16, [0, 1, 2]),
             ((np.uint8(2), np.int8(5)), np.int16, [2, 3, 4]), ((np.int8(1), 5),  np.int8, [1, 2, 3, 4]),
             ((np.int8(1), 2.5), np.float32, [1.0, 2.0]), ((np.float32(0), 2, np.float16(.5)), np.float32, [0, .5, 1, 1.5]),
             ((5,), np.int32, [0, 1, 2, 3, 4]), ((0, 1, .5), np.float32, [0, .5])]
    for args, dtype, want in cases:
        got = fnp.arange(*args)
        assert got.dtype == dtype and np.asarray(got).tolist() == want


@settings(max_examples=40, deadline=None)
@given(start=st.floats(-10, 10), stop=st.floats(-10, 10), num=st.integers(0, 9), endpoint=st.booleans())
def test_linspace(start, stop, num, endpoint):
    start, stop = round(start, 3), round(stop, 3)
    want = np.linspace(start, stop, num, endpoint=endpoint)
    assert_matches(fnp.linspace(start, stop, num, endpoint=endpoint), want, rtol=1e-5, atol=1e-5)
    got, step = fnp.linspace(start, stop, num, endpoint=endpoint, retstep=True)
    want_step = np.linspace(start, stop, num, endpoint=endpoint, retstep=True)[1]
    if num > 1 or (num == 1 and not endpoint):
        np.testing.assert_allclose(float(step), want_step, rtol=1e-5, atol=1e-6)
    lo = int(start)  # integer results: exact steps, so float32 and float64 floor alike
    hi = lo + 2 * max(num - 1, 1)
    assert_matches(fnp.linspace(lo, hi, num, dtype=fnp.int32), np.linspace(lo, hi, num, dtype=np.int32))


def test_linspace_of_arrays_and_logspace():
    a, b = np.array([0.0, 1.0]), np.array([1.0, 5.0])
    assert_matches(fnp.linspace(fnp.asarray(a), fnp.asarray(b), 5, axis=1), np.linspace(a, b, 5, axis=1), rtol=1e-6)
    assert_matches(fnp.logspace(0, 2, 5), np.logspace(0, 2, 5), rtol=1e-5)
    # ends of different shapes broadcast together, as in NumPy (a scalar start, an array stop)
    stop = np.array([[1.0, -4.0, 6.0]])
    for axis in (0, 1, -1):
        assert_matches(fnp.linspace(2.0, fnp.asarray(stop), 4, endpoint=False, axis=axis),
                       np.linspace(2.0, stop, 4, endpoint=False, axis=axis), rtol=1e-6)
    assert_matches(fnp.linspace(fnp.asarray(stop), fnp.asarray(np.zeros((2, 1))), 3, dtype=fnp.int32),
                   np.linspace(stop, np.zeros((2, 1)), 3, dtype=np.int32))


def test_asarray_and_array():
    data = np.arange(3.0)
    x = fnp.asarray(data)
    data[0] = 100.0
    assert x.tolist() == [0.0, 1.0, 2.0] and x.dtype == np.float32
    assert fnp.asarray([1, 2]).dtype == np.int32 and fnp.asarray([True]).dtype == np.bool_
    assert fnp.asarray(2.0).weak_type and not fnp.asarray(np.float32(2.0)).weak_type
    assert fnp.asarray(x) is x
    assert fnp.array([1, 2], dtype=fnp.float32).dtype == np.float32
    assert fnp.array(1.0, ndmin=2).shape == (1, 1)
    assert fnp.float32(3).dtype == np.float32 and fnp.int32(2.7).tolist() == 2
    assert fnp.asarray(np.arange(3, dtype=np.int64)).dtype == np.int32
    stacked = fgrad.jit(lambda a, b: fnp.array([[a, b], [b, a]]))(fnp.ones(()), fnp.zeros(()))
    assert stacked.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert fnp.asarray(np.array([1 + 2j], np.complex128)).dtype == np.complex64   # narrowed without x64
    with pytest.raises(TypeError, match="does not support dtype complex256"):
        fnp.asarray(np.ones(2, np.clongdouble))
    with pytest.raises(TypeError, match="cannot convert"):
        fnp.asarray("text")
    with pytest.raises(TypeError, match="does not support dtype"):
        fnp.zeros(2, dtype="datetime64[s]")
    with pytest.raises(ValueError, match="negative dimensions"):
        fnp.zeros((2, -1))
    with pytest.raises(TypeError, match="shape must be an integer"):
        fnp.ones((2.5,))
    with pytest.raises(ZeroDivisionError, match="step must not be zero"):
        fnp.arange(0, 3, 0)


def test_dtype_objects_and_queries():
    assert np.dtype(fnp.float32) == np.float32 and fnp.float32 == np.dtype("float32")
    assert fnp.uint8 != fnp.int32 and hash(fnp.int32) == hash(np.dtype(np.int32))
    assert fnp.issubdtype(fnp.float32, fnp.floating) and not fnp.issubdtype(fnp.int32, fnp.floating)
    assert fnp.result_type(fnp.uint8, 1) == np.uint8 and fnp.result_type(fnp.int32, 2.0) == np.float32
    assert fnp.result_type(fnp.asarray([1], fnp.uint8), fnp.asarray([1.0])) == np.float32
    assert fnp.promote_types(fnp.int32, fnp.float32) == np.float32
    assert fnp.iinfo(fnp.int32).max == 2 ** 31 - 1 and fnp.finfo(fnp.float32).eps == np.finfo(np.float32).eps
    assert fnp.pi == np.pi and fnp.e == np.e and fnp.inf == np.inf and np.isnan(fnp.nan) and fnp.newaxis is None
    assert fnp.zeros(2, fnp.bool_).dtype == np.bool_ and fnp.ones(1, fnp.float16).dtype == np.float16
    assert repr(fnp.float32) == "fgrad.numpy.float32"


# --- shape manipulation ---------------------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_reshape_ravel_transpose(data):
    shape = data.draw(shapes)
    x = data.draw(arrays(np.float32, shape))
    X = fnp.asarray(x)
    size = x.size
    new = data.draw(st.sampled_from([(size,), (-1,), (1, size, 1), (size, -1) if size else (0, 3)]))
    order = data.draw(st.sampled_from(["C", "F"]))
    assert_matches(fnp.reshape(X, new, order=order), np.reshape(x, new, order=order))
    assert_matches(X.reshape(*new) if len(new) > 1 else X.reshape(new), x.reshape(new))
    assert_matches(fnp.ravel(X, order=order), np.ravel(x, order=order))
    assert_matches(X.flatten(), x.flatten())
    perm = data.draw(st.permutations(range(x.ndim)))
    assert_matches(fnp.transpose(X, perm), np.transpose(x, perm))
    assert_matches(X.T, x.T)
    assert_matches(X.transpose(*perm) if perm else X.transpose(), x.transpose(*perm))
    if x.ndim >= 2:
        assert_matches(fnp.swapaxes(X, 0, -1), np.swapaxes(x, 0, -1))
        assert_matches(X.mT, np.swapaxes(x, -1, -2))
        src = data.draw(st.lists(st.integers(-x.ndim, x.ndim - 1), min_size=1, max_size=2,
                                 unique_by=lambda a: a % x.ndim))
        dst = data.draw(st.lists(st.integers(0, x.ndim - 1), min_size=len(src), max_size=len(src), unique=True))
        assert_matches(fnp.moveaxis(X, src, dst), np.moveaxis(x, src, dst))


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_squeeze_expand_dims_broadcast(data):
    shape = data.draw(st.lists(st.integers(1, 3), max_size=4).map(tuple))
    x = data.draw(arrays(np.int32, shape))
    X = fnp.asarray(x)
    assert_matches(fnp.squeeze(X), np.squeeze(x))
    ones = [i for i, s in enumerate(shape) if s == 1]
    if ones:
        assert_matches(X.squeeze(axis=tuple(ones[:1])), x.squeeze(axis=tuple(ones[:1])))
    axis = data.draw(st.integers(-x.ndim - 1, x.ndim))
    assert_matches(fnp.expand_dims(X, axis), np.expand_dims(x, axis))
    assert_matches(fnp.expand_dims(X, (0, -1)), np.expand_dims(x, (0, -1)))
    target = data.draw(st.lists(st.integers(1, 3), max_size=2).map(tuple)) + tuple(
        data.draw(st.sampled_from([s, 3])) if s == 1 else s for s in shape)
    assert_matches(fnp.broadcast_to(X, target), np.broadcast_to(x, target))
    a, b = fnp.broadcast_arrays(X, fnp.ones(target[-1:] if target else ()))
    assert a.shape == b.shape == np.broadcast_shapes(shape, target[-1:] if target else ())
    assert fnp.broadcast_shapes((2, 1), (3,)) == (2, 3)


@settings(max_examples=30, deadline=None)
@given(data=st.data(), dtypes=st.lists(st.sampled_from(ALL), min_size=1, max_size=3))
def test_concatenate_stack_split(data, dtypes):
    shape = data.draw(nonempty_shapes)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    parts = []
    for dt in dtypes:
        s = list(shape)
        s[axis] = data.draw(st.integers(0, 3))
        parts.append(data.draw(arrays(dt, tuple(s))))
    assert_matches(fnp.concatenate([fnp.asarray(p) for p in parts], axis=axis), np.concatenate(parts, axis=axis))
    assert_matches(fnp.concatenate([fnp.asarray(p) for p in parts], axis=None), np.concatenate(parts, axis=None))
    same = [data.draw(arrays(dt, shape)) for dt in dtypes]
    stack_axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    assert_matches(fnp.stack([fnp.asarray(p) for p in same], axis=stack_axis), np.stack(same, axis=stack_axis))
    for name in ("hstack", "vstack", "dstack", "column_stack"):
        if name == "column_stack" and len(shape) > 2:
            continue
        assert_matches(getattr(fnp, name)([fnp.asarray(p) for p in same]), getattr(np, name)(same))
    n = shape[axis]
    sections = data.draw(st.integers(1, 3))
    points = sorted(data.draw(st.lists(st.integers(-n - 1, n + 1), max_size=3)))
    for got, want in zip(fnp.array_split(fnp.asarray(same[0]), sections, axis), np.array_split(same[0], sections, axis)):
        assert_matches(got, want)
    for got, want in zip(fnp.split(fnp.asarray(same[0]), points, axis), np.split(same[0], points, axis)):
        assert_matches(got, want)
    if n % sections == 0:
        for got, want in zip(fnp.split(fnp.asarray(same[0]), sections, axis), np.split(same[0], sections, axis)):
            assert_matches(got, want)


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_tile_repeat_flip_roll_rot90(data):
    shape = data.draw(shapes)
    x = data.draw(arrays(np.float32, shape))
    X = fnp.asarray(x)
    reps = data.draw(st.one_of(st.integers(0, 3), st.lists(st.integers(0, 3), max_size=4).map(tuple)))
    assert_matches(fnp.tile(X, reps), np.tile(x, reps))
    r = data.draw(st.integers(0, 3))
    axis = data.draw(st.one_of(st.none(), st.integers(-x.ndim, x.ndim - 1))) if x.ndim else None
    assert_matches(fnp.repeat(X, r, axis=axis), np.repeat(x, r, axis=axis))
    n = x.size if axis is None else x.shape[axis]
    counts = data.draw(arrays(np.int32, (n,), 0, 3))
    assert_matches(fnp.repeat(X, counts, axis=axis), np.repeat(x, counts, axis=axis))
    assert_matches(X.repeat(2), x.repeat(2))
    flip_axis = data.draw(st.one_of(st.none(), st.lists(st.integers(0, x.ndim - 1), unique=True).map(tuple))
                          if x.ndim else st.none())
    assert_matches(fnp.flip(X, flip_axis), np.flip(x, flip_axis))
    shift = data.draw(st.integers(-7, 7))
    assert_matches(fnp.roll(X, shift, axis=axis), np.roll(x, shift, axis=axis))
    assert_matches(fnp.roll(X, fnp.asarray(shift), axis=axis), np.roll(x, shift, axis=axis))
    if x.ndim >= 2:
        assert_matches(fnp.roll(X, (1, -2), axis=(0, 1)), np.roll(x, (1, -2), axis=(0, 1)))
        k = data.draw(st.integers(-4, 4))
        assert_matches(fnp.rot90(X, k), np.rot90(x, k))
        assert_matches(fnp.rot90(X, k, axes=(1, 0)), np.rot90(x, k, axes=(1, 0)))
        assert_matches(fnp.fliplr(X), np.fliplr(x))
        assert_matches(fnp.flipud(X), np.flipud(x))


@settings(max_examples=30, deadline=None)
@given(data=st.data(), mode=st.sampled_from(["constant", "edge", "reflect", "symmetric", "wrap"]))
def test_pad(data, mode):
    shape = data.draw(nonempty_shapes)
    x = data.draw(arrays(np.int32, shape))
    width = data.draw(st.one_of(st.integers(0, 3), st.tuples(st.integers(0, 3), st.integers(0, 3)),
                                st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)),
                                         min_size=len(shape), max_size=len(shape))))
    kwargs = {}
    if mode == "constant":
        kwargs["constant_values"] = data.draw(st.one_of(
            st.integers(-5, 5), st.tuples(st.integers(-5, 5), st.integers(-5, 5))))
    assert_matches(fnp.pad(fnp.asarray(x), width, mode=mode, **kwargs), np.pad(x, width, mode=mode, **kwargs))


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_triangles_and_diagonals(data):
    shape = data.draw(st.lists(st.integers(0, 4), min_size=2, max_size=3).map(tuple))
    x = data.draw(arrays(np.float32, shape))
    X = fnp.asarray(x)
    k = data.draw(st.integers(-4, 4))
    assert_matches(fnp.tril(X, k), np.tril(x, k))
    assert_matches(fnp.triu(X, k), np.triu(x, k))
    a1, a2 = data.draw(st.permutations(range(len(shape))))[:2]
    assert_matches(fnp.diagonal(X, k, a1, a2), np.diagonal(x, k, a1, a2))
    assert_matches(fnp.trace(X, k, a1, a2), np.trace(x, k, a1, a2), rtol=1e-5, atol=1e-5)
    if len(shape) == 2:
        assert_matches(fnp.diag(X, k), np.diag(x, k))
    v = data.draw(arrays(np.int32, (data.draw(st.integers(0, 3)),)))
    assert_matches(fnp.diag(fnp.asarray(v), k), np.diag(v, k))


def test_atleast_and_shape_helpers():
    assert fnp.atleast_1d(1.0).shape == (1,)
    a, b = fnp.atleast_2d(fnp.ones(3), 2.0)
    assert a.shape == (1, 3) and b.shape == (1, 1)
    assert fnp.atleast_3d(fnp.ones((2, 3))).shape == (2, 3, 1)
    assert fnp.atleast_3d(fnp.ones(3)).shape == (1, 3, 1)
    x = fnp.ones((2, 3))
    assert fnp.shape(x) == (2, 3) and fnp.ndim(x) == 2 and fnp.size(x) == 6 and fnp.size(x, 1) == 3


def test_manipulation_errors():
    x = fnp.ones((2, 3))
    with pytest.raises(TypeError, match=r"reshape: cannot reshape an array of shape \(2, 3\)"):
        fnp.reshape(x, (4, -1))
    with pytest.raises(ValueError, match="only specify one unknown"):
        x.reshape(-1, -1)
    with pytest.raises(TypeError, match=r"broadcast_to: cannot broadcast an array of shape \(2, 3\) to shape \(3, 3\)"):
        fnp.broadcast_to(x, (3, 3))
    with pytest.raises(TypeError, match=r"concatenate: all arrays must have the same shape except along axis 0"):
        fnp.concatenate([x, fnp.ones((2, 2))])
    with pytest.raises(TypeError, match="same number of dimensions"):
        fnp.concatenate([x, fnp.ones(3)])
    with pytest.raises(TypeError, match="stack: all arrays must have the same shape"):
        fnp.stack([x, x.T])
    with pytest.raises(ValueError, match="equal division"):
        fnp.split(x, 2, axis=1)
    with pytest.raises(ValueError, match="size not equal to one"):
        fnp.squeeze(x, 0)
    with pytest.raises(ValueError, match="out of bounds"):
        fnp.expand_dims(x, 4)
    with pytest.raises(ValueError, match="not a permutation"):
        fnp.transpose(x, (0, 0))
    with pytest.raises(ValueError, match="mode 'mirror' is not supported"):
        fnp.pad(x, 1, mode="mirror")
    with pytest.raises(ValueError, match="non-negative"):
        fnp.pad(x, -1)
    with pytest.raises(TypeError, match=r"add: shapes \(2, 3\), \(2,\) cannot be broadcast together"):
        x + fnp.ones(2)


# --- issue 17: wrong answers -----------------------------------------------------------------------

@pytest.mark.parametrize("other", [{"name": "x"}, None, "f8", "f", "float32", 4, object(), [1], float])
def test_a_dtype_compares_unequal_to_non_dtypes_and_never_raises(other):
    for scalar_type in (fnp.float32, fnp.float64, fnp.int32, fnp.uint8):
        assert (scalar_type == other) is False and (scalar_type != other) is True


def test_a_dtype_equals_the_same_dtype_in_every_spelling():
    assert fnp.float32 == fnp.float32 and fnp.float32 == np.float32 and fnp.float32 == np.dtype("float32")
    assert np.dtype("float32") == fnp.float32 and np.float32 == fnp.float32
    assert fnp.float32 != fnp.float64 and fnp.float32 != np.float64 and fnp.int32 != np.dtype("uint32")
    assert fnp.ones(2).dtype == fnp.float32 and fnp.dtype("float32") == fnp.float32
    assert {fnp.float32: 1}[np.dtype("float32")] == 1


def test_isdtype_takes_dtypes_kind_names_and_tuples():
    assert fnp.isdtype(fnp.uint8, fnp.uint8) and fnp.isdtype(np.dtype("uint8"), fnp.uint8)
    assert not fnp.isdtype(fnp.uint8, fnp.int32)
    assert fnp.isdtype(fnp.uint8, ("real floating", fnp.uint8)) and not fnp.isdtype(fnp.uint8, ("real floating", fnp.int32))
    assert fnp.isdtype(fnp.float32, "real floating") and fnp.isdtype(fnp.int32, "integral")
    assert fnp.isdtype(fnp.ones(2, fnp.int32).dtype, "signed integer")


@pytest.mark.parametrize("k", [2**31, -2**31, 2**40, -2**40, 4, -3, 5])
def test_eye_tri_tril_accept_any_diagonal_offset(k):
    assert_matches(fnp.eye(3, 4, k=k), np.eye(3, 4, k=k, dtype=np.float32))
    assert_matches(fnp.eye(3, k=k, dtype=fnp.int32), np.eye(3, k=k, dtype=np.int32))
    x = np.arange(12.0, dtype=np.float32).reshape(3, 4)
    assert_matches(fnp.tril(x, k=k), np.tril(x, k=k))
    assert_matches(fnp.triu(x, k=k), np.triu(x, k=k))
    if abs(k) < 2**31:   # NumPy's own tri overflows beyond int64 arithmetic on its aranges
        assert_matches(fnp.tri(3, 4, k=k), np.tri(3, 4, k=k, dtype=np.float32))


def test_repeat_total_repeat_length_pads_and_truncates_like_jax():
    a = fnp.asarray([1, 2])
    # expected values are JAX 0.10.2's
    assert fnp.repeat(a, 2, total_repeat_length=5).tolist() == [1, 1, 2, 2, 2]
    assert fnp.repeat(a, 2, total_repeat_length=3).tolist() == [1, 1, 2]
    assert fnp.repeat(a, [0, 2], total_repeat_length=1).tolist() == [2]
    assert fnp.repeat(a, fnp.asarray([2, 0]), total_repeat_length=4).tolist() == [1, 1, 2, 2]
    assert fnp.repeat(a, fnp.asarray([3]), total_repeat_length=4).tolist() == [1, 1, 1, 2]
    assert fnp.repeat(a, 2, total_repeat_length=0).tolist() == []
    assert a.repeat(2, total_repeat_length=3).tolist() == [1, 1, 2]
    x = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    assert_matches(fnp.repeat(x, [1, 2, 0], axis=1, total_repeat_length=3), np.repeat(x, [1, 2, 0], axis=1))


def test_repeat_total_repeat_length_makes_traced_counts_work_under_jit_and_grad():
    f = fgrad.jit(lambda a, r: fnp.repeat(a, r, total_repeat_length=4))
    assert f(fnp.asarray([1, 2]), fnp.asarray([1, 2])).tolist() == [1, 2, 2, 2]
    assert f(fnp.asarray([1, 2]), 3).tolist() == [1, 1, 1, 2]
    assert f(fnp.asarray([1, 2]), fnp.asarray([2, 0])).tolist() == [1, 1, 2, 2]
    g = fgrad.jit(fgrad.grad(lambda x, r: fnp.sum(fnp.repeat(x, r, total_repeat_length=5))))
    assert g(fnp.asarray([1.0, 2.0]), fnp.asarray([1, 3])).tolist() == [1.0, 4.0]
    with pytest.raises(ValueError, match="total_repeat_length"):
        fnp.repeat(a=fnp.ones(2), repeats=1, total_repeat_length=-1)


def test_linspace_step_is_strongly_typed():
    # JAX 0.10.2: linspace(0, 1, 5, retstep=True)[1] is a strong float32 0.25 (fgrad: weak)
    for args in [(0, 1, 5), (np.float16(0), 1, 5)]:
        out, step = fnp.linspace(*args, retstep=True)
        assert not step.weak_type and step.dtype == out.dtype and float(step) == 0.25


def test_sort_and_nonzero_indices_are_the_default_int():
    # JAX 0.10.2 with x64: argsort, nonzero, where(c), argwhere, flatnonzero give int64 (fgrad:
    # int32), argpartition stays int32; without x64 all are int32
    m = np.array([[3., 1., 2.], [0., 5., -1.]], np.float32)
    for x64, want in ((True, np.int64), (False, np.int32)):
        with fgrad.config.override(enable_x64=x64):
            outs = [fnp.argsort(m), fnp.argsort(m, descending=True), fgrad.jit(fnp.argsort)(m),
                    *fnp.nonzero(m > 1), *fnp.nonzero(m > 1, size=4), *fnp.where(m > 1),
                    fnp.argwhere(m > 1), fnp.flatnonzero(m > 1)]
            assert all(o.dtype == want for o in outs)
            assert fnp.argpartition(m.ravel(), 2).dtype == np.int32
            assert np.asarray(fnp.argsort(m)).tolist() == [[1, 2, 0], [2, 0, 1]]
