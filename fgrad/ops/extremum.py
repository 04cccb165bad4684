"""``lax.max`` and ``lax.min`` on every dtype JAX takes: the ``max``/``min`` primitives on real
operands and, on complex ones, JAX's lexicographic order (by real part, then imaginary part)
as a select. As XLA's compare-and-select, a comparison with a NaN part is false, so the second
operand is taken (``max(nan + 0j, 1 + 1j)`` is ``1 + 1j``)."""
from __future__ import annotations

from typing import Any

from fgrad.core import dtypes
from fgrad.core.trace import get_aval
from fgrad.ops import complex_parts as cp
from fgrad.ops import elementwise as ew
from fgrad.ops import shape as sh
from fgrad.ops._util import as_operand

__all__ = ["max", "min"]


def _is_complex(x: Any) -> bool:
    return type(x) is complex or (not isinstance(x, (int, float, bool)) and dtypes.is_complex(get_aval(x).dtype))


def _lexicographic(x: Any, y: Any, strictly_greater: bool) -> Any:
    """``x`` where it is lexicographically greater (less) than ``y``, else ``y``."""
    x = as_operand(x, get_aval(y).dtype) if type(x) is complex else x
    y = as_operand(y, get_aval(x).dtype) if type(y) is complex else y
    shape = get_aval(x).shape or get_aval(y).shape
    x, y = (sh.broadcast_in_dim(v, shape, ()) if get_aval(v).shape != shape else v for v in (x, y))
    a, b = (x, y) if strictly_greater else (y, x)
    ar, br = cp.real(a), cp.real(b)
    take_x = ew.bitwise_or(ew.gt(ar, br), ew.bitwise_and(ew.eq(ar, br), ew.gt(cp.imag(a), cp.imag(b))))
    return ew.select_n(take_x, y, x)


def max(x: Any, y: Any) -> Any:  # noqa: A001 - lax name
    """``jax.lax.max(x, y)``: the elementwise maximum (NaN propagates for floats; complex
    operands by JAX's lexicographic order)."""
    return _lexicographic(x, y, True) if _is_complex(x) or _is_complex(y) else ew.max(x, y)


def min(x: Any, y: Any) -> Any:  # noqa: A001 - lax name
    """``jax.lax.min(x, y)``: the elementwise minimum (NaN propagates for floats; complex
    operands by JAX's lexicographic order)."""
    return _lexicographic(x, y, False) if _is_complex(x) or _is_complex(y) else ew.min(x, y)
