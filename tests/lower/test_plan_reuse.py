"""Contraction plans reused across call sites (``contraction.gemm``'s ``plans``): a model's identical
layers call the first layer's GEMM kernels on their own buffers, and contractions that differ
in any way that changes the code (a fused producer's constants, operands that are one buffer,
strides) get their own plans. Results are checked against NumPy under ``jit``."""
from __future__ import annotations

import numpy as np
import pytest

import fgrad
import fgrad.numpy as fnp
from fgrad.lower import kernel as K
from fgrad.lower import rules  # noqa: F401 - registers the lowering rules
from fgrad.lower.schedule import lower_program
from fgrad.transforms.jit import closure_convert


def lowered(f, *args) -> K.Program:
    converted, _ = closure_convert(fgrad.make_jaxpr(f)(*args))
    return lower_program(converted, target="cpu")


def gemm_calls(program: K.Program) -> list[K.Call]:
    return [s for s in K.walk_steps(program.body) if isinstance(s, K.Call) and s.kernel.name.startswith("dot")]


def mlp_loss(x, ws):
    for w in ws:
        x = fnp.tanh(x @ w)
    return (x * x).sum()


def test_identical_layers_share_their_gemm_kernels():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((48, 64)).astype(np.float32)
    ws = [rng.standard_normal((64, 64)).astype(np.float32) * 0.2 for _ in range(4)]
    two = gemm_calls(lowered(fgrad.grad(mlp_loss, argnums=1), x, ws[:2]))
    four = gemm_calls(lowered(fgrad.grad(mlp_loss, argnums=1), x, ws))
    assert len(four) > len(two)                          # more layers: more GEMM calls ...
    assert len({id(c.kernel) for c in four}) == len({id(c.kernel) for c in two})   # ... of the same kernels
    for c in four:                                       # each call binds its own buffers
        assert len(c.args) == len(c.kernel.params)
    outputs = [c.args[-1] for c in four]
    assert len({id(b) for b in outputs}) == len(outputs)

    got = fgrad.jit(fgrad.grad(mlp_loss, argnums=1))(x, ws)
    want = [np.asarray(g) for g in fgrad.grad(mlp_loss, argnums=1)(x.astype(np.float64), [w.astype(np.float64) for w in ws])]
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), w, rtol=2e-4, atol=2e-4)


def test_contractions_that_differ_do_not_share_a_plan():
    rng = np.random.default_rng(1)
    x, y = (rng.standard_normal((40, 40)).astype(np.float32) for _ in range(2))
    w = rng.standard_normal((40, 40)).astype(np.float32)
    cases = {
        "fused constants": (lambda x, y, w: ((2 * x) @ w, (3 * y) @ w),
                            lambda x, y, w: ((2 * x) @ w, (3 * y) @ w)),
        "one buffer twice": (lambda x, y, w: (x @ x, x @ y),
                             lambda x, y, w: (x @ x, x @ y)),
        "transposed operand": (lambda x, y, w: (x @ w, x.T @ w, x @ w.T),
                               lambda x, y, w: (x @ w, x.T @ w, x @ w.T)),
        "the other operand of a fused one": (lambda x, y, w: ((x * y) @ y, (x * y) @ x, (x * y) @ w),
                                             lambda x, y, w: ((x * y) @ y, (x * y) @ x, (x * y) @ w)),
        "same plan, other buffers": (lambda x, y, w: ((2 * x) @ w, (2 * y) @ w, (2 * w) @ x),
                                     lambda x, y, w: ((2 * x) @ w, (2 * y) @ w, (2 * w) @ x)),
    }
    for name, (f, reference) in cases.items():
        got = fgrad.jit(f)(x, y, w)
        want = reference(*(a.astype(np.float64) for a in (x, y, w)))
        for g, r in zip(got, want):
            np.testing.assert_allclose(np.asarray(g), r, rtol=1e-4, atol=1e-4, err_msg=name)


def test_a_shared_plan_gets_fresh_temporaries():
    rng = np.random.default_rng(2)
    x, y = (rng.standard_normal((64, 200)).astype(np.float32) for _ in range(2))
    w = rng.standard_normal((64, 200)).astype(np.float32)
    program = lowered(lambda x, y, w: (x.T @ w, y.T @ w), x, y, w)   # transposed A: packed
    calls = gemm_calls(program)
    kernels = {id(c.kernel) for c in calls}
    assert len(kernels) < len(calls)
    first, second = calls[:len(calls) // 2], calls[len(calls) // 2:]
    for a, b in zip(first, second):
        assert a.kernel is b.kernel
        shared = [p for p, q in zip(a.args, b.args) if p is q]
        assert len(shared) <= 1 and all(p.shape == w.shape for p in shared)   # only w's buffer
    got = fgrad.jit(lambda x, y, w: (x.T @ w, y.T @ w))(x, y, w)
    np.testing.assert_allclose(np.asarray(got[0]), x.T.astype(np.float64) @ w, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(np.asarray(got[1]), y.T.astype(np.float64) @ w, rtol=1e-4, atol=1e-3)


OPERANDS = [
    ("x", lambda v: v[0]), ("y", lambda v: v[1]), ("z", lambda v: v[2]),
    ("x.T", lambda v: v[0].T), ("z.T", lambda v: v[2].T),
    ("x*y", lambda v: v[0] * v[1]), ("y*x", lambda v: v[1] * v[0]), ("x*x", lambda v: v[0] * v[0]),
    ("2*z", lambda v: 2 * v[2]), ("3*z", lambda v: 3 * v[2]), ("y+1", lambda v: v[1] + 1),
    ("(x*z).T", lambda v: (v[0] * v[2]).T),
]


@pytest.mark.parametrize("n", [24, 72])          # the small template, the packed one
def test_every_pair_of_operands_of_one_shape_matches_numpy(n):
    """All contractions of one shape whose operands come from three buffers, raw, transposed or
    through fused producers: whichever share a plan, each gets its own operands."""
    rng = np.random.default_rng(n)
    v = [rng.standard_normal((n, n)).astype(np.float32) for _ in range(3)]
    pairs = [(i, j) for i in range(len(OPERANDS)) for j in range(len(OPERANDS))]

    def f(*v):
        return [OPERANDS[i][1](v) @ OPERANDS[j][1](v) for i, j in pairs]
    got = fgrad.jit(f)(*v)
    want = f(*(a.astype(np.float64) for a in v))
    for (i, j), g, w in zip(pairs, got, want):
        np.testing.assert_allclose(np.asarray(g), w, rtol=1e-4, atol=1e-3,
                                   err_msg=f"{OPERANDS[i][0]} @ {OPERANDS[j][0]}")
