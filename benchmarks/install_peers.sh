#!/usr/bin/env bash
# Install the peer frameworks that the benchmark scripts compare fgrad against, into the
# current Python environment. For benchmarking only: CI never runs this, and fgrad does not
# depend on any of these packages.
#
#   bash benchmarks/install_peers.sh            # JAX (CPU), optax, PyTorch 2.13.0 (CPU)
#   PYTHON=python3.11 bash benchmarks/install_peers.sh
#
# PyTorch is pinned to 2.13.0: on the project's machines that release's CPU build lies on
# disk, whereas an unpinned `torch` makes pip fetch a multi-GB CUDA build. Elsewhere the
# CPU wheel index is used so that no CUDA build is pulled either.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"

echo "== JAX (CPU) and optax"
"$PYTHON" -m pip install --quiet "jax" "jaxlib" "optax"

echo "== PyTorch ${TORCH_VERSION} (CPU build)"
if ! "$PYTHON" -m pip install --quiet "torch==${TORCH_VERSION}" --no-deps 2>/dev/null; then
    "$PYTHON" -m pip install --quiet "torch==${TORCH_VERSION}" --no-deps \
        --index-url https://download.pytorch.org/whl/cpu
fi
# torch's own small dependencies (filelock, sympy, networkx, jinja2, fsspec, ...), without
# letting a resolver swap the CPU build for another one.
"$PYTHON" -m pip install --quiet "torch==${TORCH_VERSION}"

"$PYTHON" - <<'PY'
import jax, torch
print(f"installed: jax {jax.__version__} (devices {jax.devices()}), torch {torch.__version__} "
      f"(CUDA build: {torch.version.cuda is not None})")
try:
    import optax
    print(f"installed: optax {optax.__version__}")
except ImportError:
    print("optax missing: benchmarks/mnist_step.py falls back to a hand-written Adam for JAX")
PY
