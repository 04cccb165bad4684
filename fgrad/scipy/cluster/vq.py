"""``fgrad.scipy.cluster.vq``: JAX's ``jax.scipy.cluster.vq.vq``, nearest-code assignment."""
from __future__ import annotations

from typing import Any

import numpy as np

from fgrad import numpy as fnp
from fgrad.core.trace import get_aval

__all__ = ["vq"]


def _check_arraylike(*args: Any) -> None:
    for position, arg in enumerate(args):
        if isinstance(arg, (list, tuple)) or not (np.isscalar(arg) or hasattr(arg, "dtype")):
            raise TypeError(f"scipy.cluster.vq.vq requires ndarray or scalar arguments, got {type(arg)} at "
                            f"position {position}.")
        get_aval(arg)


def _inexact(x: Any, dtype: Any) -> Any:
    return fnp.asarray(x).astype(dtype)


def vq(obs: Any, code_book: Any, check_finite: bool = True) -> tuple[Any, Any]:
    """``jax.scipy.cluster.vq.vq(obs, code_book, check_finite=True)``: for each observation (a row
    of ``obs``, or an entry when 1-d) the index of the nearest code (row of ``code_book``, ties to
    the lowest index) and the Euclidean distance to it: ``(code int32 (M,), dist (M,))``.

    ``obs`` and ``code_book`` must have the same rank, 1 or 2; integers are promoted to the default
    float. ``check_finite`` is accepted and ignored, as in JAX. Differentiable in both (through
    ``dist``).

    >>> vq(fnp.array([[1., 2.], [3., 1.]]), fnp.array([[0., 0.], [1., 1.], [3., 3.]]))
    (Array([1, 1], dtype=int32), Array([1., 2.], dtype=float32))
    """
    del check_finite  # as in JAX: no finiteness check
    _check_arraylike(obs, code_book)
    dtype = fnp.result_type(fnp.asarray(obs), fnp.asarray(code_book), float)
    obs, code_book = _inexact(obs, dtype), _inexact(code_book, dtype)
    if obs.ndim != code_book.ndim:
        raise ValueError("Observation and code_book should have the same rank")
    if obs.ndim == 1:
        obs, code_book = obs[:, None], code_book[:, None]
    if obs.ndim != 2:
        raise ValueError("ndim different than 1 or 2 are not supported")
    dist = fnp.linalg.norm(obs[:, None, :] - code_book[None, :, :], axis=-1)
    code = fnp.argmin(dist, axis=-1)
    return code, fnp.take_along_axis(dist, code[:, None], axis=-1)[:, 0]
