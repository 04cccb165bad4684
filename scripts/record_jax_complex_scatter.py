"""Records JAX 0.10.2's max/min/mul scatters of complex values for
tests/numpy/test_complex_scatter.py into tests/numpy/data/jax_complex_scatter.npz (run with a
Python that has JAX: python scripts/record_jax_complex_scatter.py). Not a test."""
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)
rng = np.random.default_rng(23)
x = (rng.integers(-2, 3, (6, 3)) + 1j * rng.integers(-2, 3, (6, 3)))
u = (rng.integers(-2, 3, (7, 3)) + 1j * rng.integers(-2, 3, (7, 3)))      # small integers: many ties
idx = np.array([1, 1, 4, 1, 0, 9, -1])
out = {"x": x, "u": u, "idx": idx}
for kind in ("max", "min", "multiply"):
    out[kind] = np.asarray(getattr(jnp.asarray(x).at[idx], kind)(u))
    out[f"{kind}_row"] = np.asarray(getattr(jnp.asarray(x).at[2], kind)(u[0]))
    unique = np.array([1, 4, 0, 3])            # (JAX differentiates a mul scatter with unique indices only)
    grads = jax.grad(lambda x, u: jnp.sum(jnp.abs(getattr(x.at[unique], kind)(u, unique_indices=True)) ** 2), argnums=(0, 1))(x, u[:4] + 0.25j)
    out[f"grad_x_{kind}"], out[f"grad_u_{kind}"] = (np.asarray(g) for g in grads)
path = pathlib.Path(__file__).resolve().parents[1] / "tests" / "numpy" / "data" / "jax_complex_scatter.npz"
np.savez(path, **out)
print(f"wrote {len(out)} arrays to {path}")
