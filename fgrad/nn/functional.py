"""Activation functions (JAX's ``jax.nn`` set), softmax family, one_hot, standardize, dropout,
flatten and normalisation (``group_norm``, ``instance_norm``, ``batch_norm``); convolution and
pooling come from ``fgrad.nn.convolution`` and are re-exported here."""
from __future__ import annotations

import math
import operator
from typing import Any, Sequence

import numpy as np

from fgrad import lax
from fgrad import numpy as fnp
from fgrad import random
from fgrad.core import dtypes
from fgrad.nn.convolution import (adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d,  # noqa: F401
                                  avg_pool1d, avg_pool2d, avg_pool3d, conv1d, conv2d, conv3d,
                                  conv_transpose1d, conv_transpose2d, conv_transpose3d, max_pool1d,
                                  max_pool2d, max_pool3d)
from fgrad.numpy._util import promote, promote_float
from fgrad.transforms.custom import custom_jvp


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
    """``silu(x)``: ``x * sigmoid(x)`` (``swish`` is the same function)."""
    x = promote_float("silu", x)
    return x * sigmoid(x)


swish = silu


def softplus(x: Any) -> Any:
    """``softplus(x)``: ``log(1 + exp(x))``, computed as ``logaddexp(x, 0)`` (no overflow)."""
    return fnp.logaddexp(promote_float("softplus", x), 0.0)


def log_sigmoid(x: Any) -> Any:
    """``log_sigmoid(x)``: ``log(sigmoid(x)) = -softplus(-x)``, stable for large ``|x|``."""
    return -softplus(-promote_float("log_sigmoid", x))


def elu(x: Any, alpha: Any = 1.0) -> Any:
    """``elu(x, alpha=1.0)``: ``x`` if ``x > 0`` else ``alpha * (exp(x) - 1)``; JAX's formula
    (``expm1`` of the clamped input, so a large ``x`` never overflows the unused branch)."""
    x = promote_float("elu", x)
    positive = x > 0
    return fnp.where(positive, x, alpha * fnp.expm1(fnp.where(positive, 0.0, x)))


def selu(x: Any) -> Any:
    """``selu(x)``: ``1.0507009873554805 * elu(x, 1.6732632423543772)``."""
    return 1.0507009873554805 * elu(x, 1.6732632423543772)


def celu(x: Any, alpha: Any = 1.0) -> Any:
    """``celu(x, alpha=1.0)``: ``max(x, 0) + alpha * expm1(min(x, 0) / alpha)`` (derivative 1 at 0)."""
    x = promote_float("celu", x)
    return fnp.maximum(x, 0.0) + alpha * fnp.expm1(fnp.minimum(x, 0.0) / alpha)


def leaky_relu(x: Any, negative_slope: Any = 0.01) -> Any:
    """``leaky_relu(x, negative_slope=0.01)``: ``x`` if ``x >= 0`` else ``negative_slope * x``
    (derivative 1 at 0, as in JAX)."""
    x = promote_float("leaky_relu", x)
    return fnp.where(x >= 0, x, negative_slope * x)


def relu6(x: Any) -> Any:
    """``relu6(x)``: ``min(max(x, 0), 6)``; its derivative is JAX's rule, 1 on ``(0, 6)`` and 0
    elsewhere (0 at 0, at 6 and at NaN), to every order."""
    x = promote_float("relu6", x)
    clipped = lax.stop_gradient(fnp.minimum(fnp.maximum(x, 0.0), 6.0))
    return fnp.where((x > 0) & (x < 6), x, clipped)


def hard_tanh(x: Any) -> Any:
    """``hard_tanh(x)``: ``x`` clipped to ``[-1, 1]`` (derivative 1 at +-1, as in JAX; an
    integer input stays integer)."""
    x = fnp.asarray(x)
    return fnp.where(x > 1, 1, fnp.where(x < -1, -1, x))


def hard_sigmoid(x: Any) -> Any:
    """``hard_sigmoid(x)``: ``relu6(x + 3) / 6``."""
    return relu6(promote_float("hard_sigmoid", x) + 3.0) / 6.0


def hard_silu(x: Any) -> Any:
    """``hard_silu(x)``: ``x * hard_sigmoid(x)`` (``hard_swish`` is the same function)."""
    x = promote_float("hard_silu", x)
    return x * hard_sigmoid(x)


hard_swish = hard_silu


def identity(x: Any) -> Any:
    """``identity(x)``: ``x`` as an array, unchanged."""
    return fnp.asarray(x)


def soft_sign(x: Any) -> Any:
    """``soft_sign(x)``: ``x / (|x| + 1)``."""
    x = promote_float("soft_sign", x)
    return x / (fnp.abs(x) + 1.0)


def squareplus(x: Any, b: Any = 4) -> Any:
    """``squareplus(x, b=4)``: ``(x + sqrt(x**2 + b)) / 2``."""
    x = promote_float("squareplus", x)
    return (x + fnp.sqrt(fnp.square(x) + b)) / 2


def sparse_plus(x: Any) -> Any:
    """``sparse_plus(x)``: 0 for ``x <= -1``, ``x`` for ``x >= 1``, ``(x + 1)**2 / 4`` between."""
    x = promote_float("sparse_plus", x)
    return fnp.where(x <= -1.0, 0.0, fnp.where(x >= 1.0, x, (x + 1.0) ** 2 / 4))


def sparse_sigmoid(x: Any) -> Any:
    """``sparse_sigmoid(x)``: ``clip(x + 1, 0, 2) / 2`` (the derivative of ``sparse_plus``); at
    ``x = +-1`` its derivative is JAX's ``0.25`` (a tie of the clip's max/min)."""
    x = promote_float("sparse_sigmoid", x)
    return 0.5 * fnp.minimum(fnp.maximum(x + 1.0, 0.0), 2.0)


def mish(x: Any) -> Any:
    """``mish(x)``: ``x * tanh(softplus(x))``."""
    x = promote_float("mish", x)
    return x * fnp.tanh(softplus(x))


def glu(x: Any, axis: int = -1) -> Any:
    """``glu(x, axis=-1)``: split ``x`` in two halves along ``axis``, ``first * sigmoid(second)``."""
    x = promote_float("glu", x)
    size = fnp.shape(x)[axis]
    if size % 2:
        raise ValueError(f"glu: the size of axis {axis} must be even to split it in two halves, "
                         f"got {size} (shape {fnp.shape(x)})")
    first, second = fnp.split(x, 2, axis=axis)
    return first * sigmoid(second)


def standardize(x: Any, axis: int | Sequence[int] | None = -1, mean: Any = None, variance: Any = None,
                epsilon: Any = 1e-5, where: Any = None, *, algorithm: str = "fast") -> Any:
    """``standardize(x, axis=-1, mean=None, variance=None, epsilon=1e-5, where=None, *, algorithm='fast')``:
    ``(x - mean) / sqrt(variance + epsilon)``, with the mean and variance along ``axis`` when not given.

    ``algorithm='fast'`` (JAX's default) takes the variance as ``mean(x**2) - mean(x)**2`` clipped
    at 0; ``'stable'`` as ``mean((x - mean)**2)``.
    """
    if algorithm not in ("fast", "stable"):
        raise ValueError(f"standardize: unknown algorithm {algorithm!r}; use 'fast' or 'stable'")
    x = promote_float("standardize", x)
    if mean is None:
        mean = fnp.mean(x, axis=axis, keepdims=True, where=where)
    if variance is None:
        if algorithm == "stable":
            variance = fnp.mean(fnp.square(x - mean), axis=axis, keepdims=True, where=where)
        else:
            variance = fnp.mean(fnp.square(x), axis=axis, keepdims=True, where=where) - fnp.square(mean)
            variance = fnp.maximum(variance, 0.0)
    return (x - mean) * lax.rsqrt(variance + epsilon)


def gelu(x: Any, approximate: bool = True) -> Any:
    """Gaussian error linear unit ``x * Phi(x)``.

    ``approximate=True`` (JAX's default) uses the tanh form; ``False`` the exact erf form
    (PyTorch's default), JAX's ``x * erfc(-x / sqrt(2)) / 2``. A Python number gives a strongly
    typed float32 result, as JAX's (its constants carry ``x``'s dtype).
    """
    x = promote_float("gelu", x)
    x = lax.convert_element_type(x, x.dtype)   # strong: JAX's gelu(1.5) is not weakly typed
    if approximate:
        c = float(np.sqrt(2.0 / np.pi))
        return 0.5 * x * (1.0 + fnp.tanh(c * (x + 0.044715 * (x * x * x))))
    return 0.5 * x * lax.erfc(-x * float(np.sqrt(0.5)))


def _max_keepdims(x: Any, axis: Any, where: Any = None) -> Any:
    """The max along ``axis`` (kept), ``-inf`` over a zero-size (or fully masked) axis (JAX's
    ``initial=-inf``)."""
    x = fnp.asarray(x)
    initial = -np.inf if fnp.issubdtype(x.dtype, fnp.floating) else None
    if where is None:
        return fnp.max(x, axis=axis, keepdims=True, initial=initial)
    return fnp.max(x, axis=axis, keepdims=True, initial=initial, where=where)


def logsumexp(a: Any, axis: int | Sequence[int] | None = None, b: Any = None, keepdims: bool = False,
              return_sign: bool = False, where: Any = None) -> Any:
    """``jax.nn.logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False, where=None)``
    (the same function as ``jax.scipy.special.logsumexp``): ``log(sum(b * exp(a), axis))``
    computed stably; ``axis=None`` reduces over all axes; ``-inf`` over a zero-size axis or
    where ``where`` masks everything. With ``b``, a negative sum is NaN unless ``return_sign``,
    which returns ``(log|sum|, sign(sum))`` (sign 0 for an empty sum)."""
    if b is None and where is None and not return_sign:
        return _logsumexp(promote_float("logsumexp", a), axis, keepdims)
    if b is None:
        a = promote_float("logsumexp", a)
    else:
        a, b = (fnp.asarray(v) for v in promote("logsumexp", a, b, to_float=True))
        a, b = fnp.broadcast_arrays(a, b)
    masked = a if where is None else fnp.where(where, a, -np.inf)
    shift = fnp.max(masked, axis=axis, keepdims=True, initial=-np.inf)
    shift = lax.stop_gradient(fnp.where(fnp.isfinite(shift), shift, fnp.zeros_like(shift)))
    terms = fnp.exp(masked - shift)
    if b is not None:
        terms = terms * b
    if where is not None:
        terms = fnp.where(where, terms, fnp.zeros_like(terms))
    total = fnp.sum(terms, axis=axis, keepdims=True)
    sign = fnp.sign(total)
    out = fnp.log(fnp.abs(total)) + shift
    if not keepdims:
        out, sign = fnp.squeeze(out, axis=axis), fnp.squeeze(sign, axis=axis)
    if return_sign:
        return out, sign
    return fnp.where(sign < 0, fnp.nan, out)


def _logsumexp(x: Any, axis: int | Sequence[int] | None, keepdims: bool) -> Any:
    """``log(sum(exp(x)))`` computed stably (shifted by the max) for large inputs."""
    shift = lax.stop_gradient(_max_keepdims(x, axis))
    shift = fnp.where(fnp.isfinite(shift), shift, fnp.zeros_like(shift))
    out = fnp.log(fnp.sum(fnp.exp(x - shift), axis=axis, keepdims=True)) + shift
    return out if keepdims else fnp.squeeze(out, axis=axis)


def logmeanexp(x: Any, axis: int | Sequence[int] | None = None, where: Any = None, keepdims: bool = False) -> Any:
    """``jax.nn.logmeanexp(x, axis=None, where=None, keepdims=False)``: ``log(mean(exp(x)))``,
    stably (over the entries ``where`` selects)."""
    x = promote_float("logmeanexp", x)
    if where is None:
        count = fnp.size(x) if axis is None else math.prod(x.shape[a] for a in _axes(axis, x.ndim))
        return logsumexp(x, axis=axis, keepdims=keepdims) - math.log(count) if count else \
            fnp.full(fnp.sum(x, axis=axis, keepdims=keepdims).shape, fnp.nan, x.dtype)
    where = fnp.broadcast_to(fnp.asarray(where), x.shape)
    masked = fnp.where(where, x, -fnp.inf)
    count = fnp.sum(where, axis=axis, keepdims=keepdims)
    return logsumexp(masked, axis=axis, keepdims=keepdims) - fnp.log(count.astype(x.dtype))


def _axes(axis: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    return tuple(a % ndim for a in ((axis,) if isinstance(axis, int) else axis))


def log1mexp(x: Any) -> Any:
    """``jax.nn.log1mexp(x)``: ``log(1 - exp(-x))`` for ``x >= 0``, accurate at both ends (the
    ``log(-expm1(-x))`` / ``log1p(-exp(-x))`` switch at ``log 2``). Its derivative is JAX's,
    ``1 / expm1(x)``, at every point (outside the domain too: -1 as x -> -inf)."""
    return _log1mexp(promote_float("log1mexp", x))


@custom_jvp
def _log1mexp(x):
    small = x < math.log(2.0)
    safe_small = fnp.where(small, x, 1.0)
    safe_large = fnp.where(small, 1.0, x)
    return fnp.where(small, fnp.log(-fnp.expm1(-safe_small)), fnp.log1p(-fnp.exp(-safe_large)))


_log1mexp.defjvps(lambda g, ans, x: g / fnp.expm1(x))


def log_softmax(x: Any, axis: int | Sequence[int] | None = -1, where: Any = None) -> Any:
    """``log_softmax(x, axis=-1, where=None)``: ``x - logsumexp(x)`` along ``axis`` (an int, a tuple
    of ints, or None for all axes). JAX's formula: shifted by the unguarded max, so an +inf entry
    makes the row NaN, as in JAX; entries masked out by ``where`` are ``-inf``."""
    x = promote_float("log_softmax", x)
    x_safe = x if where is None else fnp.where(where, x, -np.inf)
    shifted = x_safe - lax.stop_gradient(_max_keepdims(x, axis, where))
    total = fnp.sum(fnp.exp(shifted), axis=axis, keepdims=True, where=where)
    result = shifted - fnp.log(total)
    return result if where is None else fnp.where(where, result, -np.inf)


def softmax(x: Any, axis: int | Sequence[int] | None = -1, where: Any = None) -> Any:
    """``softmax(x, axis=-1, where=None)``: ``exp(x) / sum(exp(x))`` along ``axis`` (an int, a tuple
    of ints, or None for all axes), computed stably; entries masked out by ``where`` are 0."""
    x = promote_float("softmax", x)
    x_safe = x if where is None else fnp.where(where, x, -np.inf)
    unnormalized = fnp.exp(x_safe - lax.stop_gradient(_max_keepdims(x, axis, where)))
    result = unnormalized / fnp.sum(unnormalized, axis=axis, keepdims=True, where=where)
    return result if where is None else fnp.where(where, result, 0.0)


def one_hot(x: Any, num_classes: int, dtype: Any = None, *, axis: int = -1) -> Any:
    """``one_hot(x, num_classes, *, dtype=float, axis=-1)``: ``x == arange(num_classes)`` along a
    new ``axis``, as ``dtype`` (the default float when None).

    The comparison is made in ``x``'s dtype, as in JAX: a label outside ``[0, num_classes)`` (negative,
    too large, or a non-integral float) gives an all-zero row. ``dtype`` may also be passed by position.
    """
    num_classes = _class_count(num_classes)
    x = fnp.asarray(x)
    position = _new_axis_position(axis, fnp.ndim(x))
    classes_shape = [1] * fnp.ndim(x)
    classes_shape.insert(position, num_classes)
    classes = lax.broadcasted_iota(x.dtype, tuple(classes_shape), position)
    out_dtype = dtypes.default_float() if dtype is None else dtype
    return (fnp.expand_dims(x, position) == classes).astype(out_dtype)


def _class_count(num_classes: Any) -> int:
    try:
        count = operator.index(num_classes)
    except TypeError:
        raise TypeError(f"one_hot: num_classes must be a Python int (a static class count), got "
                        f"{type(num_classes).__name__} {num_classes!r}") from None
    if count < 0:
        raise ValueError(f"one_hot: num_classes must be >= 0, got {count}")
    return count


def _new_axis_position(axis: Any, ndim: int) -> int:
    axis = operator.index(axis)
    if not -(ndim + 1) <= axis <= ndim:
        raise ValueError(f"one_hot: axis {axis} is out of range for a result of {ndim + 1} dimensions "
                         f"(use -{ndim + 1} <= axis <= {ndim})")
    return axis % (ndim + 1)


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


def flatten(x: Any, start_dim: int = 1, end_dim: int = -1) -> Any:
    """``flatten(x, start_dim=1, end_dim=-1)``: merge dimensions ``start_dim..end_dim`` (inclusive,
    negative counting from the end) into one, as ``torch.flatten``; by default everything but the
    batch dimension."""
    shape = tuple(fnp.shape(x))
    if not shape:
        return fnp.reshape(x, (1,))
    start, end = _dim_index(start_dim, len(shape), "start_dim"), _dim_index(end_dim, len(shape), "end_dim")
    if start > end:
        raise ValueError(f"flatten: start_dim ({start_dim}) must not come after end_dim ({end_dim}) "
                         f"for a shape of {len(shape)} dimensions")
    merged = int(np.prod(shape[start:end + 1], dtype=np.int64))
    return fnp.reshape(x, (*shape[:start], merged, *shape[end + 1:]))


def _dim_index(dim: int, ndim: int, name: str) -> int:
    dim = operator.index(dim)
    if not -ndim <= dim < ndim:
        raise ValueError(f"flatten: {name}={dim} is out of range for a shape of {ndim} dimensions")
    return dim % ndim


# --- normalisation -------------------------------------------------------------------------------

def _per_channel(value: Any, ndim: int, axis: int) -> Any:
    """A per-channel vector shaped to broadcast along ``axis`` of an ``ndim``-d input."""
    shape = [1] * ndim
    shape[axis] = -1
    return fnp.reshape(value, tuple(shape))


def _scale_shift(y: Any, weight: Any, bias: Any, axis: int) -> Any:
    if weight is not None:
        y = y * _per_channel(weight, fnp.ndim(y), axis)
    return y if bias is None else y + _per_channel(bias, fnp.ndim(y), axis)


def group_norm(x: Any, num_groups: int, weight: Any = None, bias: Any = None, eps: float = 1e-5) -> Any:
    """``group_norm(input, num_groups, weight=None, bias=None, eps=1e-5)``, as
    ``torch.nn.functional.group_norm``: the channels of an (N, C, *) input split into ``num_groups``
    groups, each normalised over its channels and spatial positions (biased variance), then scaled
    and shifted per channel.

    >>> group_norm(x, 4, weight, bias).shape == x.shape     # x: (N, 32, H, W)   # doctest: +SKIP
    """
    x = promote_float("group_norm", x)
    shape = tuple(fnp.shape(x))
    if len(shape) < 2:
        raise ValueError(f"group_norm expects an (N, C, *) input, got shape {shape}")
    if isinstance(num_groups, bool) or not isinstance(num_groups, (int, np.integer)) or num_groups < 1 \
            or shape[1] % num_groups:
        raise ValueError(f"group_norm: num_groups ({num_groups!r}) must be a positive int dividing the "
                         f"{shape[1]} channels (input shape {shape})")
    per_group = shape[1] // num_groups * int(np.prod(shape[2:], dtype=np.int64))
    grouped = fnp.reshape(x, (shape[0], num_groups, per_group))
    centred = grouped - fnp.mean(grouped, axis=-1, keepdims=True)
    variance = fnp.mean(centred * centred, axis=-1, keepdims=True)
    y = fnp.reshape(centred * lax.rsqrt(variance + eps), shape)
    return _scale_shift(y, weight, bias, 1)


def instance_norm(x: Any, *, weight: Any = None, bias: Any = None, eps: float = 1e-5) -> Any:
    """``instance_norm(input, *, weight=None, bias=None, eps=1e-5)``: each channel of each example
    of an (N, C, *spatial) input normalised over its spatial positions, as
    ``torch.nn.functional.instance_norm`` with ``use_input_stats=True`` (running statistics are not
    supported; the arguments after ``input`` are keywords so that PyTorch's positional
    ``running_mean`` cannot be mistaken for ``weight``)."""
    shape = tuple(fnp.shape(x))
    if len(shape) < 3 or int(np.prod(shape[2:], dtype=np.int64)) < 2:
        raise ValueError(f"instance_norm expects an (N, C, *spatial) input with more than one spatial "
                         f"element, got shape {shape}")
    return group_norm(x, shape[1], weight, bias, eps)


def batch_norm(x: Any, running_mean: Any, running_var: Any, weight: Any = None, bias: Any = None,
               training: bool = False, momentum: Any = 0.1, eps: float = 1e-5, *, axis_name: Any = None,
               channel_axis: int = 1) -> tuple[Any, Any, Any]:
    """``batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
    momentum=0.1, eps=1e-5, *, axis_name=None, channel_axis=1)`` -> ``(y, running_mean, running_var)``.

    ``torch.nn.functional.batch_norm`` made functional: arrays are immutable, so the updated running
    statistics are returned instead of written in place. With ``training=True`` the input is
    normalised with the batch's mean and biased variance over every axis but ``channel_axis``
    (and, with ``axis_name``, averaged over that vmap/shard axis with ``lax.pmean``: cross-replica
    statistics), and the running statistics (if given) become ``(1 - momentum) * running +
    momentum * batch`` with the unbiased batch variance; no gradient flows into them. With
    ``training=False`` the running statistics normalise and come back unchanged.

    >>> y, mean, var = batch_norm(x, mean, var, w, b, training=True)       # doctest: +SKIP
    """
    x = promote_float("batch_norm", x)
    axis = _channel_axis(x, channel_axis)
    if not training:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: training=False normalises with the running statistics; pass "
                             "running_mean and running_var (or use training=True for batch statistics)")
        mean, variance = running_mean, running_var
    else:
        mean, variance, count = _batch_moments(x, axis, axis_name)
        if running_mean is not None:
            running_mean = _running_update(running_mean, mean, momentum)
        if running_var is not None:
            running_var = _running_update(running_var, variance * (count / (count - 1)), momentum)
    y = (x - _per_channel(mean, x.ndim, axis)) * lax.rsqrt(_per_channel(variance, x.ndim, axis) + eps)
    return _scale_shift(y, weight, bias, axis), running_mean, running_var


def _channel_axis(x: Any, channel_axis: int) -> int:
    ndim = fnp.ndim(x)
    if not -ndim <= channel_axis < ndim:
        raise ValueError(f"batch_norm: channel_axis={channel_axis} is out of range for input shape "
                         f"{fnp.shape(x)}; a per-example (C, *spatial) input under vmap(..., axis_name=...) "
                         "needs channel_axis=0")
    return channel_axis % ndim


def _batch_moments(x: Any, axis: int, axis_name: Any) -> tuple[Any, Any, int]:
    """Per-channel mean and biased variance over every axis but ``axis`` (and over the named
    axis), and the number of values each was taken over."""
    reduce_axes = tuple(a for a in range(x.ndim) if a != axis)
    count = int(np.prod([x.shape[a] for a in reduce_axes], dtype=np.int64))
    if axis_name is not None:
        count *= lax.axis_size(axis_name)
    if count < 2:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got input "
                         f"shape {fnp.shape(x)} (channel axis {axis})")
    mean = fnp.mean(x, axis=reduce_axes)
    if axis_name is not None:
        mean = lax.pmean(mean, axis_name)
    centred = x - _per_channel(mean, x.ndim, axis)
    variance = fnp.mean(centred * centred, axis=reduce_axes)
    if axis_name is not None:
        variance = lax.pmean(variance, axis_name)
    return mean, variance, count


def _running_update(running: Any, batch: Any, momentum: Any) -> Any:
    running = fnp.asarray(running)
    updated = (1 - momentum) * running + momentum * lax.stop_gradient(batch)
    return updated.astype(running.dtype)
