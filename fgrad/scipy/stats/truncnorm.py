"""The normal distribution truncated to [a, b] in standard units (``jax.scipy.stats.truncnorm``);
NaN where a >= b."""
from __future__ import annotations

from typing import Any

from fgrad import numpy as fnp
from fgrad.scipy import special
from fgrad.scipy.stats import norm
from fgrad.scipy.stats._util import standardize

__all__ = ["logpdf", "pdf", "cdf", "logcdf", "sf", "logsf"]


def _log_mass(a: Any, b: Any) -> Any:
    """``log(Phi(b) - Phi(a))`` for a < b, from the tail where the masses are small (no
    cancellation): on the right of 0 as ``log(Phi(-a) - Phi(-b))``."""
    right = a > 0
    lo, hi = fnp.where(right, -b, a), fnp.where(right, -a, b)
    log_hi, log_lo = special.log_ndtr(hi), special.log_ndtr(lo)
    return log_hi + fnp.log1p(-fnp.exp(log_lo - log_hi))


def logpdf(x: Any, a: Any, b: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``truncnorm.logpdf(x, a, b, loc=0, scale=1)``: ``norm.logpdf(z) - log(Phi(b) - Phi(a))
    - log(scale)`` on [a, b], -inf outside."""
    z, scale, a, b = standardize("truncnorm.logpdf", x, loc, scale, a, b)
    value = norm.logpdf(z) - _log_mass(a, b) - fnp.log(scale)
    return fnp.where(a >= b, fnp.nan, fnp.where((z < a) | (z > b), -fnp.inf, value))


def pdf(x: Any, a: Any, b: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``truncnorm.pdf(x, a, b, loc=0, scale=1)``."""
    return fnp.exp(logpdf(x, a, b, loc, scale))


def logcdf(x: Any, a: Any, b: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``truncnorm.logcdf(x, a, b, loc=0, scale=1)``: ``log(Phi(z) - Phi(a)) - log(Phi(b) - Phi(a))``;
    -inf below a, 0 above b."""
    z, _, a, b = standardize("truncnorm.logcdf", x, loc, scale, a, b)
    inside = fnp.clip(z, a, b)
    value = _log_mass(a, fnp.where(inside > a, inside, b)) - _log_mass(a, b)
    upper = _log_mass(fnp.where(inside < b, inside, a), b) - _log_mass(a, b)     # log sf
    value = fnp.where(upper < -0.6931471805599453, fnp.log1p(-fnp.exp(upper)), value)
    return fnp.where(a >= b, fnp.nan, fnp.where(z <= a, -fnp.inf, fnp.where(z >= b, 0.0, value)))


def cdf(x: Any, a: Any, b: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``truncnorm.cdf(x, a, b, loc=0, scale=1)``."""
    return fnp.exp(logcdf(x, a, b, loc, scale))


def logsf(x: Any, a: Any, b: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``truncnorm.logsf(x, a, b, loc=0, scale=1)``: ``log(Phi(b) - Phi(z)) - log(Phi(b) - Phi(a))``;
    0 below a, -inf above b."""
    z, _, a, b = standardize("truncnorm.logsf", x, loc, scale, a, b)
    inside = fnp.clip(z, a, b)
    value = _log_mass(fnp.where(inside < b, inside, a), b) - _log_mass(a, b)
    return fnp.where(a >= b, fnp.nan, fnp.where(z <= a, 0.0, fnp.where(z >= b, -fnp.inf, value)))


def sf(x: Any, a: Any, b: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``truncnorm.sf(x, a, b, loc=0, scale=1)``."""
    return fnp.exp(logsf(x, a, b, loc, scale))
