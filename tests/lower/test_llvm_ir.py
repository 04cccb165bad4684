"""The text LLVM IR builder (``fgrad.lower.llvm_ir``): its folds agree with LLVM itself, and
what it prints is a module LLVM accepts and runs."""
from __future__ import annotations

import ctypes

import llvmlite.binding as llvm
import pytest
from hypothesis import given, strategies as st

from fgrad.lower import llvm_ir as ir

llvm.initialize_native_target()
llvm.initialize_native_asmprinter()

OPS = ["add", "sub", "mul", "sdiv", "udiv", "srem", "urem", "shl", "lshr", "ashr", "and_", "or_", "xor"]
COMPARES = ["==", "!=", "<", "<=", ">", ">="]
WIDTHS = [8, 32, 64]


def _run_i64(module: ir.Module, name: str, args: tuple = ()) -> int:
    """Compile ``module`` with LLVM and call ``name`` (i64 arguments, an i64 result)."""
    parsed = llvm.parse_assembly(str(module))
    parsed.verify()
    target = llvm.Target.from_default_triple().create_target_machine()
    engine = llvm.create_mcjit_compiler(parsed, target)
    engine.finalize_object()
    proto = ctypes.CFUNCTYPE(ctypes.c_int64, *([ctypes.c_int64] * len(args)))
    result = proto(engine.get_function_address(name))(*args)
    del engine
    return result


def _function(module: ir.Module, name: str, nargs: int) -> tuple[ir.Function, ir.IRBuilder]:
    fn = ir.Function(module, ir.FunctionType(ir.I64, [ir.I64] * nargs), name)
    return fn, ir.IRBuilder(fn.append_basic_block("entry"))


def _values(width: int):
    bound = 1 << (width - 1)
    edges = [0, 1, -1, 2, 7, -bound, bound - 1, width - 1, width]
    return st.one_of(st.sampled_from(edges), st.integers(-bound, bound - 1))


@st.composite
def _binary_cases(draw):
    width = draw(st.sampled_from(WIDTHS))
    return draw(st.sampled_from(OPS)), width, draw(_values(width)), draw(_values(width))


def _emit_binary(b: ir.IRBuilder, op: str, x: ir.Value, y: ir.Value, t: ir.IntType) -> ir.Value:
    return b.sext(getattr(b, op)(b.trunc(x, t) if t is not ir.I64 else x,
                                 b.trunc(y, t) if t is not ir.I64 else y), ir.I64) \
        if t is not ir.I64 else getattr(b, op)(x, y)


@given(_binary_cases())
def test_folded_integer_arithmetic_is_what_llvm_computes(case):
    op, width, x, y = case
    t = ir.IntType(width)
    undefined = (op in ("sdiv", "udiv", "srem", "urem") and (y % (1 << width) == 0 or
                 (op[0] == "s" and y == -1))) or (op in ("shl", "lshr", "ashr") and not 0 <= y % (1 << width) < width)
    if undefined:       # LLVM leaves these undefined (poison or a trap): never folded
        folded = ir.IRBuilder(ir.Function(ir.Module(), ir.FunctionType(ir.VOID, []), "f").append_basic_block())
        assert getattr(folded, op)(t(x), t(y)).type is t
        assert not isinstance(getattr(folded, op)(t(x), t(y)), ir.Constant)
        return
    module = ir.Module("fold")
    module.triple = llvm.get_process_triple()
    fn, b = _function(module, "run_time", 2)
    b.ret(_emit_binary(b, op, fn.args[0], fn.args[1], t))
    fn, b = _function(module, "folded", 0)
    value = getattr(b, op)(t(x), t(y))
    assert isinstance(value, ir.Constant), "both operands are constants: the builder folds"
    b.ret(b.sext(value, ir.I64) if t is not ir.I64 else value)
    assert _run_i64(module, "folded") == _run_i64(module, "run_time", (x, y))


@given(st.sampled_from(WIDTHS).flatmap(lambda w: st.tuples(st.just(w), _values(w), _values(w))),
       st.sampled_from(COMPARES), st.booleans())
def test_folded_comparisons_are_what_llvm_computes(case, op, signed):
    width, x, y = case
    t = ir.IntType(width)
    module = ir.Module("compare")
    module.triple = llvm.get_process_triple()
    compare = lambda b: b.icmp_signed if signed else b.icmp_unsigned
    fn, b = _function(module, "run_time", 2)
    args = [b.trunc(a, t) if t is not ir.I64 else a for a in fn.args]
    b.ret(b.zext(compare(b)(op, *args), ir.I64))
    fn, b = _function(module, "folded", 0)
    value = compare(b)(op, t(x), t(y))
    assert isinstance(value, ir.Constant)
    b.ret(b.zext(value, ir.I64))
    assert _run_i64(module, "folded") == _run_i64(module, "run_time", (x, y))


@given(st.sampled_from(OPS), st.sampled_from([0, 1, -1]), st.booleans())
def test_identities_return_the_other_operand_or_a_constant(op, c, constant_first):
    module = ir.Module("identity")
    fn, b = _function(module, "f", 1)
    x = fn.args[0]
    operands = (ir.I64(c), x) if constant_first else (x, ir.I64(c))
    value = getattr(b, op)(*operands)
    if isinstance(value, ir.Constant) or value is x:
        # a fold: check it against LLVM for a few run-time values of x
        module.triple = llvm.get_process_triple()
        b.ret(value)
        fn2, b2 = _function(module, "g", 1)
        operands2 = (ir.I64(c), fn2.args[0]) if constant_first else (fn2.args[0], ir.I64(c))
        plain = ir.IRBuilder(b2.block)
        line = f"{op.rstrip('_')} i64 {operands2[0].ref}, {operands2[1].ref}"
        out = plain._emit(ir.I64, line)
        b2.ret(out)
        shift = op in ("shl", "lshr", "ashr")
        for v in ((3, 17) if shift else (3, -5, 1 << 40)):
            assert _run_i64(module, "f", (v,)) == _run_i64(module, "g", (v,))


def test_select_on_a_constant_condition_picks_without_an_instruction():
    module = ir.Module("select")
    fn, b = _function(module, "f", 2)
    a, c = fn.args
    assert b.select(ir.I1(True), a, c) is a
    assert b.select(ir.I1(False), a, c) is c
    assert b.block.lines == [], "nothing was emitted"
    assert b.select(b.icmp_signed("<", a, c), a, a) is a
    assert len(b.block.lines) == 1, "only the comparison was emitted"


def test_float_arithmetic_is_never_folded():
    module = ir.Module("floats")
    fn = ir.Function(module, ir.FunctionType(ir.FLOAT, []), "f")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    assert not isinstance(b.fadd(ir.FLOAT(1.0), ir.FLOAT(2.0)), ir.Constant)


def test_types_are_interned_and_written_as_llvm_writes_them():
    assert ir.IntType(32) is ir.I32 and ir.VectorType(ir.FLOAT, 16) is ir.VectorType(ir.FloatType(), 16)
    assert str(ir.VectorType(ir.I1, 8)) == "<8 x i1>" and str(ir.ArrayType(ir.PTR, 3)) == "[3 x ptr]"
    assert str(ir.FunctionType(ir.VOID, [ir.PTR, ir.I64])) == "void (ptr, i64)"


def test_constants_are_written_in_llvm_syntax():
    assert ir.FLOAT(0.1).ref == "0x3fb99999a0000000"     # rounded to float, written as a double
    assert ir.DOUBLE(float("inf")).ref == "0x7ff0000000000000"
    assert ir.I1(1).ref == "true" and ir.I32(-3).ref == "-3" and ir.I8(True).ref == "1"
    assert ir.Constant(ir.VectorType(ir.I32, 2), [1, 2]).ref == "<i32 1, i32 2>"
    assert ir.Constant(ir.VectorType(ir.FLOAT, 4), None).ref == "zeroinitializer"
    assert ir.Constant(ir.VectorType(ir.FLOAT, 4), ir.Undefined).ref == "undef"
    with pytest.raises(ValueError, match="needs 4 elements"):
        ir.Constant(ir.VectorType(ir.FLOAT, 4), [1.0])


def test_a_module_with_loops_phis_switches_and_globals_runs():
    """sum(k for k in range(n)) with a phi loop, a switch on n and a global counter."""
    module = ir.Module("program")
    module.triple = llvm.get_process_triple()
    counter = ir.GlobalVariable(module, ir.I64, "calls")
    fn, b = _function(module, "f", 1)
    n = fn.args[0]
    b.store(b.add(b.load(counter, typ=ir.I64), ir.I64(1)), counter)
    pre = b.block
    header, body, done = (fn.append_basic_block(x) for x in ("header", "body", "done"))
    b.branch(header)
    b.position_at_end(header)
    k, total = b.phi(ir.I64), b.phi(ir.I64)
    k.add_incoming(ir.I64(0), pre)
    total.add_incoming(ir.I64(0), pre)
    b.cbranch(b.icmp_signed("<", k, n), body, done)
    b.position_at_end(body)
    k.add_incoming(b.add(k, ir.I64(1)), body)
    total.add_incoming(b.add(total, k), body)
    b.branch(header)
    b.position_at_end(done)
    small, other = fn.append_basic_block("small"), fn.append_basic_block("other")
    switch = b.switch(n, other)
    switch.add_case(ir.I64(0), small)
    b.position_at_end(small)
    b.ret(ir.I64(-1))
    b.position_at_end(other)
    with b.if_then(b.icmp_signed(">", n, ir.I64(100))):
        b.store(ir.I64(0), counter)
    b.ret(total)
    assert [_run_i64(module, "f", (v,)) for v in (0, 1, 5, 10)] == [-1, 0, 10, 45]


def test_emitting_past_a_terminator_is_an_error():
    module = ir.Module("bad")
    fn, b = _function(module, "f", 0)
    b.ret(ir.I64(0))
    with pytest.raises(ValueError, match="already terminated"):
        b.ret(ir.I64(1))
    with pytest.raises(ValueError, match="already has a global"):
        ir.Function(module, ir.FunctionType(ir.I64, []), "f")
