"""The generalized normal distribution (``jax.scipy.stats.gennorm``)."""
from __future__ import annotations

import math
from typing import Any

from fgrad import numpy as fnp
from fgrad.scipy import special
from fgrad.scipy.stats._util import floats

__all__ = ["logpdf", "pdf", "cdf"]


def logpdf(x: Any, beta: Any) -> Any:
    """``gennorm.logpdf(x, beta)``: ``log(beta) - log(2) - gammaln(1/beta) - |x|^beta``."""
    x, beta = floats("gennorm.logpdf", x, beta)
    return fnp.log(beta) - math.log(2.0) - special.gammaln(1.0 / beta) - fnp.abs(x) ** beta


def pdf(x: Any, beta: Any) -> Any:
    """``gennorm.pdf(x, beta)``."""
    return fnp.exp(logpdf(x, beta))


def cdf(x: Any, beta: Any) -> Any:
    """``gennorm.cdf(x, beta)``: ``1/2 + sign(x) gammainc(1/beta, |x|^beta) / 2``, the lower
    tail through ``gammaincc`` (no cancellation)."""
    x, beta = floats("gennorm.cdf", x, beta)
    tail = 0.5 * special.gammaincc(1.0 / beta, fnp.abs(x) ** beta)
    return fnp.where(x < 0, tail, 1.0 - tail)
