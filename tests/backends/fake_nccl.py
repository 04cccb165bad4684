"""A fake ``libnccl.so.2`` for tests without a GPU: NCCL's entry points as ctypes callbacks
(so every call goes through real C marshalling) that run the collectives on host memory,
meeting the other ranks' threads like NCCL would. Device pointers must be host addresses:
NumPy buffers, or the fake CUDA driver's memory with ``FakeDriver.host_pointers``.
"""
import ctypes
import itertools
import threading

import numpy as np

from fgrad.backends.cuda import nccl as N

_P, _I, _SZ = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t
_NP = {0: np.int8, 1: np.uint8, 2: np.int32, 3: np.uint32, 4: np.int64, 5: np.uint64, 6: np.float16,
       7: np.float32, 8: np.float64}
_REDUCE = {0: np.add, 1: np.multiply, 2: np.maximum, 3: np.minimum}


def _read(ptr, count, dtype_code):
    if isinstance(ptr, np.ndarray):         # data shipped from another process (MpiFakeNccl)
        return ptr
    dtype = np.dtype(_NP[dtype_code])
    return np.frombuffer((ctypes.c_char * (count * dtype.itemsize)).from_address(ptr), dtype).copy()


def _uid_bytes(uid):  # all 128 bytes (the c_char array's .value stops at a NUL)
    return ctypes.string_at(ctypes.addressof(uid), 128)


def _write(ptr, array):
    ctypes.memmove(ptr, array.ctypes.data, array.nbytes)


class _World:
    def __init__(self, nranks):
        self.nranks = nranks
        self.barrier = threading.Barrier(nranks, timeout=20)
        self.posted = [None] * nranks


class FakeNccl:
    """libnccl's entry points as ctypes callbacks over host memory (pointers are addresses)."""

    def __init__(self):
        self.calls = []
        self.fail = {}            # entry point -> result code to return
        self._worlds, self._comms, self._ids = {}, {}, itertools.count(1)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._messages = {code: ctypes.create_string_buffer(f"fake error {code}".encode()) for code in range(10)}
        self._messages[0] = ctypes.create_string_buffer(b"no error")
        sigs = dict(N._SIGNATURES)
        for name, argtypes in sigs.items():
            restype = _P if name == "ncclGetErrorString" else _I
            impl = getattr(self, "_" + name)
            setattr(self, name, ctypes.CFUNCTYPE(restype, *argtypes)(self._recording(name, impl)))

    def _recording(self, name, impl):
        def call(*args):
            self.calls.append((name, args))
            if name in self.fail:
                return self.fail[name]
            return impl(*args)
        return call

    # -- set-up
    def _ncclGetErrorString(self, code):
        return ctypes.addressof(self._messages.get(code, self._messages[1]))

    def _ncclGetVersion(self, out):
        out[0] = 22703
        return 0

    def _ncclGetUniqueId(self, uid):
        raw = next(self._ids).to_bytes(8, "little") * 16
        ctypes.memmove(ctypes.addressof(uid.contents), raw, 128)
        return 0

    def _ncclCommInitRank(self, out, nranks, uid, rank):
        if not 0 <= rank < nranks:
            return 4  # ncclInvalidArgument
        key = _uid_bytes(uid)
        with self._lock:
            world = self._worlds.setdefault(key, _World(nranks))
            handle = 1000 + len(self._comms)
            self._comms[handle] = (world, rank)
        world.barrier.wait()       # NCCL blocks until every rank joined
        out[0] = handle
        return 0

    def _ncclCommInitAll(self, out, ndev, devlist):
        world = _World(ndev)
        with self._lock:
            for r in range(ndev):
                handle = 1000 + len(self._comms)
                self._comms[handle] = (world, r)
                out[r] = handle
        return 0

    def _ncclCommDestroy(self, comm):
        return 0 if comm in self._comms else 4

    # -- operations: queued in a group, run at its end
    def _queue(self, op):
        pending = getattr(self._local, "pending", None)
        if pending is None:
            return self._execute([op])
        pending.append(op)
        return 0

    def _ncclAllReduce(self, send, recv, count, dtype, op, comm, stream):
        return self._queue(("all_reduce", comm, send, recv, count, dtype, op))

    def _ncclAllGather(self, send, recv, count, dtype, comm, stream):
        return self._queue(("all_gather", comm, send, recv, count, dtype, None))

    def _ncclReduceScatter(self, send, recv, count, dtype, op, comm, stream):
        return self._queue(("reduce_scatter", comm, send, recv, count, dtype, op))

    def _ncclSend(self, buf, count, dtype, peer, comm, stream):
        return self._queue(("send", comm, buf, peer, count, dtype, None))

    def _ncclRecv(self, buf, count, dtype, peer, comm, stream):
        return self._queue(("recv", comm, buf, peer, count, dtype, None))

    def _ncclGroupStart(self):
        self._local.depth = getattr(self._local, "depth", 0) + 1
        if self._local.depth == 1:
            self._local.pending = []
        return 0

    def _ncclGroupEnd(self):
        self._local.depth -= 1
        if self._local.depth:
            return 0
        ops, self._local.pending = self._local.pending, None
        return self._execute(ops)

    def _execute(self, ops):
        by_world = {}
        for op in ops:
            world, rank = self._comms[op[1]]
            by_world.setdefault(id(world), (world, rank, []))[2].append(op)
        for world, rank, mine in by_world.values():
            world.posted[rank] = mine
            world.barrier.wait()
            results = self._results(world, rank, mine)
            world.barrier.wait()
            for ptr, array in results:
                _write(ptr, array)
            world.barrier.wait()
        return 0

    @staticmethod
    def _results(world, rank, mine):
        out, n = [], world.nranks
        collectives = [op for op in mine if op[0] not in ("send", "recv")]
        for k, (kind, _, send, recv, count, dtype, red) in enumerate(collectives):
            peers = [[op for op in world.posted[r] if op[0] not in ("send", "recv")][k] for r in range(n)]
            if kind == "all_gather":
                out.append((recv, np.concatenate([_read(p[2], count, dtype) for p in peers])))
                continue
            whole = count * n if kind == "reduce_scatter" else count
            total = _REDUCE[red].reduce([_read(p[2], whole, dtype) for p in peers]).astype(_NP[dtype])  # no int64 sums
            out.append((recv, total[rank * count:(rank + 1) * count] if kind == "reduce_scatter" else total))
        for k, op in enumerate(o for o in mine if o[0] == "recv"):
            peer, nth = op[3], sum(1 for o in mine[:mine.index(op)] if o[0] == "recv" and o[3] == op[3])
            sends = [o for o in world.posted[peer] if o[0] == "send" and o[3] == rank]
            out.append((op[2], _read(sends[nth][2], op[4], op[5])))
        return out


class MpiFakeNccl(FakeNccl):
    """FakeNccl across processes: each process runs one rank of every communicator (its one
    GPU), and a group's operands travel over MPI (``comm``, an mpi4py communicator of every
    process) instead of being read through host pointers."""

    def __init__(self, comm):
        super().__init__()
        self.comm = comm

    def _ncclCommInitRank(self, out, nranks, uid, rank):
        if not 0 <= rank < nranks or nranks != self.comm.Get_size():
            return 4  # ncclInvalidArgument: this fake spans every process, one rank each
        with self._lock:
            handle = 1000 + len(self._comms)
            self._comms[handle] = (_World(nranks), rank)
        self.comm.Barrier()        # NCCL blocks until every rank joined
        out[0] = handle
        return 0

    def _ncclCommInitAll(self, out, ndev, devlist):
        return 5  # ncclInvalidUsage: one GPU per process here

    def _execute(self, ops):
        rank = self._comms[ops[0][1]][1] if ops else self.comm.Get_rank()
        nranks = self.comm.Get_size()
        shipped = []
        for kind, comm, send, *rest in ops:
            count, dtype = rest[1], rest[2]
            if kind != "recv":     # every other operand is read by the peers
                send = _read(send, count * nranks if kind == "reduce_scatter" else count, dtype)
            shipped.append((kind, comm, send, *rest))
        world = _World(nranks)
        for r, posted in self.comm.allgather((rank, shipped)):
            world.posted[r] = posted
        for ptr, array in self._results(world, rank, shipped):
            _write(ptr, array)
        return 0


def run_members(size, body):
    """``{rank: body(rank)}`` with every rank on its own thread (collectives block until all
    members arrive); the first exception of any rank is raised."""
    import threading
    results, errors = {}, []

    def work(rank):
        try:
            results[rank] = body(rank)
        except BaseException as err:  # noqa: BLE001 - re-raised below
            errors.append(err)
    threads = [threading.Thread(target=work, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:
        raise errors[0]
    return results
