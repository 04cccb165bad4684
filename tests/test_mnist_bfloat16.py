"""Mixed precision on the MNIST tutorial model (examples/mnist.py): float32 master weights,
each step's forward and backward pass in bfloat16 (weights, inputs and activations; the
contractions accumulate in float32 and round once), the loss and Adam's updates in float32.
30 steps on the real data must train it, compiled natively. Needs $FGRAD_DATA_DIR/mnist."""
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import fgrad
import fgrad.numpy as fnp
from fgrad import datasets, nn, optim, random, tree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
import mnist as example  # noqa: E402


@pytest.fixture(scope="module")
def data():
    if not os.environ.get("FGRAD_DATA_DIR"):
        pytest.skip("set FGRAD_DATA_DIR to the folder holding mnist/ (CI: ../shared/data)")
    try:
        return datasets.mnist(download=False)
    except datasets.DatasetUnavailableError as error:
        pytest.skip(f"MNIST not available offline: {error}")


def in_bfloat16(model):
    return tree.tree_map(lambda p: p.astype(fnp.bfloat16), model)


def make_step(X, Y, optimizer, batch_size=64):
    @fgrad.jit
    def step(model, opt_state, key):
        sample_key, dropout_key = random.split(key)
        index = random.randint(sample_key, (batch_size,), 0, X.shape[0])
        x = example.scale_pixels(X[index]).astype(fnp.bfloat16)

        def loss_fn(m):
            logits = in_bfloat16(m)(x, dropout_key=dropout_key)
            return nn.sparse_categorical_crossentropy(logits.astype(fnp.float32), Y[index])

        loss, grads = fgrad.value_and_grad(loss_fn)(model)
        updates, opt_state = optimizer.update(grads, opt_state, model)
        return optim.apply_updates(model, updates), opt_state, loss
    return step


def test_bfloat16_training_run_learns(data):
    X, Y, X_test, Y_test = data
    model = example.Model(key=random.key(0))
    x = example.scale_pixels(X_test[:256]).astype(fnp.bfloat16)
    logits = in_bfloat16(model)(x)
    assert logits.dtype == fnp.bfloat16
    full = np.asarray(model(example.scale_pixels(X_test[:256])))     # float32, same weights
    np.testing.assert_allclose(np.asarray(logits).astype(np.float32), full, rtol=0.05, atol=0.05)

    optimizer = optim.adam(2e-3)
    opt_state, step, key, losses = optimizer.init(model), make_step(X, Y, optimizer), random.key(1), []
    with warnings.catch_warnings():
        warnings.simplefilter("error", fgrad.ReferencePathWarning)     # natively compiled
        for _ in range(30):
            key, sub = random.split(key)
            model, opt_state, loss = step(model, opt_state, sub)
            losses.append(float(loss))
    assert all(p.dtype == np.float32 for p in tree.tree_leaves(model))
    assert losses[0] > 2.0 and np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5]), losses
    predictions = np.argmax(np.asarray(fgrad.jit(lambda m, v: in_bfloat16(m)(v))(model, x)).astype(np.float32), axis=1)
    accuracy = float(np.mean(predictions == np.asarray(Y_test[:256])))
    assert accuracy > 0.7, accuracy
