"""int8, int16, uint16 and bfloat16 end to end: promotion tables, fgrad.numpy names and
dtype queries, each program of ``narrow_dtype_cases`` eager and under jit (native) against
JAX's recorded results, casts between every pair of dtypes, bfloat16 rounding, printing,
gradients, vmap, the CUDA C and the emulated GPU, and a mixed-precision MNIST training run.

JAX's tables were recorded with /work/jaxenv/bin/python (JAX 0.10.2): ``promote_types`` with
64-bit enabled, ``result_type`` with it disabled, and ``can_cast``; the program results by
running ``narrow_dtype_cases.py`` (its docstring says how)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import fgrad
from fgrad import lax
from fgrad import numpy as fnp
from fgrad.compile import pipeline
from fgrad.core import dtypes
from tests.lower import narrow_dtype_cases
from tests.lower.cuda_host import GXX
from tests.lower.test_gpu_vs_eager import run_on_emulated_gpu

BF16 = dtypes.bfloat16
NAMES = ["bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "bfloat16",
         "float16", "float32", "float64"]
SHORT = {"b": "bool", "u8": "uint8", "u16": "uint16", "u32": "uint32", "u64": "uint64", "i8": "int8",
         "i16": "int16", "i32": "int32", "i64": "int64", "bf16": "bfloat16", "f16": "float16",
         "f32": "float32", "f64": "float64"}
# row dtype: (promote_types with each column of NAMES, result_type with a Python int, with a Python float)
JAX_PROMOTE_X64 = {
    'b': ('b u8 u16 u32 u64 i8 i16 i32 i64 bf16 f16 f32 f64', 'i64', 'f64'),
    'u8': ('u8 u8 u16 u32 u64 i16 i16 i32 i64 bf16 f16 f32 f64', 'u8', 'f64'),
    'u16': ('u16 u16 u16 u32 u64 i32 i32 i32 i64 bf16 f16 f32 f64', 'u16', 'f64'),
    'u32': ('u32 u32 u32 u32 u64 i64 i64 i64 i64 bf16 f16 f32 f64', 'u32', 'f64'),
    'u64': ('u64 u64 u64 u64 u64 f64 f64 f64 f64 bf16 f16 f32 f64', 'u64', 'f64'),
    'i8': ('i8 i16 i32 i64 f64 i8 i16 i32 i64 bf16 f16 f32 f64', 'i8', 'f64'),
    'i16': ('i16 i16 i32 i64 f64 i16 i16 i32 i64 bf16 f16 f32 f64', 'i16', 'f64'),
    'i32': ('i32 i32 i32 i64 f64 i32 i32 i32 i64 bf16 f16 f32 f64', 'i32', 'f64'),
    'i64': ('i64 i64 i64 i64 f64 i64 i64 i64 i64 bf16 f16 f32 f64', 'i64', 'f64'),
    'bf16': ('bf16 bf16 bf16 bf16 bf16 bf16 bf16 bf16 bf16 bf16 f32 f32 f64', 'bf16', 'bf16'),
    'f16': ('f16 f16 f16 f16 f16 f16 f16 f16 f16 f32 f16 f32 f64', 'f16', 'f16'),
    'f32': ('f32 f32 f32 f32 f32 f32 f32 f32 f32 f32 f32 f32 f64', 'f32', 'f32'),
    'f64': ('f64 f64 f64 f64 f64 f64 f64 f64 f64 f64 f64 f64 f64', 'f64', 'f64'),
}
JAX_RESULT_TYPE_X32 = {
    'b': ('b u8 u16 u32 u32 i8 i16 i32 i32 bf16 f16 f32 f32', 'i32', 'f32'),
    'u8': ('u8 u8 u16 u32 u32 i16 i16 i32 i32 bf16 f16 f32 f32', 'u8', 'f32'),
    'u16': ('u16 u16 u16 u32 u32 i32 i32 i32 i32 bf16 f16 f32 f32', 'u16', 'f32'),
    'u32': ('u32 u32 u32 u32 u32 i32 i32 i32 i32 bf16 f16 f32 f32', 'u32', 'f32'),
    'u64': ('u32 u32 u32 u32 u32 i32 i32 i32 i32 bf16 f16 f32 f32', 'u32', 'f32'),
    'i8': ('i8 i16 i32 i32 i32 i8 i16 i32 i32 bf16 f16 f32 f32', 'i8', 'f32'),
    'i16': ('i16 i16 i32 i32 i32 i16 i16 i32 i32 bf16 f16 f32 f32', 'i16', 'f32'),
    'i32': ('i32 i32 i32 i32 i32 i32 i32 i32 i32 bf16 f16 f32 f32', 'i32', 'f32'),
    'i64': ('i32 i32 i32 i32 i32 i32 i32 i32 i32 bf16 f16 f32 f32', 'i32', 'f32'),
    'bf16': ('bf16 bf16 bf16 bf16 bf16 bf16 bf16 bf16 bf16 bf16 f32 f32 f32', 'bf16', 'bf16'),
    'f16': ('f16 f16 f16 f16 f16 f16 f16 f16 f16 f32 f16 f32 f32', 'f16', 'f16'),
    'f32': ('f32 f32 f32 f32 f32 f32 f32 f32 f32 f32 f32 f32 f32', 'f32', 'f32'),
    'f64': ('f32 f32 f32 f32 f32 f32 f32 f32 f32 f32 f32 f32 f32', 'f32', 'f32'),
}
# jnp.can_cast(row, column) (64-bit enabled), one digit per column of NAMES
JAX_CAN_CAST = {
    'bool': '1111111111111', 'uint8': '0111101111111', 'uint16': '0011100110011',
    'uint32': '0001100010001', 'uint64': '0000100000001', 'int8': '0000011111111',
    'int16': '0000001110011', 'int32': '0000000110001', 'int64': '0000000010001',
    'bfloat16': '0000000001011', 'float16': '0000000000111', 'float32': '0000000000011',
    'float64': '0000000000001',
}



def native(f, *args):
    """``jit(f)(*args)``, asserting that it compiled on the native path."""
    before = dict(pipeline.compiled_by_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", fgrad.ReferencePathWarning)
        out = fgrad.jit(f)(*args)
    if pipeline.native_enabled():
        assert pipeline.compiled_by_path["reference"] == before.get("reference", 0), "fell back"
    return out


def test_promotion_matches_jax():
    short = {v: k for k, v in SHORT.items()}
    with fgrad.config.override(enable_x64=True):
        for row, (columns, weak_int, weak_float) in JAX_PROMOTE_X64.items():
            got = [short[fnp.promote_types(SHORT[row], col).name] for col in NAMES]
            assert " ".join(got) == columns, row
            assert short[fnp.result_type(SHORT[row], 1).name] == weak_int, row
            assert short[fnp.result_type(SHORT[row], 1.0).name] == weak_float, row
    for row, (columns, weak_int, weak_float) in JAX_RESULT_TYPE_X32.items():
        got = [short[fnp.result_type(SHORT[row], col).name] for col in NAMES]
        assert " ".join(got) == columns, row
        assert short[fnp.result_type(SHORT[row], 1).name] == weak_int, row
        assert short[fnp.result_type(SHORT[row], 1.0).name] == weak_float, row


def test_arrays_promote_as_result_type_says():
    """Arithmetic on arrays (not just the table) promotes on the lattice: int8 + uint8 is int16,
    bfloat16 + float16 is float32, int8 + a Python int stays int8."""
    for a, b in [("int8", "uint8"), ("int16", "uint16"), ("bfloat16", "float16"), ("bfloat16", "int8"),
                 ("uint16", "int8"), ("bfloat16", "uint16")]:
        x, y = fnp.ones(3, a), fnp.ones(3, b)
        assert (x + y).dtype == fnp.result_type(a, b) == fgrad.jit(lambda u, v: u + v)(x, y).dtype
    wrapped = fnp.full(3, 100, fnp.int8) * 100      # 10000 wraps to 16, as in JAX
    assert wrapped.dtype == np.int8 and np.asarray(wrapped).tolist() == [16, 16, 16]
    assert (fnp.ones(3, fnp.bfloat16) * 2.5).dtype == BF16


def test_can_cast_matches_jax():
    with fgrad.config.override(enable_x64=True):
        for row, digits in JAX_CAN_CAST.items():
            got = "".join("1" if fnp.can_cast(row, col) else "0" for col in NAMES)
            assert got == digits, row


def test_names_and_dtype_queries():
    import ml_dtypes
    assert np.dtype(fnp.bfloat16) == np.dtype(ml_dtypes.bfloat16) == BF16
    for name, bits in (("int8", 8), ("int16", 16), ("uint16", 16)):
        scalar_type = getattr(fnp, name)
        assert np.dtype(scalar_type) == np.dtype(name) and scalar_type == np.dtype(name)
        info = fnp.iinfo(scalar_type)
        assert (info.bits, info.min, info.max) == (bits, np.iinfo(name).min, np.iinfo(name).max)
        assert fnp.issubdtype(scalar_type, fnp.integer) and not fnp.issubdtype(scalar_type, fnp.floating)
        assert fnp.isdtype(scalar_type, "integral") and fnp.isdtype(scalar_type, scalar_type)
    info = fnp.finfo(fnp.bfloat16)
    assert (info.bits, float(info.eps), float(info.max), float(info.tiny)) == (16, 2.0 ** -7, 3.3895313892515355e38, 2.0 ** -126)
    assert fnp.issubdtype(fnp.bfloat16, fnp.floating) and fnp.issubdtype(fnp.bfloat16, fnp.inexact)
    assert not fnp.issubdtype(fnp.bfloat16, fnp.integer) and not fnp.issubdtype(fnp.float16, fnp.bfloat16)
    assert fnp.isdtype(fnp.bfloat16, "real floating") and not fnp.isdtype(fnp.bfloat16, "integral")
    x = fnp.int8(-5)
    assert x.dtype == np.int8 and int(x) == -5 and fnp.uint16(65535).dtype == np.uint16
    assert fnp.bfloat16(1.00390625).dtype == BF16 and float(fnp.bfloat16(1.00390625)) == 1.0


def test_jaxpr_prints_short_names():
    f = lambda a, b, c, d: (a + 1, b * 2, c >> 1, d * 2)
    args = [fnp.ones((2,), t) for t in ("int8", "int16", "uint16", "bfloat16")]
    text = str(fgrad.make_jaxpr(f)(*args))
    for short in ("i8[2]", "i16[2]", "u16[2]", "bf16[2]"):
        assert short in text, text


def _expected(name):
    dtype, values = JAX_RESULTS[name]
    values = [float(v) if isinstance(v, str) else v for v in np.atleast_1d(np.array(values, object)).tolist()]
    return np.dtype(dtype), np.array(values, np.float64 if dtype in ("bfloat16", "float16", "float32") else dtype)


@pytest.mark.parametrize("name", sorted(narrow_dtype_cases.CASES))
def test_program_matches_jax(name):
    """Eager and jit (native) against JAX's result: exact for integers, bools and bfloat16
    arithmetic; floats within 2 ulp (XLA's float32 division and transcendentals differ there)."""
    f = narrow_dtype_cases.CASES[name]
    dtype, want = _expected(name)
    for got in (f(fnp, lax), native(lambda: f(fnp, lax))):
        got = np.asarray(got)
        assert got.dtype == dtype, (got.dtype, dtype)
        if dtype.kind in "biu":
            np.testing.assert_array_equal(got.reshape(-1), want.reshape(-1))
        else:
            eps = float(np.finfo(dtype).eps)
            np.testing.assert_allclose(got.astype(np.float64).reshape(-1), want.reshape(-1), rtol=2 * eps,
                                       atol=0, equal_nan=True)


def _reference_cast(x: np.ndarray, dst: np.dtype) -> np.ndarray:
    """NumPy's cast with XLA's semantics: float -> int truncates and saturates (NaN -> 0),
    ints wrap, anything -> bool is ``!= 0``, -> bfloat16 rounds through float32."""
    if dst == np.bool_:
        return x != 0
    if dtypes.is_float(x.dtype) and dst.kind in "iu":
        wide = np.nan_to_num(np.trunc(x.astype(np.float64)), nan=0.0)
        info = np.iinfo(dst)
        high, low = wide >= float(info.max), wide <= float(info.min)   # float(max) may round up
        inside = np.where(high | low, 0, wide).astype(dst)
        return np.where(high, dst.type(info.max), np.where(low, dst.type(info.min), inside))
    with np.errstate(over="ignore", invalid="ignore"):
        return (x.astype(np.float32) if dst == BF16 and x.dtype != BF16 else x).astype(dst)


def _cast_sources(dtype: np.dtype) -> np.ndarray:
    rng = np.random.default_rng(0)
    if dtype == np.bool_:
        return np.array([True, False, True])
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        edges = [info.min, info.max, 0, 1, 127, 128, 255, 256, 32767, 32768, 65535, 65536, 2 ** 24 + 1, 16842753]
        edges = [v for v in edges if info.min <= v <= info.max] + [-v for v in edges if info.min <= -v <= info.max]
        return np.concatenate([np.array(edges, dtype), rng.integers(info.min, info.max, 64, dtype, endpoint=True)])
    floats = [0.0, -0.0, 0.5, -0.9, 1.5, 2.5, 127.5, -128.7, 255.9, 300.5, -300.5, 32767.5, -32768.9, 65535.9,
              65536.0, 1e30, -1e30, 1e-30, np.inf, -np.inf, np.nan, 1.00390625, 1.01171875]
    with np.errstate(over="ignore"):
        values = np.concatenate([np.array(floats), rng.standard_normal(64) * 1e4])
        return (values.astype(np.float32) if dtype == BF16 else values).astype(dtype)


@pytest.mark.parametrize("src", NAMES)
def test_casts_between_every_pair(src):
    """Casts from ``src`` to every dtype and back where either is narrow: eager, jit and a NumPy
    reference (saturating float -> int, wrapping ints, bfloat16 through float32) agree exactly."""
    with fgrad.config.override(enable_x64=True):
        src = np.dtype(src)
        x = _cast_sources(src)
        narrow = (np.int8, np.int16, np.uint16, BF16)
        targets = [np.dtype(t) for t in NAMES if src in narrow or np.dtype(t) in narrow]
        outs = native(lambda a: [lax.convert_element_type(a, t) for t in targets], fnp.asarray(x))
        for dst, got in zip(targets, outs):
            want = _reference_cast(x, dst)
            eager = np.asarray(lax.convert_element_type(fnp.asarray(x), dst))
            for value in (np.asarray(got), eager):
                assert value.dtype == dst
                np.testing.assert_array_equal(value.view(np.uint8), want.view(np.uint8), err_msg=f"{src} -> {dst}")


def test_bfloat16_rounding_is_exact_over_all_values():
    """Every bfloat16 bit pattern widens exactly; float32 values (ties, near-ties, subnormals,
    overflow, NaNs) round to nearest even as ml_dtypes rounds; arithmetic rounds each result."""
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    every = bits.view(BF16)
    wide = np.asarray(native(lambda a: a.astype(np.float32), fnp.asarray(every)))
    np.testing.assert_array_equal(wide.view(np.uint32), (bits.astype(np.uint32) << 16) | np.where(
        np.isnan(wide), wide.view(np.uint32) & 0xFFFF, 0).astype(np.uint32))
    rng = np.random.default_rng(1)
    patterns = np.concatenate([(bits.astype(np.uint32) << 16) | 0x8000, (bits.astype(np.uint32) << 16) | 0x7FFF,
                               rng.integers(0, 1 << 32, 1 << 16, dtype=np.uint32)]).astype(np.uint32)
    f32 = patterns.view(np.float32)
    got = np.asarray(native(lambda a: a.astype(BF16), fnp.asarray(f32)))
    want = f32.astype(BF16)
    finite = ~np.isnan(f32)
    np.testing.assert_array_equal(got.view(np.uint16)[finite], want.view(np.uint16)[finite])
    assert np.isnan(got.astype(np.float32)[~finite]).all()
    x, y = fnp.asarray(every[:30000]), fnp.asarray(every[30000:60000])
    chain = lambda a, b: (a * b + a) / (b - 3)
    np.testing.assert_array_equal(np.asarray(native(chain, x, y)).astype(np.float32), np.asarray(chain(x, y)).astype(np.float32))


def test_sort_and_argsort_of_long_rows_use_radix_keys():
    """Rows past the radix threshold (256) sort by the narrow keys' bytes: negatives first."""
    rng = np.random.default_rng(2)
    for dtype in (np.int8, np.int16, np.uint16):
        info = np.iinfo(dtype)
        x = rng.integers(info.min, info.max, (3, 700), dtype, endpoint=True)
        got = native(lambda a: (fnp.sort(a, axis=1), fnp.argsort(a, axis=1, stable=True)), fnp.asarray(x))
        np.testing.assert_array_equal(np.asarray(got[0]), np.sort(x, axis=1))
        np.testing.assert_array_equal(np.asarray(got[1]), np.argsort(x, axis=1, kind="stable"))
    b = np.concatenate([rng.standard_normal(600), [np.nan, -0.0, 0.0, np.inf, -np.inf]]).astype(np.float32).astype(BF16)
    got = np.asarray(native(fnp.sort, fnp.asarray(b))).astype(np.float32)
    np.testing.assert_array_equal(got, np.sort(b.astype(np.float32)))


def test_grad_and_vmap_through_bfloat16():
    """grad of a bfloat16 function is bfloat16 and near the float32 gradient; jit(grad) equals
    eager grad bit for bit; vmap equals a loop."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((6, 5)).astype(np.float32)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    loss = lambda w, x: fnp.sum(fnp.tanh(x @ w).astype(np.float32) ** 2)
    w16, x16 = fnp.asarray(w.astype(BF16)), fnp.asarray(x.astype(BF16))
    g16 = fgrad.grad(loss)(w16, x16)
    assert g16.dtype == BF16
    g32 = fgrad.grad(loss)(fnp.asarray(w16.astype(np.float32)), fnp.asarray(x16.astype(np.float32)))
    np.testing.assert_allclose(np.asarray(g16).astype(np.float32), np.asarray(g32), rtol=0.05, atol=0.05)
    jitted = native(fgrad.grad(loss), w16, x16)
    np.testing.assert_array_equal(np.asarray(jitted).astype(np.float32), np.asarray(g16).astype(np.float32))
    per_row = lambda r: fnp.tanh(r @ w16) * 3
    batched = native(fgrad.vmap(per_row), x16)
    loop = np.stack([np.asarray(per_row(x16[i])).astype(np.float32) for i in range(4)])
    np.testing.assert_array_equal(np.asarray(batched).astype(np.float32), loop)


def test_integer_arrays_under_vmap_and_grad_of_mixed_programs():
    """vmap over int8/int16/uint16 programs equals a loop; grad flows through float parts of a
    program that indexes with int8 and scales by uint16 (and is None-free for the ints)."""
    x = fnp.asarray(np.arange(-12, 12, dtype=np.int8).reshape(4, 6))
    u = fnp.asarray(np.arange(24, dtype=np.uint16).reshape(4, 6) * 2500)
    f = lambda a, b: (a * 3 + (a >> 1), b * 7 + b // 3, fnp.cumsum(a), fnp.max(b))
    got = native(fgrad.vmap(f), x, u)
    for k, value in enumerate(got):
        loop = np.stack([np.asarray(f(x[i], u[i])[k]) for i in range(4)])
        np.testing.assert_array_equal(np.asarray(value), loop)
    w = fnp.asarray(np.linspace(-1, 1, 8, dtype=np.float32))
    g = lambda w, i, s: fnp.sum(w[i] * s.astype(np.float32))
    idx, scale = fnp.asarray(np.array([1, 3, 3, 7], np.int8)), fnp.asarray(np.array([2, 4, 6, 8], np.uint16))
    want = np.zeros(8, np.float32)
    np.add.at(want, [1, 3, 3, 7], [2, 4, 6, 8])
    np.testing.assert_array_equal(np.asarray(native(fgrad.grad(g), w, idx, scale)), want)


def _narrow_program(a, b, c, d):
    return (a * 3 - (a >> 2) + a // 5, b ^ (b << 3), c % 7 + fnp.maximum(c, 100), d * 2 + d,
            fnp.sum(d.astype(np.float32)), a.astype(BF16), d.astype(np.int16), fnp.cumsum(b, axis=1),
            fnp.sort(a, axis=1), fnp.argmax(c, axis=1))


def _narrow_args():
    rng = np.random.default_rng(4)
    return [fnp.asarray(rng.integers(-128, 128, (5, 9)).astype(np.int8)),
            fnp.asarray(rng.integers(-32768, 32768, (5, 9)).astype(np.int16)),
            fnp.asarray(rng.integers(0, 65536, (5, 9)).astype(np.uint16)),
            fnp.asarray((rng.standard_normal((5, 9)) * 10).astype(np.float32).astype(BF16))]


@pytest.mark.skipif(GXX is None, reason="g++ is not on PATH")
def test_narrow_dtypes_on_the_emulated_gpu(tmp_path):
    """The GPU lowering and the CUDA C renderer (signed char, short, unsigned short, bfloat16
    as its bits) run on the host and give eager's values."""
    args = _narrow_args()
    got = run_on_emulated_gpu(_narrow_program, args, tmp_path)
    assert got is not None, "the GPU lowering fell back"
    for g, w in zip(got, _narrow_program(*args)):
        w = np.asarray(w)
        g = np.asarray(g).reshape(w.shape)
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(np.atleast_1d(g).view(np.uint8), np.atleast_1d(w).view(np.uint8))


def test_narrow_program_renders_cuda_c_that_nvcc_compiles():
    from fgrad.lower.schedule import lower_program
    from fgrad.transforms.jit import closure_convert
    from tests.lower.test_cuda_render import NVCC, nvcc_compile
    from fgrad.lower.cuda import render_program
    closed, _ = closure_convert(fgrad.make_jaxpr(_narrow_program)(*_narrow_args()))
    program = lower_program(closed, target="gpu")
    source, _ = render_program(program, prefix="n_")
    for c_type in ("signed char", "short", "unsigned short", "fg_bfloat16"):
        assert f"{c_type}* __restrict__" in source, c_type
    if NVCC is not None:
        nvcc_compile({"narrow": program})


def test_interpreter_runs_narrow_programs_like_llvm():
    from fgrad.lower.interpret import run_program
    from fgrad.lower.schedule import lower_program
    from fgrad.transforms.jit import closure_convert
    args = _narrow_args()
    closed, _ = closure_convert(fgrad.make_jaxpr(_narrow_program)(*args))
    interpreted = run_program(lower_program(closed), *[np.asarray(a) for a in args])
    for got, want in zip(interpreted, native(_narrow_program, *args)):
        got, want = np.atleast_1d(got), np.atleast_1d(want)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


# each program of narrow_dtype_cases.CASES under JAX (64-bit disabled): (dtype, values)
JAX_RESULTS = {
    'int8 + int8': ('int8', [0, 2, 56, -6, -2, 0, 2, 4, 10, -56, -4, -2]),
    'int8 * 100 (weak int)': ('int8', [0, 100, -16, -44, -100, 0, 100, -56, -12, 16, 56, -100]),
    'int8 * reversed': ('int8', [-128, 126, -16, -15, -2, 0, 0, -2, -15, -16, 126, -128]),
    'int8 - 7': ('int8', [121, 122, -107, -10, -8, -7, -6, -5, -2, 93, 119, 120]),
    '-int8': ('int8', [-128, 127, 100, 3, 1, 0, -1, -2, -5, -100, -126, -127]),
    'abs int8': ('int8', [-128, 127, 100, 3, 1, 0, 1, 2, 5, 100, 126, 127]),
    'sign int8': ('int8', [-1, -1, -1, -1, -1, 0, 1, 1, 1, 1, 1, 1]),
    'int8 // shifts': ('int8', [-128, -2, -100, -1, -1, 0, 0, 0, 0, 5, 63, 1]),
    'int8 % shifts': ('int8', [0, 0, 0, 0, 6, 0, 1, 2, 5, 15, 0, 27]),
    'lax.div int8': ('int8', [-128, -1, -100, -1, 0, 0, 0, 0, 0, 5, 63, 1]),
    'lax.rem int8': ('int8', [0, -127, 0, 0, -1, 0, 1, 2, 5, 15, 0, 27]),
    'int8 ** 3': ('int8', [0, -127, -64, -27, -1, 0, 1, 8, 125, 64, -8, 127]),
    'shift_left int8': ('int8', [0, -127, 56, -24, -128, 0, 0, 0, 0, 0, -8, 0]),
    'right_shift int8': ('int8', [-1, -127, -50, -1, -1, 0, 0, 0, 0, 0, 31, 0]),
    'shift_right_logical int8': ('int8', [0, -127, 78, 31, 1, 0, 0, 0, 0, 0, 31, 0]),
    '~int8': ('int8', [127, 126, 99, 2, 0, -1, -2, -3, -6, -101, -127, -128]),
    'int8 & ^ |': ('int8', [6, -121, -98, -2, -8, 6, 6, 4, 7, 102, 124, 27]),
    'max int8': ('int8', [-1, 0, 1, 3, 7, 8, 9, 15, 16, 100, 126, 127]),
    'int8 < shifts': ('bool', [True, True, True, True, True, True, True, True, True, False, False, False]),
    'sum int8': ('int32', 2),
    'prod int8': ('int32', 0),
    'cumsum int8': ('int8', [-128, 1, -99, -102, -103, -103, -102, -100, -95, 5, -125, 2]),
    'cumulative_sum int8': ('int32', [-128, -255, -355, -358, -359, -359, -358, -356, -351, -251, -125, 2]),
    'mean int8': ('float32', 0.1666666716337204),
    'max reduce int8': ('int8', 127),
    'argmax int8': ('int32', 11),
    'sort int8': ('int8', [-128, -121, -68, -21, -7, 0, 7, 14, 35, 68, 114, 121]),
    'argsort int8': ('int32', [0, 1, 9, 3, 4, 5, 6, 7, 8, 2, 10, 11]),
    'int8 as float32': ('float32', [-128.0, -127.0, -100.0, -3.0, -1.0, 0.0, 1.0, 2.0, 5.0, 100.0, 126.0, 127.0]),
    'int8 as bfloat16': ('bfloat16', [-128.0, -127.0, -100.0, -3.0, -1.0, 0.0, 1.0, 2.0, 5.0, 100.0, 126.0, 127.0]),
    'int8 + 1.5 (weak float)': ('float32', [-126.5, -125.5, -98.5, -1.5, 0.5, 1.5, 2.5, 3.5, 6.5, 101.5, 127.5, 128.5]),
    'int8 / 3': ('float32', [-42.66666793823242, -42.333335876464844, -33.333335876464844, -1.0, -0.3333333432674408, 0.0, 0.3333333432674408, 0.6666666865348816, 1.6666667461395264, 33.333335876464844, 42.0, 42.333335876464844]),
    'float32 edges as int8': ('int8', [127, -128, 127, -128, 0, 127, -128, 127, 127, 0, 127, -128, 2, 0, 127, -128]),
    'bfloat16 as int8': ('int8', [0, 0, 1, -1, 3, 100, -7, 0, 127, 127, 0, 127]),
    'int32 wraps to int8': ('int8', [112, -112, -1, 0, 127, -1]),
    'int8 at[] add': ('int8', [0, -98, -100, -3, -1, 0, 1, 2, 5, 100, 126, 124]),
    'int8 gather': ('int8', [-3, -128, 127, 127]),
    'int16 + int16': ('int16', [0, 2, -600, -6, -2, 0, 2, 4, 10, 600, -4, -2]),
    'int16 * 100 (weak int)': ('int16', [0, 100, -30000, -300, -100, 0, 100, 200, 500, 30000, -200, -100]),
    'int16 * reversed': ('int16', [-32768, 32766, -24464, -15, -2, 0, 0, -2, -15, -24464, 32766, -32768]),
    'int16 - 7': ('int16', [32761, 32762, -307, -10, -8, -7, -6, -5, -2, 293, 32759, 32760]),
    '-int16': ('int16', [-32768, 32767, 300, 3, 1, 0, -1, -2, -5, -300, -32766, -32767]),
    'abs int16': ('int16', [-32768, 32767, 300, 3, 1, 0, 1, 2, 5, 300, 32766, 32767]),
    'sign int16': ('int16', [-1, -1, -1, -1, -1, 0, 1, 1, 1, 1, 1, 1]),
    'int16 // shifts': ('int16', [-32768, -2, -300, -1, -1, 0, 0, 0, 0, 17, 16383, 327]),
    'int16 % shifts': ('int16', [0, 0, 0, 0, 6, 0, 1, 2, 5, 11, 0, 67]),
    'lax.div int16': ('int16', [-32768, -1, -300, -1, 0, 0, 0, 0, 0, 17, 16383, 327]),
    'lax.rem int16': ('int16', [0, -32767, 0, 0, -1, 0, 1, 2, 5, 11, 0, 67]),
    'int16 ** 3': ('int16', [0, -32767, 832, -27, -1, 0, 1, 8, 125, -832, -8, 32767]),
    'shift_left int16': ('int16', [0, -32767, -600, -24, -128, 0, 512, 0, 0, 0, -8, 0]),
    'right_shift int16': ('int16', [-1, -32767, -150, -1, -1, 0, 0, 0, 0, 0, 8191, 0]),
    'shift_right_logical int16': ('int16', [0, -32767, 32618, 8191, 511, 0, 0, 0, 0, 0, 8191, 0]),
    '~int16': ('int16', [32767, 32766, 299, 2, 0, -1, -2, -3, -6, -301, -32767, -32768]),
    'int16 & ^ |': ('int16', [6, -32761, -298, -2, -8, 6, 6, 4, 7, 302, 32764, 32667]),
    'max int16': ('int16', [-1, 0, 1, 3, 7, 8, 9, 15, 16, 300, 32766, 32767]),
    'int16 < shifts': ('bool', [True, True, True, True, True, True, True, True, True, False, False, False]),
    'sum int16': ('int32', 2),
    'prod int16': ('int32', 0),
    'cumsum int16': ('int16', [-32768, 1, -299, -302, -303, -303, -302, -300, -295, 5, -32765, 2]),
    'cumulative_sum int16': ('int32', [-32768, -65535, -65835, -65838, -65839, -65839, -65838, -65836, -65831, -65531, -32765, 2]),
    'mean int16': ('float32', 0.1666666716337204),
    'max reduce int16': ('int16', 32767),
    'argmax int16': ('int32', 11),
    'sort int16': ('int16', [-32768, -32761, -2100, -21, -7, 0, 7, 14, 35, 2100, 32754, 32761]),
    'argsort int16': ('int32', [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]),
    'int16 as float32': ('float32', [-32768.0, -32767.0, -300.0, -3.0, -1.0, 0.0, 1.0, 2.0, 5.0, 300.0, 32766.0, 32767.0]),
    'int16 as bfloat16': ('bfloat16', [-32768.0, -32768.0, -300.0, -3.0, -1.0, 0.0, 1.0, 2.0, 5.0, 300.0, 32768.0, 32768.0]),
    'int16 + 1.5 (weak float)': ('float32', [-32766.5, -32765.5, -298.5, -1.5, 0.5, 1.5, 2.5, 3.5, 6.5, 301.5, 32767.5, 32768.5]),
    'int16 / 3': ('float32', [-10922.6669921875, -10922.333984375, -100.0, -1.0, -0.3333333432674408, 0.0, 0.3333333432674408, 0.6666666865348816, 1.6666667461395264, 100.0, 10922.0, 10922.333984375]),
    'float32 edges as int16': ('int16', [32767, -32768, 300, -300, 0, 127, -128, 32767, 32767, 0, 32767, -32768, 2, 0, 32767, -32768]),
    'bfloat16 as int16': ('int16', [0, 0, 1, -1, 3, 100, -7, 0, 32767, 32767, 0, 32767]),
    'int32 wraps to int16': ('int16', [4464, -4464, 255, 256, -129, -1]),
    'int16 at[] add': ('int16', [0, -298, -300, -3, -1, 0, 1, 2, 5, 300, 32766, 32764]),
    'int16 gather': ('int16', [-3, -32768, 32767, 32767]),
    'uint16 + uint16': ('uint16', [0, 2, 4, 6, 10, 510, 512, 600, 65534, 0, 65532, 65534]),
    'uint16 * 100 (weak int)': ('uint16', [0, 100, 200, 300, 500, 25500, 25600, 30000, 65436, 0, 65336, 65436]),
    'uint16 * reversed': ('uint16', [0, 65534, 0, 32765, 1500, 65280, 65280, 1500, 32765, 0, 65534, 0]),
    'uint16 - 7': ('uint16', [65529, 65530, 65531, 65532, 65534, 248, 249, 293, 32760, 32761, 65527, 65528]),
    '-uint16': ('uint16', [0, 65535, 65534, 65533, 65531, 65281, 65280, 65236, 32769, 32768, 2, 1]),
    'abs uint16': ('uint16', [0, 1, 2, 3, 5, 255, 256, 300, 32767, 32768, 65534, 65535]),
    'sign uint16': ('uint16', [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]),
    'uint16 // shifts': ('uint16', [0, 65535, 2, 1, 0, 31, 28, 20, 2047, 1927, 32767, 655]),
    'uint16 % shifts': ('uint16', [0, 0, 0, 0, 5, 7, 4, 0, 15, 9, 0, 35]),
    'lax.div uint16': ('uint16', [0, 65535, 2, 1, 0, 31, 28, 20, 2047, 1927, 32767, 655]),
    'lax.rem uint16': ('uint16', [0, 1, 0, 0, 5, 7, 4, 0, 15, 9, 0, 35]),
    'uint16 ** 3': ('uint16', [0, 1, 8, 27, 125, 767, 0, 64704, 32767, 0, 65528, 65535]),
    'shift_left uint16': ('uint16', [0, 1, 4, 24, 640, 65280, 0, 0, 0, 0, 65528, 0]),
    'right_shift uint16': ('uint16', [0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 16383, 0]),
    'shift_right_logical uint16': ('uint16', [0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 16383, 0]),
    '~uint16': ('uint16', [65535, 65534, 65533, 65532, 65530, 65280, 65279, 65235, 32768, 32767, 1, 0]),
    'uint16 & ^ |': ('uint16', [6, 7, 6, 4, 2, 247, 262, 290, 32751, 32774, 65532, 65435]),
    'max uint16': ('uint16', [65535, 1, 2, 3, 7, 255, 256, 300, 32767, 32768, 65534, 65535]),
    'uint16 < shifts': ('bool', [True, False, False, False, True, False, False, False, False, False, False, False]),
    'sum uint16': ('uint32', 197426),
    'prod uint16': ('uint32', 979200),
    'cumsum uint16': ('uint16', [0, 1, 3, 6, 11, 266, 522, 822, 33589, 821, 819, 818]),
    'cumulative_sum uint16': ('uint32', [0, 1, 3, 6, 11, 266, 522, 822, 33589, 66357, 131891, 197426]),
    'mean uint16': ('float32', 16452.16796875),
    'max reduce uint16': ('uint16', 65535),
    'argmax uint16': ('int32', 11),
    'sort uint16': ('uint16', [0, 7, 14, 21, 35, 1785, 1792, 2100, 32761, 32768, 65522, 65529]),
    'argsort uint16': ('int32', [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]),
    'uint16 as float32': ('float32', [0.0, 1.0, 2.0, 3.0, 5.0, 255.0, 256.0, 300.0, 32767.0, 32768.0, 65534.0, 65535.0]),
    'uint16 as bfloat16': ('bfloat16', [0.0, 1.0, 2.0, 3.0, 5.0, 255.0, 256.0, 300.0, 32768.0, 32768.0, 65536.0, 65536.0]),
    'uint16 + 1.5 (weak float)': ('float32', [1.5, 2.5, 3.5, 4.5, 6.5, 256.5, 257.5, 301.5, 32768.5, 32769.5, 65535.5, 65536.5]),
    'uint16 / 3': ('float32', [0.0, 0.3333333432674408, 0.6666666865348816, 1.0, 1.6666667461395264, 85.0, 85.33333587646484, 100.0, 10922.333984375, 10922.6669921875, 21844.66796875, 21845.0]),
    'float32 edges as uint16': ('uint16', [65535, 0, 300, 0, 0, 127, 0, 65535, 65535, 0, 32767, 0, 2, 0, 65535, 0]),
    'bfloat16 as uint16': ('uint16', [0, 0, 1, 0, 3, 100, 0, 0, 65280, 65535, 0, 65535]),
    'int32 wraps to uint16': ('uint16', [4464, 61072, 255, 256, 65407, 65535]),
    'uint16 at[] add': ('uint16', [0, 4, 2, 3, 5, 255, 256, 300, 32767, 32768, 65534, 2]),
    'uint16 gather': ('uint16', [3, 0, 65535, 65535]),
    'bf16 * 3 + 1': ('bfloat16', [1.0, 1.0, 4.0, -3.5, 10.4375, 304.0, -20.75, 1.0, 195584.0, 'inf', 'nan', 'inf']),
    'bf16 / 7': ('bfloat16', [0.0, -0.0, 0.142578125, -0.2138671875, 0.44921875, 14.375, -1.0390625, 0.0001430511474609375, 9344.0, 4.286760286406354e+37, 'nan', 'inf']),
    'bf16 * bf16': ('bfloat16', ['nan', 'nan', 3.00405527047391e+38, -97792.0, 0.003143310546875, -728.0, -728.0, 0.003143310546875, -97792.0, 3.00405527047391e+38, 'nan', 'nan']),
    'exp bf16': ('bfloat16', [1.0, 1.0, 1.0234375, 0.96875, 1.0625, 7.5, 0.8671875, 1.0, 'inf', 'inf', 'nan', 'inf']),
    'tanh bf16': ('bfloat16', [0.0, -0.0, 0.76171875, -0.90625, 0.99609375, 1.0, -1.0, 0.00099945068359375, 1.0, 1.0, 'nan', 1.0]),
    'sqrt bf16': ('bfloat16', [0.0, 0.0, 1.0, 1.2265625, 1.7734375, 10.0, 2.6875, 0.031494140625, 255.0, 1.7365880163140633e+19, 'nan', 'inf']),
    'floor bf16': ('bfloat16', [0.0, -0.0, 1.0, -2.0, 3.0, 100.0, -8.0, 0.0, 65280.0, 3.00405527047391e+38, 'nan', 'inf']),
    'max bf16': ('bfloat16', [0.0, 0.0, 1.0, 1.5, 3.140625, 100.5, 7.25, 0.00099945068359375, 65280.0, 3.00405527047391e+38, 'nan', 'inf']),
    'bf16 < 2': ('bool', [True, True, True, True, False, False, True, True, False, False, False, False]),
    'sum bf16': ('bfloat16', 65280.0),
    'mean bf16': ('bfloat16', 7264.0),
    'cumsum bf16': ('bfloat16', [0.0, 0.0, 1.0, -0.5, 2.640625, 103.0, 96.0, 96.0, 65280.0]),
    'argmax bf16': ('int32', 8),
    'sort bf16': ('bfloat16', [-7.25, -1.5, 0.0, -0.0, 0.00099945068359375, 1.0, 3.140625, 100.5, 65280.0, 3.00405527047391e+38, 'inf', 'nan']),
    'bf16 @ bf16': ('bfloat16', [-7.25, 0.00099945068359375, 65280.0, -732.0, 9.9375, 6553600.0, -473088.0, 65.0, 4261412864.0]),
    'bf16 + float16': ('float32', [0.0, 1.0, 3.0, 1.5, 7.140625, 105.5]),
    'bf16 + int8': ('bfloat16', [0.0, 1.0, 3.0, 1.5, 7.125, 105.5]),
    'float32 edges as bfloat16': ('bfloat16', [1.0002555517425873e+30, -1.0002555517425873e+30, 300.0, -300.0, 'nan', 127.5, -129.0, 65536.0, 65536.0, -0.8984375, 32768.0, -32768.0, 2.5, 9.98402083170343e-31, 'inf', '-inf', 1.0, 1.015625, 3.3895313892515355e+38]),
    'float16 as bfloat16': ('bfloat16', [65536.0, 5.960464477539063e-08, -2.5, 1.0]),
    'bfloat16 as float16': ('float16', [0.0, -0.0, 1.0, -1.5, 3.140625, 100.5, -7.25, 0.00099945068359375, 65280.0, 'inf', 'nan', 'inf']),
    'bfloat16 as bool': ('bool', [False, False, True, True, True, True, True, True, True, True, True, True]),
    'bfloat16 bits': ('uint16', [0, 32768, 16256, 49088, 16457, 17097, 49384, 14979, 18303, 32610, 32704, 32640]),
    'bits as bfloat16': ('bfloat16', [1.0, 'nan', -9.183549615799121e-41, '-inf']),
}
