"""Records JAX 0.10.2's values for tests/linalg/test_linalg_vs_jax.py into
tests/linalg/data/jax_linalg.npz (run with a Python that has JAX: python scripts/record_jax_linalg.py).
Not a test; fgrad and its tests never import JAX."""
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import jax.scipy.linalg as jsl

jax.config.update("jax_enable_x64", True)
rng = np.random.default_rng(16)
out = {}


def rand(*shape):
    return rng.standard_normal(shape)


# eigh at a degenerate eigenvalue (exactly repeated in LAPACK's output): F has inf off the diagonal
a = np.diag([1.0, 1.0, 2.0, 3.0])
t = rand(4, 4)
t = t + t.T
(w, v), (dw, dv) = jax.jvp(lambda x: jnp.linalg.eigh(x), (a,), (t,))
out.update(eigh_degenerate_a=a, eigh_degenerate_t=t, eigh_degenerate_w=w, eigh_degenerate_v=v,
           eigh_degenerate_dw=dw, eigh_degenerate_dv=dv)

# eigh of a non-symmetric input without symmetrize_input: the jvp's primal symmetrizes
x = rand(4, 4)
tx = rand(4, 4)
(v, w), (dv, dw) = jax.jvp(lambda m: jax.lax.linalg.eigh(m, symmetrize_input=False), (x,), (tx,))
out.update(eigh_nonsym_x=x, eigh_nonsym_t=tx, eigh_nonsym_v=v, eigh_nonsym_w=w, eigh_nonsym_dv=dv, eigh_nonsym_dw=dw)

# cholesky's jvp with a non-symmetric tangent (the primitive alone, no symmetrization)
m = rand(4, 4)
spd = m @ m.T + 4 * np.eye(4)
tc = rand(4, 4)
L, dL = jax.jvp(lambda s: jax.lax.linalg.cholesky(s, symmetrize_input=False), (spd,), (tc,))
out.update(chol_spd=spd, chol_t=tc, chol_L=L, chol_dL=dL)
out["chol_grad_public"] = jax.grad(lambda s: jnp.sum(jnp.sin(jnp.linalg.cholesky(s))))(spd)

# det and slogdet at singular matrices: the cofactor rule
sing1 = rand(4, 4)
sing1[3] = sing1[0] + 2 * sing1[1]          # rank 3
sing2 = rand(5, 5)
sing2[3] = sing2[0]
sing2[4] = sing2[1]                         # rank 3 of 5
out.update(det_sing1=sing1, det_sing1_grad=jax.grad(jnp.linalg.det)(sing1),
           det_sing2=sing2, det_sing2_grad=jax.grad(jnp.linalg.det)(sing2),
           det_zero5_grad=jax.grad(jnp.linalg.det)(np.zeros((5, 5))),
           det_sing1_hess=jax.hessian(jnp.linalg.det)(sing1))
out["slogdet_sing1"] = np.stack(jnp.linalg.slogdet(sing1))
out["slogdet_sing1_grad"] = jax.grad(lambda s: jnp.linalg.slogdet(s)[1])(sing1)
out["inv_sing1"] = jnp.linalg.inv(sing1)

# norms' gradients at corners
out["norm_grad_zero"] = jax.grad(jnp.linalg.norm)(np.zeros(3))
out["norm_inf_grad"] = jax.grad(lambda v: jnp.linalg.norm(v, np.inf))(np.array([1.0, -3.0, 3.0]))
out["norm_1_grad_zero"] = jax.grad(lambda v: jnp.linalg.norm(v, 1))(np.array([0.0, -2.0, 1.0]))
mat = rand(3, 4)
for name, ord_ in [("2", 2), ("nuc", "nuc"), ("m2", -2), ("fro", "fro"), ("1", 1), ("inf", np.inf)]:
    out[f"matnorm_grad_{name}"] = jax.grad(lambda q: jnp.linalg.norm(q, ord_))(mat)
out["matnorm_x"] = mat

# svd, qr, pinv, lstsq, expm gradients
s_x = rand(5, 3)
out["svd_x"] = s_x
out["svd_grad"] = jax.grad(lambda q: jnp.sum(jnp.linalg.svd(q, full_matrices=False)[0] ** 3)
                           + jnp.sum(jnp.linalg.svd(q, full_matrices=False)[2] ** 3))(s_x)
out["pinv_x"] = rand(3, 5)
out["pinv_grad"] = jax.grad(lambda q: jnp.sum(jnp.sin(jnp.linalg.pinv(q))))(out["pinv_x"])
out["pinv_herm_x"] = out["pinv_x"][:, :3] + out["pinv_x"][:, :3].T
out["pinv_herm_grad"] = jax.grad(lambda q: jnp.sum(jnp.sin(jnp.linalg.pinv(q, hermitian=True))))(out["pinv_herm_x"])
out["expm_x"] = rand(4, 4)
out["expm_grad"] = jax.grad(lambda q: jnp.sum(jnp.sin(jsl.expm(q))))(out["expm_x"])
out["expm_big"] = jsl.expm(out["expm_x"] * 40)
lst_a, lst_b = rand(6, 3), rand(6, 2)
x_, r_, k_, s_ = jnp.linalg.lstsq(lst_a, lst_b)
out.update(lstsq_a=lst_a, lstsq_b=lst_b, lstsq_x=x_, lstsq_resid=r_, lstsq_rank=np.asarray(k_), lstsq_s=s_)
out["lstsq_grad"] = jax.grad(lambda q: jnp.sum(jnp.linalg.lstsq(q, lst_b)[0] ** 2))(lst_a)
out["hermitian_svd_x"] = out["pinv_herm_x"]
u, s, vh = jnp.linalg.svd(out["hermitian_svd_x"], hermitian=True)
out.update(hermitian_svd_u=u, hermitian_svd_s=s, hermitian_svd_vh=vh)

# triangular_solve: the a-term with unit_diagonal and transpose_a, right side
ta, tb = rand(4, 4) + 3 * np.eye(4), rand(3, 4)
tda, tdb = rand(4, 4), rand(3, 4)
xv, dx = jax.jvp(lambda p, q: jax.lax.linalg.triangular_solve(p, q, left_side=False, lower=True, transpose_a=True,
                                                              unit_diagonal=True), (ta, tb), (tda, tdb))
out.update(trs_a=ta, trs_b=tb, trs_da=tda, trs_db=tdb, trs_x=xv, trs_dx=dx)

# lu's jvp on a rectangular matrix
la = rand(3, 5)
lda = rand(3, 5)
(lu_, piv, perm), (dlu, _, _) = jax.jvp(jax.lax.linalg.lu, (la,), (lda,))
out.update(lu_a=la, lu_da=lda, lu_lu=lu_, lu_piv=np.asarray(piv), lu_perm=np.asarray(perm), lu_dlu=dlu)

# what raises in JAX (recorded as flags): qr jvp for wide inputs, svd jvp with full matrices
def raises(f):
    try:
        f()
    except NotImplementedError:
        return True
    return False

out["raises_qr_wide"] = raises(lambda: jax.jvp(lambda q: jnp.linalg.qr(q), (rand(3, 5),), (rand(3, 5),)))
out["raises_svd_full_square"] = raises(lambda: jax.jvp(lambda q: jnp.linalg.svd(q), (rand(3, 3),), (rand(3, 3),)))
out["raises_svd_full_rect"] = raises(lambda: jax.jvp(lambda q: jnp.linalg.svd(q), (rand(4, 3),), (rand(4, 3),)))

path = pathlib.Path(__file__).resolve().parent.parent / "tests" / "linalg" / "data" / "jax_linalg.npz"
np.savez_compressed(path, **{k: np.asarray(v) for k, v in out.items()})
print("wrote", path, len(out), "arrays")
