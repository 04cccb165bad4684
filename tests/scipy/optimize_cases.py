"""The problems at which tests/scipy/test_scipy_optimize.py compares fgrad.scipy.optimize.minimize
with JAX's recorded results (tests/scipy/data/optimize_jax.npz, written by
scripts/record_jax_scipy_more.py with JAX 0.10.2). Each objective is written against an array
module ``xp`` (``jax.numpy`` when recording, ``fgrad.numpy`` in the tests); no fgrad, no JAX here."""
from __future__ import annotations

import numpy as np


def _data():
    rng = np.random.default_rng(7)
    m = rng.standard_normal((4, 4))
    features = rng.standard_normal((24, 3))
    labels = (features @ np.array([1.5, -2.0, 0.5]) + 0.3 * rng.standard_normal(24) > 0).astype(np.float64)
    return {"A": m @ m.T + 4 * np.eye(4), "b": rng.standard_normal(4), "X": features, "y": labels}


DATA = _data()


def objectives(xp):
    """name -> ``fun(x, *args)`` over the array module ``xp``."""
    def rosen(x):
        return xp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)

    def quadratic(x, A, b):
        return 0.5 * x @ A @ x - b @ x

    def logistic(w, X, y):
        logits = X @ w
        return xp.mean(xp.logaddexp(0.0, logits) - y * logits) + 0.05 * xp.sum(w ** 2)

    def himmelblau(x):
        return (x[0] ** 2 + x[1] - 11) ** 2 + (x[0] + x[1] ** 2 - 7) ** 2

    return {"rosen": rosen, "quadratic": quadratic, "logistic": logistic, "himmelblau": himmelblau}


#: name -> (objective, x0, names of DATA entries passed as args, options)
CASES = {
    "rosen2": ("rosen", [-1.2, 1.0], (), None),
    "rosen3_zeros": ("rosen", [0.0, 0.0, 0.0], (), None),
    "rosen5": ("rosen", [1.3, 0.7, 0.8, 1.9, 1.2], (), None),
    "rosen2_maxiter3": ("rosen", [-1.2, 1.0], (), {"maxiter": 3}),
    "rosen2_norm2_gtol": ("rosen", [-1.2, 1.0], (), {"norm": 2, "gtol": 1e-3}),
    "rosen2_ls2": ("rosen", [-1.2, 1.0], (), {"line_search_maxiter": 2}),
    "quadratic": ("quadratic", [0.0, 0.0, 0.0, 0.0], ("A", "b"), None),
    "logistic": ("logistic", [0.0, 0.0, 0.0], ("X", "y"), None),
    "himmelblau": ("himmelblau", [-1.0, 0.5], (), None),
    "at_minimum": ("rosen", [1.0, 1.0], (), None),
}

FIELDS = ("x", "success", "status", "fun", "jac", "hess_inv", "nfev", "njev", "nit")
