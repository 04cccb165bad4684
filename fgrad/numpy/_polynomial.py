"""Polynomials (coefficients highest power first, as NumPy's ``poly*`` functions) and window
functions, as compositions of fgrad.numpy functions (eager, native under ``jit``, ``grad``,
``vmap``). Orders and window lengths are static. ``roots`` (and ``poly`` of a square matrix) are
eigenvalues of a matrix (``ops.eig``); ``polyfit`` solves its least-squares problem by a QR
factorisation of its own (Gram-Schmidt, twice), for full-rank fits."""
from __future__ import annotations

import numpy as np

from fgrad import lax
from fgrad.core import dtypes
from fgrad.core.trace import ConcretizationError, get_aval
from fgrad.ops import eig as eig_ops
from fgrad.numpy._creation import arange, ones, zeros
from fgrad.numpy._index_tricks import trim_zeros, vander
from fgrad.numpy._manip import atleast_1d, broadcast_shapes, broadcast_to, concatenate, stack
from fgrad.numpy._math import abs, cos, maximum, mod, sqrt, true_divide, where_select
from fgrad.numpy._math_extra import i0
from fgrad.numpy._reductions import cumsum, sum
from fgrad.numpy._statistics import convolve, diff
from fgrad.numpy._util import canonical_axis, promote, promote_float, static_int, to_array

__all__ = ["poly", "roots", "polyadd", "polysub", "polymul", "polydiv", "polyval", "polyder", "polyint", "polyfit", "unwrap",
           "bartlett", "blackman", "hamming", "hanning", "kaiser"]


def _inexact_pair(op: str, a1, a2):
    a1, a2 = promote(op, to_array(a1, op), to_array(a2, op), shape=False)
    return promote_float(op, a1), promote_float(op, a2)


def poly(seq_of_zeros):
    """``jax.numpy.poly(seq_of_zeros)``: the coefficients of the monic polynomial with the given
    roots (a scalar counts as one root); for a square matrix, of its characteristic polynomial
    (the roots are its eigenvalues)."""
    zeros_ = atleast_1d(promote_float("poly", seq_of_zeros))
    shape = get_aval(zeros_).shape
    if len(shape) == 2 and shape[0] == shape[1] and shape[0] > 0:
        zeros_ = eig_ops.eig(zeros_, compute_left_eigenvectors=False, compute_right_eigenvectors=False)[0]
        out = poly(zeros_)
        return out if dtypes.is_complex(get_aval(seq_of_zeros).dtype) else lax.real(out)
    if len(shape) != 1:
        raise ValueError(f"poly: input must be 1-d roots or a square matrix, got shape {shape}")
    dtype = get_aval(zeros_).dtype
    coefficients = ones((1,), dtype)
    for k in range(get_aval(zeros_).shape[0]):
        factor = stack([lax.full((), 1, dtype), lax.neg(zeros_[k])])
        coefficients = convolve(coefficients, factor, mode="full")
    return coefficients if get_aval(zeros_).shape[0] else ones((), dtype)


def roots(p, *, strip_zeros: bool = True):
    """``jax.numpy.roots(p, *, strip_zeros=True)``: the (complex) roots of the polynomial with
    coefficients ``p`` (highest power first): the eigenvalues of its companion matrix, then one
    zero root per trailing zero coefficient. Leading zeros are dropped (the count must be known:
    outside jit, or pass ``strip_zeros=False`` for a leading coefficient known to be nonzero)."""
    p = atleast_1d(promote_float("roots", p))
    if get_aval(p).ndim != 1:
        raise ValueError(f"roots: the coefficients must be 1-d, got shape {get_aval(p).shape}")
    if strip_zeros:
        try:
            values = np.asarray(p)
        except ConcretizationError:
            raise ConcretizationError("roots: stripping leading zeros needs concrete coefficients; under "
                                      "jit pass strip_zeros=False (the leading coefficient must then be "
                                      "nonzero)") from None
        nonzero = np.flatnonzero(values)
        if nonzero.size == 0:
            return zeros((0,), dtypes.complex_dtype(get_aval(p).dtype))
        p, trailing = p[nonzero[0]:nonzero[-1] + 1], int(values.size - 1 - nonzero[-1])
    else:
        trailing = 0
    n = get_aval(p).shape[0] - 1
    ctype = dtypes.complex_dtype(get_aval(p).dtype)
    if n < 1:
        found = zeros((0,), ctype)
    else:
        companion = zeros((n, n), get_aval(p).dtype).at[0, :].set(lax.neg(p[1:]) / p[0])
        companion = companion.at[arange(1, n), arange(0, n - 1)].set(1)
        found = eig_ops.eig(companion, compute_left_eigenvectors=False, compute_right_eigenvectors=False)[0]
    return concatenate([found, zeros((trailing,), ctype)]) if trailing else found


def _poly_combine(op: str, a1, a2, sign: float):
    a1, a2 = promote(op, to_array(a1, op), to_array(a2, op), shape=False)
    n1, n2 = get_aval(a1).shape[0], get_aval(a2).shape[0]
    if sign < 0:
        a2 = lax.neg(a2)
    if n1 < n2:
        a1, a2, n1, n2 = a2, a1, n2, n1
    short = broadcast_to(a2, (n2,) + get_aval(a1).shape[1:])
    return a1.at[n1 - n2:].add(short)


def polyadd(a1, a2):
    """``jax.numpy.polyadd(a1, a2)``: the sum of two polynomials (the shorter aligned to the end)."""
    return _poly_combine("polyadd", a1, a2, 1.0)


def polysub(a1, a2):
    """``jax.numpy.polysub(a1, a2)``: the difference ``a1 - a2`` of two polynomials."""
    return _poly_combine("polysub", a1, a2, -1.0)


def polymul(a1, a2, *, trim_leading_zeros=False):
    """``jax.numpy.polymul(a1, a2, *, trim_leading_zeros=False)``: the product of two polynomials
    (floating point; leading zeros kept unless ``trim_leading_zeros``, which needs concrete input)."""
    a1, a2 = _inexact_pair("polymul", a1, a2)
    if trim_leading_zeros and (get_aval(a1).shape[0] > 1 or get_aval(a2).shape[0] > 1):
        a1, a2 = trim_zeros(a1, trim="f"), trim_zeros(a2, trim="f")
    if get_aval(a1).shape[0] == 0:
        a1 = zeros((1,), get_aval(a2).dtype)
    if get_aval(a2).shape[0] == 0:
        a2 = zeros((1,), get_aval(a1).dtype)
    return convolve(a1, a2, mode="full")


def polydiv(u, v, *, trim_leading_zeros=False):
    """``jax.numpy.polydiv(u, v, *, trim_leading_zeros=False)``: quotient and remainder of ``u / v``
    (floating point). As in JAX the remainder keeps ``u``'s length (leading zeros) unless
    ``trim_leading_zeros`` (concrete input only)."""
    u, v = _inexact_pair("polydiv", u, v)
    m, n = get_aval(u).shape[0] - 1, get_aval(v).shape[0] - 1
    scale = true_divide(1.0, v[0])
    quotient = zeros((max(m - n + 1, 1),), get_aval(u).dtype)
    for k in range(m - n + 1):
        d = scale * u[k]
        quotient = quotient.at[k].set(d)
        u = u.at[k:k + n + 1].add(-d * v)
    if trim_leading_zeros:
        tol = float(np.sqrt(np.finfo(get_aval(u).dtype).eps))
        values = np.asarray(u)
        big = np.nonzero(np.abs(values) > tol)[0]
        u = u[big[0]:] if big.size else u[:0]
    return quotient, u


def polyval(p, x, *, unroll=16):
    """``jax.numpy.polyval(p, x, *, unroll=16)``: ``p[0] * x**(M-1) + ... + p[M-1]`` by Horner's rule
    (``p`` may carry trailing batch dims that broadcast with ``x``; ``unroll`` is accepted for
    JAX compatibility: the loop is always fully unrolled)."""
    p, x = promote("polyval", to_array(p, "polyval"), to_array(x, "polyval"), shape=False)
    static_int("polyval", "unroll", unroll)
    shape = broadcast_shapes(get_aval(p).shape[1:], get_aval(x).shape)
    y = lax.full(shape, 0, get_aval(x).dtype)
    for k in range(get_aval(p).shape[0]):
        y = y * x + p[k]
    return y


def polyder(p, m=1):
    """``jax.numpy.polyder(p, m=1)``: the ``m``-th derivative's coefficients (floating point, as JAX)."""
    p = promote_float("polyder", p)
    m = static_int("polyder", "m", m)
    if m < 0:
        raise ValueError(f"polyder: the order of the derivative must be non-negative, got m={m}")
    if m == 0:
        return p
    n = get_aval(p).shape[0]
    factors = np.prod(np.arange(m, n)[None, :] - np.arange(m)[:, None], axis=0)[::-1] if n > m else np.zeros(0)
    return p[:max(n - m, 0)] * np.asarray(factors, get_aval(p).dtype)


def polyint(p, m=1, k=None):
    """``jax.numpy.polyint(p, m=1, k=None)``: the ``m``-th antiderivative's coefficients, with
    integration constants ``k`` (a scalar, or ``m`` values, highest order first)."""
    m = static_int("polyint", "m", m)
    if m < 0:
        raise ValueError(f"polyint: the order of the integral must be non-negative, got m={m} (see polyder)")
    p, k = _inexact_pair("polyint", p, 0 if k is None else k)
    k = atleast_1d(k)
    if get_aval(k).shape == (1,):
        k = broadcast_to(k, (m,))
    if get_aval(k).shape != (m,):
        raise ValueError(f"polyint: k must be a scalar or {m} values, got shape {get_aval(k).shape}")
    if m == 0:
        return p
    n = get_aval(p).shape[0]
    grid = np.arange(n + m)[None, :] - np.arange(m)[:, None]
    divisors = np.maximum(1, grid).prod(0)[::-1]
    return true_divide(concatenate([p, k]), np.asarray(divisors, get_aval(p).dtype))


def _orthonormal_columns(a):
    """``q, r`` with ``a == q @ r`` for a full-column-rank ``(n, k)`` ``a`` (Gram-Schmidt, each
    column orthogonalised twice: "twice is enough" for float rounding)."""
    columns, r = [], [[None] * a.shape[1] for _ in range(a.shape[1])]
    for j in range(a.shape[1]):
        v = a[:, j]
        for i, q in enumerate(columns):
            r[i][j] = q @ v
            v = v - r[i][j] * q
        for i, q in enumerate(columns):
            again = q @ v
            r[i][j] = r[i][j] + again
            v = v - again * q
        r[j][j] = sqrt(v @ v)
        columns.append(v / r[j][j])
    return columns, r


def _solve_upper(r, rhs):
    """``x`` with ``R x = rhs`` (``R`` upper triangular as nested entries) by back substitution."""
    k = len(rhs)
    x = [None] * k
    for i in reversed(range(k)):
        acc = rhs[i]
        for j in range(i + 1, k):
            acc = acc - r[i][j] * x[j]
        x[i] = acc / r[i][i]
    return stack(x)


def polyfit(x, y, deg, rcond=None, full=False, w=None, cov=False):
    """``jax.numpy.polyfit(x, y, deg, rcond=None, full=False, w=None, cov=False)``: the least-squares
    polynomial of degree ``deg`` through ``(x, y)`` (``y`` may hold several columns; ``w``
    weights the residuals). The Vandermonde columns are scaled as NumPy does and solved by QR;
    ``rcond`` is accepted but rank-deficient fits are not truncated, and ``full``/``cov`` (which
    need singular values) raise until fgrad.numpy.linalg provides them."""
    if full or cov:
        raise NotImplementedError("polyfit: full=True and cov=True need singular values "
                                  "(fgrad.numpy.linalg.lstsq); call polyfit without them")
    deg = static_int("polyfit", "deg", deg)
    if deg < 0:
        raise ValueError(f"polyfit: deg must be non-negative, got {deg}")
    x, y = _inexact_pair("polyfit", x, y)
    if get_aval(x).ndim != 1 or get_aval(x).shape[0] == 0:
        raise TypeError(f"polyfit: expected a non-empty 1-d x, got shape {get_aval(x).shape}")
    if get_aval(y).ndim not in (1, 2) or get_aval(y).shape[0] != get_aval(x).shape[0]:
        raise TypeError(f"polyfit: y must be 1-d or 2-d with x's length {get_aval(x).shape[0]} first, got "
                        f"shape {get_aval(y).shape}")
    if get_aval(x).shape[0] <= deg:
        raise ValueError(f"polyfit: {get_aval(x).shape[0]} points cannot determine a degree-{deg} polynomial")
    lhs, rhs = vander(x, deg + 1), y
    if w is not None:
        w = promote_float("polyfit", w)
        lhs = lhs * w[:, None]
        rhs = rhs * (w[:, None] if get_aval(rhs).ndim == 2 else w)
    scale = sqrt(sum(lhs * lhs, axis=0))
    q, r = _orthonormal_columns(lhs / scale)
    projected = [qi @ rhs for qi in q]
    coefficients = _solve_upper(r, projected)
    return (coefficients.T / scale).T


def unwrap(p, discont=None, axis=-1, period=2 * np.pi):
    """``jax.numpy.unwrap(p, discont=None, axis=-1, period=2*pi)``: ``p`` with jumps larger than
    ``discont`` (default ``period / 2``) along ``axis`` replaced by their ``period`` complements."""
    p, period = promote("unwrap", to_array(p, "unwrap"), period, shape=False)
    p, period = to_array(p), to_array(period)
    axis = canonical_axis("unwrap", axis, get_aval(p).ndim)
    if get_aval(p).shape[axis] == 0:
        return p
    integer = get_aval(p).dtype.kind in "iu"
    interval = period // 2 if integer else period / 2
    discont = period / 2 if discont is None else discont
    dd = diff(p, axis=axis)
    ddmod = mod(dd + interval, period) - interval
    ddmod = where_select(lax.bitwise_and(lax.eq(ddmod, -interval), lax.gt(dd, get_aval(dd).dtype.type(0))),
                         interval, ddmod)
    correction = where_select(abs(dd) < discont, 0, ddmod - dd)
    first = lax.slice_in_dim(p, 0, 1, axis=axis)
    rest = lax.slice_in_dim(p, 1, get_aval(p).shape[axis], axis=axis)
    return concatenate([first, rest + cumsum(correction, axis=axis).astype(get_aval(p).dtype)], axis=axis)


# --- windows --------------------------------------------------------------------------------------------

def _window_points(op: str, M):
    """``arange(1 - M, M, 2)`` (the symmetric sample positions) for a static ``M``; None if M < 2."""
    M = static_int(op, "M", M)
    return M, (arange(1 - M, M, 2).astype(dtypes.default_float()) if M >= 2 else None)


def _short_window(M: int):
    return ones((max(M, 0),), dtypes.default_float())


def bartlett(M):
    """``jax.numpy.bartlett(M)``: the triangular (Bartlett) window of ``M`` points."""
    M, n = _window_points("bartlett", M)
    if n is None:
        return _short_window(M)
    return where_select(lax.le(n, np.float32(0)), 1 + n / (M - 1), 1 - n / (M - 1)).astype(dtypes.default_float())


def _cosine_window(op: str, M, terms):
    M, n = _window_points(op, M)
    if n is None:
        return _short_window(M)
    out = lax.full(get_aval(n).shape, terms[0], get_aval(n).dtype)
    for k, weight in enumerate(terms[1:], start=1):
        out = out + weight * cos(n * (np.pi * k / (M - 1)))
    return out


def blackman(M):
    """``jax.numpy.blackman(M)``: the Blackman window, ``0.42 + 0.5 cos(pi n/(M-1)) + 0.08 cos(2 pi n/(M-1))``."""
    return _cosine_window("blackman", M, (0.42, 0.5, 0.08))


def hamming(M):
    """``jax.numpy.hamming(M)``: the Hamming window, ``0.54 + 0.46 cos(pi n / (M - 1))``."""
    return _cosine_window("hamming", M, (0.54, 0.46))


def hanning(M):
    """``jax.numpy.hanning(M)``: the Hann window, ``0.5 + 0.5 cos(pi n / (M - 1))``."""
    return _cosine_window("hanning", M, (0.5, 0.5))


def kaiser(M, beta):
    """``jax.numpy.kaiser(M, beta)``: the Kaiser window, ``i0(beta sqrt(1 - (2n/(M-1) - 1)**2)) /
    i0(beta)`` (``beta`` may be traced)."""
    M = static_int("kaiser", "M", M)
    if M < 2:
        return _short_window(M)
    beta = promote_float("kaiser", beta)
    n = arange(0, M).astype(get_aval(beta).dtype)
    alpha = (M - 1) / 2.0
    ratio = (n - alpha) / alpha
    return i0(beta * sqrt(maximum(1 - ratio * ratio, 0.0))) / i0(beta)
