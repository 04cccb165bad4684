"""``pmap``: JAX's older single-axis data parallelism, as :func:`fgrad.shard` over a
one-axis mesh: the mapped axis of each argument is split over the devices, one slice each, and
``fun`` runs once per device on its slice (with the axis removed); collectives name the axis."""
from __future__ import annotations

import itertools
from typing import Any, Callable

import numpy as np

from fgrad import tree
from fgrad.core.trace import get_aval
from fgrad.ops.shape import expand_dims, reshape, transpose
from fgrad.runtime.devices import devices as all_devices
from fgrad.runtime.sharding import Mesh, PartitionSpec
from fgrad.transforms.shard import shard

__all__ = ["pmap"]

_unnamed = itertools.count()


def pmap(fun: Callable, axis_name: Any = None, *, in_axes: Any = 0, out_axes: Any = 0,
         static_broadcasted_argnums: Any = (), devices: Any = None, backend: str | None = None,
         axis_size: int | None = None, donate_argnums: Any = ()) -> Callable:
    """``jax.pmap(fun, axis_name=None, *, in_axes=0, out_axes=0, static_broadcasted_argnums=(),
    devices=None, backend=None, axis_size=None, donate_argnums=())``: ``fun`` on every device at
    once, device ``i`` getting slice ``i`` of each argument's mapped axis (``in_axes``: an int or
    None per argument, or a pytree prefix); results are stacked along ``out_axes``.

    It is :func:`fgrad.shard` over a one-axis mesh of the first ``n`` devices (``devices``, or
    ``fgrad.devices()``: set ``FGRAD_CPU_DEVICES`` for several CPU devices, as JAX's
    ``--xla_force_host_platform_device_count``), ``n`` the mapped axis' size.
    ``donate_argnums`` is accepted and not used (fgrad keeps the inputs).

    >>> pmap(lambda x: lax.psum(x, "i"), axis_name="i")(fnp.arange(4.))   # 4 devices  # doctest: +SKIP
    Array([6., 6., 6., 6.], dtype=float32)
    """
    if not callable(fun):
        raise TypeError(f"pmap expects a function, got {type(fun).__name__}")
    static = {static_broadcasted_argnums} if isinstance(static_broadcasted_argnums, int) \
        else set(static_broadcasted_argnums)
    name = axis_name if axis_name is not None else f"_pmap{next(_unnamed)}"

    def mapped(*args):
        static_vals = {i: a for i, a in enumerate(args) if i in static}
        dyn = tuple(a for i, a in enumerate(args) if i not in static)
        leaves, treedef = tree.tree_flatten(dyn)
        leaf_axes = tree.broadcast_prefix(_per_argument(in_axes, len(args), static), dyn,
                                          is_leaf=lambda x: x is None)
        leaf_axes = [_axis(ax, leaf) for ax, leaf in zip(leaf_axes, leaves)]
        sizes = {get_aval(leaf).shape[ax] for ax, leaf in zip(leaf_axes, leaves) if ax is not None}
        if axis_size is not None:
            sizes.add(int(axis_size))
        if len(sizes) != 1:
            raise ValueError(f"pmap got inconsistent sizes for the mapped axes: {sorted(sizes)}" if sizes else
                             "pmap needs at least one mapped argument (or axis_size=)")
        (n,) = sizes
        pool = list(devices) if devices is not None else all_devices(backend=backend)
        if n > len(pool):
            raise ValueError(f"pmap maps an axis of size {n} over devices, but only {len(pool)} are available; "
                             f"set FGRAD_CPU_DEVICES={n} (or pass devices=fgrad.devices({n}))")
        mesh = Mesh(np.array(pool[:n], dtype=object), (name,))
        moved = [leaf if ax is None else _moveaxis(leaf, ax, 0) for ax, leaf in zip(leaf_axes, leaves)]

        def per_device(*blocks):
            values = [b if ax is None else reshape(b, get_aval(b).shape[1:]) for ax, b in zip(leaf_axes, blocks)]
            dyn_vals = iter(tree.tree_unflatten(treedef, values))
            full = [static_vals[i] if i in static else next(dyn_vals) for i in range(len(args))]
            out = fun(*full)
            out_leaves = tree.broadcast_prefix(out_axes, out, is_leaf=lambda x: x is None)
            return tree.tree_unflatten(tree.tree_structure(out),
                                       [v if ax is None else expand_dims(v, (0,))
                                        for ax, v in zip(out_leaves, tree.tree_leaves(out))])

        in_specs = tuple(PartitionSpec() if ax is None else PartitionSpec(name) for ax in leaf_axes)
        out_specs = tree.tree_map(lambda ax: PartitionSpec() if ax is None else PartitionSpec(name), out_axes,
                                  is_leaf=lambda x: x is None)
        # pmap has no replication typing: every value counts as per-device (as shard_map with
        # check_vma=False), so a psum transposes to a psum as in JAX's pmap
        result = shard(per_device, mesh, in_specs, out_specs, check_vma=False)(*moved)
        flat_axes = tree.broadcast_prefix(out_axes, result, is_leaf=lambda x: x is None)
        return tree.tree_unflatten(tree.tree_structure(result),
                                   [r if ax is None or ax == 0 else _moveaxis(r, 0, ax)
                                    for ax, r in zip(flat_axes, tree.tree_leaves(result))])

    mapped.__name__ = getattr(fun, "__name__", "pmapped")
    mapped.__doc__ = getattr(fun, "__doc__", None)
    return mapped


def _axis(ax: Any, leaf: Any) -> int | None:
    if ax is None:
        return None
    ndim = len(get_aval(leaf).shape)
    if not isinstance(ax, (int, np.integer)) or not -ndim <= ax < ndim:
        raise ValueError(f"pmap: in_axes entry {ax!r} is not an axis of an argument of rank {ndim}")
    return int(ax) % ndim


def _per_argument(in_axes: Any, nargs: int, static: set) -> tuple:
    """``in_axes`` as one entry per dynamic argument (an int or None applies to all)."""
    if in_axes is None or isinstance(in_axes, (int, np.integer)):
        return (in_axes,) * (nargs - len(static))
    axes = tuple(in_axes)
    if len(axes) == nargs:
        return tuple(ax for i, ax in enumerate(axes) if i not in static)
    if len(axes) != nargs - len(static):
        raise ValueError(f"pmap: in_axes has {len(axes)} entries for a call with {nargs} arguments")
    return axes


def _moveaxis(x: Any, source: int, dest: int) -> Any:
    """``x`` with axis ``source`` moved to position ``dest``."""
    order = [d for d in range(len(get_aval(x).shape)) if d != source]
    order.insert(dest % len(get_aval(x).shape), source)
    return transpose(x, tuple(order))
