"""Shared helpers of ``fgrad.scipy.stats``: argument promotion and standardisation."""
from __future__ import annotations

from typing import Any

from fgrad import numpy as fnp
from fgrad.numpy._util import promote


def floats(op: str, *args: Any) -> list[Any]:
    """``args`` promoted to one float dtype and broadcast to one shape (JAX's
    ``promote_args_inexact``)."""
    return [fnp.asarray(v) for v in promote(op, *args, to_float=True)]


def standardize(op: str, x: Any, loc: Any, scale: Any, *params: Any) -> tuple:
    """``((x - loc) / scale, scale, *params)``, all of one float dtype."""
    x, loc, scale, *params = floats(op, x, loc, scale, *params)
    return ((x - loc) / scale, scale, *params)


def is_integer(k: Any) -> Any:
    """True where ``k`` is a whole number."""
    return k == fnp.floor(k)


def log1mexp(v: Any) -> Any:
    """``log(1 - exp(v))`` for v <= 0, accurate at both ends (``log(-expm1(v))`` near 0,
    ``log1p(-exp(v))`` below -log 2)."""
    near = v > -0.6931471805599453
    return fnp.where(near, fnp.log(-fnp.expm1(fnp.where(near, v, -1.0))), fnp.log1p(-fnp.exp(v)))


def log_of_probability(p: Any, complement: Any) -> Any:
    """``log(p)`` given p and ``complement`` = 1 - p, each accurate: ``log1p(-complement)`` where p
    is near 1 (log(p) would lose the digits of the small complement)."""
    return fnp.where(p > 0.5, fnp.log1p(-complement), fnp.log(p))
