"""Reductions: eager results vs NumPy on hypothesis-drawn shapes (0-size and size-1 dims,
scalars) and values (NaN, ties, zeros); shape/dtype errors; derivatives vs finite
differences to second order, with JAX's tie convention for max/min and exact derivatives
of products with zeros; vmap vs a Python loop; staged jaxprs typecheck."""
import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import fgrad
from fgrad import lax
from fgrad import numpy as fnp
from fgrad.core.ir import typecheck_jaxpr

from tests.util import check_grads, check_vmap

SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
F32, I32, U8, BOOL = np.dtype(np.float32), np.dtype(np.int32), np.dtype(np.uint8), np.dtype(np.bool_)


def values(dtype, shape):
    if dtype == BOOL:
        return hnp.arrays(dtype, shape)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return hnp.arrays(dtype, shape, elements=st.integers(max(info.min, -50), min(info.max, 50)))
    special = st.sampled_from([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan])
    return hnp.arrays(dtype, shape, elements=st.one_of(special, st.floats(-4, 4, width=32)))


@st.composite
def operand_and_axes(draw, dtypes=(F32, I32)):
    dtype = draw(st.sampled_from(dtypes))
    shape = draw(SHAPES)
    x = draw(values(dtype, shape))
    axes = draw(st.lists(st.integers(0, max(len(shape) - 1, 0)), unique=True, max_size=len(shape)))
    return x, tuple(sorted(axes))


def run(fn, x, *args, **kwargs):
    return np.asarray(fn(fnp.asarray(x), *args, **kwargs))


def assert_same(got, want):
    want = np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, got.dtype, want.shape, want.dtype)
    np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)


# --- eager results vs NumPy --------------------------------------------------------------------

@given(operand_and_axes())
def test_reduce_sum_and_prod_match_numpy(case):
    x, axes = case
    with np.errstate(all="ignore"):
        assert_same(run(lax.reduce_sum, x, axes), np.sum(x, axis=axes, dtype=x.dtype))
        assert_same(run(lax.reduce_prod, x, axes), np.prod(x, axis=axes, dtype=x.dtype))


@given(operand_and_axes((F32, I32, U8, BOOL)))
def test_reduce_max_min_match_numpy_with_identity_for_empty_axes(case):
    x, axes = case
    if x.dtype == BOOL:
        lo, hi = False, True
    elif x.dtype.kind == "f":
        lo, hi = -np.inf, np.inf
    else:
        lo, hi = np.iinfo(x.dtype).min, np.iinfo(x.dtype).max
    assert_same(run(lax.reduce_max, x, axes), np.max(x, axis=axes, initial=lo))
    assert_same(run(lax.reduce_min, x, axes), np.min(x, axis=axes, initial=hi))


def test_reduce_max_propagates_nan_and_handles_infinities():
    x = np.array([[1.0, np.nan, 3.0], [-np.inf, -np.inf, -np.inf]], np.float32)
    np.testing.assert_array_equal(run(lax.reduce_max, x, (1,)), [np.nan, -np.inf])
    np.testing.assert_array_equal(run(lax.reduce_min, x, (1,)), [np.nan, -np.inf])


@given(operand_and_axes((BOOL, I32, U8)))
def test_reduce_and_or_are_all_any_for_bools_and_bitwise_for_ints(case):
    x, axes = case
    if x.dtype == BOOL:
        assert_same(run(lax.reduce_and, x, axes), np.all(x, axis=axes))
        assert_same(run(lax.reduce_or, x, axes), np.any(x, axis=axes))
    else:
        ones = np.array(-1).astype(x.dtype)
        assert_same(run(lax.reduce_and, x, axes), np.bitwise_and.reduce(x, axis=axes, initial=ones))
        assert_same(run(lax.reduce_or, x, axes), np.bitwise_or.reduce(x, axis=axes, initial=0))


@given(st.data())
def test_argmax_argmin_match_numpy_first_occurrence_and_first_nan(data):
    dtype = data.draw(st.sampled_from([F32, I32, BOOL]))
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    # few distinct values, so ties are common
    elements = st.sampled_from([0.0, 1.0, -1.0, np.nan]) if dtype == F32 else None
    x = data.draw(hnp.arrays(dtype, shape, elements=elements) if elements is not None else values(dtype, shape))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    index_dtype = data.draw(st.sampled_from([np.int32, np.uint8]))
    got = run(lax.argmax, x, axis, index_dtype)
    assert got.dtype == index_dtype
    np.testing.assert_array_equal(got, np.argmax(x, axis=axis))
    np.testing.assert_array_equal(run(lax.argmin, x, axis), np.argmin(x, axis=axis))


@given(st.data())
def test_cumsum_matches_numpy_forward_and_reverse(data):
    dtype = data.draw(st.sampled_from([F32, I32]))
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4))
    x = data.draw(values(dtype, shape))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    with np.errstate(all="ignore"):
        assert_same(run(lax.cumsum, x, axis), np.cumsum(x, axis=axis, dtype=dtype))
        want = np.flip(np.cumsum(np.flip(x, axis), axis=axis, dtype=dtype), axis)
        assert_same(run(lax.cumsum, x, axis, reverse=True), want)


def test_scalar_reductions_over_no_axes_are_identity():
    x = np.float32(2.5)
    for fn in (lax.reduce_sum, lax.reduce_max, lax.reduce_min, lax.reduce_prod):
        assert_same(run(fn, x, ()), x)


# --- shape and dtype errors ---------------------------------------------------------------------

@pytest.mark.parametrize("call, error, match", [
    (lambda x: lax.reduce_sum(x, (2,)), ValueError, "out of range"),
    (lambda x: lax.reduce_max(x, (0, 0)), ValueError, "repeated axis"),
    (lambda x: lax.reduce_sum(x > 0, (0,)), TypeError, "reduce_sum.*bool"),
    (lambda x: lax.reduce_and(x, (0,)), TypeError, "reduce_and.*f32"),
    (lambda x: lax.cumsum(x, 3), ValueError, "cumsum.*out of range"),
    (lambda x: lax.cumsum(x > 0, 0), TypeError, "cumsum.*bool"),
    (lambda x: lax.argmax(x, 0, np.float32), TypeError, "index_dtype"),
    (lambda x: lax.argmax(x, (0, 1)), TypeError, "axis must be an int"),
    (lambda x: lax.argmin(fnp.ones((2, 0)), 1), ValueError, "argmin: axis 1 .* is empty"),
])
def test_errors_name_the_op_and_the_problem(call, error, match):
    with pytest.raises(error, match=match):
        call(fnp.ones((2, 3)))


# --- derivatives ----------------------------------------------------------------------------

def distinct(shape, seed=0):
    """Values with no ties (finite differences are exact away from ties)."""
    n = int(np.prod(shape))
    return (np.random.default_rng(seed).permutation(n).reshape(shape) - n / 2) / 3


@st.composite
def float_operand_and_axes(draw, min_side=1):
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=min_side, max_side=3))
    axes = draw(st.lists(st.integers(0, max(len(shape) - 1, 0)), unique=True, max_size=len(shape)))
    return distinct(shape, draw(st.integers(0, 100))), tuple(sorted(axes))


@given(float_operand_and_axes(), st.sampled_from(["reduce_sum", "reduce_max", "reduce_min"]))
def test_sum_max_min_gradients_to_second_order(case, name):
    x, axes = case
    check_grads(lambda x: getattr(lax, name)(x, axes), (x,), order=2)


@given(float_operand_and_axes(), st.integers(0, 2))
def test_reduce_prod_gradients_are_exact_with_zeros(case, zeros):
    x, axes = case
    # factors near 1 keep the product (and the finite differences' truncation error) moderate
    flat = 0.9 + 0.3 * np.tanh(x.reshape(-1))
    flat[:min(zeros, flat.size)] = 0.0  # 0, 1 or 2 zeros: the derivative is not prod / x there
    check_grads(lambda x: lax.reduce_prod(x, axes), (flat.reshape(x.shape),), order=2)


def test_reduce_prod_gradient_with_one_and_two_zeros_by_hand():
    g = fgrad.grad(lambda x: lax.reduce_prod(x, (0,)))
    np.testing.assert_allclose(np.asarray(g(fnp.asarray([2.0, 0.0, 3.0]))), [0.0, 6.0, 0.0])
    np.testing.assert_allclose(np.asarray(g(fnp.asarray([2.0, 0.0, 0.0]))), [0.0, 0.0, 0.0])


@given(st.data())
def test_cumsum_gradients_to_second_order(data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    axis = data.draw(st.integers(0, len(shape) - 1))
    reverse = data.draw(st.booleans())
    check_grads(lambda x: lax.square(lax.cumsum(x, axis, reverse)), (distinct(shape),), order=2)


def test_cumsum_transpose_is_the_reversed_cumsum():
    x = fnp.asarray(np.arange(4.0, dtype=np.float32))
    _, vjp = fgrad.vjp(lambda x: lax.cumsum(x, 0), x)
    np.testing.assert_allclose(np.asarray(vjp(fnp.ones(4))[0]), [4.0, 3.0, 2.0, 1.0])
    jaxpr = fgrad.make_jaxpr(lambda c: vjp(c))(fnp.ones(4))
    assert "cumsum[axis=0 reverse=True]" in str(jaxpr)


@pytest.mark.parametrize("reducer, pick", [(lax.reduce_max, np.max), (lax.reduce_min, np.min)])
def test_ties_split_the_tangent_equally(reducer, pick):
    x = np.array([[3.0, 1.0, 3.0, 3.0], [0.0, 2.0, 2.0, -1.0]])
    if pick is np.min:
        x = -x
    t = np.array([[1.0, 10.0, 2.0, 6.0], [5.0, 4.0, 8.0, 7.0]])
    _, t_out = fgrad.jvp(lambda x: reducer(x, (1,)), (fnp.asarray(x),), (fnp.asarray(t),))
    np.testing.assert_allclose(np.asarray(t_out), [3.0, 6.0])  # mean over the tied positions
    ct = fgrad.grad(lambda x: lax.reduce_sum(reducer(x, (1,)), (0,)))(fnp.asarray(x))
    np.testing.assert_allclose(np.asarray(ct), [[1 / 3, 0, 1 / 3, 1 / 3], [0, 0.5, 0.5, 0]])
    # at a two-way tie the average is also what central differences measure (to first order:
    # the derivative jumps there)
    check_grads(lambda x: reducer(x, (1,)), (x[1:],), order=1)


def test_argmax_and_integer_reductions_are_not_differentiable():
    def f(x):
        i = lax.argmax(x, 0)
        return lax.reduce_sum(x, (0,)) * lax.convert_element_type(i, np.float32)
    np.testing.assert_array_equal(np.asarray(fgrad.grad(f)(fnp.asarray([1.0, 3.0]))), [1.0, 1.0])
    closed = fgrad.make_jaxpr(fgrad.grad(lambda x: lax.reduce_max(x, (0,))))(fnp.ones(3))
    typecheck_jaxpr(closed.jaxpr)


# --- vmap -------------------------------------------------------------------------------------

REDUCERS = [
    lambda x: lax.reduce_sum(x, (1,)),
    lambda x: lax.reduce_max(x, (0, 2)),
    lambda x: lax.reduce_min(x, (2,)),
    lambda x: lax.reduce_prod(x, (0,)),
    lambda x: lax.reduce_or(x > 0, (1,)),
    lambda x: lax.reduce_and(x > 0, (0, 1, 2)),
    lambda x: lax.argmax(x, 1),
    lambda x: lax.argmin(x, 2),
    lambda x: lax.cumsum(x, 1),
    lambda x: lax.cumsum(x, 2, reverse=True),
]


@pytest.mark.parametrize("in_axis", [0, 1, -1])
@pytest.mark.parametrize("fn", REDUCERS)
def test_vmap_matches_a_loop(fn, in_axis):
    x = np.random.default_rng(0).standard_normal((3, 2, 4, 5)).astype(np.float32)
    check_vmap(fn, (fnp.asarray(np.moveaxis(x, 0, in_axis)),), in_axes=in_axis)


@pytest.mark.parametrize("fn", REDUCERS)
def test_vmap_with_an_unbatched_operand(fn):
    x = fnp.asarray(np.random.default_rng(1).standard_normal((2, 4, 5)).astype(np.float32))
    offsets = fnp.asarray(np.arange(3, dtype=np.float32))

    def g(x, offset):
        out = fn(x)
        return out, offset * 2.0

    check_vmap(g, (x, offsets), in_axes=(None, 0))


def test_vmap_of_gradients_of_reductions():
    x = distinct((3, 4, 2))
    check_vmap(fgrad.grad(lambda x: lax.reduce_sum(lax.reduce_max(x, (0,)) * lax.reduce_prod(x, (0,)), (0,))),
               (fnp.asarray(x.astype(np.float32)),), in_axes=2, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reverse", [False, True])
def test_cumsum_of_minus_zeros_starts_from_plus_zero(reverse):
    """JAX 0.10.2: jnp.cumsum([-0., 1.]) is [0., 1.] (the running sum starts at +0.), eagerly and
    compiled; NumPy's cumsum keeps the -0. The sign matters to signbit, copysign, arctan2."""
    x = np.array([-0., -0., 1.], np.float32)
    if reverse:
        x = x[::-1].copy()
    f = lambda a: lax.cumsum(a, axis=0, reverse=reverse)
    for got in (f(x), fgrad.jit(f)(x)):
        np.testing.assert_array_equal(np.signbit(np.asarray(got)), [False, False, False])
