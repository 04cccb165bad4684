"""fnp.pad's modes beyond constant/edge/wrap/even reflections: 'linear_ramp' (end_values), the
statistics 'mean', 'median', 'maximum', 'minimum' (stat_length), odd reflections, 'empty' and a
callable; values vs NumPy's pad (and JAX 0.10.2's, recorded, where the two differ), jit, vmap and
gradients vs finite differences."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fgrad
from fgrad import numpy as fnp

from np_helpers import arrays, assert_matches, nonempty_shapes
from tests.util import check_grads

pytestmark = pytest.mark.filterwarnings("error::fgrad.ReferencePathWarning")

widths_for = lambda ndim: st.one_of(  # noqa: E731
    st.integers(0, 5), st.tuples(st.integers(0, 5), st.integers(0, 5)),
    st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=ndim, max_size=ndim))
lengths_for = lambda ndim: st.one_of(  # noqa: E731
    st.none(), st.integers(1, 5), st.tuples(st.integers(1, 5), st.integers(1, 5)),
    st.lists(st.tuples(st.integers(1, 5), st.integers(1, 5)), min_size=ndim, max_size=ndim))


def _kwargs(data, mode, ndim, dtype):
    if mode == "linear_ramp":
        value = st.integers(-20, 20) if dtype.kind in "iu" else st.floats(-20, 20, width=32)
        return {"end_values": data.draw(st.one_of(value, st.tuples(value, value),
                                                  st.lists(st.tuples(value, value), min_size=ndim, max_size=ndim)))}
    if mode in ("mean", "median", "maximum", "minimum"):
        stat_length = data.draw(lengths_for(ndim))
        return {} if stat_length is None else {"stat_length": stat_length}
    return {"reflect_type": data.draw(st.sampled_from(["even", "odd"]))}


@settings(max_examples=60, deadline=None)
@given(data=st.data(),
       mode=st.sampled_from(["linear_ramp", "mean", "median", "maximum", "minimum", "reflect", "symmetric"]),
       dtype=st.sampled_from([np.float32, np.int32]))
def test_pad_modes_match_numpy(data, mode, dtype):
    shape = data.draw(nonempty_shapes)
    x = data.draw(arrays(dtype, shape, -10, 10))
    width = data.draw(widths_for(len(shape)))
    kwargs = _kwargs(data, mode, len(shape), np.dtype(dtype))
    want = np.pad(x, width, mode=mode, **kwargs)
    assert_matches(fnp.pad(fnp.asarray(x), width, mode=mode, **kwargs), want, rtol=1e-5, atol=1e-5)
    jitted = fgrad.jit(lambda a: fnp.pad(a, width, mode=mode, **kwargs))
    assert_matches(jitted(fnp.asarray(x)), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["mean", "median", "maximum", "minimum"])
def test_statistic_modes_propagate_nan_as_numpy(mode):
    x = np.array([1., np.nan, 3., -2.], np.float32)
    want = np.pad(x, (2, 1), mode=mode, stat_length=(1, 2))     # JAX 0.10.2 gives the same
    assert_matches(fnp.pad(fnp.asarray(x), (2, 1), mode=mode, stat_length=(1, 2)), want)
    padded = np.asarray(fnp.pad(fnp.asarray(x), 1, mode=mode))   # the statistic of the whole axis
    assert np.isnan(padded[[0, -1]]).all() and np.array_equal(padded[1:-1], x, equal_nan=True)


def test_integer_statistics_round_half_to_even_like_numpy_and_jax():
    x = np.array([[1, 2, 7], [4, 10, 6]], np.int32)
    # JAX 0.10.2 and NumPy: both these arrays
    want = np.array([[2, 2, 1, 2, 7, 7], [2, 2, 1, 2, 7, 7], [7, 7, 4, 10, 6, 6],
                     [4, 4, 2, 6, 6, 6], [4, 4, 2, 6, 6, 6]], np.int32)
    assert_matches(fnp.pad(x, ((1, 2), (2, 1)), mode="mean", stat_length=((1, 2), (2, 1))), want)
    assert_matches(fnp.pad(np.array([1, 2, 3, 4], np.int32), 2, mode="median"), [2, 2, 1, 2, 3, 4, 2, 2],
                   dtype=np.int32)
    assert_matches(fnp.pad(np.array([1, 2, 4, 5], np.int32), 2, mode="median"), [3, 3, 1, 2, 4, 5, 3, 3],
                   dtype=np.int32)


def test_odd_reflections_wider_than_the_axis():
    z = np.array([1., 2., 4., 7.5], np.float32)
    # JAX 0.10.2 (and NumPy): reflect / symmetric, odd, (9, 7)
    want = {"reflect": [-18.5, -15., -13., -12., -11., -9., -5.5, -2., 0., 1., 2., 4., 7.5, 11., 13., 14., 15.,
                        17., 20.5, 24.],
            "symmetric": [-12., -12., -11., -9., -5.5, -5.5, -2., 0., 1., 1., 2., 4., 7.5, 7.5, 11., 13., 14.,
                          14., 15., 17.]}
    for mode, values in want.items():
        assert_matches(fnp.pad(z, (9, 7), mode=mode, reflect_type="odd"), np.array(values, np.float32))
    assert_matches(fnp.pad(np.array([3.], np.float32), (2, 3), mode="reflect", reflect_type="odd"),
                   np.full(6, 3., np.float32))
    # unsigned: 2 * edge - x wraps around, as in NumPy and JAX
    assert_matches(fnp.pad(np.array([3, 5], np.uint8), 3, mode="reflect", reflect_type="odd"),
                   np.array([253, 255, 1, 3, 5, 7, 9, 11], np.uint8))


def test_integer_linear_ramp_floors_numpys_exact_ramp():
    x = np.array([[1, 2, 7], [4, 10, 6]], np.int32)
    kwargs = dict(mode="linear_ramp", end_values=((-3, 20), (5, -7)))
    # NumPy's answer. JAX 0.10.2 gives [5, 2, 0, ...] in row 1: its float32 linspace computes
    # 5 * (2/3) + (-1) * (1/3) = 2.9999998 and floors it to 2; fgrad's ramp is NumPy's 5 - 2 = 3.
    assert_matches(fnp.pad(x, ((2, 3), (3, 2)), **kwargs), np.pad(x, ((2, 3), (3, 2)), **kwargs))
    z = np.array([1., 2., 4., 7.5], np.float32)
    assert_matches(fnp.pad(z, (3, 4), mode="linear_ramp", end_values=(-1., 10.)),
                   [-1., -1 / 3, 1 / 3, 1., 2., 4., 7.5, 8.125, 8.75, 9.375, 10.], dtype=np.float32)


def test_empty_mode_scalars_and_callable_modes():
    z = np.array([1., 2., 4., 7.5], np.float32)
    assert_matches(fnp.pad(z, 2, mode="empty"), [0, 0, 1, 2, 4, 7.5, 0, 0], dtype=np.float32)  # JAX: zeros
    assert_matches(fnp.pad(np.float32(3), 2, mode="mean"), np.float32(3))

    def custom(row, pad_width, iaxis, kwargs):   # JAX's documented example
        before, after = pad_width
        row = row.at[:before].set(kwargs.get("before_value", 0))
        return row.at[len(row) - after:].set(kwargs.get("after_value", 0))
    assert_matches(fnp.pad(np.array([2, 3, 4], np.int32), 2, custom, before_value=-10, after_value=10),
                   np.array([-10, -10, 2, 3, 4, 10, 10], np.int32))
    def custom_numpy(row, pad_width, iaxis, kwargs):   # NumPy's callables write into the row
        before, after = pad_width
        row[:before] = kwargs.get("before_value", 0)
        row[len(row) - after:] = kwargs.get("after_value", 0)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert_matches(fnp.pad(x, ((1, 0), (0, 2)), custom, after_value=5.),
                   np.pad(x, ((1, 0), (0, 2)), custom_numpy, after_value=5.))


def test_gradients_match_jax_and_finite_differences():
    z = np.array([1., 2., 4., 7.5], np.float32)
    ramp = fgrad.grad(lambda v: (fnp.pad(v, (3, 2), mode="linear_ramp", end_values=(1., 2.)) ** 2).sum())(z)
    np.testing.assert_allclose(np.asarray(ramp), [4., 4., 8., 19.75], rtol=1e-6)          # JAX 0.10.2
    med = fgrad.grad(lambda v: (fnp.pad(v, (3, 2), mode="median", stat_length=3) * fnp.arange(9.)).sum())(z)
    np.testing.assert_allclose(np.asarray(med), [3., 7., 20., 6.], rtol=1e-6)               # JAX 0.10.2
    odd = fgrad.grad(lambda v: (fnp.pad(v, (5, 6), mode="reflect", reflect_type="odd") * fnp.arange(15.)).sum())(z)
    np.testing.assert_allclose(np.asarray(odd), [-64., 4., 9., 156.], rtol=1e-6)            # JAX 0.10.2
    x = np.array([[0.3, -1.2, 2.0], [1.1, 0.4, -0.7]])
    for mode, kwargs in [("linear_ramp", {"end_values": 0.5}), ("mean", {"stat_length": 2}),
                         ("maximum", {}), ("minimum", {"stat_length": (1, 2)}), ("median", {}),
                         ("symmetric", {"reflect_type": "odd"}), ("reflect", {"reflect_type": "odd"})]:
        check_grads(lambda a, mode=mode, kwargs=kwargs: fnp.pad(a, ((1, 2), (3, 1)), mode=mode, **kwargs),
                    (x,), order=2)


def test_pad_under_vmap_matches_a_loop():
    x = np.random.default_rng(0).standard_normal((3, 4, 5)).astype(np.float32)
    for mode, kwargs in [("linear_ramp", {"end_values": (1., -1.)}), ("median", {"stat_length": 2}),
                         ("mean", {}), ("reflect", {"reflect_type": "odd"})]:
        got = fgrad.vmap(lambda a: fnp.pad(a, ((1, 2), (2, 3)), mode=mode, **kwargs))(x)
        want = np.stack([np.pad(r, ((1, 2), (2, 3)), mode=mode, **kwargs) for r in x])
        assert_matches(got, want, rtol=1e-5, atol=1e-6)


def test_pad_errors():
    z = fnp.arange(4.0)
    with pytest.raises(ValueError, match="stat_length"):
        fnp.pad(z, 2, mode="mean", stat_length=0)
    with pytest.raises(ValueError, match="unsupported keyword arguments for mode 'mean'"):
        fnp.pad(z, 2, mode="mean", end_values=0)
    with pytest.raises(ValueError, match="reflect_type"):
        fnp.pad(z, 2, mode="reflect", reflect_type="sideways")
    with pytest.raises(ValueError, match="empty axis 0"):
        fnp.pad(fnp.zeros((0, 3)), 1, mode="maximum")
    assert fnp.pad(fnp.zeros((0, 3)), ((0, 0), (1, 1)), mode="maximum").shape == (0, 5)   # as NumPy
