"""Record optax's loss values and gradients for ``tests/optax_loss_cases.py`` into
``tests/data/optax_losses.npz``.

Run with the JAX oracle environment (optax 0.2.8):
    /work/jaxenv/bin/python scripts/record_optax_losses.py
"""
from __future__ import annotations

import pathlib
import sys
import warnings

import numpy as np

import jax
import jax.numpy as jnp
import optax

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import optax_loss_cases  # noqa: E402


def main() -> None:
    warnings.simplefilter("ignore", DeprecationWarning)  # convex_kl_divergence
    out = {"optax_version": np.array(optax.__version__)}
    for seed, (name, case) in enumerate(optax_loss_cases.CASES.items()):
        inputs = [jnp.asarray(x) for x in optax_loss_cases.make_inputs(case, seed)]
        out[f"{name}/value"] = np.asarray(case["loss"](optax, *inputs))
        if case["grad"]:
            grad = jax.grad(lambda x, *rest: case["loss"](optax, x, *rest).sum())(*inputs)
            out[f"{name}/grad"] = np.asarray(grad)
    for name in optax_loss_cases.NAMES:
        out[f"names/{name}/top"] = np.array(hasattr(optax, name))
        out[f"names/{name}/losses"] = np.array(hasattr(optax.losses, name))
        obj = getattr(optax, name, None) or getattr(optax.losses, name)
        out[f"names/{name}/parameters"] = np.array(
            "" if isinstance(obj, type) else optax_loss_cases.describe_parameters(obj))
    path = ROOT / "tests" / "data" / optax_loss_cases.DATA_FILE
    np.savez_compressed(path, **out)
    print(f"wrote {path} ({path.stat().st_size} bytes, {len(optax_loss_cases.CASES)} cases)")


if __name__ == "__main__":
    main()
