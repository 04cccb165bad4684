"""``fgrad.numpy.linalg``: JAX's ``jax.numpy.linalg`` over the decomposition primitives of
``fgrad.ops.linalg`` (cholesky, triangular_solve, lu, qr, eigh, svd) and the array API.

Every function takes batches of matrices (leading dimensions) of float32, float64, complex64 or
complex128 values and promotes integer inputs to the default float, as JAX does (complex
matrices: conjugate transposes where real ones transpose; ``slogdet``'s sign is complex, its
log real; eigenvalues of ``eigh`` and singular values are real). Gradients come from the primitives' rules, plus JAX's custom
rules where JAX has one: ``solve`` (one LU factorisation serves the value and the derivative),
``det`` (the cofactor rule, right at singular matrices), ``slogdet`` and ``pinv``.
"""
from __future__ import annotations

import builtins
import math
import operator
from collections import namedtuple
from typing import Any, Sequence

import numpy as np

from fgrad import lax
from fgrad.core import dtypes
from fgrad.ops import eig as eig_ops
from fgrad.core.trace import get_aval
from fgrad.numpy import _creation as cr, _linalg as la, _manip as mp, _math as mt, _reductions as rd, _sorting as so
from fgrad.numpy._util import canonical_axis, promote, promote_float, static_int, to_array
from fgrad.lax.linalg import lu_pivots_to_permutation  # noqa: F401  (fgrad.numpy.linalg's name too)
from fgrad.ops import linalg as lin
from fgrad.ops.contraction import canonical_precision
from fgrad.ops.linalg_rules import lu_solve, permutation_matrix
from fgrad.transforms.custom import custom_jvp

__all__ = ["cholesky", "qr", "svd", "svdvals", "eigh", "eigvalsh", "solve", "inv", "det", "slogdet", "lstsq",
           "pinv", "matrix_power", "matrix_rank", "norm", "vector_norm", "matrix_norm", "cond", "trace",
           "diagonal", "outer", "cross", "vecdot", "matmul", "tensordot", "matrix_transpose", "tensorinv",
           "tensorsolve", "multi_dot", "eig", "eigvals", "EigResult", "EighResult", "QRResult", "SVDResult", "SlogdetResult"]

EighResult = namedtuple("EighResult", ["eigenvalues", "eigenvectors"])
EigResult = namedtuple("EigResult", ["eigenvalues", "eigenvectors"])
QRResult = namedtuple("QRResult", ["Q", "R"])
SVDResult = namedtuple("SVDResult", ["U", "S", "Vh"])
SlogdetResult = namedtuple("SlogdetResult", ["sign", "logabsdet"])


# --- operands --------------------------------------------------------------------------------------

def _shape(x: Any) -> tuple:
    return get_aval(x).shape


def _dtype(x: Any) -> np.dtype:
    return get_aval(x).dtype


def _matrix(op: str, a: Any, square: bool = False) -> Any:
    """``a`` as a float (batch of) matrix: rank >= 2, square when ``square``."""
    a = promote_float(f"jnp.linalg.{op}", a)
    shape = _shape(a)
    if len(shape) < 2:
        raise ValueError(f"{op}: needs a matrix (or a batch of matrices, shape [..., m, n]), got shape {shape}")
    if square and shape[-1] != shape[-2]:
        raise ValueError(f"{op}: needs square matrices (shape [..., n, n]), got shape {shape}")
    return a


def _floats(op: str, *xs: Any) -> list:
    """``xs`` promoted to one floating dtype (shapes untouched)."""
    return promote(op, *xs, to_float=True, shape=False)


def _mT(x: Any) -> Any:
    return mp.matrix_transpose(x)


def _H(x: Any) -> Any:
    """The conjugate transpose of the last two axes (the transpose of real matrices)."""
    return lin.adjoint(x)


def _is_complex(x: Any) -> bool:
    return dtypes.is_complex(_dtype(x))


def _mm(a: Any, b: Any) -> Any:
    return la.matmul(a, b)


def _broadcast_batch(*xs: Any) -> list:
    """Matrices ``[..., m, n]`` with their leading dimensions broadcast to one batch shape."""
    batch = mp.broadcast_shapes(*[_shape(x)[:-2] for x in xs])
    return [mp.broadcast_to(x, tuple(batch) + _shape(x)[-2:]) for x in xs]


def _eye(n: int, dtype: Any, batch: tuple = ()) -> Any:
    return mp.broadcast_to(cr.eye(n, dtype=dtype), tuple(batch) + (n, n))


# --- decompositions --------------------------------------------------------------------------------

def cholesky(a, *, upper: bool = False, symmetrize_input: bool = True):
    """``jnp.linalg.cholesky(a, *, upper=False, symmetrize_input=True)``: ``L`` with
    ``a == L @ L^H`` (``U`` with ``a == U^H @ U`` when ``upper``); NaN where ``a`` is not
    positive definite."""
    a = _matrix("cholesky", a, square=True)
    L = lin.cholesky(a, symmetrize_input=symmetrize_input)
    return _H(L) if upper else L


def qr(a, mode: str = "reduced"):
    """``jnp.linalg.qr(a, mode='reduced')``: ``QRResult(Q, R)`` ('reduced' / 'full': economic,
    'complete': square ``Q``), or ``R`` alone for mode 'r'."""
    a = _matrix("qr", a)
    if mode in ("reduced", "r", "full"):
        full_matrices = False
    elif mode == "complete":
        full_matrices = True
    elif mode == "raw":
        raise NotImplementedError("qr: mode='raw' (Householder reflectors) is not supported; use 'reduced', "
                                  "'complete' or 'r'")
    else:
        raise ValueError(f"Unsupported QR decomposition mode {mode!r}; use 'reduced', 'complete' or 'r'")
    q, r = lin.qr(a, full_matrices=full_matrices)
    return r if mode == "r" else QRResult(q, r)


def _hermitian_svd(a: Any, compute_uv: bool):
    """The SVD of a symmetric ``a`` from its eigendecomposition (JAX's ``hermitian=True``)."""
    v, w = lin.eigh(a)
    s = mt.abs(w)
    if not compute_uv:
        return mp.flip(lax.sort(s, dimension=-1), axis=-1)
    order = lax.broadcasted_iota(np.int32, _shape(s), len(_shape(s)) - 1)
    s, order, sign = lax.sort([s, order, mt.sign(w)], dimension=len(_shape(s)) - 1, num_keys=1)
    s, order, sign = (mp.flip(x, axis=-1) for x in (s, order, sign))
    u = _mm(v, _mT(permutation_matrix(order, _dtype(v))))          # the columns of v, reordered
    vh = _H(mt.multiply(u, mp.expand_dims(sign, -2).astype(_dtype(u))))
    return SVDResult(u, s, vh)


def svd(a, full_matrices: bool = True, compute_uv: bool = True, hermitian: bool = False,
        subset_by_index: Any = None):
    """``jnp.linalg.svd(a, full_matrices=True, compute_uv=True, hermitian=False)``:
    ``SVDResult(U, S, Vh)`` with ``S`` descending, or ``S`` alone when not ``compute_uv``."""
    a = _matrix("svd", a)
    if subset_by_index is not None:
        raise NotImplementedError("svd: subset_by_index is not supported; slice the full result")
    if hermitian:
        return _hermitian_svd(a, compute_uv)
    if compute_uv:
        return SVDResult(*lin.svd(a, full_matrices=full_matrices, compute_uv=True))
    return lin.svd(a, full_matrices=full_matrices, compute_uv=False)


def svdvals(x, /):
    """``jnp.linalg.svdvals(x)``: the singular values, descending."""
    return svd(x, compute_uv=False)


def _uplo_lower(UPLO: Any) -> bool:
    if UPLO is None or UPLO == "L":
        return True
    if UPLO == "U":
        return False
    raise ValueError(f"UPLO must be one of None, 'L', or 'U', got {UPLO!r}")


def eigh(a, UPLO: str | None = None, symmetrize_input: bool = True):
    """``jnp.linalg.eigh(a, UPLO=None, symmetrize_input=True)``:
    ``EighResult(eigenvalues, eigenvectors)``, eigenvalues ascending, eigenvectors in columns."""
    a = _matrix("eigh", a, square=True)
    v, w = lin.eigh(a, lower=_uplo_lower(UPLO), symmetrize_input=symmetrize_input)
    return EighResult(w, v)


def eig(a):
    """``jnp.linalg.eig(a)``: ``EigResult(eigenvalues, eigenvectors)`` of general square matrices,
    complex (complex64 for float32 input), each eigenvector a unit column (LAPACK's geev).
    Eigenvalues differentiate; eigenvectors raise ``NotImplementedError`` under ``grad``."""
    a = promote_float("eig", a)
    _check_eig_operand(a)
    w, v = eig_ops.eig(a, compute_left_eigenvectors=False, compute_right_eigenvectors=True)
    return EigResult(w, v)


def eigvals(a):
    """``jnp.linalg.eigvals(a)``: the (complex) eigenvalues of general square matrices."""
    a = promote_float("eigvals", a)
    _check_eig_operand(a)
    return eig_ops.eig(a, compute_left_eigenvectors=False, compute_right_eigenvectors=False)[0]


def _check_eig_operand(a) -> None:
    shape = _shape(a)
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise ValueError(f"eig: the last two axes must be square, got shape {shape}")


def eigvalsh(a, UPLO: str | None = "L", *, symmetrize_input: bool = True):
    """``jnp.linalg.eigvalsh(a, UPLO='L', *, symmetrize_input=True)``: eigenvalues, ascending."""
    return eigh(a, UPLO, symmetrize_input=symmetrize_input).eigenvalues


# --- solving with LU -------------------------------------------------------------------------------

lu_solve_core = lu_solve    # a^-1 b or a^-T b from lu(a) (fgrad.ops.linalg_rules)


@custom_jvp
def _solve(a, b):
    lu, _, permutation = lin.lu(a)
    return lu_solve_core(lu, permutation, b)


@_solve.defjvp
def _solve_jvp(primals, tangents):
    """``dx = a^-1 (db - da x)``, reusing the factorisation of the value."""
    (a, b), (da, db) = primals, tangents
    lu, _, permutation = lin.lu(a)
    x = lu_solve_core(lu, permutation, b)
    return x, lu_solve_core(lu, permutation, mt.subtract(db, _mm(da, x)))


def solve(a, b):
    """``jnp.linalg.solve(a, b)``: ``x`` with ``a @ x == b``; ``b`` is a vector ``[m]`` or
    matrices ``[..., m, k]`` whose leading dimensions broadcast against ``a``'s."""
    a, b = _floats("solve", a, b)
    sa, sb = _shape(a), _shape(b)
    if len(sa) < 2 or sa[-1] != sa[-2]:
        raise ValueError(f"solve: a must be square matrices [..., m, m], got a.shape={sa}")
    if len(sb) > 1 and len(sa) == len(sb) + 1 and sa[-1] == sb[-1] and sa[-1] != sb[-2]:
        raise ValueError(f"Invalid shapes for solve: {sa}, {sb}. A batch of vectors b is not accepted (as "
                         "in JAX >= 0.5): use solve(a, b[..., None])[..., 0]")
    vector = len(sb) == 1
    if vector:
        b = mp.expand_dims(b, -1)
    if len(sb) == 0 or _shape(b)[-2] != sa[-1]:
        raise ValueError(f"solve: b must have shape [{sa[-1]}] or [..., {sa[-1]}, k] for a of shape {sa}, "
                         f"got {sb}")
    x = _solve(*_broadcast_batch(a, b))
    return x[..., 0] if vector else x


def inv(a):
    """``jnp.linalg.inv(a)``: the inverse of square matrices (inf/NaN where singular)."""
    a = _matrix("inv", a, square=True)
    shape = _shape(a)
    return solve(a, _eye(shape[-1], _dtype(a), shape[:-2]))


# --- determinants ----------------------------------------------------------------------------------

def _lu_sign(pivots: Any, dtype: Any) -> Any:
    """(-1) ** (the number of row swaps getrf made)."""
    k = _shape(pivots)[-1]
    swaps = rd.count_nonzero(mt.not_equal(pivots, cr.arange(k, dtype=np.int32)), axis=-1)
    return mt.subtract(1, mt.multiply(2, mt.remainder(swaps, 2))).astype(dtype)


def _last_corner(n: int) -> np.ndarray:
    mask = np.zeros((n, n), bool)
    mask[-1, -1] = True
    return mask


def _cofactor_solve(a: Any, b: Any) -> tuple[Any, Any]:
    """``(det(a), adj(a) @ b)``, finite where ``a`` is singular (JAX's ``_cofactor_solve``)."""
    n = _shape(a)[-1]
    if n == 1:
        return a[..., 0, 0], b
    lu, pivots, permutation = lin.lu(a)
    dtype = _dtype(a)
    diag = mp.diagonal(lu, axis1=-2, axis2=-1)
    sign = _lu_sign(pivots, dtype)
    det_all = mt.multiply(rd.prod(diag, axis=-1), sign)
    det_leading = mt.multiply(rd.prod(diag[..., :-1], axis=-1), sign)
    lu = so.where(_last_corner(n), mt.divide(1.0, det_leading)[..., None, None], lu)
    ones = cr.ones(_shape(b)[:-1] + (1,), dtype)
    probe = lin.triangular_solve(lu, ones, left_side=True, lower=False)
    singular = rd.any(mt.logical_not(mt.isfinite(probe)), axis=(-2, -1))[..., None, None]
    x = so.where(singular, 0.0, b)
    x = _mm(permutation_matrix(permutation, dtype), x)
    x = lin.triangular_solve(lu, x, left_side=True, lower=True, unit_diagonal=True)
    x = mp.concatenate([mt.multiply(x[..., :-1, :], det_all[..., None, None]), x[..., -1:, :]], axis=-2)
    x = lin.triangular_solve(lu, x, left_side=True, lower=False)
    return det_all, so.where(singular, 0.0, x)


@custom_jvp
def _det_lu(a):
    sign, logdet = slogdet(a)
    return mt.multiply(sign, mt.exp(logdet))


@_det_lu.defjvp
def _det_lu_jvp(primals, tangents):
    (a,), (da,) = primals, tangents
    y, z = _cofactor_solve(a, da)
    return y, rd.trace(z, axis1=-2, axis2=-1)


def _det_2x2(a: Any) -> Any:
    return mt.subtract(a[..., 0, 0] * a[..., 1, 1], a[..., 0, 1] * a[..., 1, 0])


def _det_3x3(a: Any) -> Any:
    def e(i, j):
        return a[..., i, j]
    return (e(0, 0) * e(1, 1) * e(2, 2) + e(0, 1) * e(1, 2) * e(2, 0) + e(0, 2) * e(1, 0) * e(2, 1)
            - e(0, 2) * e(1, 1) * e(2, 0) - e(0, 0) * e(1, 2) * e(2, 1) - e(0, 1) * e(1, 0) * e(2, 2))


def det(a):
    """``jnp.linalg.det(a)``: determinants of square matrices (closed forms for 2x2 and 3x3,
    LU otherwise; the gradient is the cofactor matrix, also where ``a`` is singular)."""
    a = _matrix("det", a, square=True)
    n = _shape(a)[-1]
    if n == 2:
        return _det_2x2(a)
    if n == 3:
        return _det_3x3(a)
    return _det_lu(a)


def _slogdet_small_value(a: Any) -> tuple[Any, Any]:
    d = a[..., 0, 0] if _shape(a)[-1] == 1 else _det_2x2(a)
    return mt.sign(d), mt.log(mt.abs(d))


@custom_jvp
def _slogdet_small(a):
    return _slogdet_small_value(a)


@_slogdet_small.defjvp
def _slogdet_small_jvp(primals, tangents):
    (x,), (g,) = primals, tangents
    sign, logdet = _slogdet_small(x)
    if _shape(x)[-1] == 1:
        dlog = mt.divide(g[..., 0, 0], x[..., 0, 0])
    else:
        cof = (g[..., 0, 0] * x[..., 1, 1] - g[..., 0, 1] * x[..., 1, 0] - g[..., 1, 0] * x[..., 0, 1]
               + g[..., 1, 1] * x[..., 0, 0])
        dlog = mt.divide(cof, _det_2x2(x))
    return (sign, logdet), _slogdet_tangents(sign, dlog)


def _slogdet_tangents(sign: Any, dlog: Any) -> tuple[Any, Any]:
    """``(d sign, d logabsdet)`` from ``dlog = d log det``: for complex matrices the imaginary
    part turns the sign (JAX's rule), the real part is the log's; for real ones the sign is flat."""
    if not _is_complex(dlog):
        return cr.zeros_like(sign), dlog
    real = mt.real(dlog)
    return mt.multiply(mt.subtract(dlog, real.astype(_dtype(dlog))), sign), real


def _slogdet_lu_value(a: Any) -> tuple[Any, Any]:
    lu, pivots, _ = lin.lu(a)
    dtype = _dtype(a)
    diag = mp.diagonal(lu, axis1=-2, axis2=-1)
    is_zero = rd.any(mt.equal(diag, 0), axis=-1)
    if _is_complex(a):       # the product of the pivots' phases
        diag_sign = rd.prod(mt.divide(diag, mt.abs(diag).astype(dtype)), axis=-1)
    else:
        negative = rd.count_nonzero(mt.less(diag, 0), axis=-1)
        diag_sign = mt.subtract(1, mt.multiply(2, mt.remainder(negative, 2))).astype(dtype)
    sign = mt.multiply(_lu_sign(pivots, dtype), diag_sign)
    sign = so.where(is_zero, 0.0, sign).astype(dtype)
    logdet = so.where(is_zero, -np.inf, rd.sum(mt.log(mt.abs(diag)), axis=-1)).astype(dtypes.real_dtype(dtype))
    return sign, logdet


def _slogdet_qr_value(a: Any) -> tuple[Any, Any]:
    if _is_complex(a):
        raise NotImplementedError("slogdet method='qr' not implemented for complex inputs (as in JAX); "
                                  "use method='lu'")
    q, r = lin.qr(a, full_matrices=False)
    diag = mp.diagonal(r, axis1=-2, axis2=-1)
    sign_q, _ = _slogdet_lu_value(q)
    sign = mt.multiply(sign_q, rd.prod(mt.sign(diag), axis=-1))
    return sign, rd.sum(mt.log(mt.abs(diag)), axis=-1)


def _slogdet_jvp(value):
    def rule(primals, tangents):
        (x,), (g,) = primals, tangents
        sign, logdet = value(x)
        lu, _, permutation = lin.lu(x)        # not the custom solve: g is a tangent
        return (sign, logdet), _slogdet_tangents(sign, rd.trace(lu_solve(lu, permutation, g), axis1=-2, axis2=-1))
    return rule


_slogdet_lu = custom_jvp(_slogdet_lu_value)
_slogdet_lu.defjvp(_slogdet_jvp(_slogdet_lu_value))
_slogdet_qr = custom_jvp(_slogdet_qr_value)
_slogdet_qr.defjvp(_slogdet_jvp(_slogdet_qr_value))


def slogdet(a, *, method: str | None = None):
    """``jnp.linalg.slogdet(a, *, method=None)``: ``SlogdetResult(sign, logabsdet)`` with
    ``det(a) == sign * exp(logabsdet)``; ``method`` 'lu' (default) or 'qr'."""
    a = _matrix("slogdet", a, square=True)
    n = _shape(a)[-1]
    if method is None or method == "lu":
        return SlogdetResult(*(_slogdet_small(a) if n in (1, 2) else _slogdet_lu(a)))
    if method == "qr":
        return SlogdetResult(*_slogdet_qr(a))
    raise ValueError(f"Unknown slogdet method {method!r}. Supported methods are 'lu' (None) and 'qr'.")


# --- least squares, pseudo-inverse, rank, powers ---------------------------------------------------

def lstsq(a, b, rcond: float | None = None, *, numpy_resid: bool = False):
    """``jnp.linalg.lstsq(a, b, rcond=None, *, numpy_resid=False)``: ``(x, residuals, rank, s)``
    minimising ``|a @ x - b|`` through the SVD (2-D ``a``; ``b`` 1-D or 2-D)."""
    a, b = _floats("lstsq", a, b)
    sa, sb = _shape(a), _shape(b)
    if len(sa) != 2:
        raise TypeError(f"lstsq: {len(sa)}-dimensional array given. Array must be two-dimensional")
    if len(sb) not in (1, 2):
        raise TypeError(f"lstsq: {len(sb)}-dimensional array given. b must be one or two-dimensional")
    if sa[0] != sb[0]:
        raise ValueError(f"lstsq: leading dimensions of input arrays must match, got {sa} and {sb}")
    vector = len(sb) == 1
    b = b[:, None] if vector else b
    m, n = sa
    dtype = _dtype(a)
    if m == 0 or n == 0:
        s, rank = cr.zeros((0,), dtypes.real_dtype(dtype)), cr.asarray(0, dtype=np.int32)
        x = cr.zeros((n, _shape(b)[1]), dtype)
    else:
        eps = float(np.finfo(dtype).eps)
        rcond = eps * max(n, m) if rcond is None else so.where(mt.less(rcond, 0), eps, rcond)
        u, s, vt = svd(a, full_matrices=False)
        mask = mt.logical_and(mt.greater(s, 0), mt.greater_equal(s, mt.multiply(rcond, s[0]).astype(_dtype(s))))
        rank = rd.sum(mask, dtype=np.int32)
        s_inv = so.where(mask, mt.divide(1.0, so.where(mask, s, 1.0)), 0.0).astype(dtype)[:, None]
        x = _mm(_H(vt), mt.multiply(s_inv, _mm(_H(u), b)))
    if numpy_resid and (int(rank) < n or m <= n):    # NumPy's convention (eager only, as in JAX)
        resid = cr.zeros((0,), dtypes.real_dtype(dtype))
    else:
        resid = rd.sum(_abs_squared(mt.subtract(b, _mm(a, x))), axis=0)
    return (x[:, 0] if vector else x), resid, rank, s


def _pinv_value(a: Any, rtol: Any, hermitian: bool) -> Any:
    m, n = _shape(a)[-2:]
    if m == 0 or n == 0:
        return cr.zeros(_shape(a)[:-2] + (n, m), _dtype(a))
    if rtol is None:
        rtol = 10.0 * max(m, n) * float(np.finfo(_dtype(a)).eps)
    a = mt.conj(a) if _is_complex(a) else a        # as JAX: V S^-1 U^H from the SVD of conj(a)
    u, s, vh = svd(a, full_matrices=False, hermitian=hermitian)
    rtol = cr.asarray(rtol, dtype=_dtype(s))
    cutoff = mt.multiply(rtol[..., None], s[..., 0:1])
    s = so.where(mt.greater(s, cutoff), s, np.inf).astype(_dtype(a))
    return _mm(_mT(vh), mt.divide(_mT(u), s[..., :, None]))


def _pinv_jvp(rtol, hermitian, primals, tangents):
    (a,), (da,) = primals, tangents
    p = _pinv(a, rtol, hermitian)
    if hermitian:
        a, da = lin.symmetrize(a), lin.symmetrize(da)
    s = _mm(p, _mm(_H(p), _H(da)))
    t = _mm(_H(da), _mm(_H(p), p))
    dp = mt.add(mt.subtract(mt.negative(_mm(p, _mm(da, p))), mt.subtract(_mm(s, _mm(a, p)), s)),
                mt.subtract(t, _mm(p, _mm(a, t))))
    return p, dp


_pinv = custom_jvp(_pinv_value, nondiff_argnums=(1, 2))
_pinv.defjvp(_pinv_jvp)


def pinv(a, rtol=None, hermitian: bool = False, *, rcond=None):
    """``jnp.linalg.pinv(a, rtol=None, hermitian=False, *, rcond=None)``: the Moore-Penrose
    pseudo-inverse; singular values below ``rtol * max(s)`` count as zero."""
    if rcond is not None:
        if rtol is not None:
            raise ValueError("pinv: only one of rtol and rcond may be specified.")
        rtol = rcond
    a = _matrix("pinv", a)
    return _pinv(a, rtol, bool(hermitian))


def matrix_power(a, n: int):
    """``jnp.linalg.matrix_power(a, n)``: ``a`` multiplied by itself ``n`` times (by squaring);
    ``n < 0`` powers the inverse, ``n == 0`` gives the identity."""
    a = to_array(a, "matrix_power")
    shape = _shape(a)
    if len(shape) < 2:
        raise TypeError(f"matrix_power: {len(shape)}-dimensional array given. Array must be at least "
                        "two-dimensional")
    if shape[-1] != shape[-2]:
        raise TypeError("matrix_power: last 2 dimensions of the array must be square")
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"matrix_power: exponent must be an integer, got {n!r}") from None
    if n == 0:
        return _eye(shape[-1], _dtype(a), shape[:-2])
    if n < 0:
        a, n = inv(a), -n
    result, power = None, None
    while n > 0:
        power = a if power is None else _mm(power, power)
        n, bit = divmod(n, 2)
        if bit:
            result = power if result is None else _mm(result, power)
    return result


def matrix_rank(M, rtol=None, *, hermitian: bool = False, tol=None):
    """``jnp.linalg.matrix_rank(M, rtol=None, *, hermitian=False, tol=None)``: the number of
    singular values above ``rtol`` (default ``max(s) * max(m, n) * eps``)."""
    if tol is not None:
        if rtol is not None:
            raise ValueError("matrix_rank: only one of tol or rtol may be specified.")
        rtol = tol
    M = promote_float("matrix_rank", M)
    if len(_shape(M)) < 2:
        return rd.any(mt.not_equal(M, 0)).astype(np.int32)
    S = svd(M, full_matrices=False, compute_uv=False, hermitian=hermitian)
    if rtol is None:
        eps = float(np.finfo(_dtype(S)).eps)
        rtol = mt.multiply(rd.max(S, axis=-1), max(_shape(M)[-2:]) * eps)
    rtol = mp.expand_dims(cr.asarray(rtol, dtype=_dtype(S)), -1)
    return rd.sum(mt.greater(S, rtol), axis=-1)


# --- norms -----------------------------------------------------------------------------------------

def vector_norm(x, /, *, axis=None, keepdims: bool = False, ord=2):
    """``jnp.linalg.vector_norm(x, /, *, axis=None, keepdims=False, ord=2)``: the ``ord``-norm
    over ``axis`` (all axes by default): 2, 1, inf, -inf, 0 (count of non-zeros) or any p."""
    x = promote_float("vector_norm", x)
    if ord is None or ord == 2:
        return mt.sqrt(rd.sum(_abs_squared(x), axis=axis, keepdims=keepdims))
    if isinstance(ord, str):
        hint = " Use fgrad.numpy.inf instead." if ord in ("inf", "-inf") else ""
        raise ValueError(f"Invalid order {ord!r} for vector norm.{hint}")
    if ord == np.inf:
        return rd.max(mt.abs(x), axis=axis, keepdims=keepdims, initial=0)
    if ord == -np.inf:
        return rd.min(mt.abs(x), axis=axis, keepdims=keepdims)
    if ord == 0:
        return rd.sum(mt.not_equal(x, 0), axis=axis, keepdims=keepdims, dtype=_dtype(x))
    if ord == 1:
        return rd.sum(mt.abs(x), axis=axis, keepdims=keepdims)
    p = np.asarray(ord, _dtype(x))
    total = rd.sum(mt.power(mt.abs(x), p), axis=axis, keepdims=keepdims)
    return mt.power(total, np.asarray(1.0 / p, _dtype(x)))


def _sum_then_extreme(x, sum_axis: int, other_axis: int, keepdims: bool, largest: bool):
    """max/min over ``other_axis`` of the sums of ``|x|`` over ``sum_axis`` (the 1 / inf norms)."""
    if not keepdims and other_axis > sum_axis:
        other_axis -= 1
    sums = rd.sum(mt.abs(x), axis=sum_axis, keepdims=keepdims)
    if largest:
        return rd.max(sums, axis=other_axis, keepdims=keepdims, initial=0)
    return rd.min(sums, axis=other_axis, keepdims=keepdims)


def _matrix_norm_2d(x, ord, axis: tuple, keepdims: bool):
    row, col = axis
    if ord is None or ord in ("f", "fro"):
        return mt.sqrt(rd.sum(_abs_squared(x), axis=axis, keepdims=keepdims))
    if isinstance(ord, str) and ord != "nuc":
        raise ValueError(f"Invalid order {ord!r} for matrix norm.")
    if ord in (1, -1):
        return _sum_then_extreme(x, row, col, keepdims, largest=ord == 1)
    if ord in (np.inf, -np.inf):
        return _sum_then_extreme(x, col, row, keepdims, largest=ord == np.inf)
    if ord in ("nuc", 2, -2):
        s = svd(mp.moveaxis(x, axis, (-2, -1)), compute_uv=False)
        y = (rd.max(s, axis=-1, initial=0) if ord == 2 else rd.min(s, axis=-1) if ord == -2
             else rd.sum(s, axis=-1))
        return mp.expand_dims(y, axis) if keepdims else y
    raise ValueError(f"Invalid order {ord!r} for matrix norm.")


def _abs_squared(x):
    """``|x| ** 2`` elementwise: ``x * x`` for reals, ``real(x * conj(x))`` for complex (as JAX)."""
    if dtypes.is_complex(_dtype(x)):
        return mt.real(mt.multiply(x, mt.conj(x)))
    return mt.multiply(x, x)


def norm(x, ord=None, axis=None, keepdims: bool = False):
    """``jnp.linalg.norm(x, ord=None, axis=None, keepdims=False)``: a vector norm over one
    axis, a matrix norm over two ('fro', 'nuc', 1, -1, 2, -2, inf, -inf); with neither ``ord``
    nor ``axis``, the 2-norm of the flattened array."""
    x = promote_float("norm", x)
    ndim = len(_shape(x))
    if axis is None:
        if ord is None:
            return mt.sqrt(rd.sum(_abs_squared(x), keepdims=keepdims))
        axis = tuple(range(ndim))
    elif not isinstance(axis, tuple):
        axis = (static_int("norm", "axis", axis),)
    axis = tuple(canonical_axis("norm", a, ndim) for a in axis)   # in the given order (rows, columns)
    if len(set(axis)) != len(axis):
        raise ValueError(f"norm: repeated axis in {axis}")
    if len(axis) == 1:
        return vector_norm(x, ord=2 if ord is None else ord, axis=axis, keepdims=keepdims)
    if len(axis) == 2:
        return _matrix_norm_2d(x, ord, axis, keepdims)
    raise ValueError(f"Improper number of axes for norm: axis={axis!r}. Pass one axis to compute a "
                     "vector-norm, or two axes to compute a matrix-norm.")


def matrix_norm(x, /, *, keepdims: bool = False, ord="fro"):
    """``jnp.linalg.matrix_norm(x, /, *, keepdims=False, ord='fro')`` over the last two axes."""
    return norm(x, ord=ord, keepdims=keepdims, axis=(-2, -1))


def cond(x, p=None):
    """``jnp.linalg.cond(x, p=None)``: the condition number in the ``p`` norm (2 by default)."""
    x = _matrix("cond", x)
    if 0 in _shape(x)[-2:]:
        raise ValueError(f"jnp.linalg.cond: input array must not be empty; got shape {_shape(x)}")
    if p is None or p == 2:
        s = svdvals(x)
        return mt.divide(s[..., 0], s[..., -1])
    if p == -2:
        s = svdvals(x)
        r = mt.divide(s[..., -1], s[..., 0])
    else:
        if _shape(x)[-1] != _shape(x)[-2]:
            raise ValueError(f"jnp.linalg.cond: for p={p!r}, array must be square; got shape {_shape(x)}")
        r = mt.multiply(norm(x, ord=p, axis=(-2, -1)), norm(inv(x), ord=p, axis=(-2, -1)))
    nan_input = rd.any(mt.isnan(x), axis=(-2, -1))
    return so.where(mt.logical_and(mt.isnan(r), mt.logical_not(nan_input)), np.inf, r)


# --- the array API's linalg names ------------------------------------------------------------------

def trace(x, /, *, offset: int = 0, dtype=None):
    """``jnp.linalg.trace(x, /, *, offset=0, dtype=None)``: sums of the diagonals of the last two axes."""
    return rd.trace(x, offset=offset, axis1=-2, axis2=-1, dtype=dtype)


def diagonal(x, /, *, offset: int = 0):
    """``jnp.linalg.diagonal(x, /, *, offset=0)``: the diagonals of the last two axes."""
    return mp.diagonal(x, offset=offset, axis1=-2, axis2=-1)


def outer(x1, x2, /):
    """``jnp.linalg.outer(x1, x2)``: the outer product of two 1-D arrays."""
    x1, x2 = to_array(x1, "outer"), to_array(x2, "outer")
    if len(_shape(x1)) != 1 or len(_shape(x2)) != 1:
        raise ValueError(f"Input arrays must be one-dimensional, but they are x1.ndim={len(_shape(x1))} "
                         f"and x2.ndim={len(_shape(x2))}")
    return la.outer(x1, x2)


def cross(x1, x2, /, *, axis: int = -1):
    """``jnp.linalg.cross(x1, x2, /, *, axis=-1)``: cross products of 3-vectors along ``axis``
    (the other axes broadcast)."""
    x1, x2 = promote("cross", x1, x2, shape=False)
    s1, s2 = _shape(x1), _shape(x2)
    axis = static_int("cross", "axis", axis)
    if not s1 or not s2 or s1[axis] != 3 or s2[axis] != 3:
        raise ValueError(f"Both input arrays must be (arrays of) 3-dimensional vectors, but they have "
                         f"shapes {s1} and {s2} along axis={axis}")
    a, b = mp.moveaxis(x1, axis, -1), mp.moveaxis(x2, axis, -1)
    a, b = mp.broadcast_arrays(a, b)
    def c(v, i):
        return v[..., i]
    parts = [mt.subtract(mt.multiply(c(a, j), c(b, k)), mt.multiply(c(a, k), c(b, j)))
             for j, k in ((1, 2), (2, 0), (0, 1))]
    return mp.moveaxis(mp.stack(parts, axis=-1), -1, axis)


def vecdot(x1, x2, /, *, axis: int = -1, precision=None, preferred_element_type=None):
    """``jnp.linalg.vecdot(x1, x2, /, *, axis=-1, precision=None, preferred_element_type=None)``."""
    canonical_precision(precision, "vecdot")
    if preferred_element_type is not None:
        x1, x2 = (cr.asarray(x).astype(dtypes.canonicalize(preferred_element_type)) for x in (x1, x2))
    return la.vecdot(x1, x2, axis=axis)


def matmul(x1, x2, /, *, precision=None, preferred_element_type=None):
    """``jnp.linalg.matmul(x1, x2, /, *, precision=None, preferred_element_type=None)``."""
    return la.matmul(x1, x2, precision=precision, preferred_element_type=preferred_element_type)


def tensordot(x1, x2, /, *, axes=2, precision=None, preferred_element_type=None):
    """``jnp.linalg.tensordot(x1, x2, /, *, axes=2, precision=None, preferred_element_type=None)``."""
    return la.tensordot(x1, x2, axes, precision=precision, preferred_element_type=preferred_element_type)


def matrix_transpose(x, /):
    """``jnp.linalg.matrix_transpose(x)``: swap the last two axes."""
    return mp.matrix_transpose(x)


def tensorinv(a, ind: int = 2):
    """``jnp.linalg.tensorinv(a, ind=2)``: the inverse with respect to ``tensordot(..., ind)``."""
    a = to_array(a, "tensorinv")
    ind = operator.index(ind)
    if ind <= 0:
        raise ValueError(f"tensorinv: ind must be a positive integer; got ind={ind!r}")
    shape = _shape(a)
    contracting, batch = shape[:ind], shape[ind:]
    rows, cols = math.prod(contracting), math.prod(batch)
    if rows != cols:
        raise ValueError(f"tensorinv is only possible when the product of the first `ind` dimensions equals "
                         f"that of the remaining dimensions. got a.shape={shape} with ind={ind}.")
    return mp.reshape(inv(mp.reshape(a, (rows, cols))), (*batch, *contracting))


def tensorsolve(a, b, axes: Sequence[int] | None = None):
    """``jnp.linalg.tensorsolve(a, b, axes=None)``: ``x`` with ``tensordot(a, x, x.ndim) == b``."""
    a, b = to_array(a, "tensorsolve"), to_array(b, "tensorsolve")
    if axes is not None:
        a = mp.moveaxis(a, tuple(axes), len(axes) * (len(_shape(a)) - 1,))
    sa, sb = _shape(a), _shape(b)
    out_shape = sa[len(sb):]
    if sa[:len(sb)] != sb:
        raise ValueError(f"tensorsolve: after moving axes to the end, the leading shape of a must match the "
                         f"shape of b; got a.shape={sa}, b.shape={sb}")
    if math.prod(sb) != math.prod(out_shape):
        raise ValueError(f"tensorsolve: input arrays must have prod(a.shape[:b.ndim]) == "
                         f"prod(a.shape[b.ndim:]); got a.shape={sa}, b.ndim={len(sb)}")
    size = math.prod(sb)
    return mp.reshape(solve(mp.reshape(a, (size, size)), mp.reshape(b, (size,))), out_shape)


def _chain_order(dims: list[int]) -> list[list[int]]:
    """The cheapest parenthesisation of a matrix chain (the classic dynamic program): ``split[i][j]``."""
    n = len(dims) - 1
    cost = [[0] * n for _ in range(n)]
    split = [[0] * n for _ in range(n)]
    for length in range(1, n):
        for i in range(n - length):
            j = i + length
            cost[i][j], split[i][j] = builtins.min(
                (cost[i][k] + cost[k + 1][j] + dims[i] * dims[k + 1] * dims[j + 1], k) for k in range(i, j))
    return split


def multi_dot(arrays: Sequence[Any], *, precision=None):
    """``jnp.linalg.multi_dot(arrays, *, precision=None)``: the product of a chain of matrices
    (the first and last may be vectors), multiplied in the cheapest order."""
    canonical_precision(precision, "multi_dot")
    arrs = [to_array(a, "multi_dot") for a in arrays]
    if len(arrs) < 2:
        raise ValueError(f"multi_dot requires at least two arrays; got len(arrays)={len(arrs)}")
    ndims = [len(_shape(a)) for a in arrs]
    if ndims[0] not in (1, 2) or ndims[-1] not in (1, 2) or any(d != 2 for d in ndims[1:-1]):
        raise ValueError("multi_dot: input arrays must all be two-dimensional, except for the first and last "
                         f"array which may be 1 or 2 dimensional. Got array shapes {[_shape(a) for a in arrs]}")
    first_vec, last_vec = ndims[0] == 1, ndims[-1] == 1
    if first_vec:
        arrs[0] = arrs[0][None, :]
    if last_vec:
        arrs[-1] = arrs[-1][:, None]
    for x, y in zip(arrs[:-1], arrs[1:]):
        if _shape(x)[-1] != _shape(y)[0]:
            raise ValueError("multi_dot: last dimension of each array must match first dimension of following "
                             f"array. Got array shapes {[_shape(a) for a in arrays]}")
    split = _chain_order([_shape(arrs[0])[0]] + [_shape(a)[1] for a in arrs])

    def product(i, j):
        if i == j:
            return arrs[i]
        k = split[i][j]
        return _mm(product(i, k), product(k + 1, j))
    out = product(0, len(arrs) - 1)
    if first_vec:
        out = out[0]
    if last_vec:
        out = out[..., 0]
    return out


