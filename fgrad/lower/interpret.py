"""The executable definition of the kernel IR: a small interpreter in Python and NumPy.

It runs programs in program order with NumPy scalars of the exact dtypes,
ignoring the ``parallel``/``vectorize``/``unroll`` hints; temporaries live in
an arena laid out by ``plan_memory`` (filled with 0xFF bytes, so reading a
temporary before writing it shows up as NaN or -1). Loads and stores are
bounds-checked. Renderers are tested against it; each scalar op runs its
``reference`` in ``scalar_ops.TABLE`` (see also the semantics section of ``kernel``).

    >>> outs = run_program(program, x)          # NumPy arrays in, NumPy arrays out
    >>> run_kernel(kernel, x, y)                # params bound positionally, arrays updated in place
"""
from __future__ import annotations

import weakref
from typing import Any, Callable

import numpy as np

from fgrad.lower.extern import call_routine, raise_pending_error
from fgrad.lower.kernel import (
    Accumulate, Buffer, BufferAt, Call, Const, DefineLocal, Expr, ExternCall, If, Kernel, Load,
    LocalLoad, LocalStore, Loop, Op, Program, Range, Store, Switch, Var, While, is_float,
    plan_memory, short_name,
)
# the scalar ops' semantics live in the op table; SCALAR_OPS, cast_value and bitcast_value
# stay importable from here, where they were defined first
from fgrad.lower.scalar_ops import SCALAR_OPS, apply_op, bitcast_value, cast_value  # noqa: F401


# --- kernels -------------------------------------------------------------------------------

class _Frame:
    """The state of one kernel run: loop vars, locals and the param arrays."""

    __slots__ = ("vars", "locals", "bufs")

    def __init__(self, bufs: dict[str, np.ndarray]) -> None:
        self.vars: dict[str, int] = {}
        self.locals: dict[str, np.ndarray] = {}
        self.bufs = bufs


class _Compiler:
    """Turns a kernel into nested Python closures (an interpreter without a dispatch loop)."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.sizes = {p.name: p.size for p in kernel.params}

    def block(self, stmts: tuple) -> Callable[[_Frame], None]:
        fns = [self.stmt(s) for s in stmts]

        def run(fr: _Frame) -> None:
            for fn in fns:
                fn(fr)
        return run

    def stmt(self, s) -> Callable[[_Frame], None]:
        method = getattr(self, "stmt_" + type(s).__name__)
        return method(s)

    def stmt_Range(self, s: Range) -> Callable[[_Frame], None]:
        start, stop, body, name, step = self.expr(s.start), self.expr(s.stop), self.block(s.body), \
            s.var.name, s.step

        def run(fr: _Frame) -> None:
            for i in range(int(start(fr)), int(stop(fr)), step):
                fr.vars[name] = np.int64(i)
                body(fr)
        return run

    def stmt_Store(self, s: Store) -> Callable[[_Frame], None]:
        index, value, check = self.expr(s.index), self.expr(s.value), self.bounds(s.param)
        mask = self.expr(s.mask) if s.mask is not None else (lambda fr: True)

        def run(fr: _Frame) -> None:
            v = value(fr)
            if mask(fr):
                fr.bufs[s.param][check(index(fr))] = v
        return run

    def stmt_DefineLocal(self, s: DefineLocal) -> Callable[[_Frame], None]:
        loc = s.local
        init = self.expr(s.init) if s.init is not None else None
        poison = np.array(np.nan if is_float(loc.dtype) else -1).astype(loc.dtype)

        def run(fr: _Frame) -> None:
            fr.locals[loc.name] = np.full(loc.size, init(fr) if init else poison, dtype=loc.dtype)
        return run

    def stmt_LocalStore(self, s: LocalStore) -> Callable[[_Frame], None]:
        index, value = self.expr(s.index), self.expr(s.value)

        def run(fr: _Frame) -> None:
            arr = fr.locals[s.local]
            arr[self.local_index(s.local, arr, index(fr))] = value(fr)
        return run

    def stmt_Accumulate(self, s: Accumulate) -> Callable[[_Frame], None]:
        index, value = self.expr(s.index), self.expr(s.value)

        def run(fr: _Frame) -> None:
            arr = fr.locals[s.local]
            i = self.local_index(s.local, arr, index(fr))
            arr[i] = apply_op(s.op, (arr[i], value(fr)), arr.dtype)
        return run

    def stmt_If(self, s: If) -> Callable[[_Frame], None]:
        cond, then, else_ = self.expr(s.cond), self.block(s.then), self.block(s.else_)

        def run(fr: _Frame) -> None:
            (then if cond(fr) else else_)(fr)
        return run

    def local_index(self, name: str, arr: np.ndarray, i: Any) -> int:
        i = int(i)
        if not 0 <= i < arr.size:
            raise IndexError(f"kernel {self.kernel.name}: local {name}[{i}] is out of bounds "
                             f"(size {arr.size})")
        return i

    def bounds(self, param: str) -> Callable[[Any], int]:
        size, kernel = self.sizes[param], self.kernel.name

        def check(i: Any) -> int:
            i = int(i)
            if not 0 <= i < size:
                raise IndexError(f"kernel {kernel}: {param}[{i}] is out of bounds (size {size})")
            return i
        return check

    def expr(self, e: Expr) -> Callable[[_Frame], Any]:
        if isinstance(e, Const):
            value = e.dtype.type(e.value)
            return lambda fr: value
        if isinstance(e, Var):
            return lambda fr: fr.vars[e.name]
        if isinstance(e, Load):
            return self.expr_load(e)
        if isinstance(e, LocalLoad):
            index = self.expr(e.index)
            return lambda fr: fr.locals[e.local][self.local_index(e.local, fr.locals[e.local],
                                                                  index(fr))]
        return self.expr_op(e)

    def expr_load(self, e: Load) -> Callable[[_Frame], Any]:
        index, check = self.expr(e.index), self.bounds(e.param)
        if e.mask is None:
            return lambda fr: fr.bufs[e.param][check(index(fr))]
        mask, zero = self.expr(e.mask), e.dtype.type(0)
        return lambda fr: fr.bufs[e.param][check(index(fr))] if mask(fr) else zero

    def expr_op(self, e: Op) -> Callable[[_Frame], Any]:
        # Both sides of a select are evaluated (and bounds-checked), as renderers do.
        args = [self.expr(a) for a in e.args]
        name, dtype = e.op, e.dtype
        return lambda fr: apply_op(name, [f(fr) for f in args], dtype)


_compiled: "weakref.WeakKeyDictionary[Kernel, Callable[[_Frame], None]]" = weakref.WeakKeyDictionary()


def _compile_kernel(kernel: Kernel) -> Callable[[_Frame], None]:
    fn = _compiled.get(kernel)
    if fn is None:
        fn = _compiled[kernel] = _Compiler(kernel).block(kernel.body)
    return fn


def run_kernel(kernel: Kernel, *arrays: np.ndarray) -> None:
    """Run ``kernel`` on arrays bound to its params in order; results are written in place."""
    if len(arrays) != len(kernel.params):
        raise TypeError(f"kernel {kernel.name} takes {len(kernel.params)} arrays, got {len(arrays)}")
    bufs = {}
    for p, a in zip(kernel.params, arrays):
        if not isinstance(a, np.ndarray) or a.dtype != p.dtype or a.size != p.size:
            raise TypeError(f"kernel {kernel.name}: param {p.name} needs a "
                            f"{short_name(p.dtype)} array of {p.size} elements")
        flat = a.reshape(-1)
        if not np.shares_memory(flat, a) and a.size:
            raise ValueError(f"kernel {kernel.name}: param {p.name} needs a contiguous array")
        bufs[p.name] = flat
    with np.errstate(all="ignore"):
        _compile_kernel(kernel)(_Frame(bufs))


# --- programs ----------------------------------------------------------------------------

def run_program(program: Program, *inputs: np.ndarray) -> list[np.ndarray]:
    """Run ``program`` on input arrays; returns freshly allocated output arrays."""
    if len(inputs) != len(program.inputs):
        raise TypeError(f"program {program.name} takes {len(program.inputs)} inputs, got {len(inputs)}")
    views: dict[int, np.ndarray] = {}
    for buf, x in zip(program.inputs, inputs):
        views[id(buf)] = _input_view(program, buf, x)
    outputs = [np.empty(b.shape, b.dtype) for b in program.outputs]
    for buf, out in zip(program.outputs, outputs):
        views[id(buf)] = out.reshape(-1)
    for buf, data in program.constants.items():
        views[id(buf)] = data.reshape(-1).copy()
    plan = plan_memory(program)
    arena = np.full(plan.size, 0xFF, dtype=np.uint8)
    for buf in program.temporaries():
        off = plan.offset(buf)
        views[id(buf)] = arena[off:off + buf.nbytes].view(buf.dtype)
    try:
        _run_steps(program.body, views)
    except _Stopped:
        raise_pending_error()            # the routine's reason (a host callback's exception)
        raise RuntimeError(f"program {program.name}: an external routine stopped it without "
                           "giving a reason") from None
    return outputs


class _Stopped(Exception):
    """An ``ExternCall`` with ``returns_status`` returned nonzero: the program ends here."""


def _input_view(program: Program, buf: Buffer, x: Any) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != buf.dtype or x.size != buf.size:
        raise TypeError(f"program {program.name}: input {buf.name} needs {short_name(buf.dtype)}"
                        f"{list(buf.shape)}, got {x.dtype.name}{list(x.shape)}")
    return np.ascontiguousarray(x).reshape(-1)


def _run_steps(steps: tuple, views: dict[int, np.ndarray]) -> None:
    for s in steps:
        if isinstance(s, Call):
            bufs = {p.name: views[id(b)] for p, b in zip(s.kernel.params, s.args)}
            with np.errstate(all="ignore"):
                _compile_kernel(s.kernel)(_Frame(bufs))
        elif isinstance(s, Loop):
            for i in range(s.count):
                if s.index is not None:
                    views[id(s.index)][0] = i
                _run_steps(s.body, views)
        elif isinstance(s, While):
            while True:
                _run_steps(s.before, views)
                if not views[id(s.cond)][0]:
                    break
                _run_steps(s.body, views)
        elif isinstance(s, Switch):
            i = min(max(int(views[id(s.index)][0]), 0), len(s.branches) - 1)
            _run_steps(s.branches[i], views)
        elif isinstance(s, ExternCall):
            _run_extern(s, views)


def _run_extern(s: ExternCall, views: dict[int, np.ndarray]) -> None:
    """Call the routine through ctypes with the same pointers compiled code passes."""
    keep: list[np.ndarray] = []          # the scalars' copies, alive until the call returns
    pointers = []
    for a in s.args:
        if isinstance(a, Const):
            keep.append(np.array([a.value], dtype=a.dtype))
            pointers.append(keep[-1].ctypes.data)
        elif isinstance(a, Buffer):
            pointers.append(views[id(a)].ctypes.data)
        else:
            pointers.append(_element_address(s.routine, a, views))
    if call_routine(s.routine, pointers, s.returns_status):
        raise _Stopped(s.routine)


def _element_address(routine: str, a: BufferAt, views: dict[int, np.ndarray]) -> int:
    view = views[id(a.buffer)]
    element = a.offset + (int(views[id(a.index)][0]) * a.stride if a.index is not None else 0)
    if not 0 <= element <= view.size:
        raise IndexError(f"extern call {routine}: {a!r} is element {element} of a buffer of "
                         f"{view.size}")
    return view.ctypes.data + element * view.itemsize
