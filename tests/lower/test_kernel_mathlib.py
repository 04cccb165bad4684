"""Accuracy of the vectorised transcendentals (fgrad.lower.mathlib) as compiled by the CPU backend."""
from __future__ import annotations

import numpy as np
import pytest

from fgrad.lower import kernel as K
from fgrad.lower import mathlib
from fgrad.lower.interpret import run_kernel
from tests.lower.util import kernel_program, run_llvm

RNG = np.random.default_rng(0)
SPECIALS = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 1e-40, -1e-40, 1e-30, -1e-30]


def _logspace(lo: float, hi: float, n: int) -> np.ndarray:
    return 10.0 ** RNG.uniform(lo, hi, n)


def domain(name: str, dtype: np.dtype) -> np.ndarray:
    big = 38 if dtype == K.float32 else 300
    tiny = -44 if dtype == K.float32 else -320
    n = 50_000
    parts = {
        "exp": [RNG.uniform(-110, 92, n), RNG.uniform(-760, 720, n // 4)],
        "expm1": [RNG.uniform(-120, 92, n), RNG.uniform(-1, 1, n), _logspace(tiny, 0, n // 4)],
        "log": [_logspace(tiny, big, n), RNG.uniform(0.5, 2, n), -_logspace(-5, 5, 100)],
        "log1p": [_logspace(tiny, big, n), -_logspace(tiny, -0.0001, n), RNG.uniform(-1, 1, n)],
        "tanh": [RNG.uniform(-25, 25, n), _logspace(tiny, 0, n // 4)],
        "logistic": [RNG.uniform(-120, 120, n), RNG.uniform(-800, 800, n // 4)],
        "sin": [RNG.uniform(-1e4, 1e4, n), _logspace(5, big, n // 20), np.arange(-64, 64) * np.pi / 2],
    }
    parts["cos"] = parts["sin"]
    x = np.concatenate([np.concatenate(parts[name]), SPECIALS])
    x = np.concatenate([x, -x]) if name in ("sin", "cos", "tanh", "expm1") else x
    with np.errstate(over="ignore"):
        return x.astype(dtype)


def reference(name: str, x: np.ndarray) -> np.ndarray:
    """The exact result rounded to x's dtype (float64 NumPy for float32; for float64, NumPy itself)."""
    wide = x.astype(np.float64)
    with np.errstate(all="ignore"):
        if name == "logistic":
            out = np.where(wide >= 0, 1 / (1 + np.exp(-wide)), np.exp(wide) / (1 + np.exp(wide)))
        else:
            out = getattr(np, name)(wide)
    return out.astype(x.dtype)


def ulp_error(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    same = (got == ref) | (np.isnan(got) & np.isnan(ref))
    with np.errstate(all="ignore"):
        err = np.abs(got.astype(np.float64) - ref.astype(np.float64)) / np.spacing(np.abs(ref))
    return np.where(same, 0.0, err)


def compiled(name: str, dtype: np.dtype, n: int) -> K.Program:
    x, y = K.Param("x", dtype, n), K.Param("y", dtype, n)
    i = K.Var("i")
    body = (K.Range(i, 0, n, (y.store(i, K.op(name, x[i])),), vectorize=K.AUTO, unroll=2),)
    return kernel_program(K.Kernel(f"k_{name}", (x, y), body), 1)


@pytest.mark.parametrize("dtype,max_ulp", [(K.float32, 4), (K.float64, 8)], ids=["f32", "f64"])
@pytest.mark.parametrize("name", ["exp", "expm1", "log", "log1p", "tanh", "logistic", "sin", "cos"])
def test_accuracy(name, dtype, max_ulp):
    x = domain(name, dtype)
    (got,) = run_llvm(compiled(name, dtype, x.size), x)
    ref = reference(name, x)
    err = ulp_error(got, ref)
    worst = int(np.nanargmax(err))
    assert err[worst] <= max_ulp, f"{name}({x[worst]!r}) = {got[worst]!r}, expected {ref[worst]!r}"


@pytest.mark.parametrize("name", ["exp", "log", "tanh", "sin"])
def test_expansion_is_target_independent_ir(name):
    """The interpreter runs the expanded IR too, and agrees with the compiled code bit for bit."""
    x = domain(name, K.float32)[::997].copy()
    n = x.size
    px, py = K.Param("x", K.float32, n), K.Param("y", K.float32, n)
    i = K.Var("i")
    kern = K.Kernel("expanded", (px, py), (K.Range(i, 0, n, (py.store(i, mathlib.expand(name, (px[i],))),)),))
    y = np.empty_like(x)
    run_kernel(kern, x, y)
    (got,) = run_llvm(kernel_program(kern, 1), x)
    finite = np.abs(x) < mathlib.SIN_COS_FAST_LIMIT
    np.testing.assert_array_equal(got[finite], y[finite])
    assert ulp_error(y[finite], reference(name, x[finite])).max() <= 4


def test_float32_expm1_polynomial_is_within_a_fifth_of_an_ulp():
    """The fitted float32 polynomial (5 coefficients in place of the Taylor series' 7) stays
    within 2e-8 relative error of expm1 on the reduced range |r| <= ln2/2, evaluated exactly."""
    r = np.linspace(-np.log(2) / 2, np.log(2) / 2, 20001)
    r = r[r != 0]
    p = np.polynomial.polynomial.polyval(r, mathlib._EXPM1_F32)
    approx = r + r * r * p
    exact = np.expm1(r)
    assert np.max(np.abs(approx - exact) / np.abs(exact)) < 2e-8
