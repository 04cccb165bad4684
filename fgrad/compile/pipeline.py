"""From a jaxpr to something callable: the entry point ``jit`` uses.

``compile_jaxpr`` schedules the jaxpr into a kernel-IR program (``schedule`` +
``rules``) and compiles it for the CPU (``backends.cpu``: one native call per
invocation) or, given a GPU ``device``, for that GPU (``backends.cuda``: launches
queued on its stream; inputs and outputs are GPU buffers). A program with an equation
the native path cannot take runs through the reference path instead (eager evaluation
of the jaxpr): ``fall_back_to_reference`` is the one way there, and it warns
(``fgrad.ReferencePathWarning``, once per program) naming the equation and why. A program
calling ``shard`` (which runs per-device programs of its own) is compiled in pieces around
those calls.
``FGRAD_JIT_BACKEND=reference`` runs every program there by choice, without warnings.
"""
from __future__ import annotations

import collections
import os
import time
from typing import Callable

import numpy as np

from fgrad.backends import beam, beam_widths, cpu, cuda
from fgrad.backends.base import Buffer
from fgrad.compile.program_key import program_key
from fgrad.config import config
from fgrad.core.ir import ClosedJaxpr, Eqn, Jaxpr, Literal, Var, eval_jaxpr
from fgrad.core.trace import EVAL, set_interpreter
from fgrad.lower import complex_split
from fgrad.lower.donation import donation_aliases
from fgrad.lower.fallback import ReferencePathWarning, warn_fallback
from fgrad.lower.rules import lower_program
from fgrad.lower.schedule import NotLowerable, runs_own_programs
from fgrad.lower.target import LoweringTarget


#: Programs compiled so far, by the path that took them ("native", "reference"); tests read it
#: to check that a program the native path claims to support did not fall back.
compiled_by_path: collections.Counter = collections.Counter()


def _log(message: str) -> None:
    if config.debug >= 1:
        print(f"[fgrad] {message}", flush=True)


def native_enabled() -> bool:
    return os.environ.get("FGRAD_JIT_BACKEND", "native") != "reference"


def compile_jaxpr(closed: ClosedJaxpr, name: str = "jit", device=None, donated: tuple = ()
                  ) -> Callable[..., list[np.ndarray]]:
    """A function from NumPy arrays (the jaxpr's inputs) to NumPy arrays (its outputs); with a
    GPU ``device``, from GPU buffers or NumPy arrays to GPU buffers.

    ``donated``: indices of inputs the caller gives up; the CPU executable's ``aliases``
    (``{output: input}``) says which outputs it may write over them (``lower.donation``)."""
    if device is not None and device.platform == "cuda":
        return _compile_for_gpu(closed, name, device)
    if not native_enabled():
        compiled_by_path["reference"] += 1
        return reference_executable(closed)
    if any(_calls_own_programs(eqn, runs_own_programs) for eqn in closed.jaxpr.eqns):
        return _compile_in_pieces(closed, name, runs_own_programs)
    if complex_split.holds_complex(closed):
        return _compile_complex(closed, name)
    start = time.perf_counter()
    target = cpu.host_target()
    beam_width = beam.width()
    keep = config.debug < 2 and cpu.disk_cache_enabled()
    salt = cpu.saved_program_salt() + beam.salt(beam_width)
    key = program_key(closed, name, donated, target.key() + salt) if keep else None
    saved = cpu.load_program(key, target=target) if key else None
    if saved is not None:
        compiled_by_path["native"] += 1
        _log(f"{name}: loaded from the disk cache in {time.perf_counter() - start:.3f}s")
        return saved
    keyed = time.perf_counter()
    cpu.start_compile_workers()
    try:
        program, settled = _lower_for_cpu(closed, name, target, beam_width)
    except NotLowerable as why:
        return fall_back_to_reference(closed, name, why)
    compiled_by_path["native"] += 1
    lowered = time.perf_counter()
    if not settled:
        key = None        # contractions the search budget left unsearched: not saved, the next compile searches them
    program, aliases = donation_aliases(program, donated)
    executable = cpu.compile_program(program, target=target, aliases=aliases, save_as=key)
    _log(f"{name}: keyed in {keyed - start:.3f}s, lowered in {lowered - keyed:.3f}s, compiled in "
         f"{time.perf_counter() - lowered:.3f}s")
    return executable


def _lower_for_cpu(closed: ClosedJaxpr, name: str, target, beam_width: int) -> tuple:
    """The CPU program, and whether it is final. With BEAM (``beam_width`` > 0) the lowering
    records its contractions, ``beam.choose_schedules`` reads or searches their schedules, and
    the program is lowered again with those that beat the heuristics; not final when the
    search budget ran out before every contraction was searched (or found in the cache)."""
    lowering = cpu.lowering_target()
    if not beam_width:
        return lower_program(closed, name, lowering), True
    met: list = []
    program = lower_program(closed, name, lowering, tunables=met)
    choices, settled = beam.choose_schedules(met, target, beam_width)
    if choices:
        program = lower_program(closed, name, lowering.with_schedules(choices))
    program, widths_settled = beam_widths.choose_vector_widths(program, target)
    return program, settled and widths_settled


def _compile_complex(closed: ClosedJaxpr, name: str) -> Callable[..., list[np.ndarray]]:
    """A CPU program holding complex values: compiled as its real form (``lower.complex_split``:
    each complex value as its two float parts), called with the complex arrays as they are."""
    try:
        split = complex_split.split_complex(closed)
    except NotLowerable as why:
        return fall_back_to_reference(closed, name, why)
    return split.wrap(compile_jaxpr(split.closed, name))


def _compile_for_gpu(closed: ClosedJaxpr, name: str, device) -> Callable:
    if not native_enabled():
        compiled_by_path["reference"] += 1
        return cuda.host_fallback(reference_executable(closed), device, "FGRAD_JIT_BACKEND=reference")
    if any(_calls_own_programs(eqn, runs_own_programs) for eqn in closed.jaxpr.eqns):
        return _compile_in_pieces(closed, name, runs_own_programs, device)
    start = time.perf_counter()
    if beam.width():
        beam.warn_not_searched_on_gpu()
    try:
        program = lower_program(closed, name, LoweringTarget("gpu", config.matmul_precision))
    except NotLowerable as why:
        return fall_back_to_reference(closed, name, why, device)
    compiled_by_path["native"] += 1
    lowered = time.perf_counter()
    executable = cuda.compile_program(program, device)
    _log(f"{name}: lowered in {lowered - start:.3f}s, compiled for {device!r} in "
         f"{time.perf_counter() - lowered:.3f}s")
    return executable


def _calls_own_programs(eqn: Eqn, own: set) -> bool:
    """``eqn`` is a call of a primitive in ``own``, or holds one in a sub-jaxpr (a jit of it)."""
    if eqn.primitive in own:
        return True
    subs = [v for p in eqn.params.values() for v in (p if isinstance(p, (tuple, list)) else (p,))]
    return any(_calls_own_programs(e, own) for v in subs if isinstance(v, (ClosedJaxpr, Jaxpr))
               for e in v.eqns)


def _compile_in_pieces(closed: ClosedJaxpr, name: str, own: set, device=None) -> Callable[..., list]:
    """A program calling primitives that run compiled programs of their own (``own``: shard):
    each run of other equations is compiled on its own (``compile_jaxpr``, for ``device``);
    each such call, or equation holding one (a nested jit), runs through its implementation
    (on the host, as before, for a GPU ``device``), in program order."""
    jaxpr = closed.jaxpr
    groups: list[list[Eqn]] = []
    for eqn in jaxpr.eqns:
        if _calls_own_programs(eqn, own) or not groups or _calls_own_programs(groups[-1][0], own):
            groups.append([eqn])
        else:
            groups[-1].append(eqn)
    needed: set[Var] = {v for v in jaxpr.outvars if isinstance(v, Var)}
    pieces = []
    for k, eqns in reversed(list(enumerate(groups))):
        defined = {v for e in eqns for v in e.outvars}
        inputs = list(dict.fromkeys(v for e in eqns for v in e.invars if isinstance(v, Var) and v not in defined))
        outputs = [v for e in eqns for v in e.outvars if v in needed]
        needed |= set(inputs)
        if outputs:
            piece = ClosedJaxpr(Jaxpr([], inputs, eqns, outputs), [])
            if not _calls_own_programs(eqns[0], own):
                run = compile_jaxpr(piece, f"{name}_part{k}", device=device)
            elif device is None:
                run = reference_executable(piece)
            else:
                run = cuda.host_fallback(reference_executable(piece), device, "runs its own per-device programs")
            pieces.append((inputs, outputs, run))
    pieces.reverse()
    compiled_by_path["native"] += 1
    produced = {v for _, outputs, _ in pieces for v in outputs}
    to_output = np.asarray if device is None else _device_put(device)

    def run(*args):
        env: dict[Var, object] = dict(zip(jaxpr.invars, args))
        for inputs, outputs, piece in pieces:
            env.update(zip(outputs, piece(*[env[v] for v in inputs])))
        return [to_output(np.asarray(a.value, a.aval.dtype)) if isinstance(a, Literal)
                else env[a] if a in produced and device is not None else to_output(env[a])
                for a in jaxpr.outvars]
    return run


def _device_put(device) -> Callable:
    """A host value (or a buffer already on ``device``) as a buffer on that GPU."""
    rt = cuda.runtime(device)
    return lambda x: x if isinstance(x, Buffer) else rt.put(np.asarray(x))


def fall_back_to_reference(closed: ClosedJaxpr, name: str, why: Exception, device=None) -> Callable:
    """The reference executable of a program the native path could not lower (``why``, a
    ``NotLowerable`` naming the equation), on the host for a GPU ``device``; counted in
    ``compiled_by_path`` and warned about once per program (``ReferencePathWarning``)."""
    compiled_by_path["reference"] += 1
    where = " on the host" if device is not None else ""
    _log(f"{name}: running on the reference path{where} ({why})")
    warn_fallback(name, why, key=closed, eqn=getattr(why, "eqn", None), category=ReferencePathWarning)
    run = reference_executable(closed)
    if device is None:
        return run
    return cuda.host_fallback(run, device, f"reference path: {why}")


def reference_executable(closed: ClosedJaxpr) -> Callable[..., list[np.ndarray]]:
    """Evaluate the jaxpr eagerly, primitive by primitive (the semantics every backend must match)."""
    def run(*args):
        with set_interpreter(EVAL):
            outs = eval_jaxpr(closed.jaxpr, closed.consts, *args)
        return [np.asarray(o) for o in outs]
    return run
