import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("nightly", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

# Variables that change what fgrad does (device, compile path, precision, logging). A user's
# shell may set them; the tests pin the defaults so that their outcome does not depend on it.
# FGRAD_TEST_KEEP_ENV=1 keeps them (e.g. to run the suite with FGRAD_JIT_BACKEND=reference).
PINNED_VARIABLES = ("FGRAD_BACKEND", "FGRAD_JIT_BACKEND", "FGRAD_MATMUL_PRECISION", "FGRAD_CPU_DEVICES",
                    "FGRAD_DEBUG", "FGRAD_CUDA_GRAPHS", "FGRAD_CUDA_LAUNCH", "FGRAD_CUDA_OPTIONS",
                    "FGRAD_CUDA_MAX_LOCAL_BYTES", "FGRAD_NCCL_LIBRARY", "FGRAD_COLLECTIVE_TIMEOUT", "FGRAD_BEAM",
                    "FGRAD_BEAM_BUDGET_S")
UNSET_VARIABLES = ([] if os.environ.get("FGRAD_TEST_KEEP_ENV") == "1"
                   else [name for name in PINNED_VARIABLES if os.environ.pop(name, None) is not None])

# Compiled code kept on disk by an earlier run (``~/.cache/fgrad``) would let programs load
# without compiling, so tests that count compilations or inspect what was compiled would depend
# on what ran before. Each test process gets an empty cache of its own instead; the tests of the
# cache itself point FGRAD_CACHE_DIR elsewhere with monkeypatch.
if os.environ.get("FGRAD_TEST_KEEP_ENV") != "1":
    import atexit
    import shutil
    import tempfile
    _TEST_CACHE_DIR = tempfile.mkdtemp(prefix="fgrad-test-cache-")
    os.environ["FGRAD_CACHE_DIR"] = _TEST_CACHE_DIR
    atexit.register(shutil.rmtree, _TEST_CACHE_DIR, ignore_errors=True)


# Tiered compilation (fgrad.backends.cpu.tiered) swaps kernels' final builds in from a background
# thread at times of its own; results never change, but tests that count compilations or read
# which code is loaded would depend on the timing. It is off here and on in the tests of it
# (tests/backends/test_tiered.py), which set FGRAD_TIERED with monkeypatch.
if os.environ.get("FGRAD_TEST_KEEP_ENV") != "1":
    os.environ["FGRAD_TIERED"] = "0"


def pytest_report_header(config):
    if UNSET_VARIABLES:
        return (f"fgrad: unset {', '.join(UNSET_VARIABLES)} for the tests (FGRAD_TEST_KEEP_ENV=1 keeps them)")
    return None
