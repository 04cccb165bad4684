"""Loss cases shared by ``scripts/record_optax_losses.py`` (which runs them with optax and stores
values and gradients in ``tests/data/optax_losses.npz``) and ``tests/test_optim_losses.py`` (which
runs them with ``fgrad.optim`` and compares). Each case is a function of the loss module ``o``
(``optax`` / ``optax.losses`` or ``fgrad.optim`` / ``fgrad.optim.losses``) and of the inputs, and an
input maker; the gradient is that of ``sum(loss)`` with respect to the first input.

This module imports neither JAX nor fgrad.
"""
from __future__ import annotations

import inspect
from typing import Callable

import numpy as np

DATA_FILE = "optax_losses.npz"
NEG_INF = np.float32(-np.inf)


def _normal(rng, *shape, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(np.float32)


def _probs(rng, *shape):
    p = rng.random(shape).astype(np.float32) + 0.1
    return (p / p.sum(-1, keepdims=True)).astype(np.float32)


def _logits_probs(rng):
    return _normal(rng, 4, 5, scale=2.0), _probs(rng, 4, 5)


def _masked_logits(rng):
    """Logits with -inf at masked classes, labels 0 there, and the mask."""
    logits, labels = _logits_probs(rng)
    mask = np.ones((4, 5), bool)
    mask[0, 1] = mask[2, 3] = mask[2, 4] = False
    logits = np.where(mask, logits, NEG_INF).astype(np.float32)
    labels = np.where(mask, labels, 0.0).astype(np.float32)
    return logits, (labels / labels.sum(-1, keepdims=True)).astype(np.float32), mask


def _int_labels(rng, n, classes):
    return rng.integers(0, classes, size=n).astype(np.int32)


def _targets(rng):
    t = _probs(rng, 3, 6)
    t[0, 2] = 0.0
    t[1, 0] = 0.0
    return t


def _embeddings(rng):
    return _normal(rng, 6, 3), np.array([0, 0, 1, 1, 2, 2], np.int32)


def _case(loss: Callable, inputs: Callable, grad: bool = True, rtol: float = 2e-5) -> dict:
    return dict(loss=loss, inputs=inputs, grad=grad, rtol=rtol)


CASES: dict[str, dict] = {
    "softmax_cross_entropy": _case(lambda o, x, y: o.softmax_cross_entropy(x, y), _logits_probs),
    "softmax_cross_entropy_axis0": _case(lambda o, x, y: o.softmax_cross_entropy(x, y, axis=0),
                                         lambda r: (_normal(r, 5, 3), _probs(r, 3, 5).T.copy())),
    "softmax_cross_entropy_where": _case(lambda o, x, y, m: o.softmax_cross_entropy(x, y, where=m),
                                         _masked_logits),
    "softmax_cross_entropy_where_rows": _case(
        lambda o, x, y, m: o.softmax_cross_entropy(x, y, where=m),
        lambda r: _logits_probs(r) + (np.array([True, False, True, True]),)),
    "softmax_cross_entropy_neg_inf": _case(lambda o, x, y, m: o.softmax_cross_entropy(x, y), _masked_logits),
    "safe_softmax_cross_entropy": _case(lambda o, x, y: o.safe_softmax_cross_entropy(x, y),
                                        lambda r: _masked_logits(r)[:2]),
    "safe_softmax_cross_entropy_plain": _case(lambda o, x, y: o.safe_softmax_cross_entropy(x, y), _logits_probs),
    "integer_labels": _case(lambda o, x, y: o.softmax_cross_entropy_with_integer_labels(x, y),
                            lambda r: (_normal(r, 4, 5, scale=3.0), _int_labels(r, 4, 5))),
    "integer_labels_axis0": _case(lambda o, x, y: o.softmax_cross_entropy_with_integer_labels(x, y, axis=0),
                                  lambda r: (_normal(r, 5, 4), _int_labels(r, 4, 5))),
    "integer_labels_axis_tuple": _case(
        lambda o, x, y: o.softmax_cross_entropy_with_integer_labels(x, y, axis=(1, 2)),
        lambda r: (_normal(r, 3, 2, 4), _int_labels(r, 3, 8))),
    "integer_labels_where": _case(
        lambda o, x, y, m: o.softmax_cross_entropy_with_integer_labels(x, y, where=m),
        lambda r: (lambda lg, _, m: (lg, np.array([0, 1, 2, 0], np.int32),
                                     np.where(np.arange(4)[:, None] == 1, False, m)))(*_masked_logits(r))),
    "integer_labels_large": _case(lambda o, x, y: o.softmax_cross_entropy_with_integer_labels(x, y),
                                  lambda r: (_normal(r, 3, 6, scale=300.0), _int_labels(r, 3, 6))),
    "poly_loss_cross_entropy": _case(lambda o, x, y: o.losses.poly_loss_cross_entropy(x, y, epsilon=1.5),
                                     _logits_probs),
    "sigmoid_binary_cross_entropy": _case(lambda o, x, y: o.sigmoid_binary_cross_entropy(x, y),
                                          lambda r: (_normal(r, 3, 4, scale=5.0),
                                                     (r.random((3, 4)) > 0.5).astype(np.float32))),
    "sigmoid_binary_cross_entropy_soft": _case(lambda o, x, y: o.sigmoid_binary_cross_entropy(x, y),
                                               lambda r: (_normal(r, 7), r.random(7).astype(np.float32))),
    "sigmoid_focal_loss": _case(lambda o, x, y: o.sigmoid_focal_loss(x, y),
                                lambda r: (_normal(r, 3, 4, scale=3.0), (r.random((3, 4)) > 0.5).astype(np.float32))),
    "sigmoid_focal_loss_alpha": _case(lambda o, x, y: o.sigmoid_focal_loss(x, y, alpha=0.25, gamma=1.5),
                                      lambda r: (_normal(r, 9, scale=3.0), (r.random(9) > 0.5).astype(np.float32))),
    "l2_loss": _case(lambda o, x, y: o.l2_loss(x, y), lambda r: (_normal(r, 3, 4), _normal(r, 3, 4))),
    "l2_loss_no_targets": _case(lambda o, x: o.l2_loss(x), lambda r: (_normal(r, 5),)),
    "squared_error": _case(lambda o, x, y: o.squared_error(x, y), lambda r: (_normal(r, 3, 4), _normal(r, 3, 4))),
    "huber_loss": _case(lambda o, x, y: o.huber_loss(x, y, delta=0.5),
                        lambda r: (_normal(r, 10, scale=2.0), _normal(r, 10))),
    "huber_loss_default": _case(lambda o, x: o.huber_loss(x), lambda r: (_normal(r, 10, scale=2.0),)),
    "log_cosh": _case(lambda o, x, y: o.log_cosh(x, y),
                      lambda r: (np.array([0.0, 1e-3, 0.5, -3.0, 50.0, -120.0], np.float32), np.zeros(6, np.float32))),
    "cosine_similarity": _case(lambda o, x, y: o.cosine_similarity(x, y), lambda r: (_normal(r, 3, 4), _normal(r, 3, 4))),
    "cosine_similarity_options": _case(lambda o, x, y, m: o.cosine_similarity(x, y, epsilon=0.5, axis=0, where=m),
                                       lambda r: (_normal(r, 4, 3, scale=0.3), _normal(r, 4, 3),
                                                  r.random((4, 3)) > 0.3)),
    "cosine_distance": _case(lambda o, x, y: o.cosine_distance(x, y, epsilon=1e-3),
                             lambda r: (_normal(r, 3, 4), _normal(r, 3, 4))),
    "kl_divergence": _case(lambda o, x, y: o.kl_divergence(x, y),
                           lambda r: (np.log(_probs(r, 3, 6)), _targets(r))),
    "kl_divergence_where": _case(lambda o, x, y, m: o.kl_divergence(x, y, axis=0, where=m),
                                 lambda r: (np.log(_probs(r, 3, 6)), _targets(r), r.random((3, 6)) > 0.3)),
    "kl_divergence_with_log_targets": _case(lambda o, x, y: o.losses.kl_divergence_with_log_targets(x, y),
                                            lambda r: (np.log(_probs(r, 3, 6)), np.log(_probs(r, 3, 6)))),
    "generalized_kl_divergence": _case(lambda o, x, y: o.generalized_kl_divergence(x, y),
                                       lambda r: (_normal(r, 3, 6), _targets(r) * 3)),
    "convex_kl_divergence": _case(lambda o, x, y: o.convex_kl_divergence(x, y),
                                  lambda r: (_normal(r, 3, 6), _targets(r) * 3)),
    "hinge_loss": _case(lambda o, x, y: o.hinge_loss(x, y),
                        lambda r: (_normal(r, 8), np.sign(_normal(r, 8)).astype(np.float32))),
    "perceptron_loss": _case(lambda o, x, y: o.losses.perceptron_loss(x, y),
                             lambda r: (_normal(r, 8), np.sign(_normal(r, 8)).astype(np.float32))),
    "smooth_labels": _case(lambda o, x: o.smooth_labels(x, 0.1), lambda r: (np.eye(5, dtype=np.float32)[[0, 3, 4]],)),
    "smooth_labels_alpha_0": _case(lambda o, x: o.smooth_labels(x, 0.0), lambda r: (_probs(r, 2, 4),)),
    "smooth_labels_alpha_1": _case(lambda o, x: o.smooth_labels(x, 1.0), lambda r: (_probs(r, 2, 4),)),
    "smooth_labels_axis0": _case(lambda o, x: o.smooth_labels(x, 0.2, axis=0), lambda r: (_probs(r, 3, 4),)),
    "smooth_labels_where": _case(lambda o, x, m: o.smooth_labels(x, 0.3, where=m),
                                 lambda r: (np.eye(4, dtype=np.float32)[[1, 2]],
                                            np.array([[True, True, False, True], [True, True, True, True]]))),
    "smoothed_cross_entropy": _case(lambda o, x, y: o.softmax_cross_entropy(x, o.smooth_labels(y, 0.1)),
                                    lambda r: (_normal(r, 4, 5), np.eye(5, dtype=np.float32)[[0, 1, 4, 2]])),
    "ntxent": _case(lambda o, x, y: o.ntxent(x, y), _embeddings),
    "ntxent_temperature": _case(lambda o, x, y: o.ntxent(x, y, temperature=0.5),
                                lambda r: (_normal(r, 5, 4), np.array([0, 1, 0, 1, 1], np.int32))),
}


def make_inputs(case: dict, seed: int) -> tuple:
    """The case's inputs (NumPy), deterministic in ``seed``."""
    return tuple(case["inputs"](np.random.default_rng(1000 + seed)))


#: The optax names this module's companions test for (the losses and the transformations added
#: with them); the recorder stores, for each, whether optax has it at the top level or in
#: ``optax.losses`` and its parameters (names, kinds, defaults).
NAMES = [
    "softmax_cross_entropy", "softmax_cross_entropy_with_integer_labels", "safe_softmax_cross_entropy",
    "sigmoid_binary_cross_entropy", "sigmoid_focal_loss", "l2_loss", "squared_error", "huber_loss", "log_cosh",
    "cosine_similarity", "cosine_distance", "kl_divergence", "convex_kl_divergence", "generalized_kl_divergence",
    "kl_divergence_with_log_targets", "hinge_loss", "perceptron_loss", "smooth_labels", "poly_loss_cross_entropy",
    "ntxent",
    "amsgrad", "scale_by_amsgrad", "yogi", "scale_by_yogi", "adadelta", "scale_by_adadelta", "adamaxw", "novograd",
    "scale_by_novograd", "sgdr_schedule", "zero_nans", "scale_gradient", "apply_every", "lookahead",
    "LookaheadParams", "LookaheadState", "skip_not_finite", "add_noise", "keep_params_nonnegative", "centralize",
    "sign_sgd", "signum", "rprop", "scale_by_rprop", "ScaleByAmsgradState", "ScaleByAdaDeltaState",
    "ScaleByNovogradState", "ScaleByRpropState", "ZeroNansState", "ApplyEvery", "AddNoiseState",
    "NonNegativeParamsState", "scale_by_polyak", "polyak_sgd",
]


def describe_parameters(fn) -> str:
    """``fn``'s parameters as ``name:kind=default`` joined by commas (a default as its repr)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return ""
    parts = []
    for p in sig.parameters.values():
        default = "" if p.default is inspect.Parameter.empty else "=" + repr(p.default)
        parts.append(f"{p.name}:{p.kind.name}{default}")
    return ",".join(parts)
