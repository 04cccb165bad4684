"""The differential fuzzer on a fixed seed set: eager vs jit vs vmap vs finite differences.

Each seed is one random program (tests/fuzz/programs.py); on failure the message
carries the program as a standalone repro. Seeds failing because of known, not
yet fixed bugs are listed in tests/fuzz/known_failures.py. Long runs with
shrinking: ``python scripts/fuzz.py --seeds 0:5000 --out /tmp/fuzz``.
"""
import os
import subprocess
import sys

import pytest

from tests.fuzz.checks import check_program
from tests.fuzz.harness import MAX_OPS, run_seed, seed_params
from tests.fuzz.known_failures import KNOWN, KNOWN_EXTENDED
from tests.fuzz.programs import generate

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CI_SEEDS = range(0, 300)
SLOW_SEEDS = range(300, 2300)
# programs that also draw the EXTENDED groups (linear algebra, scans, special functions, FFTs, gathers)
EXTENDED_CI_SEEDS = range(0, 150)
EXTENDED_SLOW_SEEDS = range(150, 1150)


@pytest.mark.parametrize("seed, extended", seed_params(CI_SEEDS, KNOWN)
                         + seed_params(EXTENDED_CI_SEEDS, KNOWN_EXTENDED, extended=True))
def test_fuzz(seed, extended):
    run_seed(seed, check_program, extended)


@pytest.mark.slow
@pytest.mark.parametrize("seed, extended", seed_params(SLOW_SEEDS, KNOWN)
                         + seed_params(EXTENDED_SLOW_SEEDS, KNOWN_EXTENDED, extended=True))
def test_fuzz_slow(seed, extended):
    run_seed(seed, check_program, extended)


def test_generator_is_deterministic():
    """The same seed gives the same program, in any process (string hashing is randomized)."""
    code = ("from tests.fuzz.programs import generate; "
            "print([generate(s, max_ops=4, extended=e).source() for s in range(40) for e in (False, True)])")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": str(h), "PYTHONPATH": ROOT}).stdout
            for h in (1, 2)}
    assert len(outs) == 1


def test_generator_covers_the_op_groups():
    ops = {op for s in range(300) for op in generate(s, max_ops=MAX_OPS).ops}
    for needed in ("arctan2", "conv", "reduce_window_max", "dynamic_slice", "at_add", "sort", "scan",
                   "cond", "while_loop", "einsum", "concatenate", "mask_index", "cumsum"):
        assert any(op.startswith(needed) for op in ops), needed
    extended = {op for s in EXTENDED_CI_SEEDS for op in generate(s, max_ops=MAX_OPS, extended=True).ops}
    for needed in ("eigvalsh", "eigh_vectors", "solve", "qr", "svdvals", "triangular_solve", "cummax",
                   "cumlogsumexp", "lgamma", "igamma", "zeta", "erf_inv", "take", "take_along_axis",
                   "searchsorted", "fft_real", "irfft"):
        assert needed in extended, needed


def test_extended_groups_leave_the_default_programs_alone():
    """The extended groups have no weight in the default mix: each seed's program is the one
    it was before they existed (recorded for three seeds)."""
    assert generate(5652, max_ops=MAX_OPS).ops == ["conv", "cbrt", "add"]
    assert generate(6173, max_ops=MAX_OPS).ops == ["tanh", "true_divide"]
    assert generate(0, max_ops=MAX_OPS).ops == ["expm1", "einsum"]
