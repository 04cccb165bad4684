"""Small top-level helpers JAX users reach for: ``eval_shape``, ``block_until_ready``,
``clear_caches``, ``named_scope`` / ``named_call``, ``default_backend``, ``process_index`` /
``process_count``."""
from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable

from fgrad import tree
from fgrad.compile.cache import executables
from fgrad.core.array import Array
from fgrad.core import dtypes
from fgrad.core.trace import Tracer, get_aval, trace_to_jaxpr
from fgrad.ops.control import run_jaxpr, trace_body
from fgrad.core.types import ShapeDtypeStruct
from fgrad.runtime import distributed
from fgrad.runtime.devices import default_platform
from fgrad.config import config


def eval_shape(fun: Callable, *args: Any, **kwargs: Any) -> Any:
    """``jax.eval_shape(fun, *args, **kwargs)``: the shapes and dtypes of ``fun``'s outputs, as a
    pytree of ``ShapeDtypeStruct``, found by tracing without computing anything. Arguments may be
    arrays, scalars or ``ShapeDtypeStruct`` stand-ins (no memory is allocated for them).

    >>> fgrad.eval_shape(lambda x: x @ x.T, fgrad.ShapeDtypeStruct((1000, 3), fgrad.numpy.float32))
    ShapeDtypeStruct(shape=(1000, 1000), dtype=float32)
    """
    leaves, treedef = tree.tree_flatten((args, kwargs))
    out_tree = []

    def flat_fun(*flat):
        call_args, call_kwargs = tree.tree_unflatten(treedef, list(flat))
        leaves_out, out_def = tree.tree_flatten(fun(*call_args, **call_kwargs))
        out_tree.append(out_def)
        return leaves_out
    closed = trace_to_jaxpr(flat_fun, [get_aval(x) for x in leaves], dce=False)
    structs = [ShapeDtypeStruct(a.shape, a.dtype, weak_type=a.weak_type) for a in closed.out_avals]
    return tree.tree_unflatten(out_tree[0], structs)


def block_until_ready(x: Any) -> Any:
    """``jax.block_until_ready(x)``: wait until every array in the pytree ``x`` is computed (a
    no-op for CPU arrays, whose values exist when the call returns); returns ``x``."""
    for leaf in tree.tree_leaves(x):
        if isinstance(leaf, Array):
            leaf.block_until_ready()
    return x


def clear_caches() -> None:
    """``jax.clear_caches()``: drop every compiled program held in memory (traced functions are
    traced again on their next call; the disk cache of compiled code is kept)."""
    executables.clear()


@contextlib.contextmanager
def named_scope(name: str):
    """``jax.named_scope(name)``: accepted for JAX programs' sake; fgrad's jaxprs carry no name
    stack, so it changes nothing."""
    if not isinstance(name, str):
        raise TypeError(f"named_scope: name must be a string, got {type(name).__name__}")
    yield


def named_call(fun: Callable, *, name: str | None = None) -> Callable:
    """``jax.named_call(fun, name=...)``: ``fun`` itself (fgrad keeps no name stack)."""
    @functools.wraps(fun)
    def call(*args, **kwargs):
        return fun(*args, **kwargs)
    return call


def default_backend() -> str:
    """``jax.default_backend()``: 'cuda' when a usable GPU is the default, else 'cpu'."""
    return default_platform()


def process_index() -> int:
    """``jax.process_index()``: this process's index (0 without ``fgrad.distributed``)."""
    return distributed.process_index()


def process_count() -> int:
    """``jax.process_count()``: the number of processes (1 without ``fgrad.distributed``)."""
    return distributed.process_count()


def typeof(x: Any) -> Any:
    """``jax.typeof(x)``: the abstract value (shape, dtype, weak type) of an array or scalar.

    >>> typeof(fgrad.numpy.ones(2))   # doctest: +SKIP
    f32[2]
    """
    return get_aval(x)


def enable_x64(new_val: bool = True) -> contextlib.AbstractContextManager:
    """``with fgrad.enable_x64():`` (``jax.enable_x64``): 64-bit dtypes inside the block."""
    return config.override(enable_x64=bool(new_val))


def default_matmul_precision(precision: str) -> contextlib.AbstractContextManager:
    """``with fgrad.default_matmul_precision("float32"):`` (``jax.default_matmul_precision``): the
    precision of float32 contractions inside the block, by JAX's names (see ``fgrad.config``)."""
    return config.override(jax_default_matmul_precision=precision)


def effects_barrier() -> None:
    """``jax.effects_barrier()``: wait for pending effects (callbacks). fgrad runs them in order,
    before a call returns, so there is nothing to wait for."""


def closure_convert(fun: Callable, *example_args: Any) -> tuple[Callable, list]:
    """``jax.closure_convert(fun, *example_args)``: ``(converted, consts)`` with
    ``converted(*args, *consts) == fun(*args)``, where ``consts`` are the float values ``fun``
    closes over that an enclosing transform traces (and so may differentiate): passed as
    arguments, a ``custom_vjp`` can give them cotangents. Other closed-over values stay inside
    ``converted`` (eagerly, ``consts`` is empty). ``fun`` is traced at ``example_args``' shapes
    and dtypes."""
    leaves, in_tree = tree.tree_flatten(example_args)
    out_tree_box: list = []

    def flat(*xs):
        out = fun(*tree.tree_unflatten(in_tree, list(xs)))
        out_leaves, out_tree = tree.tree_flatten(out)
        out_tree_box.append(out_tree)
        return out_leaves

    closed, consts = trace_body(flat, [get_aval(leaf) for leaf in leaves])
    hoist = [i for i, c in enumerate(consts) if isinstance(c, Tracer) and dtypes.is_differentiable(get_aval(c).dtype)]
    hoisted = [consts[i] for i in hoist]

    def converted(*args_and_consts):
        split = len(args_and_consts) - len(hoisted)
        args, extra = args_and_consts[:split], args_and_consts[split:]
        arg_leaves, got_tree = tree.tree_flatten(tuple(args))
        if got_tree != in_tree:
            raise TypeError(f"closure_convert: the converted function was traced for arguments of structure "
                            f"{in_tree}, got {got_tree}")
        values = list(consts)
        for i, value in zip(hoist, extra):
            values[i] = value
        return tree.tree_unflatten(out_tree_box[0], run_jaxpr(closed, [*values, *arg_leaves]))

    return converted, hoisted
