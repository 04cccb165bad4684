"""Products and contractions: dot, matmul, tensordot, inner, outer, vdot, einsum.

Everything lowers to ``lax.dot_general`` (contraction + batch dimensions), plus
transposes, reshapes and reductions, so gradients and vmap come from those
primitives' rules.
"""
from __future__ import annotations

from typing import Any, Sequence

from fgrad import lax
from fgrad.ops.contraction import canonical_precision
from fgrad.core import dtypes
from fgrad.core.trace import get_aval
from fgrad.numpy._manip import broadcast_arrays, diagonal, ravel
from fgrad.numpy._math import conj, multiply
from fgrad.numpy._reductions import sum as reduce_sum
from fgrad.numpy._util import broadcast_shapes_for, canonical_axis, promote, static_int, to_array

__all__ = ["dot", "matmul", "vdot", "vecdot", "inner", "outer", "tensordot", "einsum", "kron"]


def _operands(op: str, a: Any, b: Any) -> tuple[Any, Any]:
    a, b = to_array(a, op), to_array(b, op)
    if get_aval(a).dtype == get_aval(b).dtype:
        return a, b
    a, b = promote(op, a, b, shape=False)
    return a, b


def _contract(a, b, a_contract: Sequence[int], b_contract: Sequence[int],
              a_batch: Sequence[int] = (), b_batch: Sequence[int] = ()):
    """dot_general with the shape check done here, so the error names the NumPy-level op. Bool
    operands give a bool product (an "or" of "and"s, as JAX's): counted in int32, then != 0."""
    dims = ((tuple(a_contract), tuple(b_contract)), (tuple(a_batch), tuple(b_batch)))
    if get_aval(a).dtype == dtypes.bool_:
        count = lax.dot_general(lax.convert_element_type(a, dtypes.int32), lax.convert_element_type(b, dtypes.int32),
                                dims)
        return lax.ne(count, lax.full_like(count, 0))
    return lax.dot_general(a, b, dims)


def _check_inner(op: str, sa: tuple, sb: tuple, ia: int, ib: int, fix: str) -> None:
    if sa[ia] != sb[ib]:
        raise TypeError(f"{op}: shapes {sa} and {sb} are not aligned: dimension {ia % len(sa)} of the first "
                        f"({sa[ia]}) != dimension {ib % len(sb)} of the second ({sb[ib]}). {fix}")


def _matmul(a, b):
    a, b = _operands("matmul", a, b)
    sa, sb = get_aval(a).shape, get_aval(b).shape
    if not sa or not sb:
        raise ValueError(f"matmul: operands must be at least 1-D (got shapes {sa} and {sb}); use * "
                         "(fnp.multiply) for scalars")
    a_vec, b_vec = len(sa) == 1, len(sb) == 1
    fix = ("The last axis of the first operand must match the second-to-last (or only) axis of the "
           "second; transpose one of them (x.T / fnp.swapaxes)")
    if a_vec or b_vec:  # a vector operand is contracted directly, no reshapes needed
        ib = 0 if b_vec else len(sb) - 2
        _check_inner("matmul", sa, sb, -1, ib, fix)
        return _contract(a, b, (len(sa) - 1,), (ib,))
    _check_inner("matmul", sa, sb, -1, -2, fix)
    batch_a, batch_b = sa[:-2], sb[:-2]
    if not batch_b:
        return _contract(a, b, (len(sa) - 1,), (0,))
    if not batch_a:
        out = _contract(a, b, (1,), (len(sb) - 2,))  # (n, *batch_b, m): move n next to m
        return lax.transpose(out, (*range(1, len(batch_b) + 1), 0, len(batch_b) + 1))
    batch = broadcast_shapes_for("matmul", batch_a, batch_b)
    a = _broadcast_batch(a, batch)
    b = _broadcast_batch(b, batch)
    nb = len(batch)
    return _contract(a, b, (nb + 1,), (nb,), tuple(range(nb)), tuple(range(nb)))


def _broadcast_batch(x, batch: tuple[int, ...]):
    aval = get_aval(x)
    shape = batch + aval.shape[-2:]
    if aval.shape == shape:
        return x
    lead = len(shape) - aval.ndim
    return lax.broadcast_in_dim(x, shape, tuple(range(lead, len(shape))))


def _dot(a, b):
    a, b = _operands("dot", a, b)
    sa, sb = get_aval(a).shape, get_aval(b).shape
    if not sa or not sb:
        return multiply(a, b)
    ib = 0 if len(sb) == 1 else len(sb) - 2
    _check_inner("dot", sa, sb, -1, ib, "The last axis of the first operand must match the "
                 "second-to-last (or only) axis of the second")
    return _contract(a, b, (len(sa) - 1,), (ib,))


def _vdot(a, b):
    a, b = _operands("vdot", a, b)
    a = conj(a)
    sa, sb = get_aval(a).size, get_aval(b).size
    if sa != sb:
        raise TypeError(f"vdot: arrays of sizes {sa} and {sb} have different numbers of elements")
    return _contract(ravel(a), ravel(b), (0,), (0,))


def vecdot(x1, x2, /, *, axis: int = -1):
    """Dot products of vectors along ``axis``, broadcasting the other axes.

    The contracted axes must have the same size (they do not broadcast), and the result
    keeps the operands' promoted dtype (``vecdot`` of int32 arrays is int32), as the array
    API standard and JAX specify.
    """
    x1, x2 = _operands("vecdot", x1, x2)
    s1, s2 = get_aval(x1).shape, get_aval(x2).shape
    axis = static_int("vecdot", "axis", axis)
    for shape in (s1, s2):
        if not -len(shape) <= axis < len(shape):
            raise ValueError(f"vecdot: axis {axis} is out of range for an operand of shape {shape}")
    if s1[axis] != s2[axis]:
        raise ValueError(f"vecdot: the contracted axes differ: shapes {s1} and {s2} have sizes "
                         f"{s1[axis]} and {s2[axis]} along axis {axis}; they must be equal (they do not broadcast)")
    x1, x2 = broadcast_arrays(conj(x1), x2)   # the standard's vecdot conjugates x1 (complex)
    return reduce_sum(multiply(x1, x2), axis=axis, dtype=get_aval(x1).dtype)


def _inner(a, b):
    a, b = _operands("inner", a, b)
    sa, sb = get_aval(a).shape, get_aval(b).shape
    if not sa or not sb:
        return multiply(a, b)
    _check_inner("inner", sa, sb, -1, -1, "The last axes must have the same size")
    return _contract(a, b, (len(sa) - 1,), (len(sb) - 1,))


def outer(a, b, /):
    """The outer product of the flattened arrays: ``out[i, j] = a[i] * b[j]``."""
    a, b = ravel(to_array(a, "outer")), ravel(to_array(b, "outer"))
    return multiply(lax.reshape(a, (get_aval(a).size, 1)), lax.reshape(b, (1, get_aval(b).size)))


def kron(a, b, /):
    """The Kronecker product of two arrays."""
    a, b = _operands("kron", a, b)
    sa, sb = get_aval(a).shape, get_aval(b).shape
    nd = max(len(sa), len(sb))
    sa, sb = (1,) * (nd - len(sa)) + sa, (1,) * (nd - len(sb)) + sb
    a = lax.reshape(a, tuple(x for s in sa for x in (s, 1)))
    b = lax.reshape(b, tuple(x for s in sb for x in (1, s)))
    return lax.reshape(multiply(a, b), tuple(x * y for x, y in zip(sa, sb)))


def _tensordot(a, b, axes=2):
    a, b = _operands("tensordot", a, b)
    sa, sb = get_aval(a).shape, get_aval(b).shape
    if isinstance(axes, (list, tuple)):
        if len(axes) != 2:
            raise TypeError(f"tensordot: axes must be an int or a pair of axis lists, got {axes!r}")
        ax_a, ax_b = ([x] if not isinstance(x, (list, tuple)) else list(x) for x in axes)
    else:
        n = static_int("tensordot", "axes", axes)
        if n < 0 or n > min(len(sa), len(sb)):
            raise ValueError(f"tensordot: axes={n} is out of range for shapes {sa} and {sb}")
        ax_a, ax_b = list(range(len(sa) - n, len(sa))), list(range(n))
    if len(ax_a) != len(ax_b):
        raise TypeError(f"tensordot: axis lists {ax_a} and {ax_b} have different lengths")
    ax_a = [canonical_axis("tensordot", x, len(sa)) for x in ax_a]
    ax_b = [canonical_axis("tensordot", x, len(sb)) for x in ax_b]
    for i, j in zip(ax_a, ax_b):
        if sa[i] != sb[j]:
            raise TypeError(f"tensordot: shape mismatch for sum: axis {i} of {sa} has size {sa[i]} but "
                            f"axis {j} of {sb} has size {sb[j]}")
    return _contract(a, b, ax_a, ax_b)


# --- einsum ----------------------------------------------------------------------------------------------

_ELLIPSIS = "..."


def _split_term(op_index: int, term: str, ndim: int, n_ell_max: int | None) -> list:
    """Labels of one operand's term: letters, plus ('...', k) labels for its ellipsis dims."""
    if term.count(_ELLIPSIS) > 1 or (term.replace(_ELLIPSIS, "").count(".")):
        raise ValueError(f"einsum: invalid subscript {term!r} (at most one '...', and no other dots)")
    for ch in term.replace(_ELLIPSIS, ""):
        if not ch.isalpha():
            raise ValueError(f"einsum: invalid subscript character {ch!r} in {term!r}; use letters")
    if _ELLIPSIS not in term:
        if len(term) != ndim:
            raise ValueError(f"einsum: operand {op_index} has {ndim} dimensions but its subscripts "
                             f"{term!r} name {len(term)}")
        return list(term)
    head, tail = term.split(_ELLIPSIS)
    n_ell = ndim - len(head) - len(tail)
    if n_ell < 0:
        raise ValueError(f"einsum: operand {op_index} has {ndim} dimensions, fewer than its subscripts "
                         f"{term!r} name")
    return list(head) + [(_ELLIPSIS, k) for k in range(-n_ell, 0)] + list(tail)


def _parse_einsum(subscripts: str, shapes: Sequence[tuple]) -> tuple[list[list], list]:
    spec = subscripts.replace(" ", "")
    explicit = "->" in spec
    if spec.count("->") > 1:
        raise ValueError(f"einsum: {subscripts!r} has more than one '->'")
    lhs, out = spec.split("->") if explicit else (spec, None)
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"einsum: {subscripts!r} names {len(terms)} operands but {len(shapes)} were given")
    labels = [_split_term(i, t, len(s), None) for i, (t, s) in enumerate(zip(terms, shapes))]
    n_ell = max((sum(isinstance(l, tuple) for l in ls) for ls in labels), default=0)
    ell = [(_ELLIPSIS, k) for k in range(-n_ell, 0)]
    if not explicit:
        counts: dict = {}
        for ls in labels:
            for l in ls:
                if not isinstance(l, tuple):
                    counts[l] = counts.get(l, 0) + 1
        return labels, ell + sorted(l for l, c in counts.items() if c == 1)
    if out.count(_ELLIPSIS) > 1 or out.replace(_ELLIPSIS, "").count("."):
        raise ValueError(f"einsum: invalid output subscripts {out!r}")
    if _ELLIPSIS in out:
        head, tail = out.split(_ELLIPSIS)
        out_labels = list(head) + ell + list(tail)
    else:
        if n_ell:
            raise ValueError("einsum: the operands have '...' dimensions but the output subscripts do not "
                             "say where they go; add '...' to the output")
        out_labels = list(out)
    present = {l for ls in labels for l in ls}
    for l in out_labels:
        if not isinstance(l, tuple) and not l.isalpha():
            raise ValueError(f"einsum: invalid output subscript character {l!r}")
        if l not in present:
            raise ValueError(f"einsum: output subscript {l!r} does not appear in the inputs")
        if out_labels.count(l) > 1:
            raise ValueError(f"einsum: output subscript {l!r} appears more than once")
    return labels, out_labels


def _label_sizes(labels: Sequence[list], shapes: Sequence[tuple]) -> dict:
    sizes: dict = {}
    for i, (ls, shape) in enumerate(zip(labels, shapes)):
        for l, s in zip(ls, shape):
            known = sizes.get(l, 1)
            if s != 1 and known != 1 and s != known:
                name = "..." if isinstance(l, tuple) else repr(l)
                raise TypeError(f"einsum: subscript {name} has size {known} in one operand and {s} in "
                                f"operand {i}; sizes must match (or be 1 to broadcast)")
            sizes[l] = max(known, s) if s != 0 and known != 0 else 0
    return sizes


def _take_diagonals(x, labels: list) -> tuple[Any, list]:
    """Reduce repeated labels within one operand to their diagonal."""
    while True:
        repeated = next((l for l in labels if labels.count(l) > 1), None)
        if repeated is None:
            return x, labels
        i = labels.index(repeated)
        j = labels.index(repeated, i + 1)
        if get_aval(x).shape[i] != get_aval(x).shape[j]:
            raise TypeError(f"einsum: repeated subscript {repeated!r} has sizes {get_aval(x).shape[i]} and "
                            f"{get_aval(x).shape[j]} in one operand")
        x = diagonal(x, 0, i, j)
        labels = [l for k, l in enumerate(labels) if k not in (i, j)] + [repeated]


def _drop_broadcast_dims(x, labels: list, sizes: dict) -> tuple[Any, list]:
    """Remove size-1 axes whose label has a larger size elsewhere (they broadcast)."""
    shape = get_aval(x).shape
    keep = [k for k, (l, s) in enumerate(zip(labels, shape)) if not (s == 1 and sizes[l] != 1)]
    if len(keep) == len(labels):
        return x, labels
    return lax.reshape(x, tuple(shape[k] for k in keep)), [labels[k] for k in keep]


def _sum_labels(x, labels: list, drop: set) -> tuple[Any, list]:
    axes = tuple(k for k, l in enumerate(labels) if l in drop)
    if not axes:
        return x, labels
    return lax.reduce_sum(x, axes), [l for l in labels if l not in drop]


def _contract_pair(x, lx: list, y, ly: list, keep: set) -> tuple[Any, list]:
    """Contract two operands: shared labels that are kept become batch dims, others are summed."""
    shared = [l for l in lx if l in ly]
    batch = [l for l in shared if l in keep]
    summed = [l for l in shared if l not in keep]
    x_free = [l for l in lx if l not in shared]
    y_free = [l for l in ly if l not in shared]
    if summed:
        out = _contract(x, y, [lx.index(l) for l in summed], [ly.index(l) for l in summed],
                        [lx.index(l) for l in batch], [ly.index(l) for l in batch])
        return out, batch + x_free + y_free
    # no summed label: a broadcast product, laid out as (batch, x_free, y_free)
    xt = lax.transpose(x, tuple(lx.index(l) for l in batch + x_free))
    yt = lax.transpose(y, tuple(ly.index(l) for l in batch + y_free))
    sx, sy = get_aval(xt).shape, get_aval(yt).shape
    nb = len(batch)
    xt = lax.reshape(xt, sx + (1,) * len(y_free))
    yt = lax.reshape(yt, sy[:nb] + (1,) * len(x_free) + sy[nb:])
    return multiply(xt, yt), batch + x_free + y_free


def _result_size(lx: list, ly: list, keep: set, sizes: dict) -> int:
    n = 1
    for l in set(lx) | set(ly):
        if l in keep or not (l in lx and l in ly):
            n *= sizes[l]
    return n


def einsum(subscripts: str, /, *operands, optimize: Any = "greedy", precision: Any = None,
           preferred_element_type: Any = None):
    """Einstein summation: ``einsum('ij,jk->ik', a, b)`` is ``a @ b``.

    Supports explicit (``->``) and implicit output, ``...`` broadcasting, repeated
    subscripts (diagonals, traces) and any number of operands (contracted pairwise,
    smallest intermediate first).

    ``preferred_element_type`` sets the accumulation and result dtype (as in JAX: float32
    inputs with ``preferred_element_type=float64`` sum in float64). ``optimize`` only picks
    the contraction order, which does not change the result: True/False and the strategy
    names JAX passes on ('greedy', 'optimal', 'auto', 'dp', ...) are accepted, and fgrad
    always uses its own order (smallest intermediate first); other values raise a
    ValueError. ``precision`` is validated as JAX does (None, 'default', 'high', 'highest',
    'fastest', 'float32', 'tensorfloat32', 'bfloat16', 'bfloat16_3x', or a pair of them)
    and otherwise has no effect, as on JAX's CPU backend: products are computed at the
    precision the global ``matmul_precision`` config sets (full float32 by default, which
    is at least what any of these values asks for).
    """
    _check_einsum_options(optimize, precision)
    if not isinstance(subscripts, str):
        raise TypeError("einsum: the first argument must be a subscripts string such as 'ij,jk->ik' "
                        "(the interleaved operand/sublist form is not supported)")
    if not operands:
        raise ValueError("einsum: at least one operand is required")
    arrays = promote("einsum", *[to_array(o, "einsum") for o in operands], shape=False)
    arrays = _to_accumulation_dtype(arrays, preferred_element_type)
    shapes = [get_aval(a).shape for a in arrays]
    labels, out_labels = _parse_einsum(subscripts, shapes)
    sizes = _label_sizes(labels, shapes)
    pending = []
    for i, (x, ls) in enumerate(zip(arrays, labels)):
        x, ls = _take_diagonals(x, list(ls))
        x, ls = _drop_broadcast_dims(x, ls, sizes)
        elsewhere = set(out_labels).union(*[labels[j] for j in range(len(labels)) if j != i])
        x, ls = _sum_labels(x, ls, set(ls) - elsewhere)
        pending.append((x, ls))
    while len(pending) > 1:
        i, j = _pick_pair(pending, out_labels, sizes)
        (x, lx), (y, ly) = pending[i], pending[j]
        rest = [p for k, p in enumerate(pending) if k not in (i, j)]
        keep = set(out_labels).union(*[ls for _, ls in rest])
        x, lx = _sum_labels(x, lx, set(lx) - keep - set(ly))
        y, ly = _sum_labels(y, ly, set(ly) - keep - set(lx))
        pending = rest + [_contract_pair(x, lx, y, ly, keep)]
    x, ls = pending[0]
    x, ls = _sum_labels(x, ls, set(ls) - set(out_labels))
    x = _materialise_missing(x, ls, out_labels, sizes)
    ls = ls + [l for l in out_labels if l not in ls]
    out = lax.transpose(x, tuple(ls.index(l) for l in out_labels))
    if preferred_element_type is not None:
        out = lax.convert_element_type(out, dtypes.canonicalize(preferred_element_type))
    return out


_OPTIMIZE_STRATEGIES = ("greedy", "optimal", "auto", "dp", "branch-all", "branch-2", "random-greedy")


def _check_einsum_options(optimize: Any, precision: Any) -> None:
    """Reject an ``optimize`` or ``precision`` value einsum cannot honour (instead of ignoring it)."""
    if not (isinstance(optimize, bool) or optimize in _OPTIMIZE_STRATEGIES or optimize is None):
        raise ValueError(f"einsum: optimize={optimize!r} is not a contraction strategy; pass True/False "
                         f"or one of {_OPTIMIZE_STRATEGIES} (it only picks the contraction order)")
    canonical_precision(precision, "einsum")


def _to_accumulation_dtype(arrays: list, preferred_element_type: Any) -> list:
    """Operands converted to ``preferred_element_type`` when it is at least as wide as their
    common dtype, so the contraction accumulates in it (narrower targets convert the result)."""
    if preferred_element_type is None:
        return arrays
    target = dtypes.canonicalize(preferred_element_type)
    current = get_aval(arrays[0]).dtype
    if dtypes.promote((current, False), (target, False))[0] != target or current == target:
        return arrays
    return [lax.convert_element_type(a, target) for a in arrays]


def _materialise_missing(x, labels: list, out_labels: list, sizes: dict):
    """Append broadcast axes for output labels whose only occurrences were size-1 broadcasts."""
    missing = [l for l in out_labels if l not in labels]
    if not missing:
        return x
    shape = get_aval(x).shape
    return lax.broadcast_in_dim(x, shape + tuple(sizes[l] for l in missing), tuple(range(len(shape))))


def _pick_pair(pending: list, out_labels: list, sizes: dict) -> tuple[int, int]:
    """The pair of operands whose contraction gives the smallest intermediate (leftmost on ties)."""
    best = None
    for i in range(len(pending)):
        for j in range(i + 1, len(pending)):
            rest = [ls for k, (_, ls) in enumerate(pending) if k not in (i, j)]
            keep = set(out_labels).union(*rest)
            cost = _result_size(pending[i][1], pending[j][1], keep, sizes)
            if best is None or cost < best[0]:
                best = (cost, i, j)
    return best[1], best[2]


# --- the public products: JAX's keyword options around the bodies above ----------------------------

def _with_options(op: str, body, a, b, precision: Any, preferred_element_type: Any, *rest):
    """``body(a, b, *rest)`` with JAX's ``precision`` (validated: products are computed at the
    ``matmul_precision`` config's precision, as on JAX's CPU backend) and
    ``preferred_element_type`` (the result dtype; a wider one is also the accumulation dtype)."""
    canonical_precision(precision, op)
    if preferred_element_type is None:
        return body(a, b, *rest)
    a, b = _operands(op, a, b)
    a, b = _to_accumulation_dtype([a, b], preferred_element_type)
    out = body(a, b, *rest)
    target = dtypes.canonicalize(preferred_element_type)
    return out if get_aval(out).dtype == target else lax.convert_element_type(out, target)


def matmul(a, b, /, *, precision: Any = None, preferred_element_type: Any = None):
    """``jnp.matmul(a, b, *, precision=None, preferred_element_type=None)``: the matrix product
    with NumPy's rules: stacks of matrices broadcast over the leading axes; a 1-D first (second)
    operand is a row (column) vector whose axis is removed.

    >>> (fnp.ones((5, 2, 3)) @ fnp.ones((3, 4))).shape
    (5, 2, 4)
    """
    return _with_options("matmul", _matmul, a, b, precision, preferred_element_type)


def dot(a, b, /, *, precision: Any = None, preferred_element_type: Any = None):
    """``jnp.dot(a, b, *, precision=None, preferred_element_type=None)``: NumPy's ``dot``: a
    product for scalars, the inner product of vectors, and otherwise a sum over the last axis
    of ``a`` and the second-to-last axis of ``b`` (the last if ``b`` is 1-D)."""
    return _with_options("dot", _dot, a, b, precision, preferred_element_type)


def vdot(a, b, /, *, precision: Any = None, preferred_element_type: Any = None):
    """``jnp.vdot(a, b, *, precision=None, preferred_element_type=None)``: the dot product of
    the flattened arrays, ``a`` conjugated first (complex)."""
    return _with_options("vdot", _vdot, a, b, precision, preferred_element_type)


def inner(a, b, /, *, precision: Any = None, preferred_element_type: Any = None):
    """``jnp.inner(a, b, *, precision=None, preferred_element_type=None)``: the sum of products
    over the last axes of ``a`` and ``b``."""
    return _with_options("inner", _inner, a, b, precision, preferred_element_type)


def tensordot(a, b, axes=2, *, precision: Any = None, preferred_element_type: Any = None):
    """``jnp.tensordot(a, b, axes=2, *, precision=None, preferred_element_type=None)``: sum
    products over the last ``axes`` axes of ``a`` and the first of ``b`` (an int), or over the
    given axis lists ``(a_axes, b_axes)``."""
    return _with_options("tensordot", _tensordot, a, b, precision, preferred_element_type, axes)
