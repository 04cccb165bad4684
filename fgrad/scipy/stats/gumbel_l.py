"""The left-skewed Gumbel distribution (``jax.scipy.stats.gumbel_l``): ``gumbel_r`` mirrored."""
from __future__ import annotations

from typing import Any

from fgrad import numpy as fnp
from fgrad.scipy.stats import gumbel_r
from fgrad.scipy.stats._util import floats

__all__ = ["logpdf", "pdf", "cdf", "logcdf", "sf", "logsf", "ppf"]


def _mirror(op: str, x: Any, loc: Any, scale: Any) -> tuple:
    x, loc, scale = floats(op, x, loc, scale)
    return -x, -loc, scale


def logpdf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``gumbel_l.logpdf(x, loc=0, scale=1)``: ``z - exp(z) - log(scale)``."""
    return gumbel_r.logpdf(*_mirror("gumbel_l.logpdf", x, loc, scale))


def pdf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``gumbel_l.pdf(x, loc=0, scale=1)``."""
    return gumbel_r.pdf(*_mirror("gumbel_l.pdf", x, loc, scale))


def cdf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``gumbel_l.cdf(x, loc=0, scale=1)``: ``1 - exp(-exp(z))``."""
    return gumbel_r.sf(*_mirror("gumbel_l.cdf", x, loc, scale))


def logcdf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``gumbel_l.logcdf(x, loc=0, scale=1)``."""
    return gumbel_r.logsf(*_mirror("gumbel_l.logcdf", x, loc, scale))


def sf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``gumbel_l.sf(x, loc=0, scale=1)``: ``exp(-exp(z))``."""
    return gumbel_r.cdf(*_mirror("gumbel_l.sf", x, loc, scale))


def logsf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``gumbel_l.logsf(x, loc=0, scale=1)``: ``-exp(z)``."""
    return gumbel_r.logcdf(*_mirror("gumbel_l.logsf", x, loc, scale))


def ppf(p: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``gumbel_l.ppf(p, loc=0, scale=1)``: ``loc + scale log(-log(1 - p))`` (NaN outside (0, 1), as in JAX)."""
    p, loc, scale = floats("gumbel_l.ppf", p, loc, scale)
    inside = (p > 0) & (p < 1) & (scale > 0)
    return fnp.where(inside, loc + scale * fnp.log(-fnp.log1p(-fnp.where(inside, p, 0.5))), fnp.nan)
