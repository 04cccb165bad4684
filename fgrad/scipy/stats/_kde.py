"""``jax.scipy.stats.gaussian_kde``: a Gaussian kernel density estimate, a pytree."""
from __future__ import annotations

import math
from typing import Any, Callable

from fgrad import numpy as fnp
from fgrad import random
from fgrad import tree
from fgrad.numpy._util import promote_float
from fgrad.scipy import linalg, special

__all__ = ["gaussian_kde"]


class gaussian_kde:  # noqa: N801 - JAX's (and SciPy's) name
    """``gaussian_kde(dataset, bw_method=None, weights=None)``: the density
    ``sum_i w_i N(x; dataset[:, i], covariance)`` of d-dimensional points ``dataset`` (shape
    (d, n), or (n,) for d = 1), with ``covariance`` the data's (weighted) covariance times
    ``factor^2``: Scott's rule ``neff^(-1/(d+4))`` (``bw_method=None`` or 'scott'), Silverman's
    ``(neff (d+2)/4)^(-1/(d+4))``, a number, or ``bw_method(kde)``. A pytree: it passes through
    ``jit`` and ``vmap``."""

    def __init__(self, dataset: Any, bw_method: None | str | Any | Callable[[Any], Any] = None,
                 weights: Any = None) -> None:
        dataset = fnp.atleast_2d(promote_float("gaussian_kde", dataset))
        d, n = dataset.shape
        if n < 2:
            raise ValueError(f"gaussian_kde: dataset needs more than one point, got shape {dataset.shape}")
        if weights is None:
            weights = fnp.full((n,), 1.0 / n, dtype=dataset.dtype)
        else:
            weights = fnp.asarray(weights).astype(dataset.dtype)
            if weights.shape != (n,):
                raise ValueError(f"gaussian_kde: weights must have shape ({n},), got {weights.shape}")
            weights = weights / fnp.sum(weights)
        self.dataset, self.weights = dataset, weights
        self.neff = 1.0 / fnp.sum(weights * weights)
        factor = _bandwidth(self, bw_method)
        mean = fnp.sum(dataset * weights, axis=1, keepdims=True)
        centred = dataset - mean
        data_covariance = (centred * weights) @ centred.T / (1.0 - fnp.sum(weights * weights))
        self.covariance = data_covariance * factor * factor
        self.inv_cov = linalg.inv(self.covariance)

    @property
    def d(self) -> int:
        return self.dataset.shape[0]

    @property
    def n(self) -> int:
        return self.dataset.shape[1]

    def _points(self, points: Any) -> Any:
        points = fnp.atleast_2d(fnp.asarray(points).astype(self.dataset.dtype))
        if points.shape[0] != self.d:
            if points.shape[0] == 1 and points.shape[1] == self.d:
                return fnp.reshape(points, (self.d, 1))
            raise ValueError(f"gaussian_kde: points have dimension {points.shape[0]}, the dataset {self.d}")
        return points

    def logpdf(self, x: Any) -> Any:
        """``logpdf(x)``: the log-density at points x (shape (d, m)), through logsumexp."""
        return _log_mixture(self.dataset, self.weights, self._points(x), self.covariance)

    def evaluate(self, points: Any) -> Any:
        """``evaluate(points)``: the density at points (shape (d, m))."""
        return fnp.exp(self.logpdf(points))

    __call__ = evaluate
    pdf = evaluate

    def integrate_gaussian(self, mean: Any, cov: Any) -> Any:
        """``integrate_gaussian(mean, cov)``: the integral of the density times N(mean, cov)."""
        mean = fnp.reshape(fnp.asarray(mean).astype(self.dataset.dtype), (self.d, 1))
        cov = fnp.reshape(fnp.asarray(cov).astype(self.dataset.dtype), (self.d, self.d))
        return fnp.exp(_log_mixture(self.dataset, self.weights, mean, self.covariance + cov)[0])

    def integrate_box_1d(self, low: Any, high: Any) -> Any:
        """``integrate_box_1d(low, high)``: the probability of [low, high] (one-dimensional data)."""
        if self.d != 1:
            raise ValueError("gaussian_kde.integrate_box_1d: the data must be one-dimensional")
        sigma = fnp.sqrt(self.covariance[0, 0])
        upper = special.ndtr((high - self.dataset[0]) / sigma)
        lower = special.ndtr((low - self.dataset[0]) / sigma)
        return fnp.sum(self.weights * (upper - lower))

    def integrate_kde(self, other: "gaussian_kde") -> Any:
        """``integrate_kde(other)``: the integral of the product of the two densities."""
        if other.d != self.d:
            raise ValueError(f"gaussian_kde.integrate_kde: dimensions differ ({self.d} and {other.d})")
        log_terms = _log_mixture(self.dataset, self.weights, other.dataset, self.covariance + other.covariance)
        return fnp.sum(other.weights * fnp.exp(log_terms))

    def integrate_box(self, low_bounds: Any, high_bounds: Any, maxpts: Any = None) -> Any:
        """Not supported (as in JAX): use ``integrate_box_1d``."""
        raise NotImplementedError("only 1D box integrations are supported; use `integrate_box_1d`")

    def resample(self, key: Any, shape: tuple = ()) -> Any:
        """``resample(key, shape=())``: samples of shape (d, *shape): data points drawn by weight,
        plus N(0, covariance) noise."""
        pick, noise = random.split(key)
        index = random.choice(pick, self.n, shape=tuple(shape), p=self.weights)
        factor = linalg.cholesky(self.covariance, lower=True)
        z = random.normal(noise, (self.d,) + tuple(shape), dtype=self.dataset.dtype)
        spread = fnp.reshape(factor @ fnp.reshape(z, (self.d, -1)), z.shape)
        return self.dataset[:, index] + spread

    def set_bandwidth(self, bw_method: Any = None) -> None:
        """Not supported (as in JAX): build a new ``gaussian_kde`` with the bandwidth."""
        raise NotImplementedError("dynamically changing the bandwidth method is not supported")


def _bandwidth(kde: gaussian_kde, bw_method: Any) -> Any:
    d = kde.dataset.shape[0]
    if bw_method is None or bw_method == "scott":
        return kde.neff ** (-1.0 / (d + 4))
    if bw_method == "silverman":
        return (kde.neff * (d + 2) / 4.0) ** (-1.0 / (d + 4))
    if isinstance(bw_method, str):
        raise ValueError(f"gaussian_kde: bw_method must be 'scott', 'silverman', a number or a callable, "
                         f"got {bw_method!r}")
    if callable(bw_method):
        return bw_method(kde)
    return fnp.asarray(bw_method).astype(kde.dataset.dtype)


def _log_mixture(centres: Any, weights: Any, points: Any, covariance: Any) -> Any:
    """``log sum_i w_i N(points; centres[:, i], covariance)`` for each point (column)."""
    d = centres.shape[0]
    factor = linalg.cholesky(covariance, lower=True)
    white_centres = linalg.solve_triangular(factor, centres, lower=True)        # (d, n)
    white_points = linalg.solve_triangular(factor, points, lower=True)          # (d, m)
    squares = fnp.sum((white_centres[:, :, None] - white_points[:, None, :]) ** 2, axis=0)
    log_norm = -0.5 * d * math.log(2 * math.pi) - fnp.sum(fnp.log(fnp.diagonal(factor)))
    return special.logsumexp(fnp.log(weights)[:, None] - 0.5 * squares, axis=0) + log_norm


def _flatten(kde: gaussian_kde):
    return (kde.neff, kde.dataset, kde.weights, kde.covariance, kde.inv_cov), None


def _unflatten(_, children) -> gaussian_kde:
    kde = object.__new__(gaussian_kde)
    kde.neff, kde.dataset, kde.weights, kde.covariance, kde.inv_cov = children
    return kde


tree.register_pytree_node(gaussian_kde, _flatten, _unflatten)
