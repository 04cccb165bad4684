"""Pytrees: nested containers whose leaves are arrays (or anything else), after ``jax.tree_util``.

A pytree is a tuple, list, dict, ``None``, namedtuple, ``OrderedDict``, ``defaultdict``, a
registered dataclass or a class registered with :func:`register_pytree_node`, holding further
pytrees; everything else is a leaf. Flattening splits a tree into its leaves and a
:class:`PyTreeDef`, a hashable description of the containers around them::

    >>> leaves, treedef = tree_flatten({'a': 1, 'b': (2, None)})
    >>> leaves, treedef
    ([1, 2], PyTreeDef({'a': *, 'b': (*, None)}))
    >>> tree_unflatten(treedef, [10, 20])
    {'a': 10, 'b': (20, None)}

Conventions (as in JAX): dict children are ordered by sorted key, ``OrderedDict`` children by
insertion; ``None`` is a node with no children, so it holds no leaf. Key paths are tuples of
:class:`SequenceKey`, :class:`DictKey`, :class:`GetAttrKey` and :class:`FlattenedIndexKey`, and
``keystr`` renders them as ``['a'][0].b``.

``tree_flatten`` and ``tree_unflatten`` sit on ``jit``'s dispatch path, so a treedef is a thin
wrapper around nested tuples ``(handler, aux_data, children)`` (``None`` for a leaf): equality and
hashing run in C over those tuples, and the hash is computed once.
"""
from __future__ import annotations

import builtins
import collections
import dataclasses
import functools
from typing import Any, Callable, Hashable, Iterable, Sequence

__all__ = [
    "PyTreeDef", "SequenceKey", "DictKey", "GetAttrKey", "FlattenedIndexKey",
    "register_pytree_node", "register_pytree_with_keys", "register_dataclass",
    "static", "KeyEntry", "KeyPath",
    "tree_flatten", "tree_unflatten", "tree_leaves", "tree_structure", "tree_map",
    "tree_flatten_with_path", "tree_leaves_with_path", "tree_map_with_path", "tree_all",
    "tree_reduce", "tree_transpose", "keystr", "treedef_is_leaf", "treedef_children", "all_leaves",
    "broadcast_prefix", "check_same_structure",
    # jax.tree.* names (they shadow builtins inside this module's namespace only)
    "map", "leaves", "flatten", "unflatten", "structure", "reduce", "reduce_associative", "all", "transpose",
    "broadcast", "flatten_with_path", "leaves_with_path", "map_with_path",
]


# --- key path entries ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class SequenceKey:
    """The position of a child in a tuple, list or namedtuple: renders as ``[0]``."""
    idx: int

    def __str__(self) -> str:
        return f"[{self.idx!r}]"


@dataclasses.dataclass(frozen=True, slots=True)
class DictKey:
    """The key of a child in a dict: renders as ``['a']``."""
    key: Hashable

    def __str__(self) -> str:
        return f"[{self.key!r}]"


@dataclasses.dataclass(frozen=True, slots=True)
class GetAttrKey:
    """The attribute name of a child in a namedtuple, dataclass or keyed custom node: ``.name``."""
    name: str

    def __str__(self) -> str:
        return f".{self.name}"


@dataclasses.dataclass(frozen=True, slots=True)
class FlattenedIndexKey:
    """The position of a child of a custom node registered without key names."""
    key: int

    def __str__(self) -> str:
        return f"[<flat index {self.key}>]"


#: one entry of a key path (a :class:`SequenceKey`, :class:`DictKey`, :class:`GetAttrKey`,
#: :class:`FlattenedIndexKey`, or whatever a custom node's ``flatten_with_keys`` returns)
KeyEntry = Hashable
#: a leaf's path from the root: a tuple of key entries
KeyPath = tuple


def keystr(keys: Sequence[Any], *, simple: bool = False, separator: str = "/") -> str:
    """Render a key path: ``['a'][0].b``, or with ``simple=True`` ``a/0/b``.

    >>> keystr((DictKey('a'), SequenceKey(0), GetAttrKey('b')))
    "['a'][0].b"
    """
    if simple:
        return separator.join(_simple_key_str(k) for k in keys)
    return "".join(str(k) for k in keys)


def _simple_key_str(key: Any) -> str:
    for key_type, field in ((SequenceKey, "idx"), (DictKey, "key"), (GetAttrKey, "name"),
                            (FlattenedIndexKey, "key")):
        if type(key) is key_type:
            return str(getattr(key, field))
    return str(key)


def _path_str(path: KeyPath) -> str:
    return keystr(path) or "<root>"


# --- node handlers and the registry ----------------------------------------------------------------

class _NodeHandler:
    """How one node type flattens, unflattens, names its children and prints itself."""

    __slots__ = ("node_type", "flatten", "unflatten", "flatten_with_keys", "render", "describe")

    def __init__(self, node_type: type, flatten: Callable, unflatten: Callable,
                 flatten_with_keys: Callable, render: Callable, describe: Callable):
        self.node_type = node_type
        self.flatten = flatten                      # x -> (children, aux_data)
        self.unflatten = unflatten                  # (aux_data, children) -> x
        self.flatten_with_keys = flatten_with_keys  # x -> ([(key, child), ...], aux_data)
        self.render = render                        # (aux_data, [child repr]) -> str
        self.describe = describe                    # (aux_data, num_children) -> str, for errors

    def __repr__(self) -> str:
        return f"<pytree node handler for {self.node_type.__qualname__}>"


_registry: dict[type, _NodeHandler] = {}            # explicitly registered node types
_dispatch: dict[type, _NodeHandler | None] = {}     # cache: any type seen -> handler, None = leaf
_UNSEEN = object()
_LEAF = None                                         # the structure of a leaf


def _classify(node_type: type) -> _NodeHandler | None:
    handler = _registry.get(node_type)
    if handler is None and issubclass(node_type, tuple) and hasattr(node_type, "_fields"):
        handler = _namedtuple_handler(node_type)
    _dispatch[node_type] = handler
    return handler


def _handler_of(x: Any) -> _NodeHandler | None:
    handler = _dispatch.get(type(x), _UNSEEN)
    return _classify(type(x)) if handler is _UNSEEN else handler


def _node_handler(x: Any, is_leaf: Callable | None) -> _NodeHandler | None:
    if is_leaf is not None and is_leaf(x):
        return None
    return _handler_of(x)


def _register(handler: _NodeHandler) -> None:
    node_type = handler.node_type
    if node_type in _registry:
        raise ValueError(f"{node_type.__qualname__} is already registered as a pytree node; register "
                         "each class once (at import time, not inside a function that runs repeatedly)")
    _registry[node_type] = handler
    _dispatch[node_type] = handler


def _check_registrable(node_type: Any, **functions: Any) -> None:
    if not isinstance(node_type, type):
        raise TypeError(f"pytree node types must be classes, got {node_type!r}")
    for name, fn in functions.items():
        if fn is not None and not callable(fn):
            raise TypeError(f"registering {node_type.__qualname__}: {name} must be callable, got {fn!r}")


def _indexed_keys(children: Iterable[Any], key_type: type) -> list:
    return [(key_type(i), child) for i, child in enumerate(children)]


def _custom_render(node_type: type) -> Callable:
    def render(aux: Any, children: list[str]) -> str:
        return f"CustomNode({node_type.__name__}[{aux!r}], [{', '.join(children)}])"
    return render


def _custom_describe(node_type: type) -> Callable:
    def describe(aux: Any, num_children: int) -> str:
        return f"a {node_type.__name__} node of {num_children} children with aux data {aux!r}"
    return describe


def register_pytree_node(nodetype: type, flatten_func: Callable, unflatten_func: Callable,
                         flatten_with_keys_func: Callable | None = None) -> None:
    """Make instances of ``nodetype`` pytree nodes.

    ``flatten_func(x) -> (children, aux_data)`` and ``unflatten_func(aux_data, children) -> x``.
    ``aux_data`` is the static part: it must be hashable and comparable with ``==``, because it
    becomes part of the treedef (and so of ``jit``'s cache key). Children get
    :class:`FlattenedIndexKey` paths unless ``flatten_with_keys_func`` is given.

    >>> class Pair:
    ...     def __init__(self, a, b): self.a, self.b = a, b
    >>> register_pytree_node(Pair, lambda p: ((p.a, p.b), None), lambda _, ch: Pair(*ch))
    """
    _check_registrable(nodetype, flatten_func=flatten_func, unflatten_func=unflatten_func,
                       flatten_with_keys_func=flatten_with_keys_func)
    if flatten_with_keys_func is None:
        def flatten_with_keys_func(x):
            children, aux = flatten_func(x)
            return _indexed_keys(children, FlattenedIndexKey), aux
    _register(_NodeHandler(nodetype, flatten_func, unflatten_func, flatten_with_keys_func,
                           _custom_render(nodetype), _custom_describe(nodetype)))


def register_pytree_with_keys(nodetype: type, flatten_with_keys: Callable, unflatten_func: Callable,
                              flatten_func: Callable | None = None) -> None:
    """Register ``nodetype`` with named children: ``flatten_with_keys(x) -> ([(key, child)], aux)``.

    Keys are usually :class:`GetAttrKey` or :class:`DictKey` and show up in key paths and error
    messages. ``flatten_func`` is an optional faster flatten without keys.
    """
    _check_registrable(nodetype, flatten_with_keys=flatten_with_keys, unflatten_func=unflatten_func,
                       flatten_func=flatten_func)
    if flatten_func is None:
        def flatten_func(x):
            keyed, aux = flatten_with_keys(x)
            return [child for _, child in keyed], aux
    register_pytree_node(nodetype, flatten_func, unflatten_func, flatten_with_keys)


def register_dataclass(nodetype: type | None = None, data_fields: Sequence[str] | None = None,
                       meta_fields: Sequence[str] | None = None) -> Any:
    """Register a dataclass as a pytree node whose ``data_fields`` are children.

    ``meta_fields`` are static: they go into the treedef and must be hashable. Used as a bare
    decorator, every field is data except those declared with ``field(metadata={'static': True})``.
    Unflattening sets the fields directly instead of calling ``__init__``, so ``__post_init__``
    validation does not run on placeholder leaves.

    >>> @register_dataclass
    ... @dataclasses.dataclass
    ... class Linear:
    ...     w: Any
    ...     activation: str = dataclasses.field(default="relu", metadata={"static": True})
    """
    if nodetype is None:
        return functools.partial(register_dataclass, data_fields=data_fields, meta_fields=meta_fields)
    _check_registrable(nodetype)
    data, meta = _dataclass_field_split(nodetype, data_fields, meta_fields)
    _register(_dataclass_handler(nodetype, data, meta))
    return nodetype


def static(**kwargs: Any) -> Any:
    """``jax.tree.static(**field_kwargs)``: a ``dataclasses.field`` marked static, for a
    dataclass registered with :func:`register_dataclass` (the field goes into the treedef)."""
    metadata = dict(kwargs.pop("metadata", None) or {})
    metadata["static"] = True
    return dataclasses.field(metadata=metadata, **kwargs)


def _dataclass_field_split(cls: type, data_fields, meta_fields) -> tuple[tuple, tuple]:
    if not dataclasses.is_dataclass(cls):
        if data_fields is None or meta_fields is None:
            raise TypeError(f"register_dataclass: {cls.__qualname__} is not a dataclass; decorate it "
                            "with @dataclasses.dataclass or pass both data_fields and meta_fields")
        return tuple(data_fields), tuple(meta_fields)
    names = [f.name for f in dataclasses.fields(cls)]
    if data_fields is None and meta_fields is None:
        meta_fields = [f.name for f in dataclasses.fields(cls) if f.metadata.get("static", False)]
    if data_fields is None:
        data_fields = [n for n in names if n not in meta_fields]
    if meta_fields is None:
        meta_fields = [n for n in names if n not in data_fields]
    given = list(data_fields) + list(meta_fields)
    if sorted(given) != sorted(names):
        missing = sorted(set(names) - set(given))
        extra = sorted(set(given) - set(names))
        repeated = sorted({n for n in given if given.count(n) > 1})
        raise ValueError(f"register_dataclass({cls.__qualname__}): data_fields + meta_fields must list "
                         f"each field once; missing {missing}, unknown {extra}, repeated {repeated}")
    return tuple(data_fields), tuple(meta_fields)


def _dataclass_handler(cls: type, data: tuple, meta: tuple) -> _NodeHandler:
    def flatten(x):
        return [getattr(x, name) for name in data], tuple([getattr(x, name) for name in meta])

    def flatten_with_keys(x):
        keyed = [(GetAttrKey(name), getattr(x, name)) for name in data]
        return keyed, tuple([getattr(x, name) for name in meta])

    def unflatten(aux, children):
        obj = object.__new__(cls)
        for name, value in zip(data, children):
            object.__setattr__(obj, name, value)
        for name, value in zip(meta, aux):
            object.__setattr__(obj, name, value)
        return obj

    def render(aux, children):
        parts = [f"{n}={c}" for n, c in zip(data, children)] + [f"{n}={v!r}" for n, v in zip(meta, aux)]
        return f"{cls.__name__}({', '.join(parts)})"

    def describe(aux, num_children):
        static = ", ".join(f"{n}={v!r}" for n, v in zip(meta, aux))
        return f"a {cls.__name__} dataclass" + (f" with static fields ({static})" if meta else "")

    return _NodeHandler(cls, flatten, unflatten, flatten_with_keys, render, describe)


# --- built-in node types ---------------------------------------------------------------------------

def _as_own_children(x):
    return x, None


def _sequence_keys(x):
    return _indexed_keys(x, SequenceKey), None


def _tuple_render(aux, children):
    return "(" + ", ".join(children) + ("," if len(children) == 1 else "") + ")"


def _sorted_keys(d: dict) -> tuple:
    try:
        return tuple(sorted(d))
    except TypeError:   # keys of mixed types: still deterministic, by type name then repr
        return tuple(sorted(d, key=lambda k: (type(k).__name__, repr(k))))


def _dict_flatten(d):
    keys = _sorted_keys(d)
    return [d[k] for k in keys], keys


def _dict_flatten_with_keys(d):
    keys = _sorted_keys(d)
    return [(DictKey(k), d[k]) for k in keys], keys


def _dict_items_render(keys, children) -> str:
    return "{" + ", ".join(f"{k!r}: {c}" for k, c in zip(keys, children)) + "}"


def _ordered_dict_flatten(d):
    keys = tuple(d)
    return [d[k] for k in keys], keys


def _ordered_dict_flatten_with_keys(d):
    keys = tuple(d)
    return [(DictKey(k), d[k]) for k in keys], keys


def _defaultdict_flatten(d):
    children, keys = _dict_flatten(d)
    return children, (d.default_factory, keys)


def _defaultdict_flatten_with_keys(d):
    keyed, keys = _dict_flatten_with_keys(d)
    return keyed, (d.default_factory, keys)


def _defaultdict_unflatten(aux, children):
    factory, keys = aux
    return collections.defaultdict(factory, zip(keys, children))


def _defaultdict_render(aux, children):
    factory, keys = aux
    return f"defaultdict({getattr(factory, '__name__', repr(factory))}, {_dict_items_render(keys, children)})"


def _no_children(x):
    return (), None


def _namedtuple_handler(cls: type) -> _NodeHandler:
    def unflatten(aux, children):
        return cls(*children)

    def flatten_with_keys(x):
        return [(GetAttrKey(name), child) for name, child in zip(cls._fields, x)], None

    def render(aux, children):
        return f"{cls.__name__}(" + ", ".join(f"{n}={c}" for n, c in zip(cls._fields, children)) + ")"

    def describe(aux, num_children):
        return f"a namedtuple {cls.__name__} of {num_children} children"

    return _NodeHandler(cls, _as_own_children, unflatten, flatten_with_keys, render, describe)


_TUPLE = _NodeHandler(tuple, _as_own_children, lambda aux, children: tuple(children), _sequence_keys,
                      _tuple_render, lambda aux, n: f"a tuple of {n} children")
_LIST = _NodeHandler(list, _as_own_children, lambda aux, children: list(children), _sequence_keys,
                     lambda aux, children: "[" + ", ".join(children) + "]",
                     lambda aux, n: f"a list of {n} children")
_DICT = _NodeHandler(dict, _dict_flatten, lambda keys, children: dict(zip(keys, children)),
                     _dict_flatten_with_keys, _dict_items_render,
                     lambda keys, n: f"a dict with keys {list(keys)!r}")
_NONE = _NodeHandler(type(None), _no_children, lambda aux, children: None, _no_children,
                     lambda aux, children: "None", lambda aux, n: "None")
for _handler in (
        _TUPLE, _LIST, _DICT, _NONE,
        _NodeHandler(collections.OrderedDict, _ordered_dict_flatten,
                     lambda keys, children: collections.OrderedDict(zip(keys, children)),
                     _ordered_dict_flatten_with_keys,
                     lambda keys, children: f"OrderedDict({_dict_items_render(keys, children)})",
                     lambda keys, n: f"an OrderedDict with keys {list(keys)!r}"),
        _NodeHandler(collections.defaultdict, _defaultdict_flatten, _defaultdict_unflatten,
                     _defaultdict_flatten_with_keys, _defaultdict_render,
                     lambda aux, n: f"a defaultdict with keys {list(aux[1])!r}")):
    _register(_handler)
del _handler


# --- treedefs ----------------------------------------------------------------------------------------

def _aux_equal(a: Any, b: Any) -> bool:
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:   # e.g. arrays in aux data: ambiguous truth value; treat as different
        return False


def _struct_equal(a: Any, b: Any) -> bool:
    """Structural equality that survives aux data whose ``==`` does not return a bool."""
    if a is _LEAF or b is _LEAF:
        return a is b
    return (a[0] is b[0] and len(a[2]) == len(b[2]) and _aux_equal(a[1], b[1])
            and builtins.all(_struct_equal(x, y) for x, y in zip(a[2], b[2])))


def _skeleton(struct: Any) -> Any:
    """The structure without aux data: hashable even when aux data is not."""
    if struct is _LEAF:
        return _LEAF
    return (struct[0], tuple(_skeleton(child) for child in struct[2]))


def _count_leaves(struct: Any) -> int:
    if struct is _LEAF:
        return 1
    return sum(_count_leaves(child) for child in struct[2])


def _count_nodes(struct: Any) -> int:
    if struct is _LEAF:
        return 1
    return 1 + sum(_count_nodes(child) for child in struct[2])


def _render(struct: Any) -> str:
    if struct is _LEAF:
        return "*"
    handler, aux, children = struct
    return handler.render(aux, [_render(child) for child in children])


def _describe_struct(struct: Any) -> str:
    if struct is _LEAF:
        return "a leaf"
    handler, aux, children = struct
    return handler.describe(aux, len(children))


def _describe_value(x: Any, handler: _NodeHandler | None) -> str:
    if handler is None:
        return f"a leaf of type {type(x).__name__}"
    children, aux = handler.flatten(x)
    return handler.describe(aux, len(children))


class PyTreeDef:
    """The structure of a pytree: every container and its static data, with leaves left out.

    Immutable, hashable and comparable with ``==``; ``jit`` keys its cache on it.
    """

    __slots__ = ("_struct", "_num_leaves", "_hash")

    def __init__(self, struct: Any, num_leaves: int | None = None):
        self._struct = struct
        self._num_leaves = _count_leaves(struct) if num_leaves is None else num_leaves
        self._hash = None

    @property
    def num_leaves(self) -> int:
        """How many leaves a tree of this structure holds."""
        return self._num_leaves

    @property
    def num_nodes(self) -> int:
        """How many nodes (containers, ``None`` and leaves) the structure has."""
        return _count_nodes(self._struct)

    def children(self) -> list[PyTreeDef]:
        """The treedefs of the root's children (empty for a leaf or ``None``)."""
        if self._struct is _LEAF:
            return []
        return [PyTreeDef(child) for child in self._struct[2]]

    def node_data(self) -> tuple[type, Any] | None:
        """``(node_type, aux_data)`` of the root, or ``None`` for a leaf."""
        if self._struct is _LEAF:
            return None
        return self._struct[0].node_type, self._struct[1]

    def unflatten(self, leaves: Iterable[Any]) -> Any:
        """Build a tree of this structure from ``leaves`` (see :func:`tree_unflatten`)."""
        return tree_unflatten(self, leaves)

    def flatten_up_to(self, tree: Any) -> list:
        """The subtrees of ``tree`` that sit where this structure has leaves.

        ``tree`` must extend this structure: the same containers, with any subtree in place of
        each leaf. Raises ValueError naming the key path of the first difference.
        """
        out: list = []
        try:
            _flatten_up_to(self._struct, tree, out)
        except _Mismatch:
            detail = _explain_mismatch(self._struct, tree, (), None, exact=False)
            raise ValueError(f"tree does not match the structure {self!r} {detail}") from None
        return out

    def compose(self, inner: PyTreeDef) -> PyTreeDef:
        """The structure of this tree with each leaf replaced by a tree of structure ``inner``."""
        return PyTreeDef(_substitute_leaves(self._struct, inner._struct),
                         self._num_leaves * inner._num_leaves)

    def __eq__(self, other: Any) -> bool:
        if self is other:
            return True
        if type(other) is not PyTreeDef or self._num_leaves != other._num_leaves:
            return False
        if self._hash is not None and other._hash is not None and self._hash != other._hash:
            return False
        try:
            return self._struct == other._struct
        except Exception:   # aux data whose == does not give a bool (e.g. arrays)
            return _struct_equal(self._struct, other._struct)

    def __hash__(self) -> int:
        if self._hash is None:
            try:
                self._hash = hash(self._struct)
            except TypeError:   # unhashable aux data: equal treedefs still share a skeleton
                self._hash = hash(_skeleton(self._struct))
        return self._hash

    def __repr__(self) -> str:
        return f"PyTreeDef({_render(self._struct)})"


def _substitute_leaves(struct: Any, inner: Any) -> Any:
    if struct is _LEAF:
        return inner
    handler, aux, children = struct
    return handler, aux, tuple([_substitute_leaves(child, inner) for child in children])


def treedef_is_leaf(treedef: PyTreeDef) -> bool:
    """Whether ``treedef`` is a single leaf. (``None`` is a node with no children, not a leaf.)"""
    return treedef._struct is _LEAF


def treedef_children(treedef: PyTreeDef) -> list[PyTreeDef]:
    """The treedefs of the root's children."""
    return treedef.children()


# --- flatten and unflatten ---------------------------------------------------------------------------

def _flatten(x: Any, leaves: list, is_leaf: Callable | None) -> Any:
    if is_leaf is not None and is_leaf(x):
        leaves.append(x)
        return _LEAF
    handler = _dispatch.get(type(x), _UNSEEN)
    if handler is _UNSEEN:
        handler = _classify(type(x))
    if handler is None:
        leaves.append(x)
        return _LEAF
    if handler is _TUPLE or handler is _LIST:   # the hot path: jit's (args, kwargs)
        return handler, None, tuple([_flatten(child, leaves, is_leaf) for child in x])
    if handler is _DICT:
        keys = _sorted_keys(x) if x else ()
        return handler, keys, tuple([_flatten(x[key], leaves, is_leaf) for key in keys])
    children, aux = handler.flatten(x)
    return handler, aux, tuple([_flatten(child, leaves, is_leaf) for child in children])


def tree_flatten(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> tuple[list, PyTreeDef]:
    """Split ``tree`` into its leaves (depth first, dicts by sorted key) and its structure.

    ``is_leaf(x)`` may stop the descent: subtrees for which it returns True become leaves.

    >>> tree_flatten([1, (2, 3)])
    ([1, 2, 3], PyTreeDef([*, (*, *)]))
    """
    leaves: list = []
    struct = _flatten(tree, leaves, is_leaf)
    return leaves, PyTreeDef(struct, len(leaves))


def tree_leaves(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> list:
    """The leaves of ``tree``, in flattening order."""
    leaves: list = []
    _flatten(tree, leaves, is_leaf)
    return leaves


def tree_structure(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> PyTreeDef:
    """The :class:`PyTreeDef` of ``tree``."""
    return tree_flatten(tree, is_leaf)[1]


def _build(struct: Any, leaves: Iterable[Any]) -> Any:
    if struct is _LEAF:
        return next(leaves)
    handler, aux, children = struct
    return handler.unflatten(aux, [_build(child, leaves) for child in children])


def tree_unflatten(treedef: PyTreeDef, leaves: Iterable[Any]) -> Any:
    """Rebuild a tree of structure ``treedef`` holding ``leaves`` (the inverse of tree_flatten).

    >>> leaves, treedef = tree_flatten({'a': 1, 'b': [2]})
    >>> tree_unflatten(treedef, ['x', 'y'])
    {'a': 'x', 'b': ['y']}
    """
    if type(treedef) is not PyTreeDef:
        raise TypeError(f"tree_unflatten(treedef, leaves) expects a PyTreeDef first, got "
                        f"{type(treedef).__name__}; did you swap the arguments?")
    leaves = list(leaves)
    if len(leaves) != treedef._num_leaves:
        raise ValueError(f"tree_unflatten: {treedef!r} expects {treedef._num_leaves} leaves, "
                         f"got {len(leaves)}")
    return _build(treedef._struct, iter(leaves))


def _flatten_with_path(x: Any, path: KeyPath, out: list, is_leaf: Callable | None) -> Any:
    handler = _node_handler(x, is_leaf)
    if handler is None:
        out.append((path, x))
        return _LEAF
    keyed, aux = handler.flatten_with_keys(x)
    return handler, aux, tuple([_flatten_with_path(child, path + (key,), out, is_leaf)
                                for key, child in keyed])


def tree_flatten_with_path(tree: Any, is_leaf: Callable[[Any], bool] | None = None
                           ) -> tuple[list[tuple[KeyPath, Any]], PyTreeDef]:
    """Like :func:`tree_flatten`, but each leaf comes with its key path.

    >>> tree_flatten_with_path({'a': [5]})[0]
    [((DictKey(key='a'), SequenceKey(idx=0)), 5)]
    """
    out: list = []
    struct = _flatten_with_path(tree, (), out, is_leaf)
    return out, PyTreeDef(struct, len(out))


def tree_leaves_with_path(tree: Any, is_leaf: Callable[[Any], bool] | None = None
                          ) -> list[tuple[KeyPath, Any]]:
    """The ``(key path, leaf)`` pairs of ``tree``."""
    return tree_flatten_with_path(tree, is_leaf)[0]


# --- structure checks ----------------------------------------------------------------------------------

class _Mismatch(Exception):
    """Raised by the fast walk; the slow walk then finds the key path for the message."""


def _flatten_up_to(struct: Any, x: Any, out: list) -> None:
    if struct is _LEAF:
        out.append(x)
        return
    handler, aux, children = struct
    if _handler_of(x) is not handler:
        raise _Mismatch
    x_children, x_aux = handler.flatten(x)
    if len(x_children) != len(children) or not _aux_equal(aux, x_aux):
        raise _Mismatch
    for child_struct, child in zip(children, x_children):
        _flatten_up_to(child_struct, child, out)


def _explain_mismatch(struct: Any, x: Any, path: KeyPath, is_leaf: Callable | None,
                      exact: bool) -> str | None:
    """``"at <path>: expected ..., got ..."`` for the first place ``x`` departs from ``struct``.

    With ``exact=False`` any subtree of ``x`` may stand where ``struct`` has a leaf.
    """
    handler = _node_handler(x, is_leaf)
    if struct is _LEAF:
        if exact and handler is not None:
            return f"at {_path_str(path)}: expected a leaf, got {_describe_value(x, handler)}"
        return None
    expected_handler, aux, children = struct
    if handler is not expected_handler:
        return f"at {_path_str(path)}: expected {_describe_struct(struct)}, got {_describe_value(x, handler)}"
    keyed, x_aux = handler.flatten_with_keys(x)
    if len(keyed) != len(children) or not _aux_equal(aux, x_aux):
        return f"at {_path_str(path)}: expected {_describe_struct(struct)}, got {_describe_value(x, handler)}"
    for child_struct, (key, child) in zip(children, keyed):
        found = _explain_mismatch(child_struct, child, path + (key,), is_leaf, exact)
        if found is not None:
            return found
    return None


def check_same_structure(a: Any, b: Any, is_leaf: Callable[[Any], bool] | None = None) -> None:
    """Raise ValueError, naming the key path of the first difference, unless ``a`` and ``b`` have
    the same structure.

    >>> check_same_structure({'p': [1, (2, 3)]}, {'p': [1, [2, 3, 4]]})
    Traceback (most recent call last):
    ValueError: trees differ at ['p'][1]: expected a tuple of 2 children, got a list of 3 children
    """
    treedef_a, treedef_b = tree_structure(a, is_leaf), tree_structure(b, is_leaf)
    if treedef_a == treedef_b:
        return
    detail = _explain_mismatch(treedef_a._struct, b, (), is_leaf, exact=True)
    raise ValueError(f"trees differ {detail or f'in structure: {treedef_a!r} vs {treedef_b!r}'}")


def broadcast_prefix(prefix_tree: Any, full_tree: Any,
                     is_leaf: Callable[[Any], bool] | None = None) -> list:
    """One entry of ``prefix_tree`` per leaf of ``full_tree``: each leaf of the prefix is repeated
    for every leaf of the subtree of ``full_tree`` it covers (as vmap's ``in_axes`` do).

    ``is_leaf`` applies to ``prefix_tree`` (e.g. ``lambda x: x is None`` to let None mean
    "not mapped"). Raises ValueError naming the key path where ``prefix_tree`` is not a prefix.

    >>> broadcast_prefix((0, None), ([1, 2], {'a': 3}), is_leaf=lambda x: x is None)
    [0, 0, None]
    """
    prefix_leaves, prefix_def = tree_flatten(prefix_tree, is_leaf)
    subtrees: list = []
    try:
        _flatten_up_to(prefix_def._struct, full_tree, subtrees)
    except _Mismatch:
        detail = _explain_mismatch(prefix_def._struct, full_tree, (), None, exact=False)
        raise ValueError(f"the prefix tree is not a prefix of the full tree: {detail}") from None
    result: list = []
    for value, subtree in zip(prefix_leaves, subtrees):
        result.extend([value] * len(tree_leaves(subtree)))
    return result


# --- maps and reductions --------------------------------------------------------------------------------

def _leaves_of_rest(treedef: PyTreeDef, rest: Sequence[Any], where: str) -> list[list]:
    all_leaves_lists = []
    for position, other in enumerate(rest, start=2):
        subtrees: list = []
        try:
            _flatten_up_to(treedef._struct, other, subtrees)
        except _Mismatch:
            detail = _explain_mismatch(treedef._struct, other, (), None, exact=False)
            raise ValueError(f"{where}: tree #{position} differs from the first tree {detail}. Every "
                             "tree must have the first tree's structure (it may extend it below the "
                             "first tree's leaves).") from None
        all_leaves_lists.append(subtrees)
    return all_leaves_lists


def tree_map(f: Callable, tree: Any, *rest: Any, is_leaf: Callable[[Any], bool] | None = None) -> Any:
    """Apply ``f`` to the leaves of ``tree`` (and the matching subtrees of ``rest``).

    Each tree in ``rest`` must have ``tree``'s structure, or extend it: where ``tree`` has a leaf,
    ``f`` receives the whole corresponding subtree of the others.

    >>> tree_map(lambda x, y: x + y, {'a': 1, 'b': (2, 3)}, {'a': 10, 'b': (20, 30)})
    {'a': 11, 'b': (22, 33)}
    """
    leaves, treedef = tree_flatten(tree, is_leaf)
    if not rest:
        return _build(treedef._struct, iter([f(x) for x in leaves]))
    others = _leaves_of_rest(treedef, rest, "tree_map")
    return _build(treedef._struct, iter([f(*xs) for xs in zip(leaves, *others)]))


def tree_map_with_path(f: Callable, tree: Any, *rest: Any,
                       is_leaf: Callable[[Any], bool] | None = None) -> Any:
    """Like :func:`tree_map`, but ``f(path, leaf, *others)`` also receives each leaf's key path."""
    keyed_leaves, treedef = tree_flatten_with_path(tree, is_leaf)
    others = _leaves_of_rest(treedef, rest, "tree_map_with_path")
    results = [f(path, leaf, *xs) for (path, leaf), *xs in zip(keyed_leaves, *others)]
    return _build(treedef._struct, iter(results))


def tree_all(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> bool:
    """Whether every leaf of ``tree`` is truthy."""
    return builtins.all(tree_leaves(tree, is_leaf))


_NO_INITIALIZER = object()


def tree_reduce(function: Callable[[Any, Any], Any], tree: Any, initializer: Any = _NO_INITIALIZER,
                is_leaf: Callable[[Any], bool] | None = None) -> Any:
    """Fold ``function`` over the leaves of ``tree``, as :func:`functools.reduce` does.

    >>> tree_reduce(lambda a, b: a + b, [1, (2, 3)], 100)
    106
    """
    leaves = tree_leaves(tree, is_leaf)
    if initializer is _NO_INITIALIZER:
        if not leaves:
            raise TypeError("tree_reduce of a tree with no leaves needs an initializer")
        return functools.reduce(function, leaves)
    return functools.reduce(function, leaves, initializer)


def tree_transpose(outer_treedef: PyTreeDef, inner_treedef: PyTreeDef | Any, pytree_to_transpose: Any) -> Any:
    """Turn an outer tree of inner trees into an inner tree of outer trees.

    >>> outer, inner = tree_structure([0, 0]), tree_structure({'a': 0, 'b': 0})
    >>> tree_transpose(outer, inner, [{'a': 1, 'b': 2}, {'a': 3, 'b': 4}])
    {'a': [1, 3], 'b': [2, 4]}
    """
    if type(inner_treedef) is not PyTreeDef:
        inner_treedef = tree_structure(inner_treedef)
    leaves, treedef = tree_flatten(pytree_to_transpose)
    expected = outer_treedef.compose(inner_treedef)
    if treedef != expected:
        raise ValueError(f"tree_transpose: the tree has structure {treedef!r}, but outer and inner "
                         f"treedefs compose to {expected!r}")
    inner_size = inner_treedef.num_leaves
    outer_size = outer_treedef.num_leaves
    columns = [[leaves[o * inner_size + i] for o in range(outer_size)] for i in range(inner_size)]
    return inner_treedef.unflatten([outer_treedef.unflatten(column) for column in columns])


def all_leaves(iterable: Iterable[Any], is_leaf: Callable[[Any], bool] | None = None) -> bool:
    """Whether every element of ``iterable`` is a leaf (not a pytree node)."""
    return builtins.all(_node_handler(x, is_leaf) is None for x in iterable)


# --- jax.tree.* names ------------------------------------------------------------------------------
# ``fgrad.tree.map`` is ``jax.tree.map``; defined last, since ``map`` and ``all`` shadow the builtins
# in this module (which therefore calls ``builtins.all`` above).

def map(f: Callable, tree: Any, *rest: Any, is_leaf: Callable[[Any], bool] | None = None) -> Any:  # noqa: A001
    """``jax.tree.map(f, tree, *rest, is_leaf=None)``: :func:`tree_map`."""
    return tree_map(f, tree, *rest, is_leaf=is_leaf)


def leaves(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> list:
    """``jax.tree.leaves(tree, is_leaf=None)``: :func:`tree_leaves`."""
    return tree_leaves(tree, is_leaf)


def flatten(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> tuple[list, PyTreeDef]:
    """``jax.tree.flatten(tree, is_leaf=None)``: :func:`tree_flatten`."""
    return tree_flatten(tree, is_leaf)


def unflatten(treedef: PyTreeDef, leaves: Iterable[Any]) -> Any:
    """``jax.tree.unflatten(treedef, leaves)``: :func:`tree_unflatten`."""
    return tree_unflatten(treedef, leaves)


def structure(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> PyTreeDef:
    """``jax.tree.structure(tree, is_leaf=None)``: :func:`tree_structure`."""
    return tree_structure(tree, is_leaf)


def reduce(function: Callable[[Any, Any], Any], tree: Any, initializer: Any = _NO_INITIALIZER,
           is_leaf: Callable[[Any], bool] | None = None) -> Any:
    """``jax.tree.reduce(function, tree, initializer=..., is_leaf=None)``: :func:`tree_reduce`."""
    return tree_reduce(function, tree, initializer, is_leaf)


def _halving_reduce(items: list, operation: Callable[[Any, Any], Any]) -> Any:
    if len(items) == 1:
        return items[0]
    middle = len(items) // 2
    return operation(_halving_reduce(items[:middle], operation), _halving_reduce(items[middle:], operation))


def reduce_associative(operation: Callable[[Any, Any], Any], tree: Any, *, identity: Any = _NO_INITIALIZER,
                       is_leaf: Callable[[Any], bool] | None = None) -> Any:
    """``jax.tree.reduce_associative(operation, tree, *, identity=..., is_leaf=None)``: combine the
    leaves with an associative ``operation`` as a balanced tree (the halves first, as JAX does);
    a tree without leaves gives ``identity``, which must then be given."""
    items = tree_leaves(tree, is_leaf)
    if not items:
        if identity is _NO_INITIALIZER:
            raise TypeError("reduce_associative of a tree with no leaves needs an identity= value")
        return identity
    return _halving_reduce(items, operation)


def all(tree: Any, *, is_leaf: Callable[[Any], bool] | None = None) -> bool:  # noqa: A001
    """``jax.tree.all(tree, *, is_leaf=None)``: whether every leaf is truthy."""
    return tree_all(tree, is_leaf)


def transpose(outer_treedef: PyTreeDef, inner_treedef: PyTreeDef | None, pytree_to_transpose: Any) -> Any:
    """``jax.tree.transpose(outer_treedef, inner_treedef, pytree_to_transpose)``: :func:`tree_transpose`;
    ``inner_treedef=None`` takes the structure of the first inner tree."""
    if inner_treedef is None:
        subtrees: list = []
        try:
            _flatten_up_to(outer_treedef._struct, pytree_to_transpose, subtrees)
        except _Mismatch:
            raise ValueError(f"transpose: the tree does not have the outer structure {outer_treedef!r}") from None
        if not subtrees:
            raise ValueError("transpose: inner_treedef=None needs an outer tree with at least one leaf")
        inner_treedef = tree_structure(subtrees[0])
    return tree_transpose(outer_treedef, inner_treedef, pytree_to_transpose)


def broadcast(prefix_tree: Any, full_tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> Any:
    """``jax.tree.broadcast(prefix_tree, full_tree, is_leaf=None)``: ``full_tree``'s structure with
    each leaf of ``prefix_tree`` repeated over the subtree it covers."""
    return tree_unflatten(tree_structure(full_tree), broadcast_prefix(prefix_tree, full_tree, is_leaf))


def flatten_with_path(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> tuple[list, PyTreeDef]:
    """``jax.tree.flatten_with_path(tree, is_leaf=None)``: :func:`tree_flatten_with_path`."""
    return tree_flatten_with_path(tree, is_leaf)


def leaves_with_path(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> list:
    """``jax.tree.leaves_with_path(tree, is_leaf=None)``: :func:`tree_leaves_with_path`."""
    return tree_leaves_with_path(tree, is_leaf)


def map_with_path(f: Callable, tree: Any, *rest: Any, is_leaf: Callable[[Any], bool] | None = None) -> Any:
    """``jax.tree.map_with_path(f, tree, *rest, is_leaf=None)``: :func:`tree_map_with_path`."""
    return tree_map_with_path(f, tree, *rest, is_leaf=is_leaf)
