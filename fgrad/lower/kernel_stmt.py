"""Kernel IR statements, kernels and programs: structure, checks, printer and walkers.

``Param``/``Local`` and the statements of a kernel body, ``Kernel``; ``Buffer``, the
program steps and ``Program`` (see ``kernel``, which re-exports all of it). Kernels and
programs check themselves when built.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence, Union

import numpy as np

from fgrad.lower.kernel_expr import (
    Const, Expr, ExprLike, Load, LocalLoad, Op, Var, as_bool, as_expr, as_index, format_expr,
)
from fgrad.lower.kernel_types import as_dtype, short_name
from fgrad.lower.scalar_ops import REDUCE_OPS, kinds_for

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
        object.__setattr__(self, "start", as_index(start, f"the start of loop {var.name}"))
        object.__setattr__(self, "stop", as_index(stop, f"the stop of loop {var.name}"))
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
        object.__setattr__(self, "index", as_index(self.index, f"the index of a store to {self.param}"))
        object.__setattr__(self, "value", as_expr(self.value))
        if self.mask is not None:
            object.__setattr__(self, "mask", as_bool(self.mask, f"the mask of a store to {self.param}"))


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
        object.__setattr__(self, "index", as_index(self.index, f"the index of local {self.local}"))
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
        object.__setattr__(self, "index", as_index(self.index, f"the index of local {self.local}"))
        object.__setattr__(self, "value", as_expr(self.value))


@dataclass(frozen=True)
class If:
    """``if cond: then else: else_``."""

    cond: Expr
    then: tuple = ()
    else_: tuple = ()

    def __init__(self, cond: ExprLike, then: Iterable = (), else_: Iterable = ()) -> None:
        object.__setattr__(self, "cond", as_bool(cond, "the condition of If"))
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
    #: (read, written) param names, worked out on first use (checks and passes ask for them
    #: several times per call site)
    _access: tuple | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_name(self.name, "kernel")
        object.__setattr__(self, "params", tuple(self.params))
        object.__setattr__(self, "body", tuple(self.body))
        check_kernel(self)

    @property
    def written_params(self) -> frozenset[str]:
        """Names of the params the kernel stores to."""
        return self._param_access()[1]

    @property
    def read_params(self) -> frozenset[str]:
        """Names of the params the kernel loads from."""
        return self._param_access()[0]

    def _param_access(self) -> tuple[frozenset[str], frozenset[str]]:
        if self._access is None:
            names = frozenset(p.name for p in self.params)
            read: set[str] = set()
            written: set[str] = set()
            for s in walk_stmts(self.body):
                if isinstance(s, Store):
                    written.add(s.param)
                for e in stmt_exprs(s):
                    read |= e.reads       # cached per expression node; locals are filtered out below
            object.__setattr__(self, "_access", (frozenset(read & names), frozenset(written)))
        return self._access

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

    def touched(self) -> tuple[set[int], set[int]]:
        """(ids of the buffers the call reads, ids of those it writes)."""
        by_param = {p.name: id(b) for p, b in zip(self.kernel.params, self.args)}
        written = {by_param[name] for name in self.kernel.written_params}
        read = {by_param[name] for name in self.kernel.read_params}
        return read, written


def shared_params(calls: Sequence[Call], prefix: str) -> tuple[tuple, tuple, list[dict[str, str]]]:
    """For one kernel doing the work of ``calls``: a param per distinct buffer they bind (named
    ``prefix`` and a number), those buffers in the same order, and each call's renaming of its
    own params to those (for ``rename_params``)."""
    params: dict[int, Param] = {}
    buffers: list = []
    renamings = []
    for call in calls:
        names = {}
        for p, buf in zip(call.kernel.params, call.args):
            if id(buf) not in params:
                params[id(buf)] = Param(f"{prefix}{len(params)}", buf.dtype, buf.size)
                buffers.append(buf)
            names[p.name] = params[id(buf)].name
        renamings.append(names)
    return tuple(params.values()), tuple(buffers), renamings


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


@dataclass(frozen=True, eq=False)
class BufferAt:
    """An ``ExternCall`` argument: the address of element ``index[0] * stride + offset`` of
    ``buffer`` (``index``: a scalar int buffer, a ``Loop``'s counter, or None), e.g. the
    matrix of the current batch iteration."""

    buffer: Buffer
    index: Buffer | None = None
    stride: int = 0
    offset: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.buffer, Buffer):
            raise TypeError(f"BufferAt needs a Buffer, got {self.buffer!r}")
        if self.index is not None:
            _check_scalar(self.index, "the index of a BufferAt", kinds="iu")
        for what in ("stride", "offset"):
            value = getattr(self, what)
            if not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"BufferAt {self.buffer.name}: {what} must be a non-negative int, "
                                 f"got {value!r}")
            object.__setattr__(self, what, int(value))

    @property
    def buffers(self) -> tuple[Buffer, ...]:
        return (self.buffer,) if self.index is None else (self.buffer, self.index)

    def __repr__(self) -> str:
        at = f"{self.index.name}*{self.stride}" if self.index is not None else ""
        at = f"{at}+{self.offset}" if at and self.offset else at or str(self.offset)
        return f"{self.buffer.name}[{at}:]"


@dataclass(frozen=True, eq=False)
class ExternCall:
    """Call ``void routine(void *arg0, void *arg1, ...)``: an external C function bound by its
    name when the program's code is loaded (``fgrad.lower.extern``: LAPACK, BLAS), never an
    address baked into the code. Every argument is passed as a pointer (Fortran's
    convention): a ``Buffer`` passes its data, a ``BufferAt`` an element of a buffer, a
    ``Const`` a pointer to a private copy of that scalar. The routine may read and write
    every buffer it is given; it must not keep the pointers.

    ``returns_status``: the routine returns an ``int32``; nonzero ends the program at once
    (the rest of it does not run, the outputs are left unwritten): how a host callback
    (``fgrad.lower.host_callback``) that raised stops the program, which then reports why."""

    routine: str
    args: tuple
    returns_status: bool = False

    def __post_init__(self) -> None:
        _check_name(self.routine, "extern routine")
        object.__setattr__(self, "returns_status", bool(self.returns_status))
        object.__setattr__(self, "args", tuple(self.args))
        for a in self.args:
            if not isinstance(a, (Buffer, BufferAt, Const)):
                raise TypeError(f"extern call {self.routine}: an argument must be a Buffer, a BufferAt "
                                f"or a Const, got {a!r}")

    @property
    def buffers(self) -> tuple[Buffer, ...]:
        """The buffers the call touches (index buffers of ``BufferAt`` arguments included)."""
        out: list[Buffer] = []
        for a in self.args:
            out.extend((a,) if isinstance(a, Buffer) else a.buffers if isinstance(a, BufferAt) else ())
        return tuple(out)


def format_extern_arg(arg: Buffer | BufferAt | Const) -> str:
    """An ``ExternCall`` argument as the program printer writes it."""
    if isinstance(arg, Buffer):
        return arg.name
    if isinstance(arg, BufferAt):
        return repr(arg)
    return format_expr(arg)


Step = Union[Call, Loop, While, Switch, ExternCall]


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


def call_runs(steps: Iterable[Step]) -> Iterator[tuple[list, Step | None]]:
    """``steps`` as (run of consecutive Calls, the step after it or None at the end) pairs; a
    run may be empty."""
    run: list = []
    for s in steps:
        if isinstance(s, Call):
            run.append(s)
            continue
        yield run, s
        run = []
    yield run, None


def with_bodies(step: Step, transform) -> Step:
    """``step`` with ``transform`` (steps -> steps) applied to each body it holds: a Loop's, a
    While's ``before`` and ``body``, a Switch's branches; other steps as they are."""
    if isinstance(step, Loop):
        return Loop(step.count, transform(step.body), step.index)
    if isinstance(step, While):
        return While(step.cond, transform(step.before), transform(step.body))
    if isinstance(step, Switch):
        return Switch(step.index, tuple(transform(b) for b in step.branches))
    return step


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


#: runs assumed for a While's body, whose trip count is known only when it runs
WHILE_RUNS_GUESS = 1


def calls_per_run(steps: Iterable[Step], times: int = 1) -> Iterator[tuple["Call", int]]:
    """Each Call step with how often one run of ``steps`` makes it: times the counts of the
    Loops around it (a scanned layer's kernels run once per layer); a While's steps count
    ``WHILE_RUNS_GUESS`` times, every branch of a Switch once."""
    for s in steps:
        if isinstance(s, Call):
            yield s, times
        elif isinstance(s, Loop):
            yield from calls_per_run(s.body, times * s.count)
        elif isinstance(s, While):
            yield from calls_per_run(s.before + s.body, times * WHILE_RUNS_GUESS)
        elif isinstance(s, Switch):
            for b in s.branches:
                yield from calls_per_run(b, times)


def buffers_of(steps: Iterable[Step]) -> list[Buffer]:
    """The distinct buffers the steps use, in first-use order."""
    seen: dict[int, Buffer] = {}
    for s in walk_steps(steps):
        used = (s.args if isinstance(s, Call) else s.buffers if isinstance(s, ExternCall)
                else (s.index,) if isinstance(s, (Loop, Switch)) else (s.cond,))
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


#: kernels already checked, by params and body: a model's layers build equal kernels, whose
#: expressions are shared objects, so finding one here is cheaper than checking it again
_checked: dict[tuple, bool] = {}
_CHECKED_MAX = 1 << 12


def check_kernel(kernel: Kernel) -> None:
    """Raise if a kernel uses an unbound var, an unknown param/local, or mismatched dtypes."""
    key = (kernel.params, kernel.body)
    if key in _checked:
        return
    _check_kernel(kernel)
    if len(_checked) >= _CHECKED_MAX:
        _checked.clear()
    _checked[key] = True


def _check_kernel(kernel: Kernel) -> None:
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
        # expressions already checked in a scope, by (id(expr), id(vars), id(locals)), holding
        # the three objects so that no id is reused: expressions are shared DAGs (``op``
        # memoises them), and a scope only grows while it is checked
        self.checked: dict[tuple[int, int, int], tuple] = {}

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
            if isinstance(s, Accumulate) and loc.dtype.kind not in kinds_for(s.op):
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
        key = (id(e), id(vars_), id(locals_))
        if key in self.checked:
            return
        self.checked[key] = (e, vars_, locals_)
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


# --- printing --------------------------------------------------------------------------

def format_kernel(kernel: Kernel, *, structural: bool = False) -> str:
    """The readable text of a kernel. ``structural``: the text without the kernel's name and
    with its params named by position (``$0``, ``$1``, ...), so that kernels computing the same
    thing on buffers of the same shapes print alike (the key of per-kernel compile caches)."""
    names = {p.name: f"${k}" for k, p in enumerate(kernel.params)} if structural else {}
    params = ", ".join(f"{names.get(p.name, p.name)}: {short_name(p.dtype)}[{p.size}]" for p in kernel.params)
    alias = ""
    if kernel.may_alias:
        alias = f" [may alias: {', '.join(sorted(names.get(a, a) for a in kernel.may_alias))}]"
    lines = [f"kernel {'' if structural else kernel.name}({params}):{alias}"]
    _fmt_block(kernel.body, 1, lines, names)
    return "\n".join(lines)


def _fmt_block(stmts: tuple, depth: int, lines: list[str], names: dict[str, str]) -> None:
    pad = "  " * depth
    fmt = lambda e: format_expr(e, names)
    if not stmts:
        lines.append(pad + "pass")
    for s in stmts:
        if isinstance(s, Range):
            lines.append(f"{pad}for {s.var.name} in {fmt(s.start)}..{fmt(s.stop)}{_fmt_loop_hints(s)}:")
            _fmt_block(s.body, depth + 1, lines, names)
        elif isinstance(s, Store):
            mask = "" if s.mask is None else f" if {fmt(s.mask)}"
            lines.append(f"{pad}{names.get(s.param, s.param)}[{fmt(s.index)}{mask}] = {fmt(s.value)}")
        elif isinstance(s, DefineLocal):
            init = "" if s.init is None else f" = {fmt(s.init)}"
            loc = s.local
            lines.append(f"{pad}local {loc.name}: {short_name(loc.dtype)}[{loc.size}]{init}")
        elif isinstance(s, LocalStore):
            lines.append(f"{pad}{s.local}[{fmt(s.index)}] = {fmt(s.value)}")
        elif isinstance(s, Accumulate):
            sym = {"add": "+", "mul": "*", "and": "&", "or": "|", "xor": "^"}.get(s.op, s.op + " ")
            lines.append(f"{pad}{s.local}[{fmt(s.index)}] {sym}= {fmt(s.value)}")
        elif isinstance(s, If):
            lines.append(f"{pad}if {fmt(s.cond)}:")
            _fmt_block(s.then, depth + 1, lines, names)
            if s.else_:
                lines.append(f"{pad}else:")
                _fmt_block(s.else_, depth + 1, lines, names)


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


def format_program(program: Program, kernel_names: dict[int, str] | None = None) -> str:
    """The readable text of a program and all its kernels. With ``kernel_names``
    (``{id(kernel): name}``), calls name kernels by it and the kernels' bodies are left out
    (a backend's key when the names already stand for the kernels' structure)."""
    sig = lambda bufs: ", ".join(repr(b) for b in bufs)
    lines = [f"program {program.name}({sig(program.inputs)}) -> ({sig(program.outputs)}):"]
    if program.constants:
        lines.append(f"  constants {sig(program.constants)}")
    temps = program.temporaries()
    if temps:
        lines.append(f"  temporaries {sig(temps)}")
    _fmt_steps(program.body, 1, lines, kernel_names or {})
    if kernel_names is None:
        for k in kernels_of(program):
            lines.append("")
            lines.append(format_kernel(k))
    return "\n".join(lines)


def _fmt_steps(steps: tuple, depth: int, lines: list[str], names: dict[int, str]) -> None:
    pad = "  " * depth
    if not steps:
        lines.append(pad + "pass")
    for s in steps:
        if isinstance(s, Call):
            lines.append(f"{pad}{names.get(id(s.kernel), s.kernel.name)}({', '.join(b.name for b in s.args)})")
        elif isinstance(s, Loop):
            index = f" -> {s.index.name}" if s.index is not None else ""
            lines.append(f"{pad}loop {s.count}{index}:")
            _fmt_steps(s.body, depth + 1, lines, names)
        elif isinstance(s, While):
            lines.append(f"{pad}while {s.cond.name}:")
            lines.append(f"{pad}  before:")
            _fmt_steps(s.before, depth + 2, lines, names)
            lines.append(f"{pad}  body:")
            _fmt_steps(s.body, depth + 2, lines, names)
        elif isinstance(s, ExternCall):
            stop = " or stop" if s.returns_status else ""
            lines.append(f"{pad}extern {s.routine}({', '.join(format_extern_arg(a) for a in s.args)}){stop}")
        elif isinstance(s, Switch):
            lines.append(f"{pad}switch {s.index.name}:")
            for i, b in enumerate(s.branches):
                lines.append(f"{pad}  case {i}:")
                _fmt_steps(b, depth + 2, lines, names)


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
