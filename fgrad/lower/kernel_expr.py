"""Kernel IR expressions: typed scalar trees, their builders, printer and walkers.

``Const``, ``Var``, ``Load``, ``LocalLoad`` and ``Op`` over the ops of ``scalar_ops``;
``op`` (and ``add``, ``select``, ``cast``...) type-check, fold integer index arithmetic
and widen float16 and bfloat16 arithmetic to float32 (see ``kernel``, which re-exports all of it).
"""
from __future__ import annotations

from typing import Any, Iterator, Sequence, Union

import numpy as np

from fgrad.lower.kernel_types import (
    HALF, INDEX, as_dtype, bfloat16, bool_, float16, float32, float64, is_float, is_int, short_name, uint16,
    uint32, wrap_int,
)
from fgrad.lower.scalar_ops import COMPARE, OPS, kinds_for

_INFIX = {"add": ("+", 4), "sub": ("-", 4), "mul": ("*", 5), "div": ("/", 5), "floordiv": ("//", 5),
          "mod": ("%", 5), "shl": ("<<", 3), "shr": (">>", 3), "and": ("&", 2), "xor": ("^", 1),
          "or": ("|", 0), "eq": ("==", -1), "ne": ("!=", -1), "lt": ("<", -1), "le": ("<=", -1),
          "gt": (">", -1), "ge": (">=", -1)}


# --- expressions -----------------------------------------------------------------------

ExprLike = Union["Expr", int, float, bool]


class Expr:
    """A typed scalar expression. Immutable; hashed once; ``==`` compares structure."""

    __slots__ = ("dtype", "_hash", "_reads", "_variables", "_tree_size")

    def _init(self, dtype: np.dtype, key: tuple) -> None:
        self.dtype = dtype
        self._hash = hash((type(self).__name__, dtype.char) + key)
        self._reads = None
        self._variables = None
        self._tree_size = None

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

    @property
    def variables(self) -> frozenset[str]:
        """Names of the loop variables this expression depends on."""
        if self._variables is None:
            own = {self.name} if isinstance(self, Var) else set()
            for c in self.children():
                own |= c.variables
            self._variables = frozenset(own)
        return self._variables

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
        self.index = as_index(index, f"the index of {param}")
        self.mask = None if mask is None else as_bool(mask, f"the mask of a load from {param}")
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
        self.index = as_index(index, f"the index of local {local}")
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


def as_index(x: ExprLike, what: str) -> Expr:
    """``x`` as an int64 index expression (``what`` names it in the error otherwise)."""
    e = as_expr(x, INDEX)
    if not is_int(e.dtype):
        raise TypeError(f"{what} must be an integer expression, got {short_name(e.dtype)}")
    return e


def as_bool(x: ExprLike, what: str) -> Expr:
    """``x`` as a bool expression (``what`` names it in the error otherwise)."""
    e = as_expr(x, bool_)
    if e.dtype != bool_:
        raise TypeError(f"{what} must be a bool expression, got {short_name(e.dtype)}")
    return e


def as_expr(x: ExprLike, dtype: Any = None) -> Expr:
    """An expression for ``x``: Exprs pass through, Python numbers become ``Const`` of ``dtype``."""
    if isinstance(x, Expr):
        return x
    if isinstance(x, (bool, int, float, np.number, np.bool_)):
        # by type and repr: 0.0 and -0.0 (or 1 and True) are equal keys but not equal constants
        key = (type(x), repr(x), dtype)
        const = _consts.get(key)
        if const is None:
            const = Const(x, dtype if dtype is not None else _dtype_of_python(x))
            if len(_consts) >= _BUILT_MAX:
                _consts.clear()
            _consts[key] = const
        return const
    raise TypeError(f"expected a kernel IR expression or a number, got {type(x).__name__}")


# --- expression builders (with light constant folding for integer index math) ------------

#: as_expr's constants by (type, repr, dtype): index math makes the same few over and over
_consts: dict = {}

#: op() results by (name, arguments, dtype): a lowering builds the same index expressions over
#: and over (each layer of a model, each vector of a register tile; 94% of the calls in a GPT
#: step), and a shared result also makes later structural comparisons hit ``is``
_built: dict = {}
_BUILT_MAX = 1 << 16


def op(name: str, *args: ExprLike, dtype: Any = None) -> Expr:
    """Apply scalar op ``name``; numbers take the dtype of the first expression argument.

    ``dtype`` is the target dtype of ``cast``/``bitcast`` and ignored otherwise.
    """
    # numbers by type and repr: 0.0 and -0.0 (or 1 and True) are equal keys but not equal constants
    if len(args) == 2:          # most ops: spelled out, a generator costs as much as the lookup
        a, b = args
        key = (name, dtype, a if isinstance(a, Expr) else (type(a), repr(a)),
               b if isinstance(b, Expr) else (type(b), repr(b)))
    else:
        key = (name, dtype, *(a if isinstance(a, Expr) else (type(a), repr(a)) for a in args))
    built = _built.get(key)
    if built is None:
        built = _build_op(name, args, dtype)
        if len(_built) >= _BUILT_MAX:
            _built.clear()
        _built[key] = built
    return built


def _build_op(name: str, args: tuple, dtype: Any) -> Expr:
    if name not in OPS:
        raise ValueError(f"unknown scalar op {name!r}; the op set is {sorted(OPS)}")
    if name in ("cast", "bitcast"):
        return _convert(name, args, dtype)
    if name == "select":
        return _select(*args)
    exprs = _unify(name, args)
    if exprs[0].dtype in HALF:
        return _half_op(name, exprs)
    kinds = kinds_for(name)
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
    if name == "cast" and isinstance(x, Const) and x.dtype == bfloat16 and is_float(dtype):
        return Const(x.value, dtype)
    if name == "cast" and bfloat16 in (x.dtype, dtype):
        return _to_bfloat16(x) if dtype == bfloat16 else cast(_from_bfloat16(x), dtype)
    if name == "cast" and float16 in (x.dtype, dtype) and float32 not in (x.dtype, dtype):
        return _to_half(x) if dtype == float16 else cast(Op("cast", (x,), float32), dtype)
    return Op(name, (x,), dtype)


def _half_op(name: str, exprs: list[Expr]) -> Expr:
    """A float16 or bfloat16 op computed in float32; arithmetic results are rounded back."""
    half = exprs[0].dtype
    wide = op(name, *[cast(e, float32) for e in exprs])
    return wide if wide.dtype == bool_ else cast(wide, half)


def _from_bfloat16(x: Expr) -> Expr:
    """A bfloat16 value as float32 (exact): its 16 bits are float32's upper half. No renderer
    has a bfloat16 arithmetic type; they see only its bits (loads, stores, bitcasts)."""
    bits = cast(bitcast(x, uint16), uint32)
    return bitcast(bits << Const(16, uint32), float32)


def _to_bfloat16(x: Expr) -> Expr:
    """``x`` (any dtype but bfloat16) rounded to float32, then to the nearest bfloat16, ties to
    even, in bit arithmetic; a NaN stays a (quiet) NaN of its sign, infinities and overflow give
    infinities. As XLA converts: wider types round twice (to float32 first), unlike float16."""
    wide = cast(x, float32)
    bits = bitcast(wide, uint32)
    lsb = (bits >> Const(16, uint32)) & Const(1, uint32)
    rounded = (bits + Const(0x7FFF, uint32) + lsb) >> Const(16, uint32)
    quiet = (bits >> Const(16, uint32)) | Const(0x40, uint32)
    out = select(op("ne", wide, wide), quiet, rounded)
    return bitcast(cast(out, uint16), bfloat16)


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
    cond = as_bool(cond, "the condition of select")
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
    term is anywhere in a sum: ``(s + (x // c) * c + t) + x % c == s + t + x``. Unravel-then-
    ravel index maps produce it, and only the folded form is recognisably contiguous."""
    if not (isinstance(b, Op) and b.op == "mod" and isinstance(b.args[1], Const) and b.args[1].value):
        return None
    x, c = b.args

    def is_multiple(e: Expr) -> bool:
        return (isinstance(e, Op) and e.op == "mul" and e.args[1] == c and isinstance(e.args[0], Op)
                and e.args[0].op == "floordiv" and e.args[0].args == (x, c))
    terms = _sum_terms(a)
    for k, term in enumerate(terms):
        if is_multiple(term):
            rest = terms[:k] + terms[k + 1:]
            out = rest[0] if rest else x
            for t in rest[1:] + ([x] if rest else []):
                out = op("add", out, t)
            return out
    return None


def _sum_terms(e: Expr, depth: int = 8) -> list[Expr]:
    """The terms of a left-nested sum ``((t0 + t1) + t2) + ...`` (as deep as ``depth``)."""
    if depth and isinstance(e, Op) and e.op == "add":
        return _sum_terms(e.args[0], depth - 1) + _sum_terms(e.args[1], depth - 1)
    return [e]


def _fold_int(name: str, v: list[int]) -> int | None:
    if name == "neg":
        return -v[0]
    a, b = v
    if name in ("floordiv", "mod") and b == 0:
        return None
    return {"add": a + b, "sub": a - b, "mul": a * b,
            "floordiv": a // b if b else 0, "mod": a % b if b else 0}[name]


# the common ops by name: ``add(a, b)`` is ``op("add", a, b)``
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
        c = as_bool(c, "an operand of logical_and")
        out = c if isinstance(out, Const) and out.value else op("and", out, c)
    return out


# --- printing --------------------------------------------------------------------------

#: an expression whose unfolded tree has more nodes than this prints its large shared
#: subexpressions once, as ``let %0 = ...; %1 = ... in ...`` (bfloat16 rounding reads its
#: operand five times, so a chain of n roundings unfolds to 5**n nodes)
FORMAT_TREE_LIMIT = 2000
SHARED_MIN_NODES = 16


def format_expr(e: Expr, params: dict[str, str] | None = None) -> str:
    """An expression in infix form, e.g. ``tanh(x[i] * 2.0:f32 + 1.0:f32)``; ``params`` renames
    the params it loads from (``{name: printed name}``). A very large one names its shared
    subexpressions (``FORMAT_TREE_LIMIT``), so its text grows with its distinct nodes."""
    params = params or {}
    if tree_size(e) <= FORMAT_TREE_LIMIT:
        return _fmt(e, -9, params)
    bound: dict[int, str] = {}
    lets = []
    for node in _shared_subexpressions(e):
        text = _fmt(node, -9, params, bound)
        bound[id(node)] = f"%{len(bound)}"
        lets.append(f"{bound[id(node)]} = {text}")
    return f"let {'; '.join(lets)} in {_fmt(e, -9, params, bound)}"


def tree_size(e: Expr) -> int:
    """How many nodes ``e`` has written out as a tree (shared subexpressions counted at every
    use); computed once per node."""
    stack = [e]
    while stack:
        node = stack[-1]
        if node._tree_size is not None:
            stack.pop()
            continue
        pending = [c for c in node.children() if c._tree_size is None]
        if pending:
            stack.extend(pending)
            continue
        node._tree_size = 1 + sum(c._tree_size for c in node.children())
        stack.pop()
    return e._tree_size


def _shared_subexpressions(e: Expr) -> list[Expr]:
    """The subexpressions of ``e`` (not ``e``) used by more than one parent and of at least
    ``SHARED_MIN_NODES`` nodes, children before parents, in a fixed order."""
    uses: dict[int, int] = {}
    order: list[Expr] = []
    seen: set[int] = set()
    stack: list[tuple[Expr, bool]] = [(e, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for child in reversed(node.children()):
            uses[id(child)] = uses.get(id(child), 0) + 1
            stack.append((child, False))
    return [n for n in order if n is not e and uses.get(id(n), 0) > 1 and tree_size(n) >= SHARED_MIN_NODES]


def _fmt(e: Expr, outer: int, params: dict[str, str], bound: dict[int, str] | None = None) -> str:
    if bound and id(e) in bound:
        return bound[id(e)]
    if isinstance(e, Const):
        return _fmt_const(e)
    if isinstance(e, Var):
        return e.name
    if isinstance(e, Load):
        mask = "" if e.mask is None else f" if {_fmt(e.mask, -9, params, bound)}"
        return f"{params.get(e.param, e.param)}[{_fmt(e.index, -9, params, bound)}{mask}]"
    if isinstance(e, LocalLoad):
        return f"{e.local}[{_fmt(e.index, -9, params, bound)}]"
    if e.op in _INFIX and len(e.args) == 2:
        sym, prec = _INFIX[e.op]
        text = f"{_fmt(e.args[0], prec, params, bound)} {sym} {_fmt(e.args[1], prec + 1, params, bound)}"
        return f"({text})" if prec < outer else text
    if e.op == "neg":
        return f"-{_fmt(e.args[0], 9, params, bound)}"
    if e.op in ("cast", "bitcast"):
        name = short_name(e.dtype) if e.op == "cast" else f"bitcast<{short_name(e.dtype)}>"
        return f"{name}({_fmt(e.args[0], -9, params, bound)})"
    return f"{e.op}({', '.join(_fmt(a, -9, params, bound) for a in e.args)})"


def _fmt_const(c: Const) -> str:
    if c.dtype == INDEX:
        return str(c.value)
    if c.dtype == bool_:
        return "true" if c.value else "false"
    if is_float(c.dtype):
        text = str(c.dtype.type(c.value))
        return f"{text}:{short_name(c.dtype)}"
    return f"{c.value}:{short_name(c.dtype)}"


# --- walkers -----------------------------------------------------------------------------

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


def const_int(e: Expr) -> int | None:
    """The value of an integer constant expression, else None."""
    return e.value if isinstance(e, Const) and is_int(e.dtype) else None
