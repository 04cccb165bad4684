"""The Poisson distribution (``jax.scipy.stats.poisson``)."""
from __future__ import annotations

import math
from typing import Any

from fgrad import numpy as fnp
from fgrad.scipy import special
from fgrad.scipy.stats._util import floats, is_integer

__all__ = ["logpmf", "pmf", "cdf", "entropy"]


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


_WINDOW = 420          # 12 standard deviations (and 40 more) at the largest mu summed directly
_SUMMED_UP_TO = 1000.0


def entropy(mu: Any, loc: Any = 0) -> Any:
    """``poisson.entropy(mu, loc=0)``: ``-sum_k pmf(k) log pmf(k)``, summed over the 2 * 420 + 1
    values of k around mu (the rest is below float64's resolution) for mu <= 1000, and by the
    asymptotic series ``log(2 pi e mu)/2 - 1/(12 mu) - 1/(24 mu^2) - 19/(360 mu^3)`` above.
    0 at mu == 0, NaN for mu < 0, inf at inf."""
    mu, _ = floats("poisson.entropy", mu, loc)
    summed = fnp.minimum(fnp.where(mu > 0, mu, 1.0), _SUMMED_UP_TO)
    start = fnp.maximum(fnp.floor(summed) - _WINDOW, 0.0)
    k = start[..., None] + fnp.arange(2 * _WINDOW + 1, dtype=mu.dtype)
    log_pmf = special.xlogy(k, summed[..., None]) - summed[..., None] - special.gammaln(k + 1.0)
    direct = -fnp.sum(fnp.exp(log_pmf) * log_pmf, axis=-1)
    big = fnp.where(mu > _SUMMED_UP_TO, mu, _SUMMED_UP_TO)
    inv = 1.0 / big
    asymptotic = 0.5 * fnp.log(2 * math.pi * math.e * big) - inv * (1 / 12 + inv * (1 / 24 + inv * 19 / 360))
    out = fnp.where(mu > _SUMMED_UP_TO, asymptotic, direct)
    out = fnp.where(mu == 0, 0.0, out)
    out = fnp.where(mu == fnp.inf, fnp.inf, out)
    return fnp.where((mu < 0) | fnp.isnan(mu), fnp.nan, out).astype(mu.dtype)
