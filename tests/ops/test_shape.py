"""Shape primitives: eager results vs NumPy and Python-loop oracles on hypothesis-drawn shapes
(0-size and size-1 dimensions, scalars) and dtypes; one test per shape-rule error; the
documented index semantics (clamping, fill, dropping, duplicates); derivatives vs finite
differences to second order; vmap vs a Python loop with in_axes 0, 1, -1 and None; staged
jaxprs (forward, jvp, vjp, vmap) type-check."""
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import fgrad
from fgrad import lax
from fgrad import numpy as fnp
from fgrad.core.ir import typecheck_jaxpr

from tests.util import check_grads, check_vmap

DTYPES = [np.dtype(t) for t in (np.float32, np.int32, np.uint8, np.bool_)]
FEW = settings(max_examples=15, deadline=None)
GRADS = settings(max_examples=5, deadline=None)


def shapes(min_dims=0, max_dims=3, min_side=0, max_side=4):
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def elements(dtype):
    if dtype.kind == "b":
        return st.booleans()
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return st.integers(int(info.min), int(info.max))
    return st.floats(-100, 100, width=32)


@st.composite
def arrays(draw, shape=None, dtype=None, **shape_kw):
    shape = draw(shapes(**shape_kw)) if shape is None else shape
    dtype = draw(st.sampled_from(DTYPES)) if dtype is None else np.dtype(dtype)
    return draw(hnp.arrays(dtype, shape, elements=elements(dtype)))


def run(fn, *args, **params):
    """Apply an fgrad op eagerly to fgrad Arrays made from NumPy arrays; NumPy back."""
    wrapped = [fnp.asarray(a) if isinstance(a, np.ndarray) else a for a in args]
    return np.asarray(fn(*wrapped, **params))


def assert_same(got, want):
    want = np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    np.testing.assert_array_equal(got, want)


# --- oracles ---------------------------------------------------------------------------------

def window_start(start, size, window):
    """JAX's rule: a negative start counts from the end, then the window is clamped to fit."""
    start = int(start) + (size if start < 0 else 0)
    return min(max(start, 0), size - window)


def gather_oracle(x, indices, axes, mode="clip", fill_value=0):
    batch = indices.shape[:-1]
    rest = [x.shape[d] for d in range(x.ndim) if d not in axes]
    out = np.empty((*batch, *rest), x.dtype)
    for b in np.ndindex(*batch):
        vector = [int(v) for v in indices[b]]
        if mode == "fill" and not all(0 <= v < x.shape[a] for v, a in zip(vector, axes)):
            out[b] = fill_value
            continue
        key = [slice(None)] * x.ndim
        for v, a in zip(vector, axes):
            key[a] = min(max(v, 0), x.shape[a] - 1)
        out[b] = x[tuple(key)]
    return out


COMBINE = {"set": lambda old, new: new, "add": np.add, "max": np.maximum, "min": np.minimum,
           "mul": np.multiply}


def scatter_oracle(x, indices, updates, axes, mode):
    out = x.copy()
    for b in np.ndindex(*indices.shape[:-1]):
        vector = [int(v) for v in indices[b]]
        if not all(0 <= v < x.shape[a] for v, a in zip(vector, axes)):
            continue  # dropped
        key = [slice(None)] * x.ndim
        for v, a in zip(vector, axes):
            key[a] = v
        key = tuple(key)
        out[key] = COMBINE[mode](out[key], updates[b])
    return out


def pad_oracle(x, value, config):
    out_shape = [lo + hi + n + max(n - 1, 0) * i for n, (lo, hi, i) in zip(x.shape, config)]
    out = np.full(out_shape, value, x.dtype)
    for idx in np.ndindex(*x.shape):
        pos = tuple(lo + j * (i + 1) for j, (lo, _, i) in zip(idx, config))
        if all(0 <= p < n for p, n in zip(pos, out_shape)):
            out[pos] = x[idx]
    return out


# --- eager results ---------------------------------------------------------------------------

@FEW
@given(st.data())
def test_squeeze(data):
    x = data.draw(arrays(max_dims=4, max_side=2))
    ones = [d for d, s in enumerate(x.shape) if s == 1]
    dims = data.draw(st.lists(st.sampled_from(ones), unique=True)) if ones else []
    dims = [d - x.ndim if data.draw(st.booleans()) else d for d in dims]
    assert_same(run(lax.squeeze, x, dims), np.squeeze(x, axis=tuple(dims)))


@FEW
@given(st.data())
def test_expand_dims(data):
    x = data.draw(arrays())
    k = data.draw(st.integers(0, 3))
    dims = data.draw(st.lists(st.integers(0, x.ndim + k - 1), min_size=k, max_size=k, unique=True)) if k else []
    dims = [d - (x.ndim + k) if data.draw(st.booleans()) else d for d in dims]
    assert_same(run(lax.expand_dims, x, dims), np.expand_dims(x, tuple(dims)))


@FEW
@given(st.data())
def test_slice(data):
    x = data.draw(arrays())
    starts, limits, strides = [], [], []
    for n in x.shape:
        lo = data.draw(st.integers(0, n))
        starts.append(lo)
        limits.append(data.draw(st.integers(lo, n)))
        strides.append(data.draw(st.integers(1, 3)))
    want = x[tuple(slice(a, b, s) for a, b, s in zip(starts, limits, strides))]
    assert_same(run(lax.slice, x, starts, limits, strides), want)
    if x.ndim:
        axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
        lo, hi = data.draw(st.integers(-x.shape[axis], x.shape[axis])), x.shape[axis]
        key = [slice(None)] * x.ndim
        key[axis] = slice(lo, hi)
        assert_same(run(lax.slice_in_dim, x, lo, None, axis=axis), x[tuple(key)])


@FEW
@given(st.data())
def test_dynamic_slice_clamps_starts(data):
    x = data.draw(arrays())
    sizes = [data.draw(st.integers(0, n)) for n in x.shape]
    starts = [data.draw(st.integers(-3, n + 3)) for n in x.shape]
    clamped = [window_start(s, n, w) for s, n, w in zip(starts, x.shape, sizes)]
    want = x[tuple(slice(s, s + w) for s, w in zip(clamped, sizes))]
    assert_same(run(lax.dynamic_slice, x, starts, sizes), want)
    traced = [fnp.asarray(np.int32(s)) for s in starts]  # Arrays as starts, as under a transform
    assert_same(run(lax.dynamic_slice, x, traced, sizes), want)
    if x.ndim:
        assert_same(run(lax.dynamic_slice, x, np.array(starts, np.int32), sizes), want)


@FEW
@given(st.data())
def test_dynamic_update_slice_clamps_starts(data):
    x = data.draw(arrays())
    update = data.draw(arrays(shape=tuple(data.draw(st.integers(0, n)) for n in x.shape), dtype=x.dtype))
    starts = [data.draw(st.integers(-3, n + 3)) for n in x.shape]
    want = x.copy()
    clamped = [window_start(s, n, w) for s, n, w in zip(starts, x.shape, update.shape)]
    want[tuple(slice(s, s + w) for s, w in zip(clamped, update.shape))] = update
    assert_same(run(lax.dynamic_update_slice, x, update, [np.int32(s) for s in starts]), want)


def test_dynamic_slice_under_jit_with_traced_start():
    x = np.arange(10, dtype=np.float32)
    f = fgrad.jit(lambda x, i: lax.dynamic_slice_in_dim(x, i, 3))
    for i in (-4, 0, 5, 9, 100):
        assert_same(np.asarray(f(fnp.asarray(x), fnp.asarray(np.int32(i)))), x[window_start(i, 10, 3):][:3])
    g = fgrad.jit(lambda x, i: lax.dynamic_index_in_dim(x, i, keepdims=False))
    assert_same(np.asarray(g(fnp.asarray(x), fnp.asarray(np.int32(-1)))), x[9])  # JAX: counts from the end


@st.composite
def gather_args(draw, dtypes=DTYPES):
    x = draw(arrays(dtype=draw(st.sampled_from(dtypes)), min_dims=1))
    k = draw(st.integers(0, x.ndim))
    axes = tuple(draw(st.permutations(range(x.ndim)))[:k])
    batch = draw(shapes(max_dims=2, max_side=3))
    columns = [draw(hnp.arrays(np.int32, batch, elements=st.integers(-2, x.shape[a] + 1))) for a in axes]
    indices = np.stack(columns, -1) if columns else np.zeros((*batch, 0), np.int32)
    return x, indices, axes


@FEW
@given(gather_args(), st.sampled_from(["clip", "fill"]))
def test_gather_clips_or_fills(args, mode):
    x, indices, axes = args
    if mode == "clip":
        assume(int(np.prod(indices.shape[:-1])) == 0 or all(x.shape[a] for a in axes))
    fill = np.asarray(1, x.dtype).item()
    got = run(lax.gather, x, indices, axes, mode=mode, fill_value=fill if mode == "fill" else None)
    assert_same(got, gather_oracle(x, indices, axes, mode, fill))


@FEW
@given(st.data())
def test_gather_expresses_numpy_integer_array_indexing(data):
    x = data.draw(arrays(dtype=np.float32, min_dims=3, max_dims=3, min_side=1))
    bshape = data.draw(shapes(max_dims=2, max_side=3))
    i, j, k = (data.draw(hnp.arrays(np.int32, bshape, elements=st.integers(0, x.shape[a] - 1)))
               for a in range(3))
    nb = len(bshape)
    # x[i]: batch dims first
    assert_same(run(lax.gather, x, i[..., None], (0,)), x[i])
    # x[:, j]: NumPy keeps the batch dims in place of axis 1
    got = run(lambda a: lax.transpose(lax.gather(a, j[..., None], (1,)), (nb, *range(nb), nb + 1)), x)
    assert_same(got, x[:, j])
    # x[i, j]: adjacent index arrays, stacked on a last axis
    assert_same(run(lax.gather, x, np.stack([i, j], -1), (0, 1)), x[i, j])
    # x[i, :, k]: non-adjacent, NumPy also puts the batch dims first
    assert_same(run(lax.gather, x, np.stack([i, k], -1), (0, 2)), x[i, :, k])


@FEW
@given(st.data())
def test_take_and_take_along_axis(data):
    x = data.draw(arrays(min_dims=1, min_side=1))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    n = x.shape[axis]
    idx = data.draw(hnp.arrays(np.int32, data.draw(shapes(max_dims=2)), elements=st.integers(-2, n + 2)))
    assert_same(run(lax.take, x, idx, axis), np.take(x, np.clip(idx, 0, n - 1), axis))
    along_shape = tuple(data.draw(st.integers(0, 3)) if d == axis % x.ndim else
                        data.draw(st.sampled_from([1, s])) for d, s in enumerate(x.shape))
    along = data.draw(hnp.arrays(np.int32, along_shape, elements=st.integers(0, n - 1)))
    want = np.take_along_axis(x, np.broadcast_to(along, tuple(
        a if d == axis % x.ndim else s for d, (a, s) in enumerate(zip(along_shape, x.shape)))), axis)
    assert_same(run(lax.take_along_axis, x, along, axis), want)


@FEW
@given(gather_args(dtypes=[np.dtype(np.float32), np.dtype(np.int32), np.dtype(np.uint8)]),
       st.sampled_from(["set", "add", "max", "min", "mul"]), st.data())
def test_scatter_combines_duplicates_and_drops_out_of_bounds(args, mode, data):
    x, indices, axes = args
    out_shape = (*indices.shape[:-1], *[x.shape[d] for d in range(x.ndim) if d not in axes])
    updates = data.draw(hnp.arrays(x.dtype, out_shape, elements=elements(x.dtype)))
    got = run(lax.scatter, x, indices, updates, axes, mode=mode)
    assert_same(got, scatter_oracle(x, indices, updates, axes, mode))


@FEW
@given(st.data())
def test_pad(data):
    x = data.draw(arrays())
    config = [(data.draw(st.integers(-3, 3)), data.draw(st.integers(-3, 3)), data.draw(st.integers(0, 2)))
              for _ in x.shape]
    assume(all(lo + hi + n + max(n - 1, 0) * i >= 0 for n, (lo, hi, i) in zip(x.shape, config)))
    value = data.draw(elements(x.dtype))
    value = np.asarray(value, x.dtype)[()]
    assert_same(run(lax.pad, x, value, config), pad_oracle(x, value, config))


@FEW
@given(st.data())
def test_concatenate(data):
    base = data.draw(shapes(min_dims=1))
    dtype = data.draw(st.sampled_from(DTYPES))
    axis = data.draw(st.integers(-len(base), len(base) - 1))
    parts = []
    for _ in range(data.draw(st.integers(1, 3))):
        shape = list(base)
        shape[axis] = data.draw(st.integers(0, 3))
        parts.append(data.draw(arrays(shape=tuple(shape), dtype=dtype)))
    got = np.asarray(lax.concatenate([fnp.asarray(p) for p in parts], axis))
    assert_same(got, np.concatenate(parts, axis))


@FEW
@given(st.data())
def test_rev(data):
    x = data.draw(arrays())
    dims = data.draw(st.lists(st.integers(0, x.ndim - 1), unique=True)) if x.ndim else []
    assert_same(run(lax.rev, x, dims), np.flip(x, tuple(dims)))


@FEW
@given(shapes(min_dims=1), st.sampled_from([np.int32, np.float32, np.uint8]), st.data())
def test_iota(shape, dtype, data):
    dim = data.draw(st.integers(0, len(shape) - 1))
    want = np.broadcast_to(np.arange(shape[dim], dtype=dtype).reshape(
        [-1 if d == dim else 1 for d in range(len(shape))]), shape)
    assert_same(np.asarray(lax.iota(dtype, shape, dim)), want)
    assert_same(np.asarray(lax.iota(np.int32, 5)), np.arange(5, dtype=np.int32))


def test_full_like_and_zeros_like():
    x = fnp.asarray(np.ones((2, 3), np.uint8))
    assert_same(np.asarray(lax.zeros_like(x)), np.zeros((2, 3), np.uint8))
    assert_same(np.asarray(lax.full_like(x, 7, np.float32, (4,))), np.full((4,), 7, np.float32))


# --- index semantics the numpy layer relies on -------------------------------------------

def test_gather_transposes_to_scatter_add_of_the_positions_read():
    x = fnp.asarray(np.arange(4.0, dtype=np.float32))
    idx = np.array([[1], [1], [-5], [9]], np.int32)
    g = fgrad.grad(lambda x: lax.reduce_sum(lax.gather(x, idx, 0), (0,)))(x)
    assert_same(np.asarray(g), np.array([1, 2, 0, 1], np.float32))  # clip reads 0 and 3
    g = fgrad.grad(lambda x: lax.reduce_sum(lax.gather(x, idx, 0, mode="fill", fill_value=5.0), (0,)))(x)
    assert_same(np.asarray(g), np.array([0, 2, 0, 0], np.float32))  # filled positions read nothing


def test_scatter_set_gradient_goes_to_the_update_that_lands():
    x = np.arange(4.0, dtype=np.float32)
    idx = np.array([[1], [1], [2], [7]], np.int32)
    u = np.array([10.0, 20.0, 30.0, 40.0], np.float32)
    out = lax.scatter(fnp.asarray(x), idx, fnp.asarray(u), 0)
    assert_same(np.asarray(out), np.array([0, 20, 30, 3], np.float32))  # the last duplicate wins
    w = fnp.asarray(np.array([1.0, 2.0, 3.0, 4.0], np.float32))
    loss = lambda x, u: lax.reduce_sum(lax.mul(lax.scatter(x, idx, u, 0), w), (0,))
    gx, gu = fgrad.grad(loss, argnums=(0, 1))(fnp.asarray(x), fnp.asarray(u))
    assert_same(np.asarray(gx), np.array([1, 0, 0, 4], np.float32))
    assert_same(np.asarray(gu), np.array([0, 2, 3, 0], np.float32))


def test_scatter_extremum_and_product_derivatives_at_ties_and_zeros():
    x = fnp.asarray(np.array([1.0, 0.0], np.float32))
    idx = np.array([[0], [0], [1], [1]], np.int32)
    u = fnp.asarray(np.array([1.0, 0.5, 0.0, 3.0], np.float32))
    gx, gu = fgrad.grad(lambda x, u: lax.reduce_sum(lax.scatter_max(x, idx, u, 0), (0,)), (0, 1))(x, u)
    assert_same(np.asarray(gx), np.array([0.5, 0], np.float32))  # a tie splits the tangent
    assert_same(np.asarray(gu), np.array([0.5, 0, 0, 1], np.float32))
    x2 = fnp.asarray(np.array([2.0, 5.0], np.float32))
    gx, gu = fgrad.grad(lambda x, u: lax.reduce_sum(lax.scatter_mul(x, idx, u, 0), (0,)), (0, 1))(x2, u)
    assert_same(np.asarray(gx), np.array([0.5, 0], np.float32))
    assert_same(np.asarray(gu), np.array([1.0, 2.0, 15.0, 0.0], np.float32))  # exact at the zero


@pytest.mark.parametrize("jitted", [False, True])
@pytest.mark.parametrize("mode", ["max", "min"])
def test_scatter_extremum_derivatives_with_nans_follow_jax(mode, jitted):
    """JAX's rule: an untouched position passes its tangent through even where its value is
    NaN; at indexed positions the tangents are multiplied by their shares (0 for values that
    do not attain the result), so a NaN or infinite tangent there propagates. Expected values
    worked out by hand from that rule (and checked against JAX 0.10.2)."""
    F32 = lambda v: np.array(v, np.float32)  # noqa: E731
    wrap = fgrad.jit if jitted else (lambda f: f)
    idx = np.array([[0], [2]], np.int32)
    scatter = lax.scatter_max if mode == "max" else lax.scatter_min
    f = wrap(lambda x, u: scatter(x, idx, u, 0))
    x = F32([1.0, np.nan, 3.0])
    u = F32([4.0, 3.0]) if mode == "max" else F32([0.0, 3.0])
    _, t = fgrad.jvp(f, (x, u), (F32([1.0, 10.0, 100.0]), F32([1e3, 1e4])))
    assert_same(np.asarray(t), F32([1e3, 10.0, 5050.0]))           # the NaN keeps its tangent; a tie shares
    x = F32([1.0, 5.0, 3.0])
    _, pull = fgrad.vjp(f, x, u)
    gx, gu = pull(F32([np.nan, 2.0, np.inf]))
    assert_same(np.asarray(gx), F32([np.nan, 2.0, np.nan]))   # NaN * 0 and inf * (1/2 - 1) + inf
    assert_same(np.asarray(gu), F32([np.nan, np.inf]))


@pytest.mark.parametrize("jitted", [False, True])
def test_scatter_mul_derivatives_with_infinities_follow_jax(jitted):
    """JAX's rule for a "mul" scatter with unique indices: d/du is ``x * scatter_add(0, i, t)``
    (an infinite operand nowhere indexed gives NaN: inf * 0) and the updates' cotangent is
    ``gather(ct * x)``, with no product of other updates multiplying an infinite cotangent.
    The Hessian-vector product of w . arcsin(x.at[idx].multiply(u)) where arcsin' is infinite
    (recorded from JAX 0.10.2)."""
    x, u = np.array([1.0, -1.0, 0.5, 1.0]), np.array([2.0, 0.5])
    w, idx = np.array([0.3, -0.7, 1.1, 0.5]), np.array([2, 0])
    with fgrad.config.override(enable_x64=True):
        grad = fgrad.grad(lambda x, u: fnp.sum(w * fnp.arcsin(x.at[idx].multiply(u, unique_indices=True))),
                          argnums=(0, 1))
        hvp = lambda x, u: fgrad.jvp(grad, (x, u), (np.array([0.5, 2.0, -1.0, 0.0]), np.array([1.0, -1.0])))[1]
        hx, hu = (fgrad.jit(hvp) if jitted else hvp)(x, u)
    np.testing.assert_allclose(np.asarray(hx), [-0.4330127018922193, np.nan, np.nan, np.nan], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(hu), [-np.inf, 0.0], atol=1e-12)


# --- shape-rule errors ---------------------------------------------------------------------

F = lambda *shape: fnp.asarray(np.zeros(shape, np.float32))  # noqa: E731
I = lambda *shape: fnp.asarray(np.zeros(shape, np.int32))  # noqa: E731

ERRORS = {
    "squeeze_non_unit": (lambda: lax.squeeze(F(2, 3), (0,)), TypeError, "cannot squeeze dimension 0"),
    "squeeze_axis_range": (lambda: lax.squeeze(F(1), (3,)), ValueError, "out of range"),
    "expand_dims_repeated": (lambda: lax.expand_dims(F(2), (0, 0)), ValueError, "repeated"),
    "slice_out_of_bounds": (lambda: lax.slice(F(3), (1,), (5,)), TypeError, "limit (5) <= size (3)"),
    "slice_rank": (lambda: lax.slice(F(3, 3), (0,), (1,)), TypeError, "one entry per dimension"),
    "slice_stride": (lambda: lax.slice(F(3), (0,), (3,), (0,)), TypeError, "strides must be >= 1"),
    "dynamic_slice_count": (lambda: lax.dynamic_slice(F(3, 3), (0,), (1, 1)), TypeError, "one per dimension"),
    "dynamic_slice_float_start": (lambda: lax.dynamic_slice(F(3), (F(),), (1,)), TypeError, "integer scalars"),
    "dynamic_slice_too_big": (lambda: lax.dynamic_slice(F(3), (0,), (4,)), TypeError, "within the operand"),
    "dynamic_update_dtype": (lambda: lax.dynamic_update_slice(F(3), I(1), (0,)), TypeError, "dtype"),
    "dynamic_update_too_big": (lambda: lax.dynamic_update_slice(F(3), F(4), (0,)), TypeError, "fit"),
    "gather_float_indices": (lambda: lax.gather(F(3), F(2, 1), 0), TypeError, "indices must be integers"),
    "gather_index_depth": (lambda: lax.gather(F(3, 3), I(2, 1), (0, 1)), TypeError, "len(axes) = 2"),
    "gather_empty_axis": (lambda: lax.gather(F(0, 2), I(2, 1), 0), TypeError, "mode='fill'"),
    "gather_mode": (lambda: lax.gather(F(3), I(2, 1), 0, mode="wrap"), ValueError, "mode must be"),
    "scatter_updates_shape": (lambda: lax.scatter(F(3, 2), I(4, 1), F(4, 3), 0), TypeError, "(4, 2)"),
    "scatter_updates_dtype": (lambda: lax.scatter(F(3), I(4, 1), I(4), 0), TypeError, "dtype"),
    "scatter_mode": (lambda: lax.scatter(F(3), I(4, 1), F(4), 0, mode="sub"), ValueError, "mode must be"),
    "pad_negative_size": (lambda: lax.pad(F(2), 0.0, [(-2, -1, 0)]), TypeError, "negative size"),
    "pad_interior": (lambda: lax.pad(F(2), 0.0, [(0, 0, -1)]), TypeError, "interior"),
    "pad_value_dtype": (lambda: lax.pad(F(2), np.int32(0), [(0, 0, 0)]), TypeError, "padding_value"),
    "concatenate_dtype": (lambda: lax.concatenate([F(2), I(2)], 0), TypeError, "one dtype"),
    "concatenate_shapes": (lambda: lax.concatenate([F(2, 3), F(2, 4)], 0), TypeError, "equal shapes"),
    "concatenate_scalars": (lambda: lax.concatenate([F(), F()], 0), TypeError, "Scalars"),
    "concatenate_nothing": (lambda: lax.concatenate([], 0), ValueError, "at least one"),
    "rev_repeated": (lambda: lax.rev(F(2), (0, -1)), ValueError, "repeated"),
    "iota_bool": (lambda: lax.iota(np.bool_, (3,)), TypeError, "numeric"),
    "iota_dimension": (lambda: lax.iota(np.int32, (3,), 2), TypeError, "dimension 2"),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_errors_name_the_mistake(name):
    fn, exc, fragment = ERRORS[name]
    with pytest.raises(exc) as info:
        fn()
    assert fragment in str(info.value), str(info.value)


# --- derivatives, vmap and staging over one table of cases ------------------------------
# A case draws static parameters (shapes, axes, modes) with hypothesis and returns
# ``(f, sample)``: ``sample(rng)`` gives fresh argument values of fixed shapes.

def normal(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


def index_array(rng, batch, sizes):
    """int32 index vectors over ``sizes`` (out of bounds by up to 1 on both sides)."""
    columns = [rng.integers(-1, n + 1, batch) for n in sizes]
    return (np.stack(columns, -1) if columns else np.zeros((*batch, 0))).astype(np.int32)


@st.composite
def squeeze_case(draw):
    shape = draw(shapes(max_dims=3, max_side=2))
    dims = [d for d, s in enumerate(shape) if s == 1]
    return (lambda x: lax.squeeze(x, dims)), lambda rng: (normal(rng, shape),)


@st.composite
def expand_dims_case(draw):
    shape = draw(shapes())
    dims = draw(st.lists(st.integers(0, len(shape) + 1), min_size=2, max_size=2, unique=True))
    return (lambda x: lax.expand_dims(x, dims)), lambda rng: (normal(rng, shape),)


@st.composite
def slice_case(draw):
    shape = draw(shapes())
    starts = [draw(st.integers(0, n)) for n in shape]
    limits = [draw(st.integers(s, n)) for s, n in zip(starts, shape)]
    strides = [draw(st.integers(1, 2)) for _ in shape]
    return (lambda x: lax.slice(x, starts, limits, strides)), lambda rng: (normal(rng, shape),)


@st.composite
def dynamic_slice_case(draw):
    shape = draw(shapes(min_dims=1))
    sizes = [draw(st.integers(0, n)) for n in shape]
    starts = lambda rng: [np.int32(rng.integers(-2, n + 2)) for n in shape]  # noqa: E731
    return (lambda x, *s: lax.dynamic_slice(x, s, sizes)), lambda rng: (normal(rng, shape), *starts(rng))


@st.composite
def dynamic_update_slice_case(draw):
    shape = draw(shapes(min_dims=1))
    window = tuple(draw(st.integers(0, n)) for n in shape)

    def sample(rng):
        return (normal(rng, shape), normal(rng, window), *[np.int32(rng.integers(-2, n + 2)) for n in shape])
    return (lambda x, u, *s: lax.dynamic_update_slice(x, u, s)), sample


@st.composite
def gather_case(draw):
    shape = draw(shapes(min_dims=1, max_dims=3))
    axes = tuple(draw(st.permutations(range(len(shape))))[:draw(st.integers(1, len(shape)))])
    batch = draw(shapes(max_dims=2, max_side=3))
    mode = draw(st.sampled_from(["clip", "fill"]))
    if any(shape[a] == 0 for a in axes):
        mode = "fill"
    fill = draw(st.sampled_from([None, 2.5]))

    def sample(rng):
        return normal(rng, shape), index_array(rng, batch, [shape[a] for a in axes])
    return (lambda x, i: lax.gather(x, i, axes, mode=mode, fill_value=fill)), sample


@st.composite
def take_along_axis_case(draw):
    shape = draw(shapes(min_dims=1, min_side=1))
    axis = draw(st.integers(0, len(shape) - 1))
    k = draw(st.integers(0, 3))
    idx_shape = tuple(k if d == axis else s for d, s in enumerate(shape))

    def sample(rng):
        return normal(rng, shape), rng.integers(0, shape[axis], idx_shape).astype(np.int32)
    return (lambda x, i: lax.take_along_axis(x, i, axis)), sample


def scatter_case(mode):
    @st.composite
    def case(draw):
        shape = draw(shapes(min_dims=1, max_dims=3))
        axes = tuple(draw(st.permutations(range(len(shape))))[:draw(st.integers(1, len(shape)))])
        batch = draw(shapes(max_dims=2, max_side=3))
        updates = (*batch, *[shape[d] for d in range(len(shape)) if d not in axes])

        def sample(rng):
            return normal(rng, shape), index_array(rng, batch, [shape[a] for a in axes]), normal(rng, updates)
        return (lambda x, i, u: lax.scatter(x, i, u, axes, mode=mode)), sample
    return case()


@st.composite
def pad_case(draw):
    shape = draw(shapes())
    config = [(draw(st.integers(-2, 2)), draw(st.integers(-2, 2)), draw(st.integers(0, 2))) for _ in shape]
    config = [(lo, max(hi, -(lo + n + max(n - 1, 0) * i)), i) for n, (lo, hi, i) in zip(shape, config)]
    return (lambda x, v: lax.pad(x, v, config)), lambda rng: (normal(rng, shape), np.float32(rng.standard_normal()))


@st.composite
def concatenate_case(draw):
    base = list(draw(shapes(min_dims=1)))
    axis = draw(st.integers(0, len(base) - 1))
    sizes = draw(st.lists(st.integers(0, 3), min_size=1, max_size=3))
    part_shapes = [tuple(s if d == axis else n for d, n in enumerate(base)) for s in sizes]
    return (lambda *xs: lax.concatenate(xs, axis)), lambda rng: tuple(normal(rng, s) for s in part_shapes)


@st.composite
def rev_case(draw):
    shape = draw(shapes())
    dims = draw(st.lists(st.integers(0, len(shape) - 1), unique=True)) if shape else []
    return (lambda x: lax.rev(x, dims)), lambda rng: (normal(rng, shape),)


@st.composite
def iota_case(draw):
    shape = draw(shapes(min_dims=1))
    dim = draw(st.integers(0, len(shape) - 1))
    return (lambda x: lax.mul(x, lax.iota(x.dtype, shape, dim))), lambda rng: (normal(rng, shape),)


CASES = {
    "squeeze": squeeze_case(), "expand_dims": expand_dims_case(), "slice": slice_case(),
    "dynamic_slice": dynamic_slice_case(), "dynamic_update_slice": dynamic_update_slice_case(),
    "gather": gather_case(), "take_along_axis": take_along_axis_case(),
    **{f"scatter_{m}": scatter_case(m) for m in ("set", "add", "max", "min", "mul")},
    "pad": pad_case(), "concatenate": concatenate_case(), "rev": rev_case(), "iota": iota_case(),
}


@pytest.mark.parametrize("name", sorted(CASES))
@GRADS
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_grads_match_finite_differences(name, data, seed):
    f, sample = data.draw(CASES[name])
    args = sample(np.random.default_rng(seed))
    is_float = [np.asarray(a).dtype.kind == "f" for a in args]

    def f_of_floats(*floats):  # index operands stay fixed (closed over)
        it = iter(floats)
        return f(*[next(it) if fl else a for a, fl in zip(args, is_float)])
    check_grads(f_of_floats, [a for a, fl in zip(args, is_float) if fl], order=2)


def batched(samples, axes):
    """Stack per-member argument tuples; ``axes[i]`` None keeps member 0's value of arg i."""
    out = []
    for i, axis in enumerate(axes):
        values = [s[i] for s in samples]
        out.append(values[0] if axis is None else np.stack(values, axis))
    return out


def axes_for(arg, axis):
    """``axis`` where the stacked arg has that axis (scalars only have 0 and -1)."""
    return axis if np.ndim(arg) >= 1 or axis in (0, -1) else 0


@pytest.mark.parametrize("name", sorted(CASES))
@settings(max_examples=4, deadline=None)
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_vmap_matches_a_loop(name, data, seed):
    f, sample = data.draw(CASES[name])
    rng = np.random.default_rng(seed)
    samples = [sample(rng) for _ in range(3)]
    n = len(samples[0])
    configs = [tuple(axes_for(a, axis) for a in samples[0]) for axis in (0, 1, -1)]
    configs += [tuple(None if j == i else 0 for j in range(n)) for i in range(n) if n > 1]
    for in_axes in configs:
        check_vmap(f, batched(samples, in_axes), in_axes=in_axes)


@pytest.mark.parametrize("name", sorted(CASES))
@settings(max_examples=3, deadline=None)
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_vmap_of_grad_matches_a_loop(name, data, seed):
    """Batched transposes: per-member indices reach scatter/gather built by the grad rules."""
    f, sample = data.draw(CASES[name])
    rng = np.random.default_rng(seed)
    samples = [sample(rng) for _ in range(3)]

    def loss(*args):
        out = f(*args)
        return lax.reduce_sum(lax.mul(out, out), tuple(range(out.ndim)))
    check_vmap(fgrad.grad(loss), batched(samples, (0,) * len(samples[0])), in_axes=0, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(CASES))
@settings(max_examples=3, deadline=None)
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_staged_jaxprs_typecheck(name, data, seed):
    f, sample = data.draw(CASES[name])
    rng = np.random.default_rng(seed)
    args = [fnp.asarray(a) for a in sample(rng)]
    out = f(*args)
    ct = fnp.asarray(normal(rng, out.shape))
    # integer arguments (indices) take float0 tangents, as in JAX
    tangents = [fnp.asarray(np.zeros(a.shape, a.dtype)) if np.issubdtype(a.dtype, np.inexact)
                else np.zeros(a.shape, fgrad.dtypes.float0) for a in args]
    staged = {
        "forward": fgrad.make_jaxpr(f)(*args),
        "jvp": fgrad.make_jaxpr(lambda *a: [t for t in fgrad.tree.leaves(fgrad.jvp(f, a, tangents))
                                            if t.dtype != fgrad.dtypes.float0])(*args),
        "vjp": fgrad.make_jaxpr(lambda *a: [t for t in fgrad.vjp(f, *a)[1](ct)
                                            if t.dtype != fgrad.dtypes.float0])(*args),
        "vmap": fgrad.make_jaxpr(fgrad.vmap(f))(*[fnp.asarray(np.stack([a, a])) for a in sample(rng)]),
    }
    for closed in staged.values():
        typecheck_jaxpr(closed.jaxpr)
    np.testing.assert_array_equal(np.asarray(fgrad.jit(f)(*args)), np.asarray(out))
    assert staged["forward"].out_avals[0].shape == out.shape


def test_staged_gather_prints_its_params():
    text = str(fgrad.make_jaxpr(lambda x, i: lax.gather(x, i, 1, mode="fill"))(F(3, 4), I(2, 1)))
    assert "gather[axes=(1,) fill_value=None mode='fill']" in text
