"""``fgrad.backends.base.Driver`` holds ``PycudaDriver`` and the test doubles together: every
method the protocol declares exists on each implementation with the same parameters, so a
method added to one of them (or renamed) fails here until the others follow.
"""
from __future__ import annotations

import inspect

import pytest

from fgrad.backends import cuda
from fgrad.backends.base import Backend, Driver, protocol_methods
from fgrad.backends.cuda import PycudaDriver
from tests.backends.emulated_gpu import EmulatedGpu
from tests.backends.fake_driver import FakeDriver
from tests.backends.fake_pycuda import FakePycuda

IMPLEMENTATIONS = [PycudaDriver, FakeDriver, EmulatedGpu]


def _parameters(fn) -> list[tuple[str, inspect._ParameterKind]]:
    """Names and kinds of ``fn``'s parameters (annotations and defaults may differ)."""
    return [(p.name, p.kind) for p in inspect.signature(fn).parameters.values()]


def protocol_mismatches(cls: type, protocol: type = Driver) -> list[str]:
    """What ``cls`` lacks of ``protocol``'s methods, or declares with other parameters."""
    problems = []
    for name in protocol_methods(protocol):
        if not hasattr(cls, name):
            problems.append(f"{cls.__name__}.{name} is missing")
            continue
        declared = inspect.getattr_static(protocol, name)
        found = inspect.getattr_static(cls, name)
        if isinstance(declared, staticmethod) != isinstance(found, staticmethod):
            problems.append(f"{cls.__name__}.{name}: the protocol's is "
                            f"{'' if isinstance(declared, staticmethod) else 'not '}a staticmethod")
            continue
        want, got = _parameters(getattr(protocol, name)), _parameters(getattr(cls, name))
        if want != got:
            problems.append(f"{cls.__name__}.{name}{[n for n, _ in got]}: the protocol has {[n for n, _ in want]}")
    return problems


def test_the_protocol_lists_pycuda_drivers_public_methods():
    public = sorted(n for n, v in vars(PycudaDriver).items()
                    if not n.startswith("_") and (callable(v) or isinstance(v, staticmethod)))
    assert protocol_methods(Driver) == public
    assert len(public) == 26


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS, ids=lambda c: c.__name__)
def test_every_driver_implements_the_protocol(implementation):
    assert protocol_mismatches(implementation) == []


def test_the_check_fails_on_a_missing_method_or_other_parameters():
    lacking = type("Lacking", (), {k: v for k, v in vars(FakeDriver).items() if k != "launch_graph"})
    assert protocol_mismatches(lacking) == ["Lacking.launch_graph is missing"]

    class Renamed(FakeDriver):
        def copy_htod(self, pointer, host):
            pass

        def event(self, stream):
            pass
    assert protocol_mismatches(Renamed) == [
        "Renamed.copy_htod['self', 'pointer', 'host']: the protocol has ['self', 'ptr', 'host']",
        "Renamed.event['self', 'stream']: the protocol has ['self']"]


def test_driver_instances_are_drivers(monkeypatch):
    FakeDriver.reset(1)
    assert isinstance(FakeDriver(0), Driver)
    EmulatedGpu.reset(1)
    assert isinstance(EmulatedGpu(0), Driver)
    FakePycuda(gpus=1).install(monkeypatch)
    driver = PycudaDriver(0)
    assert isinstance(driver, Driver)
    assert not isinstance(object(), Driver)


def test_the_cuda_backend_is_a_backend():
    assert isinstance(cuda.backend, Backend) and cuda.backend.platform == "cuda"
    assert cuda.backend.compile.__func__ is cuda.CudaBackend.compile
