"""The scalar op table is the one definition: the interpreter and both renderers cover
exactly its ops, and the IR builders follow its arity, kinds and result rules."""
import inspect

import numpy as np
import pytest

from fgrad.lower import kernel as K
from fgrad.lower import mathlib
from fgrad.lower.cuda_scalar import C_TYPES, RENDERED_OPS as CUDA_OPS, op_text
from fgrad.lower.interpret import SCALAR_OPS, apply_op
from fgrad.lower.llvm_ops import RENDERED_OPS as LLVM_OPS, Lowering
from fgrad.lower.scalar_ops import OPS, TABLE, check_coverage

SAMPLE = {"f": K.float32, "i": K.int32, "u": K.uint32, "b": K.bool_}


def test_every_consumer_covers_exactly_the_table():
    assert set(SCALAR_OPS) | {"cast", "bitcast"} == OPS       # the interpreter
    assert LLVM_OPS == OPS
    assert CUDA_OPS == OPS
    assert K.OPS == OPS


def test_check_coverage_names_what_is_missing():
    with pytest.raises(AssertionError, match="missing \\['add'\\]"):
        check_coverage("a renderer", OPS - {"add"})
    with pytest.raises(AssertionError, match="not in the table \\['frobnicate'\\]"):
        check_coverage("a renderer", OPS | {"frobnicate"})


def test_table_entries_are_consistent():
    for name, entry in TABLE.items():
        assert entry.name == name
        assert set(entry.kinds) <= set("fiub") and entry.kinds
        assert entry.result in ("operand", "bool", "target")
        if entry.reference is not None and not isinstance(entry.reference, np.ufunc):
            params = inspect.signature(entry.reference).parameters.values()
            if not any(p.kind == p.VAR_POSITIONAL for p in params):
                assert len(params) == entry.arity, name


def _operands(name: str, kind: str) -> list:
    dtype = SAMPLE[kind]
    args = [K.Var(f"v{k}") for k in range(TABLE[name].arity)]
    args = [K.cast(a, dtype) for a in args]
    if name == "select":
        args[0] = K.cast(args[0], K.bool_)
    return args


@pytest.mark.parametrize("name", sorted(OPS - {"cast", "bitcast"}))
def test_builders_and_interpreter_follow_the_table(name):
    entry = TABLE[name]
    for kind in entry.kinds:
        dtype = SAMPLE[kind]
        e = K.op(name, *_operands(name, kind))
        expected = K.bool_ if entry.result == "bool" else dtype
        assert e.dtype == expected, (name, kind)
        values = [dtype.type(1)] * entry.arity
        if name == "select":
            values[0] = np.bool_(True)
        assert apply_op(name, values, expected).dtype == expected


@pytest.mark.parametrize("name", sorted(OPS))
def test_both_renderers_render_each_kind(name):
    entry = TABLE[name]
    for kind in entry.kinds:
        dtype = SAMPLE[kind]
        if kind in "iub":       # mathlib expands only float ops
            assert hasattr(Lowering, "op_" + name), (name, kind)
        else:
            assert hasattr(Lowering, "op_" + name) or name in mathlib.EXPANDED, name
        out = K.bool_ if entry.result == "bool" else (K.int32 if name in ("cast", "bitcast") else dtype)
        if name == "bitcast" and kind == "b":
            continue
        text = op_text(name, [f"a{k}" for k in range(entry.arity)], dtype, out, C_TYPES)
        assert isinstance(text, str) and text
