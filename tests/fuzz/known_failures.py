"""Fuzzer seeds that fail because of known fgrad bugs not fixed yet: the ONE list.

Each entry names the bug. ``tests/fuzz/test_fuzz.py`` and ``test_fuzz_jax.py`` mark
these seeds xfail (not strict, so a merge that fixes a bug does not break CI);
delete an entry once its bug is fixed (``pytest tests/fuzz -rX`` lists the XPASSes).
Empty now: every bug the fuzzer found so far is fixed (sort and grouped-conv weight
gradients compile natively, weak scalar promotion, logsumexp over empty axes, hypot).
"""

# seed -> bug, for the seeds tests/fuzz/test_fuzz.py runs (generate(seed, max_ops=4))
KNOWN: dict[int, str] = {}

# seed -> bug, for the seeds tests/fuzz/test_fuzz_jax.py runs
KNOWN_JAX: dict[int, str] = {}

# seed -> bug, for the extended programs (generate(seed, max_ops=4, extended=True)) both files run
KNOWN_EXTENDED: dict[int, str] = {}
