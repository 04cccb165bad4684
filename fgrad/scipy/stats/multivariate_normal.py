"""The multivariate normal distribution (``jax.scipy.stats.multivariate_normal``)."""
from __future__ import annotations

import math
from typing import Any

from fgrad import numpy as fnp
from fgrad.numpy._util import promote
from fgrad.scipy import linalg

__all__ = ["logpdf", "pdf"]
_LOG_2PI = math.log(2 * math.pi)


def logpdf(x: Any, mean: Any, cov: Any, allow_singular: None = None) -> Any:
    """``multivariate_normal.logpdf(x, mean, cov, allow_singular=None)``: the log-density of
    N(mean, cov) at x (the last axis of x holds the coordinates; leading axes are points).
    ``cov`` is an (n, n) matrix (or a stack, broadcast with x), or a scalar variance times the
    identity; with a scalar ``mean``, everything is one-dimensional. Through the Cholesky
    factor L of cov: ``-|L^-1 (x - mean)|^2 / 2 - n log(2 pi) / 2 - sum(log diag L)``; NaN where
    cov is not positive definite."""
    if allow_singular is not None:
        raise NotImplementedError("multivariate_normal.logpdf: allow_singular is not supported "
                                  "(as in JAX); leave it None")
    x, mean, cov = (fnp.asarray(v) for v in promote("multivariate_normal.logpdf", x, mean, cov,
                                                    to_float=True, shape=False))
    if mean.ndim == 0:
        return -0.5 * fnp.square(x - mean) / cov - 0.5 * (_LOG_2PI + fnp.log(cov))
    n = mean.shape[-1]
    y = x - mean
    if cov.ndim == 0:
        return -0.5 * fnp.sum(y * y, axis=-1) / cov - 0.5 * n * (_LOG_2PI + fnp.log(cov))
    if cov.ndim == 1 or cov.shape[-2:] != (n, n):
        raise ValueError(f"multivariate_normal.logpdf: cov must be ({n}, {n}) (or a stack of such, or a "
                         f"scalar) for a mean of length {n}, got shape {cov.shape}")
    factor = linalg.cholesky(cov, lower=True)
    log_det_half = fnp.sum(fnp.log(fnp.diagonal(factor, axis1=-2, axis2=-1)), axis=-1)
    if cov.ndim == 2:
        columns = fnp.reshape(y, (-1, n)).T                          # (n, points)
        z = linalg.solve_triangular(factor, columns, lower=True)
        quadratic = fnp.reshape(fnp.sum(z * z, axis=0), y.shape[:-1])
    else:
        batch = fnp.broadcast_shapes(y.shape[:-1], cov.shape[:-2])
        y = fnp.broadcast_to(y, batch + (n,))
        factor = fnp.broadcast_to(factor, batch + (n, n))
        z = linalg.solve_triangular(factor, y[..., None], lower=True)[..., 0]
        quadratic = fnp.sum(z * z, axis=-1)
    return -0.5 * quadratic - 0.5 * n * _LOG_2PI - log_det_half


def pdf(x: Any, mean: Any, cov: Any) -> Any:
    """``multivariate_normal.pdf(x, mean, cov)``."""
    return fnp.exp(logpdf(x, mean, cov))
