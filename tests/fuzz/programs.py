"""Seeded random programs for the differential fuzzer, as data.

A ``Program`` is a list of input specs and a list of ``Line``s; each line binds
one new variable to one Python expression over earlier variables, written
against three names: ``fnp`` (the NumPy API), ``lax`` and ``nn``. The same text
therefore runs on fgrad (``fgrad.numpy``, ``fgrad.lax``, ``fgrad.nn``) and on
JAX (through the shims in ``tests/fuzz/jax_oracle.py``), prints as a standalone
repro, and shrinks by dropping lines. This module imports only NumPy.

    prog = generate(1234)
    print(prog.source())            # the program as Python
    f = prog.function(namespace)    # f(*inputs) -> tuple of every variable

Each line also records where its derivative is not smooth ("kinks": |x| at 0,
ties of max, a cond predicate at 0, floor at integers, ...), so the checks can
skip finite differences at points within a tolerance of one.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

FLOAT_DTYPES = ("float64", "float32")
INT_DTYPE = "int32"


@dataclasses.dataclass
class Input:
    name: str
    shape: tuple
    dtype: str
    value: np.ndarray


@dataclasses.dataclass
class Line:
    """``out = src``; ``deps`` are the variables src reads; ``kinks`` are
    ``(kind, [variable names], params)`` triples (see ``kink_distance``)."""
    out: str
    src: str
    deps: list
    shape: tuple
    dtype: str
    op: str
    kinks: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Program:
    seed: int
    fdtype: str
    mode: str  # "smooth" (finite differences apply) or "special" (0, +-1, ties, -0.0)
    inputs: list
    lines: list

    @property
    def ops(self) -> list:
        return [line.op for line in self.lines]

    def outputs(self) -> list:
        return [i.name for i in self.inputs] + [line.out for line in self.lines]

    def body(self, indent: str = "    ") -> str:
        names = ", ".join(i.name for i in self.inputs)
        outs = ", ".join(line.out for line in self.lines)
        text = [f"def f({names}):"]
        # inputs arrive as NumPy arrays: make them arrays of the library under test first
        text += [f"{indent}{i.name} = fnp.asarray({i.name})" for i in self.inputs]
        text += [f"{indent}{line.out} = {line.src}" for line in self.lines]
        text.append(f"{indent}return ({outs}{',' if len(self.lines) == 1 else ''})")
        return "\n".join(text)

    def function(self, namespace: dict) -> Callable:
        """The program as a function of its inputs returning every line's value."""
        scope = dict(namespace)
        exec(compile(self.body(), f"<fuzz program {self.seed}>", "exec"), scope)  # noqa: S102 - generated code
        return scope["f"]

    def args(self) -> list:
        return [i.value for i in self.inputs]

    def source(self, note: str = "") -> str:
        """A standalone fgrad repro: inputs as literals, the function, and the calls."""
        with np.printoptions(precision=17, floatmode="unique", threshold=10**6):
            values = "\n".join(f"{i.name} = np.array({np.array2string(i.value, separator=', ')}, "
                               f"dtype=np.{i.dtype}).reshape({i.shape})" for i in self.inputs)
        header = [f"# fuzz program seed={self.seed} mode={self.mode} ops={self.ops}"]
        header += [f"# {ln}" for ln in note.splitlines()]
        return "\n".join(header + [
            "import numpy as np", "import fgrad", "import fgrad.numpy as fnp",
            "from fgrad import lax, nn", 'fgrad.config.update("enable_x64", True)', "",
            values, "", self.body(), "",
            f"args = ({', '.join(i.name for i in self.inputs)}{',' if len(self.inputs) == 1 else ''})",
            "print('eager', f(*args))", "print('jit  ', fgrad.jit(f)(*args))", ""])

    def cut(self, name: str, value: np.ndarray) -> "Program":
        """The program with line ``name`` replaced by an input holding ``value`` (its value)."""
        line = next(ln for ln in self.lines if ln.out == name)
        value = np.asarray(value, dtype=line.dtype).reshape(line.shape)
        return dataclasses.replace(self, inputs=self.inputs + [Input(name, line.shape, line.dtype, value)],
                                   lines=[ln for ln in self.lines if ln.out != name]).without(set())

    def without(self, drop: set) -> "Program":
        """The program minus the lines named in ``drop`` and everything that reads them,
        and minus inputs nothing reads any more."""
        dead, lines = set(drop), []
        for line in self.lines:
            if line.out in dead or dead.intersection(line.deps):
                dead.add(line.out)
            else:
                lines.append(line)
        used = {d for line in lines for d in line.deps}
        inputs = [i for i in self.inputs if i.name in used] or self.inputs[:1]
        return dataclasses.replace(self, inputs=inputs, lines=lines)


# --- kinks ---------------------------------------------------------------------------------

def _gap_along(x: np.ndarray, axis) -> float:
    """Smallest difference between two entries along ``axis`` (ties of max/sort)."""
    if x.size == 0:
        return np.inf
    if axis is None:
        x, axis = x.reshape(-1), 0
    s = np.sort(x, axis=axis)
    if s.shape[axis] < 2:
        return np.inf
    return float(np.min(np.abs(np.diff(s, axis=axis)))) if np.diff(s, axis=axis).size else np.inf


def kink_distance(kind: str, vals: list, params: Any) -> float:
    """How far the values a line reads are from a point where its derivative jumps."""
    vals = [np.asarray(v, np.float64) for v in vals]
    if any(v.size == 0 for v in vals):
        return np.inf
    a = vals[0]
    with np.errstate(all="ignore"):
        if kind == "zero":
            d = np.abs(a)
        elif kind == "int":
            d = np.abs(a - np.round(a))
        elif kind == "half":
            d = np.abs(a - np.floor(a) - 0.5)
        elif kind == "eq":
            d = np.abs(a - vals[1])
        elif kind == "at":
            d = np.min([np.abs(a - c) for c in params]) if params else np.inf
        elif kind == "ratio_int":  # floor_divide / remainder: x / y at an integer
            y = vals[1] if len(vals) > 1 else np.float64(params)
            q = a / y
            # distance in input space: moving x by h moves q by h/|y|, moving y by h moves it by |q|/|y| h
            d = np.minimum(np.abs(q - np.round(q)) * np.abs(y) / (1 + np.abs(q)), np.abs(y))
        elif kind == "atan2":  # the branch cut (y == 0, x < 0) and the origin
            d = np.where(vals[1] < 0, np.abs(a), np.hypot(a, vals[1]))
        elif kind == "ties":
            return _gap_along(a, params)
        elif kind == "out_of_bounds":  # x[i]: JAX's gradient drops what an out-of-range index reads
            d = 0.0 if np.any((a < -params) | (a >= params)) else np.inf
        elif kind == "origin":  # hypot
            d = np.hypot(a, vals[1])
        elif kind == "abs_eq":  # hypot at |x| == |y|: JAX's Hessian there is its max/min formula's (docs/conventions.md)
            d = np.abs(np.abs(a) - np.abs(vals[1]))
        elif kind == "sum_zero":  # a cond predicate sum(p) > 0
            d = np.abs(np.sum(a))
        elif kind == "pairs":  # any entry of a equal to any entry of b (.at[].min/max)
            d = np.abs(a.reshape(-1, 1) - vals[1].reshape(1, -1)) if vals[1].size else np.inf
        elif kind == "never":
            return 0.0
        elif kind == "spd_eig_gap":  # eigenvalues (or singular values) of _spd(a, n): ties
            m = a @ np.swapaxes(a, -1, -2) + params * np.eye(params)
            ev = np.linalg.eigvalsh(m)
            d = np.diff(ev, axis=-1) if ev.shape[-1] > 1 else np.inf
        elif kind == "pole":  # tan
            d = np.abs(np.cos(a))
        else:
            raise ValueError(kind)
    d = np.asarray(d)
    return float(np.nanmin(d)) if d.size and not np.all(np.isnan(d)) else np.inf


# --- the generator -------------------------------------------------------------------------

class _Gen:
    def __init__(self, seed: int, max_ops: int):
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.max_ops = max_ops
        self.fdtype = "float64" if self.rng.random() < 0.75 else "float32"
        self.mode = "special" if self.rng.random() < 0.3 else "smooth"
        self.inputs: list[Input] = []
        self.lines: list[Line] = []
        self.vars: dict[str, tuple] = {}  # name -> (shape, dtype)

    # random helpers
    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def choice(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def dim(self, allow_zero=True) -> int:
        if allow_zero and self.chance(0.04):
            return 0
        return int(self.choice([1, 2, 2, 3, 3, 4]))

    def shape(self, rank=None, min_rank=0, max_rank=3, allow_zero=True) -> tuple:
        if rank is None:
            rank = int(self.rng.integers(min_rank, max_rank + 1))
        return tuple(self.dim(allow_zero) for _ in range(rank))

    def values(self, shape, dtype) -> np.ndarray:
        if dtype == INT_DTYPE:
            return self.rng.integers(-3, 4, size=shape).astype(np.int32)
        if dtype == "bool":
            return self.rng.random(shape) < 0.5
        if self.mode == "special":
            pool = np.array([0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 3.0])
            v = np.where(self.rng.random(shape) < 0.6, pool[self.rng.integers(len(pool), size=shape)],
                         self.rng.standard_normal(shape))
        else:
            v = self.rng.standard_normal(shape) * self.choice([0.5, 1.0, 1.0, 2.0])
        return np.asarray(v, dtype=dtype)

    # variables
    def new_input(self, shape, dtype=None) -> str:
        dtype = dtype or self.fdtype
        name = f"x{len(self.inputs)}"
        shape = tuple(shape)
        self.inputs.append(Input(name, shape, dtype, self.values(shape, dtype)))
        self.vars[name] = (shape, dtype)
        return name

    def pick(self, kind="float", pred=None, fresh=0.25, fresh_shape=None) -> str:
        """An existing variable of the kind (satisfying pred), or a new input."""
        cands = [n for n, (s, d) in self.vars.items()
                 if (kind == "any" or (kind == "float" and d in FLOAT_DTYPES) or d == kind)
                 and (pred is None or pred(s))]
        if cands and not self.chance(fresh):
            # prefer recent variables so programs chain
            return cands[-1] if self.chance(0.5) else self.choice(cands)
        shape = fresh_shape() if fresh_shape else self.shape()
        if pred is not None:
            for _ in range(50):
                if pred(shape):
                    break
                shape = self.shape()
            else:
                raise _Retry()
        return self.new_input(shape, self.fdtype if kind in ("float", "any") else kind)

    def shape_of(self, name) -> tuple:
        return self.vars[name][0]

    def dtype_of(self, name) -> str:
        return self.vars[name][1]

    def emit(self, op, src, deps, shape, dtype, kinks=()):
        name = f"v{len(self.lines)}"
        self.lines.append(Line(name, src, list(dict.fromkeys(deps)), tuple(shape), dtype, op, list(kinks)))
        self.vars[name] = (tuple(shape), dtype)
        return name

    def bcast_partner(self, shape) -> tuple:
        """A random shape that broadcasts with ``shape`` (to ``shape``)."""
        out = list(shape)
        if out and self.chance(0.3):
            out = out[int(self.rng.integers(0, len(out) + 1)):]
        return tuple(1 if (self.chance(0.25)) else s for s in out)

    def partner(self, a, fresh=0.5) -> str:
        sa = self.shape_of(a)
        cands = [n for n, (s, d) in self.vars.items() if d in FLOAT_DTYPES and n != a and _broadcasts(s, sa)]
        if cands and not self.chance(fresh):
            return self.choice(cands)
        return self.new_input(self.bcast_partner(sa))


class _Retry(Exception):
    pass


def _broadcasts(s, target) -> bool:
    """s broadcasts to exactly target's shape (the result has target's shape)."""
    if len(s) > len(target):
        return False
    return all(x == y or x == 1 for x, y in zip(s[::-1], target[::-1]))


def _bshape(a, b) -> tuple:
    return tuple(np.broadcast_shapes(a, b))


def _axis(g: _Gen, rank: int, allow_none=True):
    if rank == 0 or (allow_none and g.chance(0.25)):
        return None
    ax = int(g.rng.integers(rank))
    return ax - rank if g.chance(0.3) else ax


def _reduce_shape(shape, axis, keepdims):
    if axis is None:
        return tuple(1 for _ in shape) if keepdims else ()
    axes = {a % len(shape) for a in (axis if isinstance(axis, tuple) else (axis,))}
    return tuple((1 if i in axes else s) for i, s in enumerate(shape) if keepdims or i not in axes)


# --- op generators: each returns a new variable's name -------------------------------------

# (fnp name, domain wrapper, kinks): domains map a variable into where the function is defined,
# smoothly, so finite differences apply.
_POS = "({a} * {a} + 0.25)"
_GE1 = "({a} * {a} + 1.25)"
_UNIT = "(fnp.tanh({a}) * 0.9)"
UNARY = {
    "exp": (None, []), "expm1": (None, []), "exp2": (None, []), "log": (_POS, []), "log1p": (_POS, []),
    "log2": (_POS, []), "log10": (_POS, []), "sqrt": (_POS, []), "cbrt": (None, ["zero"]),
    "square": (None, []), "reciprocal": (None, ["zero"]), "sin": (None, []), "cos": (None, []),
    "tan": (None, ["pole"]), "tanh": (None, []), "sinh": (None, []), "cosh": (None, []),
    "arcsin": (_UNIT, []), "arccos": (_UNIT, []), "arctan": (None, []), "arcsinh": (None, []),
    "arccosh": (_GE1, []), "arctanh": (_UNIT, []), "abs": (None, ["zero"]), "fabs": (None, ["zero"]),
    "sign": (None, ["zero"]), "floor": (None, ["int"]), "ceil": (None, ["int"]), "trunc": (None, ["int"]),
    "rint": (None, ["half"]), "round": (None, ["half"]), "negative": (None, []), "positive": (None, []),
    "deg2rad": (None, []), "rad2deg": (None, []), "signbit": (None, ["zero"]),
    "isfinite": (None, []), "logical_not": (None, ["zero"]),
}
NN_UNARY = {"relu": ["zero"], "sigmoid": [], "silu": [], "gelu": []}


def op_unary(g: _Gen) -> str:
    name = g.choice(list(UNARY))
    domain, kinks = UNARY[name]
    a = g.pick()
    arg = domain.format(a=a) if domain and (g.mode == "smooth" or g.chance(0.7)) else a
    dtype = "bool" if name in ("signbit", "isfinite", "logical_not") else g.dtype_of(a)
    src = f"fnp.{name}({arg})"
    if dtype == "bool":
        src, dtype = f"{src}.astype(fnp.{g.fdtype})", g.fdtype
    return g.emit(name, src, [a], g.shape_of(a), dtype, [(k, [a], None) for k in kinks])


def op_nn_unary(g: _Gen) -> str:
    name = g.choice(list(NN_UNARY))
    a = g.pick()
    extra = f", approximate={g.chance(0.5)}" if name == "gelu" else ""
    return g.emit(name, f"nn.{name}({a}{extra})", [a], g.shape_of(a), g.dtype_of(a),
                  [(k, [a], None) for k in NN_UNARY[name]])


BINARY = {
    "add": [], "subtract": [], "multiply": [], "divide": ["zero1"], "power": [], "arctan2": ["atan2"],
    "hypot": ["origin", "abs_eq"], "logaddexp": [], "maximum": ["eq"], "minimum": ["eq"], "fmax": ["eq"],
    "fmin": ["eq"], "copysign": ["zero", "zero1"], "remainder": ["ratio_int"], "fmod": ["ratio_int"],
    "floor_divide": ["ratio_int"], "true_divide": ["zero1"],
}


def op_binary(g: _Gen) -> str:
    name = g.choice(list(BINARY))
    a = g.pick()
    b = g.partner(a)
    if g.chance(0.5):
        a, b = b, a
    sa, sb = g.shape_of(a), g.shape_of(b)
    x, y = a, b
    if name == "power" and (g.mode == "smooth" or g.chance(0.7)):
        x = _POS.format(a=a)
    if name in ("divide", "true_divide", "remainder", "fmod", "floor_divide") and g.mode == "smooth" and g.chance(0.5):
        y = f"({b} * {b} + 0.5)"
    if g.chance(0.1):  # a Python scalar operand (weak type)
        y, b, sb = repr(float(g.choice([0.0, 1.0, -1.0, 2.0, 0.5]))), None, ()
    deps = [a] + ([b] if b else [])
    kinks = []
    for k in BINARY[name]:
        if k == "zero":
            kinks.append(("zero", [a], None))
        elif k == "zero1" and b:
            kinks.append(("zero", [b], None))
        elif k == "origin" and b:
            kinks.append(("origin", [a, b], None))
        elif k in ("eq", "atan2", "ratio_int", "abs_eq") and b:
            kinks.append((k, [a, b], None))
        elif k == "eq":              # against a Python scalar: a tie where a equals it
            kinks.append(("at", [a], [float(y)]))
        elif k == "abs_eq":
            kinks.append(("at", [a], [float(y), -float(y)]))
        elif k == "ratio_int":
            kinks.append(("ratio_int", [a], float(y)))
        elif k == "atan2" and float(y) <= 0:   # arctan2(a, c): the cut (c < 0) or the origin (c == 0)
            kinks.append(("zero", [a], None))
    return g.emit(name, f"fnp.{name}({x}, {y})", deps, _bshape(sa, sb), g.dtype_of(a), kinks)


def op_compare_where(g: _Gen) -> str:
    a = g.pick()
    b = g.partner(a)
    cmp = g.choice(["<", ">", "<=", ">=", "==", "!="])
    out = _bshape(g.shape_of(a), g.shape_of(b))
    if g.chance(0.5):
        src = f"fnp.where({a} {cmp} {b}, {a}, {b} * 2.0)"
    else:
        src = f"({a} {cmp} {b}).astype(fnp.{g.fdtype}) * {a}"
    return g.emit("where", src, [a, b], out, g.dtype_of(a), [("eq", [a, b], None)])


def op_clip(g: _Gen) -> str:
    a = g.pick()
    lo, hi = sorted(g.rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0], 2, replace=False))
    form = g.choice(["both", "lo", "hi"])
    if form == "both":
        src, at = f"fnp.clip({a}, {lo}, {hi})", [lo, hi]
    elif form == "lo":
        src, at = f"fnp.clip({a}, {lo}, None)", [lo]
    else:
        src, at = f"fnp.clip({a}, None, {hi})", [hi]
    return g.emit("clip", src, [a], g.shape_of(a), g.dtype_of(a), [("at", [a], at)])


def op_int(g: _Gen) -> str:
    """Integer arithmetic and casts between int and float."""
    form = g.choice(["arith", "to_float", "from_float", "floordiv"])
    if form == "to_float":
        a = g.pick(INT_DTYPE, fresh=0.5)
        return g.emit("astype", f"{a}.astype(fnp.{g.fdtype}) * 0.5", [a], g.shape_of(a), g.fdtype)
    if form == "from_float":
        a = g.pick()
        return g.emit("astype", f"{a}.astype(fnp.int32)", [a], g.shape_of(a), INT_DTYPE, [("int", [a], None)])
    a = g.pick(INT_DTYPE, fresh=0.5)
    b = g.new_input(g.bcast_partner(g.shape_of(a)), INT_DTYPE)
    if form == "floordiv":
        src = g.choice([f"{a} // ({b} * {b} + 1)", f"{a} % ({b} * {b} + 1)"])
    else:
        src = g.choice([f"{a} + {b}", f"{a} * {b}", f"fnp.maximum({a}, {b})", f"fnp.minimum({a}, {b}) - {a}"])
    return g.emit("int_arith", src, [a, b], _bshape(g.shape_of(a), g.shape_of(b)), INT_DTYPE)


def op_cast32(g: _Gen) -> str:
    a = g.pick()
    other = "float32" if g.dtype_of(a) == "float64" else "float64"
    # rounding to float32 is a staircase for float64 finite differences: never smooth
    return g.emit("astype", f"{a}.astype(fnp.{other}).astype(fnp.{g.dtype_of(a)})", [a], g.shape_of(a),
                  g.dtype_of(a), [("never", [a], None)])


def op_broadcast(g: _Gen) -> str:
    a = g.pick(pred=lambda s: len(s) <= 2)
    sa = g.shape_of(a)
    target = tuple(g.dim() if s == 1 and g.chance(0.5) else s for s in sa)
    target = g.shape(int(g.rng.integers(0, 2))) + target
    return g.emit("broadcast_to", f"fnp.broadcast_to({a}, {target})", [a], target, g.dtype_of(a))


REDUCTIONS = ["sum", "mean", "prod", "max", "min", "argmax", "argmin", "cumsum", "logsumexp", "var",
              "nn_logsumexp", "softmax", "log_softmax", "ptp"]


def op_reduce(g: _Gen) -> str:
    name = g.choice(REDUCTIONS)
    a = g.pick(kind="float")
    sa = g.shape_of(a)
    rank = len(sa)
    needs_nonempty = name in ("max", "min", "argmax", "argmin", "ptp")
    if needs_nonempty and 0 in sa:
        name = "sum"
    keep = g.chance(0.3)
    kw = ", keepdims=True" if keep else ""
    if name in ("argmax", "argmin"):
        axis = _axis(g, rank)
        out = _reduce_shape(sa, axis, keep)
        src = f"fnp.{name}({a}, axis={axis}{kw}).astype(fnp.{g.fdtype})"
        return g.emit(name, src, [a], out, g.fdtype, [("ties", [a], axis)])
    if name == "cumsum":
        axis = _axis(g, rank)
        out = (int(np.prod(sa)),) if axis is None else sa
        return g.emit(name, f"fnp.cumsum({a}, axis={axis})", [a], out, g.dtype_of(a))
    if name in ("softmax", "log_softmax"):
        if rank == 0:
            name = "sum"
        else:
            axis = _axis(g, rank, allow_none=False)
            return g.emit(name, f"nn.{name}({a}, axis={axis})", [a], sa, g.dtype_of(a))
    if name == "nn_logsumexp":
        axis = _axis(g, rank)
        return g.emit(name, f"nn.logsumexp({a}, axis={axis}{kw})", [a], _reduce_shape(sa, axis, keep),
                      g.dtype_of(a))
    if name == "logsumexp":
        name = "nn_logsumexp"
    if rank >= 2 and g.chance(0.3) and name != "ptp":
        axis = tuple(sorted(g.rng.choice(rank, 2, replace=False).tolist()))
    else:
        axis = _axis(g, rank)
    out = _reduce_shape(sa, axis, keep)
    fn = "nn.logsumexp" if name == "nn_logsumexp" else f"fnp.{name}"
    kinks = [("ties", [a], axis)] if name in ("max", "min", "ptp") and not isinstance(axis, tuple) else []
    if name in ("max", "min") and isinstance(axis, tuple):
        kinks = [("ties", [a], None)]
    return g.emit(name, f"{fn}({a}, axis={axis}{kw})", [a], out, g.dtype_of(a), kinks)


def _index_entry(g: _Gen, n: int):
    """(source text, resulting length or None for a dropped axis) of one basic index."""
    form = g.choice(["int", "slice", "slice", "full"])
    if form == "int" and n > 0:
        i = int(g.rng.integers(-n, n))
        return str(i), None
    if form == "slice":
        start = int(g.rng.integers(-n - 1, n + 2))
        stop = int(g.rng.integers(-n - 1, n + 2))
        step = g.choice([1, 1, 2, -1, 3])
        return f"{start}:{stop}:{step}", len(range(n)[start:stop:step])
    return ":", n


def op_index(g: _Gen) -> str:
    a = g.pick(kind="any", pred=lambda s: len(s) >= 1)
    sa = g.shape_of(a)
    form = g.choice(["basic", "basic", "fancy", "mask", "traced"])
    if form == "fancy" and sa[0] > 0:
        idx = g.rng.integers(-sa[0], sa[0], size=int(g.rng.integers(0, 5))).tolist()
        return g.emit("fancy_index", f"{a}[np.array({idx}, dtype=np.int32)]", [a], (len(idx),) + sa[1:],
                      g.dtype_of(a))
    if form == "mask":
        mask = (g.rng.random(sa[0]) < 0.5).tolist()
        return g.emit("mask_index", f"{a}[np.array({mask}, dtype=bool)]", [a], (sum(mask),) + sa[1:],
                      g.dtype_of(a))
    if form == "traced" and sa[0] > 0:  # an integer-array index that is an input (JAX: reads clamp, gradients drop)
        i = g.new_input(g.shape(int(g.rng.integers(0, 2)), allow_zero=False), INT_DTYPE)
        g.inputs[-1].value = g.rng.integers(-sa[0] - 1, sa[0] + 2, size=g.shape_of(i)).astype(np.int32)
        return g.emit("traced_index", f"{a}[{i}]", [a, i], g.shape_of(i) + sa[1:], g.dtype_of(a),
                      [("out_of_bounds", [i], sa[0])])
    entries, out = [], []
    for n in sa[: int(g.rng.integers(1, len(sa) + 1))]:
        text, m = _index_entry(g, n)
        entries.append(text)
        if m is not None:
            out.append(m)
    out += list(sa[len(entries):])
    return g.emit("index", f"{a}[{', '.join(entries)}]", [a], tuple(out), g.dtype_of(a))


def op_concat(g: _Gen) -> str:
    a = g.pick(pred=lambda s: len(s) >= 1)
    sa = g.shape_of(a)
    axis = int(g.rng.integers(len(sa)))
    if g.chance(0.5):  # stack
        b = g.pick(pred=lambda s: s == sa, fresh=0.5)
        axis = int(g.rng.integers(len(sa) + 1))
        out = sa[:axis] + (2,) + sa[axis:]
        return g.emit("stack", f"fnp.stack([{a}, {b}], axis={axis})", [a, b], out, g.dtype_of(a))
    pieces = [a]
    for _ in range(int(g.rng.integers(1, 3))):
        n = g.dim()
        pieces.append(g.new_input(sa[:axis] + (n,) + sa[axis + 1:]))
    if g.chance(0.5):
        pieces = pieces[::-1]
    total = sum(g.shape_of(p)[axis] for p in pieces)
    out = sa[:axis] + (total,) + sa[axis + 1:]
    return g.emit("concatenate", f"fnp.concatenate([{', '.join(pieces)}], axis={axis})", pieces, out,
                  g.dtype_of(a))


def op_pad(g: _Gen) -> str:
    a = g.pick(pred=lambda s: len(s) >= 1)
    sa = g.shape_of(a)
    widths = [(int(g.rng.integers(0, 3)), int(g.rng.integers(0, 3))) for _ in sa]
    mode = g.choice(["constant", "constant", "edge", "reflect", "wrap"])
    if mode in ("reflect",) and any(s < 2 for s in sa):
        mode = "constant"
    if mode in ("edge", "wrap") and 0 in sa:
        mode = "constant"
    extra = f", constant_values={g.choice([0.0, 1.5])}" if mode == "constant" else ""
    out = tuple(s + lo + hi for s, (lo, hi) in zip(sa, widths))
    return g.emit(f"pad_{mode}", f"fnp.pad({a}, {widths}, mode={mode!r}{extra})", [a], out, g.dtype_of(a))


def op_reshape(g: _Gen) -> str:
    a = g.pick(kind="any")
    sa = g.shape_of(a)
    form = g.choice(["reshape", "transpose", "flip", "expand", "squeeze", "swap", "roll", "tile", "repeat"])
    dt = g.dtype_of(a)
    rank = len(sa)
    if form == "transpose" and rank >= 2:
        perm = tuple(int(p) for p in g.rng.permutation(rank))
        return g.emit("transpose", f"fnp.transpose({a}, {perm})", [a], tuple(sa[p] for p in perm), dt)
    if form == "flip" and rank >= 1:
        axis = _axis(g, rank)
        return g.emit("flip", f"fnp.flip({a}, axis={axis})", [a], sa, dt)
    if form == "expand":
        axis = int(g.rng.integers(0, rank + 1))
        return g.emit("expand_dims", f"fnp.expand_dims({a}, {axis})", [a], sa[:axis] + (1,) + sa[axis:], dt)
    if form == "squeeze" and 1 in sa:
        axis = sa.index(1)
        return g.emit("squeeze", f"fnp.squeeze({a}, axis={axis})", [a], sa[:axis] + sa[axis + 1:], dt)
    if form == "swap" and rank >= 2:
        i, j = (int(v) for v in g.rng.choice(rank, 2, replace=False))
        out = list(sa)
        out[i], out[j] = out[j], out[i]
        return g.emit("swapaxes", f"fnp.swapaxes({a}, {i}, {j})", [a], tuple(out), dt)
    if form == "roll" and rank >= 1:
        axis = _axis(g, rank)
        shift = int(g.rng.integers(-4, 5))
        return g.emit("roll", f"fnp.roll({a}, {shift}, axis={axis})", [a], sa, dt)
    if form == "tile" and rank <= 2:
        reps = tuple(int(g.rng.integers(1, 3)) for _ in range(max(rank, 1)))
        out = tuple(s * r for s, r in zip((1,) * (len(reps) - rank) + sa, reps))
        return g.emit("tile", f"fnp.tile({a}, {reps})", [a], out, dt)
    if form == "repeat" and rank >= 1:
        r, axis = int(g.rng.integers(1, 3)), int(g.rng.integers(rank))
        return g.emit("repeat", f"fnp.repeat({a}, {r}, axis={axis})", [a],
                      sa[:axis] + (sa[axis] * r,) + sa[axis + 1:], dt)
    size = int(np.prod(sa))
    if size == 0:
        out = (0,)
    else:
        out, rest = [], size
        for f in (2, 3, 2):
            if rest % f == 0 and g.chance(0.5):
                out.append(f)
                rest //= f
        out.append(rest)
        out = [int(v) for v in g.rng.permutation(out)]
    text = list(out)
    if size and g.chance(0.3):
        text[int(g.rng.integers(len(text)))] = -1
    return g.emit("reshape", f"fnp.reshape({a}, {tuple(text)})", [a], tuple(out), dt)


def op_contract(g: _Gen) -> str:
    form = g.choice(["dot", "matmul", "einsum", "einsum", "vdot_like"])
    k = g.dim()
    if form == "dot":
        a = g.pick(pred=lambda s: len(s) in (1, 2))
        sa = g.shape_of(a)
        k = sa[-1]
        sb = (k,) if g.chance(0.4) else (k, g.dim())
        b = g.new_input(sb)
        if g.chance(0.5):
            return g.emit("dot", f"fnp.dot({a}, {b})", [a, b], sa[:-1] + sb[1:], g.dtype_of(a))
        return g.emit("matmul", f"{a} @ {b}", [a, b], sa[:-1] + sb[1:], g.dtype_of(a))
    if form == "matmul":
        batch = g.shape(int(g.rng.integers(0, 2)))
        m, n = g.dim(), g.dim()
        a = g.new_input(batch + (m, k))
        b = g.new_input((k, n) if g.chance(0.3) else batch + (k, n))
        return g.emit("matmul", f"fnp.matmul({a}, {b})", [a, b], batch + (m, n), g.fdtype)
    if form == "vdot_like":
        a = g.pick(pred=lambda s: len(s) >= 1)
        b = g.pick(pred=lambda s, sa=g.shape_of(a): s == sa, fresh=0.5)
        return g.emit("tensordot", f"fnp.tensordot({a}, {b}, axes={len(g.shape_of(a))})", [a, b], (),
                      g.dtype_of(a))
    specs = [("ij,jk->ik", 2, 2), ("ij,ij->i", 2, 2), ("bij,bjk->bik", 3, 3), ("i,i->", 1, 1),
             ("ij->ji", 2, 0), ("ii->i", 2, 0), ("ij,k->ijk", 2, 1), ("ijk,jk->i", 3, 2), ("i,j->ij", 1, 1),
             ("bi,bi->b", 2, 2), ("ij->", 2, 0)]
    spec, ra, rb = g.choice(specs)
    lhs, out_sub = spec.split("->")
    subs = lhs.split(",")
    sizes = {c: g.dim() for c in sorted(set(spec) - set(",->"))}  # sorted: str hashes vary by process
    operands = [g.new_input(tuple(sizes[c] for c in s)) for s in subs]
    return g.emit("einsum", f"fnp.einsum({spec!r}, {', '.join(operands)})", operands,
                  tuple(sizes[c] for c in out_sub), g.fdtype)


def _conv_out(n, k, stride, pad, ldil, rdil):
    n_d = (n - 1) * ldil + 1 if n > 0 else 0
    k_d = (k - 1) * rdil + 1
    if pad == "VALID":
        lo = hi = 0
    elif pad == "SAME":
        out = -(-n_d // stride)
        total = max((out - 1) * stride + k_d - n_d, 0)
        lo, hi = total // 2, total - total // 2
    else:
        lo, hi = pad
    return max(0, (n_d + lo + hi - k_d) // stride + 1) if n_d + lo + hi >= k_d else 0


def op_conv(g: _Gen) -> str:
    nsp = g.choice([1, 2])
    groups = g.choice([1, 1, 2])
    batch = g.choice([1, 2])
    cin_g, cout_g = g.choice([1, 2]), g.choice([1, 2])
    spatial = [int(g.rng.integers(2, 6)) for _ in range(nsp)]
    ks = [int(g.rng.integers(1, 4)) for _ in range(nsp)]
    strides = [g.choice([1, 1, 2]) for _ in range(nsp)]
    ldil = [g.choice([1, 1, 1, 2]) for _ in range(nsp)]
    rdil = [g.choice([1, 1, 2]) for _ in range(nsp)]
    pad = g.choice(["VALID", "SAME", "explicit"])
    if any(v > 1 for v in ldil):  # JAX takes only explicit padding with lhs dilation
        pad = "explicit"
    pads = [(int(g.rng.integers(0, 3)), int(g.rng.integers(0, 3))) for _ in range(nsp)] if pad == "explicit" else pad
    lhs = g.new_input((batch, cin_g * groups, *spatial))
    rhs = g.new_input((cout_g * groups, cin_g, *ks))
    out_sp = [_conv_out(n, k, s, pads if isinstance(pads, str) else pads[i], l, r)
              for i, (n, k, s, l, r) in enumerate(zip(spatial, ks, strides, ldil, rdil))]
    dn = ("NCH", "OIH", "NCH") if nsp == 1 else ("NCHW", "OIHW", "NCHW")
    src = (f"lax.conv_general_dilated({lhs}, {rhs}, {tuple(strides)}, {pads!r}, lhs_dilation={tuple(ldil)}, "
           f"rhs_dilation={tuple(rdil)}, dimension_numbers={dn}, feature_group_count={groups})")
    op = "conv_grouped" if groups > 1 else "conv"
    return g.emit(op, src, [lhs, rhs], (batch, cout_g * groups, *out_sp), g.fdtype)


def op_window(g: _Gen) -> str:
    if g.chance(0.4):
        name = g.choice(["max_pool2d", "avg_pool2d"])
        x = g.new_input((g.choice([1, 2]), g.choice([1, 2]), int(g.rng.integers(2, 6)), int(g.rng.integers(2, 6))))
        k = g.choice([1, 2, 2, 3])
        stride = g.choice([None, 1, 2])
        pad = g.choice([0, 0, 1]) if k > 1 else 0
        s = stride or k
        sx = g.shape_of(x)
        out = sx[:2] + tuple((n + 2 * pad - k) // s + 1 for n in sx[2:])
        if any(o <= 0 for o in out):
            raise _Retry()
        kinks = [("ties", [x], None)] if name == "max_pool2d" else []
        return g.emit(name, f"nn.{name}({x}, {k}, stride={stride}, padding={pad})", [x], out, g.fdtype, kinks)
    comp = g.choice(["max", "sum", "min"])
    a = g.pick(pred=lambda s: 1 <= len(s) <= 3 and 0 not in s)
    sa = g.shape_of(a)
    win = tuple(int(g.rng.integers(1, min(n, 3) + 1)) for n in sa)
    strides = tuple(g.choice([1, 1, 2]) for _ in sa)
    wdil = tuple(g.choice([1, 1, 2]) for _ in sa)
    pad = g.choice(["VALID", "SAME", "explicit"])
    pads = tuple((int(g.rng.integers(0, 2)), int(g.rng.integers(0, 2))) for _ in sa) if pad == "explicit" else pad
    out = tuple(_conv_out(n, k, s, pads if isinstance(pads, str) else pads[i], 1, d)
                for i, (n, k, s, d) in enumerate(zip(sa, win, strides, wdil)))
    src = (f"lax.reduce_window({a}, {comp!r}, {win}, {strides}, {pads!r}, window_dilation={wdil})")
    return g.emit(f"reduce_window_{comp}", src, [a], out, g.dtype_of(a),
                  [("ties", [a], None)] if comp != "sum" else [])


def op_dynamic_slice(g: _Gen) -> str:
    a = g.pick(pred=lambda s: len(s) >= 1)
    sa = g.shape_of(a)
    sizes = tuple(int(g.rng.integers(0, n + 1)) for n in sa)
    starts = [int(g.rng.integers(-n - 2, n + 3)) for n in sa]
    deps = [a]
    if g.chance(0.4):  # a traced start
        s = g.new_input((), INT_DTYPE)
        g.inputs[-1].value = np.asarray(starts[0], np.int32)
        starts_src = [s] + [f"np.int32({v})" for v in starts[1:]]  # JAX wants one index dtype
        deps.append(s)
    else:
        starts_src = [str(v) for v in starts]
    starts_text = "(" + ", ".join(starts_src) + ("," if len(starts_src) == 1 else "") + ")"
    neg = any(v < 0 for v in starts)
    if g.chance(0.5):
        op = "dynamic_slice" + ("_neg" if neg else "")
        return g.emit(op, f"lax.dynamic_slice({a}, {starts_text}, {sizes})", deps, sizes, g.dtype_of(a))
    u = g.new_input(sizes)
    op = "dynamic_update_slice" + ("_neg" if neg else "")
    return g.emit(op, f"lax.dynamic_update_slice({a}, {u}, {starts_text})", deps + [u], sa, g.dtype_of(a))


def op_at(g: _Gen) -> str:
    a = g.pick(pred=lambda s: len(s) >= 1 and s[0] > 0)
    sa = g.shape_of(a)
    method = g.choice(["set", "add", "multiply", "min", "max"])
    form = g.choice(["int", "slice", "array"])
    if form == "int":
        idx, n = str(int(g.rng.integers(-sa[0], sa[0]))), None
    elif form == "slice":
        start, stop = sorted(int(v) for v in g.rng.integers(0, sa[0] + 1, 2))
        idx, n = f"{start}:{stop}", stop - start
    else:
        count = int(g.rng.integers(1, 4))
        vals = g.rng.choice(sa[0], count, replace=method == "set" and count > sa[0] or method != "set")
        vals = vals.tolist() if method != "set" else sorted(set(vals.tolist()))
        idx, n = f"np.array({vals}, dtype=np.int32)", len(vals)
    upd_shape = sa[1:] if n is None else (n,) + sa[1:]
    if g.chance(0.2):
        upd, deps = repr(float(g.choice([0.5, -1.0, 2.0]))), [a]
    else:
        u = g.new_input(upd_shape[int(g.rng.integers(0, len(upd_shape) + 1)):] if g.chance(0.3) else upd_shape)
        upd, deps = u, [a, u]
    kinks = []
    if method in ("min", "max"):
        kinks.append(("pairs", [a, deps[1]], None) if len(deps) > 1 else ("at", [a], [float(upd)]))
        if form == "array":  # duplicate indices: ties among the updates
            kinks.append(("ties", [deps[1]], None) if len(deps) > 1 else ("at", [a], []))
    return g.emit(f"at_{method}", f"{a}.at[{idx}].{method}({upd})", deps, sa, g.dtype_of(a), kinks)


def op_sort(g: _Gen) -> str:
    a = g.pick(pred=lambda s: len(s) >= 1)
    sa = g.shape_of(a)
    axis = int(g.rng.integers(-len(sa), len(sa)))
    if g.chance(0.35):
        return g.emit("argsort", f"fnp.argsort({a}, axis={axis}).astype(fnp.{g.fdtype})", [a], sa, g.fdtype,
                      [("ties", [a], axis)])
    return g.emit("sort", f"fnp.sort({a}, axis={axis})", [a], sa, g.dtype_of(a), [("ties", [a], axis)])


BODIES = ["fnp.sin({c}) * 0.5 + {c}", "{c} * {c} * 0.25 + 0.1", "fnp.tanh({c} + 1.0)", "fnp.exp(-{c} * {c})",
          "{c} * 0.9 - 0.2"]


def op_control(g: _Gen) -> str:
    form = g.choice(["cond", "scan", "fori", "while", "switch"])
    body = lambda v: g.choice(BODIES).format(c=v)  # noqa: E731
    if form == "cond":
        a = g.pick()
        p = g.pick()
        src = f"lax.cond(fnp.sum({p}) > 0.0, lambda c: {body('c')}, lambda c: {body('c')}, {a})"
        return g.emit("cond", src, [a, p], g.shape_of(a), g.dtype_of(a), [("sum_zero", [p], None)])
    if form == "switch":
        a = g.pick()
        i = g.new_input((), INT_DTYPE)
        g.inputs[-1].value = np.asarray(int(g.rng.integers(-1, 4)), np.int32)
        src = f"lax.switch({i}, [lambda c: {body('c')}, lambda c: {body('c')}, lambda c: {body('c')}], {a})"
        return g.emit("switch", src, [a, i], g.shape_of(a), g.dtype_of(a))
    if form == "scan":
        xs = g.pick(pred=lambda s: len(s) >= 1)
        sx = g.shape_of(xs)
        rev = g.chance(0.3)
        src = (f"lax.scan(lambda c, x: ({body('c')} + x, c * x), fnp.zeros({sx[1:]}, fnp.{g.fdtype}), "
               f"{xs}, reverse={rev})[{g.choice([0, 1])}]")
        idx = int(src[-2])
        return g.emit("scan", src, [xs], sx[1:] if idx == 0 else sx, g.dtype_of(xs))
    if form == "fori":
        a = g.pick()
        n = int(g.rng.integers(0, 4))
        src = f"lax.fori_loop(0, {n}, lambda i, c: {body('c')} + i * 0.1, {a})"
        return g.emit("fori_loop", src, [a], g.shape_of(a), g.dtype_of(a))
    a = g.pick()
    n = int(g.rng.integers(0, 4))
    src = f"lax.while_loop(lambda s: s[0] < {n}, lambda s: (s[0] + 1, {body('s[1]')}), (0, {a}))[1]"
    return g.emit("while_loop", src, [a], g.shape_of(a), g.dtype_of(a))


def op_one_hot(g: _Gen) -> str:
    i = g.pick(INT_DTYPE, pred=lambda s: len(s) <= 2, fresh=0.5)
    n = int(g.rng.integers(1, 5))
    return g.emit("one_hot", f"nn.one_hot({i}, {n}, dtype=fnp.{g.fdtype})", [i], g.shape_of(i) + (n,), g.fdtype)


# --- extended groups: linear algebra, scans along an axis, special functions -----------------
# Not in the default mix (their weight there is 0, so the seeds' programs above stay as they
# were); ``generate(..., extended=True)`` draws them too (tests/fuzz/test_fuzz.py's extended set).

def _spd(a: str, n: int) -> str:
    """A well-conditioned symmetric positive definite matrix made from ``a`` (..., n, n)."""
    return f"({a} @ fnp.swapaxes({a}, -1, -2) + {float(n)} * fnp.eye({n}, dtype={a}.dtype))"


def _invertible(a: str, n: int) -> str:
    """A well-conditioned matrix made from ``a``: 2 I plus a small multiple of it."""
    return f"({a} * 0.1 + 2.0 * fnp.eye({n}, dtype={a}.dtype))"


def op_linalg(g: _Gen) -> str:
    n = int(g.choice([1, 2, 3, 4]))
    batch = (int(g.choice([1, 2, 3])),) if g.chance(0.3) else ()
    a = g.pick(pred=lambda s: len(s) >= 2 and s[-1] == s[-2] == n and 0 not in s, fresh=0.5,
               fresh_shape=lambda: batch + (n, n))
    sa = g.shape_of(a)
    lead, dt = sa[:-2], g.dtype_of(a)
    form = g.choice(["cholesky", "eigvalsh", "eigh_vectors", "slogdet", "det", "inv", "solve", "solve_matrix",
                     "matrix_power", "qr", "svdvals", "norm", "pinv", "triangular_solve", "trace"])
    spd, inv = _spd(a, n), _invertible(a, n)
    gap = [("spd_eig_gap", [a], n)]
    if form == "cholesky":
        return g.emit(form, f"fnp.linalg.cholesky({spd})", [a], sa, dt)
    if form == "eigvalsh":
        return g.emit(form, f"fnp.linalg.eigvalsh({spd})", [a], sa[:-1], dt, gap)
    if form == "eigh_vectors":       # squared entries: the same whatever sign each vector has
        return g.emit(form, f"fnp.linalg.eigh({spd})[1] ** 2", [a], sa, dt, gap)
    if form == "slogdet":
        return g.emit(form, f"fnp.linalg.slogdet({inv})[1]", [a], lead, dt)
    if form == "det":
        return g.emit(form, f"fnp.linalg.det({inv})", [a], lead, dt)
    if form == "inv":
        return g.emit(form, f"fnp.linalg.inv({inv})", [a], sa, dt)
    if form in ("solve", "solve_matrix"):
        k = (int(g.choice([1, 2, 3])),) if form == "solve_matrix" else ()
        b = g.new_input(lead + (n,) + k if k or not lead else lead + (n, 1))
        out = g.shape_of(b)
        return g.emit("solve", f"fnp.linalg.solve({spd if g.chance(0.5) else inv}, {b})", [a, b], out, dt)
    if form == "matrix_power":
        k = int(g.choice([-2, -1, 0, 2, 3]))
        return g.emit(form, f"fnp.linalg.matrix_power({inv}, {k})", [a], sa, dt)
    if form == "qr":                 # R of a well-conditioned matrix: its diagonal stays away from 0
        return g.emit(form, f"fnp.linalg.qr({inv})[1]", [a], sa, dt)
    if form == "svdvals":
        return g.emit(form, f"fnp.linalg.svd({spd}, compute_uv=False)", [a], sa[:-1], dt, gap)
    if form == "norm":
        order = g.choice(["None", "'fro'", "'nuc'", "2", "1", "-1", "np.inf"])
        kinks = [("zero", [a], None)] if order in ("None", "'fro'") else [("never", [a], None)]
        m = a if order in ("None", "'fro'") else spd
        return g.emit(form, f"fnp.linalg.norm({m}, ord={order}, axis=(-2, -1))", [a], lead, dt, kinks)
    if form == "pinv":
        return g.emit(form, f"fnp.linalg.pinv({spd})", [a], sa, dt)
    if form == "triangular_solve":
        b = g.new_input(lead + (n, int(g.choice([1, 2]))))
        lower = g.chance(0.5)
        tri = f"fnp.{'tril' if lower else 'triu'}({inv})"
        src = f"lax.linalg.triangular_solve({tri}, {b}, left_side=True, lower={lower})"
        return g.emit(form, src, [a, b], g.shape_of(b), dt)
    return g.emit(form, f"fnp.trace({a}, axis1=-2, axis2=-1)", [a], lead, dt)


def op_cumulative(g: _Gen) -> str:
    a = g.pick(pred=lambda s: len(s) >= 1)
    sa, dt = g.shape_of(a), g.dtype_of(a)
    axis = int(g.rng.integers(len(sa)))
    form = g.choice(["cumsum", "cumprod", "cummax", "cummin", "cumlogsumexp", "diff", "flip", "roll"])
    if form.startswith("cum"):
        if form in ("cumsum", "cumprod") and g.chance(0.7):
            src = f"fnp.{form}({a}, axis={axis})"
        else:
            src = f"lax.{form}({a}, axis={axis}, reverse={g.chance(0.3)})"
        kinks = [("ties", [a], axis)] if form in ("cummax", "cummin") else []
        return g.emit(form, src, [a], sa, dt, kinks)
    if form == "diff":
        n = int(g.choice([1, 2]))
        out = tuple(max(s - n, 0) if i == axis else s for i, s in enumerate(sa))
        return g.emit(form, f"fnp.diff({a}, n={n}, axis={axis})", [a], out, dt)
    if form == "flip":
        return g.emit(form, f"fnp.flip({a}, axis={axis})", [a], sa, dt)
    return g.emit(form, f"fnp.roll({a}, {int(g.rng.integers(-3, 4))}, axis={axis})", [a], sa, dt)


#: special functions: name -> (source template, kinks)
SPECIAL = {
    "lgamma": ("lax.lgamma({pos})", []), "digamma": ("lax.digamma({pos})", []),
    "erf": ("lax.erf({a})", []), "erfc": ("lax.erfc({a})", []), "erf_inv": ("lax.erf_inv({unit})", []),
    "bessel_i0e": ("lax.bessel_i0e({a})", [("zero", None)]), "bessel_i1e": ("lax.bessel_i1e({a})", [("zero", None)]),
    # JAX differentiates igamma in a only once, betainc in x only: there a and b are constants
    # (stop_gradient would do, but then finite differences would disagree)
    "igamma": ("lax.igamma(fnp.full_like({a}, {c}), {pos})", []),
    "igammac": ("lax.igammac(fnp.full_like({a}, {c}), {pos})", []),
    "igamma_a": ("lax.igamma({pos}, fnp.full_like({a}, {c}))", []),
    "polygamma": ("lax.polygamma(fnp.ones_like({a}), {pos})", []),
    "zeta": ("lax.zeta({pos} + 1.5, {pos2})", []),
    "betainc": ("lax.betainc(fnp.full_like({a}, {c}), fnp.full_like({a}, {c2}), fnp.tanh({a}) * 0.45 + 0.5)", []),
    "logistic": ("lax.logistic({a})", []), "sinc": ("fnp.sinc({a})", []),
    "xlogy": ("fnp.where({a} > 0, {a}, 1.0) * fnp.log({pos2})", []),
}


def op_special(g: _Gen) -> str:
    name = g.choice(list(SPECIAL))
    template, kinks = SPECIAL[name]
    a = g.pick()
    sa = g.shape_of(a)
    b = None
    if "{pos2}" in template:        # lax's functions take operands of one shape and dtype
        b = g.pick(pred=lambda s: s == sa, fresh=0.7) if g.dtype_of(a) == g.fdtype else None
        b = b if b is not None and g.dtype_of(b) == g.dtype_of(a) else g.new_input(sa, g.dtype_of(a))
    out = sa
    c, c2 = (float(g.choice([0.5, 1.0, 1.5, 3.0])) for _ in range(2))
    src = template.format(a=a, pos=_POS.format(a=a), unit=_UNIT.format(a=a),
                          pos2=_POS.format(a=b) if b else "", c=c, c2=c2)
    if name == "xlogy":
        kinks = [("zero", [a], None)]
    else:
        kinks = [(k, [a], None) for k, _ in kinks]
    return g.emit(name, src, [a] + ([b] if b else []), out, g.dtype_of(a), kinks)


def op_fft(g: _Gen) -> str:
    """A transform and back to reals (the real part, imaginary part, or an inverse)."""
    a = g.pick(pred=lambda s: len(s) >= 1 and s[-1] >= 1)
    sa, dt = g.shape_of(a), g.dtype_of(a)
    form = g.choice(["fft_real", "fft_imag", "rfft_real", "irfft", "ifft_real", "fft2_imag", "hfft_roundtrip"])
    norm = g.choice(["None", "'ortho'", "'forward'", "'backward'"])
    n = sa[-1]
    if form == "fft_real":
        return g.emit(form, f"fnp.real(fnp.fft.fft({a}, norm={norm}))", [a], sa, dt)
    if form == "fft_imag":
        return g.emit(form, f"fnp.imag(fnp.fft.fft({a}, n={n + 1}, norm={norm}))", [a], sa[:-1] + (n + 1,), dt)
    if form == "rfft_real":
        return g.emit(form, f"fnp.real(fnp.fft.rfft({a}, norm={norm}))", [a], sa[:-1] + (n // 2 + 1,), dt)
    if form == "irfft":
        m = 2 * (n - 1) if n > 1 else 1
        return g.emit(form, f"fnp.fft.irfft({a} + 0j, n={m}, norm={norm})", [a], sa[:-1] + (m,), dt)
    if form == "ifft_real":
        return g.emit(form, f"fnp.real(fnp.fft.ifft({a}, norm={norm}))", [a], sa, dt)
    if form == "fft2_imag" and len(sa) >= 2:
        return g.emit(form, f"fnp.imag(fnp.fft.fft2({a}, norm={norm}))", [a], sa, dt)
    return g.emit("rfft_irfft", f"fnp.fft.irfft(fnp.fft.rfft({a}, norm={norm}), n={n}, norm={norm})", [a], sa, dt)


def op_gather(g: _Gen) -> str:
    """take / take_along_axis with every index mode, and searchsorted (indices as floats)."""
    a = g.pick(pred=lambda s: len(s) >= 1 and s[0] >= 1)
    sa, dt = g.shape_of(a), g.dtype_of(a)
    axis = int(g.choice([i for i, n in enumerate(sa) if n]))     # taking from an empty axis raises
    form = g.choice(["take", "take", "take_along_axis", "searchsorted"])
    if form == "take":
        m = int(g.choice([1, 2, 3, 4]))
        idx = g.new_input((m,), INT_DTYPE)
        mode = g.choice(["'clip'", "'wrap'", "'fill'", "None"])
        out = sa[:axis] + (m,) + sa[axis + 1:]
        kinks = [("out_of_bounds", [idx], sa[axis])] if mode in ("'fill'", "None") else []
        return g.emit("take", f"fnp.take({a}, {idx}, axis={axis}, mode={mode})", [a, idx], out, dt, kinks)
    if form == "take_along_axis":
        m = int(g.choice([1, 2, 3]))
        shape = sa[:axis] + (m,) + sa[axis + 1:]
        idx = g.new_input(shape, INT_DTYPE)
        src = f"fnp.take_along_axis({a}, fnp.clip({idx}, -{sa[axis]}, {sa[axis] - 1}), axis={axis})"
        return g.emit("take_along_axis", src, [a, idx], shape, dt)
    v = g.pick(fresh=0.6)
    side = g.choice(["'left'", "'right'"])
    src = f"fnp.searchsorted(fnp.sort(fnp.ravel({a})), {v}, side={side}).astype(fnp.{dt}) * {v}"
    return g.emit("searchsorted", src, [a, v], g.shape_of(v), dt, [("never", [a], None)])


EXTENDED = {"linalg": (op_linalg, 4.0), "cumulative": (op_cumulative, 2.0), "special": (op_special, 3.0),
            "fft": (op_fft, 2.0), "gather": (op_gather, 2.0)}


OPS: dict[str, tuple[Callable, float]] = {
    "unary": (op_unary, 4.0), "nn_unary": (op_nn_unary, 1.0), "binary": (op_binary, 4.0),
    "where": (op_compare_where, 1.0), "clip": (op_clip, 0.7), "int": (op_int, 0.7), "cast": (op_cast32, 0.3),
    "broadcast": (op_broadcast, 0.6), "reduce": (op_reduce, 3.0), "index": (op_index, 1.5),
    "concat": (op_concat, 1.0), "pad": (op_pad, 0.6), "reshape": (op_reshape, 1.5),
    "contract": (op_contract, 1.5), "conv": (op_conv, 0.8), "window": (op_window, 0.8),
    "dynamic_slice": (op_dynamic_slice, 1.0), "at": (op_at, 1.2), "sort": (op_sort, 0.6),
    "control": (op_control, 1.5), "one_hot": (op_one_hot, 0.3),
}


def generate(seed: int, max_ops: int = 5, only: str | None = None, extended: bool = False) -> Program:
    """The random program of ``seed``: 1..max_ops lines (``only`` forces one op group for all lines;
    ``extended`` also draws the ``EXTENDED`` groups)."""
    g = _Gen(seed, max_ops)
    groups = {**OPS, **EXTENDED} if extended or only in EXTENDED else OPS
    names = list(groups)
    weights = np.array([groups[n][1] for n in names])
    n_ops = int(g.rng.integers(1, max_ops + 1))
    tries = 0
    while len(g.lines) < n_ops and tries < 50:
        tries += 1
        group = only or names[int(g.rng.choice(len(names), p=weights / weights.sum()))]
        snapshot = (list(g.inputs), dict(g.vars))
        try:
            groups[group][0](g)
        except _Retry:
            g.inputs, g.vars = snapshot
    if not g.inputs:
        g.new_input(())
    return Program(seed, g.fdtype, g.mode, g.inputs, g.lines)
