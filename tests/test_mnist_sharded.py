"""The tutorial's MNIST model (examples/mnist.py) trained for 20 Adam steps on 4 and 8 virtual
CPU devices gives the same losses and parameters as on one device (f32 tolerance), in both
forms: the two lines (device_put the model replicated and the batch split, jit the
single-device step; dropout on) and explicit ``shard`` differentiating the pmean of the loss. The
images are synthetic (no dataset needed). The tutorial's batch of 128 is ``slow``; CI runs
batch 16 (tests/transforms/test_shard.py runs a smaller convnet on 14x14 images)."""
import sys
from pathlib import Path

import numpy as np
import pytest

import fgrad
from fgrad import lax, nn, optim, random
from fgrad import numpy as fnp
from fgrad.devices import devices
from fgrad.sharding import Mesh, NamedSharding, P, ShardedArray, device_put
from fgrad.transforms.shard import shard

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import mnist as example  # noqa: E402

STEPS = 20
OPTIMIZER = optim.adam(1e-3)


def _loss(model, x_uint8, y, key=None):
    return nn.sparse_categorical_crossentropy(model(example.scale_pixels(x_uint8), dropout_key=key), y)


def _step(model, opt_state, x, y, key):
    loss, grads = fgrad.value_and_grad(_loss)(model, x, y, key)
    updates, opt_state = OPTIMIZER.update(grads, opt_state, model)
    return optim.apply_updates(model, updates), opt_state, loss


def _explicit_step(mesh):
    def local_step(model, opt_state, x, y):
        loss, grads = fgrad.value_and_grad(lambda m: lax.pmean(_loss(m, x, y), "data"))(model)
        updates, opt_state = OPTIMIZER.update(grads, opt_state, model)
        return optim.apply_updates(model, updates), opt_state, loss

    step = fgrad.jit(shard(local_step, mesh, (P(), P(), P("data"), P("data")), (P(), P(), P())))
    return lambda model, opt_state, x, y, key: step(model, opt_state, x, y)


def _batches(batch):
    rng = np.random.default_rng(0)
    xs = rng.integers(0, 256, (STEPS, batch, 1, 28, 28)).astype(np.uint8)
    ys = (xs[:, :, 0, 14, :].mean(-1) // 26).astype(np.int32)  # a learnable label in 0..9
    return xs, ys


def _train(step, batch, place_params=lambda t: t, place_batch=lambda t: t, dropout=True):
    xs, ys = _batches(batch)
    model = example.Model(key=random.key(0))
    model, opt_state = place_params((model, OPTIMIZER.init(model)))
    losses = []
    for i in range(STEPS):
        key = random.fold_in(random.key(1), i) if dropout else None
        model, opt_state, loss = step(model, opt_state, *place_batch((xs[i], ys[i])), key)
        losses.append(float(loss))
    return losses, model


_single: dict = {}


def _one_device(batch, dropout):
    if (batch, dropout) not in _single:
        _single[batch, dropout] = _train(fgrad.jit(_step), batch, dropout=dropout)
    return _single[batch, dropout]


def _assert_same(got, want):
    np.testing.assert_allclose(got[0], want[0], rtol=2e-4, atol=2e-5)
    assert want[0][-1] < want[0][0]  # it learns
    for a, b in zip(fgrad.tree.tree_leaves(got[1]), fgrad.tree.tree_leaves(want[1])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-3, atol=2e-4)


def _check_both_forms(n, batch):
    mesh = Mesh(devices(n), ("data",))
    replicated = lambda t: device_put(t, NamedSharding(mesh, P()))
    split = lambda t: device_put(t, NamedSharding(mesh, P("data")))
    two_lines = _train(fgrad.jit(_step), batch, replicated, split, dropout=True)
    _assert_same(two_lines, _one_device(batch, True))
    assert all(isinstance(leaf, ShardedArray) for leaf in fgrad.tree.tree_leaves(two_lines[1]))
    explicit = _train(_explicit_step(mesh), batch, dropout=False)
    _assert_same(explicit, _one_device(batch, False))


@pytest.mark.parametrize("n", [4, 8])
def test_tutorial_model_trains_the_same_on_n_devices(n):
    _check_both_forms(n, batch=16)


@pytest.mark.slow
@pytest.mark.parametrize("n", [4, 8])
def test_tutorial_model_at_batch_128_trains_the_same_on_n_devices(n):
    _check_both_forms(n, batch=128)
