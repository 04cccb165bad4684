"""Jitted GPU programs replayed as CUDA graphs (``fgrad.backends.cuda``: ``CudaExecutable``).

A straight-line launch plan is captured into a graph the second time a call uses the same
device pointers and replayed from then on. These tests check that replays give the plain
launches' results (and the CPU's), that a graph never runs with pointers it was not captured
for, which plans never capture, the switches (``FGRAD_CUDA_GRAPHS=0``, ``FGRAD_DEBUG=2``),
the fallback when capturing fails, and that graphs are destroyed. The fake driver records
launches during a capture and replays them (``tests/backends/fake_driver.py``); tests taking
``gpu`` run again, marked ``cuda``, on a real GPU.
"""
from __future__ import annotations

import dataclasses
import gc
from collections import Counter

import numpy as np
import pytest

import fgrad
import fgrad.numpy as fnp
from fgrad import lax, optim
from fgrad.backends import cuda
from fgrad.compile.cache import executables as program_cache
from fgrad.lower.cuda import Branch, Launch, Repeat, WhileLoop
from tests.backends.fake_driver import FakeCaptureError, FakeDriver
from tests.backends.test_cuda_runtime import X, Y, _isolated, assert_close, emulated, fake, gpu, on_cpu  # noqa: F401

STEPS = 8
rng = np.random.default_rng(1)


def executables() -> list:
    """The GPU executables jit compiled since the driver was installed, most launches first."""
    found = [run for run, _ in program_cache.programs("gpu-jit") if isinstance(run, cuda.CudaExecutable)]
    return sorted(found, key=lambda exe: -exe.launches_per_call)


def mlp_training():
    """A jitted training step (Adam on a small MLP) whose state is fed back every call."""
    opt = optim.adam(1e-2)
    params = {"w1": rng.standard_normal((5, 8)).astype(np.float32), "b1": np.zeros(8, np.float32),
              "w2": rng.standard_normal((8, 3)).astype(np.float32), "b2": np.zeros(3, np.float32)}

    @fgrad.jit
    def step(params, state, x):
        def loss(p):
            h = fnp.tanh(x @ p["w1"] + p["b1"])
            return ((h @ p["w2"] + p["b2"]) ** 2).mean()
        value, grads = fgrad.value_and_grad(loss)(params)
        updates, state = opt.update(grads, state, params)
        return optim.apply_updates(params, updates), state, value

    return step, params, opt.init(params)


def train(step, params, state, xs, put=lambda a: a):
    """``len(xs)`` steps, reading the loss each step as a training loop does."""
    params, state = put(params), put(state)
    losses = []
    for x in xs:
        params, state, loss = step(params, state, put(x))
        losses.append(float(loss))
    return fgrad.tree.tree_map(np.asarray, (params, state)), np.array(losses)


def batches(n: int) -> list:
    return [rng.standard_normal((6, 5)).astype(np.float32) for _ in range(n)]


# --- replays give the plain launches' results ---------------------------------------------------

def test_training_loop_replays_graphs_with_the_plain_results(gpu, monkeypatch):
    step, params, state = mlp_training()
    xs = batches(STEPS)
    with fgrad.config.override(backend="cpu"):
        expected = train(step, params, state, xs)
    monkeypatch.setenv("FGRAD_CUDA_GRAPHS", "0")
    plain = train(step, params, state, xs, gpu.put)
    [exe] = executables()
    assert exe.graph_captures == exe.graph_replays == 0
    monkeypatch.delenv("FGRAD_CUDA_GRAPHS")
    before = Counter(gpu.calls)
    graphed = train(step, params, state, xs, gpu.put)
    assert 1 <= exe.graph_captures <= 4 and exe.graph_replays >= STEPS - 5, (exe.graph_captures, exe.graph_replays)
    if gpu.fake:       # the same kernels in the same order: the same bits
        for a, b in zip(fgrad.tree.tree_leaves(graphed), fgrad.tree.tree_leaves(plain)):
            np.testing.assert_array_equal(a, b)
        delta = gpu.calls - before
        assert delta["graph_launch"] == exe.graph_captures + exe.graph_replays
        assert delta["launch"] == (STEPS - delta["graph_launch"]) * exe.launches_per_call
    else:
        assert_close(graphed, plain, rtol=1e-6, atol=1e-7)
    assert_close(graphed, expected, rtol=1e-4, atol=1e-5)


def test_a_replayed_call_is_one_graph_launch(fake):
    f = fgrad.jit(lambda x, y: (fnp.tanh(x @ y) * 2).sum(1))
    x, y = fake.put(X), fake.put(Y)
    for _ in range(3):
        f(x, y)                 # plain, captured, replayed
    [exe] = executables()
    assert exe.launches_per_call >= 2 and (exe.graph_captures, exe.graph_replays) == (1, 1)
    before = Counter(FakeDriver.calls)
    out = f(x, y)
    delta = FakeDriver.calls - before
    assert delta == Counter(graph_launch=1, graph_kernel=exe.launches_per_call)
    np.testing.assert_allclose(np.asarray(out), (np.tanh(X @ Y) * 2).sum(1), rtol=1e-5, atol=1e-6)


def test_a_counted_loop_is_captured_unrolled(fake):
    """``Repeat`` without an iteration index (a hand-made plan: each kernel of a pure program
    run three times) is captured with its body three times over."""
    f = fgrad.jit(lambda x, y: (fnp.tanh(x @ y) * 2).sum(1))
    x, y = fake.put(X), fake.put(Y)
    f(x, y)
    [base] = executables()
    plan = dataclasses.replace(base.plan, steps=(Repeat(3, None, base.plan.steps),))
    exe = cuda.CudaExecutable(base.program, plan, base.runtime, base._modules)
    assert cuda.graph_launches(plan.steps) == 3 * base.launches_per_call
    for _ in range(3):
        (out,) = exe(x._buffer, y._buffer)
        np.testing.assert_allclose(out.to_numpy(), (np.tanh(X @ Y) * 2).sum(1), rtol=1e-5, atol=1e-6)
        del out
    assert (exe.graph_captures, exe.graph_replays) == (1, 1)
    assert FakeDriver.calls["graph_kernel"] == 2 * 3 * base.launches_per_call


def test_a_scan_is_captured_with_its_counter_copies(fake):
    """An indexed loop (scan, fori_loop) copies its iteration number from a device table on
    each trip: device-to-device copies a graph captures, so the loop replays as one graph and
    each replay still sees 0, 1, 2... (the body reads the counter)."""
    jf = fgrad.jit(lambda x: lax.fori_loop(0, 3, lambda i, c: c * 2 + i, x))
    x = fake.put(X)
    want = ((X * 2 + 0) * 2 + 1) * 2 + 2
    for _ in range(6):
        np.testing.assert_allclose(np.asarray(jf(x)), want, rtol=1e-6)
    [exe] = executables()
    assert cuda.graph_launches(exe.plan.steps) is not None
    assert exe.graph_captures >= 1 and exe.graph_replays >= 1
    assert FakeDriver.calls["captured_copy"] >= 3 and FakeDriver.calls["copy_htod"] <= 2   # the input, the table


# --- a graph never runs with pointers it was not captured for ----------------------------------

def test_fresh_buffers_give_fresh_results(gpu):
    f = fgrad.jit(lambda x, y: (fnp.tanh(x @ y) * 2 + x.sum(1, keepdims=True), (x * y[:, 0]).max(0)))
    y = gpu.put(Y)
    expect = lambda x: on_cpu(f, x, Y)  # noqa: E731
    values = [rng.standard_normal((6, 5)).astype(np.float32) for _ in range(4)]
    on_gpu = [gpu.put(v) for v in values]
    replays = []
    for _ in range(3):                 # a few recurring inputs: their graphs replay
        for v, x in zip(values, on_gpu):
            assert_close(f(x, y), expect(v))
    [exe] = executables()
    replays.append(exe.graph_replays)
    for v in values * 2:               # a new buffer per call, where the last one was: new data
        assert_close(f(gpu.put(v), y), expect(v))
    replays.append(exe.graph_replays)
    for v in values * 2:               # host inputs, copied in each call
        assert_close(f(v, y), expect(v))
    replays.append(exe.graph_replays)
    kept = [f(x, y) for x in on_gpu * 2]       # outputs kept alive: new pointers every call
    for out, v in zip(kept, values * 2):
        assert_close(out, expect(v))
    assert replays[0] >= 4 and replays[1] - replays[0] >= 4 and replays[2] - replays[1] >= 4, replays
    assert exe.graph_replays == replays[2]


def test_allocator_hands_back_preferred_blocks(fake):
    """A program asks for its outputs' last blocks; other requests leave such blocks alone while
    another is free (a batch copied in each step must not take an output's block)."""
    a = cuda.runtime(fake.device).allocator
    b1, b2, b3 = a.alloc(100, prefer=(0, 0)), a.alloc(100, prefer=(0, 0)), a.alloc(100)
    for b in (b1, b3, b2):
        a.free(b)
    assert a.alloc(100, prefer=(12345, b1.ptr)).ptr == b1.ptr
    assert a.alloc(100).ptr == b3.ptr         # b2, freed last, is wanted back by a program
    assert a.alloc(100).ptr == b2.ptr
    assert a.allocations == 3 and a.cached_bytes == 0


# --- which plans capture, and the switches -----------------------------------------------------

def test_graph_launches_counts_straight_line_plans_only():
    a, b = Launch("a", 1, 32, (0,)), Launch("b", 1, 32, (0, 1))
    assert cuda.graph_launches((a, b, Repeat(3, None, (a, Repeat(2, None, (b,)))))) == 2 + 3 * 3
    assert cuda.graph_launches(()) == 0
    assert cuda.graph_launches((a, Repeat(3, 2, (a, b)))) == 1 + 3 * 3     # + a counter copy each
    for blocker in (WhileLoop(1, (a,), (b,)), Branch(1, ((a,), (b,)))):
        assert cuda.graph_launches((a, blocker)) is None
        assert cuda.graph_launches((Repeat(2, None, (blocker,)),)) is None


@pytest.mark.parametrize("kind", ["while", "cond"])
def test_plans_that_read_back_never_capture(fake, kind):
    f = {"while": lambda x: lax.while_loop(lambda s: s[1].sum() < 100.0, lambda s: (s[0] + 1, s[1] * 2 + 1),
                                           (0, fnp.abs(x))),
         "cond": lambda x: lax.cond(x.sum() > 0, lambda v: fnp.tanh(v) * 2, lambda v: v - 1, x)}[kind]
    jf = fgrad.jit(f)
    x = fake.put(X)
    for _ in range(4):
        assert_close(jf(x), on_cpu(jf, X))
    [exe] = executables()
    assert cuda.graph_launches(exe.plan.steps) is None
    assert FakeDriver.calls["begin_capture"] == 0 and exe.graph_captures == 0


def test_graphs_off_with_the_variable_and_under_debug_2(gpu, monkeypatch, capsys):
    f = fgrad.jit(lambda x, y: (fnp.tanh(x @ y) * 2).sum(1))
    x, y = gpu.put(X), gpu.put(Y)
    expected = (np.tanh(X @ Y) * 2).sum(1)
    for value in ("0", "off", "false"):
        monkeypatch.setenv("FGRAD_CUDA_GRAPHS", value)
        for _ in range(4):
            np.testing.assert_allclose(np.asarray(f(x, y)), expected, rtol=1e-5, atol=1e-6)
    [exe] = executables()
    assert exe.graph_captures == exe.graph_replays == 0
    monkeypatch.setenv("FGRAD_CUDA_GRAPHS", "1")
    with fgrad.config.override(debug=2):
        for _ in range(3):
            np.testing.assert_allclose(np.asarray(f(x, y)), expected, rtol=1e-5, atol=1e-6)
    assert "us of kernels" in capsys.readouterr().err and exe.graph_captures == 0
    for _ in range(3):                  # read at each call: on again
        np.testing.assert_allclose(np.asarray(f(x, y)), expected, rtol=1e-5, atol=1e-6)
    assert exe.graph_captures == 1 and exe.graph_replays >= 1
    if gpu.fake:
        FakeDriver.graphs = False       # a driver without graphs: plain launches
        g = fgrad.jit(lambda x, y: (fnp.exp(x @ y) * 3).sum(0))
        for _ in range(4):
            np.testing.assert_allclose(np.asarray(g(x, y)), (np.exp(X @ Y) * 3).sum(0), rtol=1e-5)
        assert executables()[-1]._graphable is False and FakeDriver.calls["begin_capture"] == 1


# --- failures and cleanup ------------------------------------------------------------------------

@pytest.mark.parametrize("failure", ["begin", "launch", "end", "graph_launch"])
def test_a_failing_capture_falls_back_to_plain_launches(fake, failure, capsys):
    FakeDriver.fail_capture = failure
    step, params, state = mlp_training()
    xs = batches(6)
    with fgrad.config.override(backend="cpu"):
        expected = train(step, params, state, xs)
    with fgrad.config.override(debug=1):
        got = train(step, params, state, xs, fake.put)
    assert_close(got, expected, rtol=1e-4, atol=1e-5)
    [exe] = executables()
    assert exe._graphable is False and exe.graph_replays == 0 and not exe._graphs
    assert FakeDriver.calls["begin_capture"] == 1                 # tried once, then off
    driver = cuda.runtime(fake.device).driver
    assert driver.live_graphs == 0 and driver._capture is None
    assert "CUDA graphs off for this program" in capsys.readouterr().err


def test_the_fake_refuses_device_work_while_capturing(fake):
    """As CUDA does: an allocation, copy or synchronize while capturing fails and invalidates
    the capture (so the runtime must do none of them between begin and end)."""
    driver = cuda.runtime(fake.device).driver
    ptr, _ = driver.mem_alloc(64)
    for work in (lambda: driver.mem_alloc(64), lambda: driver.copy_htod(ptr, np.zeros(4, np.float32)),
                 lambda: driver.copy_dtoh(np.zeros(4, np.float32), ptr), driver.synchronize):
        driver.begin_capture()
        with pytest.raises(FakeCaptureError, match="while the stream is capturing"):
            work()
        with pytest.raises(FakeCaptureError, match="invalidated"):
            driver.end_capture()
    with pytest.raises(FakeCaptureError, match="not capturing"):
        driver.end_capture()


def test_evicted_and_collected_graphs_are_destroyed(fake, monkeypatch):
    from fgrad.core.trace import trace_to_jaxpr
    from fgrad.core.types import ShapedArray
    from fgrad.compile.pipeline import compile_jaxpr
    monkeypatch.setattr(cuda.graphs, "GRAPH_CACHE_SIZE", 2)
    closed = trace_to_jaxpr(lambda x: [fnp.tanh(x @ x.T).sum(0) + 1], [ShapedArray((6, 5), np.float32)])
    exe = compile_jaxpr(closed, "evict", device=fake.device)
    driver = exe.driver
    assert exe.launches_per_call >= 2
    values = [rng.standard_normal((6, 5)).astype(np.float32) for _ in range(5)]
    inputs = [fake.put(v)._buffer for v in values]
    for v, x in zip(values, inputs):
        for _ in range(2):             # plain, then captured
            (out,) = exe(x)
            np.testing.assert_allclose(out.to_numpy(), np.tanh(v @ v.T).sum(0) + 1, rtol=1e-5, atol=1e-6)
            del out
    assert exe.graph_captures == 5 and len(exe._graphs) == 2
    assert driver.live_graphs == 2 and FakeDriver.calls["graph_destroy"] == 3
    for v, x in zip(values, inputs):   # the two kept replay, the evicted run plainly
        (out,) = exe(x)
        np.testing.assert_allclose(out.to_numpy(), np.tanh(v @ v.T).sum(0) + 1, rtol=1e-5, atol=1e-6)
        del out
    assert exe.graph_replays == 2
    del exe
    gc.collect()
    assert driver.live_graphs == 0
