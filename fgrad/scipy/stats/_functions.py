"""``jax.scipy.stats``'s functions on samples: ``sem``, ``rankdata``, ``mode``."""
from __future__ import annotations

from typing import Any, NamedTuple

from fgrad import numpy as fnp
from fgrad.core import dtypes
from fgrad.numpy._util import promote_float
from fgrad.transforms.vmap import vmap

__all__ = ["sem", "rankdata", "mode", "ModeResult"]

_RANK_METHODS = ("average", "min", "max", "dense", "ordinal")


def _along_last(a: Any, axis: int | None) -> tuple[Any, int]:
    """``a`` with ``axis`` moved last (flattened for None), and the axis it came from."""
    if axis is None:
        return fnp.ravel(a), -1
    return fnp.moveaxis(a, axis, -1), axis


def _check_nan_policy(op: str, nan_policy: str, allowed: tuple) -> None:
    if nan_policy not in allowed:
        if nan_policy in ("propagate", "omit", "raise"):
            raise NotImplementedError(f"{op}: nan_policy={nan_policy!r} is not supported (as in JAX); "
                                      f"use one of {allowed}")
        raise ValueError(f"{op}: nan_policy must be 'propagate', 'omit' or 'raise', got {nan_policy!r}")


def sem(a: Any, axis: int | None = 0, ddof: int = 1, nan_policy: str = "propagate", *,
        keepdims: bool = False) -> Any:
    """``sem(a, axis=0, ddof=1, nan_policy='propagate', *, keepdims=False)``: the standard error of
    the mean, ``std(a, ddof) / sqrt(n)``; with ``nan_policy='omit'``, over the non-NaN values."""
    _check_nan_policy("sem", nan_policy, ("propagate", "omit"))
    a = promote_float("sem", a)
    if axis is None:
        a, axis = fnp.ravel(a), 0
    if nan_policy == "propagate":
        n = a.shape[axis]
        return fnp.std(a, axis=axis, ddof=ddof, keepdims=keepdims) / fnp.sqrt(float(n))
    present = ~fnp.isnan(a)
    n = fnp.sum(present, axis=axis, keepdims=True).astype(a.dtype)
    values = fnp.where(present, a, 0.0)
    mean = fnp.sum(values, axis=axis, keepdims=True) / n
    squares = fnp.sum(fnp.where(present, (a - mean) ** 2, 0.0), axis=axis, keepdims=True)
    out = fnp.sqrt(squares / (n - ddof) / n)
    return out if keepdims else fnp.squeeze(out, axis=axis)


def _rank_row(row: Any, method: str) -> Any:
    ordered = fnp.sort(row)
    below = fnp.searchsorted(ordered, row, side="left").astype(row.dtype)     # values < row[i]
    through = fnp.searchsorted(ordered, row, side="right").astype(row.dtype)  # values <= row[i]
    if method == "min":
        return below + 1
    if method == "max":
        return through
    if method == "average":
        return (below + 1 + through) / 2
    if method == "ordinal":
        return fnp.argsort(fnp.argsort(row, stable=True), stable=True).astype(row.dtype) + 1
    starts = fnp.concatenate([fnp.ones((1,), bool), ordered[1:] != ordered[:-1]])
    dense = fnp.cumsum(starts.astype(row.dtype))
    return fnp.take(dense, below.astype(fnp.int32))


def rankdata(a: Any, method: str = "average", *, axis: int | None = None, nan_policy: str = "propagate") -> Any:
    """``rankdata(a, method='average', *, axis=None, nan_policy='propagate')``: the ranks (from 1)
    of ``a``'s values along ``axis`` (of the flattened array for None), ties by ``method``:
    'average', 'min', 'max', 'dense' or 'ordinal'; NaN for a slice holding a NaN."""
    if method not in _RANK_METHODS:
        raise ValueError(f"rankdata: method must be one of {_RANK_METHODS}, got {method!r}")
    _check_nan_policy("rankdata", nan_policy, ("propagate",))
    a = promote_float("rankdata", a)
    moved, source = _along_last(a, axis)
    rows = fnp.reshape(moved, (-1, moved.shape[-1]))
    ranks = vmap(lambda row: _rank_row(row, method))(rows) if rows.shape[-1] else rows
    ranks = fnp.where(fnp.any(fnp.isnan(rows), axis=-1, keepdims=True), fnp.nan, ranks)
    ranks = fnp.reshape(ranks, moved.shape)
    return ranks if axis is None else fnp.moveaxis(ranks, -1, source)


class ModeResult(NamedTuple):
    """``mode``'s result: the most frequent value and how often it occurs."""
    mode: Any
    count: Any


def _mode_row(row: Any) -> tuple[Any, Any]:
    ordered = fnp.sort(row)
    counts = fnp.searchsorted(ordered, ordered, side="right") - fnp.searchsorted(ordered, ordered, side="left")
    best = fnp.argmax(counts)                   # the first of the most frequent: the smallest value
    return ordered[best], counts[best]


def mode(a: Any, axis: int | None = 0, nan_policy: str = "propagate", keepdims: bool = False) -> ModeResult:
    """``mode(a, axis=0, nan_policy='propagate', keepdims=False)``: ``ModeResult(mode, count)``, the
    most frequent value along ``axis`` (the smallest of equally frequent ones) and its count."""
    _check_nan_policy("mode", nan_policy, ("propagate",))
    a = fnp.asarray(a)
    moved, source = _along_last(a, axis)
    if moved.shape[-1] == 0:
        raise ValueError("mode: the reduced axis is empty")
    rows = fnp.reshape(moved, (-1, moved.shape[-1]))
    values, counts = vmap(_mode_row)(rows)
    shape = moved.shape[:-1]
    values, counts = fnp.reshape(values, shape), fnp.reshape(counts, shape)
    if keepdims:
        where = tuple(range(a.ndim)) if axis is None else source
        values, counts = fnp.expand_dims(values, where), fnp.expand_dims(counts, where)
    return ModeResult(values, counts.astype(dtypes.default_int()))
