"""SciPy-style functions on fgrad arrays (JAX's ``jax.scipy``): ``fgrad.scipy.special``,
``fgrad.scipy.linalg``, ``fgrad.scipy.stats``."""
from fgrad.scipy import special  # noqa: F401
from fgrad.scipy import linalg  # noqa: F401
from fgrad.scipy import stats  # noqa: F401
