"""The Cauchy distribution (``jax.scipy.stats.cauchy``)."""
from __future__ import annotations

import math
from typing import Any

from fgrad import numpy as fnp
from fgrad.scipy.stats._util import floats, log_of_probability, standardize

__all__ = ["logpdf", "pdf", "cdf", "logcdf", "sf", "logsf", "ppf", "isf"]


def logpdf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``cauchy.logpdf(x, loc=0, scale=1)``: ``-log(pi scale) - log1p(z^2)``."""
    z, scale = standardize("cauchy.logpdf", x, loc, scale)
    return -math.log(math.pi) - fnp.log(scale) - fnp.log1p(z * z)


def pdf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``cauchy.pdf(x, loc=0, scale=1)``."""
    return fnp.exp(logpdf(x, loc, scale))


def _lower_tail(z: Any) -> Any:
    """P(Z <= z) = atan2(1, -z) / pi: accurate in the left tail (no 1/2 + small cancellation)."""
    return fnp.arctan2(fnp.ones_like(z), -z) / math.pi


def cdf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``cauchy.cdf(x, loc=0, scale=1)``: ``1/2 + atan(z)/pi``."""
    z, _ = standardize("cauchy.cdf", x, loc, scale)
    return _lower_tail(z)


def logcdf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``cauchy.logcdf(x, loc=0, scale=1)``."""
    return log_of_probability(cdf(x, loc, scale), sf(x, loc, scale))


def sf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``cauchy.sf(x, loc=0, scale=1)``: ``cdf(-z)``."""
    z, _ = standardize("cauchy.sf", x, loc, scale)
    return _lower_tail(-z)


def logsf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``cauchy.logsf(x, loc=0, scale=1)``."""
    return log_of_probability(sf(x, loc, scale), cdf(x, loc, scale))


def ppf(q: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``cauchy.ppf(q, loc=0, scale=1)``: ``loc + scale * tan(pi (q - 1/2))``, ``-1/tan(pi q)``
    written so that tiny q keeps its accuracy; +-inf at 0 and 1, NaN outside."""
    q, loc, scale = floats("cauchy.ppf", q, loc, scale)
    return fnp.where((q < 0) | (q > 1), fnp.nan, loc + scale * _tan_centered(q))


def isf(q: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``cauchy.isf(q, loc=0, scale=1)``: ``loc - scale * tan(pi (q - 1/2))``."""
    q, loc, scale = floats("cauchy.isf", q, loc, scale)
    return fnp.where((q < 0) | (q > 1), fnp.nan, loc - scale * _tan_centered(q))


def _tan_centered(q: Any) -> Any:
    """``tan(pi (q - 1/2))`` = ``-cot(pi q)``, from whichever of q and 1 - q is smaller."""
    small = fnp.minimum(q, 1.0 - q)
    value = -1.0 / fnp.tan(math.pi * small)
    value = fnp.where(small == 0, -fnp.inf, fnp.where(small == 0.5, 0.0, value))
    return fnp.where(q > 0.5, -value, value)
