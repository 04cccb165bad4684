"""The strong-Wolfe line search of ``jax.scipy.optimize``'s BFGS (JAX's ``line_search``, which
JAX does not export): Nocedal and Wright's Algorithm 3.5 with the zoom of Algorithm 3.6
(cubic, then quadratic, then bisection trial steps), written as ``while_loop``s without
``cond`` so that the whole search stages into one traced loop.

The arithmetic and the bookkeeping (step doubling, the 30-step zoom cap, the float32 floor of
1e-8 on the step, the counters) follow JAX's, so a minimisation takes JAX's steps.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

from fgrad import control_flow
from fgrad import numpy as fnp
from fgrad.core.trace import get_aval
from fgrad.numpy._util import promote_float
from fgrad.transforms.vjp import value_and_grad


class LineSearchResults(NamedTuple):
    """What one line search found: ``failed`` (no strong-Wolfe step), ``nit``, ``nfev``,
    ``ngev``, ``k`` (the last trial index), ``a_k`` (the step), ``f_k`` and ``g_k`` (the value and
    gradient there) and ``status`` (0 passed, 1 zoom failed, 3 out of iterations)."""

    failed: Any
    nit: Any
    nfev: Any
    ngev: Any
    k: Any
    a_k: Any
    f_k: Any
    g_k: Any
    status: Any


class _Zoom(NamedTuple):
    done: Any
    failed: Any
    j: Any
    a_lo: Any
    phi_lo: Any
    dphi_lo: Any
    a_hi: Any
    phi_hi: Any
    dphi_hi: Any
    a_rec: Any
    phi_rec: Any
    a_star: Any
    phi_star: Any
    dphi_star: Any
    g_star: Any
    nfev: Any
    ngev: Any


class _Search(NamedTuple):
    done: Any
    failed: Any
    i: Any
    a_i1: Any
    phi_i1: Any
    dphi_i1: Any
    nfev: Any
    ngev: Any
    a_star: Any
    phi_star: Any
    dphi_star: Any
    g_star: Any


_STAR_FIELDS = ("a_star", "phi_star", "dphi_star", "g_star")


def _where_fields(state: NamedTuple, take: Any, **new: Any) -> NamedTuple:
    """``state`` with each named field replaced by ``new[name]`` where ``take`` holds."""
    return state._replace(**{name: fnp.where(take, value, getattr(state, name)) for name, value in new.items()})


def _cubic_minimiser(a, fa, fpa, b, fb, c, fc):
    """The minimiser of the cubic through ``(a, fa)`` with slope ``fpa`` there, ``(b, fb)`` and
    ``(c, fc)`` (NaN when it has none)."""
    db, dc = b - a, c - a
    denom = (db * dc) ** 2 * (db - dc)
    rb, rc = fb - fa - fpa * db, fc - fa - fpa * dc
    cubic = (dc ** 2 * rb - db ** 2 * rc) / denom
    square = (-dc ** 3 * rb + db ** 3 * rc) / denom
    return a + (-square + fnp.sqrt(square * square - 3. * cubic * fpa)) / (3. * cubic)


def _quadratic_minimiser(a, fa, fpa, b, fb):
    """The minimiser of the parabola through ``(a, fa)`` with slope ``fpa`` there and ``(b, fb)``."""
    db = b - a
    curvature = (fb - fa - fpa * db) / (db ** 2)
    return a - fpa / (2. * curvature)


class _Problem(NamedTuple):
    """The line ``phi(t) = f(xk + t pk)`` and its Wolfe tests."""

    restricted: Callable   # t -> (phi, dphi, gradient)
    sufficient_decrease_fails: Callable   # (a, phi) -> bool: the negation of Wolfe's first condition
    curvature_holds: Callable   # dphi -> bool: the strong curvature condition


def _zoom_trial_step(s: _Zoom) -> Any:
    """The next trial step of a zoom: the cubic's minimiser if it lies well inside the bracket
    (after the first step), else the parabola's, else the midpoint."""
    span = s.a_hi - s.a_lo
    low, high = fnp.minimum(s.a_hi, s.a_lo), fnp.maximum(s.a_hi, s.a_lo)
    cubic = _cubic_minimiser(s.a_lo, s.phi_lo, s.dphi_lo, s.a_hi, s.phi_hi, s.a_rec, s.phi_rec)
    use_cubic = (s.j > 0) & (cubic > low + 0.2 * span) & (cubic < high - 0.2 * span)
    quadratic = _quadratic_minimiser(s.a_lo, s.phi_lo, s.dphi_lo, s.a_hi, s.phi_hi)
    use_quadratic = ~use_cubic & (quadratic > low + 0.1 * span) & (quadratic < high - 0.1 * span)
    step = fnp.where(use_cubic, cubic, s.a_rec)
    step = fnp.where(use_quadratic, quadratic, step)
    return fnp.where(~use_cubic & ~use_quadratic, (s.a_lo + s.a_hi) / 2., step)


def _zoom_body(problem: _Problem, s: _Zoom) -> _Zoom:
    span = s.a_hi - s.a_lo
    threshold = 1e-5 if fnp.finfo(get_aval(span).dtype).bits < 64 else 1e-10
    s = s._replace(failed=s.failed | (span <= threshold))
    a_j = _zoom_trial_step(s)
    phi_j, dphi_j, g_j = problem.restricted(a_j)
    phi_j = phi_j.astype(get_aval(s.phi_lo).dtype)
    dphi_j = dphi_j.astype(get_aval(s.dphi_lo).dtype)
    g_j = g_j.astype(get_aval(s.g_star).dtype)
    s = s._replace(nfev=s.nfev + 1, ngev=s.ngev + 1)
    hi_to_j = problem.sufficient_decrease_fails(a_j, phi_j) | (phi_j >= s.phi_lo)
    star_to_j = problem.curvature_holds(dphi_j) & ~hi_to_j
    hi_to_lo = (dphi_j * (s.a_hi - s.a_lo) >= 0.) & ~hi_to_j & ~star_to_j
    lo_to_j = ~hi_to_j & ~star_to_j
    s = _where_fields(s, hi_to_j, a_hi=a_j, phi_hi=phi_j, dphi_hi=dphi_j, a_rec=s.a_hi, phi_rec=s.phi_hi)
    s = _where_fields(s._replace(done=star_to_j | s.done), star_to_j,
                      a_star=a_j, phi_star=phi_j, dphi_star=dphi_j, g_star=g_j)
    s = _where_fields(s, hi_to_lo, a_hi=s.a_lo, phi_hi=s.phi_lo, dphi_hi=s.dphi_lo, a_rec=s.a_hi,
                      phi_rec=s.phi_hi)
    s = _where_fields(s, lo_to_j & ~hi_to_lo, a_rec=s.a_lo, phi_rec=s.phi_lo)
    s = _where_fields(s, lo_to_j, a_lo=a_j, phi_lo=phi_j, dphi_lo=dphi_j)
    return s._replace(j=s.j + 1, failed=s.failed | (s.j + 1 >= 30))


def _zoom(problem: _Problem, a_lo, phi_lo, dphi_lo, a_hi, phi_hi, dphi_hi, g_0, skip) -> _Zoom:
    """Algorithm 3.6: shrink the bracket [a_lo, a_hi] to a strong-Wolfe step (not run where
    ``skip``; its counters then stay 0)."""
    start = _Zoom(done=False, failed=False, j=0, a_lo=a_lo, phi_lo=phi_lo, dphi_lo=dphi_lo, a_hi=a_hi,
                  phi_hi=phi_hi, dphi_hi=dphi_hi, a_rec=(a_lo + a_hi) / 2., phi_rec=(phi_lo + phi_hi) / 2.,
                  a_star=1., phi_star=phi_lo, dphi_star=dphi_lo, g_star=g_0, nfev=0, ngev=0)
    return control_flow.while_loop(lambda s: ~s.done & ~skip & ~s.failed,
                                   lambda s: _zoom_body(problem, s), start)


def _search_body(problem: _Problem, start_value, g_0, s: _Search) -> _Search:
    a_i = fnp.where(s.i == 1, start_value, s.a_i1 * 2.)
    phi_i, dphi_i, g_i = problem.restricted(a_i)
    s = s._replace(nfev=s.nfev + 1, ngev=s.ngev + 1)
    zoom_up = problem.sufficient_decrease_fails(a_i, phi_i) | ((phi_i >= s.phi_i1) & (s.i > 1))
    accept = problem.curvature_holds(dphi_i) & ~zoom_up
    zoom_down = (dphi_i >= 0.) & ~zoom_up & ~accept
    up = _zoom(problem, s.a_i1, s.phi_i1, s.dphi_i1, a_i, phi_i, dphi_i, g_0, ~zoom_up)
    down = _zoom(problem, a_i, phi_i, dphi_i, s.a_i1, s.phi_i1, s.dphi_i1, g_0, ~zoom_down)
    s = s._replace(nfev=s.nfev + up.nfev + down.nfev, ngev=s.ngev + up.ngev + down.ngev)
    s = _where_fields(s._replace(done=zoom_up | s.done, failed=(zoom_up & up.failed) | s.failed), zoom_up,
                      **{name: getattr(up, name) for name in _STAR_FIELDS})
    s = _where_fields(s._replace(done=accept | s.done), accept,
                      a_star=a_i, phi_star=phi_i, dphi_star=dphi_i, g_star=g_i)
    s = _where_fields(s._replace(done=zoom_down | s.done, failed=(zoom_down & down.failed) | s.failed),
                      zoom_down, **{name: getattr(down, name) for name in _STAR_FIELDS})
    return s._replace(i=s.i + 1, a_i1=a_i, phi_i1=phi_i, dphi_i1=dphi_i)


def _restricted(f: Callable, xk, pk) -> Callable:
    def restricted(t):
        value, gradient = value_and_grad(f)(xk + fnp.asarray(t, dtype=get_aval(pk).dtype) * pk)
        return value, fnp.real(fnp.dot(gradient, pk)), gradient
    return restricted


def line_search(f: Callable, xk, pk, old_fval=None, old_old_fval=None, gfk=None, c1: float = 1e-4,
                c2: float = 0.9, maxiter: int = 20) -> LineSearchResults:
    """``jax._src.scipy.optimize.line_search.line_search(f, xk, pk, old_fval=None,
    old_old_fval=None, gfk=None, c1=1e-4, c2=0.9, maxiter=20)``: a step ``a`` along the descent
    direction ``pk`` from ``xk`` meeting the strong Wolfe conditions
    ``f(xk + a pk) <= f(xk) + c1 a f'`` and ``|f'(xk + a pk)| <= c2 |f'|``.

    ``old_fval`` and ``gfk`` (the value and gradient at ``xk``) save an evaluation when given;
    ``old_old_fval`` (the previous iterate's value) sets the first trial step,
    ``min(1, 2.02 (f - f_old) / f')``, else it is 1. Steps double until the minimum is
    bracketed, then a zoom shrinks the bracket."""
    xk, pk = promote_float("line_search", xk), promote_float("line_search", pk)
    dtype = fnp.result_type(xk, pk)
    xk, pk = xk.astype(dtype), pk.astype(dtype)
    restricted = _restricted(f, xk, pk)
    evaluated = old_fval is None or gfk is None
    if evaluated:
        phi_0, dphi_0, gfk = restricted(0)
    else:
        phi_0, dphi_0 = old_fval, fnp.real(fnp.dot(gfk, pk))
    start_value = 1
    if old_old_fval is not None:
        candidate = 1.01 * 2 * (phi_0 - old_old_fval) / dphi_0
        start_value = fnp.where(candidate > 1, 1.0, candidate)
    problem = _Problem(restricted, lambda a, phi: phi > phi_0 + c1 * a * dphi_0,
                       lambda dphi: fnp.abs(dphi) <= -c2 * dphi_0)
    start = _Search(done=fnp.asarray(False), failed=fnp.asarray(False), i=1, a_i1=0., phi_i1=phi_0,
                    dphi_i1=dphi_0, nfev=int(evaluated), ngev=int(evaluated), a_star=0., phi_star=phi_0,
                    dphi_star=dphi_0, g_star=gfk)
    s = control_flow.while_loop(lambda s: ~s.done & (s.i <= maxiter) & ~s.failed,
                                lambda s: _search_body(problem, start_value, gfk, s), start)
    return _results(s, maxiter)


def _results(s: _Search, maxiter: int) -> LineSearchResults:
    status = fnp.where(s.failed, fnp.asarray(1), fnp.where(s.i > maxiter, fnp.asarray(3), fnp.asarray(0)))
    step = fnp.asarray(s.a_star)
    if fnp.finfo(get_aval(step).dtype).bits != 64:
        # a float32 step below 1e-8 would stall BFGS on a zero direction: JAX floors it
        step = fnp.where(fnp.abs(step) < 1e-8, fnp.sign(step) * 1e-8, step)
    return LineSearchResults(failed=s.failed | ~s.done, nit=s.i - 1, nfev=s.nfev, ngev=s.ngev, k=s.i,
                             a_k=step, f_k=s.phi_star, g_k=s.g_star, status=status)
