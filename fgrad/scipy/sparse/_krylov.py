"""The Krylov iterations behind ``fgrad.scipy.sparse.linalg``: conjugate gradients, BiCGSTAB and
restarted GMRES (its two inner solvers: Arnoldi with a final dense least-squares solve, and
Arnoldi with Givens rotations updating a QR factorization as it goes).

Vectors are pytrees of arrays (inner products sum over every leaf); operators are functions.
Every loop is a ``lax.while_loop``, so the solvers run under ``jit`` and ``vmap``; derivatives
are not taken through them (``linalg.py`` differentiates the solution implicitly).
"""
from __future__ import annotations

import operator
from typing import Any, Callable

from fgrad import lax
from fgrad import numpy as fnp
from fgrad import tree
from fgrad.scipy import linalg as sla

_HIGHEST = lax.Precision.HIGHEST


# --- vector algebra on pytrees -------------------------------------------------------------------

def _vdot(x: Any, y: Any) -> Any:
    return fnp.vdot(x, y, precision=_HIGHEST)


def _vdot_real_part(x: Any, y: Any) -> Any:
    """The real part of <x, y>, the cross terms of complex inputs left out."""
    result = _vdot(fnp.real(x), fnp.real(y))
    if fnp.iscomplexobj(x) or fnp.iscomplexobj(y):
        result = result + _vdot(fnp.imag(x), fnp.imag(y))
    return result


def vdot_real_tree(x: Any, y: Any) -> Any:
    return sum(tree.tree_leaves(tree.tree_map(_vdot_real_part, x, y)))


def _vdot_tree(x: Any, y: Any) -> Any:
    return sum(tree.tree_leaves(tree.tree_map(_vdot, x, y)))


def norm(x: Any) -> Any:
    return fnp.sqrt(vdot_real_tree(x, x))


def _mul(scalar: Any, x: Any) -> Any:
    return tree.tree_map(lambda leaf: scalar * leaf, x)


def _add(x: Any, y: Any) -> Any:
    return tree.tree_map(operator.add, x, y)


def _sub(x: Any, y: Any) -> Any:
    return tree.tree_map(operator.sub, x, y)


def _dtype(x: Any) -> Any:
    return fnp.result_type(*tree.tree_leaves(x))


# --- conjugate gradients and BiCGSTAB -----------------------------------------------------------------

def _squared_tolerance(b: Any, tol: Any, atol: Any) -> Any:
    return fnp.maximum(fnp.square(tol) * vdot_real_tree(b, b), fnp.square(atol))


def cg_solve(A: Callable, b: Any, *, x0: Any, maxiter: int, tol: Any, atol: Any, M: Callable | None) -> Any:
    """Preconditioned conjugate gradients until ``|r| <= max(tol |b|, atol)`` or ``maxiter`` steps."""
    precondition = M if M is not None else (lambda r: r)
    bound = _squared_tolerance(b, tol, atol)
    r0 = _sub(b, A(x0))
    p0 = precondition(r0)
    dtype = _dtype(p0)
    gamma0 = vdot_real_tree(r0, p0).astype(dtype)

    def cond(carry):
        _, r, gamma, _, k = carry
        rs = fnp.real(gamma) if M is None else vdot_real_tree(r, r)
        return (rs > bound) & (k < maxiter)

    def body(carry):
        x, r, gamma, p, k = carry
        Ap = A(p)
        alpha = gamma / vdot_real_tree(p, Ap).astype(dtype)
        x = _add(x, _mul(alpha, p))
        r = _sub(r, _mul(alpha, Ap))
        z = precondition(r)
        gamma_next = vdot_real_tree(r, z).astype(dtype)
        p = _add(z, _mul(gamma_next / gamma, p))
        return x, r, gamma_next, p, k + 1

    return lax.while_loop(cond, body, (x0, r0, gamma0, p0, 0))[0]


def bicgstab_solve(A: Callable, b: Any, *, x0: Any, maxiter: int, tol: Any, atol: Any,
                   M: Callable | None) -> Any:
    """BiCGSTAB until the residual meets the tolerance, ``maxiter`` steps, or a breakdown
    (``rho``, ``alpha`` or ``omega`` zero: the iteration count goes negative and the loop stops)."""
    precondition = M if M is not None else (lambda r: r)
    bound = _squared_tolerance(b, tol, atol)
    r0 = _sub(b, A(x0))
    one = fnp.asarray(1, dtype=_dtype(b))

    def cond(carry):
        r, k = carry[1], carry[-1]
        return (vdot_real_tree(r, r) > bound) & (k < maxiter) & (k >= 0)

    def body(carry):
        x, r, rhat, alpha, omega, rho, p, q, k = carry
        rho_next = _vdot_tree(rhat, r)
        beta = rho_next / rho * alpha / omega
        p = _add(r, _mul(beta, _sub(p, _mul(omega, q))))
        phat = precondition(p)
        q = A(phat)
        alpha = rho_next / _vdot_tree(rhat, q)
        s = _sub(r, _mul(alpha, q))
        exit_early = vdot_real_tree(s, s) < bound
        shat = precondition(s)
        t = A(shat)
        omega = _vdot_tree(t, s) / _vdot_tree(t, t)
        short = _add(x, _mul(alpha, phat))
        x = tree.tree_map(lambda a, c: fnp.where(exit_early, a, c), short, _add(short, _mul(omega, shat)))
        r = tree.tree_map(lambda a, c: fnp.where(exit_early, a, c), s, _sub(s, _mul(omega, t)))
        k = fnp.where((omega == 0) | (alpha == 0), -11, k + 1)
        k = fnp.where(rho_next == 0, -10, k)
        return x, r, rhat, alpha, omega, rho_next, p, q, k

    return lax.while_loop(cond, body, (x0, r0, r0, one, one, one, r0, r0, 0))[0]


# --- GMRES ---------------------------------------------------------------------------------------

def safe_normalize(x: Any, thresh: Any = None) -> tuple[Any, Any]:
    """``(x / |x|, |x|)``, or zeros (both) when ``|x|`` is at most ``thresh`` (default: epsilon)."""
    size = norm(x)
    dtype = _dtype(x)
    if thresh is None:
        thresh = fnp.finfo(size.dtype).eps
    thresh = fnp.real(fnp.asarray(thresh).astype(dtype))
    use = size > thresh
    scale = size.astype(dtype)
    unit = tree.tree_map(lambda y: fnp.where(use, y / scale, 0.0), x)
    return unit, fnp.where(use, size, 0.0)


def _project_on_columns(Q: Any, v: Any) -> Any:
    """``Q^H v``, summed over the leaves (each leaf of ``Q`` holds columns on its last axis)."""
    def project(X, y):
        axes = list(range(y.ndim))
        return fnp.tensordot(fnp.conj(X), y, axes=(axes, axes), precision=_HIGHEST)
    return sum(tree.tree_leaves(tree.tree_map(project, Q, v)))


def _gram_schmidt(Q: Any, x: Any, xnorm: Any, max_iterations: int = 2) -> tuple[Any, Any]:
    """``x`` orthogonalized against ``Q``'s orthonormal columns by classical Gram-Schmidt,
    repeated (up to ``max_iterations`` passes) while the overlap is large: ``(q, overlaps)``."""
    first = tree.tree_leaves(Q)[0]

    def one_pass(carry):
        k, q, r, qnorm_scaled = carry
        h = _project_on_columns(Q, q)
        q = _sub(q, tree.tree_map(lambda X: fnp.dot(X, h, precision=_HIGHEST), Q))
        r = r + h

        def renorm(inner):
            k, _, q, _ = inner
            return k, False, q, safe_normalize(q)[1] / fnp.sqrt(2.0)
        _, _, q, qnorm_scaled = lax.while_loop(lambda inner: inner[1] & (inner[0] < max_iterations - 1), renorm,
                                               (k, True, q, qnorm_scaled))
        return k + 1, q, r, qnorm_scaled

    def again(carry):
        k, _, r, qnorm_scaled = carry
        return (k < max_iterations - 1) & (safe_normalize(r)[1] < qnorm_scaled)

    start = one_pass((0, x, fnp.zeros(first.shape[-1], dtype=first.dtype), xnorm / fnp.sqrt(2.0)))
    _, q, r, _ = lax.while_loop(again, one_pass, start)
    return q, r


def _arnoldi_step(k: Any, A: Callable, M: Callable, V: Any, H: Any) -> tuple[Any, Any, Any]:
    """Column ``k + 1`` of the Krylov basis ``V`` (zero on breakdown) and row ``k`` of ``H``."""
    dtype = _dtype(V)
    v = M(A(tree.tree_map(lambda X: X[..., k], V)))
    _, v_norm = safe_normalize(v)
    v, h = _gram_schmidt(V, v, v_norm)
    unit, v_norm_after = safe_normalize(v, thresh=fnp.finfo(dtype).eps * v_norm)
    V = tree.tree_map(lambda X, y: X.at[..., k + 1].set(y), V, unit)
    h = h.at[k + 1].set(v_norm_after.astype(dtype))
    return V, H.at[k, :].set(h), v_norm_after == 0.


def _rotate(H: Any, i: Any, cs: Any, sn: Any) -> Any:
    x, y = H[i], H[i + 1]
    return H.at[i].set(fnp.conj(cs) * x - fnp.conj(sn) * y).at[i + 1].set(sn * x + cs * y)


def _givens(a: Any, b: Any) -> tuple[Any, Any]:
    b_zero = abs(b) == 0
    a_lt_b = abs(a) < abs(b)
    t = -fnp.where(a_lt_b, a, b) / fnp.where(a_lt_b, b, a)
    r = lax.rsqrt(1 + abs(t) ** 2).astype(t.dtype)
    cs = fnp.where(b_zero, 1, fnp.where(a_lt_b, r * t, r))
    sn = fnp.where(b_zero, 0, fnp.where(a_lt_b, r, r * t))
    return cs, sn


def _apply_givens(row: Any, givens: Any, k: Any) -> tuple[Any, Any]:
    """The earlier rotations applied to ``row``, then a new one zeroing its entry ``k + 1``."""
    row = lax.fori_loop(0, k, lambda i, h: _rotate(h, i, givens[i, 0], givens[i, 1]), row)
    cs, sn = _givens(row[k], row[k + 1])
    return _rotate(row, k, cs, sn), givens.at[k, 0].set(cs).at[k, 1].set(sn)


def _basis(unit_residual: Any, restart: int) -> Any:
    return tree.tree_map(lambda x: fnp.pad(x[..., None], ((0, 0),) * x.ndim + ((0, restart),)), unit_residual)


def _update(x0: Any, V: Any, y: Any) -> Any:
    return _add(x0, tree.tree_map(lambda X: fnp.dot(X[..., :-1], y, precision=_HIGHEST), V))


def gmres_incremental(A, b, x0, unit_residual, residual_norm, ptol, restart, M):
    """One GMRES cycle of ``restart`` Arnoldi steps, keeping the QR factorization of the
    Hessenberg matrix up to date, so it stops as soon as the projected residual is below ``ptol``."""
    dtype = _dtype(b)
    V = _basis(unit_residual, restart)
    R = fnp.eye(restart, restart + 1, dtype=dtype)
    givens = fnp.zeros((restart, 2), dtype=dtype)
    beta = fnp.zeros(restart + 1, dtype=dtype).at[0].set(residual_norm.astype(dtype))

    def step(carry):
        k, _, V, R, beta, givens = carry
        V, H, _ = _arnoldi_step(k, A, M, V, R)
        row, givens = _apply_givens(H[k, :], givens, k)
        beta = _rotate(beta, k, givens[k, 0], givens[k, 1])
        return k + 1, abs(beta[k + 1]), V, R.at[k, :].set(row), beta, givens

    carry = (0, residual_norm, V, R, beta, givens)
    _, _, V, R, beta, _ = lax.while_loop(lambda c: (c[0] < restart) & (c[1] > ptol), step, carry)
    y = sla.solve_triangular(R[:, :-1].T, beta[:-1])
    return _finish(A, M, b, _update(x0, V, y))


def gmres_batched(A, b, x0, unit_residual, residual_norm, ptol, restart, M):
    """One GMRES cycle: all ``restart`` Arnoldi steps (unless the basis breaks down), then the
    least-squares problem for the update solved densely through its normal equations."""
    dtype = _dtype(b)
    V = _basis(unit_residual, restart)
    H = fnp.eye(restart, restart + 1, dtype=dtype)

    def step(carry):
        V, H, _, k = carry
        V, H, breakdown = _arnoldi_step(k, A, M, V, H)
        return V, H, breakdown, k + 1

    V, H, _, _ = lax.while_loop(lambda c: (c[3] < restart) & ~c[2], step, (V, H, False, 0))
    beta = fnp.zeros(restart + 1, dtype=H.dtype).at[0].set(residual_norm.astype(dtype))
    Ht = H.T
    y = sla.solve(fnp.dot(fnp.conj(Ht).T, Ht, precision=_HIGHEST), fnp.dot(fnp.conj(Ht).T, beta, precision=_HIGHEST),
                  assume_a="pos")
    return _finish(A, M, b, _update(x0, V, y))


def _finish(A: Callable, M: Callable, b: Any, x: Any) -> tuple[Any, Any, Any]:
    unit, size = safe_normalize(M(_sub(b, A(x))))
    return x, unit, size


def gmres_solve(A: Callable, b: Any, *, x0: Any, atol: Any, ptol: Any, restart: int, maxiter: int,
                M: Callable, cycle: Callable) -> Any:
    """Restarted GMRES: ``cycle`` repeated from the latest ``x`` until the preconditioned residual
    is at most ``atol`` or ``maxiter`` cycles ran."""
    unit, size = safe_normalize(M(_sub(b, A(x0))))

    def body(carry):
        x, k, unit, size = carry
        x, unit, size = cycle(A, b, x, unit, size, ptol, restart, M)
        return x, k + 1, unit, size

    return lax.while_loop(lambda c: (c[1] < maxiter) & (c[3] > atol), body, (x0, 0, unit, size))[0]
