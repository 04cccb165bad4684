"""The MNIST tutorial end to end (examples/mnist.py): a short training run must clearly beat
chance on the real test set; the step is one cached jitted program and is reproducible per
seed; the command line validates its flags. Needs the real data ($FGRAD_DATA_DIR/mnist)."""
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import fgrad
from fgrad import datasets, optim, random, tree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
import mnist as example  # noqa: E402


def _data_or_skip():
    if not os.environ.get("FGRAD_DATA_DIR"):
        pytest.skip("set FGRAD_DATA_DIR to the folder holding mnist/ (CI: ../shared/data)")
    try:
        return datasets.mnist(download=False)
    except datasets.DatasetUnavailableError as error:
        pytest.skip(f"MNIST not available offline: {error}")


@pytest.fixture(scope="module")
def data():
    return _data_or_skip()


def test_short_training_run_beats_90_percent(data):
    # 200 steps at batch 64 (lr 2e-3) take ~15 s compiled (~60 s on the reference evaluator);
    # the tutorial's settings (batch 128, lr 1e-3, 7000 steps) run in the slow test below.
    result = example.train(steps=200, batch_size=64, lr=2e-3, seed=0, eval_every=200, data=data, progress=False,
                           log=lambda line: None)
    (final_step, final_loss, final_accuracy), = result.curve
    assert final_step == 200
    assert final_accuracy >= 0.90, f"test accuracy {final_accuracy:.2%} after 200 steps"
    assert final_loss < 0.6
    assert len(result.step_ms) == 199 and result.compile_s > 0


@pytest.mark.slow
def test_tutorial_settings_reach_97_percent_in_1000_steps(data):
    result = example.train(steps=1000, batch_size=128, lr=1e-3, seed=0, eval_every=500, data=data, progress=False,
                           log=lambda line: None)
    assert result.curve[-1][2] >= 0.97, result.curve


def test_untrained_model_is_near_chance(data):
    model = example.Model(key=random.key(0))
    acc = example.accuracy(model, data[2][:1000], data[3][:1000], batch_size=500)
    assert 0.0 <= acc < 0.35


def test_step_is_one_cached_program_and_reproducible(data):
    X_train, Y_train = data[0], data[1]
    opt = optim.adam(1e-3)

    def run(seed):
        model = example.Model(key=random.key(seed))
        state = opt.init(model)
        step = example.make_step(opt, X_train, Y_train, 16)
        losses = []
        for i in range(3):
            model, state, loss = step(model, state, random.fold_in(random.key(seed), i))
            losses.append(float(loss))
        return step, model, state, losses

    step, model_a, state_a, losses_a = run(1)
    assert len(step._cache) == 1, "the training step was traced more than once"
    _, model_b, state_b, losses_b = run(1)
    assert losses_a == losses_b
    for a, b in zip(tree.tree_leaves((model_a, state_a)), tree.tree_leaves((model_b, state_b))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert type(model_a) is example.Model and int(state_a[0].count) == 3
    assert all(np.isfinite(losses_a))


def test_step_jaxpr_holds_sampling_forward_backward_and_adam(data):
    opt = optim.adam(1e-3)
    model = example.Model(key=random.key(0))
    step = example.make_step(opt, data[0], data[1], 8)
    jaxpr = str(fgrad.make_jaxpr(step)(model, opt.init(model), random.key(1)))
    for primitive in ("threefry2x32", "gather", "conv_general_dilated", "sqrt"):
        assert primitive in jaxpr, f"{primitive} missing from the jitted step"


def test_command_line_validates_flags():
    example._configure_devices(None, 2)  # two virtual CPU devices are always available
    with pytest.raises(SystemExit, match="must be >= 1"):
        example._configure_devices(None, 0)
    with pytest.raises(SystemExit):
        example.parse_args(["--steps", "0"])
    args = example.parse_args(["--steps", "5", "--batch-size", "32", "--lr", "0.01", "--eval-every", "5"])
    assert (args.steps, args.batch_size, args.lr, args.eval_every, args.devices) == (5, 32, 0.01, 5, 1)


def test_two_device_training_matches_one_device(data):
    # the tutorial's "two lines": replicated model, batch split over 2 virtual devices
    one = example.train(steps=5, batch_size=32, seed=0, eval_every=5, data=data, progress=False,
                        log=lambda line: None)
    two = example.train(steps=5, batch_size=32, seed=0, eval_every=5, data=data, progress=False,
                        log=lambda line: None, devices=2)
    np.testing.assert_allclose(two.curve[-1][1], one.curve[-1][1], rtol=1e-4)
    for a, b in zip(tree.tree_leaves(one.model), tree.tree_leaves(two.model)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-5)
