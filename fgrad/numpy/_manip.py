"""Shape manipulation: reshape, transpose, squeeze, concatenate, stack, split, tile, repeat,
pad, flip, roll, tril/triu, diagonal..."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from fgrad import lax
from fgrad.core import dtypes
from fgrad.core.trace import Tracer, get_aval
from fgrad.numpy._indexing import take
from fgrad.numpy._math import remainder, subtract
from fgrad.numpy._util import (broadcast_shapes_for, broadcast_to_shape, canonical_axes, canonical_axis,
                               check_same_rank_and_shape, is_array, join_arrays, normalize_shape,
                               static_int, to_array)

__all__ = [
    "reshape", "ravel", "transpose", "permute_dims", "matrix_transpose", "moveaxis", "swapaxes",
    "squeeze", "expand_dims", "broadcast_to", "broadcast_arrays", "broadcast_shapes", "concatenate",
    "concat", "stack", "unstack", "hstack", "vstack", "dstack", "column_stack", "atleast_1d", "atleast_2d",
    "atleast_3d", "split", "array_split", "tile", "repeat", "flip", "fliplr", "flipud", "roll",
    "rot90", "tril", "triu", "diagonal", "diag", "ndim", "shape", "size", "isscalar",
]


def ndim(a) -> int:
    """Number of dimensions of ``a``."""
    return get_aval(to_array(a, "ndim")).ndim


def shape(a) -> tuple[int, ...]:
    """Shape of ``a``."""
    return get_aval(to_array(a, "shape")).shape


def size(a, axis: int | None = None) -> int:
    """Number of elements of ``a`` (along ``axis`` if given)."""
    aval = get_aval(to_array(a, "size"))
    return aval.size if axis is None else aval.shape[canonical_axis("size", axis, aval.ndim)]


def isscalar(element: Any) -> bool:
    """``jnp.isscalar(element)``: True for what ``np.isscalar`` accepts (Python and NumPy scalars,
    strings) and for zero-dimensional arrays, fgrad's, NumPy's and tracers alike (so the answer is
    the same under ``jit``); False for anything else."""
    if np.isscalar(element):
        return True
    if isinstance(element, np.ndarray):
        return element.ndim == 0
    if is_array(element):
        return get_aval(element).ndim == 0
    if hasattr(element, "__jax_array__"):
        return np.ndim(element.__jax_array__()) == 0
    return False


# --- reshaping -------------------------------------------------------------------------------------

def _resolve_shape(op: str, size: int, in_shape: tuple[int, ...], newshape: Any) -> tuple[int, ...]:
    dims = list(newshape) if isinstance(newshape, (list, tuple)) else [newshape]
    dims = [static_int(op, "shape", d) for d in dims]
    unknown = [i for i, d in enumerate(dims) if d == -1]
    if len(unknown) > 1:
        raise ValueError(f"{op}: can only specify one unknown dimension (-1), got {tuple(dims)}")
    if any(d < -1 for d in dims):
        raise ValueError(f"{op}: invalid dimension in shape {tuple(dims)}")
    known = int(np.prod([d for d in dims if d != -1], dtype=np.int64))
    if unknown:
        if known == 0 or size % known:
            raise TypeError(f"{op}: cannot reshape an array of shape {in_shape} (size {size}) into shape "
                            f"{tuple(dims)}; the sizes must multiply to {size}")
        dims[unknown[0]] = size // known
    elif known != size:
        raise TypeError(f"{op}: cannot reshape an array of shape {in_shape} (size {size}) into shape "
                        f"{tuple(dims)}; the sizes must multiply to {size}")
    return tuple(dims)


def reshape(a, shape=None, order: str = "C", *, newshape=None, copy=None):
    """``a`` with a new shape (one dimension may be -1); ``order='F'`` reads column-major."""
    if shape is None:
        shape = newshape
    a = to_array(a, "reshape")
    aval = get_aval(a)
    dims = _resolve_shape("reshape", aval.size, aval.shape, shape)
    if order == "C":
        return lax.reshape(a, dims)
    if order == "F":
        flipped = lax.reshape(transpose(a), tuple(reversed(dims)))
        return transpose(flipped)
    raise ValueError(f"reshape: order must be 'C' or 'F', got {order!r}")


def ravel(a, order: str = "C"):
    """The elements of ``a`` as a 1-D array."""
    a = to_array(a, "ravel")
    return reshape(a, (get_aval(a).size,), order=order)


def transpose(a, axes: Sequence[int] | None = None):
    """Permute the axes of ``a`` (reverse them when ``axes`` is None)."""
    a = to_array(a, "transpose")
    nd = get_aval(a).ndim
    if axes is None:
        return lax.transpose(a, tuple(reversed(range(nd))))
    axes = tuple(canonical_axis("transpose", ax, nd) for ax in axes)
    if sorted(axes) != list(range(nd)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of the {nd} axes of the array")
    return lax.transpose(a, axes)


def permute_dims(a, axes):
    """Array-API name of ``transpose``."""
    return transpose(a, axes)


def matrix_transpose(x, /):
    """Swap the last two axes."""
    x = to_array(x, "matrix_transpose")
    if get_aval(x).ndim < 2:
        raise ValueError("matrix_transpose: needs an array of rank >= 2")
    return swapaxes(x, -1, -2)


def _axis_list(op: str, axes: Any, ndim: int) -> list[int]:
    axes = list(axes) if isinstance(axes, (list, tuple)) else [axes]
    out = [canonical_axis(op, a, ndim) for a in axes]
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axes}")
    return out


def moveaxis(a, source, destination):
    """Move axes ``source`` to positions ``destination`` (the others keep their order)."""
    a = to_array(a, "moveaxis")
    nd = get_aval(a).ndim
    src, dst = _axis_list("moveaxis", source, nd), _axis_list("moveaxis", destination, nd)
    if len(src) != len(dst):
        raise ValueError(f"moveaxis: source {source} and destination {destination} must have the "
                         "same number of elements")
    order = [i for i in range(nd) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return lax.transpose(a, tuple(order))


def swapaxes(a, axis1: int, axis2: int):
    """Interchange two axes."""
    a = to_array(a, "swapaxes")
    nd = get_aval(a).ndim
    i, j = canonical_axis("swapaxes", axis1, nd), canonical_axis("swapaxes", axis2, nd)
    perm = list(range(nd))
    perm[i], perm[j] = perm[j], perm[i]
    return lax.transpose(a, tuple(perm))


def squeeze(a, axis=None):
    """Remove size-1 axes (all of them when ``axis`` is None)."""
    a = to_array(a, "squeeze")
    aval = get_aval(a)
    if axis is None:
        axes = tuple(i for i, s in enumerate(aval.shape) if s == 1)
    else:
        axes = canonical_axes("squeeze", axis, aval.ndim)
        bad = [i for i in axes if aval.shape[i] != 1]
        if bad:
            raise ValueError(f"squeeze: cannot select an axis to squeeze out which has size not equal "
                             f"to one (axis {bad[0]} of shape {aval.shape})")
    if not axes:
        return a
    return lax.squeeze(a, axes)


def expand_dims(a, axis):
    """Insert size-1 axes at positions ``axis`` (an int or a tuple) of the result."""
    a = to_array(a, "expand_dims")
    aval = get_aval(a)
    out_ndim = aval.ndim + (len(axis) if isinstance(axis, (list, tuple)) else 1)
    axes = canonical_axes("expand_dims", axis, out_ndim)
    return lax.expand_dims(a, axes)


def broadcast_shapes(*shapes) -> tuple[int, ...]:
    """The shape that ``shapes`` broadcast to."""
    return broadcast_shapes_for("broadcast_shapes", *[normalize_shape("broadcast_shapes", s) for s in shapes])


def broadcast_to(array, shape):
    """``array`` broadcast to ``shape`` (NumPy's rules: trailing axes align, size 1 stretches)."""
    array = to_array(array, "broadcast_to")
    aval = get_aval(array)
    shape = normalize_shape("broadcast_to", shape)
    compatible = len(shape) >= aval.ndim and all(
        s in (1, t) for s, t in zip(aval.shape[::-1], shape[::-1]))
    if not compatible:
        raise TypeError(f"broadcast_to: cannot broadcast an array of shape {aval.shape} to shape {shape}; "
                        "each dimension must match or be 1 in the array")
    return broadcast_to_shape(array, shape)


def broadcast_arrays(*args) -> list:
    """The arrays broadcast against each other."""
    arrays = [to_array(a, "broadcast_arrays") for a in args]
    shape = broadcast_shapes_for("broadcast_arrays", *[get_aval(a).shape for a in arrays])
    return [broadcast_to_shape(a, shape) for a in arrays]


# --- joining and splitting ---------------------------------------------------------------------------

def _array_sequence(name: str, arrays) -> list:
    """The arrays of a joining function's first argument: a list or tuple of arrays, or an array
    (its rows, as NumPy does); anything else is a TypeError saying so."""
    if is_array(arrays):
        if get_aval(arrays).ndim == 0:
            raise TypeError(f"{name}: expected a sequence of arrays, got a 0-d array")
        return [arrays[i] for i in range(get_aval(arrays).shape[0])]
    if isinstance(arrays, (str, bytes, dict)) or not hasattr(arrays, "__iter__"):
        raise TypeError(f"{name}: expected a sequence of arrays (a list or tuple), got "
                        f"{type(arrays).__name__}; e.g. fnp.{name}([a, b])")
    return list(arrays)


def concatenate(arrays, axis: int | None = 0, dtype=None):
    """Join arrays along an existing axis (flattened first when ``axis`` is None)."""
    arrays = _array_sequence("concatenate", arrays)
    if not arrays:
        raise ValueError("concatenate: need at least one array to concatenate")
    arrays = [to_array(a, "concatenate") for a in arrays]
    if axis is None:
        arrays = [ravel(a) for a in arrays]
        axis = 0
    if any(get_aval(a).ndim == 0 for a in arrays):
        raise ValueError("concatenate: zero-dimensional arrays cannot be concatenated; use fnp.stack")
    return join_arrays(arrays, axis, dtype)


concat = concatenate


def stack(arrays, axis: int = 0, dtype=None):
    """Join arrays of one shape along a new axis."""
    arrays = [to_array(a, "stack") for a in _array_sequence("stack", arrays)]
    if not arrays:
        raise ValueError("stack: need at least one array to stack")
    check_same_rank_and_shape("stack", arrays, None)
    axis = canonical_axis("stack", axis, get_aval(arrays[0]).ndim + 1)
    return concatenate([expand_dims(a, axis) for a in arrays], axis=axis, dtype=dtype)


def unstack(x, /, *, axis: int = 0) -> tuple:
    """The array API's ``unstack``: the slices of ``x`` along ``axis``, as a tuple (the inverse of
    ``stack``)."""
    x = to_array(x, "unstack")
    aval = get_aval(x)
    if aval.ndim == 0:
        raise ValueError("unstack: x must have at least one dimension, got a 0-d array")
    axis = canonical_axis("unstack", axis, aval.ndim)
    return tuple(lax.squeeze(_slice_axis(x, axis, i, i + 1), (axis,)) for i in range(aval.shape[axis]))


def atleast_1d(*arys):
    """Views with at least one dimension (a list when given several arrays)."""
    out = [reshape(a, (1,)) if get_aval(to_array(a)).ndim == 0 else to_array(a) for a in arys]
    return out[0] if len(out) == 1 else out


def atleast_2d(*arys):
    """Arrays with at least two dimensions (1-D ``(n,)`` becomes ``(1, n)``)."""
    out = []
    for a in arys:
        a = to_array(a)
        nd = get_aval(a).ndim
        out.append(a if nd >= 2 else reshape(a, (1, -1) if nd == 1 else (1, 1)))
    return out[0] if len(out) == 1 else out


def atleast_3d(*arys):
    """Arrays with at least three dimensions (``(n,)`` → ``(1, n, 1)``, ``(m, n)`` → ``(m, n, 1)``)."""
    out = []
    for a in arys:
        a = to_array(a)
        s = get_aval(a).shape
        if len(s) == 0:
            a = reshape(a, (1, 1, 1))
        elif len(s) == 1:
            a = reshape(a, (1, s[0], 1))
        elif len(s) == 2:
            a = reshape(a, (*s, 1))
        out.append(a)
    return out[0] if len(out) == 1 else out


def hstack(tup, dtype=None):
    """Concatenate along axis 1 (axis 0 for 1-D arrays)."""
    arrays = [atleast_1d(a) for a in _array_sequence("hstack", tup)]
    if not arrays:
        raise ValueError("hstack: need at least one array to stack")
    return concatenate(arrays, axis=0 if get_aval(arrays[0]).ndim == 1 else 1, dtype=dtype)


def vstack(tup, dtype=None):
    """Concatenate along axis 0, treating 1-D arrays as rows."""
    return concatenate([atleast_2d(a) for a in _array_sequence("vstack", tup)], axis=0, dtype=dtype)


def dstack(tup, dtype=None):
    """Concatenate along axis 2 (arrays lifted to 3-D first)."""
    return concatenate([atleast_3d(a) for a in _array_sequence("dstack", tup)], axis=2, dtype=dtype)


def column_stack(tup):
    """Stack 1-D arrays as columns of a 2-D array."""
    arrays = []
    for a in _array_sequence("column_stack", tup):
        a = to_array(a)
        arrays.append(reshape(a, (-1, 1)) if get_aval(a).ndim < 2 else a)
    return concatenate(arrays, axis=1)


def _slice_axis(a, axis: int, start: int, stop: int, step: int = 1):
    aval = get_aval(a)
    starts = [0] * aval.ndim
    limits = list(aval.shape)
    strides = [1] * aval.ndim
    starts[axis], limits[axis], strides[axis] = start, stop, step
    if starts == [0] * aval.ndim and limits == list(aval.shape) and step == 1:
        return a
    return lax.slice(a, tuple(starts), tuple(limits), tuple(strides) if step != 1 else None)


def _split_points(op: str, n: int, indices_or_sections: Any, equal: bool) -> list[int]:
    if isinstance(indices_or_sections, (list, tuple, np.ndarray)) or is_array(indices_or_sections):
        points = [static_int(op, "indices", i) for i in np.asarray(indices_or_sections).reshape(-1)]
        return [min(max(p + n if p < 0 else p, 0), n) for p in points]
    sections = static_int(op, "sections", indices_or_sections)
    if sections <= 0:
        raise ValueError(f"{op}: number of sections must be larger than 0, got {sections}")
    if equal and n % sections:
        raise ValueError(f"{op}: array split does not result in an equal division ({n} elements into "
                         f"{sections} sections); use fnp.array_split for unequal parts")
    base, extra = divmod(n, sections)
    sizes = [base + 1] * extra + [base] * (sections - extra)
    return list(np.cumsum(sizes)[:-1])


def _split(op: str, ary, indices_or_sections, axis, equal: bool) -> list:
    ary = to_array(ary, op)
    aval = get_aval(ary)
    axis = canonical_axis(op, axis, aval.ndim)
    n = aval.shape[axis]
    bounds = [0, *_split_points(op, n, indices_or_sections, equal), n]
    return [_slice_axis(ary, axis, lo, max(lo, hi)) for lo, hi in zip(bounds[:-1], bounds[1:])]


def split(ary, indices_or_sections, axis: int = 0) -> list:
    """Split into equal sections (an int) or at the given indices (a sequence)."""
    return _split("split", ary, indices_or_sections, axis, equal=True)


def array_split(ary, indices_or_sections, axis: int = 0) -> list:
    """Like ``split``, but sections may differ in size by one."""
    return _split("array_split", ary, indices_or_sections, axis, equal=False)


def tile(A, reps):
    """Repeat the whole of ``A`` ``reps`` times along each axis."""
    A = to_array(A, "tile")
    reps = tuple(static_int("tile", "reps", r) for r in (reps if isinstance(reps, (list, tuple)) else (reps,)))
    aval = get_aval(A)
    nd = max(aval.ndim, len(reps))
    reps = (1,) * (nd - len(reps)) + reps
    shape = (1,) * (nd - aval.ndim) + aval.shape
    interleaved = tuple(x for pair in zip(reps, shape) for x in pair)
    expanded = lax.reshape(A, tuple(x for s in shape for x in (1, s)))
    tiled = lax.broadcast_in_dim(expanded, interleaved, tuple(range(2 * nd)))
    return lax.reshape(tiled, tuple(r * s for r, s in zip(reps, shape)))


def repeat(a, repeats, axis: int | None = None, *, total_repeat_length: int | None = None):
    """Repeat each element ``repeats`` times (an int, or one count per element).

    Without ``total_repeat_length`` the counts must be concrete (the length depends on
    them). With it, as in JAX, the result has exactly that length: truncated, or padded
    with the last element along ``axis``; the counts may then be traced (under ``jit``).
    """
    a = to_array(a, "repeat")
    if axis is None:
        a, axis = ravel(a), 0
    aval = get_aval(a)
    axis = canonical_axis("repeat", axis, aval.ndim)
    n = aval.shape[axis]
    if total_repeat_length is not None:
        total = static_int("repeat", "total_repeat_length", total_repeat_length)
        return take(a, _repeat_index(repeats, n, total), axis=axis)
    if isinstance(repeats, int) or (np.ndim(repeats) == 0 and not is_array(repeats)):
        r = static_int("repeat", "repeats", repeats)
        if r < 0:
            raise ValueError(f"repeat: repeats must be non-negative, got {r}")
        expanded = expand_dims(a, axis + 1)
        shape = list(get_aval(expanded).shape)
        shape[axis + 1] = r
        tiled = broadcast_to(expanded, tuple(shape))
        out_shape = list(aval.shape)
        out_shape[axis] = n * r
        return lax.reshape(tiled, tuple(out_shape))
    counts = np.asarray(repeats).reshape(-1)  # concrete per-element counts (a tracer raises here)
    if counts.size == 1:
        return repeat(a, int(counts[0]), axis)
    if counts.size != n or counts.dtype.kind not in "iu" or (counts < 0).any():
        raise ValueError(f"repeat: repeats must be non-negative integers, one per element along axis "
                         f"{axis} ({n}), got {counts.tolist()}")
    index = np.repeat(np.arange(n, dtype=np.int32), counts)
    return take(a, index, axis=axis)


def _repeat_index(repeats: Any, n: int, total: int) -> Any:
    """Source index of each of the ``total`` outputs of ``repeat``: output j comes from the
    number of elements whose cumulative count is <= j, clipped to the last element (JAX's padding)."""
    if total < 0:
        raise ValueError(f"repeat: total_repeat_length must be non-negative, got {total}")
    if n == 0 and total > 0:
        raise ValueError(f"repeat: cannot fill total_repeat_length={total} from an empty axis")
    if not isinstance(repeats, Tracer):
        counts = np.asarray(repeats)
        if counts.dtype.kind not in "iub" or counts.size not in (1, n):
            raise ValueError(f"repeat: repeats must be an integer or one integer per element ({n}), "
                             f"got {counts.tolist()}")
        ends = np.cumsum(np.broadcast_to(counts.reshape(-1), (n,)))
        index = np.searchsorted(ends, np.arange(total), side="right")
        return np.minimum(index, max(n - 1, 0)).astype(np.int32)
    counts = lax.convert_element_type(repeats, dtypes.int32)
    if get_aval(counts).shape not in ((), (1,), (n,)):
        raise ValueError(f"repeat: repeats must be an integer or one integer per element ({n}), "
                         f"got shape {get_aval(counts).shape}")
    ends = lax.cumsum(broadcast_to_shape(lax.reshape(counts, (get_aval(counts).size,)), (n,)), axis=0)
    outputs = lax.broadcasted_iota(dtypes.int32, (total, n), 0)
    passed = lax.convert_element_type(lax.le(lax.broadcast_in_dim(ends, (total, n), (1,)), outputs), dtypes.int32)
    return lax.min(lax.reduce_sum(passed, (1,)), lax.full((total,), max(n - 1, 0), dtypes.int32))


# --- flipping, rolling (pad: _pad.py) ----------------------------------------------------------------------

def flip(m, axis=None):
    """Reverse the order of elements along ``axis`` (all axes when None)."""
    m = to_array(m, "flip")
    axes = canonical_axes("flip", axis, get_aval(m).ndim)
    return lax.rev(m, axes) if axes else m


def fliplr(m):
    """Reverse the columns (axis 1)."""
    return flip(m, 1)


def flipud(m):
    """Reverse the rows (axis 0)."""
    return flip(m, 0)


def roll(a, shift, axis=None):
    """Shift elements cyclically by ``shift`` along ``axis`` (of the flattened array when None).

    ``shift`` may be traced; then the result is a gather instead of two slices.
    """
    a = to_array(a, "roll")
    if axis is None:
        return reshape(roll(ravel(a), shift, 0), get_aval(a).shape)
    shifts = shift if isinstance(shift, (list, tuple)) else (shift,)
    axes = axis if isinstance(axis, (list, tuple)) else (axis,)
    if len(shifts) == 1 and len(axes) > 1:
        shifts = shifts * len(axes)
    if len(axes) == 1 and len(shifts) > 1:
        axes = axes * len(shifts)
    if len(shifts) != len(axes):
        raise ValueError(f"roll: shift {shift} and axis {axis} must have the same length")
    for s, ax in zip(shifts, axes):
        a = _roll_axis(a, s, canonical_axis("roll", ax, get_aval(a).ndim))
    return a


def _roll_axis(a, shift, axis: int):
    n = get_aval(a).shape[axis]
    if n == 0:
        return a
    if is_array(shift):
        index = remainder(subtract(lax.iota(dtypes.default_int(), n), shift), n)  # fnp.arange(n)
        return take(a, index, axis=axis)
    s = static_int("roll", "shift", shift) % n
    if s == 0:
        return a
    return lax.concatenate([_slice_axis(a, axis, n - s, n), _slice_axis(a, axis, 0, n - s)], axis)


def rot90(m, k: int = 1, axes: tuple[int, int] = (0, 1)):
    """Rotate by 90 degrees ``k`` times in the plane of ``axes``."""
    m = to_array(m, "rot90")
    nd = get_aval(m).ndim
    ax0, ax1 = (canonical_axis("rot90", a, nd) for a in axes)
    if ax0 == ax1:
        raise ValueError("rot90: the two axes must differ")
    k = static_int("rot90", "k", k) % 4
    if k == 0:
        return m
    if k == 2:
        return flip(flip(m, ax0), ax1)
    if k == 1:
        return swapaxes(flip(m, ax1), ax0, ax1)
    return flip(swapaxes(m, ax0, ax1), ax1)


# --- triangles and diagonals ----------------------------------------------------------------------------

def _iota_2d(n: int, m: int, k: int) -> tuple[Any, Any]:
    """Row and column index grids (int32, shapes (n, 1) and (1, m)), rows shifted by ``k``."""
    rows = lax.reshape(lax.iota(dtypes.int32, n), (n, 1))
    if k:
        rows = lax.add(rows, np.int32(k))
    cols = lax.reshape(lax.iota(dtypes.int32, m), (1, m))
    return rows, cols


def tri_mask(n: int, m: int, k: int, compare) -> Any:
    """A bool (n, m) mask ``compare(col, row + k)`` (fnp.eye and fnp.tri build on it too).

    ``k`` beyond the matrix (any Python int, ``2**31`` included) is clamped to just outside
    it, which gives the same mask and keeps the index arithmetic in int32.
    """
    k = max(-(n + 1), min(k, m + 1))
    rows, cols = _iota_2d(n, m, k)
    shape = (n, m)
    return compare(lax.broadcast_in_dim(cols, shape, (0, 1)), lax.broadcast_in_dim(rows, shape, (0, 1)))


def _tri_select(op: str, m, k: int, lower: bool):
    m = to_array(m, op)
    aval = get_aval(m)
    if aval.ndim < 2:
        raise ValueError(f"{op}: needs an array of rank >= 2, got shape {aval.shape}")
    k = static_int(op, "k", k)
    n, c = aval.shape[-2:]
    mask = tri_mask(n, c, k, lax.le) if lower else tri_mask(n, c, k - 1, lax.gt)
    mask = broadcast_to_shape(mask, aval.shape)
    return lax.select_n(mask, lax.full(aval.shape, 0, aval.dtype), m)


def tril(m, k: int = 0):
    """The lower triangle: elements above the ``k``-th diagonal zeroed."""
    return _tri_select("tril", m, k, lower=True)


def triu(m, k: int = 0):
    """The upper triangle: elements below the ``k``-th diagonal zeroed."""
    return _tri_select("triu", m, k, lower=False)


def diagonal(a, offset: int = 0, axis1: int = 0, axis2: int = 1):
    """The ``offset`` diagonal of the 2-D planes spanned by ``axis1`` and ``axis2``; it becomes
    the last axis of the result."""
    a = to_array(a, "diagonal")
    aval = get_aval(a)
    if aval.ndim < 2:
        raise ValueError(f"diagonal: needs an array of rank >= 2, got shape {aval.shape}")
    ax1, ax2 = canonical_axis("diagonal", axis1, aval.ndim), canonical_axis("diagonal", axis2, aval.ndim)
    if ax1 == ax2:
        raise ValueError("diagonal: axis1 and axis2 cannot be the same")
    offset = static_int("diagonal", "offset", offset)
    a = moveaxis(a, (ax1, ax2), (-2, -1))
    *batch, n, m = get_aval(a).shape
    length = max(0, min(n, m - offset) if offset >= 0 else min(n + offset, m))
    flat = lax.reshape(a, (*batch, n * m))
    if length == 0:
        return lax.full((*batch, 0), 0, aval.dtype)
    start = offset if offset >= 0 else -offset * m
    stop = start + (length - 1) * (m + 1) + 1
    return _slice_axis(flat, len(batch), start, stop, m + 1)


def diag(v, k: int = 0):
    """The ``k``-th diagonal of a 2-D array, or a 2-D array with 1-D ``v`` on its ``k``-th diagonal."""
    v = to_array(v, "diag")
    aval = get_aval(v)
    k = static_int("diag", "k", k)
    if aval.ndim == 2:
        return diagonal(v, k)
    if aval.ndim != 1:
        raise ValueError(f"diag: input must be 1-D or 2-D, got shape {aval.shape}")
    n = aval.shape[0] + abs(k)
    padded = lax.pad(v, aval.dtype.type(0), [(0, abs(k), 0)])
    values = lax.broadcast_in_dim(padded, (n, n), (0,) if k >= 0 else (1,))
    mask = tri_mask(n, n, k, lax.eq)
    return lax.select_n(mask, lax.full((n, n), 0, aval.dtype), values)
