"""Parameter initializers with JAX's names and signatures (``jax.nn.initializers``).

Each constructor returns ``init(key, shape, dtype=float32)``; ``zeros`` and ``ones`` are
initializers themselves:

    from fgrad.nn import initializers
    w = initializers.glorot_normal()(key, (784, 512))
    b = initializers.zeros(key, (512,))

The distributions are JAX's (the variance-scaling truncated normal cut at two standard
deviations and rescaled by 0.8796..., the orthogonal matrix with ``diag(R) > 0``), drawn from
``fgrad.random``'s streams: the same key gives the same numbers as fgrad, not as JAX.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from fgrad import lax
from fgrad import numpy as fnp
from fgrad import random
from fgrad.core import dtypes

__all__ = ["zeros", "ones", "constant", "uniform", "normal", "truncated_normal", "variance_scaling",
           "glorot_uniform", "glorot_normal", "xavier_uniform", "xavier_normal", "lecun_uniform",
           "lecun_normal", "he_uniform", "he_normal", "kaiming_uniform", "kaiming_normal", "orthogonal",
           "delta_orthogonal"]

Initializer = Callable[..., Any]

#: The standard deviation of a standard normal truncated to (-2, 2) (JAX's constant).
_TRUNCATED_STDDEV = 0.8796256610342398
_MODES = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")
_DISTRIBUTIONS = ("truncated_normal", "normal", "uniform")


def _float_dtype(dtype: Any, name: str) -> np.dtype:
    dtype = dtypes.default_float() if dtype is None else dtypes.canonicalize(dtype)
    if not dtypes.is_float(dtype):
        raise TypeError(f"initializers.{name}: dtype must be a float dtype, got {dtype.name}")
    return dtype


def _shape(shape: Any, name: str) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise TypeError(f"initializers.{name}: shape must be a tuple of ints, got {shape!r}") from None
    if any(s < 0 for s in shape):
        raise ValueError(f"initializers.{name}: shape must have non-negative sizes, got {shape}")
    return shape


def zeros(key: Any, shape: Sequence[int], dtype: Any = None) -> Any:
    """``zeros(key, shape, dtype=float32)``: an initializer giving zeros (the key is unused)."""
    return fnp.zeros(_shape(shape, "zeros"), _float_dtype(dtype, "zeros"))


def ones(key: Any, shape: Sequence[int], dtype: Any = None) -> Any:
    """``ones(key, shape, dtype=float32)``: an initializer giving ones (the key is unused)."""
    return fnp.ones(_shape(shape, "ones"), _float_dtype(dtype, "ones"))


def constant(value: Any, dtype: Any = None) -> Initializer:
    """``constant(value, dtype=None)``: an initializer filling ``shape`` with ``value``."""
    default_dtype = dtype

    def init(key: Any, shape: Sequence[int], dtype: Any = default_dtype) -> Any:
        return fnp.full(_shape(shape, "constant"), value, _float_dtype(dtype, "constant"))
    return init


def uniform(scale: Any = 1e-2, dtype: Any = None) -> Initializer:
    """``uniform(scale=1e-2, dtype=None)``: an initializer drawing from ``U[0, scale)``."""
    default_dtype = dtype

    def init(key: Any, shape: Sequence[int], dtype: Any = default_dtype) -> Any:
        dtype = _float_dtype(dtype, "uniform")
        return random.uniform(key, _shape(shape, "uniform"), dtype) * fnp.asarray(scale, dtype)
    return init


def normal(stddev: Any = 1e-2, dtype: Any = None) -> Initializer:
    """``normal(stddev=1e-2, dtype=None)``: an initializer drawing from ``N(0, stddev**2)``."""
    default_dtype = dtype

    def init(key: Any, shape: Sequence[int], dtype: Any = default_dtype) -> Any:
        dtype = _float_dtype(dtype, "normal")
        return random.normal(key, _shape(shape, "normal"), dtype) * fnp.asarray(stddev, dtype)
    return init


def _truncated_standard_normal(key: Any, lower: float, upper: float, shape: tuple, dtype: np.dtype) -> Any:
    """A standard normal truncated to ``(lower, upper)`` by the inverse CDF, as JAX samples it:
    ``sqrt(2) * erfinv(u)`` for ``u`` uniform on ``[erf(lower/sqrt2), erf(upper/sqrt2))``, clipped
    strictly inside the bounds."""
    lower, upper = float(lower), float(upper)
    if not lower < upper:
        raise ValueError(f"truncated_normal: lower must be below upper, got lower={lower}, upper={upper}")
    sqrt2 = math.sqrt(2.0)
    u = random.uniform(key, shape, dtype, math.erf(lower / sqrt2), math.erf(upper / sqrt2))
    out = np.asarray(sqrt2, dtype) * lax.erf_inv(u)
    inside_lower = np.nextafter(np.asarray(lower, dtype), np.asarray(np.inf, dtype))
    inside_upper = np.nextafter(np.asarray(upper, dtype), np.asarray(-np.inf, dtype))
    return fnp.clip(out, inside_lower, inside_upper)


def truncated_normal(stddev: Any = 1e-2, dtype: Any = None, lower: float = -2.0,
                     upper: float = 2.0) -> Initializer:
    """``truncated_normal(stddev=1e-2, dtype=None, lower=-2.0, upper=2.0)``: an initializer drawing
    a standard normal truncated to ``(lower, upper)``, times ``stddev`` (so the bounds are in
    standard deviations and the result's spread is a little below ``stddev``, as in JAX)."""
    default_dtype = dtype

    def init(key: Any, shape: Sequence[int], dtype: Any = default_dtype) -> Any:
        dtype = _float_dtype(dtype, "truncated_normal")
        samples = _truncated_standard_normal(key, lower, upper, _shape(shape, "truncated_normal"), dtype)
        return samples * fnp.asarray(stddev, dtype)
    return init


def _axes_size(shape: tuple, axes: int | Sequence[int], what: str) -> int:
    try:
        if isinstance(axes, (int, np.integer)):
            return shape[axes]
        return math.prod(shape[i] for i in axes)
    except IndexError:
        raise ValueError(f"variance_scaling: {what}={axes} is out of range for a weight of shape {shape}") from None


def _compute_fans(shape: Sequence[int], in_axis: int | Sequence[int] = -2, out_axis: int | Sequence[int] = -1,
                  batch_axis: int | Sequence[int] = ()) -> tuple[float, float]:
    """``(fan_in, fan_out)`` of a weight, as JAX computes them: the ``in_axis`` and ``out_axis``
    sizes, each times the receptive field (the product of the other, non-batch axes)."""
    shape = tuple(shape)
    if isinstance(in_axis, int) and in_axis == -2 and len(shape) <= 1:
        raise ValueError(f"variance_scaling: cannot compute the fans of a {len(shape)}-dimensional weight "
                         f"{shape} with the default in_axis=-2; give a shape of 2 or more dimensions or "
                         f"in_axis/out_axis explicitly")
    in_size = _axes_size(shape, in_axis, "in_axis")
    out_size = _axes_size(shape, out_axis, "out_axis")
    batch_size = _axes_size(shape, batch_axis, "batch_axis")
    receptive_field_size = math.prod(shape) / in_size / out_size / batch_size
    return in_size * receptive_field_size, out_size * receptive_field_size


def _fan_denominator(mode: str, fan_in: float, fan_out: float) -> float:
    if mode == "fan_in":
        return fan_in
    if mode == "fan_out":
        return fan_out
    if mode == "fan_avg":
        return (fan_in + fan_out) / 2
    return (fan_in * fan_out) ** 0.5


def _check_choice(what: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"variance_scaling: invalid {what} {value!r}; use one of {', '.join(choices)}")


def variance_scaling(scale: Any, mode: str, distribution: str, in_axis: int | Sequence[int] = -2,
                     out_axis: int | Sequence[int] = -1, batch_axis: int | Sequence[int] = (),
                     dtype: Any = None) -> Initializer:
    """``variance_scaling(scale, mode, distribution, in_axis=-2, out_axis=-1, batch_axis=(), dtype=None)``:
    an initializer with variance ``scale / n``, ``n`` the fan chosen by ``mode`` (``'fan_in'``,
    ``'fan_out'``, ``'fan_avg'``, ``'fan_geo_avg'``), drawn from ``distribution``:
    ``'truncated_normal'`` (cut at 2 standard deviations, rescaled to keep the variance),
    ``'normal'`` or ``'uniform'`` (on ``[-sqrt(3 * variance), sqrt(3 * variance))``).

    The fans count ``in_axis`` / ``out_axis`` times the receptive field (all other axes but
    ``batch_axis``), so an HWIO convolution kernel has ``fan_in = H * W * I``.
    """
    _check_choice("mode", mode, _MODES)
    _check_choice("distribution", distribution, _DISTRIBUTIONS)
    default_dtype = dtype

    def init(key: Any, shape: Sequence[int], dtype: Any = default_dtype) -> Any:
        shape = _shape(shape, "variance_scaling")
        dtype = _float_dtype(dtype, "variance_scaling")
        fan_in, fan_out = _compute_fans(shape, in_axis, out_axis, batch_axis)
        variance = scale / _fan_denominator(mode, fan_in, fan_out)
        if distribution == "truncated_normal":
            stddev = np.asarray(math.sqrt(variance) / _TRUNCATED_STDDEV, dtype)
            return _truncated_standard_normal(key, -2.0, 2.0, shape, dtype) * stddev
        if distribution == "normal":
            return random.normal(key, shape, dtype) * np.asarray(math.sqrt(variance), dtype)
        bound = np.asarray(math.sqrt(3.0 * variance), dtype)
        return random.uniform(key, shape, dtype, -1.0, 1.0) * bound
    return init


def _variance_scaling_family(scale: float, mode: str, distribution: str, name: str, doc: str) -> Initializer:
    def constructor(in_axis: int | Sequence[int] = -2, out_axis: int | Sequence[int] = -1,
                    batch_axis: int | Sequence[int] = (), dtype: Any = None) -> Initializer:
        return variance_scaling(scale, mode, distribution, in_axis=in_axis, out_axis=out_axis,
                                batch_axis=batch_axis, dtype=dtype)
    constructor.__name__ = constructor.__qualname__ = name
    constructor.__doc__ = (f"``{name}(in_axis=-2, out_axis=-1, batch_axis=(), dtype=None)``: {doc} "
                           f"(``variance_scaling({scale}, {mode!r}, {distribution!r})``).")
    return constructor


glorot_uniform = _variance_scaling_family(1.0, "fan_avg", "uniform", "glorot_uniform",
                                          "Glorot/Xavier uniform, variance 2 / (fan_in + fan_out)")
glorot_normal = _variance_scaling_family(1.0, "fan_avg", "truncated_normal", "glorot_normal",
                                         "Glorot/Xavier truncated normal, variance 2 / (fan_in + fan_out)")
lecun_uniform = _variance_scaling_family(1.0, "fan_in", "uniform", "lecun_uniform",
                                         "LeCun uniform, variance 1 / fan_in")
lecun_normal = _variance_scaling_family(1.0, "fan_in", "truncated_normal", "lecun_normal",
                                        "LeCun truncated normal, variance 1 / fan_in")
he_uniform = _variance_scaling_family(2.0, "fan_in", "uniform", "he_uniform",
                                      "He/Kaiming uniform, variance 2 / fan_in")
he_normal = _variance_scaling_family(2.0, "fan_in", "truncated_normal", "he_normal",
                                     "He/Kaiming truncated normal, variance 2 / fan_in")
xavier_uniform = glorot_uniform
xavier_normal = glorot_normal
kaiming_uniform = he_uniform
kaiming_normal = he_normal


def _orthonormal_columns(gaussian: Any) -> Any:
    """The ``Q`` of the QR decomposition of a tall ``(m, n)`` matrix with ``diag(R) > 0`` (the
    sign-fixed Q JAX's ``random.orthogonal`` returns), by Gram-Schmidt with re-orthogonalisation
    ("twice is enough") in a ``fori_loop`` over the columns."""
    n = fnp.shape(gaussian)[1]

    def add_column(j, q):
        column = lax.dynamic_index_in_dim(gaussian, j, axis=1, keepdims=False)
        for _ in range(2):
            column = column - q @ (fnp.transpose(q) @ column)
        column = column / fnp.sqrt(fnp.sum(column * column))
        return lax.dynamic_update_index_in_dim(q, column[:, None], j, axis=1)

    return lax.fori_loop(0, n, add_column, fnp.zeros_like(gaussian))


def orthogonal(scale: Any = 1.0, column_axis: int = -1, dtype: Any = None) -> Initializer:
    """``orthogonal(scale=1.0, column_axis=-1, dtype=None)``: an initializer giving ``scale`` times a
    uniformly random orthogonal matrix, with ``shape[column_axis]`` columns and the product of the
    other axes as rows: orthonormal columns when there are at least as many rows, orthonormal rows
    otherwise."""
    default_dtype = dtype

    def init(key: Any, shape: Sequence[int], dtype: Any = default_dtype) -> Any:
        shape = _shape(shape, "orthogonal")
        dtype = _float_dtype(dtype, "orthogonal")
        if len(shape) < 2:
            raise ValueError(f"initializers.orthogonal needs a shape of 2 or more dimensions, got {shape}")
        if 0 in shape:
            return fnp.zeros(shape, dtype)
        n_cols = shape[column_axis]
        n_rows = math.prod(shape) // n_cols
        tall = random.normal(key, (max(n_rows, n_cols), min(n_rows, n_cols)), dtype)
        q = _orthonormal_columns(tall)
        q = q if n_rows >= n_cols else fnp.transpose(q)
        rows_shape = tuple(np.delete(np.array(shape), column_axis))
        q = fnp.moveaxis(fnp.reshape(q, rows_shape + (n_cols,)), -1, column_axis)
        return np.asarray(scale, dtype) * q
    return init


def delta_orthogonal(scale: Any = 1.0, column_axis: int = -1, dtype: Any = None) -> Initializer:
    """``delta_orthogonal(scale=1.0, column_axis=-1, dtype=None)``: an initializer for 1-, 2- and
    3-D convolution kernels (shapes of 3 to 5 dimensions, ``(*spatial, in, out)``): zeros but at
    the spatial centre, which holds ``orthogonal(scale, column_axis)``'s ``in x out`` matrix
    (so ``in <= out``), as JAX's (Xiao et al., 2018)."""
    default_dtype = dtype

    def init(key: Any, shape: Sequence[int], dtype: Any = default_dtype) -> Any:
        shape = _shape(shape, "delta_orthogonal")
        dtype = _float_dtype(dtype, "delta_orthogonal")
        if len(shape) not in (3, 4, 5):
            raise ValueError(f"Delta orthogonal initializer requires a 3D, 4D or 5D shape, got {shape}")
        if shape[-1] < shape[-2]:
            raise ValueError(f"`fan_in` must be less or equal than `fan_out`: shape {shape} has "
                             f"{shape[-2]} inputs and {shape[-1]} outputs")
        centre = tuple((k - 1) // 2 for k in shape[:-2])
        matrix = orthogonal(scale=scale, column_axis=column_axis, dtype=dtype)(key, shape[-2:])
        return fnp.zeros(shape, dtype).at[centre].set(matrix)
    return init
