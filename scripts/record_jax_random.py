"""Record jax.random outputs for tests/test_random_jax.py (run with a Python that has JAX 0.10).

    /work/jaxenv/bin/python scripts/record_jax_random.py      # writes tests/data/jax_random.npz

Each case is (sampler, key, arguments); the file holds the cases as JSON and every output's
bytes in one blob, so it stays small. The tests call fgrad.random the same way and compare
(bit-equal or within the ulp bound each sampler documents). Keys come from seeds, as raw
``PRNGKey(seed)`` or typed ``key(seed)`` keys.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

import jax
import jax.numpy as jnp
from jax import random as jr

SEEDS = (0, 1, 42, 1234567, 2**32 - 1)
SHAPES = ((), (1,), (7,), (3, 5), (0,), (2, 0, 3), (129,), (4, 3, 2))
OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "jax_random.npz")


def arr(values, dtype):
    """An array argument, written into the JSON as a list."""
    return {"array": np.asarray(values, dtype).tolist(), "dtype": dtype}


def cases():
    """(fn, seed, args, kwargs, x64, typed) for every recorded call."""
    out = []

    def add(fn, seed, *args, x64=False, typed=False, **kwargs):
        out.append({"fn": fn, "seed": seed, "args": list(args), "kwargs": kwargs, "x64": x64, "typed": typed})

    for i, seed in enumerate(SEEDS):
        add("PRNGKey", seed)
        add("PRNGKey", seed, x64=True)
        add("split", seed)
        add("split", seed, 5, typed=bool(i % 2))
        add("split", seed, [2, 3])
        add("split", seed, 0)
        add("fold_in", seed, 0)
        add("fold_in", seed, 2**32 - 1, typed=True)
        add("fold_in", seed, 12345 + i)
    for seed in (-1, 2**40 + 5, 2**63 - 1, -2**40):
        add("PRNGKey", seed)
        add("PRNGKey", seed, x64=True)
    for i, seed in enumerate(SEEDS[:3]):
        for shape in SHAPES:
            add("bits", seed, list(shape))
            add("uniform", seed, list(shape))
            add("normal", seed, list(shape))
            add("randint", seed, list(shape), -3, 20)
        add("bits", seed, [33], "uint8")
        add("bits", seed, [17], "uint64", x64=True)
        add("bits", seed, [3, 3], x64=True)
        for dtype in ("float16", "float32"):
            add("uniform", seed, [65], dtype)
            add("uniform", seed, [31], dtype, -2.5, 7.0)
            add("normal", seed, [65], dtype)
        add("uniform", seed, [65], "float64", x64=True)
        add("uniform", seed, [9], "float64", -1.0, 3.0, x64=True)
        add("normal", seed, [257], "float64", x64=True)
        add("uniform", seed, [4, 3], minval=arr([[-1.0], [0.0], [1.0], [2.0]], "float32"), maxval=5.0)
        add("normal", seed, [1000], typed=True)
        add("randint", seed, [50], 0, 7)
        add("randint", seed, [50], 0, 60000)
        add("randint", seed, [50], -2**31, 2**31 - 1)
        add("randint", seed, [50], 5, 5)
        add("randint", seed, [50], 10, 3)
        add("randint", seed, [50], 0, 256, "uint8")
        add("randint", seed, [50], 0, arr(4_000_000_000, "uint32"), "uint32")
        add("randint", seed, [4, 3], arr([[0], [10], [20], [30]], "int32"), arr([5, 15, 100], "int32"))
        add("randint", seed, [40], -10**12, 10**12, "int64", x64=True)
        add("randint", seed, [40], 0, 3, "uint64", x64=True)
        add("bernoulli", seed, 0.3, [100])
        add("bernoulli", seed, arr([0.0, 0.1, 0.5, 0.9, 1.0], "float32"))
        add("bernoulli", seed, 0.3, [40], mode="high")
        add("bernoulli", seed, arr([[0.2], [0.7]], "float32"), [2, 9])
        add("rademacher", seed, [30])
        add("permutation", seed, 10)
        add("permutation", seed, 1)
        add("permutation", seed, 2000)
        add("permutation", seed, arr(np.arange(12).reshape(3, 4), "float32"))
        add("permutation", seed, arr(np.arange(12).reshape(3, 4), "float32"), 1)
        add("permutation", seed, arr(np.arange(24).reshape(2, 3, 4), "int32"), 2, True)
        add("permutation", seed, arr(np.arange(12).reshape(3, 4), "int32"), 0, True)
        add("permutation", seed, arr(np.arange(7), "int32"), typed=True)
        add("choice", seed, 10, [6])
        add("choice", seed, 10, [6], False)
        add("choice", seed, 10, [2, 3], True, arr([0.1, 0.0, 0.2, 0.05, 0.05, 0.1, 0.1, 0.1, 0.2, 0.1], "float32"))
        add("choice", seed, 10, [4], False, arr([0.1, 0.0, 0.2, 0.05, 0.05, 0.1, 0.1, 0.1, 0.2, 0.1], "float32"))
        add("choice", seed, arr(np.arange(15).reshape(5, 3), "float32"), [2], False, None, 1)
        add("choice", seed, arr(np.arange(15).reshape(5, 3), "float32"), [4, 2])
        add("choice", seed, 5, [0])
        add("categorical", seed, arr(np.log([0.1, 0.2, 0.3, 0.4]), "float32"), -1, [50])
        add("categorical", seed, arr(np.linspace(-2, 2, 30).reshape(5, 6), "float32"))
        add("categorical", seed, arr(np.linspace(-2, 2, 30).reshape(5, 6), "float32"), 0)
        add("categorical", seed, arr(np.linspace(-2, 2, 30).reshape(5, 6), "float32"), 1, [4, 5])
        add("categorical", seed, arr(np.linspace(-2, 2, 30).reshape(5, 6), "float32"), 1, [3, 5], False)
        add("categorical", seed, arr(np.linspace(-2, 2, 30).reshape(5, 6), "float32"), 0, [4, 6], False)
        add("categorical", seed, arr(np.linspace(-1, 1, 12), "float32"), -1, [7], mode="high")
        for fn in ("exponential", "laplace", "logistic", "cauchy", "gumbel", "maxwell"):
            add(fn, seed, [101])
            add(fn, seed, [33], "float64", x64=True)
        add("gumbel", seed, [50], mode="high")
        add("truncated_normal", seed, -1.5, 2.0, [101])
        add("truncated_normal", seed, arr([-3.0, -1.0, 0.0, 0.5], "float32"), 3.0)
        add("truncated_normal", seed, -2.0, 2.0, [33], "float64", x64=True)
        add("geometric", seed, 0.3, [100])
        add("geometric", seed, arr([0.05, 0.5, 0.99], "float32"))
        add("lognormal", seed, 0.5, [60])
        add("rayleigh", seed, 2.0, [60])
        add("pareto", seed, 3.0, [60])
        add("gamma", seed, arr([0.1, 0.5, 1.0, 1.5, 3.0, 20.0, 1e-3], "float32"))
        add("gamma", seed, 2.5, [40])
        add("gamma", seed, arr([0.3, 4.0], "float64"), [3, 2], "float64", x64=True)
        add("loggamma", seed, arr([0.01, 0.5, 2.0, 7.0], "float32"))
        add("beta", seed, arr([0.5, 1.0, 2.0], "float32"), arr([[0.5], [3.0]], "float32"))
        add("dirichlet", seed, arr([0.5, 1.0, 2.0, 5.0], "float32"), [3])
        add("chisquare", seed, 3.0, [20])
        add("f", seed, 4.0, 7.0, [20])
        add("t", seed, arr([1.0, 2.5, 10.0], "float32"))
        add("generalized_normal", seed, 1.5, [12])
        add("ball", seed, 3, 2.0, [5])
        add("poisson", seed, arr([0.0, 0.5, 3.0, 9.5, 10.0, 25.0, 400.0], "float32"))
        add("poisson", seed, 4.0, [50])
        add("poisson", seed, 60.0, [50])
        cov = [[2.0, 0.3, 0.1], [0.3, 1.0, -0.2], [0.1, -0.2, 0.5]]
        for method in ("cholesky", "eigh", "svd"):
            add("multivariate_normal", seed, arr([1.0, -1.0, 0.5], "float32"), arr(cov, "float32"), [4],
                method=method)
        add("multivariate_normal", seed, arr([0.0, 1.0, 2.0], "float64"), arr(cov, "float64"), [2, 5], "float64",
            x64=True)
        add("orthogonal", seed, 4)
        add("double_sided_maxwell", seed, 1.0, 2.0, [20])
        add("double_sided_maxwell", seed, arr([0.0, 1.0], "float32"), 0.5, [3])
        add("weibull_min", seed, 2.0, 1.5, [30])
        add("triangular", seed, 0.0, 0.3, 2.0, [30])
        add("wald", seed, arr([0.5, 1.0, 3.0], "float32"))
        add("wald", seed, 2.0, [40])
        add("orthogonal", seed, 3, [2], m=5)
        add("orthogonal", seed, 5, [], m=2)
    return out


def decode(value):
    if isinstance(value, dict) and "array" in value:
        return jnp.asarray(np.asarray(value["array"], value["dtype"]))
    return value


def run(case):
    if case["fn"] == "PRNGKey":
        return np.asarray(jr.PRNGKey(case["seed"]))
    key = jr.key(case["seed"]) if case["typed"] else jr.PRNGKey(case["seed"])
    args = [decode(a) for a in case["args"]]
    kwargs = {k: decode(v) for k, v in case["kwargs"].items()}
    result = getattr(jr, case["fn"])(key, *args, **kwargs)
    if case["fn"] in ("split", "fold_in") and case["typed"]:
        result = jr.key_data(result)
    return np.asarray(result)


def main() -> None:
    assert jax.__version__ == "0.10.2", jax.__version__
    assert jax.config.jax_threefry_partitionable and jax.config.jax_default_prng_impl == "threefry2x32"
    records, blob = [], bytearray()
    for case in cases():
        with jax.enable_x64(case["x64"]):
            value = run(case)
        records.append({**case, "dtype": value.dtype.name, "shape": list(value.shape), "offset": len(blob)})
        blob += value.tobytes()
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    np.savez_compressed(OUT, cases=np.frombuffer(json.dumps(records).encode(), np.uint8),
                        blob=np.frombuffer(bytes(blob), np.uint8))
    print(f"{len(records)} cases, {len(blob)} bytes of outputs -> {os.path.getsize(OUT)} bytes in {OUT}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
