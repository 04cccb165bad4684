"""Reductions: reduce_sum, reduce_max, reduce_min, reduce_prod, reduce_and, reduce_or,
argmax, argmin and cumsum.

Every reduction takes its axes as a sorted tuple of non-negative ints (the lax-level
functions canonicalise them). Conventions, as in JAX:

- ``reduce_max``/``reduce_min`` over an empty axis give the identity (-inf/+inf, or the
  integer type's min/max); NaN propagates. Their derivative splits the tangent equally
  among the positions that attain the extremum (ties).
- ``reduce_prod``'s derivative is exact where some elements are zero: it is computed by
  multiplying pairs level by level (O(n) work), never by dividing by ``x``.
- ``argmax``/``argmin`` return the first occurrence on ties and the first NaN if there is
  one (NumPy's behaviour); they are not differentiable.
- ``cumsum`` is linear; its transpose is the cumsum running the other way.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from fgrad.core import dtypes
from fgrad.core import partition
from fgrad.core.partition import PARTIAL, bind_like, partition_rules, replicated, with_layout
from fgrad.core.primitive import Primitive
from fgrad.core.trace import get_aval
from fgrad.core.types import ShapedArray
from fgrad.ops._util import canonical_axes, shape_error
from fgrad.core.rules import jvp_rules, not_differentiable, transpose_rules, vmap_rules
from fgrad.ops import elementwise as ew
from fgrad.ops import shape as sh

__all__ = ["reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "reduce_and", "reduce_or",
           "argmax", "argmin", "cumsum"]


# --- shared rules ----------------------------------------------------------------------------

def _reduced_shape(x: ShapedArray, axes: tuple) -> tuple:
    return tuple(s for i, s in enumerate(x.shape) if i not in axes)


def _kept_dims(ndim: int, axes: tuple) -> tuple:
    return tuple(i for i in range(ndim) if i not in axes)


def _reduce_rule(op: str, allowed_kinds: str = "biuf") -> Callable:
    def rule(x: ShapedArray, axes: tuple) -> ShapedArray:
        canonical_axes(op, axes, x.ndim)
        if dtypes.kind(x.dtype) not in allowed_kinds:
            raise shape_error(op, f"does not accept {x.str_short()}",
                              _dtype_fix(allowed_kinds))
        return ShapedArray(_reduced_shape(x, axes), x.dtype, x.weak_type)
    return rule


def _dtype_fix(allowed_kinds: str) -> str:
    if allowed_kinds == "b":
        return "It reduces bool arrays; compare first (e.g. x != 0)"
    return "Convert the operand with .astype(...) to a numeric dtype"


def _axes_vmap(prim: Primitive) -> Callable:
    """vmap rule of a single-operand reduction over ``axes``: shift the axes past the batch dim."""
    def rule(axis, vals, dims, axes, **params):
        (x,), (d,) = vals, dims
        new_axes = tuple(a + (a >= d) for a in axes)
        out_dim = d - sum(a < d for a in new_axes)
        return prim.bind(x, axes=new_axes, **params), out_dim
    return rule


def _define(name: str, impl: Callable, rule: Callable) -> Primitive:
    prim = Primitive(name)
    prim.def_impl(impl)
    prim.def_abstract_eval(rule)
    vmap_rules[prim] = _axes_vmap(prim)
    return prim


def _canonical(op: str, x: Any, axes: Sequence[int]) -> tuple:
    if isinstance(axes, (int, np.integer)):
        axes = (int(axes),)
    return tuple(sorted(canonical_axes(op, tuple(int(a) for a in axes), get_aval(x).ndim)))


def _broadcast_back(y: Any, like: ShapedArray, axes: tuple) -> Any:
    return sh.broadcast_in_dim(y, like.shape, _kept_dims(like.ndim, axes))


# --- reduce_sum ------------------------------------------------------------------------------

def _accumulator(dtype: np.dtype) -> np.dtype:
    """float16 and bfloat16 sums and products accumulate in float32 and round once (as jnp.sum
    does, and jit: NumPy's float16 reductions round after every step along some axes, not others)."""
    return np.dtype(np.float32) if dtypes.is_half(dtype) else dtype


def _reduce_sum_impl(x: np.ndarray, axes: tuple) -> np.ndarray:
    return np.sum(x, axis=axes, dtype=_accumulator(x.dtype)).astype(x.dtype, copy=False)


reduce_sum_p = _define("reduce_sum", _reduce_sum_impl, _reduce_rule("reduce_sum", "iufc"))
jvp_rules[reduce_sum_p] = lambda p, t, axes: (reduce_sum(p[0], axes), reduce_sum(t[0], axes))


def _reduce_sum_transpose(ct, x, axes):
    return [_broadcast_back(ct, x.aval, axes)]


transpose_rules[reduce_sum_p] = _reduce_sum_transpose


def reduce_sum(x: Any, axes: Sequence[int]) -> Any:
    """Sum ``x`` over ``axes``.

    >>> reduce_sum(fgrad.numpy.ones((2, 3)), (1,))   # [3., 3.]   # doctest: +SKIP
    """
    axes = _canonical("reduce_sum", x, axes)
    shape = get_aval(x).shape
    if axes and math.prod(shape[a] for a in axes) == 1:
        # XLA simplifies a sum of one element to the element, so -0. stays -0. (a fold from +0. would not)
        return sh.reshape(x, tuple(n for d, n in enumerate(shape) if d not in axes))
    return reduce_sum_p.bind(x, axes=axes)


# --- reduce_max / reduce_min -----------------------------------------------------------------

def _identity(dtype: np.dtype, largest: bool) -> Any:
    """The identity of max (``largest=False``) or min (``largest=True``) for ``dtype``."""
    if dtype == np.bool_:
        return np.bool_(largest)
    if dtypes.is_complex(dtype):          # lexicographic order: (±inf, ±inf) bounds it
        bound = np.inf if largest else -np.inf
        return dtype.type(complex(bound, bound))
    if dtypes.kind(dtype) == "f":
        return dtype.type(np.inf if largest else -np.inf)
    info = np.iinfo(dtype)
    return dtype.type(info.max if largest else info.min)


def _reduce_max_impl(x: np.ndarray, axes: tuple) -> np.ndarray:
    return np.max(x, axis=axes, initial=_identity(x.dtype, largest=False))


def _reduce_min_impl(x: np.ndarray, axes: tuple) -> np.ndarray:
    return np.min(x, axis=axes, initial=_identity(x.dtype, largest=True))


def _chooser_jvp(reducer: Callable) -> Callable:
    """JVP of max/min reductions: the mean of the tangent over the positions that attain the result
    (JAX's rule: where none does, a NaN result, it is 0 / 0 = NaN)."""
    def rule(primals, tangents, axes):
        (x,), (t,) = primals, tangents
        out = reducer(x, axes)
        aval = get_aval(x)
        t_dtype = get_aval(t).dtype
        location = ew.convert_element_type(ew.eq(x, _broadcast_back(out, aval, axes)), dtypes.real_dtype(t_dtype))
        counts = reduce_sum(location, axes)
        if dtypes.is_complex(t_dtype):    # the counting stays real (complex has no max)
            location, counts = ew.convert_element_type(location, t_dtype), ew.convert_element_type(counts, t_dtype)
        return out, ew.div(reduce_sum(ew.mul(t, location), axes), counts)
    return rule


# complex: lexicographic (real part, then imaginary part), as JAX's reduce_max
reduce_max_p = _define("reduce_max", _reduce_max_impl, _reduce_rule("reduce_max", "biufc"))
reduce_min_p = _define("reduce_min", _reduce_min_impl, _reduce_rule("reduce_min", "biufc"))


def reduce_max(x: Any, axes: Sequence[int]) -> Any:
    """Maximum of ``x`` over ``axes`` (-inf, or the dtype's min, over an empty axis)."""
    return reduce_max_p.bind(x, axes=_canonical("reduce_max", x, axes))


def reduce_min(x: Any, axes: Sequence[int]) -> Any:
    """Minimum of ``x`` over ``axes`` (+inf, or the dtype's max, over an empty axis)."""
    return reduce_min_p.bind(x, axes=_canonical("reduce_min", x, axes))


jvp_rules[reduce_max_p] = _chooser_jvp(reduce_max)
jvp_rules[reduce_min_p] = _chooser_jvp(reduce_min)


# --- reduce_prod -----------------------------------------------------------------------------

def _reduce_prod_impl(x: np.ndarray, axes: tuple) -> np.ndarray:
    return np.prod(x, axis=axes, dtype=_accumulator(x.dtype)).astype(x.dtype, copy=False)


reduce_prod_p = _define("reduce_prod", _reduce_prod_impl, _reduce_rule("reduce_prod", "iufc"))


def reduce_prod(x: Any, axes: Sequence[int]) -> Any:
    """Product of ``x`` over ``axes`` (1 over an empty axis)."""
    return reduce_prod_p.bind(x, axes=_canonical("reduce_prod", x, axes))


def _group_first(x: Any, axes: tuple) -> Any:
    """``x`` with the reduced axes flattened into one leading axis: (n, *kept)."""
    aval = get_aval(x)
    kept = _kept_dims(aval.ndim, axes)
    n = int(np.prod([aval.shape[a] for a in axes], dtype=np.int64))
    return sh.reshape(sh.transpose(x, axes + kept), (n, *[aval.shape[i] for i in kept]))


def _pairwise_product_jvp(x: Any, t: Any) -> tuple:
    """Product over the leading axis and its tangent, multiplying pairs level by level.

    Only products appear (never a division by ``x``), so the tangent is exact where
    elements are zero, and differentiating again goes through ``mul``'s own rule.
    """
    leftovers = []
    while get_aval(x).shape[0] > 1:
        n = get_aval(x).shape[0]
        if n % 2:  # the odd row out waits until the end
            leftovers.append((sh.slice_in_dim(x, n - 1, n), sh.slice_in_dim(t, n - 1, n)))
            x, t = sh.slice_in_dim(x, 0, n - 1), sh.slice_in_dim(t, 0, n - 1)
        a, b = sh.slice_in_dim(x, 0, None, 2), sh.slice_in_dim(x, 1, None, 2)
        ta, tb = sh.slice_in_dim(t, 0, None, 2), sh.slice_in_dim(t, 1, None, 2)
        x, t = ew.mul(a, b), ew.add(ew.mul(ta, b), ew.mul(a, tb))
    for row, t_row in leftovers:
        x, t = ew.mul(x, row), ew.add(ew.mul(t, row), ew.mul(x, t_row))
    shape = get_aval(x).shape[1:]
    return sh.reshape(x, shape), sh.reshape(t, shape)


def _reduce_prod_jvp(primals, tangents, axes):
    (x,), (t,) = primals, tangents
    out = reduce_prod(x, axes)
    if int(np.prod([get_aval(x).shape[a] for a in axes], dtype=np.int64)) == 0:
        return out, reduce_sum(t, axes)  # an empty product is the constant 1
    _, t_out = _pairwise_product_jvp(_group_first(x, axes), _group_first(t, axes))
    return out, t_out


jvp_rules[reduce_prod_p] = _reduce_prod_jvp


# --- reduce_and / reduce_or ------------------------------------------------------------------

def _bitwise_reduce_impl(ufunc: np.ufunc) -> Callable:
    def impl(x: np.ndarray, axes: tuple) -> np.ndarray:
        if x.dtype == np.bool_:
            return (np.all if ufunc is np.bitwise_and else np.any)(x, axis=axes)
        identity = x.dtype.type(-1 if ufunc is np.bitwise_and and x.dtype.kind == "i" else 0)
        if ufunc is np.bitwise_and and x.dtype.kind == "u":
            identity = x.dtype.type(np.iinfo(x.dtype).max)
        return ufunc.reduce(x, axis=axes, initial=identity).astype(x.dtype)
    return impl


reduce_and_p = _define("reduce_and", _bitwise_reduce_impl(np.bitwise_and), _reduce_rule("reduce_and", "biu"))
reduce_or_p = _define("reduce_or", _bitwise_reduce_impl(np.bitwise_or), _reduce_rule("reduce_or", "biu"))
not_differentiable.update({reduce_and_p, reduce_or_p})


def reduce_and(x: Any, axes: Sequence[int]) -> Any:
    """Logical (bool) or bitwise (int) AND over ``axes``; ``all`` is ``reduce_and`` of a bool array."""
    return reduce_and_p.bind(x, axes=_canonical("reduce_and", x, axes))


def reduce_or(x: Any, axes: Sequence[int]) -> Any:
    """Logical (bool) or bitwise (int) OR over ``axes``; ``any`` is ``reduce_or`` of a bool array."""
    return reduce_or_p.bind(x, axes=_canonical("reduce_or", x, axes))


# --- argmax / argmin -------------------------------------------------------------------------

def _arg_rule(op: str) -> Callable:
    def rule(x: ShapedArray, axes: tuple, index_dtype: np.dtype) -> ShapedArray:
        canonical_axes(op, axes, x.ndim)
        if len(axes) != 1:
            raise shape_error(op, f"reduces exactly one axis, got axes={axes}")
        if x.shape[axes[0]] == 0:
            raise ValueError(f"{op}: axis {axes[0]} of {x.str_short()} is empty, so it has no "
                             f"{op[3:]}imum; reduce a non-empty axis")
        if not dtypes.is_int(index_dtype):
            raise shape_error(op, f"index_dtype must be an integer dtype, got {index_dtype}")
        return ShapedArray(_reduced_shape(x, axes), index_dtype)
    return rule


def _arg_impl(np_fn: Callable) -> Callable:
    def impl(x: np.ndarray, axes: tuple, index_dtype: np.dtype) -> np.ndarray:
        return np.asarray(np_fn(x, axis=axes[0]), dtype=index_dtype)
    return impl


argmax_p = _define("argmax", _arg_impl(np.argmax), _arg_rule("argmax"))
argmin_p = _define("argmin", _arg_impl(np.argmin), _arg_rule("argmin"))
not_differentiable.update({argmax_p, argmin_p})


def _arg_bind(prim: Primitive, x: Any, axis: int, index_dtype: Any) -> Any:
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise TypeError(f"{prim.name}: axis must be an int, got {axis!r}")
    index_dtype = dtypes.canonicalize(dtypes.default_int() if index_dtype is None else index_dtype)
    return prim.bind(x, axes=_canonical(prim.name, x, (axis,)), index_dtype=index_dtype)


def argmax(x: Any, axis: int, index_dtype: Any = None) -> Any:
    """Index of the largest element along ``axis`` (first one on ties, first NaN if any)."""
    return _arg_bind(argmax_p, x, axis, index_dtype)


def argmin(x: Any, axis: int, index_dtype: Any = None) -> Any:
    """Index of the smallest element along ``axis`` (first one on ties, first NaN if any)."""
    return _arg_bind(argmin_p, x, axis, index_dtype)


# --- cumsum ----------------------------------------------------------------------------------

def _cumsum_rule(x: ShapedArray, axis: int, reverse: bool) -> ShapedArray:
    canonical_axes("cumsum", (axis,), x.ndim)
    if dtypes.kind(x.dtype) not in "iufc":
        raise shape_error("cumsum", f"does not accept {x.str_short()}", _dtype_fix("iufc"))
    return x


def _cumsum_impl(x: np.ndarray, axis: int, reverse: bool) -> np.ndarray:
    wide = _accumulator(x.dtype)
    if not reverse:
        out = np.cumsum(x, axis=axis, dtype=wide)
    else:
        out = np.flip(np.cumsum(np.flip(x, axis), axis=axis, dtype=wide), axis)
    if dtypes.kind(out.dtype) in "fc":
        out += 0.0   # XLA folds from +0.: running sums of -0. are +0. (NumPy starts from the element)
    return out.astype(x.dtype, copy=False)


cumsum_p = Primitive("cumsum")
cumsum_p.def_impl(_cumsum_impl)
cumsum_p.def_abstract_eval(_cumsum_rule)
jvp_rules[cumsum_p] = lambda p, t, axis, reverse: (cumsum(p[0], axis, reverse), cumsum(t[0], axis, reverse))
transpose_rules[cumsum_p] = lambda ct, x, axis, reverse: [cumsum(ct, axis, not reverse)]


def _cumsum_vmap(axis_data, vals, dims, axis, reverse):
    (x,), (d,) = vals, dims
    return cumsum(x, axis + (axis >= d), reverse), d


vmap_rules[cumsum_p] = _cumsum_vmap


def cumsum(x: Any, axis: int = 0, reverse: bool = False) -> Any:
    """Running sum along ``axis`` (from the end when ``reverse``).

    >>> cumsum(fgrad.numpy.ones(3))   # [1., 2., 3.]   # doctest: +SKIP
    """
    (axis,) = canonical_axes("cumsum", (int(axis),), get_aval(x).ndim)
    if get_aval(x).shape[axis] == 1:
        return x   # XLA's: a running sum of one element is the element (-0. stays -0.)
    return cumsum_p.bind(x, axis=axis, reverse=bool(reverse))


# --- partition rules (the data-parallel pass, fgrad.core.partition) ----------------------------------------

def _reduce_sum_split_partition(ctx, eqn, x, d, rest):
    axes = eqn.params["axes"]
    if d in axes:  # each device sums its block: the terms of a partial sum
        return with_layout(bind_like(eqn, [x]), PARTIAL)
    return with_layout(bind_like(eqn, [x]), d - sum(1 for a in axes if a < d))


def _extremum_partition(combine: str) -> Callable:
    """reduce_max/min: a reduced split dimension's per-device results meet in ``ctx.pmax``/``ctx.pmin``."""
    def rule(ctx, eqn, ins):
        (x, layout), = ins
        axes = eqn.params["axes"]
        if not isinstance(layout, int):
            return replicated(ctx, eqn, ins)
        out = bind_like(eqn, [x])[0]
        if layout in axes:  # each device reduces its block, then the blocks' results meet
            return [(getattr(ctx, combine)(out), None)]
        return [(out, layout - sum(1 for a in axes if a < layout))]
    return rule


partition_rules[reduce_sum_p] = partition.linear_unary(_reduce_sum_split_partition)
partition_rules[reduce_max_p] = _extremum_partition("pmax")
partition_rules[reduce_min_p] = _extremum_partition("pmin")
for _prim in (reduce_prod_p, reduce_and_p, reduce_or_p, argmax_p, argmin_p):
    partition_rules[_prim] = partition.along_dims(lambda p: p["axes"], reduces=True)
partition_rules[cumsum_p] = partition.along_dims(lambda p: (p["axis"],), reduces=False)
