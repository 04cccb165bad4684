"""Horizontal fusion for the GPU: runs of independent kernels become one launch.

A training step ends with an optimizer update of every parameter leaf: a dozen small
elementwise kernels, none reading what another writes. On a GPU each is a launch
(~5 us of host time through pycuda, ~1-2 us inside a CUDA graph) for a few microseconds
of work. ``merge_independent_calls`` joins each run of consecutive calls whose kernels are
one grid loop (or a few scalar stores) and touch nothing another in the run writes into
one kernel whose body is their ranges side by side; the CUDA renderer runs such a body
in ``segments`` mode (one index space, each thread one iteration of one range).

The pass works on buffers, not primitive names: which kernels merge depends only on
what they read and write.
"""
from __future__ import annotations

from fgrad.lower.cuda import distributable, gemm_pattern
from fgrad.lower.kernel import (
    Call, Kernel, Program, Range, Store, Var, call_runs, const_int, rename_params, shared_params, walk_steps,
    with_bodies,
)

MAX_PARTS = 16          # kernels per merged launch (its source and register use stay small)


def merge_independent_calls(program: Program) -> Program:
    """``program`` with each run of consecutive independent mergeable calls as one call."""
    body = _merge(program.body)
    if _count_calls(body) == _count_calls(program.body):
        return program
    return Program(program.name, program.inputs, program.outputs, body, program.constants)


def _count_calls(steps: tuple) -> int:
    return sum(isinstance(s, Call) for s in walk_steps(steps))


def _merge(steps: tuple) -> tuple:
    out: list = []
    group: list[Call] = []
    steps = _by_level(steps)

    def flush() -> None:
        if len(group) == 1:
            out.append(group[0])
        elif group:
            out.append(_merged(group))
        group.clear()

    for s in steps:
        if isinstance(s, Call) and _mergeable(s.kernel):
            if group and (len(group) >= MAX_PARTS or not _independent(group, s)):
                flush()
            group.append(s)
            continue
        flush()
        out.append(with_bodies(s, _merge))
    flush()
    return tuple(out)


def _by_level(steps: tuple) -> list:
    """Each straight run of calls in dependency-level order (stable): a call's level is one
    more than that of the latest call it must follow (it reads what that one writes, writes
    what it reads or writes). Calls of one level touch nothing another writes, so kernels
    the program wrote far apart (the per-leaf updates after each gradient) become neighbours."""
    out: list = []
    for run, s in call_runs(steps):
        levels = _levels(run)
        out.extend(run[i] for i in sorted(range(len(run)), key=lambda i: (levels[i], i)))
        if s is not None:
            out.append(s)
    return out


def _levels(calls: list[Call]) -> list[int]:
    levels: list[int] = []
    last_writer: dict[int, int] = {}
    readers: dict[int, list[int]] = {}
    for i, call in enumerate(calls):
        read, written = call.touched()
        after = [last_writer[b] for b in read | written if b in last_writer]
        after += [r for b in written for r in readers.get(b, ())]
        levels.append(1 + max((levels[j] for j in after), default=-1))
        for b in written:
            last_writer[b], readers[b] = i, []
        for b in read:
            readers.setdefault(b, []).append(i)
    return levels


def _mergeable(kernel: Kernel) -> bool:
    """One distributable range of constant trip counts, or a few scalar stores (no loops); not
    a GEMM (the renderer tiles those: side by side with others they would not be one)."""
    if kernel.may_alias or gemm_pattern(kernel) is not None:
        return False
    body = kernel.body
    if len(body) == 1 and isinstance(body[0], Range):
        return distributable(body[0]) and _constant_trips(body[0])
    return all(isinstance(s, Store) for s in body)


def _constant_trips(r: Range) -> bool:
    return const_int(r.start) is not None and const_int(r.stop) is not None


def _independent(group: list[Call], call: Call) -> bool:
    read, written = call.touched()
    for other in group:
        other_read, other_written = other.touched()
        if other_written & (read | written) or written & other_read:
            return False
    return True


def _merged(group: list[Call]) -> Call:
    params, buffers, renamings = shared_params(group, "m")
    body: list = []
    for call, names in zip(group, renamings):
        part = rename_params(call.kernel.body, names)
        if not (len(part) == 1 and isinstance(part[0], Range)):      # scalar stores: one iteration
            part = (Range(Var("seg_one"), 0, 1, part, parallel=True),)
        body.extend(part)
    first = group[0].kernel
    kernel = Kernel(f"{first.name}_x{len(group)}", params, tuple(body), sum(c.kernel.flops for c in group))
    return Call(kernel, buffers)
