"""Tracing: make_jaxpr over pytrees, concretization errors, escaped tracers, eager arrays."""
import numpy as np
import pytest

import fgrad
from fgrad import numpy as fnp
from fgrad.core.trace import ConcretizationError, UnexpectedTracerError, make_jaxpr


def test_make_jaxpr_over_pytrees_and_static_args():
    def f(params, x, n):
        return {"out": params["w"] * x + params["b"] * n}
    closed = make_jaxpr(f, static_argnums=2)({"w": fnp.ones(3), "b": 1.0}, fnp.ones(3), 3)
    assert [v.aval.str_short() for v in closed.jaxpr.invars] == ["f32[]", "f32[3]", "f32[3]"]
    assert closed.jaxpr.invars[0].aval.weak_type  # the Python float is weakly typed


def test_if_on_traced_value_raises_with_source_line_and_fix():
    def f(x):
        if x > 0:  # the offending line
            return x
        return -x
    with pytest.raises(ConcretizationError) as info:
        make_jaxpr(f)(1.0)
    message = str(info.value)
    assert "if x > 0:  # the offending line" in message
    assert "test_trace.py" in message
    assert "lax.cond" in message and "static_argnums" in message and "where" in message
    assert isinstance(info.value, TypeError)


@pytest.mark.parametrize("convert", [int, float, bool])
def test_python_conversions_of_traced_values_raise(convert):
    with pytest.raises(ConcretizationError, match=convert.__name__):
        make_jaxpr(lambda x: convert(x))(1.0)


def test_python_control_flow_works_under_grad_with_concrete_values():
    def f(x):
        return x * x if x > 0 else -x
    assert float(fgrad.grad(f)(3.0)) == 6.0
    assert float(fgrad.grad(f)(-3.0)) == -1.0


def test_branching_on_batched_value_under_vmap_raises():
    with pytest.raises(ConcretizationError, match="vmapped axis"):
        fgrad.vmap(lambda x: x if x > 0 else -x)(fnp.ones(3))


def test_escaped_tracer_is_reported():
    leaked = []

    def f(x):
        leaked.append(x)
        return x
    make_jaxpr(f)(1.0)
    with pytest.raises(UnexpectedTracerError, match="escaped"):
        leaked[0] + 1


def test_arrays_are_immutable_and_point_to_at():
    x = fnp.ones(3)
    with pytest.raises(TypeError, match=r"\.at\["):
        x[0] = 2.0
    with pytest.raises(ValueError):
        np.asarray(x)[0] = 2.0  # the exported buffer is read-only too


def test_asarray_copies_user_data():
    data = np.arange(3.0)
    x = fnp.asarray(data)
    data[0] = 100.0
    assert float(np.asarray(x)[0]) == 0.0


def test_numpy_operands_defer_to_fgrad():
    out = np.ones(3, np.float32) + fnp.ones(3)
    assert isinstance(out, fgrad.Array)


def test_eager_weak_type_promotion():
    u8 = fnp.asarray(np.array([250], np.uint8))
    assert (u8 + 1).dtype == np.uint8
    f32 = fnp.ones(2)
    assert (f32 * 2.0).dtype == np.float32
    assert (fnp.asarray(np.array([1], np.int32)) * 2.0).dtype == np.float32
