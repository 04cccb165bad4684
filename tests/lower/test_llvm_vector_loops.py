"""The LLVM renderer's vector loops against the kernel-IR interpreter: masked tails (trip counts
below or not a multiple of the vector width) and reductions whose per-lane partials are kept
across the loops around the vector loop (folded only when the accumulator is read)."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from fgrad.lower import kernel as K
from tests.lower.util import assert_same, kernel_program, run_both

f32, i32 = K.float32, K.int32


@given(st.integers(1, 40), st.integers(1, 5))
def test_elementwise_rows_with_a_masked_tail(width, rows):
    """out[r, i] = x[r, i] * 2 + x[r, (i + 1) % width] (a gather): every lane of each row once."""
    n = rows * width
    x, out = K.Param("x", f32, n), K.Param("out", f32, n)
    r, i = K.Var("r"), K.Var("i")
    nxt = r * width + K.op("mod", i + 1, K.Const(width, K.INDEX))
    body = K.Range(r, 0, rows, (K.Range(i, 0, width, (out.store(r * width + i, x[r * width + i] * 2.0 + x[nxt]),),
                                        vectorize=K.AUTO),))
    data = np.random.default_rng(width).standard_normal(n).astype(np.float32)
    assert_same(*run_both(kernel_program(K.Kernel("rows", (x, out), (body,)), 1), data))


@given(st.integers(1, 40), st.integers(1, 4), st.integers(1, 3))
def test_reduction_partials_survive_outer_loops(width, rows, slots):
    """acc[s] += x[r, i] * (s + 1) over r (serial) and i (vector): one horizontal sum per slot
    at the end, masked tail lanes contributing nothing."""
    n = rows * width
    x, out = K.Param("x", f32, n), K.Param("out", f32, slots)
    r, i = K.Var("r"), K.Var("i")
    acc = K.Local("acc", f32, slots)
    updates = tuple(acc.accumulate(s, "add", x[r * width + i] * float(s + 1)) for s in range(slots))
    body = (K.DefineLocal(acc, K.Const(0.0, f32)),
            K.Range(r, 0, rows, (K.Range(i, 0, width, updates, vectorize=K.AUTO),)),
            *[out.store(s, acc[s]) for s in range(slots)])
    data = np.random.default_rng(rows).standard_normal(n).astype(np.float32)
    assert_same(*run_both(kernel_program(K.Kernel("sums", (x, out), body), 1), data), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op", ["max", "min", "add"])
def test_partial_read_between_vector_loops_is_folded_each_time(op):
    """out[r] = running reduction after row r: the accumulator is read inside the outer loop."""
    rows, width = 5, 21
    x, out = K.Param("x", f32, rows * width), K.Param("out", f32, rows)
    r, i = K.Var("r"), K.Var("i")
    acc = K.Local("acc", f32)
    ident = {"add": 0.0, "max": -np.inf, "min": np.inf}[op]
    body = (K.DefineLocal(acc, K.Const(ident, f32)),
            K.Range(r, 0, rows, (K.Range(i, 0, width, (acc.accumulate(0, op, x[r * width + i]),),
                                         vectorize=K.AUTO), out.store(r, acc[0]))))
    data = np.random.default_rng(1).standard_normal(rows * width).astype(np.float32)
    assert_same(*run_both(kernel_program(K.Kernel("running", (x, out), body), 1), data), rtol=1e-6, atol=1e-6)


@given(st.integers(1, 37))
def test_tail_store_at_one_index_keeps_the_last_active_lane(width):
    """out[0] = x[i] for every i: the last iteration's value, also when it is in a masked tail."""
    x, out = K.Param("x", i32, width), K.Param("out", i32, 1)
    i = K.Var("i")
    body = K.Range(i, 0, width, (out.store(0, x[i] * 3),), vectorize=K.AUTO)
    data = np.arange(width, dtype=np.int32) + 7
    assert_same(*run_both(kernel_program(K.Kernel("last", (x, out), (body,)), 1), data))


@given(st.integers(1, 37))
def test_integer_division_in_a_tail_does_not_trap(width):
    """x // y with y = 0 past the end of the row: inactive lanes must not divide by zero."""
    x, y, out = K.Param("x", i32, width), K.Param("y", i32, width), K.Param("out", i32, width)
    i = K.Var("i")
    body = K.Range(i, 0, width, (out.store(i, K.floordiv(x[i], y[i])),), vectorize=K.AUTO)
    rng = np.random.default_rng(width)
    xs = rng.integers(-100, 100, width).astype(np.int32)
    ys = rng.integers(1, 9, width).astype(np.int32)
    assert_same(*run_both(kernel_program(K.Kernel("div", (x, y, out), (body,)), 2), xs, ys))


@given(st.integers(1, 40), st.integers(2, 5), st.booleans())
def test_strided_reads_match_the_interpreter(width, stride, masked):
    """out[i] = x[i * stride + stride - 1] (strides up to 4 load contiguously and shuffle; 5
    gathers), the last lane reading x's last element, optionally under a per-lane mask."""
    n = width * stride
    x, out = K.Param("x", f32, n), K.Param("out", f32, width)
    i = K.Var("i")
    index = i * stride + (stride - 1)
    value = x.load(index, K.op("lt", i, K.Const(width // 2, K.INDEX))) if masked else x[index]
    body = K.Range(i, 0, width, (out.store(i, value * 2.0),), vectorize=K.AUTO)
    data = np.random.default_rng(stride).standard_normal(n).astype(np.float32)
    assert_same(*run_both(kernel_program(K.Kernel("strided", (x, out), (body,)), 1), data))


@pytest.mark.parametrize("pipeline", ["quick", "O3"])
@pytest.mark.parametrize("stride", [2, 3, 4])
def test_masked_strided_and_pooling_reads_in_every_pipeline(pipeline, stride, monkeypatch):
    """Masked strided and repeated-lane reads through vector tails, compiled by the quick
    pipeline (LLVM's level-0 code generator, what tiered compilation runs first) and by O3.
    The quick build of a 36-lane, stride-3 read once returned a lane its mask had turned off
    on AVX2 (a shuffle of an i1 mask into a 24-lane load's mask was miscompiled)."""
    monkeypatch.setenv("FGRAD_LLVM_KERNEL_PIPELINE", pipeline)
    for width in (5, 11, 13, 36, 37):
        n = width * stride + 1
        x, out = K.Param("x", f32, n), K.Param("out", f32, width)
        i = K.Var("i")
        on = K.op("lt", i, K.Const(width // 2, K.INDEX))
        strided = x.load(i * stride + (stride - 1), on)
        pooled = x.load(K.floordiv(i, K.Const(stride, K.INDEX)) * stride + 1, on)
        body = K.Range(i, 0, width, (out.store(i, strided * 2.0 + pooled),), vectorize=K.AUTO)
        data = np.random.default_rng(width).standard_normal(n).astype(np.float32)
        assert_same(*run_both(kernel_program(K.Kernel(f"masked_{width}_{stride}", (x, out), (body,)), 1), data))


@given(st.integers(1, 45), st.sampled_from([2, 4]), st.booleans())
def test_pooling_style_indices_match_the_interpreter(width, div, masked):
    """out[i] = x[(i // d) * d + 1] + y[i // d] + (i % d): loads at repeated-lane indices
    (contiguous load + shuffle) and per-lane constants, through a masked tail."""
    n = (width // div + 1) * div
    x, y = K.Param("x", f32, n + 1), K.Param("y", f32, n // div)
    out = K.Param("out", f32, width)
    i = K.Var("i")
    window = K.floordiv(i, K.Const(div, K.INDEX))
    a = x.load(window * div + 1, K.op("lt", i, K.Const(width - 1, K.INDEX))) if masked else x[window * div + 1]
    value = a + y[window] + K.cast(K.op("mod", i, K.Const(div, K.INDEX)), f32)
    body = K.Range(i, 0, width, (out.store(i, value),), vectorize=K.AUTO)
    rng = np.random.default_rng(width)
    xs, ys = (rng.standard_normal(s).astype(np.float32) for s in (n + 1, n // div))
    assert_same(*run_both(kernel_program(K.Kernel("pool", (x, y, out), (body,)), 2), xs, ys))


@given(st.integers(1, 45), st.sampled_from([2, 4]), st.integers(0, 12), st.booleans())
def test_clamped_pooling_indices_match_the_interpreter(width, div, last, masked):
    """out[i] = x[min(i // d, last) * d + 1] + y[min(i // d, last)]: lanes past the clamp read
    the clamped element (the max-pool gradient over rows the windows do not cover)."""
    n = (last + 1) * div + 1
    x, y = K.Param("x", f32, n), K.Param("y", f32, last + 1)
    out = K.Param("out", f32, width)
    i = K.Var("i")
    window = K.minimum(K.floordiv(i, K.Const(div, K.INDEX)), K.Const(last, K.INDEX))
    a = x.load(window * div + 1, K.op("lt", i, K.Const(width - 1, K.INDEX))) if masked else x[window * div + 1]
    body = K.Range(i, 0, width, (out.store(i, a + y[window]),), vectorize=K.AUTO)
    rng = np.random.default_rng(width + 100 * last)
    xs, ys = (rng.standard_normal(s).astype(np.float32) for s in (n, last + 1))
    assert_same(*run_both(kernel_program(K.Kernel("clamped", (x, y, out), (body,)), 2), xs, ys))


@pytest.mark.parametrize("dtype", [K.int8, K.int32, K.int64, K.uint8, K.uint32])
@pytest.mark.parametrize("divisor", [1, 2, 3, 7, 8, 9, 16, 100])
@pytest.mark.parametrize("vector", [False, True])
def test_floor_division_by_a_constant_matches_numpy(dtype, divisor, vector):
    """x // c and x % c for a positive constant c (shifts and masks for powers of two, one
    division and a sign fix otherwise), per lane and scalar, at the dtype's extremes."""
    info = np.iinfo(dtype)
    candidates = {int(info.min), int(info.min) + 1, -9, -8, -7, -1, 0, 1, 7, 8, 9, int(info.max) - 1, int(info.max)}
    values = np.array(sorted(v for v in candidates if info.min <= v <= info.max), dtype=dtype)
    n = len(values)
    x, q, r = K.Param("x", dtype, n), K.Param("q", dtype, n), K.Param("r", dtype, n)
    i, c = K.Var("i"), K.Const(divisor, dtype)
    body = K.Range(i, 0, n, (q.store(i, K.floordiv(x[i], c)), r.store(i, K.op("mod", x[i], c))),
                   vectorize=K.AUTO if vector else 0)
    program = kernel_program(K.Kernel("divc", (x, q, r), (body,)), 1)
    interpreted, native = run_both(program, values)
    assert_same(interpreted, native)
    np.testing.assert_array_equal(native[0], np.floor_divide(values, dtype.type(divisor)))
    np.testing.assert_array_equal(native[1], np.remainder(values, dtype.type(divisor)))


def _avx2_target():
    """This CPU with AVX-512 turned off (32-byte vectors), where the CPU has AVX2."""
    from fgrad.backends.cpu import host_target
    from fgrad.lower.llvm_base import Target
    host = host_target(1)
    flags = host.features.split(",")
    if "+avx2" not in flags:
        pytest.skip("this CPU has no AVX2")
    features = ",".join("-" + f[1:] if f.startswith("+avx512") else f for f in flags)
    return Target(host.triple, host.cpu, features, 32, 1)


@pytest.mark.parametrize("cols", [3, 11, 26])
def test_known_tails_store_lane_by_lane_with_avx2(cols):
    """A vector loop whose tail length is known when rendering stores that tail lane by lane
    with 32-byte vectors (AVX2's masked store is microcoded on AMD Zen), and the values are
    those of the loop, rows and tails alike."""
    from fgrad.backends.cpu import compile_program
    from fgrad.lower.llvm import render_kernel_module
    rows = 7
    x, y = K.Param("x", f32, rows * cols), K.Param("y", f32, rows * cols)
    i, j = K.Var("i"), K.Var("j")
    body = (K.Range(i, 0, rows, (K.Range(j, 0, cols, (y.store(i * cols + j, x[i * cols + j] * 2.0 + 1.0),),
                                         vectorize=K.AUTO),)),)
    kern = K.Kernel(f"tail_{cols}", (x, y), body)
    target = _avx2_target()
    assert "masked.store" not in str(render_kernel_module(kern, target, "k"))
    data = np.random.default_rng(cols).standard_normal(rows * cols).astype(np.float32)
    (got,) = compile_program(kernel_program(kern, 1), target=target)(data)
    np.testing.assert_array_equal(got, data * np.float32(2.0) + np.float32(1.0))


@pytest.mark.parametrize("counter_dtype", [K.int64, K.int32])
def test_a_load_at_one_index_does_not_narrow_the_vectors(counter_dtype):
    """A float32 loop that reads its row through a counter loaded once (a scan's step, an
    int64) is as wide as any float32 loop (8 lanes with AVX2; it had 4, the counter's width
    counted as a lane's), and computes the same values as the interpreter."""
    from fgrad.backends.cpu import compile_program
    from fgrad.lower.llvm import render_kernel_module
    n, rows = 37, 3
    x, table, step, y = (K.Param("x", f32, n), K.Param("t", f32, rows * n), K.Param("s", counter_dtype, 1),
                         K.Param("y", f32, n))
    i = K.Var("i")
    row = K.cast(step[0], K.INDEX) * n
    body = (K.Range(i, 0, n, (y.store(i, K.op("tanh", x[i] + table[row + i])),), vectorize=K.AUTO),)
    kern = K.Kernel(f"counter_{counter_dtype.name}", (x, table, step, y), body)
    target = _avx2_target()
    text = str(render_kernel_module(kern, target, "k"))
    assert "<8 x float>" in text and "<4 x float>" not in text
    rng = np.random.default_rng(1)
    data, rows_data = rng.standard_normal(n).astype(np.float32), rng.standard_normal(rows * n).astype(np.float32)
    counter = np.array([2], counter_dtype)
    program = kernel_program(kern, 3)
    (got,) = compile_program(program, target=target)(data, rows_data, counter)
    (want,) = run_both(program, data, rows_data, counter)[0]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got, np.tanh(data + rows_data[2 * n:]), rtol=1e-6, atol=1e-6)


def _transposing_read(rows: int, cols: int, scale: int):
    """out[i] = x[(i * scale) // scale % rows * cols + (i * scale) // scale // rows]: a transposed
    read whose index is divided per lane by constants that are not powers of two."""
    n = rows * cols
    x, out = K.Param("x", f32, n), K.Param("out", f32, n)
    i = K.Var("i")
    j = K.floordiv(i * scale, K.Const(scale, K.INDEX))
    src = K.op("mod", j, K.Const(rows, K.INDEX)) * cols + K.floordiv(j, K.Const(rows, K.INDEX))
    body = K.Range(i, 0, n, (out.store(i, x[src] + 1.0),), vectorize=K.AUTO)
    return K.Kernel("transposed", (x, out), (body,))


@given(st.integers(1, 7), st.integers(1, 40), st.sampled_from([3, 3_000_000_001]))
def test_per_lane_index_division_fits_int32_or_stays_int64(rows, cols, scale):
    """Per-lane int64 division by constants (a transposed read): computed on 32-bit lanes when
    every index of the kernel fits int32 (scale 3), in 64 bits when one does not (i * 3e9 wraps
    in int32), the same results either way; the narrow kernel divides no 64-bit vector."""
    from fgrad.backends.cpu import host_target
    from fgrad.lower.llvm import render_kernel_module
    kernel = _transposing_read(rows, cols, scale)
    data = np.random.default_rng(cols).standard_normal(rows * cols).astype(np.float32)
    assert_same(*run_both(kernel_program(kernel, 1), data))
    text = str(render_kernel_module(kernel, host_target(), "transposed"))
    wide_division = any(op in line and "x i64>" in line for line in text.splitlines() for op in ("sdiv <", "srem <"))
    assert wide_division == (scale != 3)


def _window_gather(rows: int, scale: int):
    """An im2col pack's read (MNIST conv2's weight gradient, reduced): out[kk*32 + jj] =
    x[i64(a // 11) * 97 + i64(jj // 9) * 31 + i64(jj % 9 // 3 + a % 11) * 13 + i64(jj % 9 % 3)],
    a = (kk * scale) // scale, with 32-bit pieces widened to the 64-bit index."""
    f32_, i32, i64 = K.float32, K.int32, K.INDEX
    x, out = K.Param("x", f32_, (rows - 1) // 11 * 97 + 3 * 31 + 12 * 13 + 3), K.Param("out", f32_, rows * 32)
    kv, jv = K.Var("kk"), K.Var("jj")
    a = K.cast(K.floordiv(kv * scale, K.Const(scale, i64)), i32)
    jj = K.cast(jv, i32)
    c = lambda v: K.Const(v, i32)
    tap = K.op("mod", jj, c(9))
    src = (K.cast(K.floordiv(a, c(11)), i64) * 97 + K.cast(K.floordiv(jj, c(9)), i64) * 31
           + K.cast(K.floordiv(tap, c(3)) + K.op("mod", a, c(11)), i64) * 13 + K.cast(K.op("mod", tap, c(3)), i64))
    inner = K.Range(jv, 0, 32, (out.store(kv * 32 + jv, x[src] * 2.0),), vectorize=16, unroll=K.FULL)
    return K.Kernel("window", (x, out), (K.Range(kv, 0, rows, (inner,)),))


@given(st.integers(2, 40), st.sampled_from([3, 3_000_000_001]))
def test_gather_indices_are_computed_in_32_bit_lanes_where_they_fit(rows, scale):
    """A gather's int64 index math is redone in 32-bit lanes when every index of the kernel fits
    int32: no 64-bit vector is computed and cut for it (on AVX-512, 64-bit lane multiplies and
    the narrowing moves made an im2col pack's inner loop 81 instructions instead of 59). With an
    index past int32 (kk * 3e9) it stays 64-bit. The same results either way, and NumPy's."""
    from fgrad.backends.cpu import host_target
    from fgrad.lower.llvm import render_kernel_module
    kernel = _window_gather(rows, scale)
    data = np.random.default_rng(rows).standard_normal(kernel.params[0].size).astype(np.float32)
    (got,), _ = run_both(kernel_program(kernel, 1), data)
    kk, jj = np.divmod(np.arange(rows * 32), 32)
    src = kk // 11 * 97 + jj // 9 * 31 + (jj % 9 // 3 + kk % 11) * 13 + jj % 9 % 3
    np.testing.assert_array_equal(got, data[src] * 2)
    lines = str(render_kernel_module(kernel, host_target(), "window")).splitlines()
    assert not any("trunc <" in line and "x i64>" in line for line in lines)      # nothing computed wide, then cut
    wide_gather = any("getelementptr" in line and "x i64>" in line for line in lines)
    assert wide_gather == (scale != 3)


@given(st.integers(2, 40), st.sampled_from([3, 3_000_000_001]))
def test_scatter_indices_are_computed_in_32_bit_lanes_where_they_fit(rows, scale):
    """The same for a scatter: out[(jj % 4) * rows * 8 + a * 8 + jj // 4] = x[kk*32 + jj] (a
    transposing store, a = (kk * scale) // scale, 32-bit pieces widened), equal to NumPy's."""
    from fgrad.backends.cpu import host_target
    from fgrad.lower.llvm import render_kernel_module
    i32, i64 = K.int32, K.INDEX
    x, out = K.Param("x", f32, rows * 32), K.Param("out", f32, rows * 32)
    kv, jv = K.Var("kk"), K.Var("jj")
    a = K.floordiv(kv * scale, K.Const(scale, i64))
    jj = K.cast(jv, i32)
    dest = (K.cast(K.op("mod", jj, K.Const(4, i32)), i64) * (rows * 8) + a * 8
            + K.cast(K.floordiv(jj, K.Const(4, i32)), i64))
    inner = K.Range(jv, 0, 32, (out.store(dest, x[kv * 32 + jv] + 1.0),), vectorize=16, unroll=K.FULL)
    kernel = K.Kernel("scatter", (x, out), (K.Range(kv, 0, rows, (inner,)),))
    data = np.random.default_rng(rows).standard_normal(rows * 32).astype(np.float32)
    (got,), _ = run_both(kernel_program(kernel, 1), data)
    np.testing.assert_array_equal(got, (data.reshape(rows, 8, 4).transpose(2, 0, 1) + 1).ravel())
    lines = str(render_kernel_module(kernel, host_target(), "scatter")).splitlines()
    assert not any("trunc <" in line and "x i64>" in line for line in lines)
    assert any("getelementptr" in line and "x i64>" in line for line in lines) == (scale != 3)
