"""The functions whose gradients tests/linalg/test_linalg_complex.py compares with JAX's:
scripts/record_jax_complex_linalg.py calls ``funcs`` with JAX's modules to record them, the
test with fgrad's. Real-valued functions of complex matrices (their gradients follow JAX's
conjugate convention) in ``funcs``, and holomorphic ones (``holomorphic=True``) in ``holomorphic``."""


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
