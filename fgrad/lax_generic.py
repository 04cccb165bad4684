"""``lax.reduce`` with any reduction function: built from other lax functions and ``vmap`` (so
it sits above the interpreters)."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from fgrad import tree
from fgrad.core import dtypes
from fgrad.core.trace import get_aval
from fgrad.ops import elementwise as ew
from fgrad.ops import extremum
from fgrad.ops import reduction as rd
from fgrad.ops import shape as sh
from fgrad.transforms.vmap import vmap

__all__ = ["reduce"]

#: reductions with a primitive of their own: (function, the reduce, its identity for a dtype)
_MONOIDS = {ew.add: (rd.reduce_sum, lambda d: 0), ew.mul: (rd.reduce_prod, lambda d: 1),
            ew.max: (rd.reduce_max, lambda d: _lowest(d)), ew.min: (rd.reduce_min, lambda d: _highest(d)),
            extremum.max: (rd.reduce_max, lambda d: _lowest(d)), extremum.min: (rd.reduce_min, lambda d: _highest(d))}


def _lowest(dtype: np.dtype):
    return -np.inf if dtypes.is_float(dtype) else (False if dtype == np.bool_ else np.iinfo(dtype).min)


def _highest(dtype: np.dtype):
    return np.inf if dtypes.is_float(dtype) else (True if dtype == np.bool_ else np.iinfo(dtype).max)


def reduce(operands: Any, init_values: Any, computation: Callable, dimensions: Sequence[int]) -> Any:
    """``jax.lax.reduce(operands, init_values, computation, dimensions)``: reduce ``operands``
    (an array or a pytree of arrays of one shape) over ``dimensions`` with ``computation``
    (scalars -> scalars, pytrees like ``init_values``; it must be associative and commutative,
    as XLA's reduce requires). ``lax.add``/``mul``/``max``/``min`` on one operand use their
    own reductions (differentiable); any other computation is applied pairwise, as a tree of
    vectorised calls (log2 of the reduced size of them), and folded into the init values once."""
    leaves, treedef = tree.tree_flatten(operands)
    inits, init_tree = tree.tree_flatten(init_values)
    if init_tree != treedef:
        raise TypeError(f"lax.reduce: operands {treedef} and init_values {init_tree} must have the same "
                        "structure")
    if not leaves:
        raise TypeError("lax.reduce: needs at least one operand")
    shape = get_aval(leaves[0]).shape
    if any(get_aval(x).shape != shape for x in leaves):
        raise TypeError(f"lax.reduce: operands must have one shape, got {[get_aval(x).shape for x in leaves]}")
    if any(not -len(shape) <= int(d) < len(shape) for d in dimensions):
        raise ValueError(f"lax.reduce: dimensions {tuple(dimensions)} out of range for shape {shape}")
    dims = tuple(sorted({int(d) % len(shape) for d in dimensions}))
    if len(leaves) == 1 and computation in _MONOIDS:
        reduce_fn, identity = _MONOIDS[computation]
        dtype = get_aval(leaves[0]).dtype
        out = reduce_fn(leaves[0], dims)
        init = inits[0]
        if not (isinstance(init, (int, float, bool, np.generic)) and init == identity(dtype)):
            out = computation(sh.full_like(out, init), out)
        return tree.tree_unflatten(treedef, [out])
    return tree.tree_unflatten(treedef, _pairwise(leaves, inits, computation, treedef, shape, dims))


def _pairwise(leaves: list, inits: list, computation: Callable, treedef, shape: tuple, dims: tuple) -> list:
    """The reduction as a tree: halves combined elementwise until one element per output, which
    is then combined with the init values."""
    keep = [d for d in range(len(shape)) if d not in dims]
    out_shape = tuple(shape[d] for d in keep)
    n = int(np.prod([shape[d] for d in dims], dtype=np.int64))
    rows = int(np.prod(out_shape, dtype=np.int64))
    xs = [sh.reshape(sh.transpose(x, (*keep, *dims)), (rows, n)) for x in leaves]

    def combine(a: list, b: list) -> list:
        """``computation`` on each pair of scalars of ``a`` and ``b`` (flat lists of 1-D arrays)."""
        scalar = lambda a_, b_: tree.tree_leaves(
            computation(tree.tree_unflatten(treedef, list(a_)), tree.tree_unflatten(treedef, list(b_))))
        return list(vmap(scalar)(tuple(a), tuple(b)))

    column = lambda x, k: sh.reshape(sh.slice(x, (0, k), (rows, k + 1)), (rows,))
    while n > 1:
        if n % 2:       # fold the last column into the first (the init values join only once, at the end)
            first = combine([column(x, 0) for x in xs], [column(x, n - 1) for x in xs])
            xs = [sh.concatenate([sh.reshape(f, (rows, 1)), sh.slice(x, (0, 1), (rows, n - 1))], 1)
                  for f, x in zip(first, xs)]
            n -= 1
        half = n // 2
        flat = lambda part: [sh.reshape(sh.slice(x, (0, part * half), (rows, part * half + half)), (rows * half,))
                             for x in xs]
        xs = [sh.reshape(y, (rows, half)) for y in combine(flat(0), flat(1))]
        n = half
    if n == 0:
        return [sh.full(out_shape, i, get_aval(x).dtype) for x, i in zip(leaves, inits)]
    firsts = [sh.reshape(x, (rows,)) for x in xs]
    folded = combine([sh.full((rows,), i, get_aval(x).dtype) for x, i in zip(leaves, inits)], firsts)
    return [sh.reshape(y, out_shape) for y in folded]
