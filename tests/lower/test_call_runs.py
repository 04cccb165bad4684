"""Runs of consecutive kernel calls written as a table that one loop of the entry walks.

The CPU backend compiles each distinct kernel on its own and the entry calls them through a
table of function pointers; a run of ``CALL_RUN_MIN`` or more calls becomes data (kernel slot,
argument count, where each argument lives), so the entry's code stays the same size however
many call sites a program has. These tests check the results against the interpreter for
every kind of argument (program inputs, outputs, constants, arena temporaries), several
argument counts, runs inside program loops, and that the entry's code does not grow.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fgrad.backends import cpu
from fgrad.lower import kernel as K
from fgrad.lower.interpret import run_program
from fgrad.lower.llvm import CALL_RUN_MIN, CALL_RUNNER, render_program

f32, i32 = K.float32, K.int32
N = 8


def _axpy() -> K.Kernel:
    """out = 2 * a + b (three params)."""
    a, b, out, i = K.Param("a", f32, N), K.Param("b", f32, N), K.Param("out", f32, N), K.Var("i")
    return K.Kernel("axpy", (a, b, out), (K.Range(i, 0, N, (out.store(i, a[i] * 2.0 + b[i]),)),))


def _negate() -> K.Kernel:
    """out = -a (two params)."""
    a, out, i = K.Param("a", f32, N), K.Param("out", f32, N), K.Var("i")
    return K.Kernel("negate", (a, out), (K.Range(i, 0, N, (out.store(i, -a[i]),)),))


def _iota() -> K.Kernel:
    """out[i] = i (one param)."""
    out, i = K.Param("out", f32, N), K.Var("i")
    return K.Kernel("iota", (out,), (K.Range(i, 0, N, (out.store(i, K.cast(i, f32)),)),))


def _chain(ops: list[int], x: K.Buffer, c: K.Buffer, y: K.Buffer) -> list[K.Call]:
    """Calls applying ``ops`` (0: axpy with the constant, 1: negate, 2: axpy with a fresh iota)
    from input ``x`` into output ``y`` through arena temporaries."""
    kernels = (_axpy(), _negate(), _iota())
    calls, current = [], x
    for k, op in enumerate(ops):
        target = y if k == len(ops) - 1 else K.Buffer(f"t{k}", f32, N)
        if op == 0:
            calls.append(K.Call(kernels[0], (current, c, target)))
        elif op == 1:
            calls.append(K.Call(kernels[1], (current, target)))
        else:
            ramp = K.Buffer(f"r{k}", f32, N)
            calls += [K.Call(kernels[2], (ramp,)), K.Call(kernels[0], (current, ramp, target))]
        current = target
    return calls


def _program(ops: list[int], name: str = "chain") -> K.Program:
    x, y, c = K.Buffer("x", f32, N), K.Buffer("y", f32, N), K.Buffer("c", f32, N)
    constants = {c: np.linspace(-1, 1, N).astype(np.float32)}
    return K.Program(name, (x,), (y,), tuple(_chain(ops, x, c, y)), constants)


def _entry_text(program: K.Program) -> str:
    target = cpu.host_target()
    symbols = {id(k): cpu.kernel_symbol(k, target) for k in K.kernels_of(program)}
    return str(render_program(program, target, symbols=symbols).module)


def _function(text: str, name: str) -> str:
    match = re.search(rf'define [^\n]*@"{name}"\(.*?\n}}', text, re.S)
    assert match, f"no function {name} in the module"
    return match.group(0)


@settings(deadline=None, max_examples=15)
@given(st.lists(st.integers(0, 2), min_size=1, max_size=12),
       st.lists(st.floats(-4, 4, width=32), min_size=N, max_size=N))
def test_call_runs_compute_what_the_interpreter_does(ops, xs):
    program = _program(ops)
    x = np.asarray(xs, np.float32)
    expected = run_program(program, x)
    (got,) = cpu.compile_program(program)(x)
    np.testing.assert_array_equal(got, expected[0])


def test_a_run_inside_a_program_loop_runs_each_iteration():
    x, y, c = K.Buffer("x", f32, N), K.Buffer("y", f32, N), K.Buffer("c", f32, N)
    step = _chain([0, 1, 0, 1], y, c, y)            # y <- -(2 * -(2y + c) + c), five times
    copy = K.Call(_negate(), (x, y))
    program = K.Program("looped", (x,), (y,), (copy, K.Loop(5, tuple(step))),
                        {c: np.full(N, 0.5, np.float32)})
    xs = np.arange(N, dtype=np.float32)
    (got,) = cpu.compile_program(program)(xs)
    np.testing.assert_array_equal(got, run_program(program, xs)[0])


def test_short_runs_are_plain_calls_and_long_ones_a_table():
    short = _entry_text(_program([1] * (CALL_RUN_MIN - 1)))
    assert CALL_RUNNER not in short
    long = _entry_text(_program([1] * CALL_RUN_MIN))
    assert f'call void @"{CALL_RUNNER}"' in long


def test_the_entry_code_does_not_grow_with_the_number_of_calls():
    sizes = []
    for calls in (5, 50, 500):
        text = _entry_text(_program([0, 1, 2] * (calls // 3 + 1)))
        main, runner = _function(text, "fgrad_main"), _function(text, CALL_RUNNER)
        sizes.append((main.count("\n"), runner.count("\n")))
    assert sizes[0] == sizes[1] == sizes[2]


@pytest.mark.parametrize("debug", [0, 2])
def test_timing_builds_keep_one_counter_per_call_site(debug, monkeypatch, capsys):
    from fgrad.config import config
    monkeypatch.setattr(config, "debug", debug)
    cpu.clear_memory_cache()
    program = _program([0, 1, 0, 1, 2], name="timed")
    x = np.ones(N, np.float32)
    (got,) = cpu.compile_program(program)(x)
    np.testing.assert_array_equal(got, run_program(program, x)[0])
    if debug:
        assert "axpy" in capsys.readouterr().err
