"""``fgrad.experimental``: JAX's experimental names fgrad provides (``io_callback``)."""
from fgrad.callbacks import io_callback

__all__ = ["io_callback"]
