"""Contraction templates: dot_general in every layout and batch arrangement, and convolutions."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fgrad.lower import contraction as C, convolution
from fgrad.lower import kernel as K
from fgrad.lower.interpret import run_program
from fgrad.lower.kernel_stmt import walk_stmts
from tests.lower.util import run_llvm

f32 = K.float32


def rand(shape, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "i":
        return rng.integers(-5, 5, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def dot_program(lshape, rshape, dims, dtype=f32, epilogue=None, epilogue_buffers=(), config=None, threads=2):
    lhs, rhs = K.Buffer("lhs", dtype, lshape), K.Buffer("rhs", dtype, rshape)
    (lc, rc), (lb, rb) = dims
    lf = [d for d in range(len(lshape)) if d not in lc + lb]
    rf = [d for d in range(len(rshape)) if d not in rc + rb]
    out_shape = [lshape[d] for d in lb] + [lshape[d] for d in lf] + [rshape[d] for d in rf]
    out = K.Buffer("out", dtype, out_shape)
    con = C.dot_general("dot", lhs, rhs, out, dims, epilogue=epilogue,
                        epilogue_buffers=epilogue_buffers, config=config, threads=threads)
    return K.Program("dot", (lhs, rhs) + tuple(epilogue_buffers), (out,), con.steps), con


def np_dot_general(x, y, dims):
    (lc, rc), (lb, rb) = dims
    lf = [d for d in range(x.ndim) if d not in lc + lb]
    rf = [d for d in range(y.ndim) if d not in rc + rb]
    xt = x.transpose(list(lb) + lf + list(lc)).astype(np.float64)
    yt = y.transpose(list(rb) + list(rc) + rf).astype(np.float64)
    nb, k = len(lb), math.prod(x.shape[d] for d in lc)
    xm = xt.reshape(xt.shape[:nb] + (math.prod(x.shape[d] for d in lf), k))
    ym = yt.reshape(yt.shape[:nb] + (k, math.prod(y.shape[d] for d in rf)))
    out = np.matmul(xm, ym)
    return out.reshape([x.shape[d] for d in lb] + [x.shape[d] for d in lf] + [y.shape[d] for d in rf])


MATMUL = (((1,), (0,)), ((), ()))


@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (3, 17, 5), (17, 3, 1), (0, 4, 3), (4, 0, 3), (4, 5, 0),
                                   (37, 45, 29), (64, 64, 64), (100, 33, 77), (13, 200, 500)])
def test_matmul_sizes(m, n, k):
    x, y = rand((m, k)), rand((k, n), seed=1)
    program, _ = dot_program((m, k), (k, n), MATMUL)
    (got,) = run_llvm(program, x, y)
    np.testing.assert_allclose(got, x.astype(np.float64) @ y, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("layout", ["nn", "tn", "nt", "tt"])
def test_matmul_every_operand_layout(layout):
    m, n, k = 41, 70, 53
    lshape = (k, m) if layout[0] == "t" else (m, k)
    rshape = (n, k) if layout[1] == "t" else (k, n)
    dims = (((0,) if layout[0] == "t" else (1,), (1,) if layout[1] == "t" else (0,)), ((), ()))
    x, y = rand(lshape), rand(rshape, seed=1)
    program, _ = dot_program(lshape, rshape, dims)
    (got,) = run_llvm(program, x, y)
    np.testing.assert_allclose(got, np_dot_general(x, y, dims), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("lanes", [8, 16])
@pytest.mark.parametrize("layout", ["fused", "tn"])
def test_pack_a_for_each_simd_width(lanes, layout):
    """A's panels packed by the gathering vector loop (512-bit SIMD) or column by column
    (narrower SIMD, whose gathers are slow), for an A computed on the fly (a fused producer)
    from a buffer stored m-major or k-major, and rows past m."""
    m, n, k = 41, 70, 53
    lshape = (k, m) if layout == "tn" else (m, k)
    dims = (((0,) if layout == "tn" else (1,), (0,)), ((), ()))
    x, y = rand(lshape), rand((k, n), seed=1)
    config = C.GemmConfig(mr=6, nr=2 * lanes, kc=53, mc=42, nc=4 * lanes, lanes=lanes)
    lhs, rhs, out = K.Buffer("lhs", f32, lshape), K.Buffer("rhs", f32, (k, n)), K.Buffer("out", f32, (m, n))
    row = m if layout == "tn" else k
    a = C.Source(lshape, (lhs,), lambda idx, valid: C.param(lhs).load(idx[0] * row + idx[1], valid) * 2.0)
    con = C.dot_general("dot", a, rhs, out, dims, config=config)
    (pack_a,) = [kern for kern in con.kernels if kern.name.endswith("_pack_a")]
    vectorised = any(isinstance(s, K.Range) and s.vectorize for s in walk_stmts(pack_a.body))
    assert vectorised == (lanes == 16)
    (got,) = run_llvm(K.Program("dot", (lhs, rhs), (out,), con.steps), x, y)
    want = np_dot_general(x, y, dims) * 2
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("lshape,rshape,dims,in_place", [
    ((300, 41), (300, 20), (((0,), (0,)), ((), ())), True),                # several k blocks, ragged rows
    ((5, 130, 28), (5, 130, 33), (((1,), (1,)), ((0,), (0,))), True),      # batched, whole panels
    ((300, 5), (300, 20), (((0,), (0,)), ((), ())), False),                # fewer rows than a panel
    ((3, 9, 4), (3, 9, 17), (((1,), (1,)), ((0,), (0,))), False),          # the same, batched
])
def test_k_major_a_is_read_in_place_or_packed_by_k_rows(lshape, rshape, dims, in_place):
    """An A stored k-major (A^T) is read where it lies by the micro-kernel; with fewer rows than
    a panel (512-bit SIMD) it is packed a block of k rows at a time, each panel's mr elements
    of a row one (masked) vector, in order along A. The product is right in the LLVM build
    (and the interpreter, for the small cases)."""
    config = C.GemmConfig(mr=14, nr=32, kc=256, mc=28, nc=64, lanes=16)
    program, con = dot_program(lshape, rshape, dims, config=config)
    packs = [kern for kern in con.kernels if kern.name.endswith("_pack_a")]
    if in_place:
        assert not packs
    else:
        inner = [s for s in walk_stmts(packs[0].body) if isinstance(s, K.Range) and s.vectorize]
        assert inner and all(K.const_int(s.stop) == config.mr for s in inner)
    assert_product(program, rand(lshape), rand(rshape, seed=1), dims)


def assert_product(program, x, y, dims):
    """``program`` computes NumPy's dot_general of x and y in the LLVM build, and in the
    interpreter too when the problem is small."""
    want = np_dot_general(x, y, dims)
    (got,) = run_llvm(program, x, y)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    if x.size * y.shape[-1] < 5000:
        (interp,) = run_program(program, x, y)
        np.testing.assert_allclose(interp, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("lanes", [8, 16])
@pytest.mark.parametrize("lshape,rshape,dims", [
    ((41, 53), (53, 70), MATMUL),                          # ragged rows: the last panel reads row m-1 again
    ((20, 600), (600, 20), MATMUL),                        # several k blocks
    ((3, 13, 9), (3, 9, 40), (((2,), (1,)), ((0,), (0,)))),  # batched
    ((2, 5, 7, 11), (11, 33), (((3,), (0,)), ((), ()))),     # rows from two dims that merge
])
def test_row_major_a_is_read_in_place(lanes, lshape, rshape, dims):
    """An A stored contiguously along k is read by the micro-kernel where it lies: no pack_a
    kernel, no A panels among the temporaries, and the product is right (in the LLVM build;
    in the interpreter too for the small batched case)."""
    x, y = rand(lshape), rand(rshape, seed=1)
    config = C.GemmConfig(mr=6, nr=2 * lanes, kc=256, mc=42, nc=4 * lanes, lanes=lanes)
    program, con = dot_program(lshape, rshape, dims, config=config)
    assert not [kern for kern in con.kernels if kern.name.endswith("_pack_a")]
    assert not [buf for buf in con.temporaries if buf.name.endswith("_ap")]
    assert_product(program, x, y, dims)


def test_fewer_rows_than_a_panel_are_packed():
    """With fewer rows than a register tile has (m < mr) A is packed (zero rows fill the tile)."""
    config = C.GemmConfig(mr=6, nr=16, kc=64, mc=6, nc=32, lanes=8)
    program, con = dot_program((4, 30), (30, 50), MATMUL, config=config)
    assert [kern for kern in con.kernels if kern.name.endswith("_pack_a")]
    x, y = rand((4, 30)), rand((30, 50), seed=1)
    (got,) = run_llvm(program, x, y)
    np.testing.assert_allclose(got, x @ y, rtol=1e-4, atol=1e-4)


def test_interpreter_runs_the_packed_template():
    dims = (((0,), (0,)), ((), ()))              # A stored k-major, fewer rows than a panel: packed
    x, y = rand((7, 3)), rand((7, 34), seed=1)
    program, con = dot_program((7, 3), (7, 34), dims,
                               config=C.GemmConfig(mr=4, nr=16, kc=3, mc=8, nc=32, lanes=8))
    assert any("pack_a" in k.name for k in con.kernels)
    (interp,) = run_program(program, x, y)
    (got,) = run_llvm(program, x, y)
    np.testing.assert_allclose(interp, x.T @ y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, interp, rtol=1e-5, atol=1e-5)


@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_dot_general_batch_and_contracting_dims(data):
    """Random dot_general dimension numbers: batch dims anywhere, several contracting dims."""
    nb, nc = data.draw(st.integers(0, 2)), data.draw(st.integers(1, 2))
    nlf, nrf = data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))
    size = st.sampled_from([1, 2, 3, 5, 8])
    bs = [data.draw(size) for _ in range(nb)]
    cs = [data.draw(size) for _ in range(nc)]
    lfs = [data.draw(size) for _ in range(nlf)]
    rfs = [data.draw(size) for _ in range(nrf)]
    lperm = data.draw(st.permutations(range(nb + nc + nlf)))
    rperm = data.draw(st.permutations(range(nb + nc + nrf)))
    lsizes, rsizes = bs + cs + lfs, bs + cs + rfs
    lshape = tuple(lsizes[p] for p in lperm)
    rshape = tuple(rsizes[p] for p in rperm)
    lpos, rpos = {p: d for d, p in enumerate(lperm)}, {p: d for d, p in enumerate(rperm)}
    lb, rb = tuple(lpos[i] for i in range(nb)), tuple(rpos[i] for i in range(nb))
    lc, rc = tuple(lpos[nb + i] for i in range(nc)), tuple(rpos[nb + i] for i in range(nc))
    dims = ((lc, rc), (lb, rb))
    x, y = rand(lshape), rand(rshape, seed=1)
    program, _ = dot_program(lshape, rshape, dims)
    (got,) = run_llvm(program, x, y)
    np.testing.assert_allclose(got, np_dot_general(x, y, dims), rtol=1e-4, atol=1e-4)


def test_batched_matmul_large_enough_to_pack():
    dims = (((2,), (1,)), ((0,), (0,)))
    x, y = rand((3, 40, 50)), rand((3, 50, 60), seed=1)
    program, con = dot_program(x.shape, y.shape, dims)
    assert any(k.name.endswith("_gemm") for k in con.kernels)         # packed, B per tile
    (got,) = run_llvm(program, x, y)
    np.testing.assert_allclose(got, x.astype(np.float64) @ y, rtol=1e-4, atol=1e-4)


def test_k_blocks_with_partial_sums_and_epilogue():
    """k > kc: the tile is stored between k blocks; bias + relu apply only at the end."""
    m, n, k = 30, 50, 900
    bias = K.Buffer("bias", f32, (m,))
    pb = C.param(bias)
    epilogue = lambda v, idx: K.maximum(v + pb[idx[0]], K.Const(0.0, f32))
    program, con = dot_program((m, k), (k, n), MATMUL, epilogue=epilogue, epilogue_buffers=(bias,))
    x, y, b = rand((m, k)), rand((k, n), seed=1), rand(m, seed=2)
    (got,) = run_llvm(program, x, y, b)
    np.testing.assert_allclose(got, np.maximum(x.astype(np.float64) @ y + b[:, None], 0), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("m,n,k", [(100, 70, 900), (97, 50, 40)])
def test_ragged_gemm_masks_only_its_edge_tiles(m, n, k):
    """m and n not multiples of the register tile: the tiles inside C load and store whole
    vectors, only those crossing C's last row or column are masked (masked vector memory
    operations are microcoded on AMD Zen), and both paths give the right values, with and
    without k blocks (which reload the tile from C)."""
    program, con = dot_program((m, k), (k, n), MATMUL)
    (gemm,) = [kern for kern in con.kernels if kern.name.endswith("_gemm")]
    out_param = gemm.params[-1].name
    whole = {s.mask is None for s in walk_stmts(gemm.body) if isinstance(s, K.Store) and s.param == out_param}
    assert whole == {True, False}
    x, y = rand((m, k)), rand((k, n), seed=1)
    (got,) = run_llvm(program, x, y)
    np.testing.assert_allclose(got, x.astype(np.float64) @ y, rtol=1e-4, atol=1e-3)


def test_split_k_for_a_small_output_with_a_long_k():
    """32 x 9 outputs over k = 3000 of a computed A: transposed (less padding) and split over k
    for 4 threads."""
    m, n, k = 32, 9, 3000
    lhs, rhs, out = K.Buffer("lhs", f32, (m, k)), K.Buffer("rhs", f32, (k, n)), K.Buffer("out", f32, (m, n))
    bias = K.Buffer("bias", f32, (n,))
    pb = C.param(bias)
    doubled = C.Source((m, k), (lhs,), lambda idx, valid: C.param(lhs).load(idx[0] * k + idx[1], valid) * 2.0)
    con = C.dot_general("dot", doubled, rhs, out, MATMUL, threads=4, epilogue_buffers=(bias,),
                        epilogue=lambda v, idx: v + pb[idx[1]])
    assert any(kern.name.endswith("_sum") for kern in con.kernels)
    x, y, b = rand((m, k)), rand((k, n), seed=1), rand(n, seed=2)
    (got,) = run_llvm(K.Program("dot", (lhs, rhs, bias), (out,), con.steps), x, y, b)
    np.testing.assert_allclose(got, 2 * x.astype(np.float64) @ y + b, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("m,n", [(256, 10), (512, 33), (40, 30)])
def test_a_read_in_place_is_not_transposed_for_padding(m, n):
    """A skinny product whose bigger A the micro-kernel reads in place keeps its orientation:
    transposed, that A would be packed as B (an m x k copy). Where A is not the bigger operand
    (40 x 30), padding still decides. Results match NumPy either way."""
    k = 512
    program, con = dot_program((m, k), (n, k), (((1,), (1,)), ((), ())))
    packs_b = [kern for kern in con.kernels if kern.name.endswith("_pack_b")]
    transposed_like_before = m < 2 * n
    assert not [kern for kern in con.kernels if kern.name.endswith("_pack_a")] or transposed_like_before
    assert all(kern.params[0].size == n * k for kern in packs_b) or transposed_like_before
    assert_product(program, rand((m, k)), rand((n, k), seed=1), (((1,), (1,)), ((), ())))


@pytest.mark.parametrize("dtype", [K.float64, K.int32], ids=str)
def test_other_dtypes(dtype):
    x, y = rand((35, 40), dtype), rand((40, 47), dtype, seed=1)
    program, _ = dot_program(x.shape, y.shape, MATMUL, dtype=dtype)
    (got,) = run_llvm(program, x, y)
    if dtype == K.int32:
        np.testing.assert_array_equal(got, x @ y)
    else:
        np.testing.assert_allclose(got, x @ y, rtol=1e-12)


@pytest.mark.parametrize("b_layout", ["row-major", "column-major"])
def test_transposed_output_layout_swaps_operands(b_layout):
    """C stored column-major (contiguous along i) runs as C^T = B^T A^T; B^T is read in place
    either way (contiguous along k when B is stored column-major, along its rows when
    row-major)."""
    m, n, k = 40, 36, 48
    b_shape, b_strides = ((k, n), (0, n, 1)) if b_layout == "row-major" else ((n, k), (0, 1, k))
    a_buf, b_buf, out = K.Buffer("a", f32, (m, k)), K.Buffer("b", f32, b_shape), K.Buffer("o", f32, (n, m))
    con = C.gemm("ct", batch=1, m=m, n=n, k=k, a=C.strided(a_buf, (0, k, 1)), b=C.strided(b_buf, b_strides),
                 out=C.Output(out, lambda bb, i, j: j * m + i), dtype=f32)
    packs_a = [kern for kern in con.kernels if kern.name.endswith("_pack_a")]
    assert not packs_a
    x, y = rand((m, k)), rand((k, n), seed=1)
    stored = y if b_layout == "row-major" else np.ascontiguousarray(y.T)
    (got,) = run_llvm(K.Program("ct", (a_buf, b_buf), (out,), con.steps), x, stored)
    np.testing.assert_allclose(got, (x @ y).T, rtol=1e-4, atol=1e-4)


# --- convolutions -------------------------------------------------------------------------

def np_conv(x, w, strides, padding, lhs_dil, rhs_dil, groups):
    """Reference conv_general_dilated for NCHW / OIHW in float64."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    nsp = x.ndim - 2
    for d, dil in enumerate(lhs_dil):          # dilate the input with zeros
        if dil > 1:
            size = (x.shape[2 + d] - 1) * dil + 1
            shape = list(x.shape)
            shape[2 + d] = size
            z = np.zeros(shape)
            sl = [slice(None)] * x.ndim
            sl[2 + d] = slice(None, None, dil)
            z[tuple(sl)] = x
            x = z
    pads = [(0, 0), (0, 0)] + [(max(lo, 0), max(hi, 0)) for lo, hi in padding]
    x = np.pad(x, pads)
    crop = [slice(None), slice(None)] + [slice(max(-lo, 0), x.shape[2 + d] - max(-hi, 0))
                                         for d, (lo, hi) in enumerate(padding)]
    x = x[tuple(crop)]
    ks = w.shape[2:]
    eff = [(k - 1) * r + 1 for k, r in zip(ks, rhs_dil)]
    osz = [(x.shape[2 + d] - eff[d]) // strides[d] + 1 for d in range(nsp)]
    n, c = x.shape[:2]
    o = w.shape[0]
    out = np.zeros((n, o) + tuple(osz))
    cg, og = c // groups, o // groups
    for g in range(groups):
        for pos in np.ndindex(*ks):
            sl = [slice(None), slice(g * cg, (g + 1) * cg)]
            for d in range(nsp):
                start = pos[d] * rhs_dil[d]
                sl.append(slice(start, start + strides[d] * (osz[d] - 1) + 1, strides[d]))
            patch = x[tuple(sl)]
            wk = w[(slice(g * og, (g + 1) * og), slice(None)) + pos]
            out[:, g * og:(g + 1) * og] += np.einsum("nc...,oc->no...", patch, wk)
    return out


def conv_program(xshape, wshape, oshape, **kw):
    x, w, o = K.Buffer("x", f32, xshape), K.Buffer("w", f32, wshape), K.Buffer("o", f32, oshape)
    con = convolution.conv("cv", x, w, o, **kw)
    return K.Program("cv", (x, w), (o,), con.steps)


def out_size(size, k, stride, pad, lhs_dil, rhs_dil):
    size = (size - 1) * lhs_dil + 1 + pad[0] + pad[1]
    return (size - ((k - 1) * rhs_dil + 1)) // stride + 1


@pytest.mark.parametrize("case", [
    dict(n=2, c=3, h=9, o=4, k=3, stride=1, pad=(1, 1), ld=1, rd=1, groups=1),
    dict(n=1, c=4, h=10, o=6, k=3, stride=2, pad=(0, 1), ld=1, rd=1, groups=2),
    dict(n=2, c=2, h=8, o=3, k=2, stride=1, pad=(1, 0), ld=1, rd=2, groups=1),
    dict(n=2, c=3, h=5, o=2, k=3, stride=1, pad=(2, 2), ld=2, rd=1, groups=1),
    dict(n=3, c=6, h=7, o=6, k=3, stride=1, pad=(1, 1), ld=1, rd=1, groups=6),
    dict(n=1, c=1, h=6, o=1, k=1, stride=3, pad=(-1, 0), ld=1, rd=1, groups=1),
], ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_conv_strides_padding_dilation_groups(case):
    n, c, h, o, k = case["n"], case["c"], case["h"], case["o"], case["k"]
    g = case["groups"]
    os_ = out_size(h, k, case["stride"], case["pad"], case["ld"], case["rd"])
    xs, ws, oshape = (n, c, h, h + 1), (o, c // g, k, k), None
    os2 = out_size(h + 1, k, case["stride"], case["pad"], case["ld"], case["rd"])
    oshape = (n, o, os_, os2)
    kw = dict(window_strides=(case["stride"],) * 2, padding=[case["pad"]] * 2,
              lhs_dilation=(case["ld"],) * 2, rhs_dilation=(case["rd"],) * 2, feature_group_count=g)
    x, w = rand(xs), rand(ws, seed=1)
    program = conv_program(xs, ws, oshape, **kw)
    expected = np_conv(x, w, (case["stride"],) * 2, [case["pad"]] * 2, (case["ld"],) * 2,
                       (case["rd"],) * 2, g)
    (got,) = run_llvm(program, x, w)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    if math.prod(oshape) * c * k * k < 3000:
        (interp,) = run_program(program, x, w)
        np.testing.assert_allclose(interp, expected, rtol=1e-4, atol=1e-4)


def test_conv_nhwc_layout_via_dimension_numbers():
    n, h, c, o = 2, 7, 5, 8
    x, w = rand((n, h, h, c)), rand((3, 3, c, o), seed=1)           # NHWC, HWIO
    dn = ((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))
    program = conv_program(x.shape, w.shape, (n, h, h, o), window_strides=(1, 1), padding=[(1, 1)] * 2,
                           dimension_numbers=dn)
    expected = np_conv(x.transpose(0, 3, 1, 2), w.transpose(3, 2, 0, 1), (1, 1), [(1, 1)] * 2, (1, 1),
                       (1, 1), 1).transpose(0, 2, 3, 1)
    (got,) = run_llvm(program, x, w)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_conv_gradients_as_convolutions():
    """MNIST conv2 at a small batch: the input and weight gradients in JAX's conv forms."""
    n, c, h, o, k = 4, 8, 13, 16, 3
    x, w = rand((n, c, h, h)), rand((o, c, k, k), seed=1)
    oh = h - k + 1
    dy = rand((n, o, oh, oh), seed=2)
    # input gradient: conv(dy, flip(w) with in/out swapped), padding k-1
    dx_prog = conv_program(dy.shape, (o, c, k, k), (n, c, h, h), window_strides=(1, 1),
                           padding=[(k - 1, k - 1)] * 2, dimension_numbers=((0, 1, 2, 3), (1, 0, 2, 3), (0, 1, 2, 3)))
    (dx,) = run_llvm(dx_prog, dy, w[:, :, ::-1, ::-1].copy())
    # weight gradient: conv(x as (C, N, H, W), dy as (O, N, ...)) -> (C, O, k, k) -> transposed
    dw_prog = conv_program(x.shape, dy.shape, (o, c, k, k), window_strides=(1, 1), padding=[(0, 0)] * 2,
                           dimension_numbers=((1, 0, 2, 3), (1, 0, 2, 3), (1, 0, 2, 3)))
    (dw,) = run_llvm(dw_prog, x, dy)
    x64, w64, dy64 = x.astype(np.float64), w.astype(np.float64), dy.astype(np.float64)
    ref_dx = np.zeros_like(x64)
    ref_dw = np.zeros_like(w64)
    for a in range(k):
        for b in range(k):
            ref_dx[:, :, a:a + oh, b:b + oh] += np.einsum("nohw,oc->nchw", dy64, w64[:, :, a, b])
            ref_dw[:, :, a, b] = np.einsum("nohw,nchw->oc", dy64, x64[:, :, a:a + oh, b:b + oh])
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dw, ref_dw, rtol=1e-4, atol=1e-3)


def test_a_conv_without_padding_packs_its_windows_without_bounds_tests():
    """Without padding every window lies inside the input, so the im2col pack reads with no
    masks (MNIST conv2's weight gradient: its pack 3.7 -> 3.3 ms); with padding the tests stay
    and the padded positions read zeros."""
    n, c, h, o, k = 16, 8, 13, 16, 3
    x, dy = rand((n, c, h, h)), rand((n, o, h - k + 1, h - k + 1), seed=2)
    dn = ((1, 0, 2, 3), (1, 0, 2, 3), (1, 0, 2, 3))
    for pad in (0, 1):
        oh = h - k + 1 + 2 * pad
        dy = rand((n, o, oh, oh), seed=2)
        program = conv_program(x.shape, dy.shape, (o, c, k, k), window_strides=(1, 1),
                               padding=[(pad, pad)] * 2, dimension_numbers=dn)
        packs = [s.kernel for s in program.body if isinstance(s, K.Call) and s.kernel.name.endswith("pack_b")]
        bounds = [(">= 0" in text, f"< {h}:" in text) for text in map(K.format_kernel, packs)]
        assert bounds and all(b == (bool(pad), bool(pad)) for b in bounds)
        (dw,) = run_llvm(program, x, dy)
        xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0), (pad, pad), (pad, pad)])
        ref = np.stack([np.stack([np.einsum("nohw,nchw->oc", dy, xp[:, :, a:a + oh, b:b + oh])
                                  for b in range(k)], -1) for a in range(k)], -2)
        np.testing.assert_allclose(dw, ref, rtol=1e-4, atol=1e-3)


def test_conv_from_a_fused_source():
    """The im2col gather reads through a Source: relu(x) is fused into the packing."""
    n, c, h, o = 2, 3, 6, 4
    xb = K.Buffer("x", f32, (n, c, h, h))
    px = C.param(xb)
    strides = K.row_major_strides(xb.shape)
    relu_x = C.Source(xb.shape, (xb,), lambda idx, valid: K.maximum(
        px.load(sum(i * s for i, s in zip(idx, strides)), valid), K.Const(0.0, f32)))
    w, out = K.Buffer("w", f32, (o, c, 3, 3)), K.Buffer("o", f32, (n, o, h, h))
    con = convolution.conv("fused", relu_x, w, out, window_strides=(1, 1), padding=[(1, 1)] * 2)
    x, wt = rand(xb.shape), rand(w.shape, seed=1)
    (got,) = run_llvm(K.Program("fused", (xb, w), (out,), con.steps), x, wt)
    expected = np_conv(np.maximum(x, 0), wt, (1, 1), [(1, 1)] * 2, (1, 1), (1, 1), 1)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("k", [200, 384, 517])
def test_a_computed_b_is_packed_by_blocks_of_k_rows(k):
    """A B operand computed element by element (here relu of a transposed array: no plain
    strides) is packed 128 k rows into every panel at a time; the result is the product."""
    m, n = 70, 90
    a_buf, b_buf = K.Buffer("a", f32, (m, k)), K.Buffer("bt", f32, (n, k))
    pb = C.param(b_buf)
    relu_b = C.Source((k, n), (b_buf,), lambda idx, valid: K.maximum(pb.load(idx[1] * k + idx[0], valid),
                                                                      K.Const(0.0, f32)))
    out = K.Buffer("out", f32, (m, n))
    con = C.dot_general("blk", a_buf, relu_b, out, (((1,), (0,)), ((), ())), vector_bytes=32)
    packs = [kern for kern in con.kernels if kern.name.endswith("_pack_b")]
    assert packs and C.PACK_K_BLOCK < k
    assert "for kk in" in K.format_kernel(packs[0]).split("for pp in")[1]     # rows inside panels
    x, y = rand((m, k)), rand((n, k), seed=1)
    (got,) = run_llvm(K.Program("blk", (a_buf, b_buf), (out,), con.steps), x, y)
    np.testing.assert_allclose(got, x.astype(np.float64) @ np.maximum(y, 0).T.astype(np.float64), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("m", [128, 100])
def test_a_computed_a_is_packed_without_row_masks_where_panels_cover_m(m):
    """relu(A) packed into 8-row panels (512-bit SIMD): no row test when the panels cover m
    exactly (m = 128), the test kept when the last panel runs past m (m = 100); the product
    equals NumPy's either way."""
    k, n = 96, 40
    a_buf, b_buf, out = K.Buffer("a", f32, (m, k)), K.Buffer("b", f32, (k, n)), K.Buffer("o", f32, (m, n))
    pa = C.param(a_buf)
    relu_a = C.Source(a_buf.shape, (a_buf,), lambda idx, valid: K.maximum(
        pa.load(idx[0] * k + idx[1], valid), K.Const(0.0, f32)))
    con = C.dot_general("mm", relu_a, b_buf, out, (((1,), (0,)), ((), ())), vector_bytes=64, threads=1)
    packs = [s.kernel for s in con.steps if s.kernel.name.endswith("pack_a")]
    assert packs and all((f"< {m}:" in K.format_kernel(p)) == (m % 8 != 0) for p in packs)
    a, b = rand((m, k)), rand((k, n), seed=1)
    (got,) = run_llvm(K.Program("mm", (a_buf, b_buf), (out,), con.steps), a, b)
    np.testing.assert_allclose(got, np.maximum(a, 0).astype(np.float64) @ b, rtol=1e-4, atol=1e-4)
