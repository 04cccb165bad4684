"""Lowering rules of the layout and indexing primitives: lazy index maps (broadcast,
reshape, transpose, slices, pad, concatenate, dynamic slices, gather) that fuse into their
readers, and the scatter kernel. ``rules`` registers ``RULES`` with the others; the small
helpers here (``lazy``, ``out_aval``, ``in_range``, ``masked_read``) are shared with it.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from fgrad.core.types import ShapedArray
from fgrad.lower import kernel as K
from fgrad.lower.schedule import (BufferValue, KernelBuilder, LazyValue, Lowerer, PiecewiseValue, Value, ir_dtype,
                                  ravel, unravel)
from fgrad.ops import complex_parts, indexing, shape as sh


def lazy(aval: ShapedArray, fn: Callable, *inputs: Value, extra_cost: int = 1, pointwise: bool = False
         ) -> LazyValue:
    """A value computed on the fly by ``fn(kb, idx)``, fused into its readers."""
    return LazyValue(aval, fn, sum(v.cost for v in inputs) + extra_cost, inputs, pointwise)


def out_aval(eqn, k: int = 0) -> ShapedArray:
    """The abstract value of an equation's ``k``-th result."""
    return eqn.outvars[k].aval


def _remap(eqn, x: Value, index_map: Callable[[list], list]) -> LazyValue:
    return lazy(out_aval(eqn), lambda kb, idx: x.read(kb, index_map(idx)), x, extra_cost=0)


def _broadcast_in_dim(lw, eqn, ins):
    x = ins[0]
    dims = eqn.params["broadcast_dimensions"]
    shape = x.aval.shape
    return [_remap(eqn, x, lambda idx: [K.Const(0, K.INDEX) if shape[i] == 1 else idx[d]
                                        for i, d in enumerate(dims)])]


def _reshape(lw, eqn, ins):
    x = ins[0]
    out_shape, in_shape = out_aval(eqn).shape, x.aval.shape
    if x.aval.size == 0 or not in_shape:
        return [_remap(eqn, x, lambda idx: [K.Const(0, K.INDEX)] * len(in_shape))]
    if isinstance(x, BufferValue):     # row-major memory: a reshape only renames the flat index
        buf = x.buffer
        renamed = lazy(out_aval(eqn), lambda kb, idx: kb.param(buf)[ravel(idx, out_shape) if idx else 0], x,
                       extra_cost=0)
        renamed.row_major = buf
        return [renamed]
    groups = _reshape_groups(in_shape, out_shape)

    def index_map(idx):
        src = []
        for (i0, i1), (o0, o1) in groups:
            flat = ravel(idx[o0:o1], out_shape[o0:o1]) if o1 - o0 > 1 else idx[o0] if o1 > o0 else K.Const(0, K.INDEX)
            src.extend(unravel(flat, in_shape[i0:i1]) if i1 - i0 > 1 else [flat] if i1 > i0 else [])
        return src
    return [lazy(out_aval(eqn), lambda kb, idx: x.read(kb, index_map(idx)), x, extra_cost=2)]


def _reshape_groups(in_shape: Sequence[int], out_shape: Sequence[int]) -> list:
    """The coarsest matching runs of dims: ``[((in_start, in_stop), (out_start, out_stop)), ...]``
    with equal products, so a reshape divides and takes remainders only within a run
    ((128, 64, 5, 5) -> (128, 1600) maps the first dim straight through)."""
    groups, i, o = [], 0, 0
    while i < len(in_shape) or o < len(out_shape):
        i0, o0 = i, o
        pin = pout = 1
        if i < len(in_shape):
            pin, i = in_shape[i], i + 1
        if o < len(out_shape):
            pout, o = out_shape[o], o + 1
        while pin != pout:
            if pin < pout and i < len(in_shape):
                pin, i = pin * in_shape[i], i + 1
            elif o < len(out_shape):
                pout, o = pout * out_shape[o], o + 1
            else:
                pin, i = pin * in_shape[i], i + 1
        groups.append(((i0, i), (o0, o)))
    return groups


def _transpose(lw, eqn, ins):
    perm = eqn.params["permutation"]

    def index_map(idx):
        src = [None] * len(perm)
        for out_dim, in_dim in enumerate(perm):
            src[in_dim] = idx[out_dim]
        return src
    return [_remap(eqn, ins[0], index_map)]


def _squeeze(lw, eqn, ins):
    dims = set(eqn.params["dimensions"])
    ndim = ins[0].aval.ndim

    def index_map(idx):
        it = iter(idx)
        return [K.Const(0, K.INDEX) if d in dims else next(it) for d in range(ndim)]
    return [_remap(eqn, ins[0], index_map)]


def _expand_dims(lw, eqn, ins):
    dims = set(eqn.params["dimensions"])
    return [_remap(eqn, ins[0], lambda idx: [i for d, i in enumerate(idx) if d not in dims])]


def _slice(lw, eqn, ins):
    starts = eqn.params["start_indices"]
    strides = eqn.params.get("strides") or (1,) * len(starts)
    return [_remap(eqn, ins[0], lambda idx: [s + i * st for i, s, st in zip(idx, starts, strides)])]


def _rev(lw, eqn, ins):
    dims = set(eqn.params["dimensions"])
    shape = ins[0].aval.shape
    return [_remap(eqn, ins[0], lambda idx: [(shape[d] - 1 - i) if d in dims else i for d, i in enumerate(idx)])]


def _iota(lw, eqn, ins):
    aval = out_aval(eqn)
    dim = eqn.params["dimension"]
    return [lazy(aval, lambda kb, idx: K.cast(idx[dim], ir_dtype(aval.dtype)), extra_cost=0)]


def in_range(pos: K.Expr, size: int) -> K.Expr:
    return K.logical_and(K.op("ge", pos, K.Const(0, K.INDEX)), K.op("lt", pos, K.Const(size, K.INDEX)))


def masked_read(kb, x: Value, idx: list, mask: K.Expr, fill: K.Expr) -> K.Expr:
    """``x[idx]`` where ``mask`` holds, else ``fill``; out-of-range indices are clamped so the
    read stays in bounds (its value is discarded)."""
    safe = [K.select(in_range(i, n), i, K.Const(0, K.INDEX)) for i, n in zip(idx, x.aval.shape)]
    return K.select(mask, x.read(kb, safe), fill)


def _pad(lw, eqn, ins):
    x, value = ins
    config = eqn.params["padding_config"]
    padded = [d for d, (lo, hi, interior) in enumerate(config) if (lo, hi, interior) != (0, 0, 0)]

    def fn(kb, idx):
        src, masks = [], []
        for i, (lo, _, interior), n in zip(idx, config, x.aval.shape):
            pos = i - lo
            step = interior + 1
            if step > 1:
                masks.append(K.eq(K.op("mod", pos, K.Const(step, K.INDEX)), K.Const(0, K.INDEX)))
                pos = K.floordiv(pos, K.Const(step, K.INDEX))
            masks.append(in_range(pos, n))
            src.append(pos)
        fill = value.read(kb, [])
        return masked_read(kb, x, src, K.logical_and(*masks), fill) if masks else x.read(kb, src)
    generic = lazy(out_aval(eqn), fn, x, value, extra_cost=3)
    if len(padded) != 1 or config[padded[0]][2] != 0 or min(config[padded[0]][:2]) < 0:
        return [generic]
    dim = padded[0]
    lo, n = config[dim][0], x.aval.shape[dim]

    def outside(kb, idx):
        return value.read(kb, [])
    total = out_aval(eqn).shape[dim]
    pieces = [(0, lo, outside), (lo, lo + n, _read_shifted(x, dim, lo)), (lo + n, total, outside)]
    return [PiecewiseValue(generic.aval, fn, generic.cost, generic.inputs, dim, pieces)]


def _read_shifted(x: Value, dim: int, start: int) -> Callable:
    """A piece's read: ``x`` at the index less ``start`` along ``dim``."""
    def read(kb, idx):
        shifted = list(idx)
        shifted[dim] = idx[dim] - start
        return x.read(kb, shifted)
    return read


def _concatenate(lw, eqn, ins):
    dim = eqn.params["dimension"]
    offsets = np.cumsum([0] + [v.aval.shape[dim] for v in ins]).tolist()

    def fn(kb, idx):
        out = None
        for v, start, stop in reversed(list(zip(ins, offsets[:-1], offsets[1:]))):
            if stop == start:
                continue
            sub = list(idx)
            sub[dim] = idx[dim] - start
            if out is None:
                out = v.read(kb, _clamp_dim(sub, dim, v.aval.shape[dim]))
                continue
            out = K.select(K.op("lt", idx[dim], K.Const(stop, K.INDEX)),
                           v.read(kb, _clamp_dim(sub, dim, v.aval.shape[dim])), out)
        return out
    generic = lazy(out_aval(eqn), fn, *ins, extra_cost=len(ins))
    pieces = [(start, stop, _read_shifted(v, dim, start)) for v, start, stop in zip(ins, offsets[:-1], offsets[1:])]
    return [PiecewiseValue(generic.aval, fn, generic.cost, generic.inputs, dim, pieces)]


def _clamp_dim(idx: list, dim: int, size: int) -> list:
    idx = list(idx)
    idx[dim] = K.minimum(K.maximum(idx[dim], K.Const(0, K.INDEX)), K.Const(size - 1, K.INDEX))
    return idx


def _start_indices(kb, starts: Sequence[Value], count: int) -> list[K.Expr]:
    if len(starts) == 1 and starts[0].aval.ndim == 1:
        return [K.cast(starts[0].read(kb, [K.Const(k, K.INDEX)]), K.INDEX) for k in range(count)]
    return [K.cast(s.read(kb, []), K.INDEX) for s in starts]


def _clamped_start(start: K.Expr, size: int, window: int) -> K.Expr:
    return K.minimum(K.maximum(start, K.Const(0, K.INDEX)), K.Const(max(size - window, 0), K.INDEX))


def _dynamic_slice(lw, eqn, ins):
    x, starts = ins[0], ins[1:]
    sizes = eqn.params["slice_sizes"]

    def fn(kb, idx):
        begin = _start_indices(kb, starts, x.aval.ndim)
        return x.read(kb, [_clamped_start(b, n, s) + i for b, n, s, i in zip(begin, x.aval.shape, sizes, idx)])
    return [lazy(out_aval(eqn), fn, x, *starts, extra_cost=2)]


def _dynamic_update_slice(lw, eqn, ins):
    x, update, starts = ins[0], ins[1], ins[2:]
    sizes = update.aval.shape

    def fn(kb, idx):
        begin = [_clamped_start(b, n, s) for b, n, s in
                 zip(_start_indices(kb, starts, x.aval.ndim), x.aval.shape, sizes)]
        rel = [i - b for i, b in zip(idx, begin)]
        inside = K.logical_and(*[in_range(r, s) for r, s in zip(rel, sizes)]) if sizes else K.Const(True, K.bool_)
        return masked_read(kb, update, rel, inside, x.read(kb, idx))
    return [lazy(out_aval(eqn), fn, x, update, *starts, extra_cost=3)]


def _gather(lw, eqn, ins):
    x, indices = ins
    axes, mode, fill_value = eqn.params["axes"], eqn.params["mode"], eqn.params["fill_value"]
    nbatch = indices.aval.ndim - 1
    rest = [d for d in range(x.aval.ndim) if d not in axes]
    fill = K.Const(0 if fill_value is None else np.asarray(fill_value).item(), ir_dtype(x.aval.dtype))
    if any(x.aval.shape[a] == 0 for a in axes):  # every index is out of bounds (mode "fill")
        return [lazy(out_aval(eqn), lambda kb, idx: fill, extra_cost=0)]

    def fn(kb, idx):
        batch, tail = idx[:nbatch], idx[nbatch:]
        src: list = [None] * x.aval.ndim
        masks = []
        for k, a in enumerate(axes):
            coord = K.cast(indices.read(kb, [*batch, K.Const(k, K.INDEX)]), K.INDEX)
            n = x.aval.shape[a]
            if mode != "fill":  # "clip" and "promise_in_bounds" read clamped
                coord = K.minimum(K.maximum(coord, K.Const(0, K.INDEX)), K.Const(n - 1, K.INDEX))
            else:
                masks.append(in_range(coord, n))
            src[a] = coord
        for d, i in zip(rest, tail):
            src[d] = i
        if not masks:
            return x.read(kb, src)
        return masked_read(kb, x, src, K.logical_and(*masks), fill)
    return [lazy(out_aval(eqn), fn, x, indices, extra_cost=3)]


_SCATTER_OPS = {"add": "add", "max": "max", "min": "min", "mul": "mul"}
#: on bools (XLA's PRED): a sum or max is "any", a product or min is "all"
_BOOL_SCATTER_OPS = {"add": "or", "max": "or", "min": "and", "mul": "and"}


def _scatter_target(kb: KernelBuilder, x_aval: ShapedArray, indices: Value, axes: tuple, idx: list) -> tuple:
    """The flat position in the operand that the update at ``idx`` lands on, and the masks that
    say its index vector is in bounds."""
    nbatch = indices.aval.ndim - 1
    rest = [d for d in range(x_aval.ndim) if d not in axes]
    batch, tail = idx[:nbatch], idx[nbatch:]
    coords: list = [None] * x_aval.ndim
    masks = []
    for k, a in enumerate(axes):
        coord = K.cast(indices.read(kb, [*batch, K.Const(k, K.INDEX)]), K.INDEX)
        masks.append(in_range(coord, x_aval.shape[a]))
        coords[a] = coord
    for d, i in zip(rest, tail):
        coords[d] = i
    return ravel(coords, x_aval.shape), masks


def _emit_scatter(lw: Lowerer, kb: KernelBuilder, idx: list, update_shape: tuple, masks: list, stores: list) -> None:
    """One serial kernel over the updates (duplicates combine in order), storing where in bounds."""
    nest = [K.If(K.logical_and(*masks), stores)] if masks else stores
    for depth in range(len(idx) - 1, -1, -1):
        nest = [K.Range(idx[depth], 0, update_shape[depth], nest)]
    if int(np.prod(update_shape, dtype=np.int64)):
        lw.emit(kb, "scatter", nest)


def _scatter(lw: Lowerer, eqn, ins):
    x, indices, updates = ins
    axes, mode = eqn.params["axes"], eqn.params["mode"]
    aval = out_aval(eqn)
    out = lw.materialize(x, into=lw.output_buffer(eqn.outvars[0], aval), overwritten=True)
    kb = KernelBuilder()
    dst = kb.param(out.buffer)
    idx = [kb.var() for _ in updates.aval.shape]
    flat, masks = _scatter_target(kb, x.aval, indices, axes, idx)
    new = updates.read(kb, idx)
    if mode != "set":
        ops = _BOOL_SCATTER_OPS if aval.dtype == np.bool_ else _SCATTER_OPS
        new = K.op(ops[mode], dst[flat], new)
    _emit_scatter(lw, kb, idx, updates.aval.shape, masks, [dst.store(flat, new)])
    return [out]


def _isnan(v: K.Expr) -> K.Expr:
    return K.op("ne", v, v)


def _keeps_old(mode: str, old: tuple, new: tuple) -> K.Expr:
    """NumPy's complex maximum (minimum): the old value stays if it holds a NaN or is >= (<=)
    the new one lexicographically (``xr > yr`` counting only without NaN imaginary parts)."""
    (xr, xi), (yr, yi) = old, new
    strict, loose = ("gt", "ge") if mode == "max" else ("lt", "le")
    no_nan = K.logical_and(K.op("not", _isnan(xi)), K.op("not", _isnan(yi)))
    beats = K.op("or", K.logical_and(K.op(strict, xr, yr), no_nan),
                 K.logical_and(K.op("eq", xr, yr), K.op(loose, xi, yi)))
    return K.op("or", K.op("or", _isnan(xr), _isnan(xi)), beats)


def _combine_complex(mode: str, old: tuple, new: tuple) -> tuple:
    (xr, xi), (yr, yi) = old, new
    if mode == "mul":                      # NumPy's product, term by term
        return xr * yr - xi * yi, xr * yi + xi * yr
    keep = _keeps_old(mode, old, new)
    return K.select(keep, xr, yr), K.select(keep, xi, yi)


def _scatter_parts(lw: Lowerer, eqn, ins):
    """A max/min/mul scatter of complex values on their parts: one serial kernel that reads both
    parts of the value there (into locals, before either is written) and stores both."""
    x_re, x_im, indices, u_re, u_im = ins
    axes, mode = eqn.params["axes"], eqn.params["mode"]
    aval = eqn.outvars[0].aval
    outs = [lw.materialize(v, into=lw.output_buffer(o, aval), overwritten=True) for v, o in zip((x_re, x_im), eqn.outvars)]
    kb = KernelBuilder()
    dst = [kb.param(o.buffer) for o in outs]
    idx = [kb.var() for _ in u_re.aval.shape]
    flat, masks = _scatter_target(kb, x_re.aval, indices, axes, idx)
    dtype = ir_dtype(aval.dtype)
    held = K.Local("held", dtype, 2)
    re, im = _combine_complex(mode, (held[0], held[1]), (u_re.read(kb, idx), u_im.read(kb, idx)))
    stores = [K.DefineLocal(held), held.store(0, dst[0][flat]), held.store(1, dst[1][flat]),
              dst[0].store(flat, re), dst[1].store(flat, im)]
    _emit_scatter(lw, kb, idx, u_re.aval.shape, masks, stores)
    return outs


#: The rules of this module, by primitive (``rules`` adds them to ``schedule.lowering_rules``).
RULES = {sh.broadcast_in_dim_p: _broadcast_in_dim, sh.reshape_p: _reshape, sh.transpose_p: _transpose,
         sh.squeeze_p: _squeeze, sh.expand_dims_p: _expand_dims, sh.slice_p: _slice, sh.rev_p: _rev,
         sh.iota_p: _iota, sh.pad_p: _pad, sh.concatenate_p: _concatenate,
         indexing.dynamic_slice_p: _dynamic_slice, indexing.dynamic_update_slice_p: _dynamic_update_slice,
         indexing.gather_p: _gather, indexing.scatter_p: _scatter, complex_parts.scatter_parts_p: _scatter_parts}
