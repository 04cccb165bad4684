"""``lax.reduce`` with any computation: monoids through their own reductions (differentiable),
other computations pairwise, variadic operands (an argmax), empty reductions, init values
folded in once; against NumPy and a Python loop, eager and native jit."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import fgrad
from fgrad import lax
from fgrad import numpy as fnp
from tests.util import check_grads, natively


@settings(deadline=None, max_examples=30)
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5), elements=st.floats(-9, 9, width=32)),
       st.data())
def test_reductions_match_numpy(x, data):
    dims = tuple(sorted(data.draw(st.sets(st.integers(0, x.ndim - 1), min_size=1))))
    cases = [(lax.add, 0.0, np.sum), (lax.max, -np.inf, np.max), (lax.min, np.inf, np.min),
             (lambda a, b: a + b, 0.0, np.sum), (lambda a, b: fnp.maximum(a, b), -np.inf, np.max)]
    for fn, init, ref in cases:
        want = ref(x.astype(np.float64), axis=dims) if x.size else None
        got = lax.reduce(x, init, fn, dims)
        if want is not None:
            np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-4)
            jitted = natively(lambda v: lax.reduce(v, init, fn, dims), x)
            np.testing.assert_allclose(jitted, want, rtol=1e-5, atol=1e-4)


def test_variadic_argmax():
    x = np.random.default_rng(1).standard_normal((4, 7)).astype(np.float32)
    idx = np.broadcast_to(np.arange(7, dtype=np.int32), x.shape)

    def pick(a, b):
        take = a[0] >= b[0]
        return fnp.where(take, a[0], b[0]), fnp.where(take, a[1], b[1])
    values, where = lax.reduce((x, idx), (-np.inf, np.int32(0)), pick, (1,))
    np.testing.assert_array_equal(np.asarray(values), x.max(1))
    np.testing.assert_array_equal(np.asarray(where), x.argmax(1))
    _, where_jit = natively(lambda v: lax.reduce((v, idx), (-np.inf, np.int32(0)), pick, (1,)), x)
    np.testing.assert_array_equal(where_jit, x.argmax(1))


def test_init_values_and_empty_reductions():
    x = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(np.asarray(lax.reduce(x, 10.0, lax.add, (1,))), [13.0, 22.0])
    np.testing.assert_array_equal(np.asarray(lax.reduce(x, 10.0, lambda a, b: a + b, (1,))), [13.0, 22.0])
    np.testing.assert_array_equal(np.asarray(lax.reduce(np.ones((2, 0), np.float32), 5.0, lambda a, b: a * b, (1,))),
                                  [5.0, 5.0])


def test_monoids_are_differentiable_and_mistakes_named():
    x = np.random.default_rng(2).standard_normal((3, 4))
    check_grads(lambda v: lax.reduce(v, 0.0, lax.add, (0,)), (x,), order=1)
    with pytest.raises(TypeError, match="same structure"):
        lax.reduce((x, x), 0.0, lax.add, (0,))
    with pytest.raises(ValueError, match="out of range"):
        lax.reduce(x, 0.0, lax.add, (5,))
