"""The NCCL binding (fgrad/backends/cuda/nccl.py) and NcclCommunicator.

Without a GPU the library is a fake: ctypes callbacks with NCCL's C signatures, so every
call goes through real C marshalling (pointers, size_t counts, enums, the 128-byte unique
id by value, the error string as char*). The fake runs collectives on host memory standing
in for device memory, meeting the other ranks' threads like NCCL would, so
NcclCommunicator's results are checked against the collectives' definitions
(ThreadCommunicator). With the real library (nvidia-nccl-cu12 or $FGRAD_NCCL_LIBRARY) the
calls that need no GPU run here; the rest is marked ``cuda``."""

import numpy as np
import pytest

from fgrad.backends.cuda import nccl as N
from fgrad.devices import CollectiveError, CollectiveRequest, ThreadCommunicator
from fgrad.sharding import Mesh
from fgrad.devices import devices
from tests.backends.fake_nccl import FakeNccl, _uid_bytes, run_members


# --- the binding's marshalling ---------------------------------------------------------------------------------

def test_calls_reach_the_library_with_c_types():
    fake = FakeNccl()
    lib = N.Nccl(fake)
    assert lib.version() == 22703
    uid = lib.get_unique_id()
    assert len(uid) == 128 and uid[:8] == (1).to_bytes(8, "little")
    assert lib.comm_init_rank(1, uid, 0) == 1000
    name, (_, nranks, passed_uid, rank) = fake.calls[-1]
    assert (name, nranks, _uid_bytes(passed_uid), rank) == ("ncclCommInitRank", 1, uid, 0)
    x, y = np.arange(6, dtype=np.float32), np.zeros(6, np.float32)
    lib.all_reduce(x.ctypes.data, y.ctypes.data, 6, np.float32, "max", 1000, 0xABCDEF)
    assert fake.calls[-1] == ("ncclAllReduce", (x.ctypes.data, y.ctypes.data, 6, 7, 2, 1000, 0xABCDEF))
    np.testing.assert_array_equal(y, x)
    lib.reduce_scatter(x.ctypes.data, y.ctypes.data, 6, np.int32, "sum", 1000, 0)
    assert fake.calls[-1][1][2:5] == (6, 2, 0)
    a, b = np.arange(6.0), np.zeros(6)
    lib.all_gather(a.ctypes.data, b.ctypes.data, 6, np.float64, 1000, 7)
    assert fake.calls[-1] == ("ncclAllGather", (a.ctypes.data, b.ctypes.data, 6, 8, 1000, 7))
    np.testing.assert_array_equal(b, a)
    with lib.group():
        lib.send(x.ctypes.data, 3, np.uint8, 0, 1000, 0)
        lib.recv(y.ctypes.data, 3, np.uint8, 0, 1000, 0)
    assert [c[0] for c in fake.calls[-4:]] == ["ncclGroupStart", "ncclSend", "ncclRecv", "ncclGroupEnd"]
    assert fake.calls[-3][1] == (x.ctypes.data, 3, 1, 0, 1000, None)   # a NULL stream arrives as None
    assert lib.comm_init_all([0, 1]) == [1001, 1002]
    lib.comm_destroy(1001)


def test_errors_carry_ncclGetErrorString():
    fake = FakeNccl()
    lib = N.Nccl(fake)
    assert lib.error_string(0) == "no error"
    fake.fail["ncclAllReduce"] = 5
    with pytest.raises(N.NcclError, match=r"ncclAllReduce failed: fake error 5 \(ncclResult_t 5\)") as info:
        lib.all_reduce(0, 0, 1, np.float32, "sum", 1000, 0)
    assert info.value.code == 5
    fake.fail["ncclCommInitRank"] = 4
    with pytest.raises(N.NcclError, match="ncclCommInitRank failed: fake error 4"):
        lib.comm_init_rank(2, b"\0" * 128, 1)
    with pytest.raises(ValueError, match="unique id has 128 bytes"):
        lib.comm_init_rank(2, b"short", 0)
    with pytest.raises(ValueError, match="rank 2 is outside 0..1"):
        lib.comm_init_rank(2, b"\0" * 128, 2)
    with pytest.raises(TypeError, match="NCCL has no data type for complex64"):
        lib.all_reduce(0, 0, 1, np.complex64, "sum", 1000, 0)
    with pytest.raises(ValueError, match="reduction must be one of"):
        lib.all_reduce(0, 0, 1, np.float32, "mean", 1000, 0)


def test_missing_library_says_how_to_install(monkeypatch):
    monkeypatch.setenv("FGRAD_NCCL_LIBRARY", "/nonexistent/libnccl.so.2")
    assert N.find_library() == "/nonexistent/libnccl.so.2"
    with pytest.raises(RuntimeError, match="pip install nvidia-nccl-cu12"):
        N.Nccl()


# --- NcclCommunicator against the collectives' definitions -------------------------------------------------------

class HostRuntime(N.NcclRuntime):
    """Device buffers are NumPy arrays; their pointers are host addresses."""

    def __init__(self):
        self.scopes = []

    def empty(self, rank, shape, dtype):
        return np.full(shape, 99, dtype)   # not zero, so a missing write shows

    def zeros(self, rank, shape, dtype):
        return np.zeros(shape, dtype)

    def pointer(self, buffer):
        return buffer.ctypes.data

    def stream(self, rank):
        return 0

    def device_scope(self, rank):
        self.scopes.append(rank)
        return super().device_scope(rank)

    def reshape(self, rank, buffer, shape):
        return buffer.reshape(shape).copy()


REQUESTS = [
    ("psum", {}), ("pmax", {}), ("pmin", {}),
    ("all_gather", dict(axis=0, tiled=True)), ("all_gather", dict(axis=1, tiled=True)),
    ("all_gather", dict(axis=0, tiled=False)), ("all_gather", dict(axis=2, tiled=False)),
    ("psum_scatter", dict(scatter_dimension=0, tiled=True)), ("psum_scatter", dict(scatter_dimension=1, tiled=True)),
    ("psum_scatter", dict(scatter_dimension=None, tiled=False)),   # the dim whose size is the group's
    ("ppermute", dict(perm=((0, 1), (1, 0)))),
]


@pytest.mark.parametrize("axes", [("x",), ("y",), ("x", "y")])
@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_communicator_equals_the_definitions(axes, dtype):
    mesh = Mesh(np.array(devices(4), dtype=object).reshape(2, 2), ("x", "y"))
    fake, runtime = FakeNccl(), HostRuntime()
    comm = N.NcclCommunicator(4, range(4), runtime, nccl=N.Nccl(fake))
    reference = ThreadCommunicator(4)
    group_size = int(np.prod([mesh.shape[a] for a in axes]))
    perm = tuple((k, (k + 1) % group_size) for k in range(group_size - 1))  # the last gets zeros

    def requests(rank):
        value = (np.arange(32).reshape(4, 4, 2) * (rank + 1) - 7).astype(dtype)
        out = []
        for kind, params in REQUESTS:
            params = dict(params, perm=perm) if kind == "ppermute" else params
            if params.get("scatter_dimension", 0) is None:
                params = dict(params, scatter_dimension=value.shape.index(group_size))
            out.append(CollectiveRequest(kind, value + len(out), mesh.group(rank, axes), params))
        return out

    want = run_members(4, lambda r: reference.run(r, requests(r)))
    got = run_members(4, lambda r: comm.run(r, requests(r)))
    for r in range(4):
        for req, g, w in zip(requests(r), got[r], want[r]):
            assert g.dtype == w.dtype and g.shape == w.shape, req
            np.testing.assert_array_equal(g, w, err_msg=f"{req.kind} {req.params} on rank {r}")
    # one communicator per group, made once: a second run reuses them
    inits = sum(1 for c in fake.calls if c[0] == "ncclCommInitRank")
    assert inits == 4 and sorted(runtime.scopes) == [0, 0, 1, 1, 2, 2, 3, 3]   # set-up, then the calls
    run_members(4, lambda r: comm.run(r, requests(r)))
    assert sum(1 for c in fake.calls if c[0] == "ncclCommInitRank") == inits
    comm.close()
    assert sum(1 for c in fake.calls if c[0] == "ncclCommDestroy") == 4


def test_scatter_dimension_must_split_evenly():
    comm = N.NcclCommunicator(2, [0], HostRuntime(), nccl=N.Nccl(FakeNccl()), host=_SoloHost())
    comm._comms[0, (0, 1)] = 1000   # the group's communicator exists: only the layout is checked
    x = np.ones((3, 2), np.float32)
    for tiled, need in ((True, "a multiple of 2"), (False, "2")):
        request = CollectiveRequest("psum_scatter", x, (0, 1), dict(scatter_dimension=0, tiled=tiled))
        with pytest.raises(ValueError, match=f"dimension 0 of the operand float32\\[3, 2\\] must be {need}$"):
            comm.run(0, [request])


class _SoloHost(ThreadCommunicator):
    """The host channel of a member whose peer is not running (its signature is unknown)."""

    def __init__(self):
        super().__init__(2, [0])

    def exchange(self, rank, values):
        return [values, None]


def test_boolean_psum_is_a_logical_or():
    comm = N.NcclCommunicator(2, range(2), HostRuntime(), nccl=N.Nccl(FakeNccl()))
    flags = {0: np.array([True, False, False]), 1: np.array([False, False, True])}
    got = run_members(2, lambda r: comm.run(r, [CollectiveRequest("psum", flags[r], (0, 1), {})]))
    assert got[0][0].tolist() == got[1][0].tolist() == [True, False, True]


def test_diverging_members_raise_instead_of_entering_nccl():
    fake = FakeNccl()
    comm = N.NcclCommunicator(2, range(2), HostRuntime(), nccl=N.Nccl(fake))
    x = np.ones(3, np.float32)
    mine = {0: [CollectiveRequest("psum", x, (0, 1), {})], 1: [CollectiveRequest("pmax", x, (0, 1), {})]}
    with pytest.raises(CollectiveError, match="same collectives in the same order"):
        run_members(2, lambda r: comm.run(r, mine[r]))
    assert not any(c[0] in ("ncclCommInitRank", "ncclAllReduce") for c in fake.calls)


# --- the real library -------------------------------------------------------------------------------------------

def _real_or_skip():
    try:
        return N.Nccl()
    except RuntimeError as err:
        pytest.skip(f"NCCL is not installed here ({err})")


def test_real_library_version_error_strings_and_unique_id():
    lib = _real_or_skip()
    assert lib.version() >= 21800
    assert lib.error_string(0) == "no error"
    assert len(lib.get_unique_id()) == 128 and lib.get_unique_id() != lib.get_unique_id()


@pytest.mark.cuda
def test_real_nccl_on_one_gpu():
    """The binding against the real library on fgrad's own GPU buffers and stream: a 1-rank
    communicator's all-reduce, all-gather and reduce-scatter copy their operand."""
    import fgrad
    from fgrad.backends import cuda
    if cuda.PycudaDriver.device_count() == 0:
        pytest.skip("needs pycuda and an NVIDIA GPU")
    lib = _real_or_skip()
    cuda.use_driver(cuda.PycudaDriver)
    rt = cuda.runtime(fgrad.devices(backend="cuda")[0])
    x = np.arange(1000, dtype=np.float32)
    src = rt.put(x)
    with rt.driver.context_scope():
        comm = lib.comm_init_rank(1, lib.get_unique_id(), 0)
    stream = int(rt.stream.handle)
    for call in ("all_reduce", "all_gather", "reduce_scatter"):
        dst = rt.empty(x.shape, x.dtype)
        with rt.driver.context_scope():
            if call == "all_gather":
                lib.all_gather(src.ptr, dst.ptr, x.size, np.float32, comm, stream)
            else:
                getattr(lib, call)(src.ptr, dst.ptr, x.size, np.float32, "sum", comm, stream)
        np.testing.assert_array_equal(dst.to_numpy(), x, err_msg=call)
    lib.comm_destroy(comm)


# --- device programs with NCCL as their communicator ---------------------------------------------------------

def test_shard_programs_run_with_the_nccl_communicator(monkeypatch):
    import fgrad
    from fgrad import grad, jit, lax
    from fgrad import numpy as fnp
    from fgrad.sharding import NamedSharding, P, device_put
    from fgrad.transforms import shard as shard_module
    fake, made = FakeNccl(), []
    shared = N.communicator_factory(lambda mesh: HostRuntime(), nccl=N.Nccl(fake))

    def factory(mesh, ranks):
        made.append(shared(mesh, ranks))
        return made[-1]
    mesh = Mesh(devices(4), ("i",))
    x = np.arange(32, dtype=np.float32).reshape(8, 4) / 10
    ring = [(k, (k + 1) % 4) for k in range(4)]
    programs = [
        (lambda b: lax.psum(fnp.sin(b).sum(0), "i"), P()),
        (lambda b: lax.all_gather(b * 2, "i", axis=1, tiled=True), P()),
        (lambda b: lax.psum_scatter(b, "i", scatter_dimension=1, tiled=True), P("i")),
        (lambda b: lax.ppermute(b, "i", ring) + lax.pmax(b, "i"), P("i")),
        (lambda b: grad(lambda v: lax.pmean(fnp.sum(fnp.tanh(v) ** 2), "i"))(b), P("i")),
    ]
    want = [np.asarray(fgrad.shard(f, mesh, P("i"), spec)(x)) for f, spec in programs]
    w = np.ones((4, 3), np.float32)
    step = jit(lambda w, x: grad(lambda w: fnp.mean(fnp.tanh(x @ w) ** 2))(w))
    placed = (device_put(w, NamedSharding(mesh, P())), device_put(x, NamedSharding(mesh, P("i"))))
    want.append(np.asarray(step(*placed)))
    monkeypatch.setitem(shard_module.communicator_factories, "cpu", factory)
    got = [np.asarray(fgrad.shard(f, mesh, P("i"), spec)(x)) for f, spec in programs]
    got.append(np.asarray(step(*placed)))
    assert made and all(isinstance(c, N.NcclCommunicator) for c in made)
    assert len({id(c) for c in made}) == len(made)   # a fresh host channel per run
    assert sum(1 for c in fake.calls if c[0] == "ncclCommInitRank") == 4   # NCCL comms made once
    for g, h in zip(got, want):
        np.testing.assert_allclose(g, h, rtol=1e-6, atol=1e-6)
