"""More elementwise math: frexp/ldexp/modf/spacing (bit-level float work), heaviside, angle, cross, gcd/lcm
(Euclid in a ``while_loop``), i0, the complex predicates, geomspace, packbits/unpackbits and
bitwise_count.

Compositions of fgrad.numpy / fgrad.lax functions, so each runs eagerly, natively under
``jit`` and under ``vmap``; ``grad`` flows where the function is differentiable (ldexp in
its first argument, modf, heaviside (zero), i0).
"""
from __future__ import annotations

import numpy as np

from fgrad import lax
from fgrad.core import dtypes
from fgrad.core.trace import Tracer, get_aval
from fgrad.numpy._creation import logspace
from fgrad.numpy._manip import broadcast_arrays, moveaxis, ravel, reshape, stack, swapaxes
from fgrad.numpy._math import (abs, arctan2, ceil, copysign, exp, floor, floor_divide, imag, isinf, isnan, log10,
                               rad2deg, real,
                               multiply, sign, sqrt, true_divide, where_select)
from fgrad.numpy._reductions import any, sum
from fgrad.numpy._util import canonical_axis, optional_dtype, promote, promote_float, static_int, to_array

__all__ = ["frexp", "ldexp", "modf", "spacing", "heaviside", "angle", "cross", "gcd", "lcm", "i0", "iscomplex", "isreal",
           "iscomplexobj", "isrealobj", "real_if_close", "geomspace", "packbits", "unpackbits", "bitwise_count"]

_UNSIGNED_OF_WIDTH = {2: "uint16", 4: "uint32", 8: "uint64"}


def _bits_dtype(op: str, dtype: np.dtype) -> np.dtype:
    """The unsigned integer dtype as wide as the float ``dtype`` (for bit-level work)."""
    name = _UNSIGNED_OF_WIDTH.get(dtype.itemsize)
    if name is None or dtypes.canonicalize(np.dtype(name)) != np.dtype(name):
        raise TypeError(f"{op}: {dtype.name} is not supported here (no {name or 'matching'} integer type "
                        "is available; float64 needs fgrad.config.update('enable_x64', True))")
    return np.dtype(name)


def _float_bits(op: str, x):
    x = promote_float(op, x)
    dtype = get_aval(x).dtype
    return x, dtype, _bits_dtype(op, dtype), np.finfo(dtype)


def frexp(x, /):
    """``jax.numpy.frexp(x, /)``: mantissa ``m`` in [0.5, 1) and int32 exponent ``e`` with
    ``x == m * 2**e`` (``m = x``, ``e = 0`` for zeros, infinities and NaN; subnormals too)."""
    x, dtype, udtype, info = _float_bits("frexp", x)
    bias, mask = 1 - info.minexp, (1 << info.nexp) - 1
    subnormal = lax.bitwise_and(lax.ne(x, dtype.type(0)), lax.lt(abs(x), dtype.type(info.tiny)))
    scaled = multiply(x, where_select(subnormal, dtype.type(2.0 ** info.nmant), dtype.type(1)))
    bits = lax.bitcast_convert_type(scaled, udtype)
    field = lax.bitwise_and(lax.shift_right_logical(bits, udtype.type(info.nmant)), udtype.type(mask))
    exponent = lax.convert_element_type(field, np.dtype("int32"))
    exponent = exponent - (bias - 1) - where_select(subnormal, np.int32(info.nmant), np.int32(0))
    mantissa_bits = lax.bitwise_or(lax.bitwise_and(bits, udtype.type(~(mask << info.nmant) & (2 ** (8 * udtype.itemsize) - 1))),
                                   udtype.type((bias - 1) << info.nmant))
    mantissa = lax.bitcast_convert_type(mantissa_bits, dtype)
    special = lax.bitwise_or(lax.bitwise_or(isinf(x), isnan(x)), lax.eq(x, dtype.type(0)))
    return where_select(special, x, mantissa), where_select(special, np.int32(0), exponent)


def _power_of_two(k, dtype: np.dtype, udtype: np.dtype, info):
    """``2.0 ** k`` exactly, for integer ``k`` in the normal exponent range."""
    biased = lax.convert_element_type(lax.add(k, np.int32(1 - info.minexp)), udtype)
    return lax.bitcast_convert_type(lax.shift_left(biased, udtype.type(info.nmant)), dtype)


def ldexp(x1, x2, /):
    """``jax.numpy.ldexp(x1, x2, /)``: ``x1 * 2**x2`` for integer ``x2``, exact (scaled in three
    exactly representable powers of two, so large exponents saturate to 0 or inf)."""
    x2 = to_array(x2, "ldexp")
    if get_aval(x2).dtype.kind not in "iub":
        raise TypeError(f"ldexp: x2 must be integers, got {get_aval(x2).str_short()}; use x1 * 2.0 ** x2")
    x1, dtype, udtype, info = _float_bits("ldexp", x1)
    limit = info.maxexp - info.minexp + info.nmant + 1
    k = lax.convert_element_type(x2, np.dtype("int32"))
    k = lax.max(lax.min(k, np.int32(limit)), np.int32(-limit))
    k1 = floor_divide(k, 3)
    k2 = floor_divide(k - k1, 2)
    k3 = k - k1 - k2
    out = x1
    for part in (k1, k2, k3):
        out = multiply(out, _power_of_two(part, dtype, udtype, info))
    return out


def modf(x, /, out=None):
    """``jax.numpy.modf(x, /, out=None)``: fractional and integral parts, ``x - whole`` and
    ``whole`` (``x`` rounded toward zero). As in JAX, the fractional part of +-inf is NaN and a
    zero fractional part is +0 (NumPy gives NaN-free 0 with ``x``'s sign)."""
    x = promote_float("modf", x)
    whole = where_select(lax.ge(x, get_aval(x).dtype.type(0)), floor(x), ceil(x))
    infinite = isinf(x)
    return where_select(infinite, np.nan, x - where_select(infinite, 0, whole)), whole


def spacing(x, /):
    """``jax.numpy.spacing(x, /)``: the distance from ``x`` to the next float away from zero,
    with ``x``'s sign (NaN for infinities and NaN)."""
    x, dtype, udtype, _ = _float_bits("spacing", x)
    magnitude = where_select(isinf(x), 0, abs(x))   # inf's successor would be a signalling NaN
    bits = lax.bitcast_convert_type(magnitude, udtype)
    following = lax.bitcast_convert_type(lax.add(bits, udtype.type(1)), dtype)
    out = copysign(following - magnitude, x)
    return where_select(isinf(x), np.nan, out)


def heaviside(x1, x2, /):
    """``jax.numpy.heaviside(x1, x2, /)``: 0 where ``x1 < 0``, 1 where ``x1 > 0``, ``x2`` where
    ``x1 == 0``, NaN where ``x1`` is NaN (floating point)."""
    x1, x2 = promote("heaviside", x1, x2)
    x1, x2 = promote_float("heaviside", x1), promote_float("heaviside", x2)
    zero = get_aval(x1).dtype.type(0)
    step = where_select(lax.lt(x1, zero), 0, where_select(lax.gt(x1, zero), 1, x2))
    return where_select(isnan(x1), x1, step)  # JAX: so the gradient at NaN is 1


def angle(z, deg=False):
    """``jax.numpy.angle(z, deg=False)``: the argument ``arctan2(imag(z), real(z))`` (so pi for
    negative reals and for -0., as JAX), in degrees with ``deg``; floating point."""
    z = promote_float("angle", z)
    out = arctan2(imag(z), real(z))
    return rad2deg(out) if deg else out


def _components(v, n: int):
    return [v[..., i] for i in range(n)] + ([lax.full_like(v[..., 0], 0)] if n == 2 else [])


def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """``jax.numpy.cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None)``: cross products of the
    2- or 3-vectors along ``axisa``/``axisb`` (``axis`` sets all three), broadcast over the rest;
    two 2-vectors give the scalar z component."""
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = promote("cross", to_array(a, "cross"), to_array(b, "cross"), shape=False)
    a, b = moveaxis(to_array(a), axisa, -1), moveaxis(to_array(b), axisb, -1)
    na, nb = get_aval(a).shape[-1], get_aval(b).shape[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise ValueError(f"cross: the vectors must have 2 or 3 components, got {na} and {nb}")
    if na == 2 and nb == 2:
        return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
    a0, a1, a2 = _components(a, na)
    b0, b1, b2 = _components(b, nb)
    c = stack(broadcast_arrays(a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0))
    return moveaxis(c, 0, canonical_axis("cross", axisc, get_aval(c).ndim))


def _integer_pair(op: str, x1, x2):
    x1, x2 = promote(op, x1, x2)
    x1, x2 = (to_array(v) for v in (x1, x2))
    if get_aval(x1).dtype.kind not in "iu":
        raise TypeError(f"{op}: arguments must be integers, got {get_aval(x1).str_short()}")
    return broadcast_arrays(x1, x2)


def _euclid_step(pair):
    # (a, b) -> (b, a rem b): |b| falls every step for any signs, so the loop ends even where
    # abs() wraps (the most negative integer), unlike a swap that keeps a >= b.
    a, b = pair
    nonzero = lax.ne(b, get_aval(b).dtype.type(0))
    safe = where_select(nonzero, b, 1)
    return where_select(nonzero, b, a), where_select(nonzero, lax.rem(a, safe), 0)


def gcd(x1, x2, /):
    """``jax.numpy.gcd(x1, x2, /)``: the greatest common divisor of integers (0 for two zeros), by
    Euclid's algorithm in a ``lax.while_loop``."""
    x1, x2 = _integer_pair("gcd", x1, x2)
    out, _ = lax.while_loop(lambda pair: any(lax.ne(pair[1], get_aval(pair[1]).dtype.type(0))), _euclid_step,
                            (abs(x1), abs(x2)))
    return abs(out)


def lcm(x1, x2, /):
    """``jax.numpy.lcm(x1, x2, /)``: the least common multiple of integers (0 if either is 0)."""
    x1, x2 = _integer_pair("lcm", x1, x2)
    d = gcd(x1, x2)
    zero = lax.eq(d, get_aval(d).dtype.type(0))
    # |x1| * (|x2| / d), wrapping on overflow as NumPy and JAX do (not the |.| of a wrapped product)
    return where_select(zero, 0, multiply(abs(x1), floor_divide(abs(x2), where_select(zero, 1, d))))


_I0_SWITCH = 20.0
_I0_SERIES_TERMS = 48
_I0_ASYMPTOTIC_TERMS = 30


def i0(x, /):
    """``jax.numpy.i0(x, /)``: the modified Bessel function of the first kind, order 0: its power
    series for ``|x| < 20`` and the asymptotic expansion ``e**|x| / sqrt(2 pi |x|) * sum(...)``
    beyond (both accurate to float64 rounding there); differentiable."""
    x = abs(promote_float("i0", x))
    dtype = get_aval(x).dtype
    small = lax.lt(x, dtype.type(_I0_SWITCH))
    xs = where_select(small, x, 0.0)
    quarter_square = multiply(xs, xs) * 0.25
    term, total = lax.full_like(xs, 1), lax.full_like(xs, 1)
    for k in range(1, _I0_SERIES_TERMS):
        term = term * quarter_square * (1.0 / (k * k))
        total = total + term
    xl = where_select(small, _I0_SWITCH, x)
    inverse = true_divide(1.0, xl * 8.0)
    term, series = lax.full_like(xl, 1), lax.full_like(xl, 1)
    for k in range(1, _I0_ASYMPTOTIC_TERMS):
        term = term * inverse * ((2 * k - 1) ** 2 / k)
        series = series + term
    large = exp(xl) / sqrt(xl * (2 * np.pi)) * series
    return where_select(small, total, large)


def iscomplexobj(x):
    """``jax.numpy.iscomplexobj(x)``: True when ``x``'s dtype is complex (a Python bool)."""
    kind = get_aval(x).dtype.kind if hasattr(x, "aval") else np.asarray(x).dtype.kind
    return kind == "c"


def isrealobj(x):
    """``jax.numpy.isrealobj(x)``: ``not iscomplexobj(x)``."""
    return not iscomplexobj(x)


def iscomplex(x):
    """``jax.numpy.iscomplex(x)``: elementwise, True where the imaginary part is non-zero."""
    x = to_array(x, "iscomplex")
    if get_aval(x).dtype.kind != "c":
        return lax.full(get_aval(x).shape, False, dtypes.bool_)
    return lax.ne(imag(x), 0)


def isreal(x):
    """``jax.numpy.isreal(x)``: elementwise, True where the imaginary part is zero."""
    return lax.bitwise_not(iscomplex(x))


def real_if_close(a, tol=100):
    """``numpy.real_if_close(a, tol=100)``: the real part of a complex ``a`` when every imaginary
    part is within ``tol`` machine epsilons of zero (``tol`` <= 1 is an absolute bound), else
    ``a`` as it is. The result's dtype depends on the values, so ``a`` must be concrete (JAX has
    no such function; under ``jit``/``grad``/``vmap`` use ``fnp.real``)."""
    a = to_array(a, "real_if_close")
    dtype = get_aval(a).dtype
    if not dtypes.is_complex(dtype):
        return a
    if isinstance(a, Tracer):
        raise TypeError("real_if_close: its result dtype depends on the values, so it needs a concrete "
                        "array, not a traced one; under jit/grad/vmap use fnp.real(a)")
    bound = tol * np.finfo(dtypes.real_dtype(dtype)).eps if tol > 1 else tol
    return real(a) if bool(np.all(np.abs(np.imag(np.asarray(a))) < bound)) else a


def geomspace(start, stop, num=50, endpoint=True, dtype=None, axis=0):
    """``jax.numpy.geomspace(start, stop, num=50, endpoint=True, dtype=None, axis=0)``: ``num``
    numbers spaced evenly on a log scale from ``start`` to ``stop`` (same sign, non-zero)."""
    start, stop = promote("geomspace", start, stop, to_float=True)
    start, stop = to_array(start), to_array(stop)
    s = sign(start)
    out = s * logspace(log10(start / s), log10(stop / s), num, endpoint=endpoint, base=10.0)
    out = moveaxis(out, 0, canonical_axis("geomspace", axis, get_aval(out).ndim))
    target = optional_dtype(dtype)
    return out if target is None else lax.convert_element_type(out, target)


def _bit_positions(bitorder: str, op: str):
    if bitorder not in ("big", "little"):
        raise ValueError(f"{op}: bitorder must be 'big' or 'little', got {bitorder!r}")
    bits = np.arange(8, dtype=np.uint8)
    return bits[::-1].copy() if bitorder == "big" else bits


def packbits(a, axis=None, bitorder="big"):
    """``jax.numpy.packbits(a, axis=None, bitorder='big')``: the truth of ``a``'s elements packed
    8 to a uint8 along ``axis`` (the flattened array when None), zero-padded at the end."""
    a = to_array(a, "packbits")
    if get_aval(a).dtype.kind not in "biu":
        raise TypeError(f"packbits: expected integer or bool input, got {get_aval(a).str_short()}")
    bits = _bit_positions(bitorder, "packbits")
    a = lax.convert_element_type(lax.ne(a, get_aval(a).dtype.type(0)), np.dtype("uint8"))
    if axis is None:
        a, axis = ravel(a), 0
    axis = canonical_axis("packbits", axis, get_aval(a).ndim)
    a = swapaxes(a, axis, -1)
    shape = get_aval(a).shape
    extra = -shape[-1] % 8
    if extra:
        a = lax.pad(a, np.uint8(0), [(0, 0, 0)] * (len(shape) - 1) + [(0, extra, 0)])
    a = reshape(a, shape[:-1] + ((shape[-1] + extra) // 8, 8))
    shifted = lax.shift_left(a, lax.broadcast_in_dim(bits, get_aval(a).shape, (len(shape),)))
    packed = lax.convert_element_type(sum(shifted, axis=-1), np.dtype("uint8"))
    return swapaxes(packed, axis, -1)


def unpackbits(a, axis=None, count=None, bitorder="big"):
    """``jax.numpy.unpackbits(a, axis=None, count=None, bitorder='big')``: each uint8 of ``a`` as 8
    bits (0/1 uint8) along ``axis`` (the flattened array when None), cut or zero-padded to
    ``count`` bits."""
    a = to_array(a, "unpackbits")
    if get_aval(a).dtype != np.dtype("uint8"):
        raise TypeError(f"unpackbits: expected uint8 input, got {get_aval(a).str_short()}")
    masks = np.left_shift(np.uint8(1), _bit_positions(bitorder, "unpackbits"))
    if axis is None:
        a, axis = ravel(a), 0
    axis = canonical_axis("unpackbits", axis, get_aval(a).ndim)
    a = swapaxes(a, axis, -1)
    shape = get_aval(a).shape
    expanded = lax.broadcast_in_dim(a, shape + (8,), tuple(range(len(shape))))
    picked = lax.bitwise_and(expanded, lax.broadcast_in_dim(masks, shape + (8,), (len(shape),)))
    bits = lax.convert_element_type(lax.ne(picked, np.uint8(0)), np.dtype("uint8"))
    bits = reshape(bits, shape[:-1] + (shape[-1] * 8,))
    if count is not None:
        count = static_int("unpackbits", "count", count)
        length = shape[-1] * 8
        if count > length:
            bits = lax.pad(bits, np.uint8(0), [(0, 0, 0)] * (len(shape) - 1) + [(0, count - length, 0)])
        else:
            bits = bits[..., :count]
    return swapaxes(bits, axis, -1)


def bitwise_count(x, /):
    """``jax.numpy.bitwise_count(x, /)``: the number of 1 bits in ``|x|`` (uint8)."""
    x = to_array(x, "bitwise_count")
    dtype = get_aval(x).dtype
    if dtype.kind not in "biu":
        raise TypeError(f"bitwise_count: expected integer or bool input, got {get_aval(x).str_short()}")
    if dtype == dtypes.bool_:
        return lax.convert_element_type(x, np.dtype("uint8"))
    magnitude = abs(x)
    count = lax.full(get_aval(x).shape, 0, dtype)
    for k in range(8 * dtype.itemsize):
        bit = lax.bitwise_and(lax.shift_right_logical(magnitude, dtype.type(k)), dtype.type(1))
        count = lax.add(count, bit)
    return lax.convert_element_type(count, np.dtype("uint8"))
