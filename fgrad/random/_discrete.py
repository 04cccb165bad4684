"""Permutations and draws from finite sets, with JAX's algorithms: ``permutation`` sorts by
random 32-bit keys (repeated while ties could matter), ``choice`` and ``categorical`` use
``randint``, inverse-CDF search, or the Gumbel-max / Gumbel-top-k tricks."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from fgrad import lax
from fgrad import numpy as fnp
from fgrad.core import dtypes
from fgrad.core.trace import Tracer, get_aval
from fgrad.random._keys import canonical_shape, key_base, random_bits, split_base
from fgrad.random._samplers import gumbel_base, gumbel_mode, randint, uniform_base

_SHUFFLE_EXPONENT = 3   # JAX's (tjablin's) static bound on the sort rounds that make ties negligible


def _axis(axis: int, ndim: int, fn: str) -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(f"fgrad.random.{fn}: axis {axis} is out of bounds for an array of {ndim} dimensions")
    return axis % ndim


def shuffle(base: Any, x: Any, axis: int) -> Any:
    """``x`` sorted along ``axis`` by fresh random uint32 keys, ``ceil(3 ln(size) / ln(2**32 - 1))``
    times (a stable sort, so tied keys keep their order, as in JAX)."""
    size = math.prod(fnp.shape(x))
    rounds = int(np.ceil(_SHUFFLE_EXPONENT * np.log(max(1, size)) / np.log(np.iinfo(np.uint32).max)))
    for _ in range(rounds):
        keys = split_base(base, (2,))
        base, subkey = keys[0], keys[1]
        sort_keys = random_bits(subkey, 32, tuple(fnp.shape(x)))
        x = lax.sort([sort_keys, x], dimension=axis, num_keys=1)[1]
    return x


def _concrete_int(x: Any, fn: str) -> int:
    if isinstance(x, Tracer):
        raise TypeError(f"fgrad.random.{fn}: an integer x must be concrete (a Python int), not traced")
    return int(np.asarray(x))


def permutation(key: Any, x: int | Any, axis: int = 0, independent: bool = False) -> Any:
    """``jax.random.permutation(key, x, axis=0, independent=False)``: a random permutation of
    ``arange(x)`` (integer ``x``) or of ``x`` along ``axis``; ``independent=True`` shuffles each
    slice along ``axis`` on its own. Bit-equal to JAX."""
    base, _ = key_base(key, "permutation")
    if isinstance(x, (int, np.integer)) or (not isinstance(x, (list, tuple)) and fnp.ndim(x) == 0):
        if not isinstance(x, (int, np.integer)) and get_aval(fnp.asarray(x)).dtype.kind not in "iu":
            raise TypeError("fgrad.random.permutation: x must be an integer or at least 1-dimensional")
        _axis(axis, 1, "permutation")
        n = _concrete_int(x, "permutation")
        return shuffle(base, lax.iota(dtypes.default_int(), n), 0)
    x = fnp.asarray(x)
    axis = _axis(axis, fnp.ndim(x), "permutation")
    if independent or fnp.ndim(x) == 1:
        return shuffle(base, x, axis)
    order = shuffle(base, lax.iota(dtypes.default_int(), fnp.shape(x)[axis]), 0)
    return fnp.take(x, order, axis=axis)


def _top_k_indices(x: Any, k: int) -> Any:
    """Indices of the ``k`` largest entries along the last axis, largest first, ties to the
    lower index (``lax.top_k``'s order)."""
    n = fnp.shape(x)[-1]
    index = lax.broadcasted_iota(np.int32, tuple(fnp.shape(x)), len(fnp.shape(x)) - 1)
    order = lax.sort([-x, index], dimension=-1, num_keys=1)[1]
    return order[..., :k] if k < n else order


def choice(key: Any, a: int | Any, shape: Sequence[int] = (), replace: bool = True, p: Any = None,
           axis: int = 0, mode: str | None = None) -> Any:
    """``jax.random.choice(key, a, shape=(), replace=True, p=None, axis=0, mode=None)``: samples
    from ``arange(a)`` (integer ``a``) or from ``a`` along ``axis``.

    As JAX: uniform with replacement is ``randint``; without, the first entries of a
    ``permutation``; with ``p`` and replacement, inverse-CDF search of ``cumsum(p)``; with ``p``
    and without replacement, the Gumbel top-k trick. Bit-equal to JAX without ``p`` (with ``p``,
    equal unless a uniform lands within an ulp of a CDF step).
    """
    base, _ = key_base(key, "choice")
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"fgrad.random.choice: shape must be a sequence, got {shape!r}")
    shape = canonical_shape(shape, "choice")
    arr = fnp.asarray(a)
    if fnp.ndim(arr) == 0:
        n_inputs = _concrete_int(a, "choice")
    else:
        axis = _axis(axis, fnp.ndim(arr), "choice")
        n_inputs = fnp.shape(arr)[axis]
    n_draws = math.prod(shape)
    if n_draws == 0:
        return fnp.zeros(shape, get_aval(arr).dtype)
    if n_inputs <= 0:
        raise ValueError("fgrad.random.choice: a must be greater than 0 unless no samples are taken")
    if not replace and n_draws > n_inputs:
        raise ValueError(f"fgrad.random.choice: cannot take a larger sample (size {n_draws}) than the "
                         f"population (size {n_inputs}) when replace=False")
    scalar = fnp.ndim(arr) == 0
    if p is None:
        if replace:
            index = randint(key, shape, 0, n_inputs)
            result = index if scalar else fnp.take(arr, index, axis=axis)
        else:
            permuted = permutation(key, n_inputs if scalar else arr, axis)
            result = lax.slice_in_dim(permuted, 0, n_draws, axis=axis if not scalar else 0)
    else:
        result = _choice_with_p(base, arr, scalar, n_inputs, n_draws, shape, replace, p, axis, mode)
    out_shape = shape if scalar else (*fnp.shape(arr)[:axis], *shape, *fnp.shape(arr)[axis + 1:])
    return fnp.reshape(result, out_shape)


def _choice_with_p(base, arr, scalar, n_inputs, n_draws, shape, replace, p, axis, mode) -> Any:
    p = fnp.asarray(p)
    if not dtypes.is_float(get_aval(p).dtype):
        p = p.astype(dtypes.default_float())
    if tuple(fnp.shape(p)) != (n_inputs,):
        raise ValueError("fgrad.random.choice: p must be None or a 1D vector with the same size as "
                         f"a.shape[axis]; p has shape {tuple(fnp.shape(p))} and a.shape[axis] is {n_inputs}")
    dtype = get_aval(p).dtype
    if replace:
        cumulative = fnp.cumsum(p)
        r = cumulative[-1] * (np.asarray(1, dtype) - uniform_base(base, shape, dtype))
        # searchsorted(cumulative, r, side='left'): how many steps lie below r
        index = fnp.sum((cumulative < r[..., None]).astype(dtypes.default_int()), axis=-1)
    else:
        g = gumbel_base(base, (n_inputs,), dtype, gumbel_mode(mode, "choice")) + fnp.log(p)
        index = _top_k_indices(g, n_draws).astype(dtypes.default_int())
    return index if scalar else fnp.take(arr, index, axis=axis)


def categorical(key: Any, logits: Any, axis: int = -1, shape: Sequence[int] | None = None,
                replace: bool = True, mode: str | None = None) -> Any:
    """``jax.random.categorical(key, logits, axis=-1, shape=None, replace=True, mode=None)``:
    indices drawn with probabilities ``softmax(logits, axis)``.

    With replacement, the Gumbel-max trick (``argmax(logits + gumbel)`` along ``axis``); without,
    Gumbel top-k over ``prod(shape) / prod(batch)`` draws. ``shape`` must end with the batch shape
    (``logits.shape`` without ``axis``). Equal to JAX (an argmax flips only if two perturbed
    logits fall within the few-ulp difference of ``log``).
    """
    base, _ = key_base(key, "categorical")
    logits = fnp.asarray(logits)
    ndim = fnp.ndim(logits)
    axis_pos = _axis(axis, ndim, "categorical")
    batch_shape = tuple(s for i, s in enumerate(fnp.shape(logits)) if i != axis_pos)
    shape = batch_shape if shape is None else param_shape_suffix(shape, batch_shape)
    prefix = shape[:len(shape) - len(batch_shape)]
    dtype = get_aval(logits).dtype
    mode = gumbel_mode(mode, "categorical")
    if replace:
        logits_shape = list(shape[len(shape) - len(batch_shape):])
        logits_shape.insert(axis_pos, fnp.shape(logits)[axis_pos])
        noise = gumbel_base(base, (*prefix, *logits_shape), dtype, mode)
        perturbed = noise + fnp.reshape(logits, (1,) * len(prefix) + tuple(fnp.shape(logits)))
        return fnp.argmax(perturbed, axis=len(prefix) + axis_pos).astype(dtypes.default_int())
    perturbed = logits + gumbel_base(base, tuple(fnp.shape(logits)), dtype, mode)
    k = math.prod(prefix)
    if k > fnp.shape(logits)[axis_pos]:
        raise ValueError(f"fgrad.random.categorical: number of samples without replacement ({k}) cannot "
                         f"exceed the number of categories ({fnp.shape(logits)[axis_pos]})")
    indices = _top_k_indices(fnp.moveaxis(perturbed, axis_pos, -1), k).astype(dtypes.default_int())
    return fnp.reshape(fnp.moveaxis(indices, -1, 0), shape)


def param_shape_suffix(shape: Any, batch_shape: tuple[int, ...]) -> tuple[int, ...]:
    shape = canonical_shape(shape, "categorical")
    try:
        joined = tuple(np.broadcast_shapes(shape, batch_shape))
    except ValueError:
        joined = None
    if joined != shape:
        raise ValueError(f"fgrad.random.categorical: shape {shape} must broadcast with the batch shape "
                         f"{batch_shape} (logits' shape without axis) to itself")
    return shape
