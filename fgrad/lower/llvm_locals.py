"""Kernel locals in the LLVM renderer: the vector-loop context, locals held in SSA slots
(per-lane partial reductions) and locals in stack arrays."""
from __future__ import annotations

import math
from dataclasses import dataclass

from fgrad.lower import llvm_ir as ir
import numpy as np

from fgrad.lower.kernel import Local, Range, bool_, is_float
from fgrad.lower.llvm_base import (
    I32, I64, PTR, Unsupported, Val, const_value, inbounds_gep, load_slot, splat_value, value_type,
)


@dataclass
class VecCtx:
    """The vector loop being rendered: its lanes, and partial reductions of outer locals."""

    range: Range
    width: int
    init_block: ir.Block | None     # where partials start (None: the loop makes none)
    partials: dict
    mask: ir.Value | None = None        # the tail iteration's active lanes (<w x i1>)
    last_lane: ir.Value | None = None   # and the index of its last active lane (i32)
    active: int | None = None           # how many lanes are active, where known when rendering


class SlotLocal:
    """A local kept in registers: one alloca per constant index or per vector of lanes."""

    def __init__(self, r, local: Local, init: Val | None,
                 init_block: ir.Block | None, lanes: int) -> None:
        self.r, self.local, self.init, self.init_block = r, local, init, init_block
        self.lanes = lanes               # > 1: defined inside a vector loop, one value per lane
        self.slots: dict[tuple[int, int], ir.Value] = {}
        # per-lane partial sums of vector loops accumulating into slot i: (alloca, op); kept
        # across the loops around those vector loops, folded in only when the slot is read
        self.partials: dict[int, tuple[ir.Value, str]] = {}

    def add_partial(self, i: int, name: str, value: ir.Value) -> None:
        """Accumulate a vector ``value`` into slot ``i``'s per-lane partial (made on first use,
        reset to the identity where the local is defined)."""
        r, b = self.r, self.r.b
        entry = self.partials.get(i)
        if entry is not None and (entry[1] != name or entry[0].allocated_type != value.type):
            self.fold(i)
            entry = None
        if entry is None:
            vt = value.type
            partial = r.alloca(vt)
            init = ir.IRBuilder(self.init_block)
            init.position_before(self.init_block.terminator)
            identity = ir.Constant(vt, [reduce_identity(name, self.local.dtype)] * vt.count)
            init.store(identity, partial)
            entry = self.partials[i] = (partial, name)
        current = Val("v", load_slot(b, entry[0]))
        b.store(r.combine(name, current, Val("v", value), self.local.dtype).value, entry[0])

    def fold(self, i: int) -> None:
        """Add slot ``i``'s pending partial into it and reset the partial (before reading it)."""
        entry = self.partials.get(i)
        if entry is None:
            return
        r, b = self.r, self.r.b
        partial, name = entry
        total = r.horizontal(name, load_slot(b, partial), self.local.dtype)
        slot = self._slot(i, 1)
        b.store(r.combine(name, Val("u", load_slot(b, slot)), Val("u", total), self.local.dtype).value, slot)
        identity = [reduce_identity(name, self.local.dtype)] * partial.allocated_type.count
        b.store(ir.Constant(partial.allocated_type, identity), partial)

    def fold_all(self) -> None:
        for i in list(self.partials):
            self.fold(i)

    def _slot(self, start: int, width: int) -> ir.Value:
        key = (start, width)
        slot = self.slots.get(key)
        if slot is not None:
            return slot
        if not 0 <= start and start + width <= self.local.size:
            raise IndexError(f"local {self.local.name}[{start}] is out of bounds (size {self.local.size})")
        for (s, w) in self.slots:
            if s < start + width and start < s + w:
                raise Unsupported("local", self.local.name, "mixed-width access to a register local")
        t = value_type(self.local.dtype)
        slot_type = ir.VectorType(t, width) if width > 1 else t
        slot = self.r.alloca(slot_type)
        self.slots[key] = slot
        if self.init is not None:
            b = ir.IRBuilder(self.init_block)
            b.position_before(self.init_block.terminator)
            value = self.init.value
            if width > 1 and not isinstance(value.type, ir.VectorType):
                value = splat_value(b, value, width)
            b.store(value, slot)
        return slot

    def _covering(self, i: int) -> tuple[ir.Value, int] | None:
        for (s, w), slot in self.slots.items():
            if w > 1 and s <= i < s + w:
                return slot, i - s
        return None

    def load(self, index: Val) -> Val:
        b = self.r.b
        if self.lanes > 1:
            return Val("v", load_slot(b, self._slot(self._const(index), self.lanes)))
        self.fold_all()
        if index.kind == "u":
            i = self._const(index)
            cover = self._covering(i)
            if cover is not None:
                return Val("u", b.extract_element(load_slot(b, cover[0]), I32(cover[1])))
            return Val("u", load_slot(b, self._slot(i, 1)))
        start, width = self._vector_index(index)
        return Val("v", load_slot(b, self._slot(start, width)))

    def store(self, index: Val, value: Val) -> None:
        b, r = self.r.b, self.r
        if self.lanes > 1:
            b.store(r.vector(value, self.local.dtype), self._slot(self._const(index), self.lanes))
            return
        self.fold_all()
        if index.kind == "u":
            if not value.uniform:
                raise Unsupported("loop", r.vec_key(), f"per-lane value stored to local "
                                   f"{self.local.name} at one index")
            i = self._const(index)
            cover = self._covering(i)
            if cover is not None:
                vec = b.insert_element(load_slot(b, cover[0]), value.value, I32(cover[1]))
                b.store(vec, cover[0])
            else:
                b.store(value.value, self._slot(i, 1))
            return
        start, width = self._vector_index(index)
        b.store(r.vector(value, self.local.dtype), self._slot(start, width))

    def accumulate(self, index: Val, name: str, value: Val) -> None:
        r = self.r
        if index.kind == "u" and self.lanes == 1 and r.vec is not None:
            r.accumulate_partial(self, self._const(index), name, value)
            return
        current = self.load(index)
        self.store(index, r.combine(name, current, value, self.local.dtype))

    def _const(self, index: Val) -> int:
        c = const_value(index.value) if index.kind == "u" else None
        if c is None:
            raise Unsupported("local", self.local.name, "index is not a constant after unrolling")
        return int(c)

    def _vector_index(self, index: Val) -> tuple[int, int]:
        c = const_value(index.value) if index.kind == "a" else None
        if c is None or index.stride != 1:
            raise Unsupported("local", self.local.name, "per-lane index is not base + lane")
        return int(c), self.r.vec.width


#: the alignment of stack array locals, in bytes (a cache line)
ARRAY_ALIGN = 64


class ArrayLocal:
    """A local as a stack array, for indices only known at run time."""

    def __init__(self, r, local: Local, init: Val | None) -> None:
        if r.vec is not None:
            raise Unsupported("loop", r.vec_key(), f"array local {local.name} inside a vector loop")
        self.r, self.local = r, local
        self.elem = value_type(local.dtype)
        # cache-line aligned (LLVM's default is the element's alignment), so that the vector
        # loads of a GEMM's packed B panel (a stack array) never straddle two lines
        array = r.alloca(ir.ArrayType(self.elem, local.size), align=ARRAY_ALIGN)
        # an opaque pointer to element 0, so scalar and vector accesses both type-check
        self.base = r.b.inttoptr(r.b.ptrtoint(array, I64), PTR)
        if init is not None:
            r.counted_loop(I64(0), I64(local.size), 1, lambda n: r.b.store(init.value, self._ptr(n)))

    def _base(self) -> ir.Value:
        return self.base

    def _ptr(self, i: ir.Value) -> ir.Value:
        return inbounds_gep(self.r.b, self.base, [i], self.elem)

    def load(self, index: Val) -> Val:
        r = self.r
        if index.kind == "u":
            return Val("u", r.b.load(self._ptr(r.index64(index.value)), typ=self.elem))
        if index.kind == "a" and index.stride == 1:
            vt = ir.VectorType(self.elem, r.vec.width)
            return Val("v", r.b.load(self._ptr(r.index64(index.value)), typ=vt,
                                     align=self.local.dtype.itemsize))
        return Val("v", r.gather(self._base(), self.elem, index, None))

    def store(self, index: Val, value: Val) -> None:
        r = self.r
        if index.kind == "u":
            if not value.uniform:
                raise Unsupported("loop", r.vec_key(), "per-lane value stored at one index")
            r.b.store(value.value, self._ptr(r.index64(index.value)))
        elif index.kind == "a" and index.stride == 1:
            r.b.store(r.vector(value, self.local.dtype), self._ptr(r.index64(index.value)),
                      align=self.local.dtype.itemsize)
        else:
            r.scatter(self._base(), self.elem, index, r.vector(value, self.local.dtype))

    def accumulate(self, index: Val, name: str, value: Val) -> None:
        r = self.r
        if r.vec is not None and index.kind != "a":
            raise Unsupported("loop", r.vec_key(), "vector accumulate into a stack array")
        self.store(index, r.combine(name, self.load(index), value, self.local.dtype))


_IDENTITY = {"add": 0, "mul": 1, "or": 0, "xor": 0}


def reduce_identity(name: str, dtype: np.dtype):
    """The identity of reduction ``name`` on ``dtype`` (a Python value): the start of partials."""
    if name in _IDENTITY:
        v = _IDENTITY[name]
        return bool(v) if dtype == bool_ else (float(v) if is_float(dtype) else v)
    if name == "and":
        return True if dtype == bool_ else -1
    big = math.inf if is_float(dtype) else None
    if dtype == bool_:
        return name == "min"
    if big is None:
        info = np.iinfo(dtype)
        return int(info.min) if name == "max" else int(info.max)
    return -big if name == "max" else big
