"""custom_jvp and custom_vjp: the custom rule is what every derivative uses, under vmap, jit,
control flow and higher order; and the errors."""
import functools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fgrad
from fgrad import grad, jit, jvp, lax, make_jaxpr, vjp, vmap
from fgrad import numpy as fnp
from fgrad.core.ir import typecheck_jaxpr
from fgrad.transforms.custom import custom_jvp, custom_vjp
from tests.util import check_grads


def arr(values, dtype=np.float32):
    return fnp.asarray(np.asarray(values, dtype))


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


# --- custom_jvp ---------------------------------------------------------------------------------

@custom_jvp
def log1pexp(x):
    """log(1 + e^x): the naive derivative e^x / (1 + e^x) is inf/inf = nan for large x."""
    return lax.log1p(lax.exp(x))


@log1pexp.defjvp
def log1pexp_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return log1pexp(x), t * lax.logistic(x)


def naive_log1pexp(x):
    return lax.log1p(lax.exp(x))


def test_custom_jvp_rule_is_used_where_the_naive_derivative_fails():
    x = arr([0.0, 3.0, 100.0])
    with np.errstate(over="ignore", invalid="ignore"):
        naive = np.asarray(vmap(grad(naive_log1pexp))(x))
    assert np.isnan(naive[-1])
    np.testing.assert_allclose(np.asarray(vmap(grad(log1pexp))(x)), sigmoid(np.asarray(x)), rtol=1e-6)
    _, t = jvp(log1pexp, (x,), (fnp.ones(3),))
    np.testing.assert_allclose(np.asarray(t), sigmoid(np.asarray(x)), rtol=1e-6)


@settings(max_examples=10, deadline=None)
@given(st.lists(st.floats(-5, 5, width=32), min_size=1, max_size=3))
def test_custom_jvp_matches_finite_differences(values):
    check_grads(lambda x: log1pexp(x) * x, (arr(values),), order=2)


def test_grad_of_grad_differentiates_the_rule():
    for x0 in (-2.0, 0.0, 1.5, 50.0):
        s = sigmoid(x0)
        assert float(grad(grad(log1pexp))(arr(x0))) == pytest.approx(s * (1 - s), rel=1e-5, abs=1e-12)


def test_custom_jvp_under_vmap_jit_and_staging():
    x = arr(np.linspace(-3, 3, 5))
    np.testing.assert_allclose(np.asarray(grad(lambda v: fnp.sum(vmap(log1pexp)(v)))(x)), sigmoid(np.asarray(x)), rtol=1e-6)
    _, t = jvp(vmap(log1pexp), (x,), (fnp.ones(5),))
    np.testing.assert_allclose(np.asarray(t), sigmoid(np.asarray(x)), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(grad(jit(lambda v: fnp.sum(log1pexp(v))))(x)), sigmoid(np.asarray(x)),
                               rtol=1e-6)
    jaxpr = make_jaxpr(log1pexp)(x)
    typecheck_jaxpr(jaxpr.jaxpr)
    assert "custom_jvp_call" in str(jaxpr)
    np.testing.assert_allclose(np.asarray(jit(log1pexp)(x)), np.log1p(np.exp(np.asarray(x))), rtol=1e-6)


def test_custom_rule_replaces_the_true_derivative():
    @custom_jvp
    def f(x):
        return fnp.sin(x)
    f.defjvp(lambda p, t: (f(p[0]), t[0] * 3.0))  # deliberately not cos
    assert float(grad(f)(arr(0.4))) == 3.0
    assert float(jvp(f, (arr(0.4),), (arr(2.0),))[1]) == 6.0
    assert float(grad(lambda x: lax.scan(lambda c, _: (f(c), None), x, None, length=2)[0])(arr(0.1))) == 9.0
    assert float(grad(lambda x: lax.cond(x > 0, f, fnp.cos, x))(arr(0.1))) == 3.0


def test_nondiff_argnums_pytrees_and_defjvps():
    @functools.partial(custom_jvp, nondiff_argnums=(0,))
    def power(n, x):
        return x ** n
    power.defjvp(lambda n, p, t: (power(n, p[0]), n * p[0] ** (n - 1) * t[0]))
    assert float(grad(lambda x: power(3, x))(arr(2.0))) == 12.0

    @custom_jvp
    def weighted(d):
        return d["a"] * d["b"]
    weighted.defjvp(lambda p, t: (weighted(p[0]), t[0]["a"] * p[0]["b"] + p[0]["a"] * t[0]["b"]))
    g = grad(weighted)({"a": arr(2.0), "b": arr(5.0)})
    assert float(g["a"]) == 5.0 and float(g["b"]) == 2.0

    @custom_jvp
    def mul(x, y):
        return x * y
    mul.defjvps(lambda tx, out, x, y: tx * y, None)
    gx, gy = grad(mul, argnums=(0, 1))(arr(2.0), arr(5.0))
    assert float(gx) == 5.0 and float(gy) == 0.0
    assert float(mul(x=arr(2.0), y=arr(4.0))) == 8.0


def test_custom_jvp_with_integer_argument():
    @custom_jvp
    def scale(x, k):
        return x * k.astype(np.float32)
    scale.defjvp(lambda p, t: (scale(*p), t[0] * p[1].astype(np.float32)))
    assert float(grad(scale)(arr(1.5), arr(4, np.int32))) == 4.0


def test_custom_jvp_errors():
    @custom_jvp
    def f(x):
        return x
    with pytest.raises(TypeError, match="defjvp"):
        f(arr(1.0))
    f.defjvp(lambda p, t: (p[0], fnp.ones(3)))
    with pytest.raises(TypeError, match="shape"):
        grad(f)(arr(1.0))
    f.defjvp(lambda p, t: p[0])
    with pytest.raises(TypeError, match="pair"):
        grad(f)(arr(1.0))
    with pytest.raises(TypeError, match="expects a function"):
        custom_jvp(3)


# --- custom_vjp ----------------------------------------------------------------------------------

@functools.partial(custom_vjp, nondiff_argnums=(0, 1))
def clip_gradient(lo, hi, x):
    return x


clip_gradient.defvjp(lambda lo, hi, x: (x, None),
                     lambda lo, hi, _, g: (lax.max(lax.min(g, np.float32(hi)), np.float32(lo)),))


def test_clip_gradient():
    f = lambda x: fnp.sum(clip_gradient(-1.0, 1.0, x) * arr([0.5, 3.0, -4.0]))  # noqa: E731
    x = arr([1.0, 2.0, 3.0])
    assert np.asarray(grad(f)(x)).tolist() == [0.5, 1.0, -1.0]
    assert np.asarray(clip_gradient(-1.0, 1.0, x)).tolist() == [1.0, 2.0, 3.0]
    per_example = vmap(grad(lambda x, w: clip_gradient(-1.0, 1.0, x) * w))(x, arr([0.5, 3.0, -4.0]))
    assert np.asarray(per_example).tolist() == [0.5, 1.0, -1.0]
    assert np.asarray(grad(jit(f))(x)).tolist() == [0.5, 1.0, -1.0]


@custom_vjp
def safe_sin(x):
    return fnp.sin(x)


def _sin_fwd(x):
    return fnp.sin(x), fnp.cos(x)


def _sin_bwd(cos_x, g):
    return (g * cos_x,)


safe_sin.defvjp(_sin_fwd, _sin_bwd)


def test_custom_vjp_matches_finite_differences_and_higher_order():
    check_grads(lambda x: safe_sin(x) * x, (arr([0.3, -1.2, 2.0]),), order=2, modes=("rev",))
    x0 = 0.7
    assert float(grad(grad(safe_sin))(arr(x0))) == pytest.approx(-np.sin(x0), rel=1e-5)


def test_custom_vjp_under_vmap_and_control_flow():
    x = arr(np.linspace(-2, 2, 4))
    want = np.cos(np.asarray(x))
    np.testing.assert_allclose(np.asarray(grad(lambda v: fnp.sum(vmap(safe_sin)(v)))(x)), want, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(vmap(grad(safe_sin))(x)), want, rtol=1e-6)
    scanned = lambda v: fnp.sum(lax.scan(lambda c, xi: (c + safe_sin(xi * c), None), v, x)[0])  # noqa: E731
    check_grads(scanned, (arr(0.4),), order=1, modes=("rev",))
    jac = fgrad.jacrev(lambda v: vmap(safe_sin)(v))(x)
    np.testing.assert_allclose(np.asarray(jac), np.diag(want), rtol=1e-6, atol=1e-7)


def test_custom_vjp_bwd_is_called_once_with_fwd_residuals():
    seen = []

    @custom_vjp
    def f(x, y):
        return x * y

    def fwd(x, y):
        seen.append("fwd")
        return x * y, (x, y)

    def bwd(res, g):
        seen.append("bwd")
        x, y = res
        return g * y, None  # no cotangent for y
    f.defvjp(fwd, bwd)
    out, f_vjp = vjp(f, arr(2.0), arr(3.0))
    gx, gy = f_vjp(arr(1.0))
    assert float(out) == 6.0 and float(gx) == 3.0 and float(gy) == 0.0
    assert seen == ["fwd", "bwd"]


def test_custom_vjp_cotangent_reaches_the_argument_that_is_differentiated():
    """Only the second argument is traced: bwd's second cotangent (not its first) is the gradient,
    eagerly and under jit (a constant first argument once took the wrong cotangent)."""
    @custom_vjp
    def f(b, cs):
        return b * cs[0]
    f.defvjp(lambda b, cs: (f(b, cs), None), lambda _, g: (g * 100.0, (g * 7.0,)))
    for transform in (lambda h: h, jit):
        second = transform(grad(lambda a: f(fnp.ones(3), (a,)).sum()))(fnp.ones(3))
        first = transform(grad(lambda a: f(a, (fnp.ones(3),)).sum()))(fnp.ones(3))
        np.testing.assert_array_equal(np.asarray(second), 7.0)
        np.testing.assert_array_equal(np.asarray(first), 100.0)


def test_custom_vjp_errors():
    with pytest.raises(TypeError, match="forward-mode"):
        jvp(safe_sin, (arr(1.0),), (arr(1.0),))

    @custom_vjp
    def f(x, y):
        return x + y
    with pytest.raises(TypeError, match="defvjp"):
        f(arr(1.0), arr(1.0))
    f.defvjp(lambda x, y: (x + y, None), lambda _, g: (g,))
    with pytest.raises(TypeError, match="1 cotangents for 2"):
        grad(f)(arr(1.0), arr(1.0))
    f.defvjp(lambda x, y: x + y, lambda _, g: (g, g))
    with pytest.raises(TypeError, match="pair"):
        grad(f)(arr(1.0), arr(1.0))
    f.defvjp(lambda x, y: (x + y, None), lambda _, g: (fnp.ones(3), g))
    with pytest.raises(TypeError, match="shape"):
        grad(f)(arr(1.0), arr(1.0))
