"""The negative binomial distribution (``jax.scipy.stats.nbinom``)."""
from __future__ import annotations

from typing import Any

from fgrad import numpy as fnp
from fgrad.scipy import special
from fgrad.scipy.stats._util import floats

__all__ = ["logpmf", "pmf"]


def logpmf(k: Any, n: Any, p: Any, loc: Any = 0) -> Any:
    """``nbinom.logpmf(k, n, p, loc=0)``: ``gammaln(n + k) - gammaln(k + 1) - gammaln(n)
    + n log p + k log(1 - p)`` for k >= 0, -inf below."""
    k, n, p, loc = floats("nbinom.logpmf", k, n, p, loc)
    k = k - loc
    comb = special.gammaln(n + k) - special.gammaln(k + 1.0) - special.gammaln(n)
    value = comb + special.xlogy(n, p) + special.xlog1py(k, -p)
    return fnp.where(k < 0, -fnp.inf, value)


def pmf(k: Any, n: Any, p: Any, loc: Any = 0) -> Any:
    """``nbinom.pmf(k, n, p, loc=0)``."""
    return fnp.exp(logpmf(k, n, p, loc))
