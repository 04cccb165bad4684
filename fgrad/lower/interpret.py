"""The executable definition of the kernel IR: a small interpreter in Python and NumPy.

It runs programs in program order with NumPy scalars of the exact dtypes,
ignoring the ``parallel``/``vectorize``/``unroll`` hints; temporaries live in
an arena laid out by ``plan_memory`` (filled with 0xFF bytes, so reading a
temporary before writing it shows up as NaN or -1). Loads and stores are
bounds-checked. Renderers are tested against it; ``SCALAR_OPS`` is the
definition of every scalar op (see the semantics section of ``kernel``).

    >>> outs = run_program(program, x)          # NumPy arrays in, NumPy arrays out
    >>> run_kernel(kernel, x, y)                # params bound positionally, arrays updated in place
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math
import operator
import weakref
from typing import Any, Callable, Sequence

import numpy as np

from fgrad.lower.kernel import (
    Accumulate, Buffer, Call, Const, DefineLocal, Expr, If, Kernel, Load, LocalLoad, LocalStore,
    Loop, Op, Program, Range, Store, Switch, Var, While, bool_, is_float, plan_memory, short_name,
    wrap_int,
)

# --- scalar op semantics ---------------------------------------------------------------


def _ints(fn: Callable[..., int]) -> Callable[..., Any]:
    """An integer op computed on Python ints and wrapped into the result dtype."""
    def apply(*args):
        dtype = args[-1].dtype
        return dtype.type(wrap_int(fn(*(int(a) for a in args)), dtype))
    return apply


def _by_kind(float_fn: Callable, int_fn: Callable) -> Callable:
    def apply(*args):
        return float_fn(*args) if is_float(args[-1].dtype) else int_fn(*args)
    return apply


def _in_float64(fn: Callable) -> Callable:
    """Evaluate in float64 and round once to the argument's float dtype."""
    def apply(*args):
        return args[0].dtype.type(fn(*(np.float64(a) for a in args)))
    return apply


def _trunc_div(a: int, b: int) -> int:
    if b == 0:
        return 0
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def _trunc_rem(a: int, b: int) -> int:
    return 0 if b == 0 else a - b * _trunc_div(a, b)


def _int_pow(a: int, b: int) -> int:
    if b >= 0:
        return pow(a, b, 1 << 64)     # exact modulo 2**64; wrapped to the dtype afterwards
    if a == 1:
        return 1
    if a == -1:
        return 1 if b % 2 == 0 else -1
    return 0


def _round_half_away(x):
    t = np.trunc(x)
    return x.dtype.type(t + np.sign(x)) if abs(x - t) >= 0.5 else t


def _shl(a: np.integer, s: np.integer):
    bits = a.dtype.itemsize * 8
    return a.dtype.type(0 if not 0 <= int(s) < bits else wrap_int(int(a) << int(s), a.dtype))


def _shr(a: np.integer, s: np.integer):
    bits = a.dtype.itemsize * 8
    if not 0 <= int(s) < bits:
        return a.dtype.type(-1 if int(a) < 0 else 0)
    return a.dtype.type(int(a) >> int(s))


_libm = ctypes.CDLL(ctypes.util.find_library("m") or None)
_libm.pow.argtypes, _libm.pow.restype = [ctypes.c_double, ctypes.c_double], ctypes.c_double
_libm.powf.argtypes, _libm.powf.restype = [ctypes.c_float, ctypes.c_float], ctypes.c_float


def _float_pow(a, b):
    """C's pow/powf (NumPy's float power is platform-dependent at the edges)."""
    fn = _libm.powf if a.dtype == np.float32 else _libm.pow
    return a.dtype.type(fn(float(a), float(b)))


def _float_fma(a, b, c):
    if a.dtype == np.float32:
        return np.float32(np.float64(a) * np.float64(b) + np.float64(c))
    return a * b + c


def _not(a):
    return np.logical_not(a) if a.dtype == bool_ else np.invert(a)


def _bitwise(fn: Callable) -> Callable:
    return lambda a, b: np.bool_(fn(bool(a), bool(b))) if a.dtype == bool_ else fn(a, b)


SCALAR_OPS: dict[str, Callable[..., Any]] = {
    "neg": _by_kind(operator.neg, _ints(operator.neg)),
    "exp": np.exp, "log": np.log, "log1p": np.log1p, "expm1": np.expm1, "tanh": np.tanh,
    "sin": np.sin, "cos": np.cos, "sqrt": np.sqrt,
    "logistic": _in_float64(lambda x: 1.0 / (1.0 + np.exp(-x))),
    "rsqrt": _in_float64(lambda x: 1.0 / np.sqrt(x)),
    "abs": _by_kind(np.abs, _ints(abs)),
    "sign": lambda x: x if x == 0 else np.sign(x),    # ±0 keeps its sign, as XLA
    "floor": np.floor, "ceil": np.ceil, "round_even": np.rint, "round": _round_half_away,
    "is_finite": np.isfinite,
    "not": _not,
    "add": _by_kind(operator.add, _ints(operator.add)),
    "sub": _by_kind(operator.sub, _ints(operator.sub)),
    "mul": _by_kind(operator.mul, _ints(operator.mul)),
    "div": _by_kind(np.true_divide, _ints(_trunc_div)),
    "rem": _by_kind(np.fmod, _ints(_trunc_rem)),
    "floordiv": _by_kind(np.floor_divide, _ints(lambda a, b: a // b if b else 0)),
    "mod": _by_kind(np.remainder, _ints(lambda a, b: a % b if b else 0)),
    "pow": _by_kind(_float_pow, _ints(_int_pow)),
    # NaN wins; of 0. and -0., max is 0. and min is -0. (as XLA)
    "max": _by_kind(lambda x, y: (y if np.signbit(x) else x) if x == y else np.maximum(x, y), np.maximum),
    "min": _by_kind(lambda x, y: (x if np.signbit(x) else y) if x == y else np.minimum(x, y), np.minimum),
    "and": _bitwise(operator.and_), "or": _bitwise(operator.or_), "xor": _bitwise(operator.xor),
    "shl": _shl, "shr": _shr,
    "eq": lambda a, b: np.bool_(a == b), "ne": lambda a, b: np.bool_(a != b),
    "lt": lambda a, b: np.bool_(a < b), "le": lambda a, b: np.bool_(a <= b),
    "gt": lambda a, b: np.bool_(a > b), "ge": lambda a, b: np.bool_(a >= b),
    "select": lambda c, a, b: a if c else b,
    "fma": _by_kind(_float_fma, _ints(lambda a, b, c: a * b + c)),
}


def cast_value(x: Any, dtype: np.dtype) -> Any:
    """Convert one NumPy scalar to ``dtype`` with the kernel IR's cast semantics."""
    src = x.dtype
    if dtype == bool_:
        return np.bool_(x != 0)
    if is_float(src) and dtype.kind in "iu":
        if math.isnan(x):
            return dtype.type(0)
        info = np.iinfo(dtype)
        t = math.trunc(float(x)) if math.isfinite(x) else (info.max if x > 0 else info.min)
        return dtype.type(min(max(t, info.min), info.max))
    if src.kind in "iu" and dtype.kind in "iu":
        return dtype.type(wrap_int(int(x), dtype))
    return np.array(x, dtype=src).astype(dtype)[()]


def bitcast_value(x: Any, dtype: np.dtype) -> Any:
    """Reinterpret the bits of one NumPy scalar as ``dtype`` (same size)."""
    return np.array(x).view(dtype)[()]


def apply_op(name: str, args: Sequence[Any], dtype: np.dtype) -> Any:
    """The value of scalar op ``name`` on NumPy scalars; ``dtype`` is the result dtype."""
    if name == "cast":
        return cast_value(args[0], dtype)
    if name == "bitcast":
        return bitcast_value(args[0], dtype)
    with np.errstate(all="ignore"):
        out = SCALAR_OPS[name](*args)
    return out if getattr(out, "dtype", None) == dtype else dtype.type(out)


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
    _run_steps(program.body, views)
    return outputs


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
