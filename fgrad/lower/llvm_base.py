"""The LLVM renderer's ground floor: the target, LLVM types of IR dtypes, rendered values
(``Val``), the module context (names, intrinsics) and small IR helpers."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

from fgrad.lower import llvm_ir as ir
import numpy as np

from fgrad.lower.kernel import bool_, float16, float32, float64


I64 = ir.IntType(64)
I32 = ir.IntType(32)
I8 = ir.IntType(8)
I1 = ir.IntType(1)
PTR = ir.PointerType()
VOID = ir.VoidType()
PARALLEL_MIN_WORK = 1 << 14      # estimated scalar ops per chunk of a parallel loop, at least
CHUNKS_PER_THREAD = 4            # so a thread slowed down by other jobs holds up little work
ENTRY = "fgrad_main"


@dataclass(frozen=True)
class Target:
    """What code is generated for: LLVM triple, CPU name and features, SIMD width, threads."""

    triple: str
    cpu: str
    features: str
    vector_bytes: int
    num_threads: int = 1

    def key(self) -> str:
        return f"{self.triple}|{self.cpu}|{self.features}|{self.vector_bytes}|{self.num_threads}"


def vector_bytes_for(features: str) -> int:
    """The widest SIMD register, in bytes, that a feature string (``+avx2,...``) offers."""
    flags = set(features.split(","))
    if "+avx512f" in flags:
        return 64
    if "+avx" in flags or "+avx2" in flags:
        return 32
    return 16


def value_type(dtype: np.dtype) -> ir.Type:
    """The LLVM register type of a dtype (bool is i1)."""
    if dtype == bool_:
        return I1
    if dtype == float32:
        return ir.FloatType()
    if dtype == float16:
        return ir.HalfType()
    if dtype == float64:
        return ir.DoubleType()
    return ir.IntType(dtype.itemsize * 8)


def memory_type(dtype: np.dtype) -> ir.Type:
    """The LLVM in-memory type of a dtype (bool is one byte)."""
    return I8 if dtype == bool_ else value_type(dtype)


def type_bytes(t: ir.Type) -> int:
    """Size of a scalar LLVM type in bytes (i1 counts as one)."""
    if isinstance(t, ir.FloatType):
        return 4
    if isinstance(t, ir.HalfType):
        return 2
    if isinstance(t, ir.DoubleType):
        return 8
    return max(t.width // 8, 1)


def _mangle(t: ir.Type) -> str:
    if isinstance(t, ir.VectorType):
        return f"v{t.count}{_mangle(t.element)}"
    if isinstance(t, ir.FloatType):
        return "f32"
    if isinstance(t, ir.HalfType):
        return "f16"
    if isinstance(t, ir.DoubleType):
        return "f64"
    if isinstance(t, ir.PointerType):
        return "p0"
    return f"i{t.width}"


class Unsupported(Exception):
    """The vector/register form cannot express something; re-render without that hint."""

    def __init__(self, kind: str, key: object, reason: str) -> None:
        super().__init__(reason)
        self.kind, self.key, self.reason = kind, key, reason


# --- rendered values --------------------------------------------------------------------

MAX_DEINTERLEAVE_STRIDE = 4     # strided lanes up to this stride load contiguously + shuffle


class Val:
    """A rendered expression: uniform scalar ('u'), per-lane vector ('v') or affine integer ('a').

    ``align``: for 'a', a known divisor of the base (0: unknown). ``pattern``: for an integer
    'v', an optional ``(base, stride, div)`` saying lane k is ``base + stride * (k // div)``
    (what ``(i // 2) * 2`` makes of a loop index): loads at such indices need only
    ``w / div`` distinct elements, fetched contiguously and shuffled rather than gathered.
    Both are hints; the value itself is always complete."""

    __slots__ = ("kind", "value", "stride", "align", "pattern")

    def __init__(self, kind: str, value: ir.Value, stride: int = 0, align: int = 0,
                 pattern: tuple | None = None) -> None:
        self.kind, self.value, self.stride = kind, value, stride
        self.align, self.pattern = align, pattern

    @property
    def uniform(self) -> bool:
        return self.kind == "u"


def const_value(v: ir.Value):
    """The Python value of a scalar LLVM constant, else None."""
    if isinstance(v, ir.Constant) and not isinstance(v.type, ir.VectorType) \
            and isinstance(v.constant, (int, float, bool)):
        return v.constant
    return None


# --- module-level helpers ------------------------------------------------------------------

class ModuleContext:
    """The module being built, its target, and declarations shared by all kernels."""

    def __init__(self, target: Target, name: str = "fgrad") -> None:
        self.target = target
        self.module = ir.Module(name=name)
        self.module.triple = target.triple
        self._names: set[str] = set()

    def unique(self, name: str) -> str:
        base, n = name, 1
        while name in self._names or name in self.module.globals:
            name = f"{base}.{n}"
            n += 1
        self._names.add(name)
        return name

    def declare(self, name: str, ret: ir.Type, args: Iterable[ir.Type]) -> ir.Function:
        fn = self.module.globals.get(name)
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(ret, list(args)), name)
        return fn

    def intrinsic(self, base: str, ret: ir.Type, args: list[ir.Type],
                  overloads: Iterable[ir.Type]) -> ir.Function:
        name = base + "".join("." + _mangle(t) for t in overloads)
        return self.declare(name, ret, args)

    def discard(self, names: Iterable[str]) -> None:
        for name in names:
            self.module.globals.pop(name, None)


# --- IR helpers -----------------------------------------------------------------------------

def inbounds_gep(b: ir.IRBuilder, ptr: ir.Value, indices: list, etype: ir.Type) -> ir.Value:
    """An inbounds GEP into elements of ``etype``."""
    return b.gep(ptr, indices, inbounds=True, source_etype=etype)


def load_slot(b: ir.IRBuilder, slot: ir.AllocaInstr) -> ir.Value:
    """Load the value held in stack slot ``slot``."""
    return b.load(slot, typ=slot.allocated_type)


def splat_constant(value: ir.Constant, width: int) -> ir.Value:
    """``<width x T> splat (value)``, printed compactly (LLVM >= 19 syntax)."""
    vt = ir.VectorType(value.type, width)
    if value.constant in (0, 0.0, False) and not (isinstance(value.constant, float)
                                                  and math.copysign(1, value.constant) < 0):
        return ir.Constant(vt, None)
    # the element's value is kept as the constant: llvm_ops reads a splat divisor's value
    return ir.Constant.formatted(vt, f"splat ({value})", value.constant)


def splat_value(b: ir.IRBuilder, value: ir.Value, width: int) -> ir.Value:
    """``value`` broadcast to ``width`` lanes (a constant splat when ``value`` is a constant)."""
    if isinstance(value, ir.Constant) and not isinstance(value.type, ir.VectorType):
        return splat_constant(value, width)
    vt = ir.VectorType(value.type, width)
    v = b.insert_element(ir.Constant(vt, ir.Undefined), value, I32(0))
    return b.shuffle_vector(v, ir.Constant(vt, ir.Undefined), ir.Constant(ir.VectorType(I32, width),
                                                                          [0] * width))
