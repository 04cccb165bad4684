"""Donated inputs: which outputs of a program may be written over a donated input's memory.

``jit(f, donate_argnums=...)`` lets a program reuse the buffers of the arguments it is
given (an optimizer step overwriting parameters and moments in place). That is only
sound when nothing reads the input after the output's first write; this module decides
it from the kernel-IR program, conservatively:

* the program is a straight sequence of kernel calls (no loops or branches);
* the output is written by exactly one call, and no later call reads the input;
* if that call also reads the input, it does so only inside the single statement that
  stores the output, at the very index it stores to (an elementwise update such as
  ``p - lr * m / (sqrt(v) + eps)``), so each element is read before it is overwritten.

The call's kernel is then marked ``may_alias`` for those two params (no ``noalias``).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from fgrad.lower.kernel import Call, Load, Program, Store, stmt_exprs, walk_expr, walk_stmts


def donation_aliases(program: Program, donated: Sequence[int]) -> tuple[Program, dict[int, int]]:
    """``(program', {output index: input index})``: the outputs that may be written over the
    donated inputs (indices into ``program.inputs``), with the kernels that read one and
    write the other marked ``may_alias``."""
    if not donated or not all(isinstance(s, Call) for s in program.body):
        return program, {}
    steps = list(program.body)
    aliases: dict[int, int] = {}
    free = [j for j in sorted(set(donated)) if 0 <= j < len(program.inputs)]
    for k, out in enumerate(program.outputs):
        for j in free:
            inp = program.inputs[j]
            if inp.dtype != out.dtype or inp.size != out.size:
                continue
            marked = _overwrite_step(steps, inp, out)
            if marked is not None:
                n, kernel = marked
                steps[n] = Call(kernel, steps[n].args)
                aliases[k] = j
                free.remove(j)
                break
    if not aliases:
        return program, {}
    return replace(program, body=tuple(steps)), aliases


def _overwrite_step(steps: list, inp, out):
    """(step index, kernel to use there) if ``out`` may overwrite ``inp``, else None."""
    writes = [n for n, s in enumerate(steps) if out in _written(s)]
    reads = [n for n, s in enumerate(steps) if inp in s.args]
    if len(writes) != 1 or any(r > writes[0] for r in reads):
        return None
    n = writes[0]
    call = steps[n]
    if n not in reads:
        return n, call.kernel
    names_in = {p.name for p, b in zip(call.kernel.params, call.args) if b is inp}
    names_out = {p.name for p, b in zip(call.kernel.params, call.args) if b is out}
    if len(names_in) != 1 or len(names_out) != 1 or names_in == names_out:
        return None
    (p_in,), (p_out,) = names_in, names_out
    if not _reads_only_at_its_store(call.kernel.body, p_in, p_out):
        return None
    return n, replace(call.kernel, may_alias=frozenset({p_in, p_out}))


def _written(call: Call) -> set:
    names = call.kernel.written_params
    return {b for p, b in zip(call.kernel.params, call.args) if p.name in names}


def _reads_only_at_its_store(body: tuple, p_in: str, p_out: str) -> bool:
    stores = [s for s in walk_stmts(body) if isinstance(s, Store) and s.param == p_out]
    if len(stores) != 1:
        return False
    store = stores[0]
    for s in walk_stmts(body):
        for e in stmt_exprs(s):
            for node in walk_expr(e):
                if isinstance(node, Load) and node.param == p_in:
                    if s is not store or node.index != store.index:
                        return False
    return True
