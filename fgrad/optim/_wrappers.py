"""Wrappers around a transformation, as optax's: ``inject_hyperparams`` (hyperparameters in the
state), ``apply_if_finite`` (skip non-finite steps) and ``MultiSteps`` (gradient accumulation).

optax branches with ``lax.cond``; these compute both branches and select with ``where``, which
gives the same values (the discarded branch's non-finite values never reach the result)."""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Iterable, NamedTuple

import numpy as np

from fgrad import numpy as fnp
from fgrad import tree
from fgrad.core import dtypes
from fgrad.optim._base import GradientTransformation, call_update, safe_increment, step_count, zeros_like_tree


def _select(condition: Any, on_true: Any, on_false: Any) -> Any:
    """``where(condition, a, b)`` leaf by leaf, keeping ``b``'s dtypes."""
    return tree.tree_map(lambda a, b: fnp.where(condition, a, b).astype(fnp.asarray(b).dtype), on_true, on_false)


# --- inject_hyperparams --------------------------------------------------------------------------------

class InjectHyperparamsState(NamedTuple):
    """``inject_hyperparams``' state: the step count, the current hyperparameters (a dict of
    arrays: read or replace them between steps, ``state.hyperparams['learning_rate'] = 1e-4``)
    and the inner optimizer's state."""
    count: Any
    hyperparams: dict
    inner_state: Any


def _split_hyperparams(bound: inspect.BoundArguments, static_args: set) -> tuple[dict, dict, dict]:
    schedules, numeric, other = {}, {}, {}
    for name, value in bound.arguments.items():
        if name in static_args or isinstance(value, bool):
            other[name] = value
        elif callable(value):
            schedules[name] = value
        elif isinstance(value, (int, float, np.ndarray, np.number)) or hasattr(value, "dtype"):
            numeric[name] = value
        else:
            other[name] = value
    return schedules, numeric, other


def _float_dtype_of(params: Any, dtype: Any) -> Any:
    if dtype is not None:
        return np.dtype(dtype)
    floats = [np.dtype(x.dtype) for x in tree.tree_leaves(params) if hasattr(x, "dtype")
              and dtypes.is_float(np.dtype(x.dtype))]
    return max(floats, key=lambda d: d.itemsize) if floats else np.dtype(np.float32)


def _convert_float(value: Any, dtype: Any) -> Any:
    """Floats (Python or weakly typed) become ``dtype`` arrays; anything else stays as it is."""
    if hasattr(value, "dtype") and not getattr(value, "weak_type", False) and not isinstance(value, np.ndarray):
        return value
    kind = dtypes.kind(np.dtype(value.dtype)) if hasattr(value, "dtype") else ("f" if isinstance(value, float) else "")
    return fnp.asarray(value, dtype=dtype) if kind == "f" else value


def inject_hyperparams(inner_factory: Callable[..., GradientTransformation], static_args: str | Iterable[str] = (),
                       hyperparam_dtype: Any = None) -> Callable[..., GradientTransformation]:
    """``optax.inject_hyperparams(inner_factory, static_args=(), hyperparam_dtype=None)``: wraps an
    optimizer factory so that its numeric and scheduled arguments live in the state
    (``state.hyperparams``) and may change between steps, under ``jit`` too::

        opt = inject_hyperparams(adam)(learning_rate=1e-3)
        state = opt.init(params)
        state.hyperparams['learning_rate'] = 3e-4          # takes effect at the next update

    Schedules are evaluated at the step count each update; booleans and ``static_args`` stay
    Python values. The state is ``InjectHyperparamsState(count, hyperparams, inner_state)``
    (optax 0.2.8's has a fourth field, ``hyperparams_states``, for stateful schedules)."""
    static = {static_args} if isinstance(static_args, str) else set(static_args)
    signature = inspect.signature(inner_factory)
    if not static.issubset(signature.parameters):
        raise ValueError(f"inject_hyperparams: static_args {sorted(static)} must name parameters of "
                         f"{getattr(inner_factory, '__name__', inner_factory)}; it has {list(signature.parameters)}")

    @functools.wraps(inner_factory)
    def wrapped(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        schedules, numeric, other = _split_hyperparams(bound, static)

        def current(values, count, dtype):
            hyper = {k: _convert_float(v, dtype) for k, v in values.items()}
            hyper.update({k: _convert_float(f(count), dtype) for k, f in schedules.items()})
            return hyper

        def init(params):
            dtype = _float_dtype_of(params, hyperparam_dtype)
            hyper = current({k: fnp.asarray(_convert_float(v, dtype)) for k, v in numeric.items()}, step_count(), dtype)
            return InjectHyperparamsState(step_count(), hyper, inner_factory(**other, **hyper).init(params))

        def update(updates, state, params=None, **extra_args):
            dtype = _float_dtype_of(params if params is not None else updates, hyperparam_dtype)
            hyper = current({k: state.hyperparams[k] for k in numeric}, state.count, dtype)
            updates, inner_state = call_update(inner_factory(**other, **hyper), updates, state.inner_state, params,
                                               extra_args)
            return updates, InjectHyperparamsState(safe_increment(state.count), hyper, inner_state)

        return GradientTransformation(init, update)

    return wrapped


# --- apply_if_finite -----------------------------------------------------------------------------------

class ApplyIfFiniteState(NamedTuple):
    """``apply_if_finite``'s state: consecutive and total non-finite steps, whether the last step
    was finite, and the inner state."""
    notfinite_count: Any
    last_finite: Any
    total_notfinite: Any
    inner_state: Any


def _all_finite(updates: Any) -> Any:
    flags = [fnp.all(fnp.isfinite(x)) for x in tree.tree_leaves(updates)]
    return functools.reduce(fnp.logical_and, flags, fnp.asarray(True))


def apply_if_finite(inner: GradientTransformation, max_consecutive_errors: int) -> GradientTransformation:
    """``optax.apply_if_finite(inner, max_consecutive_errors)``: a step whose updates hold a NaN or
    an infinity gives zero updates and leaves ``inner``'s state unchanged, unless more than
    ``max_consecutive_errors`` such steps came in a row (then it is applied)."""
    def init(params):
        return ApplyIfFiniteState(step_count(), fnp.asarray(True), step_count(), inner.init(params))

    def update(updates, state, params=None, **extra_args):
        finite = _all_finite(updates)
        notfinite_count = fnp.where(finite, fnp.zeros((), fnp.int32), safe_increment(state.notfinite_count))
        apply = fnp.logical_or(finite, notfinite_count > max_consecutive_errors)
        new_updates, new_inner = call_update(inner, updates, state.inner_state, params, extra_args)
        new_updates = _select(apply, new_updates, zeros_like_tree(new_updates))
        new_inner = _select(apply, new_inner, state.inner_state)
        total = fnp.where(finite, state.total_notfinite, safe_increment(state.total_notfinite))
        return new_updates, ApplyIfFiniteState(notfinite_count, finite, total, new_inner)

    return GradientTransformation(init, update)


# --- MultiSteps ----------------------------------------------------------------------------------------

class MultiStepsState(NamedTuple):
    """``MultiSteps``' state: the mini-step within the current accumulation, the number of
    inner steps taken, the inner state, the accumulated gradients and the skip function's state."""
    mini_step: Any
    gradient_step: Any
    inner_opt_state: Any
    acc_grads: Any
    skip_state: Any = ()


def _never_skip(updates: Any, gradient_step: Any, params: Any) -> tuple[Any, Any]:
    return fnp.asarray(False), ()


class MultiSteps:
    """``optax.MultiSteps(opt, every_k_schedule, use_grad_mean=True, should_skip_update_fn=None,
    accumulator_dtype=float32)``: accumulate gradients over ``k`` calls (their mean, or sum when
    not ``use_grad_mean``) and apply ``opt`` on every ``k``-th; the calls in between return zeros.

        opt = MultiSteps(adam(1e-3), every_k_schedule=4)
        state = opt.init(params); updates, state = opt.update(grads, state, params)
    """

    def __init__(self, opt: GradientTransformation, every_k_schedule: int | Callable[[Any], Any],
                 use_grad_mean: bool = True, should_skip_update_fn: Callable | None = None,
                 accumulator_dtype: Any = fnp.float32):
        self._opt = opt
        self._every_k = every_k_schedule if callable(every_k_schedule) else (lambda step: every_k_schedule)
        self._use_grad_mean = use_grad_mean
        self._should_skip = should_skip_update_fn or _never_skip
        self._accumulator_dtype = accumulator_dtype

    @property
    def inner_opt(self) -> GradientTransformation:
        return self._opt

    def init(self, params: Any) -> MultiStepsState:
        """The inner optimizer's state, zero accumulated gradients and zero counters."""
        _, skip_state = self._should_skip(zeros_like_tree(params), step_count(), params)
        return MultiStepsState(step_count(), step_count(), self._opt.init(params),
                               zeros_like_tree(params, self._accumulator_dtype), skip_state)

    def _accumulate(self, grad: Any, acc: Any, count: Any) -> Any:
        return acc + (grad - acc) / (count + 1) if self._use_grad_mean else grad + acc

    def update(self, updates: Any, state: MultiStepsState, params: Any = None,
               **extra_args: Any) -> tuple[Any, MultiStepsState]:
        """Accumulate ``updates``; on the ``k``-th call apply the inner optimizer to the
        accumulation."""
        k = self._every_k(state.gradient_step)
        skip, skip_state = self._should_skip(updates, state.gradient_step, params)
        acc = tree.tree_map(lambda g, a: self._accumulate(g, a, state.mini_step), updates, state.acc_grads)
        inner_updates, inner_state = call_update(
            self._opt, tree.tree_map(lambda a, g: a.astype(g.dtype), acc, updates), state.inner_opt_state, params,
            extra_args)
        emit = state.mini_step == (k - 1)
        stepped = MultiStepsState(
            safe_increment(state.mini_step) % k,
            fnp.where(emit, safe_increment(state.gradient_step), state.gradient_step),
            _select(emit, inner_state, state.inner_opt_state),
            tree.tree_map(lambda a: fnp.where(emit, fnp.zeros_like(a), a).astype(self._accumulator_dtype), acc),
            skip_state)
        stepped_updates = tree.tree_map(lambda u: fnp.where(emit, u, fnp.zeros_like(u)), inner_updates)
        kept = state._replace(skip_state=skip_state)
        return (_select(skip, zeros_like_tree(stepped_updates), stepped_updates),
                _select(skip, kept, stepped))

    def has_updated(self, state: MultiStepsState) -> Any:
        """True right after a call that applied the inner optimizer."""
        return fnp.logical_and(state.mini_step == 0, state.gradient_step > 0)

    def gradient_transformation(self) -> GradientTransformation:
        """This wrapper as a plain ``GradientTransformation``."""
        return GradientTransformation(self.init, self.update)
