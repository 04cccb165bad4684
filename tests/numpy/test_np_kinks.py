"""fgrad.numpy / fgrad.nn at kinks, ties and corners: values and derivatives equal JAX's
(docs/conventions.md). Expected values are JAX 0.10.2's (jax_enable_x64), written here as
constants; each row failed before the functions followed JAX's formulas."""
import math

import numpy as np
import pytest

import fgrad
from fgrad import lax, nn
from fgrad import numpy as fnp
from fgrad.scipy import special

INF, NAN = math.inf, math.nan


def _derivative(f, args, order):
    n = len(args)
    argnums = 0 if n == 1 else tuple(range(n))
    if order == 0:
        return f
    if order == 1:
        return fgrad.grad(f, argnums)
    return fgrad.grad(fgrad.grad(f)) if n == 1 else fgrad.hessian(f, argnums)


# (label, function, arguments, derivative order (0: the value), JAX's result)
CASES = [
    ("sinh d1 at 0", fnp.sinh, (0.0,), 1, 1.0),
    ("arcsinh d1 at 0", fnp.arcsinh, (0.0,), 1, 1.0),
    ("cbrt d1 at -1", fnp.cbrt, (-1.0,), 1, 1 / 3),
    ("arctan d1 at 0", fnp.arctan, (0.0,), 1, 1.0),
    ("arctan d1 at 1", fnp.arctan, (1.0,), 1, 0.5),
    ("arctan2 d1", fnp.arctan2, (-0.5, 0.5), 1, [1.0, 1.0]),
    ("arctan2(arcsinh(-0), arcsinh(-0))", lambda x: fnp.arctan2(fnp.arcsinh(x), fnp.arcsinh(x)), (-0.0,), 0, -math.pi),
    ("sign(-0.)", fnp.sign, (-0.0,), 0, -0.0),
    ("abs d1 at 0", fnp.abs, (0.0,), 1, 1.0),
    ("abs d1 at -0.", fnp.abs, (-0.0,), 1, 1.0),
    ("sign(x) * x d1 at 0", lambda x: fnp.sign(x) * x, (0.0,), 1, 0.0),
    ("copysign d1 at (0, 1)", fnp.copysign, (0.0, 1.0), 1, [1.0, 0.0]),
    ("copysign d1 at (0, -1)", fnp.copysign, (0.0, -1.0), 1, [-1.0, 0.0]),
    ("copysign(1, -0.)", fnp.copysign, (1.0, -0.0), 0, -1.0),
    ("logaddexp d1 at a tie", fnp.logaddexp, (0.5, 0.5), 1, [0.5, 0.5]),
    ("logaddexp hessian at a tie", fnp.logaddexp, (0.5, 0.5), 2, [[0.25, -0.25], [-0.25, 0.25]]),
    ("logaddexp d1 at (inf, 1)", fnp.logaddexp, (INF, 1.0), 1, [1.0, math.e]),
    ("logaddexp d1 at (-inf, -inf)", fnp.logaddexp, (-INF, -INF), 1, [NAN, NAN]),
    ("logaddexp(inf, inf)", fnp.logaddexp, (INF, INF), 0, INF),
    ("logaddexp(-inf, -inf)", fnp.logaddexp, (-INF, -INF), 0, -INF),
    ("logaddexp2 hessian at a tie", fnp.logaddexp2, (0.5, 0.5), 2,
     [[0.17328679513998632, -0.17328679513998632], [-0.17328679513998632, 0.17328679513998632]]),
    ("maximum d1 at a tie", fnp.maximum, (1.0, 1.0), 1, [0.5, 0.5]),
    ("minimum d1 at a tie", fnp.minimum, (1.0, 1.0), 1, [0.5, 0.5]),
    ("maximum d1 with a NaN", fnp.maximum, (NAN, 1.0), 1, [0.0, 0.0]),
    ("fmax d1 at a tie", fnp.fmax, (1.0, 1.0), 1, [0.0, 1.0]),
    ("fmin d1 at a tie", fnp.fmin, (1.0, 1.0), 1, [0.0, 1.0]),
    ("fmax d1 with x1 NaN", fnp.fmax, (NAN, 1.0), 1, [0.0, 1.0]),
    ("fmax d1 with x2 NaN", fnp.fmax, (1.0, NAN), 1, [1.0, 0.0]),
    ("fmin d1 with x1 NaN", fnp.fmin, (NAN, 1.0), 1, [0.0, 1.0]),
    ("fmax(nan, nan)", fnp.fmax, (NAN, NAN), 0, NAN),
    ("clip d1 at the upper bound", lambda x: fnp.clip(x, -1.0, 1.0), (1.0,), 1, 0.5),
    ("clip d1 at the lower bound", lambda x: fnp.clip(x, -1.0, 1.0), (-1.0,), 1, 0.5),
    ("clip d1 wrt a bound, at it", lambda x, lo: fnp.clip(x, lo, lo + 1.0), (1.0, 1.0), 1, [0.5, 0.5]),
    ("clip(nan)", lambda x: fnp.clip(x, -1.0, 1.0), (NAN,), 0, NAN),
    ("relu d1 at 0", nn.relu, (0.0,), 1, 0.0),
    ("relu d2 at 0", nn.relu, (0.0,), 2, 0.0),
    ("relu(nan)", nn.relu, (NAN,), 0, NAN),
    ("relu(-0.)", nn.relu, (-0.0,), 0, 0.0),
    ("relu d1 at nan", nn.relu, (NAN,), 1, 0.0),
    ("maximum(0., -0.)", fnp.maximum, (0.0, -0.0), 0, 0.0),
    ("minimum(0., -0.)", fnp.minimum, (0.0, -0.0), 0, -0.0),
    ("clip(-0., 0., 1.)", lambda x: fnp.clip(x, 0.0, 1.0), (-0.0,), 0, 0.0),
    ("hypot d1 at the origin", fnp.hypot, (0.0, 0.0), 1, [0.5, 0.5]),
    ("hypot d1 on an axis", fnp.hypot, (0.0, 2.0), 1, [0.0, 1.0]),
    ("hypot d1 at a tie", fnp.hypot, (1.0, 1.0), 1, [0.7071067811865476, 0.7071067811865476]),
    ("hypot hessian at a tie", fnp.hypot, (1.0, 1.0), 2, [[0.0, 0.0], [0.0, 0.0]]),
    ("hypot hessian on an axis", fnp.hypot, (0.0, 1.0), 2, [[1.0, 0.0], [0.0, 0.0]]),
    ("hypot hessian on the other axis", fnp.hypot, (3.0, 0.0), 2, [[0.0, 0.0], [0.0, 1 / 3]]),
    ("hypot hessian on a negative axis", fnp.hypot, (0.0, -2.0), 2, [[0.5, 0.0], [0.0, 0.0]]),
    ("hypot hessian at the origin", fnp.hypot, (-0.0, 0.0), 2, [[0.0, 0.0], [0.0, 0.0]]),
    ("hypot d1 with a NaN", fnp.hypot, (NAN, 1.0), 1, [NAN, NAN]),
    ("hypot(inf, nan)", fnp.hypot, (INF, NAN), 0, INF),
    ("pow hessian at y == 0", fnp.power, (2.0, 0.0), 2, [[0.0, 0.5], [0.5, 0.4804530139182014]]),
    ("pow d1 at (0, 0)", fnp.power, (0.0, 0.0), 1, [NAN, 0.0]),
    ("pow d1 at (0, 0.5)", fnp.power, (0.0, 0.5), 1, [INF, 0.0]),
    ("pow d1 at (-2, 3)", fnp.power, (-2.0, 3.0), 1, [12.0, NAN]),
    ("x ** arange(4) d1 at 0 (integer exponents)", lambda x: fnp.sum(x ** fnp.arange(4)), (0.0,), 1, 1.0),
    ("x ** int 0 d1 at 0", lambda x: fnp.power(x, fnp.asarray(np.int32(0))), (0.0,), 1, 0.0),
    ("x ** int 1 d2 at 0", lambda x: fnp.power(x, fnp.asarray(np.int32(1))), (0.0,), 2, 0.0),
    # second derivatives where a materialised zero tangent times inf made NaN (JAX's symbolic zeros)
    ("pow hessian at (1, inf)", fnp.power, (1.0, INF), 2, [[INF, NAN], [NAN, NAN]]),
    ("divide hessian at (1, 0)", fnp.divide, (1.0, 0.0), 2, [[NAN, -INF], [NAN, NAN]]),
    ("divide hessian at (0, 2)", fnp.divide, (0.0, 2.0), 2, [[-0.0, -0.25], [-0.25, -0.0]]),
    ("arctan2 hessian at (-1, 0)", fnp.arctan2, (-1.0, 0.0), 2, [[0.0, 1.0], [1.0, -0.0]]),
    ("remainder hessian at (inf, 1)", fnp.remainder, (INF, 1.0), 2, [[0.0, 0.0], [0.0, 0.0]]),
    # the division family: JAX's formulas and rem's jvp (d/dy = -sign(q) * floor(|q|))
    ("remainder d1 at (2, 0)", fnp.remainder, (2.0, 0.0), 1, [1.0, -INF]),
    ("fmod d1 at (-1, 0)", fnp.fmod, (-1.0, 0.0), 1, [1.0, INF]),
    ("divmod's mod d1 at (-1, 0)", lambda a, b: fnp.divmod(a, b)[1], (-1.0, 0.0), 1, [1.0, INF]),
    ("floor_divide(2., 0.)", fnp.floor_divide, (2.0, 0.0), 0, INF),
    ("floor_divide(-1., 0.)", fnp.floor_divide, (-1.0, 0.0), 0, -INF),
    ("floor_divide d1 at (2, 0)", fnp.floor_divide, (2.0, 0.0), 1, [0.0, 0.0]),
    ("sinc d1 at 1e-300", fnp.sinc, (1e-300,), 1, -INF),
    ("log2 d1 at 2", fnp.log2, (2.0,), 1, 0.7213475204444817),
    ("exp2 d1 at 1", fnp.exp2, (1.0,), 1, 1.3862943611198906),
    ("sinc(0)", fnp.sinc, (0.0,), 0, 1.0),
    ("sinc d1 at 0", fnp.sinc, (0.0,), 1, 0.0),
    ("sinc d2 at 0", fnp.sinc, (0.0,), 2, -math.pi ** 2 / 3),
    ("sinc d1 at 0.5", fnp.sinc, (0.5,), 1, -1.2732395447351625),
    ("log_softmax with +inf", lambda x: nn.log_softmax(fnp.stack([x, fnp.full_like(x, 0.5)]))[0], (INF,), 0, NAN),
    ("gelu(exact) d2 at 0", lambda x: nn.gelu(x, approximate=False), (0.0,), 2, 0.7978845608028654),
    # heaviside passes a NaN x1 through (d/dx1 = 1 there); entr's x log x has derivative log(x) + 1
    ("heaviside d1 at (nan, 0.5)", fnp.heaviside, (NAN, 0.5), 1, [1.0, 0.0]),
    ("heaviside d1 at (0, 0.5)", fnp.heaviside, (0.0, 0.5), 1, [0.0, 1.0]),
    ("entr d1 at 0", special.entr, (0.0,), 1, INF),
    ("entr d1 at -1", special.entr, (-1.0,), 1, NAN),
    ("entr d1 at inf", special.entr, (INF,), 1, -INF),
    ("entr d1 at 0.5", special.entr, (0.5,), 1, -0.3068528194400547),
    ("entr(0)", special.entr, (0.0,), 0, -0.0),
]


@pytest.mark.parametrize("label,f,args,order,want", CASES, ids=[c[0] for c in CASES])
def test_matches_jax(label, f, args, order, want):
    with fgrad.config.override(enable_x64=True):
        got = np.asarray(_derivative(f, args, order)(*[np.float64(a) for a in args]), np.float64)
    want = np.asarray(want, np.float64)
    rtol = 1e-5 if "gelu" in label else 1e-12          # fgrad's erf is a 1.5e-7 approximation
    np.testing.assert_allclose(got, want, rtol=rtol, atol=0)
    assert np.array_equal(np.signbit(got[want == 0]), np.signbit(want[want == 0])), (got, want)


def test_hessians_are_symmetric_at_pow_and_logaddexp_corners():
    with fgrad.config.override(enable_x64=True):
        for f, point in ((fnp.power, (2.0, 0.0)), (fnp.power, (1.0, 0.0)), (fnp.logaddexp, (0.5, 0.5)),
                         (fnp.arctan2, (-0.5, 0.5))):
            h = np.asarray(fgrad.hessian(f, (0, 1))(*map(np.float64, point)), np.float64)
            np.testing.assert_array_equal(h, h.T)


ODD = {"sinh": fnp.sinh, "arcsinh": fnp.arcsinh, "cbrt": fnp.cbrt, "tan": fnp.tan, "arctan": fnp.arctan,
       "arcsin": fnp.arcsin, "arctanh": fnp.arctanh, "sign": fnp.sign, "sin": fnp.sin, "tanh": fnp.tanh,
       "expm1": fnp.expm1, "copysign(1, x)": lambda x: fnp.copysign(1.0, x)}


@pytest.mark.parametrize("name", sorted(ODD))
def test_odd_functions_keep_the_sign_of_zero_eagerly_and_compiled(name):
    x = np.array([-0.0, 0.0], np.float32)
    for out in (ODD[name](fnp.asarray(x)), fgrad.jit(ODD[name])(x)):
        assert np.signbit(np.asarray(out)).tolist() == [True, False]


# signbit of the result for inputs of -0. (JAX 0.10.2, eager and jit): XLA folds sums from +0.,
# except that a sum of ONE element is that element
SIGNED_ZERO_SUMS = [
    ("window 1x1", lambda x: lax.reduce_window(x, "sum", (1, 1, 1, 1), (1, 1, 1, 1), "VALID"), [True] * 4),
    ("window 2x2", lambda x: lax.reduce_window(x, "sum", (1, 1, 2, 2), (1, 1, 1, 1), "VALID"), [False]),
    ("window 1x2", lambda x: lax.reduce_window(x, "sum", (1, 1, 1, 2), (1, 1, 1, 1), "VALID"), [False] * 2),
    ("sum over a size-1 axis", lambda x: fnp.sum(x, axis=0), [True] * 4),
    ("sum of everything", fnp.sum, [False]),
    ("sum over an axis", lambda x: fnp.sum(x, axis=3), [False] * 2),
    ("sum of one element", lambda x: fnp.sum(x[0, 0, 0, :1]), [True]),
    ("cumsum", lambda x: fnp.cumsum(x, axis=3), [False] * 4),
    ("cumsum over a size-1 axis", lambda x: fnp.cumsum(x, axis=0), [True] * 4),
    ("mean", lambda x: fnp.mean(x, axis=3), [False] * 2),
    ("avg_pool2d(1)", lambda x: fgrad.nn.avg_pool2d(x, 1), [True] * 4),
]


@pytest.mark.parametrize("name,fn,want", SIGNED_ZERO_SUMS, ids=[c[0] for c in SIGNED_ZERO_SUMS])
def test_sums_of_negative_zeros_match_jax(name, fn, want):
    x = fnp.full((1, 1, 2, 2), -0.0)
    for got in (fn(x), fgrad.jit(fn)(x)):
        assert np.signbit(np.asarray(got)).ravel().tolist() == want


def test_signed_zero_survives_fusion():
    """``arctan2(avg_pool2d(-0.), -1.)`` is -pi in JAX (eager and jit); compiled it was +pi."""
    x = fnp.full((1, 1, 2, 2), -0.0)
    f = lambda v: fnp.arctan2(fgrad.nn.avg_pool2d(v, 1), -1.0)  # noqa: E731
    for got in (f(x), fgrad.jit(f)(x)):
        np.testing.assert_array_equal(np.asarray(got), np.full((1, 1, 2, 2), -np.float32(np.pi)))
    g = lambda a, b: fnp.copysign(1.0, fnp.tanh(fnp.maximum(a, b)))  # noqa: E731
    a, b = fnp.float32(0.0), fnp.float32(-0.0)
    assert float(g(a, b)) == float(fgrad.jit(g)(a, b)) == 1.0


# derivatives at singular points and ties, JAX 0.10.2 (x64) — eager grad and jit(grad)
SINGULAR_GRADS = [
    ("floor_divide d/dx at y=0", fnp.floor_divide, 0, (1.0, 0.0), 0.0),
    ("floor_divide d/dy at y=0", fnp.floor_divide, 1, (1.0, 0.0), 0.0),
    ("remainder d/dy at y=0", fnp.remainder, 1, (1.0, 0.0), -INF),
    ("remainder d/dy at y=0, x<0", fnp.remainder, 1, (-1.0, 0.0), INF),
    ("remainder d/dx at y=0", fnp.remainder, 0, (1.0, 0.0), 1.0),
    ("fmod d/dy at y=0", fnp.fmod, 1, (1.0, 0.0), -INF),
    ("fmod d/dy at y=-0", fnp.fmod, 1, (-1.0, -0.0), -INF),
    ("abs at nan", fnp.abs, 0, (NAN,), -1.0),
    ("log at 0", fnp.log, 0, (0.0,), INF), ("log at -0", fnp.log, 0, (-0.0,), -INF),
    ("sqrt at 0", fnp.sqrt, 0, (0.0,), INF), ("sqrt at -0", fnp.sqrt, 0, (-0.0,), -INF),
    ("reciprocal at 0", fnp.reciprocal, 0, (0.0,), -INF), ("reciprocal at -0", fnp.reciprocal, 0, (-0.0,), -INF),
    ("cbrt at 0", fnp.cbrt, 0, (0.0,), INF), ("cbrt at -0", fnp.cbrt, 0, (-0.0,), INF),
    ("arcsin at 1", fnp.arcsin, 0, (1.0,), INF), ("arcsin at -1", fnp.arcsin, 0, (-1.0,), INF),
    ("arccos at 1", fnp.arccos, 0, (1.0,), -INF), ("arccos at -1", fnp.arccos, 0, (-1.0,), -INF),
    ("arctanh at 1", fnp.arctanh, 0, (1.0,), INF), ("arctanh at -1", fnp.arctanh, 0, (-1.0,), INF),
    ("arccosh at 1", fnp.arccosh, 0, (1.0,), INF), ("log2 at 0", fnp.log2, 0, (0.0,), INF),
    ("log10 at 0", fnp.log10, 0, (0.0,), INF), ("log1p at -1", fnp.log1p, 0, (-1.0,), INF),
    ("divide d/dy at y=0", fnp.divide, 1, (1.0, 0.0), -INF),
]


@pytest.mark.parametrize("name,fn,argnum,args,want", SINGULAR_GRADS, ids=[c[0] for c in SINGULAR_GRADS])
def test_derivatives_at_singular_points_match_jax(name, fn, argnum, args, want):
    with fgrad.config.override(enable_x64=True):
        d = fgrad.grad(fn, argnums=argnum)
        for got in (float(d(*args)), float(fgrad.jit(d)(*args))):
            np.testing.assert_array_equal(got, want)


def test_arcsinh_of_negative_zero():
    for got in (fnp.arcsinh(-0.0), fgrad.jit(fnp.arcsinh)(-0.0)):
        assert float(got) == 0.0 and np.signbit(float(got))


def test_max_and_min_reductions_with_a_nan_have_nan_derivatives():
    # JAX 0.10.2's rule: the cotangent over the positions equal to the result, divided by their
    # count; a NaN result equals no position, so 0 / 0 = NaN (JAX eagerly; its jit folds it to 0)
    x = np.float32([1, np.nan, 3])
    for reduce in (fnp.max, fnp.min, fnp.amax, fnp.ptp):
        for grad in (fgrad.grad(lambda a: reduce(a)), fgrad.jit(fgrad.grad(lambda a: reduce(a)))):
            assert np.isnan(np.asarray(grad(x))).all(), reduce
    rows = fgrad.grad(lambda a: fnp.max(a, axis=1).sum())(np.float32([[1, np.nan], [3, 2]]))
    np.testing.assert_array_equal(np.asarray(rows), [[np.nan, np.nan], [1, 0]])
    np.testing.assert_array_equal(np.asarray(fgrad.grad(lambda a: fnp.max(a))(np.float32([1, 3, 3]))), [0, 0.5, 0.5])


@pytest.mark.parametrize("name, base", [("logaddexp", math.e), ("logaddexp2", 2.0)])
def test_complex_logaddexp_is_the_log_of_the_sum_with_its_phase_wrapped(name, base):
    """JAX's complex logaddexp: log_b(b^x1 + b^x2) with the imaginary part wrapped into
    [-pi, pi) (over ln b for base 2), eagerly and compiled; its derivative is b^(x1 - out)."""
    x1 = np.array([1 + 1j, -2 + 3j, 0.5 - 2.5j, 4 + 0j], np.complex128)
    x2 = np.array([2 + 0j, 1 - 3j, 0.5 - 2.5j, -1 + 1j], np.complex128)
    lb = math.log(base)
    want = np.log(np.exp(x1 * lb) + np.exp(x2 * lb)) / lb
    bound = math.pi / lb
    want = want.real + 1j * ((want.imag + bound) % (2 * bound) - bound)
    f = getattr(fnp, name)
    with fgrad.config.override(enable_x64=True):
        for got in (f(x1, x2), fgrad.jit(f)(x1, x2)):
            np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12)
        _, tangent = fgrad.jvp(lambda a: f(a, x2), (x1,), (np.ones_like(x1),))
        np.testing.assert_allclose(np.asarray(tangent), np.exp((x1 - want) * lb), rtol=1e-12)
