"""The normal distribution (``jax.scipy.stats.norm``)."""
from __future__ import annotations

import math
from typing import Any

from fgrad import numpy as fnp
from fgrad.scipy import special
from fgrad.scipy.stats._util import floats, standardize

__all__ = ["logpdf", "pdf", "cdf", "logcdf", "sf", "logsf", "ppf", "isf"]
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def logpdf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``norm.logpdf(x, loc=0, scale=1)``: ``-z^2/2 - log|scale| - log(sqrt(2 pi))`` (JAX's
    formula, through log(scale^2))."""
    z, scale = standardize("norm.logpdf", x, loc, scale)
    return -0.5 * z * z - fnp.log(fnp.abs(scale)) - _LOG_SQRT_2PI


def pdf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``norm.pdf(x, loc=0, scale=1)``."""
    return fnp.exp(logpdf(x, loc, scale))


def cdf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``norm.cdf(x, loc=0, scale=1)``: ``ndtr((x - loc) / scale)``."""
    z, _ = standardize("norm.cdf", x, loc, scale)
    return special.ndtr(z)


def logcdf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``norm.logcdf(x, loc=0, scale=1)``: ``log_ndtr(z)``, accurate far into the left tail."""
    z, _ = standardize("norm.logcdf", x, loc, scale)
    return special.log_ndtr(z)


def sf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``norm.sf(x, loc=0, scale=1)``: ``1 - cdf``, as ``ndtr(-z)`` (accurate in the right tail)."""
    z, _ = standardize("norm.sf", x, loc, scale)
    return special.ndtr(-z)


def logsf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``norm.logsf(x, loc=0, scale=1)``: ``log_ndtr(-z)``."""
    z, _ = standardize("norm.logsf", x, loc, scale)
    return special.log_ndtr(-z)


def ppf(q: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``norm.ppf(q, loc=0, scale=1)``: ``loc + scale * ndtri(q)`` (NaN outside [0, 1])."""
    q, loc, scale = floats("norm.ppf", q, loc, scale)
    return loc + scale * special.ndtri(q)


def isf(q: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``norm.isf(q, loc=0, scale=1)``: the inverse of ``sf``, ``loc - scale * ndtri(q)`` (keeps
    its accuracy for tiny q)."""
    q, loc, scale = floats("norm.isf", q, loc, scale)
    return loc - scale * special.ndtri(q)
