"""More of optax's building blocks: AMSGrad, Yogi, Adadelta, NovoGrad and Rprop scalings, gradient
accumulation (``apply_every``), noise, constraints (``zero_nans``, ``keep_params_nonnegative``),
gradient centralization, ``lookahead``, ``scale_gradient`` and ``skip_not_finite``; each with
optax's signature, state layout and arithmetic."""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from fgrad import lax
from fgrad import numpy as fnp
from fgrad import random
from fgrad import tree
from fgrad.optim._base import (
    NO_PARAMS_MSG, EmptyState, GradientTransformation, bias_correction, call_update, cast_tree, full_like_tree,
    init_empty_state, safe_increment, step_count, update_moment, update_moment_per_elem_norm, zeros_like_tree)
from fgrad.optim._transforms import ScaleByAdamState
from fgrad.transforms.custom import custom_vjp


class ScaleByAmsgradState(NamedTuple):
    """AMSGrad's state: the step count, the moments and the running maximum of the second moment."""
    count: Any
    mu: Any
    nu: Any
    nu_max: Any


class ScaleByAdaDeltaState(NamedTuple):
    """Adadelta's state: the moving averages of squared gradients and of squared updates."""
    e_g: Any
    e_x: Any


class ScaleByNovogradState(NamedTuple):
    """NovoGrad's state: the step count, the momentum and one second moment (a scalar) per leaf."""
    count: Any
    mu: Any
    nu: Any


class ScaleByRpropState(NamedTuple):
    """Rprop's state: the per-element step sizes and the previous updates."""
    step_sizes: Any
    prev_updates: Any


class ZeroNansState(NamedTuple):
    """``zero_nans``' state: per leaf, whether the last update held a NaN."""
    found_nan: Any


class ApplyEvery(NamedTuple):
    """``apply_every``'s state: the step count modulo ``k`` and the accumulated gradients."""
    count: Any
    grad_acc: Any


class AddNoiseState(NamedTuple):
    """``add_noise``'s state: the step count and the PRNG key."""
    count: Any
    rng_key: Any


NonNegativeParamsState = EmptyState


class LookaheadState(NamedTuple):
    """``lookahead``'s state: the fast optimizer's state and the steps since the last sync."""
    fast_state: Any
    steps_since_sync: Any


class LookaheadParams(NamedTuple):
    """The parameters ``lookahead`` updates: the fast ones (the gradients are taken there) and the
    slow ones (the ones to evaluate)."""
    fast: Any
    slow: Any

    @classmethod
    def init_synced(cls, params: Any) -> "LookaheadParams":
        """Fast and slow parameters both set to ``params``."""
        return cls(slow=params, fast=params)


# --- adaptive scalings -------------------------------------------------------------------------------

def scale_by_amsgrad(b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8, eps_root: Any = 0.0, mu_dtype: Any = None,
                     bias_correction_mu: bool = True, bias_correction_nu: bool = True) -> GradientTransformation:
    """``optax.scale_by_amsgrad(b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, mu_dtype=None,
    bias_correction_mu=True, bias_correction_nu=True)``: AMSGrad (Reddi et al., 2018), Adam with
    the running maximum of the (bias-corrected) second moment."""
    def init(params):
        return ScaleByAmsgradState(step_count(), zeros_like_tree(params, mu_dtype), zeros_like_tree(params),
                                   zeros_like_tree(params))

    def update(updates, state, params=None):
        mu = update_moment(updates, state.mu, b1, 1)
        nu = update_moment_per_elem_norm(updates, state.nu, b2, 2)
        count = safe_increment(state.count)
        mu_hat = bias_correction(mu, b1, count) if bias_correction_mu else mu
        nu_eff = bias_correction(nu, b2, count) if bias_correction_nu else nu
        nu_max = tree.tree_map(fnp.maximum, state.nu_max, nu_eff)
        updates = tree.tree_map(lambda m, v: m / (fnp.sqrt(v + eps_root) + eps), mu_hat, nu_max)
        return updates, ScaleByAmsgradState(count, cast_tree(mu, mu_dtype), nu, nu_max)

    return GradientTransformation(init, update)


def scale_by_yogi(b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-3, eps_root: Any = 0.0,
                  initial_accumulator_value: Any = 1e-6) -> GradientTransformation:
    """``optax.scale_by_yogi(b1=0.9, b2=0.999, eps=1e-3, eps_root=0.0, initial_accumulator_value=1e-6)``:
    Yogi (Zaheer et al., 2018), Adam whose second moment moves additively,
    ``nu -= (1 - b2) * sign(nu - g**2) * g**2``."""
    def init(params):
        return ScaleByAdamState(step_count(), full_like_tree(params, initial_accumulator_value),
                                full_like_tree(params, initial_accumulator_value))

    def update(updates, state, params=None):
        mu = update_moment(updates, state.mu, b1, 1)
        nu = tree.tree_map(lambda g, v: v - (1 - b2) * fnp.sign(v - g * g) * (g * g), updates, state.nu)
        count = safe_increment(state.count)
        mu_hat, nu_hat = bias_correction(mu, b1, count), bias_correction(nu, b2, count)
        updates = tree.tree_map(lambda m, v: m / (fnp.sqrt(v + eps_root) + eps), mu_hat, nu_hat)
        return updates, ScaleByAdamState(count, mu, nu)

    return GradientTransformation(init, update)


def scale_by_adadelta(rho: Any = 0.9, eps: Any = 1e-6) -> GradientTransformation:
    """``optax.scale_by_adadelta(rho=0.9, eps=1e-6)``: Adadelta (Zeiler, 2012), each gradient
    scaled by ``sqrt(E[dx**2] + eps) / sqrt(E[g**2] + eps)``."""
    def init(params):
        return ScaleByAdaDeltaState(zeros_like_tree(params), zeros_like_tree(params))

    def update(updates, state, params=None):
        e_g = update_moment(updates, state.e_g, rho, 2)
        updates = tree.tree_map(lambda g, cur_e_g, prev_e_x: fnp.sqrt(prev_e_x + eps) / fnp.sqrt(cur_e_g + eps) * g,
                                updates, e_g, state.e_x)
        e_x = update_moment(updates, state.e_x, rho, 2)
        return updates, ScaleByAdaDeltaState(e_g, e_x)

    return GradientTransformation(init, update)


def scale_by_novograd(b1: Any = 0.9, b2: Any = 0.25, eps: Any = 1e-8, eps_root: Any = 0.0, weight_decay: Any = 0.0,
                      mu_dtype: Any = None) -> GradientTransformation:
    """``optax.scale_by_novograd(b1=0.9, b2=0.25, eps=1e-8, eps_root=0.0, weight_decay=0.0, mu_dtype=None)``:
    NovoGrad (Ginsburg et al., 2019): a second moment per leaf (of the squared norm), then momentum
    of the normalized gradient plus weight decay; the first step initializes both."""
    def init(params):
        return ScaleByNovogradState(step_count(), zeros_like_tree(params, mu_dtype),
                                    tree.tree_map(lambda p: fnp.asarray(0.0, dtype=p.dtype), params))

    def squared_norm(g):
        return fnp.sum(g * g)

    def normalized(g, p, n):
        return g / (fnp.sqrt(n + eps_root) + eps) + weight_decay * p

    def update(updates, state, params=None):
        if params is None:
            raise ValueError(f"scale_by_novograd: {NO_PARAMS_MSG}")
        count = safe_increment(state.count)
        first = count == 1
        nu = tree.tree_map(lambda g, n: fnp.where(first, squared_norm(g).astype(n.dtype),
                                                  (1 - b2) * squared_norm(g) + b2 * n), updates, state.nu)
        steps = tree.tree_map(normalized, updates, params, nu)
        mu = tree.tree_map(lambda m, u: fnp.where(first, u, b1 * m + u), state.mu, steps)
        mu = cast_tree(mu, mu_dtype)
        return mu, ScaleByNovogradState(count, mu, nu)

    return GradientTransformation(init, update)


def scale_by_rprop(learning_rate: Any, eta_minus: Any = 0.5, eta_plus: Any = 1.2, min_step_size: Any = 1e-6,
                   max_step_size: Any = 50.0) -> GradientTransformation:
    """``optax.scale_by_rprop(learning_rate, eta_minus=0.5, eta_plus=1.2, min_step_size=1e-6,
    max_step_size=50.0)``: Rprop (Riedmiller & Braun, 1993), per-element steps that grow by
    ``eta_plus`` while the gradient keeps its sign and shrink by ``eta_minus`` when it flips (the
    step after a flip is skipped). As in optax 0.2.8, each call returns the step computed by the
    previous call (the first call returns zeros)."""
    def init(params):
        return ScaleByRpropState(full_like_tree(params, learning_rate), zeros_like_tree(params))

    def new_step_size(s, step_size):
        grown = fnp.clip(step_size * fnp.where(s > 0, eta_plus, eta_minus), min_step_size, max_step_size)
        return fnp.where(s == 0, step_size, grown)

    def update(updates, state, params=None):
        sign = tree.tree_map(lambda g, prev: g * prev, updates, state.prev_updates)
        step_sizes = tree.tree_map(new_step_size, sign, state.step_sizes)
        prev_updates = tree.tree_map(lambda s, g, size: fnp.where(s < 0, fnp.zeros_like(g), size * fnp.sign(g)),
                                     sign, updates, step_sizes)
        # optax 0.2.8 emits the previous step's update (one step late), zeroed where the sign flipped
        updates = tree.tree_map(lambda s, p: fnp.where(s < 0, fnp.zeros_like(p), p), sign, state.prev_updates)
        return updates, ScaleByRpropState(step_sizes, prev_updates)

    return GradientTransformation(init, update)


# --- accumulation, noise, constraints ----------------------------------------------------------------

def apply_every(k: int = 1) -> GradientTransformation:
    """``optax.apply_every(k=1)``: accumulate (sum) the updates of ``k`` steps and emit the sum on
    every ``k``-th step, zeros in between."""
    def init(params):
        return ApplyEvery(step_count(), zeros_like_tree(params))

    def update(updates, state, params=None):
        c = state.count % k
        keep = (c != 0)
        grad_acc = tree.tree_map(lambda g, ga: keep.astype(ga.dtype) * ga + g, updates, state.grad_acc)
        emit = (c == k - 1)
        updates = tree.tree_map(lambda ga: emit.astype(ga.dtype) * ga, grad_acc)
        return updates, ApplyEvery(safe_increment(state.count) % k, grad_acc)

    return GradientTransformation(init, update)


def _as_key(key: Any) -> Any:
    if key is None:
        return random.key(0)
    if isinstance(key, (int, np.integer)):
        return random.key(int(key))
    key = fnp.asarray(key) if not hasattr(key, "dtype") else key
    if str(key.dtype).startswith("key"):
        return key
    if key.shape == (2,) and fnp.issubdtype(key.dtype, fnp.unsignedinteger):
        return random.wrap_key_data(key)
    raise TypeError(f"add_noise: key must be an int seed or a PRNG key (fgrad.random.key(0)), got {key!r}")


def add_noise(eta: Any, gamma: Any, key: Any = None, *, seed: int | None = None) -> GradientTransformation:
    """``optax.add_noise(eta, gamma, key=None, *, seed=None)``: add Gaussian noise of variance
    ``eta / (t + 1) ** gamma`` at step ``t`` (Neelakantan et al., 2015); one key split per step and
    one subkey per leaf, as optax draws them (fgrad.random reproduces JAX's threefry streams)."""
    if seed is not None:
        if key is not None:
            raise ValueError("add_noise: pass either key or the deprecated seed, not both")
        key = seed

    def init(params):
        return AddNoiseState(step_count(), _as_key(key))

    def update(updates, state, params=None):
        count = safe_increment(state.count)
        std = fnp.sqrt(eta / count.astype(fnp.float32) ** gamma)
        rng_key, sample_key = random.split(state.rng_key)
        leaves, treedef = tree.tree_flatten(updates)
        keys = random.split(sample_key, len(leaves))
        noise = [random.normal(keys[i], fnp.shape(x), x.dtype) for i, x in enumerate(leaves)]
        updates = tree.tree_unflatten(treedef, [x + std * n for x, n in zip(leaves, noise)])
        return updates, AddNoiseState(count, rng_key)

    return GradientTransformation(init, update)


def zero_nans() -> GradientTransformation:
    """``optax.zero_nans()``: replace NaNs in the updates by 0; the state records, per leaf,
    whether the last update held one."""
    def init(params):
        return ZeroNansState(tree.tree_map(lambda p: fnp.asarray(False), params))

    def update(updates, state, params=None):
        found = ZeroNansState(tree.tree_map(lambda u: fnp.any(fnp.isnan(u)), updates))
        return tree.tree_map(lambda u: fnp.where(fnp.isnan(u), fnp.zeros_like(u), u), updates), found

    return GradientTransformation(init, update)


def keep_params_nonnegative() -> GradientTransformation:
    """``optax.keep_params_nonnegative()``: shorten each update that would make its parameter
    negative so that the parameter lands on 0."""
    def update(updates, state, params=None):
        if params is None:
            raise ValueError(f"keep_params_nonnegative: {NO_PARAMS_MSG}")
        return tree.tree_map(lambda p, u: fnp.where(p + u < 0.0, -p, u), params, updates), state

    return GradientTransformation(init_empty_state, update)


def _subtract_mean(g):
    return g - fnp.mean(g, axis=tuple(range(1, g.ndim)), keepdims=True) if g.ndim > 1 else g


def centralize() -> GradientTransformation:
    """``optax.centralize()``: gradient centralization (Yong et al., 2020), each leaf of rank >= 2
    minus its mean over all axes but the first."""
    return GradientTransformation(init_empty_state,
                                  lambda updates, state, params=None: (tree.tree_map(_subtract_mean, updates), state))


# --- lookahead ---------------------------------------------------------------------------------------

def _lookahead_updates(updates, sync_next, params, slow_step_size):
    difference = tree.tree_map(lambda f, u, s: f + u - s, params.fast, updates, params.slow)
    slow = tree.tree_map(lambda d: slow_step_size * sync_next.astype(d.dtype) * d, difference)
    fast = tree.tree_map(lambda u, d: u - sync_next.astype(d.dtype) * (1 - slow_step_size) * d, updates, difference)
    return LookaheadParams(fast=fast, slow=slow)


def lookahead(fast_optimizer: GradientTransformation, sync_period: int, slow_step_size: Any,
              reset_state: bool = False) -> GradientTransformation:
    """``optax.lookahead(fast_optimizer, sync_period, slow_step_size, reset_state=False)``:
    Lookahead (Zhang et al., 2019). The parameters are ``LookaheadParams(fast, slow)`` (start with
    ``LookaheadParams.init_synced(params)``); gradients are taken at ``params.fast``; every
    ``sync_period`` steps the slow parameters move ``slow_step_size`` of the way to the fast ones,
    and the fast ones are reset there."""
    if sync_period < 1:
        raise ValueError(f"lookahead: sync_period must be >= 1, got {sync_period}")

    def init(params):
        fast = getattr(params, "fast", params)
        return LookaheadState(fast_optimizer.init(fast), step_count())

    def update(updates, state, params=None, **extra_args):
        if not isinstance(params, LookaheadParams):
            raise ValueError("lookahead: update needs params=LookaheadParams(fast, slow), e.g. "
                             "LookaheadParams.init_synced(params)")
        updates, fast_state = call_update(fast_optimizer, updates, state.fast_state, params.fast, extra_args)
        sync_next = state.steps_since_sync == sync_period - 1
        new_updates = _lookahead_updates(updates, sync_next, params, slow_step_size)
        if reset_state:
            initial = fast_optimizer.init(params.fast)
            fast_state = tree.tree_map(lambda cur, ini: fnp.where(sync_next, ini, cur), fast_state, initial)
        return new_updates, LookaheadState(fast_state, (state.steps_since_sync + 1) % sync_period)

    return GradientTransformation(init, update)


# --- gradient utilities ------------------------------------------------------------------------------

@custom_vjp
def _scale_gradient(inputs, scale):
    return inputs


def _scale_gradient_fwd(inputs, scale):
    return inputs, scale


def _scale_gradient_bwd(scale, g):
    return tree.tree_map(lambda x: x * scale, g), fnp.zeros_like(scale)


_scale_gradient.defvjp(_scale_gradient_fwd, _scale_gradient_bwd)


def scale_gradient(inputs: Any, scale: Any) -> Any:
    """``optax.scale_gradient(inputs, scale)``: the identity on ``inputs`` (a pytree) whose
    gradient is multiplied by ``scale`` (0: ``stop_gradient``)."""
    if isinstance(scale, (int, float)) and scale == 1.0:
        return inputs
    if isinstance(scale, (int, float)) and scale == 0.0:
        return tree.tree_map(lax.stop_gradient, inputs)
    return _scale_gradient(inputs, fnp.asarray(scale, dtype=fnp.float32))


def skip_not_finite(updates: Any, gradient_step: Any, params: Any) -> tuple[Any, dict]:
    """``optax.skip_not_finite(updates, gradient_step, params)``: a ``should_skip_update_fn`` for
    ``MultiSteps``: skip when any update is NaN or infinite; reports ``should_skip`` and
    ``num_not_finite``."""
    counts = [fnp.sum(fnp.logical_not(fnp.isfinite(u))) for u in tree.tree_leaves(updates)]
    num_not_finite = fnp.sum(fnp.stack(counts)) if counts else fnp.asarray(0, dtype=fnp.int32)
    should_skip = num_not_finite > 0
    return should_skip, {"should_skip": should_skip, "num_not_finite": num_not_finite}


def scale_by_polyak(f_min: Any = 0.0, max_learning_rate: Any = 1.0, eps: Any = 0.0,
                    variant: str = "sps") -> GradientTransformation:
    """``optax.scale_by_polyak(f_min=0.0, max_learning_rate=1.0, eps=0.0, variant='sps')``: the
    Polyak step size (Loizou et al., 2021), ``min((value - f_min) / (|g|**2 + eps), max_learning_rate)``
    times the updates; ``update`` needs the loss: ``update(grads, state, params, value=loss)``.
    ``variant='sps+'`` clips a negative gap to 0."""
    if variant not in ("sps", "sps+"):
        raise ValueError(f"scale_by_polyak: variant must be 'sps' or 'sps+', got {variant!r}")

    def update(updates, state, params=None, *, value, **extra_args):
        leaves = tree.tree_leaves(updates)
        grad_sq_norm = sum(fnp.sum(g * g) for g in leaves)
        gap = fnp.asarray(value - f_min).astype(grad_sq_norm.dtype)
        if variant == "sps+":
            gap = fnp.maximum(gap, 0.0)
        tiny = grad_sq_norm + eps <= np.finfo(np.float64).eps
        step = fnp.where(tiny, 0.0, fnp.minimum(gap / (grad_sq_norm + eps), max_learning_rate))
        return tree.tree_map(lambda g: step.astype(g.dtype) * g, updates), state

    return GradientTransformation(init_empty_state, update)
