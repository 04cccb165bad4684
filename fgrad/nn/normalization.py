"""Normalisation layers as Modules, with PyTorch's parameters (``weight`` ones, ``bias`` zeros)
and semantics: ``LayerNorm`` and ``RMSNorm`` normalise over the trailing ``normalized_shape``
dimensions; ``GroupNorm`` and ``InstanceNorm1d/2d/3d`` over groups of channels (or single
channels) of each example; ``BatchNorm`` (and ``BatchNorm1d/2d/3d``) over the batch, with its
running statistics in an explicit state pytree (``BatchNormState``) passed in and returned."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from fgrad import lax
from fgrad import numpy as fnp
from fgrad.nn.functional import batch_norm, group_norm
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


def _positive_int(value: Any, name: str, layer: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{layer}: {name} must be a positive int, got {value!r}")
    return int(value)


class GroupNorm(Module):
    """``torch.nn.GroupNorm(num_groups, num_channels, eps=1e-5, affine=True)``: the channels of an
    (N, C, *) input split into ``num_groups`` groups, each normalised over its channels and positions
    (biased variance) per example, then scaled by ``weight`` and shifted by ``bias`` (per channel).

    >>> norm = GroupNorm(8, 64)
    >>> norm(x).shape == x.shape      # x: (N, 64, H, W)        # doctest: +SKIP
    """

    static_fields = ("num_groups", "num_channels", "eps")

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True):
        self.num_groups = _positive_int(num_groups, "num_groups", "GroupNorm")
        self.num_channels = _positive_int(num_channels, "num_channels", "GroupNorm")
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        self.eps = float(eps)
        self.weight = fnp.ones((num_channels,), fnp.float32) if affine else None
        self.bias = fnp.zeros((num_channels,), fnp.float32) if affine else None

    def __call__(self, x: Any) -> Any:
        shape = fnp.shape(x)
        if len(shape) < 2 or shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm({self.num_groups}, {self.num_channels}) expects an (N, "
                             f"{self.num_channels}, *) input, got shape {shape}")
        return group_norm(x, self.num_groups, self.weight, self.bias, self.eps)


class _InstanceNorm(Module):
    """Each channel of each example normalised over its ``num_spatial_dims`` spatial dims."""

    static_fields = ("num_features", "eps")
    num_spatial_dims = 2

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = False,
                 track_running_stats: bool = False):
        layer = type(self).__name__
        if track_running_stats:
            raise ValueError(f"{layer}: track_running_stats=True is not supported; instance statistics are "
                             "used in training and evaluation alike (PyTorch's default)")
        self.num_features, self.eps = _positive_int(num_features, "num_features", layer), float(eps)
        self.weight = fnp.ones((num_features,), fnp.float32) if affine else None
        self.bias = fnp.zeros((num_features,), fnp.float32) if affine else None

    def __call__(self, x: Any) -> Any:
        nsp, shape = self.num_spatial_dims, fnp.shape(x)
        unbatched = len(shape) == nsp + 1
        if len(shape) not in (nsp + 1, nsp + 2) or shape[-nsp - 1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}) expects an (N, {self.num_features}, "
                             f"{nsp} spatial dims) or ({self.num_features}, {nsp} spatial dims) input, got "
                             f"shape {shape}")
        if int(np.prod(shape[-nsp:])) < 2:
            raise ValueError(f"{type(self).__name__}: expected more than 1 spatial element, got input shape {shape}")
        y = group_norm(x[None] if unbatched else x, self.num_features, self.weight, self.bias, self.eps)
        return y[0] if unbatched else y


class InstanceNorm1d(_InstanceNorm):
    """``torch.nn.InstanceNorm1d``: (N, C, L) or (C, L), each channel normalised over L; no affine
    parameters unless ``affine=True``."""

    num_spatial_dims = 1


class InstanceNorm2d(_InstanceNorm):
    """``torch.nn.InstanceNorm2d``: (N, C, H, W) or (C, H, W), each channel normalised over H, W;
    no affine parameters unless ``affine=True``.

    >>> InstanceNorm2d(3)(images).shape == images.shape    # doctest: +SKIP
    """

    num_spatial_dims = 2


class InstanceNorm3d(_InstanceNorm):
    """``torch.nn.InstanceNorm3d``: (N, C, D, H, W) or (C, D, H, W), each channel normalised over D, H, W."""

    num_spatial_dims = 3


class BatchNormState(Module):
    """A ``BatchNorm``'s running statistics, a pytree: ``running_mean`` (starts at zeros),
    ``running_var`` (ones) and ``num_batches_tracked`` (an int32 count of training steps)."""

    def __init__(self, running_mean: Any, running_var: Any, num_batches_tracked: Any):
        self.running_mean, self.running_var = running_mean, running_var
        self.num_batches_tracked = fnp.asarray(num_batches_tracked, fnp.int32)


class BatchNorm(Module):
    """Batch normalisation, functional: the running statistics are a state pytree passed in and
    returned, never stored in the layer (which stays an immutable pytree of parameters).

        bn = BatchNorm(64)                          # weight ones, bias zeros (PyTorch's)
        state = bn.init_state()                     # BatchNormState: mean 0, var 1, count 0
        y, state = bn(x, state, training=True)      # batch statistics; running stats updated
        y, _ = bn(x, state, training=False)         # running statistics; state unchanged

    Training normalises with the batch's mean and biased variance over every axis but
    ``channel_axis`` (1: PyTorch's (N, C, *) layout; -1 for channels-last as Flax's ``axis``), and
    updates ``running = (1 - momentum) * running + momentum * batch`` with the unbiased variance
    (PyTorch's convention; ``momentum=None`` is PyTorch's cumulative average, ``1 / count``).
    Evaluation normalises with the running statistics. ``training`` must be given: there is no
    hidden mode to forget to switch.

    Under ``jit`` the ``training`` flag is static. Gradients flow through the batch statistics,
    never into the state (its update is ``stop_gradient``-ed): differentiate the parameters and
    return the new state as auxiliary data, ``grad(loss, has_aux=True)``. With ``axis_name``, the
    statistics are averaged over that named axis with ``lax.pmean``, as Equinox does: over the
    replicas of ``shard`` (each with a local batch), or over the examples of ``vmap(...,
    axis_name=...)`` with per-example (C, *) inputs and ``channel_axis=0``, where the state goes in
    unbatched and comes out unbatched (``in_axes=(0, None), out_axes=(0, None)``).

    ``track_running_stats=False`` uses batch statistics in training and evaluation alike and has
    no state (``init_state()`` is None).

    >>> bn = BatchNorm(3, axis_name="batch", channel_axis=0)                          # doctest: +SKIP
    >>> step = vmap(lambda x, s: bn(x, s, training=True), in_axes=(0, None),
    ...             out_axes=(0, None), axis_name="batch")                          # doctest: +SKIP
    """

    static_fields = ("num_features", "eps", "momentum", "track_running_stats", "axis_name", "channel_axis")
    input_ndims: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, *, axis_name: Any = None, channel_axis: int = 1):
        layer = type(self).__name__
        self.num_features = _positive_int(num_features, "num_features", layer)
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{layer}: momentum must be in [0, 1] or None (cumulative average), got {momentum!r}")
        self.eps, self.momentum = float(eps), None if momentum is None else float(momentum)
        self.track_running_stats = bool(track_running_stats)
        self.axis_name, self.channel_axis = axis_name, int(channel_axis)
        self.weight = fnp.ones((num_features,), fnp.float32) if affine else None
        self.bias = fnp.zeros((num_features,), fnp.float32) if affine else None

    def init_state(self) -> BatchNormState | None:
        """The initial running statistics (None when ``track_running_stats=False``)."""
        if not self.track_running_stats:
            return None
        return BatchNormState(fnp.zeros((self.num_features,), fnp.float32),
                              fnp.ones((self.num_features,), fnp.float32), 0)

    def __call__(self, x: Any, state: BatchNormState | None, *, training: bool) -> tuple[Any, Any]:
        self._check_input(x, state, training)
        options = dict(eps=self.eps, axis_name=self.axis_name, channel_axis=self.channel_axis)
        if not self.track_running_stats:
            return batch_norm(x, None, None, self.weight, self.bias, True, **options)[0], state
        if not training:
            y, _, _ = batch_norm(x, state.running_mean, state.running_var, self.weight, self.bias, False, **options)
            return y, state
        count = state.num_batches_tracked + 1
        momentum = 1.0 / count.astype(state.running_mean.dtype) if self.momentum is None else self.momentum
        y, mean, var = batch_norm(x, state.running_mean, state.running_var, self.weight, self.bias, True,
                                  momentum, **options)
        return y, BatchNormState(mean, var, count)

    def _check_input(self, x: Any, state: Any, training: Any) -> None:
        layer, shape = type(self).__name__, fnp.shape(x)
        if not isinstance(training, (bool, np.bool_)):
            raise TypeError(f"{layer}: training must be a Python bool (static under jit), got "
                            f"{type(training).__name__}")
        if self.input_ndims and len(shape) not in self.input_ndims:
            raise ValueError(f"{layer}: expected {' or '.join(f'{n}-D' for n in self.input_ndims)} input "
                             f"(N, C, ...), got shape {shape}")
        if not -len(shape) <= self.channel_axis < len(shape) or shape[self.channel_axis] != self.num_features:
            raise ValueError(f"{layer}({self.num_features}): expects {self.num_features} channels on axis "
                             f"{self.channel_axis}, got input shape {shape}; a per-example (C, *) input under "
                             "vmap(..., axis_name=...) needs channel_axis=0")
        if self.track_running_stats and not isinstance(state, BatchNormState):
            raise TypeError(f"{layer}: state must be the BatchNormState from bn.init_state() (or the one the "
                            f"last call returned), got {type(state).__name__}")


class BatchNorm1d(BatchNorm):
    """``torch.nn.BatchNorm1d`` as a functional ``BatchNorm``: (N, C) or (N, C, L) inputs."""

    input_ndims = (2, 3)


class BatchNorm2d(BatchNorm):
    """``torch.nn.BatchNorm2d`` as a functional ``BatchNorm``: (N, C, H, W) inputs.

    >>> bn = BatchNorm2d(32); state = bn.init_state()                 # doctest: +SKIP
    >>> y, state = bn(x, state, training=True)                         # doctest: +SKIP
    """

    input_ndims = (4,)


class BatchNorm3d(BatchNorm):
    """``torch.nn.BatchNorm3d`` as a functional ``BatchNorm``: (N, C, D, H, W) inputs."""

    input_ndims = (5,)
