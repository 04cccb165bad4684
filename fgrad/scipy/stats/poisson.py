"""The Poisson distribution (``jax.scipy.stats.poisson``)."""
from __future__ import annotations

from typing import Any

from fgrad import numpy as fnp
from fgrad.scipy import special
from fgrad.scipy.stats._util import floats, is_integer

__all__ = ["logpmf", "pmf", "cdf"]


def logpmf(k: Any, mu: Any, loc: Any = 0) -> Any:
    """``poisson.logpmf(k, mu, loc=0)``: ``k log(mu) - mu - gammaln(k + 1)`` at whole k >= 0,
    -inf elsewhere."""
    k, mu, loc = floats("poisson.logpmf", k, mu, loc)
    k = k - loc
    outside = (k < 0) | ~is_integer(k)
    safe = fnp.where(outside, 0.0, k)
    value = special.xlogy(safe, mu) - mu - special.gammaln(safe + 1.0)
    return fnp.where(outside, -fnp.inf, value)


def pmf(k: Any, mu: Any, loc: Any = 0) -> Any:
    """``poisson.pmf(k, mu, loc=0)``."""
    return fnp.exp(logpmf(k, mu, loc))


def cdf(k: Any, mu: Any, loc: Any = 0) -> Any:
    """``poisson.cdf(k, mu, loc=0)``: ``gammaincc(floor(k) + 1, mu)``, 0 below 0."""
    k, mu, loc = floats("poisson.cdf", k, mu, loc)
    k = fnp.floor(k - loc)
    return fnp.where(k < 0, 0.0, special.gammaincc(fnp.maximum(k, 0.0) + 1.0, mu)).astype(k.dtype)
