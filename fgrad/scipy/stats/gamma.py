"""The gamma distribution (``jax.scipy.stats.gamma``)."""
from __future__ import annotations

from typing import Any

from fgrad import numpy as fnp
from fgrad.scipy import special
from fgrad.scipy.stats._util import floats, log_of_probability, standardize

__all__ = ["logpdf", "pdf", "cdf", "logcdf", "sf", "logsf"]


def logpdf(x: Any, a: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``gamma.logpdf(x, a, loc=0, scale=1)``: ``(a-1) log z - z - gammaln(a) - log(scale)``;
    -inf below loc (the support is decided on x, as in JAX)."""
    x, a, loc, scale = floats("gamma.logpdf", x, a, loc, scale)
    below = ~(x >= loc)      # NaN x included, as in JAX
    z = fnp.where(below, 1.0, (x - loc) / scale)
    value = special.xlogy(a - 1.0, z) - z - special.gammaln(a) - fnp.log(scale)
    return fnp.where(below, -fnp.inf, value)


def pdf(x: Any, a: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``gamma.pdf(x, a, loc=0, scale=1)``."""
    return fnp.exp(logpdf(x, a, loc, scale))


def cdf(x: Any, a: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``gamma.cdf(x, a, loc=0, scale=1)``: ``gammainc(a, max(z, 0))``."""
    z, _, a = standardize("gamma.cdf", x, loc, scale, a)
    return special.gammainc(a, fnp.maximum(z, 0.0))


def logcdf(x: Any, a: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``gamma.logcdf(x, a, loc=0, scale=1)``."""
    return log_of_probability(cdf(x, a, loc, scale), sf(x, a, loc, scale))


def sf(x: Any, a: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``gamma.sf(x, a, loc=0, scale=1)``: ``gammaincc(a, max(z, 0))``, accurate in the right tail."""
    z, _, a = standardize("gamma.sf", x, loc, scale, a)
    return special.gammaincc(a, fnp.maximum(z, 0.0))


def logsf(x: Any, a: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``gamma.logsf(x, a, loc=0, scale=1)``."""
    return log_of_probability(sf(x, a, loc, scale), cdf(x, a, loc, scale))
