"""Abstract values: what tracing knows about an array (shape, dtype, weak type, and inside
``shard`` the mesh axes it varies over)."""
from __future__ import annotations

import math

import numpy as np

from fgrad.core import dtypes


_INVARIANT: frozenset = frozenset()


class ShapedArray:
    """The abstract value (aval) of an array: its shape, dtype and weak-typedness.

    ``vma`` ("varying manual axes", as in JAX) is the set of ``shard`` mesh axes along
    which the value may differ from device to device; it is empty outside ``shard``
    (see ``fgrad.core.vma``).

    >>> ShapedArray((3,), np.float32).str_short()
    'f32[3]'
    >>> ShapedArray((3,), np.float32, vma=frozenset({"data"})).str_short()
    'f32[3]{V:data}'
    """

    __slots__ = ("shape", "dtype", "weak_type", "vma", "_hash")

    def __init__(self, shape, dtype, weak_type: bool = False, vma: frozenset = _INVARIANT):
        self.shape = shape if type(shape) is tuple else tuple(int(d) for d in shape)
        self.dtype = dtype if type(dtype) is np.dtype else np.dtype(dtype)
        self.weak_type = bool(weak_type)
        self.vma = vma if type(vma) is frozenset else frozenset(vma)
        self._hash = hash((self.shape, self.dtype, self.weak_type, self.vma))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(math.prod(self.shape))

    def update(self, shape=None, dtype=None, weak_type=None, vma=None) -> "ShapedArray":
        """A copy with some fields replaced."""
        return ShapedArray(self.shape if shape is None else shape,
                           self.dtype if dtype is None else dtype,
                           self.weak_type if weak_type is None else weak_type,
                           self.vma if vma is None else vma)

    def strip_weak_type(self) -> "ShapedArray":
        return self if not self.weak_type else ShapedArray(self.shape, self.dtype, False, self.vma)

    def str_short(self) -> str:
        dims = ",".join(str(d) for d in self.shape)
        varying = "{V:" + ",".join(sorted(map(str, self.vma))) + "}" if self.vma else ""
        return f"{dtypes.short_name(self.dtype)}[{dims}]{varying}"

    def __eq__(self, other) -> bool:
        return (isinstance(other, ShapedArray) and self.shape == other.shape
                and self.dtype == other.dtype and self.weak_type == other.weak_type
                and self.vma == other.vma)

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        weak = ", weak_type=True" if self.weak_type else ""
        return f"ShapedArray({self.str_short()}{weak})"


def same_type(a: ShapedArray, b: ShapedArray) -> bool:
    """Shape and dtype agree (weak-typedness ignored)."""
    return a.shape == b.shape and a.dtype == b.dtype


class ShapeDtypeStruct:
    """A stand-in for an array of ``shape`` and ``dtype`` with no data (JAX's
    ``jax.ShapeDtypeStruct``): what ``eval_shape`` returns, and what ``make_jaxpr``,
    ``eval_shape`` and ``pure_callback`` accept in place of arrays.

    >>> fgrad.ShapeDtypeStruct((2, 3), fgrad.numpy.float32)
    ShapeDtypeStruct(shape=(2, 3), dtype=float32)
    """

    __slots__ = ("shape", "dtype", "sharding", "weak_type")

    def __init__(self, shape, dtype, *, sharding=None, weak_type: bool = False) -> None:
        try:
            self.shape = tuple(int(d) for d in shape)
        except TypeError:
            raise TypeError(f"ShapeDtypeStruct: shape must be a sequence of ints, got {shape!r}") from None
        if any(d < 0 for d in self.shape):
            raise ValueError(f"ShapeDtypeStruct: shape must hold non-negative sizes, got {self.shape}")
        self.dtype = dtypes.canonicalize(dtype)
        self.sharding = sharding
        self.weak_type = bool(weak_type)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def aval(self) -> ShapedArray:
        """The abstract value this struct stands for."""
        return ShapedArray(self.shape, self.dtype, self.weak_type)

    def __eq__(self, other) -> bool:
        return (isinstance(other, ShapeDtypeStruct) and (self.shape, self.dtype, self.weak_type, self.sharding)
                == (other.shape, other.dtype, other.weak_type, other.sharding))

    def __hash__(self) -> int:
        return hash((self.shape, self.dtype, self.weak_type))

    def __repr__(self) -> str:
        weak = ", weak_type=True" if self.weak_type else ""
        sharding = f", sharding={self.sharding!r}" if self.sharding is not None else ""
        return f"ShapeDtypeStruct(shape={self.shape}, dtype={self.dtype.name}{sharding}{weak})"
