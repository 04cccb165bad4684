"""float16 programs compile natively and give eager's values.

The kernel IR stores float16 and computes in float32: each primitive's result is rounded to
float16, as NumPy's float16 loops round theirs, so elementwise arithmetic is bit-exact;
transcendentals may differ by the last float16 bit (a different float32 libm underneath).
Sums, products, cumsums and window sums accumulate in float32 and round once, in jit and in
eager alike (``ops.reduction._accumulator``); dot and conv accumulate in float32 in both
(NumPy's float16 matmul does); they may differ in the last float16 bit where the float32
sums are added in another order."""
from __future__ import annotations

import numpy as np
import pytest

import fgrad
from fgrad import lax
from fgrad import numpy as fnp
from fgrad.compile import pipeline
from fgrad.lower.interpret import run_program
from fgrad.lower.schedule import lower_program
from fgrad.transforms.jit import closure_convert
from tests.lower.cuda_host import GXX
from tests.lower.test_gpu_vs_eager import run_on_emulated_gpu

F16 = np.dtype(np.float16)
EPS16 = float(np.finfo(np.float16).eps)


def values(shape, seed=0, scale=3.0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * scale).astype(F16)
    flat = x.reshape(-1)
    edges = np.array([0.0, -0.0, 1.0, -1.0, 0.5, 2.5, np.inf, -np.inf, np.nan, 65504.0, 6e-8, -6e-5], F16)
    flat[:min(flat.size, edges.size)] = edges[:flat.size]
    return fnp.asarray(x)


def native(f, *args):
    """``jit(f)(*args)``, asserting that it compiled on the native path."""
    before = dict(pipeline.compiled_by_path)
    out = fgrad.jit(f)(*args)
    if pipeline.native_enabled():
        assert pipeline.compiled_by_path["reference"] == before.get("reference", 0), "fell back"
        assert pipeline.compiled_by_path["native"] == before.get("native", 0) + 1
    return out


def same(got, want, ulps=0):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape
    if ulps == 0 or want.dtype != F16:
        np.testing.assert_array_equal(got, want)
    else:   # ulps of float16 relative to the value, and as many of the smallest normal near 0
        tol = ulps * EPS16
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=tol,
                                   atol=tol * float(np.finfo(np.float16).tiny), equal_nan=True)


EXACT_UNARY = [lax.neg, lax.abs, lax.sign, lax.floor, lax.ceil, lax.sqrt, lax.is_finite,
               lambda x: lax.round(x, "away_from_zero"), lambda x: lax.round(x, "to_nearest_even"),
               lax.square, lambda x: lax.integer_pow(x, 3), lambda x: lax.integer_pow(x, -2)]
TRANSCENDENTAL = [lax.exp, lax.log, lax.log1p, lax.expm1, lax.tanh, lax.logistic, lax.sin,
                  lax.cos, lax.rsqrt]
BINARY = [lax.add, lax.sub, lax.mul, lax.div, lax.max, lax.min, lax.rem, lax.eq, lax.ne, lax.lt,
          lax.le, lax.gt, lax.ge]


@pytest.mark.parametrize("f", EXACT_UNARY + TRANSCENDENTAL,
                         ids=[f"u{i}" for i in range(len(EXACT_UNARY + TRANSCENDENTAL))])
def test_unary(f):
    x = values((5, 7))
    same(native(f, x), f(x), 0 if f in EXACT_UNARY else 1)


@pytest.mark.parametrize("f", BINARY, ids=[f"b{i}" for i in range(len(BINARY))])
def test_binary(f):
    x, y = values((5, 7), 1), values((5, 7), 2)
    same(native(f, x, y), f(x, y))
    same(native(lambda a: f(a, 1.5), x), f(x, 1.5))     # a weak Python scalar stays float16


def test_pow_and_fused_chains():
    x, y = values((4, 9), 3, 1.0), values((4, 9), 4, 1.0)
    same(native(lax.pow, fnp.abs(x), y), lax.pow(fnp.abs(x), y), 1)
    chain = lambda a, b: fnp.maximum(a * b + a / (b * b + 1) - 3, a) * 0.1   # rounded after each op
    same(native(chain, x, y), chain(x, y))
    big = lambda a: a * 1000 * 1000 / 1000     # overflows float16 midway, as in eager
    same(native(big, x), big(x))


@pytest.mark.parametrize("axes", [(0,), (1,), (0, 1)])
def test_reductions(axes):
    x = values((37, 53), 5, 1.0)
    x = fnp.asarray(np.nan_to_num(np.asarray(x), posinf=2.0, neginf=-2.0))
    for reduce, ulps in ((lax.reduce_sum, 1), (lax.reduce_max, 0), (lax.reduce_min, 0),
                         (lax.reduce_prod, 1)):
        f = lambda a: reduce(a * 0.5 + 0.75, axes) if reduce is lax.reduce_prod else reduce(a, axes)
        same(native(f, x), f(x), ulps)
    same(native(lambda a: lax.argmax(a, axes[0], np.int32), x), lax.argmax(x, axes[0], np.int32))
    same(native(lambda a: fnp.mean(a, axes), x), fnp.mean(x, axes), 1)


def test_cumsum_and_window_sums():
    x = values((6, 40), 6, 1.0)
    for reverse in (False, True):
        same(native(lambda a: lax.cumsum(a, 1, reverse), x), lax.cumsum(x, 1, reverse), 1)
    pool = lambda a: lax.reduce_window(a, "sum", (2, 3), (1, 2), "SAME")
    same(native(pool, x), pool(x), 1)
    pool_max = lambda a: lax.reduce_window(a, "max", (2, 3), (1, 2), "VALID")
    same(native(pool_max, x), pool_max(x))


def test_dot_and_conv():
    a, b = values((17, 40), 7, 0.5), values((40, 23), 8, 0.5)
    a, b = (fnp.asarray(np.nan_to_num(np.asarray(v), posinf=1.0, neginf=-1.0)) for v in (a, b))
    same(native(fnp.matmul, a, b), fnp.matmul(a, b), 1)
    mixed = lambda x, y: lax.dot_general(x, y, (((1,), (0,)), ((), ())), preferred_element_type=np.float32)
    np.testing.assert_allclose(np.asarray(native(mixed, a, b)), np.asarray(mixed(a, b)), rtol=1e-6, atol=1e-6)
    x, w = values((2, 4, 9, 8), 9, 0.5), values((6, 2, 3, 3), 10, 0.5)
    x, w = (fnp.asarray(np.nan_to_num(np.asarray(v), posinf=1.0, neginf=-1.0)) for v in (x, w))
    conv = lambda x, w: lax.conv_general_dilated(x, w, (1, 2), "SAME", feature_group_count=2)
    same(native(conv, x, w), conv(x, w), 1)
    loss = lambda x, w: fnp.sum(conv(x, w).astype(np.float32) ** 2)
    for g, e in zip(native(fgrad.grad(loss, (0, 1)), x, w), fgrad.grad(loss, (0, 1))(x, w)):
        same(g, e, 2)


@pytest.mark.parametrize("other", [np.float32, np.float64, np.int32, np.int64, np.uint8, np.uint32, np.bool_])
def test_casts(other):
    with fgrad.config.override(enable_x64=True):
        x = values((64,), 11, 300.0)
        same(native(lambda a: a.astype(other), x), x.astype(other))
        rng = np.random.default_rng(12)
        if np.dtype(other).kind == "f":
            h = np.asarray(values((256,), 13, 4.0)).astype(other)
            src = h + np.spacing(h.astype(F16)).astype(other) / 2     # float16 ties
            src[:4] = [1e30, -7e4, 65519.0, 3e-8]
        elif np.dtype(other) == np.bool_:
            src = rng.random(64) < 0.5
        else:
            info = np.iinfo(other)
            src = rng.integers(max(info.min, -70000), min(info.max, 70000), 256).astype(other)
        src = fnp.asarray(np.asarray(src, other))
        same(native(lambda a: a.astype(F16), src), src.astype(F16))


def test_interpreter_and_llvm_agree_on_a_float16_program():
    f = lambda a, b: (fnp.sum(fnp.exp(a) * b, axis=0), (a * b).astype(np.int32), a @ b.T)
    a, b = values((8, 12), 14, 1.0), values((8, 12), 15, 1.0)
    closed, _ = closure_convert(fgrad.make_jaxpr(f)(a, b))
    program = lower_program(closed)
    interpreted = run_program(program, np.asarray(a), np.asarray(b))
    for got, want in zip(interpreted, fgrad.jit(f)(a, b)):
        same(got, want, 1)


@pytest.mark.skipif(GXX is None, reason="g++ is not on PATH")
def test_float16_on_the_emulated_gpu(tmp_path):
    f = lambda a, b: (fnp.sum(fnp.sin(a) * b, axis=1), a.astype(np.float32) + 1, (a > b), a @ b.T,
                      lax.cumsum(a, 1))
    a, b = values((8, 12), 16, 1.0), values((8, 12), 17, 1.0)
    got = run_on_emulated_gpu(f, (a, b), tmp_path)
    assert got is not None, "the GPU lowering fell back"
    for g, w in zip(got, f(a, b)):
        same(np.asarray(g).reshape(np.shape(w)), w, 2)


def test_control_flow_and_transforms():
    x = values((4, 6), 18, 1.0)
    x = fnp.asarray(np.nan_to_num(np.asarray(x), posinf=1.0, neginf=-1.0))

    def scan_body(carry, row):
        carry = carry * 0.5 + fnp.tanh(row)
        return carry, carry.sum()
    scan = lambda a: lax.scan(scan_body, fnp.zeros(a.shape[1], F16), a)
    for got, want in zip(native(scan, x), scan(x)):
        same(got, want, 1)
    loop = lambda a: lax.fori_loop(0, 5, lambda i, c: c * 1.1 + a, a)
    same(native(loop, x), loop(x))
    branch = lambda a: lax.cond(a.sum() > 0, lambda v: v * 3, lambda v: v - 1, a)
    same(native(branch, x), branch(x))
    softmax = lambda a: fnp.exp(a - a.max(-1, keepdims=True)) / fnp.exp(a - a.max(-1, keepdims=True)).sum(-1, keepdims=True)
    same(native(softmax, x), softmax(x), 1)
    same(native(fgrad.vmap(softmax), x), fgrad.vmap(softmax)(x), 1)
    loss = lambda a: (softmax(a) * a).sum()
    same(native(fgrad.grad(loss), x), fgrad.grad(loss)(x), 2)


def test_float16_results_of_wider_operands_round_once():
    """A cast from float64 rounds straight to float16 (not through float32), and a float16
    dot or conv of float32 operands rounds only its result, as in JAX."""
    with fgrad.config.override(enable_x64=True):
        h = np.asarray(values((200,), 19, 4.0)).astype(np.float64)
        ties = h + np.spacing(h.astype(F16)).astype(np.float64) / 2 * (1 + 1e-9)   # float32 would round these to ties
        x = fnp.asarray(np.nan_to_num(ties, posinf=1.0, neginf=-1.0))
        same(native(lambda a: a.astype(F16), x), x.astype(F16))
    a = fnp.asarray(np.random.default_rng(20).standard_normal((8, 16)).astype(np.float32))
    dot = lambda a: lax.dot_general(a, a.T, (((1,), (0,)), ((), ())), preferred_element_type=F16)
    exact = (np.asarray(a, np.float64) @ np.asarray(a, np.float64).T).astype(F16)
    same(native(dot, a), dot(a))
    same(dot(a), exact, 1)
    conv = lambda a: lax.conv_general_dilated(a[None, None], a[None, None, :3, :3], (1, 1), "SAME",
                                              preferred_element_type=F16)
    same(native(conv, a), conv(a))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_logistic_and_rsqrt_round_as_xla_does_in_jit_and_eager(dtype):
    """Half ``logistic`` is XLA's expansion ``1 / (1 + exp(-x))`` with each step rounded (JAX's
    values); half ``rsqrt`` is rounded once from float32. Eager and jit agree exactly, and
    so do the derivatives (``sigmoid``'s ``y (1 - y)``, ``arcsin``'s ``rsqrt(1 - x^2)``)."""
    from fgrad import dtypes, nn
    half = np.dtype(dtypes.bfloat16) if dtype == "bfloat16" else F16
    x32 = np.asarray(values((6, 9), 3), np.float32)
    x = x32.astype(half)
    want = (1 / (1 + np.exp(-x))).astype(half)           # NumPy's half loops round each step
    assert want.dtype == half
    for f in (lax.logistic, fgrad.jit(lax.logistic)):
        np.testing.assert_array_equal(np.asarray(f(fnp.asarray(x))).astype(np.float32), want.astype(np.float32))
    positive = np.abs(x32).astype(half)
    with np.errstate(divide="ignore", invalid="ignore"):
        want = (1 / np.sqrt(positive.astype(np.float32))).astype(half)
    for f in (lax.rsqrt, fgrad.jit(lax.rsqrt)):
        np.testing.assert_array_equal(np.asarray(f(fnp.asarray(positive))).astype(np.float32), want.astype(np.float32))
    inside = fnp.asarray((np.tanh(x32) * 0.9).astype(half))
    for loss, arg in ((lambda a: nn.sigmoid(a).astype(np.float32).sum(), fnp.asarray(x)),
                      (lambda a: nn.silu(a).astype(np.float32).sum(), fnp.asarray(x)),
                      (lambda a: fnp.arcsin(a).astype(np.float32).sum(), inside),
                      (lambda a: fnp.arcsinh(a).astype(np.float32).sum(), fnp.asarray(x))):
        eager, jitted = np.asarray(fgrad.grad(loss)(arg)), np.asarray(fgrad.jit(fgrad.grad(loss))(arg))
        np.testing.assert_array_equal(jitted.astype(np.float32), eager.astype(np.float32))
