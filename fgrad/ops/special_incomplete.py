"""Incomplete gamma and beta functions as primitives: ``igamma`` (regularized lower P(a, x)),
``igammac`` (upper Q = 1 - P), ``igamma_grad_a`` (dP/da), ``random_gamma_grad`` (the derivative
of a Gamma(a) sample x with respect to a: ``-(dP/da) / (dP/dx)``) and ``betainc`` (regularized
I_x(a, b)), JAX's lax primitives of those names.

Algorithms (float64; narrower floats round once at the end), over ``special_gamma``'s op tables:

- P by its power series ``x^a e^-x / Gamma(a+1) * sum_n x^n / ((a+1)...(a+n))`` where
  ``x < a + 1``, Q by Legendre's continued fraction (modified Lentz) elsewhere, the other as
  the complement; for x <= 1.1 and small a (Q small, P near 1) Q by its own series. Each converges in O(sqrt(a)) steps; the loop stops when every element has
  converged (at most ``MAX_STEPS``: full accuracy up to a ~ 1e5). The prefactor
  ``x^a e^-x / Gamma(a)`` comes from Stirling's series for a >= 10, written with
  ``log1p(t) - t`` so that it keeps its accuracy for large a near x = a.
- dP/da carries the derivative through the same series / fraction (forward mode).
- ``betainc`` by the continued fraction of DLMF 8.17.22 on the side of the mean where it
  converges fast (``I_x(a, b) = 1 - I_{1-x}(b, a)`` on the other).

Special values are JAX's: NaN for a < 0, x < 0, infinite a, or (a, x) == (0, 0).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from fgrad.core.partition import register_unpartitioned
from fgrad.core.rules import jvp_rules, symbolic_zero_rules
from fgrad.core.trace import get_aval
from fgrad.ops import elementwise as ew
from fgrad.ops.special_gamma import (
    HALF_LOG_2PI, LaxOps, define, digamma, horner, lgamma, lgamma1p, select, stirling_correction,
)

__all__ = ["igamma", "igammac", "igamma_grad_a", "random_gamma_grad", "betainc"]

MAX_STEPS = 5000
EPS = 1e-16
TINY = 1e-300        # Lentz's guard against a zero denominator


def _log1pmx(ops, x, a):
    """``log(l) - (l - 1)`` for ``l = x / a``, accurate near l = 1: with ``t = l - 1``,
    ``-2 s^2 / (1 - s) + 2 s^3 sum_k s^(2k) / (2k + 3)``, ``s = t / (2 + t)``, for |t| <= 1/2."""
    t = ops.div(ops.sub(x, a), a)
    near = ops.le(ops.abs(t), ops.k(t, 0.5))
    tn = select(ops, near, t, 0.0)
    s = ops.div(tn, ops.add(tn, ops.k(t, 2.0)))
    s2 = ops.mul(s, s)
    tail = horner(ops, s2, [2.0 / (2 * k + 3) for k in range(18)])
    series = ops.add(ops.div(ops.mul(ops.k(t, -2.0), s2), ops.sub(ops.k(t, 1.0), s)), ops.mul(ops.mul(s2, s), tail))
    return ops.where(near, series, ops.sub(ops.log(ops.div(x, a)), t))


def log_gamma_density_factor(ops, a, x):
    """``log(x^a e^-x / Gamma(a))`` (x > 0, a > 0)."""
    large = ops.ge(a, ops.k(a, 10.0))
    a_big = select(ops, large, a, 10.0)
    stirling = ops.sub(ops.add(ops.mul(a_big, _log1pmx(ops, x, a_big)),
                               ops.sub(ops.mul(ops.k(a, 0.5), ops.log(a_big)), ops.k(a, HALF_LOG_2PI))),
                       stirling_correction(ops, a_big))
    direct = ops.sub(ops.sub(ops.mul(a, ops.log(x)), x), ops.lgamma(ops.where(large, ops.k(a, 1.0), a)))
    return ops.where(large, stirling, direct)


def _series(ops, a, x, derivative: bool):
    """``(S, dS/da)`` with ``P = x^a e^-x / Gamma(a+1) * S``, ``S = sum_n t_n`` (dS/da only
    with ``derivative``: carrying it costs steps and time)."""
    def step(state, a, x):
        n, term, total, rate, dtotal = state
        n = ops.add(n, ops.k(n, 1.0))
        term = ops.mul(term, ops.div(x, ops.add(a, n)))
        total = ops.add(total, term)
        converged = ops.le(term, ops.mul(ops.k(x, EPS), total))
        if derivative:
            rate = ops.sub(rate, ops.div(ops.k(n, 1.0), ops.add(a, n)))     # d log(term) / da
            dtotal = ops.add(dtotal, ops.mul(term, rate))
            converged = ops.and_(converged, ops.le(ops.abs(ops.mul(term, rate)), ops.mul(ops.k(x, EPS), ops.abs(dtotal))))
        return [n, term, total, rate, dtotal], ops.or_(converged, ops.isnan(total))
    zero, one = ops.mul(x, ops.k(x, 0.0)), ops.add(ops.mul(x, ops.k(x, 0.0)), ops.k(x, 1.0))
    _, _, total, _, dtotal = ops.iterate([zero, one, one, zero, zero], step, MAX_STEPS, (a, x))
    return total, dtotal


def _fraction(ops, a, x, derivative: bool):
    """``(h, dh/da)`` with ``Q = x^a e^-x / Gamma(a) * h`` (Legendre's continued fraction,
    modified Lentz; with ``derivative``, dh/da carried along)."""
    one = ops.k(x, 1.0)
    b0 = ops.sub(ops.add(x, one), a)
    b0 = ops.where(ops.lt(ops.abs(b0), ops.k(x, TINY)), ops.k(x, TINY), b0)
    d0 = ops.div(one, b0)

    def step(state, a, x):
        i, b, c, dc, d, dd, h, dh = state
        i = ops.add(i, one)
        an, dan = ops.mul(ops.neg(i), ops.sub(i, a)), i
        b = ops.add(b, ops.k(x, 2.0))                                        # db/da = -1
        d_raw = ops.add(ops.mul(an, d), b)
        d_raw = ops.where(ops.lt(ops.abs(d_raw), ops.k(x, TINY)), ops.k(x, TINY), d_raw)
        c_new = ops.add(b, ops.div(an, c))
        c_new = ops.where(ops.lt(ops.abs(c_new), ops.k(x, TINY)), ops.k(x, TINY), c_new)
        d_new = ops.div(one, d_raw)
        delta = ops.mul(d_new, c_new)
        h_new = ops.mul(h, delta)
        converged = ops.lt(ops.abs(ops.sub(delta, one)), ops.k(x, EPS))
        if not derivative:
            return [i, b, c_new, dc, d_new, dd, h_new, dh], ops.or_(converged, ops.isnan(h_new))
        dd_raw = ops.sub(ops.add(ops.mul(dan, d), ops.mul(an, dd)), one)
        dc_new = ops.sub(ops.div(ops.sub(ops.mul(dan, c), ops.mul(an, dc)), ops.mul(c, c)), one)
        dd_new = ops.neg(ops.mul(dd_raw, ops.mul(d_new, d_new)))
        ddelta = ops.add(ops.mul(dd_new, c_new), ops.mul(d_new, dc_new))
        dh_new = ops.add(ops.mul(dh, delta), ops.mul(h, ddelta))
        converged = ops.and_(converged, ops.le(ops.abs(ops.mul(h, ddelta)), ops.mul(ops.k(x, EPS), ops.abs(dh_new))))
        stuck = ops.or_(ops.isnan(h_new), ops.isnan(dh_new))
        return [i, b, c_new, dc_new, d_new, dd_new, h_new, dh_new], ops.or_(converged, stuck)
    zero = ops.mul(x, ops.k(x, 0.0))
    state = [zero, b0, ops.add(zero, ops.k(x, 1.0 / TINY)), zero, d0, ops.mul(d0, d0), d0, ops.mul(d0, d0)]
    *_, h, dh = ops.iterate(state, step, MAX_STEPS, (a, x))
    return h, dh


_Q_SERIES_TERMS = 24     # x <= 1.1: x^n / n! < 1e-18 beyond


def _q_small_a(ops, a, x):
    """Q(a, x) for x <= 1.1 and a < x, where ``1 - P`` would cancel: ``-expm1(a log x -
    lgamma(a + 1)) - x^a / Gamma(a) * sum_{n>=1} (-x)^n / (n! (a + n))``."""
    log_power = ops.mul(a, ops.log(x))
    lgamma_1p = lgamma1p(ops, a)
    head = ops.neg(ops.expm1(ops.sub(log_power, lgamma_1p)))
    term, total = ops.k(x, 1.0), ops.k(x, 0.0)
    for n in range(1, _Q_SERIES_TERMS):
        term = ops.mul(term, ops.div(ops.neg(x), ops.k(x, float(n))))
        total = ops.add(total, ops.div(term, ops.add(a, ops.k(a, float(n)))))
    # x^a / Gamma(a) = a x^a / Gamma(1 + a)
    return ops.sub(head, ops.mul(ops.mul(a, ops.exp(ops.sub(log_power, lgamma_1p))), total))


class _Parts(NamedTuple):
    """The pieces every incomplete-gamma quantity is built from (at safe a_, x_ where the input
    is outside the domain)."""
    valid: Any          # a in (0, inf), x > 0
    finite_x: Any
    a: Any
    x: Any
    use_series: Any     # x < a + 1: the series for P; else the fraction for Q
    total: Any          # the series' sum S and dS/da
    dtotal: Any
    h: Any              # the fraction's value and dh/da
    dh: Any
    factor: Any         # x^a e^-x / Gamma(a)


def _parts(ops, a, x, derivative: bool) -> _Parts:
    valid = ops.and_(ops.and_(ops.gt(a, ops.k(a, 0.0)), ops.gt(x, ops.k(x, 0.0))), ops.lt(a, ops.k(a, np.inf)))
    finite_x = ops.lt(x, ops.k(x, np.inf))
    inside = ops.and_(valid, finite_x)
    a_, x_ = select(ops, inside, a, 1.0), select(ops, inside, x, 1.0)
    use_series = ops.lt(x_, ops.add(a_, ops.k(a, 1.0)))
    total, dtotal = _series(ops, select(ops, use_series, a_, 1.0), select(ops, use_series, x_, 0.5), derivative)
    h, dh = _fraction(ops, ops.where(use_series, ops.k(a, 1.0), a_), ops.where(use_series, ops.k(x, 3.0), x_),
                      derivative)
    factor = ops.exp(log_gamma_density_factor(ops, a_, x_))
    return _Parts(valid, finite_x, a_, x_, use_series, total, dtotal, h, dh, factor)


def _q_is_small(ops, a, x):
    """Where Q is the small one and its own series is the accurate way (x <= 1.1 and a small;
    DiDonato and Morris' regions, as Cephes draws them)."""
    below_half = ops.lt(x, ops.k(x, 0.5))
    bound = ops.div(ops.k(x, -0.4), ops.log(select(ops, below_half, x, 0.25)))
    return ops.and_(ops.where(below_half, ops.le(a, bound), ops.le(a, ops.mul(x, ops.k(x, 1.1)))),
                    ops.le(x, ops.k(x, 1.1)))


def _p_or_q(ops, a, x, parts: _Parts, want: str):
    """P(a, x) (``want`` "p") or Q(a, x) ("q"), JAX's values at the edges."""
    one = ops.k(x, 1.0)
    p_series = ops.mul(ops.div(parts.factor, parts.a), parts.total)
    q_fraction = ops.mul(parts.factor, parts.h)
    small_a = _q_is_small(ops, parts.a, parts.x)
    q_small = _q_small_a(ops, select(ops, small_a, parts.a, 0.5), select(ops, small_a, parts.x, 1.0))
    p = ops.where(small_a, ops.sub(one, q_small), ops.where(parts.use_series, p_series, ops.sub(one, q_fraction)))
    q = ops.where(small_a, q_small, ops.where(parts.use_series, ops.sub(one, p_series), q_fraction))
    out = p if want == "p" else q
    at_zero, at_inf = (0.0, 1.0) if want == "p" else (1.0, 0.0)
    x_inf = ops.and_(parts.valid, ops.not_(parts.finite_x))
    a_zero = ops.and_(ops.eq(a, ops.k(a, 0.0)), ops.gt(x, ops.k(x, 0.0)))
    x_zero = ops.and_(ops.and_(ops.eq(x, ops.k(x, 0.0)), ops.gt(a, ops.k(a, 0.0))), ops.lt(a, ops.k(a, np.inf)))
    out = ops.where(ops.or_(x_inf, a_zero), ops.k(x, at_inf), ops.where(x_zero, ops.k(x, at_zero), out))
    good = ops.or_(ops.and_(parts.valid, parts.finite_x), ops.or_(x_inf, ops.or_(a_zero, x_zero)))
    return ops.where(ops.and_(good, ops.lt(a, ops.k(a, np.inf))), out, ops.k(x, np.nan))


def _dp_da_over_factor(ops, parts: _Parts):
    """``(dP/da) / factor``: d/da [factor / a * S] on the series side, -d/da [factor * h] on the
    fraction side (d log(factor)/da = log x - digamma(a))."""
    dlog = ops.sub(ops.log(parts.x), ops.digamma(parts.a))
    g_series = ops.div(ops.add(ops.mul(ops.sub(dlog, ops.div(ops.k(parts.a, 1.0), parts.a)), parts.total),
                               parts.dtotal), parts.a)
    g_fraction = ops.neg(ops.add(ops.mul(dlog, parts.h), parts.dh))
    return ops.where(parts.use_series, g_series, g_fraction)


def incomplete_gamma(ops, a, x, want: str):
    """``want``: "p" (P(a, x)), "q" (Q), "dp_da" (dP/da) or "sample_grad" (-(dP/da) / (dP/dx))."""
    parts = _parts(ops, a, x, derivative=want not in ("p", "q"))
    if want in ("p", "q"):
        return _p_or_q(ops, a, x, parts, want)
    g = _dp_da_over_factor(ops, parts)
    x_zero = ops.and_(ops.eq(x, ops.k(x, 0.0)), ops.gt(a, ops.k(a, 0.0)))
    if want == "dp_da":
        out = ops.mul(parts.factor, g)
        out = ops.where(ops.or_(ops.and_(parts.valid, ops.not_(parts.finite_x)), x_zero), ops.k(x, 0.0), out)
        return ops.where(ops.or_(parts.valid, x_zero), out, ops.k(x, np.nan))
    # dP/dx = factor / x: the sample's derivative -(dP/da) / (dP/dx) = -x g, free of factor
    out = ops.where(x_zero, ops.k(x, 0.0), ops.neg(ops.mul(parts.x, g)))
    return ops.where(ops.or_(ops.and_(parts.valid, parts.finite_x), x_zero), out, ops.k(x, np.nan))


# --- betainc -------------------------------------------------------------------------------------

def betaln_impl(ops, a, b):
    """``log|B(a, b)|``; for a large argument through Stirling's series, so that the large
    lgammas do not cancel (``betaln(1e10, 1)`` keeps full accuracy)."""
    lo, hi = ops.minimum(a, b), ops.maximum(a, b)
    large = ops.and_(ops.ge(hi, ops.k(a, 10.0)), ops.gt(lo, ops.k(a, 0.0)))
    lo_l, hi_l = select(ops, large, lo, 1.0), select(ops, large, hi, 10.0)
    total = ops.add(lo_l, hi_l)
    # lgamma(hi) - lgamma(hi + lo) by Stirling: -(hi - 1/2) log1p(lo / hi) - lo log(hi + lo) + lo + mu(hi) - mu(hi + lo)
    difference = ops.add(ops.sub(ops.neg(ops.mul(ops.sub(hi_l, ops.k(a, 0.5)), ops.log1p(ops.div(lo_l, hi_l)))),
                                 ops.mul(lo_l, ops.log(total))),
                         ops.add(lo_l, ops.sub(stirling_correction(ops, hi_l), stirling_correction(ops, total))))
    stirling = ops.add(ops.lgamma(lo_l), difference)
    direct = ops.sub(ops.add(ops.lgamma(a), ops.lgamma(b)), ops.lgamma(ops.add(a, b)))
    return ops.where(large, stirling, direct)


def _beta_fraction(ops, a, b, x):
    """The continued fraction ``h`` of ``I_x(a, b) = x^a (1-x)^b / (a B(a, b)) * h`` (modified
    Lentz), for x below the mean (a + 1) / (a + b + 2)."""
    one = ops.k(x, 1.0)
    tiny = ops.k(x, TINY)

    def guard(v):
        return ops.where(ops.lt(ops.abs(v), tiny), tiny, v)

    d0 = ops.div(one, guard(ops.sub(one, ops.div(ops.mul(ops.add(a, b), x), ops.add(a, one)))))

    def step(state, a, b, x):
        m, c, d, h = state
        m = ops.add(m, one)
        m2 = ops.mul(m, ops.k(x, 2.0))
        even = ops.div(ops.mul(ops.mul(m, ops.sub(b, m)), x), ops.mul(ops.add(ops.sub(a, one), m2), ops.add(a, m2)))
        d = ops.div(one, guard(ops.add(one, ops.mul(even, d))))
        c = guard(ops.add(one, ops.div(even, c)))
        h = ops.mul(h, ops.mul(d, c))
        odd = ops.neg(ops.div(ops.mul(ops.mul(ops.add(a, m), ops.add(ops.add(a, b), m)), x),
                              ops.mul(ops.add(a, m2), ops.add(ops.add(a, one), m2))))
        d = ops.div(one, guard(ops.add(one, ops.mul(odd, d))))
        c = guard(ops.add(one, ops.div(odd, c)))
        delta = ops.mul(d, c)
        h = ops.mul(h, delta)
        converged = ops.or_(ops.lt(ops.abs(ops.sub(delta, one)), ops.k(x, EPS)), ops.isnan(h))
        return [m, c, d, h], converged
    zero = ops.mul(x, ops.k(x, 0.0))
    *_, h = ops.iterate([zero, ops.add(zero, one), d0, d0], step, MAX_STEPS, (a, b, x))
    return h


def _log_beta_front(ops, p, q, y, one_minus_y, log_y, log_1my):
    """``log(y^p (1-y)^q / B(p, q))``. For p, q >= 10 through Stirling's series around the mean
    ``y0 = p / (p + q)``: ``p (log(y/y0) - (y/y0 - 1)) + q (log((1-y)/(1-y0)) - ...) +
    log(pq / (p+q)) / 2 - log(2 pi) / 2 - mu(p) - mu(q) + mu(p+q)`` (the linear terms cancel
    exactly), free of the cancellation between large logs."""
    direct = ops.sub(ops.add(ops.mul(p, log_y), ops.mul(q, log_1my)), betaln_impl(ops, p, q))
    large = ops.ge(ops.minimum(p, q), ops.k(p, 10.0))
    p_l, q_l = select(ops, large, p, 10.0), select(ops, large, q, 10.0)
    y_l, ym_l = select(ops, large, y, 0.5), select(ops, large, one_minus_y, 0.5)
    total = ops.add(p_l, q_l)
    mean, mean_c = ops.div(p_l, total), ops.div(q_l, total)
    deviation = ops.add(ops.mul(p_l, _log1pmx(ops, y_l, mean)), ops.mul(q_l, _log1pmx(ops, ym_l, mean_c)))
    scale = ops.sub(ops.mul(ops.k(p, 0.5), ops.log(ops.div(ops.mul(p_l, q_l), total))), ops.k(p, HALF_LOG_2PI))
    corrections = ops.sub(stirling_correction(ops, total),
                          ops.add(stirling_correction(ops, p_l), stirling_correction(ops, q_l)))
    return ops.where(large, ops.add(ops.add(deviation, scale), corrections), direct)


def betainc_impl(ops, a, b, x):
    """``I_x(a, b)``: NaN for a or b < 0, both 0, or x outside [0, 1]; 1 where a == 0, 0 where b == 0."""
    one = ops.k(x, 1.0)
    inside = ops.and_(ops.and_(ops.gt(a, ops.k(a, 0.0)), ops.gt(b, ops.k(b, 0.0))),
                      ops.and_(ops.gt(x, ops.k(x, 0.0)), ops.lt(x, one)))
    finite = ops.and_(ops.lt(a, ops.k(a, np.inf)), ops.lt(b, ops.k(b, np.inf)))
    inside = ops.and_(inside, finite)
    a_, b_, x_ = select(ops, inside, a, 1.0), select(ops, inside, b, 1.0), select(ops, inside, x, 0.5)
    swap = ops.gt(x_, ops.div(ops.add(a_, one), ops.add(ops.add(a_, b_), ops.k(x, 2.0))))
    p, q = ops.where(swap, b_, a_), ops.where(swap, a_, b_)
    y = ops.where(swap, ops.sub(one, x_), x_)                     # the fraction's argument
    log_y = ops.where(swap, ops.log1p(ops.neg(x_)), ops.log(x_))
    log_1my = ops.where(swap, ops.log(x_), ops.log1p(ops.neg(x_)))
    one_minus_y = ops.where(swap, x_, ops.sub(one, x_))           # exact, or within an ulp of 1/2..1
    front = ops.exp(_log_beta_front(ops, p, q, y, one_minus_y, log_y, log_1my))
    value = ops.div(ops.mul(front, _beta_fraction(ops, p, q, y)), p)
    out = ops.where(swap, ops.sub(one, value), value)
    # the edges: x == 0 or b == 0 -> 0; x == 1 or a == 0 -> 1 (JAX's values)
    nonneg = ops.and_(ops.ge(a, ops.k(a, 0.0)), ops.ge(b, ops.k(b, 0.0)))
    in_range = ops.and_(ops.ge(x, ops.k(x, 0.0)), ops.le(x, one))
    good = ops.and_(ops.and_(nonneg, in_range), ops.not_(ops.and_(ops.eq(a, ops.k(a, 0.0)), ops.eq(b, ops.k(b, 0.0)))))
    edge_one = ops.or_(ops.eq(a, ops.k(a, 0.0)), ops.and_(ops.eq(x, one), ops.gt(b, ops.k(b, 0.0))))
    edge_zero = ops.or_(ops.eq(b, ops.k(b, 0.0)), ops.eq(x, ops.k(x, 0.0)))
    out = ops.where(edge_zero, ops.k(x, 0.0), ops.where(edge_one, one, out))
    return ops.where(ops.and_(good, finite), out, ops.k(x, np.nan))


# --- the primitives ------------------------------------------------------------------------------

igamma_p = define("igamma", lambda ops, a, x: incomplete_gamma(ops, a, x, "p"))
igammac_p = define("igammac", lambda ops, a, x: incomplete_gamma(ops, a, x, "q"))
igamma_grad_a_p = define("igamma_grad_a", lambda ops, a, x: incomplete_gamma(ops, a, x, "dp_da"))
random_gamma_grad_p = define("random_gamma_grad", lambda ops, a, x: incomplete_gamma(ops, a, x, "sample_grad"))
betainc_p = define("regularized_incomplete_beta", betainc_impl)


def igamma(a, x):
    """``lax.igamma(a, x)``: the regularized lower incomplete gamma function P(a, x)."""
    return ew._bind2(igamma_p, a, x)


def igammac(a, x):
    """``lax.igammac(a, x)``: the regularized upper incomplete gamma function Q(a, x) = 1 - P(a, x),
    accurate where it is small."""
    return ew._bind2(igammac_p, a, x)


def igamma_grad_a(a, x):
    """``lax.igamma_grad_a(a, x)``: dP(a, x)/da."""
    return ew._bind2(igamma_grad_a_p, a, x)


def random_gamma_grad(a, x):
    """``lax.random_gamma_grad(a, x)``: d(sample)/da for a Gamma(a, 1) sample x (implicit
    differentiation of P(a, x) = u: ``-(dP/da) / (dP/dx)``)."""
    return ew._bind2(random_gamma_grad_p, a, x)


def betainc(a, b, x):
    """``lax.betainc(a, b, x)``: the regularized incomplete beta function I_x(a, b)."""
    return betainc_p.bind(a, b, x)


def _density(a, x):
    """dP/dx = exp((a - 1) log x - x - lgamma(a))."""
    return ew.exp(ew.sub(ew.sub(ew.mul(ew.sub(a, ew._const(a, 1)), ew.log(x)), x), lgamma(a)))


def _igamma_jvp(sign: int):
    prim = igamma_p if sign > 0 else igammac_p

    def rule(primals, tangents):
        (a, x), (ta, tx) = primals, tangents
        out = prim.bind(a, x)
        da = ew._term(ta, lambda t: ew.mul(t, igamma_grad_a(a, x) if sign > 0 else ew.neg(igamma_grad_a(a, x))))
        dx = ew._term(tx, lambda t: ew.mul(t, _density(a, x) if sign > 0 else ew.neg(_density(a, x))))
        return out, ew._terms(out, da, dx)
    return rule


def _has_entries(tangent) -> bool:
    """A tangent that is there and not empty: an empty array has no derivative to miss (JAX
    differentiates igamma of an empty array to any order)."""
    return tangent is not None and get_aval(tangent).size > 0


def _betainc_jvp(primals, tangents):
    (a, b, x), (ta, tb, tx) = primals, tangents
    if _has_entries(ta) or _has_entries(tb):
        raise ValueError("betainc is not differentiable with respect to a and b (as in JAX); "
                         "differentiate with respect to x only, or wrap a and b in stop_gradient")
    out = betainc(a, b, x)
    one = ew._const(x, 1)
    log_density = ew.sub(ew.add(ew.mul(ew.sub(a, one), ew.log(x)), ew.mul(ew.sub(b, one), ew.log1p(ew.neg(x)))),
                         betaln_impl(LaxOps, a, b))
    empty = [ew.mul(t, ew._const(t, 0)) for t in (ta, tb) if t is not None]     # size 0: no entries to miss
    return out, ew._terms(out, ew._term(tx, lambda t: ew.mul(t, ew.exp(log_density))), *empty)


def _igamma_grad_a_jvp(primals, tangents):
    (a, x), (ta, tx) = primals, tangents
    if _has_entries(ta):
        raise ValueError("igamma_grad_a (dP/da) is not differentiable with respect to a (as in JAX): the "
                         "second derivative of igamma / gammainc in a is not available")
    out = igamma_grad_a(a, x)
    # d/dx dP/da = d/da dP/dx = dP/dx (log x - digamma(a))
    dx = ew._term(tx, lambda t: ew.mul(t, ew.mul(_density(a, x), ew.sub(ew.log(x), digamma(a)))))
    return out, ew._terms(out, dx, ew._term(ta, lambda t: ew.mul(t, ew._const(t, 0))))   # ta: size 0


def _random_gamma_grad_jvp(primals, tangents):
    raise ValueError("random_gamma_grad is not differentiable (as in JAX): differentiate a gamma sample "
                     "once, with respect to its shape")


jvp_rules[igamma_p] = _igamma_jvp(+1)
jvp_rules[igammac_p] = _igamma_jvp(-1)
jvp_rules[betainc_p] = _betainc_jvp
jvp_rules[igamma_grad_a_p] = _igamma_grad_a_jvp
jvp_rules[random_gamma_grad_p] = _random_gamma_grad_jvp
symbolic_zero_rules.update({igamma_p, igammac_p, betainc_p, igamma_grad_a_p})

register_unpartitioned("elementwise, no rule yet: split operands are an error",
                       igamma_p, igammac_p, igamma_grad_a_p, random_gamma_grad_p, betainc_p)

