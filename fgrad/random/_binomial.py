"""``binomial``, with JAX's algorithm (TensorFlow's): for ``n * min(p, 1 - p) <= 10`` the
inversion method (count geometric waiting times until they pass ``n``), above it Kachitvichyanukul
and Schmeiser's transformed rejection with squeeze (BTRS, "Binomial random variate generation",
1988/Hormann 1993); both run on every element and are selected, draws on ``min(p, 1 - p)``
mirrored for ``p > 1/2``. The keys and uniform draws are JAX's, so samples agree with JAX's
unless an acceptance test lands within the ulps by which XLA's and fgrad's ``log`` differ. JAX
caps the loops at the dtype's maximum iteration count; fgrad runs them to completion.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from fgrad import lax
from fgrad import numpy as fnp
from fgrad.core import dtypes
from fgrad.core.trace import get_aval
from fgrad.random._keys import key_base, split, split_base
from fgrad.random._samplers import float_dtype, param_shape, uniform_base

#: log(k!) - Stirling's approximation of it, for k = 0..9 (the BTRS bound's correction terms).
_STIRLING_TAIL = np.array([0.0810614667953272, 0.0413406959554092, 0.0276779256849983, 0.02079067210376509,
                           0.0166446911898211, 0.0138761288230707, 0.0118967099458917, 0.0104112652619720,
                           0.00925546218271273, 0.00833056343336287])


def _k(x: Any, value: float) -> Any:
    return np.asarray(value, get_aval(x).dtype)


def _stirling_approx_tail(k: Any) -> Any:
    table = fnp.asarray(_STIRLING_TAIL.astype(get_aval(k).dtype))
    use_table = k <= _k(k, 9.0)
    k = fnp.clip(k, _k(k, 0.0), _k(k, 9.0))
    kp1sq = (k + _k(k, 1.0)) * (k + _k(k, 1.0))
    approx = (_k(k, 1.0 / 12) - (_k(k, 1.0 / 360) - _k(k, 1.0 / 1260) / kp1sq) / kp1sq) / (k + _k(k, 1.0))
    return fnp.where(use_table, fnp.take(table, fnp.floor(k).astype(np.int32)), approx)


def _inversion(base: Any, count: Any, prob: Any, shape: tuple[int, ...]) -> Any:
    """The number of geometric(prob) waiting times whose sum stays within ``count``."""
    log1m_prob = fnp.log1p(-prob)

    def body(state):
        i, num_geom, geom_sum, key = state
        keys = split_base(key, (2,))
        subkey, key = keys[0], keys[1]
        num_geom = fnp.where(geom_sum <= count, num_geom + _k(num_geom, 1.0), num_geom)
        u = uniform_base(subkey, shape, get_aval(prob).dtype)
        geom_sum = geom_sum + fnp.ceil(fnp.log(u) / log1m_prob)
        return i + 1, num_geom, geom_sum, key

    def cond(state):
        return fnp.any(state[2] <= count)

    init = (fnp.asarray(0, np.int32), fnp.zeros(shape, get_aval(prob).dtype), fnp.zeros(shape, get_aval(prob).dtype),
            base)
    return lax.while_loop(cond, body, init)[1] - _k(prob, 1.0)


def _btrs(base: Any, count: Any, prob: Any, shape: tuple[int, ...]) -> Any:
    """Transformed rejection with squeeze: propose ``k`` from a transformed uniform, accept by the
    squeeze or by the bound on the log-density ratio; every lane loops until it accepted."""
    one, half = _k(prob, 1.0), _k(prob, 0.5)
    stddev = fnp.sqrt(count * prob * (one - prob))
    b = _k(prob, 1.15) + _k(prob, 2.53) * stddev
    a = _k(prob, -0.0873) + _k(prob, 0.0248) * b + _k(prob, 0.01) * prob
    c = count * prob + half
    v_r = _k(prob, 0.92) - _k(prob, 4.2) / b
    r = prob / (one - prob)
    alpha = (_k(prob, 2.83) + _k(prob, 5.1) / b) * stddev
    m = fnp.floor((count + one) * prob)

    def body(state):
        i, k_out, accepted, key = state
        keys = split_base(key, (3,))
        key, subkey_0, subkey_1 = keys[0], keys[1], keys[2]
        u = uniform_base(subkey_0, shape, get_aval(prob).dtype) - half
        v = uniform_base(subkey_1, shape, get_aval(prob).dtype)
        us = half - fnp.abs(u)
        accept1 = (us >= _k(prob, 0.07)) & (v <= v_r)
        k = fnp.floor((_k(prob, 2.0) * a / us + b) * u + c)
        reject = (k < _k(k, 0.0)) | (k > count)
        v = fnp.log(v * alpha / (a / (us * us) + b))
        bound = ((m + half) * fnp.log((m + one) / (r * (count - m + one)))
                 + (count + one) * fnp.log((count - m + one) / (count - k + one))
                 + (k + half) * fnp.log(r * (count - k + one) / (k + one))
                 + _stirling_approx_tail(m) + _stirling_approx_tail(count - m)
                 - _stirling_approx_tail(k) - _stirling_approx_tail(count - k))
        accept = accept1 | (~reject & (v <= bound))
        return i + 1, fnp.where(accept, k, k_out), accepted | accept, key

    def cond(state):
        return fnp.any(~state[2])

    init = (fnp.asarray(0, np.int32), fnp.full(shape, -1.0, get_aval(prob).dtype), fnp.zeros(shape, bool), base)
    return lax.while_loop(cond, body, init)[1]


def binomial(key: Any, n: Any, p: Any, shape: Sequence[int] | None = None, dtype: Any = None) -> Any:
    """``jax.random.binomial(key, n, p, shape=None, dtype=float)``: Binomial(n, p) counts as floats
    of ``dtype`` (the default float), ``n`` and ``p`` broadcast against each other (and against
    ``shape``, which defaults to their broadcast shape). As JAX: a non-integer ``n`` is floored;
    ``p == 0`` gives 0 and ``p == 1`` gives ``n``; NaN or negative ``n``, and ``p`` outside
    ``[0, 1]`` or NaN, give NaN; ``n == inf`` gives inf. Not differentiable (its derivative is 0).

    >>> fgrad.random.binomial(fgrad.random.key(0), 10, 0.3, shape=(3,))   # doctest: +SKIP
    """
    base, _ = key_base(key, "binomial")
    dtype = float_dtype(dtype, "binomial")
    shape = param_shape("binomial", shape, n, p)
    prob = fnp.asarray(p)
    if not dtypes.is_float(get_aval(prob).dtype):
        prob = prob.astype(dtypes.default_float())
    count = fnp.broadcast_to(lax.convert_element_type(fnp.asarray(n), get_aval(prob).dtype), shape)
    prob = fnp.broadcast_to(prob, shape)
    p_lt_half = prob < _k(prob, 0.5)
    q = fnp.where(p_lt_half, prob, _k(prob, 1.0) - prob)
    count_nan_or_neg = fnp.isnan(count) | (count < _k(count, 0.0))
    count_inf = fnp.isinf(count)
    q_is_nan, q_negative = fnp.isnan(q), q < _k(q, 0.0)
    q = fnp.where(q_is_nan | q_negative, _k(q, 0.01), q)
    use_inversion = count_nan_or_neg | (count * q <= _k(q, 10.0))
    count = fnp.floor(count)
    count_inversion = fnp.where(use_inversion, count, _k(count, 0.0))
    count_btrs = fnp.where(use_inversion, _k(count, 1e4), count)
    q_btrs = fnp.where(use_inversion, _k(q, 0.5), q)
    samples = fnp.where(use_inversion, _inversion(base, count_inversion, q, shape),
                        _btrs(base, count_btrs, q_btrs, shape)).astype(dtype)
    invalid = q_negative | q_is_nan | count_nan_or_neg
    samples = fnp.where(invalid, np.asarray(np.nan, dtype), samples)
    samples = fnp.where(count_inf & ~invalid, np.asarray(np.inf, dtype), samples)
    return fnp.where(p_lt_half | invalid | count_inf, samples, count.astype(dtype) - samples)


def multinomial(key: Any, n: Any, p: Any, *, shape: Sequence[int] | None = None, dtype: Any = None,
                unroll: int | bool = 1) -> Any:
    """``jax.random.multinomial(key, n, p, *, shape=None, dtype=None, unroll=1)``: counts of
    ``n`` trials over the outcomes on ``p``'s last axis, as floats of ``n`` and ``p``'s promoted
    float dtype (or ``dtype``). ``shape`` is the result's whole shape (default ``p.shape``;
    ``n`` broadcasts against ``shape[:-1]``). As JAX: one binomial per outcome in turn, of the
    trials left and the outcome's share of the probability left, so ``p`` need not sum to 1;
    ``unroll`` is the scan's.

    >>> fgrad.random.multinomial(fgrad.random.PRNGKey(0), 10, fnp.array([0.2, 0.5, 0.3]))  # doctest: +SKIP
    """
    n, p = fnp.asarray(n), fnp.asarray(p)
    float_type = fnp.result_type(n, p, dtypes.default_float())
    n, p = n.astype(float_type), p.astype(float_type)
    shape = tuple(get_aval(p).shape) if shape is None else tuple(shape)
    if not shape:
        raise ValueError("multinomial: p (or shape) needs an outcome axis, got a scalar")
    n = fnp.broadcast_to(n, shape[:-1])
    p = fnp.moveaxis(fnp.broadcast_to(p, shape), -1, 0)
    left = lax.cumsum(p, 0, reverse=True)
    ratios = p / fnp.where(left == 0, fnp.ones_like(left), left)
    keys = split(key, shape[-1])

    def draw(remaining, ratio_and_key):
        ratio, k = ratio_and_key
        count = binomial(k, remaining, fnp.clip(ratio, 0, 1), dtype=get_aval(remaining).dtype)
        return remaining - count, count
    _, counts = lax.scan(draw, n, (ratios, keys), unroll=unroll)
    counts = fnp.moveaxis(counts, 0, -1)
    return counts if dtype is None else counts.astype(dtype)
