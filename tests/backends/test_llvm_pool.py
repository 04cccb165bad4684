"""Compiling kernels' modules in worker processes: same object code as in this process, errors
named, dead workers survived."""
from __future__ import annotations

import numpy as np
import pytest

from fgrad.backends import cpu, llvm_pool, llvm_worker
from fgrad.lower import kernel as K
from fgrad.lower.llvm import render_kernel_module

f32 = K.float32


def _module_texts(count: int) -> dict[str, str]:
    target = cpu.host_target(1)
    texts = {}
    for k in range(count):
        x, y, i = K.Param("x", f32, 100 + k), K.Param("y", f32, 100 + k), K.Var("i")
        kern = K.Kernel(f"k{k}", (x, y), (K.Range(i, 0, 100 + k, (y.store(i, K.op("tanh", x[i]) * float(k)),),
                                                  vectorize=K.AUTO),))
        texts[f"fgk_test{k}"] = str(render_kernel_module(kern, target, f"fgk_test{k}"))
    return texts


@pytest.fixture
def workers(monkeypatch):
    """Two worker processes for the test, stopped after it."""
    llvm_pool.shutdown()
    monkeypatch.setenv("FGRAD_COMPILE_WORKERS", "2")
    yield
    llvm_pool.shutdown()


def _here(text: str) -> bytes:
    t = cpu.host_target(1)
    return llvm_worker.optimise_to_object(text, t.triple, t.cpu, t.features, "tiled")


def test_workers_produce_the_same_object_code(workers):
    texts = _module_texts(6)
    objects = llvm_pool.compile_modules(((n, t, "tiled") for n, t in texts.items()), cpu.host_target(1))
    assert sorted(objects) == sorted(texts)
    assert len(llvm_pool._workers) == 2
    for name, text in texts.items():
        assert objects[name] == _here(text)


@pytest.mark.parametrize("pipeline", sorted([*llvm_worker.PIPELINES, *llvm_worker.PASS_LISTS]))
def test_every_pipeline_compiles_in_workers_as_here(workers, pipeline):
    texts = _module_texts(2)
    objects = llvm_pool.compile_modules(((n, t, pipeline) for n, t in texts.items()), cpu.host_target(1))
    t = cpu.host_target(1)
    for name, text in texts.items():
        assert objects[name] == llvm_worker.optimise_to_object(text, t.triple, t.cpu, t.features, pipeline)


def test_an_unknown_pipeline_is_an_error_that_lists_them():
    t = cpu.host_target(1)
    text = next(iter(_module_texts(1).values()))
    with pytest.raises(ValueError, match="unknown LLVM pipeline 'fast'.*tiled-first"):
        llvm_worker.optimise_to_object(text, t.triple, t.cpu, t.features, "fast")


def test_no_workers_when_set_to_zero(monkeypatch):
    llvm_pool.shutdown()
    monkeypatch.setenv("FGRAD_COMPILE_WORKERS", "0")
    texts = _module_texts(2)
    objects = llvm_pool.compile_modules(((n, t, "tiled") for n, t in texts.items()), cpu.host_target(1))
    assert llvm_pool._workers == [] and len(objects) == 2
    llvm_pool.shutdown()


def test_a_bad_worker_count_is_an_error(monkeypatch):
    monkeypatch.setenv("FGRAD_COMPILE_WORKERS", "many")
    with pytest.raises(ValueError, match="FGRAD_COMPILE_WORKERS must be a positive integer"):
        llvm_pool.worker_count()


@pytest.mark.parametrize("where", ["worker", "here"])
def test_llvm_errors_name_the_module(monkeypatch, where):
    llvm_pool.shutdown()
    monkeypatch.setenv("FGRAD_COMPILE_WORKERS", "1" if where == "worker" else "0")
    bad = "define void @f() {\n  ret i32 0\n}\n"
    # the worker takes jobs while this process renders; here, every job is compiled in-process
    jobs = [("fgk_bad", bad, "tiled")] + [(n, t, "tiled") for n, t in _module_texts(3).items()]
    with pytest.raises(llvm_pool.CompileError, match="LLVM rejected module fgk_bad"):
        llvm_pool.compile_modules(iter(jobs), cpu.host_target(1))
    llvm_pool.shutdown()


def test_a_dead_worker_is_survived(workers):
    texts = _module_texts(4)
    llvm_pool.compile_modules(((n, t, "tiled") for n, t in list(texts.items())[:1]), cpu.host_target(1))
    for worker in llvm_pool._workers:
        worker.process.kill()
        worker.process.wait()
    objects = llvm_pool.compile_modules(((n, t, "tiled") for n, t in texts.items()), cpu.host_target(1))
    assert all(objects[name] == _here(text) for name, text in texts.items())
    assert llvm_pool._workers == []          # the dead ones are forgotten


def test_programs_compiled_with_workers_run_alike(workers, tmp_path, monkeypatch):
    monkeypatch.setenv("FGRAD_CACHE_DIR", "off")
    x, y, i = K.Param("x", f32, 300), K.Param("y", f32, 300), K.Var("i")
    kern = K.Kernel("t", (x, y), (K.Range(i, 0, 300, (y.store(i, K.op("exp", x[i]) - 1.0),), vectorize=K.AUTO),))
    bx, by = K.Buffer("x", f32, 300), K.Buffer("y", f32, 300)
    program = K.Program("p", (bx,), (by,), (K.Call(kern, (bx, by)),))
    data = np.linspace(-3, 3, 300, dtype=np.float32)
    cpu.clear_memory_cache()
    with_workers = cpu.compile_program(program)(data)[0]
    monkeypatch.setenv("FGRAD_COMPILE_WORKERS", "0")
    cpu.clear_memory_cache()
    without = cpu.compile_program(program)(data)[0]
    np.testing.assert_array_equal(with_workers, without)
    np.testing.assert_allclose(without, np.expm1(data.astype(np.float64)), rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_child_starts_workers_of_its_own(workers):
    import os
    texts = _module_texts(3)
    jobs = lambda: ((n, t, "tiled") for n, t in texts.items())
    llvm_pool.compile_modules(jobs(), cpu.host_target(1))          # the parent's workers exist now
    parent_workers = list(llvm_pool._workers)
    pid = os.fork()
    if pid == 0:                                                    # the child: compile, report, leave
        ok = llvm_pool._workers == []
        objects = llvm_pool.compile_modules(jobs(), cpu.host_target(1))
        ok = ok and all(objects[n] == _here(t) for n, t in texts.items())
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert llvm_pool._workers == parent_workers                    # the parent's pool is untouched
    objects = llvm_pool.compile_modules(jobs(), cpu.host_target(1))
    assert all(objects[n] == _here(t) for n, t in texts.items())


def test_a_worker_that_does_not_speak_the_protocol_is_survived(workers, monkeypatch):
    # as when sys.executable is not a Python that runs llvm_worker.py: it prints something else
    boot = "import sys, struct; sys.stdout.buffer.write(struct.pack('<Q', 5) + b'hello'); sys.stdout.flush()"
    monkeypatch.setattr(llvm_pool, "_BOOT", boot)
    llvm_pool.shutdown()
    texts = _module_texts(3)
    objects = llvm_pool.compile_modules(((n, t, "tiled") for n, t in texts.items()), cpu.host_target(1))
    assert all(objects[n] == _here(t) for n, t in texts.items())
    assert llvm_pool._workers == []


def test_a_jit_compile_starts_the_workers_before_it_lowers(workers, monkeypatch, tmp_path):
    """The workers start while the program is lowered, not when its first module is ready."""
    import fgrad
    import fgrad.numpy as fnp
    from fgrad.compile import pipeline
    monkeypatch.setenv("FGRAD_CACHE_DIR", str(tmp_path))
    seen = []
    lower = pipeline.lower_program

    def spy(*args, **kwargs):
        seen.append([w.process.poll() for w in llvm_pool._workers])
        return lower(*args, **kwargs)
    monkeypatch.setattr(pipeline, "lower_program", spy)
    f = fgrad.jit(lambda x: fnp.tanh(x) * 3.0 + 0.123456)
    np.testing.assert_allclose(f(np.arange(5, dtype=np.float32)), np.tanh(np.arange(5)) * 3 + 0.123456,
                               rtol=1e-6)
    assert seen == [[None, None]]           # two workers, both running, when lowering began


def test_start_workers_starts_none_when_set_to_zero(monkeypatch):
    llvm_pool.shutdown()
    monkeypatch.setenv("FGRAD_COMPILE_WORKERS", "0")
    llvm_pool.start_workers()
    assert llvm_pool._workers == []
