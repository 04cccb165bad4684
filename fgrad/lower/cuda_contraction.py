"""GPU matrix-multiply kernels as CUDA C templates: tiled shared-memory GEMM, and TF32
tensor-core GEMM (wmma) for float32 when ``fgrad.config.matmul_precision`` is 'tf32'.

The kernel IR has no shared memory or barriers, so these are written directly in CUDA C
(one ``extern "C"`` kernel per shape; sizes and strides are compile-time constants).
``GemmSpec`` describes ``C[b] = A[b] @ B[b]`` over strided operands and a contiguous
``C`` of shape (batch, m, n) — the output order of ``dot_general`` with one batch,
one free and one contracting dimension per operand. ``GemmSpec.reference`` is its NumPy
definition (what a fake driver runs, and what tests compare against).

* ``simt``: 64x64 output tiles, 16-deep K slabs in shared memory, 256 threads with a 4x4
  register tile each (rows and columns strided by 16 so shared-memory reads do not
  conflict); any float dtype; operands zero-padded at the edges.
* ``tf32``: the same tiling on 4 warps, each computing a 32x32 tile as 2x2 wmma
  16x16x8 TF32 fragments (sm_80+); inputs are rounded to TF32 (10-bit mantissa) as they
  enter shared memory, accumulation is float32; edges are staged through shared memory.

    >>> spec = GemmSpec.for_dot_general((128, 64), (64, 32), (((1,), (0,)), ((), ())), np.float32)
    >>> source, grid, block = render_gemm(spec, "fg_gemm")
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fgrad.lower import kernel as K
from fgrad.lower.cuda_scalar import C_TYPES
from fgrad.lower.kernel import row_major_strides

TILE = 64
SLAB = 16
PRECISIONS = ("highest", "tf32")


@dataclass(frozen=True)
class GemmSpec:
    """``C[b, i, j] = sum_k A[a_off(b, i, k)] * B[b_off(b, k, j)]``, C contiguous (batch, m, n).

    ``a_strides`` = (batch, m, k) element strides of A; ``b_strides`` = (batch, k, n) of B.
    """

    batch: int
    m: int
    n: int
    k: int
    dtype: np.dtype
    a_strides: tuple
    b_strides: tuple
    precision: str = "highest"

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", np.dtype(self.dtype))
        if self.precision not in PRECISIONS:
            raise ValueError(f"GemmSpec: precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.precision == "tf32" and self.dtype != np.float32:
            raise ValueError(f"GemmSpec: TF32 applies to float32 only, got {self.dtype.name}")
        if self.dtype.kind != "f" or self.dtype not in C_TYPES:
            raise TypeError(f"GemmSpec: float32 or float64 operands, got {self.dtype.name}")
        if min(self.batch, self.m, self.n, self.k) < 1 or self.batch > 65535 or -(-self.m // TILE) > 65535:
            raise ValueError(f"GemmSpec: sizes batch={self.batch} m={self.m} n={self.n} k={self.k} "
                             "must be >= 1 (batch and m / 64 at most 65535)")

    @staticmethod
    def for_dot_general(lhs_shape, rhs_shape, dimension_numbers, dtype, precision: str = "highest"):
        """The spec of ``dot_general`` on C-contiguous operands, or None when the contraction has
        more than one batch, free or contracting dimension per operand."""
        (lc, rc), (lb, rb) = dimension_numbers
        lhs_shape, rhs_shape = tuple(lhs_shape), tuple(rhs_shape)
        if len(lc) != 1 or len(rc) != 1 or len(lb) != len(rb) or len(lb) > 1:
            return None
        if len(lhs_shape) != len(lb) + 2 or len(rhs_shape) != len(rb) + 2:
            return None
        lfree = [d for d in range(len(lhs_shape)) if d not in (*lc, *lb)][0]
        rfree = [d for d in range(len(rhs_shape)) if d not in (*rc, *rb)][0]
        ls, rs = row_major_strides(lhs_shape), row_major_strides(rhs_shape)
        batch = lhs_shape[lb[0]] if lb else 1
        return GemmSpec(batch, lhs_shape[lfree], rhs_shape[rfree], lhs_shape[lc[0]], dtype,
                        (ls[lb[0]] if lb else 0, ls[lfree], ls[lc[0]]),
                        (rs[rb[0]] if rb else 0, rs[rc[0]], rs[rfree]), precision)

    def extent(self, strides: tuple, dims: tuple) -> int:
        """Elements spanned by an operand (the size a flat view of it needs)."""
        return 1 + sum((d - 1) * s for d, s in zip(dims, strides))

    @property
    def sizes(self) -> tuple:
        """Flat element counts of A, B and C (the kernel's three params)."""
        return (self.extent(self.a_strides, (self.batch, self.m, self.k)),
                self.extent(self.b_strides, (self.batch, self.k, self.n)), self.batch * self.m * self.n)

    def reference(self, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
        """Write ``A @ B`` into flat ``c`` (NumPy; TF32 rounds the inputs first)."""
        item = self.dtype.itemsize
        av = np.lib.stride_tricks.as_strided(a, (self.batch, self.m, self.k), [s * item for s in self.a_strides])
        bv = np.lib.stride_tricks.as_strided(b, (self.batch, self.k, self.n), [s * item for s in self.b_strides])
        if self.precision == "tf32":
            av, bv = round_to_tf32(av), round_to_tf32(bv)
        c.reshape(self.batch, self.m, self.n)[...] = np.matmul(av, bv, dtype=self.dtype)


def round_to_tf32(x: np.ndarray) -> np.ndarray:
    """float32 values rounded to TF32's 10-bit mantissa, to nearest with ties away from zero
    (as ``wmma::__float_to_tf32``/``cvt.rna.tf32.f32``); NaN and infinities pass through."""
    bits = np.ascontiguousarray(x, np.float32).view(np.uint32)
    rounded = ((bits + np.uint32(0x1000)) & np.uint32(0xFFFFE000)).view(np.float32)
    return np.where(np.isfinite(x), rounded, x).astype(np.float32)


def render_gemm(spec: GemmSpec, name: str) -> tuple[str, tuple, tuple]:
    """(CUDA C source, grid, block) of one GEMM kernel named ``name``."""
    if not name.isidentifier():
        raise ValueError(f"render_gemm: kernel name {name!r} is not a C identifier")
    grid = (-(-spec.n // TILE), -(-spec.m // TILE), spec.batch)
    if spec.precision == "tf32":
        return "#include <mma.h>\n" + _tf32_kernel(spec, name), grid, (128, 1, 1)
    return _simt_kernel(spec, name), grid, (256, 1, 1)


def _constants(spec: GemmSpec) -> str:
    (sab, sam, sak), (sbb, sbk, sbn) = spec.a_strides, spec.b_strides
    return (f"    const long long M = {spec.m}, N = {spec.n}, K = {spec.k};\n"
            f"    const long long SAB = {sab}, SAM = {sam}, SAK = {sak}, SBB = {sbb}, SBK = {sbk}, SBN = {sbn};\n"
            f"    const T* a = A + (long long)blockIdx.z * SAB;\n"
            f"    const T* b = B + (long long)blockIdx.z * SBB;\n"
            f"    T* c = C + (long long)blockIdx.z * M * N;\n"
            f"    const long long m0 = (long long)blockIdx.y * {TILE}, n0 = (long long)blockIdx.x * {TILE};\n")


def _simt_kernel(spec: GemmSpec, name: str) -> str:
    t = C_TYPES[spec.dtype]
    body = simt_tile_loop(t, "v = a[gm * SAM + gk * SAK];", "v = b[gk * SBK + gn * SBN];", "c[gm * N + gn] = v;")
    return f"""
extern "C" __global__ void __launch_bounds__(256) {name}(const {t}* __restrict__ A, const {t}* __restrict__ B,
                                                        {t}* __restrict__ C) {{
    typedef {t} T;
{_constants(spec)}{body}}}
"""


def simt_tile_loop(t: str, load_a: str, load_b: str, store: str) -> str:
    """The SIMT GEMM's loop over K for one 64x64 output tile (see the module docstring), in a
    kernel of 256 threads that defines ``T``, sizes ``M``, ``N``, ``K`` and the tile's corner
    ``m0``, ``n0``. The snippets are statements: ``load_a`` sets ``T v`` to A at (``gm``,
    ``gk``), ``load_b`` to B at (``gk``, ``gn``) (both only called in range), ``store``
    writes ``v``, the sum at (``gm``, ``gn``)."""
    return f"""    __shared__ T As[{SLAB}][{TILE} + 1];   // [k][m]
    __shared__ T Bs[{SLAB}][{TILE}];       // [k][n]
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    T acc[4][4];
    #pragma unroll
    for (int i = 0; i < 4; ++i)
        #pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = (T)0;
    for (long long k0 = 0; k0 < K; k0 += {SLAB}) {{
{_stage_slab(256, load_a, load_b, "As[kk][mm] = v;", "Bs[kk][nn] = v;")}        __syncthreads();
        #pragma unroll
        for (int kk = 0; kk < {SLAB}; ++kk) {{
            T ra[4], rb[4];
            #pragma unroll
            for (int i = 0; i < 4; ++i) ra[i] = As[kk][ty + 16 * i];
            #pragma unroll
            for (int j = 0; j < 4; ++j) rb[j] = Bs[kk][tx + 16 * j];
            #pragma unroll
            for (int i = 0; i < 4; ++i)
                #pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] = fma(ra[i], rb[j], acc[i][j]);
        }}
        __syncthreads();
    }}
    #pragma unroll
    for (int i = 0; i < 4; ++i) {{
        const long long gm = m0 + ty + 16 * i;
        #pragma unroll
        for (int j = 0; j < 4; ++j) {{
            const long long gn = n0 + tx + 16 * j;
            if (gm < M && gn < N) {{
                const T v = acc[i][j];
                {store}
            }}
        }}
    }}
"""


def _tf32_kernel(spec: GemmSpec, name: str) -> str:
    body = tf32_tile_loop("v = a[gm * SAM + gk * SAK];", "v = b[gk * SBK + gn * SBN];", "c[gm * N + gn] = v;")
    return f"""
extern "C" __global__ void __launch_bounds__(128) {name}(const float* __restrict__ A, const float* __restrict__ B,
                                                        float* __restrict__ C) {{
    typedef float T;
    using namespace nvcuda;
{_constants(spec)}{body}}}
"""


def _stage_slab(threads: int, load_a: str, load_b: str, put_a: str, put_b: str) -> str:
    """The loops of a tile loop that bring one K slab of A (64 x 16) and B (16 x 64) into
    shared memory: each element read by a snippet (zero past the edges), then ``put``."""
    return f"""        for (int e = threadIdx.x; e < {TILE * SLAB}; e += {threads}) {{
            const int mm = e / {SLAB}, kk = e % {SLAB};
            const long long gm = m0 + mm, gk = k0 + kk;
            T v = (T)0;
            if (gm < M && gk < K) {{
                {load_a}
            }}
            {put_a}
        }}
        for (int e = threadIdx.x; e < {TILE * SLAB}; e += {threads}) {{
            const int kk = e / {TILE}, nn = e % {TILE};
            const long long gk = k0 + kk, gn = n0 + nn;
            T v = (T)0;
            if (gk < K && gn < N) {{
                {load_b}
            }}
            {put_b}
        }}
"""


def tf32_tile_loop(load_a: str, load_b: str, store: str) -> str:
    """The TF32 tensor-core GEMM's loop over K for one 64x64 float32 output tile, in a kernel
    of 128 threads (4 warps of 32x32) that includes ``<mma.h>``, uses ``nvcuda`` and
    defines ``T``, ``M``, ``N``, ``K``, ``m0``, ``n0``; the snippets are those of
    ``simt_tile_loop``. Operands are rounded to TF32 as they enter shared memory."""
    lda, ldb = SLAB + 4, TILE + 4            # multiples of 4 floats, rows 32-byte aligned at 16-row steps
    return f"""    __shared__ __align__(32) float As[{TILE}][{lda}];   // [m][k], TF32-rounded
    __shared__ __align__(32) float Bs[{SLAB}][{ldb}];   // [k][n], TF32-rounded
    __shared__ __align__(32) float Cs[{TILE}][{ldb}];
    const int warp = threadIdx.x / 32, wr = (warp / 2) * 32, wc = (warp % 2) * 32;
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc[2][2];
    #pragma unroll
    for (int i = 0; i < 2; ++i)
        #pragma unroll
        for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.0f);
    for (long long k0 = 0; k0 < K; k0 += {SLAB}) {{
{_stage_slab(128, load_a, load_b, "As[mm][kk] = wmma::__float_to_tf32(v);",
               "Bs[kk][nn] = wmma::__float_to_tf32(v);")}        __syncthreads();
        #pragma unroll
        for (int kk = 0; kk < {SLAB}; kk += 8) {{
            wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fa[2];
            wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fb[2];
            #pragma unroll
            for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(fa[i], &As[wr + 16 * i][kk], {lda});
            #pragma unroll
            for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(fb[j], &Bs[kk][wc + 16 * j], {ldb});
            #pragma unroll
            for (int i = 0; i < 2; ++i)
                #pragma unroll
                for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
        }}
        __syncthreads();
    }}
    #pragma unroll
    for (int i = 0; i < 2; ++i)
        #pragma unroll
        for (int j = 0; j < 2; ++j)
            wmma::store_matrix_sync(&Cs[wr + 16 * i][wc + 16 * j], acc[i][j], {ldb}, wmma::mem_row_major);
    __syncthreads();
    for (int e = threadIdx.x; e < {TILE * TILE}; e += 128) {{
        const int mm = e / {TILE}, nn = e % {TILE};
        const long long gm = m0 + mm, gn = n0 + nn;
        if (gm < M && gn < N) {{
            const float v = Cs[mm][nn];
            {store}
        }}
    }}
"""


def tf32_round(x):
    """Kernel IR rounding float32 ``x`` to TF32 as the tensor cores' inputs are (``round_to_tf32``):
    the GPU lowering wraps a GEMM's operands in it under ``matmul_precision='tf32'``, so the
    IR's meaning (the interpreter's result) is the TF32 product, and the CUDA renderer,
    seeing both operands rounded (``is_tf32_round``), picks the tensor-core template."""
    bits = K.bitcast(x, K.uint32)
    rounded = K.op("and", K.op("add", bits, K.Const(0x1000, K.uint32)), K.Const(0xFFFFE000, K.uint32))
    return K.bitcast(K.select(K.op("is_finite", x), rounded, bits), K.float32)


def is_tf32_round(e) -> bool:
    """Whether kernel IR ``e`` is ``tf32_round(x)`` for some ``x``."""
    if not (isinstance(e, K.Op) and e.op == "bitcast" and e.dtype == K.float32):
        return False
    choice = e.args[0]
    if not (isinstance(choice, K.Op) and choice.op == "select"):
        return False
    finite = choice.args[0]
    return isinstance(finite, K.Op) and finite.op == "is_finite" and e == tf32_round(finite.args[0])
