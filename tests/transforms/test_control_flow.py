"""Control flow (cond, switch, while_loop, fori_loop, scan, map): results vs Python loops,
derivatives vs finite differences, vmap vs a loop over the batch, compositions, staged
jaxprs, and the errors."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fgrad
from fgrad import grad, jit, jvp, lax, make_jaxpr, vmap
from fgrad import numpy as fnp
from fgrad.core.ir import ClosedJaxpr, typecheck_jaxpr
from fgrad.ops.control import WhileReverseModeError
from tests.util import check_grads, check_vmap

floats = st.floats(-2.0, 2.0, width=32)


def arr(values, dtype=np.float32):
    return fnp.asarray(np.asarray(values, dtype))


def typecheck_all(closed):
    """typecheck a staged jaxpr and every body inside it (cond keeps a tuple of branches)."""
    typecheck_jaxpr(closed.jaxpr)
    for eqn in closed.jaxpr.eqns:
        for value in eqn.params.values():
            for inner in (value if isinstance(value, tuple) else (value,)):
                if isinstance(inner, ClosedJaxpr):
                    typecheck_all(inner)


def step(c, x):  # a nonlinear recurrence used throughout
    return c * fnp.sin(x) + x * x * 0.5, c * x


def scan_oracle(c, xs, reverse=False):
    ys = [None] * len(xs)
    order = range(len(xs) - 1, -1, -1) if reverse else range(len(xs))
    for i in order:
        c, ys[i] = c * np.sin(xs[i]) + xs[i] * xs[i] * 0.5, c * xs[i]
    return c, np.array(ys)


# --- values vs Python ---------------------------------------------------------------------------

@settings(max_examples=20, deadline=None)
@given(st.booleans(), st.lists(floats, min_size=1, max_size=4))
def test_cond_matches_python(pred, values):
    x = arr(values)
    out = lax.cond(pred, lambda v: fnp.sin(v) * 2.0, lambda v: v - 1.0, x)
    want = np.sin(np.float32(values)) * 2 if pred else np.float32(values) - 1
    np.testing.assert_allclose(np.asarray(out), want, rtol=1e-6)


def test_cond_pytrees_and_integer_predicate():
    ops = ({"a": arr([1.0, 2.0])}, arr(3.0))
    out = lax.cond(arr(2, np.int32), lambda d, s: (d["a"] * s, s), lambda d, s: (d["a"], -s), *ops)
    np.testing.assert_allclose(np.asarray(out[0]), [3.0, 6.0])
    assert float(out[1]) == 3.0
    out = lax.cond(0, lambda d, s: (d["a"] * s, s), lambda d, s: (d["a"], -s), *ops)
    assert float(out[1]) == -3.0


@pytest.mark.parametrize("index,want", [(-3, 1.0), (0, 1.0), (1, 2.0), (2, -1.0), (7, -1.0)])
def test_switch_clamps_index(index, want):
    out = lax.switch(index, [lambda v: v, lambda v: v * 2.0, lambda v: -v], arr(1.0))
    assert float(out) == want


def test_while_loop_matches_python():
    def body(c):
        i, x = c
        return i + 1, x * 1.5 + 1.0
    i, x = lax.while_loop(lambda c: c[1] < 100.0, body, (0, arr(1.0)))
    pi, px = 0, 1.0
    while px < 100.0:
        pi, px = pi + 1, px * 1.5 + 1.0
    assert int(i) == pi and float(x) == pytest.approx(px)


@pytest.mark.parametrize("lower,upper", [(0, 5), (2, 7), (3, 3), (5, 2)])
def test_fori_loop_static_and_traced_bounds(lower, upper):
    body = lambda i, x: x * 0.5 + i.astype(np.float32)  # noqa: E731
    want = 1.0
    for i in range(lower, upper):
        want = want * 0.5 + i
    assert float(lax.fori_loop(lower, upper, body, arr(1.0))) == pytest.approx(want)
    traced = jit(lambda lo, hi, x: lax.fori_loop(lo, hi, body, x))
    assert float(traced(lower, upper, arr(1.0))) == pytest.approx(want)
    assert "while" in str(make_jaxpr(lambda lo, x: lax.fori_loop(lo, upper, body, x))(lower, arr(1.0)))
    assert "scan" in str(make_jaxpr(lambda x: lax.fori_loop(lower, upper, body, x))(arr(1.0)))


@settings(max_examples=15, deadline=None)
@given(st.lists(floats, min_size=0, max_size=5), floats, st.booleans())
def test_scan_matches_python(values, init, reverse):
    xs = np.asarray(values, np.float32).reshape(-1)
    c, ys = lax.scan(step, arr(init), arr(xs), reverse=reverse)
    wc, wys = scan_oracle(np.float32(init), xs, reverse)
    np.testing.assert_allclose(float(c), wc, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(ys).reshape(-1), wys.reshape(-1), rtol=1e-5, atol=1e-6)


def test_scan_pytrees_length_and_map():
    xs = {"u": arr(np.arange(6).reshape(3, 2)), "v": arr([1.0, 2.0, 3.0])}

    def f(carry, x):
        total, count = carry
        return (total + fnp.sum(x["u"]) * x["v"], count + 1), {"w": x["v"] * 2.0, "n": count}
    (total, count), ys = lax.scan(f, (arr(0.0), 0), xs)
    assert float(total) == 1 * 1 + 5 * 2 + 9 * 3 and int(count) == 3
    np.testing.assert_allclose(np.asarray(ys["w"]), [2, 4, 6])
    assert np.asarray(ys["n"]).tolist() == [0, 1, 2]
    c, ys = lax.scan(lambda c, _: (c * 2.0, c), arr(1.0), None, length=4)
    assert float(c) == 16.0 and np.asarray(ys).tolist() == [1, 2, 4, 8]
    np.testing.assert_allclose(np.asarray(lax.map(lambda v: fnp.sum(v * v), arr(np.ones((3, 2))))), [2, 2, 2])


def test_scan_under_jit_equals_eager():
    xs = arr(np.linspace(-1, 1, 5))
    f = lambda c, xs: lax.scan(step, c, xs)  # noqa: E731
    for got, want in zip(jit(f)(arr(0.3), xs), f(arr(0.3), xs)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6)


# --- derivatives vs finite differences -------------------------------------------------------------

def test_cond_grads():
    f = lambda p, x, y: lax.cond(p > 0, lambda a, b: fnp.sin(a) * b, lambda a, b: a * a - b, x, y)  # noqa: E731
    for p in (1.0, -1.0):
        check_grads(f, (p, arr([0.3, -0.7]), arr([1.1, 0.4])), order=2)


def test_switch_grads():
    f = lambda i, x: lax.switch(i, [fnp.sin, fnp.cos, lambda v: v * v * v], x)  # noqa: E731
    for i in range(3):
        check_grads(lambda x: f(i, x), (arr([0.3, -0.7]),), order=2)


def test_scan_grads_first_and_second_order():
    def f(c, xs, w):
        return lax.scan(lambda c, x: (fnp.tanh(c * w + x), c * x), c, xs)
    args = (arr([0.2, -0.1]), arr(np.linspace(-1, 1, 8).reshape(4, 2)), arr([0.9, 1.1]))
    check_grads(f, args, order=2)
    check_grads(lambda c, xs, w: lax.scan(lambda c, x: (fnp.tanh(c * w + x), c * x), c, xs, reverse=True),
                args, order=1)


def test_fori_loop_static_is_reverse_differentiable():
    f = lambda x: lax.fori_loop(0, 4, lambda i, v: fnp.sin(v) * 1.3 + v, x)  # noqa: E731
    check_grads(f, (arr([0.4, -0.2]),), order=2)


def test_while_loop_forward_mode():
    f = lambda x: lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, fnp.sin(c[1]) + c[1]), (0, x))[1]  # noqa: E731
    check_grads(f, (arr([0.4, -0.2]),), order=2, modes=("fwd",))
    traced_bounds = lambda n, x: lax.fori_loop(0, n, lambda i, v: v * v * 0.5 + v, x)  # noqa: E731
    check_grads(lambda x: jit(traced_bounds)(3, x), (arr([0.4, -0.2]),), order=1, modes=("fwd",))
    out, f_jvp = fgrad.linearize(f, arr([0.4, -0.2]))
    np.testing.assert_allclose(np.asarray(f_jvp(arr([1.0, 0.0]))), np.asarray(jvp(f, (arr([0.4, -0.2]),),
                                                                                     (arr([1.0, 0.0]),))[1]))


def test_grad_of_grad_through_scan_and_cond():
    def f(x):
        c, ys = lax.scan(lambda c, x: (c * fnp.sin(x), c + x), x, arr([0.5, 1.0, 1.5]))
        return lax.cond(c > 0, lambda v: v * v * v, lambda v: -v, c) + fnp.sum(ys)
    x0 = 0.7
    h = 1e-3
    fd = lambda g, x: (float(g(arr(x + h))) - float(g(arr(x - h)))) / (2 * h)  # noqa: E731
    g1 = grad(f)
    assert float(grad(g1)(arr(x0))) == pytest.approx(fd(g1, x0), rel=1e-2)


# --- vmap vs a loop -----------------------------------------------------------------------------------

def test_vmap_cond_batched_and_unbatched_predicate():
    f = lambda p, x: lax.cond(p > 0, lambda v: fnp.sin(v), lambda v: v * 3.0, x)  # noqa: E731
    ps, xs = arr([1.0, -1.0, 2.0]), arr(np.arange(6).reshape(3, 2))
    check_vmap(f, (ps, xs))
    check_vmap(f, (arr(1.0), xs), in_axes=(None, 0))
    check_vmap(f, (ps, arr([1.0, 2.0])), in_axes=(0, None))
    check_vmap(f, (ps, arr(np.arange(6).reshape(2, 3))), in_axes=(0, 1))
    jaxpr = make_jaxpr(vmap(f))(ps, xs)
    assert "select_n" in str(jaxpr) and "cond" not in str(jaxpr)


def test_vmap_switch_with_batched_index():
    f = lambda i, x: lax.switch(i, [lambda v: v, lambda v: v * 2.0, lambda v: -v], x)  # noqa: E731
    check_vmap(f, (arr([0, 1, 2, 5, -1], np.int32), arr(np.arange(10).reshape(5, 2))))


def test_vmap_while_with_batched_predicate():
    def f(limit, x):
        return lax.while_loop(lambda c: c[1] < limit, lambda c: (c[0] + 1, c[1] * 2.0), (0, x))
    check_vmap(f, (arr([1.0, 10.0, 100.0]), arr([0.5, 1.0, 3.0])))
    check_vmap(f, (arr(20.0), arr([0.5, 1.0, 3.0])), in_axes=(None, 0))
    check_vmap(f, (arr([1.0, 10.0, 100.0]), arr(1.0)), in_axes=(0, None))


def test_vmap_scan_over_carry_xs_and_consts():
    def f(c, xs, w):
        return lax.scan(lambda c, x: (c * w + x, c * x), c, xs)
    c, xs, w = arr([0.1, 0.2, 0.3]), arr(np.linspace(0, 1, 12).reshape(3, 4)), arr([0.5, 1.5, 2.5])
    check_vmap(f, (c, xs, w))
    check_vmap(f, (arr(0.1), xs, arr(0.5)), in_axes=(None, 0, None))
    check_vmap(f, (arr(0.1), arr(np.linspace(0, 1, 4)), w), in_axes=(None, None, 0))
    check_vmap(f, (c, arr(np.linspace(0, 1, 12).reshape(4, 3)), w), in_axes=(0, 1, 0))


def test_vmap_fori_loop_with_batched_trip_count():
    f = lambda n, x: jit(lambda n, x: lax.fori_loop(0, n, lambda i, v: v * 2.0, x))(n, x)  # noqa: E731
    check_vmap(f, (arr([0, 1, 3], np.int32), arr([1.0, 1.0, 1.0])))


def test_grad_of_vmap_and_vmap_of_grad():
    def loss(w, x):
        c, _ = lax.scan(lambda c, xi: (fnp.tanh(c * w + xi), None), 0.0, x)
        return lax.cond(c > 0, lambda v: v * v, lambda v: v * 0.5, c)
    ws, xs = arr([0.5, -1.0, 2.0]), arr(np.linspace(-1, 1, 12).reshape(3, 4))
    per_example = vmap(grad(loss))(ws, xs)
    loop = [float(grad(loss)(arr(np.asarray(ws)[i]), arr(np.asarray(xs)[i]))) for i in range(3)]
    np.testing.assert_allclose(np.asarray(per_example), loop, rtol=1e-5)
    total = grad(lambda w: fnp.sum(vmap(loss, in_axes=(None, 0))(w, xs)))(arr(0.7))
    want = sum(float(grad(loss)(arr(0.7), arr(np.asarray(xs)[i]))) for i in range(3))
    assert float(total) == pytest.approx(want, rel=1e-5)
    check_grads(lambda w: fnp.sum(vmap(loss, in_axes=(None, 0))(w, xs)), (arr(0.7),), order=1)


# --- staged jaxprs ---------------------------------------------------------------------------------------

def test_staged_jaxprs_typecheck():
    def f(x):
        c, ys = lax.scan(step, x, arr([0.1, 0.2]))
        y = lax.cond(c > 0, lambda v: v * 2.0, lambda v: v, c)
        return lax.while_loop(lambda v: v < 10.0, lambda v: v * 2.0 + 1.0, y) + fnp.sum(ys)
    x, xs = arr(0.5), arr([0.5, 1.0])
    cases = [(f, x), (grad(lambda x: lax.scan(step, x, arr([0.1, 0.2]))[0]), x), (vmap(f), xs),
             (lambda x: jvp(f, (x,), (x,)), x), (vmap(grad(lambda x: lax.cond(x > 0, fnp.sin, fnp.cos, x))), xs)]
    for fun, arg in cases:
        typecheck_all(make_jaxpr(fun)(arg))


def test_scan_body_prints_once_and_unused_outputs_are_pruned():
    jaxpr = make_jaxpr(lambda x: lax.scan(lambda c, v: (c + v, fnp.sin(v)), 0.0, x)[0])(arr([1.0, 2.0]))
    assert str(jaxpr).count("scan[") == 1 and "sin" not in str(jaxpr)
    text = str(make_jaxpr(grad(lambda x: fnp.sum(lax.scan(step, x, arr([0.1, 0.2, 0.3]))[1])))(arr(0.5)))
    # the transposed scan only: the one residual, sin(x), is recomputed from the xs slice there,
    # so the forward scan has nothing left to compute for the gradient and is pruned
    assert text.count("scan[") == 1 and "sin" in text


def test_cond_on_concrete_predicate_binds_once_eagerly():
    calls = []
    out = lax.cond(True, lambda v: calls.append("t") or v + 1.0, lambda v: calls.append("f") or v, arr(1.0))
    assert float(out) == 2.0 and sorted(calls) == ["f", "t"]  # both traced once, one evaluated


# --- errors ------------------------------------------------------------------------------------------------

def test_carry_type_mismatch_names_the_key_path():
    with pytest.raises(TypeError, match=r"scan: the carry at \['b'\] enters f as f32\[\] but f returns f32\[2\]"):
        lax.scan(lambda c, x: ({"a": c["a"], "b": c["b"] * x}, None), {"a": arr(1.0), "b": arr(1.0)}, arr(np.ones((3, 2))))
    with pytest.raises(TypeError, match="while_loop.*enters body_fun as i32.*returns f32"):
        lax.while_loop(lambda c: c < 3, lambda c: c * 1.5, np.int32(0))   # a weak 0 would become float, as in JAX
    with pytest.raises(TypeError, match="structure"):
        lax.fori_loop(0, 3, lambda i, c: (c, c), arr(1.0))


def test_branch_mismatch_and_bad_predicates():
    with pytest.raises(TypeError, match=r"cond: false_fun returns f32\[\] at <root> but true_fun returns f32\[2\]"):
        lax.cond(True, lambda v: v * arr([1.0, 2.0]), lambda v: v, arr(1.0))
    with pytest.raises(TypeError, match="structure"):
        lax.cond(True, lambda v: (v, v), lambda v: v, arr(1.0))
    with pytest.raises(TypeError, match="scalar"):
        lax.cond(arr([True, False]), lambda v: v, lambda v: v, arr(1.0))
    with pytest.raises(TypeError, match="bool scalar"):
        lax.while_loop(lambda c: c, lambda c: c + 1.0, arr(1.0))
    with pytest.raises(TypeError, match="integer"):
        lax.switch(arr(1.0), [lambda v: v, lambda v: v], arr(1.0))
    with pytest.raises(TypeError, match="callable"):
        lax.cond(True, 1.0, lambda v: v, arr(1.0))


def test_scan_argument_errors():
    with pytest.raises(ValueError, match="same leading axis"):
        lax.scan(lambda c, x: (c, None), 0.0, (arr(np.ones(3)), arr(np.ones(4))))
    with pytest.raises(ValueError, match="length="):
        lax.scan(lambda c, x: (c, None), 0.0, None)
    with pytest.raises(TypeError, match="pair"):
        lax.scan(lambda c, x: c, 0.0, arr(np.ones(3)))
    with pytest.raises(TypeError, match=r"\[1\].*str"):
        lax.scan(lambda c, x: (c, None), (0.0, "a"), arr(np.ones(3)))


def test_reverse_mode_through_while_loop_is_a_clear_error():
    f = lambda x: lax.while_loop(lambda c: c < 10.0, lambda c: c * 2.0, x)  # noqa: E731
    with pytest.raises(WhileReverseModeError, match="scan.*fori_loop.*static"):
        grad(f)(arr(1.0))
    with pytest.raises(ValueError, match="scan"):
        grad(lambda x, n: jit(lambda x, n: lax.fori_loop(0, n, lambda i, v: v * 2.0, x))(x, n))(arr(1.0), 3)


def _grow(x):
    """A while loop whose float carry depends on x (its trip count does not)."""
    return lax.while_loop(lambda c: c[0] < 5, lambda c: (c[0] + 1, c[1] * 1.5), (0, x))[1]


# JAX 0.10.2 differentiates each of these (values: its grad at x = 2.0)
NO_COTANGENT_THROUGH_WHILE = {
    "result_only_in_a_cond_predicate": (lambda x: lax.cond(_grow(x) > 5.0, lambda y: y * 2, lambda y: y * 3, x), 2.0),
    "result_unused": (lambda x: (_grow(x), x * x)[1], 4.0),
    "loop_invariant_carry": (lambda x: lax.while_loop(lambda c: c[0] < 5, lambda c: (c[0] + 1, c[1] * 1.5, c[2]),
                                                      (0, x, x * x))[2], 4.0),
    "argsort_of_result": (lambda x: fnp.sum(fnp.argsort(fnp.stack([_grow(x), x])).astype(fnp.float32)) + x * x, 4.0),
    "integer_cast_of_result": (lambda x: _grow(x).astype(fnp.int32).astype(fnp.float32) + x * x, 4.0),
    "comparison_of_result": (lambda x: fnp.where(_grow(x) > 3.0, x, -x) * 2, 2.0),
    "stop_gradient_of_result": (lambda x: lax.stop_gradient(_grow(x)) * x, 15.1875),
    "x_only_in_the_predicate": (lambda x: lax.while_loop(lambda c: c[1] < x, lambda c: (c[0] + 1.0, c[1] + 1.0),
                                                         (0.0, 0.0))[0] * x, 2.0),
    "fori_loop_static_bounds": (lambda x: lax.fori_loop(0, 5, lambda i, c: c * 1.5, x), 7.59375),
    # an empty float carry has an empty (zero) tangent (the fuzzer's seed 756 against JAX)
    "empty_float_carry": (lambda x: fnp.sum(lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] * c[1]),
                                                           (0, fnp.zeros(0) * x))[1]) + x * x, 4.0),
}


@pytest.mark.parametrize("name", sorted(NO_COTANGENT_THROUGH_WHILE))
def test_grad_where_no_cotangent_flows_through_the_while(name):
    f, want = NO_COTANGENT_THROUGH_WHILE[name]
    x = np.float32(2.0)
    for g in (grad(f), jit(grad(f)), grad(jit(f)), lambda x: fgrad.vjp(f, x)[1](np.float32(1.0))[0]):
        np.testing.assert_allclose(float(g(x)), want, rtol=1e-6)


def test_loop_invariant_carries_are_forwarded_not_carried():
    f = lambda x, y: lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] + c[2], c[2]), (0, x, y))  # noqa: E731
    jaxpr = fgrad.make_jaxpr(f)(1.0, 2.0)
    (eqn,) = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "while"]
    assert eqn.params["body_nconsts"] == 1 and len(eqn.outvars) == 2  # y became a body constant
    assert [float(v) for v in f(1.0, 2.0)] == [3.0, 7.0, 2.0]
    assert [float(v) for v in jit(f)(1.0, 2.0)] == [3.0, 7.0, 2.0]
    out = lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1]), (0, 2.0))
    assert isinstance(out[1], fgrad.Array) and out[1].dtype == np.float32  # a forwarded leaf is still an array
    # a carry the predicate reads stays a carry
    g = lambda x: lax.while_loop(lambda c: c[1] < 10.0, lambda c: (c[0] * 2.0, c[1]), (x, 3.0))  # noqa: E731
    (eqn,) = [e for e in fgrad.make_jaxpr(g)(1.0).jaxpr.eqns if e.primitive.name == "while"]
    assert len(eqn.outvars) == 2


def test_grad_needing_a_cotangent_through_while_still_names_the_fix():
    with pytest.raises(WhileReverseModeError, match="scan.*fori_loop.*static"):
        grad(lambda x: _grow(x) * 2)(np.float32(2.0))


# A constant (non-differentiated) operand of a control-flow or call primitive has a symbolic
# zero tangent; materialising it as zeros gives `inf * 0 = nan` inside the body. JAX 0.10.2's
# tangents of x -> F(x, c) at x = [inf, 1], c = [2, inf], along [1, 1]:
_CONST_OPERAND_CASES = {
    "scan": (lambda x, c: lax.scan(lambda k, _: (k * c, None), x, None, length=2)[0], [4., np.inf]),
    "fori_loop": (lambda x, c: lax.fori_loop(0, 2, lambda i, k: k * c, x), [4., np.inf]),
    "while_loop": (lambda x, c: lax.while_loop(lambda s: s[0] < 2, lambda s: (s[0] + 1, s[1] * c), (0, x))[1],
                   [4., np.inf]),
    "cond": (lambda x, c: lax.cond(True, lambda x: x * c, lambda x: x - c, x), [2., np.inf]),
    "jit": (lambda x, c: fgrad.jit(lambda x, c: x * c)(x, c), [2., np.inf]),
    "checkpoint": (lambda x, c: fgrad.checkpoint(lambda x, c: x * c)(x, c), [2., np.inf]),
}


@pytest.mark.parametrize("name", sorted(_CONST_OPERAND_CASES))
def test_symbolic_zero_tangents_of_constant_operands_stay_symbolic(name):
    f, want = _CONST_OPERAND_CASES[name]
    c = np.array([2., np.inf], np.float32)
    x = np.array([np.inf, 1.], np.float32)
    _, t = fgrad.jvp(lambda x: f(x, c), (x,), (np.ones(2, np.float32),))
    np.testing.assert_array_equal(np.asarray(t), want)


def test_scan_hvp_with_nan_inputs_matches_jax():
    # fuzz seed 195: the HVP of a loss bilinear in xs and the carry is finite (JAX's values),
    # though the inputs hold NaNs: the cotangent of the ys is a constant whose tangent is zero
    v0 = np.array([[1.0, np.nan], [0.5, 2.0], [np.nan, 0.3]])
    w = np.array([[0.3, -0.7], [1.1, 0.4], [0.9, -0.2]])
    d = np.array([[0.1, 0.2], [0.3, -0.4], [0.5, 0.6]])

    def loss(v):
        ys = lax.scan(lambda c, x: (c * 0.9 - 0.2 + x, c * x), fnp.zeros((2,), fnp.float64), v, reverse=True)[1]
        return fnp.sum(ys * w)

    with fgrad.config.override(enable_x64=True):
        hv = fgrad.jvp(fgrad.grad(loss), (v0,), (d,))[1]
    np.testing.assert_allclose(np.asarray(hv), [[0.225, -0.098], [0.58, 0.1], [0.357, -0.286]], rtol=1e-12)


# --- lax.map(f, xs, batch_size=...) ---------------------------------------------------------------

def _row_features(v):
    """Different per-row work: a reduction, an elementwise op and a pytree output."""
    return {"s": fnp.sum(fnp.sin(v) * v), "v": v[::-1] * 2.0}


def _row_features_numpy(x):
    return {"s": np.sum(np.sin(x) * x, axis=1), "v": x[:, ::-1] * 2.0}


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 13), batch_size=st.integers(0, 15), data=st.data())
def test_map_batch_size_gives_the_unbatched_values(n, batch_size, data):
    x = data.draw(st.lists(floats, min_size=3 * n, max_size=3 * n))
    x = np.asarray(x, np.float32).reshape(n, 3)
    want = _row_features_numpy(x)
    for f in (lambda a: lax.map(_row_features, a, batch_size=batch_size),
              jit(lambda a: lax.map(_row_features, a, batch_size=batch_size))):
        got = f(arr(x))
        for k in want:
            assert got[k].shape == want[k].shape and got[k].dtype == np.float32
            np.testing.assert_allclose(np.asarray(got[k]), want[k], rtol=2e-6, atol=1e-6)


def test_map_batch_size_traces_vmap_of_the_batch_and_of_the_remainder():
    # JAX's documented example: n = 10, batch_size = 3 traces f on (3, 4) and on the remainder (1, 4)
    seen = []

    def f(v):
        seen.append(v.shape)
        return v + 1

    y = jit(lambda x: lax.map(f, x, batch_size=3))(fnp.ones((10, 3, 4)))
    assert y.shape == (10, 3, 4) and seen == [(3, 4), (3, 4)]
    np.testing.assert_array_equal(np.asarray(y), np.full((10, 3, 4), 2.0, np.float32))
    jaxpr = make_jaxpr(lambda x: lax.map(f, x, batch_size=3))(fnp.ones((10, 3, 4)))
    text = str(jaxpr)
    assert "scan" in text and "f32[3,3,3,4]" in text and "f32[1,3,4]" in text
    typecheck_all(jaxpr)


def test_map_batch_size_pytree_inputs_grad_and_vmap():
    x = np.linspace(-1, 1, 14, dtype=np.float32).reshape(7, 2)
    w = np.arange(7, dtype=np.float32)
    f = lambda a, b: lax.map(lambda t: t[0][0] * t[1] + fnp.sum(t[0] ** 2), (a, b), batch_size=3)  # noqa: E731
    np.testing.assert_allclose(np.asarray(f(arr(x), arr(w))), x[:, 0] * w + (x ** 2).sum(1), rtol=1e-6)
    g = grad(lambda a: fnp.sum(f(a, arr(w)) ** 2))(arr(x))
    out = x[:, 0] * w + (x ** 2).sum(1)
    want = 2 * out[:, None] * (2 * x + np.stack([w, np.zeros_like(w)], 1))
    np.testing.assert_allclose(np.asarray(g), want, rtol=1e-5)
    check_grads(lambda a: f(a, arr(w)), (x.astype(np.float64),), order=2)
    batched = vmap(lambda a: lax.map(fnp.sum, a, batch_size=2))(arr(np.ones((4, 5, 3))))
    np.testing.assert_array_equal(np.asarray(batched), np.full((4, 5), 3.0, np.float32))


def test_map_batch_size_errors():
    with pytest.raises(TypeError, match="batch_size"):
        lax.map(fnp.sin, arr(np.ones(4)), batch_size=-1)
    with pytest.raises(TypeError, match="batch_size"):
        lax.map(fnp.sin, arr(np.ones(4)), batch_size=2.0)
    with pytest.raises(ValueError, match="same leading axis size"):
        lax.map(lambda t: t[0], (arr(np.ones(4)), arr(np.ones(5))), batch_size=2)
