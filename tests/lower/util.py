"""Helpers for the lowering tests: run kernels and programs on the interpreter and the CPU backend."""
from __future__ import annotations

import numpy as np

from fgrad.backends.cpu import compile_program
from fgrad.lower.interpret import run_program
from fgrad.lower.kernel import Buffer, Call, Kernel, Program


def kernel_program(kernel: Kernel, n_inputs: int, name: str = "prog") -> Program:
    """A program calling ``kernel`` once: its first ``n_inputs`` params are inputs, the rest outputs."""
    bufs = [Buffer(f"b_{p.name}", p.dtype, p.size) for p in kernel.params]
    return Program(name, bufs[:n_inputs], bufs[n_inputs:], (Call(kernel, bufs),))


def run_both(program: Program, *inputs: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(interpreter outputs, LLVM outputs) of ``program`` on ``inputs``."""
    return run_program(program, *inputs), compile_program(program)(*inputs)


def run_llvm(program: Program, *inputs: np.ndarray) -> list[np.ndarray]:
    return compile_program(program)(*inputs)


def assert_same(expected, actual, rtol: float = 0.0, atol: float = 0.0) -> None:
    """Equal arrays (NaN equals NaN); with tolerances for floats."""
    for e, a in zip(expected, actual):
        e, a = np.asarray(e), np.asarray(a)
        assert e.dtype == a.dtype and e.shape == a.shape, (e.dtype, a.dtype, e.shape, a.shape)
        if rtol or atol:
            np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, equal_nan=True)
        else:
            np.testing.assert_array_equal(a, e)
