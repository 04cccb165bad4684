"""``fnp.ufunc`` and ``fnp.frompyfunc``: a Python function of scalars made into a NumPy-style
universal function with ``reduce``, ``accumulate``, ``outer``, ``at`` and ``reduceat``, as JAX
defines them: the call is ``vectorize``d (``vmap``), and the methods walk the axis with
``lax.scan`` / ``fori_loop``, so each runs eagerly, natively under ``jit``, under ``grad`` and
``vmap``."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from fgrad import lax
from fgrad.core.trace import get_aval
from fgrad.numpy._creation import ones
from fgrad.numpy._index_tricks import append, vectorize
from fgrad.numpy._indexing import take
from fgrad.numpy._manip import broadcast_to, moveaxis, ravel, reshape
from fgrad.numpy import _math, _reductions, _statistics
from fgrad.numpy._math import where_select
from fgrad.numpy._util import canonical_axis, optional_dtype, static_int, to_array

__all__ = ["ufunc", "frompyfunc", "add", "subtract", "multiply", "maximum", "minimum", "logaddexp", "logaddexp2",
           "logical_and", "logical_or", "logical_xor", "bitwise_and", "bitwise_or", "bitwise_xor", "negative"]


class ufunc:  # noqa: N801 - NumPy's name
    """``jax.numpy.ufunc(func, /, nin, nout, *, name=None, nargs=None, identity=None)``: a
    universal function from ``func`` of ``nin`` scalars returning ``nout`` values."""

    def __init__(self, func: Callable, /, nin: int, nout: int, *, name: str | None = None,
                 nargs: int | None = None, identity: Any = None):
        if not callable(func):
            raise TypeError(f"ufunc: func must be callable, got {type(func).__name__}")
        self._func = func
        self.nin, self.nout = static_int("ufunc", "nin", nin), static_int("ufunc", "nout", nout)
        self.nargs = self.nin if nargs is None else nargs
        self.identity = identity
        self.__name__ = name or getattr(func, "__name__", "ufunc")
        self._call = vectorize(func)

    def __repr__(self) -> str:
        return f"<fgrad.numpy.ufunc '{self.__name__}'>"

    def __call__(self, *args, out=None, where=None):
        if out is not None:
            raise TypeError(f"{self.__name__}: out= is not supported (fgrad arrays are immutable)")
        if where is not None:
            raise NotImplementedError(f"{self.__name__}: where= is not supported when calling a ufunc")
        if len(args) != self.nin:
            raise TypeError(f"{self.__name__}: expected {self.nin} arguments, got {len(args)}")
        return self._call(*args)

    def _binary(self, method: str) -> None:
        if self.nin != 2 or self.nout != 1:
            raise ValueError(f"{self.__name__}.{method} needs a function of 2 inputs and 1 output, "
                             f"this one has nin={self.nin}, nout={self.nout}")

    def _result_dtype(self, arr, dtype) -> np.dtype:
        if dtype is not None:
            return optional_dtype(dtype)
        one = ones((), get_aval(arr).dtype)
        return get_aval(to_array(self._func(one, one))).dtype

    def reduce(self, a, axis=0, dtype=None, out=None, keepdims=False, initial=None, where=None):
        """``ufunc.reduce(a, axis=0, dtype=None, out=None, keepdims=False, initial=None, where=None)``:
        ``func`` folded along ``axis`` (None: all axes) from ``initial`` (the identity, else the
        first element)."""
        self._binary("reduce")
        if out is not None:
            raise TypeError(f"{self.__name__}.reduce: out= is not supported")
        arr = to_array(a, f"{self.__name__}.reduce")
        dtype = self._result_dtype(arr, dtype)
        initial = self.identity if initial is None else initial
        mask = None if where is None else broadcast_to(to_array(where), get_aval(arr).shape)
        if axis is None:
            final = (1,) * get_aval(arr).ndim if keepdims else ()
            arr, mask, axis = ravel(arr), None if mask is None else ravel(mask), 0
        elif isinstance(axis, tuple):
            raise NotImplementedError(f"{self.__name__}.reduce: a tuple of axes is not supported (as in JAX)")
        else:
            axis = canonical_axis(f"{self.__name__}.reduce", axis, get_aval(arr).ndim)
            shape = get_aval(arr).shape
            final = shape[:axis] + ((1,) if keepdims else ()) + shape[axis + 1:]
        arr = lax.convert_element_type(moveaxis(arr, axis, 0), dtype)
        mask = None if mask is None else moveaxis(mask, axis, 0)
        n = get_aval(arr).shape[0]
        if n == 0:
            if initial is None:
                raise ValueError(f"zero-size array to reduction operation {self.__name__} which has no identity")
            return lax.full(final, initial, dtype)
        if initial is None:
            start, carry = 1, arr[0]
        else:
            start, carry = 0, broadcast_to(lax.convert_element_type(to_array(initial), dtype), get_aval(arr).shape[1:])

        def body(i, value):
            step = lax.convert_element_type(to_array(self._call(value, lax.dynamic_index_in_dim(arr, i, 0, False))),
                                            dtype)
            return step if mask is None else where_select(lax.dynamic_index_in_dim(mask, i, 0, False), step, value)
        return reshape(lax.fori_loop(start, n, body, carry), final)

    def accumulate(self, a, axis=0, dtype=None, out=None):
        """``ufunc.accumulate(a, axis=0, dtype=None, out=None)``: the running fold along ``axis``."""
        self._binary("accumulate")
        if out is not None:
            raise TypeError(f"{self.__name__}.accumulate: out= is not supported")
        arr = to_array(a, f"{self.__name__}.accumulate")
        dtype = self._result_dtype(arr, dtype)
        if axis is None or isinstance(axis, tuple):
            raise ValueError(f"{self.__name__}.accumulate: needs a single integer axis")
        axis = canonical_axis(f"{self.__name__}.accumulate", axis, get_aval(arr).ndim)
        if get_aval(arr).size == 0:
            return lax.full(get_aval(arr).shape, 0, dtype)
        arr = lax.convert_element_type(moveaxis(arr, axis, 0), dtype)

        def step(carry, x):
            y = lax.convert_element_type(to_array(self._call(carry, x)), dtype)
            return y, y
        _, rest = lax.scan(step, arr[0], arr[1:])
        return moveaxis(lax.concatenate([arr[:1], rest], 0), 0, axis)

    def outer(self, A, B, /):
        """``ufunc.outer(A, B, /)``: ``func`` on every pair, shape ``A.shape + B.shape``."""
        self._binary("outer")
        A, B = to_array(A, f"{self.__name__}.outer"), to_array(B, f"{self.__name__}.outer")
        expanded = reshape(A, get_aval(A).shape + (1,) * get_aval(B).ndim)
        return self._call(expanded, B)

    def at(self, a, indices, b=None, /, *, inplace=True):
        """``ufunc.at(a, indices, b=None, /, *, inplace=True)``: ``a`` with ``a[i] = func(a[i], b)``
        applied once per index, repeats included, in order; needs ``inplace=False``."""
        if inplace:
            raise ValueError(f"{self.__name__}.at: fgrad arrays are immutable; pass inplace=False (as in JAX)")
        args = () if b is None else (to_array(b),)
        a = to_array(a, f"{self.__name__}.at")
        index = to_array(indices, f"{self.__name__}.at")
        if get_aval(index).ndim == 0:
            return a.at[index].set(self._call(a[index], *args))
        flat = ravel(index)
        count = get_aval(flat).shape[0]
        args = tuple(reshape(broadcast_to(v, get_aval(index).shape + get_aval(a).shape[1:]),
                             (count,) + get_aval(a).shape[1:]) for v in args)

        def body(i, value):
            position = lax.dynamic_index_in_dim(flat, i, 0, False)
            extra = tuple(lax.dynamic_index_in_dim(v, i, 0, False) for v in args)
            return value.at[position].set(self._call(value[position], *extra))
        return lax.fori_loop(0, count, body, a)

    def reduceat(self, a, indices, axis=0, dtype=None, out=None):
        """``ufunc.reduceat(a, indices, axis=0, dtype=None, out=None)``: ``reduce`` over each slice
        ``indices[i]:indices[i + 1]`` along ``axis`` (NumPy's rule when they do not increase)."""
        self._binary("reduceat")
        arr, indices = to_array(a, f"{self.__name__}.reduceat"), to_array(indices, f"{self.__name__}.reduceat")
        if get_aval(arr).ndim == 0 or get_aval(indices).ndim != 1:
            raise ValueError(f"{self.__name__}.reduceat: needs an array of 1 or more dims and 1-d indices")
        axis = canonical_axis(f"{self.__name__}.reduceat", axis, get_aval(arr).ndim)
        dtype = optional_dtype(dtype) or get_aval(arr).dtype
        arr = lax.convert_element_type(arr, dtype)
        result = take(arr, indices, axis=axis)
        bounds = append(indices, get_aval(arr).shape[axis])
        shape = tuple(-1 if d == axis else 1 for d in range(get_aval(result).ndim))
        starts, stops = reshape(bounds[:-1], shape), reshape(bounds[1:], shape)

        def body(i, value):
            inside = _math.logical_and(lax.gt(i, starts), lax.lt(i, stops))
            piece = take(arr, reshape(i, (1,)), axis=axis)
            return where_select(inside, lax.convert_element_type(to_array(self._call(value, piece)), dtype), value)
        return lax.fori_loop(0, get_aval(arr).shape[axis], body, result)


def frompyfunc(func, /, nin, nout, *, identity=None):
    """``jax.numpy.frompyfunc(func, /, nin, nout, *, identity=None)``: ``ufunc(func, nin, nout,
    identity=identity)``."""
    return ufunc(func, nin, nout, identity=identity)


class _NumpyUfunc(ufunc):
    """One of ``jax.numpy``'s ufunc objects (``fnp.add``, ``fnp.maximum``...): a call is the
    elementwise function itself; ``reduce``, ``accumulate`` and ``at`` use fgrad's reductions,
    cumulative ops and scatters where one exists (else ``ufunc``'s loops)."""

    def __init__(self, func: Callable, nin: int, identity: Any = None, reduce: Callable | None = None,
                 accumulate: Callable | None = None, at: str | None = None):
        self._func = self._call = func
        self.nin, self.nout, self.nargs = nin, 1, nin
        self.identity = identity
        self.__name__ = func.__name__
        self.__doc__ = func.__doc__
        self._reduce, self._accumulate, self._at = reduce, accumulate, at

    def __repr__(self) -> str:
        return f"<fgrad.numpy.ufunc '{self.__name__}'>"

    def __call__(self, *args, **kwargs):
        return self._func(*args, **kwargs)

    def reduce(self, a, axis=0, dtype=None, out=None, keepdims=False, initial=None, where=None):
        if self._reduce is None or (initial is not None and self._reduce in (_reductions.all, _reductions.any)):
            return super().reduce(a, axis, dtype, out, keepdims, initial, where)
        if out is not None:
            raise TypeError(f"{self.__name__}.reduce: out= is not supported")
        if self._reduce in (_reductions.sum, _reductions.prod):
            return self._reduce(a, axis, dtype, keepdims=keepdims, initial=initial, where=where)
        arr = to_array(a, f"{self.__name__}.reduce")
        if dtype is not None:
            arr = lax.convert_element_type(arr, optional_dtype(dtype))
        if self._reduce in (_reductions.all, _reductions.any):
            return self._reduce(arr, axis, keepdims=keepdims, where=where)
        return self._reduce(arr, axis, keepdims=keepdims, initial=initial, where=where)

    def accumulate(self, a, axis=0, dtype=None, out=None):
        if self._accumulate is None or axis is None or isinstance(axis, tuple):
            return super().accumulate(a, axis, dtype, out)
        if out is not None:
            raise TypeError(f"{self.__name__}.accumulate: out= is not supported")
        arr = to_array(a, f"{self.__name__}.accumulate")
        arr = lax.convert_element_type(arr, self._result_dtype(arr, dtype))
        return self._accumulate(arr, canonical_axis(f"{self.__name__}.accumulate", axis, get_aval(arr).ndim))

    def at(self, a, indices, b=None, /, *, inplace=True):
        if self._at is None or b is None or inplace:
            return super().at(a, indices, b, inplace=inplace)
        a = to_array(a, f"{self.__name__}.at")
        return getattr(a.at[indices], self._at)(b)


def _cumulative(op: Callable) -> Callable:
    return lambda arr, axis: op(arr, axis=axis)


add = _NumpyUfunc(_math.add, 2, 0, _reductions.sum, lambda arr, axis: _reductions.cumsum(arr, axis), "add")
multiply = _NumpyUfunc(_math.multiply, 2, 1, _reductions.prod, lambda arr, axis: _statistics.cumprod(arr, axis),
                       "multiply")
maximum = _NumpyUfunc(_math.maximum, 2, None, _reductions.max, _cumulative(lax.cummax), "max")
minimum = _NumpyUfunc(_math.minimum, 2, None, _reductions.min, _cumulative(lax.cummin), "min")
subtract = _NumpyUfunc(_math.subtract, 2)
logaddexp = _NumpyUfunc(_math.logaddexp, 2, -np.inf)
logaddexp2 = _NumpyUfunc(_math.logaddexp2, 2, -np.inf)
logical_and = _NumpyUfunc(_math.logical_and, 2, True, _reductions.all)
logical_or = _NumpyUfunc(_math.logical_or, 2, False, _reductions.any)
logical_xor = _NumpyUfunc(_math.logical_xor, 2, False)
bitwise_and = _NumpyUfunc(_math.bitwise_and, 2, -1)
bitwise_or = _NumpyUfunc(_math.bitwise_or, 2, 0)
bitwise_xor = _NumpyUfunc(_math.bitwise_xor, 2, 0)
negative = _NumpyUfunc(_math.negative, 1)
