"""Every primitive has every rule it needs: an impl, a shape rule, a vmap rule, a jvp rule
(or an explicit 'not differentiable'), and a transpose rule when it is linear."""
import pytest

import fgrad  # noqa: F401  (registers every primitive)
from fgrad.core.primitive import all_primitives
from fgrad.transforms.jvp import jvp_rules, not_differentiable
from fgrad.transforms.vjp import transpose_rules
from fgrad.transforms.vmap import vmap_rules

# Linear in (some of) their array operands: reverse mode needs their transposes.
LINEAR = {
    "neg", "add", "sub", "mul", "div", "select_n", "convert_element_type", "reduce_sum",
    "broadcast_in_dim", "reshape", "transpose", "squeeze", "expand_dims", "slice", "dynamic_slice",
    "dynamic_update_slice", "pad", "concatenate", "rev", "gather", "cumsum", "dot_general",
    "conv_general_dilated", "scatter", "jit", "cond", "scan", "psum", "all_gather", "psum_scatter", "ppermute",
    "pvary",
}

PRIMS = sorted({p for p in all_primitives}, key=lambda p: p.name)


@pytest.mark.parametrize("prim", PRIMS, ids=lambda p: p.name)
def test_primitive_has_impl_and_shape_rule(prim):
    assert prim.impl is not None, f"{prim.name} has no eager implementation"
    assert prim._abstract_eval is not None, f"{prim.name} has no shape rule"


@pytest.mark.parametrize("prim", PRIMS, ids=lambda p: p.name)
def test_primitive_has_vmap_rule(prim):
    assert prim in vmap_rules, f"{prim.name} has no vmap rule"


@pytest.mark.parametrize("prim", PRIMS, ids=lambda p: p.name)
def test_primitive_is_differentiable_or_marked(prim):
    assert (prim in jvp_rules) != (prim in not_differentiable), (
        f"{prim.name} must have a jvp rule or be marked not differentiable (exactly one)")


@pytest.mark.parametrize("prim", [p for p in PRIMS if p.name in LINEAR], ids=lambda p: p.name)
def test_linear_primitive_has_transpose_rule(prim):
    assert prim in transpose_rules, f"{prim.name} is linear but has no transpose rule"


def test_coverage_list_is_not_empty():
    names = {p.name for p in PRIMS}
    assert {"add", "sin", "reduce_sum", "jit"} <= names
