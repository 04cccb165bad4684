"""The dtype x operation coverage table of fgrad.numpy / fgrad.lax (issue 17's closing table).

For every operation below and every dtype fgrad has, it runs the operation eagerly on small
random inputs of that dtype and then under ``fgrad.jit``, and writes one mark per cell:

- ``n``: jit compiled it natively and gave eager's result (bit for bit; NaNs equal);
- ``~``: natively, within 64 ulp of eager's result, scaled to its largest value (compiled
  transcendental functions are polynomials, and compiled sums associate differently);
- ``r``: jit ran it on the reference path (a ``ReferencePathWarning``), with eager's result;
- ``-``: the dtype is refused with a TypeError, eagerly (as JAX refuses it);
- ``E``: eager and jit differ, or jit failed where eager worked (a defect: the script exits 1).

    python scripts/dtype_coverage.py             # markdown table on stdout (64-bit enabled)
"""
from __future__ import annotations

import sys
import warnings

import ml_dtypes
import numpy as np

import fgrad
from fgrad import lax
from fgrad import numpy as fnp
from fgrad.compile import pipeline

DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16",
          "bfloat16", "float32", "float64", "complex64", "complex128"]

UNARY = ["negative", "abs", "sign", "exp", "log", "log1p", "expm1", "sqrt", "sin", "cos", "tan", "tanh", "arcsin",
         "arctan", "sinh", "arcsinh", "arctanh", "floor", "ceil", "round", "isnan", "isfinite", "square",
         "reciprocal", "logical_not", "invert", "conj", "real", "imag", "cbrt", "exp2", "log2", "signbit"]
BINARY = ["add", "subtract", "multiply", "divide", "floor_divide", "remainder", "power", "maximum", "minimum",
          "arctan2", "hypot", "equal", "less", "logical_and", "bitwise_and", "left_shift", "copysign",
          "nextafter", "logaddexp"]
REDUCE = ["sum", "prod", "max", "min", "mean", "var", "argmax", "cumsum", "cumprod", "any", "all"]
OTHER = {
    "matmul": lambda x: x @ x.T,
    "sort": lambda x: fnp.sort(x, axis=-1),
    "argsort": lambda x: fnp.argsort(x, axis=-1),
    "where": lambda x: fnp.where(x == x[0, 0], x, x[1, 1]),
    "take": lambda x: fnp.take(x, fnp.asarray([2, 0, 5]), axis=1),
    "at[].add": lambda x: x.at[fnp.asarray([0, 0, 1])].add(x[:3]),
    "at[].max": lambda x: x.at[fnp.asarray([0, 0, 1])].max(x[:3]),
    "concatenate": lambda x: fnp.concatenate([x, x[::-1]], axis=1),
    "transpose": lambda x: x.T[::2],
    "astype float32": lambda x: x.astype(fnp.float32),
    "astype int32": lambda x: x.astype(fnp.int32),
    "cast to own from f32": lambda x: fnp.ones(x.shape, fnp.float32).astype(x.dtype),
    "reduce_precision": lambda x: lax.reduce_precision(x, 5, 10),
    "fft.fft": lambda x: fnp.fft.fft(x),
    "linalg.inv": lambda x: fnp.linalg.inv(x[:, :3] @ x[:, :3].T + 4 * fnp.eye(3, dtype=x.dtype)),
    "linalg.svd": lambda x: fnp.linalg.svd(x, compute_uv=False),
    "conv": lambda x: lax.conv_general_dilated(x[None, None], x[None, None, :2, :2], (1, 1), "VALID"),
}


def sample(dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    """A 3x6 array of ``dtype``: small values of both signs (positive for unsigned), 0 and 1 included."""
    base = rng.integers(-3, 4, size=(3, 6)).astype(np.float64) + rng.random((3, 6)) * (dtype.kind in "fcV")
    base[0, :2] = (0, 1)
    if dtype.kind == "b":
        return base > 0
    if dtype.kind == "u":
        return np.abs(base).astype(dtype)
    if dtype.kind == "c":
        return (base + 1j * rng.standard_normal((3, 6))).astype(dtype)
    return base.astype(dtype)


def compare(a, b) -> str:
    """'n' (equal), '~' (within 64 ulp of the result's scale) or 'E'."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return "E"
    if not (a.dtype.kind in "fc" or a.dtype == ml_dtypes.bfloat16):
        return "n" if np.array_equal(a, b) else "E"
    wide = np.complex128 if a.dtype.kind == "c" else np.float64
    a64, b64 = a.astype(wide), b.astype(wide)
    nan = np.isnan(a64) | np.isnan(b64)
    if not np.array_equal(np.isnan(a64), np.isnan(b64)):
        return "E"
    if np.all((a64 == b64) | nan):
        return "n"
    eps = float(np.finfo(np.float32 if a.dtype == ml_dtypes.bfloat16 else a.real.dtype).eps)
    if a.dtype == ml_dtypes.bfloat16:
        eps = float(ml_dtypes.finfo(ml_dtypes.bfloat16).eps)
    finite = ~nan & np.isfinite(b64)
    scale = np.max(np.abs(b64[finite]), initial=1.0)
    ok = np.all(np.abs(a64[finite] - b64[finite]) <= 64 * eps * scale) and np.array_equal(a64[~finite & ~nan], b64[~finite & ~nan])
    return "~" if ok else "E"


def cell(fn, args) -> str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = fn(*args)
    except TypeError:
        return "-"
    before = pipeline.compiled_by_path["reference"]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = fgrad.jit(fn)(*args)
    except Exception:
        return "E"
    leaves_g, leaves_w = fgrad.tree.tree_leaves(got), fgrad.tree.tree_leaves(want)
    if len(leaves_g) != len(leaves_w):
        return "E"
    marks = [compare(g, w) for g, w in zip(leaves_g, leaves_w)]
    if "E" in marks:
        return "E"
    if pipeline.compiled_by_path["reference"] > before:
        return "r"
    return "~" if "~" in marks else "n"


def operations() -> dict:
    ops = {name: (lambda f: lambda x: f(x))(getattr(fnp, name)) for name in UNARY}
    ops.update({name: (lambda f: lambda x: f(x, x[::-1]))(getattr(fnp, name)) for name in BINARY})
    ops.update({name: (lambda f: lambda x: f(x, axis=-1))(getattr(fnp, name)) for name in REDUCE})
    ops.update(OTHER)
    return ops


def main() -> int:
    fgrad.config.update("enable_x64", True)
    rng = np.random.default_rng(0)
    dtypes = [np.dtype(ml_dtypes.bfloat16) if d == "bfloat16" else np.dtype(d) for d in DTYPES]
    inputs = {d: fnp.asarray(sample(d, rng)) for d in dtypes}
    short = {"bool": "b", "int8": "i8", "int16": "i16", "int32": "i32", "int64": "i64", "uint8": "u8",
             "uint16": "u16", "uint32": "u32", "uint64": "u64", "float16": "f16", "bfloat16": "bf16",
             "float32": "f32", "float64": "f64", "complex64": "c64", "complex128": "c128"}
    print("| operation | " + " | ".join(short[d] for d in DTYPES) + " |")
    print("|---|" + "---:|" * len(DTYPES))
    defects, counts = [], {"n": 0, "~": 0, "r": 0, "-": 0, "E": 0}
    for name, fn in operations().items():
        marks = []
        for d, dname in zip(dtypes, DTYPES):
            mark = cell(fn, (inputs[d],))
            counts[mark] += 1
            marks.append(mark)
            if mark == "E":
                defects.append(f"{name} [{dname}]")
        print(f"| {name} | " + " | ".join(marks) + " |")
    print(f"\nn (native, equal to eager) {counts['n']}, ~ (native, within 64 ulp) {counts['~']}, "
          f"r (reference path) {counts['r']}, "
          f"- (refused) {counts['-']}, E (defect) {counts['E']}")
    if defects:
        print("defects: " + ", ".join(defects))
    return 1 if defects else 0


if __name__ == "__main__":
    sys.exit(main())
