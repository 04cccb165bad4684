"""The Bernoulli distribution (``jax.scipy.stats.bernoulli``)."""
from __future__ import annotations

from typing import Any

from fgrad import numpy as fnp
from fgrad.scipy import special
from fgrad.scipy.stats._util import floats

__all__ = ["logpmf", "pmf", "cdf", "ppf"]


def logpmf(k: Any, p: Any, loc: Any = 0) -> Any:
    """``bernoulli.logpmf(k, p, loc=0)``: ``log(p)`` at 1, ``log(1 - p)`` at 0, -inf elsewhere."""
    k, p, loc = floats("bernoulli.logpmf", k, p, loc)
    k = k - loc
    value = special.xlogy(k, p) + special.xlog1py(1.0 - k, -p)
    return fnp.where((k == 0) | (k == 1) | fnp.isnan(k), value, -fnp.inf)


def pmf(k: Any, p: Any, loc: Any = 0) -> Any:
    """``bernoulli.pmf(k, p, loc=0)``."""
    return fnp.exp(logpmf(k, p, loc))


def cdf(k: Any, p: Any) -> Any:
    """``bernoulli.cdf(k, p)``: 0 below 0, ``1 - p`` on [0, 1), 1 from 1; NaN for p outside [0, 1]."""
    k, p = floats("bernoulli.cdf", k, p)
    value = fnp.where(k < 0, 0.0, fnp.where(k < 1, 1.0 - p, 1.0))
    return fnp.where(fnp.isnan(k) | fnp.isnan(p) | (p < 0) | (p > 1), fnp.nan, value).astype(k.dtype)


def ppf(q: Any, p: Any) -> Any:
    """``bernoulli.ppf(q, p)``: 0 for q <= 1 - p, else 1; NaN for q or p outside [0, 1]."""
    q, p = floats("bernoulli.ppf", q, p)
    bad = fnp.isnan(q) | fnp.isnan(p) | (p < 0) | (p > 1) | (q < 0) | (q > 1)
    return fnp.where(bad, fnp.nan, fnp.where(q <= 1.0 - p, 0.0, 1.0)).astype(q.dtype)
