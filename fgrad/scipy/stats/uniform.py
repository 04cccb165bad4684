"""The uniform distribution on [loc, loc + scale] (``jax.scipy.stats.uniform``)."""
from __future__ import annotations

from typing import Any

from fgrad import numpy as fnp
from fgrad.scipy.stats._util import floats

__all__ = ["logpdf", "pdf", "cdf", "ppf"]


def logpdf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``uniform.logpdf(x, loc=0, scale=1)``: ``-log(scale)`` on [loc, loc + scale], -inf outside."""
    x, loc, scale = floats("uniform.logpdf", x, loc, scale)
    outside = (x < loc) | (x > loc + scale)
    return fnp.where(outside, -fnp.inf, -fnp.log(scale))


def pdf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``uniform.pdf(x, loc=0, scale=1)``."""
    return fnp.exp(logpdf(x, loc, scale))


def cdf(x: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``uniform.cdf(x, loc=0, scale=1)``: ``(x - loc) / scale`` clipped to [0, 1]."""
    x, loc, scale = floats("uniform.cdf", x, loc, scale)
    # JAX's form: NaN x falls through to 0
    return fnp.where(x >= loc + scale, 1.0, fnp.where(x > loc, (x - loc) / scale, 0.0)).astype(x.dtype)


def ppf(q: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``uniform.ppf(q, loc=0, scale=1)``: ``loc + q * scale`` (NaN outside [0, 1])."""
    q, loc, scale = floats("uniform.ppf", q, loc, scale)
    return fnp.where((q < 0) | (q > 1), fnp.nan, loc + q * scale)
