"""The kernel IR's scalar ops: one table that the interpreter and both renderers read.

Each ``ScalarOp`` says how many operands the op takes, which dtype kinds they may
have, how the result dtype follows from them, what the op computes (``reference``:
a function on NumPy scalars; the interpreter runs it, and the LLVM renderer folds
constants with it) and the corner cases a renderer must reproduce bit for bit
(``notes``). The general rules (see the semantics section of ``kernel``): integer
arithmetic wraps; where NumPy warns or is undefined the IR picks a total definition.

Adding a kernel-IR op is one entry in ``TABLE``, plus one line per renderer: a
``_Lowering.op_<name>`` method (or a ``mathlib`` expansion) in ``llvm_ops`` and an
entry in the op tables of ``cuda_scalar``. Each renderer checks at import time that it
implements exactly the table's ops (``check_coverage``), and so does a test.

    >>> TABLE["floordiv"].arity, TABLE["floordiv"].kinds
    (2, 'fiu')
    >>> apply_op("floordiv", [np.int32(-7), np.int32(2)], np.dtype(np.int32))
    np.int32(-4)
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math
import operator
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from fgrad.lower.kernel_types import bool_, is_float, wrap_int


@dataclass(frozen=True)
class ScalarOp:
    """One scalar op of the kernel IR.

    ``group`` sorts the ops the way the builders check them (``float_unary``,
    ``numeric_unary``, ``binary_arith``, ``bitwise``, ``shift``, ``compare``, ``other``);
    ``kinds`` are the operand dtype kinds it takes (f float, i signed, u unsigned,
    b bool; for ``select`` the kinds of the two values); ``result`` is ``"operand"``
    (the dtype of the operands; for ``select`` of its values), ``"bool"`` or
    ``"target"`` (``cast``/``bitcast``: the dtype asked for).
    """

    name: str
    group: str
    arity: int
    kinds: str
    result: str
    reference: Callable[..., Any] | None      # None: cast and bitcast (see ``apply_op``)
    notes: str = ""


# --- reference semantics on NumPy scalars --------------------------------------------------

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


def _float_max(x, y):
    """NaN wins; of 0. and -0., max is 0. (as XLA)."""
    return (y if np.signbit(x) else x) if x == y else np.maximum(x, y)


def _float_min(x, y):
    """NaN wins; of 0. and -0., min is -0. (as XLA)."""
    return (x if np.signbit(x) else y) if x == y else np.minimum(x, y)


def _op(name, group, arity, kinds, result, reference, notes=""):
    return name, ScalarOp(name, group, arity, kinds, result, reference, notes)


_UNARY_F = ("float_unary", 1, "f", "operand")
_ARITH = ("binary_arith", 2, "fiu", "operand")
_COMPARE = ("compare", 2, "fiub", "bool")

#: every scalar op, in the order of the groups (``FLOAT_UNARY``... are read off it)
TABLE: dict[str, ScalarOp] = dict([
    _op("exp", *_UNARY_F, np.exp, "libm accuracy (renderers: a few ulp)"),
    _op("log", *_UNARY_F, np.log),
    _op("log1p", *_UNARY_F, np.log1p),
    _op("expm1", *_UNARY_F, np.expm1),
    _op("tanh", *_UNARY_F, np.tanh),
    _op("logistic", *_UNARY_F, _in_float64(lambda x: 1.0 / (1.0 + np.exp(-x))), "1 / (1 + exp(-x))"),
    _op("sin", *_UNARY_F, np.sin, "huge arguments: the C library's sin"),
    _op("cos", *_UNARY_F, np.cos, "huge arguments: the C library's cos"),
    _op("sqrt", *_UNARY_F, np.sqrt),
    _op("rsqrt", *_UNARY_F, _in_float64(lambda x: 1.0 / np.sqrt(x)), "1 / sqrt(x)"),
    _op("floor", *_UNARY_F, np.floor),
    _op("ceil", *_UNARY_F, np.ceil),
    _op("round", *_UNARY_F, _round_half_away, "half away from zero (C round)"),
    _op("round_even", *_UNARY_F, np.rint, "half to even (C rint, NumPy round)"),
    _op("neg", "numeric_unary", 1, "fiu", "operand", _by_kind(operator.neg, _ints(operator.neg)),
        "integers wrap (-MIN == MIN); floats flip the sign bit (-0. of 0.)"),
    _op("abs", "numeric_unary", 1, "fiu", "operand", _by_kind(np.abs, _ints(abs)),
        "integers wrap (abs(MIN) == MIN); unsigned: the identity"),
    _op("sign", "numeric_unary", 1, "fiu", "operand", lambda x: x if x == 0 else np.sign(x),
        "±0 keeps its sign and NaN stays NaN (as XLA)"),
    _op("add", *_ARITH, _by_kind(operator.add, _ints(operator.add)), "integers wrap"),
    _op("sub", *_ARITH, _by_kind(operator.sub, _ints(operator.sub)), "integers wrap"),
    _op("mul", *_ARITH, _by_kind(operator.mul, _ints(operator.mul)), "integers wrap"),
    _op("div", *_ARITH, _by_kind(np.true_divide, _ints(_trunc_div)),
        "integers truncate; x/0 is 0; MIN/-1 wraps to MIN"),
    _op("rem", *_ARITH, _by_kind(np.fmod, _ints(_trunc_rem)),
        "C fmod / truncating remainder (sign of the dividend); integer x%0 and x%-1 are 0"),
    _op("floordiv", *_ARITH, _by_kind(np.floor_divide, _ints(lambda a, b: a // b if b else 0)),
        "floors (NumPy's divmod for floats, its signed zeros included); integer x//0 is 0"),
    _op("mod", *_ARITH, _by_kind(np.remainder, _ints(lambda a, b: a % b if b else 0)),
        "floor remainder (sign of the divisor; a float zero result takes the divisor's sign); "
        "integer x%0 is 0"),
    _op("pow", *_ARITH, _by_kind(_float_pow, _ints(_int_pow)),
        "floats: C pow/powf; integers: exact modulo 2**bits, a negative exponent gives 0 "
        "except for bases 1 and -1"),
    _op("and", "bitwise", 2, "biu", "operand", _bitwise(operator.and_), "bools: logical"),
    _op("or", "bitwise", 2, "biu", "operand", _bitwise(operator.or_), "bools: logical"),
    _op("xor", "bitwise", 2, "biu", "operand", _bitwise(operator.xor), "bools: logical"),
    _op("shl", "shift", 2, "iu", "operand", _shl,
        "a shift by a negative amount or at least the bit width gives 0"),
    _op("shr", "shift", 2, "iu", "operand", _shr,
        "arithmetic on signed, logical on unsigned types; a shift by a negative amount or at "
        "least the bit width gives 0 (-1 for a negative value)"),
    _op("eq", *_COMPARE, lambda a, b: np.bool_(a == b)),
    _op("ne", *_COMPARE, lambda a, b: np.bool_(a != b), "NaN != NaN"),
    _op("lt", *_COMPARE, lambda a, b: np.bool_(a < b)),
    _op("le", *_COMPARE, lambda a, b: np.bool_(a <= b)),
    _op("gt", *_COMPARE, lambda a, b: np.bool_(a > b)),
    _op("ge", *_COMPARE, lambda a, b: np.bool_(a >= b)),
    _op("is_finite", "other", 1, "f", "bool", np.isfinite),
    _op("not", "other", 1, "biu", "operand", _not, "bools: logical not; integers: bitwise"),
    _op("max", "other", 2, "fiub", "operand", _by_kind(_float_max, np.maximum),
        "NaN wins; of 0. and -0. max is 0. (as XLA); bools: or"),
    _op("min", "other", 2, "fiub", "operand", _by_kind(_float_min, np.minimum),
        "NaN wins; of 0. and -0. min is -0. (as XLA); bools: and"),
    _op("select", "other", 3, "fiub", "operand", lambda c, a, b: a if c else b,
        "the first operand is a bool condition"),
    _op("fma", "other", 3, "fiu", "operand", _by_kind(_float_fma, _ints(lambda a, b, c: a * b + c)),
        "floats may round once or twice; integers wrap"),
    _op("cast", "other", 1, "fiub", "target", None,
        "float -> integer truncates and saturates, NaN -> 0; -> bool is x != 0; integers wrap; "
        "float16 only to and from float32"),
    _op("bitcast", "other", 1, "fiub", "target", None, "two non-bool dtypes of one size"),
])

#: the op names by group, in table order
FLOAT_UNARY = tuple(n for n, o in TABLE.items() if o.group == "float_unary")
NUMERIC_UNARY = tuple(n for n, o in TABLE.items() if o.group == "numeric_unary")
BINARY_ARITH = tuple(n for n, o in TABLE.items() if o.group == "binary_arith")
BITWISE = tuple(n for n, o in TABLE.items() if o.group == "bitwise")
SHIFTS = tuple(n for n, o in TABLE.items() if o.group == "shift")
COMPARE = tuple(n for n, o in TABLE.items() if o.group == "compare")
OPS = frozenset(TABLE)
REDUCE_OPS = ("add", "mul", "max", "min", "and", "or", "xor")

#: the interpreter's definition of each op but cast and bitcast (see ``apply_op``)
SCALAR_OPS: dict[str, Callable[..., Any]] = {
    n: o.reference for n, o in TABLE.items() if o.reference is not None}


def kinds_for(op: str) -> str:
    """Which dtype kinds op ``op`` accepts: f float, i signed, u unsigned, b bool."""
    return TABLE[op].kinds


def check_coverage(renderer: str, implemented: Iterable[str]) -> frozenset[str]:
    """Raise unless ``implemented`` names exactly the table's ops; return them as a set."""
    implemented = frozenset(implemented)
    missing, extra = OPS - implemented, implemented - OPS
    if missing or extra:
        raise AssertionError(f"{renderer} does not match the scalar op table: missing "
                             f"{sorted(missing)}, not in the table {sorted(extra)}")
    return implemented


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
