"""Values and derivatives at the corners, against JAX's answers recorded in
``tests/ops/data/jax_corners.npz``: every unary and binary elementwise function, the
reductions, ``fgrad.nn``'s activations and a few linear algebra functions, at 0, -0, +-inf,
NaN, large arguments and ties, pulled back with cotangents 1, +-inf, 0 and NaN, eagerly and
under ``jit``.

Re-record (where JAX is installed): ``python -m tests.ops.test_jax_corners --record``.

Left out, as docs/conventions.md says: subnormal inputs (XLA on the CPU reads them as 0),
``tanh``'s derivative with an infinite cotangent (fgrad keeps it infinite; JAX's formula gives
NaN where ``tanh(x) < 0``), ``nextafter``'s derivative (JAX has none; fgrad's is 0), and
``solve`` and ``cond`` of a singular matrix (both are garbage: ``LEFT_OUT``).
"""
from __future__ import annotations

import itertools
import os
import sys
import types

import numpy as np
import pytest

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "jax_corners.npz")

POINTS = np.array([0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 2.0, 30.0, -30.0, 800.0, -800.0, np.inf, -np.inf, np.nan])
PAIR_VALUES = [0.0, -0.0, 1.0, -1.0, 2.5, np.inf, -np.inf, np.nan]
COTANGENTS = [1.0, np.inf, -np.inf, 0.0, np.nan]
VECTORS = [[1.0, 1.0, -2.0], [0.0, 0.0, 0.0], [np.inf, 1.0, 2.0], [-np.inf, -np.inf, -np.inf], [np.nan, 1.0, 2.0],
           [3.0, np.inf, np.inf], [0.0, 2.0, 0.0], [-0.0, 0.0, 5.0], [1000.0, -1000.0, 0.0], [-np.inf, 0.0, 1.0]]
MATRICES = {"singular": [[1.0, 2.0], [2.0, 4.0]], "zero": [[0.0, 0.0], [0.0, 0.0]], "eye": [[1.0, 0.0], [0.0, 1.0]],
            "repeated_eigenvalue": [[2.0, 0.0], [0.0, 2.0]], "not_positive_definite": [[1.0, 2.0], [2.0, 1.0]],
            "generic": [[2.0, 1.0], [0.5, 3.0]]}


def unary_cases(m):
    lax, nn, xnp, sp = m.lax, m.nn, m.numpy, m.special
    return {
        **{name: getattr(lax, name) for name in (
            "exp", "log", "log1p", "expm1", "tanh", "logistic", "sin", "cos", "tan", "asin", "acos", "atan", "sinh",
            "cosh", "asinh", "acosh", "atanh", "sqrt", "rsqrt", "cbrt", "abs", "sign", "floor", "ceil", "neg",
            "lgamma", "digamma", "erf", "erfc", "erf_inv", "bessel_i0e", "bessel_i1e")},
        "exp2": xnp.exp2, "log2": xnp.log2, "log10": xnp.log10, "round": xnp.round, "square": xnp.square,
        "reciprocal": xnp.reciprocal, "sinc": xnp.sinc, "integer_pow_3": lambda x: lax.integer_pow(x, 3),
        "integer_pow_-2": lambda x: lax.integer_pow(x, -2), "pow_half": lambda x: x ** 0.5, "two_pow": lambda x: 2.0 ** x,
        "xlogy_2": lambda x: sp.xlogy(x, 2.0), "xlog1py_1": lambda x: sp.xlog1py(x, 1.0),
        "logsumexp_pair": lambda x: nn.logsumexp(xnp.stack([x, 2 * x])), "atan2_1": lambda x: xnp.arctan2(x, 1.0),
        "hypot_0": lambda x: xnp.hypot(x, 0.0), "logaddexp_0": lambda x: xnp.logaddexp(x, 0.0),
        "maximum_0": lambda x: xnp.maximum(x, 0.0), "clip": lambda x: xnp.clip(x, -1.0, 1.0),
        "copysign_1": lambda x: xnp.copysign(1.0, x),
        **{name: getattr(nn, name) for name in (
            "relu", "softplus", "silu", "sigmoid", "log_sigmoid", "elu", "selu", "celu", "leaky_relu", "relu6",
            "hard_tanh", "hard_swish", "hard_sigmoid", "squareplus", "sparse_plus")},
        "gelu": lambda x: nn.gelu(x, approximate=True), "gelu_exact": lambda x: nn.gelu(x, approximate=False),
    }


def binary_cases(m):
    lax, xnp, sp = m.lax, m.numpy, m.special
    return {"add": lax.add, "sub": lax.sub, "mul": lax.mul, "div": lax.div, "pow": lax.pow, "atan2": lax.atan2,
            "max": lax.max, "min": lax.min, "rem": lax.rem, "hypot": xnp.hypot, "logaddexp": xnp.logaddexp,
            "copysign": xnp.copysign, "fmax": xnp.fmax, "fmin": xnp.fmin, "float_power": xnp.float_power,
            "xlogy": sp.xlogy, "xlog1py": sp.xlog1py}


def vector_cases(m):
    lax, nn, xnp = m.lax, m.nn, m.numpy
    return {"max": xnp.max, "min": xnp.min, "prod": xnp.prod, "sum": xnp.sum, "mean": xnp.mean, "var": xnp.var,
            "std": xnp.std, "median": xnp.median, "ptp": xnp.ptp, "nanmax": xnp.nanmax, "nansum": xnp.nansum,
            "nanmean": xnp.nanmean, "max_initial": lambda a: xnp.max(a, initial=0.5),
            "norm": xnp.linalg.norm, "norm_1": lambda a: xnp.linalg.norm(a, 1), "norm_inf": lambda a: xnp.linalg.norm(a, np.inf),
            "cumprod_last": lambda a: xnp.cumprod(a)[-1], "cummax_last": lambda a: lax.cummax(a)[-1],
            "sort_first": lambda a: xnp.sort(a)[0], "argmax_take": lambda a: a[xnp.argmax(a)],
            "l2_normalize_first": lambda a: (a / xnp.linalg.norm(a))[0], "logsumexp": nn.logsumexp,
            "logsumexp_b": lambda a: nn.logsumexp(a, b=xnp.array([1.0, -1.0, 2.0])), "softmax": nn.softmax,
            "log_softmax": nn.log_softmax, "standardize": nn.standardize,
            "entropy": lambda a: -xnp.sum(nn.softmax(a) * nn.log_softmax(a)),
            "glu": lambda a: nn.glu(xnp.concatenate([a, a[::-1]]))}


def matrix_cases(m):
    xnp = m.numpy
    return {"det": xnp.linalg.det, "slogdet": lambda a: xnp.linalg.slogdet(a)[1], "inv": xnp.linalg.inv,
            "eigvalsh": xnp.linalg.eigvalsh, "eigh_squared": lambda a: xnp.linalg.eigh(a)[1] ** 2,
            "svdvals": lambda a: xnp.linalg.svd(a, compute_uv=False), "norm_2": lambda a: xnp.linalg.norm(a, 2),
            "norm_nuc": lambda a: xnp.linalg.norm(a, "nuc"), "norm_fro": xnp.linalg.norm, "pinv": xnp.linalg.pinv,
            "cholesky": xnp.linalg.cholesky, "solve": lambda a: xnp.linalg.solve(a, xnp.ones(a.shape[0])),
            "qr_r": lambda a: xnp.linalg.qr(a)[1], "matrix_power_3": lambda a: xnp.linalg.matrix_power(a, 3),
            "expm": m.expm, "cond": xnp.linalg.cond}


#: garbage on both sides, and which garbage depends on the LAPACK build: a singular matrix's
#: ``solve`` (fgrad NaN, JAX +-inf) and ``cond`` (its smallest singular value is rounding noise,
#: ~1e-16: OpenBLAS 0.3.31 gives fgrad 4.8e16 where the recording has 2.5e16)
LEFT_OUT = {("matrix", "solve", "singular"), ("matrix", "cond", "singular")}


def _pulled(vjp, f, args, cotangents):
    """(value, then the gradient of each argument for each cotangent) as one flat float64 row."""
    value, pull = vjp(f, *args)
    parts = [np.ravel(np.asarray(value, np.float64))]
    for c in cotangents:
        parts += [np.ravel(np.asarray(g, np.float64)) for g in pull(np.full(np.shape(value), c))]
    return np.concatenate(parts)


def _jvp_row(jvp, f, a):
    return np.ravel(np.asarray(jvp(f, (a,), (np.ones_like(a),))[1], np.float64))


def results(m, vjp, jvp) -> dict[str, np.ndarray]:
    """Every case's row (NaN-filled where the call raised), keyed family/name/point."""
    out = {}

    def put(key, compute):
        try:
            out[key] = compute()
        except Exception:  # noqa: BLE001 - recorded as "raised"
            out[key] = np.array([])
    # elementwise functions take every point at once (one program each under jit)
    for name, f in unary_cases(m).items():
        put(f"unary/{name}/all", lambda f=f: _pulled(vjp, f, (POINTS,), COTANGENTS))
    xs, ys = (np.array(v) for v in zip(*itertools.product(PAIR_VALUES, PAIR_VALUES)))
    for name, f in binary_cases(m).items():
        put(f"binary/{name}/all", lambda f=f: _pulled(vjp, f, (xs, ys), [1.0, np.inf, 0.0, np.nan]))
    for name, f in vector_cases(m).items():
        for k, v in enumerate(VECTORS):
            put(f"vector/{name}/{k}", lambda f=f, v=v: _pulled(vjp, f, (np.array(v),), [1.0, np.inf]))
    for name, f in matrix_cases(m).items():
        for key, a in MATRICES.items():
            if ("matrix", name, key) in LEFT_OUT:
                continue
            a = np.array(a)
            put(f"matrix/{name}/{key}", lambda f=f, a=a: np.concatenate([_pulled(vjp, f, (a,), [1.0]),
                                                                         _jvp_row(jvp, f, a)]))
    return out


def _fgrad_namespace():
    import fgrad
    import fgrad.scipy.linalg
    import fgrad.scipy.special
    return types.SimpleNamespace(lax=fgrad.lax, nn=fgrad.nn, numpy=fgrad.numpy, special=fgrad.scipy.special,
                                 expm=fgrad.scipy.linalg.expm)


def _left_out(key: str) -> np.ndarray | None:
    """Which entries of a row to skip (documented differences), or None for none."""
    family, name, _ = key.split("/")
    if family == "unary" and name == "tanh":       # the value and cotangents 1, 0 and NaN only
        row = np.zeros((1 + len(COTANGENTS), len(POINTS)), bool)
        row[[2, 3]] = True
        return row.ravel()
    return None


@pytest.fixture(scope="module")
def recorded():
    if not os.path.exists(DATA):
        pytest.skip("no recorded JAX answers")
    with np.load(DATA) as data:
        return dict(data)


@pytest.mark.parametrize("jitted", [False, True])
def test_corners_match_jax(recorded, jitted):
    import fgrad
    with fgrad.config.override(enable_x64=True):
        if jitted:
            vjp = lambda f, *xs: fgrad.vjp(fgrad.jit(f), *xs)       # noqa: E731
            jvp = lambda f, p, t: fgrad.jvp(fgrad.jit(f), p, t)       # noqa: E731
        else:
            vjp, jvp = fgrad.vjp, fgrad.jvp
        got = results(_fgrad_namespace(), vjp, jvp)
    recorded = {key: row for key, row in recorded.items() if tuple(key.split("/")) not in LEFT_OUT}
    assert set(got) == set(recorded)
    wrong = []
    for key, want in recorded.items():
        have = got[key]
        if have.shape != want.shape:
            wrong.append(f"{key}: {'raises' if have.size == 0 else have.shape} vs JAX {'raises' if want.size == 0 else want.shape}")
            continue
        skip = _left_out(key)
        finite = np.abs(want[np.isfinite(want)])
        scale = 1.0 + (finite.max() if finite.size else 0.0)     # rounding near 0: 1e-16 vs 1e-33
        ok = np.isclose(have, want, rtol=1e-9, atol=1e-12 * scale, equal_nan=True)
        if skip is not None:
            ok |= skip
        if not ok.all():
            wrong.append(f"{key}: {have.tolist()} vs JAX {want.tolist()}")
    assert not wrong, f"{len(wrong)} differ from JAX:\n" + "\n".join(wrong[:60])


def _record() -> None:
    import jax
    import jax.numpy as jnp
    import jax.scipy.linalg
    import jax.scipy.special
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_platforms", "cpu")
    m = types.SimpleNamespace(lax=jax.lax, nn=jax.nn, numpy=jnp, special=jax.scipy.special, expm=jax.scipy.linalg.expm)
    out = results(m, jax.vjp, jax.jvp)
    np.savez_compressed(DATA, **out)
    print(f"recorded {len(out)} rows from JAX {jax.__version__} into {DATA}")


if __name__ == "__main__":
    if "--record" in sys.argv:
        _record()
