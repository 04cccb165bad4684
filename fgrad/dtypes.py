"""``fgrad.dtypes``: JAX's ``jax.dtypes`` names (``float0``, ``bfloat16``, ``canonicalize_dtype``,
``issubdtype``, ``result_type``)."""
from __future__ import annotations

from typing import Any

import numpy as np

from fgrad.core import dtypes as _dtypes
from fgrad.numpy import issubdtype, result_type  # noqa: F401  (jax.dtypes re-exports them too)

#: the dtype of the gradient of an integer or bool input (``grad(..., allow_int=True)``)
float0 = _dtypes.float0
bfloat16 = _dtypes.bfloat16


def canonicalize_dtype(dtype: Any, allow_extended_dtype: bool = False) -> np.dtype:
    """``jax.dtypes.canonicalize_dtype(dtype)``: the dtype arrays of ``dtype`` get in fgrad
    (64-bit types are 32-bit unless ``enable_x64``)."""
    del allow_extended_dtype
    return _dtypes.canonicalize(dtype)
