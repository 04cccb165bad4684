"""Convolutions as contraction templates (``fgrad.lower.contraction``): ``conv`` maps
conv_general_dilated onto the batched GEMM, with the im2col view of the input as its B operand.

Unit-stride convolutions are computed *shifted* (``_shifted_grid``): on a grid of output
positions whose rows are as wide as the padded input's rows (``_Layout``: rows share their
padding), where each window tap reads one contiguous run of the padded image, so the B pack
copies whole vectors instead of gathering element by element. The grid's extra columns are
either kept in a grid-shaped output (``grid_output``, which the lowering reads lazily) or not
stored (``Output.mask``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from fgrad.lower import kernel as K
from fgrad.lower.contraction import (
    Contraction, GemmConfig, GemmTuning, Operand, Source, _as_source, _buffers_of, _decode, _fits_int32,
    _index, _min, _output, _params, _zero, gemm, param,
)
from fgrad.lower.kernel import AUTO, Buffer, Call, Const, Expr, Kernel, Range, Var, row_major_strides
from fgrad.ops.window import output_sizes


def conv(name: str, lhs, rhs, out: Buffer, *, window_strides: Sequence[int],
         padding: Sequence[tuple[int, int]], lhs_dilation: Sequence[int] | None = None,
         rhs_dilation: Sequence[int] | None = None, dimension_numbers=None,
         feature_group_count: int = 1, batch_group_count: int = 1,
         epilogue: Callable[[Expr, tuple], Expr] | None = None, epilogue_buffers: tuple = (), vector_bytes: int = 64, threads: int = 2,
         config: GemmConfig | None = None, tuning: GemmTuning | None = None, grid_output: bool = False) -> Contraction:
    """conv_general_dilated as a GEMM whose B packing is the im2col gather.

    ``grid_output``: ``out`` holds (images, features, ``shifted_grid(...)``...): the positions
    of the shifted GEMM (``_shifted_grid``), each row as wide as the padded input's rows, of
    which a reader uses the first output-width columns. Without it a shifted conv masks its
    stores.

    ``dimension_numbers`` = (lhs_spec, rhs_spec, out_spec) as dimension indices, JAX's
    ``ConvDimensionNumbers``: lhs (batch, feature, spatial...), rhs (out feature, in
    feature, spatial...), out (batch, feature, spatial...); default NCHW / OIHW / NCHW.
    ``out`` is a C-contiguous buffer in out_spec's layout.

    Why GEMM rather than a direct loop nest, measured with ``benchmarks/matmul.py --conv``
    (MNIST shapes at batch 128, one thread, GFLOP/s): conv2 forward 138 (direct loop
    nest vectorised over output columns: 11.5), conv2 input gradient 97 (direct: 10),
    conv1 forward 41 (direct: 44; it is bound by writing its 11 MB output either way).
    The 11- and 13-wide rows of conv2 leave most SIMD lanes of a direct loop idle, while
    the GEMM's im2col panels are always full vectors; for conv1 the two are level.

    ``batch_group_count`` = B > 1 (a grouped conv's weight gradient) splits the images, not
    the input features, into B groups: group ``gg`` reads images ``gg * N/B ...`` with all
    input features and writes output features ``gg * O/B ...`` of the N/B output images.
    """
    # Over 80 lines with its docstring (which records the measurements behind the design); the
    # body is one straight mapping of conv's dimension numbers onto the GEMM template.
    lhs, rhs = _as_source(lhs), _as_source(rhs)
    nsp = len(lhs.shape) - 2
    lhs_spec, rhs_spec, out_spec = dimension_numbers or (tuple(range(nsp + 2)),) * 3
    lhs_dilation = tuple(lhs_dilation or (1,) * nsp)
    rhs_dilation = tuple(rhs_dilation or (1,) * nsp)
    bg = batch_group_count
    g = feature_group_count * bg   # at most one of the two is > 1
    n_in, c_in = lhs.shape[lhs_spec[0]], lhs.shape[lhs_spec[1]]
    c_out, c_in_g = rhs.shape[rhs_spec[0]], rhs.shape[rhs_spec[1]]
    in_sp = [lhs.shape[d] for d in lhs_spec[2:]]
    k_sp = [rhs.shape[d] for d in rhs_spec[2:]]
    out_full = tuple(out.shape)
    out_sp = [out_full[d] for d in out_spec[2:]]
    if grid_output:
        out_sp = list(output_sizes(in_sp, k_sp, window_strides, padding, lhs_dilation, rhs_dilation))
    n_img = n_in // bg
    if feature_group_count > 1 and bg > 1:
        raise ValueError(f"{name}: feature_group_count and batch_group_count cannot both exceed 1")
    if c_in != c_in_g * feature_group_count or c_out % g or n_in % bg:
        raise ValueError(f"{name}: {c_in} input features, {n_in} images and {c_out} output features "
                         f"do not split into {g} groups of {c_in_g} (the kernel's input features)")
    c_out_g = c_out // g
    m, k = c_out_g, c_in_g * math.prod(k_sp)
    k_sizes = [c_in_g] + k_sp

    def a_value(gg: Expr, co: Expr, kidx: Expr, valid: Expr) -> Expr:
        ci, *kpos = _decode(kidx, k_sizes)
        idx = [None] * (nsp + 2)
        idx[rhs_spec[0]], idx[rhs_spec[1]] = gg * c_out_g + co, ci
        for d, kp in zip(rhs_spec[2:], kpos):
            idx[d] = kp
        return rhs.read(tuple(idx), valid)

    out_strides = row_major_strides(out_full)
    spatial = math.prod(out_sp)
    # Images folded into the columns when the output keeps each image's positions together
    # (image stride == positions, e.g. the weight gradient's (O, I, H, W)): fewer, wider GEMMs.
    fold = not grid_output and n_img > 1 and out_strides[out_spec[0]] == spatial and \
        tuple(out_strides[d] for d in out_spec[2:]) == row_major_strides(out_sp)

    def split(bb: Expr, j: Expr) -> tuple[Expr, Expr, Expr]:
        """(image, group, output position) of GEMM batch bb, column j."""
        if fold:
            return j // spatial, bb, j % spatial
        return bb // g, bb % g, j

    def b_value(bb: Expr, kidx: Expr, j: Expr, valid: Expr) -> Expr:
        img, gg, sidx = split(bb, j)
        ci, *kpos = _decode(kidx, k_sizes)
        opos = _decode(sidx, out_sp)
        idx = [None] * (nsp + 2)
        if bg > 1:
            idx[lhs_spec[0]], idx[lhs_spec[1]] = gg * n_img + img, ci
        else:
            idx[lhs_spec[0]], idx[lhs_spec[1]] = img, gg * c_in_g + ci
        ok = valid
        for d in range(nsp):
            pos = opos[d] * window_strides[d] - padding[d][0] + kpos[d] * rhs_dilation[d]
            dil = lhs_dilation[d]
            coord = pos if dil == 1 else pos // dil
            ok = K.logical_and(ok, *_window_checks(d, pos, coord))
            idx[lhs_spec[2 + d]] = K.select(ok, coord, Const(0, coord.dtype))
        return lhs.read(tuple(idx), ok)

    def _window_checks(d: int, pos: Expr, coord: Expr) -> tuple:
        """The tests that input position ``pos`` (``coord`` once undilated) of spatial dim d is
        inside the input, less those its bounds always pass (a conv without padding reads
        inside by construction: masks on every element cost its im2col pack a third of its time)."""
        dil = lhs_dilation[d]
        highest = (out_sp[d] - 1) * window_strides[d] - padding[d][0] + (k_sp[d] - 1) * rhs_dilation[d]
        checks = [] if padding[d][0] <= 0 else [pos >= 0]
        if highest // dil >= in_sp[d]:
            checks.append(coord < in_sp[d])
        return (*checks, *(() if dil == 1 else (K.eq(pos % dil, 0),)))

    def out_index(bb: Expr, co: Expr, j: Expr) -> Expr:
        img, gg, sidx = split(bb, j)
        index: Expr = img * out_strides[out_spec[0]] + (gg * c_out_g + co) * out_strides[out_spec[1]]
        for d, coord in zip(out_spec[2:], _decode(sidx, out_sp)):
            index = index + coord * out_strides[d]
        return index

    def coords(bb: Expr, co: Expr, j: Expr) -> tuple:
        img, gg, sidx = split(bb, j)
        idx = [None] * (nsp + 2)
        idx[out_spec[0]], idx[out_spec[1]] = img, gg * c_out_g + co
        for d, coord in zip(out_spec[2:], _decode(sidx, out_sp)):
            idx[d] = coord
        return tuple(idx)

    a = Operand(rhs.buffers, a_value, g, (lambda bb: bb % g) if g > 1 else (lambda bb: Const(0, bb.dtype)))
    options = dict(config=config, vector_bytes=vector_bytes, threads=threads, tuning=tuning)
    grid = None if fold or bg > 1 else _shifted_grid(in_sp, k_sp, out_sp, window_strides, padding,
                                                    lhs_dilation, rhs_dilation)
    if grid_output and (grid is None or tuple(out_spec) != tuple(range(nsp + 2))):
        raise ValueError(f"{name}: grid_output needs a shifted convolution (shifted_grid) and the output in "
                         f"(images, features, grid...) order")
    if grid is not None and (grid_output or k >= SHIFT_MIN_DEPTH * m):
        image = _padded_input(name, lhs, lhs_spec, grid, grid.overflow(k_sp, rhs_dilation))
        b = image.operand(g, c_in, c_in_g, k_sizes, rhs_dilation)
        if grid_output:    # the grid's flat positions are the buffer's: contiguous stores, none masked
            output = _output(out, out_full, lambda bb, co, j: (bb * c_out_g + co) * grid.size + j,
                             lambda bb, co, j: coords(bb, co, grid.clamped(j)), epilogue, epilogue_buffers)
        else:
            output = _output(out, out_full, lambda bb, co, j: out_index(bb, co, grid.clamped(j)),
                             lambda bb, co, j: coords(bb, co, grid.clamped(j)), epilogue, epilogue_buffers,
                             mask=grid.kept if grid.grid != list(out_sp) else None)
        plan = gemm(name, batch=n_img * g, m=m, n=grid.size, k=k, a=a, b=b, out=output, dtype=out.dtype,
                    **options)
        return Contraction(image.steps + plan.steps, image.temporaries + plan.temporaries, plan.flops,
                           image.kernels + plan.kernels)
    b = Operand(lhs.buffers, b_value)
    output = _output(out, out_full, out_index, coords, epilogue, epilogue_buffers)
    batch, n = (g, n_img * spatial) if fold else (n_img * g, spatial)
    return gemm(name, batch=batch, m=m, n=n, k=k, a=a, b=b, out=output, dtype=out.dtype, **options)


#: a shifted convolution (``_shifted_grid``) computes at most this many columns per output position
SHIFT_MAX_WASTE = 1.5
#: with masked (scattered) stores, the shift pays only when K is at least this many times M: it
#: makes the B pack (K x N elements) contiguous, and the stores (M x N) scattered
SHIFT_MIN_DEPTH = 2


def shifted_grid(lhs_shape: Sequence[int], rhs_shape: Sequence[int], *, window_strides, padding,
                 lhs_dilation=None, rhs_dilation=None, dimension_numbers=None, feature_group_count: int = 1,
                 batch_group_count: int = 1) -> tuple | None:
    """The spatial sizes of a conv's shifted grid (``_shifted_grid``): the output's rows each
    as wide as the padded input's rows; None when the conv is not computed shifted."""
    nsp = len(lhs_shape) - 2
    lhs_spec, rhs_spec, _ = dimension_numbers or (tuple(range(nsp + 2)),) * 3
    if batch_group_count > 1:
        return None
    in_sp = [lhs_shape[d] for d in lhs_spec[2:]]
    k_sp = [rhs_shape[d] for d in rhs_spec[2:]]
    lhs_dilation, rhs_dilation = tuple(lhs_dilation or (1,) * nsp), tuple(rhs_dilation or (1,) * nsp)
    if any(lo < 0 or hi < 0 for lo, hi in padding):
        return None
    out_sp = list(output_sizes(in_sp, k_sp, window_strides, padding, lhs_dilation, rhs_dilation))
    layout = _shifted_grid(in_sp, k_sp, out_sp, window_strides, padding, lhs_dilation, rhs_dilation)
    return None if layout is None else tuple(layout.grid)


def _shifted_grid(in_sp: Sequence[int], k_sp: Sequence[int], out_sp: Sequence[int], window_strides,
                  padding, lhs_dilation, rhs_dilation) -> "_Layout | None":
    """How a conv reads its im2col rows as contiguous runs (``_Layout``), else None.

    With unit window strides and no lhs dilation, output position o reads window tap q of the
    padded input at o + q * rhs_dilation. Computed on a grid whose rows are as wide as the
    padded input's rows (Ho x Wp positions rather than Ho x Wo), grid column j reads tap q at
    j + offset(q) of the flat padded image: one contiguous run per tap, which the B pack copies
    as whole vectors instead of gathering each element through div/mod and bounds checks (with
    AVX2's slow gathers, that gather was half of the MNIST conv2's time). The grid's extra
    columns per row are computed and not stored (``Output.mask``) or kept in a grid-shaped
    output (``grid_output``)."""
    if any(s != 1 for s in window_strides) or any(d != 1 for d in lhs_dilation) or not out_sp:
        return None
    if any(lo < 0 or hi < 0 for lo, hi in padding) or math.prod(out_sp) == 0:
        return None
    padded = [size + lo + hi for size, (lo, hi) in zip(in_sp, padding)]
    if any(p - d * (q - 1) != o for p, q, d, o in zip(padded, k_sp, rhs_dilation, out_sp)):
        return None
    layout = _Layout(list(in_sp), list(padding), list(out_sp), (k_sp[-1] - 1) * rhs_dilation[-1])
    if math.prod(layout.grid) > SHIFT_MAX_WASTE * math.prod(out_sp):
        return None
    return layout


class _Layout:
    """The padded input of a shifted conv, (images, features, spatial...) C-contiguous, and the
    grid of positions the shifted GEMM computes.

    Dims before the last are padded as usual. Rows along the last dim share their padding: each
    row is ``lead`` zeros then the data, where ``lead`` is the larger of the two pads, so a read
    running past a row's data lands in the next row's leading zeros. Rows are then
    ``lead`` shorter than padding both sides (the MNIST conv2's input gradient, padded by 2 on
    11 columns: rows of 13, which is its output's width, rather than 15). When the smaller pad
    exceeds the window's reach, that layout's rows would be narrower than the output's, and
    both sides are padded.

    The grid is the output's first dim by the layout's others; its flat positions step like the
    layout's, so grid position j reads tap q at ``j + offset(q) + shift``."""

    def __init__(self, in_sp: list, padding: list, out_sp: list, reach: int) -> None:
        lo, hi = padding[-1]
        shared = min(lo, hi) <= reach
        self.lead = max(lo, hi) if shared else lo
        ends = [low + high for low, high in padding[:-1]] + [self.lead if shared else lo + hi]
        self.sizes = [size + extra for size, extra in zip(in_sp, ends)]
        self.before = [low for low, _ in padding[:-1]] + [self.lead]
        self.shift = self.lead - lo
        self.out_sp = out_sp
        self.grid = [out_sp[0]] + self.sizes[1:]
        self.plane = math.prod(self.sizes)
        self.strides = row_major_strides(self.sizes)

    def overflow(self, k_sp: Sequence[int], rhs_dilation: Sequence[int]) -> int:
        """How far past the last padded image the last grid position's widest tap reads."""
        last = sum((g - 1) * s for g, s in zip(self.grid, self.strides))
        reach = sum((q - 1) * d * s for q, d, s in zip(k_sp, rhs_dilation, self.strides))
        return max(0, last + reach + self.shift - (self.plane - 1))

    @property
    def size(self) -> int:
        return math.prod(self.grid)

    def clamped(self, j: Expr) -> Expr:
        """Grid position j as the output position it stores (the row's last for extra columns),
        flat in the output's own row-major numbering."""
        coords = _decode(j, self.grid)
        flat: Expr = coords[0]
        for coord, size, wide in zip(coords[1:], self.out_sp[1:], self.grid[1:]):
            flat = flat * size + (coord if size == wide else _min(coord, size - 1))
        return flat

    def kept(self, bb: Expr, i: Expr, j: Expr) -> Expr | None:
        """Whether grid position j is an output position (None: every one is)."""
        coords = _decode(j, self.grid)
        conds = [c < size for c, size, wide in zip(coords[1:], self.out_sp[1:], self.grid[1:]) if size < wide]
        return K.logical_and(*conds) if conds else None


@dataclass
class _PaddedInput:
    """A conv input laid out as ``layout`` says from ``offset`` of ``buffer``, made by ``steps``
    (none when the input already is one); loads at or past ``limit`` are masked off (None: the
    buffer holds every read)."""

    buffer: Buffer
    offset: int
    layout: _Layout
    limit: int | None
    steps: tuple = ()
    temporaries: tuple = ()
    kernels: tuple = ()

    def operand(self, groups: int, c_in: int, c_in_g: int, k_sizes: Sequence[int], rhs_dilation) -> Operand:
        """B of the shifted GEMM: B[(image, group), (feature, tap), j] = Xp[image, feature,
        j + offset(tap) + shift]."""
        p = param(self.buffer)
        layout = self.layout
        tap_steps = [d * s for d, s in zip(rhs_dilation, layout.strides)]

        def value(bb: Expr, kidx: Expr, j: Expr, valid: Expr) -> Expr:
            ci, *taps = _decode(kidx, k_sizes)
            image, group = (bb // groups, bb % groups) if groups > 1 else (bb, None)
            feature = ci if group is None else group * c_in_g + ci
            index = (image * c_in + feature) * layout.plane + (self.offset + layout.shift) + j
            for tap, step in zip(taps, tap_steps):
                index = index + tap * step
            mask = valid if self.limit is None else K.logical_and(valid, index < self.limit)
            return p.load(index, mask)
        return Operand((self.buffer,), value, runs=True)


def _padded_input(name: str, lhs: Source, lhs_spec: Sequence[int], layout: _Layout, overflow: int) -> _PaddedInput:
    """The conv input padded (``_PaddedInput``): the input itself when it is a plain
    C-contiguous (images, features, spatial...) array and the padding is zero, else a kernel
    writing it (with any fused producer) into a temporary with ``overflow`` zeros after it."""
    nsp = len(layout.sizes)
    images, features = lhs.shape[lhs_spec[0]], lhs.shape[lhs_spec[1]]
    size = images * features * layout.plane
    natural = tuple(range(nsp + 2))
    in_sp = [lhs.shape[d] for d in lhs_spec[2:]]
    if (lhs.strides is not None and tuple(lhs_spec) == natural and tuple(lhs.strides) == row_major_strides(lhs.shape)
            and layout.sizes == in_sp):
        buf = lhs.buffers[0]
        limit = None if lhs.offset + size + overflow <= buf.size else buf.size
        return _PaddedInput(buf, lhs.offset, layout, limit)
    tv, pvs = Var("t"), [Var(f"p{d}") for d in range(nsp)]
    narrow = _fits_int32(size + overflow, *(buf.size for buf in lhs.buffers))
    t, ps = _index(tv, narrow), [_index(v, narrow) for v in pvs]
    coords = [pos - before for pos, before in zip(ps, layout.before)]
    inside = K.logical_and(*(K.logical_and(c >= 0, c < extent) for c, extent in zip(coords, in_sp)))
    idx: list = [None] * (nsp + 2)
    idx[lhs_spec[0]], idx[lhs_spec[1]] = t // features, t % features
    for d, coord in zip(lhs_spec[2:], coords):
        idx[d] = K.select(inside, coord, Const(0, coord.dtype))
    value = lhs.read(tuple(idx), inside)
    value = K.select(inside, value, _zero(value.dtype))
    buf = Buffer(f"{name}_xp", value.dtype, (size + overflow,))
    dest = t * layout.plane + sum((pos * s for pos, s in zip(ps, layout.strides)), Const(0, t.dtype))
    loop: Range = Range(pvs[-1], 0, layout.sizes[-1], (param(buf).store(dest, value),), vectorize=AUTO)
    for v, extent in zip(reversed(pvs[:-1]), reversed(layout.sizes[:-1])):
        loop = Range(v, 0, extent, (loop,))
    body: tuple = (Range(tv, 0, images * features, (loop,), parallel=True),)
    if overflow:    # the last row's reads past its data expect the next row's leading zeros
        zv = Var("z")
        body += (Range(zv, 0, overflow, (param(buf).store(size + zv, _zero(value.dtype)),)),)
    kern = Kernel(f"{name}_pad", _params(*lhs.buffers, buf), body)
    return _PaddedInput(buf, 0, layout, None, (Call(kern, _buffers_of(kern, *lhs.buffers, buf)),), (buf,),
                        (kern,))
