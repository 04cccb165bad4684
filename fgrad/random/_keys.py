"""PRNG keys as JAX has them, and the threefry2x32 operations on them.

Two kinds of key, both accepted by every sampler:

- **typed keys** from ``key(seed)``: a ``PRNGKeyArray`` of shape ``()`` (or ``(n, ...)`` after
  ``split``) whose dtype is ``key<fry>``. It is a pytree with one leaf, its ``uint32[..., 2]``
  key data, so it passes through ``jit``, ``vmap``, ``grad`` and control flow like an array.
- **raw keys** from ``PRNGKey(seed)``: plain ``uint32[2]`` arrays (``split`` gives ``uint32[n, 2]``).

``split``/``fold_in`` return the kind they were given. The bits are JAX 0.10's defaults:
threefry2x32 with ``jax_threefry_partitionable=True``: element ``i`` (row-major) of an output of
``shape`` is the cipher of the 64-bit counter ``i`` (high word, low word) under the key.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from fgrad import lax
from fgrad import numpy as fnp
from fgrad import tree
from fgrad.config import config
from fgrad.core import dtypes
from fgrad.core.trace import get_aval

IMPL_NAME = "threefry2x32"
_UINT32_MASK = 0xFFFFFFFF


class KeyDtype:
    """The dtype of a typed key array (JAX's ``key<fry>``): names the PRNG implementation."""

    __slots__ = ("impl",)

    def __init__(self, impl: str = IMPL_NAME) -> None:
        self.impl = impl

    @property
    def name(self) -> str:
        return "key<fry>"

    def __repr__(self) -> str:
        return self.name

    __str__ = __repr__

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, str):
            return other in (self.name, self.impl)
        return isinstance(other, KeyDtype) and other.impl == self.impl

    def __hash__(self) -> int:
        return hash(("KeyDtype", self.impl))


class PRNGKeyArray:
    """An array of typed PRNG keys (JAX's ``key<fry>`` arrays), made by ``key``/``wrap_key_data``.

    Its shape excludes the key data's trailing ``2``; index, reshape and iterate it like an
    array of keys. ``key_data(keys)`` gives the ``uint32[..., 2]`` words underneath.
    """

    __slots__ = ("_base", "_impl")
    __array_priority__ = 100

    def __init__(self, impl: str, base: Any) -> None:
        # no checks here: pytree unflattening passes arbitrary leaves (vmap's in_axes, tree_map)
        self._impl = impl
        self._base = base

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(fnp.shape(self._base)[:-1])

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def dtype(self) -> KeyDtype:
        return KeyDtype(self._impl)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of unsized object: a single PRNG key (shape ())")
        return self.shape[0]

    def __iter__(self):
        if not self.shape:
            raise TypeError("iteration over a single PRNG key (shape ())")
        return (self[i] for i in range(self.shape[0]))

    def __getitem__(self, index: Any) -> "PRNGKeyArray":
        index = index if isinstance(index, tuple) else (index,)
        return PRNGKeyArray(self._impl, self._base[(*index, slice(None))])

    def reshape(self, *shape: Any) -> "PRNGKeyArray":
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        sizes = np.empty(self.shape, dtype=np.bool_).reshape(shape).shape   # resolves -1
        return PRNGKeyArray(self._impl, fnp.reshape(self._base, (*sizes, 2)))

    def ravel(self) -> "PRNGKeyArray":
        return self.reshape(-1)

    flatten = ravel

    @property
    def T(self) -> "PRNGKeyArray":  # noqa: N802 (NumPy's name)
        order = tuple(reversed(range(self.ndim))) + (self.ndim,)
        return PRNGKeyArray(self._impl, fnp.transpose(self._base, order))

    def __eq__(self, other: Any) -> Any:  # type: ignore[override]
        if not isinstance(other, PRNGKeyArray):
            return NotImplemented
        return fnp.all(self._base == other._base, axis=-1)

    def __ne__(self, other: Any) -> Any:  # type: ignore[override]
        if not isinstance(other, PRNGKeyArray):
            return NotImplemented
        return fnp.any(self._base != other._base, axis=-1)

    __hash__ = None  # type: ignore[assignment]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError("a typed PRNG key array has no NumPy value; use fgrad.random.key_data(keys) "
                        "for its uint32 words")

    def copy(self) -> "PRNGKeyArray":
        return PRNGKeyArray(self._impl, self._base)

    def __repr__(self) -> str:
        return f"Array({self.shape}, dtype={self.dtype.name}) overlaying:\n{self._base!r}"


tree.register_pytree_node(PRNGKeyArray, lambda k: ((k._base,), k._impl),
                          lambda impl, children: PRNGKeyArray(impl, children[0]))


# --- reading keys ------------------------------------------------------------------------------

def _key_error(fn: str, got: str) -> TypeError:
    return TypeError(f"fgrad.random.{fn}: expected a key (from fgrad.random.key(seed) or PRNGKey(seed), "
                     f"or split/fold_in of one), got {got}")


def key_base(key: Any, fn: str, batched: bool = False) -> tuple[Any, bool]:
    """``(uint32[..., 2] key data, whether key was typed)``; a single key unless ``batched``."""
    if isinstance(key, PRNGKeyArray):
        base, typed = key._base, True
    else:
        try:
            base = fnp.asarray(key)
        except TypeError:
            raise _key_error(fn, type(key).__name__) from None
        typed = False
        aval = get_aval(base)
        if aval.dtype != dtypes.uint32 or aval.shape[-1:] != (2,):
            raise _key_error(fn, aval.str_short())
    shape = tuple(fnp.shape(base)[:-1])
    if shape and not batched:
        raise ValueError(f"fgrad.random.{fn} accepts a single key, but was given a key array of shape "
                         f"{shape} != (). Use fgrad.vmap for batching.")
    return base, typed


def rewrap(typed: bool, base: Any) -> Any:
    """Key data returned in the kind of key the caller passed."""
    return PRNGKeyArray(IMPL_NAME, base) if typed else base


def _check_impl(impl: Any, fn: str) -> str:
    name = impl.impl if isinstance(impl, KeyDtype) else impl
    if name not in (None, IMPL_NAME):
        raise NotImplementedError(f"fgrad.random.{fn}: only the 'threefry2x32' PRNG is implemented "
                                  f"(JAX's default), got impl={impl!r}")
    return IMPL_NAME


# --- making keys -------------------------------------------------------------------------------

def _python_seed_words(seed: int, itemsize: int) -> np.ndarray:
    if not -2**63 <= seed < 2**63:
        raise OverflowError(f"fgrad.random.key: seed {seed} does not fit in a signed 64-bit integer")
    if not (config.enable_x64 and itemsize == 8):
        return np.array([0, seed & _UINT32_MASK], np.uint32)   # narrowed to 32 bits first, as JAX does
    seed &= 2**64 - 1
    return np.array([seed >> 32, seed & _UINT32_MASK], np.uint32)


def _seed_words(seed: Any, fn: str) -> Any:
    """JAX's threefry seed: ``[seed >> 32, seed & 0xFFFFFFFF]`` of the (canonicalised) integer seed."""
    if isinstance(seed, PRNGKeyArray):
        raise TypeError(f"fgrad.random.{fn} accepts a scalar seed, but was given a PRNG key")
    if isinstance(seed, (bool, np.bool_)):
        raise TypeError(f"fgrad.random.{fn}: the seed must be an integer, got a bool")
    if isinstance(seed, int):
        return fnp.asarray(_python_seed_words(seed, 8))
    if isinstance(seed, np.integer):
        return fnp.asarray(_python_seed_words(int(seed), seed.dtype.itemsize))
    seed = fnp.asarray(seed)
    aval = get_aval(seed)
    if aval.shape != ():
        raise TypeError(f"fgrad.random.{fn} accepts a scalar seed, but was given an array of shape "
                        f"{aval.shape} != (). Use fgrad.vmap for batching")
    if aval.dtype.kind not in "iu":
        raise TypeError(f"fgrad.random.{fn}: the seed must be an integer scalar, got {aval.str_short()}")
    low = lax.convert_element_type(seed, fnp.uint32)
    if aval.dtype.itemsize == 8:
        high = lax.convert_element_type(lax.shift_right_logical(seed, fnp.asarray(32, aval.dtype)), fnp.uint32)
    else:
        high = fnp.zeros((), fnp.uint32)
    return fnp.stack([high, low])


def key(seed: int | Any, *, impl: Any = None) -> PRNGKeyArray:
    """``jax.random.key(seed, *, impl=None)``: a typed PRNG key (shape ``()``, dtype ``key<fry>``).

    The seed is a 64- or 32-bit integer (a Python int or an integer scalar array, traced or
    not); without x64 a Python int is first narrowed to its low 32 bits, as in JAX.

    >>> k = fgrad.random.key(0)            # doctest: +SKIP
    >>> k1, k2 = fgrad.random.split(k)     # doctest: +SKIP
    """
    _check_impl(impl, "key")
    return PRNGKeyArray(IMPL_NAME, _seed_words(seed, "key"))


def PRNGKey(seed: int | Any, *, impl: Any = None) -> Any:  # noqa: N802 (JAX's name)
    """``jax.random.PRNGKey(seed, *, impl=None)``: a raw (legacy) key, ``uint32[2]``.

    Same words as ``key_data(key(seed))``: ``[seed >> 32, seed & 0xFFFFFFFF]``.
    """
    _check_impl(impl, "PRNGKey")
    return _seed_words(seed, "PRNGKey")


def key_data(keys: Any) -> Any:
    """``jax.random.key_data(keys)``: the ``uint32[..., 2]`` words under a key array (raw keys
    are returned as they are)."""
    base, _ = key_base(keys, "key_data", batched=True)
    return base


def wrap_key_data(key_bits_array: Any, *, impl: Any = None) -> PRNGKeyArray:
    """``jax.random.wrap_key_data(key_bits_array, *, impl=None)``: typed keys over ``uint32[..., 2]``."""
    _check_impl(impl, "wrap_key_data")
    if isinstance(key_bits_array, PRNGKeyArray):
        raise TypeError("fgrad.random.wrap_key_data: expected uint32 key data, got a typed key array")
    base = fnp.asarray(key_bits_array)
    aval = get_aval(base)
    if aval.dtype != dtypes.uint32 or aval.shape[-1:] != (2,):
        raise TypeError(f"fgrad.random.wrap_key_data: threefry2x32 key data is uint32[..., 2], got {aval.str_short()}")
    return PRNGKeyArray(IMPL_NAME, base)


def key_impl(keys: Any) -> str:
    """``jax.random.key_impl(keys)``: the PRNG implementation's name, ``'threefry2x32'``."""
    key_base(keys, "key_impl", batched=True)
    return IMPL_NAME


def key_dtype(impl: Any = None) -> KeyDtype:
    """``jax.random.key_dtype(impl=None)``: the dtype of typed keys of ``impl`` (``key<fry>``)."""
    return KeyDtype(_check_impl(impl, "key_dtype"))


def clone(key: Any) -> Any:
    """``jax.random.clone(key)``: the same key (JAX's marker for deliberate reuse; no checker here)."""
    key_base(key, "clone", batched=True)
    return key


# --- threefry streams ----------------------------------------------------------------------------

def canonical_shape(shape: Any, fn: str) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise TypeError(f"fgrad.random.{fn}: shape must be a tuple of ints, got {shape!r}") from None
    if any(s < 0 for s in shape):
        raise ValueError(f"fgrad.random.{fn}: shape must be non-negative, got {shape}")
    return shape


def threefry_words(base: Any, shape: tuple[int, ...]) -> tuple[Any, Any]:
    """The two cipher words for each counter ``0 .. prod(shape)-1`` (row-major) under the key."""
    size = math.prod(shape)
    if size == 0:
        zeros = fnp.zeros(shape, fnp.uint32)
        return zeros, zeros
    if size >= 2**32:
        raise NotImplementedError(f"fgrad.random: {size} values need 64-bit counters; at most 2**32 - 1 per call")
    counter = lax.reshape(lax.iota(fnp.uint32, size), shape) if shape else fnp.zeros((), fnp.uint32)
    return lax.threefry2x32(base[0], base[1], np.uint32(0), counter)


def random_bits(base: Any, bit_width: int, shape: tuple[int, ...]) -> Any:
    """JAX's ``random_bits`` for threefry (partitionable): 64 bits are the two words, 32 bits
    their xor, 16 and 8 bits the xor's low bits. Returned as uint8/uint16/uint32/uint64."""
    hi, lo = threefry_words(base, shape)
    if bit_width == 64:
        wide = dtypes.canonicalize(np.uint64)
        if wide != np.uint64:
            raise TypeError("fgrad.random: 64-bit random values need fgrad.config.update('enable_x64', True)")
        return lax.shift_left(lax.convert_element_type(hi, wide), fnp.asarray(32, wide)) | \
            lax.convert_element_type(lo, wide)
    word = hi ^ lo
    if bit_width == 32:
        return word
    if bit_width == 16:
        return lax.convert_element_type(word, fnp.uint16)   # the low 16 bits
    if bit_width == 8:
        return lax.convert_element_type(word, fnp.uint8)
    raise TypeError(f"fgrad.random: random bits come in 8, 16, 32 or 64 bits, not {bit_width}")


def split_base(base: Any, shape: tuple[int, ...]) -> Any:
    hi, lo = threefry_words(base, shape)
    return fnp.stack([hi, lo], axis=len(shape))


def split(key: Any, num: int | Sequence[int] = 2) -> Any:
    """``jax.random.split(key, num=2)``: ``num`` new keys (``num`` may be a shape tuple).

    Key ``i`` (row-major) is threefry2x32 of the counter ``(0, i)`` under ``key``; typed keys
    give a key array of shape ``num``, raw keys ``uint32[*num, 2]``.

    >>> key, subkey = fgrad.random.split(key)     # doctest: +SKIP
    """
    base, typed = key_base(key, "split")
    shape = canonical_shape(num, "split")
    return rewrap(typed, split_base(base, shape))


def fold_in(key: Any, data: int | Any) -> Any:
    """``jax.random.fold_in(key, data)``: a new key from ``key`` and a 32-bit integer
    (a step number, a device index): threefry2x32 of the counter ``(0, data)``."""
    base, typed = key_base(key, "fold_in")
    if isinstance(data, (int, np.integer)) and not isinstance(data, (bool, np.bool_)):
        if not 0 <= int(data) < 2**32:
            raise OverflowError(f"fgrad.random.fold_in: data {int(data)} is out of bounds for uint32")
        data = np.uint32(int(data))
    data = fnp.asarray(data)
    aval = get_aval(data)
    if aval.shape != ():
        raise TypeError(f"fgrad.random.fold_in accepts a scalar, but was given an array of shape {aval.shape}"
                        " != (). Use fgrad.vmap for batching.")
    if aval.dtype.kind not in "iu":
        raise TypeError(f"fgrad.random.fold_in: data must be an integer scalar, got {aval.str_short()}")
    y1, y2 = lax.threefry2x32(base[0], base[1], np.uint32(0), lax.convert_element_type(data, fnp.uint32))
    return rewrap(typed, fnp.stack([y1, y2]))


def bits(key: Any, shape: Sequence[int] = (), dtype: Any = None) -> Any:
    """``jax.random.bits(key, shape=(), dtype=None)``: uniformly random unsigned integers.

    ``dtype`` is uint8, uint16, uint32 or uint64 (uint64 needs x64; the default is uint64 with
    x64, else uint32). Bit-equal to JAX.
    """
    base, _ = key_base(key, "bits")
    dtype = dtypes.canonicalize(np.uint64 if dtype is None else dtype)
    if dtype.kind != "u":
        raise ValueError(f"dtype argument to fgrad.random.bits must be an unsigned int dtype, got {dtype.name}")
    return random_bits(base, dtype.itemsize * 8, canonical_shape(shape, "bits"))
