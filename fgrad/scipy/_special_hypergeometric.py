"""The confluent and Gauss hypergeometric functions ``hyp1f1`` and ``hyp2f1`` with JAX's methods
and domains (Pearson, Olver & Porter, "Numerical methods for the computation of the confluent
and Gauss hypergeometric functions", 2014; Abramowitz & Stegun 15.3.10-12), so their NaN, inf
and inaccurate regions are JAX's. Series are summed by ``lax.while_loop`` with a per-element
stopping test, so jit, vmap and the derivative series work on any shape."""
from __future__ import annotations

from typing import Any, Callable

from fgrad import lax
from fgrad import numpy as fnp
from fgrad.numpy._util import promote
from fgrad.scipy._special_gamma_sign import gamma
from fgrad.transforms.custom import custom_jvp

__all__ = ["hyp1f1", "hyp2f1"]

_MAX_TERMS = 250


def _sum_terms(first: Any, total: Any, ratio: Callable, weight: Callable | None = None,
               stop: Callable | None = None) -> Any:
    """``total + sum_k weight(k) term_k`` for k = 1, 2, ..., with ``term_1 = first`` and
    ``term_{k+1} = term_k ratio(k)``, while k < 250 and (per element) ``stop(term, total)`` is
    false: by default while ``|term| > eps |total|``, tested before each term is added."""
    eps = float(fnp.finfo(first.dtype).eps)
    more = stop or (lambda term, acc: fnp.abs(term) > eps * fnp.abs(acc))
    weigh = weight or (lambda k: 1.0)

    def active(state):
        k, term, acc = state
        return (k < _MAX_TERMS) & more(term, acc)

    def body(state):
        k, term, acc = state
        going = active(state)
        acc = fnp.where(going, acc + weigh(k) * term, acc)
        term = fnp.where(going, term * ratio(k), term)
        return fnp.where(going, k + 1.0, k), term, acc

    k0 = fnp.ones_like(first)
    return lax.while_loop(lambda state: fnp.any(active(state)), body, (k0, first, total + 0.0 * first))[2]


def _real_floats(op: str, *args: Any) -> list[Any]:
    args = promote(op, *args, to_float=True)
    if fnp.iscomplexobj(args[0]):
        raise ValueError(f"{op}: complex input (dtype {args[0].dtype}) is not supported; pass real "
                         f"arrays, as in jax.scipy.special.{op}")
    return list(fnp.broadcast_arrays(*args))


# --- 1F1 -----------------------------------------------------------------------------------------

def _hyp1f1_series(a: Any, b: Any, x: Any) -> Any:
    return _sum_terms(a / b * x, fnp.ones_like(x), lambda k: (a + k) / (b + k) * x / (k + 1.0))


def _hyp1f1_asymptotic(a: Any, b: Any, x: Any) -> Any:
    """For large |x|: Gamma(b)/Gamma(a) e^x x^(a-b) sum_k (b-a)_k (1-a)_k / (k! x^k)."""
    total = _sum_terms((b - a) * (1.0 - a) / x, fnp.ones_like(x),
                       lambda k: (b - a + k) * (1.0 - a + k) / (k + 1.0) / x)
    return gamma(b) / gamma(a) * fnp.exp(x) * x ** (a - b) * total


@custom_jvp
def _hyp1f1(a: Any, b: Any, x: Any) -> Any:
    near = fnp.abs(x) < 100.0
    value = fnp.where(near, _hyp1f1_series(a, b, fnp.where(near, x, 0.0)), _hyp1f1_asymptotic(a, b, fnp.where(near, 100.0, x)))
    value = fnp.where((b == 0) & (a != 0), fnp.inf, value)
    value = fnp.where((a == b) & (a != 0), fnp.exp(x), value)
    return fnp.where(a == 0, 1.0, value)


def _hyp1f1_parameter_derivative(a: Any, b: Any, x: Any, wrt_a: bool) -> Any:
    """d/da or d/db of the series: sum_k term_k (psi(a+k) - psi(a)), or (psi(b) - psi(b+k))."""
    if wrt_a:
        weight = lambda k: lax.digamma(a + k) - lax.digamma(a)   # noqa: E731
    else:
        weight = lambda k: lax.digamma(b) - lax.digamma(b + k)   # noqa: E731
    return _sum_terms(a / b * x, fnp.zeros_like(x), lambda k: (a + k) / (b + k) * x / (k + 1.0), weight)


@_hyp1f1.defjvp
def _hyp1f1_jvp(primals, tangents):
    (a, b, x), (ta, tb, tx) = primals, tangents
    d_a = _hyp1f1_parameter_derivative(a, b, x, True)
    d_b = _hyp1f1_parameter_derivative(a, b, x, False)
    d_x = a / b * _hyp1f1(a + 1.0, b + 1.0, x)
    return _hyp1f1(a, b, x), d_a * ta + d_b * tb + d_x * tx


def hyp1f1(a: Any, b: Any, x: Any) -> Any:
    """``hyp1f1(a, b, x)``: Kummer's confluent hypergeometric function ``1F1(a; b; x) = sum_k
    (a)_k / (b)_k x^k / k!``, real arguments (complex is a ValueError). As JAX: the series (at most
    250 terms) for |x| < 100 and the large-|x| asymptotic series beyond; 1 at a == 0 (SciPy: NaN
    at a == b == 0), exp(x) at a == b, inf at b == 0. So also as JAX: large negative x (about
    x < -10 in float32, -30 in float64) loses everything to cancellation in the series, and
    x <= -100 is NaN or wrong (SciPy is right there). Differentiable in a, b (by their series)
    and x (``a/b 1F1(a+1; b+1; x)``).

    >>> hyp1f1(1.0, 2.0, 1.0)   # e - 1 = 1.7182817
    """
    return _hyp1f1(*_real_floats("hyp1f1", a, b, x))


# --- 2F1 -----------------------------------------------------------------------------------------

def _near_integer(v: Any, eps50: float) -> Any:
    return fnp.abs(v - fnp.round(v)) < eps50


def _hyp2f1_series(a: Any, b: Any, c: Any, x: Any) -> Any:
    total = _sum_terms(fnp.ones_like(x), fnp.zeros_like(x),
                       lambda k: (a + k - 1.0) * (b + k - 1.0) / (c + k - 1.0) / k * x)
    return total


def _hyp2f1_terminating(a: Any, b: Any, c: Any, x: Any, eps50: float) -> Any:
    """The finite sum when a or b is a non-positive integer: the one of larger magnitude counts
    the terms, unless c is a non-positive integer between them (then the sum stops before it)."""
    swap = (b < a) & _near_integer(b, eps50) & ~((fnp.fmod(c, 1.0) == 0) & (c <= 0) & (c > b))
    a, b = fnp.where(swap, b, a), fnp.where(swap, a, b)
    count = fnp.abs(a)

    def body(state):
        i, term, total = state
        going = i < count + 1.0
        term = fnp.where(going, -term * (count - i + 1.0) / (c + i - 1.0) * (b + i - 1.0) / i * x, term)
        return i + 1.0, term, fnp.where(going, total + term, total)

    def more(state):
        return fnp.any(state[0] < count + 1.0)

    return lax.while_loop(more, body, (fnp.ones_like(x), fnp.ones_like(x), fnp.ones_like(x)))[2]


def _hyp2f1_integer_gap(a: Any, b: Any, c: Any, x: Any) -> Any:
    """Near x = 1 with c - a - b = m an integer: A&S 15.3.10-12, a log(1 - x) series (with
    digammas) plus, for m != 0, a finite sum of |m| terms."""
    gap = c - a - b
    s = 1.0 - x
    m = fnp.round(gap)
    up = m >= 0
    e = fnp.where(up, gap, -gap)
    shift_log = fnp.where(up, gap, 0.0)        # the parameter shift in the log series
    shift_sum = fnp.where(up, 0.0, gap)        # and in the finite sum
    log_s = fnp.log(s)
    a1, b1 = a + shift_log, b + shift_log

    def psi_terms(t):
        return (lax.digamma(1.0 + t) + lax.digamma(1.0 + t + e) - lax.digamma(a1 + t)
                - lax.digamma(b1 + t) - log_s)

    y0 = psi_terms(0.0) / gamma(e + 1.0)
    p0 = a1 * b1 * s / gamma(e + 2.0)
    y = _log_series(psi_terms, a1, b1, e, s, p0, y0)

    count = fnp.abs(m)
    finite = _finite_sum(a + shift_sum, b + shift_sum, e, s, count)
    gc = gamma(c)
    finite = finite * gamma(e) * gc / (gamma(a1) * gamma(b1))
    y_scaled = y * gc / (gamma(a + shift_sum) * gamma(b + shift_sum))
    y_scaled = fnp.where(fnp.fmod(count, 2.0) == 1.0, -y_scaled, y_scaled)
    s_m = s ** m
    mixed = fnp.where(m > 0, y_scaled * s_m + finite, y_scaled + finite * s_m)
    return fnp.where(m == 0, y * gc / (gamma(a) * gamma(b)), mixed)


def _log_series(psi_terms: Callable, a1: Any, b1: Any, e: Any, s: Any, p0: Any, y0: Any) -> Any:
    """y0 + sum_{t>=1} p_t psi_terms(t), p_{t+1} = p_t s (a1+t)(b1+t) / ((t+1)(t+1+e)), while
    t < 250 and the last term added was at least eps |y|."""
    eps = float(fnp.finfo(s.dtype).eps)

    def going(state):
        t, p, q, y = state
        return (t < _MAX_TERMS) & (fnp.abs(q) >= eps * fnp.abs(y))

    def body(state):
        t, p, q, y = state
        on = going(state)
        q_new = p * psi_terms(t)
        p_new = p * s * (a1 + t) / (t + 1.0) * (b1 + t) / (t + 1.0 + e)
        return (fnp.where(on, t + 1.0, t), fnp.where(on, p_new, p), fnp.where(on, q_new, q),
                fnp.where(on, y + q_new, y))

    return lax.while_loop(lambda state: fnp.any(going(state)), body, (fnp.ones_like(s), p0, y0, y0))[3]


def _finite_sum(a2: Any, b2: Any, e: Any, s: Any, count: Any) -> Any:
    """1 + sum_{i=1}^{count-1} p_i, p_i = p_{i-1} s (a2+i-1)(b2+i-1) / ((i - e) i)."""
    def body(state):
        i, p, total = state
        on = i < count
        p_new = p * s * (a2 + i - 1.0) * (b2 + i - 1.0) / (i - e) / i
        return i + 1.0, fnp.where(on, p_new, p), fnp.where(on, total + p_new, total)

    start = (fnp.ones_like(s), fnp.ones_like(s), fnp.ones_like(s))
    return lax.while_loop(lambda state: fnp.any(state[0] < count), body, start)[2]


def _hyp2f1_general(a: Any, b: Any, c: Any, x: Any, eps50: float) -> Any:
    """Below x = 0.9 (or where the series terminates) the series; above, the series where c - a - b
    is not an integer (slow near 1: at most 250 terms, as JAX), A&S 15.3.10-12 where it is."""
    terminating = ((a <= 0) & _near_integer(a, eps50)) | ((b <= 0) & _near_integer(b, eps50))
    integer_gap = (x > 0.9) & ~terminating & _near_integer(c - a - b, eps50)
    safe = lambda v, fill: fnp.where(integer_gap, v, fill)    # noqa: E731
    gap_value = _hyp2f1_integer_gap(safe(a, 0.25), safe(b, 0.5), safe(c, 1.75), safe(x, 0.95))
    # the terminating sum's trip count is |a|: give it only the elements that terminate
    t_a, t_b = fnp.where(terminating, a, 0.0), fnp.where(terminating, b, 0.0)
    end_value = _hyp2f1_terminating(t_a, t_b, c, x, eps50)
    value = fnp.where(integer_gap, gap_value, _hyp2f1_series(a, b, c, x))
    return fnp.where(terminating & ~integer_gap, end_value, value)


@custom_jvp
def _hyp2f1(a: Any, b: Any, c: Any, x: Any) -> Any:
    eps50 = 50.0 * float(fnp.finfo(x.dtype).eps)
    gap = c - a - b
    s = 1.0 - x
    pole = (c == 0) | ((c < 0) & (fnp.fmod(c, 1.0) == 0))
    euler = (gap <= -1.0) & ~(~_near_integer(gap, eps50) & (s < 0))
    euler_value = s ** gap * _hyp2f1_general(c - a, c - b, c, x, eps50)
    at_one = gamma(c) * gamma(gap) / (gamma(c - a) * gamma(c - b))
    # JAX's order of cases: the first that holds decides
    cases = [
        ((x == 0) | (((a == 0) | (b == 0)) & (c != 0)), fnp.ones_like(x)),
        (pole, fnp.full_like(x, fnp.inf)),
        (euler, euler_value),
        ((gap <= 0) & (x == 1), fnp.full_like(x, fnp.inf)),
        ((x < 1) & (b == c), s ** (-a)),
        ((x < 1) & (a == c), s ** (-b)),
        (x > 1, fnp.full_like(x, fnp.inf)),
        (x == 1, at_one),
    ]
    value = _hyp2f1_general(a, b, c, x, eps50)
    for condition, case_value in reversed(cases):
        value = fnp.where(condition, case_value, value)
    return value


def _hyp2f1_parameter_derivative(a: Any, b: Any, c: Any, x: Any, which: str) -> Any:
    """d/da, d/db or d/dc of the series: sum_k term_k (psi(p+k) - psi(p)) for p = a or b, and
    (psi(c) - psi(c+k)) for c."""
    if which == "c":
        weight = lambda k: lax.digamma(c) - lax.digamma(c + k)   # noqa: E731
    else:
        p = a if which == "a" else b
        weight = lambda k: lax.digamma(p + k) - lax.digamma(p)   # noqa: E731
    ratio = lambda k: (a + k) * (b + k) / (c + k) / (k + 1.0) * x   # noqa: E731
    return _sum_terms(a * b / c * x, fnp.zeros_like(x), ratio, weight)


@_hyp2f1.defjvp
def _hyp2f1_jvp(primals, tangents):
    (a, b, c, x), (ta, tb, tc, tx) = primals, tangents
    d_x = a * b / c * _hyp2f1(a + 1.0, b + 1.0, c + 1.0, x)
    out = d_x * tx
    for which, t in (("a", ta), ("b", tb), ("c", tc)):
        out = out + _hyp2f1_parameter_derivative(a, b, c, x, which) * t
    return _hyp2f1(a, b, c, x), out


def hyp2f1(a: Any, b: Any, c: Any, x: Any) -> Any:
    """``hyp2f1(a, b, c, x)``: Gauss's hypergeometric function ``2F1(a, b; c; x) = sum_k (a)_k
    (b)_k / (c)_k x^k / k!`` for real arguments, with JAX's methods and domain: the series (at most
    250 terms), the finite sum where a or b is a non-positive integer, Euler's transformation
    ``(1-x)^(c-a-b) 2F1(c-a, c-b; c; x)`` where c - a - b <= -1, A&S 15.3.10-12 for x > 0.9 with
    c - a - b an integer, Gauss's sum at x = 1. As JAX, unlike SciPy: inf for x > 1 and at
    non-positive integer c (even where SciPy's terminating sum is finite), and x < -1 diverges
    (the series is summed regardless: wrong values), x near 1 with c - a - b not an integer
    converges slowly (250 terms). Differentiable in a, b, c (their series) and x
    (``a b / c 2F1(a+1, b+1; c+1; x)``).

    >>> hyp2f1(1.0, 1.0, 2.0, 0.5)   # -log(1 - x)/x = 1.3862944
    """
    return _hyp2f1(*_real_floats("hyp2f1", a, b, c, x))
