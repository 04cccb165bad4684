"""The von Mises distribution (``jax.scipy.stats.vonmises``)."""
from __future__ import annotations

import math
from typing import Any

from fgrad import numpy as fnp
from fgrad.scipy import special
from fgrad.scipy.stats._util import floats

__all__ = ["logpdf", "pdf"]


def logpdf(x: Any, kappa: Any) -> Any:
    """``vonmises.logpdf(x, kappa)``: ``kappa (cos x - 1) - log(2 pi i0e(kappa))`` (periodic in x,
    no support check, as in JAX); NaN for kappa <= 0."""
    x, kappa = floats("vonmises.logpdf", x, kappa)
    value = kappa * (fnp.cos(x) - 1.0) - math.log(2 * math.pi) - fnp.log(special.i0e(kappa))
    return fnp.where(kappa > 0, value, fnp.nan)


def pdf(x: Any, kappa: Any) -> Any:
    """``vonmises.pdf(x, kappa)``."""
    return fnp.exp(logpdf(x, kappa))
