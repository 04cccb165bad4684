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

There are several pools (``MAX_POOLS`` slots, started on demand). A program compiled for
``t`` of the machine's ``T`` threads (``cpu.thread_budget``, e.g. one virtual device of
``T // t``) asks for ``T // t`` pools of ``t - 1`` workers: programs running at once from
different Python threads each take the first idle pool, so every virtual device gets its
share of the cores. A caller that finds every pool busy runs its loop on its own thread.
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
POOL_BYTES = 64 * len(FIELDS)    # one pool's fields, a cache line each
MAX_POOLS = 64


class _Pool:
    """The pools' machine code and Python-side bookkeeping (workers started per pool)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.engine = None
        self.parallel_address = 0
        self.worker = None
        self.base = 0
        self.count = None
        self.workers: list[int] = []


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
    pools = ir.GlobalVariable(m, ir.ArrayType(I8, POOL_BYTES * MAX_POOLS), "fgrad_pools")
    pools.initializer = ir.Constant(pools.value_type, None)
    pools.align = 64
    count = ir.GlobalVariable(m, I64, "fgrad_pool_count")
    count.initializer = I64(0)
    count.align = 64
    chunk_fn = ir.FunctionType(VOID, [PTR, I64])
    pause = ir.Function(m, ir.FunctionType(VOID, []), "llvm.x86.sse2.pause")
    syscall = ir.Function(m, ir.FunctionType(I64, [I64], var_arg=True), "syscall")
    sched_yield = ir.Function(m, ir.FunctionType(I32, []), "sched_yield")
    claim = _build_claim(m, chunk_fn)
    _build_worker(m, claim, pause, syscall)
    _build_parallel(m, pools, count, claim, pause, syscall, sched_yield, chunk_fn)
    return m


def _build_claim(m: ir.Module, chunk_fn: ir.FunctionType) -> ir.Function:
    """claim(pool, gen): run chunks of ``pool``'s job ``gen`` while any are left; returns when none are."""
    fn = ir.Function(m, ir.FunctionType(VOID, [PTR, I64]), "fgrad_pool_claim")
    fn.linkage = "internal"
    pool, gen = fn.args
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


def _build_worker(m: ir.Module, claim: ir.Function, pause: ir.Function, syscall: ir.Function) -> ir.Function:
    """worker(pool, id): forever: wait for a new job generation of ``pool`` (spin, then futex),
    then claim chunks."""
    fn = ir.Function(m, ir.FunctionType(VOID, [PTR, I64]), "fgrad_pool_worker")
    pool, worker_id = fn.args
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
        b.call(claim, [pool, gen])
    b.branch(wait)
    return fn


def _build_parallel(m: ir.Module, pools: ir.GlobalVariable, count: ir.GlobalVariable, claim: ir.Function,
                    pause: ir.Function, syscall: ir.Function, sched_yield: ir.Function,
                    chunk_fn: ir.FunctionType) -> ir.Function:
    """fgrad_parallel(fn, ctx, nchunks, max_threads): run all chunks, helped by the workers of
    the first idle pool; on the calling thread alone when every pool is busy."""
    share = _build_share(m, claim, pause, syscall, sched_yield)
    fn = ir.Function(m, ir.FunctionType(VOID, [PTR, PTR, I64, I64]), "fgrad_parallel")
    target, ctx, nchunks, max_threads = fn.args
    entry = fn.append_basic_block("entry")
    search = fn.append_basic_block("search")
    try_pool = fn.append_basic_block("try")
    serial = fn.append_basic_block("serial")
    b = ir.IRBuilder(entry)
    index = b.alloca(I64)
    b.store(I64(0), index)
    few = b.or_(b.icmp_signed("<=", nchunks, I64(1)), b.icmp_signed("<=", max_threads, I64(1)))
    b.cbranch(few, serial, search)

    b.position_at_end(search)              # the first pool nobody is using
    i = b.load(index, typ=I64)
    b.cbranch(b.icmp_signed("<", i, _load(b, b.inttoptr(b.ptrtoint(count, I64), ir.PointerType(I64)), "monotonic")),
              try_pool, serial)
    b.position_at_end(try_pool)
    pool = b.inttoptr(b.add(b.ptrtoint(pools, I64), b.mul(i, I64(POOL_BYTES))), PTR)
    got = b.cmpxchg(_field(b, pool, "busy"), I64(0), I64(1), "acquire", "monotonic")
    b.store(b.add(i, I64(1)), index)
    with b.if_then(b.extract_value(got, 1)):
        b.call(share, [pool, target, ctx, nchunks, max_threads])
        b.ret_void()
    b.branch(search)

    b.position_at_end(serial)              # nobody to share with, or every pool is in use
    counter = b.alloca(I64)
    b.store(I64(0), counter)
    head = fn.append_basic_block("serial.head")
    body = fn.append_basic_block("serial.body")
    done = fn.append_basic_block("serial.done")
    b.branch(head)
    b.position_at_end(head)
    k = b.load(counter, typ=I64)
    b.cbranch(b.icmp_signed("<", k, nchunks), body, done)
    b.position_at_end(body)
    b.call(_as_callee(b, target, chunk_fn), [ctx, k])
    b.store(b.add(k, I64(1)), counter)
    b.branch(head)
    b.position_at_end(done)
    b.ret_void()
    return fn


def _build_share(m: ir.Module, claim: ir.Function, pause: ir.Function, syscall: ir.Function,
                 sched_yield: ir.Function) -> ir.Function:
    """share(pool, fn, ctx, nchunks, max_threads): publish a job on a pool this thread holds
    (its busy flag set), take chunks too, wait for every claimed chunk, release the pool."""
    fn = ir.Function(m, ir.FunctionType(VOID, [PTR, PTR, PTR, I64, I64]), "fgrad_pool_share")
    fn.linkage = "internal"
    pool, target, ctx, nchunks, max_threads = fn.args
    entry = fn.append_basic_block("entry")
    wait = fn.append_basic_block("wait")
    finish = fn.append_basic_block("finish")
    b = ir.IRBuilder(entry)
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
    b.call(claim, [pool, gen])
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


def compile_pool(triple: str, target_machine) -> bytes:
    """The pool's machine code (workers, ``fgrad_parallel``) as an object file for ``triple``."""
    mod = llvm.parse_assembly(str(_build_module(triple)))
    mod.verify()
    return target_machine.emit_object(mod)


def ensure_pool(threads: int, target_machine_factory, pool_object, pools: int = 1) -> int:
    """Start ``pools`` pools (at most MAX_POOLS) of ``threads - 1`` workers each, growing them
    if needed; the address of ``fgrad_parallel`` for generated code to call. ``pool_object()``
    gives the pool's code (``compile_pool``'s object file; the backend keeps it on disk).

    Programs compiled for a share of the cores ask for as many pools as such programs can
    run at once (one per virtual device), so each finds a pool of its own."""
    pools = max(1, min(int(pools), MAX_POOLS))
    with _pool.lock:
        if _pool.engine is None:
            engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), target_machine_factory())
            engine.add_object_file(llvm.ObjectFileRef.from_data(pool_object()))
            engine.finalize_object()
            _pool.engine = engine
            _pool.parallel_address = engine.get_function_address("fgrad_parallel")
            _pool.worker = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64)(
                engine.get_function_address("fgrad_pool_worker"))
            _pool.base = engine.get_global_value_address("fgrad_pools")
            _pool.count = ctypes.c_int64.from_address(engine.get_global_value_address("fgrad_pool_count"))
        while len(_pool.workers) < pools:
            _pool.workers.append(0)
        for index in range(pools):
            while _pool.workers[index] < threads - 1:
                worker = _pool.workers[index]
                t = threading.Thread(target=_pool.worker, args=(_pool.base + index * POOL_BYTES, worker),
                                     daemon=True, name=f"fgrad-cpu-pool{index}-worker{worker}")
                t.start()
                _pool.workers[index] += 1
        # published after the pool's workers exist (a pool without workers would still work:
        # its caller runs every chunk); x86 stores are not reordered with earlier stores
        _pool.count.value = max(_pool.count.value, pools)
        return _pool.parallel_address


def pool_sizes() -> list[int]:
    """Workers per started pool (for tests and debugging)."""
    with _pool.lock:
        return list(_pool.workers)
