"""The CUDA runtime (``fgrad.backends.cuda``) against the CPU backend.

Every test runs on the fake driver (``tests/backends/fake_driver.py``: NumPy memory,
launches run by the kernel IR interpreter), so CI checks the runtime's logic without a
GPU: launch plans, loops and branches, the allocator, the compile cache, placement
errors, and when fgrad waits for the device. Tests taking the ``gpu`` fixture run a second
time, marked ``cuda``, on the real ``PycudaDriver`` (counting its calls); those skip
cleanly where pycuda or a GPU is missing.
"""
from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, strategies as st

from fgrad.compile.cache import executables
import fgrad
import fgrad.numpy as fnp
from fgrad import lax, nn, optim, random
from fgrad.backends import cuda
from fgrad.backends.cuda import CudaArray, PycudaDriver
from fgrad.devices import PlacementError
from tests.backends.fake_driver import FakeDriver
from tests.backends.fake_pycuda import FakePycuda
from tests.lower.cuda_host import GXX

RTOL, ATOL = 2e-5, 1e-5


class CountingPycudaDriver(PycudaDriver):
    """The real driver, counting the calls the tests look at."""

    calls: Counter = Counter()

    def synchronize(self) -> None:
        CountingPycudaDriver.calls["synchronize"] += 1
        super().synchronize()

    def compile(self, source, arch, options):
        CountingPycudaDriver.calls["compile"] += 1
        return super().compile(source, arch, options)

    def mem_alloc(self, nbytes):
        CountingPycudaDriver.calls["mem_alloc"] += 1
        return super().mem_alloc(nbytes)


class Gpu:
    """What a test needs to know about the driver in use."""

    def __init__(self, driver: type, fake: bool) -> None:
        self.driver, self.fake = driver, fake

    @property
    def calls(self) -> Counter:
        return self.driver.calls

    @property
    def device(self):
        return fgrad.devices(backend="cuda")[0]

    def put(self, x):
        return fgrad.device_put(x, self.device)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """A private disk cache; the real driver restored afterwards."""
    monkeypatch.setenv("FGRAD_CACHE_DIR", str(tmp_path / "cache"))
    yield
    cuda.use_driver(PycudaDriver)


@pytest.fixture
def fake() -> Gpu:
    FakeDriver.reset(1)
    cuda.use_driver(FakeDriver)
    return Gpu(FakeDriver, True)


@pytest.fixture
def emulated(tmp_path, monkeypatch) -> Gpu:
    """The real driver class over a fake pycuda whose kernels are the CUDA C compiled for the
    host (``fake_pycuda.py``), as the ``real`` case runs it on a GPU: every driver call, the
    argument packing of launches, and the kernels' results."""
    if GXX is None:
        pytest.skip("g++ is not on PATH (it compiles the CUDA C for the host)")
    FakePycuda(gpus=1, kernels_on_host=tmp_path / "host").install(monkeypatch)
    CountingPycudaDriver.calls = Counter()
    cuda.use_driver(CountingPycudaDriver)
    yield Gpu(CountingPycudaDriver, False)
    for rt in list(cuda.devices._runtimes.values()):
        rt._close()


@pytest.fixture(params=["fake", "emulated", pytest.param("real", marks=pytest.mark.cuda)])
def gpu(request) -> Gpu:
    if request.param in ("fake", "emulated"):
        return request.getfixturevalue(request.param)
    if PycudaDriver.device_count() == 0:
        pytest.skip("needs pycuda and an NVIDIA GPU")
    CountingPycudaDriver.calls = Counter()
    cuda.use_driver(CountingPycudaDriver)
    return Gpu(CountingPycudaDriver, False)


def on_cpu(f, *args):
    with fgrad.config.override(backend="cpu"):
        return fgrad.tree.tree_map(np.asarray, f(*args))


def assert_close(actual, expected, rtol=RTOL, atol=ATOL):
    for a, e in zip(fgrad.tree.tree_leaves(actual), fgrad.tree.tree_leaves(expected)):
        a, e = np.asarray(a), np.asarray(e)
        assert a.dtype == e.dtype and a.shape == e.shape, (a.dtype, e.dtype, a.shape, e.shape)
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)
        else:
            np.testing.assert_array_equal(a, e)


def check_jit(gpu: Gpu, f, *args, rtol=RTOL, atol=ATOL):
    """jit(f) on GPU copies of ``args`` gives GPU arrays equal to jit(f) on the CPU."""
    jf = fgrad.jit(f)
    expected = on_cpu(jf, *args)
    launches = gpu.calls["launch"]
    out = jf(*[gpu.put(a) for a in args])
    if gpu.fake:
        assert gpu.calls["launch"] > launches, "the program ran on the host, not as kernels"
    for leaf in fgrad.tree.tree_leaves(out):
        assert isinstance(leaf, CudaArray) and leaf.device == gpu.device
    assert_close(out, expected, rtol, atol)
    return out


rng = np.random.default_rng(0)
X = rng.standard_normal((6, 5)).astype(np.float32)
Y = rng.standard_normal((5, 4)).astype(np.float32)
I = rng.integers(-50, 50, (6, 5)).astype(np.int32)


# --- programs give the CPU's results ----------------------------------------------------------

def test_elementwise(gpu):
    check_jit(gpu, lambda x, i: (fnp.tanh(x) * 2 + fnp.exp(-x * x), (i // 3) % 7, i.astype(fnp.float32) / 4,
                                  fnp.where(x > 0, x, 0.0), (x * 3).astype(fnp.int32)), X, I)


def test_uint8_and_bool(gpu):
    u = rng.integers(0, 256, (17,)).astype(np.uint8)
    check_jit(gpu, lambda u: (u + 200, u > 100, (u.astype(fnp.float32) / 255.0)), u)


def test_reductions(gpu):
    check_jit(gpu, lambda x, i: (x.sum(), x.sum(0), x.max(1), fnp.argmax(x, axis=1), i.min(0),
                                  fnp.mean(x * x, axis=(0, 1))), X, I)


def test_dot_and_batched_dot(gpu):
    a = rng.standard_normal((3, 6, 5)).astype(np.float32)
    check_jit(gpu, lambda x, y, a: (x @ y, fnp.einsum("bij,jk->bik", a, y), x.T @ x), X, Y, a)


def test_conv_and_its_gradients(gpu):
    x = rng.standard_normal((2, 2, 5, 5)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)

    def loss(x, w):
        y = lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)))
        return (nn.max_pool2d(nn.relu(y), 2) ** 2).sum()
    check_jit(gpu, lambda x, w: (loss(x, w), *fgrad.grad(loss, argnums=(0, 1))(x, w)), x, w, rtol=1e-4)


def test_scan(gpu):
    def f(x):
        def body(c, row):
            c = c * 0.5 + row
            return c, c.sum()
        return lax.scan(body, fnp.zeros(5), x)
    check_jit(gpu, f, X)


def test_while_and_fori(gpu):
    def f(x):
        n, y = lax.while_loop(lambda s: s[1].sum() < 100.0, lambda s: (s[0] + 1, s[1] * 2 + 1), (0, fnp.abs(x)))
        return n, y, lax.fori_loop(0, 5, lambda i, c: c + i * x, x)
    check_jit(gpu, f, X)


def test_cond_and_switch(gpu):
    def f(x, k):
        a = lax.cond(x.sum() > 0, lambda v: v * 2, lambda v: v - 1, x)
        b = lax.switch(k, [lambda v: v + 1, lambda v: v * v, lambda v: -v], x)
        return a, b
    for k in (np.int32(0), np.int32(2), np.int32(7)):
        check_jit(gpu, f, X, k)
        check_jit(gpu, f, -X, k)


def test_grad_of_mlp_with_adam(gpu):
    params = {"w": rng.standard_normal((5, 3)).astype(np.float32), "b": np.zeros(3, np.float32)}
    opt = optim.adam(1e-2)
    state = opt.init(params)

    def step(params, state, x):
        loss, grads = fgrad.value_and_grad(lambda p: (fnp.tanh(x @ p["w"] + p["b"]) ** 2).mean())(params)
        updates, state = opt.update(grads, state, params)
        return optim.apply_updates(params, updates), state, loss
    check_jit(gpu, step, params, state, X)


class TinyConvNet(nn.Module):
    """The MNIST tutorial model's layer kinds at a size the interpreter runs quickly."""

    def __init__(self, *, key):
        k1, k2 = random.split(key)
        self.c1 = nn.Conv2d(1, 3, 3, key=k1)
        self.l1 = nn.Linear(3 * 3 * 3, 10, key=k2)

    def __call__(self, x, *, dropout_key=None):
        x = nn.max_pool2d(nn.relu(self.c1(x)), 2)
        x = nn.dropout(nn.flatten(x), 0.5, key=dropout_key, deterministic=dropout_key is None)
        return self.l1(x)


def test_mnist_style_training_step(gpu):
    """examples/mnist.py's step (sampling, dropout, conv, pool, cross-entropy, Adam) in small."""
    images = rng.integers(0, 256, (20, 1, 8, 8)).astype(np.uint8)
    labels = rng.integers(0, 10, (20,)).astype(np.int32)
    model = TinyConvNet(key=random.key(0))
    opt = optim.adam(1e-3)

    @fgrad.jit
    def step(model, opt_state, key, images, labels):
        sample_key, dropout_key = random.split(key)
        index = random.randint(sample_key, (4,), 0, images.shape[0])
        x, y = images[index].astype(fnp.float32) / 255.0, labels[index]
        loss, grads = fgrad.value_and_grad(
            lambda m: nn.sparse_categorical_crossentropy(m(x, dropout_key=dropout_key), y))(model)
        updates, opt_state = opt.update(grads, opt_state, model)
        return optim.apply_updates(model, updates), opt_state, loss

    args = (model, opt.init(model), random.key(3), images, labels)
    expected = on_cpu(step, *args)
    gm, gs, gloss = step(*[gpu.put(a) for a in args])
    assert_close((gm, gs, gloss), expected, rtol=1e-4, atol=1e-5)
    m2, s2, loss2 = step(gm, gs, gpu.put(random.key(4)), gpu.put(images), gpu.put(labels))  # chained on GPU
    assert_close((m2, s2, loss2), on_cpu(step, *expected[:2], random.key(4), images, labels), 1e-4, 1e-5)


def test_prng_bits_match_the_cpu(gpu):
    check_jit(gpu, lambda k: (random.bits(k, (33,)), random.uniform(k, (7,)), random.normal(k, (5,))),
              random.key(42))


# --- eager operations on GPU arrays ------------------------------------------------------------

def test_eager_ops_run_on_the_gpu_and_compile_once(gpu):
    x = gpu.put(X)
    y = fnp.sin(x) * 2 + 1
    assert isinstance(y, CudaArray) and y.device == gpu.device
    np.testing.assert_allclose(np.asarray(y), np.sin(X) * 2 + 1, rtol=RTOL, atol=ATOL)
    compiles = gpu.calls["compile"]
    z = fnp.sin(x + 0.5) * 2 + 1                 # same primitives and avals: no new compiles
    assert gpu.calls["compile"] == compiles
    np.testing.assert_allclose(np.asarray(z), np.sin(X + 0.5) * 2 + 1, rtol=RTOL, atol=ATOL)


def test_eager_grad_on_gpu_arrays(gpu):
    x = gpu.put(X)
    g = fgrad.grad(lambda v: (fnp.tanh(v) ** 2).sum())(x)
    assert isinstance(g, CudaArray)
    np.testing.assert_allclose(np.asarray(g), 2 * np.tanh(X) * (1 - np.tanh(X) ** 2), rtol=1e-5, atol=1e-6)


def test_scalars_keep_their_shape(gpu):
    s = gpu.put(np.float32(2.5))
    assert s.shape == () and np.asarray(s).shape == () and s.item() == 2.5
    t = s * 2 + fnp.sum(gpu.put(X))
    assert t.shape == () and np.asarray(t).shape == ()
    np.testing.assert_allclose(float(t), 5.0 + X.sum(), rtol=1e-5)


def test_eager_reductions_and_indexing(gpu):
    x = gpu.put(X)
    assert_close((x.sum(1), x[1:4, ::2], x.T, fnp.argmax(x)),
                 (X.sum(1), X[1:4, ::2], X.T, np.argmax(X).astype(np.int32)))


def test_transform_compositions_on_gpu_arrays(gpu):
    """grad of a jitted function, jit of vmap of grad, vmap of jit: GPU arrays in, GPU arrays out."""
    x = gpu.put(X)
    f = fgrad.jit(lambda v: (fnp.sin(v) ** 2).sum())
    cases = [(fgrad.grad(f), 2 * np.sin(X) * np.cos(X)),
             (fgrad.jit(fgrad.vmap(fgrad.vmap(fgrad.grad(lambda v: fnp.tanh(v) * v)))),
              np.tanh(X) + X * (1 - np.tanh(X) ** 2)),
             (fgrad.vmap(fgrad.jit(lambda row: row @ Y)), X @ Y)]
    for fn, expected in cases:
        out = fn(x)
        assert isinstance(out, CudaArray)
        np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-5, atol=1e-5)


def test_primitives_without_lowering_run_on_the_host(gpu, monkeypatch):
    """A primitive without a kernel-IR lowering (here sort, its rule taken away): its program
    runs on the host with a ReferencePathWarning, results return to the GPU."""
    from fgrad.lower import rules  # noqa: F401
    from fgrad.lower.schedule import lowering_rules
    from fgrad.ops.sort import sort_p
    monkeypatch.delitem(lowering_rules, sort_p)
    x = gpu.put(X)
    with pytest.warns(fgrad.ReferencePathWarning, match="primitive 'sort'"):
        outs = (fnp.sort(x, axis=1), fgrad.jit(lambda v: fnp.sort(v * 2, axis=0))(x))
    for out in outs:
        assert isinstance(out, CudaArray) and out.device == gpu.device
    np.testing.assert_array_equal(np.asarray(outs[0]), np.sort(X, axis=1))
    np.testing.assert_array_equal(np.asarray(outs[1]), np.sort(X * 2, axis=0))


def test_sort_runs_as_gpu_kernels(gpu):
    """sort, argsort and a permutation's gather are GPU kernels: no warning, no host trip."""
    x = gpu.put(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", fgrad.ReferencePathWarning)
        warnings.simplefilter("error", fgrad.HostFallbackWarning)
        outs = (fnp.sort(x, axis=1), fgrad.jit(lambda v: fnp.sort(v * 2, axis=0))(x),
                fgrad.jit(lambda v: fnp.argsort(v, axis=1))(x))
    for out in outs:
        assert isinstance(out, CudaArray) and out.device == gpu.device
    np.testing.assert_array_equal(np.asarray(outs[0]), np.sort(X, axis=1))
    np.testing.assert_array_equal(np.asarray(outs[1]), np.sort(X * 2, axis=0))
    np.testing.assert_array_equal(np.asarray(outs[2]), np.argsort(X, axis=1, kind="stable"))


@pytest.mark.parametrize("precision", ["highest", "tf32"])
def test_eager_matmul_uses_the_native_gemm(gpu, precision):
    """Eager float dot_generals run the CUDA C GEMM template (TF32 only when allowed)."""
    a = rng.standard_normal((3, 70, 40)).astype(np.float32)
    b = rng.standard_normal((3, 40, 90)).astype(np.float32)
    with fgrad.config.override(matmul_precision=precision):
        native = gpu.calls["native_launch"]
        outs = (gpu.put(a) @ gpu.put(b), lax.dot_general(gpu.put(X), gpu.put(X), (((0,), (0,)), ((), ()))))
        if gpu.fake:
            assert gpu.calls["native_launch"] == native + 2
    tol = dict(rtol=2e-2, atol=2e-2) if precision == "tf32" else dict(rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(outs[0]), a @ b, **tol)
    np.testing.assert_allclose(np.asarray(outs[1]), X.T @ X, **tol)
    if precision == "highest":     # and the TF32 kernel really rounds: a visible difference
        with fgrad.config.override(matmul_precision="tf32"):
            rounded = np.asarray(gpu.put(a) @ gpu.put(b))
        assert 1e-5 < np.max(np.abs(rounded - a @ b)) < 5e-2


def test_config_rejects_unknown_precision():
    with pytest.raises(ValueError, match="matmul_precision must be one of"):
        fgrad.config.update("matmul_precision", "bf16")


# --- when fgrad waits for the GPU --------------------------------------------------------------

def test_sync_only_when_a_value_is_read(gpu):
    f = fgrad.jit(lambda x: fnp.tanh(x) + x.sum())
    x = gpu.put(X)
    f(x)                                      # compile
    before = gpu.calls["synchronize"]
    ys = [f(x) for _ in range(3)]
    z = ys[-1] * 2
    assert gpu.calls["synchronize"] == before, "queuing work must not wait for the GPU"
    z.block_until_ready()
    assert gpu.calls["synchronize"] == before + 1
    expected = (np.tanh(X) + X.sum()) * 2
    np.testing.assert_allclose(np.asarray(z), expected, rtol=RTOL, atol=ATOL)
    assert gpu.calls["synchronize"] == before + 2
    np.asarray(z), z.tolist(), repr(z)       # the host copy is kept: no more waiting
    assert gpu.calls["synchronize"] == before + 2
    assert float(ys[0].sum()) == pytest.approx(float(expected.sum() / 2), rel=1e-5)
    assert "Array(" in repr(ys[1]) and gpu.calls["synchronize"] == before + 4


def test_loops_read_only_their_condition(gpu):
    f = fgrad.jit(lambda x: lax.while_loop(lambda s: s[0] < 5, lambda s: (s[0] + 1, s[1] * 2), (0, x)))
    x = gpu.put(X)
    f(x)
    before = gpu.calls["synchronize"]
    n, y = f(x)
    assert gpu.calls["synchronize"] - before == 6       # one condition read per test, nothing else
    assert int(n) == 5
    g = fgrad.jit(lambda x: lax.fori_loop(0, 4, lambda i, c: c * 2, x))
    g(x)
    before = gpu.calls["synchronize"]
    g(x)
    assert gpu.calls["synchronize"] == before            # a counted loop never waits


# --- devices and placement --------------------------------------------------------------------

def test_devices_and_default_backend(fake):
    assert fgrad.devices(backend="cuda") == [cuda.CudaDevice("cuda", 0)]
    with fgrad.config.override(backend=None):
        assert [d.platform for d in fgrad.devices()] == ["cuda"]
        assert fgrad.default_device().platform == "cuda"
        out = fgrad.jit(lambda x: x * 2)(X)                  # host arguments go to the default GPU
        assert isinstance(out, CudaArray)
        assert isinstance(fgrad.device_put(X), CudaArray)
        committed = fgrad.device_put(X, fgrad.devices(backend="cpu")[0])   # stays on the CPU
        assert type(fgrad.jit(lambda x: x * 2)(committed)) is fgrad.Array
    with fgrad.config.override(backend="cpu"):
        assert [d.platform for d in fgrad.devices()] == ["cpu"]
        out = fgrad.jit(lambda x: x * 2)(X)
        assert type(out) is fgrad.Array and not isinstance(out, CudaArray)


def test_no_gpu(monkeypatch):
    FakeDriver.reset(0)
    cuda.use_driver(FakeDriver)
    with fgrad.config.override(backend=None):
        assert [d.platform for d in fgrad.devices()] == ["cpu"]
        assert type(fgrad.jit(lambda x: x + 1)(X)) is fgrad.Array
    with fgrad.config.override(backend="cuda"), pytest.raises(RuntimeError, match="FGRAD_BACKEND=cpu"):
        fgrad.jit(lambda x: x + 1)(X)
    with pytest.raises(ValueError, match="not a GPU"):
        cuda.runtime(fgrad.backends.base.Device("cuda", 0))


def test_arrays_on_two_gpus_raise(fake):
    FakeDriver.reset(2)
    cuda.use_driver(FakeDriver)
    d0, d1 = fgrad.devices(backend="cuda")
    a, b = fgrad.device_put(X, d0), fgrad.device_put(X, d1)
    assert (a.device, b.device) == (d0, d1)
    for combine in (lambda: a + b, lambda: fgrad.jit(lambda u, v: u * v)(a, b)):
        with pytest.raises(ValueError, match=r"cuda:0.*cuda:1.*device_put"):
            combine()
    moved = fgrad.device_put(b, d0)
    assert moved.device == d0
    np.testing.assert_allclose(np.asarray(a + moved), 2 * X)


def test_jit_names_the_arguments_on_another_device(fake):
    """A pytree of parameters with one leaf on another GPU: the error names that leaf's path
    (and the others'), the devices, and the device_put that fixes it."""
    FakeDriver.reset(2)
    cuda.use_driver(FakeDriver)
    d0, d1 = fgrad.devices(backend="cuda")
    params = {"w": fgrad.device_put(X.T, d0), "b": fgrad.device_put(X[0], d1)}
    f = fgrad.jit(lambda scale, p, x: (x @ p["w"]) * scale + p["b"][0], static_argnums=0)
    with pytest.raises(PlacementError,
                       match=r"jit\(<lambda>\): its arguments are on 2 devices: args\[1\]\['b'\] on cuda:1; "
                             r"args\[1\]\['w'\], kwargs\['x'\] on cuda:0\. Put them on one device first, e\.g\. "
                             r"args\[1\]\['b'\] = fgrad\.device_put\(args\[1\]\['b'\], cuda:0\)"):
        f(2.0, params, x=fgrad.device_put(X, d0))
    params["b"] = fgrad.device_put(params["b"], d0)
    np.testing.assert_allclose(np.asarray(f(2.0, params, x=fgrad.device_put(X, d0))), (X @ X.T) * 2 + X[0, 0],
                               rtol=RTOL, atol=ATOL)


def test_committed_cpu_array_and_gpu_array_raise(fake):
    on_gpu = fgrad.device_put(X, fake.device)
    on_cpu_ = fgrad.device_put(X, fgrad.devices(backend="cpu")[0])
    with pytest.raises(ValueError, match=r"cuda:0.*cpu:0.*device_put|cpu:0.*cuda:0.*device_put"):
        on_gpu + on_cpu_
    with pytest.raises(ValueError, match="device_put"):
        fgrad.jit(lambda u, v: u - v)(on_gpu, on_cpu_)
    # uncommitted host values (fnp arrays, NumPy arrays, Python scalars) follow the GPU array
    np.testing.assert_allclose(np.asarray(on_gpu + fnp.asarray(X) + X + 1.0), 3 * X + 1)
    back = fgrad.device_put(on_gpu, fgrad.devices(backend="cpu")[0])
    assert not isinstance(back, CudaArray) and back.device.platform == "cpu"
    np.testing.assert_array_equal(np.asarray(back), X)


# --- memory ---------------------------------------------------------------------------------

def test_size_classes():
    assert cuda.size_class(1) == 512 and cuda.size_class(513) == 1024 and cuda.size_class(4096) == 4096
    for n in (4097, 10_000, 123_456, 1 << 20, (1 << 20) + 1, 3 * (1 << 28) + 7):
        c = cuda.size_class(n)
        assert n <= c <= n * 1.125 + 512
        assert cuda.size_class(c) == c


def test_allocator_reuses_blocks_and_tracks_peak(fake):
    rt = cuda.runtime(fake.device)
    a = rt.allocator
    b1 = a.alloc(1000)
    b2 = a.alloc(3000)
    assert a.live_bytes == 1024 + 3072 and a.peak_bytes == a.live_bytes and a.allocations == 2
    a.free(b1)
    assert a.live_bytes == 3072 and a.cached_bytes == 1024 and a.peak_bytes == 4096
    b3 = a.alloc(600)                          # same class as b1: reused, no driver call
    assert b3.ptr == b1.ptr and a.allocations == 2 and a.cached_bytes == 0
    a.free(b2)
    a.free(b3)
    a.empty_cache()
    assert a.cached_bytes == 0 and FakeDriver.calls["mem_free"] == 2


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 1 << 16)), max_size=60))
def test_allocator_blocks_never_overlap(ops):
    """Any sequence of allocs and frees: live blocks are disjoint and big enough, and the
    counters add up (live + cached = what the driver handed out)."""
    FakeDriver.reset(1)
    driver = FakeDriver(0)
    a = cuda.CachingAllocator(driver)
    live = []
    for do_alloc, n in ops:
        if do_alloc or not live:
            live.append((a.alloc(n), n))
        else:
            a.free(live.pop(n % len(live))[0])
        spans = sorted((b.ptr, b.ptr + b.size) for b, _ in live)
        assert all(hi <= lo for (_, hi), (lo, _) in zip(spans, spans[1:]))
        assert all(b.size >= n for b, n in live)
        assert a.live_bytes == sum(b.size for b, _ in live) <= a.peak_bytes
        assert a.live_bytes + a.cached_bytes == driver.allocated


def test_allocator_frees_its_cache_when_out_of_memory(fake):
    rt = cuda.runtime(fake.device)
    a = rt.allocator
    a.free(a.alloc(1 << 20))
    FakeDriver.memory_limit = (1 << 20) + 4096
    block = a.alloc(1 << 19)                  # another class: the cached MiB must go first
    assert a.cached_bytes == 0 and block.size == 1 << 19
    with pytest.raises(Exception, match="out of memory"):
        a.alloc(1 << 21)


def test_jit_calls_reuse_memory(gpu):
    f = fgrad.jit(lambda x: fnp.tanh(x @ x.T).sum(0) + 1)
    x = gpu.put(rng.standard_normal((8, 3)).astype(np.float32))
    rt = cuda.runtime(gpu.device)
    f(x).block_until_ready()
    allocations = rt.allocator.allocations
    for _ in range(5):
        f(x)                                   # each output dies as the next is made
    assert rt.allocator.allocations == allocations
    stats = rt.memory_stats()
    assert stats["peak_bytes"] >= stats["live_bytes"] > 0


def test_outputs_free_their_memory(fake):
    rt = cuda.runtime(fake.device)
    x = fake.put(np.ones((1000,), np.float32))
    live = rt.allocator.live_bytes
    y = x * x
    assert rt.allocator.live_bytes > live
    del y
    assert rt.allocator.live_bytes == live


# --- compilation and the disk cache ----------------------------------------------------------

def test_disk_cache_hit_miss_and_corrupt_entry(fake, tmp_path):
    f = lambda x: fnp.cos(x) * 3  # noqa: E731
    x = fake.put(X)
    fgrad.jit(f)(x)
    assert FakeDriver.calls["compile"] == 1
    files = list((tmp_path / "cache" / "cuda").glob("*.cubin"))
    assert len(files) == 1
    cuda.use_driver(FakeDriver)                    # a new session: empty memory caches
    x = fake.put(X)
    np.testing.assert_allclose(np.asarray(fgrad.jit(f)(x)), np.cos(X) * 3, rtol=RTOL)
    assert FakeDriver.calls["compile"] == 1        # loaded from disk
    files[0].write_bytes(files[0].read_bytes()[:-5] + b"xxxxx")
    cuda.use_driver(FakeDriver)
    x = fake.put(X)
    np.testing.assert_allclose(np.asarray(fgrad.jit(f)(x)), np.cos(X) * 3, rtol=RTOL)
    assert FakeDriver.calls["compile"] == 2        # corrupt: rebuilt and rewritten
    assert cuda.compiler._disk_cache.read(files[0]) is not None


def test_programs_with_huge_kernel_locals_run_on_the_host_cpu(fake, monkeypatch):
    """A kernel needing more per-thread local memory than a GPU can sensibly reserve: the
    program runs on the CPU backend, its inputs read back and its outputs copied to the GPU."""
    monkeypatch.setenv("FGRAD_CUDA_MAX_LOCAL_BYTES", "0")
    f = lambda x, y: (x @ y, fnp.tanh(x).sum())  # noqa: E731  (the GEMM keeps an accumulator tile)
    out = check_jit_on_host(fake, f, X, Y)
    assert all(isinstance(o, CudaArray) for o in out)
    monkeypatch.setenv("FGRAD_CUDA_MAX_LOCAL_BYTES", "lots")
    with pytest.raises(ValueError, match="FGRAD_CUDA_MAX_LOCAL_BYTES"):
        cuda.max_local_bytes()


def check_jit_on_host(gpu, f, *args):
    jf = fgrad.jit(f)
    expected = on_cpu(jf, *args)
    launches = gpu.calls["launch"]
    with pytest.warns(fgrad.HostFallbackWarning, match="locals too large"):
        out = jf(*[gpu.put(a) for a in args])
    assert gpu.calls["launch"] == launches                 # nothing ran as GPU kernels
    [exe] = [run for run, _ in executables.programs("gpu-jit")]
    assert "locals too large" in getattr(exe, "on_host", "")
    assert_close(out, expected)
    return out


def test_split_source_balances_kernels_over_modules():
    from fgrad.lower.cuda import PRELUDE
    kernels = [f'extern "C" __global__ void k{i}(float* x) {{ {"x[0] += 1.0f; " * (i * 300 + 2000)} }}\n'
               for i in range(7)]
    source = "\n".join([PRELUDE, *kernels])
    chunks = cuda.split_source(source, 3)
    assert len(chunks) == 3
    assert sorted(n for _, names in chunks for n in names) == [f"k{i}" for i in range(7)]
    for text, names in chunks:
        assert text.startswith(PRELUDE) and all(f"void {n}(" in text for n in names)
        assert [int(n[1:]) for n in names] == sorted(int(n[1:]) for n in names)   # program order
    sizes = [len(text) for text, _ in chunks]
    assert max(sizes) - min(sizes) < len(kernels[-1])
    assert cuda.split_source(source, 1) == [(source, [f"k{i}" for i in range(7)])]
    assert len(cuda.split_source(source[:len(PRELUDE) + 5000], 8)) == 1        # small: one module


def test_a_program_compiled_as_several_modules_runs(fake, monkeypatch):
    monkeypatch.setattr(cuda.compiler, "MIN_CHUNK", 1)
    monkeypatch.setenv("FGRAD_CUDA_COMPILE_THREADS", "3")
    # a chain of dependent kernels (independent ones would merge into one launch)
    check_jit(fake, lambda x, y: (fnp.tanh(fnp.tanh(x @ y).sum(0) @ y.T).sum(), fnp.exp(x).max(1)), X, Y)
    assert FakeDriver.calls["compile"] == 3 and FakeDriver.calls["load_module"] == 3
    monkeypatch.setenv("FGRAD_CUDA_COMPILE_THREADS", "zero")
    with pytest.raises(ValueError, match="FGRAD_CUDA_COMPILE_THREADS"):
        cuda.compile_workers()


def test_debug_2_reports_each_kernels_time(gpu, capsys):
    f = fgrad.jit(lambda x, y: (fnp.tanh(x @ y) * 2).sum(1))
    x, y = gpu.put(X), gpu.put(Y)
    expected = np.asarray(f(x, y))
    with fgrad.config.override(debug=2):
        out = f(x, y)
    report = capsys.readouterr().err
    assert "us of kernels" in report and " x1 " in report and "grid" in report
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-6)
    capsys.readouterr()
    f(x, y)                                # timing is off again: nothing printed
    assert "us of kernels" not in capsys.readouterr().err


def test_cache_key_depends_on_arch_options_and_compiler():
    keys = {cuda.source_key("src", "sm_90", (), "nvrtc"), cuda.source_key("src", "sm_80", (), "nvrtc"),
            cuda.source_key("src", "sm_90", ("-O3",), "nvrtc"), cuda.source_key("src", "sm_90", (), "nvcc"),
            cuda.source_key("src2", "sm_90", (), "nvrtc")}
    assert len(keys) == 5


def test_compile_errors_name_the_step(fake, monkeypatch):
    monkeypatch.setenv("FGRAD_CACHE_DIR", "off")
    FakeDriver.fail_compile = True
    with pytest.raises(cuda.CudaError, match="compiling CUDA C for sm_90 failed.*expected"):
        fgrad.jit(lambda x: x - 7)(fake.put(X))


def test_executable_checks_its_inputs(fake):
    from fgrad.core.trace import trace_to_jaxpr
    from fgrad.core.types import ShapedArray
    from fgrad.compile.pipeline import compile_jaxpr
    closed = trace_to_jaxpr(lambda x: [x * 2], [ShapedArray((3,), np.float32)])
    exe = compile_jaxpr(closed, "double", device=fake.device)
    (out,) = exe(np.arange(3, dtype=np.float32))
    np.testing.assert_array_equal(out.to_numpy(), [0, 2, 4])
    with pytest.raises(TypeError, match=r"input 0 .* must be float32\[3\], got int32\[3\]"):
        exe(np.arange(3, dtype=np.int32))
    with pytest.raises(TypeError, match="takes 1 inputs, got 2"):
        exe(np.zeros(3, np.float32), np.zeros(3, np.float32))


def test_launch_plan_runs_prepared_launches_only(fake, monkeypatch):
    """Per call: input copies, launches; no compiles, module loads or reads (CUDA graphs off:
    tests/backends/test_cuda_graphs.py checks a replayed call)."""
    monkeypatch.setenv("FGRAD_CUDA_GRAPHS", "0")
    f = fgrad.jit(lambda x, y: (fnp.tanh(x @ y) * 2).sum(1))
    x, y = fake.put(X), fake.put(Y)
    f(x, y)
    before = Counter(FakeDriver.calls)
    f(x, y)
    delta = FakeDriver.calls - before
    assert set(delta) <= {"launch", "ir_launch", "mem_alloc"} and delta["launch"] >= 1


@pytest.mark.skipif(cuda.find_nvrtc() is None, reason="needs libnvrtc (CUDA toolkit or the nvidia-cuda-nvrtc "
                    "wheel; FGRAD_NVRTC=path names one)")
def test_nvrtc_compiles_rendered_programs_and_gemm_templates():
    """NVRTC, in-process and without a GPU, compiles what the runtime hands it: a rendered training
    step (the PRELUDE included) and both GEMM templates (TF32 needs CUDA's mma.h)."""
    from fgrad.lower.cuda import kernels_by_name, render_program
    from fgrad.lower.cuda_contraction import GemmSpec, render_gemm
    from fgrad.lower.schedule import lower_program
    model, opt = TinyConvNet(key=random.key(0)), optim.adam(1e-3)

    def step(model, state, x, y):
        loss, grads = fgrad.value_and_grad(lambda m: nn.sparse_categorical_crossentropy(m(x), y))(model)
        updates, state = opt.update(grads, state, model)
        return optim.apply_updates(model, updates), state, loss
    x, y = np.zeros((4, 1, 8, 8), np.float32), np.zeros(4, np.int32)
    program = lower_program(fgrad.jit(step).lower(model, opt.init(model), x, y), "step", target="gpu")
    source, _ = render_program(program)
    nvrtc = cuda.find_nvrtc()
    cubin = nvrtc.compile(source, "sm_90", cuda.compile_options())
    assert cubin[:4] == b"\x7fELF"
    assert all(name.encode() in cubin for name in kernels_by_name(program))
    for precision in ("highest", "tf32"):
        spec = GemmSpec.for_dot_general((64, 32), (32, 48), (((1,), (0,)), ((), ())), np.float32, precision)
        gemm = nvrtc.compile(render_gemm(spec, "fg_gemm")[0], "sm_90", cuda.compile_options())
        assert gemm[:4] == b"\x7fELF" and b"fg_gemm" in gemm
    with pytest.raises(cuda.CudaError, match="NVRTC compilation failed"):
        nvrtc.compile("this is not C", "sm_90", ())


@pytest.mark.cuda
def test_pycuda_prepared_call_path(monkeypatch):
    """The real driver's launcher fast path and pycuda's own prepared_async_call agree."""
    if PycudaDriver.device_count() == 0:
        pytest.skip("needs pycuda and an NVIDIA GPU")
    monkeypatch.setenv("FGRAD_CUDA_LAUNCH", "prepared")
    cuda.use_driver(CountingPycudaDriver)
    gpu = Gpu(CountingPycudaDriver, False)
    check_jit(gpu, lambda x, y: (fnp.tanh(x @ y), x.sum(0)), X, Y)


@pytest.mark.cuda
def test_nvrtc_compiles_a_kernel_on_the_gpu_machine():
    if PycudaDriver.device_count() == 0:
        pytest.skip("needs pycuda and an NVIDIA GPU")
    nvrtc = cuda.find_nvrtc()
    if nvrtc is None:
        pytest.skip("no libnvrtc.so found")
    image = nvrtc.compile('extern "C" __global__ void k(float* x) { x[threadIdx.x] *= 2.0f; }', "sm_80", ())
    assert len(image) > 100


def test_beam_on_a_gpu_program_warns_instead_of_being_ignored(fake, monkeypatch):
    """BEAM searches CPU contractions only: a GPU program compiled with it on says so (once),
    and computes what it computes without it."""
    from fgrad.backends import beam
    monkeypatch.setattr(beam, "_warned_gpu", [])
    x = fgrad.device_put(X, fake.device)
    expected = np.asarray(fgrad.jit(lambda a: a @ a.T)(x))
    with fgrad.config.override(beam=2):
        with pytest.warns(beam.BeamWarning, match="CPU contractions only: GPU programs keep their fixed"):
            out = fgrad.jit(lambda a: (a @ a.T) * 1.0)(x)
        with warnings.catch_warnings():
            warnings.simplefilter("error", beam.BeamWarning)
            fgrad.jit(lambda a: a.T @ a)(x)              # once per process
    np.testing.assert_allclose(np.asarray(out), expected, rtol=RTOL, atol=ATOL)
