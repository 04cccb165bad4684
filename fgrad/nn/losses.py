"""Loss functions."""
from __future__ import annotations

from typing import Any

from fgrad import numpy as fnp
from fgrad.nn.functional import log_softmax, one_hot


def _reduce(values: Any, reduction: str) -> Any:
    if reduction == "mean":
        return fnp.mean(values)
    if reduction == "sum":
        return fnp.sum(values)
    if reduction == "none":
        return values
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def sparse_categorical_crossentropy(logits: Any, labels: Any, reduction: str = "mean") -> Any:
    """Cross-entropy of ``logits`` (..., classes) against integer ``labels`` (...).

    Stable for large logits (uses log_softmax); labels may be any integer dtype (uint8 is fine).

    >>> sparse_categorical_crossentropy(model(x), y)    # y: uint8[batch]   # doctest: +SKIP
    """
    logits_shape, labels_shape = fnp.shape(logits), fnp.shape(labels)
    if logits_shape[:-1] != labels_shape:
        raise ValueError(f"sparse_categorical_crossentropy: logits of shape {logits_shape} need labels of "
                         f"shape {logits_shape[:-1]}, got {labels_shape}")
    if fnp.asarray(labels).dtype.kind not in "iu":
        raise TypeError(f"sparse_categorical_crossentropy: labels must be integers, got {fnp.asarray(labels).dtype}")
    picked = fnp.sum(log_softmax(logits) * one_hot(labels, logits_shape[-1], logits.dtype), axis=-1)
    return _reduce(-picked, reduction)


def cross_entropy(logits: Any, targets: Any, reduction: str = "mean") -> Any:
    """Cross-entropy of ``logits`` against target probabilities of the same shape."""
    if fnp.shape(logits) != fnp.shape(targets):
        raise ValueError(f"cross_entropy: logits {fnp.shape(logits)} and targets {fnp.shape(targets)} differ")
    return _reduce(-fnp.sum(targets * log_softmax(logits), axis=-1), reduction)


def mse(predictions: Any, targets: Any, reduction: str = "mean") -> Any:
    """Mean squared error ``mean((predictions - targets) ** 2)`` over same-shaped arrays."""
    if fnp.shape(predictions) != fnp.shape(targets):
        raise ValueError(f"mse: shapes differ: predictions {fnp.shape(predictions)}, targets {fnp.shape(targets)}; "
                         "reshape one of them (mse does not broadcast, to catch (N,) vs (N, 1) mistakes)")
    return _reduce((predictions - targets) ** 2, reduction)
