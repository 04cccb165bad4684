"""Render kernel IR programs to LLVM IR with ``llvmlite.ir``.

A program becomes one module: an internal function per kernel (buffer params are
``noalias`` pointers) and one entry point ``fgrad_main(ptr args)`` whose ``args``
array holds the external buffers (inputs, outputs, constants) followed by the
arena for temporaries. Program loops, while loops and switches become native
control flow in ``fgrad_main``. When kernels are called through the kernel table (the CPU
backend's per-kernel compilation), a run of consecutive calls is written as data: a constant
table of (kernel slot, arguments) that one small loop walks (``CALL_RUN_MIN``), so the entry's
size, and LLVM's time on it, no longer grow with the number of call sites.

Inside a kernel
---------------
Every value is rendered in one of three forms: *uniform* (one scalar), *vector*
(one value per SIMD lane) or *affine* (an integer ``base + lane * stride`` kept
symbolic, so ``x[i * 4 + j]`` in a loop vectorised over ``j`` is one contiguous
vector load while over ``i`` it is a strided gather). Expressions are rendered
once per scope (structural CSE); a store forgets what it may have changed.

``vectorize`` loops run a main loop of whole vectors (``unroll`` of them per
trip), then single vectors, then a scalar tail. ``Accumulate`` into a local
defined outside the loop becomes a per-lane partial reduction folded into the
local after the vector loops. ``FULL``-unrolled loops are emitted once per
iteration with the loop variable a constant, so locals indexed by unrolled
variables (register tiles) become SSA registers. Locals live in allocas that
LLVM promotes to registers; a local whose indices are not constants after
unrolling is a stack array instead.

Rendering is optimistic: a pattern the vector form cannot express (a branch on a
per-lane value, a loop bound that varies per lane, ...) raises ``Unsupported``
and the kernel is rendered again with that loop scalar (or that local as an
array). So annotations never change results, only speed.

``exp``/``log``/``tanh``/... are expanded by ``fgrad.lower.mathlib`` into
polynomials that vectorise; ``sin``/``cos`` of huge arguments and ``pow``/``rem``
of floats call the C library per lane.

Parallel loops
--------------
A ``parallel`` loop is outlined into a function over an iteration range. At run
time its trip count and estimated work decide the number of chunks (each at least
``PARALLEL_MIN_WORK`` estimated ops and a whole number of vectors; at most
``CHUNKS_PER_THREAD`` per thread); one chunk runs directly, several go to the CPU
backend's thread pool through ``fgrad_parallel(fn, ctx, nchunks, threads)``
(``fgrad.backends.threadpool``, which explains why it is not libgomp). Loops that
touch locals of the enclosing code stay serial.

Modules
-------
This module renders programs (the entry function and its steps) and is the
renderer's public face; the parts, bottom to top: ``llvm_base`` (target, types,
values, module context), ``llvm_ops`` (one scalar op on LLVM values, per
``scalar_ops.TABLE``), ``llvm_locals`` (vector context, register and stack
locals), ``llvm_memory`` and ``llvm_loops`` (mixins of the kernel renderer: param
loads and stores; vector, unrolled and parallel loops) and ``llvm_kernel`` (one
kernel -> one function).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

from fgrad.lower import llvm_ir as ir

from fgrad.lower import (
    interpret, kernel, kernel_expr, kernel_stmt, kernel_types, llvm_base, llvm_kernel, llvm_locals,
    llvm_loops, llvm_memory, llvm_ops, mathlib, memory_plan, scalar_ops,
)
from fgrad.lower.kernel import (
    Buffer, BufferAt, Call, Const, ExternCall, Kernel, Loop, MemoryPlan, Program, Switch, While, bfloat16,
    is_float, kernels_of, plan_memory, walk_steps,
)
from fgrad.lower.llvm_base import (  # noqa: F401  (I32, I1, vector_bytes_for: re-exported)
    ENTRY, I1, I32, I64, I8, PTR, VOID, ModuleContext, Target, inbounds_gep, memory_type,
    vector_bytes_for,
)
from fgrad.lower.llvm_kernel import render_kernel

#: every module whose code decides the LLVM IR a program becomes (the CPU backend hashes
#: their source into its disk-cache keys, so that a changed renderer never loads stale objects)
RENDERER_MODULES = (kernel_types, scalar_ops, kernel_expr, kernel_stmt, memory_plan, kernel, interpret,
                    mathlib, llvm_base, llvm_ops, llvm_locals, llvm_memory, llvm_loops, llvm_kernel,
                    sys.modules[__name__])


# --- programs -------------------------------------------------------------------------------

@dataclass
class RenderedProgram:
    """The LLVM module of a program, its memory plan, and (for timing) its call sites."""

    module: ir.Module
    plan: MemoryPlan
    call_sites: list          # Call steps in the order of the timing counters
    timing: bool
    kernel_slots: list        # with symbols: the kernel symbol of each entry of KERNEL_TABLE


#: with ``symbols``, the entry calls each kernel through this global array of function pointers,
#: one per distinct kernel (in the order of ``kernel_slots``), which the loader fills in
KERNEL_TABLE = "fgrad_kernels"
#: with ``symbols`` and without timing, a run of at least this many consecutive calls is a table
#: walked by ``CALL_RUNNER`` instead of one call instruction each
CALL_RUN_MIN = 3
CALL_RUNNER = "fgrad_run_calls"


def kernel_slots(program: Program, symbols: dict[int, str]) -> list[str]:
    """The distinct kernel symbols of ``program`` in the order of its kernel table."""
    return list(dict.fromkeys(symbols[id(k)] for k in kernels_of(program)))

def render_program(program: Program, target: Target, *, timing: bool = False,
                   symbols: dict[int, str] | None = None) -> RenderedProgram:
    """One module with ``fgrad_main(ptr args)``: args = externals..., then the arena pointer.

    Without ``symbols``, every kernel is an internal function of the module. With
    ``symbols`` (``{id(kernel): name}``), no kernel is rendered: each call goes through
    ``KERNEL_TABLE``'s entry for that name, which the loader points at the kernel compiled on
    its own (``render_kernel_module``), and may later point at a better-optimised build of it.
    With ``timing``, each call site adds its cycle count and call count to the
    globals ``fgrad_cycles`` and ``fgrad_calls``.
    """
    mc = ModuleContext(target, program.name)
    plan = plan_memory(program)
    slots: list[str] = []
    if symbols is None:
        functions = {id(k): render_kernel(mc, k) for k in kernels_of(program)}
    else:
        slots = kernel_slots(program, symbols)
        table = ir.GlobalVariable(mc.module, ir.ArrayType(PTR, max(len(slots), 1)), KERNEL_TABLE)
        functions = {id(k): _TableSlot(table, slots.index(symbols[id(k)]), len(slots),
                                       ir.FunctionType(VOID, [PTR] * len(k.params)))
                     for k in kernels_of(program)}
    entry = ir.Function(mc.module, ir.FunctionType(VOID, [PTR]), ENTRY)
    renderer = _ProgramRenderer(mc, program, plan, functions, entry, timing)
    renderer.render()
    return RenderedProgram(mc.module, plan, renderer.call_sites, timing, slots)


@dataclass(frozen=True)
class _TableSlot:
    """A kernel called through entry ``index`` of the kernel table."""

    table: ir.GlobalVariable
    index: int
    size: int
    function_type: ir.FunctionType


def render_kernel_module(kernel: Kernel, target: Target, symbol: str) -> ir.Module:
    """A module holding ``kernel`` alone, exported as ``symbol``: how the CPU backend compiles
    each distinct kernel once, whichever programs and call sites use it."""
    mc = ModuleContext(target, symbol)
    body = render_kernel(mc, kernel)
    # the exported function calls the internal one (which LLVM inlines): the renderer may
    # re-render a kernel, so the exported name is given only once the kernel is done
    export = ir.Function(mc.module, body.function_type, symbol)
    builder = ir.IRBuilder(export.append_basic_block("entry"))
    builder.call(body, export.args)
    builder.ret_void()
    return mc.module


class _ProgramRenderer:
    """Renders program steps into the entry function."""

    def __init__(self, mc: ModuleContext, program: Program, plan: MemoryPlan, functions: dict,
                 entry: ir.Function, timing: bool) -> None:
        self.mc, self.program, self.plan, self.functions = mc, program, plan, functions
        allocas = entry.append_basic_block("entry")
        body = entry.append_basic_block("body")
        self.alloca_builder = ir.IRBuilder(allocas)
        self.alloca_builder.branch(body)
        self.alloca_builder.position_at_start(allocas)
        self.b = ir.IRBuilder(body)
        self.timing = timing
        self.call_sites: list[Call] = []
        self.args = entry.args[0]
        self.external_index = {id(buf): k for k, buf in enumerate(program.externals)}
        self.pointers: dict[int, ir.Value] = {}
        self.arena = self._argument_pointer(len(program.externals))
        self.tables = any(isinstance(f, _TableSlot) for f in functions.values()) and not timing
        self.runner: ir.Function | None = None
        self.runner_arities: set[int] = set()
        if timing:
            ncalls = sum(1 for s in _walk_calls(program.body))
            self.cycles = self._counter_global("fgrad_cycles", ncalls)
            self.calls = self._counter_global("fgrad_calls", ncalls)

    def _counter_global(self, name: str, n: int) -> ir.GlobalVariable:
        g = ir.GlobalVariable(self.mc.module, ir.ArrayType(I64, max(n, 1)), name)
        g.initializer = ir.Constant(g.value_type, None)
        return g

    def render(self) -> None:
        self.steps(self.program.body)
        self.b.ret_void()
        if self.runner is not None:
            _render_call_runner(self.runner, self.runner_arities, self.functions)

    def _argument_pointer(self, k: int) -> ir.Value:
        """Entry ``k`` of the args array, loaded in the entry block (so it dominates every use)."""
        n = len(self.program.externals) + 1
        slot = inbounds_gep(self.alloca_builder, self.args, [I64(0), I64(k)], ir.ArrayType(PTR, n))
        return self.alloca_builder.load(slot, typ=PTR)

    def pointer(self, buf: Buffer) -> ir.Value:
        k = self.external_index.get(id(buf))
        if k is None:
            return inbounds_gep(self.b, self.arena, [I64(self.plan.offset(buf))], I8)
        p = self.pointers.get(id(buf))
        if p is None:
            p = self.pointers[id(buf)] = self._argument_pointer(k)
        return p

    def steps(self, steps: tuple) -> None:
        run: list[Call] = []
        for s in steps:
            if self.tables and isinstance(s, Call):
                run.append(s)
                continue
            self._call_run(run)
            run = []
            getattr(self, "step_" + type(s).__name__)(s)
        self._call_run(run)

    def _call_run(self, calls: list[Call]) -> None:
        """Consecutive calls: one call instruction each if few, else a table for the runner."""
        if len(calls) < CALL_RUN_MIN:
            for s in calls:
                self.step_Call(s)
            return
        words: list[int] = []
        for s in calls:
            words += [self.functions[id(s.kernel)].index, len(s.args), *map(self._argument_word, s.args)]
            self.runner_arities.add(len(s.args))
        table = ir.GlobalVariable(self.mc.module, ir.ArrayType(I64, len(words)),
                                  f"fgrad_call_run_{len(self.mc.module.globals)}")
        table.initializer = ir.Constant(table.value_type, words)
        table.global_constant, table.linkage = True, "private"
        if self.runner is None:
            self.runner = ir.Function(self.mc.module, ir.FunctionType(VOID, [PTR, I64, PTR, PTR]), CALL_RUNNER)
            self.runner.linkage = "internal"
        self.b.call(self.runner, [table, I64(len(calls)), self.args, self.arena])

    def _argument_word(self, buf: Buffer) -> int:
        """How the runner finds a call's argument: an arena offset (>= 0), or -1 - k for entry k
        of the args array."""
        k = self.external_index.get(id(buf))
        return self.plan.offset(buf) if k is None else -1 - k

    def callee(self, kernel: Kernel):
        """The function a Call step calls: the kernel's function, or its table entry's pointer."""
        fn = self.functions[id(kernel)]
        if not isinstance(fn, _TableSlot):
            return fn
        slot = inbounds_gep(self.b, fn.table, [I64(0), I64(fn.index)], ir.ArrayType(PTR, max(fn.size, 1)))
        return ir.FunctionPointer(self.b.load(slot, typ=PTR), fn.function_type)

    def step_Call(self, s: Call) -> None:
        args = [self.pointer(buf) for buf in s.args]
        fn = self.callee(s.kernel)
        if not self.timing:
            self.b.call(fn, args)
            return
        k = len(self.call_sites)
        self.call_sites.append(s)
        clock = self.mc.declare("llvm.readcyclecounter", I64, [])
        t0 = self.b.call(clock, [])
        self.b.call(fn, args)
        t1 = self.b.call(clock, [])
        self._bump(self.cycles, k, self.b.sub(t1, t0))
        self._bump(self.calls, k, I64(1))

    def _bump(self, g: ir.GlobalVariable, k: int, amount: ir.Value) -> None:
        ptr = inbounds_gep(self.b, g, [I64(0), I64(k)], g.value_type)
        self.b.store(self.b.add(self.b.load(ptr, typ=I64), amount), ptr)

    def scalar(self, buf: Buffer) -> ir.Value:
        """The value of a one-element buffer, widened to i64 (floats and bools: != 0)."""
        raw = self.b.load(self.pointer(buf), typ=memory_type(buf.dtype))
        if buf.dtype == bfloat16:   # an i16 of its bits: nonzero but for the sign bit
            raw = self.b.and_(raw, ir.Constant(raw.type, 0x7FFF))
            return self.b.zext(self.b.icmp_unsigned("!=", raw, ir.Constant(raw.type, 0)), I64)
        if is_float(buf.dtype):
            return self.b.zext(self.b.fcmp_unordered("!=", raw, ir.Constant(raw.type, 0.0)), I64)
        if buf.dtype.kind == "i":
            return self.b.sext(raw, I64) if raw.type != I64 else raw
        return self.b.zext(raw, I64) if raw.type != I64 else raw

    def step_Loop(self, s: Loop) -> None:
        b = self.b
        counter = self.alloca_builder.alloca(I64)
        b.store(I64(0), counter)
        header = b.append_basic_block("ploop.header")
        body = b.append_basic_block("ploop.body")
        done = b.append_basic_block("ploop.exit")
        b.branch(header)
        b.position_at_end(header)
        i = b.load(counter, typ=I64)
        b.cbranch(b.icmp_signed("<", i, I64(s.count)), body, done)
        b.position_at_end(body)
        if s.index is not None:
            t = memory_type(s.index.dtype)
            value = i if t == I64 else b.trunc(i, t)
            b.store(value, self.pointer(s.index))
        self.steps(s.body)
        b.store(b.add(i, I64(1)), counter)
        b.branch(header)
        b.position_at_end(done)

    def step_While(self, s: While) -> None:
        b = self.b
        header = b.append_basic_block("while.header")
        body = b.append_basic_block("while.body")
        done = b.append_basic_block("while.exit")
        b.branch(header)
        b.position_at_end(header)
        self.steps(s.before)
        b.cbranch(b.icmp_unsigned("!=", self.scalar(s.cond), I64(0)), body, done)
        b.position_at_end(body)
        self.steps(s.body)
        b.branch(header)
        b.position_at_end(done)

    def step_ExternCall(self, s: ExternCall) -> None:
        """A call of the external symbol ``s.routine`` (bound when the code is loaded), each
        argument a pointer; a scalar is stored in a stack slot first (passed by reference)."""
        args = []
        for a in s.args:
            if isinstance(a, Const):
                t = memory_type(a.dtype)
                slot = self.alloca_builder.alloca(t)
                self.b.store(ir.Constant(t, int(a.value) if t == I8 else a.value), slot)
                args.append(slot)
            elif isinstance(a, BufferAt):
                args.append(self.element_pointer(a))
            else:
                args.append(self.pointer(a))
        if not s.returns_status:
            self.b.call(self.mc.declare(s.routine, VOID, [PTR] * len(args)), args)
            return
        status = self.b.call(self.mc.declare(s.routine, I32, [PTR] * len(args)), args)
        stop = self.b.append_basic_block("extern.stop")
        go_on = self.b.append_basic_block("extern.ok")
        self.b.cbranch(self.b.icmp_signed("!=", status, I32(0)), stop, go_on)
        self.b.position_at_end(stop)
        self.b.ret_void()                # the routine stopped the program (it says why itself)
        self.b.position_at_end(go_on)

    def element_pointer(self, a: BufferAt) -> ir.Value:
        """The address of element ``index[0] * stride + offset`` of ``a.buffer``."""
        element = I64(a.offset)
        if a.index is not None:
            element = self.b.add(self.b.mul(self.scalar(a.index), I64(a.stride)), element)
        return inbounds_gep(self.b, self.pointer(a.buffer), [element], memory_type(a.buffer.dtype))

    def step_Switch(self, s: Switch) -> None:
        b = self.b
        n = len(s.branches)
        index = self.scalar(s.index)
        index = b.select(b.icmp_signed("<", index, I64(0)), I64(0), index)
        index = b.select(b.icmp_signed(">", index, I64(n - 1)), I64(n - 1), index)
        done = b.append_basic_block("switch.exit")
        blocks = [b.append_basic_block(f"case{k}") for k in range(n)]
        sw = b.switch(index, blocks[-1])
        for k, block in enumerate(blocks[:-1]):
            sw.add_case(I64(k), block)
        for block, steps in zip(blocks, s.branches):
            b.position_at_end(block)
            self.steps(steps)
            b.branch(done)
        b.position_at_end(done)


def _render_call_runner(fn: ir.Function, arities: set[int], functions: dict) -> None:
    """``fgrad_run_calls(table, n, args, arena)``: make the ``n`` calls ``table`` lists, each as
    (kernel slot, argument count, argument words: ``_ProgramRenderer._argument_word``), through
    the kernel table; one call instruction per argument count the table uses."""
    slot_type = next(f for f in functions.values() if isinstance(f, _TableSlot))
    table, ncalls, args, arena = fn.args
    entry = fn.append_basic_block("entry")
    b = ir.IRBuilder(entry)
    most = max(arities)
    argv = b.alloca(ir.ArrayType(PTR, most))
    position, count = b.alloca(I64), b.alloca(I64)
    b.store(I64(0), position)
    b.store(I64(0), count)
    header, body, done = (fn.append_basic_block(n) for n in ("header", "body", "done"))
    b.branch(header)
    b.position_at_end(header)
    k = b.load(count, typ=I64)
    b.cbranch(b.icmp_signed("<", k, ncalls), body, done)
    b.position_at_end(body)
    at = b.load(position, typ=I64)
    word = lambda offset: b.load(inbounds_gep(b, table, [b.add(at, offset)], I64), typ=I64)
    slot, nargs = word(I64(0)), word(I64(1))
    for j in range(most):                 # argument j, if the call has one
        with b.if_then(b.icmp_signed("<", I64(j), nargs)):
            w = word(I64(2 + j))
            destination = inbounds_gep(b, argv, [I64(0), I64(j)], ir.ArrayType(PTR, most))
            with b.if_else(b.icmp_signed("<", w, I64(0))) as (external, in_arena):
                with external:
                    b.store(b.load(inbounds_gep(b, args, [b.sub(I64(-1), w)], PTR), typ=PTR), destination)
                with in_arena:
                    b.store(inbounds_gep(b, arena, [w], I8), destination)
    kernel_table = ir.ArrayType(PTR, max(slot_type.size, 1))
    callee = b.load(inbounds_gep(b, slot_type.table, [I64(0), slot], kernel_table), typ=PTR)
    latch = fn.append_basic_block("latch")
    switch = b.switch(nargs, latch)
    for n in sorted(arities):
        case = fn.append_basic_block(f"args{n}")
        switch.add_case(I64(n), case)
        b.position_at_end(case)
        loaded = [b.load(inbounds_gep(b, argv, [I64(0), I64(j)], ir.ArrayType(PTR, most)), typ=PTR) for j in range(n)]
        b.call(ir.FunctionPointer(callee, ir.FunctionType(VOID, [PTR] * n)), loaded)
        b.branch(latch)
    b.position_at_end(latch)
    b.store(b.add(at, b.add(nargs, I64(2))), position)
    b.store(b.add(k, I64(1)), count)
    b.branch(header)
    b.position_at_end(done)
    b.ret_void()


def call_sites(program: Program) -> list[Call]:
    """The program's Call steps in the order of the timing counters."""
    return list(_walk_calls(program.body))


def _walk_calls(steps: tuple):
    return (s for s in walk_steps(steps) if isinstance(s, Call))
