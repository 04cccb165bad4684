"""The CUDA backend is a leaf (``tests/test_architecture.py`` checks its imports): the layers above
reach it through the hooks it declares (``set_eager_apply``, ``on_driver_change``), installed by
``fgrad.compile.gpu``; these tests check the hooks."""
from __future__ import annotations

import numpy as np
import pytest

from fgrad.compile.cache import executables
import fgrad
from fgrad.backends import cuda
from fgrad.backends.cuda import PycudaDriver, arrays
from fgrad.compile import gpu as compile_gpu
from tests.backends.fake_driver import FakeDriver

@pytest.fixture
def fake_gpu():
    FakeDriver.reset(1)
    cuda.use_driver(FakeDriver)
    yield fgrad.devices(backend="cuda")[0]
    cuda.use_driver(PycudaDriver)


def test_the_compile_layer_installs_the_eager_path(fake_gpu):
    assert arrays._eager_apply == [compile_gpu.eager_apply]
    x = fgrad.device_put(np.arange(3, dtype=np.float32), fake_gpu)
    np.testing.assert_array_equal(np.asarray(x * 2 + 1), [1, 3, 5])
    assert executables.programs("gpu-eager")


def test_a_missing_eager_path_says_so(fake_gpu, monkeypatch):
    x = fgrad.device_put(np.arange(3, dtype=np.float32), fake_gpu)
    monkeypatch.setattr(arrays, "_eager_apply", [])
    with pytest.raises(RuntimeError, match="no eager GPU path is installed"):
        x + 1


def test_use_driver_forgets_the_compile_layers_programs(fake_gpu):
    x = fgrad.device_put(np.arange(3, dtype=np.float32), fake_gpu)
    fgrad.jit(lambda v: v + 1)(x)
    assert executables.programs("gpu-jit")
    cuda.use_driver(FakeDriver)
    assert not executables.programs("gpu-jit") and not executables.programs("gpu-eager")
    assert not compile_gpu._scalar_buffers
