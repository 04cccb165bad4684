"""Running jaxprs on a GPU: ``jit``'s GPU path (``call_jitted``) and eager operations on GPU
arrays (``eager_apply``: one primitive as a one-equation program, compiled once per signature,
or a native kernel such as ``NativeGemm``).

Both lower through ``fgrad.compile.pipeline.compile_jaxpr`` for the GPU, keep what they compile
in the one executable cache (``compile.cache.executables``), and run the executable
the CUDA backend (``fgrad.backends.cuda``) compiled. The backend sits below this module and
never imports it; two registrations made here, when this module is imported, connect them:

* ``set_eager_apply(eager_apply)``: ``CudaArray._device_process``, which the eager interpreter
  calls for a primitive on GPU arrays, forwards to ``eager_apply``;
* ``on_driver_change(_forget_programs)``: ``use_driver`` (tests install fake drivers) drops the
  programs and buffers compiled here for the previous driver's GPUs.

``device_put`` is ``fgrad.device_put``'s way onto a GPU: placing an array through this module
guarantees that the eager path is installed before the first ``CudaArray`` exists.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Sequence

import numpy as np

from fgrad.backends.base import Device
from fgrad.backends.cuda import (CudaArray, CudaBuffer, CudaRuntime, common_device, native_dot_general,
                                 on_driver_change, placement_error, put, runtime, set_eager_apply)
from fgrad.compile.cache import executables
from fgrad.compile.pipeline import compile_jaxpr
from fgrad.config import config
from fgrad.core.array import Array
from fgrad.core.ir import closure_convert
from fgrad.core.trace import get_aval, trace_to_jaxpr
from fgrad.core.types import ShapedArray
from fgrad.ops import callback
from fgrad.ops.contraction import dot_general_p


def device_put(x: Array, device: Device) -> CudaArray:
    """Place the fgrad array ``x`` on GPU ``device`` (``fgrad.device_put``'s GPU path; a no-op
    when it is there already)."""
    return put(x, device)


def call_jitted(jaxpr, consts: Sequence[Any], leaves: Sequence[Any], in_dtypes: Sequence[np.dtype],
                name: str) -> list[CudaArray] | None:
    """Run a jitted (const-free) jaxpr on the GPU of its arguments (``jit``'s GPU path); None
    when the arguments are committed to the CPU (the caller runs it there).

    The program is compiled once per (jaxpr, device, ``config.matmul_precision``: 'tf32'
    makes its float32 GEMMs tensor-core ones); the closed-over constants are copied to the
    device once.
    """
    device = common_device([*consts, *leaves])
    if device.platform != "cuda":
        return None
    key = ("gpu-jit", id(jaxpr), device.index, config.matmul_precision)

    def build() -> tuple:
        return compile_jaxpr(jaxpr, name, device=device), [put(c, device) for c in consts]
    run, device_consts = executables.get_or_compile(key, build, keep_alive=jaxpr)
    args = [x if isinstance(x, CudaArray) else np.asarray(x, d) for x, d in zip(leaves, in_dtypes)]
    outs = run(*device_consts, *args)
    return [CudaArray._wrap(b, a) for b, a in zip(outs, jaxpr.out_avals)]


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, np.ndarray):
        return (value.dtype.str, value.shape, value.tobytes())
    return value


def _eager_aval(x: Any) -> ShapedArray:
    return x.aval if isinstance(x, Array) else get_aval(x)


def eager_apply(primitive, args: Sequence[Any], params: dict) -> Any:
    """One primitive on GPU arrays: a one-equation program, compiled once per signature."""
    device = common_device(args)
    if device.platform != "cuda":      # unreachable with a GPU operand: common_device raised
        raise placement_error(device, next(x.device for x in args if isinstance(x, CudaArray)))
    if primitive in _HOST_PRIMITIVES:
        return _apply_on_the_host(primitive, args, params, device)
    avals = tuple(_eager_aval(x) for x in args)
    try:
        key = ("gpu-eager", primitive, _freeze(params), avals, device.index,
               config.matmul_precision if primitive in _native_rules else None)
        hash(key)
    except TypeError:
        key = None
    run = executables.get(key) if key is not None else None
    if run is None:
        native = _native_rules.get(primitive)
        run = native(avals, params, device) if native is not None else None
        if run is None:
            run = _compile_eager(primitive, avals, params, device)
        if key is not None:
            executables.put(key, run)
    rt = runtime(device)
    outs = run(*[x if type(x) is CudaArray else _operand_buffer(rt, x, a) for x, a in zip(args, avals)])
    if primitive.multiple_results:
        return outs
    return outs[0]


#: host callbacks: eagerly on GPU arrays, the Python function is called on host copies of the
#: operands and its results are copied to the device (no program: nothing to compile or cache)
_HOST_PRIMITIVES = frozenset({callback.pure_callback_p, callback.io_callback_p, callback.debug_callback_p})


def _apply_on_the_host(primitive, args: Sequence[Any], params: dict, device: Device) -> list:
    outs = primitive.impl(*[np.asarray(x) for x in args], **params)
    return [put(np.asarray(o), device, ShapedArray(np.shape(o), np.asarray(o).dtype)) for o in outs]


_scalar_buffers: dict[tuple, CudaBuffer] = {}
SCALAR_CACHE_SIZE = 512


def _operand_buffer(rt: CudaRuntime, x: Any, aval: ShapedArray) -> Any:
    """A host operand of an eager op on the GPU. Scalars (``x + 1``) are kept on the device by
    value, so repeated constants cost no copy (programs never write their inputs)."""
    value = np.asarray(x._value if isinstance(x, Array) else x, aval.dtype)
    if value.ndim:
        return value
    key = (rt.device.index, value.dtype.str, value.tobytes())
    buf = _scalar_buffers.get(key)
    if buf is None or buf.runtime is not rt:
        if len(_scalar_buffers) >= SCALAR_CACHE_SIZE:
            _scalar_buffers.clear()
        buf = _scalar_buffers[key] = rt.put(value)
    return buf


def _compile_eager(primitive, avals: tuple, params: dict, device: Device) -> Callable:
    """``primitive`` with these avals and params traced to a one-equation jaxpr and compiled
    for ``device``: ``call(*operands) -> [CudaArray]``."""

    def one(*xs):
        out = primitive.bind(*xs, **params)
        return list(out) if primitive.multiple_results else [out]
    closed, consts = closure_convert(trace_to_jaxpr(one, list(avals), dce=False))
    run = compile_jaxpr(closed, f"eager_{_c_name(primitive.name)}", device=device)
    device_consts = [put(c, device) for c in consts]
    out_avals = closed.out_avals

    def call(*xs):
        outs = run(*device_consts, *xs)
        return [CudaArray._wrap(b, a) for b, a in zip(outs, out_avals)]
    return call


def _c_name(name: str) -> str:
    return re.sub(r"\W", "_", name)



#: Primitives with a native GPU kernel for eager calls: ``rule(avals, params, device)`` gives
#: the kernel, or None where it does not apply (then a one-equation program runs).
_native_rules: dict = {dot_general_p: native_dot_general}


def _forget_programs() -> None:
    """Drop every GPU program and buffer (``use_driver`` switched drivers; their runtimes are gone)."""
    for kind in ("gpu-jit", "gpu-eager", "device-program"):   # device programs hold GPU stages too
        executables.discard(kind)
    _scalar_buffers.clear()


set_eager_apply(eager_apply)
on_driver_change(_forget_programs)
