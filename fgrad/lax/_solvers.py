"""``jax.lax.custom_linear_solve`` and ``jax.lax.custom_root``: solvers whose derivatives come
from implicit differentiation, never from differentiating the solver's iterations."""
from __future__ import annotations

from typing import Any, Callable

from fgrad import tree
from fgrad.core import dtypes
from fgrad.core.trace import get_aval
from fgrad.ops.control import trace_body
from fgrad.ops.linear_solve import bind_linear_solve
from fgrad.ops.misc import stop_gradient
from fgrad.ops import elementwise as ew
from fgrad.core.ir import eval_jaxpr
from fgrad.transforms.custom import custom_jvp
from fgrad.transforms.jvp import jvp, zeros_like_aval
from fgrad.transforms.vjp import vjp

__all__ = ["custom_linear_solve", "custom_root"]


def _traced(name: str, fun: Callable, avals: list, in_tree: Any, want_tree: Any, has_aux: bool = False):
    """``fun`` on the pytree ``in_tree`` of ``avals`` as a const-free jaxpr and its constants;
    its (first, with ``has_aux``) output must have the structure ``want_tree`` and ``avals``."""
    trees = []

    def flat(*leaves):
        out = fun(tree.tree_unflatten(in_tree, list(leaves)))
        main, aux = out if has_aux else (out, None)
        main_leaves, main_tree = tree.tree_flatten(main)
        aux_leaves, _ = tree.tree_flatten(aux)
        trees.append((main_tree, aux))
        return [*main_leaves, *aux_leaves]
    closed, consts = trace_body(flat, avals)
    main_tree = trees[0][0]
    if main_tree != want_tree:
        raise TypeError(f"custom_linear_solve: {name}() output pytree structure must match b, got {main_tree} and "
                        f"{want_tree}")
    got = [a.strip_weak_type() for a in closed.out_avals[:len(avals)]]
    if [(a.shape, a.dtype) for a in got] != [(a.shape, a.dtype) for a in avals]:
        raise TypeError(f"custom_linear_solve: {name}() output shapes/dtypes must match b: got "
                        f"{[a.str_short() for a in got]}, expected {[a.str_short() for a in avals]}")
    return closed, consts, trees[0][1]


def custom_linear_solve(matvec: Callable, b: Any, solve: Callable, transpose_solve: Callable | None = None,
                        symmetric: bool = False, has_aux: bool = False) -> Any:
    """``jax.lax.custom_linear_solve(matvec, b, solve, transpose_solve=None, symmetric=False,
    has_aux=False)``: ``x = solve(matvec, b)`` for a linear ``matvec`` (pytree to pytree of
    ``b``'s structure), differentiated implicitly: forward mode solves ``matvec(dx) = db -
    dmatvec(x)`` with ``solve``; reverse mode solves the transposed system with
    ``transpose_solve(vecmat, ct)`` (``vecmat``: matvec's transpose; ``symmetric=True`` reuses
    ``solve``). ``solve`` is never differentiated, so it may be iterative. With ``has_aux``,
    ``solve`` (and ``transpose_solve``) return ``(x, aux)`` and so does this function.

    >>> x = custom_linear_solve(lambda v: A @ v, b, lambda mv, r: fnp.linalg.solve(A, r),
    ...                         symmetric=True)   # doctest: +SKIP
    """
    b_leaves, b_tree = tree.tree_flatten(b)
    avals = [get_aval(v).strip_weak_type() for v in b_leaves]
    if symmetric:
        transpose_solve = solve
    matvec_j, mv_consts, _ = _traced("matvec", matvec, avals, b_tree, b_tree)
    run_matvec = lambda x: _run(matvec_j, mv_consts, x, b_tree)
    solve_j, s_consts, aux = _traced("solve", lambda r: solve(run_matvec, r), avals, b_tree, b_tree, has_aux)
    if transpose_solve is not None:
        run_vecmat = _vecmat(matvec, b)
        ts_j, ts_consts, _ = _traced("transpose_solve", lambda r: transpose_solve(run_vecmat, r), avals, b_tree,
                                     b_tree, has_aux)
    else:
        ts_j, ts_consts = None, []
    outs = bind_linear_solve(mv_consts, s_consts, ts_consts, b_leaves, matvec=matvec_j, solve=solve_j,
                             transpose_solve=ts_j)
    x = tree.tree_unflatten(b_tree, outs[:len(b_leaves)])
    if not has_aux:
        return x
    return x, tree.tree_unflatten(tree.tree_structure(aux), outs[len(b_leaves):])


def _run(closed, consts, x, b_tree) -> Any:
    return tree.tree_unflatten(b_tree, eval_jaxpr(closed.jaxpr, closed.consts, *consts, *tree.tree_leaves(x)))


def _vecmat(matvec: Callable, b: Any) -> Callable:
    """The transpose of the linear ``matvec`` (the pytree function ``ct -> ct @ A``; a linear
    function's pullback is the same at every point: zero is taken)."""
    zero = tree.tree_map(lambda v: zeros_like_aval(get_aval(v).strip_weak_type()), b)

    def vecmat(ct):
        _, pullback = vjp(matvec, zero)
        return pullback(ct)[0]
    return vecmat


def custom_root(f: Callable, initial_guess: Any, solve: Callable, tangent_solve: Callable,
                has_aux: bool = False) -> Any:
    """``jax.lax.custom_root(f, initial_guess, solve, tangent_solve, has_aux=False)``: the root
    ``x = solve(f, initial_guess)`` of ``f(x) = 0``, differentiated implicitly: its tangent is
    ``-tangent_solve(g, df)``, with ``g`` the linearization of ``f`` in ``x`` at the root and
    ``df`` ``f``'s change through the values it closes over. ``solve`` is never differentiated
    and ``initial_guess`` gets no derivative. ``tangent_solve(g, y)`` solves ``g(x) = y`` (e.g.
    ``lambda g, y: y / g(1.0)`` for scalars); reverse mode transposes it, so keep it linear (or
    use ``custom_linear_solve`` inside it). With ``has_aux``, ``solve`` returns ``(x, aux)``.
    """
    guess_leaves, guess_tree = tree.tree_flatten(initial_guess)
    avals = [get_aval(v).strip_weak_type() for v in guess_leaves]
    f_j, f_consts, _ = _traced("f", f, avals, guess_tree, guess_tree)
    f_at = lambda consts, x: _run(f_j, consts, x, guess_tree)

    def solve_with(consts, guess):
        return solve(lambda x: f_at(consts, x), guess)

    @custom_jvp
    def root(consts, guess):
        return solve_with(consts, stop_gradient(guess))

    @root.defjvp
    def root_jvp(primals, tangents):
        consts, guess = primals
        out = root(consts, guess)
        x = out[0] if has_aux else out
        _, f_dot = jvp(lambda c: f_at(c, x), (consts,), (tangents[0],))
        x_dot = tangent_solve(lambda v: jvp(lambda y: f_at(consts, y), (x,), (v,))[1], f_dot)
        x_dot = tree.tree_map(ew.neg, x_dot)
        if has_aux:
            return out, (x_dot, tree.tree_map(lambda a: ew.mul(a, 0) if _float(a) else a, out[1]))
        return out, x_dot
    out = root(list(f_consts), initial_guess)
    return (out[0], tree.tree_map(stop_gradient, out[1])) if has_aux else out


def _float(a: Any) -> bool:
    return dtypes.is_differentiable(get_aval(a).dtype)
