"""``fgrad.scipy.sparse.linalg``: JAX's ``jax.scipy.sparse.linalg`` iterative solvers (``cg``,
``gmres``, ``bicgstab``).

``A`` (and the preconditioner ``M``) is a square matrix, a function computing ``A @ x``, or an
object with ``@``; ``b`` is an array or a pytree of arrays (then ``A`` maps such pytrees to
such pytrees). Each returns ``(x, info)`` as JAX does: ``info`` is ``None`` for ``cg`` and
``bicgstab``, and for ``gmres`` an int32 scalar, ``-1`` when ``x`` holds NaNs, else ``0``.

They run under ``jit`` and ``vmap``. Derivatives are implicit, through
``fgrad.lax.custom_linear_solve`` as in JAX: a tangent solves ``A dx = db - dA x`` with the
same solver, a cotangent the transposed system (``cg`` treats real ``A`` as symmetric), so
both reach ``b`` and whatever ``A`` closes over (``jvp``, ``grad``, ``jacfwd``, ``hessian``);
``x0``, ``M`` and the tolerances get no derivative. They are exact only where the solves
converge.

Example: ``x, _ = fgrad.scipy.sparse.linalg.cg(lambda v: K @ v, b, tol=1e-6)``
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable

import numpy as np

from fgrad import lax
from fgrad import numpy as fnp
from fgrad import tree
from fgrad.lax import custom_linear_solve
from fgrad.core.trace import get_aval
from fgrad.scipy.sparse import _krylov

__all__ = ["bicgstab", "cg", "gmres"]


def _square_check(shape: tuple) -> None:
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"linear operator must be a square matrix, but has shape: {shape}")


def _as_matvec(A: Any) -> Callable:
    """A function for ``A``: itself if callable, else ``A @ x`` (checked square)."""
    if callable(A):
        return A
    if hasattr(A, "shape") and hasattr(A, "dtype"):      # a NumPy or fgrad array, or a tracer
        _square_check(tuple(get_aval(A).shape))
        return functools.partial(fnp.dot, A, precision=lax.Precision.HIGHEST)
    if hasattr(A, "__matmul__"):
        if hasattr(A, "shape"):
            _square_check(tuple(A.shape))
        return lambda x: A @ x
    raise TypeError(f"linear operator must be either a function or ndarray: {A}")


def _shapes(x: Any) -> list:
    return [tuple(np.shape(leaf)) for leaf in tree.tree_leaves(x)]


def _start(b: Any, x0: Any) -> tuple[Any, Any]:
    b = tree.tree_map(fnp.asarray, b)
    x0 = tree.tree_map(fnp.zeros_like, b) if x0 is None else tree.tree_map(fnp.asarray, x0)
    if tree.tree_structure(x0) != tree.tree_structure(b):
        raise ValueError(f"x0 and b must have matching tree structure: {tree.tree_structure(x0)} vs "
                         f"{tree.tree_structure(b)}")
    return b, x0


def _size(b: Any) -> int:
    return sum(math.prod(shape) for shape in _shapes(b))


def _isolve(solver: Callable, A: Any, b: Any, x0: Any, tol: Any, atol: Any, maxiter: int | None,
            M: Any, symmetric: bool) -> Any:
    b, x0 = _start(b, x0)
    if _shapes(x0) != _shapes(b):
        raise ValueError(f"arrays in x0 and b must have matching shapes: {_shapes(x0)} vs {_shapes(b)}")
    maxiter = 10 * _size(b) if maxiter is None else maxiter     # SciPy's default
    matvec = _as_matvec(A)
    precondition = None if M is None else _as_matvec(M)
    solve = functools.partial(solver, x0=x0, tol=tol, atol=atol, maxiter=maxiter, M=precondition)
    return custom_linear_solve(matvec, b, solve, solve, symmetric=symmetric)


def _all_real(b: Any) -> bool:
    return not any(fnp.iscomplexobj(leaf) for leaf in tree.tree_leaves(b))


def cg(A: Any, b: Any, x0: Any = None, *, tol: Any = 1e-5, atol: Any = 0.0, maxiter: int | None = None,
       M: Any = None) -> tuple[Any, None]:
    """``jax.scipy.sparse.linalg.cg(A, b, x0=None, *, tol=1e-5, atol=0.0, maxiter=None, M=None)``:
    solve ``A x = b`` by (preconditioned) conjugate gradients, for hermitian positive definite ``A``.

    Stops when ``|b - A x| <= max(tol * |b|, atol)`` or after ``maxiter`` steps (default
    ``10 * b.size``). Returns ``(x, None)``; ``x`` has ``b``'s structure.

    >>> x, _ = cg(fnp.array([[4., 1.], [1., 3.]]), fnp.array([1., 2.]))
    """
    symmetric = _all_real(b)
    return _isolve(_krylov.cg_solve, A, b, x0, tol, atol, maxiter, M, symmetric), None


def bicgstab(A: Any, b: Any, x0: Any = None, *, tol: Any = 1e-5, atol: Any = 0.0,
             maxiter: int | None = None, M: Any = None) -> tuple[Any, None]:
    """``jax.scipy.sparse.linalg.bicgstab(A, b, x0=None, *, tol=1e-5, atol=0.0, maxiter=None,
    M=None)``: solve ``A x = b`` (any nonsingular ``A``) by stabilized bi-conjugate gradients.

    Stopping rule and defaults as ``cg``; a breakdown of the recurrence stops the iteration.
    Returns ``(x, None)``.
    """
    return _isolve(_krylov.bicgstab_solve, A, b, x0, tol, atol, maxiter, M, False), None


def gmres(A: Any, b: Any, x0: Any = None, *, tol: Any = 1e-5, atol: Any = 0.0, restart: int = 20,
          maxiter: int | None = None, M: Any = None, solve_method: str = "batched") -> tuple[Any, Any]:
    """``jax.scipy.sparse.linalg.gmres(A, b, x0=None, *, tol=1e-5, atol=0.0, restart=20,
    maxiter=None, M=None, solve_method='batched')``: solve ``A x = b`` by restarted GMRES.

    Each cycle builds a Krylov basis of at most ``restart`` vectors (capped at ``b.size``);
    ``maxiter`` (default ``10 * b.size``) bounds the cycles. It stops when the residual is at most
    ``max(tol * |b|, atol)``. ``solve_method='batched'`` runs all Arnoldi steps then one dense
    least-squares solve (fast when ``restart`` is small); ``'incremental'`` keeps a QR factorization
    with Givens rotations and can stop within a cycle. Returns ``(x, info)``, ``info`` an int32
    scalar: ``-1`` if ``x`` holds NaNs, else ``0``.
    """
    if solve_method not in ("incremental", "batched"):
        raise ValueError(f"invalid solve_method {solve_method}, must be either 'incremental' or 'batched'")
    b, x0 = _start(b, x0)
    precondition = (lambda r: r) if M is None else _as_matvec(M)
    matvec = _as_matvec(A)
    size = _size(b)
    maxiter = 10 * size if maxiter is None else maxiter
    restart = min(restart, size)
    b_norm = _krylov.norm(b)
    atol = fnp.maximum(tol * b_norm, atol)
    ptol = _krylov.norm(precondition(b)) * fnp.minimum(1.0, atol / b_norm)
    cycle = _krylov.gmres_incremental if solve_method == "incremental" else _krylov.gmres_batched
    solve = functools.partial(_krylov.gmres_solve, x0=x0, atol=atol, ptol=ptol, restart=restart,
                              maxiter=maxiter, M=precondition, cycle=cycle)
    x = custom_linear_solve(matvec, b, solve, solve)
    info = fnp.where(fnp.isnan(_krylov.norm(x)), -1, 0)
    return x, info
