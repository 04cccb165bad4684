"""Tracing: the current interpreter, tracers, eager evaluation and staging to jaxprs.

fgrad follows Autodidax 2: there is one *current interpreter* (thread-local). A
primitive's ``bind`` hands the operation to it. Each transform is an interpreter
whose values are tracers tagged with that interpreter; it unpacks its own tracers,
treats every other value as a constant, and runs its rule with the interpreter
it was created under (its ``parent``) as the current one. Nesting
(``grad(grad(f))``, ``vmap(grad(f))``) is a chain of interpreters, and tags keep
nested perturbations apart. The chain ends in ``EvalInterpreter``, which runs NumPy.
"""
from __future__ import annotations

import os
import sys
import threading
from typing import Any, Callable, Sequence

import numpy as np

from fgrad.config import config
from fgrad.core import dtypes
from fgrad.core.array import Array, ArrayOps
from fgrad.core.ir import ClosedJaxpr, Eqn, Jaxpr, Literal, Var, nested_jaxprs
from fgrad.core.types import ShapeDtypeStruct, ShapedArray
from fgrad import tree


class Interpreter:
    """Base class of every interpreter: eager evaluation, staging and each transform."""

    parent: "Interpreter | None" = None

    def process(self, primitive, args: Sequence[Any], params: dict) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement process")


class _Context(threading.local):
    def __init__(self):
        self.interpreter: Interpreter = EVAL


_context: _Context


def current_interpreter() -> Interpreter:
    return _context.interpreter


class set_interpreter:
    """Context manager making ``interpreter`` the current one."""

    __slots__ = ("interpreter", "previous")

    def __init__(self, interpreter: Interpreter):
        self.interpreter = interpreter

    def __enter__(self) -> Interpreter:
        self.previous = _context.interpreter
        _context.interpreter = self.interpreter
        return self.interpreter

    def __exit__(self, *exc) -> None:
        _context.interpreter = self.previous


# --- errors -----------------------------------------------------------------------------

_FGRAD_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def user_source_line() -> str:
    """``file:line (function): code`` of the innermost stack frame outside fgrad itself."""
    frame = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_FGRAD_DIR):
        frame = frame.f_back
    if frame is None:
        return "<unknown location>"
    import linecache
    code = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
    return f"{frame.f_code.co_filename}:{frame.f_lineno} ({frame.f_code.co_name}): {code}"


class ConcretizationError(TypeError):
    """A traced value was used where Python needs a concrete one (``if x > 0:``, ``int(x)``)."""


class UnexpectedTracerError(TypeError):
    """A tracer escaped the transformation that created it."""


def concretization_error(tracer: "Tracer", what: str, reason: str) -> ConcretizationError:
    return ConcretizationError(
        f"{what} needs a concrete value, but got a traced array {tracer.aval.str_short()} "
        f"({reason}).\n  at {user_source_line()}\n"
        "Fixes: branch with fgrad.lax.cond / fgrad.lax.switch or select values with "
        "fgrad.numpy.where instead of Python `if`; loop with fgrad.lax.fori_loop / while_loop; "
        "or, if the value is really a constant, mark that argument static with "
        "jit(f, static_argnums=...) / static_argnames=....")


# --- tracers ------------------------------------------------------------------------------

class Tracer(ArrayOps):
    """A value flowing through an interpreter; behaves like an array of ``aval``'s type."""

    __slots__ = ("_interp",)
    __array_priority__ = 1000

    aval: ShapedArray

    def __bool__(self) -> bool:
        return bool(self._concrete("bool()"))

    def __int__(self) -> int:
        return int(self._concrete("int()"))

    def __float__(self) -> float:
        return float(self._concrete("float()"))

    def __index__(self) -> int:
        return int(self._concrete("using an array as an index (__index__)"))

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self._concrete("np.asarray()"), dtype=dtype)

    def item(self):
        return self._concrete(".item()").item()

    def tolist(self):
        return self._concrete(".tolist()").tolist()

    def _concrete(self, what: str):
        """The concrete value behind this tracer, or a ConcretizationError."""
        raise concretization_error(self, what, "its value is not known while tracing")

    def __repr__(self) -> str:
        return f"Traced<{self.aval.str_short()}> by {type(self._interp).__name__}"


def get_aval(x: Any) -> ShapedArray:
    """The abstract value of any value a primitive accepts."""
    t = type(x)
    if t is Array:
        return x.aval
    if isinstance(x, Tracer):
        return x.aval
    if t is np.ndarray or isinstance(x, np.generic):   # as an fgrad array would hold it (x64 narrowing)
        return ShapedArray(x.shape, dtypes.canonicalize(x.dtype), False)
    if t in (int, float, bool, complex) or isinstance(x, (int, float, bool, complex)):
        return ShapedArray((), dtypes.python_scalar_dtype(x), t is not bool)
    if isinstance(x, Array):
        return x.aval
    if isinstance(x, ShapeDtypeStruct):
        return x.aval()
    raise TypeError(f"{type(x).__name__} is not a valid fgrad array type "
                    "(expected an fgrad Array, a NumPy array or a Python scalar)")


def is_scalar_constant(x: Any) -> bool:
    return type(x) in (int, float, bool, complex) or isinstance(x, np.generic) or (
        type(x) in (Array, np.ndarray) and x.ndim == 0)


# --- eager evaluation ---------------------------------------------------------------------

class EvalInterpreter(Interpreter):
    """Runs each primitive at once through its NumPy implementation (the eager path)."""

    def process(self, primitive, args, params):
        values, avals = [], []
        for x in args:
            if type(x) is Array:
                values.append(x._value)
                avals.append(x.aval)
            else:
                if getattr(type(x), "_device_process", None) is not None:  # e.g. a GPU array
                    return x._device_process(primitive, args, params)
                value = _unwrap(x)
                aval = _eager_aval(x, value)
                if aval.dtype != value.dtype:     # NumPy data narrowed as an fgrad array holds it
                    value = np.asarray(value, aval.dtype)
                values.append(value)
                avals.append(aval)
        out_aval = _cached_abstract_eval(primitive, avals, params)
        out = primitive.impl(*values, **params)
        if primitive.multiple_results:
            return [Array._from_numpy(o, a) for o, a in zip(out, out_aval)]
        return Array._from_numpy(out, out_aval)


def _unwrap(x: Any) -> Any:
    if type(x) is Array:
        return x._value
    if isinstance(x, Tracer):
        raise UnexpectedTracerError(
            f"a traced value {x!r} was used outside the transformation that created it "
            "(it escaped, e.g. stored in a global or a closure during jit/grad/vmap). "
            "Return values from transformed functions instead of storing them.")
    if isinstance(x, Array):
        return x._value
    if type(x) in (int, float, bool, complex):
        return np.asarray(x, dtypes.python_scalar_dtype(x))
    return x


def _eager_aval(arg: Any, value: Any) -> ShapedArray:
    """The aval of an eager operand (Python scalars stay weakly typed, as when staged)."""
    if isinstance(value, np.generic):
        key = (value.dtype, config.enable_x64)
        aval = _SCALAR_AVALS.get(key)
        if aval is None:
            aval = _SCALAR_AVALS[key] = ShapedArray((), dtypes.canonicalize(value.dtype))
        return aval
    if type(value) is np.ndarray and type(arg) not in (int, float, bool, complex):
        return ShapedArray(value.shape, dtypes.canonicalize(value.dtype))
    return get_aval(arg)


_SCALAR_AVALS: dict[tuple, ShapedArray] = {}

# Eager dispatch cost is dominated by Python overhead, so the shape/dtype rule's result is
# cached per (primitive, x64 flag, input avals, params) when every param is a plain value.
_ABSTRACT_EVAL_CACHE: dict[tuple, Any] = {}
_ABSTRACT_EVAL_CACHE_SIZE = 8192
_PLAIN_PARAM_TYPES = (int, float, str, bool, type(None), tuple)


def _cached_abstract_eval(primitive, avals: list, params: dict):
    if params:
        for value in params.values():
            if type(value) not in _PLAIN_PARAM_TYPES and not isinstance(value, (np.dtype, np.generic)):
                return primitive.abstract_eval(*avals, **params)
        key = (primitive, config.enable_x64, *avals, *params.items())
    else:
        key = (primitive, config.enable_x64, *avals)
    try:
        out = _ABSTRACT_EVAL_CACHE.get(key)
    except TypeError:  # a tuple param holding something unhashable
        return primitive.abstract_eval(*avals, **params)
    if out is None:
        out = primitive.abstract_eval(*avals, **params)
        if len(_ABSTRACT_EVAL_CACHE) >= _ABSTRACT_EVAL_CACHE_SIZE:
            _ABSTRACT_EVAL_CACHE.clear()
        _ABSTRACT_EVAL_CACHE[key] = out
    return out


EVAL = EvalInterpreter()
_context = _Context()


# --- staging into jaxprs ------------------------------------------------------------------

class StagingTracer(Tracer):
    """A value being recorded into a jaxpr; stands for one ``Var``.

    Tracer attributes are private (``_var``): a public name would hide the ``Array``
    method of the same name (``x.var()`` under ``jit``).
    """

    __slots__ = ("_var",)

    def __init__(self, interp: "StagingInterpreter", var: Var):
        self._interp = interp
        self._var = var

    @property
    def aval(self) -> ShapedArray:
        return self._var.aval


class StagingInterpreter(Interpreter):
    """Records every primitive applied to its tracers as a jaxpr equation.

    Values that are not its own tracers become constants: Python and 0-d scalars
    inline as literals, everything else (arrays, outer tracers) as constvars.
    """

    def __init__(self):
        self.eqns: list[Eqn] = []
        self.invars: list[Var] = []
        self._consts: dict[int, tuple[Var, Any]] = {}

    def new_arg(self, aval: ShapedArray) -> StagingTracer:
        var = Var(aval)
        self.invars.append(var)
        return StagingTracer(self, var)

    def to_atom(self, x: Any):
        if isinstance(x, StagingTracer) and x._interp is self:
            return x._var
        if not isinstance(x, Tracer) and is_scalar_constant(x):
            aval = get_aval(x)
            value = x if type(x) in (int, float, bool, complex) else np.asarray(_unwrap(x))[()]
            return Literal(value, aval)
        key = id(x)
        if key not in self._consts:
            self._consts[key] = (Var(get_aval(x).strip_weak_type() if isinstance(x, Tracer) else get_aval(x)), x)
        return self._consts[key][0]

    def process(self, primitive, args, params):
        atoms = [self.to_atom(x) for x in args]
        out_avals = primitive.abstract_eval(*[a.aval for a in atoms], **params)
        if not primitive.multiple_results:
            var = Var(out_avals)
            self.eqns.append(Eqn(primitive, atoms, [var], params))
            return StagingTracer(self, var)
        outvars = [Var(a) for a in out_avals]
        self.eqns.append(Eqn(primitive, atoms, outvars, params))
        return [StagingTracer(self, v) for v in outvars]

    def build(self, outputs: Sequence[Any], dce: bool = True) -> ClosedJaxpr:
        """Close the recording over ``outputs`` (own tracers or constants)."""
        outvars = [self.to_atom(x) for x in outputs]
        constvars = [var for var, _ in self._consts.values()]
        consts = [value for _, value in self._consts.values()]
        jaxpr = Jaxpr(constvars, self.invars, self.eqns, outvars)
        closed = ClosedJaxpr(jaxpr, consts)
        return dce_closed_jaxpr(closed) if dce else closed


#: Higher-order primitives can prune their bodies: ``rule(used_outputs, eqn) -> new eqn``
#: (the new eqn may drop inputs; its outvars must still include every used one).
dce_rules: dict[Any, Callable] = {}


def dce_jaxpr(jaxpr: Jaxpr, used_outputs: Sequence[bool] | None = None) -> tuple[Jaxpr, list[bool]]:
    """Drop equations whose outputs are never used (effectful ones stay).

    Returns the pruned jaxpr and which invars it still uses. With
    ``used_outputs`` only those outputs are kept.
    """
    outvars = jaxpr.outvars if used_outputs is None else [
        v for v, used in zip(jaxpr.outvars, used_outputs) if used]
    live = {v for v in outvars if isinstance(v, Var)}
    kept = []
    for eqn in reversed(jaxpr.eqns):
        used = [v in live for v in eqn.outvars]
        if not any(used) and not eqn_has_effects(eqn):
            continue
        rule = dce_rules.get(eqn.primitive)
        if rule is not None and not all(used):
            eqn = rule(used, eqn)
        kept.append(eqn)
        live.update(v for v in eqn.invars if isinstance(v, Var))
    kept.reverse()
    used_inputs = [v in live for v in jaxpr.invars]
    constvars = [v for v in jaxpr.constvars if v in live]
    return Jaxpr(constvars, jaxpr.invars, kept, outvars), used_inputs


def eqn_has_effects(eqn: Eqn) -> bool:
    """Whether ``eqn`` must run even when nothing reads its results: its primitive has effects
    (a debug callback), or a body it runs (a scan's, a cond's branches) holds such an equation."""
    if eqn.primitive.has_effects:
        return True
    return any(eqn_has_effects(inner) for j in nested_jaxprs(eqn.params.values()) for inner in j.eqns)


def dce_closed_jaxpr(closed: ClosedJaxpr) -> ClosedJaxpr:
    """``dce_jaxpr`` that also drops the constants no longer used."""
    jaxpr, _ = dce_jaxpr(closed.jaxpr)
    keep = set(jaxpr.constvars)
    consts = [c for v, c in zip(closed.jaxpr.constvars, closed.consts) if v in keep]
    return ClosedJaxpr(jaxpr, consts)


def trace_to_jaxpr(fun: Callable[..., Sequence[Any]], in_avals: Sequence[ShapedArray],
                   dce: bool = True) -> ClosedJaxpr:
    """Stage a flat function (arrays in, list of arrays out) into a ClosedJaxpr."""
    builder = StagingInterpreter()
    with set_interpreter(builder):
        args = [builder.new_arg(aval) for aval in in_avals]
        outs = fun(*args)
    return builder.build(list(outs), dce=dce)


def make_jaxpr(fun: Callable, static_argnums: int | Sequence[int] = ()) -> Callable[..., ClosedJaxpr]:
    """Return a function that traces ``fun`` on its arguments and gives the ClosedJaxpr.

    >>> make_jaxpr(lambda x: fgrad.numpy.sin(x) * 2.0)(fgrad.numpy.ones(3))   # doctest: +SKIP
    { lambda ; a:f32[3]. let
        b:f32[3] = sin a
        c:f32[3] = mul b 2.0
      in (c,) }
    """
    static = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)

    def make(*args, **kwargs):
        dynamic = [a for i, a in enumerate(args) if i not in static]
        leaves, treedef = tree.tree_flatten((dynamic, kwargs))
        in_avals = [get_aval(x) for x in leaves]

        def flat_fun(*flat_args):
            dyn, kw = tree.tree_unflatten(treedef, list(flat_args))
            it = iter(dyn)
            full = [a if i in static else next(it) for i, a in enumerate(args)]
            return tree.tree_leaves(fun(*full, **kw))

        return trace_to_jaxpr(flat_fun, in_avals)

    return make
