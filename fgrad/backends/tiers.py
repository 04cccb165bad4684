"""Tiered compilation's cost model: which first build, if any, a kernel gets.

A kernel whose final LLVM pipeline is "tiled" or "O3" may first be compiled with a cheaper
pipeline and run that way until its final build, compiled in the background
(``background``), replaces it. It pays when the LLVM time this saves the program's first
call is more than what its slower calls cost there (``first_build``). ``cpu`` asks for
each kernel it compiles (``cpu.tiered`` says whether tiering is on).
"""
from __future__ import annotations

from typing import NamedTuple

from fgrad.lower.kernel import Kernel
from fgrad.lower.llvm_loops import estimated_ops, unrolled_size


class FirstBuild(NamedTuple):
    """A candidate first build: the LLVM seconds it saves against the final build in one
    process (``saves_s``, plus ``saves_per_node_s`` for each expression node of the kernel's
    unrolled code, ``unrolled_size``), and the extra seconds its calls take per FLOP (per
    estimated op for a kernel without a FLOP count), all threads together."""
    pipeline: str
    saves_s: float
    saves_per_node_s: float
    slower_per_flop_s: float
    slower_per_op_s: float


#: The candidates, by final pipeline. Measured with ``benchmarks/kernel_pipelines.py``
#: (2026-12-07, AMD EPYC Zen 3, 2 threads): the GPT step's GEMMs (4 layers, ~11 GFLOP) run
#: 110-116 ms final, 148 ms "tiled-first" (``llvm_worker.PASS_LISTS``), 576 ms "quick"; the
#: MNIST step's GEMMs (1.8 GFLOP) run 16.3 ms final and 74 ms quick. A tiled kernel's LLVM
#: time grows with its unrolled code: per kernel of the GPT step (same host), "tiled-first"
#: saves 0.005 s + 1.2 us per node (GEMM micro-kernels of 56,000-88,000 nodes: 62-124 ms;
#: packing loops of ~1,250: 7-9 ms) and "quick" 0.01 s + 1.8 us per node (57-166 ms). "O3"
#: kernels' quick builds lose 0.7-1.4e-11 s per estimated op (the MNIST step's fused loops;
#: threefry, which only LLVM's loop vectoriser vectorises, 2e-10), and save 16-43 ms of LLVM;
#: "O3-first" builds lose a third to a seventh of that (O3 kernels, a step: MNIST 8.9 ms
#: final, 13.2 O3-first, 36.2 quick; GPT 29.5, 32.8, 52.9) and save 70-80% of what quick
#: builds save, so they pay only for kernels called from many sites.
FIRST_BUILDS = {
    "tiled": (FirstBuild("tiled-first", 0.005, 1.2e-6, 7e-12, 5e-11),
              FirstBuild("quick", 0.01, 1.8e-6, 7e-11, 5e-11)),
    "O3": (FirstBuild("quick", 0.02, 0.0, 2e-11, 2e-11), FirstBuild("O3-first", 0.014, 0.0, 3e-12, 4e-12)),
}


def first_build(kernel: Kernel, final_pipeline: str, calls: int, threads: int, compilers: int = 1) -> str | None:
    """The pipeline of ``kernel``'s first build, or None for its final build (``final_pipeline``)
    at once, when it is called ``calls`` times per run (``kernel.calls_per_run``: its call
    sites, each times the trip counts of the loops around it) of a program running on ``threads``
    threads and compiled by ``compilers`` processes (which share the LLVM time saved): the
    candidate whose saving most exceeds what its slower first calls cost, if any does."""
    best, gain, size = None, 0.0, None
    for candidate in FIRST_BUILDS.get(final_pipeline, ()):
        if candidate.saves_per_node_s and size is None:
            size = unrolled_size(kernel.body)
        saves = candidate.saves_s + (candidate.saves_per_node_s * size if candidate.saves_per_node_s else 0.0)
        extra = (kernel.flops * candidate.slower_per_flop_s if kernel.flops
                 else estimated_ops(kernel.body) * candidate.slower_per_op_s)
        net = saves / max(compilers, 1) - calls * extra / max(threads, 1)
        if net > gain:
            best, gain = candidate.pipeline, net
    return best
