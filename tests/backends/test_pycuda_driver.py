"""``PycudaDriver`` against a fake pycuda (``fake_pycuda.py``) that keeps contexts as pycuda
does: a stack per thread, calls that fail without the right context current, and a thread
that must end with its stack empty (pycuda aborts the process otherwise). The other backend
tests replace the driver altogether (``fake_driver.py``); these run its own code.
"""
from __future__ import annotations

import struct
import threading

import numpy as np
import pytest

import fgrad
from fgrad.backends import cuda
from fgrad.backends.cuda import PycudaDriver
from tests.backends.fake_pycuda import FakeCudaError, FakePycuda


@pytest.fixture
def fake(monkeypatch):
    """Two fake GPUs behind the real driver class; no context left over from another test."""
    gpus = FakePycuda(gpus=2)
    gpus.install(monkeypatch)
    yield gpus


def _round_trip(driver: PycudaDriver, x: np.ndarray) -> np.ndarray:
    ptr, handle = driver.mem_alloc(x.nbytes)
    driver.copy_htod(ptr, x)
    out = np.empty_like(x)
    driver.copy_dtoh(out, ptr)
    driver.synchronize()
    driver.mem_free(handle)
    return out


def _launcher(driver: PycudaDriver, name: str):
    return driver.launcher(driver.load_module(driver.compile(name, "sm_90", ()), {}), name, 2)


def _on_thread(work) -> int:
    """Run ``work`` on a new thread (re-raising its error); that thread's ident."""
    errors, thread = [], None

    def run():
        try:
            work()
        except BaseException as e:  # noqa: BLE001 - re-raised below
            errors.append(e)
    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    if errors:
        raise errors[0]
    return thread.ident


def test_the_fake_fails_like_cuda_without_a_context(fake):
    with pytest.raises(FakeCudaError, match="no currently active context"):
        fake.modules["pycuda.driver"].mem_alloc(16)


def test_two_gpus_from_the_main_thread(fake):
    d0, d1 = PycudaDriver(0), PycudaDriver(1)
    x = np.arange(6, dtype=np.float32)
    for driver in (d0, d1, d0, d1):                        # each call switches to its GPU
        np.testing.assert_array_equal(_round_trip(driver, x), x)
    k0, k1 = _launcher(d0, "k0"), _launcher(d1, "k1")
    k0((2, 1), (32, 1, 1), d0.stream, 16, 32)
    k1((1, 1), (64, 1, 1), d1.stream, 48, 64)
    k0((2, 1), (32, 1, 1), d0.stream, 80, 96)
    assert [(name, gpu) for name, gpu, *_ in fake.launches] == [("k0", 0), ("k1", 1), ("k0", 0)]
    assert fake.launches[1][4] == struct.pack("PP", 48, 64)
    assert len(fake.stack()) == 1                          # the main thread keeps one context current
    d0.close()
    d1.close()
    assert fake.stack() == []                              # and pops it at exit


def test_other_threads_leave_their_context_stack_empty(fake):
    d0, d1 = PycudaDriver(0), PycudaDriver(1)
    x = np.arange(5, dtype=np.int32)
    k1 = _launcher(d1, "k1")

    def work():
        for driver in (d1, d0):
            np.testing.assert_array_equal(_round_trip(driver, x), x)
        k1((1, 1), (32, 1, 1), d1.stream, 1, 2)
        assert _round_trip(d0, x + 1)[0] == 1
        driver = PycudaDriver(1)                           # a driver opened on this thread
        np.testing.assert_array_equal(_round_trip(driver, x), x)
    ident = _on_thread(work)
    assert fake.stack(ident) == []
    assert fake.launches[-1][:2] == ("k1", 1)
    d0.close()
    d1.close()
    assert fake.stack() == []


def test_prepared_call_path_switches_contexts_too(fake, monkeypatch):
    monkeypatch.setenv("FGRAD_CUDA_LAUNCH", "prepared")
    d0, d1 = PycudaDriver(0), PycudaDriver(1)
    k0, k1 = _launcher(d0, "k0"), _launcher(d1, "k1")
    k1((1, 1), (32, 1, 1), d1.stream, 1, 2)
    k0((1, 1), (32, 1, 1), d0.stream, 3, 4)
    ident = _on_thread(lambda: k1((1, 1), (32, 1, 1), d1.stream, 5, 6))
    assert [(name, gpu) for name, gpu, *_ in fake.launches] == [("k1", 1), ("k0", 0), ("k1", 1)]
    assert fake.stack(ident) == []


def test_runtime_on_the_real_driver_class(fake):
    """The runtime layer (allocator, copies, an eager op's launch) over PycudaDriver, from the
    main thread and another one."""
    cuda.use_driver(PycudaDriver)
    try:
        gpus = fgrad.devices(backend="cuda")
        assert len(gpus) == 2
        x = np.arange(12, dtype=np.float32).reshape(3, 4)
        a = fgrad.device_put(x, gpus[1])
        np.testing.assert_array_equal(np.asarray(a), x)
        a + 1                                             # compiled (fake cubin) and launched on GPU 1
        assert fake.launches and fake.launches[-1][1] == 1

        def work():
            b = fgrad.device_put(x * 2, gpus[0])
            np.testing.assert_array_equal(np.asarray(b), x * 2)
            b * 3
        ident = _on_thread(work)
        assert fake.stack(ident) == [] and fake.launches[-1][1] == 0
    finally:
        for rt in cuda.devices._runtimes.values():
            rt._close()
        cuda.use_driver(PycudaDriver)
    assert fake.stack() == []
