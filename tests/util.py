"""Test oracles shared by the suite: finite-difference gradient checks and vmap-vs-loop.

    check_grads(f, (x, y), order=2)      # jvp and vjp vs central differences, in float64
    check_vmap(f, (xs, w), in_axes=(0, None))
"""
from __future__ import annotations

import contextlib
import warnings

import numpy as np

import fgrad
from fgrad.compile import pipeline
from fgrad import numpy as fnp
from fgrad import tree


def _rand_like(rng, x):
    return rng.standard_normal(np.shape(x)).astype(np.float64)


def _as64(args):
    return tree.tree_map(lambda a: fnp.asarray(np.asarray(a, np.float64)) if np.asarray(a).dtype.kind == "f"
                         else fnp.asarray(np.asarray(a)), args)


def _flat_float_positions(args):
    leaves = tree.tree_leaves(args)
    return [i for i, leaf in enumerate(leaves) if np.asarray(leaf).dtype.kind == "f"]


def _inner(a, b):
    return sum(float(np.vdot(np.asarray(x, np.float64), np.asarray(y, np.float64)))
               for x, y in zip(tree.tree_leaves(a), tree.tree_leaves(b)))


def _shift(a, t, step):
    """``a + step * t`` for float leaves; integer leaves (indices, labels) stay fixed."""
    a = np.asarray(a)
    return fnp.asarray(a + step * np.asarray(t)) if a.dtype.kind == "f" else fnp.asarray(a)


def _fd_jvp(f, args, tangents, eps):
    plus = tree.tree_map(lambda a, t: _shift(a, t, eps), args, tangents)
    minus = tree.tree_map(lambda a, t: _shift(a, t, -eps), args, tangents)
    fp, fm = f(*plus), f(*minus)
    return tree.tree_map(lambda p, m: (np.asarray(p, np.float64) - np.asarray(m, np.float64)) / (2 * eps), fp, fm)


def check_grads(f, args, order=2, modes=("fwd", "rev"), eps=1e-4, rtol=1e-5, atol=1e-5, seed=0):
    """Check f's jvp (fwd) and vjp (rev) against central finite differences, in float64.

    Integer arguments are held fixed (zero tangents). Recurses to ``order``
    by checking the jvp/vjp functions themselves.
    """
    with fgrad.config.override(enable_x64=True):
        args = _as64(tuple(args))
        _check_grads(f, args, order, modes, eps, rtol, atol, np.random.default_rng(seed))


def _tangents(rng, args):
    return tree.tree_map(lambda a: _rand_like(rng, a) if np.asarray(a).dtype.kind == "f"
                         else np.zeros(np.shape(a), np.asarray(a).dtype), args)


def _check_grads(f, args, order, modes, eps, rtol, atol, rng):
    tangents = tree.tree_map(fnp.asarray, _tangents(rng, args))
    float_mask = [np.asarray(a).dtype.kind == "f" for a in tree.tree_leaves(args)]
    if "fwd" in modes:
        _, jvp_out = fgrad.jvp(f, args, tangents)
        expected = _fd_jvp(f, args, tangents, eps)
        for got, want in zip(tree.tree_leaves(jvp_out), tree.tree_leaves(expected)):
            np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=rtol * 100, atol=atol * 100,
                                       err_msg="jvp disagrees with finite differences")
        if order > 1:
            def f_jvp(*primals):
                return fgrad.jvp(f, primals, tangents)[1]
            _check_grads(f_jvp, args, order - 1, ("fwd",), eps, rtol, atol, rng)
    if "rev" in modes:
        out, vjp_fn = fgrad.vjp(f, *args)
        ct = tree.tree_map(lambda o: fnp.asarray(_rand_like(rng, o)), out)
        cts_in = vjp_fn(ct)
        # <ct, J t> (via finite differences) must equal <J^T ct, t>
        jt = _fd_jvp(f, args, tangents, eps)
        lhs = _inner(ct, jt)
        rhs = sum(_inner(c, t) for c, t, m in zip(tree.tree_leaves(cts_in), tree.tree_leaves(tangents), float_mask) if m)
        np.testing.assert_allclose(rhs, lhs, rtol=rtol * 100, atol=atol * 100,
                                   err_msg="vjp disagrees with finite differences")
        if order > 1:
            def f_vjp(*primals):
                return fgrad.vjp(f, *primals)[1](ct)
            _check_grads(f_vjp, args, order - 1, ("rev",), eps, rtol, atol, rng)


def check_vmap(f, args, in_axes=0, out_axes=0, rtol=1e-6, atol=1e-6):
    """vmap(f) must equal a Python loop over the mapped axis, stacked on out_axes."""
    got = fgrad.vmap(f, in_axes=in_axes, out_axes=out_axes)(*args)
    axes = in_axes if isinstance(in_axes, (tuple, list)) else (in_axes,) * len(args)
    size = next(np.shape(a)[ax] for a, ax in zip(args, axes) if ax is not None)
    results = []
    for i in range(size):
        sliced = [a if ax is None else fnp.asarray(np.take(np.asarray(a), i, axis=ax)) for a, ax in zip(args, axes)]
        results.append(f(*sliced))
    want = tree.tree_map(lambda *rs: np.stack([np.asarray(r) for r in rs], axis=out_axes), *results)
    for g, w in zip(tree.tree_leaves(got), tree.tree_leaves(want)):
        np.testing.assert_allclose(np.asarray(g), w, rtol=rtol, atol=atol)


# --- the native path -------------------------------------------------------------------------------

@contextlib.contextmanager
def native(programs: int = 1):
    """The block compiles ``programs`` jitted programs natively (no reference path, no warning)."""
    before = dict(pipeline.compiled_by_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", fgrad.ReferencePathWarning)
        yield
    assert pipeline.compiled_by_path["reference"] == before.get("reference", 0), "fell back"
    assert pipeline.compiled_by_path["native"] >= before.get("native", 0) + programs, "not compiled"


def natively(f, *args):
    """``jit(f)(*args)`` as NumPy arrays, failing if any program fell back to the reference path."""
    before = pipeline.compiled_by_path["reference"]
    out = fgrad.jit(f)(*args)
    assert pipeline.compiled_by_path["reference"] == before, "fell back to the reference path"
    return tree.tree_map(np.asarray, out)


def check_jit_matches_eager(f, args, rtol=2e-5, atol=2e-5, **kw):
    """``jit(f)`` runs natively and gives eager ``f``'s shapes, dtypes and values."""
    eager = tree.tree_map(np.asarray, f(*args))
    jitted = natively(f, *args)
    for e, j in zip(tree.tree_leaves(eager), tree.tree_leaves(jitted)):
        assert e.shape == j.shape and e.dtype == j.dtype
        np.testing.assert_allclose(j, e, rtol=rtol, atol=atol, **kw)
