"""How many of JAX's public names each fgrad namespace has: a table for the notes.

Run with a Python that has both JAX and fgrad importable (JAX is never a dependency of fgrad):

    PYTHONPATH=. /path/to/jax-env/bin/python scripts/api_coverage.py [--missing]

Names JAX exports that are not API (modules it imports, typing helpers, deprecated aliases
it keeps for old code) are counted like any other: the table is deliberately plain.
"""
from __future__ import annotations

import argparse
import importlib
import types

NAMESPACES = [
    ("jax", "fgrad"),
    ("jax.numpy", "fgrad.numpy"),
    ("jax.numpy.linalg", "fgrad.numpy.linalg"),
    ("jax.numpy.fft", "fgrad.numpy.fft"),
    ("jax.nn", "fgrad.nn"),
    ("jax.nn.initializers", "fgrad.nn.initializers"),
    ("jax.random", "fgrad.random"),
    ("jax.lax", "fgrad.lax"),
    ("jax.scipy.special", "fgrad.scipy.special"),
    ("jax.scipy.stats", "fgrad.scipy.stats"),
    ("jax.scipy.linalg", "fgrad.scipy.linalg"),
    ("jax.scipy.signal", "fgrad.scipy.signal"),
    ("jax.scipy.ndimage", "fgrad.scipy.ndimage"),
    ("jax.tree", "fgrad.tree"),
    ("optax", "fgrad.optim"),
]


def public_names(module: types.ModuleType) -> set[str]:
    """The names a user reaches as ``module.name``: ``__all__`` when the module has one (plus
    its public submodules), else every attribute not starting with an underscore."""
    names = set(getattr(module, "__all__", None) or (n for n in dir(module) if not n.startswith("_")))
    return {n for n in names if not n.startswith("_")}


def load(name: str) -> types.ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--missing", action="store_true", help="list the missing names of each namespace")
    args = parser.parse_args()
    print(f"| JAX namespace | JAX names | fgrad has | coverage |\n|---|---:|---:|---:|")
    missing_by_namespace = {}
    for jax_name, fgrad_name in NAMESPACES:
        jax_module, fgrad_module = load(jax_name), load(fgrad_name)
        if jax_module is None:
            continue
        wanted = public_names(jax_module)
        have = {n for n in wanted if fgrad_module is not None and hasattr(fgrad_module, n)}
        missing_by_namespace[jax_name] = sorted(wanted - have)
        share = 100 * len(have) / len(wanted) if wanted else 100
        print(f"| `{jax_name}` | {len(wanted)} | {len(have)} | {share:.0f}% |")
    if args.missing:
        for name, missing in missing_by_namespace.items():
            print(f"\n{name} ({len(missing)} missing): {' '.join(missing)}")


if __name__ == "__main__":
    main()
