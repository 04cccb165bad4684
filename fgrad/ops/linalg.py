"""Matrix decompositions as primitives (JAX's ``lax.linalg``): ``cholesky_p``,
``triangular_solve_p``, ``lu_p``, ``qr_p``, ``eigh_p`` and ``svd_p``.

Each works on the last two dimensions of its operands; any number of leading dimensions are
batch dimensions. float32, float64, complex64 and complex128 (JAX's set). The eager
implementations call LAPACK through SciPy (``potrf``, ``trsm``, ``getrf``, ``geqrf``+``orgqr``
(``ungqr``), ``syevd`` (``heevd``), ``gesdd``: the ``s``/``d`` routines for real matrices, the
``c``/``z`` ones for complex), the routines the native lowering calls (SciPy's LAPACK for all
of them, so that eager and native results agree to rounding, eigenvector signs and phases
included); where LAPACK reports a
failure (a matrix that is not positive definite, an SVD or eigensolver that does not
converge, NaN inputs), the matrix's results are NaN, as in JAX.

The contract every implementation (eager, native lowering) keeps:

* ``cholesky_p(a) -> L``: lower-triangular (strict upper part zero), ``a == L L^H``; reads
  only the lower triangle of ``a``; NaN in the lower triangle (zeros above, as JAX) when ``a``
  is not positive definite.
* ``triangular_solve_p(a, b, *, left_side, lower, transpose_a, conjugate_a, unit_diagonal)``:
  ``op(a) @ x = b`` (``left_side``; ``a [..., m, m]``, ``b [..., m, n]``) or ``x @ op(a) = b``
  (``b [..., n, m]``), ``op(a)`` being ``a``, its transpose, its conjugate
  (``conjugate_a``; ignored for real ``a``) or its conjugate transpose; reads only the ``lower`` (or
  upper) triangle of ``a``, and not its diagonal when ``unit_diagonal``. No singularity check
  (a zero pivot gives inf/NaN, as BLAS's trsm).
* ``lu_p(a) -> (lu, pivots, permutation)``: partial pivoting as LAPACK's getrf; ``lu`` holds
  ``L`` (unit diagonal, strictly below) and ``U``; ``pivots`` int32 ``[..., min(m, n)]``
  (0-based: row ``i`` was swapped with row ``pivots[i]``), ``permutation`` int32 ``[..., m]``
  with ``a[permutation] == L @ U``.
* ``qr_p(a, *, full_matrices) -> (q, r)``: ``q [..., m, m]``, ``r [..., m, n]``, or with
  ``k = min(m, n)`` ``q [..., m, k]``, ``r [..., k, n]`` when not ``full_matrices``.
* ``eigh_p(a, *, lower) -> (v, w)``: eigenvectors in the columns of ``v``, eigenvalues ``w``
  ascending and real (float64 for complex128 ``a``); reads only the named triangle of the
  Hermitian ``a``.
* ``svd_p(a, *, full_matrices, compute_uv) -> (s,)`` or ``(u, s, vh)``: ``s`` descending and
  real, ``a == u[..., :k] * s @ vh[..., :k, :]``.

Compiled, a decomposition of complex matrices is an equation of ``complex_decomposition_p``
(below) over the real and imaginary parts: the complex-program pass (``fgrad.lower.complex_split``)
writes it, and the native lowering calls the complex LAPACK routine on the parts interleaved,
inside the program's one native call.

The differentiation rules live in ``fgrad.ops.linalg_rules``.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
from scipy.linalg import blas as sblas, lapack as slapack

from fgrad.core import dtypes
from fgrad.core.partition import bind_like, partition_rules, rank, replicated, with_layout
from fgrad.core.primitive import Primitive
from fgrad.core.rules import not_differentiable, vmap_rules
from fgrad.core.trace import get_aval
from fgrad.core.types import ShapedArray
from fgrad.ops import complex_parts as cp, elementwise as ew, shape as sh
from fgrad.ops._util import shape_error
from fgrad.ops.eig import eig, eig_p  # noqa: F401  (lax.linalg.eig: complex results, its own module)

__all__ = ["cholesky", "triangular_solve", "lu", "qr", "eigh", "svd", "eig",
           "cholesky_p", "triangular_solve_p", "lu_p", "qr_p", "eigh_p", "svd_p", "eig_p",
           "complex_decomposition_p", "DECOMPOSITIONS"]

SUPPORTED_DTYPES = (dtypes.float32, dtypes.float64, dtypes.complex64, dtypes.complex128)


# --- shape/dtype checks --------------------------------------------------------------------------

def _check_matrix(op: str, a: ShapedArray, square: bool = False) -> None:
    """``a`` is a (batch of) float32/float64/complex64/complex128 matrices, square when ``square``."""
    if np.dtype(a.dtype) not in SUPPORTED_DTYPES:
        raise TypeError(f"{op}: supports float32, float64, complex64 and complex128 operands, got "
                        f"{a.str_short()}. Convert it with .astype(fgrad.numpy.float32) (or float64 under "
                        "enable_x64)")
    if a.ndim < 2:
        raise shape_error(op, f"needs a matrix (or a batch of matrices, rank >= 2), got {a.str_short()}")
    if square and a.shape[-1] != a.shape[-2]:
        raise shape_error(op, f"needs square matrices in the last two dimensions, got {a.str_short()}")


def _like(a: ShapedArray, shape: tuple, dtype: Any = None) -> ShapedArray:
    return ShapedArray(tuple(shape), a.dtype if dtype is None else np.dtype(dtype))


# --- eager helpers ---------------------------------------------------------------------------------

def _per_matrix(a: np.ndarray, out_shapes: list[tuple], out_dtypes: list, one: Callable) -> list[np.ndarray]:
    """Apply ``one(matrix) -> tuple of arrays`` to every matrix of the batch ``a [..., m, n]``;
    ``out_shapes`` are the per-matrix result shapes."""
    batch = a.shape[:-2]
    outs = [np.empty(batch + tuple(s), d) for s, d in zip(out_shapes, out_dtypes)]
    for index in np.ndindex(*batch):
        for out, value in zip(outs, one(a[index])):
            out[index] = value
    return outs


def _nan(shape: tuple, dtype: Any) -> np.ndarray:
    """NaN results of a failed factorisation (NaN in both parts of a complex one, as JAX)."""
    dtype = np.dtype(dtype)
    return np.full(shape, complex(np.nan, np.nan) if dtype.kind == "c" else np.nan, dtype)


def _lower_to_full(a: np.ndarray) -> np.ndarray:
    """The symmetric matrix whose lower triangle is ``a``'s."""
    low = np.tril(a)
    return low + np.swapaxes(np.tril(a, -1), -1, -2)


def _upper_to_full(a: np.ndarray) -> np.ndarray:
    up = np.triu(a)
    return up + np.swapaxes(np.triu(a, 1), -1, -2)


# --- cholesky --------------------------------------------------------------------------------------

def _cholesky_rule(a: ShapedArray) -> ShapedArray:
    _check_matrix("cholesky", a, square=True)
    return _like(a, a.shape)


def _cholesky_one(a: np.ndarray) -> tuple[np.ndarray]:
    potrf = slapack.get_lapack_funcs("potrf", dtype=a.dtype)
    factor, info = potrf(a, lower=True, clean=True)
    if info != 0:
        return (np.tril(_nan(a.shape, a.dtype)),)   # JAX: NaN in the lower triangle, zeros above
    return (factor,)


def _cholesky_impl(a: np.ndarray) -> np.ndarray:
    if a.size == 0:
        return np.zeros(a.shape, a.dtype)
    n = a.shape[-1]
    return _per_matrix(a, [(n, n)], [a.dtype], _cholesky_one)[0]


cholesky_p = Primitive("cholesky")
cholesky_p.def_impl(_cholesky_impl)
cholesky_p.def_abstract_eval(_cholesky_rule)


# --- triangular_solve ------------------------------------------------------------------------------

def _triangular_solve_rule(a: ShapedArray, b: ShapedArray, *, left_side: bool, lower: bool,
                           transpose_a: bool, conjugate_a: bool, unit_diagonal: bool) -> ShapedArray:
    op = "triangular_solve"
    _check_matrix(op, a, square=True)
    _check_matrix(op, b)
    if a.dtype != b.dtype:
        raise shape_error(op, f"operands must have the same dtype, got {a.str_short()} and {b.str_short()}",
                          "Convert one with .astype(...)")
    if a.shape[:-2] != b.shape[:-2]:
        raise shape_error(op, f"operands must have equal batch dimensions, got {a.str_short()} and "
                              f"{b.str_short()}", "Broadcast the batch dimensions first")
    m = a.shape[-1]
    side = b.shape[-2] if left_side else b.shape[-1]
    if side != m:
        which = "rows" if left_side else "columns"
        raise shape_error(op, f"with left_side={left_side}, b's {which} ({side}) must match a's size ({m}); "
                              f"got {a.str_short()} and {b.str_short()}")
    return _like(b, b.shape)


def _triangular_solve_one(a, b, left_side, lower, transpose_a, conjugate_a, unit_diagonal):
    trsm = sblas.get_blas_funcs("trsm", dtype=a.dtype)
    complex_a = a.dtype.kind == "c"
    if complex_a and conjugate_a and not transpose_a:      # BLAS conjugates only with a transpose
        a = np.conj(a)
    trans = (2 if complex_a and conjugate_a else 1) if transpose_a else 0
    with np.errstate(all="ignore"):
        return (trsm(1.0, a, b, side=0 if left_side else 1, lower=int(lower), trans_a=trans,
                     diag=int(unit_diagonal)),)


def _triangular_solve_impl(a: np.ndarray, b: np.ndarray, *, left_side: bool, lower: bool, transpose_a: bool,
                           conjugate_a: bool, unit_diagonal: bool) -> np.ndarray:
    if b.size == 0:
        return np.zeros(b.shape, b.dtype)
    batch = b.shape[:-2]
    out = np.empty(b.shape, b.dtype)
    for index in np.ndindex(*batch):
        out[index] = _triangular_solve_one(a[index], b[index], left_side, lower, transpose_a, conjugate_a,
                                           unit_diagonal)[0]
    return out


triangular_solve_p = Primitive("triangular_solve")
triangular_solve_p.def_impl(_triangular_solve_impl)
triangular_solve_p.def_abstract_eval(_triangular_solve_rule)


# --- lu --------------------------------------------------------------------------------------------

def _lu_rule(a: ShapedArray) -> list[ShapedArray]:
    _check_matrix("lu", a)
    m, n = a.shape[-2:]
    batch = a.shape[:-2]
    return [_like(a, a.shape), _like(a, batch + (min(m, n),), np.int32), _like(a, batch + (m,), np.int32)]


def _permutation_of(pivots: np.ndarray, m: int) -> np.ndarray:
    """The row permutation that getrf's successive swaps ``pivots`` apply."""
    perm = np.arange(m, dtype=np.int32)
    for i, p in enumerate(pivots):
        perm[i], perm[p] = perm[p], perm[i]
    return perm


def _lu_one(a: np.ndarray) -> tuple:
    getrf = slapack.get_lapack_funcs("getrf", dtype=a.dtype)
    with np.errstate(all="ignore"):
        lu_, pivots, _info = getrf(a)   # info > 0: exactly singular; the factors are still returned
    pivots = pivots.astype(np.int32)
    return lu_, pivots, _permutation_of(pivots, a.shape[0])


def _lu_impl(a: np.ndarray) -> list[np.ndarray]:
    m, n = a.shape[-2:]
    k = min(m, n)
    if a.size == 0:
        batch = a.shape[:-2]
        perm = np.broadcast_to(np.arange(m, dtype=np.int32), batch + (m,)).copy()
        return [np.zeros(a.shape, a.dtype), np.zeros(batch + (k,), np.int32), perm]
    return _per_matrix(a, [(m, n), (k,), (m,)], [a.dtype, np.int32, np.int32], _lu_one)


lu_p = Primitive("lu", multiple_results=True)
lu_p.def_impl(_lu_impl)
lu_p.def_abstract_eval(_lu_rule)


# --- qr --------------------------------------------------------------------------------------------

def _qr_shapes(shape: tuple, full_matrices: bool) -> tuple[tuple, tuple]:
    *batch, m, n = shape
    k = m if full_matrices else min(m, n)
    return tuple(batch) + (m, k), tuple(batch) + (k, n)


def _qr_rule(a: ShapedArray, *, full_matrices: bool) -> list[ShapedArray]:
    _check_matrix("qr", a)
    q_shape, r_shape = _qr_shapes(a.shape, full_matrices)
    return [_like(a, q_shape), _like(a, r_shape)]


def _qr_one(a: np.ndarray, full_matrices: bool) -> tuple:
    geqrf, orgqr = slapack.get_lapack_funcs(("geqrf", "ungqr" if a.dtype.kind == "c" else "orgqr"),
                                            dtype=a.dtype)
    m, n = a.shape
    k = min(m, n)
    cols = m if full_matrices else k
    packed, tau, _work, _info = geqrf(a)
    reflectors = np.zeros((m, cols), a.dtype)
    reflectors[:, :min(cols, n)] = packed[:, :min(cols, n)]
    q, _work, _info = orgqr(reflectors, tau)
    return q, np.triu(packed[:cols, :])


def _qr_impl(a: np.ndarray, *, full_matrices: bool) -> list[np.ndarray]:
    q_shape, r_shape = _qr_shapes(a.shape, full_matrices)
    if a.size == 0:
        q = np.zeros(q_shape, a.dtype)
        q[...] = np.eye(*q_shape[-2:], dtype=a.dtype)
        return [q, np.zeros(r_shape, a.dtype)]
    nd = a.ndim
    return _per_matrix(a, [q_shape[nd - 2:], r_shape[nd - 2:]], [a.dtype, a.dtype],
                       lambda x: _qr_one(x, full_matrices))


qr_p = Primitive("qr", multiple_results=True)
qr_p.def_impl(_qr_impl)
qr_p.def_abstract_eval(_qr_rule)


# --- eigh ------------------------------------------------------------------------------------------

def _eigh_rule(a: ShapedArray, *, lower: bool) -> list[ShapedArray]:
    _check_matrix("eigh", a, square=True)
    return [_like(a, a.shape), _like(a, a.shape[:-1], dtypes.real_dtype(a.dtype))]


def _eigh_one(a: np.ndarray, lower: bool) -> tuple:
    syevd = slapack.get_lapack_funcs("heevd" if a.dtype.kind == "c" else "syevd", dtype=a.dtype)
    read = np.tril(a) if lower else np.triu(a)
    if np.isfinite(read).all():
        w, v, info = syevd(a, compute_v=1, lower=int(lower))
        if info == 0:
            return v, w
    # NaN/inf input or no convergence: NaN results, as JAX
    return _nan(a.shape, a.dtype), _nan(a.shape[:-1], dtypes.real_dtype(a.dtype))


def _eigh_impl(a: np.ndarray, *, lower: bool) -> list[np.ndarray]:
    real = dtypes.real_dtype(a.dtype)
    if a.size == 0:
        return [np.zeros(a.shape, a.dtype), np.zeros(a.shape[:-1], real)]
    n = a.shape[-1]
    return _per_matrix(a, [(n, n), (n,)], [a.dtype, real], lambda m: _eigh_one(m, lower))


eigh_p = Primitive("eigh", multiple_results=True)
eigh_p.def_impl(_eigh_impl)
eigh_p.def_abstract_eval(_eigh_rule)


# --- svd -------------------------------------------------------------------------------------------

def _svd_shapes(shape: tuple, full_matrices: bool, compute_uv: bool) -> list[tuple]:
    *batch, m, n = shape
    batch = tuple(batch)
    k = min(m, n)
    if not compute_uv:
        return [batch + (k,)]
    u_cols, vh_rows = (m, n) if full_matrices else (k, k)
    return [batch + (m, u_cols), batch + (k,), batch + (vh_rows, n)]


def _svd_dtypes(dtype: Any, compute_uv: bool) -> list:
    """The results' dtypes: the singular values are real."""
    real = dtypes.real_dtype(dtype)
    return [dtype, real, dtype] if compute_uv else [real]


def _svd_rule(a: ShapedArray, *, full_matrices: bool, compute_uv: bool) -> list[ShapedArray]:
    _check_matrix("svd", a)
    return [_like(a, s, d) for s, d in zip(_svd_shapes(a.shape, full_matrices, compute_uv),
                                           _svd_dtypes(a.dtype, compute_uv))]


def _svd_one(a: np.ndarray, full_matrices: bool, compute_uv: bool) -> tuple:
    gesdd = slapack.get_lapack_funcs("gesdd", dtype=a.dtype)
    if np.isfinite(a).all():
        u, s, vt, info = gesdd(a, compute_uv=int(compute_uv), full_matrices=int(full_matrices))
        if info == 0:
            return (u, s, vt) if compute_uv else (s,)
    # NaN/inf input or no convergence: NaN results, as JAX
    shapes = _svd_shapes(a.shape, full_matrices, compute_uv)
    return tuple(_nan(s, d) for s, d in zip(shapes, _svd_dtypes(a.dtype, compute_uv)))


def _svd_impl(a: np.ndarray, *, full_matrices: bool, compute_uv: bool) -> list[np.ndarray]:
    shapes = _svd_shapes(a.shape, full_matrices, compute_uv)
    result_dtypes = _svd_dtypes(a.dtype, compute_uv)
    if a.size == 0:
        outs = [np.zeros(s, d) for s, d in zip(shapes, result_dtypes)]
        if compute_uv:
            outs[0][...] = np.eye(*shapes[0][-2:], dtype=a.dtype)
            outs[2][...] = np.eye(*shapes[2][-2:], dtype=a.dtype)
        return outs
    per_matrix = [s[len(a.shape) - 2:] for s in shapes]
    return _per_matrix(a, per_matrix, result_dtypes, lambda m: _svd_one(m, full_matrices, compute_uv))


svd_p = Primitive("svd", multiple_results=True)
svd_p.def_impl(_svd_impl)
svd_p.def_abstract_eval(_svd_rule)


# --- a complex decomposition over the parts of its operands (what compiled programs hold) ----------

#: The decompositions by name (``complex_decomposition_p``'s ``decomposition`` param).
DECOMPOSITIONS = {p.name: p for p in (cholesky_p, triangular_solve_p, lu_p, qr_p, eigh_p, svd_p)}


def complex_results(decomposition: str, params: tuple, in_avals: list) -> list[ShapedArray]:
    """The result avals of decomposition ``decomposition`` (params as sorted items) on ``in_avals``."""
    prim = DECOMPOSITIONS[decomposition]
    outs = prim.abstract_eval(*in_avals, **dict(params))
    return list(outs) if prim.multiple_results else [outs]


def _parts_of(avals: list[ShapedArray]) -> list[ShapedArray]:
    """Each complex aval as two real ones (real part, imaginary part); real ones unchanged."""
    flat = []
    for a in avals:
        part = ShapedArray(a.shape, dtypes.real_dtype(a.dtype))
        flat += [part, part] if dtypes.is_complex(a.dtype) else [a]
    return flat


def _complex_decomposition_rule(*parts: ShapedArray, decomposition: str, params: tuple) -> list[ShapedArray]:
    if len(parts) % 2 or any(p.dtype not in SUPPORTED_DTYPES[:2] for p in parts):
        raise shape_error("complex_decomposition", "takes the float32/float64 (real, imaginary) parts of complex "
                          f"operands, got {[p.str_short() for p in parts]}")
    ins = [ShapedArray(re.shape, dtypes.complex_dtype(re.dtype)) for re in parts[::2]]
    return _parts_of(complex_results(decomposition, params, ins))


def _complex_decomposition_impl(*parts: np.ndarray, decomposition: str, params: tuple) -> list[np.ndarray]:
    ins = []
    for re, im in zip(parts[::2], parts[1::2]):
        z = np.empty(re.shape, dtypes.complex_dtype(re.dtype))
        z.real, z.imag = re, im          # part by part: 1j * inf would make the real part NaN
        ins.append(z)
    prim = DECOMPOSITIONS[decomposition]
    outs = prim.impl(*ins, **dict(params))
    flat = []
    for o in (outs if prim.multiple_results else [outs]):
        flat += [np.ascontiguousarray(o.real), np.ascontiguousarray(o.imag)] if o.dtype.kind == "c" else [o]
    return flat


#: ``complex_decomposition_p(*parts, decomposition, params)``: the decomposition named
#: ``decomposition`` (``"cholesky"``...; ``params`` its params as sorted items) of complex operands
#: given as their parts (real, imaginary, operand after operand); its results likewise, a complex
#: result as two parts, a real one (``eigh``'s eigenvalues, ``svd``'s singular values, ``lu``'s
#: pivots) as itself. Only the compile path writes it (after every transform has run): it is not
#: differentiable.
complex_decomposition_p = Primitive("complex_decomposition", multiple_results=True)
complex_decomposition_p.def_impl(_complex_decomposition_impl)
complex_decomposition_p.def_abstract_eval(_complex_decomposition_rule)
not_differentiable.add(complex_decomposition_p)


# --- vmap: the batch dimension goes first, where the primitive's batch dims are ---------------------

def _batch_first_vmap(prim: Primitive) -> Callable:
    def rule(axis, vals, dims, **params):
        moved = [sh.moveaxis(v, d, 0, axis.size) for v, d in zip(vals, dims)]
        out = prim.bind(*moved, **params)
        return out, ([0] * len(out) if prim.multiple_results else 0)
    return rule


for _prim in (cholesky_p, triangular_solve_p, lu_p, qr_p, eigh_p, svd_p, complex_decomposition_p):
    vmap_rules[_prim] = _batch_first_vmap(_prim)


# --- partition: a split batch dimension stays split; the matrix dimensions need whole values -------

def _batch_dims_partition(ctx, eqn, ins):
    batch_rank = rank(eqn.invars[0]) - 2
    split = next((l for _, l in ins if isinstance(l, int)), None)
    if split is None or split >= batch_rank:
        return replicated(ctx, eqn, ins)
    vals = [ctx.split(v, l, split, eqn) for v, l in ins]
    return with_layout(bind_like(eqn, vals), split)


for _prim in (cholesky_p, triangular_solve_p, lu_p, qr_p, eigh_p, svd_p, complex_decomposition_p):
    partition_rules[_prim] = _batch_dims_partition


# --- lax-level wrappers (JAX's jax.lax.linalg) -----------------------------------------------------

def _matrix_transpose(x: Any) -> Any:
    nd = get_aval(x).ndim
    return sh.transpose(x, tuple(range(nd - 2)) + (nd - 1, nd - 2))


def adjoint(x: Any) -> Any:
    """The conjugate transpose of the last two dimensions (the transpose of real matrices)."""
    t = _matrix_transpose(x)
    return cp.conj(t) if dtypes.is_complex(get_aval(x).dtype) else t


def symmetrize(x: Any) -> Any:
    """``(x + x^H) / 2`` over the last two dimensions (``x^T`` for real ``x``)."""
    half = np.asarray(0.5, get_aval(x).dtype)[()]
    return ew.mul(ew.add(x, adjoint(x)), half)


def cholesky(x: Any, *, symmetrize_input: bool = True) -> Any:
    """``jax.lax.linalg.cholesky(x, *, symmetrize_input=True)``: the lower Cholesky factor
    ``L`` with ``x == L @ L^H``; NaN where ``x`` is not positive definite."""
    return cholesky_p.bind(symmetrize(x) if symmetrize_input else x)


def triangular_solve(a: Any, b: Any, *, left_side: bool = False, lower: bool = False,
                     transpose_a: bool = False, conjugate_a: bool = False, unit_diagonal: bool = False) -> Any:
    """``jax.lax.linalg.triangular_solve(a, b, *, left_side=False, lower=False,
    transpose_a=False, conjugate_a=False, unit_diagonal=False)``: ``x`` with
    ``op(a) @ x = b`` (``left_side``) or ``x @ op(a) = b``, ``a`` triangular; ``conjugate_a``
    conjugates a complex ``a`` (and is dropped for a real one, as in JAX)."""
    conjugate_a = bool(conjugate_a) and dtypes.is_complex(get_aval(a).dtype)
    return triangular_solve_p.bind(a, b, left_side=bool(left_side), lower=bool(lower),
                                   transpose_a=bool(transpose_a), conjugate_a=conjugate_a,
                                   unit_diagonal=bool(unit_diagonal))


def lu(x: Any) -> tuple[Any, Any, Any]:
    """``jax.lax.linalg.lu(x)``: ``(lu, pivots, permutation)`` of LU with partial pivoting."""
    return tuple(lu_p.bind(x))


def qr(x: Any, *, full_matrices: bool = True) -> tuple[Any, Any]:
    """``jax.lax.linalg.qr(x, *, full_matrices=True)``: ``(q, r)``."""
    return tuple(qr_p.bind(x, full_matrices=bool(full_matrices)))


def eigh(x: Any, *, lower: bool = True, symmetrize_input: bool = True) -> tuple[Any, Any]:
    """``jax.lax.linalg.eigh(x, *, lower=True, symmetrize_input=True)``: ``(v, w)``, the
    eigenvectors (columns of ``v``) and ascending (real) eigenvalues of the symmetric (Hermitian) ``x``."""
    return tuple(eigh_p.bind(symmetrize(x) if symmetrize_input else x, lower=bool(lower)))


def svd(x: Any, *, full_matrices: bool = True, compute_uv: bool = True) -> Any:
    """``jax.lax.linalg.svd(x, *, full_matrices=True, compute_uv=True)``: ``(u, s, vh)``, or
    ``s`` alone when not ``compute_uv``; singular values descending."""
    outs = svd_p.bind(x, full_matrices=bool(full_matrices), compute_uv=bool(compute_uv))
    return tuple(outs) if compute_uv else outs[0]
