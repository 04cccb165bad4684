"""Sorting: ``sort_p`` sorts several same-shaped operands along one dimension by the first
``num_keys`` of them (stable; NaNs last, as in NumPy). ``argsort`` is the sort of ``(x, iota)``.

The derivative of a sort is a permutation of the tangent. fgrad applies a permutation
with ``sort_p`` itself: sorting ``(inverse_perm, t)`` by its first operand yields
``t[perm]``. That form is linear in ``t``, and its transpose is the inverse
permutation, which is again a sort (by ``perm``), so no gather/scatter is needed.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from fgrad.core import partition
from fgrad.core.partition import partition_rules
from fgrad.core.primitive import Primitive
from fgrad.core.trace import get_aval
from fgrad.core.types import ShapedArray
from fgrad.ops._util import shape_error
from fgrad.core.rules import is_undefined, jvp_rules, transpose_rules, vmap_rules
from fgrad.ops.shape import broadcast_in_dim, moveaxis

__all__ = ["sort", "argsort"]


def _sort_rule(*operands: ShapedArray, dimension: int, num_keys: int) -> list[ShapedArray]:
    if len({a.shape for a in operands}) != 1:
        raise shape_error("sort", f"operands must share one shape, got {[a.str_short() for a in operands]}")
    if not 0 <= dimension < operands[0].ndim:
        raise shape_error("sort", f"dimension {dimension} is out of range for rank {operands[0].ndim}")
    if not 1 <= num_keys <= len(operands):
        raise shape_error("sort", f"num_keys={num_keys} must be between 1 and {len(operands)}")
    return [ShapedArray(a.shape, a.dtype) for a in operands]


def _sort_impl(*operands: np.ndarray, dimension: int, num_keys: int) -> list[np.ndarray]:
    keys = []
    for k in operands[:num_keys]:   # a complex key orders by its real, then its imaginary part (JAX)
        k = np.moveaxis(k, dimension, -1)
        keys += [k.real, k.imag] if np.iscomplexobj(k) else [k]
    if len(keys) == 1:
        order = np.argsort(keys[0], axis=-1, kind="stable")
    else:  # lexsort takes its primary key last
        order = np.lexsort(keys[::-1], axis=-1)
    return [np.moveaxis(np.take_along_axis(np.moveaxis(x, dimension, -1), order, axis=-1), -1, dimension)
            for x in operands]


sort_p = Primitive("sort", multiple_results=True)
sort_p.def_impl(_sort_impl)
sort_p.def_abstract_eval(_sort_rule)


def _iota(shape: Sequence[int], dimension: int) -> Any:
    """int32 indices along ``dimension``, broadcast to ``shape`` (built from primitives)."""
    index = np.arange(shape[dimension], dtype=np.int32)
    return broadcast_in_dim(index, tuple(shape), (dimension,))


def _permute(x: Any, inverse_perm: Any, dimension: int) -> Any:
    """``x`` reordered so that position ``i`` holds ``x[perm[i]]`` (given ``perm``'s inverse)."""
    return sort_p.bind(inverse_perm, x, dimension=dimension, num_keys=1)[1]


def _sort_jvp(primals, tangents, dimension, num_keys):
    shape = get_aval(primals[0]).shape
    iota = _iota(shape, dimension)
    *outs, perm = sort_p.bind(*primals, iota, dimension=dimension, num_keys=num_keys)
    inverse_perm = sort_p.bind(perm, iota, dimension=dimension, num_keys=1)[1]
    return outs, [None if t is None else _permute(t, inverse_perm, dimension) for t in tangents]


def _sort_transpose(cts, *operands, dimension, num_keys):
    """Transpose of ``sort(keys..., t)`` in a non-key operand ``t``: the inverse permutation."""
    if num_keys != 1 or any(is_undefined(k) for k in operands[:num_keys]):
        raise NotImplementedError("sort is linear only in its non-key operands with a single key")
    inverse_perm = operands[0]
    perm = sort_p.bind(inverse_perm, _iota(get_aval(inverse_perm).shape, dimension),
                       dimension=dimension, num_keys=1)[1]
    return [None] + [_permute(ct, perm, dimension) if is_undefined(x) else None
                     for ct, x in zip(cts[1:], operands[1:])]


def _sort_vmap(axis, vals, dims, dimension, num_keys):
    vals = [moveaxis(v, d, 0, axis.size) for v, d in zip(vals, dims)]
    return sort_p.bind(*vals, dimension=dimension + 1, num_keys=num_keys), [0] * len(vals)


jvp_rules[sort_p] = _sort_jvp
transpose_rules[sort_p] = _sort_transpose
vmap_rules[sort_p] = _sort_vmap


def _normalize_dimension(op: str, x: Any, dimension: int) -> int:
    ndim = get_aval(x).ndim
    if not -ndim <= dimension < ndim:
        raise ValueError(f"{op}: dimension {dimension} is out of range for an operand of rank {ndim}")
    return dimension % ndim


def sort(operand: Any | Sequence[Any], dimension: int = -1, is_stable: bool = True,
         num_keys: int = 1) -> Any:
    """``jax.lax.sort(operand, dimension=-1, is_stable=True, num_keys=1)``: sort ``operand`` (one
    array, or a sequence of same-shaped arrays, giving a tuple) along ``dimension``, ordered
    lexicographically by the first ``num_keys`` of them; NaNs go last, -0.0 ties with 0.0.

    fgrad always sorts stably; ``is_stable=False`` only allows any order of equal keys, so the
    stable order is a correct answer to it too.

    >>> sort([keys, values])        # values reordered like keys   # doctest: +SKIP
    """
    single = not isinstance(operand, (tuple, list))
    ops = [operand] if single else list(operand)
    if not ops:
        raise ValueError("sort: needs at least one operand")
    dimension = _normalize_dimension("sort", ops[0], dimension)
    outs = sort_p.bind(*ops, dimension=dimension, num_keys=int(num_keys))
    return outs[0] if single else tuple(outs)


def argsort(x: Any, dimension: int = -1) -> Any:
    """The int32 indices that sort ``x`` along ``dimension`` (stable)."""
    aval = get_aval(x)
    if aval.ndim == 0:
        raise ValueError("argsort: needs an operand of rank >= 1, got a scalar")
    dimension = _normalize_dimension("argsort", x, dimension)
    return sort_p.bind(x, _iota(aval.shape, dimension), dimension=dimension, num_keys=1)[1]


# --- partition rules (the data-parallel pass, fgrad.core.partition) ----------------------------------------

partition_rules[sort_p] = partition.along_dims(lambda p: (p["dimension"],), reduces=False)
