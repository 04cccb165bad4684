"""The discrete Fourier transform as one primitive, ``fft`` (JAX's ``lax.fft``).

``fft(x, fft_type, fft_lengths)`` transforms the trailing ``len(fft_lengths)`` axes of ``x``:
``"FFT"`` and ``"IFFT"`` (complex to complex, the inverse scaled by 1/n), ``"RFFT"`` (real
float32/float64 to complex, the last axis ``n`` becoming ``n // 2 + 1``) and ``"IRFFT"``
(complex to real, the last axis becoming ``fft_lengths[-1]``). Eagerly it runs NumPy's
pocketfft (``numpy.fft``); compiled, the complex-program pass (``fgrad.lower.complex_split``)
calls the same NumPy function through a host callback inside the native program.

It is linear: its jvp transforms the tangent, and its transposes are JAX's (under the real
pairing ``Re(a * b)`` that fgrad's complex AD uses): FFT and IFFT are their own transposes
(the DFT matrix is symmetric), RFFT's is the real part of a full FFT of the cotangent padded
with zeros, IRFFT's the conjugate of an RFFT of the cotangent weighted 1, 2, ..., 2, (1) / n.
"""
from __future__ import annotations

import enum

import math
from typing import Any, Sequence

import numpy as np

from fgrad.core import dtypes
from fgrad.core.partition import register_unpartitioned
from fgrad.core.primitive import Primitive
from fgrad.core.rules import jvp_rules, transpose_rules, vmap_rules
from fgrad.core.trace import get_aval
from fgrad.core.types import ShapedArray
from fgrad.ops import complex_parts as cp
from fgrad.ops import elementwise as ew
from fgrad.ops import shape as sh
from fgrad.ops._util import shape_error

__all__ = ["fft", "FFT_TYPES", "FftType"]

FFT_TYPES = ("FFT", "IFFT", "RFFT", "IRFFT")


class FftType(enum.IntEnum):
    """``jax.lax.FftType``: which transform ``fft`` computes (its names are also accepted as strings)."""
    FFT = 0
    IFFT = 1
    RFFT = 2
    IRFFT = 3


def _fft_rule(x: ShapedArray, fft_type: str, fft_lengths: tuple) -> ShapedArray:
    k = len(fft_lengths)
    if fft_type not in FFT_TYPES:
        raise ValueError(f"fft: fft_type must be one of {FFT_TYPES}, got {fft_type!r}")
    if k == 0 or k > x.ndim:
        raise shape_error("fft", f"fft_lengths {fft_lengths} must name 1 to {x.ndim} trailing axes of {x.str_short()}")
    if fft_type == "RFFT":
        if x.dtype not in (dtypes.float32, dtypes.float64):
            raise shape_error("fft", f"RFFT takes a float32 or float64 operand, got {x.str_short()}")
        if x.shape[-k:] != tuple(fft_lengths):
            raise shape_error("fft", f"RFFT lengths {fft_lengths} must be the trailing axes of {x.str_short()}")
        n = fft_lengths[-1]
        return ShapedArray(x.shape[:-1] + (n // 2 + 1,), dtypes.complex_dtype(x.dtype))
    if not dtypes.is_complex(x.dtype):
        raise shape_error("fft", f"{fft_type} takes a complex operand, got {x.str_short()}",
                          "Convert it with .astype(fgrad.numpy.complex64)")
    if fft_type == "IRFFT":
        n = fft_lengths[-1]
        if x.shape[-k:-1] != tuple(fft_lengths[:-1]) or x.shape[-1] != n // 2 + 1:
            raise shape_error("fft", f"IRFFT lengths {fft_lengths} need trailing axes "
                                     f"{tuple(fft_lengths[:-1]) + (n // 2 + 1,)}, got {x.str_short()}")
        return ShapedArray(x.shape[:-1] + (n,), dtypes.real_dtype(x.dtype))
    if x.shape[-k:] != tuple(fft_lengths):
        raise shape_error("fft", f"{fft_type} lengths {fft_lengths} must be the trailing axes of {x.str_short()}")
    return ShapedArray(x.shape, x.dtype)


def numpy_fft(x: np.ndarray, fft_type: str, fft_lengths: tuple) -> np.ndarray:
    """The transform by NumPy's pocketfft, in the result dtype fgrad gives it."""
    x = np.asarray(x)
    axes = tuple(range(x.ndim - len(fft_lengths), x.ndim))
    if fft_type == "FFT":
        out, dtype = np.fft.fftn(x, axes=axes), x.dtype
    elif fft_type == "IFFT":
        out, dtype = np.fft.ifftn(x, axes=axes), x.dtype
    elif fft_type == "RFFT":
        out, dtype = np.fft.rfftn(x, axes=axes), dtypes.complex_dtype(x.dtype)
    else:
        out, dtype = np.fft.irfftn(x, s=fft_lengths, axes=axes), dtypes.real_dtype(x.dtype)
    return np.asarray(out, dtype)


fft_p = Primitive("fft")
fft_p.def_impl(numpy_fft)
fft_p.def_abstract_eval(_fft_rule)


def fft(x: Any, fft_type: str, fft_lengths: Sequence[int]) -> Any:
    """``jax.lax.fft(x, fft_type, fft_lengths)``: the DFT of the trailing ``len(fft_lengths)``
    axes ('FFT', 'IFFT', 'RFFT', 'IRFFT'; see the module doc)."""
    fft_type = getattr(fft_type, "name", fft_type)
    return fft_p.bind(x, fft_type=str(fft_type).upper(), fft_lengths=tuple(int(n) for n in fft_lengths))


# --- derivatives -----------------------------------------------------------------------------------

jvp_rules[fft_p] = lambda p, t, fft_type, fft_lengths: (fft(p[0], fft_type, fft_lengths),
                                                         fft(t[0], fft_type, fft_lengths))


def _rfft_transpose(ct, fft_lengths: tuple):
    """real(FFT(ct padded with zeros to the full last length))."""
    n = fft_lengths[-1]
    shape = get_aval(ct).shape
    pad = [(0, 0, 0)] * (len(shape) - 1) + [(0, n - shape[-1], 0)]
    full = sh.pad(ct, np.zeros((), get_aval(ct).dtype), pad)
    return cp.real(fft(full, "FFT", fft_lengths))


def _irfft_transpose(ct, fft_lengths: tuple):
    """conj(RFFT(ct) * [1, 2, ..., 2, (1)] / n), JAX's rule."""
    x = fft(ct, "RFFT", fft_lengths)
    aval = get_aval(x)
    m, odd = aval.shape[-1], fft_lengths[-1] % 2
    weights = np.concatenate([[1.0], np.full(m - 2 + odd, 2.0), np.ones(1 - odd)])[:m]
    weights = (weights / math.prod(fft_lengths)).astype(dtypes.real_dtype(aval.dtype)).astype(aval.dtype)
    scale = sh.broadcast_in_dim(np.asarray(weights), aval.shape, (aval.ndim - 1,))
    return cp.conj(ew.mul(x, scale))


def _fft_transpose(ct, x, fft_type: str, fft_lengths: tuple):
    if fft_type == "RFFT":
        return [_rfft_transpose(ct, fft_lengths)]
    if fft_type == "IRFFT":
        return [_irfft_transpose(ct, fft_lengths)]
    return [fft(ct, fft_type, fft_lengths)]


transpose_rules[fft_p] = _fft_transpose


def _fft_vmap(axis, vals, dims, fft_type, fft_lengths):
    (x,), (d,) = vals, dims
    return fft(sh.moveaxis(x, d, 0, axis.size), fft_type, fft_lengths), 0


vmap_rules[fft_p] = _fft_vmap
register_unpartitioned("an FFT's transformed axes are whole: split operands are an error", fft_p)
