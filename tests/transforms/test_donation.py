"""jit(donate_argnums=...): donated buffers are reused for outputs when that is safe, the
donated arrays then refuse to be read, and results never depend on whether reuse happened."""
import numpy as np
import pytest

import fgrad
from fgrad import lax, numpy as fnp, optim


def _data(x) -> int:
    return np.asarray(x).__array_interface__["data"][0]


def _fresh(n=6):
    return fnp.asarray(np.arange(n, dtype=np.float32))


def test_elementwise_update_writes_over_the_donated_buffer():
    f = fgrad.jit(lambda x, y: (x * 2 + y, fnp.sum(y)), donate_argnums=0)
    x, y = _fresh(), fnp.ones(6)
    where = _data(x)
    out, total = f(x, y)
    np.testing.assert_array_equal(np.asarray(out), np.arange(6) * 2 + 1)
    assert float(total) == 6.0
    assert x.is_deleted() and not y.is_deleted() and _data(out) == where


def test_reading_a_donated_array_is_a_clear_error():
    f = fgrad.jit(lambda x: x + 1, donate_argnums=0)
    x = _fresh()
    f(x)
    for use in (lambda: x + 1, lambda: np.asarray(x), lambda: x.item(), lambda: repr(x), lambda: f(x)):
        with pytest.raises(RuntimeError, match="donated"):
            use()
    assert x.shape == (6,)      # metadata stays readable, as in JAX


@pytest.mark.parametrize("holder", ["numpy_view", "kept_asarray", "passed_twice"])
def test_buffers_others_can_see_are_not_reused(holder):
    f = fgrad.jit(lambda x, y: x * 2 + y, donate_argnums=0)
    x = _fresh()
    keep = None
    if holder == "numpy_view":
        keep = fnp.reshape(x, (2, 3))          # an eager reshape may share x's memory
    elif holder == "kept_asarray":
        keep = np.asarray(x)
    y = x if holder == "passed_twice" else fnp.ones(6)
    before = np.array(x)
    out = f(x, y)
    assert not x.is_deleted()
    np.testing.assert_array_equal(np.asarray(x), before)
    np.testing.assert_array_equal(np.asarray(out), before * 2 + np.asarray(y))
    del keep


def test_input_read_after_the_output_is_written_is_not_aliased():
    """out = reverse(x) reads x[n-1-i] while writing out[i]: reuse would be wrong."""
    f = fgrad.jit(lambda x: lax.rev(x, (0,)) * 3, donate_argnums=0)
    x = _fresh(37)
    out = f(x)
    assert not x.is_deleted()
    np.testing.assert_array_equal(np.asarray(out), np.arange(37)[::-1] * 3)


def test_donated_adam_step_matches_the_undonated_one():
    params = {"w": fnp.asarray(np.random.default_rng(0).standard_normal((7, 5)).astype(np.float32)),
              "b": fnp.zeros(5)}
    x = fnp.asarray(np.random.default_rng(1).standard_normal((4, 7)).astype(np.float32))
    opt = optim.adam(1e-2)

    def step(p, s):
        loss, g = fgrad.value_and_grad(lambda p: fnp.sum(fnp.tanh(x @ p["w"] + p["b"]) ** 2))(p)
        updates, s = opt.update(g, s, p)
        return optim.apply_updates(p, updates), s, loss

    plain, donating = fgrad.jit(step), fgrad.jit(step, donate_argnums=(0, 1))
    p1, s1 = params, opt.init(params)
    p2, s2 = {k: fnp.asarray(np.array(v)) for k, v in params.items()}, opt.init(params)
    reused = 0
    for _ in range(5):
        old = [_data(v) for v in fgrad.tree.tree_leaves(p2)]
        p1, s1, l1 = plain(p1, s1)
        p2, s2, l2 = donating(p2, s2)
        reused += sum(_data(v) in old for v in fgrad.tree.tree_leaves(p2))
        assert float(l1) == float(l2)
        for a, b in zip(fgrad.tree.tree_leaves((p1, s1)), fgrad.tree.tree_leaves((p2, s2))):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert reused > 0


def test_static_and_donated_argument_is_an_error():
    f = fgrad.jit(lambda x, n: x * n, static_argnums=1, donate_argnums=1)
    with pytest.raises(ValueError, match="static and donated"):
        f(_fresh(), 3)
