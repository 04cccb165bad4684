"""Every scalar op and cast on edge values: interpreter vs NumPy, LLVM (scalar and SIMD) vs interpreter."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from fgrad.lower import kernel as K
from fgrad.lower.interpret import apply_op
from tests.lower.util import kernel_program, run_both

FLOAT_EDGES = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1.5, 2.5, -2.5, 3.0, 0.49999997, 7.3, -100.7,
               1e-40, -1e-40, 1e30, -1e30, np.inf, -np.inf, np.nan, 1e-7, 33.0, 2.0 ** 24 + 2, 88.0]
INT_EDGES = {
    K.int32: [0, 1, -1, 2, -2, 7, -7, 31, 32, 33, 2**31 - 1, -2**31, 123456, -3],
    K.int64: [0, 1, -1, 2, -2, 7, -7, 63, 64, 2**63 - 1, -2**63, 2**40 + 3, -3, 31],
    K.uint32: [0, 1, 2, 7, 31, 32, 33, 2**32 - 1, 2**31, 123456, 3],
    K.uint8: [0, 1, 2, 3, 7, 8, 127, 128, 255, 200],
    K.bool_: [False, True],
}
NUMERIC = [K.float32, K.float64, K.int32, K.int64, K.uint32, K.uint8]
ALL = NUMERIC + [K.bool_]
LIBM_OR_POLY = {"exp", "log", "log1p", "expm1", "tanh", "logistic", "sin", "cos", "rsqrt"}


def edges(dtype: np.dtype) -> np.ndarray:
    if dtype.kind == "f":
        with np.errstate(over="ignore"):
            return np.array(FLOAT_EDGES, dtype=np.float64).astype(dtype)
    return np.array(INT_EDGES[dtype], dtype=dtype)


def ops_for(dtype: np.dtype, arity: int) -> list[str]:
    names = []
    for name in sorted(K.OPS - {"select", "cast", "bitcast"}):
        n = 3 if name == "fma" else (1 if name in K.FLOAT_UNARY + K.NUMERIC_UNARY
                                     + ("is_finite", "not") else 2)
        if n == arity and dtype.kind in K._kinds_for(name):
            names.append(name)
    return names


def operands(dtype: np.dtype, arity: int) -> list[np.ndarray]:
    e = edges(dtype)
    combos = np.array(list(itertools.product(range(len(e)), repeat=arity)))
    if len(combos) > 4000:
        combos = combos[np.random.default_rng(0).choice(len(combos), 4000, replace=False)]
    return [e[combos[:, k]] for k in range(arity)]


def ops_kernel(names: list[str], dtype: np.dtype, arity: int, n: int) -> K.Kernel:
    """For each op: out_s[i] = op(a0[i], ...) in a scalar loop and out_v in a vectorised one."""
    ins = [K.Param(f"a{k}", dtype, n) for k in range(arity)]
    outs, body = [], []
    for name in names:
        for vec in (0, K.AUTO):
            i = K.Var("i")
            value = K.op(name, *[p[i] for p in ins])
            out = K.Param(f"{name}_{'v' if vec else 's'}", value.dtype, n)
            body.append(K.Range(i, 0, n, (out.store(i, value),), vectorize=vec))
            outs.append(out)
    return K.Kernel(f"ops{arity}", tuple(ins + outs), tuple(body))


def check_ops(names: list[str], dtype: np.dtype, arity: int) -> None:
    args = operands(dtype, arity)
    kern = ops_kernel(names, dtype, arity, len(args[0]))
    ref, got = run_both(kernel_program(kern, arity), *args)
    for k, name in enumerate(names):
        ref_s, ref_v, got_s, got_v = ref[2 * k], ref[2 * k + 1], got[2 * k], got[2 * k + 1]
        np.testing.assert_array_equal(ref_s, ref_v)
        for g in (got_s, got_v):
            _compare(name, dtype, g, ref_s)


def _compare(name: str, dtype: np.dtype, got: np.ndarray, ref: np.ndarray) -> None:
    if name in LIBM_OR_POLY:
        tol = 2e-6 if dtype == K.float32 else 1e-13
        np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * 1e-30, equal_nan=True,
                                   err_msg=f"{name} {dtype}")
    elif name == "fma" and dtype.kind == "f":
        np.testing.assert_allclose(got, ref, rtol=1e-6, equal_nan=True)
    else:
        np.testing.assert_array_equal(got, ref, err_msg=f"{name} {dtype}")


@pytest.mark.parametrize("dtype", NUMERIC, ids=str)
def test_unary_ops(dtype):
    check_ops(ops_for(dtype, 1), dtype, 1)


@pytest.mark.parametrize("dtype", ALL, ids=str)
def test_binary_ops(dtype):
    check_ops(ops_for(dtype, 2), dtype, 2)


@pytest.mark.parametrize("dtype", NUMERIC, ids=str)
def test_fma(dtype):
    check_ops(["fma"], dtype, 3)


@pytest.mark.parametrize("dtype", ALL, ids=str)
def test_select(dtype):
    e = edges(dtype)
    a, b = e, e[::-1].copy()
    c = (np.arange(len(e)) % 3 == 0)
    n = len(e)
    pc, pa, pb = K.Param("c", K.bool_, n), K.Param("a", dtype, n), K.Param("b", dtype, n)
    outs = [K.Param("out_s", dtype, n), K.Param("out_v", dtype, n)]
    body = []
    for out, vec in zip(outs, (0, K.AUTO)):
        i = K.Var("i")
        body.append(K.Range(i, 0, n, (out.store(i, K.select(pc[i], pa[i], pb[i])),), vectorize=vec))
    kern = K.Kernel("sel", (pc, pa, pb, *outs), tuple(body))
    (ref, _), (got_s, got_v) = run_both(kernel_program(kern, 3), c, a, b)
    np.testing.assert_array_equal(ref, np.where(c, a, b))
    np.testing.assert_array_equal(got_s, ref)
    np.testing.assert_array_equal(got_v, ref)


@pytest.mark.parametrize("src", ALL, ids=str)
def test_casts(src):
    x = edges(src)
    n = len(x)
    p = K.Param("x", src, n)
    outs, body = [], []
    for dst in ALL:
        for vec in (0, K.AUTO):
            out = K.Param(f"to_{dst.name}_{vec & 1}", dst, n)
            i = K.Var("i")
            body.append(K.Range(i, 0, n, (out.store(i, K.cast(p[i], dst)),), vectorize=vec))
            outs.append(out)
    kern = K.Kernel("casts", (p, *outs), tuple(body))
    ref, got = run_both(kernel_program(kern, 1), x)
    for out, r, g in zip(outs, ref, got):
        np.testing.assert_array_equal(g, r, err_msg=f"{src} -> {out.dtype}")
        in_range = _representable(x, out.dtype)
        if in_range.any():
            with np.errstate(invalid="ignore", over="ignore"):
                expected = x[in_range].astype(out.dtype)
            np.testing.assert_array_equal(r[in_range], expected, err_msg=f"{src} -> {out.dtype}")


def _representable(x: np.ndarray, dst: np.dtype) -> np.ndarray:
    """Where NumPy's cast of ``x`` to ``dst`` is defined (float -> int in range, not NaN)."""
    if x.dtype.kind == "f" and dst.kind in "iu":
        info = np.iinfo(dst)
        with np.errstate(invalid="ignore"):
            return np.isfinite(x) & (np.trunc(x) >= info.min) & (np.trunc(x) <= info.max) \
                & (np.abs(x) < 2.0 ** 62)
    return np.ones(x.shape, bool)


@pytest.mark.parametrize("pair", [(K.float32, K.int32), (K.float64, K.int64), (K.int32, K.uint32)],
                         ids=str)
def test_bitcast(pair):
    src, dst = pair
    x = edges(src)
    n = len(x)
    p, out = K.Param("x", src, n), K.Param("y", dst, n)
    i = K.Var("i")
    kern = K.Kernel("bc", (p, out), (K.Range(i, 0, n, (out.store(i, K.bitcast(p[i], dst)),),
                                              vectorize=K.AUTO),))
    (ref,), (got,) = run_both(kernel_program(kern, 1), x)
    np.testing.assert_array_equal(ref, x.view(dst))
    np.testing.assert_array_equal(got, ref)


# --- the interpreter's definitions against NumPy ---------------------------------------------

NUMPY_BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "max": np.maximum,
                "min": np.minimum, "eq": np.equal, "ne": np.not_equal, "lt": np.less,
                "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal}


@pytest.mark.parametrize("dtype", NUMERIC, ids=str)
def test_interpreter_matches_numpy(dtype):
    a, b = operands(dtype, 2)
    for name, fn in NUMPY_BINARY.items():
        with np.errstate(all="ignore"):
            got = np.array([apply_op(name, (x, y), fn(x, y).dtype) for x, y in zip(a, b)])
            np.testing.assert_array_equal(got, fn(a, b), err_msg=name)
    if dtype.kind == "f":
        with np.errstate(all="ignore"):
            for name, fn in {"div": np.divide, "rem": np.fmod, "floordiv": np.floor_divide,
                             "mod": np.remainder}.items():
                got = np.array([apply_op(name, (x, y), dtype) for x, y in zip(a, b)])
                np.testing.assert_array_equal(got, fn(a, b), err_msg=name)
    else:
        nz = b != 0
        with np.errstate(all="ignore"):
            got = np.array([apply_op("floordiv", (x, y), dtype) for x, y in zip(a[nz], b[nz])])
            np.testing.assert_array_equal(got, np.floor_divide(a[nz], b[nz]))
            got = np.array([apply_op("mod", (x, y), dtype) for x, y in zip(a[nz], b[nz])])
            np.testing.assert_array_equal(got, np.remainder(a[nz], b[nz]))
            got = np.array([apply_op("rem", (x, y), dtype) for x, y in zip(a[nz], b[nz])])
            np.testing.assert_array_equal(got, np.fmod(a[nz], b[nz]))


def test_round_variants():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997, 2.4, -2.6], np.float32)
    even = [apply_op("round_even", (v,), K.float32) for v in x]
    away = [apply_op("round", (v,), K.float32) for v in x]
    np.testing.assert_array_equal(even, np.round(x))
    np.testing.assert_array_equal(away, [1, 2, 3, -1, -2, -3, 0, 2, -3])


def test_integer_division_by_zero_and_overflow_are_defined():
    i32 = np.int32
    assert apply_op("div", (i32(7), i32(0)), K.int32) == 0
    assert apply_op("div", (i32(-2**31), i32(-1)), K.int32) == -2**31
    assert apply_op("rem", (i32(-7), i32(2)), K.int32) == -1
    assert apply_op("mod", (i32(-7), i32(2)), K.int32) == 1
    assert apply_op("shl", (i32(1), i32(40)), K.int32) == 0
    assert apply_op("shr", (i32(-8), i32(99)), K.int32) == -1
    assert apply_op("pow", (i32(2), i32(-1)), K.int32) == 0
    assert apply_op("pow", (i32(-1), i32(-3)), K.int32) == -1
    assert apply_op("cast", (np.float32(np.nan),), K.int32) == 0
    assert apply_op("cast", (np.float32(1e20),), K.int32) == 2**31 - 1
