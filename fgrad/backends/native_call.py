"""How a compiled program is called from Python: a CPython function generated with the program.

``add_wrapper`` adds ``fgrad_call`` to a program's entry module: a ``METH_FASTCALL`` function
of the program's arrays that reads each ndarray's type, flags and data pointer from the
object itself (``LAYOUT``, detected in this process) and calls ``fgrad_main`` with the GIL
released. ``python_function`` makes the loaded code a Python builtin: a call costs about
0.15 µs where a ctypes call costs 0.6-0.7 µs, which is most of what a cached ``jit``
dispatch spends beyond allocating its outputs.
"""
from __future__ import annotations

import ctypes
from typing import Callable, NamedTuple

import llvmlite.binding as llvm
import numpy as np

from fgrad.lower import llvm_ir as ir
from fgrad.lower.llvm import ENTRY, I64, PTR, VOID


class ArrayLayout(NamedTuple):
    """Where an ndarray object keeps its type, data pointer and flags (byte offsets), as the
    generated call wrapper reads them."""

    type: int
    data: int
    flags: int


def detect_array_layout() -> ArrayLayout | None:
    """The ndarray object's layout in this process, checked on arrays of several shapes, dtypes
    and flags; None (and no native wrapper: calls pass pointers instead) if it is not where
    CPython and NumPy put it."""
    samples = [np.zeros((3,), np.float32), np.zeros((2, 5), np.int64)[:, ::2], np.zeros((0,), np.uint8)]
    samples[0].flags.writeable = False
    word = lambda a, offset: ctypes.c_void_p.from_address(id(a) + offset).value
    if any(word(a, 8) != id(np.ndarray) for a in samples):
        return None
    data = next((o for o in (16, 24, 32) if all(word(a, o) == a.ctypes.data for a in samples)), None)
    flags = next((o for o in range(24, 128, 4)
                  if all(ctypes.c_int.from_address(id(a) + o).value == a.flags.num for a in samples)), None)
    return None if data is None or flags is None else ArrayLayout(8, data, flags)


LAYOUT = detect_array_layout()
_C_CONTIGUOUS, _WRITEABLE = 0x1, 0x400      # NumPy's NPY_ARRAY_C_CONTIGUOUS and NPY_ARRAY_WRITEABLE
_METH_FASTCALL = 0x80
#: what the wrapper refers to in this process, bound by name before any entry is loaded
_PYTHON_SYMBOLS = {"fgrad_py_none": id(None), "fgrad_py_true": id(True), "fgrad_py_false": id(False),
                   "fgrad_ndarray_type": id(np.ndarray)}
for _name in ("PyEval_SaveThread", "PyEval_RestoreThread", "Py_IncRef"):
    _PYTHON_SYMBOLS[f"fgrad_{_name}"] = ctypes.cast(getattr(ctypes.pythonapi, _name), ctypes.c_void_p).value


def add_wrapper(module: ir.Module, nargs: int, outputs: range) -> None:
    """``fgrad_call``, a CPython ``METH_FASTCALL`` function of the program's ``nargs`` arrays
    (inputs, outputs, constants, arena): checks each is an exact, C-contiguous ndarray, passes
    their data pointers to ``fgrad_main`` with the GIL released, and returns None; or returns
    False, having run nothing, when an argument fails the checks. Bound with ``self`` True it
    first marks the arrays at ``outputs`` read-only (fresh results that become Arrays)."""
    if outputs.step != 1:
        raise ValueError(f"the outputs must be consecutive arguments, not {outputs}")
    i32, i8 = ir.IntType(32), ir.IntType(8)
    main = module.globals[ENTRY]
    external = {}
    for name in _PYTHON_SYMBOLS:
        if name.startswith("fgrad_Py"):
            returns = PTR if name == "fgrad_PyEval_SaveThread" else VOID
            takes = [] if name == "fgrad_PyEval_SaveThread" else [PTR]
            external[name] = ir.Function(module, ir.FunctionType(returns, takes), name)
        else:
            external[name] = ir.GlobalVariable(module, i8, name)
            external[name].linkage = "external"
    fn = ir.Function(module, ir.FunctionType(PTR, [PTR, PTR, I64]), "fgrad_call")
    self_obj, objects, count = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    counter = b.alloca(I64)
    pointers = b.alloca(ir.ArrayType(PTR, max(nargs, 1)))
    fail = fn.append_basic_block("fail")
    at = lambda obj, offset, t: b.load(b.gep(obj, [I64(offset)], inbounds=True, source_etype=i8), typ=t)
    array = lambda k: b.load(b.gep(objects, [k], inbounds=True, source_etype=PTR), typ=PTR)
    checked = fn.append_basic_block("check")
    b.cbranch(b.icmp_unsigned("==", count, I64(nargs)), checked, fail)
    b.position_at_end(checked)

    def check(k):
        obj = array(k)
        exact = b.icmp_unsigned("==", at(obj, LAYOUT.type, PTR), external["fgrad_ndarray_type"])
        contiguous = b.icmp_unsigned("!=", b.and_(at(obj, LAYOUT.flags, i32), i32(_C_CONTIGUOUS)), i32(0))
        next_check = fn.append_basic_block("checked")
        b.cbranch(b.and_(exact, contiguous), next_check, fail)
        b.position_at_end(next_check)

    def freeze(k):
        field = b.gep(array(k), [I64(LAYOUT.flags)], inbounds=True, source_etype=i8)
        b.store(b.and_(b.load(field, typ=i32), i32(~_WRITEABLE)), field)

    def point(k):
        b.store(at(array(k), LAYOUT.data, PTR), b.gep(pointers, [I64(0), k], inbounds=True))

    _counted_loop(b, fn, counter, 0, nargs, check)
    frozen, run = fn.append_basic_block("freeze"), fn.append_basic_block("run")
    b.cbranch(b.icmp_unsigned("==", self_obj, external["fgrad_py_true"]), frozen, run)
    b.position_at_end(frozen)
    _counted_loop(b, fn, counter, outputs.start, outputs.stop, freeze)
    b.branch(run)
    b.position_at_end(run)
    _counted_loop(b, fn, counter, 0, nargs, point)
    state = b.call(external["fgrad_PyEval_SaveThread"], [])
    b.call(main, [pointers])
    b.call(external["fgrad_PyEval_RestoreThread"], [state])
    b.call(external["fgrad_Py_IncRef"], [external["fgrad_py_none"]])
    b.ret(external["fgrad_py_none"])
    b.position_at_end(fail)
    b.call(external["fgrad_Py_IncRef"], [external["fgrad_py_false"]])
    b.ret(external["fgrad_py_false"])


def _counted_loop(b: ir.IRBuilder, fn: ir.Function, counter: ir.Value, start: int, stop: int,
                  body: Callable) -> None:
    """``for k in range(start, stop): body(k)`` with ``k`` an i64 held in ``counter`` (an
    alloca of the entry block, which LLVM turns into a register): a loop, not one copy of the
    body per argument, so a program of a thousand arrays does not make a wrapper LLVM spends
    most of the entry's compile time on. ``body`` may branch away (to a failure block) as long
    as it leaves the builder in the block that goes on."""
    if stop <= start:
        return
    header, loop, done = (fn.append_basic_block(name) for name in ("each", "each.body", "each.done"))
    b.store(I64(start), counter)
    b.branch(header)
    b.position_at_end(header)
    k = b.load(counter, typ=I64)
    b.cbranch(b.icmp_signed("<", k, I64(stop)), loop, done)
    b.position_at_end(loop)
    body(k)
    b.store(b.add(k, I64(1)), counter)
    b.branch(header)
    b.position_at_end(done)


class _MethodDef(ctypes.Structure):
    """CPython's ``PyMethodDef``."""

    _fields_ = [("name", ctypes.c_char_p), ("meth", ctypes.c_void_p), ("flags", ctypes.c_int),
                ("doc", ctypes.c_char_p)]


_new_function = ctypes.pythonapi.PyCFunction_NewEx
_new_function.argtypes = [ctypes.c_void_p, ctypes.py_object, ctypes.c_void_p]
_new_function.restype = ctypes.py_object


def python_function(address: int, freeze_outputs: bool, keep: list) -> Callable:
    """The wrapper at ``address`` as a Python builtin function (``self``: whether it freezes
    the outputs); its method definition is appended to ``keep``, which must outlive it."""
    definition = _MethodDef(b"fgrad_call", address, _METH_FASTCALL, None)
    keep.append(definition)
    return _new_function(ctypes.addressof(definition), freeze_outputs, None)


def bind_symbols() -> None:
    """Make the Python objects and functions the wrappers refer to resolvable by the loader."""
    for name, address in _PYTHON_SYMBOLS.items():
        llvm.add_symbol(name, address)
