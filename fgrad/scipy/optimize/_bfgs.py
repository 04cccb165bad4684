"""BFGS as ``jax.scipy.optimize.minimize(method="BFGS")`` runs it: Nocedal and Wright's
Algorithm 6.1, one ``while_loop`` whose body takes a strong-Wolfe line search
(``_line_search.line_search``) along ``-H g`` and updates the inverse Hessian estimate ``H``.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

from fgrad import control_flow
from fgrad import numpy as fnp
from fgrad.scipy.optimize._line_search import line_search
from fgrad.transforms.vjp import value_and_grad


class BFGSResults(NamedTuple):
    """The state of a BFGS run (JAX's ``_BFGSResults``): ``converged`` (the gradient's norm
    fell below ``gtol``), ``failed`` (a line search failed), ``k`` (iterations), ``nfev``,
    ``ngev``, ``nhev``, the iterate ``x_k`` with its value ``f_k`` and gradient ``g_k``, the
    inverse Hessian estimate ``H_k``, the previous value ``old_old_fval``, ``status`` and the
    last line search's ``line_search_status``."""

    converged: Any
    failed: Any
    k: Any
    nfev: Any
    ngev: Any
    nhev: Any
    x_k: Any
    f_k: Any
    g_k: Any
    H_k: Any
    old_old_fval: Any
    status: Any
    line_search_status: Any


def _inverse_hessian_update(H, s_k, y_k):
    """The BFGS update ``(I - rho s y^T) H (I - rho y s^T) + rho s s^T`` with ``rho = 1 / y.s``;
    ``H`` unchanged when ``rho`` is not finite (no curvature along the step)."""
    rho = fnp.reciprocal(fnp.dot(y_k, s_k))
    w = fnp.eye(s_k.shape[0], dtype=rho.dtype) - rho * (s_k[:, None] * y_k[None, :])
    updated = w @ H @ w.T + rho * (s_k[:, None] * s_k[None, :])
    return fnp.where(fnp.isfinite(rho), updated, H)


def _step(fun: Callable, norm, gtol, line_search_maxiter: int, state: BFGSResults) -> BFGSResults:
    direction = -fnp.dot(state.H_k, state.g_k)
    search = line_search(fun, state.x_k, direction, old_fval=state.f_k, old_old_fval=state.old_old_fval,
                         gfk=state.g_k, maxiter=line_search_maxiter)
    s_k = search.a_k * direction
    return state._replace(
        nfev=state.nfev + search.nfev, ngev=state.ngev + search.ngev, failed=search.failed,
        line_search_status=search.status, converged=fnp.linalg.norm(search.g_k, ord=norm) < gtol,
        k=state.k + 1, x_k=state.x_k + s_k, f_k=search.f_k, g_k=search.g_k,
        H_k=_inverse_hessian_update(state.H_k, s_k, search.g_k - state.g_k), old_old_fval=state.f_k)


def _status(state: BFGSResults, maxiter: int):
    """0 converged, 1 out of iterations, 2 + the line search's status when it failed, -1 otherwise."""
    failed = fnp.where(state.failed, 2 + state.line_search_status, -1)
    return fnp.where(state.converged, 0, fnp.where(state.k == maxiter, 1, failed))


def minimize_bfgs(fun: Callable, x0, maxiter: int | None = None, norm=np.inf, gtol: float = 1e-5,
                  line_search_maxiter: int = 10) -> BFGSResults:
    """``minimize_bfgs(fun, x0, maxiter=None, norm=inf, gtol=1e-5, line_search_maxiter=10)``:
    minimise ``fun`` (1-D float array -> real scalar) from ``x0`` until the ``norm``-norm of the
    gradient is below ``gtol``, a line search fails or ``maxiter`` (``200 * x0.size``) steps."""
    if maxiter is None:
        maxiter = np.size(x0) * 200
    f_0, g_0 = value_and_grad(fun)(x0)
    state = BFGSResults(
        converged=fnp.linalg.norm(g_0, ord=norm) < gtol, failed=False, k=0, nfev=1, ngev=1, nhev=0, x_k=x0,
        f_k=f_0, g_k=g_0, H_k=fnp.eye(x0.shape[0], dtype=x0.dtype), old_old_fval=f_0 + fnp.linalg.norm(g_0) / 2,
        status=0, line_search_status=0)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        # eagerly the loop runs on NumPy: a zoom's cubic step or an update's 1 / (y.s) may be
        # NaN or inf along the way, by design (the results select them away), as in JAX
        state = control_flow.while_loop(
            lambda s: ~s.converged & ~s.failed & (s.k < maxiter),
            lambda s: _step(fun, norm, gtol, line_search_maxiter, s), state)
    return state._replace(status=_status(state, maxiter))
