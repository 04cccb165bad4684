"""``fgrad.experimental.ode``: JAX's ``jax.experimental.ode.odeint``, adaptive Dormand-Prince
integration of ``dy/dt = func(y, t, *args)``.

The state (any pytree of arrays) is raveled into one vector. Each requested time is reached by a
``while_loop`` of Dormand-Prince 5(4) steps whose size follows the local error estimate; the
value at the time itself comes from the step's 4th-order interpolating polynomial. Reverse-mode
derivatives (in ``y0``, ``t`` and ``args``, and in values ``func`` closes over) use the adjoint
method, as JAX does: a ``custom_vjp`` whose backward pass integrates the augmented system
``(y, a, dL/dt, dL/dargs)`` backwards in time between consecutive output times. Forward mode is not
available (as in JAX). It runs under ``jit`` and ``vmap``.

Example::

    from fgrad.experimental.ode import odeint
    ys = odeint(lambda y, t, k: -k * y, 1.0, fnp.linspace(0., 1., 5), 2.0)
"""
from __future__ import annotations

import math
import operator
from typing import Any, Callable

import numpy as np

from fgrad import lax
from fgrad import numpy as fnp
from fgrad import tree
from fgrad.transforms.api_utils import closure_convert
from fgrad.core.trace import get_aval
from fgrad.transforms.custom import custom_vjp
from fgrad.transforms.jit import jit
from fgrad.transforms.vjp import vjp

__all__ = ["odeint"]

# Dormand-Prince 5(4): nodes, stage coefficients, 5th-order weights, error weights (5th - 4th)
_ALPHA = [1 / 5, 3 / 10, 4 / 5, 8 / 9, 1., 1., 0.]
_BETA = [[1 / 5, 0, 0, 0, 0, 0, 0],
         [3 / 40, 9 / 40, 0, 0, 0, 0, 0],
         [44 / 45, -56 / 15, 32 / 9, 0, 0, 0, 0],
         [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729, 0, 0, 0],
         [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656, 0, 0],
         [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0]]
_C_SOL = [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0]
_C_ERROR = [35 / 384 - 1951 / 21600, 0, 500 / 1113 - 22642 / 50085, 125 / 192 - 451 / 720,
            -2187 / 6784 - -12231 / 42400, 11 / 84 - 649 / 6300, -1. / 60.]
# the midpoint weights of Shampine's dense output for the 4th-order interpolant
_C_MID = [6025192743 / 30085553152 / 2, 0, 51252292925 / 65400821598 / 2, -2691868925 / 45128329728 / 2,
          187940372067 / 1594534317056 / 2, -1776094331 / 19743644256 / 2, 11237099 / 235043384 / 2]
_HIGHEST = lax.Precision.HIGHEST


# --- one vector for a pytree state ------------------------------------------------------------------

def _ravel(value: Any) -> tuple[Any, Callable]:
    """``(flat, unravel)``: the leaves concatenated in the common dtype; ``unravel`` splits the last
    axis of a ``(..., size)`` array back into the pytree (leading axes kept)."""
    leaves, treedef = tree.tree_flatten(value)
    leaves = [fnp.asarray(leaf) for leaf in leaves]
    dtype = fnp.result_type(*leaves) if leaves else np.dtype(np.float32)
    shapes = [leaf.shape for leaf in leaves]
    dtypes = [leaf.dtype for leaf in leaves]
    flat = fnp.concatenate([fnp.ravel(leaf).astype(dtype) for leaf in leaves]) if leaves else fnp.zeros(0, dtype)
    bounds = np.cumsum([0] + [math.prod(s) for s in shapes])

    def unravel(x):
        parts = [x[..., bounds[i]:bounds[i + 1]].reshape(x.shape[:-1] + shapes[i]).astype(dtypes[i])
                 for i in range(len(shapes))]
        return tree.tree_unflatten(treedef, parts)
    return flat, unravel


def _raveled_fun(func: Callable, unravel: Callable) -> Callable:
    def flat_func(y, t, *args):
        return _ravel(func(unravel(y), t, *args))[0]
    return flat_func


# --- Dormand-Prince steps -------------------------------------------------------------------------

def _runge_kutta_step(func: Callable, y0: Any, f0: Any, t0: Any, dt: Any) -> tuple:
    """One step of size ``dt``: ``(y1, f(y1), error estimate, the seven stages)``."""
    alpha = fnp.array(_ALPHA, dtype=dt.dtype)
    beta = fnp.array(_BETA, dtype=f0.dtype)
    step = dt.astype(f0.dtype)

    def stage(i, k):
        yi = y0 + step * fnp.dot(beta[i - 1, :], k, precision=_HIGHEST)
        return k.at[i, :].set(func(yi, t0 + dt * alpha[i - 1]))

    k = fnp.zeros((7, f0.shape[0]), f0.dtype).at[0, :].set(f0)
    k = lax.fori_loop(1, 7, stage, k)
    y1 = step * fnp.dot(fnp.array(_C_SOL, dtype=f0.dtype), k, precision=_HIGHEST) + y0
    error = step * fnp.dot(fnp.array(_C_ERROR, dtype=f0.dtype), k, precision=_HIGHEST)
    return y1, k[-1], error, k


def _interpolant(y0: Any, y1: Any, k: Any, dt: Any) -> Any:
    """The 4th-order polynomial (coefficients, highest first) through the step, in [0, 1]."""
    step = dt.astype(y0.dtype)
    y_mid = y0 + step * fnp.dot(fnp.array(_C_MID, dtype=y0.dtype), k, precision=_HIGHEST)
    dy0, dy1 = k[0], k[-1]
    a = -2. * step * dy0 + 2. * step * dy1 - 8. * y0 - 8. * y1 + 16. * y_mid
    b = 5. * step * dy0 - 3. * step * dy1 + 18. * y0 + 14. * y1 - 32. * y_mid
    c = -4. * step * dy0 + step * dy1 - 11. * y0 - 5. * y1 + 16. * y_mid
    return fnp.stack([a, b, c, step * dy0, y0])


def _initial_step_size(func: Callable, t0: Any, y0: Any, order: int, rtol: float, atol: float, f0: Any) -> Any:
    """Hairer, Norsett and Wanner's starting step (Solving ODEs I, II.4)."""
    dtype = y0.dtype
    scale = (atol + fnp.abs(y0) * rtol).astype(dtype)
    d0 = fnp.linalg.norm(y0 / scale)
    d1 = fnp.linalg.norm(f0 / scale)
    h0 = fnp.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / d1)
    f1 = func(y0 + h0.astype(dtype) * f0, t0 + h0)
    d2 = fnp.linalg.norm((f1 - f0) / scale) / h0
    h1 = fnp.where((d1 <= 1e-15) & (d2 <= 1e-15), fnp.maximum(1e-6, h0 * 1e-3),
                   (0.01 / fnp.maximum(d1, d2)) ** (1. / (order + 1.)))
    return fnp.minimum(100. * h0, h1)


def _abs2(x: Any) -> Any:
    return fnp.real(x) ** 2 + fnp.imag(x) ** 2 if fnp.iscomplexobj(x) else x ** 2


def _error_ratio(error: Any, rtol: float, atol: float, y0: Any, y1: Any) -> Any:
    tolerance = atol + rtol * fnp.maximum(fnp.abs(y0), fnp.abs(y1))
    return fnp.sqrt(fnp.mean(_abs2(error / tolerance.astype(error.dtype))))


def _next_step_size(last: Any, ratio: Any, safety: float = 0.9, ifactor: float = 10.0, dfactor: float = 0.2,
                    order: float = 5.0) -> Any:
    dfactor = fnp.where(ratio < 1, 1.0, dfactor)
    factor = fnp.minimum(ifactor, fnp.maximum(ratio ** (-1.0 / order) * safety, dfactor))
    return fnp.where(ratio == 0, last * ifactor, last * factor)


# --- the integration and its adjoint -----------------------------------------------------------------

def _integrate(func, rtol, atol, mxstep, hmax, y0, ts, *args):
    """``y`` at every time in ``ts`` (a ``(len(ts), y0.size)`` array) for the raveled ``func``."""
    def f(y, t):
        return func(y, t, *args)

    def advance(carry, target_t):
        def not_there(state):
            i, _, _, t, dt, _, _ = state
            return (t < target_t) & (i < mxstep) & (dt > 0)

        def step(state):
            i, y, fy, t, dt, last_t, coeff = state
            y1, f1, error, k = _runge_kutta_step(f, y, fy, t, dt)
            ratio = _error_ratio(error, rtol, atol, y, y1)
            next_dt = fnp.clip(_next_step_size(dt, ratio), 0., hmax)
            accepted = [i + 1, y1, f1, t + dt, next_dt, t, _interpolant(y, y1, k, dt)]
            rejected = [i + 1, y, fy, t, next_dt, last_t, coeff]
            return [fnp.where(ratio <= 1., a, r) for a, r in zip(accepted, rejected)]

        _, *carry = lax.while_loop(not_there, step, [0, *carry])
        _, _, t, _, last_t, coeff = carry
        where = (target_t - last_t) / (t - last_t)
        return carry, fnp.polyval(coeff, where.astype(coeff.dtype))

    f0 = f(y0, ts[0])
    dt = fnp.clip(_initial_step_size(f, ts[0], y0, 4, rtol, atol, f0), 0., hmax)
    carry = [y0, f0, ts[0], dt, ts[0], fnp.stack([y0] * 5)]
    _, ys = lax.scan(advance, carry, ts[1:])
    return fnp.concatenate([y0[None], ys])


def _integrate_fwd(func, rtol, atol, mxstep, hmax, y0, ts, *args):
    ys = _odeint(func, rtol, atol, mxstep, hmax, y0, ts, *args)
    return ys, (ys, ts, args)


def _integrate_bwd(func, rtol, atol, mxstep, hmax, res, g):
    """The adjoint pass: between consecutive output times, integrate backwards the state, its
    adjoint ``a`` (``da/dt = -a df/dy``), and the accumulating ``dL/dt0`` and ``dL/dargs``."""
    ys, ts, args = res

    def augmented(state, t, *args):
        y, y_bar = state[0], state[1]
        y_dot, pullback = vjp(func, y, -t, *args)
        return (-y_dot, *pullback(y_bar))

    def back(carry, i):
        y_bar, t0_bar, args_bar = carry
        t_bar = fnp.real(fnp.dot(func(ys[i], ts[i], *args), g[i], precision=_HIGHEST))
        t0_bar = t0_bar - t_bar
        _, y_bar, t0_bar, args_bar = odeint(augmented, (ys[i], y_bar, t0_bar, args_bar),
                                            fnp.stack([-ts[i], -ts[i - 1]]), *args, rtol=rtol, atol=atol,
                                            mxstep=mxstep, hmax=hmax)
        y_bar, t0_bar, args_bar = tree.tree_map(operator.itemgetter(1), (y_bar, t0_bar, args_bar))
        return (y_bar + g[i - 1], t0_bar, args_bar), t_bar

    start = (g[-1], fnp.zeros((), ts.dtype), tree.tree_map(fnp.zeros_like, args))
    (y_bar, t0_bar, args_bar), ts_bar = lax.scan(back, start, fnp.arange(ts.shape[0] - 1, 0, -1))
    return (y_bar, fnp.concatenate([t0_bar[None], ts_bar[::-1]]), *args_bar)


_odeint = custom_vjp(_integrate, nondiff_argnums=(0, 1, 2, 3, 4))
_odeint.defvjp(_integrate_fwd, _integrate_bwd)


def _solve(func, rtol, atol, mxstep, hmax, y0, ts, *args):
    flat_y0, unravel = _ravel(y0)
    ys = _odeint(_raveled_fun(func, unravel), rtol, atol, mxstep, hmax, flat_y0, ts, *args)
    return unravel(ys)


_solve_jit = jit(_solve, static_argnums=(0, 1, 2, 3, 4))


def _check_args(args: tuple) -> None:
    for leaf in tree.tree_leaves(args):
        try:
            get_aval(leaf)
        except TypeError:
            raise TypeError(f"The contents of odeint *args must be arrays or scalars, but got {leaf}.") from None


def odeint(func: Callable, y0: Any, t: Any, *args: Any, rtol: float = 1.4e-8, atol: float = 1.4e-8,
           mxstep: float = math.inf, hmax: float = math.inf) -> Any:
    """``jax.experimental.ode.odeint(func, y0, t, *args, rtol=1.4e-8, atol=1.4e-8, mxstep=inf,
    hmax=inf)``: integrate ``dy/dt = func(y, t, *args)`` from ``y(t[0]) = y0`` by adaptive
    Dormand-Prince, returning ``y`` at every time in ``t`` (strictly increasing floats), a pytree
    like ``y0`` with a new leading axis of length ``len(t)``.

    ``rtol``/``atol`` bound the local error, ``mxstep`` the steps per output interval (the
    integration stops there, silently, as in JAX) and ``hmax`` the step size. ``args`` are arrays or
    pytrees of arrays. Differentiable in reverse mode in ``y0``, ``t``, ``args`` and what ``func``
    closes over (adjoint method).

    >>> odeint(lambda y, t: -y, 1.0, fnp.array([0., 1.]))[-1]   # exp(-1)
    Array(0.36787945, dtype=float32)
    """
    _check_args(args)
    t = fnp.asarray(t)
    if not fnp.issubdtype(t.dtype, fnp.floating):
        raise TypeError(f"t must be an array of floats, but got {t}.")
    if t.ndim != 1 or t.shape[0] < 1:
        raise ValueError(f"odeint: t must be a 1-d array of at least one time, got shape {t.shape}")
    converted, consts = closure_convert(func, y0, t[0], *args)
    return _solve_jit(converted, rtol, atol, mxstep, hmax, y0, t, *args, *consts)
