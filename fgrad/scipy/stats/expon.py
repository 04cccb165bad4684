"""The exponential distribution (``jax.scipy.stats.expon``)."""
from __future__ import annotations

from typing import Any

from fgrad import numpy as fnp
from fgrad.scipy.stats._util import floats

__all__ = ["logpdf", "pdf", "cdf", "logcdf", "sf", "logsf", "ppf"]


def _below(op: str, x: Any, loc: Any, scale: Any) -> tuple:
    """``(z, scale, x < loc)``: the support is decided on x, as in JAX."""
    x, loc, scale = floats(op, x, loc, scale)
    return (x - loc) / scale, scale, x < loc


def logpdf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``expon.logpdf(x, loc=0, scale=1)``: ``-z - log(scale)`` for x >= loc, -inf below."""
    z, scale, below = _below("expon.logpdf", x, loc, scale)
    return fnp.where(below, -fnp.inf, -z - fnp.log(scale))


def pdf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``expon.pdf(x, loc=0, scale=1)``."""
    return fnp.exp(logpdf(x, loc, scale))


def cdf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``expon.cdf(x, loc=0, scale=1)``: ``1 - exp(-z)`` (as ``-expm1(-z)``), 0 below loc."""
    z, _, below = _below("expon.cdf", x, loc, scale)
    return fnp.where(below, 0.0, -fnp.expm1(-z)).astype(z.dtype)


def logcdf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``expon.logcdf(x, loc=0, scale=1)``: ``log1p(-exp(-z))``, -inf below loc."""
    z, _, below = _below("expon.logcdf", x, loc, scale)
    safe = fnp.where(below, 1.0, z)
    # log(1 - e^-z): log(-expm1(-z)) for small z, log1p(-e^-z) for large
    value = fnp.where(safe < 0.6931471805599453, fnp.log(-fnp.expm1(-safe)), fnp.log1p(-fnp.exp(-safe)))
    return fnp.where(below, -fnp.inf, value)


def sf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``expon.sf(x, loc=0, scale=1)``: ``exp(-z)``, 1 below loc."""
    return fnp.exp(logsf(x, loc, scale))


def logsf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``expon.logsf(x, loc=0, scale=1)``: ``-z``, 0 below loc."""
    z, _, below = _below("expon.logsf", x, loc, scale)
    return fnp.where(below, 0.0, -z).astype(z.dtype)


def ppf(q: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``expon.ppf(q, loc=0, scale=1)``: ``loc - scale * log1p(-q)`` (NaN outside [0, 1])."""
    q, loc, scale = floats("expon.ppf", q, loc, scale)
    return fnp.where((q < 0) | (q > 1), fnp.nan, loc - scale * fnp.log1p(-q))
