"""The Dirichlet distribution (``jax.scipy.stats.dirichlet``): x's first axis runs over the
categories (K, or (K, ...) for several points), alpha has shape (K,)."""
from __future__ import annotations

from typing import Any

from fgrad import numpy as fnp
from fgrad.scipy import special
from fgrad.numpy._util import promote

__all__ = ["logpdf", "pdf"]


def logpdf(x: Any, alpha: Any) -> Any:
    """``dirichlet.logpdf(x, alpha)``: ``sum((alpha - 1) log x) - sum(gammaln(alpha))
    + gammaln(sum(alpha))``; -inf off the simplex (an x <= 0, or sums more than 1e-6 from 1)."""
    x, alpha = (fnp.asarray(v) for v in promote("dirichlet.logpdf", x, alpha, to_float=True, shape=False))
    if alpha.ndim != 1:
        raise ValueError(f"dirichlet.logpdf: alpha must be one-dimensional, got shape {alpha.shape}")
    if x.shape[0] not in (alpha.shape[0], alpha.shape[0] - 1):
        raise ValueError(f"dirichlet.logpdf: x's first axis ({x.shape[0]}) must match alpha's length "
                         f"({alpha.shape[0]}) or be one shorter")
    if x.shape[0] == alpha.shape[0] - 1:                # SciPy's convention: the last coordinate implied
        x = fnp.concatenate([x, 1.0 - fnp.sum(x, axis=0, keepdims=True)], axis=0)
    alpha = alpha.reshape(alpha.shape + (1,) * (x.ndim - 1))
    normalizer = fnp.sum(special.gammaln(alpha), axis=0) - special.gammaln(fnp.sum(alpha, axis=0))
    value = fnp.sum(special.xlogy(alpha - 1.0, x), axis=0) - normalizer
    on_simplex = fnp.all(x > 0, axis=0) & (fnp.abs(fnp.sum(x, axis=0) - 1.0) < 1e-6)
    return fnp.where(on_simplex, value, -fnp.inf)


def pdf(x: Any, alpha: Any) -> Any:
    """``dirichlet.pdf(x, alpha)``."""
    return fnp.exp(logpdf(x, alpha))
