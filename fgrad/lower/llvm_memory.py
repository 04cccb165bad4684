"""Param loads and stores of the LLVM kernel renderer (a mixin of ``_KernelRenderer``)."""
from __future__ import annotations

from fgrad.lower import llvm_ir as ir
import numpy as np

from fgrad.lower.kernel import INDEX, Const, Expr, Load, Op, Store, bool_, cast, int32, is_int, op
from fgrad.lower.llvm_base import (
    I1, I32, I64, I8, MAX_DEINTERLEAVE_STRIDE, PTR, VOID, Unsupported, Val, const_value, memory_type,
    splat_value, type_bytes, value_type,
)


class MemoryAccess:
    """Loads from and stores to kernel params, scalar or per vector lane (contiguous, strided,
    gathered, masked). A mixin of ``llvm_kernel._KernelRenderer``, whose builder, vector
    context and params it uses."""

    def emit_load(self, e: Load) -> Val:
        index = self.emit(e.index)
        mask = self.emit(e.mask) if e.mask is not None else None
        p = self.params[e.param][1]
        if p.size == 0 and mask is not None:
            return Val("u", ir.Constant(value_type(e.dtype), 0))
        if index.uniform and (mask is None or mask.uniform):
            return Val("u", self.scalar_load(e, index.value, mask.value if mask else None))
        mask = self.tail_mask(mask)
        if index.kind == "a" and index.stride == 1:
            return Val("v", self.contiguous_load(e, index.value, mask))
        if index.kind == "a" and 2 <= index.stride <= MAX_DEINTERLEAVE_STRIDE:
            return Val("v", self.strided_load(e, index.value, index.stride, mask))
        if index.kind == "v" and index.pattern is not None and 1 <= index.pattern[1] <= MAX_DEINTERLEAVE_STRIDE:
            return Val("v", self.pattern_load(e, index.pattern, mask))
        vmask = self.vector(mask, bool_) if mask is not None else None
        raw = self.gather(self.params[e.param][0], memory_type(e.dtype), self.lane_index(e.index, index), vmask)
        return Val("v", self.from_memory(raw, e.dtype))

    def scalar_load(self, e: Load, index: ir.Value, mask: ir.Value | None) -> ir.Value:
        b = self.b
        if mask is not None:
            index = b.select(mask, self.index64(index), I64(0))
        raw = b.load(self.element_ptr(e.param, index), typ=memory_type(e.dtype))
        value = self.from_memory(raw, e.dtype)
        if mask is not None:
            value = b.select(mask, value, ir.Constant(value.type, 0))
        return value

    def contiguous_load(self, e: Load, base: ir.Value, mask: Val | None) -> ir.Value:
        w, b = self.vec.width, self.b
        vt = ir.VectorType(memory_type(e.dtype), w)
        ptr = self.element_ptr(e.param, base)
        if mask is None:
            raw = b.load(ptr, typ=vt, align=e.dtype.itemsize)
        else:
            vmask = self.vector(mask, bool_)
            fn = self.mc.intrinsic("llvm.masked.load", vt, [PTR, I32, vmask.type, vt], [vt, PTR])
            raw = b.call(fn, [ptr, I32(e.dtype.itemsize), vmask, ir.Constant(vt, None)])
        return self.from_memory(raw, e.dtype)

    def strided_load(self, e: Load, base: ir.Value, stride: int, mask: Val | None) -> ir.Value:
        """Lanes ``base + k * stride`` as one masked load of ``w * stride`` contiguous elements
        (only every stride-th enabled, so nothing past the last lane is touched) and a
        shuffle picking them out: cheaper than a gather for window and strided-conv reads."""
        w, b = self.vec.width, self.b
        wide = w * stride
        vt = ir.VectorType(memory_type(e.dtype), wide)
        mt = ir.VectorType(I1, wide)
        picked = [k * stride for k in range(w)]
        if mask is None:
            wide_mask = ir.Constant(mt, [k % stride == 0 for k in range(wide)])
        else:
            spread = [k // stride if k % stride == 0 else w for k in range(wide)]
            wide_mask = self.mask_lanes(self.mask_bytes(self.vector(mask, bool_)), spread)
        fn = self.mc.intrinsic("llvm.masked.load", vt, [PTR, I32, mt, vt], [vt, PTR])
        raw = b.call(fn, [self.element_ptr(e.param, base), I32(e.dtype.itemsize), wide_mask, ir.Constant(vt, None)])
        lanes_out = b.shuffle_vector(raw, raw, ir.Constant(ir.VectorType(I32, w), picked))
        return self.from_memory(lanes_out, e.dtype)

    # Masks are moved between lanes as bytes: LLVM's x86 code generator at level 0 (the quick
    # pipeline) miscompiled shuffles of <N x i1> that widen a mask into a 24-lane load's (a
    # strided read's tail on AVX2 read a lane its mask had turned off)
    def mask_bytes(self, lanes: ir.Value) -> ir.Value:
        """A <w x i1> mask as <w x i8> (1 where on)."""
        return self.b.zext(lanes, ir.VectorType(I8, lanes.type.count))

    def shuffle_bytes(self, raw: ir.Value, picks: list[int]) -> ir.Value:
        """Lane k of the result is ``raw[picks[k]]``, or 0 where ``picks[k]`` is past its lanes."""
        zero = ir.Constant(raw.type, None)
        return self.b.shuffle_vector(raw, zero, ir.Constant(ir.VectorType(I32, len(picks)), picks))

    def mask_lanes(self, raw: ir.Value, picks: list[int]) -> ir.Value:
        """``shuffle_bytes`` back to a <len(picks) x i1> mask."""
        picked = self.shuffle_bytes(raw, picks)
        return self.b.icmp_unsigned("!=", picked, ir.Constant(picked.type, None))

    def pattern_load(self, e: Load, pattern: tuple, mask: Val | None) -> ir.Value:
        """Lanes ``min(base + stride * (k // div), clamp)``: the ``w / div`` distinct elements in
        one masked contiguous load (every stride-th enabled, none past ``clamp``), then a
        shuffle repeating each ``div`` times; lanes past ``clamp`` take its element. An element
        is fetched when any of its lanes is enabled."""
        base, stride, div, clamp = pattern
        w, b = self.vec.width, self.b
        distinct = w // div
        wide = distinct * stride
        vt = ir.VectorType(memory_type(e.dtype), wide)
        mt = ir.VectorType(I1, wide)
        if mask is None:
            wide_mask = ir.Constant(mt, [k % stride == 0 for k in range(wide)])
        else:
            lanes = self.vector(mask, bool_)
            raw_lanes = self.mask_bytes(lanes)
            group = None
            for d in range(div):
                pick = self.shuffle_bytes(raw_lanes, [j * div + d for j in range(distinct)])
                group = pick if group is None else b.or_(group, pick)
            spread = [k // stride if k % stride == 0 else distinct for k in range(wide)]
            wide_mask = self.mask_lanes(group, spread)
        if clamp is not None:       # offsets k*stride (k % stride == 0) up to clamp - base
            room = b.sub(self.index64(clamp), self.index64(base))
            offsets = ir.Constant(ir.VectorType(I64, wide), list(range(wide)))
            wide_mask = b.and_(wide_mask, b.icmp_signed("<=", offsets, splat_value(b, room, wide)))
        fn = self.mc.intrinsic("llvm.masked.load", vt, [PTR, I32, mt, vt], [vt, PTR])
        raw = b.call(fn, [self.element_ptr(e.param, base), I32(e.dtype.itemsize), wide_mask, ir.Constant(vt, None)])
        picked = [(k // div) * stride for k in range(w)]
        value = b.shuffle_vector(raw, raw, ir.Constant(ir.VectorType(I32, w), picked))
        if clamp is not None:
            edge = b.load(self.element_ptr(e.param, clamp), typ=memory_type(e.dtype))
            lane_offsets = ir.Constant(ir.VectorType(I64, w), picked)
            past = b.icmp_signed(">", lane_offsets, splat_value(b, room, w))
            value = b.select(past, splat_value(b, edge, w), value)
        if mask is not None:        # a lane whose group was fetched for another lane still reads 0
            value = b.select(lanes, value, ir.Constant(value.type, None))
        return self.from_memory(value, e.dtype)

    def gather(self, base: ir.Value, elem: ir.Type, index: Val, mask: ir.Value | None) -> ir.Value:
        """A SIMD gather from ``base[index]`` (masked-off lanes yield 0 and touch no memory)."""
        w = self.vec.width
        ptrs = self.lane_pointers(base, elem, index)
        vt = ir.VectorType(elem, w)
        mask = mask if mask is not None else ir.Constant(ir.VectorType(I1, w), [1] * w)
        fn = self.mc.intrinsic("llvm.masked.gather", vt, [ptrs.type, I32, mask.type, vt], [vt, ptrs.type])
        return self.b.call(fn, [ptrs, I32(type_bytes(elem)), mask,
                                ir.Constant(vt, None)])

    def scatter(self, base: ir.Value, elem: ir.Type, index: Val, value: ir.Value,
                mask: ir.Value | None = None) -> None:
        """A SIMD scatter to ``base[index]``; lanes are stored in order, so the last lane wins."""
        w = self.vec.width
        ptrs = self.lane_pointers(base, elem, index)
        mask = mask if mask is not None else ir.Constant(ir.VectorType(I1, w), [1] * w)
        fn = self.mc.intrinsic("llvm.masked.scatter", VOID, [value.type, ptrs.type, I32, mask.type],
                               [value.type, ptrs.type])
        self.b.call(fn, [value, ptrs, I32(type_bytes(elem)), mask])

    def lane_pointers(self, base: ir.Value, elem: ir.Type, index: Val) -> ir.Value:
        """``<w x ptr>`` to base[index[k]] (a vector GEP; 32-bit indices stay 32-bit, and 64-bit
        ones become 32-bit where the kernel's indices fit: a gather of twice the lanes)."""
        idx = self.vector(index, None)
        if idx.type.element == I64 and self.index_fits_int32():
            idx = self.b.trunc(idx, ir.VectorType(I32, idx.type.count))
        return self.b.gep(base, [idx], inbounds=True, source_etype=elem)     # <w x ptr>

    def lane_index(self, expr: Expr, index: Val) -> Val:
        """A gather's or scatter's per-lane ``index`` (the value of ``expr``), redone in 32-bit
        lanes where every index of the kernel fits int32 (``narrowed_index``)."""
        if expr.dtype == INDEX and self.index_fits_int32():
            return self.emit(narrowed_index(expr, self.narrowed))
        return index

    def from_memory(self, raw: ir.Value, dtype: np.dtype) -> ir.Value:
        if dtype != bool_:
            return raw
        return self.b.icmp_unsigned("!=", raw, self.low.const_like(raw, 0))

    def to_memory(self, value: ir.Value, dtype: np.dtype) -> ir.Value:
        if dtype != bool_:
            return value
        t = value.type
        to = ir.VectorType(I8, t.count) if isinstance(t, ir.VectorType) else I8
        return self.b.zext(value, to)


    # -- stores
    def stmt_Store(self, s: Store) -> None:
        index, value = self.emit(s.index), self.emit(s.value)
        if not index.uniform and not (index.kind == "a" and index.stride == 1):      # a scatter
            index = self.lane_index(s.index, index)
        mask = self.emit(s.mask) if s.mask is not None else None
        dtype = self.params[s.param][1].dtype
        if self.vec is not None and self.vec.mask is not None and not (index.uniform and value.uniform):
            self.store_in_tail(s, dtype, index, value, mask)
        elif mask is not None and mask.uniform and index.uniform:
            with self.b.if_then(mask.value):
                self.store_unmasked(s.param, dtype, index, value)
        elif mask is None or (mask.uniform and const_value(mask.value)):
            self.store_unmasked(s.param, dtype, index, value)
        else:
            self.store_masked(s.param, dtype, index, value, self.vector(mask, bool_))
        self.forget(s.param)

    def store_in_tail(self, s: Store, dtype: np.dtype, index: Val, value: Val, mask: Val | None) -> None:
        """A store inside a masked tail: only active lanes store; at one index, the last one."""
        if index.uniform:
            if mask is not None and not mask.uniform:
                raise Unsupported("tail", self.vec_key(), "per-lane store mask at one index")
            v = self.b.extract_element(self.vector(value, dtype), self.vec.last_lane)
            if mask is not None:
                with self.b.if_then(mask.value):
                    self.b.store(self.to_memory(v, dtype), self.element_ptr(s.param, index.value))
            else:
                self.b.store(self.to_memory(v, dtype), self.element_ptr(s.param, index.value))
            return
        if mask is None and self.vec.active is not None and index.kind == "a" and index.stride == 1 \
                and self.mc.target.vector_bytes < 64:
            self.store_lanes(s.param, dtype, index, value, self.vec.active)
            return
        self.store_masked(s.param, dtype, index, value, self.tail_mask(mask).value)

    def store_lanes(self, param: str, dtype: np.dtype, index: Val, value: Val, count: int) -> None:
        """The first ``count`` lanes stored one by one at a contiguous index: a loop's tail of known
        length without a masked store, which AVX2 makes microcoded ``vmaskmovps`` (on AMD Zen 3,
        rows of 11 floats: 7.2 ns a row with it, 1.6 without)."""
        b = self.b
        v = self.to_memory(self.vector(value, dtype), dtype)
        base = self.element_ptr(param, index.value)
        for lane in range(count):
            ptr = b.gep(base, [I64(lane)], source_etype=memory_type(dtype)) if lane else base
            b.store(b.extract_element(v, I32(lane)), ptr)

    def store_unmasked(self, param: str, dtype: np.dtype, index: Val, value: Val) -> None:
        b = self.b
        if index.uniform:
            v = value.value
            if not value.uniform:      # the last lane is the last iteration's store
                v = b.extract_element(v, I32(self.vec.width - 1))
            b.store(self.to_memory(v, dtype), self.element_ptr(param, index.value))
        elif index.kind == "a" and index.stride == 1:
            v = self.to_memory(self.vector(value, dtype), dtype)
            b.store(v, self.element_ptr(param, index.value), align=dtype.itemsize)
        else:
            v = self.to_memory(self.vector(value, dtype), dtype)
            self.scatter(self.params[param][0], memory_type(dtype), index, v)

    def store_masked(self, param: str, dtype: np.dtype, index: Val, value: Val, mask: ir.Value) -> None:
        """Vector store of the lanes where ``mask`` holds (contiguous: one masked store)."""
        b = self.b
        v = self.to_memory(self.vector(value, dtype), dtype)
        if index.kind == "a" and index.stride == 1:
            fn = self.mc.intrinsic("llvm.masked.store", VOID, [v.type, PTR, I32, mask.type], [v.type, PTR])
            b.call(fn, [v, self.element_ptr(param, index.value), I32(dtype.itemsize), mask])
            return
        self.scatter(self.params[param][0], memory_type(dtype), index, v, mask)


#: int64 ops whose int32 form computes the same value wherever every value fits in int32
_NARROWS = frozenset({"add", "sub", "mul", "floordiv", "mod", "rem", "neg", "min", "max", "abs"})


def narrowed_index(e: Expr, memo: dict) -> Expr:
    """An int64 index expression redone in int32 (``memo``: results by expression). Valid only
    where every int64 value of the kernel fits in int32 (``index_fits_int32``): a gather's
    per-lane index math then runs in 32-bit lanes, 16 per 512-bit vector and no 64-bit
    multiplies (3 uops on AVX-512) or widening and narrowing moves (an im2col pack's inner
    loop: 81 -> 60 instructions). Comparisons and conditions stay as they are."""
    done = memo.get(e)
    if done is not None:
        return done
    if e.dtype != INDEX:
        out = e
    elif isinstance(e, Const):
        out = Const(e.value, int32)
    elif isinstance(e, Op) and e.op == "cast" and is_int(e.args[0].dtype) and e.args[0].dtype.itemsize <= 4 \
            and e.args[0].dtype != np.dtype(np.uint32):
        out = cast(e.args[0], int32) if e.args[0].dtype != int32 else e.args[0]
    elif isinstance(e, Op) and e.op in _NARROWS:
        out = op(e.op, *(narrowed_index(a, memo) for a in e.args))
    elif isinstance(e, Op) and e.op == "select":
        out = op("select", e.args[0], narrowed_index(e.args[1], memo), narrowed_index(e.args[2], memo))
    else:                     # a loop variable, a loaded index, anything else: computed, then cut
        out = cast(e, int32)
    memo[e] = out
    return out

