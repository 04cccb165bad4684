"""SciPy-style functions on fgrad arrays (JAX's ``jax.scipy``): ``fgrad.scipy.special``,
``fgrad.scipy.linalg``, ``fgrad.scipy.stats``, ``fgrad.scipy.signal``, ``fgrad.scipy.ndimage``,
``fgrad.scipy.optimize``, ``fgrad.scipy.fft``, ``fgrad.scipy.integrate``, ``fgrad.scipy.interpolate``."""
from fgrad.scipy import special  # noqa: F401
from fgrad.scipy import linalg  # noqa: F401
from fgrad.scipy import stats  # noqa: F401
from fgrad.scipy import signal  # noqa: F401
from fgrad.scipy import ndimage  # noqa: F401
from fgrad.scipy import optimize, fft, integrate, interpolate, sparse, cluster, spatial  # noqa: F401
