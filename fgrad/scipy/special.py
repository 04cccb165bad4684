"""``scipy.special`` functions with JAX's definitions (``jax.scipy.special``).

Example: ``import fgrad.scipy.special as fsp; fsp.erf(0.5); fsp.xlogy(0.0, 0.0)  # 0.0``
"""
from __future__ import annotations

from typing import Any

import math
import operator
from fractions import Fraction

import numpy as np

from fgrad import lax
from fgrad import numpy as fnp
from fgrad.nn.functional import log_softmax as _nn_log_softmax, logsumexp as _nn_logsumexp, softmax as _nn_softmax
from fgrad.numpy._util import promote, promote_float
from fgrad.ops.special_gamma import LaxOps
from fgrad.scipy._special_gamma_sign import gamma, gammasgn
from fgrad.scipy._special_hypergeometric import hyp1f1, hyp2f1
from fgrad.scipy._special_integrals import dawsn, expn, fresnel, owens_t, sici, wofz
from fgrad.scipy._special_orthogonal import bessel_jn, sph_harm_y
from fgrad.ops.special_incomplete import betaln_impl
from fgrad.transforms.custom import custom_jvp

__all__ = ["erf", "erfc", "erfinv", "expit", "logit", "logsumexp", "xlogy", "xlog1py", "ndtr", "log_ndtr", "ndtri",
           "gammaln", "loggamma", "digamma", "polygamma", "gamma", "gammasgn", "beta", "betaln", "betainc",
           "gammainc", "gammaincc", "multigammaln", "factorial", "zeta", "entr", "kl_div", "rel_entr",
           "softmax", "log_softmax", "poch", "comb", "boxcox", "boxcox1p", "i0", "i0e", "i1", "i1e", "bernoulli",
           "erfcx", "exp1", "expi", "spence", "bessel_jn", "dawsn", "expn", "fresnel", "hyp1f1", "hyp2f1",
           "owens_t", "sici", "sph_harm_y", "wofz"]


def erf(x: Any) -> Any:
    """The error function (``lax.erf`` on ``x`` promoted to a float)."""
    return lax.erf(promote_float("erf", x))


def erfc(x: Any) -> Any:
    """The complementary error function ``1 - erf(x)``, accurate in the tail."""
    return lax.erfc(promote_float("erfc", x))


def erfinv(x: Any) -> Any:
    """The inverse error function (``lax.erf_inv``): ``erf(erfinv(y)) == y`` on (-1, 1)."""
    return lax.erf_inv(promote_float("erfinv", x))


def expit(x: Any) -> Any:
    """The logistic sigmoid ``1 / (1 + exp(-x))``."""
    return lax.logistic(promote_float("expit", x))


@custom_jvp
def logit(x: Any) -> Any:
    """``log(x / (1 - x))``, the inverse of ``expit``."""
    x = promote_float("logit", x)
    return fnp.log(x / (1 - x))


@logit.defjvp
def _logit_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    x = promote_float("logit", x)
    return logit(x), t / (x * (1 - x))


#: ``jax.scipy.special.logsumexp`` is ``jax.nn.logsumexp``: one function
logsumexp = _nn_logsumexp


def _x_log(op: str, log_fn, x: Any, y: Any) -> Any:
    x, y = promote(op, x, y, to_float=True)
    # 0 where x == 0 unless y is NaN (SciPy's and JAX's convention)
    keep = fnp.logical_or(x != 0, fnp.isnan(y))
    return fnp.where(keep, x * log_fn(y), fnp.zeros_like(x))


@custom_jvp
def xlogy(x: Any, y: Any) -> Any:
    """``x * log(y)``, 0 where ``x == 0`` (even at ``y == 0``), NaN if ``y`` is NaN."""
    return _x_log("xlogy", fnp.log, x, y)


@xlogy.defjvp
def _xlogy_jvp(primals, tangents):
    (x, y), (tx, ty) = primals, tangents
    x, y = promote("xlogy", x, y, to_float=True)
    return xlogy(x, y), tx * fnp.log(y) + ty * x / y


@custom_jvp
def xlog1py(x: Any, y: Any) -> Any:
    """``x * log1p(y)``, 0 where ``x == 0`` (even at ``y == -1``), NaN if ``y`` is NaN."""
    return _x_log("xlog1py", fnp.log1p, x, y)


@xlog1py.defjvp
def _xlog1py_jvp(primals, tangents):
    (x, y), (tx, ty) = primals, tangents
    x, y = promote("xlog1py", x, y, to_float=True)
    return xlog1py(x, y), tx * fnp.log1p(y) + ty * x / (1 + y)


# --- the standard normal distribution -------------------------------------------------------

_SQRT_HALF = 0.7071067811865476
_LOG_SQRT_2PI = 0.9189385332046727


def ndtr(x: Any) -> Any:
    """The standard normal CDF ``Phi(x) = erfc(-x / sqrt(2)) / 2``, accurate in both tails."""
    x = promote_float("ndtr", x)
    return 0.5 * lax.erfc(-x * _SQRT_HALF)


def _left_tail_bound(dtype) -> float:
    """Below this, ``Phi`` (nearly) underflows and ``log_ndtr`` uses the asymptotic series."""
    return -20.0 if fnp.dtype(dtype) == fnp.float64 else -10.0


def log_ndtr(x: Any, series_order: int = 3) -> Any:
    """``log_ndtr(x, series_order=3)``: ``log(Phi(x))``, accurate far into both tails
    (``log_ndtr(-40.)`` is about -804.6, where ``Phi`` itself underflows; for x > 0 it is
    ``log1p(-Phi(-x))``), with finite gradients everywhere. ``series_order`` is checked as JAX
    does (an int in [0, 30]); fgrad's left tail always sums enough terms of the asymptotic
    series for full accuracy, so its value does not depend on it (JAX's, in its last digits,
    does)."""
    if isinstance(series_order, bool) or not isinstance(series_order, (int, np.integer)):
        raise TypeError("series_order must be a Python integer.")
    if series_order < 0:
        raise ValueError("series_order must be non-negative.")
    if series_order > 30:
        raise ValueError("series_order must be <= 30.")
    x = promote_float("log_ndtr", x)
    lower = _left_tail_bound(x.dtype)
    # each formula sees its input clamped to where it is finite, with the clamps 1 beyond the
    # switch points: a clamp exactly there would halve the gradient at the switch (a tie)
    right = fnp.log1p(-ndtr(-fnp.maximum(x, -1.0)))
    middle = fnp.log(ndtr(fnp.clip(x, lower - 1.0, 1.0)))
    left = _log_ndtr_left_tail(fnp.minimum(x, lower + 1.0))
    return fnp.where(x > 0.0, right, fnp.where(x > lower, middle, left))


def _log_ndtr_left_tail(x: Any, terms: int = 6) -> Any:
    """For x << 0: ``log Phi(x) = -x^2/2 - log(-x) - log(sqrt(2 pi)) + log(S)`` with Phi's
    asymptotic series ``S = 1 + sum_n (-1)^n (2n-1)!! / x^(2n)`` (``terms`` terms)."""
    x2 = x * x
    series, power, double_factorial = 1.0, 1.0, 1.0
    for n in range(1, terms + 1):
        double_factorial *= 2 * n - 1
        power = power * x2
        series = series + (-1.0) ** n * double_factorial / power
    return -0.5 * x2 - fnp.log(-x) - _LOG_SQRT_2PI + fnp.log(series)


def ndtri(p: Any) -> Any:
    """The inverse of ``ndtr``: ``ndtr(ndtri(p)) == p`` on (0, 1); -inf at 0, +inf at 1, NaN
    outside [0, 1]. Newton's method on ``log_ndtr`` from the tail's asymptote, so that tiny
    probabilities (1e-300 in float64) keep full relative accuracy."""
    p = promote_float("ndtri", p)
    # solve for the lower half; the upper half by symmetry, ndtri(p) = -ndtri(1 - p)
    q = fnp.minimum(p, 1.0 - p)
    safe = fnp.clip(q, fnp.finfo(p.dtype).tiny, 0.5)
    target = fnp.log(safe)
    x = -fnp.sqrt(-2.0 * target)                        # the asymptote, then the erf-based guess
    x = fnp.where(safe > 1e-3, fnp.sqrt(2.0) * lax.erf_inv(2.0 * safe - 1.0), x)
    for _ in range(6):
        log_phi = log_ndtr(x)
        # d log(Phi)/dx = phi(x) / Phi(x) = exp(-x^2/2 - log sqrt(2 pi) - log Phi(x))
        slope = fnp.exp(-0.5 * x * x - _LOG_SQRT_2PI - log_phi)
        x = fnp.minimum(x - (log_phi - target) / slope, 0.0)
    x = fnp.where(q == 0.5, 0.0, x)
    x = fnp.where(p > 0.5, -x, x)
    x = fnp.where(p == 0.0, -fnp.inf, fnp.where(p == 1.0, fnp.inf, x))
    return fnp.where((p < 0.0) | (p > 1.0) | fnp.isnan(p), fnp.nan, x)


# --- the gamma family (lax primitives: fgrad.ops.special_gamma, special_incomplete) ---------------

def _floats(op: str, *args: Any) -> list[Any]:
    return [fnp.asarray(v) for v in promote(op, *args, to_float=True)]


def gammaln(x: Any) -> Any:
    """``gammaln(x)``: ``log|Gamma(x)|`` (+inf at 0 and the negative integers), ``lax.lgamma``."""
    return lax.lgamma(promote_float("gammaln", x))


def loggamma(x: Any) -> Any:
    """``loggamma(x)`` for real x: ``gammaln(x)`` where x > 0, NaN elsewhere (JAX's real case)."""
    x = promote_float("loggamma", x)
    return fnp.where(x > 0, lax.lgamma(x), fnp.nan)


def digamma(x: Any) -> Any:
    """``digamma(x)``: ``d/dx gammaln(x)`` (NaN at 0 and the negative integers)."""
    return lax.digamma(promote_float("digamma", x))


def polygamma(n: Any, x: Any) -> Any:
    """``polygamma(n, x)``: the n-th derivative of digamma (n a non-negative integer; NaN otherwise)."""
    n, x = _floats("polygamma", n, x)
    return lax.polygamma(n, x)


def betaln(a: Any, b: Any) -> Any:
    """``betaln(a, b)``: ``log|B(a, b)|``, through Stirling's series where an argument is large
    (no cancellation between large gammalns)."""
    a, b = _floats("betaln", a, b)
    return betaln_impl(LaxOps, *fnp.broadcast_arrays(a, b))


def beta(a: Any, b: Any) -> Any:
    """``beta(a, b)``: ``Gamma(a) Gamma(b) / Gamma(a + b)``, with its sign."""
    a, b = _floats("beta", a, b)
    sign = gammasgn(a) * gammasgn(b) * gammasgn(a + b)
    return sign * fnp.exp(betaln(a, b))


def betainc(a: Any, b: Any, x: Any) -> Any:
    """``betainc(a, b, x)``: the regularized incomplete beta function I_x(a, b) (``lax.betainc``;
    differentiable in x only, as in JAX)."""
    a, b, x = _floats("betainc", a, b, x)
    return lax.betainc(*fnp.broadcast_arrays(a, b, x))


def gammainc(a: Any, x: Any) -> Any:
    """``gammainc(a, x)``: the regularized lower incomplete gamma function P(a, x) (``lax.igamma``)."""
    return lax.igamma(*_floats("gammainc", a, x))


def gammaincc(a: Any, x: Any) -> Any:
    """``gammaincc(a, x)``: the regularized upper incomplete gamma function Q(a, x) = 1 - P(a, x)
    (``lax.igammac``), accurate where it is small."""
    return lax.igammac(*_floats("gammaincc", a, x))


def multigammaln(a: Any, d: int) -> Any:
    """``multigammaln(a, d)``: the log of the multivariate gamma function of dimension ``d``
    (a positive Python int): ``d (d-1)/4 log(pi) + sum_j gammaln(a - j/2)``."""
    try:
        d = operator.index(d)
    except TypeError:
        raise TypeError(f"multigammaln: d must be a Python int (the dimension), got {d!r}") from None
    if d < 1:
        raise ValueError(f"multigammaln: d must be >= 1, got {d}")
    a = promote_float("multigammaln", a)
    total = lax.lgamma(a)
    for j in range(1, d):
        total = total + lax.lgamma(a - 0.5 * j)
    return total + d * (d - 1) / 4 * float(np.log(np.pi))


def factorial(n: Any, exact: bool = False) -> Any:
    """``factorial(n, exact=False)``: ``Gamma(n + 1)``, 0 for n < 0 (``exact=True`` is not
    supported, as in JAX)."""
    if exact:
        raise NotImplementedError("factorial(exact=True) is not supported (as in JAX): use exact=False")
    n = promote_float("factorial", n)
    return fnp.where(n < 0, 0.0, fnp.exp(lax.lgamma(n + 1.0))).astype(n.dtype)


def zeta(x: Any, q: Any = None) -> Any:
    """``zeta(x, q=None)``: Hurwitz's zeta function ``sum_k (q + k)^-x`` (Riemann's for q=None),
    for x > 1 and q > 0 (inf at x == 1, NaN for x < 1 or q <= 0)."""
    x, q = _floats("zeta", x, 1.0 if q is None else q)
    return lax.zeta(*fnp.broadcast_arrays(x, q))


def poch(z: Any, m: Any) -> Any:
    """``poch(z, m)``: the rising factorial ``Gamma(z + m) / Gamma(z)`` (1 at m == 0)."""
    z, m = _floats("poch", z, m)
    sign = gammasgn(z + m) * gammasgn(z)
    value = sign * fnp.exp(lax.lgamma(z + m) - lax.lgamma(z))
    return fnp.where(m == 0, 1.0, value).astype(z.dtype)


def comb(N: Any, k: Any, *, repetition: bool = False) -> Any:
    """``comb(N, k, *, repetition=False)``: ``N! / (k! (N - k)!)`` through gammaln (0 for k < 0,
    k > N or N < 0); with ``repetition``, ``comb(N + k - 1, k)``."""
    N, k = _floats("comb", N, k)
    if repetition:
        return comb(N + k - 1.0, k)
    value = fnp.exp(lax.lgamma(N + 1.0) - lax.lgamma(k + 1.0) - lax.lgamma(N - k + 1.0))
    return fnp.where((k < 0) | (k > N) | (N < 0), 0.0, value).astype(N.dtype)


def boxcox(x: Any, lmbda: Any) -> Any:
    """``boxcox(x, lmbda)``: ``(x^lmbda - 1) / lmbda`` (``log(x)`` at lmbda == 0), as
    ``expm1(lmbda log x) / lmbda`` (accurate for small lmbda)."""
    x, lmbda = _floats("boxcox", x, lmbda)
    return _boxcox_of_log(fnp.log(x), lmbda)


def boxcox1p(x: Any, lmbda: Any) -> Any:
    """``boxcox1p(x, lmbda)``: ``boxcox(1 + x, lmbda)`` with ``log1p`` (accurate for small x)."""
    x, lmbda = _floats("boxcox1p", x, lmbda)
    return _boxcox_of_log(fnp.log1p(x), lmbda)


def _boxcox_of_log(log_x: Any, lmbda: Any) -> Any:
    zero = lmbda == 0
    safe = fnp.where(zero, 1.0, lmbda)
    return fnp.where(zero, log_x, fnp.expm1(safe * log_x) / safe)


def i0e(x: Any) -> Any:
    """``i0e(x)``: the exponentially scaled modified Bessel function ``exp(-|x|) I0(x)``."""
    return lax.bessel_i0e(promote_float("i0e", x))


def i1e(x: Any) -> Any:
    """``i1e(x)``: ``exp(-|x|) I1(x)``."""
    return lax.bessel_i1e(promote_float("i1e", x))


def i0(x: Any) -> Any:
    """``i0(x)``: the modified Bessel function of order 0, ``i0e(x) exp(|x|)``."""
    x = promote_float("i0", x)
    return lax.bessel_i0e(x) * fnp.exp(fnp.abs(x))


def i1(x: Any) -> Any:
    """``i1(x)``: the modified Bessel function of order 1, ``i1e(x) exp(|x|)``."""
    x = promote_float("i1", x)
    return lax.bessel_i1e(x) * fnp.exp(fnp.abs(x))


# --- Spence's function -----------------------------------------------------------------------------

#: Cephes' rational approximation of spence(1 - w) on 0 <= w <= 1/2 (numerator, denominator), as JAX.
_SPENCE_A = (4.65128586073990045278E-5, 7.31589045238094711071E-3, 1.33847639578309018650E-1,
             8.79691311754530315341E-1, 2.71149851196553469920E0, 4.25697156008121755724E0,
             3.29771340985225106936E0, 1.00000000000000000126E0)
_SPENCE_B = (6.90990488912553276999E-4, 2.54043763932544379113E-2, 2.82974860602568089943E-1,
             1.41172597751831069617E0, 3.63800533345137075418E0, 5.03278880143316990390E0,
             3.54771340985225096217E0, 9.99999999999999998740E-1)


def _horner(coefficients: tuple, w: Any) -> Any:
    dtype = fnp.result_type(w)
    out = fnp.zeros_like(w)
    for c in coefficients:
        out = out * w + np.asarray(c, dtype)
    return out


def spence(x: Any) -> Any:
    """``spence(x)``: Spence's function (the real dilogarithm) ``integral_1^x log(t) / (1 - t) dt``
    for ``x >= 0``, by Cephes' rational approximation (JAX's). As JAX: NaN for ``x < 0`` (SciPy
    too, for real input); float32 and float64 only (other dtypes, integers included, are a
    TypeError). Differentiable: ``spence'(x) = log(x) / (1 - x)``.

    >>> spence(fnp.array([0., 1., 2.]))
    Array([ 1.644934  ,  0.        , -0.82246685], dtype=float32)
    """
    x = fnp.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"spence: x.dtype={x.dtype} is not supported; pass float32 or float64 "
                        "(e.g. x.astype(fnp.float32))")
    dtype = x.dtype
    special_point = (x < 0) | (x == 0) | (x == 1) | fnp.isnan(x)
    x_safe = fnp.where(special_point, np.asarray(0.75, dtype), x)    # keeps unused branches finite
    value = _spence_positive(x_safe)
    value = fnp.where(x == 1, np.asarray(0.0, dtype), value)
    value = fnp.where(x == 0, np.asarray(np.pi ** 2 / 6, dtype), value)
    return fnp.where((x < 0) | fnp.isnan(x), np.asarray(np.nan, dtype), value)


def _spence_positive(x: Any) -> Any:
    """Spence's function for ``x > 0``, ``x != 1``: reduce to ``w`` in ``[0, 1/2]`` by the
    reflection ``x -> 1/x`` (above 2 or 1.5) or ``x -> 1 - x`` (below 1/2)."""
    dtype = x.dtype
    one = np.asarray(1.0, dtype)
    inverted = x > 2
    x = fnp.where(inverted, one / x, x)
    above, below = x > 1.5, x < 0.5
    inverted = inverted | above
    w = fnp.where(above, one / x - one, fnp.where(below, -x, x - one))
    y = -w * _horner(_SPENCE_A, w) / _horner(_SPENCE_B, w)
    log_1mx = fnp.log(fnp.where(below, one - x, one))
    y = fnp.where(below, np.asarray(np.pi ** 2 / 6, dtype) - fnp.log(x) * log_1mx - y, y)
    return fnp.where(inverted, np.asarray(-0.5, dtype) * fnp.log(x) ** 2 - y, y)


# --- information measures -----------------------------------------------------------------------

def entr(x: Any) -> Any:
    """``entr(x)``: ``-x log(x)``; 0 at 0, -inf for x < 0 (and at +inf), NaN for NaN."""
    x = promote_float("entr", x)
    return fnp.where(x < 0, -fnp.inf, -_xlogx(x))


@custom_jvp
def _xlogx(x: Any) -> Any:
    """``x log(x)`` (0 at 0) whose derivative is ``log(x) + 1`` everywhere, as JAX's (so entr's
    gradient is inf at 0, and NaN for x < 0 where the unselected branch's NaN meets a 0 cotangent)."""
    return xlogy(x, x)


@_xlogx.defjvp
def _xlogx_jvp(primals, tangents):
    (x,), (tx,) = primals, tangents
    return _xlogx(x), tx * (fnp.log(x) + 1)


def rel_entr(p: Any, q: Any) -> Any:
    """``rel_entr(p, q)``: ``p log(p / q)`` for p, q > 0; 0 where p == 0 and q >= 0; inf otherwise."""
    x, y = _floats("rel_entr", p, q)
    both = (x > 0) & (y > 0)
    safe_x, safe_y = fnp.where(both, x, 1.0), fnp.where(both, y, 1.0)
    return fnp.where(both, safe_x * fnp.log(safe_x / safe_y), fnp.where((x == 0) & (y >= 0), 0.0, fnp.inf))


def kl_div(p: Any, q: Any) -> Any:
    """``kl_div(p, q)``: ``p log(p / q) - p + q`` for p, q > 0; q where p == 0 and q >= 0; inf
    otherwise; NaN for NaN."""
    x, y = _floats("kl_div", p, q)
    both = (x > 0) & (y > 0)
    safe_x, safe_y = fnp.where(both, x, 1.0), fnp.where(both, y, 1.0)
    value = rel_entr(safe_x, safe_y) - safe_x + safe_y
    out = fnp.where(both, value, fnp.where((x == 0) & (y >= 0), y, fnp.inf))
    return fnp.where(fnp.isnan(x) | fnp.isnan(y), fnp.nan, out)


def softmax(x: Any, axis: Any = None) -> Any:
    """``softmax(x, axis=None)``: ``exp(x) / sum(exp(x), axis)`` (SciPy's default: all axes)."""
    return _nn_softmax(x, axis=axis)


def log_softmax(x: Any, axis: Any = None) -> Any:
    """``log_softmax(x, axis=None)``: ``x - logsumexp(x, axis)`` (SciPy's default: all axes)."""
    return _nn_log_softmax(x, axis=axis)


# --- Bernoulli numbers, erfcx, the exponential integrals ----------------------------------------------

def bernoulli(n: int) -> Any:
    """``bernoulli(n)``: the Bernoulli numbers B_0 ... B_n (B_1 = -1/2), exact rationals rounded
    to the default float."""
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"bernoulli: n must be a Python int, got {n!r}") from None
    if n < 0:
        raise ValueError(f"bernoulli: n must be >= 0, got {n}")
    numbers = [Fraction(1)]
    for m in range(1, n + 1):       # sum_{k<=m} C(m+1, k) B_k = 0
        numbers.append(-sum(math.comb(m + 1, k) * numbers[k] for k in range(m)) / (m + 1))
    return fnp.asarray(np.array([float(b) for b in numbers]), dtype=fnp.result_type(float))


_ERFCX_ASYMPTOTIC_FROM = 26.0


def erfcx(x: Any) -> Any:
    """``erfcx(x)``: the scaled complementary error function ``exp(x^2) erfc(x)``; ``exp(x^2)`` as
    ``exp(t^2) exp((x-t)(x+t))`` with t = x rounded to 1/16 (no error from rounding x^2), the
    asymptotic series from 26 (where exp(x^2) overflows); inf below -26.6."""
    x = promote_float("erfcx", x)
    far = x >= _ERFCX_ASYMPTOTIC_FROM
    near_x = fnp.where(far, 0.0, x)
    t = fnp.floor(near_x * 16.0) / 16.0
    near = fnp.exp(t * t) * fnp.exp((near_x - t) * (near_x + t)) * lax.erfc(near_x)
    big = fnp.where(far, x, _ERFCX_ASYMPTOTIC_FROM)
    inv2 = 1.0 / (2.0 * big * big)
    series, term = fnp.ones_like(big), fnp.ones_like(big)
    for k in range(1, 9):                     # sum_k (-1)^k (2k-1)!! / (2 x^2)^k
        term = -term * (2 * k - 1) * inv2
        series = series + term
    asymptotic = series / (big * math.sqrt(math.pi))
    return fnp.where(far, asymptotic, fnp.where(x == -fnp.inf, fnp.inf, near))


_EULER_GAMMA = 0.5772156649015329


def _exp1_positive(x: Any) -> Any:
    """E1(x) for x > 0: its power series to 1, Legendre's continued fraction (100 levels,
    evaluated from the bottom) above."""
    small = x <= 1.0
    xs = fnp.where(small, x, 1.0)
    total, term = fnp.zeros_like(xs), fnp.ones_like(xs)
    for k in range(1, 22):                    # -euler - log x - sum_k (-x)^k / (k k!)
        term = -term * xs / k
        total = total + term / k
    series = -_EULER_GAMMA - fnp.log(xs) - total
    xl = fnp.where(small, 2.0, x)
    fraction = xl + 201.0
    for n in range(100, 0, -1):               # x + 1 - 1/(x + 3 - 4/(x + 5 - ...))
        fraction = xl + (2 * n - 1) - n * n / fraction
    return fnp.where(small, series, fnp.exp(-xl) / fraction)


def exp1(x: Any) -> Any:
    """``exp1(x)``: the exponential integral ``E1(x) = integral_x^inf exp(-t)/t dt`` for x > 0;
    inf at 0, NaN for x < 0 and (as JAX) at inf."""
    x = promote_float("exp1", x)
    positive = (x > 0) & (x < fnp.inf)
    value = _exp1_positive(fnp.where(positive, x, 1.0))
    return fnp.where(positive, value, fnp.where(x == 0, fnp.inf, fnp.nan))


_EI_ASYMPTOTIC_FROM = 40.0


def expi(x: Any) -> Any:
    """``expi(x)``: the exponential integral ``Ei(x)``: ``-E1(-x)`` for x < 0; for x > 0 its power
    series up to 40 and the asymptotic series ``e^x / x sum_k k! / x^k`` beyond; NaN at 0 (as JAX)."""
    x = promote_float("expi", x)
    negative = x < 0
    from_e1 = -_exp1_positive(fnp.where(negative, -x, 1.0))
    far = x > _EI_ASYMPTOTIC_FROM
    xs = fnp.where((x > 0) & ~far, x, 1.0)
    total, term = fnp.zeros_like(xs), fnp.ones_like(xs)
    for k in range(1, 131):                   # euler + log x + sum_k x^k / (k k!)
        term = term * xs / k
        total = total + term / k
    series = _EULER_GAMMA + fnp.log(xs) + total
    xl = fnp.where(far, x, _EI_ASYMPTOTIC_FROM)
    asym, term = fnp.ones_like(xl), fnp.ones_like(xl)
    for k in range(1, 41):
        term = term * k / xl
        asym = asym + term
    asymptotic = fnp.exp(xl) / xl * asym
    out = fnp.where(negative, from_e1, fnp.where(far, asymptotic, series))
    return fnp.where(x == 0, fnp.nan, out)
