"""``jax.lax`` functions that are compositions of fgrad's primitives, not primitives of their
own: associative_scan and the cumulative reductions built on it (cumprod, cummax, cummin;
cumlogsumexp is in ``fgrad.lax._logaddexp``, with JAX's logaddexp derivative), top_k, sort_key_val, clamp, select, broadcast, shift_right_arithmetic,
population_count, clz, nextafter, reciprocal, mulhi, reduce_xor, and bitcast_convert_type between types of different widths. Being
compositions, each one is differentiable, batchable and lowered
wherever its parts are."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from fgrad import tree
from fgrad.core import dtypes
from fgrad.core.trace import get_aval
from fgrad.ops import elementwise as ew
from fgrad.ops import misc
from fgrad.ops import shape as sh
from fgrad.ops import sort as sort_ops
from fgrad.ops.indexing import take_along_axis
from fgrad.ops._util import as_operand, canonical_axes

__all__ = ["associative_scan", "cumprod", "cummax", "cummin", "top_k", "sort_key_val", "clamp",
           "select", "broadcast", "shift_right_arithmetic", "population_count", "clz", "bitcast_convert_type", "nextafter",
           "reciprocal", "mulhi", "reduce_xor", "approx_max_k", "approx_min_k"]


# --- associative_scan ------------------------------------------------------------------------------

def associative_scan(fn: Callable, elems: Any, reverse: bool = False, axis: int = 0) -> Any:
    """``jax.lax.associative_scan(fn, elems, reverse=False, axis=0)``: all prefix combinations
    ``fn(... fn(fn(e0, e1), e2) ..., ek)`` along ``axis`` for an associative ``fn`` on pytrees of
    arrays, in ``O(log n)`` rounds of elementwise work (a parallel prefix scan)."""
    leaves, treedef = tree.tree_flatten(elems)
    if not leaves:
        raise ValueError("associative_scan: elems must hold at least one array")
    ndim = get_aval(leaves[0]).ndim
    axis = axis % ndim if ndim and -ndim <= axis < ndim else None
    if axis is None:
        raise ValueError(f"associative_scan: axis is out of range for arrays of rank {ndim}")
    n = get_aval(leaves[0]).shape[axis]
    if any(get_aval(x).shape[axis] != n for x in leaves):
        raise ValueError("associative_scan: every array of elems needs the same length along axis")

    def combine(a: list, b: list) -> list:
        out = tree.tree_leaves(fn(tree.tree_unflatten(treedef, a), tree.tree_unflatten(treedef, b)))
        if len(out) != len(a):
            raise TypeError("associative_scan: fn must return a pytree of the structure of elems")
        return out
    if reverse:
        leaves = [sh.rev(x, (axis,)) for x in leaves]
    out = _prefix_scan(combine, leaves, axis)
    if reverse:
        out = [sh.rev(x, (axis,)) for x in out]
    return tree.tree_unflatten(treedef, out)


def _prefix_scan(combine: Callable, elems: list, axis: int) -> list:
    """Inclusive prefix combinations of ``elems`` along ``axis`` (recursively on pairs)."""
    n = get_aval(elems[0]).shape[axis]
    if n < 2:
        return elems
    part = lambda xs, start, stop=None: [sh.slice_in_dim(x, start, stop, 2, axis) for x in xs]
    odd = _prefix_scan(combine, combine(part(elems, 0, n - 1), part(elems, 1)), axis)   # at 1, 3, 5, ...
    later_even = part(elems, 2)                                                           # at 2, 4, ...
    shorter = [sh.slice_in_dim(x, 0, get_aval(later_even[0]).shape[axis], 1, axis) for x in odd]
    even = [sh.concatenate([sh.slice_in_dim(x, 0, 1, 1, axis), y], axis)
            for x, y in zip(elems, combine(shorter, later_even))] if get_aval(later_even[0]).shape[axis] else \
        [sh.slice_in_dim(x, 0, 1, 1, axis) for x in elems]
    return [_interleave(e, o, axis) for e, o in zip(even, odd)]


def _interleave(even: Any, odd: Any, axis: int) -> Any:
    """``even[0], odd[0], even[1], odd[1], ...`` along ``axis`` (``even`` may be one longer)."""
    ne, no = get_aval(even).shape[axis], get_aval(odd).shape[axis]
    if ne > no:
        odd = sh.concatenate([odd, sh.slice_in_dim(even, ne - 1, ne, 1, axis)], axis)
    pairs = sh.concatenate([sh.expand_dims(even, (axis + 1,)), sh.expand_dims(odd, (axis + 1,))], axis + 1)
    shape = get_aval(even).shape
    merged = sh.reshape(pairs, shape[:axis] + (2 * ne,) + shape[axis + 1:])
    return sh.slice_in_dim(merged, 0, ne + no, 1, axis)


def _cumulative(name: str, fn: Callable) -> Callable:
    def cumulative(operand: Any, axis: int = 0, reverse: bool = False) -> Any:
        return associative_scan(fn, operand, reverse=reverse, axis=axis)
    cumulative.__name__ = cumulative.__qualname__ = name
    cumulative.__doc__ = (f"``jax.lax.{name}(operand, axis=0, reverse=False)``: the running {name[3:]} "
                          "along ``axis`` (from the end when ``reverse``).")
    return cumulative


cumprod = _cumulative("cumprod", ew.mul)
cummax = _cumulative("cummax", ew.max)
cummin = _cumulative("cummin", ew.min)


# --- sorting helpers --------------------------------------------------------------------------------

def top_k(operand: Any, k: int, *, axis: int = -1) -> tuple[Any, Any]:
    """``jax.lax.top_k(operand, k, *, axis=-1)``: the ``k`` largest entries along ``axis``, in
    descending order, and their int32 indices; ties keep the lower index first, NaNs count as
    larger than every number."""
    aval = get_aval(operand)
    if aval.ndim == 0:
        raise ValueError("top_k: operand must have at least one dimension")
    if not isinstance(axis, (int, np.integer)) or not -aval.ndim <= axis < aval.ndim:
        raise ValueError(f"top_k: axis {axis!r} is out of range for an operand of rank {aval.ndim}")
    axis = int(axis) % aval.ndim
    if axis != aval.ndim - 1:
        order = (*range(axis), *range(axis + 1, aval.ndim), axis)
        back = tuple(int(i) for i in np.argsort(order))
        values, indices = top_k(sh.transpose(operand, order), k)
        return sh.transpose(values, back), sh.transpose(indices, back)
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 0 <= k <= aval.shape[-1]:
        raise ValueError(f"top_k: k must be an int in [0, {aval.shape[-1]}], got {k!r}")
    flipped = sh.rev(operand, (aval.ndim - 1,))
    iota = sh.broadcasted_iota(dtypes.int32, aval.shape, aval.ndim - 1)
    keys, order = sort_ops.sort([flipped, iota], dimension=-1, num_keys=1)   # ascending, ties: later first
    n = aval.shape[-1]
    values = sh.slice_in_dim(sh.rev(keys, (aval.ndim - 1,)), 0, k, 1, aval.ndim - 1)
    indices = sh.slice_in_dim(sh.rev(order, (aval.ndim - 1,)), 0, k, 1, aval.ndim - 1)
    return values, ew.sub(as_operand(n - 1, dtypes.int32), indices)


def _approx_k_args(op: str, operand: Any, k: int, reduction_dimension: int, recall_target: float) -> int:
    aval = get_aval(operand)
    if not dtypes.is_float(aval.dtype):
        raise ValueError(f"{op}: operand must be a floating type, got {aval.dtype.name}")
    if not -aval.ndim <= reduction_dimension < aval.ndim:
        raise ValueError(f"{op}: reduction_dimension {reduction_dimension} is out of range for rank {aval.ndim}")
    dim = reduction_dimension % aval.ndim
    if not 0 < k <= aval.shape[dim]:
        raise ValueError(f"{op}: k must be in (0, {aval.shape[dim]}] (the size of reduction_dimension), got {k}")
    if not 0 < recall_target <= 1:
        raise ValueError(f"{op}: recall_target must be in (0, 1], got {recall_target}")
    return dim


def _top_k_along(operand: Any, k: int, dim: int) -> tuple[Any, Any]:
    last = get_aval(operand).ndim - 1
    perm = [d for d in range(last + 1) if d != dim] + [dim]
    values, indices = top_k(sh.transpose(operand, perm), k)
    back = tuple(int(i) for i in np.argsort(perm))
    return sh.transpose(values, back), sh.transpose(indices, back)


def approx_max_k(operand: Any, k: int, reduction_dimension: int = -1, recall_target: float = 0.95,
                 reduction_input_size_override: int = -1, aggregate_to_topk: bool = True) -> tuple[Any, Any]:
    """``jax.lax.approx_max_k(operand, k, reduction_dimension=-1, recall_target=0.95,
    reduction_input_size_override=-1, aggregate_to_topk=True)``: the ``k`` largest values along
    ``reduction_dimension`` (descending; NaN counts as the largest, ties keep the lower index
    first) and their int32 indices. fgrad computes them exactly (recall 1, what JAX's CPU
    version does too), so ``recall_target`` is checked but never lowers the accuracy."""
    dim = _approx_k_args("approx_max_k", operand, k, reduction_dimension, recall_target)
    return _top_k_along(operand, k, dim)


def approx_min_k(operand: Any, k: int, reduction_dimension: int = -1, recall_target: float = 0.95,
                 reduction_input_size_override: int = -1, aggregate_to_topk: bool = True) -> tuple[Any, Any]:
    """``jax.lax.approx_min_k(...)``: the ``k`` smallest values along ``reduction_dimension``
    (ascending; NaN counts as the largest, so it comes last; ties keep the lower index first)
    and their int32 indices, computed exactly (see ``approx_max_k``)."""
    dim = _approx_k_args("approx_min_k", operand, k, reduction_dimension, recall_target)
    aval = get_aval(operand)
    lowest = sh.full(aval.shape, -np.inf, aval.dtype)
    key = ew.select_n(ew.ne(operand, operand), ew.neg(operand), lowest)     # NaN last
    _, indices = _top_k_along(key, k, dim)
    return take_along_axis(operand, indices, dim), indices


def sort_key_val(keys: Any, values: Any, dimension: int = -1, is_stable: bool = True) -> tuple[Any, Any]:
    """``jax.lax.sort_key_val(keys, values, dimension=-1, is_stable=True)``: ``keys`` sorted along
    ``dimension`` and ``values`` permuted alike (always stable)."""
    out = sort_ops.sort([keys, values], dimension=dimension, num_keys=1)
    return out[0], out[1]


# --- elementwise helpers ----------------------------------------------------------------------------

def clamp(min: Any, x: Any, max: Any) -> Any:  # noqa: A002 (JAX's names)
    """``jax.lax.clamp(min, x, max)``: ``x`` limited to ``[min, max]`` (scalars or x's shape).

    Derivatives are JAX's: ``x``'s only strictly inside ``(min, max)``, ``min``'s only where
    ``min > x`` (and ``min < max``), ``max``'s only where ``max < x``; all zero at ties and NaN.
    """
    dtype = get_aval(x).dtype
    lo, hi = _like(as_operand(min, dtype), x), _like(as_operand(max, dtype), x)
    value = ew.min(ew.max(x, lo), hi)
    if not dtypes.is_differentiable(dtype):
        return value
    inside = ew.bitwise_and(ew.gt(x, lo), ew.lt(x, hi))
    below = ew.bitwise_and(ew.gt(lo, x), ew.lt(lo, hi))
    out = ew.select_n(inside, misc.stop_gradient(value), x)
    out = ew.select_n(ew.lt(hi, x), out, hi)
    return ew.select_n(below, out, lo)


def _like(bound: Any, x: Any) -> Any:
    shape = get_aval(x).shape
    return bound if get_aval(bound).shape == shape else sh.broadcast_in_dim(bound, shape, ())


def select(pred: Any, on_true: Any, on_false: Any) -> Any:
    """``jax.lax.select(pred, on_true, on_false)``: ``on_true`` where ``pred``, else ``on_false``."""
    return ew.select_n(pred, on_false, on_true)


def broadcast(operand: Any, sizes: Any) -> Any:
    """``jax.lax.broadcast(operand, sizes)``: ``operand`` with new leading dimensions ``sizes``."""
    shape = get_aval(operand).shape
    sizes = tuple(int(s) for s in sizes)
    return sh.broadcast_in_dim(operand, sizes + shape, tuple(range(len(sizes), len(sizes) + len(shape))))


def shift_right_arithmetic(x: Any, y: Any) -> Any:
    """``jax.lax.shift_right_arithmetic(x, y)``: shift right, copying the sign bit in (shifts of
    the bit width or more give 0 or -1)."""
    dtype = get_aval(x).dtype
    y = as_operand(y, dtype)
    if dtype.kind != "i":
        return ew.shift_right_logical(x, y)
    negative = ew.lt(x, as_operand(0, dtype))
    flipped = ew.bitwise_not(x)
    return ew.select_n(negative, ew.shift_right_logical(x, y), ew.bitwise_not(ew.shift_right_logical(flipped, y)))


def population_count(x: Any) -> Any:
    """``jax.lax.population_count(x)``: the number of set bits of each integer (same dtype)."""
    dtype = get_aval(x).dtype
    if dtype.kind not in "iu":
        raise TypeError(f"population_count: x must be an integer array, got {dtype}")
    bits = dtype.itemsize * 8
    count = as_operand(0, dtype)
    for shift in range(bits):          # unrolled: fuses into one elementwise kernel
        count = ew.add(count, ew.bitwise_and(ew.shift_right_logical(x, as_operand(shift, dtype)), as_operand(1, dtype)))
    return count


def clz(x: Any) -> Any:
    """``jax.lax.clz(x)``: the number of leading zero bits of each integer (same dtype)."""
    dtype = get_aval(x).dtype
    if dtype.kind not in "iu":
        raise TypeError(f"clz: x must be an integer array, got {dtype}")
    smeared, shift = x, 1
    while shift < dtype.itemsize * 8:     # every bit below the highest set one becomes set
        smeared = ew.bitwise_or(smeared, ew.shift_right_logical(smeared, as_operand(shift, dtype)))
        shift *= 2
    return ew.sub(as_operand(dtype.itemsize * 8, dtype), population_count(smeared))


def reciprocal(x: Any) -> Any:
    """``jax.lax.reciprocal(x)``: ``1 / x`` elementwise, as ``integer_pow(x, -1)`` (so integer
    operands are a TypeError, as in JAX)."""
    return ew.integer_pow(x, -1)


def mulhi(x: Any, y: Any) -> Any:
    """``jax.lax.mulhi(x, y)``: the high half of the double-width product of two integers of
    one dtype (signed for signed types), e.g. ``(x * y) >> 32`` for int32 computed exactly.

    >>> mulhi(fnp.uint32(4000000000), fnp.uint32(4000000000))   # doctest: +SKIP
    Array(3725290298, dtype=uint32)
    """
    x_aval, y_aval = get_aval(x), get_aval(y)
    dtype = x_aval.dtype if type(x) not in (int, bool) else y_aval.dtype
    x, y = as_operand(x, dtype), as_operand(y, dtype)
    x_aval, y_aval = get_aval(x), get_aval(y)
    if x_aval.dtype != y_aval.dtype:
        raise TypeError(f"mulhi: requires arguments to have the same dtypes, got {x_aval.dtype.name}, "
                        f"{y_aval.dtype.name}; convert one with lax.convert_element_type")
    if dtype.kind not in "iu":
        raise TypeError(f"mulhi: accepts only integer dtypes, got {dtype.name}")
    if x_aval.shape != y_aval.shape:
        x, y = _same_shape("mulhi", x, y)
    unsigned = _UNSIGNED[dtype.itemsize]
    ux, uy = _as_unsigned(x, dtype), _as_unsigned(y, dtype)
    high = _unsigned_mulhi(ux, uy, 4 * dtype.itemsize, unsigned)
    if dtype.kind == "i":     # two's complement: a negative factor f contributes -2**w * other
        zero = as_operand(0, unsigned)
        high = ew.sub(high, ew.select_n(ew.lt(x, as_operand(0, dtype)), _like(zero, x), uy))
        high = ew.sub(high, ew.select_n(ew.lt(y, as_operand(0, dtype)), _like(zero, x), ux))
    return _from_unsigned(high, dtype)


def _same_shape(op: str, x: Any, y: Any) -> tuple[Any, Any]:
    xs, ys = get_aval(x).shape, get_aval(y).shape
    if xs and ys:
        raise TypeError(f"{op}: operands must have one shape (or be scalars), got {xs} and {ys}; broadcast "
                        "them first with lax.broadcast_in_dim")
    return (x, sh.broadcast_in_dim(y, xs, ())) if xs else (sh.broadcast_in_dim(x, ys, ()), y)


def _unsigned_mulhi(a: Any, b: Any, half: int, dtype: np.dtype) -> Any:
    """The high word of ``a * b`` from half-word products, each exact in the word's width."""
    c = lambda v: as_operand(v, dtype)
    mask = c((1 << half) - 1)
    a_lo, a_hi = ew.bitwise_and(a, mask), ew.shift_right_logical(a, c(half))
    b_lo, b_hi = ew.bitwise_and(b, mask), ew.shift_right_logical(b, c(half))
    carry = ew.shift_right_logical(ew.mul(a_lo, b_lo), c(half))
    t = ew.add(ew.mul(a_hi, b_lo), carry)
    middle = ew.add(ew.mul(a_lo, b_hi), ew.bitwise_and(t, mask))
    return ew.add(ew.add(ew.mul(a_hi, b_hi), ew.shift_right_logical(t, c(half))),
                  ew.shift_right_logical(middle, c(half)))


def reduce_xor(operand: Any, axes: Any) -> Any:
    """``jax.lax.reduce_xor(operand, axes)``: logical (bool) or bitwise (integer) XOR over
    ``axes``, computed as a tree of pairwise XORs."""
    aval = get_aval(operand)
    if aval.dtype.kind not in "biu":
        raise TypeError(f"reduce_xor: logical reduction requires operand dtype bool or int, got {aval.dtype.name}")
    axes = canonical_axes("reduce_xor", tuple(int(a) for a in axes), aval.ndim)
    kept = [d for d in range(aval.ndim) if d not in axes]
    n = int(np.prod([aval.shape[d] for d in axes], dtype=np.int64))
    x = sh.reshape(sh.transpose(operand, kept + sorted(axes)), tuple(aval.shape[d] for d in kept) + (n,))
    last = len(kept)
    if n == 0:
        return sh.full(tuple(aval.shape[d] for d in kept), 0, aval.dtype)
    while n > 1:
        if n % 2:     # pad with XOR's identity to an even length
            x = sh.pad(x, as_operand(0, aval.dtype), [(0, 0, 0)] * last + [(0, 1, 0)])
            n += 1
        x = ew.bitwise_xor(sh.slice_in_dim(x, 0, n // 2, 1, last), sh.slice_in_dim(x, n // 2, n, 1, last))
        n //= 2
    return sh.squeeze(x, (last,))


# --- bitcast_convert_type across widths -----------------------------------------------------------

_UNSIGNED = {1: dtypes.uint8, 2: dtypes.uint16, 4: dtypes.uint32, 8: dtypes.uint64}


def bitcast_convert_type(operand: Any, new_dtype: Any) -> Any:
    """``jax.lax.bitcast_convert_type(operand, new_dtype)``: the bits of ``operand`` read as
    ``new_dtype``. Equal widths keep the shape. To a type ``k`` times narrower, a trailing axis
    of ``k`` is added (least significant part first, as on every little-endian machine JAX runs
    on); to one ``k`` times wider, the trailing axis must be ``k`` and is removed. Bool takes
    part only as bool to bool (``x.view`` handles bool), as in JAX."""
    x = as_operand(operand)
    new = dtypes.canonicalize(new_dtype)
    old = get_aval(x).dtype
    if old.itemsize == new.itemsize or dtypes.bool_ in (old, new):
        if dtypes.bool_ in (old, new) and old != new:
            raise TypeError(f"bitcast_convert_type: cannot reinterpret {old.name} as {new.name}: bool takes "
                            "part only as bool to bool (as in JAX); use x.view(dtype), or astype")
        return x if old == new else ew.bitcast_convert_type(x, new)
    if new.itemsize > 8 or old.itemsize > 8 or new.itemsize not in _UNSIGNED or old.itemsize not in _UNSIGNED:
        raise TypeError(f"bitcast_convert_type: cannot reinterpret {old.name} as {new.name}")
    if new.itemsize < old.itemsize:
        return _split_bits(x, old, new)
    return _join_bits(x, old, new)


def _as_unsigned(x: Any, dtype: np.dtype) -> Any:
    unsigned = _UNSIGNED[dtype.itemsize]
    return x if dtype == unsigned else ew.bitcast_convert_type(x, unsigned)


def _from_unsigned(x: Any, dtype: np.dtype) -> Any:
    return x if dtype == _UNSIGNED[dtype.itemsize] else ew.bitcast_convert_type(x, dtype)


def _split_bits(x: Any, old: np.dtype, new: np.dtype) -> Any:
    """Each element as ``k`` narrower parts along a new trailing axis, low part first."""
    bits, narrow = _as_unsigned(x, old), _UNSIGNED[new.itemsize]
    ndim, width = get_aval(x).ndim, 8 * new.itemsize
    parts = []
    for j in range(old.itemsize // new.itemsize):
        shifted = ew.shift_right_logical(bits, np.asarray(j * width, _UNSIGNED[old.itemsize])) if j else bits
        parts.append(sh.expand_dims(ew.convert_element_type(shifted, narrow), (ndim,)))
    return _from_unsigned(sh.concatenate(parts, ndim), new)


def _join_bits(x: Any, old: np.dtype, new: np.dtype) -> Any:
    """The trailing axis of ``k`` narrower parts (low part first) joined into one element."""
    aval, k = get_aval(x), new.itemsize // old.itemsize
    if aval.ndim == 0 or aval.shape[-1] != k:
        raise ValueError(f"bitcast_convert_type: {old.name} to {new.name} needs a trailing axis of {k} "
                         f"parts, got shape {aval.shape}")
    bits, wide = _as_unsigned(x, old), _UNSIGNED[new.itemsize]
    out = None
    for j in range(k):
        part = ew.convert_element_type(sh.squeeze(sh.index_in_dim(bits, j, aval.ndim - 1), (aval.ndim - 1,)), wide)
        if j:
            part = ew.shift_left(part, np.asarray(8 * old.itemsize * j, wide))
        out = part if out is None else ew.bitwise_or(out, part)
    return _from_unsigned(out, new)


# --- nextafter ---------------------------------------------------------------------------------------

_SAME_WIDTH_INT = {2: dtypes.int16, 4: dtypes.int32, 8: dtypes.int64}


def nextafter(x1: Any, x2: Any) -> Any:
    """``jax.lax.nextafter(x1, x2)``: the next representable value after ``x1`` in the direction
    of ``x2``, elementwise: ``x2`` itself where they are equal, NaN where either is NaN, from zero
    the smallest subnormal with the sign of ``x2 - x1`` (fgrad keeps subnormals, as NumPy; JAX
    on the CPU flushes them to zero). Both operands must have one floating dtype (float16,
    bfloat16, float32, float64) and one shape, or be scalars (a Python scalar takes the other's
    dtype); ``fgrad.numpy.nextafter`` promotes and broadcasts. Its derivative is zero.

    >>> lax.nextafter(fnp.float32(1), fnp.float32(2))
    Array(1.0000001, dtype=float32)
    """
    x, y = _same_float_operands("nextafter", x1, x2)
    dtype = get_aval(x).dtype
    int_dtype = _SAME_WIDTH_INT[dtype.itemsize]
    bits = ew.bitcast_convert_type(x, int_dtype)
    zero, one = as_operand(0, dtype), as_operand(1, int_dtype)
    away = ew.eq(ew.lt(x, y), ew.gt(x, zero))      # the magnitude grows: the bits step up
    stepped = ew.bitcast_convert_type(ew.select_n(away, ew.sub(bits, one), ew.add(bits, one)), dtype)
    tiny = ew.bitcast_convert_type(sh.full(get_aval(bits).shape, 1, int_dtype), dtype)
    toward_negative = ew.lt(ew.bitcast_convert_type(ew.sub(y, x), int_dtype), as_operand(0, int_dtype))
    from_zero = ew.select_n(toward_negative, tiny, ew.neg(tiny))
    out = ew.select_n(ew.eq(x, zero), stepped, from_zero)
    out = ew.select_n(ew.eq(x, y), out, y)
    unordered = ew.bitwise_or(ew.ne(x, x), ew.ne(y, y))
    return ew.select_n(unordered, out, ew.add(x, y))


def _same_float_operands(op: str, x: Any, y: Any) -> tuple[Any, Any]:
    """``x`` and ``y`` of one floating dtype and one shape (a scalar is broadcast); a Python scalar
    takes the other operand's dtype, two of them the default float."""
    x_py, y_py = type(x) in (int, float), type(y) in (int, float)
    if x_py and y_py:
        x, y = as_operand(x, dtypes.default_float()), as_operand(y, dtypes.default_float())
    elif x_py:
        x = as_operand(x, get_aval(y).dtype)
    elif y_py:
        y = as_operand(y, get_aval(x).dtype)
    x_aval, y_aval = get_aval(x), get_aval(y)
    if x_aval.dtype != y_aval.dtype:
        raise TypeError(f"{op}: requires arguments of one dtype, got {x_aval.dtype.name} and {y_aval.dtype.name}; "
                        "convert one with lax.convert_element_type (fgrad.numpy.nextafter promotes)")
    if not dtypes.is_float(x_aval.dtype):
        raise TypeError(f"{op}: requires floating-point operands, got {x_aval.str_short()}; convert them "
                        "with lax.convert_element_type(x, fgrad.numpy.float32)")
    if x_aval.shape != y_aval.shape:
        if x_aval.ndim and y_aval.ndim:
            raise TypeError(f"{op}: operands must have one shape (or be scalars), got {x_aval.str_short()} and "
                            f"{y_aval.str_short()}; broadcast them first (fgrad.numpy.nextafter broadcasts)")
        shape = x_aval.shape or y_aval.shape
        x, y = (v if get_aval(v).shape == shape else sh.broadcast_in_dim(v, shape, ()) for v in (x, y))
    return x, y
