"""``fgrad.scipy.sparse``: JAX's ``jax.scipy.sparse`` (its ``linalg`` iterative solvers)."""
from fgrad.scipy.sparse import linalg  # noqa: F401
