"""fgrad.numpy under transforms: grad (vs finite differences), vmap (vs a loop), jit (vs eager).

Everything in fgrad.numpy is built from primitives, so these only need the primitives'
rules; they check that the compositions (promotion casts, broadcasting, masks, gathers)
are wired so that derivatives and batching come out right.
"""
import numpy as np
import pytest

import fgrad
from fgrad import numpy as fnp
from fgrad.core.ir import typecheck_jaxpr

from tests.util import check_grads, check_vmap

rng = np.random.default_rng(0)
X34 = rng.uniform(0.5, 2.0, (3, 4))
Y34 = rng.uniform(-1.0, 1.0, (3, 4))
V4 = rng.uniform(-1.0, 1.0, (4,))

GRAD_CASES = {
    "arithmetic+broadcast": (lambda x, v: (x * v - 2.0) / (x + 1) + x ** 3, (X34, V4)),
    "int power": (lambda x: x ** 2 + x ** -1 + fnp.square(x) * fnp.reciprocal(x), (X34,)),
    "float power": (lambda x, y: fnp.power(x, y), (X34, Y34)),
    "transcendental": (lambda x: fnp.sinh(x) + fnp.cosh(x) + fnp.tan(x / 2) + fnp.log2(x) + fnp.cbrt(x), (X34,)),
    "inverse trig": (lambda y: fnp.arcsin(y * 0.9) + fnp.arccos(y * 0.9) * 2 + fnp.arctan(y * 3), (Y34,)),
    "inverse hyperbolic": (lambda x, y: fnp.arcsinh(y * 5) + fnp.arccosh(x + 1) + fnp.arctanh(y * 0.9), (X34, Y34)),
    "arctan2/hypot/logaddexp": (lambda x, y: fnp.arctan2(y, x) + fnp.hypot(x, y) + fnp.logaddexp(x, y), (X34, Y34)),
    "where/clip/max": (lambda x, y: fnp.where(y > 0, x, y * 2) + fnp.clip(y, -0.5, 0.5) + fnp.maximum(x, 1.0), (X34, Y34)),
    "reductions": (lambda x: fnp.var(x, axis=0) + fnp.std(x, axis=0, ddof=1) + fnp.mean(x, 0) + fnp.prod(x, 0), (X34,)),
    "max/min/logsumexp-ish": (lambda x: fnp.max(x, axis=1) - fnp.min(x, 1) + fnp.log(fnp.sum(fnp.exp(x), -1)), (X34,)),
    "cumsum/average": (lambda x: fnp.cumsum(x, axis=1) * fnp.average(x, axis=1, weights=fnp.arange(1.0, 5.0))[:, None], (X34,)),
    "matmul/einsum": (lambda x, y: fnp.einsum("ij,kj->ik", x, y) + (x @ y.T) + fnp.dot(x[0], y[1]), (X34, Y34)),
    "batched matmul": (lambda x, y: fnp.matmul(fnp.stack([x, y]), fnp.swapaxes(y, 0, 1)), (X34, Y34)),
    "tensordot/outer/trace": (lambda x, y: fnp.tensordot(x, y, 2) + fnp.outer(x[0], y[0]) + fnp.trace(x[:, :3]), (X34, Y34)),
    "einsum diagonal": (lambda x: fnp.einsum("ii->i", x[:, :3]) + fnp.einsum("ij,ij->", x, x), (X34,)),
    "manipulation": (lambda x: fnp.concatenate([fnp.flip(x, 0), fnp.roll(x, 1, axis=1)], 1).T.reshape(-1, 6), (X34,)),
    "pad/tile/repeat": (lambda x: fnp.pad(x, ((1, 0), (2, 1)), mode="reflect")[:, :4] * fnp.tile(x[0], (4, 1))[:4]
                        + fnp.repeat(x, 2, axis=0)[:4], (X34,)),
    "tril/diagonal/split": (lambda x: fnp.tril(x, 1) + fnp.triu(x)[..., ::-1] + fnp.diagonal(x)[:, None]
                            + fnp.split(x, 2, axis=1)[1].sum(), (X34,)),
    "take/take_along_axis": (lambda x: fnp.take_along_axis(x, fnp.argsort(x, axis=1), 1) + fnp.take(x, [3, 0, 1, 1], axis=1), (X34,)),
    "linspace/meshgrid": (lambda a, b: fnp.linspace(a, b, 5)[1:3] * fnp.meshgrid(a, b)[0], (V4[:2], X34[0, :2])),
    "floor_divide/remainder": (lambda x, y: fnp.remainder(x, 0.7) + fnp.fmod(y, 0.3) + x * (x // 0.7), (X34, Y34)),
    "sort": (lambda x: fnp.sort(x, axis=0) * fnp.arange(3.0)[:, None], (X34,)),
}


@pytest.mark.parametrize("name", sorted(GRAD_CASES))
def test_grad_matches_finite_differences(name):
    f, args = GRAD_CASES[name]
    check_grads(f, args, order=1 if name in ("sort", "take/take_along_axis") else 2)


VMAP_CASES = {
    "broadcast+promote": (lambda x, v: x * v + 1, (np.float32(Y34), np.int32([1, 2, 3])), (0, 0)),
    "reductions": (lambda x: fnp.var(x, axis=-1) + fnp.max(x) + fnp.argmax(x, 0), (np.float32(Y34),), (1,)),
    "matmul": (lambda x, y: x @ y, (np.float32(X34), np.float32(Y34.T)), (0, None)),
    "einsum": (lambda x, y: fnp.einsum("i,ij->j", x, y), (np.float32(X34), np.float32(Y34.T)), (0, None)),
    "indexing": (lambda x: x[::-1][x.shape[0] // 2:] + x[fnp.asarray([0, 0])].sum(), (np.float32(X34),), (1,)),
    "where/sort": (lambda x: fnp.where(x > 0, fnp.sort(x), -x), (np.float32(Y34),), (0,)),
    "pad/roll": (lambda x: fnp.roll(fnp.pad(x, 1), 2), (np.float32(Y34),), (0,)),
    "concatenate/stack": (lambda x, y: fnp.stack([fnp.concatenate([x, y]), fnp.concatenate([y, x])]),
                          (np.float32(Y34), np.float32(V4)), (0, None)),
    "take_along_axis": (lambda x, i: fnp.take_along_axis(x, i, 0), (np.float32(Y34), np.int32([[2, 0, 1, 1]] * 3)), (0, 0)),
}


@pytest.mark.parametrize("name", sorted(VMAP_CASES))
def test_vmap_matches_a_loop(name):
    f, args, in_axes = VMAP_CASES[name]
    check_vmap(f, args, in_axes=in_axes)


@pytest.mark.parametrize("name", sorted(GRAD_CASES))
def test_jit_matches_eager_and_typechecks(name):
    f, args = GRAD_CASES[name]
    args = [fnp.asarray(np.asarray(a, np.float32)) for a in args]
    np.testing.assert_allclose(np.asarray(fgrad.jit(f)(*args)), np.asarray(f(*args)), rtol=2e-5, atol=2e-5)
    typecheck_jaxpr(fgrad.make_jaxpr(f)(*args).jaxpr)


def test_integer_functions_under_jit():
    a = fnp.asarray(np.array([7, -7, 5, -3], np.int32))
    b = fnp.asarray(np.array([2, 2, -3, 0], np.int32))
    f = lambda a, b: (a // b, a % b, a ** fnp.abs(b), a >> 1, fnp.right_shift(a, fnp.abs(b)))
    for got, want in zip(fgrad.jit(f)(a, b), f(a, b)):
        assert got.tolist() == want.tolist()


def test_weak_types_survive_staging():
    jaxpr = fgrad.make_jaxpr(lambda x: x * 2 + 1)(fnp.ones(3, fnp.uint8))
    assert "u8" in str(jaxpr) and "i32" not in str(jaxpr)
    out = fgrad.jit(lambda x: x / 2)(fnp.asarray(np.array([3], np.int32)))
    assert out.dtype == np.float32 and out.tolist() == [1.5]
