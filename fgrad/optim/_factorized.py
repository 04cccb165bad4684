"""Adafactor's factored second moments (Shazeer & Stern, 2018), as optax's
``scale_by_factored_rms``: a matrix (rank >= 2, its two largest dims >= ``min_dim_size_to_factor``)
keeps one running mean of squared gradients per row and one per column instead of one per element."""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

from fgrad import numpy as fnp
from fgrad import tree
from fgrad.optim._base import NO_PARAMS_MSG, GradientTransformation, safe_increment, step_count


class FactoredState(NamedTuple):
    """The step count, the row and column statistics of factored leaves, and the full statistics
    of the others (placeholders of shape (1,) where a leaf has none of a kind)."""
    count: Any
    v_row: Any
    v_col: Any
    v: Any


class _Result(NamedTuple):
    update: Any
    v_row: Any
    v_col: Any
    v: Any


def _decay_rate_pow(i: Any, exponent: float = 0.8) -> Any:
    """Adafactor's second-moment decay at step ``i``: ``1 - (i + 1) ** -exponent``."""
    t = fnp.asarray(i + 1).astype(fnp.float32)
    return 1.0 - t ** (-exponent)


def _factored_dims(shape: tuple, factored: bool, min_dim_size_to_factor: int) -> tuple[int, int] | None:
    """The (second largest, largest) dims to factor over, or None to keep full statistics."""
    if not factored or len(shape) < 2:
        return None
    order = np.argsort(shape)
    if shape[order[-2]] < min_dim_size_to_factor:
        return None
    return int(order[-2]), int(order[-1])


def _without_axis(shape: tuple, axis: int) -> tuple:
    return tuple(s for i, s in enumerate(shape) if i != axis)


def _placeholder(dtype: Any) -> Any:
    return fnp.zeros((1,), dtype=dtype)


def scale_by_factored_rms(factored: bool = True, decay_rate: float = 0.8, step_offset: int = 0,
                          min_dim_size_to_factor: int = 128, epsilon: float = 1e-30,
                          decay_rate_fn: Callable[[Any, Any], Any] = _decay_rate_pow) -> GradientTransformation:
    """``optax.scale_by_factored_rms(factored=True, decay_rate=0.8, step_offset=0,
    min_dim_size_to_factor=128, epsilon=1e-30, decay_rate_fn=...)``: scale updates by the inverse
    root of (factored) running means of squared gradients."""
    def init_one(p):
        dims = _factored_dims(p.shape, factored, min_dim_size_to_factor)
        if dims is None:
            return _Result(_placeholder(p.dtype), _placeholder(p.dtype), _placeholder(p.dtype), fnp.zeros_like(p))
        d1, d0 = dims
        return _Result(_placeholder(p.dtype), fnp.zeros(_without_axis(p.shape, d0), p.dtype),
                       fnp.zeros(_without_axis(p.shape, d1), p.dtype), _placeholder(p.dtype))

    def update_one(grad, v_row, v_col, v, param, count):
        dtype = param.dtype
        decay = decay_rate_fn(count - step_offset, decay_rate)
        squared = grad * grad + epsilon
        dims = _factored_dims(param.shape, factored, min_dim_size_to_factor)
        if dims is None:
            new_v = (decay * v + (1.0 - decay) * squared).astype(dtype)
            return _Result(grad * new_v ** -0.5, _placeholder(dtype), _placeholder(dtype), new_v)
        d1, d0 = dims
        new_row = (decay * v_row + (1.0 - decay) * fnp.mean(squared, axis=d0)).astype(dtype)
        new_col = (decay * v_col + (1.0 - decay) * fnp.mean(squared, axis=d1)).astype(dtype)
        reduced_d1 = d1 - 1 if d1 > d0 else d1
        row_factor = (new_row / fnp.mean(new_row, axis=reduced_d1, keepdims=True)) ** -0.5
        col_factor = new_col ** -0.5
        update = grad * fnp.expand_dims(row_factor, axis=d0) * fnp.expand_dims(col_factor, axis=d1)
        return _Result(update, new_row, new_col, _placeholder(dtype))

    def to_state(count, results):
        is_result = lambda x: isinstance(x, _Result)  # noqa: E731
        return FactoredState(count, *(tree.tree_map(lambda r: r[i], results, is_leaf=is_result) for i in (1, 2, 3)))

    def init(params):
        return to_state(step_count(), tree.tree_map(init_one, params))

    def update(grads, state, params=None):
        if params is None:
            raise ValueError(f"scale_by_factored_rms (adafactor): {NO_PARAMS_MSG}")
        results = tree.tree_map(lambda g, r, c, v, p: update_one(g, r, c, v, p, state.count),
                                grads, state.v_row, state.v_col, state.v, params)
        updates = tree.tree_map(lambda r: r.update, results, is_leaf=lambda x: isinstance(x, _Result))
        return updates, to_state(safe_increment(state.count), results)

    return GradientTransformation(init, update)
