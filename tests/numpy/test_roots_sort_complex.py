"""``fnp.roots``, ``fnp.poly`` of a square matrix and ``fnp.sort_complex`` against NumPy (roots
compared as sorted sets: eigenvalue order is not specified), under jit too."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fgrad
from fgrad import numpy as fnp


def _sorted(z):
    z = np.asarray(z)
    return z[np.lexsort((np.round(z.imag, 3), np.round(z.real, 3)))]


@settings(deadline=None, max_examples=30)
@given(st.lists(st.integers(-5, 5), min_size=1, max_size=5, unique=True), st.integers(0, 2), st.integers(0, 2))
def test_roots_match_numpy(zeros_, leading, trailing):
    """Distinct roots: a k-fold root moves by eps ** (1/k) in float32 (NumPy computes in float64)."""
    p = np.concatenate([np.zeros(leading), np.poly(np.asarray(zeros_, float)), np.zeros(trailing)])
    got, want = fnp.roots(fnp.asarray(p, dtype=fnp.float32)), np.roots(p)
    assert got.shape == want.shape and np.asarray(got).dtype == np.complex64
    np.testing.assert_allclose(_sorted(got), _sorted(want), atol=2e-2)


def test_roots_under_jit_need_strip_zeros_false():
    p = fnp.asarray([1.0, -6.0, 11.0, -6.0])
    got = fgrad.jit(lambda p: fnp.roots(p, strip_zeros=False))(p)
    np.testing.assert_allclose(_sorted(got), [1, 2, 3], atol=1e-4)
    with pytest.raises(fgrad.ConcretizationError, match="strip_zeros=False"):
        fgrad.jit(fnp.roots)(p)
    assert fnp.roots(fnp.asarray([0.0, 0.0])).shape == (0,) and fnp.roots(fnp.asarray([3.0])).shape == (0,)


def test_poly_of_a_square_matrix_is_its_characteristic_polynomial():
    a = np.array([[2.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 4.0]], np.float32)
    np.testing.assert_allclose(np.asarray(fnp.poly(a)), np.poly(a), rtol=1e-4, atol=1e-4)


def test_sort_complex_matches_numpy():
    for x in ([3, 1, 2], np.array([3.0, -1.0], np.float32), np.array([1 + 2j, 1 - 1j, -2 + 0j], np.complex64)):
        got, want = fnp.sort_complex(fnp.asarray(x)), np.sort_complex(np.asarray(x))
        np.testing.assert_array_equal(np.asarray(got), want.astype(np.complex64))
        assert np.asarray(got).dtype == np.complex64
