"""Records JAX 0.10.2's lax.reduce_precision for tests/ops/test_reduce_precision.py into
tests/ops/data/jax_reduce_precision.npz (python scripts/record_jax_reduce_precision.py with a
Python that has JAX). Not a test; fgrad and its tests never import JAX."""
import pathlib

import jax
import numpy as np
from jax import lax

jax.config.update("jax_enable_x64", True)
rng = np.random.default_rng(11)
special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, 1.5, 2.5, 3.4e38, 1e-38, 1e-45, 65504.0, 65520.0,
                    6.1e-5, 5.9e-5, 1e-5, 448.0, 464.0, 0.015625, 0.0078125], np.float32)
x32 = np.concatenate([special, -special, (rng.standard_normal(200) * 10.0 ** rng.integers(-40, 38, 200)).astype(np.float32)])
x64 = np.concatenate([special.astype(np.float64), rng.standard_normal(100) * 10.0 ** rng.integers(-300, 300, 100)])
FORMATS = [(5, 10), (8, 7), (4, 3), (5, 2), (8, 0), (2, 1), (11, 52), (8, 23), (6, 9), (11, 10), (3, 30)]
out = {"x32": x32, "x64": x64, "formats": np.array(FORMATS)}
for e, m in FORMATS:
    out[f"f32_{e}_{m}"] = np.asarray(lax.reduce_precision(x32, e, m))
    out[f"f64_{e}_{m}"] = np.asarray(lax.reduce_precision(x64, e, m))
path = pathlib.Path(__file__).resolve().parent.parent / "tests" / "ops" / "data" / "jax_reduce_precision.npz"
np.savez(path, **out)
print("wrote", path)
