"""The geometric distribution on 1, 2, ... (``jax.scipy.stats.geom``)."""
from __future__ import annotations

from typing import Any

from fgrad import numpy as fnp
from fgrad.scipy import special
from fgrad.scipy.stats._util import floats

__all__ = ["logpmf", "pmf"]


def logpmf(k: Any, p: Any, loc: Any = 0) -> Any:
    """``geom.logpmf(k, p, loc=0)``: ``(k - 1) log(1 - p) + log(p)`` for k >= 1, -inf below."""
    k, p, loc = floats("geom.logpmf", k, p, loc)
    k = k - loc
    return fnp.where(k < 1, -fnp.inf, special.xlog1py(k - 1.0, -p) + fnp.log(p))


def pmf(k: Any, p: Any, loc: Any = 0) -> Any:
    """``geom.pmf(k, p, loc=0)``."""
    return fnp.exp(logpmf(k, p, loc))
