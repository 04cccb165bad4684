"""Collectives that are not top-level equations of shard's per-device program run natively.

Inside a call (jit, remat, custom_jvp/custom_vjp) they are inlined into the per-device
program, so they split it like any other collective; inside control flow (cond, while,
scan, fori_loop) the branch or loop runs on the host around natively compiled programs of
its bodies. Every case checks the values against the single-device program or NumPy, and
that nothing ran on the reference path (a ``ReferencePathWarning`` is an error here)."""
import contextlib
import warnings

import numpy as np
import pytest

import fgrad
from fgrad import checkpoint, custom_jvp, custom_vjp, grad, jit, lax, vmap
from fgrad import numpy as fnp
from fgrad.devices import devices
from fgrad.compile.pipeline import compiled_by_path
from fgrad.sharding import Mesh, P
from fgrad.transforms.shard import shard

N = 4


def rand(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def close(a, b, rtol=1e-5, atol=1e-5):
    for x, y in zip(fgrad.tree.tree_leaves(a), fgrad.tree.tree_leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


@contextlib.contextmanager
def native():
    """Everything compiled inside runs natively: no warning, nothing counted as reference."""
    before = compiled_by_path["reference"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", fgrad.ReferencePathWarning)
        yield
    assert compiled_by_path["reference"] == before


@pytest.fixture(scope="module")
def mesh():
    return Mesh(devices(N), ("data",))


@pytest.fixture(scope="module")
def mesh2():
    return Mesh(np.asarray(devices(4), dtype=object).reshape(2, 2), ("data", "model"))


W, X = rand((3, 2), 1), rand((2 * N, 3), 2)


def loss(w, a):
    return lax.psum(fnp.sum(fnp.tanh(a @ w)), "data")


def whole_loss(w, a):
    return fnp.sum(fnp.tanh(a @ w))


def blocks(x, n=N):
    return np.split(np.asarray(x), n)


# --- calls: inlined ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda: grad(jit(loss)), lambda: jit(grad(loss)), lambda: jit(grad(jit(loss))),
                                  lambda: grad(checkpoint(loss)), lambda: jit(grad(checkpoint(jit(loss))))],
                         ids=["grad(jit)", "jit(grad)", "jit(grad(jit))", "grad(remat)", "jit(grad(remat(jit)))"])
def test_gradient_of_a_call_holding_a_psum(mesh, make):
    with native():
        got = shard(make(), mesh, (P(), P("data")), P())(W, X)
    close(got, grad(whole_loss)(W, X))


def test_values_and_gradients_of_calls_with_collectives_in_the_forward_pass(mesh):
    center = jit(lambda a: a - lax.pmean(a, "data"))
    rematted = checkpoint(lambda a: fnp.sin(a) * lax.psum(a, "data"))
    x = X
    want_center = np.concatenate([b - np.mean(np.stack(blocks(x)), 0) for b in blocks(x)])
    total = np.sum(np.stack(blocks(x)), 0)
    with native():
        close(shard(center, mesh, P("data"), P("data"))(x), want_center)
        close(shard(rematted, mesh, P("data"), P("data"))(x), np.concatenate([np.sin(b) * total for b in blocks(x)]))
        g = shard(grad(lambda a: lax.psum(fnp.sum(rematted(a) ** 2), "data")), mesh, P("data"), P("data"))(x)

    def single(a):
        parts = a.reshape(N, 2, 3)
        return fnp.sum((fnp.sin(parts) * fnp.sum(parts, axis=0)) ** 2)

    close(g, grad(single)(fnp.asarray(x)), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("check_vma", [True, False])
def test_custom_vjp_with_a_psum_in_its_backward_pass(mesh, check_vma):
    @custom_vjp
    def summed_grad(a):
        return a

    def fwd(a):
        return a, None

    def bwd(_, ct):
        return (lax.psum(ct, "data"),)

    summed_grad.defvjp(fwd, bwd)
    x = X

    def local(a):
        return grad(lambda v: fnp.sum(summed_grad(v) ** 2))(a)

    with native():
        got = shard(local, mesh, P("data"), P("data"), check_vma=check_vma)(x)
        jitted = shard(jit(local), mesh, P("data"), P("data"), check_vma=check_vma)(x)
    total = np.sum(np.stack([2 * b for b in blocks(x)]), 0)
    close(got, np.tile(total, (N, 1)))
    close(jitted, np.tile(total, (N, 1)))


def test_custom_jvp_whose_function_and_rule_use_collectives(mesh):
    @custom_jvp
    def centered(a):
        return a - lax.pmean(a, "data")

    @centered.defjvp
    def centered_jvp(primals, tangents):
        (a,), (t,) = primals, tangents
        return centered(a), t - lax.pmean(t, "data")

    x = X
    stacked = np.stack(blocks(x))
    with native():
        got = shard(centered, mesh, P("data"), P("data"))(x)
        g = shard(grad(lambda a: lax.psum(fnp.sum(centered(a) * a), "data")), mesh, P("data"), P("data"))(x)
    close(got, (stacked - stacked.mean(0)).reshape(x.shape))

    def single(a):
        parts = a.reshape(N, 2, 3)
        return fnp.sum((parts - fnp.mean(parts, axis=0)) * parts)

    close(g, grad(single)(fnp.asarray(x)), rtol=1e-4, atol=1e-4)


# --- control flow: driven from the host ---------------------------------------------------------------------

def test_fori_loop_adding_a_psum_of_its_carry(mesh):
    x = X
    with native():
        got = shard(lambda b: lax.fori_loop(0, 3, lambda i, c: c + lax.psum(c, "data"), b), mesh, P("data"),
                    P("data"))(x)
    cs = blocks(x)
    for _ in range(3):
        total = sum(cs)
        cs = [c + total for c in cs]
    close(got, np.concatenate(cs), rtol=1e-5, atol=1e-4)


def test_scan_accumulating_psums_and_pmeans(mesh):
    xs = rand((N * 5, 3), 3)              # each device scans its own 5 rows

    def local(b):
        def step(c, row):
            return c + lax.psum(row, "data"), lax.pmean(row * c, "data")
        return lax.scan(step, fnp.zeros(3), b)

    with native():
        carry, ys = shard(local, mesh, P("data"), (P(), P()))(xs)
    parts = np.stack(blocks(xs))          # (device, row, 3)
    c, want_ys = np.zeros(3, np.float32), []
    for t in range(5):
        want_ys.append(np.mean(parts[:, t] * c, 0))
        c = c + parts[:, t].sum(0)
    close(carry, c)
    close(ys, np.stack(want_ys))


def test_while_loop_with_pmax_in_the_body_and_psum_in_the_predicate(mesh):
    x = np.abs(X) + 0.5

    def local(b):
        counted = lax.while_loop(lambda s: s[0] < 4, lambda s: (s[0] + 1, s[1] * 0.5 + lax.pmax(s[1], "data")),
                                 (0, b))[1]
        doubled = lax.while_loop(lambda c: lax.psum(fnp.sum(c), "data") < 1000.0, lambda c: c * 2, b)
        return counted, doubled

    with native():
        counted, doubled = shard(local, mesh, P("data"), (P("data"), P("data")))(x)
    cs = blocks(x)
    for _ in range(4):
        top = np.max(np.stack(cs), 0)
        cs = [c * 0.5 + top for c in cs]
    close(counted, np.concatenate(cs))
    d = np.asarray(x)
    while d.sum() < 1000.0:
        d = d * 2
    close(doubled, d)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_cond_whose_branches_gather_on_a_predicate_every_device_shares(mesh, sign):
    x = X * sign

    def local(b):
        return lax.cond(lax.psum(fnp.sum(b), "data") > 0, lambda v: lax.all_gather(v, "data"),
                        lambda v: lax.all_gather(-v, "data", tiled=True).reshape(N, 2, 3), b)

    with native():
        got = shard(local, mesh, P("data"), P())(x)
    want = np.stack(blocks(x)) if np.sum(x) > 0 else -np.stack(blocks(x))
    close(got, want)


def test_ppermute_around_a_ring_in_a_loop(mesh):
    ring = [(k, (k + 1) % N) for k in range(N)]
    x = X
    with native():
        got = shard(lambda b: lax.fori_loop(0, 3, lambda i, c: lax.ppermute(c, "data", ring) * 1.0, b),
                    mesh, P("data"), P("data"))(x)
    bs = blocks(x)
    close(got, np.concatenate([bs[(r - 3) % N] for r in range(N)]))


def test_scan_inside_a_fori_loop(mesh):
    xs = rand((N * 4, 3), 4)

    def local(b):
        def outer(i, c):
            return lax.scan(lambda s, row: (s * 0.5 + lax.psum(row, "data"), None), c, b)[0]
        return lax.fori_loop(0, 2, outer, fnp.zeros(3))

    with native():
        got = shard(local, mesh, P("data"), P())(xs)
    parts = np.stack(blocks(xs))
    s = np.zeros(3, np.float32)
    for _ in range(2):
        for t in range(4):
            s = s * 0.5 + parts[:, t].sum(0)
    close(got, s)


def test_grad_through_a_scan_with_a_pmean_inside(mesh):
    w, xs = rand((3, 3), 5) * 0.5, rand((N * 4, 3), 6)

    def local(w, b):
        h = lax.scan(lambda h, row: (fnp.tanh(w @ h + lax.pmean(row, "data")), None), fnp.ones(3), b)[0]
        return fnp.sum(h ** 2)

    def single(w, x):
        rows = fnp.mean(x.reshape(N, 4, 3), axis=0)
        h = lax.scan(lambda h, row: (fnp.tanh(w @ h + row), None), fnp.ones(3), rows)[0]
        return fnp.sum(h ** 2)

    with native():
        gw, gx = shard(grad(local, (0, 1)), mesh, (P(), P("data")), (P(), P("data")))(w, xs)
        jitted = shard(jit(grad(local, (0, 1))), mesh, (P(), P("data")), (P(), P("data")))(w, xs)
        outside = grad(shard(local, mesh, (P(), P("data")), P()), (0, 1))(w, xs)
    want = grad(single, (0, 1))(fnp.asarray(w), fnp.asarray(xs))
    close((gw, gx), want, rtol=1e-4, atol=1e-5)
    close(jitted, want, rtol=1e-4, atol=1e-5)
    close(outside, want, rtol=1e-4, atol=1e-5)


def test_grad_of_a_fori_loop_with_psum_under_jit_outside_shard(mesh):
    looped = shard(lambda b: lax.fori_loop(0, 3, lambda i, c: fnp.sin(c) + lax.psum(c, "data"), b),
                   mesh, P("data"), P("data"))

    def single(v):
        c = v.reshape(N, 2, 3)
        for _ in range(3):
            c = fnp.sin(c) + fnp.sum(c, axis=0)
        return c.reshape(v.shape)

    x = fnp.asarray(X * 0.1)
    with native():
        got = jit(grad(lambda v: fnp.sum(looped(v) ** 2)))(x)
    close(got, grad(lambda v: fnp.sum(single(v) ** 2))(x), rtol=1e-4, atol=1e-4)


def test_axis_index_in_a_loop_and_a_per_device_branch_without_collectives(mesh):
    x = X

    def local(b):
        shifted = lax.fori_loop(0, 3, lambda i, c: c + lax.axis_index("data"), b)
        # the predicate differs between devices: fine, no collective inside
        picked = lax.cond(lax.axis_index("data") % 2 == 0, lambda v: v * 10.0, lambda v: v - 1.0, b)
        return shifted, picked

    with native():
        shifted, picked = shard(local, mesh, P("data"), (P("data"), P("data")))(x)
    bs = blocks(x)
    close(shifted, np.concatenate([b + 3 * r for r, b in enumerate(bs)]))
    close(picked, np.concatenate([b * 10 if r % 2 == 0 else b - 1 for r, b in enumerate(bs)]))


def test_loops_on_a_two_dimensional_mesh(mesh2):
    x = rand((4, 6), 7)                    # rows split over 'data', columns over 'model'

    def local(b):
        rows = lax.fori_loop(0, 2, lambda i, c: c + lax.psum(c, "model"), b)
        both = lax.scan(lambda s, row: (s + lax.pmean(row, ("data", "model")), None), fnp.zeros(3), b)[0]
        return rows, both

    with native():
        rows, both = shard(local, mesh2, P("data", "model"), (P("data", "model"), P()))(x)
    grid = [[x[2 * i:2 * i + 2, 3 * j:3 * j + 3] for j in range(2)] for i in range(2)]
    want_rows = []
    for i in range(2):
        cs = grid[i]
        for _ in range(2):
            total = cs[0] + cs[1]
            cs = [c + total for c in cs]
        want_rows.append(np.concatenate(cs, 1))
    close(rows, np.concatenate(want_rows, 0))
    mean = np.mean([grid[i][j] for i in range(2) for j in range(2)], 0)   # (2 rows, 3)
    close(both, mean.sum(0))


def test_vmap_of_a_shard_with_a_loop_inside(mesh):
    xs = rand((3, 2 * N, 3), 8)
    f = shard(lambda b: lax.fori_loop(0, 2, lambda i, c: c * 0.5 + lax.psum(c, "data"), b), mesh, P("data"),
              P("data"))

    def single(v):
        c = v.reshape(N, 2, 3)
        for _ in range(2):
            c = c * 0.5 + c.sum(0)
        return c.reshape(v.shape)

    with native():
        got = vmap(f)(xs)
    close(got, np.stack([single(v) for v in xs]))


def test_a_loop_body_compiles_once(mesh):
    f = shard(lambda b: lax.fori_loop(0, 5, lambda i, c: c + lax.psum(c * i, "data"), b), mesh, P("data"),
              P("data"))
    with native():
        first = f(X)
        compiled = compiled_by_path["native"]
        second = f(X)
    assert compiled_by_path["native"] == compiled
    close(first, second)


# --- what cannot run in lockstep is an error ----------------------------------------------------------------

def test_collectives_on_a_per_device_path_are_an_error_before_running(mesh):
    x = X

    def branchy(b):
        return lax.cond(lax.axis_index("data") == 0, lambda v: lax.psum(v, "data"), lambda v: v, b)

    def loopy(b):
        return lax.while_loop(lambda c: fnp.sum(c) < 100.0, lambda c: c + lax.psum(fnp.abs(c), "data"), b)

    with pytest.raises(ValueError, match=r"a `cond` has collectives over mesh axes 'data'.*predicate varies"):
        shard(branchy, mesh, P("data"), P("data"))(x)
    with pytest.raises(ValueError, match=r"a `while` has collectives over mesh axes 'data'.*pmax or lax.psum"):
        shard(loopy, mesh, P("data"), P("data"))(x)


def test_a_branch_differing_along_another_mesh_axis_cannot_hold_collectives_either(mesh2):
    """Every device meets the others at each exchange (not only its group), so devices must
    take the same path even where the collective's groups would not mix them."""
    def local(b):
        return lax.cond(lax.axis_index("model") == 0, lambda v: lax.psum(v, "data"), lambda v: v, b)

    with pytest.raises(ValueError, match=r"collectives over mesh axes 'data'.*along mesh axes 'model'"):
        shard(local, mesh2, P("data", "model"), P("data", "model"))(rand((4, 6), 9))
    # the same predicate for every device: fine
    uniform = shard(lambda b: lax.cond(lax.psum(fnp.sum(b), ("data", "model")) > -1e9,
                                       lambda v: lax.psum(v, "data"), lambda v: lax.pmax(v, "data"), b),
                    mesh2, P("data", "model"), P(None, "model"))
    x = rand((4, 6), 9)
    with native():
        close(uniform(x), x[:2] + x[2:])


# --- every collective in every kind of control flow, against vmap over the device axis ----------------------

COLLECTIVES = {
    "psum": lambda v: lax.psum(v, "data"),
    "pmean": lambda v: lax.pmean(v, "data"),
    "pmax": lambda v: lax.pmax(v, "data"),
    "pmin": lambda v: lax.pmin(v, "data"),
    "all_gather": lambda v: lax.all_gather(v, "data").sum(0) * 0.5,
    "psum_scatter": lambda v: lax.psum_scatter(fnp.tile(v, (N, 1)), "data", scatter_dimension=0, tiled=True),
    "ppermute": lambda v: lax.ppermute(v, "data", [(k, (k + 1) % N) for k in range(N)]),
    "axis_index": lambda v: v * 0 + lax.axis_index("data").astype(fnp.float32),
}

CONTROL_FLOW = {
    "fori_loop": lambda step, b: lax.fori_loop(0, 3, lambda i, v: step(v), b),
    "while_loop": lambda step, b: lax.while_loop(lambda s: s[0] < 3, lambda s: (s[0] + 1, step(s[1])), (0, b))[1],
    "scan": lambda step, b: lax.scan(lambda v, row: (step(v) + row.sum(), None), b, b)[0],
    "cond": lambda step, b: lax.cond(lax.psum(fnp.sum(b), "data") > 0, step, lambda v: v - 1.0, b),
}


@pytest.mark.parametrize("flow", list(CONTROL_FLOW))
@pytest.mark.parametrize("kind", list(COLLECTIVES))
def test_collective_inside_control_flow_equals_vmap_over_the_devices(mesh, kind, flow):
    def local(b):
        return CONTROL_FLOW[flow](lambda v: fnp.sin(v) + COLLECTIVES[kind](v) * 0.5, b)

    x = X
    with native():
        got = shard(local, mesh, P("data"), P("data"))(x)
    want = vmap(local, axis_name="data")(fnp.asarray(x).reshape(N, 2, 3))
    close(got, np.asarray(want).reshape(x.shape), rtol=1e-5, atol=1e-5)


def test_untyped_shard_runs_loops_with_collectives_natively_too(mesh):
    looped = shard(lambda b: lax.fori_loop(0, 3, lambda i, c: fnp.sin(c) + lax.psum(c, "data"), b), mesh, P("data"),
                   P("data"), check_vma=False)
    x = fnp.asarray(X * 0.1)

    def single(v):
        c = v.reshape(N, 2, 3)
        for _ in range(3):
            c = fnp.sin(c) + fnp.sum(c, axis=0)
        return c.reshape(v.shape)

    with native():
        close(looped(x), single(x), rtol=1e-5, atol=1e-5)
