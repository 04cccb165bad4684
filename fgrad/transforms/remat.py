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
from fgrad.core import vma
from fgrad.core.ir import ClosedJaxpr, Eqn, Jaxpr, Var, call_body_params
from fgrad.core.primitive import Primitive
from fgrad.core.trace import dce_jaxpr, dce_rules, get_aval, set_interpreter, trace_to_jaxpr
from fgrad.ops.control import _numpy_outputs, hoist_consts, run_jaxpr, trace_body
from fgrad.transforms.jvp import jvp_jaxpr, jvp_rules, symbolic_zero_rules
from fgrad.transforms.partial_eval import partial_eval_jaxpr, partial_eval_rules
from fgrad.transforms.vjp import is_undefined, transpose_jaxpr, transpose_rules
from fgrad.transforms.vmap import vmap_jaxpr, vmap_rules

__all__ = ["checkpoint", "remat", "checkpoint_policies"]

remat_p = Primitive("remat", multiple_results=True)
remat_p.def_impl(lambda *args, jaxpr, prevent_cse, policy: _numpy_outputs(jaxpr, args))
remat_p.def_abstract_eval(lambda *avals, jaxpr, prevent_cse, policy: jaxpr.out_avals)
vma.vma_rules[remat_p] = vma.typed_by_body
call_body_params[remat_p] = "jaxpr"


def _bind_remat(args: Sequence[Any], jaxpr: ClosedJaxpr, prevent_cse: bool, policy) -> list[Any]:
    jaxpr, consts = hoist_consts(jaxpr)
    return remat_p.bind(*consts, *args, jaxpr=jaxpr, prevent_cse=prevent_cse, policy=policy)


def _remat_jvp(primals, tangents, jaxpr, prevent_cse, policy):
    nonzero = [t is not None for t in tangents]
    jvp_closed, out_nonzero = jvp_jaxpr(jaxpr, nonzero, instantiate=False)
    outs = _bind_remat([*primals, *[t for t in tangents if t is not None]], jvp_closed, prevent_cse, policy)
    n = len(jaxpr.out_avals)
    out_tangents = iter(outs[n:])
    return outs[:n], [next(out_tangents) if nz else None for nz in out_nonzero]


def _remat_vmap(axis, vals, dims, jaxpr, prevent_cse, policy):
    batched, out_dims = vmap_jaxpr(jaxpr, axis, dims)
    return _bind_remat(vals, batched, prevent_cse, policy), out_dims


def _remat_partial_eval(interp, args, jaxpr, prevent_cse, policy):
    """Known outputs are computed now; the unknown ones are staged as a remat of the body that
    recomputes its residuals from the known inputs (and the residuals ``policy`` saves)."""
    unknowns = [interp.is_unknown(a) for a in args]
    known, unknown, out_unknowns, _ = partial_eval_jaxpr(jaxpr, unknowns)
    n_known_out = out_unknowns.count(False)
    residuals = known.jaxpr.outvars[n_known_out:]
    recompute, saved = _recompute_residuals(known, residuals, policy)
    forward = _keep_outputs(known, [*known.jaxpr.outvars[:n_known_out], *saved])
    known_args = [a for a, u in zip(args, unknowns) if not u]
    unknown_args = [a for a, u in zip(args, unknowns) if u]
    with set_interpreter(interp.parent):
        forward_outs = run_jaxpr(forward, known_args)
    known_outs, saved_values = forward_outs[:n_known_out], forward_outs[n_known_out:]
    n_known_in, n_saved = len(known_args), len(saved)

    def staged_body(*xs):
        res = run_jaxpr(recompute, xs[:n_known_in + n_saved])
        return run_jaxpr(unknown, [*res, *xs[n_known_in + n_saved:]])

    in_avals = [*[get_aval(a) for a in known_args], *[v.aval for v in saved], *[get_aval(a) for a in unknown_args]]
    body, consts = hoist_consts(trace_to_jaxpr(staged_body, in_avals))
    unknown_outs = interp.stage(remat_p, [*consts, *known_args, *saved_values, *unknown_args],
                                dict(jaxpr=body, prevent_cse=prevent_cse, policy=policy)) if any(out_unknowns) else []
    known_it, unknown_it = iter(known_outs), iter(unknown_outs)
    return [next(unknown_it) if u else next(known_it) for u in out_unknowns]


def _saveable(jaxpr: Jaxpr, policy) -> list[Var]:
    """Outputs of the (single-result) equations ``policy`` lets us keep for the backward pass."""
    if policy is None:
        return []
    return [eqn.outvars[0] for eqn in jaxpr.eqns if not eqn.primitive.multiple_results
            and policy(eqn.primitive, *[a.aval for a in eqn.invars], **eqn.params)]


def _keep_outputs(closed: ClosedJaxpr, outvars: Sequence[Any]) -> ClosedJaxpr:
    j = closed.jaxpr
    pruned, _ = dce_jaxpr(Jaxpr(j.constvars, j.invars, j.eqns, outvars))
    keep = set(pruned.constvars)
    return ClosedJaxpr(pruned, [c for v, c in zip(j.constvars, closed.consts) if v in keep])


def _recompute_residuals(known: ClosedJaxpr, residuals: Sequence[Any], policy
                         ) -> tuple[ClosedJaxpr, list[Var]]:
    """``(known inputs, saved values) -> residuals``, recomputing all but the saved values.

    Saved values are the saveable ones the residuals actually depend on."""
    j = known.jaxpr
    candidates = _saveable(j, policy)
    produced_by_candidate = set(candidates)
    eqns = [e for e in j.eqns if not any(v in produced_by_candidate for v in e.outvars)]
    pruned, used = dce_jaxpr(Jaxpr(j.constvars, [*j.invars, *candidates], eqns, residuals))
    saved = [v for v, u in zip(candidates, used[len(j.invars):]) if u]
    pruned = Jaxpr(pruned.constvars, [*j.invars, *saved], pruned.eqns, pruned.outvars)
    keep = set(pruned.constvars)
    return ClosedJaxpr(pruned, [c for v, c in zip(j.constvars, known.consts) if v in keep]), saved


def _remat_transpose(cts, *args, jaxpr, prevent_cse, policy):
    linear = [is_undefined(a) for a in args]
    transposed = transpose_jaxpr(jaxpr, linear)
    cts = [ct for ct in cts]
    outs = iter(run_jaxpr(transposed, [*[a for a in args if not is_undefined(a)], *cts]))
    return [next(outs) if lin else None for lin in linear]


def _remat_dce(used_outputs, eqn):
    jaxpr = eqn.params["jaxpr"]
    pruned, used_inputs = dce_jaxpr(jaxpr.jaxpr, used_outputs)
    pruned = Jaxpr([], [v for v, u in zip(pruned.invars, used_inputs) if u], pruned.eqns, pruned.outvars)
    return Eqn(remat_p, [a for a, u in zip(eqn.invars, used_inputs) if u],
               [v for v, u in zip(eqn.outvars, used_outputs) if u], dict(eqn.params, jaxpr=ClosedJaxpr(pruned, [])))


jvp_rules[remat_p] = _remat_jvp
symbolic_zero_rules.add(remat_p)   # symbolic-zero tangents stay symbolic inside the call
vmap_rules[remat_p] = _remat_vmap
partial_eval_rules[remat_p] = _remat_partial_eval
transpose_rules[remat_p] = _remat_transpose
dce_rules[remat_p] = _remat_dce


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
