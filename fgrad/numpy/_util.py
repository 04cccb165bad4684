"""Helpers shared by fgrad.numpy: turning arguments into arrays, NumPy/JAX-style
promotion and broadcasting, and axis/integer argument checks.

Promotion follows JAX (``fgrad.core.dtypes.promote``): Python scalars are weakly
typed and adapt to the arrays they meet (``uint8_array + 1`` stays uint8).
"""
from __future__ import annotations

import functools
import inspect
import operator
import warnings
from typing import Any, Callable, Sequence

import numpy as np

from fgrad import lax
from fgrad.core import dtypes
from fgrad.core.array import Array
from fgrad.core.trace import Tracer, get_aval
from fgrad.core.types import ShapedArray
from fgrad.ops import elementwise as ew
from fgrad.ops import shape as sh
from fgrad.runtime.devices import local_devices
from fgrad.runtime.sharding import device_put

PY_SCALARS = (int, float, bool, complex)
AxisError = np.exceptions.AxisError  # a ValueError (and IndexError), as NumPy raises


def is_array(x: Any) -> bool:
    """An fgrad Array or a tracer (anything carrying an ``aval``)."""
    return type(x) is Array or isinstance(x, (Array, Tracer))


def host_to_array(value: Any, dtype: Any = None, weak: bool = False) -> Array:
    """Copy host data (a scalar, a NumPy array, nested lists of numbers) into a new Array."""
    try:
        host = np.asarray(value) if dtype is None else np.asarray(value, dtype=dtypes.canonicalize(dtype))
    except (TypeError, ValueError) as err:
        raise TypeError(f"cannot convert {type(value).__name__} to an fgrad array: {err}") from None
    if dtypes.kind(host.dtype) not in "biufc":
        raise TypeError(f"cannot convert {type(value).__name__} with NumPy dtype {host.dtype} to an "
                        "fgrad array: only bool, integer, floating-point and complex data are supported")
    target = dtypes.canonicalize(host.dtype if dtype is None else dtype)
    host = np.array(host, dtype=target)  # always a private copy: fgrad arrays are immutable
    host.flags.writeable = False
    return Array._from_numpy(host, ShapedArray(host.shape, target, weak))


def scalar_array(value: Any, dtype: np.dtype | None = None) -> Array:
    """A Python scalar as a 0-d Array; weakly typed unless ``dtype`` is given."""
    if dtype is None:
        return host_to_array(value, dtypes.python_scalar_dtype(value), weak=type(value) is not bool)
    return host_to_array(value, dtype)


def to_array(x: Any, op: str = "fgrad.numpy") -> Any:
    """``x`` as an fgrad Array or tracer: scalars stay weakly typed, host data is copied."""
    if type(x) is Array or isinstance(x, (Array, Tracer)):
        return x
    if type(x) in PY_SCALARS:
        return scalar_array(x)
    if isinstance(x, (np.ndarray, np.generic)):
        return host_to_array(x)
    if isinstance(x, (list, tuple)):
        return array(x)
    raise TypeError(f"{op}: expected an array, a Python scalar or a (nested) list of numbers, "
                    f"got {type(x).__name__}")


# --- conversion: asarray, array, astype (fgrad.numpy._creation exports them) -----------------------

def _contains_tracer(x: Any) -> bool:
    if isinstance(x, Tracer):
        return True
    return isinstance(x, (list, tuple)) and any(_contains_tracer(v) for v in x)


def asarray(a: Any, dtype: Any = None, order: str | None = None, *, copy: bool | None = None,
            device: Any = None) -> Any:
    """Convert ``a`` to an fgrad array (on ``device`` when given: a Device, a NamedSharding or
    'cpu').

    Host data (NumPy arrays, lists, scalars) is copied, so later changes to it do not
    reach the fgrad array. 64-bit data narrows to 32 bits unless ``enable_x64`` is on.
    Python scalars give weakly typed arrays. fgrad arrays and tracers pass through.

    >>> fnp.asarray([1.0, 2.0])
    Array([1., 2.], dtype=float32)
    """
    if is_array(a):
        out = a if dtype is None else astype(a, dtype)
    elif isinstance(a, (list, tuple)) and _contains_tracer(a):
        out = _stack_nested(a, dtype)
    elif dtype is None and type(a) in PY_SCALARS:
        out = scalar_array(a)
    else:
        out = host_to_array(_from_buffer(a), dtype)
    return place(out, device, "asarray")


def _from_buffer(a: Any) -> Any:
    """Objects that only offer the buffer protocol or DLPack (e.g. another library's array)
    as something NumPy reads."""
    if hasattr(a, "__dlpack__") and not isinstance(a, (np.ndarray, np.generic)) and not hasattr(a, "__array__"):
        return np.from_dlpack(a)
    return a


def array(object: Any, dtype: Any = None, copy: bool = True, order: str | None = None,  # noqa: A002
          ndmin: int = 0, *, device: Any = None) -> Any:
    """Like ``asarray`` (fgrad arrays are immutable, so sharing one is as good as a copy);
    ``ndmin`` prepends size-1 dimensions."""
    out = asarray(object, dtype)
    ndim = get_aval(out).ndim
    if ndmin > ndim:
        out = lax.reshape(out, (1,) * (ndmin - ndim) + get_aval(out).shape)
    return place(out, device, "array")


def _stack_nested(items: Sequence[Any], dtype: Any) -> Any:
    """Nested lists holding tracers, stacked as ``fnp.stack`` does (along a new leading axis)."""
    parts = [_stack_nested(v, dtype) if isinstance(v, (list, tuple)) else asarray(v, dtype) for v in items]
    if not parts:
        raise ValueError("stack: need at least one array to stack")
    check_same_rank_and_shape("stack", parts, None)
    return join_arrays([lax.expand_dims(p, (0,)) for p in parts], 0, None)


def astype(x: Any, dtype: Any, /, *, copy: bool = False, device: Any = None) -> Any:
    """``x`` converted to ``dtype`` (floats truncate toward zero when cast to integers), on
    ``device`` when given."""
    x = asarray(x)
    dtype = dtypes.canonicalize(dtype)
    if dtypes.is_complex(get_aval(x).dtype) and not dtypes.is_complex(dtype):
        if dtype == dtypes.bool_:
            x = ew.ne(x, ew._const(x, 0))    # as JAX: nonzero, not the real part's truth
        else:
            warnings.warn("Casting from complex to real dtypes will soon raise a ValueError (as in JAX). "
                          "Please first use fnp.real or fnp.imag to take the real/imaginary component "
                          "of your input.", DeprecationWarning, stacklevel=2)
        return place(ew.convert_element_type_p.bind(x, new_dtype=dtype, weak_type=False), device, "astype")
    return place(lax.convert_element_type(x, dtype), device, "astype")


# --- devices (the array API's device= keywords) ---------------------------------------------------

def host_device() -> Any:
    """This process's first CPU device: where uncommitted host arrays live."""
    return local_devices(backend="cpu")[0]


def place(x: Any, device: Any, op: str) -> Any:
    """``x`` placed on ``device`` (a Device, a NamedSharding or 'cpu'); None leaves it where it
    is, and inside ``jit`` values pass through as ``device_put`` lets them."""
    if device is None:
        return x
    if isinstance(device, str):
        if device != "cpu":
            raise ValueError(f"{op}: device={device!r} is not a device; pass a device object "
                             "(fgrad.devices()[i], x.device) or 'cpu'")
        device = host_device()
    return device_put(x, device)


def accepts_device(fn: Callable) -> Callable:
    """Give a creation function the array API's keyword-only ``device=`` (where the result goes;
    for ``*_like`` functions the default is the prototype's committed device)."""
    like = fn.__name__.endswith("_like")

    @functools.wraps(fn)
    def create(*args, device: Any = None, **kwargs):
        if device is None and like:
            proto = args[0] if args else kwargs.get("a")
            device = proto.committed_device if isinstance(proto, Array) else None
        return place(fn(*args, **kwargs), device, fn.__name__)
    signature = inspect.signature(fn)
    keyword = inspect.Parameter("device", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Any)
    create.__signature__ = signature.replace(parameters=[*signature.parameters.values(), keyword])
    return create


# --- joining (fnp.concatenate and fnp.stack end here) ------------------------------------------------

def check_same_rank_and_shape(op: str, arrays: Sequence[Any], axis: int | None) -> None:
    """Raise unless ``arrays`` share their rank and their shape (except along ``axis``)."""
    shapes = [get_aval(a).shape for a in arrays]
    ranks = {len(s) for s in shapes}
    if len(ranks) > 1:
        raise TypeError(f"{op}: all arrays must have the same number of dimensions, got shapes "
                        f"{', '.join(map(str, shapes))}")
    for s in shapes[1:]:
        for i, (d0, d) in enumerate(zip(shapes[0], s)):
            if i != axis and d0 != d:
                what = f"except along axis {axis}" if axis is not None else "exactly"
                raise TypeError(f"{op}: all arrays must have the same shape {what}, got shapes "
                                f"{', '.join(map(str, shapes))}; reshape or slice them to match")


def join_arrays(arrays: Sequence[Any], axis: int, dtype: Any) -> Any:
    """Arrays of rank >= 1, promoted to one dtype (or cast to ``dtype``) and joined along ``axis``."""
    arrays = promote("concatenate", *arrays, shape=False)
    if dtype is not None:
        arrays = [lax.convert_element_type(a, dtypes.canonicalize(dtype)) for a in arrays]
    axis = canonical_axis("concatenate", axis, get_aval(arrays[0]).ndim)
    check_same_rank_and_shape("concatenate", arrays, axis)
    if len(arrays) == 1:
        return arrays[0]
    return lax.concatenate(arrays, axis)


def _operand(x: Any, op: str) -> Any:
    """Arrays, tracers and Python scalars pass; other array-likes become Arrays."""
    if type(x) is Array or type(x) in PY_SCALARS or isinstance(x, (Array, Tracer)):
        return x
    return to_array(x, op)


def python_scalar_as(value: Any, dtype: np.dtype, op: str) -> Any:
    """A Python scalar converted to a NumPy scalar of ``dtype`` (it was weakly typed)."""
    try:
        return dtype.type(value)
    except OverflowError:
        raise OverflowError(f"{op}: the Python scalar {value!r} does not fit in the array's dtype "
                            f"{dtype.name}; convert the array first, e.g. x.astype(fnp.int32)") from None


# --- broadcasting ----------------------------------------------------------------------------

def broadcast_shapes_for(op: str, *shapes: Sequence[int]) -> tuple[int, ...]:
    """NumPy's broadcast of ``shapes``; a TypeError naming ``op`` and the shapes if they clash."""
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(-ndim, 0):
        sizes = {s[i] for s in shapes if len(s) >= -i}
        not_one = sizes - {1}
        if len(not_one) > 1:
            shown = ", ".join(str(tuple(s)) for s in shapes)
            raise TypeError(f"{op}: shapes {shown} cannot be broadcast together (dimension {i} has sizes "
                            f"{sorted(not_one)}). Make the sizes match or 1, e.g. with "
                            "fnp.expand_dims / reshape, or slice the arrays")
        out.append(not_one.pop() if not_one else (0 if 0 in sizes else 1) if sizes else 1)
    return tuple(out)


def broadcast_to_shape(x: Any, shape: tuple[int, ...]) -> Any:
    """Broadcast ``x`` (already compatible) to ``shape``, aligning trailing dimensions."""
    aval = get_aval(x)
    if aval.shape == shape:
        return x
    lead = len(shape) - aval.ndim
    return sh.broadcast_in_dim(x, shape, tuple(range(lead, len(shape))))


# --- promotion -------------------------------------------------------------------------------

def promote(op: str, *args: Any, to_float: bool = False, shape: bool = True) -> list[Any]:
    """Promote ``args`` to one dtype (and, with ``shape``, one broadcast shape; rank-0 operands
    stay rank-0, as the elementwise primitives accept them).

    ``to_float`` further promotes integer/bool results to a float (``true_divide``;
    ``inexact_for_int``: float32 up to 32 bits, as JAX).
    """
    args = [_operand(a, op) for a in args]
    avals = [get_aval(a) for a in args]
    dtype, weak = dtypes.promote(*[(a.dtype, a.weak_type) for a in avals])
    if to_float and not dtypes.is_differentiable(dtype):
        dtype = inexact_for_int(dtype, weak)
    all_scalars = all(type(a) in PY_SCALARS for a in args)
    out_shape = broadcast_shapes_for(op, *[a.shape for a in avals]) if shape else None
    out = []
    for a, aval in zip(args, avals):
        if type(a) in PY_SCALARS:
            # a weak result (``int32 array * 0.1`` is a weak float) needs a weak scalar operand too,
            # else the primitive's result would come out strong
            out.append(host_to_array(a, dtype, weak) if all_scalars or weak else python_scalar_as(a, dtype, op))
            continue
        if aval.dtype != dtype:
            a = ew.convert_element_type(a, dtype, weak)
        if shape and aval.ndim and aval.shape != out_shape:
            a = broadcast_to_shape(a, out_shape)
        out.append(a)
    return out


def promote2(op: str, x: Any, y: Any) -> tuple[Any, Any]:
    """``promote`` for two operands, with fast paths for the common eager cases."""
    tx, ty = type(x), type(y)
    if isinstance(x, (Array, Tracer)):          # Array or a subclass (a GPU array)
        ax = x.aval
        if isinstance(y, (Array, Tracer)):
            ay = y.aval
            if ax.dtype == ay.dtype and (ax.shape == ay.shape or not ay.shape or not ax.shape):
                return x, y
        elif ty in (int, float) and not ax.weak_type:
            kind = dtypes.kind(ax.dtype)
            if kind == "f" or (ty is int and kind in "iu"):
                return x, python_scalar_as(y, ax.dtype, op)
    elif tx in (int, float) and isinstance(y, (Array, Tracer)):
        ay = y.aval
        kind = dtypes.kind(ay.dtype)
        if not ay.weak_type and (kind == "f" or (tx is int and kind in "iu")):
            return python_scalar_as(x, ay.dtype, op), y
    return tuple(promote(op, x, y))


def promote_float(op: str, x: Any) -> Any:
    """``x`` as an array of an inexact dtype; complex stays complex. As JAX: an int or bool
    array of 32 bits or fewer becomes float32 and a 64-bit one float64 (whatever the default
    float is); a weakly typed one (a Python scalar) the default float."""
    x = to_array(x, op)
    aval = get_aval(x)
    if dtypes.is_differentiable(aval.dtype):
        return x
    return ew.convert_element_type(x, inexact_for_int(aval.dtype, aval.weak_type), aval.weak_type)


def inexact_for_int(dtype: np.dtype, weak: bool) -> np.dtype:
    """The float an int or bool of ``dtype`` computes in: JAX's rule (float32 up to 32 bits,
    float64 for 64-bit ints, the default float for weakly typed values)."""
    if weak:
        return dtypes.default_float()
    return dtypes.canonicalize(np.float64) if np.dtype(dtype).itemsize >= 8 else dtypes.float32


def check_dtype_kind(op: str, x: Any, kinds: str, what: str) -> None:
    """Raise a TypeError naming ``op`` if ``x``'s dtype kind is not among ``kinds``."""
    aval = get_aval(x)
    if dtypes.kind(aval.dtype) not in kinds:
        target = "fnp.int32" if "i" in kinds else "fnp.float32"
        raise TypeError(f"{op}: requires {what} operands, got {aval.str_short()}; convert with "
                        f".astype({target}) first")


# --- static arguments ------------------------------------------------------------------------

def static_int(op: str, name: str, value: Any) -> int:
    """A Python int from ``value``; a TypeError for floats and other non-integers."""
    if isinstance(value, Tracer):
        return operator.index(value)  # raises the concretization error with the user's line
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{op}: {name} must be an integer, got {value!r}") from None


def canonical_axis(op: str, axis: Any, ndim: int) -> int:
    """``axis`` in ``[0, ndim)`` (negative axes count from the end)."""
    axis = static_int(op, "axis", axis)
    if not -ndim <= axis < ndim:
        raise AxisError(f"{op}: axis {axis} is out of bounds for an array of dimension {ndim}")
    return axis % ndim if ndim else axis


def canonical_axes(op: str, axis: Any, ndim: int) -> tuple[int, ...]:
    """``axis`` (None = all, an int, or a sequence of ints) as a sorted tuple of axes."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (list, tuple)):
        axes = tuple(canonical_axis(op, a, ndim) for a in axis)
    else:
        axes = (canonical_axis(op, axis, ndim),)
    if len(set(axes)) != len(axes):
        raise ValueError(f"{op}: repeated axis in {axis}")
    return tuple(sorted(axes))


def normalize_shape(op: str, shape: Any) -> tuple[int, ...]:
    """A shape argument (an int or a sequence of ints) as a tuple; rejects negative sizes."""
    if isinstance(shape, (list, tuple)):
        dims = tuple(static_int(op, "shape", s) for s in shape)
    elif is_array(shape) or isinstance(shape, np.ndarray):
        dims = tuple(static_int(op, "shape", s) for s in np.asarray(shape).reshape(-1))
    else:
        dims = (static_int(op, "shape", shape),)
    if any(d < 0 for d in dims):
        raise ValueError(f"{op}: negative dimensions are not allowed, got shape {dims}")
    return dims


def reject_out(op: str, out: Any) -> None:
    """Raise for NumPy's ``out=`` argument: fgrad arrays cannot be written into."""
    if out is not None:
        raise TypeError(f"{op}: the out= argument is not supported, because fgrad arrays are "
                        "immutable; use the returned array instead")


def optional_dtype(dtype: Any) -> np.dtype | None:
    """``dtype`` canonicalised, or None."""
    return None if dtype is None else dtypes.canonicalize(dtype)
