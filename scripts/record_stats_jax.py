"""Record JAX 0.10.2's jax.scipy.stats outputs (float64) at tests/scipy/stats_cases.py's inputs
into tests/scipy/data/stats_jax.npz. Run with the JAX environment:
``/work/jaxenv/bin/python scripts/record_stats_jax.py`` from the repository root."""
import sys
from pathlib import Path

import numpy as np

import jax
jax.config.update("jax_enable_x64", True)
import jax.scipy.stats as stats  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "scipy"))
from stats_cases import cases  # noqa: E402

out = {}
for dist, method, args in cases():
    out[f"{dist}.{method}"] = np.asarray(getattr(getattr(stats, dist), method)(*args))
np.savez_compressed(ROOT / "tests" / "scipy" / "data" / "stats_jax.npz", **out)
print(len(out), "cases")
