"""Two processes under mpirun: fgrad.distributed.initialize(), a mesh spanning both processes (two
virtual devices each), collectives across processes, grad of shard and the data-parallel jit step
all equal their single-process definitions. Skips, saying why, where MPI or mpi4py is missing."""
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from fgrad import distributed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORKER = textwrap.dedent("""
    import numpy as np
    import fgrad
    from fgrad import distributed, grad, jit, lax, numpy as fnp
    from fgrad.sharding import Mesh, NamedSharding, P, device_put

    distributed.initialize()
    rank, size = distributed.process_index(), distributed.process_count()
    assert size == 2, size
    devs = fgrad.devices(2)                       # two virtual devices per process, four in all
    assert [d.process_index for d in devs] == [0, 0, 1, 1]
    mesh = Mesh(devs, ("i",))
    x = np.arange(8, dtype=np.float32)

    def close(a, b):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)

    close(fgrad.shard(lambda b: lax.psum(b.sum(), "i"), mesh, P("i"), P())(x), 28.0)
    close(fgrad.shard(lambda b: lax.all_gather(b, "i", tiled=True), mesh, P("i"), P())(x), x)
    ring = [(k, (k + 1) % 4) for k in range(4)]
    close(fgrad.shard(lambda b: lax.ppermute(b, "i", ring), mesh, P("i"), P("i"))(x), np.roll(x, 2))
    close(fgrad.shard(lambda b: b * 0 + lax.axis_index("i"), mesh, P("i"), P("i"))(x), np.repeat(np.arange(4), 2))

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
    print(f"process {rank} ok", flush=True)
""")


def _mpirun_command(script: str) -> list[str]:
    command = ["mpirun", "-n", "2", "--oversubscribe"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-run-as-root")
    return command + [sys.executable, script]


@pytest.mark.skipif(shutil.which("mpirun") is None,
                    reason=f"MPI is not installed (mpirun not on PATH); install with: {distributed.INSTALL_HINT}")
@pytest.mark.skipif(not distributed.mpi_available(),
                    reason=f"mpi4py is not installed; install with: {distributed.INSTALL_HINT}")
def test_two_processes_under_mpirun(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMPI_MCA_btl="self,vader,tcp", OMPI_MCA_btl_vader_single_copy_mechanism="none",
               FGRAD_CPU_DEVICES="1")
    done = subprocess.run(_mpirun_command(str(script)), env=env, capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "process 0 ok" in output and "process 1 ok" in output, output


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
