"""The CPU backend: calling convention, caches (memory and disk), threads, debug output."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from fgrad.backends import cpu, llvm_pool, llvm_worker
from fgrad.config import config
from fgrad.lower import kernel as K
from tests.lower.util import kernel_program

f32 = K.float32


def scale_program(n: int, factor: float = 2.0, parallel: bool = False, name: str = "scale") -> K.Program:
    x, y, i = K.Param("x", f32, n), K.Param("y", f32, n), K.Var("i")
    kern = K.Kernel("scale", (x, y), (K.Range(i, 0, n, (y.store(i, x[i] * factor + 1.0),),
                                              parallel=parallel, vectorize=K.AUTO),))
    return kernel_program(kern, 1, name=name)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FGRAD_CACHE_DIR", str(tmp_path))
    cpu.clear_memory_cache()
    yield tmp_path / "llvm"
    cpu.clear_memory_cache()


def test_call_returns_fresh_outputs_and_accepts_out():
    exe = cpu.compile_program(scale_program(10))
    x = np.arange(10, dtype=np.float32)
    (a,) = exe(x)
    (b,) = exe(x)
    assert a is not b
    np.testing.assert_array_equal(a, 2 * x + 1)
    out = np.zeros(10, np.float32)
    (c,) = exe(x, out=[out])
    assert c is out
    np.testing.assert_array_equal(out, 2 * x + 1)


def test_inputs_are_checked_and_converted():
    exe = cpu.compile_program(scale_program(6))
    x = np.arange(12, dtype=np.float32)[::2]            # not contiguous: copied
    np.testing.assert_array_equal(exe(x)[0], 2 * x + 1)
    np.testing.assert_array_equal(exe([1, 2, 3, 4, 5, 6.0] and np.arange(6, dtype=np.float32))[0],
                                  2 * np.arange(6) + 1)
    with pytest.raises(TypeError, match="input 0 \\(b_x\\) must be f32\\[6\\], got float64\\[6\\]"):
        exe(np.arange(6, dtype=np.float64))
    with pytest.raises(TypeError, match="takes 1 inputs, got 2"):
        exe(x, x)
    with pytest.raises(TypeError, match="out\\[0\\] must be a writeable contiguous f32\\[6\\]"):
        exe(x, out=[np.zeros(5, np.float32)])


def test_pointer_calling_convention_fallback():
    exe = cpu.compile_program(scale_program(5))
    exe._fast = None                                    # as on a NumPy whose array layout is unknown
    x = np.arange(5, dtype=np.float32)
    np.testing.assert_array_equal(exe(x)[0], 2 * x + 1)


def test_constants_are_passed_at_run_time():
    n = 4
    x, c, y, i = K.Param("x", f32, n), K.Param("c", f32, n), K.Param("y", f32, n), K.Var("i")
    kern = K.Kernel("addc", (x, c, y), (K.Range(i, 0, n, (y.store(i, x[i] + c[i]),)),))
    bx, bc, by = K.Buffer("x", f32, n), K.Buffer("c", f32, n), K.Buffer("y", f32, n)
    p1 = K.Program("pc", (bx,), (by,), (K.Call(kern, (bx, bc, by)),), constants={bc: np.ones(n)})
    p2 = K.Program("pc", (bx,), (by,), (K.Call(kern, (bx, bc, by)),), constants={bc: np.full(n, 5.0)})
    e1, e2 = cpu.compile_program(p1), cpu.compile_program(p2)
    assert e1._code is e2._code                          # same text: same machine code
    x0 = np.zeros(n, np.float32)
    assert e1(x0)[0][0] == 1 and e2(x0)[0][0] == 5


def test_memory_cache_reuses_machine_code(cache_dir):
    e1 = cpu.compile_program(scale_program(8))
    e2 = cpu.compile_program(scale_program(8))
    assert e1._code is e2._code
    assert cpu.compile_program(scale_program(8, factor=3.0))._code is not e1._code


def _no_llvm(monkeypatch):
    """Make any compile by LLVM fail the test (code must come from a cache)."""
    fail = lambda *a, **k: pytest.fail("compiled by LLVM; should have been loaded from a cache")
    monkeypatch.setattr(llvm_pool, "compile_modules", fail)
    monkeypatch.setattr(llvm_worker, "optimise_to_object", fail)


def test_disk_cache_round_trip(cache_dir, monkeypatch):
    x = np.arange(8, dtype=np.float32)
    cpu.compile_program(scale_program(8))
    kernels = list(cache_dir.glob("fgk_*.o"))
    assert len(kernels) == 1 and len(list(cache_dir.glob("*.o"))) == 2   # the kernel, the entry
    cpu.clear_memory_cache()
    _no_llvm(monkeypatch)
    exe = cpu.compile_program(scale_program(8))
    np.testing.assert_array_equal(exe(x)[0], 2 * x + 1)


@pytest.mark.parametrize("which", ["kernel", "entry"])
def test_corrupt_disk_entry_is_rebuilt(cache_dir, capsys, which):
    x = np.arange(8, dtype=np.float32)
    cpu.compile_program(scale_program(8))
    (path,) = [p for p in cache_dir.glob("*.o") if p.name.startswith("fgk_") == (which == "kernel")]
    blob = bytearray(path.read_bytes())
    blob[-10] ^= 0xFF
    path.write_bytes(bytes(blob))
    cpu.clear_memory_cache()
    with config.override(debug=1):
        exe = cpu.compile_program(scale_program(8))
    assert "corrupt" in capsys.readouterr().err
    np.testing.assert_array_equal(exe(x)[0], 2 * x + 1)
    assert cpu._disk_cache.read(path) is not None     # rewritten intact


def _affine_kernel(n: int, a: float, b: float, names=("x", "y"), name="affine") -> K.Kernel:
    x, y, i = K.Param(names[0], f32, n), K.Param(names[1], f32, n), K.Var("i")
    return K.Kernel(name, (x, y), (K.Range(i, 0, n, (y.store(i, x[i] * a + b),), vectorize=K.AUTO),))


def _chain_program(kernels: list[K.Kernel], name: str = "chain") -> K.Program:
    """x -> kernels[0] -> kernels[1] -> ... -> y, each on buffers of its own."""
    n = kernels[0].params[0].size
    bufs = [K.Buffer(f"b{k}", f32, n) for k in range(len(kernels) + 1)]
    calls = tuple(K.Call(k, (bufs[j], bufs[j + 1])) for j, k in enumerate(kernels))
    return K.Program(name, (bufs[0],), (bufs[-1],), calls)


def test_a_kernel_shared_by_call_sites_is_compiled_once(cache_dir):
    # three call sites of one kernel structure under different names and params, one other kernel
    same = [_affine_kernel(64, 2.0, 1.0, names=(f"in{k}", f"out{k}"), name=f"site{k}") for k in range(3)]
    program = _chain_program([*same, _affine_kernel(64, 0.5, 0.0)])
    before = dict(cpu.kernel_sources)
    exe = cpu.compile_program(program)
    assert cpu.kernel_sources["compiled"] - before.get("compiled", 0) == 2
    x = np.arange(64, dtype=np.float32)
    expected = ((x * 2 + 1) * 2 + 1) * 2 + 1
    np.testing.assert_array_equal(exe(x)[0], expected * np.float32(0.5))


def test_kernels_are_shared_across_programs(cache_dir, monkeypatch):
    cpu.compile_program(_chain_program([_affine_kernel(32, 3.0, 1.0)], name="first"))
    compiled = []
    real = llvm_pool.compile_modules

    def recording(jobs, target):
        jobs = list(jobs)
        compiled.extend(name for name, _, _ in jobs)
        return real(iter(jobs), target)
    monkeypatch.setattr(llvm_pool, "compile_modules", recording)
    exe = cpu.compile_program(_chain_program([_affine_kernel(32, 3.0, 1.0, names=("a", "b"))], name="second"))
    assert len(compiled) == 1 and compiled[0].startswith("entry_")     # only the new entry function
    x = np.arange(32, dtype=np.float32)
    np.testing.assert_array_equal(exe(x)[0], x * 3 + 1)


def test_a_model_edit_recompiles_only_the_kernels_it_changed(cache_dir):
    k1, k2, k3 = _affine_kernel(16, 2.0, 1.0), _affine_kernel(16, 5.0, 0.0), _affine_kernel(16, 7.0, 0.0)
    cpu.compile_program(_chain_program([k1, k2], name="model"))
    cpu.clear_memory_cache()                               # a new process: only the disk cache
    before = dict(cpu.kernel_sources)
    exe = cpu.compile_program(_chain_program([k1, k3], name="model"))   # the edit: k2 -> k3
    delta = {kind: cpu.kernel_sources[kind] - before.get(kind, 0) for kind in ("compiled", "disk")}
    assert delta == {"compiled": 1, "disk": 1}
    x = np.arange(16, dtype=np.float32)
    np.testing.assert_array_equal(exe(x)[0], (x * 2 + 1) * 7)


def test_disk_cache_can_be_turned_off(tmp_path, monkeypatch):
    monkeypatch.setenv("FGRAD_CACHE_DIR", "off")
    assert cpu._disk_cache.directory() is None


def test_parallel_loops_across_threads():
    n = 1 << 18
    program = scale_program(n, parallel=True, name="big")
    target = cpu.host_target(2)
    exe = cpu.compile_program(program, target=target)
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    np.testing.assert_array_equal(exe(x)[0], x * 2 + 1)
    single = cpu.compile_program(program, target=cpu.host_target(1))
    np.testing.assert_array_equal(single(x)[0], x * 2 + 1)


def test_parallel_loop_using_an_outer_local_stays_serial():
    n = 1 << 16
    x, y, i = K.Param("x", f32, n), K.Param("y", f32, 1), K.Var("i")
    acc = K.Local("acc", f32)
    kern = K.Kernel("sum", (x, y), (K.DefineLocal(acc, K.Const(0.0, f32)),
                                    K.Range(i, 0, n, (acc.accumulate(0, "add", x[i]),), parallel=True,
                                            vectorize=K.AUTO),
                                    y.store(0, acc[0])))
    exe = cpu.compile_program(kernel_program(kern, 1), target=cpu.host_target(2))
    data = np.ones(n, np.float32)
    assert exe(data)[0][0] == n


def test_concurrent_calls_from_python_threads():
    program = scale_program(1000)
    exe = cpu.compile_program(program)
    errors = []

    def work(seed):
        x = np.random.default_rng(seed).standard_normal(1000).astype(np.float32)
        for _ in range(50):
            if not np.array_equal(exe(x)[0], x * 2 + 1):
                errors.append(seed)
    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_num_threads_setting(monkeypatch):
    monkeypatch.setenv("FGRAD_NUM_THREADS", "3")
    assert cpu.num_threads() == 3
    monkeypatch.setenv("FGRAD_NUM_THREADS", "zero")
    with pytest.raises(ValueError, match="FGRAD_NUM_THREADS must be a positive integer"):
        cpu.num_threads()


def test_debug_levels_print_ir_and_timings(capsys):
    cpu.clear_memory_cache()
    x = np.arange(4, dtype=np.float32)
    with config.override(debug=4):
        cpu.compile_program(scale_program(4, name="dbg"))
    err = capsys.readouterr().err
    assert "kernel scale(x: f32[4], y: f32[4]):" in err       # level 3: kernel IR
    assert "define void @\"fgrad_main\"" in err               # level 4: LLVM IR
    with config.override(debug=2):
        exe = cpu.compile_program(scale_program(4, name="dbg"))
        exe(x)
    err = capsys.readouterr().err
    assert "program dbg" in err and "scale" in err and "us" in err


def test_compile_program_rejects_non_programs():
    with pytest.raises(TypeError, match="takes a kernel IR Program"):
        cpu.compile_program("not a program")


def _assembly(program: K.Program, threads: int = 1) -> str:
    import llvmlite.binding as llvm
    from fgrad.lower.llvm import render_program
    target = cpu.host_target(threads)
    module = llvm.parse_assembly(str(render_program(program, target).module))
    tm = cpu.target_machine(target)
    pb = llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(speed_level=3))
    pb.getModulePassManager().run(module, pb)
    return tm.emit_assembly(module)


def test_matmul_template_uses_simd_fma():
    from fgrad.lower import contraction as C
    n = 256
    a, b, c = K.Buffer("a", f32, (n, n)), K.Buffer("b", f32, (n, n)), K.Buffer("c", f32, (n, n))
    con = C.dot_general("mm", a, b, c, (((1,), (0,)), ((), ())))
    asm = _assembly(K.Program("mm", (a, b), (c,), con.steps))
    register = "zmm" if cpu.host_target().vector_bytes == 64 else "ymm"
    fmas = [line for line in asm.splitlines() if "vfmadd" in line and register in line]
    assert len(fmas) >= 16


def test_transcendentals_are_inline_simd_code():
    n = 1024
    x, y, i = K.Param("x", f32, n), K.Param("y", f32, n), K.Var("i")
    value = K.op("tanh", x[i]) + K.op("exp", x[i]) + K.op("log1p", x[i]) + K.op("logistic", x[i])
    kern = K.Kernel("tx", (x, y), (K.Range(i, 0, n, (y.store(i, value),), vectorize=K.AUTO),))
    asm = _assembly(kernel_program(kern, 1))
    calls = [line for line in asm.splitlines() if "call" in line and ("exp" in line or "tanh" in line
                                                                       or "log" in line)]
    assert not calls
    assert "zmm" in asm or "ymm" in asm


def test_equal_kernels_share_a_symbol_worked_out_once_and_it_is_their_texts(monkeypatch):
    """``kernel_symbol`` of a kernel equal to one seen before (another layer's copy: a new
    object, another kernel name) is taken from its memo without printing the kernel; each
    symbol is the hash of the kernel's structural text (the memo cleared gives the same), and
    kernels that differ only in a constant's sign of zero get different symbols."""
    import hashlib
    from fgrad.lower import kernel_stmt
    monkeypatch.setattr(cpu, "_symbols", {})
    target = cpu.host_target()
    printed = []
    original = cpu.format_kernel
    monkeypatch.setattr(cpu, "format_kernel", lambda k, **kw: printed.append(k.name) or original(k, **kw))
    first, again = _affine_kernel(16, 2.0, 0.0, name="layer0"), _affine_kernel(16, 2.0, 0.0, name="layer1")
    negative = _affine_kernel(16, 2.0, -0.0, name="layer2")
    symbols = [cpu.kernel_symbol(k, target) for k in (first, again, negative)]
    assert symbols[0] == symbols[1] != symbols[2]
    assert printed == ["layer0", "layer2"]
    for kern, symbol in zip((first, negative), symbols[::2]):
        text = "\n".join((cpu._VERSION, target.key(), cpu.forced_pipeline(),
                          kernel_stmt.format_kernel(kern, structural=True)))
        assert symbol == "fgk_" + hashlib.sha256(text.encode()).hexdigest()[:40]
    monkeypatch.setattr(cpu, "_symbols", {})
    assert [cpu.kernel_symbol(k, target) for k in (again, negative)] == symbols[1:]


def test_the_kernel_pipeline_setting(cache_dir, monkeypatch):
    kern = _affine_kernel(40, 1.5, -2.0)
    assert cpu.kernel_pipeline(kern) == "quick"                  # little work: compiled cheaply
    big = cpu.QUICK_KERNEL_OPS          # one op per element at least: O3 pays for itself
    assert cpu.kernel_pipeline(_affine_kernel(big, 1.5, -2.0)) == "O3"
    default = cpu.kernel_symbol(kern, cpu.host_target())
    x = np.linspace(-3, 3, 40, dtype=np.float32)
    expected = cpu.compile_program(_chain_program([kern]))(x)[0]
    for forced in ("tiled", "O3", "tiled-first", "O3-first"):    # forced for every kernel
        monkeypatch.setenv("FGRAD_LLVM_KERNEL_PIPELINE", forced)
        assert cpu.kernel_pipeline(kern) == forced
        assert cpu.kernel_symbol(kern, cpu.host_target()) != default  # cached apart
        got = cpu.compile_program(_chain_program([kern], name=f"t_{forced.replace('-', '_')}"))(x)[0]
        np.testing.assert_array_equal(got, expected)             # bit-identical whatever the pipeline
    monkeypatch.setenv("FGRAD_LLVM_KERNEL_PIPELINE", "fast")
    with pytest.raises(ValueError, match="FGRAD_LLVM_KERNEL_PIPELINE must be one of 'auto', 'O3', "
                                         "'tiled', 'quick', 'tiled-first', 'O3-first', got 'fast'"):
        cpu.compile_program(_chain_program([kern], name="bad"))


def test_register_tiled_kernels_skip_llvms_loop_passes():
    from fgrad.lower import contraction as C
    n = 256
    a, b, c = K.Buffer("a", f32, (n, n)), K.Buffer("b", f32, (n, n)), K.Buffer("c", f32, (n, n))
    doubled = C.Source((n, n), (a,), lambda idx, valid: C.param(a).load(idx[0] * n + idx[1], valid) * 2.0)
    con = C.dot_general("mm", doubled, b, c, (((0,), (0,)), ((), ())))      # (2a)ᵀ b: A is packed
    kinds = {k.name: cpu.kernel_pipeline(k) for k in K.kernels_of(K.Program("mm", (a, b), (c,), con.steps))}
    assert kinds["mm_gemm"] == "tiled" and kinds["mm_pack_a"] == "O3", kinds
    a, b, c = K.Buffer("a", f32, (16, 16)), K.Buffer("b", f32, (16, 16)), K.Buffer("c", f32, (16, 16))
    con = C.dot_general("small", a, b, c, (((1,), (0,)), ((), ())))
    kinds = {k.name: cpu.kernel_pipeline(k) for k in K.kernels_of(K.Program("small", (a, b), (c,), con.steps))}
    assert set(kinds.values()) == {"quick"}, kinds                 # 16 x 16: little work anywhere


def test_amd_sse4a_is_never_used():
    """LLVM mixed AMD's legacy-SSE ``extrq`` into AVX loops (a 5x slower max-pool gradient on Zen
    3): the host target turns SSE4a off, whatever the CPU has, and keeps every other feature."""
    assert cpu._usable_features("+avx2,+sse4a,-avx512f,+fma") == "+avx2,-sse4a,-avx512f,+fma"
    assert cpu._usable_features("+avx2,-sse4a") == "+avx2,-sse4a"
    features = cpu.host_target().features.split(",")
    assert "+sse4a" not in features
    host = cpu.llvm.get_host_cpu_features().flatten().split(",")
    assert [f for f in features if "sse4a" not in f] == [f for f in host if "sse4a" not in f]


def _vm_flags_of(array: np.ndarray) -> set[str] | None:
    """The kernel's VmFlags of the mapping holding ``array``'s first byte (Linux), else None."""
    try:
        lines = open("/proc/self/smaps").read().splitlines()
    except OSError:
        return None
    address, inside = array.ctypes.data, False
    for line in lines:
        head = line.split()[0]
        if "-" in head and all(c in "0123456789abcdef-" for c in head):
            lo, hi = (int(x, 16) for x in head.split("-"))
            inside = lo <= address < hi
        elif inside and line.startswith("VmFlags:"):
            return set(line.split()[1:])
    return None


def test_arena_is_page_aligned_writable_and_in_small_pages(monkeypatch):
    """Programs' arenas are mapped in small pages unless FGRAD_ARENA_HUGEPAGES=1 (the first
    touch of fresh huge pages made first calls slow on a VM); a bad value is refused."""
    monkeypatch.delenv("FGRAD_ARENA_HUGEPAGES", raising=False)
    arena = cpu.arena_buffer(3 << 20)
    assert arena.dtype == np.uint8 and arena.shape == (3 << 20,) and arena.flags.writeable
    assert arena.ctypes.data % 4096 == 0
    arena[:] = 7
    assert int(arena[::4096].sum()) == 7 * len(arena[::4096])
    flags = _vm_flags_of(arena)
    if flags is not None and hasattr(__import__("mmap"), "MADV_NOHUGEPAGE"):
        assert "nh" in flags
    monkeypatch.setenv("FGRAD_ARENA_HUGEPAGES", "1")
    huge = cpu.arena_buffer(3 << 20)
    assert huge.shape == (3 << 20,) and huge.flags.writeable
    flags = _vm_flags_of(huge)
    assert flags is None or "nh" not in flags
    monkeypatch.setenv("FGRAD_ARENA_HUGEPAGES", "yes")
    with pytest.raises(ValueError, match="FGRAD_ARENA_HUGEPAGES"):
        cpu.arena_buffer(64)


def test_programs_compute_the_same_with_either_page_size(monkeypatch):
    """A program passing values through arena temporaries, with the arena in either page size."""
    n = 5000
    x, y, i = K.Param("x", f32, n), K.Param("y", f32, n), K.Var("i")
    scale = K.Kernel("scale", (x, y), (K.Range(i, 0, n, (y.store(i, x[i] * 2.0 + 1.0),), vectorize=K.AUTO),))
    inp, out = K.Buffer("inp", f32, (n,)), K.Buffer("out", f32, (n,))
    temps = [K.Buffer(f"t{k}", f32, (n,)) for k in range(3)]
    chain = [inp, *temps, out]
    program = K.Program("through_temps", (inp,), (out,),
                        tuple(K.Call(scale, (a, b)) for a, b in zip(chain, chain[1:])))
    data = np.linspace(-1, 1, n, dtype=np.float32)
    expected = data
    for _ in range(4):
        expected = expected * np.float32(2) + np.float32(1)
    for huge in ("0", "1"):
        monkeypatch.setenv("FGRAD_ARENA_HUGEPAGES", huge)
        exe = cpu.compile_program(program)
        assert exe._arena.nbytes >= 2 * 4 * n
        np.testing.assert_array_equal(exe(data)[0], expected)


_POOL_USER = """
import sys, numpy as np, fgrad
from fgrad.backends import threadpool
if sys.argv[1] == "cached":        # the pool's code must come from the disk cache
    def refuse(*a, **k):
        raise AssertionError("the thread pool was compiled again")
    threadpool.compile_pool = refuse
x = np.arange(1 << 16, dtype=np.float32)
print(float(fgrad.jit(lambda x: (2 * x + 1).sum())(x)))
"""


def test_thread_pool_code_is_kept_in_the_disk_cache(tmp_path):
    """A new process loads the thread pool's object code from the disk cache (LLVM took ~25 ms
    of each warm start building it); a corrupt entry is rebuilt."""
    env = {**os.environ, "FGRAD_CACHE_DIR": str(tmp_path), "FGRAD_NUM_THREADS": "2"}

    def run(mode: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", _POOL_USER, mode], env=env, capture_output=True, text=True)
    first = run("fresh")
    assert first.returncode == 0, first.stderr
    (entry,) = (tmp_path / "llvm").glob("threadpool_*.pool")
    second = run("cached")
    assert second.returncode == 0, second.stderr
    assert float(second.stdout) == float(first.stdout)
    np.testing.assert_allclose(float(first.stdout), (2 * np.arange(1 << 16, dtype=np.float64) + 1).sum(), rtol=1e-6)
    blob = bytearray(entry.read_bytes())
    blob[-5] ^= 0xFF
    entry.write_bytes(bytes(blob))
    assert run("cached").returncode != 0          # corrupt: not loaded ...
    rebuilt = run("fresh")                        # ... but rebuilt
    assert rebuilt.returncode == 0 and float(rebuilt.stdout) == float(first.stdout)
    assert run("cached").returncode == 0
