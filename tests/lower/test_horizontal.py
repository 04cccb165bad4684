"""Horizontal fusion (``lower.horizontal``): consecutive independent kernels of a GPU
program become one launch in the renderer's ``segments`` mode, with the same results."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

import fgrad
import fgrad.numpy as fnp
from fgrad.lower import kernel as K
from fgrad.lower import rules  # noqa: F401 - registers the lowering rules
from fgrad.lower.cuda import independent_ranges, render_program
from fgrad.lower.horizontal import MAX_PARTS, merge_independent_calls
from fgrad.lower.interpret import run_program
from fgrad.lower.schedule import lower_program
from fgrad.transforms.jit import closure_convert

f32 = K.float32


def lowered(f, *args, target="gpu"):
    converted, consts = closure_convert(fgrad.make_jaxpr(f)(*args))
    values = [np.asarray(c) for c in consts] + [np.asarray(a) for a in fgrad.tree.tree_leaves(args)]
    return lower_program(converted, target=target), values


def calls(program: K.Program) -> list[K.Call]:
    return [s for s in K.walk_steps(program.body) if isinstance(s, K.Call)]


def test_independent_updates_are_one_launch():
    rng = np.random.default_rng(0)
    a, b, c = (fnp.asarray(rng.standard_normal(n).astype(np.float32)) for n in (5, 300, 7))
    program, values = lowered(lambda a, b, c: (a * 2, b + 1, fnp.exp(c)), a, b, c)
    assert len(calls(program)) == 1
    _, plan = render_program(program)
    assert list(plan.kernel_modes.values()) == ["segments"]
    got = run_program(program, *values)
    for g, w in zip(got, (np.asarray(a) * 2, np.asarray(b) + 1, np.exp(np.asarray(c)))):
        np.testing.assert_allclose(g, w, rtol=1e-6)


def test_a_kernel_reading_what_another_wrote_is_not_merged():
    x = fnp.asarray(np.arange(12, dtype=np.float32).reshape(3, 4))

    def f(x):
        s = fnp.sum(x, axis=1)               # kernel 1 writes s
        return s, x / s[:, None]             # kernel 2 reads s
    program, values = lowered(f, x)
    assert len(calls(program)) == 2
    got = run_program(program, *values)
    np.testing.assert_allclose(got[1], np.asarray(x) / np.asarray(x).sum(1, keepdims=True))


def test_the_cpu_program_is_not_merged():
    rng = np.random.default_rng(0)
    a, b = (fnp.asarray(rng.standard_normal(n).astype(np.float32)) for n in (5, 6))
    program, _ = lowered(lambda a, b: (a * 2, b + 1), a, b, target="cpu")
    assert len(calls(program)) == 2


def test_runs_are_capped():
    xs = [fnp.asarray(np.full(3, k, np.float32)) for k in range(MAX_PARTS + 3)]
    program, values = lowered(lambda *xs: [x * 2 for x in xs], *xs)
    assert [len(c.kernel.body) for c in calls(program)] == [MAX_PARTS, 3]
    for k, g in enumerate(run_program(program, *values)):
        np.testing.assert_array_equal(g, np.full(3, 2 * k, np.float32))


def test_adam_update_of_a_model_is_a_few_launches():
    rng = np.random.default_rng(0)
    params = {"w1": fnp.asarray(rng.standard_normal((4, 3)).astype(np.float32)),
              "b1": fnp.asarray(np.zeros(3, np.float32)),
              "w2": fnp.asarray(rng.standard_normal((3, 2)).astype(np.float32)),
              "b2": fnp.asarray(np.zeros(2, np.float32))}
    opt = fgrad.optim.adam(1e-2)
    grads = fgrad.tree.tree_map(lambda p: p * 0.5 + 1, params)

    def update(params, grads, state):
        updates, state = opt.update(grads, state, params)
        return fgrad.optim.apply_updates(params, updates), state
    args = (params, grads, opt.init(params))
    program, values = lowered(update, *args)
    assert len(calls(program)) <= 4
    got = run_program(program, *values)
    want = [np.asarray(v) for v in fgrad.tree.tree_leaves(update(*args))]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w.reshape(g.shape), rtol=1e-6, atol=1e-7)


@settings(deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from(["neg", "exp", "sum", "double", "chain"]),
                              st.integers(0, 3), st.integers(1, 9)), min_size=1, max_size=8),
       seed=st.integers(0, 1000))
def test_random_programs_match_eager(ops, seed):
    """Outputs computed from a pool of values, some from earlier outputs (dependencies), some
    independent: the merged GPU program computes what eager fgrad does."""
    rng = np.random.default_rng(seed)
    inputs = [fnp.asarray(rng.standard_normal((3, n)).astype(np.float32)) for n in (2, 5, 9, 4)]

    def f(*xs):
        pool, outs = list(xs), []
        for op, src, _ in ops:
            v = pool[src % len(pool)]
            r = {"neg": lambda v: -v, "exp": lambda v: fnp.exp(v * 0.1),
                 "sum": lambda v: fnp.sum(v, axis=0), "double": lambda v: v * 2,
                 "chain": lambda v: fnp.tanh(v) + fnp.sum(v)}[op](v)
            outs.append(r)
            pool.append(r)
        return outs
    program, values = lowered(f, *inputs)
    got = run_program(program, *values)
    want = [np.asarray(o) for o in f(*inputs)]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_merge_is_identity_without_candidates():
    a = K.Buffer("a", f32, 4)
    p = K.Param("p", f32, 4)
    i = K.Var("i")
    k = K.Kernel("k", (p,), (K.Range(i, 0, 4, [p.store(i, p[i] + 1)]),))
    program = K.Program("one", (), (a,), (K.Call(k, (a,)),))
    assert merge_independent_calls(program) is program


def test_independent_ranges():
    p, q = K.Param("p", f32, 4), K.Param("q", f32, 4)
    i, j = K.Var("i"), K.Var("j")
    write_p = K.Range(i, 0, 4, [p.store(i, K.Const(1.0, f32))], parallel=True)
    write_q = K.Range(j, 0, 4, [q.store(j, K.Const(2.0, f32))], parallel=True)
    read_p = K.Range(j, 0, 4, [q.store(j, p[j])], parallel=True)
    assert independent_ranges((write_p, write_q))
    assert not independent_ranges((write_p, read_p))
    assert not independent_ranges((write_p,))


def test_independent_kernels_written_apart_become_one_launch():
    """sum(a), then a / sum(a) (needs it), then b * 2 (needs nothing): b * 2 moves up beside
    the sum and the two run as one launch; a / sum(a) runs after."""
    rng = np.random.default_rng(1)
    a, b = (fnp.asarray(rng.random((4, 5)).astype(np.float32) + 0.5) for _ in range(2))
    program, values = lowered(lambda a, b: (a / fnp.sum(a), b * 2), a, b)
    assert len(calls(program)) == 2
    got = run_program(program, *values)
    np.testing.assert_allclose(got[0], np.asarray(a) / np.asarray(a).sum(), rtol=1e-6)
    np.testing.assert_allclose(got[1], np.asarray(b) * 2)


def _kernel(name, size, times=1.0, plus=0.0):
    src, dst, i = K.Param("src", f32, size), K.Param("dst", f32, size), K.Var("i")
    return K.Kernel(name, (src, dst), (K.Range(i, 0, size, [dst.store(i, src[i] * times + plus)], parallel=True),))


def test_reordering_keeps_reads_before_the_writes_that_follow_them():
    """k0 writes x; k1 reads it; k2 overwrites x (after k1, or y would see k2's x); k3 is
    independent of all and moves up beside k0."""
    x, y, z, w = (K.Buffer(n, f32, 6) for n in "xyzw")
    body = (K.Call(_kernel("k0", 6, plus=1.0), (z, x)), K.Call(_kernel("k1", 6, plus=1.0), (x, y)),
            K.Call(_kernel("k2", 6, times=2.0), (z, x)), K.Call(_kernel("k3", 6, times=3.0), (z, w)))
    program = K.Program("war", (z,), (x, y, w), body)
    merged = merge_independent_calls(program)
    order = [c.kernel.name for c in calls(merged)]
    assert order == ["k0_x2", "k1", "k2"], order
    values = np.arange(6, dtype=np.float32)
    got = run_program(merged, values)
    for g, want in zip(got, (values * 2, values + 2, values * 3)):
        np.testing.assert_array_equal(g, want)
