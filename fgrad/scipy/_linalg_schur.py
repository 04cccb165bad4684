"""The Schur-form family of ``jax.scipy.linalg``: ``schur``, ``hessenberg``, ``rsf2csf``,
``sqrtm``, ``funm`` and ``solve_sylvester``.

``schur`` and ``hessenberg`` are LAPACK's ``gees`` and ``gehrd`` + ``orghr`` (``unghr``), as in
JAX (whose versions run on the CPU only). fgrad calls them through SciPy in a host callback
(``pure_callback``), eagerly and from inside a jitted program's native call, as ``eig`` does; on
the GPU a jitted program holding one runs on the host (``HostFallbackWarning``). They batch over
leading dimensions and under ``vmap``, and are not differentiable (``NotImplementedError``, as
JAX: neither has a JVP rule). The rest are compositions of fgrad functions, JAX's algorithms:
``sqrtm`` the recurrence on the complex Schur form, ``funm`` Parlett's recurrence, and
``solve_sylvester`` a back substitution on the two Schur forms (or the eigendecompositions).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import scipy.linalg

from fgrad import lax
from fgrad import numpy as fnp
from fgrad.callbacks import pure_callback
from fgrad.core import dtypes
from fgrad.core.types import ShapeDtypeStruct
from fgrad.numpy import linalg as fla
from fgrad.transforms.custom import custom_jvp
from fgrad.transforms.vmap import vmap

__all__ = ["schur", "hessenberg", "rsf2csf", "sqrtm", "funm", "solve_sylvester"]

_LAPACK_DTYPES = (dtypes.float32, dtypes.float64, dtypes.complex64, dtypes.complex128)


# --- host routines (SciPy's LAPACK, matrix by matrix) -------------------------------------------------

def _per_matrix(one: Callable, a: np.ndarray, n_out: int) -> tuple:
    a = np.asarray(a)
    outs = tuple(np.empty_like(a) for _ in range(n_out))
    for index in np.ndindex(*a.shape[:-2]):
        for out, value in zip(outs, one(a[index])):
            out[index] = value
    return outs


def _schur_one(a: np.ndarray) -> tuple:
    if a.shape[-1] == 0:
        return a, a
    try:
        return scipy.linalg.schur(a, output="complex" if a.dtype.kind == "c" else "real", check_finite=False)
    except scipy.linalg.LinAlgError:            # gees did not converge: NaN, as JAX
        return np.full_like(a, np.nan), np.full_like(a, np.nan)


def _hessenberg_one(a: np.ndarray) -> tuple:
    if a.shape[-1] == 0:
        return a, a
    return scipy.linalg.hessenberg(a, calc_q=True, check_finite=False)


def without_derivative(name: str, fn: Callable) -> Callable:
    """``fn`` with a JVP that raises JAX's error (the routine has no derivative rule)."""
    wrapped = custom_jvp(fn)

    def rule(primals, tangents):
        raise NotImplementedError(f"Differentiation rule for '{name}' not implemented")
    wrapped.defjvp(rule)
    return wrapped


def _two_like(a: Any) -> list:
    return [ShapeDtypeStruct(a.shape, a.dtype)] * 2


_schur_host = without_derivative("schur", lambda a: tuple(pure_callback(
    lambda x: _per_matrix(_schur_one, x, 2), _two_like(a), a, vmap_method="expand_dims")))
_hessenberg_host = without_derivative("hessenberg", lambda a: tuple(pure_callback(
    lambda x: _per_matrix(_hessenberg_one, x, 2), _two_like(a), a, vmap_method="expand_dims")))


def _check_square(op: str, a: Any, rank_error: str, square_error: str) -> None:
    if a.dtype not in _LAPACK_DTYPES:
        if dtypes.is_differentiable(a.dtype):
            raise NotImplementedError(f"{op}: LAPACK has no {a.dtype} routine; convert the matrix with "
                                      ".astype(fgrad.numpy.float32)")
        raise TypeError(f"{op} does not accept dtype {a.dtype}: it takes floating or complex matrices; convert "
                        "with .astype(fgrad.numpy.float32)")
    if a.ndim < 2:
        raise TypeError(rank_error.format(shape=a.shape))
    if a.shape[-1] != a.shape[-2]:
        raise ValueError(square_error.format(shape=a.shape))


# --- schur, hessenberg ---------------------------------------------------------------------------------

def _complex_of(dtype: np.dtype) -> np.dtype:
    return dtypes.complex_dtype(dtype) if dtypes.is_differentiable(dtype) else fnp.result_type(complex)


def schur(a, output: str = "real"):
    """``jax.scipy.linalg.schur(a, output='real')``: ``(T, Z)`` with ``a == Z @ T @ Z^H``, ``Z``
    unitary and ``T`` upper triangular ('complex') or quasi-triangular with 2 x 2 blocks for
    complex-conjugate eigenvalues ('real', for real ``a``; complex ``a`` gives the triangular
    form either way). Leading dimensions are batch dimensions; not differentiable."""
    if output not in ("real", "complex"):
        raise ValueError(f"Expected 'output' to be either 'real' or 'complex', got output={output!r}.")
    a = fnp.asarray(a)
    if output == "complex":
        a = a.astype(_complex_of(a.dtype))
    _check_square("schur", a, "Input 0 to schur must have rank at least 2, but got shape={shape}",
                  "The input to schur must be a square matrix. Got shape {shape}.")
    return _schur_host(a)


def hessenberg(a, *, calc_q: bool = False, overwrite_a: bool = False, check_finite: bool = True):
    """``jax.scipy.linalg.hessenberg(a, *, calc_q=False, overwrite_a=False, check_finite=True)``:
    the upper Hessenberg form ``H`` (zeros below the first subdiagonal) with ``a == Q @ H @ Q^H``,
    and ``(H, Q)`` when ``calc_q``. Leading dimensions are batch dimensions; not differentiable."""
    a = fnp.asarray(a)
    _check_square("hessenberg", a, "Input 0 to hessenberg must have rank at least 2, but got shape={shape}",
                  "Argument to Hessenberg reduction must have shape [..., n, n], got shape {shape}")
    h, q = _hessenberg_host(a)
    return (h, q) if calc_q else h


# --- rsf2csf -------------------------------------------------------------------------------------------

def _batched(fn: Callable, *mats: Any) -> Any:
    """``fn`` of single matrices applied over the broadcast leading dimensions of ``mats``."""
    batch = fnp.broadcast_shapes(*[m.shape[:-2] for m in mats])
    if not batch:
        return fn(*mats)
    flat = [fnp.reshape(fnp.broadcast_to(m, batch + m.shape[-2:]), (-1,) + m.shape[-2:]) for m in mats]
    outs = vmap(fn)(*flat)
    if isinstance(outs, tuple):
        return tuple(fnp.reshape(o, batch + o.shape[1:]) for o in outs)
    return fnp.reshape(outs, batch + outs.shape[1:])


def _rotate_block(m: Any, T: Any, Z: Any) -> tuple:
    """The unitary rotation of rows and columns ``m - 1, m`` that makes ``T[m, m - 1]`` zero."""
    n = T.shape[0]
    block = lax.dynamic_slice(T, (m - 1, m - 1), (2, 2))
    mu = fla.eigvals(block) - T[m, m]
    r = fla.norm(fnp.stack([mu[0], T[m, m - 1]])).astype(T.dtype)
    c, s = mu[0] / r, T[m, m - 1] / r
    G = fnp.stack([fnp.stack([fnp.conj(c), s]), fnp.stack([-s, c])])
    GH = fnp.conj(G.T)
    cols = fnp.arange(n) >= m - 1
    rows = lax.dynamic_slice_in_dim(T, m - 1, 2, axis=0)
    T = lax.dynamic_update_slice_in_dim(T, fnp.where(cols, G @ fnp.where(cols, rows, 0), rows), m - 1, axis=0)
    upper = (fnp.arange(n) < m + 1)[:, None]
    pair = lax.dynamic_slice_in_dim(T, m - 1, 2, axis=1)
    T = lax.dynamic_update_slice_in_dim(T, fnp.where(upper, fnp.where(upper, pair, 0) @ GH, pair), m - 1, axis=1)
    Z = lax.dynamic_update_slice_in_dim(Z, lax.dynamic_slice_in_dim(Z, m - 1, 2, axis=1) @ GH, m - 1, axis=1)
    return T, Z


def _rsf2csf_one(T: Any, Z: Any) -> tuple:
    n = T.shape[0]
    if n == 0:
        raise IndexError("rsf2csf: T and Z are 0 x 0 (JAX's rsf2csf indexes their first entry)")
    if n == 1:
        return T, Z
    eps = np.finfo(T.dtype).eps

    def step(carry, m):
        T, Z = carry
        coupled = fnp.abs(T[m, m - 1]) > eps * (fnp.abs(T[m - 1, m - 1]) + fnp.abs(T[m, m]))
        T, Z = lax.cond(coupled, _rotate_block, lambda m, T, Z: (T, Z), m, T, Z)
        return (T.at[m, m - 1].set(0), Z), None
    return lax.scan(step, (T, Z), np.arange(n - 1, 0, -1, dtype=np.int32))[0]


def rsf2csf(T, Z, check_finite: bool = True):
    """``jax.scipy.linalg.rsf2csf(T, Z, check_finite=True)``: the complex Schur form ``(T, Z)``
    from the real one (``schur(a)``): each 2 x 2 block of ``T`` rotated to triangular, complex
    (a real ``T`` and ``Z`` become complex). Leading dimensions broadcast; differentiable."""
    T, Z = fnp.asarray(T), fnp.asarray(Z)
    for name, x in (("T", T), ("Z", Z)):
        if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
            raise ValueError(f"Input '{name}' must be square.")
    if T.shape[-1] != Z.shape[-1]:
        raise ValueError(f"Input array shapes must match: Z: {Z.shape} vs. T: {T.shape}")
    dtype = _complex_of(fnp.result_type(T, Z))
    return _batched(_rsf2csf_one, T.astype(dtype), Z.astype(dtype))


# --- sqrtm ---------------------------------------------------------------------------------------------

def _sqrtm_triangular(T: Any) -> Any:
    """The upper-triangular square root ``U`` of the upper-triangular ``T`` (``U @ U == T``), entry
    by entry up each column; an entry whose numerator and denominator vanish together is 0 (JAX)."""
    n = T.shape[0]
    root = fnp.sqrt(fnp.diagonal(T))
    k = fnp.arange(n)
    order = np.array([(i, j) for j in range(n) for i in range(j - 1, -1, -1)], dtype=np.int32).reshape(-1, 2)

    def step(U, ij):
        i, j = ij[0], ij[1]
        s = fnp.sum(fnp.where((k > i) & (k < j), U[i, :] * U[:, j], 0))
        value = fnp.where(T[i, j] == s, 0, (T[i, j] - s) / (root[i] + root[j]))
        return U.at[i, j].set(value.astype(T.dtype)), None
    return lax.scan(step, fnp.diag(root), order)[0]


def _sqrtm_one(A: Any) -> Any:
    if A.shape[-1] == 0:
        raise IndexError("sqrtm: A is 0 x 0 (JAX's sqrtm indexes its first entry)")
    T, Z = schur(A, output="complex")
    return Z @ _sqrtm_triangular(T) @ fnp.conj(Z.T)


def sqrtm(A, blocksize: int = 1):
    """``jax.scipy.linalg.sqrtm(A, blocksize=1)``: the principal square root of one square
    matrix (``sqrtm(A) @ sqrtm(A) == A``), through its complex Schur form; always complex. For a
    batch, ``vmap`` it. Differentiating it raises ``NotImplementedError`` (JAX: ``schur`` has no
    derivative rule); ``blocksize > 1`` raises ``NotImplementedError`` as in JAX."""
    if blocksize > 1:
        raise NotImplementedError("sqrtm: the blocked version (blocksize > 1) is not implemented, as in JAX; "
                                  "use blocksize=1 (the same result)")
    A = fnp.asarray(A)
    if A.ndim > 2:
        raise ValueError(f"sqrtm takes one square matrix, got shape {A.shape}: map it over a batch with "
                         "fgrad.vmap(sqrtm)")
    return _sqrtm_one(A)


# --- funm ----------------------------------------------------------------------------------------------

def _parlett(F: Any, T: Any) -> tuple:
    """Fill the strict upper triangle of ``F`` (``func`` of the triangular ``T``'s diagonal on
    its diagonal) by Parlett's recurrence, superdiagonal after superdiagonal; also the smallest
    ``|T[j, j] - T[i, i]|`` met (``T[0, 0]``'s magnitude to start)."""
    n = T.shape[0]
    k = fnp.arange(n)
    order = np.array([(i, i + p) for p in range(1, n) for i in range(n - p)], dtype=np.int32).reshape(-1, 2)

    def step(carry, ij):
        F, smallest = carry
        i, j = ij[0], ij[1]
        inner = (k > i) & (k < j)
        s = T[i, j] * (F[j, j] - F[i, i])
        s = s + fnp.sum(fnp.where(inner, T[i, :] * F[:, j], 0)) - fnp.sum(fnp.where(inner, F[i, :] * T[:, j], 0))
        den = T[j, j] - T[i, i]
        s = fnp.where(den != 0, s / den, s)
        return (F.at[i, j].set(s), fnp.minimum(smallest, fnp.abs(den))), None
    return lax.scan(step, (F, fnp.abs(T[0, 0])), order)[0]


def funm(A, func: Callable, disp: bool = True):
    """``jax.scipy.linalg.funm(A, func, disp=True)``: the matrix function ``func(A)`` of one
    square matrix, ``func`` applied (elementwise, to an array) to the eigenvalues on the
    diagonal of ``A``'s complex Schur form and extended by Parlett's recurrence; complex. With
    ``disp=False``, ``(F, err)``, ``err`` an estimate of the relative error (inf if ``F`` is not
    finite). Not differentiable in ``A`` (it goes through ``schur``)."""
    A = fnp.asarray(A)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError("expected square array_like input")
    T, Z = rsf2csf(*schur(A))
    F = fnp.diag(func(fnp.diagonal(T))).astype(T.dtype)
    F, smallest = _parlett(F, T)
    F = Z @ F @ fnp.conj(Z.T)
    if disp:
        return F
    tol = np.finfo(dtypes.real_dtype(F.dtype)).eps
    smallest = fnp.where(smallest == 0.0, tol, smallest)
    estimate = fnp.minimum(1, fnp.maximum(tol, (tol / smallest) * fla.norm(fnp.triu(T, 1), 1)))
    return F, fnp.where(fnp.any(fnp.isinf(F)), np.inf, estimate).astype(dtypes.real_dtype(F.dtype))


# --- solve_sylvester -----------------------------------------------------------------------------------

def _triangular_sylvester(R: Any, S: Any, F: Any) -> Any:
    """``Y`` with ``R @ Y + Y @ S == F`` for upper-triangular ``R [m, m]``, ``S [n, n]``, solved
    from the last entry back, row-major."""
    m, n = F.shape
    ks, ls = fnp.arange(m), fnp.arange(n)
    order = np.array([(i, j) for i in range(m - 1, -1, -1) for j in range(n - 1, -1, -1)],
                     dtype=np.int32).reshape(-1, 2)

    def step(Y, ij):
        i, j = ij[0], ij[1]
        known = fnp.sum(fnp.where(ks > i, R[i, :] * Y[:, j], 0)) + fnp.sum(fnp.where(ls > j, Y[i, :] * S[:, j], 0))
        return Y.at[i, j].set((F[i, j] - known) / (R[i, i] + S[j, j])), None
    return lax.scan(step, fnp.zeros_like(F), order)[0]


def _sylvester_one(A: Any, B: Any, C: Any, method: str, tol: float) -> Any:
    if method == "schur":
        R, U = schur(A, output="complex")
        S, V = schur(fnp.conj(B.T), output="complex")
        Y = _triangular_sylvester(R, fnp.conj(S.T), fnp.conj(U.T) @ C.astype(R.dtype) @ V)
        X = U @ Y @ fnp.conj(V.T)
    elif method == "eigen":
        wa, va = fla.eig(A)
        wb, vb = fla.eig(B)
        Y = fla.solve(va, C.astype(wa.dtype) @ vb) / (wa[:, None] + wb[None, :])
        X = va @ Y @ fla.inv(vb)
    else:
        raise ValueError(f'Unrecognized method {method}. The two valid methods are either "schur" or "eigen".')
    if not dtypes.is_complex(C.dtype):
        X = fnp.real(X)
    singular = fnp.any(fnp.abs(fla.eigvals(A)[:, None] + fla.eigvals(B)[None, :]) < tol)
    return fnp.where(singular, fnp.full_like(X, np.nan), X)


def solve_sylvester(A, B, C, *, method: str = "schur", tol: float = 1e-8):
    """``jax.scipy.linalg.solve_sylvester(A, B, C, *, method='schur', tol=1e-8)``: ``X`` with
    ``A @ X + X @ B == C`` (``A [..., m, m]``, ``B [..., n, n]``, ``C [..., m, n]``, batches
    broadcast), by the Schur forms of ``A`` and ``B^H`` ('schur') or their eigendecompositions
    ('eigen'); NaN where some eigenvalues of ``A`` and ``-B`` are within ``tol`` (no unique
    solution). Differentiable in ``C`` (``schur`` has no derivative rule: not in ``A``, ``B``)."""
    A, B, C = fla._floats("jax.scipy.linalg.solve_sylvester", A, B, C)
    m, n = C.shape[-2:]
    if A.shape[-2:] != (m, m) or B.shape[-2:] != (n, n):
        raise ValueError(f"Incompatible shapes for Sylvester equation:\nA: {A.shape}\nB: {B.shape}\nC: {C.shape}")
    return _batched(lambda a, b, c: _sylvester_one(a, b, c, method, tol), A, B, C)
