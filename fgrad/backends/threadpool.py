"""The CPU backend's thread pool for ``parallel`` loops: persistent workers, written in LLVM IR.

Generated code calls ``fgrad_parallel(fn, ctx, nchunks, max_threads)``, which runs
``fn(ctx, c)`` for every chunk ``c`` in ``range(nchunks)``. The calling thread takes
chunks itself; idle workers claim the rest from one atomic ticket (generation << 32
| next chunk), so a chunk runs exactly once, on whichever thread gets to it first.
The call returns when every *claimed* chunk is finished: a worker that was asleep or
descheduled and never claimed anything is not waited for. Workers spin briefly
after each job, then sleep on a futex.

Why not libgomp (``GOMP_parallel``): measured with ``benchmarks/fused_elementwise.py``
on this 2-core machine while other jobs ran, the fused 4M-element kernel fell from
14.6 GB/s on one thread to 2.8 GB/s on two with libgomp, because its fork/join waits
at the end barrier for every team thread, and a descheduled one costs a scheduler
time slice (milliseconds) per parallel loop. With this pool the same run gives 14.7 GB/s
on two threads (no gain, the second core being busy, but no collapse): it never waits
for a thread that has not started. Its cost per parallel loop is about a microsecond
(a 32K-element loop: 4.9 µs on one thread, 5.6 µs split over two).

Workers are Python daemon threads parked in native code (``ctypes`` drops the GIL);
after ``fork`` the child has none, and the calling thread simply runs every chunk.
Two programs running parallel loops at once (from two Python threads) do not share
the pool: the second runs its loop on its own thread.
"""
from __future__ import annotations

import ctypes
import threading

import llvmlite.binding as llvm
import llvmlite.ir as ir

I64, I32, I1, I8 = ir.IntType(64), ir.IntType(32), ir.IntType(1), ir.IntType(8)
PTR = ir.PointerType()
VOID = ir.VoidType()
SYS_FUTEX = 202                  # x86-64 Linux
FUTEX_WAIT_PRIVATE, FUTEX_WAKE_PRIVATE = 128, 129
SPINS = 4000                     # pause instructions before a worker sleeps (~100 µs)
FIELDS = ("ticket", "done", "fn", "ctx", "nchunks", "wake", "sleepers", "busy", "max_threads")


class _Pool:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.engine = None
        self.parallel_address = 0
        self.worker = None
        self.workers = 0


_pool = _Pool()


def _field(b: ir.IRBuilder, pool: ir.Value, name: str, element: ir.Type = I64) -> ir.Value:
    """A typed pointer to a pool field (llvmlite's atomics want typed pointers); fields sit
    64 bytes apart, one cache line each."""
    address = b.add(b.ptrtoint(pool, I64), I64(64 * FIELDS.index(name)))
    return b.inttoptr(address, ir.PointerType(element))


def _load(b: ir.IRBuilder, ptr: ir.Value, order: str = "acquire") -> ir.Value:
    return b.load_atomic(ptr, order, 8, typ=I64)


def _store(b: ir.IRBuilder, value: ir.Value, ptr: ir.Value, order: str = "release") -> None:
    b.store_atomic(value, ptr, order, 8)


def _build_module(triple: str) -> ir.Module:
    m = ir.Module("fgrad_threadpool")
    m.triple = triple
    pool = ir.GlobalVariable(m, ir.ArrayType(I8, 64 * len(FIELDS)), "fgrad_pool")
    pool.initializer = ir.Constant(pool.value_type, None)
    pool.align = 64
    chunk_fn = ir.FunctionType(VOID, [PTR, I64])
    pause = ir.Function(m, ir.FunctionType(VOID, []), "llvm.x86.sse2.pause")
    syscall = ir.Function(m, ir.FunctionType(I64, [I64], var_arg=True), "syscall")
    sched_yield = ir.Function(m, ir.FunctionType(I32, []), "sched_yield")
    claim = _build_claim(m, pool, chunk_fn)
    _build_worker(m, pool, claim, pause, syscall)
    _build_parallel(m, pool, claim, pause, syscall, sched_yield, chunk_fn)
    return m


def _build_claim(m: ir.Module, pool: ir.GlobalVariable, chunk_fn: ir.FunctionType) -> ir.Function:
    """claim(gen): run chunks of job ``gen`` while any are left; returns when none are."""
    fn = ir.Function(m, ir.FunctionType(VOID, [I64]), "fgrad_pool_claim")
    fn.linkage = "internal"
    gen = fn.args[0]
    entry = fn.append_basic_block("entry")
    loop = fn.append_basic_block("loop")
    try_claim = fn.append_basic_block("try")
    run = fn.append_basic_block("run")
    out = fn.append_basic_block("out")
    b = ir.IRBuilder(entry)
    b.branch(loop)
    b.position_at_end(loop)
    ticket = _load(b, _field(b, pool, "ticket"))
    same_job = b.icmp_unsigned("==", b.lshr(ticket, I64(32)), gen)
    b.cbranch(same_job, try_claim, out)
    b.position_at_end(try_claim)
    index = b.and_(ticket, I64(0xFFFFFFFF))
    left = b.icmp_unsigned("<", index, _load(b, _field(b, pool, "nchunks")))
    with b.if_then(b.not_(left)):
        b.branch(out)
    swapped = b.cmpxchg(_field(b, pool, "ticket"), ticket, b.add(ticket, I64(1)), "acq_rel", "acquire")
    b.cbranch(b.extract_value(swapped, 1), run, loop)
    b.position_at_end(run)
    target = b.inttoptr(_load(b, _field(b, pool, "fn")), PTR)
    ctx = b.inttoptr(_load(b, _field(b, pool, "ctx")), PTR)
    b.call(_as_callee(b, target, chunk_fn), [ctx, index])
    b.atomic_rmw("add", _field(b, pool, "done"), I64(1), "release")
    b.branch(loop)
    b.position_at_end(out)
    b.ret_void()
    return fn


def _as_callee(b: ir.IRBuilder, ptr: ir.Value, fty: ir.FunctionType) -> ir.Value:
    """An indirect call target of type ``fty`` (llvmlite wants a typed callee)."""
    return b.inttoptr(b.ptrtoint(ptr, I64), ir.PointerType(fty))


def _build_worker(m: ir.Module, pool: ir.GlobalVariable, claim: ir.Function, pause: ir.Function,
                  syscall: ir.Function) -> ir.Function:
    """worker(id): forever: wait for a new job generation (spin, then futex), then claim chunks."""
    fn = ir.Function(m, ir.FunctionType(VOID, [I64]), "fgrad_pool_worker")
    worker_id = fn.args[0]
    entry = fn.append_basic_block("entry")
    wait = fn.append_basic_block("wait")
    spin = fn.append_basic_block("spin")
    sleep = fn.append_basic_block("sleep")
    work = fn.append_basic_block("work")
    b = ir.IRBuilder(entry)
    seen = b.alloca(I64)
    spins = b.alloca(I64)
    b.store(_load(b, _field(b, pool, "ticket")), seen)
    b.store(b.lshr(b.load(seen, typ=I64), I64(32)), seen)
    b.store(I64(0), spins)
    b.branch(wait)
    b.position_at_end(wait)
    gen = b.lshr(_load(b, _field(b, pool, "ticket")), I64(32))
    b.cbranch(b.icmp_unsigned("!=", gen, b.load(seen, typ=I64)), work, spin)
    b.position_at_end(spin)
    count = b.load(spins, typ=I64)
    b.store(b.add(count, I64(1)), spins)
    with b.if_then(b.icmp_unsigned("<", count, I64(SPINS))):
        b.call(pause, [])
        b.branch(wait)
    b.branch(sleep)
    b.position_at_end(sleep)
    wake = _field(b, pool, "wake")
    word = b.load_atomic(_field(b, pool, "wake", I32), "seq_cst", 4, typ=I32)
    b.atomic_rmw("add", _field(b, pool, "sleepers"), I64(1), "seq_cst")
    gen_now = b.lshr(_load(b, _field(b, pool, "ticket"), "seq_cst"), I64(32))
    with b.if_then(b.icmp_unsigned("==", gen_now, b.load(seen, typ=I64))):
        b.call(syscall, [I64(SYS_FUTEX), wake, I32(FUTEX_WAIT_PRIVATE), word, ir.Constant(PTR, None)])
    b.atomic_rmw("sub", _field(b, pool, "sleepers"), I64(1), "seq_cst")
    b.store(I64(0), spins)
    b.branch(wait)
    b.position_at_end(work)
    b.store(gen, seen)
    b.store(I64(0), spins)
    allowed = b.icmp_signed("<", b.add(worker_id, I64(1)), _load(b, _field(b, pool, "max_threads")))
    with b.if_then(allowed):
        b.call(claim, [gen])
    b.branch(wait)
    return fn


def _build_parallel(m: ir.Module, pool: ir.GlobalVariable, claim: ir.Function, pause: ir.Function,
                    syscall: ir.Function, sched_yield: ir.Function, chunk_fn: ir.FunctionType) -> ir.Function:
    """fgrad_parallel(fn, ctx, nchunks, max_threads): run all chunks, helped by idle workers."""
    fn = ir.Function(m, ir.FunctionType(VOID, [PTR, PTR, I64, I64]), "fgrad_parallel")
    target, ctx, nchunks, max_threads = fn.args
    entry = fn.append_basic_block("entry")
    serial = fn.append_basic_block("serial")
    shared = fn.append_basic_block("shared")
    wait = fn.append_basic_block("wait")
    finish = fn.append_basic_block("finish")
    b = ir.IRBuilder(entry)
    few = b.or_(b.icmp_signed("<=", nchunks, I64(1)), b.icmp_signed("<=", max_threads, I64(1)))
    with b.if_then(few):
        b.branch(serial)
    got = b.cmpxchg(_field(b, pool, "busy"), I64(0), I64(1), "acquire", "monotonic")
    b.cbranch(b.extract_value(got, 1), shared, serial)

    b.position_at_end(serial)              # nobody to share with, or the pool is in use
    counter = b.alloca(I64)
    b.store(I64(0), counter)
    head = fn.append_basic_block("serial.head")
    body = fn.append_basic_block("serial.body")
    done = fn.append_basic_block("serial.done")
    b.branch(head)
    b.position_at_end(head)
    i = b.load(counter, typ=I64)
    b.cbranch(b.icmp_signed("<", i, nchunks), body, done)
    b.position_at_end(body)
    b.call(_as_callee(b, target, chunk_fn), [ctx, i])
    b.store(b.add(i, I64(1)), counter)
    b.branch(head)
    b.position_at_end(done)
    b.ret_void()

    b.position_at_end(shared)
    _store(b, b.ptrtoint(target, I64), _field(b, pool, "fn"), "monotonic")
    _store(b, b.ptrtoint(ctx, I64), _field(b, pool, "ctx"), "monotonic")
    _store(b, nchunks, _field(b, pool, "nchunks"), "monotonic")
    _store(b, max_threads, _field(b, pool, "max_threads"), "monotonic")
    _store(b, I64(0), _field(b, pool, "done"), "monotonic")
    old = _load(b, _field(b, pool, "ticket"), "monotonic")
    gen = b.add(b.lshr(old, I64(32)), I64(1))
    _store(b, b.shl(gen, I64(32)), _field(b, pool, "ticket"), "seq_cst")
    wake = _field(b, pool, "wake")
    b.atomic_rmw("add", wake, I64(1), "seq_cst")      # the futex word is its low 32 bits
    with b.if_then(b.icmp_signed(">", _load(b, _field(b, pool, "sleepers"), "seq_cst"), I64(0))):
        b.call(syscall, [I64(SYS_FUTEX), wake, I32(FUTEX_WAKE_PRIVATE), I32(2 ** 31 - 1)])
    b.call(claim, [gen])
    spins = b.alloca(I64)
    b.store(I64(0), spins)
    b.branch(wait)
    b.position_at_end(wait)
    finished = b.icmp_signed(">=", _load(b, _field(b, pool, "done")), nchunks)
    with b.if_then(b.not_(finished)):
        count = b.load(spins, typ=I64)
        b.store(b.add(count, I64(1)), spins)
        with b.if_else(b.icmp_unsigned("<", count, I64(SPINS))) as (then, otherwise):
            with then:
                b.call(pause, [])
            with otherwise:
                b.call(sched_yield, [])     # the thread we wait for may need this core
        b.branch(wait)
    b.branch(finish)
    b.position_at_end(finish)
    _store(b, I64(0), _field(b, pool, "busy"))
    b.ret_void()
    return fn


def ensure_pool(threads: int, target_machine_factory, triple: str) -> int:
    """Start the pool with ``threads - 1`` workers (growing it if needed); the address of
    ``fgrad_parallel`` for generated code to call."""
    with _pool.lock:
        if _pool.engine is None:
            mod = llvm.parse_assembly(str(_build_module(triple)))
            mod.verify()
            engine = llvm.create_mcjit_compiler(mod, target_machine_factory())
            engine.finalize_object()
            _pool.engine = engine
            _pool.parallel_address = engine.get_function_address("fgrad_parallel")
            _pool.worker = ctypes.CFUNCTYPE(None, ctypes.c_int64)(
                engine.get_function_address("fgrad_pool_worker"))
        while _pool.workers < threads - 1:
            t = threading.Thread(target=_pool.worker, args=(_pool.workers,), daemon=True,
                                 name=f"fgrad-cpu-worker-{_pool.workers}")
            t.start()
            _pool.workers += 1
        return _pool.parallel_address
