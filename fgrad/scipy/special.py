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

__all__ = ["erf", "erfc", "erfinv", "expit", "logit", "logsumexp", "xlogy", "xlog1py"]


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
