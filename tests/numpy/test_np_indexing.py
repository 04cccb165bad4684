"""Indexing vs NumPy over random index expressions; ``.at[...]`` updates vs NumPy copies;
take / take_along_axis / nonzero; indexing under jit, grad and vmap."""
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import fgrad
from fgrad import jit, numpy as fnp

from np_helpers import arrays, assert_matches
from tests.util import check_grads, check_vmap

array_shapes = st.lists(st.integers(0, 4), min_size=0, max_size=4).map(tuple)


@st.composite
def index_expressions(draw, shape, allow_mask=True):
    """A random NumPy index: ints, slices (any steps), None, Ellipsis, integer arrays, one mask."""
    adv_shape = draw(st.lists(st.integers(1, 3), max_size=2).map(tuple))
    n_axes = draw(st.integers(0, len(shape)))
    use_ellipsis = draw(st.booleans())
    before = draw(st.integers(0, n_axes)) if use_ellipsis else n_axes  # explicit entries before '...'
    axes = list(range(before)) + list(range(len(shape) - (n_axes - before), len(shape)))
    entries, mask_used = [], False
    for i, axis in enumerate(axes):
        if use_ellipsis and i == before:
            entries.append(Ellipsis)
        n = shape[axis]
        if draw(st.integers(0, 4)) == 0:
            entries.append(None)
        kinds = ["slice", "slice"] + (["int", "array"] if n else []) + (["mask"] if allow_mask and not mask_used else [])
        kind = draw(st.sampled_from(kinds))
        if kind == "int":
            entries.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            bound = st.one_of(st.none(), st.integers(-n - 2, n + 2))
            entries.append(slice(draw(bound), draw(bound), draw(st.sampled_from([None, 1, 2, 3, -1, -2]))))
        elif kind == "array":
            shape_here = tuple(s if draw(st.booleans()) else 1 for s in adv_shape)
            shape_here = shape_here[draw(st.integers(0, len(shape_here))):]
            entries.append(draw(arrays(np.int32, shape_here, -n, n - 1)))
        else:
            mask_used = True
            entries.append(draw(arrays(np.bool_, (n,))))
    if use_ellipsis and before == len(axes):
        entries.append(Ellipsis)
    if len(entries) == 1 and draw(st.booleans()):
        return entries[0]
    return tuple(entries)


def _numpy_or_error(x, index):
    try:
        return x[index], None
    except IndexError as err:
        return None, err


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_getitem_matches_numpy(data):
    shape = data.draw(array_shapes)
    x = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    index = data.draw(index_expressions(shape))
    want, err = _numpy_or_error(x, index)
    if err is not None:
        with pytest.raises(IndexError):
            fnp.asarray(x)[index]
        return
    assert_matches(fnp.asarray(x)[index], want)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_getitem_under_jit_with_traced_index_arrays(data):
    shape = data.draw(array_shapes)
    x = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    index = data.draw(index_expressions(shape, allow_mask=False))
    want, err = _numpy_or_error(x, index)
    assume(err is None)
    items = index if isinstance(index, tuple) else (index,)
    arrays_at = [i for i, item in enumerate(items) if isinstance(item, np.ndarray)]

    def f(x, *index_arrays):
        full = list(items)
        for pos, arr in zip(arrays_at, index_arrays):
            full[pos] = arr
        return x[tuple(full) if isinstance(index, tuple) else full[0]]

    got = fgrad.jit(f)(fnp.asarray(x), *[fnp.asarray(items[i]) for i in arrays_at])
    assert_matches(got, want)


def test_traced_scalar_index_is_a_dynamic_slice():
    x = fnp.asarray(np.arange(12.0).reshape(3, 4))
    f = fgrad.jit(lambda x, i: x[i, 1:])
    assert f(x, fnp.int32(2)).tolist() == [9.0, 10.0, 11.0]
    assert f(x, fnp.int32(-1)).tolist() == [9.0, 10.0, 11.0]
    assert "dynamic_slice" in str(fgrad.make_jaxpr(lambda x, i: x[i])(x, 1))


def _expected_update(x, index, values, kind):
    out = x.copy()
    if kind == "set":
        out[index] = values
    else:
        {"add": np.add, "multiply": np.multiply, "min": np.minimum, "max": np.maximum}[kind].at(out, index, values)
    return out


@pytest.mark.parametrize("kind", ["set", "add", "multiply", "min", "max"])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_at_updates_match_numpy(kind, data):
    shape = data.draw(array_shapes)
    x = data.draw(arrays(np.float32, shape, -5, 5))
    index = data.draw(index_expressions(shape))
    selected, err = _numpy_or_error(x, index)
    assume(err is None)
    if kind == "set":  # with repeated indices only "one of the writes wins": avoid them
        flat = np.arange(x.size).reshape(shape)[index]
        assume(len(np.unique(flat)) == flat.size)
    values = data.draw(st.one_of(arrays(np.float32, selected.shape, -5, 5),
                                 arrays(np.float32, selected.shape[-1:] if selected.ndim else (), -5, 5)))
    try:
        want = _expected_update(x, index, values, kind)
    except (IndexError, ValueError, TypeError):
        assume(False)
    got = getattr(fnp.asarray(x).at[index], kind)(fnp.asarray(values))
    assert_matches(got, want)


def test_at_api_details():
    x = fnp.asarray(np.arange(6.0).reshape(2, 3))
    assert x.at[0, 1].set(9.0).tolist() == [[0, 9, 2], [3, 4, 5]]
    assert x.at[:, 1].add(1).tolist() == [[0, 2, 2], [3, 5, 5]]
    assert x.at[1].multiply(2).tolist() == [[0, 1, 2], [6, 8, 10]]
    assert x.at[[0, 0], [1, 1]].add(1).tolist() == [[0, 3, 2], [3, 4, 5]]   # duplicates accumulate
    assert x.at[..., -1].max(4).tolist() == [[0, 1, 4], [3, 4, 5]]
    assert x.at[0].min(1).tolist() == [[0, 1, 1], [3, 4, 5]]
    assert x.at[1, ::2].subtract(1).tolist() == [[0, 1, 2], [2, 4, 4]]
    assert x.at[0].divide(2).tolist() == [[0, 0.5, 1], [3, 4, 5]]
    assert x.at[1, 0].power(2).tolist() == [[0, 1, 2], [9, 4, 5]]
    assert x.at[0].apply(lambda v: v * 10).tolist() == [[0, 10, 20], [3, 4, 5]]
    assert x.at[1, 1:].get().tolist() == [4, 5]
    assert x.at[x > 3].set(0).tolist() == [[0, 1, 2], [3, 0, 0]]
    # out-of-bounds array indices: updates are dropped, reads clamp (or fill)
    assert x.at[0, fnp.asarray([1, 5])].set(-1).tolist() == [[0, -1, 2], [3, 4, 5]]
    assert x[0, fnp.asarray([1, 5])].tolist() == [1, 2]
    assert np.isnan(np.asarray(x.at[0, fnp.asarray([1, 5])].get(mode="fill"))).tolist() == [False, True]
    i = fnp.asarray(np.array([1, 2], np.int32))
    assert i.at[0].set(2.7).dtype == np.int32 and i.at[0].set(2.7).tolist() == [2, 2]   # cast to x's dtype
    assert x.at[0].set(x[1]).tolist() == [[3, 4, 5], [3, 4, 5]]
    with pytest.raises(ValueError, match="cannot broadcast"):
        x.at[0].set(fnp.ones(4))
    with pytest.raises(TypeError, match=r"\.at\["):
        x[0] = 1.0
    with pytest.raises(TypeError, match="floating-point"):
        i.at[0].divide(2)


def test_at_power_and_apply_repeat_at_repeated_indices():
    """JAX 0.10.2: ``at[idx].power(e)`` raises to the product of the exponents scattered at an
    element and ``at[idx].apply(f)`` applies ``f`` once per occurrence (fgrad applied each once:
    2 ** 2 instead of 2 ** 8, f(x) instead of f(f(f(x)))); out-of-bounds indices are dropped."""
    x = fnp.arange(4.0) + 1
    idx = fnp.asarray([1, 1, 1, 7, -1])
    for f in (lambda v: v.at[idx].power(2.0), jit(lambda v: v.at[idx].power(2.0))):
        assert np.asarray(f(x)).tolist() == [1.0, 256.0, 3.0, 16.0]
    for f in (lambda v: v.at[idx].apply(lambda t: t * 2 + 1), jit(lambda v: v.at[idx].apply(lambda t: t * 2 + 1))):
        assert np.asarray(f(x)).tolist() == [1.0, 23.0, 3.0, 9.0]
    assert np.asarray(fnp.arange(4).at[idx].apply(lambda t: t * 3)).tolist() == [0, 27, 2, 9]
    batched = fgrad.vmap(lambda v: v.at[idx].apply(fnp.negative))(fnp.stack([x, -x]))
    assert np.asarray(batched).tolist() == [[1.0, -2.0, 3.0, -4.0], [-1.0, 2.0, -3.0, 4.0]]


def test_at_under_jit_grad_and_vmap():
    x = fnp.asarray(np.arange(5.0))
    f = lambda x, v, i: x.at[i].set(v * 2) + x.at[1:3].add(v)
    out = fgrad.jit(f)(x, fnp.float32(3.0), fnp.int32(4))
    np.testing.assert_allclose(np.asarray(out), [0, 5, 7, 6, 10])
    g = fgrad.grad(lambda x: fnp.sum(x.at[fnp.asarray([0, 0, 2])].add(x[1]) ** 2))(x)
    xs = np.arange(5.0); y = xs.copy(); np.add.at(y, [0, 0, 2], xs[1])
    want = 2 * y; want[1] += 2 * (y[0] * 2 + y[2])
    np.testing.assert_allclose(np.asarray(g), want, rtol=1e-6)
    check_grads(lambda x, v: x.at[1:, ::2].set(v), (np.ones((3, 4)), np.arange(4.0).reshape(2, 2)))
    check_vmap(lambda x, i: x.at[i].add(1.0), (np.zeros((3, 4), np.float32), np.array([0, 3, 1], np.int32)))


def test_grad_and_vmap_of_indexing():
    x = np.arange(12.0).reshape(3, 4)
    check_grads(lambda x: x[1:, ::-2] * x[0, None, :2], (x,))
    check_grads(lambda x: x[np.array([[0, 2], [1, 1]]), 1:3], (x,))
    check_vmap(lambda x: x[::2, np.array([3, 0])], (np.arange(24.0, dtype=np.float32).reshape(2, 3, 4),))
    check_vmap(lambda x, i: x[i], (np.arange(12.0, dtype=np.float32).reshape(3, 4), np.array([2, 0, -1], np.int32)))


def test_boolean_masks():
    x = np.arange(12.0, dtype=np.float32).reshape(3, 4)
    X = fnp.asarray(x)
    assert_matches(X[x > 4], x[x > 4])
    assert_matches(X[fnp.asarray(x > 4)], x[x > 4])
    assert_matches(X[[True, False, True]], x[[True, False, True]])
    assert_matches(X[1:, x[0] > 1], x[1:, x[0] > 1])
    with pytest.raises(TypeError, match="concrete mask.*fnp.where"):
        fgrad.jit(lambda x: x[x > 4])(X)
    with pytest.raises(IndexError, match="boolean index did not match"):
        X[np.array([True, False])]


def test_index_errors():
    x = fnp.ones((2, 3))
    np.testing.assert_array_equal(np.asarray(x[0, 3]), 1.0)  # JAX clamps a static out-of-bounds index
    with pytest.raises(IndexError, match="out of bounds for axis 0 with size 0"):
        fnp.zeros((0, 3))[0]
    with pytest.raises(IndexError, match="too many indices"):
        x[0, 0, 0]
    with pytest.raises(IndexError, match="single ellipsis"):
        x[..., 0, ...]
    with pytest.raises(TypeError, match="indices must be integers"):
        x[0.5]
    with pytest.raises(TypeError, match="indices must be integers"):
        x[fnp.asarray([0.0, 1.0])]
    with pytest.raises(TypeError, match="not a valid index"):
        x["a"]
    with pytest.raises(ValueError, match="step cannot be zero"):
        x[::0]
    with pytest.raises(IndexError, match="could not be broadcast"):
        x[[0, 1], [0, 1, 2]]
    with pytest.raises(TypeError, match="dynamic_slice"):
        fgrad.jit(lambda x, i: x[i:])(x, 1)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), mode=st.sampled_from([None, "clip", "wrap"]))
def test_take_and_take_along_axis(data, mode):
    shape = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple))
    x = data.draw(arrays(np.float32, shape))
    axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    n = x.size if axis is None else shape[axis]
    lo, hi = (-n, n - 1) if mode is None else (-2 * n, 2 * n)
    idx = data.draw(arrays(np.int32, data.draw(st.lists(st.integers(0, 3), max_size=2).map(tuple)), lo, hi))
    assert_matches(fnp.take(fnp.asarray(x), fnp.asarray(idx), axis=axis, mode=mode),
                   np.take(x, idx, axis=axis, mode=mode or "raise"))
    ax = 0 if axis is None else axis
    along_shape = tuple(s if d == ax % len(shape) else data.draw(st.sampled_from([1, s]))
                        for d, s in enumerate(shape))
    along = data.draw(arrays(np.int32, along_shape, -shape[ax], shape[ax] - 1))
    assert_matches(fnp.take_along_axis(fnp.asarray(x), fnp.asarray(along), ax),
                   np.take_along_axis(x, along, ax))


def test_take_scalar_index_and_method():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert_matches(fnp.take(fnp.asarray(x), 2, axis=1), np.take(x, 2, axis=1))
    assert_matches(fnp.asarray(x).take(np.array([5, 1])), x.take([5, 1]))
    assert_matches(fnp.take(fnp.asarray(x), np.array([7]), axis=0, mode="fill"), np.full((1, 4), np.nan, np.float32))


@pytest.mark.parametrize("mode", [None, "fill", "clip", "wrap"])
def test_take_from_an_empty_axis_raises_as_jax(mode):
    empty = np.zeros((2, 0), np.float32)
    assert fnp.take(empty, np.array([], np.int32), axis=1, mode=mode).shape == (2, 0)
    with pytest.raises(IndexError, match="empty"):      # JAX: "Cannot do a non-empty jnp.take() ..."
        fnp.take(empty, np.array([0, 1]), axis=1, mode=mode)


def test_nonzero_family():
    x = np.array([[0, 2, 0], [3, 0, 4]], np.int32)
    X = fnp.asarray(x)
    for got, want in zip(fnp.nonzero(X), np.nonzero(x)):
        assert_matches(got, want)
    assert_matches(fnp.argwhere(X), np.argwhere(x))
    assert_matches(fnp.flatnonzero(X), np.flatnonzero(x))
    assert_matches(fnp.where(X)[1], np.where(x)[1])
    rows, cols = fgrad.jit(lambda x: fnp.nonzero(x, size=4, fill_value=-1))(X)
    assert rows.tolist() == [0, 1, 1, -1] and cols.tolist() == [1, 0, 2, -1]
    assert fnp.nonzero(X, size=2)[1].tolist() == [1, 0]
    with pytest.raises(TypeError, match="size="):
        fgrad.jit(lambda x: fnp.nonzero(x))(X)


def test_sort_and_argsort():
    x = np.array([[3, 1, 2], [np.nan, -1, 5]], np.float32)
    assert_matches(fnp.sort(fnp.asarray(x)), np.sort(x))
    assert_matches(fnp.sort(fnp.asarray(x), axis=0), np.sort(x, axis=0))
    assert_matches(fnp.sort(fnp.asarray(x), axis=None), np.sort(x, axis=None))
    assert_matches(fnp.argsort(fnp.asarray(x)), np.argsort(x, kind="stable"))
    assert_matches(fnp.argsort(fnp.asarray(np.array([2, 1, 2, 1], np.int32)), descending=True),
                   np.array([0, 2, 1, 3]))
    assert_matches(fnp.asarray(x).sort(axis=0), np.sort(x, axis=0))


def test_index_helpers():
    assert fnp.s_[1:3, None] == (slice(1, 3), None)
    assert fnp.index_exp[2] == (2,)


def test_masks_with_known_values_work_under_grad():
    x = np.array([1.0, -2.0, 3.0])
    g = fgrad.grad(lambda x: fnp.sum(x[x > 0] ** 2))(fnp.asarray(x))
    np.testing.assert_allclose(np.asarray(g), [2.0, 0.0, 6.0])
    with pytest.raises(fgrad.ConcretizationError, match="size="):
        fgrad.vmap(lambda x: fnp.nonzero(x)[0])(fnp.ones((2, 3)))


# --- JAX's out-of-bounds corners (expected values from JAX 0.10.2) ---------------------------------

_I = np.array([-1, 7, -9], np.int32)
_X6 = np.arange(6, dtype=np.float32)
_NAN = np.nan


@pytest.mark.parametrize("mode, take_want, along_want", [
    (None, [5, _NAN, _NAN], [5, _NAN, _NAN]),
    ("fill", [5, _NAN, _NAN], [5, _NAN, _NAN]),
    ("clip", [0, 5, 0], [5, 5, 0]),   # take clamps without wrapping; take_along_axis wraps first
    ("wrap", [5, 1, 3], None),
    ("promise_in_bounds", None, [0, 5, 0]),
])
def test_take_modes_match_jax(mode, take_want, along_want):
    for fn, want in ((fnp.take, take_want), (lambda x, i, mode: fnp.take_along_axis(x, i, 0, mode=mode), along_want)):
        if want is None:
            with pytest.raises(ValueError, match="mode"):
                fn(fnp.asarray(_X6), _I, mode=mode)
            continue
        np.testing.assert_array_equal(np.asarray(fn(fnp.asarray(_X6), _I, mode=mode)), np.array(want, np.float32))
        got = jit(lambda x, i: fn(x, i, mode=mode))(_X6, _I)
        np.testing.assert_array_equal(np.asarray(got), np.array(want, np.float32))
    with pytest.raises(NotImplementedError, match="raise"):
        fnp.take(fnp.asarray(_X6), _I, mode="raise")


def test_fill_defaults_by_dtype():
    # JAX fills NaN for floats, the most negative int, the largest unsigned, True for bool
    assert np.asarray(fnp.take(fnp.arange(6), _I))[1] == np.iinfo(np.int32).min
    assert np.asarray(fnp.take(fnp.arange(6, dtype=fnp.uint8), np.array([7])))[0] == 255
    assert bool(np.asarray(fnp.take(fnp.asarray([False]), np.array([7])))[0])
    assert np.asarray(fnp.take(fnp.arange(6), np.array(7), mode="fill", fill_value=-3)) == -3
    np.testing.assert_array_equal(np.asarray(fnp.take_along_axis(fnp.arange(6).reshape(2, 3), np.array([[0], [5]]),
                                                                 axis=1, fill_value=-3)), [[0], [-3]])


def test_static_out_of_bounds_ints_clamp_on_read_and_drop_on_update():
    x = fnp.asarray(_X6)
    assert float(x[7]) == 5.0 and float(x[-7]) == 0.0  # JAX clamps
    m = fnp.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(np.asarray(m[5, 1:3]), [9.0, 10.0])
    np.testing.assert_array_equal(np.asarray(x.at[7].set(1.0)), _X6)  # JAX drops the update
    np.testing.assert_array_equal(np.asarray(x.at[-7].add(1.0)), _X6)
    np.testing.assert_array_equal(np.asarray(m.at[3, ::2].set(0.0)), np.asarray(m))
    assert np.isnan(float(x.at[7].get(mode="fill")))
    assert float(x.at[-7].get(mode="fill", fill_value=-1.0)) == -1.0
    assert float(x.at[-1].get(mode="fill")) == 5.0


def test_traced_scalar_index_fill_mode_and_mixed_updates():
    x = fnp.asarray(_X6)
    get = jit(lambda x, i: x.at[i].get(mode="fill", fill_value=-1.0))
    assert [float(get(x, np.int32(i))) for i in (-1, 6, -7, 2)] == [5.0, -1.0, -1.0, 2.0]
    m = np.arange(12, dtype=np.float32).reshape(3, 4)
    put = jit(lambda m, i: fnp.asarray(m).at[i, ::2].set(0.0))  # a strided update goes through scatter
    np.testing.assert_array_equal(np.asarray(put(m, np.int32(3))), m)
    want = m.copy()
    want[2, ::2] = 0
    np.testing.assert_array_equal(np.asarray(put(m, np.int32(-1))), want)


# JAX 0.10.2's gradients of sum(read(x)) at x = [1., 2.] for the index vectors [5, 0] and
# [-3, 0]: NumPy-style reads (default mode "promise_in_bounds") read clamped but drop an
# out-of-bounds position's cotangent; "clip" adds it at the clamped position; "fill" drops it.
_OOB_GRAD_CASES = [
    ("getitem", lambda x, i: x[i], [1., 0.], [1., 0.]),
    ("at.get", lambda x, i: x.at[i].get(), [1., 0.], [1., 0.]),
    ("at.get clip", lambda x, i: x.at[i].get(mode="clip"), [1., 1.], [2., 0.]),
    ("at.get fill", lambda x, i: x.at[i].get(mode="fill"), [1., 0.], [1., 0.]),
    ("at.get promise", lambda x, i: x.at[i].get(mode="promise_in_bounds"), [1., 0.], [1., 0.]),
    ("take", lambda x, i: fnp.take(x, i), [1., 0.], [1., 0.]),
    ("take clip", lambda x, i: fnp.take(x, i, mode="clip"), [1., 1.], [2., 0.]),
    ("take_along_axis", lambda x, i: fnp.take_along_axis(x, i, 0), [1., 0.], [1., 0.]),
    ("take_along_axis clip", lambda x, i: fnp.take_along_axis(x, i, 0, mode="clip"), [1., 1.], [2., 0.]),
    ("take_along_axis promise",
     lambda x, i: fnp.take_along_axis(x, i, 0, mode="promise_in_bounds"), [1., 0.], [1., 0.]),
]


@pytest.mark.parametrize("name,read,want_high,want_negative", _OOB_GRAD_CASES, ids=[c[0] for c in _OOB_GRAD_CASES])
@pytest.mark.parametrize("compiled", [False, True])
def test_out_of_bounds_gather_gradients_follow_jax_per_mode(name, read, want_high, want_negative, compiled):
    x = np.array([1., 2.], np.float32)
    for index, want in (([5, 0], want_high), ([-3, 0], want_negative)):
        g = fgrad.grad(lambda x, i: fnp.sum(read(x, i)))
        g = jit(g) if compiled else g
        np.testing.assert_array_equal(g(x, fnp.asarray(index)), want)


def test_out_of_bounds_gradients_with_several_index_arrays_and_pib_negatives():
    x = np.arange(6., dtype=np.float32).reshape(2, 3)
    # JAX: any out-of-bounds component drops the whole update
    np.testing.assert_array_equal(fgrad.grad(lambda x: fnp.sum(x[fnp.asarray([5, 0]), fnp.asarray([1, 7])]))(x),
                                  np.zeros((2, 3)))
    np.testing.assert_array_equal(jit(fgrad.grad(lambda x: fnp.sum(x[fnp.asarray([4, 0]), None, ::-1])))(x),
                                  [[1., 1., 1.], [0., 0., 0.]])
    np.testing.assert_array_equal(fgrad.grad(lambda x: fnp.sum(x[fnp.asarray([4, 0]), 1]))(x),
                                  [[0., 1., 0.], [0., 0., 0.]])
    # a traced scalar index is a dynamic slice: it clamps, and so does its gradient
    np.testing.assert_array_equal(fgrad.grad(lambda x, k: x[k])(x[0, :2], 5), [0., 1.])
    # take_along_axis "promise_in_bounds" does not wrap negatives: -1 reads x[0], gradient dropped
    v = np.array([1., 2.], np.float32)
    idx = fnp.asarray([-1, -3, 5, 0])
    read = lambda v: fnp.take_along_axis(v, idx, 0, mode="promise_in_bounds")
    np.testing.assert_array_equal(read(v), [1., 1., 2., 1.])
    np.testing.assert_array_equal(fgrad.grad(lambda v: fnp.sum(read(v)))(v), [1., 0.])
    np.testing.assert_array_equal(fgrad.grad(lambda v: fnp.sum(fnp.take_along_axis(v, idx, 0, mode="clip")))(v),
                                  [2., 2.])


# --- issue 17: 0-d boolean masks; descending sorts; sort options -------------------------------------

@pytest.mark.parametrize("index", [
    np.array(True), np.array(False), (0, np.array(True)), (Ellipsis, np.array(True)),
    (np.array(True), 1), (slice(None), np.array(False), 1), (np.array(True), Ellipsis, np.array(False)),
    (np.array(True), None, 1, Ellipsis)])
def test_0d_boolean_mask_adds_an_axis_like_numpy(index):
    x = np.arange(6).reshape(2, 3).astype(np.int32)
    as_fgrad = tuple(fnp.asarray(i) if isinstance(i, np.ndarray) else i
                     for i in (index if isinstance(index, tuple) else (index,)))
    assert_matches(fnp.asarray(x)[as_fgrad], x[index])
    assert_matches(fnp.asarray(x)[index], x[index])


def test_0d_boolean_mask_on_a_0d_array():
    assert fnp.asarray(5)[fnp.asarray(True)].tolist() == [5]
    empty = fnp.asarray(5)[fnp.asarray(False)]
    assert empty.shape == (0,) and empty.dtype == np.int32
    assert float(fgrad.grad(lambda x: x[fnp.asarray(True)].sum())(3.0)) == 1.0
    with pytest.raises(fgrad.core.trace.ConcretizationError, match="concrete mask"):
        fgrad.jit(lambda x, m: x[m])(fnp.asarray(5), fnp.asarray(True))


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.uint32, np.float32])
def test_descending_sorts_handle_extremes_and_keep_ties_stable(dtype):
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else np.finfo(dtype)
    x = np.array([info.min, 0, 5, info.max, 0, info.min], dtype)
    with fgrad.config.override(enable_x64=True):
        for argsort in (fnp.argsort, fgrad.jit(lambda a: fnp.argsort(a, descending=True))):
            got = argsort(fnp.asarray(x), descending=True) if argsort is fnp.argsort else argsort(fnp.asarray(x))
            # stable descending: equal elements keep their input order (JAX's stable=True)
            want = sorted(range(len(x)), key=lambda i: -int(x[i]) if x.dtype.kind in "iu" else -float(x[i]))
            assert got.tolist() == want
        assert_matches(fnp.sort(fnp.asarray(x), descending=True), np.sort(x)[::-1])
    assert fnp.argsort(fnp.asarray([-2**31, 0, 5], fnp.int32), descending=True).tolist() == [2, 1, 0]


def test_sort_kind_is_honoured_and_order_is_rejected():
    x = np.array([3, 1, 2, 1], np.int32)
    for kind in ("quicksort", "mergesort", "heapsort", "stable"):
        assert_matches(fnp.sort(x, kind=kind), np.sort(x, kind=kind))
        assert_matches(fnp.argsort(x, kind=kind), np.argsort(x, kind="stable"))
        assert_matches(fnp.asarray(x).sort(kind=kind), np.sort(x))
    with pytest.raises(ValueError, match="kind='bubble'"):
        fnp.sort(x, kind="bubble")
    for sort in (fnp.sort, fnp.argsort):
        with pytest.raises(TypeError, match="order='a'.*structured"):
            sort(x, order="a")


# JAX 0.10.2's results for x = arange(12, int32).reshape(4, 3), recorded once
_JAX_UPDATE_MODES = {
    "set clip static": [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, -1, 11]],
    "set clip neg": [[-1, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]],
    "add clip repeated": [[100, 1, 2], [103, 4, 5], [106, 7, 8], [109, 10, 11]],
    "add drop repeated": [[0, 1, 2], [103, 4, 5], [106, 7, 8], [9, 10, 11]],
    "set clip slice": [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, -2, -2]],
    "max clip arr": [[50, 50, 50], [3, 4, 5], [6, 7, 8], [50, 50, 50]],
    "jit set clip traced": [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, -3]],
    "jit set drop traced": [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]],
    "apply clip": [[0, 1, 20], [3, 4, 5], [6, 7, 8], [9, 10, 110]],
    "power clip": [[0, 1, 2], [3, 4, 5], [6, 7, 8], [81, 10, 11]],
}


def _update_mode_cases(x2):
    i = np.array([-30, 1, 7, 2])
    return {
        "set clip static": lambda: x2.at[9, 1].set(-1, mode="clip"),
        "set clip neg": lambda: x2.at[-9, 0].set(-1, mode="clip"),
        "add clip repeated": lambda: x2.at[i, 0].add(100, mode="clip"),
        "add drop repeated": lambda: x2.at[i, 0].add(100, mode="drop"),
        "set clip slice": lambda: x2.at[7, 1:].set(-2, mode="clip"),
        "max clip arr": lambda: x2.at[np.array([5, 0])].max(50, mode="clip"),
        "jit set clip traced": lambda: fgrad.jit(lambda v, k: v.at[k, 2].set(-3, mode="clip"))(x2, 10),
        "jit set drop traced": lambda: fgrad.jit(lambda v, k: v.at[k, 2].set(-3))(x2, 10),
        "apply clip": lambda: x2.at[np.array([4, -40]), 2].apply(lambda v: v * 10, mode="clip"),
        "power clip": lambda: x2.at[9, 0].power(2, mode="clip"),
    }


@pytest.mark.parametrize("case", sorted(_JAX_UPDATE_MODES))
def test_update_modes_match_jax(case):
    x2 = fnp.arange(12, dtype=fnp.int32).reshape(4, 3)
    assert np.asarray(_update_mode_cases(x2)[case]()).tolist() == _JAX_UPDATE_MODES[case]


def test_update_options_are_checked_not_dropped():
    x = fnp.arange(5.0)
    with pytest.raises(ValueError, match="mode must be None, 'drop', 'fill', 'promise_in_bounds' or 'clip'"):
        x.at[1].set(0.0, mode="wrap")
    with pytest.raises(TypeError):
        x.at[1].add(1.0, fill_value=3.0)       # an option JAX's updates do not have
    np.testing.assert_array_equal(x.at[1].set(9.0, indices_are_sorted=True, unique_indices=True),
                                  [0, 9, 2, 3, 4])


def test_clipped_update_gradient():
    # d/dx of x.at[7].set(x[0] * 3, mode="clip"): the write lands on the last element
    f = lambda x: fnp.sum(x.at[7].set(x[0] * 3.0, mode="clip") * fnp.arange(1.0, 5.0))
    np.testing.assert_allclose(np.asarray(fgrad.grad(f)(fnp.ones(4))), [1 + 12.0, 2, 3, 0])


def test_take_hints_and_take_along_axis_without_negative_wrapping():
    # JAX 0.10.2's answers
    x = fnp.arange(4.0)
    np.testing.assert_array_equal(np.asarray(fnp.take(x, fnp.array([3, 1]), unique_indices=True,
                                                      indices_are_sorted=False)), [3.0, 1.0])
    np.testing.assert_array_equal(np.asarray(fnp.take(x, fnp.array([5]), None, None, None, False, False, -7.0)), [-7.0])
    i = fnp.array([-1, 1])
    np.testing.assert_array_equal(np.asarray(fnp.take_along_axis(x, i, axis=0, wrap_negative_indices=False)),
                                  [np.nan, 1.0])
    np.testing.assert_array_equal(np.asarray(fnp.take_along_axis(x, i, axis=0, mode="clip",
                                                                 wrap_negative_indices=False)), [0.0, 1.0])
    np.testing.assert_array_equal(np.asarray(fnp.take_along_axis(x, i, axis=0, wrap_negative_indices=True)),
                                  [3.0, 1.0])
