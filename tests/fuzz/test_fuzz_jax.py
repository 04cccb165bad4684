"""The fuzzer's programs against JAX (only where JAX is installed): values, grad and HVP.

At kinks (|x| at 0, ties, clip bounds) JAX's convention is the oracle. Known,
not yet fixed disagreements are listed in tests/fuzz/known_failures.py.
"""
import pytest

pytest.importorskip("jax")

from tests.fuzz.jax_oracle import compare_with_jax  # noqa: E402
from tests.fuzz.known_failures import KNOWN_JAX  # noqa: E402
from tests.fuzz.programs import generate  # noqa: E402

CI_SEEDS = range(0, 60)
SLOW_SEEDS = range(60, 1060)
MAX_OPS = 4


def _params(seeds, marks=()):
    return [pytest.param(s, marks=[*marks, *([pytest.mark.xfail(reason=KNOWN_JAX[s], strict=False)]
                                             if s in KNOWN_JAX else [])]) for s in seeds]


def _run(seed):
    prog = generate(seed, max_ops=MAX_OPS)
    failures = compare_with_jax(prog)
    if failures:
        detail = "\n".join(f"{f.category(prog)}: {f.detail}" for f in failures)
        pytest.fail(f"{detail}\n\n--- repro ---\n{prog.source()}", pytrace=False)


@pytest.mark.parametrize("seed", _params(CI_SEEDS))
def test_fuzz_vs_jax(seed):
    _run(seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", _params(SLOW_SEEDS))
def test_fuzz_vs_jax_slow(seed):
    _run(seed)
