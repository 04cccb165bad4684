"""The logistic distribution (``jax.scipy.stats.logistic``)."""
from __future__ import annotations

from typing import Any

from fgrad import numpy as fnp
from fgrad.scipy import special
from fgrad.scipy.stats._util import floats, standardize

__all__ = ["logpdf", "pdf", "cdf", "sf", "ppf", "isf"]


def logpdf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``logistic.logpdf(x, loc=0, scale=1)``: ``-|z| - 2 log1p(exp(-|z|)) - log(scale)``."""
    z, scale = standardize("logistic.logpdf", x, loc, scale)
    a = fnp.abs(z)
    return -a - 2.0 * fnp.log1p(fnp.exp(-a)) - fnp.log(scale)


def pdf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``logistic.pdf(x, loc=0, scale=1)``."""
    return fnp.exp(logpdf(x, loc, scale))


def cdf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``logistic.cdf(x, loc=0, scale=1)``: ``expit(z)``."""
    z, _ = standardize("logistic.cdf", x, loc, scale)
    return special.expit(z)


def sf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``logistic.sf(x, loc=0, scale=1)``: ``expit(-z)``."""
    z, _ = standardize("logistic.sf", x, loc, scale)
    return special.expit(-z)


def ppf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``logistic.ppf(x, loc=0, scale=1)``: ``loc + scale * logit(x)`` (NaN outside [0, 1])."""
    q, loc, scale = floats("logistic.ppf", x, loc, scale)
    return fnp.where((q < 0) | (q > 1), fnp.nan, loc + scale * special.logit(q))


def isf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``logistic.isf(x, loc=0, scale=1)``: ``loc - scale * logit(x)`` (NaN outside [0, 1])."""
    q, loc, scale = floats("logistic.isf", x, loc, scale)
    return fnp.where((q < 0) | (q > 1), fnp.nan, loc - scale * special.logit(q))
