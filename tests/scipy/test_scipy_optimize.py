"""fgrad.scipy.optimize.minimize (BFGS) against JAX 0.10.2's recorded results
(tests/scipy/data/scipy_more_jax.npz, scripts/record_jax_scipy_more.py) on the problems of
optimize_cases.py, against SciPy where both converge, under jit (natively) and vmap; the line
search's strong Wolfe conditions; the errors for what is not supported."""
from __future__ import annotations

import pathlib

import numpy as np
import pytest
import scipy.optimize

import fgrad
import fgrad.scipy.optimize
from fgrad import numpy as fnp
from fgrad.scipy.optimize._line_search import line_search
from tests.scipy.optimize_cases import CASES, DATA, FIELDS, objectives
from tests.util import check_vmap, natively

RECORDED = np.load(pathlib.Path(__file__).parent / "data" / "scipy_more_jax.npz")
FUNS = objectives(fnp)
minimize = fgrad.scipy.optimize.minimize


def _problem(name: str, dtype):
    objective, x0, arg_names, options = CASES[name]
    args = tuple(fnp.asarray(DATA[a].astype(dtype)) for a in arg_names)
    return FUNS[objective], fnp.asarray(np.asarray(x0, dtype)), args, options


def _solve(name: str, dtype):
    fun, x0, args, options = _problem(name, dtype)
    return minimize(fun, x0, args, method="BFGS", options=options)


def _recorded(tag: str, name: str, field: str) -> np.ndarray:
    return RECORDED[f"minimize/{tag}/{name}/{field}"]


@pytest.mark.parametrize("name", list(CASES))
def test_matches_jax_float64(name):
    """In float64 every field is JAX's: the same iterates, counts, status and dtypes."""
    with fgrad.config.override(enable_x64=True):
        result = _solve(name, np.float64)
    for field in FIELDS:
        got, want = np.asarray(getattr(result, field)), _recorded("float64", name, field)
        assert got.dtype == want.dtype, field
        if got.dtype.kind == "f":
            np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-10, err_msg=field)
        else:
            np.testing.assert_array_equal(got, want, err_msg=field)


@pytest.mark.parametrize("x64", [False, True], ids=["x32", "x64"])
@pytest.mark.parametrize("name", list(CASES))
def test_matches_jax_float32(name, x64):
    """In float32 rounding may move a zoom's trial count, not the outcome: same iterations,
    status and success, the iterate and value to float32 tolerance. With 64-bit on, a float32
    start stays float32 (the counters become int64), as in JAX."""
    tag = "float32_x64" if x64 else "float32"
    with fgrad.config.override(enable_x64=x64):
        result = _solve(name, np.float32)
    for field in FIELDS:
        assert np.asarray(getattr(result, field)).dtype == _recorded(tag, name, field).dtype, field
    for field in ("nit", "status", "success"):
        np.testing.assert_array_equal(np.asarray(getattr(result, field)), _recorded(tag, name, field))
    np.testing.assert_allclose(np.asarray(result.x), _recorded(tag, name, "x"), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(np.asarray(result.fun), _recorded(tag, name, "fun"), rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(np.asarray(result.jac), _recorded(tag, name, "jac"), rtol=5e-3, atol=2e-3)
    assert abs(int(result.nfev) - int(_recorded(tag, name, "nfev"))) <= 2


@pytest.mark.parametrize("name,dtype", [("logistic", np.float32), ("logistic", np.float64),
                                        ("quadratic", np.float64), ("at_minimum", np.float64)])
def test_converged_minimum_matches_scipy(name, dtype):
    with fgrad.config.override(enable_x64=dtype == np.float64):
        result = _solve(name, dtype)
    objective, x0, arg_names, _ = CASES[name]
    args = tuple(DATA[a] for a in arg_names)
    want = scipy.optimize.minimize(objectives(np)[objective], np.asarray(x0), args, method="BFGS", tol=1e-10)
    assert bool(result.success) and int(result.status) == 0
    np.testing.assert_allclose(np.asarray(result.x), want.x, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(float(result.fun), want.fun, rtol=1e-5, atol=1e-6)
    assert np.max(np.abs(np.asarray(result.jac))) < 1e-5


def test_quadratic_minimum_solves_the_linear_system():
    with fgrad.config.override(enable_x64=True):
        result = _solve("quadratic", np.float64)
    np.testing.assert_allclose(np.asarray(result.x), np.linalg.solve(DATA["A"], DATA["b"]), rtol=1e-6)


@pytest.mark.parametrize("name", ["rosen2", "logistic"])
def test_whole_minimisation_jits_natively(name):
    """The minimisation under jit is one native program giving eager's results (float64: the
    same iterates, so the same counts)."""
    with fgrad.config.override(enable_x64=True):
        fun, x0, args, options = _problem(name, np.float64)
        eager = _solve(name, np.float64)
        jitted = natively(lambda x, *a: minimize(fun, x, a, method="BFGS", options=options), x0, *args)
    for field in FIELDS:
        got, want = np.asarray(getattr(jitted, field)), np.asarray(getattr(eager, field))
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=field)


def test_vmap_over_starting_points_matches_a_loop():
    """A batch of starts, each running its own number of iterations: vmap equals the loop
    (float64: in float32 a batched dot's rounding can move a failing zoom)."""
    with fgrad.config.override(enable_x64=True):
        fun, _, args, _ = _problem("quadratic", np.float64)
        starts = np.array([[0.0, 0.0, 0.0, 0.0], [1.0, -2.0, 0.5, 3.0], [-0.3, 0.2, 0.1, 9.0]])
        nits = [int(minimize(fun, fnp.asarray(x), args, method="BFGS").nit) for x in starts]
        assert len(set(nits)) > 1, nits
        check_vmap(lambda x: tuple(minimize(fun, x, args, method="BFGS")), (starts,), rtol=1e-9, atol=1e-12)


def test_vmap_over_args_matches_a_loop():
    with fgrad.config.override(enable_x64=True):
        fun, A = FUNS["quadratic"], fnp.asarray(DATA["A"])
        bs = np.random.default_rng(1).standard_normal((3, 4))
        x0 = fnp.zeros(4)
        check_vmap(lambda b: minimize(fun, x0, (A, b), method="BFGS").x, (bs,), rtol=1e-9, atol=1e-12)


def test_results_are_jax_named_tuple():
    result = _solve("at_minimum", np.float32)
    assert isinstance(result, fgrad.scipy.optimize.OptimizeResults)
    assert fgrad.scipy.optimize.OptimizeResults._fields == FIELDS
    assert int(result.nit) == 0 and int(result.nfev) == 1 and bool(result.success)


def test_method_is_case_insensitive_and_tol_is_unused_as_in_jax():
    fun, x0, args, _ = _problem("logistic", np.float32)
    plain = minimize(fun, x0, args, method="BFGS")
    for other in (minimize(fun, x0, args, method="bfgs"), minimize(fun, x0, args, method="BFGS", tol=1e-1)):
        np.testing.assert_array_equal(np.asarray(other.x), np.asarray(plain.x))
        assert int(other.nit) == int(plain.nit)


def test_maxiter_stops_with_status_1():
    result = minimize(FUNS["rosen"], fnp.asarray([-1.2, 1.0]), method="BFGS", options={"maxiter": 2})
    assert int(result.nit) == 2 and int(result.status) == 1 and not bool(result.success)


@pytest.mark.parametrize("method", ["Nelder-Mead", "L-BFGS-B", "CG"])
def test_unsupported_method_names_it_and_the_supported_ones(method):
    with pytest.raises(ValueError, match=f"{method}.*'BFGS'"):
        minimize(FUNS["rosen"], fnp.zeros(2), method=method)


def test_errors():
    x0 = fnp.zeros(2)
    with pytest.raises(TypeError, match="must be a tuple"):
        minimize(FUNS["rosen"], x0, [1.0], method="BFGS")
    with pytest.raises(TypeError, match="unknown option.*'xtol'.*'gtol'"):
        minimize(FUNS["rosen"], x0, method="BFGS", options={"xtol": 1e-3})
    with pytest.raises(ValueError, match="1-D"):
        minimize(FUNS["rosen"], fnp.zeros((2, 2)), method="BFGS")
    with pytest.raises(TypeError, match="floating-point"):
        minimize(FUNS["rosen"], np.array([0, 1]), method="BFGS")
    with pytest.raises(TypeError, match="method"):
        minimize(FUNS["rosen"], x0)


@pytest.mark.parametrize("seed", range(6))
def test_line_search_step_satisfies_strong_wolfe(seed):
    """Whenever the search reports success, its step meets both strong Wolfe conditions, and the
    value and gradient it returns are those at the step."""
    rng = np.random.default_rng(seed)
    with fgrad.config.override(enable_x64=True):
        fun = FUNS["rosen"]
        x = fnp.asarray(rng.uniform(-1.5, 1.5, 3))
        value, gradient = fgrad.value_and_grad(fun)(x)
        direction = -gradient / fnp.linalg.norm(gradient)
        result = line_search(fun, x, direction, c1=1e-4, c2=0.9)
        assert not bool(result.failed)
        step = float(result.a_k)
        slope = float(fnp.dot(gradient, direction))
        moved = x + step * direction
        assert float(fun(moved)) <= float(value) + 1e-4 * step * slope
        assert abs(float(fnp.dot(fgrad.grad(fun)(moved), direction))) <= 0.9 * abs(slope)
        np.testing.assert_allclose(float(result.f_k), float(fun(moved)), rtol=1e-12)
        np.testing.assert_allclose(np.asarray(result.g_k), np.asarray(fgrad.grad(fun)(moved)), rtol=1e-12)


def test_import_forms():
    import fgrad.scipy as fsp
    assert fsp.optimize.minimize is minimize
