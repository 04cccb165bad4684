"""fgrad.random.binomial: JAX 0.10.2's samples (recorded) on fixed keys, chi-square tests against
scipy.stats.binom for the inversion and the rejection (BTRS) branches, moments, the degenerate
and invalid parameters, broadcasting, jit and vmap."""
import math

import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given, settings, strategies as hst

import fgrad
from fgrad import numpy as fnp
from fgrad import random

pytestmark = pytest.mark.filterwarnings("error::fgrad.ReferencePathWarning",
                                        "ignore:invalid value encountered:RuntimeWarning")

N = 20_000

#: jax.random.binomial(jax.random.key(0), n, p, shape=(6,)) in JAX 0.10.2
JAX_SAMPLES = {
    (10, 0.3): [2, 2, 1, 2, 1, 4],
    (0, 0.5): [0] * 6,
    (5, 0.0): [0] * 6,
    (5, 1.0): [5] * 6,
    (100, 0.4): [33, 38, 34, 45, 36, 42],
    (1000, 0.9): [914, 904, 912, 890, 909, 896],
    (1e6, 0.3): [299323, 299793, 299410, 300454, 299555, 300179],
    (7.7, 0.5): [5, 5, 5, 4, 5, 2],
    (40, 0.05): [2, 1, 1, 0, 1, 3],
    (-1, 0.5): [np.nan] * 6,
    (np.nan, 0.5): [np.nan] * 6,
    (5, np.nan): [np.nan] * 6,
    (5, 1.5): [np.nan] * 6,
    (5, -0.1): [np.nan] * 6,
    (np.inf, 0.3): [np.inf] * 6,
}


@pytest.mark.parametrize("n, p", list(JAX_SAMPLES))
def test_samples_are_jaxs(n, p):
    got = random.binomial(random.key(0), n, p, shape=(6,))
    assert got.dtype == np.float32 and got.shape == (6,)
    np.testing.assert_array_equal(np.asarray(got), np.array(JAX_SAMPLES[n, p], np.float32))


def test_broadcasting_n_against_p_is_jaxs():
    got = random.binomial(random.key(3), np.array([[3.], [50.]]), np.array([0.1, 0.5, 0.95]))
    np.testing.assert_array_equal(np.asarray(got), [[0., 3., 3.], [5., 22., 45.]])   # JAX 0.10.2
    assert random.binomial(random.key(3), np.array([[3.], [50.]]), 0.5, shape=(4, 2, 3)).shape == (4, 2, 3)
    with pytest.raises(ValueError, match="must broadcast to the shape"):
        random.binomial(random.key(3), np.ones(3), 0.5, shape=(2,))
    with pytest.raises(ValueError, match="float dtype"):
        random.binomial(random.key(3), 5, 0.5, dtype=np.int32)


def _chi_square_pvalue(samples, n, p):
    """Pearson's chi-square of the sample counts against Binomial(n, p), cells pooled so that
    every expected count is at least 5."""
    support = np.arange(n + 1)
    expected = st.binom(n, p).pmf(support) * len(samples)
    observed = np.bincount(samples.astype(np.int64), minlength=n + 1)
    cells_obs, cells_exp, acc_o, acc_e = [], [], 0.0, 0.0
    for o, e in zip(observed, expected):
        acc_o, acc_e = acc_o + o, acc_e + e
        if acc_e >= 5:
            cells_obs.append(acc_o)
            cells_exp.append(acc_e)
            acc_o = acc_e = 0.0
    cells_obs[-1] += acc_o
    cells_exp[-1] += acc_e
    cells_exp = np.array(cells_exp) * (len(samples) / np.sum(cells_exp))
    return st.chisquare(cells_obs, cells_exp).pvalue


# inversion where n * min(p, 1 - p) <= 10, BTRS above; both sides of p = 1/2 and of the switch
@pytest.mark.parametrize("n, p", [(1, 0.5), (10, 0.3), (20, 0.5), (21, 0.5), (30, 0.75), (50, 0.8),
                                  (200, 0.05), (1000, 0.1), (400, 0.97), (5000, 0.5)])
def test_chi_square_against_scipy_binom(n, p):
    x = np.asarray(random.binomial(random.key(n + int(100 * p)), n, p, shape=(N,)))
    assert np.all((x >= 0) & (x <= n) & (x == np.floor(x)))
    assert _chi_square_pvalue(x, n, p) > 1e-3       # fixed keys: the outcome cannot flake
    mean, var = n * p, n * p * (1 - p)
    assert abs(x.mean() - mean) < 4 * math.sqrt(var / N)
    assert abs(x.var() / var - 1) < 0.06


def test_large_n_moments_and_chi_square_in_float64():
    with fgrad.config.override(enable_x64=True):
        n, p = 10**7, 0.3
        x = np.asarray(random.binomial(random.key(11), n, p, shape=(N,)))
        assert x.dtype == np.float64
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    assert abs(x.mean() - mean) < 4 * sd / math.sqrt(N) and abs(x.std() / sd - 1) < 0.03
    cuts = np.unique(st.binom(n, p).ppf(np.linspace(0, 1, 21)[1:-1]))   # 19 cells of ~5% each
    counts = np.bincount(np.searchsorted(cuts, x, side="left"), minlength=len(cuts) + 1)
    expected = np.diff(np.concatenate([[0.0], st.binom(n, p).cdf(cuts), [1.0]])) * N
    assert st.chisquare(counts, expected).pvalue > 1e-3


def test_degenerate_parameters():
    key = random.key(4)
    np.testing.assert_array_equal(np.asarray(random.binomial(key, 0, 0.4, (100,))), 0.0)
    np.testing.assert_array_equal(np.asarray(random.binomial(key, 1e5, 0.0, (100,))), 0.0)
    np.testing.assert_array_equal(np.asarray(random.binomial(key, 1e5, 1.0, (100,))), 1e5)
    n = np.array([0., 3., 12., 1000.])
    np.testing.assert_array_equal(np.asarray(random.binomial(key, n, np.array([0.5, 0., 1., 1.]))), [0, 0, 12, 1000])


def test_jit_and_vmap_match_eager():
    n, p = fnp.asarray(np.array([5., 30., 400.])), fnp.asarray(np.array([0.2, 0.6, 0.01]))
    keys = random.split(random.key(8), 5)
    eager = np.stack([np.asarray(random.binomial(k, n, p)) for k in keys])
    np.testing.assert_array_equal(np.asarray(fgrad.vmap(lambda k: random.binomial(k, n, p))(keys)), eager)
    jitted = fgrad.jit(lambda k, n, p: random.binomial(k, n, p))
    np.testing.assert_array_equal(np.asarray(jitted(keys[0], n, p)), eager[0])
    per_param = fgrad.vmap(lambda n1, p1: random.binomial(keys[1], n1, p1, shape=(3,)))(n, p)
    assert per_param.shape == (3, 3)
    np.testing.assert_array_equal(np.asarray(per_param)[:, 0] <= np.asarray(n), True)


@settings(max_examples=25, deadline=None)
@given(n=hst.integers(0, 300), p=hst.floats(0, 1), seed=hst.integers(0, 2**31 - 1))
def test_samples_are_whole_numbers_between_zero_and_n(n, p, seed):
    x = np.asarray(random.binomial(random.key(seed), n, np.float32(p), shape=(64,)))
    assert np.all((x >= 0) & (x <= n) & (x == np.floor(x)))
    if p == 0 or n == 0:
        assert np.all(x == 0)
    if p == 1:
        assert np.all(x == n)


# --- multinomial ------------------------------------------------------------------------------------

def test_multinomial_matches_jax_values():
    # recorded from jax.random.multinomial 0.10.2 (same keys: fgrad's threefry bits are JAX's)
    p = fnp.array([0.2, 0.5, 0.3])
    key = random.PRNGKey(0)
    np.testing.assert_array_equal(random.multinomial(key, 10, p), [1.0, 8.0, 1.0])
    np.testing.assert_array_equal(random.multinomial(key, fnp.array([5.0, 20.0]),
                                                     fnp.array([[0.1, 0.9, 0.0], [0.3, 0.3, 0.4]])),
                                  [[0.0, 5.0, 0.0], [11.0, 2.0, 7.0]])
    np.testing.assert_array_equal(random.multinomial(key, 7, p, shape=(2, 3)), [[1.0, 5.0, 1.0], [3.0, 3.0, 1.0]])
    counts = random.multinomial(random.PRNGKey(3), 100, fnp.array([0.25, 0.25, 0.5, 0.0]), dtype=fnp.int32)
    assert counts.dtype == np.int32
    np.testing.assert_array_equal(counts, [23, 23, 54, 0])
    np.testing.assert_array_equal(random.multinomial(key, 10, fnp.array([1, 1, 2])), [1.0, 1.0, 8.0])  # unnormalised
    np.testing.assert_array_equal(random.multinomial(random.key(0), 10, p), [1.0, 8.0, 1.0])          # typed key
    np.testing.assert_array_equal(fgrad.jit(lambda k: random.multinomial(k, 10, p))(key), [1.0, 8.0, 1.0])


def test_multinomial_counts_sum_to_n_with_the_right_means():
    p = np.array([0.1, 0.2, 0.3, 0.4], np.float32)
    keys = random.split(random.PRNGKey(7), 4000)
    counts = np.asarray(fgrad.vmap(lambda k: random.multinomial(k, 25, p))(keys))
    assert counts.shape == (4000, 4) and (counts.sum(axis=1) == 25).all() and (counts >= 0).all()
    assert (np.abs(counts.mean(axis=0) - 25 * p) <= 4 * np.sqrt(25 * p * (1 - p) / 4000)).all()   # 4 sigma
    with pytest.raises(ValueError, match="outcome axis"):
        random.multinomial(random.PRNGKey(0), 3, 0.5)
