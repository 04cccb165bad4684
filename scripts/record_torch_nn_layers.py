"""Record PyTorch's outputs and gradients for fgrad.nn's conv, transposed-conv, norm and pooling
layers into tests/data/torch_nn_layers.npz, for tests/nn/test_nn_conv_norm_torch.py to compare
against where PyTorch is not installed.

Run with a Python that has torch (CPU), from the repository root:

    /work/jaxenv/bin/python scripts/record_torch_nn_layers.py

Each case stores ``<name>/params`` (the layer's arguments), its inputs (``x``, ``w``, ``b``,
the cotangent ``ct``) and PyTorch's results: ``y`` and the gradients of ``sum(y * ct)`` with
respect to the input (``gx``), weight (``gw``) and bias (``gb``). Inputs come from NumPy's
default_rng with fixed seeds; float32 throughout.
"""
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "torch_nn_layers.npz")
RECORD: dict[str, np.ndarray] = {}
RNG = np.random.default_rng(20261206)


def normal(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def tensor(a, grad=True):
    return torch.tensor(a, requires_grad=grad)


def store(name, params, arrays):
    RECORD[f"{name}/params"] = np.array(json.dumps(params))
    for key, value in arrays.items():
        if value is not None:
            RECORD[f"{name}/{key}"] = np.asarray(value.detach().numpy() if torch.is_tensor(value) else value)


def run_with_grads(name, params, fn, x, w, b):
    """``fn(x, w, b)`` and the gradients of ``sum(fn(...) * ct)``, stored under ``name``."""
    xt, wt = tensor(x), tensor(w) if w is not None else None
    bt = tensor(b) if b is not None else None
    y = fn(xt, wt, bt)
    ct = normal(*y.shape)
    (y * torch.tensor(ct)).sum().backward()
    store(name, params, dict(x=x, w=w, b=b, ct=ct, y=y, gx=xt.grad, gw=None if wt is None else wt.grad,
                             gb=None if bt is None else bt.grad))


CONV_CASES = [
    # (name, nsp, in, out, kernel, spatial, params)
    ("conv1d_basic", 1, 3, 4, 3, (9,), dict(stride=1, padding=0, dilation=1, groups=1)),
    ("conv1d_strided_dilated", 1, 4, 6, 3, (11,), dict(stride=2, padding=2, dilation=2, groups=2)),
    ("conv1d_same_even", 1, 2, 3, 4, (7,), dict(stride=1, padding="same", dilation=1, groups=1)),
    ("conv1d_same_dilated", 1, 2, 2, 3, (8,), dict(stride=1, padding="same", dilation=3, groups=1)),
    ("conv1d_valid_nobias", 1, 2, 3, 2, (6,), dict(stride=1, padding="valid", dilation=1, groups=1, bias=False)),
    ("conv1d_reflect", 1, 2, 3, 3, (6,), dict(stride=1, padding=2, dilation=1, groups=1, padding_mode="reflect")),
    ("conv1d_circular", 1, 2, 2, 3, (5,), dict(stride=2, padding=1, dilation=1, groups=1, padding_mode="circular")),
    ("conv2d_basic", 2, 3, 4, (3, 2), (6, 5), dict(stride=1, padding=1, dilation=1, groups=1)),
    ("conv2d_grouped", 2, 4, 6, 3, (7, 6), dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2)),
    ("conv2d_same_even", 2, 2, 3, (4, 3), (6, 5), dict(stride=1, padding="same", dilation=1, groups=1)),
    ("conv2d_replicate", 2, 2, 2, 3, (5, 4), dict(stride=1, padding=(1, 2), dilation=1, groups=1,
                                                  padding_mode="replicate")),
    ("conv2d_reflect_same", 2, 1, 2, 3, (5, 5), dict(stride=1, padding="same", dilation=1, groups=1,
                                                     padding_mode="reflect")),
    ("conv3d_basic", 3, 2, 3, 3, (4, 5, 4), dict(stride=1, padding=1, dilation=1, groups=1)),
    ("conv3d_strided_grouped", 3, 4, 2, (2, 3, 2), (5, 6, 5), dict(stride=(1, 2, 2), padding=(0, 1, 1),
                                                                   dilation=(2, 1, 1), groups=2)),
    ("conv3d_circular_same", 3, 1, 2, 3, (3, 4, 3), dict(stride=1, padding="same", dilation=1, groups=1,
                                                         padding_mode="circular")),
]

TRANSPOSE_CASES = [
    ("conv_transpose1d_basic", 1, 3, 2, 3, (5,), dict(stride=1, padding=0, output_padding=0, groups=1, dilation=1)),
    ("conv_transpose1d_strided", 1, 4, 6, 4, (6,), dict(stride=3, padding=1, output_padding=2, groups=2, dilation=1)),
    ("conv_transpose2d_upsample", 2, 4, 3, 3, (4, 5), dict(stride=2, padding=1, output_padding=1, groups=1,
                                                            dilation=1)),
    ("conv_transpose2d_grouped_dilated", 2, 4, 4, (2, 3), (3, 4), dict(stride=(1, 2), padding=(1, 2),
                                                                        output_padding=(0, 1), groups=2,
                                                                        dilation=(2, 2))),
    ("conv_transpose2d_nobias", 2, 2, 3, 2, (3, 3), dict(stride=2, padding=0, output_padding=0, groups=1,
                                                          dilation=1, bias=False)),
    ("conv_transpose3d_basic", 3, 2, 3, 2, (3, 2, 3), dict(stride=2, padding=0, output_padding=1, groups=1,
                                                            dilation=1)),
    ("conv_transpose3d_padded", 3, 2, 2, 3, (3, 3, 2), dict(stride=(1, 2, 1), padding=1, output_padding=(0, 1, 0),
                                                             groups=2, dilation=1)),
]


def record_convs():
    for name, nsp, c_in, c_out, kernel, spatial, params in CONV_CASES:
        kernel = kernel if isinstance(kernel, tuple) else (kernel,) * nsp
        torch_conv = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}[nsp]
        layer = torch_conv(c_in, c_out, kernel, **params)
        x = normal(2, c_in, *spatial)
        w, b = layer.weight.detach().numpy().copy(), None if layer.bias is None else layer.bias.detach().numpy().copy()

        def forward(xt, wt, bt, layer=layer):   # the layer's own forward (padding modes included)
            return layer._conv_forward(xt, wt, bt)

        store_params = dict(params, kind="conv", nsp=nsp, in_channels=c_in, out_channels=c_out, kernel_size=kernel)
        run_with_grads(name, store_params, forward, x, w, b)


def record_transposes():
    for name, nsp, c_in, c_out, kernel, spatial, params in TRANSPOSE_CASES:
        kernel = kernel if isinstance(kernel, tuple) else (kernel,) * nsp
        torch_layer = {1: torch.nn.ConvTranspose1d, 2: torch.nn.ConvTranspose2d, 3: torch.nn.ConvTranspose3d}[nsp]
        layer = torch_layer(c_in, c_out, kernel, **params)
        fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[nsp]
        x = normal(2, c_in, *spatial)
        w, b = layer.weight.detach().numpy().copy(), None if layer.bias is None else layer.bias.detach().numpy().copy()
        args = {k: v for k, v in params.items() if k != "bias"}
        store_params = dict(params, kind="conv_transpose", nsp=nsp, in_channels=c_in, out_channels=c_out,
                            kernel_size=kernel)
        run_with_grads(name, store_params, lambda xt, wt, bt, fn=fn, args=args: fn(xt, wt, bt, **args), x, w, b)


def record_norms():
    x = normal(3, 6, 4, 5)
    w, b = normal(6), normal(6)
    run_with_grads("group_norm_3", dict(kind="group_norm", num_groups=3, eps=1e-5),
                   lambda xt, wt, bt: F.group_norm(xt, 3, wt, bt, 1e-5), x, w, b)
    x = normal(2, 4, 7)
    run_with_grads("group_norm_1d_eps", dict(kind="group_norm", num_groups=2, eps=1e-2),
                   lambda xt, wt, bt: F.group_norm(xt, 2, wt, bt, 1e-2), x, normal(4), normal(4))
    for nsp, shape in ((1, (2, 3, 6)), (2, (2, 3, 4, 5)), (3, (1, 2, 3, 3, 4))):
        layer = {1: torch.nn.InstanceNorm1d, 2: torch.nn.InstanceNorm2d, 3: torch.nn.InstanceNorm3d}[nsp]
        norm = layer(shape[1], affine=True)
        run_with_grads(f"instance_norm{nsp}d", dict(kind="instance_norm", nsp=nsp, eps=1e-5),
                       lambda xt, wt, bt, norm=norm: F.instance_norm(xt, weight=wt, bias=bt, eps=norm.eps),
                       normal(*shape), normal(shape[1]), normal(shape[1]))


def record_batch_norm_training(name, layer_cls, shape, momentum, steps=5):
    """A training loop: each step normalises a fresh batch (outputs, input and parameter gradients
    recorded) and updates the running statistics; then one evaluation step."""
    torch.manual_seed(0)
    bn = layer_cls(shape[1], momentum=momentum, eps=1e-3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(normal(shape[1])))
        bn.bias.copy_(torch.tensor(normal(shape[1])))
    arrays = dict(w=bn.weight.detach().numpy().copy(), b=bn.bias.detach().numpy().copy())
    bn.train()
    for step in range(steps):
        x = (normal(*shape) * (1 + step) + step).astype(np.float32)
        xt = tensor(x)
        y = bn(xt)
        ct = normal(*y.shape)
        bn.weight.grad = bn.bias.grad = None
        (y * torch.tensor(ct)).sum().backward()
        arrays.update({f"x{step}": x, f"ct{step}": ct, f"y{step}": y.detach().numpy(), f"gx{step}": xt.grad.numpy(),
                       f"gw{step}": bn.weight.grad.numpy().copy(), f"gb{step}": bn.bias.grad.numpy().copy(),
                       f"mean{step}": bn.running_mean.numpy().copy(), f"var{step}": bn.running_var.numpy().copy()})
    bn.eval()
    x = normal(*shape)
    arrays.update(x_eval=x, y_eval=bn(torch.tensor(x)).detach().numpy())
    store(name, dict(kind="batch_norm", momentum=momentum, eps=1e-3, steps=steps, nsp=len(shape) - 2), arrays)


def record_pools():
    for nsp, shape in ((1, (2, 3, 9)), (2, (2, 2, 7, 6)), (3, (1, 2, 5, 4, 6))):
        x = normal(*shape)
        for name, fn, kwargs in (("max", {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[nsp],
                                  dict(kernel_size=3, stride=2, padding=1)),
                                 ("avg", {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[nsp],
                                  dict(kernel_size=2, stride=None, padding=1))):
            run_with_grads(f"{name}_pool{nsp}d", dict(kind=f"{name}_pool", nsp=nsp, **kwargs),
                           lambda xt, wt, bt, fn=fn, kwargs=kwargs: fn(xt, **kwargs), x, None, None)
        adaptive = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}[nsp]
        sizes = {1: [4], 2: [(3, 4), (None, 2)], 3: [(2, 3, 4)]}[nsp]
        for index, size in enumerate(sizes):
            params = dict(kind="adaptive_avg_pool", nsp=nsp, output_size=size)
            run_with_grads(f"adaptive_avg_pool{nsp}d_{index}", params,
                           lambda xt, wt, bt, size=size: adaptive(xt, size), x, None, None)


def save(record):
    """One float32 buffer (``data``) and a JSON index (``index``: name -> [offset, shape], and
    ``name/params`` -> the case's parameters): ~400 small arrays as separate .npy entries would
    spend more bytes on headers than on numbers."""
    index, chunks, offset = {}, [], 0
    for key, value in record.items():
        if key.endswith("/params"):
            index[key] = json.loads(str(value))
            continue
        value = np.asarray(value, np.float32)
        index[key] = [offset, list(value.shape)]
        chunks.append(value.ravel())
        offset += value.size
    np.savez_compressed(OUT, data=np.concatenate(chunks), index=np.array(json.dumps(index)))


def main():
    torch.manual_seed(0)   # the layers' initial weights: the recording is reproducible
    record_convs()
    record_transposes()
    record_norms()
    record_batch_norm_training("batch_norm2d", torch.nn.BatchNorm2d, (4, 3, 3, 2), 0.1)
    record_batch_norm_training("batch_norm1d_cumulative", torch.nn.BatchNorm1d, (5, 4), None)
    record_batch_norm_training("batch_norm1d_ncl", torch.nn.BatchNorm1d, (3, 2, 4), 0.3)
    record_pools()
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    save(RECORD)
    print(f"wrote {len(RECORD)} arrays to {os.path.normpath(OUT)} ({os.path.getsize(OUT)} bytes), "
          f"torch {torch.__version__}")


if __name__ == "__main__":
    main()
