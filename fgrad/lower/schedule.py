"""Scheduling: turn a jaxpr into a kernel-IR ``Program``.

Every jaxpr value becomes a ``Value`` that knows how to produce the element at a
multi-index as a kernel-IR expression. Elementwise, broadcast, reshape,
transpose, slice, pad, concatenate, gather... are *lazy*: their values are
expressions over their inputs' expressions, so chains of them fuse into whoever
reads them. A value is *materialised* into a buffer (one kernel writing it) when

* it is a program output, or crosses into a control-flow body;
* a non-fusible consumer needs memory (scatter, control flow);
* it is read by more than one consumer and recomputing it is not cheap;
* its expression has grown large.

Reductions, contractions, convolutions and windowed reductions are kernels of
their own that read their (lazy, hence fused) inputs. Buffers are planned by
liveness in ``kernel.plan_memory``. The per-primitive rules live in
``fgrad.lower.rules`` (looked up by primitive; the scheduler never switches on names).
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Callable, Sequence

import numpy as np

from fgrad.core.ir import ClosedJaxpr, Jaxpr, Literal, Var as JVar
from fgrad.core.types import ShapedArray
from fgrad.lower import kernel as K
from fgrad.lower.chains import merge_elementwise_chains
from fgrad.lower.horizontal import merge_independent_calls
from fgrad.lower.kernel import row_major_strides
from fgrad.lower.gemm_schedule import GemmTuning
from fgrad.lower.target import LoweringTarget, as_target

#: ``lowering_rules[primitive](lowerer, eqn, inputs) -> list[Value]``
lowering_rules: dict[Any, Callable] = {}
#: functions (lowerer, jaxpr) -> an equivalent jaxpr that lowers better, applied in order before
#: a jaxpr is lowered (registered by ``rules``: see ``transpose_fold``)
jaxpr_rewrites: list[Callable] = []
#: Call-like primitives with no lowering that run compiled programs of their own (shard: one
#: per device): a jitted program calling them is compiled in pieces around them
#: (``pipeline``), not sent to the reference path.
runs_own_programs: set = set()

PARALLEL_MIN_ELEMENTS = 1 << 15
SLOW_COST = 3      # what a slow op (exp, tanh, div...) adds to a fused value's cost (rules.py)
MAX_FUSED_COST = 48
#: ``value.cost`` counts a fused value at each read, so it also measures the expression tree a
#: kernel is built from: past this, a value is stored even when few distinct ops make it
#: (repeated squaring would otherwise double the tree at each step)
MAX_EXPRESSION_COST = 8 * MAX_FUSED_COST
CHEAP_COST = 2     # relu (compare + select) is recomputed by its readers rather than stored
#: a dearer value read more than once (up to this many distinct ops' cost) is recomputed by
#: each reader instead of stored, when that is safe and saves memory (``_recomputed``): GELU's
#: square and tanh in a training step, read by the forward and again by the backward, are
#: then no residual buffers, and the forward's three passes over them become one
RECOMPUTE_COST = 24
#: a value whose readers all come within this many equations of it is recomputed even when that
#: keeps its sources a little longer than storing it would (a local chain: GELU's derivative)
NEARBY_EQUATIONS = 16


class NotLowerable(Exception):
    """The native path cannot take this equation; the caller falls back to the reference path.

    ``eqn`` is the (innermost) equation that could not be lowered, once ``Lowerer.lower``
    has seen it raise."""

    eqn = None


# --- values -------------------------------------------------------------------------------------

class KernelBuilder:
    """Collects the buffers one kernel touches and names its params."""

    def __init__(self):
        self.params: dict[int, tuple[K.Buffer, K.Param]] = {}
        self._vars = itertools.count()

    def param(self, buf: K.Buffer) -> K.Param:
        entry = self.params.get(id(buf))
        if entry is None:
            entry = (buf, K.Param(f"p{len(self.params)}", buf.dtype, buf.size))
            self.params[id(buf)] = entry
        return entry[1]

    def var(self, hint: str = "i") -> K.Var:
        return K.Var(f"{hint}{next(self._vars)}")

    def kernel(self, name: str, body: Sequence, flops: int = 0) -> tuple[K.Kernel, tuple]:
        entries = list(self.params.values())
        kern = K.Kernel(name, tuple(p for _, p in entries), tuple(body), flops)
        return kern, tuple(b for b, _ in entries)


class Value:
    """How to read a jaxpr value: ``read(kb, idx)`` gives the element at multi-index ``idx``."""

    aval: ShapedArray
    cost = 0
    buffer: K.Buffer | None = None

    def read(self, kb: KernelBuilder, idx: Sequence[K.Expr]) -> K.Expr:
        raise NotImplementedError


def ir_dtype(dtype: np.dtype) -> np.dtype:
    """The kernel-IR dtype a jaxpr value of ``dtype`` computes in: float16 and bfloat16 values
    compute in float32, each result rounded to its half type (``rounded_half``); only a
    program's inputs and outputs are stored in 16 bits."""
    if dtype in K.HALF:
        return K.float32
    try:
        return K.as_dtype(dtype)
    except TypeError:
        raise NotLowerable(f"dtype {dtype} has no kernel IR type") from None


def round_half(x: K.Expr, half: np.dtype = K.float16) -> K.Expr:
    """A float32 expression rounded to the nearest ``half`` (float16 or bfloat16), as float32."""
    return K.cast(K.cast(x, half), K.float32)


def ravel(idx: Sequence[K.Expr], shape: Sequence[int]) -> K.Expr:
    """The row-major flat index of multi-index ``idx`` (within ``shape``) in ``shape``."""
    key = (tuple(shape), *idx)
    flat = _ravelled.get(key)
    if flat is None:
        flat = _unraveled_var(idx, shape)
        if flat is None:
            flat = K.Const(0, K.INDEX)
            for i, stride in zip(idx, row_major_strides(shape)):
                flat = flat + K.as_expr(i, K.INDEX) * stride
        if len(_ravelled) >= _RAVELLED_MAX:
            _ravelled.clear()
        _ravelled[key] = flat
    return flat


#: ``ravel``'s results by shape and index: every kernel reading a buffer ravels its index, and
#: kernels of a model's layers ravel the same ones (a fifth of a 12-layer GPT step's lowering)
_ravelled: dict = {}
_RAVELLED_MAX = 1 << 14


def unravel(flat: K.Expr, shape: Sequence[int]) -> list[K.Expr]:
    """The row-major multi-index in ``shape`` of flat index ``flat``."""
    idx = []
    for s, st in zip(shape, row_major_strides(shape)):
        idx.append((flat // st) % s if s != 1 else K.Const(0, K.INDEX))
    return idx


def flat_unravel(var: K.Var, shape: Sequence[int]) -> list[K.Expr]:
    """``unravel(var, shape)`` for a flattened loop over ``shape``: the outermost dimension's
    index is not reduced modulo its size, which makes ``ravel`` of it ``var`` itself, exactly
    (``ravel`` recognises it)."""
    idx, outer = [], True
    for s, st in zip(shape, row_major_strides(shape)):
        if s == 1:
            idx.append(K.Const(0, K.INDEX))
        else:
            idx.append(var // st if outer else (var // st) % s)
            outer = False
    return idx


def _unraveled_var(idx: Sequence[K.Expr], shape: Sequence[int]) -> K.Var | None:
    """The loop variable v when ``idx`` is ``flat_unravel(v, shape)`` (a flattened loop's
    multi-index read back at the same shape), else None."""
    if len(shape) < 2 or len(idx) != len(shape) or not all(isinstance(i, K.Expr) for i in idx):
        return None
    names = frozenset().union(*(i.variables for i in idx))
    if len(names) != 1:
        return None
    var = K.Var(next(iter(names)))
    return var if list(idx) == flat_unravel(var, shape) else None


class BufferValue(Value):
    """A value held in a buffer (row-major)."""

    def __init__(self, aval: ShapedArray, buffer: K.Buffer):
        self.aval, self.buffer = aval, buffer

    def read(self, kb, idx):
        return kb.param(self.buffer)[ravel(idx, self.aval.shape) if idx else 0]


class ConstValue(Value):
    """A scalar constant broadcast to any shape."""

    def __init__(self, aval: ShapedArray, value: Any):
        self.aval = aval
        self.value = K.Const(np.asarray(value).item(), ir_dtype(aval.dtype))

    def read(self, kb, idx):
        return self.value


class LazyValue(Value):
    """A value computed on the fly from other values (fused into its readers).

    ``pointwise`` values read each of their ``inputs`` only at their own index (elementwise
    ops), which is what lets them become a contraction's epilogue. ``row_major``: the buffer
    this value is, read row-major at its own shape (a reshaped buffer), so that a GEMM can read
    it where it lies; else None."""

    row_major: K.Buffer | None = None

    def __init__(self, aval: ShapedArray, fn: Callable, cost: int, inputs: Sequence[Value] = (),
                 pointwise: bool = False):
        self.aval, self.fn, self.cost = aval, fn, cost
        self.inputs, self.pointwise = tuple(inputs), pointwise

    def read(self, kb, idx):
        return self.fn(kb, list(idx))


class PiecewiseValue(LazyValue):
    """A lazy value made of pieces along dimension ``dim`` (a concatenation, a pad of one
    dimension): ``pieces`` are ``(start, stop, read)``, ``read(kb, idx)`` giving the element at
    output index ``idx`` when ``idx[dim]`` is in ``start..stop``. ``fn`` (what readers get) picks
    the piece with selects. A kernel writing this value (or a pointwise function of it) one loop
    per range of the pieces (``Lowerer._write_by_pieces``) restricts it to that range while it
    builds the loop: reads at the writer's own index then take the range's piece directly (no
    selects, and no loads of the pieces a select would discard); any other read gets ``fn``."""

    def __init__(self, aval: ShapedArray, fn: Callable, cost: int, inputs: Sequence[Value], dim: int,
                 pieces: Sequence[tuple]):
        super().__init__(aval, fn, cost, inputs)
        self.dim, self.pieces = dim, tuple((a, b, r) for a, b, r in pieces if b > a)
        self._restriction: tuple | None = None       # (the writer's index, this range's piece)

    def read(self, kb, idx):
        if self._restriction is not None and tuple(idx) == self._restriction[0]:
            return self._restriction[1](kb, list(idx))
        return self.fn(kb, list(idx))

    def piece_for(self, start: int, stop: int) -> Callable:
        """The read of the piece covering ``start..stop``."""
        for a, b, read in self.pieces:
            if a <= start and stop <= b:
                return read
        raise ValueError(f"no piece of {self.pieces} covers {start}..{stop}")


def _piecewise_leaves(value: Value) -> tuple[int, list[PiecewiseValue], list[int]] | None:
    """The piecewise values ``value`` reads at its own index (through pointwise values of its
    shape), the dimension they split and the bounds of their pieces along it; None if none
    splits ``value`` in two or more ranges."""
    found: list[PiecewiseValue] = []
    stack, seen = [value], set()
    while stack:
        v = stack.pop()
        if id(v) in seen or v.aval.shape != value.aval.shape:
            continue
        seen.add(id(v))
        if isinstance(v, PiecewiseValue):
            found.append(v)
        elif isinstance(v, LazyValue) and v.pointwise:
            stack.extend(v.inputs)
    if not found:
        return None
    dim = found[0].dim
    leaves = [v for v in found if v.dim == dim]
    shape = value.aval.shape
    bounds = sorted({b for v in leaves for a, e, _ in v.pieces for b in (a, e)} | {0, shape[dim]})
    innermost = all(n == 1 for n in shape[dim + 1:])
    if innermost and min(b - a for a, b in zip(bounds, bounds[1:])) < PIECE_MIN_INNER:
        return None      # narrow pieces of the innermost dimension: one vector loop with selects does better
    return (dim, leaves, bounds) if len(bounds) > 2 else None


#: the narrowest range a split of the innermost dimension may have (``_piecewise_leaves``)
PIECE_MIN_INNER = 8


#: ``emit(epilogue, into) -> BufferValue``; ``epilogue(kb, value, idx) -> Expr`` or None.
EmitFn = Callable[[Any, "K.Buffer | None"], BufferValue]


class DeferredValue(Value):
    """A contraction whose kernels are not emitted yet: until something reads it, a pointwise
    consumer that is its only reader can still become its epilogue (``absorb``), so that
    ``relu(conv(x, w) + b)`` is one GEMM writing the final values.

    Reading it (or asking for its buffer) emits it, at that point of the program.

    ``lazy(epilogue) -> Value``, when given, emits the contraction into a layout of its own
    (a shifted convolution's grid) and returns a reader of it: readers then read that, and
    asking for a buffer copies it with ``copy(value, into) -> BufferValue``."""

    def __init__(self, aval: ShapedArray, emit: EmitFn, lazy: Callable | None = None,
                 copy: Callable | None = None):
        self.aval, self._emit = aval, emit
        self._lazy_emit, self._copy = lazy, copy
        self._result: BufferValue | None = None
        self._lazy: Value | None = None
        self._override: K.Expr | None = None

    @property
    def emitted(self) -> bool:
        return self._result is not None or self._lazy is not None

    def flush(self, into: K.Buffer | None = None) -> BufferValue:
        """Emit the contraction (into ``into`` when given) and return its buffer value."""
        if self._result is None:
            self._result = self._emit(None, into) if self._lazy is None else self._copy(self._lazy, into)
        return self._result

    def emit_into(self, into: K.Buffer) -> BufferValue:
        """Emit the contraction into ``into`` without making that buffer this value's home:
        for a buffer the program writes over later (a loop carry, a scatter's output), while
        other readers of this value still expect it unchanged (they emit it again, or read
        the home an earlier ``flush`` gave it)."""
        if self._result is not None:
            raise ValueError("emit_into: the contraction is emitted already")
        return self._emit(None, into)

    @property
    def buffer(self):
        return self.flush().buffer

    def read(self, kb, idx):
        if self._override is not None:
            return self._override
        if self._result is None and self._lazy_emit is not None:
            if self._lazy is None:
                self._lazy = self._lazy_emit(None)
            return self._lazy.read(kb, idx)
        return self.flush().read(kb, idx)

    def absorb(self, consumer: LazyValue) -> "DeferredValue":
        """The deferred contraction computing ``consumer`` (pointwise over this value) directly."""
        def through(epilogue):
            def apply(kb, acc, idx):
                self._override = acc
                try:
                    value = consumer.read(kb, idx)
                finally:
                    self._override = None
                return value if epilogue is None else epilogue(kb, value, idx)
            return apply
        lazy = None if self._lazy_emit is None else (lambda epilogue: self._lazy_emit(through(epilogue)))
        return DeferredValue(consumer.aval, lambda epilogue, into: self._emit(through(epilogue), into), lazy,
                             self._copy)


# --- the lowerer ----------------------------------------------------------------------------------

class Lowerer:
    """Lowers one (const-free) jaxpr to program steps; control flow recurses with a child."""

    def __init__(self, names: itertools.count | None = None, machine: LoweringTarget | str = "cpu",
                 tunables: list | None = None):
        self.steps: list = []
        self.names = names if names is not None else itertools.count()
        self.constants: dict[K.Buffer, np.ndarray] = {}
        self.machine = as_target(machine)
        self.target = self.machine.kind
        self.precision = self.machine.precision    # "tf32": GPU float32 GEMMs may round operands to TF32
        # BEAM: the CPU contraction templates use searched schedules and record what they meet
        searched = self.target == "cpu" and (self.machine.schedules or tunables is not None)
        self.tuning = GemmTuning(dict(self.machine.schedules), tunables) if searched else None
        #: contraction plans by structure, for the same contraction on other buffers
        #: (``contraction.gemm``'s ``plans``)
        self.plans: dict = {}

    # -- buffers and kernels --
    def new_buffer(self, aval: ShapedArray, hint: str = "t") -> K.Buffer:
        return K.Buffer(f"{hint}{next(self.names)}", ir_dtype(aval.dtype), aval.shape)

    def emit(self, kb: KernelBuilder, name: str, body: Sequence, flops: int = 0) -> None:
        kern, args = kb.kernel(f"{name}_{next(self.names)}", body, flops)
        self.steps.append(K.Call(kern, args))

    def constant(self, aval: ShapedArray, data: np.ndarray) -> BufferValue:
        buf = self.new_buffer(aval, "c")
        self.constants[buf] = np.asarray(data, dtype=buf.dtype).reshape(buf.shape)
        return BufferValue(aval, buf)

    # -- materialisation --
    def materialize(self, value: Value, into: K.Buffer | None = None, overwritten: bool = False
                    ) -> BufferValue:
        """A buffer holding ``value`` (a new kernel writes it unless it already is one).
        ``overwritten``: ``into`` is written over later (a loop carry, a scatter's output),
        so it must not become the home of a deferred contraction other equations read."""
        if isinstance(value, DeferredValue) and not value.emitted:
            return value.emit_into(into) if overwritten and into is not None else value.flush(into)
        if value.buffer is not None and (into is None or into is value.buffer):
            return value
        buf = into if into is not None else self.new_buffer(value.aval)
        self.write_elementwise(buf, value)
        return BufferValue(value.aval, buf)

    def write_elementwise(self, buf: K.Buffer, value: Value) -> None:
        """A kernel writing ``value`` into ``buf``: one flat loop when every read it makes is
        at the flat index (elementwise work on whole buffers: one vector loop instead of a nest
        whose innermost extent may be a few lanes), else a loop per dimension (none for a
        dimension of one element)."""
        if buf.size == 0:
            return
        shape = value.aval.shape
        split = _piecewise_leaves(value) if self.target == "cpu" else None
        if split is not None:
            self._write_by_pieces(buf, value, *split)
            return
        if len([d for d in shape if d > 1]) > 1:
            kb = KernelBuilder()
            flat = kb.var()
            result = K.cast(value.read(kb, flat_unravel(flat, shape)), buf.dtype)
            if not _splits(result, flat.name):
                loop = K.Range(flat, 0, buf.size, [kb.param(buf).store(flat, result)],
                               parallel=buf.size >= PARALLEL_MIN_ELEMENTS, vectorize=K.AUTO)
                self.emit(kb, "fused", [loop])
                return
        kb = KernelBuilder()
        idx = [kb.var() if d > 1 else K.Const(0, K.INDEX) for d in shape]
        self.emit(kb, "fused", _storing_nest(kb, buf, value, idx, idx, shape))

    def _write_by_pieces(self, buf: K.Buffer, value: Value, dim: int, leaves: list, bounds: list) -> None:
        """``write_elementwise`` of a value that reads piecewise values at its own index: one
        loop nest per range between the pieces' bounds along ``dim``, each reading its pieces
        directly (a sum of pads, the gradient of slicing q, k and v out of one projection, read
        all three sources at every element and kept one: 5 GB/s)."""
        shape = value.aval.shape
        kb = KernelBuilder()
        nests: list = []
        for start, stop in zip(bounds, bounds[1:]):
            sizes = list(shape)
            sizes[dim] = stop - start
            idx = [kb.var() if n > 1 else K.Const(0, K.INDEX) for n in sizes]
            at = list(idx)
            at[dim] = idx[dim] + start if sizes[dim] > 1 else K.Const(start, K.INDEX)
            for leaf in leaves:
                leaf._restriction = (tuple(at), leaf.piece_for(start, stop))
            try:
                nests += _storing_nest(kb, buf, value, idx, at, sizes)
            finally:
                for leaf in leaves:
                    leaf._restriction = None
        self.emit(kb, "fused", nests)

    # -- the walk --
    def lower(self, jaxpr: Jaxpr, inputs: Sequence[Value], outputs: Sequence[K.Buffer] | None = None
              ) -> list[Value]:
        """Lower ``jaxpr`` on ``inputs``; with ``outputs``, its results are written into those buffers."""
        if jaxpr.constvars:
            raise NotLowerable("jaxpr with constvars (closure-convert it first)")
        for rewrite in jaxpr_rewrites:
            jaxpr = rewrite(self, jaxpr)
        env: dict[JVar, Value] = dict(zip(jaxpr.invars, inputs))
        readers = _Readers(jaxpr)
        uses = readers.uses
        for var, value in env.items():
            readers.bind(value, var)
        out_buffers = _output_targets(jaxpr, outputs)

        def read(atom):
            if isinstance(atom, Literal):
                return ConstValue(atom.aval, atom.value)
            return env[atom]

        for position, eqn in enumerate(jaxpr.eqns):
            readers.position = position
            rule = lowering_rules.get(eqn.primitive)
            ins = [_nonempty_or_zero(read(a)) for a in eqn.invars]
            self.targets = {v: out_buffers.get(v) for v in eqn.outvars}
            try:
                if rule is None:
                    raise NotLowerable(f"no lowering rule for primitive '{eqn.primitive.name}'")
                if eqn.outvars and all(v.aval.size == 0 for v in eqn.outvars) and not eqn.primitive.has_effects:
                    outs = [ConstValue(v.aval, 0) for v in eqn.outvars]  # nothing to compute
                else:
                    outs = rule(self, eqn, ins)
            except NotLowerable as why:
                if why.eqn is None:       # the innermost equation names the culprit
                    why.eqn = eqn
                raise
            for var, value in zip(eqn.outvars, outs):
                if var.aval.dtype in K.HALF:
                    value = rounded_half(value, ins)
                target = out_buffers.get(var)
                value = _absorbed(value, ins, [uses.get(a, 0) if isinstance(a, JVar) else 2 for a in eqn.invars])
                if isinstance(value, DeferredValue):
                    value = value.flush(target) if target is not None else value
                elif target is not None and value.buffer is not target:
                    value = self.materialize(value, into=target)
                elif (value.buffer is None and _should_materialize(value, uses.get(var, 0))
                      and not _recomputed(value, var, readers)):
                    value = self.materialize(value)
                env[var] = value
                readers.bind(value, var)
        results = [read(a) for a in jaxpr.outvars]
        if outputs is not None:
            results = [self.materialize(r, into=buf) for r, buf in zip(results, outputs)]
        return results

    def output_buffer(self, var: JVar, aval: ShapedArray, hint: str = "t") -> K.Buffer:
        """The buffer an equation's result should be written into (a program output if it is one)."""
        target = self.targets.get(var)
        return target if target is not None else self.new_buffer(aval, hint)

    def child(self) -> "Lowerer":
        sub = Lowerer(self.names, self.machine)
        sub.constants = self.constants
        sub.tuning = self.tuning
        sub.plans = self.plans
        return sub


def _storing_nest(kb: KernelBuilder, buf: K.Buffer, value: Value, idx: list, at: list, sizes: Sequence[int]) -> list:
    """Loops over ``sizes`` (``idx``: their variables, constant 0 where a size is 1) storing
    ``value`` at multi-index ``at`` (``idx``, perhaps offset) into ``buf``."""
    body = [kb.param(buf).store(ravel(at, value.aval.shape), K.cast(value.read(kb, at), buf.dtype))]
    looped = [k for k, n in enumerate(sizes) if n > 1]
    return loop_nest([idx[k] for k in looped], [sizes[k] for k in looped], body, math.prod(sizes))


def rounded_half(value: Value, ins: Sequence[Value]) -> Value:
    """A float16 (bfloat16) equation's result rounded to float16 (bfloat16): eager rounds every
    primitive's result (a fused chain of half ops must too). Constants and half inputs passed
    through are half values already; a contraction rounds in its epilogue."""
    half = value.aval.dtype
    if isinstance(value, ConstValue) or any(value is v and v.aval.dtype == half for v in ins):
        return value
    if isinstance(value, DeferredValue) and not value.emitted:
        return value.absorb(LazyValue(value.aval, lambda kb, idx: round_half(value.read(kb, idx), half), 1,
                                      (value,), pointwise=True))
    inputs, pointwise = (value.inputs, value.pointwise) if isinstance(value, LazyValue) else ((value,), True)
    return LazyValue(value.aval, lambda kb, idx: round_half(value.read(kb, idx), half), value.cost + 1,
                     inputs, pointwise)


def _nonempty_or_zero(value: Value) -> Value:
    """A size-0 value as a constant: rules may still build (never executed) reads of it, and
    a constant is readable at any index, where an empty buffer or a rule's None is not."""
    return ConstValue(value.aval, 0) if value.aval.size == 0 else value


def _absorbed(value: Value, ins: Sequence[Value], in_uses: Sequence[int]) -> Value:
    """``value`` as the epilogue of the deferred contraction it reads, when it is pointwise
    and the only reader of exactly one not-yet-emitted contraction of its shape and dtype."""
    if not (isinstance(value, LazyValue) and value.pointwise):
        return value
    deferred = [(v, n) for v, n in zip(ins, in_uses) if isinstance(v, DeferredValue) and not v.emitted]
    if len(deferred) != 1:
        return value
    source, uses = deferred[0]
    if uses != 1 or source.aval.shape != value.aval.shape or source.aval.dtype != value.aval.dtype:
        return value
    return source.absorb(value)


class _Readers:
    """Who reads each variable of a jaxpr: how often (``uses``: each read, an output counting
    once), the equations, the last one's position, and whether all of them (and the
    single-use values they make, onwards) compute pointwise."""

    def __init__(self, jaxpr: Jaxpr):
        self.uses: dict[JVar, int] = {}
        self.by_var: dict[JVar, list] = {}
        self.last_use: dict[JVar, int] = {}
        for n, eqn in enumerate(jaxpr.eqns):
            for a in eqn.invars:
                if isinstance(a, JVar):
                    self.uses[a] = self.uses.get(a, 0) + 1
                    if self.last_use.get(a) != n:
                        self.by_var.setdefault(a, []).append(eqn)
                    self.last_use[a] = n
        for a in jaxpr.outvars:
            if isinstance(a, JVar):
                self.uses[a] = self.uses.get(a, 0) + 1
                self.last_use[a] = len(jaxpr.eqns)
        #: id of each value the lowering bound to a variable -> that variable
        self.var_of: dict[int, JVar] = {}
        self.position = 0      # the equation being lowered
        self._closed: dict[bool, dict[JVar, bool]] = {False: {}, True: {}}

    def all_pointwise(self, var: JVar, reductions: bool = True) -> bool:
        """Every reader of ``var`` is an elementwise rule (or, with ``reductions``, a reducing
        one), and a value such a reader makes that is read once is itself read only that way
        (multi-use values are decided on their own: stored, or recomputed under this test).
        Worked out on demand, with a stack rather than recursion: a special function's series
        is a chain of hundreds of single-use values."""
        closed = self._closed[reductions]
        stack = [(var, False)]
        while stack:
            v, expanded = stack.pop()
            if v in closed:
                continue
            onwards = [o for eqn in self.by_var.get(v, ()) if _rule_reads(eqn) == "pointwise"
                       for o in eqn.outvars if self.uses.get(o, 0) == 1 and o not in closed]
            if onwards and not expanded:
                stack.append((v, True))
                stack.extend((o, False) for o in onwards)
                continue
            closed[v] = all(self._pointwise_reader(eqn, closed, reductions) for eqn in self.by_var.get(v, ()))
        return closed[var]

    def _pointwise_reader(self, eqn, closed: dict, reductions: bool) -> bool:
        reads = _rule_reads(eqn)
        if reads == "each once":
            return reductions
        if reads != "pointwise":
            return False
        return all(self.uses.get(o, 0) != 1 or closed[o] for o in eqn.outvars)

    def bind(self, value: Value, var: JVar) -> None:
        """``var`` is ``value`` (one value may be several variables: the latest-read one counts)."""
        known = self.var_of.get(id(value))
        if known is None or self.last_use.get(var, -1) > self.last_use.get(known, -1):
            self.var_of[id(value)] = var

    def outlives(self, source: Value, var: JVar) -> bool:
        """Whether ``source`` (a value bound to a variable) is read at or after ``var``'s last
        reader anyway; unknown values count as not."""
        source_var = self.var_of.get(id(source))
        return source_var is not None and self.last_use.get(source_var, -1) >= self.last_use.get(var, 0)

    def extend_lives(self, sources: list[Value], var: JVar) -> None:
        """``var`` is recomputed by its readers: its sources are read as late as it is."""
        end = self.last_use.get(var, 0)
        for source in sources:
            source_var = self.var_of.get(id(source))
            if source_var is not None and self.last_use.get(source_var, -1) < end:
                self.last_use[source_var] = end


def _rule_reads(eqn) -> str:
    """How an equation's lowering rule reads its inputs: "pointwise" (elementwise rules), "each
    once" (reductions) or "" (anything else: a contraction, a gather, a call...)."""
    rule = lowering_rules.get(eqn.primitive)
    return "pointwise" if getattr(rule, "pointwise", False) else \
        "each once" if getattr(rule, "reads_each_once", False) else ""


def _recomputed(value: Value, var: JVar, readers: _Readers) -> bool:
    """Whether ``var``'s fused value stays fused into each of its readers instead of being
    stored (see ``RECOMPUTE_COST``). Only values made by elementwise ops and index remaps
    (broadcasts, transposes: no gathers) are; a reduction (a kernel of its own) recomputes
    only values without slow ops (an ``exp`` twice costs more than a stored copy). Never
    when each reader would read more than twice the bytes of a stored copy, or recomputing
    would keep more bytes of buffers alive than storing takes (sources under an eighth of
    the value's size, a row's statistics, not counted)."""
    if not (isinstance(value, LazyValue) and value.pointwise) or readers.uses.get(var, 0) < 2:
        return False
    if value.cost > MAX_EXPRESSION_COST // 2:
        return False      # its readers' expressions would soon outgrow the bound
    nodes, sources = _fused_graph(value)
    own_costs = [_own_cost(n) for n in nodes]
    if sum(own_costs) > RECOMPUTE_COST or any(c and not n.pointwise for n, c in zip(nodes, own_costs)):
        return False
    if not readers.all_pointwise(var, reductions=max(own_costs) < SLOW_COST):
        return False
    size = _nbytes(value)
    large = [v for v in sources if 8 * _nbytes(v) >= size]
    if sum(map(_nbytes, large)) > 2 * size:
        return False      # each reader would read more than twice what a stored copy takes
    kept = sum(_nbytes(v) for v in large if not readers.outlives(v, var))
    if kept > size and readers.last_use.get(var, 0) - readers.position > NEARBY_EQUATIONS:
        return False      # more alive for longer than a local chain (GELU's backward) keeps
    readers.extend_lives(sources, var)
    return True


def _fused_graph(value: Value) -> tuple[list[LazyValue], list[Value]]:
    """The distinct fused values computing ``value`` takes (the renderer computes a shared one
    once), and the stored values (buffers, contractions) they read: recomputing ``value``
    later keeps each of those alive until then."""
    nodes: dict[int, LazyValue] = {}
    sources: dict[int, Value] = {}
    pending = [value]
    while pending:
        v = pending.pop()
        if isinstance(v, LazyValue):
            if id(v) not in nodes:
                nodes[id(v)] = v
                pending.extend(v.inputs)
        elif not isinstance(v, ConstValue):
            sources[id(v)] = v
    return list(nodes.values()), list(sources.values())


def _nbytes(value: Value) -> int:
    return value.aval.size * np.dtype(value.aval.dtype).itemsize


def _output_targets(jaxpr: Jaxpr, outputs: Sequence[K.Buffer] | None) -> dict[JVar, K.Buffer]:
    """Which equation results can be computed straight into an output buffer."""
    if outputs is None:
        return {}
    targets: dict[JVar, K.Buffer] = {}
    defined_by_eqn = {v for e in jaxpr.eqns for v in e.outvars}
    for var, buf in zip(jaxpr.outvars, outputs):
        if isinstance(var, JVar) and var in defined_by_eqn and var not in targets:
            targets[var] = buf
    return targets


def _splits(expr: K.Expr, var: str) -> bool:
    """Whether ``expr`` divides loop variable ``var`` (a floordiv or mod of an expression of it:
    some read is not at the flat index)."""
    return any(isinstance(e, K.Op) and e.op in ("floordiv", "mod") and var in e.variables
               for e in K.walk_expr(expr))


def _should_materialize(value: Value, uses: int) -> bool:
    if value.cost > MAX_FUSED_COST and (value.cost > MAX_EXPRESSION_COST or fused_cost(value) > MAX_FUSED_COST):
        return True
    return uses > 1 and value.cost > CHEAP_COST


def fused_cost(value: Value) -> int:
    """``value.cost`` counting each fused value it reads once, however often it is read (the
    renderer computes a repeated subexpression once): ``value.cost`` counts it at each read."""
    nodes, _ = _fused_graph(value)
    return sum(map(_own_cost, nodes))


def _own_cost(value: LazyValue) -> int:
    """What ``value``'s own op adds to the cost of its inputs."""
    return value.cost - sum(i.cost for i in value.inputs)


def loop_nest(idx: Sequence[K.Var], shape: Sequence[int], body: list, size: int,
              vectorize_inner: bool = True) -> list:
    """Loops over ``shape`` (outermost first) around ``body``; outer loop parallel when large."""
    if not shape:
        return list(body)
    stmts = list(body)
    for depth in range(len(shape) - 1, -1, -1):
        inner = depth == len(shape) - 1
        stmts = [K.Range(idx[depth], 0, shape[depth], stmts,
                         parallel=(depth == 0 and size >= PARALLEL_MIN_ELEMENTS and shape[0] > 1),
                         vectorize=K.AUTO if inner and vectorize_inner and shape[depth] > 1 else 0)]
    return stmts


def nest(idx: Sequence[K.Var], sizes: Sequence[int], body: list) -> list:
    """Plain loops over ``sizes`` (outermost first) around ``body`` (no hints)."""
    for depth in range(len(sizes) - 1, -1, -1):
        body = [K.Range(idx[depth], 0, sizes[depth], body)]
    return body


def reduce_identity(op_name: str, dtype: np.dtype) -> K.Const:
    """The value a fold with ``op_name`` starts from (0 for add, -inf for a float max...)."""
    if op_name == "add" or op_name == "or":
        return K.Const(0, dtype)
    if op_name == "mul":
        return K.Const(1, dtype)
    if op_name == "and":
        return K.Const(True if dtype == K.bool_ else -1, dtype)
    if dtype == K.bool_:
        return K.Const(op_name == "min", dtype)
    if K.is_float(dtype):
        return K.Const(-np.inf if op_name == "max" else np.inf, dtype)
    info = np.iinfo(dtype)
    return K.Const(info.min if op_name == "max" else info.max, dtype)


# --- the whole program -------------------------------------------------------------------------

def lower_program(closed: ClosedJaxpr, name: str = "jit", target: LoweringTarget | str = "cpu",
                  precision: str | None = None, tunables: list | None = None) -> K.Program:
    """The kernel-IR program computing a const-free closed jaxpr, for ``target``: a
    ``LoweringTarget`` (what the compile path passes), or just its kind "cpu" or "gpu" with
    default machine figures (the GPU does not use the CPU's packed templates, which hold
    per-thread panels a GPU would have to reserve for every resident thread: big float
    contractions are written in the shape the CUDA renderer tiles, the rest as folds).
    ``precision`` "tf32" lets the GPU's float32 GEMMs round their operands to TF32 (tensor
    cores). ``tunables``: a list that receives a ``gemm_schedule.TunableGemm`` for each CPU
    contraction whose schedule BEAM may search (``backends/beam.py``)."""
    machine = as_target(target, precision)
    jaxpr = closed.jaxpr
    if jaxpr.constvars or closed.consts:
        raise NotLowerable("closed jaxpr with constants (closure-convert it first)")
    names = itertools.count()
    lw = Lowerer(names, machine, tunables)
    in_bufs = [K.Buffer(f"in{i}", _stored(v.aval.dtype), v.aval.shape) for i, v in enumerate(jaxpr.invars)]
    out_bufs = [K.Buffer(f"out{i}", _stored(a.aval.dtype), a.aval.shape) for i, a in enumerate(jaxpr.outvars)]
    inputs = [_input_value(v.aval, b) for v, b in zip(jaxpr.invars, in_bufs)]
    # float16 and bfloat16 outputs are computed into float32 buffers, then stored in 16 bits
    staged = [lw.new_buffer(a.aval) if b.dtype in K.HALF else b for a, b in zip(jaxpr.outvars, out_bufs)]
    lw.lower(jaxpr, inputs, staged)
    for a, stage, buf in zip(jaxpr.outvars, staged, out_bufs):
        if stage is not buf:
            lw.materialize(BufferValue(a.aval, stage), into=buf)
    program = K.Program(_identifier(name), tuple(in_bufs), tuple(out_bufs), tuple(lw.steps), lw.constants)
    if machine.kind == "gpu":
        program = merge_independent_calls(program)
    else:
        program = merge_elementwise_chains(program)
    return program


def _stored(dtype: np.dtype) -> np.dtype:
    return dtype if dtype in K.HALF else ir_dtype(dtype)


def _input_value(aval: ShapedArray, buf: K.Buffer) -> Value:
    if buf.dtype not in K.HALF:
        return BufferValue(aval, buf)
    stored = BufferValue(aval, buf)
    return LazyValue(aval, lambda kb, idx: K.cast(stored.read(kb, idx), K.float32), 1)


def _identifier(name: str) -> str:
    cleaned = "".join(c if c.isalnum() else "_" for c in name) or "jit"
    return cleaned if cleaned[0].isalpha() else f"f_{cleaned}"
