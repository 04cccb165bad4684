"""Host interop that JAX's numpy namespace re-exports: printing options, array_repr/str,
einsum_path, save/savez/load, frombuffer/fromstring (fromfile/fromiter raise, as in JAX),
iterable, ComplexWarning. Host-side helpers: they take concrete values, not tracers."""
from __future__ import annotations

from typing import Any

import numpy as np

from fgrad.core.trace import get_aval
from fgrad.numpy._util import asarray, is_array

__all__ = ["array_repr", "array_str", "printoptions", "get_printoptions", "set_printoptions", "einsum_path",
           "save", "savez", "load", "frombuffer", "fromstring", "fromfile", "fromiter", "iterable",
           "ComplexWarning"]

printoptions = np.printoptions
get_printoptions = np.get_printoptions
set_printoptions = np.set_printoptions
save = np.save
savez = np.savez
ComplexWarning = np.exceptions.ComplexWarning


def array_repr(arr, max_line_width=None, precision=None, suppress_small=None):
    """``jax.numpy.array_repr(arr, max_line_width=None, precision=None, suppress_small=None)``:
    ``repr(arr)`` with NumPy's formatting options."""
    text = np.array_repr(np.asarray(arr), max_line_width, precision, suppress_small)
    return "Array" + text[len("array"):] if text.startswith("array") else text


def array_str(a, max_line_width=None, precision=None, suppress_small=None):
    """``jax.numpy.array_str(a, max_line_width=None, precision=None, suppress_small=None)``."""
    return np.array_str(np.asarray(a), max_line_width, precision, suppress_small)


def _shape_stand_in(operand: Any) -> np.ndarray:
    """A zero-stride NumPy array of ``operand``'s shape (no memory), for shape-only planning."""
    shape = get_aval(operand).shape if is_array(operand) else np.shape(operand)
    return np.broadcast_to(np.zeros((), np.float32), shape)


def einsum_path(subscripts, /, *operands, optimize="greedy"):
    """``jax.numpy.einsum_path(subscripts, /, *operands, optimize='greedy')``: NumPy's contraction
    order (a list and a printable report) for operands of these shapes."""
    return np.einsum_path(subscripts, *[_shape_stand_in(op) for op in operands], optimize=optimize)


def load(file, *args, **kwargs):
    """``jax.numpy.load(file, *args, **kwargs)``: ``numpy.load``, a single array becoming an fgrad
    array (``.npz`` archives come back as NumPy's lazy NpzFile)."""
    out = np.load(file, *args, **kwargs)
    return asarray(out) if isinstance(out, np.ndarray) and out.dtype.kind in "biuf" else out


def frombuffer(buffer, dtype=float, count=-1, offset=0):
    """``jax.numpy.frombuffer(buffer, dtype=float, count=-1, offset=0)``: a 1-d array from a bytes
    buffer (copied; 64-bit data narrows unless enable_x64)."""
    return asarray(np.frombuffer(buffer, dtype=dtype, count=count, offset=offset))


def fromstring(string, dtype=float, count=-1, *, sep):
    """``jax.numpy.fromstring(string, dtype=float, count=-1, *, sep)``: a 1-d array parsed from text
    separated by ``sep``."""
    return asarray(np.fromstring(string, dtype=dtype, count=count, sep=sep))


def fromfile(*args, **kwargs):
    """``jax.numpy.fromfile``: not provided (as in JAX): reading a file is not a pure function."""
    raise NotImplementedError("fromfile is not supported (as in JAX): read the file with numpy.fromfile "
                              "and convert with fgrad.numpy.asarray")


def fromiter(*args, **kwargs):
    """``jax.numpy.fromiter``: not provided (as in JAX): consuming an iterator is not pure."""
    raise NotImplementedError("fromiter is not supported (as in JAX): build the array with numpy.fromiter "
                              "and convert with fgrad.numpy.asarray")


def iterable(y):
    """``jax.numpy.iterable(y)``: whether ``iter(y)`` works (a 0-d array is not iterable)."""
    try:
        iter(y)
    except TypeError:
        return False
    return True
