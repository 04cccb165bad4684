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

The public face of ``fgrad.runtime.sharding`` (the multi-device runtime package).
"""
from fgrad.runtime.sharding import (  # noqa: F401 (the public names)
    Mesh, make_mesh, PartitionSpec, P, is_spec, check_spec, block_shape, block_slices,
    replica_leader, NamedSharding, Shard, ShardedArray, host_block, shard_value, device_put,
    device_get, sharding_of)

from fgrad.runtime.sharding import __all__  # noqa: F401
