"""examples/gpt.py: a tiny GPT trained for 20 steps on a repetitive text lowers its loss from
about ln(vocab) (nanoGPT's init makes the first logits nearly uniform); the model is causal;
parameters round-trip through state_dict / load_state_dict under PyTorch's names; sampling
follows softmax(logits); generation slides its fixed window; the command line checks flags."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest

import fgrad.numpy as fnp
from fgrad import random

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
import gpt as example  # noqa: E402

TINY = example.GPTConfig(vocab_size=6, context=8, layers=1, heads=2, d_model=16)
TEXT = "hello world, " * 40


def test_loss_starts_near_uniform_and_decreases_on_a_repetitive_text():
    lines = []
    result = example.train(TEXT, TINY, steps=20, batch=8, lr=1e-2, seed=0, log_every=10, log=lines.append)
    losses = result.losses
    assert len(losses) == 20 and all(np.isfinite(losses))
    # 9 distinct characters; the first logits are nearly uniform, the own token's a little
    # higher (its embedding is in the residual stream and the output layer is tied)
    assert abs(losses[0] - math.log(9)) < 0.15
    assert np.mean(losses[-3:]) < losses[0] - 0.8, losses   # ~2.2 -> ~0.9 (the bigrams)
    assert any(line.startswith("step    20  train loss") for line in lines)


def test_logits_at_a_position_ignore_later_tokens():
    model = example.build_model(TINY, seed=1)
    ids = np.array([[1, 2, 3, 4, 5, 0, 1, 2]], np.int32)
    changed = ids.copy()
    changed[0, 5:] = [3, 3, 3]
    a, b = np.asarray(model(fnp.asarray(ids))), np.asarray(model(fnp.asarray(changed)))
    assert a.shape == (1, 8, 6)
    np.testing.assert_allclose(a[:, :5], b[:, :5], rtol=1e-5, atol=1e-6)
    assert not np.allclose(a[:, 5:], b[:, 5:])


def test_state_dict_uses_pytorch_names_and_round_trips():
    params = example.init_params(TINY, seed=2)
    model = example.build_model(TINY, seed=2)
    names = example.state_dict(model)
    assert set(names) == set(params)
    assert "blocks.0.attn.in_proj_weight" in names and "blocks.0.attn.out_proj.bias" in names
    for name, value in names.items():
        np.testing.assert_array_equal(np.asarray(value), params[name])
    with pytest.raises(ValueError, match=r"missing \['ln_f.bias'\]"):
        example.load_state_dict(model, {k: v for k, v in params.items() if k != "ln_f.bias"})
    with pytest.raises(ValueError, match="wte.weight has shape"):
        example.load_state_dict(model, {**params, "wte.weight": np.zeros((3, 3), np.float32)})


def test_sample_logits_follows_the_softmax():
    probs = np.array([0.6, 0.3, 0.1])
    logits = fnp.asarray(np.tile(np.log(probs).astype(np.float32), (4000, 1)))
    draws = np.asarray(example.sample_logits(random.key(3), logits))
    freq = np.bincount(draws, minlength=3) / draws.size
    np.testing.assert_allclose(freq, probs, atol=4 * np.sqrt(0.25 / draws.size))


def test_generate_slides_a_fixed_window_and_is_reproducible():
    model = example.build_model(TINY, seed=4)
    prompt = [1, 2, 3, 4, 5, 0, 1, 2, 3, 4]           # longer than the context (8)
    a = example.generate(model, prompt, 12, random.key(5), temperature=0.7)
    b = example.generate(model, prompt, 12, random.key(5), temperature=0.7)
    assert a == b and len(a) == 12 and all(0 <= i < 6 for i in a)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        example.generate(model, prompt, 1, random.key(5), temperature=0.0)


def test_command_line_checks_its_flags():
    assert example.parse_args(["--layers", "2", "t.txt"]).layers == 2
    with pytest.raises(SystemExit):
        example.parse_args(["--d-model", "10", "--heads", "4"])
    with pytest.raises(SystemExit):
        example.parse_args(["--steps", "0"])
