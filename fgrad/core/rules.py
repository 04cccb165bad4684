"""The transforms' rule tables, one per transform, keyed by primitive.

They live in the core so that a primitive's module (``fgrad/ops/``) can register its rules
beside its definition without importing the interpreters that read them
(``fgrad/transforms/``): primitives sit below the transforms. Signatures:

``jvp_rules[p]``::

    rule(primals, tangents, **params) -> (out, tangent_out)

  ``tangents`` holds ``None`` for a symbolic zero only when ``p`` is in
  ``symbolic_zero_rules`` (JAX's ``defjvp`` style: one term per operand); otherwise zeros
  are materialised first. ``not_differentiable``: primitives whose outputs never carry
  tangents (comparisons, argmax, random bits...).

``transpose_rules[p]`` (linear primitives only)::

    rule(ct, *invals, **params) -> list of cotangents (None for non-linear inputs)

  where each linear input arrives as an ``UndefinedPrimal`` holding its aval.

``vmap_rules[p]``::

    rule(axis, vals, dims, **params) -> (out, out_dim)     # lists for multiple results

  where ``axis`` is the ``AxisData`` (size and name) of the map being applied.

``cheap_to_recompute``: a set of elementwise primitives and broadcasts (see below).

``partial_eval_rules[p]`` (higher-order primitives)::

    rule(interp, args, **params) -> outputs

  to split their own body (otherwise an equation with any unknown input is staged whole).

``dce_rules`` (dead-code elimination of higher-order primitives) live with ``dce_jaxpr`` in
``core/trace.py``.
"""
from __future__ import annotations

from typing import Any, Callable

from fgrad.core.types import ShapedArray

jvp_rules: dict[Any, Callable] = {}
#: Primitives whose outputs never carry tangents (comparisons, argmax, random bits...).
not_differentiable: set = set()
#: Primitives whose jvp rule accepts ``None`` (symbolic zero) tangents.
symbolic_zero_rules: set = set()

transpose_rules: dict[Any, Callable] = {}
vmap_rules: dict[Any, Callable] = {}
partial_eval_rules: dict[Any, Callable] = {}
#: Elementwise primitives and broadcasts, cheaper to recompute from their operands than to
#: store and load again: ``scan``'s partial evaluation recomputes a residual made of these from
#: the residuals it stacks anyway, in the loop that uses it, instead of stacking it too, and
#: stacks a residual one of them expands from a smaller value as that value.
cheap_to_recompute: set = set()


class UndefinedPrimal:
    """Marks a linear input of an equation being transposed."""

    __slots__ = ("aval",)

    def __init__(self, aval: ShapedArray):
        self.aval = aval

    def __repr__(self) -> str:
        return f"UndefinedPrimal({self.aval.str_short()})"


def is_undefined(x: Any) -> bool:
    """Whether ``x`` is a linear input being transposed (an ``UndefinedPrimal``)."""
    return type(x) is UndefinedPrimal
