"""fgrad.tree_util: ``jax.tree_util``'s names for the pytree functions of :mod:`fgrad.tree` (one
implementation, two spellings, so ``from fgrad.tree_util import tree_map`` works), and the
parts of ``jax.tree_util`` that ``jax.tree`` lacks: the class decorators, ``Partial``, static
nodes and one-level flattening."""
from __future__ import annotations

import functools
from typing import Any, Callable, Hashable, Iterable

from fgrad.tree import (  # noqa: F401
    DictKey, FlattenedIndexKey, GetAttrKey, KeyEntry, KeyPath, PyTreeDef, SequenceKey, all_leaves, keystr,
    register_dataclass, register_pytree_node, register_pytree_with_keys, tree_all, tree_flatten,
    tree_flatten_with_path, tree_leaves, tree_leaves_with_path, tree_map, tree_map_with_path, tree_reduce,
    tree_structure, tree_transpose, tree_unflatten, treedef_children, treedef_is_leaf)
from fgrad.tree import broadcast as tree_broadcast, reduce_associative as tree_reduce_associative  # noqa: F401
from fgrad.tree import _TUPLE, _UNSEEN, _check_registrable, _classify, _dispatch, _handler_of

__all__ = [
    "DictKey", "FlattenedIndexKey", "GetAttrKey", "KeyEntry", "KeyPath", "Partial", "PyTreeDef", "SequenceKey",
    "all_leaves", "flatten_one_level", "flatten_one_level_with_keys", "is_tree_node", "keystr",
    "register_dataclass", "register_pytree_node", "register_pytree_node_class", "register_pytree_with_keys",
    "register_pytree_with_keys_class", "register_static", "tree_all", "tree_broadcast", "tree_flatten",
    "tree_flatten_with_path", "tree_leaves", "tree_leaves_with_path", "tree_map", "tree_map_with_path",
    "tree_reduce", "tree_reduce_associative", "tree_structure", "tree_transpose", "tree_unflatten",
    "treedef_children", "treedef_is_leaf", "treedef_tuple",
]


def register_pytree_node_class(cls: type) -> type:
    """Class decorator: register ``cls`` with its own ``tree_flatten(self) -> (children, aux_data)``
    method and ``tree_unflatten(cls, aux_data, children)`` classmethod; returns ``cls``.

    >>> @register_pytree_node_class
    ... class Box:
    ...     def __init__(self, x): self.x = x
    ...     def tree_flatten(self): return (self.x,), None
    ...     @classmethod
    ...     def tree_unflatten(cls, aux, children): return cls(*children)
    """
    _require_methods(cls, "register_pytree_node_class", "tree_flatten", "tree_unflatten")
    register_pytree_node(cls, lambda x: x.tree_flatten(), cls.tree_unflatten)
    return cls


def register_pytree_with_keys_class(cls: type) -> type:
    """Class decorator: like :func:`register_pytree_node_class`, with the children's key paths
    from ``tree_flatten_with_keys(self) -> ([(key, child), ...], aux_data)`` (and the faster
    ``tree_flatten`` where the class defines one); returns ``cls``."""
    _require_methods(cls, "register_pytree_with_keys_class", "tree_flatten_with_keys", "tree_unflatten")
    flatten = (lambda x: x.tree_flatten()) if hasattr(cls, "tree_flatten") else None
    register_pytree_with_keys(cls, lambda x: x.tree_flatten_with_keys(), cls.tree_unflatten, flatten)
    return cls


def _require_methods(cls: Any, decorator: str, *names: str) -> None:
    if not isinstance(cls, type):
        raise TypeError(f"{decorator} decorates a class, got {cls!r}")
    missing = [name for name in names if not callable(getattr(cls, name, None))]
    if missing:
        raise TypeError(f"{decorator}: {cls.__qualname__} must define {' and '.join(missing)} "
                        f"(it defines neither {' nor '.join(missing)})" if len(missing) > 1 else
                        f"{decorator}: {cls.__qualname__} must define {missing[0]}")


def register_static(cls: type) -> type:
    """Class decorator: instances of ``cls`` are pytree nodes with no children, the instance
    itself their static data, so ``jit`` treats them as static arguments (they must be
    hashable and comparable with ``==``); returns ``cls``."""
    _check_registrable(cls)
    if getattr(cls, "__hash__", None) is None:
        raise TypeError(f"register_static: {cls.__qualname__} is not hashable; a static value is part of "
                        "jit's cache key, so give the class __hash__ and __eq__")
    register_pytree_node(cls, lambda x: ((), x), lambda aux, children: aux)
    return cls


class Partial(functools.partial):
    """``jax.tree_util.Partial(func, *args, **kwargs)``: a ``functools.partial`` that is a pytree
    whose leaves are the bound arguments (``func`` is static), so it can be passed to and
    returned from ``jit``-ed functions.

    >>> add_one = Partial(lambda x, y: x + y, 1.0)
    >>> add_one(2.0)
    3.0
    """

    def __new__(cls, func: Callable, *args: Any, **kwargs: Any) -> "Partial":
        if isinstance(func, functools.partial):
            # functools.partial would merge the inner partial's arguments into this one's;
            # keep it whole, as the static function
            inner = func

            def func(*a, **k):
                return inner(*a, **k)
        return super().__new__(cls, func, *args, **kwargs)


def _flatten_one(tree: Any, with_keys: bool) -> tuple[tuple, Any]:
    handler = _handler_of(tree)
    if handler is None:
        raise ValueError(f"can't tree-flatten type: {type(tree)}")
    children, aux = handler.flatten_with_keys(tree) if with_keys else handler.flatten(tree)
    return tuple(children), aux


def flatten_one_level(tree: Any) -> tuple[tuple, Hashable]:
    """The children of the pytree node ``tree`` and its static data, one level down; ValueError
    for a leaf.

    >>> flatten_one_level({'a': 1, 'b': (2, 3)})
    ((1, (2, 3)), ('a', 'b'))
    """
    return _flatten_one(tree, with_keys=False)


def flatten_one_level_with_keys(tree: Any) -> tuple[tuple, Hashable]:
    """Like :func:`flatten_one_level`, each child paired with its key entry."""
    return _flatten_one(tree, with_keys=True)


def is_tree_node(typ: type) -> bool:
    """Whether instances of the type ``typ`` are pytree nodes (built in, registered or a
    namedtuple); ``is_tree_node(type(None))`` is True."""
    if not isinstance(typ, type):
        raise TypeError(f"is_tree_node takes a type, got {typ!r}; pass type(x)")
    handler = _dispatch.get(typ, _UNSEEN)
    return (_classify(typ) if handler is _UNSEEN else handler) is not None


def treedef_tuple(treedefs: Iterable[PyTreeDef]) -> PyTreeDef:
    """The structure of a tuple whose children have the structures ``treedefs``.

    >>> treedef_tuple([tree_structure(1), tree_structure((1, 2))])
    PyTreeDef((*, (*, *)))
    """
    treedefs = list(treedefs)
    for t in treedefs:
        if type(t) is not PyTreeDef:
            raise TypeError(f"treedef_tuple takes PyTreeDefs, got {type(t).__name__}")
    return PyTreeDef((_TUPLE, None, tuple(t._struct for t in treedefs)),
                     sum(t._num_leaves for t in treedefs))




register_pytree_node(Partial, lambda p: ((p.args, p.keywords), p.func),
                     lambda func, children: Partial(func, *children[0], **children[1]))
