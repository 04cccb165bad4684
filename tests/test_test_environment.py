"""The test suite pins fgrad's environment variables (tests/conftest.py), so a user's shell that
sets e.g. FGRAD_BACKEND=cpu or FGRAD_CPU_DEVICES=4 does not change which tests pass."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# a test whose outcome depends on FGRAD_BACKEND when it is not pinned
PROBE = "tests/backends/test_cuda_shard.py::test_one_gpu_mesh_never_loads_nccl"


def _run_probe(**env):
    full_env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pytest", PROBE, "-q", "-p", "no:cacheprovider"],
                          cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("variables", [{"FGRAD_BACKEND": "cpu"},
                                       {"FGRAD_CPU_DEVICES": "3", "FGRAD_DEBUG": "1"}])
def test_user_environment_does_not_change_outcomes(variables):
    result = _run_probe(**variables)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def test_probe_depends_on_the_environment_when_not_pinned():
    """FGRAD_TEST_KEEP_ENV=1 keeps the user's variables, and then the probe fails: the test above can fail."""
    result = _run_probe(FGRAD_BACKEND="cpu", FGRAD_TEST_KEEP_ENV="1")
    assert result.returncode != 0 and "test_one_gpu_mesh_never_loads_nccl" in result.stdout
