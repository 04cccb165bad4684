"""The optimizers, as optax's aliases: each is a ``chain`` of building blocks with optax's
signature and defaults, so its state has optax's layout."""
from __future__ import annotations

import functools
from typing import Any

from fgrad import numpy as fnp
from fgrad.optim._base import GradientTransformation, ScalarOrSchedule, chain, identity, is_python_number
from fgrad.optim._factorized import scale_by_factored_rms
from fgrad.optim import _transforms as t
from fgrad.optim import _transforms_more as tm


def _check_rate(name: str, value: Any) -> None:
    if is_python_number(value) and not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")


def sgd(learning_rate: ScalarOrSchedule, momentum: Any = None, nesterov: bool = False,
        accumulator_dtype: Any = None) -> GradientTransformation:
    """``optax.sgd(learning_rate, momentum=None, nesterov=False, accumulator_dtype=None)``:
    stochastic gradient descent, with (Nesterov) momentum when ``momentum`` is given."""
    if momentum is not None:
        _check_rate("sgd: momentum", momentum)
    if nesterov and momentum is None:
        raise ValueError("sgd: nesterov=True needs a momentum, e.g. sgd(lr, momentum=0.9, nesterov=True)")
    first = identity() if momentum is None else t.trace(momentum, nesterov, accumulator_dtype)
    return chain(first, t.scale_by_learning_rate(learning_rate))


def adam(learning_rate: ScalarOrSchedule = 1e-3, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8,
         eps_root: Any = 0.0, mu_dtype: Any = None, *, nesterov: bool = False) -> GradientTransformation:
    """``optax.adam(learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, mu_dtype=None, *, nesterov=False)``:
    Adam (Kingma & Ba, 2015).

    >>> opt = adam(1e-3); state = opt.init(params)   # doctest: +SKIP
    """
    _check_rate("adam: b1", b1)
    _check_rate("adam: b2", b2)
    return chain(t.scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov),
                 t.scale_by_learning_rate(learning_rate))


def adamw(learning_rate: ScalarOrSchedule = 1e-3, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8,
          eps_root: Any = 0.0, mu_dtype: Any = None, weight_decay: ScalarOrSchedule = 1e-4, mask: Any = None, *,
          nesterov: bool = False) -> GradientTransformation:
    """``optax.adamw(learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, mu_dtype=None,
    weight_decay=1e-4, mask=None, *, nesterov=False)``: Adam with decoupled weight decay (Loshchilov
    & Hutter, 2019); ``mask`` (a pytree of bools, or a function of the params returning one) picks
    the leaves that decay, e.g. only the matrices: ``mask=lambda p: tree.map(lambda x: x.ndim >= 2, p)``."""
    _check_rate("adamw: b1", b1)
    _check_rate("adamw: b2", b2)
    return chain(t.scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov),
                 t.add_decayed_weights(weight_decay, mask), t.scale_by_learning_rate(learning_rate))


nadam = functools.partial(adam, nesterov=True)
nadam.__doc__ = "``optax.nadam(learning_rate, ...)``: ``adam(..., nesterov=True)`` (Dozat, 2016)."
nadamw = functools.partial(adamw, nesterov=True)
nadamw.__doc__ = "``optax.nadamw(learning_rate, ...)``: ``adamw(..., nesterov=True)``."


def adamax(learning_rate: ScalarOrSchedule, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8) -> GradientTransformation:
    """``optax.adamax(learning_rate, b1=0.9, b2=0.999, eps=1e-8)``: Adam with the infinity norm."""
    return chain(t.scale_by_adamax(b1, b2, eps), t.scale_by_learning_rate(learning_rate))


def adabelief(learning_rate: ScalarOrSchedule, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-16,
              eps_root: Any = 1e-16, *, nesterov: bool = False) -> GradientTransformation:
    """``optax.adabelief(learning_rate, b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16, *, nesterov=False)``:
    AdaBelief (Zhuang et al., 2020)."""
    return chain(t.scale_by_belief(b1, b2, eps, eps_root, nesterov=nesterov), t.scale_by_learning_rate(learning_rate))


def radam(learning_rate: ScalarOrSchedule, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8, eps_root: Any = 0.0,
          threshold: Any = 5.0, *, nesterov: bool = False) -> GradientTransformation:
    """``optax.radam(learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, threshold=5.0, *, nesterov=False)``:
    Rectified Adam (Liu et al., 2020)."""
    return chain(t.scale_by_radam(b1, b2, eps, eps_root, threshold, nesterov=nesterov),
                 t.scale_by_learning_rate(learning_rate))


def lion(learning_rate: ScalarOrSchedule, b1: Any = 0.9, b2: Any = 0.99, mu_dtype: Any = None,
         weight_decay: ScalarOrSchedule = 1e-3, mask: Any = None) -> GradientTransformation:
    """``optax.lion(learning_rate, b1=0.9, b2=0.99, mu_dtype=None, weight_decay=1e-3, mask=None)``:
    Lion (Chen et al., 2023): signed momentum updates with decoupled weight decay."""
    return chain(t.scale_by_lion(b1, b2, mu_dtype), t.add_decayed_weights(weight_decay, mask),
                 t.scale_by_learning_rate(learning_rate))


def lamb(learning_rate: ScalarOrSchedule, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-6, eps_root: Any = 0.0,
         weight_decay: ScalarOrSchedule = 0.0, mask: Any = None) -> GradientTransformation:
    """``optax.lamb(learning_rate, b1=0.9, b2=0.999, eps=1e-6, eps_root=0.0, weight_decay=0.0, mask=None)``:
    LAMB (You et al., 2020): Adam plus weight decay, scaled per leaf by the trust ratio."""
    return chain(t.scale_by_adam(b1, b2, eps, eps_root), t.add_decayed_weights(weight_decay, mask),
                 t.scale_by_trust_ratio(), t.scale_by_learning_rate(learning_rate))


def adagrad(learning_rate: ScalarOrSchedule, initial_accumulator_value: Any = 0.1,
            eps: Any = 1e-7) -> GradientTransformation:
    """``optax.adagrad(learning_rate, initial_accumulator_value=0.1, eps=1e-7)``: Adagrad (Duchi et al., 2011)."""
    return chain(t.scale_by_rss(initial_accumulator_value, eps), t.scale_by_learning_rate(learning_rate))


def rmsprop(learning_rate: ScalarOrSchedule, decay: Any = 0.9, eps: Any = 1e-8, initial_scale: Any = 0.0,
            eps_in_sqrt: bool = True, centered: bool = False, momentum: Any = None, nesterov: bool = False,
            bias_correction: bool = False) -> GradientTransformation:
    """``optax.rmsprop(learning_rate, decay=0.9, eps=1e-8, initial_scale=0.0, eps_in_sqrt=True,
    centered=False, momentum=None, nesterov=False, bias_correction=False)``: RMSProp (Hinton's
    lecture 6e; centered: Graves, 2013), momentum applied after the learning rate, as optax does."""
    scaling = t.scale_by_stddev if centered else t.scale_by_rms
    return chain(scaling(decay, eps, initial_scale, eps_in_sqrt, bias_correction),
                 t.scale_by_learning_rate(learning_rate),
                 identity() if momentum is None else t.trace(momentum, nesterov))


def adafactor(learning_rate: ScalarOrSchedule | None = None, min_dim_size_to_factor: int = 128,
              decay_rate: float = 0.8, decay_offset: int = 0, multiply_by_parameter_scale: bool = True,
              clipping_threshold: float | None = 1.0, momentum: float | None = None,
              dtype_momentum: Any = fnp.float32, weight_decay_rate: ScalarOrSchedule | None = None,
              eps: float = 1e-30, factored: bool = True, weight_decay_mask: Any = None) -> GradientTransformation:
    """``optax.adafactor(learning_rate=None, min_dim_size_to_factor=128, decay_rate=0.8, decay_offset=0,
    multiply_by_parameter_scale=True, clipping_threshold=1.0, momentum=None, dtype_momentum=float32,
    weight_decay_rate=None, eps=1e-30, factored=True, weight_decay_mask=None)``: Adafactor (Shazeer &
    Stern, 2018): factored second moments for matrices, update clipping by block RMS, steps
    relative to each parameter's RMS."""
    parts = [scale_by_factored_rms(factored, decay_rate, decay_offset, min_dim_size_to_factor, eps)]
    if clipping_threshold is not None:
        parts.append(t.clip_by_block_rms(clipping_threshold))
    if learning_rate is not None:
        parts.append(t.scale_by_learning_rate(learning_rate, flip_sign=False))
    if multiply_by_parameter_scale:
        parts.append(t.scale_by_param_block_rms())
    if momentum is not None:
        parts.append(t.ema(momentum, debias=False, accumulator_dtype=dtype_momentum))
    if weight_decay_rate is not None:
        parts.append(t.add_decayed_weights(weight_decay_rate, mask=weight_decay_mask))
    parts.append(t.scale(-1))
    return chain(*parts)


def amsgrad(learning_rate: ScalarOrSchedule, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8, eps_root: Any = 0.0,
            mu_dtype: Any = None, bias_correction_mu: bool = True,
            bias_correction_nu: bool = True) -> GradientTransformation:
    """``optax.amsgrad(learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, mu_dtype=None,
    bias_correction_mu=True, bias_correction_nu=True)``: AMSGrad (Reddi et al., 2018)."""
    return chain(tm.scale_by_amsgrad(b1, b2, eps, eps_root, mu_dtype, bias_correction_mu, bias_correction_nu),
                 t.scale_by_learning_rate(learning_rate))


def yogi(learning_rate: ScalarOrSchedule, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-3) -> GradientTransformation:
    """``optax.yogi(learning_rate, b1=0.9, b2=0.999, eps=1e-3)``: Yogi (Zaheer et al., 2018)."""
    return chain(tm.scale_by_yogi(b1=b1, b2=b2, eps=eps), t.scale_by_learning_rate(learning_rate))


def adadelta(learning_rate: ScalarOrSchedule | None = None, rho: Any = 0.9, eps: Any = 1e-6,
             weight_decay: ScalarOrSchedule = 0.0, weight_decay_mask: Any = None) -> GradientTransformation:
    """``optax.adadelta(learning_rate=None, rho=0.9, eps=1e-6, weight_decay=0.0, weight_decay_mask=None)``:
    Adadelta (Zeiler, 2012), weight decay added to the gradient first."""
    return chain(t.add_decayed_weights(weight_decay, mask=weight_decay_mask), tm.scale_by_adadelta(rho=rho, eps=eps),
                 t.scale_by_learning_rate(learning_rate))


def adamaxw(learning_rate: ScalarOrSchedule, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8,
            weight_decay: ScalarOrSchedule = 1e-4, mask: Any = None) -> GradientTransformation:
    """``optax.adamaxw(learning_rate, b1=0.9, b2=0.999, eps=1e-8, weight_decay=1e-4, mask=None)``:
    Adamax with decoupled weight decay."""
    return chain(t.scale_by_adamax(b1, b2, eps), t.add_decayed_weights(weight_decay, mask),
                 t.scale_by_learning_rate(learning_rate))


def novograd(learning_rate: ScalarOrSchedule, b1: Any = 0.9, b2: Any = 0.25, eps: Any = 1e-6, eps_root: Any = 0.0,
             weight_decay: Any = 0.0) -> GradientTransformation:
    """``optax.novograd(learning_rate, b1=0.9, b2=0.25, eps=1e-6, eps_root=0.0, weight_decay=0.0)``:
    NovoGrad (Ginsburg et al., 2019)."""
    return chain(tm.scale_by_novograd(b1=b1, b2=b2, eps=eps, eps_root=eps_root, weight_decay=weight_decay),
                 t.scale_by_learning_rate(learning_rate))


def sign_sgd(learning_rate: ScalarOrSchedule) -> GradientTransformation:
    """``optax.sign_sgd(learning_rate)``: signSGD (Bernstein et al., 2018), steps of
    ``-learning_rate * sign(g)``."""
    return chain(t.scale_by_sign(), t.scale_by_learning_rate(learning_rate))


def signum(learning_rate: ScalarOrSchedule, beta: Any = 0.9, accumulator_dtype: Any = None) -> GradientTransformation:
    """``optax.signum(learning_rate, beta=0.9, accumulator_dtype=None)``: Signum, the sign of an
    (un-debiased) moving average of the gradients."""
    return chain(t.ema(beta, debias=False, accumulator_dtype=accumulator_dtype), t.scale_by_sign(),
                 t.scale_by_learning_rate(learning_rate))


def rprop(learning_rate: Any, eta_minus: Any = 0.5, eta_plus: Any = 1.2, min_step_size: Any = 1e-6,
          max_step_size: Any = 50.0) -> GradientTransformation:
    """``optax.rprop(learning_rate, eta_minus=0.5, eta_plus=1.2, min_step_size=1e-6, max_step_size=50.0)``:
    Rprop (Riedmiller & Braun, 1993); ``learning_rate`` is the initial step size."""
    return chain(tm.scale_by_rprop(learning_rate, eta_minus, eta_plus, min_step_size, max_step_size), t.scale(-1.0))


def polyak_sgd(max_learning_rate: Any = 1.0, scaling: ScalarOrSchedule = 1.0, f_min: Any = 0.0, eps: Any = 0.0,
               variant: str = "sps") -> GradientTransformation:
    """``optax.polyak_sgd(max_learning_rate=1.0, scaling=1.0, f_min=0.0, eps=0.0, variant='sps')``:
    SGD with the Polyak step size (Loizou et al., 2021); ``update`` needs the loss:
    ``opt.update(grads, state, params, value=loss)``."""
    return chain(sgd(learning_rate=scaling),
                 tm.scale_by_polyak(max_learning_rate=max_learning_rate, f_min=f_min, eps=eps, variant=variant))
