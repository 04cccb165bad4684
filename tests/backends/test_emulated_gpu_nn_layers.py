"""Conv1d (reflect padding, groups), Conv3d, ConvTranspose2d, BatchNorm (training, with its state)
and adaptive average pooling in one jitted gradient on the CUDA backend, its kernels the rendered
CUDA C run natively on the host (``emulated_gpu.py``), equal to the same program on the CPU, with
no reference-path or host fallback."""
from __future__ import annotations

import numpy as np
import pytest

import fgrad
from fgrad import nn, random, tree
from fgrad import numpy as fnp
from fgrad.backends import cuda
from fgrad.backends.cuda import PycudaDriver
from tests.backends.emulated_gpu import EmulatedGpu
from tests.lower.cuda_host import GXX

pytestmark = [pytest.mark.skipif(GXX is None, reason="g++ is not on PATH (it compiles the CUDA C for the host)"),
              pytest.mark.filterwarnings("error::fgrad.ReferencePathWarning"),
              pytest.mark.filterwarnings("error::fgrad.HostFallbackWarning")]


from tests.backends.emulated_gpu import emulated  # noqa: F401,E402 (the fixture)


def loss(c1, c3, up, bn, state, x1, x3, x2):
    y1, state = bn(c1(x1), state, training=True)
    pooled = nn.adaptive_avg_pool2d(up(x2), 3)
    return fnp.sum(y1 ** 2) + fnp.sum(c3(x3) ** 2) + fnp.sum(pooled ** 2), state


def test_nd_convs_and_batch_norm_on_the_emulated_gpu_equal_the_cpu(emulated):
    rng = np.random.default_rng(0)
    args = (nn.Conv1d(2, 4, 3, padding="same", padding_mode="reflect", groups=2, key=random.key(0)),
            nn.Conv3d(2, 2, 2, padding=1, key=random.key(1)),
            nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1, key=random.key(2)),
            nn.BatchNorm1d(4), nn.BatchNorm1d(4).init_state(),
            fnp.asarray(rng.random((3, 2, 6), np.float32)), fnp.asarray(rng.random((1, 2, 3, 3, 3), np.float32)),
            fnp.asarray(rng.random((2, 2, 3, 3), np.float32)))
    step = fgrad.grad(loss, argnums=(0, 1, 2), has_aux=True)
    with fgrad.config.override(backend="cpu"):
        want = fgrad.jit(step)(*args)
    with fgrad.config.override(backend="cuda"):
        got = fgrad.jit(step)(*args)
    assert emulated.calls["launch"] > 0
    for g, w in zip(tree.tree_leaves(got), tree.tree_leaves(want)):
        scale = max(float(np.abs(np.asarray(w)).max()), 1.0)
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-4 * scale)
