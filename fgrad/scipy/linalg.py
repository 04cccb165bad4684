"""``fgrad.scipy.linalg``: JAX's ``jax.scipy.linalg`` (SciPy's signatures; ``overwrite_*``,
``check_finite`` and LAPACK-driver options are accepted and ignored, as in JAX).

Built on the decomposition primitives of ``fgrad.ops.linalg`` and on ``fgrad.numpy.linalg``,
so every function runs eagerly, under ``jit``, ``grad`` and ``vmap``, on batches of matrices.
``expm`` is Padé scaling and squaring (degree up to 13 in float64, 7 in float32), as SciPy
and JAX, differentiable through its composition.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.linalg

from fgrad import lax
from fgrad import numpy as fnp
from fgrad.callbacks import pure_callback
from fgrad.core import dtypes
from fgrad.core.trace import get_aval
from fgrad.core.types import ShapeDtypeStruct
from fgrad.numpy import linalg as fla
from fgrad.ops import linalg as lin
from fgrad.ops.linalg_rules import permutation_matrix
from fgrad.scipy._linalg_special import (circulant, companion, convolution_matrix, dft, fiedler, fiedler_companion,
                                         hadamard, hankel, helmert, hilbert, invhilbert, invpascal, leslie, pascal,
                                         toeplitz)
from fgrad.scipy._linalg_schur import (funm, hessenberg, rsf2csf, schur, solve_sylvester, sqrtm,
                                       without_derivative)
from fgrad.scipy._linalg_tridiagonal import eigh_tridiagonal
from fgrad.transforms.jvp import jvp
from fgrad.transforms.vmap import vmap

__all__ = ["cholesky", "cho_factor", "cho_solve", "solve_triangular", "solve", "lu", "lu_factor", "lu_solve",
           "qr", "svd", "eigh", "inv", "det", "expm", "expm_frechet", "polar", "block_diag", "toeplitz", "hilbert",
           "circulant", "companion", "convolution_matrix", "dft", "fiedler", "fiedler_companion", "hadamard", "hankel",
           "helmert", "invhilbert", "invpascal", "leslie", "pascal", "schur", "rsf2csf", "hessenberg", "sqrtm", "funm",
           "solve_sylvester", "eigh_tridiagonal", "qr_multiply"]


def _shape(x: Any) -> tuple:
    return get_aval(x).shape


def _float(op: str, *xs: Any) -> list:
    return fla._floats(f"jax.scipy.linalg.{op}", *xs)


def _mT(x: Any) -> Any:
    return fnp.matrix_transpose(x)


def _H(x: Any) -> Any:
    """The conjugate transpose of the last two axes (the transpose of real matrices)."""
    return lin.adjoint(x)


def _vectorized_solve(op: str, a: Any, b: Any, solve_matrix) -> Any:
    """Apply ``solve_matrix(a [..., n, n], b [..., n, k])`` with the leading dimensions
    broadcast, JAX's signatures ``(n,n),(n)->(n)`` (``b`` 1-D, or a deprecated batch of vectors)
    and ``(n,n),(n,k)->(n,k)``."""
    sa, sb = _shape(a), _shape(b)
    if len(sa) < 2 or sa[-1] != sa[-2]:
        raise ValueError(f"{op}: a must be square matrices [..., n, n], got shape {sa}")
    vector = len(sb) == 1
    if not vector and len(sa) == len(sb) + 1 and sa[-1] == sb[-1]:
        warnings.warn(f"jax.scipy.linalg.{op}: batched 1D solves with b.ndim > 1 are deprecated, and in the "
                      f"future will be treated as a batched 2D solve. Use {op}(..., b[..., None]).squeeze(-1) "
                      "to avoid this warning.", FutureWarning, stacklevel=3)
        vector = True
    if vector:
        b = fnp.expand_dims(b, -1)
    if len(sb) == 0 or _shape(b)[-2] != sa[-1]:
        raise ValueError(f"{op}: b must have shape [..., {sa[-1]}] or [..., {sa[-1]}, k] for a of shape {sa}, "
                         f"got {sb}")
    x = solve_matrix(*fla._broadcast_batch(a, b))
    return x[..., 0] if vector else x


# --- Cholesky ---------------------------------------------------------------------------------------

def cholesky(a, lower: bool = False, overwrite_a: bool = False, check_finite: bool = True):
    """``jax.scipy.linalg.cholesky(a, lower=False, overwrite_a=False, check_finite=True)``:
    ``U`` with ``a == U^H @ U`` (``L`` with ``a == L @ L^H`` when ``lower``). Reads only that
    triangle of ``a`` (no symmetrization); NaN where ``a`` is not positive definite."""
    (a,) = _float("cholesky", a)
    fla._matrix("cholesky", a, square=True)
    L = lin.cholesky(a if lower else _H(a), symmetrize_input=False)
    return L if lower else _H(L)


def cho_factor(a, lower: bool = False, overwrite_a: bool = False, check_finite: bool = True):
    """``jax.scipy.linalg.cho_factor(a, lower=False, ...)``: ``(c, lower)`` for ``cho_solve``."""
    return cholesky(a, lower=lower), lower


def cho_solve(c_and_lower, b, overwrite_b: bool = False, check_finite: bool = True):
    """``jax.scipy.linalg.cho_solve((c, lower), b, ...)``: ``x`` with ``a @ x == b`` from the
    Cholesky factor of ``a``."""
    c, lower = c_and_lower
    c, b = _float("cho_solve", c, b)

    def two_solves(c, b):
        y = lin.triangular_solve(c, b, left_side=True, lower=lower, transpose_a=not lower, conjugate_a=not lower)
        return lin.triangular_solve(c, y, left_side=True, lower=lower, transpose_a=lower, conjugate_a=lower)
    return _vectorized_solve("cho_solve", c, b, two_solves)


# --- triangular and general solves -------------------------------------------------------------------

def _trans_code(trans: Any) -> int:
    """0: ``a``, 1: ``a^T``, 2: ``a^H`` (SciPy's ``trans``)."""
    for code, names in enumerate(((0, "N"), (1, "T"), (2, "C"))):
        if trans in names:
            return code
    raise ValueError(f"Invalid 'trans' value {trans!r}: use 0/'N', 1/'T' or 2/'C'")


def solve_triangular(a, b, trans=0, lower: bool = False, unit_diagonal: bool = False,
                     overwrite_b: bool = False, debug: Any = None, check_finite: bool = True):
    """``jax.scipy.linalg.solve_triangular(a, b, trans=0, lower=False, unit_diagonal=False, ...)``:
    ``x`` with ``op(a) @ x == b`` (``op(a)``: ``a``, ``a^T`` or ``a^H`` for ``trans`` 0, 1, 2),
    reading only the ``lower`` (or upper) triangle of ``a``."""
    code = _trans_code(trans)
    a, b = _float("solve_triangular", a, b)
    return _vectorized_solve("solve_triangular", a, b, lambda a, b: lin.triangular_solve(
        a, b, left_side=True, lower=lower, transpose_a=code > 0, conjugate_a=code == 2,
        unit_diagonal=unit_diagonal))


def solve(a, b, lower: bool = False, overwrite_a: bool = False, overwrite_b: bool = False,
          debug: bool = False, check_finite: bool = True, assume_a: str = "gen"):
    """``jax.scipy.linalg.solve(a, b, lower=False, ..., assume_a='gen')``: ``assume_a`` 'gen'
    (LU), 'sym' (the ``lower`` triangle mirrored, then LU) or 'pos' (Cholesky of that triangle)."""
    if assume_a not in ("gen", "sym", "her", "pos"):
        raise ValueError(f"solve: expected assume_a to be one of 'gen', 'sym', 'her' or 'pos', got {assume_a!r}")
    a, b = _float("solve", a, b)
    if assume_a == "gen":
        return _vectorized_solve("solve", a, b, fla._solve)
    mirrored = _mirror_triangle(a, lower, hermitian=assume_a != "sym")
    if assume_a == "pos":
        return cho_solve(cho_factor(mirrored, lower=True), b)
    return _vectorized_solve("solve", mirrored, b, fla._solve)


def _mirror_triangle(a: Any, lower: bool, hermitian: bool) -> Any:
    """The symmetric (``hermitian``: Hermitian) matrix with ``a``'s lower (upper) triangle."""
    part = fnp.tril(a) if lower else fnp.triu(a)
    strict = fnp.tril(a, -1) if lower else fnp.triu(a, 1)
    return part + (_H(strict) if hermitian else _mT(strict))


# --- LU ----------------------------------------------------------------------------------------------

def lu(a, permute_l: bool = False, overwrite_a: bool = False, check_finite: bool = True):
    """``jax.scipy.linalg.lu(a, permute_l=False, ...)``: ``(p, l, u)`` with ``a == p @ l @ u``
    (``l`` unit lower-trapezoidal ``[m, k]``, ``u`` upper ``[k, n]``); ``(p @ l, u)`` when
    ``permute_l``. Leading dimensions are batch dimensions."""
    (a,) = _float("lu", a)
    fla._matrix("lu", a)
    lu_, _, permutation = lin.lu(a)
    m, n = _shape(a)[-2:]
    k = min(m, n)
    p = _mT(permutation_matrix(permutation, get_aval(a).dtype))
    l = fnp.tril(lu_, -1)[..., :, :k] + fnp.eye(m, k, dtype=get_aval(a).dtype)
    u = fnp.triu(lu_)[..., :k, :]
    return (p @ l, u) if permute_l else (p, l, u)


def lu_factor(a, overwrite_a: bool = False, check_finite: bool = True):
    """``jax.scipy.linalg.lu_factor(a, ...)``: ``(lu, piv)``, getrf's packed factors and its
    0-based row swaps (``piv[i]``: row ``i`` was swapped with row ``piv[i]``)."""
    (a,) = _float("lu_factor", a)
    fla._matrix("lu_factor", a)
    lu_, pivots, _ = lin.lu(a)
    return lu_, pivots


def lu_solve(lu_and_piv, b, trans: int = 0, overwrite_b: bool = False, check_finite: bool = True):
    """``jax.scipy.linalg.lu_solve((lu, piv), b, trans=0, ...)``: ``x`` with ``a @ x == b``
    (``a^T @ x == b`` for ``trans`` 1, ``a^H @ x == b`` for 2) from ``lu_factor(a)``."""
    lu_, pivots = lu_and_piv
    code = _trans_code(trans)
    lu_, b = _float("lu_solve", lu_, b)
    m = _shape(lu_)[-1]
    permutation = fla.lu_pivots_to_permutation(pivots, m)
    batch = fnp.broadcast_shapes(_shape(lu_)[:-2], _shape(permutation)[:-1])
    lu_ = fnp.broadcast_to(lu_, batch + (m, m))
    permutation = fnp.broadcast_to(permutation, batch + (m,))

    def solve_matrix(lu_b, b):
        perm = fnp.broadcast_to(permutation, _shape(b)[:-2] + (m,))
        return fla.lu_solve_core(lu_b, perm, b, code)
    return _vectorized_solve("lu_solve", lu_, b, solve_matrix)


# --- QR, SVD, eigh, inv, det ---------------------------------------------------------------------------

def qr(a, overwrite_a: bool = False, lwork: Any = None, mode: str = "full", pivoting: bool = False,
       check_finite: bool = True):
    """``jax.scipy.linalg.qr(a, ..., mode='full', pivoting=False)``: ``(q, r)`` ('full': square
    ``q``; 'economic'), or ``(r,)`` for mode 'r'."""
    if pivoting:
        raise NotImplementedError("qr: pivoting=True (column-pivoted QR) is not supported")
    if mode in ("full", "r"):
        full_matrices = True
    elif mode == "economic":
        full_matrices = False
    else:
        raise ValueError(f"Unsupported QR decomposition mode {mode!r}; use 'full', 'economic' or 'r'")
    (a,) = _float("qr", a)
    fla._matrix("qr", a)
    q, r = lin.qr(a, full_matrices=full_matrices)
    return (r,) if mode == "r" else (q, r)


def svd(a, full_matrices: bool = True, compute_uv: bool = True, overwrite_a: bool = False,
        check_finite: bool = True, lapack_driver: str = "gesdd"):
    """``jax.scipy.linalg.svd(a, full_matrices=True, compute_uv=True, ...)``: ``(u, s, vh)``
    or ``s``."""
    (a,) = _float("svd", a)
    fla._matrix("svd", a)
    return lin.svd(a, full_matrices=full_matrices, compute_uv=compute_uv)


def eigh(a, b=None, lower: bool = True, eigvals_only: bool = False, overwrite_a: bool = False,
         overwrite_b: bool = False, turbo: bool = True, eigvals: Any = None, type: int = 1,  # noqa: A002
         check_finite: bool = True):
    """``jax.scipy.linalg.eigh(a, b=None, lower=True, eigvals_only=False, ...)``: ``(w, v)``
    (eigenvalues ascending, eigenvectors in columns), or ``w``. Only ``b=None``, ``type=1``."""
    if b is not None:
        raise NotImplementedError("Only the b=None case of eigh is implemented")
    if type != 1:
        raise NotImplementedError("Only the type=1 case of eigh is implemented.")
    if eigvals is not None:
        raise NotImplementedError("Only the eigvals=None case of eigh is implemented.")
    (a,) = _float("eigh", a)
    fla._matrix("eigh", a, square=True)
    v, w = lin.eigh(a, lower=lower)
    return w if eigvals_only else (w, v)


def inv(a, overwrite_a: bool = False, check_finite: bool = True):
    """``jax.scipy.linalg.inv(a, ...)``: as ``fgrad.numpy.linalg.inv``."""
    return fla.inv(a)


def det(a, overwrite_a: bool = False, check_finite: bool = True):
    """``jax.scipy.linalg.det(a, ...)``: as ``fgrad.numpy.linalg.det``."""
    return fla.det(a)


# --- expm ------------------------------------------------------------------------------------------

_PADE = {
    3: (120.0, 60.0, 12.0, 1.0),
    5: (30240.0, 15120.0, 3360.0, 420.0, 30.0, 1.0),
    7: (17297280.0, 8648640.0, 1995840.0, 277200.0, 25200.0, 1512.0, 56.0, 1.0),
    9: (17643225600.0, 8821612800.0, 2075673600.0, 302702400.0, 30270240.0, 2162160.0, 110880.0, 3960.0,
        90.0, 1.0),
    13: (64764752532480000.0, 32382376266240000.0, 7771770303897600.0, 1187353796428800.0, 129060195264000.0,
         10559470521600.0, 670442572800.0, 33522128640.0, 1323241920.0, 40840800.0, 960960.0, 16380.0, 182.0,
         1.0),
}
#: per dtype: (largest 1-norm handled without squaring, the 1-norm bounds between the Padé degrees, degrees)
_PADE_PLAN = {
    np.dtype(np.float64): (5.371920351148152, (0.01495585217958292, 0.253939833006323, 0.9504178996162932,
                                               2.097847961257068), (3, 5, 7, 9, 13)),
    np.dtype(np.float32): (3.92572478313866, (0.4258730016922831, 1.880152677804762), (3, 5, 7)),
}


def _pade(degree: int):
    """``(U, V)`` of the ``[degree/degree]`` Padé approximant: ``exp(A) ~ (V - U)^-1 (V + U)``."""
    b = _PADE[degree]

    def approximant(A):
        ident = fnp.eye(A.shape[-1], dtype=A.dtype)
        A2 = A @ A
        if degree == 13:
            A4 = A2 @ A2
            A6 = A4 @ A2
            U = A @ (A6 @ (b[13] * A6 + b[11] * A4 + b[9] * A2) + b[7] * A6 + b[5] * A4 + b[3] * A2 + b[1] * ident)
            V = A6 @ (b[12] * A6 + b[10] * A4 + b[8] * A2) + b[6] * A6 + b[4] * A4 + b[2] * A2 + b[0] * ident
            return U, V
        powers = [ident, A2]
        while len(powers) < (degree + 1) // 2:
            powers.append(powers[-1] @ A2)
        U = A @ sum(b[2 * i + 1] * p for i, p in enumerate(powers))
        V = sum(b[2 * i] * p for i, p in enumerate(powers))
        return U, V
    return approximant


def _expm_one(A: Any, upper_triangular: bool, max_squarings: int) -> Any:
    """``expm`` of one square matrix (JAX's algorithm: scale, Padé, solve, square)."""
    plan = _PADE_PLAN.get(dtypes.real_dtype(get_aval(A).dtype))    # complex: its parts' plan
    if plan is None:
        raise TypeError(f"expm: supports float32, float64, complex64 and complex128 matrices, got "
                        f"{get_aval(A).str_short()}")
    maxnorm, bounds, degrees = plan
    A_L1 = fla.norm(A, 1)
    n_squarings = fnp.maximum(0.0, fnp.floor(fnp.log2(A_L1 / maxnorm)))
    A = A / fnp.power(2.0, n_squarings).astype(A.dtype)
    index = fnp.sum(fnp.asarray(bounds, A_L1.dtype) <= A_L1).astype(np.int32)
    U, V = lax.switch(index, [_pade(d) for d in degrees], A)
    P, Q = U + V, V - U

    def compute(A, P, Q):
        R = solve_triangular(Q, P) if upper_triangular else fla.solve(Q, P)
        return lax.scan(lambda c, i: (lax.cond(i < n_squarings, lambda x: x @ x, lambda x: x, c), None),
                        R, fnp.arange(max_squarings, dtype=n_squarings.dtype))[0]
    return lax.cond(n_squarings > max_squarings, lambda A, P, Q: fnp.full_like(A, np.nan), compute, A, P, Q)


def expm(A, *, upper_triangular: bool = False, max_squarings: int = 16):
    """``jax.scipy.linalg.expm(A, *, upper_triangular=False, max_squarings=16)``: the matrix
    exponential of square matrices (leading dimensions are batch dimensions); NaN where more
    than ``max_squarings`` squarings would be needed."""
    (A,) = _float("expm", A)
    shape = _shape(A)
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise ValueError(f"Expected A to be a (batched) square matrix, got A.shape={shape}.")
    one = lambda x: _expm_one(x, upper_triangular, int(max_squarings))  # noqa: E731
    if len(shape) == 2:
        return one(A)
    flat = fnp.reshape(A, (-1,) + shape[-2:])
    return fnp.reshape(vmap(one)(flat), shape)


def expm_frechet(A, E, *, method: str | None = None, compute_expm: bool = True):
    """``jax.scipy.linalg.expm_frechet(A, E, *, method=None, compute_expm=True)``: the Fréchet
    derivative of ``expm`` at ``A`` in the direction ``E`` (its jvp), with ``expm(A)`` first
    when ``compute_expm``."""
    A, E = _float("expm_frechet", A, E)
    for name, x in (("A", A), ("E", E)):
        if len(_shape(x)) < 2 or _shape(x)[-1] != _shape(x)[-2]:
            raise ValueError(f"expected {name} to be a (batched) square matrix, got {name}.shape={_shape(x)}")
    if _shape(A) != _shape(E):
        raise ValueError(f"expected A and E to be the same shape, got A.shape={_shape(A)} E.shape={_shape(E)}")
    expm_A, frechet = jvp(lambda x: expm(x), (A,), (E,))
    return (expm_A, frechet) if compute_expm else frechet


# --- polar ---------------------------------------------------------------------------------------------

def polar(a, side: str = "right", *, method: str = "qdwh", eps: float | None = None,
          max_iterations: int | None = None):
    """``jax.scipy.linalg.polar(a, side='right', *, method='qdwh', ...)``: ``(u, p)`` with ``u``
    orthonormal and ``p`` positive semi-definite, ``a == u @ p`` ('right') or ``p @ u`` ('left').
    fgrad computes it from the SVD for either ``method`` (JAX's 'svd' method)."""
    if side not in ("right", "left"):
        raise ValueError("The argument `side` must be either 'right' or 'left'.")
    if method not in ("qdwh", "svd"):
        raise ValueError(f"polar: unknown method {method!r}; use 'qdwh' or 'svd'")
    (a,) = _float("polar", a)
    if len(_shape(a)) < 2:
        raise ValueError("The input `a` must be at least a 2-D array.")
    u, s, vh = lin.svd(a, full_matrices=False)
    unitary = u @ vh
    s = s.astype(get_aval(a).dtype)
    if side == "right":
        return unitary, (_H(vh) * s[..., None, :]) @ vh
    return unitary, (u * s[..., None, :]) @ _H(u)


# --- block_diag --------------------------------------------------------------------------------------

def block_diag(*arrs):
    """``jax.scipy.linalg.block_diag(*arrs)``: the arrays (at most 2-D) on the diagonal of one
    matrix, zeros elsewhere."""
    if not arrs:
        arrs = (fnp.zeros((1, 0)),)
    arrs = [fnp.asarray(a) for a in arrs]
    dtype = fnp.result_type(*arrs)
    bad = [i for i, a in enumerate(arrs) if a.ndim > 2]
    if bad:
        raise ValueError(f"Arguments to block_diag must have at most 2 dimensions, got shape {arrs[bad[0]].shape} "
                         f"at argument {bad[0]}.")
    mats = [fnp.atleast_2d(a).astype(dtype) for a in arrs]
    total = sum(m.shape[1] for m in mats)
    rows, start = [], 0
    for m in mats:
        cols = m.shape[1]
        rows.append(fnp.pad(m, ((0, 0), (start, total - cols - start))))
        start += cols
    return fnp.concatenate(rows, axis=0)


# --- qr_multiply ---------------------------------------------------------------------------------------

def _pivoted_qr_one(a: np.ndarray) -> tuple:
    q, r, p = scipy.linalg.qr(a, mode="economic", pivoting=True, check_finite=False)
    return q, np.triu(r), p.astype(np.int32)


def _pivoted_qr_host(a: np.ndarray) -> tuple:
    m, n = a.shape[-2:]
    k = min(m, n)
    outs = (np.empty(a.shape[:-1] + (k,), a.dtype), np.empty(a.shape[:-2] + (k, n), a.dtype),
            np.empty(a.shape[:-2] + (n,), np.int32))
    for index in np.ndindex(*a.shape[:-2]):
        for out, value in zip(outs, _pivoted_qr_one(a[index])):
            out[index] = value
    return outs


def _pivoted_qr(a: Any) -> tuple:
    """LAPACK's geqp3 (through SciPy, a host callback): economic ``q``, ``r`` and the 0-based
    column permutation ``p`` with ``a[..., p] == q @ r``."""
    m, n = _shape(a)[-2:]
    k = min(m, n)
    dtype = get_aval(a).dtype
    shapes = [ShapeDtypeStruct(_shape(a)[:-1] + (k,), dtype), ShapeDtypeStruct(_shape(a)[:-2] + (k, n), dtype),
              ShapeDtypeStruct(_shape(a)[:-2] + (n,), np.int32)]
    return tuple(pure_callback(_pivoted_qr_host, shapes, a, vmap_method="expand_dims"))


_pivoted_qr = without_derivative("geqp3", _pivoted_qr)


def _check_qr_multiply_shapes(a_shape: tuple, c_shape: tuple, left: bool) -> None:
    m, n = a_shape[-2:]
    k = min(m, n)
    if left and c_shape[-2] != k:
        raise ValueError(f"Array shapes are not compatible for Q @ c operation: a has shape {a_shape} so Q has {k} "
                         f"columns, but c has {c_shape[-2]} rows (expected {k}).")
    if not left and c_shape[-1] != m:
        raise ValueError(f"Array shapes are not compatible for c @ Q operation: a has shape {a_shape} so Q has {m} "
                         f"rows, but c has {c_shape[-1]} columns (expected {m}).")


def qr_multiply(a, c, mode: str = "right", pivoting: bool = False, conjugate: bool = False,
                overwrite_a: bool = False, overwrite_c: bool = False):
    """``jax.scipy.linalg.qr_multiply(a, c, mode='right', pivoting=False, conjugate=False, ...)``:
    ``(c @ Q, r)`` ('right'; ``c [..., p, m]``) or ``(Q @ c, r)`` ('left'; ``c [..., k, p]``) for
    the economic QR ``a == Q @ r`` (``k = min(m, n)``), ``Q`` conjugated when ``conjugate``; a
    1-D ``c`` is a row ('right') or column ('left') and the product comes back raveled. With
    ``pivoting``, column-pivoted QR (``a[..., p] == Q @ r``) and ``(product, r, p)``."""
    if mode not in ("right", "left"):
        raise ValueError(f"mode must be 'right' or 'left', got {mode!r}")
    a, c = _float("qr_multiply", a, c)
    fla._matrix("qr_multiply", a)
    left = mode == "left"
    onedim = len(_shape(c)) == 1
    if onedim:
        c = c[:, None] if left else c[None, :]
    _check_qr_multiply_shapes(_shape(a), _shape(c), left)
    batch = fnp.broadcast_shapes(_shape(a)[:-2], _shape(c)[:-2])
    a, c = fnp.broadcast_to(a, batch + _shape(a)[-2:]), fnp.broadcast_to(c, batch + _shape(c)[-2:])
    q, r, *p = _pivoted_qr(a) if pivoting else lin.qr(a, full_matrices=False)
    if conjugate:
        q = fnp.conj(q)
    product = q @ c if left else c @ q
    if onedim:
        product = fnp.ravel(product)
    return (product, r, p[0]) if pivoting else (product, r)
