"""``jax.scipy.linalg.eigh_tridiagonal``: the eigenvalues of a symmetric (Hermitian) tridiagonal
matrix by bisection on Sturm sequence counts, JAX's algorithm (LAPACK's ``stebz``), composed of
fgrad functions (a ``while_loop`` of bisection steps, each a ``scan`` down the diagonal), so it
runs under ``jit`` and ``vmap``.

Eigenvectors: JAX finds them by inverse iteration from random starting vectors (``key``);
fgrad takes them from the dense matrix's ``eigh`` (same eigenvalues, each vector unique up to
its sign or phase, which JAX leaves to the random start), and ignores ``key``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from fgrad import lax
from fgrad import numpy as fnp
from fgrad.core import dtypes
from fgrad.ops import linalg as lin

__all__ = ["eigh_tridiagonal"]

_FUDGE = 2.1          # slack on the Gershgorin bounds, in units of eps * norm (LAPACK's stebz)


def _sturm_counts(alpha: Any, beta_sq: Any, pivmin: Any, first_shift: Any, x: Any) -> Any:
    """How many eigenvalues lie below each point of ``x`` (the negative pivots of ``T - x I``)."""
    q = alpha[0] - x
    count = (q < 0).astype(np.int32)
    q = fnp.where(alpha[0] == x, first_shift, q)

    def step(carry, ab):
        q, count = carry
        a, b2 = ab
        q = a - b2 / q - x
        small = q <= pivmin
        return (fnp.where(small, fnp.minimum(q, -pivmin), q), count + small.astype(np.int32)), None
    return lax.scan(step, (q, count), (alpha[1:], beta_sq))[0][1]


def _target_counts(n: int, select: str, select_range: Any) -> np.ndarray:
    if select == "a":
        return np.arange(n, dtype=np.int32)
    if select == "i":
        if select_range is None:
            raise ValueError("for select='i', select_range must be specified.")
        if select_range[0] > select_range[1]:
            raise ValueError("Got empty index range in select_range.")
        return np.arange(select_range[0], select_range[1] + 1, dtype=np.int32)
    if select == "v":
        raise NotImplementedError("eigh_tridiagonal(..., select='v') is not implemented (nor in JAX); select "
                                  "eigenvalues by index with select='i'")
    raise ValueError("'select must have a value in {'a', 'i', 'v'}.")


def _check(alpha: Any, beta: Any) -> None:
    if alpha.dtype != beta.dtype:
        raise TypeError(f"diagonal and off-diagonal values must have same dtype, got {alpha.dtype} and {beta.dtype}")
    if alpha.dtype not in (dtypes.float32, dtypes.float64, dtypes.complex64, dtypes.complex128):
        raise TypeError("Only float32 and float64 inputs are supported as inputs to "
                        f"jax.scipy.linalg.eigh_tridiagonal, got {alpha.dtype} and {beta.dtype}")
    n = alpha.shape[0] if alpha.ndim == 1 else None
    if n is None or (n > 1 and beta.shape != (n - 1,)):
        raise TypeError(f"eigh_tridiagonal: needs d of shape [n] and e of shape [n - 1], got {alpha.shape} and "
                        f"{beta.shape}; map it over a batch with fgrad.vmap")


def _bisect(alpha: Any, beta_abs: Any, beta_sq: Any, targets: np.ndarray, tol: Any) -> Any:
    n = alpha.shape[0]
    finfo = np.finfo(alpha.dtype)
    row_sums = fnp.concatenate([beta_abs[:1], beta_abs[:-1] + beta_abs[1:], beta_abs[-1:]])
    top, bottom = fnp.max(alpha + row_sums), fnp.min(alpha - row_sums)
    t_norm = fnp.maximum(fnp.abs(bottom), fnp.abs(top))
    safemin = np.maximum(1 / finfo.max, (1 + finfo.eps) * finfo.tiny).astype(alpha.dtype)
    pivmin = safemin * fnp.maximum(1, fnp.max(beta_sq))
    first_shift = fnp.square(finfo.eps * beta_abs[0])
    abs_tol = finfo.eps * t_norm if tol is None else fnp.maximum(tol, finfo.eps * t_norm)
    slack = n * _FUDGE * finfo.eps * t_norm
    shape = targets.shape
    lower = fnp.broadcast_to(bottom - slack - 2 * _FUDGE * pivmin, shape)
    upper = fnp.broadcast_to(top + slack + _FUDGE * pivmin, shape)

    def unfinished(state):
        i, lower, _, upper = state
        return (i < finfo.nmant + 1) & (abs_tol < fnp.max(upper - lower))

    def halve(state):
        i, lower, mid, upper = state
        below = _sturm_counts(alpha, beta_sq, pivmin, first_shift, mid)
        lower = fnp.where(below <= targets, mid, lower)
        upper = fnp.where(below > targets, mid, upper)
        return i + 1, lower, 0.5 * (lower + upper), upper
    return lax.while_loop(unfinished, halve, (0, lower, 0.5 * (lower + upper), upper))[2]


def _eigenvectors(alpha: Any, beta: Any, targets: np.ndarray) -> Any:
    """The eigenvectors (columns) of the dense tridiagonal matrix for the eigenvalue indices ``targets``."""
    n = alpha.shape[0]
    dtype = fnp.result_type(alpha, beta)
    dense = (fnp.diag(alpha.astype(dtype)) + fnp.diag(beta, 1) + fnp.diag(fnp.conj(beta), -1))
    vectors, _ = lin.eigh(dense, symmetrize_input=False)
    return vectors[:, targets] if len(targets) != n else vectors


def eigh_tridiagonal(d, e, *, eigvals_only: bool = False, select: str = "a", select_range: Any = None,
                     tol: float | None = None, key: Any = None):
    """``jax.scipy.linalg.eigh_tridiagonal(d, e, *, eigvals_only=False, select='a',
    select_range=None, tol=None, key=None)``: the ascending eigenvalues of the symmetric
    (Hermitian) tridiagonal matrix with diagonal ``d [n]`` and superdiagonal ``e [n - 1]``; all
    (``select='a'``) or those of indices ``select_range = (lo, hi)`` (``select='i'``); to the
    absolute tolerance ``tol`` (at least ``eps * norm``). With ``eigvals_only=False`` also the
    eigenvectors, in columns (see the module note: ``key`` is not used)."""
    alpha, beta = fnp.asarray(d), fnp.asarray(e)
    _check(alpha, beta)
    n = alpha.shape[0]
    if n <= 1:
        values = fnp.real(alpha)
        return values if eigvals_only else (values, fnp.eye(n, dtype=alpha.dtype))
    targets = _target_counts(n, select, select_range)
    if dtypes.is_complex(alpha.dtype):
        beta_sq = fnp.real(beta * fnp.conj(beta))
        beta_abs = fnp.sqrt(beta_sq)
    else:
        beta_abs, beta_sq = fnp.abs(beta), fnp.square(beta)
    real_alpha = fnp.real(alpha)
    values = _bisect(real_alpha, beta_abs, beta_sq, targets, tol)
    return values if eigvals_only else (values, _eigenvectors(real_alpha, beta, targets))
