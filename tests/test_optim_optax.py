"""fgrad.optim against optax 0.2.8: every case of ``tests/optax_cases.py`` (optimizers, building
blocks, masks, clipping, schedules as learning rates, inject_hyperparams, apply_if_finite,
MultiSteps) run for several steps, eagerly and with the update jitted (native path: a
reference-path fallback is an error), and compared with the parameters and final state optax gave
for the same inputs (recorded by ``scripts/record_optax.py``)."""
import pathlib
from types import SimpleNamespace

import numpy as np
import pytest

import fgrad
from fgrad import numpy as fnp
from fgrad import optim, tree

import optax_cases

pytestmark = pytest.mark.filterwarnings("error::fgrad.ReferencePathWarning")

DATA = np.load(pathlib.Path(__file__).parent / "data" / optax_cases.DATA_FILE)
BACKEND = SimpleNamespace(optim=optim, asarray=fnp.asarray, tree_map=tree.tree_map, leaves=tree.tree_leaves,
                          jit=fgrad.jit)
SEEDS = {name: seed for seed, name in enumerate(optax_cases.CASES)}


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("name", list(optax_cases.CASES))
def test_optimizer_matches_optax(name, jit):
    case = optax_cases.CASES[name]
    history, state, count = optax_cases.run_case(BACKEND, case, SEEDS[name], jit=jit)
    want = DATA[f"{name}/params"]
    assert history.shape == want.shape
    for step in range(len(want)):
        np.testing.assert_allclose(history[step], want[step], rtol=case["rtol"], atol=2e-6,
                                   err_msg=f"{name}, step {step}")
    if case["state"]:
        assert count == int(DATA[f"{name}/state_leaves"]), "the state's layout differs from optax's"
        np.testing.assert_allclose(state, DATA[f"{name}/state"], rtol=2e-5, atol=2e-6, err_msg=f"{name} state")


@pytest.mark.parametrize("name", list(optax_cases.SCHEDULES))
def test_schedule_matches_optax(name):
    schedule = optax_cases.SCHEDULES[name](optim)
    want = DATA[f"schedule/{name}"]
    steps = range(optax_cases.SCHEDULE_STEPS)
    arrays = [float(schedule(fnp.asarray(s, dtype=fnp.int32))) for s in steps]
    np.testing.assert_allclose(arrays, want, rtol=1e-6, atol=1e-7)
    python_ints = [float(schedule(s)) for s in steps]
    np.testing.assert_allclose(python_ints, want, rtol=1e-6, atol=1e-7)
    jitted = fgrad.jit(lambda c: fnp.asarray(schedule(c), dtype=fnp.float32))
    np.testing.assert_allclose([float(jitted(fnp.asarray(s, dtype=fnp.int32))) for s in steps], want,
                               rtol=1e-6, atol=1e-7)


def test_recorded_data_is_optax_0_2_8():
    assert str(DATA["optax_version"]) == "0.2.8"


def reference_radam(params, grads, lr, b1=0.9, b2=0.999, eps=1e-8, threshold=5.0):
    """RAdam (Liu et al., 2020, Algorithm 2) in float64, as optax arranges it."""
    p = {k: v.astype(np.float64) for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v2 = {k: np.zeros_like(v) for k, v in p.items()}
    rho_inf = 2 / (1 - b2) - 1
    out = []
    for t, g in enumerate(grads, start=1):
        rho = rho_inf - 2 * t * b2 ** t / (1 - b2 ** t)
        for k in p:
            m[k] = b1 * m[k] + (1 - b1) * g[k]
            v2[k] = b2 * v2[k] + (1 - b2) * g[k] ** 2
            m_hat, v_hat = m[k] / (1 - b1 ** t), v2[k] / (1 - b2 ** t)
            if rho >= threshold:
                r = np.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
                p[k] = p[k] - lr * r * m_hat / (np.sqrt(v_hat) + eps)
            else:
                p[k] = p[k] - lr * m_hat
        out.append(np.concatenate([p[k].ravel() for k in sorted(p)]))
    return np.stack(out)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_radam_matches_float64_reference(jit):
    case = optax_cases.CASES["radam"]
    params, grads = optax_cases.make_data(case, SEEDS["radam"])
    history, _, _ = optax_cases.run_case(BACKEND, case, SEEDS["radam"], jit=jit)
    np.testing.assert_allclose(history, reference_radam(params, grads, 1e-2), rtol=1e-5, atol=2e-7)
