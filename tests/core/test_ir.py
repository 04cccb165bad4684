"""The jaxpr IR: printing, type checking, evaluation, dead-code elimination."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import fgrad
from fgrad import lax, numpy as fnp
from fgrad.core.ir import ClosedJaxpr, Eqn, Jaxpr, JaxprTypeError, Literal, Var, eval_jaxpr, typecheck_jaxpr
from fgrad.core.trace import dce_jaxpr, make_jaxpr
from fgrad.core.types import ShapedArray
from fgrad.ops.elementwise import mul_p, sin_p


def test_printer_matches_jax_grammar():
    jaxpr = make_jaxpr(lambda x: fnp.sin(x) * 2.0)(fnp.ones(3))
    assert str(jaxpr) == ("{ lambda ; a:f32[3]. let\n"
                          "    b:f32[3] = sin a\n"
                          "    c:f32[3] = mul b 2.0\n"
                          "  in (c,) }")


def test_printer_shows_constvars_params_and_multiple_outputs():
    w = fnp.asarray(np.arange(6.0).reshape(2, 3))
    jaxpr = make_jaxpr(lambda x: (lax.reduce_sum(x * w, (1,)), x))(fnp.ones((2, 3)))
    text = str(jaxpr)
    assert text.startswith("{ lambda a:f32[2,3]; b:f32[2,3]. let")
    assert "reduce_sum[axes=(1,)] c" in text
    assert text.endswith("in (d b) }")


def test_printer_names_past_z():
    def f(x):
        for _ in range(30):
            x = fnp.sin(x)
        return x
    text = str(make_jaxpr(f)(1.0))
    assert "ba:f32[] = sin z" in text


def test_typecheck_accepts_every_staged_jaxpr():
    jaxpr = make_jaxpr(fgrad.grad(lambda x: fnp.sum(fnp.tanh(x) * x)))(fnp.ones(4))
    typecheck_jaxpr(jaxpr.jaxpr)


def test_typecheck_rejects_use_before_definition():
    a, b = Var(ShapedArray((3,), np.float32)), Var(ShapedArray((3,), np.float32))
    bad = Jaxpr([], [a], [Eqn(sin_p, [b], [Var(b.aval)], {})], [a])
    with pytest.raises(JaxprTypeError, match="before it is defined"):
        typecheck_jaxpr(bad)


def test_typecheck_rejects_wrong_output_type():
    a = Var(ShapedArray((3,), np.float32))
    out = Var(ShapedArray((4,), np.float32))
    bad = Jaxpr([], [a], [Eqn(mul_p, [a, Literal(2.0, ShapedArray((), np.float32, True))], [out], {})], [out])
    with pytest.raises(JaxprTypeError, match="f32\\[4\\]"):
        typecheck_jaxpr(bad)


def test_typecheck_rejects_double_definition():
    a = Var(ShapedArray((), np.float32))
    bad = Jaxpr([], [a], [Eqn(sin_p, [a], [a], {})], [a])
    with pytest.raises(JaxprTypeError, match="defined twice"):
        typecheck_jaxpr(bad)


@given(st.lists(st.floats(-3, 3, width=32), min_size=1, max_size=5))
def test_eval_jaxpr_round_trips_eager(values):
    x = fnp.asarray(np.array(values, np.float32))
    f = lambda x: fnp.exp(fnp.sin(x)) * x + 1.0
    closed = make_jaxpr(f)(x)
    (out,) = eval_jaxpr(closed.jaxpr, closed.consts, x)
    np.testing.assert_allclose(np.asarray(out), np.asarray(f(x)), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(closed(x)[0]), np.asarray(f(x)), rtol=1e-6)


def test_dce_removes_dead_equations_and_reports_used_inputs():
    closed = make_jaxpr(lambda x, y: (fnp.sin(x), fnp.cos(y)))(1.0, 2.0)
    pruned, used = dce_jaxpr(closed.jaxpr, [True, False])
    assert [e.primitive.name for e in pruned.eqns] == ["sin"]
    assert used == [True, False]


def test_staging_drops_dead_code():
    closed = make_jaxpr(lambda x: (fnp.cos(x), fnp.sin(x))[1])(1.0)
    assert [e.primitive.name for e in closed.eqns] == ["sin"]


def test_closed_jaxpr_checks_const_count():
    a = Var(ShapedArray((), np.float32))
    with pytest.raises(ValueError, match="constvars"):
        ClosedJaxpr(Jaxpr([a], [], [], [a]), [])


def test_inline_calls_puts_bodies_in_place_with_fresh_variables_and_their_constants():
    from fgrad.core.ir import call_body_params, inline_calls
    from fgrad.transforms.jit import jit_p
    c = np.arange(3.0, dtype=np.float32)
    body = make_jaxpr(lambda v: (v * fnp.asarray(c) + 1.0, v))(np.ones(3, np.float32))
    assert body.consts and call_body_params[jit_p] == "jaxpr"

    def twice(v):
        once, same = jit_p.bind(v, jaxpr=body, name="f")
        again, same_again = jit_p.bind(once, jaxpr=body, name="f")
        return again + same * same_again

    outer = make_jaxpr(twice)(np.ones(3, np.float32))
    inlined = inline_calls(outer, lambda eqn: True)
    typecheck_jaxpr(inlined.jaxpr)
    assert [e.primitive.name for e in inlined.eqns] == ["mul", "add", "mul", "add", "mul", "add"]
    assert len({v for e in inlined.eqns for v in e.outvars}) == 6      # two copies, fresh variables
    assert len(inlined.consts) == 2
    x = np.array([1.0, -2.0, 0.5], np.float32)
    once = x * c + 1
    np.testing.assert_allclose(np.asarray(inlined(x)[0]), (once * c + 1) + x * once)
    assert inline_calls(outer, lambda eqn: False).eqns[0].primitive is jit_p
