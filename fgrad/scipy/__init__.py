"""SciPy-style functions on fgrad arrays (JAX's ``jax.scipy``): ``fgrad.scipy.special``."""
from fgrad.scipy import special  # noqa: F401
