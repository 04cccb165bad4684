"""Grouped and depthwise convolutions' gradients lower natively: the weight gradient of a conv
with feature_group_count = G is a conv with batch_group_count = G, which used to fall back."""
from __future__ import annotations

import numpy as np
import pytest

import fgrad
from fgrad import lax
from fgrad import numpy as fnp
from fgrad.compile import pipeline
from tests.lower.cuda_host import GXX
from tests.lower.test_gpu_vs_eager import run_on_emulated_gpu

CASES = [
    # (x shape NC..., groups, out features, kernel, strides, padding, lhs_dil, rhs_dil)
    ((2, 4, 9), 2, 6, (3,), (2,), ((1, 0),), (1,), (2,)),                  # 1-D grouped
    ((2, 6, 7), 6, 6, (3,), (1,), ((1, 1),), (1,), (1,)),                  # 1-D depthwise
    ((3, 4, 6, 5), 2, 4, (3, 2), (1, 2), ((1, 1), (0, 1)), (1, 1), (1, 2)),  # 2-D grouped
    ((2, 3, 7, 7), 3, 6, (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1), (1, 1)),  # 2-D depthwise, x2
    ((2, 4, 5, 6), 4, 4, (2, 3), (1, 1), ((0, 0), (2, 1)), (2, 1), (1, 1)),  # lhs dilation
    ((2, 4, 4, 5, 4), 2, 2, (2, 3, 2), (1, 2, 1), ((1, 0), (1, 1), (0, 1)), (1, 1, 1), (2, 1, 1)),  # 3-D
    ((1, 8, 30, 30), 8, 8, (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), (1, 1)),  # depthwise, wide
]


def _loss(case):
    x_shape, groups, out_feat, kernel, strides, padding, lhs_dil, rhs_dil = case

    def loss(x, w):
        y = lax.conv_general_dilated(x, w, strides, padding, lhs_dil, rhs_dil,
                                     feature_group_count=groups)
        return fnp.sum(fnp.sin(y) * y)
    return loss


def _args(case, dtype=np.float32, seed=0):
    x_shape, groups, out_feat, kernel = case[:4]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal((out_feat, x_shape[1] // groups, *kernel)).astype(dtype)
    return fnp.asarray(x), fnp.asarray(w)


def _native(f, *args):
    before = dict(pipeline.compiled_by_path)
    out = f(*args)
    if pipeline.native_enabled():
        assert pipeline.compiled_by_path["reference"] == before.get("reference", 0), "fell back"
        assert pipeline.compiled_by_path["native"] == before.get("native", 0) + 1, "not compiled"
    return out


@pytest.mark.parametrize("case", CASES, ids=[f"{len(c[0]) - 2}d-g{c[1]}" for c in CASES])
def test_grouped_conv_gradients_compile_natively(case):
    loss = _loss(case)
    x, w = _args(case)
    grad = fgrad.grad(loss, argnums=(0, 1))
    got = _native(fgrad.jit(grad), x, w)
    want = grad(x, w)
    for g, e in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(e), rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("case", CASES[:3] + CASES[5:6], ids=["1d-g2", "1d-dw", "2d-g2", "3d-g2"])
def test_grouped_conv_weight_gradient_matches_finite_differences(case):
    loss = _loss(case)
    with fgrad.config.override(enable_x64=True):
        x, w = _args(case, np.float64, seed=1)
        gw = np.asarray(_native(fgrad.jit(fgrad.grad(loss, argnums=1)), x, w))
        rng = np.random.default_rng(2)
        for _ in range(3):
            t = rng.standard_normal(gw.shape)
            eps = 1e-5
            fd = (float(loss(x, fnp.asarray(np.asarray(w) + eps * t)))
                  - float(loss(x, fnp.asarray(np.asarray(w) - eps * t)))) / (2 * eps)
            np.testing.assert_allclose(np.vdot(gw, t), fd, rtol=1e-6, atol=1e-6)


def test_batch_group_conv_directly():
    # lhs (N=4, C=3), B=2 groups of 2 images; rhs O=4 (2 per group), I=3
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((4, 3, 6, 5)).astype(np.float32), rng.standard_normal((4, 3, 2, 2)).astype(np.float32)
    conv = lambda x, w: lax.conv_general_dilated(x, w, (1, 2), ((1, 0), (0, 1)), (1, 1), (2, 1),
                                                 batch_group_count=2)
    got = _native(fgrad.jit(conv), fnp.asarray(x), fnp.asarray(w))
    want = conv(fnp.asarray(x), fnp.asarray(w))
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)
    ints = lambda a: fnp.asarray(np.round(a * 3).astype(np.int32))
    got = _native(fgrad.jit(conv), ints(x), ints(w))
    np.testing.assert_array_equal(np.asarray(got), np.asarray(conv(ints(x), ints(w))))


@pytest.mark.skipif(GXX is None, reason="g++ is not on PATH")
@pytest.mark.parametrize("case", [CASES[0], CASES[3], CASES[5]], ids=["1d-g2", "2d-dw", "3d-g2"])
def test_grouped_conv_gradients_on_the_emulated_gpu(case, tmp_path):
    grad = fgrad.grad(_loss(case), argnums=(0, 1))
    x, w = _args(case)
    got = run_on_emulated_gpu(grad, (x, w), tmp_path)
    assert got is not None, "the GPU lowering fell back"
    for g, e in zip(got, grad(x, w)):
        np.testing.assert_allclose(np.asarray(g).reshape(np.shape(e)), np.asarray(e), rtol=2e-4, atol=2e-4)
