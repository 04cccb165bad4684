"""``fgrad.scipy.signal``: JAX's ``jax.scipy.signal`` (SciPy's signatures with JAX's defaults,
dtypes and restrictions).

The direct convolutions (``convolve``, ``correlate``, ``convolve2d``, ``correlate2d`` with
``method='direct'`` or ``'auto'``) lower to one ``lax.conv_general_dilated``, so they run natively
under ``jit`` and differentiate through the convolution's own rules; complex operands are split into
real and imaginary parts stacked into one real convolution (fgrad's convolution is real). ``fftconvolve``
and ``method='fft'`` go through ``fgrad.numpy.fft``. The spectral functions (``stft``, ``istft``,
``csd``, ``welch``) live in ``fgrad.scipy._spectral`` and are re-exported here.

Example: ``import fgrad.scipy.signal as fss; fss.convolve(x, w, mode='same')``
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from fgrad import lax
from fgrad import numpy as fnp
from fgrad.core.trace import get_aval
from fgrad.numpy import fft as fft_module
from fgrad.numpy._util import promote
from fgrad.scipy._spectral import csd, detrend, istft, stft, welch
from fgrad.transforms.vmap import vmap

__all__ = ["convolve", "correlate", "convolve2d", "correlate2d", "fftconvolve", "detrend", "stft", "istft",
           "csd", "welch"]

_MODES = ("full", "same", "valid")


def _shape(x: Any) -> tuple:
    return get_aval(x).shape


def _is_complex(x: Any) -> bool:
    return np.issubdtype(get_aval(x).dtype, np.complexfloating)


def _inexact(op: str, in1: Any, in2: Any) -> list:
    """Both operands in their common inexact dtype (ints and bools become the default float)."""
    return promote(f"jax.scipy.signal.{op}", in1, in2, to_float=True, shape=False)


def _check_mode(op: str, mode: Any) -> None:
    if mode not in _MODES:
        raise ValueError(f"jax.scipy.signal.{op}: mode must be one of ['full', 'same', 'valid'], got {mode!r}")


def _real_conv(lhs: Any, rhs: Any, padding: list, precision: Any) -> Any:
    """``conv_general_dilated`` of stacks [N, ...] and [O, ...] of N-d arrays (one channel each):
    the [N, O, ...] correlations of every lhs with every rhs."""
    return lax.conv_general_dilated(lhs[:, None], rhs[:, None], (1,) * len(padding), padding, precision=precision)


def _conv(in1: Any, kernel: Any, padding: list, precision: Any) -> Any:
    """The correlation of ``in1`` with ``kernel`` (padded by ``padding``) as one convolution primitive;
    complex operands as their (real, imaginary) parts stacked on the batch and feature axes."""
    if not (_is_complex(in1) or _is_complex(kernel)):
        return _real_conv(in1[None], kernel[None], padding, precision)[0, 0]
    parts = lambda z: fnp.stack([fnp.real(z), fnp.imag(z)])   # noqa: E731
    out = _real_conv(parts(in1), parts(kernel), padding, precision)
    return lax.complex(out[0, 0] - out[1, 1], out[0, 1] + out[1, 0])


def _convolve_nd(op: str, in1: Any, in2: Any, mode: str, precision: Any) -> Any:
    """The direct N-d convolution (SciPy's ``'direct'`` method) as one ``conv_general_dilated``."""
    _check_mode(op, mode)
    in1, in2 = fnp.asarray(in1), fnp.asarray(in2)
    s1, s2 = _shape(in1), _shape(in2)
    if len(s1) != len(s2):
        raise ValueError(f"jax.scipy.signal.{op}: in1 and in2 must have the same number of dimensions, got "
                         f"shapes {s1} and {s2}; add axes of size 1 (x[None]) to the smaller one")
    if 0 in s1 or 0 in s2:
        raise ValueError(f"jax.scipy.signal.{op}: zero-size arrays not supported in convolutions, got shapes "
                         f"{s1} and {s2}")
    in1, in2 = _inexact(op, in1, in2)
    larger_first = all(a >= b for a, b in zip(s1, s2))
    smaller_first = all(a <= b for a, b in zip(s1, s2))
    if not (larger_first or smaller_first):
        raise ValueError(f"jax.scipy.signal.{op}: one input must be smaller than the other in every dimension, "
                         f"got shapes {s1} and {s2}")
    out_like = s2                      # 'same' centres on in1's shape, measured before any swap
    if smaller_first:
        in1, in2 = in2, in1
    kernel_shape = _shape(in2)
    if mode == "valid":
        padding = [(0, 0)] * len(kernel_shape)
    elif mode == "same":
        padding = [(k - 1 - (o - 1) // 2, k - o + (o - 1) // 2) for k, o in zip(kernel_shape, out_like)]
    else:
        padding = [(k - 1, k - 1) for k in kernel_shape]
    return _conv(in1, fnp.flip(in2), padding, precision)


def convolve(in1: Any, in2: Any, mode: str = "full", method: str = "auto", precision: Any = None) -> Any:
    """``jax.scipy.signal.convolve(in1, in2, mode='full', method='auto', precision=None)``: the N-d
    convolution of ``in1`` and ``in2`` (same number of dimensions), ``mode`` 'full', 'same' (the size of
    ``in1``) or 'valid'. ``method`` 'auto' and 'direct' lower to ``lax.conv_general_dilated``, 'fft' to
    ``fftconvolve``. Integer inputs promote to the default float."""
    if method == "fft":
        return fftconvolve(in1, in2, mode=mode)
    if method in ("direct", "auto"):
        return _convolve_nd("convolve", in1, in2, mode, precision)
    raise ValueError(f"jax.scipy.signal.convolve: got method={method!r}; expected 'auto', 'fft', or 'direct'")


def correlate(in1: Any, in2: Any, mode: str = "full", method: str = "auto", precision: Any = None) -> Any:
    """``jax.scipy.signal.correlate(in1, in2, mode='full', method='auto', precision=None)``: the N-d
    cross-correlation, ``convolve(in1, flip(conj(in2)))``."""
    return convolve(in1, fnp.flip(fnp.conj(fnp.asarray(in2))), mode, method=method, precision=precision)


def _check_2d(op: str, in1: Any, in2: Any, boundary: str, fillvalue: Any) -> None:
    if boundary != "fill" or fillvalue != 0:
        raise NotImplementedError(f"jax.scipy.signal.{op}: only boundary='fill', fillvalue=0 are supported, got "
                                  f"boundary={boundary!r}, fillvalue={fillvalue!r}; pad the input yourself "
                                  "(fgrad.numpy.pad with mode='wrap' or 'symmetric') and use mode='valid'")
    if np.ndim(in1) != 2 or np.ndim(in2) != 2:
        raise ValueError(f"jax.scipy.signal.{op}: only 2-dimensional inputs are supported, got shapes "
                         f"{np.shape(in1)} and {np.shape(in2)}; use {op[:-2]} for N-d arrays")


def convolve2d(in1: Any, in2: Any, mode: str = "full", boundary: str = "fill", fillvalue: Any = 0,
               precision: Any = None) -> Any:
    """``jax.scipy.signal.convolve2d(in1, in2, mode='full', boundary='fill', fillvalue=0, precision=None)``:
    the 2-d convolution (only ``boundary='fill'`` with ``fillvalue=0``, as in JAX)."""
    _check_2d("convolve2d", in1, in2, boundary, fillvalue)
    return _convolve_nd("convolve2d", in1, in2, mode, precision)


def correlate2d(in1: Any, in2: Any, mode: str = "full", boundary: str = "fill", fillvalue: Any = 0,
                precision: Any = None) -> Any:
    """``jax.scipy.signal.correlate2d(in1, in2, mode='full', boundary='fill', fillvalue=0, precision=None)``:
    the 2-d cross-correlation (only ``boundary='fill'`` with ``fillvalue=0``, as in JAX). As in JAX (and
    SciPy), when ``in1`` is the smaller input the 'full' result is the conjugate of the swapped
    correlation and 'valid' correlates the swapped operands."""
    _check_2d("correlate2d", in1, in2, boundary, fillvalue)
    in1, in2 = fnp.asarray(in1), fnp.asarray(in2)
    s1, s2 = _shape(in1), _shape(in2)
    swap = all(a <= b for a, b in zip(s1, s2))
    same_shape = s1 == s2
    conv = lambda a, b: _convolve_nd("correlate2d", a, b, mode, precision)   # noqa: E731
    if mode == "same":
        return fnp.flip(conv(fnp.flip(in1), fnp.conj(in2)))
    if mode == "valid":
        if swap and not same_shape:
            return conv(fnp.flip(in2), fnp.conj(in1))
        return fnp.flip(conv(fnp.flip(in1), fnp.conj(in2)))
    if swap:
        return fnp.conj(conv(fnp.flip(in2), fnp.conj(in1)))
    return fnp.flip(conv(fnp.flip(in1), fnp.conj(in2)))


def _fftconvolve_unbatched(in1: Any, in2: Any, mode: str) -> Any:
    s1, s2 = _shape(in1), _shape(in2)
    full_shape = tuple(a + b - 1 for a, b in zip(s1, s2))
    if mode == "valid":
        larger_first = all(a >= b for a, b in zip(s1, s2))
        smaller_first = all(a <= b for a, b in zip(s1, s2))
        if not (larger_first or smaller_first):
            raise ValueError("jax.scipy.signal.fftconvolve: for 'valid' mode, one input must be at least as large "
                             f"as the other in every dimension, got shapes {s1} and {s2}")
        if smaller_first:
            in1, in2 = in2, in1
            s1, s2 = s2, s1
    if all(a == 1 or b == 1 for a, b in zip(s1, s2)):
        product = in1 * in2
    elif _is_complex(in1):
        product = fft_module.ifftn(fft_module.fftn(in1, full_shape) * fft_module.fftn(in2, full_shape), full_shape)
    else:
        product = fft_module.irfftn(fft_module.rfftn(in1, full_shape) * fft_module.rfftn(in2, full_shape),
                                    full_shape)
    out_shape = {"full": full_shape, "same": s1,
                 "valid": tuple(a - b + 1 for a, b in zip(s1, s2))}[mode]
    starts = [(f - o) // 2 for f, o in zip(full_shape, out_shape)]
    return lax.slice(product, starts, [s + o for s, o in zip(starts, out_shape)])


def fftconvolve(in1: Any, in2: Any, mode: str = "full", axes: Sequence[int] | None = None) -> Any:
    """``jax.scipy.signal.fftconvolve(in1, in2, mode='full', axes=None)``: the N-d convolution through
    FFTs. With ``axes``, the other axes are batch axes and must have equal sizes in both inputs (JAX does
    not broadcast them)."""
    in1, in2 = _inexact("fftconvolve", fnp.asarray(in1), fnp.asarray(in2))
    s1, s2 = _shape(in1), _shape(in2)
    if len(s1) != len(s2):
        raise ValueError(f"jax.scipy.signal.fftconvolve: in1 and in2 should have the same dimensionality, got "
                         f"shapes {s1} and {s2}")
    _check_mode("fftconvolve", mode)
    convolve_fn = lambda a, b: _fftconvolve_unbatched(a, b, mode)   # noqa: E731
    if axes is None:
        return convolve_fn(in1, in2)
    axes = (axes,) if np.ndim(axes) == 0 else tuple(axes)
    axes = tuple(_canonical_axis(a, len(s1)) for a in axes)
    mapped = sorted(set(range(len(s1))) - set(axes))
    if any(s1[i] != s2[i] for i in mapped):
        raise ValueError(f"jax.scipy.signal.fftconvolve: mapped axes must have same shape; got in1.shape={s1} "
                         f"in2.shape={s2} axes={axes}; broadcast the inputs to equal sizes on the other axes")
    for axis in mapped:
        convolve_fn = vmap(convolve_fn, in_axes=axis, out_axes=axis)
    return convolve_fn(in1, in2)


def _canonical_axis(axis: Any, ndim: int) -> int:
    axis = int(axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"jax.scipy.signal.fftconvolve: axis {axis} is out of bounds for arrays of dimension {ndim}")
    return axis % ndim
