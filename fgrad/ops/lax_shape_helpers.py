"""``jax.lax``'s shape-level helpers, composed of fgrad's shape primitives (so each one is
differentiable, batchable and lowered wherever its parts are): split, tile, stack, unstack,
collapse, broadcast_shapes, broadcast_to_rank, broadcast_like, empty and stage."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from fgrad.core import dtypes
from fgrad.core.trace import get_aval
from fgrad.ops import shape as sh
from fgrad.ops._util import canonical_axes
from fgrad.ops.lax_composites import broadcast

__all__ = ["split", "tile", "stack", "unstack", "collapse", "broadcast_shapes", "broadcast_to_rank",
           "broadcast_like", "empty", "stage"]


def _axis(op: str, axis: Any, ndim: int) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{op}: axis must be an int, got {axis!r}")
    return canonical_axes(op, (int(axis),), ndim)[0]


def split(operand: Any, sizes: Sequence[int], axis: int = 0) -> list:
    """``jax.lax.split(operand, sizes, axis=0)``: ``operand`` cut along ``axis`` into consecutive
    pieces of the given ``sizes``, which must be nonnegative and sum to the axis's length.

    >>> [p.shape for p in split(fnp.arange(5), (2, 3))]   # doctest: +SKIP
    [(2,), (3,)]
    """
    aval = get_aval(operand)
    axis = _axis("split", axis, aval.ndim)
    sizes = tuple(int(s) for s in sizes)
    if any(s < 0 for s in sizes):
        raise ValueError(f"split: sizes must be nonnegative, got {list(sizes)}")
    if sum(sizes) != aval.shape[axis]:
        raise ValueError(f"split: the sizes {list(sizes)} sum to {sum(sizes)}, but dimension {axis} of the operand "
                         f"{aval.str_short()} has length {aval.shape[axis]}; they must be equal")
    starts = np.cumsum((0,) + sizes)
    return [sh.slice_in_dim(operand, int(a), int(b), 1, axis) for a, b in zip(starts[:-1], starts[1:])]


def tile(operand: Any, reps: Sequence[int]) -> Any:
    """``jax.lax.tile(operand, reps)``: ``operand`` repeated ``reps[d]`` times along each dimension
    ``d`` (``len(reps)`` must equal the rank, unlike ``numpy.tile``)."""
    aval = get_aval(operand)
    reps = tuple(int(r) for r in reps)
    if len(reps) != aval.ndim:
        raise TypeError(f"tile: reps length must be equal to the ndim of x, got len(reps)={len(reps)} and "
                        f"x.ndim={aval.ndim}; use fgrad.numpy.tile to tile with fewer or more reps")
    if any(r < 0 for r in reps):
        raise ValueError(f"tile: reps must be nonnegative, got {reps}")
    n = aval.ndim
    # [r0, s0, r1, s1, ...]: each dimension's copies outside its own elements, then merged
    target = tuple(v for r, s in zip(reps, aval.shape) for v in (r, s))
    tiled = sh.broadcast_in_dim(operand, target, tuple(2 * d + 1 for d in range(n)))
    return sh.reshape(tiled, tuple(r * s for r, s in zip(reps, aval.shape)))


def stack(operands: Sequence[Any], axis: int = 0) -> Any:
    """``jax.lax.stack(operands, axis=0)``: arrays of one shape and dtype joined along a new
    ``axis``."""
    operands = list(operands)
    if not operands:
        raise ValueError("stack: needs at least one array to stack")
    avals = [get_aval(x) for x in operands]
    if len({a.dtype for a in avals}) > 1:
        raise TypeError("stack: requires arguments to have the same dtypes, got "
                        f"{', '.join(a.dtype.name for a in avals)}; convert them with lax.convert_element_type")
    if len({a.shape for a in avals}) > 1:
        raise ValueError("stack: all input arrays must have the same shape, got "
                         f"{', '.join(str(a.shape) for a in avals)}")
    axis = _axis("stack", axis, avals[0].ndim + 1)
    return sh.concatenate([sh.expand_dims(x, (axis,)) for x in operands], axis)


def unstack(x: Any, axis: int = 0) -> tuple:
    """``jax.lax.unstack(x, axis=0)``: the slices of ``x`` along ``axis``, as a tuple of arrays
    of one rank less."""
    aval = get_aval(x)
    if aval.ndim == 0:
        raise ValueError("unstack: requires an array of rank >= 1, got a scalar")
    axis = _axis("unstack", axis, aval.ndim)
    return tuple(sh.squeeze(sh.index_in_dim(x, i, axis), (axis,)) for i in range(aval.shape[axis]))


def collapse(operand: Any, start_dimension: int, stop_dimension: int | None = None) -> Any:
    """``jax.lax.collapse(operand, start_dimension, stop_dimension=None)``: the dimensions
    ``[start_dimension, stop_dimension)`` (Python slice rules; ``None``: to the end) merged
    into one, row-major.

    >>> collapse(fnp.ones((2, 3, 4)), 0, 2).shape   # doctest: +SKIP
    (6, 4)
    """
    shape = get_aval(operand).shape
    lo, hi, _ = builtins_slice(start_dimension, stop_dimension).indices(len(shape))
    if hi < lo:
        raise ValueError(f"collapse: invalid dimension range {shape}[{start_dimension}:{stop_dimension}]: the stop "
                         "dimension comes before the start")
    return sh.reshape(operand, shape[:lo] + (math.prod(shape[lo:hi]),) + shape[hi:])


builtins_slice = slice   # fgrad's lax has its own ``slice``; collapse needs Python's


def broadcast_shapes(*shapes: Sequence[int]) -> tuple:
    """``jax.lax.broadcast_shapes(*shapes)``: the NumPy broadcast of the given shapes (a tuple
    of ints); ``ValueError`` if they are incompatible."""
    if not shapes:
        raise ValueError("broadcast_shapes: needs at least one shape")
    shapes = [tuple(int(d) for d in s) for s in shapes]
    rank = max(len(s) for s in shapes)
    padded = [(1,) * (rank - len(s)) + s for s in shapes]
    out = []
    for sizes in zip(*padded):
        big = {d for d in sizes if d != 1}
        if len(big) > 1:
            raise ValueError(f"broadcast_shapes: incompatible shapes for broadcasting: shapes={shapes}")
        out.append(big.pop() if big else 1)
    return tuple(out)


def broadcast_to_rank(x: Any, rank: int) -> Any:
    """``jax.lax.broadcast_to_rank(x, rank)``: ``x`` with leading dimensions of size 1 added
    up to rank ``rank`` (unchanged if it has that rank or more)."""
    ndim = get_aval(x).ndim
    return x if ndim >= rank else broadcast(x, (1,) * (rank - ndim))


def broadcast_like(arr: Any, like_arr: Any) -> Any:
    """``jax.lax.broadcast_like(arr, like_arr)``: ``arr`` broadcast (NumPy rules: trailing
    dimensions aligned) to the shape of ``like_arr``."""
    aval, shape = get_aval(arr), get_aval(like_arr).shape
    lead = len(shape) - aval.ndim
    if lead < 0 or any(s not in (1, t) for s, t in zip(aval.shape, shape[lead:])):
        raise ValueError(f"broadcast_like: incompatible types for broadcasting: input type={aval.str_short()} "
                         f"and requested shape {shape}")
    return sh.broadcast_in_dim(arr, shape, tuple(range(lead, len(shape))))


def empty(shape: Sequence[int], dtype: Any, *, out_sharding: Any = None) -> Any:
    """``jax.lax.empty(shape, dtype)``: an array whose contents must not be relied on (fgrad
    fills it with zeros, as JAX does on the CPU). ``out_sharding`` must be ``None``: fgrad places
    arrays with ``device_put`` / ``shard``."""
    if out_sharding is not None:
        raise ValueError("empty: out_sharding is not supported by fgrad; place the result with "
                         "fgrad.device_put or inside fgrad.shard")
    return sh.full(tuple(int(d) for d in shape), 0, dtypes.canonicalize(dtype))


def stage(x: Any) -> Any:
    """``jax.lax.stage(x)``: the identity that lifts ``x`` (a Python scalar, a NumPy array) into
    the active trace; outside any trace it returns an fgrad array."""
    aval = get_aval(x)
    return sh.broadcast_in_dim_p.bind(x, shape=aval.shape, broadcast_dimensions=tuple(range(aval.ndim)))
