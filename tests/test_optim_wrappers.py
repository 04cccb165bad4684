"""fgrad.optim's pieces checked by their defining behaviour (the optax comparisons are in
test_optim_optax.py): global_norm and clipping vs NumPy, masks keep no state for masked leaves,
inject_hyperparams' state changes take effect under one jitted step, apply_if_finite's counters,
MultiSteps' schedule, Adafactor's factored statistics, grad through optimizer steps vs finite
differences, vmap over a batch of models vs a loop, and the error messages."""
import functools
import inspect

import numpy as np
import pytest

import fgrad
from fgrad import nn, optim, random, tree
from fgrad import numpy as fnp

from util import check_grads, check_vmap

pytestmark = pytest.mark.filterwarnings("error::fgrad.ReferencePathWarning")


def tree_of(seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return {"b": fnp.asarray((scale * rng.standard_normal(3)).astype(np.float32)),
            "w": fnp.asarray((scale * rng.standard_normal((4, 3))).astype(np.float32))}


def as_numpy(t):
    return tree.tree_map(np.asarray, t)


def test_global_norm_is_the_norm_of_all_leaves_together():
    t = tree_of(1)
    want = np.sqrt(sum(np.sum(np.asarray(x, np.float64) ** 2) for x in tree.tree_leaves(t)))
    np.testing.assert_allclose(float(optim.global_norm(t)), want, rtol=1e-6)
    np.testing.assert_allclose(float(fgrad.jit(optim.global_norm)(t)), want, rtol=1e-6)
    assert float(optim.global_norm({})) == 0.0


@pytest.mark.parametrize("jit", [False, True])
def test_clip_by_global_norm_scales_only_above_the_bound(jit):
    t = tree_of(2)
    norm = float(optim.global_norm(t))
    for max_norm in (norm * 2, norm / 3):
        clipper = optim.clip_by_global_norm(max_norm)
        update = fgrad.jit(clipper.update) if jit else clipper.update
        out, _ = update(t, clipper.init(t))
        factor = 1.0 if norm < max_norm else max_norm / norm
        for got, x in zip(tree.tree_leaves(out), tree.tree_leaves(t)):
            np.testing.assert_allclose(np.asarray(got), np.asarray(x) * factor, rtol=1e-6)
        np.testing.assert_allclose(float(optim.global_norm(out)), min(norm, max_norm), rtol=1e-6)


def test_clip_bounds_each_element():
    t = tree_of(3, scale=2.0)
    out, _ = optim.clip(0.5).update(t, optim.EmptyState())
    for got, x in zip(tree.tree_leaves(out), tree.tree_leaves(t)):
        np.testing.assert_array_equal(np.asarray(got), np.clip(np.asarray(x), -0.5, 0.5))


@pytest.mark.parametrize("mask", [{"b": False, "w": True}, lambda p: {"b": False, "w": True}],
                         ids=["tree", "callable"])
def test_masked_leaves_pass_through_and_keep_no_state(mask):
    params, grads = tree_of(4), tree_of(5)
    opt = optim.masked(optim.adam(0.1), mask)
    state = opt.init(params)
    adam_state = state.inner_state[0]
    assert set(adam_state.mu) == {"b", "w"} and tree.tree_leaves(adam_state.mu["b"]) == []
    updates, state = opt.update(grads, state, params)
    np.testing.assert_array_equal(np.asarray(updates["b"]), np.asarray(grads["b"]))
    alone, _ = optim.adam(0.1).update({"w": grads["w"]}, optim.adam(0.1).init({"w": params["w"]}))
    np.testing.assert_allclose(np.asarray(updates["w"]), np.asarray(alone["w"]), rtol=1e-6)


def test_mask_may_be_a_prefix_of_the_params():
    params = {"enc": tree_of(6), "head": tree_of(7)}
    opt = optim.masked(optim.scale(0.0), {"enc": True, "head": False})
    updates, _ = opt.update(params, opt.init(params), params)
    assert all(float(fnp.max(fnp.abs(x))) == 0.0 for x in tree.tree_leaves(updates["enc"]))
    np.testing.assert_array_equal(np.asarray(updates["head"]["w"]), np.asarray(params["head"]["w"]))


def test_adamw_decays_only_the_matrices_with_a_mask():
    params = tree_of(8)
    zero_grads = tree.tree_map(fnp.zeros_like, params)
    opt = optim.adamw(0.1, weight_decay=0.5, mask=lambda p: tree.tree_map(lambda x: x.ndim >= 2, p))
    updates, _ = opt.update(zero_grads, opt.init(params), params)
    np.testing.assert_array_equal(np.asarray(updates["b"]), 0.0)
    np.testing.assert_allclose(np.asarray(updates["w"]), -0.1 * 0.5 * np.asarray(params["w"]), rtol=1e-6)


def test_inject_hyperparams_changes_take_effect_under_one_jitted_step():
    params, grads = tree_of(9), tree_of(10)
    opt = optim.inject_hyperparams(optim.sgd)(learning_rate=0.1, momentum=0.0)
    state = opt.init(params)
    assert state.hyperparams["learning_rate"].dtype == np.float32
    step = fgrad.jit(opt.update)
    first, state = step(grads, state, params)
    np.testing.assert_allclose(np.asarray(first["w"]), -0.1 * np.asarray(grads["w"]), rtol=1e-6)
    state.hyperparams["learning_rate"] = fnp.asarray(0.0, dtype=fnp.float32)
    state.hyperparams["momentum"] = fnp.asarray(0.0, dtype=fnp.float32)
    second, state = step(grads, state, params)
    np.testing.assert_array_equal(np.asarray(second["w"]), 0.0)
    assert int(state.count) == 2


def test_inject_hyperparams_evaluates_schedules_at_the_step_count():
    params, grads = tree_of(11), tree_of(12)
    opt = optim.inject_hyperparams(optim.sgd)(learning_rate=optim.linear_schedule(1.0, 0.0, 4))
    state = opt.init(params)
    seen = []
    for _ in range(5):
        _, state = opt.update(grads, state, params)
        seen.append(float(state.hyperparams["learning_rate"]))
    np.testing.assert_allclose(seen, [1.0, 0.75, 0.5, 0.25, 0.0])


def test_inject_hyperparams_rejects_unknown_static_args():
    with pytest.raises(ValueError, match="static_args"):
        optim.inject_hyperparams(optim.adam, static_args=("nope",))


def test_apply_if_finite_skips_and_counts_non_finite_steps():
    params = tree_of(13)
    bad = tree.tree_map(lambda x: x * np.nan, tree_of(14))
    opt = optim.apply_if_finite(optim.sgd(0.1, momentum=0.9), max_consecutive_errors=1)
    state = opt.init(params)
    updates, state = opt.update(bad, state, params)
    assert all(float(fnp.max(fnp.abs(u))) == 0.0 for u in tree.tree_leaves(updates))
    assert (int(state.notfinite_count), bool(state.last_finite), int(state.total_notfinite)) == (1, False, 1)
    np.testing.assert_array_equal(np.asarray(state.inner_state[0].trace["w"]), 0.0)
    updates, state = opt.update(bad, state, params)
    assert np.isnan(np.asarray(updates["w"])).all()
    good = tree_of(15)
    _, state = opt.update(good, state, params)
    assert (int(state.notfinite_count), bool(state.last_finite), int(state.total_notfinite)) == (0, True, 2)


def test_multi_steps_applies_the_mean_every_k_calls():
    params = tree_of(16)
    grads = [tree_of(20 + i) for i in range(6)]
    opt = optim.MultiSteps(optim.sgd(1.0), every_k_schedule=3)
    state = opt.init(params)
    step = fgrad.jit(opt.update)
    for i, g in enumerate(grads):
        updates, state = step(g, state, params)
        if i % 3 == 2:
            mean = np.mean([np.asarray(grads[j]["w"]) for j in range(i - 2, i + 1)], axis=0)
            np.testing.assert_allclose(np.asarray(updates["w"]), -mean, rtol=1e-5, atol=1e-6)
            assert bool(opt.has_updated(state))
        else:
            np.testing.assert_array_equal(np.asarray(updates["w"]), 0.0)
            assert not bool(opt.has_updated(state))
    assert int(state.gradient_step) == 2


def test_adafactor_factors_matrices_and_keeps_full_statistics_otherwise():
    params = {"m": fnp.zeros((256, 130), fnp.float32), "small": fnp.zeros((3, 5), fnp.float32),
              "v": fnp.zeros((7,), fnp.float32)}
    state = optim.adafactor().init(params)[0]
    assert isinstance(state, optim.FactoredState)
    # optax's layout: v_row drops the largest dim, v_col the second largest
    assert state.v_row["m"].shape == (130,) and state.v_col["m"].shape == (256,) and state.v["m"].shape == (1,)
    assert state.v["small"].shape == (3, 5) and state.v_row["small"].shape == (1,)
    assert state.v["v"].shape == (7,)


def test_adafactor_factored_update_by_hand():
    rng = np.random.default_rng(17)
    g = rng.standard_normal((4, 6)).astype(np.float32)
    p = {"m": fnp.zeros((4, 6), fnp.float32)}
    opt = optim.scale_by_factored_rms(min_dim_size_to_factor=2)
    updates, state = opt.update({"m": fnp.asarray(g)}, opt.init(p), p)
    decay = 1 - 1.0 ** -0.8       # step 0: (0 + 1) ** -0.8 = 1, so the first statistics are the squares
    sq = g.astype(np.float64) ** 2 + 1e-30
    row, col = (1 - decay) * sq.mean(axis=1), (1 - decay) * sq.mean(axis=0)
    want = g / np.sqrt(np.outer(row / row.mean(), col))
    np.testing.assert_allclose(np.asarray(updates["m"]), want, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(state.v_row["m"]), row, rtol=1e-6)


def test_learning_rate_may_be_an_array_or_a_schedule_anywhere():
    params, grads = tree_of(18), tree_of(19)
    for lr in (0.1, fnp.asarray(0.1, dtype=fnp.float32), optim.constant_schedule(0.1)):
        for make in (optim.sgd, optim.lion, optim.adagrad, optim.rmsprop, optim.lamb, optim.adamax):
            opt = make(lr)
            updates, _ = fgrad.jit(opt.update)(grads, opt.init(params), params)
            assert all(np.isfinite(np.asarray(u)).all() for u in tree.tree_leaves(updates))


def two_adam_steps(w, b):
    """A meta-gradient: the loss after two Adam steps on sum(x**2), as a function of the start."""
    params = {"b": b, "w": w}
    opt = optim.chain(optim.clip_by_global_norm(5.0), optim.adamw(0.1, weight_decay=0.1))
    state = opt.init(params)
    for _ in range(2):
        grads = tree.tree_map(lambda x: 2 * x, params)
        updates, state = opt.update(grads, state, params)
        params = optim.apply_updates(params, updates)
    return fnp.sum(params["w"] ** 2) + fnp.sum(params["b"] ** 2)


def test_grad_through_optimizer_steps_matches_finite_differences():
    rng = np.random.default_rng(21)
    check_grads(two_adam_steps, (rng.standard_normal((3, 2)), rng.standard_normal(2)), order=1, rtol=1e-4,
                atol=1e-6)


def test_vmap_over_a_batch_of_models_matches_a_loop():
    rng = np.random.default_rng(22)
    ws = rng.standard_normal((4, 3, 2)).astype(np.float32)
    bs = rng.standard_normal((4, 2)).astype(np.float32)
    check_vmap(two_adam_steps, (ws, bs), rtol=1e-5, atol=1e-6)


def test_errors_name_the_mistake():
    params = tree_of(23)
    with pytest.raises(ValueError, match="needs params"):
        opt = optim.lamb(1e-3)
        opt.update(params, opt.init(params))
    with pytest.raises(TypeError, match="GradientTransformation"):
        optim.chain(optim.sgd(0.1), 0.5)
    with pytest.raises(ValueError, match="boundaries"):
        optim.join_schedules([optim.constant_schedule(1.0)] * 2, [1, 2])
    with pytest.raises(ValueError, match="decay_steps"):
        optim.cosine_decay_schedule(1.0, 0)
    with pytest.raises(ValueError, match="non-negative"):
        optim.piecewise_constant_schedule(1.0, {3: -1.0})


def test_adamw_mask_works_on_nn_modules_as_on_dicts():
    """nanoGPT's recipe: decay only the matrices of a model (an nn.Module pytree)."""
    model = nn.Sequential(nn.Linear(3, 4, key=random.key(0)), nn.relu, nn.Linear(4, 2, key=random.key(1)))
    mask = tree.map(lambda x: x.ndim >= 2, model)
    assert tree.structure(mask) == tree.structure(model)
    assert tree.leaves(mask) == [x.ndim >= 2 for x in tree.leaves(model)]
    opt = optim.adamw(0.1, weight_decay=0.5, mask=lambda p: tree.map(lambda x: x.ndim >= 2, p))
    zero_grads = tree.map(fnp.zeros_like, model)
    updates, _ = fgrad.jit(opt.update)(zero_grads, opt.init(model), model)
    for u, p in zip(tree.leaves(updates), tree.leaves(model)):
        want = -0.1 * 0.5 * np.asarray(p) if p.ndim >= 2 else np.zeros(p.shape)
        np.testing.assert_allclose(np.asarray(u), want, rtol=1e-6, atol=0)


def test_partition_names_unlabelled_groups():
    params = tree_of(24)
    opt = optim.partition({"a": optim.sgd(0.1)}, {"b": "a", "w": "missing"})
    with pytest.raises(ValueError, match=r"labels \['missing'\] have no transformation"):
        opt.init(params)


def test_every_public_name_is_documented():
    public = {name: getattr(optim, name) for name in optim.__all__}
    documentable = {name: obj for name, obj in public.items()
                    if inspect.isfunction(obj) or inspect.isclass(obj) or isinstance(obj, functools.partial)}
    assert len(documentable) > 80
    undocumented = [name for name, obj in documentable.items() if not (obj.__doc__ or "").strip()]
    assert undocumented == []
