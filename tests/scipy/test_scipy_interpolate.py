"""fgrad.scipy.interpolate.RegularGridInterpolator against scipy.interpolate's (with
bounds_error=False, JAX's default) in float32 and float64, JAX 0.10.2's recorded dtypes, jit
(natively, the interpolator passed in as a pytree or built inside), grad vs finite differences
(in the query points and in the values), vmap vs a loop, and the errors JAX raises."""
from __future__ import annotations

import pathlib

import numpy as np
import pytest
import scipy.interpolate

import fgrad
from fgrad import numpy as fnp
from fgrad.scipy.interpolate import RegularGridInterpolator
from tests.util import check_grads, check_jit_matches_eager, check_vmap, natively

RECORDED = np.load(pathlib.Path(__file__).parent / "data" / "scipy_more_jax.npz")
RNG = np.random.default_rng(5)


def _grid(sizes, dtype):
    return tuple(np.cumsum(RNG.uniform(0.2, 1.0, n)).astype(dtype) - 1 for n in sizes)


def _queries(grid, count, dtype, margin=0.5):
    """Points inside and outside the grid, and on its nodes."""
    inside = np.stack([RNG.uniform(g[0] - margin, g[-1] + margin, count) for g in grid], -1)
    nodes = np.stack([g[RNG.integers(0, len(g), 3)] for g in grid], -1)
    return np.concatenate([inside, nodes]).astype(dtype)


SETUPS = {"1d": ((5,), ()), "2d": ((4, 3), ()), "3d": ((3, 4, 2), ()), "2d_trailing": ((4, 3), (2,)),
          "2x2": ((2, 2), ())}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("setup", list(SETUPS))
@pytest.mark.parametrize("method", ["linear", "nearest"])
@pytest.mark.parametrize("fill_value", [np.nan, None, -3.0])
def test_matches_scipy(dtype, setup, method, fill_value):
    sizes, trailing = SETUPS[setup]
    grid = _grid(sizes, dtype)
    values = RNG.standard_normal(sizes + trailing).astype(dtype)
    xi = _queries(grid, 12, dtype)
    with fgrad.config.override(enable_x64=dtype == np.float64):
        got = np.asarray(RegularGridInterpolator(grid, values, method, fill_value=fill_value)(xi))
    want = scipy.interpolate.RegularGridInterpolator(grid, values, method, bounds_error=False,
                                                     fill_value=fill_value)(xi)
    assert got.dtype == dtype and got.shape == want.shape
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_query_shapes_tuples_and_method_override():
    grid = _grid((4, 3), np.float32)
    values = RNG.standard_normal((4, 3, 2)).astype(np.float32)
    interp = RegularGridInterpolator(grid, values)
    reference = scipy.interpolate.RegularGridInterpolator(grid, values, bounds_error=False)
    xi = _queries(grid, 6, np.float32).reshape(3, 3, 2)
    np.testing.assert_allclose(np.asarray(interp(xi)), reference(xi), rtol=1e-5, atol=1e-6)
    assert interp(xi).shape == (3, 3, 2)
    pair = (xi[..., 0], xi[..., 1])
    np.testing.assert_allclose(np.asarray(interp(pair)), reference(pair), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(interp(xi, method="nearest")), reference(xi, method="nearest"))
    line = RegularGridInterpolator(grid[:1], values[:, 0, 0])
    points = np.array([-0.5, 0.1, 0.7], np.float32)
    np.testing.assert_allclose(np.asarray(line(points)), scipy.interpolate.RegularGridInterpolator(
        grid[:1], values[:, 0, 0], bounds_error=False)(points), rtol=1e-5)


@pytest.mark.parametrize("key", ["int_values", "int_points", "tuple", "nearest_extrapolate"])
def test_dtypes_and_values_are_jaxs(key):
    ints = np.arange(6, dtype=np.int32).reshape(2, 3)
    grid = (np.array([0, 1, 3], np.int32), np.array([0, 2], np.int32))
    points = np.array([[0.5, 1.0], [2.0, 0.5], [4.0, 1.0]], np.float32)
    interp = RegularGridInterpolator(grid, ints.T)
    got = {"int_values": lambda: interp(points),
           "int_points": lambda: interp(np.array([[1, 2], [0, 0]], np.int32)),
           "tuple": lambda: interp((points[:, 0], points[:, 1])),
           "nearest_extrapolate": lambda: RegularGridInterpolator(grid, ints.T, "nearest", fill_value=None)(
               points * 1.7 - 0.6)}[key]()
    want = RECORDED[f"interp/x32/{key}"]
    assert np.asarray(got).dtype == want.dtype
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)


@pytest.mark.parametrize("method", ["linear", "nearest"])
def test_jit_with_the_interpolator_as_an_argument(method):
    grid = _grid((4, 5), np.float32)
    interp = RegularGridInterpolator(grid, RNG.standard_normal((4, 5)).astype(np.float32), method)
    xi = fnp.asarray(_queries(grid, 8, np.float32))
    np.testing.assert_array_equal(natively(lambda f, x: f(x), interp, xi), np.asarray(interp(xi)))


def test_jit_building_it_inside_matches_eager():
    grid = _grid((3, 4), np.float32)
    values, xi = RNG.standard_normal((3, 4)).astype(np.float32), _queries(grid, 8, np.float32)
    check_jit_matches_eager(lambda v, x: RegularGridInterpolator(grid, v, fill_value=0.5)(x),
                            (fnp.asarray(values), fnp.asarray(xi)))


def test_interpolator_is_a_pytree():
    grid = _grid((3, 4), np.float32)
    interp = RegularGridInterpolator(grid, RNG.standard_normal((3, 4)).astype(np.float32), "nearest")
    doubled = fgrad.tree.tree_map(lambda leaf: leaf * 2, interp)
    assert isinstance(doubled, RegularGridInterpolator) and doubled.method == "nearest"
    assert len(fgrad.tree.tree_leaves(interp)) == 4   # two grid axes, values, fill_value


def test_grad_matches_finite_differences():
    """In the query points (inside cells, away from the nodes where it has kinks) and in the values."""
    grid = (np.array([0.0, 1.0, 2.5, 3.0]), np.array([-1.0, 0.0, 2.0]))
    values = RNG.standard_normal((4, 3))
    xi = np.array([[0.3, -0.5], [1.7, 1.2], [2.8, 0.4]])
    check_grads(lambda v, x: RegularGridInterpolator(grid, v)(x), (values, xi), order=1)
    check_grads(lambda v: RegularGridInterpolator(grid, v, "nearest")(xi), (values,), order=1)


def test_vmap_matches_a_loop():
    grid = _grid((4, 3), np.float32)
    values = RNG.standard_normal((4, 3)).astype(np.float32)
    xis = np.stack([_queries(grid, 5, np.float32) for _ in range(3)])
    interp = RegularGridInterpolator(grid, values)
    check_vmap(lambda x: interp(x), (xis,))
    batch_of_values = RNG.standard_normal((2, 4, 3)).astype(np.float32)
    check_vmap(lambda v: RegularGridInterpolator(grid, v, "nearest")(xis[0]), (batch_of_values,))


def test_errors_are_jaxs():
    grid, values = _grid((3, 2), np.float32), np.ones((3, 2), np.float32)
    with pytest.raises(ValueError, match="'cubic' is not defined.*'linear', 'nearest'"):
        RegularGridInterpolator(grid, values, "cubic")
    with pytest.raises(ValueError, match="'spline' is not defined"):
        RegularGridInterpolator(grid, values)(np.zeros((1, 2)), method="spline")
    with pytest.raises(NotImplementedError, match="bounds_error"):
        RegularGridInterpolator(grid, values, bounds_error=True)
    with pytest.raises(ValueError, match="3 point arrays, but values has 2 dimensions"):
        RegularGridInterpolator(grid + grid[:1], values)
    with pytest.raises(ValueError, match="fill_value must be either 'None' or of a type compatible"):
        RegularGridInterpolator(grid, values, fill_value=1j)
    with pytest.raises(ValueError, match="dimension 3, but this RegularGridInterpolator has dimension 2"):
        RegularGridInterpolator(grid, values)(np.zeros((4, 3)))


def test_import_forms():
    import fgrad.scipy as fsp
    import fgrad.scipy.interpolate
    assert fsp.interpolate.RegularGridInterpolator is fgrad.scipy.interpolate.RegularGridInterpolator
