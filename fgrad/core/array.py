"""``fgrad.Array`` (a concrete, immutable array on a device) and ``ArrayOps``, the
operator/method surface shared by Arrays and tracers.

Every operator forwards to ``fgrad.numpy``, so ``x + 1`` means the same thing
eagerly, under ``grad`` and inside ``jit``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from fgrad.core.types import ShapedArray
from fgrad.core import dtypes

#: ``fgrad.numpy``, bound by it at import time (it imports this module, so it cannot be
#: imported here); a module global keeps the operator dispatch path short.
fnp: Any = None


def bind_numpy(module: Any) -> None:
    """Called by ``fgrad.numpy`` once it is importable."""
    global fnp
    fnp = module


def as_array(value: Any) -> "Array":
    """``value`` as an fgrad Array, exactly as ``fgrad.numpy.asarray`` makes it (for the layers
    below the public face that accept array-likes, such as ``device_put``'s runtime)."""
    return value if isinstance(value, Array) else fnp.asarray(value)


_NOT_ARRAY_LIKE = (type(None), str, bytes, dict, set)


def _comparable(other: Any) -> bool:
    """Can ``other`` take part in an elementwise comparison (else == falls back to identity)?"""
    return not isinstance(other, _NOT_ARRAY_LIKE)


class ArrayOps:
    """Operators and array methods, written once for Arrays and every kind of tracer.

    Each method forwards to the ``fgrad.numpy`` function of the same name (``x.sum(1)`` is
    ``fnp.sum(x, 1)``), whose docstring describes it.
    """

    __slots__ = ()
    __array_ufunc__ = None  # make NumPy defer to our reflected operators: np_x + fgrad_x

    # -- metadata ---------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        """The array's dimensions."""
        return self.aval.shape

    @property
    def dtype(self) -> np.dtype:
        """The element type (a NumPy dtype)."""
        return self.aval.dtype

    @property
    def ndim(self) -> int:
        """The number of dimensions."""
        return len(self.aval.shape)

    @property
    def size(self) -> int:
        """The number of elements."""
        return self.aval.size

    @property
    def itemsize(self) -> int:
        """Bytes per element."""
        return self.aval.dtype.itemsize

    @property
    def nbytes(self) -> int:
        """Bytes of all elements."""
        return self.aval.size * self.aval.dtype.itemsize

    @property
    def weak_type(self) -> bool:
        """Whether the dtype is weak (from a Python scalar) and adapts to other operands."""
        return self.aval.weak_type

    def __len__(self) -> int:
        if not self.aval.shape:
            raise TypeError("len() of unsized object (a 0-d array)")
        return self.aval.shape[0]

    def __iter__(self):
        if not self.aval.shape:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self.aval.shape[0]))

    # -- arithmetic ---------------------------------------------------------------------
    def __add__(self, other): return fnp.add(self, other)
    def __radd__(self, other): return fnp.add(other, self)
    def __sub__(self, other): return fnp.subtract(self, other)
    def __rsub__(self, other): return fnp.subtract(other, self)
    def __mul__(self, other): return fnp.multiply(self, other)
    def __rmul__(self, other): return fnp.multiply(other, self)
    def __truediv__(self, other): return fnp.true_divide(self, other)
    def __rtruediv__(self, other): return fnp.true_divide(other, self)
    def __floordiv__(self, other): return fnp.floor_divide(self, other)
    def __rfloordiv__(self, other): return fnp.floor_divide(other, self)
    def __mod__(self, other): return fnp.remainder(self, other)
    def __rmod__(self, other): return fnp.remainder(other, self)
    def __divmod__(self, other): return fnp.divmod(self, other)
    def __rdivmod__(self, other): return fnp.divmod(other, self)
    def __pow__(self, other): return fnp.power(self, other)
    def __rpow__(self, other): return fnp.power(other, self)
    def __matmul__(self, other): return fnp.matmul(self, other)
    def __rmatmul__(self, other): return fnp.matmul(other, self)
    def __neg__(self): return fnp.negative(self)
    def __pos__(self): return self
    def __abs__(self): return fnp.abs(self)
    def __invert__(self): return fnp.invert(self)
    def __and__(self, other): return fnp.bitwise_and(self, other)
    def __rand__(self, other): return fnp.bitwise_and(other, self)
    def __or__(self, other): return fnp.bitwise_or(self, other)
    def __ror__(self, other): return fnp.bitwise_or(other, self)
    def __xor__(self, other): return fnp.bitwise_xor(self, other)
    def __rxor__(self, other): return fnp.bitwise_xor(other, self)
    def __lshift__(self, other): return fnp.left_shift(self, other)
    def __rlshift__(self, other): return fnp.left_shift(other, self)
    def __rshift__(self, other): return fnp.right_shift(self, other)
    def __rrshift__(self, other): return fnp.right_shift(other, self)
    def __round__(self, ndigits=None): return fnp.round(self, ndigits or 0)

    # -- comparisons --------------------------------------------------------------------
    def __lt__(self, other): return fnp.less(self, other)
    def __le__(self, other): return fnp.less_equal(self, other)
    def __gt__(self, other): return fnp.greater(self, other)
    def __ge__(self, other): return fnp.greater_equal(self, other)

    def __eq__(self, other):
        return fnp.equal(self, other) if _comparable(other) else NotImplemented

    def __ne__(self, other):
        return fnp.not_equal(self, other) if _comparable(other) else NotImplemented

    __hash__ = None  # arrays are not hashable (== is elementwise)

    # -- indexing -----------------------------------------------------------------------
    def __getitem__(self, index): return fnp._getitem(self, index)

    def __array_namespace__(self, /, *, api_version: str | None = None) -> Any:
        """The array API namespace of fgrad arrays: ``fgrad.numpy``."""
        return fnp._namespace_for(api_version)

    def __setitem__(self, index, value):
        raise TypeError("fgrad arrays are immutable: `x[idx] = v` is not supported. "
                        "Use `x = x.at[idx].set(v)` (or .add / .multiply / .min / .max), which returns "
                        "a new array.")

    @property
    def at(self):
        """Functional index updates: ``x.at[idx].set(v)``, ``.add(v)``, ``.max(v)``, ``.get()``..."""
        return fnp._IndexUpdateHelper(self)

    # -- methods ------------------------------------------------------------------------
    def reshape(self, *shape, order="C"):
        """``fnp.reshape(x, shape)``; accepts ``x.reshape(2, 3)`` and ``x.reshape((2, 3))``."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return fnp.reshape(self, shape, order=order)

    def transpose(self, *axes):
        """``fnp.transpose(x, axes)``; accepts ``x.transpose(1, 0)`` and ``x.transpose((1, 0))``."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        if len(axes) == 1 and axes[0] is None:
            axes = ()
        return fnp.transpose(self, axes or None)

    @property
    def T(self): return fnp.transpose(self)

    @property
    def mT(self): return fnp.matrix_transpose(self)

    @property
    def real(self): return fnp.real(self)

    @property
    def imag(self): return fnp.imag(self)

    def astype(self, dtype, copy=True): return fnp.astype(self, dtype)
    def view(self, dtype=None, type=None): return fnp._array_view(self, dtype, type)  # noqa: A002
    def flatten(self, order="C"): return fnp.ravel(self, order)
    def ravel(self, order="C"): return fnp.ravel(self, order)
    def squeeze(self, axis=None): return fnp.squeeze(self, axis)
    def swapaxes(self, axis1, axis2): return fnp.swapaxes(self, axis1, axis2)

    def sum(self, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None,
            promote_integers=True):
        return fnp.sum(self, axis, dtype, out, keepdims, initial, where, promote_integers)

    def prod(self, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None,
            promote_integers=True):
        return fnp.prod(self, axis, dtype, out, keepdims, initial, where, promote_integers)

    def mean(self, axis=None, dtype=None, out=None, keepdims=False, where=None):
        return fnp.mean(self, axis, dtype, out, keepdims, where)

    def var(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None):
        return fnp.var(self, axis, dtype, out, ddof, keepdims, where=where)

    def std(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None):
        return fnp.std(self, axis, dtype, out, ddof, keepdims, where=where)

    def max(self, axis=None, out=None, keepdims=False, initial=None, where=None):
        return fnp.max(self, axis, out, keepdims, initial, where)

    def min(self, axis=None, out=None, keepdims=False, initial=None, where=None):
        return fnp.min(self, axis, out, keepdims, initial, where)

    def argmax(self, axis=None, out=None, keepdims=False): return fnp.argmax(self, axis, out, keepdims)
    def argmin(self, axis=None, out=None, keepdims=False): return fnp.argmin(self, axis, out, keepdims)
    def any(self, axis=None, out=None, keepdims=False): return fnp.any(self, axis, out, keepdims)
    def all(self, axis=None, out=None, keepdims=False): return fnp.all(self, axis, out, keepdims)
    def ptp(self, axis=None, keepdims=False): return fnp.ptp(self, axis, keepdims)
    def cumsum(self, axis=None, dtype=None, out=None): return fnp.cumsum(self, axis, dtype, out)
    def cumprod(self, axis=None, dtype=None, out=None): return fnp.cumprod(self, axis, dtype, out)
    def searchsorted(self, v, side="left", sorter=None, *, method="scan"):
        return fnp.searchsorted(self, v, side, sorter, method=method)

    def compress(self, condition, axis=None, *, out=None, size=None, fill_value=0):
        return fnp.compress(condition, self, axis, out=out, size=size, fill_value=fill_value)

    def choose(self, choices, out=None, mode="raise"): return fnp.choose(self, choices, out, mode)
    def argpartition(self, kth, axis=-1): return fnp.argpartition(self, kth, axis)
    def clip(self, min=None, max=None): return fnp.clip(self, min, max)  # noqa: A002
    def round(self, decimals=0): return fnp.round(self, decimals)
    def dot(self, other): return fnp.dot(self, other)
    def take(self, indices, axis=None, mode=None): return fnp.take(self, indices, axis, mode=mode)
    def repeat(self, repeats, axis=None, *, total_repeat_length=None):
        return fnp.repeat(self, repeats, axis, total_repeat_length=total_repeat_length)

    def sort(self, axis=-1, *, kind=None, order=None, stable=True, descending=False):
        return fnp.sort(self, axis, kind=kind, order=order, stable=stable, descending=descending)

    def argsort(self, axis=-1, *, kind=None, order=None, stable=True, descending=False):
        return fnp.argsort(self, axis, kind=kind, order=order, stable=stable, descending=descending)

    def copy(self):
        """A copy; arrays are immutable, so a traced value is its own copy."""
        return self

    def nonzero(self, *, size=None, fill_value=None): return fnp.nonzero(self, size=size, fill_value=fill_value)
    def diagonal(self, offset=0, axis1=0, axis2=1): return fnp.diagonal(self, offset, axis1, axis2)
    def trace(self, offset=0, axis1=0, axis2=1, dtype=None): return fnp.trace(self, offset, axis1, axis2, dtype)
    def conj(self): return fnp.conj(self)
    def conjugate(self): return fnp.conj(self)


class DonatedBuffer:
    """What a donated Array holds once a jitted call (``donate_argnums``) reused its memory:
    every attempt to read it raises an error that says so."""

    __slots__ = ()
    MESSAGE = ("this Array was donated to a jitted call (donate_argnums) and its buffer now holds "
               "that call's result; it can no longer be used. Use the call's outputs, or don't "
               "donate arrays you need afterwards.")

    def _fail(self, *args, **kwargs):
        raise RuntimeError(self.MESSAGE)

    __array__ = __bool__ = __int__ = __float__ = __index__ = __len__ = __iter__ = _fail
    __getitem__ = __complex__ = _fail

    def __getattr__(self, name):
        raise RuntimeError(self.MESSAGE)


DONATED = DonatedBuffer()


class Array(ArrayOps):
    """A concrete, immutable array living on a device.

    Create one with ``fgrad.numpy.array``/``asarray``; read it back with
    ``np.asarray(x)``, ``x.item()`` or ``x.tolist()``.

    >>> fgrad.numpy.asarray([1.0, 2.0])
    Array([1., 2.], dtype=float32)
    """

    __slots__ = ("_value", "aval", "_device", "__weakref__")
    __array_priority__ = 100
    #: subclasses whose data live on an accelerator set this to ``fn(primitive, args, params)``:
    #: the eager interpreter hands it every operation that has such an array as an operand.
    _device_process = None

    def __init__(self, value: Any, aval: ShapedArray | None = None, device=None):
        if aval is None:
            host = np.asarray(value)
            aval = ShapedArray(host.shape, dtypes.canonicalize(host.dtype))
        value = np.array(value, dtype=aval.dtype)  # a private copy: the array is immutable
        value.flags.writeable = False
        self._value = value
        self.aval = aval
        self._device = device

    @classmethod
    def _from_numpy(cls, value, aval: ShapedArray) -> "Array":
        """Wrap a primitive's NumPy result (no copy; fixes NumPy's scalar/dtype quirks)."""
        if type(value) is not np.ndarray or value.dtype != aval.dtype:
            value = np.asarray(value, dtype=aval.dtype)
        flags = value.flags
        if flags.writeable and value.base is None:
            flags.writeable = False
        self = object.__new__(cls)
        self._value = value
        self.aval = aval
        self._device = None
        return self

    @classmethod
    def _from_fresh(cls, value: np.ndarray, aval: ShapedArray) -> "Array":
        """Wrap a new, read-only ndarray of ``aval``'s dtype that nothing else references (a
        compiled program's output): ``_from_numpy`` without its checks."""
        self = object.__new__(cls)
        self._value = value
        self.aval = aval
        self._device = None
        return self

    # -- concrete values ------------------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        if self._value is DONATED:
            DONATED._fail()
        if copy:
            return np.array(self._value, dtype=dtype)
        if dtype is None or np.dtype(dtype) == self._value.dtype:
            return self._value
        if copy is False:
            raise ValueError(f"cannot convert a {self.aval.str_short()} array to {np.dtype(dtype).name} "
                             "without copying (copy=False)")
        return self._value.astype(dtype)

    def item(self, *args):
        """The value of a one-element array (or of the element at ``args``) as a Python scalar."""
        return self._value.item(*args)

    def tolist(self):
        """The values as nested Python lists of Python scalars."""
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

    # -- exchange with other libraries (DLPack) ------------------------------------------
    def __dlpack__(self, *, stream: Any = None, max_version: Any = None, dl_device: Any = None,
                   copy: bool | None = None) -> Any:
        """Export the array's host memory through DLPack (zero-copy, marked read-only, for
        consumers of DLPack 1.0 such as NumPy 2 and PyTorch; older consumers, which cannot be
        told the memory is read-only, get a copy unless ``copy=False``)."""
        host = self._value
        if host is DONATED:
            DONATED._fail()
        try:
            return host.__dlpack__(stream=stream, max_version=max_version, dl_device=dl_device, copy=copy)
        except BufferError:
            if copy is False or host.flags.writeable:
                raise
            return np.array(host).__dlpack__(stream=stream, max_version=max_version, dl_device=dl_device)

    def __dlpack_device__(self) -> tuple[int, int]:
        """DLPack's (device type, index) of the exported memory: the host (kDLCPU)."""
        return self._value.__dlpack_device__()

    # -- devices (the array API) ---------------------------------------------------------
    @property
    def device(self) -> Any:
        """The device holding the array: the one ``device_put`` committed it to, else this
        process's first CPU device (host arrays; never None)."""
        return self._device if self._device is not None else fnp._host_device()

    @property
    def committed_device(self) -> Any:
        """The device the array was explicitly placed on (``device_put``, a GPU result), or
        None for a host array that may move to wherever its computation runs."""
        return self._device

    def to_device(self, device: Any, /, *, stream: Any = None) -> "Array":
        """The array API's ``x.to_device(device)``: ``fgrad.device_put(x, device)``."""
        if stream is not None:
            raise ValueError("to_device: stream= is not supported (fgrad orders its device work itself); "
                             "drop the argument")
        return fnp._place(self, device, "to_device")

    def block_until_ready(self) -> "Array":
        """Wait for pending device work (a no-op on the CPU)."""
        return self

    def is_deleted(self) -> bool:
        """Whether this array was donated to a jitted call that reused its buffer."""
        return self._value is DONATED

    def devices(self) -> set:
        """``jax.Array.devices()``: the set of devices holding the array (one)."""
        return {self.device}

    @property
    def committed(self) -> bool:
        """Whether the array was explicitly placed on its device (``device_put``)."""
        return self._device is not None

    @property
    def is_fully_replicated(self) -> bool:
        """True: a single-device array is the whole array wherever it is."""
        return True

    def is_ready(self) -> bool:
        """Whether the array's value is computed (always, on return from a call)."""
        return True

    def copy_to_host_async(self) -> None:
        """Start copying the array to the host (it is there already: nothing to do)."""

    def on_device_size_in_bytes(self) -> int:
        """The bytes the array takes where it lives."""
        return self.nbytes

    def tobytes(self, order: str = "C") -> bytes:
        """The array's data as bytes, as ``numpy.ndarray.tobytes``."""
        return np.asarray(self).tobytes(order)

    @property
    def flat(self):
        raise NotImplementedError("fgrad Arrays, like JAX's, do not implement the arr.flat property: "
                                  "consider arr.flatten() instead")

    def copy(self) -> "Array":
        """A copy (arrays are immutable, so this is only for NumPy compatibility)."""
        return Array(self._value, self.aval, self._device)

    def __repr__(self) -> str:
        body = np.array2string(self._value, separator=", ", prefix="Array(")
        shape = f", shape={self.aval.shape}" if self.aval.size == 0 else ""
        weak = ", weak_type=True" if self.aval.weak_type else ""
        return f"Array({body}{shape}, dtype={self.aval.dtype.name}{weak})"

    def __str__(self) -> str:
        return str(self._value)

    def __reduce__(self):
        return (Array, (np.array(self._value), self.aval))
