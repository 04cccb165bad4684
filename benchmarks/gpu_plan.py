"""The MNIST training step's GPU program, kernel by kernel, with its floor on an H200 (no GPU needed).

Lowers examples/mnist.py's jitted step (sampling, forward, backward, Adam; batch 128) for
the GPU, renders its launch plan, and prints one row per launch: the kernel's mode (gemm,
grid, segments, block, single), its threads, the longest serial chain one thread runs
(``cuda.thread_iterations``: a kernel is as slow as that), its FLOPs, the bytes its
buffers span (each read or written once: a floor, not a count of its traffic), and its
floor time: max(FLOPs / peak, bytes / bandwidth) on an H200 (FP32 SIMT or, for GEMMs
under ``--precision tf32``, TF32 tensor cores). The totals add a launch latency per
kernel (inside a CUDA graph). benchmarks/gpu.py measures the step on a GPU
(FGRAD_DEBUG=2 adds per-kernel times); this is what to hold those figures against.

Where ``nvcc`` is on PATH, the program is also compiled for sm_90 and ptxas's report adds
each kernel's registers per thread, spilled bytes, static shared memory, and the occupancy
that allows on an H100/H200 (resident warps of the SM's 64, from registers, shared memory,
threads and the 32-block limit).

    python benchmarks/gpu_plan.py [--batch 128] [--precision highest|tf32] [--no-ptxas]
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

from _common import REPO_ROOT, Table

H200 = {"fp32_tflops": 67.0, "tf32_tflops": 494.0, "hbm_tbs": 4.8, "launch_us": 1.0}
# an sm_90 SM's limits (CUDA occupancy calculator): registers, shared memory, warps, blocks
SM90 = {"registers": 65536, "register_unit": 256, "smem": 233472, "smem_per_block_reserved": 1024,
        "warps": 64, "blocks": 32}


def mnist_step_program(batch: int, precision: str):
    """The GPU kernel-IR program of the tutorial's jitted training step."""
    sys.path.insert(0, REPO_ROOT)
    import fgrad
    import fgrad.numpy as fnp
    from fgrad.lower import rules  # noqa: F401 - registers the lowering rules
    from fgrad.lower.schedule import lower_program
    from fgrad.transforms.jit import closure_convert
    spec = importlib.util.spec_from_file_location("fgrad_example_mnist", os.path.join(REPO_ROOT, "examples", "mnist.py"))
    mnist = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mnist)
    rng = np.random.default_rng(0)
    X = fnp.asarray(rng.integers(0, 256, (1024, 1, 28, 28)).astype(np.uint8))
    Y = fnp.asarray(rng.integers(0, 10, (1024,)).astype(np.uint8))
    model = mnist.Model(key=fgrad.random.key(0))
    opt = fgrad.optim.adam(1e-3)
    step = mnist.make_step(opt, X, Y, batch)
    closed = fgrad.make_jaxpr(step)(model, opt.init(model), fgrad.random.key(1))
    converted, _ = closure_convert(closed)
    return lower_program(converted, "mnist_step", target="gpu", precision=precision)


def ptxas_resources(source: str, arch: str = "sm_90") -> dict[str, dict]:
    """Per kernel: ptxas's registers, spill bytes (stores + loads) and static shared memory,
    compiling ``source`` with ``nvcc -cubin``; {} without nvcc (or when it fails)."""
    if shutil.which("nvcc") is None:
        return {}
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "program.cu")
        with open(path, "w") as f:
            f.write(source)
        done = subprocess.run(["nvcc", "-cubin", f"-arch={arch}", "-std=c++17", "-Xptxas", "-v", "-o",
                               os.path.join(folder, "program.cubin"), path], capture_output=True, text=True)
    if done.returncode:
        print(f"nvcc failed, no ptxas columns:\n{done.stderr[-2000:]}", file=sys.stderr)
        return {}
    found: dict[str, dict] = {}
    name = None
    for line in done.stderr.splitlines():
        entry = re.search(r"Compiling entry function '(\w+)'", line)
        if entry:
            name = entry.group(1)
            found[name] = {"registers": 0, "spill": 0, "smem": 0}
        elif name is not None:
            spills = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", line)
            if spills:
                found[name]["spill"] = int(spills.group(1)) + int(spills.group(2))
            used = re.search(r"Used (\d+) registers", line)
            if used:
                found[name]["registers"] = int(used.group(1))
                smem = re.search(r"(\d+) bytes smem", line)
                found[name]["smem"] = int(smem.group(1)) if smem else 0
    return found


def occupancy(block: int, registers: int, smem: int, sm: dict = SM90) -> float:
    """The fraction of an SM's warps resident for a kernel of ``block`` threads using
    ``registers`` per thread and ``smem`` bytes of static shared memory per block."""
    warps = -(-block // 32)
    per_warp = -(-max(registers, 1) * 32 // sm["register_unit"]) * sm["register_unit"]
    blocks = min(sm["blocks"], sm["warps"] // warps, sm["registers"] // (per_warp * warps),
                 sm["smem"] // (smem + sm["smem_per_block_reserved"]))
    return blocks * warps / sm["warps"]


def plan_table(program, machine: dict, ptxas: bool = True) -> Table:
    from fgrad.lower.cuda import gemm_pattern, kernels_by_name, render_program, thread_iterations
    source, plan = render_program(program)
    kernels = kernels_by_name(program)
    resources = ptxas_resources(source) if ptxas else {}
    extra = ["regs", "spill B", "smem KB", "occupancy"] if resources else []
    t = Table(f"MNIST step on the GPU: {sum(1 for _ in plan.launches())} launches, floors on an H200 "
              f"(FP32 {machine['fp32_tflops']:g} TFLOP/s, TF32 {machine['tf32_tflops']:g}, "
              f"HBM {machine['hbm_tbs']:g} TB/s)",
              ["kernel", "mode", "threads", "chain", "MFLOP", "MB", "floor us", *extra])
    total_us = 0.0
    total_flops = total_bytes = 0
    for launch in plan.launches():
        kernel = kernels[launch.kernel]
        gemm = gemm_pattern(kernel)
        peak = machine["tf32_tflops"] if gemm is not None and gemm.tf32 else machine["fp32_tflops"]
        nbytes = sum(p.size * p.dtype.itemsize for p in kernel.params)
        floor_us = max(kernel.flops / (peak * 1e6), nbytes / (machine["hbm_tbs"] * 1e6))
        total_us += floor_us
        total_flops += kernel.flops
        total_bytes += nbytes
        used = resources.get(launch.kernel)
        columns = [] if not resources else [None] * 4 if used is None else [
            used["registers"], used["spill"], used["smem"] / 1024,
            f"{occupancy(launch.block, used['registers'], used['smem']):.0%}"]
        t.add_row(launch.kernel, plan.kernel_modes[launch.kernel], launch.grid * launch.block,
                  thread_iterations(kernel), kernel.flops / 1e6, nbytes / 1e6, floor_us, *columns)
    launches = sum(1 for _ in plan.launches())
    t.add_row("total", "", None, None, total_flops / 1e6, total_bytes / 1e6, total_us, *[None] * len(extra))
    t.footnotes.append(f"floor of the step: {total_us:.1f} us of kernels + {launches} launches x "
                       f"{machine['launch_us']:g} us = {total_us + launches * machine['launch_us']:.1f} us; "
                       f"arena {plan.arena_bytes / 2**20:.1f} MiB")
    return t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--precision", choices=["highest", "tf32"], default="highest")
    parser.add_argument("--no-ptxas", action="store_true", help="skip compiling with nvcc for ptxas's figures")
    args = parser.parse_args(argv)
    print(plan_table(mnist_step_program(args.batch, args.precision), H200, ptxas=not args.no_ptxas).render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
