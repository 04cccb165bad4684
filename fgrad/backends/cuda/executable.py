"""Compiled programs on a GPU: ``compile_program`` (kernel IR -> ``CudaExecutable``) and
running a launch plan; ``HostExecutable`` for programs that run on the host instead.

``CudaExecutable`` runs a ``LaunchPlan``: the arena and outputs come from the allocator, host
inputs are copied in (device inputs are used in place), launches are queued in order with
precomputed argument getters (no other Python work per kernel), loops and branches read a
scalar back only where the plan says so. A straight-line plan replays as a CUDA graph
(``GraphReplay``, ``fgrad.backends.cuda.graphs``). Outputs are ``CudaBuffer``s: their data stay
on the GPU until read, which is the only time fgrad waits for the GPU.

``FGRAD_DEBUG=1`` logs compiles and cache misses, ``2`` each kernel's GPU time per call
(CUDA events; the call then waits for the GPU, and graphs are not used), ``3`` the kernel IR,
``4`` the CUDA C.
"""
from __future__ import annotations

import operator
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

import numpy as np

from fgrad.backends.base import Device, Executable
from fgrad.backends.cpu import compile_program as compile_for_cpu
from fgrad.backends.cuda.arrays import CudaArray, placement_error
from fgrad.backends.cuda.compiler import (compile_source, compile_workers, kernels_with_large_locals,
                                          max_local_bytes, split_source)
from fgrad.backends.cuda.devices import runtime
from fgrad.backends.cuda.graphs import GraphReplay, graphs_enabled, run_steps
from fgrad.backends.cuda.memory import CudaBuffer, CudaRuntime
from fgrad.backends.cuda.util import log as _log
from fgrad.config import config
from fgrad.lower.cuda import Branch, Launch, LaunchPlan, Repeat, WhileLoop, kernels_by_name, render_program
from fgrad.lower.fallback import HostFallbackWarning, warn_fallback
from fgrad.lower.host_callback import is_callback_symbol
from fgrad.lower.kernel import ExternCall, Program, format_program, walk_steps


def compile_program(program: Program, device: Device) -> CudaExecutable | HostExecutable:
    """Compile a kernel IR program for GPU ``device``; call the result with arrays. A program
    whose kernels need more per-thread locals than ``max_local_bytes()`` runs on the host CPU
    instead (compiled by the CPU backend; warned once, ``HostFallbackWarning``).

        >>> exe = compile_program(program, fgrad.devices()[0])      # doctest: +SKIP
        >>> (y,) = exe(x)          # a CudaBuffer list; inputs: NumPy arrays or CudaBuffers
    """
    if not isinstance(program, Program):
        raise TypeError(f"compile_program takes a kernel IR Program, got {type(program).__name__}")
    rt = runtime(device)
    externs = sorted({s.routine for s in walk_steps(program.body) if isinstance(s, ExternCall)})
    if externs:
        return _calls_host_routines(program, device, externs)
    too_big = kernels_with_large_locals(program)
    if too_big:
        return _on_the_host(program, device, too_big)
    source, plan = render_program(program)
    if config.debug >= 3:
        print(format_program(program), file=sys.stderr, flush=True)
    if config.debug >= 4:
        print(source, file=sys.stderr, flush=True)
    kernels = kernels_by_name(program)
    chunks = split_source(source, compile_workers())
    with ThreadPoolExecutor(len(chunks)) as pool:   # NVRTC and nvcc run outside the GIL
        images = list(pool.map(lambda chunk: compile_source(rt, chunk[0]), chunks))
    modules = {}
    for (_, names), image in zip(chunks, images):
        module = rt.driver.load_module(image, {n: kernels[n] for n in names})
        modules.update((n, module) for n in names)
    return CudaExecutable(program, plan, rt, modules)


def _on_the_host(program: Program, device: Device, too_big: list[tuple[str, int]]) -> HostExecutable:
    """``program`` compiled for the host CPU, taking and giving GPU buffers: its kernels'
    per-thread locals (``too_big``) would make the GPU reserve that much local memory for every
    resident thread."""
    _log(1, f"program {program.name}: runs on the host CPU (LLVM), not the GPU: per-thread locals of "
            f"{', '.join(f'{k} {n // 1024} KiB' for k, n in too_big)} exceed {max_local_bytes() // 1024} KiB "
            "(FGRAD_CUDA_MAX_LOCAL_BYTES); the GPU would reserve that much local memory for every "
            "resident thread")
    why = f"per-thread locals too large for a GPU: {too_big[0][0]} {too_big[0][1] // 1024} KiB"
    warn_fallback(program.name, f"{why} (FGRAD_CUDA_MAX_LOCAL_BYTES is {max_local_bytes() // 1024} KiB)",
                  key=program, category=HostFallbackWarning)
    return host_fallback(compile_for_cpu(program), device, why)


def _calls_host_routines(program: Program, device: Device, externs: list[str]) -> HostExecutable:
    """``program`` compiled for the host CPU, taking and giving GPU buffers: it calls host
    routines (LAPACK: a decomposition; a host callback: ``ExternCall``), which have no GPU
    version yet: its operands are copied to the host and its results back."""
    lapack = [r.removeprefix("fgrad_lapack_") for r in externs if not is_callback_symbol(r)]
    reasons = []
    if lapack:
        reasons.append(f"it calls LAPACK ({', '.join(lapack)}: a decomposition such as cholesky, qr or "
                       "svd), which fgrad runs on the host CPU only; compute the decomposition in a jit "
                       "of its own to keep the rest of the program on the GPU")
    if len(lapack) < len(externs):
        reasons.append("it calls a host callback (pure_callback, io_callback, debug.print or "
                       "debug.callback), which runs inside a program on the host CPU only; call it "
                       "outside the jit (or in a jit of its own) to keep the rest of the program on the GPU")
    why = "; ".join(reasons)
    _log(1, f"program {program.name}: runs on the host CPU (LLVM), not the GPU: {why}")
    warn_fallback(program.name, why, key=program, category=HostFallbackWarning)
    return host_fallback(compile_for_cpu(program), device, why)


def _getter(indices: tuple) -> Callable[[list], tuple]:
    """``ptrs -> tuple(ptrs[i] for i in indices)`` as one C call."""
    if len(indices) >= 2:
        return operator.itemgetter(*indices)
    if len(indices) == 1:
        i = indices[0]
        return lambda ptrs: (ptrs[i],)
    return lambda ptrs: ()


class CudaExecutable(GraphReplay, Executable):
    """A compiled program on one GPU: ``exe(*inputs) -> list of CudaBuffer`` (nothing waits).

    A straight-line plan replays as a CUDA graph once a call repeats the device pointers of
    an earlier one (``graph_captures`` graphs made, ``graph_replays`` calls that launched one
    made earlier; see the module docstring).
    """

    def __init__(self, program: Program, plan: LaunchPlan, rt: CudaRuntime, modules: dict) -> None:
        self.program, self.plan, self.runtime, self.device = program, plan, rt, rt.device
        self.driver, self.stream = rt.driver, rt.stream
        self._modules = modules          # kernel name -> the loaded module that holds it
        slots = plan.buffers
        self._inputs = [(s.name, np.dtype(s.dtype), tuple(s.shape), s.nbytes) for s in slots if s.kind == "input"]
        self._outputs = [(tuple(s.shape), np.dtype(s.dtype)) for s in slots if s.kind == "output"]
        self._constants = [rt.put(v) for v in program.constants.values()]   # uploaded once
        self._temps = [(s.offset, s.dtype) for s in slots if s.kind == "temporary"]
        self._launchers: dict[str, Callable] = {}
        self._scalar: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        self._events: list | None = None     # (kernel, start, end) of a timed call (FGRAD_DEBUG=2)
        self._iteration_numbers: list = []   # indexed loops' counters, on the device
        self._steps = self._build(plan.steps)
        self._timed_steps: list | None = None
        self.launches_per_call = sum(1 for _ in plan.launches())
        self._init_graphs(plan.steps)
        # per host input, output and the arena: its pointers in the last two calls, which its
        # next block is taken from when free (so that a loop's pointers, and graphs, recur)
        self._prefer: list[tuple] = [(0, 0)] * (len(self._inputs) + len(self._outputs) + 1)

    # -- turning the plan into closures, once
    def _launcher(self, launch: Launch) -> Callable:
        fn = self._launchers.get(launch.kernel)
        if fn is None:
            fn = self._launchers[launch.kernel] = self.driver.launcher(self._modules[launch.kernel], launch.kernel,
                                                                         len(launch.args))
        if self._events is not None:
            return self._timed(fn, launch.kernel)
        return fn

    def _timed(self, fn: Callable, kernel: str) -> Callable:
        """``fn`` between two recorded events (FGRAD_DEBUG=2)."""
        driver, events = self.driver, self._events

        def launch(grid, block, stream, *ptrs):
            start, end = driver.event(), driver.event()
            start.record(stream)
            fn(grid, block, stream, *ptrs)
            end.record(stream)
            events.append((kernel, start, end))
        return launch

    def _steps_for_call(self) -> list:
        if config.debug < 2:
            return self._steps
        if self._timed_steps is None:
            self._events = []
            self._timed_steps = self._build(self.plan.steps)
        return self._timed_steps

    def _report_timing(self) -> None:
        """Per-kernel GPU time of the call just made (waits for it)."""
        self.runtime.synchronize()
        totals: dict[str, list] = {}
        for kernel, start, end in self._events:
            entry = totals.setdefault(kernel, [0, 0.0])
            entry[0] += 1
            entry[1] += self.driver.elapsed_ms(start, end)
        self._events.clear()
        modes = self.plan.kernel_modes
        sizes = {launch.kernel: (launch.grid, launch.block) for launch in self.plan.launches()}
        total = sum(ms for _, ms in totals.values())
        lines = [f"[fgrad cuda] program {self.program.name}: {total * 1e3:.1f} us of kernels"]
        for kernel, (n, ms) in sorted(totals.items(), key=lambda kv: -kv[1][1]):
            grid, block = sizes[kernel]
            lines.append(f"  {kernel:36s} x{n:<4d} {ms * 1e3:10.1f} us  {modes[kernel]:6s} "
                         f"grid {grid:6d} block {block:4d}")
        print("\n".join(lines), file=sys.stderr, flush=True)

    def _build(self, steps: tuple) -> list[Callable[[list], None]]:
        out, batch = [], []
        for s in steps:
            if isinstance(s, Launch):
                batch.append((self._launcher(s), (s.grid, 1), (s.block, 1, 1), _getter(s.args)))
                continue
            if batch:
                out.append(self._launch_all(tuple(batch)))
                batch = []
            out.append(self._control(s))
        if batch:
            out.append(self._launch_all(tuple(batch)))
        return out

    def _launch_all(self, launches: tuple) -> Callable[[list], None]:
        stream = self.stream

        def run(ptrs: list) -> None:
            for fn, grid, block, get in launches:
                fn(grid, block, stream, *get(ptrs))
        return run

    def _read_scalar(self, index: int) -> Callable[[list], Any]:
        host = np.empty(1, self.plan.buffers[index].dtype)
        driver = self.driver

        def read(ptrs: list):
            driver.copy_dtoh(host, ptrs[index])
            driver.synchronize()
            return host[0]
        return read

    def _control(self, s) -> Callable[[list], None]:
        if isinstance(s, Repeat):
            return self._repeat(s)
        if isinstance(s, WhileLoop):
            before, body, cond = self._build(s.before), self._build(s.body), self._read_scalar(s.cond)

            def run_while(ptrs: list) -> None:
                while True:
                    run_steps(before, ptrs)
                    if not cond(ptrs):
                        break
                    run_steps(body, ptrs)
            return run_while
        if isinstance(s, Branch):
            branches, index = [self._build(b) for b in s.branches], self._read_scalar(s.index)

            def run_branch(ptrs: list) -> None:
                run_steps(branches[min(max(int(index(ptrs)), 0), len(branches) - 1)], ptrs)
            return run_branch
        raise TypeError(f"unknown launch plan step {s!r}")

    def _repeat(self, s: Repeat) -> Callable[[list], None]:
        body, count, driver = self._build(s.body), s.count, self.driver
        if s.index is None:
            def run_repeat(ptrs: list) -> None:
                for _ in range(count):
                    run_steps(body, ptrs)
            return run_repeat
        # the iteration numbers live on the device as long as the executable: each iteration
        # copies its own device to device (asynchronous, and a graph can capture it)
        numbers = self.runtime.put(np.arange(count, dtype=self.plan.buffers[s.index].dtype))
        self._iteration_numbers.append(numbers)
        first, size, index = numbers.ptr, numbers.dtype.itemsize, s.index

        def run_indexed(ptrs: list) -> None:
            for k in range(count):
                driver.copy_dtod(ptrs[index], first + k * size, size)
                run_steps(body, ptrs)
        return run_indexed

    # -- one call
    def __call__(self, *inputs: Any, out: Sequence[Any] | None = None) -> list[CudaBuffer]:
        if out is not None:
            raise TypeError("CudaExecutable: out= is not supported; outputs are fresh GPU buffers")
        if len(inputs) != len(self._inputs):
            raise TypeError(f"program {self.program.name} takes {len(self._inputs)} inputs, got {len(inputs)}")
        rt, prefer, n = self.runtime, self._prefer, len(inputs)
        held = [self._input_buffer(k, x, prefer[k]) for k, x in enumerate(inputs)]
        outs = [CudaBuffer(rt, shape, dtype, prefer[n + j]) for j, (shape, dtype) in enumerate(self._outputs)]
        arena = rt.allocator.alloc(self.plan.arena_bytes, prefer[-1]) if self._temps else None
        mine = held + outs
        ptrs = [b.ptr for b in mine] + [b.ptr for b in self._constants]
        self._prefer = [(b.ptr, p[0]) for b, p in zip(mine, prefer)] + [(arena.ptr if arena else 0, prefer[-1][0])]
        if arena is not None:
            ptrs += [arena.ptr + offset for offset, _ in self._temps]
        try:
            with self._lock:
                if self._graphable and config.debug < 2 and graphs_enabled():
                    self._run_as_graph(ptrs)
                else:
                    steps = self._steps_for_call()
                    run_steps(steps, ptrs)
                    if steps is self._timed_steps:
                        self._report_timing()
        finally:
            if arena is not None:       # stream-ordered: the next user queues behind this call
                rt.allocator.free(arena)
        return outs

    def _input_buffer(self, k: int, x: Any, prefer: tuple = ()) -> CudaBuffer:
        name, dtype, shape, nbytes = self._inputs[k]
        buf = x._buffer if type(x) is CudaArray else x
        if type(buf) is not CudaBuffer:
            host = np.asarray(x)
            if host.dtype != dtype or host.nbytes != nbytes:
                raise TypeError(f"program {self.program.name}: input {k} ({name}) must be "
                                f"{dtype.name}{list(shape)}, got {host.dtype.name}{list(host.shape)}")
            return self.runtime.put(host, prefer)
        if buf.runtime is not self.runtime:
            raise placement_error(buf.runtime.device, self.device)
        if buf.dtype != dtype or buf.nbytes != nbytes:
            raise TypeError(f"program {self.program.name}: input {k} ({name}) must be "
                            f"{dtype.name}{list(shape)}, got {buf.dtype.name}{list(buf.shape)}")
        return buf



class HostExecutable(Executable):
    """A host executable (the reference path, or the CPU backend) taking and giving GPU buffers:
    inputs are read back (waiting for the GPU), outputs copied to it. ``on_host`` says why."""

    def __init__(self, run: Callable, device: Device, why: str) -> None:
        self.run, self.runtime, self.on_host = run, runtime(device), why
        self.device = self.runtime.device
        self.launches_per_call = 0

    def __call__(self, *inputs: Any, out: Sequence[Any] | None = None) -> list[CudaBuffer]:
        if out is not None:
            raise TypeError("HostExecutable: out= is not supported; outputs are fresh GPU buffers")
        host = [x.to_numpy() if isinstance(x, CudaBuffer) else np.asarray(x) for x in inputs]
        return [self.runtime.put(np.asarray(o)) for o in self.run(*host)]


def host_fallback(run: Callable, device: Device, why: str = "no kernel-IR lowering") -> HostExecutable:
    """Wrap a host executable to take and give GPU buffers (see ``HostExecutable``)."""
    return HostExecutable(run, device, why)



class CudaBackend:
    """The CUDA backend as a ``fgrad.backends.base.Backend``: ``backend.compile(program, device)``."""

    platform = "cuda"

    def compile(self, program: Program, device: Device) -> CudaExecutable | HostExecutable:
        """``compile_program(program, device)``."""
        return compile_program(program, device)


#: The one ``CudaBackend``.
backend = CudaBackend()
