"""``shard``: run a function on every device of a mesh (shard_map semantics), and the
device runtime it shares with the data-parallel path ``jit`` takes for placed arguments.

Explicit form::

    shard(f, mesh, in_specs, out_specs, check_vma=True)(*args)

``f`` sees per-device *blocks*: each argument is cut by its ``PartitionSpec`` (a pytree
prefix of the arguments) and device ``r`` gets block ``r``; ``f`` may call the collectives
of ``fgrad.lax`` (psum, pmean, pmax, pmin, all_gather, psum_scatter, ppermute,
axis_index) over the mesh axis names. The per-device results are put back together by
``out_specs``; a mesh axis an out spec does not name means "the same on every device
along it", and the block of coordinate 0 is used. With ``check_vma`` (the default) that is
checked while tracing: every value is typed with the mesh axes it varies over
(``fgrad.core.vma``; invariant values meeting varying ones are cast with ``pvary``, whose
transpose is ``psum``). Without it, it is checked at run time when ``FGRAD_DEBUG`` >= 1.

How it runs:

1. Before tracing, the arguments are checked against the specs (arity, pytree structure
   with key paths, axis names, divisibility of every split dimension) so mistakes are
   errors, never hangs.
2. ``f`` is traced once on block avals with the mesh axes bound, into a jaxpr; ``shard_p``
   (``fgrad.ops.shard``) is a primitive carrying it with the mesh and specs, so
   ``grad``/``jvp``/``vmap``/``jit`` transform ``shard`` through its rules there.
3. The runtime (``fgrad.runtime``) runs it: ``DeviceProgram``
   (``fgrad.runtime.device_program``) splits the per-device jaxpr at its collectives into
   compiled stages, with the collectives between two stages performed together in one
   exchange of a ``Communicator``; a loop or branch holding collectives runs on the host
   around compiled programs of its bodies. ``fgrad.runtime.execute.run_shard`` runs it on
   every device of the mesh, one thread per device.

Data parallelism by placement (``jit`` on ``device_put`` arguments) is the pass in
``fgrad.transforms.data_parallel``, which runs its per-device jaxpr through ``run_shard``.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

from fgrad import tree
from fgrad.core import vma
from fgrad.core.partition import PartitionSpec
from fgrad.core.trace import EVAL, current_interpreter, get_aval, trace_to_jaxpr, Tracer
from fgrad.core.types import ShapedArray
from fgrad.ops import collective
from fgrad.core.ir import closure_convert
from fgrad.ops.shard import shard_p
# communicator_factories is re-exported for tests that install their own communicators.
from fgrad.runtime.execute import communicator_factories, run_shard  # noqa: F401
from fgrad.runtime.sharding import Mesh, ShardedArray, block_shape, check_spec, is_spec
from fgrad.transforms.vjp import check_output_leaves

__all__ = ["shard", "shard_map"]


def block_aval(aval: ShapedArray, spec: PartitionSpec, mesh: Mesh, where: str) -> ShapedArray:
    """The per-device aval of a global ``aval`` split by ``spec``."""
    return ShapedArray(block_shape(spec, mesh, aval.shape, where), aval.dtype, aval.weak_type)


# --- the user-facing transform --------------------------------------------------------------------------

def _flat_specs(specs: Any, values: Any, what: str, name: str) -> list[PartitionSpec]:
    try:
        return tree.broadcast_prefix(specs, values, is_leaf=lambda x: is_spec(x) or x is None)
    except ValueError as err:
        raise ValueError(f"shard({name}): {what} must be a PartitionSpec or a pytree prefix of the "
                         f"{'arguments' if what == 'in_specs' else 'outputs'} with PartitionSpec leaves: {err}") from None


def _check_leaf_spec(spec: Any, leaf: Any, mesh: Mesh, where: str) -> ShapedArray:
    if spec is None:
        raise TypeError(f"{where}: the spec is None; use P() for a replicated value")
    check_spec(spec, mesh, where)
    try:
        aval = get_aval(leaf)
    except TypeError:
        raise TypeError(f"{where}: expected an array, got a {type(leaf).__name__}") from None
    return block_aval(aval, spec, mesh, where)


def _check_out_vma(where: str, spec: PartitionSpec, aval: ShapedArray) -> None:
    """An output may vary only over the mesh axes its out spec names."""
    unnamed = sorted(aval.vma - set(spec.mentioned()), key=str)
    if not unnamed:
        return
    axes = ", ".join(repr(a) for a in unnamed)
    names = unnamed[0] if len(unnamed) == 1 else tuple(unnamed)
    raise ValueError(
        f"{where} varies across devices along mesh axes {axes} ({aval.str_short()}), but its out spec {spec} "
        f"does not name {'it' if len(unnamed) == 1 else 'them'}, which says the output is the same on every "
        f"device. Reduce it first (lax.psum(x, {names!r}) or lax.pmean(x, {names!r}), or all_gather), or "
        f"name the axis in the out spec (e.g. P({unnamed[0]!r})) to keep every device's block; "
        "shard(..., check_vma=False) skips this check.")


def _check_mesh_of(leaf: Any, mesh: Mesh, where: str) -> None:
    if isinstance(leaf, ShardedArray) and leaf.sharding.mesh != mesh:
        raise ValueError(f"{where} is placed on {leaf.sharding.mesh}, but shard runs on {mesh}: arrays on "
                         "different meshes; device_put it onto the shard's mesh first")


def shard(f: Callable, mesh: Mesh, in_specs: Any, out_specs: Any, *, check_vma: bool = True) -> Callable:
    """Run ``f`` once per device of ``mesh`` on per-device blocks (JAX's shard_map).

    ``in_specs``: a PartitionSpec per argument (a pytree prefix of the arguments);
    ``out_specs``: likewise for the outputs. Inside ``f`` the collectives of
    ``fgrad.lax`` work over the mesh axis names.

    Replication typing (``check_vma=True``, the default, as in JAX): every value inside
    ``f`` knows which mesh axes it varies over (an argument split over ``'data'`` varies
    over ``'data'``, a ``P()`` one is the same on every device; ``psum``/``pmean``/
    ``all_gather`` make values invariant). A replicated value used with a varying one is
    cast implicitly (``pvary``), so ``grad`` inside or outside ``shard`` sums a replicated
    parameter's gradient over the devices, and returning a value that varies over an axis
    its out spec does not name is an error. ``check_vma=False`` turns this off: nothing is
    checked, an unnamed axis's output is taken from the devices at coordinate 0 (checked
    equal only when ``FGRAD_DEBUG`` >= 1), and gradients are as in shard_map with
    ``check_vma=False``.

    >>> mesh = Mesh(fgrad.devices(4), ("i",))                       # doctest: +SKIP
    >>> total = shard(lambda x: lax.psum(x.sum(), "i"), mesh, P("i"), P())(fnp.arange(8.))   # doctest: +SKIP
    Array(28., dtype=float32)
    >>> loss = lambda w, x: lax.psum(fnp.sum(fnp.tanh(x @ w)), "i")   # doctest: +SKIP
    >>> g = shard(grad(loss), mesh, (P(), P("i")), P())(w, x)   # = grad of the whole-batch loss   # doctest: +SKIP
    """
    if not callable(f):
        raise TypeError(f"shard expects a function, got {type(f).__name__}")
    if not isinstance(mesh, Mesh):
        raise TypeError(f"shard: mesh must be a fgrad.sharding.Mesh, got {type(mesh).__name__}")
    name = getattr(f, "__name__", "fun")
    if isinstance(in_specs, list):
        in_specs = tuple(in_specs)
    cache: dict = {}

    def sharded(*args):
        if isinstance(in_specs, tuple) and len(in_specs) != len(args):
            raise ValueError(f"shard({name}): in_specs has {len(in_specs)} entries but {name} was called with "
                             f"{len(args)} positional arguments; give one PartitionSpec (or pytree of them) "
                             "per argument")
        specs_tree = in_specs if isinstance(in_specs, tuple) else (in_specs,) * len(args)
        path_leaves, in_tree = tree.tree_flatten_with_path(args)
        specs = _flat_specs(specs_tree, args, "in_specs", name)
        leaves = [leaf for _, leaf in path_leaves]
        block_avals = []
        for (path, leaf), spec in zip(path_leaves, specs):
            where = f"shard({name}): argument {tree.keystr(path) or '<root>'}"
            _check_mesh_of(leaf, mesh, where)
            block_avals.append(_check_leaf_spec(spec, leaf, mesh, where))
        if check_vma:
            block_avals = [a.update(vma=frozenset(s.mentioned())) for a, s in zip(block_avals, specs)]
        key = (in_tree, tuple(block_avals), tuple(specs))
        entry = cache.get(key)
        if entry is None:
            entry = _trace(f, name, mesh, in_tree, block_avals, out_specs, check_vma)
            if not any(isinstance(c, Tracer) for c in entry[1]):
                cache[key] = entry
        converted, consts, out_tree, flat_out_specs = entry
        all_specs = (PartitionSpec(),) * len(consts) + tuple(specs)
        if current_interpreter() is EVAL:
            outs = run_shard(converted, mesh, all_specs, flat_out_specs, [*consts, *leaves], name)
        else:
            outs = shard_p.bind(*consts, *leaves, jaxpr=converted, mesh=mesh, in_specs=all_specs,
                                out_specs=flat_out_specs, name=name, check_vma=check_vma)
        return tree.tree_unflatten(out_tree, outs)

    sharded.__name__ = f"shard({name})"
    sharded.__doc__ = getattr(f, "__doc__", None)
    return sharded


def _trace(f: Callable, name: str, mesh: Mesh, in_tree, block_avals: list, out_specs: Any, check_vma: bool):
    box: list = []

    def flat_fun(*blocks):
        out = f(*tree.tree_unflatten(in_tree, list(blocks)))
        check_output_leaves(out, name)
        out_leaves, out_tree = tree.tree_flatten(out)
        box.append((out, out_tree))
        return out_leaves

    with collective.axis_env_here(), collective.axis_frame(mesh.shape), \
            vma.manual_axes_frame(mesh.axis_names if check_vma else ()):
        closed = trace_to_jaxpr(flat_fun, block_avals)
    out, out_tree = box[0]
    flat_out_specs = _flat_specs(out_specs, out, "out_specs", name)
    for (path, _), spec, aval in zip(tree.tree_flatten_with_path(out)[0], flat_out_specs, closed.out_avals):
        where = f"shard({name}): output {tree.keystr(path) or '<root>'}"
        if spec is None:
            raise TypeError(f"{where}: the out spec is None; use P() for a replicated output")
        check_spec(spec, mesh, where)
        if len(spec) > aval.ndim:
            raise ValueError(f"{where}: {spec} has {len(spec)} entries but the per-device output has rank "
                             f"{aval.ndim} ({aval.str_short()})")
        _check_out_vma(where, spec, aval)
    converted, consts = closure_convert(closed)
    return converted, consts, out_tree, tuple(flat_out_specs)


def shard_map(f: Callable | None = None, /, *, out_specs: Any, in_specs: Any = None, mesh: Mesh | None = None,
              axis_names: Any = frozenset(), check_vma: bool = True) -> Callable:
    """``jax.shard_map(f, /, *, out_specs, in_specs, mesh, axis_names=frozenset(), check_vma=True)``:
    :func:`shard` under JAX's name and keywords (a decorator when ``f`` is left out).

    fgrad has no ambient mesh and does not infer ``in_specs`` from the arguments' shardings, so
    ``mesh`` and ``in_specs`` must be given; ``axis_names`` (manual over some mesh axes only)
    may only name all of them.

    >>> @partial(shard_map, mesh=mesh, in_specs=P("i"), out_specs=P())   # doctest: +SKIP
    ... def total(x):
    ...     return lax.psum(x.sum(), "i")
    """
    if f is None:
        return functools.partial(shard_map, out_specs=out_specs, in_specs=in_specs, mesh=mesh,
                                 axis_names=axis_names, check_vma=check_vma)
    if mesh is None:
        raise TypeError("shard_map: pass mesh=Mesh(...): fgrad has no ambient mesh to take it from")
    if in_specs is None:
        raise TypeError("shard_map: pass in_specs= (a PartitionSpec per argument): fgrad does not infer them "
                        "from the arguments' shardings")
    if isinstance(mesh, Mesh) and axis_names and set(axis_names) != set(mesh.axis_names):
        raise NotImplementedError(f"shard_map: axis_names={set(axis_names)} makes the function manual over only "
                                  f"some of the mesh axes {mesh.axis_names}; fgrad's shard is manual over all of "
                                  "them (leave axis_names out)")
    return shard(f, mesh, in_specs, out_specs, check_vma=check_vma)

