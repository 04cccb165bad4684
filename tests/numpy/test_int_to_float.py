"""Which float an integer or bool array computes in, as JAX 0.10.2: float32 for 32 bits or
fewer and float64 for 64-bit integers, with 64-bit enabled too; a Python scalar (weakly typed)
the default float. Recorded from JAX (sin, x / x, mean, sqrt, var, x / 2, x * 1.5)."""
from __future__ import annotations

import numpy as np
import pytest

import fgrad
from fgrad import numpy as fnp

#: dtype -> results' dtypes of (sin, x / x, mean, sqrt, var, x / 2, x * 1.5) under 64-bit, from JAX
JAX_X64 = {
    "bool": ["float32"] * 5 + ["float64", "float64"],
    **{d: ["float32"] * 6 + ["float64"] for d in ("int8", "int16", "int32", "uint8", "uint16", "uint32")},
    **{d: ["float64"] * 7 for d in ("int64", "uint64")},
}


@pytest.mark.parametrize("name", sorted(JAX_X64))
def test_int_arrays_compute_in_jaxs_float(name):
    with fgrad.config.override(enable_x64=True):
        x = fnp.asarray(np.array([1, 0, 1], name))
        got = [fnp.sin(x), x / x, fnp.mean(x), fnp.sqrt(x), fnp.var(x), x / 2, x * 1.5]
        assert [np.asarray(g).dtype.name for g in got] == JAX_X64[name]
        assert np.asarray(fgrad.jit(fnp.sin)(x)).dtype.name == JAX_X64[name][0]
        assert np.asarray(fnp.sin(3)).dtype == np.float64          # a Python scalar: the default float
    x = fnp.asarray(np.array([1, 2], np.int32))
    assert fnp.sin(x).dtype == np.float32 and (x / x).dtype == np.float32      # 64-bit off
