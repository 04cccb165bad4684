"""Bessel functions of integer order and spherical harmonics (``jax.scipy.special.bessel_jn``
and ``sph_harm_y``), by recurrences unrolled in Python over static orders, composed from
``fgrad.numpy`` so that jit, vmap and grad come for free."""
from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

from fgrad import lax
from fgrad import numpy as fnp
from fgrad.numpy._util import promote, promote_float

__all__ = ["bessel_jn", "sph_harm_y"]


def _static_int(op: str, name: str, value: Any) -> int:
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{op}: {name} must be a Python int (static), got {value!r}; pass it as "
                        "a plain int (under jit, mark it static)") from None


def bessel_jn(z: Any, *, v: int, n_iter: int = 50) -> Any:
    """``bessel_jn(z, *, v, n_iter=50)``: the Bessel functions of the first kind J_0(z) ... J_v(z),
    stacked: shape ``(v + 1, *z.shape)``, z's float dtype (ints promote; complex is a
    ValueError). As JAX: Miller's backward recurrence ``f_k = 2 (k+1)/z f_{k+1} - f_{k+2}`` from
    ``f_{n_iter+1} = 1e-16``, normalized by ``J_0 + 2 J_2 + 2 J_4 + ... = 1``. So JAX's limits
    are kept too: ``n_iter`` must exceed |z| by a margin (|z| > about 30 loses accuracy), z = 0
    gives NaN, and in float32 the recurrence overflows to NaN for small |z| (below about 6 with
    the default n_iter: a smaller n_iter avoids it). Differentiable through the recurrence.

    >>> bessel_jn(fnp.array([1.0, 2.0], fnp.float64), v=1)   # [[J0(1), J0(2)], [J1(1), J1(2)]]
    """
    v = _static_int("bessel_jn", "v", v)
    n_iter = _static_int("bessel_jn", "n_iter", n_iter)
    if v < 0 or n_iter < 0:
        raise ValueError(f"bessel_jn: v and n_iter must be >= 0, got v={v}, n_iter={n_iter}")
    z = promote_float("bessel_jn", z)
    if fnp.iscomplexobj(z):
        raise ValueError(f"bessel_jn: complex input (dtype {z.dtype}) is not supported; pass a real z")
    after, current = fnp.zeros_like(z), fnp.full_like(z, 1e-16)     # f_{k+2}, f_{k+1}
    even_sum = fnp.zeros_like(z)
    orders = [None] * (min(v, n_iter) + 1)
    for k in range(n_iter, -1, -1):
        after, current = current, 2.0 * (k + 1.0) * current / z - after
        if k % 2 == 0:
            even_sum = even_sum + 2.0 * current
        if k < len(orders):
            orders[k] = current
    return fnp.stack(orders) / (even_sum - current)


def _normalized_legendre(n: Any, m: Any, x: Any, s: Any, n_max: int) -> Any:
    """The orthonormal associated Legendre function sqrt((2n+1)/(4 pi) (n-m)!/(n+m)!) P_n^m(x)
    (Condon-Shortley phase included) for 0 <= m, x = cos(theta), s = sin(theta) >= 0; 0 where
    m > n. First P_m^m by its product over j <= m, then up in degree:
    P_l^m = a_l (x P_{l-1}^m - P_{l-2}^m / a_{l-1}), a_l = sqrt((4 l^2 - 1) / (l^2 - m^2))."""
    diagonal = fnp.full_like(x, 1.0 / math.sqrt(4.0 * math.pi))
    for j in range(1, n_max + 1):
        factor = -math.sqrt((2 * j + 1) / (2 * j)) * s
        diagonal = fnp.where(j <= m, diagonal * factor, diagonal)
    below, value = fnp.zeros_like(x), diagonal
    for l in range(1, n_max + 1):
        active = (l > m) & (l <= n)
        m2 = fnp.where(active, m * m, 0.0)
        a_l = fnp.sqrt((4.0 * l * l - 1.0) / (l * l - m2))
        # 1/a_{l-1}; 0 at l - 1 == m, where P_{l-2}^m is 0
        inverse_prev = fnp.sqrt(fnp.maximum((l - 1.0) ** 2 - m2, 0.0) / (4.0 * (l - 1.0) ** 2 - 1.0))
        step = a_l * (x * value - inverse_prev * below)
        below, value = fnp.where(active, value, below), fnp.where(active, step, value)
    return fnp.where(m > n, 0.0, value)


def sph_harm_y(n: Any, m: Any, theta: Any, phi: Any, diff_n: int | None = None,
               n_max: int | None = None) -> Any:
    """``sph_harm_y(n, m, theta, phi, diff_n=None, n_max=None)``: the spherical harmonic
    ``Y_n^m(theta, phi) = N P_n^m(cos theta) exp(i m phi)`` (orthonormal, Condon-Shortley phase,
    ``Y_n^-m = (-1)^m conj(Y_n^m)``) of degree n >= 0 and order m at colatitude theta and longitude
    phi, SciPy's convention. As JAX: ``n_max`` is the largest degree (default ``max(n)``, which
    needs n's value: under jit pass it) and larger n are clipped to it; a scalar theta becomes a
    1-D array, the others broadcast against it; the result is complex of theta's and phi's float
    width. ``diff_n`` (derivatives) is not supported, as in JAX: only None or 0. Where
    |m| > n the result is 0 (SciPy's value; JAX's is undefined there). Differentiable in theta
    and phi.

    >>> sph_harm_y(fnp.array([1]), fnp.array([0]), 0.0, 0.0)   # [sqrt(3 / (4 pi))] = [0.4886025]
    """
    if diff_n not in (None, 0):
        raise NotImplementedError(f"sph_harm_y: diff_n={diff_n!r} (derivatives) is not supported, as "
                                  "in jax.scipy.special.sph_harm_y; pass diff_n=None")
    if n_max is None:
        n_max = np.max(np.asarray(n))
    n_max = _static_int("sph_harm_y", "n_max", n_max)
    theta, phi = promote("sph_harm_y", fnp.atleast_1d(theta), phi, to_float=True, shape=False)
    n, m, theta, phi = fnp.broadcast_arrays(n, m, theta, phi)
    n = fnp.minimum(fnp.asarray(n), n_max).astype(theta.dtype)
    m_abs = fnp.abs(fnp.asarray(m)).astype(theta.dtype)
    legendre = _normalized_legendre(n, m_abs, fnp.cos(theta), fnp.abs(fnp.sin(theta)), n_max)
    angle = m_abs * phi
    re, im = legendre * fnp.cos(angle), legendre * fnp.sin(angle)
    # Y_n^-m = (-1)^m conj(Y_n^m)
    sign = fnp.where(fnp.fmod(m_abs, 2.0) == 1.0, -1.0, 1.0)
    negative = fnp.asarray(m) < 0
    return lax.complex(fnp.where(negative, sign * re, re), fnp.where(negative, -sign * im, im))
