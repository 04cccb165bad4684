"""Windowed primitives through the native jit against eager evaluation (the NumPy definitions).

select_and_scatter_add (the max-pool gradient) has two lowerings: a parallel gather form,
fused into its readers, for windows with few candidates per input position, and a serial
scatter kernel otherwise. Both must make the eager path's choices on ties, NaNs and padding.
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import fgrad
from fgrad import lax, numpy as fnp
from fgrad.lower import window_rules as rules
from fgrad.ops.window import select_and_gather_add_p, select_and_scatter_add_p
from tests.ops.test_window import window_problems


def _out_shape(x, params):
    return lax.reduce_window(fnp.asarray(x), "max", **params).shape


def _scatter(ct, x, select, params):
    return select_and_scatter_add_p.bind(ct, x, select=select, **params)


def _check_scatter(x, params, select, seed=0):
    x = fnp.asarray(np.asarray(x, np.float32))
    ct = fnp.asarray(np.random.default_rng(seed).standard_normal(_out_shape(x, params)).astype(np.float32))
    want = _scatter(ct, x, select, params)
    got = fgrad.jit(lambda c, v: _scatter(c, v, select, params))(ct, x)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6, atol=1e-6)


@given(window_problems(), st.sampled_from(["max", "min"]), st.booleans())
def test_select_and_scatter_add_matches_eager(problem, select, ties):
    x, params = problem
    if ties:
        x = np.round(x / 4)     # many equal values: the first one in window order must win
    _check_scatter(x, params, select)


@given(window_problems(), st.sampled_from(["max", "min"]))
def test_select_and_gather_add_matches_eager(problem, select):
    x, params = problem
    x = fnp.asarray(np.asarray(x, np.float32))
    t = fnp.asarray(np.random.default_rng(1).standard_normal(x.shape).astype(np.float32))
    f = lambda a, b: select_and_gather_add_p.bind(a, b, select=select, **params)
    np.testing.assert_allclose(np.asarray(fgrad.jit(f)(t, x)), np.asarray(f(t, x)), rtol=1e-6, atol=1e-6)


POOL = dict(window_dimensions=(1, 1, 2, 2), window_strides=(1, 1, 2, 2), padding=((0, 0),) * 4,
            base_dilation=(1,) * 4, window_dilation=(1,) * 4)


@pytest.mark.parametrize("side", [4, 5, 7])
def test_max_pool_gradient_with_ties_nans_and_a_ragged_edge(side):
    x = np.zeros((2, 3, side, side), np.float32)     # relu output: all-zero windows are ties
    x[0, 0, 1, 1] = 1.0
    x[0, 1, 0, 1] = np.nan
    x[1, 2, 2, 3] = -np.inf
    _check_scatter(x, POOL, "max")


def test_pooling_gradient_uses_the_gather_form_when_windows_are_small():
    assert rules._gather_form_loads(POOL, fgrad.core.types.ShapedArray((2, 3, 4, 4), np.float32),
                                    fgrad.core.types.ShapedArray((2, 3, 2, 2), np.float32)) == 5
    wide = dict(POOL, window_dimensions=(1, 1, 8, 8), window_strides=(1, 1, 1, 1))
    assert rules._gather_form_loads(wide, fgrad.core.types.ShapedArray((1, 1, 9, 9), np.float32),
                                    fgrad.core.types.ShapedArray((1, 1, 2, 2), np.float32)) is None
    x = np.random.default_rng(0).standard_normal((1, 1, 9, 9)).astype(np.float32)
    _check_scatter(x, wide, "max")      # the scatter kernel


def test_max_pool_gradient_under_jit_matches_eager_and_finite_differences():
    from fgrad import nn
    x = fnp.asarray(np.random.default_rng(3).standard_normal((2, 3, 6, 6)).astype(np.float32))
    loss = lambda v: fnp.sum(nn.max_pool2d(fnp.maximum(v, 0.0), 2) ** 2)
    g_eager, g_jit = fgrad.grad(loss)(x), fgrad.jit(fgrad.grad(loss))(x)
    np.testing.assert_allclose(np.asarray(g_jit), np.asarray(g_eager), rtol=1e-6, atol=1e-6)


def test_overlapping_pool_gradient_compiles_quickly():
    """3x3 windows at stride 2 (ResNet's max-pool): four candidate windows of nine taps per
    element. The lazy expression must stay small (a select-on-compare fold nested the running
    best four times per tap and took ~20 s to compile); results match eager."""
    import time
    from fgrad.lower import kernel as K
    params = dict(POOL, window_dimensions=(1, 1, 3, 3))
    x = np.random.default_rng(4).standard_normal((2, 3, 17, 17)).astype(np.float32)
    start = time.perf_counter()
    _check_scatter(np.round(x * 2) / 2, params, "max")      # ties included
    assert time.perf_counter() - start < 10
    buf = K.Buffer("x", K.float32, x.shape)
    x_value = fgrad.lower.schedule.BufferValue(fgrad.core.types.ShapedArray(x.shape, np.float32), buf)
    where = rules._selected_position(rules.KernelBuilder(), params, x_value, [K.Var(f"o{d}") for d in range(4)], "max")
    assert sum(1 for _ in K.walk_expr(where)) < 400     # distinct nodes: linear in the taps


@st.composite
def apart_windows(draw):
    """Windows that do not overlap (each stride spans its dilated window), with padding and gaps."""
    rank = draw(st.integers(1, 3))
    dims = [draw(st.integers(1, 3)) for _ in range(rank)]
    dilation = [draw(st.integers(1, 2)) for _ in range(rank)]
    strides = [(w - 1) * d + 1 + draw(st.integers(0, 1)) for w, d in zip(dims, dilation)]
    padding = [(draw(st.integers(0, 1)), draw(st.integers(0, 2))) for _ in range(rank)]
    shape = [draw(st.integers(max(1, (w - 1) * d + 1 - lo - hi), 7)) for w, d, (lo, hi) in zip(dims, dilation, padding)]
    params = dict(window_dimensions=tuple(dims), window_strides=tuple(strides), padding=tuple(padding),
                  base_dilation=(1,) * rank, window_dilation=tuple(dilation))
    values = draw(st.sampled_from(["normal", "ties", "nan"]))
    x = np.random.default_rng(draw(st.integers(0, 99))).standard_normal(shape).astype(np.float32)
    if values == "ties":
        x = np.round(x)
    elif values == "nan":
        x[tuple(np.random.default_rng(1).integers(0, s) for s in shape)] = np.nan
    return x, params


@given(apart_windows(), st.sampled_from(["max", "min"]))
def test_windows_apart_select_each_window_once(problem, select):
    x, params = problem
    assert rules._windows_apart(params)
    _check_scatter(x, params, select)


def test_max_pool_gradient_selects_each_window_once():
    """stride = window: one kernel stores each window's chosen tap, and the gradient reads it
    (the gather form recomputed every window's choice at each of its positions)."""
    from fgrad.lower import kernel as K
    from fgrad.lower.rules import lower_program
    assert rules._windows_apart(POOL) and not rules._windows_apart(dict(POOL, window_dimensions=(1, 1, 3, 3)))
    x = fnp.zeros((2, 3, 8, 8))
    closed = fgrad.make_jaxpr(lambda c, v: _scatter(c, v, "max", POOL))(fnp.zeros((2, 3, 4, 4)), x)
    names = [kern.name for kern in K.kernels_of(lower_program(closed, "pool"))]
    assert any(name.startswith("select_tap") for name in names), names
