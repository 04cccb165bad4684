"""``precision=`` and ``preferred_element_type=`` on fnp.dot, matmul, vdot, inner, tensordot
(JAX's keyword options): the result dtype, accumulation in the wider type, values against
NumPy computed in that type, and bad precisions named."""
from __future__ import annotations

import numpy as np
import pytest

import fgrad
from fgrad import numpy as fnp
from tests.util import natively

PRODUCTS = {"dot": (fnp.dot, np.dot), "matmul": (fnp.matmul, np.matmul), "vdot": (fnp.vdot, np.vdot),
            "inner": (fnp.inner, np.inner), "tensordot": (lambda a, b, **k: fnp.tensordot(a, b, 1, **k),
                                                          lambda a, b: np.tensordot(a, b, 1))}


@pytest.mark.parametrize("name", sorted(PRODUCTS))
def test_bfloat16_operands_accumulate_in_float32(name):
    ours, theirs = PRODUCTS[name]
    rng = np.random.default_rng(0)
    a = fnp.asarray(rng.standard_normal((4, 5)).astype(np.float32)).astype(fnp.bfloat16)
    b = fnp.asarray(rng.standard_normal((5, 4) if name not in ("vdot", "inner") else (4, 5)).astype(np.float32)
                    ).astype(fnp.bfloat16)
    got = ours(a, b, preferred_element_type=fnp.float32)
    want = theirs(np.asarray(a).astype(np.float32), np.asarray(b).astype(np.float32))
    assert got.dtype == np.float32
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, atol=1e-6)
    jitted = natively(lambda x, y: ours(x, y, preferred_element_type=fnp.float32), a, b)
    np.testing.assert_allclose(jitted, want, rtol=1e-6, atol=1e-6)
    assert ours(a, b).dtype == fnp.bfloat16


def test_int8_products_accumulate_in_int32_and_narrower_targets_convert_the_result():
    i8 = fnp.asarray(np.full((2, 2), 100, np.int8))
    out = fnp.dot(i8, i8, preferred_element_type=fnp.int32)
    assert out.dtype == np.int32 and np.asarray(out).tolist() == [[20000, 20000], [20000, 20000]]
    assert fnp.dot(fnp.ones(3), fnp.ones(3), preferred_element_type=fnp.bfloat16).dtype == fnp.bfloat16
    assert fnp.linalg.matmul(i8, i8, preferred_element_type=fnp.int32).dtype == np.int32


def test_precision_values_are_checked():
    for p in (None, "highest", fgrad.lax.Precision.HIGH, ("float32", "float32")):
        fnp.dot(fnp.ones(3), fnp.ones(3), precision=p)
    with pytest.raises(ValueError, match="dot: unknown precision='bogus'"):
        fnp.dot(fnp.ones(3), fnp.ones(3), precision="bogus")


def test_clip_and_isdtype_have_the_standards_signatures():
    """clip(x, /, min=None, max=None) and isdtype(dtype, kind), with NumPy's clip keywords kept."""
    import inspect
    params = inspect.signature(fnp.clip).parameters
    assert list(params)[:3] == ["arr", "min", "max"] and params["arr"].kind is inspect.Parameter.POSITIONAL_ONLY
    x = fnp.arange(5.0)
    np.testing.assert_array_equal(np.asarray(fnp.clip(x, 1, 3)), [1, 1, 2, 3, 3])
    np.testing.assert_array_equal(np.asarray(fnp.clip(x, max=1)), [0, 1, 1, 1, 1])
    np.testing.assert_array_equal(np.asarray(fnp.clip(a=x, a_min=1, a_max=2)), [1, 1, 2, 2, 2])
    with pytest.raises(TypeError, match="both min and a_min"):
        fnp.clip(x, 1, a_min=2)
    assert list(inspect.signature(fnp.isdtype).parameters) == ["dtype", "kind"]
    assert fnp.isdtype(dtype=fnp.uint8, kind="integral")


def test_bool_products_and_powers_follow_jax():
    """JAX: a bool matmul is bool (an or of ands); a bool base of power/square is int32."""
    b = np.array([[True, False], [True, True]])
    for got in (fnp.matmul(b, b), fgrad.jit(fnp.matmul)(b, b), fnp.dot(b, b), fnp.einsum("ij,jk->ik", b, b)):
        assert np.asarray(got).dtype == np.bool_
        np.testing.assert_array_equal(np.asarray(got), (b.astype(int) @ b.astype(int)) > 0)
    v = fnp.asarray([True, False])
    assert fnp.square(v).dtype == np.int32 and np.asarray(fnp.square(v)).tolist() == [1, 0]
    assert fnp.power(v, v).dtype == np.int32 and (v ** 2).dtype == np.int32
    assert fnp.power(v, fnp.int8(2)).dtype == np.int32 and fnp.power(fnp.int8(2), v).dtype == np.int8


def test_bool_base_to_integer_array_power_takes_the_exponents_dtype():
    """JAX 0.10: ``bool[n] ** int8[n]`` is int8 and ``bool ** uint32[n]`` uint32 (the bool base is
    promoted with the exponent; fgrad gave int32), eagerly and under jit."""
    v = fnp.asarray([True, False])
    for dt in (np.int8, np.uint8, np.int16, np.uint16, np.uint32):
        e = np.array([2, 0], dt)
        for got in (fnp.power(v, e), v ** fnp.asarray(e), fgrad.jit(fnp.power)(v, e), True ** fnp.asarray(e)):
            assert got.dtype == dt
        assert np.asarray(fnp.power(v, e)).tolist() == [1, 1]
