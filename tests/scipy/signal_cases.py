"""Inputs shared by tests/scipy/test_scipy_signal.py / test_scipy_ndimage.py and
scripts/record_signal_jax.py (which records JAX 0.10.2's outputs at them into
tests/scipy/data/signal_jax.npz): the cases where JAX's behaviour differs from SciPy's."""
import numpy as np


def _rng():
    return np.random.default_rng(1234)


def cases():
    """[(name, function path, args, kwargs)], float64 inputs (recorded with 64-bit enabled)."""
    rng = _rng()
    long = rng.standard_normal(300)
    x = rng.standard_normal((2, 40))
    y = rng.standard_normal((2, 40))
    img = rng.standard_normal((4, 5))
    coords = [rng.uniform(-3, 7, 12), rng.uniform(-3, 8, 12)]
    ints = rng.integers(-20, 20, (4, 5)).astype(np.int32)
    half = [np.array([0.5, 1.5, 2.5, -0.5, 3.5]), np.array([1.0, 2.5, -1.5, 0.0, 4.5])]
    stft_z = _stft_example(rng)
    return [
        ("welch_default_nperseg", "signal.welch", (long,), {}),            # JAX: the whole signal, SciPy: 256
        ("csd_default_nperseg", "signal.csd", (long, long[::-1].copy()), {}),
        ("welch_callable_detrend", "signal.welch", (x,), {"nperseg": 8, "detrend": "CUMSUM"}),
        ("istft_noverlap_zero", "signal.istft", (stft_z,), {"nperseg": 8, "noverlap": 0}),
        ("map_constant", "ndimage.map_coordinates", (img, coords, 1), {"mode": "constant", "cval": 2.0}),
        ("map_wrap", "ndimage.map_coordinates", (img, coords, 1), {"mode": "wrap"}),
        ("map_mirror", "ndimage.map_coordinates", (img, coords, 1), {"mode": "mirror"}),
        ("map_reflect", "ndimage.map_coordinates", (img, coords, 1), {"mode": "reflect"}),
        ("map_nearest0", "ndimage.map_coordinates", (img, coords, 0), {"mode": "nearest"}),
        ("map_half_order0", "ndimage.map_coordinates", (img, half, 0), {}),
        ("map_int_order1", "ndimage.map_coordinates", (ints, coords, 1), {"mode": "reflect"}),
        ("map_size1_mirror", "ndimage.map_coordinates", (np.array([[3.0, 4.0]]), coords, 1), {"mode": "mirror"}),
        ("correlate2d_small_first_full", "signal.correlate2d", (rng.standard_normal((2, 3)) + 1j *
                                                              rng.standard_normal((2, 3)),
                                                              rng.standard_normal((4, 5))), {}),
        ("welch_x", "signal.welch", (x,), {"nperseg": 16, "window": ("tukey", 0.3), "average": "median"}),
        ("csd_xy", "signal.csd", (x, y), {"nperseg": 12, "noverlap": 3, "nfft": 16, "detrend": "linear"}),
        ("stft_x", "signal.stft", (x,), {"nperseg": 10, "boundary": "odd"}),
        ("detrend_bp", "signal.detrend", (x,), {"bp": [7, 30]}),
    ]


def _stft_example(rng):
    import numpy.fft as nf
    frames = rng.standard_normal((6, 8))
    return nf.rfft(frames, axis=-1).T          # [freq 5, time 6]


def cumsum_detrend(d):
    """A callable detrend that depends on the axis it is given (so its axis handling shows)."""
    return d - d.cumsum(axis=-1) / 10.0
