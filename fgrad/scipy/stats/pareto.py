"""The Pareto distribution (``jax.scipy.stats.pareto``)."""
from __future__ import annotations

from typing import Any

from fgrad import numpy as fnp
from fgrad.scipy.stats._util import floats

__all__ = ["logpdf", "pdf", "cdf", "logcdf", "sf", "logsf", "ppf"]


def _standard(op: str, x: Any, b: Any, loc: Any, scale: Any) -> tuple:
    """``(z, scale, b, below)``: below the support (x < loc + scale) z is set to 1."""
    x, b, loc, scale = floats(op, x, b, loc, scale)
    below = x < loc + scale
    return fnp.where(below, 1.0, (x - loc) / scale), scale, b, below


def logpdf(x: Any, b: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``pareto.logpdf(x, b, loc=0, scale=1)``: ``log(b) - log(scale) - (b+1) log z`` for z >= 1,
    -inf below."""
    z, scale, b, below = _standard("pareto.logpdf", x, b, loc, scale)
    return fnp.where(below, -fnp.inf, fnp.log(b) - fnp.log(scale) - (b + 1.0) * fnp.log(z))


def pdf(x: Any, b: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``pareto.pdf(x, b, loc=0, scale=1)``."""
    return fnp.exp(logpdf(x, b, loc, scale))


def logsf(x: Any, b: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``pareto.logsf(x, b, loc=0, scale=1)``: ``-b log z`` for z >= 1, 0 below."""
    z, _, b, below = _standard("pareto.logsf", x, b, loc, scale)
    return fnp.where(below, 0.0, -b * fnp.log(z)).astype(z.dtype)


def sf(x: Any, b: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``pareto.sf(x, b, loc=0, scale=1)``: ``z^-b``, 1 below z = 1."""
    return fnp.exp(logsf(x, b, loc, scale))


def cdf(x: Any, b: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``pareto.cdf(x, b, loc=0, scale=1)``: ``1 - z^-b`` (as ``-expm1(logsf)``)."""
    return -fnp.expm1(logsf(x, b, loc, scale))


def logcdf(x: Any, b: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``pareto.logcdf(x, b, loc=0, scale=1)``."""
    return fnp.log1p(-sf(x, b, loc, scale))


def ppf(q: Any, b: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``pareto.ppf(q, b, loc=0, scale=1)``: ``loc + scale (1 - q)^(-1/b)`` (NaN outside [0, 1])."""
    q, b, loc, scale = floats("pareto.ppf", q, b, loc, scale)
    return fnp.where((q < 0) | (q > 1), fnp.nan, loc + scale * fnp.exp(-fnp.log1p(-q) / b))
