"""The GPU path gives eager's results for every primitive, without a GPU: each jit-vs-eager
case (``test_jit_vs_eager.CASES``) is lowered for the GPU (``lower_program(target="gpu")``:
GPU folds, GEMMs, horizontal fusion), rendered to CUDA C, compiled for the host
(``tests/lower/cuda_host.py``: one OpenMP thread per CUDA thread, real barriers) and run
through its launch plan, then compared with eager fgrad (the NumPy definitions) to the
case's tolerance. Transcendentals here are the host's libm where a GPU has libdevice (both a
few ulp). The same programs on a GPU are the ``cuda`` tests' business."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import fgrad
from fgrad import numpy as fnp, tree
from fgrad.lower import rules  # noqa: F401 - registers the lowering rules
from fgrad.lower.cuda import render_program
from fgrad.lower.kernel import ExternCall, walk_steps
from fgrad.lower.schedule import NotLowerable, lower_program
from fgrad.transforms.jit import closure_convert
from tests.lower.cuda_host import GXX
from tests.lower.test_cuda_render import emulated_launch, execute_plan, host_library
from tests.lower.test_jit_vs_eager import (CASES, COMPOSITIONS, FALLS_BACK, FUNCTIONS, HESSIAN_OK,
                                          NO_NATIVE_DTYPES, assert_same)

TWO = settings(max_examples=max(2, settings().max_examples // 12))      # a g++ compile per example


def run_on_emulated_gpu(f, args, tmp_path):
    """The leaves of ``f(*args)`` through the GPU lowering and the CUDA C renderer, run on the
    host; None when the lowering cannot take the program (the reference path would run it) or
    the program calls LAPACK (the CUDA backend runs it on the host CPU)."""
    closed = fgrad.make_jaxpr(f)(*args)
    converted, consts = closure_convert(closed)
    try:
        program = lower_program(converted, target="gpu")
    except NotLowerable:
        return None
    if any(isinstance(s, ExternCall) for s in walk_steps(program.body)):
        return None     # calls LAPACK: the CUDA backend runs it on the host (test_lapack_lowering.py)
    _, plan = render_program(program, prefix="t_")
    launch = emulated_launch(host_library({"t": program}, tmp_path), plan.kernel_modes)
    values = [np.asarray(c) for c in consts] + [np.asarray(a) for a in tree.tree_leaves(args)]
    return execute_plan(program, plan, *values, launch=launch)


@pytest.mark.skipif(GXX is None, reason="g++ is not on PATH")
@pytest.mark.parametrize("name", sorted(n for n in CASES if n not in FALLS_BACK))
@TWO
@given(data=st.data())
def test_primitive_on_the_emulated_gpu_matches_eager(name, data, tmp_path_factory):
    with fgrad.config.override(enable_x64=data.draw(st.booleans(), label="x64")):
        f, args, ulp, _ = CASES[name](data.draw, name)
        want = f(*args)
        if {np.asarray(v).dtype for v in tree.tree_leaves((args, want))} & NO_NATIVE_DTYPES:
            return
        got = run_on_emulated_gpu(f, args, tmp_path_factory.mktemp(name))
    if got is not None:
        assert_same(got, tree.tree_leaves(want), max(ulp, 4) if ulp else 0)


ONE = settings(max_examples=max(1, settings().max_examples // 25))


@pytest.mark.skipif(GXX is None, reason="g++ is not on PATH")
@pytest.mark.parametrize("composition,fname", [
    (c, f) for c in COMPOSITIONS if c.startswith("jit(") for f in sorted(FUNCTIONS)
    if c != "jit(hessian f)" or f in HESSIAN_OK])
@ONE
@given(data=st.data())
def test_composition_on_the_emulated_gpu_matches_eager(composition, fname, data, tmp_path_factory):
    """grad, vmap, jvp, value_and_grad and hessian of elementwise, reduction, dot, conv,
    pool, indexing, cumsum, cond, fori and scan functions, as one GPU program each."""
    f, shape = FUNCTIONS[fname]
    shape = data.draw(shape, label="shape")
    if "vmap" in composition:
        shape = (data.draw(st.integers(0, 3), label="batch"),) + shape
    x = fnp.asarray(data.draw(hnp.arrays(np.float32, shape, elements=st.floats(-2, 2, width=32)), label="x"))
    _, eager = COMPOSITIONS[composition](f)
    want = eager(x)
    got = run_on_emulated_gpu(eager, (x,), tmp_path_factory.mktemp("composition"))
    if got is not None:
        assert_same(got, [np.asarray(w).reshape(np.shape(g)) for w, g in zip(tree.tree_leaves(want), got)], 64)
