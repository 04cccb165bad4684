"""Index ranges (``lower.intervals``): the bounds are sound (every value a kernel computes
lies in its interval; a division called plain has a numerator >= 0 and a divisor > 0),
checked against the kernel-IR interpreter on random index expressions."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from fgrad.lower import kernel as K
from fgrad.lower.intervals import INT32_MAX, IndexRanges
from fgrad.lower.interpret import run_kernel

I64 = K.INDEX
i, j = K.Var("i"), K.Var("j")

BINARY = ["add", "sub", "mul", "floordiv", "mod", "div", "rem", "max", "min"]


@st.composite
def index_exprs(draw, depth=0):
    if depth >= 4 or draw(st.integers(0, 3)) == 0:
        return draw(st.one_of(st.sampled_from([i, j]), st.integers(-40, 40).map(lambda v: K.Const(v, I64))))
    kind = draw(st.sampled_from(BINARY + ["neg", "abs", "select", "cast32"]))
    a = draw(index_exprs(depth + 1))
    if kind == "neg" or kind == "abs":
        return K.op(kind, a)
    if kind == "cast32":
        return K.cast(K.cast(a, K.int32), I64)
    b = draw(index_exprs(depth + 1))
    if kind == "select":
        return K.select(K.op("lt", a, b), a, K.op("mul", b, K.Const(3, I64)))
    return K.op(kind, a, b)


def int_nodes(e: K.Expr) -> list[K.Expr]:
    return [n for n in K.walk_expr(e) if n.dtype == I64 and not isinstance(n, (K.Const, K.Var))]


@settings(deadline=None)
@given(e=index_exprs(), i_range=st.tuples(st.integers(-9, 9), st.integers(1, 6)),
       j_range=st.tuples(st.integers(-9, 9), st.integers(1, 6)))
def test_bounds_hold_for_every_value(e, i_range, j_range):
    nodes = int_nodes(e) or [K.op("add", e, K.Const(0, I64))]
    (i0, ni), (j0, nj) = i_range, j_range
    out = K.Param("out", I64, len(nodes) * ni * nj)
    slot = (i - i0) * nj + (j - j0)
    stores = [out.store(slot + k * ni * nj, n) for k, n in enumerate(nodes)]
    kernel = K.Kernel("k", (out,), (K.Range(i, i0, i0 + ni, [K.Range(j, j0, j0 + nj, stores)]),))
    values = np.zeros(out.size, np.int64)
    run_kernel(kernel, values)
    values = values.reshape(len(nodes), ni * nj)
    ranges = IndexRanges(kernel, max_threads=0)
    loops = {"i": (i0, i0 + ni - 1), "j": (j0, j0 + nj - 1)}
    for n, got in zip(nodes, values):
        bounds = ranges.interval_where(n, loops)
        if bounds is not None:
            assert bounds[0] <= got.min() and got.max() <= bounds[1], (K.format_expr(n), bounds, got)
        if isinstance(n, K.Op) and n.op in ("floordiv", "mod", "div", "rem") and ranges.plain_division(n):
            num, den = ranges.interval_where(n.args[0], loops), ranges.interval_where(n.args[1], loops)
            assert num[0] >= 0 and den[0] > 0
    if ranges.fits_int32:
        assert np.abs(values).max() <= INT32_MAX


def test_loaded_indices_and_huge_loops_are_not_32_bit():
    idx, out = K.Param("idx", I64, 4), K.Param("out", K.float32, 4)
    gather = K.Kernel("g", (idx, out), (K.Range(i, 0, 4, [out.store(idx[i] % 4, K.Const(1.0, K.float32))]),))
    assert not IndexRanges(gather, 1024).fits_int32
    loop = K.Kernel("l", (out,), (K.Range(i, 0, INT32_MAX - 100, [out.store(i % 4, K.Const(1.0, K.float32))]),))
    assert IndexRanges(loop, 0).fits_int32
    assert not IndexRanges(loop, 1024).fits_int32       # a strided counter steps past the stop
    product = K.Kernel("p", (out,), (K.Range(i, 0, 1 << 20, [K.Range(j, 0, 1 << 12, [
        out.store((i * 4096 + j) % 4, K.Const(1.0, K.float32))])]),))
    assert not IndexRanges(product, 0).fits_int32       # i * 4096 + j reaches 2**32


def test_uint8_and_int32_loads_are_bounded_by_their_type():
    u8, out = K.Param("u", K.uint8, 4), K.Param("out", K.float32, 300)
    k = K.Kernel("u", (u8, out), (K.Range(i, 0, 4, [out.store(K.cast(u8[i], I64) + 7, K.Const(1.0, K.float32))]),))
    ranges = IndexRanges(k, 1024)
    assert ranges.fits_int32
    assert ranges.interval_where(K.cast(u8[i], I64) + 7, {"i": (0, 3)}) == (7, 262)
