"""Collectives under vmap(axis_name=...): each equals its definition over the mapped axis (NumPy),
for any batch dim, nested and multi-axis; their derivatives (psum ↔ psum, all_gather ↔
psum_scatter, ppermute ↔ inverse) and the unbound-name error."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fgrad import grad, jit, jvp, lax, make_jaxpr, vjp, vmap
from fgrad import numpy as fnp
from fgrad.core.ir import typecheck_jaxpr
from fgrad.ops.collective import UnboundAxisNameError
from tests.util import check_grads

shapes = st.tuples(st.integers(1, 4), st.integers(1, 3))


def arr(values, dtype=np.float32):
    return fnp.asarray(np.asarray(values, dtype))


def rand(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def per_member(fun, xs, axis=0):
    """vmap ``fun`` over ``axis`` of xs with the axis named 'i'; result with the batch at 0."""
    return np.asarray(vmap(fun, in_axes=axis, out_axes=0, axis_name="i")(arr(xs)))


@settings(max_examples=10, deadline=None)
@given(shapes, st.sampled_from([0, 1, -1]))
def test_all_reduces_match_numpy(shape, axis):
    xs = rand(shape)
    n = xs.shape[axis]
    for fun, reduce in ((lax.psum, np.sum), (lax.pmax, np.max), (lax.pmin, np.min), (lax.pmean, np.mean)):
        got = per_member(lambda v: fun(v, "i"), xs, axis)
        want = np.broadcast_to(reduce(xs, axis=axis), (n, *np.delete(np.array(xs.shape), axis % 2)))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_axis_index_and_psum_of_constants():
    assert per_member(lambda v: lax.axis_index("i"), np.zeros(4)).tolist() == [0, 1, 2, 3]
    assert per_member(lambda v: lax.psum(1, "i"), np.zeros(3)).tolist() == [3, 3, 3]
    assert per_member(lambda v: lax.psum(v.astype(np.int32), "i"), np.arange(4)).tolist() == [6] * 4
    assert per_member(lambda v: lax.axis_size("i") + v * 0, np.zeros(5)).tolist() == [5] * 5


@pytest.mark.parametrize("axis,tiled", [(0, False), (1, False), (0, True), (1, True)])
def test_all_gather(axis, tiled):
    xs = rand((3, 2, 4))
    got = per_member(lambda v: lax.all_gather(v, "i", axis=axis, tiled=tiled), xs)
    whole = np.concatenate(list(xs), axis=axis) if tiled else np.stack(list(xs), axis=axis)
    np.testing.assert_allclose(got, np.broadcast_to(whole, (3, *whole.shape)))


@pytest.mark.parametrize("dim,tiled", [(0, False), (1, False), (0, True), (1, True)])
def test_psum_scatter(dim, tiled):
    n = 3
    shape = [4, 4]
    shape[dim] = n * 2 if tiled else n
    xs = rand((n, *shape))
    got = per_member(lambda v: lax.psum_scatter(v, "i", scatter_dimension=dim, tiled=tiled), xs)
    total = xs.sum(0)
    blocks = np.split(total, n, axis=dim)
    want = np.stack([b if tiled else np.squeeze(b, dim) for b in blocks])
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_ppermute_ring_and_partial_permutations():
    xs = rand((4, 2))
    ring = [(i, (i + 1) % 4) for i in range(4)]
    np.testing.assert_allclose(per_member(lambda v: lax.ppermute(v, "i", ring), xs), np.roll(xs, 1, axis=0))
    got = per_member(lambda v: lax.ppermute(v, "i", [(0, 2), (3, 1)]), xs)
    want = np.zeros_like(xs)
    want[2], want[1] = xs[0], xs[3]
    np.testing.assert_allclose(got, want)
    bools = vmap(lambda v: lax.ppermute(v > 0, "i", ring), axis_name="i")(arr(xs))
    assert np.asarray(bools).tolist() == np.roll(xs > 0, 1, axis=0).tolist()


def test_pytrees_nested_axes_and_multiple_names():
    xs = rand((2, 3))
    out = vmap(lambda v: lax.psum({"a": v, "b": (v * 2.0,)}, "i"), axis_name="i")(arr(xs[0]))
    np.testing.assert_allclose(np.asarray(out["b"][0]), np.full(3, 2 * xs[0].sum()), rtol=1e-6)
    inner_sum = vmap(vmap(lambda v: lax.psum(v, "j"), axis_name="j"), axis_name="i")(arr(xs))
    np.testing.assert_allclose(np.asarray(inner_sum), np.broadcast_to(xs.sum(1, keepdims=True), xs.shape), rtol=1e-6)
    outer_sum = vmap(vmap(lambda v: lax.psum(v, "i"), axis_name="j"), axis_name="i")(arr(xs))
    np.testing.assert_allclose(np.asarray(outer_sum), np.broadcast_to(xs.sum(0), xs.shape), rtol=1e-6)
    both = vmap(vmap(lambda v: lax.psum(v, ("i", "j")), axis_name="j"), axis_name="i")(arr(xs))
    np.testing.assert_allclose(np.asarray(both), np.full(xs.shape, xs.sum()), rtol=1e-5)
    gathered = vmap(vmap(lambda v: lax.all_gather(v, "i"), axis_name="j"), axis_name="i")(arr(xs))
    np.testing.assert_allclose(np.asarray(gathered), np.broadcast_to(xs.T[None, :, :], (2, 3, 2)))
    index = vmap(vmap(lambda v: lax.axis_index("i") * 10 + lax.axis_index("j"), axis_name="j"), axis_name="i")(arr(xs))
    assert np.asarray(index).tolist() == [[0, 1, 2], [10, 11, 12]]


def test_collectives_inside_control_flow_and_jit():
    xs = rand((3, 4))
    carry, gathered = vmap(lambda v: lax.scan(lambda c, x: (c + lax.psum(x, "i"), lax.all_gather(x, "i")), 0.0, v),
                           axis_name="i")(arr(xs))
    np.testing.assert_allclose(np.asarray(carry), np.full(3, xs.sum()), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(gathered), np.broadcast_to(xs.T, (3, 4, 3)))
    branched = per_member(lambda v: lax.cond(fnp.sum(v) > 0, lambda u: lax.pmax(u, "i"), lambda u: -u, v), xs)
    for k in range(3):
        want = xs.max(0) if xs[k].sum() > 0 else -xs[k]
        np.testing.assert_allclose(branched[k], want)
    jitted = per_member(jit(lambda v: lax.psum(v * 2.0, "i")), xs)
    np.testing.assert_allclose(jitted, np.broadcast_to(2 * xs.sum(0), xs.shape), rtol=1e-5)


# --- differentiation ---------------------------------------------------------------------------------

def test_gradients_through_vmapped_collectives():
    xs = rand((3, 2))
    ring = [(i, (i + 1) % 3) for i in range(3)]

    def total(fun):
        return lambda x: fnp.sum(vmap(fun, axis_name="i")(x) * arr(np.arange(6).reshape(3, 2) - 2.0))
    for fun in (lambda v: lax.psum(fnp.sin(v), "i"), lambda v: lax.pmean(v * v, "i"),
                lambda v: fnp.sum(lax.all_gather(fnp.tanh(v), "i") * arr(rand((3, 2), 5)), 0), lambda v: lax.ppermute(v * v, "i", ring),
                lambda v: lax.pmax(v, "i") * v, lambda v: lax.psum_scatter(lax.all_gather(v * v, "i", tiled=True), "i", tiled=True)):
        check_grads(total(fun), (arr(xs),), order=2)


def test_pmax_gradient_splits_ties():
    x = arr([1.0, 5.0, 3.0, 5.0])
    g = grad(lambda x: fnp.sum(vmap(lambda v: lax.pmax(v, "i"), axis_name="i")(x)))(x)
    assert np.asarray(g).tolist() == [0.0, 2.0, 0.0, 2.0]


def test_transposes_psum_all_gather_psum_scatter_ppermute():
    """vjp inside the vmap transposes the collective itself (not its batched realisation)."""
    xs, n = rand((3, 2)), 3
    cts = rand((3, 2), seed=1)

    def pulled_back(fun, x, ct):
        return vmap(lambda v, c: vjp(fun, v)[1](c)[0], axis_name="i")(arr(x), arr(ct))
    # psum transposes to psum (JAX's convention)
    np.testing.assert_allclose(np.asarray(pulled_back(lambda v: lax.psum(v, "i"), xs, cts)),
                               np.broadcast_to(cts.sum(0), cts.shape), rtol=1e-6)
    # all_gather transposes to psum_scatter: member k receives sum over members of ct[k]
    gather_cts = rand((n, n, 2), seed=2)
    np.testing.assert_allclose(np.asarray(pulled_back(lambda v: lax.all_gather(v, "i"), xs, gather_cts)),
                               gather_cts.sum(0), rtol=1e-5)
    # psum_scatter transposes to all_gather
    scatter_in = rand((n, n, 2), seed=3)
    np.testing.assert_allclose(np.asarray(pulled_back(lambda v: lax.psum_scatter(v, "i"), scatter_in, cts)),
                               np.broadcast_to(cts, (n, n, 2)), rtol=1e-6)
    # ppermute transposes to the inverse permutation
    perm = [(0, 1), (1, 2), (2, 0)]
    np.testing.assert_allclose(np.asarray(pulled_back(lambda v: lax.ppermute(v, "i", perm), xs, cts)),
                               np.roll(cts, -1, axis=0))


def test_jvp_and_staging_of_collectives():
    xs, ts = rand((3, 2)), rand((3, 2), seed=1)
    out, t = jvp(vmap(lambda v: lax.psum(v * v, "i"), axis_name="i"), (arr(xs),), (arr(ts),))
    np.testing.assert_allclose(np.asarray(t), np.broadcast_to((2 * xs * ts).sum(0), xs.shape), rtol=1e-5)
    jaxpr = make_jaxpr(lambda v: lax.psum(v, "i"))(arr(xs[0]))  # staged for shard's per-device program
    typecheck_jaxpr(jaxpr.jaxpr)
    assert "psum[axis_name=('i',)]" in str(jaxpr)
    typecheck_jaxpr(make_jaxpr(vmap(lambda v: lax.all_gather(v, "i"), axis_name="i"))(arr(xs)).jaxpr)


# --- errors --------------------------------------------------------------------------------------------

def test_unbound_axis_names():
    x = arr([1.0, 2.0])
    for call in (lambda: lax.psum(x, "i"), lambda: lax.axis_index("i"), lambda: lax.all_gather(x, "i"),
                 lambda: lax.ppermute(x, "i", [(0, 1)]), lambda: vmap(lambda v: lax.psum(v, "j"), axis_name="i")(x),
                 lambda: vmap(lambda v: lax.pmax(v, "j"))(x)):
        with pytest.raises(UnboundAxisNameError, match=r"unbound axis name '[ij]'.*vmap\(\.\.\., axis_name="):
            call()
    assert issubclass(UnboundAxisNameError, NameError)


def test_bad_collective_arguments():
    x = arr([1.0, 2.0])
    with pytest.raises(ValueError, match="at most once"):
        vmap(lambda v: lax.ppermute(v, "i", [(0, 1), (1, 1)]), axis_name="i")(x)
    with pytest.raises(ValueError, match="outside the axis"):
        vmap(lambda v: lax.ppermute(v, "i", [(0, 5)]), axis_name="i")(x)
    with pytest.raises(TypeError, match="pairs"):
        vmap(lambda v: lax.ppermute(v, "i", [1, 2]), axis_name="i")(x)
    with pytest.raises(TypeError, match="axis size"):
        vmap(lambda v: lax.psum_scatter(v, "i"), axis_name="i")(arr(np.ones((2, 3))))
    with pytest.raises(TypeError, match="float"):
        vmap(lambda v: lax.pmean(v, "i"), axis_name="i")(arr([1, 2], np.int32))
