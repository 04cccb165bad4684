"""The one executable cache (``fgrad.compile.cache``): bounded, least recently used out first,
and jit's fast path forgets a dropped program; the disk cache's size bound."""
from __future__ import annotations

import gc
import os
import weakref

import numpy as np
import pytest

import fgrad
import fgrad.numpy as fnp
from fgrad.backends.disk_cache import DiskCache
from fgrad.compile import executables
from fgrad.compile.cache import ExecutableCache


def test_lru_order_bound_and_callbacks():
    dropped = []
    cache = ExecutableCache(maxsize=lambda: 2)
    cache.put(("k", 1), "one", on_evict=lambda: dropped.append(1))
    cache.put(("k", 2), "two", on_evict=lambda: dropped.append(2))
    assert cache.get(("k", 1)) == "one"          # 1 is now the most recently used
    cache.put(("k", 3), "three")
    assert dropped == [2] and ("k", 2) not in cache and len(cache) == 2
    assert cache.programs("k") == ["one", "three"]
    cache.discard("k")
    assert dropped == [2, 1] and len(cache) == 0


def test_get_or_compile_compiles_once_and_keeps_the_key_objects_alive():
    cache = ExecutableCache(maxsize=lambda: 8)
    calls = []
    owner = type("Owner", (), {})()
    alive = weakref.ref(owner)
    for _ in range(3):
        assert cache.get_or_compile(("p", id(owner)), lambda: calls.append(1) or "exe", keep_alive=owner) == "exe"
    assert calls == [1]
    del owner
    gc.collect()
    assert alive() is not None                   # the entry holds it, so its id cannot be reused
    cache.clear()
    gc.collect()
    assert alive() is None


def test_jit_programs_are_bounded_and_recompiled_after_eviction():
    """Three jitted functions through a cache of two: each call is still right, programs are
    recompiled after eviction, and an evicted program is freed."""
    fns = [fgrad.jit(lambda x, k=k: fnp.tanh(x * (k + 1.0)) + k) for k in range(3)]
    x = np.linspace(-1, 1, 7, dtype=np.float32)
    with fgrad.config.override(executable_cache_size=2):
        executables.clear()
        first = fns[0](x)
        run = next(iter(fns[0]._cache.values())).run
        freed = weakref.ref(run)
        del run
        for _ in range(2):
            for k, f in enumerate(fns):
                np.testing.assert_allclose(np.asarray(f(x)), np.tanh(x * (k + 1.0)) + k, rtol=1e-6)
        assert len(executables) <= 2
        assert executables.evictions >= 4
    gc.collect()
    np.testing.assert_array_equal(np.asarray(first), np.asarray(fns[0](x)))
    assert freed() is None                       # the first program was dropped, not kept by the fast path


def test_config_bounds_are_validated():
    with pytest.raises(ValueError, match="executable_cache_size must be a positive integer"):
        fgrad.config.update("executable_cache_size", 0)
    with pytest.raises(ValueError, match="disk_cache_mib must be a positive integer"):
        fgrad.config.update("disk_cache_mib", "big")


def test_disk_cache_deletes_least_recently_used_entries_past_its_bound(tmp_path, monkeypatch):
    monkeypatch.setenv("FGRAD_CACHE_DIR", str(tmp_path))
    cache = DiskCache("test", b"T1", lambda level, message: None)
    directory = cache.directory()
    blob = b"x" * (300 * 1024)
    with fgrad.config.override(disk_cache_mib=1):
        for k in range(3):
            cache.write(directory / f"e{k}", blob)
            os.utime(directory / f"e{k}", (1000 + k, 1000 + k))
        assert cache.read(directory / "e0") == blob  # read: e0 is now the most recently used
        cache.write(directory / "e3", blob)          # 1.2 MiB > 1 MiB: trim to 0.75 MiB
    left = sorted(p.name for p in directory.iterdir() if p.name != ".size")
    assert left == ["e0", "e3"]


def test_the_collector_is_paused_while_tracing_and_compiling_and_restored_after():
    """jit traces and compiles with Python's cyclic collector off (it cost a third of a deep
    model's compile); it is on again afterwards, also after two threads compile at once and
    after a compile that raises, and a collector the program turned off stays off."""
    import gc
    import threading
    seen = []

    def f(x):
        seen.append(gc.isenabled())
        return x * 2
    assert gc.isenabled()
    np.testing.assert_array_equal(np.asarray(fgrad.jit(f)(fnp.arange(3.0))), [0.0, 2.0, 4.0])
    assert seen == [False] and gc.isenabled()

    def compile_in_thread(k):
        fgrad.jit(lambda x: x + k)(fnp.arange(float(k)))
    threads = [threading.Thread(target=compile_in_thread, args=(k,)) for k in (5, 6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert gc.isenabled()
    with pytest.raises(TypeError):
        fgrad.jit(lambda x: x + "a")(fnp.arange(3.0))
    assert gc.isenabled()
    gc.disable()
    try:
        fgrad.jit(lambda x: x - 1)(fnp.arange(4.0))
        assert not gc.isenabled()
    finally:
        gc.enable()
