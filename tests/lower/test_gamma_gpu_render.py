"""The gamma-family primitives lowered for the GPU: their decompositions (a while loop over
whole arrays for the incomplete functions) render to CUDA C that nvcc compiles, and that C,
compiled for the host with g++ and launched by emulation, computes eager fgrad's values."""
from __future__ import annotations

import numpy as np
import pytest

import fgrad.numpy as fnp
from fgrad import lax
from fgrad.config import config
from fgrad.lower.cuda import render_program
from fgrad.lower.interpret import run_program
from tests.lower.cuda_host import GXX
from tests.lower.test_cuda_render import (
    NVCC, emulated_launch, execute_plan, host_library, jitted_program, nvcc_compile,
)


def _cases():
    rng = np.random.default_rng(0)
    x = rng.uniform(-6, 12, 37)
    a, u = rng.uniform(0.1, 30, 37), rng.uniform(0, 1, 37)
    cases = {}
    for dtype in (np.float32, np.float64):
        t = np.dtype(dtype).name
        xs, as_, us = (fnp.asarray(v.astype(dtype)) for v in (x, a, u))
        cases[f"lgamma_{t}"] = (lax.lgamma, (xs,))
        cases[f"digamma_{t}"] = (lax.digamma, (xs,))
        cases[f"igamma_{t}"] = (lax.igamma, (as_, as_ * us * 2))
        cases[f"betainc_{t}"] = (lax.betainc, (as_, as_[::-1], us))
    cases["polygamma_float64"] = (lambda v: lax.polygamma(fnp.full_like(v, 2.0), v), (fnp.asarray(x),))
    return cases


def _programs():
    programs, inputs, eager = {}, {}, {}
    with config.override(enable_x64=True):
        for name, (f, args) in _cases().items():
            program, consts = jitted_program(f, *args)
            programs[name] = program
            inputs[name] = [np.asarray(c) for c in consts] + [np.asarray(v) for v in args]
            eager[name] = np.asarray(f(*args))
    return programs, inputs, eager


@pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH")
def test_the_rendered_programs_compile_with_nvcc():
    programs, _, _ = _programs()
    nvcc_compile(programs)


@pytest.mark.skipif(GXX is None, reason="g++ is not on PATH")
def test_the_rendered_programs_compute_eager_values(tmp_path):
    programs, inputs, eager = _programs()
    launch = host_library(programs, tmp_path)
    for name, program in programs.items():
        _, plan = render_program(program, prefix=f"{name}_")
        (got,) = execute_plan(program, plan, *inputs[name], launch=emulated_launch(launch, plan.kernel_modes))
        (interpreted,) = run_program(program, *inputs[name])
        rtol = 1e-12 if "float64" in name else 2e-7
        np.testing.assert_allclose(got, eager[name], rtol=rtol, atol=1e-300, err_msg=name)
        np.testing.assert_allclose(interpreted, eager[name], rtol=rtol, atol=1e-300, err_msg=name)
