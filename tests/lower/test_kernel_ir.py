"""The kernel IR itself: construction, typing errors, printing, structural equality, lifetimes."""
from __future__ import annotations

import numpy as np
import pytest

from fgrad.lower import kernel as K

f32 = K.float32


def axpy() -> K.Kernel:
    x, y, i = K.Param("x", f32, 64), K.Param("y", f32, 64), K.Var("i")
    return K.Kernel("axpy", (x, y), (K.Range(i, 0, 64, (y.store(i, x[i] * 2.0 + y[i]),),
                                             parallel=True, vectorize=K.AUTO),))


def test_printer_is_readable():
    text = str(axpy())
    assert text == ("kernel axpy(x: f32[64], y: f32[64]):\n"
                    "  for i in 0..64 [parallel, vectorize]:\n"
                    "    y[i] = x[i] * 2.0:f32 + y[i]")


def test_program_printer_lists_buffers_and_steps():
    k = axpy()
    a, b, t = K.Buffer("a", f32, (8, 8)), K.Buffer("b", f32, 64), K.Buffer("t", f32, 64)
    idx = K.Buffer("i", K.int32, ())
    p = K.Program("prog", (a,), (b,), (K.Call(k, (a, t)), K.Loop(3, (K.Call(k, (t, b)),), index=idx)))
    text = str(p)
    assert "program prog(a:f32[8, 8]) -> (b:f32[64]):" in text
    assert "temporaries t:f32[64], i:i32[]" in text
    assert "  loop 3 -> i:\n    axpy(t, b)" in text
    assert text.count("kernel axpy") == 1


def test_expression_printing_precedence_and_ops():
    i, j = K.Var("i"), K.Var("j")
    e = (i + 1) * (j - 2) // 3 % 4
    assert repr(e) == "(i + 1) * (j - 2) // 3 % 4"
    x = K.Param("x", f32, 8)
    assert repr(K.select(x[i] > 0.0, K.op("exp", x[i]), -x[i])) == "select(x[i] > 0.0:f32, exp(x[i]), -x[i])"
    assert repr(K.cast(x[i], K.int32)) == "i32(x[i])"
    assert repr(x.load(i - 1, i >= 1)) == "x[i - 1 if i >= 1]"


def test_structural_equality_and_hashing():
    i = K.Var("i")
    a = K.Param("x", f32, 4)[i * 2]
    b = K.Param("x", f32, 4)[i * 2]
    assert a == b and hash(a) == hash(b) and a is not b               # two loads, equal by structure
    assert a * 3.0 == b * 3.0
    assert a != K.op("log", K.Param("x", f32, 4)[i * 2])
    assert K.Const(0.0, f32) != K.Const(-0.0, f32)
    assert K.Const(1, K.int32) != K.Const(1, K.int64)
    with pytest.raises(TypeError, match="truth value"):
        bool(i < 3)


def test_constant_folding_of_index_math():
    i = K.Var("i")
    assert (i * 1 + 0) == i          # equal by structure (op() may hand back an equal, shared expression)
    assert isinstance(K.Const(3) * 4 + 2, K.Const) and (K.Const(3) * 4 + 2).value == 14
    assert (i * 0).value == 0
    assert K.Const(-7) // 2 == K.Const(-4) and K.Const(-7) % 2 == K.Const(1)
    assert K.Const(2**31, K.int32).value == -2**31


def test_type_errors_name_the_op_and_the_fix():
    x, i = K.Param("x", f32, 4), K.Var("i")
    with pytest.raises(TypeError, match="mixed dtypes"):
        K.op("add", x[i], K.Const(1, K.int32))
    with pytest.raises(TypeError, match="op exp does not take i64"):
        K.op("exp", i)
    with pytest.raises(TypeError, match="index of x must be an integer"):
        x[K.Const(1.0, f32)]
    with pytest.raises(ValueError, match="unknown scalar op"):
        K.op("frobnicate", i)
    with pytest.raises(TypeError, match="bitcast needs"):
        K.bitcast(x[i], K.int64)
    with pytest.raises(ValueError, match="step must be a positive int"):
        K.Range(i, 0, 4, (), step=0)


def test_kernel_checks():
    x, y, i, j = K.Param("x", f32, 4), K.Param("y", f32, 4), K.Var("i"), K.Var("j")
    with pytest.raises(ValueError, match="loop variable j is used outside its loop"):
        K.Kernel("bad", (x, y), (K.Range(i, 0, 4, (y.store(i, x[j]),)),))
    with pytest.raises(ValueError, match="store to unknown param z"):
        K.Kernel("bad", (x, y), (K.Range(i, 0, 4, (K.Store("z", i, x[i]),)),))
    acc = K.Local("acc", f32)
    with pytest.raises(ValueError, match="outside the scope"):
        K.Kernel("bad", (x, y), (K.Range(i, 0, 4, (K.DefineLocal(acc, 0.0),)), y.store(0, acc[0])))
    with pytest.raises(ValueError, match="value stored to y is i64"):
        K.Kernel("bad", (x, y), (K.Range(i, 0, 4, (K.Store("y", i, i),)),))
    with pytest.raises(ValueError, match="shadows"):
        K.Kernel("bad", (x, y), (K.Range(i, 0, 4, (K.Range(i, 0, 4, ()),)),))


def test_kernel_checks_see_a_shared_expression_in_every_scope():
    """The checker visits a shared subexpression once per scope, not once for good: the same
    expression object valid inside its loop is still an error outside it (and a local read
    inside a DefineLocal's scope is still an error after it)."""
    x, y, i = K.Param("x", f32, 4), K.Param("y", f32, 4), K.Var("i")
    shared = x[i] * 2.0
    ok = K.Range(i, 0, 4, (y.store(i, shared), y.store(i, shared + 1.0)))
    K.Kernel("good", (x, y), (ok,))
    with pytest.raises(ValueError, match="loop variable i is used outside its loop"):
        K.Kernel("bad", (x, y), (ok, y.store(0, shared)))
    acc = K.Local("acc", f32)
    read = acc[0] + 1.0
    with pytest.raises(ValueError, match="outside the scope"):
        K.Kernel("bad", (x, y), (K.Range(i, 0, 4, (K.DefineLocal(acc, 0.0), y.store(i, read))), y.store(0, read)))


def test_an_equal_kernel_is_checked_once_and_a_bad_one_every_time(monkeypatch):
    """Kernels equal in params and body (each layer of a model builds the same ones) are
    checked once; a kernel that fails the check fails it again when built again."""
    from fgrad.lower import kernel_stmt
    monkeypatch.setattr(kernel_stmt, "_checked", {})
    walks = []
    original = kernel_stmt._check_kernel
    monkeypatch.setattr(kernel_stmt, "_check_kernel", lambda k: walks.append(k.name) or original(k))
    axpy(), axpy()
    assert walks == ["axpy"]
    x, y, i, j = K.Param("x", f32, 4), K.Param("y", f32, 4), K.Var("i"), K.Var("j")
    for _ in range(2):
        with pytest.raises(ValueError, match="loop variable j is used outside its loop"):
            K.Kernel("bad", (x, y), (K.Range(i, 0, 4, (y.store(i, x[j]),)),))
    assert walks == ["axpy", "bad", "bad"]


def test_call_and_program_checks():
    k = axpy()
    a, b = K.Buffer("a", f32, 64), K.Buffer("b", f32, 64)
    with pytest.raises(TypeError, match="param x is f32\\[64\\]"):
        K.Call(k, (K.Buffer("c", f32, 63), b))
    with pytest.raises(TypeError, match="2 buffers for 1 params|1 buffers for 2 params"):
        K.Call(k, (a,))
    with pytest.raises(ValueError, match="kernel writes one of them"):
        K.Call(k, (a, a))
    with pytest.raises(ValueError, match="listed twice"):
        K.Program("p", (a,), (a,), ())
    with pytest.raises(ValueError, match="two buffers are named a"):
        K.Program("p", (a,), (K.Buffer("a", f32, 64),), ())
    with pytest.raises(TypeError, match="one-element buffer"):
        K.Loop(3, (), index=a)


def test_reads_and_substitute():
    x, i, j = K.Param("x", f32, 16), K.Var("i"), K.Var("j")
    e = x[i * 4 + j] + K.Local("acc", f32)[0]
    assert e.reads == {"x", "acc"}
    assert K.free_vars(e) == {"i", "j"}
    s = K.substitute(e, {"i": K.Const(2), "j": K.Var("k")})
    assert repr(s) == "x[8 + k] + acc[0]"


def test_lifetimes_widen_inside_loops():
    k = axpy()
    a, b = K.Buffer("a", f32, 64), K.Buffer("b", f32, 64)
    t1, t2, t3 = K.Buffer("t1", f32, 64), K.Buffer("t2", f32, 64), K.Buffer("t3", f32, 64)
    p = K.Program("p", (a,), (b,), (
        K.Call(k, (a, t1)),                                   # 0
        K.Loop(2, (K.Call(k, (t1, t2)), K.Call(k, (t2, t1)))),  # 1 (2, 3)
        K.Call(k, (t1, t3)), K.Call(k, (t3, b))))             # 4, 5
    life = K.buffer_lifetimes(p)
    assert life[id(t1)] == (0, 4) and life[id(t2)] == (1, 3) and life[id(t3)] == (4, 5)
    plan = K.plan_memory(p)
    assert plan.offset(t3) in (plan.offset(t2),) or plan.size == 3 * 256
    assert plan.offset(t1) != plan.offset(t2)


def test_dtype_names():
    assert K.as_dtype("f32") == np.float32 and K.as_dtype("uint8") == np.uint8
    assert K.as_dtype("f16") == np.float16
    assert K.as_dtype("i8") == np.int8 and K.as_dtype("u16") == np.uint16 and K.as_dtype("bf16") == K.bfloat16
    with pytest.raises(TypeError, match="no dtype complex64"):
        K.as_dtype(np.complex64)


def test_float16_is_a_storage_type():
    """float16 arithmetic builds float32 arithmetic rounded back; casts go through float32."""
    x, d = K.Param("x", K.float16, 4), K.Param("d", K.float64, 4)
    i = K.Var("i")
    s = x[i] * 2.0 + x[i]
    assert s.dtype == K.float16 and str(s) == "f16(f32(f16(f32(x[i]) * 2.0:f32)) + f32(x[i]))"
    assert K.op("lt", x[i], 1.0).dtype == K.bool_
    assert str(K.cast(x[i], K.int32)) == "i32(f32(x[i]))"
    assert "bitcast<u32>" in str(K.cast(d[i], K.float16))     # round to odd on the way through f32


def test_floor_div_mod_pair_folds_back_to_the_index():
    """(x // c) * c + x % c is x (also at the end of a sum): keeps unravel-then-ravel stores
    recognisably contiguous. Other multiples are left alone."""
    from fgrad.lower import kernel as K
    x, s = K.Var("x"), K.Var("s")
    assert (x // 26) * 26 + x % 26 == x
    assert x % 26 + (x // 26) * 26 == x
    assert (s * 4 + (x // 26) * 26) + x % 26 == s * 4 + x
    t = K.Var("t")
    assert ((x // 9) * 9 + s * 288) + x % 9 == s * 288 + x        # first of the sum (a weight gradient's store)
    assert ((t + (x // 9) * 9) + s * 288) + x % 9 == (t + s * 288) + x       # in the middle
    assert ((x // 9) * 9 + s * 288) + t % 9 != s * 288 + t       # another variable's remainder
    assert (x // 26) * 25 + x % 26 != x
    for v in range(-60, 60):       # the identity the fold relies on, floored pair
        assert (v // 26) * 26 + v % 26 == v


def test_structural_text_ignores_names_but_not_structure():
    def kern(name, pa, pb, factor=2.0, n=8, alias=frozenset()):
        a, b, i = K.Param(pa, K.float32, n), K.Param(pb, K.float32, n), K.Var("i")
        return K.Kernel(name, (a, b), (K.Range(i, 0, n, (b.store(i, a[i] * factor),)),), may_alias=alias)
    text = lambda k: K.format_kernel(k, structural=True)
    assert text(kern("k1", "x", "y")) == text(kern("other", "in3", "t7"))
    assert "$0[i]" in text(kern("k1", "x", "y")) and "x[" not in text(kern("k1", "x", "y"))
    assert text(kern("k1", "x", "y")) != text(kern("k1", "y", "x", factor=3.0))
    assert text(kern("k1", "x", "y")) != text(kern("k1", "x", "y", n=9))
    assert text(kern("k1", "x", "y")) != text(kern("k1", "x", "y", alias=frozenset({"x", "y"})))
    swapped = K.Kernel("k", kern("k", "x", "y").params[::-1], kern("k", "x", "y").body)   # order matters
    assert text(swapped) != text(kern("k", "x", "y"))


def test_program_text_with_kernel_names_leaves_bodies_out():
    n = 4
    a, b, i = K.Param("a", K.float32, n), K.Param("b", K.float32, n), K.Var("i")
    kern = K.Kernel("double", (a, b), (K.Range(i, 0, n, (b.store(i, a[i] * 2.0),)),))
    x, y = K.Buffer("x", K.float32, n), K.Buffer("y", K.float32, n)
    program = K.Program("p", (x,), (y,), (K.Call(kern, (x, y)),))
    short = K.format_program(program, kernel_names={id(kern): "fgk_abc"})
    assert "fgk_abc(x, y)" in short and "kernel double" not in short
    assert "kernel double" in K.format_program(program)


def test_equal_op_requests_share_one_expression_but_distinct_constants_never_do():
    from hypothesis import given, settings, strategies as st
    from fgrad.lower import kernel_expr
    x = K.Param("x", f32, 8)[K.Var("i")]
    assert (x * 2.0 + 1.0) is (x * 2.0 + 1.0)
    # equal as Python keys, different as constants: each request gets its own expression
    assert str(x + 0.0) != str(x + (-0.0))
    assert str((x + (-0.0)).args[1]) == "-0.0:f32" and str((x + 0.0).args[1]) == "0.0:f32"
    n = K.Param("n", K.int32, 8)[K.Var("i")]
    assert (n + 1) is (n + True) or str(n + 1) == str(n + True)      # the same int32 constant 1
    b = K.Param("b", K.bool_, 8)[K.Var("i")]
    assert str(K.op("and", b, 1)) == str(K.op("and", b, True))
    with pytest.raises(ValueError, match="not an integer"):       # errors are raised every time
        n + 1.5
    with pytest.raises(ValueError, match="not an integer"):
        n + 1.5

    @settings(max_examples=60, deadline=None)
    @given(st.floats(allow_nan=True, width=32), st.sampled_from(["add", "mul", "max", "sub"]))
    def same_as_uncached(c, name):
        built = K.op(name, x, c)
        fresh = kernel_expr._build_op(name, (x, c), None)
        assert built == fresh and str(built) == str(fresh)
    same_as_uncached()


def test_a_deeply_shared_expression_prints_in_linear_size():
    """An expression whose subexpressions are each used twice unfolds to 2**n nodes (bfloat16
    rounding reads its operand five times: a chain of roundings grew so); its text names the
    large shared parts once, so it stays linear in the distinct nodes, is the same for an equal
    expression built again, and differs for a different one."""
    x, i = K.Param("x", f32, 4), K.Var("i")

    def chain(n, c):
        e = x[i]
        for _ in range(n):
            e = e * e + K.Const(c, f32)
        return e
    deep = chain(40, 1.0)
    assert K.tree_size(deep) > 2 ** 40
    text = K.format_expr(deep)
    assert text.startswith("let %0 = ") and len(text) < 20_000
    assert K.format_expr(chain(40, 1.0)) == text
    assert K.format_expr(chain(40, 2.0)) != text
    small = chain(2, 1.0)
    assert "let" not in K.format_expr(small)          # small expressions print as trees
    kern = K.Kernel("deep", (x, K.Param("y", f32, 4)), (K.Range(i, 0, 4, (K.Param("y", f32, 4).store(i, deep),)),))
    assert len(K.format_kernel(kern)) < 20_000
