"""Record JAX's answers for tests/numpy/jax_breadth_calls.py into
tests/numpy/data/jax_numpy_breadth.npz (run with a Python that has JAX 0.10.2):

    PYTHONPATH=. /work/jaxenv/bin/python scripts/record_jax_numpy_breadth.py
"""
import sys
from pathlib import Path

import numpy as np

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "numpy"))
from jax_breadth_calls import CALLS, GRAD_CALLS, GRAD_WEIGHTS  # noqa: E402

out = {}
for name, f in CALLS:
    for i, leaf in enumerate(jax.tree.leaves(f(jnp))):
        out[f"{name}/{i}"] = np.asarray(leaf)
jax.config.update("jax_enable_x64", True)   # the gradients are recorded in float64
for name, f, x in GRAD_CALLS:
    size = np.asarray(f(jnp, x)).size
    w = GRAD_WEIGHTS[:size].reshape(np.shape(f(jnp, x)))
    out[f"grad {name}/0"] = np.asarray(jax.grad(lambda v: jnp.nansum(f(jnp, v) * w))(jnp.asarray(x)))
path = Path(__file__).resolve().parents[1] / "tests" / "numpy" / "data" / "jax_numpy_breadth.npz"
np.savez_compressed(path, jax_version=np.array(jax.__version__), **out)
print(f"wrote {len(out)} arrays for {len(CALLS)} calls to {path}")
