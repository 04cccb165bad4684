"""Render kernel IR programs to CUDA C, plus a host-side launch plan.

``render_program(program) -> (source, plan)``: one translation unit per program
with one ``extern "C" __global__`` function per kernel, and a ``LaunchPlan``
(plain Python data) that a runtime executes: which kernel to launch on which
buffers with what grid and block, inside the program's loops and branches.

Kernels
-------
Each kernel param becomes a ``T* __restrict__`` pointer (``const`` when the kernel
only reads it; the scheduler never passes one buffer to two params of which one is
written). A kernel runs in one of five modes, chosen from its top-level statements
(by ``gpu_modes.kernel_mode``, part of the GPU lowering; ``render_kernel`` takes the choice):

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

Modules
-------
This module writes the kernels' text and is the renderer's public face. The kernel
mode and launch size come from the GPU lowering's ``gpu_modes`` (``kernel_mode``,
which also matches the GEMM pattern), the C text of each scalar op and the
``PRELUDE`` from ``cuda_scalar``, the GEMM templates from ``cuda_contraction``, and
the plan's data types from ``cuda_launch``.
"""
from __future__ import annotations

import numpy as np

from fgrad.lower.cuda_contraction import TILE, simt_tile_loop, tf32_tile_loop
from fgrad.lower.cuda_launch import (  # noqa: F401  (the plan's types: re-exported)
    Branch, BufferSlot, Launch, LaunchPlan, PlanStep, Repeat, WhileLoop, buffer_slots, plan_steps,
)
from fgrad.lower.cuda_scalar import (  # noqa: F401  (the scalar-op text: re-exported)
    C_RESERVED, C_TYPES, NARROW_TYPES, PLAIN_DIVISION, PRELUDE, bitcast_text, cast_text, const_text,
    op_text,
)
from fgrad.lower.gpu_modes import (  # noqa: F401  (the GPU lowering's mode choice: re-exported)
    BLOCK_SIZE, DEFAULT_GRID, GEMM_MIN_BLOCKS, GEMM_MIN_SIZE, MAX_BLOCK, MAX_GRID, MAX_THREADS,
    GemmPattern, KernelMode, const_trip, distributable, flat_trip, flattened, gemm_pattern, gemm_tiles,
    gemm_worthwhile, independent_ranges, kernel_mode, locals_used, thread_iterations,
)
from fgrad.lower.intervals import INT32_MAX, IndexRanges
from fgrad.lower.kernel import (
    FULL, Accumulate, Const, DefineLocal, Expr, If, Kernel, Load, LocalLoad, LocalStore, Program,
    Range, Store, Var, const_int, int32, int64, kernels_of, plan_memory, walk_expr, walk_stmts,
)


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
    slots, index_of = buffer_slots(program)
    steps = plan_steps(program.body, names, launch_sizes, index_of)
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


def render_kernel(kernel: Kernel, name: str | None = None,
                  mode: KernelMode | None = None) -> tuple[str, str, int, int]:
    """(CUDA C text, mode, grid, block) of one kernel; ``name`` is its C name (default its own),
    ``mode`` how it runs (default: the GPU lowering's choice, ``gpu_modes.kernel_mode``)."""
    return _KernelRenderer(kernel, name or kernel.name).render(mode or kernel_mode(kernel))


#: the identifiers of the GEMM templates (``cuda_contraction``), renamed in IR code beside them
GEMM_TEMPLATE_NAMES = frozenset("""T M N K bz m0 n0 As Bs Cs acc tx ty e mm kk nn gm gk gn v i j ra rb
warp wr wc fa fb wmma nvcuda""".split())


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
    def render(self, chosen: KernelMode) -> tuple[str, str, int, int]:
        body = self.kernel.body
        mode, grid, block, gemm = chosen.mode, chosen.grid, chosen.block, chosen.gemm
        if gemm is not None:            # IR names must not shadow the template's
            self.reserved = C_RESERVED | GEMM_TEMPLATE_NAMES
        flat = sum(flat_trip(r) or 0 for r in body if isinstance(r, Range))
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


    def grid_range(self, r: Range) -> None:
        self.thread_counters()
        self.strided(r, "fg_tid", "fg_threads")

    def gemm(self, g: "GemmPattern") -> None:
        """The tiled shared-memory GEMM template (``cuda_contraction.simt_tile_loop``) with the
        pattern's operand reads and output store rendered from the IR as its snippets."""
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
        trips = [flat_trip(r) for r in body]
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
        chain = flattened(r)
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
        total = int(np.prod([const_trip(x) for x in chain], dtype=np.int64))
        ix, sx = self.ix, self.sx
        self.open(f"for ({ix} fg_flat = {first}; fg_flat < {total}{sx}; fg_flat += {stride})")
        rest = "fg_flat"
        for k, x in enumerate(chain):
            inner = int(np.prod([const_trip(y) for y in chain[k + 1:]], dtype=np.int64))
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
        if s.unroll == FULL and const_trip(s) is not None:
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
        self.forget(written | locals_used(stmts))

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
        if e.op in PLAIN_DIVISION and self.ranges.plain_division(e):
            return f"({args[0]} {PLAIN_DIVISION[e.op]} {args[1]})"   # num >= 0, den > 0: C's / and %
        arg_dtype = e.args[1].dtype if e.op == "select" else e.args[0].dtype
        return op_text(e.op, args, arg_dtype, e.dtype, self.types)


def _loads_in(e: Expr) -> bool:
    return any(isinstance(n, (Load, LocalLoad)) for n in walk_expr(e))
