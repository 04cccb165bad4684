"""``fgrad.Array`` (a concrete, immutable array on a device) and ``ArrayOps``, the
operator/method surface shared by Arrays and tracers.

Every operator forwards to ``fgrad.numpy``, so ``x + 1`` means the same thing
eagerly, under ``grad`` and inside ``jit``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from fgrad.core.types import ShapedArray


def _fnp():
    import fgrad.numpy as fnp  # fgrad.numpy imports this module, so import lazily
    return fnp


class ArrayOps:
    """Operators and array methods, written once for Arrays and every kind of tracer."""

    __slots__ = ()
    __array_ufunc__ = None  # make NumPy defer to our reflected operators: np_x + fgrad_x

    # -- metadata ---------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.aval.shape

    @property
    def dtype(self) -> np.dtype:
        return self.aval.dtype

    @property
    def ndim(self) -> int:
        return len(self.aval.shape)

    @property
    def size(self) -> int:
        return self.aval.size

    @property
    def weak_type(self) -> bool:
        return self.aval.weak_type

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def __iter__(self):
        if not self.shape:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self.shape[0]))

    # -- arithmetic ---------------------------------------------------------------------
    def __add__(self, other): return _fnp().add(self, other)
    def __radd__(self, other): return _fnp().add(other, self)
    def __sub__(self, other): return _fnp().subtract(self, other)
    def __rsub__(self, other): return _fnp().subtract(other, self)
    def __mul__(self, other): return _fnp().multiply(self, other)
    def __rmul__(self, other): return _fnp().multiply(other, self)
    def __truediv__(self, other): return _fnp().true_divide(self, other)
    def __rtruediv__(self, other): return _fnp().true_divide(other, self)
    def __floordiv__(self, other): return _fnp().floor_divide(self, other)
    def __rfloordiv__(self, other): return _fnp().floor_divide(other, self)
    def __mod__(self, other): return _fnp().remainder(self, other)
    def __rmod__(self, other): return _fnp().remainder(other, self)
    def __pow__(self, other): return _fnp().power(self, other)
    def __rpow__(self, other): return _fnp().power(other, self)
    def __matmul__(self, other): return _fnp().matmul(self, other)
    def __rmatmul__(self, other): return _fnp().matmul(other, self)
    def __neg__(self): return _fnp().negative(self)
    def __pos__(self): return self
    def __abs__(self): return _fnp().abs(self)
    def __invert__(self): return _fnp().invert(self)
    def __and__(self, other): return _fnp().bitwise_and(self, other)
    def __rand__(self, other): return _fnp().bitwise_and(other, self)
    def __or__(self, other): return _fnp().bitwise_or(self, other)
    def __ror__(self, other): return _fnp().bitwise_or(other, self)
    def __xor__(self, other): return _fnp().bitwise_xor(self, other)
    def __rxor__(self, other): return _fnp().bitwise_xor(other, self)

    # -- comparisons --------------------------------------------------------------------
    def __lt__(self, other): return _fnp().less(self, other)
    def __le__(self, other): return _fnp().less_equal(self, other)
    def __gt__(self, other): return _fnp().greater(self, other)
    def __ge__(self, other): return _fnp().greater_equal(self, other)
    def __eq__(self, other): return _fnp().equal(self, other)
    def __ne__(self, other): return _fnp().not_equal(self, other)
    __hash__ = None  # arrays are not hashable (== is elementwise)

    # -- indexing -----------------------------------------------------------------------
    def __getitem__(self, index): return _fnp()._getitem(self, index)

    def __setitem__(self, index, value):
        raise TypeError("fgrad arrays are immutable: `x[idx] = v` is not supported. "
                        "Use `x = x.at[idx].set(v)` (or .add / .max / .min), which returns a new array.")

    @property
    def at(self):
        return _fnp()._IndexUpdateHelper(self)

    # -- methods ------------------------------------------------------------------------
    def reshape(self, *shape, order="C"):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _fnp().reshape(self, shape, order=order)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _fnp().transpose(self, axes or None)

    @property
    def T(self): return _fnp().transpose(self)

    def astype(self, dtype): return _fnp().astype(self, dtype)
    def flatten(self): return _fnp().ravel(self)
    def ravel(self): return _fnp().ravel(self)
    def squeeze(self, axis=None): return _fnp().squeeze(self, axis)
    def sum(self, axis=None, dtype=None, keepdims=False): return _fnp().sum(self, axis, dtype=dtype, keepdims=keepdims)
    def mean(self, axis=None, dtype=None, keepdims=False): return _fnp().mean(self, axis, dtype=dtype, keepdims=keepdims)
    def prod(self, axis=None, dtype=None, keepdims=False): return _fnp().prod(self, axis, dtype=dtype, keepdims=keepdims)
    def max(self, axis=None, keepdims=False): return _fnp().max(self, axis, keepdims=keepdims)
    def min(self, axis=None, keepdims=False): return _fnp().min(self, axis, keepdims=keepdims)
    def argmax(self, axis=None, keepdims=False): return _fnp().argmax(self, axis, keepdims=keepdims)
    def argmin(self, axis=None, keepdims=False): return _fnp().argmin(self, axis, keepdims=keepdims)
    def var(self, axis=None, ddof=0, keepdims=False): return _fnp().var(self, axis, ddof=ddof, keepdims=keepdims)
    def std(self, axis=None, ddof=0, keepdims=False): return _fnp().std(self, axis, ddof=ddof, keepdims=keepdims)
    def any(self, axis=None, keepdims=False): return _fnp().any(self, axis, keepdims=keepdims)
    def all(self, axis=None, keepdims=False): return _fnp().all(self, axis, keepdims=keepdims)
    def clip(self, min=None, max=None): return _fnp().clip(self, min, max)
    def cumsum(self, axis=None): return _fnp().cumsum(self, axis)
    def dot(self, other): return _fnp().dot(self, other)


class Array(ArrayOps):
    """A concrete, immutable array living on a device.

    Create one with ``fgrad.numpy.array``/``asarray``; read it back with
    ``np.asarray(x)``, ``x.item()`` or ``x.tolist()``.
    """

    __slots__ = ("_value", "aval", "device", "__weakref__")
    __array_priority__ = 100

    def __init__(self, value: Any, aval: ShapedArray | None = None, device=None):
        value = np.asarray(value)
        self._value = value
        self.aval = aval if aval is not None else ShapedArray(value.shape, value.dtype)
        self.device = device

    @classmethod
    def _from_numpy(cls, value, aval: ShapedArray) -> "Array":
        """Wrap a primitive's NumPy result (no copy; fixes NumPy's scalar/dtype quirks)."""
        if type(value) is not np.ndarray or value.dtype != aval.dtype:
            value = np.asarray(value, dtype=aval.dtype)
        if value.flags.writeable and value.base is None:
            value.flags.writeable = False
        self = object.__new__(cls)
        self._value = value
        self.aval = aval
        self.device = None
        return self

    # -- concrete values ------------------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        if dtype is None:
            return self._value
        return self._value.astype(dtype)

    def item(self, *args):
        return self._value.item(*args)

    def tolist(self):
        return self._value.tolist()

    def __bool__(self) -> bool:
        return bool(self._value)

    def __int__(self) -> int:
        return int(self._value)

    def __float__(self) -> float:
        return float(self._value)

    def __index__(self) -> int:
        if self.aval.dtype.kind not in "iub":
            raise TypeError(f"only integer arrays can be used as an index, got {self.aval.str_short()}")
        return int(self._value)

    def __complex__(self) -> complex:
        return complex(self._value)

    def __format__(self, spec: str) -> str:
        return format(self._value.item(), spec) if self.ndim == 0 and spec else str(self)

    def block_until_ready(self) -> "Array":
        """Wait for pending device work (a no-op on the CPU)."""
        return self

    def copy(self) -> "Array":
        return Array(self._value.copy(), self.aval, self.device)

    def __repr__(self) -> str:
        body = np.array2string(self._value, separator=", ", prefix="Array(")
        weak = ", weak_type=True" if self.aval.weak_type else ""
        return f"Array({body}, dtype={self.aval.dtype.name}{weak})"

    def __str__(self) -> str:
        return str(self._value)

    def __reduce__(self):
        return (Array, (np.array(self._value), self.aval))
