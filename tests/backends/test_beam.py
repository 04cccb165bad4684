"""BEAM (``fgrad.config.beam`` / ``FGRAD_BEAM``): searched schedules for the CPU contractions.

What must hold whatever the timings say: results equal the default schedule's and NumPy's up to
float reassociation (sums of k products in another order: |beam - default| <= 4 k eps (|default|
+ max |default|)); choices are cached on disk and reused (counted with ``beam.search_stats``); a
corrupt entry is searched again with a warning; the budget stops the search early; beam 0
searches nothing; a beam build and a default build never share a saved program.

The searches here are kept short (a few moves per round, two rounds, short timing runs); the
schedule space itself is checked exhaustively near the default in tests/lower/test_gemm_schedule.py.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

import fgrad
import fgrad.numpy as fnp
from fgrad import lax
from fgrad.backends import beam, cpu
from fgrad.compile import compiled_by_path
from fgrad.compile.pipeline import compile_jaxpr
from fgrad.config import Config, config
from fgrad.lower import gemm_schedule
from fgrad.lower import kernel as K
from fgrad.lower.rules import lower_program


@pytest.fixture
def searching(tmp_path, monkeypatch):
    """BEAM on (width 2), with a cache of its own and short searches."""
    monkeypatch.setenv("FGRAD_CACHE_DIR", str(tmp_path))
    every = beam.neighbours
    monkeypatch.setattr(beam, "neighbours", lambda problem, s: every(problem, s)[::5])
    monkeypatch.setattr(beam, "MAX_ROUNDS", 2)
    monkeypatch.setattr(beam, "ROUND_TIMING_S", 0.005)
    beam.clear_memory()
    beam.search_stats.clear()
    with config.override(beam=2, beam_budget_s=60.0):
        yield tmp_path
    beam.clear_memory()


def rand(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def mlp_grad(w, x):
    return fgrad.grad(lambda w: fnp.sum(fnp.tanh(x @ w) ** 2))(w)


def np_mlp_grad(w, x):
    h = np.tanh(x.astype(np.float64) @ w)
    return x.T.astype(np.float64) @ (2 * h * (1 - h ** 2))


def np_scan(w, x):
    c = x.astype(np.float64)
    for _ in range(3):
        c = np.tanh(c @ w)
    return c


CASES = {
    "matmul-relu": (lambda a, b: fnp.maximum(a @ b, 0.0), [(96, 128), (128, 80)],
                    lambda a, b: np.maximum(a.astype(np.float64) @ b, 0), 128),
    "transposed": (lambda a, b: a.T @ b, [(128, 64), (128, 72)], lambda a, b: a.T.astype(np.float64) @ b, 128),
    "batched": (lambda a, b: a @ b, [(4, 40, 64), (4, 64, 48)], lambda a, b: np.matmul(a.astype(np.float64), b), 64),
    "conv": (lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "VALID"), [(4, 6, 12, 12), (8, 6, 3, 3)],
             lambda x, w: np.einsum("nchwij,ocij->nohw",
                                    np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), (3, 3), axis=(2, 3)),
                                    w.astype(np.float64)), 54),
    "mlp-grad": (mlp_grad, [(64, 96), (128, 64)], np_mlp_grad, 128),
    "in-scan": (lambda w, x: lax.scan(lambda c, _: (fnp.tanh(c @ w), None), x, None, length=3)[0],
                [(64, 64), (96, 64)], lambda w, x: np_scan(w, x), 64),
}


def within_reassociation(got, reference, k):
    """|got - reference| <= 4 k eps (|reference| + max |reference|), float32 eps."""
    tol = 4 * k * np.finfo(np.float32).eps
    np.testing.assert_allclose(got, reference, rtol=tol, atol=tol * float(np.max(np.abs(reference))))


@pytest.mark.parametrize("case", list(CASES))
def test_beam_never_changes_results_beyond_reassociation(case, searching):
    f, shapes, expected, k = CASES[case]
    args = [rand(s, seed) for seed, s in enumerate(shapes)]
    with config.override(beam=0):
        default = np.asarray(fgrad.jit(f)(*args))
    assert beam.search_stats["searched"] == 0
    native, reference = compiled_by_path["native"], compiled_by_path["reference"]
    searched = np.asarray(fgrad.jit(f)(*args))
    assert compiled_by_path["native"] > native and compiled_by_path["reference"] == reference
    assert beam.search_stats["searched"] >= 1 and beam.search_stats["rejected"] == 0
    within_reassociation(searched, default, k)
    np.testing.assert_allclose(searched, expected(*args), rtol=2e-4, atol=2e-4 * float(np.max(np.abs(searched))))


def fake_timings(monkeypatch):
    """Timings in which the last schedule of every round is the fastest: the search then
    always moves away from the default, whatever this machine's noise."""
    def runs(exe, data, outs, sites, count, scale=1):
        exe(*data, out=outs)
        return [[1.0 - 0.1 * k for k in range(count)]] * 3
    monkeypatch.setattr(beam, "_timed_runs", runs)


def test_a_searched_schedule_reaches_the_program_and_keeps_it_correct(searching, monkeypatch):
    fake_timings(monkeypatch)
    f = lambda a, b: fnp.maximum(a @ b, 0.0)
    a, b = rand((96, 128), 0), rand((128, 80), 1)
    closed = fgrad.make_jaxpr(f)(a, b)
    with config.override(beam=0):
        plain = compile_jaxpr(closed, "f")
    tuned = compile_jaxpr(closed, "f")
    assert beam.search_stats["searched"] == 1
    kernels = lambda exe: [K.format_kernel(k, structural=True) for k in K.kernels_of(exe.program)]
    assert kernels(tuned) != kernels(plain)
    within_reassociation(tuned(a, b)[0], plain(a, b)[0], 128)
    entry = json.loads(_entries(searching)[0].read_bytes()[len(beam._MAGIC) + 32:])
    tunable = _tunable(f, a, b)
    assert entry["schedule"] != beam.canonical(tunable.problem, tunable.default).to_json()
    assert entry["best_s"] < entry["default_s"]


def _tunable(f, *args):
    """The first contraction ``f`` lowers to, as the lowering records it for BEAM."""
    met = []
    lower_program(fgrad.make_jaxpr(f)(*args), "f", cpu.lowering_target(), tunables=met)
    return met[0]


def _entries(cache_dir):
    return sorted((cache_dir / "beam").glob("*.json"))


def test_choices_are_cached_and_reused(searching, capsys):
    a, b = rand((96, 128), 0), rand((128, 80), 1)
    first = np.asarray(fgrad.jit(lambda a, b: a @ b)(a, b))
    assert beam.search_stats["searched"] == 1 and len(_entries(searching)) == 1
    beam.clear_memory()                      # as in a new process: only the disk cache is left
    with config.override(debug=2):
        again = np.asarray(fgrad.jit(lambda a, b: (a @ b) * 2.0)(a, b))   # another program, same GEMM
    assert beam.search_stats["searched"] == 1 and beam.search_stats["cached"] == 1
    np.testing.assert_array_equal(again, first * 2.0)
    report = capsys.readouterr().err
    assert "[fgrad beam] dot" in report and "default" in report and "searched" in report and "cached" in report


def test_a_beam_build_never_loads_the_default_builds_saved_program(searching):
    f = lambda a, b: a @ b
    a, b = rand((96, 128), 0), rand((128, 80), 1)
    with config.override(beam=0):
        fgrad.jit(f)(a, b)                      # saved on disk for warm starts
    assert not (searching / "beam").exists()
    fgrad.jit(f)(a, b)                          # the same program, BEAM on: searched, not loaded
    assert beam.search_stats["searched"] == 1


@pytest.mark.parametrize("damage", ["bytes", "content"])
def test_a_corrupt_entry_is_searched_again_with_a_warning(searching, damage):
    a, b = rand((96, 128), 0), rand((128, 80), 1)
    expected = np.asarray(fgrad.jit(lambda a, b: a @ b)(a, b))
    (entry,) = _entries(searching)
    if damage == "bytes":
        entry.write_bytes(entry.read_bytes()[:-7] + b"garbage")
    else:                                    # a sound file holding a malformed schedule
        beam._disk_cache.write(entry, json.dumps({"schedule": {"transpose": 1}, "default_s": 1.0}).encode())
    beam.clear_memory()
    with pytest.warns(beam.BeamWarning, match="corrupt"):
        got = np.asarray(fgrad.jit(lambda a, b: (a @ b) + 1.0)(a, b))
    np.testing.assert_allclose(got, expected + 1.0, rtol=1e-5, atol=1e-4)
    assert beam.search_stats["searched"] == 2
    assert beam._read_entry(entry.stem, _tunable(lambda a, b: a @ b, a, b)) is not None    # rewritten, sound


def two_gemms(a, b, c):
    return (a @ b) @ c


def test_the_budget_stops_the_search_and_the_program_stays_correct(searching, monkeypatch):
    a, b, c = rand((96, 128), 0), rand((128, 80), 1), rand((80, 64), 2)
    expected = (a.astype(np.float64) @ b) @ c
    with config.override(beam_budget_s=1e-6):          # spent before any search starts
        got = np.asarray(fgrad.jit(two_gemms)(a, b, c))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)
    assert beam.search_stats["searched"] == 0 and beam.search_stats["skipped"] == 2
    assert _entries(searching) == []
    checks, real_spent = iter([False]), beam._Progress.spent     # spent once the first search has begun
    monkeypatch.setattr(beam._Progress, "spent", lambda self: next(checks, True))
    # every move, so that the first round always leaves new neighbours to try, whatever the default
    monkeypatch.setattr(beam, "neighbours", gemm_schedule.neighbours)
    got = np.asarray(fgrad.jit(lambda *xs: two_gemms(*xs))(a, b, c))   # not saved before: searched now
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)
    assert beam.search_stats["unfinished"] == 1 and beam.search_stats["skipped"] == 3
    assert len(_entries(searching)) == 1                # its best so far is kept; the other waits
    monkeypatch.setattr(beam._Progress, "spent", real_spent)
    got = np.asarray(fgrad.jit(lambda *xs: two_gemms(*xs))(a, b, c))       # the next compile goes on
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)
    assert beam.search_stats["cached"] == 1 and beam.search_stats["searched"] == 2
    assert len(_entries(searching)) == 2


def test_beam_zero_searches_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("FGRAD_CACHE_DIR", str(tmp_path))
    beam.search_stats.clear()
    with config.override(beam=0):
        fgrad.jit(lambda a, b: a @ b)(rand((96, 128), 0), rand((128, 80), 1))
    assert not beam.search_stats and not (tmp_path / "beam").exists()


def test_a_long_search_shows_progress(searching, monkeypatch, capsys):
    monkeypatch.setattr(beam, "PROGRESS_AFTER_S", 0.0)
    fgrad.jit(lambda a, b: a @ b)(rand((96, 128), 0), rand((128, 80), 1))
    err = capsys.readouterr().err
    assert "\r[fgrad beam] contraction 1/1 dot" in err and "round 1" in err and err.endswith("\n")


def test_a_schedule_that_cannot_be_timed_keeps_the_default(searching, monkeypatch):
    def broken(program, target=None):
        raise RuntimeError("LLVM could not compile it")
    monkeypatch.setattr(cpu, "compile_timed", broken)
    a, b = rand((96, 128), 0), rand((128, 80), 1)
    with pytest.warns(beam.BeamWarning, match="could not time"):
        got = np.asarray(fgrad.jit(lambda a, b: a @ b)(a, b))
    np.testing.assert_allclose(got, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-3)
    assert beam.search_stats["failed"] == 1 and _entries(searching) == []


def test_a_schedule_whose_result_disagrees_is_never_chosen(searching, monkeypatch):
    fake_timings(monkeypatch)                             # the others look faster...
    monkeypatch.setattr(beam, "_agrees", lambda result, reference, k: result is reference)   # ...but disagree
    a, b = rand((96, 128), 0), rand((128, 80), 1)
    fgrad.jit(lambda a, b: a @ b)(a, b)
    assert beam.search_stats["rejected"] > 0
    entry = json.loads(_entries(searching)[0].read_bytes()[len(beam._MAGIC) + 32:])
    tunable = _tunable(lambda a, b: a @ b, a, b)
    assert entry["schedule"] == beam.canonical(tunable.problem, tunable.default).to_json()


def test_agreement_bound_is_reassociation():
    ref = np.full((4, 4), 100.0, np.float32)
    k, eps = 100, np.finfo(np.float32).eps
    assert beam._agrees(ref + np.float32(100 * k * eps), ref, k)        # 1 k eps |ref|: reassociation
    assert not beam._agrees(ref * np.float32(1.001), ref, k)            # 0.1%: a wrong sum


def test_settings_from_the_environment_and_update(monkeypatch):
    monkeypatch.setenv("FGRAD_BEAM", "4")
    monkeypatch.setenv("FGRAD_BEAM_BUDGET_S", "2.5")
    fresh = Config()
    assert (fresh.beam, fresh.beam_budget_s) == (4, 2.5)
    for name, value in (("FGRAD_BEAM", "-1"), ("FGRAD_BEAM", "two"), ("FGRAD_BEAM_BUDGET_S", "0")):
        monkeypatch.setenv(name, value)
        with pytest.raises(ValueError, match=name):
            Config()
        monkeypatch.delenv(name)
    with pytest.raises(ValueError, match="beam width"):
        fresh.update("beam", -2)
    with pytest.raises(ValueError, match="beam_budget_s"):
        fresh.update("beam_budget_s", 0)
    fresh.update("beam", 3)
    assert fresh.read("beam") == 3
