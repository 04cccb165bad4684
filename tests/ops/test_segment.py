"""``fgrad.ops.segment_sum/prod/max/min`` (JAX's ``jax.ops``) against a Python loop, recorded
JAX outputs, finite differences, vmap against a loop, and the native jit path."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fgrad
from fgrad import numpy as fnp
from tests.util import check_grads, check_vmap, natively

KINDS = {"segment_sum": (np.add, 0), "segment_prod": (np.multiply, 1),
         "segment_max": (np.maximum, None), "segment_min": (np.minimum, None)}


def _loop(kind: str, data: np.ndarray, ids: np.ndarray, n: int, clip: bool = False) -> np.ndarray:
    """The reduction as a Python loop over the rows (ids out of range dropped, or clamped)."""
    combine, start = KINDS[kind]
    if start is None:
        if data.dtype == np.bool_:
            start = kind == "segment_min"
        elif data.dtype.kind in "iu":
            info = np.iinfo(data.dtype)
            start = info.min if kind == "segment_max" else info.max
        else:
            start = -np.inf if kind == "segment_max" else np.inf
    out = np.full((n,) + data.shape[1:], start, data.dtype)
    for row, s in zip(data, ids):
        s = min(max(int(s), 0), n - 1) if clip else int(s)
        if 0 <= s < n:
            out[s] = combine(out[s], row)
    return out


@settings(deadline=None, max_examples=40)
@given(st.sampled_from(sorted(KINDS)), st.sampled_from([np.float32, np.int32, np.bool_]),
       st.integers(0, 9), st.integers(1, 6), st.booleans(), st.integers(0, 2**31 - 1))
def test_segments_match_a_loop(kind, dtype, rows, n, clip, seed):
    rng = np.random.default_rng(seed)
    data = rng.integers(-4, 5, size=(rows, 2)).astype(dtype)
    ids = rng.integers(-2, n + 2, size=rows).astype(np.int32)     # some out of range, some negative
    fn = getattr(fgrad.ops, kind)
    mode = "clip" if clip else None
    want = _loop(kind, data, ids, n, clip)
    got = fn(data, ids, num_segments=n, mode=mode)
    assert np.asarray(got).dtype == want.dtype
    np.testing.assert_array_equal(np.asarray(got), want)
    jitted = natively(lambda d, i: fn(d, i, num_segments=n, mode=mode), data, ids)
    np.testing.assert_array_equal(jitted, want)


def test_recorded_jax_outputs():
    d, ids = fnp.array([1.0, 2.0, 3.0, 4.0]), fnp.array([0, 0, 2, 5])
    # jax.ops.segment_*(d, ids, num_segments=4) and with ids [0, -1, 1, 1], num_segments=3 (JAX 0.10.2)
    assert np.asarray(fgrad.ops.segment_sum(d, ids, num_segments=4)).tolist() == [3, 0, 3, 0]
    assert np.asarray(fgrad.ops.segment_max(d, ids, num_segments=4)).tolist() == [2, -np.inf, 3, -np.inf]
    assert np.asarray(fgrad.ops.segment_min(d, fnp.array([0, -1, 1, 1]), 3)).tolist() == [1, 3, np.inf]
    assert np.asarray(fgrad.ops.segment_prod(d, fnp.array([0, -1, 1, 1]), 3)).tolist() == [1, 12, 1]
    assert np.asarray(fgrad.ops.segment_sum(d, ids)).tolist() == [3, 0, 3, 0, 0, 4]   # max id + 1 rows
    assert np.asarray(fgrad.ops.segment_sum(d, ids, num_segments=3, mode="clip")).tolist() == [3, 0, 7]
    assert np.asarray(fgrad.ops.segment_max(d.astype(fnp.int32), ids, 4)).tolist() == [2, -2**31, 3, -2**31]


def test_gradients_match_finite_differences():
    rng = np.random.default_rng(1)
    data = rng.standard_normal((6, 3))
    ids = np.array([0, 2, 2, 1, 0, 3])
    for kind in KINDS:
        fn = getattr(fgrad.ops, kind)
        check_grads(lambda d: fn(d, ids, num_segments=4), (data,), order=1)
    # JAX: the gradient of a max flows to the row that attains it
    g = fgrad.grad(lambda d: fgrad.ops.segment_max(d, fnp.array([0, 0, 1, 1]), 2).sum())(
        fnp.array([1.0, 3.0, 3.0, 2.0]))
    assert np.asarray(g).tolist() == [0, 1, 1, 0]


def test_vmap_matches_a_loop():
    data = np.arange(12.0, dtype=np.float32).reshape(3, 4)
    ids = np.array([1, 0, 1, 3])
    check_vmap(lambda d: fgrad.ops.segment_sum(d, ids, num_segments=4), (data,))
    check_vmap(lambda d: fgrad.ops.segment_max(d, ids, num_segments=4), (data,))


def test_mistakes_are_named():
    d, ids = fnp.ones(4), fnp.array([0, 1, 1, 0])
    with pytest.raises(fgrad.ConcretizationError, match="pass num_segments"):
        fgrad.jit(lambda d, i: fgrad.ops.segment_sum(d, i))(d, ids)
    with pytest.raises(TypeError, match="segment_ids must be integers"):
        fgrad.ops.segment_sum(d, fnp.ones(4), num_segments=2)
    with pytest.raises(ValueError, match="one id per row"):
        fgrad.ops.segment_sum(d, fnp.array([0, 1]), num_segments=2)
    with pytest.raises(ValueError, match="mode must be one of"):
        fgrad.ops.segment_sum(d, ids, num_segments=2, mode="wrap")
    with pytest.raises(TypeError, match="num_segments must be a non-negative Python int"):
        fgrad.ops.segment_sum(d, ids, num_segments=2.5)
