"""A key for a jaxpr's compiled program that survives the process: what a warm start looks up.

Within a process, ``jit`` finds its executable by the traced jaxpr object. Across processes
the CPU backend keeps each compiled program on disk (``backends.cpu.compile_program(...,
save_as=key)``, found again by ``load_program(key)``), and this module names it:
``program_key`` hashes the jaxpr's full structure (equations with their params and
sub-jaxprs, literal values, avals, canonical variable numbering), the donated inputs, the
target and fgrad's own code. A warm start then skips lowering and LLVM and only loads code.

A jaxpr whose params hold anything this module cannot write down exactly (a Python
function, an arbitrary object) gets no key (None): such a program is lowered and compiled
as usual (its kernels still come from the per-kernel cache). Better no cache hit than a
wrong one.
"""
from __future__ import annotations

import enum
import functools
import hashlib
from pathlib import Path

import numpy as np

from fgrad.core.ir import ClosedJaxpr, Jaxpr, Literal, Var
from fgrad.core.types import ShapedArray


class _Unkeyable(Exception):
    """A param the key cannot write down exactly."""


@functools.lru_cache(maxsize=1)
def _source_version() -> str:
    """A hash of fgrad's own code, every module of the package: what a jaxpr becomes depends on
    the lowering and the renderers, and also on the decompositions the primitives define, so a
    changed fgrad never loads a program saved by another one. Computed on first use."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256(b"fgrad-program-key-1")
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return h.hexdigest()


def program_key(closed: ClosedJaxpr, name: str, donated: tuple, target_key: str) -> str | None:
    """A hex digest naming the program ``closed`` compiles to, or None when a param cannot be
    keyed exactly."""
    writer = _KeyWriter()
    try:
        writer.closed(closed)
    except _Unkeyable:
        return None
    h = hashlib.sha256()
    h.update("\n".join((_source_version(), target_key, name, repr(tuple(donated)))).encode())
    # one update of every part and its terminator (the same bytes as an update per part, which
    # cost a third of the key of a 12-layer transformer's 5,500 equations)
    h.update(b"".join((part if isinstance(part, bytes) else part.encode()) + b"\x00" for part in writer.parts))
    return h.hexdigest()


class _KeyWriter:
    """Writes a jaxpr as a sequence of exact parts (strings and array bytes)."""

    def __init__(self) -> None:
        self.parts: list[str | bytes] = []

    def closed(self, closed: ClosedJaxpr) -> None:
        self.parts.append("closed")
        for c in closed.consts:
            self.array(np.asarray(c))
        self.jaxpr(closed.jaxpr)

    def jaxpr(self, jaxpr: Jaxpr) -> None:
        names: dict[Var, str] = {}

        def var(v: Var) -> str:
            name = names.get(v)
            if name is None:
                name = names[v] = f"v{len(names)}:{_aval(v.aval)}"
            return name

        self.parts.append("jaxpr " + " ".join(var(v) for v in jaxpr.constvars) + " | "
                          + " ".join(var(v) for v in jaxpr.invars))
        for eqn in jaxpr.eqns:
            self.parts.append(f"eqn {type(eqn.primitive).__module__} {eqn.primitive.name}")
            for a in eqn.invars:
                self.atom(a, var)
            self.parts.append("-> " + " ".join(var(v) for v in eqn.outvars))
            for key in sorted(eqn.params):
                self.parts.append(f"param {key}")
                self.param(eqn.params[key])
        self.parts.append("out")
        for a in jaxpr.outvars:
            self.atom(a, var)

    def atom(self, a, var) -> None:
        """An equation's operand or a jaxpr's output: a literal's aval and bytes, or a var."""
        if isinstance(a, Literal):
            self.parts.append("lit " + _aval(a.aval))
            self.array(np.asarray(a.value))
        else:
            self.parts.append(var(a))

    def array(self, a: np.ndarray) -> None:
        if a.dtype == object:
            raise _Unkeyable("object array")
        self.parts.append(f"array {a.dtype.str} {a.shape}")
        self.parts.append(np.ascontiguousarray(a).tobytes())

    def param(self, value: object) -> None:
        if value is None or isinstance(value, (bool, int, float, complex, str)):
            self.parts.append(f"{type(value).__name__} {value!r}")
        elif isinstance(value, (np.generic, np.ndarray)):
            self.array(np.asarray(value))
        elif isinstance(value, np.dtype):
            self.parts.append(f"dtype {value.str}")
        elif isinstance(value, type) and issubclass(value, np.generic):
            self.parts.append(f"dtype {np.dtype(value).str}")
        elif isinstance(value, enum.Enum):
            self.parts.append(f"enum {type(value).__qualname__}.{value.name}")
        elif isinstance(value, ShapedArray):
            self.parts.append("aval " + _aval(value))
        elif isinstance(value, ClosedJaxpr):
            self.closed(value)
        elif isinstance(value, Jaxpr):
            self.jaxpr(value)
        elif _is_plain_record(value):
            self.parts.append(f"record {type(value).__module__}.{type(value).__qualname__}")
            self.param(tuple(value))
        elif isinstance(value, (tuple, list, frozenset, set)):
            items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
            self.parts.append(f"{type(value).__name__} {len(items)}")
            for item in items:
                self.param(item)
        elif isinstance(value, dict):
            self.parts.append(f"dict {len(value)}")
            for k in sorted(value, key=repr):
                self.param(k)
                self.param(value[k])
        else:
            raise _Unkeyable(type(value).__name__)


def _aval(aval: ShapedArray) -> str:
    text = _aval_texts.get(aval)
    if text is None:
        vma = ",".join(sorted(aval.vma)) if getattr(aval, "vma", None) else ""
        text = f"{np.dtype(aval.dtype).str}{list(aval.shape)}{'w' if aval.weak_type else ''}{{{vma}}}"
        if len(_aval_texts) >= 1 << 12:
            _aval_texts.clear()
        _aval_texts[aval] = text
    return text


#: ``_aval``'s texts (avals compare by shape, dtype, weak type and varying axes: all it writes)
_aval_texts: dict = {}


def _is_plain_record(value: object) -> bool:
    """A NamedTuple (its fields are keyed one by one)."""
    return isinstance(value, tuple) and hasattr(type(value), "_fields")
