"""Indexing: ``x[idx]`` (``_getitem``), ``x.at[idx].set/add/...`` (``_IndexUpdateHelper``),
take, take_along_axis (nonzero and sorting are in fgrad.numpy._sorting).

An index expression is first normalised into one entry per indexed axis (plus
``None`` entries). Basic indexing (static ints, slices, ``None``) becomes one
``rev`` + ``slice`` + ``reshape``; a traced scalar index becomes a
``dynamic_slice``; integer-array (advanced) indices become one ``gather`` whose
batch dimensions land where NumPy puts them: in place of the indexed axes if the
advanced indices are adjacent, else in front. Boolean masks must be concrete
(their result shape depends on their values).

Out-of-bounds indices (static ints, traced scalars, arrays; a negative one counts from the
end first) are clamped into range when reading (``.at[idx].get(mode="fill")`` gives a fill
value instead) and dropped when updating, as in JAX; only indexing an empty axis raises.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from fgrad import lax
from fgrad.core import dtypes
from fgrad.core.trace import ConcretizationError, Tracer, get_aval
from fgrad.numpy._math import clip, maximum, minimum, negative, power, reciprocal, remainder
from fgrad.numpy._util import (asarray, broadcast_shapes_for, broadcast_to_shape, canonical_axis, host_to_array,
                               is_array, reject_out, static_int, to_array)

__all__ = ["take", "take_along_axis", "index_exp", "s_"]

_INDEX_DTYPE = dtypes.int32


class _Entry(NamedTuple):
    """One normalised index entry: kind is 'slice', 'int', 'dyn' (traced scalar), 'adv'
    (integer array), 'none' (a new axis) or 'gap' (an ellipsis standing for no axes)."""
    kind: str
    value: Any = None


_INDEX_HELP = ("valid indices are ints, slices (:), ellipsis (...), None (fnp.newaxis), and integer "
               "or boolean arrays")


def _mask_error(what: str) -> ConcretizationError:
    return ConcretizationError(
        f"boolean mask indexing needs a concrete mask, but got {what}: the result's shape would "
        "depend on traced values. Use fnp.where(mask, x, fill) to keep the shape, or "
        "fnp.nonzero(mask, size=N) to get a fixed number of indices")


def _classify(item: Any) -> list[_Entry] | str:
    """Entries for one index item (a mask may give several); 'ellipsis' for ``...``."""
    if item is None:
        return [_Entry("none")]
    if item is Ellipsis:
        return "ellipsis"
    if isinstance(item, slice):
        return [_Entry("slice", _static_slice(item))]
    if type(item) is bool or isinstance(item, np.bool_):
        raise TypeError("indexing with a Python/NumPy bool scalar is not supported; use a boolean array "
                        "mask or fnp.where")
    if type(item) is int or isinstance(item, np.integer):
        return [_Entry("int", int(item))]
    if is_array(item):
        aval = get_aval(item)
        if aval.dtype == dtypes.bool_:
            return _mask_entries(_concrete_value(item, lambda: _mask_error(f"a traced mask {aval.str_short()}")))
        if aval.dtype.kind not in "iu":
            raise TypeError(f"indices must be integers, got an array of dtype {aval.dtype.name}; "
                            "convert with .astype(fnp.int32)")
        return [_Entry("dyn" if aval.ndim == 0 else "adv", item)]
    if isinstance(item, (list, tuple, np.ndarray)):
        if isinstance(item, (list, tuple)) and any(isinstance(v, Tracer) for v in _flat(item)):
            return _classify(asarray(item))
        host = np.asarray(item)
        if host.dtype == np.bool_:
            return _mask_entries(host)
        if host.size == 0:
            host = host.astype(np.int32)
        if host.dtype.kind not in "iu":
            raise TypeError(f"indices must be integers, got {item!r}; {_INDEX_HELP}")
        if host.ndim == 0:
            return [_Entry("int", int(host))]
        return [_Entry("adv", host_to_array(host, _INDEX_DTYPE))]
    if isinstance(item, float):
        raise TypeError(f"indices must be integers, got the float {item!r}; {_INDEX_HELP}")
    raise TypeError(f"{type(item).__name__} is not a valid index; {_INDEX_HELP}")


def _concrete_value(x: Any, error) -> np.ndarray:
    """The value of an Array, or of a tracer that knows it (e.g. under grad outside jit)."""
    try:
        return np.asarray(x)
    except ConcretizationError:
        raise error() from None


def _flat(items):
    for v in items:
        if isinstance(v, (list, tuple)):
            yield from _flat(v)
        else:
            yield v


def _mask_entries(mask: np.ndarray) -> list[_Entry]:
    if mask.ndim == 0:
        raise TypeError("indexing with a 0-d boolean mask is not supported; use fnp.where")
    return [_Entry("mask", mask)]


def _static_slice(s: slice) -> slice:
    def bound(v, name):
        if v is None:
            return None
        if isinstance(v, Tracer):
            raise TypeError(f"slice {name} must be static, but got a traced value; for a traced start "
                            "use fgrad.lax.dynamic_slice(x, starts, sizes) (or x[i] with a traced "
                            "integer i), and keep slice sizes static")
        return static_int("indexing", f"slice {name}", v)
    step = bound(s.step, "step")
    if step == 0:
        raise ValueError("slice step cannot be zero")
    return slice(bound(s.start, "start"), bound(s.stop, "stop"), step)


def _normalize(index: Any, shape: tuple[int, ...]) -> list[_Entry]:
    """One entry per axis of ``shape`` (masks expanded to one 'adv' entry per masked axis)."""
    items = index if isinstance(index, tuple) else (index,)
    flat: list = []
    for item in items:
        classified = _classify(item)
        if classified == "ellipsis":
            flat.append(classified)
        else:
            flat.extend(classified)
    if flat.count("ellipsis") > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    consumed = sum(_consumed(e) for e in flat if e != "ellipsis")
    if consumed > len(shape):
        raise IndexError(f"too many indices for array: array is {len(shape)}-dimensional, but "
                         f"{consumed} were indexed")
    fill = [_Entry("slice", slice(None))] * (len(shape) - consumed)
    if "ellipsis" in flat:
        at = flat.index("ellipsis")
        # an ellipsis standing for no axes still separates advanced indices (NumPy's rule)
        flat = flat[:at] + (fill or [_Entry("gap")]) + flat[at + 1:]
    else:
        flat = flat + fill
    return _expand_masks(flat, shape)


def _consumed(entry: _Entry) -> int:
    if entry.kind in ("none", "gap"):
        return 0
    if entry.kind == "mask":
        return entry.value.ndim
    return 1


def _expand_masks(entries: list[_Entry], shape: tuple[int, ...]) -> list[_Entry]:
    out, axis = [], 0
    for e in entries:
        if e.kind != "mask":
            out.append(e)
            axis += _consumed(e)
            continue
        mask = e.value
        covered = shape[axis:axis + mask.ndim]
        for i, (m, s) in enumerate(zip(mask.shape, covered)):
            if m != s:
                raise IndexError(f"boolean index did not match indexed array along axis {axis + i}; size "
                                 f"of axis is {s} but size of corresponding boolean axis is {m}")
        out.extend(_Entry("adv", host_to_array(ix, _INDEX_DTYPE)) for ix in np.nonzero(mask))
        axis += mask.ndim
    return out


# --- reading ---------------------------------------------------------------------------------------

def _getitem(x: Any, index: Any, mode: str | None = None, fill_value: Any = None) -> Any:
    """``x[index]`` with NumPy's semantics (see the module docstring).

    ``mode`` says what out-of-bounds array indices give: "clip" (default: clamped into
    range) or "fill" (``fill_value``, default NaN for floats and 0 otherwise).
    """
    x = to_array(x, "indexing")
    x, index = _zero_d_masks_as_new_axes(x, index)
    shape = get_aval(x).shape
    if mode == "drop":  # JAX's other name for "fill" when reading
        mode = "fill"
    if (type(index) is int or type(index) is slice) and shape and mode != "fill":
        return _index_leading_axis(x, index, shape)
    entries = _normalize(index, shape)
    adjacent = True
    # out-of-bounds scalars give the fill value only through gather's fill mode
    if any(e.kind == "adv" for e in entries) or (mode == "fill" and any(e.kind in ("int", "dyn") for e in entries)):
        entries = _scalars_as_advanced(entries, shape)
        positions = [i for i, e in enumerate(entries) if e.kind == "adv"]
        adjacent = positions == list(range(positions[0], positions[-1] + 1))
    y, entries = _basic(x, entries)
    if not any(e.kind == "adv" for e in entries):
        return y
    # JAX's default: read clamped, but the gradient drops out-of-bounds positions
    mode = mode or "promise_in_bounds"
    if mode not in ("clip", "fill", "promise_in_bounds"):
        raise ValueError(f"indexing: mode must be 'clip', 'fill' or 'drop', got {mode!r}")
    if mode == "fill" and fill_value is None:
        fill_value = _default_fill(get_aval(x).dtype)
    return _advanced(y, entries, adjacent, mode, fill_value)


def _zero_d_mask_value(item: Any) -> bool | None:
    """The value of a 0-d boolean mask array (concrete; a traced one raises), else None."""
    if is_array(item):
        aval = get_aval(item)
        if aval.dtype != dtypes.bool_ or aval.ndim != 0:
            return None
        return bool(_concrete_value(item, lambda: _mask_error(f"a traced mask {aval.str_short()}")))
    if isinstance(item, np.ndarray) and item.dtype == np.bool_ and item.ndim == 0:
        return bool(item)
    return None


def _axes_taken(item: Any) -> int:
    """How many axes of the array an index item consumes (a 0-d mask: its new axis)."""
    if item is None:
        return 0
    if is_array(item) and get_aval(item).dtype == dtypes.bool_:
        return max(get_aval(item).ndim, 1)
    if isinstance(item, (list, tuple)) and any(isinstance(v, Tracer) for v in _flat(item)):
        return 1   # traced integer indices (a traced mask cannot index)
    if isinstance(item, (np.ndarray, list, tuple)) and np.asarray(item).dtype == np.bool_:
        return max(np.asarray(item).ndim, 1)
    return 1


def _zero_d_masks_as_new_axes(x: Any, index: Any) -> tuple[Any, Any]:
    """NumPy's 0-d boolean mask: a new length-1 axis at its place, masked by ``[value]``
    (``np.array(5)[np.array(True)]`` is ``[5]``; with False it is empty)."""
    items = index if isinstance(index, tuple) else (index,)
    values = [_zero_d_mask_value(item) for item in items]
    if all(v is None for v in values):
        return x, index
    taken = [0 if item is Ellipsis else _axes_taken(item) for item in items]
    ndim = get_aval(x).ndim + sum(v is not None for v in values)
    at = next((i for i, item in enumerate(items) if item is Ellipsis), len(items))
    shape, new_axes = list(get_aval(x).shape), []
    for i, v in enumerate(values):
        if v is not None:
            new_axes.append(sum(taken[:i]) if i < at else ndim - sum(taken[i:]))
    for axis in sorted(new_axes):
        shape.insert(axis, 1)
    items = tuple(np.array([v]) if v is not None else item for item, v in zip(items, values))
    return lax.reshape(x, tuple(shape)), items


def _default_fill(dtype: np.dtype) -> Any:
    """JAX's fill for out-of-bounds reads: NaN for inexact dtypes, the most negative value for
    signed integers, the largest for unsigned ones, True for bool."""
    if dtype.kind == "b":
        return True
    if dtype.kind in "iu":
        return np.iinfo(dtype).min if dtype.kind == "i" else np.iinfo(dtype).max
    return np.nan


def _index_leading_axis(x: Any, index: int | slice, shape: tuple[int, ...]) -> Any:
    """The common ``x[i]`` / ``x[a:b:c]`` on the first axis, without the general machinery."""
    n, rest = shape[0], shape[1:]
    if type(index) is int:
        i = _static_clamped(index, n, 0)
        return lax.reshape(lax.slice(x, (i,) + (0,) * len(rest), (i + 1,) + rest), rest)
    start, limit, stride, flip = _slice_bounds(_static_slice(index), n)
    if flip:
        x = lax.rev(x, (0,))
    if (start, limit, stride) == (0, n, 1):
        return x
    zeros = (0,) * len(rest)
    return lax.slice(x, (start,) + zeros, (limit,) + rest, (stride,) + (1,) * len(rest) if stride != 1 else None)


def _static_clamped(i: int, n: int, axis: int) -> int:
    """A static index counted from the end if negative, then clamped into range (JAX's rule
    for reads); only an empty axis has nothing to clamp to."""
    if n == 0:
        raise IndexError(f"index {i} is out of bounds for axis {axis} with size 0")
    return min(max(i + n if i < 0 else i, 0), n - 1)


def _scalars_as_advanced(entries: list[_Entry], shape: tuple[int, ...]) -> list[_Entry]:
    """Next to array indices, NumPy treats scalar indices as 0-d advanced indices."""
    out = []
    for axis, e in _axis_entries_all(entries):
        if e.kind == "gap":
            pass
        elif e.kind == "int":
            if shape[axis] == 0:
                raise IndexError(f"index {e.value} is out of bounds for axis {axis} with size 0")
            e = _Entry("adv", np.int32(np.clip(e.value, -2**31, 2**31 - 1)))  # gather clamps or fills
        elif e.kind == "dyn":
            e = _Entry("adv", e.value)
        out.append(e)
    return out


def _axis_entries_all(entries: list[_Entry]) -> list[tuple[int | None, _Entry]]:
    """(axis or None for new axes, entry) for every entry, in order."""
    out, axis = [], 0
    for e in entries:
        if e.kind in ("none", "gap"):
            out.append((None, e))
        else:
            out.append((axis, e))
            axis += 1
    return out


def _axis_entries(entries: list[_Entry]) -> list[tuple[int, _Entry]]:
    """(axis of the operand, entry) for every entry that consumes an axis."""
    out, axis = [], 0
    for e in entries:
        if e.kind not in ("none", "gap"):
            out.append((axis, e))
            axis += 1
    return out


def _basic(x: Any, entries: list[_Entry]) -> tuple[Any, list[_Entry]]:
    """Apply static ints/slices, traced scalars and new axes; advanced entries keep their axis.

    Returns the result and the entries that remain (advanced ones and one slice entry per
    kept axis, with ``None`` axes now real size-1 axes).
    """
    shape = get_aval(x).shape
    starts, limits, strides, reversed_axes = [0] * len(shape), list(shape), [1] * len(shape), []
    dyn_axes: dict[int, Any] = {}
    out_dims: list[int] = []
    remaining: list[_Entry] = []
    for axis, e in _axis_entries(entries):
        n = shape[axis]
        if e.kind == "int":
            i = _static_clamped(e.value, n, axis)
            starts[axis], limits[axis] = i, i + 1
        elif e.kind == "dyn":
            dyn_axes[axis] = e.value
        elif e.kind == "slice":
            start, limit, stride, flip = _slice_bounds(e.value, n)
            starts[axis], limits[axis], strides[axis] = start, limit, stride
            if flip:
                reversed_axes.append(axis)
    if reversed_axes:
        x = lax.rev(x, tuple(reversed_axes))
    if starts != [0] * len(shape) or limits != list(shape) or strides != [1] * len(shape):
        x = lax.slice(x, tuple(starts), tuple(limits), tuple(strides) if any(s != 1 for s in strides) else None)
    if dyn_axes:
        x = _dynamic_index(x, dyn_axes)
    sliced = get_aval(x).shape
    axis_iter = iter(_axis_entries(entries))
    for e in entries:
        if e.kind == "gap":
            continue
        if e.kind == "none":
            out_dims.append(1)
            remaining.append(_Entry("slice", slice(None)))
            continue
        axis, _ = next(axis_iter)
        if e.kind in ("int", "dyn"):
            continue
        out_dims.append(sliced[axis])
        remaining.append(e if e.kind == "adv" else _Entry("slice", slice(None)))
    out_dims = tuple(out_dims)
    if get_aval(x).shape != out_dims:
        x = lax.reshape(x, out_dims)
    return x, remaining


def _slice_bounds(s: slice, n: int) -> tuple[int, int, int, bool]:
    """(start, limit, stride, reversed first?) of a static slice over an axis of size ``n``."""
    start, stop, step = s.indices(n)
    length = len(range(start, stop, step))
    if step > 0:
        return start, start + max(0, (length - 1) * step + 1), step, False
    start = n - 1 - start  # position in the reversed axis
    return start, start + max(0, (length - 1) * -step + 1), -step, True


def _wrap_negative(i: Any, n: int) -> Any:
    """``i + n`` where ``i < 0`` (NumPy's negative indices), for traced/array indices, as int32.
    An unsigned index is first capped at ``n`` (still out of bounds, but no longer able to
    turn negative in int32)."""
    i = to_array(i)
    aval = get_aval(i)
    if aval.dtype.kind == "u" and n <= np.iinfo(aval.dtype).max:
        i = lax.min(i, aval.dtype.type(n))
    if aval.dtype != _INDEX_DTYPE:
        i = lax.convert_element_type(i, _INDEX_DTYPE)
    if aval.dtype.kind == "u":
        return i
    zero = _INDEX_DTYPE.type(0)
    return lax.select_n(lax.lt(i, zero), i, lax.add(i, _INDEX_DTYPE.type(n)))


def _dynamic_index(x: Any, dyn_axes: dict[int, Any]) -> Any:
    shape = get_aval(x).shape
    starts = [_wrap_negative(dyn_axes[a], shape[a]) if a in dyn_axes else _INDEX_DTYPE.type(0)
              for a in range(len(shape))]
    sizes = [1 if a in dyn_axes else shape[a] for a in range(len(shape))]
    return lax.dynamic_slice(x, starts, sizes, allow_negative_indices=False)  # wrapped once, above


def _advanced(y: Any, entries: list[_Entry], adjacent: bool, mode: str = "clip", fill_value: Any = None) -> Any:
    """Gather for the advanced entries; every entry now corresponds to one axis of ``y``."""
    shape = get_aval(y).shape
    adv_axes = [a for a, e in enumerate(entries) if e.kind == "adv"]
    indices = [_wrap_negative(entries[a].value, shape[a]) for a in adv_axes]
    try:
        batch = broadcast_shapes_for("indexing", *[get_aval(i).shape for i in indices])
    except TypeError:
        shown = " ".join(str(get_aval(i).shape) for i in indices)
        raise IndexError(f"shape mismatch: indexing arrays could not be broadcast together with shapes "
                         f"{shown}") from None
    n_batch = 1
    for s in batch:
        n_batch *= s
    for a in adv_axes:
        if shape[a] == 0 and n_batch and mode != "fill":
            raise IndexError(f"index is out of bounds for axis {a} with size 0")
    stacked = _stack_indices(indices, batch)
    gathered = lax.gather(y, stacked, tuple(adv_axes), mode=mode, fill_value=fill_value)
    first = adv_axes[0]
    if not adjacent or first == 0:
        return gathered  # NumPy: non-adjacent advanced indices put the batch dims first
    nb = len(batch)
    kept = get_aval(gathered).ndim - nb
    perm = (*range(nb, nb + first), *range(nb), *range(nb + first, nb + kept))
    return lax.transpose(gathered, perm)


def _stack_indices(indices: list[Any], batch: tuple[int, ...]) -> Any:
    """Broadcast index arrays to ``batch`` and stack them on a new last axis."""
    cols = [lax.reshape(broadcast_to_shape(i, batch), batch + (1,)) for i in indices]
    return cols[0] if len(cols) == 1 else lax.concatenate(cols, len(batch))


# --- updating: x.at[idx] -------------------------------------------------------------------------------

class _IndexUpdateHelper:
    """``x.at``: index it to get an updater, e.g. ``x.at[0, 1:].set(v)``."""

    __slots__ = ("array",)

    def __init__(self, array: Any):
        self.array = array

    def __getitem__(self, index: Any) -> "_IndexUpdateRef":
        return _IndexUpdateRef(self.array, index)

    def __repr__(self) -> str:
        return f"_IndexUpdateHelper({self.array!r})"


class _IndexUpdateRef:
    """``x.at[idx]``: functional in-place updates; each method returns a new array.

    Repeated indices accumulate for add/multiply/min/max; for set, one of the writes wins.
    Updates at out-of-bounds array indices are dropped.
    """

    __slots__ = ("array", "index")

    def __init__(self, array: Any, index: Any):
        self.array = array
        self.index = index

    def get(self, *, indices_are_sorted=False, unique_indices=False, mode=None, fill_value=None) -> Any:
        """``x[idx]``; ``mode="fill"`` gives ``fill_value`` for out-of-bounds array indices."""
        return _getitem(self.array, self.index, mode, fill_value)

    # JAX's update signature: ``indices_are_sorted`` and ``unique_indices`` are hints (the
    # result is the same without them); ``mode`` says what out-of-bounds indices do: None,
    # "drop", "fill" or "promise_in_bounds" drop the update there, "clip" clamps the index.
    def set(self, values: Any, *, indices_are_sorted=False, unique_indices=False, mode=None) -> Any:
        """``x`` with ``x[idx]`` replaced by ``values``."""
        return _update(self.array, self.index, values, "set", mode)

    def add(self, values: Any, *, indices_are_sorted=False, unique_indices=False, mode=None) -> Any:
        """``x`` with ``values`` added at ``x[idx]`` (repeated indices add up)."""
        return _update(self.array, self.index, values, "add", mode)

    def subtract(self, values: Any, *, indices_are_sorted=False, unique_indices=False, mode=None) -> Any:
        """``x`` with ``values`` subtracted at ``x[idx]``."""
        return _update(self.array, self.index, negative(values), "add", mode)

    def multiply(self, values: Any, *, indices_are_sorted=False, unique_indices=False, mode=None) -> Any:
        """``x`` with ``x[idx]`` multiplied by ``values``."""
        return _update(self.array, self.index, values, "mul", mode)

    mul = multiply

    def divide(self, values: Any, *, indices_are_sorted=False, unique_indices=False, mode=None) -> Any:
        """``x`` with ``x[idx]`` divided by ``values`` (floating-point arrays)."""
        if not dtypes.is_float(get_aval(self.array).dtype):
            raise TypeError("at[...].divide needs a floating-point array; use .set(x[idx] // v) for integers")
        return _update(self.array, self.index, reciprocal(values), "mul", mode)

    def power(self, values: Any, *, indices_are_sorted=False, unique_indices=False, mode=None) -> Any:
        """``x`` with ``x[idx]`` raised to ``values``; as in JAX, ``x ** e`` with ``e`` the product
        of the exponents scattered at each element (repeated indices multiply their exponents)."""
        exponents = _update(lax.full_like(self.array, 1), self.index, values, "mul", mode)
        return power(self.array, exponents)

    def min(self, values: Any, *, indices_are_sorted=False, unique_indices=False, mode=None) -> Any:
        """``x`` with ``x[idx] = minimum(x[idx], values)``."""
        return _update(self.array, self.index, values, "min", mode)

    def max(self, values: Any, *, indices_are_sorted=False, unique_indices=False, mode=None) -> Any:
        """``x`` with ``x[idx] = maximum(x[idx], values)``."""
        return _update(self.array, self.index, values, "max", mode)

    def apply(self, func, *, indices_are_sorted=False, unique_indices=False, mode=None) -> Any:
        """``x`` with the elementwise ``func`` applied at ``x[idx]``, once per occurrence of an
        index: a repeated index applies it repeatedly, as JAX's ``scatter_apply``."""
        counts = _update(lax.full(get_aval(self.array).shape, 0, _INDEX_DTYPE), self.index,
                         _INDEX_DTYPE.type(1), "add", mode)
        most = lax.reduce_max(counts, tuple(range(get_aval(counts).ndim)))
        dtype = get_aval(self.array).dtype

        def once_more(carry):
            k, y = carry
            fy = lax.convert_element_type(to_array(func(y), "at[...].apply"), dtype)
            return lax.add(k, _INDEX_DTYPE.type(1)), lax.select_n(lax.gt(counts, k), y, fy)

        k0 = lax.full((), 0, _INDEX_DTYPE)
        return lax.while_loop(lambda carry: lax.lt(carry[0], most), once_more, (k0, self.array))[1]

    def _read(self, mode: str | None) -> Any:
        """``x[idx]`` as an update reads it (clamped; "clip" is also how it will be written)."""
        _check_update_mode(mode)
        return _getitem(self.array, self.index, "clip" if mode == "clip" else None)

    def __repr__(self) -> str:
        return f"_IndexUpdateRef({self.array!r}, {self.index!r})"


def _update_values(x: Any, values: Any, target_shape: tuple[int, ...]) -> Any:
    """``values`` converted to ``x``'s dtype and broadcast to the indexed shape."""
    dtype = get_aval(x).dtype
    values = to_array(values, "at[...]")
    if get_aval(values).dtype != dtype:
        values = lax.convert_element_type(values, dtype)
    vshape = get_aval(values).shape
    # NumPy lets the values carry extra leading size-1 axes
    while len(vshape) > len(target_shape) and vshape[0] == 1:
        vshape = vshape[1:]
        values = lax.reshape(values, vshape)
    try:
        ok = broadcast_shapes_for("at[...]", vshape, target_shape) == target_shape
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"at[...]: cannot broadcast update values of shape {get_aval(values).shape} to "
                         f"the indexed shape {target_shape}")
    return broadcast_to_shape(values, target_shape)


_COMBINE = {"add": lax.add, "mul": lax.mul, "min": lax.min, "max": lax.max}


def _combine(kind: str, current: Any, update: Any) -> Any:
    """``current`` combined with ``update`` as a scatter of mode ``kind`` would (complex max/min:
    lexicographic, as JAX's scatters)."""
    if kind in ("max", "min") and dtypes.is_complex(get_aval(current).dtype):
        return (maximum if kind == "max" else minimum)(current, update)
    return _COMBINE[kind](current, update)


_UPDATE_MODES = (None, "drop", "fill", "promise_in_bounds", "clip")


def _check_update_mode(mode: str | None) -> None:
    if mode not in _UPDATE_MODES:
        raise ValueError(f"at[...]: mode must be None, 'drop', 'fill', 'promise_in_bounds' or 'clip', "
                         f"got {mode!r}")


def _update(x: Any, index: Any, values: Any, kind: str, mode: str | None = None) -> Any:
    """``x`` updated at ``x[index]``; out-of-bounds indices drop their update, or with ``mode``
    "clip" are clamped into range (JAX's modes)."""
    _check_update_mode(mode)
    x = to_array(x, "at[...]")
    shape = get_aval(x).shape
    entries = _normalize(index, shape)
    window = all(e.kind in ("none", "gap", "int", "dyn") or (e.kind == "slice" and _unit_step(e.value))
                 for e in entries)
    if window and mode != "clip":
        return _update_window(x, entries, values, kind)
    return _update_scatter(x, index, values, kind, clip=mode == "clip")


def _unit_step(s: slice) -> bool:
    return s.step is None or s.step == 1


def _update_window(x: Any, entries: list[_Entry], values: Any, kind: str) -> Any:
    """Update a contiguous box (static/traced starts, unit steps) with dynamic_update_slice."""
    shape = get_aval(x).shape
    starts, sizes = [], []
    result_shape = []
    in_bounds = []  # of the traced indices: an update at an out-of-bounds one is dropped
    dropped = False  # a static index is out of bounds
    axis_iter = iter(_axis_entries(entries))
    for e in entries:
        if e.kind == "gap":
            continue
        if e.kind == "none":
            result_shape.append(1)
            continue
        axis, _ = next(axis_iter)
        n = shape[axis]
        if e.kind == "int":
            i = e.value + n if e.value < 0 else e.value
            if not 0 <= i < n:  # JAX drops the update
                dropped, i = True, 0
            starts.append(_INDEX_DTYPE.type(i))
            sizes.append(1)
        elif e.kind == "dyn":
            start = _wrap_negative(e.value, n)
            in_bounds.append(lax.bitwise_and(lax.ge(start, _INDEX_DTYPE.type(0)), lax.lt(start, _INDEX_DTYPE.type(n))))
            starts.append(start)
            sizes.append(1)
        else:
            start, limit, _, _ = _slice_bounds(e.value, n)
            starts.append(_INDEX_DTYPE.type(start))
            sizes.append(limit - start)
            result_shape.append(limit - start)
    update = _update_values(x, values, tuple(result_shape))
    if dropped or 0 in sizes:
        return x
    update = lax.reshape(update, tuple(sizes))
    if kind != "set":
        current = lax.dynamic_slice(x, starts, sizes, allow_negative_indices=False)
        update = _combine(kind, current, update)
    out = lax.dynamic_update_slice(x, update, starts, allow_negative_indices=False)
    for ok in in_bounds:
        out = lax.select_n(ok, x, out)
    return out


def _update_scatter(x: Any, index: Any, values: Any, kind: str, clip: bool = False) -> Any:
    """General updates: scatter into the flattened array at the flat positions ``x[index]``
    names (out-of-bounds array indices read as -1 there, so the scatter drops them; with
    ``clip``, they read as the clamped position)."""
    aval = get_aval(x)
    iota = lax.reshape(_iota(aval.size), aval.shape)
    positions = _getitem(iota, index, "clip") if clip else _getitem(iota, index, "fill", -1)
    target = get_aval(positions).shape
    update = _update_values(x, values, target)
    m = get_aval(positions).size
    flat_x = lax.reshape(x, (aval.size,))
    flat_pos = lax.reshape(positions, (m, 1))
    flat_upd = lax.reshape(update, (m,))
    return lax.reshape(lax.scatter(flat_x, flat_pos, flat_upd, (0,), mode=kind), aval.shape)


def _iota(n: int) -> Any:
    return lax.iota(_INDEX_DTYPE, n)


def _flatten(a: Any) -> Any:
    """``fnp.ravel(a)`` (fgrad.numpy._manip builds on this module, so it cannot be imported here)."""
    return lax.reshape(a, (get_aval(a).size,))


# --- take, take_along_axis --------------------------------------------------------------------------------

def take(a, indices, axis: int | None = None, out=None, mode: str | None = None, unique_indices: bool = False,
         indices_are_sorted: bool = False, fill_value=None):
    """Elements of ``a`` at ``indices`` along ``axis`` (of the flattened array when None).
    ``unique_indices`` and ``indices_are_sorted`` are JAX's promises about ``indices`` for its
    compiler; fgrad's answer does not depend on them.

    As in JAX: with mode None or 'fill', negative indices count from the end and
    out-of-range ones give ``fill_value`` (default NaN for floats, the most negative integer
    for signed ints, the largest for unsigned, True for bool); 'clip' clamps without
    wrapping negatives (NumPy's 'clip'); 'wrap' wraps around. 'raise' is not supported
    (the indices may be traced).
    """
    reject_out("take", out)
    a = to_array(a, "take")
    if axis is None:
        a, axis = _flatten(a), 0
    aval = get_aval(a)
    axis = canonical_axis("take", axis, aval.ndim)
    indices = to_array(indices, "take")
    if get_aval(indices).dtype.kind not in "iu":
        raise TypeError(f"take: indices must be integers, got {get_aval(indices).str_short()}")
    n = aval.shape[axis]
    if n == 0 and get_aval(indices).size:
        raise IndexError(f"take: cannot take {get_aval(indices).size} elements from axis {axis} of an array of "
                         f"shape {aval.shape}, which is empty (as in JAX); index a non-empty axis")
    if mode == "wrap":
        indices = remainder(indices, n)
    elif mode == "clip":
        indices = clip(indices, 0, max(n - 1, 0))
    elif mode == "raise":
        raise NotImplementedError("take: mode='raise' is not supported (as in JAX): indices may be traced; "
                                  "use mode='fill' (the default), 'clip' or 'wrap'")
    elif mode not in (None, "fill"):
        raise ValueError(f"take: mode must be None, 'fill', 'clip' or 'wrap', got {mode!r}")
    read_mode = "fill" if mode in (None, "fill") else "clip"
    if get_aval(indices).ndim == 0:
        indices = lax.reshape(indices, (1,))
        out_arr = _getitem(a, (slice(None),) * axis + (indices,), read_mode, fill_value)
        return lax.squeeze(out_arr, (axis,))
    return _getitem(a, (slice(None),) * axis + (indices,), read_mode, fill_value)


def take_along_axis(arr, indices, axis: int | None = -1, mode: str | None = None, fill_value=None, *,
                    wrap_negative_indices: bool | None = None):
    """``arr`` indexed by ``indices`` along ``axis``, matching the other axes elementwise
    (the inverse of ``argsort``-style index arrays).

    As in JAX, negative indices count from the end; out-of-range ones give ``fill_value``
    with mode None or 'fill' (defaults as in ``take``), are clamped with 'clip', and with
    'promise_in_bounds' are clamped without wrapping negatives first.
    ``wrap_negative_indices=False`` counts negative indices as out of range, whatever the mode."""
    arr = to_array(arr, "take_along_axis")
    indices = to_array(indices, "take_along_axis")
    if axis is None:
        arr, axis = _flatten(arr), 0
        if get_aval(indices).ndim != 1:
            raise ValueError("take_along_axis: with axis=None, indices must be 1-D")
    aval, iaval = get_aval(arr), get_aval(indices)
    if iaval.dtype.kind not in "iu":
        raise TypeError(f"take_along_axis: indices must be integers, got {iaval.str_short()}")
    if aval.ndim != iaval.ndim:
        raise TypeError(f"take_along_axis: indices (shape {iaval.shape}) and arr (shape {aval.shape}) must "
                        "have the same number of dimensions")
    axis = canonical_axis("take_along_axis", axis, aval.ndim)
    if mode not in (None, "fill", "clip", "promise_in_bounds"):
        raise ValueError(f"take_along_axis: mode must be None, 'fill', 'clip' or 'promise_in_bounds', "
                         f"got {mode!r}")
    if (mode == "promise_in_bounds" or wrap_negative_indices is False) and iaval.dtype.kind == "i":
        # JAX does not wrap negatives here: keep them out of bounds through _getitem's wrap
        # (-n - 1 wraps to -1), so they read clamped to 0 and drop their gradient
        indices = lax.convert_element_type(indices, _INDEX_DTYPE)
        below = lax.full_like(indices, -aval.shape[axis] - 1)
        indices = lax.select_n(lax.lt(indices, lax.full_like(indices, 0)), indices, below)
    index = []
    for d in range(aval.ndim):
        if d == axis:
            index.append(indices)
            continue
        shape = [1] * aval.ndim
        shape[d] = aval.shape[d]
        index.append(lax.reshape(_iota(shape[d]), tuple(shape)))
    return _getitem(arr, tuple(index), "fill" if mode in (None, "fill") else mode, fill_value)


class _IndexExpression:
    """``fnp.s_[1:3, None]`` builds the index tuple ``(slice(1, 3), None)``."""

    def __init__(self, maketuple: bool):
        self.maketuple = maketuple

    def __getitem__(self, item):
        if self.maketuple and not isinstance(item, tuple):
            return (item,)
        return item


index_exp = _IndexExpression(maketuple=True)
s_ = _IndexExpression(maketuple=False)
