"""fgrad.flatten_util: ``jax.flatten_util.ravel_pytree``, a pytree of arrays as one flat vector
and back (for optimisers and solvers written for vectors)."""
from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np

from fgrad import lax
from fgrad import numpy as fnp
from fgrad.tree import tree_flatten, tree_unflatten

__all__ = ["ravel_pytree"]


def ravel_pytree(pytree: Any) -> tuple[Any, Callable[[Any], Any]]:
    """``jax.flatten_util.ravel_pytree(pytree)``: ``(flat, unravel)``, the leaves raveled and
    concatenated into one 1-D array of their promoted dtype (float32 for an empty tree), and
    the function taking such a vector back to a pytree of the original shapes and dtypes.

    >>> flat, unravel = ravel_pytree({'w': fnp.ones((2, 2)), 'b': fnp.zeros(3)})
    >>> flat.shape
    (7,)
    >>> unravel(flat)['w'].shape
    (2, 2)
    """
    leaves, treedef = tree_flatten(pytree)
    arrays = [fnp.asarray(leaf) for leaf in leaves]
    dtype = fnp.result_type(*leaves) if leaves else fnp.dtype(fnp.float32)
    flat = fnp.concatenate([fnp.ravel(a).astype(dtype) for a in arrays]) if arrays else fnp.zeros((0,), dtype)
    shapes = [fnp.shape(a) for a in arrays]
    dtypes = [a.dtype for a in arrays]
    sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]

    def unravel(vector: Any) -> Any:
        """The pytree ``vector`` (shaped like ``flat``) stands for."""
        vector = fnp.asarray(vector)
        if fnp.shape(vector) != (sum(sizes),):
            raise ValueError(f"unravel takes a 1-D array of {sum(sizes)} elements (the size of the raveled "
                             f"pytree), got shape {fnp.shape(vector)}")
        if vector.dtype != dtype:
            raise TypeError(f"unravel function given array of dtype {vector.dtype}, but expected dtype {dtype}")
        pieces, start = [], 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # complex -> real drops the imaginary part, as in JAX
            for shape, leaf_dtype, size in zip(shapes, dtypes, sizes):
                piece = fnp.reshape(vector[start:start + size], shape)
                pieces.append(lax.convert_element_type(piece, leaf_dtype))
                start += size
        return tree_unflatten(treedef, pieces)

    return flat, unravel
