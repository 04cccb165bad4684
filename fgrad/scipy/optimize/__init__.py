"""``fgrad.scipy.optimize``: JAX's ``jax.scipy.optimize`` (``minimize`` with BFGS, and its
``OptimizeResults``).

The minimisation is one ``while_loop`` (line searches nested inside it), so it runs eagerly,
under ``jit`` (the whole solve is one native program) and under ``vmap`` (a batch of starting
points or of ``args``). As in JAX, it does not differentiate (``while_loop`` has no reverse mode).
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping, NamedTuple

from fgrad import numpy as fnp
from fgrad.core import dtypes
from fgrad.core.trace import get_aval
from fgrad.numpy._util import to_array
from fgrad.scipy.optimize._bfgs import minimize_bfgs

__all__ = ["minimize", "OptimizeResults"]

_METHODS = ("BFGS",)


class OptimizeResults(NamedTuple):
    """What ``minimize`` returns (JAX's ``OptimizeResults``).

    ``x``: the solution; ``success``: converged without a line-search failure; ``status``: 0
    converged, 1 BFGS ran out of iterations, 3 a zoom failed, 4 a saddle point, 5 a line search
    ran out of iterations, -1 undefined; ``fun``, ``jac``: the value and gradient at ``x``;
    ``hess_inv``: the inverse Hessian estimate; ``nfev``, ``njev``: function and gradient
    evaluations; ``nit``: iterations."""

    x: Any
    success: Any
    status: Any
    fun: Any
    jac: Any
    hess_inv: Any
    nfev: Any
    njev: Any
    nit: Any


def _bfgs_options(options: Mapping[str, Any]) -> dict:
    known = [name for name in inspect.signature(minimize_bfgs).parameters if name not in ("fun", "x0")]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(f"jax.scipy.optimize.minimize: unknown option(s) {unknown} for method 'BFGS'; "
                        f"it accepts {known}")
    return dict(options)


def _start(x0: Any) -> Any:
    x0 = to_array(x0, "jax.scipy.optimize.minimize")
    aval = get_aval(x0)
    if not dtypes.is_differentiable(aval.dtype) or dtypes.is_complex(aval.dtype):
        raise TypeError(f"jax.scipy.optimize.minimize: x0 must be a real floating-point array, got "
                        f"{aval.str_short()}; pass x0.astype(float)")
    if aval.ndim != 1:
        raise ValueError(f"jax.scipy.optimize.minimize: x0 must be a 1-D array of shape (n,), got shape "
                         f"{aval.shape}; flatten it (x0.ravel()) and reshape inside fun")
    return x0


def minimize(fun: Callable, x0: Any, args: tuple = (), *, method: str, tol: float | None = None,
             options: Mapping[str, Any] | None = None) -> OptimizeResults:
    """``jax.scipy.optimize.minimize(fun, x0, args=(), *, method, tol=None, options=None)``:
    minimise ``fun(x, *args)`` (a real scalar) over the 1-D float array ``x`` from ``x0``.

    ``method`` (required, case-insensitive): ``"BFGS"``. ``options``: ``maxiter`` (default
    ``200 * x0.size``), ``norm`` (of the gradient in the convergence test, default ``inf``),
    ``gtol`` (default 1e-5), ``line_search_maxiter`` (default 10). ``tol`` is accepted and,
    as in JAX, not used (set ``options={"gtol": ...}``). Gradients come from ``grad``; the
    line search is JAX's, so results follow JAX's (they may differ from SciPy's)."""
    options = {} if options is None else options
    if not isinstance(args, tuple):
        raise TypeError(f"args argument to jax.scipy.optimize.minimize must be a tuple, got {args}")
    if not isinstance(method, str) or method.lower() != "bfgs":
        raise ValueError(f"jax.scipy.optimize.minimize: method {method!r} is not supported; the supported "
                         f"methods are {list(_METHODS)}")
    x0 = _start(x0)
    results = minimize_bfgs(lambda x: fun(x, *args), x0, **_bfgs_options(options))
    return OptimizeResults(x=results.x_k, success=results.converged & fnp.logical_not(results.failed),
                           status=results.status, fun=results.f_k, jac=results.g_k, hess_inv=results.H_k,
                           nfev=results.nfev, njev=results.ngev, nit=results.k)
