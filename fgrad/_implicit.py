"""Closure conversion, for the public modules whose derivatives are defined by the problem
rather than by the iterations that solve it (``fgrad.experimental.ode``).

``custom_vjp`` gives no derivative to values a function closes over, so a user's function (an
ODE right-hand side closing over parameters) is first traced once and its closed-over values
made explicit arguments (``closure_convert``, as ``jax.closure_convert``).
"""
from __future__ import annotations

from typing import Any, Callable

from fgrad import tree
from fgrad.core.trace import get_aval
from fgrad.ops.control import run_jaxpr, trace_body

__all__ = ["closure_convert"]


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
