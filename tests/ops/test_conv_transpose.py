"""``fgrad.lax.conv_transpose`` against recorded JAX outputs (scripts/record_jax_conv_transpose.py,
float64), under jit natively, and its defining property: with ``transpose_kernel=True`` it is the
input gradient of ``conv_general_dilated``."""
from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

import fgrad
from fgrad import lax
from fgrad import numpy as fnp
from tests.util import check_grads, natively

JAX = np.load(pathlib.Path(__file__).parent / "data" / "jax_conv_transpose.npz")
META = json.loads(str(JAX["meta"]))


def _args(k):
    strides, padding, rd, dn, tk = META[k]
    padding = padding if isinstance(padding, str) else [tuple(p) for p in padding]
    return dict(strides=tuple(strides), padding=padding, rhs_dilation=None if rd is None else tuple(rd),
                dimension_numbers=None if dn is None else tuple(dn), transpose_kernel=tk)


@pytest.fixture
def x64():
    fgrad.config.update("enable_x64", True)
    yield
    fgrad.config.update("enable_x64", False)


@pytest.mark.parametrize("k", range(len(META)))
def test_matches_jax_eager_and_jit(k, x64):
    lhs, rhs, want = JAX[f"lhs{k}"], JAX[f"rhs{k}"], JAX[f"out{k}"]
    kw = _args(k)
    got = lax.conv_transpose(fnp.asarray(lhs), fnp.asarray(rhs), **kw)
    assert got.shape == want.shape
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-12)
    jitted = natively(lambda a, b: lax.conv_transpose(a, b, **kw), lhs, rhs)
    np.testing.assert_allclose(jitted, want, rtol=1e-12, atol=1e-12)


def test_transpose_kernel_is_the_input_gradient_of_the_convolution():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8, 8, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 5)).astype(np.float32)
    dn = ("NHWC", "HWIO", "NHWC")
    forward = lambda x: lax.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=dn)
    ct = rng.standard_normal(np.shape(forward(x))).astype(np.float32)
    _, vjp = fgrad.vjp(forward, fnp.asarray(x))
    (want,) = vjp(fnp.asarray(ct))
    got = lax.conv_transpose(ct, w, (2, 2), "SAME", dimension_numbers=dn, transpose_kernel=True)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)


def test_gradients_match_finite_differences():
    rng = np.random.default_rng(1)
    lhs, rhs = rng.standard_normal((1, 3, 3, 2)), rng.standard_normal((2, 2, 2, 3))
    check_grads(lambda a, b: lax.conv_transpose(a, b, (2, 2), "SAME"), (lhs, rhs), order=1)


def test_mistakes_are_named():
    with pytest.raises(ValueError, match="padding must be 'SAME', 'VALID'"):
        lax.conv_transpose(fnp.ones((1, 3, 3, 1)), fnp.ones((2, 2, 1, 1)), (1, 1), "FULL")
    with pytest.raises(ValueError, match="no default layout for rank-6"):
        lax.conv_transpose(fnp.ones((1,) * 6), fnp.ones((1,) * 6), (1,) * 4, "SAME")
