"""Transposed products: ``transpose(dot_general(a, b))`` lowered as ``dot_general(b, a)``.

The derivative of ``x @ w.T`` with respect to ``w`` is a product followed by a transpose
(JAX's transpose rule of ``dot_general`` writes it so). Lowered as written, the product is
stored in its own layout and each reader of the gradient (an optimizer's moment updates)
reads it transposed: a strided gather per element, 3-5 GB/s in the GPT step's AdamW update
against 20 for a streaming read. When the transpose only exchanges the two operands' free
dimensions, the product with the operands exchanged *is* the transposed result, so it is
computed that way and stored once in the layout its readers want (XLA's algebraic
simplifier folds the same pattern).

Other transposes of a product that keep its last dimension last (attention's heads merged
back: (batch, heads, tokens, dim) -> (batch, tokens, heads, dim)) are folded where the CPU's
GEMM templates compute the product (``stores_permuted``): the product's eqn gets an
``out_permutation`` and the template stores each row of the result where the transpose puts it.
"""
from __future__ import annotations

import collections
from typing import Callable

from fgrad.core.ir import Eqn, Jaxpr, Var
from fgrad.ops.contraction import dot_general_p
from fgrad.ops.shape import transpose_p


def fold_transposed_products(jaxpr: Jaxpr, stores_permuted: Callable[[Eqn], bool] = lambda eqn: False) -> Jaxpr:
    """``jaxpr`` with each transpose that is the only reader of a ``dot_general`` and exchanges its
    operands' free dimensions replaced by the product of the exchanged operands (computed where
    the original product was), and each other one that keeps the last dimension last folded into
    its product as an ``out_permutation`` where ``stores_permuted(product)``; ``jaxpr`` itself
    when there is none."""
    uses = collections.Counter(id(a) for eqn in jaxpr.eqns for a in eqn.invars if isinstance(a, Var))
    uses.update(id(a) for a in jaxpr.outvars if isinstance(a, Var))
    products = {id(eqn.outvars[0]): k for k, eqn in enumerate(jaxpr.eqns) if eqn.primitive is dot_general_p}
    replaced: dict[int, Eqn] = {}
    dropped: set[int] = set()
    for k, eqn in enumerate(jaxpr.eqns):
        source = eqn.invars[0] if eqn.primitive is transpose_p else None
        at = products.get(id(source)) if isinstance(source, Var) else None
        if at is None or uses[id(source)] != 1:
            continue
        product = jaxpr.eqns[at]
        permutation = tuple(eqn.params["permutation"])
        swapped = _exchanged_dimensions(product, permutation)
        if swapped is not None:
            lhs, rhs = product.invars
            replaced[at] = Eqn(dot_general_p, [rhs, lhs], [eqn.outvars[0]],
                               {**product.params, "dimension_numbers": swapped})
            dropped.add(k)
        elif _rows_stay_contiguous(product, permutation) and stores_permuted(product):
            replaced[at] = Eqn(dot_general_p, product.invars, [eqn.outvars[0]],
                               {**product.params, "out_permutation": permutation})
            dropped.add(k)
    if not replaced:
        return jaxpr
    eqns = [replaced.get(k, eqn) for k, eqn in enumerate(jaxpr.eqns) if k not in dropped]
    return Jaxpr(jaxpr.constvars, jaxpr.invars, eqns, jaxpr.outvars)


def _exchanged_dimensions(product: Eqn, permutation) -> tuple | None:
    """The dimension numbers of ``product`` with its operands exchanged, when ``permutation`` of
    its result (batch, lhs free, rhs free) is (batch, rhs free, lhs free); else None."""
    (lc, rc), (lb, rb) = product.params["dimension_numbers"]
    lhs, rhs = product.invars
    nb = len(lb)
    nl, nr = lhs.aval.ndim - len(lc) - nb, rhs.aval.ndim - len(rc) - nb
    exchanged = [*range(nb), *range(nb + nl, nb + nl + nr), *range(nb, nb + nl)]
    if list(permutation) != exchanged:
        return None
    return ((tuple(rc), tuple(lc)), (tuple(rb), tuple(lb)))


def _rows_stay_contiguous(product: Eqn, permutation: tuple) -> bool:
    """Whether the result's last dimension, its only rhs free dimension, stays last: each row
    the GEMM computes is then stored contiguously in the transposed layout."""
    (lc, rc), (lb, rb) = product.params["dimension_numbers"]
    rhs = product.invars[1]
    last = len(permutation) - 1
    return rhs.aval.ndim - len(rc) - len(rb) == 1 and permutation[last] == last
