"""GPU GEMM templates (``fgrad.lower.cuda_contraction``): their spec against NumPy, TF32
rounding, and — where nvcc is on PATH — both kernels compile for sm_90 (the TF32 one to
tensor-core ``mma`` instructions). Their results on a GPU are checked by the ``cuda`` tests
in tests/backends/test_cuda_runtime.py."""
from __future__ import annotations

import pathlib
import shutil
import subprocess
import tempfile

import numpy as np
import pytest
from hypothesis import given, strategies as st

from fgrad.lower.cuda_contraction import GemmSpec, render_gemm, round_to_tf32

NVCC = shutil.which("nvcc")


@given(st.integers(1, 3), st.integers(1, 70), st.integers(1, 70), st.integers(1, 40), st.booleans(), st.booleans())
def test_spec_reference_is_dot_general(batch, m, n, k, lhs_t, rhs_t):
    rng = np.random.default_rng(0)
    lshape = (batch, k, m) if lhs_t else (batch, m, k)
    rshape = (batch, n, k) if rhs_t else (batch, k, n)
    a, b = rng.standard_normal(lshape).astype(np.float32), rng.standard_normal(rshape).astype(np.float32)
    dims = (((1 if lhs_t else 2,), (2 if rhs_t else 1,)), ((0,), (0,)))
    spec = GemmSpec.for_dot_general(lshape, rshape, dims, np.float32)
    c = np.empty(spec.sizes[2], np.float32)
    spec.reference(a.reshape(-1), b.reshape(-1), c)
    at = a.transpose(0, 2, 1) if lhs_t else a
    bt = b.transpose(0, 2, 1) if rhs_t else b
    np.testing.assert_allclose(c.reshape(batch, m, n), at @ bt, rtol=1e-5, atol=1e-5)
    assert spec.sizes[:2] == (a.size, b.size)


def test_unsupported_contractions_give_none_and_bad_specs_raise():
    assert GemmSpec.for_dot_general((2, 3, 4), (4, 5), (((2,), (0,)), ((), ())), np.float32) is None
    assert GemmSpec.for_dot_general((2, 3, 4), (3, 4, 5), (((1, 2), (0, 1)), ((), ())), np.float32) is None
    with pytest.raises(ValueError, match="TF32 applies to float32"):
        GemmSpec(1, 2, 2, 2, np.float64, (0, 2, 1), (0, 2, 1), "tf32")
    with pytest.raises(TypeError, match="float32 or float64"):
        GemmSpec(1, 2, 2, 2, np.int32, (0, 2, 1), (0, 2, 1))


def test_round_to_tf32():
    x = np.array([1.0, 1 + 2 ** -11, 1 + 2 ** -10, 1 + 3 * 2 ** -11, -(1 + 2 ** -11), np.inf, np.nan, 3e38],
                 np.float32)
    r = round_to_tf32(x)
    assert r[0] == 1.0 and r[1] == 1 + 2 ** -10 and r[2] == 1 + 2 ** -10   # ties away from zero
    assert r[3] == 1 + 2 ** -9 and r[4] == -(1 + 2 ** -10)
    assert np.isinf(r[5]) and np.isnan(r[6]) and np.isfinite(r[7])
    bits = r[np.isfinite(r)].view(np.uint32)
    assert not np.any(bits & 0x1FFF)


@pytest.mark.skipif(NVCC is None, reason="needs nvcc")
@pytest.mark.parametrize("precision", ["highest", "tf32"])
def test_gemm_kernels_compile(precision):
    spec = GemmSpec.for_dot_general((3, 100, 70), (3, 70, 50), (((2,), (1,)), ((0,), (0,))), np.float32, precision)
    source, grid, block = render_gemm(spec, "fg_gemm")
    assert grid == (1, 2, 3) and block == ((128 if precision == "tf32" else 256), 1, 1)
    with tempfile.TemporaryDirectory() as tmp:
        cu, ptx = pathlib.Path(tmp) / "g.cu", pathlib.Path(tmp) / "g.ptx"
        cu.write_text(source)
        result = subprocess.run([NVCC, "--ptx", "-arch=sm_90", "-o", str(ptx), str(cu)],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        text = ptx.read_text()
    assert ".entry fg_gemm(" in text
    if precision == "tf32":
        assert "mma" in text and "tf32" in text
    else:
        assert "fma.rn.f32" in text and "mma" not in text
