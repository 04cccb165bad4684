"""Train the MNIST convnet of the tinygrad tutorial (the Keras mnist_convnet model), written
functionally with fgrad: the model is a pytree, and one jitted ``step`` samples a batch,
runs the forward and backward passes and applies Adam.

    python examples/mnist.py                    # 7000 steps, batch 128, Adam 1e-3
    python examples/mnist.py --steps 500 --eval-every 50
    FGRAD_DEBUG=1 python examples/mnist.py --steps 20    # see what gets traced and compiled

See docs/tutorial.md for the walk-through.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any, Callable, NamedTuple

import fgrad
import fgrad.numpy as fnp
from fgrad import datasets, nn, optim, random


class Model(nn.Module):
    """Conv(1->32, 3x3) -> relu -> maxpool 2 -> Conv(32->64, 3x3) -> relu -> maxpool 2 ->
    flatten -> dropout 0.5 -> Linear(1600 -> 10)."""

    def __init__(self, *, key: Any):
        k1, k2, k3 = random.split(key, 3)
        self.c1 = nn.Conv2d(1, 32, 3, key=k1)
        self.c2 = nn.Conv2d(32, 64, 3, key=k2)
        self.l1 = nn.Linear(1600, 10, key=k3)

    def __call__(self, x: Any, *, dropout_key: Any = None) -> Any:
        """Logits for images ``x`` (N, 1, 28, 28) in [0, 1]; dropout is on only with a key."""
        x = nn.max_pool2d(nn.relu(self.c1(x)), 2)
        x = nn.max_pool2d(nn.relu(self.c2(x)), 2)
        x = nn.dropout(nn.flatten(x), 0.5, key=dropout_key, deterministic=dropout_key is None)
        return self.l1(x)


def scale_pixels(x_uint8: Any) -> Any:
    return x_uint8.astype(fnp.float32) / 255.0


def make_step(optimizer: optim.GradientTransformation, X_train: Any, Y_train: Any, batch_size: int) -> Callable:
    """The whole training step as one jitted function ``step(model, opt_state, key)``."""
    num_train = X_train.shape[0]

    @fgrad.jit
    def step(model, opt_state, key):
        sample_key, dropout_key = random.split(key)
        index = random.randint(sample_key, (batch_size,), 0, num_train)
        x, y = scale_pixels(X_train[index]), Y_train[index]

        def loss_fn(m):
            return nn.sparse_categorical_crossentropy(m(x, dropout_key=dropout_key), y)

        loss, grads = fgrad.value_and_grad(loss_fn)(model)
        updates, opt_state = optimizer.update(grads, opt_state, model)
        return optim.apply_updates(model, updates), opt_state, loss

    return step


def make_data_parallel_step(optimizer: optim.GradientTransformation, X_train: Any, Y_train: Any,
                            batch_size: int, mesh: Any) -> Callable:
    """The step over several devices, in the tutorial's "two lines": the model and optimizer
    state are replicated with ``device_put(..., NamedSharding(mesh, P()))`` (in ``train``) and
    each batch is split along its first dimension; the jitted step is the single-device one,
    and fgrad inserts the gradient all-reduce itself."""
    from fgrad.sharding import NamedSharding, P, device_put
    num_train = X_train.shape[0]
    split = NamedSharding(mesh, P("data"))

    @fgrad.jit
    def sample(key):
        index = random.randint(key, (batch_size,), 0, num_train)
        return X_train[index], Y_train[index]

    @fgrad.jit
    def step_on_batch(model, opt_state, x_uint8, y, dropout_key):
        x = scale_pixels(x_uint8)

        def loss_fn(m):
            return nn.sparse_categorical_crossentropy(m(x, dropout_key=dropout_key), y)

        loss, grads = fgrad.value_and_grad(loss_fn)(model)
        updates, opt_state = optimizer.update(grads, opt_state, model)
        return optim.apply_updates(model, updates), opt_state, loss

    def step(model, opt_state, key):
        sample_key, dropout_key = random.split(key)
        x, y = sample(sample_key)
        return step_on_batch(model, opt_state, device_put(x, split), device_put(y, split), dropout_key)

    return step


@fgrad.jit
def _count_correct(model, x_uint8, y):
    predictions = fnp.argmax(model(scale_pixels(x_uint8)), axis=1)
    return fnp.sum((predictions == y).astype(fnp.int32))


def accuracy(model: Model, X: Any, Y: Any, batch_size: int = 1000) -> float:
    """Test accuracy (dropout off), evaluated in jitted batches to bound memory."""
    n = X.shape[0]
    correct = sum(int(_count_correct(model, X[i:i + batch_size], Y[i:i + batch_size]))
                  for i in range(0, n, batch_size))
    return correct / n


class Result(NamedTuple):
    model: Model
    curve: list            # (step, loss, test accuracy) at each evaluation
    compile_s: float       # the first call: trace + compile + one step
    step_ms: list          # wall time of each later (cached) call
    wall_s: float


def train(steps: int = 7000, batch_size: int = 128, lr: float = 1e-3, seed: int = 0, eval_every: int = 100,
          data: tuple | None = None, progress: bool = True, log: Callable[[str], None] = print,
          devices: int = 1) -> Result:
    """Train the tutorial's model; returns the model, the accuracy curve and the timings."""
    X_train, Y_train, X_test, Y_test = data if data is not None else datasets.mnist()
    init_key, run_key = random.split(random.key(seed))
    model = Model(key=init_key)
    optimizer = optim.adam(lr)
    opt_state = optimizer.init(model)
    if devices > 1:
        from fgrad.sharding import Mesh, NamedSharding, P, device_put
        mesh = Mesh(_mesh_devices(devices), ("data",))
        replicated = NamedSharding(mesh, P())
        model, opt_state = device_put(model, replicated), device_put(opt_state, replicated)
        step = make_data_parallel_step(optimizer, X_train, Y_train, batch_size, mesh)
    else:
        step = make_step(optimizer, X_train, Y_train, batch_size)
    curve, step_ms = [], []
    compile_s = 0.0
    start = time.perf_counter()
    bar = _progress_bar(steps, progress)
    test_acc = float("nan")
    for i in range(steps):
        t0 = time.perf_counter()
        model, opt_state, loss = step(model, opt_state, random.fold_in(run_key, i))
        loss = float(loss)  # waits for the step to finish
        elapsed = time.perf_counter() - t0
        if i == 0:
            compile_s = elapsed
        else:
            step_ms.append(elapsed * 1e3)
        if (i + 1) % eval_every == 0 or i + 1 == steps:
            test_acc = accuracy(model, X_test, Y_test)
            curve.append((i + 1, loss, test_acc))
            if not progress:
                log(f"step {i + 1:5d}  loss {loss:.3f}  test accuracy {test_acc:.2%}")
        if bar is not None:
            ms = statistics.median(step_ms[-100:]) if step_ms else elapsed * 1e3
            bar.set_description(f"loss {loss:6.3f}  test accuracy {test_acc:6.2%}  {ms:7.1f} ms/step")
            bar.update(1)
    if bar is not None:
        bar.close()
    return Result(model, curve, compile_s, step_ms, time.perf_counter() - start)


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, dynamic_ncols=True)


def _mesh_devices(n: int) -> list:
    """n devices of the default platform: the GPUs when fgrad runs on them (an error naming
    what there is when there are fewer), else n virtual CPU devices."""
    if fgrad.devices()[0].platform == "cuda":
        gpus = fgrad.devices()
        if len(gpus) < n:
            raise SystemExit(f"--devices {n}: only {len(gpus)} GPU(s) here; use --devices {len(gpus)} "
                             "or --backend cpu (virtual CPU devices)")
        return gpus[:n]
    return fgrad.devices(n)


def _configure_devices(backend: str | None, devices: int) -> None:
    if devices < 1:
        raise SystemExit(f"--devices must be >= 1, got {devices}")
    if backend == "cuda" and not fgrad.devices(backend="cuda"):
        raise SystemExit("--backend cuda: no usable GPU (pycuda must import and see an NVIDIA GPU; "
                         "pip install 'fgrad[cuda]'); use --backend cpu")
    if backend is not None:
        fgrad.config.update("backend", backend)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--steps", type=int, default=7000, help="training steps")
    parser.add_argument("--batch-size", type=int, default=128, help="images per step, sampled at random")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed (initialisation, batches, dropout)")
    parser.add_argument("--eval-every", type=int, default=100, help="evaluate on the 10000 test images every N steps")
    parser.add_argument("--backend", choices=["cpu", "cuda"], default=None,
                        help="device backend (default: FGRAD_BACKEND, else the GPU when one is usable)")
    parser.add_argument("--devices", type=int, default=1, help="devices to split each batch across")
    parser.add_argument("--no-progress", action="store_true", help="log evaluations instead of a progress bar")
    args = parser.parse_args(argv)
    for name in ("steps", "batch_size", "eval_every"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _configure_devices(args.backend, args.devices)
    data = datasets.mnist()
    X_test, Y_test = data[2], data[3]
    print(f"X_train {data[0].shape} {data[0].dtype}, Y_train {data[1].shape}, X_test {X_test.shape}")
    untrained = Model(key=random.split(random.key(args.seed))[0])
    print(f"untrained model: test accuracy {accuracy(untrained, X_test, Y_test):.2%} (chance is 10%)")
    if args.batch_size % args.devices:
        raise SystemExit(f"--batch-size {args.batch_size} must be divisible by --devices {args.devices}")
    result = train(args.steps, args.batch_size, args.lr, args.seed, args.eval_every, data=data,
                   progress=not args.no_progress, devices=args.devices)
    print(f"first call (trace + compile + one step): {result.compile_s:.2f} s")
    if result.step_ms:
        times = sorted(result.step_ms)
        print(f"cached step: median {statistics.median(times):.1f} ms, min {times[0]:.1f} ms "
              f"over {len(times)} steps (batch {args.batch_size})")
    final_step, final_loss, final_acc = result.curve[-1]
    print(f"after {final_step} steps: loss {final_loss:.3f}, test accuracy {final_acc:.2%}, "
          f"wall time {result.wall_s:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
