"""``scipy.special`` functions with JAX's definitions (``jax.scipy.special``).

Example: ``import fgrad.scipy.special as fsp; fsp.erf(0.5); fsp.xlogy(0.0, 0.0)  # 0.0``
"""
from __future__ import annotations

from typing import Any

from fgrad import lax
from fgrad import numpy as fnp
from fgrad.nn.functional import logsumexp as _nn_logsumexp
from fgrad.numpy._util import promote, promote_float
from fgrad.transforms.custom import custom_jvp

__all__ = ["erf", "erfc", "erfinv", "expit", "logit", "logsumexp", "xlogy", "xlog1py", "ndtr", "log_ndtr", "ndtri"]


def erf(x: Any) -> Any:
    """The error function (``lax.erf`` on ``x`` promoted to a float)."""
    return lax.erf(promote_float("erf", x))


def erfc(x: Any) -> Any:
    """The complementary error function ``1 - erf(x)``, accurate in the tail."""
    return lax.erfc(promote_float("erfc", x))


def erfinv(x: Any) -> Any:
    """The inverse error function (``lax.erf_inv``): ``erf(erfinv(y)) == y`` on (-1, 1)."""
    return lax.erf_inv(promote_float("erfinv", x))


def expit(x: Any) -> Any:
    """The logistic sigmoid ``1 / (1 + exp(-x))``."""
    return lax.logistic(promote_float("expit", x))


@custom_jvp
def logit(x: Any) -> Any:
    """``log(x / (1 - x))``, the inverse of ``expit``."""
    x = promote_float("logit", x)
    return fnp.log(x / (1 - x))


@logit.defjvp
def _logit_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    x = promote_float("logit", x)
    return logit(x), t / (x * (1 - x))


def logsumexp(a: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """``log(sum(exp(a), axis))`` computed stably; ``axis=None`` reduces over all axes (SciPy's
    default, unlike ``nn.logsumexp``); ``-inf`` over a zero-size axis."""
    return _nn_logsumexp(promote_float("logsumexp", a), axis=axis, keepdims=keepdims)


def _x_log(op: str, log_fn, x: Any, y: Any) -> Any:
    x, y = promote(op, x, y, to_float=True)
    # 0 where x == 0 unless y is NaN (SciPy's and JAX's convention)
    keep = fnp.logical_or(x != 0, fnp.isnan(y))
    return fnp.where(keep, x * log_fn(y), fnp.zeros_like(x))


@custom_jvp
def xlogy(x: Any, y: Any) -> Any:
    """``x * log(y)``, 0 where ``x == 0`` (even at ``y == 0``), NaN if ``y`` is NaN."""
    return _x_log("xlogy", fnp.log, x, y)


@xlogy.defjvp
def _xlogy_jvp(primals, tangents):
    (x, y), (tx, ty) = primals, tangents
    x, y = promote("xlogy", x, y, to_float=True)
    return xlogy(x, y), tx * fnp.log(y) + ty * x / y


@custom_jvp
def xlog1py(x: Any, y: Any) -> Any:
    """``x * log1p(y)``, 0 where ``x == 0`` (even at ``y == -1``), NaN if ``y`` is NaN."""
    return _x_log("xlog1py", fnp.log1p, x, y)


@xlog1py.defjvp
def _xlog1py_jvp(primals, tangents):
    (x, y), (tx, ty) = primals, tangents
    x, y = promote("xlog1py", x, y, to_float=True)
    return xlog1py(x, y), tx * fnp.log1p(y) + ty * x / (1 + y)


# --- the standard normal distribution -------------------------------------------------------

_SQRT_HALF = 0.7071067811865476
_LOG_SQRT_2PI = 0.9189385332046727


def ndtr(x: Any) -> Any:
    """The standard normal CDF ``Phi(x) = erfc(-x / sqrt(2)) / 2``, accurate in both tails."""
    x = promote_float("ndtr", x)
    return 0.5 * lax.erfc(-x * _SQRT_HALF)


def _left_tail_bound(dtype) -> float:
    """Below this, ``Phi`` (nearly) underflows and ``log_ndtr`` uses the asymptotic series."""
    return -20.0 if fnp.dtype(dtype) == fnp.float64 else -10.0


def log_ndtr(x: Any) -> Any:
    """``log(Phi(x))``, accurate far into both tails (``log_ndtr(-40.)`` is about -804.6, where
    ``Phi`` itself underflows; for x > 0 it is ``log1p(-Phi(-x))``), with finite gradients
    everywhere."""
    x = promote_float("log_ndtr", x)
    lower = _left_tail_bound(x.dtype)
    # each formula sees its input clamped to where it is finite, with the clamps 1 beyond the
    # switch points: a clamp exactly there would halve the gradient at the switch (a tie)
    right = fnp.log1p(-ndtr(-fnp.maximum(x, -1.0)))
    middle = fnp.log(ndtr(fnp.clip(x, lower - 1.0, 1.0)))
    left = _log_ndtr_left_tail(fnp.minimum(x, lower + 1.0))
    return fnp.where(x > 0.0, right, fnp.where(x > lower, middle, left))


def _log_ndtr_left_tail(x: Any, terms: int = 6) -> Any:
    """For x << 0: ``log Phi(x) = -x^2/2 - log(-x) - log(sqrt(2 pi)) + log(S)`` with Phi's
    asymptotic series ``S = 1 + sum_n (-1)^n (2n-1)!! / x^(2n)`` (``terms`` terms)."""
    x2 = x * x
    series, power, double_factorial = 1.0, 1.0, 1.0
    for n in range(1, terms + 1):
        double_factorial *= 2 * n - 1
        power = power * x2
        series = series + (-1.0) ** n * double_factorial / power
    return -0.5 * x2 - fnp.log(-x) - _LOG_SQRT_2PI + fnp.log(series)


def ndtri(p: Any) -> Any:
    """The inverse of ``ndtr``: ``ndtr(ndtri(p)) == p`` on (0, 1); -inf at 0, +inf at 1, NaN
    outside [0, 1]. Newton's method on ``log_ndtr`` from the tail's asymptote, so that tiny
    probabilities (1e-300 in float64) keep full relative accuracy."""
    p = promote_float("ndtri", p)
    # solve for the lower half; the upper half by symmetry, ndtri(p) = -ndtri(1 - p)
    q = fnp.minimum(p, 1.0 - p)
    safe = fnp.clip(q, fnp.finfo(p.dtype).tiny, 0.5)
    target = fnp.log(safe)
    x = -fnp.sqrt(-2.0 * target)                        # the asymptote, then the erf-based guess
    x = fnp.where(safe > 1e-3, fnp.sqrt(2.0) * lax.erf_inv(2.0 * safe - 1.0), x)
    for _ in range(6):
        log_phi = log_ndtr(x)
        # d log(Phi)/dx = phi(x) / Phi(x) = exp(-x^2/2 - log sqrt(2 pi) - log Phi(x))
        slope = fnp.exp(-0.5 * x * x - _LOG_SQRT_2PI - log_phi)
        x = fnp.minimum(x - (log_phi - target) / slope, 0.0)
    x = fnp.where(q == 0.5, 0.0, x)
    x = fnp.where(p > 0.5, -x, x)
    x = fnp.where(p == 0.0, -fnp.inf, fnp.where(p == 1.0, fnp.inf, x))
    return fnp.where((p < 0.0) | (p > 1.0) | fnp.isnan(p), fnp.nan, x)
