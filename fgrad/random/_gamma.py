"""The gamma family and Poisson, with JAX's algorithms and loops.

``gamma`` is Marsaglia and Tsang's rejection method ("A simple method for generating gamma
variables", 2000), one key per element (``split(key, a.size)``) and JAX's nested while loops,
boosted by ``u**(1/a)`` below ``a = 1``; its derivative in ``a`` is the implicit
reparameterisation ``lax.random_gamma_grad(a, sample)``, as in JAX. ``beta``, ``dirichlet``,
``chisquare``, ``f``, ``t`` and ``generalized_normal``/``ball`` are built on it as JAX builds
them. ``poisson`` is Knuth's product of uniforms below rate 10 and Hormann's transformed
rejection (PTRS) above, run to completion (JAX's loop cap is the dtype's maximum).

Against JAX: the accept/reject decisions and the uniform/normal draws are JAX's, so the
samples match to the rounding of ``log``/``pow``/``lgamma``: within 8 ulp (12 for ``beta`` and
``f``, whose ratios add two draws' errors), tested in ``tests/test_random_jax.py``;
a decision can flip only if a test value falls within those ulps of its threshold.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from fgrad import lax
from fgrad import numpy as fnp
from fgrad.core.trace import get_aval
from fgrad.random import _xla_math
from fgrad.random._keys import key_base, split_base
from fgrad.random._samplers import (
    as_dtype, exponential_base, float_dtype, int_dtype, normal_base, param_shape, rademacher, uniform_base,
)
from fgrad.transforms.custom import custom_jvp
from fgrad.transforms.vmap import vmap

_SQUEEZE = 0.0331   # Marsaglia-Tsang's squeeze constant


def _k(x: Any, value: float) -> Any:
    return np.asarray(value, get_aval(x).dtype)


def _split3(base: Any) -> tuple[Any, Any, Any]:
    keys = split_base(base, (3,))
    return keys[0], keys[1], keys[2]


def _split2(base: Any) -> tuple[Any, Any]:
    keys = split_base(base, (2,))
    return keys[0], keys[1]


def _gamma_one(base: Any, alpha: Any, log_space: bool) -> Any:
    """One Gamma(alpha) sample (or its log) from one key, JAX's loop structure and draws."""
    dtype = get_aval(alpha).dtype
    one, zero = _k(alpha, 1.0), _k(alpha, 0.0)
    boost_mask = alpha >= one
    alpha_orig = alpha
    alpha = fnp.where(boost_mask, alpha, alpha + one)
    d = alpha - _k(alpha, 1.0 / 3.0)
    c = _k(alpha, 1.0 / 3.0) / fnp.sqrt(d)

    def keep_going(state):
        _, x_squared, v_cubed, u = state
        squeeze = u >= _xla_math.fma(_k(alpha, -_SQUEEZE), x_squared * x_squared, one)
        exact = fnp.log(u) >= x_squared * _k(alpha, 0.5) + d * ((one - v_cubed) + fnp.log(v_cubed))
        return squeeze & exact

    def next_normal(state):
        key, _, _ = state
        key, subkey = _split2(key)
        x = normal_base(subkey, (), dtype)
        return key, x, _xla_math.fma(x, c, one)

    def propose(state):
        key, x_key, u_key = _split3(state[0])
        _, x, v = lax.while_loop(lambda s: s[2] <= zero, next_normal, (x_key, zero, _k(alpha, -1.0)))
        return key, x * x, (v * v) * v, uniform_base(u_key, (), dtype)

    key, subkey = _split2(base)
    v_cubed = lax.while_loop(keep_going, propose, (key, zero, one, _k(alpha, 2.0)))[2]
    if log_space:
        log_samples = -exponential_base(subkey, (), dtype)
        log_boost = fnp.where(boost_mask | (log_samples == zero), zero, log_samples * (one / alpha_orig))
        return (fnp.log(d) + fnp.log(v_cubed)) + log_boost
    samples = one - uniform_base(subkey, (), dtype)
    boost = fnp.where(boost_mask, one, fnp.power(samples, one / alpha_orig))
    return (d * v_cubed) * boost


def _gamma_impl(base: Any, a: Any, log_space: bool) -> Any:
    shape = tuple(fnp.shape(a))
    count = math.prod(shape)
    if count == 0:
        return fnp.zeros(shape, get_aval(a).dtype)
    keys = split_base(base, (count,))
    samples = vmap(lambda k, alpha: _gamma_one(k, alpha, log_space))(keys, fnp.reshape(a, (count,)))
    return fnp.reshape(samples, shape)


def _gamma_grad(sample: Any, a: Any, log_space: bool) -> Any:
    """d sample / d a at fixed uniform draws (implicit reparameterisation, as JAX)."""
    if not log_space:
        return lax.random_gamma_grad(a, sample)
    samples = fnp.exp(sample)
    samples = fnp.where(samples == 0, _k(samples, np.finfo(get_aval(samples).dtype).tiny), samples)
    return lax.random_gamma_grad(a, samples) / samples


def _differentiable_gamma(log_space: bool):
    @custom_jvp
    def sample(base, a):
        return _gamma_impl(base, a, log_space)

    @sample.defjvp
    def sample_jvp(primals, tangents):
        base, a = primals
        out = sample(base, a)
        return out, tangents[1] * _gamma_grad(out, a, log_space)

    return sample


_gamma_sample = _differentiable_gamma(False)
_loggamma_sample = _differentiable_gamma(True)


def _gamma_base(base: Any, a: Any, shape: tuple[int, ...], dtype: np.dtype, log_space: bool) -> Any:
    a = fnp.broadcast_to(as_dtype(a, dtype), shape)
    return (_loggamma_sample if log_space else _gamma_sample)(base, a)


def gamma(key: Any, a: Any, shape: Sequence[int] | None = None, dtype: Any = None) -> Any:
    """``jax.random.gamma(key, a, shape=None, dtype=float)``: Gamma(a, 1) samples (Marsaglia-Tsang,
    JAX's loops); differentiable in ``a`` (``lax.random_gamma_grad``). Against JAX: within 8 ulp
    (``log``/``pow`` rounding) when the same proposals are accepted."""
    base, _ = key_base(key, "gamma")
    dtype = float_dtype(dtype, "gamma")
    return _gamma_base(base, a, param_shape("gamma", shape, a), dtype, False)


def loggamma(key: Any, a: Any, shape: Sequence[int] | None = None, dtype: Any = None) -> Any:
    """``jax.random.loggamma(key, a, shape=None, dtype=float)``: ``log`` of Gamma(a) samples computed
    in log space (accurate for tiny ``a``); ``exp(loggamma(...))`` equals ``gamma(...)`` to rounding."""
    base, _ = key_base(key, "loggamma")
    dtype = float_dtype(dtype, "loggamma")
    return _gamma_base(base, a, param_shape("loggamma", shape, a), dtype, True)


def beta(key: Any, a: Any, b: Any, shape: Sequence[int] | None = None, dtype: Any = None) -> Any:
    """``jax.random.beta(key, a, b, shape=None, dtype=float)``: ``G_a / (G_a + G_b)`` from two
    log-gamma draws (scaled by their maximum, as JAX). Differentiable in ``a`` and ``b``."""
    base, _ = key_base(key, "beta")
    dtype = float_dtype(dtype, "beta")
    shape = param_shape("beta", shape, a, b)
    key_a, key_b = _split2(base)
    log_a = _gamma_base(key_a, a, shape, dtype, True)
    log_b = _gamma_base(key_b, b, shape, dtype, True)
    log_max = fnp.maximum(log_a, log_b)
    scaled_a, scaled_b = fnp.exp(log_a - log_max), fnp.exp(log_b - log_max)
    return scaled_a / (scaled_a + scaled_b)


def dirichlet(key: Any, alpha: Any, shape: Sequence[int] | None = None, dtype: Any = None) -> Any:
    """``jax.random.dirichlet(key, alpha, shape=None, dtype=float)``: ``softmax`` of log-gamma draws
    along the last axis; ``shape`` is the batch shape (``alpha.shape[:-1]`` by default)."""
    base, _ = key_base(key, "dirichlet")
    dtype = float_dtype(dtype, "dirichlet")
    alpha = fnp.asarray(alpha)
    if fnp.ndim(alpha) < 1:
        raise ValueError(f"fgrad.random.dirichlet requires alpha.ndim >= 1, got alpha.ndim == {fnp.ndim(alpha)}")
    batch = tuple(fnp.shape(alpha)[:-1])
    shape = batch if shape is None else param_shape("dirichlet", shape, fnp.zeros(batch))
    logs = _gamma_base(base, alpha, (*shape, fnp.shape(alpha)[-1]), dtype, True)
    unnormalized = fnp.exp(logs - lax.stop_gradient(fnp.max(logs, axis=-1, keepdims=True)))
    return unnormalized / fnp.sum(unnormalized, axis=-1, keepdims=True)


def chisquare(key: Any, df: Any, shape: Sequence[int] | None = None, dtype: Any = None) -> Any:
    """``jax.random.chisquare(key, df, shape=None, dtype=float)``: ``2 * exp(loggamma(df / 2))``."""
    base, _ = key_base(key, "chisquare")
    dtype = float_dtype(dtype, "chisquare")
    return _chisquare(base, df, param_shape("chisquare", shape, df), dtype)


def _chisquare(base: Any, df: Any, shape: tuple[int, ...], dtype: np.dtype) -> Any:
    half_df = as_dtype(df, dtype) / np.asarray(2, dtype)
    return fnp.exp(_gamma_base(base, half_df, shape, dtype, True)) * np.asarray(2, dtype)


def f(key: Any, dfnum: Any, dfden: Any, shape: Sequence[int] | None = None, dtype: Any = None) -> Any:
    """``jax.random.f(key, dfnum, dfden, shape=None, dtype=float)``: a ratio of scaled chi-squares."""
    base, _ = key_base(key, "f")
    dtype = float_dtype(dtype, "f")
    shape = param_shape("f", shape, dfnum, dfden)
    key_den, key_num = _split2(base)
    dfnum, dfden = as_dtype(dfnum, dtype), as_dtype(dfden, dtype)
    numerator = _chisquare(key_num, dfnum, shape, dtype) / dfnum
    denominator = _chisquare(key_den, dfden, shape, dtype) / dfden
    return numerator / denominator


def t(key: Any, df: Any, shape: Sequence[int] | None = None, dtype: Any = None) -> Any:
    """``jax.random.t(key, df, shape=None, dtype=float)``: ``normal * sqrt((df/2) / gamma(df/2))``."""
    base, _ = key_base(key, "t")
    dtype = float_dtype(dtype, "t")
    shape = param_shape("t", shape, df)
    key_n, key_g = _split2(base)
    n = normal_base(key_n, shape, dtype)
    half_df = as_dtype(df, dtype) / np.asarray(2, dtype)
    g = _gamma_base(key_g, half_df, shape, dtype, False)
    return n * fnp.sqrt(half_df / g)


def generalized_normal(key: Any, p: float, shape: Sequence[int] = (), dtype: Any = None) -> Any:
    """``jax.random.generalized_normal(key, p, shape=(), dtype=float)``: density ``∝ exp(-|x|**p)``,
    as ``rademacher * gamma(1/p) ** (1/p)``."""
    base, _ = key_base(key, "generalized_normal")
    dtype = float_dtype(dtype, "generalized_normal")
    shape = param_shape("generalized_normal", shape)
    key_g, key_r = _split2(base)
    g = _gamma_base(key_g, 1 / p, shape, dtype, False)
    r = rademacher(key_r, shape, dtype)
    return r * g ** as_dtype(1 / p, dtype)


def ball(key: Any, d: int, p: float = 2, shape: Sequence[int] = (), dtype: Any = None) -> Any:
    """``jax.random.ball(key, d, p=2, shape=(), dtype=float)``: uniform in the unit Lp ball of
    dimension ``d`` (Barthe et al.), shape ``(*shape, d)``."""
    base, _ = key_base(key, "ball")
    dtype = float_dtype(dtype, "ball")
    shape = param_shape("ball", shape)
    k1, k2 = _split2(base)
    g = generalized_normal(k1, p, (*shape, int(d)), dtype)
    e = exponential_base(k2, shape, dtype)
    norm = (fnp.sum(fnp.abs(g) ** as_dtype(p, dtype), axis=-1) + e) ** as_dtype(1 / p, dtype)
    return g / norm[..., None]


# --- poisson ---------------------------------------------------------------------------------------

_KNUTH_LIMIT = 10.0


def _poisson_knuth(base: Any, lam: Any, shape: tuple[int, ...], dtype: np.dtype, max_iters: int) -> Any:
    """Count uniforms until their product falls below ``exp(-lam)`` (in logs), all lanes together."""
    def body(state):
        i, k, key, log_prod = state
        key, subkey = _split2(key)
        k = fnp.where(log_prod > -lam, k + 1, k)
        u = uniform_base(subkey, shape, np.dtype(np.float32))
        return i + 1, k, key, log_prod + fnp.log(u)

    def cond(state):
        i, _, _, log_prod = state
        return fnp.any(log_prod > -lam) & (i < max_iters)

    init = (fnp.asarray(0, np.int32), fnp.zeros(shape, dtype), base, fnp.zeros(shape, np.float32))
    k = lax.while_loop(cond, body, init)[1]
    return (k - 1).astype(dtype)


def _poisson_rejection(base: Any, lam: Any, shape: tuple[int, ...], dtype: np.dtype, max_iters: int) -> Any:
    """Hormann's PTRS: propose ``k`` from a transformed uniform, accept by a squeeze or the exact
    log-density test; every lane loops until it accepted."""
    log_lam = fnp.log(lam)
    b = _xla_math.fma(_k(lam, 2.53), fnp.sqrt(lam), _k(lam, 0.931))
    a = _xla_math.fma(_k(lam, 0.02483), b, _k(lam, -0.059))
    inv_alpha = _k(lam, 1.1239) + _k(lam, 1.1328) / (b - _k(lam, 3.4))
    v_r = _k(lam, 0.9277) - _k(lam, 3.6224) / (b - _k(lam, 2.0))

    def body(state):
        i, k_out, accepted, key = state
        key, subkey_0, subkey_1 = _split3(key)
        u = uniform_base(subkey_0, shape, np.dtype(np.float32)) - _k(lam, 0.5)
        v = uniform_base(subkey_1, shape, np.dtype(np.float32))
        u_shifted = _k(lam, 0.5) - fnp.abs(u)
        k = fnp.floor(_xla_math.fma(_k(lam, 2.0) * a / u_shifted + b, u, lam) + _k(lam, 0.43))
        s = fnp.log(v * inv_alpha / (a / (u_shifted * u_shifted) + b))
        t_value = _xla_math.fma(k, log_lam, -lam) - lax.lgamma(k + _k(lam, 1.0))
        accept1 = (u_shifted >= _k(lam, 0.07)) & (v <= v_r)
        reject = (k < 0) | ((u_shifted < _k(lam, 0.013)) & (v > u_shifted))
        accept = accept1 | (~reject & (s <= t_value))
        return i + 1, fnp.where(accept, k, k_out), accepted | accept, key

    def cond(state):
        i, _, accepted, _ = state
        return fnp.any(~accepted) & (i < max_iters)

    init = (fnp.asarray(0, np.int32), fnp.full(shape, -1.0, np.float32), fnp.zeros(shape, bool), base)
    return lax.while_loop(cond, body, init)[1].astype(dtype)


def poisson(key: Any, lam: Any, shape: Sequence[int] | None = None, dtype: Any = None) -> Any:
    """``jax.random.poisson(key, lam, shape=None, dtype=int)``: Poisson(lam) counts, ``lam`` taken in
    float32 (as JAX). Knuth's method where ``lam < 10`` (or NaN), PTRS rejection elsewhere, both run
    on every element and selected; ``lam == 0`` gives 0. Equal to JAX unless an acceptance test
    lands within the ulps by which XLA's and fgrad's ``log``/``lgamma`` differ."""
    base, _ = key_base(key, "poisson")
    dtype = int_dtype(dtype, "poisson")
    shape = param_shape("poisson", shape, lam)
    lam = lax.convert_element_type(fnp.broadcast_to(fnp.asarray(lam), shape), np.float32)
    use_knuth = fnp.isnan(lam) | (lam < _KNUTH_LIMIT)
    lam_knuth = fnp.where(use_knuth, lam, np.float32(0.0))
    lam_rejection = fnp.where(use_knuth, np.float32(1e5), lam)
    max_iters = int(np.iinfo(dtype).max)
    max_iters = min(max_iters, int(np.iinfo(np.int32).max))
    result = fnp.where(use_knuth, _poisson_knuth(base, lam_knuth, shape, dtype, max_iters),
                       _poisson_rejection(base, lam_rejection, shape, dtype, max_iters))
    return fnp.where(lam == 0, fnp.zeros_like(result), result)
