"""Hand-built kernels and programs through the interpreter and the CPU backend, against NumPy."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fgrad.lower import kernel as K
from fgrad.lower.interpret import run_program
from tests.lower.util import kernel_program, run_both

f32 = K.float32
DIMS = st.sampled_from([0, 1, 2, 3, 5, 16, 17, 33])


def rand(shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def both_close(program, inputs, expected, rtol=1e-5, atol=1e-6):
    interp, llvm = run_both(program, *inputs)
    for e, a, b in zip(expected, interp, llvm):
        np.testing.assert_allclose(a.reshape(np.shape(e)), e, rtol=rtol, atol=atol)
        np.testing.assert_allclose(b.reshape(np.shape(e)), e, rtol=rtol, atol=atol)


# --- fused elementwise with broadcasting ---------------------------------------------------

def bias_tanh_kernel(m: int, n: int, flat: bool) -> K.Kernel:
    """out[i, j] = tanh(x[i, j] * w[j] + b[i]) * x[i, j]: broadcasts by index arithmetic."""
    x, w, b, out = K.Param("x", f32, m * n), K.Param("w", f32, n), K.Param("b", f32, m), \
        K.Param("out", f32, m * n)

    def value(i, j, flat_index):
        v = x[flat_index]
        return K.op("tanh", v * w[j] + b[i]) * v

    if flat:
        t = K.Var("t")
        i, j = t // max(n, 1), t % max(n, 1)
        body = (K.Range(t, 0, m * n, (out.store(t, value(i, j, t)),), parallel=True,
                        vectorize=K.AUTO),)
    else:
        i, j = K.Var("i"), K.Var("j")
        inner = K.Range(j, 0, n, (out.store(i * n + j, value(i, j, i * n + j)),), vectorize=K.AUTO,
                        unroll=2)
        body = (K.Range(i, 0, m, (inner,), parallel=True),)
    return K.Kernel("bias_tanh", (x, w, b, out), body)


@settings(max_examples=12, deadline=None)
@given(m=DIMS, n=DIMS, flat=st.booleans())
def test_fused_elementwise_broadcast(m, n, flat):
    x, w, b = rand((m, n)), rand(n, seed=1), rand(m, seed=2)
    expected = np.tanh(x * w + b[:, None]) * x
    both_close(kernel_program(bias_tanh_kernel(m, n, flat), 3), (x, w, b), [expected])


# --- reductions ----------------------------------------------------------------------------

REDUCERS = {"add": (np.sum, 0.0), "max": (np.max, -np.inf), "min": (np.min, np.inf),
            "mul": (np.prod, 1.0)}


def reduce_kernel(shape: tuple[int, int, int], axis: int, op: str, inner_reduce: bool) -> K.Kernel:
    """Reduce axis ``axis`` of a C-order 3-D array with Accumulate.

    inner_reduce: the reduction loop is innermost (vectorised: horizontal partials);
    otherwise the kept innermost axis is vectorised and each lane owns an accumulator.
    """
    size = int(np.prod(shape))
    kept = [d for d in range(3) if d != axis]
    out_size = shape[kept[0]] * shape[kept[1]]
    x, out = K.Param("x", f32, size), K.Param("out", f32, out_size)
    strides = (shape[1] * shape[2], shape[2], 1)
    o0, o1, r = K.Var("o0"), K.Var("o1"), K.Var("r")
    coords = {kept[0]: o0, kept[1]: o1, axis: r}
    index = sum((coords[d] * strides[d] for d in range(3)), K.Const(0))
    acc = K.Local("acc", f32)
    init = K.Const(REDUCERS[op][1], f32)
    red = K.Range(r, 0, shape[axis], (acc.accumulate(0, op, x[index]),),
                  vectorize=K.AUTO if inner_reduce else 0)
    inner_body = (K.DefineLocal(acc, init), red, out.store(o0 * shape[kept[1]] + o1, acc[0]))
    inner = K.Range(o1, 0, shape[kept[1]], inner_body, vectorize=0 if inner_reduce else K.AUTO)
    return K.Kernel(f"reduce_{op}", (x, out), (K.Range(o0, 0, shape[kept[0]], (inner,), parallel=True),))


@pytest.mark.parametrize("op", list(REDUCERS))
@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("inner_reduce", [True, False])
def test_reductions_along_each_axis(op, axis, inner_reduce):
    shape = (3, 37, 5) if axis == 1 else ((35, 4, 3) if axis == 0 else (2, 3, 41))
    x = rand(shape) * (0.9 if op == "mul" else 1.0)
    fn, _ = REDUCERS[op]
    expected = fn(x, axis=axis)
    program = kernel_program(reduce_kernel(shape, axis, op, inner_reduce), 1)
    both_close(program, (x,), [expected], rtol=1e-5, atol=1e-5)


def test_reduction_with_nan_and_empty():
    shape = (2, 0, 3)
    x = rand(shape)
    program = kernel_program(reduce_kernel(shape, 1, "max", True), 1)
    both_close(program, (x,), [np.full((2, 3), -np.inf, np.float32)])
    shape = (1, 40, 1)
    x = rand(shape)
    x[0, 21, 0] = np.nan
    program = kernel_program(reduce_kernel(shape, 1, "max", True), 1)
    interp, llvm = run_both(program, x)
    assert np.isnan(interp[0]).all() and np.isnan(llvm[0]).all()


def test_integer_and_bool_reductions():
    n = 77
    for dtype, op, data, expected in [
            (K.int32, "add", np.arange(n, dtype=np.int32) - 30, np.sum(np.arange(n) - 30)),
            (K.uint8, "max", (np.arange(n) * 7 % 251).astype(np.uint8), max(np.arange(n) * 7 % 251)),
            (K.bool_, "or", np.arange(n) == 50, True),
            (K.bool_, "and", np.arange(n) != 50, False),
            (K.int64, "xor", np.arange(n, dtype=np.int64), np.bitwise_xor.reduce(np.arange(n)))]:
        x, out, acc, i = K.Param("x", dtype, n), K.Param("out", dtype, 1), K.Local("acc", dtype), K.Var("i")
        init = {"add": 0, "max": 0, "or": False, "and": True, "xor": 0}[op]
        kern = K.Kernel("red", (x, out), (K.DefineLocal(acc, K.Const(init, dtype)),
                                          K.Range(i, 0, n, (acc.accumulate(0, op, x[i]),), vectorize=K.AUTO),
                                          out.store(0, acc[0])))
        interp, llvm = run_both(kernel_program(kern, 1), data)
        assert interp[0][0] == expected and llvm[0][0] == expected, (dtype, op)


# --- transposes, gathers, masks ------------------------------------------------------------------

@settings(max_examples=8, deadline=None)
@given(m=DIMS, n=DIMS, vec_outer=st.booleans())
def test_transpose(m, n, vec_outer):
    x, out = K.Param("x", f32, m * n), K.Param("out", f32, m * n)
    i, j = K.Var("i"), K.Var("j")
    inner = K.Range(j, 0, n, (out.store(j * m + i, x[i * n + j]),), vectorize=0 if vec_outer else K.AUTO)
    body = (K.Range(i, 0, m, (inner,), vectorize=K.AUTO if vec_outer else 0),)
    data = rand((m, n))
    both_close(kernel_program(K.Kernel("transpose", (x, out), body), 1), (data,), [data.T])


def test_reshape_permute_with_div_mod():
    """out = x.reshape(4, 6, 5).transpose(2, 0, 1) written with a flat loop and //, %."""
    shape = (4, 6, 5)
    size = 120
    x, out, t = K.Param("x", f32, size), K.Param("out", f32, size), K.Var("t")
    c, a, b = t // 24, (t // 6) % 4, t % 6            # out index (c, a, b) in shape (5, 4, 6)
    body = (K.Range(t, 0, size, (out.store(t, x[a * 30 + b * 5 + c]),), vectorize=K.AUTO),)
    data = rand(shape)
    both_close(kernel_program(K.Kernel("permute", (x, out), body), 1), (data,), [data.transpose(2, 0, 1)])


@settings(max_examples=8, deadline=None)
@given(n=DIMS, pad=st.integers(0, 4))
def test_masked_loads_pad(n, pad):
    """out = pad(x, (pad, pad)) with masked loads that never touch memory outside x."""
    x, out, i = K.Param("x", f32, n), K.Param("out", f32, n + 2 * pad), K.Var("i")
    src = i - pad
    body = (K.Range(i, 0, n + 2 * pad, (out.store(i, x.load(src, K.logical_and(src >= 0, src < n)) + 1.0),),
                    vectorize=K.AUTO),)
    data = rand(n)
    both_close(kernel_program(K.Kernel("pad", (x, out), body), 1), (data,), [np.pad(data, pad) + 1])


def test_register_tile_local():
    """A 4x32 register tile (fully unrolled, vector lanes) accumulated over k, as in matmul."""
    m, n, k = 4, 32, 9
    a, b, c = K.Param("a", f32, m * k), K.Param("b", f32, k * n), K.Param("c", f32, m * n)
    acc = K.Local("acc", f32, m * n)
    it, jt, kk = K.Var("it"), K.Var("jt"), K.Var("kk")
    tile = lambda body: K.Range(it, 0, m, (K.Range(jt, 0, n, body, vectorize=K.AUTO, unroll=K.FULL),),
                                unroll=K.FULL)
    body = (K.DefineLocal(acc, K.Const(0.0, f32)),
            K.Range(kk, 0, k, (tile((acc.store(it * n + jt, K.fma(a[it * k + kk], b[kk * n + jt],
                                                                   acc[it * n + jt])),)),)),
            tile((c.store(it * n + jt, acc[it * n + jt]),)))
    x, y = rand((m, k)), rand((k, n), seed=3)
    both_close(kernel_program(K.Kernel("tile", (a, b, c), body), 2), (x, y), [x @ y])


def test_if_on_uniform_and_per_lane_conditions():
    """A per-lane If cannot be a SIMD branch: the renderer falls back to a scalar loop."""
    n = 50
    x, out, i = K.Param("x", f32, n), K.Param("out", f32, n), K.Var("i")
    body = (K.Range(i, 0, n, (K.If(x[i] > 0.0, (out.store(i, x[i] * 2.0),), (out.store(i, -x[i]),)),
                              K.If(i < 5, (out.store(i, K.Const(7.0, f32)),))), vectorize=K.AUTO),)
    data = rand(n)
    expected = np.where(data > 0, data * 2, -data)
    expected[:5] = 7
    both_close(kernel_program(K.Kernel("branchy", (x, out), body), 1), (data,), [expected])


def test_zero_size_buffers():
    x, out, i = K.Param("x", f32, 0), K.Param("out", f32, 0), K.Var("i")
    kern = K.Kernel("empty", (x, out), (K.Range(i, 0, 0, (out.store(i, x[i]),), vectorize=K.AUTO,
                                                parallel=True),))
    interp, llvm = run_both(kernel_program(kern, 1), np.zeros(0, np.float32))
    assert interp[0].shape == llvm[0].shape == (0,)


# --- program-level control flow and memory planning ---------------------------------------------

def add_kernel(n: int, dtype=f32, name: str = "add") -> K.Kernel:
    a, b, out, i = K.Param("a", dtype, n), K.Param("b", dtype, n), K.Param("out", dtype, n), K.Var("i")
    return K.Kernel(name, (a, b, out), (K.Range(i, 0, n, (out.store(i, a[i] + b[i]),), vectorize=K.AUTO),))


def copy_kernel(n: int, dtype=f32) -> K.Kernel:
    a, out, i = K.Param("a", dtype, n), K.Param("out", dtype, n), K.Var("i")
    return K.Kernel("copy", (a, out), (K.Range(i, 0, n, (out.store(i, a[i]),), vectorize=K.AUTO),))


def test_scan_like_loop_reads_row_by_index():
    """carry += xs[i] for each row i: a Loop with an index buffer, no unrolling."""
    rows, n = 6, 19
    xs, out = K.Buffer("xs", f32, (rows, n)), K.Buffer("out", f32, (n,))
    idx, carry, tmp = K.Buffer("i", K.int32, ()), K.Buffer("carry", f32, (n,)), K.Buffer("tmp", f32, (n,))
    px, pi, pc, po, j = K.Param("xs", f32, rows * n), K.Param("i", K.int32, 1), K.Param("c", f32, n), \
        K.Param("o", f32, n), K.Var("j")
    row = K.cast(pi[0], K.int64)
    step = K.Kernel("add_row", (px, pi, pc, po),
                    (K.Range(j, 0, n, (po.store(j, pc[j] + px[row * n + j]),), vectorize=K.AUTO),))
    zero_p = K.Param("z", f32, n)
    zero = K.Kernel("zero", (zero_p,), (K.Range(j, 0, n, (zero_p.store(j, K.Const(0.0, f32)),)),))
    program = K.Program("scan", (xs,), (out,), (
        K.Call(zero, (carry,)),
        K.Loop(rows, (K.Call(step, (xs, idx, carry, tmp)), K.Call(copy_kernel(n), (tmp, carry))), index=idx),
        K.Call(copy_kernel(n), (carry, out))))
    data = rand((rows, n))
    both_close(program, (data,), [data.sum(0)])


def test_while_loop_doubles_until_large():
    """while x[0] < limit: x = x + x — the predicate is computed by a kernel into a bool buffer."""
    n = 5
    x, out = K.Buffer("x", f32, (n,)), K.Buffer("out", f32, (n,))
    state, cond = K.Buffer("state", f32, (n,)), K.Buffer("cond", K.bool_, ())
    ps, pc = K.Param("s", f32, n), K.Param("c", K.bool_, 1)
    less = K.Kernel("less", (ps, pc), (pc.store(0, ps[0] < 1000.0),))
    doubled = K.Buffer("doubled", f32, (n,))
    program = K.Program("grow", (x,), (out,), (
        K.Call(copy_kernel(n), (x, state)),
        K.While(cond, (K.Call(less, (state, cond)),),
                (K.Call(add_kernel(n), (state, state, doubled)), K.Call(copy_kernel(n), (doubled, state)))),
        K.Call(copy_kernel(n), (state, out))))
    data = np.array([3, 1, 2, 0, -1], np.float32)
    expected = data * 2 ** 9         # 3 * 2**9 = 1536 >= 1000
    both_close(program, (data,), [expected])


def _double_kernel(n: int) -> K.Kernel:
    a, out, i = K.Param("a", f32, n), K.Param("out", f32, n), K.Var("i")
    return K.Kernel("double", (a, out), (K.Range(i, 0, n, (out.store(i, a[i] + a[i]),)),))


@pytest.mark.parametrize("branch", [-3, 0, 1, 2, 9])
def test_switch_picks_clamped_branch(branch):
    n = 8
    sel, x, out = K.Buffer("sel", K.int32, ()), K.Buffer("x", f32, (n,)), K.Buffer("out", f32, (n,))
    tmp = K.Buffer("tmp", f32, (n,))
    program = K.Program("switchy", (sel, x), (out,), (
        K.Switch(sel, ((K.Call(copy_kernel(n), (x, out)),),
                       (K.Call(_double_kernel(n), (x, out)),),
                       (K.Call(_double_kernel(n), (x, tmp)), K.Call(add_kernel(n), (tmp, x, out))))),))
    data = rand(n)
    factor = [1, 2, 3][min(max(branch, 0), 2)]
    both_close(program, (np.array(branch, np.int32), data), [data * factor])


def test_bool_switch_is_if():
    n = 4
    flag, x, out = K.Buffer("flag", K.bool_, ()), K.Buffer("x", f32, (n,)), K.Buffer("out", f32, (n,))
    program = K.Program("iffy", (flag, x), (out,),
                        (K.if_(flag, (K.Call(_double_kernel(n), (x, out)),), (K.Call(copy_kernel(n), (x, out)),)),))
    data = rand(n)
    both_close(program, (np.array(True), data), [2 * data])
    both_close(program, (np.array(False), data), [data])


@settings(max_examples=20, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6), st.sampled_from([1, 7, 64, 300])),
                min_size=1, max_size=12))
def test_memory_plan_chains_of_temporaries(ops):
    """Random chains of adds through temporaries of several sizes: the plan keeps live buffers apart."""
    n_in = 2
    sizes = {}
    steps, kernels, values = [], {}, []
    inputs = [K.Buffer(f"in{k}", f32, (300,)) for k in range(n_in)]
    pool = [(b, 300) for b in inputs]
    expected = [np.arange(300, dtype=np.float32) * (k + 1) for k in range(n_in)]
    for t, (a, b, size) in enumerate(ops):
        (ba, na), (bb, nb) = pool[a % len(pool)], pool[b % len(pool)]
        size = min(size, na, nb)
        out = K.Buffer(f"t{t}", f32, (size,))
        key = (size, na, nb)
        kern = kernels.setdefault(key, _prefix_add(size, na, nb))
        steps.append(K.Call(kern, (ba, bb, out)))
        ea, eb = expected[a % len(pool)], expected[b % len(pool)]
        expected.append(ea[:size] + eb[:size])
        pool.append((out, size))
    final = K.Buffer("final", f32, (pool[-1][1],))
    steps.append(K.Call(copy_kernel(pool[-1][1]), (pool[-1][0], final)))
    program = K.Program("chain", tuple(inputs), (final,), tuple(steps))
    plan = K.plan_memory(program)
    lifetimes = K.buffer_lifetimes(program)
    temps = program.temporaries()
    for x in temps:
        for y in temps:
            if x is y:
                continue
            (s1, e1), (s2, e2) = lifetimes[id(x)], lifetimes[id(y)]
            if s1 <= e2 and s2 <= e1:
                o1, o2 = plan.offset(x), plan.offset(y)
                assert o1 + x.nbytes <= o2 or o2 + y.nbytes <= o1
    assert plan.size <= sum(K._aligned(t.nbytes) for t in temps)
    data = [expected[k] for k in range(n_in)]
    both_close(program, data, [expected[-1]])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 12), st.integers(0, 5), st.integers(0, 300)),
                max_size=40), st.integers(0, 700))
def test_first_fit_places_as_a_scan_of_busy_ranges(placed, size):
    """The memory plan's placement (array form) picks the offset a scan in order of the busy byte
    ranges alive at the same time picks: the lowest one free of all of them."""
    from fgrad.lower.memory_plan import _alive_during, _first_fit
    starts = np.array([s for s, _, _, _ in placed], np.int64)
    ends = starts + np.array([n for _, n, _, _ in placed], np.int64)
    los = np.array([64 * k for _, _, k, _ in placed], np.int64)
    his = los + np.array([n for _, _, _, n in placed], np.int64)
    start, end = 10, 20
    busy = sorted((lo, hi) for s, e, lo, hi in zip(starts, ends, los, his) if s <= end and start <= e)
    offset = 0
    for lo, hi in busy:
        if offset + size <= lo:
            break
        offset = max(offset, hi)
    assert _first_fit(size, *_alive_during(start, end, starts, ends, los, his)) == offset


def _prefix_add(size: int, na: int, nb: int) -> K.Kernel:
    a, b, out, i = K.Param("a", f32, na), K.Param("b", f32, nb), K.Param("out", f32, size), K.Var("i")
    return K.Kernel(f"add{size}_{na}_{nb}", (a, b, out),
                    (K.Range(i, 0, size, (out.store(i, a[i] + b[i]),), vectorize=K.AUTO),))


def test_memory_plan_reuses_dead_temporaries():
    n = 1000
    x, out = K.Buffer("x", f32, (n,)), K.Buffer("out", f32, (n,))
    t = [K.Buffer(f"t{k}", f32, (n,)) for k in range(6)]
    steps = [K.Call(_double_kernel(n), (x, t[0]))]
    steps += [K.Call(_double_kernel(n), (t[k], t[k + 1])) for k in range(5)]
    steps.append(K.Call(copy_kernel(n), (t[5], out)))
    program = K.Program("chain", (x,), (out,), tuple(steps))
    assert K.plan_memory(program).size == 2 * K._aligned(4 * n)
    data = rand(n)
    both_close(program, (data,), [data * 64])


def test_loop_keeps_carried_temporaries_alive():
    """A temporary read at the top of a loop body and written at its end lives for the whole loop."""
    n = 3
    x, out = K.Buffer("x", f32, (n,)), K.Buffer("out", f32, (n,))
    carry, a, b = K.Buffer("carry", f32, (n,)), K.Buffer("a", f32, (n,)), K.Buffer("b", f32, (n,))
    program = K.Program("carried", (x,), (out,), (
        K.Call(copy_kernel(n), (x, carry)),
        K.Loop(4, (K.Call(_double_kernel(n), (carry, a)), K.Call(_double_kernel(n), (a, b)),
                   K.Call(copy_kernel(n), (b, carry)))),
        K.Call(copy_kernel(n), (carry, out))))
    data = rand(n)
    both_close(program, (data,), [data * 4 ** 4])


def test_interpreter_bounds_checks():
    x, out, i = K.Param("x", f32, 4), K.Param("out", f32, 4), K.Var("i")
    kern = K.Kernel("oob", (x, out), (K.Range(i, 0, 4, (out.store(i, x[i + 1]),)),))
    with pytest.raises(IndexError, match="out of bounds"):
        run_program(kernel_program(kern, 1), np.zeros(4, np.float32))


@pytest.mark.parametrize("stride", [1, 3])
def test_masked_stores(stride):
    """out[i*stride] = x[i] only where x[i] > 0 (contiguous: one masked store; strided: scatter)."""
    n = 37
    x, out, i = K.Param("x", f32, n), K.Param("out", f32, n * stride), K.Var("i")
    fill = K.Range(i, 0, n * stride, (out.store(i, K.Const(-1.0, f32)),), vectorize=K.AUTO)
    j = K.Var("j")
    masked = K.Range(j, 0, n, (out.store(j * stride, x[j], x[j] > 0.0),), vectorize=K.AUTO)
    data = rand(n)
    expected = np.full(n * stride, -1, np.float32)
    expected[::stride] = np.where(data > 0, data, -1)
    both_close(kernel_program(K.Kernel("masked", (x, out), (fill, masked)), 1), (data,), [expected])


# --- random expressions: the renderer agrees with the interpreter bit for bit ------------------

def _expressions():
    """Random float32 expression trees over x[i], y[i] and k[i] (int32), from exact ops only."""
    i = K.Var("i")
    x, y, k = K.Param("x", f32, 1)[i], K.Param("y", f32, 1)[i], K.Param("k", K.int32, 1)[i]
    leaves = st.sampled_from([x, y, K.cast(k, f32), K.Const(1.5, f32), K.Const(-3.0, f32)])
    unary = st.sampled_from(["neg", "abs", "floor", "ceil", "round", "round_even", "sign"])
    binary = st.sampled_from(["add", "sub", "mul", "max", "min"])

    def extend(children):
        return st.one_of(
            st.tuples(unary, children).map(lambda t: K.op(t[0], t[1])),
            st.tuples(binary, children, children).map(lambda t: K.op(t[0], t[1], t[2])),
            st.tuples(children, children, children).map(lambda t: K.select(t[0] > t[1], t[2], t[1])),
            children.map(lambda e: K.cast(K.cast(K.maximum(K.minimum(e, 1e6), -1e6), K.int32) * 3, f32)),
        )
    return st.recursive(leaves, extend, max_leaves=12)


@settings(max_examples=20, deadline=None)
@given(expr=_expressions(), n=st.sampled_from([1, 7, 40]))
def test_random_expressions_interpreter_vs_llvm(expr, n):
    i = K.Var("i")
    x, y, k = K.Param("x", f32, n), K.Param("y", f32, n), K.Param("k", K.int32, n)
    outs = [K.Param("o_s", f32, n), K.Param("o_v", f32, n)]
    body = tuple(K.Range(i, 0, n, (o.store(i, expr),), vectorize=v) for o, v in zip(outs, (0, K.AUTO)))
    program = kernel_program(K.Kernel("fuzz", (x, y, k, *outs), body), 3)
    rng = np.random.default_rng(n)
    data = [(rng.standard_normal(n) * 10).astype(np.float32), (rng.standard_normal(n) * 10).astype(np.float32),
            rng.integers(-50, 50, n).astype(np.int32)]
    interp, llvm = run_both(program, *data)
    np.testing.assert_array_equal(interp[0], interp[1])
    np.testing.assert_array_equal(llvm[0], interp[0])
    np.testing.assert_array_equal(llvm[1], interp[0])

