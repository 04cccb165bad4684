"""Partial evaluation: split a computation into what is known now and what is not.

``PartialEvalInterpreter`` runs every operation whose inputs are all known under
its parent (so it happens now) and stages the rest into a jaxpr; known values
the staged part needs become that jaxpr's constants (the *residuals*).
Linearization is JVP under this interpreter with unknown tangents, which leaves
exactly the linear (tangent) part staged: that is what ``vjp`` transposes.

Higher-order primitives may register a rule in ``partial_eval_rules``::

    rule(interp, args, **params) -> outputs

to split their own body (otherwise an equation with any unknown input is staged whole).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from fgrad.core.ir import ClosedJaxpr, Jaxpr, eval_jaxpr
from fgrad.core.trace import Interpreter, StagingInterpreter, StagingTracer, set_interpreter
from fgrad.core.rules import partial_eval_rules
from fgrad.core.types import ShapedArray



class PartialEvalInterpreter(Interpreter):
    """Evaluates known operations under ``parent`` and stages unknown ones into ``builder``."""

    def __init__(self, parent: Interpreter):
        self.parent = parent
        self.builder = StagingInterpreter()

    def is_unknown(self, x: Any) -> bool:
        return isinstance(x, StagingTracer) and x._interp is self.builder

    def new_unknown(self, aval: ShapedArray) -> StagingTracer:
        return self.builder.new_arg(aval)

    def process(self, primitive, args, params):
        if not any(self.is_unknown(x) for x in args):
            with set_interpreter(self.parent):
                return primitive.bind(*args, **params)
        rule = partial_eval_rules.get(primitive)
        if rule is not None:
            return rule(self, list(args), **params)
        return self.stage(primitive, args, params)

    def stage(self, primitive, args, params):
        """Record the operation in the unknown jaxpr (known inputs become residuals)."""
        return self.builder.process(primitive, args, params)

    def known(self, primitive, args, params):
        """Run the operation now, under the parent interpreter."""
        with set_interpreter(self.parent):
            return primitive.bind(*args, **params)


def partial_eval_jaxpr(closed: ClosedJaxpr, in_unknowns: Sequence[bool],
                       instantiate: bool | Sequence[bool] = False
                       ) -> tuple[ClosedJaxpr, ClosedJaxpr, list[bool], int]:
    """Split ``closed`` given which inputs are unknown.

    Returns ``(known, unknown, out_unknowns, num_residuals)`` where
    ``known(known_ins) -> (known_outs..., residuals...)`` and
    ``unknown(residuals..., unknown_ins...) -> unknown_outs``.
    ``instantiate`` forces outputs to be unknown (passed through as residuals).
    """
    if isinstance(instantiate, bool):
        instantiate = [instantiate] * len(closed.out_avals)
    known_builder = StagingInterpreter()
    with set_interpreter(known_builder):
        known_args = [known_builder.new_arg(a) for a, u in zip(closed.in_avals, in_unknowns) if not u]
    pe = PartialEvalInterpreter(known_builder)
    with set_interpreter(pe):
        unknown_args = [pe.new_unknown(a) for a, u in zip(closed.in_avals, in_unknowns) if u]
        known_it, unknown_it = iter(known_args), iter(unknown_args)
        args = [next(unknown_it) if u else next(known_it) for u in in_unknowns]
        outs = eval_jaxpr(closed.jaxpr, closed.consts, *args)
    out_unknowns = [pe.is_unknown(o) or inst for o, inst in zip(outs, instantiate)]
    unknown_closed = pe.builder.build([o for o, u in zip(outs, out_unknowns) if u])
    residuals = unknown_closed.consts
    uj = unknown_closed.jaxpr
    unknown = ClosedJaxpr(Jaxpr([], [*uj.constvars, *uj.invars], uj.eqns, uj.outvars), [])
    known = known_builder.build([*[o for o, u in zip(outs, out_unknowns) if not u], *residuals])
    return known, unknown, out_unknowns, len(residuals)
