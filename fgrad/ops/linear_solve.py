"""``linear_solve``: the primitive behind ``lax.custom_linear_solve``, ``x = solve(matvec, b)``
for a linear ``matvec``, whose derivatives never differentiate ``solve`` itself:

- JVP: ``dx = solve(matvec, db - dmatvec(x))``, another linear_solve (``dmatvec``: matvec's
  derivative in the values it closes over);
- transpose (reverse mode, linear in ``b``): ``ct_b = transpose_solve(vecmat, ct_x)``, with
  ``vecmat`` the transpose of ``matvec``; without a ``transpose_solve`` reverse mode raises,
  as in JAX.

Operands: ``matvec``'s constants, ``solve``'s, ``transpose_solve``'s, then ``b``'s leaves. The
three functions are const-free closed jaxprs taking their constants first. The ``call`` body
(``solve`` on all operands) is what eager evaluation and lowering run.
"""
from __future__ import annotations

from typing import Any, Sequence

from fgrad.core import vma
from fgrad.core.ir import ClosedJaxpr, call_body_params
from fgrad.core.partition import call_rule, partition_rules
from fgrad.core.primitive import Primitive
from fgrad.core.rules import is_undefined, jvp_rules, transpose_rules, vmap_rules
from fgrad.core.trace import get_aval
from fgrad.ops import elementwise as ew
from fgrad.ops.control import _numpy_outputs, insert_unused_invars, run_jaxpr
from fgrad.ops.shape import broadcast_in_dim, moveaxis
from fgrad.transforms.jvp import jvp_flat, zeros_like_aval
from fgrad.transforms.vjp import transpose_jaxpr
from fgrad.transforms.vmap import vmap_jaxpr

__all__: list[str] = []   # the user-facing function is fgrad.lax.custom_linear_solve

linear_solve_p = Primitive("linear_solve", multiple_results=True)


def solve_body(matvec: ClosedJaxpr, solve: ClosedJaxpr, transpose_solve: ClosedJaxpr | None) -> ClosedJaxpr:
    """``solve`` taking every operand of the equation (the others ignored)."""
    n_mv = len(matvec.in_avals) - len(matvec.out_avals)
    n_s = len(solve.in_avals) - len(matvec.out_avals)
    body = insert_unused_invars(solve, n_s, _const_avals(transpose_solve, len(matvec.out_avals)))
    return insert_unused_invars(body, 0, matvec.in_avals[:n_mv])


def _const_avals(fn: ClosedJaxpr | None, n_b: int) -> list:
    return [] if fn is None else list(fn.in_avals[:len(fn.in_avals) - n_b])


def bind_linear_solve(mv_consts: Sequence[Any], s_consts: Sequence[Any], ts_consts: Sequence[Any],
                      b: Sequence[Any], *, matvec: ClosedJaxpr, solve: ClosedJaxpr,
                      transpose_solve: ClosedJaxpr | None) -> list:
    """``solve(matvec, b)``'s outputs (``x``'s leaves, then any aux leaves of ``solve``)."""
    return linear_solve_p.bind(*mv_consts, *s_consts, *ts_consts, *b, matvec=matvec, solve=solve,
                               transpose_solve=transpose_solve,
                               call=solve_body(matvec, solve, transpose_solve))


def _split(args: Sequence[Any], matvec, solve, transpose_solve) -> tuple[list, list, list, list]:
    n_b = len(matvec.out_avals)
    n_mv, n_s = len(matvec.in_avals) - n_b, len(solve.in_avals) - n_b
    n_ts = len(_const_avals(transpose_solve, n_b))
    args = list(args)
    return (args[:n_mv], args[n_mv:n_mv + n_s], args[n_mv + n_s:n_mv + n_s + n_ts], args[n_mv + n_s + n_ts:])


linear_solve_p.def_impl(lambda *args, call, **_: _numpy_outputs(call, args))
linear_solve_p.def_abstract_eval(lambda *avals, call, **_: list(call.out_avals))
vma.vma_rules[linear_solve_p] = vma.typed_by_body
call_body_params[linear_solve_p] = "call"
partition_rules[linear_solve_p] = call_rule("call")


def _jvp(primals, tangents, matvec, solve, transpose_solve, call):
    fns = dict(matvec=matvec, solve=solve, transpose_solve=transpose_solve)
    mv_c, s_c, ts_c, b = _split(primals, **fns)
    mv_t, _, _, b_t = _split(tangents, **fns)
    outs = bind_linear_solve(mv_c, s_c, ts_c, b, **fns)
    n_b = len(b)
    x = outs[:n_b]
    rhs = [zeros_like_aval(get_aval(v).strip_weak_type()) if t is None else t for v, t in zip(b, b_t)]
    if any(t is not None for t in mv_t):     # db - (d matvec)(x): matvec's change through its constants
        _, mv_dot = jvp_flat(lambda *c: run_jaxpr(matvec, [*c, *x]), mv_c, mv_t)
        rhs = [r if d is None else ew.sub(r, d) for r, d in zip(rhs, mv_dot)]
    elif all(t is None for t in b_t):
        return outs, [None] * len(outs)
    x_dot = bind_linear_solve(mv_c, s_c, ts_c, rhs, **fns)[:n_b]
    return outs, [*x_dot, *[None] * (len(outs) - n_b)]


def _transpose(cts, *args, matvec, solve, transpose_solve, call):
    mv_c, s_c, ts_c, b = _split(args, matvec=matvec, solve=solve, transpose_solve=transpose_solve)
    if any(is_undefined(v) for v in (*mv_c, *s_c, *ts_c)):
        raise TypeError("custom_linear_solve: reverse-mode differentiation needs the matvec and solve constants "
                        "to be known; only b enters linearly")
    if transpose_solve is None:
        raise TypeError("custom_linear_solve: transpose_solve required for backwards mode automatic "
                        "differentiation of custom_linear_solve; pass transpose_solve=..., or symmetric=True if "
                        "matvec is symmetric")
    n_b = len(b)
    n_mv = len(mv_c)
    vecmat = transpose_jaxpr(matvec, [False] * n_mv + [True] * n_b)
    x_cts = [zeros_like_aval(v.aval.strip_weak_type()) if ct is None else ct for ct, v in zip(cts[:n_b], b)]
    b_cts = bind_linear_solve(mv_c, ts_c, s_c, x_cts, matvec=vecmat, solve=transpose_solve,
                              transpose_solve=solve)[:n_b]
    return [None] * (len(args) - n_b) + list(b_cts)


def _vmap(axis, vals, dims, matvec, solve, transpose_solve, call):
    """Every ``b`` leaf batched at 0 (broadcast if it was not); each function batched to match."""
    vals = [v if d is None else moveaxis(v, d, 0, axis.size) for v, d in zip(vals, dims)]
    dims = [None if d is None else 0 for d in dims]
    mv_d, s_d, ts_d, b_d = _split(dims, matvec=matvec, solve=solve, transpose_solve=transpose_solve)
    mv_c, s_c, ts_c, b = _split(vals, matvec=matvec, solve=solve, transpose_solve=transpose_solve)
    b = [v if d == 0 else broadcast_in_dim(v, (axis.size, *get_aval(v).shape), tuple(range(1, get_aval(v).ndim + 1)))
         for v, d in zip(b, b_d)]
    ones = [0] * len(b)

    def batched(fn, const_dims):
        return None if fn is None else vmap_jaxpr(fn, axis, [*const_dims, *ones], [0] * len(fn.out_avals))[0]
    outs = bind_linear_solve(mv_c, s_c, ts_c, b, matvec=batched(matvec, mv_d), solve=batched(solve, s_d),
                             transpose_solve=batched(transpose_solve, ts_d))
    return outs, [0] * len(outs)


jvp_rules[linear_solve_p] = _jvp
transpose_rules[linear_solve_p] = _transpose
vmap_rules[linear_solve_p] = _vmap
