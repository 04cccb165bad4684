"""LLVM IR text -> object code: the one optimise-and-emit step, in this process or in a worker.

The CPU backend compiles each distinct kernel as a module of its own, and independent
modules can be compiled at the same time. llvmlite serialises every call into LLVM behind
one process-wide lock, so threads cannot do that; worker processes can. A worker runs this
file as a script (``python llvm_worker.py``: it imports llvmlite and nothing of fgrad, so it
starts in a fraction of a second and never re-runs the user's program) and serves requests
on its stdin/stdout until stdin closes:

    request:  (job, ir_text, triple, cpu, features, pipeline)
    reply:    (job, True, object_bytes)  or  (job, False, error_message)

each a pickle preceded by its length (8 bytes, little-endian). ``fgrad.backends.llvm_pool``
runs the workers; in-process compiles call ``optimise_to_object`` below, so both produce
the same object code for the same text.
"""
from __future__ import annotations

import pickle
import struct
import sys
from typing import BinaryIO

import llvmlite.binding as llvm

_HEADER = struct.Struct("<Q")
_ready = False
_machines: dict[tuple, "llvm.TargetMachine"] = {}


def init_llvm() -> None:
    """Initialise LLVM's native target and assembly printer (once per process)."""
    global _ready
    if not _ready:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        _ready = True


def make_target_machine(triple: str, cpu: str, features: str, codegen: int = 3) -> "llvm.TargetMachine":
    """A new target machine for the CPU, generating code at ``codegen`` (LLVM's 0-3; each
    execution engine needs a machine of its own)."""
    init_llvm()
    return llvm.Target.from_triple(triple).create_target_machine(
        cpu=cpu, features=features, opt=codegen, codemodel="jitdefault")


def _machine(triple: str, cpu: str, features: str, codegen: int) -> "llvm.TargetMachine":
    key = (triple, cpu, features, codegen)
    tm = _machines.get(key)
    if tm is None:
        tm = _machines[key] = make_target_machine(triple, cpu, features, codegen)
    return tm


#: the optimisation pipelines, by name: (LLVM's speed level, its own loop vectorisation and
#: unrolling on, code generation level).
#: - "O3": LLVM's full pipeline, for kernels with much work: its loop vectoriser and unroller
#:   still speed up loops fgrad leaves scalar or unrolls less (a threefry loop runs 4.6x faster,
#:   a max-pool 10-20%).
#: - "tiled": for kernels fgrad has already vectorised and register-tiled (GEMM micro-kernels,
#:   panel packing): LLVM's loop passes change nothing in their run time there and cost ~30%
#:   of their compile time (measured on the GPT step's 32 such kernels: 3.4 s -> 2.4 s CPU).
#: - "quick": no optimisation passes and the quickest code generator, for kernels with little
#:   work (``cpu.QUICK_KERNEL_OPS``): 2-5x less LLVM time than "O3" (the MNIST step's 49 such
#:   kernels: about 1 s -> 0.2 s); their code runs up to 12x slower, which for these kernels
#:   is microseconds (``benchmarks/kernel_pipelines.py`` measures both, per kernel).
#: - "entry": a program's entry function, a list of calls: the quickest code generator
#:   (level 0) compiles the 12-layer GPT step's 1,664 calls in 0.3 s instead of 1.3 s.
PIPELINES = {"O3": (3, True, 3), "tiled": (3, False, 3), "quick": (0, False, 0), "entry": (1, False, 0)}

#: pipelines made of a few function passes instead (passes, code generation level):
#: - "tiled-first": the first build of a register-tiled kernel whose final ("tiled") build
#:   compiles in the background. SROA puts the tile's accumulators, which the renderer keeps in
#:   allocas across the k loop, in registers, and InstCombine folds the index arithmetic.
#:   Measured on the GPT step's GEMMs (2 threads, 4 layers): 148 ms a step against 576 with
#:   "quick" (whose accumulators live on the stack) and 110-116 with "tiled", for 0.67 s of
#:   LLVM against 0.16 s and 1.8-2.0 s (``benchmarks/kernel_pipelines.py``).
#: - "O3-first": the same for an "O3" kernel called so often that a "quick" build's slower calls
#:   would cost more than its LLVM time: SROA alone (reductions' accumulators into registers).
#:   The GPT step's O3 kernels (4 layers, 2 threads): 32.8 ms a step against 52.9 quick and
#:   29.5 O3, for 26% of O3's LLVM time (3.2x quick's).
PASS_LISTS = {"tiled-first": (("sroa", "instcombine"), 1), "O3-first": (("sroa",), 1)}


def optimise_to_object(text: str | tuple[str, ...], triple: str, cpu: str, features: str,
                       pipeline: str) -> bytes:
    """Parse, verify and optimise a module's text with the named pipeline (``PIPELINES``) and
    emit its object code for the CPU. A tuple of texts is linked into one module first, so
    that LLVM's fixed cost per object (half a millisecond, mostly setting up the code
    generator) is paid once for a group of small kernels."""
    if pipeline not in PIPELINES and pipeline not in PASS_LISTS:
        raise ValueError(f"unknown LLVM pipeline {pipeline!r}; expected one of {sorted([*PIPELINES, *PASS_LISTS])}")
    texts = (text,) if isinstance(text, str) else text
    module = llvm.parse_assembly(texts[0])
    for more in texts[1:]:
        module.link_in(llvm.parse_assembly(more))
    module.verify()
    if pipeline in PASS_LISTS:
        passes, codegen = PASS_LISTS[pipeline]
        tm = _machine(triple, cpu, features, codegen)
        _run_function_passes(module, tm, passes)
        return tm.emit_object(module)
    level, loop_passes, codegen = PIPELINES[pipeline]
    tm = _machine(triple, cpu, features, codegen)
    options = llvm.create_pipeline_tuning_options(speed_level=level)
    if not loop_passes:
        options.loop_vectorization = options.slp_vectorization = False
        options.loop_unrolling = options.loop_interleaving = False
    builder = llvm.create_pass_builder(tm, options)
    builder.getModulePassManager().run(module, builder)
    return tm.emit_object(module)


def _run_function_passes(module: "llvm.ModuleRef", tm: "llvm.TargetMachine", passes: tuple[str, ...]) -> None:
    """Run the named function passes (``PASS_LISTS``) over each function ``module`` defines."""
    manager = llvm.create_new_function_pass_manager()
    for name in passes:
        {"sroa": manager.add_sroa_pass, "instcombine": manager.add_instruction_combine_pass}[name]()
    builder = llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(speed_level=0))
    for function in module.functions:
        if not function.is_declaration:
            manager.run(function, builder)


def write_message(stream: BinaryIO, message: object) -> None:
    """One length-prefixed pickle on ``stream``."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def read_message(stream: BinaryIO) -> object | None:
    """The next message on ``stream``, or None at its end."""
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    """Compile each request until ``requests`` ends."""
    while True:
        request = read_message(requests)
        if request is None:
            return
        job, text, triple, cpu, features, pipeline = request
        try:
            reply = (job, True, optimise_to_object(text, triple, cpu, features, pipeline))
        except Exception as error:  # reported to the parent, which raises it there
            reply = (job, False, f"{type(error).__name__}: {error}")
        write_message(replies, reply)


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
