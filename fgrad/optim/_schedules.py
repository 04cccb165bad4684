"""Learning-rate schedules, as optax's: each is a function of the step count (a Python int or an
int32 scalar array, under jit too) usable wherever a learning rate (or weight decay) is."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from fgrad import numpy as fnp
from fgrad.optim._base import Schedule


def _count_as_float(count: Any) -> Any:
    return float(count) if isinstance(count, int) else count


def constant_schedule(value: Any) -> Schedule:
    """``optax.constant_schedule(value)``: ``value`` at every step."""
    return lambda count: value


def polynomial_schedule(init_value: Any, end_value: Any, power: Any, transition_steps: int,
                        transition_begin: int = 0) -> Schedule:
    """``optax.polynomial_schedule(init_value, end_value, power, transition_steps, transition_begin=0)``:
    ``(init - end) * (1 - t / transition_steps) ** power + end`` with ``t`` the steps since
    ``transition_begin``, clipped to ``[0, transition_steps]``; a non-positive
    ``transition_steps`` gives the constant ``init_value``."""
    if transition_steps <= 0:
        return lambda count: init_value
    transition_begin = max(transition_begin, 0)

    def schedule(count):
        t = fnp.clip(count - transition_begin, 0, transition_steps)
        fraction = 1 - t / transition_steps
        return (init_value - end_value) * (fraction ** power) + end_value
    return schedule


def linear_schedule(init_value: Any, end_value: Any, transition_steps: int, transition_begin: int = 0) -> Schedule:
    """``optax.linear_schedule(init_value, end_value, transition_steps, transition_begin=0)``: linear
    from ``init_value`` to ``end_value`` over ``transition_steps`` steps, then constant."""
    return polynomial_schedule(init_value, end_value, 1, transition_steps, transition_begin)


def piecewise_constant_schedule(init_value: Any, boundaries_and_scales: dict[int, float] | None = None) -> Schedule:
    """``optax.piecewise_constant_schedule(init_value, boundaries_and_scales=None)``: ``init_value``
    multiplied by each ``scale`` once the step count reaches its ``boundary``."""
    if boundaries_and_scales is not None and any(s < 0.0 for s in boundaries_and_scales.values()):
        raise ValueError(f"piecewise_constant_schedule expects non-negative scale factors, got "
                         f"{boundaries_and_scales}")

    def schedule(count):
        value = init_value
        for boundary, scale in sorted((boundaries_and_scales or {}).items()):
            indicator = fnp.maximum(0.0, fnp.sign(boundary - count))
            value = value * indicator + (1 - indicator) * scale * value
        return value
    return schedule


def exponential_decay(init_value: Any, transition_steps: int, decay_rate: float, transition_begin: int = 0,
                      staircase: bool = False, end_value: Any = None) -> Schedule:
    """``optax.exponential_decay(init_value, transition_steps, decay_rate, transition_begin=0,
    staircase=False, end_value=None)``: ``init_value * decay_rate ** (t / transition_steps)`` with
    ``t`` the steps since ``transition_begin`` (the exponent floored when ``staircase``), bounded
    by ``end_value`` when given."""
    if transition_steps <= 0 or decay_rate == 0:
        return lambda count: init_value
    transition_begin = max(transition_begin, 0)
    bound = None if end_value is None else (fnp.maximum if decay_rate < 1.0 else fnp.minimum)

    def schedule(count):
        t = count - transition_begin
        p = t / transition_steps
        if staircase:
            p = fnp.floor(p)
        value = fnp.where(t <= 0, init_value, init_value * fnp.power(decay_rate, p))
        return value if bound is None else bound(value, end_value)
    return schedule


def cosine_decay_schedule(init_value: Any, decay_steps: int, alpha: Any = 0.0, exponent: Any = 1.0) -> Schedule:
    """``optax.cosine_decay_schedule(init_value, decay_steps, alpha=0.0, exponent=1.0)``:
    ``init_value * ((1 - alpha) * c ** exponent + alpha)`` with
    ``c = (1 + cos(pi * min(t, decay_steps) / decay_steps)) / 2``."""
    if not decay_steps > 0:
        raise ValueError(f"cosine_decay_schedule needs a positive decay_steps, got decay_steps={decay_steps}")

    def schedule(count):
        t = fnp.minimum(_count_as_float(count), float(decay_steps))
        cosine = 0.5 * (1 + fnp.cos(math.pi * t / float(decay_steps)))
        return init_value * ((1 - alpha) * cosine ** exponent + alpha)
    return schedule


def cosine_decay(init_value: float, decay_steps: int, alpha: float = 0.0) -> Schedule:
    """fgrad's earlier name for ``cosine_decay_schedule(init_value, decay_steps, alpha)``."""
    return cosine_decay_schedule(init_value, decay_steps, alpha)


def join_schedules(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """``optax.join_schedules(schedules, boundaries)``: ``schedules[i]`` from ``boundaries[i-1]``
    on, each called with the steps since its boundary."""
    if len(boundaries) != len(schedules) - 1:
        raise ValueError(f"join_schedules: {len(schedules)} schedules need {len(schedules) - 1} boundaries, "
                         f"got {len(boundaries)}")

    def schedule(step):
        value = schedules[0](step)
        for boundary, later in zip(boundaries, schedules[1:]):
            value = fnp.where(step < boundary, value, later(step - boundary))
        return value
    return schedule


def warmup_constant_schedule(init_value: Any, peak_value: Any, warmup_steps: int) -> Schedule:
    """``optax.warmup_constant_schedule(init_value, peak_value, warmup_steps)``: a linear warmup,
    then ``peak_value``."""
    return linear_schedule(init_value, peak_value, warmup_steps)


def warmup_cosine_decay_schedule(init_value: Any, peak_value: Any, warmup_steps: int, decay_steps: int,
                                 end_value: Any = 0.0, exponent: Any = 1.0) -> Schedule:
    """``optax.warmup_cosine_decay_schedule(init_value, peak_value, warmup_steps, decay_steps,
    end_value=0.0, exponent=1.0)``: linear warmup to ``peak_value``, then cosine decay to
    ``end_value`` at step ``decay_steps`` (counted from the start, warmup included)."""
    alpha = 0.0 if peak_value == 0.0 else end_value / peak_value
    return join_schedules([linear_schedule(init_value, peak_value, warmup_steps),
                           cosine_decay_schedule(peak_value, decay_steps - warmup_steps, alpha, exponent)],
                          [warmup_steps])


def warmup_exponential_decay_schedule(init_value: Any, peak_value: Any, warmup_steps: int, transition_steps: int,
                                      decay_rate: float, transition_begin: int = 0, staircase: bool = False,
                                      end_value: Any = None) -> Schedule:
    """``optax.warmup_exponential_decay_schedule(init_value, peak_value, warmup_steps,
    transition_steps, decay_rate, transition_begin=0, staircase=False, end_value=None)``."""
    return join_schedules([linear_schedule(init_value, peak_value, warmup_steps),
                           exponential_decay(peak_value, transition_steps, decay_rate, transition_begin,
                                             staircase, end_value)],
                          [warmup_steps])


def _interpolate(kind: str, start: float, end: float, pct: Any) -> Any:
    if kind == "linear":
        return (end - start) * pct + start
    return end + (start - end) / 2.0 * (fnp.cos(math.pi * pct) + 1)


def piecewise_interpolate_schedule(interpolate_type: str, init_value: float,
                                   boundaries_and_scales: dict[int, float] | None = None) -> Schedule:
    """``optax.piecewise_interpolate_schedule(interpolate_type, init_value, boundaries_and_scales=None)``:
    between consecutive boundaries, a linear or cosine interpolation from the value there to the
    next value (each boundary's value is the previous one times its scale)."""
    if interpolate_type not in ("linear", "cosine"):
        raise ValueError(f"piecewise_interpolate_schedule: interpolate_type must be 'linear' or 'cosine', "
                         f"got {interpolate_type!r}")
    items = sorted((boundaries_and_scales or {}).items())
    if any(s < 0.0 for _, s in items):
        raise ValueError("piecewise_interpolate_schedule expects non-negative scale factors")
    bounds = [0] + [b for b, _ in items]
    values = [float(v) for v in np.cumprod(np.asarray([init_value] + [s for _, s in items], np.float32))]

    def schedule(count):
        total = fnp.where(bounds[-1] <= count, values[-1], 0.0)
        for lo, hi, start, end in zip(bounds[:-1], bounds[1:], values[:-1], values[1:]):
            pct = (count - lo) / max(hi - lo, 1)
            inside = fnp.logical_and(lo <= count, count < hi)
            total = total + fnp.where(inside, _interpolate(interpolate_type, start, end, pct), 0.0)
        return total
    return schedule


def _check_onecycle(transition_steps: int) -> None:
    if transition_steps <= 0:
        raise ValueError(f"a onecycle schedule needs a positive transition_steps, got {transition_steps}")


def cosine_onecycle_schedule(transition_steps: int, peak_value: float, pct_start: float = 0.3,
                             div_factor: float = 25.0, final_div_factor: float = 1e4) -> Schedule:
    """``optax.cosine_onecycle_schedule(transition_steps, peak_value, pct_start=0.3, div_factor=25.0,
    final_div_factor=1e4)``: cosine from ``peak / div_factor`` up to ``peak`` over the first
    ``pct_start`` of the steps, then down to ``peak / (div_factor * final_div_factor)``."""
    _check_onecycle(transition_steps)
    return piecewise_interpolate_schedule("cosine", peak_value / div_factor, {
        int(pct_start * transition_steps): div_factor,
        int(transition_steps): 1.0 / (div_factor * final_div_factor)})


def linear_onecycle_schedule(transition_steps: int, peak_value: float, pct_start: float = 0.3,
                             pct_final: float = 0.85, div_factor: float = 25.0,
                             final_div_factor: float = 1e4) -> Schedule:
    """``optax.linear_onecycle_schedule(transition_steps, peak_value, pct_start=0.3, pct_final=0.85,
    div_factor=25.0, final_div_factor=1e4)``: the linear one-cycle policy."""
    _check_onecycle(transition_steps)
    return piecewise_interpolate_schedule("linear", peak_value / div_factor, {
        int(pct_start * transition_steps): div_factor,
        int(pct_final * transition_steps): 1.0 / div_factor,
        transition_steps: 1.0 / final_div_factor})


def sgdr_schedule(cosine_kwargs: Sequence[dict]) -> Schedule:
    """``optax.sgdr_schedule(cosine_kwargs)``: SGD with warm restarts (Loshchilov & Hutter, 2017):
    one ``warmup_cosine_decay_schedule(**kwargs)`` per dict, each restarting where the previous
    one's ``decay_steps`` end."""
    schedules, boundaries, step = [], [], 0
    for kwargs in cosine_kwargs:
        if "decay_steps" not in kwargs:
            raise ValueError(f"sgdr_schedule: each dict needs warmup_cosine_decay_schedule's arguments, "
                             f"decay_steps included; got {sorted(kwargs)}")
        schedules.append(warmup_cosine_decay_schedule(**kwargs))
        step += kwargs["decay_steps"]
        boundaries.append(step)
    return join_schedules(schedules, boundaries[:-1])
