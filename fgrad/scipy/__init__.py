"""SciPy-style functions on fgrad arrays (JAX's ``jax.scipy``): ``fgrad.scipy.special``,
``fgrad.scipy.linalg``, ``fgrad.scipy.stats``, ``fgrad.scipy.signal``, ``fgrad.scipy.ndimage``."""
from fgrad.scipy import special  # noqa: F401
from fgrad.scipy import linalg  # noqa: F401
from fgrad.scipy import stats  # noqa: F401
from fgrad.scipy import signal  # noqa: F401
from fgrad.scipy import ndimage  # noqa: F401
