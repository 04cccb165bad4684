"""Replication typing inside ``shard``: which mesh axes a value varies over (JAX's "vma").

Inside ``shard(f, mesh, ...)`` with ``check_vma=True`` (the default) every aval carries
``vma``: the mesh axes along which the value may differ between devices. An input whose
in-spec names axis ``'data'`` varies over ``'data'``; a replicated one (``P()``) is
invariant. The rules:

* an ordinary operation's result varies over the union of its operands' axes; an operand
  that varies over fewer axes is first cast with ``pvary`` (the identity on values), so
  every equation's operands agree. ``pvary`` transposes to ``psum``: the gradient of a
  replicated parameter used with per-device data comes out summed over the devices;
* a primitive may register its own rule in ``vma_rules`` (collectives: ``psum`` removes
  the axes it sums over, ``axis_index``/``ppermute`` vary over their axis, ...; higher-order
  primitives take their results' axes from their typed bodies);
* ``shard`` checks its outputs against ``out_specs``.

The typing is active only while a ``shard`` body (or a transform of one) is traced:
``manual_axes_frame`` says which mesh axes are manual there. Binding a primitive then
goes through ``match_operands`` (called by ``Primitive.bind``: the one generic place),
and ``Primitive.abstract_eval`` gives the results' ``vma`` through ``output_vmas``.
A rule is ``rule(in_vmas, manual, **params) -> (wanted in_vmas, out vma or list of them)``
where ``manual`` is the frozenset of manual axes in scope.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from fgrad.core.types import ShapedArray

#: Per-primitive typing rules (see the module doc); the default joins every operand.
vma_rules: dict[Any, Callable] = {}

#: The vma of a value that is the same on every device (and of every value outside shard).
INVARIANT: frozenset = frozenset()


class _Manual(threading.local):
    def __init__(self):
        self.frames: list[frozenset] = []


_manual = _Manual()


@contextmanager
def manual_axes_frame(axes: Sequence[Any]) -> Iterator[None]:
    """Trace the enclosed code with ``axes`` (mesh axis names) manual: values are typed with
    the axes they vary over. An empty ``axes`` turns the typing off (``check_vma=False``)."""
    _manual.frames.append(frozenset(axes))
    try:
        yield
    finally:
        _manual.frames.pop()


def manual_axes() -> frozenset:
    """The manual mesh axes of the ``shard`` being traced here (empty outside one)."""
    frames = _manual.frames
    return frames[-1] if frames else INVARIANT


def _join(vmas: Sequence[frozenset]) -> frozenset:
    out = INVARIANT
    for v in vmas:
        if v and v is not out:
            out = out | v
    return out


def default_rule(in_vmas: Sequence[frozenset], manual: frozenset, **params) -> tuple[list, frozenset]:
    """Operands are cast up to their union, which the results vary over."""
    joined = _join(in_vmas)
    return [joined] * len(in_vmas), joined


def typed_by_body(in_vmas: Sequence[frozenset], manual: frozenset, **params) -> tuple[list, None]:
    """Higher-order primitives: operands as they are; results typed by the body (``None``)."""
    return list(in_vmas), None


def _rule_of(primitive) -> Callable:
    return vma_rules.get(primitive, default_rule)


def wanted_vmas(primitive, in_vmas: Sequence[frozenset], params: dict) -> list[frozenset]:
    """The axes each operand (varying over ``in_vmas``) must vary over before ``primitive``."""
    wanted, _ = _rule_of(primitive)(list(in_vmas), manual_axes(), **params)
    return wanted


def output_vmas(primitive, avals: Sequence[ShapedArray], params: dict, out: Any) -> Any:
    """``out`` (the shape rule's aval or avals) with each result's ``vma`` set."""
    manual = manual_axes()
    in_vmas = [a.vma for a in avals]
    if not manual and not any(in_vmas):
        return out
    _, out_vma = _rule_of(primitive)(in_vmas, manual, **params)
    if out_vma is None:
        return out
    if isinstance(out, (list, tuple)):
        vmas = out_vma if isinstance(out_vma, list) else [out_vma] * len(out)
        return type(out)(a if a.vma == v else a.update(vma=v) for a, v in zip(out, vmas))
    return out if out.vma == out_vma else out.update(vma=out_vma)


def typing_active() -> bool:
    """Whether operands must be matched (a checked ``shard`` body is being traced)."""
    frames = _manual.frames
    return bool(frames and frames[-1])


def missing_axes(have: frozenset, want: frozenset) -> tuple:
    """The axes of ``want`` that ``have`` lacks, in a stable order."""
    return tuple(sorted(want - have, key=str))
