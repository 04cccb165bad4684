"""Dtypes and JAX-style type promotion.

fgrad uses NumPy's dtype objects. float32 is the default float and int32 the
default int; 64-bit types exist only while ``config.enable_x64`` is on (otherwise
they narrow to 32 bits, as in JAX). Python scalars are *weakly typed*: they take
the dtype of the array they meet (``uint8_array + 1`` stays uint8).
"""
from __future__ import annotations

import functools

import ml_dtypes
import numpy as np

from fgrad.config import config

bool_ = np.dtype(np.bool_)
uint8 = np.dtype(np.uint8)
uint16 = np.dtype(np.uint16)
uint32 = np.dtype(np.uint32)
uint64 = np.dtype(np.uint64)
int8 = np.dtype(np.int8)
int16 = np.dtype(np.int16)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
bfloat16 = np.dtype(ml_dtypes.bfloat16)   # NumPy's kind for it is 'V': ask is_float, not .kind
float16 = np.dtype(np.float16)
float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
complex64 = np.dtype(np.complex64)
complex128 = np.dtype(np.complex128)

SUPPORTED = (bool_, uint8, uint16, uint32, uint64, int8, int16, int32, int64,
             bfloat16, float16, float32, float64, complex64, complex128)

_SHORT_NAMES = {bool_: "bool", uint8: "u8", uint16: "u16", uint32: "u32", uint64: "u64",
                int8: "i8", int16: "i16", int32: "i32", int64: "i64",
                bfloat16: "bf16", float16: "f16", float32: "f32", float64: "f64",
               complex64: "c64", complex128: "c128"}

_NARROW = {np.dtype(np.int64): int32, np.dtype(np.uint64): uint32, np.dtype(np.float64): float32,
           np.dtype(np.complex128): complex64}


def short_name(dtype: np.dtype) -> str:
    """The jaxpr printer's name for a dtype: ``f32``, ``i32``, ``u8``, ``bool``..."""
    return _SHORT_NAMES.get(dtype, dtype.name)


def kind(dtype: np.dtype) -> str:
    """NumPy's one-letter kind ('b', 'i', 'u', 'f', 'c'), with bfloat16 a float ('f'):
    NumPy files ml_dtypes' bfloat16 under 'V' (void)."""
    return "f" if dtype == bfloat16 else dtype.kind


def is_float(dtype: np.dtype) -> bool:
    """Whether ``dtype`` is a real floating type (bfloat16 included)."""
    return dtype.kind == "f" or dtype == bfloat16


def is_int(dtype: np.dtype) -> bool:
    return dtype.kind in "iu"


def is_complex(dtype: np.dtype) -> bool:
    """Whether ``dtype`` is complex64 or complex128."""
    return dtype.kind == "c"


def real_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype of the real and imaginary parts of a complex dtype (``dtype`` itself if real):
    complex64 -> float32, complex128 -> float64."""
    return {complex64: float32, complex128: float64}.get(np.dtype(dtype), np.dtype(dtype))


def complex_dtype(dtype: np.dtype) -> np.dtype:
    """The complex dtype whose parts are ``dtype``: float32 (and the half floats) -> complex64,
    float64 -> complex128; a complex dtype is itself."""
    dtype = np.dtype(dtype)
    if is_complex(dtype):
        return dtype
    return complex128 if dtype == float64 else complex64


#: the dtype of the gradient of an integer or bool input (``grad(..., allow_int=True)``): zero
#: bytes per element, as JAX's ``jax.dtypes.float0``
float0 = np.dtype([("float0", np.void, 0)])


def is_differentiable(dtype: np.dtype) -> bool:
    """Only inexact dtypes carry tangents and cotangents."""
    return dtype.kind in "fc" or dtype == bfloat16


def is_half(dtype: np.dtype) -> bool:
    """float16 or bfloat16: stored in 16 bits, computed in float32 and rounded on every result."""
    return dtype == float16 or dtype == bfloat16


def canonicalize(dtype) -> np.dtype:
    """Map any dtype-like to the dtype fgrad stores (64-bit narrowed unless x64 is on)."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{dtype!r} is not a dtype; pass a NumPy dtype, a dtype name such as "
                        "'float32', or fgrad.numpy.float32") from None
    if not config.enable_x64:
        dtype = _NARROW.get(dtype, dtype)
    if dtype not in SUPPORTED:
        names = ", ".join(d.name for d in SUPPORTED)
        raise TypeError(f"fgrad does not support dtype {dtype.name}; supported dtypes: {names}")
    return dtype


def default_float() -> np.dtype:
    return float64 if config.enable_x64 else float32


def default_int() -> np.dtype:
    return int64 if config.enable_x64 else int32


def default_complex() -> np.dtype:
    return complex128 if config.enable_x64 else complex64


# --- promotion lattice (JAX's): a < b means values of a fit into b -------------------
# 'i*', 'f*' and 'c*' are the weak (Python scalar) int, float and complex kinds.
_LATTICE_EDGES = {
    "bool": ["i*"],
    "i*": ["u8", "i8"],
    "u8": ["u16", "i16"], "u16": ["u32", "i32"], "u32": ["u64", "i64"], "u64": ["f*"],
    "i8": ["i16"], "i16": ["i32"], "i32": ["i64"], "i64": ["f*"],
    "f*": ["f16", "bf16", "c*"], "f16": ["f32"], "bf16": ["f32"], "f32": ["f64", "c64"], "f64": ["c128"],
    "c*": ["c64"], "c64": ["c128"], "c128": [],
}


@functools.lru_cache(maxsize=None)
def _upper_bounds(node: str) -> frozenset:
    bounds = {node}
    for parent in _LATTICE_EDGES[node]:
        bounds |= _upper_bounds(parent)
    return frozenset(bounds)


def _node(dtype: np.dtype, weak: bool) -> str:
    if weak and dtype.kind in "iu":
        return "i*"
    if weak and is_float(dtype):
        return "f*"
    if weak and is_complex(dtype):
        return "c*"
    return "bool" if dtype == bool_ else short_name(dtype)


def _node_dtype(node: str) -> np.dtype:
    if node == "i*":
        return default_int()
    if node == "f*":
        return default_float()
    if node == "c*":
        return default_complex()
    for dtype, name in _SHORT_NAMES.items():
        if name == node:
            return dtype
    raise TypeError(f"unknown dtype lattice node {node!r}")


@functools.lru_cache(maxsize=1024)
def _join(a: str, b: str) -> str:
    common = _upper_bounds(a) & _upper_bounds(b)
    for candidate in common:
        if common <= _upper_bounds(candidate):
            return candidate
    raise TypeError(f"no common dtype for {a} and {b}")


def promote(*typed: tuple[np.dtype, bool]) -> tuple[np.dtype, bool]:
    """Promote (dtype, weak_type) pairs to the common (dtype, weak_type), JAX-style.

    >>> promote((uint8, False), (int32, True))   # uint8 array + Python int
    (dtype('uint8'), False)

    When every operand is weak, their strong types are promoted and the result stays
    weak (so two weak float16 values stay float16, as in JAX).
    """
    if not typed:
        raise TypeError("promote needs at least one (dtype, weak_type) pair")
    return _promote(tuple((np.dtype(d), bool(w)) for d, w in typed), config.enable_x64)


@functools.lru_cache(maxsize=4096)
def _promote(typed: tuple, x64: bool) -> tuple[np.dtype, bool]:
    all_weak = all(weak for _, weak in typed)
    node = _node(typed[0][0], typed[0][1] and not all_weak)
    for dtype, weak in typed[1:]:
        node = _join(node, _node(dtype, weak and not all_weak))
    weak = all_weak or node in ("i*", "f*", "c*")
    return canonicalize(_node_dtype(node)), weak


def python_scalar_dtype(value) -> np.dtype:
    """The dtype a Python scalar takes before promotion (it is weakly typed)."""
    if isinstance(value, (bool, np.bool_)):
        return bool_
    if isinstance(value, int):
        return default_int()
    if isinstance(value, float):
        return default_float()
    if isinstance(value, complex):
        return default_complex()
    raise TypeError(f"{type(value).__name__} is not a Python scalar")
