"""Loop rendering of the LLVM kernel renderer (a mixin of ``_KernelRenderer``): vector
loops and tails, unrolling, partial reductions, parallel chunks."""
from __future__ import annotations

from typing import Callable

from fgrad.lower import llvm_ir as ir
import numpy as np

from fgrad.lower.kernel import (
    AUTO, FULL, Accumulate, Const, DefineLocal, If, Load, LocalLoad, Op, Range, Store, bool_, stmt_exprs,
    walk_expr, walk_stmts,
)
from fgrad.lower.llvm_base import (
    CHUNKS_PER_THREAD, I32, I64, PARALLEL_MIN_WORK, PTR, VOID, Unsupported, Val, const_value,
    inbounds_gep, load_slot, splat_value, value_type,
)
from fgrad.lower.llvm_locals import SlotLocal, VecCtx, reduce_identity


class LoopRendering:
    """Ranges: vector loops with masked tails, unrolling, per-lane partial reductions and
    parallel chunks outlined for the thread pool. A mixin of ``llvm_kernel._KernelRenderer``."""

    def accumulate_partial(self, storage: SlotLocal, index: int, name: str, value: Val) -> None:
        """Accumulate into an outer local inside a vector loop: per-lane partials, folded later
        (when the local is next read, so loops around the vector loop don't fold each time)."""
        key = (storage.local.name, index)
        ctx, dtype = self.vec, storage.local.dtype
        if storage.init_block is not None:
            vector = self.vector(value, dtype)
            if ctx.mask is not None:
                identity = ir.Constant(vector.type, [reduce_identity(name, dtype)] * ctx.width)
                vector = self.b.select(ctx.mask, vector, identity)
            storage.add_partial(index, name, vector)
            return
        entry = ctx.partials.get(key)
        if entry is None:
            vt = ir.VectorType(value_type(dtype), ctx.width)
            partial = self.alloca(vt)
            b = ir.IRBuilder(ctx.init_block)
            b.position_before(ctx.init_block.terminator)
            b.store(ir.Constant(vt, [reduce_identity(name, dtype)] * ctx.width), partial)
            ctx.partials[key] = (partial, storage, index, name)
        elif entry[3] != name:
            raise Unsupported("loop", self.vec_key(), "two reduction ops on one local")
        else:
            partial = entry[0]
        current = Val("v", load_slot(self.b, partial))
        if ctx.mask is not None:
            identity = ir.Constant(ir.VectorType(value_type(dtype), ctx.width), [reduce_identity(name, dtype)] * ctx.width)
            value = Val("v", self.b.select(ctx.mask, self.vector(value, dtype), identity))
        self.b.store(self.combine(name, current, value, dtype).value, partial)

    def finish_partials(self, ctx: VecCtx) -> None:
        """Fold each partial's lanes into its local (after the vector loops)."""
        for partial, storage, index, name in ctx.partials.values():
            dtype = storage.local.dtype
            lanes = load_slot(self.b, partial)
            total = self.horizontal(name, lanes, dtype)
            current = storage.load(Val("u", I64(index)))
            storage.store(Val("u", I64(index)), self.combine(name, current, Val("u", total), dtype))
            self.forget(storage.local.name)

    def horizontal(self, name: str, v: ir.Value, dtype: np.dtype) -> ir.Value:
        """Reduce the lanes of a vector with ``name`` by halving (a shuffle tree)."""
        b = self.b
        n = v.type.count
        while n > 1:
            half = n // 2
            lo = b.shuffle_vector(v, v, ir.Constant(ir.VectorType(I32, half), list(range(half))))
            hi = b.shuffle_vector(v, v, ir.Constant(ir.VectorType(I32, half), list(range(half, n))))
            v = self.low.apply(name, [lo, hi], dtype, dtype)
            n = half
        return b.extract_element(v, I32(0))

    # -- loops
    def stmt_Range(self, s: Range) -> None:
        start, stop = self.emit(s.start), self.emit(s.stop)
        if not (start.uniform and stop.uniform):
            raise Unsupported("loop", self.vec_key(), f"bounds of loop {s.var.name} vary per lane")
        if s.parallel and not self.in_parallel and self.vec is None and id(s) not in self.serial_loops \
                and self.mc.target.num_threads > 1:
            self.parallel_range(s, self.index64(start.value), self.index64(stop.value))
        else:
            self.render_range(s, self.index64(start.value), self.index64(stop.value))

    def lanes_for(self, s: Range) -> int:
        if not s.vectorize or self.vec is not None or id(s) in self.scalar_loops:
            return 1
        if s.vectorize != AUTO:
            return s.vectorize
        # a load at one index for every lane (a scan's step counter, read into an index) is one
        # scalar load: its width says nothing of the lanes (an int64 one halved a GELU's)
        lane_vars = {s.var.name} | {st.var.name for st in walk_stmts(s.body) if isinstance(st, Range)}
        sizes = [self.kernel.param(n.param).dtype.itemsize for st in walk_stmts(s.body)
                 for e in stmt_exprs(st) for n in walk_expr(e) if isinstance(n, Load) and _per_lane(n, lane_vars)]
        sizes += [self.kernel.param(st.param).dtype.itemsize for st in walk_stmts(s.body)
                  if isinstance(st, Store)]
        sizes += [st.local.dtype.itemsize for st in walk_stmts(s.body) if isinstance(st, DefineLocal)]
        widest = max(sizes, default=8)
        return max(self.mc.target.vector_bytes // widest, 1)

    def render_range(self, s: Range, start: ir.Value, stop: ir.Value) -> None:
        w = self.lanes_for(s)
        trip = self.trip_count(start, stop, s.step)
        tc = const_value(trip)
        if s.unroll == FULL and tc is not None:
            self.unrolled(s, start, int(tc), w)
            return
        # the body's code runs once per iteration: a value read before the loop from what the
        # body writes is stale from the second iteration on
        self.forget_written(s.body)
        factor = max(s.unroll, 1)
        done: ir.Value = I64(0)
        if w > 1:
            done = self.vector_loops(s, start, trip, w, factor)
            factor = 1
        if factor > 1:
            main_end = self.round_down(trip, factor)
            self.counted_loop(done, main_end, factor,
                              lambda n: [self.iteration(s, self.iv(start, s.step, self.b.add(n, I64(u))), 1)
                                         for u in range(factor)])
            done = main_end
        self.counted_loop(done, trip, 1, lambda n: self.iteration(s, self.iv(start, s.step, n), 1))

    def enter_vector(self, s: Range, w: int) -> tuple[VecCtx, VecCtx | None]:
        """Start rendering ``s`` as ``w``-lane vectors: a block for the partials' initial values
        before the loop; returns the new context and the one to restore."""
        b, init_block = self.b, None
        # only a reduction into an outer local makes partials (blocks split the code LLVM's quick
        # code generator keeps values in registers across)
        if any(isinstance(st, Accumulate) for st in walk_stmts(s.body)):
            init_block = b.append_basic_block("vec.init")
            b.branch(init_block)
            b.position_at_end(init_block)
            after = b.append_basic_block("vec.main")
            b.branch(after)
            b.position_at_end(after)
        outer, self.vec = self.vec, VecCtx(s, w, init_block, {})
        return self.vec, outer

    def leave_vector(self, ctx: VecCtx, outer: VecCtx | None) -> None:
        self.vec = outer
        self.finish_partials(ctx)

    def vector_loops(self, s: Range, start: ir.Value, trip: ir.Value, w: int, factor: int) -> ir.Value:
        b = self.b
        ctx, outer = self.enter_vector(s, w)
        main_end = self.round_down(trip, w * factor)
        self.counted_loop(I64(0), main_end, w * factor,
                          lambda n: [self.iteration(s, self.iv(start, s.step, b.add(n, I64(u * w))), w)
                                     for u in range(factor)])
        end = main_end
        if factor > 1:
            end = self.round_down(trip, w)
            self.counted_loop(main_end, end, w, lambda n: self.iteration(s, self.iv(start, s.step, n), w))
        if id(s) not in self.scalar_tails:
            self.masked_tail(s, start, end, trip, ctx)
            end = trip
        self.leave_vector(ctx, outer)
        return end

    def masked_tail(self, s: Range, start: ir.Value, end: ir.Value, trip: ir.Value, ctx: VecCtx) -> None:
        """The last ``trip - end`` (< w) iterations as one vector iteration with inactive lanes
        masked: loads and stores of those lanes touch no memory, partial reductions skip them."""
        b, w = self.b, ctx.width
        rem = b.sub(trip, end)
        if const_value(rem) == 0:
            return
        lanes = ir.Constant(ir.VectorType(I64, w), list(range(w)))
        with b.if_then(b.icmp_signed(">", rem, I64(0))):
            ctx.mask = b.icmp_signed("<", lanes, splat_value(b, rem, w))
            ctx.last_lane = b.trunc(b.sub(rem, I64(1)), I32)
            ctx.active = const_value(rem)
            self.iteration(s, self.iv(start, s.step, end), w)
            ctx.mask = ctx.last_lane = ctx.active = None

    def tail_mask(self, mask: Val | None) -> Val | None:
        """``mask`` and'ed with the tail's active lanes (inside a masked tail)."""
        tail = self.vec.mask if self.vec is not None else None
        if tail is None:
            return mask
        if mask is None:
            return Val("v", tail)
        return Val("v", self.b.and_(self.vector(mask, bool_), tail))

    def unrolled(self, s: Range, start: ir.Value, trip: int, w: int) -> None:
        start_c = const_value(start)
        n = 0
        if w > 1 and trip >= w:
            ctx, outer = self.enter_vector(s, w)
            while n + w <= trip:
                self.iteration(s, self.const_iv(start, start_c, s.step, n), w, unrolled=True)
                n += w
            self.leave_vector(ctx, outer)
        while n < trip:
            self.iteration(s, self.const_iv(start, start_c, s.step, n), 1, unrolled=True)
            n += 1

    def const_iv(self, start: ir.Value, start_c, step: int, n: int) -> ir.Value:
        if start_c is not None:
            return I64(int(start_c) + n * step)
        return self.b.add(start, I64(n * step))

    def iv(self, start: ir.Value, step: int, n: ir.Value) -> ir.Value:
        c = const_value(start)
        scaled = n if step == 1 else self.b.mul(n, I64(step))
        return scaled if c == 0 else self.b.add(start, scaled)

    def iteration(self, s: Range, iv: ir.Value, w: int, unrolled: bool = False) -> None:
        self.push(s.var.name if unrolled else None)
        old = self.env.get(s.var.name)
        aligned = isinstance(s.start, Const) and s.start.value == 0
        self.env[s.var.name] = Val("a", iv, s.step, w * s.step if aligned else 0) if w > 1 else Val("u", iv)
        self.block(s.body)
        if old is None:
            del self.env[s.var.name]
        else:
            self.env[s.var.name] = old
        self.pop()

    def trip_count(self, start: ir.Value, stop: ir.Value, step: int) -> ir.Value:
        a, c = const_value(start), const_value(stop)
        if a is not None and c is not None:
            return I64(max(0, -(-(int(c) - int(a)) // step)))
        b = self.b
        span = b.sub(self.index64(stop), self.index64(start))
        span = b.select(b.icmp_signed("<", span, I64(0)), I64(0), span)
        if step == 1:
            return span
        return b.udiv(b.add(span, I64(step - 1)), I64(step))

    def round_down(self, n: ir.Value, k: int) -> ir.Value:
        c = const_value(n)
        if c is not None:
            return I64(int(c) // k * k)
        if k == 1:
            return n
        return self.b.sub(n, self.b.urem(n, I64(k)))

    def counted_loop(self, lo: ir.Value, hi: ir.Value, step: int, body: Callable[[ir.Value], object]) -> None:
        """for n in range(lo, hi, step): body(n) — hi - lo is a multiple of step or the loop ends early."""
        lc, hc = const_value(lo), const_value(hi)
        if lc is not None and hc is not None and hc <= lc:
            return
        b = self.b
        counter = self.alloca(I64)
        b.store(self.index64(lo), counter)
        header = b.append_basic_block("loop.header")
        body_block = b.append_basic_block("loop.body")
        exit_block = b.append_basic_block("loop.exit")
        b.branch(header)
        b.position_at_end(header)
        n = b.load(counter, typ=I64)
        b.cbranch(b.icmp_signed("<", n, self.index64(hi)), body_block, exit_block)
        b.position_at_end(body_block)
        self.push()
        body(n)
        self.pop()
        b.store(b.add(n, I64(step)), counter)
        b.branch(header)
        b.position_at_end(exit_block)

    # -- parallel loops
    parallel_key = None

    def parallel_range(self, s: Range, start: ir.Value, stop: ir.Value) -> None:
        """Outline the loop over a [lo, hi) range; split it into chunks for the thread pool
        (``fgrad_parallel``) when its estimated work is big enough, else call it directly."""
        captured = sorted(self.env)
        chunk_fn = self.outline_chunk(s, captured)
        b = self.b
        values = [arg for arg, _ in (self.params[p.name] for p in self.kernel.params)]
        args = values + [self.env[n].value for n in captured]
        trip = self.trip_count(start, stop, s.step)
        grain = max(1, self.lanes_for(s)) * max(1, s.unroll)
        cost = max(1, estimated_ops(s.body) // max(1, self.lanes_for(s)))
        threads = self.mc.target.num_threads
        # chunks: at most CHUNKS_PER_THREAD per thread, each >= PARALLEL_MIN_WORK and >= grain
        by_work = b.udiv(b.mul(trip, I64(cost)), I64(PARALLEL_MIN_WORK))
        by_grain = b.udiv(b.add(trip, I64(grain - 1)), I64(grain))
        nchunks = self.umin(self.umin(by_work, by_grain), I64(threads * CHUNKS_PER_THREAD))
        with b.if_else(b.icmp_signed(">", nchunks, I64(1))) as (then, otherwise):
            with then:
                per = b.udiv(b.add(trip, b.sub(nchunks, I64(1))), nchunks)
                per = b.mul(b.udiv(b.add(per, I64(grain - 1)), I64(grain)), I64(grain))
                fields = [b.ptrtoint(v, I64) for v in values] + [self.env[n].value for n in captured] \
                    + [self.index64(start), self.index64(stop), trip, per]
                ctx = self.alloca(ir.ArrayType(I64, len(fields)))
                for k, v in enumerate(fields):
                    b.store(v, inbounds_gep(b, ctx, [I64(0), I64(k)], ir.ArrayType(I64, len(fields))))
                pool_fn = self.outline_pool_body(s, chunk_fn, len(captured), len(fields))
                run = self.mc.declare("fgrad_parallel", VOID, [PTR, PTR, I64, I64])
                b.call(run, [pool_fn, ctx, nchunks, I64(threads)])
            with otherwise:
                b.call(chunk_fn, args + [self.index64(start), self.index64(stop)])

    def umin(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.select(self.b.icmp_unsigned("<", a, b), a, b)

    def outline_chunk(self, s: Range, captured: list[str]) -> ir.Function:
        args = [PTR] * len(self.kernel.params) + [I64] * (len(captured) + 2)
        fn = self.new_function(f"{self.fn.name}.par", args)
        for p, arg in zip(self.kernel.params, fn.args):
            if p.name not in self.kernel.may_alias:
                arg.add_attribute("noalias")
        state = self.save_state()
        try:
            self.start_function(fn)
            self.in_parallel = True
            self.parallel_key = id(s)
            self.params = {p.name: (arg, p) for p, arg in zip(self.kernel.params, fn.args)}
            nparams = len(self.kernel.params)
            for k, name in enumerate(captured):
                self.env[name] = Val("u", fn.args[nparams + k])
            lo, hi = fn.args[-2], fn.args[-1]
            self.render_range(s, lo, hi)
            self.b.ret_void()
        finally:
            self.restore_state(state)
            self.parallel_key = None
        return fn

    def outline_pool_body(self, s: Range, chunk_fn: ir.Function, ncaptured: int,
                          nfields: int) -> ir.Function:
        """fn(ctx, c): chunk ``c`` of the loop (iterations [c*per, min(trip, (c+1)*per)))."""
        fn = ir.Function(self.mc.module, ir.FunctionType(VOID, [PTR, I64]), self.mc.unique(f"{self.fn.name}.pool"))
        fn.linkage = "internal"
        self.created.append(fn.name)
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        nparams = len(self.kernel.params)
        arr_t = ir.ArrayType(I64, nfields)
        fields = [b.load(inbounds_gep(b, fn.args[0], [I64(0), I64(k)], arr_t), typ=I64) for k in range(nfields)]
        ptrs = [b.inttoptr(f, PTR) for f in fields[:nparams]]
        start, stop, trip, per = fields[-4:]
        lo = b.mul(fn.args[1], per)
        hi = b.add(lo, per)
        hi = b.select(b.icmp_signed("<", hi, trip), hi, trip)
        first = b.add(start, b.mul(lo, I64(s.step)))
        last = b.add(start, b.mul(hi, I64(s.step)))
        last = b.select(b.icmp_signed("<", last, stop), last, stop)
        b.call(chunk_fn, ptrs + fields[nparams:nparams + ncaptured] + [first, last])
        b.ret_void()
        return fn


def estimated_ops(stmts: tuple) -> int:
    """Rough scalar-op count of one execution of ``stmts`` (unknown trip counts count as 16):
    how the renderer sizes parallel chunks, and how the CPU backend picks a kernel's LLVM
    pipeline."""
    total = 0
    for s in stmts:
        total += sum(sum(1 for _ in walk_expr(e)) for e in stmt_exprs(s))
        if isinstance(s, Range):
            total += max(_trip_estimate(s), 0) * estimated_ops(s.body)
        elif isinstance(s, If):
            total += max(estimated_ops(s.then), estimated_ops(s.else_))
    return total


def _trip_estimate(s: Range) -> int:
    """A loop's trip count when its bounds are constants, or ``start .. min(start + c, ...)``
    (a block of at most c iterations); else 16."""
    a, c = s.start, s.stop
    if isinstance(a, Const) and isinstance(c, Const):
        return (c.value - a.value) // s.step
    if isinstance(c, Op) and c.op == "min":
        for bound in c.args:
            if isinstance(bound, Op) and bound.op == "add" and bound.args[0] == a and isinstance(bound.args[1], Const):
                return -(-bound.args[1].value // s.step)
    return 16


def unrolled_size(stmts: tuple) -> int:
    """Expression nodes the renderer emits for ``stmts``: a fully unrolled loop's body counts
    once per iteration, a loop unrolled by a factor that many times, any other loop's once.
    How big a kernel's LLVM module is, before rendering it: LLVM's time grows with it."""
    total = 0
    for s in stmts:
        total += sum(sum(1 for _ in walk_expr(e)) for e in stmt_exprs(s))
        if isinstance(s, Range):
            copies = max(s.unroll, 1)
            if s.unroll == FULL:
                a, c = s.start, s.stop
                copies = max((c.value - a.value) // s.step, 1) if isinstance(a, Const) and isinstance(c, Const) else 1
            total += copies * unrolled_size(s.body)
        elif isinstance(s, If):
            total += unrolled_size(s.then) + unrolled_size(s.else_)
    return total


def _per_lane(load: Load, lane_vars: set) -> bool:
    """Whether ``load`` may read a different element for each lane of a loop binding
    ``lane_vars``: its index or mask depends on one of them or on a local (whose value may
    differ per lane)."""
    return bool(load.variables & lane_vars) or any(isinstance(n, LocalLoad) for n in walk_expr(load))
