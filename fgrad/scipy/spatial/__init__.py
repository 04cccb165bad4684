"""``fgrad.scipy.spatial``: JAX's ``jax.scipy.spatial`` (``transform``: ``Rotation``, ``Slerp``)."""
from fgrad.scipy.spatial import transform  # noqa: F401
