"""``fgrad.experimental.shard_map``: the older ``jax.experimental.shard_map.shard_map(f, mesh,
in_specs, out_specs, check_rep=True, auto=frozenset())``, as :func:`fgrad.shard`."""
from __future__ import annotations

from typing import Any, Callable

from fgrad.transforms.shard import shard

__all__ = ["shard_map"]


def shard_map(f: Callable, mesh: Any, in_specs: Any, out_specs: Any, check_rep: bool = True,
              auto: Any = frozenset()) -> Callable:
    """``jax.experimental.shard_map.shard_map``: :func:`fgrad.shard` (``check_rep`` is its
    ``check_vma``); ``auto`` (mesh axes left to the partitioner) must be empty."""
    if auto:
        raise NotImplementedError(f"shard_map: auto={set(auto)} leaves mesh axes to the automatic partitioner; "
                                  "fgrad's shard is manual over every mesh axis (leave auto out)")
    return shard(f, mesh, in_specs, out_specs, check_vma=check_rep)
