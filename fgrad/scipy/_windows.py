"""Window functions by name, as ``scipy.signal.get_window(window, nperseg)`` gives them (periodic,
``fftbins=True``), computed on the host in float64 NumPy: a window's length is static.

``jax.scipy.signal`` computes ``'hann'`` itself and hands every other name or tuple to SciPy's
``get_window``. fgrad does not depend on SciPy, so the windows below are written out from their
definitions (all of SciPy 1.17's names; ``dpss`` is the single window of ``Kmax=None``).
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


def _chebwin(m: int, at: float) -> np.ndarray:
    """Dolph-Chebyshev: the inverse DFT of the Chebyshev polynomial sampled on the unit circle."""
    order = m - 1.0
    beta = np.cosh(np.arccosh(10 ** (abs(at) / 20.0)) / order)
    x = beta * np.cos(np.pi * np.arange(m) / m)
    p = np.empty(m)
    above, below, inside = x > 1, x < -1, np.abs(x) <= 1
    p[above] = np.cosh(order * np.arccosh(x[above]))
    p[below] = (2 * (m % 2) - 1) * np.cosh(order * np.arccosh(-x[below]))
    p[inside] = np.cos(order * np.arccos(x[inside]))
    if m % 2:
        w = np.real(np.fft.fft(p))[:(m + 1) // 2]
        w = np.r_[w[:0:-1], w]
    else:
        w = np.real(np.fft.fft(p * np.exp(1j * np.pi / m * np.arange(m))))[1:m // 2 + 1]
        w = np.r_[w[::-1], w]
    return w / np.max(w)


def _taylor(m: int, nbar: int = 4, sll: float = 30, norm: bool = True) -> np.ndarray:
    a = np.arccosh(10 ** (sll / 20)) / np.pi
    s2 = nbar ** 2 / (a ** 2 + (nbar - 0.5) ** 2)
    ma = np.arange(1, nbar, dtype=np.float64)
    m2 = ma * ma
    fm = np.empty(nbar - 1)
    for i in range(nbar - 1):
        numerator = (-1) ** i * np.prod(1 - m2[i] / s2 / (a ** 2 + (ma - 0.5) ** 2))
        denominator = 2 * np.prod(1 - m2[i] / m2[:i]) * np.prod(1 - m2[i] / m2[i + 1:])
        fm[i] = numerator / denominator

    def at(n: Any) -> Any:
        return 1 + 2 * np.matmul(fm, np.cos(2 * np.pi * ma[:, None] * (n - m / 2.0 + 0.5) / m))

    w = at(np.arange(m, dtype=np.float64))
    return w / at((m - 1) / 2) if norm else w


def _kaiser_bessel_derived(m: int, beta: float) -> np.ndarray:
    csum = np.cumsum(_kaiser(m // 2 + 1, beta))
    half = np.sqrt(csum[:-1] / csum[-1])
    return np.r_[half, half[::-1]]


def _dpss(m: int, nw: float) -> np.ndarray:
    """The first discrete prolate spheroidal (Slepian) sequence, scaled as SciPy's single window
    (``Kmax=None``: peak 1, times ``m**2 / (m**2 + NW)`` for even ``m``)."""
    n = np.arange(m, dtype=np.float64)
    diagonal = ((m - 1 - 2 * n) / 2.0) ** 2 * np.cos(2 * np.pi * nw / m)
    off = n[1:] * (m - n[1:]) / 2.0
    tridiagonal = np.diag(diagonal) + np.diag(off, 1) + np.diag(off, -1)
    w = np.linalg.eigh(tridiagonal)[1][:, -1]
    w = -w if w.sum() < 0 else w
    w = w / w.max()
    return w * (m ** 2 / float(m ** 2 + nw)) if m % 2 == 0 else w


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
    "chebwin": _chebwin,
    "taylor": _taylor,
    "kaiser_bessel_derived": _kaiser_bessel_derived,
    "dpss": _dpss,
}
for _name, _coefficients in _COSINE_SUMS.items():
    _BUILDERS[_name] = lambda m, _c=_coefficients: _cosine_sum(m, _c)

#: how many parameters each window needs (min, max)
_PARAMETERS = {"tukey": (0, 1), "gaussian": (1, 1), "general_gaussian": (2, 2), "general_cosine": (1, 1),
               "general_hamming": (1, 1), "kaiser": (1, 1), "exponential": (0, 2), "chebwin": (1, 1),
               "taylor": (0, 3), "kaiser_bessel_derived": (1, 1), "dpss": (1, 1)}


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
    if name == "kaiser_bessel_derived" and not symmetric:
        raise ValueError(f"window {window!r}: Kaiser-Bessel derived windows are only defined for symmetric shapes; "
                         "name it 'kaiser_bessel_derived_symmetric'")
    if name == "kaiser_bessel_derived" and nx % 2:
        raise ValueError(f"window {window!r}: only defined for an even number of points, got {nx}")
    if nx <= 1:
        return np.ones(max(int(nx), 0))
    if name == "dpss" and not 0 < args[0] < nx / 2.0:
        raise ValueError(f"window {window!r}: NW must be positive and less than nperseg / 2 = {nx / 2.0}")
    length = nx if symmetric else nx + 1
    values = np.asarray(_BUILDERS[name](length, *args),
                        dtype=np.float64)
    return values if symmetric else values[:-1]


del _name, _coefficients
