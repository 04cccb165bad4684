"""shard (shard_map semantics) on 4 and 8 virtual CPU devices: every collective equals its
single-device definition (NumPy, and vmap with axis_name over the device axis); grad, jvp,
vmap and jit compose with shard; mistakes are errors (never hangs); and a small MNIST-like
convnet trains identically on 1, 4 and 8 devices, explicitly and by placement ("two lines")."""
import warnings

import numpy as np
import pytest

import fgrad
from fgrad import grad, jit, jvp, lax, nn, optim, random, vmap
from fgrad import numpy as fnp
from fgrad.devices import CollectiveError, devices
from fgrad.ops.collective import UnboundAxisNameError
from fgrad.sharding import Mesh, NamedSharding, P, ShardedArray, device_put
from fgrad.transforms.data_parallel import DataParallelError
from fgrad.transforms.shard import shard

# every shard here runs natively: collectives inside calls and control flow included
pytestmark = pytest.mark.filterwarnings("error::fgrad.ReferencePathWarning")

SIZES = [4, 8]


def mesh1(n, name="i"):
    return Mesh(devices(n), (name,))


def rand(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def close(a, b, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


def via_vmap(f, x, n):
    """The oracle: vmap(f, axis_name='i') over the device axis of x's blocks, blocks put back."""
    blocks = fnp.asarray(np.asarray(x).reshape(n, -1, *np.shape(x)[1:]))
    out = np.asarray(vmap(f, axis_name="i")(blocks))
    return out.reshape(-1, *out.shape[2:])


# --- collectives equal their definitions ------------------------------------------------------------

@pytest.mark.parametrize("n", SIZES)
def test_all_reduces(n):
    x = rand((2 * n, 3))
    blocks = x.reshape(n, 2, 3)
    for fun, reduce in ((lax.psum, np.sum), (lax.pmean, np.mean), (lax.pmax, np.max), (lax.pmin, np.min)):
        f = lambda b, fun=fun: fun(b, "i")
        got = shard(f, mesh1(n), P("i"), P("i"))(x)
        close(got, np.tile(reduce(blocks, 0), (n, 1)))
        close(got, via_vmap(f, x, n))
        close(shard(f, mesh1(n), P("i"), P())(x), reduce(blocks, 0))  # the same on every device


@pytest.mark.parametrize("n", SIZES)
def test_axis_index_and_integer_psum(n):
    out = shard(lambda b: b + lax.axis_index("i"), mesh1(n), P("i"), P("i"))(np.zeros(n, np.int32))
    assert np.asarray(out).tolist() == list(range(n))
    total = shard(lambda b: lax.psum(b, "i"), mesh1(n), P("i"), P())(np.arange(n, dtype=np.int32))
    assert np.asarray(total).tolist() == [n * (n - 1) // 2]


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("axis,tiled", [(0, False), (1, False), (0, True), (1, True)])
def test_all_gather(n, axis, tiled):
    x = rand((2 * n, 3))
    blocks = list(x.reshape(n, 2, 3))
    f = lambda b: lax.all_gather(b, "i", axis=axis, tiled=tiled)
    want = np.concatenate(blocks, axis) if tiled else np.stack(blocks, axis)
    close(shard(f, mesh1(n), P("i"), P())(x), want)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dim,tiled", [(0, False), (1, False), (0, True), (1, True)])
def test_psum_scatter(n, dim, tiled):
    shape = [3, 3]
    shape[dim] = 2 * n if tiled else n
    x = rand((n * shape[0], shape[1]))
    f = lambda b: lax.psum_scatter(b, "i", scatter_dimension=dim, tiled=tiled)
    total = x.reshape(n, *shape).sum(0)
    parts = np.split(total, n, dim) if tiled else [np.take(total, k, dim) for k in range(n)]
    got = shard(lambda b: f(b)[None], mesh1(n), P("i"), P("i"))(x)
    close(got, np.stack(parts), rtol=1e-5, atol=1e-5)
    close(got, via_vmap(lambda b: f(b)[None], x, n).reshape(np.shape(got)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n", SIZES)
def test_ppermute_ring_and_partial_perm(n):
    x = rand((n, 2))
    ring = [(k, (k + 1) % n) for k in range(n)]
    got = shard(lambda b: lax.ppermute(b, "i", ring), mesh1(n), P("i"), P("i"))(x)
    close(got, np.roll(x, 1, axis=0))
    half = [(0, 1)]
    got = shard(lambda b: lax.ppermute(b, "i", half), mesh1(n), P("i"), P("i"))(x)
    want = np.zeros_like(x)
    want[1] = x[0]
    close(got, want)


def test_collectives_on_a_two_axis_mesh():
    mesh = Mesh(np.array(devices(8), dtype=object).reshape(2, 4), ("x", "y"))
    x = rand((4, 8))
    grid = x.reshape(2, 2, 4, 2).transpose(0, 2, 1, 3)  # [x, y, block rows, block cols]
    close(shard(lambda b: lax.psum(b, "x"), mesh, P("x", "y"), P(None, "y"))(x), x[:2] + x[2:])
    close(shard(lambda b: lax.psum(b, ("x", "y")), mesh, P("x", "y"), P())(x), grid.sum((0, 1)))
    close(shard(lambda b: lax.all_gather(b, "y", axis=1, tiled=True), mesh, P("x", "y"), P("x"))(x), x)
    idx = shard(lambda b: (lax.axis_index("x") * 10 + lax.axis_index("y"))[None, None] + 0 * b[:1, :1].astype(np.int32),
                mesh, P("x", "y"), P("x", "y"))(x)
    assert np.asarray(idx).tolist() == [[0, 1, 2, 3], [10, 11, 12, 13]]


# --- compositions with grad, jvp, vmap, jit ----------------------------------------------------------

def _model_pair(n):
    """shard(f) and its single-device definition: a replicated weight, a batch split over 'i'."""
    mesh = mesh1(n)
    local = lambda w, x: lax.psum(fnp.sum(fnp.tanh(x @ w)), "i")
    sharded = shard(local, mesh, (P(), P("i")), P())
    single = lambda w, x: fnp.sum(fnp.tanh(x @ w))
    return sharded, single


@pytest.mark.parametrize("n", SIZES)
def test_grad_of_shard(n):
    sharded, single = _model_pair(n)
    w, x = fnp.asarray(rand((3, 2), 1)), fnp.asarray(rand((2 * n, 3), 2))
    close(sharded(w, x), single(w, x), rtol=1e-5)
    for argnums in (0, 1, (0, 1)):
        got, want = grad(sharded, argnums)(w, x), grad(single, argnums)(w, x)
        for g, h in zip(fgrad.tree.tree_leaves(got), fgrad.tree.tree_leaves(want)):
            close(g, h, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n", SIZES)
def test_grad_through_gather_permute_and_split_outputs(n):
    mesh, x = mesh1(n), fnp.asarray(rand((2 * n,), 3))
    ring = [(k, (k + 1) % n) for k in range(n)]

    def local(b):
        whole = lax.all_gather(b, "i", tiled=True)            # replicated, transposes to psum_scatter
        moved = lax.ppermute(b, "i", ring)                     # split, transposes to the inverse ring
        return fnp.sum(whole ** 3) + lax.psum(fnp.sum(moved * b), "i"), lax.psum(b, "i") * b

    f = shard(local, mesh, P("i"), (P(), P("i")))

    def single(x):
        blocks = x.reshape(n, 2)
        s = fnp.sum(x ** 3) + fnp.sum(fnp.roll(blocks, 1, axis=0) * blocks)
        return s, (blocks * fnp.sum(blocks, axis=0)).reshape(-1)

    loss = lambda fun: lambda x: fun(x)[0] + fnp.sum(fun(x)[1] ** 2)
    close(loss(f)(x), loss(single)(x), rtol=1e-5)
    close(grad(loss(f))(x), grad(loss(single))(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("n", SIZES)
def test_shard_of_grad_with_pmean(n):
    mesh = mesh1(n)
    w, x = fnp.asarray(rand((3, 2), 1)), fnp.asarray(rand((2 * n, 3), 2))
    per_example = lambda w, x: fnp.mean(fnp.tanh(x @ w) ** 2)
    local = lambda w, x: lax.pmean(grad(per_example)(w, x), "i")
    # typed (JAX's check_vma=True): the replicated w's gradient is already summed over the
    # devices (pvary transposes to psum), so pmean leaves the sum of the n local gradients
    close(shard(local, mesh, (P(), P("i")), P())(w, x), n * grad(per_example)(w, x), rtol=1e-5, atol=1e-6)
    # the mean of the per-device losses gives the whole batch's gradient
    mean_loss = lambda w, x: lax.pmean(per_example(w, x), "i")
    close(shard(grad(mean_loss), mesh, (P(), P("i")), P())(w, x), grad(per_example)(w, x), rtol=1e-5, atol=1e-6)
    # untyped (check_vma=False): each device's own gradient, averaged by the pmean
    close(shard(local, mesh, (P(), P("i")), P(), check_vma=False)(w, x), grad(per_example)(w, x),
          rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n", SIZES)
def test_jvp_vmap_and_jit_of_shard(n):
    sharded, single = _model_pair(n)
    w, x = fnp.asarray(rand((3, 2), 1)), fnp.asarray(rand((2 * n, 3), 2))
    tw, tx = fnp.asarray(rand((3, 2), 3)), fnp.asarray(rand((2 * n, 3), 4))
    got, want = jvp(sharded, (w, x), (tw, tx)), jvp(single, (w, x), (tw, tx))
    close(got[0], want[0], rtol=1e-5)
    close(got[1], want[1], rtol=1e-4, atol=1e-5)
    ws = fnp.asarray(rand((3, 3, 2), 5))
    close(vmap(sharded, in_axes=(0, None))(ws, x), [single(wk, x) for wk in ws], rtol=1e-5)
    xs = fnp.asarray(rand((2, 2 * n, 3), 6))
    close(vmap(sharded, in_axes=(None, 0))(w, xs), [single(w, xk) for xk in xs], rtol=1e-5)
    close(jit(sharded)(w, x), single(w, x), rtol=1e-5)
    close(jit(grad(sharded))(w, x), grad(single)(w, x), rtol=1e-5, atol=1e-6)
    close(grad(jit(sharded), 1)(w, x), grad(single, 1)(w, x), rtol=1e-5, atol=1e-6)


def test_vmap_with_its_own_axis_name_inside_shard():
    n = 4
    x = rand((n, 3))
    f = shard(lambda b: vmap(lambda r: r - lax.pmean(r, "v"), axis_name="v")(b[0])[None] + lax.psum(b, "i"),
              mesh1(n), P("i"), P("i"))
    want = (x - x.mean(1, keepdims=True)) + x.sum(0)
    close(f(x), want, rtol=1e-5, atol=1e-6)


def test_collectives_over_an_enclosing_vmap_axis_and_inside_loops():
    mesh, x = mesh1(4), rand((3, 8))
    f = shard(lambda b: lax.psum(b, "i") + lax.psum(b, "v"), mesh, P("i"), P("i"))
    blocks = x.reshape(3, 4, 2)
    close(vmap(f, axis_name="v")(x), np.tile(blocks.sum(1, keepdims=True), (1, 4, 1)).reshape(3, 8) + x.sum(0),
          rtol=1e-5, atol=1e-5)
    looped = shard(lambda b: lax.fori_loop(0, 3, lambda i, c: c + lax.psum(b, "i"), b * 0), mesh, P("i"), P("i"))
    single = lambda v: 3 * fnp.tile(v.reshape(4, 2).sum(0), 4)
    v = fnp.asarray(x[0])
    loss = lambda fun: lambda v: fnp.sum(fun(v) ** 2)
    # a collective inside a loop: the loop runs on the host around its body's compiled stages
    with warnings.catch_warnings():
        warnings.simplefilter("error", fgrad.ReferencePathWarning)
        close(looped(v), single(v), rtol=1e-5, atol=1e-5)
        close(grad(loss(looped))(v), grad(loss(single))(v), rtol=1e-5, atol=1e-4)
        close(jit(grad(loss(looped)))(v), grad(loss(single))(v), rtol=1e-5, atol=1e-4)


def test_eager_shard_returns_sharded_arrays_that_feed_the_next_call():
    mesh, x = mesh1(4), rand((8, 2))
    double = shard(lambda b: b * 2, mesh, P("i"), P("i"))
    y = double(x)
    assert isinstance(y, ShardedArray) and y.sharding == NamedSharding(mesh, P("i"))
    assert y.shards[1].shape == (2, 2)
    close(double(y), x * 4)


# --- errors, never hangs -----------------------------------------------------------------------------------

def test_spec_errors_are_raised_before_tracing():
    mesh, x = mesh1(4), np.zeros((8, 2), np.float32)
    traced = []

    def f(*args):
        traced.append(1)
        return args[0]

    with pytest.raises(ValueError, match=r"in_specs has 1 entries but f was called with 2 positional"):
        shard(f, mesh, (P("i"),), P("i"))(x, x)
    with pytest.raises(ValueError, match=r"in_specs must be a PartitionSpec or a pytree prefix.*at \[0\]: expected a dict with keys \[.a.\]"):
        shard(f, mesh, ({"a": P()},), P("i"))({"b": x})
    with pytest.raises(ValueError, match=r"argument \[0\]\['w'\].*names mesh axis 'j'"):
        shard(f, mesh, ({"w": P("j")},), P("i"))({"w": x})
    with pytest.raises(ValueError, match=r"argument \[1\].*dimension 1 of size 2 is not divisible by mesh "
                                         r"axis i \(i=4, 4 parts\)"):
        shard(f, mesh, (P("i"), P(None, "i")), P("i"))(x, x)
    other = device_put(x, NamedSharding(mesh1(2), P("i")))
    with pytest.raises(ValueError, match="different meshes"):
        shard(f, mesh, P("i"), P("i"))(other)
    assert not traced
    with pytest.raises(ValueError, match=r"output.*names mesh axis 'k'"):
        shard(f, mesh, P("i"), P("k"))(x)


def test_unbound_collective_axis():
    mesh, x = mesh1(4), np.zeros(4, np.float32)
    with pytest.raises(UnboundAxisNameError, match="'j'"):
        shard(lambda b: lax.all_gather(b, "j"), mesh, P("i"), P())(x)
    with pytest.raises(UnboundAxisNameError, match="'j'"):
        shard(lambda b: lax.psum(b, "j"), mesh, P("i"), P("i"))(x)


def test_replicated_output_that_differs_is_caught_in_debug_mode():
    mesh, x = mesh1(4), np.arange(4, dtype=np.float32)
    with fgrad.config.override(debug=1):
        with pytest.raises(ValueError, match="same on every device along mesh axes \\['i'\\]"):
            shard(lambda b: b, mesh, P("i"), P(), check_vma=False)(x)
    # device 0's block
    assert np.asarray(shard(lambda b: b, mesh, P("i"), P(), check_vma=False)(x)).tolist() == [0.0]


def test_collectives_in_diverging_branches_raise_instead_of_hanging():
    mesh, x = mesh1(4), np.ones(4, np.float32)

    def local(b):
        return lax.cond(lax.axis_index("i") == 0, lambda v: lax.psum(v, "i"), lambda v: v * 2, b)

    # typed, the predicate is known to vary over 'i': an error before anything runs
    with pytest.raises(ValueError, match=r"a `cond` has collectives over mesh axes 'i'.*differs between "
                                         r"devices along mesh axes 'i'"):
        shard(local, mesh, P("i"), P("i"))(x)
    # untyped, the devices find out when they diverge
    with pytest.raises(CollectiveError, match="same collectives in the same order"):
        shard(local, mesh, P("i"), P("i"), check_vma=False)(x)


def test_data_parallel_errors_say_what_to_do():
    mesh = mesh1(4, "data")
    x = device_put(np.arange(8, dtype=np.float32), NamedSharding(mesh, P("data")))
    with pytest.raises(DataParallelError, match="fgrad.shard"):
        jit(lambda v: v[::2])(x)
    y = device_put(np.ones(8, np.float32), NamedSharding(mesh1(2, "data"), P("data")))
    with pytest.raises(DataParallelError, match="different meshes"):
        jit(lambda a, b: a + b)(x, y)


# --- data parallelism by placement: propagation on small programs ------------------------------------------

@pytest.mark.parametrize("n", SIZES)
def test_two_lines_on_small_programs(n):
    mesh = mesh1(n, "data")
    rep, split = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    w, x, y = rand((3, 2), 1), rand((4 * n, 3), 2), rand((4 * n, 2), 3)

    programs = [
        lambda w, x, y: fnp.mean((x @ w - y) ** 2),                             # partial sum -> psum
        lambda w, x, y: fnp.tanh(x @ w) * 2 + y,                                # stays split
        lambda w, x, y: fnp.max(x, axis=0) + fnp.sum(w),                         # pmax
        lambda w, x, y: (x.reshape(n, 4, 3).transpose(1, 0, 2) * 1.0).sum(0),    # split moves to dim 0 -> 1
        lambda w, x, y: fnp.argmax(x @ w, axis=1),                              # per-row op on split rows
        lambda w, x, y: grad(lambda w: fnp.sum(fnp.sin(x @ w) * y))(w),          # gradient all-reduce
        lambda w, x, y: fnp.cumsum(x, axis=1) + fnp.arange(3.0) * fnp.ones((4 * n, 1)),  # iota split locally
    ]
    for f in programs:
        got = jit(f)(device_put(w, rep), device_put(x, split), device_put(y, split))
        close(got, f(fnp.asarray(w), fnp.asarray(x), fnp.asarray(y)), rtol=1e-5, atol=1e-5)
        assert isinstance(got, ShardedArray)


def test_gradient_all_reduce_is_one_exchange_of_one_psum_per_gradient():
    from fgrad.core.ir import typecheck_jaxpr
    from fgrad.compile.cache import executables
    from fgrad.runtime.device_program import DeviceProgram
    mesh = mesh1(4, "data")
    w, b, x, y = rand((3, 2), 1), rand((2,), 2), rand((8, 3), 3), rand((8, 2), 4)

    @jit
    def step(w, b, x, y):
        loss, (gw, gb) = fgrad.value_and_grad(lambda w, b: fnp.mean((fnp.tanh(x @ w + b) - y) ** 2), (0, 1))(w, b)
        return w - 0.1 * gw, b - 0.1 * gb, loss

    rep, split = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    got = step(device_put(w, rep), device_put(b, rep), device_put(x, split), device_put(y, split))
    want = step(*map(fnp.asarray, (w, b, x, y)))
    for g, h in zip(got, want):
        close(g, h, rtol=1e-5, atol=1e-6)
    plan = next(p for p in executables.programs("data-parallel") if p.jaxpr is step._cache[next(iter(step._cache))].jaxpr)
    typecheck_jaxpr(plan.body.jaxpr)
    assert [e.primitive.name for e in plan.body.eqns].count("psum") == 3  # gw, gb and the loss
    program = DeviceProgram(plan.body, mesh, "step")
    assert [len(bd.eqns) for bd in program.boundaries if bd.eqns] == [3]


# --- the MNIST-like convnet: 20 Adam steps on 1, 4 and 8 devices --------------------------------------------

class SmallConvNet(nn.Module):
    """conv -> relu -> maxpool -> conv -> relu -> maxpool -> flatten -> dropout -> dense (14x14 images)."""

    def __init__(self, *, key):
        k1, k2, k3 = random.split(key, 3)
        self.c1 = nn.Conv2d(1, 4, 3, key=k1)
        self.c2 = nn.Conv2d(4, 8, 3, key=k2)
        self.l1 = nn.Linear(32, 10, key=k3)

    def __call__(self, x, dropout_key=None):
        x = nn.max_pool2d(nn.relu(self.c1(x)), 2)
        x = nn.max_pool2d(nn.relu(self.c2(x)), 2)
        x = nn.dropout(nn.flatten(x), 0.25, key=dropout_key, deterministic=dropout_key is None)
        return self.l1(x)


BATCH, STEPS = 16, 20
OPTIMIZER = optim.adam(1e-2)


def _loss(model, x_uint8, y, key=None):
    return nn.sparse_categorical_crossentropy(model(x_uint8.astype(fnp.float32) / 255.0, key), y)


def _step(model, opt_state, x, y, key):
    loss, grads = fgrad.value_and_grad(_loss)(model, x, y, key)
    updates, opt_state = OPTIMIZER.update(grads, opt_state, model)
    return optim.apply_updates(model, updates), opt_state, loss


def _data():
    rng = np.random.default_rng(0)
    xs = rng.integers(0, 256, (STEPS, BATCH, 1, 14, 14)).astype(np.uint8)
    ys = (xs.reshape(STEPS, BATCH, -1).mean(-1) > 127.5).astype(np.int32) + 2 * (xs[:, :, 0, 7, 7] > 128)
    return xs, ys


def _train(step, model, place_params, place_batch, with_dropout):
    xs, ys = _data()
    opt_state = OPTIMIZER.init(model)
    model, opt_state = place_params((model, opt_state))
    losses = []
    for i in range(STEPS):
        key = random.fold_in(random.key(1), i) if with_dropout else None
        model, opt_state, loss = step(model, opt_state, *place_batch((xs[i], ys[i])), key)
        losses.append(float(loss))
    return losses, model


@pytest.fixture(scope="module")
def single_device_runs():
    model = SmallConvNet(key=random.key(0))
    step = jit(_step)
    ident = lambda t: fgrad.tree.tree_map(fnp.asarray, t)
    return {dropout: _train(step, model, ident, ident, dropout) for dropout in (False, True)}


def _assert_same_training(got, want):
    np.testing.assert_allclose(got[0], want[0], rtol=2e-4, atol=2e-5)
    assert want[0][-1] < want[0][0]  # it learns
    for a, b in zip(fgrad.tree.tree_leaves(got[1]), fgrad.tree.tree_leaves(want[1])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-3, atol=2e-4)


@pytest.mark.parametrize("n", SIZES)
def test_two_line_data_parallel_training_matches_one_device(n, single_device_runs):
    mesh = Mesh(devices(n), ("data",))
    params = lambda t: device_put(t, NamedSharding(mesh, P()))
    batch = lambda t: device_put(t, NamedSharding(mesh, P("data")))
    got = _train(jit(_step), SmallConvNet(key=random.key(0)), params, batch, with_dropout=True)
    _assert_same_training(got, single_device_runs[True])
    assert all(isinstance(leaf, ShardedArray) for leaf in fgrad.tree.tree_leaves(got[1]))


@pytest.mark.parametrize("n", SIZES)
def test_explicit_shard_training_matches_one_device(n, single_device_runs):
    mesh = Mesh(devices(n), ("data",))

    def local_step(model, opt_state, x, y):
        # JAX's form: the gradient of the mean loss over the devices is the whole batch's
        loss, grads = fgrad.value_and_grad(lambda m: lax.pmean(_loss(m, x, y), "data"))(model)
        updates, opt_state = OPTIMIZER.update(grads, opt_state, model)
        return optim.apply_updates(model, updates), opt_state, loss

    step = jit(shard(local_step, mesh, (P(), P(), P("data"), P("data")), (P(), P(), P())))
    ident = lambda t: fgrad.tree.tree_map(fnp.asarray, t)
    got = _train(lambda m, s, x, y, key: step(m, s, x, y), SmallConvNet(key=random.key(0)), ident, ident,
                 with_dropout=False)
    _assert_same_training(got, single_device_runs[False])


# --- JAX's names: jax.shard_map and jax.experimental.shard_map.shard_map -----------------------------

def test_shard_map_under_jax_names_equals_shard():
    from functools import partial
    from fgrad.experimental.shard_map import shard_map as old_shard_map
    x = rand((8, 3))
    mesh = mesh1(4)
    want = np.asarray(shard(lambda b: lax.psum(b.sum(0), "i"), mesh, P("i"), P())(x))

    @partial(fgrad.shard_map, mesh=mesh, in_specs=P("i"), out_specs=P())
    def total(b):
        return lax.psum(b.sum(0), "i")
    close(total(x), want)
    close(fgrad.shard_map(lambda b: lax.psum(b.sum(0), "i"), mesh=mesh, in_specs=(P("i"),), out_specs=P(),
                          axis_names={"i"})(x), want)
    close(old_shard_map(lambda b: lax.psum(b.sum(0), "i"), mesh, P("i"), P(), check_rep=False)(x), want)
    close(jit(total)(x), want)
    close(np.asarray(x).sum(0), want)                           # and it is the whole sum


def test_shard_map_asks_for_what_it_cannot_infer():
    from fgrad.experimental.shard_map import shard_map as old_shard_map
    f = lambda b: b                                               # noqa: E731
    with pytest.raises(TypeError, match="pass mesh="):
        fgrad.shard_map(f, in_specs=P("i"), out_specs=P("i"))
    with pytest.raises(TypeError, match="pass in_specs="):
        fgrad.shard_map(f, mesh=mesh1(4), out_specs=P("i"))
    mesh2 = Mesh(np.asarray(devices(4), dtype=object).reshape(2, 2), ("a", "b"))
    with pytest.raises(NotImplementedError, match="manual over only"):
        fgrad.shard_map(f, mesh=mesh2, in_specs=P("a"), out_specs=P("a"), axis_names={"a"})
    with pytest.raises(NotImplementedError, match="auto="):
        old_shard_map(f, mesh2, P("a"), P("a"), auto=frozenset({"b"}))
