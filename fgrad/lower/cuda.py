"""Render kernel IR programs to CUDA C, plus a host-side launch plan.

``render_program(program) -> (source, plan)``: one translation unit per program
with one ``extern "C" __global__`` function per kernel, and a ``LaunchPlan``
(plain Python data) that a runtime executes: which kernel to launch on which
buffers with what grid and block, inside the program's loops and branches.

Kernels
-------
Each kernel param becomes a ``T* __restrict__`` pointer (``const`` when the kernel
only reads it; the scheduler never passes one buffer to two params of which one is
written). A kernel runs in one of five modes, chosen from its top-level statements:

* **grid**: the body is one *distributable* ``Range`` (see below): a grid-stride
  loop over ``blockIdx.x * blockDim.x + threadIdx.x``; distributable ranges with
  constant bounds nested directly inside it are flattened into one index space.
* **segments**: several distributable ranges of known trip count, none touching what
  another writes (independent kernels merged by ``lower.horizontal``): one grid-stride
  loop over the sum of their trip counts, each thread running one iteration of the range
  whose segment holds its index.
* **gemm**: a big float contraction in the shape the GPU lowering gives one (``for b, m,
  n: acc = sum_k x(b, m, k) * y(b, k, n); store``, see ``gemm_pattern``): the tiled
  shared-memory GEMM template of ``cuda_contraction`` (64x64 output tiles, 16-deep K
  slabs, a 4x4 register tile per thread) with the operand reads and the store (epilogue
  included) rendered from the IR into its snippets — an implicit GEMM for convolutions.
* **block**: several top-level statements, some distributable: one block; each
  distributable range is a block-stride loop, every other statement runs on thread
  0, with ``__syncthreads()`` between statements (so each sees the previous ones'
  writes, as program order demands).
* **single**: nothing distributable: one thread.

A range is distributable when it touches no local defined outside it and either
is marked ``parallel`` (a promise that iterations are independent) or passes a
conservative check: every store index uses the loop variable and loads nothing,
and every written param is read only at an index it is stored to in the loop.
The check trusts that store indices built from a loop nest are injective (the
scheduler's always are). ``vectorize`` hints are ignored; ``unroll`` becomes
``#pragma unroll``.

Expressions are rendered once per scope (structural CSE) into ``const`` temporaries;
a store forgets what it may have changed, and a loop forgets, before its body,
everything its body writes. Every scalar op has the IR's exact semantics (see
``op_text`` and the helpers in ``PRELUDE``): integer arithmetic wraps (done in
unsigned types, signed overflow being undefined in C), x/0 and x%0 are 0, shifts
out of range give 0 (or -1), float->int casts truncate and saturate with NaN -> 0,
float max/min propagate NaN, ``round`` is ``roundf``, ``round_even`` is ``rintf``.
Transcendentals call CUDA's libdevice (a few ulp, as the CPU's polynomials); the
compiler may contract ``a * b + c`` into an FMA unless the runtime passes
``--fmad=false``.

Launch plan
-----------
``LaunchPlan.buffers`` lists the program's buffers in calling-convention order
(inputs, outputs, constants) then its temporaries, each temporary with its byte
offset in one device arena of ``arena_bytes`` (``kernel.plan_memory``). Steps use
indices into that list:

* ``Launch(kernel, grid, block, args)``: ``kernel<<<grid, block>>>(*buffers[args])``;
* ``Repeat(count, index, body)``: run ``body`` ``count`` times; when ``index`` is not
  None, first copy the iteration number into that scalar buffer (the CUDA runtime copies it
  from a device table of iteration numbers, so a CUDA graph can capture the loop);
* ``WhileLoop(cond, before, body)``: loop { before; read ``cond`` from the device;
  stop if it is 0; body };
* ``Branch(index, branches)``: read the scalar ``index`` from the device, clamp it
  into range, run that branch (bool: [false, true]).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Union

import numpy as np

from fgrad.lower.intervals import INT32_MAX, IndexRanges
from fgrad.lower.kernel import (
    FULL, Accumulate, Call, Const, DefineLocal, Expr, If, Kernel, Load, LocalLoad, LocalStore, Loop, Op,
    Program, Range, Store, Switch, Var, While, bool_, const_int, float16, float32, float64, free_vars, int32,
    int64, is_float, kernels_of, plan_memory, stmt_exprs, uint8, uint32, walk_expr, walk_stmts,
)

C_TYPES = {float16: "fg_half", float32: "float", float64: "double", int32: "int", int64: "long long",
           uint32: "unsigned int", uint8: "unsigned char", bool_: "bool"}
NARROW_TYPES = {**C_TYPES, int64: "int"}     # a kernel whose index values all fit in 32 bits
BLOCK_SIZE = 256            # threads per block of a grid-mode kernel
MAX_GRID = 65535            # blocks at most; the grid-stride loop covers the rest
DEFAULT_GRID = 1024         # when the trip count is only known at run time
MAX_BLOCK = 1024            # threads of a block-mode kernel
MAX_THREADS = MAX_GRID * MAX_BLOCK      # the most threads that stride over one loop

# --- the launch plan ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BufferSlot:
    """A program buffer as the runtime sees it; ``offset`` is its arena offset (temporaries)."""

    name: str
    dtype: str
    shape: tuple
    kind: str                  # "input", "output", "constant" or "temporary"
    offset: int | None = None

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class Launch:
    """``kernel<<<grid, block>>>`` on the buffers at indices ``args`` (in param order)."""

    kernel: str
    grid: int
    block: int
    args: tuple


@dataclass(frozen=True)
class Repeat:
    """``body`` ``count`` times; ``index`` (a buffer index or None) receives the iteration number."""

    count: int
    index: int | None
    body: tuple


@dataclass(frozen=True)
class WhileLoop:
    """loop { before; if not buffers[cond][0] (read from the device): break; body }."""

    cond: int
    before: tuple
    body: tuple


@dataclass(frozen=True)
class Branch:
    """Run ``branches[clamp(buffers[index][0])]`` (read from the device)."""

    index: int
    branches: tuple


PlanStep = Union[Launch, Repeat, WhileLoop, Branch]


@dataclass(frozen=True)
class LaunchPlan:
    """What the host does to run a rendered program (see the module docstring)."""

    buffers: tuple
    arena_bytes: int
    steps: tuple
    kernel_modes: dict         # kernel name -> "gemm", "grid", "segments", "block" or "single"

    def launches(self) -> Iterator[Launch]:
        """Every ``Launch``, nested ones included, in program order."""
        yield from _walk_launches(self.steps)


def _walk_launches(steps: Iterable[PlanStep]) -> Iterator[Launch]:
    for s in steps:
        if isinstance(s, Launch):
            yield s
        elif isinstance(s, Repeat):
            yield from _walk_launches(s.body)
        elif isinstance(s, WhileLoop):
            yield from _walk_launches(s.before)
            yield from _walk_launches(s.body)
        else:
            for b in s.branches:
                yield from _walk_launches(b)


# --- the entry point ---------------------------------------------------------------------------


def render_program(program: Program, prefix: str = "") -> tuple[str, LaunchPlan]:
    """CUDA C source for every kernel of ``program`` and the plan that launches them.

    ``prefix`` is put before every kernel's C name, so that the kernels of several
    programs can share one module (``source[len(PRELUDE):]`` is the kernels alone).

        >>> source, plan = render_program(program)
        >>> [launch.kernel for launch in plan.launches()]
    """
    if prefix and not prefix.isidentifier():
        raise ValueError(f"kernel name prefix {prefix!r} is not a C identifier")
    names = _unique_kernel_names(kernels_of(program), prefix)
    parts, launch_sizes, modes = [PRELUDE], {}, {}
    for kernel in kernels_of(program):
        text, mode, grid, block = render_kernel(kernel, names[id(kernel)])
        parts.append(text)
        launch_sizes[id(kernel)] = (grid, block)
        modes[names[id(kernel)]] = mode
    if any("nvcuda::" in text or "wmma::" in text for text in parts[1:]):
        parts.insert(1, "#include <mma.h>   // tensor-core fragments (TF32 GEMMs)")   # before every kernel:
        # a runtime that compiles the kernels in several modules keeps what precedes the first
    slots, index_of = _buffer_slots(program)
    steps = _plan_steps(program.body, names, launch_sizes, index_of)
    arena = plan_memory(program).size
    return "\n".join(parts), LaunchPlan(tuple(slots), arena, steps, modes)


def kernels_by_name(program: Program, prefix: str = "") -> dict[str, Kernel]:
    """Each kernel of ``program`` under its C name in ``render_program(program, prefix)``."""
    kernels = kernels_of(program)
    names = _unique_kernel_names(kernels, prefix)
    return {names[id(k)]: k for k in kernels}


def _unique_kernel_names(kernels: list[Kernel], prefix: str) -> dict[int, str]:
    names, taken = {}, set()
    for k in kernels:
        base = prefix + k.name
        base = base if base not in C_RESERVED else f"fg_k_{base}"
        name, n = base, 1
        while name in taken:
            name, n = f"{base}_{n}", n + 1
        taken.add(name)
        names[id(k)] = name
    return names


def _buffer_slots(program: Program) -> tuple[list[BufferSlot], dict[int, int]]:
    memory = plan_memory(program)
    kinds = ([(b, "input") for b in program.inputs] + [(b, "output") for b in program.outputs]
             + [(b, "constant") for b in program.constants]
             + [(b, "temporary") for b in program.temporaries()])
    slots, index_of = [], {}
    for b, kind in kinds:
        offset = memory.offset(b) if kind == "temporary" else None
        index_of[id(b)] = len(slots)
        slots.append(BufferSlot(b.name, b.dtype.name, b.shape, kind, offset))
    return slots, index_of


def _plan_steps(steps: tuple, names: dict, sizes: dict, index_of: dict) -> tuple:
    out = []
    for s in steps:
        if isinstance(s, Call):
            grid, block = sizes[id(s.kernel)]
            out.append(Launch(names[id(s.kernel)], grid, block, tuple(index_of[id(b)] for b in s.args)))
        elif isinstance(s, Loop):
            index = None if s.index is None else index_of[id(s.index)]
            out.append(Repeat(s.count, index, _plan_steps(s.body, names, sizes, index_of)))
        elif isinstance(s, While):
            out.append(WhileLoop(index_of[id(s.cond)], _plan_steps(s.before, names, sizes, index_of),
                                 _plan_steps(s.body, names, sizes, index_of)))
        elif isinstance(s, Switch):
            out.append(Branch(index_of[id(s.index)],
                              tuple(_plan_steps(b, names, sizes, index_of) for b in s.branches)))
    return tuple(out)


# --- kernels -------------------------------------------------------------------------------------


def render_kernel(kernel: Kernel, name: str | None = None) -> tuple[str, str, int, int]:
    """(CUDA C text, mode, grid, block) of one kernel; ``name`` is its C name (default its own)."""
    return _KernelRenderer(kernel, name or kernel.name).render()


def thread_iterations(kernel: Kernel) -> int:
    """An upper bound on the loop iterations one thread of ``kernel`` runs (loops of unknown
    trip count counted as 1): the length of the longest serial chain. On a GPU a kernel is
    as slow as that chain, however many threads run beside it."""
    gemm = gemm_pattern(kernel)
    if gemm is not None:
        return gemm.k                      # each thread walks K, 16 multiply-adds per step
    renderer = _KernelRenderer(kernel, kernel.name)
    mode, grid, block = renderer.choose_mode(kernel.body)
    if mode == "grid":
        rounds = -(-(renderer.flat_trip(kernel.body[0]) or 1) // (grid * block))
        return rounds * max(1, _iterations(renderer.flattened(kernel.body[0])[-1].body))
    if mode == "segments":
        total = sum(renderer.flat_trip(r) for r in kernel.body)
        rounds = -(-total // (grid * block))
        return rounds * max(max(1, _iterations(renderer.flattened(r)[-1].body)) for r in kernel.body)
    if mode == "single":
        return _iterations(kernel.body)
    total = 0
    for s in kernel.body:
        if isinstance(s, Range) and distributable(s):
            chain = renderer.flattened(s)
            per_thread = -(-(renderer.flat_trip(s) or 1) // block)
            total += per_thread * max(1, _iterations(chain[-1].body))
        else:
            total += _iterations((s,))
    return total


def _iterations(stmts: tuple) -> int:
    count = 0
    for s in stmts:
        if isinstance(s, Range):
            count += (_trip(s) or 1) * max(1, _iterations(s.body))
        elif isinstance(s, If):
            count += max(_iterations(s.then), _iterations(s.else_))
    return count


def _trip(r: Range) -> int | None:
    start, stop = const_int(r.start), const_int(r.stop)
    if start is None or stop is None:
        return None
    return max(0, -(-(stop - start) // r.step))


def _locals_used(stmts: tuple) -> set[str]:
    used = set()
    for s in walk_stmts(stmts):
        if isinstance(s, (LocalStore, Accumulate)):
            used.add(s.local)
        for e in stmt_exprs(s):
            used |= {n.local for n in walk_expr(e) if isinstance(n, LocalLoad)}
    return used


def _locals_defined(stmts: tuple) -> set[str]:
    return {s.local.name for s in walk_stmts(stmts) if isinstance(s, DefineLocal)}


def _all_exprs(stmts: tuple) -> Iterator[Expr]:
    for s in walk_stmts(stmts):
        for e in stmt_exprs(s):
            yield from walk_expr(e)


def distributable(r: Range) -> bool:
    """Whether the iterations of top-level range ``r`` may run on different threads."""
    if _locals_used(r.body) - _locals_defined(r.body):
        return False
    if r.parallel:
        return True
    stores = [s for s in walk_stmts(r.body) if isinstance(s, Store)]
    store_indices: dict[str, set] = {}
    for s in stores:
        if r.var.name not in free_vars(s.index):
            return False
        if any(isinstance(n, (Load, LocalLoad)) for n in walk_expr(s.index)):
            return False
        store_indices.setdefault(s.param, set()).add(s.index)
    for e in _all_exprs(r.body):
        if isinstance(e, Load) and e.param in store_indices and e.index not in store_indices[e.param]:
            return False
    return True


def independent_ranges(body: tuple) -> bool:
    """Whether ``body`` is two or more distributable ranges none of which reads or writes a
    param another one writes (so they may run side by side: ``segments`` mode)."""
    if len(body) < 2 or not all(isinstance(s, Range) and distributable(s) for s in body):
        return False
    writes = [{x.param for x in walk_stmts((s,)) if isinstance(x, Store)} for s in body]
    reads = [{e.param for e in _all_exprs((s,)) if isinstance(e, Load)} for s in body]
    for i in range(len(body)):
        for j in range(i + 1, len(body)):
            if writes[i] & (reads[j] | writes[j]) or writes[j] & reads[i]:
                return False
    return True


def _grid_size(n: int) -> tuple[int, int]:
    """(grid, block) for a grid-stride loop over ``n`` iterations."""
    block = BLOCK_SIZE if n >= BLOCK_SIZE else max(32, -(-n // 32) * 32)
    return max(1, min(MAX_GRID, -(-n // block))), block


GEMM_MIN_SIZE = 32          # M, N and K of a contraction worth the tiled GEMM template
#: the identifiers of the GEMM templates (``cuda_contraction``), renamed in IR code beside them
GEMM_TEMPLATE_NAMES = frozenset("""T M N K bz m0 n0 As Bs Cs acc tx ty e mm kk nn gm gk gn v i j ra rb
warp wr wc fa fb wmma nvcuda""".split())
GEMM_MIN_BLOCKS = 64        # and the 64x64 output tiles it needs to fill a GPU


@dataclass(frozen=True)
class GemmPattern:
    """A kernel ``for b, m, n: acc = sum_k a(b, m, k) * b_expr(b, k, n); store(acc)`` (the GPU
    lowering's ``gpu_lowering.gemm``): rendered as the tiled shared-memory GEMM template."""

    b: str
    m_var: str
    n_var: str
    k_var: str
    batch: int
    m: int
    n: int
    k: int
    a: Expr
    b_expr: Expr
    store: Store
    dtype: np.dtype
    tf32: bool = False          # both operands rounded to TF32: the tensor-core template

    @property
    def threads(self) -> int:
        return 128 if self.tf32 else 256

    @property
    def blocks(self) -> int:
        return gemm_tiles(self.batch, self.m, self.n)


def gemm_tiles(batch: int, m: int, n: int) -> int:
    """The template's 64x64 output tiles (one block each) of a (batch, m, n) output."""
    from fgrad.lower.cuda_contraction import TILE
    return batch * -(-m // TILE) * -(-n // TILE)


def gemm_worthwhile(batch: int, m: int, n: int, k: int) -> bool:
    """Whether a (batch, m, n, k) contraction is big enough for the tiled GEMM template."""
    return min(m, n, k) >= GEMM_MIN_SIZE and gemm_tiles(batch, m, n) >= GEMM_MIN_BLOCKS


def gemm_pattern(kernel: Kernel) -> GemmPattern | None:
    """The kernel as a ``GemmPattern``, or None when it is not exactly one (or too small)."""
    nest, vars_ = kernel.body, []
    for _ in range(3):
        if len(nest) != 1 or not isinstance(nest[0], Range) or _trip(nest[0]) is None \
                or const_int(nest[0].start) != 0 or nest[0].step != 1:
            return None
        vars_.append(nest[0])
        nest = nest[0].body
    if len(nest) != 3 or not isinstance(nest[0], DefineLocal) or not isinstance(nest[1], Range) \
            or not isinstance(nest[2], Store):
        return None
    define, fold, store = nest
    acc = define.local
    if acc.size != 1 or acc.dtype not in (float32, float64) or not isinstance(define.init, Const) \
            or define.init.value != 0 or _trip(fold) is None or const_int(fold.start) != 0 or fold.step != 1:
        return None
    if len(fold.body) != 1 or not isinstance(fold.body[0], Accumulate):
        return None
    update = fold.body[0]
    value = update.value
    while isinstance(value, Op) and value.op == "cast" and value.dtype == acc.dtype:
        value = value.args[0]
    if update.local != acc.name or update.op != "add" or const_int(update.index) != 0 \
            or not isinstance(value, Op) or value.op != "mul" or value.dtype != acc.dtype:
        return None
    b, m, n = (r.var.name for r in vars_)
    k = fold.var.name
    x, y = value.args
    if _loads_in_locals(x) or _loads_in_locals(y):
        return None
    if not (free_vars(x) <= {b, m, k} and free_vars(y) <= {b, k, n}):
        x, y = y, x
        if not (free_vars(x) <= {b, m, k} and free_vars(y) <= {b, k, n}):
            return None
    if not free_vars(store.index) | free_vars(store.value) <= {b, m, n} or store.mask is not None:
        return None
    if any(isinstance(e, LocalLoad) and (e.local != acc.name or const_int(e.index) != 0)
           for e in walk_expr(store.value)):
        return None
    sizes = [_trip(r) for r in vars_] + [_trip(fold)]
    if not gemm_worthwhile(*sizes):
        return None
    from fgrad.lower.cuda_contraction import is_tf32_round
    tf32 = acc.dtype == float32 and is_tf32_round(x) and is_tf32_round(y)
    return GemmPattern(b, m, n, k, *sizes, x, y, store, acc.dtype, tf32)


def _loads_in_locals(e: Expr) -> bool:
    return any(isinstance(n, LocalLoad) for n in walk_expr(e))


class _KernelRenderer:
    def __init__(self, kernel: Kernel, name: str, ranges: IndexRanges | None = None) -> None:
        self.kernel, self.name = kernel, name
        self.lines: list[str] = []
        self.depth = 1
        self.scopes: list[dict] = [{}]
        self.counter = 0
        self.idents: dict[str, str] = {}
        self.reserved: frozenset = C_RESERVED
        self.dtypes = {p.name: p.dtype for p in kernel.params}
        self.ranges = ranges if ranges is not None else IndexRanges(kernel, MAX_THREADS)
        self.narrow(self.ranges.fits_int32)

    def narrow(self, on: bool) -> None:
        """Index arithmetic in ``int`` (all values fit: 32-bit instructions) or ``long long``."""
        self.types = NARROW_TYPES if on else C_TYPES
        self.ix, self.sx = self.types[int64], "" if on else "LL"

    # -- names and text
    def ident(self, name: str) -> str:
        if name not in self.idents:
            self.idents[name] = f"fg_u_{name}" if name in self.reserved or name.startswith("fg_") else name
        return self.idents[name]

    def emit(self, line: str) -> None:
        self.lines.append("    " * self.depth + line)

    def open(self, header: str) -> None:
        self.emit(header + " {")
        self.depth += 1
        self.scopes.append({})

    def close(self) -> None:
        self.scopes.pop()
        self.depth -= 1
        self.emit("}")

    # -- the kernel
    def render(self) -> tuple[str, str, int, int]:
        body = self.kernel.body
        gemm = gemm_pattern(self.kernel)
        mode, grid, block = ("gemm", gemm.blocks, gemm.threads) if gemm is not None else self.choose_mode(body)
        if gemm is not None:            # IR names must not shadow the template's
            self.reserved = C_RESERVED | GEMM_TEMPLATE_NAMES
        flat = sum(self.flat_trip(r) or 0 for r in body if isinstance(r, Range))
        if flat > INT32_MAX - MAX_THREADS:      # the flattened counters would overflow an int
            self.narrow(False)
        written = self.kernel.written_params
        params = []
        for p in self.kernel.params:
            const = "" if p.name in written else "const "
            params.append(f"{const}{C_TYPES[p.dtype]}* __restrict__ {self.ident(p.name)}")
        header = f'extern "C" __global__ void {self.name}({", ".join(params)})'
        self.lines.append(header + " {")
        if mode == "gemm":
            self.gemm(gemm)
        elif mode == "grid":
            self.grid_range(body[0])
        elif mode == "segments":
            self.segments(body)
        elif mode == "block":
            self.block_statements(body)
        else:
            self.block(body)
        self.lines.append("}")
        return "\n".join(self.lines) + "\n", mode, grid, block

    def choose_mode(self, body: tuple) -> tuple[str, int, int]:
        if len(body) == 1 and isinstance(body[0], Range) and distributable(body[0]):
            n = self.flat_trip(body[0])
            if n is None:
                return "grid", DEFAULT_GRID, BLOCK_SIZE
            return ("grid", *_grid_size(n))
        if independent_ranges(body) and None not in (trips := [self.flat_trip(r) for r in body]):
            return ("segments", *_grid_size(sum(trips)))
        ranges = [s for s in body if isinstance(s, Range) and distributable(s)]
        if ranges and len(body) > 1:
            trips = [self.flat_trip(r) for r in ranges]
            n = MAX_BLOCK if None in trips else max(trips)
            return "block", 1, min(MAX_BLOCK, max(32, -(-n // 32) * 32))
        return "single", 1, 1

    def flattened(self, r: Range) -> list[Range]:
        """``r`` and the distributable ranges with constant bounds nested directly inside it
        (iterations independent at every level are independent as pairs, triples...)."""
        if _trip(r) is None:
            return [r]
        chain = [r]
        while (len(chain[-1].body) == 1 and isinstance(chain[-1].body[0], Range)
               and _trip(chain[-1].body[0]) is not None and distributable(chain[-1].body[0])):
            chain.append(chain[-1].body[0])
        return chain

    def flat_trip(self, r: Range) -> int | None:
        trips = [_trip(x) for x in self.flattened(r)]
        return None if None in trips else int(np.prod(trips, dtype=np.int64))

    def grid_range(self, r: Range) -> None:
        self.thread_counters()
        self.strided(r, "fg_tid", "fg_threads")

    def gemm(self, g: "GemmPattern") -> None:
        """The tiled shared-memory GEMM template (``cuda_contraction.simt_tile_loop``) with the
        pattern's operand reads and output store rendered from the IR as its snippets."""
        from fgrad.lower.cuda_contraction import TILE, simt_tile_loop, tf32_tile_loop
        tiles_n, tiles_m = -(-g.n // TILE), -(-g.m // TILE)
        self.emit(f"typedef {C_TYPES[g.dtype]} T;")
        if g.tf32:
            self.emit("using namespace nvcuda;")
        self.emit(f"const long long M = {g.m}, N = {g.n}, K = {g.k};")
        self.emit(f"const long long bz = (long long)blockIdx.x / {tiles_m * tiles_n}, "
                  f"m0 = ((long long)blockIdx.x / {tiles_n}) % {tiles_m} * {TILE}, "
                  f"n0 = (long long)blockIdx.x % {tiles_n} * {TILE};")
        load_a = self.snippet({g.b: "bz", g.m_var: "gm", g.k_var: "gk"}, lambda r: [f"v = {r.expr(g.a)};"])
        load_b = self.snippet({g.b: "bz", g.k_var: "gk", g.n_var: "gn"}, lambda r: [f"v = {r.expr(g.b_expr)};"])

        def store(r: "_KernelRenderer") -> list:
            for n in walk_expr(g.store.value):
                if isinstance(n, LocalLoad):
                    r.scopes[-1][n] = "v"
            r.stmt_Store(g.store)
            return []
        store_v = self.snippet({g.b: "bz", g.m_var: "gm", g.n_var: "gn"}, store)
        self.lines.append(tf32_tile_loop(load_a, load_b, store_v) if g.tf32
                          else simt_tile_loop("T", load_a, load_b, store_v))

    def snippet(self, bindings: dict, emit) -> str:
        """C statements binding IR loop variables to template variables, then ``emit(renderer)``."""
        sub = _KernelRenderer(self.kernel, self.name, self.ranges)
        sub.reserved = self.reserved
        sub.narrow(self.ix == "int")
        sub.depth = 0
        for var, text in bindings.items():
            sub.emit(f"const {sub.ix} {sub.ident(var)} = ({sub.ix}){text};")
        for line in emit(sub):
            sub.emit(line)
        return "\n                ".join(sub.lines)

    def thread_counters(self) -> None:
        ix = self.ix
        self.emit(f"const {ix} fg_tid = ({ix})blockIdx.x * ({ix})blockDim.x + ({ix})threadIdx.x;")
        self.emit(f"const {ix} fg_threads = ({ix})gridDim.x * ({ix})blockDim.x;")

    def segments(self, body: tuple) -> None:
        """Independent ranges side by side in one index space: thread ``g`` runs iteration
        ``g - offset`` of the range whose segment ``[offset, offset + trip)`` holds ``g``."""
        trips = [self.flat_trip(r) for r in body]
        total = sum(trips)
        self.thread_counters()
        self.open(f"for ({self.ix} fg_seg = fg_tid; fg_seg < {total}{self.sx}; fg_seg += fg_threads)")
        offset, first = 0, True
        for r, n in zip(body, trips):
            if n == 0:
                continue
            self.open(f"{'if' if first else 'else if'} (fg_seg < {offset + n}{self.sx})")
            self.strided(r, f"(fg_seg - {offset}{self.sx})", f"{total}{self.sx}")   # runs once
            self.close()
            offset, first = offset + n, False
        self.close()

    def block_statements(self, body: tuple) -> None:
        for k, s in enumerate(body):
            if isinstance(s, Range) and distributable(s):
                self.strided(s, f"({self.ix})threadIdx.x", f"({self.ix})blockDim.x")
            elif isinstance(s, DefineLocal):
                self.stmt(s)       # every thread holds a copy; thread 0's is the one used
            else:
                self.open("if (threadIdx.x == 0)")
                self.stmt(s)
                self.close()
            if k + 1 < len(body) and not isinstance(s, DefineLocal):
                self.emit("__syncthreads();")

    def strided(self, r: Range, first: str, stride: str) -> None:
        """The (flattened) range ``r`` as a loop of ``first`` + k * ``stride`` over its iterations."""
        chain = self.flattened(r)
        self.forget_written(r.body)
        if len(chain) == 1:
            start, stop = self.expr(r.start), self.expr(r.stop)
            v = self.ident(r.var.name)
            ix, sx = self.ix, self.sx
            self.open(f"for ({ix} {v} = ({ix}){start} + {first} * {r.step}{sx}; "
                      f"{v} < ({ix}){stop}; {v} += {stride} * {r.step}{sx})")
            self.block(r.body)
            self.close()
            return
        total = int(np.prod([_trip(x) for x in chain], dtype=np.int64))
        ix, sx = self.ix, self.sx
        self.open(f"for ({ix} fg_flat = {first}; fg_flat < {total}{sx}; fg_flat += {stride})")
        rest = "fg_flat"
        for k, x in enumerate(chain):
            inner = int(np.prod([_trip(y) for y in chain[k + 1:]], dtype=np.int64))
            pos = f"({rest} / {inner}{sx})" if k + 1 < len(chain) else rest
            self.emit(f"const {ix} {self.ident(x.var.name)} = {const_int(x.start)}{sx} + "
                      f"{pos} * {x.step}{sx};")
            rest = f"({rest} % {inner}{sx})" if k + 1 < len(chain) else rest
        self.block(chain[-1].body)
        self.close()

    # -- statements
    def block(self, stmts: tuple) -> None:
        for s in stmts:
            self.stmt(s)

    def stmt(self, s) -> None:
        getattr(self, "stmt_" + type(s).__name__)(s)

    def stmt_Range(self, s: Range) -> None:
        start, stop = self.expr(s.start), self.expr(s.stop)
        self.forget_written(s.body)
        if s.unroll == FULL and _trip(s) is not None:
            self.emit("#pragma unroll")
        elif s.unroll > 1:
            self.emit(f"#pragma unroll {s.unroll}")
        v = self.ident(s.var.name)
        self.open(f"for ({self.ix} {v} = {start}; {v} < {stop}; {v} += {s.step})")
        self.block(s.body)
        self.close()

    def stmt_Store(self, s: Store) -> None:
        value = self.expr(s.value)
        p = self.ident(s.param)
        if s.mask is None:
            self.emit(f"{p}[{self.expr(s.index)}] = {value};")
        else:
            self.open(f"if ({self.expr(s.mask)})")
            self.emit(f"{p}[{self.expr(s.index)}] = {value};")
            self.close()
        self.forget({s.param})

    def stmt_DefineLocal(self, s: DefineLocal) -> None:
        loc = s.local
        name = self.ident(loc.name)
        self.dtypes[loc.name] = loc.dtype
        self.emit(f"{self.types[loc.dtype]} {name}[{loc.size}];")
        if s.init is not None:
            init = self.expr(s.init)
            if loc.size == 1:
                self.emit(f"{name}[0] = {init};")
            else:
                self.emit(f"for (int fg_k = 0; fg_k < {loc.size}; ++fg_k) {name}[fg_k] = {init};")
        self.forget({loc.name})

    def stmt_LocalStore(self, s: LocalStore) -> None:
        value, index = self.expr(s.value), self.expr(s.index)
        self.emit(f"{self.ident(s.local)}[{index}] = {value};")
        self.forget({s.local})

    def stmt_Accumulate(self, s: Accumulate) -> None:
        value, index = self.expr(s.value), self.expr(s.index)
        slot = f"{self.ident(s.local)}[{index}]"
        dtype = self.dtypes[s.local]
        self.emit(f"{slot} = {op_text(s.op, [slot, value], dtype, dtype)};")
        self.forget({s.local})

    def stmt_If(self, s: If) -> None:
        cond = self.expr(s.cond)
        self.forget_written(s.then + s.else_)
        self.open(f"if ({cond})")
        self.block(s.then)
        self.close()
        if s.else_:
            self.open("else")
            self.block(s.else_)
            self.close()

    # -- forgetting what a store changed
    def forget(self, names: set[str]) -> None:
        for scope in self.scopes:
            for e in [e for e in scope if e.reads & names]:
                del scope[e]

    def forget_written(self, stmts: tuple) -> None:
        written = {s.param for s in walk_stmts(stmts) if isinstance(s, Store)}
        self.forget(written | _locals_used(stmts))

    # -- expressions
    def lookup(self, e: Expr) -> str | None:
        for scope in reversed(self.scopes):
            if e in scope:
                return scope[e]
        return None

    def expr(self, e: Expr) -> str:
        """A C expression for ``e``: a literal, a loop variable or a temporary."""
        if isinstance(e, Const):
            return const_text(e.value, int32 if self.types[e.dtype] == "int" else e.dtype)
        if isinstance(e, Var):
            return self.ident(e.name)
        found = self.lookup(e)
        if found is not None:
            return found
        name = f"fg_t{self.counter}"
        self.counter += 1
        ctype = self.types[e.dtype]
        if isinstance(e, Load) and e.mask is not None and _loads_in(e.index):
            # the index reads memory: evaluate it only where the mask holds
            mask = self.expr(e.mask)
            self.emit(f"{ctype} {name} = {const_text(0, e.dtype)};")
            self.open(f"if ({mask})")
            self.emit(f"{name} = {self.ident(e.param)}[{self.expr(e.index)}];")
            self.close()
        else:
            self.emit(f"const {ctype} {name} = {self.value_text(e)};")
        self.scopes[-1][e] = name
        return name

    def value_text(self, e: Expr) -> str:
        if isinstance(e, Load):
            read = f"{self.ident(e.param)}[{self.expr(e.index)}]"
            if e.mask is None:
                return read
            return f"({self.expr(e.mask)} ? {read} : {const_text(0, e.dtype)})"
        if isinstance(e, LocalLoad):
            return f"{self.ident(e.local)}[{self.expr(e.index)}]"
        args = [self.expr(a) for a in e.args]
        if e.op in ("cast", "bitcast"):
            return op_text(e.op, args, e.args[0].dtype, e.dtype, self.types)
        if e.op in _PLAIN_DIVISION and self.ranges.plain_division(e):
            return f"({args[0]} {_PLAIN_DIVISION[e.op]} {args[1]})"   # num >= 0, den > 0: C's / and %
        arg_dtype = e.args[1].dtype if e.op == "select" else e.args[0].dtype
        return op_text(e.op, args, arg_dtype, e.dtype, self.types)


def _loads_in(e: Expr) -> bool:
    return any(isinstance(n, (Load, LocalLoad)) for n in walk_expr(e))


# --- scalar ops ----------------------------------------------------------------------------------

_FLOAT_FN = {"exp": "exp", "log": "log", "log1p": "log1p", "expm1": "expm1", "tanh": "tanh",
             "sin": "sin", "cos": "cos", "sqrt": "sqrt", "floor": "floor", "ceil": "ceil",
             "round": "round", "round_even": "rint", "abs": "fabs", "pow": "pow", "rem": "fmod",
             "fma": "fma"}
_INFIX = {"and": "&", "or": "|", "xor": "^", "eq": "==", "ne": "!=", "lt": "<", "le": "<=",
          "gt": ">", "ge": ">="}
_PLAIN_DIVISION = {"floordiv": "/", "div": "/", "mod": "%", "rem": "%"}
_HELPER = {"div": "fg_div", "rem": "fg_rem", "floordiv": "fg_floordiv", "mod": "fg_mod",
           "pow": "fg_pow", "max": "fg_max", "min": "fg_min", "shl": "fg_shl", "shr": "fg_shr",
           "abs": "fg_abs", "sign": "fg_sign", "add": "fg_add", "sub": "fg_sub", "mul": "fg_mul",
           "neg": "fg_neg", "fma": "fg_fma"}


def op_text(name: str, args: list[str], dtype: np.dtype, out: np.dtype, types: dict = C_TYPES) -> str:
    """C text of scalar op ``name`` on argument texts; ``dtype`` is the operands' dtype
    (the source dtype for ``cast``/``bitcast``) and ``out`` the result's; ``types`` names
    the C type of each dtype (``NARROW_TYPES`` in a kernel with 32-bit indices)."""
    if name == "cast":
        return cast_text(args[0], dtype, out, types)
    if name == "bitcast":
        return bitcast_text(args[0], dtype, out, types)
    if name == "select":
        return f"({args[0]} ? {args[1]} : {args[2]})"
    if name in _INFIX:
        return f"({args[0]} {_INFIX[name]} {args[1]})"
    if name == "not":
        return f"(!{args[0]})" if dtype == bool_ else f"(({types[dtype]})~{args[0]})"
    if is_float(dtype):
        return _float_op_text(name, args, dtype)
    return f"{_HELPER[name]}({', '.join(args)})"


def _float_op_text(name: str, args: list[str], dtype: np.dtype) -> str:
    f = "f" if dtype == float32 else ""
    one = const_text(1.0, dtype)
    if name in ("add", "sub", "mul", "div"):
        sym = {"add": "+", "sub": "-", "mul": "*", "div": "/"}[name]
        return f"({args[0]} {sym} {args[1]})"
    if name == "neg":
        return f"(-{args[0]})"
    if name == "logistic":
        return f"({one} / ({one} + exp{f}(-{args[0]})))"
    if name == "rsqrt":
        return f"({one} / sqrt{f}({args[0]}))"
    if name == "is_finite":
        return f"isfinite({args[0]})"
    if name in _FLOAT_FN:
        return f"{_FLOAT_FN[name]}{f}({', '.join(args)})"
    return f"{_HELPER[name]}({', '.join(args)})"     # sign, max, min, floordiv, mod


def cast_text(x: str, src: np.dtype, dst: np.dtype, types: dict = C_TYPES) -> str:
    """C text converting ``x`` from ``src`` to ``dst`` with the IR's cast semantics."""
    if src == dst:
        return x
    if float16 in (src, dst):     # the IR casts float16 only to and from float32
        return f"fg_h2f({x})" if src == float16 else f"fg_f2h({x})"
    if dst == bool_:
        return f"({x} != 0)"
    if is_float(src) and not is_float(dst):
        return f"fg_float_to<{types[dst]}>({x})"
    return f"(({types[dst]}){x})"


def bitcast_text(x: str, src: np.dtype, dst: np.dtype, types: dict = C_TYPES) -> str:
    """C text reinterpreting the bits of ``x`` (``src``) as ``dst``."""
    if src == dst:
        return x
    intrinsic = {(float32, int32): "__float_as_int", (int32, float32): "__int_as_float",
                 (float32, uint32): "__float_as_uint", (uint32, float32): "__uint_as_float",
                 (float64, int64): "__double_as_longlong", (int64, float64): "__longlong_as_double"}
    if (src, dst) in intrinsic:
        return f"{intrinsic[src, dst]}({x})"
    return f"fg_bitcast<{types[dst]}>({x})"


def const_text(value, dtype: np.dtype) -> str:
    """An exact C literal of ``value`` as ``dtype``."""
    dtype = np.dtype(dtype)
    if dtype == bool_:
        return "true" if value else "false"
    if dtype == float16:
        return f"((fg_half)0x{int(np.float16(value).view(np.uint16)):04x})"
    if is_float(dtype):
        v = dtype.type(value)
        if np.isnan(v):
            return "__int_as_float(0x7fffffff)" if dtype == float32 else \
                "__longlong_as_double(0x7ff8000000000000LL)"
        if np.isinf(v):
            inf = "__int_as_float(0x7f800000)" if dtype == float32 else \
                "__longlong_as_double(0x7ff0000000000000LL)"
            return inf if v > 0 else f"(-{inf})"
        text = repr(float(v)) if dtype == float64 else str(v)
        if "." not in text and "e" not in text:
            text += ".0"
        text += "f" if dtype == float32 else ""
        return f"({text})" if text.startswith("-") else text
    v = int(value)
    if dtype == int64:
        return "(-9223372036854775807LL - 1)" if v == -(1 << 63) else (
            f"({v}LL)" if v < 0 else f"{v}LL")
    if dtype == int32:
        return "(-2147483647 - 1)" if v == -(1 << 31) else (f"({v})" if v < 0 else str(v))
    if dtype == uint32:
        return f"{v}u"
    return f"((unsigned char){v})"


C_RESERVED = frozenset("""
alignas alignof and and_eq asm auto bitand bitor bool break case catch char char16_t char32_t
class compl const constexpr const_cast continue decltype default delete do double dynamic_cast
else enum explicit export extern false float for friend goto if inline int long mutable namespace
new noexcept not not_eq nullptr operator or or_eq private protected public register
reinterpret_cast return short signed sizeof static static_assert static_cast struct switch
template this thread_local throw true try typedef typeid typename union unsigned using virtual
void volatile wchar_t while xor xor_eq threadIdx blockIdx blockDim gridDim warpSize main
""".split())


PRELUDE = r"""// generated by fgrad.lower.cuda: the kernel IR's scalar semantics, then the kernels
#define FG_D __device__ __forceinline__
#pragma nv_diag_suppress 186   // "pointless comparison of unsigned integer with zero" in templates

template <typename T> struct fg_int;
template <> struct fg_int<unsigned char> { typedef unsigned int U; enum { is_signed = 0, bits = 8 }; };
template <> struct fg_int<unsigned int> { typedef unsigned int U; enum { is_signed = 0, bits = 32 }; };
template <> struct fg_int<int> { typedef unsigned int U; enum { is_signed = 1, bits = 32 }; };
template <> struct fg_int<long long> { typedef unsigned long long U; enum { is_signed = 1, bits = 64 }; };

// float16 is stored as its bits and converted to and from float (round to nearest even)
typedef unsigned short fg_half;
FG_D float fg_h2f(fg_half h) {
    unsigned int sign = (unsigned int)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    float mag = e == 0 ? (float)m * 5.9604644775390625e-08f                      // m * 2^-24
        : __uint_as_float(e == 31 ? 0x7f800000u | (m << 13) : ((e + 112u) << 23) | (m << 13));
    return __uint_as_float(__float_as_uint(mag) | sign);
}
FG_D fg_half fg_f2h(float f) {
    unsigned int x = __float_as_uint(f), sign = (x >> 16) & 0x8000u, a = x & 0x7fffffffu;
    if (a > 0x7f800000u) return (fg_half)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));   // NaN
    if (a >= 0x477ff000u) return (fg_half)(sign | 0x7c00u);                  // >= 65520: inf
    if (a < 0x38800000u)                                                      // < 2^-14: subnormal
        return (fg_half)(sign | (unsigned int)rintf(__uint_as_float(a) * 16777216.0f));
    unsigned int r = a - 0x38000000u;
    return (fg_half)(sign | ((r + 0xfffu + ((r >> 13) & 1u)) >> 13));
}

// wrapping integer arithmetic (in unsigned types: signed overflow is undefined in C)
template <typename T> FG_D T fg_add(T a, T b) { typedef typename fg_int<T>::U U; return (T)((U)a + (U)b); }
template <typename T> FG_D T fg_sub(T a, T b) { typedef typename fg_int<T>::U U; return (T)((U)a - (U)b); }
template <typename T> FG_D T fg_mul(T a, T b) { typedef typename fg_int<T>::U U; return (T)((U)a * (U)b); }
template <typename T> FG_D T fg_neg(T a) { typedef typename fg_int<T>::U U; return (T)(0u - (U)a); }
template <typename T> FG_D T fg_fma(T a, T b, T c) { return fg_add(fg_mul(a, b), c); }
template <typename T> FG_D T fg_abs(T a) { return (fg_int<T>::is_signed && a < (T)0) ? fg_neg(a) : a; }
template <typename T> FG_D T fg_sign(T a) { return a > (T)0 ? (T)1 : (a < (T)0 ? (T)-1 : (T)0); }

// x/0 and x%0 are 0; MIN/-1 wraps; div and rem truncate, floordiv and mod floor
template <typename T> FG_D bool fg_minus_one(T b) { return fg_int<T>::is_signed && b == (T)-1; }
template <typename T> FG_D T fg_div(T a, T b) {
    if (b == (T)0) return (T)0;
    if (fg_minus_one(b)) return fg_neg(a);
    return (T)(a / b);
}
template <typename T> FG_D T fg_rem(T a, T b) {
    if (b == (T)0 || fg_minus_one(b)) return (T)0;
    return (T)(a % b);
}
template <typename T> FG_D T fg_floordiv(T a, T b) {
    if (b == (T)0) return (T)0;
    if (fg_minus_one(b)) return fg_neg(a);
    T q = (T)(a / b), r = (T)(a % b);
    return (r != (T)0 && ((r < (T)0) != (b < (T)0))) ? (T)(q - 1) : q;
}
template <typename T> FG_D T fg_mod(T a, T b) {
    if (b == (T)0 || fg_minus_one(b)) return (T)0;
    T r = (T)(a % b);
    return (r != (T)0 && ((r < (T)0) != (b < (T)0))) ? (T)(r + b) : r;
}
template <typename T> FG_D T fg_pow(T a, T b) {
    if (fg_int<T>::is_signed && b < (T)0)
        return a == (T)1 ? (T)1 : (a == (T)-1 ? ((b & (T)1) ? (T)-1 : (T)1) : (T)0);
    T result = (T)1;
    for (T e = b; e != (T)0; e = (T)(e >> 1)) {
        if (e & (T)1) result = fg_mul(result, a);
        a = fg_mul(a, a);
    }
    return result;
}

// shifts by a negative amount or >= the bit width give 0 (shr of a negative: -1)
template <typename T> FG_D T fg_shl(T a, T s) {
    typedef typename fg_int<T>::U U;
    if ((U)s >= (U)fg_int<T>::bits) return (T)0;
    return (T)((U)a << (U)s);
}
template <typename T> FG_D T fg_shr(T a, T s) {
    typedef typename fg_int<T>::U U;
    if ((U)s >= (U)fg_int<T>::bits) return (fg_int<T>::is_signed && a < (T)0) ? (T)-1 : (T)0;
    return (T)(a >> (U)s);
}

// min/max: integers plainly, bools as or/and, floats propagate NaN
template <typename T> FG_D T fg_max(T a, T b) { return a > b ? a : b; }
template <typename T> FG_D T fg_min(T a, T b) { return a < b ? a : b; }
FG_D bool fg_max(bool a, bool b) { return a || b; }
FG_D bool fg_min(bool a, bool b) { return a && b; }
// NaN wins; of 0. and -0., max is 0. and min is -0. (as XLA)
FG_D float fg_max(float a, float b) { return (a > b || a != a) ? a : (a == b && !signbit(a) ? a : b); }
FG_D float fg_min(float a, float b) { return (a < b || a != a) ? a : (a == b && signbit(a) ? a : b); }
FG_D double fg_max(double a, double b) { return (a > b || a != a) ? a : (a == b && !signbit(a) ? a : b); }
FG_D double fg_min(double a, double b) { return (a < b || a != a) ? a : (a == b && signbit(a) ? a : b); }

// float sign: NaN stays NaN, ±0 keeps its sign (as XLA)
FG_D float fg_sign(float a) { return a > 0.0f ? 1.0f : (a < 0.0f ? -1.0f : a); }
FG_D double fg_sign(double a) { return a > 0.0 ? 1.0 : (a < 0.0 ? -1.0 : a); }

// floor division and floor modulo of floats, as NumPy's divmod
template <typename F> FG_D F fg_float_floordiv(F a, F b) {
    if (b == (F)0) return a / b;
    F m = fmod(a, b);
    F d = (a - m) / b;
    if (m != (F)0 && ((b < (F)0) != (m < (F)0))) d = d - (F)1;
    if (d == (F)0) return copysign((F)0, a / b);
    F fl = floor(d);
    return (d - fl > (F)0.5) ? fl + (F)1 : fl;
}
template <typename F> FG_D F fg_float_mod(F a, F b) {
    F m = fmod(a, b);
    if (m != (F)0) return ((b < (F)0) != (m < (F)0)) ? m + b : m;
    return copysign((F)0, b);
}
FG_D float fg_floordiv(float a, float b) { return fg_float_floordiv<float>(a, b); }
FG_D double fg_floordiv(double a, double b) { return fg_float_floordiv<double>(a, b); }
FG_D float fg_mod(float a, float b) { return fg_float_mod<float>(a, b); }
FG_D double fg_mod(double a, double b) { return fg_float_mod<double>(a, b); }

// float -> integer casts truncate and saturate, NaN -> 0
template <typename I> struct fg_limits;
template <> struct fg_limits<unsigned char> { static constexpr double lo = 0.0, hi = 255.0; };
template <> struct fg_limits<unsigned int> { static constexpr double lo = 0.0, hi = 4294967295.0; };
template <> struct fg_limits<int> { static constexpr double lo = -2147483648.0, hi = 2147483647.0; };
template <> struct fg_limits<long long> {
    static constexpr double lo = -9223372036854775808.0, hi = 9223372036854775808.0; };
template <typename I, typename F> FG_D I fg_float_to(F x) {
    double d = (double)x;
    if (d != d) return (I)0;
    if (d <= fg_limits<I>::lo) return fg_int<I>::is_signed ? (I)(((typename fg_int<I>::U)1) << (fg_int<I>::bits - 1)) : (I)0;
    if (d >= fg_limits<I>::hi) return (I)(fg_int<I>::is_signed ? ~(((typename fg_int<I>::U)1) << (fg_int<I>::bits - 1)) : ~(typename fg_int<I>::U)0);
    return (I)d;
}

// bit reinterpretation where no intrinsic exists
template <typename To, typename From> FG_D To fg_bitcast(From x) {
    To y;
    memcpy(&y, &x, sizeof(To));
    return y;
}
"""
