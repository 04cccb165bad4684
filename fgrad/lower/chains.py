"""Elementwise chains on the CPU: flat loops of one trip count that feed each other become one loop.

An optimizer step updates each parameter leaf with a few elementwise kernels (Adam: the first
moment, the second moment, then the parameter from both), each a flat loop over the leaf.
Run one after another, the later ones read back from memory what the earlier ones have just
written; merged, one loop computes them all per element: a third of the calls, the data
crosses memory once, and LLVM compiles one small kernel instead of three.

``merge_elementwise_chains`` adds a call to an earlier call's group when both kernels are one
flat loop of the same trip count storing only at the loop index, every buffer one of them
writes and the other reads is read only at the loop index (so each iteration sees what the
calls in order would have shown it), and the call can move up past the calls between (it
reads nothing they write and writes nothing they touch). A call joins only a group whose data
it works on (it reads at the loop index what the group reads or writes) or whose first kernel
it repeats, so a model's groups are the same kernels whatever its depth (mixing whichever loops
of one size came next made a new composition, and a new kernel to compile, at each depth).
Like ``horizontal``, the pass works on buffers, never on primitive names.
"""
from __future__ import annotations

from fgrad.lower.kernel import (
    Call, Expr, Kernel, Load, Program, Range, Store, Var, call_runs, const_int, format_kernel, rename_params,
    shared_params, stmt_exprs, substitute, walk_expr, with_bodies,
)

#: kernels per merged loop (its code and the values live in one iteration stay small). A power
#: of two below 8, so a kernel met in each of L layers forms the same groups for L = 4, 8, 12, ...
MAX_MEMBERS = 4


def merge_elementwise_chains(program: Program) -> Program:
    """``program`` with each group of chained flat elementwise calls as one call."""
    body = _merge(program.body)
    if body == program.body:
        return program
    return Program(program.name, program.inputs, program.outputs, body, program.constants)


def _merge(steps: tuple) -> tuple:
    out: list = []
    for run, s in call_runs(steps):
        out.extend(_merge_run(run))
        if s is not None:
            out.append(with_bodies(s, _merge))
    return tuple(out)


class _Member:
    """A call of a flat elementwise kernel: its loop, and what it reads and writes (buffer ids)."""

    def __init__(self, call: Call, loop: Range) -> None:
        self.call, self.loop = call, loop
        self.reads, self.writes = call.touched()
        by_param = {p.name: id(b) for p, b in zip(call.kernel.params, call.args)}
        var = loop.var
        # buffers read somewhere other than at the loop index
        self.unaligned = {by_param[n.param] for s in loop.body for e in stmt_exprs(s) for n in walk_expr(e)
                          if isinstance(n, Load) and (n.index != var or n.mask is not None)}
        self._structure: str | None = None

    @property
    def structure(self) -> str:
        """The kernel's text with params named by position: equal for the same kernel of each layer."""
        if self._structure is None:
            self._structure = format_kernel(self.call.kernel, structural=True)
        return self._structure


def _merge_run(calls: list[Call]) -> list:
    """A straight run of calls with chains merged (see the module's docstring)."""
    placed: list = []              # calls and groups (lists of _Member), in order
    touched = _Touched()
    for call in calls:
        loop = _flat_loop(call.kernel)
        member = _Member(call, loop) if loop is not None else None
        found = _group_to_join(placed, member, touched) if member is not None else None
        if found is None:
            placed.append([member] if member is not None else call)
            continue
        k, down = found
        if down:
            placed.append(placed.pop(k))
            k = len(placed) - 1
        placed[k].append(member)
    merged: dict = {}
    return [_merged(p, merged) if isinstance(p, list) else p for p in placed]


#: how many calls back a call looks for a group to join
SCAN = 64


def _group_to_join(placed: list, member: _Member, touched: "_Touched") -> tuple[int, bool] | None:
    """Where the latest group ``member`` may join is in ``placed`` and whether that group
    moves down to ``member`` (else ``member`` moves up to it): everything placed between
    must commute with the one that moves."""
    key = _loop_key(member.loop)
    member_moves = True
    between: list = []
    for k in range(len(placed) - 1, max(len(placed) - 1 - SCAN, -1), -1):
        p = placed[k]
        if isinstance(p, list) and _loop_key(p[0].loop) == key and len(p) < MAX_MEMBERS \
                and all(_aligned(m, member) for m in p) and _belongs(p, member, touched):
            if member_moves:
                return k, False
            group = _sets(p, touched)
            if all(_commute(group, _sets(x, touched)) for x in between):
                return k, True
        member_moves = member_moves and _commute((member.reads, member.writes), _sets(p, touched))
        between.append(p)
    return None


def _belongs(group: list[_Member], member: _Member, touched: "_Touched") -> bool:
    """Whether ``member`` works on ``group``'s data (reads, at the loop index, what the group
    reads or writes: the next step of a chain, or a sibling such as Adam's second moment beside
    its first) or repeats the group's first kernel. Only these join, so a model's groups are the
    same few kernels at any depth: the same kernel of every layer, in runs of ``MAX_MEMBERS``,
    with their chains."""
    reads, writes = _sets(group, touched)
    aligned_reads = member.reads - member.unaligned
    return bool(aligned_reads & (reads | writes)) or member.structure == group[0].structure


class _Touched(dict):
    """``Call.touched`` of each call, computed once (by the call's id)."""

    def of(self, call: Call) -> tuple[set[int], set[int]]:
        found = self.get(id(call))
        if found is None:
            found = self[id(call)] = call.touched()
        return found


def _sets(placed, touched: _Touched) -> tuple[set[int], set[int]]:
    """(reads, writes) of a placed call or group (a group's, once per size it grows to)."""
    if not isinstance(placed, list):
        return touched.of(placed)
    key = (id(placed), len(placed))       # groups only grow, and live as long as ``touched``
    found = touched.get(key)
    if found is None:
        found = touched[key] = (set().union(*(m.reads for m in placed)),
                                set().union(*(m.writes for m in placed)))
    return found


def _commute(a: tuple[set[int], set[int]], b: tuple[set[int], set[int]]) -> bool:
    """Whether two steps with these (reads, writes) may swap: neither reads nor writes what
    the other writes."""
    return not (a[0] & b[1] or a[1] & b[0] or a[1] & b[1])


def _flat_loop(kernel: Kernel) -> Range | None:
    """The kernel's one loop when it is ``for i in 0..n: out[i] = ...`` (stores at i only)."""
    if kernel.may_alias or len(kernel.body) != 1 or not isinstance(kernel.body[0], Range):
        return None
    loop = kernel.body[0]
    if const_int(loop.start) != 0 or const_int(loop.stop) is None or loop.step != 1 or loop.unroll:
        return None
    if not loop.body or not all(isinstance(s, Store) and s.mask is None and s.index == loop.var for s in loop.body):
        return None
    return loop


def _loop_key(loop: Range) -> tuple:
    return const_int(loop.stop), loop.parallel, loop.vectorize


def _aligned(first: _Member, then: _Member) -> bool:
    """Whether ``then`` may run in the same iteration as ``first``: what either writes, the
    other reads only at the loop index."""
    return not (first.writes & then.unaligned or then.writes & first.unaligned)


def _merged(group: list[_Member], made: dict) -> Call:
    """One call doing the group's work. Groups of the same kernels binding their buffers alike
    (each layer's) share one merged kernel, ``made`` keeps them: built once, named after the
    first, printed and hashed once by the backend."""
    if len(group) == 1:
        return group[0].call
    var = group[0].loop.var
    params, buffers, renamings = shared_params([m.call for m in group], "e")
    key = tuple((m.structure, m.call.kernel.flops, tuple(names[p.name] for p in m.call.kernel.params))
                for m, names in zip(group, renamings))
    kernel = made.get(key)
    if kernel is not None:
        return Call(kernel, buffers)
    body: list = []
    for m, names in zip(group, renamings):
        stmts = rename_params(m.loop.body, names)
        if m.loop.var != var:
            stmts = tuple(_with_var(s, m.loop.var.name, var) for s in stmts)
        body.extend(stmts)
    first = group[0].loop
    loop = Range(var, first.start, first.stop, body, 1, first.parallel, first.vectorize)
    kernel = made[key] = Kernel(f"{group[0].call.kernel.name}_c{len(group)}", params, (loop,),
                                sum(m.call.kernel.flops for m in group))
    return Call(kernel, buffers)


def _with_var(s: Store, old: str, new: Var) -> Store:
    sub = lambda e: substitute(e, {old: new}) if isinstance(e, Expr) else e
    return Store(s.param, sub(s.index), sub(s.value), None if s.mask is None else sub(s.mask))
