"""Reverse mode: ``linearize``, transposition of linear jaxprs, ``vjp``, ``grad``,
``value_and_grad`` (``jacrev`` and ``hessian`` are in ``jacobian.py``).

grad = linearize + transpose (Autodidax): JVP under partial evaluation leaves
the tangent computation staged as a linear jaxpr; ``backward_pass`` runs it
backwards. Only linear primitives need a transpose rule, registered in
``transpose_rules``::

    rule(ct, *invals, **params) -> list of cotangents (None for non-linear inputs)

where each linear input arrives as an ``UndefinedPrimal`` holding its aval.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from fgrad import tree
from fgrad.core import dtypes
from fgrad.core.array import Array
from fgrad.core.ir import ClosedJaxpr, Jaxpr, Literal, Var
from fgrad.core.rules import UndefinedPrimal, is_undefined, transpose_rules
from fgrad.core.trace import current_interpreter, get_aval, set_interpreter, trace_to_jaxpr
from fgrad.ops.elementwise import add
from fgrad.transforms.jvp import (_check_float_inputs, JVPTracer, float0_zeros, is_float0, jvp_flat,
                                  zeros_like_aval)
from fgrad.transforms.partial_eval import PartialEvalInterpreter



# --- linearize ------------------------------------------------------------------------------

def linearize_flat(fun: Callable[..., Sequence[Any]], primals: Sequence[Any]
                   ) -> tuple[list[Any], ClosedJaxpr, list[bool]]:
    """Primal outputs and the linear jaxpr ``tangents_in -> tangents_out`` of a flat function.

    Only float inputs get tangents; the returned mask says which inputs did.
    """
    pe = PartialEvalInterpreter(current_interpreter())
    has_tangent = [dtypes.is_differentiable(get_aval(p).dtype) for p in primals]
    with set_interpreter(pe):
        tangents = [pe.new_unknown(get_aval(p).strip_weak_type()) if d else None
                    for p, d in zip(primals, has_tangent)]
        primals_out, tangents_out = jvp_flat(fun, primals, tangents)
        tangents_out = [zeros_like_aval(get_aval(p).strip_weak_type()) if t is None else t
                        for p, t in zip(primals_out, tangents_out)]
    linear = pe.builder.build(tangents_out)
    return primals_out, linear, has_tangent


def linearize(fun: Callable, *primals: Any) -> tuple[Any, Callable]:
    """Evaluate ``fun`` and return ``(out, f_jvp)`` where ``f_jvp(*tangents)`` is its linear map."""
    leaves, in_tree = tree.tree_flatten(primals)
    out_tree_box = []
    primals_out, linear, has_tangent = linearize_flat(_flat(fun, in_tree, out_tree_box), leaves)
    out_tree = out_tree_box[0]

    def f_jvp(*tangents):
        t_leaves, t_tree = tree.tree_flatten(tangents)
        if t_tree != in_tree:
            raise ValueError(f"linearize: tangents must have the primals' structure {in_tree}, got {t_tree}")
        outs = linear(*[t for t, d in zip(t_leaves, has_tangent) if d])
        return tree.tree_unflatten(out_tree, outs)

    return tree.tree_unflatten(out_tree, primals_out), f_jvp


def _flat(fun: Callable, in_tree, out_tree_box: list) -> Callable[..., list]:
    def flat_fun(*leaves):
        out = fun(*tree.tree_unflatten(in_tree, list(leaves)))
        out_leaves, out_tree = tree.tree_flatten(out)
        check_output_leaves(out, getattr(fun, "__name__", "function"))
        out_tree_box.append(out_tree)
        return out_leaves
    return flat_fun


def check_output_leaves(out: Any, fun_name: str) -> None:
    """Raise TypeError naming the key path of any output leaf that is not an array."""
    for path, leaf in tree.tree_flatten_with_path(out)[0]:
        try:
            get_aval(leaf)
        except TypeError:
            raise TypeError(f"{fun_name} must return arrays (or pytrees of arrays), but the output at "
                            f"{tree.keystr(path) or '<root>'} is a {type(leaf).__name__}: {leaf!r}") from None


# --- transposition --------------------------------------------------------------------------

def backward_pass(jaxpr: Jaxpr, consts: Sequence[Any], args: Sequence[Any],
                  cts_out: Sequence[Any]) -> list[Any]:
    """Propagate output cotangents back to the ``UndefinedPrimal`` entries of ``args``.

    Equations with no linear input are evaluated forward first (they compute
    residual-only values). Returns one cotangent (or None) per arg.
    """
    env: dict[Var, Any] = dict(zip(jaxpr.constvars, consts))
    linear: set[Var] = set()
    for var, arg in zip(jaxpr.invars, args):
        if is_undefined(arg):
            linear.add(var)
        else:
            env[var] = arg

    def read(atom):
        return atom.value if isinstance(atom, Literal) else env[atom]

    linear_eqns = []
    for eqn in jaxpr.eqns:
        if any(isinstance(v, Var) and v in linear for v in eqn.invars):
            linear.update(eqn.outvars)
            linear_eqns.append(eqn)
        else:
            outs = eqn.primitive.bind(*[read(v) for v in eqn.invars], **eqn.params)
            env.update(zip(eqn.outvars, outs if eqn.primitive.multiple_results else [outs]))

    cts: dict[Var, Any] = {}

    def accumulate(var: Var, ct: Any) -> None:
        cts[var] = ct if var not in cts else add_cotangents(cts[var], ct)

    for var, ct in zip(jaxpr.outvars, cts_out):
        if isinstance(var, Var) and var in linear and ct is not None:
            accumulate(var, ct)
    for eqn in reversed(linear_eqns):
        ct_outs = [cts.pop(v, None) for v in eqn.outvars]
        if all(ct is None for ct in ct_outs):
            continue
        rule = transpose_rules.get(eqn.primitive)
        if rule is None:
            raise NotImplementedError(
                f"fgrad: cannot transpose primitive '{eqn.primitive.name}' (it is not linear or has no "
                "transpose rule); reverse-mode differentiation through it is unsupported")
        invals = [UndefinedPrimal(v.aval) if isinstance(v, Var) and v in linear else read(v)
                  for v in eqn.invars]
        if eqn.primitive.multiple_results:
            ct_arg = [zeros_like_aval(v.aval) if ct is None else ct for v, ct in zip(eqn.outvars, ct_outs)]
        else:
            ct_arg = ct_outs[0]
        cts_in = rule(ct_arg, *invals, **eqn.params)
        for var, ct in zip(eqn.invars, cts_in):
            if ct is not None and isinstance(var, Var) and var in linear:
                accumulate(var, ct)
    return [cts.get(v) if is_undefined(a) else None for v, a in zip(jaxpr.invars, args)]


def add_cotangents(a: Any, b: Any) -> Any:
    return add(a, b)


def transpose_jaxpr(closed: ClosedJaxpr, linear_mask: Sequence[bool]) -> ClosedJaxpr:
    """The transpose of a jaxpr linear in the inputs marked by ``linear_mask``.

    Result: ``(non-linear inputs..., output cotangents...) -> cotangents of the linear inputs``
    (zeros where no cotangent flows).
    """
    in_avals = closed.in_avals
    nonlin_avals = [a for a, lin in zip(in_avals, linear_mask) if not lin]
    ct_avals = [a.strip_weak_type() for a in closed.out_avals]

    def fun(*args):
        nonlin, cts = iter(args[:len(nonlin_avals)]), args[len(nonlin_avals):]
        full = [UndefinedPrimal(a) if lin else next(nonlin) for a, lin in zip(in_avals, linear_mask)]
        res = backward_pass(closed.jaxpr, closed.consts, full, cts)
        return [zeros_like_aval(a.strip_weak_type()) if ct is None else ct
                for ct, a, lin in zip(res, in_avals, linear_mask) if lin]

    return trace_to_jaxpr(fun, [*nonlin_avals, *ct_avals])


# --- vjp / grad -----------------------------------------------------------------------------

def vjp(fun: Callable, *primals: Any, has_aux: bool = False):
    """Evaluate ``fun`` and return ``(out, vjp_fn)`` (plus ``aux`` with ``has_aux``).

    ``vjp_fn(ct)`` maps an output cotangent (same structure as ``out``) to a tuple
    of cotangents, one per primal.
    """
    leaves, in_tree = tree.tree_flatten(primals)
    out_tree_box: list = []
    aux_box: list = []

    def flat_fun(*flat):
        out = fun(*tree.tree_unflatten(in_tree, list(flat)))
        if has_aux:
            if not (isinstance(out, tuple) and len(out) == 2):
                raise TypeError("with has_aux=True the function must return a pair (output, aux), "
                                f"got {type(out).__name__}")
            out, aux = out
            aux_box.append(aux)
        check_output_leaves(out, getattr(fun, "__name__", "function"))
        out_leaves, out_tree = tree.tree_flatten(out)
        out_tree_box.append(out_tree)
        return out_leaves

    primals_out, linear, has_tangent = linearize_flat(flat_fun, leaves)
    out_tree = out_tree_box[0]
    out_avals = [get_aval(p) for p in primals_out]

    def vjp_fn(ct):
        ct_leaves, ct_tree = tree.tree_flatten(ct)
        if ct_tree != out_tree:
            raise ValueError(f"vjp_fn: the cotangent must have the output's structure {out_tree}, got {ct_tree}")
        ct_leaves = [_checked_cotangent(c, aval) for c, aval in zip(ct_leaves, out_avals)]
        lin_args = [UndefinedPrimal(a) for a in linear.in_avals]
        cts = iter(backward_pass(linear.jaxpr, linear.consts, lin_args, ct_leaves))
        result = []
        for p, d in zip(leaves, has_tangent):
            ct_in = next(cts) if d else None
            if not dtypes.is_differentiable(get_aval(p).dtype):
                result.append(float0_zeros(p))      # integer and bool inputs: float0, as in JAX
            else:
                result.append(zeros_like_aval(get_aval(p).strip_weak_type()) if ct_in is None else ct_in)
        return tree.tree_unflatten(in_tree, result)

    out = tree.tree_unflatten(out_tree, primals_out)
    if has_aux:
        aux = _strip_tracers(aux_box[0])
        return out, vjp_fn, aux
    return out, vjp_fn


def _checked_cotangent(ct: Any, aval: Any) -> Any:
    """An output cotangent for ``vjp_fn``, or None (a zero) for an integer or bool output's
    (JAX takes a ``float0`` one, or any cotangent of its shape, there)."""
    if is_float0(ct):
        shape = np.shape(ct)
        if dtypes.is_differentiable(aval.dtype):
            raise ValueError(f"vjp_fn: got a float0 cotangent for an output of type {aval.str_short()}; "
                             f"pass a {aval.dtype.name} cotangent of shape {aval.shape}")
    else:
        shape = get_aval(ct).shape
    if shape != aval.shape:
        raise ValueError(f"vjp_fn: cotangent of shape {shape} for an output of shape {aval.str_short()}")
    return ct if dtypes.is_differentiable(aval.dtype) else None


def linear_transpose(fun: Callable, *primals: Any, reduce_axes: Sequence = ()) -> Callable:
    """``jax.linear_transpose(fun, *primals)``: the transpose of the linear function ``fun``,
    traced at ``primals``' shapes and dtypes (their values are not used): ``transposed(ct)``
    takes a cotangent of ``fun``'s output structure and returns a tuple of cotangents, one per
    primal. A ``fun`` that is not linear in its arguments is an error when transposed.

    >>> f_t = linear_transpose(lambda x: 2.0 * x, fgrad.numpy.ones(3))   # doctest: +SKIP
    >>> f_t(fgrad.numpy.ones(3))   # (Array([2., 2., 2.]),)               # doctest: +SKIP
    """
    if reduce_axes:
        raise NotImplementedError("linear_transpose: reduce_axes (named axes summed over) is not supported; "
                                  "leave it out")
    leaves, in_tree = tree.tree_flatten(primals)
    _check_float_inputs(tree.tree_flatten_with_path(primals)[0], "linear_transpose")
    avals = [get_aval(leaf) for leaf in leaves]
    out_tree_box: list = []

    def flat_fun(*flat):
        out = fun(*tree.tree_unflatten(in_tree, list(flat)))
        check_output_leaves(out, getattr(fun, "__name__", "function"))
        out_leaves, out_tree = tree.tree_flatten(out)
        out_tree_box.append(out_tree)
        return out_leaves

    closed = trace_to_jaxpr(flat_fun, avals)
    out_tree, out_avals = out_tree_box[0], closed.out_avals

    def transposed(ct: Any) -> tuple:
        ct_leaves, ct_tree = tree.tree_flatten(ct)
        if ct_tree != out_tree:
            raise ValueError(f"linear_transpose: the cotangent must have the output's structure {out_tree}, "
                             f"got {ct_tree}")
        for c, aval in zip(ct_leaves, out_avals):
            if get_aval(c).shape != aval.shape:
                raise ValueError(f"linear_transpose: cotangent of shape {get_aval(c).str_short()} for an output "
                                 f"of shape {aval.str_short()}")
        cts = backward_pass(closed.jaxpr, closed.consts, [UndefinedPrimal(a) for a in avals], ct_leaves)
        return tree.tree_unflatten(in_tree, [zeros_like_aval(a.strip_weak_type()) if c is None else c
                                             for c, a in zip(cts, avals)])

    return transposed


def _strip_tracers(aux: Any) -> Any:
    """Aux outputs are not differentiated: drop the JVP/partial-eval wrapping they picked up."""

    def strip(x):
        while isinstance(x, JVPTracer):
            x = x.primal
        return x
    return tree.tree_map(strip, aux)


def _normalize_argnums(argnums: int | Sequence[int], nargs: int, name: str) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for n in nums:
        if not isinstance(n, int) or not -nargs <= n < nargs:
            raise ValueError(f"{name}: argnums={argnums!r} is out of range for a call with {nargs} "
                             "positional arguments")
    return tuple(n % nargs for n in nums)


def value_and_grad(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False,
                   holomorphic: bool = False, allow_int: bool = False) -> Callable:
    """``jax.value_and_grad(fun, argnums=0, has_aux=False, holomorphic=False, allow_int=False)``:
    like ``grad`` but returns ``(value, gradient)`` (``((value, aux), gradient)`` with has_aux).

    >>> value_and_grad(lambda x: (x ** 2).sum())(fgrad.numpy.ones(3))   # doctest: +SKIP
    (Array(3.), Array([2., 2., 2.]))
    """
    name = getattr(fun, "__name__", "function")

    def value_and_grad_fun(*args, **kwargs):
        nums = _normalize_argnums(argnums, len(args), "grad")
        diff_args = tuple(args[i] for i in nums)
        leaves, treedef = tree.tree_flatten(diff_args)
        if allow_int:
            held = [not dtypes.is_differentiable(get_aval(leaf).dtype) for leaf in leaves]
        else:
            _check_float_inputs(tree.tree_flatten_with_path(diff_args)[0], "grad")
            held = [False] * len(leaves)
        if holomorphic:
            check_complex("grad", "inputs", [leaf for leaf, h in zip(leaves, held) if not h])

        def partial_fun(*floats):
            it = iter(floats)
            diff = tree.tree_unflatten(treedef, [leaf if h else next(it) for leaf, h in zip(leaves, held)])
            full = list(args)
            for i, d in zip(nums, diff):
                full[i] = d
            return fun(*full, **kwargs)

        partial_fun.__name__ = name
        res = vjp(partial_fun, *[leaf for leaf, h in zip(leaves, held) if not h], has_aux=has_aux)
        out, vjp_fn = res[0], res[1]
        _check_scalar_output(out, name, holomorphic)
        it = iter(vjp_fn(_ones_like(out)))
        grads = tree.tree_unflatten(treedef, [np.zeros(np.shape(leaf), dtypes.float0) if h else next(it)
                                              for leaf, h in zip(leaves, held)])
        grads = grads[0] if isinstance(argnums, int) else grads
        return ((out, res[2]) if has_aux else out), grads

    value_and_grad_fun.__name__ = f"value_and_grad({name})"
    return value_and_grad_fun


def grad(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False,
         holomorphic: bool = False, allow_int: bool = False) -> Callable:
    """``jax.grad(fun, argnums=0, has_aux=False, holomorphic=False, allow_int=False)``: the
    gradient of a scalar-valued ``fun`` with respect to argument(s) ``argnums``.

    The gradient has the structure of the differentiated argument (any pytree). ``fun`` must
    return a real float scalar; its inputs may be complex, and then the gradient is JAX's:
    ``df/dx - i df/dy`` at ``z = x + iy`` (``grad(lambda z: abs(z) ** 2)(1 + 2j) == 2 - 4j``).
    With ``holomorphic=True``, ``fun`` maps complex inputs to a complex scalar and the gradient
    is its complex derivative. With ``allow_int=True``, integer and bool arguments are allowed:
    their gradient is a NumPy array of zeros of dtype ``float0`` (``fgrad.dtypes.float0``), as in JAX.

    >>> grad(lambda x: (x ** 2).sum())(fgrad.numpy.ones(3))   # doctest: +SKIP
    Array([2., 2., 2.], dtype=float32)
    """
    vg = value_and_grad(fun, argnums, has_aux, holomorphic, allow_int)

    def grad_fun(*args, **kwargs):
        (value, g) = vg(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    grad_fun.__name__ = f"grad({getattr(fun, '__name__', 'function')})"
    return grad_fun


def check_complex(where: str, what: str, leaves: Sequence[Any]) -> None:
    """``holomorphic=True`` needs complex ``what`` (inputs or outputs), as in JAX."""
    for leaf in leaves:
        dtype = get_aval(leaf).dtype
        if not dtypes.is_complex(dtype):
            raise TypeError(f"{where} with holomorphic=True requires {what} with complex dtype, but got "
                            f"{dtype.name}. Convert with .astype(fgrad.numpy.complex64), or drop holomorphic=True")


def check_real(where: str, leaves: Sequence[Any], side: str = "output") -> None:
    """Without ``holomorphic``, ``grad``/``jacrev`` need real-valued outputs and ``jacfwd``
    real-valued inputs (``side``: "output" or "input"; JAX's message)."""
    for leaf in leaves:
        dtype = get_aval(leaf).dtype
        if dtypes.is_complex(dtype):
            raise TypeError(f"{where} requires real-valued {side}s ({side} dtype that is a sub-dtype of "
                            f"np.floating), but got {dtype.name}. For holomorphic differentiation, pass "
                            "holomorphic=True. For differentiation of non-holomorphic functions involving "
                            f"complex {side}s, use fgrad.vjp directly.")


def _check_scalar_output(out: Any, name: str, holomorphic: bool = False) -> None:
    leaves = tree.tree_leaves(out)
    if len(leaves) != 1 or not hasattr(out, "shape") and len(leaves) != 1:
        raise TypeError(f"grad requires {name} to return a single scalar array, got a "
                        f"{type(out).__name__} with {len(leaves)} leaves")
    aval = get_aval(leaves[0])
    if aval.shape != ():
        raise TypeError(f"grad requires {name} to return a scalar (shape ()), but it returned shape "
                        f"{aval.shape} ({aval.str_short()}). Reduce it first (e.g. .sum() or .mean()), "
                        "or use jacrev/vjp for non-scalar outputs.")
    if not dtypes.is_differentiable(aval.dtype):
        raise TypeError(f"grad requires {name} to return a float scalar, got {aval.str_short()}")
    if holomorphic:
        check_complex("grad", "outputs", leaves)
    else:
        check_real("grad", leaves)


def _ones_like(x: Any) -> Any:
    aval = get_aval(x)
    return Array(np.ones(aval.shape, aval.dtype))
