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
