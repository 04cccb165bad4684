"""Helpers shared by the primitive families: argument checks and the common rule shapes."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from fgrad.core import dtypes
from fgrad.core.trace import get_aval
from fgrad.core.types import ShapedArray


def shape_error(op: str, message: str, fix: str = "") -> TypeError:
    return TypeError(f"{op}: {message}" + (f". {fix}" if fix else ""))


def elementwise_shape(op: str, avals: Sequence[ShapedArray]) -> tuple[int, ...]:
    """Operands of an elementwise primitive share one shape; rank-0 operands broadcast."""
    shapes = {a.shape for a in avals if a.shape != ()}
    if len(shapes) > 1:
        shown = ", ".join(a.str_short() for a in avals)
        raise shape_error(op, f"operands must have the same shape (or be scalars), got {shown}",
                          "Broadcast them first (fgrad.numpy broadcasts automatically; "
                          "at the lax level use lax.broadcast_in_dim)")
    return shapes.pop() if shapes else ()


def same_dtype(op: str, avals: Sequence[ShapedArray]) -> np.dtype:
    kinds = {a.dtype for a in avals}
    if len(kinds) > 1:
        shown = ", ".join(a.str_short() for a in avals)
        raise shape_error(op, f"operands must have the same dtype, got {shown}",
                          "Convert one with .astype(...) / lax.convert_element_type")
    return avals[0].dtype


def all_weak(avals: Sequence[ShapedArray]) -> bool:
    return all(a.weak_type for a in avals)


def canonical_axes(op: str, axes: Sequence[int], ndim: int) -> tuple[int, ...]:
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"{op}: axis {a} is out of range for an array of rank {ndim}")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {tuple(axes)}")
    return tuple(out)


def as_operand(x: Any, like_dtype: np.dtype | None = None) -> Any:
    """Turn a Python scalar into a NumPy scalar of ``like_dtype`` (lax-level ops are strict)."""
    if type(x) in (int, float, bool, complex) and like_dtype is not None:
        return np.asarray(x, like_dtype)[()]
    return x


def require_float(op: str, aval: ShapedArray) -> None:
    if not dtypes.is_float(aval.dtype):
        raise shape_error(op, f"requires a floating-point operand, got {aval.str_short()}",
                          "Convert it with .astype(fgrad.numpy.float32)")


def aval_of(x: Any) -> ShapedArray:
    return get_aval(x)
