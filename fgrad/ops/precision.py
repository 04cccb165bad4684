"""``reduce_precision``: round floats to a narrower format, as XLA's ReducePrecision.

One algorithm, written against a small set of integer operations (``_Ops``), runs eagerly on
NumPy arrays (the primitive's impl) and as fgrad primitives (its decomposition, which the
lowering inlines: ``special.decompositions``). Like JAX, the derivative rounds the tangent
the same way, and the transpose rounds the cotangent.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from fgrad.core import dtypes
from fgrad.core.primitive import Primitive
from fgrad.core import partition
from fgrad.core.partition import partition_rules
from fgrad.core.rules import jvp_rules, transpose_rules, vmap_rules
from fgrad.core.trace import get_aval
from fgrad.core.types import ShapedArray
from fgrad.ops import elementwise as ew
from fgrad.ops import lax_composites as lc
from fgrad.ops import shape as sh
from fgrad.ops import special

__all__ = ["reduce_precision"]

#: (exponent bits, mantissa bits, unsigned integer of the same width) per float dtype. The half
#: types are rounded on their own bits, as XLA does: a float16 subnormal keeps its few mantissa
#: bits (reduce_precision(6e-08, 6, 0) is 0, as in JAX; through float32 it stayed 6e-08)
_FORMATS = {np.dtype(np.float32): (8, 23, np.uint32), np.dtype(np.float64): (11, 52, np.uint64),
            np.dtype(np.float16): (5, 10, np.uint16), dtypes.bfloat16: (8, 7, np.uint16)}


class _NumpyOps:
    """The integer operations on NumPy arrays (eager)."""

    bits = staticmethod(lambda x, utype: x.view(utype))
    floats = staticmethod(lambda b, dtype: b.view(dtype))
    const = staticmethod(lambda like, v: np.asarray(v, like.dtype))
    shr = staticmethod(np.right_shift)
    and_ = staticmethod(np.bitwise_and)
    or_ = staticmethod(np.bitwise_or)
    add = staticmethod(np.add)
    gt = staticmethod(np.greater)
    lt = staticmethod(np.less)
    isnan = staticmethod(np.isnan)
    where = staticmethod(np.where)
    to = staticmethod(lambda x, dtype: np.asarray(x).astype(dtype))


class _LaxOps:
    """The same operations as fgrad primitives (the decomposition compiled code inlines)."""

    bits = staticmethod(lc.bitcast_convert_type)
    floats = staticmethod(lc.bitcast_convert_type)
    const = staticmethod(lambda like, v: sh.full_like(like, np.asarray(v, get_aval(like).dtype)[()]))
    shr = staticmethod(ew.shift_right_logical)
    and_ = staticmethod(ew.bitwise_and)
    or_ = staticmethod(ew.bitwise_or)
    add = staticmethod(ew.add)
    gt = staticmethod(ew.gt)
    lt = staticmethod(ew.lt)
    isnan = staticmethod(lambda x: ew.ne(x, x))
    where = staticmethod(lambda c, a, b: ew.select_n(c, b, a))
    to = staticmethod(ew.convert_element_type)


def _reduce(ops, x: Any, exponent_bits: int, mantissa_bits: int) -> Any:
    dtype = np.dtype(x.dtype if hasattr(x, "dtype") else get_aval(x).dtype)
    own_e, own_m, utype = _FORMATS[dtype]
    width = np.dtype(utype).itemsize * 8
    bits, nan = ops.bits(x, utype), ops.isnan(x)
    c = lambda v: ops.const(bits, utype(v))
    if mantissa_bits < own_m:       # round to nearest, ties to even, on the dropped bits
        shift = own_m - mantissa_bits
        last = ops.and_(ops.shr(bits, c(shift)), c(1))
        rounded = ops.add(bits, ops.add(c((1 << (shift - 1)) - 1), last))
        rounded = ops.and_(rounded, c(((1 << width) - 1) ^ ((1 << shift) - 1)))
        bits = ops.where(nan, bits, rounded)
    if exponent_bits < own_e:       # out of the narrow format's range: infinity, or signed zero
        own_bias, bias = (1 << (own_e - 1)) - 1, (1 << (exponent_bits - 1)) - 1
        exponent = ops.and_(ops.shr(bits, c(own_m)), c((1 << own_e) - 1))
        sign = ops.and_(bits, c(1 << (width - 1)))
        infinity = ops.or_(sign, c(((1 << own_e) - 1) << own_m))
        clamped = ops.where(ops.gt(exponent, c(own_bias + bias)), infinity,
                            ops.where(ops.lt(exponent, c(own_bias - bias + 1)), sign, bits))
        bits = ops.where(nan, bits, clamped)
    return ops.floats(bits, dtype)


def _impl(x, *, exponent_bits: int, mantissa_bits: int):
    return _reduce(_NumpyOps, np.asarray(x), exponent_bits, mantissa_bits)


def _abstract(x: ShapedArray, *, exponent_bits: int, mantissa_bits: int) -> ShapedArray:
    if not dtypes.is_float(x.dtype):
        raise TypeError(f"reduce_precision: the operand must be floating point, got {x.dtype.name}")
    return ShapedArray(x.shape, x.dtype, x.weak_type)


reduce_precision_p = Primitive("reduce_precision")
reduce_precision_p.def_impl(_impl)
reduce_precision_p.def_abstract_eval(_abstract)
vmap_rules[reduce_precision_p] = ew.elementwise_vmap_rule(reduce_precision_p)
partition_rules[reduce_precision_p] = partition.elementwise()
special.decompositions[reduce_precision_p] = lambda x, **params: _reduce(_LaxOps, x, **params)
special.exact_in_half.add(reduce_precision_p)


def reduce_precision(operand: Any, exponent_bits: int, mantissa_bits: int) -> Any:
    """``jax.lax.reduce_precision(operand, exponent_bits, mantissa_bits)``: each float rounded to
    the nearest value (ties to even) of a format with that many exponent and mantissa bits;
    beyond that format's range values overflow to infinity, and below its smallest normal
    number they flush to (signed) zero, as XLA does. NaNs stay NaN.

    >>> reduce_precision(fgrad.numpy.float32(3.14159), 5, 10)   # float16's format  # doctest: +SKIP
    Array(3.140625, dtype=float32)
    """
    e, m = int(exponent_bits), int(mantissa_bits)
    if e < 1 or m < 0:
        raise ValueError(f"reduce_precision: exponent_bits must be >= 1 and mantissa_bits >= 0, got "
                         f"{exponent_bits} and {mantissa_bits}")
    if type(operand) in (int, float):
        operand = np.asarray(operand, dtypes.default_float())
    return reduce_precision_p.bind(operand, exponent_bits=e, mantissa_bits=m)


def _jvp(primals, tangents, **params):
    out = reduce_precision_p.bind(primals[0], **params)
    return out, None if tangents[0] is None else reduce_precision_p.bind(tangents[0], **params)


jvp_rules[reduce_precision_p] = _jvp
transpose_rules[reduce_precision_p] = lambda ct, x, **params: [reduce_precision_p.bind(ct, **params)]
