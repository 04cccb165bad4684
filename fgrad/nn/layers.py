"""Layers as Modules, initialised like PyTorch (Kaiming-uniform weights, uniform biases)."""
from __future__ import annotations

import math
from typing import Any, Sequence

from fgrad import lax
from fgrad import numpy as fnp
from fgrad.nn.module import Module


def _uniform(key: Any, shape: Sequence[int], bound: float) -> Any:
    from fgrad import random
    return random.uniform(key, tuple(shape), fnp.float32, -bound, bound)


def _split_key(key: Any) -> tuple[Any, Any]:
    if key is None:
        raise TypeError("layers need an explicit PRNG key: pass key=fgrad.random.key(seed)")
    from fgrad import random
    k1, k2 = random.split(key)
    return k1, k2


class Linear(Module):
    """``y = x @ weight.T + bias`` with weight (out_features, in_features), as in PyTorch."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, key: Any):
        wkey, bkey = _split_key(key)
        bound = 1.0 / math.sqrt(in_features) if in_features else 0.0
        self.weight = _uniform(wkey, (out_features, in_features), bound)
        self.bias = _uniform(bkey, (out_features,), bound) if bias else None

    def __call__(self, x: Any) -> Any:
        y = fnp.matmul(x, self.weight.T)
        return y + self.bias if self.bias is not None else y


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 2:
        raise ValueError(f"Conv2d: {name} must be an int or a pair, got {value}")
    return value


class Conv2d(Module):
    """2-D convolution over NCHW inputs with OIHW weights, as ``torch.nn.Conv2d``."""

    static_fields = ("stride", "padding", "dilation", "groups")

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
                 dilation: int | Sequence[int] = 1, groups: int = 1, bias: bool = True, *, key: Any):
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: in_channels ({in_channels}) and out_channels ({out_channels}) must be "
                             f"divisible by groups ({groups})")
        kh, kw = _pair(kernel_size, "kernel_size")
        wkey, bkey = _split_key(key)
        fan_in = in_channels // groups * kh * kw
        bound = 1.0 / math.sqrt(fan_in)
        self.weight = _uniform(wkey, (out_channels, in_channels // groups, kh, kw), bound)
        self.bias = _uniform(bkey, (out_channels,), bound) if bias else None
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
        (ph, pw) = self.padding
        y = lax.conv_general_dilated(x, self.weight, self.stride, ((ph, ph), (pw, pw)),
                                     rhs_dilation=self.dilation, feature_group_count=self.groups)
        if self.bias is not None:
            y = y + self.bias[None, :, None, None]
        return y[0] if unbatched else y
