"""Record JAX 0.10.2's outputs for fgrad.scipy's optimize / fft / integrate / interpolate tests
into tests/scipy/data/scipy_more_jax.npz. Run from the repository root with the JAX environment:
``/work/jaxenv/bin/python scripts/record_jax_scipy_more.py``.

* minimize(method="BFGS") on tests/scipy/optimize_cases.py's problems, float32 (64-bit off),
  float64 and float32 (64-bit on): every OptimizeResults field, with its dtype;
* the output dtypes of dct/idct/trapezoid/RegularGridInterpolator on integer, float16 and
  complex inputs (where JAX's dtypes differ from SciPy's), with their values."""
import sys
from pathlib import Path

import numpy as np

import jax
import jax.numpy as jnp
from jax.scipy import fft, integrate, interpolate, optimize

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "scipy"))
from optimize_cases import CASES, DATA, FIELDS, objectives  # noqa: E402

out = {}


def record_minimize(tag, dtype):
    funs = objectives(jnp)
    for name, (objective, x0, arg_names, options) in CASES.items():
        args = tuple(jnp.asarray(DATA[a], dtype) for a in arg_names)
        result = optimize.minimize(funs[objective], jnp.asarray(x0, dtype), args, method="BFGS", options=options)
        for field in FIELDS:
            value = np.asarray(getattr(result, field))
            out[f"minimize/{tag}/{name}/{field}"] = value


def record_dtypes(tag):
    ints = np.arange(6, dtype=np.int32).reshape(2, 3)
    half = (np.arange(6, dtype=np.float16) / 3).reshape(2, 3)
    cplx = (np.arange(6) + 1j * np.arange(6)[::-1]).reshape(2, 3).astype(np.complex64)
    for kind, x in (("int", ints), ("half", half), ("complex", cplx)):
        out[f"dct/{tag}/{kind}"] = np.asarray(fft.dct(x))
        out[f"idct/{tag}/{kind}"] = np.asarray(fft.idct(x, norm="ortho"))
        out[f"dctn/{tag}/{kind}"] = np.asarray(fft.dctn(x))
        out[f"idctn/{tag}/{kind}"] = np.asarray(fft.idctn(x, s=(3, 2)))
    out[f"trapezoid/{tag}/int"] = np.asarray(integrate.trapezoid(ints))
    out[f"trapezoid/{tag}/int_x"] = np.asarray(integrate.trapezoid(ints, np.array([0, 2, 5], np.int32)))
    out[f"trapezoid/{tag}/half"] = np.asarray(integrate.trapezoid(half, dx=0.5))
    grid = (np.array([0, 1, 3], np.int32), np.array([0, 2], np.int32))
    interp = interpolate.RegularGridInterpolator(grid, ints.T)
    points = np.array([[0.5, 1.0], [2.0, 0.5], [4.0, 1.0]], np.float32)
    out[f"interp/{tag}/int_values"] = np.asarray(interp(points))
    out[f"interp/{tag}/int_points"] = np.asarray(interp(np.array([[1, 2], [0, 0]], np.int32)))
    out[f"interp/{tag}/tuple"] = np.asarray(interp((points[:, 0], points[:, 1])))
    out[f"interp/{tag}/nearest_extrapolate"] = np.asarray(
        interpolate.RegularGridInterpolator(grid, ints.T, "nearest", fill_value=None)(points * 1.7 - 0.6))


record_minimize("float32", np.float32)
record_dtypes("x32")
jax.config.update("jax_enable_x64", True)
record_minimize("float64", np.float64)
record_minimize("float32_x64", np.float32)
record_dtypes("x64")
np.savez_compressed(ROOT / "tests" / "scipy" / "data" / "scipy_more_jax.npz", **out)
print(len(out), "arrays")
for key in sorted(out):
    if key.endswith(("/nit", "/status", "/success")):
        print(key, out[key], out[key].dtype)
