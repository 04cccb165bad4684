"""Value ranges of a kernel's index arithmetic, for renderers that can use narrower types.

The kernel IR computes indices in int64 (``INDEX``). A GPU does 64-bit integer arithmetic
in several 32-bit instructions, and the index math of a convolution's inner loop is most
of its instructions; PyTorch and XLA index in 32 bits whenever the sizes allow for the
same reason. ``IndexRanges(kernel)`` bounds every int64 value the kernel computes from
its loop bounds (interval arithmetic over the IR's exact op semantics), so that

* ``fits_int32``: every int64 value, and every loop counter's overshoot when a loop is
  strided over up to ``max_threads`` threads, lies in int32: the kernel may be rendered
  with 32-bit indices and give the same results;
* ``plain_division(op)``: a ``floordiv``/``mod`` (or ``div``/``rem``) whose numerator is
  never negative and whose divisor is always positive can be C's ``/``/``%`` (floor and
  truncation agree there, and there is no division by zero).

Values loaded from memory, float-to-int casts and bit tricks are unbounded: a kernel that
builds an index from them keeps 64-bit indices.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from fgrad.lower.kernel import (
    INDEX, Const, Expr, If, Kernel, Load, LocalLoad, Op, Range, stmt_exprs,
)

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
Interval = Optional[tuple]      # (lo, hi) inclusive, or None: unbounded

_KNOWN_WIDTH = {np.dtype(np.int32): (INT32_MIN, INT32_MAX), np.dtype(np.uint8): (0, 255),
                np.dtype(np.bool_): (0, 1), np.dtype(np.uint32): (0, (1 << 32) - 1),
                np.dtype(np.int8): (-128, 127), np.dtype(np.int16): (-(1 << 15), (1 << 15) - 1),
                np.dtype(np.uint16): (0, (1 << 16) - 1)}


class IndexRanges:
    """Interval bounds of every int64 expression of ``kernel`` (see the module docstring).

    ``max_threads``: how many threads may stride over one loop (the renderer's grid-stride
    and block-stride loops step past the stop by up to that many iterations)."""

    def __init__(self, kernel: Kernel, max_threads: int) -> None:
        self.max_threads = max_threads
        self.fits_int32 = True
        self._vars: dict[str, tuple] = {}
        self._memo: dict[int, Interval] = {}
        self._plain: set[int] = set()
        self._not_plain: set[int] = set()
        self._block(kernel.body)

    def plain_division(self, e: Expr) -> bool:
        """Whether integer division/modulo ``e`` always has a numerator >= 0 and a divisor > 0."""
        return id(e) in self._plain and id(e) not in self._not_plain

    def interval_where(self, e: Expr, loops: dict[str, tuple]) -> Interval:
        """Bounds of ``e`` when loop variable ``name`` runs over ``loops[name]`` (lo, hi inclusive)."""
        saved = dict(self._vars)
        self._vars = dict(loops)
        self._memo.clear()
        try:
            return self.interval(e)
        finally:
            self._vars = saved
            self._memo.clear()

    # -- statements
    def _block(self, stmts: tuple) -> None:
        for s in stmts:
            if isinstance(s, Range):
                self._range(s)
            elif isinstance(s, If):
                self.interval(s.cond)
                self._block(s.then)
                self._block(s.else_)
            else:
                for e in stmt_exprs(s):
                    self.interval(e)

    def _range(self, r: Range) -> None:
        start, stop = self.interval(r.start), self.interval(r.stop)
        if start is None or stop is None:
            self.fits_int32 = False
            var = None
        else:
            self._need_int32(stop[1] + self.max_threads * r.step)
            var = (start[0], max(start[0], stop[1] - 1))
        saved = self._vars.get(r.var.name)
        self._set_var(r.var.name, var)
        self._block(r.body)
        self._set_var(r.var.name, saved)

    def _set_var(self, name: str, bounds: Interval) -> None:
        self._memo.clear()          # expressions mentioning the name meant another loop before
        if bounds is None:
            self._vars.pop(name, None)
        else:
            self._vars[name] = bounds

    def _need_int32(self, value: int) -> None:
        if not INT32_MIN <= value <= INT32_MAX:
            self.fits_int32 = False

    # -- expressions
    def interval(self, e: Expr) -> Interval:
        """Bounds of integer expression ``e`` in the current loop scope (None: unbounded)."""
        key = id(e)
        if key in self._memo:
            return self._memo[key]
        args = [self.interval(a) for a in e.children()]
        bounds = self._bounds(e, args)
        if e.dtype == INDEX:
            if bounds is None:
                self.fits_int32 = False
            else:
                self._need_int32(bounds[0])
                self._need_int32(bounds[1])
        self._memo[key] = bounds
        return bounds

    def _bounds(self, e: Expr, args: list) -> Interval:
        if e.dtype.kind not in "iub":
            return None
        if isinstance(e, Const):
            return (int(e.value), int(e.value))
        if isinstance(e, (Load, LocalLoad)):
            return _KNOWN_WIDTH.get(e.dtype)
        if not isinstance(e, Op):
            return self._vars.get(getattr(e, "name", None))
        if e.op == "cast":
            src = e.args[0].dtype
            if src.kind not in "iub":
                return None
            inner = args[0] if args[0] is not None else _KNOWN_WIDTH.get(src)
            return inner if inner is not None and _fits(inner, e.dtype) else _KNOWN_WIDTH.get(e.dtype)
        if e.op in ("floordiv", "mod", "div", "rem"):
            self._note_division(e, args)
        if e.dtype == np.bool_:
            return (0, 1)
        if any(a is None for a in (args[1:] if e.op == "select" else args)):
            return _KNOWN_WIDTH.get(e.dtype)
        rule = _RULES.get(e.op)
        result = rule(*args) if rule is not None else None
        if result is None or not _fits(result, e.dtype):
            return _KNOWN_WIDTH.get(e.dtype)
        return result

    def _note_division(self, e: Op, args: list) -> None:
        num, den = args
        if num is not None and den is not None and num[0] >= 0 and den[0] > 0:
            self._plain.add(id(e))
        else:
            self._not_plain.add(id(e))


def _fits(bounds: tuple, dtype: np.dtype) -> bool:
    if dtype == INDEX:
        return -(1 << 63) <= bounds[0] and bounds[1] < (1 << 63)
    known = _KNOWN_WIDTH.get(dtype)
    return known is not None and known[0] <= bounds[0] and bounds[1] <= known[1]


def _span(*values: int) -> tuple:
    return (min(values), max(values))


def _mul(a, b):
    return _span(a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1])


def _floordiv(a, b):
    if b[0] <= 0 <= b[1]:
        return None
    return _span(a[0] // b[0], a[0] // b[1], a[1] // b[0], a[1] // b[1])


def _truncdiv(a, b):
    if b[0] <= 0 <= b[1]:
        return None

    def tdiv(x: int, y: int) -> int:
        q = abs(x) // abs(y)
        return q if (x >= 0) == (y > 0) else -q
    return _span(*(tdiv(x, y) for x in a for y in b))


def _mod(a, b):           # floor mod: the divisor's sign
    if b[0] > 0:
        return a if 0 <= a[0] and a[1] < b[0] else (0, b[1] - 1)
    return None


def _rem(a, b):           # truncated remainder: the numerator's sign
    if b[0] > 0:
        if a[0] >= 0:
            return (a[0], a[1]) if a[1] < b[0] else (0, min(a[1], b[1] - 1))
        return (-(b[1] - 1), b[1] - 1)
    return None


def _and(a, b):
    if a[0] >= 0 and b[0] >= 0:
        return (0, min(a[1], b[1]))
    return None


_RULES = {
    "add": lambda a, b: (a[0] + b[0], a[1] + b[1]),
    "sub": lambda a, b: (a[0] - b[1], a[1] - b[0]),
    "mul": _mul,
    "neg": lambda a: (-a[1], -a[0]),
    "abs": lambda a: (0 if a[0] <= 0 <= a[1] else min(abs(a[0]), abs(a[1])), max(abs(a[0]), abs(a[1]))),
    "sign": lambda a: (-1 if a[0] < 0 else 0 if a[0] == 0 else 1, 1 if a[1] > 0 else 0 if a[1] == 0 else -1),
    "max": lambda a, b: (max(a[0], b[0]), max(a[1], b[1])),
    "min": lambda a, b: (min(a[0], b[0]), min(a[1], b[1])),
    "select": lambda c, a, b: (min(a[0], b[0]), max(a[1], b[1])),
    "floordiv": _floordiv, "div": _truncdiv, "mod": _mod, "rem": _rem, "and": _and,
    "fma": lambda a, b, c: (_mul(a, b)[0] + c[0], _mul(a, b)[1] + c[1]),
}
