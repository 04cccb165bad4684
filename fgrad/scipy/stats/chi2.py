"""The chi-squared distribution (``jax.scipy.stats.chi2``): gamma with a = df/2, scale 2 scale."""
from __future__ import annotations

from typing import Any

from fgrad import numpy as fnp
from fgrad.scipy.stats import gamma
from fgrad.scipy.stats._util import floats

__all__ = ["logpdf", "pdf", "cdf", "logcdf", "sf", "logsf"]


def _as_gamma(op: str, x: Any, df: Any, loc: Any, scale: Any) -> tuple:
    x, df, loc, scale = floats(op, x, df, loc, scale)
    return x, 0.5 * df, loc, 2.0 * scale


def logpdf(x: Any, df: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``chi2.logpdf(x, df, loc=0, scale=1)``."""
    x, *rest = _as_gamma("chi2.logpdf", x, df, loc, scale)
    return fnp.where(fnp.isnan(x), fnp.nan, gamma.logpdf(x, *rest))      # (JAX: NaN here, -inf in gamma)


def pdf(x: Any, df: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``chi2.pdf(x, df, loc=0, scale=1)``."""
    return fnp.exp(logpdf(x, df, loc, scale))


def cdf(x: Any, df: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``chi2.cdf(x, df, loc=0, scale=1)``: ``gammainc(df/2, z/2)``."""
    return gamma.cdf(*_as_gamma("chi2.cdf", x, df, loc, scale))


def logcdf(x: Any, df: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``chi2.logcdf(x, df, loc=0, scale=1)``."""
    return gamma.logcdf(*_as_gamma("chi2.logcdf", x, df, loc, scale))


def sf(x: Any, df: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``chi2.sf(x, df, loc=0, scale=1)``: ``gammaincc(df/2, z/2)``."""
    return gamma.sf(*_as_gamma("chi2.sf", x, df, loc, scale))


def logsf(x: Any, df: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``chi2.logsf(x, df, loc=0, scale=1)``."""
    return gamma.logsf(*_as_gamma("chi2.logsf", x, df, loc, scale))
