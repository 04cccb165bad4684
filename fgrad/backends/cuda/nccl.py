"""NCCL for GPU collectives: a thin ctypes binding to ``libnccl.so.2`` and a ``Communicator``
over it for device buffers.

The library is NVIDIA's, loaded at run time: ``$FGRAD_NCCL_LIBRARY`` if set, else the one
the ``nvidia-nccl-cu12`` wheel installs (``nvidia/nccl/lib``), else ``libnccl.so.2`` from
the loader's path. ``Nccl`` declares each entry point's C signature once and turns every
non-success result into ``NcclError`` with NCCL's own message. Everything is in raw
terms: device pointers and CUDA stream handles are Python ints, counts are elements,
dtypes NumPy dtypes; nothing here allocates GPU memory or knows the CUDA runtime.

``NcclCommunicator`` runs the collectives of a device program (psum, pmax, pmin,
all_gather, psum_scatter, ppermute) on device buffers, one NCCL communicator per group of
ranks (a mesh axis or several). The GPU runtime plugs in through ``NcclRuntime`` (empty
and zeroed buffers, a buffer's pointer, the device's stream, making the device current).
Control (agreeing on the collectives, handing out NCCL unique ids for new groups) goes
through a host communicator: threads of this process, and MPI across processes
(``fgrad.distributed``), so a new group's unique id is made by its first member and
broadcast with MPI.

    >>> nccl = Nccl()                                                     # doctest: +SKIP
    >>> comm = nccl.comm_init_rank(2, uid, rank)       # uid from rank 0, e.g. over MPI
    >>> nccl.all_reduce(x_ptr, y_ptr, n, np.float32, "sum", comm, stream)
"""
from __future__ import annotations

import abc
import contextlib
import ctypes
import importlib.util
import os
import threading
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator, Sequence

import numpy as np

from fgrad.core import dtypes
from fgrad.runtime import distributed
from fgrad.runtime.communicator import Communicator, CollectiveRequest, check_signatures, request_signature

__all__ = ["Nccl", "NcclError", "NcclRuntime", "NcclCommunicator", "communicator_factory", "find_library",
           "nccl_dtype", "world_comm", "UNIQUE_ID_BYTES"]

UNIQUE_ID_BYTES = 128
SUCCESS = 0
REDUCTIONS = {"sum": 0, "prod": 1, "max": 2, "min": 3, "avg": 4}
_DTYPES = {np.dtype(np.int8): 0, np.dtype(np.uint8): 1, np.dtype(np.int32): 2, np.dtype(np.uint32): 3,
           np.dtype(np.int64): 4, np.dtype(np.uint64): 5, np.dtype(np.float16): 6, np.dtype(np.float32): 7,
           np.dtype(np.float64): 8, np.dtype(np.bool_): 1,    # bool travels as uint8 (psum of bools: max)
           dtypes.bfloat16: 9}                               # ncclBfloat16 (NCCL >= 2.10)


class UniqueId(ctypes.Structure):
    """``ncclUniqueId``: 128 opaque bytes, passed to ncclCommInitRank by value."""

    _fields_ = [("internal", ctypes.c_char * UNIQUE_ID_BYTES)]


class NcclError(RuntimeError):
    """An NCCL call returned an error (``code`` is its ncclResult_t)."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


_P, _I, _SZ = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t
_R = ctypes.c_int          # ncclResult_t
# entry point -> argument types (the result is ncclResult_t unless stated in _RESTYPES)
_SIGNATURES: dict[str, list] = {
    "ncclGetVersion": [ctypes.POINTER(ctypes.c_int)],
    "ncclGetUniqueId": [ctypes.POINTER(UniqueId)],
    "ncclCommInitRank": [ctypes.POINTER(_P), _I, UniqueId, _I],
    "ncclCommInitAll": [ctypes.POINTER(_P), _I, ctypes.POINTER(ctypes.c_int)],
    "ncclCommDestroy": [_P],
    "ncclAllReduce": [_P, _P, _SZ, _I, _I, _P, _P],
    "ncclAllGather": [_P, _P, _SZ, _I, _P, _P],
    "ncclReduceScatter": [_P, _P, _SZ, _I, _I, _P, _P],
    "ncclSend": [_P, _SZ, _I, _I, _P, _P],
    "ncclRecv": [_P, _SZ, _I, _I, _P, _P],
    "ncclGroupStart": [],
    "ncclGroupEnd": [],
    "ncclGetErrorString": [_R],
}
_RESTYPES = {"ncclGetErrorString": ctypes.c_char_p}


def find_library() -> str:
    """Where libnccl.so.2 is: ``$FGRAD_NCCL_LIBRARY``, the nvidia-nccl-cu12 wheel's copy, or the
    bare name for the dynamic loader to find."""
    explicit = os.environ.get("FGRAD_NCCL_LIBRARY", "").strip()
    if explicit:
        return explicit
    try:
        spec = importlib.util.find_spec("nvidia.nccl")
    except (ImportError, ValueError):
        spec = None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / "lib" / "libnccl.so.2"
        if candidate.exists():
            return str(candidate)
    return "libnccl.so.2"


def nccl_dtype(dtype: Any) -> int:
    """The ncclDataType_t of a NumPy dtype."""
    dt = np.dtype(dtype)
    if dt not in _DTYPES:
        raise TypeError(f"NCCL has no data type for {dt.name}; supported: "
                        f"{sorted({d.name for d in _DTYPES})}")
    return _DTYPES[dt]


def _reduction(op: str | int) -> int:
    if isinstance(op, str):
        if op not in REDUCTIONS:
            raise ValueError(f"NCCL reduction must be one of {list(REDUCTIONS)}, got {op!r}")
        return REDUCTIONS[op]
    return int(op)


class Nccl:
    """The NCCL entry points fgrad uses, over a loaded library (or any object with the same
    attributes: tests pass ctypes callbacks). Pointers, streams and communicators are ints."""

    def __init__(self, library: Any = None):
        if library is None:
            path = find_library()
            try:
                library = ctypes.CDLL(path)
            except OSError as err:
                raise RuntimeError(f"could not load NCCL ({path}): {err}. Install it with "
                                   "`pip install nvidia-nccl-cu12` or set FGRAD_NCCL_LIBRARY to libnccl.so.2") from None
        self._fns = {}
        for name, argtypes in _SIGNATURES.items():
            fn = getattr(library, name)
            fn.argtypes = argtypes
            fn.restype = _RESTYPES.get(name, _R)
            self._fns[name] = fn

    def _call(self, name: str, *args) -> None:
        code = self._fns[name](*args)
        if code != SUCCESS:
            raise NcclError(f"{name} failed: {self.error_string(code)} (ncclResult_t {code})", code)

    def error_string(self, code: int) -> str:
        """NCCL's description of a result code."""
        text = self._fns["ncclGetErrorString"](code)
        return text.decode(errors="replace") if text else f"unknown NCCL error {code}"

    def version(self) -> int:
        """The library's version code (e.g. 22703 for 2.27.3)."""
        out = ctypes.c_int()
        self._call("ncclGetVersion", ctypes.byref(out))
        return out.value

    def get_unique_id(self) -> bytes:
        """A fresh unique id (128 bytes) for ``comm_init_rank``: made by one member, sent to the
        others (over MPI across processes)."""
        uid = UniqueId()
        self._call("ncclGetUniqueId", ctypes.byref(uid))
        return ctypes.string_at(ctypes.addressof(uid), UNIQUE_ID_BYTES)

    def comm_init_rank(self, nranks: int, unique_id: bytes, rank: int) -> int:
        """Join communicator ``unique_id`` as ``rank`` of ``nranks`` (blocks until all joined); the
        current CUDA device is the one it communicates for."""
        if len(unique_id) != UNIQUE_ID_BYTES:
            raise ValueError(f"an NCCL unique id has {UNIQUE_ID_BYTES} bytes, got {len(unique_id)}")
        if not 0 <= rank < nranks:
            raise ValueError(f"NCCL rank {rank} is outside 0..{nranks - 1}")
        uid = UniqueId()
        ctypes.memmove(ctypes.addressof(uid), unique_id, UNIQUE_ID_BYTES)
        comm = _P()
        self._call("ncclCommInitRank", ctypes.byref(comm), int(nranks), uid, int(rank))
        return comm.value or 0

    def comm_init_all(self, gpus: Sequence[int]) -> list[int]:
        """One communicator per GPU of this process (ranks in the order given)."""
        n = len(gpus)
        comms = (_P * n)()
        self._call("ncclCommInitAll", comms, n, (ctypes.c_int * n)(*gpus))
        return [c or 0 for c in comms]

    def comm_destroy(self, comm: int) -> None:
        """Free a communicator (after its work is done)."""
        self._call("ncclCommDestroy", comm)

    def all_reduce(self, send: int, recv: int, count: int, dtype: Any, op: str | int, comm: int,
                   stream: int) -> None:
        """recv = op over ranks of send (``count`` elements; in place when send == recv)."""
        self._call("ncclAllReduce", send, recv, count, nccl_dtype(dtype), _reduction(op), comm, stream)

    def all_gather(self, send: int, recv: int, send_count: int, dtype: Any, comm: int, stream: int) -> None:
        """recv = every rank's ``send_count`` elements, rank after rank."""
        self._call("ncclAllGather", send, recv, send_count, nccl_dtype(dtype), comm, stream)

    def reduce_scatter(self, send: int, recv: int, recv_count: int, dtype: Any, op: str | int, comm: int,
                       stream: int) -> None:
        """recv = block ``rank`` (``recv_count`` elements) of op over ranks of send."""
        self._call("ncclReduceScatter", send, recv, recv_count, nccl_dtype(dtype), _reduction(op), comm, stream)

    def send(self, buffer: int, count: int, dtype: Any, peer: int, comm: int, stream: int) -> None:
        """Send ``count`` elements to ``peer`` (pair with its ``recv``, inside ``group()``)."""
        self._call("ncclSend", buffer, count, nccl_dtype(dtype), peer, comm, stream)

    def recv(self, buffer: int, count: int, dtype: Any, peer: int, comm: int, stream: int) -> None:
        """Receive ``count`` elements from ``peer``."""
        self._call("ncclRecv", buffer, count, nccl_dtype(dtype), peer, comm, stream)

    def group_start(self) -> None:
        """Begin a group: the calls until ``group_end`` are issued together."""
        self._call("ncclGroupStart")

    def group_end(self) -> None:
        """Issue the calls since ``group_start``."""
        self._call("ncclGroupEnd")

    @contextlib.contextmanager
    def group(self) -> Iterator[None]:
        """``with nccl.group(): ...`` brackets calls with ncclGroupStart/ncclGroupEnd."""
        self.group_start()
        try:
            yield
        finally:
            self.group_end()


def world_comm(nccl: Nccl) -> int:
    """One communicator over every process (one GPU each, the current device): process 0 makes
    the unique id and MPI broadcasts it (``fgrad.distributed``)."""
    me, count = distributed.process_index(), distributed.process_count()
    uid = distributed.broadcast_object(nccl.get_unique_id() if me == 0 else None, root=0)
    return nccl.comm_init_rank(count, uid, me)


def communicator_factory(make_runtime: Callable[[Any], NcclRuntime], nccl: Nccl | None = None,
                         cls: type | None = None) -> Callable[[Any, list[int]], "NcclCommunicator"]:
    """An entry for ``fgrad.transforms.shard.communicator_factories``: each run of a device
    program gets a fresh NcclCommunicator (a fresh host channel, so a failed run leaves
    nothing behind), while the NCCL communicators of a mesh are made once and reused.
    ``cls`` is the communicator class (a subclass of NcclCommunicator; default that); the
    library is loaded when a run first needs it.

        >>> shard.communicator_factories["cuda"] = communicator_factory(CudaNcclRuntime)  # doctest: +SKIP
    """
    per_mesh: dict = {}
    library: list[Nccl] = [] if nccl is None else [nccl]
    lock = threading.Lock()

    def load() -> Nccl:
        with lock:
            if not library:
                library.append(Nccl())
            return library[0]

    def factory(mesh: Any, ranks: list[int]) -> NcclCommunicator:
        with lock:
            if mesh not in per_mesh:
                per_mesh[mesh] = (make_runtime(mesh), {})
            runtime, comms = per_mesh[mesh]
        return (cls or NcclCommunicator)(mesh.size, ranks, runtime, nccl=load, comms=comms)
    return factory


# --- the communicator of device programs ----------------------------------------------------------------------

class NcclRuntime(abc.ABC):
    """What ``NcclCommunicator`` needs from the GPU runtime, per rank (device) of the run."""

    @abc.abstractmethod
    def empty(self, rank: int, shape: tuple, dtype: np.dtype) -> Any:
        """A new uninitialised device buffer on rank's device."""

    @abc.abstractmethod
    def zeros(self, rank: int, shape: tuple, dtype: np.dtype) -> Any:
        """A new zero-filled device buffer (queued on rank's stream)."""

    @abc.abstractmethod
    def pointer(self, buffer: Any) -> int:
        """The device address of a buffer (a collective's operand or one made above)."""

    @abc.abstractmethod
    def stream(self, rank: int) -> int:
        """The CUDA stream handle rank's work runs on (0: the default stream)."""

    def device_scope(self, rank: int) -> ContextManager:
        """Make rank's device current on this thread (around communicator set-up)."""
        return contextlib.nullcontext()

    @abc.abstractmethod
    def reshape(self, rank: int, buffer: Any, shape: tuple) -> Any:
        """A buffer holding ``buffer``'s elements in ``shape`` (same size; a copy queued on
        rank's stream, or a view): the result of a collective over a group of one."""


class _Calls:
    """NCCL calls of one member, issued as one group per phase (a phase reads the previous one's
    results, which a single group would not order), and the scratch buffers they use (kept
    alive until the calls are queued; the runtime's allocator is stream-ordered)."""

    def __init__(self):
        self.phases: list[list[tuple]] = [[], []]
        self.scratch: list = []


class NcclCommunicator(Communicator):
    """Collectives among ``size`` ranks on device buffers, through NCCL.

    ``local_ranks`` run in this process (one thread each, as ``run_on_devices`` does);
    ``host`` is the control channel (default: ``fgrad.distributed.communicator``, threads
    here and MPI across processes). Each ``run`` exchanges the members' collective
    signatures over it (so diverging devices raise instead of hanging in NCCL) together with
    unique ids of groups first used in this run, creates those communicators, then issues the
    collectives in NCCL groups on each rank's stream. Results are new device buffers (or the
    operand itself where the result equals it).

    A collective over a group of one (a 1-GPU mesh, an axis of size 1) runs no NCCL call;
    with ``size == 1`` nothing is exchanged either, and the library is never loaded
    (``nccl`` may be a function that loads it on first use).
    """

    def __init__(self, size: int, local_ranks: Sequence[int], runtime: NcclRuntime, *,
                 host: Communicator | None = None, nccl: Nccl | Callable[[], Nccl] | None = None,
                 comms: dict | None = None):
        if host is None:
            host = distributed.communicator(size, list(local_ranks))
        self.size = size
        self.local_ranks = list(local_ranks)
        self.runtime = runtime
        self.host = host
        self._nccl = nccl if nccl is not None else Nccl
        # (rank, group) -> ncclComm_t; shared by the runs of one mesh (``communicator_factory``)
        self._comms: dict[tuple[int, tuple[int, ...]], int] = {} if comms is None else comms
        self._lock = threading.Lock()

    @property
    def nccl(self) -> Nccl:
        """The library, loaded on first use (a 1-device run never needs it)."""
        if not isinstance(self._nccl, Nccl):
            self._nccl = self._nccl()
        return self._nccl

    # host-side control goes through the host communicator
    def exchange(self, rank: int, values: list) -> list[list]:
        return self.host.exchange(rank, values)

    def abort(self) -> None:
        self.host.abort()

    def close(self) -> None:
        """Destroy every NCCL communicator made here (after the device work finished)."""
        with self._lock:
            comms, self._comms = list(self._comms.values()), {}
        for comm in comms:
            self.nccl.comm_destroy(comm)

    def run(self, rank: int, requests: Sequence[CollectiveRequest]) -> list:
        """Perform a batch of collectives on device buffers; returns this rank's results."""
        if not requests:
            return []
        if self.size == 1:
            return [self._alone(rank, r) for r in requests]
        signature = request_signature(requests)
        new_groups = [g for g in dict.fromkeys(r.group for r in requests if len(r.group) > 1)
                      if (rank, g) not in self._comms]
        ids = {g: self.nccl.get_unique_id() for g in new_groups if g[0] == rank}   # made by the first member
        everyone = self.exchange(rank, [signature, ids])
        check_signatures(rank, signature, [None if e is None else e[0] for e in everyone])
        for group in new_groups:
            with self.runtime.device_scope(rank):
                comm = self.nccl.comm_init_rank(len(group), everyone[group[0]][1][group], group.index(rank))
            with self._lock:
                self._comms[rank, group] = comm
        calls = _Calls()
        results = [self._plan(rank, r, calls) if len(r.group) > 1 else self._alone(rank, r) for r in requests]
        with self.runtime.device_scope(rank):     # NCCL queues on the current device's context
            for phase in calls.phases:
                if phase:
                    with self.nccl.group():
                        for method, *args in phase:
                            getattr(self.nccl, method)(*args)
        return results

    def _alone(self, rank: int, request: CollectiveRequest) -> Any:
        """A collective over a group of one: the operand, reshaped where the result's shape
        differs (a stacking all_gather, a non-tiled psum_scatter); zeros for a ppermute that
        sends it nowhere."""
        kind, value, _, params = request
        shape = tuple(value.shape)
        if kind == "all_gather" and not params["tiled"]:
            return self.runtime.reshape(rank, value, shape[:params["axis"]] + (1,) + shape[params["axis"]:])
        if kind == "psum_scatter" and not params["tiled"]:
            d = params["scatter_dimension"]
            if shape[d] != 1:
                raise ValueError(f"psum_scatter over 1 device: dimension {d} of the operand "
                                 f"{np.dtype(value.dtype).name}{list(shape)} must be 1")
            return self.runtime.reshape(rank, value, shape[:d] + shape[d + 1:])
        if kind == "ppermute" and not any(d == 0 for _, d in params["perm"]):
            return self.runtime.zeros(rank, shape, np.dtype(value.dtype))
        if kind not in ("psum", "pmax", "pmin", "all_gather", "psum_scatter", "ppermute"):
            raise ValueError(f"NcclCommunicator: unknown collective {kind!r}")
        return value

    def _plan(self, rank: int, request: CollectiveRequest, calls: _Calls) -> Any:
        """Queue the NCCL calls of one collective; returns its result buffer."""
        kind, value, group, params = request
        comm, me, n = self._comms[rank, group], group.index(rank), len(group)
        rt, stream = self.runtime, self.runtime.stream(rank)
        shape, dtype = tuple(value.shape), np.dtype(value.dtype)
        src, size = rt.pointer(value), int(np.prod(shape, dtype=np.int64))
        if kind in ("psum", "pmax", "pmin"):
            out = rt.empty(rank, shape, dtype)
            op = "max" if kind == "pmax" or (kind == "psum" and dtype == np.bool_) else \
                "min" if kind == "pmin" else "sum"
            calls.phases[0].append(("all_reduce", src, rt.pointer(out), size, dtype, op, comm, stream))
            return out
        if kind == "all_gather":
            return self._all_gather(rank, value, params, comm, me, n, calls)
        if kind == "psum_scatter":
            return self._psum_scatter(rank, value, params, comm, me, n, calls)
        if kind == "ppermute":
            sources = [s for s, d in params["perm"] if d == me]
            out = rt.zeros(rank, shape, dtype) if not sources else rt.empty(rank, shape, dtype)
            for s, d in params["perm"]:
                if s == me:
                    calls.phases[0].append(("send", src, size, dtype, d, comm, stream))
            if sources:
                calls.phases[0].append(("recv", rt.pointer(out), size, dtype, sources[0], comm, stream))
            return out
        raise ValueError(f"NcclCommunicator: unknown collective {kind!r}")

    def _all_gather(self, rank, value, params, comm, me, n, calls: _Calls) -> Any:
        # each member's block lands along `axis`: as `outer` contiguous chunks of `inner`
        # elements, chunk i of member j at (i * n + j) * inner of the result
        rt, stream, dtype = self.runtime, self.runtime.stream(rank), np.dtype(value.dtype)
        shape, axis = tuple(value.shape), params["axis"]
        block = shape if params["tiled"] else shape[:axis] + (1,) + shape[axis:]
        out_shape = block[:axis] + (block[axis] * n,) + block[axis + 1:]
        out = rt.empty(rank, out_shape if params["tiled"] else shape[:axis] + (n,) + shape[axis:], dtype)
        outer, inner = int(np.prod(block[:axis], dtype=np.int64)), int(np.prod(block[axis:], dtype=np.int64))
        src, dst, item = rt.pointer(value), rt.pointer(out), dtype.itemsize
        if outer == 1:
            calls.phases[0].append(("all_gather", src, dst, inner, dtype, comm, stream))
            return out
        for i in range(outer):
            for j in range(n):
                calls.phases[0].append(("send", src + i * inner * item, inner, dtype, j, comm, stream))
                calls.phases[0].append(("recv", dst + (i * n + j) * inner * item, inner, dtype, j, comm, stream))
        return out

    def _psum_scatter(self, rank, value, params, comm, me, n, calls: _Calls) -> Any:
        # block `me` along scatter_dimension d of the sum: `outer` chunks of `inner` elements,
        # chunk i at (i * n + me) * inner of the whole
        rt, stream, dtype = self.runtime, self.runtime.stream(rank), np.dtype(value.dtype)
        shape, d = tuple(value.shape), params["scatter_dimension"]
        if shape[d] % n or (not params["tiled"] and shape[d] != n):
            need = f"a multiple of {n}" if params["tiled"] else f"{n}"
            raise ValueError(f"psum_scatter over {n} devices: dimension {d} of the operand "
                             f"{dtype.name}{list(shape)} must be {need}")
        block = shape[:d] + (shape[d] // n,) + shape[d + 1:]
        out = rt.empty(rank, block if params["tiled"] else shape[:d] + shape[d + 1:], dtype)
        outer, inner = int(np.prod(shape[:d], dtype=np.int64)), int(np.prod(block[d:], dtype=np.int64))
        op = "max" if dtype == np.bool_ else "sum"
        if outer == 1:
            calls.phases[0].append(("reduce_scatter", rt.pointer(value), rt.pointer(out), inner, dtype, op,
                                    comm, stream))
            return out
        total = rt.empty(rank, shape, dtype)
        calls.scratch.append(total)
        size = int(np.prod(shape, dtype=np.int64))
        calls.phases[0].append(("all_reduce", rt.pointer(value), rt.pointer(total), size, dtype, op, comm, stream))
        base, dst, item = rt.pointer(total), rt.pointer(out), dtype.itemsize
        for i in range(outer):   # copy my strided block out of the sum: sends to myself
            calls.phases[1].append(("send", base + (i * n + me) * inner * item, inner, dtype, me, comm, stream))
            calls.phases[1].append(("recv", dst + i * inner * item, inner, dtype, me, comm, stream))
        return out
