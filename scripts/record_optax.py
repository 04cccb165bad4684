"""Record optax's results for ``tests/optax_cases.py`` into ``tests/data/optax_optim.npz``.

Run with the JAX oracle environment (optax 0.2.8):
    /work/jaxenv/bin/python scripts/record_optax.py
"""
from __future__ import annotations

import pathlib
import sys
from types import SimpleNamespace

import numpy as np

import jax
import jax.numpy as jnp
import optax

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import optax_cases  # noqa: E402


def main() -> None:
    backend = SimpleNamespace(optim=optax, asarray=jnp.asarray, tree_map=jax.tree.map, leaves=jax.tree.leaves,
                              jit=jax.jit)
    out = {"optax_version": np.array(optax.__version__)}
    for seed, (name, case) in enumerate(optax_cases.CASES.items()):
        history, state, count = optax_cases.run_case(backend, case, seed)
        out[f"{name}/params"] = history.astype(np.float32)
        out[f"{name}/state"] = state.astype(np.float32)
        out[f"{name}/state_leaves"] = np.array(count)
    for name, make in optax_cases.SCHEDULES.items():
        schedule = make(optax)
        values = [schedule(jnp.asarray(step, jnp.int32)) for step in range(optax_cases.SCHEDULE_STEPS)]
        out[f"schedule/{name}"] = np.asarray(values, np.float32)
    path = ROOT / "tests" / "data" / optax_cases.DATA_FILE
    np.savez_compressed(path, **out)
    print(f"wrote {path} ({path.stat().st_size} bytes, {len(optax_cases.CASES)} optimizers, "
          f"{len(optax_cases.SCHEDULES)} schedules)")


if __name__ == "__main__":
    main()
