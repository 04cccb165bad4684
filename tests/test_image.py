"""``fgrad.image`` against values recorded from JAX 0.10.2 (``tests/data/jax_image.npz``, made by
``jax.image.resize`` / ``scale_and_translate`` on the same inputs), finite differences, eager vs
``jit`` and ``vmap`` vs a loop."""
import pathlib

import numpy as np
import pytest
from hypothesis import given, strategies as st

import fgrad
from fgrad import numpy as fnp
from fgrad.image import ResizeMethod, resize, scale_and_translate
from tests.util import check_grads, check_jit_matches_eager, check_vmap

pytestmark = pytest.mark.filterwarnings("error::fgrad.ReferencePathWarning")

JAX = np.load(pathlib.Path(__file__).parent / "data" / "jax_image.npz")
X = JAX["x"]                                   # a 5 x 6 float32 image
METHODS = ["nearest", "linear", "cubic", "lanczos3", "lanczos5", "cubic-pytorch", "area"]
SHAPES = [(3, 4), (8, 9), (2, 6)]              # down, up, and down in one axis only


@pytest.mark.parametrize("antialias", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("method", METHODS)
def test_resize_matches_jax(method, shape, antialias):
    got = resize(X, shape, method, antialias=antialias)
    want = JAX[f"{method}_{shape[0]}x{shape[1]}_{antialias}"]
    assert got.shape == shape and got.dtype == np.float32
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,method", [("bilinear", ResizeMethod.LINEAR), ("trilinear", ResizeMethod.LINEAR),
                                         ("triangle", ResizeMethod.LINEAR), ("bicubic", ResizeMethod.CUBIC),
                                         ("tricubic", ResizeMethod.CUBIC), ("lanczos5", ResizeMethod.LANCZOS5),
                                         ("bicubic-pytorch", ResizeMethod.CUBIC_PYTORCH)])
def test_method_names(name, method):
    assert ResizeMethod.from_string(name) is method
    np.testing.assert_array_equal(np.asarray(resize(X, (4, 4), name)), np.asarray(resize(X, (4, 4), method)))


def test_integer_images():
    xi = JAX["xi"]
    linear = resize(xi, (5, 2), "linear")       # promoted to the default float
    assert linear.dtype == np.float32
    np.testing.assert_allclose(np.asarray(linear), JAX["int_linear"], rtol=1e-6, atol=1e-5)
    nearest = resize(xi, (5, 2), "nearest")     # keeps the dtype
    assert nearest.dtype == np.int32
    np.testing.assert_array_equal(np.asarray(nearest), JAX["int_nearest"])


def test_gradient_matches_jax():
    weights = fnp.arange(12.).reshape(3, 4)
    g = fgrad.grad(lambda img: fnp.sum(resize(img, (3, 4), "bicubic") * weights))(X)
    np.testing.assert_allclose(np.asarray(g), JAX["grad_cubic"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", ["linear", "cubic", "lanczos3", "area", "cubic-pytorch"])
def test_gradient_finite_differences(method):
    check_grads(lambda img: resize(img, (3, 7), method, antialias=method != "cubic-pytorch"), (X,), order=1)


def test_scale_and_translate_matches_jax():
    s, t = fnp.array([1.3, 0.8]), fnp.array([0.4, -0.7])
    got = scale_and_translate(X, (7, 5), (0, 1), s, t, "linear")
    np.testing.assert_allclose(np.asarray(got), JAX["st_linear"], rtol=1e-5, atol=1e-5)
    got = scale_and_translate(X, (4, 5), (0, 1), fnp.array([0.6, 0.8]), t, "lanczos3", antialias=False)
    np.testing.assert_allclose(np.asarray(got), JAX["st_lanczos3_noaa"], rtol=1e-5, atol=1e-5)

    def loss(s, t):
        return fnp.sum(scale_and_translate(X, (7, 5), (0, 1), s, t, "linear") ** 2)
    for f in (fgrad.grad(loss, argnums=(0, 1)), fgrad.jit(fgrad.grad(loss, argnums=(0, 1)))):
        gs, gt = f(s, t)
        np.testing.assert_allclose(np.asarray(gs), JAX["st_grad_scale"], rtol=1e-4)
        np.testing.assert_allclose(np.asarray(gt), JAX["st_grad_translation"], rtol=1e-4)


def test_scale_and_translate_gradients_finite_differences():
    def f(img, s, t):
        return scale_and_translate(img, (6, 4), (0, 1), s, t, "cubic")
    check_grads(f, (X, np.array([1.1, 0.7]), np.array([0.3, -0.2])), order=1)


@pytest.mark.parametrize("method", METHODS)
def test_jit_matches_eager(method):
    check_jit_matches_eager(lambda img: resize(img, (3, 8), method), (X,))


def test_vmap_matches_loop():
    images = np.stack([X, X[::-1], 2 * X])
    check_vmap(lambda img: resize(img, (4, 3), "lanczos3"), (images,), rtol=1e-5, atol=1e-5)
    check_vmap(lambda img, s: scale_and_translate(img, (4, 3), (0, 1), s, fnp.zeros(2), "linear"),
               (images, np.array([[0.8, 0.5], [1.0, 0.5], [1.2, 0.6]], np.float32)), rtol=1e-5, atol=1e-5)
    # a batch dimension that resize leaves alone, inside the image
    batched = resize(images, (3, 4, 3), "cubic")
    np.testing.assert_allclose(np.asarray(batched[1]), np.asarray(resize(X[::-1], (4, 3), "cubic")), rtol=1e-6)


def test_errors_match_jax():
    with pytest.raises(ValueError, match="shape must have length equal to the number of dimensions"):
        resize(X, (3,), "linear")
    with pytest.raises(ValueError, match='Unknown resize method "Linear"'):
        resize(X, (3, 4), "Linear")
    with pytest.raises(ValueError, match="Nearest neighbor resampling is not currently supported"):
        scale_and_translate(X, (3, 4), (0, 1), fnp.ones(2), fnp.zeros(2), "nearest")
    with pytest.raises(TypeError, match="method must be a ResizeMethod"):
        resize(X, (3, 4), 1)
    with pytest.raises(ValueError, match="one entry per spatial dimension"):
        scale_and_translate(X, (3, 4), (0, 1), fnp.ones(3), fnp.zeros(2), "linear")


@given(st.integers(1, 6), st.integers(1, 6), st.sampled_from(METHODS), st.integers(0, 2 ** 16))
def test_same_shape_is_identity_and_constants_stay(rows, cols, method, seed):
    image = np.random.default_rng(seed).standard_normal((rows, cols)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(resize(image, (rows, cols), method)), image)
    # every interpolating kernel's weights sum to one, so a constant image stays constant
    out = np.asarray(resize(np.full((rows, cols), 2.5, np.float32), (rows + 2, 2 * cols + 1), method))
    np.testing.assert_allclose(out, 2.5, rtol=1e-5)
