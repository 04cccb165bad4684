"""Shared helpers of the linalg tests: well-conditioned random matrices and the jit check.

``check_jit(f, *args)`` compares ``jit(f)`` with the eager ``f`` and asserts which compile path
ran through ``assert_native``: the decompositions lower to LAPACK calls (``fgrad.lower.lapack``),
so every jitted program here must compile natively.
"""
from __future__ import annotations

import collections
import warnings

import numpy as np
import pytest

import fgrad
from fgrad import tree
from fgrad.compile import pipeline

#: native path: asserted once branch lapack lands. Set to True when its LAPACK lowering is merged:
#: then every jitted program with a decomposition must compile natively.
NATIVE_LINALG = True


def assert_native(before: collections.Counter, caught: list, uses_decomposition: bool = True) -> None:
    """The program compiled since ``before`` ran natively: always for programs without a
    decomposition; for those with one once ``NATIVE_LINALG`` is switched on (until then it must
    have fallen back, warning once, so that the switch cannot be forgotten)."""
    if not pipeline.native_enabled():          # FGRAD_JIT_BACKEND=reference chose the reference path
        return
    fell_back = pipeline.compiled_by_path["reference"] - before["reference"]
    warned = [w for w in caught if issubclass(w.category, fgrad.ReferencePathWarning)]
    if NATIVE_LINALG or not uses_decomposition:
        assert fell_back == 0, [str(w.message) for w in warned]
        assert pipeline.compiled_by_path["native"] > before["native"], "nothing was compiled"
    else:
        # native path: asserted once branch lapack lands (then NATIVE_LINALG = True takes the branch above)
        assert fell_back >= 1 and len(warned) == fell_back, "the decomposition compiled natively: set NATIVE_LINALG"


def check_jit(f, *args, rtol: float = 1e-5, atol: float = 1e-5, uses_decomposition: bool = True):
    """``jit(f)(*args)`` equals ``f(*args)`` (eager) leaf by leaf, dtypes included; returns it."""
    want = f(*args)
    before = collections.Counter(pipeline.compiled_by_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", fgrad.ReferencePathWarning)
        got = fgrad.jit(f)(*args)
    assert_native(before, caught, uses_decomposition)
    got_leaves, want_leaves = tree.tree_leaves(got), tree.tree_leaves(want)
    assert len(got_leaves) == len(want_leaves)
    for g, w in zip(got_leaves, want_leaves):
        g, w = np.asarray(g), np.asarray(w)
        assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, g.dtype, w.shape, w.dtype)
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, equal_nan=True)
    return got


def well_conditioned(rng: np.random.Generator, shape, dtype=np.float64, boost: float = 3.0) -> np.ndarray:
    """A random batch of matrices with a boosted diagonal: well-conditioned, no tiny LU pivots."""
    x = rng.standard_normal(shape)
    k = min(shape[-2:])
    idx = np.arange(k)
    x[..., idx, idx] += boost * np.where(x[..., idx, idx] >= 0, 1.0, -1.0)
    return x.astype(dtype)


def spd(rng: np.random.Generator, shape, dtype=np.float64) -> np.ndarray:
    """Random symmetric positive definite matrices ``[..., n, n]``."""
    x = rng.standard_normal(shape)
    n = shape[-1]
    return (x @ np.swapaxes(x, -1, -2) + n * np.eye(n)).astype(dtype)


def symmetric(rng: np.random.Generator, shape, dtype=np.float64) -> np.ndarray:
    """Random symmetric matrices (distinct eigenvalues with probability one)."""
    x = rng.standard_normal(shape)
    return ((x + np.swapaxes(x, -1, -2)) / 2).astype(dtype)


def tol(dtype) -> dict:
    """Tolerances for comparing with NumPy/SciPy in ``dtype``."""
    return dict(rtol=2e-4, atol=2e-4) if np.dtype(dtype) == np.float32 else dict(rtol=1e-10, atol=1e-10)


DTYPES = [np.float32, np.float64]


@pytest.fixture(autouse=True)
def x64():
    """Decompositions are tested with 64-bit types enabled (float64 references)."""
    with fgrad.config.override(enable_x64=True):
        yield


def rng(seed=0):
    return np.random.default_rng(seed)


def close(got, want, dtype=np.float64, **kw):
    np.testing.assert_allclose(np.asarray(got), want, **{**tol(dtype), **kw})
