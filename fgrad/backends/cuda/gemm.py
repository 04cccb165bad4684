"""Native kernels: CUDA C templates (``fgrad.lower.cuda_contraction``) for primitives the
kernel IR cannot express well. Today one: a tiled GEMM for ``dot_general`` (TF32 tensor cores
under ``config.matmul_precision == 'tf32'``), which eager GPU operations use
(``fgrad.compile.gpu``).
"""
from __future__ import annotations

import sys
from typing import Any

import numpy as np

from fgrad.backends.base import Device
from fgrad.backends.cuda.arrays import CudaArray, placement_error
from fgrad.backends.cuda.compiler import compile_source
from fgrad.backends.cuda.devices import runtime
from fgrad.backends.cuda.memory import CudaBuffer
from fgrad.config import config
from fgrad.core.trace import _cached_abstract_eval
from fgrad.core.types import ShapedArray
from fgrad.lower.cuda_contraction import GemmSpec, render_gemm
from fgrad.ops.contraction import dot_general_p


class NativeGemm:
    """A compiled ``fgrad.lower.cuda_contraction`` GEMM on one GPU: ``call(a, b) -> [CudaArray]``."""

    def __init__(self, spec, out_aval: ShapedArray, device: Device) -> None:
        self.spec, self.out_aval, self.runtime = spec, out_aval, runtime(device)
        name = f"fg_gemm_{spec.precision}"
        source, self.grid, self.block = render_gemm(spec, name)
        if config.debug >= 4:
            print(source, file=sys.stderr, flush=True)
        driver = self.runtime.driver
        module = driver.load_module(compile_source(self.runtime, source), {name: spec})
        self._launch = driver.launcher(module, name, 3)

    def __call__(self, a: Any, b: Any) -> list:
        rt = self.runtime
        bufs = [x._buffer if isinstance(x, CudaArray) else rt.put(np.asarray(x, self.spec.dtype)) for x in (a, b)]
        for buf in bufs:
            if buf.runtime is not rt:
                raise placement_error(buf.runtime.device, rt.device)
        out = CudaBuffer(rt, self.out_aval.shape, self.out_aval.dtype)
        self._launch(self.grid, self.block, rt.stream, bufs[0].ptr, bufs[1].ptr, out.ptr)
        return [CudaArray._wrap(out, self.out_aval)]


def native_dot_general(avals: tuple, params: dict, device: Device) -> NativeGemm | None:
    """A tiled GEMM (TF32 tensor cores under ``config.matmul_precision == 'tf32'``) for a float
    ``dot_general`` with at most one batch, free and contracting dimension per operand; None
    for any other ``dot_general`` (it then runs as a kernel IR program)."""
    lhs, rhs = avals
    dtype = lhs.dtype
    if rhs.dtype != dtype or dtype.kind != "f" or dtype.itemsize not in (4, 8) or 0 in lhs.shape + rhs.shape:
        return None
    if params.get("preferred_element_type") not in (None, dtype):
        return None
    precision = config.matmul_precision if dtype == np.float32 else "highest"
    try:
        spec = GemmSpec.for_dot_general(lhs.shape, rhs.shape, params["dimension_numbers"], dtype, precision)
    except ValueError:
        return None
    if spec is None:
        return None
    out_aval = _cached_abstract_eval(dot_general_p, list(avals), params)
    return NativeGemm(spec, out_aval, device)
