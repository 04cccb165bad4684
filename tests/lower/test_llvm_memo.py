"""The LLVM renderer's value memo (structural CSE) against the kernel-IR interpreter: values read
before a loop whose body writes them, loop-invariant code of fully unrolled loops emitted once,
and what must not be reused across an unrolled iteration (stores, locals, branches)."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from fgrad.backends import cpu
from fgrad.lower import kernel as K
from fgrad.lower.llvm import render_kernel_module
from tests.lower.util import assert_same, kernel_program, run_both

f32 = K.float32


def test_local_read_before_a_loop_that_writes_it_is_read_again_inside():
    """out[0] = v; for i: out[i+1] = v; v += x[i] -- the read in the body sees the last write."""
    x, out = K.Param("x", f32, 4), K.Param("out", f32, 5)
    v, i = K.Local("v", f32), K.Var("i")
    body = (K.DefineLocal(v, K.Const(0.0, f32)), out.store(0, v[0]),
            K.Range(i, 0, 4, (out.store(i + 1, v[0]), v.store(0, v[0] + x[i]))))
    data = np.arange(1, 5, dtype=np.float32)
    expected, actual = run_both(kernel_program(K.Kernel("k", (x, out), body), 1), data)
    np.testing.assert_array_equal(expected[0], [0, 0, 1, 3, 6])
    assert_same(expected, actual)


def test_param_read_before_a_loop_that_writes_it_is_read_again_inside():
    """first[0] = out[5] before the loop; the body copies out[5] to seen[i], then adds to it."""
    x, out, first, seen = (K.Param("x", f32, 4), K.Param("out", f32, 6), K.Param("first", f32, 1),
                           K.Param("seen", f32, 4))
    i = K.Var("i")
    body = (out.store(5, K.Const(1.0, f32)), first.store(0, out[5]),
            K.Range(i, 0, 4, (seen.store(i, out[5]), out.store(5, out[5] + x[i]))))
    data = np.arange(1, 5, dtype=np.float32)
    expected, actual = run_both(kernel_program(K.Kernel("k", (x, out, first, seen), body), 1), data)
    np.testing.assert_array_equal(expected[2], [1, 2, 4, 7])
    assert_same(expected[1:], actual[1:])      # out[:5] is never written


@pytest.mark.parametrize("vectorize", [None, 8])
def test_unrolled_iterations_see_each_others_stores(vectorize):
    """An unrolled loop whose invariant read (v[0], out[0]) is written by each iteration."""
    n = 16
    x, out = K.Param("x", f32, n), K.Param("out", f32, n + 1)
    v, r = K.Local("v", f32), K.Var("r")
    inner = (out.store(r + 1, v[0] * x[r] + out[0]), v.store(0, v[0] + 1.0), out.store(0, out[0] + 2.0))
    loop = K.Range(r, 0, n, inner, unroll=K.FULL) if vectorize is None else \
        K.Range(r, 0, n, (out.store(r + 1, x[r] * v[0] + out[0]),), unroll=K.FULL, vectorize=vectorize)
    body = (K.DefineLocal(v, K.Const(1.0, f32)), out.store(0, K.Const(0.5, f32)), loop,
            out.store(0, out[0] + v[0]))
    data = np.arange(n, dtype=np.float32)
    assert_same(*run_both(kernel_program(K.Kernel("k", (x, out), body), 1), data))


def test_local_defined_inside_an_unrolled_iteration_is_fresh_each_time():
    x, out = K.Param("x", f32, 6), K.Param("out", f32, 6)
    t, r = K.Local("t", f32), K.Var("r")
    inner = (K.DefineLocal(t, K.Const(0.0, f32)), t.store(0, t[0] + x[r]), out.store(r, t[0] * 2.0))
    body = (K.Range(r, 0, 6, inner, unroll=K.FULL),)
    data = np.arange(1, 7, dtype=np.float32)
    assert_same(*run_both(kernel_program(K.Kernel("k", (x, out), body), 1), data))


def test_value_first_made_in_a_branch_of_an_unrolled_iteration_is_not_reused_outside_it():
    """x[0] * 3 is first computed inside the then-branch of iteration 0, which iteration 1 (and
    the code after the branch) may not reach: it must be computed again there."""
    x, out = K.Param("x", f32, 4), K.Param("out", f32, 4)
    r = K.Var("r")
    invariant = x[0] * 3.0
    inner = (K.If(K.eq(r, 1), (out.store(r, invariant),), (out.store(r, x[r]),)),
             out.store(r, out[r] + invariant))
    body = (K.Range(r, 0, 4, inner, unroll=K.FULL),)
    data = np.array([1.5, -2.0, 4.0, 0.25], np.float32)
    assert_same(*run_both(kernel_program(K.Kernel("k", (x, out), body), 1), data))


@given(st.integers(1, 6), st.integers(1, 3), st.sampled_from([0, 4, 16]))
def test_register_tile_with_invariant_operands_matches_the_interpreter(rows, kdepth, lanes):
    """A GEMM-like micro-kernel: acc[it, jt] += a[kk, it] * b[kk, jt], it and jt unrolled (jt
    vectorised), over a serial k loop: the a and b reads and their index math are invariant in
    one of the unrolled loops each."""
    cols = 16
    a, b, out = K.Param("a", f32, kdepth * rows), K.Param("b", f32, kdepth * cols), K.Param("out", f32, rows * cols)
    acc = K.Local("acc", f32, rows * cols)
    it, jt, kk = K.Var("it"), K.Var("jt"), K.Var("kk")

    def each(fn):
        return K.Range(it, 0, rows, (K.Range(jt, 0, cols, fn(), unroll=K.FULL, vectorize=lanes),), unroll=K.FULL)
    body = (K.DefineLocal(acc),
            each(lambda: (acc.store(it * cols + jt, K.Const(0.0, f32)),)),
            K.Range(kk, 0, kdepth, (each(lambda: (acc.store(it * cols + jt, K.fma(
                a[kk * rows + it], b[kk * cols + jt], acc[it * cols + jt])),)),)),
            each(lambda: (out.store(it * cols + jt, acc[it * cols + jt]),)))
    rng = np.random.default_rng(rows * 10 + kdepth)
    args = (rng.standard_normal(kdepth * rows).astype(np.float32),
            rng.standard_normal(kdepth * cols).astype(np.float32))
    assert_same(*run_both(kernel_program(K.Kernel("tile", (a, b, out), body), 2), *args), rtol=1e-5, atol=1e-5)


def test_loop_invariant_code_of_an_unrolled_loop_is_emitted_once():
    """x[k * 7 + 3] read in every unrolled iteration: one load (and one multiply by 7) in the
    function, not one per iteration."""
    x, out = K.Param("x", f32, 64), K.Param("out", f32, 8)
    k, r = K.Var("k"), K.Var("r")
    body = (K.Range(k, 0, 2, (K.Range(r, 0, 8, (out.store(r, x[k * 7 + 3] * K.cast(r, f32)),), unroll=K.FULL),)),)
    text = str(render_kernel_module(K.Kernel("inv", (x, out), body), cpu.host_target(), "inv_sym"))
    assert text.count("load float") == 1, text
    assert text.count(", 7\n") == 1, text
