"""The sign of the gamma function and the real gamma function, shared by ``fgrad.scipy.special``
and the hypergeometric functions (``_special_hypergeometric``)."""
from __future__ import annotations

from typing import Any

from fgrad import lax
from fgrad import numpy as fnp
from fgrad.numpy._util import promote_float

__all__ = ["gammasgn", "gamma"]


def gammasgn(x: Any) -> Any:
    """``gammasgn(x)``: the sign of Gamma(x): 1 for x > 0 and +0, -1 at -0, (-1)^ceil(-x) for
    negative non-integers, NaN at the negative integers, -inf and NaN."""
    x = promote_float("gammasgn", x)
    finite = fnp.where(fnp.isfinite(x), x, 0.0)
    odd = fnp.floor(finite) - 2.0 * fnp.floor(finite * 0.5) != 0
    negative = fnp.where(odd, -1.0, 1.0)
    zero = fnp.where(fnp.signbit(x), -1.0, 1.0)
    out = fnp.where(x > 0, 1.0, fnp.where(x == 0, zero, negative))
    bad = fnp.isnan(x) | ((x < 0) & (x == fnp.floor(x)))
    return fnp.where(bad, fnp.nan, out).astype(x.dtype)


def gamma(x: Any) -> Any:
    """``gamma(x)``: ``gammasgn(x) * exp(gammaln(x))`` (+-inf at +-0, NaN at the negative integers)."""
    x = promote_float("gamma", x)
    return gammasgn(x) * fnp.exp(lax.lgamma(x))
