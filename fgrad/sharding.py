"""The public face of ``fgrad.runtime.sharding`` (the multi-device runtime): its names, and its
documentation as this module's."""

from fgrad.runtime.sharding import (  # noqa: F401 (the public names)
    Mesh, make_mesh, AxisType, PartitionSpec, P, is_spec, check_spec, block_shape, block_slices,
    replica_leader, NamedSharding, Shard, ShardedArray, host_block, shard_value, device_put,
    device_get, sharding_of)

from fgrad.runtime import sharding as _runtime_sharding
from fgrad.runtime.sharding import __all__  # noqa: F401

__doc__ = _runtime_sharding.__doc__
