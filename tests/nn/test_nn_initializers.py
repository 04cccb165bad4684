"""fgrad.nn.initializers vs JAX's definitions: the fans (vs JAX 0.10.2's ``_compute_fans``, recorded),
each distribution's moments and bounds (statistically, fixed keys), orthogonality and the sign-fixed
QR of orthogonal, dtypes, jit vs eager, vmap over keys vs a loop, and the errors for bad input."""
import math

import numpy as np
import pytest

import fgrad
from fgrad import numpy as fnp
from fgrad import random
from fgrad.nn import initializers

#: jit must run natively: a fall back to the reference path fails the test.
pytestmark = pytest.mark.filterwarnings("error::fgrad.ReferencePathWarning")
KEY = random.key(1234)
TRUNCATED_STD = 0.8796256610342398  # std of N(0, 1) truncated to (-2, 2)


def sample(init, shape, dtype=None, key=KEY):
    out = init(key, shape) if dtype is None else init(key, shape, dtype)
    return np.asarray(out)


def test_zeros_ones_constant():
    np.testing.assert_array_equal(sample(initializers.zeros, (2, 3)), np.zeros((2, 3), np.float32))
    np.testing.assert_array_equal(sample(initializers.ones, (4,)), np.ones(4, np.float32))
    assert initializers.ones(KEY, (2,), fnp.float16).dtype == np.float16
    filled = initializers.constant(-0.5)(KEY, (3, 2))
    assert filled.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(filled), np.full((3, 2), -0.5, np.float32))
    assert initializers.constant(2.0, dtype=fnp.float16)(KEY, (1,)).dtype == np.float16


def test_uniform_moments_and_range():
    w = sample(initializers.uniform(scale=0.3), (200_000,))
    assert w.dtype == np.float32 and w.min() >= 0.0 and w.max() < 0.3
    assert abs(w.mean() - 0.15) < 0.002
    assert abs(w.var() - 0.3 ** 2 / 12) < 0.02 * 0.3 ** 2 / 12
    default = sample(initializers.uniform(), (1000,))
    assert default.max() < 0.01 and default.max() > 0.009


def test_normal_moments():
    w = sample(initializers.normal(stddev=2.0), (200_000,))
    assert abs(w.mean()) < 0.02 and abs(w.std() - 2.0) < 0.02
    assert abs(sample(initializers.normal(), (200_000,)).std() - 0.01) < 1e-4


def truncated_normal_cdf(x, lower, upper):
    phi = lambda v: 0.5 * (1 + math.erf(v / math.sqrt(2)))  # noqa: E731
    return (phi(x) - phi(lower)) / (phi(upper) - phi(lower))


@pytest.mark.parametrize("lower,upper", [(-2.0, 2.0), (-1.0, 3.0), (0.5, 1.5)])
def test_truncated_normal_distribution(lower, upper):
    stddev = 0.5
    w = sample(initializers.truncated_normal(stddev=stddev, lower=lower, upper=upper), (100_000,)) / stddev
    assert w.min() > lower and w.max() < upper
    assert w.min() < lower + 0.05 and w.max() > upper - 0.05  # the whole interval is reached
    for x in np.linspace(lower, upper, 9)[1:-1]:  # empirical CDF vs the truncated normal's
        assert abs((w <= x).mean() - truncated_normal_cdf(x, lower, upper)) < 0.006, x


def test_truncated_normal_default_std():
    w = sample(initializers.truncated_normal(stddev=1.0), (200_000,))
    assert abs(w.mean()) < 0.01 and abs(w.std() - TRUNCATED_STD) < 0.005


# (shape, axes, JAX 0.10.2's _compute_fans(shape, **axes)), recorded.
JAX_FANS = [
    ((7, 5), {}, (7.0, 5.0)),
    ((3, 3, 16, 32), {}, (144.0, 288.0)),  # an HWIO conv kernel
    ((5, 3, 3, 16, 32), {"batch_axis": 0}, (144.0, 288.0)),
    ((4, 6, 8), {"in_axis": 0, "out_axis": 2}, (24.0, 48.0)),
    ((2, 3, 4, 5), {"in_axis": (0, 1), "out_axis": -1}, (24.0, 20.0)),
    ((2, 3, 4, 5, 6), {"in_axis": -3, "out_axis": (-2, -1), "batch_axis": (0,)}, (12.0, 90.0)),
    ((10,), {"in_axis": 0, "out_axis": 0}, (1.0, 1.0)),
]


@pytest.mark.parametrize("shape,axes,fans", JAX_FANS)
def test_compute_fans_match_jax(shape, axes, fans):
    assert initializers._compute_fans(shape, **axes) == fans


def denominator(mode, fan_in, fan_out):
    return {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2,
            "fan_geo_avg": math.sqrt(fan_in * fan_out)}[mode]


@pytest.mark.parametrize("distribution", ["truncated_normal", "normal", "uniform"])
@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg", "fan_geo_avg"])
def test_variance_scaling_variance_and_bounds(mode, distribution):
    shape, axes, (fan_in, fan_out) = JAX_FANS[2]  # a batch of conv kernels: the fans skip the batch axis
    w = sample(initializers.variance_scaling(2.0, mode, distribution, **axes), shape)
    variance = 2.0 / denominator(mode, fan_in, fan_out)
    assert w.shape == shape and w.dtype == np.float32
    assert abs(w.var() / variance - 1) < 0.03 and abs(w.mean()) < 0.03 * math.sqrt(variance)
    if distribution == "uniform":
        bound = math.sqrt(3 * variance)
        assert w.min() >= -bound and w.max() < bound and w.max() > 0.99 * bound
    if distribution == "truncated_normal":
        assert np.abs(w).max() < 2 * math.sqrt(variance) / TRUNCATED_STD


NAMED = {  # name: (scale, mode, distribution), JAX's definitions
    "glorot_uniform": (1.0, "fan_avg", "uniform"), "glorot_normal": (1.0, "fan_avg", "truncated_normal"),
    "xavier_uniform": (1.0, "fan_avg", "uniform"), "xavier_normal": (1.0, "fan_avg", "truncated_normal"),
    "lecun_uniform": (1.0, "fan_in", "uniform"), "lecun_normal": (1.0, "fan_in", "truncated_normal"),
    "he_uniform": (2.0, "fan_in", "uniform"), "he_normal": (2.0, "fan_in", "truncated_normal"),
    "kaiming_uniform": (2.0, "fan_in", "uniform"), "kaiming_normal": (2.0, "fan_in", "truncated_normal"),
}


@pytest.mark.parametrize("name", sorted(NAMED))
def test_named_initializers_are_their_variance_scaling(name):
    scale, mode, distribution = NAMED[name]
    shape = (3, 3, 16, 32)
    got = sample(getattr(initializers, name)(), shape)
    want = sample(initializers.variance_scaling(scale, mode, distribution), shape)
    np.testing.assert_array_equal(got, want)
    variance = scale / denominator(mode, 144.0, 288.0)
    assert abs(got.var() / variance - 1) < 0.05
    axes = sample(getattr(initializers, name)(in_axis=0, out_axis=(1, 2)), (4, 6, 8))
    want = sample(initializers.variance_scaling(scale, mode, distribution, in_axis=0, out_axis=(1, 2)), (4, 6, 8))
    np.testing.assert_array_equal(axes, want)


def test_aliases():
    assert initializers.xavier_normal is initializers.glorot_normal
    assert initializers.kaiming_uniform is initializers.he_uniform


def sign_fixed_qr(a):
    q, r = np.linalg.qr(a.astype(np.float64))
    return q * np.sign(np.diag(r))


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (5, 5)])
def test_orthogonal_is_the_sign_fixed_qr_of_a_normal_draw(shape):
    w = sample(initializers.orthogonal(), shape)
    n_rows, n_cols = shape
    tall = np.asarray(random.normal(KEY, (max(shape), min(shape))))
    q = sign_fixed_qr(tall)
    np.testing.assert_allclose(w, q if n_rows >= n_cols else q.T, atol=2e-5)
    gram = w.T @ w if n_rows >= n_cols else w @ w.T
    np.testing.assert_allclose(gram, np.eye(min(shape)), atol=2e-6)


def test_orthogonal_column_axis_scale_and_conv_shape():
    w = sample(initializers.orthogonal(scale=1.5, column_axis=0), (8, 3, 5))
    matrix = np.moveaxis(w, 0, -1).reshape(15, 8)  # rows: the other axes, columns: axis 0
    np.testing.assert_allclose(matrix.T @ matrix, 1.5 ** 2 * np.eye(8), atol=1e-5)
    kernel = sample(initializers.orthogonal(), (3, 3, 4, 16))
    flat = kernel.reshape(36, 16)
    np.testing.assert_allclose(flat.T @ flat, np.eye(16), atol=2e-6)
    np.testing.assert_array_equal(sample(initializers.orthogonal(), (0, 3)), np.zeros((0, 3)))


def test_orthogonal_is_uniform_over_rotations():
    keys = random.split(KEY, 400)
    draws = np.asarray(fgrad.vmap(lambda k: initializers.orthogonal()(k, (4, 4)))(keys))
    # Haar: each entry squared is Beta(1/2, 3/2), mean 1/4; entries have mean 0.
    assert abs((draws ** 2).mean(axis=0) - 0.25).max() < 0.05
    assert abs(draws.mean(axis=0)).max() < 0.1


ALL_RANDOM = {
    "uniform": initializers.uniform(0.5), "normal": initializers.normal(0.5),
    "truncated_normal": initializers.truncated_normal(0.5), "glorot_normal": initializers.glorot_normal(),
    "he_uniform": initializers.he_uniform(), "lecun_normal": initializers.lecun_normal(),
    "orthogonal": initializers.orthogonal(),
}


@pytest.mark.parametrize("name", sorted(ALL_RANDOM))
def test_jit_vmap_and_keys(name):
    init = ALL_RANDOM[name]
    shape = (5, 3)
    eager = sample(init, shape)
    np.testing.assert_allclose(np.asarray(fgrad.jit(lambda k: init(k, shape))(KEY)), eager, rtol=1e-6, atol=1e-6)
    keys = random.split(KEY, 3)
    batched = np.asarray(fgrad.vmap(lambda k: init(k, shape))(keys))
    for i in range(3):
        np.testing.assert_allclose(batched[i], sample(init, shape, key=keys[i]), rtol=1e-6, atol=1e-6)
    assert not np.array_equal(batched[0], batched[1])  # different keys, different draws


@pytest.mark.parametrize("name", sorted(ALL_RANDOM))
def test_dtypes(name):
    init = ALL_RANDOM[name]
    assert init(KEY, (4, 3), fnp.float16).dtype == np.float16
    with fgrad.config.override(enable_x64=True):
        assert init(KEY, (4, 3)).dtype == np.float64  # the default float, as JAX's default_float_dtype
        w = np.asarray(init(KEY, (4, 3), fnp.float64))
        assert w.dtype == np.float64 and np.all(np.isfinite(w))
    with pytest.raises(TypeError, match="float dtype"):
        init(KEY, (4, 3), fnp.int32)


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="invalid mode 'fan_sum'"):
        initializers.variance_scaling(1.0, "fan_sum", "normal")
    with pytest.raises(ValueError, match="invalid distribution 'cauchy'"):
        initializers.variance_scaling(1.0, "fan_in", "cauchy")
    with pytest.raises(ValueError, match="default in_axis=-2"):
        initializers.glorot_uniform()(KEY, (5,))
    with pytest.raises(ValueError, match="out of range"):
        initializers.he_normal(in_axis=3)(KEY, (4, 5))
    with pytest.raises(ValueError, match="2 or more dimensions"):
        initializers.orthogonal()(KEY, (5,))
    with pytest.raises(ValueError, match="lower must be below upper"):
        initializers.truncated_normal(lower=1.0, upper=-1.0)(KEY, (3,))
    with pytest.raises(ValueError, match="non-negative"):
        initializers.zeros(KEY, (2, -1))


def test_delta_orthogonal_puts_an_orthogonal_matrix_at_the_centre():
    # JAX 0.10.2's delta_orthogonal()(PRNGKey(0), (3, 3, 4))[1] (our threefry bits are JAX's)
    want_centre = [[0.8337946, -0.04039752, -0.25450924, -0.4882415],
                   [0.5419113, 0.06573482, 0.20781927, 0.81167865],
                   [0.08726232, -0.57483506, 0.7852893, -0.21276891]]
    w = np.asarray(initializers.delta_orthogonal()(random.PRNGKey(0), (3, 3, 4)))
    np.testing.assert_allclose(w[1], want_centre, rtol=2e-6, atol=2e-7)
    assert not w[0].any() and not w[2].any()
    for shape in [(3, 5, 2, 2), (2, 4, 3, 3, 5)]:
        w = np.asarray(initializers.delta_orthogonal(scale=2.0)(random.PRNGKey(1), shape))
        centre = w[tuple((k - 1) // 2 for k in shape[:-2])]
        np.testing.assert_allclose(centre @ centre.T, 4.0 * np.eye(shape[-2]), atol=1e-5)
        assert np.count_nonzero(w) == np.count_nonzero(centre)
    with pytest.raises(ValueError, match="3D, 4D or 5D"):
        initializers.delta_orthogonal()(random.PRNGKey(0), (3, 4))
    with pytest.raises(ValueError, match="fan_in"):
        initializers.delta_orthogonal()(random.PRNGKey(0), (3, 5, 2))
