"""Weak typing of Python scalars against arrays: JAX 0.10.2's results, written as constants."""
import numpy as np
import pytest

import fgrad
import fgrad.numpy as fnp
from fgrad import lax
from fgrad import nn as fnn

# (array dtype) -> results of ``x * True``, ``x * 2``, ``x * 0.5``; '*' marks a weak type.
# From jax.typeof(jnp.ones(3, dt) * s) with jax_enable_x64 off / on.
WEAK_TABLE = {
    False: {
        "bool": ["bool", "int32*", "float32*"], "uint8": ["uint8", "uint8", "float32*"],
        "int32": ["int32", "int32", "float32*"], "uint32": ["uint32", "uint32", "float32*"],
        "float16": ["float16", "float16", "float16"], "float32": ["float32", "float32", "float32"],
    },
    True: {
        "bool": ["bool", "int64*", "float64*"], "uint8": ["uint8", "uint8", "float64*"],
        "int32": ["int32", "int32", "float64*"], "int64": ["int64", "int64", "float64*"],
        "uint32": ["uint32", "uint32", "float64*"], "float16": ["float16", "float16", "float16"],
        "float32": ["float32", "float32", "float32"], "float64": ["float64", "float64", "float64"],
    },
}


def _typed(x):
    return f"{x.dtype.name}{'*' if x.aval.weak_type else ''}"


@pytest.mark.parametrize("x64", [False, True])
def test_array_times_python_scalar(x64):
    with fgrad.config.override(enable_x64=x64):
        for dt, expected in WEAK_TABLE[x64].items():
            x = fnp.ones(3, dt)
            got = [_typed(x * s) for s in (True, 2, 0.5)]
            assert got == expected, dt
            assert [_typed(s * x) for s in (True, 2, 0.5)] == expected, dt
            assert [_typed(fgrad.jit(lambda v, s=s: v * s)(x)) for s in (True, 2, 0.5)] == expected, dt


@pytest.mark.parametrize("x64", [False, True])
def test_int_times_float_then_float32_stays_float32(x64):
    with fgrad.config.override(enable_x64=x64):
        i = fnp.arange(3)
        assert (fnp.ones(3, fnp.float32) + i * 0.1).dtype == fnp.float32
        out = lax.fori_loop(0, 2, lambda i, c: c * 0.9 + i * 0.1, fnp.ones(3, fnp.float32))
        assert out.dtype == fnp.float32


def test_like_constructors_keep_a_weak_type_as_jax():
    # JAX 0.10.2: zeros_like/ones_like/full_like/empty_like of a Python number are weakly typed
    # unless a dtype is given (shape= does not matter); fgrad made them strong, so
    # nn.relu(1.5) * float16 array was float32 (JAX: float16)
    for f in (fnp.zeros_like, fnp.ones_like, fnp.empty_like):
        assert f(1.5).weak_type and f(2).weak_type and f(1.5, shape=(2,)).weak_type
        assert not f(1.5, dtype=np.float32).weak_type and not f(np.float32(1)).weak_type
    assert fnp.full_like(2, 3).weak_type and not fnp.full_like(2, 3, dtype=np.int8).weak_type
    h = np.ones(3, np.float16)
    assert (fnn.relu(1.5) * h).dtype == np.float16 and (fnn.relu6(2) * h).dtype == np.float16
    assert fgrad.jit(fnp.zeros_like)(1.5).weak_type
    # JAX's gelu is strongly typed even for a Python number
    assert not fnn.gelu(1.5).weak_type and not fnn.gelu(2, approximate=False).weak_type


def test_floor_divide_family_keeps_the_promoted_weak_type():
    # JAX 0.10.2: int8_array // 2.5, 7 // 2, divmod(True, 2) are weakly typed (like x * 2.5);
    # fgrad's select-based divmod made them strong, so (i8 // 2.5) * float16 was float32
    i8 = np.array([1, 2, 3], np.int8)
    for out in (fnp.floor_divide(i8, 2.5), fnp.remainder(i8, 2.5), fnp.fmod(i8, 2.5), *fnp.divmod(i8, 2.5)):
        assert out.dtype == np.float32 and out.weak_type
    for out in (fnp.floor_divide(7, 2), fnp.mod(7, 2), *fnp.divmod(True, 2)):
        assert out.dtype == np.int32 and out.weak_type
    assert not fnp.floor_divide(i8, 2).weak_type and fnp.floor_divide(i8, 2).dtype == np.int8
    assert (fnp.floor_divide(i8, 2.5) * np.ones(3, np.float16)).dtype == np.float16
    assert fgrad.jit(lambda x: x // 2.5)(i8).weak_type
