"""The jaxpr IR: typed variables, literals, equations, jaxprs; a printer, a type checker
and an evaluator.

A jaxpr is a flat list of equations in SSA form::

    { lambda ; a:f32[3]. let
        b:f32[3] = sin a
        c:f32[3] = mul b 2.0
      in (c,) }

Constants captured while tracing become ``constvars`` whose values travel beside
the jaxpr in a ``ClosedJaxpr``.
"""
from __future__ import annotations

import itertools
from typing import Any, Callable, Sequence

import numpy as np

from fgrad.core.types import ShapedArray
from fgrad.core.dtypes import kind as dtype_kind, short_name


class Var:
    """A jaxpr variable: a name-less identity with an abstract value."""

    __slots__ = ("aval", "count")
    _counter = itertools.count()

    def __init__(self, aval: ShapedArray):
        self.aval = aval
        self.count = next(Var._counter)

    def __repr__(self) -> str:
        return f"Var#{self.count}:{self.aval.str_short()}"


class Literal:
    """A scalar constant written inline in an equation (``mul b 2.0``)."""

    __slots__ = ("value", "aval")

    def __init__(self, value: Any, aval: ShapedArray):
        self.value = value
        self.aval = aval

    def __repr__(self) -> str:
        return f"Literal({_format_literal(self.value)}:{self.aval.str_short()})"


Atom = Var | Literal


class Eqn:
    """One equation: ``outvars = primitive[params] invars``."""

    __slots__ = ("primitive", "invars", "outvars", "params")

    def __init__(self, primitive, invars: Sequence[Atom], outvars: Sequence[Var], params: dict):
        self.primitive = primitive
        self.invars = list(invars)
        self.outvars = list(outvars)
        self.params = params

    def __repr__(self) -> str:
        return pretty_eqn(self, _Namer())


class Jaxpr:
    """A typed, first-order program: ``{ lambda constvars ; invars . let eqns in outvars }``."""

    __slots__ = ("constvars", "invars", "eqns", "outvars")

    def __init__(self, constvars: Sequence[Var], invars: Sequence[Var], eqns: Sequence[Eqn],
                 outvars: Sequence[Atom]):
        self.constvars = list(constvars)
        self.invars = list(invars)
        self.eqns = list(eqns)
        self.outvars = list(outvars)

    @property
    def in_avals(self) -> list[ShapedArray]:
        return [v.aval for v in self.invars]

    @property
    def out_avals(self) -> list[ShapedArray]:
        return [v.aval for v in self.outvars]

    def __str__(self) -> str:
        return pretty_jaxpr(self)

    __repr__ = __str__


class ClosedJaxpr:
    """A jaxpr together with the values of its constvars."""

    __slots__ = ("jaxpr", "consts")

    def __init__(self, jaxpr: Jaxpr, consts: Sequence[Any]):
        if len(consts) != len(jaxpr.constvars):
            raise ValueError(f"ClosedJaxpr: {len(jaxpr.constvars)} constvars but {len(consts)} consts")
        self.jaxpr = jaxpr
        self.consts = list(consts)

    in_avals = property(lambda self: self.jaxpr.in_avals)
    out_avals = property(lambda self: self.jaxpr.out_avals)
    eqns = property(lambda self: self.jaxpr.eqns)

    def __call__(self, *args):
        return eval_jaxpr(self.jaxpr, self.consts, *args)

    def __str__(self) -> str:
        return pretty_jaxpr(self.jaxpr)

    __repr__ = __str__


# --- printing -------------------------------------------------------------------------

class _Namer:
    """Names variables a, b, ..., z, ba, bb, ... in order of first appearance."""

    def __init__(self):
        self.names: dict[Var, str] = {}

    def __call__(self, var: Var) -> str:
        if var not in self.names:
            self.names[var] = _letters(len(self.names))
        return self.names[var]


def _letters(n: int) -> str:
    out = ""
    while True:
        out = chr(ord("a") + n % 26) + out
        n //= 26
        if n == 0:
            return out


def _format_literal(value) -> str:
    value = np.asarray(value)
    if value.dtype == np.bool_:
        return str(bool(value))
    if dtype_kind(value.dtype) == "f":
        return repr(float(value))
    if value.dtype.kind == "c":
        return repr(complex(value))
    return str(int(value))


def _atom(atom: Atom, names: _Namer) -> str:
    return _format_literal(atom.value) if isinstance(atom, Literal) else names(atom)


def _binder(var: Var, names: _Namer) -> str:
    return f"{names(var)}:{var.aval.str_short()}"


def _format_param(value, names: _Namer, indent: int) -> str:
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, (Jaxpr, ClosedJaxpr)) for v in value):
        inner = [_format_param(v, names, indent + 4) for v in value]
        return "(\n" + "".join(f"{' ' * (indent + 8)}{text}\n" for text in inner) + " " * (indent + 4) + ")"
    if isinstance(value, ClosedJaxpr):
        value = value.jaxpr
    if isinstance(value, Jaxpr):
        return pretty_jaxpr(value, indent + 4, _Namer())
    if isinstance(value, np.dtype):
        return short_name(value)
    if callable(value) and hasattr(value, "__name__"):
        return value.__name__
    return repr(value)


def pretty_eqn(eqn: Eqn, names: _Namer, indent: int = 0) -> str:
    ins = " ".join(_atom(a, names) for a in eqn.invars)
    params = ""
    if eqn.params:
        items = " ".join(f"{k}={_format_param(v, names, indent)}" for k, v in sorted(eqn.params.items()))
        params = f"[{items}]"
    outs = " ".join(_binder(v, names) for v in eqn.outvars)
    return f"{outs} = {eqn.primitive.name}{params} {ins}".rstrip()


def pretty_jaxpr(jaxpr: Jaxpr, indent: int = 0, names: _Namer | None = None) -> str:
    """Render a jaxpr in JAX's grammar, one equation per line."""
    names = names or _Namer()
    pad = " " * indent
    consts = " ".join(_binder(v, names) for v in jaxpr.constvars)
    ins = " ".join(_binder(v, names) for v in jaxpr.invars)
    lines = [f"{{ lambda {consts}; {ins}. let"]
    lines += [f"{pad}    {pretty_eqn(e, names, indent)}" for e in jaxpr.eqns]
    outs = " ".join(_atom(a, names) for a in jaxpr.outvars)
    lines.append(f"{pad}  in ({outs}{',' if len(jaxpr.outvars) == 1 else ''}) }}")
    return "\n".join(lines)


def nested_jaxprs(values) -> list[Jaxpr]:
    """The jaxprs inside equation params (alone, closed, or in tuples/lists, e.g. cond branches)."""
    found: list[Jaxpr] = []
    for value in values:
        if isinstance(value, ClosedJaxpr):
            found.append(value.jaxpr)
        elif isinstance(value, Jaxpr):
            found.append(value)
        elif isinstance(value, (tuple, list)):
            found.extend(nested_jaxprs(value))
    return found



# --- calls ------------------------------------------------------------------------------

#: Call-like primitives (jit, remat, custom_jvp_call, ...): ``call_body_params[p]`` names the
#: param holding the closed jaxpr an equation of ``p`` evaluates on all its operands, so that
#: putting the body in the equation's place keeps the program's meaning (once it has been
#: differentiated: a custom rule is lost).
call_body_params: dict[Any, str] = {}


def inline_calls(closed: ClosedJaxpr, should_inline: Callable[[Eqn], bool]) -> ClosedJaxpr:
    """``closed`` with every call-like equation that ``should_inline`` picks replaced by its
    body (with fresh variables, recursively); the bodies' constants become constvars."""
    constvars, consts = list(closed.jaxpr.constvars), list(closed.consts)
    eqns: list[Eqn] = []

    def copy(jaxpr: Jaxpr, env: dict) -> list[Atom]:
        def read(atom: Atom) -> Atom:
            return env.get(atom, atom) if isinstance(atom, Var) else atom

        for eqn in jaxpr.eqns:
            invars = [read(a) for a in eqn.invars]
            param = call_body_params.get(eqn.primitive)
            if param is not None and should_inline(eqn):
                body: ClosedJaxpr = eqn.params[param]
                fresh = [Var(v.aval) for v in body.jaxpr.constvars]
                constvars.extend(fresh)
                consts.extend(body.consts)
                inner = dict(zip(body.jaxpr.constvars, fresh))
                inner.update(zip(body.jaxpr.invars, invars))
                env.update(zip(eqn.outvars, copy(body.jaxpr, inner)))
                continue
            outvars = [Var(v.aval) for v in eqn.outvars] if env is not top else eqn.outvars
            env.update(zip(eqn.outvars, outvars))
            eqns.append(Eqn(eqn.primitive, invars, outvars, eqn.params))
        return [read(a) for a in jaxpr.outvars]

    top: dict = {}
    outvars = copy(closed.jaxpr, top)
    return ClosedJaxpr(Jaxpr(constvars, closed.jaxpr.invars, eqns, outvars), consts)


# --- type checking --------------------------------------------------------------------

class JaxprTypeError(TypeError):
    """A jaxpr is malformed: a variable used before definition or an eqn of the wrong type."""


def typecheck_jaxpr(jaxpr: Jaxpr) -> None:
    """Check scoping (each var defined once, before use) and each equation's output types.

    Raises JaxprTypeError naming the equation at fault.
    """
    defined: set[Var] = set()

    def define(var: Var) -> None:
        if var in defined:
            raise JaxprTypeError(f"variable {var} is defined twice in\n{jaxpr}")
        defined.add(var)

    def check_use(atom: Atom, where: str) -> None:
        if isinstance(atom, Var) and atom not in defined:
            raise JaxprTypeError(f"{where} uses {atom} before it is defined in\n{jaxpr}")

    for var in (*jaxpr.constvars, *jaxpr.invars):
        define(var)
    for eqn in jaxpr.eqns:
        for atom in eqn.invars:
            check_use(atom, f"equation `{eqn}`")
        out_avals = eqn.primitive.abstract_eval(*[a.aval for a in eqn.invars], **eqn.params)
        if not eqn.primitive.multiple_results:
            out_avals = [out_avals]
        if len(out_avals) != len(eqn.outvars):
            raise JaxprTypeError(f"equation `{eqn}` has {len(eqn.outvars)} outputs, its rule gives {len(out_avals)}")
        for var, aval in zip(eqn.outvars, out_avals):
            if var.aval.shape != aval.shape or var.aval.dtype != aval.dtype:
                raise JaxprTypeError(f"equation `{eqn}`: output typed {var.aval.str_short()} "
                                     f"but the rule gives {aval.str_short()}")
            define(var)
        for inner in nested_jaxprs(eqn.params.values()):
            typecheck_jaxpr(inner)
    for atom in jaxpr.outvars:
        check_use(atom, "the output list")


# --- evaluation -----------------------------------------------------------------------

def eval_jaxpr(jaxpr: Jaxpr, consts: Sequence[Any], *args: Any) -> list[Any]:
    """Evaluate a jaxpr by binding each equation's primitive under the current interpreter.

    So evaluating under a transform transforms the program (this is how higher-order
    primitives and ``jit`` fall back on their bodies).
    """
    if len(args) != len(jaxpr.invars):
        raise TypeError(f"eval_jaxpr: the jaxpr takes {len(jaxpr.invars)} arguments, got {len(args)}")
    env: dict[Var, Any] = {}

    def read(atom: Atom) -> Any:
        return atom.value if isinstance(atom, Literal) else env[atom]

    env.update(zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, args))
    for eqn in jaxpr.eqns:
        outs = eqn.primitive.bind(*[read(a) for a in eqn.invars], **eqn.params)
        if eqn.primitive.multiple_results:
            env.update(zip(eqn.outvars, outs))
        else:
            env[eqn.outvars[0]] = outs
    return [read(a) for a in jaxpr.outvars]


def jaxpr_as_fun(closed: ClosedJaxpr) -> Callable[..., list[Any]]:
    """A Python function that evaluates ``closed`` on its arguments."""
    return lambda *args: eval_jaxpr(closed.jaxpr, closed.consts, *args)


def closure_convert(closed: ClosedJaxpr) -> tuple[ClosedJaxpr, list[Any]]:
    """Turn constvars into leading invars: returns (const-free jaxpr, the const values)."""
    j = closed.jaxpr
    return ClosedJaxpr(Jaxpr([], [*j.constvars, *j.invars], j.eqns, j.outvars), []), list(closed.consts)
