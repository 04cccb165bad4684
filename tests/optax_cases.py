"""Optimizer and schedule cases shared by ``scripts/record_optax.py`` (which runs them with optax
and stores the results in ``tests/data/optax_optim.npz``) and ``tests/test_optim_optax.py`` (which
runs them with ``fgrad.optim`` and compares). Each case is written once, against a module ``o``
that is either ``optax`` or ``fgrad.optim``: the two share their API.

This module imports neither JAX nor fgrad: the runner receives the array functions it needs.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Callable

import numpy as np

DATA_FILE = "optax_optim.npz"

SHAPES = {
    "small": {"b": (4,), "s": (), "w": (5, 4)},
    "factor": {"m": (6, 5), "t": (2, 3, 4), "v": (3,)},
    "big": {"b": (130,), "w": (128, 130)},
}


def matrices(params):
    """A mask marking the leaves of rank >= 2 (weight decay on matrices only, as nanoGPT does)."""
    return {k: v.ndim >= 2 for k, v in params.items()}


def _set_learning_rate(value):
    def between(state, step):
        if step == 3:
            state.hyperparams["learning_rate"] = value
        return state
    return between


def _case(make: Callable, shapes: str = "small", steps: int = 6, grad_scale: float = 1.0,
          nan_steps: tuple = (), between: Callable | None = None, state: bool = True, rtol: float = 2e-5,
          wrap: Callable | None = None, extra: Callable | None = None) -> dict:
    return dict(make=make, shapes=shapes, steps=steps, grad_scale=grad_scale, nan_steps=nan_steps,
                between=between, state=state, rtol=rtol, wrap=wrap, extra=extra)


def _loss_value(step):
    """``update``'s extra arguments for the Polyak cases: a made-up loss that shrinks, then goes
    below ``f_min`` (the ``sps+`` clip)."""
    return {"value": [3.0, 2.0, 1.2, 0.7, 0.2, -0.5, 0.05][step]}


def _lookahead_params(o, params):
    return o.LookaheadParams.init_synced(params)


_SGDR = [dict(init_value=0.0, peak_value=0.1, warmup_steps=1, decay_steps=3),
         dict(init_value=0.01, peak_value=0.05, warmup_steps=2, decay_steps=5, end_value=0.001)]


CASES: dict[str, dict] = {
    "sgd": _case(lambda o: o.sgd(0.1)),
    "sgd_momentum": _case(lambda o: o.sgd(0.1, momentum=0.9)),
    "sgd_nesterov": _case(lambda o: o.sgd(0.05, momentum=0.8, nesterov=True)),
    "adam": _case(lambda o: o.adam(1e-2)),
    "adam_options": _case(lambda o: o.adam(3e-2, b1=0.5, b2=0.9, eps=1e-3, eps_root=1e-4)),
    "nadam": _case(lambda o: o.nadam(1e-2)),
    "adamw": _case(lambda o: o.adamw(1e-2, weight_decay=0.1)),
    "adamw_mask_fn": _case(lambda o: o.adamw(1e-2, weight_decay=0.5, mask=matrices)),
    "adamw_mask_tree": _case(lambda o: o.adamw(1e-2, weight_decay=0.5, mask={"b": False, "s": True, "w": True})),
    "adamw_schedules": _case(lambda o: o.adamw(o.warmup_cosine_decay_schedule(0.0, 3e-2, 2, 6, 1e-3),
                                               weight_decay=o.linear_schedule(0.5, 0.0, 4)), steps=8),
    "nadamw": _case(lambda o: o.nadamw(1e-2, weight_decay=0.2)),
    "adamax": _case(lambda o: o.adamax(1e-2)),
    "adabelief": _case(lambda o: o.adabelief(1e-2)),
    "adabelief_nesterov": _case(lambda o: o.adabelief(1e-2, nesterov=True)),
    # RAdam's rectification in float32 is ill-conditioned near the threshold: optax's rho differs by
    # 0.3% with a one-ulp change in 0.999 ** 6 (XLA's scalar and vector pow differ by that much), and
    # fgrad computes rho accurately instead; test_optim_optax checks it tightly against float64.
    "radam": _case(lambda o: o.radam(1e-2), steps=9, rtol=1e-2),
    "radam_nesterov": _case(lambda o: o.radam(1e-2, threshold=4.5, nesterov=True), steps=7, rtol=1e-2),
    "lion": _case(lambda o: o.lion(1e-2)),
    "lion_mask": _case(lambda o: o.lion(1e-2, b1=0.8, b2=0.9, weight_decay=0.5, mask=matrices)),
    "lamb": _case(lambda o: o.lamb(1e-2)),
    "lamb_decay": _case(lambda o: o.lamb(1e-2, weight_decay=0.1, mask=matrices)),
    "adagrad": _case(lambda o: o.adagrad(0.1)),
    "adagrad_options": _case(lambda o: o.adagrad(0.1, initial_accumulator_value=0.0, eps=1e-3)),
    "rmsprop": _case(lambda o: o.rmsprop(1e-2)),
    "rmsprop_centered": _case(lambda o: o.rmsprop(1e-2, decay=0.8, centered=True, initial_scale=1.0)),
    "rmsprop_momentum": _case(lambda o: o.rmsprop(1e-2, momentum=0.9, nesterov=True)),
    "rmsprop_bias_correction": _case(lambda o: o.rmsprop(1e-2, eps_in_sqrt=False, bias_correction=True)),
    "rmsprop_centered_corrected": _case(lambda o: o.rmsprop(1e-2, centered=True, bias_correction=True,
                                                            momentum=0.5)),
    "adafactor_factored": _case(lambda o: o.adafactor(min_dim_size_to_factor=2), shapes="factor"),
    "adafactor_options": _case(lambda o: o.adafactor(0.1, min_dim_size_to_factor=3, momentum=0.9,
                                                     weight_decay_rate=0.01, clipping_threshold=0.5,
                                                     decay_offset=-1), shapes="factor"),
    "adafactor_unfactored": _case(lambda o: o.adafactor(1e-2, factored=False, multiply_by_parameter_scale=False),
                                  shapes="factor"),
    "adafactor_defaults": _case(lambda o: o.adafactor(), shapes="big", steps=3),
    "clip_by_global_norm": _case(lambda o: o.chain(o.clip_by_global_norm(2.0), o.adam(1e-2)), grad_scale=0.6),
    "clip": _case(lambda o: o.chain(o.clip(0.5), o.sgd(0.1, momentum=0.9))),
    "masked_momentum": _case(lambda o: o.chain(o.masked(o.trace(0.9), {"b": True, "s": False, "w": True}),
                                               o.scale(-0.1))),
    "masked_fn": _case(lambda o: o.masked(o.adam(1e-2), matrices)),
    "multi_transform": _case(lambda o: o.multi_transform({"adam": o.adam(1e-2), "sgd": o.sgd(0.1, momentum=0.5),
                                                          "freeze": o.set_to_zero()},
                                                         {"b": "sgd", "s": "freeze", "w": "adam"})),
    "partition_fn": _case(lambda o: o.partition({"matrix": o.lion(1e-2), "other": o.adagrad(0.1)},
                                                lambda p: {k: "matrix" if v.ndim >= 2 else "other"
                                                           for k, v in p.items()})),
    "named_chain": _case(lambda o: o.named_chain(("clip", o.clip(0.5)), ("adam", o.adam(1e-2)))),
    "sgd_exponential_staircase": _case(lambda o: o.sgd(o.exponential_decay(0.1, 2, 0.5, transition_begin=1,
                                                                           staircase=True, end_value=0.02))),
    "adam_piecewise_constant": _case(lambda o: o.adam(o.piecewise_constant_schedule(1e-2, {2: 0.5, 4: 0.1}))),
    "inject_adam": _case(lambda o: o.inject_hyperparams(o.adam)(learning_rate=1e-2, b1=0.8),
                         between=_set_learning_rate(3e-3), state=False),
    "inject_sgd_schedule": _case(lambda o: o.inject_hyperparams(o.sgd)(learning_rate=o.linear_schedule(0.1, 0.01, 4),
                                                                     momentum=0.9), state=False),
    "apply_if_finite": _case(lambda o: o.apply_if_finite(o.adam(1e-2), 2), steps=7, nan_steps=(1, 3, 4, 5)),
    "multi_steps": _case(lambda o: o.MultiSteps(o.adam(1e-2), every_k_schedule=3), steps=7),
    "multi_steps_sum": _case(lambda o: o.MultiSteps(o.sgd(0.1, momentum=0.5), every_k_schedule=2,
                                                    use_grad_mean=False).gradient_transformation(), steps=5),
    # --- added with the losses: more optimizers and transformations ---
    "amsgrad": _case(lambda o: o.amsgrad(1e-2)),
    "amsgrad_options": _case(lambda o: o.amsgrad(1e-2, b1=0.5, eps_root=1e-4, bias_correction_nu=False)),
    "yogi": _case(lambda o: o.yogi(1e-2)),
    "yogi_options": _case(lambda o: o.chain(o.scale_by_yogi(b1=0.8, eps=1e-2, eps_root=1e-5,
                                                            initial_accumulator_value=0.5), o.scale(-0.05))),
    "adadelta": _case(lambda o: o.adadelta(1.0)),
    "adadelta_decay": _case(lambda o: o.adadelta(0.5, rho=0.8, eps=1e-4, weight_decay=0.1,
                                                 weight_decay_mask=matrices)),
    "adamaxw": _case(lambda o: o.adamaxw(1e-2, weight_decay=0.1)),
    "novograd": _case(lambda o: o.novograd(1e-2)),
    "novograd_decay": _case(lambda o: o.novograd(1e-2, b1=0.8, b2=0.5, weight_decay=0.1)),
    "sign_sgd": _case(lambda o: o.sign_sgd(1e-2)),
    "signum": _case(lambda o: o.signum(1e-2, beta=0.8)),
    "rprop": _case(lambda o: o.rprop(1e-2), steps=8),
    "rprop_options": _case(lambda o: o.rprop(0.1, eta_minus=0.3, eta_plus=2.0, min_step_size=0.02,
                                             max_step_size=0.3), steps=8),
    "sgd_sgdr": _case(lambda o: o.sgd(o.sgdr_schedule(_SGDR), momentum=0.5), steps=9),
    "zero_nans": _case(lambda o: o.chain(o.zero_nans(), o.adam(1e-2)), nan_steps=(1, 3)),
    "apply_every": _case(lambda o: o.chain(o.adam(1e-2), o.apply_every(3)), steps=7),
    "add_noise": _case(lambda o: o.chain(o.add_noise(0.01, 0.55, key=3), o.sgd(0.1)), state=False),
    "keep_params_nonnegative": _case(lambda o: o.chain(o.sgd(0.8), o.keep_params_nonnegative())),
    "centralize": _case(lambda o: o.chain(o.centralize(), o.sgd(0.1, momentum=0.9)), shapes="factor"),
    "lookahead": _case(lambda o: o.lookahead(o.adam(1e-2), sync_period=3, slow_step_size=0.5), steps=7,
                       wrap=_lookahead_params),
    "lookahead_reset": _case(lambda o: o.lookahead(o.sgd(0.1, momentum=0.9), sync_period=2, slow_step_size=0.3,
                                                   reset_state=True), steps=7, wrap=_lookahead_params),
    "multi_steps_skip_not_finite": _case(lambda o: o.MultiSteps(o.adam(1e-2), 2,
                                                                should_skip_update_fn=o.skip_not_finite),
                                         steps=7, nan_steps=(2, 5)),
    "polyak_sgd": _case(lambda o: o.polyak_sgd(max_learning_rate=0.5), steps=7, extra=_loss_value),
    "polyak_sgd_plus": _case(lambda o: o.polyak_sgd(max_learning_rate=0.05, scaling=0.5, f_min=0.1, eps=0.1,
                                                    variant="sps+"), steps=7, extra=_loss_value),
    "polyak_named_chain": _case(lambda o: o.named_chain(("clip", o.clip(0.5)), ("polyak", o.polyak_sgd())),
                                steps=7, extra=_loss_value),
    "polyak_wrapped": _case(lambda o: o.MultiSteps(o.apply_if_finite(o.inject_hyperparams(o.polyak_sgd)(
        max_learning_rate=0.3), 2), 2).gradient_transformation(), steps=7, extra=_loss_value, state=False),
    "polyak_multi_transform": _case(lambda o: o.multi_transform(
        {"polyak": o.polyak_sgd(0.2), "sgd": o.sgd(0.1)}, {"b": "sgd", "s": "polyak", "w": "polyak"}),
        steps=7, extra=_loss_value),
    "polyak_masked": _case(lambda o: o.chain(o.masked(o.polyak_sgd(0.2), matrices), o.clip(0.05)),
                           steps=7, extra=_loss_value),
}

SCHEDULE_STEPS = 40

SCHEDULES: dict[str, Callable] = {
    "constant": lambda o: o.constant_schedule(0.3),
    "linear": lambda o: o.linear_schedule(1.0, 0.1, 10, transition_begin=3),
    "polynomial": lambda o: o.polynomial_schedule(1.0, 0.01, 2.0, 20, 5),
    "piecewise_constant": lambda o: o.piecewise_constant_schedule(1.0, {5: 0.5, 12: 0.1}),
    "exponential": lambda o: o.exponential_decay(1.0, 5, 0.5),
    "exponential_staircase": lambda o: o.exponential_decay(2.0, 4, 0.7, transition_begin=3, staircase=True,
                                                           end_value=0.5),
    "exponential_growth": lambda o: o.exponential_decay(0.1, 3, 1.5, end_value=3.0),
    "cosine": lambda o: o.cosine_decay_schedule(2.0, 20, alpha=0.1, exponent=2.0),
    "warmup_cosine": lambda o: o.warmup_cosine_decay_schedule(0.0, 1.0, 5, 30, 0.1),
    "warmup_exponential": lambda o: o.warmup_exponential_decay_schedule(0.0, 1.0, 4, 5, 0.5, end_value=0.2),
    "warmup_constant": lambda o: o.warmup_constant_schedule(0.1, 1.0, 6),
    "join": lambda o: o.join_schedules([o.constant_schedule(1.0), o.linear_schedule(1.0, 0.0, 10)], [7]),
    "cosine_onecycle": lambda o: o.cosine_onecycle_schedule(30, 1.0),
    "linear_onecycle": lambda o: o.linear_onecycle_schedule(30, 1.0, pct_start=0.2),
    "sgdr": lambda o: o.sgdr_schedule(_SGDR * 4),
}


def make_data(case: dict, seed: int) -> tuple[dict, list[dict]]:
    """Initial params and one gradient per step (NumPy float32), with NaNs at ``nan_steps``."""
    rng = np.random.default_rng(seed)
    shapes = SHAPES[case["shapes"]]
    params = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    grads = []
    for step in range(case["steps"]):
        g = {k: (case["grad_scale"] * rng.standard_normal(s)).astype(np.float32) for k, s in shapes.items()}
        if step in case["nan_steps"]:
            g["b"] = np.full_like(g["b"], np.nan)
        grads.append(g)
    return params, grads


def sample(x: Any) -> np.ndarray:
    """A leaf flattened to at most ~64 evenly spaced elements (keeps the data file small)."""
    flat = np.asarray(x, np.float64).ravel()
    return flat[::max(1, flat.size // 64)]


def run_case(backend: SimpleNamespace, case: dict, seed: int, jit: bool = False) -> tuple[np.ndarray, np.ndarray, int]:
    """Run ``case`` with ``backend`` (``optim``, ``asarray``, ``tree_map``, ``leaves``, ``jit``);
    returns the sampled params after each step, the sampled final state and its leaf count."""
    params, grads = make_data(case, seed)
    opt = case["make"](backend.optim)
    p = backend.tree_map(backend.asarray, params)
    if case["wrap"] is not None:
        p = case["wrap"](backend.optim, p)
    state = opt.init(p)
    update = backend.jit(opt.update) if jit else opt.update
    history = []
    for step, g in enumerate(grads):
        if case["between"] is not None:
            state = case["between"](state, step)
        extra = case["extra"](step) if case["extra"] is not None else {}
        updates, state = update(backend.tree_map(backend.asarray, g), state, p, **extra)
        p = backend.optim.apply_updates(p, updates)
        history.append(np.concatenate([sample(x) for x in backend.leaves(p)]))
    state_leaves = backend.leaves(state)
    numeric = [x for x in state_leaves if not str(x.dtype).startswith("key")]  # PRNG keys have no values
    return np.stack(history), np.concatenate([np.zeros(0)] + [sample(x) for x in numeric]), len(state_leaves)
