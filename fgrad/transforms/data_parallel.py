"""Data parallelism by placement: the path ``jit`` takes for arguments placed with
``device_put`` on a mesh (the per-device program then runs through ``shard``'s runtime).

The two lines (data parallelism by placement)::

    params = device_put(params, NamedSharding(mesh, P()))        # replicated
    batch = device_put(batch, NamedSharding(mesh, P('data')))    # split along dim 0
    params, loss = step(params, batch)                           # a jit-ted step

``jit`` hands calls with ShardedArray arguments to ``data_parallel_call``: a sharding
propagation pass walks the global jaxpr and gives each value a *layout*: replicated,
split along one dimension (over one mesh axis), or a partial sum (every device holds a
term). Elementwise operations of split and replicated values stay split (replicated
operands are sliced locally); reductions and contractions over the split dimension
give partial sums; a partial sum that meets anything but a linear operation is psum'd
(once per value, and as early as the linear chain allows); outputs that end partial are
psum'd, split outputs stay split. Gathers and scatters keep a split dimension they do
not index (and a split batch of indices); an operation that needs the whole split
dimension (sort, cumsum or argmax along it, an indexed or sliced-at-random dimension)
all-gathers it first and gives a replicated result. Bodies of cond, scan and while are
walked on their operands' layouts; branch outputs and loop carries that disagree are made
replicated (carries: iterated to a fixed point). The pass emits the per-device jaxpr and
runs it like ``shard``. Layouts it does not handle (static slices, pads or reshapes that
cut the split dimension) raise ``DataParallelError``: use explicit ``shard``.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from fgrad.config import config
from fgrad.core.array import Array
from fgrad.core.ir import ClosedJaxpr, Eqn, Jaxpr, Literal, Var
from fgrad.core.primitive import Primitive
from fgrad.core.trace import get_aval, trace_to_jaxpr
from fgrad.core.types import ShapedArray
from fgrad.ops import collective
from fgrad.sharding import Mesh, NamedSharding, PartitionSpec, ShardedArray
from fgrad.transforms.device_program import COLLECTIVE_KINDS
from fgrad.transforms.shard import _closure_convert, run_shard

__all__ = ["DataParallelError", "data_parallel_call", "check_placement"]


class DataParallelError(ValueError):
    """``jit`` on sharded arguments met a layout its data-parallel pass does not handle."""


# --- data parallelism by placement: the sharding-propagation pass -----------------------------------------
#
# A layout is None (replicated: every device holds the whole value), an int d (split along
# dimension d over the data axis) or PARTIAL (every device holds a term; the value is their
# sum). Rules: rule(ctx, eqn, ins) -> [(local value, layout)] per output, where ins are the
# operands' (local value, layout) pairs and eqn carries the global avals and params.

PARTIAL = "partial"
dp_rules: dict[Primitive, Callable] = {}


def _dp_error(eqn: Eqn, detail: str) -> DataParallelError:
    return DataParallelError(
        f"jit on sharded arrays: the data-parallel pass cannot run `{eqn.primitive.name}` here: {detail}. "
        "Write this step with fgrad.shard(f, mesh, in_specs, out_specs) and explicit collectives, or "
        "device_put that input replicated (P()).")


def _layout_str(layout) -> str:
    return "replicated" if layout is None else "a partial sum" if layout == PARTIAL else f"split along dim {layout}"


class _DataParallelContext:
    """Layout conversions in the per-device program, each emitted at most once per value."""

    def __init__(self, mesh: Mesh, axis: str):
        self.mesh, self.axis, self.n = mesh, axis, mesh.shape[axis]
        self._memo: dict[tuple, tuple[Any, Any]] = {}
        self.split_recipes: dict[int, tuple[Any, Callable]] = {}   # replicated value -> make(d) of its split
        self.full_recipes: dict[int, tuple[Any, Callable]] = {}    # partial value -> make() of its sum

    def _memoized(self, value: Any, target: Any, make: Callable) -> Any:
        key = (id(value), target)
        hit = self._memo.get(key)
        if hit is None:
            hit = self._memo[key] = (value, make())  # the value is kept so its id stays unique
        return hit[1]

    def full(self, value: Any, layout) -> Any:
        """The whole value on every device: psum a partial sum, all_gather a split value."""
        if layout is None:
            return value
        if layout == PARTIAL:
            return self._memoized(value, "full", lambda: self._sum(value))
        return self._memoized(value, "full", lambda: collective.all_gather(value, self.axis, axis=layout, tiled=True))

    def _sum(self, value: Any) -> Any:
        recipe = self.full_recipes.get(id(value))
        if recipe is not None:  # a linear function of one partial value: psum that one instead
            return recipe[1]()
        return collective.psum_p.bind(value, axis_name=(self.axis,))

    def split(self, value: Any, layout, d: int, eqn: Eqn) -> Any:
        """This device's block of the value along dimension ``d``."""
        if layout == d:
            return value
        if layout == PARTIAL:
            return self._memoized(value, ("split", d), lambda: collective.psum_scatter(
                value, self.axis, scatter_dimension=d, tiled=True))
        if layout is not None:
            value = self.full(value, layout)
        size = get_aval(value).shape[d]
        if size % self.n:
            raise _dp_error(eqn, f"dimension {d} of a {get_aval(value).str_short()} operand must be split over "
                                 f"{self.n} devices to meet a split operand, and {size} is not divisible by {self.n}")
        return self._memoized(value, ("split", d), lambda: self._slice(value, d, eqn))

    def _slice(self, value: Any, d: int, eqn: Eqn) -> Any:
        recipe = self.split_recipes.get(id(value))
        if recipe is not None:
            return recipe[1](d)
        from fgrad.ops.elementwise import mul
        from fgrad.ops.indexing import dynamic_slice
        shape = get_aval(value).shape
        block = shape[d] // self.n
        start = mul(collective.axis_index(self.axis), np.int32(block))
        starts = [0] * len(shape)
        starts[d] = start
        return dynamic_slice(value, starts, tuple(block if i == d else s for i, s in enumerate(shape)))

    def local_shape(self, shape: Sequence[int], d: int) -> tuple[int, ...]:
        return tuple(s // self.n if i == d else s for i, s in enumerate(shape))


def _bind(eqn: Eqn, vals: Sequence[Any], **params) -> list:
    out = eqn.primitive.bind(*vals, **dict(eqn.params, **params))
    return list(out) if eqn.primitive.multiple_results else [out]


def _all(outs: list, layout) -> list:
    return [(o, layout) for o in outs]


def _replicated(ctx, eqn, ins) -> list:
    """Run on whole values (partial sums are summed first)."""
    return _all(_bind(eqn, [ctx.full(v, l) for v, l in ins]), None)


def _default_rule(ctx, eqn, ins):
    for k, (_, layout) in enumerate(ins):
        if isinstance(layout, int):
            raise _dp_error(eqn, f"operand {k} ({eqn.invars[k].aval.str_short()}) is {_layout_str(layout)} and "
                                 "this operation has no data-parallel rule")
    if eqn.primitive in COLLECTIVE_KINDS or eqn.primitive is collective.axis_index_p:
        raise _dp_error(eqn, "collectives need named axes, which only explicit shard binds")
    return _replicated(ctx, eqn, ins)


def _rank(atom) -> int:
    return len(atom.aval.shape)


# -- elementwise -------------------------------------------------------------------------------------------

def _is_float(aval) -> bool:
    return np.dtype(aval.dtype).kind == "f"


def _linear_in_partials(eqn: Eqn, layouts: list) -> bool:
    """Is the output a partial sum when the PARTIAL operands are (the op is linear in them)?"""
    from fgrad.ops import elementwise as ew
    from fgrad.ops.misc import stop_gradient_p
    prim, partial = eqn.primitive, [l == PARTIAL for l in layouts]
    rep = [l is None for l in layouts]
    if prim in (ew.add_p, ew.sub_p):
        return all(partial)
    if prim in (ew.neg_p, stop_gradient_p):
        return True
    if prim is ew.convert_element_type_p:
        return _is_float(eqn.invars[0].aval) and _is_float(eqn.outvars[0].aval)
    if prim is ew.mul_p:
        return sum(partial) == 1 and sum(rep) == 1
    if prim is ew.div_p:
        return partial[0] and rep[1] and _is_float(eqn.outvars[0].aval)
    if prim is ew.select_n_p:
        return rep[0] and all(partial[1:])
    return False


def _elementwise_rule(ctx, eqn, ins):
    layouts = [l for _, l in ins]
    arrays = [_rank(a) > 0 for a in eqn.invars]
    split = next((l for l, a in zip(layouts, arrays) if isinstance(l, int) and a), None)
    if split is not None:
        vals = [ctx.split(v, l, split, eqn) if a else ctx.full(v, l) for (v, l), a in zip(ins, arrays)]
        return _all(_bind(eqn, vals), split)
    if PARTIAL in layouts:
        if not _linear_in_partials(eqn, layouts):
            return _replicated(ctx, eqn, ins)
        outs = _bind(eqn, [v for v, _ in ins])
        if layouts.count(PARTIAL) == 1 and not eqn.primitive.multiple_results:
            ctx.full_recipes[id(outs[0])] = (outs[0], lambda: _bind(eqn, [ctx.full(v, l) for v, l in ins])[0])
        return _all(outs, PARTIAL)
    outs = _bind(eqn, [v for v, _ in ins])
    if not eqn.primitive.multiple_results and any(arrays):
        def split_of(d, ins=ins, arrays=arrays):  # compute on blocks instead of slicing the result
            return _bind(eqn, [ctx.split(v, None, d, eqn) if a else v for (v, _), a in zip(ins, arrays)])[0]
        ctx.split_recipes[id(outs[0])] = (outs[0], split_of)
    return _all(outs, None)


def _linear_unary(rule_for_split: Callable) -> Callable:
    """A rule for a shape operation linear in its one operand: partial stays partial."""
    def rule(ctx, eqn, ins):
        (x, layout), *rest = ins
        if any(l is not None for _, l in rest):
            return _replicated(ctx, eqn, ins)
        if layout is None:
            return _all(_bind(eqn, [x, *[v for v, _ in rest]]), None)
        if layout == PARTIAL:
            outs = _bind(eqn, [x, *[v for v, _ in rest]])
            ctx.full_recipes[id(outs[0])] = (outs[0], lambda: _bind(eqn, [ctx.full(x, PARTIAL), *[v for v, _ in rest]])[0])
            return _all(outs, PARTIAL)
        return rule_for_split(ctx, eqn, x, layout, [v for v, _ in rest])
    return rule


# -- shape operations ----------------------------------------------------------------------------------------

def _broadcast_in_dim_split(ctx, eqn, x, d, rest):
    shape, dims = eqn.params["shape"], eqn.params["broadcast_dimensions"]
    out_d = dims[d]
    local = list(shape)
    local[out_d] = get_aval(x).shape[d]
    return _all(_bind(eqn, [x], shape=tuple(local)), out_d)


def _broadcast_in_dim_rule(ctx, eqn, ins):
    out = _linear_unary(_broadcast_in_dim_split)(ctx, eqn, ins)
    (x, layout), = ins
    if layout is None:
        shape, dims = eqn.params["shape"], eqn.params["broadcast_dimensions"]

        def split_of(d):  # broadcast straight into the block
            operand = x
            if d in dims and get_aval(x).shape[dims.index(d)] != 1:
                operand = ctx.split(x, None, dims.index(d), eqn)
            return _bind(eqn, [operand], shape=ctx.local_shape(shape, d))[0]
        ctx.split_recipes[id(out[0][0])] = (out[0][0], split_of)
    return out


def _iota_rule(ctx, eqn, ins):
    from fgrad.ops.elementwise import add, convert_element_type, mul
    out = _bind(eqn, [])[0]
    shape, dim, dtype = eqn.params["shape"], eqn.params["dimension"], eqn.params["dtype"]

    def split_of(d):
        local = _bind(eqn, [], shape=ctx.local_shape(shape, d))[0]
        if d != dim:
            return local
        offset = mul(collective.axis_index(ctx.axis), np.int32(shape[d] // ctx.n))
        return add(local, convert_element_type(offset, dtype))
    ctx.split_recipes[id(out)] = (out, split_of)
    return [(out, None)]


def _reshape_split(ctx, eqn, x, d, rest):
    in_shape, out_shape = eqn.invars[0].aval.shape, eqn.params["new_sizes"]
    prefix = int(np.prod(in_shape[:d]))
    for out_d in range(len(out_shape)):
        if int(np.prod(out_shape[:out_d])) == prefix and out_shape[out_d] % ctx.n == 0:
            return _all(_bind(eqn, [x], new_sizes=ctx.local_shape(out_shape, out_d)), out_d)
    raise _dp_error(eqn, f"reshaping {eqn.invars[0].aval.str_short()} to {tuple(out_shape)} mixes the split "
                         f"dimension {d} with the others")


def _transpose_split(ctx, eqn, x, d, rest):
    return _all(_bind(eqn, [x]), eqn.params["permutation"].index(d))


def _squeeze_split(ctx, eqn, x, d, rest):
    dims = eqn.params["dimensions"]
    return _all(_bind(eqn, [x]), d - sum(1 for k in dims if k < d))


def _expand_dims_split(ctx, eqn, x, d, rest):
    new = set(eqn.params["dimensions"])
    kept = [k for k in range(_rank(eqn.outvars[0])) if k not in new]
    return _all(_bind(eqn, [x]), kept[d])


def _slice_split(ctx, eqn, x, d, rest):
    p = eqn.params
    size = eqn.invars[0].aval.shape[d]
    whole = p["start_indices"][d] == 0 and p["limit_indices"][d] == size and (p["strides"] or [1] * size)[d] == 1
    if not whole:
        raise _dp_error(eqn, f"it slices the split dimension {d}")
    limits = list(p["limit_indices"])
    limits[d] = get_aval(x).shape[d]
    return _all(_bind(eqn, [x], limit_indices=tuple(limits)), d)


def _pad_split(ctx, eqn, x, d, rest):
    if tuple(eqn.params["padding_config"][d]) != (0, 0, 0):
        raise _dp_error(eqn, f"it pads the split dimension {d}")
    return _all(_bind(eqn, [x, *rest]), d)


def _concatenate_rule(ctx, eqn, ins):
    layouts = [l for _, l in ins]
    if all(l is None for l in layouts):
        return _all(_bind(eqn, [v for v, _ in ins]), None)
    if all(l == PARTIAL for l in layouts):
        return _all(_bind(eqn, [v for v, _ in ins]), PARTIAL)
    dim = eqn.params["dimension"]
    split = next((l for l in layouts if isinstance(l, int)), None)
    if split is None or split == dim:
        if split == dim:
            raise _dp_error(eqn, f"it concatenates along the split dimension {dim}")
        return _replicated(ctx, eqn, ins)
    return _all(_bind(eqn, [ctx.split(v, l, split, eqn) for v, l in ins]), split)


# -- reductions and per-dimension operations --------------------------------------------------------------------

def _reduce_sum_split(ctx, eqn, x, d, rest):
    axes = eqn.params["axes"]
    if d in axes:  # each device sums its block: the terms of a partial sum
        return _all(_bind(eqn, [x]), PARTIAL)
    return _all(_bind(eqn, [x]), d - sum(1 for a in axes if a < d))


def _extremum_rule(collective_prim: Primitive) -> Callable:
    def rule(ctx, eqn, ins):
        (x, layout), = ins
        axes = eqn.params["axes"]
        if not isinstance(layout, int):
            return _replicated(ctx, eqn, ins)
        out = _bind(eqn, [x])[0]
        if layout in axes:  # each device reduces its block, then the blocks' results meet
            return [(collective_prim.bind(out, axis_name=(ctx.axis,)), None)]
        return [(out, layout - sum(1 for a in axes if a < layout))]
    return rule


def _along_dims(dims_of: Callable[[dict], Sequence[int]], reduces: bool) -> Callable:
    """Operations that work along some dimensions and treat the others independently."""
    def rule(ctx, eqn, ins):
        layouts = [l for _, l in ins]
        split = next((l for l in layouts if isinstance(l, int)), None)
        if split is None:
            return _replicated(ctx, eqn, ins)
        dims = tuple(dims_of(eqn.params))
        if split in dims:  # it needs the whole dimension: gather it, every device computes it all
            return _replicated(ctx, eqn, ins)
        out_d = split - sum(1 for a in dims if a < split) if reduces else split
        vals = [ctx.split(v, l, split, eqn) if _rank(a) else ctx.full(v, l) for (v, l), a in zip(ins, eqn.invars)]
        return _all(_bind(eqn, vals), out_d)
    return rule


# -- contractions ----------------------------------------------------------------------------------------------

def _dot_general_rule(ctx, eqn, ins):
    (x, lx), (y, ly) = ins
    if PARTIAL in (lx, ly):
        if {lx, ly} == {PARTIAL, None}:
            return _all(_bind(eqn, [x, y]), PARTIAL)
        x, y = ctx.full(x, lx), ctx.full(y, ly)
        lx, ly = None, None
    if lx is None and ly is None:
        return _all(_bind(eqn, [x, y]), None)
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    lfree = [k for k in range(_rank(eqn.invars[0])) if k not in lc and k not in lb]
    rfree = [k for k in range(_rank(eqn.invars[1])) if k not in rc and k not in rb]
    if isinstance(lx, int):
        if lx in lc:
            y = ctx.split(y, ly, rc[lc.index(lx)], eqn)
            return _all(_bind(eqn, [x, y]), PARTIAL)
        if lx in lb:
            y = ctx.split(y, ly, rb[lb.index(lx)], eqn)
            return _all(_bind(eqn, [x, y]), lb.index(lx))
        y = ctx.full(y, ly)
        return _all(_bind(eqn, [x, y]), len(lb) + lfree.index(lx))
    if ly in rc:
        x = ctx.split(x, lx, lc[rc.index(ly)], eqn)
        return _all(_bind(eqn, [x, y]), PARTIAL)
    if ly in rb:
        x = ctx.split(x, lx, lb[rb.index(ly)], eqn)
        return _all(_bind(eqn, [x, y]), rb.index(ly))
    return _all(_bind(eqn, [x, y]), len(lb) + len(lfree) + rfree.index(ly))


def _conv_rule(ctx, eqn, ins):
    (x, lx), (w, lw) = ins
    p = eqn.params
    if PARTIAL in (lx, lw):
        if {lx, lw} == {PARTIAL, None}:
            return _all(_bind(eqn, [x, w]), PARTIAL)
        x, w, lx, lw = ctx.full(x, lx), ctx.full(w, lw), None, None
    if lx is None and lw is None:
        return _all(_bind(eqn, [x, w]), None)
    dn = p["dimension_numbers"]
    lhs_batch, lhs_feature = dn.lhs_spec[0], dn.lhs_spec[1]
    rhs_out, rhs_in = dn.rhs_spec[0], dn.rhs_spec[1]
    groups = p["feature_group_count"] != 1 or p["batch_group_count"] != 1
    if lx == lhs_batch and not groups:
        return _all(_bind(eqn, [x, ctx.full(w, lw)]), dn.out_spec[0])
    if (lx == lhs_feature or lw == rhs_in) and not groups and lx in (None, lhs_feature) and lw in (None, rhs_in):
        x, w = ctx.split(x, lx, lhs_feature, eqn), ctx.split(w, lw, rhs_in, eqn)
        return _all(_bind(eqn, [x, w]), PARTIAL)
    if lw == rhs_out and lx is None and not groups:
        return _all(_bind(eqn, [x, w]), dn.out_spec[1])
    raise _dp_error(eqn, f"lhs {_layout_str(lx)} and rhs {_layout_str(lw)} with dimension numbers {dn} "
                         f"(feature groups {p['feature_group_count']}, batch groups {p['batch_group_count']})")


# -- windows ---------------------------------------------------------------------------------------------------

def _window_is_trivial(params: dict, d: int) -> bool:
    pad = params.get("padding")
    return (params["window_dimensions"][d] == 1 and params["window_strides"][d] == 1
            and (pad is None or tuple(pad[d]) == (0, 0))
            and params.get("base_dilation", [1] * (d + 1))[d] == 1
            and params.get("window_dilation", [1] * (d + 1))[d] == 1)


def _window_rule(linear: bool) -> Callable:
    def rule(ctx, eqn, ins):
        layouts = [l for _, l in ins]
        if PARTIAL in layouts and not (linear and layouts == [PARTIAL]):
            ins = [(ctx.full(v, l), None) for v, l in ins]
            layouts = [None] * len(ins)
        if layouts == [PARTIAL]:
            return _all(_bind(eqn, [ins[0][0]]), PARTIAL)
        split = next((l for l in layouts if isinstance(l, int)), None)
        if split is None:
            return _all(_bind(eqn, [v for v, _ in ins]), None)
        if not _window_is_trivial(eqn.params, split):
            raise _dp_error(eqn, f"its window spans the split dimension {split}")
        return _all(_bind(eqn, [ctx.split(v, l, split, eqn) for v, l in ins]), split)
    return rule


# -- indexing ----------------------------------------------------------------------------------------------------
#
# gather(x, indices, axes): the output is indices.shape[:-1] followed by x's dims not in axes.
# A split dimension of x that is not indexed, or a split batch dimension of the indices,
# carries over to the output; a split indexed dimension (the indices address the whole
# dimension) is gathered first.

def _rest_dims(ndim: int, axes: Sequence[int]) -> list[int]:
    return [d for d in range(ndim) if d not in axes]


def _gather_rule(ctx, eqn, ins):
    (x, lx), (idx, li) = ins
    axes, batch_nd = eqn.params["axes"], _rank(eqn.invars[1]) - 1
    fill_is_zero = eqn.params["mode"] != "fill" or eqn.params["fill_value"] in (None, 0)
    if lx == PARTIAL and li is None and fill_is_zero:   # linear in x
        return _all(_bind(eqn, [x, idx]), PARTIAL)
    if lx == PARTIAL or (isinstance(lx, int) and lx in axes):
        x, lx = ctx.full(x, lx), None
    if li == PARTIAL or li == batch_nd or (isinstance(lx, int) and isinstance(li, int)):
        idx, li = ctx.full(idx, li), None
    if isinstance(lx, int):
        return _all(_bind(eqn, [x, idx]), batch_nd + _rest_dims(_rank(eqn.invars[0]), axes).index(lx))
    return _all(_bind(eqn, [x, idx]), li)


def _scatter_rule(ctx, eqn, ins):
    (x, lx), (idx, li), (upd, lu) = ins
    axes, batch_nd = eqn.params["axes"], _rank(eqn.invars[1]) - 1
    rest = _rest_dims(_rank(eqn.invars[0]), axes)
    if lx == PARTIAL and lu == PARTIAL and li is None and eqn.params["mode"] == "add":   # linear
        return _all(_bind(eqn, [x, idx, upd]), PARTIAL)
    from_updates = rest[lu - batch_nd] if isinstance(lu, int) and lu >= batch_nd else None
    d = lx if isinstance(lx, int) and lx not in axes else from_updates
    if d is None or li == PARTIAL or isinstance(li, int) or (isinstance(lu, int) and lu < batch_nd):
        return _replicated(ctx, eqn, ins)
    # every device updates its block of a dimension the indices do not address
    vals = [ctx.split(x, lx, d, eqn), ctx.full(idx, li), ctx.split(upd, lu, batch_nd + rest.index(d), eqn)]
    return _all(_bind(eqn, vals), d)


def _whole_split(ctx, eqn, layouts: list, shape: Sequence[int], window: Sequence[int]):
    """The dimension split in ``layouts`` if the window spans it whole (so its start is 0)."""
    split = next((l for l in layouts if isinstance(l, int)), None)
    if split is not None and window[split] == shape[split] and shape[split] % ctx.n == 0:
        return split
    return None


def _dynamic_slice_rule(ctx, eqn, ins):
    (x, lx), *starts = ins
    starts = [ctx.full(v, l) for v, l in starts]
    sizes = eqn.params["slice_sizes"]
    d = _whole_split(ctx, eqn, [lx], eqn.invars[0].aval.shape, sizes)
    if d is not None:
        return _all(_bind(eqn, [x, *starts], slice_sizes=ctx.local_shape(sizes, d)), d)
    if lx == PARTIAL:
        return _all(_bind(eqn, [x, *starts]), PARTIAL)
    return _all(_bind(eqn, [ctx.full(x, lx), *starts]), None)


def _dynamic_update_slice_rule(ctx, eqn, ins):
    (x, lx), (upd, lu), *starts = ins
    starts = [ctx.full(v, l) for v, l in starts]
    d = _whole_split(ctx, eqn, [lx, lu], eqn.invars[0].aval.shape, eqn.invars[1].aval.shape)
    if d is not None:
        return _all(_bind(eqn, [ctx.split(x, lx, d, eqn), ctx.split(upd, lu, d, eqn), *starts]), d)
    if lx == PARTIAL and lu == PARTIAL:
        return _all(_bind(eqn, [x, upd, *starts]), PARTIAL)
    return _all(_bind(eqn, [ctx.full(x, lx), ctx.full(upd, lu), *starts]), None)


# -- control flow: bodies become per-device bodies ----------------------------------------------------------------
#
# A body is walked on its operands' layouts into a per-device jaxpr. Branches of a cond (its
# index is replicated, so every device takes the same branch) must agree on their outputs'
# layouts, and a loop body must give its carries the layouts it got: where they differ the
# value is made whole (replicated) and the body walked again, until the layouts are stable.

KEEP = "keep"


def _local_aval(aval: ShapedArray, layout, n: int) -> ShapedArray:
    if not isinstance(layout, int):
        return aval
    return aval.update(shape=tuple(s // n if i == layout else s for i, s in enumerate(aval.shape)))


def _convert(ctx, value, layout, target):
    """``value`` in the ``target`` layout: the layout it has (or KEEP), or None (made whole)."""
    if target == KEEP or target == layout:
        return value, layout
    return ctx.full(value, layout), None


def _per_device_body(ctx, closed: ClosedJaxpr, layouts: list, want: list | None = None):
    """The per-device jaxpr of ``closed`` on inputs of ``layouts``, and its outputs' layouts
    (converted to ``want``'s entries other than KEEP)."""
    out_layouts: list = []

    def body(*xs):
        inner = _DataParallelContext(ctx.mesh, ctx.axis)
        outs = _walk(inner, closed.jaxpr, [(c, None) for c in closed.consts], list(zip(xs, layouts)))
        if want is not None:
            outs = [_convert(inner, v, l, w) for (v, l), w in zip(outs, want)]
        out_layouts[:] = [l for _, l in outs]
        return [v for v, _ in outs]

    avals = [_local_aval(a, l, ctx.n) for a, l in zip(closed.in_avals, layouts)]
    return trace_to_jaxpr(body, avals), out_layouts


def _agree(layout_lists: list[list]) -> list:
    """Per position: the layout every list gives it, else None (replicated)."""
    return [ls[0] if all(l == ls[0] for l in ls) else None for ls in zip(*layout_lists)]


def _cond_rule(ctx, eqn, ins):
    from fgrad.ops.control import bind_cond
    (index, li), *ops = ins
    layouts = [l for _, l in ops]
    branches = eqn.params["branches"]
    walked = [_per_device_body(ctx, b, layouts) for b in branches]
    target = _agree([outs for _, outs in walked])
    if any(outs != target for _, outs in walked):
        walked = [_per_device_body(ctx, b, layouts, target) for b in branches]
    outs = bind_cond(ctx.full(index, li), [v for v, _ in ops], [j for j, _ in walked])
    return list(zip(outs, target))


def _loop_layouts(carry: list, body_of: Callable[[list], list]) -> list:
    """Carry layouts the loop body keeps: start from the initial ones and replicate every
    carry the body changes, until none changes (at most one pass per carry)."""
    layouts = [l for _, l in carry]
    while True:
        after = body_of(layouts)
        joined = _agree([layouts, after])
        if joined == layouts:
            return layouts
        layouts = joined


def _scan_rule(ctx, eqn, ins):
    from fgrad.ops.control import bind_scan
    p = eqn.params
    nc, nk = p["num_consts"], p["num_carry"]
    consts, carry, xs = ins[:nc], ins[nc:nc + nk], ins[nc + nk:]
    xs = [(ctx.full(v, l), None) if l == 0 else (v, l) for v, l in xs]   # the scanned axis stays whole
    x_layouts = [l - 1 if isinstance(l, int) else l for _, l in xs]
    const_layouts = [l for _, l in consts]

    def walk(carry_layouts, want=None):
        return _per_device_body(ctx, p["jaxpr"], [*const_layouts, *carry_layouts, *x_layouts], want)

    carry_layouts = _loop_layouts(carry, lambda ls: walk(ls)[1][:nk])
    body, out_layouts = walk(carry_layouts, [*carry_layouts, *[KEEP] * (len(p["jaxpr"].out_avals) - nk)])
    carry = [_convert(ctx, v, l, t)[0] for (v, l), t in zip(carry, carry_layouts)]
    outs = bind_scan([v for v, _ in consts], carry, [v for v, _ in xs], body, p["length"], p["reverse"], p["unroll"])
    y_layouts = [l + 1 if isinstance(l, int) else l for l in out_layouts[nk:]]
    return list(zip(outs, [*carry_layouts, *y_layouts]))


def _while_rule(ctx, eqn, ins):
    from fgrad.ops.control import bind_while
    p = eqn.params
    ncc, nbc = p["cond_nconsts"], p["body_nconsts"]
    cond_consts, body_consts, carry = ins[:ncc], ins[ncc:ncc + nbc], ins[ncc + nbc:]
    body_const_layouts = [l for _, l in body_consts]

    def walk_body(carry_layouts, want=None):
        return _per_device_body(ctx, p["body_jaxpr"], [*body_const_layouts, *carry_layouts], want)

    carry_layouts = _loop_layouts(carry, lambda ls: walk_body(ls)[1])
    body, _ = walk_body(carry_layouts, carry_layouts)
    cond, _ = _per_device_body(ctx, p["cond_jaxpr"], [*[l for _, l in cond_consts], *carry_layouts], [None])
    carry = [_convert(ctx, v, l, t)[0] for (v, l), t in zip(carry, carry_layouts)]
    outs = bind_while([v for v, _ in cond_consts], [v for v, _ in body_consts], carry, cond, body)
    return list(zip(outs, carry_layouts))


# -- calls: their bodies are walked inline ---------------------------------------------------------------------

def _call_rule(param: str) -> Callable:
    def rule(ctx, eqn, ins):
        body = eqn.params[param]
        return _walk(ctx, body.jaxpr, [(c, None) for c in body.consts], ins)
    return rule


def _walk(ctx, jaxpr: Jaxpr, consts: list, ins: list) -> list:
    """Emit the per-device program of ``jaxpr`` given its inputs' (value, layout)."""
    env: dict[Var, tuple[Any, Any]] = dict(zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, ins))

    def read(atom):
        return (atom.value, None) if isinstance(atom, Literal) else env[atom]

    for eqn in jaxpr.eqns:
        rule = dp_rules.get(eqn.primitive, _default_rule)
        env.update(zip(eqn.outvars, rule(ctx, eqn, [read(a) for a in eqn.invars])))
    return [read(v) for v in jaxpr.outvars]


def _register_dp_rules() -> None:
    from fgrad.ops import contraction, control, elementwise as ew, indexing, misc, reduction, shape as sh, window
    from fgrad.ops.sort import sort_p
    from fgrad.transforms import custom, jit as jit_module, remat
    for value in vars(ew).values():
        if isinstance(value, Primitive):
            dp_rules[value] = _elementwise_rule
    dp_rules[misc.stop_gradient_p] = _elementwise_rule
    dp_rules[misc.threefry2x32_p] = _elementwise_rule
    dp_rules[sh.broadcast_in_dim_p] = _broadcast_in_dim_rule
    dp_rules[sh.iota_p] = _iota_rule
    for prim, split_rule in ((sh.reshape_p, _reshape_split), (sh.transpose_p, _transpose_split),
                             (sh.squeeze_p, _squeeze_split), (sh.expand_dims_p, _expand_dims_split),
                             (sh.slice_p, _slice_split), (sh.pad_p, _pad_split)):
        dp_rules[prim] = _linear_unary(split_rule)
    dp_rules[sh.concatenate_p] = _concatenate_rule
    dp_rules[sh.rev_p] = _along_dims(lambda p: p["dimensions"], reduces=False)
    dp_rules[reduction.reduce_sum_p] = _linear_unary(_reduce_sum_split)
    dp_rules[reduction.reduce_max_p] = _extremum_rule(collective.pmax_p)
    dp_rules[reduction.reduce_min_p] = _extremum_rule(collective.pmin_p)
    for prim in (reduction.reduce_prod_p, reduction.reduce_and_p, reduction.reduce_or_p,
                 reduction.argmax_p, reduction.argmin_p):
        dp_rules[prim] = _along_dims(lambda p: p["axes"], reduces=True)
    dp_rules[reduction.cumsum_p] = _along_dims(lambda p: (p["axis"],), reduces=False)
    dp_rules[sort_p] = _along_dims(lambda p: (p["dimension"],), reduces=False)
    dp_rules[contraction.dot_general_p] = _dot_general_rule
    dp_rules[contraction.conv_general_dilated_p] = _conv_rule
    dp_rules[window.reduce_window_sum_p] = _window_rule(linear=True)
    for prim in (window.reduce_window_max_p, window.reduce_window_min_p,
                 window.select_and_scatter_add_p, window.select_and_gather_add_p):
        dp_rules[prim] = _window_rule(linear=False)
    dp_rules[indexing.gather_p] = _gather_rule
    dp_rules[indexing.scatter_p] = _scatter_rule
    dp_rules[indexing.dynamic_slice_p] = _dynamic_slice_rule
    dp_rules[indexing.dynamic_update_slice_p] = _dynamic_update_slice_rule
    dp_rules[control.cond_p] = _cond_rule
    dp_rules[control.scan_p] = _scan_rule
    dp_rules[control.while_p] = _while_rule
    dp_rules[jit_module.jit_p] = _call_rule("jaxpr")
    dp_rules[remat.remat_p] = _call_rule("jaxpr")
    dp_rules[custom.custom_jvp_call_p] = _call_rule("call")
    dp_rules[custom.custom_vjp_call_p] = _call_rule("call")


_register_dp_rules()


# -- the entry point jit calls -----------------------------------------------------------------------------------

def _spec_of(layout, axis: str) -> PartitionSpec:
    return PartitionSpec() if layout is None else PartitionSpec(*([None] * layout), axis)


def _input_layouts(args: Sequence[Any]) -> tuple[Mesh, str, list]:
    mesh, axis, layouts = None, None, []
    for k, arg in enumerate(args):
        if not isinstance(arg, ShardedArray):
            layouts.append(None)
            continue
        sharding = arg.sharding
        if mesh is None:
            mesh = sharding.mesh
        elif sharding.mesh != mesh:
            raise DataParallelError(f"jit: arguments are placed on different meshes ({mesh} and {sharding.mesh}); "
                                    "device_put them all onto one mesh")
        split = [(d, sharding.spec.axes(d)) for d in range(len(sharding.spec)) if sharding.spec.axes(d)]
        if not split:
            layouts.append(None)
            continue
        if len(split) > 1 or len(split[0][1]) > 1:
            raise DataParallelError(f"jit: an argument placed with {sharding.spec} is split over several mesh axes "
                                    "or dimensions; the data-parallel path splits one dimension over one axis. "
                                    "Use fgrad.shard for other layouts.")
        d, (name,) = split[0]
        if axis is None:
            axis = name
        elif name != axis:
            raise DataParallelError(f"jit: arguments are split over different mesh axes ({axis!r} and {name!r}); "
                                    "the data-parallel path splits over one axis. Use fgrad.shard for more.")
        layouts.append(d)
    return mesh, axis if axis is not None else mesh.axis_names[0], layouts


def check_placement(leaves: Sequence[Any]) -> None:
    """Raise ``DataParallelError`` for arguments the data-parallel path cannot run (placed on
    different meshes, split over several axes); ``jit`` calls it before tracing."""
    _input_layouts(leaves)


class _Plan:
    """The per-device program of one jaxpr for one placement of its inputs."""

    __slots__ = ("jaxpr", "body", "consts", "in_specs", "out_specs")

    def __init__(self, jaxpr, body, consts, in_specs, out_specs):
        self.jaxpr, self.body, self.consts = jaxpr, body, consts
        self.in_specs, self.out_specs = in_specs, out_specs


_plans: dict[tuple, _Plan] = {}


def _plan(jaxpr: ClosedJaxpr, mesh: Mesh, axis: str, layouts: list, name: str) -> _Plan:
    key = (id(jaxpr), mesh, axis, tuple(layouts))
    plan = _plans.get(key)
    if plan is not None and plan.jaxpr is jaxpr:
        return plan
    n = mesh.shape[axis]
    local_avals = []
    for k, (aval, layout) in enumerate(zip(jaxpr.in_avals, layouts)):
        local_avals.append(aval if layout is None else aval.update(shape=tuple(
            s // n if i == layout else s for i, s in enumerate(aval.shape))))
    out_layouts: list = []

    def body(*xs):
        ctx = _DataParallelContext(mesh, axis)
        outs = _walk(ctx, jaxpr.jaxpr, [(c, None) for c in jaxpr.consts], list(zip(xs, layouts)))
        out_layouts[:] = [None if l == PARTIAL else l for _, l in outs]
        return [ctx.full(v, l) if l == PARTIAL else v for v, l in outs]

    with collective.axis_frame(mesh.shape):
        closed = trace_to_jaxpr(body, local_avals)
    converted, consts = _closure_convert(closed)  # constants made while emitting: replicated inputs
    plan = _Plan(jaxpr, converted, consts, (PartitionSpec(),) * len(consts) + tuple(_spec_of(l, axis) for l in layouts),
                 tuple(_spec_of(l, axis) for l in out_layouts))
    _plans[key] = plan
    return plan


def data_parallel_call(jaxpr: ClosedJaxpr, consts: Sequence[Any], leaves: Sequence[Any],
                       name: str = "jit") -> list[ShardedArray]:
    """Run a jit-ted function's (const-free) jaxpr data-parallel over the mesh its sharded
    arguments are placed on; returns ShardedArrays (replicated, or split like the batch)."""
    args = [*consts, *leaves]
    mesh, axis, layouts = _input_layouts(args)
    if all(layout is None for layout in layouts):
        return _run_replicated(jaxpr, mesh, args, name)
    plan = _plan(jaxpr, mesh, axis, layouts, name)
    if config.debug >= 1:
        print(f"[fgrad] {name}: data-parallel over {mesh} axis {axis!r}; inputs "
              f"{[str(s) for s in plan.in_specs]}, outputs {[str(s) for s in plan.out_specs]}", flush=True)
    return run_shard(plan.body, mesh, plan.in_specs, plan.out_specs, [*plan.consts, *args], name)


def _run_replicated(jaxpr: ClosedJaxpr, mesh: Mesh, args: Sequence[Any], name: str) -> list[ShardedArray]:
    """Nothing is split, so every device would compute the same values: compute them once,
    with all the cores (e.g. evaluating a replicated model), and place them replicated."""
    from fgrad.transforms.jit import executable_for
    if config.debug >= 1:
        print(f"[fgrad] {name}: every argument is replicated on {mesh}; computed once", flush=True)
    values = [a._value if isinstance(a, Array) else np.asarray(a, aval.dtype)
              for a, aval in zip(args, jaxpr.in_avals)]
    outs = executable_for(jaxpr)(*values)
    sharding, local = NamedSharding(mesh, PartitionSpec()), set(mesh.local_ranks())
    placed = []
    for out, aval in zip(outs, jaxpr.out_avals):
        out = np.asarray(out)
        if any(out is v for v in values) or not out.flags.owndata:
            out = np.array(out)   # never freeze (or share) the caller's memory
        out.flags.writeable = False
        placed.append(ShardedArray._from_shards([out if r in local else None for r in range(mesh.size)],
                                                sharding, aval.strip_weak_type()))
    return placed
