"""Small kernels compiled in groups (one LLVM module and object per group): which jobs are
grouped, how groups are kept in the disk cache, and that grouped code computes what
one-kernel-per-object code does."""
import numpy as np
import pytest

import fgrad
import fgrad.numpy as fnp
from fgrad.backends import cpu


def _jobs(*specs):
    """Compile jobs (name, text, pipeline) from (name, text length, pipeline)."""
    return [(name, "x" * size, pipeline) for name, size, pipeline in specs]


def test_runs_of_small_quick_kernels_are_grouped_and_the_others_are_not(monkeypatch):
    monkeypatch.setattr(cpu, "GROUP_KERNEL_CHARS", 100)
    monkeypatch.setattr(cpu, "GROUP_CHARS", 250)
    jobs = _jobs(("big", 500, "quick"), ("o3", 50, "O3"), ("a", 100, "quick"), ("b", 100, "quick"),
                 ("q", 60, "quick"), ("c", 60, "quick"), ("d", 90, "quick"), ("e", 10, "quick"))
    groups = {}
    out = list(cpu._grouped_jobs(iter(jobs), groups, apart={"q"}))
    names = [name for name, _, _ in out]
    assert names[:2] == ["big", "o3"]                         # too big, or not quick: alone
    assert sorted(groups.values()) == [("a", "b", "c"), ("d", "e")]  # closed at 250 characters
    assert "q" in names                                       # a quick-first kernel alone (its run has one)
    for name, text, pipeline in out:
        if name in groups:
            assert pipeline == "quick" and isinstance(text, tuple) and len(text) == len(groups[name])
            assert name.startswith("fgg_")


def test_a_group_that_would_define_a_kernel_twice_is_not_loaded(tmp_path, monkeypatch):
    monkeypatch.setenv("FGRAD_CACHE_DIR", str(tmp_path))
    write = lambda key, data: cpu._disk_cache.write(cpu._disk_cache.entry(key, ".o"), data)
    write("fgk_c", b"\x7fELF object of c")
    write("fgg_1", cpu._GROUP + b"fgk_a fgk_c\n" + b"\x7fELF object of a and c")
    write("fgk_a", cpu._GROUP_REF + b"fgg_1")
    objects, missing = cpu._read_kernels(["fgk_c", "fgk_a"])
    assert objects == {"fgk_c": b"\x7fELF object of c"} and missing == ["fgk_a"]
    objects, missing = cpu._read_kernels(["fgk_a", "fgk_c"])     # the group first: it has both
    assert objects == {"fgg_1": b"\x7fELF object of a and c"} and missing == []
    (tmp_path / "llvm" / "fgg_1.o").unlink()                    # a lost group: its kernels are missing
    assert cpu._read_kernels(["fgk_a"]) == ({}, ["fgk_a"])


@pytest.mark.parametrize("group_chars", [0, cpu.GROUP_KERNEL_CHARS])
def test_grouped_and_single_objects_compute_the_same(monkeypatch, group_chars):
    monkeypatch.setenv("FGRAD_CACHE_DIR", "off")
    monkeypatch.setattr(cpu, "GROUP_KERNEL_CHARS", group_chars)
    cpu.clear_memory_cache()

    def step(w, x):
        h = fnp.tanh(x @ w) * 2.0 + fnp.exp(-x[:, :4] ** 2)
        return fnp.sum(fnp.maximum(h, 0.1), axis=0), fnp.cumsum(h, axis=1)
    rng = np.random.default_rng(0)
    w, x = rng.standard_normal((6, 4)).astype(np.float32), rng.standard_normal((5, 6)).astype(np.float32)
    got = fgrad.jit(step)(w, x)
    want = step(fnp.asarray(w), fnp.asarray(x))
    for g, e in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(e), rtol=1e-6, atol=1e-6)
