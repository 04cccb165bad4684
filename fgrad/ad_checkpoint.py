"""fgrad.ad_checkpoint: ``jax.ad_checkpoint``'s names, ``checkpoint`` with its policies and
``checkpoint_name`` (``from fgrad.ad_checkpoint import checkpoint_name``)."""
from fgrad.transforms.remat import checkpoint, checkpoint_name, checkpoint_policies, remat  # noqa: F401

__all__ = ["checkpoint", "checkpoint_name", "checkpoint_policies", "remat"]
