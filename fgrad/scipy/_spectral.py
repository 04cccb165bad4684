"""The spectral functions of ``fgrad.scipy.signal`` (JAX's ``jax.scipy.signal.detrend``, ``stft``,
``istft``, ``csd`` and ``welch``), re-exported there.

Segments are taken with one gather of static indices, windows come from ``fgrad.scipy._windows``
(host NumPy: a window's length is static), the transforms from ``fgrad.numpy.fft``. ``detrend``'s
linear fit is the least-squares line written in closed form (centred abscissae), so it lowers natively
and differentiates like any composition. JAX's conventions are kept where they differ from SciPy:
``nperseg=None`` means the whole signal in ``welch``/``csd`` (SciPy: 256), the time axis is canonical
before a callable ``detrend`` is wrapped, ``istft`` reads ``noverlap=0`` as the default.
"""
from __future__ import annotations

import operator
import warnings
from typing import Any, Callable

import numpy as np

from fgrad import lax
from fgrad import numpy as fnp
from fgrad.core.trace import get_aval
from fgrad.numpy import fft as fft_module
from fgrad.numpy._util import promote, promote_float
from fgrad.scipy._windows import get_window

__all__ = ["detrend", "stft", "istft", "csd", "welch"]


def _shape(x: Any) -> tuple:
    return get_aval(x).shape


def _dtype(x: Any) -> np.dtype:
    return np.dtype(get_aval(x).dtype)


def _is_complex(x: Any) -> bool:
    return x is not None and np.issubdtype(_dtype(x), np.complexfloating)


def _real_dtype(dtype: Any) -> np.dtype:
    return np.finfo(dtype).dtype


def _complex_dtype(dtype: Any) -> np.dtype:
    return np.result_type(dtype, np.complex64)


def _static_int(op: str, name: str, value: Any) -> int:
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"jax.scipy.signal.{op}: {name} must be a static integer, got {value!r}; pass a Python "
                        "int (mark it static under jit)") from None


# --- detrend ---------------------------------------------------------------------------------------

def _remove_line(segment: Any) -> Any:
    """``segment`` [n, m] less its least-squares line along axis 0 (abscissae 1..n, as SciPy)."""
    n = _shape(segment)[0]
    centred = segment - fnp.mean(segment, axis=0, keepdims=True)
    if n == 1:
        return centred
    t = np.arange(1, n + 1) / n
    t = (t - t.mean()).astype(_dtype(segment))[:, None]
    slope = fnp.sum(t * segment, axis=0, keepdims=True) / float(np.sum(t.astype(np.float64) ** 2))
    return centred - t * slope.astype(_dtype(segment))


def detrend(data: Any, axis: int = -1, type: str = "linear", bp: Any = 0,   # noqa: A002
            overwrite_data: None = None) -> Any:
    """``jax.scipy.signal.detrend(data, axis=-1, type='linear', bp=0, overwrite_data=None)``: ``data``
    less its mean (``type='constant'``) or its least-squares line, piecewise between the static
    breakpoints ``bp`` (``type='linear'``). Integer data promotes to the default float."""
    if overwrite_data is not None:
        raise NotImplementedError("jax.scipy.signal.detrend: overwrite_data is not supported; leave it None")
    if type not in ("constant", "linear"):
        raise ValueError(f"jax.scipy.signal.detrend: trend type must be 'linear' or 'constant', got {type!r}")
    data = promote_float("detrend", data)
    if type == "constant":
        return data - fnp.mean(data, axis=axis, keepdims=True)
    n = _shape(data)[axis]
    breaks = np.sort(np.unique(np.r_[0, bp, n]))
    if breaks[0] < 0 or breaks[-1] > n:
        raise ValueError(f"jax.scipy.signal.detrend: breakpoints must be non-negative and at most the length {n} "
                         f"of data along the axis, got bp={bp!r}")
    moved = fnp.moveaxis(data, axis, 0)
    flat = moved.reshape(n, -1)
    pieces = [_remove_line(flat[int(lo):int(hi)]) for lo, hi in zip(breaks[:-1], breaks[1:])]
    if not pieces:
        return data
    out = pieces[0] if len(pieces) == 1 else fnp.concatenate(pieces, axis=0)
    return fnp.moveaxis(out.reshape(_shape(moved)), 0, axis)


# --- windows and segments --------------------------------------------------------------------------

def _window(op: str, window: Any, nperseg: int | None, input_length: int, dtype: Any) -> tuple[Any, int]:
    """(window values in ``dtype``, segment length) from a name, a (name, params) tuple or an array."""
    if isinstance(window, (str, tuple)):
        length = input_length if nperseg is None else int(nperseg)
        if length > input_length:
            warnings.warn(f"nperseg={length} is greater than input_length={input_length}, using "
                          f"nperseg={input_length}", stacklevel=4)
            length = input_length
        return fnp.asarray(get_window(window, length), dtype=dtype), length
    win = fnp.asarray(window, dtype=dtype)
    shape = _shape(win)
    length = int(np.prod(shape)) if nperseg is None else int(nperseg)
    if len(shape) != 1:
        raise ValueError(f"jax.scipy.signal.{op}: window must be 1-D, got shape {shape}")
    if input_length < shape[0]:
        raise ValueError(f"jax.scipy.signal.{op}: window (length {shape[0]}) is longer than the input signal "
                         f"({input_length})")
    if length != shape[0]:
        raise ValueError(f"jax.scipy.signal.{op}: value specified for nperseg ({length}) is different from length "
                         f"of window ({shape[0]}); leave nperseg=None")
    return win, length


def _segments(x: Any, nperseg: int, noverlap: int) -> Any:
    """[..., length] -> [..., segments, nperseg]: the windows of ``x`` every ``nperseg - noverlap``."""
    if nperseg == 1 and noverlap == 0:
        return x[..., None]
    starts = np.arange(0, _shape(x)[-1] - nperseg + 1, nperseg - noverlap)
    return x[..., starts[:, None] + np.arange(nperseg)]


def _windowed_fft(x: Any, win: Any, detrend_func: Callable, nperseg: int, noverlap: int, nfft: int,
                  twosided: bool) -> Any:
    segments = detrend_func(_segments(x, nperseg, noverlap))
    if _is_complex(win) and not _is_complex(segments):
        segments = segments.astype(_dtype(win))
    segments = win * segments
    if twosided:
        return fft_module.fft(segments, n=nfft)
    return fft_module.rfft(fnp.real(segments), n=nfft)


def _pad_axis(x: Any, width: int, **kwargs: Any) -> Any:
    return fnp.pad(x, [(0, 0)] * (len(_shape(x)) - 1) + [(width, width)], **kwargs)


def _odd_extension(x: Any, n: int) -> Any:
    if n < 1:
        return x
    length = _shape(x)[-1]
    if n > length - 1:
        raise ValueError(f"The extension length n ({n}) is too big. It must not exceed x.shape[axis]-1, which is "
                         f"{length - 1}.")
    left, right = x[..., :1], x[..., -1:]
    return fnp.concatenate([2 * left - fnp.flip(x[..., 1:n + 1], -1), x,
                            2 * right - fnp.flip(x[..., length - n - 1:length - 1], -1)], axis=-1)


_BOUNDARIES: dict = {
    "even": lambda x, n: _pad_axis(x, n, mode="reflect"),
    "odd": _odd_extension,
    "constant": lambda x, n: _pad_axis(x, n, mode="edge"),
    "zeros": lambda x, n: _pad_axis(x, n, mode="constant"),
    None: lambda x, n: x,
}


def _detrend_function(detrend_type: Any, axis: int) -> Callable:
    if isinstance(detrend_type, str):
        return lambda d: detrend(d, axis=-1, type=detrend_type)
    if callable(detrend_type):
        # JAX wraps a callable with the canonical (non-negative) axis, hence always
        return lambda d: fnp.moveaxis(detrend_type(fnp.moveaxis(d, axis, -1)), -1, axis)
    if not detrend_type:
        return lambda d: d
    raise ValueError(f"Unsupported detrend type: {detrend_type}; use 'constant', 'linear', False or a callable")


def _zero_pad_to(x: Any, length: int) -> Any:
    extra = length - _shape(x)[-1]
    if extra <= 0:
        return x
    return fnp.concatenate([x, fnp.zeros((*_shape(x)[:-1], extra), _dtype(x))], axis=-1)


# --- the spectral helper ---------------------------------------------------------------------------

def _spectral(op: str, x: Any, y: Any, fs: Any, window: Any, nperseg: Any, noverlap: Any, nfft: Any,
              detrend_type: Any, return_onesided: bool, scaling: str, axis: int, mode: str,
              boundary: Any = None, padded: bool = False) -> tuple[Any, Any, Any]:
    """(frequencies, segment times, windowed spectra [..., freq, segment]) as SciPy's
    ``_spectral_helper`` with JAX's conventions (``y=None``: the auto spectrum)."""
    if boundary not in _BOUNDARIES:
        raise ValueError(f"Unknown boundary option '{boundary}', must be one of: {list(_BOUNDARIES)}")
    if y is None:
        x = promote_float(op, x)
    else:
        if mode != "psd":
            raise ValueError("two-argument mode is available only when mode=='psd'")
        x, y = promote(op, x, y, to_float=True, shape=False)
        if len(_shape(x)) != len(_shape(y)):
            raise ValueError(f"jax.scipy.signal.{op}: x and y must have the same rank, got shapes {_shape(x)} and "
                             f"{_shape(y)}")
    ndim = len(_shape(x))
    axis = _static_int(op, "axis", axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"jax.scipy.signal.{op}: axis {axis} is out of bounds for an array of dimension {ndim}")
    axis %= ndim
    drop = lambda s: s[:axis] + s[axis + 1:]   # noqa: E731
    outer = drop(_shape(x))
    if y is not None:
        try:
            outer = np.broadcast_shapes(drop(_shape(x)), drop(_shape(y)))
        except ValueError:
            raise ValueError(f"jax.scipy.signal.{op}: x and y cannot be broadcast together, got shapes "
                             f"{_shape(x)} and {_shape(y)} (time axis {axis})") from None
    result_dtype = _complex_dtype(_dtype(x))
    freq_dtype = _real_dtype(result_dtype)
    if nperseg is not None:
        nperseg = _static_int(op, "nperseg", nperseg)
        if nperseg < 1:
            raise ValueError(f"jax.scipy.signal.{op}: nperseg must be a positive integer, got {nperseg}")
    win, nperseg = _window(op, window, nperseg, _shape(x)[axis], _dtype(x))
    noverlap = nperseg // 2 if noverlap is None else _static_int(op, "noverlap", noverlap)
    nfft = nperseg if nfft is None else _static_int(op, "nfft", nfft)

    empty = fnp.size(x) == 0 if y is None else (fnp.size(x) == 0 or fnp.size(y) == 0)
    if empty:
        shape = _shape(x) if y is None else outer[:axis] + (min(_shape(x)[axis], _shape(y)[axis]),) + outer[axis:]
        return (fnp.zeros(shape, freq_dtype), fnp.zeros(shape, freq_dtype), fnp.zeros(shape, result_dtype))

    x = fnp.moveaxis(x, axis, -1)
    if y is not None:
        y = fnp.moveaxis(y, axis, -1)
        length = max(_shape(x)[-1], _shape(y)[-1])
        x, y = _zero_pad_to(x, length), _zero_pad_to(y, length)
    if nfft < nperseg:
        raise ValueError(f"jax.scipy.signal.{op}: nfft must be greater than or equal to nperseg, got nfft={nfft}, "
                         f"nperseg={nperseg}")
    if noverlap >= nperseg:
        raise ValueError(f"jax.scipy.signal.{op}: noverlap must be less than nperseg, got noverlap={noverlap}, "
                         f"nperseg={nperseg}")
    step = nperseg - noverlap
    signals = [x] if y is None else [x, y]
    signals = [_BOUNDARIES[boundary](s, nperseg // 2) for s in signals]
    if padded:
        extra = (-(_shape(signals[0])[-1] - nperseg) % step) % nperseg
        signals = [_zero_pad_to(s, _shape(s)[-1] + extra) for s in signals]
    detrend_func = _detrend_function(detrend_type, axis)

    if scaling == "density":
        scale = 1.0 / (fs * fnp.sum(win * win))
    elif scaling == "spectrum":
        scale = 1.0 / fnp.sum(win) ** 2
    else:
        raise ValueError(f"Unknown scaling: {scaling}; use 'density' or 'spectrum'")
    if mode == "stft":
        scale = fnp.sqrt(scale)
    scale = fnp.asarray(scale).astype(_complex_dtype(_dtype(scale)))

    twosided = not return_onesided
    if return_onesided and (_is_complex(x) or _is_complex(y)):
        twosided = True
        warnings.warn("Input data is complex, switching to return_onesided=False", stacklevel=3)
    freqs = (fft_module.fftfreq if twosided else fft_module.rfftfreq)(nfft, 1 / fs, dtype=freq_dtype)

    spectra = [_windowed_fft(s, win, detrend_func, nperseg, noverlap, nfft, twosided) for s in signals]
    if y is not None:
        result = fnp.conj(spectra[0]) * spectra[1]
    elif mode == "psd":
        result = fnp.conj(spectra[0]) * spectra[0]
    else:
        result = spectra[0]
    result = result * scale
    if not twosided and mode == "psd":
        doubling = np.full(_shape(result)[-1], 2.0)
        doubling[0] = 1.0
        if nfft % 2 == 0:
            doubling[-1] = 1.0
        result = result * doubling.astype(_real_dtype(_dtype(result)))

    length = _shape(signals[0])[-1]
    times = np.arange(nperseg / 2, length - nperseg / 2 + 1, step, dtype=freq_dtype)
    time = fnp.asarray(times) / fs
    if boundary is not None:
        time = time - (nperseg / 2) / fs
    result = result.astype(result_dtype)
    if y is None and mode != "stft":
        result = fnp.real(result)
    return freqs, time, fnp.moveaxis(result, -1, axis)


def stft(x: Any, fs: Any = 1.0, window: Any = "hann", nperseg: int = 256, noverlap: int | None = None,
         nfft: int | None = None, detrend: Any = False, return_onesided: bool = True, boundary: Any = "zeros",
         padded: bool = True, axis: int = -1) -> tuple[Any, Any, Any]:
    """``jax.scipy.signal.stft(x, fs=1.0, window='hann', nperseg=256, noverlap=None, nfft=None,
    detrend=False, return_onesided=True, boundary='zeros', padded=True, axis=-1)``: ``(f, t, Zxx)``, the
    short-time Fourier transform ('spectrum' scaling)."""
    return _spectral("stft", x, None, fs, window, nperseg, noverlap, nfft, detrend, return_onesided,
                     "spectrum", axis, "stft", boundary, padded)


def _median_bias(n: int) -> float:
    ii_2 = np.arange(2.0, n, 2)
    return 1 + np.sum(1.0 / (ii_2 + 1) - 1.0 / ii_2)


def csd(x: Any, y: Any, fs: Any = 1.0, window: Any = "hann", nperseg: int | None = None,
        noverlap: int | None = None, nfft: int | None = None, detrend: Any = "constant",
        return_onesided: bool = True, scaling: str = "density", axis: int = -1,
        average: str = "mean") -> tuple[Any, Any]:
    """``jax.scipy.signal.csd(x, y, fs=1.0, window='hann', nperseg=None, noverlap=None, nfft=None,
    detrend='constant', return_onesided=True, scaling='density', axis=-1, average='mean')``: ``(f, Pxy)``,
    the cross spectral density by Welch's method (``y=None``: the power spectral density of ``x``).
    ``nperseg=None`` takes the whole signal, as in JAX."""
    freqs, _, pxy = _spectral("csd", x, y, fs, window, nperseg, noverlap, nfft, detrend, return_onesided,
                              scaling, axis, "psd")
    if y is not None:
        pxy = pxy + 0j
    shape = _shape(pxy)
    if len(shape) >= 2 and fnp.size(pxy) > 0:
        if shape[-1] > 1:
            if average == "median":
                bias = _median_bias(shape[-1])
                if _is_complex(pxy):
                    pxy = lax.complex(fnp.median(fnp.real(pxy), axis=-1), fnp.median(fnp.imag(pxy), axis=-1))
                else:
                    pxy = fnp.median(pxy, axis=-1)
                pxy = pxy / fnp.asarray(bias, _dtype(pxy))
            elif average == "mean":
                pxy = fnp.mean(pxy, axis=-1)
            else:
                raise ValueError(f'average must be "median" or "mean", got {average}')
        else:
            pxy = pxy.reshape(shape[:-1])
    return freqs, pxy


def welch(x: Any, fs: Any = 1.0, window: Any = "hann", nperseg: int | None = None, noverlap: int | None = None,
          nfft: int | None = None, detrend: Any = "constant", return_onesided: bool = True,
          scaling: str = "density", axis: int = -1, average: str = "mean") -> tuple[Any, Any]:
    """``jax.scipy.signal.welch(x, fs=1.0, window='hann', nperseg=None, noverlap=None, nfft=None,
    detrend='constant', return_onesided=True, scaling='density', axis=-1, average='mean')``: ``(f, Pxx)``,
    the power spectral density by Welch's method."""
    freqs, pxx = csd(x, None, fs=fs, window=window, nperseg=nperseg, noverlap=noverlap, nfft=nfft,
                     detrend=detrend, return_onesided=return_onesided, scaling=scaling, axis=axis,
                     average=average)
    return freqs, fnp.real(pxx)


# --- istft -----------------------------------------------------------------------------------------

def _overlap_add(frames: Any, step: int) -> Any:
    """[..., frames, length] -> [..., step * (frames - 1) + length]: the frames summed at offsets
    ``step * i`` (one scatter-add of static indices)."""
    *batch, count, length = _shape(frames)
    size = step * (count - 1) + length
    index = (np.arange(count)[:, None] * step + np.arange(length)).reshape(-1)
    flat = frames.reshape(*batch, count * length)
    return fnp.zeros((*batch, size), _dtype(frames)).at[..., index].add(flat)


def _istft_window(window: Any, nperseg: int, dtype: Any) -> Any:
    if isinstance(window, (str, tuple)):
        return fnp.asarray(get_window(window, nperseg), dtype=dtype)
    win = fnp.asarray(window)
    shape = _shape(win)
    if len(shape) != 1:
        raise ValueError(f"jax.scipy.signal.istft: window must be 1-D, got shape {shape}")
    if shape[0] != nperseg:
        raise ValueError(f"jax.scipy.signal.istft: window must have length of {nperseg}, got {shape[0]}")
    return win


def istft(Zxx: Any, fs: Any = 1.0, window: Any = "hann", nperseg: int | None = None,   # noqa: N803
          noverlap: int | None = None, nfft: int | None = None, input_onesided: bool = True,
          boundary: bool = True, time_axis: int = -1, freq_axis: int = -2) -> tuple[Any, Any]:
    """``jax.scipy.signal.istft(Zxx, fs=1.0, window='hann', nperseg=None, noverlap=None, nfft=None,
    input_onesided=True, boundary=True, time_axis=-1, freq_axis=-2)``: ``(t, x)``, the inverse of ``stft``
    by weighted overlap-add. As in JAX, ``noverlap=0`` (and ``nperseg=0``) mean the default."""
    zxx = fnp.asarray(Zxx)
    ndim = len(_shape(zxx))
    if ndim < 2:
        raise ValueError(f"jax.scipy.signal.istft: input stft must be at least 2d, got shape {_shape(zxx)}")
    freq_axis, time_axis = freq_axis % ndim, time_axis % ndim
    if freq_axis == time_axis:
        raise ValueError("jax.scipy.signal.istft: must specify differing time and frequency axes, got "
                         f"time_axis=freq_axis={time_axis}")
    zxx = zxx.astype(_complex_dtype(_dtype(zxx)))
    n_default = 2 * (_shape(zxx)[freq_axis] - 1) if input_onesided else _shape(zxx)[freq_axis]
    nperseg = _static_int("istft", "nperseg", nperseg or n_default)
    if nperseg < 1:
        raise ValueError(f"jax.scipy.signal.istft: nperseg must be a positive integer, got {nperseg}")
    if nfft is None:
        nfft = n_default + (1 if input_onesided and nperseg == n_default + 1 else 0)
    nfft = _static_int("istft", "nfft", nfft)
    if nfft < nperseg:
        raise ValueError(f"jax.scipy.signal.istft: FFT length ({nfft}) must be longer than nperseg ({nperseg}).")
    noverlap = _static_int("istft", "noverlap", noverlap or nperseg // 2)
    if noverlap >= nperseg:
        raise ValueError(f"jax.scipy.signal.istft: noverlap must be less than nperseg, got noverlap={noverlap}, "
                         f"nperseg={nperseg}")
    step = nperseg - noverlap
    if time_axis != ndim - 1 or freq_axis != ndim - 2:
        outer = tuple(i for i in range(ndim) if i not in (time_axis, freq_axis))
        zxx = fnp.transpose(zxx, outer + (freq_axis, time_axis))
    inverse = fft_module.irfft if input_onesided else fft_module.ifft
    frames = inverse(zxx, n=nfft, axis=-2)[..., :nperseg, :]       # [..., nperseg, segments]
    win = _istft_window(window, nperseg, _dtype(frames))
    frames = frames * fnp.sum(win)
    win_column = win.reshape((1,) * (len(_shape(frames)) - 2) + (nperseg, 1))
    x = _overlap_add(fnp.swapaxes(frames * win_column, -2, -1), step)
    squared = fnp.broadcast_to(win_column * win_column, _shape(win_column)[:-1] + _shape(frames)[-1:])
    norm = _overlap_add(fnp.swapaxes(squared, -2, -1), step)
    if boundary:
        half = nperseg // 2
        x = x[..., half:-half] if half else x[..., :0]
        norm = norm[..., half:-half] if half else norm[..., :0]
    x = x / fnp.where(norm > 1e-10, norm, 1.0)
    if len(_shape(x)) > 1 and time_axis != ndim - 1:
        x = fnp.moveaxis(x, -1, time_axis - 1 if freq_axis < time_axis else time_axis)
    time = fnp.arange(_shape(x)[0], dtype=_real_dtype(_dtype(x))) / fs
    return time, x
