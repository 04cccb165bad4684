"""LayerNorm and RMSNorm as Modules, with ``torch.nn.LayerNorm`` / ``torch.nn.RMSNorm``'s
parameters (``weight`` ones, ``bias`` zeros, of shape ``normalized_shape``) and semantics:
both normalise over the trailing ``len(normalized_shape)`` dimensions of their input."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from fgrad import lax
from fgrad import numpy as fnp
from fgrad.nn.module import Module


def _as_shape(normalized_shape: int | Sequence[int], layer: str) -> tuple[int, ...]:
    if isinstance(normalized_shape, (int, np.integer)):
        normalized_shape = (int(normalized_shape),)
    shape = tuple(int(d) for d in normalized_shape)
    if not shape or min(shape) < 1:
        raise ValueError(f"{layer}: normalized_shape must be a positive int or a non-empty tuple of "
                         f"positive ints, got {normalized_shape!r}")
    return shape


def _check_trailing(x: Any, normalized_shape: tuple[int, ...], layer: str) -> tuple[int, ...]:
    """The axes to normalise over, after checking that ``x`` ends with ``normalized_shape``."""
    shape = tuple(fnp.shape(x))
    if shape[len(shape) - len(normalized_shape):] != normalized_shape or len(shape) < len(normalized_shape):
        raise ValueError(f"{layer}(normalized_shape={normalized_shape}): the input's trailing dimensions "
                         f"must be {normalized_shape}, got input shape {shape}")
    return tuple(range(len(shape) - len(normalized_shape), len(shape)))


class LayerNorm(Module):
    """``(x - mean) / sqrt(var + eps) * weight + bias``, mean and (biased) variance taken over
    the trailing ``normalized_shape`` dimensions, as ``torch.nn.LayerNorm``.

    >>> ln = LayerNorm(128)
    >>> ln(x).shape == x.shape        # x: (..., 128)          # doctest: +SKIP
    """

    static_fields = ("normalized_shape", "eps")

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True):
        self.normalized_shape = _as_shape(normalized_shape, "LayerNorm")
        self.eps = float(eps)
        affine = elementwise_affine
        self.weight = fnp.ones(self.normalized_shape, fnp.float32) if affine else None
        self.bias = fnp.zeros(self.normalized_shape, fnp.float32) if affine and bias else None

    def __call__(self, x: Any) -> Any:
        axes = _check_trailing(x, self.normalized_shape, "LayerNorm")
        centred = x - fnp.mean(x, axis=axes, keepdims=True)
        variance = fnp.mean(centred * centred, axis=axes, keepdims=True)
        y = centred * lax.rsqrt(variance + self.eps)
        if self.weight is not None:
            y = y * self.weight
        return y if self.bias is None else y + self.bias


class RMSNorm(Module):
    """``x / sqrt(mean(x**2) + eps) * weight``, the mean over the trailing ``normalized_shape``
    dimensions, as ``torch.nn.RMSNorm``; ``eps=None`` means ``finfo(x.dtype).eps``.

    >>> norm = RMSNorm(128)
    >>> norm(x).shape == x.shape      # x: (..., 128)          # doctest: +SKIP
    """

    static_fields = ("normalized_shape", "eps")

    def __init__(self, normalized_shape: int | Sequence[int], eps: float | None = None,
                 elementwise_affine: bool = True):
        self.normalized_shape = _as_shape(normalized_shape, "RMSNorm")
        self.eps = None if eps is None else float(eps)
        self.weight = fnp.ones(self.normalized_shape, fnp.float32) if elementwise_affine else None

    def __call__(self, x: Any) -> Any:
        axes = _check_trailing(x, self.normalized_shape, "RMSNorm")
        x = fnp.asarray(x)
        eps = float(fnp.finfo(x.dtype).eps) if self.eps is None else self.eps
        y = x * lax.rsqrt(fnp.mean(x * x, axis=axes, keepdims=True) + eps)
        return y if self.weight is None else y * self.weight
