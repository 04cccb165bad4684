"""Shared pieces of the fgrad.numpy tests: hypothesis strategies and NumPy-oracle checks.

NumPy is the oracle for values; for dtypes it is too once 64-bit results are narrowed
(fgrad, like JAX with x64 off, keeps float32/int32) -- the exceptions (float functions of
integers give float32, not NumPy's float16/float64) are spelled out where they matter.
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fgrad.core import dtypes

NUMERIC = (np.float32, np.int32, np.uint8)
ALL = (np.float32, np.int32, np.uint8, np.bool_)


def canonical(dtype) -> np.dtype:
    """The dtype fgrad stores for NumPy's result dtype (64-bit narrowed to 32)."""
    return dtypes.canonicalize(np.dtype(dtype))


def elements(dtype, lo: float = -10, hi: float = 10):
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return st.booleans()
    if dtype.kind == "u":
        return st.integers(max(0, int(lo)), int(hi))
    if dtype.kind == "i":
        return st.integers(int(lo), int(hi))
    lo32, hi32 = dtype.type(lo), dtype.type(hi)  # the bounds must be representable
    if lo32 < lo:
        lo32 = np.nextafter(lo32, dtype.type(np.inf))
    if hi32 > hi:
        hi32 = np.nextafter(hi32, dtype.type(-np.inf))
    return st.floats(float(lo32), float(hi32), width=dtype.itemsize * 8, allow_nan=False, allow_infinity=False)


def arrays(dtype, shape, lo: float = -10, hi: float = 10):
    return hnp.arrays(np.dtype(dtype), shape, elements=elements(dtype, lo, hi))


shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
nonempty_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


def assert_matches(got, want, rtol: float = 1e-5, atol: float = 1e-6, dtype=None) -> None:
    """``got`` (an fgrad array) equals NumPy's ``want`` in shape, dtype and value."""
    want = np.asarray(want)
    got_np = np.asarray(got)
    assert got_np.shape == want.shape, f"shape {got_np.shape} != NumPy's {want.shape}"
    expected = canonical(want.dtype) if dtype is None else np.dtype(dtype)
    assert got_np.dtype == expected, f"dtype {got_np.dtype} != expected {expected}"
    if want.dtype.kind in "biu" and expected.kind in "biu":
        np.testing.assert_array_equal(got_np, want.astype(expected))
    else:
        np.testing.assert_allclose(got_np.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=atol,
                                   equal_nan=True)
