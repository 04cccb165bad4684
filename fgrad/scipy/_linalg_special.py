"""The special matrices of ``jax.scipy.linalg``: ``toeplitz``, ``hankel``, ``circulant``,
``leslie``, ``companion``, ``fiedler``, ``fiedler_companion``, ``convolution_matrix`` (built
from their vectors, batched over leading dimensions, differentiable in them, as JAX's), and the
fixed matrices of a static size ``n``: ``hilbert``, ``invhilbert``, ``pascal``, ``invpascal``,
``helmert``, ``hadamard``, ``dft``.

The fixed matrices are constants: fgrad computes their entries on the host in exact integer
(or float64) arithmetic and rounds once to the result's dtype, where JAX evaluates a float32
formula on the device (``pascal(4)[0, 0]`` is 1.0 here, 0.99999905 in JAX; both float32).
"""
from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

from fgrad import numpy as fnp
from fgrad.numpy import linalg as fla

__all__ = ["toeplitz", "hankel", "circulant", "leslie", "companion", "fiedler", "fiedler_companion",
           "convolution_matrix", "hilbert", "invhilbert", "pascal", "invpascal", "helmert", "hadamard", "dft"]


def _inexact(op: str, x: Any) -> Any:
    """``x`` as an array of a floating (or complex) dtype, at least 1-D."""
    (x,) = fla._floats(f"jax.scipy.linalg.{op}", fnp.asarray(x))
    return fnp.atleast_1d(x)


def _broadcast_vectors(x: Any, y: Any) -> tuple[Any, Any]:
    """``x [..., m]`` and ``y [..., n]`` with their leading dimensions broadcast and one dtype."""
    dtype = fnp.result_type(x, y)
    batch = fnp.broadcast_shapes(x.shape[:-1], y.shape[:-1])
    return (fnp.broadcast_to(x.astype(dtype), batch + x.shape[-1:]),
            fnp.broadcast_to(y.astype(dtype), batch + y.shape[-1:]))


def _default_float() -> np.dtype:
    return fnp.result_type(float)


# --- matrices built from vectors ---------------------------------------------------------------------

def toeplitz(c, r=None):
    """``jax.scipy.linalg.toeplitz(c, r=None)``: the Toeplitz matrix with first column ``c`` and
    first row ``r`` (``conj(c)`` when omitted: Hermitian); leading dimensions of ``c`` and ``r``
    broadcast. ``toeplitz([1, 2, 3])[2] == [3, 2, 1]``."""
    c = fnp.atleast_1d(fnp.asarray(c))
    r = fnp.conj(c) if r is None else fnp.atleast_1d(fnp.asarray(r))
    c, r = _broadcast_vectors(c, r)
    m, n = c.shape[-1], r.shape[-1]
    if m == 0 or n == 0:
        return fnp.zeros(c.shape[:-1] + (m, n), c.dtype)
    elems = fnp.concatenate([fnp.flip(c, axis=-1), r[..., 1:]], axis=-1)      # c reversed, then r's tail
    index = (m - 1) - np.arange(m)[:, None] + np.arange(n)[None, :]
    return fnp.take(elems, index, axis=-1)


def hankel(c, r=None):
    """``jax.scipy.linalg.hankel(c, r=None)``: the Hankel matrix (constant anti-diagonals) with
    first column ``c`` and last row ``r`` (zeros when omitted; ``r[0]`` is ignored); leading
    dimensions broadcast. ``hankel([1, 2, 3])[1] == [2, 3, 0]``."""
    c = fnp.asarray(c)
    r = fnp.zeros_like(c) if r is None else fnp.asarray(r)
    for name, x in (("c", c), ("r", r)):
        if x.ndim == 0:
            raise ValueError(f"hankel: {name} must be at least 1-dimensional, got a scalar.")
    c, r = _broadcast_vectors(c, r)
    m, n = c.shape[-1], r.shape[-1]
    if m == 0 or n == 0:
        return fnp.zeros(c.shape[:-1] + (m, n), c.dtype)
    elems = fnp.concatenate([c, r[..., 1:]], axis=-1)
    return fnp.take(elems, np.arange(m)[:, None] + np.arange(n)[None, :], axis=-1)


def circulant(c):
    """``jax.scipy.linalg.circulant(c)``: the circulant matrix with first column ``c`` (each
    column the previous one rolled down by one); leading dimensions are batch dimensions."""
    c = fnp.atleast_1d(fnp.asarray(c))
    n = c.shape[-1]
    return fnp.take(c, (np.arange(n)[:, None] - np.arange(n)[None, :]) % max(n, 1), axis=-1)


def leslie(f, s):
    """``jax.scipy.linalg.leslie(f, s)``: the Leslie matrix, fecundities ``f [..., n]`` in the
    first row and survival rates ``s [..., n - 1]`` on the subdiagonal; batches broadcast."""
    f, s = fnp.atleast_1d(fnp.asarray(f)), fnp.atleast_1d(fnp.asarray(s))
    if f.shape[-1] < 2:
        raise ValueError(f"leslie: the length of f along the last axis must be at least 2; got shape {f.shape}.")
    if s.shape[-1] != f.shape[-1] - 1:
        raise ValueError("leslie: the length of s along the last axis must be one less than the length of f; "
                         f"got f shape {f.shape} and s shape {s.shape}.")
    f, s = _broadcast_vectors(f, s)
    n = f.shape[-1]
    below = fnp.where(np.eye(n - 1, n, dtype=bool), s[..., :, None], fnp.zeros((), f.dtype))
    return fnp.concatenate([f[..., None, :], below], axis=-2)


def companion(a):
    """``jax.scipy.linalg.companion(a)``: the companion matrix of the polynomial with
    coefficients ``a [..., n]`` (highest degree first): first row ``-a[1:] / a[0]``, ones on the
    subdiagonal; its eigenvalues are the polynomial's roots. Integer ``a`` becomes float."""
    a = _inexact("companion", a)
    if a.shape[-1] < 2:
        raise ValueError(f"companion: the length of `a` along the last axis must be at least 2; got shape {a.shape}.")
    m = a.shape[-1] - 1
    first = -a[..., 1:] / a[..., :1]
    ones_below = fnp.broadcast_to(fnp.eye(m - 1, m, dtype=a.dtype), a.shape[:-1] + (m - 1, m))
    return fnp.concatenate([first[..., None, :], ones_below], axis=-2)


def fiedler(a):
    """``jax.scipy.linalg.fiedler(a)``: the symmetric matrix ``|a[i] - a[j]|`` of ``a [..., n]``
    (in ``a``'s dtype; real for complex ``a``)."""
    a = fnp.atleast_1d(fnp.asarray(a))
    return fnp.abs(a[..., :, None] - a[..., None, :])


def _fiedler_companion_pattern(n: int) -> tuple[np.ndarray, np.ndarray]:
    """For an ``n x n`` Fiedler companion matrix: which coefficient (index into ``a``, -1 for
    none) enters each entry negated, and the constant (0 or 1) of the other entries."""
    coeff = np.full((n, n), -1)
    const = np.zeros((n, n))
    coeff[0, 0] = 1
    if n > 1:
        const[1, 0] = 1
    for i in range(0, n, 2):            # even rows: the coefficients right of the diagonal, and 1 two along
        if i + 1 < n:
            coeff[i, i + 1] = min(i + 2, n)
        if i + 2 < n:
            const[i, i + 2] = 1
        if i >= 2:
            coeff[i, i - 1] = min(i + 1, n)
    for i in range(3, n, 2):            # odd rows from the third: 1 two left of the diagonal
        const[i, i - 2] = 1
    return coeff, const


def fiedler_companion(a):
    """``jax.scipy.linalg.fiedler_companion(a)``: the Fiedler companion matrix of the polynomial
    with coefficients ``a [..., n]`` (pentadiagonal, the same eigenvalues as ``companion(a)``);
    ``0 x 0`` for a constant polynomial."""
    a = _inexact("fiedler_companion", a)
    if a.shape[-1] == 0:
        raise ValueError("fiedler_companion requires the last axis of 'a' to have nonzero length, but got an array "
                         f"of shape {a.shape}.")
    n = a.shape[-1] - 1
    if n == 0:
        return fnp.zeros(a.shape[:-1] + (0, 0), a.dtype)
    a = a / a[..., :1]
    coeff, const = _fiedler_companion_pattern(n)
    negated = -fnp.take(a, np.maximum(coeff, 0), axis=-1)
    return fnp.where(coeff >= 0, negated, fnp.asarray(const, a.dtype))


def convolution_matrix(a, n: int, mode: str = "full"):
    """``jax.scipy.linalg.convolution_matrix(a, n, mode='full')``: the Toeplitz matrix ``A``
    with ``A @ v == convolve(a, v, mode)`` for every ``v`` of length ``n``; ``mode`` 'full'
    (``m + n - 1`` rows), 'same' (``max(m, n)``) or 'valid' (``max(m, n) - min(m, n) + 1``)."""
    n = operator.index(n)
    if n <= 0:
        raise ValueError(f"convolution_matrix: n must be a positive integer; got {n}.")
    a = fnp.asarray(a)
    if a.ndim == 0:
        raise ValueError("convolution_matrix: a must be at least 1-dimensional, got a scalar.")
    m = a.shape[-1]
    if m < 1:
        raise ValueError(f"convolution_matrix: len(a) must be at least 1; got shape {a.shape}.")
    if mode not in ("full", "valid", "same"):
        raise ValueError(f"convolution_matrix: mode must be one of 'full', 'valid', 'same'; got {mode!r}.")
    pad = [(0, 0)] * (a.ndim - 1) + [(0, n - 1)]
    full = m + n - 1
    trim = min(n, m) - 1
    start, stop = {"full": (0, 0), "valid": (trim, trim), "same": (trim // 2, trim - trim // 2)}[mode]
    column = fnp.pad(a, pad)[..., start:full - stop]
    row = fnp.pad(fnp.flip(a, axis=-1), pad)[..., full - n - start:full - start]
    return toeplitz(column, row)


# --- fixed matrices of a static size ------------------------------------------------------------------

def _size(op: str, n: Any) -> int:
    try:
        return operator.index(n)
    except TypeError:
        raise TypeError(f"{op}: n must be a static Python integer (the matrix size), got {n!r}") from None


def _exact_float(value: int) -> float:
    """An exact integer as the nearest float64 (an infinity past its range, as a float computation gives)."""
    return float(value) if abs(value).bit_length() < 1024 else math.copysign(math.inf, value)


def hilbert(n: int):
    """``jax.scipy.linalg.hilbert(n)``: the ``n x n`` Hilbert matrix ``1 / (i + j + 1)``."""
    a = fnp.arange(_size("hilbert", n), dtype=_default_float())[:, None]
    return 1 / (a + a.T + 1)


def invhilbert(n: int):
    """``jax.scipy.linalg.invhilbert(n)``: the inverse of ``hilbert(n)`` (integer entries, exact
    before the one rounding to the default float dtype)."""
    n = _size("invhilbert", n)
    out = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            s = i + j
            value = (s + 1) * math.comb(n + i, n - j - 1) * math.comb(n + j, n - i - 1) * math.comb(s, i) ** 2
            out[i, j] = _exact_float(-value if s % 2 else value)
    return fnp.asarray(out, dtype=_default_float())


def _check_kind(kind: str | None) -> str:
    kind = "symmetric" if kind is None else kind
    if kind not in ("symmetric", "lower", "upper"):
        raise ValueError(f"Expected kind to be one of: ['symmetric', 'lower', 'upper']; got {kind}")
    return kind


def _integer_lower(n: int, alternating: bool) -> list[list[int]]:
    """The lower-triangular ``C(i, j)`` (times ``(-1)^(i - j)`` when ``alternating``), exact."""
    return [[(-1 if alternating and (i - j) % 2 else 1) * math.comb(i, j) for j in range(n)] for i in range(n)]


def _as_floats(ints: list[list[int]], n: int) -> np.ndarray:
    return np.array([[_exact_float(v) for v in row] for row in ints], dtype=np.float64).reshape(n, n)


def _pascal_family(n: int, kind: str, inverse: bool) -> np.ndarray:
    """``L``, ``L^T`` or the symmetric ``L L^T`` (``L^T L`` for the inverse), ``L`` the lower
    Pascal matrix or its inverse; exact integers rounded once to float64."""
    lower = _integer_lower(n, inverse)
    if kind == "lower":
        return _as_floats(lower, n)
    if kind == "upper":
        return _as_floats(lower, n).T
    if inverse:
        sym = [[sum(lower[k][i] * lower[k][j] for k in range(n)) for j in range(n)] for i in range(n)]
    else:
        sym = [[math.comb(i + j, i) for j in range(n)] for i in range(n)]
    return _as_floats(sym, n)


def pascal(n: int, kind: str | None = None):
    """``jax.scipy.linalg.pascal(n, kind=None)``: the Pascal matrix, 'symmetric' (``C(i + j, i)``,
    the default), 'lower' (``C(i, j)``) or 'upper' (its transpose); float32, as JAX's."""
    kind = _check_kind(kind)
    return fnp.asarray(_pascal_family(_size("pascal", n), kind, inverse=False), dtype=np.float32)


def invpascal(n: int, kind: str | None = None):
    """``jax.scipy.linalg.invpascal(n, kind=None)``: the inverse of ``pascal(n, kind)``, in the
    default float dtype."""
    kind = _check_kind(kind)
    return fnp.asarray(_pascal_family(_size("invpascal", n), kind, inverse=True), dtype=_default_float())


def helmert(n: int, full: bool = False):
    """``jax.scipy.linalg.helmert(n, full=False)``: the ``(n - 1) x n`` Helmert matrix (orthonormal
    rows orthogonal to the ones vector), with the row ``1 / sqrt(n)`` on top when ``full``."""
    n = _size("helmert", n)
    if n < 1:
        raise ValueError(f"helmert: n must be a positive integer; got {n}.")
    k = np.arange(1, n, dtype=np.float64)[:, None]
    j = np.arange(n)[None, :]
    out = np.where(j < k, 1.0, np.where(j == k, -k, 0.0)) / np.sqrt(k * (k + 1))
    if full:
        out = np.concatenate([np.full((1, n), 1 / np.sqrt(n)), out], axis=0)
    return fnp.asarray(out, dtype=_default_float())


def hadamard(n: int, dtype: Any = int):
    """``jax.scipy.linalg.hadamard(n, dtype=int)``: Sylvester's ``n x n`` Hadamard matrix of
    ±1 (``n`` a power of 2), in ``dtype`` (-1 wraps in unsigned dtypes; bool is a TypeError)."""
    n = _size("hadamard", n)
    if n < 1 or n & (n - 1):
        raise ValueError(f"hadamard: n must be a positive power of 2; got {n}.")
    h = fnp.ones((1, 1), dtype=dtype)
    while h.shape[0] < n:
        h = fnp.block([[h, h], [h, -h]])
    return h


def dft(n: int, scale: str | None = None, *, dtype: Any = None):
    """``jax.scipy.linalg.dft(n, scale=None, *, dtype=None)``: the ``n x n`` discrete Fourier
    transform matrix ``exp(-2 pi i j k / n)`` (``dft(n) @ x == fft(x)``), divided by ``sqrt(n)``
    or ``n`` for ``scale`` 'sqrtn' or 'n'; complex (the default complex dtype)."""
    if scale is not None and scale not in ("sqrtn", "n"):
        raise ValueError(f"dft: scale must be None, 'sqrtn', or 'n'; got {scale!r}.")
    if dtype is not None and np.dtype(dtype).kind != "c":
        raise ValueError(f"dft: dtype must be a complex floating-point type; got {np.dtype(dtype)}.")
    n = _size("dft", n)
    k = np.arange(n)
    turns = (k[:, None] * k[None, :]) % max(n, 1)        # exact: the angle's integer part never rounds
    out = np.exp(-2j * np.pi * turns / max(n, 1))
    out = out / {None: 1.0, "sqrtn": np.sqrt(n), "n": float(n)}[scale] if n else out
    return fnp.asarray(out, dtype=fnp.result_type(complex) if dtype is None else dtype)
