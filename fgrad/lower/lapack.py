"""Lowering of the decompositions (``ops.linalg``): LAPACK and BLAS called inside the program.

Each rule copies its operand into a scratch buffer with a kernel (so whatever computed the
operand fuses into that copy), runs a program ``Loop`` over the batch whose body calls the
routine on the current matrix (``ExternCall`` with ``BufferAt`` arguments), and returns its
results as lazy reads of the routine's buffers (so masking, transposing back and the NaNs of
failures fuse into the readers). Everything runs inside the program's one native call; the
symbols (``fgrad_lapack_spotrf``, ``..._dtrsm``: ``s`` routines for float32, ``d`` for
float64, ``c`` for complex64, ``z`` for complex128, with ``ungqr``/``heevd`` in place of
``orgqr``/``syevd``) are bound when the code is loaded (``fgrad.lower.extern``, SciPy's LAPACK).

Complex matrices: the complex-program pass (``fgrad.lower.complex_split``) turns a decomposition
of complex operands into ``complex_decomposition_p`` over their real and imaginary parts. Its
rule here is each decomposition's rule with elements two reals wide: the operand's copy
interleaves the parts (real, imaginary: the complex layout the routines take), the complex
routine runs on it, and each complex result is read back as its two parts (real results, the
eigenvalues and singular values, as they are). Nothing leaves the native call.

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

from fgrad.core import dtypes
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


_PREFIXES = {"float32": "s", "float64": "d", "complex64": "c", "complex128": "z"}
_COMPLEX_NAMES = {"orgqr": "ungqr", "syevd": "heevd"}


def _symbol(dtype: np.dtype, routine: str) -> str:
    """The symbol of LAPACK routine ``routine`` (``"potrf"``) for ``dtype`` (complex dtypes
    name the complex routine: ``zpotrf``, ``zungqr`` for ``orgqr``); raises ``MissingSciPy``
    (naming ``pip install scipy``) when SciPy is not installed."""
    prefix = _PREFIXES.get(np.dtype(dtype).name)
    if prefix is None:
        raise NotLowerable(f"LAPACK routines take float32, float64, complex64 or complex128 matrices, got {dtype}")
    if prefix in "cz":
        routine = _COMPLEX_NAMES.get(routine, routine)
    scipy_modules()
    return lapack_symbol(prefix + routine)


class _Elements:
    """How the routines' buffers hold one matrix element: ``width`` reals of ``real`` (1; 2 for a
    complex element, real part then imaginary part), and the dtype the routine is named by."""

    def __init__(self, real: np.dtype, is_complex: bool) -> None:
        self.real = np.dtype(real)
        self.width = 2 if is_complex else 1
        self.routine_dtype = dtypes.complex_dtype(self.real) if is_complex else self.real

    def shape(self, shape: Sequence[int]) -> tuple:
        """A buffer shape for ``shape`` elements."""
        return tuple(shape) + ((2,) if self.width == 2 else ())

    def at(self, flat: K.Expr, part: int) -> K.Expr:
        """The real index of part ``part`` of element ``flat``."""
        return flat if self.width == 1 else flat * 2 + part

    def read(self, kb: KernelBuilder, buf: K.Buffer, flat: K.Expr) -> list[K.Expr]:
        """Element ``flat`` of ``buf``, part by part."""
        return [kb.param(buf)[self.at(flat, p)] for p in range(self.width)]


def _elements(values: Sequence[Value]) -> _Elements:
    return _Elements(_dtype_of(values[0].aval), len(values) == 2)


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


def _copy_matrices(lw: Lowerer, parts: Sequence[Value], buf: K.Buffer, column_major: bool) -> None:
    """Write the matrices ``[..., m, n]`` whose parts are ``parts`` (one real value, or a complex
    one's real and imaginary parts) into ``buf``, matrix after matrix, each row-major or
    column-major, the parts of an element side by side: one kernel, which reads (fuses)
    whatever computes them."""
    shape = parts[0].aval.shape
    m, n = shape[-2:]
    el = _elements(parts)
    kb = KernelBuilder()
    out = kb.param(buf)
    idx = [kb.var() for _ in shape]
    i, j = idx[-2], idx[-1]
    flat = ravel(idx[:-2], shape[:-2]) * (m * n) + (j * m + i if column_major else i * n + j)
    body = [out.store(el.at(flat, p), K.cast(v.read(kb, idx), buf.dtype)) for p, v in enumerate(parts)]
    lw.emit(kb, "lapack_in", loop_nest(idx, shape, body, math.prod(shape),
                                       vectorize_inner=not column_major and el.width == 1))


def _lazy(aval: ShapedArray, read: Callable) -> LazyValue:
    """A result read on the fly from the routines' buffers by ``read(kb, idx)``."""
    return LazyValue(aval, read, 2)


def _lazy_parts(aval: ShapedArray, el: _Elements, read: Callable) -> list[Value]:
    """A result's parts read on the fly: ``read(kb, idx, part)``."""
    return [_lazy(aval, functools.partial(_read_part, read, p)) for p in range(el.width)]


def _read_part(read: Callable, part: int, kb, idx):
    return read(kb, idx, part)


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


def _set_aside_nonfinite(lw: Lowerer, work: K.Buffer, el: _Elements, count: int, n: int, m: int,
                         read: Callable[[K.Expr, K.Expr], K.Expr] | None = None) -> K.Buffer:
    """Flag (``bad[b] = 1``) and zero each column-major ``m x n`` matrix of ``work`` that
    holds a NaN or an infinity (in either part) where the routine reads it (``read(i, j)``: the
    triangle; None: everywhere): its results are NaN, as the eager implementation gives, and
    the routine gets a harmless matrix (eigensolvers and SVDs on infinities may not terminate)."""
    bad = _scratch(lw, K.int32, (count,), "nonfinite")
    kb = KernelBuilder()
    src, flag = kb.param(work), kb.param(bad)
    b, i, j, e = kb.var("b"), kb.var("i"), kb.var("j"), kb.var("e")
    seen = K.Local("seen", K.bool_)
    flat = b * (m * n) + j * m + i
    check = None
    for value in el.read(kb, work, flat):
        part_check = K.op("not", K.op("is_finite", value))
        check = part_check if check is None else K.op("or", check, part_check)
    if read is not None:
        check = K.logical_and(read(i, j), check)
    size = m * n * el.width
    body = [K.DefineLocal(seen, K.Const(False, K.bool_)),
            K.Range(j, 0, n, [K.Range(i, 0, m, [seen.accumulate(0, "or", check)])]),
            flag.store(b, K.cast(seen[0], K.int32)),
            K.If(seen[0], [K.Range(e, 0, size, [src.store(b * size + e, K.Const(0, work.dtype))])])]
    lw.emit(kb, "lapack_finite", [K.Range(b, 0, count, body)])
    return bad


def _identity(aval: ShapedArray) -> Value:
    """Identity matrices (what JAX gives for the factors of an empty matrix)."""
    if aval.size == 0:
        return ConstValue(aval, 0)
    dtype = ir_dtype(aval.dtype)
    return LazyValue(aval, lambda kb, idx: K.select(K.eq(idx[-2], idx[-1]), K.Const(1, dtype), K.Const(0, dtype)), 1)


def _identity_parts(aval: ShapedArray, el: _Elements) -> list[Value]:
    return [_identity(aval)] + [ConstValue(aval, 0)] * (el.width - 1)


def _run_now(symbol: str, *args: Any) -> None:
    """Call a routine at lowering time (a workspace query): a str is a char argument, an int
    an int32 one, an array is passed as is."""
    arrays = [np.array([ord(a)], np.uint8) if isinstance(a, str)
              else np.array([a], np.int32) if isinstance(a, int) else a for a in args]
    call_routine(symbol, [x.ctypes.data for x in arrays])


def _size_from(work: np.ndarray) -> int:
    """A workspace size LAPACK returned as a float (rounded up: a float32 may have lost bits;
    a complex workspace gives it as its real part)."""
    return max(1, int(math.ceil(float(np.real(work[0])) * (1 + 2.0 ** -20))))


def _gesdd_rwork(jobz: str, m: int, n: int) -> int:
    """The real workspace complex gesdd needs (LAPACK >= 3.7's bound; it does not report it)."""
    small, large = min(m, n), max(m, n)
    if jobz == "N":
        return max(1, 7 * small)
    return max(1, small * max(5 * small + 7, 2 * large + 2 * small + 1))


@functools.lru_cache(maxsize=None)
def _query(symbol: str, dtype_name: str, *dims: Any) -> tuple[int, ...]:
    """Workspace sizes (``lwork``; and ``liwork`` for ``syevd``, ``lrwork`` then ``liwork``
    for ``heevd``) that ``symbol`` asks for on matrices of these dimensions: a ``lwork = -1``
    query."""
    dtype = np.dtype(dtype_name)
    real = np.zeros(1, dtypes.real_dtype(dtype))
    one = lambda: np.zeros(1, dtype)
    work, iwork, info = one(), np.zeros(1, np.int32), np.zeros(1, np.int32)
    routine = symbol.removeprefix(LAPACK_PREFIX)[1:]          # without its s/d/c/z
    if routine == "geqrf":
        m, n = dims
        _run_now(symbol, m, n, one(), max(1, m), one(), work, -1, info)
    elif routine in ("orgqr", "ungqr"):
        m, n, k = dims
        _run_now(symbol, m, n, k, one(), max(1, m), one(), work, -1, info)
    elif routine == "syevd":
        uplo, n = dims
        _run_now(symbol, "V", uplo, n, one(), max(1, n), one(), work, -1, iwork, -1, info)
        return _size_from(work), max(1, int(iwork[0]))
    elif routine == "heevd":
        uplo, n = dims
        rwork = np.zeros(1, real.dtype)
        _run_now(symbol, "V", uplo, n, one(), max(1, n), real, work, -1, rwork, -1, iwork, -1, info)
        return _size_from(work), _size_from(rwork), max(1, int(iwork[0]))
    else:
        jobz, m, n, ldu, ldvt = dims
        iw = np.zeros(max(1, 8 * min(m, n)), np.int32)
        if dtype.kind == "c":
            rwork = np.zeros(_gesdd_rwork(jobz, m, n), real.dtype)
            _run_now(symbol, jobz, m, n, one(), max(1, m), real, one(), ldu, one(), ldvt, work, -1, rwork, iw, info)
        else:
            _run_now(symbol, jobz, m, n, one(), max(1, m), one(), one(), ldu, one(), ldvt, work, -1, iw, info)
    return (_size_from(work),)


# --- the rules: real operands, and complex ones as their parts --------------------------------------

def _real_rule(core: Callable) -> Callable:
    """The lowering rule of a decomposition of real matrices from its ``core(lw, eqn_params,
    operands, result avals)`` (operands and results as lists of parts: one each here)."""
    def rule(lw: Lowerer, eqn, ins: Sequence[Value]) -> list[Value]:
        avals = [v.aval for v in eqn.outvars]
        outs = core(lw, eqn.params, [[x] for x in ins], avals, eqn.outvars)
        return [v for parts in outs for v in parts]
    return rule


def _complex_decomposition(lw: Lowerer, eqn, ins: Sequence[Value]) -> list[Value]:
    """``complex_decomposition_p``: the decomposition's core with two-part elements."""
    name, params = eqn.params["decomposition"], dict(eqn.params["params"])
    operands = [list(ins[k:k + 2]) for k in range(0, len(ins), 2)]
    result_avals = linalg.complex_results(name, eqn.params["params"],
                                           [ShapedArray(x[0].aval.shape, dtypes.complex_dtype(x[0].aval.dtype))
                                            for x in operands])
    part_avals = [ShapedArray(a.shape, dtypes.real_dtype(a.dtype)) for a in result_avals]
    outs = _CORES[name](lw, params, operands, part_avals, None)
    return [v for parts in outs for v in parts]


# --- cholesky: potrf ------------------------------------------------------------------------------

def _cholesky(lw: Lowerer, params: dict, operands: list, avals: list, outvars) -> list[list[Value]]:
    (a,), (aval,) = operands, avals
    el = _elements(a)
    *batch, n, _ = aval.shape
    potrf = _symbol(el.routine_dtype, "potrf")
    count = math.prod(batch)
    work = _scratch(lw, el.real, el.shape((count, n, n)), "chol")
    info = _scratch(lw, K.int32, (count,), "info")
    _copy_matrices(lw, a, work, column_major=True)
    loop = _BatchLoop(lw, count)
    loop.call(potrf, _char("L"), _int(n), loop.at(work, n * n * el.width), _lead(n), loop.at(info, 1))
    loop.emit()

    def read(kb, idx, part):
        b, (i, j) = _batch_index(idx, batch), idx[-2:]
        value = _nan_unless_ok(kb, info, b, kb.param(work)[el.at(b * (n * n) + j * n + i, part)])
        return K.select(K.op("ge", i, j), value, K.Const(0, el.real))   # JAX: tril(NaN) on failure
    return [_lazy_parts(aval, el, read)]


# --- triangular_solve: trsm -----------------------------------------------------------------------

def _triangular_solve(lw: Lowerer, p: dict, operands: list, avals: list, outvars) -> list[list[Value]]:
    (a, b), (aval,) = operands, avals
    el = _elements(a)
    *batch, rows, cols = aval.shape
    m = a[0].aval.shape[-1]
    trsm = _symbol(el.routine_dtype, "trsm")
    count = math.prod(batch)
    if el.width == 1:
        a_buf = lw.materialize(a[0]).buffer            # read in place (row-major: a^T column-major)
        x = lw.output_buffer(outvars[0], aval, "trsm")
        lw.materialize(b[0], into=x, overwritten=True)   # trsm solves in place
        alpha = K.Const(1, el.real)
    else:                                                # the parts interleaved, row-major
        a_buf = _scratch(lw, el.real, el.shape((count, m, m)), "trsm_a")
        x = _scratch(lw, el.real, el.shape((count, rows, cols)), "trsm")
        _copy_matrices(lw, a, a_buf, column_major=False)
        _copy_matrices(lw, b, x, column_major=False)
        alpha = lw.constant(ShapedArray((2,), el.real), np.array([1, 0])).buffer
    trans = ("C" if p["conjugate_a"] and el.width == 2 else "T") if p["transpose_a"] else "N"
    loop = _BatchLoop(lw, count)
    # row-major x is column-major x^T: op(a) x = b <=> x^T op(a)^T = b^T, and a^T is what trsm sees
    loop.call(trsm, _char("R" if p["left_side"] else "L"), _char("U" if p["lower"] else "L"),
              _char(trans), _char("U" if p["unit_diagonal"] else "N"),
              _int(cols), _int(rows), alpha, loop.at(a_buf, m * m * el.width), _lead(m),
              loop.at(x, rows * cols * el.width), _lead(cols))
    loop.emit()
    if el.width == 1:
        return [[BufferValue(aval, x)]]

    def read(kb, idx, part):
        return kb.param(x)[el.at(ravel(list(idx), aval.shape), part)]
    return [_lazy_parts(aval, el, read)]


# --- lu: getrf --------------------------------------------------------------------------------------

def _lu(lw: Lowerer, params: dict, operands: list, avals: list, outvars) -> list[list[Value]]:
    (a,), (lu_aval, piv_aval, perm_aval) = operands, avals
    el = _elements(a)
    *batch, m, n = lu_aval.shape
    k = min(m, n)
    getrf = _symbol(el.routine_dtype, "getrf")
    count = math.prod(batch)
    perm = (lw.output_buffer(outvars[2], perm_aval, "perm") if outvars is not None
            else _scratch(lw, K.int32, perm_aval.shape, "perm"))
    if k == 0:
        _permutations(lw, None, perm, count, m, 0)
        return [[ConstValue(lu_aval, 0)] * el.width, [ConstValue(piv_aval, 0)], [BufferValue(perm_aval, perm)]]
    work = _scratch(lw, el.real, el.shape((count, n, m)), "lu")
    ipiv = _scratch(lw, K.int32, (count, k), "ipiv")
    info = _scratch(lw, K.int32, (count,), "info")
    _copy_matrices(lw, a, work, column_major=True)
    loop = _BatchLoop(lw, count)
    loop.call(getrf, _int(m), _int(n), loop.at(work, m * n * el.width), _lead(m), loop.at(ipiv, k),
              loop.at(info, 1))
    loop.emit()     # info > 0 (an exactly singular U) is not an error, as in JAX
    _permutations(lw, ipiv, perm, count, m, k)

    def read_lu(kb, idx, part):
        b, (i, j) = _batch_index(idx, batch), idx[-2:]
        return kb.param(work)[el.at(b * (m * n) + j * m + i, part)]

    def read_pivots(kb, idx):
        return kb.param(ipiv)[_batch_index(idx, batch) * k + idx[-1]] - K.Const(1, K.int32)
    return [_lazy_parts(lu_aval, el, read_lu), [_lazy(piv_aval, read_pivots)], [BufferValue(perm_aval, perm)]]


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


# --- qr: geqrf, orgqr (ungqr) -----------------------------------------------------------------------

def _qr(lw: Lowerer, params: dict, operands: list, avals: list, outvars) -> list[list[Value]]:
    (a,), (q_aval, r_aval) = operands, avals
    el = _elements(a)
    *batch, m, n = a[0].aval.shape
    q_cols, k = q_aval.shape[-1], min(m, n)
    rdt = el.routine_dtype
    geqrf, orgqr = _symbol(rdt, "geqrf"), _symbol(rdt, "orgqr")
    if k == 0:
        return [_identity_parts(q_aval, el), [ConstValue(r_aval, 0)] * el.width]
    count = math.prod(batch)
    w = el.width
    work = _scratch(lw, el.real, el.shape((count, n, m)), "qr")            # column-major a, then R and reflectors
    tau = _scratch(lw, el.real, el.shape((count, k)), "tau")
    info = _scratch(lw, K.int32, (count,), "info")
    q = _scratch(lw, el.real, el.shape((count, q_cols, m)), "q")           # column-major Q
    lwork = max(_query(geqrf, rdt.name, m, n)[0], _query(orgqr, rdt.name, m, q_cols, k)[0])
    workspace = _scratch(lw, el.real, el.shape((lwork,)), "lwork")
    _copy_matrices(lw, a, work, column_major=True)
    loop = _BatchLoop(lw, count)
    loop.call(geqrf, _int(m), _int(n), loop.at(work, m * n * w), _lead(m), loop.at(tau, k * w), workspace,
              _int(lwork), loop.at(info, 1))
    loop.emit()
    _reflectors_into_q(lw, work, q, count, m * w, n, q_cols)
    loop = _BatchLoop(lw, count)
    loop.call(orgqr, _int(m), _int(q_cols), _int(k), loop.at(q, m * q_cols * w), _lead(m), loop.at(tau, k * w),
              workspace, _int(lwork), loop.at(info, 1))
    loop.emit()

    def read_q(kb, idx, part):
        b, (i, c) = _batch_index(idx, batch), idx[-2:]
        return kb.param(q)[el.at(b * (m * q_cols) + c * m + i, part)]

    def read_r(kb, idx, part):
        b, (i, j) = _batch_index(idx, batch), idx[-2:]
        return K.select(K.op("le", i, j), kb.param(work)[el.at(b * (m * n) + j * m + i, part)],
                        K.Const(0, el.real))
    return [_lazy_parts(q_aval, el, read_q), _lazy_parts(r_aval, el, read_r)]


def _reflectors_into_q(lw: Lowerer, work: K.Buffer, q: K.Buffer, count: int, m: int, n: int,
                       q_cols: int) -> None:
    """Copy geqrf's reflectors (the first columns of ``work``, ``m`` reals each) into the
    column-major ``q`` that orgqr turns into Q; the columns past ``n`` are zeros (orgqr sets them)."""
    kb = KernelBuilder()
    src, dst = kb.param(work), kb.param(q)
    b, c, i = kb.var("b"), kb.var("c"), kb.var("i")
    value = src.load(b * (m * n) + c * m + i, mask=K.op("lt", c, K.Const(n, K.INDEX)))
    body = [dst.store(b * (m * q_cols) + c * m + i, value)]
    lw.emit(kb, "qr_reflectors", loop_nest([b, c, i], (count, q_cols, m), body, count * q_cols * m))


# --- eigh: syevd (heevd) ----------------------------------------------------------------------------

def _eigh(lw: Lowerer, params: dict, operands: list, avals: list, outvars) -> list[list[Value]]:
    (a,), (v_aval, w_aval) = operands, avals
    el = _elements(a)
    *batch, n, _ = v_aval.shape
    rdt = el.routine_dtype
    syevd = _symbol(rdt, "syevd")
    uplo = "L" if params["lower"] else "U"
    count = math.prod(batch)
    sizes = _query(syevd, rdt.name, uplo, n)
    work = _scratch(lw, el.real, el.shape((count, n, n)), "eigh")
    w = _scratch(lw, el.real, (count, n), "eigvals")
    info = _scratch(lw, K.int32, (count,), "info")
    workspace = _scratch(lw, el.real, el.shape((sizes[0],)), "lwork")
    iworkspace = _scratch(lw, K.int32, (sizes[-1],), "liwork")
    _copy_matrices(lw, a, work, column_major=True)
    triangle = (lambda i, j: K.op("ge", i, j)) if uplo == "L" else (lambda i, j: K.op("le", i, j))
    bad = _set_aside_nonfinite(lw, work, el, count, n, n, triangle)
    loop = _BatchLoop(lw, count)
    real_work = ()
    if el.width == 2:                        # heevd: a real workspace too
        real_work = (_scratch(lw, el.real, (sizes[1],), "lrwork"), _int(sizes[1]))
    loop.call(syevd, _char("V"), _char(uplo), _int(n), loop.at(work, n * n * el.width), _lead(n), loop.at(w, n),
              workspace, _int(sizes[0]), *real_work, iworkspace, _int(sizes[-1]), loop.at(info, 1))
    loop.emit()

    def read_v(kb, idx, part):                 # eigenvector j is column-major column j
        b, (i, j) = _batch_index(idx, batch), idx[-2:]
        return _nan_unless_ok(kb, info, b, kb.param(work)[el.at(b * (n * n) + j * n + i, part)], bad)

    def read_w(kb, idx):
        b = _batch_index(idx, batch)
        return _nan_unless_ok(kb, info, b, kb.param(w)[b * n + idx[-1]], bad)
    return [_lazy_parts(v_aval, el, read_v), [_lazy(w_aval, read_w)]]


# --- svd: gesdd ------------------------------------------------------------------------------------

def _svd(lw: Lowerer, params: dict, operands: list, avals: list, outvars) -> list[list[Value]]:
    (a,) = operands
    el = _elements(a)
    compute_uv, full = params["compute_uv"], params["full_matrices"]
    *batch, m, n = a[0].aval.shape
    k = min(m, n)
    s_aval = avals[1] if compute_uv else avals[0]
    rdt = el.routine_dtype
    gesdd = _symbol(rdt, "gesdd")
    if k == 0:
        empty = [ConstValue(s_aval, 0)]
        return [_identity_parts(avals[0], el), empty, _identity_parts(avals[2], el)] if compute_uv else [empty]
    count = math.prod(batch)
    w = el.width
    jobz = ("A" if full else "S") if compute_uv else "N"
    u_cols, vh_rows = (avals[0].shape[-1], avals[2].shape[-2]) if compute_uv else (1, 1)
    ldu, ldvt = (m, vh_rows) if compute_uv else (1, 1)
    work = _scratch(lw, el.real, el.shape((count, n, m)), "svd")                   # column-major a
    s = _scratch(lw, el.real, (count, k), "sv")
    u = _scratch(lw, el.real, el.shape((count, u_cols, m) if compute_uv else (1,)), "u")     # column-major
    vh = _scratch(lw, el.real, el.shape((count, n, vh_rows) if compute_uv else (1,)), "vh")  # column-major
    info = _scratch(lw, K.int32, (count,), "info")
    (lwork,) = _query(gesdd, rdt.name, jobz, m, n, ldu, ldvt)
    workspace = _scratch(lw, el.real, el.shape((lwork,)), "lwork")
    iworkspace = _scratch(lw, K.int32, (8 * k,), "iwork")
    real_work = (_scratch(lw, el.real, (_gesdd_rwork(jobz, m, n),), "rwork"),) if w == 2 else ()
    _copy_matrices(lw, a, work, column_major=True)
    bad = _set_aside_nonfinite(lw, work, el, count, n, m)
    loop = _BatchLoop(lw, count)
    u_at, vh_at = (loop.at(u, m * u_cols * w), loop.at(vh, vh_rows * n * w)) if compute_uv else (u, vh)
    loop.call(gesdd, _char(jobz), _int(m), _int(n), loop.at(work, m * n * w), _lead(m), loop.at(s, k),
              u_at, _int(ldu), vh_at, _int(ldvt), workspace, _int(lwork), *real_work, iworkspace,
              loop.at(info, 1))
    loop.emit()

    def reader(buf: K.Buffer, rows: int, cols: int, elements: _Elements) -> Callable:
        """Reads of ``buf``'s column-major ``rows x cols`` matrices (``cols`` 0: vectors)."""
        def read(kb, idx, part=0):
            b = _batch_index(idx, batch)
            at = idx[-1] if not cols else idx[-1] * rows + idx[-2]
            flat = b * (rows * max(cols, 1)) + at
            return _nan_unless_ok(kb, info, b, kb.param(buf)[elements.at(flat, part)], bad)
        return read
    s_value = [_lazy(s_aval, reader(s, k, 0, _Elements(el.real, False)))]
    if not compute_uv:
        return [s_value]
    return [_lazy_parts(avals[0], el, reader(u, m, u_cols, el)), s_value,
            _lazy_parts(avals[2], el, reader(vh, vh_rows, n, el))]


_CORES = {"cholesky": _cholesky, "triangular_solve": _triangular_solve, "lu": _lu, "qr": _qr, "eigh": _eigh,
          "svd": _svd}
for _name, _core in _CORES.items():
    RULES[linalg.DECOMPOSITIONS[_name]] = _real_rule(_core)
RULES[linalg.complex_decomposition_p] = _complex_decomposition
