"""``fgrad.dtypes``: JAX's ``jax.dtypes`` names (``float0``, ``bfloat16``, ``canonicalize_dtype``,
``issubdtype``, ``result_type``, ``finfo``, ``iinfo``, ``itemsize_bits``, ``scalar_type_of``)."""
from __future__ import annotations

from typing import Any

import numpy as np

from fgrad.core import dtypes as _dtypes
from fgrad.numpy import finfo, iinfo, issubdtype, result_type  # noqa: F401  (jax.dtypes re-exports them too)

#: the dtype of the gradient of an integer or bool input (``grad(..., allow_int=True)``)
float0 = _dtypes.float0
bfloat16 = _dtypes.bfloat16


def canonicalize_dtype(dtype: Any, allow_extended_dtype: bool = False) -> np.dtype:
    """``jax.dtypes.canonicalize_dtype(dtype)``: the dtype arrays of ``dtype`` get in fgrad
    (64-bit types are 32-bit unless ``enable_x64``)."""
    del allow_extended_dtype
    return _dtypes.canonicalize(dtype)


def itemsize_bits(dtype: Any) -> int:
    """``jax.dtypes.itemsize_bits(dtype)``: the bits one element of ``dtype`` takes (bool: 8).

    >>> itemsize_bits(bfloat16)
    16
    """
    dt = np.dtype(dtype)
    if dt == float0 or dt.kind not in "biufc" and dt != bfloat16:
        raise ValueError(f"unexpected input: dtype={dt!r}")
    return dt.itemsize * 8


def scalar_type_of(x: Any) -> type:
    """``jax.dtypes.scalar_type_of(x)``: the Python scalar type (bool, int, float or complex)
    of the value or array ``x``'s dtype."""
    dtype = getattr(x, "dtype", None)
    dt = np.dtype(dtype if dtype is not None else _dtypes.python_scalar_dtype(x))
    if dt == np.bool_:
        return bool
    if dt.kind in "iu":
        return int
    if dt.kind == "f" or dt == bfloat16:
        return float
    if dt.kind == "c":
        return complex
    raise TypeError(f"scalar_type_of: {x!r} has dtype {dt}, which is not a number type")
