"""Counter-based pseudo-random numbers with explicit keys (Threefry-2x32, as in JAX).

A key is a ``uint32[2]`` array. The same key always gives the same numbers, on
every backend and inside ``jit``; ``split`` and ``fold_in`` derive independent keys.
Everything is built from primitives (``threefry2x32`` plus integer ops), so it
traces, vmaps and compiles like any other code.

    key = fgrad.random.key(0)
    key, sub = fgrad.random.split(key)
    x = fgrad.random.normal(sub, (3, 4))
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from fgrad import lax
from fgrad import numpy as fnp
from fgrad.core import dtypes
from fgrad.core.trace import get_aval


def _check_key(key: Any, fn: str) -> Any:
    aval = get_aval(key)
    if aval.shape != (2,) or aval.dtype != dtypes.uint32:
        raise TypeError(f"fgrad.random.{fn}: expected a key (uint32[2], from fgrad.random.key(seed) or split), "
                        f"got {aval.str_short()}")
    return key


def key(seed: int | Any) -> Any:
    """A PRNG key from an integer seed (a Python int or an integer scalar array)."""
    if isinstance(seed, (int, np.integer)):
        seed = int(seed)
        if not -2**63 <= seed < 2**64:
            raise ValueError(f"fgrad.random.key: seed {seed} does not fit in 64 bits")
        seed &= 2**64 - 1
        return fnp.asarray(np.array([seed >> 32, seed & 0xFFFFFFFF], np.uint32))
    seed = fnp.asarray(seed)
    if seed.shape != () or seed.dtype.kind not in "iu":
        raise TypeError(f"fgrad.random.key: seed must be an integer scalar, got {get_aval(seed).str_short()}")
    low = seed.astype(fnp.uint32)
    return fnp.stack([fnp.zeros((), fnp.uint32), low])


PRNGKey = key


def _counter_bits(key: Any, n: int) -> Any:
    """``n`` random uint32 words: Threefry of the counters ``0..n-1`` under ``key``.

    The counters are paired as ``(i, i + half)`` so that one cipher call makes two words.
    """
    half = (n + 1) // 2
    low = lax.iota(fnp.uint32, (half,))
    y1, y2 = lax.threefry2x32(key[0], key[1], low, low + np.uint32(half))
    words = fnp.concatenate([y1, y2])
    return words if n == 2 * half else words[:n]


def split(key: Any, num: int = 2) -> Any:
    """``num`` new keys (shape ``(num, 2)``) derived from ``key``; use each one once.

    >>> key, subkey = split(key)     # doctest: +SKIP
    """
    _check_key(key, "split")
    if int(num) < 0:
        raise ValueError(f"fgrad.random.split: num must be >= 0, got {num}")
    if int(num) == 0:
        return fnp.zeros((0, 2), fnp.uint32)
    return fnp.reshape(_counter_bits(key, 2 * int(num)), (int(num), 2))


def fold_in(key: Any, data: int | Any) -> Any:
    """A new key derived from ``key`` and an integer (e.g. a step number or a device index)."""
    _check_key(key, "fold_in")
    data = fnp.asarray(data)
    if data.shape != () or data.dtype.kind not in "iu":
        raise TypeError(f"fgrad.random.fold_in: data must be an integer scalar, got {get_aval(data).str_short()}")
    y1, y2 = lax.threefry2x32(key[0], key[1], np.uint32(0), data.astype(fnp.uint32))
    return fnp.stack([y1, y2])


def bits(key: Any, shape: Sequence[int] = ()) -> Any:
    """Uniformly random ``uint32`` bits of ``shape``."""
    _check_key(key, "bits")
    shape = tuple(int(s) for s in shape)
    size = int(np.prod(shape, dtype=np.int64))
    if size == 0:
        return fnp.zeros(shape, fnp.uint32)
    return fnp.reshape(_counter_bits(key, size), shape)


def uniform(key: Any, shape: Sequence[int] = (), dtype=fnp.float32, minval: Any = 0.0, maxval: Any = 1.0) -> Any:
    """Uniform floats in ``[minval, maxval)``, 24 random bits each."""
    dtype = dtypes.canonicalize(dtype)
    if not dtypes.is_float(dtype):
        raise TypeError(f"fgrad.random.uniform needs a float dtype, got {dtype.name}")
    raw = bits(key, shape)
    unit = lax.shift_right_logical(raw, np.uint32(8)).astype(dtype) * np.asarray(2.0 ** -24, dtype)
    if _is_python_number(minval, 0) and _is_python_number(maxval, 1):
        return unit
    return (unit * (maxval - minval) + minval).astype(dtype)


def _is_python_number(x: Any, value: float) -> bool:
    return type(x) in (int, float) and x == value


def normal(key: Any, shape: Sequence[int] = (), dtype=fnp.float32) -> Any:
    """Standard normal samples (Box-Muller on two independent uniform streams)."""
    k1, k2 = split(key)
    u1 = 1.0 - uniform(k1, shape, dtype)  # in (0, 1], safe for log
    u2 = uniform(k2, shape, dtype)
    return (fnp.sqrt(-2.0 * fnp.log(u1)) * fnp.cos(2.0 * np.pi * u2)).astype(dtype)


def randint(key: Any, shape: Sequence[int], minval: int | Any, maxval: int | Any, dtype=fnp.int32) -> Any:
    """Random integers in ``[minval, maxval)``.

    Uses ``bits mod span``; the bias is below ``span / 2**32`` (1.4e-5 for span 60000).
    """
    dtype = dtypes.canonicalize(dtype)
    minval = fnp.asarray(minval).astype(dtype)
    maxval = fnp.asarray(maxval).astype(dtype)
    span = fnp.maximum(maxval - minval, 1).astype(fnp.uint32)
    if span.shape not in ((), tuple(shape)):
        span = fnp.broadcast_to(span, tuple(shape))
    offset = lax.rem(bits(key, shape), span)
    return (minval + offset.astype(dtype)).astype(dtype)


def bernoulli(key: Any, p: float | Any = 0.5, shape: Sequence[int] | None = None) -> Any:
    """Booleans that are True with probability ``p``."""
    if shape is None:
        shape = fnp.shape(p)
    return uniform(key, shape) < p


def permutation(key: Any, x: int | Any) -> Any:
    """A random permutation of ``arange(x)`` (int) or of ``x``'s first axis."""
    n = int(x) if isinstance(x, (int, np.integer)) else fnp.shape(x)[0]
    # sort the indices by two random words: ties (and the bias they cause) become negligible
    words = bits(key, (2, n))
    order = lax.sort([words[0], words[1], lax.iota(fnp.int32, (n,))], num_keys=2)[2]
    if isinstance(x, (int, np.integer)):
        return order.astype(fnp.int32)
    return fnp.take(x, order, axis=0)


def choice(key: Any, a: int | Any, shape: Sequence[int] = (), replace: bool = True, p: Any = None) -> Any:
    """Random samples from ``arange(a)`` (int) or the first axis of ``a``.

    With ``p``, samples follow those probabilities (with replacement); without
    replacement, the first entries of a random permutation.
    """
    n = int(a) if isinstance(a, (int, np.integer)) else fnp.shape(a)[0]
    shape = tuple(shape)
    count = int(np.prod(shape, dtype=np.int64))
    if not replace:
        if count > n:
            raise ValueError(f"choice: cannot take {count} samples from {n} without replacement")
        idx = fnp.reshape(permutation(key, n)[:count], shape)
    elif p is None:
        idx = randint(key, shape, 0, n)
    else:
        cdf = fnp.cumsum(fnp.asarray(p, fnp.float32))
        u = uniform(key, shape) * cdf[-1]
        idx = fnp.sum((u[..., None] >= cdf).astype(fnp.int32), axis=-1)
        idx = fnp.minimum(idx, n - 1)
    return idx if isinstance(a, (int, np.integer)) else fnp.take(a, idx, axis=0)
