"""GPU folds: reductions and contractions lowered for the GPU split long folds over few
outputs into partials (``gpu_lowering.fold``), so no thread runs a long serial chain, and
still compute NumPy's results (run by the kernel-IR interpreter)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fgrad
import fgrad.numpy as fnp
from fgrad import lax
from fgrad.lower import kernel as K
from fgrad.lower import gpu_lowering as gpu
from fgrad.lower import rules  # noqa: F401 - registers the lowering rules
from fgrad.lower.cuda import thread_iterations
from fgrad.lower.interpret import run_program
from fgrad.lower.schedule import lower_program
from fgrad.transforms.jit import closure_convert

# a thread folds at most this many terms: a split fold's chunk, its partials' fold, and slack
# for the rows of trailing dims a chunk keeps whole
MAX_CHAIN = 4096


def gpu_program(f, *args) -> tuple[K.Program, list[np.ndarray]]:
    converted, consts = closure_convert(fgrad.make_jaxpr(f)(*args))
    values = [np.asarray(c) for c in consts] + [np.asarray(a) for a in fgrad.tree.tree_leaves(args)]
    return lower_program(converted, target="gpu"), values


def run_on_gpu_program(f, *args) -> list[np.ndarray]:
    program, values = gpu_program(f, *args)
    return run_program(program, *values)


def longest_chain(program: K.Program) -> int:
    return max(thread_iterations(k) for k in K.kernels_of(program))


REDUCTIONS = {
    "sum": (fnp.sum, np.sum), "max": (fnp.max, np.max), "min": (fnp.min, np.min),
    "prod": (fnp.prod, np.prod), "any": (fnp.any, np.any), "all": (fnp.all, np.all),
}


@settings(deadline=None)
@given(shape=st.lists(st.integers(1, 24), min_size=1, max_size=3),
       axes_mask=st.integers(0, 7), name=st.sampled_from(sorted(REDUCTIONS)), seed=st.integers(0, 2 ** 16))
def test_reductions_match_numpy(shape, axes_mask, name, seed):
    rng = np.random.default_rng(seed)
    axes = tuple(d for d in range(len(shape)) if axes_mask >> d & 1) or (0,)
    ours, numpy_fn = REDUCTIONS[name]
    if name in ("any", "all"):
        x = rng.random(shape) < (0.999 if name == "all" else 0.001)
    elif name == "prod":
        x = rng.choice(np.array([1, -1, 2, 1, 1, 1], np.int32), size=shape)
    elif name == "sum":
        x = rng.standard_normal(shape).astype(np.float32)
    else:
        x = rng.integers(-1000, 1000, shape).astype(np.int32)
    (got,) = run_on_gpu_program(lambda v: ours(v, axis=axes), fnp.asarray(x))
    want = numpy_fn(x, axis=axes, dtype=x.dtype) if name in ("sum", "prod") else numpy_fn(x, axis=axes)
    if x.dtype == np.float32:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    else:
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("shape,axes", [((6000,), (0,)), ((2000, 3), (0,)), ((3, 2000), (1,)),
                                        ((8, 4, 10, 10), (0, 2, 3)), ((7, 100, 11), (0, 2))])
def test_long_folds_over_few_outputs_are_split(shape, axes):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    program, values = gpu_program(lambda v: fnp.sum(v, axis=axes), fnp.asarray(x))
    assert len(K.kernels_of(program)) >= 2          # partials, then their fold
    assert longest_chain(program) <= MAX_CHAIN
    (got,) = run_program(program, *values)
    np.testing.assert_allclose(got, np.sum(x.astype(np.float64), axis=axes), rtol=1e-5, atol=1e-3)


def test_short_folds_and_many_outputs_are_one_kernel():
    x = fnp.asarray(np.ones((1 << 18, 4), np.float32))
    program, _ = gpu_program(lambda v: fnp.sum(v, axis=1), x)
    assert len(K.kernels_of(program)) == 1
    program, _ = gpu_program(lambda v: fnp.sum(v, axis=0), fnp.asarray(np.ones((40, 3), np.float32)))
    assert len(K.kernels_of(program)) == 1


def test_split_choice():
    assert gpu.split_count(1 << 18, 10 ** 6) == 1              # enough threads already
    assert gpu.split_count(10, 2 * gpu.GPU_MIN_CHUNK) == 1   # a short fold
    n = gpu.split_count(288, 86528)
    assert n * 288 >= gpu.GPU_THREADS and 86528 // n >= gpu.GPU_MIN_CHUNK


def test_weight_gradients_are_split_and_match_eager():
    """A conv and a dense layer's weight gradients (few outputs, long folds over the batch)."""
    rng = np.random.default_rng(1)
    imgs = fnp.asarray(rng.standard_normal((4, 2, 6, 6)).astype(np.float32))
    w = fnp.asarray(rng.standard_normal((4, 2, 3, 3)).astype(np.float32))
    a = fnp.asarray(rng.standard_normal((200, 3)).astype(np.float32))
    b = fnp.asarray(rng.standard_normal((3, 2)).astype(np.float32))

    def loss(w, b):
        y = lax.conv_general_dilated(imgs, w, (1, 1), ((1, 1), (1, 1)))
        return fnp.sum(fnp.tanh(y) ** 2) + fnp.sum(fnp.sin(a @ b))
    grads = fgrad.grad(loss, argnums=(0, 1))
    program, values = gpu_program(grads, w, b)
    assert longest_chain(program) <= MAX_CHAIN
    assert sum(b.name.startswith("part") for b in program.temporaries()) >= 2      # both split
    got = run_program(program, *values)
    want = [np.asarray(g) for g in grads(w, b)]
    for g, e in zip(got, want):
        np.testing.assert_allclose(g, e, rtol=2e-4, atol=2e-4)


def test_mnist_step_has_no_long_serial_chain():
    """Every kernel of the tutorial's GPU training step keeps its threads' chains short
    (before folds were split, the first conv's bias gradient ran 86528 terms on 32 threads)."""
    from tests.lower.test_cuda_render import _mnist_step_program
    program, _ = _mnist_step_program()
    assert longest_chain(program) <= 1024


def _conv(a, b, padding=((0, 0), (0, 0))):
    return lax.conv_general_dilated(a, b, (1, 1), padding)


def test_conv_threads_fold_a_tile_of_features():
    """Forward conv: each thread folds GPU_TILE output features (the input element is read once
    for all of them); the innermost dim is never tiled. Results match eager."""
    rng = np.random.default_rng(2)
    imgs = fnp.asarray(rng.standard_normal((2, 3, 7, 7)).astype(np.float32))
    w = fnp.asarray(rng.standard_normal((8, 3, 3, 3)).astype(np.float32))
    x_read = lambda kb, idx: K.Load("x", idx[0] * 147 + idx[1] * 49 + idx[2] * 7 + idx[3], K.float32)
    w_read = lambda kb, idx: K.Load("w", idx[0] * 27 + idx[1] * 9 + idx[2] * 3 + idx[3], K.float32)

    def term(kb, o, k):
        return x_read(kb, [o[0], k[0], o[2] + k[1], o[3] + k[2]]) * w_read(kb, [o[1], k[0], k[1], k[2]])
    assert gpu.tile_dim((2, 8, 5, 5), (3, 3, 3), term) == 1
    assert gpu.tile_dim((2, 6, 5, 5), (3, 3, 3), term) is None       # 6 features: no even tiles
    program, values = gpu_program(lambda a, b: fnp.tanh(_conv(a, b)), imgs, w)
    sizes = [s.local.size for kern in K.kernels_of(program) for s in K.walk_stmts(kern.body)
             if isinstance(s, K.DefineLocal)]
    assert gpu.GPU_TILE in sizes
    (got,) = run_program(program, *values)
    np.testing.assert_allclose(got, np.asarray(fnp.tanh(_conv(imgs, w))), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("features", [4, 5, 8])
def test_tiled_and_untiled_conv_gradients_match_eager(features):
    rng = np.random.default_rng(features)
    imgs = fnp.asarray(rng.standard_normal((2, 2, 5, 5)).astype(np.float32))
    w = fnp.asarray(rng.standard_normal((features, 2, 3, 3)).astype(np.float32))
    grads = fgrad.grad(lambda a, b: fnp.sum(_conv(a, b, ((1, 1), (1, 1))) ** 2), argnums=(0, 1))
    program, values = gpu_program(grads, imgs, w)
    for g, e in zip(run_program(program, *values), grads(imgs, w)):
        np.testing.assert_allclose(g, np.asarray(e), rtol=2e-4, atol=2e-4)
