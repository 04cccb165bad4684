"""Fused values read more than once, recomputed by their readers instead of stored (schedule's
``RECOMPUTE_COST``): GELU's square and tanh in a training step are not residual buffers, an
``exp`` read by a reduction is stored, a value whose recomputation would keep more memory alive
is stored, and the results are bit for bit those of storing every such value."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

import fgrad
import fgrad.numpy as fnp
from fgrad.backends.cpu import compile_program
from fgrad.lower import kernel as K
from fgrad.lower import rules  # noqa: F401 - registers the lowering rules
from fgrad.lower import schedule
from fgrad.lower.memory_plan import plan_memory
from fgrad.lower.schedule import lower_program
from fgrad.transforms.jit import closure_convert
from fgrad.tree_util import tree_leaves


def lowered(f, *args, recompute: bool = True) -> K.Program:
    converted, _ = closure_convert(fgrad.make_jaxpr(f)(*args))
    saved = schedule.RECOMPUTE_COST
    schedule.RECOMPUTE_COST = saved if recompute else 0
    try:
        return lower_program(converted, target="cpu")
    finally:
        schedule.RECOMPUTE_COST = saved


def run(program: K.Program, *args) -> list[np.ndarray]:
    return compile_program(program)(*[np.asarray(a) for a in tree_leaves(args)])


def kernels_computing(program: K.Program, op: str) -> list[str]:
    """Names of the kernel calls whose code evaluates ``op``."""
    return [s.kernel.name for s in K.walk_steps(program.body)
            if isinstance(s, K.Call) and f"{op}(" in K.format_kernel(s.kernel)]


def gelu_mlp_loss(params, x):
    w1, b1, w2 = params
    h = fgrad.nn.gelu(x @ w1 + b1, approximate=True)
    return ((h @ w2) ** 2).mean()


def gelu_mlp_args(seed=0, rows=64, width=32, hidden=128):
    rng = np.random.default_rng(seed)
    params = [(rng.standard_normal((width, hidden)) / np.sqrt(width)).astype(np.float32),
              (rng.standard_normal(hidden) * 0.1).astype(np.float32),
              (rng.standard_normal((hidden, width)) / np.sqrt(hidden)).astype(np.float32)]
    return params, rng.standard_normal((rows, width)).astype(np.float32)


def test_gelu_in_a_training_step_stores_no_residual_but_its_input_and_output():
    params, x = gelu_mlp_args()
    step = fgrad.value_and_grad(gelu_mlp_loss)
    recomputed, stored = lowered(step, params, x), lowered(step, params, x, recompute=False)
    hidden = (x.shape[0], params[0].shape[1])
    n_recomputed = sum(b.shape == hidden for b in recomputed.temporaries())
    n_stored = sum(b.shape == hidden for b in stored.temporaries())
    assert n_recomputed <= n_stored - 2          # the square and the tanh are no buffers of their own
    assert plan_memory(recomputed).size < plan_memory(stored).size
    # tanh runs once forward (GELU's output, a GEMM operand) and once in the derivative's kernel
    assert len(kernels_computing(recomputed, "tanh")) == 2
    assert len(kernels_computing(stored, "tanh")) == 1

    got, want = run(recomputed, params, x), run(stored, params, x)
    assert all(np.array_equal(g, w) for g, w in zip(got, want))    # same arithmetic, same bits
    eager = tree_leaves(step(params, x))
    for g, e in zip(got, eager):
        np.testing.assert_allclose(g, np.asarray(e), rtol=1e-5, atol=1e-6)


def test_a_slow_op_read_by_a_reduction_is_stored():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((32, 64)).astype(np.float32)
    w = rng.standard_normal((64, 64)).astype(np.float32)

    def loss(x, w):
        s = x @ w
        e = fnp.exp(s - s.max(axis=-1, keepdims=True))     # read by the sum and the division
        p = e / e.sum(axis=-1, keepdims=True)
        return (p * p).sum()
    step = fgrad.grad(loss, argnums=1)
    program = lowered(step, x, w)
    assert len(kernels_computing(program, "exp")) == len(kernels_computing(
        lowered(step, x, w, recompute=False), "exp")) == 1
    np.testing.assert_allclose(run(program, x, w)[0], np.asarray(step(x, w)), rtol=1e-4, atol=1e-6)


def test_a_value_whose_recomputation_keeps_more_alive_is_stored():
    """``v`` reads two buffers that die at once if ``v`` is stored, and is read again only many
    equations later: recomputing it there would keep both alive instead of one."""
    rng = np.random.default_rng(2)
    a, b = (rng.standard_normal((64, 64)).astype(np.float32) for _ in range(2))

    def f(a, b):
        v = (a @ b) * (b @ a) * 0.5 + 1.0             # three ops: too dear to recompute freely
        u = fnp.sin(v)                            # stored (a GEMM reads it), as its other reader is
        z = u
        for k in range(12):                       # a long chain that does not read v
            z = fnp.tanh(z @ b) + k
        return z + u + v
    recomputed, stored = lowered(f, a, b), lowered(f, a, b, recompute=False)
    assert plan_memory(recomputed).size <= plan_memory(stored).size
    np.testing.assert_array_equal(run(recomputed, a, b)[0], run(stored, a, b)[0])


def test_a_gather_is_not_recomputed():
    """An embedding lookup read by two elementwise kernels: recomputing it would gather again
    in each, so it is stored once."""
    rng = np.random.default_rng(3)
    table = rng.standard_normal((50, 64)).astype(np.float32)
    pos = rng.standard_normal((16, 64)).astype(np.float32)
    ids = rng.integers(0, 50, (4, 16)).astype(np.int32)

    def f(table, pos, ids):
        x = table[ids] + pos
        return fnp.tanh(x), fnp.exp(x) * 3.0
    program = lowered(f, table, pos, ids)
    assert [b.shape for b in program.temporaries()].count((4, 16, 64)) == 1
    for got, want in zip(run(program, table, pos, ids), f(table, pos, ids)):
        np.testing.assert_allclose(got, np.asarray(want), rtol=1e-5)


_UNARY = [fnp.tanh, fnp.exp, fnp.sin, lambda v: v * v, lambda v: fnp.maximum(v, 0.0), fnp.negative]


@settings(max_examples=25, deadline=None)
@given(ops=st.lists(st.integers(0, len(_UNARY) - 1), min_size=2, max_size=6),
       reads=st.lists(st.integers(0, 5), min_size=2, max_size=6), seed=st.integers(0, 2**16))
def test_recomputing_never_changes_a_bit(ops, reads, seed):
    """Random elementwise chains whose links are read again later (by other elementwise links,
    sums and the backward pass): every result equals the one with each link stored."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((24, 40)).astype(np.float32)
    w = rng.standard_normal((40, 40)).astype(np.float32) * 0.3

    def f(x, w):
        links = [x @ w]
        for k in ops:
            links.append(_UNARY[k](links[-1] * 0.5 + 0.25))
        total = links[-1].sum()
        for r in reads:
            total = total + (links[r % len(links)] * links[-1]).sum()
        return total
    step = fgrad.value_and_grad(f, argnums=(0, 1))
    got, want = run(lowered(step, x, w), x, w), run(lowered(step, x, w, recompute=False), x, w)
    for g, s in zip(got, want):
        np.testing.assert_array_equal(g, s)


def test_repeated_squaring_stays_a_small_expression():
    """Each square reads the previous one twice: recomputing them all would double the kernel's
    expression at every step; the expression bound stores some, and the result stays right."""
    x = np.linspace(0.999, 1.001, 256, dtype=np.float32)

    def f(x):
        for _ in range(30):
            x = x * x
        return x
    program = lowered(f, x)
    assert max(len(K.format_kernel(s.kernel)) for s in K.walk_steps(program.body) if isinstance(s, K.Call)) < 20_000
    want = x.copy()
    with np.errstate(over="ignore"):         # 1.001 ** 2**30 is inf, as in the program
        for _ in range(30):
            want = want * want
    np.testing.assert_array_equal(run(program, x)[0], want)
