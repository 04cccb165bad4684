"""Records JAX 0.10.2's values for tests/linalg/test_linalg_complex.py into
tests/linalg/data/jax_complex_linalg.npz (run with a Python that has JAX:
python scripts/record_jax_complex_linalg.py). Not a test; fgrad and its tests never import JAX.

The functions here and in the test are the same text with ``jnp``/``lax_linalg`` bound to JAX's
or fgrad's modules (``funcs`` of tests/linalg/complex_linalg_cases.py, which both import): real-valued functions of complex
matrices (their gradients: JAX's conjugate convention), holomorphic ones (``holomorphic=True``),
and jvp/vjp of the decompositions with complex tangents and cotangents."""
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax.lax import linalg as lax_linalg

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from tests.linalg.complex_linalg_cases import funcs, holomorphic  # noqa: E402  (shared with the test)

jax.config.update("jax_enable_x64", True)
rng = np.random.default_rng(17)


def crand(*shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


A = crand(4, 4) + 3 * np.eye(4)          # well conditioned, general
W = crand(3, 5)                            # wide
T = crand(5, 3)                            # tall
B = crand(4, 2)
C = crand(4, 4)                            # weights of real-valued functions
H = A @ A.conj().T + np.diag([1.0, 4.0, 9.0, 16.0])   # Hermitian positive definite, distinct eigenvalues
WEIGHTS = np.arange(1.0, 5.0)


if __name__ == "__main__":
    out = {"A": A, "W": W, "T": T, "B": B, "C": C, "H": H}
    for name, (f, arg) in funcs(jnp, lax_linalg).items():
        value, grad = jax.value_and_grad(f)(out[arg])
        out[f"value_{name}"], out[f"grad_{name}"] = np.asarray(value), np.asarray(grad)
    for name, (f, arg) in holomorphic(jnp, lax_linalg).items():
        value, grad = jax.value_and_grad(f, holomorphic=True)(out[arg])
        out[f"holo_value_{name}"], out[f"holo_grad_{name}"] = np.asarray(value), np.asarray(grad)
    # jvp and vjp of the decompositions, complex tangents and cotangents
    tangent = crand(4, 4)
    out["tangent"] = tangent
    hermitian_tangent = (tangent + tangent.conj().T) / 2
    (w, v), (dw, dv) = jax.jvp(jnp.linalg.eigh, (H,), (hermitian_tangent,))
    out.update(eigh_w=w, eigh_dw=dw)
    svd_t = crand(3, 5)
    s, ds = jax.jvp(lambda x: jnp.linalg.svd(x, compute_uv=False), (W,), (svd_t,))
    out.update(svd_s=s, svd_ds=ds, svd_t=svd_t)
    L, dL = jax.jvp(lambda x: lax_linalg.cholesky(x, symmetrize_input=False), (H,), (tangent,))
    out.update(chol_L=L, chol_dL=dL)
    sign, logdet = jnp.linalg.slogdet(A)
    (_, _), (dsign, dlogdet) = jax.jvp(jnp.linalg.slogdet, (A,), (tangent,))
    out.update(slogdet_sign=sign, slogdet_logdet=logdet, slogdet_dsign=dsign, slogdet_dlogdet=dlogdet)
    ct = crand(4, 2)
    out["vjp_ct"] = ct
    _, vjp = jax.vjp(lambda x, b: jnp.linalg.solve(x, b), A, B)
    out["vjp_solve_a"], out["vjp_solve_b"] = (np.asarray(g) for g in vjp(ct))
    path = pathlib.Path(__file__).resolve().parents[1] / "tests" / "linalg" / "data" / "jax_complex_linalg.npz"
    np.savez(path, **out)
    print(f"wrote {len(out)} arrays to {path}")
