"""Layers as Modules, initialised like PyTorch: ``Linear`` weights Kaiming-uniform with
a = sqrt(5), i.e. uniform on ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]``, and biases uniform on the
same range; ``Embedding`` weights N(0, 1). Also the parameter-free ``Dropout``, pooling,
``Identity`` and ``Flatten``, and ``Sequential`` (with ``Lambda`` wrapping plain functions) to
chain layers. The convolutions are in ``fgrad.nn.conv``."""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from fgrad import numpy as fnp
from fgrad import random
from fgrad.nn.functional import (adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d, avg_pool1d,
                                 avg_pool2d, avg_pool3d, dropout, flatten, max_pool1d, max_pool2d, max_pool3d,
                                 relu)
from fgrad.nn.module import Module


def _split_key(key: Any, layer: str) -> tuple[Any, Any]:
    if key is None:
        raise TypeError(f"{layer} needs an explicit PRNG key: pass key=fgrad.random.key(seed)")
    weight_key, bias_key = random.split(key)
    return weight_key, bias_key


def _uniform(key: Any, shape: Sequence[int], bound: float) -> Any:
    return random.uniform(key, tuple(shape), fnp.float32, -bound, bound)


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


class _Pool(Module):
    """A pooling function (``pool``, set by each subclass) as a layer: (N, C, *spatial) or
    (C, *spatial) inputs, ``stride`` defaulting to ``kernel_size``."""

    static_fields = ("kernel_size", "stride", "padding")
    pool = None

    def __init__(self, kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None,
                 padding: int | Sequence[int] = 0):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def __call__(self, x: Any) -> Any:
        return type(self).pool(x, self.kernel_size, self.stride, self.padding)


class MaxPool1d(_Pool):
    """``fgrad.nn.max_pool1d`` as a layer (``torch.nn.MaxPool1d``)."""

    pool = staticmethod(max_pool1d)


class MaxPool2d(_Pool):
    """``fgrad.nn.max_pool2d`` as a layer (``torch.nn.MaxPool2d``).

    >>> MaxPool2d(2)(x).shape     # x: (8, 32, 28, 28) -> (8, 32, 14, 14)   # doctest: +SKIP
    """

    pool = staticmethod(max_pool2d)


class MaxPool3d(_Pool):
    """``fgrad.nn.max_pool3d`` as a layer (``torch.nn.MaxPool3d``)."""

    pool = staticmethod(max_pool3d)


class AvgPool1d(_Pool):
    """``fgrad.nn.avg_pool1d`` as a layer (``torch.nn.AvgPool1d``; zero padding counts)."""

    pool = staticmethod(avg_pool1d)


class AvgPool2d(_Pool):
    """``fgrad.nn.avg_pool2d`` as a layer (``torch.nn.AvgPool2d``; zero padding counts)."""

    pool = staticmethod(avg_pool2d)


class AvgPool3d(_Pool):
    """``fgrad.nn.avg_pool3d`` as a layer (``torch.nn.AvgPool3d``; zero padding counts)."""

    pool = staticmethod(avg_pool3d)


class _AdaptiveAvgPool(Module):
    """An adaptive average pooling function (``pool``, set by each subclass) as a layer."""

    static_fields = ("output_size",)
    pool = None

    def __init__(self, output_size: int | Sequence[int | None]):
        self.output_size = tuple(output_size) if isinstance(output_size, (list, tuple)) else output_size

    def __call__(self, x: Any) -> Any:
        return type(self).pool(x, self.output_size)


class AdaptiveAvgPool1d(_AdaptiveAvgPool):
    """``fgrad.nn.adaptive_avg_pool1d`` as a layer (``torch.nn.AdaptiveAvgPool1d``)."""

    pool = staticmethod(adaptive_avg_pool1d)


class AdaptiveAvgPool2d(_AdaptiveAvgPool):
    """``fgrad.nn.adaptive_avg_pool2d`` as a layer (``torch.nn.AdaptiveAvgPool2d``): NCHW or CHW
    averaged to ``output_size`` in PyTorch's (possibly overlapping) bins.

    >>> AdaptiveAvgPool2d((1, 1))(features).shape    # (N, C, H, W) -> (N, C, 1, 1)   # doctest: +SKIP
    """

    pool = staticmethod(adaptive_avg_pool2d)


class AdaptiveAvgPool3d(_AdaptiveAvgPool):
    """``fgrad.nn.adaptive_avg_pool3d`` as a layer (``torch.nn.AdaptiveAvgPool3d``)."""

    pool = staticmethod(adaptive_avg_pool3d)


class Identity(Module):
    """Returns its input unchanged, as ``torch.nn.Identity`` (whose constructor arguments it
    accepts and ignores): a placeholder, e.g. to remove a classifier head.

    >>> Identity()(x) is x       # doctest: +SKIP
    """

    def __init__(self, *args: Any, **kwargs: Any):
        pass

    def __call__(self, x: Any) -> Any:
        return x


class Flatten(Module):
    """``fgrad.nn.flatten(x, start_dim, end_dim)`` as a layer, as ``torch.nn.Flatten``: by default
    every dimension but the batch merged into one.

    >>> Flatten()(x).shape        # x: (8, 32, 7, 7) -> (8, 1568)     # doctest: +SKIP
    """

    static_fields = ("start_dim", "end_dim")

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def __call__(self, x: Any) -> Any:
        return flatten(x, self.start_dim, self.end_dim)


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
