"""Layers as Modules, initialised like PyTorch: weights Kaiming-uniform with a = sqrt(5),
i.e. uniform on ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]``, and biases uniform on the same range."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from fgrad import lax
from fgrad import numpy as fnp
from fgrad import random
from fgrad.nn.module import Module


def _split_key(key: Any, layer: str) -> tuple[Any, Any]:
    if key is None:
        raise TypeError(f"{layer} needs an explicit PRNG key: pass key=fgrad.random.key(seed)")
    weight_key, bias_key = random.split(key)
    return weight_key, bias_key


def _uniform(key: Any, shape: Sequence[int], bound: float) -> Any:
    return random.uniform(key, tuple(shape), fnp.float32, -bound, bound)


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        return (int(value), int(value))
    value = tuple(int(v) for v in value)
    if len(value) != 2:
        raise ValueError(f"Conv2d: {name} must be an int or a pair of ints, got {value}")
    return value


class Linear(Module):
    """``y = x @ weight.T + bias`` with ``weight`` of shape (out_features, in_features), as in
    PyTorch. Accepts any leading batch dimensions.

    >>> layer = Linear(1600, 10, key=fgrad.random.key(0))   # doctest: +SKIP
    """

    static_fields = ("in_features", "out_features")

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, key: Any):
        weight_key, bias_key = _split_key(key, "Linear")
        bound = 1.0 / math.sqrt(in_features) if in_features else 0.0
        self.weight = _uniform(weight_key, (out_features, in_features), bound)
        self.bias = _uniform(bias_key, (out_features,), bound) if bias else None
        self.in_features, self.out_features = in_features, out_features

    def __call__(self, x: Any) -> Any:
        shape = fnp.shape(x)
        if not shape or shape[-1] != self.in_features:
            raise ValueError(f"Linear({self.in_features} -> {self.out_features}): expects inputs with last "
                             f"dimension {self.in_features}, got shape {shape}")
        y = fnp.matmul(x, self.weight.T)
        return y if self.bias is None else y + self.bias


class Conv2d(Module):
    """2-D convolution (cross-correlation) over NCHW or CHW inputs with OIHW weights, as
    ``torch.nn.Conv2d``.

    >>> conv = Conv2d(1, 32, 3, key=fgrad.random.key(0))     # doctest: +SKIP
    >>> conv(images).shape      # images: (128, 1, 28, 28)  -> (128, 32, 26, 26)
    """

    static_fields = ("stride", "padding", "dilation", "groups")

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
                 dilation: int | Sequence[int] = 1, groups: int = 1, bias: bool = True, *, key: Any):
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: in_channels ({in_channels}) and out_channels ({out_channels}) must be "
                             f"divisible by groups ({groups})")
        kh, kw = _pair(kernel_size, "kernel_size")
        weight_key, bias_key = _split_key(key, "Conv2d")
        bound = 1.0 / math.sqrt(in_channels // groups * kh * kw)
        self.weight = _uniform(weight_key, (out_channels, in_channels // groups, kh, kw), bound)
        self.bias = _uniform(bias_key, (out_channels,), bound) if bias else None
        self.stride = _pair(stride, "stride")
        self.padding = _pair(padding, "padding")
        self.dilation = _pair(dilation, "dilation")
        self.groups = groups

    def __call__(self, x: Any) -> Any:
        unbatched = fnp.ndim(x) == 3
        if unbatched:
            x = x[None]
        if fnp.ndim(x) != 4:
            raise ValueError(f"Conv2d expects an NCHW (or CHW) input, got shape {fnp.shape(x)}")
        in_channels = self.weight.shape[1] * self.groups
        if fnp.shape(x)[1] != in_channels:
            raise ValueError(f"Conv2d expects {in_channels} input channels, got {fnp.shape(x)[1]} "
                             f"(input shape {fnp.shape(x)}, NCHW)")
        ph, pw = self.padding
        y = lax.conv_general_dilated(x, self.weight, self.stride, ((ph, ph), (pw, pw)),
                                     rhs_dilation=self.dilation, feature_group_count=self.groups)
        if self.bias is not None:
            y = y + fnp.reshape(self.bias, (1, -1, 1, 1))
        return y[0] if unbatched else y
