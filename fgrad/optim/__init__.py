"""Optimizers as pairs of pure functions, written as optax users write them.

    opt = fgrad.optim.adamw(fgrad.optim.warmup_cosine_decay_schedule(0.0, 3e-4, 100, 5000),
                            weight_decay=0.1, mask=lambda p: fgrad.tree.map(lambda x: x.ndim >= 2, p))
    opt = fgrad.optim.chain(fgrad.optim.clip_by_global_norm(1.0), opt)
    state = opt.init(params)
    updates, state = opt.update(grads, state, params)
    params = fgrad.optim.apply_updates(params, updates)

Each optimizer is a ``chain`` of small ``GradientTransformation``s with optax's names, signatures,
defaults, arithmetic and state layout; every state is a pytree of arrays, so a whole step can be
jitted and donated. A learning rate (or a weight decay) may be a number or a schedule: a function
of the step count. ``inject_hyperparams`` moves hyperparameters into the state, so they can change
between steps under ``jit``.

Losses: ``fgrad.optim.losses`` (optax.losses), the common ones also at the top level.

``chain`` and the wrappers (``masked``, ``multi_transform``, ``inject_hyperparams``,
``apply_if_finite``, ``MultiSteps``, ``lookahead``) pass keyword arguments of ``update`` (optax's
``extra_args``, e.g. ``polyak_sgd``'s ``value=``) to the transformations whose ``update`` takes them.

Not here (yet): ``lbfgs`` and the
line searches, ``contrib``, and ``optax.tree`` (use ``fgrad.tree`` and ``global_norm``).
"""
from fgrad.optim._base import (  # noqa: F401 (the public names)
    GradientTransformation, GradientTransformationExtraArgs, EmptyState, Schedule, ScalarOrSchedule,
    identity, set_to_zero, stateless, chain, named_chain, apply_updates, global_norm, safe_increment,
    init_empty_state)
from fgrad.optim._masking import (  # noqa: F401
    masked, MaskedState, MaskedNode, partition, multi_transform, PartitionState, MultiTransformState)
from fgrad.optim._transforms import (  # noqa: F401
    ScaleByScheduleState, TraceState, EmaState, ScaleByAdamState, ScaleByLionState, ScaleByRssState,
    ScaleByRmsState, ScaleByRmsWithCountState, ScaleByRStdDevState, ScaleByRStdDevWithCountState,
    ScaleByBeliefState, WeightDecaySchedule,
    scale, scale_by_schedule, scale_by_learning_rate, scale_by_sign, trace, ema, scale_by_adam,
    scale_by_adamax, scale_by_belief, scale_by_radam, scale_by_lion, scale_by_rss, scale_by_rms,
    scale_by_stddev, scale_by_trust_ratio, scale_by_param_block_rms, add_decayed_weights, clip,
    clip_by_global_norm, clip_by_block_rms)
from fgrad.optim._factorized import FactoredState, scale_by_factored_rms  # noqa: F401
from fgrad.optim._schedules import (  # noqa: F401
    constant_schedule, polynomial_schedule, linear_schedule, piecewise_constant_schedule, exponential_decay,
    cosine_decay_schedule, cosine_decay, join_schedules, warmup_constant_schedule, warmup_cosine_decay_schedule,
    warmup_exponential_decay_schedule, piecewise_interpolate_schedule, cosine_onecycle_schedule,
    linear_onecycle_schedule)
from fgrad.optim._wrappers import (  # noqa: F401
    InjectHyperparamsState, inject_hyperparams, ApplyIfFiniteState, apply_if_finite, MultiStepsState, MultiSteps)
from fgrad.optim._aliases import (  # noqa: F401
    sgd, adam, adamw, nadam, nadamw, adamax, adabelief, radam, lion, lamb, adagrad, rmsprop, adafactor)
from fgrad.optim import _schedules as schedules  # noqa: F401 (optax.schedules.*)
from fgrad.optim._schedules import sgdr_schedule  # noqa: F401
from fgrad.optim._transforms_more import (  # noqa: F401
    ScaleByAmsgradState, ScaleByAdaDeltaState, ScaleByNovogradState, ScaleByRpropState, ZeroNansState, ApplyEvery,
    AddNoiseState, NonNegativeParamsState, LookaheadState, LookaheadParams,
    scale_by_amsgrad, scale_by_yogi, scale_by_adadelta, scale_by_novograd, scale_by_rprop, apply_every, add_noise,
    zero_nans, keep_params_nonnegative, centralize, lookahead, scale_gradient, skip_not_finite, scale_by_polyak)
from fgrad.optim._aliases import (  # noqa: F401
    amsgrad, yogi, adadelta, adamaxw, novograd, sign_sgd, signum, rprop, polyak_sgd)
from fgrad.optim import losses  # noqa: F401 (optax.losses.*)
from fgrad.optim.losses import (  # noqa: F401 (optax's top-level loss names)
    softmax_cross_entropy, softmax_cross_entropy_with_integer_labels, safe_softmax_cross_entropy,
    sigmoid_binary_cross_entropy, sigmoid_focal_loss, l2_loss, squared_error, huber_loss, log_cosh,
    cosine_similarity, cosine_distance, kl_divergence, convex_kl_divergence, generalized_kl_divergence, hinge_loss,
    smooth_labels, ntxent)

__all__ = [
    "GradientTransformation", "GradientTransformationExtraArgs", "EmptyState", "Schedule", "ScalarOrSchedule",
    "identity", "set_to_zero", "stateless", "chain", "named_chain", "apply_updates", "global_norm", "safe_increment",
    "init_empty_state", "masked", "MaskedState", "MaskedNode", "partition", "multi_transform", "PartitionState",
    "MultiTransformState",
    "ScaleByScheduleState", "TraceState", "EmaState", "ScaleByAdamState", "ScaleByLionState", "ScaleByRssState",
    "ScaleByRmsState", "ScaleByRmsWithCountState", "ScaleByRStdDevState", "ScaleByRStdDevWithCountState",
    "ScaleByBeliefState", "WeightDecaySchedule", "FactoredState",
    "scale", "scale_by_schedule", "scale_by_learning_rate", "scale_by_sign", "trace", "ema", "scale_by_adam",
    "scale_by_adamax", "scale_by_belief", "scale_by_radam", "scale_by_lion", "scale_by_rss", "scale_by_rms",
    "scale_by_stddev", "scale_by_trust_ratio", "scale_by_param_block_rms", "scale_by_factored_rms",
    "add_decayed_weights", "clip", "clip_by_global_norm", "clip_by_block_rms",
    "constant_schedule", "polynomial_schedule", "linear_schedule", "piecewise_constant_schedule",
    "exponential_decay", "cosine_decay_schedule", "cosine_decay", "join_schedules", "warmup_constant_schedule",
    "warmup_cosine_decay_schedule", "warmup_exponential_decay_schedule", "piecewise_interpolate_schedule",
    "cosine_onecycle_schedule", "linear_onecycle_schedule",
    "InjectHyperparamsState", "inject_hyperparams", "ApplyIfFiniteState", "apply_if_finite", "MultiStepsState",
    "MultiSteps",
    "sgd", "adam", "adamw", "nadam", "nadamw", "adamax", "adabelief", "radam", "lion", "lamb", "adagrad",
    "rmsprop", "adafactor", "schedules",
    "sgdr_schedule", "ScaleByAmsgradState", "ScaleByAdaDeltaState", "ScaleByNovogradState", "ScaleByRpropState",
    "ZeroNansState", "ApplyEvery", "AddNoiseState", "NonNegativeParamsState", "LookaheadState",
    "LookaheadParams", "scale_by_amsgrad", "scale_by_yogi", "scale_by_adadelta", "scale_by_novograd",
    "scale_by_rprop", "apply_every", "add_noise", "zero_nans", "keep_params_nonnegative", "centralize", "lookahead",
    "scale_gradient", "skip_not_finite", "amsgrad", "yogi", "adadelta", "adamaxw", "novograd", "sign_sgd", "signum",
    "rprop", "scale_by_polyak", "polyak_sgd", "losses",
    "softmax_cross_entropy", "softmax_cross_entropy_with_integer_labels", "safe_softmax_cross_entropy",
    "sigmoid_binary_cross_entropy", "sigmoid_focal_loss", "l2_loss", "squared_error", "huber_loss", "log_cosh",
    "cosine_similarity", "cosine_distance", "kl_divergence", "convex_kl_divergence", "generalized_kl_divergence",
    "hinge_loss", "smooth_labels", "ntxent",
]
