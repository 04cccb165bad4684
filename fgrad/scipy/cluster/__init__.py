"""``fgrad.scipy.cluster``: JAX's ``jax.scipy.cluster`` (``vq``)."""
from fgrad.scipy.cluster import vq  # noqa: F401
