"""BEAM for loop kernels (``backends/beam_widths.py``): vector widths timed and cached.

What must hold whatever the timings say: a program searched with BEAM computes what it computes
without (the widths change the code, never the values of an elementwise kernel); the choices are
cached on disk and reused (counted with ``beam.search_stats``); a corrupt entry is timed again
with a warning; every width of ``WIDTH_CANDIDATES`` renders a kernel that agrees with the
interpreter.
"""
from __future__ import annotations

import numpy as np
import pytest

import fgrad
import fgrad.numpy as fnp
from fgrad import nn
from fgrad.backends import beam, beam_widths
from fgrad.backends.cpu import compile_program
from fgrad.config import config
from fgrad.lower import kernel as K
from fgrad.lower.interpret import run_program
from tests.lower.util import kernel_program


@pytest.fixture
def searching(tmp_path, monkeypatch):
    """BEAM on, with a cache of its own, short timing runs, and every loop kernel searched."""
    monkeypatch.setenv("FGRAD_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(beam, "ROUND_TIMING_S", 0.005)
    monkeypatch.setattr(beam, "neighbours", lambda problem, s: [])     # contractions: the default only
    monkeypatch.setattr(beam_widths, "MIN_SEARCH_OPS", 0)
    beam.clear_memory()
    beam.search_stats.clear()
    with config.override(beam=2, beam_budget_s=60.0):
        yield tmp_path
    beam.clear_memory()


def pool_grad(x):
    """The gradient of a 2x2 max-pool over rows of 11 (the MNIST step's slowest loop kernel's shape)."""
    return fgrad.grad(lambda x: fnp.sum(nn.max_pool2d(nn.relu(x), 2) ** 2))(x)


def image(seed=0):
    return np.random.default_rng(seed).standard_normal((4, 8, 11, 11)).astype(np.float32)


def _entries(cache_dir):
    return sorted((cache_dir / "beam").glob("*.width"))


def test_searched_widths_never_change_results(searching):
    x = image()
    with config.override(beam=0):
        plain = np.asarray(fgrad.jit(pool_grad)(x))
    searched = np.asarray(fgrad.jit(lambda x: pool_grad(x) + 0.0)(x))
    assert beam.search_stats["widths searched"] >= 1
    assert beam.search_stats["widths rejected"] == 0
    np.testing.assert_array_equal(searched, plain)
    np.testing.assert_array_equal(plain, np.asarray(pool_grad(x)))     # and eager execution


def test_widths_are_cached_and_reused(searching, capsys):
    x = image()
    first = np.asarray(fgrad.jit(pool_grad)(x))
    searched = beam.search_stats["widths searched"]
    assert searched >= 1 and len(_entries(searching)) == searched
    beam.clear_memory()                        # as in a new process: only the disk cache is left
    with config.override(debug=2):
        again, _ = fgrad.jit(lambda x: (pool_grad(x), fnp.sum(x)))(x)   # another program, same kernels
        again = np.asarray(again)
    assert beam.search_stats["widths searched"] == searched
    assert beam.search_stats["widths cached"] >= 1
    np.testing.assert_array_equal(again, first)
    assert "(cached)" in capsys.readouterr().err


def test_a_corrupt_entry_is_timed_again_with_a_warning(searching):
    x = image()
    expected = np.asarray(fgrad.jit(pool_grad)(x))
    entries = _entries(searching)
    entries[0].write_bytes(entries[0].read_bytes()[:-7] + b"garbage")
    beam.clear_memory()
    with pytest.warns(beam.BeamWarning, match="corrupt"):
        got = np.asarray(fgrad.jit(lambda x: (pool_grad(x), fnp.sum(x)))(x)[0])
    np.testing.assert_array_equal(got, expected)
    assert len(_entries(searching)) == len(entries)                      # rewritten


def test_beam_zero_searches_no_widths(tmp_path, monkeypatch):
    monkeypatch.setenv("FGRAD_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(beam_widths, "MIN_SEARCH_OPS", 0)
    beam.search_stats.clear()
    with config.override(beam=0):
        fgrad.jit(pool_grad)(image())
    assert beam.search_stats["widths searched"] == 0 and not _entries(tmp_path)


@pytest.mark.parametrize("width", beam_widths.WIDTH_CANDIDATES)
def test_every_candidate_width_agrees_with_the_interpreter(width):
    """Rows of 11 with a tail, a masked load and a floor-divided index, at each width."""
    rows, cols = 5, 11
    x, y = K.Param("x", K.float32, rows * cols), K.Param("y", K.float32, rows * cols)
    i, j = K.Var("i"), K.Var("j")
    half = K.floordiv(j, K.Const(2, K.INDEX))
    value = x.load(i * cols + half * 2, K.op("lt", j, K.Const(9, K.INDEX))) + x[i * cols + j]
    body = (K.Range(i, 0, rows, (K.Range(j, 0, cols, (y.store(i * cols + j, value),), vectorize=K.AUTO),)),)
    kernel = beam_widths.at_width(K.Kernel("rows", (x, y), body), width)
    assert {s.vectorize for s in K.walk_stmts(kernel.body) if isinstance(s, K.Range)} == {0, width}
    program = kernel_program(kernel, 1)
    data = np.random.default_rng(width).standard_normal(rows * cols).astype(np.float32)
    np.testing.assert_array_equal(compile_program(program)(data)[0], run_program(program, data)[0])
