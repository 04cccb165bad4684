"""Control-flow primitives: ``cond``, ``while`` and ``scan``, with their rules.

Each carries closed jaxprs (its branches or body) that ``fgrad.control_flow`` traced
once. Bodies never hold constants: values they close over are explicit leading
operands (``num_consts``), so outer transforms see them like any other input.
The rules transform the bodies with the generic ``jvp_jaxpr`` / ``vmap_jaxpr`` /
``partial_eval_jaxpr`` / ``transpose_jaxpr`` and bind the primitive again::

    cond   index, *operands                      branches=(jaxpr, ...)
    while  *cond_consts, *body_consts, *carry    cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts
    scan   *consts, *carry, *xs                  jaxpr, num_consts, num_carry, length, reverse, unroll

Reverse mode works for ``cond`` and ``scan`` (partial evaluation splits them into a
known part and a linear part, which transposes); ``while`` linearizes but does not
transpose, and says so.

Each also registers a ``HostDriver``: its semantics with the bodies run by a caller's
``run(body, args)``. The eager implementations drive with the NumPy evaluator; ``shard``
drives a loop whose body holds collectives with compiled per-device programs.
"""
from __future__ import annotations

import collections
import math
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from fgrad.core import dtypes, vma
from fgrad.core.array import Array
from fgrad.core.ir import ClosedJaxpr, Eqn, Jaxpr, Var, eval_jaxpr
from fgrad.core.partition import KEEP, agree, convert_layout, loop_layouts, partition_rules
from fgrad.core.primitive import Primitive
from fgrad.core.trace import EVAL, Tracer, dce_jaxpr, dce_rules, get_aval, set_interpreter, trace_to_jaxpr
from fgrad.core.types import ShapedArray
from fgrad.ops._util import shape_error
from fgrad.core.rules import (cheap_to_recompute, is_undefined, jvp_rules, partial_eval_rules, symbolic_zero_rules,
                              transpose_rules, vmap_rules)
from fgrad.transforms.jvp import jvp_jaxpr, zeros_like_aval
from fgrad.transforms.partial_eval import partial_eval_jaxpr
from fgrad.transforms.vjp import transpose_jaxpr
from fgrad.ops.shape import broadcast_in_dim, moveaxis
from fgrad.transforms.vmap import vmap_flat, vmap_jaxpr
from fgrad.ops.elementwise import add, convert_element_type, gt, select_n
from fgrad.ops.reduction import reduce_sum
from fgrad.ops.collective import axis_env_here

__all__: list[str] = []  # the user-facing functions live in fgrad.control_flow


# --- jaxpr plumbing shared by the rules --------------------------------------------------------

def hoist_consts(closed: ClosedJaxpr) -> tuple[ClosedJaxpr, list[Any]]:
    """Turn a closed jaxpr's constants into leading inputs: ``(const-free jaxpr, const values)``."""
    j = closed.jaxpr
    if not j.constvars:
        return closed, []
    return ClosedJaxpr(Jaxpr([], [*j.constvars, *j.invars], j.eqns, j.outvars), []), list(closed.consts)


def trace_closed(fun: Callable[..., Sequence[Any]], in_avals: Sequence[ShapedArray]) -> ClosedJaxpr:
    """Trace a flat body once into a closed jaxpr (its constants: the values it closes over).

    Named axes bound around the call (``vmap(..., axis_name=...)``) stay visible inside.
    """
    with axis_env_here():
        return trace_to_jaxpr(fun, in_avals)


def trace_body(fun: Callable[..., Sequence[Any]], in_avals: Sequence[ShapedArray]
               ) -> tuple[ClosedJaxpr, list[Any]]:
    """``trace_closed`` with the constants hoisted: ``(const-free jaxpr, constant values)``."""
    return hoist_consts(trace_closed(fun, in_avals))


def reorder(closed: ClosedJaxpr, in_order: Sequence[int] | None = None,
            out_order: Sequence[int] | None = None) -> ClosedJaxpr:
    """The same program with its inputs / outputs permuted (``new[k] = old[order[k]]``)."""
    j = closed.jaxpr
    invars = j.invars if in_order is None else [j.invars[i] for i in in_order]
    outvars = j.outvars if out_order is None else [j.outvars[i] for i in out_order]
    return ClosedJaxpr(Jaxpr(j.constvars, invars, j.eqns, outvars), closed.consts)


def insert_unused_invars(closed: ClosedJaxpr, position: int, avals: Sequence[ShapedArray]) -> ClosedJaxpr:
    """The same program taking extra, ignored inputs of ``avals`` at ``position``."""
    if not avals:
        return closed
    j = closed.jaxpr
    invars = [*j.invars[:position], *[Var(a) for a in avals], *j.invars[position:]]
    return ClosedJaxpr(Jaxpr(j.constvars, invars, j.eqns, j.outvars), closed.consts)


def run_jaxpr(closed: ClosedJaxpr, args: Sequence[Any]) -> list[Any]:
    """Evaluate ``closed`` under the current interpreter (inlining it into whatever is running)."""
    return eval_jaxpr(closed.jaxpr, closed.consts, *args)


def _numpy_outputs(closed: ClosedJaxpr, args: Sequence[Any]) -> list[np.ndarray]:
    """Evaluate a body eagerly (the impls' path): NumPy in, NumPy out."""
    with set_interpreter(EVAL):
        outs = eval_jaxpr(closed.jaxpr, closed.consts, *args)
    return [_to_numpy(o, a) for o, a in zip(outs, closed.out_avals)]


def _to_numpy(x: Any, aval: ShapedArray) -> np.ndarray:
    value = x._value if isinstance(x, Array) else x
    return np.asarray(value, dtype=aval.dtype)


class HostDriver(NamedTuple):
    """A control-flow primitive run from the host with its bodies run by someone else.

    ``drive(run, *operands, **params) -> outputs`` is the primitive's semantics, where
    ``run(body, args) -> list`` evaluates one of the closed jaxprs in its params.
    ``decision_vma(eqn)``: the mesh axes along which the path an equation takes (the branch,
    the trip count) may differ between devices, by shard's replication typing."""

    drive: Callable[..., list]
    decision_vma: Callable[[Eqn], frozenset]


#: ``host_drivers[primitive]``: how to run it with its bodies run by the caller (``HostDriver``).
host_drivers: dict[Primitive, HostDriver] = {}


def _split(seq: Sequence[Any], *sizes: int) -> list[list[Any]]:
    """Cut ``seq`` into consecutive pieces of ``sizes`` (the rest is the last piece)."""
    out, start = [], 0
    for size in sizes:
        out.append(list(seq[start:start + size]))
        start += size
    out.append(list(seq[start:]))
    return out


def _same(a: ShapedArray, b: ShapedArray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype


def _check_operands(op: str, expected: Sequence[ShapedArray], got: Sequence[ShapedArray]) -> None:
    if len(expected) != len(got) or not all(_same(e, g) for e, g in zip(expected, got)):
        shown = lambda avals: ", ".join(a.str_short() for a in avals)  # noqa: E731
        raise shape_error(op, f"its body expects operands ({shown(expected)}) but got ({shown(got)})")


def _join_avals(avals: Sequence[ShapedArray]) -> ShapedArray:
    """One aval for values of the same shape/dtype: weakly typed only if all are."""
    return avals[0].update(weak_type=all(a.weak_type for a in avals))


def _zeros(aval: ShapedArray) -> Any:
    return zeros_like_aval(aval.strip_weak_type())


def _is_float(aval: ShapedArray) -> bool:
    return dtypes.is_differentiable(aval.dtype)


# --- cond ----------------------------------------------------------------------------------------

cond_p = Primitive("cond", multiple_results=True)


def _cond_abstract_eval(index: ShapedArray, *args: ShapedArray, branches) -> list[ShapedArray]:
    if index.shape != () or index.dtype.kind not in "iu":
        raise shape_error("cond", f"the branch index must be an integer scalar, got {index.str_short()}")
    for branch in branches:
        _check_operands("cond", branch.in_avals, args)
    return [_join_avals(outs) for outs in zip(*[b.out_avals for b in branches])]


def _cond_drive(run: Callable, index, *args, branches):
    return run(branches[int(np.clip(index, 0, len(branches) - 1))], args)


def _cond_impl(index, *args, branches):
    return _cond_drive(_numpy_outputs, index, *args, branches=branches)


cond_p.def_abstract_eval(_cond_abstract_eval)


def _cond_vma(in_vmas, manual, branches):
    """Inside shard a result varies over what it varies over in any branch, and over the
    index's axes (devices may take different branches)."""
    outs = [frozenset().union(in_vmas[0], *[b.out_avals[k].vma for b in branches])
            for k in range(len(branches[0].out_avals))]
    return list(in_vmas), outs


vma.vma_rules[cond_p] = _cond_vma
cond_p.def_impl(_cond_impl)
host_drivers[cond_p] = HostDriver(_cond_drive, lambda eqn: eqn.invars[0].aval.vma)


def bind_cond(index: Any, args: Sequence[Any], branches: Sequence[ClosedJaxpr]) -> list[Any]:
    """Bind ``cond_p``; constants of the branches become operands shared by all branches."""
    hoisted = [hoist_consts(b) for b in branches]
    consts = [c for _, cs in hoisted for c in cs]
    if consts:
        const_avals = [[v.aval for v in h.jaxpr.invars[:len(cs)]] for h, cs in hoisted]
        joined = []
        for i, (h, cs) in enumerate(hoisted):
            before = [a for avals in const_avals[:i] for a in avals]
            after = [a for avals in const_avals[i + 1:] for a in avals]
            joined.append(insert_unused_invars(insert_unused_invars(h, len(cs), after), 0, before))
        hoisted = [(h, []) for h in joined]
    return cond_p.bind(index, *consts, *args, branches=tuple(h for h, _ in hoisted))


def _cond_jvp(primals, tangents, branches):
    index, *args = primals
    nonzero = [t is not None for t in tangents[1:]]
    out_nonzero = [any(col) for col in zip(*[jvp_jaxpr(b, nonzero, instantiate=False)[1] for b in branches])]
    jvp_branches = [jvp_jaxpr(b, nonzero, instantiate=out_nonzero)[0] for b in branches]
    outs = bind_cond(index, [*args, *[t for t in tangents[1:] if t is not None]], jvp_branches)
    n = len(out_nonzero)
    out_tangents = iter(outs[n:])
    return outs[:n], [next(out_tangents) if nz else None for nz in out_nonzero]


def _cond_vmap(axis, vals, dims, branches):
    index, *args = vals
    index_dim, *arg_dims = dims
    if index_dim is not None:
        return _cond_vmap_as_select(axis, index, index_dim, args, arg_dims, branches)
    first = [vmap_jaxpr(b, axis, arg_dims) for b in branches]
    out_batched = [any(d is not None for d in col) for col in zip(*[dims for _, dims in first])]
    wanted = [0 if b else None for b in out_batched]
    batched = [j if dims == wanted else vmap_jaxpr(b, axis, arg_dims, wanted)[0]
               for b, (j, dims) in zip(branches, first)]
    return bind_cond(index, args, batched), wanted


def _cond_vmap_as_select(axis, index, index_dim, args, arg_dims, branches):
    """A predicate that differs across the batch: run every branch, then select elementwise."""
    index = moveaxis(index, index_dim, 0, axis.size)
    per_branch = []
    for b in branches:
        outs, out_dims = vmap_flat(lambda *xs, b=b: run_jaxpr(b, xs), args, arg_dims, axis)
        per_branch.append([moveaxis(o, d, 0, axis.size) for o, d in zip(outs, out_dims)])
    selected = []
    for cases in zip(*per_branch):
        shape = get_aval(cases[0]).shape
        which = broadcast_in_dim(index, shape, (0,)) if len(shape) > 1 else index
        selected.append(select_n(which, *cases))
    return selected, [0] * len(selected)


def _cond_partial_eval(interp, args, branches):
    index, *ops = args
    if interp.is_unknown(index):
        return interp.stage(cond_p, args, dict(branches=branches))
    unknowns = [interp.is_unknown(a) for a in ops]
    out_unknown = [any(col) for col in zip(*[partial_eval_jaxpr(b, unknowns)[2] for b in branches])]
    splits = [partial_eval_jaxpr(b, unknowns, instantiate=out_unknown) for b in branches]
    n_known_out = len(out_unknown) - sum(out_unknown)
    res_avals = [known.out_avals[n_known_out:] for known, *_ in splits]
    all_res_avals = [a for avals in res_avals for a in avals]
    known_branches, unknown_branches = [], []
    for i, (known, unknown, _, n_res) in enumerate(splits):
        before = sum(len(r) for r in res_avals[:i])
        known_branches.append(_pad_residuals(known, n_known_out, all_res_avals, before))
        unknown_branches.append(insert_unused_invars(insert_unused_invars(
            unknown, n_res, all_res_avals[before + n_res:]), 0, all_res_avals[:before]))
    known_args = [a for a, u in zip(ops, unknowns) if not u]
    with set_interpreter(interp.parent):
        known_outs = bind_cond(index, known_args, known_branches)
    residuals = known_outs[n_known_out:]
    unknown_args = [a for a, u in zip(ops, unknowns) if u]
    unknown_outs = (interp.stage(cond_p, [index, *residuals, *unknown_args],
                                 dict(branches=tuple(unknown_branches))) if any(out_unknown) else [])
    known_it, unknown_it = iter(known_outs[:n_known_out]), iter(unknown_outs)
    return [next(unknown_it) if u else next(known_it) for u in out_unknown]


def _pad_residuals(known: ClosedJaxpr, n_out: int, all_res_avals, before: int) -> ClosedJaxpr:
    """A branch's known part returning every branch's residual slots (zeros in the others')."""
    n_res = len(known.out_avals) - n_out

    def padded(*args):
        outs = run_jaxpr(known, args)
        zeros_before = [_zeros(a) for a in all_res_avals[:before]]
        zeros_after = [_zeros(a) for a in all_res_avals[before + n_res:]]
        return [*outs[:n_out], *zeros_before, *outs[n_out:], *zeros_after]

    return trace_to_jaxpr(padded, known.in_avals)


def _cond_transpose(cts, index, *args, branches):
    if is_undefined(index):
        raise TypeError("cond: the branch index cannot be linear")
    linear = [is_undefined(a) for a in args]
    transposed = [transpose_jaxpr(b, linear) for b in branches]
    nonlinear = [a for a in args if not is_undefined(a)]
    cts = [_zeros(a) if ct is None else ct for ct, a in zip(cts, branches[0].out_avals)]
    outs = iter(bind_cond(index, [*nonlinear, *cts], transposed))
    return [None, *[next(outs) if lin else None for lin in linear]]


def _cond_dce(used_outputs, eqn):
    branches = eqn.params["branches"]
    pruned = [dce_jaxpr(b.jaxpr, used_outputs) for b in branches]
    used_inputs = [any(col) for col in zip(*[used for _, used in pruned])]
    new_branches = tuple(
        ClosedJaxpr(Jaxpr([], [v for v, u in zip(j.invars, used_inputs) if u], j.eqns, j.outvars), [])
        for j, _ in pruned)
    invars = [eqn.invars[0], *[a for a, u in zip(eqn.invars[1:], used_inputs) if u]]
    outvars = [v for v, u in zip(eqn.outvars, used_outputs) if u]
    return Eqn(cond_p, invars, outvars, dict(eqn.params, branches=new_branches))


jvp_rules[cond_p] = _cond_jvp
vmap_rules[cond_p] = _cond_vmap
partial_eval_rules[cond_p] = _cond_partial_eval
transpose_rules[cond_p] = _cond_transpose
dce_rules[cond_p] = _cond_dce


# --- while ---------------------------------------------------------------------------------------

while_p = Primitive("while", multiple_results=True)


class WhileReverseModeError(ValueError):
    """Reverse-mode differentiation reached a ``while_loop`` (its trip count is not static)."""


def _while_abstract_eval(*args, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    cond_consts, body_consts, carry = _split(args, cond_nconsts, body_nconsts)
    _check_operands("while_loop", cond_jaxpr.in_avals, [*cond_consts, *carry])
    _check_operands("while_loop", body_jaxpr.in_avals, [*body_consts, *carry])
    pred = cond_jaxpr.out_avals
    if len(pred) != 1 or pred[0].shape != () or pred[0].dtype != dtypes.bool_:
        raise shape_error("while_loop", f"cond_fun must return one bool scalar, got "
                          f"{', '.join(a.str_short() for a in pred)}")
    _check_operands("while_loop", body_jaxpr.out_avals, carry)
    return list(body_jaxpr.in_avals[body_nconsts:])


def _while_drive(run: Callable, *args, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    cond_consts, body_consts, carry = _split(args, cond_nconsts, body_nconsts)
    carry = [_to_numpy(c, a) for c, a in zip(carry, body_jaxpr.in_avals[body_nconsts:])]
    while bool(run(cond_jaxpr, [*cond_consts, *carry])[0]):
        carry = run(body_jaxpr, [*body_consts, *carry])
    return carry


def _while_impl(*args, **params):
    return _while_drive(_numpy_outputs, *args, **params)


while_p.def_abstract_eval(_while_abstract_eval)
vma.vma_rules[while_p] = vma.typed_by_body
while_p.def_impl(_while_impl)
host_drivers[while_p] = HostDriver(_while_drive, lambda eqn: eqn.params["cond_jaxpr"].out_avals[0].vma)


def bind_while(cond_consts, body_consts, carry, cond_jaxpr, body_jaxpr) -> list[Any]:
    """Bind ``while_p``, hoisting the bodies' constants into operands."""
    cond_jaxpr, more_cond = hoist_consts(cond_jaxpr)
    body_jaxpr, more_body = hoist_consts(body_jaxpr)
    cond_consts, body_consts = [*more_cond, *cond_consts], [*more_body, *body_consts]
    return while_p.bind(*cond_consts, *body_consts, *carry, cond_jaxpr=cond_jaxpr, body_jaxpr=body_jaxpr,
                        cond_nconsts=len(cond_consts), body_nconsts=len(body_consts))


def bind_while_forwarding(cond_consts, body_consts, carry, cond_jaxpr, body_jaxpr) -> list[Any]:
    """``while_p.bind``, except that a carry the body returns unchanged and the predicate
    never reads is passed to the body as a constant and returned as it came in (as JAX's
    ``while_loop`` does): it is loop-invariant, so no derivative has to flow through the loop
    for it, and vmap need not batch it."""
    nb, body = len(body_consts), body_jaxpr.jaxpr
    carry_avals = body_jaxpr.in_avals[nb:]
    cond_reads = _reads(cond_jaxpr.jaxpr)
    cond_carry_vars = cond_jaxpr.jaxpr.invars[len(cond_consts):]
    move = [body.outvars[i] is v and cond_carry_vars[i] not in cond_reads
            for i, v in enumerate(body.invars[nb:])]
    if not any(move):
        return while_p.bind(*cond_consts, *body_consts, *carry, cond_jaxpr=cond_jaxpr, body_jaxpr=body_jaxpr,
                            cond_nconsts=len(cond_consts), body_nconsts=nb)
    kept = [i for i, m in enumerate(move) if not m]
    moved = [i for i, m in enumerate(move) if m]
    c = cond_jaxpr.jaxpr
    cond_jaxpr = ClosedJaxpr(Jaxpr(c.constvars, [*c.invars[:len(cond_consts)], *[cond_carry_vars[i] for i in kept]],
                                   c.eqns, c.outvars), cond_jaxpr.consts)
    body_jaxpr = reorder(body_jaxpr, [*[nb + i for i in moved], *range(nb), *[nb + i for i in kept]], kept)
    outs = while_p.bind(*cond_consts, *[carry[i] for i in moved], *body_consts, *[carry[i] for i in kept],
                        cond_jaxpr=cond_jaxpr, body_jaxpr=body_jaxpr, cond_nconsts=len(cond_consts),
                        body_nconsts=nb + len(moved))
    result, outs = [_as_array(v, a) for v, a in zip(carry, carry_avals)], iter(outs)
    for i in kept:
        result[i] = next(outs)
    return result


def _as_array(value: Any, aval: ShapedArray) -> Any:
    """A forwarded carry as an Array of its carry type (JAX would hand back a Python or NumPy
    leaf as it came in; fgrad keeps its outputs arrays of canonical dtype)."""
    return value if isinstance(value, (Array, Tracer)) else Array(value, aval)


def _reads(jaxpr: Jaxpr) -> set:
    """The variables a jaxpr's equations or outputs read."""
    read = {a for e in jaxpr.eqns for a in e.invars if isinstance(a, Var)}
    return read | {a for a in jaxpr.outvars if isinstance(a, Var)}


def _carry_fixed_point(step: Callable[[list[bool]], list[bool]], start: list[bool]) -> list[bool]:
    """Smallest superset of ``start`` closed under ``step`` (which carries get tangents/batching)."""
    current = list(start)
    while True:
        new = [a or b for a, b in zip(current, step(current))]
        if new == current:
            return current
        current = new


def _while_jvp(primals, tangents, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    cond_consts, body_consts, carry = _split(primals, cond_nconsts, body_nconsts)
    _, body_const_t, carry_t = _split(tangents, cond_nconsts, body_nconsts)
    const_nz = [t is not None for t in body_const_t]
    carry_float = [_is_float(a) for a in body_jaxpr.out_avals]
    # an empty carry's tangent is empty: a zero, kept out of the loop (as in JAX, grad then
    # goes through a while_loop whose only differentiable carries are empty)
    filled = [math.prod(a.shape) > 0 for a in body_jaxpr.out_avals]
    carry_nz = _carry_fixed_point(
        lambda nz: [n and f for n, f in zip(jvp_jaxpr(body_jaxpr, [*const_nz, *nz], instantiate=[
            n and f for n, f in zip(nz, carry_float)])[1][:len(nz)], filled)],
        [t is not None and f for t, f in zip(carry_t, filled)])
    body_jvp, _ = jvp_jaxpr(body_jaxpr, [*const_nz, *carry_nz], instantiate=carry_nz)
    nb, nc, nct = len(body_consts), len(carry), sum(const_nz)
    # jvp order (consts, carry, const tangents, carry tangents) -> (consts, const tangents, carry, carry tangents)
    body_jvp = reorder(body_jvp, [*range(nb), *range(nb + nc, nb + nc + nct), *range(nb, nb + nc),
                                  *range(nb + nc + nct, len(body_jvp.in_avals))])
    tangent_avals = [a.strip_weak_type() for a, nz in zip(body_jaxpr.out_avals, carry_nz) if nz]
    cond_jvp = insert_unused_invars(cond_jaxpr, len(cond_jaxpr.in_avals), tangent_avals)
    init_t = [_zeros(a) if t is None else t for t, a, nz in zip(carry_t, body_jaxpr.out_avals, carry_nz) if nz]
    outs = bind_while(cond_consts, [*body_consts, *[t for t in body_const_t if t is not None]],
                      [*carry, *init_t], cond_jvp, body_jvp)
    out_t = iter(outs[nc:])
    return outs[:nc], [next(out_t) if nz else None for nz in carry_nz]


def _while_vmap(axis, vals, dims, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    cond_consts, body_consts, carry = _split(vals, cond_nconsts, body_nconsts)
    cc_dims, bc_dims, carry_dims = _split(dims, cond_nconsts, body_nconsts)
    as_dims = lambda batched: [0 if b else None for b in batched]  # noqa: E731

    def pred_batched(batched):
        return vmap_jaxpr(cond_jaxpr, axis, [*cc_dims, *as_dims(batched)])[1][0] is not None

    def step(batched):
        if pred_batched(batched):
            return [True] * len(batched)
        out_dims = vmap_jaxpr(body_jaxpr, axis, [*bc_dims, *as_dims(batched)])[1]
        return [d is not None for d in out_dims]

    batched = _carry_fixed_point(step, [d is not None for d in carry_dims])
    carry = [moveaxis(c, d, 0, axis.size) if b else c for c, d, b in zip(carry, carry_dims, batched)]
    in_dims = as_dims(batched)
    if not pred_batched(batched):
        cond_b, _ = vmap_jaxpr(cond_jaxpr, axis, [*cc_dims, *in_dims], [None])
        body_b, _ = vmap_jaxpr(body_jaxpr, axis, [*bc_dims, *in_dims], in_dims)
        return bind_while(cond_consts, body_consts, carry, cond_b, body_b), in_dims
    cond_b, body_b = _while_select_bodies(axis, cond_jaxpr, body_jaxpr, cc_dims, bc_dims,
                                          [get_aval(v) for v in cond_consts],
                                          [get_aval(v) for v in body_consts], [get_aval(c) for c in carry])
    outs = bind_while(cond_consts, [*cond_consts, *body_consts], carry, cond_b, body_b)
    return outs, [0] * len(outs)


def _while_select_bodies(axis, cond_jaxpr, body_jaxpr, cc_dims, bc_dims, cc_avals, bc_avals, carry_avals):
    """A batched predicate: loop while any member's predicate holds; members already done keep
    their carry (a select per element)."""
    n_cc, carry_dims = len(cc_avals), [0] * len(carry_avals)

    def batched_pred(cond_consts, carry):
        (pred,), (dim,) = vmap_flat(lambda *xs: run_jaxpr(cond_jaxpr, xs), [*cond_consts, *carry],
                                    [*cc_dims, *carry_dims], axis)
        return moveaxis(pred, dim, 0, axis.size)

    def cond_fun(*args):
        return [_any(batched_pred(args[:n_cc], args[n_cc:]))]

    def body_fun(*args):
        cond_consts, body_consts, carry = _split(args, n_cc, len(bc_avals))
        pred = batched_pred(cond_consts, carry)
        new, new_dims = vmap_flat(lambda *xs: run_jaxpr(body_jaxpr, xs), [*body_consts, *carry],
                                  [*bc_dims, *carry_dims], axis)
        outs = []
        for old, value, dim in zip(carry, new, new_dims):
            value = moveaxis(value, dim, 0, axis.size)
            shape = get_aval(value).shape
            which = broadcast_in_dim(pred, shape, (0,)) if len(shape) > 1 else pred
            outs.append(select_n(which, old, value))
        return outs

    cond_b = trace_to_jaxpr(cond_fun, [*cc_avals, *carry_avals])
    body_b = trace_to_jaxpr(body_fun, [*cc_avals, *bc_avals, *carry_avals])
    return cond_b, body_b


def _any(pred: Any) -> Any:
    """True when any element of a 1-d bool array is."""
    count = reduce_sum(convert_element_type(pred, dtypes.int32), (0,))
    return gt(count, np.int32(0))


def _while_partial_eval(interp, args, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    """Run the known carries' loop now; stage the whole loop for the unknown carries.

    (Enough for ``linearize``/``jvp``; the staged loop cannot be transposed, so ``grad``
    stops at it with a clear error.)"""
    params = dict(cond_jaxpr=cond_jaxpr, body_jaxpr=body_jaxpr, cond_nconsts=cond_nconsts,
                  body_nconsts=body_nconsts)
    unknowns = [interp.is_unknown(a) for a in args]
    cc_uk, bc_uk, carry_uk = _split(unknowns, cond_nconsts, body_nconsts)
    carry_uk = _carry_fixed_point(
        lambda uk: partial_eval_jaxpr(body_jaxpr, [*bc_uk, *uk])[2], carry_uk)
    known_cond, _, pred_uk, _ = partial_eval_jaxpr(cond_jaxpr, [*cc_uk, *carry_uk])
    if pred_uk[0]:
        return interp.stage(while_p, args, params)
    known_body, _, _, _ = partial_eval_jaxpr(body_jaxpr, [*bc_uk, *carry_uk], instantiate=carry_uk)
    n_known = carry_uk.count(False)
    known_cond = _first_outputs(known_cond, 1)
    known_body = _first_outputs(known_body, n_known)
    cond_consts, body_consts, carry = _split(args, cond_nconsts, body_nconsts)
    known = lambda xs, uk: [x for x, u in zip(xs, uk) if not u]  # noqa: E731
    with set_interpreter(interp.parent):
        known_outs = bind_while(known(cond_consts, cc_uk), known(body_consts, bc_uk), known(carry, carry_uk),
                                known_cond, known_body)
    all_outs = interp.stage(while_p, args, params)
    known_it = iter(known_outs)
    return [out if uk else next(known_it) for out, uk in zip(all_outs, carry_uk)]


def _first_outputs(closed: ClosedJaxpr, n: int) -> ClosedJaxpr:
    """Keep only the first ``n`` outputs (dropping the residuals partial evaluation added)."""
    j = closed.jaxpr
    pruned, _ = dce_jaxpr(Jaxpr(j.constvars, j.invars, j.eqns, j.outvars[:n]))
    consts = [c for v, c in zip(j.constvars, closed.consts) if v in set(pruned.constvars)]
    return ClosedJaxpr(pruned, consts)


def _while_transpose(cts, *args, **params):
    raise WhileReverseModeError(
        "Reverse-mode differentiation (grad, vjp) does not work through lax.while_loop or "
        "lax.fori_loop with traced (non-static) bounds: their trip count is unknown, so the "
        "forward values cannot be saved. Use lax.scan, or lax.fori_loop with static Python-int "
        "bounds (it becomes a scan); forward mode (jvp, jacfwd) does work through while_loop.")


jvp_rules[while_p] = _while_jvp
vmap_rules[while_p] = _while_vmap
partial_eval_rules[while_p] = _while_partial_eval
transpose_rules[while_p] = _while_transpose


# --- scan ----------------------------------------------------------------------------------------

scan_p = Primitive("scan", multiple_results=True)


def _scan_abstract_eval(*args, jaxpr, num_consts, num_carry, length, reverse, unroll):
    consts, carry, xs = _split(args, num_consts, num_carry)
    body_in = jaxpr.in_avals
    x_avals = body_in[num_consts + num_carry:]
    _check_operands("scan", body_in[:num_consts + num_carry], [*consts, *carry])
    if len(xs) != len(x_avals):
        raise shape_error("scan", f"its body takes {len(x_avals)} scanned inputs, got {len(xs)}")
    for x, a in zip(xs, x_avals):
        if x.shape != (length, *a.shape) or x.dtype != a.dtype:
            raise shape_error("scan", f"a scanned input of type {x.str_short()} does not match the body's "
                              f"slice {a.str_short()} with length {length}")
    _check_operands("scan", jaxpr.out_avals[:num_carry], carry)
    ys = [a.update(shape=(length, *a.shape)) for a in jaxpr.out_avals[num_carry:]]
    return [*body_in[num_consts:num_consts + num_carry], *ys]


def _scan_drive(run: Callable, *args, jaxpr, num_consts, num_carry, length, reverse, unroll):
    consts, carry, xs = _split(args, num_consts, num_carry)
    carry = [_to_numpy(c, a) for c, a in zip(carry, jaxpr.in_avals[num_consts:])]
    xs = [np.asarray(x) for x in xs]
    ys = []
    for i in (range(length - 1, -1, -1) if reverse else range(length)):
        outs = run(jaxpr, [*consts, *carry, *[x[i] for x in xs]])
        carry, y = outs[:num_carry], outs[num_carry:]
        ys.append(y)
    if reverse:
        ys.reverse()
    y_avals = jaxpr.out_avals[num_carry:]
    stacked = [np.stack([y[k] for y in ys]) if ys else np.zeros((0, *a.shape), a.dtype)
               for k, a in enumerate(y_avals)]
    return [*carry, *stacked]


def _scan_impl(*args, **params):
    return _scan_drive(_numpy_outputs, *args, **params)


scan_p.def_abstract_eval(_scan_abstract_eval)
vma.vma_rules[scan_p] = vma.typed_by_body
scan_p.def_impl(_scan_impl)
host_drivers[scan_p] = HostDriver(_scan_drive, lambda eqn: vma.INVARIANT)   # a static trip count


def bind_scan(consts, carry, xs, jaxpr: ClosedJaxpr, length: int, reverse: bool = False,
              unroll: int = 1) -> list[Any]:
    """Bind ``scan_p``, hoisting the body's constants into operands."""
    jaxpr, more = hoist_consts(jaxpr)
    consts = [*more, *consts]
    return scan_p.bind(*consts, *carry, *xs, jaxpr=jaxpr, num_consts=len(consts), num_carry=len(carry),
                       length=int(length), reverse=bool(reverse), unroll=unroll)


def _groups_order(sizes_a: Sequence[int], sizes_b: Sequence[int]) -> list[int]:
    """Interleave groups: positions laid out as a0 a1 a2 | b0 b1 b2 reordered to a0 b0 a1 b1 a2 b2."""
    starts_a = np.cumsum([0, *sizes_a])
    starts_b = np.cumsum([0, *sizes_b]) + starts_a[-1]
    order = []
    for i in range(len(sizes_a)):
        order += list(range(starts_a[i], starts_a[i + 1])) + list(range(starts_b[i], starts_b[i + 1]))
    return order


def _scan_jvp(primals, tangents, jaxpr, num_consts, num_carry, length, reverse, unroll):
    consts, carry, xs = _split(primals, num_consts, num_carry)
    const_t, carry_t, xs_t = _split(tangents, num_consts, num_carry)
    const_nz = [t is not None for t in const_t]
    xs_nz = [t is not None for t in xs_t]
    n_ys = len(jaxpr.out_avals) - num_carry
    carry_nz = _carry_fixed_point(
        lambda nz: jvp_jaxpr(jaxpr, [*const_nz, *nz, *xs_nz], instantiate=[*nz, *[False] * n_ys])[1][:num_carry],
        [t is not None for t in carry_t])
    body, out_nz = jvp_jaxpr(jaxpr, [*const_nz, *carry_nz, *xs_nz], instantiate=[*carry_nz, *[False] * n_ys])
    ys_nz = out_nz[num_carry:]
    in_sizes = ([num_consts, num_carry, len(xs)], [sum(const_nz), sum(carry_nz), sum(xs_nz)])
    out_sizes = ([num_carry, n_ys], [sum(carry_nz), sum(ys_nz)])
    body = reorder(body, _groups_order(*in_sizes), _groups_order(*out_sizes))
    init_t = [_zeros(a) if t is None else t
              for t, a, nz in zip(carry_t, jaxpr.in_avals[num_consts:], carry_nz) if nz]
    outs = bind_scan([*consts, *[t for t in const_t if t is not None]], [*carry, *init_t],
                     [*xs, *[t for t in xs_t if t is not None]], body, length, reverse, unroll)
    carry_out, carry_t_out, ys, ys_t = _split(outs, num_carry, sum(carry_nz), n_ys)
    carry_t_it, ys_t_it = iter(carry_t_out), iter(ys_t)
    return ([*carry_out, *ys], [*[next(carry_t_it) if nz else None for nz in carry_nz],
                                *[next(ys_t_it) if nz else None for nz in ys_nz]])


def _scan_vmap(axis, vals, dims, jaxpr, num_consts, num_carry, length, reverse, unroll):
    consts, carry, xs = _split(vals, num_consts, num_carry)
    const_dims, carry_dims, xs_dims = _split(dims, num_consts, num_carry)
    as_dims = lambda batched: [0 if b else None for b in batched]  # noqa: E731
    x_body_dims = [None if d is None else 0 for d in xs_dims]
    batched = _carry_fixed_point(
        lambda b: [d is not None for d in
                   vmap_jaxpr(jaxpr, axis, [*const_dims, *as_dims(b), *x_body_dims])[1][:num_carry]],
        [d is not None for d in carry_dims])
    in_dims = [*const_dims, *as_dims(batched), *x_body_dims]
    _, out_dims = vmap_jaxpr(jaxpr, axis, in_dims)
    wanted = [*as_dims(batched), *as_dims([d is not None for d in out_dims[num_carry:]])]
    body, _ = vmap_jaxpr(jaxpr, axis, in_dims, wanted)
    carry = [moveaxis(c, d, 0, axis.size) if b else c for c, d, b in zip(carry, carry_dims, batched)]
    xs = [x if d is None else moveaxis(x, d, 1, axis.size) for x, d in zip(xs, xs_dims)]
    outs = bind_scan(consts, carry, xs, body, length, reverse, unroll)
    return outs, [*wanted[:num_carry], *[None if w is None else 1 for w in wanted[num_carry:]]]


def _scan_partial_eval(interp, args, jaxpr, num_consts, num_carry, length, reverse, unroll):
    """Known carries and outputs are computed now (one scan); the rest is staged as a second scan
    over the residuals: loop-invariant ones are computed once outside the loop, known xs are
    passed through, the others are stacked per iteration."""
    unknowns = [interp.is_unknown(a) for a in args]
    const_uk, carry_uk, xs_uk = _split(unknowns, num_consts, num_carry)
    n_ys = len(jaxpr.out_avals) - num_carry
    carry_uk = _carry_fixed_point(
        lambda uk: partial_eval_jaxpr(jaxpr, [*const_uk, *uk, *xs_uk])[2][:num_carry], carry_uk)
    known, unknown, out_uk, n_res = partial_eval_jaxpr(
        jaxpr, [*const_uk, *carry_uk, *xs_uk], instantiate=[*carry_uk, *[False] * n_ys])
    n_known_out = out_uk.count(False)
    invariant = _loop_invariant_outputs(known, const_uk.count(False))[n_known_out:]
    consts, carry, xs = _split(args, num_consts, num_carry)
    known_of = lambda xs_, uk: _select(xs_, [not u for u in uk])  # noqa: E731
    unknown_of = _select
    known_consts, known_xs = known_of(consts, const_uk), known_of(xs, xs_uk)
    # a residual that is a known xs slice needs no stacking: the xs array itself is its stack
    x_vars = known.jaxpr.invars[len(known_consts) + carry_uk.count(False):]
    forwarded = [None if inv or r not in x_vars else x_vars.index(r)
                 for r, inv in zip(known.jaxpr.outvars[n_known_out:], invariant)]
    stacked = [not inv and k is None for inv, k in zip(invariant, forwarded)]
    known, unknown = _stack_before_expanding(known, n_known_out, unknown, stacked)
    recomputed = _recomputable_residuals(known, n_known_out, stacked)
    if any(recomputed):      # cheap elementwise residuals: recomputed by the second scan, not stacked
        known, unknown = _recompute_in_unknown(known, n_known_out, unknown, recomputed)
        kept = [not r for r in recomputed]
        invariant, forwarded, stacked = (_select(flags, kept) for flags in (invariant, forwarded, stacked))
        n_res = len(kept) - sum(recomputed)
    body_known, hoisted = _split_residuals(known, n_known_out, stacked, invariant, len(known_consts))
    with set_interpreter(interp.parent):
        outs = bind_scan(known_consts, known_of(carry, carry_uk), known_xs, body_known, length, reverse, unroll)
        invariant_res = run_jaxpr(hoisted, known_consts)
    n_stacked = stacked.count(True)
    known_outs, stacked_res = outs[:len(outs) - n_stacked], iter(outs[len(outs) - n_stacked:])
    variant_res = [known_xs[k] if k is not None else next(stacked_res)
                   for k, inv in zip(forwarded, invariant) if not inv]
    if not any(out_uk):
        return known_outs
    n_inv, n_uk_consts, n_uk_carry = len(invariant_res), sum(const_uk), sum(carry_uk)
    # unknown body takes (residuals..., unknown consts, unknown carry, unknown xs); the scan wants
    # (invariant residuals, unknown consts | unknown carry | variant residuals, unknown xs)
    res_order = [i for i, inv in enumerate(invariant) if inv] + [i for i, inv in enumerate(invariant) if not inv]
    order = [*res_order[:n_inv], *range(n_res, n_res + n_uk_consts + n_uk_carry), *res_order[n_inv:],
             *range(n_res + n_uk_consts + n_uk_carry, len(unknown.in_avals))]
    body_unknown = reorder(unknown, order)
    unknown_outs = _stage_scan(interp, [*invariant_res, *unknown_of(consts, const_uk)], unknown_of(carry, carry_uk),
                               [*variant_res, *unknown_of(xs, xs_uk)], body_unknown, length, reverse, unroll)
    known_it, unknown_it = iter(known_outs), iter(unknown_outs)
    return [next(unknown_it) if u else next(known_it) for u in out_uk]


def _stage_scan(interp, consts, carry, xs, body, length, reverse, unroll):
    body, more = hoist_consts(body)
    consts = [*more, *consts]
    return interp.stage(scan_p, [*consts, *carry, *xs], dict(
        jaxpr=body, num_consts=len(consts), num_carry=len(carry), length=length, reverse=reverse, unroll=unroll))


def _loop_invariant_outputs(known: ClosedJaxpr, n_consts: int) -> list[bool]:
    """Which outputs of a scan body depend only on its constants (the first ``n_consts`` inputs)."""
    j = known.jaxpr
    invariant = set(j.constvars) | set(j.invars[:n_consts])
    for eqn in j.eqns:
        if all(not isinstance(v, Var) or v in invariant for v in eqn.invars):
            invariant.update(eqn.outvars)
    return [not isinstance(v, Var) or v in invariant for v in j.outvars]


def _select(items: Sequence, keep: Sequence[bool]) -> list:
    """The items whose flag in ``keep`` is true."""
    return [x for x, k in zip(items, keep) if k]


def _recomputable_residuals(known: ClosedJaxpr, n_out: int, stacked: list[bool]) -> list[bool]:
    """Which of the known body's residuals (its outputs past ``n_out``; ``stacked``: those
    that would be stacked per iteration) the unknown body can recompute instead: a stacked
    residual computed by ``cheap_to_recompute`` equations alone from residuals it keeps
    (loop-invariant, forwarded xs, or stacked and not recomputable themselves) and literals.
    A residual listed twice is kept (the unknown body has two inputs for it)."""
    j = known.jaxpr
    residuals = j.outvars[n_out:]
    counts = collections.Counter(residuals)
    stacked_vars = {r for r, s in zip(residuals, stacked) if s and isinstance(r, Var)}
    available = {r for r, s in zip(residuals, stacked) if not s and isinstance(r, Var)}
    available |= stacked_vars & {*j.invars, *j.constvars}        # not computed by an equation
    recomputable: set = set()
    for eqn in j.eqns:
        if (eqn.primitive in cheap_to_recompute and not eqn.primitive.multiple_results
                and all(not isinstance(v, Var) or v in available or v in recomputable for v in eqn.invars)):
            recomputable.update(eqn.outvars)
        else:
            available.update(v for v in eqn.outvars if v in stacked_vars)     # stacked: a base to recompute from
    return [s and r in recomputable and counts[r] == 1 for r, s in zip(residuals, stacked)]


def _stack_before_expanding(known: ClosedJaxpr, n_out: int, unknown: ClosedJaxpr,
                            stacked: list[bool]) -> tuple[ClosedJaxpr, ClosedJaxpr]:
    """Each stacked residual that a ``cheap_to_recompute`` equation makes from one smaller value
    (a broadcast) is stacked as that value, and the unknown body (whose first inputs are the
    residuals, in order) remakes it with a copy of the equation."""
    j, u = known.jaxpr, unknown.jaxpr
    made_by = {v: eqn for eqn in j.eqns for v in eqn.outvars}
    outvars, invars, copies = list(j.outvars), list(u.invars), []
    for k, (r, is_stacked) in enumerate(zip(j.outvars[n_out:], stacked)):
        eqn = made_by.get(r) if is_stacked and isinstance(r, Var) else None
        if eqn is None or eqn.primitive not in cheap_to_recompute or eqn.primitive.multiple_results:
            continue
        sources = [v for v in eqn.invars if isinstance(v, Var)]
        if len(sources) != 1 or sources[0].aval.size >= r.aval.size:
            continue
        small = Var(sources[0].aval)
        copies.append(Eqn(eqn.primitive, [small if v is sources[0] else v for v in eqn.invars], [invars[k]],
                          eqn.params))
        outvars[n_out + k], invars[k] = sources[0], small
    if not copies:
        return known, unknown
    return (ClosedJaxpr(Jaxpr(j.constvars, j.invars, j.eqns, outvars), known.consts),
            ClosedJaxpr(Jaxpr(u.constvars, invars, [*copies, *u.eqns], u.outvars), unknown.consts))


def _recompute_in_unknown(known: ClosedJaxpr, n_out: int, unknown: ClosedJaxpr,
                          recomputed: list[bool]) -> tuple[ClosedJaxpr, ClosedJaxpr]:
    """The known body without the ``recomputed`` residuals, and the unknown body (taking the
    residuals first) computing them from the residuals kept, with copies of the equations
    that made them in the known body."""
    j, u = known.jaxpr, unknown.jaxpr
    residuals, n_res, kept = j.outvars[n_out:], len(recomputed), [not g for g in recomputed]
    res_in = u.invars[:n_res]
    rename = {r: v for r, v, gone in zip(residuals, res_in, recomputed) if not gone and isinstance(r, Var)}
    target = {r: v for r, v, gone in zip(residuals, res_in, recomputed) if gone}
    needed, wanted = [], set(target)
    for eqn in reversed(j.eqns):          # the equations the recomputed residuals depend on
        if wanted.intersection(eqn.outvars):
            needed.append(eqn)
            wanted.update(v for v in eqn.invars if isinstance(v, Var) and v not in rename)
    copies = []
    for eqn in reversed(needed):
        ins = [rename[v] if isinstance(v, Var) else v for v in eqn.invars]
        outs = [target.get(v) or Var(v.aval) for v in eqn.outvars]
        rename.update(zip(eqn.outvars, outs))
        copies.append(Eqn(eqn.primitive, ins, outs, eqn.params))
    new_unknown = Jaxpr(u.constvars, [*_select(res_in, kept), *u.invars[n_res:]], [*copies, *u.eqns], u.outvars)
    new_known = Jaxpr(j.constvars, j.invars, j.eqns, [*j.outvars[:n_out], *_select(residuals, kept)])
    return ClosedJaxpr(new_known, known.consts), ClosedJaxpr(new_unknown, unknown.consts)


def _split_residuals(known: ClosedJaxpr, n_out: int, stacked: list[bool], invariant: list[bool],
                     n_consts: int) -> tuple[ClosedJaxpr, ClosedJaxpr]:
    """The known body returning only its ``stacked`` residuals, and a jaxpr computing the
    loop-``invariant`` ones from the constants alone (run once, outside the loop)."""
    j = known.jaxpr
    outs, res = j.outvars[:n_out], j.outvars[n_out:]
    body, _ = dce_jaxpr(Jaxpr(j.constvars, j.invars, j.eqns, [*outs, *[r for r, s in zip(res, stacked) if s]]))
    hoisted, _ = dce_jaxpr(Jaxpr(j.constvars, j.invars[:n_consts], j.eqns,
                                 [r for r, inv in zip(res, invariant) if inv]))
    keep = lambda jaxpr: [c for v, c in zip(j.constvars, known.consts) if v in set(jaxpr.constvars)]  # noqa: E731
    return ClosedJaxpr(body, keep(body)), ClosedJaxpr(hoisted, keep(hoisted))


def _scan_transpose(cts, *args, jaxpr, num_consts, num_carry, length, reverse, unroll):
    """Run the transposed body backwards over the sequence. Linear constants' cotangents
    accumulate in extra carries; every carry is treated as linear (a non-linear init, e.g. a
    known zero, just drops its cotangent)."""
    consts, carry, xs = _split(args, num_consts, num_carry)
    const_lin = [is_undefined(c) for c in consts]
    xs_lin = [is_undefined(x) for x in xs]
    body_t = transpose_jaxpr(jaxpr, [*const_lin, *[True] * num_carry, *xs_lin])
    res_consts = [c for c, lin in zip(consts, const_lin) if not lin]
    res_xs = [x for x, lin in zip(xs, xs_lin) if not lin]
    in_avals = jaxpr.in_avals
    const_avals, carry_avals, x_avals = _split(in_avals, num_consts, num_carry)
    acc_avals = [a.strip_weak_type() for a, lin in zip(const_avals, const_lin) if lin]
    ct_carry_avals = [a.strip_weak_type() for a in jaxpr.out_avals[:num_carry]]
    ct_y_avals = [a.strip_weak_type() for a in jaxpr.out_avals[num_carry:]]
    n_rc, n_acc, n_rx = len(res_consts), len(acc_avals), len(res_xs)

    def step(*a):
        res_c, acc, ct_carry, res_x, ct_y = _split(a, n_rc, n_acc, num_carry, n_rx)
        d_consts, d_carry, d_xs = _split(run_jaxpr(body_t, [*res_c, *res_x, *ct_carry, *ct_y]), n_acc, num_carry)
        return [*[add(s, d) for s, d in zip(acc, d_consts)], *d_carry, *d_xs]

    res_x_avals = [a for a, lin in zip(x_avals, xs_lin) if not lin]
    step_jaxpr = trace_to_jaxpr(step, [*[a for a, lin in zip(const_avals, const_lin) if not lin], *acc_avals,
                                       *ct_carry_avals, *res_x_avals, *ct_y_avals])
    ct_carry, ct_ys = _split(cts, num_carry)
    ct_carry = [_zeros(a) if c is None else c for c, a in zip(ct_carry, ct_carry_avals)]
    ct_ys = [_zeros(a.update(shape=(length, *a.shape))) if c is None else c for c, a in zip(ct_ys, ct_y_avals)]
    outs = bind_scan(res_consts, [*[_zeros(a) for a in acc_avals], *ct_carry], [*res_xs, *ct_ys],
                     step_jaxpr, length, not reverse, unroll)
    ct_consts, ct_init, ct_xs = _split(outs, n_acc, num_carry)
    ct_consts_it, ct_xs_it = iter(ct_consts), iter(ct_xs)
    return ([next(ct_consts_it) if lin else None for lin in const_lin]
            + [ct if is_undefined(c) else None for ct, c in zip(ct_init, carry)]
            + [next(ct_xs_it) if lin else None for lin in xs_lin])


def _scan_dce(used_outputs, eqn):
    """Drop unused ys, and carries nothing downstream (or in the loop) reads."""
    p = eqn.params
    jaxpr, nc, ncarry = p["jaxpr"], p["num_consts"], p["num_carry"]
    used_carry, used_ys = _split(used_outputs, ncarry)
    while True:
        body, used_in = dce_jaxpr(jaxpr.jaxpr, [*used_carry, *used_ys])
        new = [a or b for a, b in zip(used_carry, used_in[nc:nc + ncarry])]
        if new == used_carry:
            break
        used_carry = new
    used_consts, _, used_xs = _split(used_in, nc, ncarry)
    keep_in = [*used_consts, *used_carry, *used_xs]
    body = Jaxpr([], [v for v, u in zip(body.invars, keep_in) if u], body.eqns, body.outvars)
    params = dict(p, jaxpr=ClosedJaxpr(body, []), num_consts=sum(used_consts), num_carry=sum(used_carry))
    keep_out = [*used_carry, *used_ys]
    return Eqn(scan_p, [a for a, u in zip(eqn.invars, keep_in) if u],
               [v for v, u in zip(eqn.outvars, keep_out) if u], params)


jvp_rules[scan_p] = _scan_jvp
vmap_rules[scan_p] = _scan_vmap
partial_eval_rules[scan_p] = _scan_partial_eval
transpose_rules[scan_p] = _scan_transpose
dce_rules[scan_p] = _scan_dce

# the control-flow jvp rules keep symbolic zeros symbolic (the body sees no zero tangent),
# so a constant input never contributes `0 * inf` terms, as in JAX
symbolic_zero_rules.update({cond_p, while_p, scan_p})


# --- partition rules (the data-parallel pass, fgrad.core.partition) ----------------------------------------
#
# Control flow: bodies become per-device bodies.
# A body is walked on its operands' layouts into a per-device jaxpr. Branches of a cond (its
# index is replicated, so every device takes the same branch) must agree on their outputs'
# layouts, and a loop body must give its carries the layouts it got: where they differ the
# value is made whole (replicated) and the body walked again, until the layouts are stable.

def _cond_partition(ctx, eqn, ins):
    (index, li), *ops = ins
    layouts = [l for _, l in ops]
    branches = eqn.params["branches"]
    walked = [ctx.per_device_body(b, layouts) for b in branches]
    target = agree([outs for _, outs in walked])
    if any(outs != target for _, outs in walked):
        walked = [ctx.per_device_body(b, layouts, target) for b in branches]
    outs = bind_cond(ctx.full(index, li), [v for v, _ in ops], [j for j, _ in walked])
    return list(zip(outs, target))


def _scan_partition(ctx, eqn, ins):
    p = eqn.params
    nc, nk = p["num_consts"], p["num_carry"]
    consts, carry, xs = ins[:nc], ins[nc:nc + nk], ins[nc + nk:]
    xs = [(ctx.full(v, l), None) if l == 0 else (v, l) for v, l in xs]   # the scanned axis stays whole
    x_layouts = [l - 1 if isinstance(l, int) else l for _, l in xs]
    const_layouts = [l for _, l in consts]

    def walk(carry_layouts, want=None):
        return ctx.per_device_body(p["jaxpr"], [*const_layouts, *carry_layouts, *x_layouts], want)

    carry_layouts = loop_layouts(carry, lambda ls: walk(ls)[1][:nk])
    body, out_layouts = walk(carry_layouts, [*carry_layouts, *[KEEP] * (len(p["jaxpr"].out_avals) - nk)])
    carry = [convert_layout(ctx, v, l, t)[0] for (v, l), t in zip(carry, carry_layouts)]
    outs = bind_scan([v for v, _ in consts], carry, [v for v, _ in xs], body, p["length"], p["reverse"], p["unroll"])
    y_layouts = [l + 1 if isinstance(l, int) else l for l in out_layouts[nk:]]
    return list(zip(outs, [*carry_layouts, *y_layouts]))


def _while_partition(ctx, eqn, ins):
    p = eqn.params
    ncc, nbc = p["cond_nconsts"], p["body_nconsts"]
    cond_consts, body_consts, carry = ins[:ncc], ins[ncc:ncc + nbc], ins[ncc + nbc:]
    body_const_layouts = [l for _, l in body_consts]

    def walk_body(carry_layouts, want=None):
        return ctx.per_device_body(p["body_jaxpr"], [*body_const_layouts, *carry_layouts], want)

    carry_layouts = loop_layouts(carry, lambda ls: walk_body(ls)[1])
    body, _ = walk_body(carry_layouts, carry_layouts)
    cond, _ = ctx.per_device_body(p["cond_jaxpr"], [*[l for _, l in cond_consts], *carry_layouts], [None])
    carry = [convert_layout(ctx, v, l, t)[0] for (v, l), t in zip(carry, carry_layouts)]
    outs = bind_while([v for v, _ in cond_consts], [v for v, _ in body_consts], carry, cond, body)
    return list(zip(outs, carry_layouts))


partition_rules[cond_p] = _cond_partition
partition_rules[scan_p] = _scan_partition
partition_rules[while_p] = _while_partition
