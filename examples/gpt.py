"""Train a small character-level GPT (nanoGPT's shakespeare_char model, scaled down) with fgrad.

The model: token and learned position embeddings, ``--layers`` pre-LayerNorm transformer blocks
(causal multi-head self-attention, then an MLP 4x wide with GELU, tanh approximation), a
final LayerNorm, and an output layer tied to the token embedding. AdamW (lr 3e-4, weight
decay 0.01 on every parameter). The whole training step (forward, backward, AdamW) is one
``fgrad.jit``; so is sampling one token from a fixed context window.

    python examples/gpt.py                           # default corpus (below), 2000 steps
    python examples/gpt.py input.txt --steps 5000    # any text file: char-level vocabulary
    python examples/gpt.py --layers 2 --steps 300 --log-every 50 --sample-every 100

The default corpus needs no download: the ``.py`` sources of Python's own ``json`` and
``email`` packages (found through ``json.__file__`` / ``email.__file__``), concatenated in
sorted path order, about 0.5 MB of text. See docs/gpt.md.
"""
from __future__ import annotations

import argparse
import json
import email
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np

import fgrad
import fgrad.numpy as fnp
from fgrad import nn, optim, random, tree


class GPTConfig(NamedTuple):
    vocab_size: int = 65
    context: int = 128        # the longest sequence the model reads (position embeddings)
    layers: int = 4
    heads: int = 4
    d_model: int = 128


# --- the model ---------------------------------------------------------------------------------

class Block(nn.Module):
    """Pre-LayerNorm transformer block: ``x + attn(ln1(x))``, then ``x + mlp(ln2(x))``."""

    def __init__(self, d_model: int, heads: int, *, key: Any):
        attn_key, fc_key, proj_key = random.split(key, 3)
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, heads, key=attn_key)
        self.ln2 = nn.LayerNorm(d_model)
        self.fc = nn.Linear(d_model, 4 * d_model, key=fc_key)
        self.proj = nn.Linear(4 * d_model, d_model, key=proj_key)

    def __call__(self, x: Any) -> Any:
        x = x + self.attn(self.ln1(x), causal=True)
        return x + self.proj(nn.gelu(self.fc(self.ln2(x)), approximate=True))


class GPT(nn.Module):
    """Token ids (B, T), T <= context, to next-token logits (B, T, vocab_size)."""

    def __init__(self, config: GPTConfig, *, key: Any):
        keys = list(random.split(key, config.layers + 2))
        self.wte = nn.Embedding(config.vocab_size, config.d_model, key=keys[0])
        self.wpe = nn.Embedding(config.context, config.d_model, key=keys[1])
        self.blocks = tuple(Block(config.d_model, config.heads, key=k) for k in keys[2:])
        self.ln_f = nn.LayerNorm(config.d_model)

    def __call__(self, ids: Any) -> Any:
        length = fnp.shape(ids)[-1]
        if length > self.wpe.num_embeddings:
            raise ValueError(f"GPT: sequences of length {length} exceed the context {self.wpe.num_embeddings}")
        x = self.wte(ids) + self.wpe.weight[:length]
        for block in self.blocks:
            x = block(x)
        return fnp.matmul(self.ln_f(x), self.wte.weight.T)   # the output layer is the token embedding


def init_params(config: GPTConfig, seed: int) -> dict[str, np.ndarray]:
    """nanoGPT's initialisation as NumPy arrays named like ``state_dict(GPT(...))``: weights
    N(0, 0.02), the two residual projections of each block N(0, 0.02 / sqrt(2 * layers)),
    biases 0, LayerNorm weights 1. The benchmark gives these same arrays to every framework."""
    rng = np.random.default_rng(seed)
    e, residual_std = config.d_model, 0.02 / math.sqrt(2 * config.layers)

    def normal(shape, std=0.02):
        return (rng.standard_normal(shape) * std).astype(np.float32)

    params = {"wte.weight": normal((config.vocab_size, e)), "wpe.weight": normal((config.context, e))}
    for i in range(config.layers):
        p = f"blocks.{i}."
        params.update({
            p + "ln1.weight": np.ones(e, np.float32), p + "ln1.bias": np.zeros(e, np.float32),
            p + "attn.in_proj_weight": normal((3 * e, e)), p + "attn.in_proj_bias": np.zeros(3 * e, np.float32),
            p + "attn.out_proj.weight": normal((e, e), residual_std), p + "attn.out_proj.bias": np.zeros(e, np.float32),
            p + "ln2.weight": np.ones(e, np.float32), p + "ln2.bias": np.zeros(e, np.float32),
            p + "fc.weight": normal((4 * e, e)), p + "fc.bias": np.zeros(4 * e, np.float32),
            p + "proj.weight": normal((e, 4 * e), residual_std), p + "proj.bias": np.zeros(e, np.float32)})
    params.update({"ln_f.weight": np.ones(e, np.float32), "ln_f.bias": np.zeros(e, np.float32)})
    return params


def state_dict(model: nn.Module) -> dict[str, Any]:
    """The model's arrays by dotted name (``blocks.0.attn.in_proj_weight``), as PyTorch names them."""
    return {tree.keystr(path, simple=True, separator="."): leaf
            for path, leaf in tree.tree_leaves_with_path(model)}


def load_state_dict(model: nn.Module, params: dict[str, Any]) -> nn.Module:
    """A copy of ``model`` holding ``params`` (same names and shapes as ``state_dict(model)``)."""
    current = state_dict(model)
    if set(current) != set(params):
        raise ValueError(f"load_state_dict: missing {sorted(set(current) - set(params))}, "
                         f"unexpected {sorted(set(params) - set(current))}")
    leaves = []
    for name, old in current.items():
        if tuple(np.shape(params[name])) != tuple(old.shape):
            raise ValueError(f"load_state_dict: {name} has shape {tuple(old.shape)}, got {np.shape(params[name])}")
        leaves.append(fnp.asarray(params[name], dtype=old.dtype))
    return tree.tree_unflatten(tree.tree_structure(model), leaves)


def build_model(config: GPTConfig, seed: int) -> GPT:
    """A GPT holding ``init_params(config, seed)``."""
    return load_state_dict(GPT(config, key=random.key(seed)), init_params(config, seed))


# --- training ----------------------------------------------------------------------------------

def loss_fn(model: GPT, x: Any, y: Any) -> Any:
    """Mean next-character cross-entropy of ``model(x)`` against targets ``y`` (both (B, T) ids)."""
    return nn.sparse_categorical_crossentropy(model(x), y)


def make_optimizer(lr: float = 3e-4, weight_decay: float = 0.01) -> optim.GradientTransformation:
    """AdamW (b1 0.9, b2 0.999, eps 1e-8), decaying every parameter."""
    return optim.adamw(lr, weight_decay=weight_decay)


def make_train_step(optimizer: optim.GradientTransformation) -> Callable:
    """``step(model, opt_state, x, y) -> (model, opt_state, loss)``, one ``fgrad.jit``."""
    @fgrad.jit
    def train_step(model, opt_state, x, y):
        loss, grads = fgrad.value_and_grad(loss_fn)(model, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, model)
        return optim.apply_updates(model, updates), opt_state, loss

    return train_step


eval_loss = fgrad.jit(loss_fn)


def sample_batch(rng: np.random.Generator, data: np.ndarray, batch: int, context: int) -> tuple[Any, Any]:
    """``batch`` random windows of ``context`` ids and the same windows shifted by one (targets)."""
    starts = rng.integers(0, len(data) - context, batch)
    x = np.stack([data[s:s + context] for s in starts])
    y = np.stack([data[s + 1:s + 1 + context] for s in starts])
    return fnp.asarray(x), fnp.asarray(y)


# --- sampling ----------------------------------------------------------------------------------

def sample_logits(key: Any, logits: Any) -> Any:
    """One id drawn with probabilities ``softmax(logits)``: ``fgrad.random.categorical`` when
    fgrad has it, else the Gumbel-max trick ``argmax(logits + Gumbel noise)``."""
    if hasattr(random, "categorical"):
        return random.categorical(key, logits)
    tiny = float(np.finfo(np.float32).tiny)
    u = random.uniform(key, fnp.shape(logits), fnp.float32, tiny, 1.0)
    return fnp.argmax(logits - fnp.log(-fnp.log(u)), axis=-1).astype(fnp.int32)


@fgrad.jit
def next_token(model: GPT, window: Any, position: Any, key: Any, inv_temperature: Any) -> Any:
    """Sample the id that follows ``window[position]``; ``window`` is always ``context`` ids long
    (unused places after ``position`` do not matter: attention is causal), so this compiles once."""
    logits = model(window[None])[0]
    row = fnp.take(logits, position, axis=0)
    return sample_logits(key, row * inv_temperature)


def generate(model: GPT, prompt: list[int], length: int, key: Any, temperature: float = 1.0) -> list[int]:
    """``length`` new ids after ``prompt``, each sampled from the last ``context`` ids."""
    if temperature <= 0:
        raise ValueError(f"generate: temperature must be > 0, got {temperature}")
    if not prompt:
        raise ValueError("generate: the prompt needs at least one id")
    context = model.wpe.num_embeddings
    ids = list(prompt)
    inv_temperature = fnp.asarray(1.0 / temperature, dtype=fnp.float32)
    for i in range(length):
        recent = ids[-context:]
        window = np.zeros(context, np.int32)
        window[:len(recent)] = recent
        token = next_token(model, fnp.asarray(window), fnp.asarray(len(recent) - 1, dtype=fnp.int32),
                           random.fold_in(key, i), inv_temperature)
        ids.append(int(token))
    return ids[len(prompt):]


# --- the corpus --------------------------------------------------------------------------------

def default_corpus() -> str:
    """Python's own ``json`` and ``email`` package sources, concatenated (no download)."""
    files = []
    for package in (json, email):
        files += sorted(Path(package.__file__).parent.rglob("*.py"))
    return "\n".join(path.read_text(encoding="utf-8", errors="replace") for path in files)


class Vocabulary:
    """The characters of a text, in sorted order, and the id of each."""

    def __init__(self, text: str):
        self.chars = sorted(set(text))
        if len(self.chars) < 2:
            raise ValueError("Vocabulary: the text needs at least two distinct characters")
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """The ids of ``text``'s characters (int32)."""
        return np.array([self.index[c] for c in text], np.int32)

    def decode(self, ids: list[int]) -> str:
        """The text of a list of ids."""
        return "".join(self.chars[i] for i in ids)


# --- the training loop -------------------------------------------------------------------------

class Result(NamedTuple):
    model: GPT
    losses: list            # the training loss of every step
    first_call_s: float     # trace + compile + the first step
    step_ms: list           # wall time of each later step


def train(text: str, config: GPTConfig, steps: int, batch: int = 16, lr: float = 3e-4,
          weight_decay: float = 0.01, seed: int = 0, log_every: int = 100, sample_every: int = 0,
          sample_length: int = 200, temperature: float = 0.8, log: Callable[[str], None] = print) -> Result:
    """Train on ``text`` (char-level; ``config.vocab_size`` is replaced by the text's), logging the
    mean training loss and a validation loss every ``log_every`` steps and a sample every
    ``sample_every`` steps (0: never)."""
    vocab = Vocabulary(text)
    config = config._replace(vocab_size=len(vocab))
    data = vocab.encode(text)
    split = int(0.9 * len(data))
    train_data, val_data = data[:split], data[split:]
    if len(val_data) <= config.context + 1:
        train_data = val_data = data
    if len(train_data) <= config.context + 1:
        raise ValueError(f"train: the text ({len(data)} characters) must be longer than the context + 1 "
                         f"({config.context + 1}); use a longer text or a smaller --context")
    rng = np.random.default_rng(seed)
    model = build_model(config, seed)
    optimizer = make_optimizer(lr, weight_decay)
    opt_state = optimizer.init(model)
    step = make_train_step(optimizer)
    val_batches = [sample_batch(np.random.default_rng(seed + 1), val_data, batch, config.context) for _ in range(4)]
    losses, step_ms, first_call_s = [], [], 0.0
    for i in range(steps):
        x, y = sample_batch(rng, train_data, batch, config.context)
        start = time.perf_counter()
        model, opt_state, loss = step(model, opt_state, x, y)
        losses.append(float(loss))
        elapsed = time.perf_counter() - start
        if i == 0:
            first_call_s = elapsed
            log(f"first step (trace + compile + run): {elapsed:.1f} s")
        else:
            step_ms.append(elapsed * 1e3)
        if log_every and ((i + 1) % log_every == 0 or i + 1 == steps):
            val = np.mean([float(eval_loss(model, vx, vy)) for vx, vy in val_batches])
            recent = losses[-log_every:]
            ms = np.median(step_ms[-log_every:]) if step_ms else float("nan")
            log(f"step {i + 1:5d}  train loss {np.mean(recent):.3f}  val loss {val:.3f}  {ms:.0f} ms/step")
        if sample_every and (i + 1) % sample_every == 0:
            prompt = vocab.encode(text[:1]).tolist()
            ids = generate(model, prompt, sample_length, random.key(seed + i), temperature)
            log("---- sample ----\n" + vocab.decode(prompt + ids) + "\n----------------")
    return Result(model, losses, first_call_s, step_ms)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("text", nargs="?", default=None,
                        help="a UTF-8 text file (default: Python's json and email package sources)")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--context", type=int, default=128, help="characters the model reads at once")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=3e-4, help="AdamW learning rate")
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=int, default=100, help="print losses every N steps")
    parser.add_argument("--sample-every", type=int, default=500, help="print a sample every M steps (0: never)")
    parser.add_argument("--sample-length", type=int, default=300, help="characters per sample")
    parser.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (> 0)")
    args = parser.parse_args(argv)
    for name in ("layers", "heads", "d_model", "context", "batch", "steps", "log_every", "sample_length"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.d_model % args.heads:
        parser.error(f"--d-model ({args.d_model}) must be divisible by --heads ({args.heads})")
    if args.temperature <= 0:
        parser.error("--temperature must be > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    text = Path(args.text).read_text(encoding="utf-8") if args.text else default_corpus()
    config = GPTConfig(context=args.context, layers=args.layers, heads=args.heads, d_model=args.d_model)
    vocab_size = len(Vocabulary(text))
    n_params = sum(p.size for p in init_params(config._replace(vocab_size=vocab_size), 0).values())
    print(f"corpus: {len(text):,} characters, vocabulary {vocab_size}; model: {args.layers} layers, "
          f"d_model {args.d_model}, {args.heads} heads, context {args.context}, {n_params:,} parameters")
    result = train(text, config, args.steps, args.batch, args.lr, args.weight_decay, args.seed,
                   args.log_every, args.sample_every, args.sample_length, args.temperature)
    if result.step_ms:
        print(f"median step {np.median(result.step_ms):.1f} ms (batch {args.batch} x {args.context} characters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
