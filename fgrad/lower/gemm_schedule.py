"""The schedule space of the CPU's packed GEMM template, as data: what BEAM searches.

A ``GemmSchedule`` says *how* ``contraction.gemm`` computes one contraction, never *what*:
whether it computes C^T = B^T A^T instead (``transpose``), the unpacked loop or the packed,
register-tiled template (``config`` None or a ``GemmConfig``: register tile mr x nr, k block
kc, row and column blocks mc and nc), into how many k slices the work is split (``splits``)
and whether each tile packs its batch's B itself on the stack (``local_b``; None: the
template's own rule). Every schedule computes the same sums, in another order.

``choose_config`` is today's heuristic; ``neighbours`` the moves a beam search makes from a
schedule; ``valid`` what the template accepts (a choice read back from a disk cache is
checked before it is used). The backend's search (``backends/beam.py``) times candidates and
hands the winners back to the lowering through ``LoweringTarget.schedules``, keyed by each
contraction's ``problem_key`` (``contraction.problem_key``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Mapping

import numpy as np


@dataclass(frozen=True)
class GemmConfig:
    """Tiling: register tile mr x nr (nr a multiple of lanes), k block kc, row/column blocks mc/nc."""

    mr: int
    nr: int
    kc: int
    mc: int
    nc: int
    lanes: int


@dataclass(frozen=True)
class GemmSchedule:
    """One way to compute a contraction (see the module's docstring); ``config`` None is the
    unpacked template, which ignores ``splits`` and ``local_b``."""

    transpose: bool = False
    config: GemmConfig | None = None
    splits: int = 1
    local_b: bool | None = None

    def describe(self) -> str:
        """A short readable form, e.g. ``T mr=14 nr=32 kc=384 mc=56 nc=64 split=2 localB=on``."""
        head = "T " if self.transpose else ""
        if self.config is None:
            return head + "unpacked"
        c = self.config
        text = f"{head}mr={c.mr} nr={c.nr} kc={c.kc} mc={c.mc} nc={c.nc}"
        if self.splits > 1:
            text += f" split={self.splits}"
        if self.local_b is not None:
            text += f" localB={'on' if self.local_b else 'off'}"
        return text

    def to_json(self) -> dict:
        """The schedule as JSON-ready data (``from_json`` reads it back)."""
        c = self.config
        return {"transpose": self.transpose, "splits": self.splits, "local_b": self.local_b,
                "config": None if c is None else [c.mr, c.nr, c.kc, c.mc, c.nc, c.lanes]}

    @staticmethod
    def from_json(data: object) -> "GemmSchedule":
        """The schedule ``to_json`` wrote; a ValueError names what is malformed."""
        if not isinstance(data, dict) or set(data) != {"transpose", "splits", "local_b", "config"}:
            raise ValueError(f"a GEMM schedule is a dict with transpose, splits, local_b and config, got {data!r}")
        cfg, splits, local_b = data["config"], data["splits"], data["local_b"]
        ints = lambda xs: all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in xs)
        if cfg is not None and not (isinstance(cfg, list) and len(cfg) == 6 and ints(cfg)):
            raise ValueError(f"a GEMM schedule's config is None or 6 positive ints, got {cfg!r}")
        if not isinstance(data["transpose"], bool) or not ints([splits]) or local_b not in (None, True, False):
            raise ValueError(f"malformed GEMM schedule {data!r}")
        return GemmSchedule(data["transpose"], None if cfg is None else GemmConfig(*cfg), splits, local_b)


@dataclass(frozen=True)
class GemmProblem:
    """A contraction's sizes as ``contraction.gemm`` states it (before any transpose), and the
    machine figures its schedules depend on."""

    batch: int
    m: int
    n: int
    k: int
    dtype: np.dtype
    vector_bytes: int
    threads: int

    @property
    def lanes(self) -> int:
        return max(self.vector_bytes // np.dtype(self.dtype).itemsize, 1)

    def oriented(self, schedule: GemmSchedule) -> tuple[int, int]:
        """(m, n) of the GEMM the schedule computes (swapped when it transposes)."""
        return (self.n, self.m) if schedule.transpose else (self.m, self.n)

    @property
    def flops(self) -> int:
        return 2 * self.batch * self.m * self.n * self.k

    def describe(self) -> str:
        batch = f"{self.batch}x" if self.batch > 1 else ""
        return f"{batch}{self.m}x{self.n}x{self.k} {np.dtype(self.dtype).name}"


@dataclass(frozen=True)
class TunableGemm:
    """A contraction the lowering met: its ``key`` (``contraction.problem_key``), the name its
    kernels got, its sizes, the schedule the heuristics chose, and ``build(schedule, prefix,
    into)``: its kernels with another schedule, named ``prefix``, writing buffer ``into`` (a
    buffer of the output's dtype and shape) instead of the output, for a standalone timing."""

    key: str
    name: str
    problem: GemmProblem
    default: GemmSchedule
    output: object
    build: Callable


@dataclass(frozen=True)
class GemmTuning:
    """What the lowering does with tunable contractions: use ``choices`` (problem key ->
    schedule) where one applies, and append each ``TunableGemm`` it meets to ``met`` (None:
    record nothing)."""

    choices: Mapping[str, GemmSchedule]
    met: list | None = None


# --- the heuristics ------------------------------------------------------------------------

#: The L1 data cache the register tile's rows of A stream through when the micro-kernel reads A
#: where it lies (``contraction._reads_a_in_place``): 64 sets of 64-byte lines, 8 ways (AMD Zen,
#: Intel since Sandy Bridge). Rows whose stride is a multiple of 4 KiB all fall in one set, and
#: more rows than ways evict each other at every k step: 1024^3 float32 on Zen 4 ran at 80
#: GFLOP/s with 14 rows and 107 with 8 (1 thread; 157 and 206 with 2; OpenBLAS 100 and 200).
L1_SETS, L1_LINE_BYTES, L1_WAYS = 64, 64, 8


def rows_per_l1_set(rows: int, row_bytes: int) -> int:
    """The most of ``rows`` streams, ``row_bytes`` apart, that share one L1 set."""
    sets: dict[int, int] = {}
    for r in range(rows):
        s = (r * row_bytes // L1_LINE_BYTES) % L1_SETS
        sets[s] = sets.get(s, 0) + 1
    return max(sets.values())


def register_rows(m: int, vector_bytes: int, a_row_bytes: int | None = None) -> int:
    """Rows of the register tile: the candidate wasting least on padding past row m
    (2 vectors of columns per row; 512-bit SIMD has 32 registers, narrower 16). With
    ``a_row_bytes`` (A read in place, its rows that far apart), only tiles whose rows do not
    overfill an L1 set (``rows_per_l1_set``)."""
    candidates = (14, 12, 8) if vector_bytes >= 64 else (6, 4)
    if a_row_bytes is not None:
        candidates = tuple(mr for mr in candidates if rows_per_l1_set(mr, a_row_bytes) <= L1_WAYS) or candidates[-1:]
    waste = lambda mr: math.ceil(m / mr) * mr / m
    best = min(waste(mr) for mr in candidates)
    return next(mr for mr in candidates if waste(mr) <= best * 1.02)


#: rows of the one-vector register tile: 8 never overfill an L1 set (``rows_per_l1_set``) and
#: measured best among 8, 16 and 28 on skinny products (benchmarks/README, seventeenth session)
ONE_VECTOR_ROWS = 8


def _one_vector_columns(n: int, lanes: int, vector_bytes: int) -> bool:
    """Whether a skinny product (fewer than 8 vectors of columns) takes an 8 x 1-vector register
    tile: on 512-bit SIMD, when two-vector panels pad n at least 10% more than one-vector ones
    (the lm head's n = 65: 96 columns against 80; 74 -> 89 GFLOP/s on Zen 4). Narrower SIMD
    has half the registers, where one-vector tiles leave too few accumulators."""
    if vector_bytes < 64 or n >= 8 * lanes:
        return False
    padded = lambda width: math.ceil(n / width) * width
    return padded(2 * lanes) >= 1.1 * padded(lanes)


def choose_config(dtype: np.dtype, m: int, n: int, k: int, batch: int = 1, vector_bytes: int = 64,
                   threads: int = 2, a_row_bytes: int | None = None) -> GemmConfig:
    """Tiling for a problem size: registers hold mr x nr accumulators (2 vectors wide, or 8 rows
    of one vector for skinny n: ``_one_vector_columns``).
    ``a_row_bytes``: how far apart A's rows lie when the micro-kernel reads A in place."""
    lanes = max(vector_bytes // np.dtype(dtype).itemsize, 1)
    mr = register_rows(m, vector_bytes, a_row_bytes)
    nr = 2 * lanes
    if _one_vector_columns(n, lanes, vector_bytes):
        mr, nr = ONE_VECTOR_ROWS, lanes
    blocks = max(1, math.ceil(k / 384))
    kc = math.ceil(k / blocks)
    panels_m = math.ceil(m / mr)
    # Row blocks of at most ~384 rows (A's block stays in L2); with few batches, a multiple
    # of the thread count of them, so the tiles split evenly over the threads.
    blocks = math.ceil(panels_m / max(1, 384 // mr))
    if batch < threads:
        blocks = math.ceil(blocks / threads) * threads
    blocks = min(blocks, panels_m)
    mc_panels = math.ceil(panels_m / blocks)
    nc_panels = max(1, math.ceil(n / nr))
    if batch * math.ceil(panels_m / mc_panels) < threads:
        nc_panels = max(1, math.ceil(nc_panels / threads))
    return GemmConfig(mr, nr, kc, mc_panels * mr, nc_panels * nr, lanes)


# --- validity and the search's moves ----------------------------------------------------------

#: register tiles (rows, vectors of columns) that fit the SIMD register file with the B vectors
#: and A's broadcast: 32 registers with 512-bit SIMD, 16 narrower
REGISTER_TILES = {
    32: ((8, 1), (16, 1), (28, 1), (4, 2), (6, 2), (8, 2), (12, 2), (14, 2), (4, 3), (6, 3), (8, 3), (9, 3),
         (4, 4), (6, 4), (4, 6)),
    16: ((4, 1), (8, 1), (14, 1), (2, 2), (3, 2), (4, 2), (6, 2), (2, 3), (3, 3), (4, 3), (2, 4)),
}

#: the unpacked template is tried only below this many multiply-adds (above, it is far slower)
UNPACKED_MAX_MACS = 1 << 24
#: the smallest k block and k slice the moves make
MIN_K_BLOCK = 16


def _register_file(vector_bytes: int) -> int:
    return 32 if vector_bytes >= 64 else 16


def valid(problem: GemmProblem, schedule: GemmSchedule) -> bool:
    """Whether the template can compute ``problem`` with ``schedule`` (its tiles fit the SIMD
    width, its blocks are whole tiles, its split leaves k in every slice)."""
    if not isinstance(schedule, GemmSchedule) or schedule.splits < 1 or schedule.splits > max(problem.k, 1):
        return False
    c = schedule.config
    if c is None:
        return True
    return (c.lanes == problem.lanes and c.mr >= 1 and c.nr >= c.lanes and c.nr % c.lanes == 0
            and c.kc >= 1 and c.mc >= c.mr and c.mc % c.mr == 0 and c.nc >= c.nr and c.nc % c.nr == 0)


def canonical(problem: GemmProblem, schedule: GemmSchedule) -> GemmSchedule:
    """The same schedule with blocks no larger than the problem (larger ones compute alike)."""
    c = schedule.config
    if c is None:
        return GemmSchedule(schedule.transpose)
    m, n = problem.oriented(schedule)
    k = math.ceil(problem.k / schedule.splits)
    cfg = replace(c, kc=min(c.kc, max(k, 1)), mc=min(c.mc, math.ceil(m / c.mr) * c.mr),
                  nc=min(c.nc, math.ceil(n / c.nr) * c.nr))
    return replace(schedule, config=cfg)


def neighbours(problem: GemmProblem, schedule: GemmSchedule) -> list[GemmSchedule]:
    """The schedules one move away: the other orientation, the unpacked/packed template, the
    neighbouring register tiles, half or twice the k block, row block, column block and k
    split, and the other B packings. Each valid and canonical; duplicates removed."""
    moves = [_flipped(problem, schedule), _other_template(problem, schedule)]
    if schedule.config is not None:
        moves += _register_moves(problem, schedule) + _block_moves(problem, schedule)
        moves += [replace(schedule, local_b=v) for v in (None, True, False) if v != schedule.local_b]
    found = {}
    for move in moves:
        if move is not None and valid(problem, move):
            move = canonical(problem, move)
            if move != schedule:
                found.setdefault(move, None)
    return list(found)


def _default_packed(problem: GemmProblem, transpose: bool) -> GemmSchedule:
    m, n = (problem.n, problem.m) if transpose else (problem.m, problem.n)
    cfg = choose_config(problem.dtype, m, n, problem.k, problem.batch, problem.vector_bytes, problem.threads)
    return GemmSchedule(transpose, cfg)


def _flipped(problem: GemmProblem, schedule: GemmSchedule) -> GemmSchedule:
    if schedule.config is None:
        return GemmSchedule(not schedule.transpose)
    return _default_packed(problem, not schedule.transpose)


def _other_template(problem: GemmProblem, schedule: GemmSchedule) -> GemmSchedule | None:
    if schedule.config is None:
        return _default_packed(problem, schedule.transpose)
    if problem.batch * problem.m * problem.n * problem.k <= UNPACKED_MAX_MACS:
        return GemmSchedule(schedule.transpose)
    return None


def _register_moves(problem: GemmProblem, schedule: GemmSchedule) -> list[GemmSchedule]:
    """The next smaller and larger tile with as many vectors, and the largest tile one vector
    narrower and one wider; blocks keep about their sizes (rounded to whole tiles)."""
    c = schedule.config
    tiles = REGISTER_TILES[_register_file(problem.vector_bytes)]
    vectors = c.nr // c.lanes
    same = sorted(r for r, v in tiles if v == vectors)
    picks = [r for r in same if r != c.mr]
    lower = [r for r in picks if r < c.mr]
    higher = [r for r in picks if r > c.mr]
    shapes = [(r, vectors) for r in (lower[-1:] + higher[:1])]
    for v in (vectors - 1, vectors + 1):
        rows = [r for r, vv in tiles if vv == v]
        if rows:
            shapes.append((max(rows), v))
    moves = []
    for mr, v in shapes:
        nr = v * c.lanes
        cfg = replace(c, mr=mr, nr=nr, mc=math.ceil(c.mc / mr) * mr, nc=math.ceil(c.nc / nr) * nr)
        moves.append(replace(schedule, config=cfg))
    return moves


def _block_moves(problem: GemmProblem, schedule: GemmSchedule) -> list[GemmSchedule]:
    c = schedule.config
    m, n = problem.oriented(schedule)
    k = math.ceil(problem.k / schedule.splits)
    moves = []
    blocks = math.ceil(k / c.kc)
    for b in (blocks * 2, max(1, blocks // 2), 1):
        kc = math.ceil(k / b)
        if kc >= MIN_K_BLOCK or b == 1:
            moves.append(replace(c, kc=kc))
    mcp, pm = c.mc // c.mr, math.ceil(m / c.mr)
    ncp, pn = c.nc // c.nr, math.ceil(n / c.nr)
    moves += [replace(c, mc=p * c.mr) for p in (min(2 * mcp, pm), max(1, mcp // 2))]
    moves += [replace(c, nc=p * c.nr) for p in (min(2 * ncp, pn), max(1, ncp // 2))]
    found = [replace(schedule, config=cfg) for cfg in moves]
    if problem.k // (2 * schedule.splits) >= MIN_K_BLOCK:
        found.append(replace(schedule, splits=2 * schedule.splits))
    if schedule.splits > 1:
        found.append(replace(schedule, splits=schedule.splits // 2))
    return found
