"""Call-like primitives: ``jit`` (a call of a staged, compiled function) and ``remat`` (a call
whose body is recomputed on the backward pass instead of saving its intermediates), with
their transform rules. The user-facing ``jit`` and ``checkpoint`` live in
``fgrad/transforms/``; ``jit_p``'s implementation (compile, then run) is registered by
``transforms/jit.py``, which owns compilation, so the primitive itself needs nothing above
the interpreters.
"""
from __future__ import annotations

from typing import Any, Sequence

from fgrad.core import vma
from fgrad.core.partition import call_rule, partition_rules
from fgrad.core.ir import ClosedJaxpr, Eqn, Jaxpr, Var, call_body_params, closure_convert
from fgrad.core.primitive import Primitive
from fgrad.core.rules import (is_undefined, jvp_rules, partial_eval_rules, symbolic_zero_rules, transpose_rules,
                              vmap_rules)
from fgrad.core.trace import dce_jaxpr, dce_rules, get_aval, set_interpreter, trace_to_jaxpr
from fgrad.ops.control import _numpy_outputs, hoist_consts, run_jaxpr
from fgrad.ops.misc import checkpoint_name_p
from fgrad.transforms.jvp import jvp_jaxpr
from fgrad.transforms.partial_eval import partial_eval_jaxpr
from fgrad.transforms.vjp import transpose_jaxpr
from fgrad.transforms.vmap import vmap_jaxpr


# --- jit_p -------------------------------------------------------------------------------------------

jit_p = Primitive("jit", multiple_results=True)
jit_p.def_abstract_eval(lambda *avals, jaxpr, name: jaxpr.out_avals)
vma.vma_rules[jit_p] = vma.typed_by_body
call_body_params[jit_p] = "jaxpr"

def _bind_closed(closed: ClosedJaxpr, args: Sequence[Any], name: str) -> list[Any]:
    converted, consts = closure_convert(closed)
    return jit_p.bind(*consts, *args, jaxpr=converted, name=name)


def _jit_jvp(primals, tangents, jaxpr, name):
    nonzero = [t is not None for t in tangents]
    jvp_closed, _ = jvp_jaxpr(jaxpr, nonzero, instantiate=True)
    outs = _bind_closed(jvp_closed, [*primals, *[t for t in tangents if t is not None]], f"jvp({name})")
    n = len(jaxpr.out_avals)
    return outs[:n], outs[n:]


def _jit_vmap(axis, vals, dims, jaxpr, name):
    batched, out_dims = vmap_jaxpr(jaxpr, axis, dims)
    return _bind_closed(batched, vals, f"vmap({name})"), out_dims


def _jit_partial_eval(interp, args, jaxpr, name):
    unknowns = [interp.is_unknown(a) for a in args]
    known, unknown, out_unknowns, _ = partial_eval_jaxpr(jaxpr, unknowns)
    known_args = [a for a, u in zip(args, unknowns) if not u]
    known_conv, known_consts = closure_convert(known)
    with set_interpreter(interp.parent):
        known_outs = jit_p.bind(*known_consts, *known_args, jaxpr=known_conv, name=name)
    n_known_outs = len(out_unknowns) - sum(out_unknowns)
    residuals = known_outs[n_known_outs:]
    unknown_outs = interp.stage(jit_p, [*residuals, *[a for a, u in zip(args, unknowns) if u]],
                                dict(jaxpr=unknown, name=f"linear({name})"))
    known_it, unknown_it = iter(known_outs[:n_known_outs]), iter(unknown_outs)
    return [next(unknown_it) if u else next(known_it) for u in out_unknowns]


def _jit_transpose(cts, *args, jaxpr, name):
    linear = [is_undefined(a) for a in args]
    transposed = transpose_jaxpr(jaxpr, linear)
    cts = [ct for ct in cts]
    outs = _bind_closed(transposed, [*[a for a in args if not is_undefined(a)], *cts], f"transpose({name})")
    it = iter(outs)
    return [next(it) if lin else None for lin in linear]


def _call_dce(used_outputs, eqn):
    """Dead-code elimination of a call (``jit_p``, ``remat_p``): drop the outputs nobody reads,
    the body's equations only they needed, and the inputs the body no longer uses."""
    pruned, used_inputs = dce_jaxpr(eqn.params["jaxpr"].jaxpr, used_outputs)
    pruned = Jaxpr([], [v for v, u in zip(pruned.invars, used_inputs) if u], pruned.eqns, pruned.outvars)
    return Eqn(eqn.primitive, [a for a, u in zip(eqn.invars, used_inputs) if u],
               [v for v, u in zip(eqn.outvars, used_outputs) if u], dict(eqn.params, jaxpr=ClosedJaxpr(pruned, [])))


dce_rules[jit_p] = _call_dce
partition_rules[jit_p] = call_rule("jaxpr")
jvp_rules[jit_p] = _jit_jvp
symbolic_zero_rules.add(jit_p)   # symbolic-zero tangents stay symbolic inside the call
vmap_rules[jit_p] = _jit_vmap
partial_eval_rules[jit_p] = _jit_partial_eval
transpose_rules[jit_p] = _jit_transpose


# --- remat_p -----------------------------------------------------------------------------------------

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
    """Outputs of the (single-result) equations ``policy`` lets us keep for the backward pass.
    A saved ``checkpoint_name`` saves the value it names too (the same value: the derivative
    rules of the equation that made it read that one)."""
    if policy is None:
        return []
    saved = [eqn for eqn in jaxpr.eqns if not eqn.primitive.multiple_results
             and policy(eqn.primitive, *[a.aval for a in eqn.invars], **eqn.params)]
    produced = {v for eqn in jaxpr.eqns for v in eqn.outvars}
    named = [eqn.invars[0] for eqn in saved if eqn.primitive is checkpoint_name_p
             and isinstance(eqn.invars[0], Var) and eqn.invars[0] in produced]
    return list(dict.fromkeys([eqn.outvars[0] for eqn in saved] + named))


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


jvp_rules[remat_p] = _remat_jvp
symbolic_zero_rules.add(remat_p)   # symbolic-zero tangents stay symbolic inside the call
vmap_rules[remat_p] = _remat_vmap
partial_eval_rules[remat_p] = _remat_partial_eval
transpose_rules[remat_p] = _remat_transpose
dce_rules[remat_p] = _call_dce
partition_rules[remat_p] = call_rule("jaxpr")
