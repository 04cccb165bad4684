"""Tests for fgrad.tree against a hand-written oracle walker over the known node types."""
from __future__ import annotations

import collections
import dataclasses
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fgrad import tree
from fgrad.tree import DictKey, FlattenedIndexKey, GetAttrKey, SequenceKey


class Point(NamedTuple):
    x: Any
    y: Any


class Other(NamedTuple):
    x: Any
    y: Any


@tree.register_dataclass
@dataclasses.dataclass
class Layer:
    w: Any
    b: Any
    name: str = dataclasses.field(default="dense", metadata={"static": True})


class Box:
    """A custom node with aux data: ``tag`` is static, ``items`` are children."""

    def __init__(self, tag, items):
        self.tag, self.items = tag, list(items)

    def __eq__(self, other):
        return type(other) is Box and self.tag == other.tag and strict_equal(self.items, other.items)


tree.register_pytree_node(Box, lambda b: (b.items, b.tag), lambda tag, items: Box(tag, items))


class Named:
    """A custom node with key names."""

    def __init__(self, left, right):
        self.left, self.right = left, right


tree.register_pytree_with_keys(
    Named, lambda n: ([(GetAttrKey("left"), n.left), (GetAttrKey("right"), n.right)], None),
    lambda _, ch: Named(*ch))


# --- the oracle: an independent walker over the node types the tests build ----------------------

def oracle_children(t):
    """(children, keys) of a node, or None for a leaf."""
    if t is None:
        return [], []
    if type(t) in (tuple, list):
        return list(t), [SequenceKey(i) for i in range(len(t))]
    if type(t) in (Point, Other):
        return list(t), [GetAttrKey(f) for f in t._fields]
    if type(t) is dict:
        keys = sorted(t)
        return [t[k] for k in keys], [DictKey(k) for k in keys]
    if type(t) is collections.OrderedDict:
        return list(t.values()), [DictKey(k) for k in t]
    if type(t) is Layer:
        return [t.w, t.b], [GetAttrKey("w"), GetAttrKey("b")]
    if type(t) is Box:
        return list(t.items), [FlattenedIndexKey(i) for i in range(len(t.items))]
    return None


def oracle_leaves(t):
    node = oracle_children(t)
    if node is None:
        return [t]
    return [leaf for child in node[0] for leaf in oracle_leaves(child)]


def oracle_paths(t, path=()):
    node = oracle_children(t)
    if node is None:
        return [path]
    return [p for child, key in zip(*node) for p in oracle_paths(child, path + (key,))]


def strict_equal(a, b):
    """Equality that also checks container types (a namedtuple == a plain tuple otherwise)."""
    if type(a) is not type(b):
        return False
    node = oracle_children(a)
    if node is None:
        return a == b
    if type(a) is collections.OrderedDict and list(a) != list(b):
        return False
    if type(a) is dict and sorted(a) != sorted(b):
        return False
    if type(a) is Layer and a.name != b.name:
        return False
    if type(a) is Box and a.tag != b.tag:
        return False
    other = oracle_children(b)
    return len(node[0]) == len(other[0]) and all(strict_equal(x, y) for x, y in zip(node[0], other[0]))


def walk(t, path):
    """Follow a key path by hand."""
    for key in path:
        if type(key) is SequenceKey:
            t = t[key.idx]
        elif type(key) is DictKey:
            t = t[key.key]
        elif type(key) is GetAttrKey:
            t = getattr(t, key.name)
        elif type(key) is FlattenedIndexKey:
            t = t.items[key.key]
    return t


# --- strategies -------------------------------------------------------------------------------------

KEYS = st.sampled_from(["a", "b", "c", "params", "w"])


def containers(children):
    return st.one_of(
        st.lists(children, max_size=3).map(tuple),
        st.lists(children, max_size=3),
        st.dictionaries(KEYS, children, max_size=3),
        st.builds(Point, children, children),
        st.builds(Other, children, children),
        st.builds(Layer, children, children, st.sampled_from(["dense", "conv"])),
        st.builds(Box, st.integers(0, 2), st.lists(children, max_size=2)),
        st.dictionaries(KEYS, children, max_size=3).map(
            lambda d: collections.OrderedDict(reversed(d.items()))),
    )


trees = st.recursive(st.integers(-50, 50) | st.none(), containers, max_leaves=12)
SETTINGS = settings(max_examples=60, deadline=None)


# --- properties ------------------------------------------------------------------------------------

@SETTINGS
@given(trees)
def test_flatten_unflatten_round_trip(t):
    leaves, treedef = tree.tree_flatten(t)
    assert strict_equal(tree.tree_unflatten(treedef, leaves), t)
    assert strict_equal(treedef.unflatten(leaves), t)


@SETTINGS
@given(trees)
def test_leaves_match_oracle_order_and_count(t):
    leaves, treedef = tree.tree_flatten(t)
    assert leaves == oracle_leaves(t)
    assert treedef.num_leaves == len(leaves) == len(tree.tree_leaves(t))


@SETTINGS
@given(trees)
def test_tree_map_identity_and_composition(t):
    def f(x):
        return 3 * x + 1

    def g(x):
        return x - 7

    assert strict_equal(tree.tree_map(lambda x: x, t), t)
    composed = tree.tree_map(lambda x: f(g(x)), t)
    assert strict_equal(tree.tree_map(f, tree.tree_map(g, t)), composed)
    assert tree.tree_leaves(composed) == [f(g(x)) for x in oracle_leaves(t)]


@SETTINGS
@given(trees)
def test_tree_map_several_trees(t):
    doubled = tree.tree_map(lambda x: 2 * x, t)
    summed = tree.tree_map(lambda x, y, z: x + y + z, t, doubled, t)
    assert tree.tree_leaves(summed) == [4 * x for x in oracle_leaves(t)]
    assert tree.tree_structure(summed) == tree.tree_structure(t)


@SETTINGS
@given(trees, trees)
def test_treedef_equality_matches_oracle_and_hash(a, b):
    def skeleton(t):
        return tree.tree_map(lambda _: 0, t)

    treedef_a, treedef_b = tree.tree_structure(a), tree.tree_structure(b)
    assert (treedef_a == treedef_b) == strict_equal(skeleton(a), skeleton(b))
    if treedef_a == treedef_b:
        assert hash(treedef_a) == hash(treedef_b)
    relabelled = tree.tree_structure(tree.tree_map(lambda x: -x, a))
    assert relabelled == treedef_a and hash(relabelled) == hash(treedef_a)
    assert {treedef_a: 1}[relabelled] == 1


@SETTINGS
@given(trees)
def test_key_paths_address_their_leaves(t):
    keyed, treedef = tree.tree_flatten_with_path(t)
    assert treedef == tree.tree_structure(t)
    assert [leaf for _, leaf in keyed] == tree.tree_leaves(t)
    assert [path for path, _ in keyed] == oracle_paths(t)
    for path, leaf in keyed:
        assert walk(t, path) == leaf


@SETTINGS
@given(trees)
def test_tree_map_with_path_passes_paths(t):
    mapped = tree.tree_map_with_path(lambda path, x, y: f"{tree.keystr(path)}={x}+{y}", t, t)
    expected = [f"{tree.keystr(p)}={x}+{x}" for p, x in zip(oracle_paths(t), oracle_leaves(t))]
    assert tree.tree_leaves(mapped) == expected
    assert tree.tree_structure(mapped) == tree.tree_structure(t)


@SETTINGS
@given(trees, st.data())
def test_broadcast_prefix_and_prefix_tree_map(prefix, data):
    """Replace each leaf of ``prefix`` by a random subtree: the prefix then covers the full tree."""
    subtrees = [data.draw(trees) for _ in tree.tree_leaves(prefix)]
    full = tree.tree_unflatten(tree.tree_structure(prefix), subtrees)
    expected = [p for p, sub in zip(tree.tree_leaves(prefix), subtrees) for _ in oracle_leaves(sub)]
    assert tree.broadcast_prefix(prefix, full) == expected
    counts = tree.tree_map(lambda p, sub: len(oracle_leaves(sub)), prefix, full)
    assert tree.tree_leaves(counts) == [len(oracle_leaves(sub)) for sub in subtrees]
    got = tree.tree_structure(prefix).flatten_up_to(full)
    assert all(strict_equal(g, s) for g, s in zip(got, subtrees)) and len(got) == len(subtrees)


def test_broadcast_prefix_vmap_style():
    args = (np.zeros(2), {"w": np.ones(2), "b": np.ones(3)}, [1, 2])
    axes = tree.broadcast_prefix((0, {"w": None, "b": 1}, None), args, is_leaf=lambda x: x is None)
    assert axes == [0, 1, None, None, None]   # dict leaves in sorted order: b, w
    assert tree.broadcast_prefix(0, args) == [0] * 5


def test_broadcast_prefix_error_names_path():
    with pytest.raises(ValueError, match=r"at \[1\]: expected a dict with keys \['a'\], got a dict "
                                         r"with keys \['b'\]"):
        tree.broadcast_prefix((0, {"a": 1}), (1, {"b": 2}))
    with pytest.raises(ValueError, match=r"at <root>: expected a tuple of 2 children, got a tuple of 3"):
        tree.broadcast_prefix((0, 0), (1, 2, 3))


@SETTINGS
@given(trees, st.integers(-2, 2).filter(bool))
def test_unflatten_wrong_leaf_count(t, delta):
    leaves, treedef = tree.tree_flatten(t)
    if len(leaves) + delta < 0:
        return
    wrong = [0] * (len(leaves) + delta)
    with pytest.raises(ValueError, match=f"expects {len(leaves)} leaves, got {len(wrong)}"):
        tree.tree_unflatten(treedef, wrong)


def test_unflatten_swapped_arguments():
    leaves, treedef = tree.tree_flatten([1, 2])
    with pytest.raises(TypeError, match="swap"):
        tree.tree_unflatten(leaves, treedef)


def test_mismatch_message_names_path_and_difference():
    a = {"params": [1, (2, 3)], "x": 0}
    b = {"params": [1, [2, 3, 4]], "x": 0}
    expected = r"at \['params'\]\[1\]: expected a tuple of 2 children, got a list of 3 children"
    with pytest.raises(ValueError, match=expected):
        tree.tree_map(lambda x, y: x, a, b)
    with pytest.raises(ValueError, match=expected):
        tree.check_same_structure(a, b)
    with pytest.raises(ValueError, match=r"at \['x'\]: expected a leaf, got a tuple of 1 children"):
        tree.check_same_structure(a, {"params": [1, (2, 3)], "x": (0,)})
    with pytest.raises(ValueError, match=r"at \[0\]\.y: expected None, got a leaf of type int"):
        tree.tree_map(lambda x, y: x, [Point(1, None)], [Point(1, 2)])
    tree.check_same_structure(a, tree.tree_map(str, a))


@SETTINGS
@given(trees, st.data())
def test_mismatch_path_points_at_a_changed_node(t, data):
    """Turn one tuple node into a list: the error must name exactly that node's key path."""
    tuple_paths = [p for p in _node_paths(t) if type(walk(t, p)) is tuple]
    if not tuple_paths:
        return
    path = data.draw(st.sampled_from(tuple_paths))
    changed = _replace_at(t, path, list(walk(t, path)))
    n = len(walk(t, path))
    message = f"at {tree.keystr(path) or '<root>'}: expected a tuple of {n} children, got a list of {n}"
    with pytest.raises(ValueError) as info:
        tree.check_same_structure(t, changed)
    assert message in str(info.value)


def _node_paths(t, path=()):
    node = oracle_children(t)
    if node is None:
        return []
    return [path] + [p for child, key in zip(*node) for p in _node_paths(child, path + (key,))]


def _replace_at(t, path, new):
    if not path:
        return new
    leaves_and_paths, treedef = tree.tree_flatten_with_path(t, is_leaf=lambda x: x is walk(t, path))
    return treedef.unflatten([new if p == path else x for p, x in leaves_and_paths])


def test_double_registration_raises():
    class Fresh:
        pass

    tree.register_pytree_node(Fresh, lambda x: ((), None), lambda aux, ch: Fresh())
    with pytest.raises(ValueError, match="already registered"):
        tree.register_pytree_node(Fresh, lambda x: ((), None), lambda aux, ch: Fresh())
    with pytest.raises(ValueError, match="already registered"):
        tree.register_dataclass(Layer)
    with pytest.raises(ValueError, match="already registered"):
        tree.register_pytree_node(dict, lambda x: ((), None), lambda aux, ch: {})
    with pytest.raises(TypeError, match="must be classes"):
        tree.register_pytree_node("nope", lambda x: x, lambda a, c: c)


@SETTINGS
@given(trees)
def test_is_leaf_stops_descent(t):
    is_tuple = lambda x: type(x) is tuple  # noqa: E731

    def oracle(x):
        if is_tuple(x):
            return [x]
        node = oracle_children(x)
        return [x] if node is None else [leaf for child in node[0] for leaf in oracle(child)]

    leaves, treedef = tree.tree_flatten(t, is_leaf=is_tuple)
    assert [id(x) for x in leaves] == [id(x) for x in oracle(t)]
    assert strict_equal(treedef.unflatten(leaves), t)
    assert tree.tree_leaves(t, is_leaf=lambda x: True) == [t]


def test_none_is_an_empty_node():
    assert tree.tree_leaves(None) == []
    assert tree.tree_leaves([None, 1, (None,)]) == [1]
    treedef = tree.tree_structure(None)
    assert treedef.num_leaves == 0 and treedef.num_nodes == 1 and not tree.treedef_is_leaf(treedef)
    assert tree.tree_map(lambda x: x + 1, {"a": None, "b": 1}) == {"a": None, "b": 2}
    assert tree.tree_structure([None]) != tree.tree_structure([0])
    assert repr(tree.tree_structure([None, 0])) == "PyTreeDef([None, *])"
    assert tree.tree_leaves([None], is_leaf=lambda x: x is None) == [None]
    assert not tree.all_leaves([None]) and tree.all_leaves([1, "s", np.zeros(2)])
    with pytest.raises(ValueError, match="expected None, got a leaf of type int"):
        tree.tree_map(lambda x, y: x, (None, 1), (3, 1))


def test_ordered_dict_keeps_insertion_order():
    od = collections.OrderedDict([("z", 1), ("a", 2), ("m", 3)])
    leaves, treedef = tree.tree_flatten(od)
    assert leaves == [1, 2, 3]
    rebuilt = treedef.unflatten([4, 5, 6])
    assert type(rebuilt) is collections.OrderedDict
    assert list(rebuilt.items()) == [("z", 4), ("a", 5), ("m", 6)]
    assert tree.tree_leaves(dict(od)) == [2, 3, 1]
    assert treedef != tree.tree_structure(dict(od))
    assert treedef != tree.tree_structure(collections.OrderedDict([("a", 2), ("z", 1), ("m", 3)]))
    assert [tree.keystr(p) for p, _ in tree.tree_leaves_with_path(od)] == ["['z']", "['a']", "['m']"]


def test_dict_with_unsortable_keys_is_deterministic():
    d = {1: "one", "a": "A", (2,): "two"}
    leaves, treedef = tree.tree_flatten(d)
    assert leaves == ["one", "A", "two"]   # sorted by (type name, repr): int < str < tuple
    assert treedef.unflatten(leaves) == d
    assert tree.tree_flatten({(2,): 0, "a": 0, 1: 0})[1] == treedef


def test_structures_that_must_differ():
    assert tree.tree_structure({"a": 1}) != tree.tree_structure({"b": 1})
    assert tree.tree_structure(Point(1, 2)) != tree.tree_structure(Other(1, 2))
    assert tree.tree_structure(Point(1, 2)) != tree.tree_structure((1, 2))
    assert tree.tree_structure((1, 2)) != tree.tree_structure([1, 2])
    assert tree.tree_structure(Box(0, [1])) != tree.tree_structure(Box(1, [1]))
    assert tree.tree_structure(Box(0, [1])) == tree.tree_structure(Box(0, [5]))
    assert tree.tree_structure(Layer(1, 2, "dense")) != tree.tree_structure(Layer(1, 2, "conv"))
    assert tree.tree_structure(1) == tree.tree_structure("leaf") == tree.tree_structure(np.zeros(3))


def test_repr():
    assert repr(tree.tree_structure({"a": 1, "b": (2, None)})) == "PyTreeDef({'a': *, 'b': (*, None)})"
    assert repr(tree.tree_structure((1,))) == "PyTreeDef((*,))"
    assert repr(tree.tree_structure(Point(1, [2]))) == "PyTreeDef(Point(x=*, y=[*]))"
    assert repr(tree.tree_structure(Layer(1, 2))) == "PyTreeDef(Layer(w=*, b=*, name='dense'))"
    assert repr(tree.tree_structure(Box(3, [1]))) == "PyTreeDef(CustomNode(Box[3], [*]))"
    assert repr(tree.tree_structure(5)) == "PyTreeDef(*)"


def test_keystr_and_key_classes():
    path = (DictKey("a"), SequenceKey(0), GetAttrKey("b"))
    assert tree.keystr(path) == "['a'][0].b"
    assert tree.keystr(path, simple=True, separator=".") == "a.0.b"
    assert tree.keystr(()) == ""
    assert str(FlattenedIndexKey(2)) == "[<flat index 2>]"
    assert DictKey("a") == DictKey("a") and hash(SequenceKey(1)) == hash(SequenceKey(1))
    keyed = tree.tree_leaves_with_path({"a": [Named(1, Box(0, [2]))]})
    assert [tree.keystr(p) for p, _ in keyed] == ["['a'][0].left", "['a'][0].right[<flat index 0>]"]


def test_register_dataclass_forms():
    @dataclasses.dataclass(frozen=True)
    class Frozen:
        a: Any
        b: Any
        c: int = 0

        def __post_init__(self):
            if self.c < 0:
                raise ValueError("c must be non-negative")

    tree.register_dataclass(Frozen, data_fields=["a", "b"], meta_fields=["c"])
    leaves, treedef = tree.tree_flatten(Frozen(1, (2, 3), 4))
    assert leaves == [1, 2, 3] and treedef.node_data() == (Frozen, (4,))
    assert treedef.unflatten(["x", "y", "z"]) == Frozen("x", ("y", "z"), 4)
    assert [tree.keystr(p) for p, _ in tree.tree_leaves_with_path(Frozen(1, 2))] == [".a", ".b"]

    @dataclasses.dataclass
    class Incomplete:
        a: Any
        b: Any

    with pytest.raises(ValueError, match=r"missing \['b'\]"):
        tree.register_dataclass(Incomplete, data_fields=["a"], meta_fields=[])
    class Plain:
        pass

    with pytest.raises(TypeError, match="not a dataclass"):
        tree.register_dataclass(Plain)


def test_unhashable_aux_data_still_hashes_and_compares():
    class Holder:
        def __init__(self, meta, value):
            self.meta, self.value = meta, value

    tree.register_pytree_node(Holder, lambda h: ([h.value], h.meta), lambda meta, ch: Holder(meta, ch[0]))
    a, b = tree.tree_structure(Holder([1, 2], 0)), tree.tree_structure(Holder([1, 2], 5))
    assert a == b and hash(a) == hash(b)
    assert a != tree.tree_structure(Holder([1, 3], 0))
    arr_a = tree.tree_structure(Holder(np.arange(3), 0))
    assert arr_a != tree.tree_structure(Holder(np.arange(3), 0))   # ambiguous ==: treated as different
    assert arr_a == arr_a and isinstance(hash(arr_a), int)


@SETTINGS
@given(trees)
def test_treedef_children_and_num_nodes(t):
    treedef = tree.tree_structure(t)

    def count_nodes(x):
        node = oracle_children(x)
        return 1 if node is None else 1 + sum(count_nodes(c) for c in node[0])

    assert treedef.num_nodes == count_nodes(t)
    node = oracle_children(t)
    expected_children = [] if node is None else [tree.tree_structure(c) for c in node[0]]
    assert treedef.children() == expected_children == tree.treedef_children(treedef)
    assert tree.treedef_is_leaf(treedef) == (node is None)


@SETTINGS
@given(trees)
def test_tree_reduce_and_all(t):
    leaves = oracle_leaves(t)
    ints = [x for x in leaves if x is not None]
    assert tree.tree_reduce(lambda a, b: a + b, t, 0) == sum(ints)
    if leaves:
        assert tree.tree_reduce(lambda a, b: a * 31 + b, t) == _fold(leaves)
    assert tree.tree_all(t) == all(leaves)
    assert tree.tree_all(tree.tree_map(lambda x: True, t))


def _fold(xs):
    acc = xs[0]
    for x in xs[1:]:
        acc = acc * 31 + x
    return acc


def test_tree_reduce_empty_needs_initializer():
    with pytest.raises(TypeError, match="initializer"):
        tree.tree_reduce(lambda a, b: a + b, [])


@SETTINGS
@given(trees, trees)
def test_tree_transpose(outer_skeleton, inner_skeleton):
    outer, inner = tree.tree_structure(outer_skeleton), tree.tree_structure(inner_skeleton)
    nested = outer.unflatten([inner.unflatten([1000 * o + i for i in range(inner.num_leaves)])
                              for o in range(outer.num_leaves)])
    transposed = tree.tree_transpose(outer, inner, nested)
    expected = inner.unflatten([outer.unflatten([1000 * o + i for o in range(outer.num_leaves)])
                                for i in range(inner.num_leaves)])
    assert tree.tree_structure(transposed) == inner.compose(outer)
    assert tree.tree_leaves(transposed) == tree.tree_leaves(expected)


def test_tree_transpose_example_and_error():
    outer, inner = tree.tree_structure([0, 0, 0]), tree.tree_structure({"a": 0, "b": 0})
    got = tree.tree_transpose(outer, inner, [{"a": 1, "b": 2}, {"a": 3, "b": 4}, {"a": 5, "b": 6}])
    assert got == {"a": [1, 3, 5], "b": [2, 4, 6]}
    with pytest.raises(ValueError, match="tree_transpose"):
        tree.tree_transpose(outer, inner, [{"a": 1, "b": 2}])


def test_treedef_is_immutable_and_hash_cached():
    treedef = tree.tree_structure({"a": (1, 2)})
    with pytest.raises(AttributeError):
        treedef.num_leaves = 3
    assert hash(treedef) == hash(treedef) == hash(tree.tree_structure({"a": (3, 4)}))
    assert treedef != "PyTreeDef({'a': (*, *)})"
