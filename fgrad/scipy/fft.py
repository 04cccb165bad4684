"""``fgrad.scipy.fft``: JAX's ``jax.scipy.fft``, the type-2 discrete cosine transform and its
inverse (``dct``, ``idct``, ``dctn``, ``idctn``) with SciPy's signatures and scalings.

One axis at a time, by Makhoul's FFT algorithm (1980): the samples reordered (even ones, then
the odd ones reversed), one ``fgrad.numpy.fft`` of length N, a quarter-sample phase twist and
the real part; the inverse runs the same steps backwards. ``norm`` is ``None``/"backward"
(SciPy's unnormalised DCT-II, ``2 sum x_n cos(pi k (2n + 1) / 2N)``, and its inverse) or
"ortho" (orthonormal). As in JAX only type 2 is implemented; complex input transforms its real
and imaginary parts; integer input becomes the default float. Linear, so ``grad`` and ``vmap``
go through the FFT's own rules.
"""
from __future__ import annotations

import math
import operator
from typing import Any, Sequence

import numpy as np

from fgrad import lax
from fgrad import numpy as fnp
from fgrad.core import dtypes
from fgrad.core.trace import get_aval
from fgrad.numpy import fft as nfft
from fgrad.numpy._util import canonical_axis, promote_float, static_int, to_array

__all__ = ["dct", "idct", "dctn", "idctn"]

_NORMS = (None, "backward", "ortho")


def _check(op: str, type: int, norm: Any) -> None:
    if type != 2:
        raise NotImplementedError(f"jax.scipy.fft.{op}: DCT type {type!r} is not implemented; only type=2 is "
                                  "(as in JAX)")
    if norm not in _NORMS:
        raise ValueError(f"jax.scipy.fft.{op}: norm={norm!r} is not implemented; use None, 'backward' or 'ortho'")


def _expand_along(v: Any, axis: int, ndim: int) -> Any:
    """A 1-d ``v`` shaped to broadcast along ``axis`` of an ``ndim``-d array."""
    return fnp.reshape(v, tuple(-1 if a == axis else 1 for a in range(ndim)))


def _twist(n: int, axis: int, ndim: int, real_dtype: np.dtype, sign: int) -> Any:
    """``exp(sign * -i pi k / 2n)`` for ``k = 0..n-1`` along ``axis`` (Makhoul's phase factor)."""
    k = fnp.arange(n, dtype=real_dtype)
    return _expand_along(fnp.exp((sign * -0.5j * np.pi / n) * k), axis, ndim)


def _ortho_scale(n: int, axis: int, ndim: int, dtype: np.dtype) -> Any:
    """``1 / sqrt(4n)`` for the first coefficient and ``1 / sqrt(2n)`` for the others."""
    scale = np.full(n, 1 / math.sqrt(2 * n))
    scale[0] = 1 / math.sqrt(4 * n)
    return _expand_along(fnp.asarray(scale.astype(dtype)), axis, ndim)


def _interleave_order(n: int) -> np.ndarray:
    """Makhoul's reordering: the even samples, then the odd samples reversed."""
    return np.concatenate([np.arange(0, n, 2), np.arange(1, n, 2)[::-1]]).astype(np.int32)


def _fit(x: Any, n: Any, axis: int, op: str) -> Any:
    if n is None:
        return x
    n = static_int(f"jax.scipy.fft.{op}", "n", n)
    if n < 1:
        raise ValueError(f"jax.scipy.fft.{op}: invalid number of data points n={n}; it must be at least 1")
    return nfft._fit(x, axis, n)


def _real_input(op: str, x: Any, axis: int, n: Any) -> tuple[Any, int]:
    x = promote_float(f"jax.scipy.fft.{op}", x)
    axis = canonical_axis(f"jax.scipy.fft.{op}", axis, get_aval(x).ndim)
    return _fit(x, n, axis, op), axis


def _by_parts(transform, x: Any, **kw: Any) -> Any:
    """A real-linear transform of complex ``x``: its real and imaginary parts transformed."""
    return lax.complex(transform(fnp.real(x), **kw), transform(fnp.imag(x), **kw))


def dct(x: Any, type: int = 2, n: int | None = None, axis: int = -1, norm: str | None = None) -> Any:
    """``jax.scipy.fft.dct(x, type=2, n=None, axis=-1, norm=None)``: the type-2 DCT of ``x``
    along ``axis`` (zero-padded or cropped to ``n`` first), SciPy's ``scipy.fft.dct``."""
    _check("dct", type, norm)
    x = to_array(x, "jax.scipy.fft.dct")
    if dtypes.is_complex(get_aval(x).dtype):
        return _by_parts(dct, x, type=type, n=n, axis=axis, norm=norm)
    x, axis = _real_input("dct", x, axis, n)
    size, ndim = get_aval(x).shape[axis], get_aval(x).ndim
    spectrum = nfft.fft(fnp.take(x, _interleave_order(size), axis=axis), axis=axis)
    real_dtype = dtypes.real_dtype(get_aval(spectrum).dtype)
    out = 2 * fnp.real(spectrum * _twist(size, axis, ndim, real_dtype, 1))
    return out * _ortho_scale(size, axis, ndim, real_dtype) if norm == "ortho" else out


def idct(x: Any, type: int = 2, n: int | None = None, axis: int = -1, norm: str | None = None) -> Any:
    """``jax.scipy.fft.idct(x, type=2, n=None, axis=-1, norm=None)``: the inverse of ``dct``
    along ``axis`` (the input zero-padded or cropped to ``n`` first), SciPy's ``scipy.fft.idct``."""
    _check("idct", type, norm)
    x = to_array(x, "jax.scipy.fft.idct")
    if dtypes.is_complex(get_aval(x).dtype):
        return _by_parts(idct, x, type=type, n=n, axis=axis, norm=norm)
    x, axis = _real_input("idct", x, axis, n)
    size, ndim, dtype = get_aval(x).shape[axis], get_aval(x).ndim, get_aval(x).dtype
    if norm == "ortho":
        x = x * (_ortho_scale(size, axis, ndim, dtype) * (2 * size))
    else:   # the backward inverse: the first coefficient halved
        first = np.ones(size, dtype)
        first[0] = 0.5
        x = x * _expand_along(fnp.asarray(first), axis, ndim)
    twist = _twist(size, axis, ndim, dtype, -1)
    reordered = fnp.real(nfft.ifft(x * twist, axis=axis))
    return fnp.take(reordered, np.argsort(_interleave_order(size)).astype(np.int32), axis=axis)


def _axes_and_sizes(op: str, x: Any, s: Any, axes: Any) -> tuple[tuple, tuple | None]:
    ndim = get_aval(x).ndim
    if s is not None:
        s = tuple(s) if isinstance(s, Sequence) or hasattr(s, "__len__") else (operator.index(s),)
        if len(s) > ndim:
            raise ValueError(f"jax.scipy.fft.{op}: s must have at most x.ndim ({ndim}) elements, got {len(s)}")
    if axes is None:
        axes = tuple(range(ndim - len(s), ndim)) if s is not None else tuple(range(ndim))
    else:
        axes = (axes,) if isinstance(axes, (int, np.integer)) else tuple(axes)
        axes = tuple(canonical_axis(f"jax.scipy.fft.{op}", a, ndim) for a in axes)
    if len(set(axes)) != len(axes):
        raise ValueError(f"jax.scipy.fft.{op}: repeated axes {axes}; each axis may be transformed once")
    if s is not None and len(s) != len(axes):
        raise ValueError(f"jax.scipy.fft.{op}: s={s} and axes={axes} must have the same length")
    return axes, s


def _along_axes(op: str, transform, x: Any, type: int, s: Any, axes: Any, norm: Any) -> Any:
    _check(op, type, norm)
    x = to_array(x, f"jax.scipy.fft.{op}")
    axes, s = _axes_and_sizes(op, x, s, axes)
    for i, axis in enumerate(axes):
        x = transform(x, n=None if s is None else s[i], axis=axis, norm=norm)
    return x


def dctn(x: Any, type: int = 2, s: Sequence[int] | None = None, axes: Sequence[int] | None = None,
         norm: str | None = None) -> Any:
    """``jax.scipy.fft.dctn(x, type=2, s=None, axes=None, norm=None)``: the type-2 DCT along each
    of ``axes`` (the last ``len(s)`` axes, or all), each zero-padded or cropped to ``s``."""
    return _along_axes("dctn", dct, x, type, s, axes, norm)


def idctn(x: Any, type: int = 2, s: Sequence[int] | None = None, axes: Sequence[int] | None = None,
          norm: str | None = None) -> Any:
    """``jax.scipy.fft.idctn(x, type=2, s=None, axes=None, norm=None)``: the inverse of ``dctn``
    along each of ``axes`` (the last ``len(s)`` axes, or all), each zero-padded or cropped to ``s``."""
    return _along_axes("idctn", idct, x, type, s, axes, norm)
