"""``Array.view(dtype)``: an array's bits read as another dtype, as JAX's (and NumPy's)
``view``: equal widths keep the shape; otherwise the last axis is rescaled."""
from __future__ import annotations

from typing import Any

from fgrad import lax
from fgrad.core import dtypes
from fgrad.core.trace import get_aval
from fgrad.numpy._util import asarray


def array_view(x: Any, dtype: Any = None, type: Any = None) -> Any:  # noqa: A002 - JAX's name
    """``jax.Array.view(dtype=None, type=None)``: the bits of ``x`` as ``dtype``. A narrower dtype
    multiplies the last axis by the ratio of the widths, a wider one divides it (which must
    then be a whole number); bool reads as its byte (0 or 1), and bytes read as bool are
    ``!= 0``. A 0-d array keeps its width. ``type`` (NumPy's subclass argument) is not
    supported, as in JAX."""
    if type is not None:
        raise ValueError("x.view(type=...) is not supported (as in JAX): fgrad arrays have no subclasses; "
                         "pass only a dtype")
    x = asarray(x)
    if dtype is None:
        return x
    new = dtypes.canonicalize(dtype)
    old = get_aval(x).dtype
    if old == new:
        return x
    if old == dtypes.bool_:
        return array_view(lax.convert_element_type(x, dtypes.uint8), new)
    if new == dtypes.bool_:
        return lax.ne(array_view(x, dtypes.uint8), lax.full((), 0, dtypes.uint8))
    shape = get_aval(x).shape
    if old.itemsize == new.itemsize:
        return lax.bitcast_convert_type(x, new)
    if not shape:
        raise ValueError(f"x.view({new.name}) of a 0-d {old.name} array: a 0-d array can only be viewed "
                         "as a dtype of the same width (as in JAX)")
    if new.itemsize < old.itemsize:
        parts = lax.bitcast_convert_type(x, new)
        return lax.reshape(parts, (*shape[:-1], shape[-1] * (old.itemsize // new.itemsize)))
    k = new.itemsize // old.itemsize
    if shape[-1] % k:
        raise ValueError(f"x.view({new.name}) of a {old.name} array of shape {shape}: the last axis "
                         f"({shape[-1]} x {old.itemsize} bytes) must be a multiple of {new.name}'s "
                         f"{new.itemsize} bytes")
    grouped = lax.reshape(x, (*shape[:-1], shape[-1] // k, k))
    return lax.bitcast_convert_type(grouped, new)
