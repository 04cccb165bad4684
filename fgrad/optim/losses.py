"""Loss functions with optax's names, signatures and arithmetic (``optax.losses``; the common ones
are also at the top of ``fgrad.optim``, as optax has them). Each returns the per-example loss (no
reduction): ``loss = fgrad.optim.softmax_cross_entropy_with_integer_labels(logits, labels).mean()``.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from fgrad import lax
from fgrad import numpy as fnp
from fgrad.nn.functional import log_sigmoid, log_softmax, logsumexp, softmax
from fgrad.transforms.custom import custom_jvp

def _floating(name: str, what: str, x: Any) -> Any:
    """``x`` as an array, which must have a floating dtype (optax's ``check_subdtype``)."""
    x = fnp.asarray(x)
    if not fnp.issubdtype(x.dtype, fnp.floating):
        raise TypeError(f"{name}: {what} must have a floating dtype, got {x.dtype}; cast it, e.g. "
                        f"{what}.astype(jnp.float32)")
    return x


def _same_shape(name: str, a: Any, b: Any) -> None:
    if fnp.shape(a) != fnp.shape(b):
        raise ValueError(f"{name}: predictions {fnp.shape(a)} and targets {fnp.shape(b)} must have the same shape")


def _expand_where(where: Any, logits: Any, axis: Any) -> Any:
    """optax's convention: a ``where`` with fewer dimensions than the logits gets ``axis`` back."""
    if where is None:
        return None
    where = fnp.asarray(where)
    return fnp.expand_dims(where, axis) if where.ndim != logits.ndim else where


# --- classification ----------------------------------------------------------------------------------

def softmax_cross_entropy(logits: Any, labels: Any, axis: int | Sequence[int] | None = -1, where: Any = None) -> Any:
    """``optax.softmax_cross_entropy(logits, labels, axis=-1, where=None)``: ``-sum(labels *
    log_softmax(logits), axis)``, over the classes ``where`` selects. A ``-inf`` logit with a 0 label
    gives NaN, as in optax (``safe_softmax_cross_entropy`` treats ``0 log 0`` as 0)."""
    logits = _floating("softmax_cross_entropy", "logits", logits)
    where = _expand_where(where, logits, axis)
    log_probs = log_softmax(logits, axis, where)
    return -fnp.sum(labels * log_probs, axis=axis, where=where)


def _canonical_axis(axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(f"softmax_cross_entropy_with_integer_labels: axis {axis} is out of range for logits of "
                         f"rank {ndim}")
    return axis % ndim


def _classes_last(logits: Any, where: Any, axis: tuple) -> tuple[Any, Any, int]:
    """Logits (and ``where``) with the class axes moved to the end and merged into one."""
    class_axes = tuple(_canonical_axis(a, logits.ndim) for a in axis)
    batch_axes = tuple(a for a in range(logits.ndim) if a not in class_axes)
    order = batch_axes + class_axes

    def merge(x):
        x = fnp.transpose(x, order)
        return fnp.reshape(x, x.shape[:len(batch_axes)] + (-1,))
    return merge(logits), (None if where is None else merge(where)), len(batch_axes)


def softmax_cross_entropy_with_integer_labels(logits: Any, labels: Any, axis: int | tuple = -1,
                                              where: Any = None) -> Any:
    """``optax.softmax_cross_entropy_with_integer_labels(logits, labels, axis=-1, where=None)``:
    ``logsumexp(logits) - logits[label]`` along the class ``axis`` (an int, or a tuple of axes taken
    together as one flattened class axis); rows that ``where`` masks entirely give 0."""
    name = "softmax_cross_entropy_with_integer_labels"
    logits = _floating(name, "logits", logits)
    labels = fnp.asarray(labels)
    if not fnp.issubdtype(labels.dtype, fnp.integer):
        raise TypeError(f"{name}: labels must be integers (class indices), got {labels.dtype}; for "
                        "probabilities use softmax_cross_entropy")
    where = _expand_where(where, logits, axis)
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
        axis = _canonical_axis(int(axis), logits.ndim)
    elif isinstance(axis, tuple):
        logits, where, axis = _classes_last(logits, where, axis)
    else:
        raise ValueError(f"{name}: axis must be an int or a tuple of ints, got {type(axis).__name__}")
    picked = fnp.take_along_axis(logits, fnp.expand_dims(labels, axis), axis=axis)
    label_logits = fnp.squeeze(picked, axis=axis)
    out = logsumexp(logits, axis=axis, where=where) - label_logits
    if where is not None:
        out = fnp.where(fnp.any(where, axis=axis), out, 0.0)
    return out


@custom_jvp
def _weighted_log_softmax(x: Any, weights: Any) -> Any:
    """``weights * log_softmax(x)``, 0 where the weight is 0 (even where ``x`` is ``-inf``)."""
    log_probs = log_softmax(x, axis=-1)
    nonzero = weights != 0.0
    return fnp.where(nonzero, weights * fnp.where(nonzero, log_probs, 0.0), fnp.zeros_like(log_probs))


@_weighted_log_softmax.defjvp
def _weighted_log_softmax_jvp(primals, tangents):
    x, weights = primals
    x_dot, weights_dot = tangents
    log_probs = log_softmax(x, axis=-1)
    out = fnp.where(weights != 0.0, weights * log_probs, fnp.zeros_like(log_probs))
    out_dot = (weights * x_dot - weights * fnp.sum(x_dot * softmax(x, axis=-1), axis=-1, keepdims=True)
               + weights_dot * log_probs)
    return out, out_dot


def safe_softmax_cross_entropy(logits: Any, labels: Any) -> Any:
    """``optax.safe_softmax_cross_entropy(logits, labels)``: ``softmax_cross_entropy`` over the last
    axis with ``0 * log 0 = 0``, so ``-inf`` logits of classes with label 0 (masked classes) give a
    finite loss and finite gradients."""
    logits = _floating("safe_softmax_cross_entropy", "logits", logits)
    labels = fnp.asarray(labels, dtype=logits.dtype)
    labels = fnp.broadcast_to(labels, fnp.broadcast_shapes(labels.shape, logits.shape))
    return -fnp.sum(_weighted_log_softmax(logits, labels), axis=-1)


def poly_loss_cross_entropy(logits: Any, labels: Any, *, epsilon: Any = 2.0, axis: int | Sequence[int] | None = -1,
                            where: Any = None) -> Any:
    """``optax.losses.poly_loss_cross_entropy(logits, labels, *, epsilon=2.0, axis=-1, where=None)``:
    PolyLoss (Leng et al., 2022), ``cross_entropy + epsilon * sum(labels * (1 - softmax(logits)))``."""
    logits = _floating("poly_loss_cross_entropy", "logits", logits)
    labels = _floating("poly_loss_cross_entropy", "labels", labels)
    probs = softmax(logits, axis=axis, where=where)
    one_minus_pt = fnp.sum(labels * (1 - probs), axis=axis, where=where)
    return softmax_cross_entropy(logits, labels, axis=axis, where=where) + epsilon * one_minus_pt


def sigmoid_binary_cross_entropy(logits: Any, labels: Any) -> Any:
    """``optax.sigmoid_binary_cross_entropy(logits, labels)``: elementwise
    ``-labels * log_sigmoid(logits) - (1 - labels) * log_sigmoid(-logits)``."""
    logits = _floating("sigmoid_binary_cross_entropy", "logits", logits)
    labels = fnp.asarray(labels).astype(logits.dtype)
    return -labels * log_sigmoid(logits) - (1.0 - labels) * log_sigmoid(-logits)


def sigmoid_focal_loss(logits: Any, labels: Any, *, alpha: Any = None, gamma: Any = 2.0) -> Any:
    """``optax.sigmoid_focal_loss(logits, labels, *, alpha=None, gamma=2.0)``: the focal loss (Lin
    et al., 2017), the binary cross-entropy times ``(1 - p_t) ** gamma`` (computed in log space),
    weighted by ``alpha`` for positives and ``1 - alpha`` for negatives when ``alpha`` is given."""
    logits = _floating("sigmoid_focal_loss", "logits", logits)
    labels = fnp.asarray(labels).astype(logits.dtype)
    ce_loss = sigmoid_binary_cross_entropy(logits, labels)
    log_p, log_q = log_sigmoid(logits), log_sigmoid(-logits)
    log_one_minus_p_t = logsumexp(fnp.stack([log_p, log_q], axis=-1), axis=-1,
                                  b=fnp.stack([1 - labels, labels], axis=-1))
    loss = ce_loss * fnp.exp(gamma * log_one_minus_p_t)
    if alpha is None:
        return loss
    return (alpha * labels + (1.0 - alpha) * (1.0 - labels)) * loss


def hinge_loss(predictor_outputs: Any, targets: Any) -> Any:
    """``optax.hinge_loss(predictor_outputs, targets)``: ``max(0, 1 - outputs * targets)`` with
    targets in {-1, 1}."""
    return fnp.maximum(0, 1 - fnp.asarray(predictor_outputs) * targets)


def perceptron_loss(predictor_outputs: Any, targets: Any) -> Any:
    """``optax.losses.perceptron_loss(predictor_outputs, targets)``: ``max(0, -outputs * targets)``."""
    _same_shape("perceptron_loss", predictor_outputs, targets)
    return fnp.maximum(0, -fnp.asarray(predictor_outputs) * targets)


def smooth_labels(labels: Any, alpha: Any, *, axis: int | Sequence[int] | None = -1, where: Any = None) -> Any:
    """``optax.smooth_labels(labels, alpha, *, axis=-1, where=None)``: label smoothing (Szegedy et
    al., 2016), ``(1 - alpha) * labels + alpha / num_categories``; with ``where``, the categories are
    the selected ones."""
    labels = _floating("smooth_labels", "labels", labels)
    if where is None:
        shape = labels.shape
        axes = range(len(shape)) if axis is None else ((axis,) if isinstance(axis, int) else axis)
        num_categories = math.prod(shape[a] for a in axes)
    else:
        num_categories = fnp.sum(where, axis=axis, keepdims=True)
    return (1.0 - alpha) * labels + alpha / num_categories


# --- regression --------------------------------------------------------------------------------------

def _errors(name: str, predictions: Any, targets: Any) -> Any:
    predictions = _floating(name, "predictions", predictions)
    return predictions if targets is None else predictions - targets


def squared_error(predictions: Any, targets: Any = None) -> Any:
    """``optax.squared_error(predictions, targets=None)``: ``(predictions - targets) ** 2``
    elementwise (targets default to 0, and must have the predictions' shape)."""
    if targets is not None:
        _same_shape("squared_error", predictions, targets)
    return _errors("squared_error", predictions, targets) ** 2


def l2_loss(predictions: Any, targets: Any = None) -> Any:
    """``optax.l2_loss(predictions, targets=None)``: ``0.5 * squared_error(predictions, targets)``."""
    return 0.5 * squared_error(predictions, targets)


def huber_loss(predictions: Any, targets: Any = None, *, delta: Any = 1.0) -> Any:
    """``optax.huber_loss(predictions, targets=None, *, delta=1.0)``: quadratic ``0.5 e**2`` for
    ``|e| <= delta``, linear ``delta * (|e| - delta / 2)`` beyond, elementwise."""
    abs_errors = fnp.abs(_errors("huber_loss", predictions, targets))
    quadratic = fnp.minimum(abs_errors, delta)
    return 0.5 * quadratic ** 2 + delta * (abs_errors - quadratic)


def log_cosh(predictions: Any, targets: Any = None) -> Any:
    """``optax.log_cosh(predictions, targets=None)``: ``log(cosh(e))`` elementwise, computed as
    ``logaddexp(e, -e) - log 2`` (no overflow for large errors)."""
    errors = _errors("log_cosh", predictions, targets)
    return fnp.logaddexp(errors, -errors) - fnp.asarray(math.log(2.0), dtype=errors.dtype)


def cosine_similarity(predictions: Any, targets: Any, *, epsilon: Any = 0.0, axis: int | Sequence[int] | None = -1,
                      where: Any = None) -> Any:
    """``optax.cosine_similarity(predictions, targets, *, epsilon=0.0, axis=-1, where=None)``: the
    cosine of the angle between the vectors along ``axis``, each norm at least ``sqrt(epsilon)``."""
    a = _floating("cosine_similarity", "predictions", predictions)
    b = _floating("cosine_similarity", "targets", targets)
    a_norm = fnp.sqrt(fnp.maximum(fnp.sum(a * a, axis=axis, where=where, keepdims=True), epsilon))
    b_norm = fnp.sqrt(fnp.maximum(fnp.sum(b * b, axis=axis, where=where, keepdims=True), epsilon))
    return fnp.sum((a / a_norm) * (b / b_norm), axis=axis, where=where)


def cosine_distance(predictions: Any, targets: Any, *, epsilon: Any = 0.0, axis: int | Sequence[int] | None = -1,
                    where: Any = None) -> Any:
    """``optax.cosine_distance(predictions, targets, *, epsilon=0.0, axis=-1, where=None)``:
    ``1 - cosine_similarity(...)``."""
    return 1.0 - cosine_similarity(predictions, targets, epsilon=epsilon, axis=axis, where=where)


# --- divergences -------------------------------------------------------------------------------------

def kl_divergence(log_predictions: Any, targets: Any, axis: int | Sequence[int] | None = -1, where: Any = None) -> Any:
    """``optax.kl_divergence(log_predictions, targets, axis=-1, where=None)``: ``sum(targets *
    (log(targets) - log_predictions), axis)``, with ``0 log 0 = 0``. The gradient with respect to a
    target of 0 is finite here (optax's is NaN: its log(0) branch leaks into the derivative)."""
    log_predictions = _floating("kl_divergence", "log_predictions", log_predictions)
    targets = _floating("kl_divergence", "targets", targets)
    safe_log = fnp.where(targets == 0, 0, fnp.log(fnp.where(targets == 0, 1, targets)))
    loss = targets * (safe_log - log_predictions)
    return fnp.sum(loss, axis=axis, where=where)


def kl_divergence_with_log_targets(log_predictions: Any, log_targets: Any, axis: int | Sequence[int] | None = -1,
                                   where: Any = None) -> Any:
    """``optax.losses.kl_divergence_with_log_targets(log_predictions, log_targets, axis=-1,
    where=None)``: ``sum(exp(log_targets) * (log_targets - log_predictions), axis)``."""
    log_predictions = _floating("kl_divergence_with_log_targets", "log_predictions", log_predictions)
    log_targets = _floating("kl_divergence_with_log_targets", "log_targets", log_targets)
    return fnp.sum(fnp.exp(log_targets) * (log_targets - log_predictions), axis=axis, where=where)


def generalized_kl_divergence(log_predictions: Any, targets: Any, axis: int | Sequence[int] | None = -1,
                              where: Any = None) -> Any:
    """``optax.generalized_kl_divergence(log_predictions, targets, axis=-1, where=None)``: the KL
    divergence of unnormalized measures, ``kl_divergence + sum(exp(log_predictions) - targets)``."""
    kl = kl_divergence(log_predictions, targets, axis=axis, where=where)
    return kl + fnp.sum(fnp.exp(log_predictions) - targets, axis=axis, where=where)


def convex_kl_divergence(log_predictions: Any, targets: Any, axis: int | Sequence[int] | None = -1,
                         where: Any = None) -> Any:
    """``optax.convex_kl_divergence(log_predictions, targets, axis=-1, where=None)`` (deprecated in
    optax in favour of ``generalized_kl_divergence``, which it equals)."""
    return generalized_kl_divergence(log_predictions, targets, axis=axis, where=where)


# --- self-supervised ---------------------------------------------------------------------------------

def ntxent(embeddings: Any, labels: Any, temperature: Any = 0.07) -> Any:
    """``optax.ntxent(embeddings, labels, temperature=0.07)``: the normalized temperature-scaled
    cross-entropy (SimCLR, Chen et al., 2020) over a batch of ``embeddings`` (batch, dim); pairs
    with equal ``labels`` are positives. Returns a scalar."""
    embeddings = _floating("ntxent", "embeddings", embeddings)
    labels = fnp.asarray(labels)
    if labels.shape[0] != embeddings.shape[0]:
        raise ValueError(f"ntxent: labels and embeddings must have the same leading dimension, found "
                         f"{labels.shape[0]} for labels and {embeddings.shape[0]} for embeddings")
    eps = float(np.finfo(np.dtype(embeddings.dtype)).eps)
    xcs = cosine_similarity(embeddings[None, :, :], embeddings[:, None, :], epsilon=eps) / temperature
    same = labels[:, None] == labels[None, :]
    diffs = fnp.logical_not(same)
    matches = fnp.logical_and(same, fnp.logical_not(fnp.eye(same.shape[0], dtype=bool)))
    xcs_diffs = fnp.where(diffs, xcs, -fnp.inf)
    xcs_matches = fnp.where(matches, xcs, -fnp.inf)
    xcs_max = lax.stop_gradient(fnp.max(fnp.concatenate((xcs_diffs, xcs_matches), axis=-1), axis=1, keepdims=True))
    shift_diffs, shift_matches = xcs_diffs - xcs_max, xcs_matches - xcs_max
    denom = fnp.sum(fnp.exp(shift_diffs), axis=1, keepdims=True) + fnp.exp(shift_matches)
    log_softm = shift_matches - fnp.log(denom)
    return -fnp.sum(fnp.where(matches, log_softm, 0.0)) / fnp.sum(matches)
