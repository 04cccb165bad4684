"""Module semantics: instances are pytrees (arrays are children, everything else static),
grad returns a model-shaped gradient, jit keys its cache on the static fields, modules nest
(attributes, lists, dicts), and instances are frozen after __init__."""
import numpy as np
import pytest

import fgrad
from fgrad import nn, tree
from fgrad import numpy as fnp


def arr(*shape, seed=0):
    return fnp.asarray(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


class Scale(nn.Module):
    def __init__(self, n, seed=0, activation="tanh"):
        self.w = arr(n, seed=seed)
        self.b = arr(n, seed=seed + 100)
        self.activation = activation
        self.n = n

    def __call__(self, x):
        y = x * self.w + self.b
        return fnp.tanh(y) if self.activation == "tanh" else y


class Stack(nn.Module):
    def __init__(self, n, depth):
        self.layers = [Scale(n, seed=i) for i in range(depth)]
        self.head = Scale(n, seed=99, activation="linear")
        self.extra = {"gain": arr(n, seed=7)}

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.head(x) * self.extra["gain"]


def loss(model, x):
    return fnp.sum(model(x) * model(x))


def test_array_attributes_are_leaves_and_the_rest_is_static():
    m = Scale(3)
    leaves, treedef = tree.tree_flatten(m)
    assert len(leaves) == 2
    np.testing.assert_array_equal(np.asarray(leaves[0]), np.asarray(m.w))
    rebuilt = tree.tree_unflatten(treedef, leaves)
    assert type(rebuilt) is Scale and rebuilt.activation == "tanh" and rebuilt.n == 3
    assert tree.tree_structure(Scale(3, activation="linear")) != treedef
    assert tree.tree_structure(Scale(3, seed=5)) == treedef


def test_key_paths_name_attributes_and_list_positions():
    paths = [tree.keystr(p) for p, _ in tree.tree_flatten_with_path(Stack(2, 2))[0]]
    assert paths == [".layers[0].w", ".layers[0].b", ".layers[1].w", ".layers[1].b",
                     ".head.w", ".head.b", ".extra['gain']"]


def test_grad_returns_a_model_shaped_gradient_matching_finite_differences():
    m, x = Stack(3, 2), arr(3, seed=42)
    g = fgrad.grad(loss)(m, x)
    assert type(g) is Stack and type(g.layers[1]) is Scale and g.head.activation == "linear"
    assert tree.tree_structure(g) == tree.tree_structure(m)
    eps = 1e-3
    w = np.asarray(m.layers[0].w).astype(np.float64)
    for i in range(3):
        bump = np.zeros(3)
        bump[i] = eps
        plus = _with_first_weight(m, w + bump)
        minus = _with_first_weight(m, w - bump)
        numeric = (float(loss(plus, x)) - float(loss(minus, x))) / (2 * eps)
        np.testing.assert_allclose(np.asarray(g.layers[0].w)[i], numeric, rtol=2e-2, atol=2e-3)


def _with_first_weight(model, w):
    first = model.layers[0].replace(w=fnp.asarray(w.astype(np.float32)))
    return model.replace(layers=[first, *model.layers[1:]])


def test_value_and_grad_and_tree_map_update_keep_the_module_type():
    m, x = Scale(4), arr(4, seed=3)
    value, g = fgrad.value_and_grad(loss)(m, x)
    stepped = tree.tree_map(lambda p, d: p - 0.1 * d, m, g)
    assert type(stepped) is Scale
    assert float(loss(stepped, x)) < float(value)


def test_jit_traces_once_per_static_configuration():
    traces = []

    @fgrad.jit
    def f(model, x):
        traces.append(model.activation)
        return model(x)

    x = arr(3)
    f(Scale(3), x)
    f(Scale(3, seed=1), x)   # same structure and statics: cached
    f(Scale(3, activation="linear"), x)
    assert traces == ["tanh", "linear"]
    np.testing.assert_allclose(np.asarray(f(Scale(3, seed=2), x)), np.asarray(Scale(3, seed=2)(x)), rtol=1e-6)


def test_jit_can_return_a_module():
    m = fgrad.jit(lambda model: tree.tree_map(lambda p: p * 2.0, model))(Scale(2))
    assert type(m) is Scale
    np.testing.assert_allclose(np.asarray(m.w), 2 * np.asarray(Scale(2).w))


def test_vmap_over_inputs_with_a_shared_module():
    m, xs = Scale(3), arr(5, 3, seed=1)
    got = fgrad.vmap(lambda model, x: model(x), in_axes=(None, 0))(m, xs)
    want = np.stack([np.asarray(m(fnp.asarray(np.asarray(xs)[i]))) for i in range(5)])
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)


def test_module_is_frozen_after_init_with_a_helpful_error():
    m = Scale(2)
    with pytest.raises(nn.FrozenModuleError, match=r"frozen after __init__.*replace\(w=") as info:
        m.w = arr(2)
    assert isinstance(info.value, AttributeError)
    with pytest.raises(nn.FrozenModuleError, match="cannot delete .b"):
        del m.b


def test_mutation_inside_call_is_rejected():
    class Counter(nn.Module):
        def __init__(self):
            self.calls = 0

        def __call__(self):
            self.calls += 1

    with pytest.raises(nn.FrozenModuleError, match="cannot set .calls"):
        Counter()()


def test_replace_returns_a_new_frozen_module_and_rejects_unknown_names():
    m = Scale(2)
    m2 = m.replace(activation="linear")
    assert m.activation == "tanh" and m2.activation == "linear" and m2.w is m.w
    with pytest.raises(nn.FrozenModuleError):
        m2.n = 5
    with pytest.raises(ValueError, match=r"no attributes named \['missing'\]"):
        m.replace(missing=1)


def test_subclass_init_calling_super_freezes_only_at_the_end():
    class Wider(Scale):
        def __init__(self, n):
            super().__init__(n)
            self.extra = arr(n, seed=9)   # still inside __init__: allowed

    w = Wider(2)
    assert len(tree.tree_leaves(w)) == 3
    with pytest.raises(nn.FrozenModuleError):
        w.extra = None


def test_static_fields_keep_arrays_out_of_the_leaves():
    class WithTable(nn.Module):
        static_fields = ("table",)

        def __init__(self):
            self.w = arr(2)
            self.table = (1, 2, 3)

    leaves, treedef = tree.tree_flatten(WithTable())
    assert len(leaves) == 1
    assert tree.tree_unflatten(treedef, leaves).table == (1, 2, 3)


def test_unhashable_static_values_still_compare_structurally():
    class WithList(nn.Module):
        def __init__(self, sizes):
            self.w = arr(2)
            self.sizes = list(sizes)

    a, b, c = (tree.tree_structure(WithList(s)) for s in ([1, 2], [1, 2], [3]))
    assert a == b and hash(a) == hash(b) and a != c


def test_repr_shows_shapes_and_static_values():
    assert repr(Scale(3)) == "Scale(w=float32[3], b=float32[3], activation='tanh', n=3)"
