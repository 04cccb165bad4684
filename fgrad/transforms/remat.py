"""``checkpoint`` (alias ``remat``): trade compute for memory in reverse mode.

A checkpointed function binds ``remat_p`` around its traced body. When ``grad``
linearizes it, the forward values run now, but instead of keeping the body's
intermediate values as residuals for the backward pass, only its *inputs* are kept
(plus whatever ``policy`` marks saveable); the backward pass recomputes the rest::

    f = checkpoint(lambda x: fnp.sin(fnp.sin(x)))
    make_jaxpr(grad(...))   # shows the sin recomputed on the backward side

``policy(prim, *avals, **params) -> bool`` says which primitives' outputs may be
saved instead of recomputed (``checkpoint_policies`` has the usual ones).
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

from fgrad import tree
from fgrad.core.trace import get_aval
from fgrad.ops.call import remat_p
from fgrad.ops.control import trace_body
from fgrad.ops.misc import checkpoint_name, checkpoint_name_p

__all__ = ["checkpoint", "remat", "checkpoint_policies", "checkpoint_name"]

class checkpoint_policies:
    """Policies for ``checkpoint(..., policy=...)``: which values to save instead of recompute."""

    @staticmethod
    def nothing_saveable(prim, *avals, **params) -> bool:
        """Recompute everything (the default)."""
        return False

    @staticmethod
    def everything_saveable(prim, *avals, **params) -> bool:
        """Save everything (no rematerialisation; as if not checkpointed)."""
        return True

    @staticmethod
    def dots_saveable(prim, *avals, **params) -> bool:
        """Save matrix products (the expensive part); recompute elementwise work."""
        return prim.name in ("dot_general", "conv_general_dilated")

    dots_with_no_batch_dims_saveable = dots_saveable
    checkpoint_dots = dots_saveable
    checkpoint_dots_with_no_batch_dims = dots_saveable

    @staticmethod
    def save_only_these_names(*names: Any) -> Callable:
        """Save the values marked by ``checkpoint_name`` with one of ``names``; recompute the rest."""
        return lambda prim, *avals, **params: prim is checkpoint_name_p and params["name"] in names

    @staticmethod
    def save_any_names_but_these(*names: Any) -> Callable:
        """Save the values marked by ``checkpoint_name`` with a name not in ``names``."""
        return lambda prim, *avals, **params: prim is checkpoint_name_p and params["name"] not in names

    @staticmethod
    def save_anything_except_these_names(*names: Any) -> Callable:
        """Save every value but those marked by ``checkpoint_name`` with one of ``names``."""
        return lambda prim, *avals, **params: not (prim is checkpoint_name_p and params["name"] in names)

    @staticmethod
    def save_from_both_policies(policy_1: Callable, policy_2: Callable) -> Callable:
        """Save what either policy saves."""
        return lambda prim, *avals, **params: policy_1(prim, *avals, **params) or policy_2(prim, *avals, **params)


def checkpoint(fun: Callable | None = None, *, prevent_cse: bool = True, policy: Callable | None = None,
               static_argnums: int | Sequence[int] = ()) -> Callable:
    """Make reverse mode recompute ``fun``'s intermediate values instead of storing them.

    >>> loss = lambda w, x: fnp.sum(checkpoint(block)(w, x))   # block's activations are recomputed   # doctest: +SKIP
    """
    if fun is None:
        return functools.partial(checkpoint, prevent_cse=prevent_cse, policy=policy, static_argnums=static_argnums)
    if not callable(fun):
        raise TypeError(f"checkpoint expects a function, got {type(fun).__name__}")
    if policy is not None and not callable(policy):
        raise TypeError(f"checkpoint: policy must be a function (prim, *avals, **params) -> bool, got {policy!r}")
    static = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)

    @functools.wraps(fun)
    def checkpointed(*args, **kwargs):
        dynamic = [a for i, a in enumerate(args) if i not in static]
        leaves, in_tree = tree.tree_flatten((dynamic, kwargs))
        out_box: list = []

        def flat(*xs):
            dyn, kw = tree.tree_unflatten(in_tree, list(xs))
            it = iter(dyn)
            out = fun(*[a if i in static else next(it) for i, a in enumerate(args)], **kw)
            out_leaves, out_tree = tree.tree_flatten(out)
            out_box.append(out_tree)
            return out_leaves

        body, consts = trace_body(flat, [get_aval(x) for x in leaves])
        outs = remat_p.bind(*consts, *leaves, jaxpr=body, prevent_cse=bool(prevent_cse), policy=policy)
        return tree.tree_unflatten(out_box[0], outs)

    return checkpointed


remat = checkpoint
