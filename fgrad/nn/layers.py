"""Layers as Modules, initialised like PyTorch: ``Linear``/``Conv2d`` weights Kaiming-uniform
with a = sqrt(5), i.e. uniform on ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]``, and biases uniform on
the same range; ``Embedding`` weights N(0, 1). Also the parameter-free ``Dropout``, and
``Sequential`` (with ``Lambda`` wrapping plain functions) to chain layers."""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from fgrad import lax
from fgrad import numpy as fnp
from fgrad import random
from fgrad.nn.functional import avg_pool2d, dropout, max_pool2d, relu
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


class Embedding(Module):
    """A lookup table: ``Embedding(n, d)(ids)`` is ``weight[ids]``, of shape ``ids.shape + (d,)``,
    with ``weight`` of shape (num_embeddings, embedding_dim) drawn from N(0, 1), as
    ``torch.nn.Embedding``. ``ids`` must be integers.

    >>> wte = Embedding(65, 128, key=fgrad.random.key(0))   # doctest: +SKIP
    >>> wte(fnp.array([[1, 2, 3]])).shape                      # (1, 3, 128)
    """

    static_fields = ("num_embeddings", "embedding_dim")

    def __init__(self, num_embeddings: int, embedding_dim: int, *, key: Any):
        if key is None:
            raise TypeError("Embedding needs an explicit PRNG key: pass key=fgrad.random.key(seed)")
        self.weight = random.normal(key, (num_embeddings, embedding_dim), fnp.float32)
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim

    def __call__(self, ids: Any) -> Any:
        ids = fnp.asarray(ids)
        if not fnp.issubdtype(ids.dtype, fnp.integer):
            raise TypeError(f"Embedding({self.num_embeddings}, {self.embedding_dim}): ids must be integers, "
                            f"got dtype {ids.dtype}; convert them with ids.astype(fgrad.numpy.int32)")
        return fnp.take(self.weight, ids, axis=0)


class Dropout(Module):
    """Zero each element with probability ``rate`` and scale the rest by ``1 / (1 - rate)``
    (``fgrad.nn.dropout`` as a layer). Without a ``key``, or with ``deterministic=True``
    (evaluation), it is the identity.

    >>> drop = Dropout(0.1)
    >>> y = drop(x, key=fgrad.random.key(1))      # training    # doctest: +SKIP
    >>> y = drop(x)                                # evaluation  # doctest: +SKIP
    """

    static_fields = ("rate",)
    call_takes_key = True  # Sequential hands it a PRNG key

    def __init__(self, rate: float = 0.5):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout: rate must be in [0, 1), got {rate}")
        self.rate = float(rate)

    def __call__(self, x: Any, *, key: Any = None, deterministic: bool = False) -> Any:
        return dropout(x, self.rate, key=key, deterministic=deterministic or key is None)


class Lambda(Module):
    """A parameter-free function as a layer (``Sequential`` wraps plain functions in it, so
    that the function is static metadata of the pytree, not a leaf)."""

    static_fields = ("fn",)

    def __init__(self, fn: Callable[[Any], Any]):
        if not callable(fn):
            raise TypeError(f"Lambda: expected a callable, got {type(fn).__name__}")
        self.fn = fn

    def __call__(self, x: Any) -> Any:
        return self.fn(x)


class Sequential(Module):
    """Layers applied in order: ``Sequential(a, b, c)(x) == c(b(a(x)))``. Plain functions
    (``fgrad.nn.relu``) may stand between modules. With ``key=``, the key is split and each
    layer whose class sets ``call_takes_key = True`` (``Dropout``, ``Sequential``) gets one;
    without a key those layers run deterministically.

    >>> mlp = Sequential(Linear(4, 8, key=k1), relu, Dropout(0.1), Linear(8, 2, key=k2))  # doctest: +SKIP
    >>> y = mlp(x, key=dropout_key)                                                     # doctest: +SKIP
    """

    call_takes_key = True

    def __init__(self, *layers: Any):
        for index, layer in enumerate(layers):
            if not callable(layer):
                raise TypeError(f"Sequential: layer {index} ({type(layer).__name__}) is not callable; "
                                "pass modules or functions: Sequential(Linear(...), relu, ...)")
        self.layers = tuple(layer if isinstance(layer, Module) else Lambda(layer) for layer in layers)

    def __call__(self, x: Any, *, key: Any = None) -> Any:
        keys = [None] * len(self.layers) if key is None else list(random.split(key, max(len(self.layers), 1)))
        for layer, layer_key in zip(self.layers, keys):
            x = layer(x, key=layer_key) if getattr(layer, "call_takes_key", False) else layer(x)
        return x

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index: int) -> Any:
        return self.layers[index]


class _Pool2d(Module):
    """A pooling function (``pool``, set by each subclass) as a layer: NCHW or CHW inputs,
    ``stride`` defaulting to ``kernel_size``."""

    static_fields = ("kernel_size", "stride", "padding")
    pool = None

    def __init__(self, kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None,
                 padding: int | Sequence[int] = 0):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def __call__(self, x: Any) -> Any:
        return type(self).pool(x, self.kernel_size, self.stride, self.padding)


class MaxPool2d(_Pool2d):
    """``fgrad.nn.max_pool2d`` as a layer (``torch.nn.MaxPool2d``)."""

    pool = staticmethod(max_pool2d)


class AvgPool2d(_Pool2d):
    """``fgrad.nn.avg_pool2d`` as a layer (``torch.nn.AvgPool2d``; zero padding counts)."""

    pool = staticmethod(avg_pool2d)


class MLP(Module):
    """A multi-layer perceptron as Equinox's ``eqx.nn.MLP``: ``depth`` hidden layers of
    ``width_size`` (so ``depth + 1`` ``Linear`` layers), ``activation`` after each hidden
    layer and ``final_activation`` after the last.

    >>> mlp = MLP(784, 10, width_size=128, depth=2, key=fgrad.random.key(0))   # doctest: +SKIP
    """

    static_fields = ("in_size", "out_size", "width_size", "depth", "activation", "final_activation")

    def __init__(self, in_size: int, out_size: int, width_size: int, depth: int,
                 activation: Callable[[Any], Any] | None = None,
                 final_activation: Callable[[Any], Any] | None = None, use_bias: bool = True, *, key: Any):
        if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 0:
            raise ValueError(f"MLP: depth must be a non-negative int (hidden layers), got {depth!r}")
        if key is None:
            raise TypeError("MLP needs an explicit PRNG key: pass key=fgrad.random.key(seed)")
        sizes = [in_size] + [width_size] * depth + [out_size]
        keys = random.split(key, depth + 1)
        self.layers = tuple(Linear(a, b, use_bias, key=k) for a, b, k in zip(sizes[:-1], sizes[1:], keys))
        self.in_size, self.out_size, self.width_size, self.depth = in_size, out_size, width_size, int(depth)
        self.activation = activation if activation is not None else relu
        self.final_activation = final_activation if final_activation is not None else _identity

    def __call__(self, x: Any) -> Any:
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        return self.final_activation(self.layers[-1](x))


def _identity(x: Any) -> Any:
    return x
