"""Custom differentiation rules: ``custom_jvp`` and ``custom_vjp`` (JAX's decorators).

    @custom_jvp
    def log1pexp(x):
        return fnp.log1p(fnp.exp(x))

    @log1pexp.defjvp
    def log1pexp_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return log1pexp(x), t * fgrad.lax.logistic(x)

A call binds one primitive carrying the traced function (what runs when nothing
differentiates it) and the Python rule:

- ``custom_jvp_call`` — its JVP rule calls the user's jvp; the rule's own operations are
  ordinary ones, so higher-order derivatives differentiate the rule.
- ``custom_vjp_call`` — its JVP rule runs the user's ``fwd`` and emits ``custom_lin``, a
  linear primitive whose transpose is the user's ``bwd``. So reverse mode uses the
  custom rule; forward mode raises a clear error, as in JAX.

Under ``vmap`` the function and the rules are batched (arguments and outputs at axis 0).
Closed-over values are constants to the rules: differentiate with respect to explicit
arguments only (or pass static values through ``nondiff_argnums``).
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Sequence

from fgrad import tree
from fgrad.core.trace import get_aval
from fgrad.core.types import ShapedArray
from fgrad.ops.control import trace_body
from fgrad.ops.custom import _zeros_for, custom_jvp_call_p, custom_vjp_call_p
from fgrad.transforms.jvp import zeros_like_aval
from fgrad.ops.elementwise import add

__all__ = ["custom_jvp", "custom_vjp"]


# --- shared plumbing -------------------------------------------------------------------------------

def _resolve_args(fun: Callable, name: str, args: tuple, kwargs: dict) -> tuple:
    """Keyword arguments bound to positions (custom rules see positional arguments)."""
    if not kwargs:
        return args
    try:
        bound = inspect.signature(fun).bind(*args, **kwargs)
    except TypeError as err:
        raise TypeError(f"{name}: {err}") from None
    bound.apply_defaults()
    return tuple(bound.arguments.values())


def _split_nondiff(args: tuple, nondiff_argnums: tuple[int, ...], name: str) -> tuple[list, list]:
    for i in nondiff_argnums:
        if not 0 <= i < len(args):
            raise ValueError(f"{name}: nondiff_argnums={nondiff_argnums} but the call has {len(args)} arguments")
    static = [args[i] for i in nondiff_argnums]
    dynamic = [a for i, a in enumerate(args) if i not in nondiff_argnums]
    return static, dynamic


def _merge_nondiff(static: Sequence[Any], dynamic: Sequence[Any], nondiff_argnums: tuple[int, ...]) -> list:
    static_it, dynamic_it = iter(static), iter(dynamic)
    total = len(static) + len(dynamic)
    return [next(static_it) if i in nondiff_argnums else next(dynamic_it) for i in range(total)]


def _flatten_args(name: str, dynamic: Sequence[Any]) -> tuple[list, Any, list[ShapedArray]]:
    with_paths, in_tree = tree.tree_flatten_with_path(tuple(dynamic))
    leaves, avals = [], []
    for path, leaf in with_paths:
        try:
            avals.append(get_aval(leaf))
        except TypeError:
            raise TypeError(f"{name}: the argument at {tree.keystr(path)} is a {type(leaf).__name__}; "
                            "arrays (in pytrees) only, or mark the argument in nondiff_argnums") from None
        leaves.append(leaf)
    return leaves, in_tree, avals


def _trace_fun(fun: Callable, static, nondiff_argnums, in_tree, avals, name: str):
    """Trace the primal function: ``(const-free jaxpr, its constants, output tree)``."""
    out_box: list = []

    def flat(*leaves):
        dynamic = tree.tree_unflatten(in_tree, list(leaves))
        out = fun(*_merge_nondiff(static, dynamic, nondiff_argnums))
        out_leaves, out_tree = tree.tree_flatten(out)
        for leaf in out_leaves:
            get_aval(leaf)
        out_box.append(out_tree)
        return out_leaves

    closed, consts = trace_body(flat, avals)
    return closed, consts, out_box[0]


def _check_like(name: str, what: str, got_tree, want_tree, got: Sequence[Any], want: Sequence[ShapedArray]) -> None:
    if got_tree != want_tree:
        raise TypeError(f"{name}: {what} must have the structure {want_tree}, got {got_tree}")
    for i, (value, aval) in enumerate(zip(got, want)):
        va = get_aval(value)
        if va.shape != aval.shape:
            raise TypeError(f"{name}: {what} leaf {i} has shape {va.shape} but {aval.str_short()} was "
                            "expected (it must match the primal's shape)")


# --- custom_jvp ----------------------------------------------------------------------------------------

class custom_jvp:
    """Give ``fun`` a hand-written JVP rule (``defjvp``), used by every derivative of it.

    ``nondiff_argnums`` marks static arguments (passed first to the rule).
    """

    def __init__(self, fun: Callable, nondiff_argnums: Sequence[int] = ()):
        if not callable(fun):
            raise TypeError(f"custom_jvp expects a function, got {type(fun).__name__}")
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.nondiff_argnums = tuple(int(i) for i in nondiff_argnums)
        self.jvp: Callable | None = None
        self.symbolic_zeros = False

    def defjvp(self, jvp: Callable, symbolic_zeros: bool = False) -> Callable:
        """Set the rule ``jvp(*nondiff_args, primals, tangents) -> (primal_out, tangent_out)``."""
        if not callable(jvp):
            raise TypeError(f"defjvp expects a function, got {type(jvp).__name__}")
        self.jvp, self.symbolic_zeros = jvp, bool(symbolic_zeros)
        return jvp

    def defjvps(self, *jvps: Callable | None) -> None:
        """Set one rule per argument: ``jvps[i](tangent_i, primal_out, *primals)``, summed.

        ``None`` marks an argument with a zero derivative."""
        def jvp(primals, tangents):
            out = self.fun(*primals)
            total = None
            for rule, t in zip(jvps, tangents):
                if rule is None:
                    continue
                term = rule(t, out, *primals)
                total = term if total is None else tree.tree_map(add, total, term)
            return out, tree.tree_map(_zeros_for, out) if total is None else total
        self.defjvp(jvp)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        name = getattr(self.fun, "__name__", "custom_jvp function")
        if self.jvp is None:
            raise TypeError(f"custom_jvp function {name} has no JVP rule: define one with "
                            f"@{name}.defjvp before calling it")
        args = _resolve_args(self.fun, name, args, kwargs)
        static, dynamic = _split_nondiff(args, self.nondiff_argnums, name)
        leaves, in_tree, avals = _flatten_args(name, dynamic)
        call, consts, out_tree = _trace_fun(self.fun, static, self.nondiff_argnums, in_tree, avals, name)
        rule = _flat_jvp_rule(self.jvp, static, in_tree, out_tree, call.out_avals, name)
        outs = custom_jvp_call_p.bind(*consts, *leaves, call=call, jvp=rule, num_consts=len(consts),
                                      symbolic_zeros=self.symbolic_zeros)
        return tree.tree_unflatten(out_tree, outs)


def _flat_jvp_rule(user_jvp: Callable, static, in_tree, out_tree, out_avals, name: str) -> Callable:
    """The user's pytree rule as ``(primal leaves, tangent leaves) -> (out leaves, tangent leaves)``."""
    def rule(primals, tangents):
        p = tuple(tree.tree_unflatten(in_tree, list(primals)))
        t = tuple(tree.tree_unflatten(in_tree, list(tangents)))
        result = user_jvp(*static, p, t)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise TypeError(f"{name}: the custom JVP rule must return a pair (primal_out, tangent_out), "
                            f"got {type(result).__name__}")
        out_leaves, got_tree = tree.tree_flatten(result[0])
        t_leaves, t_tree = tree.tree_flatten(result[1])
        _check_like(name, "the JVP rule's primal output", got_tree, out_tree, out_leaves, out_avals)
        _check_like(name, "the JVP rule's tangent output", t_tree, out_tree, t_leaves, out_avals)
        return out_leaves, t_leaves
    rule.__name__ = getattr(user_jvp, "__name__", "jvp")
    return rule


# --- custom_vjp ----------------------------------------------------------------------------------------

class custom_vjp:
    """Give ``fun`` a hand-written reverse-mode rule: ``defvjp(fwd, bwd)``.

    ``fwd(*args) -> (out, residuals)`` runs forward; ``bwd(*nondiff_args, residuals, ct_out)``
    returns a tuple with one cotangent per (differentiable) argument (``None`` for zero).

    >>> @custom_vjp
    ... def clip_gradient(x):
    ...     return x
    >>> clip_gradient.defvjp(lambda x: (x, None), lambda _, g: (fnp.clip(g, -1.0, 1.0),))
    """

    def __init__(self, fun: Callable, nondiff_argnums: Sequence[int] = ()):
        if not callable(fun):
            raise TypeError(f"custom_vjp expects a function, got {type(fun).__name__}")
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.nondiff_argnums = tuple(int(i) for i in nondiff_argnums)
        self.fwd: Callable | None = None
        self.bwd: Callable | None = None

    def defvjp(self, fwd: Callable, bwd: Callable) -> None:
        """Set the forward ``fwd(*args) -> (out, res)`` and backward ``bwd(*nondiff, res, ct)`` rules."""
        if not callable(fwd) or not callable(bwd):
            raise TypeError("defvjp expects two functions (fwd, bwd)")
        self.fwd, self.bwd = fwd, bwd

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        name = getattr(self.fun, "__name__", "custom_vjp function")
        if self.fwd is None:
            raise TypeError(f"custom_vjp function {name} has no VJP rule: define one with "
                            f"{name}.defvjp(fwd, bwd) before calling it")
        args = _resolve_args(self.fun, name, args, kwargs)
        static, dynamic = _split_nondiff(args, self.nondiff_argnums, name)
        leaves, in_tree, avals = _flatten_args(name, dynamic)
        call, consts, out_tree = _trace_fun(self.fun, static, self.nondiff_argnums, in_tree, avals, name)
        fwd, bwd = _flat_vjp_rules(self, static, in_tree, avals, out_tree, call.out_avals, name)
        outs = custom_vjp_call_p.bind(*consts, *leaves, call=call, fwd=fwd, bwd=bwd, num_consts=len(consts),
                                      n_out=len(call.out_avals))
        return tree.tree_unflatten(out_tree, outs)


def _flat_vjp_rules(cv: custom_vjp, static, in_tree, in_avals, out_tree, out_avals, name: str):
    res_tree_box: list = []

    def fwd(*leaves):
        dynamic = tree.tree_unflatten(in_tree, list(leaves))
        result = cv.fwd(*_merge_nondiff(static, dynamic, cv.nondiff_argnums))
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise TypeError(f"{name}: fwd must return a pair (output, residuals), got {type(result).__name__}")
        out_leaves, got_tree = tree.tree_flatten(result[0])
        _check_like(name, "fwd's output", got_tree, out_tree, out_leaves, out_avals)
        res_leaves, res_tree = tree.tree_flatten(result[1])
        res_tree_box[:] = [res_tree]
        return [*out_leaves, *res_leaves]

    def bwd(*res_and_cts):
        n_res = len(res_and_cts) - len(out_avals)
        res = tree.tree_unflatten(res_tree_box[0], list(res_and_cts[:n_res]))
        ct = tree.tree_unflatten(out_tree, list(res_and_cts[n_res:]))
        cts_in = cv.bwd(*static, res, ct)
        return _flat_cotangents(cts_in, in_tree, in_avals, name)

    fwd.__name__ = getattr(cv.fwd, "__name__", "fwd")
    bwd.__name__ = getattr(cv.bwd, "__name__", "bwd")
    return fwd, bwd


def _flat_cotangents(cts_in: Any, in_tree, in_avals, name: str) -> list:
    """bwd's tuple of per-argument cotangents as leaves (``None`` → zeros), checked."""
    if not isinstance(cts_in, (tuple, list)):
        raise TypeError(f"{name}: bwd must return a tuple with one cotangent per differentiable "
                        f"argument, got {type(cts_in).__name__}")
    args_template = tree.tree_unflatten(in_tree, list(in_avals))
    if len(cts_in) != len(args_template):
        raise TypeError(f"{name}: bwd returned {len(cts_in)} cotangents for {len(args_template)} "
                        "differentiable arguments")
    leaves = []
    for arg_avals, ct in zip(args_template, cts_in):
        avals, _ = tree.tree_flatten(arg_avals, is_leaf=lambda a: isinstance(a, ShapedArray))
        if ct is None:
            leaves += [zeros_like_aval(a.strip_weak_type()) for a in avals]
            continue
        ct_leaves, _ = tree.tree_flatten(ct, is_leaf=lambda c: c is None)
        if len(ct_leaves) != len(avals):
            raise TypeError(f"{name}: a cotangent returned by bwd has {len(ct_leaves)} leaves, but its "
                            f"argument has {len(avals)}; it must match the argument's structure")
        for c, a in zip(ct_leaves, avals):
            if c is None:
                leaves.append(zeros_like_aval(a.strip_weak_type()))
                continue
            if get_aval(c).shape != a.shape:
                raise TypeError(f"{name}: bwd returned a cotangent of shape {get_aval(c).shape} for an "
                                f"argument of type {a.str_short()}")
            leaves.append(c)
    return leaves

