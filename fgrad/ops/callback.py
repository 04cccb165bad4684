"""Host callbacks: Python functions called from inside fgrad programs (JAX's ``pure_callback``,
``io_callback`` and ``debug.callback``).

Three primitives, each with a ``HostCallback`` param (the Python function and the pytree
structure of its arguments; a function is process-specific, so ``compile/program_key.py``
gives a program holding one no disk key):

* ``pure_callback_p`` (``result_avals``, ``vmap_method``): a pure function of its operands,
  which may be called more or fewer times than written (dead-code elimination drops it when
  nothing reads its results; ``vmap`` may call it once per batch element). Not
  differentiable: its jvp and transpose rules raise JAX's errors (wrap it in ``custom_jvp`` /
  ``custom_vjp``).
* ``io_callback_p`` (``result_avals``, ``ordered``): the same with effects: never dropped.
* ``debug_callback_p`` (``ordered``): no results, effects (never dropped); its jvp calls it
  on the primals, so it runs in a function being differentiated as it does without ``grad``.

Eagerly, the function gets read-only NumPy views of the operands. Compiled, the lowering
(``fgrad.lower.host_callback``) calls it from inside the program's native call. Every
program runs its steps in order, so callbacks run in program order whether ``ordered`` or not.
Under a data-parallel ``jit`` (arguments placed on a mesh) a callback gets whole (global)
operands; io and debug callbacks run once, on the first device (pure ones on every device);
inside ``shard`` each device calls it on its own blocks.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from fgrad import tree
from fgrad.core import dtypes
from fgrad.core.partition import PARTIAL, partition_rules, replicated
from fgrad.core.primitive import Primitive
from fgrad.core.rules import jvp_rules, transpose_rules, vmap_rules
from fgrad.core.trace import get_aval
from fgrad.core.types import ShapedArray
from fgrad.ops import control
from fgrad.ops.shape import broadcast_in_dim, moveaxis

#: the ``vmap_method`` values ``pure_callback`` takes (JAX's)
VMAP_METHODS = ("sequential", "sequential_unrolled", "expand_dims", "broadcast_all", "legacy_vectorized", None)


class HostCallback:
    """A Python function called on flat arrays: ``callback(*arrays)`` rebuilds the arguments'
    pytree (``in_tree``, with the ``static`` leaves, such as strings, put back at their
    positions) and calls ``fn``. Equations hold it as a param; it is not a plain value, so a
    program holding one is never saved to disk."""

    __slots__ = ("fn", "in_tree", "static", "positional", "__weakref__")

    def __init__(self, fn: Callable, in_tree: Any, static: dict[int, Any] | None = None) -> None:
        self.fn, self.in_tree, self.static = fn, in_tree, dict(static or {})
        n = in_tree.num_leaves
        #: the arguments are just the arrays, in order (no pytree to rebuild per call)
        self.positional = not self.static and tree.tree_unflatten(in_tree, range(n)) == (tuple(range(n)), {})

    def __call__(self, *arrays: Any) -> Any:
        if self.positional:
            return self.fn(*arrays)
        leaves, dynamic = [], iter(arrays)
        for k in range(len(arrays) + len(self.static)):
            leaves.append(self.static[k] if k in self.static else next(dynamic))
        args, kwargs = tree.tree_unflatten(self.in_tree, leaves)
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<callback {getattr(self.fn, '__qualname__', type(self.fn).__name__)}>"


def flatten_arguments(args: tuple, kwargs: dict, static_others: bool) -> tuple[Any, dict, list]:
    """The arguments' array leaves and how to rebuild them: ``(in_tree, static, arrays)``.
    With ``static_others``, leaves that are not arrays (strings, None...) stay Python values,
    as in ``jax.debug.callback``; otherwise every leaf must be an array."""
    leaves, in_tree = tree.tree_flatten((args, kwargs))
    static, arrays = {}, []
    for k, leaf in enumerate(leaves):
        try:
            get_aval(leaf)
        except TypeError:
            if not static_others:
                raise TypeError(f"pure_callback: argument leaf {k} is a {type(leaf).__name__}, not an "
                                "array: pass arrays (or close over other values in the callback)") from None
            static[k] = leaf
            continue
        arrays.append(leaf)
    return in_tree, static, arrays


def result_avals_of(result_shape_dtypes: Any, op: str) -> tuple[list[ShapedArray], Any]:
    """The flat avals and pytree of ``result_shape_dtypes`` (leaves with ``shape`` and
    ``dtype``, such as ``fgrad.ShapeDtypeStruct`` or arrays)."""
    leaves, out_tree = tree.tree_flatten(result_shape_dtypes)
    avals = []
    for k, leaf in enumerate(leaves):
        if not (hasattr(leaf, "shape") and hasattr(leaf, "dtype")):
            raise TypeError(f"{op}: result_shape_dtypes leaf {k} is a {type(leaf).__name__}; each leaf "
                            "needs .shape and .dtype (use fgrad.ShapeDtypeStruct(shape, dtype))")
        dtype = np.dtype(leaf.dtype)
        if dtypes.canonicalize(dtype) != dtype:
            raise ValueError(f"{op}: result_shape_dtypes cannot specify 64-bit types ({dtype.name}) when "
                             "fgrad.config.enable_x64 is off")
        avals.append(ShapedArray(tuple(int(d) for d in leaf.shape), dtype))
    return avals, out_tree


def checked_results(results: Any, avals: Sequence[ShapedArray], op: str) -> list[np.ndarray]:
    """The callback's results as NumPy arrays of ``avals``' dtypes, after checking their number,
    shapes and dtypes (a Python scalar or a 64-bit value where x64 is off is narrowed, as JAX
    does); a ``RuntimeError`` names what was expected and what came back."""
    if type(results) is np.ndarray and len(avals) == 1:      # the common case, without the pytree walk
        aval = avals[0]
        if results.shape == aval.shape and results.dtype == aval.dtype:
            return [results]
    flat = tree.tree_leaves(results)
    if len(flat) != len(avals):
        raise RuntimeError(f"{op}: the callback returned {len(flat)} arrays, expected {len(avals)} "
                           f"({', '.join(a.str_short() for a in avals)}) as result_shape_dtypes says")
    out = []
    for k, (value, aval) in enumerate(zip(flat, avals)):
        arr = np.asarray(value)
        if arr.dtype != aval.dtype and dtypes.canonicalize(arr.dtype) == aval.dtype:
            arr = arr.astype(aval.dtype)
        if arr.shape != aval.shape:
            raise RuntimeError(f"{op}: incorrect output shape for return value #{k}: expected {aval.shape}, "
                               f"got {arr.shape} (result_shape_dtypes gives {aval.str_short()})")
        if arr.dtype != aval.dtype:
            raise RuntimeError(f"{op}: incorrect output dtype for return value #{k}: expected "
                               f"{aval.dtype.name}, got {arr.dtype.name} (result_shape_dtypes gives "
                               f"{aval.str_short()}; cast it in the callback)")
        out.append(arr)
    return out


def read_only(x: Any) -> np.ndarray:
    """A read-only NumPy view of an operand (the callback must not write into fgrad's arrays)."""
    view = np.asarray(x).view()
    view.flags.writeable = False
    return view


# --- the primitives ---------------------------------------------------------------------------

pure_callback_p = Primitive("pure_callback", multiple_results=True)
io_callback_p = Primitive("io_callback", multiple_results=True, has_effects=True)
debug_callback_p = Primitive("debug_callback", multiple_results=True, has_effects=True)


def _pure_impl(*args, callback, result_avals, vmap_method):
    return checked_results(callback(*map(read_only, args)), result_avals, "pure_callback")


def _io_impl(*args, callback, result_avals, ordered):
    return checked_results(callback(*map(read_only, args)), result_avals, "io_callback")


def _debug_impl(*args, callback, ordered):
    callback(*[np.array(a) for a in args])          # copies: a debug callback may keep them
    return []


pure_callback_p.def_impl(_pure_impl)
pure_callback_p.def_abstract_eval(lambda *avals, callback, result_avals, vmap_method: list(result_avals))
io_callback_p.def_impl(_io_impl)
io_callback_p.def_abstract_eval(lambda *avals, callback, result_avals, ordered: list(result_avals))
debug_callback_p.def_impl(_debug_impl)
debug_callback_p.def_abstract_eval(lambda *avals, callback, ordered: [])


# --- differentiation: JAX's errors; a debug callback sees the primals -----------------------------

def _pure_jvp(primals, tangents, **params):
    raise ValueError("Pure callbacks do not support JVP. Please use `fgrad.custom_jvp` to use callbacks "
                     "while taking gradients.")


def _pure_transpose(ct, *args, **params):
    raise ValueError("Pure callbacks do not support transpose. Please use `fgrad.custom_vjp` to use "
                     "callbacks while taking gradients.")


def _io_jvp(primals, tangents, **params):
    raise ValueError("IO callbacks do not support JVP.")


def _io_transpose(ct, *args, **params):
    raise ValueError("IO callbacks do not support transpose.")


def _debug_jvp(primals, tangents, **params):
    return debug_callback_p.bind(*primals, **params), []


jvp_rules[pure_callback_p] = _pure_jvp
transpose_rules[pure_callback_p] = _pure_transpose
jvp_rules[io_callback_p] = _io_jvp
transpose_rules[io_callback_p] = _io_transpose
jvp_rules[debug_callback_p] = _debug_jvp
transpose_rules[debug_callback_p] = lambda ct, *args, **params: [None] * len(args)


# --- vmap ------------------------------------------------------------------------------------------

def _sequential(axis, vals, dims, bind_one: Callable[[list], list]) -> tuple[list, list]:
    """Call the callback once per batch element, in order: a ``scan`` over the batched operands
    (the unbatched ones closed over), results stacked along axis 0."""
    batched = [moveaxis(x, d, 0, axis.size) for x, d in zip(vals, dims) if d is not None]
    x_avals = [get_aval(x).update(shape=get_aval(x).shape[1:]) for x in batched]

    def body(*slices):
        it = iter(slices)
        return bind_one([next(it) if d is not None else x for x, d in zip(vals, dims)])

    closed, consts = control.trace_body(body, x_avals)
    outs = control.scan_p.bind(*consts, *batched, jaxpr=closed, num_consts=len(consts), num_carry=0,
                               length=axis.size, reverse=False, unroll=1)
    return list(outs), [0] * len(outs)


def _pure_vmap(axis, vals, dims, callback, result_avals, vmap_method):
    params = dict(callback=callback, vmap_method=vmap_method)
    if vmap_method in ("sequential", "sequential_unrolled"):
        return _sequential(axis, vals, dims, lambda xs: pure_callback_p.bind(*xs, result_avals=result_avals,
                                                                            **params))
    if vmap_method not in ("expand_dims", "broadcast_all", "legacy_vectorized"):
        raise NotImplementedError(
            "vmap is only supported for the pure_callback primitive when vmap_method is one of "
            "'sequential', 'sequential_unrolled', 'expand_dims', 'broadcast_all', or 'legacy_vectorized'. "
            f"Got vmap_method={vmap_method!r}: pass vmap_method= to fgrad.pure_callback")
    n = axis.size
    moved = [moveaxis(x, d, 0, n) if d is not None else x for x, d in zip(vals, dims)]
    if vmap_method != "legacy_vectorized":
        size = n if vmap_method == "broadcast_all" else 1
        moved = [x if d is not None else _add_leading(x, size) for x, d in zip(moved, dims)]
    batched_avals = tuple(a.update(shape=(n, *a.shape)) for a in result_avals)
    outs = pure_callback_p.bind(*moved, result_avals=batched_avals, **params)
    return list(outs), [0] * len(outs)


def _add_leading(x: Any, size: int) -> Any:
    shape = get_aval(x).shape
    return broadcast_in_dim(x, (size, *shape), tuple(range(1, len(shape) + 1)))


def _io_vmap(axis, vals, dims, callback, result_avals, ordered):
    if ordered:
        raise ValueError("Cannot `vmap` ordered IO callback.")
    return _sequential(axis, vals, dims, lambda xs: io_callback_p.bind(
        *xs, callback=callback, result_avals=result_avals, ordered=False))


def _debug_vmap(axis, vals, dims, callback, ordered):
    """JAX's rule: the callback runs once per batch element, on that element's operands."""
    _sequential(axis, vals, dims, lambda xs: debug_callback_p.bind(*xs, callback=callback, ordered=ordered))
    return [], []


vmap_rules[pure_callback_p] = _pure_vmap
vmap_rules[io_callback_p] = _io_vmap
vmap_rules[debug_callback_p] = _debug_vmap

def _once_partition(ctx, eqn, ins):
    """Data-parallel jit, for callbacks with effects: the callback gets the whole (global)
    operands and runs once, on the data axis's first device, as JAX's unpartitioned ones do.
    Its results are that device's values and zeros elsewhere: a partial sum (of numbers; a
    callback with other results runs on every device)."""
    if any(v.aval.dtype.kind not in "iufc" for v in eqn.outvars):
        return replicated(ctx, eqn, ins)
    args = [ctx.full(v, layout) for v, layout in ins]
    avals = [get_aval(a) for a in args]
    out_avals = [v.aval for v in eqn.outvars]
    run = control.trace_closed(lambda *xs: list(eqn.primitive.bind(*xs, **eqn.params)), avals)
    skip = control.trace_closed(lambda *xs: [np.zeros(a.shape, a.dtype) for a in out_avals], avals)
    outs = control.bind_cond(ctx.block_start(1), args, [run, skip])   # device 0 runs; the others: zeros
    return [(o, PARTIAL) for o in outs]


# a pure callback runs on every device, on whole operands (its results are replicated)
partition_rules[pure_callback_p] = replicated
partition_rules[io_callback_p] = partition_rules[debug_callback_p] = _once_partition
