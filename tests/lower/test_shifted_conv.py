"""Shifted convolutions: unit-stride convs computed on a grid whose rows are as wide as the
padded input's, so that the im2col pack copies contiguous runs (``contraction._shifted_grid``).
Checked against a float64 NumPy convolution, in the template's two output modes (masked stores
into the output, or the grid layout that ``rules`` reads lazily), and through ``fgrad.jit``."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fgrad
from fgrad import lax
from fgrad.lower import convolution as C
from fgrad.lower import kernel as K
from fgrad.lower.interpret import run_program
from tests.lower.test_kernel_contraction import np_conv, rand
from tests.lower.util import run_llvm

f32 = K.float32


@st.composite
def unit_stride_convs(draw):
    """A unit-stride conv (1 to 3 spatial dims, padding, window dilation, feature groups)."""
    nsp = draw(st.integers(1, 3))
    groups = draw(st.sampled_from([1, 2]))
    n, c_g, o_g = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 5))
    ks = [draw(st.integers(1, 3)) for _ in range(nsp)]
    dil = [draw(st.integers(1, 2)) for _ in range(nsp)]
    pads = [(draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(nsp)]
    sizes = [draw(st.integers(max(1, (k - 1) * d + 1 - lo - hi), 9 if nsp < 3 else 5))
             for k, d, (lo, hi) in zip(ks, dil, pads)]
    return dict(n=n, c=c_g * groups, o=o_g * groups, groups=groups, ks=ks, dil=dil, pads=pads, sizes=sizes)


def _shapes(case):
    out_sp = [s + lo + hi - d * (k - 1) for s, (lo, hi), k, d in
              zip(case["sizes"], case["pads"], case["ks"], case["dil"])]
    xs = (case["n"], case["c"], *case["sizes"])
    ws = (case["o"], case["c"] // case["groups"], *case["ks"])
    return xs, ws, (case["n"], case["o"], *out_sp)


def _options(case):
    nsp = len(case["ks"])
    return dict(window_strides=(1,) * nsp, padding=case["pads"], rhs_dilation=tuple(case["dil"]),
                feature_group_count=case["groups"])


def _expected(case, x, w):
    nsp = len(case["ks"])
    return np_conv(x, w, (1,) * nsp, case["pads"], (1,) * nsp, case["dil"], case["groups"])


@settings(max_examples=25, deadline=None)
@given(case=unit_stride_convs())
def test_masked_stores_into_the_output(case):
    xs, ws, oshape = _shapes(case)
    x, w = rand(xs), rand(ws, seed=1)
    xb, wb, ob = K.Buffer("x", f32, xs), K.Buffer("w", f32, ws), K.Buffer("o", f32, oshape)
    plan = C.conv("cv", xb, wb, ob, **_options(case))
    program = K.Program("cv", (xb, wb), (ob,), plan.steps)
    expected = _expected(case, x, w)
    (got,) = run_llvm(program, x, w)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    if math.prod(oshape) * math.prod(ws) < 20000:
        (interpreted,) = run_program(program, x, w)
        np.testing.assert_allclose(interpreted, expected, rtol=1e-4, atol=1e-4)


@settings(max_examples=25, deadline=None)
@given(case=unit_stride_convs())
def test_grid_output_holds_each_row_padded(case):
    xs, ws, oshape = _shapes(case)
    grid = C.shifted_grid(xs, ws, **_options(case))
    assert grid is not None or math.prod([oshape[2]] + [s + lo + hi for s, (lo, hi) in
                                                       zip(xs[3:], case["pads"][1:])]) > \
        C.SHIFT_MAX_WASTE * math.prod(oshape[2:])
    if grid is None:
        return
    x, w = rand(xs), rand(ws, seed=1)
    xb, wb = K.Buffer("x", f32, xs), K.Buffer("w", f32, ws)
    ob = K.Buffer("o", f32, (oshape[0], oshape[1], *grid))
    plan = C.conv("cv", xb, wb, ob, grid_output=True, **_options(case))
    (got,) = run_llvm(K.Program("cv", (xb, wb), (ob,), plan.steps), x, w)
    kept = got[(slice(None), slice(None)) + tuple(slice(0, s) for s in oshape[2:])]
    np.testing.assert_allclose(kept, _expected(case, x, w), rtol=1e-4, atol=1e-4)


def test_the_pack_reads_contiguous_runs():
    """The im2col rows of a shifted conv are loads at (tap offset + grid column): no division
    of the column index, which is what made the gathered pack slow."""
    xb, wb, ob = K.Buffer("x", f32, (2, 8, 13, 13)), K.Buffer("w", f32, (4, 8, 3, 3)), K.Buffer("o", f32, (2, 4, 11, 11))
    plan = C.conv("cv", xb, wb, ob, window_strides=(1, 1), padding=[(0, 0)] * 2)
    text = "\n".join(K.format_kernel(kern) for kern in plan.kernels)
    assert "// 11" not in text and "% 11" not in text.split("bpack")[1].split("\n")[0]


def test_reads_past_the_input_are_masked_when_the_buffer_ends():
    """Grid columns past a row's end read the next row (harmless), but the very last ones would
    read past the input buffer: those loads are masked (``limit``)."""
    xb = K.Buffer("x", f32, (1, 1, 9, 9))
    source = C.Source.array(xb)
    valid = C._shifted_grid([9, 9], [3, 3], [7, 7], (1, 1), [(0, 0)] * 2, (1, 1), (1, 1))
    inside = C._padded_input("cv", source, (0, 1, 2, 3), valid, valid.overflow([3, 3], (1, 1)))
    assert inside.buffer is xb and inside.limit == xb.size and not inside.steps
    same = C._shifted_grid([9, 9], [3, 3], [9, 9], (1, 1), [(1, 1)] * 2, (1, 1), (1, 1))
    assert same.sizes == [11, 10] and same.grid == [9, 10]
    padded = C._padded_input("cv", source, (0, 1, 2, 3), same, same.overflow([3, 3], (1, 1)))
    assert padded.limit is None and len(padded.steps) == 1
    assert padded.buffer.size == 11 * 10 + same.overflow([3, 3], (1, 1))


@pytest.mark.parametrize("lo,hi,reach,row,grid_row", [
    (2, 2, 2, 13, 13),      # MNIST conv2's input gradient: rows of 11 + 2 shared zeros, no extra columns
    (1, 1, 2, 12, 12),      # a 3x3 "same" conv: one extra column instead of two
    (0, 0, 2, 11, 11),      # a valid conv reads the input as it is
    (3, 3, 2, 17, 17),      # the pads exceed the window's reach: both sides padded
    (0, 2, 2, 13, 13),
])
def test_rows_share_their_padding(lo, hi, reach, row, grid_row):
    """A row's right padding is the next row's left padding when the window cannot reach past
    both: shorter rows, fewer grid columns, and reads of the spill land on zeros."""
    out_w = 11 + lo + hi - reach
    layout = C._shifted_grid([7, 11], [3, reach + 1], [7 + 2 - 2, out_w], (1, 1), [(1, 1), (lo, hi)], (1, 1), (1, 1))
    assert layout.sizes[-1] == row and layout.grid[-1] == grid_row >= out_w


def test_strided_and_lhs_dilated_convs_are_not_shifted():
    assert C.shifted_grid((1, 2, 9, 9), (3, 2, 3, 3), window_strides=(2, 2), padding=[(0, 0)] * 2) is None
    assert C.shifted_grid((1, 2, 9, 9), (3, 2, 3, 3), window_strides=(1, 1), padding=[(0, 0)] * 2,
                          lhs_dilation=(2, 2)) is None
    assert C.shifted_grid((1, 2, 9, 9), (3, 2, 3, 3), window_strides=(1, 1), padding=[(-1, 0)] * 2) is None
    assert C.shifted_grid((1, 2, 13, 13), (3, 2, 3, 3), window_strides=(1, 1), padding=[(1, 1)] * 2) == (13, 14)
    assert C.shifted_grid((1, 2, 11, 11), (3, 2, 3, 3), window_strides=(1, 1), padding=[(2, 2)] * 2) == (13, 13)


def test_grid_output_refuses_a_conv_it_cannot_shift():
    xb, wb = K.Buffer("x", f32, (1, 2, 9, 9)), K.Buffer("w", f32, (3, 2, 3, 3))
    with pytest.raises(ValueError, match="grid_output needs a shifted convolution"):
        C.conv("cv", xb, wb, K.Buffer("o", f32, (1, 3, 4, 4)), window_strides=(2, 2), padding=[(0, 0)] * 2,
               grid_output=True)


@pytest.mark.parametrize("padding", [(0, 0), (1, 1), (2, 2)])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_jit_conv_and_its_gradients_match_eager(padding, layout):
    """Through fgrad.jit: a conv read by relu (the grid layout, read lazily), as a program output
    (masked stores), and its input and weight gradients (the input gradient is a shifted conv
    with padding k - 1)."""
    rng = np.random.default_rng(0)
    spec = (layout, "OIHW", layout)
    shape = (3, 6, 9, 9) if layout == "NCHW" else (3, 9, 9, 6)
    x, w = rng.standard_normal(shape, np.float32), rng.standard_normal((5, 6, 3, 3), np.float32)

    def loss(x, w):
        y = lax.conv_general_dilated(x, w, (1, 1), [padding] * 2, dimension_numbers=spec)
        return (fgrad.nn.relu(y) ** 2).sum(), y

    jitted = fgrad.jit(fgrad.value_and_grad(loss, argnums=(0, 1), has_aux=True))
    (value, y), grads = jitted(x, w)
    with fgrad.disable_jit():
        (value_e, y_e), grads_e = fgrad.value_and_grad(loss, argnums=(0, 1), has_aux=True)(x, w)
    np.testing.assert_allclose(np.asarray(y), np.asarray(y_e), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(float(value), float(value_e), rtol=1e-4)
    for g, g_e in zip(grads, grads_e):
        np.testing.assert_allclose(np.asarray(g), np.asarray(g_e), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("padding", [[(0, 0), (-1, 1)], [(1, -1), (2, -1)], [(-1, 2), (0, 0)]])
def test_crop_on_one_side_pad_on_the_other_matches_numpy(padding):
    """Negative low with positive high padding (crop one side, pad the other), as the input
    gradient of an asymmetrically padded conv needs: jit and eager match a NumPy reference.
    (XLA's CPU conv got ((0,0),(-1,1)) on a 2-channel 2x2 kernel wrong when this was written.)"""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 2, 6, 4), np.float32), rng.standard_normal((3, 2, 2, 2), np.float32)
    conv = lambda a, b: lax.conv_general_dilated(a, b, (1, 1), padding)
    expected = np_conv(x, w, (1, 1), padding, (1, 1), (1, 1), 1)
    np.testing.assert_allclose(np.asarray(fgrad.jit(conv)(x, w)), expected, rtol=1e-4, atol=1e-4)
    with fgrad.disable_jit():
        np.testing.assert_allclose(np.asarray(conv(x, w)), expected, rtol=1e-4, atol=1e-4)
