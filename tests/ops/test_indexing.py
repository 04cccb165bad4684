"""Index corners of the indexing primitives and the functions over them, with JAX's answers
as constants (checked against JAX 0.10.2): a negative dynamic_slice / dynamic_update_slice
start counts from the end, then clamps, eagerly, under jit, vmap and every derivative;
fnp indexing with traced ints wraps once and drops out-of-bounds updates; take's modes."""
import numpy as np
import pytest

import fgrad
from fgrad import lax
from fgrad import numpy as fnp
from fgrad.compile import pipeline

X6 = np.arange(6, dtype=np.float32)

# JAX: lax.dynamic_slice(arange(6.), (start,), (2,))
DS_JAX = {-2: [4, 5], -1: [4, 5], -6: [0, 1], -7: [0, 1], -100: [0, 1], 0: [0, 1], 3: [3, 4], 7: [4, 5]}
# JAX: lax.dynamic_update_slice(zeros(4), ones(n), (start,))
DUS_JAX = {(-1, 1): [0, 0, 0, 1], (-2, 2): [0, 0, 1, 1], (-9, 2): [1, 1, 0, 0], (-3, 1): [0, 1, 0, 0]}


def natively(f, *args):
    before = pipeline.compiled_by_path["reference"]
    out = np.asarray(fgrad.jit(f)(*args))
    assert pipeline.compiled_by_path["reference"] == before, "fell back to the reference path"
    return out


@pytest.mark.parametrize("start", sorted(DS_JAX))
def test_dynamic_slice_negative_start_counts_from_the_end(start):
    want = np.array(DS_JAX[start], np.float32)
    f = lambda x, i: lax.dynamic_slice(x, (i,), (2,))  # noqa: E731
    np.testing.assert_array_equal(np.asarray(f(X6, start)), want)  # a static start
    np.testing.assert_array_equal(np.asarray(f(X6, np.int32(start))), want)
    np.testing.assert_array_equal(natively(f, X6, np.int32(start)), want)
    np.testing.assert_array_equal(np.asarray(lax.dynamic_slice_in_dim(X6, np.int32(start), 2)), want)


@pytest.mark.parametrize("start, n", sorted(DUS_JAX))
def test_dynamic_update_slice_negative_start_counts_from_the_end(start, n):
    want = np.array(DUS_JAX[start, n], np.float32)
    f = lambda x, u, i: lax.dynamic_update_slice(x, u, (i,))  # noqa: E731
    z, u = np.zeros(4, np.float32), np.ones(n, np.float32)
    np.testing.assert_array_equal(np.asarray(f(z, u, start)), want)
    np.testing.assert_array_equal(np.asarray(f(z, u, np.int32(start))), want)
    np.testing.assert_array_equal(natively(f, z, u, np.int32(start)), want)


def test_negative_starts_under_vmap_and_jit_of_vmap():
    starts = np.array(sorted(DS_JAX), np.int32)
    want = np.array([DS_JAX[s] for s in sorted(DS_JAX)], np.float32)
    f = fgrad.vmap(lambda i: lax.dynamic_slice(X6, (i,), (2,)))
    np.testing.assert_array_equal(np.asarray(f(starts)), want)
    np.testing.assert_array_equal(natively(f, starts), want)
    xs = np.tile(X6, (len(starts), 1))
    g = fgrad.vmap(lambda x, i: lax.dynamic_slice(x, (i,), (2,)))
    np.testing.assert_array_equal(natively(g, xs, starts), want)
    keys = sorted(DUS_JAX)
    h = fgrad.vmap(lambda u, i: lax.dynamic_update_slice(fnp.zeros(4), u, (i,)))
    for n in (1, 2):
        ks = [k for k in keys if k[1] == n]
        st = np.array([k[0] for k in ks], np.int32)
        want = np.array([DUS_JAX[k] for k in ks], np.float32)
        np.testing.assert_array_equal(np.asarray(h(np.ones((len(ks), n), np.float32), st)), want)
        np.testing.assert_array_equal(natively(h, np.ones((len(ks), n), np.float32), st), want)


def test_negative_start_derivatives():
    w = np.arange(1, 3, dtype=np.float32)
    loss = lambda x, i: fnp.sum(lax.dynamic_slice(x, (i,), (2,)) * w)  # noqa: E731
    want = np.array([0, 0, 0, 0, 1, 2], np.float32)  # JAX: grad at start -2
    np.testing.assert_array_equal(np.asarray(fgrad.grad(loss)(X6, np.int32(-2))), want)
    np.testing.assert_array_equal(natively(fgrad.grad(loss), X6, np.int32(-2)), want)
    _, tangent = fgrad.jvp(lambda x: lax.dynamic_slice(x, (np.int32(-1),), (2,)), (X6,), (X6 * 10,))
    np.testing.assert_array_equal(np.asarray(tangent), [40, 50])
    put = lambda x, u, i: fnp.sum(lax.dynamic_update_slice(x, u, (i,)) * X6[:4])  # noqa: E731
    gx, gu = fgrad.grad(put, argnums=(0, 1))(np.ones(4, np.float32), np.ones(1, np.float32), np.int32(-1))
    np.testing.assert_array_equal(np.asarray(gx), [0, 1, 2, 0])  # the last element is overwritten
    np.testing.assert_array_equal(np.asarray(gu), [3])
    per_row = fgrad.vmap(fgrad.grad(loss), in_axes=(None, 0))(X6, np.array([-1, -6, 2], np.int32))
    np.testing.assert_array_equal(np.asarray(per_row), [[0, 0, 0, 0, 1, 2], [1, 2, 0, 0, 0, 0],
                                                        [0, 0, 1, 2, 0, 0]])


def test_start_index_dtypes():
    big = np.arange(300, dtype=np.float32)
    f = lambda x, i: lax.dynamic_slice(x, (i,), (2,))  # noqa: E731
    # unsigned starts are never negative: a huge one clamps to the end (JAX: [4, 5])
    np.testing.assert_array_equal(natively(f, X6, np.uint32(4_000_000_000)), [4, 5])
    np.testing.assert_array_equal(np.asarray(f(X6, np.uint8(250))), [4, 5])
    np.testing.assert_array_equal(np.asarray(f(big, np.int8(-2))), [298, 299])  # a static NumPy scalar
    np.testing.assert_array_equal(natively(f, big, np.uint8(250)), [250, 251])
    np.testing.assert_array_equal(np.asarray(f(X6, np.int64(-2))), [4, 5])
    np.testing.assert_array_equal(np.asarray(lax.dynamic_slice(X6, (np.int32(-2),), (2,),
                                                               allow_negative_indices=False)), [0, 1])


def test_dynamic_index_and_update_in_dim():
    m = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(np.asarray(lax.dynamic_index_in_dim(m, np.int32(-1), 1, keepdims=False)),
                                  m[:, 3])
    out = lax.dynamic_update_index_in_dim(m, np.zeros(4, np.float32), np.int32(-1), 0)
    want = m.copy()
    want[2] = 0
    np.testing.assert_array_equal(np.asarray(out), want)
    out = lax.dynamic_update_slice_in_dim(m, np.zeros((3, 2), np.float32), -2, 1)
    want = m.copy()
    want[:, 2:] = 0
    np.testing.assert_array_equal(np.asarray(out), want)


# --- fnp indexing with traced ints -----------------------------------------------------------------

@pytest.mark.parametrize("i, want", [(-1, 5), (-6, 0), (-7, 0), (-10, 0), (6, 5), (10, 5)])
def test_traced_int_index_wraps_once_then_clamps(i, want):
    # JAX: x[i] under jit
    assert float(natively(lambda x, i: fnp.asarray(x)[i], X6, np.int32(i))) == want


def test_traced_unsigned_index_clamps():
    assert float(natively(lambda x, i: fnp.asarray(x)[i], X6, np.uint8(200))) == 5  # JAX: 5.0
    assert float(natively(lambda x, i: fnp.asarray(x)[i], X6, np.uint32(4_000_000_000))) == 5


@pytest.mark.parametrize("i, changed", [(-1, 5), (-6, 0), (-7, None), (6, None), (100, None)])
def test_traced_int_update_drops_out_of_bounds(i, changed):
    want = X6.copy()
    if changed is not None:
        want[changed] = 9
    f = lambda x, i: fnp.asarray(x).at[i].set(9.0)  # noqa: E731
    np.testing.assert_array_equal(np.asarray(f(X6, np.int32(i))), want)
    np.testing.assert_array_equal(natively(f, X6, np.int32(i)), want)
    add = lambda x, i: fnp.asarray(x).at[i].add(4.0)  # noqa: E731
    want_add = X6.copy()
    if changed is not None:
        want_add[changed] += 4
    np.testing.assert_array_equal(natively(add, X6, np.int32(i)), want_add)


def test_traced_row_update_drops_out_of_bounds_rows():
    m = np.arange(12, dtype=np.float32).reshape(3, 4)
    f = lambda m, i: fnp.asarray(m).at[i, 1:3].set(0.0)  # noqa: E731
    for i in (-4, 3):  # JAX: unchanged
        np.testing.assert_array_equal(natively(f, m, np.int32(i)), m)
    want = m.copy()
    want[2, 1:3] = 0
    np.testing.assert_array_equal(natively(f, m, np.int32(-1)), want)
    np.testing.assert_array_equal(natively(lambda m, i: fnp.asarray(m).at[i].set(1.0), m, np.uint8(200)), m)


# --- scatter-mul derivatives: products only, exact at zeros and to second order ------------------

SMUL_IDX = np.array([0, 2, 2, 3], np.int32)  # position 2 is hit twice
SMUL_W = np.array([1, 2, 3, 4, 5], np.float32)


def _smul_loss(x, u):
    return fnp.sum(SMUL_W * fnp.asarray(x).at[SMUL_IDX].multiply(u))


def _smul_hessians(x, u):
    """Analytic d2/du2 and d2/dx du of _smul_loss (a Python loop over the updates)."""
    huu, hxu = np.zeros((4, 4)), np.zeros((4, 5))
    for j, p in enumerate(SMUL_IDX):
        others = [k for k in range(4) if k != j and SMUL_IDX[k] == p]
        hxu[j, p] = SMUL_W[p] * np.prod(u[others])
        for k in others:
            huu[j, k] = SMUL_W[p] * x[p] * np.prod(u[[o for o in others if o != k]])
    return huu, hxu


@pytest.mark.parametrize("x, u", [
    ([1, 2, 0, 4, 5], [2, 3, 0, 0.5]),      # a zero in the operand and in a duplicated update
    ([1, 2, 3, 0, 5], [2, 0, 0, 0.5]),      # both duplicates zero: d2/du1du2 = w*x is not 0
    ([1, 2, 3, 4, 5], [2, 3, 0.7, 0.5]),
    ([0, 2, 3, 4, 5], [0, 3, 0.7, 0]),      # zeros at unique positions
])
def test_scatter_mul_derivatives_exact(x, u):
    x, u = np.array(x, np.float32), np.array(u, np.float32)
    gx, gu = fgrad.grad(_smul_loss, argnums=(0, 1))(x, u)
    prod_at = np.ones(5, np.float32)
    for j, p in enumerate(SMUL_IDX):
        prod_at[p] *= u[j]
    np.testing.assert_allclose(np.asarray(gx), SMUL_W * prod_at, rtol=1e-6)
    want_gu = [SMUL_W[p] * x[p] * np.prod([u[k] for k in range(4) if k != j and SMUL_IDX[k] == p])
               for j, p in enumerate(SMUL_IDX)]
    np.testing.assert_allclose(np.asarray(gu), want_gu, rtol=1e-6)
    huu, hxu = _smul_hessians(x, u)
    # exactly: no division, so no rounding residual where the true second derivative is 0
    np.testing.assert_array_equal(np.asarray(fgrad.hessian(lambda u: _smul_loss(x, u))(u)), huu.astype(np.float32))
    got_hxu = fgrad.jacfwd(fgrad.grad(_smul_loss, argnums=1), argnums=0)(x, u)
    np.testing.assert_allclose(np.asarray(got_hxu), hxu, rtol=1e-6, atol=0)
    np.testing.assert_allclose(natively(fgrad.grad(_smul_loss, argnums=1), x, u), want_gu, rtol=1e-6)


def test_scatter_mul_unique_indices_second_derivative_is_zero():
    # JAX's rule for unique indices: d out / d u = x at the position, with no u in it (the old
    # rule divided the position's product by u, leaving rounding residuals in the Hessian)
    rng = np.random.default_rng(1)  # a draw where the old rule left a 1.6e-7 residual
    x = rng.normal(size=7).astype(np.float32)
    u = rng.normal(size=5).astype(np.float32) * 3
    idx = np.array([2, 0, 6, 1, 4], np.int32)
    w = rng.normal(size=7).astype(np.float32)
    loss = lambda u: fnp.sum(w * fnp.asarray(x).at[idx].multiply(u))  # noqa: E731
    np.testing.assert_array_equal(np.asarray(fgrad.hessian(loss)(u)), np.zeros((5, 5), np.float32))
    np.testing.assert_array_equal(np.asarray(fgrad.grad(loss)(u)), (w * x)[idx])
    np.testing.assert_array_equal(natively(fgrad.hessian(loss), u), np.zeros((5, 5), np.float32))


def test_scatter_mul_many_duplicates_first_derivative():
    # past the pairwise table's size the duplicates' rule divides; first derivatives stay right
    m = 2100
    idx = (np.arange(m) % 7).astype(np.int32)
    u = np.where(np.arange(m) % 5 == 0, 1.0, 1.0001).astype(np.float32)
    u[3] = 0.0  # one zero at position 3
    x = np.arange(1, 8, dtype=np.float32)
    gu = np.asarray(fgrad.grad(lambda u: fnp.sum(fnp.asarray(x).at[idx].multiply(u)))(u))
    u64 = u.astype(np.float64)
    want = np.array([x[p] * np.prod(u64[(idx == p) & (np.arange(m) != j)]) for j, p in enumerate(idx)])
    np.testing.assert_allclose(gu, want, rtol=1e-4, atol=1e-6)
