"""Elementwise kernels over whole buffers are one flat loop (``Lowerer.write_elementwise``);
kernels whose reads are not at the flat index (broadcasts, transposes, slices) keep a loop per
dimension, without loops over dimensions of one element. Checked against NumPy, compiled and
interpreted."""
from __future__ import annotations

import numpy as np
from hypothesis import given, strategies as st

import fgrad
import fgrad.numpy as fnp
from fgrad.lower import kernel as K
from fgrad.lower import rules  # noqa: F401 - registers the lowering rules
from fgrad.lower.interpret import run_program
from fgrad.lower.schedule import flat_unravel, lower_program, ravel, unravel
from fgrad.transforms.jit import closure_convert


def _program(f, *args):
    converted, consts = closure_convert(fgrad.make_jaxpr(f)(*args))
    values = [np.asarray(c) for c in consts] + [np.asarray(a) for a in args]
    return lower_program(converted, target="cpu"), values


def _loops(kernel: K.Kernel) -> list[K.Range]:
    return [s for s in K.walk_stmts(kernel.body) if isinstance(s, K.Range)]


def test_whole_buffer_elementwise_work_is_one_flat_vector_loop():
    x, m = np.ones((64, 32, 3, 3), np.float32), np.zeros((64, 32, 3, 3), np.float32)
    program, _ = _program(lambda g, m: 0.9 * m + 0.1 * g * g, x, m)
    (kernel,) = K.kernels_of(program)
    (loop,) = _loops(kernel)
    assert (loop.start, loop.stop) == (K.Const(0, K.INDEX), K.Const(x.size, K.INDEX)) and loop.vectorize


def test_a_dimension_of_one_element_gets_no_loop():
    x = np.ones((5, 1, 7), np.float32)
    program, _ = _program(lambda a: fnp.swapaxes(a, 0, 2) * 2.0, x)
    (kernel,) = K.kernels_of(program)
    assert sorted(int(loop.stop.value) for loop in _loops(kernel)) == [5, 7]


def test_ravel_of_a_flat_multi_index_is_the_flat_index_and_nothing_else_is():
    v = K.Var("v")
    assert ravel(flat_unravel(v, (4, 1, 3)), (4, 1, 3)) == v
    # a broadcast read: the same trailing index, another shape -- v modulo its size, not v
    assert ravel(unravel(v, (1, 3)), (1, 3)) != v
    assert ravel(flat_unravel(v, (4, 3))[1:], (3,)) != v


shapes = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)


@given(shapes, st.data())
def test_reads_of_a_trailing_broadcast_match_numpy(shape, data):
    """out = x + z with z of x's trailing dimensions (NumPy's broadcasting): z's reads repeat."""
    rng = np.random.default_rng(len(shape))
    x = rng.standard_normal(shape).astype(np.float32)
    z = rng.standard_normal(shape[data.draw(st.integers(1, len(shape))):]).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(fgrad.jit(lambda a, b: a + b)(x, z)), x + z)


@given(shapes, st.data())
def test_broadcast_transpose_and_slice_reads_match_numpy(shape, data):
    """out = x * 2 + y, y broadcast from a shape with some dimensions dropped to one element,
    and x transposed: every read kind the flat check must reject or accept."""
    rng = np.random.default_rng(len(shape))
    x = rng.standard_normal(shape).astype(np.float32)
    ones = data.draw(st.lists(st.booleans(), min_size=len(shape), max_size=len(shape)))
    y = rng.standard_normal(tuple(1 if o else d for o, d in zip(ones, shape))).astype(np.float32)
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    f = lambda a, b: fnp.transpose(a, perm) * 2.0 + fnp.transpose(b, perm) + fnp.transpose(a, perm)[..., :1]
    want = np.transpose(x, perm) * 2.0 + np.transpose(y, perm) + np.transpose(x, perm)[..., :1]
    np.testing.assert_allclose(np.asarray(fgrad.jit(f)(x, y)), want, rtol=1e-6, atol=1e-6)
    program, values = _program(f, x, y)
    np.testing.assert_allclose(run_program(program, *values)[0], want, rtol=1e-6, atol=1e-6)
