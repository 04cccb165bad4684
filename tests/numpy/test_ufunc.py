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


# --- jax.numpy's own ufunc objects: fnp.add, fnp.maximum, ... ---------------------------------------

def test_numpy_functions_are_ufuncs_with_jaxs_identities():
    # JAX 0.10.2: these 14 are jnp.ufunc objects, with these nin and identities
    want = {"add": (2, 0), "bitwise_and": (2, -1), "bitwise_or": (2, 0), "bitwise_xor": (2, 0),
            "logaddexp": (2, -np.inf), "logaddexp2": (2, -np.inf), "logical_and": (2, True),
            "logical_or": (2, False), "logical_xor": (2, False), "maximum": (2, None), "minimum": (2, None),
            "multiply": (2, 1), "negative": (1, None), "subtract": (2, None)}
    for name, (nin, identity) in want.items():
        u = getattr(fnp, name)
        assert isinstance(u, fnp.ufunc) and u.nin == nin and u.nout == 1 and u.identity == identity, name
    assert int(fnp.add(1, 2)) == 3 and int(fnp.negative(3)) == -3


def test_numpy_ufunc_methods_match_jax():
    # JAX 0.10.2's answers
    x = fnp.array([[1.0, 5, 3], [4, 2, 6]])
    np.testing.assert_array_equal(np.asarray(fnp.add.reduce(x)), [5, 7, 9])
    assert float(fnp.add.reduce(x, axis=(0, 1))) == 21.0
    np.testing.assert_array_equal(np.asarray(fnp.maximum.accumulate(x, axis=1)), [[1, 5, 5], [4, 4, 6]])
    np.testing.assert_array_equal(np.asarray(fnp.add.at(fnp.zeros(3), fnp.array([0, 0, 2]), 1.0, inplace=False)),
                                  [2, 0, 1])
    np.testing.assert_array_equal(np.asarray(fnp.maximum.at(fnp.zeros(3), fnp.array([0, 0]), fnp.array([2.0, -1]),
                                                            inplace=False)), [2, 0, 0])
    assert fnp.multiply.outer(fnp.arange(2), fnp.arange(3)).shape == (2, 3)
    assert float(fnp.subtract.reduce(fnp.array([10.0, 1, 2]))) == 7.0
    np.testing.assert_allclose(float(fnp.logaddexp.reduce(fnp.array([0.0, 0.0]))), np.log(2.0), rtol=1e-6)
    assert float(fnp.add.reduce(fnp.array([], fnp.float32))) == 0.0
    assert float(fnp.minimum.reduce(fnp.array([3.0, 1.0]), initial=0.0)) == 0.0
    np.testing.assert_array_equal(np.asarray(fnp.multiply.accumulate(fnp.arange(1.0, 5.0))), [1, 2, 6, 24])
    np.testing.assert_array_equal(np.asarray(fnp.minimum.accumulate(fnp.array([3.0, 1, 2]))), [3, 1, 1])
    assert not bool(fnp.logical_and.reduce(fnp.array([True, False])))
    assert int(fnp.bitwise_xor.reduce(fnp.array([1, 3, 4]))) == 6
    with pytest.raises(ValueError, match="inplace=False"):
        fnp.add.at(fnp.zeros(3), fnp.array([0]), 1.0)
    jitted = fgrad.jit(lambda v: fnp.maximum.accumulate(v, axis=0) + fnp.add.reduce(v))(x)
    np.testing.assert_array_equal(np.asarray(jitted), [[6, 12, 12], [9, 12, 15]])
    np.testing.assert_array_equal(np.asarray(fgrad.grad(lambda v: fnp.multiply.reduce(v).sum())(x)),
                                  [[4, 2, 6], [1, 5, 3]])
