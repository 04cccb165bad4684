"""``fgrad.scipy.interpolate``: JAX's ``jax.scipy.interpolate`` (``RegularGridInterpolator``,
linear and nearest-neighbour interpolation on a rectilinear grid).

The interpolator is a pytree (its grid, values and fill value are the leaves), so it can be
passed into ``jit``-ed functions or built inside them; evaluating it is ``searchsorted`` on each
axis, gathers of the cell's corners and a weighted sum, so it runs under ``jit``, ``vmap`` and
``grad`` (with respect to the query points and the values).
"""
from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from fgrad import numpy as fnp
from fgrad import tree
from fgrad.core import dtypes
from fgrad.core.trace import get_aval
from fgrad.numpy._util import promote_float, to_array

__all__ = ["RegularGridInterpolator"]

_METHODS = ("linear", "nearest")


def _check_method(method: Any) -> None:
    if method not in _METHODS:
        raise ValueError(f"method {method!r} is not defined; RegularGridInterpolator supports {list(_METHODS)}")


def _query_points(xi: Any, ndim: int) -> Any:
    """``xi`` as an array of shape ``(..., ndim)``: a tuple of coordinate arrays (broadcast,
    stacked last, as the default float) or an array whose last axis holds the coordinates (a
    1-d array is a list of points)."""
    if isinstance(xi, tuple) and len(xi) == 1:
        xi = xi[0]
    if isinstance(xi, tuple):
        coords = fnp.broadcast_arrays(*[to_array(c, "RegularGridInterpolator") for c in xi])
        return fnp.stack([c.astype(dtypes.default_float()) for c in coords], axis=-1)
    xi = to_array(xi, "RegularGridInterpolator")
    return fnp.reshape(xi, (-1, ndim)) if get_aval(xi).ndim == 1 else xi


class RegularGridInterpolator:
    """``jax.scipy.interpolate.RegularGridInterpolator(points, values, method='linear',
    bounds_error=False, fill_value=nan)``: interpolate ``values`` (at least ``len(points)``-d,
    trailing axes carried along) given on the grid ``points`` (one strictly increasing 1-d array
    per axis), as SciPy's ``scipy.interpolate.RegularGridInterpolator``.

    Calling it, ``interp(xi, method=None)``, evaluates at the points ``xi`` (shape ``(..., N)``,
    or a tuple of N coordinate arrays) and returns shape ``xi.shape[:-1] + values.shape[N:]``.
    ``method`` is "linear" or "nearest" (ties at the midpoint go to the lower grid point).
    Points outside the grid get ``fill_value``, or are extrapolated from the edge cells when it
    is None. As in JAX, ``bounds_error=True`` is not implemented (it cannot be checked under
    ``jit``), and a decreasing grid axis gives wrong results silently."""

    def __init__(self, points: Any, values: Any, method: str = "linear", bounds_error: bool = False,
                 fill_value: Any = np.nan):
        _check_method(method)
        if bounds_error:
            raise NotImplementedError("RegularGridInterpolator: `bounds_error` takes no effect under JIT (as in "
                                      "JAX); pass bounds_error=False and a fill_value (NaN by default)")
        values = promote_float("RegularGridInterpolator", values)
        if len(points) > get_aval(values).ndim:
            raise ValueError(f"there are {len(points)} point arrays, but values has {get_aval(values).ndim} "
                             "dimensions")
        if fill_value is not None:
            fill_value = to_array(fill_value, "RegularGridInterpolator")
            if not np.can_cast(get_aval(fill_value).dtype, get_aval(values).dtype, casting="same_kind"):
                raise ValueError("fill_value must be either 'None' or of a type compatible with values "
                                 f"({get_aval(fill_value).dtype} does not cast to {get_aval(values).dtype})")
        self.method, self.bounds_error, self.fill_value = method, bounds_error, fill_value
        self.grid = tuple(to_array(p, "RegularGridInterpolator") for p in points)
        self.values = values

    def __call__(self, xi: Any, method: str | None = None) -> Any:
        """Interpolate at ``xi`` (``(..., N)`` points, or a tuple of N coordinate arrays) with
        ``method`` (the interpolator's own by default)."""
        method = self.method if method is None else method
        _check_method(method)
        ndim = len(self.grid)
        xi = _query_points(xi, ndim)
        shape = get_aval(xi).shape
        if shape[-1] != ndim:
            raise ValueError(f"the requested sample points xi have dimension {shape[-1]}, but this "
                             f"RegularGridInterpolator has dimension {ndim}")
        indices, distances, outside = self._find_indices(fnp.reshape(xi, (-1, ndim)).T)
        if method == "linear":
            result = self._evaluate_linear(indices, distances)
        else:
            result = self._evaluate_nearest(indices, distances)
        if self.fill_value is not None:
            outside = fnp.reshape(outside, (-1,) + (1,) * (get_aval(result).ndim - 1))
            result = fnp.where(outside, self.fill_value, result)
        return fnp.reshape(result, shape[:-1] + get_aval(self.values).shape[ndim:])

    def _find_indices(self, xi: Any) -> tuple[list, list, Any]:
        """Per axis, the lower corner of each point's cell (clamped to the edge cells) and the
        point's fractional position in it; and whether the point lies outside the grid."""
        indices, distances = [], []
        outside = fnp.zeros((get_aval(xi).shape[1],), dtype=bool)
        for x, g in zip(xi, self.grid):
            i = fnp.clip(fnp.searchsorted(g, x) - 1, 0, get_aval(g).shape[0] - 2)
            indices.append(i)
            distances.append((x - g[i]) / (g[i + 1] - g[i]))
            outside = outside | (x < g[0]) | (x > g[-1])
        return indices, distances, outside

    def _evaluate_linear(self, indices: list, distances: list) -> Any:
        trailing = (slice(None),) + (None,) * (get_aval(self.values).ndim - len(indices))
        total = fnp.asarray(0.)
        for corner in itertools.product(*[(i, i + 1) for i in indices]):
            weight = fnp.asarray(1.)
            for at, i, t in zip(corner, indices, distances):
                weight = weight * (1 - t if at is i else t)
            total = total + self.values[corner] * weight[trailing]
        return total

    def _evaluate_nearest(self, indices: list, distances: list) -> Any:
        return self.values[tuple(fnp.where(t <= .5, i, i + 1) for i, t in zip(indices, distances))]


def _flatten(interp: RegularGridInterpolator):
    return (interp.grid, interp.values, interp.fill_value), (interp.method, interp.bounds_error)


def _unflatten(aux: tuple, children: tuple) -> RegularGridInterpolator:
    """Rebuild without ``__init__``'s checks: the leaves may be tracers or transform placeholders."""
    interp = object.__new__(RegularGridInterpolator)
    interp.grid, interp.values, interp.fill_value = children
    interp.method, interp.bounds_error = aux
    return interp


tree.register_pytree_node(RegularGridInterpolator, _flatten, _unflatten)
