"""Convolution layers ``Conv1d``/``Conv2d``/``Conv3d`` and ``ConvTranspose1d/2d/3d``, as PyTorch's:
one implementation per kind, the number of spatial dimensions a class attribute.

Initialised as PyTorch does (Kaiming-uniform with a = sqrt(5)): weight and bias uniform on
``[-1/sqrt(fan_in), 1/sqrt(fan_in)]`` with ``fan_in = weight.shape[1] * prod(kernel_size)``, which
is ``in_channels / groups * prod(kernel)`` for a convolution and ``out_channels / groups *
prod(kernel)`` for a transposed one (PyTorch computes both from the weight's dimension 1)."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from fgrad.nn.convolution import check_padding_mode, conv, conv_padding, conv_transpose, ntuple
from fgrad.nn.layers import _split_key, _uniform
from fgrad.nn.module import Module


def _check_channels(in_channels: int, out_channels: int, groups: int, layer: str) -> None:
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1 \
            or in_channels % groups or out_channels % groups:
        raise ValueError(f"{layer}: in_channels ({in_channels}) and out_channels ({out_channels}) must be "
                         f"divisible by groups ({groups})")


class _ConvNd(Module):
    """A convolution over ``num_spatial_dims`` dims (set by each subclass); see ``Conv2d``."""

    static_fields = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
                     "padding_mode")
    num_spatial_dims = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] = 1, padding: int | Sequence[int] | str = 0,
                 dilation: int | Sequence[int] = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", *, key: Any):
        layer, nsp = type(self).__name__, self.num_spatial_dims
        _check_channels(in_channels, out_channels, groups, layer)
        self.kernel_size = ntuple(kernel_size, nsp, "kernel_size", layer)
        self.stride = ntuple(stride, nsp, "stride", layer)
        self.dilation = ntuple(dilation, nsp, "dilation", layer)
        conv_padding(padding, self.kernel_size, self.stride, self.dilation, layer)   # checks it
        self.padding = padding if isinstance(padding, str) else ntuple(padding, nsp, "padding", layer)
        self.padding_mode = check_padding_mode(padding_mode, layer)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        weight_key, bias_key = _split_key(key, layer)
        bound = 1.0 / math.sqrt(in_channels // groups * math.prod(self.kernel_size))
        self.weight = _uniform(weight_key, (out_channels, in_channels // groups, *self.kernel_size), bound)
        self.bias = _uniform(bias_key, (out_channels,), bound) if bias else None

    def __call__(self, x: Any) -> Any:
        return conv(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups,
                    self.padding_mode, fn=type(self).__name__)


class Conv1d(_ConvNd):
    """1-D convolution (cross-correlation) over (N, C_in, L) or (C_in, L) inputs, weight
    (C_out, C_in/groups, K), as ``torch.nn.Conv1d`` (same arguments: ``padding`` an int, a tuple,
    ``'same'`` or ``'valid'``; ``padding_mode`` 'zeros', 'reflect', 'replicate' or 'circular').

    >>> conv = Conv1d(16, 32, 5, padding="same", key=fgrad.random.key(0))   # doctest: +SKIP
    >>> conv(x).shape           # x: (8, 16, 100) -> (8, 32, 100)
    """

    num_spatial_dims = 1


class Conv2d(_ConvNd):
    """2-D convolution (cross-correlation) over NCHW or CHW inputs with OIHW weights, as
    ``torch.nn.Conv2d`` (``padding`` an int, a pair, ``'same'`` or ``'valid'``; ``dilation``,
    ``groups``, ``padding_mode`` 'zeros', 'reflect', 'replicate' or 'circular').

    >>> conv = Conv2d(1, 32, 3, key=fgrad.random.key(0))     # doctest: +SKIP
    >>> conv(images).shape      # images: (128, 1, 28, 28)  -> (128, 32, 26, 26)
    """

    num_spatial_dims = 2


class Conv3d(_ConvNd):
    """3-D convolution (cross-correlation) over (N, C_in, D, H, W) or (C_in, D, H, W) inputs,
    weight (C_out, C_in/groups, KD, KH, KW), as ``torch.nn.Conv3d``.

    >>> conv = Conv3d(1, 8, 3, padding=1, key=fgrad.random.key(0))   # doctest: +SKIP
    >>> conv(volumes).shape     # volumes: (2, 1, 16, 16, 16) -> (2, 8, 16, 16, 16)
    """

    num_spatial_dims = 3


class _ConvTransposeNd(Module):
    """A transposed convolution over ``num_spatial_dims`` dims; see ``ConvTranspose2d``."""

    static_fields = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "output_padding",
                     "dilation", "groups")
    num_spatial_dims = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
                 output_padding: int | Sequence[int] = 0, groups: int = 1, bias: bool = True,
                 dilation: int | Sequence[int] = 1, padding_mode: str = "zeros", *, key: Any):
        layer, nsp = type(self).__name__, self.num_spatial_dims
        _check_channels(in_channels, out_channels, groups, layer)
        if padding_mode != "zeros":
            raise ValueError(f"{layer}: only padding_mode='zeros' is supported (as in PyTorch), got {padding_mode!r}")
        self.kernel_size = ntuple(kernel_size, nsp, "kernel_size", layer)
        self.stride = ntuple(stride, nsp, "stride", layer)
        self.padding = ntuple(padding, nsp, "padding", layer)
        self.output_padding = ntuple(output_padding, nsp, "output_padding", layer)
        self.dilation = ntuple(dilation, nsp, "dilation", layer)
        if any(not 0 <= op < max(s, d) for op, s, d in zip(self.output_padding, self.stride, self.dilation)):
            raise ValueError(f"{layer}: output_padding {self.output_padding} must be smaller than either "
                             f"stride {self.stride} or dilation {self.dilation}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        weight_key, bias_key = _split_key(key, layer)
        bound = 1.0 / math.sqrt(out_channels // groups * math.prod(self.kernel_size))
        self.weight = _uniform(weight_key, (in_channels, out_channels // groups, *self.kernel_size), bound)
        self.bias = _uniform(bias_key, (out_channels,), bound) if bias else None

    def __call__(self, x: Any) -> Any:
        return conv_transpose(x, self.weight, self.bias, self.stride, self.padding, self.output_padding,
                              self.groups, self.dilation, fn=type(self).__name__)


class ConvTranspose1d(_ConvTransposeNd):
    """1-D transposed convolution over (N, C_in, L) or (C_in, L) inputs, weight (C_in, C_out/groups, K),
    as ``torch.nn.ConvTranspose1d``: L_out = (L - 1) * stride - 2 * padding + dilation * (K - 1) +
    output_padding + 1.

    >>> up = ConvTranspose1d(8, 4, 4, stride=2, padding=1, key=fgrad.random.key(0))   # doctest: +SKIP
    >>> up(x).shape             # x: (2, 8, 50) -> (2, 4, 100)
    """

    num_spatial_dims = 1


class ConvTranspose2d(_ConvTransposeNd):
    """2-D transposed convolution ("deconvolution", the gradient of ``Conv2d`` with respect to its
    input) over NCHW or CHW inputs, weight (C_in, C_out/groups, KH, KW), as ``torch.nn.ConvTranspose2d``
    (``stride``, ``padding``, ``output_padding``, ``groups``, ``dilation``; only zero padding).

    >>> up = ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1,
    ...                      key=fgrad.random.key(0))                   # doctest: +SKIP
    >>> up(x).shape             # x: (8, 64, 14, 14) -> (8, 32, 28, 28)
    """

    num_spatial_dims = 2


class ConvTranspose3d(_ConvTransposeNd):
    """3-D transposed convolution over (N, C_in, D, H, W) or (C_in, D, H, W) inputs, weight
    (C_in, C_out/groups, KD, KH, KW), as ``torch.nn.ConvTranspose3d``.

    >>> up = ConvTranspose3d(4, 2, 2, stride=2, key=fgrad.random.key(0))   # doctest: +SKIP
    >>> up(x).shape             # x: (1, 4, 8, 8, 8) -> (1, 2, 16, 16, 16)
    """

    num_spatial_dims = 3

