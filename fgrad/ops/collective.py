"""Collectives over a named axis: psum, pmax, pmin, all_gather, psum_scatter, ppermute,
axis_index (and pmean built from psum).

A named axis is bound by ``vmap(f, axis_name='i')`` (and by ``shard`` over a mesh axis).
Under vmap the collective runs over the vmapped axis: each vmap rule below implements
it when ``axis.name`` matches, and otherwise maps the collective over the batch like
any elementwise operation. Evaluated eagerly outside any binding of its name, a
collective raises ``UnboundAxisNameError``.

Differentiation follows JAX: psum is linear and transposes to psum over the same
axis; all_gather and psum_scatter transpose to each other; ppermute transposes to
the inverse permutation; pmax/pmin split the tangent among the members attaining
the extremum.

Replication typing (``fgrad.core.vma``, inside a ``shard`` with ``check_vma=True``):
psum/pmean/pmax/pmin and all_gather make their result invariant over the axes they
reduce or gather over (an operand invariant over one of them is first ``pvary``'d, so
``psum`` of a replicated value multiplies it by the axis size, as in JAX); ppermute,
psum_scatter and axis_index give results that vary over their axis. Over manual (mesh)
axes psum transposes to ``pvary`` and ``pvary`` to psum, and all_gather (invariant, like
JAX's ``all_gather_invariant``) to taking this device's block of the cotangent; over
vmap's named axes the untyped rules above apply.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import numpy as np

from fgrad import tree
from fgrad.core import dtypes
from fgrad.core.array import Array
from fgrad.core import vma
from fgrad.core import primitive
from fgrad.core.partition import named_axes_only, partition_rules, register_unpartitioned
from fgrad.core.primitive import Primitive, pvary_p
from fgrad.core.trace import current_interpreter, get_aval
from fgrad.core.types import ShapedArray
from fgrad.ops._util import shape_error
from fgrad.ops.elementwise import convert_element_type, div, eq, mul, select_n
from fgrad.ops.indexing import dynamic_slice
from fgrad.ops.reduction import reduce_max, reduce_min, reduce_or, reduce_sum
from fgrad.ops.shape import broadcast_in_dim, full, reshape, squeeze
from fgrad.transforms.jvp import jvp_rules, not_differentiable
from fgrad.transforms.vjp import transpose_rules
from fgrad.transforms.vmap import moveaxis, vmap_rules

__all__ = ["psum", "pmean", "pmax", "pmin", "all_gather", "psum_scatter", "ppermute", "axis_index",
           "axis_size", "pvary"]


class UnboundAxisNameError(NameError):
    """A collective names an axis that no enclosing ``vmap``/``shard`` binds."""


def unbound_axis_error(name: Any) -> UnboundAxisNameError:
    return UnboundAxisNameError(
        f"unbound axis name {name!r}: use vmap(..., axis_name={name!r}) or shard over a mesh axis "
        f"named {name!r} around the code that calls this collective")


# --- the axis environment (named axes and their sizes) -----------------------------------------

class _AxisEnv(threading.local):
    def __init__(self):
        self.frames: list[dict] = []


_axis_env = _AxisEnv()


@contextmanager
def axis_frame(sizes: dict) -> Iterator[None]:
    """Make the named axes in ``sizes`` (name -> size) visible to collectives traced inside.

    ``vmap`` and ``shard`` bind names through their interpreters; bodies traced on their own
    (control flow, custom rules, remat) keep seeing the enclosing names through this.
    """
    _axis_env.frames.append(dict(sizes))
    try:
        yield
    finally:
        _axis_env.frames.pop()


def _bound_axes() -> dict:
    """Every named axis visible here, innermost binding first."""
    sizes: dict = {}
    interp = current_interpreter()
    while interp is not None:
        axis = getattr(interp, "axis", None)
        if axis is not None and getattr(axis, "name", None) is not None:
            sizes.setdefault(axis.name, axis.size)
        for name, size in (getattr(interp, "axis_sizes", None) or {}).items():
            sizes.setdefault(name, size)
        interp = interp.parent
    for frame in reversed(_axis_env.frames):
        for name, size in frame.items():
            sizes.setdefault(name, size)
    return sizes


@contextmanager
def axis_env_here() -> Iterator[None]:
    """Carry the named axes bound here into a nested trace (which starts a fresh interpreter)."""
    with axis_frame(_bound_axes()):
        yield


def axis_size(axis_name: Any) -> int:
    """The size of the named axis (a product for a tuple of names)."""
    names = axis_name if isinstance(axis_name, tuple) else (axis_name,)
    bound = _bound_axes()
    size = 1
    for name in names:
        if name not in bound:
            raise unbound_axis_error(name)
        size *= bound[name]
    return size


def _names(axis_name: Any) -> tuple:
    names = axis_name if isinstance(axis_name, tuple) else (axis_name,)
    if not names:
        raise ValueError("collectives need at least one axis name")
    for name in names:
        try:
            hash(name)
        except TypeError:
            raise TypeError(f"axis names must be hashable (e.g. strings), got {name!r}") from None
    return names


def _single_name(op: str, axis_name: Any) -> Any:
    if isinstance(axis_name, tuple):
        if len(axis_name) != 1:
            raise ValueError(f"{op} takes one axis name, got {axis_name!r}")
        axis_name = axis_name[0]
    _names(axis_name)
    return axis_name


def _unbound_impl(*args, axis_name, **params):
    first = axis_name[0] if isinstance(axis_name, tuple) else axis_name
    raise unbound_axis_error(first)


def _define(name: str, rule) -> Primitive:
    prim = Primitive(name)
    prim.def_impl(_unbound_impl)
    prim.def_abstract_eval(rule)
    return prim


def _scalar(x: Any, value: Any) -> Any:
    return np.asarray(value, get_aval(x).dtype)[()]


# --- psum / pmax / pmin -------------------------------------------------------------------------

def _same_aval(x: ShapedArray, axis_name) -> ShapedArray:
    return x


psum_p = _define("psum", _same_aval)
pmax_p = _define("pmax", _same_aval)
pmin_p = _define("pmin", _same_aval)


def _reducer_vmap(prim: Primitive, reduce_batch, repeat):
    """vmap rule of an all-reduce: reduce over the batch dim when the names match."""
    def rule(axis, vals, dims, axis_name):
        (x,), (d,) = vals, dims
        if axis.name not in axis_name:
            return prim.bind(x, axis_name=axis_name), d
        y = repeat(x, axis.size) if d is None else reduce_batch(x, (d,))
        rest = tuple(n for n in axis_name if n != axis.name)
        return (prim.bind(y, axis_name=rest) if rest else y), None
    return rule


def _sum_batch(x, axes):
    return reduce_or(x, axes) if get_aval(x).dtype == dtypes.bool_ else reduce_sum(x, axes)


def _times(x, n):
    return x if get_aval(x).dtype == dtypes.bool_ else mul(x, _scalar(x, n))


def _max_batch(x, axes):
    return reduce_max(x, axes)


def _min_batch(x, axes):
    return reduce_min(x, axes)


vmap_rules[psum_p] = _reducer_vmap(psum_p, _sum_batch, _times)
vmap_rules[pmax_p] = _reducer_vmap(pmax_p, _max_batch, lambda x, n: x)
vmap_rules[pmin_p] = _reducer_vmap(pmin_p, _min_batch, lambda x, n: x)
jvp_rules[psum_p] = lambda p, t, axis_name: (psum_p.bind(p[0], axis_name=axis_name),
                                             psum_p.bind(t[0], axis_name=axis_name))


def _psum_transpose(ct, x, axis_name):
    """Over manual axes the cotangent of an invariant sum is handed to every member (pvary);
    over vmap's named axes (untyped) it is summed, as without replication typing."""
    manual = vma.manual_axes()
    typed = tuple(n for n in axis_name if n in manual)
    rest = tuple(n for n in axis_name if n not in manual)
    if typed:
        ct = primitive.pvary(ct, typed)
    return [psum_p.bind(ct, axis_name=rest) if rest else ct]


transpose_rules[psum_p] = _psum_transpose


def _reduce_vma(in_vmas, manual, axis_name):
    """All-reduces: operands vary over the (manual) axes reduced over; results do not."""
    names = frozenset(axis_name)
    wanted = in_vmas[0] | (names & manual)
    return [wanted], wanted - names


for _prim in (psum_p, pmax_p, pmin_p):
    vma.vma_rules[_prim] = _reduce_vma


def _extremum_jvp(prim: Primitive):
    """Members attaining the extremum share the tangent equally (JAX's max/min convention)."""
    def rule(primals, tangents, axis_name):
        (x,), (t,) = primals, tangents
        out = prim.bind(x, axis_name=axis_name)
        hit = eq(x, out)
        count = psum_p.bind(convert_element_type(hit, get_aval(x).dtype), axis_name=axis_name)
        picked = select_n(hit, full(get_aval(t).shape, 0, get_aval(t).dtype), t)
        return out, div(psum_p.bind(picked, axis_name=axis_name), count)
    return rule


jvp_rules[pmax_p] = _extremum_jvp(pmax_p)
jvp_rules[pmin_p] = _extremum_jvp(pmin_p)


def _tree_collective(fn, x):
    return tree.tree_map(fn, x)


def psum(x: Any, axis_name: Any) -> Any:
    """Sum ``x`` (a pytree of arrays) over the members of the named axis (or tuple of axes).

    >>> vmap(lambda v: psum(v, 'i'), axis_name='i')(fnp.arange(3.))   # [3., 3., 3.]   # doctest: +SKIP
    """
    names = _names(axis_name)
    return _tree_collective(lambda leaf: psum_p.bind(leaf, axis_name=names), x)


def pmax(x: Any, axis_name: Any) -> Any:
    """Elementwise maximum of ``x`` over the members of the named axis."""
    names = _names(axis_name)
    return _tree_collective(lambda leaf: pmax_p.bind(leaf, axis_name=names), x)


def pmin(x: Any, axis_name: Any) -> Any:
    """Elementwise minimum of ``x`` over the members of the named axis."""
    names = _names(axis_name)
    return _tree_collective(lambda leaf: pmin_p.bind(leaf, axis_name=names), x)


def pmean(x: Any, axis_name: Any) -> Any:
    """Mean of ``x`` over the members of the named axis: ``psum(x) / axis size``."""
    names = _names(axis_name)

    def mean(leaf):
        if not dtypes.is_float(get_aval(leaf).dtype):
            raise TypeError(f"pmean needs float values, got {get_aval(leaf).str_short()}; "
                            "convert with .astype(fgrad.numpy.float32) or use psum")
        count = psum_p.bind(_scalar(leaf, 1), axis_name=names)
        return div(psum_p.bind(leaf, axis_name=names), count)
    return _tree_collective(mean, x)


# --- axis_index -----------------------------------------------------------------------------------

axis_index_p = _define("axis_index", lambda axis_name: ShapedArray((), dtypes.int32))
not_differentiable.add(axis_index_p)


def _axis_index_vmap(axis, vals, dims, axis_name):
    return Array(np.arange(axis.size, dtype=np.int32)), 0


vmap_rules[axis_index_p] = _axis_index_vmap


vma.vma_rules[axis_index_p] = lambda in_vmas, manual, axis_name: ([], frozenset({axis_name}) & manual)


def axis_index(axis_name: Any) -> Any:
    """This member's position (int32) along the named axis."""
    return axis_index_p.bind(axis_name=_single_name("axis_index", axis_name))


# --- all_gather / psum_scatter ----------------------------------------------------------------------

def _all_gather_rule(x: ShapedArray, axis_name, axis: int, axis_size: int, tiled: bool) -> ShapedArray:
    if not 0 <= axis <= x.ndim - tiled:
        raise shape_error("all_gather", f"axis={axis} is out of range for {x.str_short()}")
    shape = list(x.shape)
    if tiled:
        shape[axis] *= axis_size
    else:
        shape.insert(axis, axis_size)
    return x.update(shape=tuple(shape))


def _psum_scatter_rule(x: ShapedArray, axis_name, scatter_dimension: int, axis_size: int,
                       tiled: bool) -> ShapedArray:
    d = scatter_dimension
    if not 0 <= d < x.ndim:
        raise shape_error("psum_scatter", f"scatter_dimension={d} is out of range for {x.str_short()}")
    shape = list(x.shape)
    if tiled:
        if shape[d] % axis_size:
            raise shape_error("psum_scatter", f"dimension {d} of {x.str_short()} must be divisible by the "
                              f"axis size {axis_size} (tiled=True)")
        shape[d] //= axis_size
    else:
        if shape[d] != axis_size:
            raise shape_error("psum_scatter", f"dimension {d} of {x.str_short()} must equal the axis size "
                              f"{axis_size} (or pass tiled=True to split it into equal blocks)")
        del shape[d]
    return x.update(shape=tuple(shape))


all_gather_p = _define("all_gather", _all_gather_rule)
psum_scatter_p = _define("psum_scatter", _psum_scatter_rule)


def _merge_dims(x: Any, at: int) -> Any:
    """Merge dims ``at`` and ``at + 1`` of ``x`` into one."""
    shape = get_aval(x).shape
    return reshape(x, (*shape[:at], shape[at] * shape[at + 1], *shape[at + 2:]))


def _split_dim(x: Any, at: int, parts: int) -> Any:
    """Split dim ``at`` of ``x`` into ``(parts, size // parts)``."""
    shape = get_aval(x).shape
    return reshape(x, (*shape[:at], parts, shape[at] // parts, *shape[at + 1:]))


def _all_gather_vmap(axis_data, vals, dims, axis_name, axis, axis_size, tiled):
    (x,), (d,) = vals, dims
    if axis_data.name != axis_name:
        x = moveaxis(x, d, 0, axis_data.size)
        return all_gather_p.bind(x, axis_name=axis_name, axis=axis + 1, axis_size=axis_size, tiled=tiled), 0
    out = moveaxis(x, d, axis, axis_data.size)  # every member sees the whole batch
    return (_merge_dims(out, axis) if tiled else out), None


def _psum_scatter_vmap(axis_data, vals, dims, axis_name, scatter_dimension, axis_size, tiled):
    (x,), (d,) = vals, dims
    if axis_data.name != axis_name:
        x = moveaxis(x, d, 0, axis_data.size)
        return psum_scatter_p.bind(x, axis_name=axis_name, scatter_dimension=scatter_dimension + 1,
                                   axis_size=axis_size, tiled=tiled), 0
    total = _times(x, axis_data.size) if d is None else _sum_batch(x, (d,))
    # member i keeps block i of the scatter dimension: that dimension becomes the batch dim
    return (_split_dim(total, scatter_dimension, axis_data.size) if tiled else total), scatter_dimension


vmap_rules[all_gather_p] = _all_gather_vmap
vmap_rules[psum_scatter_p] = _psum_scatter_vmap


def _gather_vma(in_vmas, manual, axis_name, **params):
    """all_gather: the operand varies over the axis (cast if not); the result is the same on
    every member of it."""
    wanted = in_vmas[0] | (frozenset({axis_name}) & manual)
    return [wanted], wanted - {axis_name}


def _to_varying_vma(in_vmas, manual, axis_name, **params):
    """psum_scatter / ppermute: each member ends with its own block, varying over the axis."""
    wanted = in_vmas[0] | (frozenset({axis_name}) & manual)
    return [wanted], wanted


vma.vma_rules[all_gather_p] = _gather_vma
vma.vma_rules[psum_scatter_p] = _to_varying_vma


def _linear_jvp(prim: Primitive):
    return lambda p, t, **params: (prim.bind(p[0], **params), prim.bind(t[0], **params))


jvp_rules[all_gather_p] = _linear_jvp(all_gather_p)
jvp_rules[psum_scatter_p] = _linear_jvp(psum_scatter_p)


def _all_gather_transpose(ct, x, axis_name, axis, axis_size, tiled):
    if axis_name not in vma.manual_axes():
        return [psum_scatter_p.bind(ct, axis_name=axis_name, scatter_dimension=axis, axis_size=axis_size,
                                    tiled=tiled)]
    # typed: the gathered value is invariant, so its cotangent is too; this member's share is its block
    shape = get_aval(ct).shape
    block = shape[axis] // axis_size
    starts = [np.int32(0)] * len(shape)
    starts[axis] = mul(axis_index_p.bind(axis_name=axis_name), np.int32(block))
    sizes = (*shape[:axis], block, *shape[axis + 1:])
    out = dynamic_slice(ct, starts, sizes)
    return [out if tiled else squeeze(out, (axis,))]


transpose_rules[all_gather_p] = _all_gather_transpose
transpose_rules[psum_scatter_p] = lambda ct, x, axis_name, scatter_dimension, axis_size, tiled: [
    all_gather_p.bind(ct, axis_name=axis_name, axis=scatter_dimension, axis_size=axis_size, tiled=tiled)]


def all_gather(x: Any, axis_name: Any, *, axis: int = 0, tiled: bool = False) -> Any:
    """Every member receives all members' ``x`` stacked along a new ``axis`` (concatenated along
    ``axis`` with ``tiled=True``)."""
    name = _single_name("all_gather", axis_name)
    size = axis_size(name)

    def gather(leaf):
        ndim = get_aval(leaf).ndim
        ax = _canonical_axis("all_gather", axis, ndim + (not tiled))
        return all_gather_p.bind(leaf, axis_name=name, axis=ax, axis_size=size, tiled=bool(tiled))
    return _tree_collective(gather, x)


def psum_scatter(x: Any, axis_name: Any, *, scatter_dimension: int = 0, tiled: bool = False) -> Any:
    """psum, after which member i keeps only block i of ``scatter_dimension``."""
    name = _single_name("psum_scatter", axis_name)
    size = axis_size(name)

    def scatter(leaf):
        d = _canonical_axis("psum_scatter", scatter_dimension, get_aval(leaf).ndim)
        _psum_scatter_rule(get_aval(leaf), name, d, size, bool(tiled))  # check before any rule runs
        return psum_scatter_p.bind(leaf, axis_name=name, scatter_dimension=d, axis_size=size, tiled=bool(tiled))
    return _tree_collective(scatter, x)


def _canonical_axis(op: str, axis: int, ndim: int) -> int:
    if not isinstance(axis, (int, np.integer)) or not -ndim <= axis < max(ndim, 1):
        raise ValueError(f"{op}: axis {axis!r} is out of range for rank {ndim}")
    return int(axis) % max(ndim, 1)


# --- ppermute ---------------------------------------------------------------------------------------

ppermute_p = _define("ppermute", lambda x, axis_name, perm: x)


def _ppermute_vmap(axis, vals, dims, axis_name, perm):
    (x,), (d,) = vals, dims
    if axis.name != axis_name:
        return ppermute_p.bind(x, axis_name=axis_name, perm=perm), d
    _check_perm(perm, axis.size)
    x = moveaxis(x, d, 0, axis.size)
    return _permute_rows(x, perm, axis.size), 0


def _permute_rows(x: Any, perm, n: int) -> Any:
    """``out[dst] = x[src]`` for each (src, dst) pair, zeros for rows nobody sends to.

    A one-hot selection summed over sources: exact (it adds only zeros) and made of
    primitives every backend has."""
    aval = get_aval(x)
    rest = aval.shape[1:]
    sends = np.zeros((n, n), dtype=bool)
    for src, dst in perm:
        sends[dst, src] = True
    shape = (n, n, *rest)
    rows = broadcast_in_dim(x, shape, (1, *range(2, len(shape))))
    mask = broadcast_in_dim(Array(sends), shape, (0, 1))
    picked = select_n(mask, full(shape, 0, aval.dtype), rows)
    return _sum_batch(picked, (1,))


def _check_perm(perm, n: int) -> None:
    srcs, dsts = [s for s, _ in perm], [d for _, d in perm]
    if len(set(srcs)) != len(srcs) or len(set(dsts)) != len(dsts):
        raise ValueError(f"ppermute: perm {perm} must send from and to each member at most once")
    if any(not 0 <= i < n for i in (*srcs, *dsts)):
        raise ValueError(f"ppermute: perm {perm} names members outside the axis of size {n}")


vmap_rules[ppermute_p] = _ppermute_vmap
vma.vma_rules[ppermute_p] = _to_varying_vma
jvp_rules[ppermute_p] = _linear_jvp(ppermute_p)
transpose_rules[ppermute_p] = lambda ct, x, axis_name, perm: [
    ppermute_p.bind(ct, axis_name=axis_name, perm=tuple((d, s) for s, d in perm))]


def ppermute(x: Any, axis_name: Any, perm: Sequence[tuple[int, int]]) -> Any:
    """Send each member's ``x`` along the (source, destination) pairs of ``perm``; members no
    pair sends to receive zeros.

    >>> shift = [(i, (i + 1) % 4) for i in range(4)]   # a ring   # doctest: +SKIP
    """
    name = _single_name("ppermute", axis_name)
    try:
        pairs = tuple((int(s), int(d)) for s, d in perm)
    except (TypeError, ValueError):
        raise TypeError(f"ppermute: perm must be a sequence of (source, destination) int pairs, "
                        f"got {perm!r}") from None
    _check_perm(pairs, max([i + 1 for p in pairs for i in p], default=0))
    return _tree_collective(lambda leaf: ppermute_p.bind(leaf, axis_name=name, perm=pairs), x)



# --- pvary (defined in fgrad.core.primitive: tracing inserts it) ------------------------------

def pvary(x: Any, axis_name: Any) -> Any:
    """``x`` (a pytree) typed as varying over the named mesh axes inside ``shard`` (the identity
    on values). Tracing inserts it where a replicated value meets a per-device one; call it to
    make a replicated value per-device on purpose, e.g. for per-device gradients of a
    replicated parameter (whose gradient is otherwise summed over the devices).

    >>> shard(vmap(grad(f), (None, 0)), mesh, (P(), P('i')), P('i'))   # summed over devices   # doctest: +SKIP
    >>> shard(lambda w, x: vmap(grad(f), (None, 0))(lax.pvary(w, 'i'), x), ...)  # per example   # doctest: +SKIP
    """
    names = _names(axis_name)
    return _tree_collective(lambda leaf: primitive.pvary(leaf, names), x)


def _pvary_transpose(ct, x, axes):
    """The cotangent of a value used on every member along ``axes`` is the sum of theirs (only
    over the axes the operand did not vary over already: a re-traced body may repeat a cast)."""
    names = tuple(a for a in axes if a not in x.aval.vma)
    return [psum_p.bind(ct, axis_name=names) if names else ct]


vmap_rules[pvary_p] = lambda axis, vals, dims, axes: (primitive.pvary(vals[0], axes), dims[0])
jvp_rules[pvary_p] = lambda p, t, axes: (primitive.pvary(p[0], axes), primitive.pvary(t[0], axes))
transpose_rules[pvary_p] = _pvary_transpose


# --- partition rules (the data-parallel pass, fgrad.core.partition) ----------------------------------------

for _prim in (psum_p, pmax_p, pmin_p, all_gather_p, psum_scatter_p, ppermute_p, axis_index_p):
    partition_rules[_prim] = named_axes_only
register_unpartitioned("the identity on values (it only retypes them inside shard)", pvary_p)
