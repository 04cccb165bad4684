"""Closure conversion and implicitly differentiated linear solves, for the public modules whose
derivatives are defined by the problem rather than by the iterations that solve it
(``fgrad.scipy.sparse.linalg``, ``fgrad.experimental.ode``).

``custom_vjp`` gives no derivative to values a function closes over, so a user's operator (a
``matvec`` closing over a matrix, an ODE right-hand side closing over parameters) is first traced
once and its closed-over values made explicit arguments (``closure_convert``, as
``jax.closure_convert``). ``linear_solve`` then differentiates ``x = A^{-1} b`` the way
``jax.lax.custom_linear_solve`` does: the cotangent ``g`` of ``x`` solves the transposed system
``A^T l = g``; ``b`` receives ``l`` and ``A``'s values receive ``-(dA/dvalues)^T (l x^T)``. The
transposed solve is itself a ``linear_solve``, so higher derivatives work too.
"""
from __future__ import annotations

from typing import Any, Callable

from fgrad import numpy as fnp
from fgrad import tree
from fgrad.core.trace import get_aval
from fgrad.ops.control import run_jaxpr, trace_body
from fgrad.transforms.custom import custom_vjp
from fgrad.transforms.vjp import vjp

__all__ = ["closure_convert", "linear_solve"]


def closure_convert(fun: Callable, *example_args: Any) -> tuple[Callable, list]:
    """``(converted, consts)``: ``converted(*args, *consts) == fun(*args)``, where ``consts`` are
    the values ``fun`` closes over (traced at ``example_args``' shapes and dtypes), now explicit
    arguments that transforms can differentiate and batch."""
    leaves, in_tree = tree.tree_flatten(example_args)
    out_tree_box: list = []

    def flat(*xs):
        out = fun(*tree.tree_unflatten(in_tree, list(xs)))
        out_leaves, out_tree = tree.tree_flatten(out)
        out_tree_box.append(out_tree)
        return out_leaves

    closed, consts = trace_body(flat, [get_aval(leaf) for leaf in leaves])
    n_consts = len(consts)

    def converted(*args_and_consts):
        args, hoisted = args_and_consts[:len(args_and_consts) - n_consts], args_and_consts[len(args_and_consts) - n_consts:]
        arg_leaves, got_tree = tree.tree_flatten(tuple(args))
        if got_tree != in_tree:
            raise TypeError(f"closure_convert: the converted function was traced for arguments of structure "
                            f"{in_tree}, got {got_tree}")
        return tree.tree_unflatten(out_tree_box[0], run_jaxpr(closed, [*hoisted, *arg_leaves]))

    return converted, list(consts)


def is_inexact(value: Any) -> bool:
    """Whether ``value`` has a floating or complex dtype (the ones derivatives reach)."""
    return fnp.issubdtype(get_aval(value).dtype, fnp.inexact)


def _transposed(pure_matvec: Callable) -> Callable:
    """``(v, consts) -> A^T v`` for the linear ``pure_matvec`` (its VJP, taken at zero: any point
    will do)."""
    def vecmat(v, consts):
        _, pullback = vjp(lambda x: pure_matvec(x, consts), tree.tree_map(fnp.zeros_like, v))
        return pullback(v)[0]
    return vecmat


def _pure_solver(solve: Callable, pure_matvec: Callable, b: Any, mv_consts: tuple) -> tuple[Callable, tuple]:
    """``(pure, consts)`` with ``pure(b, mv_consts, consts) == solve(matvec, b)``: what ``solve``
    closes over (a starting guess, tolerances, a preconditioner) made explicit, so the transposed
    solve can run later from saved values instead of from tracers of a finished trace."""
    def traced(b, cs):
        return solve(lambda x: pure_matvec(x, cs), b)
    converted, consts = closure_convert(traced, b, mv_consts)
    return (lambda b, cs, own: converted(b, cs, *own)), tuple(consts)


def linear_solve(matvec: Callable, b: Any, solve: Callable, transpose_solve: Callable,
                 symmetric: bool = False) -> Any:
    """``solve(matvec, b)``, a solution of ``matvec(x) = b``, differentiated implicitly (JAX's
    ``lax.custom_linear_solve``). ``transpose_solve(vecmat, g)`` solves the transposed system
    (``symmetric``: ``solve`` and ``matvec`` serve for it). Values closed over by the solves get no
    derivative, as in JAX."""
    converted, consts = closure_convert(matvec, b)
    pure_matvec = lambda x, cs: converted(x, *cs)  # noqa: E731
    mv_consts = tuple(consts)
    pure_vecmat = pure_matvec if symmetric else _transposed(pure_matvec)
    pure_solve, s_consts = _pure_solver(solve, pure_matvec, b, mv_consts)
    if symmetric:
        pure_tsolve, t_consts = pure_solve, s_consts
    else:
        pure_tsolve, t_consts = _pure_solver(transpose_solve, pure_vecmat, b, mv_consts)
    solver = _solve_fn(pure_matvec, pure_vecmat, pure_solve, pure_tsolve)
    return solver(b, mv_consts, s_consts, t_consts)


def _solve_fn(pure_matvec: Callable, pure_vecmat: Callable, pure_solve: Callable, pure_tsolve: Callable
              ) -> custom_vjp:
    """``f(b, mv_consts, s_consts, t_consts) = A^{-1} b`` whose reverse rule is the transposed
    solve, itself such a function (so derivatives of derivatives use the rule again)."""
    def run(b, mv_consts, s_consts, t_consts):
        return pure_solve(b, mv_consts, s_consts)

    def fwd(b, mv_consts, s_consts, t_consts):
        # the solver itself, not ``run``: a derivative of this derivative then sees this rule
        # instead of the iterations (reverse mode cannot go through their while_loop)
        x = solver(b, mv_consts, s_consts, t_consts)
        return x, (x, mv_consts, s_consts, t_consts)

    def bwd(res, g):
        x, mv_consts, s_consts, t_consts = res
        transposed = _solve_fn(pure_vecmat, pure_matvec, pure_tsolve, pure_solve)
        lam = transposed(g, mv_consts, t_consts, s_consts)
        diff = [i for i, c in enumerate(mv_consts) if is_inexact(c)]
        _, pullback = vjp(lambda *cs: pure_matvec(x, _with(mv_consts, diff, cs)), *[mv_consts[i] for i in diff])
        cts = pullback(tree.tree_map(fnp.negative, lam))
        const_cts = [None] * len(mv_consts)
        for i, ct in zip(diff, cts):
            const_cts[i] = ct
        return lam, tuple(const_cts), None, None

    solver = custom_vjp(run)
    solver.defvjp(fwd, bwd)
    return solver


def _with(values: tuple, positions: list[int], replacements: tuple) -> tuple:
    out = list(values)
    for i, r in zip(positions, replacements):
        out[i] = r
    return tuple(out)
