"""Size-0 arrays anywhere in a jitted program: jit agrees with eager (and NumPy) and the
program compiles natively (``pipeline.compiled_by_path``), never a crash or a fallback."""
import warnings

import numpy as np
import pytest

import fgrad
import fgrad.numpy as fnp
from fgrad import lax
from fgrad.compile import pipeline

E = np.zeros((0, 3), np.float32)
A = np.arange(6, dtype=np.float32).reshape(2, 3)
I3 = np.array([0, 1, 2], np.int32)

CASES = {
    "concat_all_empty_then_sum": lambda e, a: fnp.sum(fnp.concatenate([e, e]), axis=0),
    "concat_empty_and_nonempty": lambda e, a: fnp.concatenate([e, a, e]) * 2,
    "concat_empty_middle_axis1": lambda e, a: fnp.concatenate([a, e.T[:2], a], axis=1),
    "pad_empty_operand": lambda e, a: lax.pad(e, 7.0, [(1, 2, 0), (0, 0, 1)]),
    "empty_slice": lambda e, a: a[1:1] + 1,
    "sum_over_empty_axis": lambda e, a: fnp.sum(e, axis=0),
    "max_over_empty_axis": lambda e, a: fnp.max(e, axis=0, initial=-np.inf),
    "prod_over_empty_axis": lambda e, a: fnp.prod(e, axis=0),
    "mean_of_empty_rows": lambda e, a: fnp.mean(e, axis=1),
    "cumsum_empty": lambda e, a: fnp.cumsum(e, axis=0),
    "dot_k0": lambda e, a: e.T @ e,
    "dot_k0_plus": lambda e, a: fnp.zeros((2, 0)) @ fnp.zeros((0, 3)) + a,
    "gather_no_indices": lambda e, a: a[fnp.zeros((0,), fnp.int32)],
    "gather_fill_from_empty_axis": lambda e, a: fnp.asarray(e).at[fnp.array([0, 1])].get(mode="fill",
                                                                                         fill_value=3.0),
    "scatter_no_updates": lambda e, a: fnp.asarray(a).at[fnp.zeros((0,), fnp.int32)].add(1.0),
    "scatter_into_empty": lambda e, a: fnp.asarray(e).at[fnp.array([0, 1])].set(1.0),
    "dynamic_slice_size0": lambda e, a: lax.dynamic_slice(a, (1, 0), (0, 3)),
    "dynamic_update_slice_size0": lambda e, a: lax.dynamic_update_slice(a, fnp.zeros((0, 3)), (1, 0)),
    "vmap_concat": lambda e, a: fgrad.vmap(lambda r: fnp.concatenate([r, r]))(e),
    "vmap_concat_rows": lambda e, a: fgrad.vmap(lambda r: fnp.sum(fnp.concatenate([r, r])))(e.T),
    "grad_concat_empty": lambda e, a: fgrad.grad(lambda e: fnp.sum(fnp.concatenate([e, e, a])))(e),
    "grad_concat_mixed": lambda e, a: fgrad.grad(lambda a: fnp.sum(fnp.concatenate([e, a * a, e])))(a),
    "grad_sum_concat_empty": lambda e, a: fgrad.grad(lambda e: fnp.sum(fnp.sum(fnp.concatenate([e, e]), 0)))(e),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_size0_values_jit_natively_and_match_eager(name):
    f = CASES[name]
    want = np.asarray(f(E, A))
    before = pipeline.compiled_by_path["reference"]
    got = np.asarray(fgrad.jit(f)(E, A))
    assert pipeline.compiled_by_path["reference"] == before, f"{name} ran on the reference path"
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_concat_of_empty_pieces_reduces_to_zeros():
    # the repro; JAX gives [0, 0, 0]
    out = fgrad.jit(lambda x: fnp.sum(fnp.concatenate([x, x]), axis=0))(E)
    np.testing.assert_array_equal(np.asarray(out), np.zeros(3, np.float32))
    out = fgrad.jit(fgrad.vmap(lambda x: fnp.sum(fnp.concatenate([x, x]), axis=0)))(np.zeros((2, 0, 3), np.float32))
    np.testing.assert_array_equal(np.asarray(out), np.zeros((2, 3), np.float32))


@pytest.mark.parametrize("shape, sizes", [((3, 0), (0,)), ((3, 2, 2), (0, 2)), ((3, 4), (0,))])
def test_vmapped_size0_dynamic_slice_lowers_natively(shape, sizes):
    x = np.ones(shape, np.float32)
    starts = lambda i: (i,) + (0,) * (len(sizes) - 1)
    f = fgrad.vmap(lambda r, i: fnp.sum(lax.dynamic_slice(r, starts(i), sizes), axis=0))
    g = fgrad.vmap(lambda r, i: lax.dynamic_update_slice(r, fnp.zeros(sizes, fnp.float32), starts(i)))
    for h in (f, g):
        before = pipeline.compiled_by_path["reference"]
        got = fgrad.jit(h)(x, I3)
        assert pipeline.compiled_by_path["reference"] == before, "fell back to the reference path"
        np.testing.assert_array_equal(np.asarray(got), np.asarray(h(x, I3)))


def test_zero_size_gather_scatter_and_concat_gradient_compile_natively():
    # fuzz findings (fixed on main before this test): each ran on the reference path or crashed
    z04, z40, z30 = (np.zeros(s, np.float32) for s in ((0, 4), (4, 0), (3, 0)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", fgrad.ReferencePathWarning)
        assert fgrad.jit(lambda x: x[np.array([], bool)])(z04).shape == (0, 4)
        assert fgrad.jit(lambda v, u: v.at[np.array([3, 1, 3])].max(u))(z40, z30).shape == (4, 0)
        loss = lambda a, b: fnp.sum(fnp.concatenate([a, b], 1) * z40)
        value, (ga, gb) = fgrad.jit(fgrad.value_and_grad(loss, (0, 1)))(z40, z40)
    assert float(value) == 0.0 and ga.shape == gb.shape == (4, 0)
