"""``jax.ops``' segment reductions: ``segment_sum``, ``segment_prod``, ``segment_max`` and
``segment_min`` (reachable as ``fgrad.ops.segment_sum`` etc.).

Each is one scatter (``indexing.scatter``) of ``data`` into an array of ``num_segments`` rows
filled with the reduction's identity, so grad, vmap and jit come from the scatter's rules and
an empty segment holds the identity (0, 1, the dtype's lowest or highest value). As in JAX,
ids outside ``[0, num_segments)`` are dropped (negative ones too, never wrapped), or clamped
into range with ``mode="clip"``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from fgrad.core.trace import ConcretizationError, get_aval
from fgrad.ops import elementwise as ew
from fgrad.ops import indexing
from fgrad.ops import shape as sh
from fgrad.ops._util import as_operand

_MODES = (None, "drop", "fill", "promise_in_bounds", "clip")


def _identity(kind: str, dtype: np.dtype) -> Any:
    """The value an empty segment holds for reduction ``kind``."""
    if kind == "add":
        return 0
    if kind == "mul":
        return 1
    if dtype == np.bool_:
        return kind == "min"
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return info.min if kind == "max" else info.max
    return -np.inf if kind == "max" else np.inf


def _num_segments(segment_ids: Any, num_segments: int | None, fn: str) -> int:
    if num_segments is not None:
        if not isinstance(num_segments, (int, np.integer)) or isinstance(num_segments, bool) or num_segments < 0:
            raise TypeError(f"{fn}: num_segments must be a non-negative Python int, got {num_segments!r}")
        return int(num_segments)
    try:
        ids = np.asarray(segment_ids)
    except ConcretizationError:
        raise ConcretizationError(
            f"{fn}: without num_segments the output size is max(segment_ids) + 1, which is not known "
            "while tracing (under jit); pass num_segments=<int>") from None
    return int(ids.max()) + 1 if ids.size else 0


def _segment(kind: str, fn: str, data: Any, segment_ids: Any, num_segments: int | None,
             indices_are_sorted: bool, unique_indices: bool, bucket_size: int | None, mode: Any) -> Any:
    del indices_are_sorted, unique_indices   # hints about the ids; the result is the same without them
    if bucket_size is not None and (not isinstance(bucket_size, (int, np.integer)) or bucket_size < 1):
        raise ValueError(f"{fn}: bucket_size must be a positive int or None, got {bucket_size!r}")
    mode = getattr(mode, "name", mode)
    mode = mode.lower() if isinstance(mode, str) else mode
    if mode not in _MODES:
        raise ValueError(f"{fn}: mode must be one of 'drop', 'fill', 'promise_in_bounds', 'clip' "
                         f"or None, got {mode!r}")
    data = np.asarray(data) if isinstance(data, (list, tuple)) else as_operand(data)
    ids = np.asarray(segment_ids) if isinstance(segment_ids, (list, tuple)) else as_operand(segment_ids)
    aval, ids_aval = get_aval(data), get_aval(ids)
    if ids_aval.dtype.kind not in "iu":
        raise TypeError(f"{fn}: segment_ids must be integers, got {ids_aval.dtype.name}")
    if aval.ndim < 1 or ids_aval.shape != aval.shape[:ids_aval.ndim] or ids_aval.ndim != 1:
        raise ValueError(f"{fn}: segment_ids must be 1-D with one id per row of data (shape "
                         f"{aval.shape[:1]}), got shape {ids_aval.shape}")
    n = _num_segments(segment_ids, num_segments, fn)
    if mode == "clip" and n > 0:
        ids = ew.max(ew.min(ids, sh.full_like(ids, n - 1)), sh.full_like(ids, 0))
    out = sh.full((n,) + tuple(aval.shape[1:]), _identity(kind, np.dtype(aval.dtype)), aval.dtype)
    return indexing.scatter(out, sh.expand_dims(ids, (1,)), data, (0,), mode=kind)


def segment_sum(data: Any, segment_ids: Any, num_segments: int | None = None, indices_are_sorted: bool = False,
                unique_indices: bool = False, bucket_size: int | None = None, mode: Any = None) -> Any:
    """``jax.ops.segment_sum(data, segment_ids, num_segments=None, indices_are_sorted=False,
    unique_indices=False, bucket_size=None, mode=None)``: ``out[s]`` is the sum of the rows
    ``data[i]`` with ``segment_ids[i] == s`` (0 for an empty segment). ``num_segments`` may be
    left out only outside jit (it is then ``max(segment_ids) + 1``)."""
    return _segment("add", "segment_sum", data, segment_ids, num_segments, indices_are_sorted,
                    unique_indices, bucket_size, mode)


def segment_prod(data: Any, segment_ids: Any, num_segments: int | None = None, indices_are_sorted: bool = False,
                 unique_indices: bool = False, bucket_size: int | None = None, mode: Any = None) -> Any:
    """``jax.ops.segment_prod(...)``: the product of each segment's rows (1 for an empty one)."""
    return _segment("mul", "segment_prod", data, segment_ids, num_segments, indices_are_sorted,
                    unique_indices, bucket_size, mode)


def segment_max(data: Any, segment_ids: Any, num_segments: int | None = None, indices_are_sorted: bool = False,
                unique_indices: bool = False, bucket_size: int | None = None, mode: Any = None) -> Any:
    """``jax.ops.segment_max(...)``: the maximum of each segment's rows (the dtype's lowest
    value, -inf for floats, for an empty one)."""
    return _segment("max", "segment_max", data, segment_ids, num_segments, indices_are_sorted,
                    unique_indices, bucket_size, mode)


def segment_min(data: Any, segment_ids: Any, num_segments: int | None = None, indices_are_sorted: bool = False,
                unique_indices: bool = False, bucket_size: int | None = None, mode: Any = None) -> Any:
    """``jax.ops.segment_min(...)``: the minimum of each segment's rows (the dtype's highest
    value, inf for floats, for an empty one)."""
    return _segment("min", "segment_min", data, segment_ids, num_segments, indices_are_sorted,
                    unique_indices, bucket_size, mode)


#: the names ``fgrad/__init__.py`` puts on the ``fgrad.ops`` package (JAX's ``jax.ops``)
PUBLIC = {f.__name__: f for f in (segment_sum, segment_prod, segment_max, segment_min)}
