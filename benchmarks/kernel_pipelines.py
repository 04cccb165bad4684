"""Per-kernel run time and LLVM time of a step under LLVM pipelines, in one process.

How ``fgrad.backends.cpu.kernel_pipeline`` was chosen: the MNIST (or GPT) training step's
kernel-IR program is captured once, then compiled again with every kernel forced to each
pipeline ("O3", "quick", and "auto", fgrad's own choice), with the cycle counters of
``FGRAD_DEBUG=2`` on. The executables run interleaved on the same inputs, so a load change
hits all alike; each kernel's figure is its minimum over the rounds.

    python benchmarks/kernel_pipelines.py                  # MNIST step, 1 thread
    python benchmarks/kernel_pipelines.py --step gpt --rounds 10 --top 30
    python benchmarks/kernel_pipelines.py --step gpt --threads 2 --pipelines tiled,tiled-first,quick,auto

Columns: each pipeline's µs per call of the kernel, the ratio of the second pipeline to the
first (quick / O3 by default), and the LLVM seconds (CPU, this process) each pipeline took for
the whole program. Timing builds are
never saved, so this measures compiles too; it does not touch the disk cache.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("FGRAD_COMPILE_WORKERS", "0")       # LLVM time counted in this process

from _common import Table, machine_description, pin_threads  # noqa: E402

PIPELINES = ("O3", "quick", "auto")      # the default --pipelines


def capture_step(step: str):
    """The step's kernel-IR program and the inputs of its first call."""
    from fgrad.backends import cpu
    captured = {}
    compile_program, call = cpu.compile_program, cpu.CpuExecutable.__call__

    def spy_compile(program, **kw):
        captured.setdefault("program", program)
        return compile_program(program, **kw)

    def spy_call(self, *inputs, **kw):
        if self.program is captured.get("program") and "inputs" not in captured:
            captured["inputs"] = [x.copy() if hasattr(x, "copy") else x for x in inputs]
        return call(self, *inputs, **kw)
    cpu.compile_program, cpu.CpuExecutable.__call__ = spy_compile, spy_call
    try:
        if step == "gpt":
            import gpt_step
            gpt_step.build_fgrad(4, 0)()
        else:
            import mnist_step
            mnist_step.build_fgrad(0)()
    finally:
        cpu.compile_program, cpu.CpuExecutable.__call__ = compile_program, call
    # the capture's own final builds compile in the background, in this process: timings taken
    # beside them made the first executables' kernels look 2-4x slower (or quick builds as fast
    # as final ones), so wait for them
    from fgrad.backends import background
    background.compiler.wait()
    return captured["program"], captured["inputs"]


def compile_with(program, pipeline: str):
    """(executable, CPU seconds) for ``program`` with every kernel forced to ``pipeline``."""
    from fgrad.backends import cpu
    from fgrad.config import config
    os.environ["FGRAD_LLVM_KERNEL_PIPELINE"] = pipeline
    cpu.clear_memory_cache()
    debug, config.debug = config.debug, 2
    try:
        t0 = time.process_time()
        exe = cpu.compile_program(program)
        return exe, time.process_time() - t0
    finally:
        config.debug = debug
        os.environ.pop("FGRAD_LLVM_KERNEL_PIPELINE", None)


def kernel_microseconds(exe, inputs) -> dict[str, float]:
    """One call of ``exe``: µs per kernel (by kernel name, summed over its call sites)."""
    from fgrad.backends import cpu
    exe._sites, sites = None, exe._sites        # no report printed; counters read here
    try:
        exe(*inputs)
    finally:
        exe._sites = sites
    code, ghz = exe._code, cpu.cycles_per_second() / 1e9
    out: dict[str, float] = {}
    for k, call in enumerate(sites):
        if code.calls[k]:
            out[call.kernel.name] = out.get(call.kernel.name, 0.0) + code.cycles[k] / ghz / 1e3
        code.calls[k] = code.cycles[k] = 0
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--step", choices=("mnist", "gpt"), default="mnist")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--top", type=int, default=25, help="kernels shown, slowest under O3 first")
    parser.add_argument("--pipelines", default=",".join(PIPELINES),
                        help="comma-separated pipelines forced on every kernel (FGRAD_LLVM_KERNEL_PIPELINE's "
                             "values; 'auto' is fgrad's own choice); the first is the baseline of the ratio")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    pipelines = tuple(p.strip() for p in args.pipelines.split(",") if p.strip())
    if len(pipelines) < 2:
        parser.error("--pipelines needs at least two pipelines")
    os.environ["FGRAD_NUM_THREADS"] = str(args.threads)
    pin_threads(args.threads)
    program, inputs = capture_step(args.step)
    exes, llvm_s = {}, {}
    for p in pipelines:
        exes[p], llvm_s[p] = compile_with(program, p)
    best: dict[str, dict[str, float]] = {p: {} for p in pipelines}
    totals: dict[str, float] = {p: float("inf") for p in pipelines}
    for _ in range(args.rounds):
        for p, exe in exes.items():
            times = kernel_microseconds(exe, inputs)
            totals[p] = min(totals[p], sum(times.values()))
            for name, us in times.items():
                best[p][name] = min(best[p].get(name, float("inf")), us)
    base, other = pipelines[0], pipelines[1]
    table = Table(f"{args.step} step, per kernel, min of {args.rounds} interleaved rounds, "
                  f"{args.threads} thread(s)",
                  ["kernel", *[f"{p} us" for p in pipelines], f"{other}/{base}", "final pipeline"])
    table.header_notes.append(machine_description())
    from fgrad.backends import cpu
    choice = {k.name: cpu.kernel_pipeline(k) for k in {c.kernel for c in exes[base]._sites}}
    for name in sorted(best[base], key=lambda n: -best[base][n])[:args.top]:
        first, second = best[base][name], best[other].get(name)
        table.add_row(name, *[best[p].get(name) for p in pipelines],
                      second / first if first and second is not None else None, choice.get(name))
    table.add_row("all kernels", *[totals[p] for p in pipelines], totals[other] / totals[base], "")
    table.add_row("LLVM + rendering s (CPU)", *[llvm_s[p] for p in pipelines], None, "")
    print(table.markdown() if args.markdown else table.render())


if __name__ == "__main__":
    main()
