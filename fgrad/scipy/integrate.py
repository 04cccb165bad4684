"""``fgrad.scipy.integrate``: JAX's ``jax.scipy.integrate`` (``trapezoid``)."""
from __future__ import annotations

from typing import Any

from fgrad import numpy as fnp

__all__ = ["trapezoid"]


def trapezoid(y: Any, x: Any = None, dx: Any = 1.0, axis: int = -1) -> Any:
    """``jax.scipy.integrate.trapezoid(y, x=None, dx=1.0, axis=-1)``: the composite trapezoidal
    rule along ``axis``, SciPy's ``scipy.integrate.trapezoid``: ``sum((x[i+1] - x[i]) *
    (y[i+1] + y[i]) / 2)``, at sample points ``x`` (1-d along ``axis``, or of ``y``'s shape) or
    evenly spaced by ``dx``. Integer input integrates as the default float."""
    return fnp.trapezoid(y, x=x, dx=dx, axis=axis)
