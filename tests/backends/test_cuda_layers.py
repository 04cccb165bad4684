"""The CUDA backend is a leaf: it never imports the layers above it (transforms, the compile
layer, the lowering pipeline, the public face); those reach it through the hooks it declares
(``set_eager_apply``, ``on_driver_change``), installed by ``fgrad.compile.gpu``.

(``fgrad.devices`` and ``fgrad.distributed``, the multi-device runtime, are still imported
here: the GPU list spans processes, and NCCL's communicator extends ``devices.Communicator``.)
"""
from __future__ import annotations

import ast
import pathlib

import numpy as np
import pytest

from fgrad.compile.cache import executables
import fgrad
from fgrad.backends import cuda
from fgrad.backends.cuda import PycudaDriver, arrays
from fgrad.compile import gpu as compile_gpu
from tests.backends.fake_driver import FakeDriver

BACKENDS = pathlib.Path(fgrad.__file__).parent / "backends"
ABOVE = ("fgrad.transforms", "fgrad.compile", "fgrad.lower.pipeline", "fgrad.numpy", "fgrad.lax",
         "fgrad.nn", "fgrad.optim", "fgrad.random", "fgrad.sharding")


def _imports(path: pathlib.Path) -> list[str]:
    """Every module ``path`` imports (anywhere in it), as absolute names."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return names


@pytest.mark.parametrize("path", sorted(BACKENDS.rglob("*.py")), ids=lambda p: str(p.relative_to(BACKENDS)))
def test_backends_import_no_layer_above_them(path):
    upward = [name for name in _imports(path) if name.startswith(ABOVE)]
    assert upward == [], f"{path.name} imports {upward}"


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
