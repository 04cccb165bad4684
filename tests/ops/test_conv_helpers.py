"""jax.lax's convolution helpers: conv, conv_with_general_padding, conv_general_dilated_patches,
conv_general_dilated_local (values recorded from jax.lax 0.10.2 in data/jax_conv_helpers.npz by
running ``cases`` with jax.lax), conv_shape_tuple, conv_transpose_shape_tuple and
conv_general_permutations (answers recorded from jax 0.10.2); jit, vmap, grad vs finite
differences."""
import pathlib

import numpy as np
import pytest

import fgrad
from fgrad import lax
from tests.util import check_grads, check_vmap

JAX = np.load(pathlib.Path(__file__).parent / "data" / "jax_conv_helpers.npz")
RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 5, 4, 3)).astype(np.float32)
XC = RNG.standard_normal((2, 3, 6, 5)).astype(np.float32)
W = RNG.standard_normal((4, 3, 2, 3)).astype(np.float32)
WL = RNG.standard_normal((4, 18, 5, 3)).astype(np.float32)
WL_WHIO = RNG.standard_normal((1, 4, 18, 4)).astype(np.float32)


def cases(l):
    out = {"conv_valid": l.conv(XC, W, (1, 2), "VALID"), "conv_same": l.conv(XC, W, (2, 1), "SAME"),
           "cwgp": l.conv_with_general_padding(XC, W, (1, 1), [(1, 0), (2, 1)], (2, 1), (1, 2))}
    out["patches_nhwc"] = l.conv_general_dilated_patches(X, (2, 3), (1, 1), "VALID",
                                                         dimension_numbers=("NHWC", "OIHW", "NHWC"))
    out["patches_whio"] = l.conv_general_dilated_patches(X, (3, 2), (1, 1), "VALID",
                                                         dimension_numbers=("NHWC", "WHIO", "NHWC"))
    out["patches_def"] = l.conv_general_dilated_patches(XC, (2, 2), (2, 1), "SAME", rhs_dilation=(1, 2))
    out["patches_int"] = l.conv_general_dilated_patches(np.arange(120, dtype=np.int32).reshape(2, 3, 5, 4),
                                                        (3, 2), (1, 1), "VALID")
    out["local_def"] = l.conv_general_dilated_local(XC, WL, (1, 1), "VALID", (2, 3))
    out["local_nhwc"] = l.conv_general_dilated_local(X, WL_WHIO, (2, 1), "VALID", (3, 2),
                                                     dimension_numbers=("NHWC", "WHIO", "NHWC"))
    return {k: np.asarray(v) for k, v in out.items()}


RESULTS = cases(lax)


@pytest.mark.parametrize("name", sorted(JAX.files))
def test_matches_recorded_jax(name):
    want, got = JAX[name], RESULTS[name]
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_patches_are_exact_windows():
    p = np.asarray(lax.conv_general_dilated_patches(XC, (2, 3), (1, 1), "VALID"))
    for c in range(3):
        for i in range(2):
            for j in range(3):
                np.testing.assert_array_equal(p[:, c * 6 + i * 3 + j], XC[:, c, i:i + 5, j:j + 3])


def test_jit_grad_vmap():
    f = lambda x: lax.conv_general_dilated_patches(x, (2, 2), (1, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_array_equal(fgrad.jit(f)(X), f(X))
    check_grads(f, (X,), order=1)
    check_vmap(f, (np.stack([X, -X]),))
    g = lambda x, w: lax.conv_general_dilated_local(x, w, (1, 1), "VALID", (2, 3))
    np.testing.assert_allclose(fgrad.jit(g)(XC, WL), g(XC, WL), rtol=1e-5, atol=1e-5)
    check_grads(g, (XC, WL), order=1, rtol=1e-4, atol=1e-4)
    check_vmap(g, (np.stack([XC, -XC]), WL), in_axes=(0, None))
    h = lambda x, w: lax.conv_with_general_padding(x, w, (1, 1), [(1, 0), (2, 1)], (2, 1), (1, 2))
    check_grads(h, (XC, W), order=1, rtol=1e-4, atol=1e-4)


def test_shape_helpers_match_jax():   # answers recorded from jax 0.10.2
    perms = lax.conv_general_permutations
    assert perms(("NHWC", "HWIO", "NHWC")) == ((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))
    assert perms(("NHWC", "HWOI", "NWHC")) == ((0, 3, 1, 2), (2, 3, 0, 1), (0, 3, 2, 1))
    assert perms(("NCHW", "OIHW", "NCHW")) == ((0, 1, 2, 3),) * 3
    with pytest.raises(ValueError):
        perms(("NHWC", "HWIO"))
    with pytest.raises(TypeError, match="exactly once"):
        perms(("NHWC", "HWIX", "NHWC"))
    cst = lax.conv_shape_tuple
    assert cst((2, 3, 10, 10), (4, 3, 3, 3), (1, 2), "SAME") == (2, 4, 10, 5)
    assert cst((2, 3, 10, 10), (4, 3, 3, 3), (1, 2), [(1, 0), (0, 2)]) == (2, 4, 9, 5)
    assert cst((4, 3, 10, 10), (4, 3, 3, 3), (1, 2), "VALID", 2) == (2, 4, 8, 4)
    assert cst((2, 3, 10), (4, 3, 30), (1,), "VALID") == (2, 4, 0)
    with pytest.raises(TypeError):      # JAX silently drops the second spatial dimension here
        cst((2, 3, 10, 10), (4, 3, 3, 3), (1,), "VALID")
    ctst, dn = lax.conv_transpose_shape_tuple, ("NHWC", "HWIO", "NHWC")
    assert ctst((2, 10, 10, 3), (3, 3, 3, 4), (2, 2), "SAME", dn) == (2, 20, 20, 4)
    assert ctst((2, 10, 10, 3), (3, 3, 3, 4), (2, 2), "VALID", dn) == (2, 21, 21, 4)
    assert ctst((2, 10, 10, 3), (3, 3, 3, 4), (2, 1), [(1, 2), (0, 0)], dn) == (2, 20, 8, 4)
    with pytest.raises(TypeError):
        ctst((2, 3, 10, 10), (4, 3, 3, 3), (2, 2), "SAME", None)


def test_transpose_shape_tuple_agrees_with_conv_transpose():
    x, w = np.ones((2, 7, 6, 3), np.float32), np.ones((3, 2, 3, 4), np.float32)
    for padding in ["SAME", "VALID", [(1, 2), (0, 1)]]:
        out = lax.conv_transpose(x, w, (2, 3), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))
        assert out.shape == lax.conv_transpose_shape_tuple(x.shape, w.shape, (2, 3), padding, ("NHWC", "HWIO", "NHWC"))


def test_errors():
    with pytest.raises(ValueError, match="filter_shape"):
        lax.conv_general_dilated_patches(XC, (2,), (1, 1), "VALID")
    with pytest.raises(TypeError, match="I dimension"):
        lax.conv_general_dilated_local(XC, WL[:, :17], (1, 1), "VALID", (2, 3))
    with pytest.raises(ValueError, match="precision"):
        lax.conv(XC, W, (1, 1), "VALID", precision="fast")
