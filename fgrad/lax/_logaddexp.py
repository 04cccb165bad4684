"""JAX's logaddexp, with its custom derivative, and the running logsumexp built from it.

``jax.numpy.logaddexp`` (and ``logaddexp2``) and ``jax.lax.cumlogsumexp`` share one
definition: ``log(e^x1 + e^x2)`` as ``max + log1p(e^-|x1 - x2|)``, whose tangent is set to
``t1 e^(x1 - out) + t2 e^(x2 - out)`` (+inf read as 0, as in JAX). Differentiating the
formula itself would be wrong at ties to second order (``abs``'s kink); the tangent
formula is smooth there, and agrees with JAX at infinities.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from fgrad.core.trace import get_aval
from fgrad.ops import elementwise as ew
from fgrad.ops.shape import zeros_like
from fgrad.ops.special import exp2
from fgrad.ops.lax_composites import associative_scan
from fgrad.transforms.custom import custom_jvp

__all__ = ["cumlogsumexp"]


def _const(x: Any, value: float) -> Any:
    return get_aval(x).dtype.type(value)


def _replace_posinf(x: Any) -> Any:
    return ew.select_n(ew.eq(x, _const(x, np.inf)), x, zeros_like(x))


def logaddexp_with(exp_fn: Callable, log1p_scale: float | None) -> custom_jvp:
    """JAX's logaddexp (``exp_fn=exp``) / logaddexp2 (``exp2``): a custom_jvp whose tangent is
    ``t1 * e^(x1 - out) + t2 * e^(x2 - out)`` (+inf read as 0), so the derivative is right at
    ``x1 == x2`` and with infinities, to every order."""
    @custom_jvp
    def fn(x, y):
        hi = ew.max(x, y)
        delta = ew.sub(x, y)
        tail = ew.log1p(exp_fn(ew.neg(ew.abs(delta))))
        if log1p_scale is not None:
            tail = ew.mul(tail, _const(x, log1p_scale))
        # delta is NaN for NaNs and for infinities of one sign: x + y is then the answer
        return ew.select_n(ew.ne(delta, delta), ew.add(hi, tail), ew.add(x, y))

    @fn.defjvp
    def fn_jvp(primals, tangents):
        (x, y), (tx, ty) = primals, tangents
        out = fn(x, y)
        safe_out = _replace_posinf(out)
        return out, ew.add(ew.mul(tx, exp_fn(ew.sub(_replace_posinf(x), safe_out))),
                           ew.mul(ty, exp_fn(ew.sub(_replace_posinf(y), safe_out))))
    return fn


logaddexp = logaddexp_with(ew.exp, None)
logaddexp2 = logaddexp_with(exp2, 1 / math.log(2.0))


def cumlogsumexp(operand: Any, axis: int = 0, reverse: bool = False) -> Any:
    """``jax.lax.cumlogsumexp(operand, axis=0, reverse=False)``: the running logsumexp along
    ``axis`` (from the end when ``reverse``), combined by JAX's ``logaddexp``."""
    return associative_scan(logaddexp, operand, reverse=reverse, axis=axis)
