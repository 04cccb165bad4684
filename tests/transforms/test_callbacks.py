"""Host callbacks: ``fgrad.pure_callback``, ``fgrad.experimental.io_callback``, ``fgrad.debug.print``
and ``fgrad.debug.callback`` (``fgrad.ops.callback``, lowered by ``fgrad.lower.host_callback``).

Checked: values against the Python function, eagerly and under jit with the native path (an
``ExternCall`` step of the program, no reference fallback); ``vmap`` for each ``vmap_method``
against a loop, counting the calls and the shapes the callback sees; JAX's errors under
``grad`` and callbacks wrapped in ``custom_jvp``/``custom_vjp`` differentiated against finite
differences; ``debug.print`` output and its order (scan, while, vmap, forward and backward
passes); exceptions raised in a callback surfacing from the jitted call unchanged; control
flow; dead-code elimination; the disk cache left alone; the emulated GPU's host fallback.
"""
from __future__ import annotations

import contextlib
import os
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fgrad
from fgrad import lax, numpy as fnp
from fgrad.compile import pipeline
from fgrad.compile.program_key import program_key
from fgrad.experimental import io_callback
from fgrad.lower import kernel as K
from fgrad.lower.host_callback import CALLBACK_PREFIX
from fgrad.lower.schedule import lower_program
from fgrad.transforms.jit import closure_convert
from tests.util import check_grads, native

S = fgrad.ShapeDtypeStruct




def extern_steps(f, *args) -> list[K.ExternCall]:
    converted, _ = closure_convert(fgrad.make_jaxpr(f)(*args))
    program = lower_program(converted, target="cpu")
    return [s for s in K.walk_steps(program.body) if isinstance(s, K.ExternCall)]


class Recorder:
    """A Python function that counts its calls and the shapes it was called on."""

    def __init__(self, fn):
        self.fn, self.shapes = fn, []

    def __call__(self, *args):
        self.shapes.append(tuple(np.shape(a) for a in args))
        return self.fn(*args)


# --- values, eagerly and compiled --------------------------------------------------------------------

def host_poly(x, y):
    return (np.sin(x) * y + 1.0).astype(x.dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.float16, np.bool_])
def test_pure_callback_values_eager_and_jit_native(dtype):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((3, 4)) * 3).astype(dtype)
    fn = lambda a: np.flip(a, 0).copy()
    f = lambda a: fgrad.pure_callback(fn, S(a.shape, a.dtype), a)
    want = fn(x)
    np.testing.assert_array_equal(np.asarray(f(fnp.asarray(x))), want)
    with native():
        got = fgrad.jit(f)(fnp.asarray(x))
    assert got.dtype == dtype
    np.testing.assert_array_equal(np.asarray(got), want)


def test_jit_calls_the_callback_inside_the_native_program():
    x = fnp.ones((2, 3))
    f = lambda a: fgrad.pure_callback(host_poly, S((2, 3), np.float32), a * 2, a) - 1
    steps = extern_steps(f, x)
    assert len(steps) == 1 and steps[0].routine.startswith(CALLBACK_PREFIX) and steps[0].returns_status
    assert len(steps[0].args) == 3        # two operands, one result
    with native():
        got = fgrad.jit(f)(x)
    np.testing.assert_allclose(np.asarray(got), host_poly(np.full((2, 3), 2, np.float32), np.ones((2, 3))) - 1,
                               rtol=1e-6)


def test_pytrees_kwargs_and_several_results():
    def fn(pair, scale=None):
        a, b = pair
        return {"sum": a + b * scale, "n": np.array(a.size, np.int32)}
    spec = {"sum": S((3,), np.float32), "n": S((), np.int32)}
    f = lambda a, b: fgrad.pure_callback(fn, spec, (a, b), scale=fnp.float32(2.0))
    a, b = fnp.arange(3.0), fnp.ones(3)
    for g in (f, fgrad.jit(f)):
        out = g(a, b)
        np.testing.assert_allclose(np.asarray(out["sum"]), [2.0, 3.0, 4.0])
        assert int(out["n"]) == 3 and out["n"].dtype == np.int32


def test_callback_operands_are_read_only_and_python_scalars_are_narrowed():
    seen = []

    def fn(a):
        seen.append(a.flags.writeable)
        with pytest.raises(ValueError, match="read-only"):
            a[0] = 5.0
        return 1.0                                       # a Python float for a float32 result
    f = lambda a: fgrad.pure_callback(fn, S((), np.float32), a)
    x = fnp.zeros(2)
    assert float(f(x)) == 1.0 and float(fgrad.jit(f)(x)) == 1.0
    assert seen == [False, False]
    np.testing.assert_array_equal(np.asarray(x), [0.0, 0.0])


def test_wrong_results_raise_naming_expected_and_got():
    x = fnp.ones(3)
    for g in (lambda f: f, fgrad.jit):
        with pytest.raises(RuntimeError, match=r"shape for return value #0: expected \(3,\), got \(2,\)"):
            g(lambda a: fgrad.pure_callback(lambda v: v[:2], S((3,), np.float32), a))(x)
        with pytest.raises(RuntimeError, match="dtype for return value #0: expected float32, got int32"):
            g(lambda a: fgrad.pure_callback(lambda v: v.astype(np.int32), S((3,), np.float32), a))(x)
        with pytest.raises(RuntimeError, match="returned 1 arrays, expected 2"):
            g(lambda a: fgrad.pure_callback(lambda v: v, (S((3,), np.float32),) * 2, a))(x)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="vmap_method must be one of"):
        fgrad.pure_callback(np.sin, S((), np.float32), 1.0, vmap_method="loop")
    with pytest.raises(TypeError, match="must be callable"):
        fgrad.pure_callback(3, S((), np.float32), 1.0)
    with pytest.raises(TypeError, match="ShapeDtypeStruct"):
        fgrad.pure_callback(np.sin, (2,), 1.0)
    with pytest.raises(ValueError, match="64-bit"):          # (ShapeDtypeStruct narrows float64 itself)
        fgrad.pure_callback(np.sin, np.zeros((), np.float64), 1.0)
    with pytest.raises(TypeError, match="not an array"):
        fgrad.pure_callback(np.sin, S((), np.float32), "text")


# --- vmap ------------------------------------------------------------------------------------------------

def batched_sum(x, y):
    """``x + y`` with ``y`` aligned on ``x``'s leading axes (a batched ``y`` has fewer axes)."""
    y = np.reshape(y, np.shape(y) + (1,) * (np.ndim(x) - np.ndim(y))) if np.ndim(y) else y
    return (x + y).astype(np.float32)


@pytest.mark.parametrize("method, calls, shapes", [
    ("sequential", 4, ((3,), ())),
    ("sequential_unrolled", 4, ((3,), ())),
    ("expand_dims", 1, ((4, 3), (1,))),
    ("broadcast_all", 1, ((4, 3), (4,))),
    ("legacy_vectorized", 1, ((4, 3), ())),
])
@pytest.mark.parametrize("compiled", [False, True])
def test_vmap_methods_against_a_loop(method, calls, shapes, compiled):
    rng = np.random.default_rng(1)
    xs = rng.standard_normal((4, 3)).astype(np.float32)
    y = np.float32(0.5)
    rec = Recorder(batched_sum)

    def f(x, y):
        return fgrad.pure_callback(rec, S(x.shape, x.dtype), x, y, vmap_method=method)
    g = fgrad.vmap(f, in_axes=(0, None))
    if compiled:
        with native():
            got = fgrad.jit(g)(fnp.asarray(xs), fnp.asarray(y))
    else:
        got = g(fnp.asarray(xs), fnp.asarray(y))
    want = np.stack([batched_sum(x, y) for x in xs])
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)
    assert len(rec.shapes) == calls
    assert rec.shapes[0] == shapes


@given(batch=st.integers(0, 4), shape=st.lists(st.integers(0, 3), max_size=2),
       method=st.sampled_from(["sequential", "expand_dims", "broadcast_all"]), y_batched=st.booleans())
@settings(deadline=None, max_examples=15)
def test_vmap_methods_property(batch, shape, method, y_batched):
    """Any batch size (0 included) and operand shape: the batched callback equals a loop."""
    rng = np.random.default_rng(batch)
    xs = rng.standard_normal((batch, *shape)).astype(np.float32)
    y = rng.standard_normal((batch,) if y_batched else ()).astype(np.float32)
    rec = Recorder(lambda x, y: (x * 2 - np.reshape(y, np.shape(y) + (1,) * (np.ndim(x) - np.ndim(y)))
                                 ).astype(np.float32))
    f = lambda x, y: fgrad.pure_callback(rec, S(x.shape, x.dtype), x, y, vmap_method=method)
    got = fgrad.jit(fgrad.vmap(f, in_axes=(0, 0 if y_batched else None)))(fnp.asarray(xs), fnp.asarray(y))
    want = np.stack([x * 2 - (y[i] if y_batched else y) for i, x in enumerate(xs)]) if batch else xs
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)
    assert got.shape == (batch, *shape)
    calls = batch if method == "sequential" else 1
    # a pure callback whose results are all empty need not run (the program skips it)
    assert len(rec.shapes) == (calls if batch and np.prod(shape) else 0)


def test_vmap_over_a_later_axis_and_nested_vmap_sequential():
    rec = Recorder(lambda v: np.cumsum(v).astype(np.float32))
    f = lambda v: fgrad.pure_callback(rec, S(v.shape, v.dtype), v, vmap_method="sequential")
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    got = fgrad.jit(fgrad.vmap(fgrad.vmap(f, in_axes=1), in_axes=2))(fnp.asarray(x))
    want = np.stack([np.stack([np.cumsum(x[:, j, k]) for j in range(3)]) for k in range(4)])
    np.testing.assert_allclose(np.asarray(got), want)
    assert len(rec.shapes) == 12 and rec.shapes[0] == ((2,),)


def test_vmap_without_a_method_raises():
    f = lambda v: fgrad.pure_callback(np.sin, S(v.shape, v.dtype), v)
    with pytest.raises(NotImplementedError, match="vmap_method"):
        fgrad.vmap(f)(fnp.ones((2, 3)))
    with pytest.raises(NotImplementedError, match="vmap_method"):
        fgrad.jit(fgrad.vmap(f))(fnp.ones((2, 3)))


# --- grad -------------------------------------------------------------------------------------------------

def test_pure_callback_is_not_differentiable():
    f = lambda v: fgrad.pure_callback(np.sin, S((), np.float32), v)
    with pytest.raises(ValueError, match="Pure callbacks do not support JVP.*custom_jvp"):
        fgrad.grad(f)(1.0)
    with pytest.raises(ValueError, match="Pure callbacks do not support JVP"):
        fgrad.jit(fgrad.grad(f))(1.0)
    g = lambda v: io_callback(np.sin, S((), np.float32), v)
    with pytest.raises(ValueError, match="IO callbacks do not support JVP"):
        fgrad.grad(g)(1.0)


def test_a_callback_on_a_value_without_tangent_differentiates():
    f = lambda v: v * fgrad.pure_callback(lambda c: np.float32(3.0), S((), np.float32), fgrad.lax.stop_gradient(v))
    assert float(fgrad.grad(f)(2.0)) == 3.0


def _spec(v):
    return S(np.shape(v), fnp.result_type(v))


@fgrad.custom_jvp
def host_sin(x):
    return fgrad.pure_callback(lambda v: np.sin(v), _spec(x), x, vmap_method="sequential")


@host_sin.defjvp
def _host_sin_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return host_sin(x), fgrad.pure_callback(lambda v: np.cos(v), _spec(x), x, vmap_method="sequential") * t


@fgrad.custom_vjp
def host_exp(x):
    return fgrad.pure_callback(np.exp, _spec(x), x, vmap_method="expand_dims")


host_exp.defvjp(lambda x: (host_exp(x), host_exp(x)), lambda y, g: (g * y,))


def test_custom_jvp_wrapped_callback_against_finite_differences():
    x = np.array([0.3, -1.2, 2.0])
    check_grads(lambda v: fnp.sum(host_sin(v) ** 2), (x,), order=1)
    check_grads(lambda v: fnp.sum(host_exp(v) * v), (x,), order=1, modes=("rev",))
    with native():
        got = fgrad.jit(fgrad.grad(lambda v: fnp.sum(host_sin(v))))(fnp.asarray(x, np.float32))
    np.testing.assert_allclose(np.asarray(got), np.cos(x), rtol=1e-6)
    got = fgrad.jit(fgrad.vmap(fgrad.grad(host_sin)))(fnp.asarray(x, np.float32))
    np.testing.assert_allclose(np.asarray(got), np.cos(x), rtol=1e-6)


# --- debug.print and debug.callback ------------------------------------------------------------------------

def test_debug_print_eager_and_jit(capsys):
    def f(x):
        fgrad.debug.print("x = {x}", x=x)
        fgrad.debug.print("y:", x[0] + 1, skip_format_check=True)   # no placeholders: appended
        fgrad.debug.print("{} and {name}", x[1], name="text")
        return x * 2
    x = fnp.asarray([1.0, 2.0])
    f(x)
    eager = capsys.readouterr().out
    assert eager == "x = [1. 2.]\ny: 2.0\n2.0 and text\n"
    with native():
        np.testing.assert_array_equal(np.asarray(fgrad.jit(f)(x)), [2.0, 4.0])
    assert capsys.readouterr().out == eager


def test_debug_print_format_errors_and_two_call_form(capsys):
    with pytest.raises(ValueError, match="Unused keyword arguments.*f-string"):
        fgrad.debug.print("x", x=1.0)
    with pytest.raises(ValueError, match="Unused positional"):
        fgrad.debug.print("{}", 1.0, 2.0)
    with pytest.raises(ValueError, match="Unused positional"):
        fgrad.debug.print("y:", 1.0)                   # as JAX: unless skip_format_check=True
    fgrad.debug.print(ordered=True)("two-call {}", 3)
    assert capsys.readouterr().out == "two-call 3\n"


def test_debug_print_uses_the_print_options_of_the_call(capsys):
    with np.printoptions(precision=2):
        f = fgrad.jit(lambda x: (fgrad.debug.print("{}", x), x)[1])
        f(fnp.asarray([1.23456]))
    assert capsys.readouterr().out == "[1.23]\n"


@pytest.mark.parametrize("ordered", [False, True])
def test_debug_print_in_scan_and_while_prints_every_iteration_in_order(capsys, ordered):
    def scan_body(c, x):
        fgrad.debug.print("scan c={c} x={x}", c=c, x=x, ordered=ordered)
        return c + x, c

    def while_body(c):
        fgrad.debug.print("while {}", c, ordered=ordered)
        return c + 1

    def f(xs):
        fgrad.debug.print("start", ordered=ordered)
        c, _ = lax.scan(scan_body, 0, xs)
        n = lax.while_loop(lambda i: i < c, while_body, 4)
        fgrad.debug.print("end {}", n, ordered=ordered)
        return n
    xs = fnp.asarray([1, 2, 3], dtype=np.int32)
    want = ("start\nscan c=0 x=1\nscan c=1 x=2\nscan c=3 x=3\nwhile 4\nwhile 5\nend 6\n")
    assert int(f(xs)) == 6
    assert capsys.readouterr().out == want
    with native():
        assert int(fgrad.jit(f)(xs)) == 6
    assert capsys.readouterr().out == want


def test_debug_print_under_vmap_prints_each_element(capsys):
    f = lambda x, y: (fgrad.debug.print("x={} y={}", x, y), x + y)[1]
    with native():
        fgrad.jit(fgrad.vmap(f, in_axes=(0, None)))(fnp.arange(3.0), fnp.float32(5.0))
    assert capsys.readouterr().out == "x=0.0 y=5.0\nx=1.0 y=5.0\nx=2.0 y=5.0\n"


def test_debug_print_in_forward_and_backward_passes(capsys):
    @fgrad.custom_vjp
    def f(x):
        return fnp.sin(x)

    def f_fwd(x):
        fgrad.debug.print("fwd x={}", x)
        return fnp.sin(x), x

    def f_bwd(x, g):
        fgrad.debug.print("bwd g={}", g)
        return (g * fnp.cos(x),)
    f.defvjp(f_fwd, f_bwd)

    def loss(x):
        fgrad.debug.print("loss x={}", x)
        return f(x) * 3.0
    want = "loss x=0.5\nfwd x=0.5\nbwd g=3.0\n"
    assert float(fgrad.grad(loss)(0.5)) == pytest.approx(3 * np.cos(0.5), rel=1e-6)
    assert capsys.readouterr().out == want
    with native():
        assert float(fgrad.jit(fgrad.grad(loss))(0.5)) == pytest.approx(3 * np.cos(0.5), rel=1e-6)
    assert capsys.readouterr().out == want


def test_debug_callback_gets_copies_and_static_leaves():
    seen = []
    f = fgrad.jit(lambda x: (fgrad.debug.callback(lambda tag, v: seen.append((tag, v)), "step", x * 2), x)[1])
    f(fnp.asarray([1.0, 2.0]))
    f(fnp.asarray([3.0, 4.0]))                     # the first call's array must be unchanged
    assert [t for t, _ in seen] == ["step", "step"]
    np.testing.assert_array_equal(seen[0][1], [2.0, 4.0])
    np.testing.assert_array_equal(seen[1][1], [6.0, 8.0])
    assert seen[0][1].flags.writeable and seen[0][1].flags.owndata


def test_effects_survive_dead_code_elimination_pure_callbacks_do_not():
    calls = {"pure": 0, "io": 0, "debug": 0}

    def count(name):
        def fn(*args):
            calls[name] += 1
            return np.float32(0.0)
        return fn

    def f(xs):
        fgrad.pure_callback(count("pure"), S((), np.float32), xs[0])    # unused: may be dropped
        io_callback(count("io"), S((), np.float32), xs[0])               # unused, kept
        lax.scan(lambda c, x: (fgrad.debug.callback(count("debug"), x), (c, x))[1], 0.0, xs)
        return xs * 2
    with native():
        fgrad.jit(f)(fnp.arange(3.0))
    assert calls == {"pure": 0, "io": 1, "debug": 3}


def test_effectful_callbacks_run_on_empty_arrays():
    log = []
    f = lambda x: (io_callback(lambda v: (log.append(("io", v.shape)), v)[1], S((0, 2), np.float32), x),
                   fgrad.debug.callback(lambda v: log.append(("debug", v.shape)), x))[0]
    with native():
        assert fgrad.jit(f)(fnp.zeros((0, 2))).shape == (0, 2)
    assert log == [("io", (0, 2)), ("debug", (0, 2))]


def test_io_callback_ordered_cannot_be_vmapped():
    f = lambda v: io_callback(lambda a: a, S((), np.float32), v, ordered=True)
    with pytest.raises(ValueError, match="Cannot `vmap` ordered IO callback"):
        fgrad.vmap(f)(fnp.ones(2))
    log = []
    g = lambda v: io_callback(lambda a: (log.append(float(a)), a)[1], S((), np.float32), v)
    np.testing.assert_array_equal(np.asarray(fgrad.jit(fgrad.vmap(g))(fnp.arange(3.0))), [0.0, 1.0, 2.0])
    assert log == [0.0, 1.0, 2.0]


# --- exceptions --------------------------------------------------------------------------------------------

class HostError(Exception):
    pass


def test_an_exception_in_a_callback_surfaces_from_the_jitted_call_unchanged():
    after = []

    def boom(v):
        if float(v) > 1:
            raise HostError(f"bad value {float(v)}")
        return v

    def f(x):
        y = fgrad.pure_callback(boom, S((), np.float32), x)
        fgrad.debug.callback(lambda v: after.append(float(v)), y)       # not reached after the error
        return y + 1
    with native():
        g = fgrad.jit(f)
        assert float(g(0.5)) == 1.5
    with pytest.raises(HostError, match="bad value 2.0"):
        g(2.0)
    assert after == [0.5]                               # the program stopped at the failing callback
    assert float(g(0.25)) == 1.25                        # and the next call runs normally
    with pytest.raises(HostError, match="bad value 3.0"):
        f(3.0)                                          # eagerly too


def test_an_exception_inside_a_loop_stops_the_program():
    calls = []

    def check(i):
        calls.append(int(i))
        if int(i) == 2:
            raise KeyError("stop here")
        return np.bool_(True)

    def f(n):
        # the condition itself is the callback: the loop would never end if the program went on
        return lax.while_loop(lambda i: fgrad.pure_callback(check, S((), np.bool_), i), lambda i: i + 1, n)
    with pytest.raises(KeyError, match="stop here"):
        fgrad.jit(f)(0)
    assert calls == [0, 1, 2]


def test_a_callback_may_run_another_jitted_program_and_its_errors_pass_through():
    inner = fgrad.jit(lambda v: fgrad.pure_callback(lambda a: (a + 1).astype(np.float32), S((2,), np.float32), v) * 3)
    outer = fgrad.jit(lambda v: fgrad.pure_callback(lambda a: np.asarray(inner(fnp.asarray(a))),
                                                    S((2,), np.float32), v * 2) + 1)
    np.testing.assert_array_equal(np.asarray(outer(fnp.ones(2))), [10.0, 10.0])

    def bad(a):
        raise ZeroDivisionError("inner failure")
    failing = fgrad.jit(lambda v: fgrad.pure_callback(bad, S((2,), np.float32), v))
    outer2 = fgrad.jit(lambda v: fgrad.pure_callback(lambda a: np.asarray(failing(fnp.asarray(a))),
                                                     S((2,), np.float32), v) + 1)
    with pytest.raises(ZeroDivisionError, match="inner failure"):
        outer2(fnp.ones(2))
    np.testing.assert_array_equal(np.asarray(outer(fnp.ones(2))), [10.0, 10.0])


def test_a_callback_may_call_its_own_jitted_function_recursively():
    @fgrad.jit
    def factorial(n):
        def host(k):
            return np.float32(1.0) if k <= 1 else np.float32(k * float(factorial(fnp.float32(k - 1))))
        return fgrad.pure_callback(host, S((), np.float32), n)
    assert float(factorial(fnp.float32(5.0))) == 120.0


def test_a_failing_callback_in_one_thread_leaves_another_threads_program_alone():
    import threading
    import time
    started = threading.Event()

    def slow_failure(v):
        started.set()
        time.sleep(0.05)
        raise OSError("only this thread")

    def fine(v):
        started.wait(5)                                    # runs while the other one is failing
        return v + 1
    failing = fgrad.jit(lambda v: fgrad.pure_callback(slow_failure, S((), np.float32), v))
    working = fgrad.jit(lambda v: fgrad.pure_callback(fine, S((), np.float32), v) * 2)
    results = {}

    def run(name, f):
        try:
            results[name] = float(f(fnp.float32(1.0)))
        except OSError as error:
            results[name] = error
    threads = [threading.Thread(target=run, args=("failing", failing)),
               threading.Thread(target=run, args=("working", working))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert isinstance(results["failing"], OSError) and "only this thread" in str(results["failing"])
    assert results["working"] == 4.0


# --- control flow ------------------------------------------------------------------------------------------

def test_pure_callback_inside_scan_and_cond():
    rec = Recorder(lambda c, x: (c * 0.5 + x).astype(np.float32))

    def f(xs, flag):
        def body(c, x):
            c = fgrad.pure_callback(rec, S((), np.float32), c, x)
            return c, c * 2
        c, ys = lax.scan(body, fnp.float32(1.0), xs)
        z = lax.cond(flag, lambda v: fgrad.pure_callback(np.cos, S((), np.float32), v), lambda v: -v, c)
        return c, ys, z
    xs = np.arange(4, dtype=np.float32)
    c, ys = 1.0, []
    for x in xs:
        c = np.float32(c * 0.5 + x)
        ys.append(c * 2)
    with native():
        g = fgrad.jit(f)
        got_c, got_ys, got_z = g(fnp.asarray(xs), True)
    assert len(rec.shapes) == 4
    np.testing.assert_allclose(np.asarray(got_ys), ys, rtol=1e-6)
    assert float(got_z) == pytest.approx(np.cos(c), rel=1e-6)
    assert float(g(fnp.asarray(xs), False)[2]) == pytest.approx(-c)


# --- caches --------------------------------------------------------------------------------------------------

def _cached_files(root) -> dict[str, int]:
    """Files in the disk cache by kind: ".program" (saved programs), "entry" (programs' entry
    objects), "kernel" (kernels' objects, named ``fgk_<hash>``)."""
    counts: dict[str, int] = {}
    for _, _, files in os.walk(root):
        for name in files:
            base, suffix = os.path.splitext(name)
            kind = suffix if suffix != ".o" else "kernel" if base.startswith(("fgk_", "fgg_")) else "entry"
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def test_programs_with_callbacks_are_never_cached_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("FGRAD_CACHE_DIR", str(tmp_path))
    x = fnp.ones(3)
    f = lambda a: fgrad.pure_callback(lambda v: v * 2, S((3,), np.float32), a + 1) * 3
    converted, _ = closure_convert(fgrad.make_jaxpr(f)(x))
    assert program_key(converted, "f", (), "cpu") is None          # a function in its params: no key
    fgrad.jit(lambda a: a * 7.0 - 1.0)(x)                          # the control: saved
    plain = _cached_files(tmp_path)
    assert plain.get(".program") == 1
    with native():
        np.testing.assert_array_equal(np.asarray(fgrad.jit(f)(x)), [12.0, 12.0, 12.0])
    after = _cached_files(tmp_path)
    assert after.get(".program") == 1, "a callback program was saved for warm starts"
    # its kernels are cached (they hold no callback), its entry (which names the callback) is not
    assert plain.get("entry") == 1 and after.get("entry") == 1
    assert after.get("kernel", 0) > plain.get("kernel", 0)
    converted_plain, _ = closure_convert(fgrad.make_jaxpr(lambda a: a * 7.0 - 1.0)(x))
    assert program_key(converted_plain, "f", (), "cpu") is not None


# --- the GPU (emulated): the program runs on the host -----------------------------------------------------------

from tests.backends.emulated_gpu import emulated  # noqa: F401,E402 (the fixture)


def test_on_the_emulated_gpu_a_callback_program_runs_on_the_host(emulated, capsys):
    def f(a):
        fgrad.debug.print("a = {}", a)
        return fgrad.pure_callback(lambda v: (v * 10).astype(np.float32), S((2,), np.float32), a + 1) - 1
    f = fgrad.jit(f)
    with fgrad.config.override(backend="cuda"):
        with pytest.warns(fgrad.HostFallbackWarning, match="host callback"):
            got = f(fgrad.device_put(np.array([1.0, 2.0], np.float32)))
        assert isinstance(got, fgrad.backends.cuda.CudaArray)
    np.testing.assert_array_equal(np.asarray(got), [19.0, 29.0])
    assert capsys.readouterr().out == "a = [1. 2.]\n"
    with fgrad.config.override(backend="cuda"):               # eagerly on a GPU array: no program
        x = fgrad.device_put(np.array([1.0, 4.0], np.float32))
        with warnings.catch_warnings():
            warnings.simplefilter("error", fgrad.HostFallbackWarning)
            y = fgrad.pure_callback(lambda v: np.sqrt(v), S((2,), np.float32), x)
            fgrad.debug.print("y = {}", y)
        assert isinstance(y, fgrad.backends.cuda.CudaArray) and y.device == x.device
    np.testing.assert_array_equal(np.asarray(y), [1.0, 2.0])
    assert capsys.readouterr().out == "y = [1. 2.]\n"


# --- ExternCall(returns_status=True) itself, in LLVM and in the interpreter ----------------------------------

def _stopping_program(routine: str):
    """``out = 1``; a loop of 4 calls of ``routine`` on its iteration number, each followed by
    ``out += 10``; then ``out += 100``: a routine stopping the program at iteration 2 leaves 21."""
    from fgrad.lower.kernel import Buffer, Call, Const, ExternCall, Kernel, Loop, Param, Program
    x, out, i = Buffer("x", K.float64, (1,)), Buffer("out", K.float64, (1,)), Buffer("i", K.int32, ())
    p, q = Param("p", K.float64, 1), Param("q", K.float64, 1)
    init = Kernel("init", (p, q), (q.store(0, p[0] * 0 + Const(1.0, K.float64)),))
    bump = lambda n: Kernel(f"bump{n}", (q,), (q.store(0, q[0] + Const(float(n), K.float64)),))
    step = ExternCall(routine, (i,), returns_status=True)
    return Program("stopping", (x,), (out,), (Call(init, (x, out)), Loop(4, (step, Call(bump(10), (out,))), i),
                                             Call(bump(100), (out,))))


def test_an_extern_call_with_a_status_stops_the_program(tmp_path, monkeypatch):
    import ctypes
    from fgrad.backends import cpu
    from fgrad.lower import extern
    from fgrad.lower.interpret import run_program
    monkeypatch.setenv("FGRAD_CACHE_DIR", str(tmp_path))
    seen = []

    @ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p)
    def stop_at_two(index):
        seen.append(ctypes.c_int32.from_address(index).value)
        if seen[-1] == 2:
            extern.set_pending_error(LookupError("stopped at 2"))
            return 1
        return 0
    extern.register_routine("fgrad_test_stop_at_two", lambda: ctypes.cast(stop_at_two, ctypes.c_void_p).value)
    program = _stopping_program("fgrad_test_stop_at_two")
    assert "extern fgrad_test_stop_at_two(i) or stop" in str(program)
    for run in (lambda x: run_program(program, x), cpu.compile_program(program)):
        seen.clear()
        with pytest.raises(LookupError, match="stopped at 2"):
            run(np.zeros(1))
        assert seen == [0, 1, 2]
        assert not extern.has_pending_error()
    out = np.zeros(1)
    with pytest.raises(LookupError):
        cpu.compile_program(program)(np.zeros(1), out=[out])
    assert out[0] == 21.0                    # 1, then +10 twice: the rest did not run


# --- data-parallel jit and shard ----------------------------------------------------------------------------

def test_data_parallel_jit_gives_callbacks_global_values_and_prints_once(capsys):
    from fgrad.devices import devices
    from fgrad.sharding import Mesh, NamedSharding, P, device_put
    mesh = Mesh(devices(2), ("data",))
    x = np.arange(8.0, dtype=np.float32).reshape(4, 2)
    seen = []

    logged = []

    def f(a):
        fgrad.debug.print("total {}", a.sum())
        doubled = fgrad.pure_callback(lambda v: (seen.append(v.shape), v * 2)[1], S((4, 2), np.float32), a)
        tripled = io_callback(lambda v: (logged.append(v.shape), v * 3)[1], S((4, 2), np.float32), a)
        return (a + doubled).sum(), tripled
    total, tripled = fgrad.jit(f)(device_put(x, NamedSharding(mesh, P("data"))))
    assert float(total) == 3 * x.sum()
    np.testing.assert_array_equal(np.asarray(tripled), 3 * x)
    assert capsys.readouterr().out == "total 28.0\n"              # once, the global sum
    assert seen and all(s == (4, 2) for s in seen)             # whole operands
    assert logged == [(4, 2)]                                  # an io callback runs once too


def test_debug_print_inside_shard_prints_each_block(capsys):
    from fgrad.devices import devices
    from fgrad.sharding import Mesh, P
    mesh = Mesh(devices(2), ("i",))

    def body(a):
        fgrad.debug.print("block {}", a)
        return lax.psum(fgrad.pure_callback(lambda v: v * 2, S(a.shape, a.dtype), a), "i")
    got = fgrad.jit(fgrad.shard(body, mesh, P("i"), P()))(fnp.arange(4.0))
    np.testing.assert_array_equal(np.asarray(got), [4.0, 8.0])
    assert sorted(capsys.readouterr().out.splitlines()) == ["block [0. 1.]", "block [2. 3.]"]
