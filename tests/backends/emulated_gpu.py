"""A fake GPU whose kernels are the rendered CUDA C itself, compiled for the host.

``EmulatedGpu`` is ``FakeDriver`` (memory in NumPy at host addresses, calls counted, CUDA
graphs captured and replayed) except for code: ``compile`` keeps the CUDA C source,
``load_module`` compiles it with g++ and OpenMP (``tests/lower/cuda_host.py``: one OS thread
per CUDA thread, real barriers, emulated wmma), and a launch runs the native kernel on the
fake memory. So a jitted program runs end to end through ``fgrad.backends.cuda`` — launch
plan, arena, allocator, graphs — with the very kernels a GPU would get, where
``FakeDriver`` interprets the kernel IR instead.

To keep that fast, kernels whose threads stride over the work (the renderer's grid and
segments modes) run on 2 blocks of 32 threads, block-mode kernels on one block of 32,
single-thread kernels on one thread; GEMM kernels run as planned (their tiles assume it).

    EmulatedGpu.reset(1); cuda.use_driver(EmulatedGpu)
"""
from __future__ import annotations

import hashlib
import pathlib
import tempfile

import pytest

from fgrad.backends import cuda
from fgrad.backends.cuda import PycudaDriver
from fgrad.lower.cuda import render_kernel
from tests.backends.fake_driver import FakeDriver
from tests.lower.cuda_host import HostModule

MARK = b"HOST CUDA C\n"
SIZES = {"grid": (2, 32), "segments": (2, 32), "block": (1, 32), "single": (1, 1)}


class EmulatedGpu(FakeDriver):
    """``FakeDriver`` whose launches run the rendered CUDA C natively (see the module docstring)."""

    folder = pathlib.Path(tempfile.mkdtemp(prefix="fgrad-emulated-gpu-"))
    _modules: dict = {}         # source hash -> HostModule (a program compiles once per process)

    @classmethod
    def reset(cls, count: int = 1) -> None:
        super().reset(count)
        cls.host_pointers = True           # the native kernels dereference the pointers

    def compiler_id(self) -> str:
        return "emulated-gpu-host"       # not the fake driver's: their images differ under one source

    def compile(self, source: str, arch: str, options) -> bytes:
        self.calls["compile"] += 1
        return MARK + source.encode()

    def load_module(self, image: bytes, kernels: dict):
        self.calls["load_module"] += 1
        if not image.startswith(MARK):
            raise ValueError("emulated GPU: not an image from its compile")
        source = image[len(MARK):].decode()
        digest = hashlib.sha256(image).hexdigest()[:16]
        module = EmulatedGpu._modules.get(digest)
        if module is None:
            module = EmulatedGpu._modules[digest] = HostModule(source, EmulatedGpu.folder / digest, "program")
        modes = {name: render_kernel(kernel, name)[1] for name, kernel in kernels.items() if hasattr(kernel, "body")}
        return module, modes

    def _executor(self, module, name: str, nargs: int):
        host, modes = module

        def execute(ptrs: tuple, grid, block) -> None:
            blocks, threads = SIZES.get(modes.get(name), (grid, block[0] if isinstance(block, tuple) else block))
            host.launch_pointers(name, list(ptrs), blocks, threads)
        return execute, "host_launch"


@pytest.fixture
def emulated(tmp_path, monkeypatch):
    """The emulated GPU as fgrad's CUDA driver for one test (one device, a cache of its own);
    import it into a test module to use it as a fixture."""
    monkeypatch.setenv("FGRAD_CACHE_DIR", str(tmp_path / "cache"))
    EmulatedGpu.reset(1)
    cuda.use_driver(EmulatedGpu)
    yield EmulatedGpu
    cuda.use_driver(PycudaDriver)
