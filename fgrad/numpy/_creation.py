"""Array creation: array, asarray (both defined in fgrad.numpy._util, which converts arguments
everywhere), zeros, ones, full, arange, linspace, eye, ..._like."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from fgrad import lax
from fgrad.core import dtypes
from fgrad.core.trace import Tracer, get_aval
from fgrad.numpy._dtypes import result_type
from fgrad.numpy._indexing import _getitem
from fgrad.numpy._manip import broadcast_to, concatenate, expand_dims, moveaxis, ravel, tri_mask
from fgrad.numpy._math import add, floor, multiply, power, subtract, true_divide
from fgrad.numpy._util import (PY_SCALARS, accepts_device, array, asarray, astype, is_array, normalize_shape, optional_dtype,
                               promote, static_int)

__all__ = ["array", "asarray", "astype", "zeros", "ones", "full", "empty", "zeros_like", "ones_like",
           "full_like", "empty_like", "arange", "linspace", "logspace", "eye", "identity", "tri",
           "meshgrid"]


def _default_dtype(fill_value: Any) -> np.dtype:
    if type(fill_value) in PY_SCALARS:
        return dtypes.python_scalar_dtype(fill_value)
    return get_aval(asarray(fill_value)).dtype


@accepts_device
def full(shape: Any, fill_value: Any, dtype: Any = None) -> Any:
    """An array of ``shape`` filled with ``fill_value`` (a scalar or an array that broadcasts)."""
    shape = normalize_shape("full", shape)
    dtype = optional_dtype(dtype) or _default_dtype(fill_value)
    if type(fill_value) in PY_SCALARS or isinstance(fill_value, np.generic):
        return lax.full(shape, fill_value, dtype)
    fill = asarray(fill_value, dtype)
    if get_aval(fill).ndim == 0:
        return lax.full(shape, fill, dtype)
    return broadcast_to(fill, shape)


@accepts_device
def zeros(shape: Any, dtype: Any = None) -> Any:
    """An array of zeros (float32 by default)."""
    return lax.full(normalize_shape("zeros", shape), 0, optional_dtype(dtype) or dtypes.default_float())


@accepts_device
def ones(shape: Any, dtype: Any = None) -> Any:
    """An array of ones (float32 by default)."""
    return lax.full(normalize_shape("ones", shape), 1, optional_dtype(dtype) or dtypes.default_float())


@accepts_device
def empty(shape: Any, dtype: Any = None) -> Any:
    """Like ``zeros`` (fgrad arrays are immutable, so there is nothing to leave uninitialised)."""
    return zeros(shape, dtype)


def _like(op: str, a: Any, dtype: Any, shape: Any) -> tuple[tuple[int, ...], np.dtype]:
    aval = get_aval(asarray(a))
    return (aval.shape if shape is None else normalize_shape(op, shape)), (optional_dtype(dtype) or aval.dtype)


def _weak_like(out: Any, a: Any, dtype: Any) -> Any:
    """``out`` weakly typed when ``a`` is and no dtype was asked for, as JAX's ``*_like``
    (``zeros_like(1.5) * float16_array`` stays float16)."""
    if dtype is None and get_aval(asarray(a)).weak_type:
        return lax.convert_element_type(out, get_aval(out).dtype, weak_type=True)
    return out


@accepts_device
def zeros_like(a: Any, dtype: Any = None, shape: Any = None) -> Any:
    """Zeros with ``a``'s shape and dtype (or the given ones)."""
    shape, new_dtype = _like("zeros_like", a, dtype, shape)
    return _weak_like(lax.full(shape, 0, new_dtype), a, dtype)


@accepts_device
def ones_like(a: Any, dtype: Any = None, shape: Any = None) -> Any:
    """Ones with ``a``'s shape and dtype (or the given ones)."""
    shape, new_dtype = _like("ones_like", a, dtype, shape)
    return _weak_like(lax.full(shape, 1, new_dtype), a, dtype)


@accepts_device
def empty_like(a: Any, dtype: Any = None, shape: Any = None) -> Any:
    """Like ``zeros_like``."""
    return zeros_like(a, dtype, shape)


@accepts_device
def full_like(a: Any, fill_value: Any, dtype: Any = None, shape: Any = None) -> Any:
    """``fill_value`` with ``a``'s shape and dtype (or the given ones)."""
    shape, new_dtype = _like("full_like", a, dtype, shape)
    return _weak_like(full(shape, fill_value, new_dtype), a, dtype)


# --- ranges -------------------------------------------------------------------------------------

def _static_number(op: str, name: str, value: Any) -> int | float:
    if isinstance(value, Tracer):
        return float(value)  # raises the concretization error with the user's line
    if is_array(value) or isinstance(value, (np.ndarray, np.generic)):
        host = np.asarray(value)
        if host.ndim:
            raise TypeError(f"{op}: {name} must be a scalar, got an array of shape {host.shape}")
        return host.item()
    if type(value) in PY_SCALARS:
        return value
    raise TypeError(f"{op}: {name} must be a number, got {type(value).__name__}")


@accepts_device
def arange(start: Any, stop: Any = None, step: Any = None, dtype: Any = None) -> Any:
    """Evenly spaced values in ``[start, stop)``; the bounds must be concrete numbers.

    >>> fnp.arange(5)
    Array([0, 1, 2, 3, 4], dtype=int32)

    Without ``dtype``, the bounds' promoted dtype, as JAX: ``arange(np.int8(3))`` is int8.
    """
    if dtype is None:
        dtype = result_type(*(v for v in (start, stop, step) if v is not None))
    if stop is None:
        start, stop = 0, start
    step = 1 if step is None else step
    start, stop, step = (_static_number("arange", n, v) for n, v in
                         (("start", start), ("stop", stop), ("step", step)))
    if step == 0:       # JAX's (and Python's range's) exception type
        raise ZeroDivisionError("arange: step must not be zero")
    all_int = all(isinstance(v, (int, np.integer)) for v in (start, stop, step))
    dtype = optional_dtype(dtype) or (dtypes.default_int() if all_int else dtypes.default_float())
    length = len(range(start, stop, step)) if all_int else max(0, math.ceil((stop - start) / step))
    if dtypes.is_float(dtype) or not all_int:
        work = dtypes.default_float() if not dtypes.is_float(dtype) else dtype
        values = lax.add(lax.mul(lax.iota(work, length), np.asarray(step, work)[()]), np.asarray(start, work)[()])
        return lax.convert_element_type(values, dtype)
    values = lax.iota(dtype, length)
    if step != 1:
        values = lax.mul(values, np.asarray(step, dtype)[()])
    if start != 0:
        values = lax.add(values, np.asarray(start, dtype)[()])
    return values


@accepts_device
def linspace(start: Any, stop: Any, num: int = 50, endpoint: bool = True, retstep: bool = False,
             dtype: Any = None, axis: int = 0) -> Any:
    """``num`` evenly spaced samples from ``start`` to ``stop`` (arrays broadcast, as in NumPy)."""
    num = static_int("linspace", "num", num)
    if num < 0:
        raise ValueError(f"linspace: num must be non-negative, got {num}")
    dtype = optional_dtype(dtype)
    start, stop = promote("linspace", start, stop, to_float=True)
    work = get_aval(start).dtype
    if dtype is not None and dtypes.is_differentiable(dtype):
        start, stop = (lax.convert_element_type(v, dtype) for v in (start, stop))
        work = dtype
    start, stop = asarray(start), asarray(stop)
    bshape = np.broadcast_shapes(get_aval(start).shape, get_aval(stop).shape)   # NumPy broadcasts the ends
    start, stop = broadcast_to(start, bshape), broadcast_to(stop, bshape)
    div = num - 1 if endpoint else num
    steps = lax.reshape(lax.iota(dtypes.real_dtype(work), num), (num,) + (1,) * len(bshape))
    if dtypes.is_complex(work):   # complex ends: real step counts, complex step
        steps = lax.convert_element_type(steps, work)
    delta = subtract(stop, start)
    step = true_divide(delta, div) if div > 0 else full(bshape, np.nan, work)
    out = add(multiply(steps, step), start) if div > 0 else add(multiply(steps, delta), start)
    if endpoint and num > 1:
        out = concatenate([_getitem(out, slice(0, num - 1)), expand_dims(stop, 0)], axis=0)
    out = moveaxis(out, 0, axis)
    if dtype is not None and not dtypes.is_differentiable(dtype):
        out = astype(floor(out), dtype)
    if not retstep:
        return out
    return out, lax.convert_element_type(step, get_aval(step).dtype)   # strongly typed, as JAX's step


def logspace(start: Any, stop: Any, num: int = 50, endpoint: bool = True, base: Any = 10.0,
             dtype: Any = None, axis: int = 0) -> Any:
    """``base ** linspace(start, stop, num)``."""
    out = power(base, linspace(start, stop, num, endpoint, axis=axis))
    return out if dtype is None else astype(out, dtype)


@accepts_device
def eye(N: int, M: int | None = None, k: int = 0, dtype: Any = None) -> Any:
    """A 2-D array with ones on the ``k``-th diagonal and zeros elsewhere."""
    n = static_int("eye", "N", N)
    m = n if M is None else static_int("eye", "M", M)
    k = static_int("eye", "k", k)
    if n < 0 or m < 0:
        raise ValueError(f"eye: negative dimensions are not allowed, got ({n}, {m})")
    dtype = optional_dtype(dtype) or dtypes.default_float()
    return lax.convert_element_type(tri_mask(n, m, k, lax.eq), dtype)


@accepts_device
def identity(n: int, dtype: Any = None) -> Any:
    """The ``n`` x ``n`` identity matrix."""
    return eye(n, dtype=dtype)


def tri(N: int, M: int | None = None, k: int = 0, dtype: Any = None) -> Any:
    """Ones at and below the ``k``-th diagonal, zeros above."""
    n = static_int("tri", "N", N)
    m = n if M is None else static_int("tri", "M", M)
    k = static_int("tri", "k", k)
    dtype = optional_dtype(dtype) or dtypes.default_float()
    return lax.convert_element_type(tri_mask(n, m, k, lax.le), dtype)


def meshgrid(*xi: Any, indexing: str = "xy", sparse: bool = False, copy: bool = True) -> list:
    """Coordinate grids from 1-D coordinate arrays (``indexing`` 'xy' or 'ij', as NumPy)."""
    if indexing not in ("xy", "ij"):
        raise ValueError(f"meshgrid: indexing must be 'xy' or 'ij', got {indexing!r}")
    arrays = [ravel(asarray(x)) for x in xi]
    ndim = len(arrays)
    shapes = [get_aval(a).shape[0] for a in arrays]
    if indexing == "xy" and ndim > 1:
        shapes[0], shapes[1] = shapes[1], shapes[0]
    out = []
    for i, a in enumerate(arrays):
        pos = i
        if indexing == "xy" and ndim > 1 and i < 2:
            pos = 1 - i
        shape = [1] * ndim
        shape[pos] = get_aval(a).shape[0]
        a = lax.reshape(a, tuple(shape))
        out.append(a if sparse else broadcast_to(a, tuple(shapes)))
    return out
