"""``lax.reduce_precision`` against recorded JAX outputs (scripts/record_jax_reduce_precision.py:
special values, both signs, float32 and float64, eleven formats), against ml_dtypes' bfloat16
rounding, eager vs native jit bit for bit, its derivative (JAX's rule: the tangent rounded
too), and vmap against a loop."""
from __future__ import annotations

import pathlib

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fgrad
from fgrad import lax
from fgrad import numpy as fnp
from tests.util import check_vmap, natively

JAX = np.load(pathlib.Path(__file__).parent / "data" / "jax_reduce_precision.npz")
FORMATS = [tuple(int(v) for v in f) for f in JAX["formats"]]


def same_bits(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(got[~nan].view(f"u{got.itemsize}"), want[~nan].view(f"u{want.itemsize}"))


@pytest.mark.parametrize("e,m", FORMATS)
def test_float32_matches_jax_eager_and_jit(e, m):
    x = JAX["x32"]
    same_bits(lax.reduce_precision(fnp.asarray(x), e, m), JAX[f"f32_{e}_{m}"])
    same_bits(natively(lambda v: lax.reduce_precision(v, e, m), x), JAX[f"f32_{e}_{m}"])


@pytest.mark.parametrize("e,m", FORMATS)
def test_float64_matches_jax(e, m):
    with fgrad.config.override(enable_x64=True):
        x = JAX["x64"]
        same_bits(lax.reduce_precision(fnp.asarray(x), e, m), JAX[f"f64_{e}_{m}"])
        same_bits(natively(lambda v: lax.reduce_precision(v, e, m), x), JAX[f"f64_{e}_{m}"])


@settings(deadline=None, max_examples=50)
@given(st.lists(st.floats(width=32, allow_nan=False), min_size=1, max_size=20))
def test_bfloat16_format_rounds_as_ml_dtypes(values):
    x = np.asarray(values, np.float32)
    want = x.astype(ml_dtypes.bfloat16).astype(np.float32)
    same_bits(lax.reduce_precision(fnp.asarray(x), 8, 7), want)


def test_half_operands_and_derivatives():
    assert float(lax.reduce_precision(fnp.asarray([3.3], fnp.bfloat16), 5, 2)[0]) == 3.5
    h = fnp.asarray([1.0009765625, 3.140625], fnp.float16)
    np.testing.assert_array_equal(np.asarray(lax.reduce_precision(h, 8, 23)), np.asarray(h))
    assert float(fgrad.grad(lambda v: lax.reduce_precision(v, 5, 10))(1.3)) == 1.0
    _, t = fgrad.jvp(lambda v: lax.reduce_precision(v, 5, 2), (1.3,), (1.3,))
    assert float(t) == 1.25                 # the tangent is rounded to the format as well
    g = fgrad.grad(lambda v: (lax.reduce_precision(v, 5, 2) * 1.3).sum())(fnp.ones(2))
    np.testing.assert_array_equal(np.asarray(g), [1.25, 1.25])   # and so is the cotangent


# float16's smallest subnormal through reduce_precision, as JAX 0.10.2 gives it (the half types
# are rounded on their own bits: the subnormal's one mantissa bit rounds away with 0 kept)
HALF_SUBNORMAL_CASES = [((5, 10), 2.0 ** -24), ((6, 10), 2.0 ** -24), ((8, 10), 2.0 ** -24),
                        ((6, 0), 0.0), ((4, 10), 0.0)]


@pytest.mark.parametrize("bits,want", HALF_SUBNORMAL_CASES)
def test_float16_subnormals_round_on_their_own_bits(bits, want):
    x = np.array([2.0 ** -24, -(2.0 ** -24)], np.float16)
    f = lambda v: lax.reduce_precision(v, *bits)
    for got in (f(fnp.asarray(x)), fgrad.jit(f)(x)):
        np.testing.assert_array_equal(np.asarray(got).astype(np.float64), [want, -want])


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16])
@pytest.mark.parametrize("bits", [(5, 10), (6, 0), (4, 3), (8, 7), (3, 1), (2, 5)])
def test_half_types_jit_equals_eager_on_every_value(dtype, bits):
    x = np.arange(0, 1 << 16, dtype=np.uint16).view(dtype)
    f = lambda v: lax.reduce_precision(v, *bits)
    eager = np.asarray(f(fnp.asarray(x))).astype(np.float32)
    compiled = np.asarray(fgrad.jit(f)(x)).astype(np.float32)
    np.testing.assert_array_equal(compiled, eager)       # NaN where NaN, the same number elsewhere


def test_vmap_and_errors():
    x = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    check_vmap(lambda v: lax.reduce_precision(v, 4, 3), (x,))
    with pytest.raises(TypeError, match="must be floating point"):
        lax.reduce_precision(fnp.arange(3), 5, 10)
    with pytest.raises(ValueError, match="exponent_bits must be >= 1"):
        lax.reduce_precision(fnp.ones(3), 0, 10)
