"""The fuzzer's programs against JAX (only where JAX is installed): values, grad and HVP.

At kinks (|x| at 0, ties, clip bounds) JAX's convention is the oracle. Known,
not yet fixed disagreements are listed in tests/fuzz/known_failures.py.
"""
import pytest

pytest.importorskip("jax")

from tests.fuzz.harness import run_seed, seed_params  # noqa: E402
from tests.fuzz.jax_oracle import compare_with_jax  # noqa: E402
from tests.fuzz.known_failures import KNOWN_EXTENDED, KNOWN_JAX  # noqa: E402

CI_SEEDS = range(0, 60)
SLOW_SEEDS = range(60, 1060)
EXTENDED_CI_SEEDS = range(0, 40)
EXTENDED_SLOW_SEEDS = range(40, 1040)


@pytest.mark.parametrize("seed, extended", seed_params(CI_SEEDS, KNOWN_JAX)
                         + seed_params(EXTENDED_CI_SEEDS, KNOWN_EXTENDED, extended=True))
def test_fuzz_vs_jax(seed, extended):
    run_seed(seed, compare_with_jax, extended)


@pytest.mark.slow
@pytest.mark.parametrize("seed, extended", seed_params(SLOW_SEEDS, KNOWN_JAX)
                         + seed_params(EXTENDED_SLOW_SEEDS, KNOWN_EXTENDED, extended=True))
def test_fuzz_vs_jax_slow(seed, extended):
    run_seed(seed, compare_with_jax, extended)
