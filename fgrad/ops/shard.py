"""The ``shard`` primitive (shard_map semantics) and its transformation rules.

``shard_p`` carries a per-device jaxpr with the mesh and the in/out ``PartitionSpec`` s; its
operands and results are global values. ``grad``/``jvp``/``vmap``/``jit`` transform it
through the rules below: jvp via ``jvp_jaxpr``, partial evaluation via
``partial_eval_jaxpr`` with residuals stacked over the devices, transposition via
``backward_pass``. Typed (``check_vma``), the body's own pvary/psum transposes make
cotangents of replicated inputs come out summed; with ``check_vma=False`` cotangents of
outputs replicated over an axis are divided by its size and those of inputs replicated over
an axis are psum'd over it, as in shard_map without replication checking.

The user-facing ``shard(f, mesh, in_specs, out_specs)`` is ``fgrad.transforms.shard``; the
primitive's implementation (running the body on every device) is the runtime's
(``fgrad.runtime.execute``).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from fgrad.core import vma
from fgrad.core.ir import closure_convert, ClosedJaxpr, Eqn, Jaxpr
from fgrad.core.partition import PartitionSpec, register_unpartitioned
from fgrad.core.primitive import Primitive
from fgrad.core.trace import dce_jaxpr, dce_rules, get_aval, set_interpreter, trace_to_jaxpr
from fgrad.core.types import ShapedArray
from fgrad.ops import collective
from fgrad.ops.elementwise import div
from fgrad.ops.shape import reshape
from fgrad.transforms.jvp import jvp_jaxpr, jvp_rules, zeros_like_aval
from fgrad.transforms.partial_eval import partial_eval_jaxpr, partial_eval_rules
from fgrad.transforms.vjp import backward_pass, is_undefined, transpose_rules, UndefinedPrimal
from fgrad.transforms.vmap import vmap_jaxpr, vmap_rules

__all__ = ["shard_p", "global_aval"]


# --- the primitive ---------------------------------------------------------------------------------------
#
# ``mesh`` params and arguments are ``fgrad.sharding.Mesh`` es (the runtime's); only their
# ``shape`` and ``axis_names`` are read here.

def global_aval(aval: ShapedArray, spec: PartitionSpec, mesh: Any) -> ShapedArray:
    """The global aval of per-device blocks ``aval`` put together by ``spec``."""
    shape = list(aval.shape)
    for d in range(min(len(spec), len(shape))):
        for axis in spec.axes(d):
            shape[d] *= mesh.shape[axis]
    return ShapedArray(tuple(shape), aval.dtype, aval.weak_type)


shard_p = Primitive("shard", multiple_results=True)


def _shard_abstract_eval(*avals, jaxpr, mesh, in_specs, out_specs, name, check_vma=True):
    return [global_aval(a, s, mesh) for a, s in zip(jaxpr.out_avals, out_specs)]


shard_p.def_abstract_eval(_shard_abstract_eval)
vma.vma_rules[shard_p] = vma.typed_by_body   # global values: invariant outside shard


def _bind_shard(closed: ClosedJaxpr, args: Sequence[Any], mesh: Any, in_specs: Sequence[PartitionSpec],
                out_specs: Sequence[PartitionSpec], name: str, check_vma: bool) -> list:
    """Bind ``shard_p`` on a jaxpr that may have constants (they become replicated inputs)."""
    converted, consts = closure_convert(closed)
    return shard_p.bind(*consts, *args, jaxpr=converted, mesh=mesh,
                        in_specs=(PartitionSpec(),) * len(consts) + tuple(in_specs),
                        out_specs=tuple(out_specs), name=name, check_vma=check_vma)


def _traced(mesh: Any, check_vma: bool, fun: Callable, *args):
    """Run a jaxpr-building helper with the mesh axes visible to collectives (and manual, so
    values are typed with the axes they vary over, unless ``check_vma`` is off)."""
    with collective.axis_frame(mesh.shape), vma.manual_axes_frame(mesh.axis_names if check_vma else ()):
        return fun(*args)


def _shard_jvp(primals, tangents, jaxpr, mesh, in_specs, out_specs, name, check_vma=True):
    nonzero = [t is not None for t in tangents]
    jvp_closed, _ = _traced(mesh, check_vma, lambda: jvp_jaxpr(jaxpr, nonzero, instantiate=True))
    tangent_specs = [s for s, nz in zip(in_specs, nonzero) if nz]
    outs = _bind_shard(jvp_closed, [*primals, *[t for t in tangents if t is not None]], mesh,
                       [*in_specs, *tangent_specs], [*out_specs, *out_specs], f"jvp({name})", check_vma)
    n = len(out_specs)
    return outs[:n], outs[n:]


def _insert_unsplit(spec: PartitionSpec, dim: int) -> PartitionSpec:
    entries = list(spec) + [None] * max(0, dim - len(spec))
    entries.insert(dim, None)
    return PartitionSpec(*entries)


def _shard_vmap(axis, vals, dims, jaxpr, mesh, in_specs, out_specs, name, check_vma=True):
    if axis.name is not None and axis.name in mesh.shape:
        raise ValueError(f"vmap(axis_name={axis.name!r}) around shard: the name is also a mesh axis of "
                         f"{mesh}; rename one of them")
    n_out = len(out_specs)
    batched, _ = _traced(mesh, check_vma, lambda: vmap_jaxpr(jaxpr, axis, dims, [0] * n_out))
    new_in = [s if d is None else _insert_unsplit(s, d) for s, d in zip(in_specs, dims)]
    new_out = [_insert_unsplit(s, 0) for s in out_specs]
    return _bind_shard(batched, vals, mesh, new_in, new_out, f"vmap({name})", check_vma), [0] * n_out


def _stacked_spec(mesh: Any) -> PartitionSpec:
    """Per-device values (residuals) stacked along a new leading dim over every mesh axis."""
    return PartitionSpec(tuple(mesh.axis_names))


def _shard_partial_eval(interp, args, jaxpr, mesh, in_specs, out_specs, name, check_vma=True):
    unknowns = [interp.is_unknown(a) for a in args]
    known, unknown, out_unknowns, num_res = _traced(mesh, check_vma, lambda: partial_eval_jaxpr(jaxpr, unknowns))
    n_known_outs = len(out_unknowns) - sum(out_unknowns)

    def known_stacked(*xs):  # residuals get a leading axis of 1: stacked over devices, globally N
        outs = known(*xs)
        return [*outs[:n_known_outs], *[reshape(r, (1, *get_aval(r).shape)) for r in outs[n_known_outs:]]]

    def unknown_unstacked(*xs):
        res = [reshape(r, get_aval(r).shape[1:]) for r in xs[:num_res]]
        return unknown(*res, *xs[num_res:])

    known_j = _traced(mesh, check_vma, lambda: trace_to_jaxpr(known_stacked, known.in_avals))
    res_avals = [a.update(shape=(1, *a.shape)) for a in unknown.in_avals[:num_res]]
    unknown_j = _traced(mesh, check_vma,
                        lambda: trace_to_jaxpr(unknown_unstacked, [*res_avals, *unknown.in_avals[num_res:]]))
    res_spec = _stacked_spec(mesh)
    known_specs = [s for s, u in zip(in_specs, unknowns) if not u]
    unknown_specs = [s for s, u in zip(in_specs, unknowns) if u]
    known_out_specs = [s for s, u in zip(out_specs, out_unknowns) if not u]
    unknown_out_specs = [s for s, u in zip(out_specs, out_unknowns) if u]
    with set_interpreter(interp.parent):
        known_outs = _bind_shard(known_j, [a for a, u in zip(args, unknowns) if not u], mesh, known_specs,
                                 [*known_out_specs, *[res_spec] * num_res], name, check_vma)
    residuals = known_outs[n_known_outs:]
    converted, consts = closure_convert(unknown_j)
    unknown_outs = interp.stage(shard_p, [*consts, *residuals, *[a for a, u in zip(args, unknowns) if u]], dict(
        jaxpr=converted, mesh=mesh, in_specs=(PartitionSpec(),) * len(consts) + (res_spec,) * num_res
        + tuple(unknown_specs), out_specs=tuple(unknown_out_specs), name=f"linear({name})", check_vma=check_vma))
    known_it, unknown_it = iter(known_outs[:n_known_outs]), iter(unknown_outs)
    return [next(unknown_it) if u else next(known_it) for u in out_unknowns]


def _unnamed_size(spec: PartitionSpec, mesh: Any) -> tuple[tuple[str, ...], int]:
    axes = tuple(a for a in mesh.axis_names if a not in spec.mentioned())
    return axes, int(np.prod([mesh.shape[a] for a in axes])) if axes else 1


def _shard_transpose(cts, *args, jaxpr, mesh, in_specs, out_specs, name, check_vma=True):
    linear = [is_undefined(a) for a in args]
    nonlin_avals = [a for a, lin in zip(jaxpr.in_avals, linear) if not lin]
    ct_avals = [a.strip_weak_type() for a in jaxpr.out_avals]

    def body(*xs):
        nonlin, cts_in = iter(xs[:len(nonlin_avals)]), xs[len(nonlin_avals):]
        scaled = list(cts_in)
        if not check_vma:
            for k, (ct, spec) in enumerate(zip(cts_in, out_specs)):
                _, size = _unnamed_size(spec, mesh)
                # untyped: each of the `size` copies of a replicated output carries 1/size of its cotangent
                scaled[k] = div(ct, np.asarray(size, get_aval(ct).dtype)) if size > 1 else ct
        full = [UndefinedPrimal(a) if lin else next(nonlin) for a, lin in zip(jaxpr.in_avals, linear)]
        res = backward_pass(jaxpr.jaxpr, jaxpr.consts, full, scaled)
        out = []
        for ct, a, lin, spec in zip(res, jaxpr.in_avals, linear, in_specs):
            if not lin:
                continue
            ct = zeros_like_aval(a.strip_weak_type()) if ct is None else ct
            # typed, a replicated input's cotangent is already summed (pvary transposes to psum)
            axes = (tuple(sorted(get_aval(ct).vma - set(spec.mentioned()), key=str)) if check_vma
                    else _unnamed_size(spec, mesh)[0])
            out.append(collective.psum_p.bind(ct, axis_name=axes) if axes else ct)
        return out

    transposed = _traced(mesh, check_vma, lambda: trace_to_jaxpr(body, [*nonlin_avals, *ct_avals]))
    cts = [zeros_like_aval(a) if ct is None else ct for ct, a in
           zip(cts, _shard_abstract_eval(jaxpr=jaxpr, mesh=mesh, in_specs=in_specs, out_specs=out_specs, name=name))]
    outs = _bind_shard(transposed, [*[a for a in args if not is_undefined(a)], *cts], mesh,
                       [*[s for s, lin in zip(in_specs, linear) if not lin], *out_specs],
                       [s for s, lin in zip(in_specs, linear) if lin], f"transpose({name})", check_vma)
    it = iter(outs)
    return [next(it) if lin else None for lin in linear]


def _shard_dce(used_outputs, eqn):
    params = eqn.params
    pruned, used_inputs = dce_jaxpr(params["jaxpr"].jaxpr, used_outputs)
    pruned = Jaxpr([], [v for v, u in zip(pruned.invars, used_inputs) if u], pruned.eqns, pruned.outvars)
    new = dict(params, jaxpr=ClosedJaxpr(pruned, []),
               in_specs=tuple(s for s, u in zip(params["in_specs"], used_inputs) if u),
               out_specs=tuple(s for s, u in zip(params["out_specs"], used_outputs) if u))
    return Eqn(shard_p, [a for a, u in zip(eqn.invars, used_inputs) if u],
               [v for v, u in zip(eqn.outvars, used_outputs) if u], new)


jvp_rules[shard_p] = _shard_jvp
vmap_rules[shard_p] = _shard_vmap
partial_eval_rules[shard_p] = _shard_partial_eval
transpose_rules[shard_p] = _shard_transpose
dce_rules[shard_p] = _shard_dce
register_unpartitioned("an explicit shard inside a jit on placed arguments gets whole operands and would run "
                       "per device (a nested shard, not supported)", shard_p)
