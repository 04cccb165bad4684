"""The loop-level kernel IR: what the scheduler emits and every renderer consumes.

Two levels
----------
A **Program** is what one ``jit`` call runs: typed, flat buffers and a list of
*steps*. A buffer is an input, an output, a constant (data supplied with the
program) or a temporary; temporaries live in one arena at offsets chosen by
``plan_memory`` from their lifetimes. Steps are

* ``Call(kernel, args)``: run a kernel on buffers (args bind the kernel's params in order);
* ``Loop(count, body, index=None)``: run ``body`` ``count`` times; each iteration first
  writes the iteration number into the scalar integer buffer ``index`` (how scan reads xs[i]);
* ``While(cond, before, body)``: ``loop { before; if not cond[0]: break; body }`` — the
  shape of ``while_loop`` (``before`` computes the predicate into the scalar ``cond``);
* ``Switch(index, branches)``: run ``branches[clamp(index[0])]`` — ``cond``/``switch``;
  a bool index picks ``branches[0]`` for False and ``branches[1]`` for True.

So scan, while and cond lower to native loops and branches, never by unrolling.

A **Kernel** is a function over flat 1-D params (``Param(name, dtype, size)``)
whose body is a tree of structured statements:

* ``Range(var, start, stop, step, body, parallel, vectorize, unroll)``: a counted loop;
  ``start``/``stop`` are int64 expressions (they may use enclosing loop vars), ``step``
  a positive int. Annotations are *promises and hints*, never semantics:
  ``parallel`` promises the iterations are independent (the CPU backend splits them
  over threads); ``vectorize`` promises the same, except for ``Accumulate`` into a
  local defined outside the loop (a reduction), and asks for SIMD lanes
  (``AUTO`` lets the renderer pick the width from the target, an int n > 1 forces n);
  ``unroll`` is 0 (no), n (by n) or ``FULL`` (completely; the bounds must be constant).
* ``Store(param, index, value, mask=None)``: ``param[index] = value`` (where ``mask`` holds).
* ``DefineLocal(local, init)``: a small private array (``Local(name, dtype, size)``), e.g. a
  reduction accumulator (size 1) or a register tile; ``init`` fills it (None: undefined).
  A local lives until the end of the enclosing block; defined inside a loop, each
  iteration gets a fresh one.
* ``LocalStore(local, index, value)`` and ``Accumulate(local, index, op, value)``
  (``local[index] = op(local[index], value)`` for op in ``REDUCE_OPS``).
* ``If(cond, then, else_)``.

Expressions are typed scalar trees: ``Const``, ``Var`` (an int64 loop variable),
``Load(param, index, mask=None)`` (a masked load yields 0 where ``mask`` is False and
never touches memory there — padding and bounds checks), ``LocalLoad`` and
``Op(op, args)`` over the scalar op set ``OPS``. Indices are integer expressions
over loop vars: affine mostly, but ``//`` and ``%`` are allowed (reshapes,
transposes). Expressions are immutable, hashed once and compared structurally,
so renderers use them as keys for common-subexpression elimination. Python
operators build them: ``x[i * 4 + j] * 2.0 + 1.0``; ``==`` is structural equality,
use ``eq(a, b)`` for the IR comparison.

Semantics
---------
The executable definition is ``fgrad.lower.interpret``: it runs programs with
NumPy scalars, in program order, ignoring annotations. The scalar ops follow
NumPy where NumPy defines the result: wrapping integer arithmetic; float
``max``/``min`` propagate NaN; ``rem`` is C fmod / truncating remainder and ``mod``
the floor remainder (Python's ``%``); ``div`` on integers truncates, ``floordiv``
floors; ``pow`` on floats is C's ``pow``/``powf``; ``round`` rounds half away from zero, ``round_even`` half to even (NumPy's
``round``); ``shr`` is arithmetic on signed and logical on unsigned types. Where
NumPy warns or is undefined, the IR picks a total definition: integer x/0 and x%0
are 0, a shift by a negative amount or at least the bit width gives 0 (or -1 for
``shr`` of a negative value), casts from float to integer truncate and saturate
with NaN -> 0, float -> bool is ``x != 0``. ``fma`` may round once or twice.

float16 is a storage type: ``op`` builds float16 arithmetic as float32 arithmetic whose
result is cast back (what NumPy's float16 loops do), and ``cast`` to or from float16 goes
through float32 (from float64 with round-to-odd, so that the two roundings give the
correctly rounded float16). So renderers see float16 only in params, loads, stores,
selects and casts to and from float32.

Example::

    x = Param("x", float32, 1024); y = Param("y", float32, 1024)
    i = Var("i")
    k = Kernel("axpy", (x, y), (Range(i, 0, 1024, body=(y.store(i, x[i] * 2.0 + y[i]),),
                                       parallel=True, vectorize=AUTO),))
    print(k)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence, Union

import numpy as np

# --- dtypes ------------------------------------------------------------------------------

bool_ = np.dtype(np.bool_)
uint8 = np.dtype(np.uint8)
uint32 = np.dtype(np.uint32)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
float16 = np.dtype(np.float16)
float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)

DTYPES = (bool_, uint8, uint32, int32, int64, float16, float32, float64)
INDEX = int64
_SHORT = {bool_: "bool", uint8: "u8", uint32: "u32", int32: "i32", int64: "i64",
          float16: "f16", float32: "f32", float64: "f64"}


def row_major_strides(shape: Sequence[int]) -> tuple[int, ...]:
    """Element strides of a C-contiguous (row-major) array of ``shape``."""
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= d
    return tuple(reversed(strides))


def as_dtype(dtype: Any) -> np.dtype:
    """The kernel IR dtype for a NumPy dtype, a dtype name (``'float32'``) or a short name (``'f32'``)."""
    if isinstance(dtype, str):
        for d, short in _SHORT.items():
            if dtype == short:
                return d
    try:
        d = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{dtype!r} is not a dtype; use one of {short_names()}") from None
    if d not in DTYPES:
        raise TypeError(f"the kernel IR has no dtype {d.name}; supported: {short_names()}")
    return d


def short_names() -> str:
    return ", ".join(_SHORT.values())


def short_name(dtype: np.dtype) -> str:
    """``f32``, ``i64``, ``bool``... as the printer writes dtypes."""
    return _SHORT[dtype]


def is_float(dtype: np.dtype) -> bool:
    return dtype.kind == "f"


def is_int(dtype: np.dtype) -> bool:
    return dtype.kind in "iu"


# --- the scalar op set -----------------------------------------------------------------

FLOAT_UNARY = ("exp", "log", "log1p", "expm1", "tanh", "logistic", "sin", "cos", "sqrt",
               "rsqrt", "floor", "ceil", "round", "round_even")
NUMERIC_UNARY = ("neg", "abs", "sign")
BINARY_ARITH = ("add", "sub", "mul", "div", "rem", "floordiv", "mod", "pow")
BITWISE = ("and", "or", "xor")
SHIFTS = ("shl", "shr")
COMPARE = ("eq", "ne", "lt", "le", "gt", "ge")
OPS = frozenset(FLOAT_UNARY + NUMERIC_UNARY + BINARY_ARITH + BITWISE + SHIFTS + COMPARE
                + ("is_finite", "not", "max", "min", "select", "fma", "cast", "bitcast"))
REDUCE_OPS = ("add", "mul", "max", "min", "and", "or", "xor")
_INFIX = {"add": ("+", 4), "sub": ("-", 4), "mul": ("*", 5), "div": ("/", 5), "floordiv": ("//", 5),
          "mod": ("%", 5), "shl": ("<<", 3), "shr": (">>", 3), "and": ("&", 2), "xor": ("^", 1),
          "or": ("|", 0), "eq": ("==", -1), "ne": ("!=", -1), "lt": ("<", -1), "le": ("<=", -1),
          "gt": (">", -1), "ge": (">=", -1)}


def _kinds_for(op: str) -> str:
    """Which dtype kinds an op accepts: f float, i signed, u unsigned, b bool."""
    if op in FLOAT_UNARY or op == "is_finite":
        return "f"
    if op in NUMERIC_UNARY or op in BINARY_ARITH or op == "fma":
        return "fiu"
    if op in BITWISE or op == "not":
        return "biu"
    if op in SHIFTS:
        return "iu"
    return "fiub"


# --- expressions -----------------------------------------------------------------------

ExprLike = Union["Expr", int, float, bool]


class Expr:
    """A typed scalar expression. Immutable; hashed once; ``==`` compares structure."""

    __slots__ = ("dtype", "_hash", "_reads")

    def _init(self, dtype: np.dtype, key: tuple) -> None:
        self.dtype = dtype
        self._hash = hash((type(self).__name__, dtype.char) + key)
        self._reads = None

    def _key(self) -> tuple:
        raise NotImplementedError

    def children(self) -> tuple["Expr", ...]:
        return ()

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        return (type(self) is type(other) and self._hash == other._hash
                and self.dtype == other.dtype and self._key() == other._key())

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __bool__(self) -> bool:
        raise TypeError("a kernel IR expression has no Python truth value; build the condition "
                        "into the IR with If(...) or select(...)")

    def __repr__(self) -> str:
        return format_expr(self)

    @property
    def reads(self) -> frozenset[str]:
        """Names of the params and locals this expression loads from."""
        if self._reads is None:
            own = {self.param} if isinstance(self, Load) else (
                {self.local} if isinstance(self, LocalLoad) else set())
            for c in self.children():
                own |= c.reads
            self._reads = frozenset(own)
        return self._reads

    # Python operators build IR (comparisons except == and != too).
    def __add__(self, o): return add(self, o)
    def __radd__(self, o): return add(o, self)
    def __sub__(self, o): return sub(self, o)
    def __rsub__(self, o): return sub(o, self)
    def __mul__(self, o): return mul(self, o)
    def __rmul__(self, o): return mul(o, self)
    def __truediv__(self, o): return div(self, o)
    def __rtruediv__(self, o): return div(o, self)
    def __floordiv__(self, o): return floordiv(self, o)
    def __rfloordiv__(self, o): return floordiv(o, self)
    def __mod__(self, o): return mod(self, o)
    def __rmod__(self, o): return mod(o, self)
    def __neg__(self): return neg(self)
    def __and__(self, o): return op("and", self, o)
    def __rand__(self, o): return op("and", o, self)
    def __or__(self, o): return op("or", self, o)
    def __ror__(self, o): return op("or", o, self)
    def __xor__(self, o): return op("xor", self, o)
    def __invert__(self): return op("not", self)
    def __lshift__(self, o): return op("shl", self, o)
    def __rshift__(self, o): return op("shr", self, o)
    def __lt__(self, o): return op("lt", self, o)
    def __le__(self, o): return op("le", self, o)
    def __gt__(self, o): return op("gt", self, o)
    def __ge__(self, o): return op("ge", self, o)


class Const(Expr):
    """A literal of a dtype (the value is normalised: rounded to float32, wrapped to int32...)."""

    __slots__ = ("value",)

    def __init__(self, value: Any, dtype: Any = None) -> None:
        dtype = as_dtype(dtype) if dtype is not None else _dtype_of_python(value)
        self.value = _normalise(value, dtype)
        self._init(dtype, (repr(self.value),) if is_float(dtype) else (self.value,))

    def _key(self) -> tuple:
        return (repr(self.value),) if is_float(self.dtype) else (self.value,)


def _dtype_of_python(value: Any) -> np.dtype:
    if isinstance(value, (bool, np.bool_)):
        return bool_
    if isinstance(value, (int, np.integer)):
        return INDEX
    if isinstance(value, (float, np.floating)):
        return float32
    raise TypeError(f"cannot make a kernel IR constant from {value!r}; pass a number and a dtype")


def _normalise(value: Any, dtype: np.dtype):
    if dtype == bool_:
        return bool(value)
    if is_int(dtype):
        if isinstance(value, (float, np.floating)) and not float(value).is_integer():
            raise ValueError(f"constant {value!r} is not an integer but the dtype is {dtype.name}")
        return wrap_int(int(value), dtype)
    return float(np.asarray(value, dtype=np.float64).astype(dtype))


def wrap_int(value: int, dtype: np.dtype) -> int:
    """``value`` wrapped into the range of integer ``dtype`` (two's complement)."""
    bits = dtype.itemsize * 8
    value &= (1 << bits) - 1
    if dtype.kind == "i" and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value


class Var(Expr):
    """An int64 loop variable, bound by the ``Range`` that names it."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"loop variable name {name!r} is not an identifier")
        self.name = name
        self._init(INDEX, (name,))

    def _key(self) -> tuple:
        return (self.name,)


class Load(Expr):
    """``param[index]``; with ``mask``, 0 where the mask is False (memory is not touched there)."""

    __slots__ = ("param", "index", "mask")

    def __init__(self, param: str, index: ExprLike, dtype: Any, mask: ExprLike | None = None) -> None:
        self.param = param
        self.index = _as_index(index, f"the index of {param}")
        self.mask = None if mask is None else _as_bool(mask, f"the mask of a load from {param}")
        self._init(as_dtype(dtype), (param, self.index._hash, None if mask is None else self.mask._hash))

    def _key(self) -> tuple:
        return (self.param, self.index, self.mask)

    def children(self) -> tuple[Expr, ...]:
        return (self.index,) if self.mask is None else (self.index, self.mask)


class LocalLoad(Expr):
    """``local[index]`` for a ``Local`` defined by an enclosing ``DefineLocal``."""

    __slots__ = ("local", "index")

    def __init__(self, local: str, index: ExprLike, dtype: Any) -> None:
        self.local = local
        self.index = _as_index(index, f"the index of local {local}")
        self._init(as_dtype(dtype), (local, self.index._hash))

    def _key(self) -> tuple:
        return (self.local, self.index)

    def children(self) -> tuple[Expr, ...]:
        return (self.index,)


class Op(Expr):
    """A scalar op from ``OPS`` applied to argument expressions. Build with ``op(...)``."""

    __slots__ = ("op", "args")

    def __init__(self, op_name: str, args: tuple[Expr, ...], dtype: np.dtype) -> None:
        self.op = op_name
        self.args = tuple(args)
        self._init(dtype, (op_name,) + tuple(a._hash for a in self.args))

    def _key(self) -> tuple:
        return (self.op,) + self.args

    def children(self) -> tuple[Expr, ...]:
        return self.args


def _as_index(x: ExprLike, what: str) -> Expr:
    e = as_expr(x, INDEX)
    if not is_int(e.dtype):
        raise TypeError(f"{what} must be an integer expression, got {short_name(e.dtype)}")
    return e


def _as_bool(x: ExprLike, what: str) -> Expr:
    e = as_expr(x, bool_)
    if e.dtype != bool_:
        raise TypeError(f"{what} must be a bool expression, got {short_name(e.dtype)}")
    return e


def as_expr(x: ExprLike, dtype: Any = None) -> Expr:
    """An expression for ``x``: Exprs pass through, Python numbers become ``Const`` of ``dtype``."""
    if isinstance(x, Expr):
        return x
    if isinstance(x, (bool, int, float, np.number, np.bool_)):
        return Const(x, dtype if dtype is not None else _dtype_of_python(x))
    raise TypeError(f"expected a kernel IR expression or a number, got {type(x).__name__}")


# --- expression builders (with light constant folding for integer index math) ------------

def op(name: str, *args: ExprLike, dtype: Any = None) -> Expr:
    """Apply scalar op ``name``; numbers take the dtype of the first expression argument.

    ``dtype`` is the target dtype of ``cast``/``bitcast`` and ignored otherwise.
    """
    if name not in OPS:
        raise ValueError(f"unknown scalar op {name!r}; the op set is {sorted(OPS)}")
    if name in ("cast", "bitcast"):
        return _convert(name, args, dtype)
    if name == "select":
        return _select(*args)
    exprs = _unify(name, args)
    if exprs[0].dtype == float16:
        return _half_op(name, exprs)
    kinds = _kinds_for(name)
    for e in exprs:
        if e.dtype.kind not in kinds:
            raise TypeError(f"op {name} does not take {short_name(e.dtype)} operands")
    result = bool_ if name in COMPARE or name == "is_finite" else exprs[0].dtype
    folded = _fold(name, exprs, result)
    return folded if folded is not None else Op(name, tuple(exprs), result)


def _unify(name: str, args: Sequence[ExprLike]) -> list[Expr]:
    like = next((a for a in args if isinstance(a, Expr)), None)
    if like is None:
        raise TypeError(f"op {name} needs at least one expression argument, got numbers only")
    exprs = [as_expr(a, like.dtype) for a in args]
    if any(e.dtype != like.dtype for e in exprs):
        names = ", ".join(short_name(e.dtype) for e in exprs)
        raise TypeError(f"op {name} got mixed dtypes ({names}); cast the operands to one dtype first")
    return exprs


def _convert(name: str, args: Sequence[ExprLike], dtype: Any) -> Expr:
    if len(args) != 1 or dtype is None:
        raise TypeError(f"{name} takes one argument and a target dtype=")
    x, dtype = as_expr(args[0]), as_dtype(dtype)
    if x.dtype == dtype:
        return x
    if name == "bitcast" and (x.dtype.itemsize != dtype.itemsize or bool_ in (x.dtype, dtype)):
        raise TypeError(f"bitcast needs two non-bool dtypes of one size, got "
                        f"{short_name(x.dtype)} -> {short_name(dtype)}")
    if name == "cast" and isinstance(x, Const) and is_int(x.dtype) and is_int(dtype):
        return Const(wrap_int(x.value, dtype), dtype)
    if name == "cast" and isinstance(x, Const) and is_float(x.dtype) and is_float(dtype):
        return Const(x.value, dtype)
    if name == "cast" and float16 in (x.dtype, dtype) and float32 not in (x.dtype, dtype):
        return _to_half(x) if dtype == float16 else cast(Op("cast", (x,), float32), dtype)
    return Op(name, (x,), dtype)


def _half_op(name: str, exprs: list[Expr]) -> Expr:
    """A float16 op computed in float32; arithmetic results are rounded back to float16."""
    wide = op(name, *[cast(e, float32) for e in exprs])
    return wide if wide.dtype == bool_ else cast(wide, float16)


def _to_half(x: Expr) -> Expr:
    """``x`` (any dtype but float16) correctly rounded to float16, through float32."""
    if x.dtype != float64:
        return Op("cast", (cast(x, float32),), float16)
    # round to float32 towards zero, then set the last bit when inexact ("round to odd"):
    # float32's 13 extra bits then keep float16's rounding from seeing a double rounding
    near = cast(x, float32)
    bits = bitcast(near, uint32)
    back = cast(near, float64)
    toward_zero = select(op("gt", op("abs", back), op("abs", x)), bits - 1, bits)
    odd = select(op("ne", back, x), toward_zero | 1, bits)
    odd = select(op("ne", x, x), bits, odd)    # NaN stays as it is
    return Op("cast", (bitcast(odd, float32),), float16)


def _select(cond: ExprLike, a: ExprLike, b: ExprLike) -> Expr:
    cond = _as_bool(cond, "the condition of select")
    a, b = _unify("select", (a, b))
    if isinstance(cond, Const):
        return a if cond.value else b
    if a == b:
        return a
    return Op("select", (cond, a, b), a.dtype)


def _fold(name: str, args: list[Expr], result: np.dtype) -> Expr | None:
    """Fold integer arithmetic on constants and the identities x+0, x*1, x*0, x//1, x%1."""
    if not is_int(result) or name not in ("add", "sub", "mul", "floordiv", "mod", "neg"):
        return None
    consts = [a.value if isinstance(a, Const) else None for a in args]
    if all(c is not None for c in consts):
        value = _fold_int(name, consts)
        if value is not None:
            return Const(wrap_int(value, result), result)
    if len(args) != 2:
        return None
    a, b = args
    cb, ca = consts[1], consts[0]
    if name in ("add", "sub") and cb == 0:
        return a
    if name == "add" and ca == 0:
        return b
    if name == "mul" and (cb == 1 or ca == 1):
        return a if cb == 1 else b
    if name == "mul" and (cb == 0 or ca == 0):
        return Const(0, result)
    if name == "floordiv" and cb == 1:
        return a
    if name == "mod" and cb == 1:
        return Const(0, result)
    if name == "add":
        folded = _fold_div_mod(a, b)
        return folded if folded is not None else _fold_div_mod(b, a)
    return None


def _fold_div_mod(a: Expr, b: Expr) -> Expr | None:
    """``(x // c) * c + x % c == x`` (floordiv and mod are a floored pair), also when the first
    term ends a sum: ``(s + (x // c) * c) + x % c == s + x``. Unravel-then-ravel index maps
    produce it, and only the folded form is recognisably contiguous."""
    if not (isinstance(b, Op) and b.op == "mod" and isinstance(b.args[1], Const) and b.args[1].value):
        return None
    x, c = b.args

    def is_multiple(e: Expr) -> bool:
        return (isinstance(e, Op) and e.op == "mul" and e.args[1] == c and isinstance(e.args[0], Op)
                and e.args[0].op == "floordiv" and e.args[0].args == (x, c))
    if is_multiple(a):
        return x
    if isinstance(a, Op) and a.op == "add" and is_multiple(a.args[1]):
        return op("add", a.args[0], x)
    return None


def _fold_int(name: str, v: list[int]) -> int | None:
    if name == "neg":
        return -v[0]
    a, b = v
    if name in ("floordiv", "mod") and b == 0:
        return None
    return {"add": a + b, "sub": a - b, "mul": a * b,
            "floordiv": a // b if b else 0, "mod": a % b if b else 0}[name]


def add(a: ExprLike, b: ExprLike) -> Expr: return op("add", a, b)
def sub(a: ExprLike, b: ExprLike) -> Expr: return op("sub", a, b)
def mul(a: ExprLike, b: ExprLike) -> Expr: return op("mul", a, b)
def div(a: ExprLike, b: ExprLike) -> Expr: return op("div", a, b)
def floordiv(a: ExprLike, b: ExprLike) -> Expr: return op("floordiv", a, b)
def mod(a: ExprLike, b: ExprLike) -> Expr: return op("mod", a, b)
def neg(a: ExprLike) -> Expr: return op("neg", a)
def eq(a: ExprLike, b: ExprLike) -> Expr: return op("eq", a, b)
def ne(a: ExprLike, b: ExprLike) -> Expr: return op("ne", a, b)
def maximum(a: ExprLike, b: ExprLike) -> Expr: return op("max", a, b)
def minimum(a: ExprLike, b: ExprLike) -> Expr: return op("min", a, b)
def select(cond: ExprLike, a: ExprLike, b: ExprLike) -> Expr: return op("select", cond, a, b)
def fma(a: ExprLike, b: ExprLike, c: ExprLike) -> Expr: return op("fma", a, b, c)
def cast(x: ExprLike, dtype: Any) -> Expr: return op("cast", x, dtype=dtype)
def bitcast(x: ExprLike, dtype: Any) -> Expr: return op("bitcast", x, dtype=dtype)


def logical_and(*conds: ExprLike) -> Expr:
    """The conjunction of bool expressions (True for none)."""
    out: Expr = Const(True, bool_)
    for c in conds:
        c = _as_bool(c, "an operand of logical_and")
        out = c if isinstance(out, Const) and out.value else op("and", out, c)
    return out


# --- params, locals, statements ------------------------------------------------------

@dataclass(frozen=True)
class Param:
    """A kernel parameter: a flat buffer of ``size`` elements of ``dtype``."""

    name: str
    dtype: np.dtype
    size: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", as_dtype(self.dtype))
        _check_name(self.name, "param")
        if not isinstance(self.size, (int, np.integer)) or self.size < 0:
            raise ValueError(f"param {self.name}: size must be a non-negative int, got {self.size!r}")
        object.__setattr__(self, "size", int(self.size))

    def __getitem__(self, index: ExprLike) -> Load:
        return Load(self.name, index, self.dtype)

    def load(self, index: ExprLike, mask: ExprLike | None = None) -> Load:
        """``self[index]``, or 0 where ``mask`` is False."""
        return Load(self.name, index, self.dtype, mask)

    def store(self, index: ExprLike, value: ExprLike, mask: ExprLike | None = None) -> "Store":
        """``self[index] = value`` (only where ``mask``, if given)."""
        return Store(self.name, index, as_expr(value, self.dtype), mask)


@dataclass(frozen=True)
class Local:
    """A private array of ``size`` elements (an accumulator, a register tile)."""

    name: str
    dtype: np.dtype
    size: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", as_dtype(self.dtype))
        _check_name(self.name, "local")
        if self.size < 1:
            raise ValueError(f"local {self.name}: size must be >= 1, got {self.size}")

    def __getitem__(self, index: ExprLike) -> LocalLoad:
        return LocalLoad(self.name, index, self.dtype)

    def store(self, index: ExprLike, value: ExprLike) -> "LocalStore":
        return LocalStore(self.name, index, as_expr(value, self.dtype))

    def accumulate(self, index: ExprLike, op_name: str, value: ExprLike) -> "Accumulate":
        return Accumulate(self.name, index, op_name, as_expr(value, self.dtype))


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"{what} name {name!r} is not an identifier")


AUTO = -1   # vectorize: let the renderer choose the lane count
FULL = -1   # unroll: completely


@dataclass(frozen=True)
class Range:
    """``for var in range(start, stop, step): body`` with parallel/vectorize/unroll hints."""

    var: Var
    start: Expr
    stop: Expr
    body: tuple = ()
    step: int = 1
    parallel: bool = False
    vectorize: int = 0
    unroll: int = 0

    def __init__(self, var: Var | str, start: ExprLike, stop: ExprLike, body: Iterable = (),
                 step: int = 1, parallel: bool = False, vectorize: int = 0, unroll: int = 0) -> None:
        var = Var(var) if isinstance(var, str) else var
        if not isinstance(step, (int, np.integer)) or step < 1:
            raise ValueError(f"loop {var.name}: step must be a positive int, got {step!r}")
        if vectorize not in (0, AUTO) and (not isinstance(vectorize, int) or vectorize < 2):
            raise ValueError(f"loop {var.name}: vectorize is 0, AUTO or a lane count >= 2, "
                             f"got {vectorize!r}")
        if not isinstance(unroll, int) or unroll < FULL:
            raise ValueError(f"loop {var.name}: unroll is 0, FULL or a factor >= 1, got {unroll!r}")
        object.__setattr__(self, "var", var)
        object.__setattr__(self, "start", _as_index(start, f"the start of loop {var.name}"))
        object.__setattr__(self, "stop", _as_index(stop, f"the stop of loop {var.name}"))
        object.__setattr__(self, "body", tuple(body))
        object.__setattr__(self, "step", int(step))
        object.__setattr__(self, "parallel", bool(parallel))
        object.__setattr__(self, "vectorize", int(vectorize))
        object.__setattr__(self, "unroll", int(unroll))


@dataclass(frozen=True)
class Store:
    """``param[index] = value``; with ``mask``, only where the mask is True (edges of tiles)."""

    param: str
    index: Expr
    value: Expr
    mask: Expr | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", _as_index(self.index, f"the index of a store to {self.param}"))
        object.__setattr__(self, "value", as_expr(self.value))
        if self.mask is not None:
            object.__setattr__(self, "mask", _as_bool(self.mask, f"the mask of a store to {self.param}"))


@dataclass(frozen=True)
class DefineLocal:
    """Bring ``local`` into scope for the rest of the block, filled with ``init`` (or undefined)."""

    local: Local
    init: Expr | None = None

    def __post_init__(self) -> None:
        if self.init is not None:
            object.__setattr__(self, "init", as_expr(self.init, self.local.dtype))


@dataclass(frozen=True)
class LocalStore:
    """``local[index] = value``."""

    local: str
    index: Expr
    value: Expr

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", _as_index(self.index, f"the index of local {self.local}"))
        object.__setattr__(self, "value", as_expr(self.value))


@dataclass(frozen=True)
class Accumulate:
    """``local[index] = op(local[index], value)``: a reduction update (may be vectorised)."""

    local: str
    index: Expr
    op: str
    value: Expr

    def __post_init__(self) -> None:
        if self.op not in REDUCE_OPS:
            raise ValueError(f"Accumulate op must be one of {REDUCE_OPS}, got {self.op!r}")
        object.__setattr__(self, "index", _as_index(self.index, f"the index of local {self.local}"))
        object.__setattr__(self, "value", as_expr(self.value))


@dataclass(frozen=True)
class If:
    """``if cond: then else: else_``."""

    cond: Expr
    then: tuple = ()
    else_: tuple = ()

    def __init__(self, cond: ExprLike, then: Iterable = (), else_: Iterable = ()) -> None:
        object.__setattr__(self, "cond", _as_bool(cond, "the condition of If"))
        object.__setattr__(self, "then", tuple(then))
        object.__setattr__(self, "else_", tuple(else_))


Stmt = Union[Range, Store, DefineLocal, LocalStore, Accumulate, If]


@dataclass(frozen=True, eq=False)
class Kernel:
    """A function over flat buffers: ``params`` in call order and a statement ``body``.

    ``flops`` is an optional count of useful floating point operations, for
    GFLOP/s in per-kernel timings. ``may_alias`` names params that may share memory
    (a donated input and the output written over it): renderers must not promise
    otherwise for them (no ``noalias`` / ``__restrict__``).
    """

    name: str
    params: tuple
    body: tuple
    flops: int = 0
    may_alias: frozenset = frozenset()

    def __post_init__(self) -> None:
        _check_name(self.name, "kernel")
        object.__setattr__(self, "params", tuple(self.params))
        object.__setattr__(self, "body", tuple(self.body))
        check_kernel(self)

    @property
    def written_params(self) -> frozenset[str]:
        """Names of the params the kernel stores to."""
        return frozenset(s.param for s in walk_stmts(self.body) if isinstance(s, Store))

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def __str__(self) -> str:
        return format_kernel(self)


# --- programs --------------------------------------------------------------------------

class Buffer:
    """A program-level array: ``dtype`` and ``shape`` (kernels see it flat). Compared by identity."""

    __slots__ = ("name", "dtype", "shape", "size")

    def __init__(self, name: str, dtype: Any, shape: Sequence[int] | int = ()) -> None:
        _check_name(name, "buffer")
        self.name = name
        self.dtype = as_dtype(dtype)
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        if any(not isinstance(d, (int, np.integer)) or d < 0 for d in shape):
            raise ValueError(f"buffer {name}: shape must be non-negative ints, got {shape}")
        self.shape = tuple(int(d) for d in shape)
        self.size = math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __repr__(self) -> str:
        return f"{self.name}:{short_name(self.dtype)}{list(self.shape)}"


@dataclass(frozen=True, eq=False)
class Call:
    """Run ``kernel`` with ``args`` bound to its params in order."""

    kernel: Kernel
    args: tuple

    def __post_init__(self) -> None:
        object.__setattr__(self, "args", tuple(self.args))
        _check_call(self)


@dataclass(frozen=True, eq=False)
class Loop:
    """Run ``body`` ``count`` times; ``index`` (a scalar int buffer) holds the iteration number."""

    count: int
    body: tuple
    index: Buffer | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "body", tuple(self.body))
        if not isinstance(self.count, (int, np.integer)) or self.count < 0:
            raise ValueError(f"Loop count must be a non-negative int, got {self.count!r}")
        if self.index is not None:
            _check_scalar(self.index, "the index of a Loop", kinds="iu")


@dataclass(frozen=True, eq=False)
class While:
    """``loop { before; if not cond[0]: break; body }``; ``cond`` is a scalar buffer."""

    cond: Buffer
    before: tuple
    body: tuple

    def __post_init__(self) -> None:
        object.__setattr__(self, "before", tuple(self.before))
        object.__setattr__(self, "body", tuple(self.body))
        _check_scalar(self.cond, "the condition of a While", kinds="biuf")


@dataclass(frozen=True, eq=False)
class Switch:
    """Run ``branches[index[0]]`` (the index clamped into range); bool: [false, true]."""

    index: Buffer
    branches: tuple

    def __post_init__(self) -> None:
        object.__setattr__(self, "branches", tuple(tuple(b) for b in self.branches))
        if not self.branches:
            raise ValueError("Switch needs at least one branch")
        _check_scalar(self.index, "the index of a Switch", kinds="biu")


def if_(cond: Buffer, then: Iterable, else_: Iterable = ()) -> Switch:
    """``Switch`` on a scalar bool/int buffer: ``then`` when it is nonzero."""
    return Switch(cond, (tuple(else_), tuple(then)))


Step = Union[Call, Loop, While, Switch]


@dataclass(frozen=True, eq=False)
class Program:
    """What one compiled call runs: buffers, and ``body`` steps in order.

    ``constants`` maps constant buffers to their data (passed at run time, so
    programs that differ only in constant values share compiled code). Outputs
    must be distinct from inputs and constants.
    """

    name: str
    inputs: tuple
    outputs: tuple
    body: tuple
    constants: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_name(self.name, "program")
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "body", tuple(self.body))
        object.__setattr__(self, "constants", {b: _const_data(b, d) for b, d in self.constants.items()})
        check_program(self)

    @property
    def externals(self) -> tuple[Buffer, ...]:
        """Buffers passed in from outside, in calling-convention order: inputs, outputs, constants."""
        return self.inputs + self.outputs + tuple(self.constants)

    def temporaries(self) -> list[Buffer]:
        """Buffers that only live inside the program (they get arena offsets)."""
        external = set(map(id, self.externals))
        return [b for b in buffers_of(self.body) if id(b) not in external]

    def __str__(self) -> str:
        return format_program(self)


def _const_data(buf: Buffer, data: Any) -> np.ndarray:
    arr = np.ascontiguousarray(np.asarray(data, dtype=buf.dtype))
    if arr.size != buf.size:
        raise ValueError(f"constant {buf.name} has {arr.size} elements, its buffer {buf.size}")
    return arr.reshape(buf.shape)


def walk_steps(steps: Iterable[Step]) -> Iterator[Step]:
    """Every step, nested ones included, in program order."""
    for s in steps:
        yield s
        if isinstance(s, Loop):
            yield from walk_steps(s.body)
        elif isinstance(s, While):
            yield from walk_steps(s.before)
            yield from walk_steps(s.body)
        elif isinstance(s, Switch):
            for b in s.branches:
                yield from walk_steps(b)


def buffers_of(steps: Iterable[Step]) -> list[Buffer]:
    """The distinct buffers the steps use, in first-use order."""
    seen: dict[int, Buffer] = {}
    for s in walk_steps(steps):
        used = (s.args if isinstance(s, Call) else (s.index,) if isinstance(s, (Loop, Switch))
                else (s.cond,))
        for b in used:
            if b is not None:
                seen.setdefault(id(b), b)
    return list(seen.values())


def kernels_of(program: Program) -> list[Kernel]:
    """The distinct kernels a program calls, in first-call order."""
    seen: dict[int, Kernel] = {}
    for s in walk_steps(program.body):
        if isinstance(s, Call):
            seen.setdefault(id(s.kernel), s.kernel)
    return list(seen.values())


# --- checks ----------------------------------------------------------------------------

def _check_scalar(buf: Buffer, what: str, kinds: str) -> None:
    if not isinstance(buf, Buffer) or buf.size != 1 or buf.dtype.kind not in kinds:
        raise TypeError(f"{what} must be a one-element buffer of kind {kinds}, got {buf!r}")


def _check_call(call: Call) -> None:
    k = call.kernel
    if len(call.args) != len(k.params):
        raise TypeError(f"call of kernel {k.name}: {len(call.args)} buffers for "
                        f"{len(k.params)} params ({', '.join(p.name for p in k.params)})")
    for p, b in zip(k.params, call.args):
        if not isinstance(b, Buffer):
            raise TypeError(f"call of kernel {k.name}: param {p.name} needs a Buffer, got {b!r}")
        if b.dtype != p.dtype or b.size != p.size:
            raise TypeError(f"call of kernel {k.name}: param {p.name} is {short_name(p.dtype)}"
                            f"[{p.size}] but buffer {b!r} was passed")
    written = k.written_params
    seen: dict[int, Param] = {}
    for p, b in zip(k.params, call.args):
        other = seen.setdefault(id(b), p)
        if other is not p and (p.name in written or other.name in written):
            raise ValueError(f"call of kernel {k.name} passes buffer {b.name} to params {other.name} "
                             f"and {p.name}, and the kernel writes one of them; kernels assume "
                             "written params alias nothing (copy the buffer first)")


def check_program(program: Program) -> None:
    """Raise ValueError/TypeError if the program is malformed (names, aliasing, buffer kinds)."""
    externals = program.externals
    if len({id(b) for b in externals}) != len(externals):
        raise ValueError(f"program {program.name}: a buffer is listed twice among inputs, "
                         "outputs and constants; copy it with a kernel instead")
    names: dict[str, Buffer] = {}
    for b in list(externals) + buffers_of(program.body):
        if not isinstance(b, Buffer):
            raise TypeError(f"program {program.name}: {b!r} is not a Buffer")
        if names.setdefault(b.name, b) is not b:
            raise ValueError(f"program {program.name}: two buffers are named {b.name}")


def check_kernel(kernel: Kernel) -> None:
    """Raise if a kernel uses an unbound var, an unknown param/local, or mismatched dtypes."""
    params = {}
    for p in kernel.params:
        if not isinstance(p, Param):
            raise TypeError(f"kernel {kernel.name}: params must be Param objects, got {p!r}")
        if p.name in params:
            raise ValueError(f"kernel {kernel.name}: two params are named {p.name}")
        params[p.name] = p
    _KernelChecker(kernel.name, params).block(kernel.body, frozenset(), {})


class _KernelChecker:
    def __init__(self, kernel: str, params: dict[str, Param]) -> None:
        self.kernel, self.params = kernel, params

    def fail(self, msg: str) -> None:
        raise ValueError(f"kernel {self.kernel}: {msg}")

    def block(self, stmts: tuple, vars_: frozenset, locals_: dict) -> None:
        locals_ = dict(locals_)
        for s in stmts:
            self.stmt(s, vars_, locals_)

    def stmt(self, s: Stmt, vars_: frozenset, locals_: dict) -> None:
        if isinstance(s, Range):
            self.expr(s.start, vars_, locals_)
            self.expr(s.stop, vars_, locals_)
            if s.var.name in vars_:
                self.fail(f"loop variable {s.var.name} shadows an enclosing loop's")
            self.block(s.body, vars_ | {s.var.name}, locals_)
        elif isinstance(s, Store):
            p = self.params.get(s.param)
            if p is None:
                self.fail(f"store to unknown param {s.param}")
            self.typed(s.value, p.dtype, f"the value stored to {s.param}", vars_, locals_)
            self.expr(s.index, vars_, locals_)
            if s.mask is not None:
                self.expr(s.mask, vars_, locals_)
        elif isinstance(s, DefineLocal):
            if s.local.name in self.params or s.local.name in locals_:
                self.fail(f"local {s.local.name} reuses the name of a param or an enclosing local")
            if s.init is not None:
                self.typed(s.init, s.local.dtype, f"the init of local {s.local.name}", vars_, locals_)
            locals_[s.local.name] = s.local
        elif isinstance(s, (LocalStore, Accumulate)):
            loc = locals_.get(s.local)
            if loc is None:
                self.fail(f"local {s.local} is used outside the scope of its DefineLocal")
            self.typed(s.value, loc.dtype, f"the value stored to local {s.local}", vars_, locals_)
            self.expr(s.index, vars_, locals_)
            if isinstance(s, Accumulate) and loc.dtype.kind not in _kinds_for(s.op):
                self.fail(f"Accumulate {s.op} does not take {short_name(loc.dtype)} locals")
        elif isinstance(s, If):
            self.expr(s.cond, vars_, locals_)
            self.block(s.then, vars_, locals_)
            self.block(s.else_, vars_, locals_)
        else:
            self.fail(f"{s!r} is not a kernel statement")

    def typed(self, e: Expr, dtype: np.dtype, what: str, vars_: frozenset, locals_: dict) -> None:
        if e.dtype != dtype:
            self.fail(f"{what} is {short_name(e.dtype)}, expected {short_name(dtype)}")
        self.expr(e, vars_, locals_)

    def expr(self, e: Expr, vars_: frozenset, locals_: dict) -> None:
        if isinstance(e, Var) and e.name not in vars_:
            self.fail(f"loop variable {e.name} is used outside its loop")
        if isinstance(e, Load):
            p = self.params.get(e.param)
            if p is None or p.dtype != e.dtype:
                self.fail(f"load from {e.param}: no such {short_name(e.dtype)} param")
        if isinstance(e, LocalLoad):
            loc = locals_.get(e.local)
            if loc is None or loc.dtype != e.dtype:
                self.fail(f"local {e.local} is read outside the scope of its DefineLocal")
        for c in e.children():
            self.expr(c, vars_, locals_)


# --- memory planning -------------------------------------------------------------------

ALIGN = 64


@dataclass(frozen=True)
class MemoryPlan:
    """Arena offsets (bytes) of a program's temporaries, and the arena's size."""

    offsets: dict
    size: int

    def offset(self, buf: Buffer) -> int:
        return self.offsets[id(buf)]


def buffer_lifetimes(program: Program) -> dict[int, tuple[int, int]]:
    """For each temporary (by id), the first and last step position that may use it.

    Steps are numbered in program order; a use inside a loop counts for the
    whole loop, since the next iteration may read what this one wrote.
    """
    spans: dict[int, list[int]] = {}
    counter = [0]

    def touch(buf: Buffer | None, lo: int, hi: int) -> None:
        if buf is not None:
            span = spans.setdefault(id(buf), [lo, hi])
            span[0], span[1] = min(span[0], lo), max(span[1], hi)

    def visit(steps: tuple, loop_span: tuple[int, int] | None) -> None:
        for s in steps:
            pos = counter[0]
            counter[0] += 1
            if isinstance(s, (Loop, While)):
                end = pos + _count_steps(s) - 1
                span = loop_span or (pos, end)
                touch(s.index if isinstance(s, Loop) else s.cond, *span)
                visit(s.body if isinstance(s, Loop) else s.before + s.body, span)
            elif isinstance(s, Switch):
                touch(s.index, *(loop_span or (pos, pos)))
                for b in s.branches:
                    visit(b, loop_span)
            else:
                for b in s.args:
                    touch(b, *(loop_span or (pos, pos)))

    visit(program.body, None)
    return {k: (v[0], v[1]) for k, v in spans.items()}


def _count_steps(step: Step) -> int:
    return sum(1 for _ in walk_steps((step,)))


def plan_memory(program: Program) -> MemoryPlan:
    """Place temporaries in one arena so that buffers alive at the same time never overlap.

    Lifetimes come from ``buffer_lifetimes``; placement is greedy, largest first,
    at the lowest 64-byte aligned offset free for the whole lifetime.
    """
    lifetimes = buffer_lifetimes(program)
    temps = sorted(program.temporaries(), key=lambda b: (-b.nbytes, lifetimes[id(b)]))
    placed: list[tuple[int, int, int, int]] = []   # (start, end, offset, nbytes)
    offsets: dict[int, int] = {}
    for buf in temps:
        start, end = lifetimes[id(buf)]
        size = _aligned(buf.nbytes)
        busy = sorted((o, o + n) for s, e, o, n in placed if s <= end and start <= e)
        offset = 0
        for lo, hi in busy:
            if offset + size <= lo:
                break
            offset = max(offset, hi)
        offsets[id(buf)] = offset
        placed.append((start, end, offset, size))
    total = max((o + n for _, _, o, n in placed), default=0)
    return MemoryPlan(offsets, total)


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


# --- printing --------------------------------------------------------------------------

def format_expr(e: Expr) -> str:
    """An expression in infix form, e.g. ``tanh(x[i] * 2.0:f32 + 1.0:f32)``."""
    return _fmt(e, -9)


def _fmt(e: Expr, outer: int) -> str:
    if isinstance(e, Const):
        return _fmt_const(e)
    if isinstance(e, Var):
        return e.name
    if isinstance(e, Load):
        mask = "" if e.mask is None else f" if {_fmt(e.mask, -9)}"
        return f"{e.param}[{_fmt(e.index, -9)}{mask}]"
    if isinstance(e, LocalLoad):
        return f"{e.local}[{_fmt(e.index, -9)}]"
    if e.op in _INFIX and len(e.args) == 2:
        sym, prec = _INFIX[e.op]
        text = f"{_fmt(e.args[0], prec)} {sym} {_fmt(e.args[1], prec + 1)}"
        return f"({text})" if prec < outer else text
    if e.op == "neg":
        return f"-{_fmt(e.args[0], 9)}"
    if e.op in ("cast", "bitcast"):
        name = short_name(e.dtype) if e.op == "cast" else f"bitcast<{short_name(e.dtype)}>"
        return f"{name}({_fmt(e.args[0], -9)})"
    return f"{e.op}({', '.join(_fmt(a, -9) for a in e.args)})"


def _fmt_const(c: Const) -> str:
    if c.dtype == INDEX:
        return str(c.value)
    if c.dtype == bool_:
        return "true" if c.value else "false"
    if is_float(c.dtype):
        text = str(c.dtype.type(c.value))
        return f"{text}:{short_name(c.dtype)}"
    return f"{c.value}:{short_name(c.dtype)}"


def format_kernel(kernel: Kernel) -> str:
    """The readable text of a kernel (also the key of compile caches)."""
    params = ", ".join(f"{p.name}: {short_name(p.dtype)}[{p.size}]" for p in kernel.params)
    alias = f" [may alias: {', '.join(sorted(kernel.may_alias))}]" if kernel.may_alias else ""
    lines = [f"kernel {kernel.name}({params}):{alias}"]
    _fmt_block(kernel.body, 1, lines)
    return "\n".join(lines)


def _fmt_block(stmts: tuple, depth: int, lines: list[str]) -> None:
    pad = "  " * depth
    if not stmts:
        lines.append(pad + "pass")
    for s in stmts:
        if isinstance(s, Range):
            lines.append(f"{pad}for {s.var.name} in {format_expr(s.start)}..{format_expr(s.stop)}"
                         f"{_fmt_loop_hints(s)}:")
            _fmt_block(s.body, depth + 1, lines)
        elif isinstance(s, Store):
            mask = "" if s.mask is None else f" if {format_expr(s.mask)}"
            lines.append(f"{pad}{s.param}[{format_expr(s.index)}{mask}] = {format_expr(s.value)}")
        elif isinstance(s, DefineLocal):
            init = "" if s.init is None else f" = {format_expr(s.init)}"
            loc = s.local
            lines.append(f"{pad}local {loc.name}: {short_name(loc.dtype)}[{loc.size}]{init}")
        elif isinstance(s, LocalStore):
            lines.append(f"{pad}{s.local}[{format_expr(s.index)}] = {format_expr(s.value)}")
        elif isinstance(s, Accumulate):
            sym = {"add": "+", "mul": "*", "and": "&", "or": "|", "xor": "^"}.get(s.op, s.op + " ")
            lines.append(f"{pad}{s.local}[{format_expr(s.index)}] {sym}= {format_expr(s.value)}")
        elif isinstance(s, If):
            lines.append(f"{pad}if {format_expr(s.cond)}:")
            _fmt_block(s.then, depth + 1, lines)
            if s.else_:
                lines.append(f"{pad}else:")
                _fmt_block(s.else_, depth + 1, lines)


def _fmt_loop_hints(r: Range) -> str:
    hints = []
    if r.step != 1:
        hints.append(f"step {r.step}")
    if r.parallel:
        hints.append("parallel")
    if r.vectorize:
        hints.append("vectorize" if r.vectorize == AUTO else f"vectorize {r.vectorize}")
    if r.unroll:
        hints.append("unroll" if r.unroll == FULL else f"unroll {r.unroll}")
    return " [" + ", ".join(hints) + "]" if hints else ""


def format_program(program: Program) -> str:
    """The readable text of a program and all its kernels."""
    sig = lambda bufs: ", ".join(repr(b) for b in bufs)
    lines = [f"program {program.name}({sig(program.inputs)}) -> ({sig(program.outputs)}):"]
    if program.constants:
        lines.append(f"  constants {sig(program.constants)}")
    temps = program.temporaries()
    if temps:
        lines.append(f"  temporaries {sig(temps)}")
    _fmt_steps(program.body, 1, lines)
    for k in kernels_of(program):
        lines.append("")
        lines.append(format_kernel(k))
    return "\n".join(lines)


def _fmt_steps(steps: tuple, depth: int, lines: list[str]) -> None:
    pad = "  " * depth
    if not steps:
        lines.append(pad + "pass")
    for s in steps:
        if isinstance(s, Call):
            lines.append(f"{pad}{s.kernel.name}({', '.join(b.name for b in s.args)})")
        elif isinstance(s, Loop):
            index = f" -> {s.index.name}" if s.index is not None else ""
            lines.append(f"{pad}loop {s.count}{index}:")
            _fmt_steps(s.body, depth + 1, lines)
        elif isinstance(s, While):
            lines.append(f"{pad}while {s.cond.name}:")
            lines.append(f"{pad}  before:")
            _fmt_steps(s.before, depth + 2, lines)
            lines.append(f"{pad}  body:")
            _fmt_steps(s.body, depth + 2, lines)
        elif isinstance(s, Switch):
            lines.append(f"{pad}switch {s.index.name}:")
            for i, b in enumerate(s.branches):
                lines.append(f"{pad}  case {i}:")
                _fmt_steps(b, depth + 2, lines)


# --- small utilities for IR writers and renderers ---------------------------------------

def walk_stmts(stmts: Iterable[Stmt]) -> Iterator[Stmt]:
    """Every statement, nested ones included, in order."""
    for s in stmts:
        yield s
        if isinstance(s, Range):
            yield from walk_stmts(s.body)
        elif isinstance(s, If):
            yield from walk_stmts(s.then)
            yield from walk_stmts(s.else_)


def stmt_exprs(s: Stmt) -> tuple[Expr, ...]:
    """The expressions a statement evaluates itself (not those of nested statements)."""
    if isinstance(s, Range):
        return (s.start, s.stop)
    if isinstance(s, Store) and s.mask is not None:
        return (s.index, s.value, s.mask)
    if isinstance(s, (Store, LocalStore, Accumulate)):
        return (s.index, s.value)
    if isinstance(s, DefineLocal):
        return () if s.init is None else (s.init,)
    if isinstance(s, If):
        return (s.cond,)
    return ()


def walk_expr(e: Expr) -> Iterator[Expr]:
    """Every distinct node of an expression (a DAG: a subexpression shared by several parents
    is visited once, so deep sharing costs its size, not the size of its unfolded tree)."""
    seen: set[int] = set()
    stack = [e]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        stack.extend(reversed(node.children()))


def free_vars(e: Expr) -> frozenset[str]:
    """Names of the loop variables an expression uses."""
    return frozenset(n.name for n in walk_expr(e) if isinstance(n, Var))


def substitute(e: Expr, mapping: dict[str, Expr]) -> Expr:
    """``e`` with loop variables replaced by expressions (``{'i': Const(3)}``)."""
    if isinstance(e, Var):
        return mapping.get(e.name, e)
    if isinstance(e, Load):
        mask = None if e.mask is None else substitute(e.mask, mapping)
        return Load(e.param, substitute(e.index, mapping), e.dtype, mask)
    if isinstance(e, LocalLoad):
        return LocalLoad(e.local, substitute(e.index, mapping), e.dtype)
    if isinstance(e, Op):
        args = [substitute(a, mapping) for a in e.args]
        if e.op in ("cast", "bitcast"):
            return op(e.op, *args, dtype=e.dtype)
        return op(e.op, *args)
    return e


def rename_params(stmts: Iterable[Stmt], names: dict[str, str]) -> tuple:
    """``stmts`` with every load and store of param ``a`` going to param ``names[a]`` instead
    (params not in ``names`` keep theirs). Shared subexpressions stay shared."""
    memo: dict[int, Expr] = {}

    def expr(e: Expr) -> Expr:
        done = memo.get(id(e))
        if done is not None:
            return done
        if isinstance(e, Load):
            mask = None if e.mask is None else expr(e.mask)
            new = Load(names.get(e.param, e.param), expr(e.index), e.dtype, mask)
        elif isinstance(e, LocalLoad):
            new = LocalLoad(e.local, expr(e.index), e.dtype)
        elif isinstance(e, Op):
            new = Op(e.op, tuple(expr(a) for a in e.args), e.dtype)
        else:
            new = e
        memo[id(e)] = new
        return new

    def stmt(s: Stmt) -> Stmt:
        if isinstance(s, Range):
            return Range(s.var, expr(s.start), expr(s.stop), [stmt(b) for b in s.body], s.step,
                         s.parallel, s.vectorize, s.unroll)
        if isinstance(s, Store):
            return Store(names.get(s.param, s.param), expr(s.index), expr(s.value),
                         None if s.mask is None else expr(s.mask))
        if isinstance(s, DefineLocal):
            return DefineLocal(s.local, None if s.init is None else expr(s.init))
        if isinstance(s, LocalStore):
            return LocalStore(s.local, expr(s.index), expr(s.value))
        if isinstance(s, Accumulate):
            return Accumulate(s.local, expr(s.index), s.op, expr(s.value))
        return If(expr(s.cond), [stmt(b) for b in s.then], [stmt(b) for b in s.else_])
    return tuple(stmt(s) for s in stmts)


def const_int(e: Expr) -> int | None:
    """The value of an integer constant expression, else None."""
    return e.value if isinstance(e, Const) and is_int(e.dtype) else None

