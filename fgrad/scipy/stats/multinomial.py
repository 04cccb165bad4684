"""The multinomial distribution (``jax.scipy.stats.multinomial``): counts along the last axis."""
from __future__ import annotations

from typing import Any

from fgrad import numpy as fnp
from fgrad.scipy import special
from fgrad.scipy.stats._util import floats

__all__ = ["logpmf", "pmf"]


def logpmf(x: Any, n: Any, p: Any) -> Any:
    """``multinomial.logpmf(x, n, p)``: ``gammaln(n + 1) + sum(x log p - gammaln(x + 1))`` over
    the last axis; -inf where the counts do not sum to n."""
    x, p = floats("multinomial.logpmf", x, p)
    n = fnp.asarray(n).astype(x.dtype)
    value = special.gammaln(n + 1.0) + fnp.sum(special.xlogy(x, p) - special.gammaln(x + 1.0), axis=-1)
    return fnp.where(fnp.sum(x, axis=-1) != n, -fnp.inf, value)


def pmf(x: Any, n: Any, p: Any) -> Any:
    """``multinomial.pmf(x, n, p)``."""
    return fnp.exp(logpmf(x, n, p))
