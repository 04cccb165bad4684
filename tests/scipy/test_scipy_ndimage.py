"""fgrad.scipy.ndimage.map_coordinates against SciPy (JAX's 'constant' and 'wrap' are SciPy's
'grid-constant' and 'grid-wrap'), JAX 0.10.2's recorded outputs (tests/scipy/data/signal_jax.npz,
scripts/record_signal_jax.py), jit (native path) vs eager, grad vs finite differences, vmap vs a loop."""
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage as snd
from hypothesis import given, strategies as st

import fgrad
import fgrad.scipy.ndimage as fnd
from fgrad import numpy as fnp

sys.path.insert(0, str(Path(__file__).parent))
from signal_cases import cases  # noqa: E402
from tests.util import check_grads, check_jit_matches_eager, check_vmap  # noqa: E402

RECORDED = np.load(Path(__file__).parent / "data" / "signal_jax.npz")
SCIPY_MODE = {"constant": "grid-constant", "wrap": "grid-wrap", "nearest": "nearest", "mirror": "mirror",
              "reflect": "reflect"}


def _coordinates(rng, shape, n=15, dtype=np.float32):
    return [rng.uniform(-3, s + 2, n).astype(dtype) for s in shape]


@pytest.mark.parametrize("mode", list(SCIPY_MODE))
@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize("shape", [(7,), (4, 5), (3, 4, 2)])
def test_matches_scipy(shape, order, mode):
    rng = np.random.default_rng(0)
    image = rng.standard_normal(shape).astype(np.float32)
    coords = _coordinates(rng, shape)
    got = fnd.map_coordinates(image, coords, order, mode=mode, cval=1.5)
    want = snd.map_coordinates(image, coords, order=order, mode=SCIPY_MODE[mode], cval=1.5)
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)


@given(st.sampled_from(list(SCIPY_MODE)), st.integers(0, 1), st.integers(1, 6), st.integers(0, 2**16))
def test_property_float64_matches_scipy(mode, order, size, seed):
    rng = np.random.default_rng(seed)
    image = rng.standard_normal((size, 3))
    coords = [rng.uniform(-2 * size, 3 * size, (2, 3)), rng.uniform(-4, 6, (2, 3))]
    if order == 0:      # ties round half away from zero in JAX, half to even in SciPy: stay off them
        coords = [c + 0.01 * (np.abs(c - np.round(c) - 0.5) < 1e-3) for c in coords]
    with fgrad.config.override(enable_x64=True):
        got = fnd.map_coordinates(image, coords, order, mode=mode)
        assert got.dtype == np.float64
        np.testing.assert_allclose(np.asarray(got), snd.map_coordinates(image, coords, order=order,
                                                                        mode=SCIPY_MODE[mode]), atol=1e-12)


def test_integer_input_rounds_back_and_keeps_dtype():
    image = np.arange(12, dtype=np.int32).reshape(3, 4)
    got = fnd.map_coordinates(image, [np.array([0.5, 1.25]), np.array([1.5, 2.5])], 1)
    assert got.dtype == np.int32 and np.asarray(got).tolist() == [4, 8]      # 3.5 -> 4, 7.75 -> 8
    assert np.asarray(fnd.map_coordinates(image, [np.array([1]), np.array([2])], 0)).tolist() == [6]


def test_jax_docstring_example():
    got = fnd.map_coordinates(np.arange(12.0).reshape(3, 4), [np.array([0.5, 1.5]), np.array([1.5, 2.5])], order=1)
    assert np.asarray(got).tolist() == [3.5, 8.5]


@pytest.mark.parametrize("case", [c for c in cases() if c[1].startswith("ndimage.")], ids=lambda c: c[0])
def test_recorded_jax_outputs(case):
    name, _, args, kwargs = case
    with fgrad.config.override(enable_x64=True):
        got = fnd.map_coordinates(*args, **kwargs)
    want = RECORDED[f"{name}.0"]
    assert got.dtype == want.dtype
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-12)


def test_errors_name_the_mistake():
    image = np.ones((3, 3))
    with pytest.raises(ValueError, match="sequence of length input.ndim, but 1 != 2"):
        fnd.map_coordinates(image, [np.zeros(2)], 1)
    with pytest.raises(NotImplementedError, match="mode 'grid-wrap'"):
        fnd.map_coordinates(image, [np.zeros(2)] * 2, 1, mode="grid-wrap")
    with pytest.raises(NotImplementedError, match="order<=1"):
        fnd.map_coordinates(image, [np.zeros(2)] * 2, 3)


@pytest.mark.parametrize("mode", list(SCIPY_MODE))
def test_jit_runs_natively_and_matches_eager(mode):
    rng = np.random.default_rng(1)
    image = fnp.asarray(rng.standard_normal((4, 5)).astype(np.float32))
    coords = [fnp.asarray(c) for c in _coordinates(rng, (4, 5))]
    for order in (0, 1):
        check_jit_matches_eager(lambda im, r, c: fnd.map_coordinates(im, [r, c], order, mode=mode, cval=-1.0),
                                (image, *coords))
    ints = fnp.asarray(rng.integers(0, 9, (4, 5)).astype(np.int32))
    check_jit_matches_eager(lambda im, r, c: fnd.map_coordinates(im, [r, c], 1, mode=mode), (ints, *coords))


@pytest.mark.parametrize("mode", list(SCIPY_MODE))
def test_order1_grads_match_finite_differences(mode):
    rng = np.random.default_rng(2)
    image = rng.standard_normal((4, 5))
    # away from the integer grid (the interpolant's kinks) and from the constant mode's edges
    rows = np.floor(rng.uniform(-1, 5, 8)) + rng.uniform(0.1, 0.9, 8)
    cols = np.floor(rng.uniform(-1, 6, 8)) + rng.uniform(0.1, 0.9, 8)
    check_grads(lambda im, r, c: fnd.map_coordinates(im, [r, c], 1, mode=mode), (image, rows, cols), order=1)


def test_vmap_matches_loop():
    rng = np.random.default_rng(3)
    images = rng.standard_normal((3, 4, 5)).astype(np.float32)
    rows, cols = _coordinates(rng, (4, 5), n=6)
    check_vmap(lambda im, r, c: fnd.map_coordinates(im, [r, c], 1, mode="reflect"), (images, rows, cols),
               in_axes=(0, None, None), rtol=1e-5, atol=1e-6)
    batch_rows = np.stack([rows, rows + 0.3, rows - 0.7])
    check_vmap(lambda im, r, c: fnd.map_coordinates(im, [r, c], 0, mode="wrap"), (images, batch_rows, cols),
               in_axes=(0, 0, None))
