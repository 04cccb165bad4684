"""Small programs written the way JAX's own examples are written (stax-style ``init_fun,
apply_fun`` pairs, a VAE, per-example gradient clipping, kernel ridge regression, a Gaussian
process, Newton's method, PCA, an LQR controller), with only the imports renamed to fgrad's.
Each is checked against NumPy/SciPy references, and runs natively under jit (a fallback to
the reference path is an error here)."""
import functools
import warnings

import numpy as np
import pytest
import scipy.linalg
import scipy.stats

import fgrad as jax
from fgrad import lax, nn, random
from fgrad import numpy as jnp
from fgrad.scipy import linalg as jsl


@pytest.fixture(autouse=True)
def native_only():
    with warnings.catch_warnings():
        warnings.simplefilter("error", jax.ReferencePathWarning)
        yield


# --- a tiny stax, as JAX's example_libraries.stax defines it ---------------------------------------

def Dense(out_dim, W_init=nn.initializers.glorot_normal(), b_init=nn.initializers.normal(1e-6)):
    def init_fun(rng, input_shape):
        k1, k2 = random.split(rng)
        return input_shape[:-1] + (out_dim,), (W_init(k1, (input_shape[-1], out_dim)), b_init(k2, (out_dim,)))

    def apply_fun(params, inputs, **kwargs):
        W, b = params
        return jnp.dot(inputs, W) + b
    return init_fun, apply_fun


def elementwise(fun, **fun_kwargs):
    return (lambda rng, input_shape: (input_shape, ())), (lambda params, inputs, **kw: fun(inputs, **fun_kwargs))


Relu, LogSoftmax, Tanh = elementwise(nn.relu), elementwise(nn.log_softmax, axis=-1), elementwise(jnp.tanh)


def Conv(out_chan, filter_shape, strides=(1, 1), padding="VALID"):
    dims = ("NHWC", "HWIO", "NHWC")

    def init_fun(rng, input_shape):
        kernel_shape = tuple(filter_shape) + (input_shape[3], out_chan)
        dn = lax.conv_dimension_numbers(input_shape, kernel_shape, dims)
        output_shape = lax.conv_general_shape_tuple(input_shape, kernel_shape, strides, padding, dn)
        k1, k2 = random.split(rng)
        return output_shape, (nn.initializers.he_normal()(k1, kernel_shape), jnp.zeros((1, 1, 1, out_chan)))

    def apply_fun(params, inputs, **kwargs):
        W, b = params
        return lax.conv_general_dilated(inputs, W, strides, padding, dimension_numbers=dims) + b
    return init_fun, apply_fun


def MaxPool(window, strides):
    dims, full_strides = (1,) + window + (1,), (1,) + strides + (1,)

    def init_fun(rng, input_shape):
        return lax.reduce_window_shape_tuple(input_shape, dims, full_strides, "VALID"), ()

    def apply_fun(params, inputs, **kwargs):
        return lax.reduce_window(inputs, -jnp.inf, lax.max, dims, full_strides, "VALID")
    return init_fun, apply_fun


Flatten = ((lambda rng, shape: ((shape[0], int(np.prod(shape[1:]))), ())),
           (lambda params, inputs, **kw: jnp.reshape(inputs, (inputs.shape[0], -1))))


def serial(*layers):
    init_funs, apply_funs = zip(*layers)

    def init_fun(rng, input_shape):
        params = []
        for init in init_funs:
            rng, layer_rng = random.split(rng)
            input_shape, param = init(layer_rng, input_shape)
            params.append(param)
        return input_shape, params

    def apply_fun(params, inputs, **kwargs):
        for fun, param in zip(apply_funs, params):
            inputs = fun(param, inputs, **kwargs)
        return inputs
    return init_fun, apply_fun


def _numpy_mlp(params, x):
    for k, (W, b) in enumerate(p for p in params if p):
        x = np.asarray(x, np.float64) @ np.asarray(W, np.float64) + np.asarray(b, np.float64)
        if k < 1:
            x = np.maximum(x, 0)
    return x - scipy.special.logsumexp(x, axis=-1, keepdims=True)


def test_stax_mlp_trains_and_matches_numpy():
    init_random_params, predict = serial(Dense(32), Relu, Dense(3), LogSoftmax)
    _, params = init_random_params(random.PRNGKey(0), (-1, 4))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    labels = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5).astype(int)
    targets = np.eye(3, dtype=np.float32)[labels]
    np.testing.assert_allclose(np.asarray(predict(params, x)), _numpy_mlp(params, x), rtol=1e-4, atol=1e-4)

    def loss(params, batch):
        inputs, targets = batch
        return -jnp.mean(jnp.sum(predict(params, inputs) * targets, axis=1))

    @jax.jit
    def update(params, batch):
        grads = jax.grad(loss)(params, batch)
        return [tuple(w - 0.5 * dw for w, dw in zip(p, g)) for p, g in zip(params, grads)]
    first = float(loss(params, (x, targets)))
    for _ in range(60):
        params = update(params, (x, targets))
    assert float(loss(params, (x, targets))) < 0.5 * first


def _numpy_conv_nhwc(x, w):
    kh, kw = w.shape[:2]
    out = np.zeros((x.shape[0], x.shape[1] - kh + 1, x.shape[2] - kw + 1, w.shape[3]))
    for i in range(out.shape[1]):
        for j in range(out.shape[2]):
            out[:, i, j] = np.einsum("nhwc,hwco->no", x[:, i:i + kh, j:j + kw], w)
    return out


def test_stax_convnet_shapes_and_values_match_numpy():
    init_fun, apply_fun = serial(Conv(4, (3, 3)), Relu, MaxPool((2, 2), (2, 2)), Flatten, Dense(5), LogSoftmax)
    out_shape, params = init_fun(random.PRNGKey(1), (2, 9, 9, 1))
    assert out_shape == (2, 5)
    x = np.random.default_rng(1).standard_normal((2, 9, 9, 1)).astype(np.float32)
    got = jax.jit(apply_fun)(params, x)
    W, b = (np.asarray(p, np.float64) for p in params[0])
    h = np.maximum(_numpy_conv_nhwc(x.astype(np.float64), W) + b, 0)
    h = h[:, :6, :6].reshape(2, 3, 2, 3, 2, 4).max(axis=(2, 4)).reshape(2, -1)
    Wd, bd = (np.asarray(p, np.float64) for p in params[4])
    logits = h @ Wd + bd
    np.testing.assert_allclose(np.asarray(got), logits - scipy.special.logsumexp(logits, 1, keepdims=True),
                               rtol=1e-4, atol=1e-4)


# --- a VAE (Kingma & Welling), as JAX's mnist_vae example writes it ---------------------------------

def test_vae_elbo_matches_numpy_and_improves():
    enc_init, encode = serial(Dense(16), Relu, Dense(4))       # mean and log-variance of a 2-d latent
    dec_init, decode = serial(Dense(16), Relu, Dense(10))
    _, enc_params = enc_init(random.PRNGKey(2), (-1, 10))
    _, dec_params = dec_init(random.PRNGKey(3), (-1, 2))
    images = (np.random.default_rng(2).random((32, 10)) > 0.5).astype(np.float32)

    def elbo(params, rng, images):
        enc_params, dec_params = params
        stats = encode(enc_params, images)
        mu, logvar = stats[:, :2], stats[:, 2:]
        z = mu + jnp.exp(0.5 * logvar) * random.normal(rng, mu.shape)
        logits = decode(dec_params, z)
        log_lik = jnp.sum(-nn.softplus(-logits) * images - nn.softplus(logits) * (1 - images))
        kl = 0.5 * jnp.sum(jnp.exp(logvar) + mu ** 2 - 1 - logvar)
        return (log_lik - kl) / images.shape[0]

    params, rng = (enc_params, dec_params), random.PRNGKey(4)
    eps = np.asarray(random.normal(rng, (32, 2)), np.float64)
    stats = np.asarray(encode(enc_params, images), np.float64)
    z = stats[:, :2] + np.exp(0.5 * stats[:, 2:]) * eps
    logits = np.asarray(decode(dec_params, z.astype(np.float32)), np.float64)
    want = (np.sum(images * -np.logaddexp(0, -logits) + (1 - images) * -np.logaddexp(0, logits))
            - 0.5 * np.sum(np.exp(stats[:, 2:]) + stats[:, :2] ** 2 - 1 - stats[:, 2:])) / 32
    np.testing.assert_allclose(float(elbo(params, rng, images)), want, rtol=1e-4)

    step = jax.jit(lambda p, k: jax.tree.map(lambda w, g: w + 0.05 * g, p, jax.grad(elbo)(p, k, images)))
    start = np.mean([float(elbo(params, random.PRNGKey(i), images)) for i in range(8)])
    for i in range(80):
        params = step(params, random.fold_in(rng, i))
    end = np.mean([float(elbo(params, random.PRNGKey(i), images)) for i in range(8)])
    assert end > start + 0.5


# --- DP-SGD: per-example gradients clipped to a norm, then noised --------------------------------

def test_per_example_clipped_gradients_match_a_loop():
    _, predict = serial(Dense(8), Tanh, Dense(1))
    _, params = serial(Dense(8), Tanh, Dense(1))[0](random.PRNGKey(5), (-1, 3))
    x = np.random.default_rng(3).standard_normal((6, 3)).astype(np.float32)
    y = np.random.default_rng(4).standard_normal((6, 1)).astype(np.float32)

    def loss(params, xi, yi):
        return jnp.sum((predict(params, xi[None]) - yi) ** 2)

    def clipped(params, xi, yi, l2_norm_clip=0.5):
        grads = jax.grad(loss)(params, xi, yi)
        leaves, treedef = jax.tree.flatten(grads)
        total = jnp.sqrt(sum(jnp.vdot(g, g) for g in leaves))
        scale = jnp.minimum(1.0, l2_norm_clip / total)
        return jax.tree.unflatten(treedef, [g * scale for g in leaves])

    @jax.jit
    def private_grad(params, x, y, key):
        per_example = jax.vmap(clipped, in_axes=(None, 0, 0))(params, x, y)
        summed = jax.tree.map(lambda g: g.sum(0), per_example)
        leaves, treedef = jax.tree.flatten(summed)
        keys = random.split(key, len(leaves))
        noised = [g + 0.1 * random.normal(k, g.shape) for g, k in zip(leaves, keys)]
        return jax.tree.unflatten(treedef, noised), per_example

    noisy, per_example = private_grad(params, x, y, random.PRNGKey(6))
    for i in range(6):
        want = clipped(params, x[i], y[i])
        for got, w in zip(jax.tree.leaves(per_example), jax.tree.leaves(want)):
            np.testing.assert_allclose(np.asarray(got[i]), np.asarray(w), rtol=1e-5, atol=1e-6)
        norm = np.sqrt(sum(np.sum(np.asarray(g[i]) ** 2) for g in jax.tree.leaves(per_example)))
        assert norm <= 0.5 + 1e-5
    keys = random.split(random.PRNGKey(6), len(jax.tree.leaves(noisy)))
    for got, g, k in zip(jax.tree.leaves(noisy), jax.tree.leaves(per_example), keys):
        np.testing.assert_allclose(np.asarray(got), np.asarray(g).sum(0) + 0.1 * np.asarray(random.normal(k, got.shape)),
                                   rtol=1e-5, atol=1e-5)


# --- kernel methods: kernel ridge regression and a Gaussian process -----------------------------

def _rbf(x, y, lengthscale):
    d = jnp.sum((x[:, None, :] - y[None, :, :]) ** 2, axis=-1)
    return jnp.exp(-0.5 * d / lengthscale ** 2)


def test_kernel_ridge_regression_with_linalg_solve():
    rng = np.random.default_rng(5)
    x, xt = rng.uniform(-3, 3, (40, 1)), rng.uniform(-3, 3, (7, 1))
    y = np.sin(x[:, 0]) + 0.1 * rng.standard_normal(40)

    @jax.jit
    def fit_predict(x, y, xt):
        alpha = jnp.linalg.solve(_rbf(x, x, 0.7) + 0.1 * jnp.eye(x.shape[0]), y)
        return _rbf(xt, x, 0.7) @ alpha

    with jax.config.override(enable_x64=True):
        got = fit_predict(x, y, xt)
    K = np.exp(-0.5 * (x - x.T) ** 2 / 0.49)
    want = np.exp(-0.5 * (xt - x.T) ** 2 / 0.49) @ np.linalg.solve(K + 0.1 * np.eye(40), y)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-9, atol=1e-9)


def test_gaussian_process_marginal_likelihood_with_cholesky():
    rng = np.random.default_rng(6)
    x = rng.uniform(-2, 2, (25, 1))
    y = np.cos(2 * x[:, 0]) + 0.05 * rng.standard_normal(25)

    def neg_log_marginal(log_lengthscale, x, y):
        K = _rbf(x, x, jnp.exp(log_lengthscale)) + 0.01 * jnp.eye(x.shape[0])
        L = jnp.linalg.cholesky(K)
        alpha = jsl.solve_triangular(L.T, jsl.solve_triangular(L, y, lower=True), lower=False)
        return 0.5 * y @ alpha + jnp.sum(jnp.log(jnp.diag(L))) + 0.5 * x.shape[0] * jnp.log(2 * jnp.pi)

    with jax.config.override(enable_x64=True):
        value, grad = jax.jit(jax.value_and_grad(neg_log_marginal))(np.log(0.8), x, y)
        K = np.exp(-0.5 * (x - x.T) ** 2 / 0.64) + 0.01 * np.eye(25)
        want = -scipy.stats.multivariate_normal(np.zeros(25), K).logpdf(y)
        np.testing.assert_allclose(float(value), want, rtol=1e-10)
        eps = 1e-6
        fd = (float(neg_log_marginal(np.log(0.8) + eps, x, y)) - float(neg_log_marginal(np.log(0.8) - eps, x, y))) / (2 * eps)
        np.testing.assert_allclose(float(grad), fd, rtol=1e-6)


# --- Newton's method with the Hessian; PCA with the SVD -----------------------------------------------

def test_newtons_method_with_hessian_and_solve():
    A = np.array([[3.0, 0.5, 0.0], [0.5, 2.0, 0.3], [0.0, 0.3, 1.5]])
    b = np.array([1.0, -2.0, 0.5])

    def f(x):
        return 0.5 * x @ A @ x - b @ x + 0.1 * jnp.sum(x ** 4)

    @jax.jit
    def newton_step(x):
        return x - jnp.linalg.solve(jax.hessian(f)(x), jax.grad(f)(x))

    with jax.config.override(enable_x64=True):
        x = jnp.zeros(3)
        for _ in range(12):
            x = newton_step(x)
        got = np.asarray(x)
    want = scipy.optimize.minimize(lambda v: 0.5 * v @ A @ v - b @ v + 0.1 * np.sum(v ** 4), np.zeros(3),
                                   jac=lambda v: A @ v - b + 0.4 * v ** 3, tol=1e-14, method="BFGS").x
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(A @ got - b + 0.4 * got ** 3, 0, atol=1e-12)


def test_pca_with_svd_matches_numpy():
    rng = np.random.default_rng(7)
    data = rng.standard_normal((50, 4)) @ np.array([[3, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0.5, 0], [0, 0, 0, 0.1]])

    @functools.partial(jax.jit, static_argnums=1)
    def pca(x, k):
        centered = x - x.mean(axis=0)
        _, s, vt = jnp.linalg.svd(centered, full_matrices=False)
        return vt[:k], s[:k] ** 2 / (x.shape[0] - 1), centered @ vt[:k].T

    components, variance, projected = pca(data.astype(np.float32), 2)
    centered = data - data.mean(0)
    _, s, vt = np.linalg.svd(centered, full_matrices=False)
    signs = np.sign(np.sum(np.asarray(components) * vt[:2], axis=1))      # singular vectors' signs are free
    np.testing.assert_allclose(np.asarray(components) * signs[:, None], vt[:2], atol=1e-4)
    np.testing.assert_allclose(np.asarray(variance), s[:2] ** 2 / 49, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(projected) * signs, centered @ vt[:2].T, rtol=1e-3, atol=1e-3)


# --- LQR: a Riccati recursion with scan, rollouts that read one step past the end ----------------

def test_lqr_with_scan_and_out_of_range_reads():
    A = np.array([[1.0, 0.1], [0.0, 1.0]])
    B = np.array([[0.0], [0.1]])
    Q, R, T = np.eye(2), np.array([[0.5]]), 20

    def riccati(P, _):
        K = jnp.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
        return Q + A.T @ P @ (A - B @ K), K

    @jax.jit
    def controller(x0):
        _, gains = lax.scan(riccati, jnp.asarray(Q), None, length=T)
        gains = gains[::-1]

        def step(x, t):
            u = -gains[t] @ x
            return A @ x + B @ u, (x, u)
        _, (xs, us) = lax.scan(step, x0, jnp.arange(T))
        # as JAX's LQR example does: the next state's index runs one past the end and is clamped
        next_xs = jnp.stack([xs[t + 1] for t in range(T)])
        return gains, xs, us, next_xs

    with jax.config.override(enable_x64=True):
        gains, xs, us, next_xs = controller(np.array([1.0, 0.0]))
        P, want_gains = Q.copy(), []
        for _ in range(T):
            K = np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
            P = Q + A.T @ P @ (A - B @ K)
            want_gains.append(K)
        np.testing.assert_allclose(np.asarray(gains), np.array(want_gains[::-1]), rtol=1e-10)
        x, want_xs = np.array([1.0, 0.0]), []
        for t in range(T):
            want_xs.append(x)
            x = A @ x + B @ (-want_gains[::-1][t] @ x)
        np.testing.assert_allclose(np.asarray(xs), np.array(want_xs), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(np.asarray(next_xs)[-1], want_xs[-1])        # xs[T] reads xs[T - 1]
        assert float(jnp.arange(11)[11]) == 10
