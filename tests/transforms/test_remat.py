"""checkpoint / remat: same derivatives as without it, and the backward pass recomputes the
forward instead of keeping its intermediates (counted in the staged jaxprs)."""
import numpy as np
import pytest

import fgrad
from fgrad import grad, jit, jvp, lax, make_jaxpr, value_and_grad, vmap
from fgrad import numpy as fnp
from fgrad.core.ir import typecheck_jaxpr
from fgrad.transforms.remat import checkpoint, checkpoint_policies, remat
from tests.util import check_grads, check_vmap


def arr(values, dtype=np.float32):
    return fnp.asarray(np.asarray(values, dtype))


def block(x):
    return fnp.sin(fnp.sin(x)) * fnp.cos(x)


def count(jaxpr, name):
    """Equations of primitive ``name`` in a jaxpr, inside bodies too."""
    total = 0
    for eqn in jaxpr.jaxpr.eqns if hasattr(jaxpr, "jaxpr") else jaxpr.eqns:
        total += eqn.primitive.name == name
        for value in eqn.params.values():
            for inner in (value if isinstance(value, tuple) else (value,)):
                if hasattr(inner, "jaxpr") or hasattr(inner, "eqns"):
                    total += count(inner, name)
    return total


def test_values_and_gradients_equal_the_plain_function():
    x = arr(np.linspace(-2, 2, 5))
    loss = lambda f: (lambda v: fnp.sum(f(v)))  # noqa: E731
    np.testing.assert_allclose(np.asarray(checkpoint(block)(x)), np.asarray(block(x)), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(grad(loss(checkpoint(block)))(x)), np.asarray(grad(loss(block))(x)),
                               rtol=1e-6)
    check_grads(checkpoint(block), (x,), order=2)


def test_backward_pass_recomputes_the_forward():
    x = arr([0.1, 0.2])
    inner = lambda v: fnp.sin(fnp.sin(v))  # noqa: E731
    plain = make_jaxpr(value_and_grad(lambda v: fnp.sum(inner(v))))(x)
    remated = make_jaxpr(value_and_grad(lambda v: fnp.sum(checkpoint(inner)(v))))(x)
    typecheck_jaxpr(remated.jaxpr)
    # forward: sin x, sin(sin x); the backward needs sin x again for cos(sin x): recomputed
    assert count(plain, "sin") == 2
    assert count(remated, "sin") == 3
    assert len(remated.eqns) > len(plain.eqns)


def test_scan_over_checkpointed_layers_saves_only_the_carry():
    ws = arr(np.linspace(0.5, 1.5, 12).reshape(4, 3))

    def net(layer):
        return lambda x: fnp.sum(lax.scan(lambda h, w: (layer(h, w), None), x, ws)[0])

    layer = lambda h, w: fnp.tanh(fnp.sin(h * w) * w + h)  # noqa: E731
    x = arr([0.3, -0.2, 0.1])
    plain, remated = make_jaxpr(grad(net(layer)))(x), make_jaxpr(grad(net(checkpoint(layer))))(x)
    first_scan = lambda jaxpr: next(e for e in jaxpr.eqns if e.primitive.name == "scan")  # noqa: E731
    forward_plain, forward_remat = first_scan(plain), first_scan(remated)
    # stacked residuals per layer: several intermediates without remat, only the inputs with it
    assert len(forward_remat.outvars) < len(forward_plain.outvars)
    np.testing.assert_allclose(np.asarray(grad(net(checkpoint(layer)))(x)), np.asarray(grad(net(layer))(x)),
                               rtol=1e-6)


def test_policies():
    def mlp(w1, w2, x):
        h = fnp.tanh(lax.dot_general(x, w1, (((0,), (0,)), ((), ()))))
        return fnp.sum(fnp.tanh(lax.dot_general(h, w2, (((0,), (0,)), ((), ())))))
    args = (arr(np.ones((3, 4)) * 0.1), arr(np.ones((4, 2)) * 0.2), arr([1.0, 2.0, 3.0]))
    grads = [grad(checkpoint(mlp, policy=p), argnums=(0, 1))(*args)
             for p in (None, checkpoint_policies.dots_saveable, checkpoint_policies.everything_saveable)]
    for g in grads[1:]:
        for a, b in zip(g, grads[0]):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
    dots = [count(make_jaxpr(value_and_grad(checkpoint(mlp, policy=p), argnums=(0, 1)))(*args), "dot_general")
            for p in (None, checkpoint_policies.dots_saveable, checkpoint_policies.everything_saveable)]
    plain = count(make_jaxpr(value_and_grad(mlp, argnums=(0, 1)))(*args), "dot_general")
    assert dots == [plain + 2, plain, plain]  # nothing saved: both products run again backwards


def test_checkpoint_composes_with_vmap_jvp_jit_and_higher_order():
    f = checkpoint(block)
    check_vmap(f, (arr(np.linspace(-1, 1, 6).reshape(3, 2)),))
    check_vmap(f, (arr(np.linspace(-1, 1, 6).reshape(3, 2)),), in_axes=1)
    x = arr([0.3, 0.9])
    np.testing.assert_allclose(np.asarray(jvp(f, (x,), (fnp.ones(2),))[1]),
                               np.asarray(jvp(block, (x,), (fnp.ones(2),))[1]), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(vmap(grad(lambda v: fnp.sum(f(v))))(arr([[0.1, 0.2], [0.3, 0.4]]))),
                               np.asarray(vmap(grad(lambda v: fnp.sum(block(v))))(arr([[0.1, 0.2], [0.3, 0.4]]))),
                               rtol=1e-6)
    np.testing.assert_allclose(np.asarray(jit(grad(lambda v: fnp.sum(f(v))))(x)),
                               np.asarray(grad(lambda v: fnp.sum(block(v)))(x)), rtol=1e-6)
    g2 = grad(lambda v: fnp.sum(grad(lambda u: fnp.sum(f(u)))(v)))(x)
    g2_plain = grad(lambda v: fnp.sum(grad(lambda u: fnp.sum(block(u)))(v)))(x)
    np.testing.assert_allclose(np.asarray(g2), np.asarray(g2_plain), rtol=1e-5)


def test_decorator_forms_static_args_and_pytrees():
    @remat
    def f(params, x):
        return {"out": fnp.tanh(params["w"] * x + params["b"])}
    p = {"w": arr(0.5), "b": arr(0.1)}
    g = grad(lambda p: fnp.sum(f(p, arr([1.0, 2.0]))["out"]))(p)
    g_plain = grad(lambda p: fnp.sum(fnp.tanh(p["w"] * arr([1.0, 2.0]) + p["b"])))(p)
    assert float(g["w"]) == pytest.approx(float(g_plain["w"])) and float(g["b"]) == pytest.approx(float(g_plain["b"]))

    @checkpoint(static_argnums=1)
    def power(x, n):
        out = x
        for _ in range(n - 1):  # Python control flow on the static argument
            out = out * x
        return out
    assert float(grad(lambda x: power(x, 3))(arr(2.0))) == 12.0
    assert fgrad.transforms.remat.checkpoint is checkpoint


def test_bad_arguments():
    with pytest.raises(TypeError, match="expects a function"):
        checkpoint(3)
    with pytest.raises(TypeError, match="policy"):
        checkpoint(block, policy="dots")


def test_name_policies():
    # jax.ad_checkpoint.checkpoint_name marks a value; the name policies save it (or not)
    from fgrad.ad_checkpoint import checkpoint_name

    def mlp(w1, w2, x):
        h = checkpoint_name(fnp.tanh(lax.dot_general(x, w1, (((0,), (0,)), ((), ())))), "hidden")
        return fnp.sum(fnp.tanh(lax.dot_general(h, w2, (((0,), (0,)), ((), ())))))
    args = (arr(np.ones((3, 4)) * 0.1), arr(np.ones((4, 2)) * 0.2), arr([1.0, 2.0, 3.0]))
    policies = [None, checkpoint_policies.save_only_these_names("hidden"),
                checkpoint_policies.save_any_names_but_these("other"),
                checkpoint_policies.save_anything_except_these_names("hidden"),
                checkpoint_policies.save_from_both_policies(checkpoint_policies.nothing_saveable,
                                                           checkpoint_policies.save_only_these_names("hidden"))]
    want = grad(mlp, argnums=(0, 1))(*args)
    for p in policies:
        for g in (grad(checkpoint(mlp, policy=p), argnums=(0, 1))(*args),
                  jit(grad(checkpoint(mlp, policy=p), argnums=(0, 1)))(*args)):
            for a, b in zip(g, want):
                np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
    dots = [count(make_jaxpr(value_and_grad(checkpoint(mlp, policy=p), argnums=(0, 1)))(*args), "dot_general")
            for p in policies]
    plain = count(make_jaxpr(value_and_grad(mlp, argnums=(0, 1)))(*args), "dot_general")
    # nothing saved: both products again; "hidden" saved: only the second; all but it: none
    assert dots == [plain + 2, plain + 1, plain + 1, plain, plain + 1]
    np.testing.assert_array_equal(np.asarray(checkpoint_name({"a": arr([1.0, 2.0])}, "x")["a"]), [1.0, 2.0])
    assert fgrad.ad_checkpoint.checkpoint_policies.checkpoint_dots is checkpoint_policies.dots_saveable
