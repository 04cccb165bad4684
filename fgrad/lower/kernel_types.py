"""The kernel IR's dtypes: the eight scalar types, their short names and integer wrapping.

The bottom of the kernel IR (``kernel`` re-exports all of it): ``scalar_ops`` and the
expression and statement modules build on these names.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

bool_ = np.dtype(np.bool_)
uint8 = np.dtype(np.uint8)
uint32 = np.dtype(np.uint32)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
float16 = np.dtype(np.float16)
float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)

DTYPES = (bool_, uint8, uint32, int32, int64, float16, float32, float64)
INDEX = int64
_SHORT = {bool_: "bool", uint8: "u8", uint32: "u32", int32: "i32", int64: "i64",
          float16: "f16", float32: "f32", float64: "f64"}


def row_major_strides(shape: Sequence[int]) -> tuple[int, ...]:
    """Element strides of a C-contiguous (row-major) array of ``shape``."""
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= d
    return tuple(reversed(strides))


def as_dtype(dtype: Any) -> np.dtype:
    """The kernel IR dtype for a NumPy dtype, a dtype name (``'float32'``) or a short name (``'f32'``)."""
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
    """Whether ``dtype`` is a float type."""
    return dtype.kind == "f"


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
