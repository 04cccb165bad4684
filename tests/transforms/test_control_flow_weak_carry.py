"""A weakly typed loop carry (a Python scalar) whose body returns another dtype takes the
promoted dtype, as JAX's ``_promote_weak_typed_input``: ``0.`` (weak float64 under 64-bit)
carried as float32, ``0`` (weak int) carried as float32; a strong carry still must keep its
dtype. Expected dtypes and values are JAX 0.10.2's (checked by hand with the JAX oracle)."""
from __future__ import annotations

import numpy as np
import pytest

import fgrad
from fgrad import lax
from fgrad import numpy as fnp
from tests.util import natively


def _float32_one():
    return fnp.ones((), dtype=np.float32)


def test_while_loop_weak_float64_carry_becomes_float32():
    with fgrad.config.override(enable_x64=True):
        x = _float32_one()
        value, count = lax.while_loop(lambda c: c[1] < 3, lambda c: (c[0] * 0 + x * 2, c[1] + 1), (0., 0))
        assert np.asarray(value).dtype == np.float32 and float(value) == 2.0
        assert np.asarray(count).dtype == np.int64 and int(count) == 3


def test_scan_weak_float64_carry_becomes_float32():
    with fgrad.config.override(enable_x64=True):
        x = _float32_one()
        carry, _ = lax.scan(lambda c, t: (t * c + x, None), 0., fnp.ones(3, np.float32))
        assert np.asarray(carry).dtype == np.float32 and float(carry) == 3.0


@pytest.mark.parametrize("x64", [False, True])
def test_fori_loop_weak_int_carry_becomes_float32_under_jit(x64):
    with fgrad.config.override(enable_x64=x64):
        out = natively(lambda x: lax.fori_loop(0, 3, lambda i, c: c + x, 0), _float32_one())
        assert out.dtype == np.float32 and float(out) == 3.0


def test_strong_carry_changing_dtype_is_still_an_error():
    with pytest.raises(TypeError, match="carry"):
        lax.while_loop(lambda c: c < 3, lambda c: (c + 1).astype(np.float32), fnp.asarray(0, np.int32))
