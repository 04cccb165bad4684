"""Primitives: the named, atomic operations every fgrad program is made of.

A primitive carries its NumPy implementation (the eager CPU path) and its
shape/dtype rule. Each transform keeps its own rule table keyed by primitive
(``fgrad.transforms.jvp.jvp_rules`` ...); the rules are registered beside the
primitive's definition in ``fgrad/ops/``.
"""
from __future__ import annotations

from typing import Any, Callable

from fgrad.core import trace


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
        return self._abstract_eval(*avals, **params)

    def bind(self, *args: Any, **params: Any) -> Any:
        """Apply the primitive under the current interpreter (eager, tracing, a transform)."""
        return trace.current_interpreter().process(self, args, params)

    def __repr__(self) -> str:
        return self.name
