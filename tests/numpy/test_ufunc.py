"""fnp.frompyfunc / fnp.ufunc (fgrad/numpy/_ufunc.py) vs NumPy's ufunc methods (JAX's answers in
test_jax_recorded_breadth.py); jit (native path asserted), grad, vmap."""
import numpy as np
import pytest

import fgrad
from fgrad import numpy as fnp
from fgrad.compile import pipeline

from np_helpers import assert_matches
from tests.util import check_grads, check_vmap

pytestmark = pytest.mark.filterwarnings("error::fgrad.ReferencePathWarning")

add = fnp.frompyfunc(lambda a, b: a + b, 2, 1, identity=0)
maximum = fnp.frompyfunc(lambda a, b: fnp.maximum(a, b), 2, 1)
A = np.float32(np.arange(12.0).reshape(3, 4) % 5 - 1.5)


def test_call_outer_reduce_accumulate_match_numpy():
    assert_matches(add(A, A[0]), A + A[0])
    assert_matches(add.outer(A[0], A[:, 0]), np.add.outer(A[0], A[:, 0]))
    for axis in (0, 1, -1):
        assert_matches(add.reduce(A, axis=axis), np.add.reduce(A, axis=axis))
        assert_matches(maximum.reduce(A, axis=axis, keepdims=True), np.maximum.reduce(A, axis=axis, keepdims=True))
        assert_matches(add.accumulate(A, axis=axis), np.add.accumulate(A, axis=axis))
        assert_matches(maximum.accumulate(A, axis=axis), np.maximum.accumulate(A, axis=axis))
    assert_matches(add.reduce(A, axis=None), np.add.reduce(A, axis=None))
    assert_matches(add.reduce(A, axis=0, where=A > 0, initial=10.0), np.add.reduce(A, axis=0, where=A > 0, initial=10.0))
    assert_matches(add.reduce(np.zeros((0, 2), np.float32)), np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="no identity"):
        maximum.reduce(np.zeros((0, 2), np.float32))


def test_at_and_reduceat_match_numpy():
    want = np.zeros(5, np.float32)
    np.add.at(want, [1, 1, 3], [1.0, 2.0, 3.0])
    assert_matches(add.at(np.zeros(5, np.float32), np.array([1, 1, 3]), np.array([1.0, 2.0, 3.0]), inplace=False), want)
    assert_matches(add.at(A, 1, 5.0, inplace=False), A + np.float32([[0], [5], [0]]))
    with pytest.raises(ValueError, match="inplace=False"):
        add.at(A, 0, 1.0)
    for indices in ([0, 4, 1, 5], [0, 3], [2]):
        x = np.arange(8.0, dtype=np.float32)
        assert_matches(add.reduceat(x, np.array(indices)), np.add.reduceat(x, indices))
    assert_matches(add.reduceat(A, np.array([0, 2]), axis=1), np.add.reduceat(A, [0, 2], axis=1))


def test_errors_and_repr():
    with pytest.raises(ValueError, match="2 inputs and 1 output"):
        fnp.frompyfunc(lambda a: a, 1, 1).reduce(A)
    with pytest.raises(TypeError, match="expected 2 arguments"):
        add(A)
    assert "ufunc" in repr(add) and add.nin == 2 and add.identity == 0


def test_jit_is_native_grad_and_vmap():
    f = lambda a: add.reduce(a, axis=1) + maximum.accumulate(a, axis=1)[:, -1] + add.outer(a[0], a[1]).sum()  # noqa: E731
    before = pipeline.compiled_by_path["reference"]
    np.testing.assert_allclose(np.asarray(fgrad.jit(f)(A)), np.asarray(f(A)), rtol=1e-6)
    assert pipeline.compiled_by_path["reference"] == before, "fell back to the reference path"
    check_grads(lambda a: add.reduce(a * a, axis=0)[:3] + add.accumulate(a, axis=1)[:, 1:].sum(0)[:3]
                + add.at(a[0], np.array([0, 0, 2]), a[1, :3], inplace=False)[:3], (np.float64(A),), order=1)
    check_vmap(lambda a: add.accumulate(a) + maximum.reduce(a), (A,), in_axes=(1,))
