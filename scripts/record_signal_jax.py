"""Record JAX 0.10.2's jax.scipy.signal / jax.scipy.ndimage outputs (64-bit enabled) at
tests/scipy/signal_cases.py's inputs into tests/scipy/data/signal_jax.npz. Run with the JAX
environment: ``/work/jaxenv/bin/python scripts/record_signal_jax.py`` from the repository root."""
import sys
import warnings
from pathlib import Path

import numpy as np

import jax
jax.config.update("jax_enable_x64", True)
import jax.scipy.ndimage  # noqa: E402,F401
import jax.scipy.signal  # noqa: E402,F401

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "scipy"))
from signal_cases import cases, cumsum_detrend  # noqa: E402

out = {}
for name, path, args, kwargs in cases():
    module, fn = path.split(".")
    kwargs = {k: (cumsum_detrend if v == "CUMSUM" else v) for k, v in kwargs.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = getattr(getattr(jax.scipy, module), fn)(*args, **kwargs)
    for i, leaf in enumerate(result if isinstance(result, tuple) else (result,)):
        out[f"{name}.{i}"] = np.asarray(leaf)
# corners where JAX raises: recorded as the error's type name
for name, thunk in [("istft_odd_nperseg", lambda: jax.scipy.signal.istft(np.ones((5, 4), complex), nperseg=9))]:
    try:
        thunk()
        out[f"{name}.error"] = np.array("")
    except Exception as e:  # noqa: BLE001
        out[f"{name}.error"] = np.array(type(e).__name__)
# the public functions' parameters: (name, kind, default) as text
import inspect  # noqa: E402
for module in ("signal", "ndimage"):
    for fn in sorted(n for n in dir(getattr(jax.scipy, module)) if not n.startswith("_")):
        params = inspect.signature(getattr(getattr(jax.scipy, module), fn)).parameters.values()
        out[f"signature.{module}.{fn}"] = np.array(repr([(p.name, str(p.kind), repr(p.default)) for p in params]))
np.savez_compressed(ROOT / "tests" / "scipy" / "data" / "signal_jax.npz", **out)
print(len(out), "arrays:", sorted(out))
