"""Fuzzer seeds that fail because of fgrad bugs not fixed on this branch yet: the ONE list.

Each entry names the bug. ``tests/fuzz/test_fuzz.py`` and ``test_fuzz_jax.py`` mark
these seeds xfail (not strict, so a merge that fixes a bug does not break CI);
delete an entry once its bug is fixed (``pytest tests/fuzz -rX`` lists the XPASSes).
"""

SORT_NOT_NATIVE = "sort/argsort have no native lowering: jit runs them on the reference path"
GROUPED_CONV_NOT_NATIVE = ("grouped conv (feature_group_count > 1): the weight gradient has no native lowering "
                           "(jit(grad) runs it on the reference path)")

# seed -> bug, for the seeds tests/fuzz/test_fuzz.py runs (generate(seed, max_ops=4))
KNOWN = {
    19: SORT_NOT_NATIVE, 53: SORT_NOT_NATIVE, 63: GROUPED_CONV_NOT_NATIVE, 81: SORT_NOT_NATIVE,
    113: SORT_NOT_NATIVE, 126: SORT_NOT_NATIVE, 134: GROUPED_CONV_NOT_NATIVE,
    148: SORT_NOT_NATIVE, 168: SORT_NOT_NATIVE, 175: SORT_NOT_NATIVE, 183: SORT_NOT_NATIVE,
    193: GROUPED_CONV_NOT_NATIVE, 196: SORT_NOT_NATIVE, 220: SORT_NOT_NATIVE, 228: SORT_NOT_NATIVE,
    243: SORT_NOT_NATIVE, 253: GROUPED_CONV_NOT_NATIVE, 254: SORT_NOT_NATIVE, 262: GROUPED_CONV_NOT_NATIVE,
    281: SORT_NOT_NATIVE, 284: SORT_NOT_NATIVE, 289: SORT_NOT_NATIVE, 298: SORT_NOT_NATIVE,
}

# seed -> bug, for the seeds tests/fuzz/test_fuzz_jax.py runs
KNOWN_JAX: dict[int, str] = {}
