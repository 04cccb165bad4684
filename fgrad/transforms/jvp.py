"""Forward-mode differentiation: the JVP interpreter, ``jvp`` and ``jvp_jaxpr`` (``jacfwd`` is in ``jacobian.py``).

A JVP tracer carries a primal and a tangent. A tangent of ``None`` is a
symbolic zero (and the only tangent integer/bool values ever have); zeros are
materialised only when a rule needs them.

Rule signature, registered per primitive in ``jvp_rules``::

    rule(primals, tangents, **params) -> (primal_out, tangent_out)

with lists for multiple-result primitives. Non-float inputs get ``None`` tangents.
A rule sees materialised zeros for the other symbolic zeros, unless its primitive is in
``symbolic_zero_rules``: such a rule (JAX's ``defjvp`` style, one term per operand) skips
the terms of ``None`` tangents, so ``0 * inf`` never turns a zero tangent into NaN.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from fgrad import tree
from fgrad.core import dtypes
from fgrad.core.ir import ClosedJaxpr, eval_jaxpr
from fgrad.core.trace import (Interpreter, Tracer, current_interpreter, get_aval, set_interpreter,
                              trace_to_jaxpr)
from fgrad.core.rules import jvp_rules, not_differentiable, symbolic_zero_rules
from fgrad.core.types import ShapedArray
from fgrad.ops.shape import full



class JVPTracer(Tracer):
    __slots__ = ("primal", "tangent")

    def __init__(self, interp: "JVPInterpreter", primal: Any, tangent: Any):
        self._interp = interp
        self.primal = primal
        self.tangent = tangent

    @property
    def aval(self) -> ShapedArray:
        return get_aval(self.primal)

    def _concrete(self, what: str):
        primal = self.primal
        return primal._concrete(what) if isinstance(primal, Tracer) else primal


def zeros_like_aval(aval: ShapedArray):
    """Materialised zeros of an abstract value (bound under the current interpreter)."""
    return full(aval.shape, 0, aval.dtype)


class JVPInterpreter(Interpreter):
    """Pushes tangents forward through every primitive."""

    def __init__(self, parent: Interpreter):
        self.parent = parent

    def lift(self, x: Any) -> tuple[Any, Any]:
        if isinstance(x, JVPTracer) and x._interp is self:
            return x.primal, x.tangent
        return x, None

    def process(self, primitive, args, params):
        primals, tangents = zip(*[self.lift(x) for x in args]) if args else ((), ())
        if all(t is None for t in tangents) or primitive in not_differentiable:
            with set_interpreter(self.parent):
                return primitive.bind(*primals, **params)
        rule = jvp_rules.get(primitive)
        if rule is None:
            raise NotImplementedError(f"fgrad: no differentiation rule for primitive '{primitive.name}'")
        with set_interpreter(self.parent):
            if primitive not in symbolic_zero_rules:
                tangents = [instantiate_tangent(p, t) for p, t in zip(primals, tangents)]
            primal_out, tangent_out = rule(list(primals), tangents, **params)
        if primitive.multiple_results:
            return [self.wrap(p, t) for p, t in zip(primal_out, tangent_out)]
        return self.wrap(primal_out, tangent_out)

    def wrap(self, primal: Any, tangent: Any) -> Any:
        if tangent is None or not dtypes.is_differentiable(get_aval(primal).dtype):
            return primal
        return JVPTracer(self, primal, tangent)


def instantiate_tangent(primal: Any, tangent: Any) -> Any:
    """Zeros for a symbolic-zero tangent of a float value; ``None`` stays for ints/bools."""
    if tangent is not None:
        return tangent
    aval = get_aval(primal)
    return zeros_like_aval(aval) if dtypes.is_differentiable(aval.dtype) else None


def jvp_flat(fun: Callable[..., Sequence[Any]], primals: Sequence[Any],
             tangents: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """JVP of a flat function; tangents may be ``None`` (zero). Returns (primals_out, tangents_out)."""
    interp = JVPInterpreter(current_interpreter())
    with set_interpreter(interp):
        ins = [interp.wrap(p, t) for p, t in zip(primals, tangents)]
        outs = fun(*ins)
    primals_out, tangents_out = [], []
    for out in outs:
        primal, tangent = interp.lift(out)
        primals_out.append(primal)
        tangents_out.append(tangent)
    return primals_out, tangents_out


def _check_float_inputs(values: Sequence[Any], where: str) -> None:
    for path, leaf in values:
        aval = get_aval(leaf)
        if not dtypes.is_differentiable(aval.dtype):
            raise TypeError(
                f"{where} requires float inputs, but the argument at {tree.keystr(path)} has dtype "
                f"{aval.dtype.name}. Differentiate with respect to float arrays only (convert with "
                ".astype(fgrad.numpy.float32)), or move the integer argument out of argnums.")


def jvp(fun: Callable, primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, Any]:
    """Evaluate ``fun`` and its directional derivative (forward mode).

    >>> jvp(fgrad.numpy.sin, (0.0,), (1.0,))   # (sin 0, cos 0 * 1)   # doctest: +SKIP
    (Array(0.), Array(1.))
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError("jvp(fun, primals, tangents): primals and tangents must be tuples or lists "
                        f"of arguments, got {type(primals).__name__} and {type(tangents).__name__}")
    primal_leaves, in_tree = tree.tree_flatten(tuple(primals))
    tangent_leaves, tangent_tree = tree.tree_flatten(tuple(tangents))
    if in_tree != tangent_tree:
        raise ValueError(f"jvp: primals and tangents must have the same structure; got {in_tree} and {tangent_tree}")
    tangent_leaves = [_checked_tangent(p, t) for p, t in zip(primal_leaves, tangent_leaves)]
    out_tree_box = []

    def flat_fun(*leaves):
        out = fun(*tree.tree_unflatten(in_tree, list(leaves)))
        out_leaves, out_tree = tree.tree_flatten(out)
        out_tree_box.append(out_tree)
        return out_leaves

    primals_out, tangents_out = jvp_flat(flat_fun, primal_leaves, tangent_leaves)
    tangents_out = [float0_zeros(p) if not dtypes.is_differentiable(get_aval(p).dtype)
                    else instantiate_tangent_or_zero(p, t) for p, t in zip(primals_out, tangents_out)]
    out_tree = out_tree_box[0]
    return tree.tree_unflatten(out_tree, primals_out), tree.tree_unflatten(out_tree, tangents_out)


def is_float0(x: Any) -> bool:
    """Whether ``x`` is an array of dtype ``float0`` (the tangent type of integers and bools)."""
    return getattr(x, "dtype", None) == dtypes.float0


def float0_zeros(primal: Any) -> np.ndarray:
    """The tangent (or cotangent) of an integer or bool value: NumPy zeros of dtype ``float0``
    of its shape, as JAX returns."""
    return np.zeros(get_aval(primal).shape, dtypes.float0)


def _checked_tangent(primal: Any, tangent: Any) -> Any:
    """``tangent`` for ``jvp``, or None (a zero) for a ``float0`` one; as in JAX, an integer or
    bool primal takes a ``float0`` tangent and any other primal a tangent of its own dtype."""
    pa = get_aval(primal)
    if is_float0(tangent):
        shape, dtype = np.shape(tangent), dtypes.float0
    else:
        ta = get_aval(tangent)
        shape, dtype = ta.shape, ta.dtype
    if pa.shape != shape:
        raise ValueError(f"jvp called with different primal and tangent shapes: primal shape {pa.shape}, "
                         f"tangent shape {shape}")
    want = pa.dtype if dtypes.is_differentiable(pa.dtype) else dtypes.float0
    if dtype != want:
        hint = ("pass numpy.zeros(shape, fgrad.dtypes.float0): integer and bool inputs have no tangent"
                if want == dtypes.float0 else f"convert the tangent with .astype({want.name})")
        raise TypeError(f"jvp: the tangent of a {pa.dtype.name} primal must have dtype "
                        f"{'float0' if want == dtypes.float0 else want.name}, got "
                        f"{'float0' if dtype == dtypes.float0 else dtype.name}; {hint}")
    return None if want == dtypes.float0 else tangent


def instantiate_tangent_or_zero(primal: Any, tangent: Any) -> Any:
    """Zeros of the primal's type for a symbolic zero (float0-like zeros for ints)."""
    if tangent is not None:
        return tangent
    return zeros_like_aval(get_aval(primal).strip_weak_type())


def jvp_jaxpr(closed: ClosedJaxpr, nonzero_tangents: Sequence[bool],
              instantiate: bool | Sequence[bool] = True) -> tuple[ClosedJaxpr, list[bool]]:
    """The JVP of a closed jaxpr as a jaxpr ``(primals, nonzero tangents) -> (outs, out tangents)``.

    Returns the new jaxpr and which output tangents are non-zero (all True with ``instantiate``).
    Higher-order primitives (jit, cond, scan, ...) use this in their jvp rules.
    """
    n = len(closed.in_avals)
    tangent_avals = [a.strip_weak_type() for a, nz in zip(closed.in_avals, nonzero_tangents) if nz]
    nonzero_out: list[bool] = []
    if isinstance(instantiate, bool):
        instantiate = [instantiate] * len(closed.out_avals)

    def fun(*args):
        primals, tangent_args = args[:n], iter(args[n:])
        tangents = [next(tangent_args) if nz else None for nz in nonzero_tangents]
        outs, out_tangents = jvp_flat(lambda *xs: eval_jaxpr(closed.jaxpr, closed.consts, *xs),
                                      primals, tangents)
        out_tangents = [instantiate_tangent_or_zero(o, t) if inst else t
                        for o, t, inst in zip(outs, out_tangents, instantiate)]
        nonzero_out[:] = [t is not None for t in out_tangents]
        return [*outs, *[t for t in out_tangents if t is not None]]

    jaxpr = trace_to_jaxpr(fun, [*closed.in_avals, *tangent_avals])
    return jaxpr, nonzero_out
