"""Elementwise chains (``lower.chains``): flat loops of one trip count that feed each other at the
loop index become one loop; any other dependence keeps them apart. Every program is checked
against the kernel-IR interpreter running it unmerged, and on the CPU backend."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

import fgrad
import fgrad.numpy as fnp
from fgrad import optim
from fgrad.lower import kernel as K
from fgrad.lower.chains import merge_elementwise_chains
from fgrad.lower.interpret import run_program
from tests.lower.util import assert_same, run_llvm

f32 = K.float32


def _flat(name: str, reads: dict, out: str, n: int, value) -> tuple[K.Kernel, tuple]:
    """for i in 0..n: out[i] = value(i, params) -- ``reads`` maps param names to buffers."""
    params = {p: K.Param(p, f32, buf.size) for p, buf in reads.items()}
    i = K.Var("i")
    body = (K.Range(i, 0, n, (K.Store(out, i, value(i, params)),), vectorize=K.AUTO),)
    return K.Kernel(name, tuple(params.values()), body), tuple(reads.values())


def _call(name, reads, out, n, value):
    kernel, args = _flat(name, reads, out, n, value)
    return K.Call(kernel, args)


def _both(program: K.Program, *inputs):
    merged = merge_elementwise_chains(program)
    want = run_program(program, *inputs)
    assert_same(want, run_program(merged, *inputs))
    assert_same(want, run_llvm(merged, *inputs))
    return merged


def _calls(program: K.Program) -> list[K.Call]:
    return [s for s in program.body if isinstance(s, K.Call)]


def test_an_adam_like_chain_becomes_one_loop_that_matches_the_calls_in_order():
    n = 37
    g, m, v, p = (K.Buffer(x, f32, (n,)) for x in "gmvp")
    m2, v2, p2 = (K.Buffer(x, f32, (n,)) for x in ("m2", "v2", "p2"))
    steps = (
        _call("m", {"g": g, "m": m, "o": m2}, "o", n, lambda i, P: P["g"][i] * 0.1 + P["m"][i] * 0.9),
        _call("v", {"g": g, "v": v, "o": v2}, "o", n, lambda i, P: P["g"][i] * P["g"][i] + P["v"][i]),
        _call("p", {"p": p, "m": m2, "v": v2, "o": p2}, "o", n,
              lambda i, P: P["p"][i] - P["m"][i] / (K.op("sqrt", P["v"][i]) + 1.0)),
    )
    program = K.Program("adam", (g, m, v, p), (m2, v2, p2), steps)
    rng = np.random.default_rng(0)
    merged = _both(program, *[rng.standard_normal(n).astype(np.float32) for _ in range(4)])
    assert len(_calls(merged)) == 1


@pytest.mark.parametrize("offset", [1, -1])
def test_a_read_of_a_neighbour_element_keeps_the_loops_apart(offset):
    """b[i] = a[i +- 1] after a[i] = x[i]: merged, half the reads would see unwritten a."""
    n = 20
    x, a, b = K.Buffer("x", f32, (n,)), K.Buffer("a", f32, (n,)), K.Buffer("b", f32, (n,))
    steps = (_call("a", {"x": x, "o": a}, "o", n, lambda i, P: P["x"][i] * 2.0),
             _call("b", {"a": a, "o": b}, "o", n,
                   lambda i, P: P["a"][K.op("min", K.op("max", i + offset, 0), n - 1)]))
    program = K.Program("shift", (x,), (a, b), steps)
    merged = _both(program, np.arange(n, dtype=np.float32))
    assert len(_calls(merged)) == 2


def test_a_write_of_what_an_earlier_loop_reads_elsewhere_keeps_them_apart():
    """s[i] = 3 x[i]; a[i] = s[0] * x[i]; s[i] = x[i] + 1: merged, a[1:] would read the new s[0]."""
    n = 8
    x, s, a = K.Buffer("x", f32, (n,)), K.Buffer("s", f32, (n,)), K.Buffer("a", f32, (n,))
    steps = (_call("s0", {"x": x, "o": s}, "o", n, lambda i, P: P["x"][i] * 3.0),
             _call("a", {"s": s, "x": x, "o": a}, "o", n, lambda i, P: P["s"][0] * P["x"][i]),
             _call("s", {"x": x, "o": s}, "o", n, lambda i, P: P["x"][i] + 1.0))
    program = K.Program("war", (x,), (a, s), steps)
    merged = _both(program, np.arange(1, n + 1, dtype=np.float32))
    assert len(_calls(merged)) == 3


def test_loops_join_across_independent_calls_but_not_across_a_dependence():
    n, m = 16, 5
    x, a, b, c, y, z = (K.Buffer(k, f32, (n if k in "xabc" else m,)) for k in "xabcyz")
    other = _call("other", {"x": x, "o": y}, "o", m, lambda i, P: P["x"][i] * 3.0)   # 5 elements
    first = _call("a", {"x": x, "o": a}, "o", n, lambda i, P: P["x"][i] + 1.0)
    second = _call("b", {"a": a, "o": b}, "o", n, lambda i, P: P["a"][i] * 2.0)
    independent = K.Program("p", (x,), (a, b, y), (first, other, second))
    assert len(_calls(_both(independent, np.arange(n, dtype=np.float32)))) == 2
    # z depends on a (it is a's sum of five), b on z: b can move neither up nor a down past z
    between = _call("z", {"a": a, "o": z}, "o", m, lambda i, P: P["a"][i] + P["a"][i + 5])
    after = _call("c", {"a": a, "z": z, "o": c}, "o", n, lambda i, P: P["a"][i] * P["z"][0])
    dependent = K.Program("q", (x,), (a, z, c), (first, between, after))
    assert len(_calls(_both(dependent, np.arange(n, dtype=np.float32)))) == 3


def _layers(depth: int, n: int = 24) -> K.Program:
    """Per layer two leaves updated by kernel P and one by kernel Q, each flat loop on buffers
    of its own (as an optimizer updates a model's leaves, layer after layer)."""
    inputs, outputs, steps = [], [], []
    for layer in range(depth):
        for kind in "PPQ":
            x, w, o = (K.Buffer(f"{c}{len(steps)}", f32, (n,)) for c in "xwo")
            value = ((lambda i, P: P["x"][i] * 2.0 + P["w"][i]) if kind == "P"
                     else (lambda i, P: P["x"][i] - P["w"][i] * P["w"][i]))
            steps.append(_call(f"{kind}{len(steps)}", {"x": x, "w": w, "o": o}, "o", n, value))
            inputs += [x, w]
            outputs.append(o)
    return K.Program(f"layers{depth}", tuple(inputs), tuple(outputs), tuple(steps))


def test_a_deeper_model_groups_into_the_same_kernels():
    """Groups take a kernel's repeats (and its chain), never whichever same-size loop comes
    next, in runs of a power of two: 4, 8 and 12 layers compile the same merged kernels (mixed
    runs of 8 gave a composition per depth), built once and shared by the groups that repeat it,
    and each equals the calls in order."""
    shapes = {}
    for depth in (4, 8, 12):
        program = _layers(depth)
        rng = np.random.default_rng(depth)
        merged = _both(program, *[rng.standard_normal(24).astype(np.float32) for _ in program.inputs])
        calls = _calls(merged)
        assert len(calls) == 3 * depth // 4
        assert len({id(c.kernel) for c in calls}) == 2      # each layer's groups share the merged kernel
        shapes[depth] = {K.format_kernel(c.kernel, structural=True) for c in calls}
    assert len(shapes[4]) == 2 and shapes[4] == shapes[8] == shapes[12]


@given(st.integers(1, 40), st.integers(1, 6))
def test_optimizer_steps_match_eager(n, leaves):
    """A jitted Adam step over several leaves (chains merged) equals the eager step."""
    rng = np.random.default_rng(n * 7 + leaves)
    params = [fnp.asarray(rng.standard_normal(n + k).astype(np.float32)) for k in range(leaves)]
    grads = [fnp.asarray(rng.standard_normal(n + k).astype(np.float32)) for k in range(leaves)]
    opt = optim.adam(1e-2)
    state = opt.init(params)

    def step(params, grads, state):
        updates, state = opt.update(grads, state, params)
        return optim.apply_updates(params, updates), state
    got = fgrad.jit(step)(params, grads, state)
    want = step(params, grads, state)
    for g, w in zip(fgrad.tree.tree_leaves(got), fgrad.tree.tree_leaves(want)):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=2e-6, atol=1e-7)
