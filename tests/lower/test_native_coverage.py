"""No silent fallback: programs over every dtype, empty and rank-0 arrays and rank-9 arrays
compile on the native path and match eager (floats exactly where the order of operations is
the same; sums and products of floats to a few ulps)."""
from __future__ import annotations

import numpy as np
import pytest

import fgrad
from fgrad import lax, tree
from fgrad import numpy as fnp
from fgrad.compile import pipeline
from fgrad.ops import indexing

DTYPES = [np.bool_, np.uint8, np.uint32, np.int32, np.int64, np.float16, np.float32, np.float64]
SHAPES = [(), (0,), (3, 0), (2, 3), (1,) * 9, (2, 1, 2, 1, 2, 1, 2, 1, 2)]


def native(f, *args):
    before = dict(pipeline.compiled_by_path)
    got = fgrad.jit(f)(*args)
    if pipeline.native_enabled():
        assert pipeline.compiled_by_path["reference"] == before.get("reference", 0), "fell back"
        assert pipeline.compiled_by_path["native"] == before.get("native", 0) + 1
    return got


def check(f, *args, rtol=0.0):
    got, want = native(f, *args), f(*args)
    for g, w in zip(tree.tree_leaves(got), tree.tree_leaves(want)):
        g, w = np.asarray(g), np.asarray(w)
        assert g.dtype == w.dtype and g.shape == w.shape
        if rtol and w.dtype.kind == "f":
            np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol)
        else:
            np.testing.assert_array_equal(g, w)


def array(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype) == np.bool_:
        return fnp.asarray(rng.random(shape) < 0.5)
    if np.dtype(dtype).kind in "iu":
        return fnp.asarray(rng.integers(0, 50, shape).astype(dtype))
    return fnp.asarray(rng.standard_normal(shape).astype(dtype))


def programs(dtype, ndim):
    """(name, f, rtol) for the programs a ``dtype`` array of rank ``ndim`` takes."""
    axes = tuple(range(ndim))
    out = [("max", lambda a: lax.reduce_max(a, axes), 0), ("min", lambda a: lax.reduce_min(a, axes), 0),
           ("transpose", lambda a: lax.transpose(a, tuple(reversed(axes))), 0)]
    out += [(f"cast-{np.dtype(d).name}", (lambda a, d=d: a.astype(d)), 0) for d in DTYPES]
    if np.dtype(dtype) == np.bool_:
        out += [("or", lambda a: lax.reduce_or(a, axes), 0), ("and", lambda a: lax.reduce_and(a, axes), 0),
                ("not", lambda a: ~a, 0)]
    else:
        tol = 1e-2 if np.dtype(dtype) == np.float16 else 1e-5
        out += [("sum", lambda a: lax.reduce_sum(a, axes), tol), ("prod", lambda a: lax.reduce_prod(a, axes), tol),
                ("arith", lambda a: a + a * a, 0)]
    if ndim:
        last = ndim - 1
        out += [("argmax", lambda a: lax.argmax(a, 0, np.int32), 0),
                ("argmin", lambda a: lax.argmin(a, last, np.int32), 0),
                ("rev", lambda a: lax.rev(a, (0,)), 0), ("concat", lambda a: lax.concatenate([a, a], 0), 0),
                ("pad", lambda a: lax.pad(a, np.zeros((), a.dtype).item(), [(1, 0, 0)] * a.ndim), 0)]
        if np.dtype(dtype) != np.bool_:
            window = (2,) + (1,) * last
            out += [("cumsum", lambda a: lax.cumsum(a, 0), 0), ("cumsum-rev", lambda a: lax.cumsum(a, last, True), 0),
                    ("pool-sum", lambda a: lax.reduce_window(a, "sum", window, None, "SAME"), 0),
                    ("pool-max", lambda a: lax.reduce_window(a, "max", window, None, "SAME"), 0)]
    return out


@pytest.mark.parametrize("dtype", DTYPES, ids=[np.dtype(d).name for d in DTYPES])
@pytest.mark.parametrize("shape", SHAPES, ids=[str(s) for s in SHAPES])
def test_every_dtype_and_rank_compiles_natively(dtype, shape):
    with fgrad.config.override(enable_x64=True):
        x = array(dtype, shape)
        for name, f, rtol in programs(dtype, len(shape)):
            if name.startswith("arg") and 0 in shape:
                continue          # (an empty axis has no argmax: a user error in both paths)
            check(f, x, rtol=rtol)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint32, np.int32, np.int64])
def test_integer_shifts_and_division(dtype):
    with fgrad.config.override(enable_x64=True):
        bits = 8 * np.dtype(dtype).itemsize
        x = fnp.asarray(np.array([5, 1, 2 ** (bits - 2), 7, 9, 3, 12, 255] * 10, dtype))
        amounts = np.arange(-3, bits + 8) if np.dtype(dtype).kind == "i" else np.arange(bits + 8)
        y = fnp.asarray(np.resize(amounts, 80).astype(dtype))
        if np.dtype(dtype).kind == "i":
            x = x * np.dtype(dtype).type(-1) + 3
        for f in (lax.shift_left, lax.shift_right_logical, lax.div, lax.rem):
            check(f, x, y)


def test_gather_from_an_empty_axis_is_the_fill():
    x, idx = fnp.asarray(np.zeros((0, 3), np.float32)), fnp.asarray(np.array([[1], [0], [-2]], np.int32))
    for fill in (None, 7.5):
        check(lambda x, i: indexing.gather_p.bind(x, i, axes=(0,), mode="fill", fill_value=fill), x, idx)
