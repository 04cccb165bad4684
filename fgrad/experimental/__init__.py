"""``fgrad.experimental``: JAX's experimental names fgrad provides (``io_callback``; the
``ode`` module with ``odeint``; ``shard_map``)."""
from fgrad.callbacks import io_callback
from fgrad.experimental import ode, shard_map  # noqa: F401

__all__ = ["io_callback"]
