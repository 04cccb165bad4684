"""The right-skewed Gumbel distribution (``jax.scipy.stats.gumbel_r``)."""
from __future__ import annotations

from typing import Any

from fgrad import numpy as fnp
from fgrad.scipy.stats._util import floats, log1mexp

__all__ = ["logpdf", "pdf", "cdf", "logcdf", "sf", "logsf", "ppf"]


def _standard(op: str, x: Any, loc: Any, scale: Any) -> tuple:
    """``(z, scale, valid)``: NaN results where scale <= 0, as in JAX."""
    x, loc, scale = floats(op, x, loc, scale)
    return (x - loc) / scale, scale, scale > 0


def logpdf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``gumbel_r.logpdf(x, loc=0, scale=1)``: ``-z - exp(-z) - log(scale)``."""
    z, scale, valid = _standard("gumbel_r.logpdf", x, loc, scale)
    return fnp.where(valid, -z - fnp.exp(-z) - fnp.log(scale), fnp.nan)


def pdf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``gumbel_r.pdf(x, loc=0, scale=1)``."""
    return fnp.exp(logpdf(x, loc, scale))


def logcdf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``gumbel_r.logcdf(x, loc=0, scale=1)``: ``-exp(-z)``."""
    z, _, valid = _standard("gumbel_r.logcdf", x, loc, scale)
    return fnp.where(valid, -fnp.exp(-z), fnp.nan)


def cdf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``gumbel_r.cdf(x, loc=0, scale=1)``: ``exp(-exp(-z))``."""
    return fnp.exp(logcdf(x, loc, scale))


def sf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``gumbel_r.sf(x, loc=0, scale=1)``: ``1 - exp(-exp(-z))`` (as ``-expm1``)."""
    return -fnp.expm1(logcdf(x, loc, scale))


def logsf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``gumbel_r.logsf(x, loc=0, scale=1)``."""
    return log1mexp(logcdf(x, loc, scale))


def ppf(p: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``gumbel_r.ppf(p, loc=0, scale=1)``: ``loc - scale log(-log p)`` (NaN outside (0, 1), as in JAX)."""
    p, loc, scale = floats("gumbel_r.ppf", p, loc, scale)
    inside = (p > 0) & (p < 1) & (scale > 0)
    return fnp.where(inside, loc - scale * fnp.log(-fnp.log(fnp.where(inside, p, 0.5))), fnp.nan)
