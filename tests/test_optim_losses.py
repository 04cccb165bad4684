"""fgrad.optim's losses against optax 0.2.8: every case of ``tests/optax_loss_cases.py`` (values
and the gradient of their sum with respect to the first input, recorded by
``scripts/record_optax_losses.py``), eagerly and under ``fgrad.jit`` (native path: a
reference-path fallback is an error), and ``vmap`` against a Python loop. Also ``scale_gradient``
and the errors the losses and the new transformations raise."""
import pathlib

import numpy as np
import pytest

import fgrad
from fgrad import numpy as fnp
from fgrad import optim, tree

import optax_cases
import optax_loss_cases
from util import check_grads

pytestmark = pytest.mark.filterwarnings("error::fgrad.ReferencePathWarning")

DATA = np.load(pathlib.Path(__file__).parent / "data" / optax_loss_cases.DATA_FILE)
SEEDS = {name: seed for seed, name in enumerate(optax_loss_cases.CASES)}
NAMES = list(optax_loss_cases.CASES)


def _inputs(name, seed=None):
    case = optax_loss_cases.CASES[name]
    return [fnp.asarray(x) for x in optax_loss_cases.make_inputs(case, SEEDS[name] if seed is None else seed)]


def _value_fn(name):
    loss = optax_loss_cases.CASES[name]["loss"]
    return lambda *args: loss(optim, *args)


def _grad_fn(name):
    loss = optax_loss_cases.CASES[name]["loss"]
    return fgrad.grad(lambda x, *rest: fnp.sum(loss(optim, x, *rest)))


def _check(got, want, name, what):
    got = np.asarray(got)
    assert got.shape == want.shape, f"{name} {what}: shape {got.shape}, optax {want.shape}"
    np.testing.assert_allclose(got, want, rtol=optax_loss_cases.CASES[name]["rtol"], atol=2e-6,
                               err_msg=f"{name} {what}")


def test_recorded_data_is_optax_0_2_8():
    assert str(DATA["optax_version"]) == "0.2.8"


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("name", NAMES)
def test_loss_matches_optax(name, jit):
    inputs = _inputs(name)
    value = fgrad.jit(_value_fn(name)) if jit else _value_fn(name)
    _check(value(*inputs), DATA[f"{name}/value"], name, "value")
    if optax_loss_cases.CASES[name]["grad"]:
        grad = fgrad.jit(_grad_fn(name)) if jit else _grad_fn(name)
        _check(grad(*inputs), DATA[f"{name}/grad"], name, "gradient")


@pytest.mark.parametrize("name", NAMES)
def test_loss_vmap_matches_loop(name):
    batches = [_inputs(name, seed) for seed in (7, 8, 9)]
    stacked = [fnp.stack(parts) for parts in zip(*batches)]
    got = fgrad.vmap(_value_fn(name))(*stacked)
    want = np.stack([np.asarray(_value_fn(name)(*inputs)) for inputs in batches])
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6, err_msg=name)


SMOOTH = ["softmax_cross_entropy", "softmax_cross_entropy_axis0", "softmax_cross_entropy_where_rows",
          "safe_softmax_cross_entropy_plain", "integer_labels", "integer_labels_axis_tuple", "poly_loss_cross_entropy",
          "sigmoid_binary_cross_entropy_soft", "sigmoid_focal_loss_alpha", "l2_loss", "log_cosh",
          "cosine_similarity_options", "kl_divergence", "generalized_kl_divergence", "smooth_labels_where", "ntxent"]


@pytest.mark.parametrize("name", SMOOTH)
def test_loss_gradient_matches_finite_differences(name):
    first, *rest = (np.asarray(x) for x in _inputs(name))
    loss = optax_loss_cases.CASES[name]["loss"]
    check_grads(lambda x: loss(optim, x, *[fnp.asarray(r) for r in rest]), (first.astype(np.float64),), order=1,
                eps=1e-5, rtol=1e-4, atol=1e-5)


def test_masked_classes_are_finite_only_in_the_safe_loss():
    logits, labels, _ = _inputs("softmax_cross_entropy_neg_inf")
    assert np.isnan(np.asarray(optim.softmax_cross_entropy(logits, labels))).any()
    safe = optim.safe_softmax_cross_entropy(logits, labels)
    grads = fgrad.grad(lambda x: fnp.sum(optim.safe_softmax_cross_entropy(x, labels)))(logits)
    assert np.isfinite(np.asarray(safe)).all() and np.isfinite(np.asarray(grads)).all()


def test_integer_labels_agree_with_one_hot_probabilities():
    logits, labels = _inputs("integer_labels")
    one_hot = fgrad.nn.one_hot(labels, 5)
    np.testing.assert_allclose(np.asarray(optim.softmax_cross_entropy_with_integer_labels(logits, labels)),
                               np.asarray(optim.softmax_cross_entropy(logits, one_hot)), rtol=1e-5)


def test_loss_errors_name_the_mistake():
    logits = fnp.zeros((2, 3))
    with pytest.raises(TypeError, match="logits must have a floating dtype"):
        optim.softmax_cross_entropy(fnp.zeros((2, 3), dtype=fnp.int32), logits)
    with pytest.raises(TypeError, match="labels must be integers"):
        optim.softmax_cross_entropy_with_integer_labels(logits, fnp.zeros((2,)))
    with pytest.raises(ValueError, match="axis must be an int or a tuple"):
        optim.softmax_cross_entropy_with_integer_labels(logits, fnp.zeros((2,), dtype=fnp.int32), axis=[1])
    with pytest.raises(ValueError, match="out of range"):
        optim.softmax_cross_entropy_with_integer_labels(logits, fnp.zeros((2,), dtype=fnp.int32), axis=2)
    with pytest.raises(ValueError, match="same shape"):
        optim.squared_error(fnp.zeros(3), fnp.zeros((3, 1)))
    with pytest.raises(ValueError, match="same leading dimension"):
        optim.ntxent(fnp.zeros((4, 2)), fnp.zeros(3, dtype=fnp.int32))


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("scale", [0.0, 0.5, 1.0, -2.0])
def test_scale_gradient_scales_only_the_gradient(scale, jit):
    x = {"a": fnp.asarray([1.0, -2.0, 3.0]), "b": fnp.asarray(0.5)}

    def f(params):
        scaled = optim.scale_gradient(params, scale)
        return fnp.sum(scaled["a"] ** 2) + 3.0 * scaled["b"]

    grad = fgrad.jit(fgrad.grad(f)) if jit else fgrad.grad(f)
    g = grad(x)
    np.testing.assert_allclose(np.asarray(g["a"]), scale * 2.0 * np.array([1.0, -2.0, 3.0]), rtol=1e-6)
    np.testing.assert_allclose(float(g["b"]), scale * 3.0, rtol=1e-6)
    np.testing.assert_allclose(float(f(x)), 14.0 + 1.5, rtol=1e-6)


NEW_OPTIMIZERS = ["amsgrad", "yogi", "adadelta", "adamaxw", "novograd", "signum", "rprop", "zero_nans",
                  "apply_every", "add_noise", "centralize", "lookahead", "multi_steps_skip_not_finite"]


@pytest.mark.parametrize("name", NEW_OPTIMIZERS)
def test_new_states_are_pytrees(name):
    case = optax_cases.CASES[name]
    params, grads = optax_cases.make_data(case, 0)
    p = tree.tree_map(fnp.asarray, params)
    if case["wrap"] is not None:
        p = case["wrap"](optim, p)
    opt = case["make"](optim)
    state = opt.init(p)
    _, state = opt.update(tree.tree_map(fnp.asarray, grads[0]), state, p)
    leaves, treedef = tree.tree_flatten(state)
    rebuilt = tree.tree_unflatten(treedef, leaves)
    assert tree.tree_structure(rebuilt) == treedef
    copied = tree.tree_map(lambda x: x, state)
    assert type(copied) is type(state) and len(tree.tree_leaves(copied)) == len(leaves)
    _, state2 = fgrad.jit(opt.update)(tree.tree_map(fnp.asarray, grads[1]), copied, p)
    assert tree.tree_structure(state2) == treedef


def test_new_transformation_errors():
    with pytest.raises(ValueError, match="sync_period must be >= 1"):
        optim.lookahead(optim.sgd(0.1), 0, 0.5)
    opt = optim.lookahead(optim.sgd(0.1), 2, 0.5)
    params = {"w": fnp.ones(3)}
    state = opt.init(optim.LookaheadParams.init_synced(params))
    with pytest.raises(ValueError, match="LookaheadParams"):
        opt.update(params, state, params)
    with pytest.raises(ValueError, match="needs params"):
        optim.keep_params_nonnegative().update(params, optim.EmptyState())
    with pytest.raises(ValueError, match="either key or the deprecated seed"):
        optim.add_noise(0.1, 0.5, key=1, seed=2)
    with pytest.raises(ValueError, match="decay_steps"):
        optim.sgdr_schedule([dict(init_value=0.0, peak_value=1.0, warmup_steps=1)])


def test_skip_not_finite_counts():
    skip, info = optim.skip_not_finite({"a": fnp.asarray([1.0, np.nan, np.inf]), "b": fnp.ones(2)}, 0, None)
    assert bool(skip) and int(info["num_not_finite"]) == 2
    skip, info = optim.skip_not_finite({"a": fnp.ones(3)}, 0, None)
    assert not bool(skip) and int(info["num_not_finite"]) == 0


@pytest.mark.parametrize("name", optax_loss_cases.NAMES)
def test_name_and_parameters_match_optax(name):
    """Where optax has the name (top level or ``optax.losses``), fgrad.optim has it in the same
    place, with the same parameter names, kinds and defaults."""
    assert (name in optim.__all__) == bool(DATA[f"names/{name}/top"]), f"{name}: top-level presence differs"
    if bool(DATA[f"names/{name}/losses"]):
        assert hasattr(optim.losses, name), f"fgrad.optim.losses lacks {name}"
    obj = getattr(optim, name, None) or getattr(optim.losses, name)
    got = "" if isinstance(obj, type) else optax_loss_cases.describe_parameters(obj)
    assert got == str(DATA[f"names/{name}/parameters"])
