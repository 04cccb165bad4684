"""The beta distribution on [loc, loc + scale] (``jax.scipy.stats.beta``)."""
from __future__ import annotations

from typing import Any

from fgrad import numpy as fnp
from fgrad.scipy import special
from fgrad.scipy.stats._util import log_of_probability, standardize

__all__ = ["logpdf", "pdf", "cdf", "logcdf", "sf", "logsf"]


def logpdf(x: Any, a: Any, b: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``beta.logpdf(x, a, b, loc=0, scale=1)``: ``(a-1) log z + (b-1) log(1-z) - betaln(a, b)
    - log(scale)``; -inf outside [0, 1], NaN for a or b <= 0."""
    z, scale, a, b = standardize("beta.logpdf", x, loc, scale, a, b)
    outside = (z < 0) | (z > 1)
    safe = fnp.where(outside, 0.5, z)
    value = special.xlogy(a - 1.0, safe) + special.xlog1py(b - 1.0, -safe) - special.betaln(a, b) - fnp.log(scale)
    return fnp.where((a <= 0) | (b <= 0), fnp.nan, fnp.where(outside, -fnp.inf, value))


def pdf(x: Any, a: Any, b: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``beta.pdf(x, a, b, loc=0, scale=1)``."""
    return fnp.exp(logpdf(x, a, b, loc, scale))


def cdf(x: Any, a: Any, b: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``beta.cdf(x, a, b, loc=0, scale=1)``: ``betainc(a, b, z)`` with z clipped to [0, 1]."""
    z, _, a, b = standardize("beta.cdf", x, loc, scale, a, b)
    inside = special.betainc(a, b, fnp.clip(z, 0.0, 1.0))
    return fnp.where(z <= 0, 0.0, fnp.where(z >= 1, 1.0, inside)).astype(z.dtype)


def logcdf(x: Any, a: Any, b: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``beta.logcdf(x, a, b, loc=0, scale=1)``."""
    return log_of_probability(cdf(x, a, b, loc, scale), sf(x, a, b, loc, scale))


def sf(x: Any, a: Any, b: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``beta.sf(x, a, b, loc=0, scale=1)``: ``betainc(b, a, 1 - z)`` from z = 1/2 on (exact there:
    ``1 - z`` rounds exactly), ``1 - betainc(a, b, z)`` below it (where ``1 - z`` would round the
    left tail away)."""
    z, _, a, b = standardize("beta.sf", x, loc, scale, a, b)
    z = fnp.clip(z, 0.0, 1.0)
    left = z < 0.5
    inside = fnp.where(left, 1.0 - special.betainc(a, b, fnp.where(left, z, 0.25)),
                       special.betainc(b, a, 1.0 - fnp.where(left, 0.75, z)))
    return fnp.where(z <= 0, 1.0, fnp.where(z >= 1, 0.0, inside)).astype(z.dtype)


def logsf(x: Any, a: Any, b: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``beta.logsf(x, a, b, loc=0, scale=1)``."""
    return log_of_probability(sf(x, a, b, loc, scale), cdf(x, a, b, loc, scale))
