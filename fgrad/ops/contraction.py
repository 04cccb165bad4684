"""Contractions: ``dot_general`` and ``conv_general_dilated``.

Both are primitives (not compositions of multiplies and sums) because the lowering
gives them dedicated, tiled contraction kernels; their gradients are again
dot_generals and convolutions (plus transposes, reshapes and ``rev``), so the
backward pass of a convnet runs on the same kernels. Pooling (``reduce_window``)
is likewise a primitive, in ``fgrad/ops/window.py``; softmax is a composition of
elementwise ops and reductions, which fuse once compiled.

Layouts follow JAX:

- ``dot_general(lhs, rhs, ((lhs_contract, rhs_contract), (lhs_batch, rhs_batch)))``
  returns batch dims, then lhs free dims, then rhs free dims (each in operand order).
- ``conv_general_dilated`` takes ``dimension_numbers`` as ``(lhs_spec, rhs_spec, out_spec)``
  strings such as ``("NCHW", "OIHW", "NCHW")`` or a ``ConvDimensionNumbers`` of index
  tuples (batch/out-feature dim, feature/in-feature dim, spatial dims...); padding is a
  sequence of ``(low, high)`` pairs (negative crops) or ``"SAME"``/``"VALID"``.

Convolution rules work in the canonical layout (N, C, spatial...) / (O, I, spatial...)
and transpose at the edges; the transposes are cheap and fuse when compiled.
"""
from __future__ import annotations

import enum
from typing import Any, NamedTuple, Sequence, Union

import numpy as np

from fgrad.core import dtypes
from fgrad.core.partition import PARTIAL, bind_like, layout_str, partition_error, partition_rules, rank, with_layout
from fgrad.core.primitive import Primitive
from fgrad.core.trace import get_aval
from fgrad.core.types import ShapedArray
from fgrad.ops._util import shape_error
from fgrad.ops.window import dilate_and_pad, dilate_shape, output_sizes, padtype_to_pads, window_view
from fgrad.core.rules import is_undefined, jvp_rules, symbolic_zero_rules, transpose_rules, vmap_rules
from fgrad.ops.shape import broadcast_in_dim, full, moveaxis, reshape, rev, transpose
from fgrad.ops.elementwise import add, convert_element_type, select_n

__all__ = ["dot_general", "conv_general_dilated", "conv_transpose", "ConvDimensionNumbers", "conv_dimension_numbers",
           "Precision", "PrecisionLike", "DotDimensionNumbers"]


#: ``jax.lax.DotDimensionNumbers``: ``((lhs_contracting, rhs_contracting), (lhs_batch, rhs_batch))``
DotDimensionNumbers = tuple[tuple[Sequence[int], Sequence[int]], tuple[Sequence[int], Sequence[int]]]


class Precision(enum.Enum):
    """The precision of a contraction's float32 products, as JAX's ``lax.Precision``:
    ``DEFAULT``, ``HIGH`` or ``HIGHEST``; ``Precision("highest")`` (or "float32", "high",
    "tensorfloat32", "bfloat16_3x", "default", "bfloat16", "fastest") parses JAX's names.

    fgrad computes float32 contractions in full float32 on the CPU, which meets every level.
    On a GPU the global ``fgrad.config.matmul_precision`` decides (a per-call level does not
    override it yet).
    """

    DEFAULT = 0
    HIGH = 1
    HIGHEST = 2

    @classmethod
    def _missing_(cls, value: object) -> "Precision | None":
        if isinstance(value, str):
            return _PRECISION_NAMES.get(value.lower())
        return None

    def __str__(self) -> str:
        return self.name


_PRECISION_NAMES = {"default": Precision.DEFAULT, "fastest": Precision.DEFAULT, "bfloat16": Precision.DEFAULT,
                    "high": Precision.HIGH, "bfloat16_3x": Precision.HIGH, "tensorfloat32": Precision.HIGH,
                    "highest": Precision.HIGHEST, "float32": Precision.HIGHEST}


def canonical_precision(precision: Any, op: str) -> Any:
    """``precision`` checked as JAX accepts it: None, a ``Precision`` or its name, or a pair of
    them (one per operand); anything else raises a ValueError naming ``op``."""
    if precision is None:
        return None
    if isinstance(precision, (tuple, list)):
        if len(precision) != 2:
            raise ValueError(f"{op}: precision must be one level or a (lhs, rhs) pair, got {precision!r}")
        return tuple(canonical_precision(p, op) for p in precision)
    try:
        return Precision(precision)
    except ValueError:
        raise ValueError(f"{op}: unknown precision={precision!r}; use None, fgrad.lax.Precision.DEFAULT/"
                         f"HIGH/HIGHEST or one of {sorted(_PRECISION_NAMES)}") from None


def _inverse_permutation(perm: Sequence[int]) -> tuple:
    return tuple(int(i) for i in np.argsort(perm))


def _compose(first: Sequence[int], then: Sequence[int]) -> tuple:
    """The permutation of ``transpose(transpose(x, first), then)``."""
    return tuple(first[i] for i in then)


def _add_tangents(a: Any, b: Any) -> Any:
    if a is None:
        return b
    return a if b is None else add(a, b)


# ============================================================================================
# dot_general
# ============================================================================================

def _free_dims(ndim: int, contract: tuple, batch: tuple) -> tuple:
    return tuple(i for i in range(ndim) if i not in contract and i not in batch)


def _check_dims(op: str, which: str, dims: tuple, ndim: int, shape_str: str) -> None:
    if any(not 0 <= d < ndim for d in dims) or len(set(dims)) != len(dims):
        raise shape_error(op, f"{which} {dims} must be distinct axes of the operand {shape_str}")


def _dot_general_rule(lhs: ShapedArray, rhs: ShapedArray, dimension_numbers: tuple,
                      preferred_element_type: np.dtype | None) -> ShapedArray:
    op = "dot_general"
    (lc, rc), (lb, rb) = dimension_numbers
    for which, dims, aval in (("lhs_contracting", lc, lhs), ("rhs_contracting", rc, rhs),
                              ("lhs_batch", lb, lhs), ("rhs_batch", rb, rhs)):
        _check_dims(op, which, dims, aval.ndim, aval.str_short())
    if set(lc) & set(lb) or set(rc) & set(rb):
        raise shape_error(op, f"an axis cannot be both contracting and batch: {dimension_numbers}")
    if len(lc) != len(rc) or len(lb) != len(rb):
        raise shape_error(op, f"lhs and rhs need as many contracting dims and as many batch dims, "
                          f"got {dimension_numbers}")
    for kind, ldims, rdims in (("contracting", lc, rc), ("batch", lb, rb)):
        lsizes = tuple(lhs.shape[d] for d in ldims)
        rsizes = tuple(rhs.shape[d] for d in rdims)
        if lsizes != rsizes:
            raise shape_error(op, f"{kind} dims of {lhs.str_short()} (axes {ldims}, sizes {lsizes}) "
                              f"and {rhs.str_short()} (axes {rdims}, sizes {rsizes}) must match")
    if lhs.dtype != rhs.dtype:
        raise shape_error(op, f"operands must have the same dtype, got {lhs.str_short()} and "
                          f"{rhs.str_short()}", "Convert one with lax.convert_element_type")
    if lhs.dtype == dtypes.bool_:
        raise shape_error(op, f"does not accept bool operands ({lhs.str_short()})",
                          "Convert them to a numeric dtype first")
    shape = (*[lhs.shape[d] for d in lb], *[lhs.shape[d] for d in _free_dims(lhs.ndim, lc, lb)],
             *[rhs.shape[d] for d in _free_dims(rhs.ndim, rc, rb)])
    dtype = lhs.dtype if preferred_element_type is None else preferred_element_type
    return ShapedArray(shape, dtype, lhs.weak_type and rhs.weak_type)


def _dot_general_impl(lhs: np.ndarray, rhs: np.ndarray, dimension_numbers: tuple,
                      preferred_element_type: np.dtype | None) -> np.ndarray:
    (lc, rc), (lb, rb) = dimension_numbers
    lf, rf = _free_dims(lhs.ndim, lc, lb), _free_dims(rhs.ndim, rc, rb)
    batch_shape = tuple(lhs.shape[d] for d in lb)
    lf_shape, rf_shape = tuple(lhs.shape[d] for d in lf), tuple(rhs.shape[d] for d in rf)
    k = int(np.prod([lhs.shape[d] for d in lc], dtype=np.int64))
    nb = int(np.prod(batch_shape, dtype=np.int64))
    dtype = lhs.dtype if preferred_element_type is None else preferred_element_type
    # (batch, free, contract) @ (batch, contract, free): one BLAS call per batch member
    a = np.transpose(lhs, (*lb, *lf, *lc)).reshape(nb, int(np.prod(lf_shape, dtype=np.int64)), k)
    b = np.transpose(rhs, (*rb, *rc, *rf)).reshape(nb, k, int(np.prod(rf_shape, dtype=np.int64)))
    wide = _compute_dtype(lhs.dtype, rhs.dtype, dtype)
    a, b = a.astype(wide, copy=False), b.astype(wide, copy=False)
    # one term per output is a product, as in XLA (a BLAS sum from +0 turns 0 * -x into +0)
    out = (a * b if k == 1 else np.matmul(a, b)).astype(dtype, copy=False)
    return out.reshape((*batch_shape, *lf_shape, *rf_shape))


def _compute_dtype(lhs: np.dtype, rhs: np.dtype, out: np.dtype) -> np.dtype:
    """A float16 result of wider operands is computed from the operands as they are, in float32,
    and rounded once (as JAX does; rounding the operands to float16 first loses more). bfloat16
    always accumulates in float32 (NumPy has no bfloat16 matmul loop of its own; jit does so)."""
    if dtypes.is_half(out) and (lhs != out or rhs != out or out == dtypes.bfloat16):
        return np.dtype(np.float32)
    return out


dot_general_p = Primitive("dot_general")
dot_general_p.def_impl(_dot_general_impl)
dot_general_p.def_abstract_eval(_dot_general_rule)


def dot_general(lhs: Any, rhs: Any, dimension_numbers: Any, precision: Any = None,
                preferred_element_type: Any = None) -> Any:
    """General tensor contraction (JAX's ``lax.dot_general``).

    ``dimension_numbers = ((lhs_contract, rhs_contract), (lhs_batch, rhs_batch))``; the
    result holds the batch dims, then lhs's free dims, then rhs's free dims.

    >>> dot_general(a, b, (((1,), (0,)), ((), ())))   # a @ b for matrices   # doctest: +SKIP
    """
    canonical_precision(precision, "dot_general")   # checked; see Precision for what it means
    try:
        (lc, rc), (lb, rb) = dimension_numbers
        dims = ((_int_tuple(lc), _int_tuple(rc)), (_int_tuple(lb), _int_tuple(rb)))
    except (TypeError, ValueError):
        raise TypeError("dot_general: dimension_numbers must be ((lhs_contracting, rhs_contracting), "
                        f"(lhs_batch, rhs_batch)) tuples of ints, got {dimension_numbers!r}") from None
    preferred = None if preferred_element_type is None else dtypes.canonicalize(preferred_element_type)
    return dot_general_p.bind(lhs, rhs, dimension_numbers=dims, preferred_element_type=preferred)


def _int_tuple(dims: Any) -> tuple:
    return tuple(int(d) for d in dims)


def _dot_general_jvp(primals, tangents, dimension_numbers, preferred_element_type):
    (lhs, rhs), (tl, tr) = primals, tangents
    params = dict(dimension_numbers=dimension_numbers, preferred_element_type=preferred_element_type)
    out = dot_general_p.bind(lhs, rhs, **params)
    t_out = _add_tangents(None if tl is None else dot_general_p.bind(tl, rhs, **params),
                          None if tr is None else dot_general_p.bind(lhs, tr, **params))
    return out, t_out


jvp_rules[dot_general_p] = _dot_general_jvp
symbolic_zero_rules.add(dot_general_p)   # bilinear: a constant operand adds no `x @ 0` term


def _to_dtype(x: Any, dtype: np.dtype) -> Any:
    return x if get_aval(x).dtype == dtype else convert_element_type(x, dtype)


def _dot_general_transpose(ct, lhs, rhs, dimension_numbers, preferred_element_type):
    """Each operand's cotangent contracts ct's dims that came from the *other* operand's free
    dims with those free dims; a final transpose restores the operand's axis order."""
    if is_undefined(lhs) and is_undefined(rhs):
        raise TypeError("dot_general: cannot transpose a product of two linear values (it is not linear)")
    (lc, rc), (lb, rb) = dimension_numbers
    lhs_aval = lhs.aval if is_undefined(lhs) else get_aval(lhs)
    rhs_aval = rhs.aval if is_undefined(rhs) else get_aval(rhs)
    lf, rf = _free_dims(lhs_aval.ndim, lc, lb), _free_dims(rhs_aval.ndim, rc, rb)
    nb = len(lb)
    ct_batch = tuple(range(nb))
    ct_lhs_free = tuple(range(nb, nb + len(lf)))
    ct_rhs_free = tuple(range(nb + len(lf), nb + len(lf) + len(rf)))
    if is_undefined(lhs):
        out = dot_general(_to_dtype(ct, rhs_aval.dtype), rhs, ((ct_rhs_free, rf), (ct_batch, rb)),
                          preferred_element_type=lhs_aval.dtype)
        # out: batch, lhs free, then rhs's remaining (contracting) dims in rhs order
        return [_transpose_to(out, (*lb, *lf, *[lc[i] for i in np.argsort(rc)])), None]
    out = dot_general(lhs, _to_dtype(ct, lhs_aval.dtype), ((lf, ct_lhs_free), (lb, ct_batch)),
                      preferred_element_type=rhs_aval.dtype)
    # out: batch, lhs's remaining (contracting) dims in lhs order, then rhs free
    return [None, _transpose_to(out, (*rb, *[rc[i] for i in np.argsort(lc)], *rf))]


def _transpose_to(x: Any, source: Sequence[int]) -> Any:
    """``x``'s axis k is the operand's axis ``source[k]``: put the axes in operand order."""
    return transpose(x, _inverse_permutation(source))


transpose_rules[dot_general_p] = _dot_general_transpose


def _shift(dims: tuple, at: int) -> tuple:
    """Renumber operand axes after a new axis is inserted at ``at``."""
    return tuple(d + (d >= at) for d in dims)


def _dot_general_vmap(axis, vals, dims, dimension_numbers, preferred_element_type):
    (lhs, rhs), (ld, rd) = vals, dims
    (lc, rc), (lb, rb) = dimension_numbers
    params = dict(preferred_element_type=preferred_element_type)
    if ld is not None and rd is not None:  # a new batch dimension, at the front of both
        lhs, rhs = moveaxis(lhs, ld, 0, axis.size), moveaxis(rhs, rd, 0, axis.size)
        new = ((_shift(lc, 0), _shift(rc, 0)), ((0, *_shift(lb, 0)), (0, *_shift(rb, 0))))
        return dot_general_p.bind(lhs, rhs, dimension_numbers=new, **params), 0
    lhs_ndim = get_aval(lhs).ndim - (ld is not None)
    if ld is not None:  # the batch dim is one more free dim of lhs
        new = ((_shift(lc, ld), rc), (_shift(lb, ld), rb))
        free = _free_dims(lhs_ndim + 1, new[0][0], new[1][0])
        return dot_general_p.bind(lhs, rhs, dimension_numbers=new, **params), len(lb) + free.index(ld)
    new = ((lc, _shift(rc, rd)), (lb, _shift(rb, rd)))
    free = _free_dims(get_aval(rhs).ndim, new[0][1], new[1][1])
    nlf = len(_free_dims(lhs_ndim, lc, lb))
    return dot_general_p.bind(lhs, rhs, dimension_numbers=new, **params), len(lb) + nlf + free.index(rd)


vmap_rules[dot_general_p] = _dot_general_vmap


# ============================================================================================
# conv_general_dilated
# ============================================================================================

class ConvDimensionNumbers(NamedTuple):
    """Where each role sits: ``lhs_spec = (batch, feature, *spatial)``,
    ``rhs_spec = (out_feature, in_feature, *spatial)``, ``out_spec = (batch, feature, *spatial)``."""
    lhs_spec: tuple
    rhs_spec: tuple
    out_spec: tuple


def _spec_from_string(spec: str, roles: str, rhs: str, ndim: int, which: str) -> tuple:
    if len(spec) != ndim or len(set(spec)) != ndim or not set(roles) <= set(spec):
        raise ValueError(f"conv_general_dilated: {which} spec {spec!r} must name each of the {ndim} "
                         f"dimensions once and contain {roles[0]!r} and {roles[1]!r}")
    spatial = [i for i, c in enumerate(spec) if c not in roles]
    if which != "rhs":  # spatial dims are matched to the kernel's by letter, ordered as in rhs
        if set(spec[i] for i in spatial) != set(c for c in rhs if c not in "OI"):
            raise ValueError(f"conv_general_dilated: the spatial letters of {which} spec {spec!r} "
                             f"must be those of the rhs spec {rhs!r}")
        spatial.sort(key=lambda i: rhs.index(spec[i]))
    return (spec.index(roles[0]), spec.index(roles[1]), *spatial)


def conv_dimension_numbers(lhs_shape: Sequence[int], rhs_shape: Sequence[int],
                           dimension_numbers: Any) -> ConvDimensionNumbers:
    """Canonicalise ``dimension_numbers`` (None, three strings such as ``("NCHW", "OIHW", "NCHW")``,
    or index tuples) to a ``ConvDimensionNumbers``."""
    ndim = len(lhs_shape)
    if len(rhs_shape) != ndim:
        raise TypeError(f"conv_general_dilated: lhs and rhs must have the same rank, got shapes "
                        f"{tuple(lhs_shape)} and {tuple(rhs_shape)}")
    if ndim < 2:
        raise TypeError(f"conv_general_dilated: operands need a batch and a feature dimension "
                        f"(rank >= 2), got shapes {tuple(lhs_shape)} and {tuple(rhs_shape)}")
    if dimension_numbers is None:
        default = tuple(range(ndim))
        return ConvDimensionNumbers(default, default, default)
    if isinstance(dimension_numbers, ConvDimensionNumbers):
        return ConvDimensionNumbers(*[tuple(int(d) for d in s) for s in dimension_numbers])
    try:
        lhs, rhs, out = dimension_numbers
    except (TypeError, ValueError):
        raise TypeError("conv_general_dilated: dimension_numbers must be None, a ConvDimensionNumbers "
                        f"or (lhs_spec, rhs_spec, out_spec), got {dimension_numbers!r}") from None
    if all(isinstance(s, str) for s in (lhs, rhs, out)):
        rhs_spec = _spec_from_string(rhs, "OI", rhs, ndim, "rhs")
        return ConvDimensionNumbers(_spec_from_string(lhs, "NC", rhs, ndim, "lhs"), rhs_spec,
                                    _spec_from_string(out, "NC", rhs, ndim, "out"))
    return ConvDimensionNumbers(*[tuple(int(d) for d in s) for s in (lhs, rhs, out)])


def _canonical_dimension_numbers(ndim: int) -> ConvDimensionNumbers:
    default = tuple(range(ndim))
    return ConvDimensionNumbers(default, default, default)


def _conv_rule(lhs: ShapedArray, rhs: ShapedArray, *, window_strides, padding, lhs_dilation,
               rhs_dilation, dimension_numbers, feature_group_count, batch_group_count,
               preferred_element_type) -> ShapedArray:
    op = "conv_general_dilated"
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    ndim = lhs.ndim
    if rhs.ndim != ndim:
        raise shape_error(op, f"lhs {lhs.str_short()} and rhs {rhs.str_short()} must have the same rank")
    for name, spec in (("lhs", lhs_spec), ("rhs", rhs_spec), ("out", out_spec)):
        if sorted(spec) != list(range(ndim)):
            raise shape_error(op, f"{name} spec {spec} is not a permutation of the {ndim} dimensions")
    nsp = ndim - 2
    for name, value in (("window_strides", window_strides), ("padding", padding),
                        ("lhs_dilation", lhs_dilation), ("rhs_dilation", rhs_dilation)):
        if len(value) != nsp:
            raise shape_error(op, f"{name} {value} needs one entry per spatial dimension ({nsp})")
    for name, value in (("window_strides", window_strides), ("lhs_dilation", lhs_dilation),
                        ("rhs_dilation", rhs_dilation)):
        if any(v < 1 for v in value):
            raise ValueError(f"{op}: {name} must be positive, got {value}")
    if lhs.dtype != rhs.dtype:
        raise shape_error(op, f"operands must have the same dtype, got {lhs.str_short()} and "
                          f"{rhs.str_short()}", "Convert one with lax.convert_element_type")
    if lhs.dtype == dtypes.bool_:
        raise shape_error(op, f"does not accept bool operands ({lhs.str_short()})")
    n, c, *in_sizes = (lhs.shape[d] for d in lhs_spec)
    o, i, *k_sizes = (rhs.shape[d] for d in rhs_spec)
    _check_groups(op, n, c, o, i, feature_group_count, batch_group_count, lhs, rhs)
    if any(k == 0 for k in k_sizes):
        raise shape_error(op, f"the kernel {rhs.str_short()} has an empty spatial dimension")
    out_sizes = output_sizes(in_sizes, k_sizes, window_strides, padding, lhs_dilation, rhs_dilation)
    canonical = (n // batch_group_count, o, *out_sizes)
    shape = [0] * ndim
    for pos, size in zip(out_spec, canonical):
        shape[pos] = size
    dtype = lhs.dtype if preferred_element_type is None else preferred_element_type
    return ShapedArray(tuple(shape), dtype, lhs.weak_type and rhs.weak_type)


def _check_groups(op, n, c, o, i, groups, batch_groups, lhs, rhs) -> None:
    shapes = f"lhs {lhs.str_short()}, rhs {rhs.str_short()}"
    if groups < 1 or batch_groups < 1:
        raise ValueError(f"{op}: feature_group_count and batch_group_count must be >= 1")
    if groups > 1 and batch_groups > 1:
        raise ValueError(f"{op}: feature_group_count and batch_group_count cannot both exceed 1")
    if c != i * groups:
        raise shape_error(op, f"the lhs has {c} input features but the kernel expects "
                          f"{i} per group x {groups} group(s) ({shapes})",
                          "The kernel's in-feature dimension must be lhs features / feature_group_count")
    if o % groups:
        raise shape_error(op, f"the kernel's {o} output features are not divisible by "
                          f"feature_group_count={groups} ({shapes})")
    if n % batch_groups or o % batch_groups:
        raise shape_error(op, f"the batch ({n}) and the kernel's output features ({o}) must be "
                          f"divisible by batch_group_count={batch_groups} ({shapes})")


def _conv_impl(lhs: np.ndarray, rhs: np.ndarray, *, window_strides, padding, lhs_dilation,
               rhs_dilation, dimension_numbers, feature_group_count, batch_group_count,
               preferred_element_type) -> np.ndarray:
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    dtype = lhs.dtype if preferred_element_type is None else preferred_element_type
    wide = _compute_dtype(lhs.dtype, rhs.dtype, dtype)
    x, w = np.transpose(lhs, lhs_spec).astype(wide, copy=False), np.transpose(rhs, rhs_spec).astype(wide, copy=False)
    groups = max(feature_group_count, batch_group_count)
    k_sizes = w.shape[2:]
    out_sizes = output_sizes(x.shape[2:], k_sizes, window_strides, padding, lhs_dilation, rhs_dilation)
    n = x.shape[0] // batch_group_count
    if n * w.shape[0] * int(np.prod(out_sizes, dtype=np.int64)) == 0:
        out = np.zeros((n, w.shape[0], *out_sizes), dtype)
    else:
        padded = dilate_and_pad(x, lhs_dilation, padding, 0)
        window = (out_sizes, k_sizes, window_strides, rhs_dilation)
        contract = _contract_channels_last if _prefer_channels_last(x, w, groups, out_sizes) \
            else _contract_channels_first
        out = contract(padded, w, window, groups, by_batch=batch_group_count > 1)
    return np.transpose(out, _inverse_permutation(out_spec)).astype(dtype, copy=False)


def _prefer_channels_last(x: np.ndarray, w: np.ndarray, groups: int, out_sizes: tuple) -> bool:
    """Gathering patches copies runs of channels (channels-last) or of output columns
    (channels-first); channels-last also copies the kernel, so it must be small."""
    channels = x.shape[1] // groups if w.shape[1] * groups == x.shape[1] else x.shape[1]
    patches = w[0].size * x.shape[0] * int(np.prod(out_sizes, dtype=np.int64))
    return channels >= 8 and w.size <= patches


def _group(x: np.ndarray, axis: int, groups: int, by_batch: bool) -> np.ndarray:
    """Split the batch (axis 0) or the feature axis into (groups, size/groups), groups first."""
    split = 0 if by_batch else axis
    x = x.reshape(*x.shape[:split], groups, x.shape[split] // groups, *x.shape[split + 1:])
    return np.moveaxis(x, split, 0)


def _contract_channels_first(padded: np.ndarray, w: np.ndarray, window: tuple, groups: int,
                             by_batch: bool) -> np.ndarray:
    """Patches laid out (group, C*k, N*out): rows of output columns are copied contiguously."""
    out_sizes = window[0]
    nsp = len(out_sizes)
    windows = _group(window_view(padded, *window), 1, groups, by_batch)  # (G, n, c, *out, *k)
    gn = windows.shape[1]
    spatial = tuple(range(3, 3 + nsp))
    patches = np.transpose(windows, (0, 2, *[s + nsp for s in spatial], 1, *spatial))
    patches = patches.reshape(groups, -1, gn * int(np.prod(out_sizes, dtype=np.int64)))
    kernel = w.reshape(groups, w.shape[0] // groups, -1)
    out = np.matmul(kernel, patches).reshape(groups, -1, gn, *out_sizes)  # (G, O/G, n, *out)
    return np.moveaxis(out, 2, 0).reshape(gn, w.shape[0], *out_sizes)


def _contract_channels_last(padded: np.ndarray, w: np.ndarray, window: tuple, groups: int,
                            by_batch: bool) -> np.ndarray:
    """Patches laid out (group, N*out, k*C): runs of channels are copied contiguously."""
    out_sizes = window[0]
    nsp = len(out_sizes)
    channels_last = np.ascontiguousarray(np.moveaxis(padded, 1, -1))
    windows = window_view(channels_last, *window, first=1)  # (N, *out, *k, C)
    windows = _group(windows, windows.ndim - 1, groups, by_batch)  # (G, n, *out, *k, c)
    gn = windows.shape[1]
    patches = windows.reshape(groups, gn * int(np.prod(out_sizes, dtype=np.int64)), -1)
    kernel = _group(w, 0, groups, False)  # (G, O/G, c, *k)
    kernel = np.transpose(kernel, (0, *range(3, 3 + nsp), 2, 1)).reshape(groups, patches.shape[2], -1)
    out = np.matmul(patches, kernel).reshape(groups, gn, *out_sizes, -1)  # (G, n, *out, O/G)
    out = np.moveaxis(out, -1, 1)  # (G, O/G, n, *out)
    return np.moveaxis(out, 2, 0).reshape(gn, w.shape[0], *out_sizes)


conv_general_dilated_p = Primitive("conv_general_dilated")
conv_general_dilated_p.def_impl(_conv_impl)
conv_general_dilated_p.def_abstract_eval(_conv_rule)


def _int_seq(name: str, value: Any, n: int, default: int = 1) -> tuple:
    if value is None:
        return (default,) * n
    if isinstance(value, (int, np.integer)):
        return (int(value),) * n
    try:
        return tuple(int(v) for v in value)
    except TypeError:
        raise TypeError(f"conv_general_dilated: {name} must be a sequence of ints, got {value!r}") from None


def conv_general_dilated(lhs: Any, rhs: Any, window_strides: Sequence[int], padding: Any,
                         lhs_dilation: Sequence[int] | None = None,
                         rhs_dilation: Sequence[int] | None = None,
                         dimension_numbers: Any = None, feature_group_count: int = 1,
                         batch_group_count: int = 1, precision: Any = None,
                         preferred_element_type: Any = None) -> Any:
    """N-d convolution with strides, padding, dilations and groups (JAX's ``lax.conv_general_dilated``).

    >>> conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW"))  # doctest: +SKIP
    """
    canonical_precision(precision, "conv_general_dilated")   # checked; see Precision
    lhs_aval, rhs_aval = get_aval(lhs), get_aval(rhs)
    dn = conv_dimension_numbers(lhs_aval.shape, rhs_aval.shape, dimension_numbers)
    nsp = lhs_aval.ndim - 2
    strides = _int_seq("window_strides", window_strides, nsp)
    lhs_dil = _int_seq("lhs_dilation", lhs_dilation, nsp)
    rhs_dil = _int_seq("rhs_dilation", rhs_dilation, nsp)
    if isinstance(padding, str):
        in_sizes = [dilate_shape(lhs_aval.shape[d], l) for d, l in zip(dn.lhs_spec[2:], lhs_dil)]
        k_sizes = [dilate_shape(rhs_aval.shape[d], r) for d, r in zip(dn.rhs_spec[2:], rhs_dil)]
        pads = padtype_to_pads(in_sizes, k_sizes, strides, padding)
    else:
        try:
            pads = tuple((int(lo), int(hi)) for lo, hi in padding)
        except (TypeError, ValueError):
            raise TypeError("conv_general_dilated: padding must be 'SAME', 'VALID' or a sequence of "
                            f"(low, high) pairs, got {padding!r}") from None
    preferred = None if preferred_element_type is None else dtypes.canonicalize(preferred_element_type)
    return conv_general_dilated_p.bind(
        lhs, rhs, window_strides=strides, padding=pads, lhs_dilation=lhs_dil, rhs_dilation=rhs_dil,
        dimension_numbers=dn, feature_group_count=int(feature_group_count),
        batch_group_count=int(batch_group_count), preferred_element_type=preferred)


#: conv_transpose's layouts when dimension_numbers is None, by operand rank (JAX's defaults)
_TRANSPOSE_LAYOUTS = {2: ("NC", "IO", "NC"), 3: ("NHC", "HIO", "NHC"), 4: ("NHWC", "HWIO", "NHWC"),
                      5: ("NHWDC", "HWDIO", "NHWDC")}


def _transpose_pads(k: int, stride: int, padding: str) -> tuple[int, int]:
    """The (low, high) padding of the dilated input that gives a transposed convolution with
    kernel extent ``k`` the output size of the forward convolution's ``padding``."""
    if padding == "SAME":
        total = k + stride - 2
        low = k - 1 if stride > k - 1 else -(-total // 2)
    else:
        total = k + stride - 2 + max(k - stride, 0)
        low = k - 1
    return low, total - low


def conv_transpose(lhs: Any, rhs: Any, strides: Sequence[int], padding: Any,
                   rhs_dilation: Sequence[int] | None = None, dimension_numbers: Any = None,
                   transpose_kernel: bool = False, precision: Any = None,
                   preferred_element_type: Any = None) -> Any:
    """``jax.lax.conv_transpose(lhs, rhs, strides, padding, rhs_dilation=None,
    dimension_numbers=None, transpose_kernel=False, precision=None, preferred_element_type=None)``:
    the gradient-of-convolution ("deconvolution"): a stride-1 convolution of ``lhs`` dilated by
    ``strides``. ``padding`` is "SAME", "VALID" or (low, high) pairs; layouts default to
    channels-last (``("NHWC", "HWIO", "NHWC")`` in 2-D); ``transpose_kernel=True`` flips the
    kernel spatially and swaps its in/out features, so the result is exactly the transpose
    (the input gradient) of ``conv_general_dilated`` with that kernel."""
    lhs_aval, rhs_aval = get_aval(lhs), get_aval(rhs)
    ndim = lhs_aval.ndim
    if dimension_numbers is None:
        if ndim not in _TRANSPOSE_LAYOUTS:
            raise ValueError(f"conv_transpose: no default layout for rank-{ndim} operands; pass "
                             "dimension_numbers=(lhs_spec, rhs_spec, out_spec)")
        dimension_numbers = _TRANSPOSE_LAYOUTS[ndim]
    dn = conv_dimension_numbers(lhs_aval.shape, rhs_aval.shape, dimension_numbers)
    nsp = ndim - 2
    strides = _int_seq("strides", strides, nsp)
    rhs_dil = _int_seq("rhs_dilation", rhs_dilation, nsp)
    if isinstance(padding, str):
        if padding not in ("SAME", "VALID"):
            raise ValueError(f"conv_transpose: padding must be 'SAME', 'VALID' or (low, high) pairs, "
                             f"got {padding!r}")
        kernel = [dilate_shape(rhs_aval.shape[d], r) for d, r in zip(dn.rhs_spec[2:], rhs_dil)]
        padding = [_transpose_pads(k, s, padding) for k, s in zip(kernel, strides)]
    if transpose_kernel:
        rhs = rev(rhs, tuple(dn.rhs_spec[2:]))
        perm = list(range(ndim))
        perm[dn.rhs_spec[0]], perm[dn.rhs_spec[1]] = dn.rhs_spec[1], dn.rhs_spec[0]
        rhs = transpose(rhs, tuple(perm))
    return conv_general_dilated(lhs, rhs, (1,) * nsp, padding, lhs_dilation=strides, rhs_dilation=rhs_dil,
                                dimension_numbers=dn, precision=precision,
                                preferred_element_type=preferred_element_type)


def _conv_jvp(primals, tangents, **params):
    (lhs, rhs), (tl, tr) = primals, tangents
    out = conv_general_dilated_p.bind(lhs, rhs, **params)
    t_out = _add_tangents(None if tl is None else conv_general_dilated_p.bind(tl, rhs, **params),
                          None if tr is None else conv_general_dilated_p.bind(lhs, tr, **params))
    return out, t_out


jvp_rules[conv_general_dilated_p] = _conv_jvp
symbolic_zero_rules.add(conv_general_dilated_p)   # bilinear, as dot_general


# --- conv transposes, in canonical layout ---------------------------------------------------

def _canonical_conv(lhs: Any, rhs: Any, strides, padding, lhs_dilation, rhs_dilation,
                    feature_group_count: int = 1, batch_group_count: int = 1, dtype=None) -> Any:
    """conv_general_dilated on (N, C, *spatial) / (O, I, *spatial) operands."""
    return conv_general_dilated_p.bind(
        lhs, rhs, window_strides=tuple(strides), padding=tuple(padding), lhs_dilation=tuple(lhs_dilation),
        rhs_dilation=tuple(rhs_dilation), dimension_numbers=_canonical_dimension_numbers(get_aval(lhs).ndim),
        feature_group_count=feature_group_count, batch_group_count=batch_group_count,
        preferred_element_type=dtype)


def _zeros(aval: ShapedArray) -> Any:
    return full(aval.shape, 0, aval.dtype)


def _conv_transpose_lhs(ct, lhs_aval: ShapedArray, rhs, *, window_strides, padding, lhs_dilation,
                        rhs_dilation, dimension_numbers, feature_group_count, batch_group_count, **_):
    """Cotangent of the input: a stride-1 conv of the ct, dilated by the forward strides,
    with the spatially flipped kernel whose in/out features are exchanged (per group)."""
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    if get_aval(ct).size == 0 or lhs_aval.size == 0:
        return _zeros(lhs_aval)
    nsp = lhs_aval.ndim - 2
    ct = transpose(_to_dtype(ct, lhs_aval.dtype), out_spec)
    w = transpose(rhs, rhs_spec)
    groups = max(feature_group_count, batch_group_count)
    o, i, *k_sizes = get_aval(w).shape
    w = reshape(w, (groups, o // groups, i, *k_sizes))
    w = transpose(w, (0, 2, 1, *range(3, 3 + nsp)))
    w = reshape(w, (groups * i, o // groups, *k_sizes))
    w = rev(w, tuple(range(2, 2 + nsp)))
    in_sizes = [lhs_aval.shape[d] for d in lhs_spec[2:]]
    out_sizes = get_aval(ct).shape[2:]
    pads = []
    for size, k, y, s, (lo, _), ld, rd in zip(in_sizes, k_sizes, out_sizes, window_strides, padding,
                                              lhs_dilation, rhs_dilation):
        before = (k - 1) * rd - lo
        after = (size - 1) * ld + (k - 1) * rd + 1 - dilate_shape(y, s) - before
        pads.append((before, after))
    out = _canonical_conv(ct, w, lhs_dilation, pads, window_strides, rhs_dilation,
                          feature_group_count=groups)
    if batch_group_count > 1:  # features (B, C) back into the batch as (B, N/B)
        n, _, *sizes = get_aval(out).shape
        c = lhs_aval.shape[lhs_spec[1]]
        out = reshape(out, (n, batch_group_count, c, *sizes))
        out = transpose(out, (1, 0, *range(2, 3 + nsp)))
        out = reshape(out, (n * batch_group_count, c, *sizes))
    return transpose(out, _inverse_permutation(lhs_spec))


def _reads_an_input(size: int, k: int, y: int, stride: int, lo: int, lhs_dil: int,
                    rhs_dil: int) -> np.ndarray:
    """For each of one dimension's ``y`` outputs: does any tap of its window land on an input
    element, rather than on padding or a hole of the lhs dilation?"""
    at = np.arange(y)[:, None] * stride + np.arange(k)[None, :] * rhs_dil - lo
    real = (at >= 0) & (at <= (size - 1) * lhs_dil) & (at % lhs_dil == 0)
    return real.any(axis=1)


def _drop_structural_outputs(ct: Any, in_sizes, k_sizes, window_strides, padding, lhs_dilation,
                             rhs_dilation) -> Any:
    """Zero the cotangent of outputs whose whole window is padding or dilation holes.

    Such an output is 0 whatever the kernel, so its cotangent must not reach the kernel's
    gradient; it would, as ``inf * 0 = nan``, where the cotangent is infinite (``sqrt`` or
    ``cbrt`` of the structural 0). XLA never multiplies padding or holes, and JAX's gradient is
    finite there. ``ct`` is canonical (features, batch, *spatial)."""
    per_dim = [_reads_an_input(size, k, y, s, lo, ld, rd)
               for size, k, y, s, (lo, _), ld, rd in zip(in_sizes, k_sizes, get_aval(ct).shape[2:],
                                                         window_strides, padding, lhs_dilation,
                                                         rhs_dilation)]
    if all(reads.all() for reads in per_dim):
        return ct
    reads = np.ones((), bool)
    for axis_reads in per_dim:
        reads = np.logical_and.outer(reads, axis_reads)
    aval = get_aval(ct)
    keep = broadcast_in_dim(reads, aval.shape, tuple(range(2, aval.ndim)))
    return select_n(keep, full(aval.shape, 0, aval.dtype), ct)


def _conv_transpose_rhs(ct, lhs, rhs_aval: ShapedArray, *, window_strides, padding, lhs_dilation,
                        rhs_dilation, dimension_numbers, feature_group_count, batch_group_count, **_):
    """Cotangent of the kernel: a conv of the input (batch and features exchanged) with the ct
    as kernel, dilated by the forward strides; feature groups become batch groups and back."""
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    lhs_aval = get_aval(lhs)
    if get_aval(ct).size == 0 or lhs_aval.size == 0:
        return _zeros(rhs_aval)
    nsp = lhs_aval.ndim - 2
    swap = (1, 0, *range(2, 2 + nsp))
    x = transpose(lhs, _compose(lhs_spec, swap))
    ct = transpose(_to_dtype(ct, rhs_aval.dtype), _compose(out_spec, swap))
    in_sizes = [lhs_aval.shape[d] for d in lhs_spec[2:]]
    k_sizes = [rhs_aval.shape[d] for d in rhs_spec[2:]]
    out_sizes = get_aval(ct).shape[2:]
    ct = _drop_structural_outputs(ct, in_sizes, k_sizes, window_strides, padding, lhs_dilation,
                                  rhs_dilation)
    pads = []
    for size, k, y, s, (lo, _), ld, rd in zip(in_sizes, k_sizes, out_sizes, window_strides, padding,
                                              lhs_dilation, rhs_dilation):
        after = (k - 1) * rd + dilate_shape(y, s) - dilate_shape(size, ld) - lo
        pads.append((lo, after))
    out = _canonical_conv(x, ct, rhs_dilation, pads, lhs_dilation, window_strides,
                          feature_group_count=batch_group_count, batch_group_count=feature_group_count)
    return transpose(out, _compose(swap, _inverse_permutation(rhs_spec)))


def _conv_transpose(ct, lhs, rhs, **params):
    if is_undefined(lhs) and is_undefined(rhs):
        raise TypeError("conv_general_dilated: cannot transpose a product of two linear values")
    if is_undefined(lhs):
        return [_conv_transpose_lhs(ct, lhs.aval, rhs, **params), None]
    return [None, _conv_transpose_rhs(ct, lhs, rhs.aval, **params)]


transpose_rules[conv_general_dilated_p] = _conv_transpose


# --- conv vmap: fold the vmapped axis into the batch, the output features or the groups ------

def _to_canonical_batched(x: Any, bdim: int, spec: tuple, size: int) -> Any:
    x = moveaxis(x, bdim, 0, size)
    return transpose(x, (0, *[d + 1 for d in spec]))


def _conv_vmap(axis, vals, dims, **params):
    (lhs, rhs), (ld, rd) = vals, dims
    lhs_spec, rhs_spec, out_spec = params["dimension_numbers"]
    groups, batch_groups = params["feature_group_count"], params["batch_group_count"]
    size = axis.size
    conv = dict(params, dimension_numbers=_canonical_dimension_numbers(len(lhs_spec)))
    nsp = len(lhs_spec) - 2
    rest = tuple(range(3, 3 + nsp))
    if ld is not None:
        lhs = _to_canonical_batched(lhs, ld, lhs_spec, size)  # (V, N, C, *S)
    else:
        lhs = transpose(lhs, lhs_spec)
    if rd is not None:
        rhs = _to_canonical_batched(rhs, rd, rhs_spec, size)  # (V, O, I, *K)
    else:
        rhs = transpose(rhs, rhs_spec)
    if rd is None:  # batch [b][n] -> [b][v][n]
        v, n, c, *sizes = get_aval(lhs).shape
        x = reshape(lhs, (v, batch_groups, n // batch_groups, c, *sizes))
        x = reshape(transpose(x, (1, 0, 2, 3, *[r + 1 for r in rest])), (v * n, c, *sizes))
        out = conv_general_dilated_p.bind(x, rhs, **conv)
        _, o, *ys = get_aval(out).shape
        out = reshape(out, (v, n // batch_groups, o, *ys))  # not nb // v: v may be 0
    elif ld is None:  # output features [g][o] -> [g][v][o]
        all_groups = max(groups, batch_groups)
        v, o, i, *ks = get_aval(rhs).shape
        w = reshape(rhs, (v, all_groups, o // all_groups, i, *ks))
        w = reshape(transpose(w, (1, 0, 2, 3, *[r + 1 for r in rest])), (v * o, i, *ks))
        out = conv_general_dilated_p.bind(lhs, w, **conv)
        nb, _, *ys = get_aval(out).shape
        out = reshape(out, (nb, all_groups, v, o // all_groups, *ys))
        out = reshape(transpose(out, (2, 0, 1, 3, *[r + 1 for r in rest])), (v, nb, o, *ys))
    else:  # both: the vmapped axis becomes more (feature or batch) groups
        v, n, c, *sizes = get_aval(lhs).shape
        _, o, i, *ks = get_aval(rhs).shape
        w = reshape(rhs, (v * o, i, *ks))
        if batch_groups == 1:
            x = reshape(transpose(lhs, (1, 0, 2, *rest)), (n, v * c, *sizes))
            out = conv_general_dilated_p.bind(x, w, **dict(conv, feature_group_count=v * groups))
        else:
            x = reshape(lhs, (v * n, c, *sizes))
            out = conv_general_dilated_p.bind(x, w, **dict(conv, batch_group_count=v * batch_groups))
        nb, _, *ys = get_aval(out).shape
        out = transpose(reshape(out, (nb, v, o, *ys)), (1, 0, 2, *rest))
    return transpose(out, (0, *[d + 1 for d in _inverse_permutation(out_spec)])), 0


vmap_rules[conv_general_dilated_p] = _conv_vmap


# --- partition rules (the data-parallel pass, fgrad.core.partition) ----------------------------------------

def _dot_general_partition(ctx, eqn, ins):
    (x, lx), (y, ly) = ins
    if PARTIAL in (lx, ly):
        if {lx, ly} == {PARTIAL, None}:
            return with_layout(bind_like(eqn, [x, y]), PARTIAL)
        x, y = ctx.full(x, lx), ctx.full(y, ly)
        lx, ly = None, None
    if lx is None and ly is None:
        return with_layout(bind_like(eqn, [x, y]), None)
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    lfree = [k for k in range(rank(eqn.invars[0])) if k not in lc and k not in lb]
    rfree = [k for k in range(rank(eqn.invars[1])) if k not in rc and k not in rb]
    if isinstance(lx, int):
        if lx in lc:
            y = ctx.split(y, ly, rc[lc.index(lx)], eqn)
            return with_layout(bind_like(eqn, [x, y]), PARTIAL)
        if lx in lb:
            y = ctx.split(y, ly, rb[lb.index(lx)], eqn)
            return with_layout(bind_like(eqn, [x, y]), lb.index(lx))
        y = ctx.full(y, ly)
        return with_layout(bind_like(eqn, [x, y]), len(lb) + lfree.index(lx))
    if ly in rc:
        x = ctx.split(x, lx, lc[rc.index(ly)], eqn)
        return with_layout(bind_like(eqn, [x, y]), PARTIAL)
    if ly in rb:
        x = ctx.split(x, lx, lb[rb.index(ly)], eqn)
        return with_layout(bind_like(eqn, [x, y]), rb.index(ly))
    return with_layout(bind_like(eqn, [x, y]), len(lb) + len(lfree) + rfree.index(ly))


def _conv_partition(ctx, eqn, ins):
    (x, lx), (w, lw) = ins
    p = eqn.params
    if PARTIAL in (lx, lw):
        if {lx, lw} == {PARTIAL, None}:
            return with_layout(bind_like(eqn, [x, w]), PARTIAL)
        x, w, lx, lw = ctx.full(x, lx), ctx.full(w, lw), None, None
    if lx is None and lw is None:
        return with_layout(bind_like(eqn, [x, w]), None)
    dn = p["dimension_numbers"]
    lhs_batch, lhs_feature = dn.lhs_spec[0], dn.lhs_spec[1]
    rhs_out, rhs_in = dn.rhs_spec[0], dn.rhs_spec[1]
    groups = p["feature_group_count"] != 1 or p["batch_group_count"] != 1
    if lx == lhs_batch and not groups:
        return with_layout(bind_like(eqn, [x, ctx.full(w, lw)]), dn.out_spec[0])
    if (lx == lhs_feature or lw == rhs_in) and not groups and lx in (None, lhs_feature) and lw in (None, rhs_in):
        x, w = ctx.split(x, lx, lhs_feature, eqn), ctx.split(w, lw, rhs_in, eqn)
        return with_layout(bind_like(eqn, [x, w]), PARTIAL)
    if lw == rhs_out and lx is None and not groups:
        return with_layout(bind_like(eqn, [x, w]), dn.out_spec[1])
    raise partition_error(eqn, f"lhs {layout_str(lx)} and rhs {layout_str(lw)} with dimension numbers {dn} "
                               f"(feature groups {p['feature_group_count']}, batch groups {p['batch_group_count']})")


partition_rules[dot_general_p] = _dot_general_partition
partition_rules[conv_general_dilated_p] = _conv_partition


#: ``jax.lax.PrecisionLike``: what a ``precision=`` argument takes
PrecisionLike = Union[None, str, Precision, tuple[str, str], tuple[Precision, Precision]]
