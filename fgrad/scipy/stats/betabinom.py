"""The beta-binomial distribution (``jax.scipy.stats.betabinom``)."""
from __future__ import annotations

from typing import Any

from fgrad import numpy as fnp
from fgrad.scipy import special
from fgrad.scipy.stats._util import floats

__all__ = ["logpmf", "pmf"]


def logpmf(k: Any, n: Any, a: Any, b: Any, loc: Any = 0) -> Any:
    """``betabinom.logpmf(k, n, a, b, loc=0)``: ``log C(n, k) + betaln(k + a, n - k + b)
    - betaln(a, b)`` for k in [0, n], -inf outside."""
    k, n, a, b, loc = floats("betabinom.logpmf", k, n, a, b, loc)
    k = k - loc
    inside = (k >= 0) & (k <= n)
    safe = fnp.where(inside, k, 0.0)
    comb = special.gammaln(n + 1.0) - special.gammaln(safe + 1.0) - special.gammaln(n - safe + 1.0)
    value = comb + special.betaln(safe + a, n - safe + b) - special.betaln(a, b)
    return fnp.where((a <= 0) | (b <= 0), fnp.nan, fnp.where(inside, value, -fnp.inf))


def pmf(k: Any, n: Any, a: Any, b: Any, loc: Any = 0) -> Any:
    """``betabinom.pmf(k, n, a, b, loc=0)``."""
    return fnp.exp(logpmf(k, n, a, b, loc))
