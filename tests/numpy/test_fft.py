"""``fgrad.numpy.fft`` (issue 17): values vs NumPy (hypothesis), jit natively (pocketfft through a
host callback inside the native program) vs eager, gradients vs JAX's (recorded by
scripts/record_jax_complex.py) and finite differences, vmap vs a Python loop."""
from __future__ import annotations

import pathlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import fgrad
from fgrad import lax
from fgrad import numpy as fnp
from fgrad.compile import pipeline
from tests.util import check_grads, check_vmap, natively

JAX = np.load(pathlib.Path(__file__).parent / "data" / "jax_complex.npz")
F = fnp.fft
C64, F32 = np.dtype(np.complex64), np.dtype(np.float32)

_PART = st.floats(-4, 4, width=32, allow_subnormal=False)
shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5)


def _complex(shape):
    return hnp.arrays(C64, shape, elements=st.builds(complex, _PART, _PART))


def _real(shape):
    return hnp.arrays(F32, shape, elements=_PART)


def _close(got, want, dtype, tol=2e-4):
    got = np.asarray(got)
    assert got.dtype == dtype and got.shape == np.shape(want), (got.dtype, got.shape, np.shape(want))
    scale = max(1.0, float(np.max(np.abs(want), initial=0)))
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


ONE_D = {"fft": ("complex", C64), "ifft": ("complex", C64), "rfft": ("real", C64), "irfft": ("complex", F32),
         "hfft": ("complex", F32), "ihfft": ("real", C64)}
N_D = {"fftn": ("complex", C64), "ifftn": ("complex", C64), "rfftn": ("real", C64), "irfftn": ("complex", F32),
       "fft2": ("complex", C64), "ifft2": ("complex", C64), "rfft2": ("real", C64), "irfft2": ("complex", F32)}


@pytest.mark.parametrize("name", sorted(ONE_D))
@given(data=st.data(), norm=st.sampled_from([None, "backward", "ortho", "forward"]))
def test_one_axis_transforms_match_numpy(name, data, norm):
    kind, dtype = ONE_D[name]
    shape = data.draw(shapes)
    a = data.draw(_complex(shape) if kind == "complex" else _real(shape))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    n = data.draw(st.one_of(st.none(), st.integers(2 if "ir" in name or name == "hfft" else 1, 7)))
    try:
        want = getattr(np.fft, name)(a.astype(np.complex128 if kind == "complex" else np.float64), n, axis, norm)
    except ValueError:                       # irfft of one point: no output length (n = 0)
        with pytest.raises(ValueError, match="at least 1"):
            getattr(F, name)(fnp.asarray(a), n, axis, norm)
        return
    _close(getattr(F, name)(fnp.asarray(a), n, axis, norm), want, dtype)


@pytest.mark.parametrize("name", sorted(N_D))
@given(data=st.data(), norm=st.sampled_from([None, "ortho", "forward"]))
def test_many_axes_transforms_match_numpy(name, data, norm):
    kind, dtype = N_D[name]
    shape = data.draw(hnp.array_shapes(min_dims=2, max_dims=3, min_side=2, max_side=5))
    a = data.draw(_complex(shape) if kind == "complex" else _real(shape))
    axes = (-2, -1) if name.endswith("2") else data.draw(st.sampled_from([None, (0, -1), (-1, 0), (1,)]))
    s = None
    if data.draw(st.booleans()):
        k = len(shape) if axes is None else len(axes)
        s = tuple(data.draw(st.integers(2, 6)) for _ in range(k))
    wide = a.astype(np.complex128 if kind == "complex" else np.float64)
    np_axes = axes if axes is not None or s is None else tuple(range(len(shape)))   # NumPy 2 wants them
    want = getattr(np.fft, name)(wide, s=s, axes=np_axes, norm=norm)
    got = getattr(F, name)(fnp.asarray(a), s=s, axes=axes, norm=norm) if axes is not None else \
        getattr(F, name)(fnp.asarray(a), s=s, norm=norm)
    _close(got, want, dtype)


def test_frequencies_shifts_and_dtypes_match_numpy():
    np.testing.assert_allclose(np.asarray(F.fftfreq(7, 0.25)), np.fft.fftfreq(7, 0.25), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(F.rfftfreq(8, 2.0)), np.fft.rfftfreq(8, 2.0), rtol=1e-6)
    assert F.fftfreq(4).dtype == F32 and F.fftfreq(4, dtype=fnp.float16).dtype == np.float16
    x = np.arange(30.0).reshape(5, 6)
    np.testing.assert_array_equal(np.asarray(F.fftshift(fnp.asarray(x))), np.fft.fftshift(x))
    np.testing.assert_array_equal(np.asarray(F.ifftshift(fnp.asarray(x), axes=0)), np.fft.ifftshift(x, axes=0))
    np.testing.assert_array_equal(np.asarray(F.ifftshift(F.fftshift(fnp.asarray(x), 1), 1)), x)
    assert F.fft(fnp.arange(4)).dtype == C64 and F.rfft(fnp.ones(4, fnp.float16)).dtype == C64
    with fgrad.config.override(enable_x64=True):
        assert F.fft(fnp.arange(4)).dtype == np.complex128 and F.rfft(fnp.ones(4)).dtype == np.complex128
        assert F.rfft(fnp.ones(4, fnp.float32)).dtype == C64


def test_errors_name_the_mistake():
    with pytest.raises(TypeError, match="does not support complex-valued inputs"):
        F.rfft(fnp.ones(4, fnp.complex64))
    with pytest.raises(ValueError, match="invalid norm"):
        F.fft(fnp.ones(4), norm="unitary")
    with pytest.raises(ValueError, match="repeated axes"):
        F.fftn(fnp.ones((2, 2)), axes=(0, 0))
    with pytest.raises(ValueError, match="at least 1"):
        F.fft(fnp.ones(4), n=0)
    with pytest.raises(TypeError, match="complex operand"):
        lax.fft(fnp.ones(4), "FFT", (4,))
    with pytest.raises(ValueError, match="at least 1"):
        F.rfft(fnp.ones(0))                                # one output element of no data points


@pytest.mark.parametrize("name, shape, out_shape, dtype", [
    ("fft2", (0, 2), (0, 2), np.complex64), ("ifft", (3, 0), (3, 0), np.complex64),
    ("fftn", (2, 0, 3), (2, 0, 3), np.complex64), ("rfftn", (0, 3), (0, 2), np.complex64),
    ("irfft2", (0, 2), (0, 2), np.float32), ("rfft", (0, 4), (0, 3), np.complex64)])
def test_transforms_of_empty_arrays_are_empty(name, shape, out_shape, dtype):
    """JAX's answer for an array empty along a transformed axis (NumPy raises): an empty array
    of the output's shape and dtype, eagerly, under jit and under grad (fuzz seed 7099)."""
    x = np.zeros(shape, np.complex64 if name.startswith("irfft") else np.float32)
    f = getattr(F, name)
    for got in (f(x), fgrad.jit(f)(x), f(x, norm="ortho")):
        assert got.shape == out_shape and got.dtype == dtype
    if not name.startswith("irfft"):
        g = fgrad.grad(lambda a: fnp.sum(fnp.abs(f(a))))(x)
        assert g.shape == shape


# --- jit: natively, the transform through a host callback inside the program ------------------------

PROGRAMS = {
    "fft": lambda a: F.fft(a * 2) + 1j,
    "ifft_n": lambda a: F.ifft(a, n=7, axis=0),
    "rfft_abs": lambda a: fnp.abs(F.rfft(fnp.real(a))) ** 2,
    "irfft": lambda a: F.irfft(a, n=6) * 3.0,
    "fftn_ortho": lambda a: F.fftn(a, norm="ortho"),
    "rfft2_irfft2": lambda a: F.irfft2(F.rfft2(fnp.imag(a)), s=(4, 5)),
    "shifted": lambda a: F.fftshift(F.fft2(a)),
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_jit_runs_natively_and_matches_eager(name):
    rng = np.random.default_rng(3)
    a = fnp.asarray((rng.standard_normal((4, 5)) + 1j * rng.standard_normal((4, 5))).astype(C64))
    f = PROGRAMS[name]
    want = np.asarray(f(a))
    before = pipeline.compiled_by_path["native"]
    got = natively(f, a)
    assert pipeline.compiled_by_path["native"] == before + 1 or not pipeline.native_enabled()
    _close(got, want, want.dtype, tol=1e-6)


@settings(max_examples=6)   # each example compiles a program
@given(data=st.data())
def test_jit_of_random_transforms_matches_eager(data):
    a = fnp.asarray(data.draw(_complex(data.draw(shapes))))
    name = data.draw(st.sampled_from(["fft", "ifft", "irfft", "fftn", "ifftn", "irfftn"]))
    f = getattr(F, name)
    if name.startswith("irfft") and a.shape[-1] == 1:     # 2 * (1 - 1) = 0 points: an error (NumPy's too)
        with pytest.raises(ValueError, match="invalid number of data points"):
            f(a)
        return
    _close(natively(f, a), np.asarray(f(a)), np.asarray(f(a)).dtype, tol=1e-6)


# --- differentiation ---------------------------------------------------------------------------------

FFT_FUNCS = {
    "fft": lambda z, w: fnp.sum(fnp.abs(F.fft(z, axis=0)) ** 2 * w),
    "ifft": lambda z, w: fnp.sum(fnp.real(F.ifft(z, n=6) * fnp.conj(z[:, :1]))),
    "rfft": lambda z, w: fnp.sum(fnp.abs(F.rfft(fnp.real(z) * fnp.imag(z), n=5)) ** 2),
    "irfft": lambda z, w: fnp.sum(F.irfft(z[:, :3], n=4) * w),
    "irfft_odd": lambda z, w: fnp.sum(F.irfft(z, n=7) ** 2),
    "fftn_ortho": lambda z, w: fnp.sum(fnp.imag(F.fftn(z, norm="ortho")) * w),
    "rfft2": lambda z, w: fnp.sum(fnp.abs(F.rfft2(fnp.real(z))) * F.rfftfreq(4)),
    "irfftn_forward": lambda z, w: fnp.sum(fnp.sin(F.irfftn(z, s=(3, 5), norm="forward"))),
    "hfft": lambda z, w: fnp.sum(F.hfft(z) ** 2),
    "shift": lambda z, w: fnp.sum(fnp.real(F.fftshift(F.ifft2(z)) * w)),
}


@pytest.mark.parametrize("name", sorted(FFT_FUNCS))
def test_grads_match_jax(name):
    with fgrad.config.override(enable_x64=True):
        z, w = fnp.asarray(JAX["FFT_Z"]), fnp.asarray(JAX["FFT_Z"].imag)
        f = FFT_FUNCS[name]
        value, grad = fgrad.value_and_grad(f)(z, w)
        np.testing.assert_allclose(float(value), JAX[f"fft_value_{name}"], rtol=1e-12)
        np.testing.assert_allclose(np.asarray(grad), JAX[f"fft_grad_{name}"], rtol=1e-10, atol=1e-10)
        jitted = fgrad.jit(fgrad.grad(f))(z, w)                          # the backward pass compiled
        np.testing.assert_allclose(np.asarray(jitted), JAX[f"fft_grad_{name}"], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("fft_type, make", [
    ("FFT", lambda x, y: lax.complex(x, y)), ("IFFT", lambda x, y: lax.complex(x, y)),
    ("RFFT", lambda x, y: x * y), ("IRFFT", lambda x, y: lax.complex(x, y)[:, :3])])
def test_transform_primitive_grads_match_finite_differences(fft_type, make):
    """Both modes of the primitive (jvp: the transform; vjp: JAX's transposes) to second order,
    through real and imaginary parts, in float64."""
    lengths = (4,) if fft_type != "IRFFT" else (5,)

    def f(x, y):
        out = lax.fft(make(x, y), fft_type, lengths)
        parts = (fnp.real(out), fnp.imag(out)) if fnp.iscomplexobj(out) else (out, out * out)
        return parts[0] * parts[1] + fnp.sin(parts[0])
    rng = np.random.default_rng(0)
    check_grads(f, (rng.standard_normal((3, 4)), rng.standard_normal((3, 4))), order=2, eps=1e-5)


@pytest.mark.parametrize("name", ["fft", "irfft", "rfft", "fftn_ortho"])
def test_vmap_matches_a_python_loop(name):
    rng = np.random.default_rng(1)
    zs = fnp.asarray((rng.standard_normal((3, 3, 4)) + 1j * rng.standard_normal((3, 3, 4))).astype(C64))
    w = fnp.asarray(rng.standard_normal((3, 4)).astype(F32))
    check_vmap(FFT_FUNCS[name], (zs, w), in_axes=(0, None), rtol=1e-4, atol=1e-4)
    check_vmap(lambda z: F.fft2(z), (zs,), in_axes=2, rtol=1e-5, atol=1e-5)
    check_vmap(fgrad.grad(FFT_FUNCS[name]), (zs, w), in_axes=(0, None), rtol=1e-4, atol=1e-4)
    batched = fgrad.jit(fgrad.vmap(lambda z: F.irfft(z)))                 # vmap inside jit, natively
    np.testing.assert_allclose(natively(batched, zs), np.asarray(F.irfft(zs)), rtol=1e-5, atol=1e-5)
