"""The wrapped Cauchy distribution on [0, 2 pi] (``jax.scipy.stats.wrapcauchy``)."""
from __future__ import annotations

import math
from typing import Any

from fgrad import numpy as fnp
from fgrad.scipy.stats._util import floats

__all__ = ["logpdf", "pdf"]


def logpdf(x: Any, c: Any) -> Any:
    """``wrapcauchy.logpdf(x, c)``: ``log(1 - c^2) - log(2 pi) - log(1 + c^2 - 2 c cos x)`` for x in
    [0, 2 pi], -inf outside; NaN for c outside (0, 1)."""
    x, c = floats("wrapcauchy.logpdf", x, c)
    value = fnp.log1p(-c * c) - math.log(2 * math.pi) - fnp.log1p(c * c - 2.0 * c * fnp.cos(x))
    value = fnp.where((x >= 0) & (x <= 2 * math.pi), value, -fnp.inf)
    return fnp.where((c > 0) & (c < 1), value, fnp.nan)


def pdf(x: Any, c: Any) -> Any:
    """``wrapcauchy.pdf(x, c)``."""
    return fnp.exp(logpdf(x, c))
