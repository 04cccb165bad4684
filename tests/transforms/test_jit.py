"""jit: caching, retracing, static arguments and the footguns a trace-based jit must not have."""
import threading

import numpy as np
import pytest

import fgrad
from fgrad import jit, lax, numpy as fnp, tree
from fgrad.core.array import Array


def test_jit_matches_eager():
    f = lambda x, y: fnp.tanh(x * 2 + 1) * y
    x, y = fnp.asarray(np.linspace(-1, 1, 7, dtype=np.float32)), fnp.ones(7)
    np.testing.assert_allclose(np.asarray(jit(f)(x, y)), np.asarray(f(x, y)), rtol=1e-6)


def test_python_scalar_arguments_are_traced_not_frozen():
    f = jit(lambda x, n: x * n)
    x = fnp.ones(2)
    assert np.asarray(f(x, 2)).tolist() == [2.0, 2.0]
    assert np.asarray(f(x, 3)).tolist() == [3.0, 3.0]
    assert len(f._cache) == 1  # same signature (weak int scalar), one trace


def test_new_shape_dtype_or_structure_retraces():
    traces = []

    @jit
    def f(x):
        traces.append(1)
        return fnp.sum(x)
    f(fnp.ones(3)); f(fnp.ones(3)); f(fnp.ones(4)); f(fnp.ones(4, dtype=np.int32))
    assert len(traces) == 3
    g = jit(lambda t: t[0] + t[1])
    assert float(g((1.0, 2.0))) == 3.0
    assert np.asarray(g([fnp.ones(2), fnp.ones(2)])).tolist() == [2.0, 2.0]


def test_static_argnums_and_argnames():
    traces = []

    @fgrad.jit(static_argnums=1, static_argnames="mode")
    def f(x, n, mode="sum"):
        traces.append((n, mode))
        out = x
        for _ in range(n):  # Python control flow on a static value
            out = out * 2
        return fnp.sum(out) if mode == "sum" else out
    x = fnp.ones(2)
    assert float(f(x, 2)) == 8.0
    assert float(f(x, 3)) == 16.0
    assert np.asarray(f(x, 1, mode="raw")).tolist() == [2.0, 2.0]
    assert float(f(x, 2)) == 8.0
    assert len(traces) == 3


def test_unhashable_static_argument_is_a_clear_error():
    f = jit(lambda x, cfg: x, static_argnums=1)
    with pytest.raises(ValueError, match="hashable"):
        f(fnp.ones(2), [1, 2])


def test_branching_on_traced_argument_points_at_static_argnums():
    @jit
    def f(x, flag):
        return x if flag else -x
    with pytest.raises(fgrad.ConcretizationError, match="static_argnums"):
        f(fnp.ones(2), True)


def test_closure_over_array_is_a_constant():
    w = fnp.asarray(np.array([1.0, 2.0], np.float32))
    f = jit(lambda x: x * w)
    assert np.asarray(f(fnp.ones(2))).tolist() == [1.0, 2.0]


def test_non_array_output_names_key_path():
    with pytest.raises(TypeError, match=r"\['name'\]"):
        jit(lambda x: {"name": "loss", "value": x})(fnp.ones(1))


def test_jit_of_grad_and_grad_of_jit_agree():
    f = lambda x: fnp.sum(fnp.sin(x) * x)
    x = fnp.asarray(np.linspace(0, 1, 5, dtype=np.float32))
    want = np.asarray(fgrad.grad(f)(x))
    np.testing.assert_allclose(np.asarray(jit(fgrad.grad(f))(x)), want, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(fgrad.grad(jit(f))(x)), want, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(jit(fgrad.grad(jit(f)))(x)), want, rtol=1e-6)


def test_vmap_of_jit_and_jit_of_vmap_agree():
    f = lambda x: fnp.sum(fnp.tanh(x))
    xs = fnp.asarray(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32))
    want = np.tanh(np.asarray(xs)).sum(1)
    np.testing.assert_allclose(np.asarray(fgrad.vmap(jit(f))(xs)), want, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(jit(fgrad.vmap(f))(xs)), want, rtol=1e-5)


def test_second_derivative_through_jit():
    f = jit(lambda x: fnp.sin(x) * x)
    got = fgrad.grad(fgrad.grad(f))(fnp.asarray(1.0))
    np.testing.assert_allclose(float(got), -np.sin(1.0) + 2 * np.cos(1.0), rtol=1e-5)


def test_jit_inside_grad_closing_over_tracer_is_not_cached_stale():
    def outer(a):
        inner = jit(lambda x: x * a)
        return fnp.sum(inner(fnp.ones(3)))
    assert float(fgrad.grad(outer)(2.0)) == 3.0
    assert float(fgrad.grad(outer)(5.0)) == 3.0


def test_nested_jit_inlines():
    inner = jit(lambda x: fnp.sin(x))
    closed = fgrad.make_jaxpr(jit(lambda x: inner(x) * 2))(fnp.ones(2))
    assert [e.primitive.name for e in closed.eqns] == ["sin", "mul"]


def test_grad_of_jit_has_no_dead_equations():
    closed = fgrad.make_jaxpr(fgrad.grad(jit(lambda x: fnp.sum(fnp.sin(x) * x))))(fnp.ones(3))
    inner = closed.eqns[0].params["jaxpr"]
    assert "reduce_sum" not in str(inner)  # the primal loss is not needed for the gradient


def test_thread_safe_cache():
    f = jit(lambda x, k: x * k)
    results, errors = {}, []

    def work(k):
        try:
            for _ in range(20):
                results[k] = float(fnp.sum(f(fnp.ones(4), float(k))))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    assert results == {k: 4.0 * k for k in range(4)}


def test_debug_logging_explains_cache_miss(capsys):
    f = jit(lambda x: x + 1)
    with fgrad.config.override(debug=1):
        f(fnp.ones(2))
        f(fnp.ones(3))
    out = capsys.readouterr().out
    assert "first call" in out
    assert "changed from f32[2] to f32[3]" in out


def test_raw_numpy_constants_of_64_bit_dtypes_reach_the_program_in_its_dtypes():
    """A lax-level op closing over an int64/float64 NumPy array (64-bit off): the program's
    constant is int32/float32, and jit gives what eager gives."""
    from fgrad import lax
    ids = np.array([1, 0, 1, 3])                       # int64
    scale = np.array([1.5, 2.5, 3.5, 4.5])             # float64
    x = fnp.arange(4.0)
    f = lambda x: fgrad.ops.segment_sum(lax.mul(x, scale), ids, num_segments=4)
    np.testing.assert_array_equal(np.asarray(fgrad.jit(f)(x)), np.asarray(f(x)))
    np.testing.assert_array_equal(np.asarray(fgrad.jit(f)(x)), [2.5, 7.0, 0.0, 13.5])


def test_the_cached_dispatch_fast_path_keeps_every_rule_of_the_slow_one():
    """Calls with Arrays only take a shortcut once their program has run; it must give the same
    results, step aside under disable_jit and transforms, and survive dropped executables."""
    calls = []

    def f(x, y):
        calls.append(1)                      # counts traces (and disable_jit's Python runs)
        return x * 2 + y, (x - y).sum()

    jf = fgrad.jit(f)
    x, y = fnp.arange(4.0), fnp.ones(4)
    first = jf(x, y)
    second = jf(x, y)                         # the fast path
    assert len(calls) == 1
    for a, b in zip(tree.tree_leaves(first), tree.tree_leaves(second)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert isinstance(second, tuple) and type(second[0]) is Array
    with fgrad.disable_jit():
        jf(x, y)
    assert len(calls) == 2                    # ran as Python, not through the shortcut
    g = fgrad.grad(lambda x: jf(x, y)[1])(x)  # tracers: the slow path binds jit_p
    np.testing.assert_array_equal(np.asarray(g), np.ones(4))
    fgrad.clear_caches()
    np.testing.assert_array_equal(np.asarray(jf(x, y)[0]), np.asarray(first[0]))
    np.testing.assert_array_equal(np.asarray(jf(x, fnp.zeros(4))[0]), np.arange(4.0) * 2)


def test_the_fast_path_gives_read_only_results_and_takes_non_contiguous_values():
    """Its outputs are frozen like every Array's; an Array whose value is a strided view (an
    eager transpose can make one) falls back to the usual call, which copies it."""
    from fgrad.core.types import ShapedArray
    jf = fgrad.jit(lambda x: x * 2 + 1)
    base = np.arange(12, dtype=np.float32).reshape(3, 4)
    square = fnp.asarray(np.arange(16, dtype=np.float32).reshape(4, 4))
    jf(square), jf(square)
    out = jf(square)
    assert not np.asarray(out).flags.writeable
    with pytest.raises(ValueError):
        np.asarray(out)[0, 0] = 5.0
    view = np.arange(16, dtype=np.float32).reshape(4, 4).T
    strided = Array._from_numpy(view, ShapedArray((4, 4), np.dtype(np.float32)))
    assert not strided._value.flags.c_contiguous
    np.testing.assert_array_equal(np.asarray(jf(strided)), view * 2 + 1)
    np.testing.assert_array_equal(np.asarray(fgrad.jit(lambda x: x - 1)(fnp.asarray(base))), base - 1)


def test_eager_views_are_made_contiguous_once_then_take_the_fast_path(monkeypatch):
    """``fnp.ones`` is a broadcast view (stride 0), ``.T`` a strided one: the first jitted call
    keeps a contiguous copy as the Array's value, so later calls neither copy it nor leave the
    cached-dispatch path (``CpuExecutable.__call__`` is the usual path; the fast one skips it)."""
    from fgrad.backends.cpu import CpuExecutable
    ones, square = fnp.ones((3, 4)), fnp.asarray(np.arange(16.0, dtype=np.float32).reshape(4, 4)).T
    assert not ones._value.flags.c_contiguous and not square._value.flags.c_contiguous
    jf = fgrad.jit(lambda a, b: a * 2.0 + b[:3].sum())
    first = np.asarray(jf(ones, square))
    assert ones._value.flags.c_contiguous and not ones._value.flags.writeable
    assert square._value.flags.c_contiguous
    calls = []
    original = CpuExecutable.__call__
    monkeypatch.setattr(CpuExecutable, "__call__", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    np.testing.assert_array_equal(np.asarray(jf(ones, square)), first)
    assert calls == []
    np.testing.assert_array_equal(first, 2.0 + np.arange(16.0).reshape(4, 4).T[:3].sum())


def test_pytree_static_and_numpy_arguments_take_the_native_call_once_run(monkeypatch):
    """Calls outside the Arrays-only shortcut (pytrees, static arguments, NumPy leaves) also
    skip ``CpuExecutable.__call__`` once their program has run, with read-only results; a
    strided NumPy leaf still goes through it (the wrapper refuses it) and is copied."""
    from fgrad.backends.cpu import CpuExecutable
    params = {"w": fnp.asarray(np.arange(4.0, dtype=np.float32)), "b": fnp.asarray(np.ones(4, np.float32))}
    step = fgrad.jit(lambda p, x, n: (p["w"] * x + p["b"]) * n, static_argnums=2)
    x = np.linspace(0, 1, 4).astype(np.float32)
    expected = (np.arange(4.0) * x + 1.0) * 3
    np.testing.assert_allclose(np.asarray(step(params, x, 3)), expected, rtol=1e-6)
    calls = []
    original = CpuExecutable.__call__
    monkeypatch.setattr(CpuExecutable, "__call__", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    out = step(params, x, 3)
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-6)
    assert calls == [] and not np.asarray(out).flags.writeable
    strided = np.linspace(0, 1, 8).astype(np.float32)[::2]
    np.testing.assert_allclose(np.asarray(step(params, strided, 3)), (np.arange(4.0) * strided + 1.0) * 3, rtol=1e-6)
    assert calls == [1]


def test_numpy_arguments_take_the_cached_dispatch_shortcut(monkeypatch):
    """Plain NumPy arguments of a dtype fgrad keeps (float32, int32, bool...) take the same
    shortcut as Arrays once the program has run (3-4 µs instead of 12 per call); a float64
    one (narrowed to float32 while 64-bit is off), a strided one, or one traced under another
    x64 setting never reaches a program built for other values."""
    from fgrad.transforms import jit as jit_module
    jf = fgrad.jit(lambda x, n: x * 2 + n)
    x, n = np.arange(6, dtype=np.float32), np.array(3, np.int32)
    np.testing.assert_array_equal(np.asarray(jf(x, n)), x * 2 + 3)
    slow = []
    original = jit_module._run_eager
    monkeypatch.setattr(jit_module, "_run_eager", lambda *a: slow.append(1) or original(*a))
    out = jf(x, n)
    assert slow == [] and type(out) is Array and out.dtype == np.float32
    x[0] = 100.0                                   # the result is the program's own buffer
    np.testing.assert_array_equal(np.asarray(out), np.arange(6) * 2 + 3)
    wide = np.arange(6, dtype=np.float64)
    got = jf(wide, n)
    assert got.dtype == np.float32 and slow == [1]
    np.testing.assert_array_equal(np.asarray(got), np.arange(6) * 2 + 3)
    strided = np.arange(12, dtype=np.float32)[::2]
    np.testing.assert_array_equal(np.asarray(jf(strided, n)), strided * 2 + 3)
    with fgrad.config.override(enable_x64=True):
        got64 = jf(wide, np.array(3, np.int64))
        assert got64.dtype == np.float64
        jf(wide, np.array(3, np.int64))
    got = jf(wide, np.array(3, np.int64))
    assert got.dtype == np.float32
    with pytest.raises(TypeError, match="not a valid fgrad array type|does not support dtype"):
        jf(np.array(["a"] * 6), n)


def test_the_native_wrapper_is_one_loop_whatever_the_argument_count():
    """The wrapper checks and passes its arrays in loops: a step of a thousand parameter arrays
    gets no bigger a wrapper than a step of four (unrolled, it was most of a deep model's entry
    compile time: 0.68 s of LLVM for a 12-layer GPT's 906 arrays)."""
    from fgrad.backends import native_call
    from fgrad.lower import llvm_ir as ir
    from fgrad.lower.llvm import ENTRY, PTR, VOID
    if native_call.LAYOUT is None:
        pytest.skip("no native wrapper in this process (unexpected ndarray layout)")

    def wrapper_text(nargs):
        module = ir.Module("m")
        ir.Function(module, ir.FunctionType(VOID, [PTR]), ENTRY)
        native_call.add_wrapper(module, nargs, range(2, nargs - 1))
        return str(module)
    small, large = wrapper_text(4), wrapper_text(1000)
    assert len(large) - len(small) < 40     # only the numbers in it are longer


def test_a_program_of_many_arrays_takes_the_native_call_and_checks_each():
    """Three hundred inputs and a hundred and fifty outputs through the native wrapper: right
    results, every output read-only, and a strided array in the last position refused by the
    wrapper (the usual call copies it) rather than read as if contiguous."""
    from fgrad.backends.cpu import CpuExecutable
    step = fgrad.jit(lambda xs: [a * 2 + b for a, b in zip(xs[::2], xs[1::2])])
    xs = [np.full(3, k, np.float32) for k in range(300)]
    expected = [np.full(3, 2 * k + k + 1, np.float32) for k in range(0, 300, 2)]
    step(xs)
    calls = []
    original = CpuExecutable.__call__
    try:
        CpuExecutable.__call__ = lambda self, *a, **k: calls.append(1) or original(self, *a, **k)
        outs = step(xs)
        assert calls == []
        for out, want in zip(outs, expected):
            np.testing.assert_array_equal(np.asarray(out), want)
            assert not np.asarray(out).flags.writeable
        xs[-1] = np.full(6, 299, np.float32)[::2]
        outs = step(xs)
        assert calls == [1]
        np.testing.assert_array_equal(np.asarray(outs[-1]), expected[-1])
    finally:
        CpuExecutable.__call__ = original


def test_the_native_wrapper_refuses_arguments_it_cannot_run_on():
    """The program's Python entry point returns False, having run nothing, for a wrong count,
    a non-ndarray, an ndarray subclass or a strided array; None after running."""
    from fgrad.compile import executable_for
    from fgrad.transforms.jit import closure_convert
    converted, _ = closure_convert(fgrad.make_jaxpr(lambda x: x + 1)(fnp.ones(4)))
    exe = executable_for(converted)
    call = exe._code.call_objects
    if call is None:
        pytest.skip("no native wrapper in this process (unexpected ndarray layout)")
    x, out = np.arange(4, dtype=np.float32), np.zeros(4, np.float32)
    arena = exe._arena
    assert call(x, out, arena) is None
    np.testing.assert_array_equal(out, x + 1)
    assert out.flags.writeable                      # the call for out= leaves the outputs alone
    out[:] = -1

    class Sub(np.ndarray):
        pass
    for bad in [(x, out), (x, out, arena, arena), (list(x), out, arena), (x, out.view(Sub), arena),
                (np.arange(8, dtype=np.float32)[::2], out, arena)]:
        assert call(*bad) is False
    np.testing.assert_array_equal(out, -1)
    sub_out = np.zeros(4, np.float32).view(Sub)
    exe(x, out=[sub_out])                           # the usual call passes pointers instead
    np.testing.assert_array_equal(np.asarray(sub_out), x + 1)
    np.testing.assert_array_equal(exe(x)[0], x + 1)


def test_donating_functions_never_take_the_shortcut():
    jf = fgrad.jit(lambda x: x + 1, donate_argnums=0)
    x = fnp.arange(3.0)
    y = jf(x)
    z = jf(y)
    np.testing.assert_array_equal(np.asarray(z), [2.0, 3.0, 4.0])


def test_a_chain_of_bfloat16_roundings_compiles():
    """Each bfloat16 result is rounded by an expression that reads its operand five times; a
    chain of eight such steps in one fused kernel used to print (for its cache key) as a tree
    of 5**8 nodes and never finished compiling. It compiles and matches the eager result."""
    import ml_dtypes
    bf16 = np.dtype(ml_dtypes.bfloat16)
    x = fnp.asarray(np.linspace(0.1, 0.9, 64).astype(bf16))

    def f(v):
        acc = v
        for k in range(8):
            wide = lax.convert_element_type(acc, np.float32) * np.float32(0.5 + k / 100)
            acc = lax.convert_element_type(wide + lax.convert_element_type(v, np.float32), bf16)
        return acc
    np.testing.assert_array_equal(np.asarray(fgrad.jit(f)(x)).astype(np.float32), np.asarray(f(x)).astype(np.float32))
