"""``fgrad.numpy.fft``: ``jax.numpy.fft`` over the ``fft`` primitive (``fgrad.ops.fft``).

Every transform moves its axes last, crops or zero-pads them to the lengths asked for, and
binds ``lax.fft``; ``norm`` is NumPy's ("backward", the default, scales the inverse by 1/n;
"ortho" both ways by 1/sqrt(n); "forward" the forward one by 1/n). Eagerly the transform is
NumPy's pocketfft; under ``jit`` it is the same function, called through a host callback from
inside the native program (``fgrad.lower.complex_split``); it differentiates (a linear map:
JAX's transposes) and batches under ``vmap``. Real inputs become complex64 (complex128 with
64-bit enabled for float64 and integer inputs), as in JAX.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from fgrad import lax
from fgrad.core import dtypes
from fgrad.core.trace import get_aval
from fgrad.numpy._creation import arange
from fgrad.numpy._manip import concatenate, moveaxis, roll
from fgrad.numpy._math import multiply
from fgrad.numpy._util import canonical_axis, optional_dtype, promote_float, static_int, to_array

__all__ = ["fft", "ifft", "rfft", "irfft", "hfft", "ihfft", "fftn", "ifftn", "rfftn", "irfftn", "fft2", "ifft2",
           "rfft2", "irfft2", "fftfreq", "rfftfreq", "fftshift", "ifftshift"]

_NORMS = (None, "backward", "ortho", "forward")


def _axes_and_lengths(op: str, a, s, axes, inverse_real: bool) -> tuple[tuple, tuple]:
    """The transformed axes and their lengths. A length of 0 is allowed only for an axis the
    array has empty (JAX returns an empty transform), not from ``s`` or irfft's 2 (m - 1)."""
    shape = get_aval(a).shape
    given = s is not None
    if s is not None:
        s = tuple(static_int(op, "s", n) for n in s)
        if axes is None:
            axes = tuple(range(-len(s), 0))
    axes = tuple(range(len(shape))) if axes is None else tuple(canonical_axis(op, ax, len(shape)) for ax in axes)
    if len(set(axes)) != len(axes):
        raise ValueError(f"{op}: repeated axes {axes}; each axis may be transformed once")
    if not axes:
        raise ValueError(f"{op}: no axes to transform (the array has rank 0 or axes=())")
    if s is None:
        s = tuple(shape[ax] for ax in axes)
        if inverse_real:
            s = s[:-1] + (2 * (shape[axes[-1]] - 1),)
    if len(s) != len(axes):
        raise ValueError(f"{op}: s={s} and axes={axes} must have the same length")
    empty_axis = lambda ax: shape[ax] == 0 and not given and not (inverse_real and ax == axes[-1])
    if any(n < 1 and not empty_axis(ax) for ax, n in zip(axes, s)):
        _no_data_points(op, s)
    return axes, s


def _no_data_points(op: str, s: tuple):
    raise ValueError(f"{op}: invalid number of data points {s}; each must be at least 1")


def _fit(a, axis: int, size: int):
    """``a`` cropped or zero-padded to ``size`` along ``axis``."""
    have = get_aval(a).shape[axis]
    if have > size:
        start = [0] * get_aval(a).ndim
        limit = list(get_aval(a).shape)
        limit[axis] = size
        return lax.slice(a, tuple(start), tuple(limit))
    if have < size:
        config = [(0, 0, 0)] * get_aval(a).ndim
        config[axis] = (0, size - have, 0)
        return lax.pad(a, np.zeros((), get_aval(a).dtype), config)
    return a


def _operand(op: str, a, fft_type: str):
    """``a`` as the transform's operand dtype: real float for RFFT, complex otherwise."""
    a = promote_float(op, to_array(a, op))
    dtype = get_aval(a).dtype
    if fft_type == "RFFT":
        if dtypes.is_complex(dtype):
            raise TypeError(f"fgrad.numpy.fft.{op} does not support complex-valued inputs (as JAX); "
                            "use fft/fftn, or pass fnp.real(a)")
        if dtypes.is_half(dtype):
            a = lax.convert_element_type(a, dtypes.float32)
        return a
    if not dtypes.is_complex(dtype):
        a = lax.convert_element_type(a, dtypes.complex_dtype(dtype))
    return a


def _transform(op: str, fft_type: str, a, s, axes, norm):
    if norm not in _NORMS:
        raise ValueError(f'{op}: invalid norm value {norm!r}; should be "backward", "ortho" or "forward"')
    a = _operand(op, a, fft_type)
    axes, s = _axes_and_lengths(op, a, s, axes, fft_type == "IRFFT")
    if 0 in s:
        return _empty_transform(op, fft_type, a, s, axes)
    for ax, n in zip(axes, s):
        a = _fit(a, ax, n // 2 + 1 if fft_type == "IRFFT" and ax == axes[-1] else n)
    ndim = get_aval(a).ndim
    last = tuple(range(ndim - len(axes), ndim))
    out = moveaxis(lax.fft(moveaxis(a, axes, last), fft_type, s), last, axes)
    return _normalise(out, fft_type, math.prod(s), norm)


def _empty_transform(op: str, fft_type: str, a, s: tuple, axes: tuple):
    """The transform of an array empty along a transformed axis: an empty array of the
    output's shape and dtype (JAX's answer). A non-empty output of no data points (``rfft``
    of a length-0 axis) has no meaning: it raises, as in NumPy."""
    shape = list(get_aval(a).shape)
    for ax, n in zip(axes, s):
        shape[ax] = n // 2 + 1 if fft_type == "RFFT" and ax == axes[-1] else n
    if math.prod(shape) != 0:
        _no_data_points(op, s)
    dtype = get_aval(a).dtype
    out_dtype = dtypes.real_dtype(dtype) if fft_type == "IRFFT" else dtypes.complex_dtype(dtype)
    return lax.full(tuple(shape), 0, out_dtype)


def _normalise(out, fft_type: str, n: int, norm):
    inverse = fft_type in ("IFFT", "IRFFT")
    if norm in (None, "backward"):
        return out
    if norm == "ortho":
        factor = math.sqrt(n) if inverse else 1 / math.sqrt(n)
    else:   # "forward": the forward transform carries 1/n, the inverse none
        factor = n if inverse else 1 / n
    return multiply(out, factor)


def _one_axis(n, axis) -> tuple:
    return (None if n is None else (n,)), (axis,)


def fft(a, n=None, axis: int = -1, norm=None):
    """``jnp.fft.fft(a, n=None, axis=-1, norm=None)``: the 1-D discrete Fourier transform."""
    return _transform("fft", "FFT", a, *_one_axis(n, axis), norm)


def ifft(a, n=None, axis: int = -1, norm=None):
    """``jnp.fft.ifft(a, n=None, axis=-1, norm=None)``: the 1-D inverse transform."""
    return _transform("ifft", "IFFT", a, *_one_axis(n, axis), norm)


def rfft(a, n=None, axis: int = -1, norm=None):
    """``jnp.fft.rfft(a, n=None, axis=-1, norm=None)``: the 1-D transform of real input (the
    non-negative frequencies, ``n // 2 + 1`` of them)."""
    return _transform("rfft", "RFFT", a, *_one_axis(n, axis), norm)


def irfft(a, n=None, axis: int = -1, norm=None):
    """``jnp.fft.irfft(a, n=None, axis=-1, norm=None)``: the inverse of ``rfft`` (``n`` real
    outputs, ``2 * (m - 1)`` by default)."""
    return _transform("irfft", "IRFFT", a, *_one_axis(n, axis), norm)


def hfft(a, n=None, axis: int = -1, norm=None):
    """``jnp.fft.hfft(a, n=None, axis=-1, norm=None)``: the transform of a Hermitian-symmetric
    signal given by its first half (real output): ``irfft(conj(a))`` scaled by ``n``."""
    a = to_array(a, "hfft")
    m = get_aval(a).shape[canonical_axis("hfft", axis, get_aval(a).ndim)]
    n = 2 * (m - 1) if n is None else static_int("hfft", "n", n)
    flipped = {None: "forward", "backward": "forward", "forward": "backward", "ortho": "ortho"}
    if norm not in flipped:
        raise ValueError(f'hfft: invalid norm value {norm!r}; should be "backward", "ortho" or "forward"')
    return irfft(lax.conj(_operand("hfft", a, "FFT")), n, axis, flipped[norm])


def ihfft(a, n=None, axis: int = -1, norm=None):
    """``jnp.fft.ihfft(a, n=None, axis=-1, norm=None)``: the inverse of ``hfft``:
    ``conj(rfft(a)) / n``."""
    flipped = {None: "forward", "backward": "forward", "forward": "backward", "ortho": "ortho"}
    if norm not in flipped:
        raise ValueError(f'ihfft: invalid norm value {norm!r}; should be "backward", "ortho" or "forward"')
    return lax.conj(rfft(a, n, axis, flipped[norm]))


def fftn(a, s=None, axes=None, norm=None):
    """``jnp.fft.fftn(a, s=None, axes=None, norm=None)``: the N-D transform (all axes by default)."""
    return _transform("fftn", "FFT", a, s, axes, norm)


def ifftn(a, s=None, axes=None, norm=None):
    """``jnp.fft.ifftn(a, s=None, axes=None, norm=None)``: the N-D inverse transform."""
    return _transform("ifftn", "IFFT", a, s, axes, norm)


def rfftn(a, s=None, axes=None, norm=None):
    """``jnp.fft.rfftn(a, s=None, axes=None, norm=None)``: the N-D transform of real input (the
    last axis halved)."""
    return _transform("rfftn", "RFFT", a, s, axes, norm)


def irfftn(a, s=None, axes=None, norm=None):
    """``jnp.fft.irfftn(a, s=None, axes=None, norm=None)``: the inverse of ``rfftn``."""
    return _transform("irfftn", "IRFFT", a, s, axes, norm)


def fft2(a, s=None, axes: Sequence[int] = (-2, -1), norm=None):
    """``jnp.fft.fft2(a, s=None, axes=(-2, -1), norm=None)``."""
    return _transform("fft2", "FFT", a, s, axes, norm)


def ifft2(a, s=None, axes: Sequence[int] = (-2, -1), norm=None):
    """``jnp.fft.ifft2(a, s=None, axes=(-2, -1), norm=None)``."""
    return _transform("ifft2", "IFFT", a, s, axes, norm)


def rfft2(a, s=None, axes: Sequence[int] = (-2, -1), norm=None):
    """``jnp.fft.rfft2(a, s=None, axes=(-2, -1), norm=None)``."""
    return _transform("rfft2", "RFFT", a, s, axes, norm)


def irfft2(a, s=None, axes: Sequence[int] = (-2, -1), norm=None):
    """``jnp.fft.irfft2(a, s=None, axes=(-2, -1), norm=None)``."""
    return _transform("irfft2", "IRFFT", a, s, axes, norm)


def fftfreq(n, d=1.0, *, dtype=None, device=None):
    """``jnp.fft.fftfreq(n, d=1.0, *, dtype=None, device=None)``: the sample frequencies
    ``[0, 1, ..., ceil(n/2) - 1, -floor(n/2), ..., -1] / (d * n)``."""
    n = static_int("fftfreq", "n", n)
    dtype = optional_dtype(dtype) or dtypes.default_float()
    k = concatenate([arange(0, (n - 1) // 2 + 1, dtype=dtype), arange(-(n // 2), 0, dtype=dtype)])
    return _placed(multiply(k, lax.convert_element_type(1 / (d * n), dtype)), device)


def rfftfreq(n, d=1.0, *, dtype=None, device=None):
    """``jnp.fft.rfftfreq(n, d=1.0, *, dtype=None, device=None)``: ``[0, 1, ..., n // 2] / (d * n)``."""
    n = static_int("rfftfreq", "n", n)
    dtype = optional_dtype(dtype) or dtypes.default_float()
    return _placed(multiply(arange(0, n // 2 + 1, dtype=dtype), lax.convert_element_type(1 / (d * n), dtype)),
                   device)


def _placed(x, device):
    if device is None:
        return x
    return x.to_device(device)


def fftshift(x, axes=None):
    """``jnp.fft.fftshift(x, axes=None)``: the zero frequency moved to the middle (each of
    ``axes``, all by default, rolled by ``n // 2``)."""
    return _shift("fftshift", x, axes, 1)


def ifftshift(x, axes=None):
    """``jnp.fft.ifftshift(x, axes=None)``: the inverse of ``fftshift`` (rolled by ``-(n // 2)``)."""
    return _shift("ifftshift", x, axes, -1)


def _shift(op: str, x, axes, sign: int):
    x = to_array(x, op)
    shape = get_aval(x).shape
    if axes is None:
        axes = tuple(range(len(shape)))
    elif isinstance(axes, (int, np.integer)):
        axes = (int(axes),)
    axes = tuple(canonical_axis(op, ax, len(shape)) for ax in axes)
    if not axes:
        return x
    return roll(x, tuple(sign * (shape[ax] // 2) for ax in axes), axes)
