"""Jacobians and Hessians: ``jacfwd`` (one ``jvp`` per input element), ``jacrev`` (one ``vjp``
per output element), both batched with ``vmap``, and ``hessian = jacfwd(jacrev(f))``."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from fgrad import tree
from fgrad.core.array import Array
from fgrad.core.trace import get_aval
from fgrad.core.types import ShapedArray
from fgrad.ops.shape import reshape, transpose
from fgrad.transforms.jvp import _check_float_inputs, jvp, zeros_like_aval
from fgrad.core import dtypes
from fgrad.transforms.vjp import _normalize_argnums, check_complex, check_real, vjp
from fgrad.transforms.vmap import vmap


def _basis(aval: ShapedArray):
    """``aval.size`` one-hot arrays stacked: shape (size, *aval.shape)."""
    eye = np.eye(aval.size, dtype=aval.dtype).reshape((aval.size, *aval.shape))
    return Array(eye)


def _check_outputs(mode: str, holomorphic: bool, out) -> None:
    if holomorphic:
        check_complex(f"jac{mode}", "outputs", tree.tree_leaves(out))
    elif mode == "rev":
        check_real("jacrev", tree.tree_leaves(out))


def _jacobian(fun: Callable, argnums: int | Sequence[int], has_aux: bool, mode: str,
              holomorphic: bool = False) -> Callable:

    def jac_fun(*args, **kwargs):
        nums = _normalize_argnums(argnums, len(args), "jacobian")
        diff_args = tuple(args[i] for i in nums)
        _check_float_inputs(tree.tree_flatten_with_path(diff_args)[0], f"jac{mode}")
        if holomorphic:
            check_complex(f"jac{mode}", "inputs", tree.tree_leaves(diff_args))
        elif mode == "fwd":
            check_real("jacfwd", tree.tree_leaves(diff_args), "input")

        def partial_fun(*diff):
            full = list(args)
            for i, d in zip(nums, diff):
                full[i] = d
            return fun(*full, **kwargs)

        in_leaves, in_tree = tree.tree_flatten(diff_args)
        in_avals = [get_aval(x) for x in in_leaves]
        aux = None
        if mode == "rev":
            res = vjp(partial_fun, *diff_args, has_aux=has_aux)
            out, vjp_fn = res[0], res[1]
            aux = res[2] if has_aux else None
            _check_outputs(mode, holomorphic, out)
            out_leaves, out_tree = tree.tree_flatten(out)
            out_avals = [get_aval(o) for o in out_leaves]
            rows = []  # rows[k][i]: d out_k / d in_i, shape (size_k, *in_i.shape)
            for k, oa in enumerate(out_avals):
                def pull(b, k=k):
                    cts = [b if j == k else zeros_like_aval(a) for j, a in enumerate(out_avals)]
                    return tree.tree_leaves(vjp_fn(tree.tree_unflatten(out_tree, cts)))
                rows.append(vmap(pull)(_basis(oa)))
            blocks = [[reshape(rows[k][i], (*oa.shape, *ia.shape)) for i, ia in enumerate(in_avals)]
                      for k, oa in enumerate(out_avals)]
        else:
            cols = []  # cols[i][k]: shape (size_i, *out_k.shape)
            for i, ia in enumerate(in_avals):
                def push(b, i=i):
                    tangents = [b if j == i else zeros_like_aval(a) for j, a in enumerate(in_avals)]
                    f = partial_fun if not has_aux else (lambda *d: partial_fun(*d)[0])
                    out, t_out = jvp(f, diff_args, tuple(tree.tree_unflatten(in_tree, tangents)))
                    return tree.tree_leaves(t_out)
                cols.append(vmap(push)(_basis(ia)))
            res = partial_fun(*diff_args)
            out = res[0] if has_aux else res
            aux = res[1] if has_aux else None
            _check_outputs(mode, holomorphic, out)
            out_leaves, out_tree = tree.tree_flatten(out)
            out_avals = [get_aval(o) for o in out_leaves]
            blocks = []
            for k, oa in enumerate(out_avals):
                row = []
                for i, ia in enumerate(in_avals):
                    col = reshape(cols[i][k], (ia.size, oa.size))
                    row.append(reshape(transpose(col, (1, 0)), (*oa.shape, *ia.shape)))
                blocks.append(row)
        jac_rows = [tree.tree_unflatten(in_tree, row) for row in blocks]
        jac_rows = [r[0] if isinstance(argnums, int) else r for r in jac_rows]
        jac = tree.tree_unflatten(out_tree, jac_rows)
        return (jac, aux) if has_aux else jac

    return jac_fun


def jacrev(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False,
           holomorphic: bool = False) -> Callable:
    """``jax.jacrev(fun, argnums=0, has_aux=False, holomorphic=False)``: the Jacobian of ``fun``
    by reverse mode (one vjp per output element, batched with vmap). Outputs must be real unless
    ``holomorphic=True`` (then inputs and outputs are complex, and the Jacobian is complex).

    Each block has shape ``out.shape + in.shape``; the result is an output-shaped
    tree of argument-shaped trees.
    """
    return _jacobian(fun, argnums, has_aux, mode="rev", holomorphic=holomorphic)


def hessian(fun: Callable, argnums: int | Sequence[int] = 0, holomorphic: bool = False) -> Callable:
    """``jax.hessian(fun, argnums=0, holomorphic=False)``: the Hessian of a scalar function,
    ``jacfwd(jacrev(fun))``."""
    return jacfwd(jacrev(fun, argnums, holomorphic=holomorphic), argnums, holomorphic=holomorphic)


def jacfwd(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False,
           holomorphic: bool = False) -> Callable:
    """``jax.jacfwd(fun, argnums=0, has_aux=False, holomorphic=False)``: the Jacobian of ``fun``
    by forward mode, one ``jvp`` per input element, batched with vmap. Inputs must be real
    unless ``holomorphic=True`` (then inputs and outputs are complex).

    The result has shape ``out.shape + in.shape`` for each (output, argument) pair.
    """
    return _jacobian(fun, argnums, has_aux, mode="fwd", holomorphic=holomorphic)
