"""``Module``: a plain Python class whose instances are pytrees.

Subclass it, set attributes in ``__init__`` and define ``__call__``, as in the
tinygrad tutorial. Attributes holding arrays (or containers/sub-modules holding
arrays) are the pytree's children; everything else (ints, strings, functions,
names listed in ``static_fields``) is static metadata that keys jit's cache. A module
rebuilt from its structure (``tree.map``, ``tree.unflatten``) keeps the same children
whatever its leaves now hold, so a tree of booleans mapped from a model is a mask with
the model's structure. So
``grad(loss)(model, x, y)`` returns a model-shaped gradient. Instances are frozen
once ``__init__`` returns; build a changed copy with ``replace``.

    class Net(fgrad.nn.Module):
        def __init__(self, *, key):
            self.l1 = fgrad.nn.Linear(784, 10, key=key)
        def __call__(self, x):
            return self.l1(x)
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np

from fgrad import tree
from fgrad.core.array import ArrayOps

_FROZEN = "_fgrad_frozen"
_INIT_DEPTH = "_fgrad_init_depth"
_CHILDREN = "_fgrad_children"  # set by unflatten: the fields that were children stay children


class FrozenModuleError(AttributeError):
    """A Module's attribute was assigned after ``__init__`` returned."""


def _is_array(value: Any) -> bool:
    return isinstance(value, (ArrayOps, np.ndarray))


def _holds_arrays(value: Any) -> bool:
    """Is ``value`` an array or a container/module holding one? Those fields are children."""
    return _is_array(value) or any(_is_array(leaf) for leaf in tree.tree_leaves(value))


class Module:
    """Base class for models: a frozen, auto-registered pytree. See the module docstring."""

    static_fields: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _freezing_init(cls.__dict__["__init__"])
        tree.register_pytree_with_keys(cls, _flatten_with_keys, functools.partial(_unflatten, cls),
                                       _flatten)

    def __setattr__(self, name: str, value: Any) -> None:
        if self.__dict__.get(_FROZEN, False):
            raise FrozenModuleError(
                f"{type(self).__name__} is frozen after __init__: cannot set .{name}. Modules are "
                "immutable pytrees; make a changed copy with module.replace(" + name + "=...), or "
                "update parameters functionally (e.g. fgrad.optim.apply_updates).")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        if self.__dict__.get(_FROZEN, False):
            raise FrozenModuleError(f"{type(self).__name__} is frozen after __init__: cannot delete .{name}")
        object.__delattr__(self, name)

    def replace(self, **changes: Any) -> "Module":
        """A copy of this module with some attributes replaced."""
        new = object.__new__(type(self))
        for name, value in _fields(self):
            object.__setattr__(new, name, changes.pop(name, value))
        if changes:
            raise ValueError(f"{type(self).__name__}.replace: no attributes named {sorted(changes)}; "
                             f"it has {[name for name, _ in _fields(self)]}")
        object.__setattr__(new, _FROZEN, True)
        return new

    def __repr__(self) -> str:
        parts = []
        for name, value in _fields(self):
            shown = f"{value.dtype.name}{list(value.shape)}" if _is_array(value) else repr(value)
            parts.append(f"{name}={shown}")
        return f"{type(self).__name__}({', '.join(parts)})"


def _freezing_init(init):
    @functools.wraps(init)
    def wrapped(self, *args, **kwargs):
        depth = self.__dict__.get(_INIT_DEPTH, 0)
        object.__setattr__(self, _INIT_DEPTH, depth + 1)
        try:
            init(self, *args, **kwargs)
        finally:
            object.__setattr__(self, _INIT_DEPTH, depth)
        if depth == 0:
            del self.__dict__[_INIT_DEPTH]
            object.__setattr__(self, _FROZEN, True)
    return wrapped


def _fields(module: Module):
    return [(k, v) for k, v in module.__dict__.items() if not k.startswith("_fgrad_")]


def _split(module: Module):
    static_names = set(type(module).static_fields)
    were_children = module.__dict__.get(_CHILDREN, ())
    children, dynamic_names, static = [], [], []
    for name, value in _fields(module):
        if name not in static_names and (name in were_children or _holds_arrays(value)):
            dynamic_names.append(name)
            children.append(value)
        else:
            static.append((name, value))
    return children, (tuple(dynamic_names), tuple(static))


def _flatten(module: Module):
    return _split(module)


def _flatten_with_keys(module: Module):
    children, aux = _split(module)
    return [(tree.GetAttrKey(name), child) for name, child in zip(aux[0], children)], aux


def _unflatten(cls, aux, children):
    dynamic_names, static = aux
    obj = object.__new__(cls)
    for name, value in zip(dynamic_names, children):
        object.__setattr__(obj, name, value)
    for name, value in static:
        object.__setattr__(obj, name, value)
    # A module rebuilt with non-array leaves (tree.map(lambda x: x.ndim >= 2, model): a mask, as
    # optax's masks are) keeps the model's structure, as in JAX and Equinox.
    object.__setattr__(obj, _CHILDREN, dynamic_names)
    object.__setattr__(obj, _FROZEN, True)
    return obj
