"""Host callbacks, the public face: ``fgrad.pure_callback``, ``fgrad.experimental.io_callback``,
and ``ShapeDtypeStruct`` from ``fgrad.core.types`` (``fgrad.debug`` holds ``print`` and ``callback``).

The Python function runs on the host. Eagerly it is called at once; under ``jit`` the compiled
program calls it from inside its one native call (``fgrad.lower.host_callback``): it gets
read-only NumPy arrays that are views of the program's memory, valid while it runs (copy what
you keep), and its results are checked against ``result_shape_dtypes`` and written into the
program. An exception it raises comes out of the jitted call, type and message unchanged.
Cost per call: a few microseconds (ctypes into Python, one NumPy view per array) plus the
function. A program holding a callback is never saved in the disk cache. On the GPU a jitted
program holding one runs on the host CPU (``HostFallbackWarning``), as programs calling LAPACK
do; eagerly, the function gets host copies of GPU operands and its results go back to the GPU.
"""
from __future__ import annotations

from typing import Any, Callable

from fgrad import tree
from fgrad.core.types import ShapeDtypeStruct
from fgrad.ops import callback as cb

__all__ = ["pure_callback", "io_callback", "ShapeDtypeStruct"]


def _check_callable(op: str, fn: Any) -> None:
    if not callable(fn):
        raise TypeError(f"{op}: the callback must be callable, got an object of type {type(fn).__name__}")


def pure_callback(callback: Callable[..., Any], result_shape_dtypes: Any, *args: Any,
                  sharding: Any = None, vmap_method: str | None = None, **kwargs: Any) -> Any:
    """``jax.pure_callback(callback, result_shape_dtypes, *args, sharding=None, vmap_method=None,
    **kwargs)``: call the pure Python function ``callback(*args, **kwargs)`` (NumPy arrays in,
    arrays matching the pytree ``result_shape_dtypes`` out), eagerly or from inside a compiled
    program.

    Pure: it may run more or fewer times than written (never, if nothing reads its results).
    Under ``vmap``, ``vmap_method`` decides how: ``"sequential"`` (or ``"sequential_unrolled"``)
    calls it once per batch element; ``"expand_dims"`` once, batched operands with their batch
    axis first and the others with a new leading axis of size 1; ``"broadcast_all"`` the same
    with the others broadcast to the batch size; ``"legacy_vectorized"`` leaves the others as
    they are; None raises ``NotImplementedError``. It is not differentiable (``ValueError``):
    wrap it in ``custom_jvp`` or ``custom_vjp``. Costs and GPU behaviour: ``fgrad.callbacks``.
    """
    _check_callable("pure_callback", callback)
    if vmap_method not in cb.VMAP_METHODS:
        raise ValueError(f"vmap_method must be one of the allowed methods {list(cb.VMAP_METHODS)}, "
                         f"but got: {vmap_method!r}")
    in_tree, _, arrays = cb.flatten_arguments(args, kwargs, static_others=False)
    avals, out_tree = cb.result_avals_of(result_shape_dtypes, "pure_callback")
    outs = cb.pure_callback_p.bind(*arrays, callback=cb.HostCallback(callback, in_tree),
                                   result_avals=tuple(avals), vmap_method=vmap_method)
    return tree.tree_unflatten(out_tree, outs)


def io_callback(callback: Callable[..., Any], result_shape_dtypes: Any, *args: Any,
                sharding: Any = None, ordered: bool = False, **kwargs: Any) -> Any:
    """``jax.experimental.io_callback(callback, result_shape_dtypes, *args, sharding=None,
    ordered=False, **kwargs)``: ``pure_callback`` for a function with effects: it runs every
    time the program reaches it, even when nothing reads its results (it gets copies of its
    operands). ``vmap`` calls it once per batch element (an ``ordered`` one cannot be
    vmapped); it is not differentiable."""
    _check_callable("io_callback", callback)
    in_tree, _, arrays = cb.flatten_arguments(args, kwargs, static_others=False)
    avals, out_tree = cb.result_avals_of(result_shape_dtypes, "io_callback")
    outs = cb.io_callback_p.bind(*arrays, callback=cb.HostCallback(callback, in_tree),
                                 result_avals=tuple(avals), ordered=bool(ordered))
    return tree.tree_unflatten(out_tree, outs)

