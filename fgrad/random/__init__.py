"""fgrad.random: JAX's ``jax.random``, with the same numbers for the same key.

Keys are explicit: ``key(seed)`` makes a typed key (dtype ``key<fry>``), ``PRNGKey(seed)`` a raw
``uint32[2]`` key; both work everywhere. The generator is JAX 0.10's default: threefry2x32 with
``jax_threefry_partitionable=True``, and every sampler follows JAX's algorithm and op order, so
a program ported from JAX draws the same values:

- bit-equal: ``split``, ``fold_in``, ``bits`` (8/32/64 bits), ``uniform`` (float16/32/64),
  ``randint``, ``bernoulli``, ``rademacher``, ``permutation``, ``choice`` (without ``p``);
- equal unless a float lands within an ulp of a decision boundary: ``categorical``, ``choice``
  with ``p``, ``geometric``, ``poisson``, ``binomial``;
- within a few ulp (each docstring states its bound), where XLA's and fgrad's ``log``/``tan``/
  ``erf`` round differently: ``normal`` (2 ulp float32), ``exponential``, ``gumbel`` ...

Everything is built from primitives (``threefry2x32``, integer ops, sort, while loops), so
it traces, vmaps (a batch of keys is a loop over keys) and compiles like any other code.

    key = fgrad.random.key(0)
    key, sub = fgrad.random.split(key)
    x = fgrad.random.normal(sub, (3, 4))
"""
from fgrad.random._keys import (  # noqa: F401
    KeyDtype, PRNGKeyArray, PRNGKey, bits, clone, fold_in, key, key_data, key_dtype, key_impl, split,
    wrap_key_data,
)
from fgrad.random._samplers import (  # noqa: F401
    bernoulli, cauchy, double_sided_maxwell, exponential, geometric, gumbel, laplace, logistic, lognormal,
    maxwell, normal,
    pareto, rademacher, randint, rayleigh, triangular, truncated_normal, uniform, wald,
    weibull_min,
)
from fgrad.random._discrete import categorical, choice, permutation  # noqa: F401
from fgrad.random._linalg_samplers import multivariate_normal, orthogonal  # noqa: F401
from fgrad.random._binomial import binomial, multinomial  # noqa: F401
from fgrad.random._gamma import (  # noqa: F401
    ball, beta, chisquare, dirichlet, f, gamma, generalized_normal, loggamma, poisson, t,
)

__all__ = [
    "KeyDtype", "PRNGKeyArray", "PRNGKey", "bits", "clone", "fold_in", "key", "key_data", "key_dtype",
    "key_impl", "split", "wrap_key_data",
    "bernoulli", "cauchy", "exponential", "geometric", "gumbel", "laplace", "logistic", "lognormal",
    "maxwell", "normal", "pareto", "rademacher", "randint", "rayleigh", "truncated_normal", "uniform",
    "double_sided_maxwell", "triangular", "wald", "weibull_min",
    "categorical", "choice", "permutation",
    "multivariate_normal", "orthogonal",
    "binomial", "multinomial", "ball", "beta", "chisquare", "dirichlet", "f", "gamma", "generalized_normal", "loggamma", "poisson", "t",
]
