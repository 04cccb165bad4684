"""sort's native lowering (``fgrad.lower.sort``, a merge sort in kernel IR): jit vs NumPy and
eager on drawn shapes, dtypes and values (ties, NaN, -0.0, +-inf), several operands and keys,
the interpreter (the IR's definition) on small chunks so that merges split across tasks,
the emulated GPU, and the transforms around it (vmap, grad, random.permutation). Every jitted
program here must run natively: a ReferencePathWarning is an error."""
from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import fgrad
from fgrad import lax, numpy as fnp, random
from fgrad.lower import kernel as K
from fgrad.compile import pipeline
from fgrad.lower import sort as sort_lowering
from fgrad.lower.interpret import run_program
from fgrad.lower.schedule import lower_program
from fgrad.transforms.jit import closure_convert

DTYPES = [np.float32, np.float64, np.int32, np.int64, np.uint8, np.uint32, np.bool_]
FLOAT_EDGES = [0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan]


@pytest.fixture(autouse=True)
def native_only():
    with warnings.catch_warnings():
        warnings.simplefilter("error", fgrad.ReferencePathWarning)
        yield


def values(dtype):
    """Few distinct values (many ties), with every float edge case."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return st.booleans()
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return st.one_of(st.integers(0, 3), st.sampled_from([int(info.min), int(info.max)]))
    return st.one_of(st.sampled_from(FLOAT_EDGES), st.floats(-2, 2, width=dtype.itemsize * 8))


@st.composite
def sort_problems(draw, max_side=40, max_size=3000):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=max_side)
                 .filter(lambda s: np.prod(s) <= max_size))
    x = draw(hnp.arrays(dtype, shape, elements=values(dtype)))
    return x, draw(st.integers(0, len(shape) - 1))


def expected_order(x, dim):
    return np.argsort(x, axis=dim, kind="stable")


def x64_for(*arrays):
    return fgrad.config.override(enable_x64=any(np.dtype(a.dtype).itemsize == 8 for a in arrays))


@contextlib.contextmanager
def algorithm(name: str, target: str = "cpu", chunk: int | None = None):
    """Lower sorts of every length with ``name`` ("merge" or "radix"), in tasks of ``chunk``."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sort_lowering.RADIX_MIN_LENGTH, target, 2 if name == "radix" else None)
        if chunk is not None:
            mp.setitem(sort_lowering.CHUNK, target, chunk)
            mp.setattr(sort_lowering, "RADIX_CHUNK", chunk)
        yield


@pytest.mark.parametrize("method", ["merge", "radix"])
@settings(max_examples=30, deadline=None)
@given(problem=sort_problems())
def test_jit_sort_and_argsort_match_numpy(method, problem):
    x, dim = problem
    with algorithm(method), x64_for(x):
        before = pipeline.compiled_by_path["reference"]
        got = np.asarray(fgrad.jit(lambda a: lax.sort(a, dim))(x))
        order = np.asarray(fgrad.jit(lambda a: lax.argsort(a, dim))(x))
        assert pipeline.compiled_by_path["reference"] == before
    want_order = expected_order(x, dim)
    np.testing.assert_array_equal(order, want_order)
    want = np.take_along_axis(x, want_order, axis=dim)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == x.dtype
    if x.dtype.kind == "f":       # stable: -0.0 and 0.0 stay in input order, as in JAX
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


@pytest.mark.parametrize("method", ["merge", "radix"])
@settings(max_examples=20, deadline=None)
@given(st.integers(1, 3), st.integers(1, 70), st.integers(1, 3), st.data())
def test_several_operands_sort_lexicographically_by_the_keys(method, rows, n, num_keys, data):
    dtypes = [np.dtype(data.draw(st.sampled_from([np.float32, np.int32, np.uint8, np.bool_]))) for _ in range(3)]
    ops = [data.draw(hnp.arrays(d, (rows, n), elements=values(d))) for d in dtypes]
    ops.append(np.arange(rows * n, dtype=np.float32).reshape(rows, n))       # a payload
    f = lambda *a: lax.sort(list(a), 1, num_keys=num_keys)
    with algorithm(method):
        got = fgrad.jit(f)(*ops)
    eager = f(*ops)
    order = np.stack([np.lexsort([k[r] for k in reversed(ops[:num_keys])]) for r in range(rows)])
    for g, e, op in zip(got, eager, ops):
        np.testing.assert_array_equal(np.asarray(g), np.take_along_axis(op, order, axis=1))
        np.testing.assert_array_equal(np.asarray(g), np.asarray(e))


@pytest.mark.parametrize("target,method", [("cpu", "merge"), ("gpu", "merge"), ("cpu", "radix")])
@settings(max_examples=15, deadline=None)
@given(problem=sort_problems(max_side=70, max_size=300), chunk=st.sampled_from([1, 2, 4, 8]))
def test_interpreter_runs_the_lowered_sort_with_small_chunks(target, method, problem, chunk):
    """Chunks smaller than a run: tasks start mid-merge (the co-rank search) and merges of
    several pairs of runs share a task; radix passes count and scatter in several tasks."""
    x, dim = problem
    payload = np.arange(x.size, dtype=np.int32).reshape(x.shape)
    with algorithm(method, target, chunk), x64_for(x):
        converted, consts = closure_convert(fgrad.make_jaxpr(lambda a, p: lax.sort([a, p], dim))(x, payload))
        program = lower_program(converted, target=target)
    got = run_program(program, *consts, x, payload)
    order = expected_order(x, dim)
    np.testing.assert_array_equal(got[0], np.take_along_axis(x, order, axis=dim))
    np.testing.assert_array_equal(got[1], np.take_along_axis(payload, order, axis=dim))


def test_the_merge_passes_are_one_kernel_in_a_loop():
    x = np.zeros((3, 1000), np.float32)
    converted, _ = closure_convert(fgrad.make_jaxpr(lambda a: lax.argsort(a, 1))(x))
    program = lower_program(converted, target="gpu")
    merges = [k for k in K.kernels_of(program) if k.name.startswith("sort_merge")]
    assert len(merges) == 1
    [loop] = [s for s in program.body if isinstance(s, K.Loop)]
    assert loop.count == 5          # ceil(log2(1000)) = 10 passes, two per iteration


def test_radix_sort_takes_a_pass_per_key_byte():
    x, y = np.zeros((3, 1000), np.float32), np.zeros((3, 1000), np.uint8)
    converted, _ = closure_convert(fgrad.make_jaxpr(lambda a, b: lax.sort([a, b], 1, num_keys=2))(x, y))
    program = lower_program(converted)
    scatters = [s for s in program.body if isinstance(s, K.Call) and s.kernel.name.startswith("radix_scatter")]
    assert len(scatters) == 5


def test_argsort_gathers_nothing_for_its_iota():
    """argsort's second operand is an iota: its output is the sorted positions, one lane."""
    x = np.zeros((1000,), np.float32)
    converted, _ = closure_convert(fgrad.make_jaxpr(lambda a: lax.argsort(a))(x))
    program = lower_program(converted)
    assert len([b for b in program.temporaries() if b.name.startswith("sorta")]) == 2   # key + position


def test_descending_sort_and_argsort_match_jax_semantics():
    x = np.array([0.0, -0.0, np.nan, 1.0, -np.inf, 0.0, 1.0], np.float32)
    got = np.asarray(fgrad.jit(lambda a: fnp.argsort(a, descending=True))(x))
    np.testing.assert_array_equal(got, [2, 3, 6, 0, 1, 5, 4])       # NaN first, ties in input order
    i = np.array([3, -2**31, 5, 3, 2**31 - 1, -2**31], np.int32)
    np.testing.assert_array_equal(np.asarray(fnp.argsort(i, descending=True)), [4, 2, 0, 3, 1, 5])
    np.testing.assert_array_equal(np.asarray(fgrad.jit(lambda a: fnp.sort(a, descending=True))(i)),
                                  np.sort(i)[::-1])


@settings(max_examples=10, deadline=None)
@given(hnp.arrays(np.float32, st.tuples(st.integers(0, 4), st.integers(1, 9)),
                  elements=st.sampled_from([0.0, -0.0, 1.0, np.nan, -2.0])))
def test_vmap_of_jit_of_sort_matches_a_loop(x):
    f = fgrad.vmap(fgrad.jit(lambda row: lax.argsort(row)))
    want = np.stack([np.argsort(r, kind="stable") for r in x]) if len(x) else np.zeros(x.shape, np.int32)
    np.testing.assert_array_equal(np.asarray(f(x)), want)
    g = fgrad.jit(fgrad.vmap(lambda row: lax.sort(row), in_axes=1, out_axes=1))
    np.testing.assert_array_equal(np.asarray(g(x.T)), np.sort(x, axis=1).T)


def test_grad_through_sort_under_jit_is_native_and_matches_eager():
    rng = np.random.default_rng(0)
    x = rng.permutation(60).reshape(4, 15).astype(np.float32) * 0.1
    w = rng.standard_normal((4, 15)).astype(np.float32)
    loss = lambda a: (lax.sort(a, 1) * w).sum() + (lax.sort(a * a, 0)[0] ** 2).sum()
    before = pipeline.compiled_by_path["reference"]
    got = fgrad.jit(fgrad.grad(loss))(x)
    assert pipeline.compiled_by_path["reference"] == before
    np.testing.assert_allclose(np.asarray(got), np.asarray(fgrad.grad(loss)(x)), rtol=1e-6)
    # d/dx sum(sort(x) * w) puts w back where each element came from
    order = np.argsort(x, axis=1, kind="stable")
    want = np.zeros_like(w)
    np.put_along_axis(want, order, w, axis=1)
    only_first = fgrad.jit(fgrad.grad(lambda a: (lax.sort(a, 1) * w).sum()))(x)
    np.testing.assert_allclose(np.asarray(only_first), want)


def test_random_permutation_under_jit_is_native_and_matches_eager():
    key = random.key(3)
    before = pipeline.compiled_by_path["reference"]
    got = np.asarray(fgrad.jit(lambda k: random.permutation(k, 5000))(key))
    rows = np.arange(12, dtype=np.float32).reshape(6, 2)
    shuffled = np.asarray(fgrad.jit(lambda k, r: random.permutation(k, r))(key, rows))
    assert pipeline.compiled_by_path["reference"] == before
    np.testing.assert_array_equal(np.sort(got), np.arange(5000))
    np.testing.assert_array_equal(got, np.asarray(random.permutation(key, 5000)))
    np.testing.assert_array_equal(shuffled, np.asarray(random.permutation(key, rows)))


def test_long_rows_and_many_rows_match_numpy():
    """Past one CPU task (2048 outputs): the co-rank search in compiled code."""
    rng = np.random.default_rng(1)
    for shape in [(20000,), (70, 300)]:
        x = rng.integers(-50, 50, shape).astype(np.float32)
        x.flat[::13] = np.nan
        x.flat[::17] = -0.0
        got = fgrad.jit(lambda a: (lax.sort(a, -1), lax.argsort(a, -1)))(x)
        order = np.argsort(x, axis=-1, kind="stable")
        np.testing.assert_array_equal(np.asarray(got[1]), order)
        np.testing.assert_array_equal(np.signbit(np.asarray(got[0])),
                                      np.signbit(np.take_along_axis(x, order, axis=-1)))


def test_emulated_gpu_runs_the_sort(tmp_path):
    from tests.lower.cuda_host import GXX
    if GXX is None:
        pytest.skip("g++ is not on PATH")
    from tests.lower.test_gpu_vs_eager import run_on_emulated_gpu
    rng = np.random.default_rng(2)
    keys = rng.integers(0, 4, (3, 300)).astype(np.float32)
    keys[:, ::7] = np.nan
    minor = rng.integers(0, 3, (3, 300)).astype(np.int32)
    payload = rng.standard_normal((3, 300)).astype(np.float32)
    f = lambda a, b, c: lax.sort([a, b, c], 1, num_keys=2)
    got = run_on_emulated_gpu(f, (keys, minor, payload), tmp_path)
    assert got is not None
    for g, w in zip(got, f(keys, minor, payload)):
        np.testing.assert_array_equal(g, np.asarray(w))


@pytest.mark.nvcc
def test_the_gpu_sort_compiles_with_nvcc():
    from tests.lower.test_cuda_render import NVCC, nvcc_compile
    if NVCC is None:
        pytest.skip("nvcc is not on PATH")
    programs = {}
    cases = {"floats": (lambda a: lax.sort(a, 0), [np.zeros((300, 2), np.float32)]),
             "argsort64": (lambda a: lax.argsort(a), [np.zeros((5, 70), np.float64)]),
             "keys": (lambda a, b, c: lax.sort([a, b, c], 1, num_keys=2),
                      [np.zeros((3, 40), np.uint8), np.zeros((3, 40), np.bool_), np.zeros((3, 40), np.int32)])}
    for name, (f, args) in cases.items():
        with x64_for(*args):
            converted, _ = closure_convert(fgrad.make_jaxpr(f)(*args))
            programs[name] = lower_program(converted, target="gpu")
    assert "sort_merge" in nvcc_compile(programs)
