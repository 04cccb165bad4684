"""Differentiation rules of the decompositions in ``fgrad.ops.linalg``: JAX's formulas, complex
matrices included (``^H`` the conjugate transpose, which is ``^T`` for real matrices).

* cholesky: ``dL = L phi(L^-1 dA L^-H)`` with ``phi`` the lower triangle, halved on the
  diagonal (Murray, arXiv:1602.07527).
* triangular_solve: linear in ``b`` (its transpose solves with ``op(a)`` transposed); the
  ``a`` term is ``-op(a)^-1 op(da) x`` (left side) or ``-x op(da) op(a)^-1``, ``da`` restricted
  to the triangle the solve reads.
* lu: ``L' = L tril(L^-1 P dA U^-1, -1)``, ``U' = triu(L^-1 P dA U^-1) U`` (De Hoog, Anderssen
  and Lukas), with ``L`` and ``U`` padded to square for rectangular inputs.
* qr: Townsend's rule, extended as JAX 0.10 does to wide inputs (``dR2 = dQ^H X2 + Q^H dX2``)
  and to the square ``Q`` of a tall input (its extra columns through ``(Q_nn - I)^-1``); for
  complex inputs the diagonal of ``dO`` takes the imaginary part of ``Q^H dA R^-1``'s (JAX's
  correction, which keeps ``R``'s diagonal real... as LAPACK's is not, exactly JAX's rule).
* eigh: ``dw = Re diag(V^H dA V)``, ``dV = V (F * (V^H dA V))`` with ``F_ij = 1 / (w_j - w_i)``
  off the diagonal (inf at degenerate eigenvalues, as in JAX), zero on it. The primal is the
  eigendecomposition of ``(a + a^H) / 2``, as in JAX.
* svd: JAX's rule (economic or ``compute_uv=False`` only), with the projections for
  non-square inputs; ``ds = Re diag(U^H dA V)``, and for complex inputs the phase term
  ``(dS - dS^H) / 2 s^-1`` on ``dU``'s diagonal.

Every rule is written with lax-level primitives, so it composes with every transform.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from fgrad.core.rules import is_undefined, jvp_rules, symbolic_zero_rules, transpose_rules
from fgrad.core.trace import get_aval
from fgrad.core import dtypes
from fgrad.ops import complex_parts as cp, elementwise as ew, reduction as red, shape as sh
from fgrad.ops.contraction import dot_general
from fgrad.ops.linalg import (adjoint, cholesky_p, eigh_p, lu_p, qr_p, svd_p, symmetrize, triangular_solve,
                              triangular_solve_p)

__all__: list[str] = []


# --- helpers on batches of matrices (lax level: explicit broadcasting) ----------------------------

def _shape(x: Any) -> tuple:
    return get_aval(x).shape


def _dtype(x: Any) -> np.dtype:
    return get_aval(x).dtype


def mT(x: Any) -> Any:
    """Swap the last two dimensions."""
    nd = len(_shape(x))
    return sh.transpose(x, tuple(range(nd - 2)) + (nd - 1, nd - 2))


def _H(x: Any) -> Any:
    """The conjugate transpose of the last two dimensions."""
    return adjoint(x)


def _is_complex(x: Any) -> bool:
    return dtypes.is_complex(_dtype(x))


def _real_part_as(x: Any, like: Any) -> Any:
    """``Re x`` in ``like``'s dtype (``x`` itself when real)."""
    if not _is_complex(x):
        return ew.convert_element_type(x, _dtype(like)) if _dtype(x) != _dtype(like) else x
    return ew.convert_element_type(cp.real(x), _dtype(like))


def _as_dtype(x: Any, like: Any) -> Any:
    return x if _dtype(x) == _dtype(like) else ew.convert_element_type(x, _dtype(like))


def matmul(a: Any, b: Any) -> Any:
    """``a @ b`` over equal leading batch dimensions."""
    nd = len(_shape(a))
    batch = tuple(range(nd - 2))
    return dot_general(a, b, (((nd - 1,), (nd - 2,)), (batch, batch)))


def matrix_const(value: np.ndarray, like_shape: tuple, dtype: Any) -> Any:
    """A constant matrix broadcast over the leading dimensions of ``like_shape``."""
    nd = len(like_shape)
    return sh.broadcast_in_dim(np.asarray(value, dtype), tuple(like_shape), (nd - 2, nd - 1))


def eye_like(x: Any, n: int | None = None) -> Any:
    """The identity, ``n x n`` (default: ``x``'s last dimension), batched as ``x``."""
    shape = _shape(x)
    n = shape[-1] if n is None else n
    return matrix_const(np.eye(n), shape[:-2] + (n, n), _dtype(x))


def band(x: Any, k: int, lower: bool) -> Any:
    """``tril(x, k)`` (``lower``) or ``triu(x, k)``."""
    m, n = _shape(x)[-2:]
    mask = np.tril(np.ones((m, n), bool), k) if lower else np.triu(np.ones((m, n), bool), k)
    return ew.select_n(matrix_const(mask, _shape(x), np.bool_), sh.zeros_like(x), x)


def diagonal(x: Any) -> Any:
    """The diagonal of square matrices ``[..., n, n] -> [..., n]``."""
    nd = len(_shape(x))
    return red.reduce_sum(ew.mul(x, eye_like(x)), (nd - 1,))


def as_rows(v: Any, rows: int) -> Any:
    """``v [..., k]`` as ``[..., rows, k]`` (each row a copy of ``v``)."""
    shape = _shape(v)
    nd = len(shape) + 1
    return sh.broadcast_in_dim(v, shape[:-1] + (rows, shape[-1]), tuple(range(nd - 2)) + (nd - 1,))


def as_columns(v: Any, cols: int) -> Any:
    """``v [..., k]`` as ``[..., k, cols]`` (each column a copy of ``v``)."""
    shape = _shape(v)
    nd = len(shape) + 1
    return sh.broadcast_in_dim(v, shape + (cols,), tuple(range(nd - 1)))


def _scalar(value: float, like: Any) -> Any:
    return np.asarray(value, _dtype(like))[()]


def _add_tangents(*terms: Any) -> Any:
    present = [t for t in terms if t is not None]
    if not present:
        return None
    out = present[0]
    for t in present[1:]:
        out = ew.add(out, t)
    return out


# --- cholesky ------------------------------------------------------------------------------------

def _cholesky_jvp(primals, tangents):
    (a,), (da,) = primals, tangents
    L = cholesky_p.bind(a)
    tmp = triangular_solve(L, da, left_side=False, transpose_a=True, conjugate_a=True, lower=True)   # dA L^-H
    inner = triangular_solve(L, tmp, left_side=True, lower=True)                                     # L^-1 dA L^-H
    phi = ew.div(band(inner, 0, lower=True), ew.add(eye_like(inner), _scalar(1.0, inner)))
    # L's tangent is lower triangular: its upper part stays 0 where a failed factor's NaNs
    # would spread through the product (JAX's too)
    return L, band(matmul(L, phi), 0, lower=True)


jvp_rules[cholesky_p] = _cholesky_jvp


# --- triangular_solve ----------------------------------------------------------------------------

def _triangular_solve_a_term(da, x, a, left_side, lower, transpose_a, conjugate_a, unit_diagonal):
    """The tangent from ``da``: ``-op(a)^-1 op(da) x`` or ``-x op(da) op(a)^-1``."""
    m, n = _shape(x)[-2:]
    k = 1 if unit_diagonal else 0
    da = ew.neg(band(da, -k, lower=True) if lower else band(da, k, lower=False))
    da = mT(da) if transpose_a else da
    da = cp.conj(da) if conjugate_a else da

    def a_inverse(rhs):
        return triangular_solve(a, rhs, left_side=left_side, lower=lower, transpose_a=transpose_a,
                                conjugate_a=conjugate_a, unit_diagonal=unit_diagonal)
    if left_side:   # the cheaper order, as JAX
        return a_inverse(matmul(da, x)) if m > n else matmul(a_inverse(da), x)
    return a_inverse(matmul(x, da)) if m < n else matmul(x, a_inverse(da))


def _triangular_solve_jvp(primals, tangents, **params):
    (a, b), (da, db) = primals, tangents
    x = triangular_solve_p.bind(a, b, **params)
    b_term = None if db is None else triangular_solve_p.bind(a, db, **params)
    a_term = None if da is None else _triangular_solve_a_term(da, x, a, **params)
    return x, _add_tangents(a_term, b_term)


def _triangular_solve_transpose(ct, a, b, *, left_side, lower, transpose_a, conjugate_a, unit_diagonal):
    if is_undefined(a) or not is_undefined(b):
        raise NotImplementedError("triangular_solve is linear only in its right-hand side b")
    ct_b = triangular_solve_p.bind(a, ct, left_side=left_side, lower=lower, transpose_a=not transpose_a,
                                   conjugate_a=conjugate_a, unit_diagonal=unit_diagonal)
    return [None, ct_b]


jvp_rules[triangular_solve_p] = _triangular_solve_jvp
symbolic_zero_rules.add(triangular_solve_p)
transpose_rules[triangular_solve_p] = _triangular_solve_transpose


# --- lu ------------------------------------------------------------------------------------------

def permutation_matrix(perm: Any, dtype: Any) -> Any:
    """``P`` with ``P[..., i, j] = (perm[..., i] == j)``, so ``P @ a == a[perm]``."""
    shape = _shape(perm)
    m = shape[-1]
    nd = len(shape) + 1
    rows = sh.broadcast_in_dim(perm, shape + (m,), tuple(range(nd - 1)))
    cols = sh.iota(np.int32, shape + (m,), nd - 1)
    return ew.convert_element_type(ew.eq(rows, cols), dtype)


def lu_solve(lu_: Any, permutation: Any, b: Any, trans: int = 0) -> Any:
    """``a^-1 b`` (``trans=0``), ``a^-T b`` (``trans=1``) or ``a^-H b`` (``trans=2``) from
    ``lu_, _, permutation = lu(a)``; ``lu_ [..., m, m]``, ``b [..., m, k]`` with the same batch
    dimensions."""
    P = permutation_matrix(permutation, _dtype(lu_))
    if trans == 0:
        x = triangular_solve(lu_, matmul(P, b), left_side=True, lower=True, unit_diagonal=True)
        return triangular_solve(lu_, x, left_side=True, lower=False)
    conj = trans == 2
    x = triangular_solve(lu_, b, left_side=True, lower=False, transpose_a=True, conjugate_a=conj)
    x = triangular_solve(lu_, x, left_side=True, lower=True, unit_diagonal=True, transpose_a=True,
                         conjugate_a=conj)
    return matmul(mT(P), x)


def _square_factors(lu_: Any) -> tuple[Any, Any]:
    """``L`` (``m x m``, unit diagonal) and ``U`` (``n x n``) from getrf's packed ``lu``,
    padded with the identity where the input is not square."""
    shape = _shape(lu_)
    nd = len(shape)
    m, n = shape[-2:]
    k = min(m, n)
    zero = _scalar(0.0, lu_)
    keep = [(0, 0, 0)] * (nd - 2)
    l_part = band(sh.slice(lu_, (0,) * nd, shape[:-1] + (k,)), -1, lower=True)
    L = ew.add(sh.pad(l_part, zero, keep + [(0, 0, 0), (0, m - k, 0)]), eye_like(lu_, m))
    u_part = band(sh.slice(lu_, (0,) * nd, shape[:-2] + (k, n)), 0, lower=False)
    u_eye = np.pad(np.eye(n - k), ((k, 0), (k, 0)))
    U = ew.add(sh.pad(u_part, zero, keep + [(0, n - k, 0), (0, 0, 0)]),
               matrix_const(u_eye, shape[:-2] + (n, n), _dtype(lu_)))
    return L, U


def _lu_jvp(primals, tangents):
    (a,), (da,) = primals, tangents
    lu_, pivots, permutation = lu_p.bind(a)
    L, U = _square_factors(lu_)
    x = matmul(permutation_matrix(permutation, _dtype(a)), da)                      # P dA
    la = triangular_solve(L, x, left_side=True, lower=True, unit_diagonal=True)    # L^-1 P dA
    lau = triangular_solve(U, la, left_side=False, lower=False)                     # ... U^-1
    d_lu = ew.add(matmul(L, band(lau, -1, lower=True)), matmul(band(lau, 0, lower=False), U))
    return [lu_, pivots, permutation], [d_lu, None, None]


jvp_rules[lu_p] = _lu_jvp


# --- qr ------------------------------------------------------------------------------------------

def _cols(x: Any, lo: int, hi: int) -> Any:
    shape = _shape(x)
    return sh.slice(x, (0,) * (len(shape) - 1) + (lo,), shape[:-1] + (hi,))


def _rows(x: Any, lo: int, hi: int) -> Any:
    shape = _shape(x)
    return sh.slice(x, (0,) * (len(shape) - 2) + (lo, 0), shape[:-2] + (hi, shape[-1]))


def _thin_qr_jvp(q: Any, r: Any, dx: Any) -> tuple[Any, Any]:
    """Townsend's rule for ``x = q r`` with ``r`` square."""
    dx_rinv = triangular_solve(r, dx)                       # dA R^-1 (a right-side solve)
    qt_dx_rinv = matmul(_H(q), dx_rinv)
    lower_part = band(qt_dx_rinv, -1, lower=True)
    do = ew.sub(lower_part, _H(lower_part))                 # skew-Hermitian
    if _is_complex(qt_dx_rinv):                             # JAX's correction for complex inputs
        imaginary = ew.sub(qt_dx_rinv, _real_part_as(qt_dx_rinv, qt_dx_rinv))
        do = ew.add(do, ew.mul(eye_like(qt_dx_rinv), imaginary))
    dq = ew.add(matmul(q, ew.sub(do, qt_dx_rinv)), dx_rinv)
    dr = matmul(ew.sub(qt_dx_rinv, do), r)
    return dq, dr


def _wide_qr_jvp(x, dx, q, r):
    """``m < n``: the thin rule on the leading square block, ``dR2 = dQ^T X2 + Q^T dX2``."""
    m, n = _shape(x)[-2:]
    dq, dr1 = _thin_qr_jvp(q, _cols(r, 0, m), _cols(dx, 0, m))
    dr2 = ew.add(matmul(_H(dq), _cols(x, m, n)), matmul(_H(q), _cols(dx, m, n)))
    return dq, sh.concatenate([dr1, dr2], len(_shape(x)) - 1)


def _full_tall_qr_jvp(dx, q, r):
    """``m > n`` with the square ``q``: the thin rule, and the extra columns ``dQ_mp`` that keep
    ``q`` orthogonal (JAX's construction through ``(Q_nn - I)^-1``)."""
    m, n = _shape(dx)[-2:]
    nd = len(_shape(dx))
    q_mn = _cols(q, 0, n)
    dq_mn, dr_nn = _thin_qr_jvp(q_mn, _rows(r, 0, n), dx)
    q_nn, q_pn, q_mp = _rows(q_mn, 0, n), _rows(q_mn, n, m), _cols(q, n, m)
    dq_nn, dq_pn = _rows(dq_mn, 0, n), _rows(dq_mn, n, m)
    lu_, _, permutation = lu_p.bind(ew.sub(q_nn, eye_like(q_nn)))
    z_pn_h = lu_solve(lu_, permutation, _H(q_pn), trans=2)
    z_pn = _H(z_pn_h)
    dq_mp = ew.sub(matmul(dq_mn, z_pn_h),
                   matmul(ew.add(q_mn, matmul(q_mp, z_pn)), _H(ew.sub(dq_pn, matmul(z_pn, dq_nn)))))
    zeros = sh.full(_shape(dr_nn)[:-2] + (m - n, n), 0, _dtype(dr_nn))
    return sh.concatenate([dq_mn, dq_mp], nd - 1), sh.concatenate([dr_nn, zeros], nd - 2)


def _qr_jvp(primals, tangents, *, full_matrices):
    (x,), (dx,) = primals, tangents
    q, r = qr_p.bind(x, full_matrices=full_matrices)
    m, n = _shape(x)[-2:]
    if m < n:
        dq, dr = _wide_qr_jvp(x, dx, q, r)
    elif full_matrices and m > n:
        dq, dr = _full_tall_qr_jvp(dx, q, r)
    else:
        dq, dr = _thin_qr_jvp(q, r, dx)
    return [q, r], [dq, dr]


jvp_rules[qr_p] = _qr_jvp


# --- eigh ----------------------------------------------------------------------------------------

def _eigh_jvp(primals, tangents, *, lower):
    (a,), (da,) = primals, tangents
    v, w_real = eigh_p.bind(symmetrize(a), lower=lower)
    w = _as_dtype(w_real, a)
    n = _shape(a)[-1]
    eye = eye_like(a)
    gaps = ew.sub(as_rows(w, n), as_columns(w, n))          # w_j - w_i
    F = ew.sub(ew.integer_pow(ew.add(eye, gaps), -1), eye)
    vh_da_v = matmul(matmul(_H(v), da), v)
    dv = matmul(v, ew.mul(F, vh_da_v))
    dw = diagonal(vh_da_v)
    return [v, w_real], [dv, cp.real(dw) if _is_complex(dw) else dw]


jvp_rules[eigh_p] = _eigh_jvp


# --- svd -----------------------------------------------------------------------------------------

def _svd_jvp(primals, tangents, *, full_matrices, compute_uv):
    (a,), (da,) = primals, tangents
    if compute_uv and full_matrices and _shape(a)[-1] != _shape(a)[-2]:
        raise NotImplementedError("Singular value decomposition JVP not implemented for full matrices: "
                                  "fgrad (as JAX) differentiates svd with full_matrices=False (or compute_uv=False)")
    u, s_real, vt = svd_p.bind(a, full_matrices=False, compute_uv=True)
    v = _H(vt)
    m, n = _shape(a)[-2:]
    k = min(m, n)
    ds_full = matmul(matmul(_H(u), da), v)
    ds = diagonal(ds_full)
    ds = cp.real(ds) if _is_complex(ds) else ds
    if not compute_uv:
        return [s_real], [ds]
    s = _as_dtype(s_real, a)
    s_row, s_col = as_rows(s, k), as_columns(s, k)
    s_diffs = ew.mul(ew.add(s_row, s_col), ew.sub(s_row, s_col))    # s_j^2 - s_i^2
    eye = eye_like(ds_full)
    F = ew.sub(ew.div(_scalar(1.0, a), ew.add(s_diffs, eye)), eye)
    dss = ew.mul(s_row, ds_full)                                     # dS diag(s)
    sds = ew.mul(s_col, ds_full)                                     # diag(s) dS
    du_inner = ew.mul(F, ew.add(dss, _H(dss)))
    if _is_complex(a):                                               # the phases: zero for real inputs
        du_inner = ew.add(du_inner, _svd_phase_term(ds_full, s_real, a))
    du = matmul(u, du_inner)
    dv = matmul(v, ew.mul(F, ew.add(sds, _H(sds))))
    if m > n:
        dav = matmul(da, v)
        du = ew.add(du, ew.div(ew.sub(dav, matmul(u, matmul(_H(u), dav))), as_rows(s, m)))
    if n > m:
        dahu = matmul(_H(da), u)
        dv = ew.add(dv, ew.div(ew.sub(dahu, matmul(v, matmul(vt, dahu))), as_rows(s, n)))
    return [u, s_real, vt], [du, ds, _H(dv)]


def _svd_phase_term(ds_full: Any, s: Any, like: Any) -> Any:
    """JAX's ``(dS - dS^H) / 2 * diag(1 / s)`` (``1 / 0`` taken as 0)."""
    s_zeros = ew.convert_element_type(ew.eq(s, _scalar(0.0, s)), _dtype(s))
    s_inv = ew.sub(ew.div(_scalar(1.0, s), ew.add(s, s_zeros)), s_zeros)
    k = _shape(s)[-1]
    s_inv_diag = ew.mul(eye_like(ds_full), _as_dtype(as_rows(s_inv, k), like))
    half = _scalar(0.5, like)
    return ew.mul(ew.mul(ew.sub(ds_full, _H(ds_full)), half), s_inv_diag)


jvp_rules[svd_p] = _svd_jvp
