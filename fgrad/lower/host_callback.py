"""Lowering of host callbacks (``fgrad.ops.callback``): Python called from inside the native call.

Each callback becomes one program step, ``ExternCall("fgrad_callback_<n>", inputs + outputs,
returns_status=True)``: its operands are materialised into buffers first (fusing whatever
computes them), and its results are buffers the Python function's values are written into.
The symbol is bound (``fgrad.lower.extern.register_routine``, ``llvm.add_symbol`` when the
code is loaded) to a ctypes ``CFUNCTYPE`` trampoline, one per (callback, operand and result
types) in this process. An ``ExternCall`` is a step of the program's entry, never inside a
kernel, so the callback runs in the thread that called the program, between kernels: never
inside a parallel region's worker.

The trampoline (ctypes takes the GIL back for it): wraps each operand buffer as a read-only
NumPy array over the program's memory (no copy; a debug or io callback gets copies, since
it may keep them), calls the function, checks its results against the declared shapes and dtypes
(``checked_results``) and writes them into the result buffers. An exception in the callback
(or a bad result) cannot cross the generated code: the trampoline keeps it
(``extern.set_pending_error``) and returns 1, the program returns at once (the rest of it
does not run), and the executable raises the exception, its type and message unchanged,
when the native call has returned (``extern.raise_pending_error``).

What a callback costs: a ctypes call into Python (the GIL taken back) and one NumPy view per
operand and result: a few microseconds, plus the function itself; the program around it stays
one native call. A program holding a callback is never cached on disk across processes (its
params hold a function, so ``compile/program_key.py`` gives it no key, and the CPU backend
keeps its entry's object code in memory only): the symbol names a function of this process.

On the GPU a jitted program holding a callback runs on the host CPU, as programs calling
LAPACK do (``backends/cuda/executable.py``: ``HostFallbackWarning``), its operands copied to the
host and its results back; an eager callback on GPU arrays is called on host copies of them and
its results are copied to the device (``compile/gpu.py``), without a program.
"""
from __future__ import annotations

import ctypes
import itertools
import threading
from typing import Callable, Sequence

import numpy as np

from fgrad.core.types import ShapedArray
from fgrad.lower import kernel as K
from fgrad.lower.extern import has_pending_error, register_routine, set_pending_error
from fgrad.lower.schedule import BufferValue, Lowerer, Value, ir_dtype
from fgrad.ops import callback as cb

#: the symbol prefix of host callbacks (the rest is a number, unique in this process)
CALLBACK_PREFIX = "fgrad_callback_"

#: Lowering rules by primitive.
RULES: dict = {}

_sites: dict[tuple, "_Site"] = {}
_MAX_VIEWS = 16         # views kept per buffer slot (by address)
_numbers = itertools.count()
_lock = threading.Lock()


def is_callback_symbol(symbol: str) -> bool:
    """Whether an ``ExternCall`` routine is a host callback (process-specific: never cache it)."""
    return symbol.startswith(CALLBACK_PREFIX)


class _Slot:
    """How one buffer is seen from Python: the aval's shape and dtype over the buffer's dtype
    (a float16 value computes in a float32 buffer)."""

    __slots__ = ("shape", "dtype", "stored", "size", "raw", "views")

    def __init__(self, aval: ShapedArray) -> None:
        self.shape, self.dtype = aval.shape, np.dtype(aval.dtype)
        self.stored = np.dtype(ir_dtype(aval.dtype))
        self.size = aval.size
        self.raw = ctypes.c_char * (self.size * self.stored.itemsize)
        #: views by (address, writeable): a program passes the same addresses call after call
        self.views: dict[tuple, np.ndarray] = {}

    def view(self, address: int | None, writeable: bool) -> np.ndarray:
        arr = self.views.get((address, writeable))
        if arr is not None:
            return arr
        if not self.size:
            return np.empty(self.shape, self.dtype)
        arr = np.frombuffer(self.raw.from_address(address), self.stored).reshape(self.shape)
        arr.flags.writeable = writeable
        if len(self.views) >= _MAX_VIEWS:
            self.views.clear()
        self.views[(address, writeable)] = arr
        return arr

    def read(self, address: int | None, copy: bool) -> np.ndarray:
        arr = self.view(address, writeable=False)
        if arr.dtype != self.dtype:
            arr = arr.astype(self.dtype)            # float16 from its float32 buffer: a copy anyway
            arr.flags.writeable = False
        return arr.copy() if copy else arr

    def write(self, address: int | None, value: np.ndarray) -> None:
        if self.size:
            self.view(address, writeable=True)[...] = value


class _Site:
    """One callback with its operand and result types: the trampoline generated code calls."""

    def __init__(self, callback: cb.HostCallback, in_avals: Sequence[ShapedArray],
                 out_avals: Sequence[ShapedArray], op: str, copy_inputs: bool) -> None:
        self.callback, self.op, self.copy_inputs = callback, op, copy_inputs
        self.inputs = [_Slot(a) for a in in_avals]
        self.outputs = [_Slot(a) for a in out_avals]
        self.out_avals = list(out_avals)
        self.symbol = f"{CALLBACK_PREFIX}{next(_numbers)}"
        proto = ctypes.CFUNCTYPE(ctypes.c_int32, *([ctypes.c_void_p] * (len(self.inputs) + len(self.outputs))))
        self.trampoline = proto(self._run)          # kept alive as long as the site (forever)
        self.address = ctypes.cast(self.trampoline, ctypes.c_void_p).value

    def _run(self, *addresses: int | None) -> int:
        if has_pending_error():            # an earlier callback of this call failed: stop
            return 1
        try:
            n = len(self.inputs)
            args = [s.read(a, self.copy_inputs) for s, a in zip(self.inputs, addresses[:n])]
            results = self.callback(*args)
            if self.outputs:
                values = cb.checked_results(results, self.out_avals, self.op)
                for slot, address, value in zip(self.outputs, addresses[n:], values):
                    slot.write(address, value)
            return 0
        except BaseException as error:     # noqa: BLE001 - re-raised after the native call returns
            set_pending_error(error)
            return 1


def callback_symbol(callback: cb.HostCallback, in_avals: Sequence[ShapedArray],
                    out_avals: Sequence[ShapedArray], op: str, copy_inputs: bool) -> str:
    """The symbol generated code calls ``callback`` on these operand and result types by (one
    trampoline per distinct (callback, types) in this process, registered with ``extern``)."""
    key = (id(callback), tuple(in_avals), tuple(out_avals), op, copy_inputs)
    with _lock:
        site = _sites.get(key)
        if site is None or site.callback is not callback:
            site = _Site(callback, in_avals, out_avals, op, copy_inputs)
            _sites[key] = site
            register_routine(site.symbol, lambda address=site.address: address)
    return site.symbol


def _lowering(op: str, copy_inputs: bool) -> Callable:
    def lower(lw: Lowerer, eqn, ins: Sequence[Value]) -> list[Value]:
        in_bufs = [lw.materialize(v).buffer for v in ins]
        out_avals = [v.aval for v in eqn.outvars]
        out_bufs = [lw.output_buffer(v, v.aval, "callback") for v in eqn.outvars]
        symbol = callback_symbol(eqn.params["callback"], [v.aval for v in ins], out_avals, op, copy_inputs)
        lw.steps.append(K.ExternCall(symbol, (*in_bufs, *out_bufs), returns_status=True))
        return [BufferValue(a, b) for a, b in zip(out_avals, out_bufs)]
    return lower


RULES[cb.pure_callback_p] = _lowering("pure_callback", copy_inputs=False)
RULES[cb.io_callback_p] = _lowering("io_callback", copy_inputs=True)
RULES[cb.debug_callback_p] = _lowering("debug_callback", copy_inputs=True)


def live_callbacks() -> int:
    """How many trampolines this process holds (one per distinct callback and types lowered)."""
    return len(_sites)
