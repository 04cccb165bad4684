"""``jax.lax``'s convolution helpers, composed of ``conv_general_dilated`` and ``dot_general``
(so each is differentiable, batchable and lowered as they are): conv, conv_with_general_padding,
conv_general_dilated_patches, conv_general_dilated_local, and the shape helpers
conv_shape_tuple, conv_transpose_shape_tuple and conv_general_permutations."""
from __future__ import annotations

import math
from typing import Any, Sequence, Union

import numpy as np

from fgrad.core import dtypes
from fgrad.core.trace import get_aval
from fgrad.ops import shape as sh
from fgrad.ops.contraction import (ConvDimensionNumbers, _spec_from_string, _transpose_pads, canonical_precision,
                                   conv_dimension_numbers, conv_general_dilated, dot_general)
from fgrad.ops.window import padtype_to_pads

__all__ = ["ConvGeneralDilatedDimensionNumbers", "conv", "conv_with_general_padding", "conv_general_dilated_patches",
           "conv_general_dilated_local", "conv_shape_tuple", "conv_transpose_shape_tuple",
           "conv_general_permutations"]

#: What ``dimension_numbers`` of a convolution may be (JAX's type alias).
ConvGeneralDilatedDimensionNumbers = Union[None, ConvDimensionNumbers, tuple]


def conv(lhs: Any, rhs: Any, window_strides: Sequence[int], padding: str, precision: Any = None,
         preferred_element_type: Any = None) -> Any:
    """``jax.lax.conv(lhs, rhs, window_strides, padding, precision=None,
    preferred_element_type=None)``: ``conv_general_dilated`` in the NCHW/OIHW layout without
    dilation (``padding``: "SAME", "VALID" or (low, high) pairs)."""
    return conv_general_dilated(lhs, rhs, window_strides, padding, precision=precision,
                                preferred_element_type=preferred_element_type)


def conv_with_general_padding(lhs: Any, rhs: Any, window_strides: Sequence[int], padding: Any,
                              lhs_dilation: Sequence[int] | None, rhs_dilation: Sequence[int] | None,
                              precision: Any = None, preferred_element_type: Any = None) -> Any:
    """``jax.lax.conv_with_general_padding(lhs, rhs, window_strides, padding, lhs_dilation,
    rhs_dilation, precision=None, preferred_element_type=None)``: ``conv_general_dilated`` in the
    NCHW/OIHW layout with dilations."""
    return conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
                                rhs_dilation=rhs_dilation, precision=precision,
                                preferred_element_type=preferred_element_type)


def conv_general_permutations(dimension_numbers: Any) -> tuple:
    """``jax.lax.conv_general_permutations(dimension_numbers)``: for three layout strings such as
    ``("NHWC", "HWIO", "NHWC")``, the permutations that bring each operand to the canonical
    (N, C, spatial...) / (O, I, spatial...) layout, spatial dimensions ordered as in the rhs
    string.

    >>> conv_general_permutations(("NHWC", "HWIO", "NHWC"))   # doctest: +SKIP
    ((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))
    """
    try:
        lhs, rhs, out = dimension_numbers
    except (TypeError, ValueError):
        raise ValueError(f"conv_general_permutations: dimension_numbers must be three layout strings "
                         f"(lhs, rhs, out), got {dimension_numbers!r}") from None
    if not all(isinstance(s, str) for s in (lhs, rhs, out)) or len({len(lhs), len(rhs), len(out)}) != 1:
        raise TypeError(f"conv_general_permutations: dimension_numbers must be three strings of one length, got "
                        f"{dimension_numbers!r}")
    ndim = len(lhs)
    for spec, roles, i in ((lhs, "NC", 0), (rhs, "OI", 1), (out, "NC", 2)):
        if any(spec.count(c) != 1 for c in roles):
            raise TypeError(f"conv_general_permutations: dimension_numbers[{i}] must contain the characters "
                            f"{roles[0]!r} and {roles[1]!r} exactly once, got {spec}")
    rhs_spec = _spec_from_string(rhs, "OI", rhs, ndim, "rhs")
    return (_spec_from_string(lhs, "NC", rhs, ndim, "lhs"), rhs_spec, _spec_from_string(out, "NC", rhs, ndim, "out"))


def _spatial_out(in_sizes: Sequence[int], k_sizes: Sequence[int], strides: Sequence[int], pads: Any) -> tuple:
    return tuple(max(0, (n + lo + hi - k) // s + 1) for n, k, s, (lo, hi) in zip(in_sizes, k_sizes, strides, pads))


def conv_shape_tuple(lhs_shape: Sequence[int], rhs_shape: Sequence[int], strides: Sequence[int], pads: Any,
                     batch_group_count: int = 1) -> tuple:
    """``jax.lax.conv_shape_tuple(lhs_shape, rhs_shape, strides, pads, batch_group_count=1)``:
    the output shape (N, O, spatial...) of a convolution in the canonical NCHW/OIHW layout;
    ``pads`` is "SAME", "VALID" or (low, high) pairs."""
    lhs_shape, rhs_shape = tuple(int(d) for d in lhs_shape), tuple(int(d) for d in rhs_shape)
    nsp = len(lhs_shape) - 2
    strides = tuple(int(s) for s in strides)
    if len(rhs_shape) != len(lhs_shape) or nsp < 0:
        raise TypeError(f"conv_shape_tuple: lhs and rhs must have one rank >= 2, got {lhs_shape} and {rhs_shape}")
    if isinstance(pads, str):
        pads = padtype_to_pads(lhs_shape[2:], rhs_shape[2:], strides, pads)
    pads = tuple((int(lo), int(hi)) for lo, hi in pads)
    if len(strides) != nsp or len(pads) != nsp:
        raise TypeError(f"conv_shape_tuple: strides {strides} and pads {pads} need one entry per spatial "
                        f"dimension ({nsp})")
    if any(s <= 0 for s in strides):
        raise ValueError(f"conv_shape_tuple: all strides must be positive, got {strides}")
    if lhs_shape[0] % batch_group_count:
        raise ValueError(f"conv_shape_tuple: the batch size {lhs_shape[0]} is not a multiple of "
                         f"batch_group_count={batch_group_count}")
    return (lhs_shape[0] // batch_group_count, rhs_shape[0]) + _spatial_out(lhs_shape[2:], rhs_shape[2:], strides, pads)


def conv_transpose_shape_tuple(lhs_shape: Sequence[int], rhs_shape: Sequence[int], window_strides: Sequence[int],
                               padding: Any, dimension_numbers: Any) -> tuple:
    """``jax.lax.conv_transpose_shape_tuple(lhs_shape, rhs_shape, window_strides, padding,
    dimension_numbers)``: the output shape of ``conv_transpose`` (in the out layout of
    ``dimension_numbers``, three layout strings); ``padding`` is "SAME", "VALID" or pairs."""
    if dimension_numbers is None:
        raise TypeError("conv_transpose_shape_tuple: dimension_numbers must be three layout strings, e.g. "
                        "('NHWC', 'HWIO', 'NHWC'), got None")
    lhs_perm, rhs_perm, out_perm = conv_general_permutations(dimension_numbers)
    lhs_t = [int(lhs_shape[d]) for d in lhs_perm]
    rhs_t = [int(rhs_shape[d]) for d in rhs_perm]
    strides = tuple(int(s) for s in window_strides)
    if isinstance(padding, str):
        if padding not in ("SAME", "VALID"):
            raise ValueError(f"conv_transpose_shape_tuple: padding must be 'SAME', 'VALID' or pairs, got {padding!r}")
        padding = [_transpose_pads(k, s, padding) for k, s in zip(rhs_t[2:], strides)]
    totals = [int(lo) + int(hi) for lo, hi in padding]
    if not len(strides) == len(totals) == len(lhs_t) - 2:
        raise TypeError(f"conv_transpose_shape_tuple: window_strides {strides} and padding need one entry per "
                        f"spatial dimension ({len(lhs_t) - 2})")
    space = [(n - 1) * s - k + 2 + p for n, k, s, p in zip(lhs_t[2:], rhs_t[2:], strides, totals)]
    canonical = [lhs_t[0], rhs_t[0]] + space
    return tuple(canonical[i] for i in np.argsort(out_perm))


def _patch_dims(lhs_aval: Any, filter_shape: Sequence[int], dimension_numbers: Any) -> ConvDimensionNumbers:
    """The dimension numbers of the patches convolution: the user's lhs/out layouts, and a
    canonical (O, I, spatial...) kernel."""
    rank = lhs_aval.ndim
    if len(filter_shape) != rank - 2:
        raise ValueError(f"conv_general_dilated_patches: filter_shape {tuple(filter_shape)} needs one size per "
                         f"spatial dimension of the lhs {lhs_aval.str_short()} ({rank - 2})")
    dn = conv_dimension_numbers(lhs_aval.shape, (1,) * rank, dimension_numbers)
    return ConvDimensionNumbers(dn.lhs_spec, tuple(range(rank)), dn.out_spec)


def conv_general_dilated_patches(lhs: Any, filter_shape: Sequence[int], window_strides: Sequence[int], padding: Any,
                                 lhs_dilation: Sequence[int] | None = None,
                                 rhs_dilation: Sequence[int] | None = None, dimension_numbers: Any = None,
                                 precision: Any = None, preferred_element_type: Any = None) -> Any:
    """``jax.lax.conv_general_dilated_patches(lhs, filter_shape, window_strides, padding,
    lhs_dilation=None, rhs_dilation=None, dimension_numbers=None, precision=None,
    preferred_element_type=None)``: the patches a convolution with a ``filter_shape`` window
    would see, as features: feature ``c * prod(filter_shape) + (flat window position)`` of the
    output (in the out layout) is input channel ``c`` at that window position; spatial sizes are
    the convolution's. Computed exactly, as a convolution with a one-hot kernel per channel."""
    canonical_precision(precision, "conv_general_dilated_patches")
    aval = get_aval(lhs)
    dn = _patch_dims(aval, filter_shape, dimension_numbers)
    channels, window = aval.shape[dn.lhs_spec[1]], tuple(int(k) for k in filter_shape)
    size = math.prod(window)
    dtype = aval.dtype if preferred_element_type is None else dtypes.canonicalize(preferred_element_type)
    one_hot = np.tile(np.eye(size, dtype=aval.dtype).reshape((size, 1) + window), (channels, 1) + (1,) * len(window))
    return conv_general_dilated(lhs, one_hot, window_strides, padding, lhs_dilation=lhs_dilation,
                                rhs_dilation=rhs_dilation, dimension_numbers=dn, feature_group_count=channels,
                                precision=precision, preferred_element_type=None if dtype == aval.dtype else dtype)


def conv_general_dilated_local(lhs: Any, rhs: Any, window_strides: Sequence[int], padding: Any,
                               filter_shape: Sequence[int], lhs_dilation: Sequence[int] | None = None,
                               rhs_dilation: Sequence[int] | None = None, dimension_numbers: Any = None,
                               precision: Any = None) -> Any:
    """``jax.lax.conv_general_dilated_local(lhs, rhs, window_strides, padding, filter_shape,
    lhs_dilation=None, rhs_dilation=None, dimension_numbers=None, precision=None)``: a locally
    connected ("unshared") convolution: each output position has its own kernel. ``rhs``'s
    spatial dimensions are the output's; its I dimension has ``C * prod(filter_shape)`` entries,
    ordered as ``conv_general_dilated_patches``' features."""
    canonical_precision(precision, "conv_general_dilated_local")
    lhs_aval, rhs_aval = get_aval(lhs), get_aval(rhs)
    rank = lhs_aval.ndim
    dn = conv_dimension_numbers(lhs_aval.shape, rhs_aval.shape, dimension_numbers)
    patches = conv_general_dilated_patches(lhs, filter_shape, window_strides, padding, lhs_dilation,
                                           rhs_dilation, dimension_numbers, precision)
    patches = sh.transpose(patches, dn.out_spec)        # (N, K, spatial...)
    kernel = sh.transpose(rhs, dn.rhs_spec)             # (O, K, spatial...)
    p_shape, k_shape = get_aval(patches).shape, get_aval(kernel).shape
    if k_shape[1] != p_shape[1] or k_shape[2:] != p_shape[2:]:
        raise TypeError(f"conv_general_dilated_local: rhs {rhs_aval.str_short()} must have an I dimension of "
                        f"{p_shape[1]} (channels x filter size) and the output's spatial sizes {p_shape[2:]}; its "
                        f"(O, I, spatial...) shape is {k_shape}")
    spatial = tuple(range(2, rank))
    out = dot_general(patches, kernel, (((1,), (1,)), (spatial, spatial)))   # (spatial..., N, O)
    nsp = rank - 2
    canonical = sh.transpose(out, (nsp, nsp + 1) + tuple(range(nsp)))
    return sh.transpose(canonical, tuple(int(i) for i in np.argsort(dn.out_spec)))
