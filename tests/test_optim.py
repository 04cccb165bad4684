"""fgrad.optim: sgd (momentum, Nesterov), adam and adamw against updates computed by hand in
NumPy over several steps; schedules; states are pytrees that go through jit; errors."""
import math

import numpy as np
import pytest

import fgrad
from fgrad import numpy as fnp
from fgrad import optim, tree

STEPS = 5


def params_and_grads(seed=0):
    rng = np.random.default_rng(seed)
    params = {"w": rng.standard_normal((3, 2)).astype(np.float32), "b": rng.standard_normal(2).astype(np.float32)}
    grads = [{k: rng.standard_normal(v.shape).astype(np.float32) for k, v in params.items()} for _ in range(STEPS)]
    return params, grads


def to_fgrad(t):
    return tree.tree_map(fnp.asarray, t)


def run(opt, params, grads, jit=False):
    """Apply ``opt`` for each gradient in ``grads``; returns the parameters after each step."""
    update = fgrad.jit(opt.update) if jit else opt.update
    p = to_fgrad(params)
    state = opt.init(p)
    history = []
    for g in grads:
        updates, state = update(to_fgrad(g), state, p)
        p = optim.apply_updates(p, updates)
        history.append(tree.tree_map(np.asarray, p))
    return history


def assert_history(got, want, rtol=1e-5):
    for step, (g, w) in enumerate(zip(got, want)):
        for k in w:
            np.testing.assert_allclose(g[k], w[k], rtol=rtol, atol=1e-6, err_msg=f"step {step}, {k}")


def reference_sgd(params, grads, lr, momentum=0.0, nesterov=False):
    p = {k: v.astype(np.float64) for k, v in params.items()}
    velocity = {k: np.zeros_like(v) for k, v in p.items()}
    out = []
    for g in grads:
        for k in p:
            velocity[k] = momentum * velocity[k] + g[k]
            step = g[k] + momentum * velocity[k] if nesterov else velocity[k]
            p[k] = p[k] - lr * step
        out.append({k: v.copy() for k, v in p.items()})
    return out


def reference_adam(params, grads, lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, lr_of_step=None):
    p = {k: v.astype(np.float64) for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v2 = {k: np.zeros_like(v) for k, v in p.items()}
    out = []
    for t, g in enumerate(grads, start=1):
        rate = lr_of_step(t - 1) if lr_of_step else lr
        for k in p:
            m[k] = b1 * m[k] + (1 - b1) * g[k]
            v2[k] = b2 * v2[k] + (1 - b2) * g[k] ** 2
            m_hat, v_hat = m[k] / (1 - b1 ** t), v2[k] / (1 - b2 ** t)
            p[k] = p[k] - rate * (m_hat / (np.sqrt(v_hat) + eps) + weight_decay * p[k])
        out.append({k: x.copy() for k, x in p.items()})
    return out


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_matches_hand_computed_updates(momentum, nesterov):
    params, grads = params_and_grads()
    got = run(optim.sgd(0.1, momentum=momentum, nesterov=nesterov), params, grads)
    assert_history(got, reference_sgd(params, grads, 0.1, momentum, nesterov))


def test_adam_matches_hand_computed_updates():
    params, grads = params_and_grads(1)
    assert_history(run(optim.adam(1e-2), params, grads), reference_adam(params, grads, 1e-2))
    assert_history(run(optim.adam(3e-3, b1=0.5, b2=0.9, eps=1e-3), params, grads),
                   reference_adam(params, grads, 3e-3, b1=0.5, b2=0.9, eps=1e-3))


def test_adamw_decays_weights_decoupled_from_the_moments():
    params, grads = params_and_grads(2)
    got = run(optim.adamw(1e-2, weight_decay=0.1), params, grads)
    assert_history(got, reference_adam(params, grads, 1e-2, weight_decay=0.1))


def test_first_adam_step_moves_each_parameter_by_lr():
    params, grads = params_and_grads(3)
    first = run(optim.adam(1e-3), params, grads[:1])[0]
    for k in params:
        np.testing.assert_allclose(np.abs(first[k] - params[k]), 1e-3, rtol=1e-3)


def test_jitted_update_matches_eager_and_state_is_a_pytree():
    params, grads = params_and_grads(4)
    opt = optim.adam(1e-2)
    assert_history(run(opt, params, grads, jit=True), run(opt, params, grads))
    state = opt.init(to_fgrad(params))
    leaves, treedef = tree.tree_flatten(state)
    assert all(isinstance(leaf, fgrad.Array) for leaf in leaves)
    rebuilt = tree.tree_unflatten(treedef, leaves)
    assert type(rebuilt[0]) is optim.ScaleByAdamState and tree.tree_structure(rebuilt) == treedef
    adam_state = state[0]
    assert adam_state.count.dtype == np.int32 and set(adam_state.mu) == {"w", "b"}


def test_whole_step_under_jit_with_value_and_grad():
    rng = np.random.default_rng(5)
    x_np = rng.standard_normal((16, 3)).astype(np.float32)
    x, y = fnp.asarray(x_np), fnp.asarray(x_np @ np.array([1.0, -2.0, 0.5], np.float32) + 0.3)
    opt = optim.sgd(0.1, momentum=0.5)

    def loss(p):
        return fnp.mean((fnp.sum(x * p["w"], axis=1) + p["b"] - y) ** 2)

    @fgrad.jit
    def step(p, state):
        value, g = fgrad.value_and_grad(loss)(p)
        updates, state = opt.update(g, state, p)
        return optim.apply_updates(p, updates), state, value

    p = {"w": fnp.zeros((3,), fnp.float32), "b": fnp.zeros((), fnp.float32)}
    state = opt.init(p)
    losses = []
    for _ in range(30):
        p, state, value = step(p, state)
        losses.append(float(value))
    assert losses[-1] < 0.01 * losses[0]


def test_learning_rate_schedules():
    params, grads = params_and_grads(6)
    schedule = optim.exponential_decay(0.1, transition_steps=2, decay_rate=0.5)
    got = run(optim.sgd(schedule), params, grads)
    p = {k: v.astype(np.float64) for k, v in params.items()}
    for t, g in enumerate(grads):
        p = {k: p[k] - 0.1 * 0.5 ** (t / 2) * g[k] for k in p}
        for k in p:
            np.testing.assert_allclose(got[t][k], p[k], rtol=1e-5, atol=1e-6)
    cosine = optim.cosine_decay(1e-2, decay_steps=4, alpha=0.1)
    got = run(optim.adam(cosine), params, grads)
    want = reference_adam(params, grads, None, lr_of_step=lambda t: 1e-2 * (
        0.9 * 0.5 * (1 + math.cos(math.pi * min(t, 4) / 4)) + 0.1))
    assert_history(got, want)


def test_schedule_values():
    decay = optim.exponential_decay(1.0, 10, 0.1)
    np.testing.assert_allclose(float(decay(fnp.asarray(10))), 0.1, rtol=1e-6)
    cosine = optim.cosine_decay(2.0, 100)
    np.testing.assert_allclose([float(cosine(fnp.asarray(s))) for s in (0, 50, 100, 200)], [2.0, 1.0, 0.0, 0.0],
                               atol=1e-6)


def test_apply_updates_keeps_dtypes_and_structure():
    p = {"a": fnp.asarray(np.ones(2, np.float32)), "n": [fnp.asarray(np.zeros(3, np.float32))]}
    u = tree.tree_map(lambda x: fnp.full_like(x, 0.5), p)
    out = optim.apply_updates(p, u)
    assert out["a"].dtype == np.float32 and isinstance(out["n"], list)
    np.testing.assert_allclose(np.asarray(out["a"]), 1.5)


def test_adamw_without_params_explains_the_fix():
    opt = optim.adamw(1e-3)
    p = {"w": fnp.asarray(np.ones(2, np.float32))}
    with pytest.raises(ValueError, match="needs params"):
        opt.update(p, opt.init(p))


def test_invalid_hyperparameters_are_rejected():
    with pytest.raises(ValueError, match="momentum"):
        optim.sgd(0.1, momentum=-0.5)
    with pytest.raises(ValueError, match="nesterov"):
        optim.sgd(0.1, nesterov=True)
    with pytest.raises(ValueError, match="b1"):
        optim.adam(1e-3, b1=1.0)
