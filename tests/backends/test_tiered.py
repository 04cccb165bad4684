"""Tiered compilation on the CPU: heavy kernels run a quick first build ("tiled-first" for
register-tiled kernels, "quick" for the others) and their final builds, compiled in the
background, are swapped into the programs' kernel tables. Results never change."""
from __future__ import annotations

import numpy as np
import pytest

from fgrad.backends import background, cpu, tiers
from fgrad.config import config
from fgrad.lower import contraction as C
from fgrad.lower import kernel as K
from fgrad.lower.llvm_loops import unrolled_size

f32 = K.float32


def matmul_program(n: int, name: str) -> K.Program:
    """c = a @ b (a register-tiled GEMM: "tiled", so tiered) then d = tanh-free c * 2 + 1."""
    a, b, c = K.Buffer("a", f32, (n, n)), K.Buffer("b", f32, (n, n)), K.Buffer("c", f32, (n, n))
    con = C.dot_general(name, a, b, c, (((1,), (0,)), ((), ())))
    return K.Program(name, (a, b), (c,), con.steps)


class ManualCompiler(background.BackgroundCompiler):
    """Holds submitted jobs until ``run()``: the swap happens exactly when a test says."""

    def __init__(self):
        super().__init__()
        self.jobs = []
        self.after = None

    def submit(self, name, text, target, pipeline, done, after=None):
        self.jobs.append((name, text, target, pipeline, done))
        self.after = after

    def run(self):
        jobs, self.jobs = self.jobs, []
        for name, text, target, pipeline, done in jobs:
            done(self._compile(name, text, target, pipeline))

    def wait(self, timeout=None):
        self.run()
        return True


@pytest.fixture
def tiering(tmp_path, monkeypatch):
    monkeypatch.setenv("FGRAD_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("FGRAD_TIERED", "1")
    monkeypatch.setenv("FGRAD_COMPILE_WORKERS", "1")
    manual = ManualCompiler()
    monkeypatch.setattr(background, "compiler", manual)
    cpu.clear_memory_cache()
    yield manual
    cpu.clear_memory_cache()


def _inputs(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n)).astype(np.float32), rng.standard_normal((n, n)).astype(np.float32)


def _untiered(program, monkeypatch, *inputs):
    monkeypatch.setenv("FGRAD_TIERED", "0")
    try:
        return cpu.compile_program(program)(*inputs)
    finally:
        monkeypatch.setenv("FGRAD_TIERED", "1")


@pytest.mark.parametrize("first_pipeline", ["tiled-first", "quick"])
def test_quick_build_first_final_build_swapped_in_results_identical(tiering, monkeypatch, tmp_path, first_pipeline):
    only = tuple(c for c in tiers.FIRST_BUILDS["tiled"] if c[0] == first_pipeline)
    monkeypatch.setitem(tiers.FIRST_BUILDS, "tiled", only)
    n = 96
    program = matmul_program(n, "mm")
    a, b = _inputs(n)
    before = dict(cpu.kernel_sources)
    pipelines = {}
    compile_modules = cpu.llvm_pool.compile_modules

    def spy(jobs, target):
        jobs = list(jobs)
        pipelines.update((name, pipeline) for name, _, pipeline in jobs)
        return compile_modules(iter(jobs), target)
    monkeypatch.setattr(cpu.llvm_pool, "compile_modules", spy)
    exe = cpu.compile_program(program)
    quick = cpu.kernel_sources["quick first"] - before.get("quick first", 0)
    assert quick >= 1 and len(tiering.jobs) == quick, "the GEMM kernel is compiled quick first"
    gemm = next(sym for sym, *_ in tiering.jobs)
    assert pipelines[gemm] == first_pipeline and tiering.jobs[0][3] == "tiled"   # first build, then final
    code = exe._code
    slot = code.slots.index(gemm)
    quick_address = code.table[slot]
    first = exe(a, b)[0]
    assert not (tmp_path / "llvm" / f"{gemm}.o").exists(), "a quick build is never cached on disk"
    tiering.run()
    assert code.table[slot] != quick_address and code.table[slot] == cpu._kernel_addresses[gemm]
    assert (tmp_path / "llvm" / f"{gemm}.o").exists(), "the final build is cached on disk"
    final = exe(a, b)[0]
    np.testing.assert_array_equal(first, final)
    np.testing.assert_array_equal(final, _untiered(matmul_program(n, "mm_plain"), monkeypatch, a, b)[0])
    np.testing.assert_allclose(final, a @ b, rtol=1e-4, atol=1e-4)


def test_final_builds_are_swapped_in_with_the_disk_cache_off(tiering, monkeypatch):
    """FGRAD_CACHE_DIR=off: nothing is written, and the final build still replaces the quick
    one (it once failed writing to the missing cache, leaving the quick build for good)."""
    monkeypatch.setenv("FGRAD_CACHE_DIR", "off")
    n = 64
    a, b = _inputs(n, 2)
    exe = cpu.compile_program(matmul_program(n, "mm_off"))
    gemm = next(sym for sym, *_ in tiering.jobs)
    slot = exe._code.slots.index(gemm)
    first, quick_address = exe(a, b)[0], exe._code.table[slot]
    swapped = cpu.kernel_sources["final builds"]
    tiering.run()
    assert cpu.kernel_sources["final builds"] > swapped
    assert exe._code.table[slot] != quick_address and exe._code.table[slot] == cpu._kernel_addresses[gemm]
    np.testing.assert_array_equal(exe(a, b)[0], first)


def test_a_program_compiled_while_the_final_build_is_pending_is_swapped_too(tiering):
    n = 64
    a, b = _inputs(n, 1)
    first = cpu.compile_program(matmul_program(n, "mm"))
    second = cpu.compile_program(matmul_program(n, "mm2"))   # the same kernels: shared
    gemm = next(sym for sym, *_ in tiering.jobs)
    assert len([j for j in tiering.jobs if j[0] == gemm]) == 1, "one background build per kernel"
    tiering.run()
    for exe in (first, second):
        assert exe._code.table[exe._code.slots.index(gemm)] == cpu._kernel_addresses[gemm]
    np.testing.assert_array_equal(first(a, b)[0], second(a, b)[0])


def test_later_programs_and_warm_starts_use_the_final_build(tiering):
    n = 64
    cpu.compile_program(matmul_program(n, "mm"))
    tiering.run()
    cpu.clear_memory_cache()
    before = dict(cpu.kernel_sources)
    cpu.compile_program(matmul_program(n, "mm"))
    assert cpu.kernel_sources["quick first"] == before.get("quick first", 0), "final builds load from disk"
    assert not tiering.jobs


def test_what_is_not_tiered(tiering, monkeypatch):
    n = 64
    no_saving = {final: tuple(c._replace(saves_s=0.0, saves_per_node_s=0.0) for c in candidates)
                 for final, candidates in tiers.FIRST_BUILDS.items()}
    monkeypatch.setattr(tiers, "FIRST_BUILDS", no_saving)                # as if no compile time were saved
    before = cpu.kernel_sources["quick first"]
    cpu.compile_program(matmul_program(n, "mm"))
    assert cpu.kernel_sources["quick first"] == before and not tiering.jobs
    for env, value in (("FGRAD_TIERED", "0"), ("FGRAD_LLVM_KERNEL_PIPELINE", "O3")):
        with monkeypatch.context() as m:
            m.setenv(env, value)
            assert not cpu.tiered(), env
    with monkeypatch.context() as m:
        m.setattr(config, "debug", 2)                        # per-kernel timing: of the code that stays
        assert not cpu.tiered()
    monkeypatch.setenv("FGRAD_TIERED", "maybe")
    with pytest.raises(ValueError, match="FGRAD_TIERED must be 1 .on. or 0 .off., got 'maybe'"):
        cpu.tiered()


def first_build(kernel, **kw):
    return tiers.first_build(kernel, cpu.kernel_pipeline(kernel), **kw)


def test_the_cost_model_tiers_cheap_kernels_and_not_long_running_ones():
    n = 64
    program = matmul_program(n, "mm")
    gemm = next(k for k in K.kernels_of(program) if k.name.endswith("_gemm"))
    assert cpu.kernel_pipeline(gemm) == "tiled" and gemm.flops == 2 * n ** 3
    first = tiers.FIRST_BUILDS["tiled"][0]
    saves = first.saves_s + first.saves_per_node_s * unrolled_size(gemm.body)
    per_flop = first.slower_per_flop_s
    assert first_build(gemm, calls=1, threads=1) == "quick"   # 0.5 MFLOP: even a quick build's calls cost ~40 us
    big = int(saves / per_flop / gemm.flops) + 1
    assert first_build(gemm, calls=big // 10, threads=1) == "tiled-first"   # more calls: the nearly final build
    assert first_build(gemm, calls=big, threads=1) is None       # called so often that any first build costs more
    assert first_build(gemm, calls=big, threads=2) is not None   # ... unless two threads share the work
    assert first_build(gemm, calls=big, threads=2, compilers=2) is None  # ... but not when two processes share the saving
    pack = next((k for k in K.kernels_of(matmul_program(200, "big")) if "pack" in k.name), None)
    for kernel in (pack, gemm):
        if kernel is not None and not kernel.flops:     # no FLOP count: estimated ops instead
            assert first_build(kernel, calls=1, threads=1) in ("quick", "tiled-first")


def test_kernels_in_a_loop_count_once_per_iteration(tiering, monkeypatch):
    """A scanned layer's kernels run once per layer: the cost model weighs a call site in a Loop
    by its trip count (the 12-layer scanned GPT step's first call ran its GEMMs as quick builds,
    12 times each: 0.95 s of running for a 0.2 s step), a While's by a guess of one, a Switch's
    branches once each."""
    n = 48
    single = matmul_program(n, "mm")
    steps, (a, b), (c,) = single.body, single.inputs, single.outputs
    flag = K.Buffer("flag", K.bool_, (1,))
    body = (K.Loop(12, steps), K.Loop(3, (K.Loop(5, steps),)), K.Switch(flag, (steps, steps)))
    counts = {}
    for call, times in K.calls_per_run(body):
        counts[call.kernel.name] = counts.get(call.kernel.name, 0) + times
    assert counts and all(v == 12 + 15 + 2 for v in counts.values())
    seen = {}
    real = tiers.first_build

    def spy(kernel, final_pipeline, calls, threads, compilers=1):
        seen[kernel.name] = calls
        return real(kernel, final_pipeline, calls, threads, compilers)
    monkeypatch.setattr(tiers, "first_build", spy)
    program = K.Program("looped", (a, b), (c,), (K.Loop(12, steps),))
    x, y = _inputs(n)
    (got,) = cpu.compile_program(program)(x, y)
    np.testing.assert_allclose(got, x.astype(np.float64) @ y, rtol=1e-4, atol=1e-4)
    assert seen and all(calls == 12 for calls in seen.values())


def test_the_background_compiler_compiles_in_order_and_survives_bad_modules(capsys):
    compiler = background.BackgroundCompiler()
    target = cpu.host_target()
    got = []
    good = "define void @f() {\n  ret void\n}\n"
    compiler.submit("bad", "this is not LLVM IR", target, "quick", got.append)
    compiler.submit("good", good, target, "quick", got.append)
    assert compiler.wait(60)
    assert len(got) == 1 and isinstance(got[0], bytes) and compiler.pending == 0
    assert "background compile of bad failed, its quick build stays" in capsys.readouterr().err


def test_closing_finishes_queued_jobs_then_refuses_new_ones():
    compiler = background.BackgroundCompiler()
    target = cpu.host_target()
    got = []
    good = "define void @f() {\n  ret void\n}\n"
    compiler.submit("queued", good, target, "quick", got.append)
    compiler.close(timeout=0)                         # as at exit with no time left: the rest is dropped
    compiler.submit("late", good, target, "quick", got.append)
    assert compiler.wait(60) and compiler.pending == 0 and len(got) <= 1
    other = background.BackgroundCompiler()
    other.submit("queued", good, target, "quick", got.append)
    other.close()                                     # with time: the queued build is finished first
    assert len(got) >= 1 and other.pending == 0


def test_final_builds_wait_for_the_programs_first_call(tiering):
    """The background builds start once the program has run once (so they do not compete with
    its first call for the cores), or after AFTER_WAIT_S if it is never called, or at exit."""
    import threading
    import time
    n = 96
    exe = cpu.compile_program(matmul_program(n, "gate"))
    gate = tiering.after
    assert gate is not None and not gate.is_set()
    exe(*_inputs(n))
    assert gate.is_set()
    compiler = background.BackgroundCompiler()
    never = threading.Event()
    compiler._exiting = True
    start = time.perf_counter()
    compiler._wait_for(never)
    assert never.is_set() and time.perf_counter() - start < 1.0


def test_unrolled_size_counts_each_copy_the_renderer_emits():
    x, y, i, j = K.Param("x", K.float32, 64), K.Param("y", K.float32, 64), K.Var("i"), K.Var("j")
    store = y.store(i * 4 + j, x[i * 4 + j] * 2.0)
    one = unrolled_size((store,))
    assert one > 0
    inner = {unroll: K.Range(j, 0, 4, (store,), unroll=unroll) for unroll in (0, 2, K.FULL)}
    assert unrolled_size((inner[0],)) == one + 2              # the body once, and the loop's bounds
    assert unrolled_size((inner[2],)) == 2 * one + 2
    assert unrolled_size((inner[K.FULL],)) == 4 * one + 2
    outer = K.Range(i, 0, 16, (inner[K.FULL],))               # a loop that stays a loop: its body once
    assert unrolled_size((outer,)) == unrolled_size((inner[K.FULL],)) + 2


def test_the_saving_of_a_first_build_grows_with_the_kernels_code():
    """A GEMM micro-kernel's final build costs LLVM ~1.2 us more per node of unrolled code: a
    kernel large enough is worth a first build even from many call sites."""
    gemm = next(k for k in K.kernels_of(matmul_program(64, "mm")) if k.name.endswith("_gemm"))
    size = unrolled_size(gemm.body)
    first = tiers.FIRST_BUILDS["tiled"][0]
    per_call = gemm.flops * first.slower_per_flop_s
    breakeven = (first.saves_s + first.saves_per_node_s * size) / per_call
    assert first_build(gemm, calls=int(breakeven * 0.9), threads=1) == "tiled-first"
    assert first_build(gemm, calls=int(breakeven * 1.1) + 1, threads=1) is None
