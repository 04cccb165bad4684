"""Conv1d/2d/3d, ConvTranspose1d/2d/3d, GroupNorm, InstanceNorm, BatchNorm (a training loop) and
N-d / adaptive pooling equal PyTorch for the same weights: outputs, and input/weight/bias
gradients of ``sum(y * ct)``, eagerly and under jit (natively). The PyTorch results were recorded
by ``scripts/record_torch_nn_layers.py`` (torch 2.13 CPU) into ``tests/data/torch_nn_layers.npz``;
where torch is importable, the last tests also compare live on fresh random configurations."""
import json
import math
import os

import numpy as np
import pytest

import fgrad
from fgrad import nn, random
from fgrad import numpy as fnp

#: jit must run natively: a fall back to the reference path fails the test.
pytestmark = pytest.mark.filterwarnings("error::fgrad.ReferencePathWarning")
DATA = os.path.join(os.path.dirname(__file__), "..", "data", "torch_nn_layers.npz")


def load_cases():
    with np.load(DATA) as f:
        data, index = f["data"], json.loads(str(f["index"]))
    cases: dict = {}
    for key, entry in index.items():
        name, field = key.split("/")
        if field == "params":
            cases.setdefault(name, {})["params"] = entry
        else:
            offset, shape = entry
            cases.setdefault(name, {})[field] = data[offset:offset + math.prod(shape)].reshape(shape)
    return cases


CASES = load_cases()


def names(kind):
    found = sorted(n for n, c in CASES.items() if c["params"]["kind"] == kind)
    assert found, f"no recorded {kind} cases"
    return found


def close(got, want, tol=2e-5):
    np.testing.assert_allclose(np.asarray(got), want, rtol=tol, atol=tol)


def check_layer(layer, case, tol=2e-5):
    """The layer's output and its gradients (input, weight, bias) eagerly and under jit vs torch's."""
    x, ct = fnp.asarray(case["x"]), fnp.asarray(case["ct"])

    def loss(m, v):
        return fnp.sum(m(v) * ct)
    grads = fgrad.grad(loss, argnums=(0, 1))
    for run, differentiate in ((layer, grads), (fgrad.jit(layer), fgrad.jit(grads))):
        close(run(x), case["y"], tol)
        g_layer, g_x = differentiate(layer, x)
        close(g_x, case["gx"], tol)
        if "gw" in case:
            close(g_layer.weight, case["gw"], tol * 10)
        if "gb" in case:
            close(g_layer.bias, case["gb"], tol * 10)


def with_weights(layer, case):
    changes = {}
    if "w" in case:
        changes["weight"] = fnp.asarray(case["w"])
    if "b" in case:
        changes["bias"] = fnp.asarray(case["b"])
    return layer.replace(**changes) if changes else layer


CONVS = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
TRANSPOSES = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
FUNCTIONAL_CONVS = {1: nn.conv1d, 2: nn.conv2d, 3: nn.conv3d}
FUNCTIONAL_TRANSPOSES = {1: nn.conv_transpose1d, 2: nn.conv_transpose2d, 3: nn.conv_transpose3d}


@pytest.mark.parametrize("name", names("conv"))
def test_conv_equals_torch(name):
    case = CASES[name]
    p = dict(case["params"])
    nsp, bias, mode = p.pop("nsp"), p.pop("bias", True), p.pop("padding_mode", "zeros")
    p.pop("kind")
    layer = CONVS[nsp](p.pop("in_channels"), p.pop("out_channels"), p.pop("kernel_size"), bias=bias,
                       padding_mode=mode, key=random.key(0), **p)
    assert layer.weight.shape == case["w"].shape and (layer.bias is None) == (not bias)
    layer = with_weights(layer, case)
    check_layer(layer, case)
    functional = FUNCTIONAL_CONVS[nsp](fnp.asarray(case["x"]), fnp.asarray(case["w"]),
                                       None if "b" not in case else fnp.asarray(case["b"]), padding_mode=mode, **p)
    close(functional, case["y"])


@pytest.mark.parametrize("name", names("conv_transpose"))
def test_conv_transpose_equals_torch(name):
    case = CASES[name]
    p = dict(case["params"])
    nsp, bias = p.pop("nsp"), p.pop("bias", True)
    p.pop("kind")
    layer = TRANSPOSES[nsp](p.pop("in_channels"), p.pop("out_channels"), p.pop("kernel_size"), bias=bias,
                            key=random.key(0), **p)
    assert layer.weight.shape == case["w"].shape and (layer.bias is None) == (not bias)
    check_layer(with_weights(layer, case), case)
    functional = FUNCTIONAL_TRANSPOSES[nsp](fnp.asarray(case["x"]), fnp.asarray(case["w"]),
                                            None if "b" not in case else fnp.asarray(case["b"]), **p)
    close(functional, case["y"])


@pytest.mark.parametrize("name", names("group_norm"))
def test_group_norm_equals_torch(name):
    case = CASES[name]
    p = case["params"]
    layer = with_weights(nn.GroupNorm(p["num_groups"], case["x"].shape[1], eps=p["eps"]), case)
    check_layer(layer, case, tol=5e-5)
    close(nn.group_norm(fnp.asarray(case["x"]), p["num_groups"], fnp.asarray(case["w"]), fnp.asarray(case["b"]),
                        p["eps"]), case["y"], 5e-5)


@pytest.mark.parametrize("name", names("instance_norm"))
def test_instance_norm_equals_torch(name):
    case = CASES[name]
    nsp = case["params"]["nsp"]
    layer_cls = {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}[nsp]
    check_layer(with_weights(layer_cls(case["x"].shape[1], affine=True), case), case, tol=5e-5)
    unbatched = with_weights(layer_cls(case["x"].shape[1], affine=True), case)(fnp.asarray(case["x"][0]))
    close(unbatched, case["y"][0], 5e-5)


POOLS = {("max_pool", 1): nn.MaxPool1d, ("max_pool", 2): nn.MaxPool2d, ("max_pool", 3): nn.MaxPool3d,
         ("avg_pool", 1): nn.AvgPool1d, ("avg_pool", 2): nn.AvgPool2d, ("avg_pool", 3): nn.AvgPool3d}
ADAPTIVE = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}


@pytest.mark.parametrize("name", names("max_pool") + names("avg_pool") + names("adaptive_avg_pool"))
def test_pooling_equals_torch(name):
    case = CASES[name]
    p = case["params"]
    if p["kind"] == "adaptive_avg_pool":
        size = p["output_size"]
        layer = ADAPTIVE[p["nsp"]](tuple(size) if isinstance(size, list) else size)
    else:
        layer = POOLS[p["kind"], p["nsp"]](p["kernel_size"], p["stride"], p["padding"])
    check_layer(layer, case)


@pytest.mark.parametrize("name", names("batch_norm"))
def test_batch_norm_training_loop_equals_torch(name):
    """Several training steps (jitted; gradients via has_aux, the state passed through) give torch's
    outputs and gradients at every step and its running statistics after each; then evaluation."""
    case = CASES[name]
    p = case["params"]
    layer_cls = {0: nn.BatchNorm1d, 1: nn.BatchNorm1d, 2: nn.BatchNorm2d}[p["nsp"]]
    bn = layer_cls(case["w"].shape[0], eps=p["eps"], momentum=p["momentum"])
    bn = with_weights(bn, case)
    state = bn.init_state()

    def loss(model, state, x, ct):
        y, new_state = model(x, state, training=True)
        return fnp.sum(y * ct), (y, new_state)
    step = fgrad.jit(fgrad.grad(loss, argnums=(0, 2), has_aux=True))
    for i in range(p["steps"]):
        (g_model, g_x), (y, state) = step(bn, state, fnp.asarray(case[f"x{i}"]), fnp.asarray(case[f"ct{i}"]))
        close(y, case[f"y{i}"], 5e-5)
        close(g_x, case[f"gx{i}"], 5e-5)
        close(g_model.weight, case[f"gw{i}"], 5e-4)
        close(g_model.bias, case[f"gb{i}"], 5e-4)
        close(state.running_mean, case[f"mean{i}"], 5e-5)
        close(state.running_var, case[f"var{i}"], 5e-5)
        assert int(state.num_batches_tracked) == i + 1
    y_eval, same = fgrad.jit(lambda m, s, x: m(x, s, training=False))(bn, state, fnp.asarray(case["x_eval"]))
    close(y_eval, case["y_eval"], 5e-5)
    np.testing.assert_array_equal(np.asarray(same.running_var), np.asarray(state.running_var))


# --- live comparisons, where torch is importable -------------------------------------------------

def test_live_random_convs_equal_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    for trial in range(24):
        nsp = 1 + trial % 3
        groups = int(rng.integers(1, 3))
        c_in, c_out = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
        kernel = tuple(int(k) for k in rng.integers(1, 4, nsp))
        stride = tuple(int(s) for s in rng.integers(1, 3, nsp))
        dilation = tuple(int(d) for d in rng.integers(1, 3, nsp))
        padding = tuple(int(p) for p in rng.integers(0, 3, nsp))
        sizes = tuple(int(d * (k - 1) + 1 + rng.integers(0, 4)) for k, d in zip(kernel, dilation))
        x = rng.standard_normal((2, c_in, *sizes)).astype(np.float32)
        ref = getattr(torch.nn, f"Conv{nsp}d")(c_in, c_out, kernel, stride, padding, dilation, groups)
        ours = CONVS[nsp](c_in, c_out, kernel, stride, padding, dilation, groups, key=random.key(trial))
        ours = ours.replace(weight=fnp.asarray(ref.weight.detach().numpy()),
                            bias=fnp.asarray(ref.bias.detach().numpy()))
        close(fgrad.jit(ours)(fnp.asarray(x)), ref(torch.tensor(x)).detach().numpy(), 1e-4)
        output_padding = tuple(int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation))
        ours_t = TRANSPOSES[nsp](c_in, c_out, kernel, stride, padding, output_padding, groups, True, dilation,
                                 key=random.key(trial))
        out_sizes = [(n - 1) * s - 2 * p + d * (k - 1) + op + 1
                     for n, s, p, d, k, op in zip(sizes, stride, padding, dilation, kernel, output_padding)]
        if min(out_sizes) < 1:   # PyTorch fails inside oneDNN; fgrad names the problem
            with pytest.raises(ValueError, match="leaves no output"):
                ours_t(fnp.asarray(x))
            continue
        ref_t = getattr(torch.nn, f"ConvTranspose{nsp}d")(c_in, c_out, kernel, stride, padding, output_padding,
                                                          groups, True, dilation)
        want = ref_t(torch.tensor(x)).detach().numpy()
        ours_t = ours_t.replace(weight=fnp.asarray(ref_t.weight.detach().numpy()),
                                bias=fnp.asarray(ref_t.bias.detach().numpy()))
        close(fgrad.jit(ours_t)(fnp.asarray(x)), want, 1e-4)


def test_live_batch_norm_momentum_none_and_eval_equal_torch():
    torch = pytest.importorskip("torch")
    ref = torch.nn.BatchNorm3d(2, momentum=None)
    ours = nn.BatchNorm3d(2, momentum=None)
    state = ours.init_state()
    rng = np.random.default_rng(6)
    for _ in range(3):
        x = rng.standard_normal((3, 2, 2, 2, 3)).astype(np.float32) * 3 + 1
        y, state = ours(fnp.asarray(x), state, training=True)
        close(y, ref(torch.tensor(x)).detach().numpy(), 1e-5)
    close(state.running_mean, ref.running_mean.numpy(), 1e-5)
    close(state.running_var, ref.running_var.numpy(), 1e-5)
    ref.eval()
    close(ours(fnp.asarray(x), state, training=False)[0], ref(torch.tensor(x)).detach().numpy(), 1e-5)


def test_init_bounds_match_torch_fan_in():
    """PyTorch draws a transposed conv's weight with fan_in = out_channels / groups * kernel (its dim 1)."""
    torch = pytest.importorskip("torch")
    ref = torch.nn.ConvTranspose2d(4, 6, 3, groups=2)
    ours = nn.ConvTranspose2d(4, 6, 3, groups=2, key=random.key(0))
    bound = 1 / math.sqrt(3 * 9)
    assert ref.weight.shape == ours.weight.shape
    assert np.abs(ref.weight.detach().numpy()).max() <= bound and np.abs(np.asarray(ours.weight)).max() <= bound
