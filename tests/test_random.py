"""fgrad.random: determinism, independence of split streams, distribution statistics on 100k
samples (moments and Kolmogorov-Smirnov distance), integer ranges and counts, and the same bits
under jit and vmap. Every check uses fixed seeds, so the statistical bounds cannot flake."""
import math

import numpy as np
import pytest

import fgrad
from fgrad import numpy as fnp
from fgrad import random

N = 100_000
KS_BOUND = 1.95 / math.sqrt(N)  # the KS statistic's 99.9% quantile for n samples


def a(x):
    return np.asarray(x)


def ks_distance(samples, cdf):
    """max |empirical CDF - cdf| over the sorted samples."""
    x = np.sort(np.asarray(samples, np.float64))
    model = cdf(x)
    upper = np.arange(1, len(x) + 1) / len(x) - model
    lower = model - np.arange(len(x)) / len(x)
    return max(upper.max(), lower.max())


def normal_cdf(x):
    return 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


# --- keys --------------------------------------------------------------------------------------

def test_raw_key_is_two_uint32_words():
    k = random.PRNGKey(42)
    assert k.shape == (2,) and k.dtype == np.uint32
    np.testing.assert_array_equal(a(k), [0, 42])
    # as in JAX: without x64 a Python seed is narrowed to 32 bits first; with x64 it keeps 64
    np.testing.assert_array_equal(a(random.PRNGKey(2**40 + 5)), [0, 5])
    np.testing.assert_array_equal(a(random.PRNGKey(-1)), [0, 2**32 - 1])
    with fgrad.config.override(enable_x64=True):
        np.testing.assert_array_equal(a(random.PRNGKey(2**40 + 5)), [2**8, 5])
        np.testing.assert_array_equal(a(random.PRNGKey(-1)), [2**32 - 1, 2**32 - 1])
    with pytest.raises(OverflowError, match="64-bit"):
        random.PRNGKey(2**64)


def test_typed_key_is_a_scalar_key_array_over_the_same_words():
    k = random.key(42)
    assert k.shape == () and k.dtype == random.key_dtype() and str(k.dtype) == "key<fry>"
    np.testing.assert_array_equal(a(random.key_data(k)), [0, 42])
    assert random.key_impl(k) == random.key_impl(random.PRNGKey(0)) == "threefry2x32"
    keys = random.split(k, (2, 3))
    assert isinstance(keys, random.PRNGKeyArray) and keys.shape == (2, 3) and len(keys) == 2
    np.testing.assert_array_equal(a(random.key_data(keys[1, 2])), a(random.key_data(keys)[1, 2]))
    np.testing.assert_array_equal(a(random.key_data(keys.reshape(-1)[5])), a(random.key_data(keys[1, 2])))
    # typed and raw keys of one seed draw the same numbers; wrap/unwrap round-trips
    np.testing.assert_array_equal(a(random.normal(k, (5,))), a(random.normal(random.PRNGKey(42), (5,))))
    rewrapped = random.wrap_key_data(random.key_data(keys))
    assert bool(np.all(a(rewrapped == keys))) and not bool(np.any(a(rewrapped[0] != keys[0])))
    assert random.clone(k) is k
    with pytest.raises(TypeError, match="key_data"):
        np.asarray(k)
    with pytest.raises(TypeError, match=r"uint32\[\.\.\., 2\]"):
        random.wrap_key_data(fnp.zeros((3,), fnp.uint32))
    with pytest.raises(NotImplementedError, match="threefry2x32"):
        random.key(0, impl="rbg")


def test_same_key_gives_same_values_and_different_keys_differ():
    k = random.key(0)
    np.testing.assert_array_equal(a(random.uniform(k, (1000,))), a(random.uniform(random.key(0), (1000,))))
    np.testing.assert_array_equal(a(random.bits(k, (7, 3))), a(random.bits(k, (7, 3))))
    assert not np.array_equal(a(random.bits(random.key(1), (64,))), a(random.bits(k, (64,))))


def test_split_gives_distinct_keys_and_is_deterministic():
    keys = a(random.split(random.PRNGKey(3), 8))
    assert keys.shape == (8, 2) and keys.dtype == np.uint32
    assert len({tuple(k) for k in keys}) == 8
    np.testing.assert_array_equal(keys, a(random.key_data(random.split(random.key(3), 8))))
    # partitionable threefry (JAX 0.10's default): key i is the cipher of counter i, whatever num is
    np.testing.assert_array_equal(a(random.split(random.PRNGKey(3), 2)), keys[:2])


def test_fold_in_depends_on_the_data():
    k = random.PRNGKey(0)
    folded = {tuple(a(random.fold_in(k, i))) for i in range(50)}
    assert len(folded) == 50
    np.testing.assert_array_equal(a(random.fold_in(k, 7)), a(random.fold_in(k, fnp.asarray(7))))


def test_bad_keys_are_rejected_with_a_clear_message():
    with pytest.raises(TypeError, match=r"uniform: expected a key \(from fgrad.random.key\(seed\).*u32\[3\]"):
        random.uniform(fnp.asarray(np.zeros(3, np.uint32)), (2,))
    with pytest.raises(TypeError, match="expected a key"):
        random.normal(fnp.asarray(np.zeros(2, np.int32)), (2,))
    with pytest.raises(TypeError, match="seed must be an integer"):
        random.key(fnp.asarray(1.5))
    with pytest.raises(ValueError, match="single key.*vmap"):
        random.normal(random.split(random.key(0), 3), (2,))
    with pytest.raises(OverflowError, match="uint32"):
        random.fold_in(random.key(0), -1)


# --- distributions -------------------------------------------------------------------------------

def test_bits_are_uniform_over_all_32_bits():
    b = a(random.bits(random.key(5), (N,))).astype(np.uint64)
    ones_per_bit = np.array([((b >> i) & 1).mean() for i in range(32)])
    assert np.all(np.abs(ones_per_bit - 0.5) < 0.01)


def test_uniform_moments_range_and_ks():
    u = a(random.uniform(random.key(1), (N,)))
    assert u.dtype == np.float32 and u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    assert ks_distance(u, lambda x: np.clip(x, 0, 1)) < KS_BOUND


def test_uniform_with_bounds():
    u = a(random.uniform(random.key(2), (N,), minval=-3.0, maxval=5.0))
    assert u.min() >= -3.0 and u.max() < 5.0
    assert ks_distance(u, lambda x: np.clip((x + 3) / 8, 0, 1)) < KS_BOUND


def test_normal_moments_and_ks():
    z = a(random.normal(random.key(4), (N,)))
    assert z.dtype == np.float32 and np.all(np.isfinite(z))
    assert abs(z.mean()) < 0.015 and abs(z.var() - 1) < 0.02
    assert abs(np.mean(z ** 3)) < 0.05 and abs(np.mean(z ** 4) - 3) < 0.1  # skew 0, kurtosis 3
    assert ks_distance(z, normal_cdf) < KS_BOUND


def test_split_streams_are_uncorrelated():
    k1, k2 = random.split(random.key(11))
    x, y = a(random.normal(k1, (N,))), a(random.normal(k2, (N,)))
    assert abs(np.corrcoef(x, y)[0, 1]) < 4 / math.sqrt(N)
    parent = a(random.normal(random.key(11), (N,)))
    assert abs(np.corrcoef(parent, x)[0, 1]) < 4 / math.sqrt(N)
    # neighbouring counters within one stream are uncorrelated too
    assert abs(np.corrcoef(x[:-1], x[1:])[0, 1]) < 4 / math.sqrt(N)


def test_randint_range_and_counts_are_uniform():
    r = a(random.randint(random.key(6), (N,), 3, 13))
    assert r.dtype == np.int32 and r.min() == 3 and r.max() == 12
    counts = np.bincount(r - 3, minlength=10)
    chi2 = ((counts - N / 10) ** 2 / (N / 10)).sum()
    assert chi2 < 27.9  # chi-square with 9 degrees of freedom, p = 0.001


def test_randint_large_span_covers_mnist_indices():
    r = a(random.randint(random.key(7), (N,), 0, 60000))
    assert r.min() >= 0 and r.max() < 60000
    assert abs(r.mean() - 29999.5) < 300


def test_bernoulli_frequency():
    b = a(random.bernoulli(random.key(8), 0.3, (N,)))
    assert b.dtype == np.bool_
    assert abs(b.mean() - 0.3) < 0.005
    p = np.array([0.0, 0.5, 1.0], np.float32)
    np.testing.assert_array_equal(a(random.bernoulli(random.key(9), fnp.asarray(p)))[[0, 2]], [False, True])


def test_permutation_of_int_and_of_rows():
    p = a(random.permutation(random.key(10), 1000))
    assert p.dtype == np.int32
    np.testing.assert_array_equal(np.sort(p), np.arange(1000))
    assert (p != np.arange(1000)).mean() > 0.99
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    shuffled = a(random.permutation(random.key(10), fnp.asarray(x)))
    np.testing.assert_array_equal(shuffled[np.argsort(shuffled[:, 0])], x)


def test_permutation_positions_are_uniform():
    firsts = np.array([int(a(random.permutation(random.fold_in(random.key(0), i), 5))[0]) for i in range(2000)])
    counts = np.bincount(firsts, minlength=5)
    assert ((counts - 400) ** 2 / 400).sum() < 18.5  # chi-square, 4 dof, p = 0.001


def test_choice_with_and_without_replacement_and_with_p():
    c = a(random.choice(random.key(12), 10, (N,)))
    assert c.min() == 0 and c.max() == 9
    c = a(random.choice(random.key(13), 10, (10,), replace=False))
    np.testing.assert_array_equal(np.sort(c), np.arange(10))
    probs = np.array([0.1, 0.0, 0.6, 0.3], np.float32)
    c = a(random.choice(random.key(14), 4, (N,), p=fnp.asarray(probs)))
    np.testing.assert_allclose(np.bincount(c, minlength=4) / N, probs, atol=0.01)
    rows = np.arange(12, dtype=np.float32).reshape(6, 2)
    picked = a(random.choice(random.key(15), fnp.asarray(rows), (3,), replace=False))
    assert picked.shape == (3, 2) and len({tuple(r) for r in picked}) == 3
    with pytest.raises(ValueError, match="replace=False"):
        random.choice(random.key(0), 3, (4,), replace=False)


# --- transforms ------------------------------------------------------------------------------------

def test_jit_gives_the_same_bits_as_eager():
    k = random.key(21)

    @fgrad.jit
    def draw(key):
        k1, k2 = random.split(key)
        return random.bits(k1, (7, 3)), random.uniform(k1, (500,)), random.randint(k2, (64,), 0, 100), \
            random.normal(key, (3, 4))

    k1, k2 = random.split(k)
    bits, uniform, randint, normal = draw(k)
    np.testing.assert_array_equal(a(bits), a(random.bits(k1, (7, 3))))
    np.testing.assert_array_equal(a(uniform), a(random.uniform(k1, (500,))))   # exact: shift, convert, scale
    np.testing.assert_array_equal(a(randint), a(random.randint(k2, (64,), 0, 100)))
    # log/cos of a compiled program may differ from NumPy's in the last bit
    np.testing.assert_allclose(a(normal), a(random.normal(k, (3, 4))), rtol=1e-6, atol=1e-7)


def test_vmap_over_a_batch_of_keys_matches_a_loop():
    for keys in (random.split(random.key(22), 6), random.split(random.PRNGKey(22), 6)):
        got = a(fgrad.vmap(lambda k: random.normal(k, (4,)))(keys))
        want = np.stack([a(random.normal(keys[i], (4,))) for i in range(6)])
        np.testing.assert_array_equal(got, want)
        got = a(random.key_data(fgrad.vmap(lambda k: random.split(k, 3))(keys)))
        np.testing.assert_array_equal(got, np.stack([a(random.key_data(random.split(keys[i], 3))) for i in range(6)]))


def test_key_from_a_traced_seed_under_jit():
    f = fgrad.jit(lambda seed: random.uniform(random.key(seed), (5,)))
    np.testing.assert_array_equal(a(f(fnp.asarray(3))), a(random.uniform(random.key(3), (5,))))
