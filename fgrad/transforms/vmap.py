"""Vectorising map: the batching interpreter, ``vmap`` and ``vmap_jaxpr``.

A batch tracer carries a value and the position of its batch dimension
(``bdim``), or ``None`` when the value is the same for every batch member.

Rule signature, registered per primitive in ``vmap_rules``::

    rule(axis, vals, dims, **params) -> (out, out_dim)     # lists for multiple results

where ``axis`` is the ``AxisData`` (size and name) of the map being applied.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

from fgrad import tree
from fgrad.core.ir import ClosedJaxpr, eval_jaxpr, nested_jaxprs
from fgrad.core.trace import (Interpreter, Tracer, concretization_error, current_interpreter,
                              get_aval, set_interpreter, trace_to_jaxpr)
from fgrad.core.rules import vmap_rules
from fgrad.core.types import ShapedArray
from fgrad.ops.shape import bdim_at_front, moveaxis



class AxisData(NamedTuple):
    """The mapped axis: its size and its name (for collectives), if any."""
    size: int
    name: Any = None


class BatchTracer(Tracer):
    __slots__ = ("val", "bdim")

    def __init__(self, interp: "BatchInterpreter", val: Any, bdim: int | None):
        self._interp = interp
        self.val = val
        self.bdim = bdim

    @property
    def aval(self) -> ShapedArray:
        aval = get_aval(self.val)
        if self.bdim is None:
            return aval
        shape = aval.shape[:self.bdim] + aval.shape[self.bdim + 1:]
        return aval.update(shape=shape)

    def _concrete(self, what: str):
        raise concretization_error(self, what, "its value differs across the vmapped axis")


def binds_axis_name(params: dict, name: Any) -> bool:
    """Does a collective's ``axis_name`` param (or one inside a nested jaxpr) refer to ``name``?"""
    if name is None:
        return False
    if "axis_name" in params:
        names = params["axis_name"]
        if name in names if isinstance(names, tuple) else names == name:
            return True
    return any(_jaxpr_binds_axis_name(j, name) for j in nested_jaxprs(params.values()))


def _jaxpr_binds_axis_name(jaxpr, name: Any) -> bool:
    return any(binds_axis_name(eqn.params, name) for eqn in jaxpr.eqns)


class BatchInterpreter(Interpreter):
    """Applies each primitive to a whole batch at once through its vmap rule."""

    def __init__(self, parent: Interpreter, axis: AxisData):
        self.parent = parent
        self.axis = axis

    def lift(self, x: Any) -> tuple[Any, int | None]:
        if isinstance(x, BatchTracer) and x._interp is self:
            return x.val, x.bdim
        return x, None

    def process(self, primitive, args, params):
        vals, dims = zip(*[self.lift(x) for x in args]) if args else ((), ())
        if all(d is None for d in dims) and not binds_axis_name(params, self.axis.name):
            with set_interpreter(self.parent):
                return primitive.bind(*vals, **params)
        rule = vmap_rules.get(primitive)
        if rule is None:
            raise NotImplementedError(f"fgrad: no vmap rule for primitive '{primitive.name}'")
        with set_interpreter(self.parent):
            out, out_dim = rule(self.axis, list(vals), list(dims), **params)
        if primitive.multiple_results:
            return [self.wrap(v, d) for v, d in zip(out, out_dim)]
        return self.wrap(out, out_dim)

    def wrap(self, val: Any, bdim: int | None) -> Any:
        return val if bdim is None else BatchTracer(self, val, bdim)


# --- helpers for rules ----------------------------------------------------------------------

# --- the user-facing transform ----------------------------------------------------------------

def _canonical_axis(axis: int | None, ndim: int, what: str) -> int | None:
    if axis is None:
        return None
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise TypeError(f"vmap: {what} must be an int or None, got {axis!r}")
    if not -ndim - 1 <= axis <= ndim:
        raise ValueError(f"vmap: {what}={axis} is out of range for an array of rank {ndim}")
    return axis % (ndim + 1) if axis < 0 else axis


def _flatten_axes(axes: Any, values: Any, what: str) -> list:
    try:
        return tree.broadcast_prefix(axes, values, is_leaf=lambda x: x is None)
    except ValueError as err:
        raise ValueError(f"vmap {what}: {err}. {what} must be an int, None, or a tree prefix of "
                         "the arguments/outputs (e.g. in_axes=(0, None) for f(x, y)).") from None


def vmap(fun: Callable, in_axes: Any = 0, out_axes: Any = 0, axis_name: Any = None,
         axis_size: int | None = None) -> Callable:
    """Vectorise ``fun`` over a leading (or ``in_axes``-chosen) axis of its arguments.

    >>> vmap(lambda x, y: x @ y, in_axes=(0, None))(xs, w)   # a batched matmul   # doctest: +SKIP
    """
    if isinstance(in_axes, list):
        in_axes = tuple(in_axes)
    if not callable(fun):
        raise TypeError(f"vmap expects a function, got {type(fun).__name__}")

    def batched(*args, **kwargs):
        if kwargs:
            raise TypeError("vmap: keyword arguments are not supported by the vmapped function; "
                            "pass them positionally (or close over them)")
        leaves, in_tree = tree.tree_flatten(args)
        if isinstance(in_axes, tuple) and len(in_axes) != len(args):
            raise ValueError(f"vmap: in_axes has {len(in_axes)} entries but the function was called "
                             f"with {len(args)} positional arguments")
        axes_tree = in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(args)
        axes = [_canonical_axis(a, get_aval(x).ndim - 1, "in_axes")
                for a, x in zip(_flatten_axes(axes_tree, args, "in_axes"), leaves)]
        size = _axis_size(leaves, axes, axis_size)
        out_tree_box = []

        def flat_fun(*flat):
            out = fun(*tree.tree_unflatten(in_tree, list(flat)))
            out_leaves, out_tree = tree.tree_flatten(out)
            out_tree_box.append((out_tree, out))
            return out_leaves

        outs, out_dims = vmap_flat(flat_fun, leaves, axes, AxisData(size, axis_name))
        out_tree, out_example = out_tree_box[0]
        out_axes_flat = _flatten_axes(out_axes, out_example, "out_axes")
        results = []
        for out, dim, want in zip(outs, out_dims, out_axes_flat):
            if want is None:
                if dim is not None:
                    raise ValueError("vmap: out_axes=None requires the output to be the same for every "
                                     "batch member, but it varies along the mapped axis")
                results.append(out)
            else:
                want = _canonical_axis(want, get_aval(out).ndim - (dim is not None), "out_axes")
                results.append(moveaxis(out, dim, want, size))
        return tree.tree_unflatten(out_tree, results)

    batched.__name__ = getattr(fun, "__name__", "vmapped")
    batched.__doc__ = getattr(fun, "__doc__", None)
    return batched


def _axis_size(leaves: Sequence[Any], axes: Sequence[int | None], axis_size: int | None) -> int:
    sizes = {get_aval(x).shape[a] for x, a in zip(leaves, axes) if a is not None}
    if axis_size is not None:
        sizes.add(int(axis_size))
    if not sizes:
        raise ValueError("vmap needs at least one mapped argument (in_axes not None) or axis_size=")
    if len(sizes) > 1:
        details = ", ".join(f"arg {i}: size {get_aval(x).shape[a]} on axis {a}"
                            for i, (x, a) in enumerate(zip(leaves, axes)) if a is not None)
        raise ValueError(f"vmap got inconsistent sizes for the mapped axis: {details}")
    return sizes.pop()


def vmap_flat(fun: Callable[..., Sequence[Any]], vals: Sequence[Any], dims: Sequence[int | None],
              axis: AxisData) -> tuple[list[Any], list[int | None]]:
    """Batch a flat function; returns outputs and their batch dims (None when unbatched)."""
    interp = BatchInterpreter(current_interpreter(), axis)
    with set_interpreter(interp):
        outs = fun(*[interp.wrap(v, d) for v, d in zip(vals, dims)])
    lifted = [interp.lift(o) for o in outs]
    return [v for v, _ in lifted], [d for _, d in lifted]


def vmap_jaxpr(closed: ClosedJaxpr, axis: AxisData, in_dims: Sequence[int | None],
               out_dims_wanted: Sequence[int | None] | None = None) -> tuple[ClosedJaxpr, list[int | None]]:
    """Batch a closed jaxpr. Unbatched inputs keep their avals; batched ones gain ``axis.size``.

    With ``out_dims_wanted`` every output is moved (or broadcast) to that dim.
    """
    in_avals = []
    for aval, dim in zip(closed.in_avals, in_dims):
        if dim is not None:
            shape = list(aval.shape)
            shape.insert(dim, axis.size)
            aval = aval.update(shape=tuple(shape))
        in_avals.append(aval)
    out_dims: list[int | None] = []

    def fun(*args):
        outs, dims = vmap_flat(lambda *xs: eval_jaxpr(closed.jaxpr, closed.consts, *xs), args, in_dims, axis)
        if out_dims_wanted is not None:
            outs = [o if w is None and d is None else moveaxis(o, d, w, axis.size)
                    for o, d, w in zip(outs, dims, out_dims_wanted)]
            dims = list(out_dims_wanted)
        out_dims[:] = dims
        return outs

    return trace_to_jaxpr(fun, in_avals), out_dims
