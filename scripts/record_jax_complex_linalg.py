"""Records JAX 0.10.2's values for tests/linalg/test_linalg_complex.py into
tests/linalg/data/jax_complex_linalg.npz (run with a Python that has JAX:
python scripts/record_jax_complex_linalg.py). Not a test; fgrad and its tests never import JAX.

The functions here and in the test are the same text with ``jnp``/``lax_linalg`` bound to JAX's
or fgrad's modules (``FUNCS`` below is copied into the test): real-valued functions of complex
matrices (their gradients: JAX's conjugate convention), holomorphic ones (``holomorphic=True``),
and jvp/vjp of the decompositions with complex tangents and cotangents."""
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from jax.lax import linalg as lax_linalg

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


def funcs(jnp, lax_linalg):
    la = jnp.linalg

    def herm(x):
        return x @ jnp.conj(x.T) + jnp.eye(4)

    return {
        # real-valued: grad follows JAX's convention (df/dx - i df/dy)
        "abs_det": (lambda x: jnp.abs(la.det(x)), "A"),
        "abs_det_2x2": (lambda x: jnp.abs(la.det(x[:2, :2])), "A"),
        "abs_det_3x3": (lambda x: jnp.abs(la.det(x[:3, :3])), "A"),
        "logabsdet": (lambda x: la.slogdet(x)[1], "A"),
        "slogdet_sign_re_im": (lambda x: jnp.real(la.slogdet(x)[0]) + 2 * jnp.imag(la.slogdet(x)[0]), "A"),
        "slogdet_small_sign": (lambda x: jnp.imag(la.slogdet(x[:2, :2])[0]) + la.slogdet(x[:2, :2])[1], "A"),
        "svd_sum": (lambda x: jnp.sum(la.svd(x, compute_uv=False)), "W"),
        "svd_sum_tall": (lambda x: jnp.sum(la.svd(x, compute_uv=False) * jnp.arange(1.0, 4.0)), "T"),
        "svd_u_abs2": (lambda x: jnp.sum(jnp.abs(la.svd(x, full_matrices=False)[0]) ** 2 * jnp.arange(1.0, 4.0)), "W"),
        "svd_vh_abs2": (lambda x: jnp.sum(jnp.abs(la.svd(x, full_matrices=False)[2]) ** 2 * jnp.arange(1.0, 4.0)[:, None]), "T"),
        "nuclear_norm": (lambda x: la.norm(x, "nuc"), "A"),
        "eigvalsh_weighted": (lambda x: jnp.sum(la.eigvalsh(x) * jnp.arange(1.0, 5.0)), "H"),
        "eigh_nonhermitian_input": (lambda x: jnp.sum(la.eigh(x)[0] * jnp.arange(1.0, 5.0)), "A"),
        "eigh_vectors_abs2": (lambda x: jnp.sum(jnp.abs(la.eigh(x)[1]) ** 2 * jnp.arange(1.0, 5.0)), "H"),
        "cholesky": (lambda x: jnp.sum(jnp.real(la.cholesky(herm(x)) * jnp.arange(1.0, 17.0).reshape(4, 4) * (1 - 2j))), "A"),
        "cholesky_upper": (lambda x: jnp.sum(jnp.abs(la.cholesky(herm(x), upper=True)) ** 2 * jnp.arange(1.0, 5.0)), "A"),
        "qr": (lambda x: jnp.sum(jnp.real(la.qr(x)[0]) * 2) + jnp.sum(jnp.imag(la.qr(x)[1]) * 3), "T"),
        "qr_wide": (lambda x: jnp.sum(jnp.real(la.qr(x)[1])) + jnp.sum(jnp.imag(la.qr(x)[0]) * 3), "W"),
        "qr_complete": (lambda x: jnp.sum(jnp.real(la.qr(x, mode="complete")[0] * (1 + 2j))), "T"),
        "solve": (lambda x: jnp.sum(jnp.abs(la.solve(x, jnp.arange(8.0).reshape(4, 2) * (1 + 1j))) ** 2), "A"),
        "inv": (lambda x: jnp.real(jnp.sum(la.inv(x) * (2 - 1j))), "A"),
        "pinv": (lambda x: jnp.sum(jnp.abs(la.pinv(x)) ** 2 * jnp.arange(1.0, 6.0)[:, None]), "W"),
        "pinv_hermitian": (lambda x: jnp.sum(jnp.real(la.pinv(herm(x), hermitian=True) * (1 + 3j))), "A"),
        "lstsq": (lambda x: jnp.sum(jnp.abs(la.lstsq(x, jnp.arange(10.0).reshape(5, 2) * (1 - 1j))[0]) ** 2), "T"),
        "lu": (lambda x: jnp.sum(jnp.real(lax_linalg.lu(x)[0] * (1 + 2j))), "A"),
        "triangular_solve_conj": (lambda x: jnp.sum(jnp.abs(lax_linalg.triangular_solve(
            x, x[:, :2], left_side=True, lower=True, transpose_a=True, conjugate_a=True)) ** 2), "A"),
        "triangular_solve_conj_only": (lambda x: jnp.sum(jnp.abs(lax_linalg.triangular_solve(
            x, x[:2, :], left_side=False, lower=False, conjugate_a=True)) ** 2), "A"),
        "matrix_norm_2": (lambda x: la.norm(x, 2), "W"),
        "cond": (lambda x: la.cond(x), "A"),
    }


def holomorphic(jnp, lax_linalg):
    la = jnp.linalg
    return {
        "det": (lambda x: la.det(x), "A"),
        "inv": (lambda x: jnp.sum(la.inv(x) * jnp.arange(16.0).reshape(4, 4)), "A"),
        "solve": (lambda x: jnp.sum(la.solve(x, jnp.arange(8.0).reshape(4, 2) + 1j)), "A"),
        "lu": (lambda x: jnp.sum(lax_linalg.lu(x)[0] * jnp.arange(16.0).reshape(4, 4)), "A"),
        "triangular_solve": (lambda x: jnp.sum(lax_linalg.triangular_solve(x, x[:, :2] + 1, left_side=True)), "A"),
    }


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
