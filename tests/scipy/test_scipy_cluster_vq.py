"""fgrad.scipy.cluster.vq.vq against scipy.cluster.vq.vq (codes and distances, ranks 1 and 2,
integer input), JAX 0.10.2's recorded results (dtypes, ties, the gradient of the distances, its
errors), jit and vmap."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.cluster.vq
from hypothesis import given, strategies as st

import fgrad
from fgrad import numpy as fnp
from fgrad.scipy.cluster.vq import vq
from tests.util import check_jit_matches_eager, check_vmap

pytestmark = pytest.mark.filterwarnings("error::fgrad.ReferencePathWarning")

OBS = np.array([[1., 2.], [3., 1.], [0., 0.5]], np.float32)
BOOK = np.array([[0., 0.], [1., 1.], [3., 3.]], np.float32)


@given(st.integers(1, 8), st.integers(1, 5), st.integers(1, 4), st.booleans(), st.integers(0, 2 ** 16))
def test_matches_scipy(m, k, d, one_d, seed):
    rng = np.random.default_rng(seed)
    obs = rng.standard_normal((m,) if one_d else (m, d)).astype(np.float32)
    book = rng.standard_normal((k,) if one_d else (k, d)).astype(np.float32)
    code, dist = vq(obs, book)
    want_code, want_dist = scipy.cluster.vq.vq(obs, book)
    assert code.dtype == np.int32 and dist.dtype == np.float32 and code.shape == dist.shape == (m,)
    np.testing.assert_array_equal(np.asarray(code), want_code)
    np.testing.assert_allclose(np.asarray(dist), want_dist, rtol=1e-5, atol=1e-6)


def test_recorded_jax_results():
    # JAX 0.10.2: vq(OBS, BOOK) == ([1, 1, 0], [1., 2., 0.5]); integers promote to float32;
    # a tie goes to the first code
    code, dist = vq(OBS, BOOK)
    np.testing.assert_array_equal(np.asarray(code), [1, 1, 0])
    np.testing.assert_allclose(np.asarray(dist), [1., 2., 0.5])
    code, dist = vq(np.array([1, 5, 2]), np.array([0, 4]))
    assert dist.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(code), [0, 1, 0])
    np.testing.assert_array_equal(np.asarray(dist), [1., 1., 2.])
    code, dist = vq(np.array([[0.5]], np.float32), np.array([[0.], [1.]], np.float32))
    assert int(code[0]) == 0 and float(dist[0]) == 0.5
    # JAX's gradient of the summed distances: the unit vector from the nearest code
    grad = fgrad.grad(lambda o: vq(o, BOOK)[1].sum())(OBS)
    np.testing.assert_allclose(np.asarray(grad), [[0., 1.], [1., 0.], [0., 1.]], atol=1e-7)


def test_jit_and_vmap():
    check_jit_matches_eager(vq, (OBS, BOOK))
    batch = np.stack([OBS, OBS[::-1], OBS + 1])
    check_vmap(lambda o: vq(o, BOOK), (batch,))


def test_errors_match_jax():
    with pytest.raises(TypeError, match="requires ndarray or scalar arguments, got <class 'list'> at position 0"):
        vq([[1.]], BOOK)
    with pytest.raises(ValueError, match="Observation and code_book should have the same rank"):
        vq(OBS, BOOK[0])
    with pytest.raises(ValueError, match="ndim different than 1 or 2 are not supported"):
        vq(np.ones((2, 2, 2)), np.ones((2, 2, 2)))
    assert fnp.asarray(vq(OBS, BOOK, check_finite=False)[0]).shape == (3,)
