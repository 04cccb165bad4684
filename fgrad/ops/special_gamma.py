"""The gamma function family as primitives: ``lgamma``, ``digamma``, ``polygamma`` (JAX's lax
primitives of those names), with the op tables that ``special_incomplete`` shares.

Each algorithm is written once over an *op table*: ``NumpyOps`` runs it eagerly on float64
NumPy arrays, ``LaxOps`` on fgrad primitives, which is the decomposition compiled code
inlines (``special.decompositions``). Narrower floats compute in float64 and round once, so
float32 results are within an ulp of the true value; float64 results are within ~1e-15
relative (except next to the zeros of lgamma and digamma on the negative axis, where no
fixed-precision method is relative-accurate).

- ``lgamma``: a Taylor series of lgamma(2 + e) in e (``|e| <= 0.5``, coefficients
  (-1)^k (zeta(k) - 1) / k), reached by the recurrence below 10; Stirling's series above;
  the reflection formula for x < 0 (``log|Gamma(x)|``, +inf at the poles, as JAX).
- ``digamma``: the recurrence up to 10 and the asymptotic series there; a Taylor series
  around the positive zero (1.4616...), so it is relative-accurate there too; the
  reflection formula for x < 0 (NaN at 0 and the negative integers, as JAX).
- ``polygamma(m, x)``: ``(-1)^(m+1) m! zeta(m+1, x)``, Hurwitz's zeta by Euler-Maclaurin
  summation; for x < 0 from ``zeta(s, f) + (-1)^s (zeta(s, 1-f) - zeta(s, 1-x))``,
  ``f = x - floor(x)``; ``m == 0`` is digamma.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from fgrad.core import dtypes
from fgrad.core.partition import register_unpartitioned
from fgrad.core.primitive import Primitive
from fgrad.core.rules import jvp_rules, symbolic_zero_rules
from fgrad.core.trace import get_aval
from fgrad.core.types import ShapedArray
from fgrad.ops import elementwise as ew
from fgrad.ops import reduction
from fgrad.ops import special
from fgrad.ops.control import bind_while, trace_closed
from fgrad.ops.elementwise import _define, _same_type_rule
from fgrad.ops.shape import broadcast_in_dim, full

__all__ = ["lgamma", "digamma", "polygamma", "zeta", "bessel_i0e", "bessel_i1e"]


# --- op tables ---------------------------------------------------------------------------------

class NumpyOps:
    """The algorithms' operations on float64 NumPy arrays (the eager implementations)."""
    abs, exp, floor, neg, log, log1p, sqrt = np.abs, np.exp, np.floor, np.negative, np.log, np.log1p, np.sqrt
    sin, cos, tan, expm1, pow = np.sin, np.cos, np.tan, np.expm1, np.power
    add, sub, mul, div, maximum, minimum = np.add, np.subtract, np.multiply, np.divide, np.maximum, np.minimum
    le, lt, eq, ne, ge, gt = np.less_equal, np.less, np.equal, np.not_equal, np.greater_equal, np.greater
    and_, or_, not_, isnan = np.logical_and, np.logical_or, np.logical_not, np.isnan

    @staticmethod
    def k(x, value):
        return np.float64(value)

    @staticmethod
    def where(pred, if_true, if_false):
        return np.where(pred, if_true, if_false)

    @staticmethod
    def round(x):
        return np.round(x)     # ties to even: only ever applied where the choice does not matter

    @staticmethod
    def lgamma(x):
        return lgamma_impl(NumpyOps, x)

    @staticmethod
    def digamma(x):
        return digamma_impl(NumpyOps, x)

    @staticmethod
    def iterate(state: Sequence[Any], step: Callable, max_steps: int, consts: Sequence[Any] = ()) -> list[Any]:
        """Run ``step(state, *consts) -> (new_state, converged)`` until every element converged or
        ``max_steps`` steps; an element keeps the state of the step where it converged. Each step
        computes only the elements still running."""
        shape = np.broadcast_shapes(*[np.shape(v) for v in (*state, *consts)])
        state = [np.broadcast_to(np.asarray(v, np.float64), shape).ravel().copy() for v in state]
        consts = [np.broadcast_to(np.asarray(v, np.float64), shape).ravel() for v in consts]
        running = np.arange(state[0].size)
        for _ in range(max_steps):
            if not running.size:
                break
            new, converged = step([v[running] for v in state], *[c[running] for c in consts])
            for v, n in zip(state, new):
                v[running] = n
            running = running[~np.asarray(converged, bool)]
        return [v.reshape(shape) for v in state]


class LaxOps:
    """The same operations as fgrad primitives (the decompositions compiled code inlines)."""
    abs, exp, floor, neg, log, log1p, sqrt = ew.abs, ew.exp, ew.floor, ew.neg, ew.log, ew.log1p, ew.sqrt
    sin, cos, expm1, pow = ew.sin, ew.cos, ew.expm1, ew.pow
    add, sub, mul, div, maximum, minimum = ew.add, ew.sub, ew.mul, ew.div, ew.max, ew.min
    le, lt, eq, ne, ge, gt = ew.le, ew.lt, ew.eq, ew.ne, ew.ge, ew.gt
    and_, or_, not_ = ew.bitwise_and, ew.bitwise_or, ew.bitwise_not

    @staticmethod
    def k(x, value):
        return get_aval(x).dtype.type(value)

    @staticmethod
    def tan(x):
        return ew.div(ew.sin(x), ew.cos(x))

    @staticmethod
    def isnan(x):
        return ew.ne(x, x)

    @staticmethod
    def where(pred, if_true, if_false):
        return ew.select_n(pred, if_false, if_true)

    @staticmethod
    def round(x):
        return ew.round(x, "to_nearest_even")

    @staticmethod
    def lgamma(x):
        return lgamma(x)

    @staticmethod
    def digamma(x):
        return digamma(x)

    @staticmethod
    def iterate(state: Sequence[Any], step: Callable, max_steps: int, consts: Sequence[Any] = ()) -> list[Any]:
        """``NumpyOps.iterate`` as one ``while`` loop over whole arrays (converged elements keep
        their state through ``select``)."""
        avals = [get_aval(s) for s in state]
        shape = avals[0].shape
        done_aval = ShapedArray(shape, dtypes.bool_)
        counter = np.int32(0)

        def cond(i, done, *_):
            pending = reduction.reduce_or(ew.bitwise_not(done), tuple(range(len(shape))))
            return [ew.bitwise_and(ew.lt(i, np.int32(max_steps)), pending)]

        def body(i, done, *carry):
            new, converged = step(list(carry), *consts)
            kept = [ew.select_n(done, n, old) for old, n in zip(carry, new)]
            return [ew.add(i, np.int32(1)), ew.bitwise_or(done, converged), *kept]

        int_aval = get_aval(counter)
        cond_jaxpr = trace_closed(cond, [int_aval, done_aval, *avals])
        body_jaxpr = trace_closed(body, [int_aval, done_aval, *avals])
        done = full(shape, False, dtypes.bool_)
        return bind_while([], [], [counter, done, *state], cond_jaxpr, body_jaxpr)[2:]


def horner(ops, z, coeffs: Sequence[float]):
    """``coeffs[0] + z * (coeffs[1] + z * (...))``."""
    acc = ops.k(z, coeffs[-1])
    for c in reversed(coeffs[:-1]):
        acc = ops.add(ops.mul(acc, z), ops.k(z, c))
    return acc


def select(ops, cond, x, safe: float):
    """``x`` where ``cond``, else the harmless constant ``safe`` (keeps untaken branches finite)."""
    return ops.where(cond, x, ops.k(x, safe))


# --- constants ---------------------------------------------------------------------------------

#: lgamma(2 + e) = sum_k LGAMMA2[k] e^k for |e| <= 0.5: (1 - euler), then (-1)^k (zeta(k) - 1) / k
LGAMMA2 = (0.0, 0.42278433509846713, 0.3224670334241132, -0.0673523010531981, 0.020580808427784546,
           -0.007385551028673986, 0.0028905103307415234, -0.001192753911703261, 0.0005096695247430425,
           -0.00022315475845357939, 9.945751278180853e-05, -4.492623673813314e-05, 2.050721277567069e-05,
           -9.439488275268397e-06, 4.374866789907488e-06, -2.039215753801366e-06, 9.55141213040742e-07,
           -4.492469198764566e-07, 2.1207184805554665e-07, -1.0043224823968099e-07, 4.7698101693639804e-08,
           -2.2711094608943164e-08, 1.0838659214896955e-08, -5.183475041970047e-09, 2.4836745438024785e-09,
           -1.1921401405860912e-09, 5.731367241678862e-10, -2.7595228851242334e-10, 1.330476437424449e-10)
#: Stirling's series of lgamma: B_2k / (2k (2k-1)), k = 1..8
STIRLING = (0.08333333333333333, -0.002777777777777778, 0.0007936507936507937, -0.0005952380952380953,
            0.0008417508417508417, -0.0019175269175269176, 0.00641025641025641, -0.029550653594771242)
#: digamma's asymptotic series: B_2k / (2k), k = 1..8
DIGAMMA_ASYMPTOTIC = (0.08333333333333333, -0.008333333333333333, 0.003968253968253968,
                      -0.004166666666666667, 0.007575757575757576, -0.021092796092796094,
                      0.08333333333333333, -0.4432598039215686)
#: digamma's positive zero as hi + lo, and its Taylor coefficients there: psi^(k)(x0) / k!
DIGAMMA_ROOT = (1.4616321449683622, 9.549995429965697e-17)
DIGAMMA_AT_ROOT = (0.0, 0.9676722454476212, -0.4427631689835921, 0.258499760955651, -0.16394270544240652,
                   0.10782405069126237, -0.07219956125645471, 0.04880428816414311, -0.03316112647484736,
                   0.022597648232218104, -0.01542476590494896, 0.010538791616612175, -0.007204534386356869,
                   0.004926781395729853, -0.003369801655439328, 0.002305126326734928, -0.0015769367714301972,
                   0.0010788252019162967, -0.0007380709389960052, 0.000504953265834602,
                   -0.0003454680251063077, 0.00023635601564027053, -0.00016170622091974803)
#: Euler-Maclaurin: B_2j / (2j)!, j = 1..12
EULER_MACLAURIN = (0.08333333333333333, -0.001388888888888889, 3.306878306878307e-05, -8.267195767195768e-07,
                   2.08767569878681e-08, -5.284190138687493e-10, 1.3382536530684679e-11,
                   -3.3896802963225827e-13, 8.586062056277845e-15, -2.174868698558062e-16,
                   5.5090028283602295e-18, -1.3954464685812522e-19)
HALF_LOG_2PI = 0.9189385332046728
LOG_PI = 1.1447298858494002
ASYMPTOTIC_FROM = 10.0     # Stirling's / digamma's series from here (the recurrence below)


# --- lgamma --------------------------------------------------------------------------------------

def stirling_correction(ops, y):
    """``lgamma(y) - ((y - 1/2) log y - y + log(2 pi) / 2)`` for y >= 10."""
    inv = ops.div(ops.k(y, 1.0), y)
    return ops.mul(inv, horner(ops, ops.mul(inv, inv), STIRLING))


def _lgamma_two_plus(ops, e):
    """lgamma(2 + e) for |e| <= 0.5 (exact in e, so relative-accurate next to the zero at 2)."""
    return ops.mul(e, horner(ops, e, LGAMMA2[1:]))


def lgamma1p(ops, a):
    """``lgamma(1 + a)``, relative-accurate for small |a| (no rounding of 1 + a): the series
    ``lgamma(2 + a) - log1p(a)`` for |a| <= 1/2."""
    small = ops.le(ops.abs(a), ops.k(a, 0.5))
    e = select(ops, small, a, 0.0)
    near = ops.sub(_lgamma_two_plus(ops, e), ops.log1p(e))
    return ops.where(small, near, ops.lgamma(ops.add(select(ops, ops.not_(small), a, 1.0), ops.k(a, 1.0))))


def _lgamma_at_least_half(ops, y):
    """lgamma(y) for y >= 0.5 (inf and NaN pass through)."""
    large = ops.ge(y, ops.k(y, ASYMPTOTIC_FROM))
    big = select(ops, large, y, ASYMPTOTIC_FROM)
    stirling = ops.add(ops.sub(ops.mul(big, ops.sub(ops.log(big), ops.k(y, 1.0))), ops.mul(ops.k(y, 0.5), ops.log(big))),
                       ops.add(ops.k(y, HALF_LOG_2PI), stirling_correction(ops, big)))
    small = select(ops, ops.lt(y, ops.k(y, ASYMPTOTIC_FROM)), y, 2.0)
    # walk u down to [1.5, 2.5): lgamma(u) = log(u - 1) + lgamma(u - 1); each u - 1 is exact
    u, product = small, ops.k(y, 1.0)
    for _ in range(8):
        down = ops.ge(u, ops.k(y, 2.5))
        product = ops.where(down, ops.mul(product, ops.sub(u, ops.k(y, 1.0))), product)
        u = ops.where(down, ops.sub(u, ops.k(y, 1.0)), u)
    # below 1.5: lgamma(u) = lgamma(2 + (u - 1)) - log1p(u - 1), with u - 1 exact
    below = ops.lt(u, ops.k(y, 1.5))
    e = ops.where(below, ops.sub(u, ops.k(y, 1.0)), ops.sub(u, ops.k(y, 2.0)))
    middle = ops.add(_lgamma_two_plus(ops, e), ops.log(product))
    middle = ops.where(below, ops.sub(middle, ops.log1p(e)), middle)
    out = ops.where(large, stirling, middle)
    return ops.where(ops.eq(y, ops.k(y, np.inf)), y, out)


def sin_pi(ops, x):
    """``sin(pi x)`` with the argument reduced exactly (0 at the integers, any size of x)."""
    r = ops.sub(x, ops.mul(ops.k(x, 2.0), ops.round(ops.mul(x, ops.k(x, 0.5)))))    # in [-1, 1], exact
    folded = ops.where(ops.gt(ops.abs(r), ops.k(x, 0.5)),
                       ops.sub(ops.where(ops.lt(r, ops.k(x, 0.0)), ops.k(x, -1.0), ops.k(x, 1.0)), r), r)
    return ops.sin(ops.mul(folded, ops.k(x, math.pi)))


def lgamma_impl(ops, x):
    """``log|Gamma(x)|``: +inf at 0, the negative integers and -inf (JAX's values)."""
    positive = ops.gt(x, ops.k(x, 0.0))
    at_least_half = ops.ge(x, ops.k(x, 0.5))
    y = select(ops, at_least_half, x, 1.0)
    tiny = select(ops, ops.and_(positive, ops.not_(at_least_half)), x, 0.5)
    reflected = select(ops, ops.not_(positive), ops.sub(ops.k(x, 1.0), x), 2.0)     # 1 - x >= 1, for x <= 0
    core = _lgamma_at_least_half(ops, ops.where(at_least_half, y, ops.where(positive, ops.add(tiny, ops.k(x, 1.0)), reflected)))
    below_half = ops.sub(core, ops.log(tiny))
    negative_x = select(ops, ops.not_(positive), x, 0.5)
    reflection = ops.sub(ops.sub(ops.k(x, LOG_PI), ops.log(ops.abs(sin_pi(ops, negative_x)))), core)
    out = ops.where(at_least_half, core, ops.where(positive, below_half, reflection))
    pole = ops.and_(ops.le(x, ops.k(x, 0.0)), ops.eq(x, ops.floor(x)))    # 0, -1, -2, ... and -inf
    return ops.where(pole, ops.k(x, np.inf), out)


# --- digamma -------------------------------------------------------------------------------------

def _digamma_positive(ops, y):
    """digamma(y) for y > 0."""
    shift, u = ops.k(y, 0.0), y
    for _ in range(int(ASYMPTOTIC_FROM)):
        up = ops.lt(u, ops.k(y, ASYMPTOTIC_FROM))
        shift = ops.where(up, ops.add(shift, ops.div(ops.k(y, 1.0), u)), shift)
        u = ops.where(up, ops.add(u, ops.k(y, 1.0)), u)
    inv2 = ops.div(ops.k(y, 1.0), ops.mul(u, u))
    series = ops.mul(inv2, horner(ops, inv2, DIGAMMA_ASYMPTOTIC))
    asymptotic = ops.sub(ops.sub(ops.log(u), ops.div(ops.k(y, 0.5), u)), series)
    far = ops.sub(asymptotic, shift)
    d = ops.sub(ops.sub(y, ops.k(y, DIGAMMA_ROOT[0])), ops.k(y, DIGAMMA_ROOT[1]))
    near_root = ops.lt(ops.abs(d), ops.k(y, 0.25))
    return ops.where(near_root, horner(ops, select(ops, near_root, d, 0.0), DIGAMMA_AT_ROOT), far)


def cot_pi(ops, x):
    """``pi / tan(pi x)`` with the argument reduced exactly (tan has period 1)."""
    r = ops.sub(x, ops.round(x))
    return ops.div(ops.k(x, math.pi), ops.tan(ops.mul(r, ops.k(x, math.pi))))


def digamma_impl(ops, x):
    """digamma(x): NaN at 0, the negative integers and -inf (JAX's values)."""
    positive = ops.gt(x, ops.k(x, 0.0))
    y = ops.where(positive, x, ops.sub(ops.k(x, 1.0), x))
    core = _digamma_positive(ops, select(ops, ops.not_(ops.isnan(y)), y, 1.0))
    core = ops.where(ops.isnan(y), y, core)
    reflected = ops.sub(core, cot_pi(ops, select(ops, ops.not_(positive), x, 0.5)))
    out = ops.where(positive, core, reflected)
    pole = ops.and_(ops.le(x, ops.k(x, 0.0)), ops.eq(x, ops.floor(x)))
    return ops.where(pole, ops.k(x, np.nan), out)


# --- polygamma -----------------------------------------------------------------------------------

_ZETA_SHIFT = 10   # Euler-Maclaurin: sum the first terms directly, then the tail from q + 10


def hurwitz_zeta_positive(ops, s, q):
    """``zeta(s, q) = sum_k (q + k)^-s`` for s > 1 and q > 0."""
    total = ops.k(q, 0.0)
    for k in range(_ZETA_SHIFT):
        total = ops.add(total, ops.pow(ops.add(q, ops.k(q, float(k))), ops.neg(s)))
    w = ops.add(q, ops.k(q, float(_ZETA_SHIFT)))
    w_s = ops.pow(w, ops.neg(s))
    tail = ops.add(ops.div(ops.mul(w, w_s), ops.sub(s, ops.k(q, 1.0))), ops.mul(w_s, ops.k(q, 0.5)))
    # + sum_j B_2j / (2j)! * s (s+1) ... (s+2j-2) * w^(-s-2j+1)
    rising, power = s, ops.div(w_s, w)
    inv_w2 = ops.div(ops.k(q, 1.0), ops.mul(w, w))
    for j, coeff in enumerate(EULER_MACLAURIN, start=1):
        tail = ops.add(tail, ops.mul(ops.mul(rising, power), ops.k(q, coeff)))
        rising = ops.mul(ops.mul(rising, ops.add(s, ops.k(q, 2.0 * j - 1))), ops.add(s, ops.k(q, 2.0 * j)))
        power = ops.mul(power, inv_w2)
    return ops.add(total, tail)


def polygamma_impl(ops, m, x):
    """``polygamma(m, x)``: m a non-negative integer (NaN otherwise); inf at the poles."""
    s = ops.add(m, ops.k(x, 1.0))
    positive = ops.gt(x, ops.k(x, 0.0))
    x_pos = select(ops, positive, x, 1.0)
    x_neg = select(ops, ops.not_(positive), x, -0.5)
    f = ops.sub(x_neg, ops.floor(x_neg))                 # in (0, 1): exact where f is small
    g = ops.sub(ops.neg(ops.floor(ops.neg(x_neg))), x_neg)  # 1 - f, exact where it is small
    f, g = select(ops, ops.gt(f, ops.k(x, 0.0)), f, 0.5), select(ops, ops.gt(g, ops.k(x, 0.0)), g, 0.5)
    s_safe = select(ops, ops.ge(s, ops.k(x, 2.0)), s, 2.0)
    odd = ops.ne(ops.mul(ops.floor(ops.mul(s_safe, ops.k(x, 0.5))), ops.k(x, 2.0)), s_safe)
    sign_s = ops.where(odd, ops.k(x, -1.0), ops.k(x, 1.0))
    zeta_neg = ops.add(hurwitz_zeta_positive(ops, s_safe, f),
                       ops.mul(sign_s, ops.sub(hurwitz_zeta_positive(ops, s_safe, g),
                                               hurwitz_zeta_positive(ops, s_safe, ops.sub(ops.k(x, 1.0), x_neg)))))
    zeta = ops.where(positive, hurwitz_zeta_positive(ops, s_safe, x_pos), zeta_neg)
    # (-1)^(m+1) m! = -sign_s... : (-1)^(m+1) = (-1)^s
    factorial = ops.exp(_lgamma_at_least_half(ops, s_safe))
    out = ops.mul(ops.mul(sign_s, factorial), zeta)
    integer_m = ops.and_(ops.eq(m, ops.floor(m)), ops.ge(m, ops.k(x, 0.0)))
    out = ops.where(ops.eq(m, ops.k(x, 0.0)), digamma_impl(ops, x), out)
    pole = ops.and_(ops.le(x, ops.k(x, 0.0)), ops.eq(x, ops.floor(x)))
    out = ops.where(ops.and_(pole, ops.gt(m, ops.k(x, 0.0))), ops.k(x, np.inf), out)
    out = ops.where(ops.eq(x, ops.k(x, np.inf)), ops.k(x, np.nan), out)
    return ops.where(ops.and_(integer_m, ops.not_(ops.isnan(x))), out, ops.k(x, np.nan))


# --- the primitives ------------------------------------------------------------------------------

def eager(impl: Callable) -> Callable:
    """The eager implementation: ``impl`` over NumPy in float64, rounded to the operands' dtype."""
    def run(*args):
        dtype = np.result_type(*args)
        with np.errstate(all="ignore"):
            wide = np.broadcast_arrays(*[np.asarray(a, np.float64) for a in args])
            return np.asarray(impl(NumpyOps, *wide), np.float64).astype(dtype)
    return run


def same_shape(*xs):
    """Broadcast rank-0 operands to the others' shape (the primitives allow scalar operands)."""
    shape = max((get_aval(x).shape for x in xs), key=len)
    return [x if get_aval(x).shape == shape else broadcast_in_dim(x, shape, ()) for x in xs]


def decomposition(impl: Callable) -> Callable:
    """The compiled form: ``impl`` over primitives in float64, rounded to the operands' dtype."""
    def decompose(*xs):
        xs = same_shape(*xs)
        dtype = get_aval(xs[0]).dtype
        wide = [x if dtype == dtypes.float64 else ew.convert_element_type(x, dtypes.float64) for x in xs]
        out = impl(LaxOps, *wide)
        return out if dtype == dtypes.float64 else ew.convert_element_type(out, dtype)
    return decompose


def define(name: str, impl: Callable) -> Primitive:
    """An elementwise float primitive computed by ``impl`` (eagerly and compiled)."""
    prim = _define(name, eager(impl), _same_type_rule(name, ew.FLOAT))
    special.decompositions[prim] = decomposition(impl)
    return prim


lgamma_p = define("lgamma", lgamma_impl)
digamma_p = define("digamma", digamma_impl)
polygamma_p = define("polygamma", polygamma_impl)


def lgamma(x):
    """``lax.lgamma(x)``: ``log|Gamma(x)|`` (+inf at 0, the negative integers and -inf)."""
    return lgamma_p.bind(x)


def digamma(x):
    """``lax.digamma(x)``: ``d/dx lgamma(x)`` (NaN at 0 and the negative integers)."""
    return digamma_p.bind(x)


def polygamma(m, x):
    """``lax.polygamma(m, x)``: the m-th derivative of digamma; ``m`` a non-negative integer
    value of x's dtype (NaN otherwise)."""
    return ew._bind2(polygamma_p, m, x)


def zeta(x, q):
    """``lax.zeta(x, q)``: Hurwitz's zeta function ``sum_k (q + k)^-x`` for x > 1, q > 0 (inf at
    x == 1, NaN elsewhere); a composition of primitives (Euler-Maclaurin), differentiable."""
    x, q = same_shape(x, q)
    valid = ew.bitwise_and(ew.gt(x, LaxOps.k(x, 1.0)), ew.gt(q, LaxOps.k(q, 0.0)))
    value = hurwitz_zeta_positive(LaxOps, LaxOps.where(valid, x, LaxOps.k(x, 2.0)), LaxOps.where(valid, q, LaxOps.k(q, 1.0)))
    pole = ew.bitwise_and(ew.eq(x, LaxOps.k(x, 1.0)), ew.gt(q, LaxOps.k(q, 0.0)))
    return LaxOps.where(valid, value, LaxOps.where(pole, LaxOps.k(x, np.inf), LaxOps.k(x, np.nan)))


# --- the modified Bessel functions I0 and I1, exponentially scaled ----------------------------------

_BESSEL_SERIES_TERMS = 46    # sum_k (x^2/4)^k / (k! (k+nu)!) to float64 precision for |x| < 20
_BESSEL_ASYMPTOTIC_FROM = 20.0
_BESSEL_ASYMPTOTIC_TERMS = 30


def _asymptotic_coefficients(nu: int) -> list[float]:
    """``c_k`` of ``I_nu(x) e^-x sqrt(2 pi x) ~ sum_k c_k / x^k``: ``(-1)^k prod_j (4 nu^2 - (2j-1)^2) / (k! 8^k)``."""
    coeffs, c = [1.0], 1.0
    for k in range(1, _BESSEL_ASYMPTOTIC_TERMS):
        c *= -(4 * nu * nu - (2 * k - 1) ** 2) / (k * 8.0)
        coeffs.append(c)
    return coeffs


def bessel_ie(ops, x, nu: int):
    """``exp(-|x|) I_nu(x)`` for nu in (0, 1): the power series below 20, the asymptotic series above."""
    a = ops.abs(x)
    near = ops.lt(a, ops.k(x, _BESSEL_ASYMPTOTIC_FROM))
    small = select(ops, near, a, 1.0)
    quarter = ops.mul(ops.mul(small, small), ops.k(x, 0.25))
    term, total = ops.k(x, 1.0), ops.k(x, 1.0)
    for k in range(1, _BESSEL_SERIES_TERMS):
        term = ops.mul(term, ops.div(quarter, ops.k(x, float(k * (k + nu)))))
        total = ops.add(total, term)
    if nu == 1:
        total = ops.mul(total, ops.mul(small, ops.k(x, 0.5)))
    series = ops.mul(total, ops.exp(ops.neg(small)))
    large = select(ops, near, ops.k(x, _BESSEL_ASYMPTOTIC_FROM), _BESSEL_ASYMPTOTIC_FROM)
    large = ops.where(near, large, a)
    inv = ops.div(ops.k(x, 1.0), large)
    asymptotic = ops.mul(horner(ops, inv, _asymptotic_coefficients(nu)),
                         ops.div(ops.k(x, 1.0 / math.sqrt(2 * math.pi)), ops.sqrt(large)))
    out = ops.where(near, series, asymptotic)
    out = ops.where(ops.eq(a, ops.k(x, np.inf)), ops.k(x, 0.0), out)
    if nu == 1:        # odd
        out = ops.where(ops.lt(x, ops.k(x, 0.0)), ops.neg(out), out)
    return ops.where(ops.isnan(x), x, out)


bessel_i0e_p = define("bessel_i0e", lambda ops, x: bessel_ie(ops, x, 0))
bessel_i1e_p = define("bessel_i1e", lambda ops, x: bessel_ie(ops, x, 1))


def bessel_i0e(x):
    """``lax.bessel_i0e(x)``: ``exp(-|x|) I0(x)``."""
    return bessel_i0e_p.bind(x)


def bessel_i1e(x):
    """``lax.bessel_i1e(x)``: ``exp(-|x|) I1(x)``."""
    return bessel_i1e_p.bind(x)


# Primitives with JAX's derivative rules, rather than compositions differentiated through |x|:
# i0e'(0) is then 0 (not -1), an infinite cotangent stays infinite (not inf * 0 = nan inside
# the series), and second derivatives are JAX's too.

def _bessel_i0e_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    y = bessel_i0e(x)
    return y, ew.mul(t, ew.sub(bessel_i1e(x), ew.mul(ew.sign(x), y)))


def _bessel_i1e_jvp(primals, tangents):
    """``i0e(x) - i1e(x) (sign(x) + 1/x)``; 1/2 where |x| is below the dtype's epsilon (and at
    NaN), as JAX's rule."""
    (x,), (t,) = primals, tangents
    y = bessel_i1e(x)
    eps = float(np.finfo(get_aval(x).dtype).eps)
    not_tiny = ew.gt(ew.abs(x), ew._const(x, eps))
    safe = ew.select_n(not_tiny, ew._full_like(x, eps), x)
    slope = ew.sub(bessel_i0e(safe), ew.mul(y, ew.add(ew.sign(safe), ew.div(ew._const(x, 1), safe))))
    return y, ew.mul(t, ew.select_n(not_tiny, ew._full_like(x, 0.5), slope))


jvp_rules[bessel_i0e_p] = _bessel_i0e_jvp
jvp_rules[bessel_i1e_p] = _bessel_i1e_jvp


jvp_rules[lgamma_p] = lambda primals, tangents: (lgamma(primals[0]), ew.mul(tangents[0], digamma(primals[0])))
jvp_rules[digamma_p] = lambda primals, tangents: (
    digamma(primals[0]), ew.mul(tangents[0], polygamma(ew._full_like(primals[0], 1), primals[0])))


def _polygamma_jvp(primals, tangents):
    (m, x), (tm, tx) = primals, tangents
    if tm is not None:
        raise ValueError("polygamma is not differentiable with respect to its order m (an integer); "
                         "differentiate with respect to x only (pass m as a constant)")
    out = polygamma(m, x)
    return out, ew._terms(out, ew._term(tx, lambda t: ew.mul(t, polygamma(ew.add(m, ew._const(m, 1)), x))))


jvp_rules[polygamma_p] = _polygamma_jvp
symbolic_zero_rules.add(polygamma_p)

register_unpartitioned("elementwise, no rule yet: split operands are an error", lgamma_p, digamma_p, polygamma_p,
                       bessel_i0e_p, bessel_i1e_p)
