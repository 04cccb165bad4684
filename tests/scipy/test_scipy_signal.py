"""fgrad.scipy.signal against SciPy (values), JAX 0.10.2's recorded outputs where JAX differs from
SciPy (tests/scipy/data/signal_jax.npz, written by scripts/record_signal_jax.py), jit (native path)
vs eager, grad vs finite differences and vmap vs a loop."""
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.signal as ss
from hypothesis import given, strategies as st

import fgrad
import fgrad.scipy as fscipy
import fgrad.scipy.signal as fss
from fgrad import numpy as fnp
from fgrad.scipy._windows import get_window

sys.path.insert(0, str(Path(__file__).parent))
from signal_cases import cases, cumsum_detrend  # noqa: E402
from tests.util import check_grads, check_jit_matches_eager, check_vmap, natively  # noqa: E402

RECORDED = np.load(Path(__file__).parent / "data" / "signal_jax.npz")
MODES = ("full", "same", "valid")
SHAPE_PAIRS = [((7,), (3,)), ((3,), (7,)), ((4,), (4,)), ((5, 6), (2, 3)), ((2, 3), (5, 6)), ((3, 4, 3), (2, 2, 2))]


def _rand(rng, shape, dtype=np.float32):
    x = rng.standard_normal(shape)
    if np.issubdtype(dtype, np.complexfloating):
        x = x + 1j * rng.standard_normal(shape)
    return x.astype(dtype)


def test_module_layout():
    import importlib
    assert importlib.import_module("fgrad.scipy.signal") is fscipy.signal is fss
    assert importlib.import_module("fgrad.scipy.ndimage") is fscipy.ndimage
    assert set(fss.__all__) >= {"convolve", "correlate", "convolve2d", "correlate2d", "fftconvolve", "detrend",
                                "stft", "istft", "csd", "welch"}


@pytest.mark.parametrize("shapes", SHAPE_PAIRS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["convolve", "correlate", "fftconvolve"])
def test_nd_convolutions_match_scipy(name, mode, shapes):
    rng = np.random.default_rng(0)
    a, b = _rand(rng, shapes[0]), _rand(rng, shapes[1])
    got = getattr(fss, name)(a, b, mode)
    want = getattr(ss, name)(a, b, mode)
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shapes", [s for s in SHAPE_PAIRS if len(s[0]) == 2] + [((4, 4), (4, 4)), ((3, 5), (3, 2))])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["convolve2d", "correlate2d"])
@pytest.mark.parametrize("dtype", [np.float32, np.complex64])
def test_2d_convolutions_match_scipy(name, mode, shapes, dtype):
    rng = np.random.default_rng(1)
    a, b = _rand(rng, shapes[0], dtype), _rand(rng, shapes[1], dtype)
    if mode == "valid" and not (all(x >= y for x, y in zip(*shapes)) or all(x <= y for x, y in zip(*shapes))):
        with pytest.raises(ValueError, match="smaller than the other in every dimension"):
            getattr(fss, name)(a, b, mode)
        return
    got = getattr(fss, name)(a, b, mode)
    want = getattr(ss, name)(a, b, mode)
    assert got.shape == want.shape and got.dtype == dtype
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["convolve", "correlate", "fftconvolve"])
def test_float64_and_complex128_match_scipy(name, mode):
    rng = np.random.default_rng(2)
    with fgrad.config.override(enable_x64=True):
        for dtype in (np.float64, np.complex128):
            a, b = _rand(rng, (6, 5), dtype), _rand(rng, (3, 2), dtype)
            got = getattr(fss, name)(a, b, mode)
            assert got.dtype == dtype
            np.testing.assert_allclose(np.asarray(got), getattr(ss, name)(a, b, mode), rtol=1e-12, atol=1e-12)
        mixed = getattr(fss, name)(_rand(rng, (5,), np.float32), _rand(rng, (3,), np.complex64), mode)
        assert mixed.dtype == np.complex64


@given(st.integers(1, 3), st.data())
def test_convolve_property_matches_scipy(ndim, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    big = tuple(data.draw(st.integers(1, 6)) for _ in range(ndim))
    small = tuple(data.draw(st.integers(1, b)) for b in big)
    shapes = (big, small) if data.draw(st.booleans()) else (small, big)
    mode = data.draw(st.sampled_from(MODES))
    method = data.draw(st.sampled_from(["auto", "direct", "fft"]))
    a, b = _rand(rng, shapes[0]), _rand(rng, shapes[1])
    for name in ("convolve", "correlate"):
        got = getattr(fss, name)(a, b, mode, method=method)
        np.testing.assert_allclose(np.asarray(got), getattr(ss, name)(a, b, mode, method="direct"),
                                   rtol=1e-4, atol=1e-4)


def test_integer_inputs_promote_as_jax():
    a, b = np.arange(6, dtype=np.int32), np.array([1, 2, 1], np.int32)
    for fn in (fss.convolve, fss.correlate, fss.fftconvolve):
        assert fn(a, b).dtype == np.float32
        np.testing.assert_allclose(np.asarray(fn(a, b)), getattr(ss, fn.__name__)(a, b), atol=1e-5)
    assert fss.convolve2d(a.reshape(2, 3), b[None]).dtype == np.float32
    assert fss.detrend(a).dtype == np.float32
    assert fss.welch(a, nperseg=4)[1].dtype == np.float32
    with fgrad.config.override(enable_x64=True):   # JAX 0.10.2: int32 still computes in float32
        assert fss.convolve(a, b).dtype == np.float32
        assert fss.csd(a, a, nperseg=4)[1].dtype == np.complex64
        assert fss.stft(a, nperseg=4)[2].dtype == np.complex64
        a64 = a.astype(np.int64)
        assert fss.convolve(a64, a64).dtype == np.float64


def test_jax_docstring_examples():
    x, y = np.array([1, 2, 3, 2, 1]), np.array([1, 1, 1])
    assert np.asarray(fss.convolve(x, y, mode="same")).tolist() == [3, 6, 7, 6, 3]
    assert np.asarray(fss.correlate(x, np.array([1, 3, 2]))).tolist() == [2, 7, 13, 15, 11, 5, 1]
    np.testing.assert_allclose(np.asarray(fss.fftconvolve(x, y, mode="valid")), [6, 7, 6], atol=1e-5)
    a, b = np.array([[1, 2], [3, 4]]), np.array([[2, 1, 1], [4, 3, 4], [1, 3, 2]])
    assert np.asarray(fss.convolve2d(a, b, mode="valid")).tolist() == [[22, 17], [30, 32]]
    np.testing.assert_allclose(np.asarray(fss.detrend(np.array([1.0, 4.0, 8.0, 8.0, 9.0]))),
                               [-1, 0, 2, 0, -1], atol=1e-5)


def test_fftconvolve_axes():
    rng = np.random.default_rng(3)
    a, b = _rand(rng, (3, 8, 2)), _rand(rng, (3, 4, 2))
    for axes in (1, [1], (-2,)):
        np.testing.assert_allclose(np.asarray(fss.fftconvolve(a, b, "same", axes=axes)),
                                   ss.fftconvolve(a, b, "same", axes=axes), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(fss.fftconvolve(a, b[:, :, :1], axes=(1, 2))),
                               ss.fftconvolve(a, b[:, :, :1], axes=(1, 2)), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="mapped axes must have same shape"):
        fss.fftconvolve(a, b[:1], axes=1)          # JAX does not broadcast the other axes


def test_errors_name_the_mistake():
    a, b = np.ones(5, np.float32), np.ones(3, np.float32)
    with pytest.raises(ValueError, match="method='bad'.*'auto', 'fft', or 'direct'"):
        fss.convolve(a, b, method="bad")
    with pytest.raises(ValueError, match="mode must be one of"):
        fss.correlate(a, b, mode="circular")
    with pytest.raises(ValueError, match="same number of dimensions"):
        fss.convolve(a, b[None])
    with pytest.raises(ValueError, match="zero-size"):
        fss.convolve(a, b[:0])
    with pytest.raises(ValueError, match="smaller than the other"):
        fss.convolve(np.ones((2, 5)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="at least as large"):
        fss.fftconvolve(np.ones((2, 5)), np.ones((3, 2)), mode="valid")
    with pytest.raises(NotImplementedError, match="boundary='fill', fillvalue=0"):
        fss.convolve2d(np.ones((3, 3)), np.ones((2, 2)), boundary="wrap")
    with pytest.raises(ValueError, match="only 2-dimensional"):
        fss.correlate2d(a, b)
    with pytest.raises(ValueError, match="'linear' or 'constant'"):
        fss.detrend(a, type="quadratic")
    with pytest.raises(ValueError, match="[Bb]reakpoints"):
        fss.detrend(a, bp=[7])
    with pytest.raises(ValueError, match="only defined for symmetric shapes; name it 'kaiser_bessel_derived_symmetric'"):
        fss.welch(np.ones(32), window=("kbd", 3.0), nperseg=8)
    with pytest.raises(ValueError, match="NW must be positive and less than nperseg / 2"):
        fss.welch(np.ones(32), window=("dpss", 5.0), nperseg=8)
    with pytest.raises(ValueError, match="unknown window name 'hanning'"):
        fss.stft(np.ones(32), window="hanning", nperseg=8)
    with pytest.raises(ValueError, match="'kaiser' takes 1 to 1 parameter"):
        fss.welch(np.ones(32), window="kaiser", nperseg=8)
    with pytest.raises(ValueError, match="noverlap must be less than nperseg"):
        fss.welch(np.ones(32), nperseg=8, noverlap=8)
    with pytest.raises(ValueError, match="Unknown scaling"):
        fss.welch(np.ones(32), nperseg=8, scaling="power")
    with pytest.raises(ValueError, match="average must be"):
        fss.welch(np.ones(32), nperseg=8, average="max")
    with pytest.raises(ValueError, match="window must be 1-D"):
        fss.welch(np.ones(32), window=np.ones((2, 4)))


# --- detrend and the spectral functions vs SciPy ---------------------------------------------------

@pytest.mark.parametrize("kwargs", [{}, {"bp": [5, 17]}, {"bp": 20, "axis": 0}, {"type": "constant"},
                                    {"type": "constant", "axis": 0}, {"bp": [1, 39]}])
def test_detrend_matches_scipy(kwargs):
    x = np.random.default_rng(4).standard_normal((40, 3)) if kwargs.get("axis") == 0 else \
        np.random.default_rng(4).standard_normal((3, 40))
    np.testing.assert_allclose(np.asarray(fss.detrend(x.astype(np.float32), **kwargs)), ss.detrend(x, **kwargs),
                               atol=2e-5)
    with fgrad.config.override(enable_x64=True):
        np.testing.assert_allclose(np.asarray(fss.detrend(x, **kwargs)), ss.detrend(x, **kwargs), atol=1e-12)


WELCH_KWARGS = [dict(nperseg=16), dict(nperseg=16, noverlap=4, nfft=20), dict(nperseg=10, window="hamming",
                detrend="linear"), dict(nperseg=8, average="median"), dict(nperseg=8, scaling="spectrum",
                return_onesided=False), dict(nperseg=9, window=("kaiser", 6.0), detrend=False, fs=100.0),
                dict(window=get_window("blackman", 12), axis=0), dict(nperseg=12, window=("dpss", 2.0)),
                dict(nperseg=11, window=("chebwin", 60))]


@pytest.mark.parametrize("kwargs", WELCH_KWARGS)
def test_welch_and_csd_match_scipy(kwargs):
    rng = np.random.default_rng(5)
    shape = (40, 2) if kwargs.get("axis") == 0 else (2, 40)
    x, y = rng.standard_normal(shape), rng.standard_normal(shape)
    with fgrad.config.override(enable_x64=True):
        for got, want in [(fss.welch(x, **kwargs), ss.welch(x, **kwargs)),
                          (fss.csd(x, y, **kwargs), ss.csd(x, y, **kwargs))]:
            assert got[1].dtype == want[1].dtype
            np.testing.assert_allclose(np.asarray(got[0]), want[0], rtol=1e-12)
            np.testing.assert_allclose(np.asarray(got[1]), want[1], rtol=1e-10, atol=1e-13)
    f32 = fss.welch(x.astype(np.float32), **kwargs)
    assert f32[0].dtype == f32[1].dtype == np.float32
    np.testing.assert_allclose(np.asarray(f32[1]), ss.welch(x, **kwargs)[1], rtol=1e-4, atol=1e-6)


STFT_KWARGS = [dict(nperseg=16), dict(nperseg=8, noverlap=2), dict(nperseg=9, window=("tukey", 0.3), boundary="even"),
               dict(nperseg=8, boundary="odd", padded=False), dict(nperseg=8, boundary="constant", nfft=10),
               dict(nperseg=8, boundary=None, window="boxcar"), dict(nperseg=8, detrend="constant", axis=0)]


@pytest.mark.parametrize("kwargs", STFT_KWARGS)
def test_stft_and_istft_match_scipy(kwargs):
    x = np.random.default_rng(6).standard_normal((40, 3) if kwargs.get("axis") == 0 else (3, 40))
    with fgrad.config.override(enable_x64=True):
        got, want = fss.stft(x, **kwargs), ss.stft(x, **kwargs)
        for g, w in zip(got, want):
            assert g.shape == w.shape and g.dtype == w.dtype
            np.testing.assert_allclose(np.asarray(g), w, rtol=1e-10, atol=1e-13)
        if kwargs.get("boundary", "zeros") is not None and "axis" not in kwargs:
            inverse = {k: v for k, v in kwargs.items() if k in ("nperseg", "noverlap", "nfft", "window")}
            t, rebuilt = fss.istft(got[2], **inverse)
            t_want, want_x = ss.istft(want[2], **inverse)
            np.testing.assert_allclose(np.asarray(rebuilt), want_x, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(np.asarray(t), t_want, rtol=1e-12)
            n = x.shape[-1]
            np.testing.assert_allclose(np.asarray(rebuilt)[..., :n], x, atol=1e-10)   # a true inverse


def test_istft_axes_and_two_sided():
    x = np.random.default_rng(7).standard_normal((3, 32))
    with fgrad.config.override(enable_x64=True):
        _, _, z = fss.stft(x, nperseg=8, return_onesided=False)
        moved = np.moveaxis(np.asarray(z), 0, -1)                 # [freq, time, batch]
        _, got = fss.istft(moved, nperseg=8, input_onesided=False, time_axis=1, freq_axis=0)
        _, want = ss.istft(moved, nperseg=8, input_onesided=False, time_axis=1, freq_axis=0)
        np.testing.assert_allclose(np.asarray(got), want, atol=1e-12)


@pytest.mark.parametrize("window", ["hann", "hamming", "blackman", "blackmanharris", "nuttall", "flattop", "boxcar",
                                    "triang", "bartlett", "cosine", "barthann", "bohman", "parzen", "tukey",
                                    ("tukey", 0.2), ("gaussian", 2.0), ("general_gaussian", 1.5, 3.0),
                                    ("general_cosine", [0.5, 0.3, 0.2]), ("general_hamming", 0.6), ("kaiser", 8.0),
                                    "exponential", ("exponential", None, 3.0), "lanczos", "hann_symmetric", "ham", ("chebwin", 50), ("cheb", 100.0), "taylor",
                                    ("taylor", 5, 40), ("taylor", 3, 35, False), ("kbd_symmetric", 3.0),
                                    ("dpss", 1.0), ("dpss_symmetric", 2.0)])
def test_windows_match_scipy(window):
    for n in (1, 2, 5, 8, 13, 64):
        if window[0] == "kbd_symmetric" and n % 2 or window[0].startswith("dpss") and n < 2 * window[1] + 1:
            continue
        np.testing.assert_allclose(get_window(window, n), ss.get_window(window, n), rtol=1e-13, atol=1e-15)


def test_warnings_as_jax():
    with pytest.warns(UserWarning, match="nperseg=64 is greater than input_length=40"):
        f, p = fss.welch(np.ones(40), nperseg=64)
    assert p.shape == (21,)
    with pytest.warns(UserWarning, match="complex, switching to return_onesided=False"):
        f, p = fss.welch(np.ones(16, np.complex64), nperseg=8)
    assert p.shape == (8,) and p.dtype == np.float32


# --- JAX's own behaviour -------------------------------------------------------------------------

@pytest.mark.parametrize("case", [c for c in cases() if c[1].startswith("signal.")], ids=lambda c: c[0])
def test_recorded_jax_outputs(case):
    name, path, args, kwargs = case
    kwargs = {k: (cumsum_detrend if v == "CUMSUM" else v) for k, v in kwargs.items()}
    with fgrad.config.override(enable_x64=True), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = getattr(fss, path.split(".")[1])(*args, **kwargs)
    for i, leaf in enumerate(result if isinstance(result, tuple) else (result,)):
        want = RECORDED[f"{name}.{i}"]
        assert leaf.shape == want.shape and leaf.dtype == want.dtype
        np.testing.assert_allclose(np.asarray(leaf), want, rtol=1e-10, atol=1e-12)


def test_istft_odd_nperseg_reconstructs():
    """JAX 0.10.2 raises (TypeError: it inverts with n=None) for an odd ``nperseg`` without ``nfft``;
    fgrad inverts with the odd length, as SciPy does."""
    assert str(RECORDED["istft_odd_nperseg.error"]) == "TypeError"
    x = np.random.default_rng(8).standard_normal(30)
    with fgrad.config.override(enable_x64=True):
        _, _, z = fss.stft(x, nperseg=9)
        np.testing.assert_allclose(np.asarray(fss.istft(z, nperseg=9)[1]), ss.istft(ss.stft(x, nperseg=9)[2],
                                   nperseg=9)[1], atol=1e-12)


# --- transforms ------------------------------------------------------------------------------------

def test_jit_runs_natively_and_matches_eager():
    rng = np.random.default_rng(9)
    x, w = fnp.asarray(_rand(rng, (2, 24))), fnp.asarray(_rand(rng, (1, 5)))
    xc = fnp.asarray(_rand(rng, (9,), np.complex64))
    check_jit_matches_eager(lambda a, b: fss.convolve(a, b, "same"), (x, w))
    check_jit_matches_eager(lambda a, b: fss.correlate2d(a, b, "full"), (x, w))
    check_jit_matches_eager(lambda a: fss.correlate(a, a[2:5], "valid"), (xc,))
    check_jit_matches_eager(lambda a, b: fss.fftconvolve(a, b, "full", axes=1), (x, x[:, :4]))
    check_jit_matches_eager(lambda a: fss.detrend(a, bp=[9]), (x,))
    check_jit_matches_eager(lambda a: fss.welch(a, nperseg=8, average="median"), (x,))
    check_jit_matches_eager(lambda a: fss.csd(a, a[::-1], nperseg=8, detrend="linear"), (x,))
    check_jit_matches_eager(lambda a: fss.stft(a, nperseg=8, boundary="odd"), (x,))
    check_jit_matches_eager(lambda a: fss.istft(fss.stft(a, nperseg=8)[2], nperseg=8), (x,))


def test_direct_convolution_is_one_conv_primitive():
    jaxpr = str(fgrad.make_jaxpr(lambda a, b: fss.convolve(a, b))(np.ones(8, np.float32), np.ones(3, np.float32)))
    assert jaxpr.count("conv_general_dilated") == 1 and "fft" not in jaxpr
    jaxpr = str(fgrad.make_jaxpr(lambda a, b: fss.correlate(a, b))(np.ones(8, np.complex64),
                                                                      np.ones(3, np.complex64)))
    assert jaxpr.count("conv_general_dilated") == 1
    assert "fft" in str(fgrad.make_jaxpr(lambda a, b: fss.convolve(a, b, method="fft"))(np.ones(8), np.ones(3)))


@pytest.mark.parametrize("mode", MODES)
def test_grads_match_finite_differences(mode):
    rng = np.random.default_rng(10)
    a, b = rng.standard_normal((6, 5)), rng.standard_normal((3, 2))
    check_grads(lambda x, y: fss.convolve(x, y, mode), (a, b), order=1)
    check_grads(lambda x, y: fss.correlate(x, y, mode), (b, a), order=1)
    check_grads(lambda x, y: fss.correlate2d(x, y, mode), (a, b), order=1)
    check_grads(lambda x, y: fss.fftconvolve(x, y, mode), (a, b), order=1)
    check_grads(lambda x: fss.convolve(x, x[:3] * 1j, mode).imag, (a[:, 0],), order=1)


def test_grads_of_detrend_and_welch():
    rng = np.random.default_rng(11)
    check_grads(lambda x: fss.detrend(x, bp=[4]), (rng.standard_normal(12),), order=1)
    check_grads(lambda x: fss.welch(x, nperseg=8)[1], (rng.standard_normal(24),), order=1)
    check_grads(lambda x, y: fss.csd(x, y, nperseg=8, average="median")[1].imag,
                (rng.standard_normal(24), rng.standard_normal(24)), order=1)
    check_grads(lambda x: fss.stft(x, nperseg=8, boundary="odd")[2].real, (rng.standard_normal(20),), order=1)
    check_grads(lambda z: fss.istft(z[0] + 1j * z[1], nperseg=8)[1], (rng.standard_normal((2, 5, 6)),), order=1)


def test_vmap_matches_loop():
    rng = np.random.default_rng(12)
    xs, w = _rand(rng, (3, 12)), _rand(rng, (4,))
    check_vmap(lambda x, k: fss.convolve(x, k, "same"), (xs, w), in_axes=(0, None))
    check_vmap(lambda x, k: fss.correlate(x, k), (xs, xs[:, :4]), rtol=1e-5, atol=1e-5)
    check_vmap(lambda x: fss.welch(x, nperseg=6)[1], (xs,), rtol=1e-5, atol=1e-6)
    check_vmap(lambda x: fss.detrend(x), (xs,), rtol=1e-5, atol=1e-6)
    check_vmap(lambda x: fss.stft(x, nperseg=6)[2], (xs,), rtol=1e-5, atol=1e-6)
    with fgrad.config.override(enable_x64=True):
        assert natively(fgrad.vmap(lambda x: fss.convolve(x, w, "valid")), xs).shape == (3, 9)


def test_signatures_match_jax():
    """Every public function of jax.scipy.signal / jax.scipy.ndimage exists here with JAX's parameter
    names, kinds and defaults (recorded by scripts/record_signal_jax.py)."""
    import inspect
    names = [k for k in RECORDED.files if k.startswith("signature.")]
    assert len(names) == 11
    for key in names:
        _, module, fn = key.split(".")
        params = inspect.signature(getattr(getattr(fscipy, module), fn)).parameters.values()
        assert repr([(p.name, str(p.kind), repr(p.default)) for p in params]) == str(RECORDED[key]), fn
