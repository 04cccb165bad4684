"""``scipy.stats`` distributions with JAX's definitions (``jax.scipy.stats``): each a module of
functions, ``fgrad.scipy.stats.norm.logpdf(x, loc=0, scale=1)`` and so on, with the methods JAX
has for it, JAX's signatures and JAX's values outside the support (-inf log-densities, NaN for
invalid parameters where JAX gives NaN)."""
from fgrad.scipy.stats import (  # noqa: F401
    bernoulli, beta, betabinom, binom, cauchy, chi2, dirichlet, expon, gamma, gennorm, geom, gumbel_l,
    gumbel_r, laplace, logistic, multinomial, multivariate_normal, nbinom, norm, pareto, poisson, t, truncnorm, uniform,
    vonmises, wrapcauchy,
)
from fgrad.scipy.stats._functions import ModeResult, mode, rankdata, sem  # noqa: F401
from fgrad.scipy.stats._kde import gaussian_kde  # noqa: F401
