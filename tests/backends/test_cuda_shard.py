"""``fgrad.shard`` and the two-line data-parallel path on GPUs: device programs compiled for
each GPU, collectives through NCCL (``fgrad/backends/cuda/collectives.py``).

Without a GPU both sides are fakes: the CUDA driver of ``fake_driver.py`` (several fake
GPUs whose memory is NumPy and whose pointers are host addresses) and the NCCL of
``fake_nccl.py`` (ctypes callbacks that run the collectives on that memory). Every result
is compared with the same program on as many virtual CPU devices. The ``cuda``-marked test
runs the same programs on the real GPUs (and real NCCL where there are several).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fgrad
from fgrad.compile.cache import executables
from fgrad import lax, nn
from fgrad import numpy as fnp
from fgrad.backends import cuda
from fgrad.backends.cuda import nccl
from fgrad.backends.cuda import CudaBuffer, PycudaDriver
from fgrad.backends.cuda.collectives import CudaNcclCommunicator, CudaNcclRuntime
from fgrad.devices import CollectiveRequest, devices
from fgrad.sharding import Mesh, NamedSharding, P, ShardedArray, device_put
from fgrad.transforms import shard as shard_module
from tests.backends.fake_driver import FakeDriver
from tests.backends.fake_nccl import FakeNccl, run_members

RTOL, ATOL = 1e-5, 1e-5


class FakeGpus:
    """n fake GPUs with a fake NCCL registered as the 'cuda' communicator."""

    def __init__(self, n: int, monkeypatch):
        FakeDriver.reset(n)
        FakeDriver.host_pointers = True
        cuda.use_driver(FakeDriver)
        self.nccl = FakeNccl()
        self.factory = nccl.communicator_factory(CudaNcclRuntime, nccl=nccl.Nccl(self.nccl), cls=CudaNcclCommunicator)
        monkeypatch.setitem(shard_module.communicator_factories, "cuda", self.factory)
        self.mesh = Mesh(fgrad.devices(backend="cuda"), ("i",))

    def nccl_calls(self, name: str) -> int:
        return sum(1 for call in self.nccl.calls if call[0] == name)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """A private compile cache; the real driver back afterwards. Device programs compiled for
    an earlier test's fake GPUs are dropped (their executables belong to runtimes gone since)."""
    monkeypatch.setenv("FGRAD_CACHE_DIR", str(tmp_path / "cache"))
    executables.discard("device-program")
    yield
    executables.discard("device-program")
    FakeDriver.reset(1)
    cuda.use_driver(PycudaDriver)


def _on_cpu(n: int, run):
    """``run(mesh)`` on n virtual CPU devices, as host arrays."""
    with fgrad.config.override(backend="cpu"):
        return fgrad.tree.tree_map(np.asarray, run(Mesh(devices(n, backend="cpu"), ("i",))))


def _assert_close(got, want):
    for g, w in zip(fgrad.tree.tree_leaves(got), fgrad.tree.tree_leaves(want)):
        g, w = np.asarray(g), np.asarray(w)
        assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, w.shape, g.dtype, w.dtype)
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL)


# --- explicit shard ---------------------------------------------------------------------------------

def _ring(n):
    return [(k, (k + 1) % n) for k in range(n)]


def _programs(n):
    """(name, per-device function of a block of x (8, 4), out spec)."""
    return [
        ("psum", lambda b: lax.psum(fnp.sin(b).sum(0), "i"), P()),
        ("pmean", lambda b: lax.pmean(b * b, "i"), P("i")),
        ("pmax", lambda b: lax.pmax(fnp.cos(b), "i") - lax.pmin(b, "i"), P("i")),
        ("all_gather tiled", lambda b: lax.all_gather(b * 2, "i", axis=1, tiled=True), P()),
        ("all_gather stacked", lambda b: lax.all_gather(b.sum(0), "i"), P()),
        ("psum_scatter", lambda b: lax.psum_scatter(fnp.tile(b, (1, n)), "i", scatter_dimension=1, tiled=True),
         P(None, "i")),
        ("ppermute", lambda b: lax.ppermute(b, "i", _ring(n)) + 1, P("i")),
        ("ppermute shift", lambda b: lax.ppermute(b, "i", [(k, k + 1) for k in range(n - 1)]) - b, P("i")),
        ("chain", lambda b: lax.psum(lax.all_gather(fnp.tanh(b), "i", tiled=True).sum(0) * b[0], "i"), P()),
        ("shard(grad)", lambda b: fgrad.grad(lambda v: lax.pmean(fnp.sum(fnp.tanh(v) ** 2), "i"))(b), P("i")),
    ]


X = (np.arange(32, dtype=np.float32).reshape(8, 4) - 13) / 7


@pytest.mark.parametrize("n", [1, 2, 4])
def test_shard_collectives_on_fake_gpus_equal_cpu(n, monkeypatch):
    want = _on_cpu(n, lambda mesh: [fgrad.shard(f, mesh, P("i"), spec)(X) for _, f, spec in _programs(n)])
    gpus = FakeGpus(n, monkeypatch)
    got = [fgrad.shard(f, gpus.mesh, P("i"), spec)(X) for _, f, spec in _programs(n)]
    for (name, _, _), g, w in zip(_programs(n), got, want):
        assert isinstance(g, ShardedArray) and g.sharding.mesh == gpus.mesh, name
        np.testing.assert_allclose(np.asarray(g), w, rtol=RTOL, atol=ATOL, err_msg=name)
    assert FakeDriver.calls["ir_launch"] > 0              # the stages ran as GPU kernels
    assert FakeDriver.calls["memset"] > 0                 # the device that receives nothing: zeros
    if n == 1:
        assert gpus.nccl.calls == []                      # a 1-GPU mesh runs no collective
    else:
        # one NCCL communicator per GPU, made on the first run and reused by the others
        assert gpus.nccl_calls("ncclCommInitRank") == n
        assert gpus.nccl_calls("ncclAllReduce") > 0 and gpus.nccl_calls("ncclSend") > 0


@pytest.mark.parametrize("n", [1, 2, 4])
def test_grad_through_shard_on_fake_gpus(n, monkeypatch):
    w0 = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)

    def loss(mesh):
        def local(w, b):
            return lax.psum(fnp.sum(fnp.tanh(b @ w) ** 2), "i")
        return lambda w: fgrad.shard(local, mesh, (P(), P("i")), P())(w, X)

    want = _on_cpu(n, lambda mesh: fgrad.value_and_grad(loss(mesh))(w0))
    gpus = FakeGpus(n, monkeypatch)
    got = fgrad.value_and_grad(loss(gpus.mesh))(w0)
    _assert_close(got, want)
    np.testing.assert_allclose(np.asarray(got[0]), np.sum(np.tanh(X @ w0) ** 2), rtol=RTOL)


@pytest.mark.parametrize("n", [2, 4])
def test_jit_of_shard_over_a_two_axis_gpu_mesh(n, monkeypatch):
    """Groups of one along an axis of size 1 are answered without NCCL; the other axis uses it."""
    def run(mesh):
        f = fgrad.shard(lambda b: lax.psum(b, "a") * lax.psum(b.sum(), ("a", "i")), mesh,
                        P("i", "a"), P("i", "a"))
        return fgrad.jit(f)(X)

    want = _on_cpu(n, lambda m: run(Mesh(np.array(m.device_list).reshape(n, 1), ("i", "a"))))
    gpus = FakeGpus(n, monkeypatch)
    got = run(Mesh(np.array(gpus.mesh.device_list).reshape(n, 1), ("i", "a")))
    _assert_close(got, want)
    assert gpus.nccl_calls("ncclCommInitRank") == n    # only the group over both axes (n GPUs)


@settings(max_examples=8, deadline=None)
@given(n=st.sampled_from([1, 2, 4]), rows=st.integers(1, 3), cols=st.integers(1, 3),
       kind=st.sampled_from(["psum", "all_gather", "psum_scatter", "ppermute"]),
       dtype=st.sampled_from([np.float32, np.int32]))
def test_collective_results_stay_on_the_gpu_and_match_the_definition(n, rows, cols, kind, dtype):
    """The communicator alone, on GPU buffers: each collective equals its definition."""
    with pytest.MonkeyPatch.context() as mp:
        gpus = FakeGpus(n, mp)
        comm = gpus.factory(gpus.mesh, list(range(n)))
        values = [(np.arange(rows * n * cols).reshape(rows * n, cols) * (r + 1) - 3).astype(dtype) for r in range(n)]
        params = {"psum": {}, "all_gather": dict(axis=1, tiled=False),
                  "psum_scatter": dict(scatter_dimension=0, tiled=True), "ppermute": dict(perm=tuple(_ring(n)))}[kind]
        runtime = comm.runtime
        buffers = [runtime.device(r).put(values[r]) for r in range(n)]
        group = tuple(range(n))
        outs = run_members(n, lambda r: comm.run(r, [CollectiveRequest(kind, buffers[r], group, params)])[0])
        total = sum(v.astype(dtype) for v in values)
        for r, out in outs.items():
            assert isinstance(out, CudaBuffer) and out.device == gpus.mesh.device_list[r]
            want = {"psum": total, "all_gather": np.stack(values, axis=1),
                    "psum_scatter": np.split(total, n, axis=0)[r],
                    "ppermute": values[(r - 1) % n]}[kind]
            np.testing.assert_array_equal(out.to_numpy(), want)


def test_collectives_in_branches_and_loops_run_natively_and_host_operands_come_back_on_the_host(monkeypatch):
    """A branch or loop holding collectives runs on the host around its bodies' GPU programs
    (no reference path); the communicator also takes host operands: NumPy in, NumPy out."""
    def run(mesh):
        def local(b):
            picked = lax.cond(lax.psum(b.sum(), "i") > -100, lambda v: lax.psum(v, "i"), lambda v: v, b)
            looped = lax.fori_loop(0, 3, lambda i, c: fnp.sin(c) + lax.pmean(c, "i"), b)
            return picked, looped
        return fgrad.shard(local, mesh, P("i"), P("i"))(X)

    with warnings.catch_warnings():
        warnings.simplefilter("error", fgrad.ReferencePathWarning)
        want = _on_cpu(2, run)
        gpus = FakeGpus(2, monkeypatch)
        _assert_close(run(gpus.mesh), want)
    comm = gpus.factory(gpus.mesh, [0, 1])
    x = np.arange(6, dtype=np.float32)
    outs = run_members(2, lambda r: comm.run(r, [CollectiveRequest("psum", x * (r + 1), (0, 1), {})])[0])
    assert all(type(o) is np.ndarray for o in outs.values())
    np.testing.assert_array_equal(outs[0], x * 3)


def test_a_group_of_one_checks_the_scatter_dimension(monkeypatch):
    gpus = FakeGpus(1, monkeypatch)
    comm = gpus.factory(gpus.mesh, [0])
    buffer = comm.runtime.device(0).put(np.ones((2, 3), np.float32))
    request = CollectiveRequest("psum_scatter", buffer, (0,), dict(scatter_dimension=0, tiled=False))
    with pytest.raises(ValueError, match=r"over 1 device: dimension 0 of the operand float32\[2, 3\] must be 1"):
        comm.run(0, [request])
    with pytest.raises(ValueError, match="unknown collective 'pmean'"):
        comm.run(0, [CollectiveRequest("pmean", buffer, (0,), {})])


def test_one_gpu_mesh_never_loads_nccl(monkeypatch):
    """The registered factory on a 1-GPU mesh: no library (FGRAD_NCCL_LIBRARY points nowhere)."""
    FakeDriver.reset(1)
    cuda.use_driver(FakeDriver)
    monkeypatch.setenv("FGRAD_NCCL_LIBRARY", "/nonexistent/libnccl.so.2")
    monkeypatch.setitem(shard_module.communicator_factories, "cuda",
                        nccl.communicator_factory(CudaNcclRuntime, cls=CudaNcclCommunicator))
    mesh = Mesh(fgrad.devices(), ("i",))                     # the default devices: the one GPU
    assert mesh.device_list == (cuda.gpu_devices()[0],)
    out = fgrad.shard(lambda b: lax.all_gather(lax.psum(b, "i"), "i"), mesh, P("i"), P())(X)
    np.testing.assert_allclose(np.asarray(out), X[None], rtol=RTOL)
    scattered = fgrad.shard(lambda b: lax.psum_scatter(b[None], "i", scatter_dimension=0, tiled=False) +
                            lax.ppermute(b, "i", []), mesh, P("i"), P("i"))(X)
    np.testing.assert_allclose(np.asarray(scattered), X, rtol=RTOL)


def test_cuda_platform_registers_itself_and_mixed_meshes_are_refused(monkeypatch):
    FakeDriver.reset(1)
    cuda.use_driver(FakeDriver)
    monkeypatch.delitem(shard_module.communicator_factories, "cuda", raising=False)
    mesh = Mesh(fgrad.devices(backend="cuda"), ("i",))
    np.testing.assert_allclose(np.asarray(fgrad.shard(lambda b: lax.psum(b, "i"), mesh, P("i"), P("i"))(X)), X)
    from fgrad.backends.cuda import collectives as cuda_collectives
    assert shard_module.communicator_factories["cuda"] is cuda_collectives.communicator_factory
    mixed = Mesh([devices(1, backend="cpu")[0], cuda.gpu_devices()[0]], ("i",))
    with pytest.raises(ValueError, match="mixes devices of platforms \\['cpu', 'cuda'\\]"):
        fgrad.shard(lambda b: lax.psum(b, "i"), mixed, P("i"), P("i"))(X)


# --- the two lines ------------------------------------------------------------------------------------

def _init_params():
    rng = np.random.default_rng(0)
    return {"w1": (rng.standard_normal((6, 8)) / 3).astype(np.float32), "b1": np.zeros(8, np.float32),
            "w2": (rng.standard_normal((8, 3)) / 3).astype(np.float32)}


def _batches(steps=3, batch=8):
    rng = np.random.default_rng(1)
    xs = rng.standard_normal((steps, batch, 6)).astype(np.float32)
    return xs, (xs[..., 0] > 0).astype(np.int32) + (xs[..., 1] > 0.5).astype(np.int32)


def _loss(params, x, y):
    h = fnp.tanh(x @ params["w1"] + params["b1"])
    return nn.sparse_categorical_crossentropy(h @ params["w2"], y)


@fgrad.jit
def _sgd_step(params, x, y):
    loss, grads = fgrad.value_and_grad(_loss)(params, x, y)
    return fgrad.tree.tree_map(lambda p, g: p - 0.5 * g, params, grads), loss


def _train_two_lines(mesh):
    params = device_put(_init_params(), NamedSharding(mesh, P()))           # line 1: replicated
    losses = []
    for x, y in zip(*_batches()):
        x, y = device_put((x, y), NamedSharding(mesh, P("i")))              # line 2: batch split
        params, loss = _sgd_step(params, x, y)
        losses.append(loss)
    return params, losses


@pytest.mark.parametrize("n", [1, 2, 4])
def test_two_line_data_parallel_training_on_fake_gpus(n, monkeypatch):
    want = _on_cpu(n, _train_two_lines)
    gpus = FakeGpus(n, monkeypatch)
    params, losses = _train_two_lines(gpus.mesh)
    assert all(isinstance(p, ShardedArray) and p.sharding.mesh == gpus.mesh for p in fgrad.tree.tree_leaves(params))
    _assert_close((params, losses), want)
    assert FakeDriver.calls["ir_launch"] > 0
    if n > 1:
        assert gpus.nccl_calls("ncclAllReduce") > 0               # the gradient all-reduce
        assert gpus.nccl_calls("ncclCommInitRank") == n           # made once over the 3 steps
    with fgrad.config.override(backend="cpu"):                    # and one device, unsharded
        p1, l1 = _init_params(), []
        for x, y in zip(*_batches()):
            p1, loss = _sgd_step(p1, x, y)
            l1.append(np.asarray(loss))
    _assert_close(losses, l1)


@pytest.mark.parametrize("n", [1, 2])
def test_sharded_arrays_stay_on_their_gpus_between_steps(n, monkeypatch):
    """Blocks of a ShardedArray on a GPU mesh are device buffers: a training step takes the
    parameters where the previous step left them and leaves its results there. After the
    first step only the new batch crosses to the GPUs (x and y, one block each per GPU) and
    nothing comes back until the loss is read."""
    gpus = FakeGpus(n, monkeypatch)
    params = device_put(_init_params(), NamedSharding(gpus.mesh, P()))
    assert all(isinstance(b, CudaBuffer) for leaf in fgrad.tree.tree_leaves(params) for b in leaf.shards)
    copies = []
    for x, y in zip(*_batches()):
        before = dict(FakeDriver.calls)
        x, y = device_put((x, y), NamedSharding(gpus.mesh, P("i")))
        params, loss = _sgd_step(params, x, y)
        copies.append({k: FakeDriver.calls[k] - before.get(k, 0) for k in ("copy_htod", "copy_dtoh")})
    assert copies[1:] == [{"copy_htod": 2 * n, "copy_dtoh": 0}] * (len(copies) - 1), copies
    assert all(isinstance(b, CudaBuffer) for leaf in fgrad.tree.tree_leaves(params) for b in leaf.shards)
    _assert_close(params, _on_cpu(n, _train_two_lines)[0])           # read back: assembled on the host


# --- real GPUs ----------------------------------------------------------------------------------------

@pytest.mark.cuda
def test_shard_and_two_lines_on_a_real_gpu():
    """The first GPU alone (the lent GPU machines have one): the mesh of ``fgrad.devices()[:1]``,
    no NCCL call."""
    if PycudaDriver.device_count() == 0:
        pytest.skip("needs pycuda and an NVIDIA GPU")
    cuda.use_driver(PycudaDriver)
    n = 1
    mesh = Mesh(fgrad.devices()[:n], ("i",))
    assert mesh.device_list[0].platform == "cuda"
    want = _on_cpu(n, lambda m: [fgrad.shard(f, m, P("i"), spec)(X) for _, f, spec in _programs(n)])
    got = [fgrad.shard(f, mesh, P("i"), spec)(X) for _, f, spec in _programs(n)]
    for (name, _, _), g, w in zip(_programs(n), got, want):
        np.testing.assert_allclose(np.asarray(g), w, rtol=1e-4, atol=1e-5, err_msg=name)
    want = _on_cpu(n, _train_two_lines)
    got = _train_two_lines(mesh)
    for g, w in zip(fgrad.tree.tree_leaves(got), fgrad.tree.tree_leaves(want)):
        np.testing.assert_allclose(np.asarray(g), w, rtol=1e-4, atol=1e-5)
