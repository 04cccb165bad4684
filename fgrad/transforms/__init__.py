"""The transforms: one interpreter per file (jvp, vjp/grad, vmap, jit, shard)."""
