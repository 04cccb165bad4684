"""Threads of CPU programs: ``cpu.thread_budget`` scopes the thread count programs are compiled
for (per Python thread), virtual devices compile for their share of the cores, and programs
of a reduced budget running at once each get a thread pool of their own."""
import threading

import numpy as np
import pytest

import fgrad
from fgrad import lax
from fgrad import numpy as fnp
from fgrad.backends import cpu, threadpool
from fgrad.devices import devices
from fgrad.compile.pipeline import compile_jaxpr
from fgrad.sharding import Mesh, NamedSharding, P, device_put
from fgrad.transforms.shard import shard


def test_budget_is_scoped_nested_and_per_thread(monkeypatch):
    monkeypatch.setenv("FGRAD_NUM_THREADS", "8")
    assert cpu.num_threads() == 8
    with cpu.thread_budget(3) as got:
        assert got == 3 and cpu.num_threads() == 3 and cpu.host_target().num_threads == 3
        with cpu.thread_budget(16) as inner:  # a budget never raises the configured count
            assert inner == 8
        assert cpu.num_threads() == 3
        seen = []
        other = threading.Thread(target=lambda: seen.append(cpu.num_threads()))
        other.start()
        other.join()
        assert seen == [8]  # another thread is not limited by this one's budget
    assert cpu.num_threads() == 8


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_budget_and_share_reject_bad_counts(bad):
    with pytest.raises(ValueError, match="positive integer"):
        with cpu.thread_budget(bad):
            pass
    with pytest.raises(ValueError, match="positive integer"):
        cpu.share_of_threads(bad)


@pytest.mark.parametrize("threads,parts,share", [(2, 1, 2), (2, 2, 1), (2, 8, 1), (16, 4, 4), (6, 4, 1)])
def test_share_of_threads(monkeypatch, threads, parts, share):
    monkeypatch.setenv("FGRAD_NUM_THREADS", str(threads))
    assert cpu.share_of_threads(parts) == share


def _record_compile_budgets(monkeypatch) -> list:
    seen, original = [], cpu.compile_program

    def recording(program, **kwargs):
        seen.append(cpu.num_threads())
        return original(program, **kwargs)
    monkeypatch.setattr(cpu, "compile_program", recording)
    return seen


@pytest.mark.parametrize("n,share", [(1, 2), (2, 1), (4, 1)])
def test_virtual_devices_compile_for_their_share(monkeypatch, n, share):
    monkeypatch.setenv("FGRAD_NUM_THREADS", "2")
    seen = _record_compile_budgets(monkeypatch)
    mesh = Mesh(devices(n), ("i",))
    x = np.arange(8 * n, dtype=np.float32).reshape(4 * n, 2)

    def f(b):  # a distinct program per test case, so nothing comes from jit's caches
        return lax.psum(fnp.tanh(b * float(n)).sum(0), "i")
    got = shard(f, mesh, P("i"), P())(x)
    np.testing.assert_allclose(np.asarray(got), np.tanh(x * n).sum(0), rtol=1e-5)
    assert seen and set(seen) == {share}


def test_two_line_step_compiles_for_the_share(monkeypatch):
    monkeypatch.setenv("FGRAD_NUM_THREADS", "2")
    seen = _record_compile_budgets(monkeypatch)
    mesh = Mesh(devices(2), ("data",))
    w = device_put(np.ones((3, 2), np.float32), NamedSharding(mesh, P()))
    x = device_put(np.ones((8, 3), np.float32), NamedSharding(mesh, P("data")))
    loss = fgrad.jit(lambda w, x: fnp.mean(fnp.sin(x @ w) * 1.25))(w, x)
    np.testing.assert_allclose(float(loss), np.sin(3.0) * 1.25, rtol=1e-5)
    assert seen and set(seen) == {1}


def test_programs_with_a_share_each_get_a_pool(monkeypatch):
    monkeypatch.setenv("FGRAD_NUM_THREADS", "4")
    n = 1 << 18
    closed = fgrad.make_jaxpr(lambda x: fnp.sin(x) * 3.0 + fnp.cos(x) * 0.5)(np.zeros(n, np.float32))
    with cpu.thread_budget(2):
        exes = [compile_jaxpr(closed, "pooled") for _ in range(2)]  # one per concurrent caller
    sizes = threadpool.pool_sizes()
    assert len(sizes) >= 2 and min(sizes[:2]) >= 1  # 4 // 2 pools of 2 - 1 workers
    errors = []

    def work(exe, seed):
        x = np.random.default_rng(seed).standard_normal(n).astype(np.float32)
        want = np.sin(x) * np.float32(3.0) + np.cos(x) * np.float32(0.5)
        for _ in range(20):
            if not np.allclose(exe(x)[0], want, rtol=1e-5, atol=1e-5):
                errors.append(seed)
    threads = [threading.Thread(target=work, args=(exe, k)) for k, exe in enumerate(exes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
