"""fgrad.numpy's statistics, index tricks and further math give JAX 0.10.2's answers (shape,
dtype and values, NaNs included) on the calls of jax_breadth_calls.py, recorded by
scripts/record_jax_numpy_breadth.py. Where fgrad deliberately differs, the case says why."""
from pathlib import Path

import numpy as np
import pytest

import fgrad
from fgrad import numpy as fnp

from jax_breadth_calls import CALLS, GRAD_CALLS, GRAD_WEIGHTS, DTYPE_FUNCS, DTYPE_INPUTS, FGRAD_ACCEPTS, JAX_REJECTS

RECORDED = np.load(Path(__file__).parent / "data" / "jax_numpy_breadth.npz")

#: JAX on the CPU flushes float32 subnormals to zero; fgrad keeps them, so frexp(1e-40) is
#: NumPy's (0.544..., -132), not JAX's (0.5, -149). The other elements must agree.
SUBNORMAL_INPUT = {"frexp": 3}


def recorded(name):
    leaves, i = [], 0
    while f"{name}/{i}" in RECORDED:
        leaves.append(RECORDED[f"{name}/{i}"])
        i += 1
    return leaves


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")   # ldexp saturating to inf
@pytest.mark.parametrize("name", [name for name, _ in CALLS])
def test_matches_recorded_jax(name):
    f = dict(CALLS)[name]
    want = recorded(name)
    assert want, f"no recorded answer for {name}; rerun scripts/record_jax_numpy_breadth.py"
    got = [np.asarray(leaf) for leaf in fgrad.tree.tree_leaves(f(fnp))]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype, f"{g.dtype}{g.shape} != JAX's {w.dtype}{w.shape}"
        if name in SUBNORMAL_INPUT:
            keep = np.arange(g.size) != SUBNORMAL_INPUT[name]
            g, w = g.reshape(-1)[keep], w.reshape(-1)[keep]
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6, equal_nan=True)


@pytest.mark.parametrize("fname, dname", sorted(JAX_REJECTS - FGRAD_ACCEPTS))
def test_rejects_the_dtypes_jax_rejects(fname, dname):
    with pytest.raises((TypeError, ValueError)):
        DTYPE_FUNCS[fname](fnp, DTYPE_INPUTS[dname])


@pytest.mark.parametrize("index", range(len(GRAD_CALLS)), ids=[name for name, _, _ in GRAD_CALLS])
def test_gradients_match_recorded_jax(index):
    """Gradients at ties, knots, zeros and NaNs: JAX's choices (float64)."""
    name, f, x = GRAD_CALLS[index]
    with fgrad.config.override(enable_x64=True):
        shape = np.shape(np.asarray(f(fnp, x)))
        w = GRAD_WEIGHTS[:int(np.prod(shape))].reshape(shape)
        got = np.asarray(fgrad.grad(lambda v: fnp.nansum(f(fnp, v) * w))(fnp.asarray(x)))
    np.testing.assert_allclose(got, RECORDED[f"grad {name}/0"], rtol=1e-9, atol=1e-12, equal_nan=True)
