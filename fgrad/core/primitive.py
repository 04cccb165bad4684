"""Primitives: the named, atomic operations every fgrad program is made of.

A primitive carries its NumPy implementation (the eager CPU path) and its
shape/dtype rule. Each transform keeps its own rule table keyed by primitive
(``fgrad.transforms.jvp.jvp_rules`` ...); the rules are registered beside the
primitive's definition in ``fgrad/ops/``.
"""
from __future__ import annotations

from typing import Any, Callable

from fgrad.core import trace, vma


#: Every primitive ever created, in creation order (tests walk it to check rule coverage).
all_primitives: list["Primitive"] = []


class Primitive:
    """A named operation. ``bind`` hands it to the current interpreter.

    >>> sin_p = Primitive("sin")
    >>> sin_p.def_impl(np.sin); sin_p.def_abstract_eval(lambda x: x)   # doctest: +SKIP
    """

    __slots__ = ("name", "multiple_results", "impl", "_abstract_eval", "has_effects", "__weakref__")

    def __init__(self, name: str, multiple_results: bool = False, has_effects: bool = False):
        self.name = name
        self.multiple_results = multiple_results
        self.has_effects = has_effects  # effectful primitives survive dead-code elimination
        self.impl: Callable[..., Any] | None = None
        self._abstract_eval: Callable[..., Any] | None = None
        all_primitives.append(self)

    def def_impl(self, impl: Callable[..., Any]) -> Callable[..., Any]:
        """Register the eager implementation (NumPy arrays in, NumPy array(s) out)."""
        self.impl = impl
        return impl

    def def_abstract_eval(self, rule: Callable[..., Any]) -> Callable[..., Any]:
        """Register the shape/dtype rule (ShapedArrays in, ShapedArray(s) out)."""
        self._abstract_eval = rule
        return rule

    def abstract_eval(self, *avals, **params):
        """The results' avals: the shape rule, plus inside ``shard`` the axes they vary over."""
        return vma.output_vmas(self, avals, params, self._abstract_eval(*avals, **params))

    def bind(self, *args: Any, **params: Any) -> Any:
        """Apply the primitive under the current interpreter (eager, tracing, a transform)."""
        if vma.typing_active():
            args = match_operands(self, args, params)
        return trace.current_interpreter().process(self, args, params)

    def __repr__(self) -> str:
        return self.name


# --- replication typing (fgrad.core.vma) ---------------------------------------------------

#: ``pvary(x, axes)``: ``x``, now typed as varying over ``axes`` too (the identity on values).
#: Inserted by ``match_operands`` where an invariant operand meets a varying one; it
#: transposes to ``psum`` over ``axes`` (its rules live in ``fgrad.ops.collective``).
pvary_p = Primitive("pvary")
pvary_p.def_impl(lambda x, axes: x)
pvary_p.def_abstract_eval(lambda x, axes: x)
vma.vma_rules[pvary_p] = lambda in_vmas, manual, axes: (list(in_vmas), in_vmas[0] | frozenset(axes))


def pvary(x: Any, axes: tuple) -> Any:
    """``x`` cast to vary over ``axes`` as well (no-op for the axes it already varies over)."""
    missing = vma.missing_axes(trace.get_aval(x).vma, frozenset(axes))
    return pvary_p.bind(x, axes=missing) if missing else x


def match_operands(primitive: Primitive, args: Any, params: dict) -> Any:
    """Cast traced operands that vary over fewer mesh axes than ``primitive`` needs with
    ``pvary``. Constants are left alone: they are invariant, no cotangent flows to them."""
    have = [x.aval.vma if isinstance(x, trace.Tracer) else vma.INVARIANT for x in args]
    wanted = vma.wanted_vmas(primitive, have, params)
    if all(w <= h for h, w in zip(have, wanted)):
        return args
    return [pvary(x, tuple(w)) if isinstance(x, trace.Tracer) and not w <= h else x
            for x, h, w in zip(args, have, wanted)]
