"""Windowed reductions: ``reduce_window`` with ``"sum"``, ``"max"`` or ``"min"`` (pooling).

``reduce_window`` is a family of primitives rather than a composition (of pads, strided
slices and elementwise maxima) because the lowering gives pooling a dedicated kernel that
reads each input once; convolutions are primitives for the same reason (see
``fgrad/ops/contraction.py``), while softmax stays a composition of fusable ops.

Every operand dimension has a window: ``window_dimensions``, ``window_strides``,
``padding`` (``(low, high)`` pairs, negative crops), ``base_dilation`` (holes between
input elements) and ``window_dilation`` (holes between window taps), as in XLA.
Padding and holes hold the reduction's identity (0, -inf, +inf).

Derivatives:

- ``reduce_window_sum`` is linear; its transpose is a ``reduce_window_sum`` of the
  cotangent dilated by the strides (the same identity that gives a conv's input gradient).
- ``reduce_window_max``/``min`` pass on the tangent of the element each window selects
  (the first extremum in window order, as XLA does) through the helper primitive
  ``select_and_gather_add``; its transpose ``select_and_scatter_add`` adds each window's
  cotangent onto that element. The two are each other's transposes and ignore the tangent
  of the selecting operand (selection is piecewise constant), so max-pooling is
  differentiable to any order.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
from numpy.lib.stride_tricks import as_strided

from fgrad.core import dtypes
from fgrad.core.partition import PARTIAL, bind_like, partition_error, partition_rules, with_layout
from fgrad.core.primitive import Primitive
from fgrad.core.trace import get_aval
from fgrad.core.types import ShapedArray
from fgrad.ops._util import as_operand, shape_error
from fgrad.core.rules import is_undefined, jvp_rules, transpose_rules, vmap_rules
from fgrad.ops.shape import full, moveaxis
from fgrad.ops import elementwise, extremum

__all__ = ["reduce_window", "padtype_to_pads"]

_PARAM_NAMES = ("window_dimensions", "window_strides", "padding", "base_dilation", "window_dilation")


# --- NumPy helpers (also used by the convolution) -------------------------------------------

def dilate_shape(size: int, dilation: int) -> int:
    """Length of a dimension of ``size`` with ``dilation - 1`` holes between its elements."""
    return 0 if size == 0 else (size - 1) * dilation + 1


def output_sizes(shape: Sequence[int], window_dimensions, window_strides, padding,
                 base_dilation, window_dilation) -> tuple:
    """The number of window positions along each dimension."""
    out = []
    for size, k, s, (lo, hi), bd, wd in zip(shape, window_dimensions, window_strides, padding,
                                             base_dilation, window_dilation):
        padded = dilate_shape(size, bd) + lo + hi
        extent = dilate_shape(k, wd)
        out.append((padded - extent) // s + 1 if padded >= extent else 0)
    return tuple(out)


def dilate_and_pad(x: np.ndarray, dilation: Sequence[int], padding: Sequence[tuple], fill: Any) -> np.ndarray:
    """Insert ``dilation - 1`` holes and pad (crop where negative) the trailing dimensions of ``x``."""
    lead = x.ndim - len(dilation)
    if all(d == 1 for d in dilation) and all(p == (0, 0) for p in padding):
        return x
    sizes = [dilate_shape(s, d) for s, d in zip(x.shape[lead:], dilation)]
    grow = [(max(lo, 0), max(hi, 0)) for lo, hi in padding]
    shape = (*x.shape[:lead], *[lo + s + hi for s, (lo, hi) in zip(sizes, grow)])
    out = np.full(shape, fill, x.dtype)
    place = tuple(slice(lo, lo + s, d) for (lo, _), s, d in zip(grow, sizes, dilation))
    out[(slice(None),) * lead + place] = x
    crop = tuple(slice(max(0, -lo), n - max(0, -hi)) for (lo, hi), n in zip(padding, shape[lead:]))
    return out[(slice(None),) * lead + crop]


def window_view(padded: np.ndarray, out_sizes: Sequence[int], window: Sequence[int],
                strides: Sequence[int], dilation: Sequence[int], first: int | None = None) -> np.ndarray:
    """A read-only view of the windows over ``len(out_sizes)`` spatial dims starting at axis
    ``first`` (default: the trailing ones): shape (*before, *out_sizes, *window, *after)."""
    nsp = len(out_sizes)
    first = padded.ndim - nsp if first is None else first
    end = first + nsp
    step, shape = padded.strides, padded.shape
    spatial = step[first:end]
    return as_strided(padded, (*shape[:first], *out_sizes, *window, *shape[end:]),
                      (*step[:first], *[st * s for st, s in zip(spatial, strides)],
                       *[st * d for st, d in zip(spatial, dilation)], *step[end:]), writeable=False)


def padtype_to_pads(in_shape: Sequence[int], window_shape: Sequence[int], window_strides: Sequence[int],
                    padding: str) -> tuple:
    """``(low, high)`` pairs for ``"SAME"``, ``"SAME_LOWER"`` or ``"VALID"`` padding."""
    mode = padding.upper()
    if mode == "VALID":
        return tuple((0, 0) for _ in in_shape)
    if mode not in ("SAME", "SAME_LOWER"):
        raise ValueError(f"padding must be 'SAME', 'SAME_LOWER', 'VALID' or a sequence of (low, high) "
                         f"pairs, got {padding!r}")
    pads = []
    for size, window, stride in zip(in_shape, window_shape, window_strides):
        out = -(-size // stride)
        total = max((out - 1) * stride + window - size, 0)
        small, large = total // 2, total - total // 2
        pads.append((small, large) if mode == "SAME" else (large, small))
    return tuple(pads)


def _window_taps(window: Sequence[int]):
    return np.ndindex(*window)


# --- the primitives -------------------------------------------------------------------------

def _check_window_params(op: str, aval: ShapedArray, params: dict) -> None:
    for name in _PARAM_NAMES:
        if len(params[name]) != aval.ndim:
            raise shape_error(op, f"{name} {params[name]} needs one entry per dimension of "
                              f"{aval.str_short()}")
    for name in ("window_dimensions", "window_strides", "base_dilation", "window_dilation"):
        if any(v < 1 for v in params[name]):
            raise ValueError(f"{op}: {name} must be positive, got {params[name]}")


def _reduce_window_rule(op: str, kinds: str) -> Callable:
    def rule(x: ShapedArray, **params) -> ShapedArray:
        _check_window_params(op, x, params)
        if dtypes.kind(x.dtype) not in kinds:
            raise shape_error(op, f"does not accept {x.str_short()}", "Convert it to a numeric dtype")
        return ShapedArray(output_sizes(x.shape, **params), x.dtype, x.weak_type)
    return rule


def _identity(dtype: np.dtype, computation: str) -> Any:
    if computation == "sum":
        return dtype.type(0)
    largest = computation == "min"
    if dtype == np.bool_:
        return np.bool_(largest)
    if dtypes.kind(dtype) == "f":
        return dtype.type(np.inf if largest else -np.inf)
    info = np.iinfo(dtype)
    return dtype.type(info.max if largest else info.min)


_ACCUMULATE = {"sum": np.add, "max": np.maximum, "min": np.minimum}


def _reduce_window_impl(computation: str) -> Callable:
    def impl(x: np.ndarray, **params) -> np.ndarray:
        out_sizes = output_sizes(x.shape, **params)
        identity = _identity(x.dtype, computation)
        if int(np.prod(out_sizes, dtype=np.int64)) == 0:
            return np.full(out_sizes, identity, x.dtype)
        padded = dilate_and_pad(x, params["base_dilation"], params["padding"], identity)
        windows = window_view(padded, out_sizes, params["window_dimensions"], params["window_strides"],
                              params["window_dilation"])
        # one pass per window tap over strided views beats reducing tiny trailing axes
        taps = _window_taps(params["window_dimensions"])
        # (float16 window sums accumulate in float32 and round once, as reductions do)
        wide = np.float32 if computation == "sum" and dtypes.is_half(x.dtype) else x.dtype
        out = np.array(windows[(Ellipsis, *next(taps))], dtype=wide)
        for tap in taps:
            _ACCUMULATE[computation](out, windows[(Ellipsis, *tap)], out=out)
        if computation == "sum" and dtypes.kind(out.dtype) == "f" and np.prod(params["window_dimensions"]) > 1:
            out += 0.0   # XLA folds from +0.: a window of -0.s sums to +0. (one tap keeps its -0.)
        return out.astype(x.dtype, copy=False)
    return impl


def _define(name: str, computation: str, kinds: str) -> Primitive:
    prim = Primitive(name)
    prim.def_impl(_reduce_window_impl(computation))
    prim.def_abstract_eval(_reduce_window_rule(name, kinds))
    vmap_rules[prim] = _window_vmap(prim)
    return prim


def _window_vmap(prim: Primitive) -> Callable:
    """A batched operand gets a size-1 window (stride 1, no padding) along its batch dim."""
    def rule(axis, vals, dims, **params):
        (x,), (d,) = vals, dims
        return prim.bind(x, **_insert_unit_window(params, d)), d
    return rule


def _insert_unit_window(params: dict, d: int) -> dict:
    unit = {"window_dimensions": 1, "window_strides": 1, "padding": (0, 0), "base_dilation": 1,
            "window_dilation": 1}
    out = dict(params)
    for name, value in unit.items():
        out[name] = (*params[name][:d], value, *params[name][d:])
    return out


reduce_window_sum_p = _define("reduce_window_sum", "sum", "iuf")
reduce_window_max_p = _define("reduce_window_max", "max", "biuf")
reduce_window_min_p = _define("reduce_window_min", "min", "biuf")
_PRIMITIVES = {"sum": reduce_window_sum_p, "max": reduce_window_max_p, "min": reduce_window_min_p}


def _computation_name(computation: Any) -> str:
    if isinstance(computation, str) and computation in _PRIMITIVES:
        return computation
    by_function = {elementwise.add: "sum", elementwise.max: "max", elementwise.min: "min",
                   extremum.max: "max", extremum.min: "min"}     # lax.max/min (complex-aware)
    if callable(computation) and computation in by_function:
        return by_function[computation]
    raise ValueError(f"reduce_window: computation must be 'sum', 'max' or 'min' (or lax.add, lax.max, "
                     f"lax.min), got {computation!r}")


def _int_tuple(name: str, value: Any, ndim: int) -> tuple:
    if value is None:
        return (1,) * ndim
    if isinstance(value, (int, np.integer)):
        return (int(value),) * ndim
    try:
        return tuple(int(v) for v in value)
    except TypeError:
        raise TypeError(f"reduce_window: {name} must be an int or a sequence of ints, got {value!r}") from None


def _is_computation(value: Any) -> bool:
    try:
        _computation_name(value)
    except ValueError:
        return False
    return True


def reduce_window(operand: Any, *args: Any, **kwargs: Any) -> Any:
    """JAX's ``lax.reduce_window(operand, init_value, computation, window_dimensions,
    window_strides=None, padding='VALID', base_dilation=None, window_dilation=None)``: reduce each
    window of ``operand`` with ``computation`` (``lax.add``, ``lax.max``, ``lax.min`` or 'sum',
    'max', 'min'), starting from ``init_value`` (folded in once per window, as JAX does). fgrad's shorter form without ``init_value`` (the computation's identity) is
    accepted too. 2x2 max-pooling of an NHWC batch, as stax writes it:

    >>> reduce_window(x, -fnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")   # doctest: +SKIP
    """
    short = args and (isinstance(args[0], str) or _is_computation(args[0]))   # no init_value can be either
    if short or (not args and "init_value" not in kwargs):
        return _reduce_window(operand, *args, **kwargs)
    return _reduce_window_from(operand, *args, **kwargs)


def _reduce_window_from(operand: Any, init_value: Any, computation: Any, window_dimensions: Sequence[int],
                        window_strides: Sequence[int] | None = None, padding: Any = "VALID",
                        base_dilation: Sequence[int] | None = None,
                        window_dilation: Sequence[int] | None = None) -> Any:
    """``reduce_window`` with JAX's ``init_value``: the reduction with the identity, then the
    initial value folded in once (as JAX: padding adds nothing beyond it)."""
    name = _computation_name(computation)
    base = 1 if base_dilation is None else base_dilation
    dilation = 1 if window_dilation is None else window_dilation
    out = _reduce_window(operand, name, window_dimensions, window_strides, padding, base, dilation)
    dtype = get_aval(operand).dtype
    if _is_identity(init_value, name, dtype):
        return out
    init = full(get_aval(out).shape, as_operand(init_value, dtype), dtype)
    if name == "max":
        return elementwise.max(out, init)
    if name == "min":
        return elementwise.min(out, init)
    return elementwise.add(out, init)


def _is_identity(value: Any, name: str, dtype: np.dtype) -> bool:
    """Whether ``value`` is a concrete scalar equal to the identity of ``name`` in ``dtype``."""
    try:
        v = np.asarray(value)
    except Exception:   # a traced value: fold it in
        return False
    if v.ndim:
        raise ValueError(f"reduce_window: init_value must be a scalar, got shape {v.shape}")
    if name == "sum":
        return v == 0
    info = np.finfo(dtype) if dtypes.is_float(dtype) else (np.iinfo(dtype) if dtype.kind in "iu" else None)
    if name == "max":
        return bool(v == -np.inf or (info is not None and v <= info.min) or (dtype.kind == "b" and not v))
    return bool(v == np.inf or (info is not None and v >= info.max) or (dtype.kind == "b" and v))


def _reduce_window(x: Any, computation: Any, window_dimensions: Sequence[int],
                   window_strides: Sequence[int] | None = None, padding: Any = "VALID",
                   base_dilation: Sequence[int] | int = 1, window_dilation: Sequence[int] | int = 1) -> Any:
    """Reduce each window of ``x`` with ``computation`` (``"sum"``, ``"max"`` or ``"min"``), the
    computation's identity filling padding (fgrad's form without ``init_value``).

    >>> reduce_window(x, "max", (1, 1, 2, 2), (1, 1, 2, 2), "VALID")   # doctest: +SKIP
    """
    name = _computation_name(computation)
    ndim = get_aval(x).ndim
    window = _int_tuple("window_dimensions", window_dimensions, ndim)
    strides = _int_tuple("window_strides", window_strides, ndim)
    base = _int_tuple("base_dilation", base_dilation, ndim)
    dilation = _int_tuple("window_dilation", window_dilation, ndim)
    if isinstance(padding, str):
        shape = get_aval(x).shape
        # as JAX: the operand's own (not base-dilated) shape, the dilated window
        pads = padtype_to_pads(shape, [dilate_shape(k, d) for k, d in zip(window, dilation)], strides, padding)
    else:
        try:
            pads = tuple((int(lo), int(hi)) for lo, hi in padding)
        except (TypeError, ValueError):
            raise TypeError("reduce_window: padding must be 'SAME', 'VALID' or a sequence of "
                            f"(low, high) pairs, got {padding!r}") from None
    return _PRIMITIVES[name].bind(x, window_dimensions=window, window_strides=strides, padding=pads,
                                  base_dilation=base, window_dilation=dilation)


# --- reduce_window_sum: linear ----------------------------------------------------------------

jvp_rules[reduce_window_sum_p] = lambda p, t, **params: (reduce_window_sum_p.bind(p[0], **params),
                                                         reduce_window_sum_p.bind(t[0], **params))


def _reduce_window_sum_transpose(ct, x, *, window_dimensions, window_strides, padding, base_dilation,
                                 window_dilation):
    """Each input element receives the sum of the cotangents of the windows that cover it."""
    aval = x.aval
    if aval.size == 0 or get_aval(ct).size == 0:
        return [full(aval.shape, 0, aval.dtype)]
    out_sizes = get_aval(ct).shape
    pads = []
    for size, k, y, s, (lo, _), bd, wd in zip(aval.shape, window_dimensions, out_sizes, window_strides,
                                              padding, base_dilation, window_dilation):
        before = (k - 1) * wd - lo
        after = (size - 1) * bd + (k - 1) * wd + 1 - dilate_shape(y, s) - before
        pads.append((before, after))
    return [reduce_window_sum_p.bind(ct, window_dimensions=window_dimensions, window_strides=base_dilation,
                                     padding=tuple(pads), base_dilation=window_strides,
                                     window_dilation=window_dilation)]


transpose_rules[reduce_window_sum_p] = _reduce_window_sum_transpose


# --- select_and_gather_add / select_and_scatter_add -------------------------------------------

def _selected_positions(x: np.ndarray, select: str, params: dict) -> np.ndarray:
    """For each window, the flat index into ``x`` of its first max (min) element; -1 for padding.

    One pass per window tap keeps the best value and tap so far (a NaN beats everything, as
    in ``np.argmax``); the chosen tap's input coordinates are then computed, not gathered.
    """
    out_sizes = output_sizes(x.shape, **params)
    if int(np.prod(out_sizes, dtype=np.int64)) == 0 or x.size == 0:
        return np.full(out_sizes, -1, np.int64)
    if x.ndim == 0:
        return np.zeros((), np.int64)
    window, strides = params["window_dimensions"], params["window_strides"]
    padded = dilate_and_pad(x, params["base_dilation"], params["padding"], _identity(x.dtype, select))
    windows = window_view(padded, out_sizes, window, strides, params["window_dilation"])
    taps = list(_window_taps(window))
    best = np.array(windows[(Ellipsis, *taps[0])])
    best_tap = np.zeros(out_sizes, np.int8 if len(taps) < 128 else np.int32)
    beats, keep_best = (np.greater, np.maximum) if select == "max" else (np.less, np.minimum)
    for number, tap in enumerate(taps[1:], start=1):
        value = windows[(Ellipsis, *tap)]
        better = beats(value, best)
        if dtypes.kind(x.dtype) == "f":
            better |= np.isnan(value) & ~np.isnan(best)
        keep_best(best, value, out=best)  # NaN propagates, so the first NaN stays chosen
        best_tap += better * (best_tap.dtype.type(number) - best_tap)  # arithmetic beats masked stores
    return _flat_input_index(x.shape, best_tap, np.array(taps, np.int64).reshape(len(taps), x.ndim), params)


def _flat_input_index(shape: tuple, best_tap: np.ndarray, taps: np.ndarray, params: dict) -> np.ndarray:
    """Flat index into the input of each window's chosen tap (``taps[best_tap]``); -1 where it
    falls on padding or a base-dilation hole. Trivial dims (window 1, no padding) stay small
    broadcast arrays, so the cost is a few passes over the output."""
    flat = np.zeros((), np.int64)
    valid = np.ones((), bool)
    for dim, size in enumerate(shape):
        grid = np.arange(best_tap.shape[dim]).reshape([-1 if d == dim else 1 for d in range(len(shape))])
        stride, (low, high) = params["window_strides"][dim], params["padding"][dim]
        base, dilation = params["base_dilation"][dim], params["window_dilation"][dim]
        position = grid * stride - low  # among the dilated input
        if params["window_dimensions"][dim] > 1:
            position = position + taps[best_tap, dim] * dilation
        if low > 0 or high > 0 or base > 1:
            valid = valid & (position >= 0) & (position < dilate_shape(size, base))
        if base > 1:
            valid = valid & (position % base == 0)
            position = position // base
        flat = flat * size + position
    return np.where(valid, flat, -1) if valid.ndim else np.broadcast_to(flat, best_tap.shape)


def _select_and_gather_add_impl(t: np.ndarray, x: np.ndarray, *, select: str, **params) -> np.ndarray:
    where = _selected_positions(x, select, params)
    if t.size == 0:
        return np.zeros(where.shape, t.dtype)
    return np.where(where >= 0, t.reshape(-1)[np.maximum(where, 0)], t.dtype.type(0))


def _select_and_scatter_add_impl(ct: np.ndarray, x: np.ndarray, *, select: str, **params) -> np.ndarray:
    where = _selected_positions(x, select, params)
    bins = np.where(where >= 0, where, x.size).ravel()  # one spare bin collects the padding
    sums = np.bincount(bins, weights=ct.ravel(), minlength=x.size + 1)[:x.size]
    return sums.astype(ct.dtype).reshape(x.shape)


def _check_select(op: str, select: str, first: ShapedArray, x: ShapedArray) -> None:
    if select not in ("max", "min"):
        raise ValueError(f"{op}: select must be 'max' or 'min', got {select!r}")
    if not dtypes.is_float(first.dtype):
        raise shape_error(op, f"the values to move must be floating point, got {first.str_short()}")


def _select_and_gather_add_rule(t: ShapedArray, x: ShapedArray, *, select: str, **params) -> ShapedArray:
    op = "select_and_gather_add"
    _check_window_params(op, x, params)
    _check_select(op, select, t, x)
    if t.shape != x.shape:
        raise shape_error(op, f"the tangent {t.str_short()} must have the operand's shape {x.str_short()}")
    return ShapedArray(output_sizes(x.shape, **params), t.dtype)


def _select_and_scatter_add_rule(ct: ShapedArray, x: ShapedArray, *, select: str, **params) -> ShapedArray:
    op = "select_and_scatter_add"
    _check_window_params(op, x, params)
    _check_select(op, select, ct, x)
    expected = output_sizes(x.shape, **params)
    if ct.shape != expected:
        raise shape_error(op, f"the cotangent {ct.str_short()} must have the window output shape {expected}")
    return ShapedArray(x.shape, ct.dtype)


select_and_gather_add_p = Primitive("select_and_gather_add")
select_and_gather_add_p.def_impl(_select_and_gather_add_impl)
select_and_gather_add_p.def_abstract_eval(_select_and_gather_add_rule)
select_and_scatter_add_p = Primitive("select_and_scatter_add")
select_and_scatter_add_p.def_impl(_select_and_scatter_add_impl)
select_and_scatter_add_p.def_abstract_eval(_select_and_scatter_add_rule)


def _linear_in_first(prim: Primitive) -> Callable:
    """JVP of a primitive linear in its first operand and piecewise constant in its second."""
    def rule(primals, tangents, **params):
        (values, x), (t, _) = primals, tangents
        return prim.bind(values, x, **params), None if t is None else prim.bind(t, x, **params)
    return rule


def _transpose_into(other: Primitive) -> Callable:
    def rule(ct, values, x, **params):
        if is_undefined(x):
            raise TypeError(f"{other.name}: the selecting operand cannot be linear")
        return [other.bind(ct, x, **params), None]
    return rule


def _select_vmap(prim: Primitive) -> Callable:
    def rule(axis, vals, dims, **params):
        (values, x), (vd, xd) = vals, dims
        values, x = moveaxis(values, vd, 0, axis.size), moveaxis(x, xd, 0, axis.size)
        return prim.bind(values, x, **_insert_unit_window(params, 0)), 0
    return rule


for _prim, _other in ((select_and_gather_add_p, select_and_scatter_add_p),
                      (select_and_scatter_add_p, select_and_gather_add_p)):
    jvp_rules[_prim] = _linear_in_first(_prim)
    transpose_rules[_prim] = _transpose_into(_other)
    vmap_rules[_prim] = _select_vmap(_prim)


def _chooser_jvp(prim: Primitive, select: str) -> Callable:
    def rule(primals, tangents, **params):
        (x,), (t,) = primals, tangents
        return prim.bind(x, **params), select_and_gather_add_p.bind(t, x, select=select, **params)
    return rule


jvp_rules[reduce_window_max_p] = _chooser_jvp(reduce_window_max_p, "max")
jvp_rules[reduce_window_min_p] = _chooser_jvp(reduce_window_min_p, "min")


# --- partition rules (the data-parallel pass, fgrad.core.partition) ----------------------------------------

def _window_is_trivial_for_partition(params: dict, d: int) -> bool:
    pad = params.get("padding")
    return (params["window_dimensions"][d] == 1 and params["window_strides"][d] == 1
            and (pad is None or tuple(pad[d]) == (0, 0))
            and params.get("base_dilation", [1] * (d + 1))[d] == 1
            and params.get("window_dilation", [1] * (d + 1))[d] == 1)


def _window_partition(linear: bool) -> Callable:
    def rule(ctx, eqn, ins):
        layouts = [l for _, l in ins]
        if PARTIAL in layouts and not (linear and layouts == [PARTIAL]):
            ins = [(ctx.full(v, l), None) for v, l in ins]
            layouts = [None] * len(ins)
        if layouts == [PARTIAL]:
            return with_layout(bind_like(eqn, [ins[0][0]]), PARTIAL)
        split = next((l for l in layouts if isinstance(l, int)), None)
        if split is None:
            return with_layout(bind_like(eqn, [v for v, _ in ins]), None)
        if not _window_is_trivial_for_partition(eqn.params, split):
            raise partition_error(eqn, f"its window spans the split dimension {split}")
        return with_layout(bind_like(eqn, [ctx.split(v, l, split, eqn) for v, l in ins]), split)
    return rule


partition_rules[reduce_window_sum_p] = _window_partition(linear=True)
for _prim in (reduce_window_max_p, reduce_window_min_p, select_and_scatter_add_p, select_and_gather_add_p):
    partition_rules[_prim] = _window_partition(linear=False)
