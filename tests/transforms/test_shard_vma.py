"""Replication typing in shard (JAX's "varying manual axes", check_vma=True): values know
which mesh axes they vary over, a replicated value meeting a per-device one is cast with
pvary (transpose: psum), so grad/vmap/jit inside and outside shard give the single-device
answers; out_specs are checked against the typing; check_vma=False keeps the untyped path.
Expected values are the single-device fgrad answers (JAX's shard_map gives the same)."""
import re

import numpy as np
import pytest

import fgrad
from fgrad import grad, jit, lax, optim, value_and_grad, vmap
from fgrad import numpy as fnp
from fgrad.devices import devices
from fgrad.sharding import Mesh, P
from fgrad.transforms.shard import shard

# every shard here runs natively: collectives inside calls and control flow included
pytestmark = pytest.mark.filterwarnings("error::fgrad.ReferencePathWarning")

N = 4


def rand(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def close(a, b, rtol=1e-5, atol=1e-5):
    for x, y in zip(fgrad.tree.tree_leaves(a), fgrad.tree.tree_leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


@pytest.fixture(scope="module")
def mesh():
    return Mesh(devices(N), ("data",))


@pytest.fixture(scope="module")
def mesh2():
    return Mesh(np.asarray(devices(4), dtype=object).reshape(2, 2), ("data", "model"))


W, X = rand((3, 2), 1), rand((2 * N, 3), 2)


def local_loss(w, a):
    return fnp.sum(fnp.tanh(a @ w))


def loss(w, a):
    return lax.psum(local_loss(w, a), "data")


def whole_loss(w, a):
    return fnp.sum(fnp.tanh(a @ w))


# --- the example ----------------------------------------------------------------------------

def test_grad_inside_shard_of_a_replicated_parameter_is_the_whole_batch_gradient(mesh):
    g = shard(grad(loss), mesh, (P(), P("data")), P())(W, X)
    close(g, grad(whole_loss)(W, X))


def test_grad_outside_shard(mesh):
    f = shard(loss, mesh, (P(), P("data")), P())
    close(grad(f)(W, X), grad(whole_loss)(W, X))
    close(jit(grad(f))(W, X), grad(whole_loss)(W, X))


def test_grad_with_respect_to_replicated_and_split_arguments(mesh):
    both = shard(grad(loss, argnums=(0, 1)), mesh, (P(), P("data")), (P(), P("data")))(W, X)
    close(both, grad(whole_loss, argnums=(0, 1))(W, X))
    outside = grad(shard(loss, mesh, (P(), P("data")), P()), argnums=(0, 1))(W, X)
    close(outside, grad(whole_loss, argnums=(0, 1))(W, X))


def test_jit_of_shard_and_shard_of_jit(mesh):
    want = grad(whole_loss)(W, X)
    close(jit(shard(grad(loss), mesh, (P(), P("data")), P()))(W, X), want)
    close(shard(jit(grad(loss)), mesh, (P(), P("data")), P())(W, X), want)
    close(shard(grad(jit(loss)), mesh, (P(), P("data")), P())(W, X), want)


def test_jaxpr_shows_the_types_and_the_pvary(mesh):
    text = str(fgrad.make_jaxpr(shard(grad(loss), mesh, (P(), P("data")), P()))(W, X))
    assert "f32[2,3]{V:data}" in text
    assert re.search(r"pvary\[axes=\('data',\)\] a", text)
    assert "psum" in text


def test_pmean_of_the_loss_in_value_and_grad_and_an_optimizer_step(mesh):
    opt = optim.adam(1e-2)
    params = {"w": W, "b": rand((2,), 3)}
    y = rand((2 * N, 2), 4)

    def mse(p, a, t):
        return fnp.mean((fnp.tanh(a @ p["w"] + p["b"]) - t) ** 2)

    def step(p, state, a, t):
        value, grads = value_and_grad(mse)(p, a, t)
        updates, state = opt.update(grads, state, p)
        return optim.apply_updates(p, updates), state, value

    def local_step(p, state, a, t):
        value, grads = value_and_grad(lambda q: lax.pmean(mse(q, a, t), "data"))(p)
        updates, state = opt.update(grads, state, p)
        return optim.apply_updates(p, updates), state, value

    sharded = jit(shard(local_step, mesh, (P(), P(), P("data"), P("data")), (P(), P(), P())))
    single = jit(step)
    p1, s1, p2, s2 = params, opt.init(params), params, opt.init(params)
    for _ in range(3):
        p1, s1, v1 = single(p1, s1, X, y)
        p2, s2, v2 = sharded(p2, s2, X, y)
        close(v2, v1)
    close(p2, p1)
    close(s2, s1)


def test_vmap_inside_shard_per_example_gradients(mesh):
    want = np.asarray(vmap(grad(whole_loss), in_axes=(None, 0))(W, X))
    # as in JAX: the replicated w's gradient is summed over the devices (per example index)
    summed = shard(vmap(grad(local_loss), in_axes=(None, 0)), mesh, (P(), P("data")), P("data"))(W, X)
    close(summed, np.tile(want.reshape(N, -1, 3, 2).sum(0), (N, 1, 1)))
    # a w made per-device on purpose gives the per-example gradients
    per_example = shard(lambda w, a: vmap(grad(local_loss), in_axes=(None, 0))(lax.pvary(w, "data"), a),
                        mesh, (P(), P("data")), P("data"))
    close(per_example(W, X), want)


def test_vmap_of_shard(mesh):
    ws = rand((3, 3, 2), 5)
    f = shard(grad(loss), mesh, (P(), P("data")), P())
    close(vmap(f, in_axes=(0, None))(ws, X), np.stack([grad(whole_loss)(w, X) for w in ws]))


def test_two_dimensional_mesh_values_varying_over_one_axis(mesh2):
    w, x = rand((3, 4), 6), rand((4, 3), 7)

    def local(w_block, x_block):   # x split over 'data', w's columns over 'model'
        return lax.psum(fnp.sum(fnp.tanh(x_block @ w_block)), ("data", "model"))

    f = shard(local, mesh2, (P(None, "model"), P("data")), P())
    close(f(w, x), whole_loss(w, x))
    # w's gradient varies over 'model' only: psum'd over 'data' by the pvary's transpose
    g = shard(grad(local), mesh2, (P(None, "model"), P("data")), P(None, "model"))(w, x)
    close(g, grad(whole_loss)(w, x))
    close(grad(f)(w, x), grad(whole_loss)(w, x))
    with pytest.raises(ValueError, match="varies across devices along mesh axes 'model'"):
        shard(grad(local), mesh2, (P(None, "model"), P("data")), P())(w, x)
    # psum over both axes of a value varying over 'data' only: cast over 'model' first (x2)
    rows = shard(lambda a: lax.psum(fnp.sum(a), ("data", "model")), mesh2, P("data"), P())(x)
    close(rows, 2 * np.sum(x), rtol=1e-4)


def test_avals_carry_the_varying_axes():
    from fgrad.core.types import ShapedArray
    a = ShapedArray((2,), np.float32, vma=frozenset({"data"}))
    assert a.str_short() == "f32[2]{V:data}" and a != ShapedArray((2,), np.float32)
    assert a.update(shape=(3,)).vma == {"data"} and a.strip_weak_type() is a
    assert hash(a) != hash(a.update(vma=frozenset()))


def test_scan_carry_that_becomes_varying_is_cast_at_init(mesh):
    def local(w, a):
        def body(c, wi):
            return c + wi * fnp.sum(a), None
        c, _ = lax.scan(body, fnp.zeros(()), w)
        return lax.psum(c, "data")

    def whole(w, a):
        return fnp.sum(w * N) * 0 + fnp.sum(w) * fnp.sum(a)

    w = rand((3,), 8)
    f = shard(local, mesh, (P(), P("data")), P())
    close(f(w, X), whole(w, X))
    close(shard(grad(local), mesh, (P(), P("data")), P())(w, X), grad(whole)(w, X))
    close(grad(f)(w, X), grad(whole)(w, X))


def test_fori_and_while_loop_carries(mesh):
    def local(w, a):
        out = lax.fori_loop(0, 3, lambda i, c: c * 0.5 + fnp.sum(a) * w, fnp.zeros_like(w))
        return lax.psum(fnp.sum(out), "data")

    def whole(w, a):
        c = fnp.zeros_like(w)
        for _ in range(3):
            c = c * 0.5 + fnp.sum(a) / N * w
        return fnp.sum(c) * N

    w = rand((3,), 9)
    close(shard(local, mesh, (P(), P("data")), P())(w, X), whole(w, X), rtol=1e-4)
    close(shard(grad(local), mesh, (P(), P("data")), P())(w, X), grad(whole)(w, X), rtol=1e-4)

    def counting(a):   # a while_loop whose carry becomes varying
        _, total = lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] + fnp.sum(a)), (0, 0.0))
        return lax.psum(total, "data")

    close(shard(counting, mesh, P("data"), P())(X), 3 * fnp.sum(X), rtol=1e-4)


def test_cond_with_a_varying_predicate(mesh):
    def local(w, a):
        return fnp.sum(lax.psum(lax.cond(fnp.sum(a) > 0, lambda: w * 2.0, lambda: w), "data"))

    blocks = np.asarray(X).reshape(N, -1, 3)
    factor = sum(2.0 if b.sum() > 0 else 1.0 for b in blocks)
    w = rand((3,), 10)
    close(shard(local, mesh, (P(), P("data")), P())(w, X), factor * np.sum(w))
    close(shard(grad(local), mesh, (P(), P("data")), P())(w, X), np.full(3, factor, np.float32))


# --- collectives' typing -------------------------------------------------------------------------------

def test_collectives_on_replicated_values_follow_jax(mesh):
    one = np.ones(2, np.float32)
    close(shard(lambda w: lax.psum(w, "data"), mesh, P(), P())(one), N * one)   # JAX: pvary, then psum
    close(shard(lambda w: lax.pmean(w, "data"), mesh, P(), P())(one), one)
    close(shard(lambda w: lax.pmax(w, "data"), mesh, P(), P())(one), one)
    gathered = shard(lambda a: lax.all_gather(a, "data", tiled=True), mesh, P("data"), P())(X)
    close(gathered, X)   # all_gather's result is the same on every device


def test_grad_through_all_gather(mesh):
    def local(a):
        return fnp.sum(fnp.tanh(lax.all_gather(a, "data", tiled=True)) ** 2)

    g = shard(grad(local), mesh, P("data"), P("data"))(X)
    close(g, grad(lambda a: fnp.sum(fnp.tanh(a) ** 2))(X))
    close(grad(shard(local, mesh, P("data"), P()))(X), grad(lambda a: fnp.sum(fnp.tanh(a) ** 2))(X))


@pytest.mark.parametrize("make", [
    lambda a: lax.ppermute(a, "data", [(i, (i + 1) % N) for i in range(N)]),
    lambda a: lax.psum_scatter(a, "data", tiled=True),
    lambda a: a * lax.axis_index("data").astype(fnp.float32),
], ids=["ppermute", "psum_scatter", "axis_index"])
def test_results_that_vary_are_refused_under_a_replicated_out_spec(mesh, make):
    w = np.ones((N, 2), np.float32)
    with pytest.raises(ValueError, match="varies across devices along mesh axes 'data'"):
        shard(make, mesh, P(), P())(w)


# --- the out_specs check and the escape hatch ------------------------------------------------------------

def test_varying_output_under_replicated_spec_names_path_axes_and_fix(mesh):
    def f(w, a):
        return {"loss": lax.psum(local_loss(w, a), "data"), "grads": grad(local_loss)(w, a),
                "h": fnp.tanh(a @ w)}
    with pytest.raises(ValueError) as err:
        shard(f, mesh, (P(), P("data")), {"loss": P(), "grads": P(), "h": P()})(W, X)
    message = str(err.value)
    assert "output ['h']" in message and "'data'" in message
    assert "lax.psum(x, 'data')" in message and "lax.pmean(x, 'data')" in message and "P('data')" in message
    out = shard(f, mesh, (P(), P("data")), {"loss": P(), "grads": P(), "h": P("data")})(W, X)
    close(out["h"], fnp.tanh(X @ W))
    close(out["grads"], grad(whole_loss)(W, X))   # the grads are already summed (typed)


def test_check_vma_false_keeps_the_untyped_behaviour(mesh):
    untyped = shard(grad(loss), mesh, (P(), P("data")), P(), check_vma=False)(W, X)
    # one device's gradient of the psum'd loss: the psum transposes to a psum (JAX gives the same)
    first = np.asarray(X)[: 2 * N // N]
    close(untyped, N * grad(whole_loss)(W, fnp.asarray(first)))
    text = str(fgrad.make_jaxpr(shard(grad(loss), mesh, (P(), P("data")), P(), check_vma=False))(W, X))
    assert "pvary" not in text and "{V:" not in text
    close(shard(lambda a: a * 2, mesh, P("data"), P(), check_vma=False)(X), 2 * np.asarray(X)[:2])
    # the shard-level transpose of the untyped path still gives the whole-batch gradient
    close(grad(shard(loss, mesh, (P(), P("data")), P(), check_vma=False))(W, X), grad(whole_loss)(W, X))


def test_grad_through_psum_scatter_ppermute_and_pmax(mesh):
    x = rand((4 * N, 3), 11)
    blocks = np.asarray(x).reshape(N, -1, 3)

    def scattered(a):
        return lax.psum(fnp.sum(lax.psum_scatter(a, "data", tiled=True) ** 2), "data")

    total = blocks.sum(0)
    close(shard(scattered, mesh, P("data"), P())(x), np.sum(total ** 2), rtol=1e-4)
    close(shard(grad(scattered), mesh, P("data"), P("data"))(x), np.tile(2 * total, (N, 1)), rtol=1e-4)

    ring = [(i, (i + 1) % N) for i in range(N)]

    def shifted(a):   # device r gets block r-1; weighting by the receiver's index
        w = (lax.axis_index("data") + 1).astype(fnp.float32)
        return lax.psum(fnp.sum(w * lax.ppermute(a, "data", ring) ** 2), "data")

    weights = np.array([(r + 1) % N + 1 for r in range(N)], np.float32)   # block r is received by r+1
    close(shard(grad(shifted), mesh, P("data"), P("data"))(x),
          (2 * blocks * weights[:, None, None]).reshape(-1, 3), rtol=1e-4)

    def biggest(a):
        return fnp.sum(lax.pmax(a, "data"))

    g = shard(grad(biggest), mesh, P("data"), P("data"))(x)
    close(g, (blocks == blocks.max(0)).astype(np.float32).reshape(-1, 3))


def test_custom_vjp_whose_bwd_gives_a_per_device_cotangent_for_a_replicated_input(mesh):
    @fgrad.custom_vjp
    def scale(w, a):
        return w * a

    scale.defvjp(lambda w, a: (w * a, (w, a)), lambda r, ct: (fnp.sum(ct * r[1], 0), ct * r[0]))
    w = rand((3,), 12)
    local = lambda w, a: lax.psum(fnp.sum(scale(w, a)), "data")
    want = grad(lambda w: fnp.sum(scale(w, X)))(w)
    close(shard(grad(local), mesh, (P(), P("data")), P())(w, X), want, rtol=1e-4)   # summed, as pvary would
    close(grad(shard(local, mesh, (P(), P("data")), P()))(w, X), want, rtol=1e-4)
