"""``fgrad.tree_util``, ``fgrad.flatten_util`` and ``fgrad.lax.linalg`` as importable modules with
JAX's names: the class decorators, ``Partial``, one-level flattening, static nodes, and
``ravel_pytree`` (values recorded from JAX 0.10 where stated)."""
from __future__ import annotations

import dataclasses
import importlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fgrad
from fgrad import numpy as fnp
from fgrad import tree_util as tu
from fgrad.flatten_util import ravel_pytree

SETTINGS = settings(max_examples=40, deadline=None)


@pytest.mark.parametrize("module", ["fgrad.tree_util", "fgrad.flatten_util", "fgrad.lax.linalg"])
def test_jax_module_paths_import(module):
    mod = importlib.import_module(module)
    assert mod is eval(module)          # the package attribute and the module are one object


def test_tree_util_has_jax_tree_util_names():
    # jax.tree_util's public names (JAX 0.10), less default_registry (JAX's C++ registry object)
    names = ["DictKey", "FlattenedIndexKey", "GetAttrKey", "KeyEntry", "KeyPath", "Partial", "PyTreeDef",
             "SequenceKey", "all_leaves", "flatten_one_level", "flatten_one_level_with_keys", "is_tree_node",
             "keystr", "register_dataclass", "register_pytree_node", "register_pytree_node_class",
             "register_pytree_with_keys", "register_pytree_with_keys_class", "register_static", "tree_all",
             "tree_broadcast", "tree_flatten", "tree_flatten_with_path", "tree_leaves", "tree_leaves_with_path",
             "tree_map", "tree_map_with_path", "tree_reduce", "tree_reduce_associative", "tree_structure",
             "tree_transpose", "tree_unflatten", "treedef_children", "treedef_is_leaf", "treedef_tuple"]
    assert [n for n in names if not hasattr(tu, n)] == []
    assert tu.tree_map is fgrad.tree.map.__wrapped__ if hasattr(fgrad.tree.map, "__wrapped__") else True
    assert tu.tree_broadcast([1, 2], [(0, 0), [0]]) == [(1, 1), [2]]
    assert tu.tree_reduce_associative(lambda a, b: a + b, [1, (2, 3)]) == 6


@tu.register_pytree_node_class
class _Box:
    def __init__(self, x, name):
        self.x, self.name = x, name

    def tree_flatten(self):
        return (self.x,), self.name

    @classmethod
    def tree_unflatten(cls, name, children):
        return cls(children[0], name)


@tu.register_pytree_with_keys_class
class _Pair:
    def __init__(self, a, b):
        self.a, self.b = a, b

    def tree_flatten_with_keys(self):
        return [(tu.GetAttrKey("a"), self.a), (tu.GetAttrKey("b"), self.b)], None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children)


def test_register_pytree_node_class_under_jit_and_grad():
    box = fgrad.jit(lambda b: _Box(b.x * 2, b.name))(_Box(fnp.ones(2), "w"))
    assert isinstance(box, _Box) and box.name == "w"
    np.testing.assert_array_equal(box.x, [2.0, 2.0])
    g = fgrad.grad(lambda b: fnp.sum(b.x ** 2))(_Box(fnp.arange(3.0), "w"))
    np.testing.assert_allclose(g.x, [0.0, 2.0, 4.0])
    assert str(tu.tree_structure(_Box(1, "n"))) == "PyTreeDef(CustomNode(_Box['n'], [*]))"


def test_register_pytree_with_keys_class_gives_key_paths():
    paths = [tu.keystr(p) for p, _ in tu.tree_flatten_with_path(_Pair(1, [2]))[0]]
    assert paths == [".a", ".b[0]"]
    assert fgrad.jit(lambda p: p.a + p.b)(_Pair(1.0, 2.0)) == 3.0


def test_class_decorators_name_a_missing_method():
    class NoUnflatten:
        def tree_flatten(self):
            return (), None
    with pytest.raises(TypeError, match="must define tree_unflatten"):
        tu.register_pytree_node_class(NoUnflatten)
    with pytest.raises(TypeError, match="decorates a class"):
        tu.register_pytree_node_class(lambda x: x)


def test_register_static_makes_jit_treat_instances_as_static():
    @tu.register_static
    class Scale:
        def __init__(self, v):
            self.v = v

        def __hash__(self):
            return hash(self.v)

        def __eq__(self, other):
            return isinstance(other, Scale) and other.v == self.v

    traces = []

    def f(s, x):
        traces.append(1)
        return x * s.v
    jf = fgrad.jit(f)
    assert jf(Scale(3), 2.0) == 6.0 and jf(Scale(3), 4.0) == 12.0 and jf(Scale(5), 1.0) == 5.0
    assert len(traces) == 2                      # one trace per distinct static value
    assert tu.tree_leaves(Scale(3)) == []

    class Unhashable:
        __hash__ = None
    with pytest.raises(TypeError, match="not hashable"):
        tu.register_static(Unhashable)


def test_tree_static_field_is_treedef_data():
    @tu.register_dataclass
    @dataclasses.dataclass
    class Op:
        x: object
        op: str = fgrad.tree.static(default="add")
    leaves, treedef = tu.tree_flatten(Op(fnp.ones(2)))
    assert len(leaves) == 1 and "op='add'" in repr(treedef)
    assert dataclasses.fields(Op)[1].metadata["static"] is True


def test_partial_is_a_pytree_passed_through_jit():
    add_one = tu.Partial(fnp.add, 1.0)
    leaves, treedef = tu.tree_flatten(add_one)
    assert leaves == [1.0] and "CustomNode(Partial[" in repr(treedef) and "[(*,), {}]" in repr(treedef)
    assert fgrad.jit(lambda f, x: f(x))(add_one, 2.0) == 3.0
    scaled = fgrad.jit(lambda f: tu.Partial(f.func, f.args[0] * 2))(add_one)
    assert isinstance(scaled, tu.Partial) and scaled(1.0) == 3.0
    kw = tu.Partial(lambda x, *, y: x - y, y=fnp.float32(1.0))
    assert tu.tree_leaves(kw) == [1.0] and kw(3.0) == 2.0
    nested = tu.Partial(tu.Partial(lambda a, b, c: a + b + c, 1.0), 2.0)
    assert nested(3.0) == 6.0 and tu.tree_leaves(nested) == [2.0]


def test_one_level_flattening_and_node_checks():
    # recorded from jax.tree_util 0.10
    assert tu.flatten_one_level({"a": 1, "b": (2, 3)}) == ((1, (2, 3)), ("a", "b"))
    assert tu.flatten_one_level_with_keys({"a": 1, "b": (2, 3)}) == (
        ((tu.DictKey("a"), 1), (tu.DictKey("b"), (2, 3))), ("a", "b"))
    with pytest.raises(ValueError, match="can't tree-flatten type: <class 'int'>"):
        tu.flatten_one_level(1)
    assert [tu.is_tree_node(t) for t in (dict, int, type(None), tuple, _Box)] == [True, False, True, True, True]
    with pytest.raises(TypeError, match="takes a type"):
        tu.is_tree_node({"a": 1})
    assert repr(tu.treedef_tuple([tu.tree_structure(1), tu.tree_structure((1, 2))])) == "PyTreeDef((*, (*, *)))"
    t = tu.treedef_tuple([tu.tree_structure([1]), tu.tree_structure(None)])
    assert t.num_leaves == 1 and tu.tree_unflatten(t, [5]) == ([5], None)


# --- ravel_pytree ---------------------------------------------------------------------------------

def test_ravel_pytree_values_dtypes_and_round_trip():
    tree = {"a": fnp.ones((2, 2)), "b": (fnp.arange(3), 2.0)}
    flat, unravel = ravel_pytree(tree)
    assert flat.dtype == np.float32          # JAX: int32 and float32 leaves promote to float32
    np.testing.assert_array_equal(flat, [1, 1, 1, 1, 0, 1, 2, 2])
    back = unravel(flat)
    assert back["b"][0].dtype == np.int32 and back["a"].shape == (2, 2)
    np.testing.assert_array_equal(back["b"][0], [0, 1, 2])
    empty, unravel_empty = ravel_pytree([])
    assert empty.shape == (0,) and empty.dtype == np.float32 and unravel_empty(empty) == []
    small, _ = ravel_pytree({"i": fnp.arange(3, dtype=np.int8), "j": fnp.ones(2, fnp.bfloat16)})
    assert small.dtype == fnp.bfloat16
    assert ravel_pytree([1, 2.0, np.float64(3)])[0].dtype == np.float32   # weak scalars, no x64


def test_ravel_pytree_unravel_rejects_wrong_size_and_dtype():
    _, unravel = ravel_pytree([fnp.ones(2), fnp.arange(2)])
    with pytest.raises(ValueError, match="1-D array of 4 elements"):
        unravel(fnp.ones(3))
    with pytest.raises(ValueError, match="got shape \\(2, 2\\)"):
        unravel(fnp.ones((2, 2)))
    with pytest.raises(TypeError, match="given array of dtype int32, but expected dtype float32"):
        unravel(fnp.ones(4, np.int32))


def test_ravel_pytree_under_grad_jit_and_vmap():
    params = {"w": fnp.arange(6.0).reshape(2, 3), "b": 3.0}
    g = fgrad.grad(lambda p: fnp.sum(ravel_pytree(p)[0] ** 2))(params)
    np.testing.assert_allclose(g["w"], 2 * np.arange(6.0).reshape(2, 3))
    assert float(g["b"]) == 6.0
    flat, unravel = ravel_pytree(params)
    doubled = fgrad.jit(lambda v: unravel(v * 2))(flat)
    np.testing.assert_allclose(doubled["w"], 2 * np.arange(6.0).reshape(2, 3))
    rows = fgrad.vmap(lambda v: unravel(v)["b"])(fnp.stack([flat, flat + 1]))
    np.testing.assert_allclose(rows, [3.0, 4.0])


@SETTINGS
@given(st.lists(st.tuples(st.lists(st.integers(0, 3), max_size=3), st.sampled_from(["float32", "int32", "bool"])),
                max_size=5), st.integers(0, 2**31 - 1))
def test_ravel_pytree_round_trips_any_tree(specs, seed):
    rng = np.random.default_rng(seed)
    leaves = [(rng.standard_normal(tuple(shape)) * 4).astype(dtype) for shape, dtype in specs]
    tree = {"leaves": leaves, "none": None}
    flat, unravel = ravel_pytree(tree)
    kinds = {x.dtype for x in leaves}       # JAX's lattice: bool < int32 < float32 (NumPy: float64)
    want_dtype = next((d for d in map(np.dtype, ("float32", "int32", "bool")) if d in kinds), np.float32)
    assert flat.dtype == want_dtype
    np.testing.assert_array_equal(flat, np.concatenate([x.ravel().astype(want_dtype) for x in leaves])
                                  if leaves else np.zeros(0))
    back = unravel(flat)
    assert back["none"] is None
    for got, want in zip(back["leaves"], leaves):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
