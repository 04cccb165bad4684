"""``fgrad.scipy.ndimage``: JAX's ``jax.scipy.ndimage`` (``map_coordinates`` with orders 0 and 1).

Each output point gathers the ``2 ** ndim`` (order 1) or one (order 0) neighbouring inputs and sums
them with their interpolation weights, so it lowers natively under ``jit`` and is differentiable in the
input and (order 1) in the coordinates.

Example: ``import fgrad.scipy.ndimage as fnd; fnd.map_coordinates(image, [rows, cols], order=1)``
"""
from __future__ import annotations

import itertools
from typing import Any, Callable, Sequence

import numpy as np

from fgrad import lax
from fgrad import numpy as fnp
from fgrad.core.trace import get_aval

__all__ = ["map_coordinates"]


def _mirror(index: Any, size: int) -> Any:
    period = size - 1                      # a triangle wave of half-period size - 1
    if period == 0:
        return index * 0
    return fnp.abs((index + period) % (2 * period) - period)


def _reflect(index: Any, size: int) -> Any:
    return fnp.floor_divide(_mirror(2 * index + 1, 2 * size + 1) - 1, 2)


#: how each mode maps an index outside [0, size) to one inside
_INDEX_MODES: dict[str, Callable[[Any, int], Any]] = {
    "constant": lambda index, size: index,
    "nearest": lambda index, size: fnp.clip(index, 0, size - 1),
    "wrap": lambda index, size: index % size,
    "mirror": _mirror,
    "reflect": _reflect,
}


def _is_integer(dtype: Any) -> bool:
    return np.issubdtype(np.dtype(dtype), np.integer)


def _round_half_away(x: Any) -> Any:
    return x if _is_integer(get_aval(x).dtype) else lax.round(x)


def _nearest(coordinate: Any) -> list:
    return [(_round_half_away(coordinate).astype(np.int32), None)]


def _linear(coordinate: Any) -> list:
    lower = fnp.floor(coordinate)
    upper_weight = coordinate - lower
    index = lower.astype(np.int32)
    return [(index, 1 - upper_weight), (index + 1, upper_weight)]


def map_coordinates(input: Any, coordinates: Sequence[Any], order: int, mode: str = "constant",  # noqa: A002
                    cval: Any = 0.0) -> Any:
    """``jax.scipy.ndimage.map_coordinates(input, coordinates, order, mode='constant', cval=0.0)``: ``input``
    interpolated at ``coordinates`` (one array per axis of ``input``), nearest (``order=0``) or linear
    (``order=1``). ``mode`` is 'constant' (``cval`` outside; SciPy's 'grid-constant'), 'nearest', 'wrap'
    (SciPy's 'grid-wrap'), 'mirror' or 'reflect'. Integer inputs are rounded back to their dtype."""
    image = fnp.asarray(input)
    dtype = get_aval(image).dtype
    shape = get_aval(image).shape
    coordinates = [fnp.asarray(c) for c in coordinates]
    if len(coordinates) != len(shape):
        raise ValueError(f"jax.scipy.ndimage.map_coordinates: coordinates must be a sequence of length input.ndim, "
                         f"but {len(coordinates)} != {len(shape)}")
    if mode not in _INDEX_MODES:
        raise NotImplementedError(f"jax.scipy.ndimage.map_coordinates does not yet support mode {mode!r}. Currently "
                                  f"supported modes are {set(_INDEX_MODES)}.")
    if order not in (0, 1):
        raise NotImplementedError(f"jax.scipy.ndimage.map_coordinates currently requires order<=1, got order={order}; "
                                  "use order=0 (nearest) or order=1 (linear)")
    nodes_of = _nearest if order == 0 else _linear
    fix = _INDEX_MODES[mode]
    per_axis = []
    for coordinate, size in zip(coordinates, shape):
        per_axis.append([(fix(index, size), (index >= 0) & (index < size) if mode == "constant" else None, weight)
                         for index, weight in nodes_of(coordinate)])
    cval = fnp.asarray(cval, dtype)
    total = None
    for corner in itertools.product(*per_axis):
        indices = tuple(index for index, _, _ in corner)
        value = image[indices]
        valid = [v for _, v, _ in corner if v is not None]
        if valid:
            inside = valid[0]
            for v in valid[1:]:
                inside = inside & v
            value = fnp.where(inside, value, cval)
        weights = [w for _, _, w in corner if w is not None]
        if weights:
            product = weights[0]
            for w in weights[1:]:
                product = product * w
            value = product * value
        total = value if total is None else total + value
    if _is_integer(dtype):
        total = _round_half_away(total)
    return total.astype(dtype)
