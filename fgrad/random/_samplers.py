"""Samplers built on uniform floats, each with JAX's algorithm and op order.

Same key, same numbers as JAX 0.10 (threefry, partitionable): ``uniform``, ``randint``,
``bernoulli`` and ``rademacher`` are bit-equal (exact integer and power-of-two arithmetic);
the others pass through ``log``/``log1p``/``tan``/``erf``, whose last bits may differ between
XLA's and fgrad's implementations. The docstrings state each one's tolerance against JAX's
recorded outputs (``tests/test_random_jax.py``).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from fgrad import lax
from fgrad import numpy as fnp
from fgrad.core import dtypes
from fgrad.core.trace import Tracer, get_aval
from fgrad.random import _xla_math
from fgrad.random._keys import canonical_shape, key_base, random_bits, split_base


# --- argument handling ------------------------------------------------------------------------

def float_dtype(dtype: Any, fn: str) -> np.dtype:
    dtype = dtypes.default_float() if dtype is None else dtypes.canonicalize(dtype)
    if not dtypes.is_float(dtype):
        raise ValueError(f"dtype argument to fgrad.random.{fn} must be a float dtype, got {dtype.name}")
    return dtype


def int_dtype(dtype: Any, fn: str) -> np.dtype:
    dtype = dtypes.default_int() if dtype is None else dtypes.canonicalize(dtype)
    if dtype.kind not in "iu":
        raise TypeError(f"fgrad.random.{fn} only accepts integer dtypes, got {dtype.name}")
    return dtype


def param_shape(fn: str, shape: Any, *params: Any) -> tuple[int, ...]:
    """``shape`` (checked against the parameters' shapes, as JAX does), or their broadcast shape."""
    param_shapes = [tuple(fnp.shape(p)) for p in params]
    if shape is None:
        return tuple(np.broadcast_shapes(*param_shapes)) if param_shapes else ()
    shape = canonical_shape(shape, fn)
    try:
        joined = tuple(np.broadcast_shapes(shape, *param_shapes))
    except ValueError:
        joined = None
    if joined != shape:
        raise ValueError(f"fgrad.random.{fn}: parameter shapes {param_shapes} must broadcast to the shape "
                         f"argument {shape} (the broadcast must equal it)")
    return shape


def as_dtype(x: Any, dtype: np.dtype) -> Any:
    return lax.convert_element_type(fnp.asarray(x), dtype)


def finfo(dtype: np.dtype) -> np.finfo:
    return np.finfo(dtype)


# --- uniform and normal -------------------------------------------------------------------------

def unit_floats(base: Any, shape: tuple[int, ...], dtype: np.dtype) -> Any:
    """Floats ``m * 2**-nmant`` in [0, 1) from the top ``nmant`` random bits ``m``: the value
    JAX makes by setting the mantissa of 1.0 and subtracting 1 (exact either way). As in JAX, a
    dtype with under 8 mantissa bits (bfloat16) draws them from 8 random bits, not its width."""
    nbits, nmant = finfo(dtype).bits, finfo(dtype).nmant
    rng_bits = 8 if nmant < 8 else nbits
    raw = random_bits(base, rng_bits, shape)
    mantissa = lax.shift_right_logical(raw, fnp.asarray(rng_bits - nmant, get_aval(raw).dtype))
    return lax.convert_element_type(mantissa, dtype) * np.asarray(2.0 ** -nmant, dtype)


def uniform_base(base: Any, shape: tuple[int, ...], dtype: np.dtype, minval: Any = 0.0, maxval: Any = 1.0) -> Any:
    minval, maxval = as_dtype(minval, dtype), as_dtype(maxval, dtype)
    floats = unit_floats(base, shape, dtype)
    return fnp.broadcast_to(fnp.maximum(minval, _xla_math.fma(floats, maxval - minval, minval)), shape)


def uniform(key: Any, shape: Sequence[int] = (), dtype: Any = None, minval: Any = 0.0, maxval: Any = 1.0) -> Any:
    """``jax.random.uniform(key, shape=(), dtype=float, minval=0., maxval=1.)``: floats in
    ``[minval, maxval)`` from the top mantissa-width random bits (23 for float32, 52 for
    float64, 10 for float16). Bit-equal to JAX."""
    base, _ = key_base(key, "uniform")
    return uniform_base(base, canonical_shape(shape, "uniform"), float_dtype(dtype, "uniform"), minval, maxval)


def normal_base(base: Any, shape: tuple[int, ...], dtype: np.dtype) -> Any:
    low = np.nextafter(np.asarray(-1.0, dtype), np.asarray(0.0, dtype))
    u = uniform_base(base, shape, dtype, low, 1.0)
    return np.asarray(np.sqrt(2), dtype) * _xla_math.erf_inv(u)


def normal(key: Any, shape: Sequence[int] = (), dtype: Any = None) -> Any:
    """``jax.random.normal(key, shape=(), dtype=float)``: ``sqrt(2) * erf_inv(u)`` with ``u``
    uniform in (-1, 1), and XLA's erf_inv polynomial (``fgrad/random/_xla_math.py``); for a
    complex dtype, JAX's: real and imaginary parts from two split keys, each of variance 1/2.

    Against JAX: within 2 ulp (float32; most values bit-equal), 4 ulp (float64).
    """
    base, _ = key_base(key, "normal")
    shape = canonical_shape(shape, "normal")
    if dtype is not None and dtypes.is_complex(dtypes.canonicalize(dtype)):
        return _complex_normal(base, shape, dtypes.canonicalize(dtype))
    return normal_base(base, shape, float_dtype(dtype, "normal"))


def _complex_normal(base: Any, shape: tuple[int, ...], dtype: np.dtype) -> Any:
    """JAX's complex normal: two keys split from ``key``, a real normal from each, as
    ``(re + 1j * im) / sqrt(2)`` (each part of variance 1/2)."""
    keys = split_base(base, (2,))
    part = dtypes.real_dtype(dtype)
    re, im = (normal_base(keys[k], shape, part) for k in (0, 1))
    return lax.div(lax.complex(re, im), np.asarray(np.sqrt(2), dtype))


# --- integers and booleans ---------------------------------------------------------------------

def _convert_and_clip(value: Any, dtype: np.dtype) -> Any:
    """``value`` (an integer array) in ``dtype``, clipped to its range instead of wrapping."""
    source = get_aval(value).dtype
    low = max(np.iinfo(dtype).min, np.iinfo(source).min)
    high = min(np.iinfo(dtype).max, np.iinfo(source).max)
    return lax.convert_element_type(fnp.clip(value, np.asarray(low, source), np.asarray(high, source)), dtype)


def _integer_bound(x: Any) -> Any:
    x = fnp.asarray(x)
    return x if get_aval(x).dtype.kind in "iu" else x.astype(dtypes.default_int())


def randint(key: Any, shape: Sequence[int], minval: Any, maxval: Any, dtype: Any = None) -> Any:
    """``jax.random.randint(key, shape, minval, maxval, dtype=int)``: integers in ``[minval, maxval)``.

    JAX's algorithm: two draws of ``nbits`` random bits, combined as ``(hi mod span) * (2**nbits
    mod span) + lo mod span``, so the bias is about ``span / 2**(2 nbits)``; bounds are clipped
    to the dtype's range (``maxval`` past its maximum includes the maximum). 8- and 16-bit dtypes
    are sampled in int32 (bounds clipped to the dtype's range, ``maxval`` to one past its
    maximum) and converted, as JAX 0.10 does. Bit-equal to JAX.
    """
    base, _ = key_base(key, "randint")
    dtype = int_dtype(dtype, "randint")
    shape = param_shape("randint", shape, minval, maxval)
    if dtype.itemsize >= 4:
        return _randint_bits(base, shape, minval, maxval, dtype)
    info = np.iinfo(dtype)
    minval = fnp.clip(fnp.asarray(minval).astype(np.int32), int(info.min), int(info.max))
    maxval = fnp.clip(fnp.asarray(maxval).astype(np.int32), int(info.min), int(info.max) + 1)
    return _randint_bits(base, shape, minval, maxval, np.dtype(np.int32)).astype(dtype)


def _randint_bits(base: Any, shape: tuple, minval: Any, maxval: Any, dtype: np.dtype) -> Any:
    nbits = dtype.itemsize * 8
    unsigned = np.dtype(f"uint{nbits}")
    minval, maxval = _integer_bound(minval), _integer_bound(maxval)
    maxval_dtype = get_aval(maxval).dtype
    dtype_max = _convert_and_clip(fnp.asarray(np.iinfo(dtype).max, dtype), maxval_dtype)
    maxval_out_of_range = maxval > dtype_max
    minval, maxval = _convert_and_clip(minval, dtype), _convert_and_clip(maxval, dtype)
    k1, k2 = split_base(base, (2,))
    higher, lower = random_bits(k1, nbits, shape), random_bits(k2, nbits, shape)
    span = lax.convert_element_type(maxval - minval, unsigned)
    span = fnp.where(maxval <= minval, np.asarray(1, unsigned), span)
    span = fnp.where(maxval_out_of_range & (maxval > minval), span + np.asarray(1, unsigned), span)
    multiplier = lax.rem(np.asarray(2 ** (nbits // 2), unsigned), span)
    multiplier = lax.rem(multiplier * multiplier, span)
    offset = lax.rem(lax.rem(higher, span) * multiplier + lax.rem(lower, span), span)
    return fnp.broadcast_to(minval + lax.convert_element_type(offset, dtype), shape)


def _float_param(p: Any, fn: str, name: str) -> Any:
    p = fnp.asarray(p)
    if not dtypes.is_float(get_aval(p).dtype):
        raise TypeError(f"fgrad.random.{fn}: {name} must have a floating dtype, got {get_aval(p).str_short()}")
    return p


def bernoulli(key: Any, p: Any = 0.5, shape: Sequence[int] | None = None, mode: str = "low") -> Any:
    """``jax.random.bernoulli(key, p=0.5, shape=None, mode='low')``: ``uniform < p`` in ``p``'s
    dtype; ``mode='high'`` adds a second uniform below the first's resolution. Bit-equal to JAX."""
    if mode not in ("high", "low"):
        raise ValueError(f"fgrad.random.bernoulli: got mode={mode!r}, expected 'high' or 'low'")
    base, _ = key_base(key, "bernoulli")
    p = _float_param(p, "bernoulli", "the probability p")
    dtype = get_aval(p).dtype
    shape = param_shape("bernoulli", shape, p)
    if mode == "low":
        return uniform_base(base, shape, dtype) < p
    u = uniform_base(base, (2, *shape), dtype)
    return u[1] * np.asarray(2.0 ** -finfo(dtype).nmant, dtype) < p - u[0]


def rademacher(key: Any, shape: Sequence[int] = (), dtype: Any = None) -> Any:
    """``jax.random.rademacher(key, shape=(), dtype=int)``: -1 or +1 with equal probability
    (``2 * bernoulli(key, 0.5) - 1``). Bit-equal to JAX."""
    dtype = dtypes.default_int() if dtype is None else dtypes.canonicalize(dtype)
    draws = bernoulli(key, 0.5, canonical_shape(shape, "rademacher")).astype(dtype)
    return (2 * draws - 1).astype(dtype)


# --- continuous samplers from one uniform draw ----------------------------------------------------

def exponential_base(base: Any, shape: tuple[int, ...], dtype: np.dtype) -> Any:
    return -_xla_math.log1p(-uniform_base(base, shape, dtype))


def exponential(key: Any, shape: Sequence[int] = (), dtype: Any = None) -> Any:
    """``jax.random.exponential(key, shape=(), dtype=float)``: ``-log1p(-u)``. Against JAX:
    within 2 ulp (float32), 1 ulp (float64)."""
    base, _ = key_base(key, "exponential")
    return exponential_base(base, canonical_shape(shape, "exponential"), float_dtype(dtype, "exponential"))


def laplace(key: Any, shape: Sequence[int] = (), dtype: Any = None) -> Any:
    """``jax.random.laplace(key, shape=(), dtype=float)``: ``sign(u) * log1p(-|u|)`` with ``u``
    uniform in (-1, 1). Against JAX: within 2 ulp (float32), 1 ulp (float64)."""
    base, _ = key_base(key, "laplace")
    dtype = float_dtype(dtype, "laplace")
    u = uniform_base(base, canonical_shape(shape, "laplace"), dtype, -1.0 + finfo(dtype).epsneg, 1.0)
    return fnp.sign(u) * _xla_math.log1p(-fnp.abs(u))


def logistic(key: Any, shape: Sequence[int] = (), dtype: Any = None) -> Any:
    """``jax.random.logistic(key, shape=(), dtype=float)``: ``log(u) - log1p(-u)``. Against JAX:
    within 4 ulp."""
    base, _ = key_base(key, "logistic")
    dtype = float_dtype(dtype, "logistic")
    x = uniform_base(base, canonical_shape(shape, "logistic"), dtype, finfo(dtype).tiny, 1.0)
    return fnp.log(x) - _xla_math.log1p(-x)


def cauchy(key: Any, shape: Sequence[int] = (), dtype: Any = None) -> Any:
    """``jax.random.cauchy(key, shape=(), dtype=float)``: ``tan(pi * (u - 1/2))``. Against JAX:
    within 4 ulp."""
    base, _ = key_base(key, "cauchy")
    dtype = float_dtype(dtype, "cauchy")
    u = uniform_base(base, canonical_shape(shape, "cauchy"), dtype, finfo(dtype).eps, 1.0)
    return lax.tan(np.asarray(np.pi, dtype) * (u - np.asarray(0.5, dtype)))


def gumbel_base(base: Any, shape: tuple[int, ...], dtype: np.dtype, mode: str) -> Any:
    info = finfo(dtype)
    if mode == "low":
        u = uniform_base(base, shape, dtype, info.tiny, 1.0)
        return -fnp.log(-fnp.log(u))
    both = uniform_base(base, (2, *shape), dtype)
    high, low = both[0], both[1]
    x = fnp.where(high >= np.asarray(0.5, dtype), high,
                  high + np.asarray(2.0 ** -info.nmant, dtype) * low + np.asarray(info.tiny, dtype))
    return -fnp.log(-_xla_math.log1p(-x))


def gumbel_mode(mode: str | None, fn: str) -> str:
    mode = "low" if mode is None else mode
    if mode not in ("low", "high"):
        raise ValueError(f"fgrad.random.{fn}: mode must be None, 'low' or 'high' "
                         f"('highest' is not implemented), got {mode!r}")
    return mode


def gumbel(key: Any, shape: Sequence[int] = (), dtype: Any = None, mode: str | None = None) -> Any:
    """``jax.random.gumbel(key, shape=(), dtype=float, mode=None)``: ``-log(-log(u))``;
    ``mode='high'`` draws two uniforms for resolution below 1e-7. Against JAX: within 4 ulp
    (float32; a few values near the median, where ``-log(u)`` is near 1, carry the relative
    error of ``log`` up to 16 ulp)."""
    base, _ = key_base(key, "gumbel")
    return gumbel_base(base, canonical_shape(shape, "gumbel"), float_dtype(dtype, "gumbel"),
                       gumbel_mode(mode, "gumbel"))


def _next_toward(x: Any, up: bool) -> Any:
    """``nextafter(x, +inf)`` (``up``) or ``nextafter(x, -inf)``, for float32/float64 arrays."""
    dtype = get_aval(x).dtype
    if dtype not in (np.float32, np.float64):
        raise NotImplementedError(f"fgrad.random: nextafter of traced {dtype.name} bounds; pass concrete bounds")
    int_type = np.int32 if dtype == np.float32 else np.int64
    words = lax.bitcast_convert_type(x, int_type)
    step = fnp.where((x > 0) == up, np.asarray(1, int_type), np.asarray(-1, int_type))
    moved = lax.bitcast_convert_type(words + step, dtype)
    smallest = np.asarray(np.nextafter(0, 1 if up else -1, dtype=dtype), dtype)
    moved = fnp.where(x == 0, smallest, moved)
    at_end = fnp.isnan(x) | (x == np.asarray(np.inf if up else -np.inf, dtype))
    return fnp.where(at_end, x, moved)


def _bound_toward(bound: Any, up: bool) -> Any:
    """The next float inside the interval from ``bound`` (JAX's ``nextafter`` clip)."""
    dtype = get_aval(bound).dtype
    if dtype in (np.float32, np.float64):
        return _next_toward(lax.stop_gradient(bound), up)
    if isinstance(bound, Tracer):
        raise NotImplementedError(f"fgrad.random.truncated_normal: traced {dtype.name} bounds are not "
                                  f"supported (no {dtype.name} nextafter); pass concrete bounds or float32")
    value = np.asarray(bound)
    return fnp.asarray(np.nextafter(value, np.asarray(np.inf if up else -np.inf, value.dtype)))


def truncated_normal(key: Any, lower: Any, upper: Any, shape: Sequence[int] | None = None,
                     dtype: Any = None) -> Any:
    """``jax.random.truncated_normal(key, lower, upper, shape=None, dtype=float)``: normal values
    in the open interval ``(lower, upper)`` by inverting the CDF:
    ``sqrt(2) * erf_inv(uniform(erf(lower/sqrt2), erf(upper/sqrt2)))``, clipped inside.

    Against JAX: within 8 ulp for bounds within ±3 (XLA's float32 ``erf`` is a rational
    approximation; fgrad's is Cody's, correctly rounded)."""
    base, _ = key_base(key, "truncated_normal")
    dtype = float_dtype(dtype, "truncated_normal")
    shape = param_shape("truncated_normal", shape, lower, upper)
    sqrt2 = np.asarray(np.sqrt(2), dtype)
    lower, upper = as_dtype(lower, dtype), as_dtype(upper, dtype)
    a, b = lax.erf(lower / sqrt2), lax.erf(upper / sqrt2)
    u = uniform_base(base, shape, dtype, a, b)
    out = sqrt2 * _xla_math.erf_inv(u)
    return fnp.clip(out, _bound_toward(lower, True), _bound_toward(upper, False))


def geometric(key: Any, p: Any, shape: Sequence[int] | None = None, dtype: Any = None) -> Any:
    """``jax.random.geometric(key, p, shape=None, dtype=int)``: trials to the first success,
    ``floor(log(u) / log1p(-p)) + 1``. Equal to JAX except where a quotient lands within an ulp
    of an integer."""
    base, _ = key_base(key, "geometric")
    dtype = int_dtype(dtype, "geometric")
    p = fnp.asarray(p)
    if not dtypes.is_float(get_aval(p).dtype):
        p = p.astype(dtypes.default_float())
    shape = param_shape("geometric", shape, p)
    fdtype = get_aval(p).dtype
    u = uniform_base(base, shape, fdtype)
    u = fnp.where(u == 0, np.asarray(1, fdtype), u)
    g = fnp.floor(fnp.log(u) / _xla_math.log1p(-p)) + np.asarray(1, fdtype)
    return g.astype(dtype)


def lognormal(key: Any, sigma: Any = 1.0, shape: Sequence[int] | None = None, dtype: Any = None) -> Any:
    """``jax.random.lognormal(key, sigma=1., shape=None, dtype=float)``: ``exp(sigma * normal)``.
    Against JAX: within 4 ulp."""
    base, _ = key_base(key, "lognormal")
    dtype = float_dtype(dtype, "lognormal")
    shape = param_shape("lognormal", shape, sigma)
    return fnp.exp(normal_base(base, shape, dtype) * as_dtype(sigma, dtype))


def rayleigh(key: Any, scale: Any = 1.0, shape: Sequence[int] | None = None, dtype: Any = None) -> Any:
    """``jax.random.rayleigh(key, scale=1., shape=None, dtype=float)``: ``scale * sqrt(-2 log u)``.
    Against JAX: within 2 ulp."""
    base, _ = key_base(key, "rayleigh")
    dtype = float_dtype(dtype, "rayleigh")
    shape = param_shape("rayleigh", shape, scale)
    u = uniform_base(base, shape, dtype)
    scale = fnp.broadcast_to(as_dtype(scale, dtype), shape)
    return scale * fnp.sqrt(fnp.log(u) * np.asarray(-2, dtype))


def pareto(key: Any, b: Any, shape: Sequence[int] | None = None, dtype: Any = None) -> Any:
    """``jax.random.pareto(key, b, shape=None, dtype=float)``: ``exp(exponential / b)``.
    Against JAX: within 4 ulp."""
    base, _ = key_base(key, "pareto")
    dtype = float_dtype(dtype, "pareto")
    shape = param_shape("pareto", shape, b)
    return fnp.exp(exponential_base(base, shape, dtype) / as_dtype(b, dtype))


def maxwell(key: Any, shape: Sequence[int] = (), dtype: Any = None) -> Any:
    """``jax.random.maxwell(key, shape=(), dtype=float)``: the norm of three standard normals.
    Against JAX: within 4 ulp."""
    base, _ = key_base(key, "maxwell")
    dtype = float_dtype(dtype, "maxwell")
    x = normal_base(base, (*canonical_shape(shape, "maxwell"), 3), dtype)
    return fnp.sqrt(fnp.sum(x * x, axis=-1))


def double_sided_maxwell(key: Any, loc: Any, scale: Any, shape: Sequence[int] = (), dtype: Any = None) -> Any:
    """``jax.random.double_sided_maxwell(key, loc, scale, shape=(), dtype=float)``: a Maxwell
    magnitude with a random sign, ``sign * maxwell * scale + loc``; the result's shape is
    ``shape + broadcast(loc, scale).shape``. Against JAX: within 4 ulp."""
    base, _ = key_base(key, "double_sided_maxwell")
    dtype = float_dtype(dtype, "double_sided_maxwell")
    params = tuple(np.broadcast_shapes(tuple(fnp.shape(loc)), tuple(fnp.shape(scale))))
    shape = (*(canonical_shape(shape, "double_sided_maxwell") or params), *params)
    maxwell_key, sign_key = split_base(base, (2,))
    magnitude = maxwell(maxwell_key, shape, dtype)
    sign = rademacher(sign_key, shape, dtype)
    return _xla_math.fma(sign * magnitude, as_dtype(scale, dtype), as_dtype(loc, dtype))


def weibull_min(key: Any, scale: Any, concentration: Any, shape: Sequence[int] = (), dtype: Any = None) -> Any:
    """``jax.random.weibull_min(key, scale, concentration, shape=(), dtype=float)``: the inverse CDF
    ``(-log1p(-u)) ** (1 / concentration) * scale``. Against JAX: within 4 ulp."""
    base, _ = key_base(key, "weibull_min")
    dtype = float_dtype(dtype, "weibull_min")
    u = uniform_base(base, canonical_shape(shape, "weibull_min"), dtype)
    exponent = np.asarray(1.0, dtype) / as_dtype(concentration, dtype)
    return fnp.power(-_xla_math.log1p(-u), exponent) * as_dtype(scale, dtype)


def triangular(key: Any, left: Any, mode: Any, right: Any, shape: Sequence[int] | None = None,
               dtype: Any = None) -> Any:
    """``jax.random.triangular(key, left, mode, right, shape=None, dtype=float)``: the inverse CDF of
    the triangular distribution. Against JAX: within 4 ulp."""
    base, _ = key_base(key, "triangular")
    dtype = float_dtype(dtype, "triangular")
    shape = param_shape("triangular", shape, left, mode, right)
    left, mode, right = (fnp.broadcast_to(as_dtype(v, dtype), shape) for v in (left, mode, right))
    fc = (mode - left) / (right - left)
    u = uniform_base(base, shape, dtype)
    below = left + fnp.sqrt(u * (right - left) * (mode - left))
    above = right - fnp.sqrt((np.asarray(1, dtype) - u) * (right - left) * (right - mode))
    return fnp.where(u < fc, below, above)


def wald(key: Any, mean: Any, shape: Sequence[int] | None = None, dtype: Any = None) -> Any:
    """``jax.random.wald(key, mean, shape=None, dtype=float)``: inverse Gaussian samples by Michael,
    Schucany and Haas's transformation of a normal and a uniform draw. Against JAX: within 8 ulp."""
    base, _ = key_base(key, "wald")
    dtype = float_dtype(dtype, "wald")
    shape = param_shape("wald", shape, mean)
    k1, k2 = split_base(base, (2,))
    mean = fnp.broadcast_to(as_dtype(mean, dtype), shape)
    v = normal_base(k1, shape, dtype)
    z = uniform_base(k2, shape, dtype)
    y = v * v
    mean_sq = mean * mean
    sqrt_term = fnp.sqrt(_xla_math.fma(np.asarray(4, dtype) * mean, y, mean_sq * (y * y)))
    x = mean + mean_sq * y / np.asarray(2, dtype) - mean / np.asarray(2, dtype) * sqrt_term
    return fnp.where(z <= mean / (mean + x), x, mean_sq / x)
