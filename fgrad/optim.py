"""Optimizers as pairs of pure functions, optax-style.

    opt = fgrad.optim.adam(1e-3)
    state = opt.init(params)
    updates, state = opt.update(grads, state, params)
    params = fgrad.optim.apply_updates(params, updates)

Each optimizer is a ``chain`` of small ``GradientTransformation``s; every state is
a NamedTuple of arrays (a pytree), so a whole step can be jitted and donated.
A learning rate may be a float or a schedule: a function of the step count.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Union

import numpy as np

from fgrad import numpy as fnp
from fgrad import tree

Schedule = Callable[[Any], Any]
ScalarOrSchedule = Union[float, Schedule]


class GradientTransformation(NamedTuple):
    """``init(params) -> state`` and ``update(grads, state, params=None) -> (updates, state)``."""
    init: Callable[[Any], Any]
    update: Callable[..., tuple[Any, Any]]


class EmptyState(NamedTuple):
    """The state of a stateless transformation."""


class ScaleByAdamState(NamedTuple):
    """Adam's state: the step count (int32) and the first and second moment estimates."""
    count: Any
    mu: Any
    nu: Any


class TraceState(NamedTuple):
    """Momentum's state: the running (decayed) sum of gradients."""
    trace: Any


class ScaleByScheduleState(NamedTuple):
    """A schedule's state: the step count (int32) it is evaluated at."""
    count: Any


def _zeros_like_tree(params: Any) -> Any:
    return tree.tree_map(lambda p: fnp.zeros_like(p), params)


def _step_count() -> Any:
    return fnp.zeros((), dtype=fnp.int32)


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """Apply transformations in sequence; the state is the tuple of their states."""
    def init(params):
        return tuple(t.init(params) for t in transforms)

    def update(grads, state, params=None):
        if not isinstance(state, tuple) or len(state) != len(transforms):
            raise TypeError(f"optimizer update: expected the state returned by init ({len(transforms)} parts), "
                            f"got {type(state).__name__}")
        new_states = []
        for t, s in zip(transforms, state):
            grads, s = t.update(grads, s, params)
            new_states.append(s)
        return grads, tuple(new_states)

    return GradientTransformation(init, update)


def scale(factor: float) -> GradientTransformation:
    """Multiply updates by a constant."""
    return GradientTransformation(lambda params: EmptyState(),
                                  lambda g, s, p=None: (tree.tree_map(lambda x: x * factor, g), s))


def scale_by_learning_rate(learning_rate: ScalarOrSchedule) -> GradientTransformation:
    """Multiply updates by ``-learning_rate`` (a constant or a schedule of the step)."""
    if not callable(learning_rate):
        return scale(-float(learning_rate))

    def init(params):
        return ScaleByScheduleState(_step_count())

    def update(grads, state, params=None):
        lr = learning_rate(state.count)
        return tree.tree_map(lambda g: -lr * g, grads), ScaleByScheduleState(state.count + 1)

    return GradientTransformation(init, update)


def trace(decay: float, nesterov: bool = False) -> GradientTransformation:
    """Momentum: ``t = decay * t + g``; the update is ``t`` (or ``g + decay * t`` with Nesterov)."""
    def init(params):
        return TraceState(_zeros_like_tree(params))

    def update(grads, state, params=None):
        new_trace = tree.tree_map(lambda g, t: g + decay * t, grads, state.trace)
        updates = tree.tree_map(lambda g, t: g + decay * t, grads, new_trace) if nesterov else new_trace
        return updates, TraceState(new_trace)

    return GradientTransformation(init, update)


def scale_by_adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> GradientTransformation:
    """Adam's moment estimates with bias correction (Kingma & Ba, 2015)."""
    def init(params):
        return ScaleByAdamState(_step_count(), _zeros_like_tree(params), _zeros_like_tree(params))

    def update(grads, state, params=None):
        mu = tree.tree_map(lambda g, m: b1 * m + (1 - b1) * g, grads, state.mu)
        nu = tree.tree_map(lambda g, v: b2 * v + (1 - b2) * (g * g), grads, state.nu)
        count = state.count + 1
        step = count.astype(fnp.float32)
        correction1 = 1 - b1 ** step
        correction2 = 1 - b2 ** step
        updates = tree.tree_map(lambda m, v: (m / correction1) / (fnp.sqrt(v / correction2) + eps), mu, nu)
        return updates, ScaleByAdamState(count, mu, nu)

    return GradientTransformation(init, update)


def add_decayed_weights(weight_decay: float) -> GradientTransformation:
    """Add ``weight_decay * params`` to the updates (decoupled weight decay)."""
    def update(grads, state, params=None):
        if params is None:
            raise ValueError("add_decayed_weights (adamw) needs params: call opt.update(grads, state, params)")
        return tree.tree_map(lambda g, p: g + weight_decay * p, grads, params), state

    return GradientTransformation(lambda params: EmptyState(), update)


def _check_rate(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")


def sgd(learning_rate: ScalarOrSchedule, momentum: float = 0.0, nesterov: bool = False) -> GradientTransformation:
    """Stochastic gradient descent, optionally with (Nesterov) momentum.

    >>> opt = sgd(0.1, momentum=0.9)
    """
    _check_rate("sgd: momentum", momentum)
    if nesterov and not momentum:
        raise ValueError("sgd: nesterov=True needs a momentum > 0")
    parts = [trace(momentum, nesterov)] if momentum else []
    return chain(*parts, scale_by_learning_rate(learning_rate))


def adam(learning_rate: ScalarOrSchedule = 1e-3, b1: float = 0.9, b2: float = 0.999,
         eps: float = 1e-8) -> GradientTransformation:
    """Adam (Kingma & Ba, 2015): bias-corrected moment estimates, then ``-learning_rate``.

    >>> opt = adam(1e-3); state = opt.init(params)   # doctest: +SKIP
    """
    _check_rate("adam: b1", b1)
    _check_rate("adam: b2", b2)
    return chain(scale_by_adam(b1, b2, eps), scale_by_learning_rate(learning_rate))


def adamw(learning_rate: ScalarOrSchedule = 1e-3, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
          weight_decay: float = 1e-4) -> GradientTransformation:
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019): the decay
    ``weight_decay * params`` is added after Adam's scaling, then scaled by the learning rate."""
    _check_rate("adamw: b1", b1)
    _check_rate("adamw: b2", b2)
    return chain(scale_by_adam(b1, b2, eps), add_decayed_weights(weight_decay),
                 scale_by_learning_rate(learning_rate))


def apply_updates(params: Any, updates: Any) -> Any:
    """``params + updates`` leaf by leaf (keeping each parameter's dtype)."""
    return tree.tree_map(lambda p, u: (p + u).astype(p.dtype) if hasattr(p, "dtype") else p + u, params, updates)


# --- schedules -------------------------------------------------------------------------------

def exponential_decay(init_value: float, transition_steps: int, decay_rate: float) -> Schedule:
    """``init_value * decay_rate ** (step / transition_steps)``."""
    return lambda count: init_value * decay_rate ** (count.astype(fnp.float32) / transition_steps)


def cosine_decay(init_value: float, decay_steps: int, alpha: float = 0.0) -> Schedule:
    """Cosine decay from ``init_value`` to ``alpha * init_value`` over ``decay_steps``."""
    def schedule(count):
        t = fnp.minimum(count.astype(fnp.float32), float(decay_steps)) / decay_steps
        cosine = 0.5 * (1 + fnp.cos(np.pi * t))
        return init_value * ((1 - alpha) * cosine + alpha)
    return schedule
