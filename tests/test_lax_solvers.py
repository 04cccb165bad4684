"""lax.custom_linear_solve and lax.custom_root (implicit differentiation: grads and jvps against
finite differences, the solver itself never differentiated, so iterative solvers in fori_loop
work), optimization_barrier and with_sharding_constraint; jit (native) and vmap."""
import warnings

import numpy as np
import pytest

import fgrad
from fgrad import lax
from fgrad import numpy as fnp
from fgrad.sharding import Mesh, NamedSharding, P, ShardedArray
from tests.util import check_grads, check_vmap

RNG = np.random.default_rng(0)
A = (RNG.standard_normal((3, 3)) + 3 * np.eye(3)).astype(np.float32)
S = (A @ A.T).astype(np.float32)
B = RNG.standard_normal(3).astype(np.float32)


@pytest.fixture(autouse=True)
def native_only():
    with warnings.catch_warnings():
        warnings.simplefilter("error", fgrad.ReferencePathWarning)
        yield


def cg(matvec, b, steps=12):
    """Conjugate gradients in a fori_loop: not transposable, so only implicit derivatives work."""
    r = b - matvec(fnp.zeros_like(b))

    def body(_, carry):
        x, r, p = carry
        ap = matvec(p)
        rr = r @ r
        alpha = fnp.where(rr > 0, rr / (p @ ap), 0.0)
        x, r_new = x + alpha * p, r - alpha * ap
        beta = fnp.where(rr > 0, (r_new @ r_new) / rr, 0.0)
        return x, r_new, r_new + beta * p
    return lax.fori_loop(0, steps, body, (fnp.zeros_like(b), r, r))[0]


def dense_solve(m, b):
    return lax.custom_linear_solve(lambda v: m @ v, b, lambda mv, r: fnp.linalg.solve(m, r),
                                   lambda vm, r: fnp.linalg.solve(m.T, r))


def cg_solve(m, b):
    return lax.custom_linear_solve(lambda v: m @ v, b, cg, symmetric=True)


def test_values_jit_vmap():
    np.testing.assert_allclose(dense_solve(A, B), np.linalg.solve(A, B), rtol=1e-5)
    np.testing.assert_allclose(fgrad.jit(dense_solve)(A, B), np.linalg.solve(A, B), rtol=1e-5)
    np.testing.assert_allclose(cg_solve(S, B), np.linalg.solve(S, B), rtol=1e-4)
    check_vmap(dense_solve, (np.stack([A, A.T]), np.stack([B, 2 * B])))
    check_vmap(cg_solve, (S, np.stack([B, -B, B + 1])), in_axes=(None, 0))


@pytest.mark.parametrize("solve", [dense_solve, cg_solve])
def test_derivatives_against_finite_differences(solve):
    m = A if solve is dense_solve else S
    check_grads(solve, (m, B), order=1, rtol=1e-4, atol=1e-4)   # jvp and vjp, both operands
    check_grads(lambda b: solve(m, b), (B,), order=2, rtol=1e-4, atol=1e-4)
    g = fgrad.jit(fgrad.grad(lambda m, b: (solve(m, b) ** 2).sum(), argnums=(0, 1)))(m, B)
    e = fgrad.grad(lambda m, b: (solve(m, b) ** 2).sum(), argnums=(0, 1))(m, B)
    for got, want in zip(g, e):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_pytrees_and_aux():
    b = {"u": B[:2], "w": B[2:]}

    def matvec(v):
        x = fnp.concatenate([v["u"], v["w"]])
        y = S @ x
        return {"u": y[:2], "w": y[2:]}

    def solve(mv, r):
        flat = fnp.linalg.solve(S, fnp.concatenate([r["u"], r["w"]]))
        return {"u": flat[:2], "w": flat[2:]}, fnp.int32(7)
    x, aux = lax.custom_linear_solve(matvec, b, solve, symmetric=True, has_aux=True)
    want = np.linalg.solve(S, B)
    np.testing.assert_allclose(np.concatenate([x["u"], x["w"]]), want, rtol=1e-5)
    assert int(aux) == 7


def test_linear_solve_errors():
    with pytest.raises(TypeError, match="transpose_solve required"):
        fgrad.grad(lambda b: lax.custom_linear_solve(lambda v: S @ v, b, cg).sum())(B)
    # forward mode needs no transpose_solve (as in JAX)
    fgrad.jvp(lambda b: lax.custom_linear_solve(lambda v: S @ v, b, cg), (B,), (B,))
    with pytest.raises(TypeError, match="shapes/dtypes"):
        lax.custom_linear_solve(lambda v: v[:2], B, lambda mv, r: r)
    with pytest.raises(TypeError, match="structure"):
        lax.custom_linear_solve(lambda v: (v, v), B, lambda mv, r: r)


def newton(f, x0):
    return lax.fori_loop(0, 30, lambda i, x: x - f(x) / (2 * x), x0)


def sqrt_root(a):
    return lax.custom_root(lambda x: x * x - a, 1.0, newton, lambda g, y: y / g(1.0))


def test_custom_root():
    assert abs(float(sqrt_root(2.0)) - np.sqrt(2)) < 1e-6
    assert abs(float(fgrad.grad(sqrt_root)(2.0)) - 0.5 / np.sqrt(2)) < 1e-6
    assert abs(float(fgrad.grad(fgrad.grad(sqrt_root))(2.0)) + 0.25 * 2 ** -1.5) < 1e-6
    assert abs(float(fgrad.jit(fgrad.grad(sqrt_root))(4.0)) - 0.25) < 1e-6
    np.testing.assert_allclose(fgrad.vmap(sqrt_root)(np.array([1, 4, 9], np.float32)), [1, 2, 3], rtol=1e-6)
    np.testing.assert_allclose(fgrad.jvp(sqrt_root, (4.0,), (1.0,))[1], 0.25, rtol=1e-6)


def test_custom_root_vector_with_dense_tangent_solve():
    """A vector system f(x) = A x + x**3 - c; its tangent solve a dense solve of the Jacobian,
    wrapped in custom_linear_solve so that reverse mode can transpose it (as JAX advises)."""
    def root(c):
        f = lambda x: A @ x + x ** 3 - c

        def solve(f, x0):
            return lax.fori_loop(0, 40, lambda i, x: x - fnp.linalg.solve(fgrad.jacfwd(f)(x), f(x)), x0)
        def tangent_solve(g, y):
            jac = lambda mv: fgrad.jacfwd(mv)(fnp.zeros_like(y))
            return lax.custom_linear_solve(g, y, lambda mv, r: fnp.linalg.solve(jac(mv), r),
                                           lambda vm, r: fnp.linalg.solve(jac(vm), r))
        return lax.custom_root(f, fnp.zeros(3), solve, tangent_solve)
    x = root(B)
    np.testing.assert_allclose(A @ np.asarray(x) + np.asarray(x) ** 3, B, atol=1e-5)
    check_grads(root, (B,), order=1, rtol=1e-3, atol=1e-3)


def test_custom_root_aux_and_guess_has_no_gradient():
    f = lambda a: lax.custom_root(lambda x: x * x - a, a, lambda f, x0: (newton(f, x0), x0 * 0 + 3.0),
                                  lambda g, y: y / g(1.0), has_aux=True)
    x, aux = f(9.0)
    assert abs(float(x) - 3) < 1e-6 and float(aux) == 3
    assert abs(float(fgrad.grad(lambda a: f(a)[0])(9.0)) - 1 / 6) < 1e-6


def test_optimization_barrier():
    f = lambda x: lax.optimization_barrier((fnp.sin(x), x * 2))
    x = np.linspace(0, 1, 5, dtype=np.float32)
    np.testing.assert_allclose(f(x)[0], np.sin(x), rtol=1e-6)
    np.testing.assert_allclose(fgrad.jit(f)(x)[1], 2 * x)
    check_grads(lambda x: lax.optimization_barrier(x * x), (x,), order=2)
    check_vmap(f, (np.stack([x, -x]),))


def test_with_sharding_constraint():
    mesh = Mesh(fgrad.devices(1), ("data",))
    x = np.arange(8, dtype=np.float32).reshape(4, 2)
    y = lax.with_sharding_constraint(x, NamedSharding(mesh, P("data")))
    assert isinstance(y, ShardedArray) and y.sharding.spec == P("data")
    np.testing.assert_array_equal(y, x)
    f = lambda v: lax.with_sharding_constraint(v * 2, NamedSharding(mesh, P(None, "data"))) + 1
    np.testing.assert_array_equal(fgrad.jit(f)(x), 2 * x + 1)
    np.testing.assert_array_equal(fgrad.grad(lambda v: f(v).sum())(x), np.full_like(x, 2))
    g = lambda v: lax.with_sharding_constraint(v * 2, NamedSharding(mesh, P("data"))) + 1
    np.testing.assert_array_equal(fgrad.vmap(g)(x), 2 * x + 1)     # the spec is per example, as in JAX
    with pytest.raises(ValueError, match="rank"):
        lax.with_sharding_constraint(x, NamedSharding(mesh, P("data", None, None)))
    with pytest.raises(ValueError, match="mesh"):
        lax.with_sharding_constraint(x, P("data"))
    with pytest.raises(TypeError):
        lax.with_sharding_constraint(x, "data")
