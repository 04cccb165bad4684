"""The inputs at which tests/scipy/test_scipy_stats.py compares fgrad.scipy.stats with JAX's
recorded outputs (tests/scipy/data/stats_jax.npz, written by scripts/record_stats_jax.py with
JAX 0.10.2 in float64): every method over a grid of points in and out of the support, with
valid and invalid parameters. Pure data: no fgrad, no JAX."""
from __future__ import annotations

import itertools

import numpy as np

NAN, INF = float("nan"), float("inf")
X = [-INF, -3.0, -1.0, -0.2, 0.0, 0.3, 0.5, 1.0, 1.7, 4.0, 25.0, INF, NAN]
Q = [-0.1, 0.0, 1e-12, 0.01, 0.3, 0.5, 0.9, 1.0 - 1e-9, 1.0, 1.5, NAN]
LOC = [0.0, -1.5]
SCALE = [1.0, 2.5, -1.0, 0.0]
SHAPE = [0.5, 1.0, 3.7, -1.0, 0.0]           # a, b, df, mu, beta...
PROB = [0.0, 0.3, 1.0, 1.2, -0.1]
K = [-1.0, 0.0, 1.0, 2.0, 2.5, 3.0, 7.0, NAN]
N = [0.0, 3.0, 10.0, -1.0]


def grid(*axes):
    """Columns of the Cartesian product of ``axes`` (one float64 array per axis)."""
    rows = list(itertools.product(*axes))
    return [np.array([r[i] for r in rows], np.float64) for i in range(len(axes))]


LOC_SCALE = ["norm", "uniform", "expon", "laplace", "logistic", "cauchy", "gumbel_r", "gumbel_l"]
METHODS = {
    "norm": ["logpdf", "pdf", "cdf", "logcdf", "sf", "logsf", "ppf", "isf"],
    "uniform": ["logpdf", "pdf", "cdf", "ppf"],
    "expon": ["logpdf", "pdf", "cdf", "logcdf", "sf", "logsf", "ppf"],
    "laplace": ["logpdf", "pdf", "cdf"],
    "logistic": ["logpdf", "pdf", "cdf", "sf", "ppf", "isf"],
    "cauchy": ["logpdf", "pdf", "cdf", "logcdf", "sf", "logsf", "ppf", "isf"],
    "gumbel_r": ["logpdf", "pdf", "cdf", "logcdf", "sf", "logsf", "ppf"],
    "gumbel_l": ["logpdf", "pdf", "cdf", "logcdf", "sf", "logsf", "ppf"],
    "t": ["logpdf", "pdf"],
    "gamma": ["logpdf", "pdf", "cdf", "logcdf", "sf", "logsf"],
    "chi2": ["logpdf", "pdf", "cdf", "logcdf", "sf", "logsf"],
    "pareto": ["logpdf", "pdf", "cdf", "logcdf", "sf", "logsf", "ppf"],
    "beta": ["logpdf", "pdf", "cdf", "logcdf", "sf", "logsf"],
    "gennorm": ["logpdf", "pdf", "cdf"],
    "truncnorm": ["logpdf", "pdf", "cdf", "logcdf", "sf", "logsf"],
    "wrapcauchy": ["logpdf", "pdf"],
    "vonmises": ["logpdf", "pdf"],
    "poisson": ["logpmf", "pmf", "cdf"],
    "bernoulli": ["logpmf", "pmf", "cdf", "ppf"],
    "binom": ["logpmf", "pmf"],
    "geom": ["logpmf", "pmf"],
    "nbinom": ["logpmf", "pmf"],
    "betabinom": ["logpmf", "pmf"],
}
QUANTILE = {"ppf", "isf"}


def arguments(dist: str, method: str) -> list[np.ndarray]:
    """The argument columns for ``dist.method``."""
    first = Q if method in QUANTILE else X
    if dist in LOC_SCALE:
        return grid(first, LOC, SCALE)
    if dist in ("t", "gamma", "chi2", "pareto"):
        return grid(first, SHAPE, LOC, SCALE[:3])
    if dist == "beta":
        return grid([-0.5, 0.0, 0.2, 0.5, 0.9, 1.0, 1.3, NAN], SHAPE, SHAPE, [0.0], [1.0, 2.0])
    if dist == "gennorm":
        return grid(first, [0.5, 1.0, 2.0, 4.0, -1.0])
    if dist == "truncnorm":
        return grid(first, [-INF, -2.0, 0.5, 3.0], [-1.0, 1.0, 6.0, INF], [0.0, 1.0], [1.0, 2.0])
    if dist == "wrapcauchy":
        return grid([-1.0, 0.0, 1.0, 3.0, 6.5, NAN], [0.0, 0.3, 0.9, 1.0, -0.2])
    if dist == "vonmises":
        return grid([-1.0, 0.0, 1.0, 3.0, 7.0, NAN], [0.0, 0.5, 2.0, 50.0, 800.0, -1.0])
    if dist == "poisson":
        return grid(K, [0.0, 0.5, 4.0, 30.0, -1.0], [0.0, 1.0])
    if dist == "bernoulli":
        if method == "ppf":
            return grid(Q, PROB)
        if method == "cdf":
            return grid([-1.0, 0.0, 0.5, 1.0, 2.0, NAN], PROB)
        return grid(K, PROB, [0.0, 1.0])
    if dist == "binom":
        return grid(K, N, PROB, [0.0])
    if dist == "geom":
        return grid(K, PROB, [0.0, 1.0])
    if dist == "nbinom":
        return grid(K, [1.0, 2.5, 0.0], PROB, [0.0])
    if dist == "betabinom":
        return grid(K, N, [0.5, 2.0, -1.0], [1.5, 0.0], [0.0])
    raise KeyError(dist)


def cases():
    """(dist, method, argument columns) for every recorded case."""
    return [(d, m, arguments(d, m)) for d, methods in METHODS.items() for m in methods]


def valid(dist: str, method: str, args: list[np.ndarray]) -> np.ndarray:
    """Where the parameters are valid (positive scales and shapes, probabilities in [0, 1],
    quantiles in [0, 1]): there fgrad must agree with JAX; elsewhere JAX's values are
    accidents of its formulas (a finite norm.logpdf at scale < 0, tan's period in cauchy.ppf),
    which fgrad does not copy."""
    ok = np.ones(args[0].shape, bool)
    if method in QUANTILE or (dist == "bernoulli" and method == "ppf"):
        ok &= (args[0] >= 0) & (args[0] <= 1)
    if dist in LOC_SCALE:
        return ok & (args[2] > 0)
    if dist in ("t", "gamma", "chi2", "pareto"):
        return ok & (args[1] > 0) & (args[3] > 0)
    if dist == "beta":
        return ok & (args[1] > 0) & (args[2] > 0)
    if dist == "gennorm":
        return ok & (args[1] > 0)
    if dist == "truncnorm":
        return ok & (args[1] < args[2])
    if dist == "wrapcauchy":
        return ok & (args[1] > 0) & (args[1] < 1)
    if dist == "vonmises":
        return ok & (args[1] > 0)
    if dist == "poisson":
        return ok & (args[1] >= 0)
    if dist in ("bernoulli", "geom"):
        return ok & (args[1] >= 0) & (args[1] <= 1) & ((args[1] > 0) if dist == "geom" else True)
    if dist == "binom":
        return ok & (args[1] >= 0) & (args[2] >= 0) & (args[2] <= 1)
    if dist == "nbinom":
        return ok & (args[1] > 0) & (args[2] > 0) & (args[2] <= 1)
    if dist == "betabinom":
        # (JAX's value at a non-integer k is an accident of its formula)
        return ok & (args[1] >= 0) & (args[2] > 0) & (args[3] > 0) & (args[0] == np.floor(args[0]))
    raise KeyError(dist)
