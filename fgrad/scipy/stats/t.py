"""Student's t distribution (``jax.scipy.stats.t``)."""
from __future__ import annotations

import math
from typing import Any

from fgrad import numpy as fnp
from fgrad.scipy import special
from fgrad.scipy.stats._util import standardize

__all__ = ["logpdf", "pdf"]


def logpdf(x: Any, df: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``t.logpdf(x, df, loc=0, scale=1)``: ``lgamma((df+1)/2) - lgamma(df/2) - log(pi df)/2
    - log(scale) - (df+1)/2 log1p(z^2/df)``."""
    z, scale, df = standardize("t.logpdf", x, loc, scale, df)
    half = 0.5 * (df + 1.0)
    norm = special.gammaln(half) - special.gammaln(0.5 * df) - 0.5 * fnp.log(math.pi * df) - fnp.log(scale)
    return norm - half * fnp.log1p(z * z / df)


def pdf(x: Any, df: Any, loc: Any = 0, scale: Any = 1) -> Any:
    """``t.pdf(x, df, loc=0, scale=1)``."""
    return fnp.exp(logpdf(x, df, loc, scale))
