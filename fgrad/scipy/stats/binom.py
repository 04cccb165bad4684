"""The binomial distribution (``jax.scipy.stats.binom``)."""
from __future__ import annotations

from typing import Any

from fgrad import numpy as fnp
from fgrad.scipy import special
from fgrad.scipy.stats._util import floats

__all__ = ["logpmf", "pmf"]


def logpmf(k: Any, n: Any, p: Any, loc: Any = 0) -> Any:
    """``binom.logpmf(k, n, p, loc=0)``: ``log C(n, k) + k log p + (n - k) log(1 - p)`` for
    k in [0, n], -inf outside."""
    k, n, p, loc = floats("binom.logpmf", k, n, p, loc)
    k = k - loc
    comb = special.gammaln(n + 1.0) - special.gammaln(k + 1.0) - special.gammaln(n - k + 1.0)
    value = comb + special.xlogy(k, p) + special.xlog1py(n - k, -p)
    return fnp.where((k >= 0) & (k <= n), value, -fnp.inf)


def pmf(k: Any, n: Any, p: Any, loc: Any = 0) -> Any:
    """``binom.pmf(k, n, p, loc=0)``."""
    return fnp.exp(logpmf(k, n, p, loc))
