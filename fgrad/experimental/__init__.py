"""``fgrad.experimental``: JAX's experimental names fgrad provides (``io_callback``; the
``ode`` module with ``odeint``)."""
from fgrad.callbacks import io_callback
from fgrad.experimental import ode  # noqa: F401

__all__ = ["io_callback"]
