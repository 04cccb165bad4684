"""LLVM IR as text, built directly: the part of ``llvmlite.ir``'s interface the renderer uses.

``llvmlite.ir`` builds a Python object per instruction, names every value through a scope
that deduplicates, and formats it all again when the module is printed: for the MNIST step
that was 0.9 s of the 2 s cold compile (0.6 s building, 0.3 s printing). Here each
instruction becomes its line of text the moment it is emitted, values are plain numbered
registers, and printing a module joins lines. LLVM parses the text as before
(``llvm_worker``), so nothing downstream changes.

The builder also folds integer arithmetic whose operands are constants, and the identities
``x + 0``, ``x * 1``, ``x & true``, ``select(true, a, b)`` and the like. The renderer's own
expansions produce many of these (a floor-mod by a constant checks for a zero and a -1
divisor); folding them here keeps them out of the text LLVM parses and optimises. Only
integers are folded: float results are never touched.

Types are interned (``IntType(32) is IntType(32)``), so comparing them is cheap; calling a
type makes a constant of it, as in llvmlite (``I64(0)``).
"""
from __future__ import annotations

import contextlib
import struct

# --- types ------------------------------------------------------------------------------------


class Type:
    """An LLVM type; ``text`` is how it is written. Interned per structure."""

    __slots__ = ("text",)
    _cache: dict = {}

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"<llvm type {self.text}>"

    def __call__(self, value) -> "Constant":
        return Constant(self, value)

    @classmethod
    def _interned(cls, key: tuple, make) -> "Type":
        t = Type._cache.get(key)
        if t is None:
            t = Type._cache[key] = make()
        return t


class IntType(Type):
    """``iN``."""

    __slots__ = ("width",)

    def __new__(cls, width: int) -> "IntType":
        def make():
            t = object.__new__(cls)
            t.width, t.text = width, f"i{width}"
            return t
        return Type._interned(("i", width), make)


class _Scalar(Type):
    __slots__ = ()
    _name = ""

    def __new__(cls) -> "_Scalar":
        def make():
            t = object.__new__(cls)
            t.text = cls._name
            return t
        return Type._interned((cls._name,), make)


class HalfType(_Scalar):
    """``half``."""
    __slots__ = ()
    _name = "half"


class FloatType(_Scalar):
    """``float``."""
    __slots__ = ()
    _name = "float"


class DoubleType(_Scalar):
    """``double``."""
    __slots__ = ()
    _name = "double"


class VoidType(_Scalar):
    """``void``."""
    __slots__ = ()
    _name = "void"


class PointerType(_Scalar):
    """``ptr`` (opaque)."""
    __slots__ = ()
    _name = "ptr"


class VectorType(Type):
    """``<count x element>``."""

    __slots__ = ("element", "count")

    def __new__(cls, element: Type, count: int) -> "VectorType":
        def make():
            t = object.__new__(cls)
            t.element, t.count, t.text = element, count, f"<{count} x {element.text}>"
            return t
        return Type._interned(("v", element, count), make)


class ArrayType(Type):
    """``[count x element]``."""

    __slots__ = ("element", "count")

    def __new__(cls, element: Type, count: int) -> "ArrayType":
        def make():
            t = object.__new__(cls)
            t.element, t.count, t.text = element, count, f"[{count} x {element.text}]"
            return t
        return Type._interned(("a", element, count), make)


class FunctionType(Type):
    """A function's signature: return type and argument types."""

    __slots__ = ("return_type", "args")

    def __new__(cls, return_type: Type, args) -> "FunctionType":
        args = tuple(args)

        def make():
            t = object.__new__(cls)
            t.return_type, t.args = return_type, args
            t.text = f"{return_type.text} ({', '.join(a.text for a in args)})"
            return t
        return Type._interned(("f", return_type, args), make)


I1, I8, I32, I64 = IntType(1), IntType(8), IntType(32), IntType(64)
PTR = PointerType()

# --- values -----------------------------------------------------------------------------------


class Value:
    """A value: its type and ``ref``, how an operand names it (``%.12``, ``7``, ``@"f"``)."""

    __slots__ = ("type", "ref")

    def __init__(self, type: Type, ref: str) -> None:
        self.type, self.ref = type, ref

    def __str__(self) -> str:
        return f"{self.type.text} {self.ref}"


class _Undefined:
    """The marker for ``Constant(t, Undefined)``: LLVM's ``undef``."""


Undefined = _Undefined()


class Constant(Value):
    """A constant; ``constant`` is the Python value it was made from (None: zero)."""

    __slots__ = ("constant",)

    def __init__(self, type: Type, constant) -> None:
        self.type, self.constant = type, constant
        self.ref = _constant_text(type, constant)

    @classmethod
    def formatted(cls, type: Type, text: str, constant=None) -> "Constant":
        """A constant written as ``text`` (``splat (float 1.0)``)."""
        c = object.__new__(cls)
        c.type, c.ref, c.constant = type, text, constant
        return c


def _float_text(t: Type, value) -> str:
    if t is FLOAT:
        value = struct.unpack("f", struct.pack("f", value))[0]
    elif t is HALF:
        value = struct.unpack("e", struct.pack("e", value))[0]
    return f"{struct.unpack('Q', struct.pack('d', value))[0]:#018x}"


def _constant_text(t: Type, value) -> str:
    if value is Undefined:
        return "undef"
    if isinstance(t, IntType):
        if value is None:
            return "false" if t is I1 else "0"
        if t is I1:
            return "true" if value else "false"
        return str(int(value))        # a Python bool too: LLVM spells true/false only for i1
    if t is FLOAT or t is DOUBLE or t is HALF:
        return _float_text(t, 0.0 if value is None else float(value))
    if t is PTR:
        if value is None:
            return "null"
        raise ValueError(f"a pointer constant is null, not {value!r}")
    if isinstance(t, (VectorType, ArrayType)):
        if value is None:
            return "zeroinitializer"
        if not isinstance(value, (list, tuple)):
            value = [value] * t.count
        if isinstance(t.element, IntType) and all(type(v) is int for v in value):
            key = (t.text, tuple(value))
            text = _aggregate_texts.get(key)
            if text is None:
                if len(_aggregate_texts) > 4096:
                    _aggregate_texts.clear()
                text = _aggregate_texts[key] = _aggregate_text(t, value)
            return text
        return _aggregate_text(t, value)
    raise TypeError(f"no constants of type {t.text}")


#: integer vector and array constants' texts by (type, values): the renderer makes the same
#: lane-index constants thousands of times per program (floats are not kept: 0.0 == -0.0)
_aggregate_texts: dict[tuple, str] = {}


def _aggregate_text(t: Type, value) -> str:
    if len(value) != t.count:
        raise ValueError(f"a constant of {t.text} needs {t.count} elements, got {len(value)}")
    e = t.element
    items = ", ".join(f"{e.text} {v.ref if isinstance(v, Value) else _constant_text(e, v)}" for v in value)
    return f"<{items}>" if isinstance(t, VectorType) else f"[{items}]"


HALF, FLOAT, DOUBLE, VOID = HalfType(), FloatType(), DoubleType(), VoidType()


class Argument(Value):
    """A function argument; ``add_attribute("noalias")`` marks it in the signature."""

    __slots__ = ("attributes",)

    def __init__(self, type: Type, ref: str) -> None:
        super().__init__(type, ref)
        self.attributes: list[str] = []

    def add_attribute(self, name: str) -> None:
        self.attributes.append(name)


class AllocaInstr(Value):
    """The pointer an ``alloca`` returns; ``allocated_type`` is what it holds."""

    __slots__ = ("allocated_type",)


class _Phi(Value):
    """A phi node: written out when the function is printed, so incomings can be added later."""

    __slots__ = ("incoming",)

    def add_incoming(self, value: Value, block: "Block") -> None:
        self.incoming.append((value, block))

    def line(self) -> str:
        pairs = ", ".join(f"[{v.ref}, {b.ref}]" for v, b in self.incoming)
        return f"  {self.ref} = phi {self.type.text} {pairs}"


class _Switch:
    """A ``switch`` terminator: cases are added after it is emitted."""

    __slots__ = ("value", "default", "cases", "block")

    def __init__(self, value: Value, default: "Block", block: "Block") -> None:
        self.value, self.default, self.cases, self.block = value, default, [], block

    def add_case(self, value: Value, block: "Block") -> None:
        self.cases.append((value, block))

    def line(self) -> str:
        cases = " ".join(f"{v.type.text} {v.ref}, label {b.ref}" for v, b in self.cases)
        return f"  switch {self.value}, label {self.default.ref} [{cases}]"


class _Terminator:
    __slots__ = ("text", "block")

    def __init__(self, text: str, block: "Block") -> None:
        self.text, self.block = text, block

    def line(self) -> str:
        return self.text


class Block:
    """A basic block: its label, its instructions (lines) and its terminator."""

    __slots__ = ("function", "name", "ref", "lines", "terminator")

    def __init__(self, function: "Function", name: str) -> None:
        self.function, self.name = function, name
        self.ref = f'%"{name}"'
        self.lines: list = []
        self.terminator = None

    @property
    def is_terminated(self) -> bool:
        return self.terminator is not None

    def text(self) -> str:
        lines = [line if isinstance(line, str) else line.line() for line in self.lines]
        if self.terminator is None:
            raise ValueError(f"block {self.name} of {self.function.name} has no terminator")
        return "\n".join([f'"{self.name}":', *lines, self.terminator.line()])


class Function(Value):
    """A function of a module: a declaration until it has blocks."""

    __slots__ = ("module", "name", "function_type", "args", "blocks", "linkage", "_labels", "_next")

    def __init__(self, module: "Module", ftype: FunctionType, name: str) -> None:
        super().__init__(PTR, f'@"{name}"')
        self.module, self.name, self.function_type = module, name, ftype
        self.args = [Argument(t, f"%.a{k}") for k, t in enumerate(ftype.args)]
        self.blocks: list[Block] = []
        self.linkage = ""
        self._labels: dict[str, int] = {}
        self._next = 0
        module.add_global(self)

    def append_basic_block(self, name: str = "") -> Block:
        """A new block at the end of the function (its label made unique)."""
        base = name or "bb"
        n = self._labels.get(base, 0)
        self._labels[base] = n + 1
        block = Block(self, base if n == 0 else f"{base}.{n}")
        self.blocks.append(block)
        return block

    def new_register(self) -> str:
        self._next += 1
        return f"%.{self._next}"

    def text(self) -> str:
        ret = self.function_type.return_type.text
        if not self.blocks:
            return f"declare {ret} {self.ref}({', '.join(t.text for t in self.function_type.args)})"
        params = ", ".join(" ".join([a.type.text, *a.attributes, a.ref]) for a in self.args)
        linkage = f"{self.linkage} " if self.linkage else ""
        body = "\n".join(b.text() for b in self.blocks)
        return f"define {linkage}{ret} {self.ref}({params})\n{{\n{body}\n}}"


class FunctionPointer(Value):
    """A function's address held in a register, callable as ``builder.call(pointer, args)``."""

    __slots__ = ("function_type",)

    def __init__(self, pointer: Value, ftype: FunctionType) -> None:
        super().__init__(PTR, pointer.ref)
        self.function_type = ftype


class GlobalVariable(Value):
    """A module-level variable (``initializer``: a Constant; None means zero)."""

    __slots__ = ("name", "value_type", "initializer", "linkage", "global_constant")

    def __init__(self, module: "Module", value_type: Type, name: str) -> None:
        super().__init__(PTR, f'@"{name}"')
        self.name, self.value_type = name, value_type
        self.initializer, self.linkage, self.global_constant = None, "", False
        module.add_global(self)

    def text(self) -> str:
        if self.linkage == "external":      # defined elsewhere (bound when the code is loaded)
            return f"{self.ref} = external global {self.value_type.text}"
        init = self.initializer if self.initializer is not None else Constant(self.value_type, None)
        kind = "constant" if self.global_constant else "global"
        linkage = f"{self.linkage} " if self.linkage else ""
        return f"{self.ref} = {linkage}{kind} {init}"


class Module:
    """A module: globals and functions by name, printed in the order they were added."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.triple = ""
        self.globals: dict[str, Value] = {}

    def add_global(self, value: Value) -> None:
        if value.name in self.globals:
            raise ValueError(f"the module already has a global named {value.name!r}")
        self.globals[value.name] = value

    def __str__(self) -> str:
        head = [f'; ModuleID = "{self.name}"', f'target triple = "{self.triple}"']
        return "\n\n".join(["\n".join(head), *(g.text() for g in self.globals.values())]) + "\n"


# --- integer folding --------------------------------------------------------------------------


def _int_const(v: Value):
    """The Python int of a scalar integer constant, else None."""
    if type(v) is Constant and isinstance(v.type, IntType) and isinstance(v.constant, (int, bool)):
        return int(v.constant)
    return None


def _wrap(value: int, width: int, signed: bool = True) -> int:
    value &= (1 << width) - 1
    if signed and width > 1 and value >= 1 << (width - 1):
        value -= 1 << width
    return value


def _int(t: IntType, value: int) -> Constant:
    return Constant(t, bool(value & 1) if t is I1 else _wrap(value, t.width))


def _fold_binary(op: str, a: Value, b: Value) -> Value | None:
    """``a op b`` when both are integer constants, or an identity of one constant; else None."""
    x, y = _int_const(a), _int_const(b)
    if x is None and y is None:
        return None
    t = a.type
    if t is I1 and op not in ("and", "or", "xor"):
        return None
    if x is not None and y is not None:
        w = t.width
        ux, uy = _wrap(x, w, False), _wrap(y, w, False)
        sx, sy = _wrap(x, w), _wrap(y, w)
        if op in ("sdiv", "srem", "udiv", "urem") and (uy == 0 or (op[0] == "s" and sy == -1)):
            return None     # division by zero (and INT_MIN / -1) is left to run time
        if op in ("shl", "lshr", "ashr") and not 0 <= uy < w:
            return None
        result = {
            "add": lambda: sx + sy, "sub": lambda: sx - sy, "mul": lambda: sx * sy,
            "and": lambda: ux & uy, "or": lambda: ux | uy, "xor": lambda: ux ^ uy,
            "shl": lambda: ux << uy, "lshr": lambda: ux >> uy, "ashr": lambda: sx >> uy,
            "sdiv": lambda: abs(sx) // abs(sy) * (1 if (sx < 0) == (sy < 0) else -1),
            "srem": lambda: abs(sx) % abs(sy) * (1 if sx >= 0 else -1),
            "udiv": lambda: ux // uy, "urem": lambda: ux % uy,
        }[op]()
        return _int(t, result)
    ones = (1 << t.width) - 1
    if y is not None:
        uy = _wrap(y, t.width, False)
        if (op in ("add", "sub", "or", "xor", "shl", "lshr", "ashr") and uy == 0) or \
                (op in ("mul", "sdiv", "udiv") and uy == 1) or (op == "and" and uy == ones):
            return a
        if (op == "and" and uy == 0) or (op == "mul" and uy == 0):
            return _int(t, 0)
        if op == "or" and uy == ones:
            return _int(t, ones)
        return None
    ux = _wrap(x, t.width, False)
    if (op in ("add", "or", "xor") and ux == 0) or (op == "mul" and ux == 1) or (op == "and" and ux == ones):
        return b
    if op in ("and", "mul", "shl", "lshr", "ashr") and ux == 0:
        return _int(t, 0)
    if op == "or" and ux == ones:
        return _int(t, ones)
    return None


_ICMP = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
_COMPARE = {"eq": lambda p, q: p == q, "ne": lambda p, q: p != q, "lt": lambda p, q: p < q,
            "le": lambda p, q: p <= q, "gt": lambda p, q: p > q, "ge": lambda p, q: p >= q}
_FCMP = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge", "ord": "ord", "uno": "uno"}


def _bool_type(t: Type) -> Type:
    return VectorType(I1, t.count) if isinstance(t, VectorType) else I1


def _shuffle_type(a: Value, mask: Value) -> Type:
    return VectorType(a.type.element, mask.type.count)


# --- the builder ------------------------------------------------------------------------------


class IRBuilder:
    """Appends instructions to a block (at its end, or at its start for ``position_at_start``)."""

    def __init__(self, block: Block | None = None) -> None:
        self.block: Block | None = None
        self._at: int | None = None          # insert at this index (position_at_start), else append
        self._before_end = False             # append before the block's terminator
        if block is not None:
            self.position_at_end(block)

    @property
    def function(self) -> Function:
        return self.block.function

    # -- position
    def position_at_end(self, block: Block) -> None:
        self.block, self._at, self._before_end = block, None, False

    def position_at_start(self, block: Block) -> None:
        self.block, self._at, self._before_end = block, 0, False

    def position_before(self, instruction) -> None:
        """Before a block's terminator (the only instruction the renderer inserts before)."""
        if not isinstance(instruction, (_Terminator, _Switch)):
            raise ValueError("this builder inserts only before a block's terminator")
        self.block, self._at, self._before_end = instruction.block, None, True

    def append_basic_block(self, name: str = "") -> Block:
        return self.block.function.append_basic_block(name)

    # -- emission
    def _line(self, line) -> None:
        if self._at is None:
            if self.block.terminator is not None and not self._before_end:
                raise ValueError(f"block {self.block.name} is already terminated")
            self.block.lines.append(line)
        else:
            self.block.lines.insert(self._at, line)
            self._at += 1

    def _emit(self, t: Type, text: str) -> Value:
        v = Value(t, self.block.function.new_register())
        self._line(f"  {v.ref} = {text}")
        return v

    def _terminate(self, term) -> None:
        if self.block.terminator is not None:
            raise ValueError(f"block {self.block.name} is already terminated")
        self.block.terminator = term

    def _binary(self, op: str, a: Value, b: Value) -> Value:
        folded = _fold_binary(op, a, b)
        if folded is not None:
            return folded
        return self._emit(a.type, f"{op} {a.type.text} {a.ref}, {b.ref}")

    # integer arithmetic (folded when constant)
    def add(self, a, b, name=""): return self._binary("add", a, b)
    def sub(self, a, b, name=""): return self._binary("sub", a, b)
    def mul(self, a, b, name=""): return self._binary("mul", a, b)
    def sdiv(self, a, b, name=""): return self._binary("sdiv", a, b)
    def udiv(self, a, b, name=""): return self._binary("udiv", a, b)
    def srem(self, a, b, name=""): return self._binary("srem", a, b)
    def urem(self, a, b, name=""): return self._binary("urem", a, b)
    def shl(self, a, b, name=""): return self._binary("shl", a, b)
    def lshr(self, a, b, name=""): return self._binary("lshr", a, b)
    def ashr(self, a, b, name=""): return self._binary("ashr", a, b)
    def and_(self, a, b, name=""): return self._binary("and", a, b)
    def or_(self, a, b, name=""): return self._binary("or", a, b)
    def xor(self, a, b, name=""): return self._binary("xor", a, b)

    def neg(self, a, name=""):
        return self.sub(Constant(a.type, None if isinstance(a.type, VectorType) else 0), a)

    def not_(self, a, name=""):
        ones = Constant(a.type, [-1 if a.type.element is not I1 else True] * a.type.count) \
            if isinstance(a.type, VectorType) else Constant(a.type, True if a.type is I1 else -1)
        return self.xor(a, ones)

    # float arithmetic (never folded)
    def fadd(self, a, b, name=""): return self._emit(a.type, f"fadd {a.type.text} {a.ref}, {b.ref}")
    def fsub(self, a, b, name=""): return self._emit(a.type, f"fsub {a.type.text} {a.ref}, {b.ref}")
    def fmul(self, a, b, name=""): return self._emit(a.type, f"fmul {a.type.text} {a.ref}, {b.ref}")
    def fdiv(self, a, b, name=""): return self._emit(a.type, f"fdiv {a.type.text} {a.ref}, {b.ref}")
    def frem(self, a, b, name=""): return self._emit(a.type, f"frem {a.type.text} {a.ref}, {b.ref}")
    def fneg(self, a, name=""): return self._emit(a.type, f"fneg {a.type.text} {a.ref}")

    # comparisons and select
    def _icmp(self, signed: bool, op: str, a: Value, b: Value) -> Value:
        cond = _ICMP[op]
        x, y = _int_const(a), _int_const(b)
        if x is not None and y is not None:
            w = a.type.width
            p, q = (_wrap(x, w), _wrap(y, w)) if signed else (_wrap(x, w, False), _wrap(y, w, False))
            if signed and w == 1:       # a signed i1 true is -1
                p, q = -p, -q
            return Constant(I1, _COMPARE[cond](p, q))
        if cond not in ("eq", "ne"):
            cond = ("s" if signed else "u") + cond
        return self._emit(_bool_type(a.type), f"icmp {cond} {a.type.text} {a.ref}, {b.ref}")

    def icmp_signed(self, op, a, b, name=""): return self._icmp(True, op, a, b)
    def icmp_unsigned(self, op, a, b, name=""): return self._icmp(False, op, a, b)

    def fcmp_ordered(self, op, a, b, name="", flags=()):
        cond = _FCMP[op]
        cond = cond if cond in ("ord", "uno") else "o" + cond
        return self._emit(_bool_type(a.type), f"fcmp {cond} {a.type.text} {a.ref}, {b.ref}")

    def fcmp_unordered(self, op, a, b, name="", flags=()):
        cond = _FCMP[op]
        cond = cond if cond in ("ord", "uno") else "u" + cond
        return self._emit(_bool_type(a.type), f"fcmp {cond} {a.type.text} {a.ref}, {b.ref}")

    def select(self, cond, a, b, name=""):
        if type(cond) is Constant and cond.type is I1 and isinstance(cond.constant, (bool, int)):
            return a if cond.constant else b
        if a is b:
            return a
        return self._emit(a.type, f"select {cond.type.text} {cond.ref}, {a.type.text} {a.ref}, {b.type.text} {b.ref}")

    # casts
    def _cast(self, op: str, a: Value, to: Type) -> Value:
        return self._emit(to, f"{op} {a.type.text} {a.ref} to {to.text}")

    def trunc(self, a, to, name=""):
        c = _int_const(a)
        return _int(to, c) if c is not None and isinstance(to, IntType) else self._cast("trunc", a, to)

    def zext(self, a, to, name=""):
        c = _int_const(a)
        if c is not None and isinstance(to, IntType):
            return Constant(to, _wrap(c, a.type.width, False))
        return self._cast("zext", a, to)

    def sext(self, a, to, name=""):
        c = _int_const(a)
        if c is not None and isinstance(to, IntType):
            return Constant(to, (-1 if c else 0) if a.type is I1 else _wrap(c, a.type.width))
        return self._cast("sext", a, to)

    def fptrunc(self, a, to, name=""): return self._cast("fptrunc", a, to)
    def fpext(self, a, to, name=""): return self._cast("fpext", a, to)
    def sitofp(self, a, to, name=""): return self._cast("sitofp", a, to)
    def uitofp(self, a, to, name=""): return self._cast("uitofp", a, to)
    def fptosi(self, a, to, name=""): return self._cast("fptosi", a, to)
    def fptoui(self, a, to, name=""): return self._cast("fptoui", a, to)
    def bitcast(self, a, to, name=""): return self._cast("bitcast", a, to)
    def ptrtoint(self, a, to, name=""): return self._cast("ptrtoint", a, to)
    def inttoptr(self, a, to, name=""): return self._cast("inttoptr", a, to)

    # memory
    def alloca(self, t: Type, size=None, name="", align: int | None = None) -> AllocaInstr:
        v = AllocaInstr(PTR, self.block.function.new_register())
        v.allocated_type = t
        tail = f", align {align}" if align else ""
        self._line(f"  {v.ref} = alloca {t.text}{tail}")
        return v

    def load(self, ptr: Value, name="", align=None, typ: Type | None = None) -> Value:
        t = typ if typ is not None else ptr.allocated_type
        tail = f", align {align}" if align else ""
        return self._emit(t, f"load {t.text}, ptr {ptr.ref}{tail}")

    def store(self, value: Value, ptr: Value, align=None) -> None:
        tail = f", align {align}" if align else ""
        self._line(f"  store {value.type.text} {value.ref}, ptr {ptr.ref}{tail}")

    def gep(self, ptr: Value, indices, inbounds=False, name="", source_etype: Type | None = None) -> Value:
        etype = source_etype if source_etype is not None else ptr.allocated_type
        lanes = [i.type.count for i in indices if isinstance(i.type, VectorType)]
        t = VectorType(PTR, lanes[0]) if lanes else PTR
        idx = "".join(f", {i.type.text} {i.ref}" for i in indices)
        return self._emit(t, f"getelementptr{' inbounds' if inbounds else ''} {etype.text}, ptr {ptr.ref}{idx}")

    # vectors
    def extract_element(self, vector, index, name=""):
        return self._emit(vector.type.element,
                          f"extractelement {vector.type.text} {vector.ref}, {index.type.text} {index.ref}")

    def insert_element(self, vector, value, index, name=""):
        return self._emit(vector.type, f"insertelement {vector.type.text} {vector.ref}, "
                                       f"{value.type.text} {value.ref}, {index.type.text} {index.ref}")

    def shuffle_vector(self, a, b, mask, name=""):
        return self._emit(_shuffle_type(a, mask), f"shufflevector {a.type.text} {a.ref}, {b.type.text} {b.ref}, "
                                                  f"{mask.type.text} {mask.ref}")

    # calls and control flow
    def call(self, fn: "Function | FunctionPointer", args, name="") -> Value | None:
        ret = fn.function_type.return_type
        operands = ", ".join(f"{a.type.text} {a.ref}" for a in args)
        if ret is VOID:
            self._line(f"  call void {fn.ref}({operands})")
            return None
        return self._emit(ret, f"call {ret.text} {fn.ref}({operands})")

    def phi(self, t: Type, name="") -> _Phi:
        phi = _Phi(t, self.block.function.new_register())
        phi.incoming = []
        if self._at is not None:
            raise ValueError("a phi goes at the end of the instructions emitted so far")
        self.block.lines.append(phi)
        return phi

    def branch(self, target: Block) -> None:
        self._terminate(_Terminator(f"  br label {target.ref}", self.block))

    def cbranch(self, cond: Value, then: Block, otherwise: Block) -> None:
        self._terminate(_Terminator(f"  br {cond.type.text} {cond.ref}, label {then.ref}, label {otherwise.ref}",
                                    self.block))

    def switch(self, value: Value, default: Block) -> _Switch:
        sw = _Switch(value, default, self.block)
        self._terminate(sw)
        return sw

    def ret_void(self) -> None:
        self._terminate(_Terminator("  ret void", self.block))

    def ret(self, value: Value) -> None:
        self._terminate(_Terminator(f"  ret {value.type.text} {value.ref}", self.block))

    @contextlib.contextmanager
    def if_then(self, pred: Value, likely=None):
        """``with b.if_then(c):`` the body runs when ``c`` holds; afterwards the builder is in
        the block after it."""
        then = self.append_basic_block("if.then")
        after = self.append_basic_block("if.end")
        self.cbranch(pred, then, after)
        self.position_at_end(then)
        yield after
        if not self.block.is_terminated:
            self.branch(after)
        self.position_at_end(after)

    @contextlib.contextmanager
    def if_else(self, pred: Value, likely=None):
        """``with b.if_else(c) as (then, otherwise):`` two bodies, each in a ``with``."""
        then_block = self.append_basic_block("if.then")
        else_block = self.append_basic_block("if.else")
        after = self.append_basic_block("if.end")
        self.cbranch(pred, then_block, else_block)

        @contextlib.contextmanager
        def arm(block: Block):
            self.position_at_end(block)
            yield block
            if not self.block.is_terminated:
                self.branch(after)

        yield arm(then_block), arm(else_block)
        self.position_at_end(after)
