"""Samplers that need a matrix factorisation: ``multivariate_normal`` and ``orthogonal``, as JAX
writes them (LAPACK's factorisations, so the factors match JAX's to rounding)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from fgrad import numpy as fnp
from fgrad.random._keys import canonical_shape, key_base
from fgrad.random._samplers import float_dtype, normal_base

_METHODS = ("cholesky", "eigh", "svd")


def _factor(cov: Any, method: str) -> Any:
    if method == "svd":
        u, s, _ = fnp.linalg.svd(cov)
        return u * fnp.sqrt(s[..., None, :])
    if method == "eigh":
        w, v = fnp.linalg.eigh(cov)
        return v * fnp.sqrt(w[..., None, :])
    return fnp.linalg.cholesky(cov)


def multivariate_normal(key: Any, mean: Any, cov: Any, shape: Sequence[int] | None = None, dtype: Any = None,
                        method: str = "cholesky") -> Any:
    """``jax.random.multivariate_normal(key, mean, cov, shape=None, dtype=float, method='cholesky')``:
    ``mean + factor @ z`` with ``z`` standard normal and ``factor`` the Cholesky factor of ``cov``
    (``'eigh'``/``'svd'``: eigenvectors scaled by the square roots of the eigenvalues, which
    also serves a singular ``cov``). ``shape`` is the batch shape; the result has shape
    ``shape + mean.shape[-1:]``. Against JAX: within 1e-5 relative (float32) for well-conditioned
    ``cov``: the normals agree to 2 ulp, the factorisations and the product round differently."""
    if method not in _METHODS:
        raise ValueError(f"fgrad.random.multivariate_normal: method must be one of {_METHODS}, got {method!r}")
    base, _ = key_base(key, "multivariate_normal")
    dtype = float_dtype(dtype, "multivariate_normal")
    mean, cov = fnp.asarray(mean).astype(dtype), fnp.asarray(cov).astype(dtype)
    if fnp.ndim(mean) < 1:
        raise ValueError(f"multivariate_normal requires mean.ndim >= 1, got mean.ndim == {fnp.ndim(mean)}")
    if fnp.ndim(cov) < 2:
        raise ValueError(f"multivariate_normal requires cov.ndim >= 2, got cov.ndim == {fnp.ndim(cov)}")
    n = fnp.shape(mean)[-1]
    if tuple(fnp.shape(cov)[-2:]) != (n, n):
        raise ValueError(f"multivariate_normal requires cov.shape == (..., n, n) for n={n}, "
                         f"but got cov.shape == {tuple(fnp.shape(cov))}")
    batch = tuple(np.broadcast_shapes(tuple(fnp.shape(mean)[:-1]), tuple(fnp.shape(cov)[:-2])))
    if shape is None:
        shape = batch
    else:
        shape = canonical_shape(shape, "multivariate_normal")
        if tuple(np.broadcast_shapes(shape, batch)) != shape:
            raise ValueError(f"multivariate_normal: shape {shape} must be broadcast-compatible with the batch "
                             f"shape {batch} of mean and cov, and equal their broadcast")
    z = normal_base(base, (*shape, n), dtype)
    return mean + fnp.einsum("...ij,...j->...i", _factor(cov, method), z)


def orthogonal(key: Any, n: int, shape: Sequence[int] = (), dtype: Any = None, m: int | None = None) -> Any:
    """``jax.random.orthogonal(key, n, shape=(), dtype=float, m=None)``: a Haar-random orthogonal
    ``n x n`` matrix (semi-orthogonal ``n x m`` when ``m`` is given), from the QR factorisation of
    a normal matrix with R's diagonal signs folded into Q (Mezzadri 2007); shape ``(*shape, n, m)``.
    Against JAX: within 1e-5 (float32)."""
    base, _ = key_base(key, "orthogonal")
    dtype = float_dtype(dtype, "orthogonal")
    shape = canonical_shape(shape, "orthogonal")
    n = int(n)
    m = n if m is None else int(m)
    z = normal_base(base, (*shape, max(n, m), min(n, m)), dtype)
    q, r = fnp.linalg.qr(z)
    d = fnp.diagonal(r, axis1=-2, axis2=-1)
    x = q * fnp.expand_dims(fnp.sign(d), -2)
    return fnp.swapaxes(x, -1, -2) if n < m else x
