"""Primitives outside the arithmetic families: ``stop_gradient`` and ``threefry2x32``, the
counter-based block cipher that fgrad's PRNG is built on.

Threefry-2x32 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11; the
Random123 library) with 20 rounds, as JAX's PRNG uses it. It encrypts a pair of 32-bit
counter words under a pair of 32-bit key words; the same (key, counter) always gives
the same bits, on every backend.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from fgrad.core import dtypes
from fgrad.core import partition
from fgrad.core.partition import partition_rules
from fgrad.core.primitive import Primitive
from fgrad.core.types import ShapedArray
from fgrad.ops import elementwise as ew
from fgrad.ops._util import elementwise_shape, shape_error
from fgrad.core.rules import jvp_rules, not_differentiable, transpose_rules, vmap_rules
from fgrad import tree

__all__ = ["stop_gradient", "checkpoint_name", "threefry2x32"]


# --- stop_gradient ---------------------------------------------------------------------------

def _identity_rule(x: ShapedArray) -> ShapedArray:
    return x


stop_gradient_p = Primitive("stop_gradient")
stop_gradient_p.def_impl(lambda x: x)
stop_gradient_p.def_abstract_eval(_identity_rule)
not_differentiable.add(stop_gradient_p)  # its output carries a zero tangent
vmap_rules[stop_gradient_p] = lambda axis, vals, dims: (stop_gradient_p.bind(vals[0]), dims[0])
partition_rules[stop_gradient_p] = partition.elementwise(ew.always_linear)


def stop_gradient(x: Any) -> Any:
    """The identity on every leaf of the pytree ``x``, with zero derivative.

    >>> fgrad.grad(lambda x: x * stop_gradient(x))(3.0)   # d/dx of x * const   # doctest: +SKIP
    Array(3., dtype=float32)
    """
    return tree.tree_map(stop_gradient_p.bind, x)


# --- checkpoint_name -------------------------------------------------------------------------

checkpoint_name_p = Primitive("name")
checkpoint_name_p.def_impl(lambda x, name: x)
checkpoint_name_p.def_abstract_eval(lambda x, name: x)
# the tangent is not named: a policy saves the primal value the name marks
jvp_rules[checkpoint_name_p] = lambda primals, tangents, name: (checkpoint_name_p.bind(primals[0], name=name),
                                                                tangents[0])
transpose_rules[checkpoint_name_p] = lambda ct, x, name: [ct]
vmap_rules[checkpoint_name_p] = lambda axis, vals, dims, name: (checkpoint_name_p.bind(vals[0], name=name), dims[0])
partition_rules[checkpoint_name_p] = partition.elementwise(ew.always_linear)


def checkpoint_name(x: Any, name: Any) -> Any:
    """``jax.ad_checkpoint.checkpoint_name(x, name)``: every leaf of ``x`` unchanged, marked with
    ``name`` for ``checkpoint``'s name policies (``save_only_these_names`` and the others).

    >>> h = checkpoint_name(fnp.tanh(x @ w), "hidden")   # doctest: +SKIP
    """
    return tree.tree_map(lambda leaf: checkpoint_name_p.bind(leaf, name=name), x)


# --- threefry2x32 ----------------------------------------------------------------------------

# rotation distances of Threefry-2x32, one per round, repeating every 8 rounds
_ROTATIONS = (13, 15, 26, 6, 17, 29, 16, 24)
_KEY_SCHEDULE_PARITY = 0x1BD11BDA  # Threefish's C240: makes the third key word
_ROUNDS = 20


def threefry_rounds(key1, key2, x1, x2, add: Callable, xor: Callable, rotate_left: Callable):
    """Threefry-2x32 written once over the word operations it needs.

    The NumPy implementation passes uint32-array arithmetic; ``threefry2x32_expanded``
    passes lax primitives (a backend without a native cipher kernel can lower that); the native
    jit's kernel passes kernel-IR register operations.
    """
    keys = (key1, key2, xor(xor(key1, key2), _KEY_SCHEDULE_PARITY))
    x1, x2 = add(x1, keys[0]), add(x2, keys[1])
    for r in range(_ROUNDS):
        x1 = add(x1, x2)
        x2 = xor(rotate_left(x2, _ROTATIONS[r % 8]), x1)
        if r % 4 == 3:  # inject the key schedule every four rounds
            s = r // 4 + 1
            x1 = add(x1, keys[s % 3])
            x2 = add(add(x2, keys[(s + 1) % 3]), s)
    return x1, x2


def _threefry_numpy(key1, key2, x1, x2):
    shape = np.broadcast_shapes(*(np.shape(a) for a in (key1, key2, x1, x2)))
    words = [np.broadcast_to(np.asarray(a, np.uint32), shape).ravel() for a in (key1, key2, x1, x2)]

    def rotate_left(v, distance):
        return (v << np.uint32(distance)) | (v >> np.uint32(32 - distance))

    # 1-d uint32 arrays wrap around silently (NumPy scalars would warn on overflow)
    y1, y2 = threefry_rounds(*words, add=np.add, xor=np.bitwise_xor, rotate_left=rotate_left)
    return [y1.reshape(shape), y2.reshape(shape)]


def _threefry_rule(key1, key2, x1, x2) -> list[ShapedArray]:
    avals = (key1, key2, x1, x2)
    for name, aval in zip(("key1", "key2", "x1", "x2"), avals):
        if aval.dtype != dtypes.uint32:
            raise shape_error("threefry2x32", f"{name} must be uint32, got {aval.str_short()}",
                              "Convert with lax.convert_element_type(x, fgrad.numpy.uint32)")
    shape = elementwise_shape("threefry2x32", avals)
    return [ShapedArray(shape, dtypes.uint32)] * 2


threefry2x32_p = Primitive("threefry2x32", multiple_results=True)
threefry2x32_p.def_impl(_threefry_numpy)
threefry2x32_p.def_abstract_eval(_threefry_rule)
not_differentiable.add(threefry2x32_p)  # bits: integer-valued, no derivative
partition_rules[threefry2x32_p] = partition.elementwise()
vmap_rules[threefry2x32_p] = ew.elementwise_vmap_rule(threefry2x32_p)


def _as_uint32(x: Any) -> Any:
    if type(x) is int:
        if not 0 <= x < 2 ** 32:
            raise ValueError(f"threefry2x32: the Python int {x} is not a uint32 value (0 <= x < 2**32)")
        return np.uint32(x)
    return x


def threefry2x32(key1, key2, x1, x2) -> tuple[Any, Any]:
    """Encrypt the counter words ``(x1, x2)`` under the key ``(key1, key2)``, elementwise.

    All four are uint32 arrays of one shape, or rank-0 (they broadcast). Returns two
    uint32 arrays ``(y1, y2)``.

    >>> threefry2x32(0, 0, 0, 0)   # Random123's known answer   # doctest: +SKIP
    (Array(1797259609, dtype=uint32), Array(2579123966, dtype=uint32))
    """
    y1, y2 = threefry2x32_p.bind(*(_as_uint32(a) for a in (key1, key2, x1, x2)))
    return y1, y2


def threefry2x32_expanded(key1, key2, x1, x2) -> tuple[Any, Any]:
    """``threefry2x32`` composed of lax add/xor/shift primitives (same bits): the form a
    backend without a native threefry kernel lowers."""
    def rotate_left(v, distance):
        return ew.bitwise_or(ew.shift_left(v, distance), ew.shift_right_logical(v, 32 - distance))

    args = [_as_uint32(a) for a in (key1, key2, x1, x2)]
    return threefry_rounds(*args, add=ew.add, xor=ew.bitwise_xor, rotate_left=rotate_left)
