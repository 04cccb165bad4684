"""Activation functions, softmax family, pooling, dropout and flatten."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from fgrad import lax
from fgrad import numpy as fnp
from fgrad import random
from fgrad.numpy._util import promote_float


def relu(x: Any) -> Any:
    """``max(x, 0)``, NaN staying NaN; its derivative is JAX's custom rule,
    ``select(x > 0, t, 0)`` (0 at 0 and at NaN), to every order."""
    x = fnp.asarray(x)
    nan_or_zero = lax.stop_gradient(fnp.where(x != x, x, fnp.zeros_like(x)))
    return fnp.where(x > 0, x, nan_or_zero)


def sigmoid(x: Any) -> Any:
    """The logistic function ``1 / (1 + exp(-x))``."""
    return lax.logistic(x)


def silu(x: Any) -> Any:
    """``x * sigmoid(x)`` (a.k.a. swish)."""
    return x * sigmoid(x)


def gelu(x: Any, approximate: bool = True) -> Any:
    """Gaussian error linear unit ``x * Phi(x)``.

    ``approximate=True`` (JAX's default) uses the tanh form; ``False`` the exact erf form
    (PyTorch's default), JAX's ``x * erfc(-x / sqrt(2)) / 2``.
    """
    if approximate:
        c = float(np.sqrt(2.0 / np.pi))
        return 0.5 * x * (1.0 + fnp.tanh(c * (x + 0.044715 * (x * x * x))))
    x = promote_float("gelu", x)
    return 0.5 * x * lax.erfc(-x * float(np.sqrt(0.5)))


def _max_keepdims(x: Any, axis: Any) -> Any:
    """The max along ``axis`` (kept), ``-inf`` over a zero-size axis (JAX's ``initial=-inf``)."""
    x = fnp.asarray(x)
    initial = -np.inf if fnp.issubdtype(x.dtype, fnp.floating) else None
    return fnp.max(x, axis=axis, keepdims=True, initial=initial)


def logsumexp(x: Any, axis: int | Sequence[int] | None = -1, keepdims: bool = False) -> Any:
    """``log(sum(exp(x)))`` computed stably (shifted by the max) for large inputs."""
    shift = lax.stop_gradient(_max_keepdims(x, axis))
    shift = fnp.where(fnp.isfinite(shift), shift, fnp.zeros_like(shift))
    out = fnp.log(fnp.sum(fnp.exp(x - shift), axis=axis, keepdims=True)) + shift
    return out if keepdims else fnp.squeeze(out, axis=axis)


def log_softmax(x: Any, axis: int = -1) -> Any:
    """``x - logsumexp(x)`` along ``axis`` (JAX's formula: shifted by the unguarded max, so
    an +inf entry makes the row NaN, as in JAX)."""
    shifted = x - lax.stop_gradient(_max_keepdims(x, axis))
    return shifted - fnp.log(fnp.sum(fnp.exp(shifted), axis=axis, keepdims=True))


def softmax(x: Any, axis: int = -1) -> Any:
    """``exp(x) / sum(exp(x))`` along ``axis``, computed stably."""
    unnormalized = fnp.exp(x - lax.stop_gradient(_max_keepdims(x, axis)))
    return unnormalized / fnp.sum(unnormalized, axis=axis, keepdims=True)


def one_hot(labels: Any, num_classes: int, dtype=fnp.float32) -> Any:
    """``labels[..., None] == arange(num_classes)`` as ``dtype``."""
    labels = fnp.asarray(labels).astype(fnp.int32)
    return (labels[..., None] == fnp.arange(num_classes, dtype=fnp.int32)).astype(dtype)


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        return (int(value), int(value))
    value = tuple(int(v) for v in value)
    if len(value) != 2:
        raise ValueError(f"pooling: {name} must be an int or a pair of ints, got {value}")
    return value


def max_pool2d(x: Any, kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None,
               padding: int | Sequence[int] = 0) -> Any:
    """2-D max pooling over an NCHW (or CHW) input; ``stride`` defaults to ``kernel_size``."""
    return _pool(x, kernel_size, stride, padding, "max")


def avg_pool2d(x: Any, kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None,
               padding: int | Sequence[int] = 0) -> Any:
    """2-D average pooling over an NCHW (or CHW) input (zero padding counts, as in PyTorch)."""
    kh, kw = _pair(kernel_size, "kernel_size")
    return _pool(x, kernel_size, stride, padding, "sum") / float(kh * kw)


def _pool(x, kernel_size, stride, padding, computation):
    kh, kw = _pair(kernel_size, "kernel_size")
    sh, sw = _pair(stride if stride is not None else (kh, kw), "stride")
    ph, pw = _pair(padding, "padding")
    unbatched = fnp.ndim(x) == 3
    if unbatched:
        x = x[None]
    if fnp.ndim(x) != 4:
        raise ValueError(f"pooling expects an NCHW or CHW input, got shape {fnp.shape(x)}")
    out = lax.reduce_window(x, computation, (1, 1, kh, kw), (1, 1, sh, sw),
                            ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    return out[0] if unbatched else out


def dropout(x: Any, rate: float, *, key: Any = None, deterministic: bool = False) -> Any:
    """Zero each element with probability ``rate`` and scale the rest by ``1 / (1 - rate)``.

    With ``deterministic=True`` (evaluation) or ``rate == 0`` it is the identity.
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
    if deterministic or rate == 0.0:
        return x
    if key is None:
        raise ValueError("dropout needs a PRNG key when deterministic=False: dropout(x, rate, key=key)")
    keep = random.bernoulli(key, 1.0 - rate, fnp.shape(x))
    return fnp.where(keep, x / (1.0 - rate), fnp.zeros_like(x))


def flatten(x: Any, start_dim: int = 1) -> Any:
    """Flatten dimensions ``start_dim..`` into one (keeps the batch dimension by default)."""
    shape = fnp.shape(x)
    start_dim = start_dim % len(shape) if shape else 0
    return fnp.reshape(x, (*shape[:start_dim], -1))
