"""Dtype objects, promotion queries and constants of ``fgrad.numpy``.

``fnp.float32`` and friends work wherever NumPy expects a dtype
(``np.dtype(fnp.float32)``, ``x.astype(fnp.int32)``, ``x.dtype == fnp.float32``)
and, called, build an fgrad array: ``fnp.float32(3)`` is ``Array(3., dtype=float32)``.
"""
from __future__ import annotations

import builtins
from typing import Any

import numpy as np

from fgrad.core import dtypes
from fgrad.core.array import Array
from fgrad.core.trace import Tracer
from fgrad.numpy._util import asarray

__all__ = [
    "bfloat16", "float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
    "uint16", "uint32", "uint64", "bool_", "complex64", "complex128", "complex_", "csingle", "cdouble",
    "single", "double", "float_", "int_", "uint", "character", "flexible", "object_",
    "dtype", "generic", "number", "inexact", "floating", "complexfloating", "integer", "signedinteger",
    "unsignedinteger", "bool", "issubdtype", "iinfo", "finfo", "result_type", "promote_types",
    "can_cast", "isdtype", "pi", "e", "inf", "nan", "euler_gamma", "newaxis",
]


class _ScalarTypeMeta(type):
    """Metaclass making a scalar-type class compare and hash like its NumPy dtype.

    As JAX's scalar types, ``fnp.float32`` equals dtypes only: another fgrad scalar
    type, a NumPy dtype or NumPy scalar type of the same kind (``np.dtype('float32')``,
    ``np.float32``). Strings, ``None`` and other objects compare unequal; it never raises.
    """

    def __eq__(cls, other: Any) -> bool:
        if isinstance(other, _ScalarTypeMeta):
            return cls.dtype == other.dtype
        if isinstance(other, np.dtype):
            return cls.dtype == other
        if isinstance(other, type) and issubclass(other, np.generic):
            return cls.dtype.type is other
        return NotImplemented

    def __ne__(cls, other: Any) -> bool:
        equal = type(cls).__eq__(cls, other)
        return equal if equal is NotImplemented else not equal

    def __hash__(cls) -> int:
        return hash(cls.dtype)

    def __repr__(cls) -> str:
        return f"fgrad.numpy.{cls.__name__}"


def _scalar_type(name: str, dt: np.dtype) -> type:
    def new(cls, value: Any = 0):
        return asarray(value, dtype=dt)

    doc = f"The {dt.name} dtype; ``{name}(x)`` converts ``x`` to an fgrad array of that dtype."
    return _ScalarTypeMeta(name, (), {"dtype": dt, "__new__": new, "__doc__": doc})


bfloat16 = _scalar_type("bfloat16", dtypes.bfloat16)   # ml_dtypes' bfloat16, as JAX's
float16 = _scalar_type("float16", dtypes.float16)
float32 = single = _scalar_type("float32", dtypes.float32)
float64 = double = float_ = _scalar_type("float64", dtypes.float64)   # float32 without x64
int8 = _scalar_type("int8", dtypes.int8)
int16 = _scalar_type("int16", dtypes.int16)
int32 = _scalar_type("int32", dtypes.int32)
int64 = int_ = _scalar_type("int64", dtypes.int64)
uint8 = _scalar_type("uint8", dtypes.uint8)
uint16 = _scalar_type("uint16", dtypes.uint16)
uint32 = _scalar_type("uint32", dtypes.uint32)
uint64 = uint = _scalar_type("uint64", dtypes.uint64)   # with x64 (sums of small unsigned ints); else uint32
bool_ = _scalar_type("bool_", dtypes.bool_)
complex64 = csingle = _scalar_type("complex64", dtypes.complex64)
complex128 = cdouble = complex_ = _scalar_type("complex128", dtypes.complex128)   # complex64 without x64

# abstract dtype families, for issubdtype(x.dtype, fnp.floating)
dtype = np.dtype
generic, number, inexact, floating = np.generic, np.number, np.inexact, np.floating
complexfloating = np.complexfloating
character, flexible, object_ = np.character, np.flexible, np.object_    # NumPy's, as in jax.numpy
integer, signedinteger, unsignedinteger = np.integer, np.signedinteger, np.unsignedinteger
bool = np.bool_  # noqa: A001 - NumPy 2 name

iinfo = np.iinfo
finfo = np.finfo

pi = float(np.pi)
e = float(np.e)
inf = float("inf")
nan = float("nan")
euler_gamma = float(np.euler_gamma)
newaxis = None


def issubdtype(arg1: Any, arg2: Any) -> bool:
    """``np.issubdtype`` that also accepts fgrad's scalar types, with bfloat16 a floating type
    (as ``jnp.issubdtype``: NumPy files ml_dtypes' bfloat16 under void)."""
    arg1, arg2 = _as_np_dtype_or_type(arg1), _as_np_dtype_or_type(arg2)
    if _is_bfloat16(arg1):
        return _is_bfloat16(arg2) or arg2 in (np.floating, np.inexact, np.number, np.generic)
    return np.issubdtype(arg1, arg2)


def _is_bfloat16(x: Any) -> bool:
    try:
        return np.dtype(x) == dtypes.bfloat16
    except TypeError:
        return False


def _as_np_dtype_or_type(x: Any) -> Any:
    if isinstance(x, _ScalarTypeMeta):
        return x.dtype
    return x


def isdtype(dtype: Any, kind: Any) -> bool:
    """Array-API ``isdtype``: kind is a dtype or one of 'bool', 'signed integer',
    'unsigned integer', 'integral', 'real floating', 'complex floating', 'numeric' (or a tuple
    of them).

    >>> isdtype(fnp.uint8, fnp.uint8), isdtype(fnp.uint8, ("real floating", fnp.int32))
    (True, False)
    """
    if np.dtype(dtype) == dtypes.bfloat16:   # NumPy's isdtype does not know ml_dtypes' floats
        kinds = kind if isinstance(kind, tuple) else (kind,)
        return any(k in ("real floating", "numeric") or _is_bfloat16(k) for k in kinds
                   if isinstance(k, (str, np.dtype, type)))
    return np.isdtype(np.dtype(dtype), _isdtype_kind(kind))


def _isdtype_kind(kind: Any) -> Any:
    """NumPy's spelling of an isdtype kind: fgrad scalar types become their dtypes."""
    if isinstance(kind, tuple):
        return tuple(_isdtype_kind(k) for k in kind)
    if isinstance(kind, _ScalarTypeMeta):
        return kind.dtype
    return kind


def _typed(x: Any) -> tuple[np.dtype, bool]:
    """(dtype, weak_type) of an argument of result_type: an array, a scalar or a dtype."""
    if isinstance(x, (Array, Tracer)):
        return x.aval.dtype, x.aval.weak_type
    if type(x) in (int, float, builtins.complex, builtins.bool):
        return dtypes.python_scalar_dtype(x), type(x) is not builtins.bool
    if x is int or x is float or x is builtins.complex:    # the Python types themselves are weak, as in JAX
        return dtypes.python_scalar_dtype(x(0)), True
    if isinstance(x, (np.ndarray, np.generic)):
        return dtypes.canonicalize(x.dtype), False
    try:
        return dtypes.canonicalize(np.dtype(x)), False
    except TypeError:
        raise TypeError(f"result_type: cannot interpret {x!r} as an array, a scalar or a dtype") from None



def result_type(*args: Any) -> np.dtype:
    """The dtype fgrad's arithmetic gives these operands (JAX's promotion; Python scalars are weak).

    >>> result_type(fnp.uint8, 1), result_type(fnp.int32, 2.0)
    (dtype('uint8'), dtype('float32'))
    """
    if not args:
        raise ValueError("result_type needs at least one argument")
    return dtypes.promote(*[_typed(a) for a in args])[0]


def promote_types(type1: Any, type2: Any) -> np.dtype:
    """The smallest dtype both dtypes promote to (JAX's lattice: int32 + float32 is float32)."""
    return dtypes.promote((dtypes.canonicalize(np.dtype(type1)), False),
                          (dtypes.canonicalize(np.dtype(type2)), False))[0]


def can_cast(from_: Any, to: Any, casting: str = "safe") -> bool:
    """``np.can_cast`` on (canonical) dtypes."""
    return np.can_cast(dtypes.canonicalize(np.dtype(_as_np_dtype_or_type(
        from_.dtype if isinstance(from_, (Array, Tracer)) else from_))), np.dtype(to), casting)
