"""Two processes under mpirun: fgrad.distributed.initialize(), a mesh spanning both processes (two
virtual devices each, or one GPU each), collectives across processes, grad of shard and the
data-parallel jit step all equal their single-process definitions. Skips, saying why, where MPI
or mpi4py is missing.

The GPU case runs without GPUs: each process has one fake GPU (``tests/backends/fake_driver.py``)
and NCCL is ``MpiFakeNccl`` (``tests/backends/fake_nccl.py``), whose collectives exchange the
operands over MPI; the NCCL unique ids still travel as fgrad sends them."""
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from fgrad import distributed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: What both workers check on ``mesh`` (blocks of 2 elements, one per device): every collective
#: across the processes, grad of shard, and the two-line data-parallel step against one device.
#: A failure aborts every process (it must not leave the other waiting in a collective).
CHECKS = textwrap.dedent("""
    import sys, traceback
    from mpi4py import MPI

    def abort_all(*exc):
        traceback.print_exception(*exc)
        MPI.COMM_WORLD.Abort(1)
    sys.excepthook = abort_all

    import numpy as np
    import fgrad
    from fgrad import grad, jit, lax, numpy as fnp
    from fgrad.sharding import NamedSharding, P, device_put

    def close(a, b):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)

    def check_collectives(mesh):
        n = mesh.size
        x = np.arange(2 * n, dtype=np.float32)
        run = lambda f, in_spec, out_spec: fgrad.shard(f, mesh, in_spec, out_spec)(x)
        close(run(lambda b: lax.psum(b.sum(), "i"), P("i"), P()), x.sum())
        close(run(lambda b: lax.pmax(b, "i"), P("i"), P("i")), np.tile(x[-2:], n))
        close(run(lambda b: lax.all_gather(b, "i", tiled=True), P("i"), P()), x)
        close(run(lambda b: lax.psum_scatter(b, "i", tiled=True), P(), P("i")), n * x)
        ring = [(k, (k + 1) % n) for k in range(n)]
        close(run(lambda b: lax.ppermute(b, "i", ring), P("i"), P("i")), np.roll(x, 2))
        close(run(lambda b: b * 0 + lax.axis_index("i"), P("i"), P("i")), np.repeat(np.arange(n), 2))

    def check_training(mesh):
        # grad of shard, then the two-line step against one device: returns (two-line, one device)
        rng = np.random.default_rng(0)
        w, X, Y = (rng.standard_normal(s).astype(np.float32) for s in ((3, 2), (8, 3), (8, 2)))
        loss = lambda w, x, y: fnp.mean((fnp.tanh(x @ w) - y) ** 2)
        sharded = fgrad.shard(lambda w, x, y: lax.pmean(loss(w, x, y), "i"), mesh, (P(), P("i"), P("i")), P())
        close(grad(sharded)(w, X, Y), grad(loss)(w, X, Y))

        @jit
        def step(w, x, y):
            l, g = fgrad.value_and_grad(loss)(w, x, y)
            return w - 0.1 * g, l

        want = step(fnp.asarray(w), fnp.asarray(X), fnp.asarray(Y))
        got = step(device_put(w, NamedSharding(mesh, P())), device_put(X, NamedSharding(mesh, P("i"))),
                   device_put(Y, NamedSharding(mesh, P("i"))))
        close(got[0], want[0]); close(got[1], want[1])
        return got, want
""")

WORKER = CHECKS + textwrap.dedent("""
    from fgrad import distributed
    from fgrad.sharding import Mesh

    distributed.initialize()
    rank, size = distributed.process_index(), distributed.process_count()
    assert size == 2, size
    devs = fgrad.devices(2)                       # two virtual devices per process, four in all
    assert [d.process_index for d in devs] == [0, 0, 1, 1]
    mesh = Mesh(devs, ("i",))
    check_collectives(mesh)
    check_training(mesh)
    print(f"process {rank} ok", flush=True)
""")

GPU_WORKER = CHECKS + textwrap.dedent("""
    import pytest
    from fgrad import distributed
    from fgrad.backends import cuda
    from fgrad.backends.cuda import nccl
    from fgrad.backends.cuda.collectives import CudaNcclCommunicator, CudaNcclRuntime
    from fgrad.sharding import Mesh
    from fgrad.transforms import shard as shard_module
    from tests.backends.fake_driver import FakeDriver
    from tests.backends.fake_nccl import MpiFakeNccl

    FakeDriver.reset(1)                           # one GPU per process
    FakeDriver.host_pointers = True
    cuda.use_driver(FakeDriver)
    distributed.initialize()
    rank = distributed.process_index()
    fake = MpiFakeNccl(MPI.COMM_WORLD)
    shard_module.communicator_factories["cuda"] = nccl.communicator_factory(
        CudaNcclRuntime, nccl=nccl.Nccl(fake), cls=CudaNcclCommunicator)

    gpus = fgrad.devices()                        # the GPUs of both processes
    assert repr(gpus) == "[cuda:0, cuda:1]", gpus
    assert [(d.process_index, d.ordinal) for d in gpus] == [(0, 0), (1, 0)]
    assert fgrad.local_devices() == [gpus[rank]] and fgrad.default_device() == gpus[rank]
    with pytest.raises(ValueError, match=f"run by process {1 - rank}, not by this one"):
        cuda.runtime(gpus[1 - rank])
    mesh = Mesh(gpus, ("i",))
    check_collectives(mesh)
    assert fake.calls, "the collectives ran no NCCL call"
    calls = sum(1 for name, _ in fake.calls if name == "ncclAllReduce")
    got, want = check_training(mesh)
    assert sum(1 for name, _ in fake.calls if name == "ncclAllReduce") > calls   # the gradient all-reduce
    assert isinstance(want[0], cuda.CudaArray)                                   # one device: this process's GPU
    block = got[0].shards[mesh.local_ranks()[0]]
    assert isinstance(block, cuda.CudaBuffer) and block.device == gpus[rank]      # stays on this GPU
    print(f"process {rank} ok", flush=True)
""")


def _run_two_processes(tmp_path, worker: str, **env_extra) -> None:
    script = tmp_path / "worker.py"
    script.write_text(worker)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMPI_MCA_btl="self,vader,tcp", OMPI_MCA_btl_vader_single_copy_mechanism="none", **env_extra)
    done = subprocess.run(_mpirun_command(str(script)), env=env, capture_output=True, text=True, timeout=180)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "process 0 ok" in output and "process 1 ok" in output, output


def _mpirun_command(script: str) -> list[str]:
    command = ["mpirun", "-n", "2", "--oversubscribe"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-run-as-root")
    return command + [sys.executable, script]


needs_mpi = [
    pytest.mark.skipif(shutil.which("mpirun") is None,
                       reason=f"MPI is not installed (mpirun not on PATH); install with: {distributed.INSTALL_HINT}"),
    pytest.mark.skipif(not distributed.mpi_available(),
                       reason=f"mpi4py is not installed; install with: {distributed.INSTALL_HINT}"),
]


@needs_mpi[0]
@needs_mpi[1]
def test_two_processes_under_mpirun(tmp_path):
    _run_two_processes(tmp_path, WORKER, FGRAD_CPU_DEVICES="1", FGRAD_BACKEND="cpu")


@needs_mpi[0]
@needs_mpi[1]
def test_two_processes_with_one_gpu_each_under_mpirun(tmp_path):
    """One fake GPU per process: the device list spans both, each process runs its own GPU,
    and the shard and two-line collectives go through (fake) NCCL across the processes."""
    _run_two_processes(tmp_path, GPU_WORKER)


@pytest.mark.parametrize("peers, want", [
    ([{"host": "a", "gpus": 1}, {"host": "b", "gpus": 1}], [[0], [0]]),
    ([{"host": "a", "gpus": 4}], [[0, 1, 2, 3]]),                        # alone on its host: every GPU
    ([{"host": "a", "gpus": 2}] * 2 + [{"host": "b", "gpus": 2}] * 2, [[0], [1], [0], [1]]),
    ([{"host": "a", "gpus": 1}] * 2, [[0], [0]]),                          # CUDA_VISIBLE_DEVICES per process
    ([{"host": "a", "gpus": 0}, {"host": "b", "gpus": 2}], [[], [0, 1]]),
])
def test_which_gpus_each_process_runs(peers, want):
    from fgrad.backends import cuda
    assert cuda.process_gpus(peers) == want


def test_initialize_without_mpi4py_says_how_to_install(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_mpi(name, *args, **kwargs):
        if name.startswith("mpi4py"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mpi)
    with pytest.raises(RuntimeError, match="apt-get install -y openmpi-bin libopenmpi-dev && pip install mpi4py"):
        distributed.initialize()
    assert not distributed.is_initialized() and distributed.process_count() == 1
