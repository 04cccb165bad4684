"""fgrad.random's samplers as distributions: Kolmogorov-Smirnov distances against SciPy's CDFs
in float64 and moments, on fixed keys (so the bounds cannot flake); vmap over a batch of keys
equal to a Python loop; gamma's reparameterised derivative against finite differences."""
import math

import numpy as np
import pytest
import scipy.stats as st

import fgrad
from fgrad import numpy as fnp
from fgrad import random

pytestmark = pytest.mark.filterwarnings("error::fgrad.ReferencePathWarning")

N = 20_000
KS_BOUND = 1.95 / math.sqrt(N)   # the KS statistic's 99.9% quantile


@pytest.fixture(autouse=True)
def x64():
    with fgrad.config.override(enable_x64=True):
        yield


def ks(samples, dist):
    return st.kstest(np.asarray(samples, np.float64), dist.cdf).statistic


CONTINUOUS = {
    "normal": (lambda k: random.normal(k, (N,)), st.norm()),
    "exponential": (lambda k: random.exponential(k, (N,)), st.expon()),
    "laplace": (lambda k: random.laplace(k, (N,)), st.laplace()),
    "logistic": (lambda k: random.logistic(k, (N,)), st.logistic()),
    "cauchy": (lambda k: random.cauchy(k, (N,)), st.cauchy()),
    "gumbel": (lambda k: random.gumbel(k, (N,)), st.gumbel_r()),
    "gumbel_high": (lambda k: random.gumbel(k, (N,), mode="high"), st.gumbel_r()),
    "truncated_normal": (lambda k: random.truncated_normal(k, -0.5, 2.0, (N,)), st.truncnorm(-0.5, 2.0)),
    "gamma_small": (lambda k: random.gamma(k, 0.3, (N,)), st.gamma(0.3)),
    "gamma": (lambda k: random.gamma(k, 4.5, (N,)), st.gamma(4.5)),
    "loggamma": (lambda k: fnp.exp(random.loggamma(k, 0.7, (N,))), st.gamma(0.7)),
    "beta": (lambda k: random.beta(k, 2.0, 0.5, (N,)), st.beta(2.0, 0.5)),
    "chisquare": (lambda k: random.chisquare(k, 3.0, (N,)), st.chi2(3.0)),
    "f": (lambda k: random.f(k, 4.0, 9.0, (N,)), st.f(4.0, 9.0)),
    "t": (lambda k: random.t(k, 3.0, (N,)), st.t(3.0)),
    "lognormal": (lambda k: random.lognormal(k, 0.5, (N,)), st.lognorm(0.5)),
    "rayleigh": (lambda k: random.rayleigh(k, 2.0, (N,)), st.rayleigh(scale=2.0)),
    "pareto": (lambda k: random.pareto(k, 3.0, (N,)), st.pareto(3.0)),
    "maxwell": (lambda k: random.maxwell(k, (N,)), st.maxwell()),
    "generalized_normal": (lambda k: random.generalized_normal(k, 1.5, (N,)), st.gennorm(1.5)),
    "uniform": (lambda k: random.uniform(k, (N,), minval=-2.0, maxval=3.0), st.uniform(-2.0, 5.0)),
    "weibull_min": (lambda k: random.weibull_min(k, 2.0, 1.5, (N,)), st.weibull_min(1.5, scale=2.0)),
    "triangular": (lambda k: random.triangular(k, -1.0, 0.2, 2.0, (N,)), st.triang(0.4, loc=-1.0, scale=3.0)),
    "wald": (lambda k: random.wald(k, 1.5, (N,)), st.invgauss(1.5)),
    "double_sided_maxwell_magnitude": (lambda k: fnp.abs(random.double_sided_maxwell(k, 1.0, 2.0, (N,)) - 1.0) / 2.0,
                                       st.maxwell()),
}


@pytest.mark.parametrize("name", sorted(CONTINUOUS))
def test_continuous_sampler_matches_scipy_distribution(name):
    sampler, dist = CONTINUOUS[name]
    samples = np.asarray(sampler(random.key(17)))
    assert samples.dtype == np.float64 and np.all(np.isfinite(samples))
    assert ks(samples, dist) < KS_BOUND


def test_truncated_normal_stays_strictly_inside():
    x = np.asarray(random.truncated_normal(random.key(3), 1.0, 1.0 + 1e-12, (100,)))
    assert np.all((x > 1.0) & (x < 1.0 + 1e-12))


def test_dirichlet_rows_sum_to_one_with_the_right_means():
    alpha = np.array([0.5, 1.0, 2.5])
    x = np.asarray(random.dirichlet(random.key(4), fnp.asarray(alpha), (N,)))
    np.testing.assert_allclose(x.sum(-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(x.mean(0), alpha / alpha.sum(), atol=0.01)
    assert ks(x[:, 2], st.beta(2.5, 1.5)) < KS_BOUND      # a marginal is Beta(a_i, sum - a_i)


def test_ball_is_inside_the_unit_ball_with_uniform_radius():
    x = np.asarray(random.ball(random.key(5), 3, 2, (N,)))
    radius = np.linalg.norm(x, axis=-1)
    assert np.all(radius <= 1.0) and ks(radius, st.powerlaw(3)) < KS_BOUND   # P(r < s) = s**3


def test_poisson_matches_scipy_pmf_for_knuth_and_rejection_rates():
    for lam in (0.7, 4.0, 12.0, 150.0):
        x = np.asarray(random.poisson(random.key(6), lam, (N,)))
        assert x.dtype == np.int64 and x.min() >= 0
        assert abs(x.mean() - lam) < 4 * math.sqrt(lam / N) and abs(x.var() / lam - 1) < 0.05
        values, counts = np.unique(x, return_counts=True)
        cdf = np.cumsum(counts) / N
        assert np.max(np.abs(cdf - st.poisson(lam).cdf(values))) < KS_BOUND
    np.testing.assert_array_equal(np.asarray(random.poisson(random.key(0), fnp.zeros(5))), 0)


def test_geometric_and_rademacher_and_bernoulli_high_frequencies():
    g = np.asarray(random.geometric(random.key(7), 0.25, (N,)))
    assert g.min() >= 1 and abs(g.mean() - 4) < 0.1
    r = np.asarray(random.rademacher(random.key(8), (N,)))
    assert set(np.unique(r)) == {-1, 1} and abs(r.mean()) < 0.03
    b = np.asarray(random.bernoulli(random.key(9), 1e-9, (N,), mode="high"))
    assert not b.any()


def test_categorical_frequencies_with_and_without_replacement():
    p = np.array([0.1, 0.2, 0.3, 0.4])
    draws = np.asarray(random.categorical(random.key(10), fnp.asarray(np.log(p)), shape=(N,)))
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / N, p, atol=0.012)
    logits = fnp.asarray(np.log(np.tile(p, (3, 1))))
    rows = np.asarray(random.categorical(random.key(11), logits, axis=1, shape=(4, 3), replace=False))
    assert rows.shape == (4, 3) and all(sorted(rows[:, j]) == [0, 1, 2, 3] for j in range(3))
    # the first draw without replacement is a draw with probabilities p
    firsts = np.asarray(fgrad.vmap(lambda k: random.categorical(k, logits[0], shape=(2,), replace=False)[0])(
        random.split(random.key(12), 4000)))
    np.testing.assert_allclose(np.bincount(firsts, minlength=4) / 4000, p, atol=0.03)


def test_permutation_independent_shuffles_each_row_on_its_own():
    x = np.tile(np.arange(10), (50, 1))
    y = np.asarray(random.permutation(random.key(13), fnp.asarray(x), axis=1, independent=True))
    assert all(sorted(row) == list(range(10)) for row in y)
    assert len({tuple(row) for row in y}) > 45
    z = np.asarray(random.permutation(random.key(13), fnp.asarray(x), axis=1))
    assert len({tuple(row) for row in z}) == 1


@pytest.mark.parametrize("method", ["cholesky", "eigh", "svd"])
def test_multivariate_normal_has_the_requested_mean_and_covariance(method):
    mean = np.array([1.0, -2.0, 0.5])
    cov = np.array([[2.0, 0.6, 0.2], [0.6, 1.0, -0.3], [0.2, -0.3, 0.5]])
    x = np.asarray(random.multivariate_normal(random.key(14), fnp.asarray(mean), fnp.asarray(cov), (N,),
                                              method=method))
    assert x.shape == (N, 3)
    np.testing.assert_allclose(x.mean(0), mean, atol=0.04)
    np.testing.assert_allclose(np.cov(x.T), cov, atol=0.06)
    whitened = np.linalg.solve(np.linalg.cholesky(cov), (x - mean).T)
    assert ks(whitened[2], st.norm()) < KS_BOUND


def test_orthogonal_matrices_are_orthogonal_and_haar_distributed():
    q = np.asarray(random.orthogonal(random.key(15), 4, (500,)))
    np.testing.assert_allclose(q @ np.swapaxes(q, -1, -2), np.broadcast_to(np.eye(4), q.shape), atol=1e-12)
    # Haar: every entry is distributed as a coordinate of a uniform point on the sphere S^3
    assert ks(q[:, 0, 0], st.beta(1.5, 1.5, loc=-1, scale=2)) < 1.95 / math.sqrt(500)
    wide = np.asarray(random.orthogonal(random.key(16), 2, m=5))
    np.testing.assert_allclose(wide @ wide.T, np.eye(2), atol=1e-12)


# --- vmap over keys equals a loop --------------------------------------------------------------

BATCHED = {
    "bits": lambda k: random.bits(k, (3,)),
    "uniform": lambda k: random.uniform(k, (3,)),
    "normal": lambda k: random.normal(k, (2, 2)),
    "randint": lambda k: random.randint(k, (5,), 0, 17),
    "bernoulli": lambda k: random.bernoulli(k, 0.3, (4,)),
    "permutation": lambda k: random.permutation(k, 6),
    "choice": lambda k: random.choice(k, 9, (3,), replace=False),
    "choice_p": lambda k: random.choice(k, 4, (3,), p=fnp.asarray([0.1, 0.2, 0.3, 0.4])),
    "categorical": lambda k: random.categorical(k, fnp.asarray([0.1, 0.5, -1.0])),
    "gumbel": lambda k: random.gumbel(k, (3,)),
    "truncated_normal": lambda k: random.truncated_normal(k, -1.0, 1.0, (3,)),
    "gamma": lambda k: random.gamma(k, fnp.asarray([0.4, 2.0, 9.0])),
    "beta": lambda k: random.beta(k, 0.5, 2.0, (2,)),
    "dirichlet": lambda k: random.dirichlet(k, fnp.asarray([1.0, 2.0, 3.0])),
    "t": lambda k: random.t(k, 4.0, (2,)),
    "poisson": lambda k: random.poisson(k, fnp.asarray([2.0, 30.0])),
    "multivariate_normal": lambda k: random.multivariate_normal(k, fnp.zeros(2), fnp.asarray([[1.0, 0.5], [0.5, 2.0]])),
    "orthogonal": lambda k: random.orthogonal(k, 3),
    "split": lambda k: random.key_data(random.split(k, 3)),
    "fold_in": lambda k: random.key_data(random.fold_in(k, 5)),
}


@pytest.mark.parametrize("name", sorted(BATCHED))
def test_vmap_over_keys_equals_a_python_loop(name):
    sample = BATCHED[name]
    keys = random.split(random.key(21), 5)
    got = np.asarray(fgrad.vmap(sample)(keys))
    want = np.stack([np.asarray(sample(keys[i])) for i in range(5)])
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=0)


def test_jit_of_a_typed_key_program_runs_natively_and_returns_typed_keys():
    @fgrad.jit
    def step(key):
        key, sub = random.split(key)
        return key, random.gamma(sub, 2.0, (3,)) + random.normal(sub, (3,))

    k, x = step(random.key(0))
    assert isinstance(k, random.PRNGKeyArray) and k.shape == ()
    k2, x2 = step(random.key(0))
    np.testing.assert_array_equal(np.asarray(x), np.asarray(x2))


# --- gradients -------------------------------------------------------------------------------

@pytest.mark.parametrize("a", [0.4, 1.0, 3.7])
def test_gamma_gradient_is_the_implicit_reparameterisation(a):
    """d sample / d a = -(dF/da) / pdf at the sample (F: the Gamma CDF), as JAX defines it: the
    derivative holding the sample's quantile fixed (not the sampler's own path, which rejects)."""
    key = random.key(31)
    draw = lambda a: random.gamma(key, a, (6,))            # noqa: E731
    x = np.asarray(draw(a))
    grad = np.asarray(fgrad.jacfwd(draw)(a))
    eps = 1e-6
    dcdf_da = (st.gamma(a + eps).cdf(x) - st.gamma(a - eps).cdf(x)) / (2 * eps)
    np.testing.assert_allclose(grad, -dcdf_da / st.gamma(a).pdf(x), rtol=1e-6)
    rev = np.asarray(fgrad.grad(lambda a: fnp.sum(draw(a)))(a))
    np.testing.assert_allclose(rev, grad.sum(), rtol=1e-12)


def test_reparameterised_gradients_are_unbiased_for_the_mean():
    """E[d x / d a] = d E[x] / d a: 1 for Gamma(a), b / (a + b)**2 for Beta(a, b), and
    (a0 - a_i) / a0**2 on the diagonal for Dirichlet."""
    key = random.key(32)
    n = 20_000
    gamma_grad = np.asarray(fgrad.grad(lambda a: fnp.mean(random.gamma(key, a, (n,))))(2.5))
    assert abs(gamma_grad - 1.0) < 0.03
    a, b = 1.5, 2.0
    beta_grad = np.asarray(fgrad.grad(lambda a: fnp.mean(random.beta(key, a, b, (n,))))(a))
    assert abs(beta_grad - b / (a + b) ** 2) < 0.005
    alpha = np.array([0.8, 2.0, 3.0])
    jac = np.asarray(fgrad.jacfwd(lambda al: fnp.mean(random.dirichlet(key, al, (n,)), axis=0))(fnp.asarray(alpha)))
    total = alpha.sum()
    want = (np.diag(np.full(3, total)) - alpha[:, None]) / total ** 2
    np.testing.assert_allclose(jac, want, atol=0.005)
