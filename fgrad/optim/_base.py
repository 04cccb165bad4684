"""The core of ``fgrad.optim``: ``GradientTransformation``, ``chain``, the states every optimizer
shares, the small tree arithmetic the transformations are written with, and ``apply_updates``.

Names, signatures and state layouts follow optax, so a program written for optax runs here with
``optax`` renamed to ``fgrad.optim``; a state is a pytree of arrays (NamedTuples, dicts, tuples).
"""
from __future__ import annotations

import collections
import inspect
from typing import Any, Callable, NamedTuple, Union

import numpy as np

from fgrad import numpy as fnp
from fgrad import tree

Schedule = Callable[[Any], Any]
ScalarOrSchedule = Union[float, Any, Schedule]
NO_PARAMS_MSG = "needs params: call opt.update(grads, state, params), not opt.update(grads, state)"


class GradientTransformation(NamedTuple):
    """``init(params) -> state`` and ``update(updates, state, params=None) -> (updates, state)``
    (optax's ``GradientTransformation``)."""
    init: Callable[[Any], Any]
    update: Callable[..., tuple[Any, Any]]


GradientTransformationExtraArgs = GradientTransformation


class EmptyState(NamedTuple):
    """The state of a stateless transformation."""


def init_empty_state(params: Any) -> EmptyState:
    """The ``init`` of a stateless transformation: ``EmptyState()``."""
    del params
    return EmptyState()


def identity() -> GradientTransformation:
    """``optax.identity()``: leaves the updates unchanged."""
    return GradientTransformation(init_empty_state, lambda updates, state, params=None: (updates, state))


def set_to_zero() -> GradientTransformation:
    """``optax.set_to_zero()``: replaces every update by zeros (freezes parameters)."""
    return GradientTransformation(init_empty_state,
                                  lambda updates, state, params=None: (zeros_like_tree(updates), state))


def stateless(f: Callable[[Any, Any], Any]) -> GradientTransformation:
    """``optax.stateless(f)``: a transformation ``updates = f(updates, params)`` with no state."""
    return GradientTransformation(init_empty_state, lambda updates, state, params=None: (f(updates, params), state))


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """``optax.chain(*transforms)``: apply transformations in sequence; the state is the tuple
    of their states. Keyword arguments of ``update`` (optax's ``extra_args``, e.g. ``value=`` for
    ``polyak_sgd``) go to the transformations whose ``update`` takes keywords."""
    for t in transforms:
        if not (hasattr(t, "init") and hasattr(t, "update")):
            raise TypeError(f"chain: expected GradientTransformations (with init and update), got {t!r}")

    def init(params):
        return tuple(t.init(params) for t in transforms)

    def update(updates, state, params=None, **extra_args):
        if not isinstance(state, tuple) or len(state) != len(transforms):
            raise TypeError(f"optimizer update: expected the state returned by init ({len(transforms)} parts), "
                            f"got {type(state).__name__}")
        new_states = []
        for t, s in zip(transforms, state):
            updates, s = call_update(t, updates, s, params, extra_args)
            new_states.append(s)
        return updates, tuple(new_states)

    return GradientTransformation(init, update)


def takes_extra_args(update: Callable) -> bool:
    """True when ``update`` accepts keyword arguments beyond ``(updates, state, params)`` (optax's
    ``GradientTransformationExtraArgs``, e.g. ``scale_by_polyak``'s ``value=``)."""
    try:
        parameters = inspect.signature(update).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind is inspect.Parameter.VAR_KEYWORD or p.kind is inspect.Parameter.KEYWORD_ONLY
               for p in parameters)


def call_update(transform: Any, updates: Any, state: Any, params: Any, extra_args: dict) -> tuple[Any, Any]:
    """``transform.update(updates, state, params, **extra_args)``, the extra arguments passed only
    to an update that takes them (as optax's ``chain`` does)."""
    if extra_args and takes_extra_args(transform.update):
        return transform.update(updates, state, params, **extra_args)
    return transform.update(updates, state, params)


def named_chain(*named_transforms: tuple[str, GradientTransformation]) -> GradientTransformation:
    """``optax.named_chain(*(name, transform))``: ``chain`` whose state is an ``OrderedDict`` from
    each name to its transformation's state."""
    names = [name for name, _ in named_transforms]
    if len(names) != len(set(names)):
        raise ValueError(f"named_chain: the names must be distinct, got {names}")

    def init(params):
        return collections.OrderedDict((name, t.init(params)) for name, t in named_transforms)

    def update(updates, state, params=None, **extra_args):
        new_state = collections.OrderedDict()
        for name, t in named_transforms:
            updates, new_state[name] = call_update(t, updates, state[name], params, extra_args)
        return updates, new_state

    return GradientTransformation(init, update)


def apply_updates(params: Any, updates: Any) -> Any:
    """``optax.apply_updates(params, updates)``: ``params + updates`` leaf by leaf, keeping each
    parameter's dtype."""
    return tree.tree_map(lambda p, u: (p + u).astype(p.dtype) if hasattr(p, "dtype") else p + u, params, updates)


# --- tree arithmetic (optax.tree's helpers the transformations use) --------------------------------

def zeros_like_tree(params: Any, dtype: Any = None) -> Any:
    """Zeros shaped like each leaf (in ``dtype`` when given)."""
    return tree.tree_map(lambda p: fnp.zeros_like(p, dtype=dtype), params)


def full_like_tree(params: Any, value: Any) -> Any:
    """``value`` broadcast to each leaf's shape and dtype."""
    return tree.tree_map(lambda p: fnp.full_like(p, value), params)


def cast_tree(values: Any, dtype: Any) -> Any:
    """Each leaf cast to ``dtype`` (no-op when ``dtype`` is None)."""
    return values if dtype is None else tree.tree_map(lambda v: v.astype(dtype), values)


def step_count() -> Any:
    """A fresh int32 step counter (0)."""
    return fnp.zeros((), dtype=fnp.int32)


def safe_increment(count: Any) -> Any:
    """``count + 1``, saturating at the dtype's maximum instead of wrapping (optax's
    ``safe_increment``)."""
    dtype = np.dtype(count.dtype)
    top = np.iinfo(dtype).max if dtype.kind in "iu" else np.finfo(dtype).max
    return fnp.where(count < top, count + fnp.asarray(1, dtype=dtype), fnp.asarray(top, dtype=dtype))


def update_moment(updates: Any, moments: Any, decay: Any, order: int) -> Any:
    """``(1 - decay) * g**order + decay * m`` per leaf."""
    return tree.tree_map(lambda g, m: (1 - decay) * (g ** order) + decay * m, updates, moments)


def update_moment_per_elem_norm(updates: Any, moments: Any, decay: Any, order: int) -> Any:
    """``(1 - decay) * |g|**order + decay * m`` per leaf (real gradients: ``g**order``)."""
    return update_moment(updates, moments, decay, order)


def update_infinity_moment(updates: Any, moments: Any, decay: Any, eps: Any) -> Any:
    """``max(|g| + eps, decay * m)`` per leaf (Adamax's infinity norm)."""
    return tree.tree_map(lambda g, m: fnp.maximum(fnp.abs(g) + eps, decay * m), updates, moments)


def bias_correction(moments: Any, decay: Any, count: Any) -> Any:
    """``m / (1 - decay**count)`` per leaf, the division in each leaf's dtype."""
    correction = 1 - decay ** count
    return tree.tree_map(lambda m: m / correction.astype(m.dtype), moments)


def global_norm(updates: Any) -> Any:
    """``optax.global_norm(updates)``: the 2-norm of all leaves together,
    ``sqrt(sum(sum(x**2) for x in leaves))``."""
    leaves = tree.tree_leaves(updates)
    if not leaves:
        return fnp.asarray(0.0, dtype=fnp.float32)
    total = sum(fnp.sum(fnp.asarray(x) * fnp.asarray(x)) for x in leaves)
    return fnp.sqrt(total)


def is_python_number(x: Any) -> bool:
    """True for a Python (or NumPy) scalar, False for arrays and tracers (hyperparameters
    injected by ``inject_hyperparams`` arrive as arrays, and are not range-checked)."""
    return isinstance(x, (int, float, np.number)) and not isinstance(x, bool)
