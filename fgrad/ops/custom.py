"""The primitives behind ``custom_jvp`` and ``custom_vjp`` (``transforms/custom.py``), with
their transform rules.

- ``custom_jvp_call`` carries the traced function (what runs when nothing differentiates it)
  and the user's jvp rule; its JVP rule calls that rule, whose own operations are ordinary
  ones, so higher-order derivatives differentiate the rule.
- ``custom_vjp_call`` carries the function, ``fwd`` and ``bwd``; its JVP rule runs ``fwd``
  and emits ``custom_lin``, a linear primitive whose transpose is ``bwd``. So reverse mode
  uses the custom rule; forward mode raises a clear error, as in JAX.

Under ``vmap`` the function and the rules are batched (arguments and outputs at axis 0).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from fgrad.core import dtypes, vma
from fgrad.core.ir import call_body_params
from fgrad.core.partition import call_rule, partition_rules, register_unpartitioned
from fgrad.core.primitive import Primitive
from fgrad.core.rules import is_undefined, jvp_rules, transpose_rules, vmap_rules
from fgrad.core.trace import get_aval
from fgrad.core.types import ShapedArray
from fgrad.ops import collective
from fgrad.ops.control import _numpy_outputs
from fgrad.ops.reduction import reduce_sum
from fgrad.ops.shape import moveaxis
from fgrad.transforms.jvp import zeros_like_aval
from fgrad.transforms.vmap import vmap_flat, vmap_jaxpr


def _zeros_for(value: Any) -> Any:
    return zeros_like_aval(get_aval(value).strip_weak_type())


def _impl(*args, call, num_consts, **params):
    return _numpy_outputs(call, args)


def _out_avals(*avals, call, **params):
    return call.out_avals


def _moved_to_front(axis, vals, dims) -> tuple[list, list]:
    """Batched values with their batch dim at 0 (unbatched ones stay as they are)."""
    vals = [v if d is None else moveaxis(v, d, 0, axis.size) for v, d in zip(vals, dims)]
    return vals, [None if d is None else 0 for d in dims]


def _batched_fun(fun: Callable, axis, in_dims: Sequence[int | None]) -> Callable:
    """``fun`` over whole batches: inputs at ``in_dims``, every output at 0."""
    def batched(*args):
        outs, out_dims = vmap_flat(fun, args, in_dims, axis)
        return [moveaxis(o, d, 0, axis.size) for o, d in zip(outs, out_dims)]
    return batched



# --- custom_jvp_call ---------------------------------------------------------------------------

custom_jvp_call_p = Primitive("custom_jvp_call", multiple_results=True)
custom_jvp_call_p.def_impl(_impl)
custom_jvp_call_p.def_abstract_eval(_out_avals)
vma.vma_rules[custom_jvp_call_p] = vma.typed_by_body
call_body_params[custom_jvp_call_p] = "call"


def _custom_jvp_call_jvp(primals, tangents, call, jvp, num_consts, symbolic_zeros):
    args, arg_tangents = primals[num_consts:], tangents[num_consts:]
    arg_tangents = [_zeros_for(p) if t is None else t for p, t in zip(args, arg_tangents)]
    outs, out_tangents = jvp(list(args), arg_tangents)
    out_tangents = [t if dtypes.is_differentiable(get_aval(o).dtype) else None for o, t in zip(outs, out_tangents)]
    return outs, out_tangents


def _custom_jvp_call_vmap(axis, vals, dims, call, jvp, num_consts, symbolic_zeros):
    vals, dims = _moved_to_front(axis, vals, dims)
    batched_call, _ = vmap_jaxpr(call, axis, dims, [0] * len(call.out_avals))
    arg_dims = dims[num_consts:]
    n_out = len(call.out_avals)

    def batched_jvp(primals, tangents):
        both = _batched_fun(lambda *xs: _flat_pair(jvp, xs, len(primals)), axis, [*arg_dims, *arg_dims])
        outs = both(*primals, *tangents)
        return outs[:n_out], outs[n_out:]

    outs = custom_jvp_call_p.bind(*vals, call=batched_call, jvp=batched_jvp, num_consts=num_consts,
                                  symbolic_zeros=symbolic_zeros)
    return outs, [0] * n_out


def _flat_pair(jvp: Callable, xs: Sequence[Any], n: int) -> list:
    outs, tangents = jvp(list(xs[:n]), list(xs[n:]))
    return [*outs, *[_zeros_for(o) if t is None else t for o, t in zip(outs, tangents)]]


jvp_rules[custom_jvp_call_p] = _custom_jvp_call_jvp
vmap_rules[custom_jvp_call_p] = _custom_jvp_call_vmap
partition_rules[custom_jvp_call_p] = call_rule("call")


# --- custom_vjp_call and custom_lin ---------------------------------------------------------------

custom_vjp_call_p = Primitive("custom_vjp_call", multiple_results=True)
custom_vjp_call_p.def_impl(_impl)
custom_vjp_call_p.def_abstract_eval(_out_avals)
vma.vma_rules[custom_vjp_call_p] = vma.typed_by_body
call_body_params[custom_vjp_call_p] = "call"

#: The linear stand-in for a custom_vjp function's derivative; its transpose runs ``bwd``.
custom_lin_p = Primitive("custom_lin", multiple_results=True)
custom_lin_p.def_abstract_eval(lambda *avals, num_res, bwd, out_avals, in_mask: list(out_avals))
vma.vma_rules[custom_lin_p] = vma.typed_by_body


def _forward_mode_error(*args, **params):
    raise TypeError("can't apply forward-mode autodiff (jvp, jacfwd, linearize's f_jvp) to a custom_vjp "
                    "function; it only defines reverse mode. Use grad/vjp/jacrev, or define the rule with "
                    "custom_jvp instead.")


# Evaluating or differentiating custom_lin forward both mean forward mode through a custom_vjp.
custom_lin_p.def_impl(_forward_mode_error)
jvp_rules[custom_lin_p] = _forward_mode_error


def _custom_vjp_call_jvp(primals, tangents, call, fwd, bwd, num_consts, n_out):
    args, arg_tangents = primals[num_consts:], tangents[num_consts:]
    outs_and_res = fwd(*args)
    outs, res = outs_and_res[:n_out], outs_and_res[n_out:]
    in_mask = tuple(t is not None for t in arg_tangents)
    out_avals = tuple(get_aval(o).strip_weak_type() for o in outs)
    lin = custom_lin_p.bind(*res, *[t for t in arg_tangents if t is not None], num_res=len(res), bwd=bwd,
                            out_avals=out_avals, in_mask=in_mask)
    return outs, [t if dtypes.is_differentiable(a.dtype) else None for t, a in zip(lin, out_avals)]


def _custom_lin_transpose(cts, *args, num_res, bwd, out_avals, in_mask):
    res, tangents = args[:num_res], args[num_res:]
    cts = [zeros_like_aval(a) if ct is None else ct for ct, a in zip(cts, out_avals)]
    cts_in = bwd(*res, *cts)
    # one cotangent per tangent operand (a known, e.g. zero, tangent still takes its place)
    picked = [ct for ct, has_tangent in zip(cts_in, in_mask) if has_tangent]
    return [*[None] * num_res, *[_summed_to(ct, t.aval) if is_undefined(t) else None
                                 for ct, t in zip(picked, tangents)]]


def _summed_to(ct: Any, aval: ShapedArray) -> Any:
    """Inside shard, ``bwd`` may give a per-device cotangent for a replicated input: the
    input's cotangent is their sum (what pvary's transpose would have given)."""
    extra = () if ct is None else tuple(sorted(get_aval(ct).vma - aval.vma, key=str))
    return collective.psum_p.bind(ct, axis_name=extra) if extra else ct


def _custom_vjp_call_vmap(axis, vals, dims, call, fwd, bwd, num_consts, n_out):
    vals, dims = _moved_to_front(axis, vals, dims)
    batched_call, _ = vmap_jaxpr(call, axis, dims, [0] * n_out)
    arg_dims = dims[num_consts:]
    batched_fwd = _batched_fun(fwd, axis, arg_dims)
    batched_bwd = _batched_bwd(bwd, axis, arg_dims)
    outs = custom_vjp_call_p.bind(*vals, call=batched_call, fwd=batched_fwd, bwd=batched_bwd,
                                  num_consts=num_consts, n_out=n_out)
    return outs, [0] * n_out


def _batched_bwd(bwd: Callable, axis, arg_dims: Sequence[int | None]) -> Callable:
    """``bwd`` over whole batches (residuals and cotangents at 0); an unbatched argument's
    cotangent is summed over the batch."""
    def batched(*res_and_cts):
        cts, ct_dims = vmap_flat(bwd, res_and_cts, [0] * len(res_and_cts), axis)
        out = []
        for ct, d, want in zip(cts, ct_dims, arg_dims):
            if want is None:
                out.append(ct if d is None else reduce_sum(ct, (d,)))
            else:
                out.append(moveaxis(ct, d, 0, axis.size))
        return out
    return batched


def _custom_lin_vmap(axis, vals, dims, num_res, bwd, out_avals, in_mask):
    vals, _ = _moved_to_front(axis, vals, dims)
    vals = [moveaxis(v, None, 0, axis.size) if d is None else v for v, d in zip(vals, dims)]
    arg_dims = [0] * len(in_mask)
    batched_avals = tuple(a.update(shape=(axis.size, *a.shape)) for a in out_avals)
    outs = custom_lin_p.bind(*vals, num_res=num_res, bwd=_batched_bwd(bwd, axis, arg_dims),
                             out_avals=batched_avals, in_mask=in_mask)
    return outs, [0] * len(outs)


jvp_rules[custom_vjp_call_p] = _custom_vjp_call_jvp
vmap_rules[custom_vjp_call_p] = _custom_vjp_call_vmap
transpose_rules[custom_lin_p] = _custom_lin_transpose
vmap_rules[custom_lin_p] = _custom_lin_vmap
partition_rules[custom_vjp_call_p] = call_rule("call")
register_unpartitioned("the linear stand-in of a custom_vjp's derivative: evaluating it is an error anyway",
                       custom_lin_p)
