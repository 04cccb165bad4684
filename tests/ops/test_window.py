"""reduce_window (sum, max, min): eager results vs a direct loop on hypothesis-drawn shapes
and window parameters (0-size dims, scalars, negative padding, base and window dilation);
derivatives vs finite differences to second order (max-pooling included); the select-and-
gather/scatter pair; vmap vs a Python loop with in_axes 0, 1, -1 and None; shape errors."""
import itertools

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import fgrad
from fgrad import lax
from fgrad import numpy as fnp
from fgrad.core.ir import typecheck_jaxpr
from fgrad.ops.window import select_and_gather_add_p, select_and_scatter_add_p

from tests.util import check_grads, check_vmap

IDENTITY = {"sum": 0.0, "max": -np.inf, "min": np.inf}


def reference(x, computation, window, strides, padding, base_dilation, window_dilation):
    """The definition: dilate and pad with the identity, then reduce each window by a loop."""
    fill = IDENTITY[computation]
    dilated = np.full([(s - 1) * d + 1 if s else 0 for s, d in zip(x.shape, base_dilation)], fill)
    dilated[tuple(slice(None, None, d) for d in base_dilation)] = x
    if x.ndim:
        dilated = np.pad(dilated, [(max(lo, 0), max(hi, 0)) for lo, hi in padding], constant_values=fill)
        dilated = dilated[tuple(slice(max(0, -lo), dilated.shape[k] - max(0, -hi))
                                for k, (lo, hi) in enumerate(padding))]
    extents = [(k - 1) * d + 1 for k, d in zip(window, window_dilation)]
    out_sizes = [(p - e) // s + 1 if p >= e else 0 for p, e, s in zip(dilated.shape, extents, strides)]
    reduce = {"sum": sum, "max": max, "min": min}[computation]
    out = np.zeros(out_sizes)
    for pos in itertools.product(*[range(s) for s in out_sizes]):
        taps = itertools.product(*[range(k) for k in window])
        out[pos] = reduce(dilated[tuple(p * s + t * d for p, s, t, d in zip(pos, strides, tap, window_dilation))]
                          for tap in taps)
    return out


def distinct(shape, seed=0):
    n = int(np.prod(shape))
    return ((np.random.default_rng(seed).permutation(n) - n / 2) / 3).reshape(shape)


@st.composite
def window_problems(draw, min_dims=0, min_side=0):
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=3, min_side=min_side, max_side=5))
    ints = lambda lo, hi: tuple(draw(st.integers(lo, hi)) for _ in shape)
    params = dict(window_dimensions=ints(1, 3), window_strides=ints(1, 2),
                  padding=tuple(zip(ints(-1, 2), ints(-1, 2))), base_dilation=ints(1, 2),
                  window_dilation=ints(1, 2))
    return distinct(shape, draw(st.integers(0, 1000))), params


def apply(x, computation, params):
    return lax.reduce_window(x, computation, params["window_dimensions"], params["window_strides"],
                             params["padding"], params["base_dilation"], params["window_dilation"])


@given(window_problems(), st.sampled_from(["sum", "max", "min"]))
def test_reduce_window_matches_a_direct_loop(problem, computation):
    x, params = problem
    got = np.asarray(apply(fnp.asarray(x.astype(np.float32)), computation, params))
    want = reference(x, computation, *params.values())
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@given(window_problems(min_dims=1), st.sampled_from([np.int32, np.uint8]))
def test_integer_pooling_is_exact(problem, dtype):
    x, params = problem
    x = (np.abs(x) * 3).astype(dtype)
    for computation in ("max", "sum"):
        got = np.asarray(apply(fnp.asarray(x), computation, params))
        want = reference(x.astype(np.float64), computation, *params.values())
        if computation == "max":  # padding holds the dtype's min, not -inf
            want = np.maximum(want, np.iinfo(dtype).min)
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, want.astype(dtype))


def test_max_pool_and_same_padding():
    x = fnp.asarray(np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4))
    pooled = lax.reduce_window(x, "max", (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
    np.testing.assert_array_equal(np.asarray(pooled)[0, 0], [[5, 7], [13, 15]])
    same = lax.reduce_window(x, lax.add, (1, 1, 3, 3), (1, 1, 2, 2), "SAME")
    assert same.shape == (1, 1, 2, 2)
    np.testing.assert_array_equal(np.asarray(same)[0, 0], [[45, 39], [66, 50]])  # padding (0, 1)


@given(window_problems(min_side=1), st.sampled_from(["sum", "max", "min"]))
def test_reduce_window_gradients_to_second_order(problem, computation):
    x, params = problem
    want = reference(x, computation, *params.values())
    if not np.all(np.isfinite(want)):  # a window of padding only: -inf has no derivative
        params = dict(params, padding=tuple((0, 0) for _ in x.shape), base_dilation=(1,) * x.ndim)
    check_grads(lambda x: apply(x, computation, params), (x,), order=2)


def test_grad_of_grad_of_max_pool():
    x = distinct((2, 2, 4, 6), seed=3)

    def loss(x):
        pooled = lax.reduce_window(x, "max", (1, 1, 2, 3), (1, 1, 2, 2), ((0, 0), (0, 0), (0, 1), (1, 0)))
        return lax.reduce_sum(lax.square(pooled), (0, 1, 2, 3))

    check_grads(loss, (x,), order=2)
    hvp = fgrad.jvp(fgrad.grad(loss), (fnp.asarray(x),), (fnp.ones(x.shape),))[1]
    # d/dx of 2*max at the selected elements is 2 per window that selects them
    g = np.asarray(fgrad.grad(loss)(fnp.asarray(x)))
    np.testing.assert_allclose(np.asarray(hvp)[g != 0] * np.asarray(x)[g != 0], g[g != 0], rtol=1e-5)
    closed = fgrad.make_jaxpr(fgrad.grad(loss))(fnp.asarray(x.astype(np.float32)))
    typecheck_jaxpr(closed.jaxpr)
    assert "select_and_scatter_add" in str(closed)


def test_max_pool_gradient_goes_to_the_first_maximum_on_ties():
    x = fnp.asarray(np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 5.0, 5.0]], np.float32))
    g = fgrad.grad(lambda x: lax.reduce_sum(lax.reduce_window(x, "max", (2, 2), (2, 2)), (0, 1)))(x)
    np.testing.assert_array_equal(np.asarray(g), [[0, 1, 0, 0], [0, 0, 1, 0]])
    g = fgrad.grad(lambda x: lax.reduce_sum(lax.reduce_window(x, "min", (1, 2), (1, 1)), (0, 1)))(x)
    np.testing.assert_array_equal(np.asarray(g), [[1, 1, 0, 1], [1, 1, 1, 0]])


@given(window_problems(min_dims=1, min_side=1), st.sampled_from(["max", "min"]), st.integers(0, 100))
def test_select_and_gather_and_scatter_are_transposes(problem, select, seed):
    x, params = problem
    rng = np.random.default_rng(seed)
    t = rng.standard_normal(x.shape).astype(np.float32)
    gathered = select_and_gather_add_p.bind(fnp.asarray(t), fnp.asarray(x.astype(np.float32)),
                                            select=select, **params)
    c = rng.standard_normal(gathered.shape).astype(np.float32)
    scattered = select_and_scatter_add_p.bind(fnp.asarray(c), fnp.asarray(x.astype(np.float32)),
                                              select=select, **params)
    lhs = float(np.vdot(np.asarray(gathered, np.float64), c))
    rhs = float(np.vdot(t.astype(np.float64), np.asarray(scattered, np.float64)))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-4, atol=1e-4)


# --- vmap -------------------------------------------------------------------------------------

@pytest.mark.parametrize("in_axis", [0, 1, -1])
@pytest.mark.parametrize("computation", ["sum", "max", "min"])
def test_vmap_matches_a_loop(computation, in_axis):
    x = distinct((3, 2, 5, 4)).astype(np.float32)
    params = dict(window_dimensions=(1, 2, 3), window_strides=(1, 2, 1), padding=((0, 0), (1, 0), (0, 1)),
                  base_dilation=(1, 1, 2), window_dilation=(1, 2, 1))
    check_vmap(lambda x: apply(x, computation, params), (fnp.asarray(np.moveaxis(x, 0, in_axis)),),
               in_axes=in_axis)
    grad = fgrad.grad(lambda x: lax.reduce_sum(lax.square(apply(x, computation, params)), (0, 1, 2)))
    check_vmap(grad, (fnp.asarray(np.moveaxis(x, 0, in_axis)),), in_axes=in_axis, rtol=1e-5, atol=1e-5)


def test_vmap_with_unbatched_operands():
    x = fnp.asarray(distinct((2, 5, 4)).astype(np.float32))
    scale = fnp.asarray(np.array([1.0, -2.0, 3.0], np.float32))

    def f(x, s):
        pooled = lax.reduce_window(lax.mul(x, s), "max", (1, 2, 2), (1, 1, 2))
        return lax.reduce_sum(pooled, (0, 1, 2))

    check_vmap(f, (x, scale), in_axes=(None, 0))
    check_vmap(fgrad.grad(f), (x, scale), in_axes=(None, 0), rtol=1e-5, atol=1e-5)
    # the selecting operand batched and the values not, and the reverse
    t = fnp.asarray(np.ones((2, 5, 4), np.float32))
    xs = fnp.asarray(np.stack([distinct((2, 5, 4), k) for k in range(3)]).astype(np.float32))
    params = dict(window_dimensions=(1, 2, 2), window_strides=(1, 1, 2), padding=((0, 0),) * 3,
                  base_dilation=(1, 1, 1), window_dilation=(1, 1, 1))
    gather = lambda t, x: select_and_gather_add_p.bind(t, x, select="max", **params)
    check_vmap(gather, (t, xs), in_axes=(None, 0))
    check_vmap(gather, (xs, x), in_axes=(0, None))


# --- errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, match", [
    (dict(computation="mean"), ValueError, "computation must be 'sum', 'max' or 'min'"),
    (dict(window_dimensions=(2,)), TypeError, "window_dimensions .* one entry per dimension"),
    (dict(window_dimensions=(0, 1)), ValueError, "window_dimensions must be positive"),
    (dict(window_strides=(1, 0)), ValueError, "window_strides must be positive"),
    (dict(padding=((0, 0),)), TypeError, "padding .* one entry per dimension"),
    (dict(padding="FULL"), ValueError, "'SAME', 'SAME_LOWER', 'VALID'"),
    (dict(padding=[1, 2]), TypeError, "padding must be"),
])
def test_errors(kwargs, error, match):
    args = dict(computation="max", window_dimensions=(2, 2), window_strides=(1, 1), padding="VALID")
    args.update(kwargs)
    with pytest.raises(error, match=match):
        lax.reduce_window(fnp.ones((3, 3)), args.pop("computation"), **args)


def test_sum_pooling_rejects_bools():
    with pytest.raises(TypeError, match="reduce_window_sum.*bool"):
        lax.reduce_window(fnp.ones((3, 3)) > 0, "sum", (2, 2), (1, 1))


# --- JAX's signature: reduce_window(operand, init_value, computation, dims, strides, padding, ...) ----

@pytest.mark.parametrize("init, computation, fold", [
    (0.0, lax.add, lambda r, i: r), (1.5, lax.add, lambda r, i: r + i), (-np.inf, lax.max, lambda r, i: r),
    (3.0, lax.max, np.maximum), (7.0, lax.min, np.minimum), (np.inf, "min", lambda r, i: r)])
@pytest.mark.parametrize("padding", ["SAME", "VALID", ((1, 2), (0, 1), (2, 0), (0, 0))])
def test_jax_form_folds_init_value_once_into_each_window(init, computation, fold, padding):
    x = np.arange(20.0, dtype=np.float32).reshape(1, 4, 5, 1)
    name = {lax.add: "sum", lax.max: "max", lax.min: "min"}.get(computation, computation)
    short = np.asarray(lax.reduce_window(x, name, (1, 3, 2, 1), (1, 2, 1, 1), padding))
    for got in (lax.reduce_window(x, init, computation, (1, 3, 2, 1), (1, 2, 1, 1), padding),
                fgrad.jit(lambda v: lax.reduce_window(v, init, computation, (1, 3, 2, 1), (1, 2, 1, 1), padding))(x)):
        np.testing.assert_allclose(np.asarray(got), fold(short, np.float32(init)))


def test_jax_form_pads_same_from_the_undilated_operand_as_jax():
    # shapes and values recorded from jax.lax.reduce_window (JAX 0.10.2)
    x = np.arange(20.0, dtype=np.float32).reshape(1, 4, 5, 1)
    got = lax.reduce_window(x, 1.0, lax.add, (1, 3, 2, 1), (1, 2, 1, 1), "SAME", (1, 2, 1, 1), None)
    np.testing.assert_array_equal(np.asarray(got).ravel(), [13, 17, 21, 25, 14, 33, 37, 41, 45, 24, 53, 57, 61, 65, 34])
    got = lax.reduce_window(x, 0.0, lax.add, (1, 2, 2, 1), (1, 1, 2, 1), "SAME", None, (1, 2, 1, 1))
    np.testing.assert_array_equal(np.asarray(got).ravel(), [11, 15, 9, 22, 30, 18, 42, 50, 28, 21, 25, 14])
    assert lax.reduce_window(x, 0.0, lax.add, (1, 2, 2, 1), (1, 1, 2, 1), "SAME", (1, 2, 1, 1),
                             (1, 2, 1, 1)).shape == (1, 7, 3, 1)
    with pytest.raises(ValueError, match="init_value must be a scalar"):
        lax.reduce_window(x, np.zeros(2), lax.add, (1, 2, 2, 1), (1, 1, 1, 1), "VALID")
