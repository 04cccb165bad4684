"""GPU GEMM templates (``fgrad.lower.cuda_contraction``): their spec against NumPy, TF32
rounding, both kernels run on the host against NumPy (``tests/lower/cuda_host.py``: real
barriers, emulated wmma) and — where nvcc is on PATH — compile for sm_90 (the TF32 one to
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


# --- the templates run on the host (tests/lower/cuda_host.py: real barriers, emulated wmma) ----

from tests.lower.cuda_host import GXX, HostModule  # noqa: E402

GEMM_CASES = [((1, 64, 64, 16), False, False), ((3, 100, 70, 50), False, False), ((2, 33, 130, 17), True, False),
              ((1, 5, 7, 3), False, True), ((2, 70, 9, 80), True, True)]


@pytest.mark.skipif(GXX is None, reason="needs g++")
@pytest.mark.parametrize("precision", ["highest", "tf32"])
def test_gemm_kernels_run_on_the_host_like_numpy(precision, tmp_path):
    """Both templates (64x64 tiles, 16-deep shared-memory slabs, ragged edges, transposed and
    batched operands) give the product: exactly-rounded float32 sums for 'highest', and for
    'tf32' the product of the operands rounded to TF32."""
    rng = np.random.default_rng(0)
    sources, runs = [], []
    for n, ((batch, m, k, nn), lhs_t, rhs_t) in enumerate(GEMM_CASES):
        lshape = (batch, k, m) if lhs_t else (batch, m, k)
        rshape = (batch, nn, k) if rhs_t else (batch, k, nn)
        dims = (((1 if lhs_t else 2,), (2 if rhs_t else 1,)), ((0,), (0,)))
        spec = GemmSpec.for_dot_general(lshape, rshape, dims, np.float32, precision)
        source, grid, block = render_gemm(spec, f"gemm{n}")
        sources.append(source)
        a = rng.standard_normal(lshape).astype(np.float32)
        b = rng.standard_normal(rshape).astype(np.float32)
        runs.append((f"gemm{n}", a, b, lhs_t, rhs_t, grid, block[0], (batch, m, nn)))
    module = HostModule("\n".join(dict.fromkeys(s for s in sources)), tmp_path)
    for name, a, b, lhs_t, rhs_t, grid, block, out_shape in runs:
        c = np.full(out_shape, np.nan, np.float32)
        module.launch(name, [a, b, c], grid, block)
        at = a.transpose(0, 2, 1) if lhs_t else a
        bt = b.transpose(0, 2, 1) if rhs_t else b
        if precision == "tf32":
            at, bt = round_to_tf32(at), round_to_tf32(bt)
        want = at.astype(np.float64) @ bt.astype(np.float64)
        np.testing.assert_allclose(c, want, rtol=2e-5, atol=2e-5 * np.sqrt(a.shape[-1]), err_msg=name)
