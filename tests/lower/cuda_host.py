"""Run rendered CUDA C on the host, to check its semantics where there is no GPU.

The source is compiled with g++ and OpenMP against a shim of CUDA's built-ins. A launch
runs the blocks of the grid one after another; each block is an OpenMP parallel region
of one OS thread per CUDA thread, so ``__syncthreads()`` is a real barrier
(``#pragma omp barrier``) and ``__shared__`` variables are static storage (one block runs
at a time). ``nvcuda::wmma`` (``<mma.h>``) is emulated with whole-tile fragments: every
thread of a warp holds and computes the warp's full tile, and all of them store the same
values. Floating-point contraction is off (``-ffp-contract=off``) so float results match
a CPU reference bit for bit where the kernel does the same operations in the same order.

    >>> module = HostModule(source, tmp_path)
    >>> module.launch("fg_gemm", [a, b, c], grid=(1, 2, 3), block=256)
"""
from __future__ import annotations

import ctypes
import os
import pathlib
import re
import shutil
import subprocess
from typing import Sequence

import numpy as np

GXX = shutil.which("g++")

SHIM = r"""
#include <cmath>
#include <math.h>
#include <string.h>
#include <omp.h>
#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(n)
struct fg_dim3 { unsigned int x, y, z; };
static thread_local fg_dim3 threadIdx, blockIdx;
static fg_dim3 blockDim, gridDim;
static inline void __syncthreads() { _Pragma("omp barrier") }
template <typename To, typename From> static inline To fg_host_bits(From x) { To y; memcpy(&y, &x, sizeof y); return y; }
static inline int __float_as_int(float x) { return fg_host_bits<int>(x); }
static inline float __int_as_float(int x) { return fg_host_bits<float>(x); }
static inline unsigned int __float_as_uint(float x) { return fg_host_bits<unsigned int>(x); }
static inline float __uint_as_float(unsigned int x) { return fg_host_bits<float>(x); }
static inline long long __double_as_longlong(double x) { return fg_host_bits<long long>(x); }
static inline double __longlong_as_double(long long x) { return fg_host_bits<double>(x); }
"""

MMA_SHIM = r"""
#pragma once
#include <string.h>
namespace nvcuda { namespace wmma {
struct matrix_a {}; struct matrix_b {}; struct accumulator {}; struct row_major {}; struct col_major {};
namespace precision { struct tf32 {}; }
enum layout_t { mem_row_major, mem_col_major };
template <typename Use, int M, int N, int K, typename T, typename Layout = void> struct fragment;
template <int M, int N, int K, typename T, typename L> struct fragment<matrix_a, M, N, K, T, L> {
    enum { rows = M, cols = K, num_elements = M * K, col_major_layout = 0 }; float x[M * K]; };
template <int M, int N, int K, typename T> struct fragment<matrix_a, M, N, K, T, col_major> {
    enum { rows = M, cols = K, num_elements = M * K, col_major_layout = 1 }; float x[M * K]; };
template <int M, int N, int K, typename T, typename L> struct fragment<matrix_b, M, N, K, T, L> {
    enum { rows = K, cols = N, num_elements = K * N, col_major_layout = 0 }; float x[K * N]; };
template <int M, int N, int K, typename T> struct fragment<matrix_b, M, N, K, T, col_major> {
    enum { rows = K, cols = N, num_elements = K * N, col_major_layout = 1 }; float x[K * N]; };
template <int M, int N, int K, typename T> struct fragment<accumulator, M, N, K, T, void> {
    enum { rows = M, cols = N, num_elements = M * N }; float x[M * N]; };

inline float __float_to_tf32(float v) {      // round to nearest, ties away from zero
    unsigned u; memcpy(&u, &v, 4);
    if ((u & 0x7f800000u) != 0x7f800000u) { u += 0x1000u; u &= 0xffffe000u; }
    memcpy(&v, &u, 4); return v;
}
template <typename F> inline void fill_fragment(F& f, float v) {
    for (int i = 0; i < F::num_elements; ++i) f.x[i] = v;
}
template <typename F> inline void load_matrix_sync(F& f, const float* p, unsigned ldm) {
    for (int r = 0; r < F::rows; ++r)
        for (int c = 0; c < F::cols; ++c)
            f.x[r * F::cols + c] = F::col_major_layout ? p[c * ldm + r] : p[r * ldm + c];
}
template <typename F> inline void store_matrix_sync(float* p, const F& f, unsigned ldm, layout_t layout) {
    for (int r = 0; r < F::rows; ++r)
        for (int c = 0; c < F::cols; ++c)
            (layout == mem_col_major ? p[c * ldm + r] : p[r * ldm + c]) = f.x[r * F::cols + c];
}
template <typename D, typename A, typename B, typename C> inline void mma_sync(D& d, const A& a, const B& b, const C& c) {
    float out[D::num_elements];
    for (int i = 0; i < D::rows; ++i)
        for (int j = 0; j < D::cols; ++j) {
            float s = c.x[i * D::cols + j];
            for (int k = 0; k < A::cols; ++k) s += a.x[i * A::cols + k] * b.x[k * B::cols + j];
            out[i * D::cols + j] = s;
        }
    memcpy(d.x, out, sizeof out);
}
} }
"""

_KERNEL = re.compile(r'extern "C" __global__ void\s+(?:__launch_bounds__\(\d+\)\s+)?(\w+)\s*\(([^)]*)\)')


def _param_type(decl: str) -> str:
    """``const float* __restrict__ A`` -> ``const float*``."""
    decl = decl.replace("__restrict__", " ").strip()
    return re.sub(r"\w+$", "", decl).strip()


class HostModule:
    """The kernels of one CUDA C translation unit, compiled for the host (see the module docstring)."""

    def __init__(self, source: str, tmp: pathlib.Path, name: str = "host") -> None:
        if GXX is None:
            raise RuntimeError("g++ is not on PATH")
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")    # hundreds of threads on a few cores
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "mma.h").write_text(MMA_SHIM)
        self.kernels = {}
        wrappers = []
        for kname, params in _KERNEL.findall(source):
            types = [_param_type(p) for p in params.split(",") if p.strip()]
            args = ", ".join(f"({t})a[{k}]" for k, t in enumerate(types))
            self.kernels[kname] = len(types)
            wrappers.append(
                f'extern "C" int fg_run_{kname}(void** a, unsigned gx, unsigned gy, unsigned gz, unsigned block) {{\n'
                f"  gridDim = {{gx, gy, gz}}; blockDim = {{block, 1, 1}}; int short_team = 0;\n"
                f"  for (unsigned z = 0; z < gz; ++z) for (unsigned y = 0; y < gy; ++y)\n"
                f"  for (unsigned x = 0; x < gx; ++x) {{\n"
                f"    #pragma omp parallel num_threads(block)\n"
                f"    {{\n"
                f"      if ((unsigned)omp_get_num_threads() != block) {{ short_team = 1; }}\n"
                f"      else {{ threadIdx = {{(unsigned)omp_get_thread_num(), 0, 0}}; blockIdx = {{x, y, z}};\n"
                f"             {kname}({args}); }}\n"
                f"    }}\n"
                f"    if (short_team) return 1;\n"
                f"  }}\n  return 0;\n}}\n")
        cpp, lib = tmp / f"{name}.cpp", tmp / f"{name}.so"
        wrappers.append('extern "C" void fg_host_init() { omp_set_dynamic(0); }\n')
        cpp.write_text("\n".join([SHIM, source, *wrappers]))
        result = subprocess.run([GXX, "-O1", "-fopenmp", "-ffp-contract=off", "-fno-strict-aliasing", "-w",
                                 "-shared", "-fPIC", "-I", str(tmp), "-o", str(lib), str(cpp)],
                                capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise RuntimeError(f"g++ failed on the rendered CUDA C:\n{result.stderr[-4000:]}")
        self._lib = ctypes.CDLL(str(lib))
        self._lib.fg_host_init()

    def launch(self, kernel: str, arrays: Sequence[np.ndarray], grid, block: int) -> None:
        """``kernel<<<grid, block>>>(*arrays)`` (``grid``: an int or an (x, y, z) tuple)."""
        self.launch_pointers(kernel, [a.ctypes.data for a in arrays], grid, block)

    def launch_pointers(self, kernel: str, pointers: Sequence[int], grid, block: int) -> None:
        """``launch`` on host addresses."""
        gx, gy, gz = (grid, 1, 1) if isinstance(grid, int) else tuple(grid) + (1,) * (3 - len(grid))
        if len(pointers) != self.kernels[kernel]:
            raise TypeError(f"{kernel} takes {self.kernels[kernel]} pointers, got {len(pointers)}")
        ptrs = (ctypes.c_void_p * max(1, len(pointers)))(*pointers)
        if getattr(self._lib, f"fg_run_{kernel}")(ptrs, gx, gy, gz, block):
            raise RuntimeError(f"OpenMP gave fewer than {block} threads for a block of {kernel}")
