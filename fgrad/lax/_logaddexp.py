"""JAX's logaddexp, with its custom derivative, and the running logsumexp built from it.

``jax.numpy.logaddexp`` (and ``logaddexp2``) and ``jax.lax.cumlogsumexp`` share one
definition: ``log(e^x1 + e^x2)`` as ``max + log1p(e^-|x1 - x2|)`` (complex operands: by
JAX's lexicographic max, the imaginary part wrapped into (-pi, pi]), whose tangent is set
to ``t1 e^(x1 - out) + t2 e^(x2 - out)`` (+inf read as 0, as in JAX). Differentiating the
formula itself would be wrong at ties to second order (``abs``'s kink); the tangent
formula is smooth there, and agrees with JAX at infinities.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from fgrad.core import dtypes
from fgrad.core.trace import get_aval
from fgrad.ops import complex_parts as cp
from fgrad.ops import elementwise as ew
from fgrad.ops import extremum
from fgrad.ops.shape import zeros_like
from fgrad.ops.special import exp2
from fgrad.ops.lax_composites import associative_scan
from fgrad.transforms.custom import custom_jvp

__all__ = ["cumlogsumexp"]


def _replace_posinf(x: Any) -> Any:
    """``x`` with 0 where its (real part) is +inf."""
    real = cp.real(x) if dtypes.is_complex(get_aval(x).dtype) else x
    return ew.select_n(ew.eq(real, ew._const(real, np.inf)), x, zeros_like(x))


def _wrap_between(x: Any, bound: float) -> Any:
    """``x`` wrapped into [-bound, bound)."""
    two = ew._const(x, 2 * bound)
    rem = ew.rem(ew.add(x, ew._const(x, bound)), two)
    rem = ew.select_n(ew.lt(rem, ew._const(x, 0)), rem, ew.add(rem, two))
    return ew.sub(rem, ew._const(x, bound))


def logaddexp_with(exp_fn: Callable, log1p_scale: float | None) -> custom_jvp:
    """JAX's logaddexp (``exp_fn=exp``) / logaddexp2 (``exp2``): a custom_jvp whose tangent is
    ``t1 * e^(x1 - out) + t2 * e^(x2 - out)`` (+inf read as 0), so the derivative is right at
    ``x1 == x2`` and with infinities, to every order."""
    scale = 1.0 if log1p_scale is None else log1p_scale

    def scaled(v):
        return v if log1p_scale is None else ew.mul(v, ew._const(v, log1p_scale))

    @custom_jvp
    def fn(x, y):
        hi = extremum.max(x, y)
        if dtypes.is_complex(get_aval(x).dtype):
            out = ew.add(hi, scaled(ew.log1p(exp_fn(ew.sub(ew.add(x, y), ew.mul(hi, ew._const(hi, 2)))))))
            return cp.complex(cp.real(out), _wrap_between(cp.imag(out), math.pi * scale))
        delta = ew.sub(x, y)
        tail = scaled(ew.log1p(exp_fn(ew.neg(ew.abs(delta)))))
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


def _exp2(x: Any) -> Any:
    """2**x; for complex x (which ``exp2`` does not take) as e^(x ln 2)."""
    return ew.exp(ew.mul(x, ew._const(x, math.log(2.0)))) if dtypes.is_complex(get_aval(x).dtype) else exp2(x)


logaddexp = logaddexp_with(ew.exp, None)
logaddexp2 = logaddexp_with(_exp2, 1 / math.log(2.0))


def cumlogsumexp(operand: Any, axis: int = 0, reverse: bool = False) -> Any:
    """``jax.lax.cumlogsumexp(operand, axis=0, reverse=False)``: the running logsumexp along
    ``axis`` (from the end when ``reverse``), combined by JAX's ``logaddexp``."""
    return associative_scan(logaddexp, operand, reverse=reverse, axis=axis)
