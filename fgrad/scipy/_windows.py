"""Window functions by name, as ``scipy.signal.get_window(window, nperseg)`` gives them (periodic,
``fftbins=True``), computed on the host in float64 NumPy: a window's length is static.

``jax.scipy.signal`` computes ``'hann'`` itself and hands every other name or tuple to SciPy's
``get_window``. fgrad does not depend on SciPy, so the windows below are written out from their
definitions; the few it does not compute raise an error that names them and the fix (pass the
window's values as an array).
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["get_window"]

#: the cosine-sum windows: coefficients ``a_k`` of ``sum_k a_k cos(k x)``, ``x`` in ``[-pi, pi]``
_COSINE_SUMS = {
    "hann": (0.5, 0.5),
    "hamming": (0.54, 0.46),
    "blackman": (0.42, 0.50, 0.08),
    "blackmanharris": (0.35875, 0.48829, 0.14128, 0.01168),
    "nuttall": (0.3635819, 0.4891775, 0.1365995, 0.0106411),
    "flattop": (0.21557895, 0.41663158, 0.277263158, 0.083578947, 0.006947368),
}

_ALIASES = {
    "han": "hann", "hamm": "hamming", "ham": "hamming", "black": "blackman", "blk": "blackman",
    "blackharr": "blackmanharris", "bkh": "blackmanharris", "nutl": "nuttall", "nut": "nuttall",
    "flat": "flattop", "flt": "flattop", "box": "boxcar", "ones": "boxcar", "rect": "boxcar",
    "rectangular": "boxcar", "triangle": "triang", "tri": "triang", "bart": "bartlett", "brt": "bartlett",
    "halfcosine": "cosine", "brthan": "barthann", "bth": "barthann", "bman": "bohman", "bmn": "bohman",
    "parz": "parzen", "par": "parzen", "tuk": "tukey", "gauss": "gaussian", "gss": "gaussian",
    "general gaussian": "general_gaussian", "general gauss": "general_gaussian",
    "general_gauss": "general_gaussian", "ggs": "general_gaussian", "general cosine": "general_cosine",
    "general hamming": "general_hamming", "ksr": "kaiser", "poisson": "exponential", "sinc": "lanczos",
    "cheb": "chebwin", "taylorwin": "taylor", "kaiser bessel derived": "kaiser_bessel_derived",
    "kbd": "kaiser_bessel_derived",
}

#: SciPy windows fgrad does not compute
_NOT_COMPUTED = ("chebwin", "dpss", "taylor", "kaiser_bessel_derived")


def _cosine_sum(m: int, coefficients: Any) -> np.ndarray:
    x = np.linspace(-np.pi, np.pi, m)
    return sum(a * np.cos(k * x) for k, a in enumerate(coefficients))


def _triang(m: int) -> np.ndarray:
    n = np.arange(1, (m + 1) // 2 + 1)
    if m % 2 == 0:
        half = (2 * n - 1.0) / m
        return np.r_[half, half[::-1]]
    half = 2 * n / (m + 1.0)
    return np.r_[half, half[-2::-1]]


def _bartlett(m: int) -> np.ndarray:
    n = np.arange(m)
    return np.where(n <= (m - 1) / 2.0, 2.0 * n / (m - 1), 2.0 - 2.0 * n / (m - 1))


def _barthann(m: int) -> np.ndarray:
    fac = np.abs(np.arange(m) / (m - 1.0) - 0.5)
    return 0.62 - 0.48 * fac + 0.38 * np.cos(2 * np.pi * fac)


def _bohman(m: int) -> np.ndarray:
    fac = np.abs(np.linspace(-1, 1, m)[1:-1])
    return np.r_[0, (1 - fac) * np.cos(np.pi * fac) + np.sin(np.pi * fac) / np.pi, 0]


def _parzen(m: int) -> np.ndarray:
    n = np.arange(-(m - 1) / 2.0, (m - 1) / 2.0 + 0.5, 1.0)
    outer = n[n < -(m - 1) / 4.0]
    inner = n[np.abs(n) <= (m - 1) / 4.0]
    w_outer = 2 * (1 - np.abs(outer) / (m / 2.0)) ** 3.0
    w_inner = 1 - 6 * (np.abs(inner) / (m / 2.0)) ** 2.0 + 6 * (np.abs(inner) / (m / 2.0)) ** 3.0
    return np.r_[w_outer, w_inner, w_outer[::-1]]


def _tukey(m: int, alpha: float = 0.5) -> np.ndarray:
    if alpha <= 0:
        return np.ones(m)
    if alpha >= 1.0:
        return _cosine_sum(m, _COSINE_SUMS["hann"])
    n = np.arange(m)
    width = int(np.floor(alpha * (m - 1) / 2.0))
    rise = 0.5 * (1 + np.cos(np.pi * (-1 + 2.0 * n[:width + 1] / alpha / (m - 1))))
    fall = 0.5 * (1 + np.cos(np.pi * (-2.0 / alpha + 1 + 2.0 * n[m - width - 1:] / alpha / (m - 1))))
    return np.r_[rise, np.ones(m - 2 * (width + 1)), fall]


def _centered(m: int) -> np.ndarray:
    return np.arange(m) - (m - 1.0) / 2.0


def _kaiser(m: int, beta: float) -> np.ndarray:
    alpha = (m - 1) / 2.0
    return np.i0(beta * np.sqrt(1 - ((np.arange(m) - alpha) / alpha) ** 2.0)) / np.i0(float(beta))


def _exponential(m: int, center: float | None = None, tau: float = 1.0) -> np.ndarray:
    center = (m - 1) / 2 if center is None else center
    return np.exp(-np.abs(np.arange(m) - center) / tau)


_BUILDERS = {
    "boxcar": lambda m: np.ones(m),
    "triang": _triang,
    "bartlett": _bartlett,
    "cosine": lambda m: np.sin(np.pi / m * (np.arange(m) + 0.5)),
    "barthann": _barthann,
    "bohman": _bohman,
    "parzen": _parzen,
    "tukey": _tukey,
    "gaussian": lambda m, std: np.exp(-_centered(m) ** 2 / (2 * std * std)),
    "general_gaussian": lambda m, p, sig: np.exp(-0.5 * np.abs(_centered(m) / sig) ** (2 * p)),
    "general_cosine": _cosine_sum,
    "general_hamming": lambda m, alpha: _cosine_sum(m, (alpha, 1.0 - alpha)),
    "kaiser": _kaiser,
    "exponential": _exponential,
    "lanczos": lambda m: np.sinc(2.0 * np.arange(m) / (m - 1) - 1.0),
}
for _name, _coefficients in _COSINE_SUMS.items():
    _BUILDERS[_name] = lambda m, _c=_coefficients: _cosine_sum(m, _c)

#: how many parameters each window needs (min, max)
_PARAMETERS = {"tukey": (0, 1), "gaussian": (1, 1), "general_gaussian": (2, 2), "general_cosine": (1, 1),
               "general_hamming": (1, 1), "kaiser": (1, 1), "exponential": (0, 2)}


def _split(window: Any) -> tuple[str, tuple, bool]:
    """(canonical name, parameters, symmetric) of a window given as a name or a tuple."""
    if isinstance(window, tuple):
        if not window or not isinstance(window[0], str):
            raise ValueError(f"get_window: a tuple window must start with the window's name, got {window!r}; "
                             "write it as ('tukey', 0.25)")
        name, args = window[0], tuple(window[1:])
    else:
        name, args = window, ()
    symmetric = False
    if name.endswith("_symmetric"):
        name, symmetric = name[:-len("_symmetric")], True
    elif name.endswith("_periodic"):
        name = name[:-len("_periodic")]
    return _ALIASES.get(name, name), args, symmetric


def get_window(window: Any, nx: int) -> np.ndarray:
    """``scipy.signal.get_window(window, nx)`` (periodic, ``fftbins=True``) as float64 NumPy values.

    ``window`` is a name (``'hann'``, ``'hamming'``, ``'blackman'``, ``'boxcar'``, ...) or a tuple of a
    name and its parameters (``('tukey', 0.25)``, ``('kaiser', 8.0)``, ``('gaussian', 2.0)``).
    """
    name, args, symmetric = _split(window)
    if name in _NOT_COMPUTED:
        raise NotImplementedError(
            f"window {window!r}: fgrad does not compute the '{name}' window; pass its values as an array "
            f"instead, e.g. window=scipy.signal.get_window({window!r}, nperseg)")
    if name not in _BUILDERS:
        raise ValueError(f"window {window!r}: unknown window name '{name}'; use one of "
                         f"{sorted(set(_BUILDERS))} or pass the window's values as an array")
    low, high = _PARAMETERS.get(name, (0, 0))
    if not low <= len(args) <= high:
        wanted = "no parameters" if high == 0 else f"{low} to {high} parameter(s)"
        raise ValueError(f"window {window!r}: '{name}' takes {wanted}, got {len(args)}; "
                         f"e.g. {('tukey', 0.25)!r} or {('kaiser', 8.0)!r}")
    if name == "exponential" and symmetric and args and args[0] is not None:
        raise ValueError(f"window {window!r}: a symmetric exponential window takes no center; drop it")
    if nx <= 1:
        return np.ones(max(int(nx), 0))
    length = nx if symmetric else nx + 1
    values = np.asarray(_BUILDERS[name](length, *args),
                        dtype=np.float64)
    return values if symmetric else values[:-1]


del _name, _coefficients
