"""The multi-device runtime: devices and the collectives among them, meshes and placed
(sharded) arrays, multi-process runs, and the execution of per-device programs.

* ``devices``: the device list (virtual CPU devices, GPUs), ``default_device``;
* ``communicator``: ``Communicator`` (every collective built from one exchange) and
  ``ThreadCommunicator``;
* ``distributed``: joining processes under MPI (``fgrad.distributed``);
* ``sharding``: ``Mesh``, ``NamedSharding``, ``ShardedArray``, ``device_put`` (``fgrad.sharding``);
* ``device_program``: a per-device jaxpr split at its collectives into compiled stages,
  with host-driven control flow around nested collectives;
* ``execute``: running a device program on every device of a mesh (``run_shard``), as
  ``shard`` and the data-parallel path of ``jit`` do.

``fgrad.devices``, ``fgrad.sharding`` and ``fgrad.distributed`` are the public faces of
these modules.
"""
