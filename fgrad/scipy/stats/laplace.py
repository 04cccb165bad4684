"""The Laplace distribution (``jax.scipy.stats.laplace``)."""
from __future__ import annotations

import math
from typing import Any

from fgrad import numpy as fnp
from fgrad.scipy.stats._util import standardize

__all__ = ["logpdf", "pdf", "cdf"]


def logpdf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``laplace.logpdf(x, loc=0, scale=1)``: ``-log(2 scale) - |z|``."""
    z, scale = standardize("laplace.logpdf", x, loc, scale)
    return -math.log(2.0) - fnp.log(scale) - fnp.abs(z)


def pdf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``laplace.pdf(x, loc=0, scale=1)``."""
    return fnp.exp(logpdf(x, loc, scale))


def cdf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``laplace.cdf(x, loc=0, scale=1)``: ``exp(z)/2`` below loc, ``1 - exp(-z)/2`` above."""
    z, _ = standardize("laplace.cdf", x, loc, scale)
    half_tail = 0.5 * fnp.exp(-fnp.abs(z))
    return fnp.where(z <= 0, half_tail, 1.0 - half_tail)
