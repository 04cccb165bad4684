"""Lowering of the decompositions (``ops.linalg``): LAPACK and BLAS called inside the program.

Each rule copies its operand into a scratch buffer with a kernel (so whatever computed the
operand fuses into that copy), runs a program ``Loop`` over the batch whose body calls the
routine on the current matrix (``ExternCall`` with ``BufferAt`` arguments), and returns its
results as lazy reads of the routine's buffers (so masking, transposing back and the NaNs of
failures fuse into the readers). Everything runs inside the program's one native call; the
symbols (``fgrad_lapack_spotrf``, ``..._dtrsm``: ``s`` routines for float32, ``d`` for
float64) are bound when the code is loaded (``fgrad.lower.extern``, SciPy's LAPACK).

Layout: LAPACK is column-major, fgrad row-major. The copy of the operand transposes it, so
each routine factors the matrix itself, exactly as the eager implementations (and JAX) do:
the same routine on the same matrix gives the same rounding and the same signs of
eigenvectors and singular vectors, whatever triangle or transposed problem another
formulation would pick. The results are read back transposed (lazily). ``triangular_solve``
needs no transposition: a row-major ``x`` is the column-major ``x^T``, and ``op(a) x = b``
is ``x^T op(a)^T = b^T``, so ``trsm`` with the side and the triangle swapped (the
transposition kept) solves in place in the output, reading ``a`` where it is.

Workspace sizes are asked of LAPACK at lowering time (``lwork = -1`` queries through ctypes);
the workspace is a scratch buffer of the program's memory plan, shared by the batch's
iterations. Failures are JAX's: ``cholesky`` of a matrix that is not positive definite, and
an ``eigh`` or ``svd`` that does not converge, give NaN for that matrix; so does a NaN or an
infinity in what ``eigh`` or ``svd`` reads (checked first, as the eager implementations do:
the routine then runs on zeros); ``lu`` of a singular matrix is not an error; ``qr`` and
``trsm`` report none.

On the GPU the rules emit the same steps, and ``backends/cuda`` runs a program holding one
on the host CPU (``HostFallbackWarning``; docs/architecture.md, "Decompositions").
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable, Sequence

import numpy as np

from fgrad.core.types import ShapedArray
from fgrad.lower import kernel as K
from fgrad.lower.extern import LAPACK_PREFIX, call_routine, lapack_symbol, scipy_modules
from fgrad.lower.schedule import (BufferValue, ConstValue, KernelBuilder, LazyValue, Lowerer, NotLowerable,
                                  Value, ir_dtype, loop_nest, ravel)
from fgrad.ops import linalg

#: Lowering rules by primitive.
RULES: dict = {}

_ZERO_INFO = K.Const(0, K.int32)


# --- helpers --------------------------------------------------------------------------------------

def _dtype_of(aval: ShapedArray) -> np.dtype:
    return ir_dtype(aval.dtype)


def _symbol(dtype: np.dtype, routine: str) -> str:
    """The symbol of LAPACK routine ``routine`` (``"potrf"``) for ``dtype``; raises
    ``MissingSciPy`` (naming ``pip install scipy``) when SciPy is not installed."""
    prefix = {K.float32: "s", K.float64: "d"}.get(K.as_dtype(dtype))
    if prefix is None:
        raise NotLowerable(f"LAPACK routines take float32 or float64 matrices, got {dtype}")
    scipy_modules()
    return lapack_symbol(prefix + routine)


def _char(c: str) -> K.Const:
    return K.Const(ord(c), K.uint8)


def _int(n: int) -> K.Const:
    return K.Const(int(n), K.int32)


def _lead(n: int) -> K.Const:
    """A leading dimension: LAPACK wants at least 1, even for an empty matrix."""
    return _int(max(1, n))


def _scratch(lw: Lowerer, dtype: np.dtype, shape: Sequence[int], hint: str) -> K.Buffer:
    return K.Buffer(f"{hint}{next(lw.names)}", dtype, tuple(shape))


class _BatchLoop:
    """The program loop over ``count`` matrices: ``at(buf, stride)`` is the current matrix of
    ``buf`` (``stride`` elements per matrix); ``call`` adds a routine call to the body."""

    def __init__(self, lw: Lowerer, count: int) -> None:
        self.lw, self.count = lw, count
        self.index = K.Buffer(f"matrix{next(lw.names)}", K.INDEX, ())
        self.body: list = []

    def at(self, buf: K.Buffer, stride: int) -> K.BufferAt:
        return K.BufferAt(buf, self.index, stride)

    def call(self, symbol: str, *args: Any) -> None:
        self.body.append(K.ExternCall(symbol, args))

    def emit(self) -> None:
        self.lw.steps.append(K.Loop(self.count, tuple(self.body), self.index))


def _copy_matrices(lw: Lowerer, value: Value, buf: K.Buffer, column_major: bool) -> None:
    """Write ``value`` (``[..., m, n]``) into ``buf``, matrix after matrix, each row-major or
    column-major: one kernel, which reads (fuses) whatever computes ``value``."""
    shape = value.aval.shape
    m, n = shape[-2:]
    kb = KernelBuilder()
    out = kb.param(buf)
    idx = [kb.var() for _ in shape]
    i, j = idx[-2], idx[-1]
    flat = ravel(idx[:-2], shape[:-2]) * (m * n) + (j * m + i if column_major else i * n + j)
    body = [out.store(flat, K.cast(value.read(kb, idx), buf.dtype))]
    lw.emit(kb, "lapack_in", loop_nest(idx, shape, body, buf.size, vectorize_inner=not column_major))


def _lazy(aval: ShapedArray, read: Callable) -> LazyValue:
    """A result read on the fly from the routines' buffers by ``read(kb, idx)``."""
    return LazyValue(aval, read, 2)


def _batch_index(idx: Sequence[K.Expr], batch: Sequence[int]) -> K.Expr:
    return ravel(list(idx[:len(batch)]), batch)


def _ok(kb: KernelBuilder, info: K.Buffer, bad: K.Buffer | None, b: K.Expr) -> K.Expr:
    """Matrix ``b`` factored: its ``info`` is 0 (and its ``bad`` flag, if any, too)."""
    ok = K.eq(kb.param(info)[b], _ZERO_INFO)
    return ok if bad is None else K.logical_and(ok, K.eq(kb.param(bad)[b], _ZERO_INFO))


def _nan_unless_ok(kb: KernelBuilder, info: K.Buffer, b: K.Expr, value: K.Expr,
                   bad: K.Buffer | None = None) -> K.Expr:
    """``value``, or NaN where the routine reported a failure for matrix ``b`` (or ``bad[b]``:
    its input was not finite)."""
    return K.select(_ok(kb, info, bad, b), value, K.Const(np.nan, value.dtype))


def _set_aside_nonfinite(lw: Lowerer, work: K.Buffer, count: int, n: int, m: int,
                         read: Callable[[K.Expr, K.Expr], K.Expr] | None = None) -> K.Buffer:
    """Flag (``bad[b] = 1``) and zero each column-major ``m x n`` matrix of ``work`` that
    holds a NaN or an infinity where the routine reads it (``read(i, j)``: the triangle; None:
    everywhere): its results are NaN, as the eager implementation gives, and the routine gets
    a harmless matrix (eigensolvers and SVDs on infinities may not terminate)."""
    bad = _scratch(lw, K.int32, (count,), "nonfinite")
    kb = KernelBuilder()
    src, flag = kb.param(work), kb.param(bad)
    b, i, j, e = kb.var("b"), kb.var("i"), kb.var("j"), kb.var("e")
    seen = K.Local("seen", K.bool_)
    value = src[b * (m * n) + j * m + i]
    check = K.op("not", K.op("is_finite", value))
    if read is not None:
        check = K.logical_and(read(i, j), check)
    body = [K.DefineLocal(seen, K.Const(False, K.bool_)),
            K.Range(j, 0, n, [K.Range(i, 0, m, [seen.accumulate(0, "or", check)])]),
            flag.store(b, K.cast(seen[0], K.int32)),
            K.If(seen[0], [K.Range(e, 0, m * n, [src.store(b * (m * n) + e, K.Const(0, work.dtype))])])]
    lw.emit(kb, "lapack_finite", [K.Range(b, 0, count, body)])
    return bad


def _identity(aval: ShapedArray) -> Value:
    """Identity matrices (what JAX gives for the factors of an empty matrix)."""
    if aval.size == 0:
        return ConstValue(aval, 0)
    dtype = ir_dtype(aval.dtype)
    return LazyValue(aval, lambda kb, idx: K.select(K.eq(idx[-2], idx[-1]), K.Const(1, dtype), K.Const(0, dtype)), 1)


def _run_now(symbol: str, *args: Any) -> None:
    """Call a routine at lowering time (a workspace query): a str is a char argument, an int
    an int32 one, an array is passed as is."""
    arrays = [np.array([ord(a)], np.uint8) if isinstance(a, str)
              else np.array([a], np.int32) if isinstance(a, int) else a for a in args]
    call_routine(symbol, [x.ctypes.data for x in arrays])


def _size_from(work: np.ndarray) -> int:
    """A workspace size LAPACK returned as a float (rounded up: a float32 may have lost bits)."""
    return max(1, int(math.ceil(float(work[0]) * (1 + 2.0 ** -20))))


@functools.lru_cache(maxsize=None)
def _query(symbol: str, dtype_name: str, *dims: Any) -> tuple[int, ...]:
    """Workspace sizes (``lwork``, and ``liwork`` for ``syevd``) that ``symbol`` asks for on
    matrices of these dimensions: a ``lwork = -1`` query."""
    dtype = np.dtype(dtype_name)
    one = lambda: np.zeros(1, dtype)
    work, iwork, info = one(), np.zeros(1, np.int32), np.zeros(1, np.int32)
    routine = symbol.removeprefix(LAPACK_PREFIX)[1:]          # without its s/d
    if routine == "geqrf":
        m, n = dims
        _run_now(symbol, m, n, one(), max(1, m), one(), work, -1, info)
    elif routine == "orgqr":
        m, n, k = dims
        _run_now(symbol, m, n, k, one(), max(1, m), one(), work, -1, info)
    elif routine == "syevd":
        uplo, n = dims
        _run_now(symbol, "V", uplo, n, one(), max(1, n), one(), work, -1, iwork, -1, info)
        return _size_from(work), max(1, int(iwork[0]))
    else:
        jobz, m, n, ldu, ldvt = dims
        _run_now(symbol, jobz, m, n, one(), max(1, m), one(), one(), ldu, one(), ldvt, work, -1,
                 np.zeros(max(1, 8 * min(m, n)), np.int32), info)
    return (_size_from(work),)


# --- cholesky: potrf ------------------------------------------------------------------------------

def _cholesky(lw: Lowerer, eqn, ins: Sequence[Value]) -> list[Value]:
    aval = eqn.outvars[0].aval
    *batch, n, _ = aval.shape
    dtype = _dtype_of(aval)
    potrf = _symbol(dtype, "potrf")
    count = math.prod(batch)
    work = _scratch(lw, dtype, (count, n, n), "chol")
    info = _scratch(lw, K.int32, (count,), "info")
    _copy_matrices(lw, ins[0], work, column_major=True)
    loop = _BatchLoop(lw, count)
    loop.call(potrf, _char("L"), _int(n), loop.at(work, n * n), _lead(n), loop.at(info, 1))
    loop.emit()

    def read(kb, idx):
        b, (i, j) = _batch_index(idx, batch), idx[-2:]
        below = K.select(K.op("ge", i, j), kb.param(work)[b * (n * n) + j * n + i], K.Const(0, dtype))
        return _nan_unless_ok(kb, info, b, below)
    return [_lazy(aval, read)]


RULES[linalg.cholesky_p] = _cholesky


# --- triangular_solve: trsm -----------------------------------------------------------------------

def _triangular_solve(lw: Lowerer, eqn, ins: Sequence[Value]) -> list[Value]:
    a, b = ins
    p = eqn.params
    aval = eqn.outvars[0].aval
    *batch, rows, cols = aval.shape
    m = a.aval.shape[-1]
    dtype = _dtype_of(aval)
    trsm = _symbol(dtype, "trsm")
    count = math.prod(batch)
    a_buf = lw.materialize(a).buffer            # read in place (row-major: a^T column-major)
    x = lw.output_buffer(eqn.outvars[0], aval, "trsm")
    lw.materialize(b, into=x, overwritten=True)   # trsm solves in place
    loop = _BatchLoop(lw, count)
    # row-major x is column-major x^T: op(a) x = b <=> x^T op(a)^T = b^T, and a^T is what trsm sees
    loop.call(trsm, _char("R" if p["left_side"] else "L"), _char("U" if p["lower"] else "L"),
              _char("T" if p["transpose_a"] else "N"), _char("U" if p["unit_diagonal"] else "N"),
              _int(cols), _int(rows), K.Const(1, dtype), loop.at(a_buf, m * m), _lead(m),
              loop.at(x, rows * cols), _lead(cols))
    loop.emit()
    return [BufferValue(aval, x)]


RULES[linalg.triangular_solve_p] = _triangular_solve


# --- lu: getrf --------------------------------------------------------------------------------------

def _lu(lw: Lowerer, eqn, ins: Sequence[Value]) -> list[Value]:
    lu_aval, piv_aval, perm_aval = (v.aval for v in eqn.outvars)
    *batch, m, n = lu_aval.shape
    k = min(m, n)
    dtype = _dtype_of(lu_aval)
    getrf = _symbol(dtype, "getrf")
    count = math.prod(batch)
    perm = lw.output_buffer(eqn.outvars[2], perm_aval, "perm")
    if k == 0:
        _permutations(lw, None, perm, count, m, 0)
        return [ConstValue(lu_aval, 0), ConstValue(piv_aval, 0), BufferValue(perm_aval, perm)]
    work = _scratch(lw, dtype, (count, n, m), "lu")
    ipiv = _scratch(lw, K.int32, (count, k), "ipiv")
    info = _scratch(lw, K.int32, (count,), "info")
    _copy_matrices(lw, ins[0], work, column_major=True)
    loop = _BatchLoop(lw, count)
    loop.call(getrf, _int(m), _int(n), loop.at(work, m * n), _lead(m), loop.at(ipiv, k), loop.at(info, 1))
    loop.emit()     # info > 0 (an exactly singular U) is not an error, as in JAX
    _permutations(lw, ipiv, perm, count, m, k)

    def read_lu(kb, idx):
        b, (i, j) = _batch_index(idx, batch), idx[-2:]
        return kb.param(work)[b * (m * n) + j * m + i]

    def read_pivots(kb, idx):
        return kb.param(ipiv)[_batch_index(idx, batch) * k + idx[-1]] - K.Const(1, K.int32)
    return [_lazy(lu_aval, read_lu), _lazy(piv_aval, read_pivots), BufferValue(perm_aval, perm)]


def _permutations(lw: Lowerer, ipiv: K.Buffer | None, perm: K.Buffer, count: int, m: int, k: int) -> None:
    """``perm[b]``: the rows of matrix ``b`` after getrf's swaps (row ``i`` with row
    ``ipiv[b, i] - 1``, in order), starting from ``0..m-1``."""
    kb = KernelBuilder()
    out = kb.param(perm)
    b, r, i = kb.var("b"), kb.var("r"), kb.var("i")
    row = b * m
    steps = [K.Range(r, 0, m, [out.store(row + r, K.cast(r, K.int32))])]
    if k:
        other = row + K.cast(kb.param(ipiv)[b * k + i] - K.Const(1, K.int32), K.INDEX)
        held = K.Local("held", K.int32)
        steps.append(K.Range(i, 0, k, [K.DefineLocal(held, out[row + i]), out.store(row + i, out[other]),
                                       out.store(other, held[0])]))
    lw.emit(kb, "lu_permutation", [K.Range(b, 0, count, steps)])


RULES[linalg.lu_p] = _lu


# --- qr: geqrf, orgqr ------------------------------------------------------------------------------

def _qr(lw: Lowerer, eqn, ins: Sequence[Value]) -> list[Value]:
    q_aval, r_aval = (v.aval for v in eqn.outvars)
    *batch, m, n = ins[0].aval.shape
    q_cols, k = q_aval.shape[-1], min(m, n)
    dtype = _dtype_of(q_aval)
    geqrf, orgqr = _symbol(dtype, "geqrf"), _symbol(dtype, "orgqr")
    if k == 0:
        return [_identity(q_aval), ConstValue(r_aval, 0)]
    count = math.prod(batch)
    work = _scratch(lw, dtype, (count, n, m), "qr")            # column-major a, then R and reflectors
    tau = _scratch(lw, dtype, (count, k), "tau")
    info = _scratch(lw, K.int32, (count,), "info")
    q = _scratch(lw, dtype, (count, q_cols, m), "q")           # column-major Q
    lwork = max(_query(geqrf, dtype.name, m, n)[0], _query(orgqr, dtype.name, m, q_cols, k)[0])
    workspace = _scratch(lw, dtype, (lwork,), "lwork")
    _copy_matrices(lw, ins[0], work, column_major=True)
    loop = _BatchLoop(lw, count)
    loop.call(geqrf, _int(m), _int(n), loop.at(work, m * n), _lead(m), loop.at(tau, k), workspace,
              _int(lwork), loop.at(info, 1))
    loop.emit()
    _reflectors_into_q(lw, work, q, count, m, n, q_cols)
    loop = _BatchLoop(lw, count)
    loop.call(orgqr, _int(m), _int(q_cols), _int(k), loop.at(q, m * q_cols), _lead(m), loop.at(tau, k),
              workspace, _int(lwork), loop.at(info, 1))
    loop.emit()

    def read_q(kb, idx):
        b, (i, c) = _batch_index(idx, batch), idx[-2:]
        return kb.param(q)[b * (m * q_cols) + c * m + i]

    def read_r(kb, idx):
        b, (i, j) = _batch_index(idx, batch), idx[-2:]
        return K.select(K.op("le", i, j), kb.param(work)[b * (m * n) + j * m + i], K.Const(0, dtype))
    return [_lazy(q_aval, read_q), _lazy(r_aval, read_r)]


def _reflectors_into_q(lw: Lowerer, work: K.Buffer, q: K.Buffer, count: int, m: int, n: int,
                       q_cols: int) -> None:
    """Copy geqrf's reflectors (the first columns of ``work``) into the column-major ``q`` that
    orgqr turns into Q; the columns past ``n`` are zeros (orgqr sets them)."""
    kb = KernelBuilder()
    src, dst = kb.param(work), kb.param(q)
    b, c, i = kb.var("b"), kb.var("c"), kb.var("i")
    value = src.load(b * (m * n) + c * m + i, mask=K.op("lt", c, K.Const(n, K.INDEX)))
    body = [dst.store(b * (m * q_cols) + c * m + i, value)]
    lw.emit(kb, "qr_reflectors", loop_nest([b, c, i], (count, q_cols, m), body, count * q_cols * m))


RULES[linalg.qr_p] = _qr


# --- eigh: syevd ------------------------------------------------------------------------------------

def _eigh(lw: Lowerer, eqn, ins: Sequence[Value]) -> list[Value]:
    v_aval, w_aval = (v.aval for v in eqn.outvars)
    *batch, n, _ = v_aval.shape
    dtype = _dtype_of(v_aval)
    syevd = _symbol(dtype, "syevd")
    uplo = "L" if eqn.params["lower"] else "U"
    count = math.prod(batch)
    lwork, liwork = _query(syevd, dtype.name, uplo, n)
    work = _scratch(lw, dtype, (count, n, n), "eigh")
    w = _scratch(lw, dtype, (count, n), "eigvals")
    info = _scratch(lw, K.int32, (count,), "info")
    workspace = _scratch(lw, dtype, (lwork,), "lwork")
    iworkspace = _scratch(lw, K.int32, (liwork,), "liwork")
    _copy_matrices(lw, ins[0], work, column_major=True)
    triangle = (lambda i, j: K.op("ge", i, j)) if uplo == "L" else (lambda i, j: K.op("le", i, j))
    bad = _set_aside_nonfinite(lw, work, count, n, n, triangle)
    loop = _BatchLoop(lw, count)
    loop.call(syevd, _char("V"), _char(uplo), _int(n), loop.at(work, n * n), _lead(n), loop.at(w, n),
              workspace, _int(lwork), iworkspace, _int(liwork), loop.at(info, 1))
    loop.emit()

    def read_v(kb, idx):                 # eigenvector j is column-major column j
        b, (i, j) = _batch_index(idx, batch), idx[-2:]
        return _nan_unless_ok(kb, info, b, kb.param(work)[b * (n * n) + j * n + i], bad)

    def read_w(kb, idx):
        b = _batch_index(idx, batch)
        return _nan_unless_ok(kb, info, b, kb.param(w)[b * n + idx[-1]], bad)
    return [_lazy(v_aval, read_v), _lazy(w_aval, read_w)]


RULES[linalg.eigh_p] = _eigh


# --- svd: gesdd ------------------------------------------------------------------------------------

def _svd(lw: Lowerer, eqn, ins: Sequence[Value]) -> list[Value]:
    avals = [v.aval for v in eqn.outvars]
    compute_uv, full = eqn.params["compute_uv"], eqn.params["full_matrices"]
    *batch, m, n = ins[0].aval.shape
    k = min(m, n)
    s_aval = avals[1] if compute_uv else avals[0]
    dtype = _dtype_of(s_aval)
    gesdd = _symbol(dtype, "gesdd")
    if k == 0:
        empty = ConstValue(s_aval, 0)
        return [_identity(avals[0]), empty, _identity(avals[2])] if compute_uv else [empty]
    count = math.prod(batch)
    jobz = ("A" if full else "S") if compute_uv else "N"
    u_cols, vh_rows = (avals[0].shape[-1], avals[2].shape[-2]) if compute_uv else (1, 1)
    ldu, ldvt = (m, vh_rows) if compute_uv else (1, 1)
    work = _scratch(lw, dtype, (count, n, m), "svd")                   # column-major a
    s = _scratch(lw, dtype, (count, k), "sv")
    u = _scratch(lw, dtype, (count, u_cols, m) if compute_uv else (1,), "u")     # column-major
    vh = _scratch(lw, dtype, (count, n, vh_rows) if compute_uv else (1,), "vh")  # column-major
    info = _scratch(lw, K.int32, (count,), "info")
    (lwork,) = _query(gesdd, dtype.name, jobz, m, n, ldu, ldvt)
    workspace = _scratch(lw, dtype, (lwork,), "lwork")
    iworkspace = _scratch(lw, K.int32, (8 * k,), "iwork")
    _copy_matrices(lw, ins[0], work, column_major=True)
    bad = _set_aside_nonfinite(lw, work, count, n, m)
    loop = _BatchLoop(lw, count)
    u_at, vh_at = (loop.at(u, m * u_cols), loop.at(vh, vh_rows * n)) if compute_uv else (u, vh)
    loop.call(gesdd, _char(jobz), _int(m), _int(n), loop.at(work, m * n), _lead(m), loop.at(s, k),
              u_at, _int(ldu), vh_at, _int(ldvt), workspace, _int(lwork), iworkspace, loop.at(info, 1))
    loop.emit()

    def reader(buf: K.Buffer, rows: int, cols: int) -> Callable:
        """Reads of ``buf``'s column-major ``rows x cols`` matrices (``cols`` 0: vectors)."""
        def read(kb, idx):
            b = _batch_index(idx, batch)
            at = idx[-1] if not cols else idx[-1] * rows + idx[-2]
            return _nan_unless_ok(kb, info, b, kb.param(buf)[b * (rows * max(cols, 1)) + at], bad)
        return read
    s_value = _lazy(s_aval, reader(s, k, 0))
    if not compute_uv:
        return [s_value]
    return [_lazy(avals[0], reader(u, m, u_cols)), s_value, _lazy(avals[2], reader(vh, vh_rows, n))]


RULES[linalg.svd_p] = _svd
