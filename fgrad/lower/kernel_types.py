"""The kernel IR's dtypes: the thirteen scalar types, their short names and integer wrapping.

The bottom of the kernel IR (``kernel`` re-exports all of it): ``scalar_ops`` and the
expression and statement modules build on these names.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from fgrad.core import dtypes as core_dtypes
from fgrad.core.dtypes import (
    bfloat16, bool_, float16, float32, float64, int8, int16, int32, int64, uint8, uint16, uint32, uint64,
)

#: The dtypes kernel-IR values may have (the core's names and objects). The half types
#: (float16, bfloat16) are storage types: the builders compute on them in float32.
DTYPES = (bool_, uint8, uint16, uint32, uint64, int8, int16, int32, int64, bfloat16, float16, float32, float64)
HALF = (float16, bfloat16)
INDEX = int64
_SHORT = {d: core_dtypes.short_name(d) for d in DTYPES}
_KNOWN = {d: d for d in DTYPES}


def row_major_strides(shape: Sequence[int]) -> tuple[int, ...]:
    """Element strides of a C-contiguous (row-major) array of ``shape``."""
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= d
    return tuple(reversed(strides))


def as_dtype(dtype: Any) -> np.dtype:
    """The kernel IR dtype for a NumPy dtype, a dtype name (``'float32'``) or a short name (``'f32'``)."""
    if isinstance(dtype, np.dtype):     # the common case, first: every IR node asks
        known = _KNOWN.get(dtype)
        if known is not None:
            return known
    if isinstance(dtype, str):
        for d, short in _SHORT.items():
            if dtype == short:
                return d
    try:
        d = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{dtype!r} is not a dtype; use one of {short_names()}") from None
    if d not in DTYPES:
        raise TypeError(f"the kernel IR has no dtype {d.name}; supported: {short_names()}")
    return d


def short_names() -> str:
    """All short dtype names, for error messages."""
    return ", ".join(_SHORT.values())


def short_name(dtype: np.dtype) -> str:
    """``f32``, ``i64``, ``bool``... as the printer writes dtypes."""
    return _SHORT[dtype]


def is_float(dtype: np.dtype) -> bool:
    """Whether ``dtype`` is a float type (bfloat16 included, whose NumPy kind is 'V')."""
    return core_dtypes.is_float(dtype)


def is_int(dtype: np.dtype) -> bool:
    """Whether ``dtype`` is a signed or unsigned integer type (bool is neither)."""
    return dtype.kind in "iu"


def wrap_int(value: int, dtype: np.dtype) -> int:
    """``value`` wrapped into the range of integer ``dtype`` (two's complement)."""
    bits = dtype.itemsize * 8
    value &= (1 << bits) - 1
    if dtype.kind == "i" and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value
