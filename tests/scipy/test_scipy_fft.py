"""fgrad.scipy.fft (dct, idct, dctn, idctn; type 2 as in JAX) against scipy.fft in float32 and
float64, JAX 0.10.2's recorded output dtypes (integer, float16, complex input), jit (natively),
grad vs finite differences, vmap vs a loop, and the errors for what JAX does not implement."""
from __future__ import annotations

import pathlib

import numpy as np
import pytest
import scipy.fft

import fgrad
import fgrad.scipy.fft as fft
from fgrad import numpy as fnp
from tests.util import check_grads, check_jit_matches_eager, check_vmap

RECORDED = np.load(pathlib.Path(__file__).parent / "data" / "scipy_more_jax.npz")
RNG = np.random.default_rng(0)
TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


def _x(shape, dtype):
    return RNG.standard_normal(shape).astype(dtype)


def _close(got, want, dtype):
    got = np.asarray(got)
    assert got.dtype == np.dtype(dtype) and got.shape == want.shape
    scale = max(1.0, float(np.max(np.abs(want))))
    np.testing.assert_allclose(got, want, rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["atol"] * scale)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["dct", "idct"])
@pytest.mark.parametrize("shape,axis", [((1,), -1), ((7,), 0), ((8,), -1), ((3, 5), 0), ((3, 5), 1), ((2, 3, 4), 1)])
@pytest.mark.parametrize("n", [None, 3, 9])
@pytest.mark.parametrize("norm", [None, "backward", "ortho"])
def test_one_axis_matches_scipy(dtype, name, shape, axis, n, norm):
    x = _x(shape, dtype)
    with fgrad.config.override(enable_x64=dtype == np.float64):
        got = getattr(fft, name)(x, n=n, axis=axis, norm=norm)
    _close(got, getattr(scipy.fft, name)(x, n=n, axis=axis, norm=norm), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["dctn", "idctn"])
@pytest.mark.parametrize("s,axes", [(None, None), (None, (0, 2)), (None, (-1,)), ((3,), None), ((2, 6), None),
                                    ((5, 1, 2), None), ((4, 2), (2, 0)), (2, 1)])
@pytest.mark.parametrize("norm", [None, "ortho"])
def test_n_axes_match_scipy(dtype, name, s, axes, norm):
    x = _x((3, 4, 5), dtype)
    with fgrad.config.override(enable_x64=dtype == np.float64):
        got = getattr(fft, name)(x, s=s, axes=axes, norm=norm)
    want = getattr(scipy.fft, name)(x, s=(s,) if isinstance(s, int) else s,
                                    axes=(axes,) if isinstance(axes, int) else axes, norm=norm)
    _close(got, want, dtype)


@pytest.mark.parametrize("name", ["dct", "idct", "dctn", "idctn"])
def test_complex_input_transforms_both_parts_as_scipy(name):
    x = (_x((3, 4), np.float32) + 1j * _x((3, 4), np.float32)).astype(np.complex64)
    got = np.asarray(getattr(fft, name)(x, norm="ortho"))
    assert got.dtype == np.complex64
    np.testing.assert_allclose(got, getattr(scipy.fft, name)(x, norm="ortho"), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("norm", [None, "ortho"])
def test_idct_inverts_dct(norm):
    x = _x((4, 6), np.float32)
    np.testing.assert_allclose(np.asarray(fft.idct(fft.dct(x, norm=norm), norm=norm)), x, atol=1e-5)
    np.testing.assert_allclose(np.asarray(fft.idctn(fft.dctn(x, norm=norm), norm=norm)), x, atol=1e-5)


@pytest.mark.parametrize("kind", ["int", "half", "complex"])
@pytest.mark.parametrize("name", ["dct", "idct", "dctn", "idctn"])
def test_dtypes_and_values_are_jaxs(kind, name):
    """Integer and float16 input give float32 (complex64 stays complex64), as JAX's."""
    x = {"int": np.arange(6, dtype=np.int32).reshape(2, 3),
         "half": (np.arange(6, dtype=np.float16) / 3).reshape(2, 3),
         "complex": (np.arange(6) + 1j * np.arange(6)[::-1]).reshape(2, 3).astype(np.complex64)}[kind]
    kwargs = {"dct": {}, "idct": {"norm": "ortho"}, "dctn": {}, "idctn": {"s": (3, 2)}}[name]
    got, want = np.asarray(getattr(fft, name)(x, **kwargs)), RECORDED[f"{name}/x32/{kind}"]
    assert got.dtype == want.dtype
    rtol = 5e-3 if kind == "half" else 1e-5   # float16 intermediates round differently from JAX's
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.max(np.abs(want)))


def test_int32_input_with_64_bit_is_float32_as_jax():
    """JAX 0.10.2 computes an int32 input in float32 under 64-bit too (fgrad.numpy's rule)."""
    with fgrad.config.override(enable_x64=True):
        assert np.asarray(fft.dct(np.arange(6, dtype=np.int32).reshape(2, 3))).dtype == np.float32


@pytest.mark.parametrize("f", [lambda x: fft.dct(x, n=7, axis=0, norm="ortho"),
                               lambda x: fft.idct(x, n=4),
                               lambda x: fft.dctn(x, s=(4, 6)),
                               lambda x: fft.idctn(x, axes=(1, 0), norm="ortho")],
                         ids=["dct", "idct", "dctn", "idctn"])
def test_jit_is_native_and_matches_eager(f):
    check_jit_matches_eager(f, (fnp.asarray(_x((5, 6), np.float32)),), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("f", [lambda x: fft.dct(x, n=6, norm="ortho"), lambda x: fft.idct(x, axis=0),
                               lambda x: fft.dctn(x, s=(2, 5)), lambda x: fft.idctn(x, norm="ortho")],
                         ids=["dct", "idct", "dctn", "idctn"])
def test_grad_matches_finite_differences(f):
    check_grads(f, (_x((3, 5), np.float64),), order=1)


def test_vmap_matches_a_loop():
    xs = _x((4, 3, 5), np.float32)
    check_vmap(lambda x: fft.dct(x, axis=0, norm="ortho"), (xs,), rtol=1e-5, atol=1e-5)
    check_vmap(lambda x: fft.idctn(x, s=(2, 4)), (xs,), in_axes=1, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["dct", "idct", "dctn", "idctn"])
def test_unsupported_types_and_norms_are_clear_errors(name):
    transform = getattr(fft, name)
    for dct_type in (1, 3, 4):
        with pytest.raises(NotImplementedError, match=f"type {dct_type}.*only type=2"):
            transform(np.ones(4), type=dct_type)
    with pytest.raises(ValueError, match="norm='forward'.*'ortho'"):
        transform(np.ones(4), norm="forward")


def test_shape_errors():
    with pytest.raises(ValueError, match="at most x.ndim"):
        fft.dctn(np.ones((2, 3)), s=(2, 2, 2))
    with pytest.raises(ValueError, match="repeated axes"):
        fft.idctn(np.ones((2, 3)), axes=(1, -1))
    with pytest.raises(ValueError, match="same length"):
        fft.dctn(np.ones((2, 3)), s=(2,), axes=(0, 1))
    with pytest.raises(ValueError, match="at least 1"):
        fft.dct(np.ones(3), n=0)


def test_import_forms():
    import fgrad.scipy as fsp
    assert fsp.fft.dct is fft.dct
