"""Placing arrays on several devices: ``Mesh``, ``PartitionSpec`` (``P``), ``NamedSharding``,
``device_put``, ``device_get`` and ``ShardedArray``.

A ``Mesh`` arranges devices in a grid with named axes (``Mesh(devices(4), ('data',))``).
A ``PartitionSpec`` says, per array dimension, which mesh axes split it (``P('data')``:
dimension 0 is cut into ``mesh.shape['data']`` equal blocks; ``P()``: the whole array on
every device). A ``NamedSharding`` pairs the two; ``device_put(x, sharding)`` cuts ``x``
accordingly and returns a ``ShardedArray``, which remembers its sharding and holds one
block (shard) per device. Mesh axes a spec does not name replicate: every device along
them holds the same block.

A ShardedArray is an ``fgrad.Array``: ``np.asarray(x)``, ``device_get`` and any eager
operation see the assembled whole. ``jit``-ted functions called on ShardedArrays run
data-parallel (see ``fgrad.transforms.shard``), and return ShardedArrays.

>>> mesh = Mesh(fgrad.devices(4), ("data",))                       # doctest: +SKIP
>>> params = device_put(params, NamedSharding(mesh, P()))          # replicated   # doctest: +SKIP
>>> batch = device_put(batch, NamedSharding(mesh, P("data")))      # split on dim 0   # doctest: +SKIP
"""
from __future__ import annotations

import enum
import itertools
from typing import Any, NamedTuple, Sequence

import numpy as np

from fgrad import tree
from fgrad.backends.base import Buffer, Device
from fgrad.backends import cuda
from fgrad.compile import gpu as compile_gpu
from fgrad.core.array import Array, as_array
from fgrad.core.partition import PartitionSpec
from fgrad.core.trace import Tracer
from fgrad.core.types import ShapedArray
from fgrad.runtime import distributed
from fgrad.runtime.devices import default_device, devices as all_devices

__all__ = ["Mesh", "make_mesh", "AxisType", "PartitionSpec", "P", "NamedSharding", "ShardedArray", "Shard",
           "device_put", "device_get"]


# --- meshes ----------------------------------------------------------------------------------------

class AxisType(enum.Enum):
    """``jax.sharding.AxisType``: how a mesh axis is sharded over.

    fgrad has one behaviour for ``Auto`` and ``Explicit`` axes: a ``jit``-ted function called on
    ShardedArrays propagates their shardings through each operation by its partition rule (a rule
    decides where JAX's Auto mode would let the compiler choose, and no sharding is part of an
    array's type). ``Manual`` is what ``fgrad.shard`` does inside its body, over any mesh; a mesh
    cannot be made with Manual axes.
    """
    Auto = enum.auto()
    Explicit = enum.auto()
    Manual = enum.auto()

    def __repr__(self) -> str:
        return self.name


def _axis_types(axis_types: Any, count: int, default: AxisType, where: str) -> tuple[AxisType, ...]:
    if axis_types is None:
        return (default,) * count
    types = (axis_types,) * count if isinstance(axis_types, AxisType) else tuple(axis_types)
    if len(types) != count or not all(isinstance(t, AxisType) for t in types):
        raise ValueError(f"{where}: axis_types must be {count} fgrad.sharding.AxisType values, one per axis, "
                         f"got {axis_types!r}")
    if AxisType.Manual in types:
        raise ValueError(f"{where}: fgrad's meshes cannot have Manual axes (axis_types={types}); fgrad.shard "
                         "makes its body manual over the mesh it is given")
    return types



class Mesh:
    """Devices in an n-dimensional grid whose axes have names.

    >>> Mesh(fgrad.devices(8), ("data",)).shape              # doctest: +SKIP
    {'data': 8}
    >>> Mesh(np.array(fgrad.devices(8)).reshape(2, 4), ("x", "y")).shape   # doctest: +SKIP
    {'x': 2, 'y': 4}
    """

    __slots__ = ("devices", "axis_names", "axis_types", "_flat", "_key", "_rank_of", "_local", "_groups",
                 "_coords")

    def __init__(self, devices: Any, axis_names: str | Sequence[str], axis_types: Any = None):
        names = (axis_names,) if isinstance(axis_names, str) else tuple(axis_names)
        self.axis_types = _axis_types(axis_types, len(names), AxisType.Auto, "Mesh")
        grid = np.empty(np.shape(np.asarray(devices, dtype=object)), dtype=object)
        grid[...] = np.asarray(devices, dtype=object)
        if grid.ndim != len(names):
            raise ValueError(f"Mesh: {len(names)} axis names {names} for a device grid of rank {grid.ndim} "
                             f"(shape {grid.shape}); reshape the devices, e.g. "
                             f"np.array(devices).reshape(...), to one dimension per name")
        if len(set(names)) != len(names):
            raise ValueError(f"Mesh: axis names must be distinct, got {names}")
        for name in names:
            if not isinstance(name, str):
                raise TypeError(f"Mesh: axis names must be strings, got {name!r}")
        flat = tuple(grid.flat)
        if not flat:
            raise ValueError("Mesh: needs at least one device")
        for d in flat:
            if not isinstance(d, Device):
                raise TypeError(f"Mesh: expected fgrad devices (from fgrad.devices()), got {d!r}")
        if len(set(flat)) != len(flat):
            raise ValueError(f"Mesh: a device appears twice in {list(flat)}")
        grid.flags.writeable = False
        self.devices = grid
        self.axis_names = names
        self._flat = flat
        self._key = (flat, grid.shape, names)
        self._rank_of = {d: r for r, d in enumerate(flat)}
        self._local: tuple | None = None
        self._groups: dict = {}
        # every rank's coordinates, computed once (read per output of every program run)
        self._coords = [dict(zip(names, (int(i) for i in np.unravel_index(r, grid.shape))))
                        for r in range(len(flat))]
        _check_processes(flat)

    @property
    def shape(self) -> dict[str, int]:
        """Axis name -> number of devices along it, in axis order."""
        return dict(zip(self.axis_names, self.devices.shape))

    @property
    def size(self) -> int:
        return len(self._flat)

    @property
    def device_list(self) -> tuple[Device, ...]:
        """The devices in row-major order; a device's position here is its *rank*."""
        return self._flat

    def rank_of(self, device: Device) -> int:
        return self._rank_of[device]

    def coords(self, rank: int) -> dict[str, int]:
        """The device of ``rank``'s position along each axis."""
        return dict(self._coords[rank])

    def group(self, rank: int, axes: Sequence[str]) -> tuple[int, ...]:
        """The ranks that share ``rank``'s coordinates off ``axes``, ordered row-major over
        ``axes`` in the given order (a collective over ``axes`` combines exactly these)."""
        key = (rank, tuple(axes))
        members = self._groups.get(key)
        if members is None:
            coords = self.coords(rank)
            members = []
            for values in itertools.product(*[range(self.shape[a]) for a in axes]):
                c = dict(coords, **dict(zip(axes, values)))
                members.append(int(np.ravel_multi_index([c[a] for a in self.axis_names], self.devices.shape)))
            members = self._groups[key] = tuple(members)
        return members

    def local_ranks(self) -> list[int]:
        """The ranks this process runs."""
        me = distributed.process_index()
        if self._local is None or self._local[0] != me:
            self._local = (me, [r for r, d in enumerate(self._flat) if getattr(d, "process_index", 0) == me])
        return self._local[1]

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Mesh) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        axes = ", ".join(f"{n}={s}" for n, s in self.shape.items())
        return f"Mesh({axes})"


def _check_processes(flat: Sequence[Device]) -> None:
    if not distributed.is_initialized():
        return
    present = {getattr(d, "process_index", 0) for d in flat}
    if present != set(range(distributed.process_count())):
        raise ValueError(f"Mesh: under fgrad.distributed a mesh must include devices of every process; "
                         f"it has devices of processes {sorted(present)} out of "
                         f"{distributed.process_count()}")


def make_mesh(axis_shapes: Sequence[int], axis_names: Sequence[str], axis_types: Any = None, *,
              devices: Sequence[Device] | None = None) -> Mesh:
    """``jax.make_mesh(axis_shapes, axis_names, axis_types=None, *, devices=None)``: a mesh of the
    first ``prod(axis_shapes)`` devices arranged in ``axis_shapes``; ``axis_types`` defaults to
    ``Explicit`` on every axis, as in JAX 0.10 (see ``AxisType`` for what the types mean here)."""
    shapes, names = tuple(axis_shapes), ((axis_names,) if isinstance(axis_names, str) else tuple(axis_names))
    if len(shapes) != len(names):
        raise ValueError(f"make_mesh: {len(shapes)} axis shapes {shapes} for {len(names)} axis names {names}; "
                         "give one shape per name")
    count = int(np.prod(shapes))
    pool = list(all_devices(count) if devices is None else devices)
    if len(pool) < count:
        raise ValueError(f"make_mesh: axis shapes {shapes} need {count} devices, only "
                         f"{len(pool)} exist (set FGRAD_CPU_DEVICES={count})")
    types = _axis_types(axis_types, len(names), AxisType.Explicit, "make_mesh")
    return Mesh(np.array(pool[:count], dtype=object).reshape(shapes), names, types)


# --- partition specs --------------------------------------------------------------------------------

P = PartitionSpec


def is_spec(x: Any) -> bool:
    return isinstance(x, PartitionSpec)


def check_spec(spec: Any, mesh: Mesh, where: str) -> PartitionSpec:
    """Validate ``spec`` against ``mesh`` (axis names exist, none used twice)."""
    if not isinstance(spec, PartitionSpec):
        raise TypeError(f"{where}: expected a PartitionSpec (fgrad.sharding.P(...)), got {spec!r}")
    seen = set()
    for name in spec.mentioned():
        if name not in mesh.shape:
            raise ValueError(f"{where}: {spec} names mesh axis {name!r}, but the mesh has axes "
                             f"{mesh.axis_names}")
        if name in seen:
            raise ValueError(f"{where}: {spec} uses mesh axis {name!r} for two dimensions; each mesh "
                             "axis may split at most one dimension")
        seen.add(name)
    return spec


def block_shape(spec: PartitionSpec, mesh: Mesh, shape: Sequence[int], where: str) -> tuple[int, ...]:
    """The per-device block shape of a ``shape`` array split by ``spec``; errors name the
    dimension, the mesh axes and the sizes."""
    if len(spec) > len(shape):
        raise ValueError(f"{where}: {spec} has {len(spec)} entries but the array has rank {len(shape)} "
                         f"(shape {tuple(shape)})")
    out = list(shape)
    for d in range(len(spec)):
        axes = spec.axes(d)
        parts = int(np.prod([mesh.shape[a] for a in axes])) if axes else 1
        if out[d] % parts:
            sizes = " x ".join(f"{a}={mesh.shape[a]}" for a in axes)
            raise ValueError(f"{where}: dimension {d} of size {shape[d]} is not divisible by mesh axis "
                             f"{' x '.join(axes)} ({sizes}, {parts} parts) for {spec}; pick a size that is a "
                             "multiple of the mesh axis size, or split another dimension")
        out[d] //= parts
    return tuple(out)


def block_slices(spec: PartitionSpec, mesh: Mesh, shape: Sequence[int], rank: int) -> tuple[slice, ...]:
    """Where device ``rank``'s block sits in the whole array."""
    coords = mesh.coords(rank)
    slices = []
    for d, size in enumerate(shape):
        axes = spec.axes(d)
        if not axes:
            slices.append(slice(None))
            continue
        sizes = [mesh.shape[a] for a in axes]
        index = int(np.ravel_multi_index([coords[a] for a in axes], sizes))
        block = size // int(np.prod(sizes))
        slices.append(slice(index * block, (index + 1) * block))
    return tuple(slices)


def replica_leader(spec: PartitionSpec, mesh: Mesh, rank: int) -> int:
    """The rank holding the same block as ``rank`` at coordinate 0 of every axis ``spec`` omits."""
    named = set(spec.mentioned())
    coords = mesh.coords(rank)
    leader = [coords[a] if a in named else 0 for a in mesh.axis_names]
    return int(np.ravel_multi_index(leader, mesh.devices.shape))


# --- shardings ---------------------------------------------------------------------------------------

class NamedSharding:
    """How an array lies on a mesh: ``NamedSharding(mesh, P('data'))``."""

    __slots__ = ("mesh", "spec")

    def __init__(self, mesh: Mesh, spec: PartitionSpec):
        if not isinstance(mesh, Mesh):
            raise TypeError(f"NamedSharding: expected a Mesh, got {type(mesh).__name__}")
        self.mesh = mesh
        self.spec = check_spec(spec, mesh, "NamedSharding")

    def shard_shape(self, global_shape: Sequence[int]) -> tuple[int, ...]:
        """The shape of each device's block."""
        return block_shape(self.spec, self.mesh, global_shape, f"NamedSharding({self.spec})")

    @property
    def is_fully_replicated(self) -> bool:
        return not self.spec.mentioned()

    @property
    def device_set(self) -> set:
        return set(self.mesh.device_list)

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, NamedSharding) and (self.mesh, self.spec) == (other.mesh, other.spec)

    def __hash__(self) -> int:
        return hash((self.mesh, self.spec))

    def __repr__(self) -> str:
        return f"NamedSharding({self.mesh!r}, {self.spec!r})"


# --- sharded arrays ----------------------------------------------------------------------------------

class Shard(NamedTuple):
    """One device's block of a ShardedArray: the device, where the block sits, its data."""

    device: Device
    index: tuple[slice, ...]
    data: np.ndarray


class ShardedArray(Array):
    """An array cut into blocks over a mesh (one per device; see ``NamedSharding``).

    Behaves as the whole array everywhere (``np.asarray``, printing, eager operations
    assemble it, once); ``jit``-ted functions run on the blocks in place.
    """

    __slots__ = ("sharding", "shards", "_whole")

    def __init__(self, *args, **kwargs):
        raise TypeError("create ShardedArrays with fgrad.device_put(x, NamedSharding(mesh, spec))")

    @classmethod
    def _from_shards(cls, shards: Sequence[np.ndarray | None], sharding: NamedSharding,
                     aval: ShapedArray) -> "ShardedArray":
        """Wrap per-rank blocks (``None`` for ranks another process runs); no copies."""
        self = object.__new__(cls)
        self.aval = aval
        self._device = None
        self.sharding = sharding
        self.shards = tuple(shards)
        self._whole = None
        return self

    @property
    def device(self) -> Any:
        """A sharded array lives on several devices: its ``NamedSharding`` (as JAX answers)."""
        return self.sharding

    @property
    def _value(self) -> np.ndarray:  # the whole array, assembled on first use
        if self._whole is None:
            self._whole = _assemble(self.shards, self.sharding, self.aval)
        return self._whole

    @property
    def addressable_shards(self) -> list[Shard]:
        """The blocks on this process's devices (host copies of GPU blocks)."""
        mesh, spec = self.sharding.mesh, self.sharding.spec
        return [Shard(mesh.device_list[r], block_slices(spec, mesh, self.aval.shape, r), host_block(s))
                for r, s in enumerate(self.shards) if s is not None]

    def devices(self) -> set:
        return self.sharding.device_set

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, sharding={self.sharding.spec!r} on {self.sharding.mesh!r})"

    def __reduce__(self):
        return (Array, (np.array(self._value), self.aval))


def host_block(block: Any) -> np.ndarray:
    """A block as a host array: GPU blocks (device buffers) are copied back."""
    return block.to_numpy() if isinstance(block, Buffer) else block


def _assemble(shards: Sequence[Any], sharding: NamedSharding, aval: ShapedArray) -> np.ndarray:
    mesh, spec = sharding.mesh, sharding.spec
    if not spec.mentioned():  # replicated: any local block is the whole array
        return host_block(next(s for s in shards if s is not None))
    shards = [None if s is None else host_block(s) for s in shards]
    if any(s is None for s in shards):
        shards = _gather_across_processes(shards)
    whole = np.empty(aval.shape, aval.dtype)
    for rank, block in enumerate(shards):
        if replica_leader(spec, mesh, rank) == rank:
            whole[block_slices(spec, mesh, aval.shape, rank)] = block
    whole.flags.writeable = False
    return whole


def _gather_across_processes(shards: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    merged = list(shards)
    for part in distributed.allgather_object({r: s for r, s in enumerate(shards) if s is not None}):
        for r, s in part.items():
            merged[r] = s
    return merged


def shard_value(value: Any, sharding: NamedSharding, where: str = "device_put",
                aval: ShapedArray | None = None) -> ShardedArray:
    """Cut an array (anything ``fgrad.numpy.asarray`` takes) into ``sharding``'s blocks.

    With ``aval`` the value is taken as that type as it is (no dtype canonicalisation).
    """
    if isinstance(value, ShardedArray) and value.sharding == sharding:
        return value
    if aval is None:
        array = as_array(value)
        aval, value = array.aval, array._value
    elif isinstance(value, Array):
        value = value._value
    aval = aval.strip_weak_type()
    mesh, spec = sharding.mesh, sharding.spec
    block_shape(spec, mesh, aval.shape, where)
    whole = np.asarray(value, aval.dtype)
    if whole.flags.writeable:  # blocks are views of a private, read-only copy
        whole = _frozen(whole)
    local = set(mesh.local_ranks())
    if not spec.mentioned():
        return ShardedArray._from_shards(_on_devices([whole if r in local else None for r in range(mesh.size)], mesh),
                                         sharding, aval)
    blocks: dict[tuple, np.ndarray] = {}
    shards: list[np.ndarray | None] = []
    for rank in range(mesh.size):
        if rank not in local:
            shards.append(None)
            continue
        index = block_slices(spec, mesh, aval.shape, rank)
        key = tuple((s.start, s.stop) for s in index)
        if key not in blocks:  # replicas share one block
            block = whole[index]
            if not block.flags.c_contiguous:
                block = _frozen(np.ascontiguousarray(block))
            blocks[key] = block
        shards.append(blocks[key])
    return ShardedArray._from_shards(_on_devices(shards, mesh), sharding, aval)


def _on_devices(shards: list, mesh: "Mesh") -> list:
    """Each GPU rank's block copied to its GPU once, where it stays (jitted calls then pass
    device buffers along instead of copying blocks in and out on every call)."""
    placed = []
    for rank, block in enumerate(shards):
        device = mesh.device_list[rank]
        if block is not None and device.platform == "cuda":
            block = cuda.runtime(device).put(np.ascontiguousarray(block))
        placed.append(block)
    return placed


def _frozen(x: np.ndarray) -> np.ndarray:
    """A read-only copy (shards are immutable; the caller may still write to its array)."""
    x = np.array(x)
    x.flags.writeable = False
    return x


def device_put(x: Any, device: Any = None) -> Any:
    """Place ``x`` (a pytree of arrays) on a device, or cut it over a mesh.

    ``device`` is a ``Device`` (or None: the default device), a ``NamedSharding``, or a
    pytree prefix of ``x`` with a NamedSharding (or device) per subtree. Inside ``jit`` the
    values pass through unchanged.

    >>> batch = device_put(batch, NamedSharding(mesh, P("data")))   # doctest: +SKIP
    """
    leaves, treedef = tree.tree_flatten_with_path(x)
    try:
        targets = tree.broadcast_prefix(device, x, is_leaf=lambda t: t is None or isinstance(t, (NamedSharding, Device)))
    except ValueError as err:
        raise ValueError(f"device_put: the shardings must be one NamedSharding/device or a pytree prefix "
                         f"of the value: {err}") from None
    placed = [_put_leaf(leaf, target, tree.keystr(path) or "<root>") for (path, leaf), target in zip(leaves, targets)]
    return tree.tree_unflatten(treedef, placed)


def _put_leaf(leaf: Any, target: Any, where: str) -> Any:
    if isinstance(leaf, Tracer):
        return leaf
    if isinstance(target, NamedSharding):
        return shard_value(leaf, target, f"device_put: the array at {where}")
    if target is not None and not isinstance(target, Device):
        raise TypeError(f"device_put: the target for {where} must be a Device or a NamedSharding, got {target!r}")
    target = target if target is not None else default_device()
    array = as_array(leaf)
    if target.platform == "cuda":
        return compile_gpu.device_put(array, target)
    return Array(array._value, array.aval, target)


def device_get(x: Any) -> Any:
    """The NumPy value of every array in ``x`` (a pytree); sharded arrays are assembled."""
    def get(leaf):
        if isinstance(leaf, (Array, Tracer)):
            return np.asarray(leaf)
        return leaf
    return tree.tree_map(get, x)


def sharding_of(x: Any) -> NamedSharding | None:
    """The NamedSharding of a ShardedArray, else None."""
    return x.sharding if isinstance(x, ShardedArray) else None
