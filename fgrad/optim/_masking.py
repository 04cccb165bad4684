"""``masked``: apply a transformation to some leaves of the updates only (optax's ``masked``)."""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

from fgrad import tree
from fgrad.optim._base import GradientTransformation, call_update


class MaskedState(NamedTuple):
    """``masked``'s state: the inner transformation's state (over the unmasked leaves)."""
    inner_state: Any


class MaskedNode(NamedTuple):
    """Stands in for a masked-out leaf: a pytree node with no leaves, so the inner transformation
    neither sees it nor keeps state for it."""


def _mask_is_callable(mask: Any) -> bool:
    flags = tree.tree_leaves(tree.tree_map(callable, mask))
    return len(flags) > 0 and all(flags)


def _mask_tree(mask: Any, values: Any) -> Any:
    return mask(values) if _mask_is_callable(mask) else mask


def _apply_mask(values: Any, mask_tree: Any) -> Any:
    return tree.tree_map(lambda m, v: v if m else MaskedNode(), mask_tree, values)


def masked(inner: GradientTransformation, mask: Any | Callable[[Any], Any]) -> GradientTransformation:
    """``optax.masked(inner, mask)``: ``inner`` transforms the leaves where ``mask`` is True; the
    others pass through unchanged and get no state.

    ``mask`` is a pytree of bools with the params' structure (or a prefix of it), or a function
    from the params (from the updates, in ``update``) to such a tree::

        decay_matrices = masked(add_decayed_weights(0.1), lambda p: tree.tree_map(lambda x: x.ndim >= 2, p))
    """
    def init(params):
        return MaskedState(inner.init(_apply_mask(params, _mask_tree(mask, params))))

    def update(updates, state, params=None, **extra_args):
        mask_tree = _mask_tree(mask, updates)
        masked_params = None if params is None else _apply_mask(params, mask_tree)
        new_updates, inner_state = call_update(inner, _apply_mask(updates, mask_tree), state.inner_state,
                                               masked_params, extra_args)
        merged = tree.tree_map(lambda m, new, old: new if m else old, mask_tree, new_updates, updates)
        return merged, MaskedState(inner_state)

    return GradientTransformation(init, update)


class PartitionState(NamedTuple):
    """``partition``'s state: each group's (masked) inner state, by label."""
    inner_states: dict


MultiTransformState = PartitionState


def partition(transforms: dict, param_labels: Any | Callable[[Any], Any]) -> GradientTransformation:
    """``optax.partition(transforms, param_labels)`` (``optax.multi_transform``): a different
    transformation per group of leaves. ``param_labels`` is a pytree of labels with the params'
    structure (or a function of the params returning one); each label names a key of
    ``transforms``::

        opt = partition({"decay": adamw(1e-3), "frozen": set_to_zero()},
                        lambda p: tree.map(lambda x: "decay" if x.ndim >= 2 else "frozen", p))
    """
    def labels_of(values):
        return param_labels(values) if callable(param_labels) else param_labels

    def group_mask(labels, group):
        return tree.tree_map(lambda label: label == group, labels)

    def init(params):
        labels = labels_of(params)
        unknown = set(tree.tree_leaves(labels)) - set(transforms)
        if unknown:
            raise ValueError(f"partition: labels {sorted(map(str, unknown))} have no transformation; the "
                             f"transformations are for {sorted(map(str, transforms))}")
        return PartitionState({group: masked(t, group_mask(labels, group)).init(params)
                               for group, t in transforms.items()})

    def update(updates, state, params=None, **extra_args):
        labels = labels_of(updates)
        new_states = {}
        for group, t in transforms.items():
            updates, new_states[group] = masked(t, group_mask(labels, group)).update(
                updates, state.inner_states[group], params, **extra_args)
        return updates, PartitionState(new_states)

    return GradientTransformation(init, update)


multi_transform = partition
