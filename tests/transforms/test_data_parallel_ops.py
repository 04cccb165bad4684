"""The two-line data-parallel path (jit over arguments placed with device_put) on operations
beyond elementwise/contractions: gather, scatter, dynamic_slice/update, cond, scan, while,
sort, cumsum. Each program, run with the batch split over 4 or 8 virtual devices, must equal
the single-device result; layouts the pass cannot run raise DataParallelError naming
fgrad.shard. Placement mistakes are errors raised before tracing."""
import warnings

import numpy as np
import pytest

import fgrad
from fgrad import grad, jit, lax
from fgrad import numpy as fnp
from fgrad.devices import devices
from fgrad.sharding import Mesh, NamedSharding, P, ShardedArray, device_put
from fgrad.transforms.data_parallel import DataParallelError
from fgrad.transforms.shard import shard

ROWS = 4  # rows of the batch per device


def placed(n):
    mesh = Mesh(devices(n), ("data",))
    rng = np.random.default_rng(n)
    w = rng.standard_normal((3, 5)).astype(np.float32)
    x = rng.standard_normal((ROWS * n, 3)).astype(np.float32)
    y = rng.integers(0, 5, (ROWS * n,)).astype(np.int32)
    rep, split = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    return (w, x, y), (device_put(w, rep), device_put(x, split), device_put(y, split))


def _scan_carry_split(w, x, y):
    return lax.scan(lambda c, r: (fnp.tanh(c @ w[:, :3]) + r, fnp.sum(c, axis=1)), x, fnp.stack([w[0, :3], w[1, :3]]))


def _scan_over_split_rows(w, x, y):
    return lax.scan(lambda c, r: (c * 0.5 + r, c.sum()), fnp.zeros(x.shape[0]), x.T)


# (name, program, where the output lands: the split batch dim, or None for replicated)
PROGRAMS = [
    ("take columns", lambda w, x, y: fnp.take(x, fnp.array([0, 2, 1, 1]), axis=1), 0),
    ("take batch rows", lambda w, x, y: fnp.take(x, fnp.array([0, 5, 3]), axis=0), None),
    ("take_along_axis", lambda w, x, y: fnp.take_along_axis(x @ w, y[:, None], axis=1), 0),
    ("replicated table, split indices", lambda w, x, y: w[:, y].T * x.sum(1, keepdims=True), 0),
    ("logits[arange, labels]", lambda w, x, y: (x @ w)[fnp.arange(x.shape[0]), y], 0),
    ("scatter-add per row", lambda w, x, y: fnp.zeros((x.shape[0], 5)).at[fnp.arange(x.shape[0]), y].add(x[:, 0]), None),
    ("scatter-add a histogram", lambda w, x, y: fnp.zeros(5).at[y].add(x[:, 0]), None),
    ("at[:, 1].set", lambda w, x, y: x.at[:, 1].set(0.0), 0),
    ("scatter into split rows", lambda w, x, y: x.at[:, fnp.array([2, 0])].add(w[:2, :2].sum()), None),
    ("dynamic_slice of columns", lambda w, x, y: lax.dynamic_slice(x, (0, (w[0, 0] > 0).astype(fnp.int32)), (x.shape[0], 2)), 0),
    ("dynamic_slice of rows", lambda w, x, y: lax.dynamic_slice(x, (2, 0), (4, 3)), None),
    ("dynamic_update_slice", lambda w, x, y: lax.dynamic_update_slice(x, fnp.ones((x.shape[0], 1)), (0, 1)), 0),
    ("cond on a replicated predicate", lambda w, x, y: lax.cond(w.sum() > 0, lambda a: a * 2, lambda a: a - 1, x), 0),
    ("cond on a batch statistic", lambda w, x, y: lax.cond(x.sum() > 0, lambda a: a * 2, lambda a: a - 1, x), 0),
    ("cond branches that disagree", lambda w, x, y: lax.cond(w[0, 0] > 0, lambda a: a, lambda a: a.sum(0) * fnp.ones_like(a), x), None),
    ("fori_loop", lambda w, x, y: lax.fori_loop(0, 3, lambda i, a: fnp.tanh(a) + 1.0, x), 0),
    ("while_loop", lambda w, x, y: lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] * 0.5 + x), (0, x))[1], 0),
    ("while on a batch statistic", lambda w, x, y: lax.while_loop(lambda a: fnp.max(fnp.abs(a)) > 0.1, lambda a: a * 0.5, x), 0),
    ("scan carrying the batch", lambda w, x, y: _scan_carry_split(w, x, y), 0),
    ("scan over split rows", lambda w, x, y: _scan_over_split_rows(w, x, y), None),
    ("scan accumulating a batch sum", lambda w, x, y: lax.scan(lambda c, r: (c + (x * r).sum(0), None), fnp.zeros(3), w[:, :3])[0], None),
    ("sort each row", lambda w, x, y: fnp.sort(x, axis=1), 0),
    ("sort the batch", lambda w, x, y: fnp.sort(x, axis=0), None),
    ("argsort each row", lambda w, x, y: fnp.argsort(x, axis=1), 0),
    ("cumsum over the batch", lambda w, x, y: fnp.cumsum(x, axis=0), None),
    ("cumsum each row", lambda w, x, y: fnp.cumsum(x, axis=1), 0),
    ("argmax over the batch", lambda w, x, y: fnp.argmax(x, axis=0), None),
    ("grad through take_along_axis", lambda w, x, y: grad(lambda w: fnp.sum(fnp.take_along_axis(x @ w, y[:, None], axis=1)))(w), None),
    ("grad through a scan", lambda w, x, y: grad(lambda w: _scan_carry_split(w, x, y)[0].sum())(w), None),
    ("grad through cond and fori", lambda w, x, y: grad(lambda w: lax.fori_loop(0, 2, lambda i, a: lax.cond(
        i > 0, lambda b: fnp.tanh(b @ w[:, :3]), lambda b: b * 2.0, a), x).sum())(w), None),
]


def _layout_of(got):
    spec = got.sharding.spec
    return next((d for d in range(len(spec)) if spec.axes(d)), None)


@pytest.mark.parametrize("n", [4, 8])
@pytest.mark.parametrize("name,f,layout", PROGRAMS, ids=[p[0] for p in PROGRAMS])
def test_two_line_program_matches_one_device(n, name, f, layout):
    host, on_mesh = placed(n)
    want = f(*map(fnp.asarray, host))
    # every stage runs natively: control flow holding collectives (or axis_index) runs on the
    # host around compiled programs of its bodies
    with warnings.catch_warnings():
        warnings.simplefilter("error", fgrad.ReferencePathWarning)
        got = jit(f)(*on_mesh)
    for g, h in zip(fgrad.tree.tree_leaves(got), fgrad.tree.tree_leaves(want)):
        assert isinstance(g, ShardedArray)
        np.testing.assert_allclose(np.asarray(g), np.asarray(h), rtol=1e-5, atol=1e-5)
    first = fgrad.tree.tree_leaves(got)[0]
    assert _layout_of(first) == layout, f"{name}: output placed {first.sharding.spec}"


@pytest.mark.parametrize("f,match", [
    (lambda w, x, y: x[::2], "slices the split dimension 0"),
    (lambda w, x, y: fnp.pad(x, ((1, 0), (0, 0))), "pads the split dimension 0"),
    (lambda w, x, y: x.T.reshape(-1), "mixes the split dimension"),
    (lambda w, x, y: lax.dynamic_slice(x, (y[0], 0), (2, 3)), "slices the split dimension 0"),
])
def test_unsupported_layouts_say_use_explicit_shard(f, match):
    _, on_mesh = placed(4)
    with pytest.raises(DataParallelError, match=match) as info:
        jit(f)(*on_mesh)
    assert "fgrad.shard(f, mesh, in_specs, out_specs)" in str(info.value)


def test_placement_errors_are_raised_before_tracing():
    traced = []

    def f(a, b):
        traced.append(1)
        return a + b

    x = np.ones(8, np.float32)
    a = device_put(x, NamedSharding(Mesh(devices(4), ("data",)), P("data")))
    b = device_put(x, NamedSharding(Mesh(devices(2), ("data",)), P("data")))
    with pytest.raises(DataParallelError, match="different meshes"):
        jit(f)(a, b)
    mesh2 = Mesh(np.array(devices(4), dtype=object).reshape(2, 2), ("data", "model"))
    c = device_put(np.ones((4, 4), np.float32), NamedSharding(mesh2, P("data", "model")))
    with pytest.raises(DataParallelError, match="several mesh axes"):
        jit(f)(c, c)
    d = device_put(np.ones((4, 4), np.float32), NamedSharding(mesh2, P(None, "model")))
    e = device_put(np.ones((4, 4), np.float32), NamedSharding(mesh2, P("data")))
    with pytest.raises(DataParallelError, match="different mesh axes"):
        jit(f)(d, e)
    assert not traced


def test_shard_errors_name_the_key_path_before_tracing():
    mesh, traced = Mesh(devices(4), ("i",)), []

    def f(tree):
        traced.append(1)
        return tree["w"]

    x = np.zeros((8, 2), np.float32)
    with pytest.raises(ValueError, match=r"in_specs.*at \[0\]\['b'\]: expected a tuple of 2 children, got a tuple of 3"):
        shard(f, mesh, ({"w": P(), "b": (P(), P())},), P())({"w": x, "b": (x, x, x)})
    with pytest.raises(ValueError, match=r"argument \[0\]\['b'\]\[1\].*mesh axis 'j'.*axes \('i',\)"):
        shard(f, mesh, ({"w": P(), "b": (P(), P("j"))},), P())({"w": x, "b": (x, x)})
    with pytest.raises(ValueError, match=r"argument \[0\]\['w'\]: dimension 0 of size 6 is not divisible"):
        shard(f, mesh, P("i"), P())({"w": np.zeros((6, 2), np.float32)})
    assert not traced


def test_all_replicated_arguments_are_computed_once():
    from fgrad.runtime import execute as shard_module
    mesh = Mesh(devices(4), ("data",))
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    placed = device_put(w, NamedSharding(mesh, P()))
    ran = []
    original = shard_module.run_on_devices
    try:
        shard_module.run_on_devices = lambda *a: ran.append(1) or original(*a)
        got = jit(lambda a, b: (a @ a.T + b, a))(placed, 2.0)
    finally:
        shard_module.run_on_devices = original
    assert not ran  # no per-device programs: one run serves every device
    np.testing.assert_allclose(np.asarray(got[0]), w @ w.T + 2.0)
    for out in got:
        assert isinstance(out, ShardedArray) and out.sharding == NamedSharding(mesh, P())
        assert all(s is not None and not s.flags.writeable for s in out.shards)
    assert not np.shares_memory(np.asarray(got[1]), w)
