"""Partitioning values over a mesh: ``PartitionSpec`` (which mesh axes split each dimension
of an array) and the per-primitive rules of the SPMD partitioner, the data-parallel pass
``jit`` takes for arguments placed on a mesh (its interpreter:
``fgrad.transforms.data_parallel``).

The partitioner gives each value of a global jaxpr a *layout* over the one data axis: None
(replicated: every device holds the whole value), an int d (split along dimension d) or
``PARTIAL`` (every device holds a term; the value is their sum). Each primitive registers
its rule beside its other rules (``partition_rules[prim] = rule``), like its jvp and vmap
rules::

    rule(ctx, eqn, ins) -> [(local value, layout)] per output

``ins`` are the operands' (local value, layout) pairs; ``eqn`` carries the global avals and
params. A primitive without a rule runs on whole values (``default_rule``: partial sums are
summed first, a split operand is a ``DataParallelError``); those are listed, each with the
reason, in ``unpartitioned``. The context ``ctx`` the interpreter hands a rule offers:

* ``ctx.mesh``, ``ctx.axis`` (the data axis), ``ctx.n`` (devices along it);
* ``ctx.full(value, layout)`` (psum a partial sum, all_gather a split value) and
  ``ctx.split(value, layout, d, eqn)`` (this device's block along ``d``), each emitted at
  most once per value; ``ctx.local_shape(shape, d)``;
* ``ctx.split_recipes`` / ``ctx.full_recipes``: id(value) -> (value, make) to compute a
  replicated value's block (or a partial value's sum) more cheaply than slicing (summing) it;
* ``ctx.block_start(block)``: this device's offset (int32) of blocks of ``block`` elements;
  ``ctx.pmax(x)`` / ``ctx.pmin(x)``: the collective over the data axis;
* ``ctx.walk(jaxpr, consts, ins)``: the per-device program of a body, inline;
  ``ctx.per_device_body(closed, layouts, want)``: a body as a per-device jaxpr of its own
  and its outputs' layouts (control flow).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from fgrad.core import dtypes
from fgrad.core.ir import Eqn
from fgrad.core.primitive import Primitive

__all__ = ["PartitionSpec", "PARTIAL", "KEEP", "DataParallelError", "partition_rules", "unpartitioned",
           "default_rule", "register_unpartitioned"]


# --- partition specs --------------------------------------------------------------------------------

class PartitionSpec:
    """Per array dimension: ``None`` (not split), a mesh axis name, or a tuple of names (split
    over their product). Trailing dimensions left out are not split.

    >>> P("data")          # dimension 0 split over the 'data' axis   # doctest: +SKIP
    >>> P(None, "model")   # dimension 1 split over 'model'            # doctest: +SKIP
    >>> P()                # replicated                                # doctest: +SKIP
    """

    __slots__ = ("_entries",)

    def __init__(self, *entries: Any):
        normalized = []
        for entry in entries:
            if isinstance(entry, (tuple, list)):
                entry = tuple(entry)
                entry = None if not entry else entry[0] if len(entry) == 1 else entry
            if entry is not None and not isinstance(entry, (str, tuple)):
                raise TypeError(f"PartitionSpec entries must be None, a mesh axis name or a tuple of names, "
                                f"got {entry!r}")
            normalized.append(entry)
        self._entries = tuple(normalized)

    def __iter__(self):
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, i):
        return self._entries[i]

    def axes(self, dim: int) -> tuple[str, ...]:
        """The mesh axes that split dimension ``dim`` (empty when it is not split)."""
        entry = self._entries[dim] if dim < len(self._entries) else None
        return () if entry is None else (entry,) if isinstance(entry, str) else entry

    def mentioned(self) -> tuple[str, ...]:
        """Every mesh axis the spec splits some dimension over."""
        return tuple(a for d in range(len(self._entries)) for a in self.axes(d))

    def _trimmed(self) -> tuple:
        entries = list(self._entries)
        while entries and entries[-1] is None:
            entries.pop()
        return tuple(entries)

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, PartitionSpec) and self._trimmed() == other._trimmed()

    def __hash__(self) -> int:
        return hash(("PartitionSpec", self._trimmed()))

    def __repr__(self) -> str:
        return f"P({', '.join(repr(e) for e in self._entries)})"


# --- the partitioner's rule table -------------------------------------------------------------------

PARTIAL = "partial"
#: A ``want`` entry of ``ctx.per_device_body``: keep whatever layout the body gives.
KEEP = "keep"

#: primitive -> rule(ctx, eqn, ins) (see the module doc).
partition_rules: dict[Primitive, Callable] = {}
#: Primitives deliberately without a rule (``default_rule`` runs them), each with the reason.
unpartitioned: dict[Primitive, str] = {}


class DataParallelError(ValueError):
    """``jit`` on sharded arguments met a layout its data-parallel pass does not handle."""


def register_unpartitioned(reason: str, *prims: Primitive) -> None:
    """Document ``prims`` as run on whole values by ``default_rule`` (no rule of their own)."""
    for prim in prims:
        unpartitioned[prim] = reason


def partition_error(eqn: Eqn, detail: str) -> DataParallelError:
    """The error for an equation the partitioner cannot run with its operands' layouts."""
    return DataParallelError(
        f"jit on sharded arrays: the data-parallel pass cannot run `{eqn.primitive.name}` here: {detail}. "
        "Write this step with fgrad.shard(f, mesh, in_specs, out_specs) and explicit collectives, or "
        "device_put that input replicated (P()).")


def layout_str(layout) -> str:
    """A layout in words, for error messages."""
    return "replicated" if layout is None else "a partial sum" if layout == PARTIAL else f"split along dim {layout}"


def bind_like(eqn: Eqn, vals: Sequence[Any], **params) -> list:
    """Bind ``eqn``'s primitive on (local) ``vals`` with its params (updated by ``params``)."""
    out = eqn.primitive.bind(*vals, **dict(eqn.params, **params))
    return list(out) if eqn.primitive.multiple_results else [out]


def with_layout(outs: list, layout) -> list:
    """Every output paired with the same ``layout``."""
    return [(o, layout) for o in outs]


def rank(atom) -> int:
    """The rank of an equation's operand or result (its global aval)."""
    return len(atom.aval.shape)


def is_float(aval) -> bool:
    """Is ``aval`` of a floating dtype?"""
    return dtypes.kind(np.dtype(aval.dtype)) == "f"


def replicated(ctx, eqn: Eqn, ins: list) -> list:
    """Run on whole values (partial sums are summed first)."""
    return with_layout(bind_like(eqn, [ctx.full(v, l) for v, l in ins]), None)


def check_unsplit(eqn: Eqn, ins: list) -> None:
    """Raise for a split operand of an operation without a data-parallel rule."""
    for k, (_, layout) in enumerate(ins):
        if isinstance(layout, int):
            raise partition_error(eqn, f"operand {k} ({eqn.invars[k].aval.str_short()}) is {layout_str(layout)} "
                                       "and this operation has no data-parallel rule")


def default_rule(ctx, eqn: Eqn, ins: list) -> list:
    """The rule of a primitive without one: whole values in, replicated results out."""
    check_unsplit(eqn, ins)
    return replicated(ctx, eqn, ins)


def named_axes_only(ctx, eqn: Eqn, ins: list) -> list:
    """The rule of a collective: it needs the named axes only explicit ``shard`` binds."""
    check_unsplit(eqn, ins)
    raise partition_error(eqn, "collectives need named axes, which only explicit shard binds")


# --- rules shared by families of primitives ---------------------------------------------------------------

def never_linear(eqn: Eqn, layouts: list) -> bool:
    """The default of ``elementwise``: partial operands are summed first."""
    return False


def elementwise(linear_in_partials: Callable[[Eqn, list], bool] = never_linear) -> Callable:
    """The rule of an elementwise operation. ``linear_in_partials(eqn, layouts)``: is the
    result a partial sum when the PARTIAL operands are (the op is linear in them)?"""
    def rule(ctx, eqn, ins):
        layouts = [l for _, l in ins]
        arrays = [rank(a) > 0 for a in eqn.invars]
        split = next((l for l, a in zip(layouts, arrays) if isinstance(l, int) and a), None)
        if split is not None:
            vals = [ctx.split(v, l, split, eqn) if a else ctx.full(v, l) for (v, l), a in zip(ins, arrays)]
            return with_layout(bind_like(eqn, vals), split)
        if PARTIAL in layouts:
            if not linear_in_partials(eqn, layouts):
                return replicated(ctx, eqn, ins)
            outs = bind_like(eqn, [v for v, _ in ins])
            if layouts.count(PARTIAL) == 1 and not eqn.primitive.multiple_results:
                ctx.full_recipes[id(outs[0])] = (outs[0], lambda: bind_like(eqn, [ctx.full(v, l) for v, l in ins])[0])
            return with_layout(outs, PARTIAL)
        outs = bind_like(eqn, [v for v, _ in ins])
        if not eqn.primitive.multiple_results and any(arrays):
            def split_of(d, ins=ins, arrays=arrays):  # compute on blocks instead of slicing the result
                return bind_like(eqn, [ctx.split(v, None, d, eqn) if a else v for (v, _), a in zip(ins, arrays)])[0]
            ctx.split_recipes[id(outs[0])] = (outs[0], split_of)
        return with_layout(outs, None)
    return rule


def linear_unary(rule_for_split: Callable) -> Callable:
    """A rule for a shape operation linear in its one operand: partial stays partial;
    ``rule_for_split(ctx, eqn, x, d, rest)`` handles an operand split along ``d``."""
    def rule(ctx, eqn, ins):
        (x, layout), *rest = ins
        if any(l is not None for _, l in rest):
            return replicated(ctx, eqn, ins)
        if layout is None:
            return with_layout(bind_like(eqn, [x, *[v for v, _ in rest]]), None)
        if layout == PARTIAL:
            outs = bind_like(eqn, [x, *[v for v, _ in rest]])
            ctx.full_recipes[id(outs[0])] = (outs[0], lambda: bind_like(eqn, [ctx.full(x, PARTIAL), *[v for v, _ in rest]])[0])
            return with_layout(outs, PARTIAL)
        return rule_for_split(ctx, eqn, x, layout, [v for v, _ in rest])
    return rule


def along_dims(dims_of: Callable[[dict], Sequence[int]], reduces: bool) -> Callable:
    """Operations that work along some dimensions and treat the others independently."""
    def rule(ctx, eqn, ins):
        layouts = [l for _, l in ins]
        split = next((l for l in layouts if isinstance(l, int)), None)
        if split is None:
            return replicated(ctx, eqn, ins)
        dims = tuple(dims_of(eqn.params))
        if split in dims:  # it needs the whole dimension: gather it, every device computes it all
            return replicated(ctx, eqn, ins)
        out_d = split - sum(1 for a in dims if a < split) if reduces else split
        vals = [ctx.split(v, l, split, eqn) if rank(a) else ctx.full(v, l) for (v, l), a in zip(ins, eqn.invars)]
        return with_layout(bind_like(eqn, vals), out_d)
    return rule


def call_rule(param: str) -> Callable:
    """A call-like primitive (its body in ``eqn.params[param]``): the body is walked inline."""
    def rule(ctx, eqn, ins):
        body = eqn.params[param]
        return ctx.walk(body.jaxpr, [(c, None) for c in body.consts], ins)
    return rule


# --- control flow: bodies become per-device bodies ----------------------------------------------------------
#
# A body is walked on its operands' layouts into a per-device jaxpr. Branches of a cond (its
# index is replicated, so every device takes the same branch) must agree on their outputs'
# layouts, and a loop body must give its carries the layouts it got: where they differ the
# value is made whole (replicated) and the body walked again, until the layouts are stable.

def convert_layout(ctx, value, layout, target):
    """``value`` in the ``target`` layout: the layout it has (or KEEP), or None (made whole)."""
    if target == KEEP or target == layout:
        return value, layout
    return ctx.full(value, layout), None


def agree(layout_lists: list[list]) -> list:
    """Per position: the layout every list gives it, else None (replicated)."""
    return [ls[0] if all(l == ls[0] for l in ls) else None for ls in zip(*layout_lists)]


def loop_layouts(carry: list, body_of: Callable[[list], list]) -> list:
    """Carry layouts the loop body keeps: start from the initial ones and replicate every
    carry the body changes, until none changes (at most one pass per carry)."""
    layouts = [l for _, l in carry]
    while True:
        after = body_of(layouts)
        joined = agree([layouts, after])
        if joined == layouts:
            return layouts
        layouts = joined
