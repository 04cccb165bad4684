"""The building blocks optimizers are chained from (optax's ``scale_by_*``, ``trace``, ``ema``,
``add_decayed_weights`` and the clipping transformations), each with optax's signature, state
and arithmetic."""
from __future__ import annotations

import math
from typing import Any, NamedTuple

from fgrad import numpy as fnp
from fgrad import tree
from fgrad.optim._base import (
    NO_PARAMS_MSG, EmptyState, GradientTransformation, ScalarOrSchedule, Schedule, bias_correction,
    cast_tree, full_like_tree, global_norm, identity, init_empty_state, is_python_number, safe_increment,
    step_count,
    update_infinity_moment, update_moment, update_moment_per_elem_norm, zeros_like_tree)
from fgrad.optim._masking import masked


class ScaleByScheduleState(NamedTuple):
    """A schedule's state: the step count (int32) it is evaluated at."""
    count: Any


class TraceState(NamedTuple):
    """Momentum's state: the running (decayed) sum of updates."""
    trace: Any


class EmaState(NamedTuple):
    """An exponential moving average's state: the step count and the average."""
    count: Any
    ema: Any


class ScaleByAdamState(NamedTuple):
    """Adam's state: the step count (int32) and the first and second moment estimates."""
    count: Any
    mu: Any
    nu: Any


class ScaleByLionState(NamedTuple):
    """Lion's state: the step count and the momentum."""
    count: Any
    mu: Any


class ScaleByRssState(NamedTuple):
    """Adagrad's state: the sum of squared gradients so far."""
    sum_of_squares: Any


class ScaleByRmsState(NamedTuple):
    """RMSProp's state: the moving average of squared gradients."""
    nu: Any


class ScaleByRmsWithCountState(NamedTuple):
    """RMSProp's state with bias correction: the step count and the average of squares."""
    count: Any
    nu: Any


class ScaleByRStdDevState(NamedTuple):
    """Centered RMSProp's state: the averages of gradients and of squared gradients."""
    mu: Any
    nu: Any


class ScaleByRStdDevWithCountState(NamedTuple):
    """Centered RMSProp's state with bias correction: the step count and both averages."""
    count: Any
    mu: Any
    nu: Any


class ScaleByBeliefState(NamedTuple):
    """AdaBelief's state: the step count, the first moment and the second central moment."""
    count: Any
    mu: Any
    nu: Any


class WeightDecaySchedule(NamedTuple):
    """``add_decayed_weights``' state when the decay is a schedule: the step count."""
    count: Any


# --- scaling -----------------------------------------------------------------------------------------

def scale(step_size: Any) -> GradientTransformation:
    """``optax.scale(step_size)``: multiply updates by a constant."""
    return GradientTransformation(init_empty_state,
                                  lambda updates, state, params=None: (tree.tree_map(lambda g: step_size * g, updates),
                                                                       state))


def scale_by_schedule(step_size_fn: Schedule) -> GradientTransformation:
    """``optax.scale_by_schedule(step_size_fn)``: multiply updates by ``step_size_fn(count)``."""
    def init(params):
        return ScaleByScheduleState(step_count())

    def update(updates, state, params=None):
        step_size = step_size_fn(state.count)
        updates = tree.tree_map(lambda g: fnp.asarray(step_size, dtype=g.dtype) * g, updates)
        return updates, ScaleByScheduleState(safe_increment(state.count))

    return GradientTransformation(init, update)


def scale_by_learning_rate(learning_rate: ScalarOrSchedule = None, *, flip_sign: bool = True) -> GradientTransformation:
    """``optax.scale_by_learning_rate(learning_rate, *, flip_sign=True)``: multiply updates by
    ``-learning_rate`` (``+`` with ``flip_sign=False``); a schedule is evaluated at the step count;
    ``None`` leaves updates unchanged."""
    if learning_rate is None:
        return identity()
    sign = -1 if flip_sign else 1
    if callable(learning_rate):
        return scale_by_schedule(lambda count: sign * learning_rate(count))
    return scale(sign * learning_rate)


def scale_by_sign() -> GradientTransformation:
    """``optax.scale_by_sign()``: each update replaced by its sign."""
    return GradientTransformation(init_empty_state,
                                  lambda updates, state, params=None: (tree.tree_map(fnp.sign, updates), state))


# --- momentum ------------------------------------------------------------------------------------

def trace(decay: Any, nesterov: bool = False, accumulator_dtype: Any = None) -> GradientTransformation:
    """``optax.trace(decay, nesterov=False, accumulator_dtype=None)``: momentum,
    ``t = g + decay * t``; the update is ``t`` (``g + decay * t`` with Nesterov)."""
    def init(params):
        return TraceState(zeros_like_tree(params, accumulator_dtype))

    def update(updates, state, params=None):
        new_trace = tree.tree_map(lambda g, t: g + decay * t, updates, state.trace)
        if nesterov:
            updates = tree.tree_map(lambda g, t: g + decay * t, updates, new_trace)
        else:
            updates = new_trace
        return updates, TraceState(cast_tree(new_trace, accumulator_dtype))

    return GradientTransformation(init, update)


def ema(decay: Any, debias: bool = True, accumulator_dtype: Any = None) -> GradientTransformation:
    """``optax.ema(decay, debias=True, accumulator_dtype=None)``: an exponential moving average of
    the updates, bias-corrected when ``debias``."""
    def init(params):
        return EmaState(step_count(), zeros_like_tree(params, accumulator_dtype))

    def update(updates, state, params=None):
        new_ema = update_moment(updates, state.ema, decay, 1)
        count = safe_increment(state.count)
        updates = bias_correction(new_ema, decay, count) if debias else new_ema
        return updates, EmaState(count, cast_tree(new_ema, accumulator_dtype))

    return GradientTransformation(init, update)


# --- adaptive scalings -------------------------------------------------------------------------------

def _nesterov_mu_hat(mu, updates, b1, count):
    return tree.tree_map(lambda m, g: b1 * m + (1 - b1) * g,
                         bias_correction(mu, b1, safe_increment(count)), bias_correction(updates, b1, count))


def scale_by_adam(b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8, eps_root: Any = 0.0, mu_dtype: Any = None, *,
                  nesterov: bool = False) -> GradientTransformation:
    """``optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, mu_dtype=None, *, nesterov=False)``:
    Adam's bias-corrected moments, ``mu_hat / (sqrt(nu_hat + eps_root) + eps)`` (Kingma & Ba, 2015;
    Nesterov: Dozat, 2016)."""
    def init(params):
        return ScaleByAdamState(step_count(), zeros_like_tree(params, mu_dtype), zeros_like_tree(params))

    def update(updates, state, params=None):
        mu = update_moment(updates, state.mu, b1, 1)
        nu = update_moment_per_elem_norm(updates, state.nu, b2, 2)
        count = safe_increment(state.count)
        mu_hat = _nesterov_mu_hat(mu, updates, b1, count) if nesterov else bias_correction(mu, b1, count)
        nu_hat = bias_correction(nu, b2, count)
        updates = tree.tree_map(lambda m, v: m / (fnp.sqrt(v + eps_root) + eps), mu_hat, nu_hat)
        return updates, ScaleByAdamState(count, cast_tree(mu, mu_dtype), nu)

    return GradientTransformation(init, update)


def scale_by_adamax(b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8) -> GradientTransformation:
    """``optax.scale_by_adamax(b1=0.9, b2=0.999, eps=1e-8)``: Adam with the infinity norm,
    ``mu_hat / max(|g| + eps, b2 * nu)``."""
    def init(params):
        return ScaleByAdamState(step_count(), zeros_like_tree(params), zeros_like_tree(params))

    def update(updates, state, params=None):
        count = safe_increment(state.count)
        mu = update_moment(updates, state.mu, b1, 1)
        nu = update_infinity_moment(updates, state.nu, b2, eps)
        updates = tree.tree_map(lambda m, v: m / v, bias_correction(mu, b1, count), nu)
        return updates, ScaleByAdamState(count, mu, nu)

    return GradientTransformation(init, update)


def scale_by_belief(b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-16, eps_root: Any = 1e-16, *,
                    nesterov: bool = False) -> GradientTransformation:
    """``optax.scale_by_belief(b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16, *, nesterov=False)``:
    AdaBelief, Adam with the variance of the prediction error ``g - mu`` as second moment."""
    def init(params):
        return ScaleByBeliefState(step_count(), zeros_like_tree(params), zeros_like_tree(params))

    def update(updates, state, params=None):
        mu = update_moment(updates, state.mu, b1, 1)
        errors = tree.tree_map(lambda g, m: g - m, updates, mu)
        nu = update_moment_per_elem_norm(errors, state.nu, b2, 2)
        nu = tree.tree_map(lambda v: v + eps_root, nu)
        count = safe_increment(state.count)
        mu_hat = _nesterov_mu_hat(mu, updates, b1, count) if nesterov else bias_correction(mu, b1, count)
        nu_hat = bias_correction(nu, b2, count)
        updates = tree.tree_map(lambda m, v: m / (fnp.sqrt(v) + eps), mu_hat, nu_hat)
        return updates, ScaleByBeliefState(count, mu, nu)

    return GradientTransformation(init, update)


def _radam_rho(rho_inf, b2, count):
    """``rho_inf - 2 t b2**t / (1 - b2**t)``, with ``1 - b2**t`` as ``-expm1(t log b2)``: optax's
    direct float32 form loses about half the digits of ``rho`` near the threshold (b2 = 0.999,
    t = 6 gives 5.955 instead of 5.975, and the step then differs by 0.6%)."""
    t = count.astype(fnp.float32)
    log_b2 = math.log(b2) if is_python_number(b2) else fnp.log(b2)
    return rho_inf - 2 * t * fnp.exp(t * log_b2) / -fnp.expm1(t * log_b2)


def scale_by_radam(b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8, eps_root: Any = 0.0, threshold: Any = 5.0, *,
                   nesterov: bool = False) -> GradientTransformation:
    """``optax.scale_by_radam(b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, threshold=5.0, *, nesterov=False)``:
    Rectified Adam (Liu et al., 2020): Adam's step times the variance rectification ``r`` once the
    approximated SMA length ``rho`` reaches ``threshold``, plain momentum before."""
    rho_inf = 2.0 / (1.0 - b2) - 1.0

    def init(params):
        return ScaleByAdamState(step_count(), zeros_like_tree(params), zeros_like_tree(params))

    def update(updates, state, params=None):
        mu = update_moment(updates, state.mu, b1, 1)
        nu = update_moment_per_elem_norm(updates, state.nu, b2, 2)
        count = safe_increment(state.count)
        rho = _radam_rho(rho_inf, b2, count)
        mu_hat = _nesterov_mu_hat(mu, updates, b1, count) if nesterov else bias_correction(mu, b1, count)
        nu_hat = bias_correction(nu, b2, count)
        r = fnp.sqrt((rho - 4.0) * (rho - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho))
        rectified = tree.tree_map(lambda m, v: r.astype(m.dtype) * m / (fnp.sqrt(v + eps_root) + eps), mu_hat, nu_hat)
        updates = tree.tree_map(lambda t, f: fnp.where(rho >= threshold, t, f), rectified, mu_hat)
        return updates, ScaleByAdamState(count, mu, nu)

    return GradientTransformation(init, update)


def scale_by_lion(b1: Any = 0.9, b2: Any = 0.99, mu_dtype: Any = None) -> GradientTransformation:
    """``optax.scale_by_lion(b1=0.9, b2=0.99, mu_dtype=None)``: Lion (Chen et al., 2023), the
    update ``sign((1 - b1) * g + b1 * mu)``, then ``mu = (1 - b2) * g + b2 * mu``."""
    def init(params):
        return ScaleByLionState(step_count(), zeros_like_tree(params, mu_dtype))

    def update(updates, state, params=None):
        signs = tree.tree_map(lambda g, m: fnp.sign((1.0 - b1) * g + b1 * m), updates, state.mu)
        mu = cast_tree(update_moment(updates, state.mu, b2, 1), mu_dtype)
        return signs, ScaleByLionState(safe_increment(state.count), mu)

    return GradientTransformation(init, update)


def scale_by_rss(initial_accumulator_value: Any = 0.1, eps: Any = 1e-7) -> GradientTransformation:
    """``optax.scale_by_rss(initial_accumulator_value=0.1, eps=1e-7)``: Adagrad's scaling by
    ``1 / sqrt(sum of squared gradients + eps)`` (0 where the sum is 0)."""
    def init(params):
        return ScaleByRssState(full_like_tree(params, initial_accumulator_value))

    def update(updates, state, params=None):
        sums = tree.tree_map(lambda g, t: g * g + t, updates, state.sum_of_squares)
        inverse = tree.tree_map(lambda t: fnp.where(t > 0, 1 / fnp.sqrt(t + eps), 0.0), sums)
        return tree.tree_map(lambda s, g: s * g, inverse, updates), ScaleByRssState(sums)

    return GradientTransformation(init, update)


def _rms_scaling(nu_hat, eps, eps_in_sqrt, mu_hat=None):
    def one(n, m=None):
        variance = n if m is None else n - m * m
        return 1 / fnp.sqrt(variance + eps) if eps_in_sqrt else 1 / (fnp.sqrt(variance) + eps)
    if mu_hat is None:
        return tree.tree_map(one, nu_hat)
    return tree.tree_map(lambda m, n: one(n, m), mu_hat, nu_hat)


def scale_by_rms(decay: Any = 0.9, eps: Any = 1e-8, initial_scale: Any = 0.0, eps_in_sqrt: bool = True,
                 bias_correction: bool = False) -> GradientTransformation:
    """``optax.scale_by_rms(decay=0.9, eps=1e-8, initial_scale=0.0, eps_in_sqrt=True, bias_correction=False)``:
    RMSProp's scaling by ``1 / sqrt(nu + eps)`` (``1 / (sqrt(nu) + eps)`` when not ``eps_in_sqrt``)."""
    correct = bias_correction

    def init(params):
        nu = full_like_tree(params, initial_scale)
        return ScaleByRmsWithCountState(step_count(), nu) if correct else ScaleByRmsState(nu)

    def update(updates, state, params=None):
        nu = update_moment_per_elem_norm(updates, state.nu, decay, 2)
        count = safe_increment(state.count) if correct else None
        nu_hat = _bias_corrected(nu, decay, count)
        scaling = _rms_scaling(nu_hat, eps, eps_in_sqrt)
        updates = tree.tree_map(lambda s, g: s * g, scaling, updates)
        return updates, (ScaleByRmsWithCountState(count, nu) if correct else ScaleByRmsState(nu))

    return GradientTransformation(init, update)


def _bias_corrected(moments, decay, count):
    return moments if count is None else bias_correction(moments, decay, count)


def scale_by_stddev(decay: Any = 0.9, eps: Any = 1e-8, initial_scale: Any = 0.0, eps_in_sqrt: bool = True,
                    bias_correction: bool = False) -> GradientTransformation:
    """``optax.scale_by_stddev(decay=0.9, eps=1e-8, initial_scale=0.0, eps_in_sqrt=True, bias_correction=False)``:
    centered RMSProp, scaling by ``1 / sqrt(nu - mu**2 + eps)``."""
    correct = bias_correction

    def init(params):
        mu, nu = zeros_like_tree(params), full_like_tree(params, initial_scale)
        return ScaleByRStdDevWithCountState(step_count(), mu, nu) if correct else ScaleByRStdDevState(mu, nu)

    def update(updates, state, params=None):
        mu = update_moment(updates, state.mu, decay, 1)
        nu = update_moment_per_elem_norm(updates, state.nu, decay, 2)
        count = safe_increment(state.count) if correct else None
        scaling = _rms_scaling(_bias_corrected(nu, decay, count), eps, eps_in_sqrt, _bias_corrected(mu, decay, count))
        updates = tree.tree_map(lambda s, g: s * g, scaling, updates)
        new_state = ScaleByRStdDevWithCountState(count, mu, nu) if correct else ScaleByRStdDevState(mu, nu)
        return updates, new_state

    return GradientTransformation(init, update)


# --- parameter-dependent scalings --------------------------------------------------------------------

def _safe_norm(x, min_norm):
    """The 2-norm of all of ``x``, ``min_norm`` where it is at most ``min_norm`` (with a gradient
    that stays finite at 0)."""
    norm = fnp.sqrt(fnp.sum(x * x))
    safe = fnp.where(norm <= min_norm, fnp.ones_like(x), x)
    return fnp.where(norm <= min_norm, min_norm, fnp.sqrt(fnp.sum(safe * safe)))


def _safe_rms(x, min_rms):
    rms = fnp.sqrt(fnp.mean(x * x))
    safe = fnp.where(rms <= min_rms, fnp.ones_like(x), x)
    return fnp.where(rms <= min_rms, min_rms, fnp.sqrt(fnp.mean(safe * safe)))


def scale_by_trust_ratio(min_norm: Any = 0.0, trust_coefficient: Any = 1.0, eps: Any = 0.0) -> GradientTransformation:
    """``optax.scale_by_trust_ratio(min_norm=0.0, trust_coefficient=1.0, eps=0.0)``: each leaf's
    update times ``trust_coefficient * |param| / (|update| + eps)`` (1 where either norm is 0),
    as LAMB and LARS scale."""
    def scale_one(u, p):
        param_norm, update_norm = _safe_norm(p, min_norm), _safe_norm(u, min_norm)
        ratio = trust_coefficient * param_norm / (update_norm + eps)
        zero = fnp.logical_or(param_norm == 0.0, update_norm == 0.0)
        return u * fnp.where(zero, fnp.asarray(1.0, dtype=p.dtype), ratio)

    def update(updates, state, params=None):
        if params is None:
            raise ValueError(f"scale_by_trust_ratio: {NO_PARAMS_MSG}")
        return tree.tree_map(scale_one, updates, params), state

    return GradientTransformation(init_empty_state, update)


def scale_by_param_block_rms(min_scale: Any = 1e-3) -> GradientTransformation:
    """``optax.scale_by_param_block_rms(min_scale=1e-3)``: each leaf's update times the RMS of
    its parameter (at least ``min_scale``)."""
    def update(updates, state, params=None):
        if params is None:
            raise ValueError(f"scale_by_param_block_rms: {NO_PARAMS_MSG}")
        return tree.tree_map(lambda u, p: u * _safe_rms(p, min_scale), updates, params), state

    return GradientTransformation(init_empty_state, update)


def add_decayed_weights(weight_decay: ScalarOrSchedule = 0.0, mask: Any = None) -> GradientTransformation:
    """``optax.add_decayed_weights(weight_decay=0.0, mask=None)``: add ``weight_decay * params``
    to the updates (decoupled weight decay). ``weight_decay`` may be a schedule; ``mask`` (a pytree
    of bools or a function of the params returning one) limits the decay to the True leaves."""
    scheduled = callable(weight_decay)

    def init(params):
        return WeightDecaySchedule(step_count()) if scheduled else EmptyState()

    def update(updates, state, params=None):
        if params is None:
            raise ValueError(f"add_decayed_weights: {NO_PARAMS_MSG}")
        new_state = WeightDecaySchedule(safe_increment(state.count)) if scheduled else state
        if isinstance(weight_decay, (int, float)) and weight_decay == 0.0:
            return updates, new_state
        rate = weight_decay(state.count) if scheduled else weight_decay
        return tree.tree_map(lambda g, p: g + rate * p, updates, params), new_state

    transform = GradientTransformation(init, update)
    return transform if mask is None else masked(transform, mask)


# --- clipping ----------------------------------------------------------------------------------------

def clip(max_delta: Any) -> GradientTransformation:
    """``optax.clip(max_delta)``: clip every update element to ``[-max_delta, max_delta]``."""
    return GradientTransformation(
        init_empty_state,
        lambda updates, state, params=None: (tree.tree_map(lambda g: fnp.clip(g, -max_delta, max_delta), updates),
                                             state))


def clip_by_global_norm(max_norm: Any) -> GradientTransformation:
    """``optax.clip_by_global_norm(max_norm)``: when the global 2-norm of the updates exceeds
    ``max_norm``, scale all of them by ``max_norm / norm``."""
    def update(updates, state, params=None):
        norm = global_norm(updates)
        below = norm < max_norm
        return tree.tree_map(lambda t: fnp.where(below, t, (t / norm.astype(t.dtype)) * max_norm), updates), state

    return GradientTransformation(init_empty_state, update)


def clip_by_block_rms(threshold: Any) -> GradientTransformation:
    """``optax.clip_by_block_rms(threshold)``: divide each leaf by ``max(1, rms(leaf) / threshold)``."""
    def clip_one(u):
        return u / fnp.maximum(1.0, fnp.sqrt(fnp.mean(u * u)) / threshold)

    return GradientTransformation(init_empty_state,
                                  lambda updates, state, params=None: (tree.tree_map(clip_one, updates), state))

