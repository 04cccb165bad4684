"""complex64 and complex128 (issue 17): dtypes and promotion, values vs NumPy, AD with JAX's
convention vs recorded JAX outputs and finite differences, jit, vmap vs a Python loop.

JAX's answers (the promotion table over every dtype with weak Python int/float/complex, and
gradients) were recorded with /work/jaxenv/bin/python (JAX 0.10.2) by
scripts/record_jax_complex.py into tests/numpy/data/jax_complex.npz.
"""
from __future__ import annotations

import pathlib
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import fgrad
from fgrad import lax
from fgrad import numpy as fnp
from fgrad import random
from fgrad.compile import pipeline
from fgrad.core import dtypes
from fgrad.lower import complex_split
from fgrad.ops import special
from tests.util import check_vmap, natively

JAX = np.load(pathlib.Path(__file__).parent / "data" / "jax_complex.npz")
C64, C128, F32, F64 = (np.dtype(d) for d in (np.complex64, np.complex128, np.float32, np.float64))


def _complex_arrays(dtype, shape, magnitude=4.0, special=False):
    """Arrays of complex ``dtype``; with ``special``, parts may be inf or NaN too."""
    finite = st.floats(-magnitude, magnitude, width=32, allow_subnormal=False)   # XLA flushes subnormals
    part = finite if not special else st.one_of(finite, st.sampled_from([np.inf, -np.inf, np.nan, 0.0, -0.0]))
    return hnp.arrays(dtype, shape, elements=st.builds(complex, part, part))


def _close(got, want, rtol=2e-5, atol=2e-5, dtype=None):
    """``got`` has NumPy's (canonical) dtype, or ``dtype``, and NumPy's values (NaNs equal)."""
    got, want = np.asarray(got), np.asarray(want)
    expected = dtypes.canonicalize(want.dtype) if dtype is None else np.dtype(dtype)
    assert got.shape == want.shape and got.dtype == expected, (got.shape, got.dtype, want.shape, expected)
    np.testing.assert_allclose(got, want.astype(expected), rtol=rtol, atol=atol, equal_nan=True)


shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)


# --- dtypes and promotion -----------------------------------------------------------------------

def _typed(name):
    """A dtype name, or a weak Python scalar value standing for the weak int/float/complex type."""
    return {"int": 1, "float": 1.0, "complex": 1j}.get(name, name)


@pytest.mark.parametrize("x64", [True, False], ids=["x64", "x32"])
def test_result_type_matches_jax_on_every_pair_with_weak_types(x64):
    names = [str(n) for n in JAX["names"]]
    table = JAX["promote_x64" if x64 else "promote_x32"]
    with fgrad.config.override(enable_x64=x64):
        for i, a in enumerate(names):
            for j, b in enumerate(names):
                dtype, weak = dtypes.promote(_aval_typed(a), _aval_typed(b))
                assert dtype.name + ("*" if weak else "") == table[i, j], (a, b)
                if a not in ("int", "float", "complex") or b not in ("int", "float", "complex"):
                    assert fnp.result_type(_typed(a), _typed(b)) == np.dtype(table[i, j].rstrip("*")), (a, b)


def _aval_typed(name):
    """(dtype, weak) of a table entry, as fgrad types the value."""
    if name in ("int", "float", "complex"):
        return dtypes.python_scalar_dtype(_typed(name)), True
    return dtypes.canonicalize(name), False


@pytest.mark.parametrize("a, b, want", [
    ("complex64", "float32", C64), ("complex64", "float64", C128), ("float16", "complex64", C64),
    ("bfloat16", "complex64", C64), ("int64", "complex64", C64), ("uint8", "complex128", C128),
    ("complex64", "complex128", C128),
])
def test_array_arithmetic_promotes_as_result_type_says(a, b, want):
    with fgrad.config.override(enable_x64=True):
        x, y = fnp.ones(2, a), fnp.ones(2, b)
        assert (x + y).dtype == want == fnp.result_type(a, b) and (x * y).dtype == want


def test_python_complex_scalars_are_weak():
    assert fnp.asarray(1 + 2j).dtype == C64 and fnp.asarray(1 + 2j).weak_type
    assert (fnp.ones(2, fnp.float16) * 1j).dtype == C64                   # c* meets f16: complex64
    assert (fnp.ones(2, fnp.int32) * 1j).tolist() == [1j, 1j]
    assert (fnp.ones(2, fnp.complex64) + 2.5).dtype == C64                # a weak float gives way
    z = fnp.asarray(np.complex64(1 + 1j)) * (2 + 0j)
    assert z.dtype == C64 and not z.weak_type
    with fgrad.config.override(enable_x64=True):
        assert fnp.asarray(1j).dtype == C128 and (fnp.ones(2, fnp.complex64) * 1j).dtype == C64


def test_dtype_names_narrowing_and_queries():
    assert fnp.complex64 == np.complex64 and fnp.csingle is fnp.complex64
    assert fnp.complex128 == np.complex128 and fnp.cdouble is fnp.complex128 is fnp.complex_
    assert fnp.complex128(1 + 2j).dtype == C64                           # narrowed without x64, as JAX
    with fgrad.config.override(enable_x64=True):
        assert fnp.complex128(1 + 2j).dtype == C128
        assert fnp.asarray(np.array([1j])).dtype == C128
    assert fnp.asarray(np.array([1j])).dtype == C64
    assert fnp.isdtype(fnp.complex64, "complex floating") and fnp.isdtype(fnp.complex64, "numeric")
    assert not fnp.isdtype(fnp.complex64, "real floating") and not fnp.isdtype(fnp.float32, "complex floating")
    assert fnp.issubdtype(fnp.complex64, fnp.complexfloating) and fnp.issubdtype(fnp.complex64, fnp.inexact)
    assert not fnp.issubdtype(fnp.complex64, fnp.floating)
    assert fnp.promote_types(fnp.float64, fnp.complex64) == C64          # c128 narrowed to c64 (x32)
    assert fnp.__array_namespace_info__().default_dtypes()["complex floating"] == C64


def test_jaxpr_prints_complex_short_names():
    with fgrad.config.override(enable_x64=True):
        assert "c128[2]" in str(fgrad.make_jaxpr(lambda z: z * 2)(np.ones(2, np.complex128)))
    assert "c64[]" in str(fgrad.make_jaxpr(lambda z: z * 2)(np.complex64(1)))


def test_complex_python_conversions():
    z = fnp.asarray(np.complex64(1.5 - 2j))
    assert complex(z) == 1.5 - 2j and complex(fnp.asarray(3.0)) == 3 + 0j
    assert np.asarray(fnp.array([1j, 2])).dtype == C64 and fnp.array([1j, 2]).tolist() == [1j, 2]


# --- casts ----------------------------------------------------------------------------------------

def test_astype_complex_to_real_keeps_the_real_part_and_warns_as_jax():
    z = fnp.asarray(np.array([1.5 + 2j, -3 - 1j, 1j], np.complex64))
    with pytest.warns(DeprecationWarning, match="complex to real"):
        assert z.astype(fnp.float32).tolist() == [1.5, -3.0, 0.0]
    with pytest.warns(DeprecationWarning):
        assert z.astype(fnp.int32).tolist() == [1, -3, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert z.astype(bool).tolist() == [True, True, True]              # nonzero, as jnp.astype
        assert z.astype(fnp.complex64) is z
    with pytest.warns(np.exceptions.ComplexWarning, match="discards the imaginary part"):
        assert lax.convert_element_type(z, bool).tolist() == [True, True, False]   # lax: the real part
    with pytest.warns(np.exceptions.ComplexWarning):
        big = lax.convert_element_type(fnp.asarray(np.complex64(3e10 + 1j)), np.int32)
    assert int(big) == 2**31 - 1                                           # saturates, as floats do


@pytest.mark.parametrize("source", [np.float16, dtypes.bfloat16, np.float32, np.int32, np.uint8, np.bool_])
def test_astype_real_to_complex_matches_numpy(source):
    data = np.array([0, 1, 2.5, -3], np.float32).astype(source)
    got = fnp.asarray(data).astype(fnp.complex64)
    _close(got, data.astype(np.float32).astype(np.complex64))


# --- elementwise values vs NumPy -------------------------------------------------------------------

def _jax_sqrt(z):
    """NumPy's sqrt on an unsigned zero imaginary part: JAX's ``sqrt(-1 - 0j)`` is ``+1j``."""
    z = np.array(z)
    z.imag = np.where(z.imag == 0, 0, z.imag)
    return np.sqrt(z)


UNARY = {
    "exp": np.exp, "log": np.log, "sqrt": _jax_sqrt, "sin": np.sin, "cos": np.cos, "tan": np.tan,
    "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh, "expm1": np.expm1, "log1p": np.log1p,
    "negative": np.negative, "square": np.square, "reciprocal": np.reciprocal, "conj": np.conj,
    "conjugate": np.conjugate, "sign": np.sign, "exp2": np.exp2, "log2": np.log2, "log10": np.log10,
    "arcsin": np.arcsin, "arccos": np.arccos, "arctan": np.arctan, "arcsinh": np.arcsinh,
    "arccosh": np.arccosh, "arctanh": np.arctanh,
}
REAL_RESULT = {"real": np.real, "imag": np.imag, "abs": np.abs, "absolute": np.absolute, "angle": np.angle}


@pytest.mark.parametrize("name", sorted(UNARY) + sorted(REAL_RESULT))
@given(data=st.data())
def test_unary_functions_match_numpy(name, data):
    z = data.draw(_complex_arrays(C64, data.draw(shapes)))
    with np.errstate(all="ignore"):
        want = (UNARY.get(name) or REAL_RESULT[name])(z.astype(C128)).astype(C64 if name in UNARY else F32)
        _close(getattr(fnp, name)(fnp.asarray(z)), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["isfinite", "isinf", "isnan", "iscomplex", "isreal"])
@given(data=st.data())
def test_predicates_match_numpy_with_infinities_and_nans(name, data):
    z = data.draw(_complex_arrays(C64, data.draw(shapes), special=True))
    got = getattr(fnp, name)(fnp.asarray(z))
    np.testing.assert_array_equal(np.asarray(got), getattr(np, name)(z))
    assert got.dtype == np.bool_


def test_complex_predicates_on_real_arrays_and_objects():
    x = fnp.asarray([1.0, 2.0])
    assert fnp.iscomplex(x).tolist() == [False, False] and fnp.isreal(x).tolist() == [True, True]
    assert fnp.iscomplexobj(fnp.asarray(1j)) and not fnp.iscomplexobj(x) and fnp.isrealobj(x)
    assert fnp.real(x) is x and fnp.conj(x) is x and fnp.imag(x).tolist() == [0.0, 0.0]


def test_real_if_close_follows_numpy():
    close = fnp.asarray(np.array([1 + 1e-9j, 2 - 1e-10j], np.complex64))
    assert fnp.real_if_close(close).dtype == F32 and fnp.real_if_close(close).tolist() == [1.0, 2.0]
    far = fnp.asarray(np.array([1 + 1e-3j], np.complex64))
    assert fnp.real_if_close(far).dtype == C64
    assert fnp.real_if_close(far, tol=0.01).dtype == F32                 # tol <= 1 is absolute
    assert fnp.real_if_close(fnp.asarray([1.0])).dtype == F32
    with pytest.raises(TypeError, match="concrete"):
        fgrad.jit(fnp.real_if_close)(close)


BINARY = ["add", "subtract", "multiply", "divide", "power", "equal", "not_equal", "less", "less_equal",
          "greater", "greater_equal", "maximum", "minimum"]
_OTHER = st.sampled_from(["complex64", "float32", "int32", "complex", "float", "int"])


def _operand(data, kind, shape):
    """An operand of ``kind``: an array of a dtype, or a Python scalar (weak)."""
    if kind == "complex":
        return complex(data.draw(st.floats(-3, 3)), data.draw(st.floats(-3, 3)))
    if kind == "float":
        return data.draw(st.floats(-3, 3))
    if kind == "int":
        return data.draw(st.integers(-3, 3))
    if kind == "complex64":
        return data.draw(_complex_arrays(C64, shape, magnitude=3))
    return data.draw(hnp.arrays(kind, shape, elements=st.integers(-3, 3)))


@pytest.mark.parametrize("name", BINARY)
@given(data=st.data(), other=_OTHER)
def test_binary_functions_match_numpy(name, data, other):
    shape = data.draw(shapes)
    z = data.draw(_complex_arrays(C64, shape, magnitude=3))
    y = _operand(data, other, shape)
    swap = data.draw(st.booleans())
    args = (y, z) if swap else (z, y)
    # a weak Python scalar takes the array's dtype first (complex64 here), so round it the same way
    np_args = [np.asarray(a, C64).astype(C128) for a in args]
    with np.errstate(all="ignore"):
        want = getattr(np, name)(*np_args)
    got = getattr(fnp, name)(*[fnp.asarray(a) if isinstance(a, np.ndarray) else a for a in args])
    expected = np.bool_ if want.dtype == np.bool_ else C64
    if name == "power":
        base, exponent = np.broadcast_arrays(*np_args)
        # JAX's (XLA's) complex 0 ** y: NaN unless y is real and >= 0 (NumPy: 0 for Re y > 0)
        jax_nan = (base == 0) & ~((exponent.imag == 0) & (exponent.real >= 0))
        want = np.where(jax_nan, complex(np.nan, np.nan), want)
        finite = np.isfinite(want) & (np.abs(want) < 1e4)    # float32 overflow
        want = np.where(finite | jax_nan, want, np.asarray(got))
    _close(got, np.asarray(want), rtol=1e-4, atol=1e-4, dtype=expected)


@given(data=st.data())
def test_complex_builds_from_real_parts(data):
    shape = data.draw(shapes)
    x, y = (data.draw(hnp.arrays(F32, shape, elements=st.floats(-5, 5, width=32))) for _ in range(2))
    _close(lax.complex(fnp.asarray(x), fnp.asarray(y)), x + 1j * y.astype(C64), dtype=C64)
    with pytest.raises(TypeError, match="float32 or float64"):
        lax.complex(fnp.ones(2, fnp.float16), fnp.ones(2, fnp.float16))
    with pytest.raises(TypeError, match="complex operand"):
        lax.real(fnp.ones(2))


def test_rounding_and_clipping_reject_complex_or_follow_jax():
    z = fnp.asarray(np.array([1.5 + 2.5j], np.complex64))
    with pytest.raises(TypeError, match="complex"):
        lax.lt(z, z)
    with pytest.raises(TypeError, match="requires"):
        lax.floor(z)
    with pytest.raises(TypeError, match="requires"):
        lax.rem(z, z)


# --- reductions, contractions, indexing, shapes -----------------------------------------------------

REDUCTIONS = {"sum": np.sum, "prod": np.prod, "mean": np.mean, "var": np.var, "std": np.std}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@given(data=st.data())
def test_reductions_match_numpy(name, data):
    z = data.draw(_complex_arrays(C64, data.draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=4)), magnitude=2))
    axis = data.draw(st.sampled_from([None, 0, -1]))
    want = REDUCTIONS[name](z.astype(C128), axis=axis)
    _close(getattr(fnp, name)(fnp.asarray(z), axis=axis), want, rtol=1e-4, atol=1e-4,
           dtype=F32 if name in ("var", "std") else C64)


@given(data=st.data())
def test_cumulative_and_contractions_match_numpy(data):
    n, m = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    a = data.draw(_complex_arrays(C64, (n, m), magnitude=2))
    b = data.draw(_complex_arrays(C64, (m, n), magnitude=2))
    fa, fb = fnp.asarray(a), fnp.asarray(b)
    a2, b2 = a.astype(C128), b.astype(C128)
    _close(fnp.cumsum(fa, axis=1), np.cumsum(a2, axis=1), rtol=1e-4, atol=1e-4, dtype=C64)
    _close(fnp.cumprod(fa, axis=0), np.cumprod(a2, axis=0), rtol=1e-4, atol=1e-4, dtype=C64)
    _close(fnp.dot(fa, fb), a2 @ b2, rtol=1e-4, atol=1e-4, dtype=C64)
    _close(fa @ fb, a2 @ b2, rtol=1e-4, atol=1e-4, dtype=C64)
    _close(fnp.einsum("ij,jk->ki", fa, fb), np.einsum("ij,jk->ki", a2, b2), rtol=1e-4, atol=1e-4, dtype=C64)
    _close(fnp.vdot(fa, fb.T), np.vdot(a2, b2.T), rtol=1e-4, atol=1e-4, dtype=C64)   # conjugates a
    _close(fnp.vecdot(fa, fb.T), np.vecdot(a2, b2.T), rtol=1e-4, atol=1e-4, dtype=C64)
    _close(fnp.inner(fa, fb.T), np.inner(a2, b2.T), rtol=1e-4, atol=1e-4, dtype=C64)   # does not
    _close(fnp.outer(fa[0], fb[0]), np.outer(a2[0], b2[0]), rtol=1e-4, atol=1e-4, dtype=C64)
    _close(fnp.linalg.norm(fa), np.linalg.norm(a2), rtol=1e-4, atol=1e-4, dtype=F32)
    mixed = fnp.dot(fa, fnp.asarray(b.real))                             # complex @ float32
    _close(mixed, a2 @ b2.real, rtol=1e-4, atol=1e-4, dtype=C64)


@given(data=st.data())
def test_where_indexing_scatter_and_shapes_match_numpy(data):
    z = data.draw(_complex_arrays(C64, (3, 4)))
    fz = fnp.asarray(z)
    _close(fnp.where(fnp.abs(fz) > 2, fz, 1j), np.where(np.abs(z) > 2, z, 1j))
    _close(fz[1:, ::2], z[1:, ::2])
    _close(fz[fnp.asarray([2, 0])], z[[2, 0]])
    _close(fnp.take(fz, fnp.asarray([3, 1]), axis=1), np.take(z, [3, 1], axis=1))
    want = z.copy()
    want[0, 1] = 5j
    _close(fz.at[0, 1].set(5j), want)
    want = z.copy()
    want[:, 2] += 1 - 1j
    _close(fz.at[:, 2].add(1 - 1j), want)
    _close(fz.reshape(4, 3).T, z.reshape(4, 3).T)
    _close(fnp.concatenate([fz, fz[:1]]), np.concatenate([z, z[:1]]))
    _close(fnp.stack([fz, fz], axis=1), np.stack([z, z], axis=1))
    _close(fnp.pad(fz, 1), np.pad(z, 1))
    _close(fnp.flip(fnp.roll(fz, 1, axis=1), 0), np.flip(np.roll(z, 1, axis=1), 0))
    _close(fnp.linspace(0, 1 + 2j, 5), np.linspace(0, 1 + 2j, 5), dtype=C64)
    _close(fnp.full((2,), 1 - 1j), np.full((2,), 1 - 1j), dtype=C64)
    _close(fnp.zeros(3, fnp.complex64), np.zeros(3, C64))
    _close(fnp.isclose(fz, fz + 1e-7j), np.isclose(z, z + 1e-7j))


# --- differentiation (JAX's convention) --------------------------------------------------------------

REAL_FUNCS = {
    "abs2": lambda z: fnp.sum(fnp.abs(z) ** 2),
    "abs": lambda z: fnp.sum(fnp.abs(z)),
    "real_exp": lambda z: fnp.sum(fnp.real(fnp.exp(z))),
    "imag_log": lambda z: fnp.sum(fnp.imag(fnp.log(z))),
    "real_sq_conj": lambda z: fnp.sum(fnp.real(z * fnp.conj(z) + z ** 3)),
    "imag_sin_mul": lambda z: fnp.sum(fnp.imag(fnp.sin(z) * (2 - 1j))),
    "abs_sqrt_div": lambda z: fnp.sum(fnp.abs(fnp.sqrt(z) / (z + 2))),
    "real_tanh_cosh": lambda z: fnp.sum(fnp.real(fnp.tanh(z) + fnp.cosh(z) * fnp.sinh(z) - fnp.tan(z))),
    "angle": lambda z: fnp.sum(fnp.angle(z)),
    "real_expm1_log1p": lambda z: fnp.sum(fnp.real(fnp.expm1(z) * fnp.log1p(z))),
    "imag_pow": lambda z: fnp.sum(fnp.imag(z ** (0.5 + 0.25j))),
    "real_dot": lambda z: fnp.real(fnp.dot(z, z[::-1] * 1j)),
    "real_cumsum_prod": lambda z: fnp.real(fnp.sum(fnp.cumsum(z)) * fnp.prod(z)),
    "real_mean_where": lambda z: fnp.real(fnp.mean(fnp.where(fnp.abs(z) > 1.5, z, -z))),
}
HOLOMORPHIC = {
    "square": lambda z: z * z,
    "exp_sin": lambda z: fnp.exp(z) * fnp.sin(z),
    "log_div": lambda z: fnp.log(z) / (z + 1j),
    "sqrt_pow": lambda z: fnp.sqrt(z) + z ** 3,
    "tanh_cos": lambda z: fnp.tanh(z) - fnp.cos(z),
}


def test_grad_of_abs_squared_is_the_conjugate_convention():
    assert complex(fgrad.grad(lambda z: lax.abs(z) ** 2)(fnp.asarray(np.complex64(1 + 2j)))) == 2 - 4j
    assert complex(fgrad.grad(fnp.real)(fnp.asarray(np.complex64(1 + 2j)))) == 1
    assert complex(fgrad.grad(fnp.imag)(fnp.asarray(np.complex64(1 + 2j)))) == -1j
    assert complex(fgrad.grad(fnp.abs)(fnp.asarray(np.complex64(0)))) == 0     # JAX: 0 at 0


@pytest.mark.parametrize("name", sorted(REAL_FUNCS))
def test_grad_of_real_functions_matches_jax(name):
    with fgrad.config.override(enable_x64=True):
        z = fnp.asarray(JAX["Z"])
        value, grad = fgrad.value_and_grad(REAL_FUNCS[name])(z)
        _close(value, JAX[f"value_{name}"], rtol=1e-12, atol=1e-12)
        _close(grad, JAX[f"grad_{name}"], rtol=1e-12, atol=1e-12, dtype=C128)


@pytest.mark.parametrize("name", sorted(REAL_FUNCS))
def test_grad_of_real_functions_matches_finite_differences(name):
    """JAX's gradient of real f at z = x + iy is df/dx - i df/dy: check both parts by central
    differences in float64."""
    f, eps = REAL_FUNCS[name], 1e-6
    with fgrad.config.override(enable_x64=True):
        z = JAX["Z"]
        grad = np.asarray(fgrad.grad(f)(fnp.asarray(z)))
        for k in range(z.size):
            for direction, part in ((1, grad.real[k]), (1j, -grad.imag[k])):
                step = np.zeros_like(z)
                step[k] = eps * direction
                fd = (float(f(fnp.asarray(z + step))) - float(f(fnp.asarray(z - step)))) / (2 * eps)
                np.testing.assert_allclose(part, fd, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(HOLOMORPHIC))
def test_holomorphic_grad_jacfwd_jacrev_match_jax(name):
    f = HOLOMORPHIC[name]
    with fgrad.config.override(enable_x64=True):
        z = fnp.asarray(JAX["Z"])
        _close(f(z), JAX[f"holo_value_{name}"], rtol=1e-12, atol=1e-12)
        _close(fgrad.grad(lambda w: fnp.sum(f(w)), holomorphic=True)(z), JAX[f"holo_grad_{name}"],
               rtol=1e-12, atol=1e-12)
        _close(fgrad.jacfwd(f, holomorphic=True)(z), JAX[f"holo_jacfwd_{name}"], rtol=1e-12, atol=1e-12)
        _close(fgrad.jacrev(f, holomorphic=True)(z), JAX[f"holo_jacrev_{name}"], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(HOLOMORPHIC))
def test_jvp_is_c_linear_and_matches_finite_differences(name):
    f, eps = HOLOMORPHIC[name], 1e-6
    with fgrad.config.override(enable_x64=True):
        z = JAX["Z"]
        t = np.array([0.3 - 1j, 1j, -2 + 0.5j])
        _, jt = fgrad.jvp(f, (fnp.asarray(z),), (fnp.asarray(t),))
        fd = (np.asarray(f(fnp.asarray(z + eps * t))) - np.asarray(f(fnp.asarray(z - eps * t)))) / (2 * eps)
        np.testing.assert_allclose(np.asarray(jt), fd, rtol=1e-6, atol=1e-6)
        _, jt_i = fgrad.jvp(f, (fnp.asarray(z),), (fnp.asarray(1j * t),))
        np.testing.assert_allclose(np.asarray(jt_i), 1j * np.asarray(jt), rtol=1e-12)


def test_vjp_and_jvp_of_non_holomorphic_functions_match_jax():
    f = lambda z: fnp.conj(z) * z + fnp.real(z) * 1j   # noqa: E731
    with fgrad.config.override(enable_x64=True):
        z, ct = fnp.asarray(JAX["Z"]), fnp.asarray(JAX["vjp_ct"])
        _close(fgrad.vjp(f, z)[1](ct)[0], JAX["vjp_nonholo"], rtol=1e-12, atol=1e-12)
        _close(fgrad.jvp(f, (z,), (ct,))[1], JAX["jvp_nonholo"], rtol=1e-12, atol=1e-12)
        x = fnp.asarray(np.array([0.5, -1.25, 2.0]))
        grad = fgrad.grad(lambda x: fnp.sum(fnp.abs(lax.complex(x, x ** 2) * (1 + 1j))))(x)
        _close(grad, JAX["grad_real_to_complex"], rtol=1e-12, atol=1e-12, dtype=F64)


def test_differentiation_dtype_errors_match_jax():
    z = fnp.asarray(np.array([1 + 2j], np.complex64))
    with pytest.raises(TypeError, match="grad requires real-valued outputs.*holomorphic=True"):
        fgrad.grad(lambda z: fnp.sum(z * z))(z)
    with pytest.raises(TypeError, match="jacfwd requires real-valued inputs"):
        fgrad.jacfwd(lambda z: z)(z)
    with pytest.raises(TypeError, match="jacrev requires real-valued outputs"):
        fgrad.jacrev(lambda z: z * z)(z)
    with pytest.raises(TypeError, match="holomorphic=True requires inputs with complex dtype"):
        fgrad.grad(lambda x: x * x, holomorphic=True)(fnp.asarray(1.0))
    with pytest.raises(TypeError, match="holomorphic=True requires outputs with complex dtype"):
        fgrad.jacrev(lambda z: fnp.abs(z), holomorphic=True)(z)
    jac = fgrad.jacfwd(lambda x: x * (1 + 1j))(fnp.ones(2))             # real in, complex out: allowed
    assert jac.dtype == C64 and np.asarray(jac).tolist() == [[1 + 1j, 0], [0, 1 + 1j]]


def test_hessian_holomorphic_and_second_order():
    with fgrad.config.override(enable_x64=True):
        z = fnp.asarray(JAX["Z"])
        hess = fgrad.hessian(lambda w: fnp.sum(w ** 3), holomorphic=True)(z)
        np.testing.assert_allclose(np.asarray(hess), np.diag(6 * JAX["Z"]), rtol=1e-12)
        second = fgrad.grad(lambda w: fnp.real(fgrad.grad(lambda u: fnp.sum(fnp.abs(u) ** 4))(w)[0]))(z)
        # the inner grad is 4 |u|^2 conj(u); its real part's first element is h = 4 (x^2 + y^2) x,
        # whose gradient (JAX's convention again) is dh/dx - i dh/dy
        x, y = JAX["Z"][0].real, JAX["Z"][0].imag
        want = 4 * (3 * x ** 2 + y ** 2) - 1j * (8 * x * y)
        np.testing.assert_allclose(np.asarray(second)[0], want, rtol=1e-12)


# --- jit and vmap ----------------------------------------------------------------------------------

PROGRAMS = {
    "arith": lambda z, w: z * w + fnp.conj(z) / (w + 1) - 2j,
    "transcendental": lambda z, w: fnp.exp(z) * fnp.log(w) + fnp.sqrt(z) - fnp.tanh(w),
    "parts": lambda z, w: fnp.abs(z) + fnp.angle(w) * fnp.real(z) - fnp.imag(w),
    "reduce": lambda z, w: fnp.sum(z * w, axis=0) + fnp.prod(z, axis=0),
    "dot": lambda z, w: fnp.dot(z, w.T) + fnp.einsum("ij,ij->i", z, w)[:, None],
    "select": lambda z, w: fnp.where(fnp.abs(z) > fnp.abs(w), z, w)[::-1],
    "cast": lambda z, w: (fnp.real(z) * 2).astype(fnp.complex64) + lax.complex(fnp.real(w), fnp.imag(z)),
}


def _pair(seed=0, shape=(3, 4)):
    rng = np.random.default_rng(seed)
    return [fnp.asarray((rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(C64)) for _ in range(2)]


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_jit_runs_natively_and_matches_eager(name):
    """Complex programs compile as their real form (fgrad.lower.complex_split): natively, no
    warning, eager's values to rounding."""
    f = PROGRAMS[name]
    z, w = _pair()
    with warnings.catch_warnings():
        warnings.simplefilter("error", fgrad.ReferencePathWarning)
        got = natively(f, z, w)
    _close(got, np.asarray(f(z, w)), rtol=2e-6, atol=2e-6)


JIT_UNARY = ["exp", "log", "sqrt", "sin", "cos", "tan", "sinh", "cosh", "tanh", "expm1", "log1p", "sign",
             "square", "reciprocal", "abs", "angle", "real", "imag", "conj", "isfinite", "log10", "exp2"]


@pytest.mark.parametrize("name", JIT_UNARY)
@settings(max_examples=6)   # each example compiles a program
@given(data=st.data())
def test_jit_of_unary_functions_matches_eager(name, data):
    z = fnp.asarray(data.draw(_complex_arrays(C64, data.draw(shapes), magnitude=8)))
    f = getattr(fnp, name)
    want = np.asarray(f(z))
    got = natively(f, z)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=5e-6, atol=5e-6 * max(1.0, float(np.max(np.abs(want), initial=0))))


@pytest.mark.parametrize("name", ["add", "subtract", "multiply", "divide", "power", "equal", "not_equal",
                                  "less", "maximum"])
@settings(max_examples=6)   # each example compiles a program
@given(data=st.data())
def test_jit_of_binary_functions_matches_eager(name, data):
    shape = data.draw(shapes)
    z, w = (fnp.asarray(data.draw(_complex_arrays(C64, shape, magnitude=3))) for _ in range(2))
    f = getattr(fnp, name)
    want = np.asarray(f(z, w))
    got = natively(f, z, w)
    assert got.dtype == want.dtype and got.shape == want.shape
    finite = np.isfinite(want) & (np.abs(want) < 1e4)        # power: 0 ** negative, huge values
    tol = 1e-4 if name == "power" else 1e-5     # exp(w log z) is ill-conditioned for large |w log z|
    np.testing.assert_allclose(got[finite], want[finite], rtol=tol, atol=tol)


@settings(max_examples=6)   # each example compiles a program
@given(data=st.data())
def test_jit_of_reductions_and_contractions_matches_eager(data):
    z = fnp.asarray(data.draw(_complex_arrays(C64, data.draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=5)),
                                              magnitude=1.5)))
    axis = data.draw(st.sampled_from([None, 0, -1]))
    for f in (lambda u: fnp.prod(u, axis), lambda u: fnp.sum(u, axis), lambda u: fnp.mean(u, axis),
              lambda u: fnp.var(u, axis), lambda u: fnp.cumsum(u, 0), lambda u: fnp.tensordot(u, fnp.conj(u), u.ndim)):
        want = np.asarray(f(z))
        got = natively(f, z)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


def test_jit_in_64_bits_rank_0_empty_and_strided_inputs():
    with fgrad.config.override(enable_x64=True):
        z = fnp.asarray(JAX["Z"])
        f = lambda z: fnp.exp(z) / z + fnp.sqrt(z) * fnp.log(z)   # noqa: E731
        got = natively(f, z)
        assert got.dtype == C128
        np.testing.assert_allclose(got, np.asarray(f(z)), rtol=1e-14)
    z, _ = _pair()
    for f, arg in ((lambda u: u * (2 - 1j), z[1, 2]), (lambda u: fnp.exp(u) + 1, z[:0]), (lambda u: u @ u.T, z.T[::2])):
        got = natively(f, arg)
        np.testing.assert_allclose(got, np.asarray(f(arg)), rtol=1e-6, atol=1e-6)


def test_jit_of_grad_and_vmap_run_natively():
    z, w = _pair()
    f = lambda z: fnp.sum(fnp.abs(fnp.exp(z) * z) ** 2)   # noqa: E731
    _close(natively(fgrad.grad(f), z), np.asarray(fgrad.grad(f)(z)), rtol=1e-5, atol=1e-5)
    g = fgrad.vmap(lambda u, v: fnp.vdot(u, v))
    _close(natively(g, z, w), np.asarray(g(z, w)), rtol=1e-5, atol=1e-5)


CONTROL = {
    "cond": lambda z: lax.cond(fnp.sum(fnp.abs(z)) > 1, lambda u: u * 2j, lambda u: fnp.conj(u), z),
    "cond_mixed": lambda z: lax.cond(True, lambda u, r: (u * r, r + 1), lambda u, r: (u, r), z, fnp.real(z)),
    "scan": lambda z: lax.scan(lambda c, x: (c * x + 1j, fnp.abs(c) + x), z[0], z),
    "fori": lambda z: lax.fori_loop(0, 4, lambda i, c: c * (0.5 + 0.5j) + z[i], z[0]),
    "while": lambda z: lax.while_loop(lambda c: fnp.abs(c[0]).sum() < 100,
                                      lambda c: (c[0] * 1.5j + 1, c[1] + 1), (z[0], 0)),
    "grad_scan": lambda z: fgrad.grad(lambda u: fnp.sum(fnp.abs(lax.scan(lambda c, x: (c * x, c), u[0], u)[0]) ** 2))(z),
    "complex_const": lambda z: lax.scan(lambda c, x: (c + np.array([1j, 2, 3, 4j], C64), c), z[0], None, length=3),
}


@pytest.mark.parametrize("name", sorted(CONTROL))
def test_control_flow_over_complex_values_runs_natively(name):
    """cond/while/scan bodies are split too: their complex operands travel as parts."""
    z, _ = _pair(2, (5, 4))
    f = CONTROL[name]
    got, want = natively(f, z), f(z)
    for g, w in zip(fgrad.tree.tree_leaves(got), fgrad.tree.tree_leaves(want)):
        _close(g, np.asarray(w), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["asin", "atanh"])
def test_complex_operations_without_a_native_rule_leave_the_native_path_with_a_warning(name, monkeypatch):
    """The project rule: never silently slow, never wrong (every complex operation has a rule
    today: one is taken away to check what happens without)."""
    prim = {"asin": special.asin_p, "atanh": special.atanh_p}[name]
    monkeypatch.delitem(complex_split._RULES, prim)
    f = {"asin": lambda z: fnp.arcsin(z), "atanh": lambda z: fnp.arctanh(z * 0.5)}[name]
    z, _ = _pair()
    before = pipeline.compiled_by_path["reference"]
    with pytest.warns(fgrad.ReferencePathWarning, match="has no native lowering yet"):
        got = fgrad.jit(f)(z)
    if pipeline.native_enabled():
        assert pipeline.compiled_by_path["reference"] == before + 1
    _close(got, np.asarray(f(z)), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_vmap_matches_a_python_loop(name):
    z, w = _pair(1, (2, 3, 4))
    check_vmap(PROGRAMS[name], (z, w), rtol=1e-5, atol=1e-5)
    check_vmap(PROGRAMS[name], (z, w[0]), in_axes=(0, None), rtol=1e-5, atol=1e-5)


def test_vmap_of_complex_grads_and_holomorphic_jacobians():
    with fgrad.config.override(enable_x64=True):
        zs = fnp.asarray(np.stack([JAX["Z"], JAX["Z"][::-1] * 1j]))
        check_vmap(fgrad.grad(REAL_FUNCS["abs_sqrt_div"]), (zs,), rtol=1e-12, atol=1e-12)
        check_vmap(fgrad.jacrev(HOLOMORPHIC["exp_sin"], holomorphic=True), (zs,), rtol=1e-12, atol=1e-12)
        check_vmap(lambda z: lax.complex(fnp.real(z), fnp.abs(z)), (zs,), rtol=1e-12, atol=1e-12)


# --- sorting, rounding, python types ------------------------------------------------------------

def test_sort_orders_lexicographically_with_nans_per_part_as_jax():
    z = fnp.asarray(np.array([2 + 0j, complex(1, np.nan), 1 + 1j, 1 - 1j, complex(np.nan, 0)], C64))
    want = [1 - 1j, 1 + 1j, complex(1, np.nan), 2 + 0j, complex(np.nan, 0)]    # JAX's order
    for got in (fnp.sort(z), natively(fnp.sort, z)):
        np.testing.assert_array_equal(np.asarray(got), np.array(want, C64))
    for got in (fnp.argsort(z), natively(fnp.argsort, z)):
        assert np.asarray(got).tolist() == [3, 2, 1, 0, 4]
    grad = fgrad.grad(lambda u: fnp.real(fnp.sort(u)[0] * (1 + 2j)))(z[:4])
    assert np.asarray(grad).tolist() == [0, 0, 0, 1 + 2j]                  # d(x - 2y): 1 + 2i (JAX's)


def test_round_and_nan_to_num_act_on_each_part_and_fabs_rejects_complex():
    z = fnp.asarray(np.array([1.26 + 2.5j, complex(np.nan, np.inf), complex(-np.inf, 3.5)], C64))
    np.testing.assert_allclose(np.asarray(fnp.round(z[:1], 1)), [1.3 + 2.5j], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(fnp.round(z[2:])), [complex(-np.inf, 4)])   # ties to even
    np.testing.assert_array_equal(np.asarray(fnp.nan_to_num(z)), np.nan_to_num(np.asarray(z)))
    np.testing.assert_array_equal(natively(fnp.nan_to_num, z), np.nan_to_num(np.asarray(z)))
    with pytest.raises(TypeError, match="fabs"):
        fnp.fabs(z)


def test_python_types_are_weak_in_result_type():
    assert fnp.result_type(fnp.float32, complex) == C64 and fnp.result_type(fnp.int8, int) == np.int8
    assert fnp.result_type(fnp.float16, float) == np.float16
    with fgrad.config.override(enable_x64=True):                        # as jnp.result_type
        assert fnp.result_type(fnp.float32, complex) == C64 and fnp.result_type(fnp.float32, float) == F32
        assert fnp.result_type(complex) == C128


@pytest.mark.parametrize("shape", [(0,), (3,), (2, 2)])
def test_result_type_takes_numpy_arrays_of_any_size(shape):
    # it compared arrays with the Python types (x in (int, float, complex)): ambiguous truth values
    assert fnp.result_type(np.zeros(shape, np.int8), np.ones(shape, np.float16)) == np.float16
    assert fnp.result_type(np.zeros(shape, np.float32), 1j) == C64


def test_random_normal_of_complex_dtype_matches_jax():
    got = random.normal(random.PRNGKey(0), (3, 2), fnp.complex64)
    np.testing.assert_allclose(np.asarray(got), JAX["normal_c64"], rtol=4e-7, atol=4e-7)
    np.testing.assert_allclose(natively(lambda k: random.normal(k, (3, 2), fnp.complex64), random.PRNGKey(0)),
                               JAX["normal_c64"], rtol=4e-7, atol=4e-7)
    with fgrad.config.override(enable_x64=True):
        got = random.normal(random.PRNGKey(7), (4,), fnp.complex128)
        assert got.dtype == C128
        np.testing.assert_allclose(np.asarray(got), JAX["normal_c128"], rtol=1e-14)


def test_log1p_is_accurate_for_small_arguments_as_jax():
    """NumPy's complex log1p is log(1 + z), which loses every digit for tiny z; fgrad (eager and
    jit) gives XLA's accurate values, recorded from JAX 0.10.2 (complex64)."""
    z = fnp.asarray(np.array([1e-30, 1e-3 + 1e-3j, 0.1 + 0.2j, 1e-6j, -0.5 + 0.5j, 1e3 + 1e3j], C64))
    jax_values = np.array([1e-30, 9.99999349e-04 + 9.990006e-04j, 1.11571774e-01 + 1.798535e-01j,
                           4.99999998e-13 + 1.0e-06j, -3.46573591e-01 + 7.853982e-01j,
                           7.25482893e+00 + 7.848984e-01j])
    for got in (fnp.log1p(z), natively(fnp.log1p, z)):
        np.testing.assert_allclose(np.asarray(got), jax_values, rtol=2e-7)


JAX_UNARY = ["exp", "log", "log1p", "expm1", "sqrt", "sin", "cos", "tan", "sinh", "cosh", "tanh", "abs", "angle",
             "sign", "reciprocal", "square", "log2", "log10", "exp2", "arcsin", "arccos", "arctan", "arcsinh",
             "arccosh", "arctanh"]
NATIVE_UNARY = set(JAX_UNARY) - {"arcsin", "arccos", "arctan", "arcsinh", "arccosh", "arctanh"}


def _jax_comparable(name, z, want):
    """Points where JAX's value is the one to match. Left out, deliberately: JAX's complex64
    ``sinh`` where the real part is small: its real part ``(e^x - e^-x) / 2 * cos y`` cancels
    (relative error ~ eps / |x|; 0 at x = 1e-20), while fgrad keeps NumPy's accurate value; and
    the signed zeros on ``arcsinh``/``arccosh``'s branch cuts, where fgrad follows NumPy and C99
    (``arccosh(-0j) == -pi/2 j``) and JAX does not."""
    keep = np.isfinite(want)
    if name == "sinh":
        keep &= np.abs(np.asarray(z).real) > 0.1
    if name in ("arcsinh", "arccosh"):
        keep &= (np.asarray(z).real != 0) | (np.abs(np.asarray(z).imag) <= 1)
        keep &= np.asarray(z) != 0
    return keep


@pytest.mark.parametrize("name", JAX_UNARY)
def test_elementwise_values_match_jax_recorded(name):
    """fgrad's complex64 functions (eager and natively compiled) against jax.numpy's values at
    random magnitudes 1e-8..1e3, near the unit circle, on the axes and at signed zeros."""
    z = JAX["UNARY_Z"]
    want = JAX[f"unary_{name}"]
    keep = _jax_comparable(name, z, want)
    f = getattr(fnp, name)
    results = [np.asarray(f(fnp.asarray(z)))] + ([natively(f, fnp.asarray(z))] if name in NATIVE_UNARY else [])
    for got in results:
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want))
        np.testing.assert_allclose(got[keep], want[keep], rtol=2e-6, atol=1e-37)


def test_complex128_log_near_the_unit_circle_keeps_its_digits():
    """log |z| near |z| == 1 (the squares split exactly, natively), as NumPy and JAX, whose
    values here were recorded from JAX 0.10.2 with 64-bit enabled."""
    rng = np.random.default_rng(0)
    with fgrad.config.override(enable_x64=True):
        ring = (1 + rng.uniform(-1e-6, 1e-6, 500)) * np.exp(1j * rng.uniform(-np.pi, np.pi, 500))
        z = fnp.asarray(np.concatenate([ring, [0.6 + 0.8j, 1 + 1e-9j, 1e200 + 1e200j]]))
        eager, native = np.asarray(fnp.log(z)), natively(fnp.log, z)
        np.testing.assert_allclose(native, eager, rtol=1e-15, atol=0)
        np.testing.assert_allclose(eager[-3:], [2.22044605e-17 + 9.27295218e-01j, 5.0e-19 + 1.0e-09j,
                                                4.60863592e+02 + 7.85398163e-01j], rtol=1e-8)


def test_max_min_and_ptp_order_lexicographically_as_jax():
    """JAX 0.10.2's values and gradients (recorded by hand from the oracle)."""
    z = fnp.asarray(np.array([[2 + 0j, 1 + 5j, 2 + 1j], [0 - 1j, 0 + 0j, -3 + 9j]], C64))
    for run in (lambda f: f(z), lambda f: natively(f, z)):
        assert complex(np.asarray(run(fnp.max))) == 2 + 1j and complex(np.asarray(run(fnp.nanmax))) == 2 + 1j
        assert np.asarray(run(lambda a: fnp.min(a, 1))).tolist() == [1 + 5j, -3 + 9j]
        assert complex(np.asarray(run(fnp.ptp))) == 5 - 8j
    grad = fgrad.grad(lambda a: fnp.real(fnp.max(a) * (1 - 1j)))(z)
    assert np.asarray(grad).tolist() == [[0, 0, 1 - 1j], [0, 0, 0]]
    grad = natively(fgrad.grad(lambda a: fnp.real(fnp.min(a, 1).sum() * (1 - 1j))), z)
    assert grad.tolist() == [[0, 1 - 1j, 0], [0, 0, 1 - 1j]]
    # JAX has no complex argmax/argmin; fgrad's are NumPy's (lexicographic), natively too
    for run in (lambda f: f(z), lambda f: natively(f, z)):
        assert np.asarray(run(lambda a: fnp.argmax(a, 1))).tolist() == [2, 1]
        assert np.asarray(run(lambda a: fnp.argmin(a, 0))).tolist() == [1, 1, 1]
        assert int(run(fnp.argmax)) == int(np.argmax(np.asarray(z)))


def test_host_callbacks_with_complex_values_run_natively(capsys):
    """debug.print and pure_callback inside a complex program: the Python functions get and
    return complex arrays; the program stays native (the parts travel through it)."""
    z = fnp.asarray(np.array([1 + 2j, 3 - 1j], C64))

    def f(z):
        fgrad.debug.print("z = {z}", z=z)
        doubled = fgrad.pure_callback(lambda u: (np.conj(u) * 2).astype(C64), fgrad.ShapeDtypeStruct((2,), C64), z)
        mixed = fgrad.pure_callback(lambda u, v: (np.abs(u) + v).astype(F32), fgrad.ShapeDtypeStruct((2,), F32),
                                    z, fnp.real(z))
        return doubled * 1j + mixed
    want = np.conj(np.asarray(z)) * 2 * 1j + np.abs(np.asarray(z)) + np.asarray(z).real
    np.testing.assert_allclose(natively(f, z), want, rtol=1e-6)
    assert capsys.readouterr().out == "z = [1.+2.j 3.-1.j]\n"
    batched = fgrad.vmap(lambda u: fgrad.pure_callback(lambda a: a * 1j, fgrad.ShapeDtypeStruct((), C64), u,
                                                       vmap_method="sequential"))
    np.testing.assert_allclose(natively(batched, z), np.asarray(z) * 1j, rtol=1e-6)


def test_expm1_keeps_a_zero_imaginary_part_as_jax():
    """expm1(inf + 0j) is inf + 0j in JAX (NumPy: inf + nan j): a zero imaginary part stays that
    signed zero, eagerly and compiled; elsewhere NumPy's values."""
    import fgrad
    z = np.array([0j, complex(-0.0, -0.0), complex(np.inf, 0.0), complex(np.inf, -0.0), complex(np.nan, 0.0),
                  1 + 0j, 0.5 + 1j], np.complex64)
    want_re = np.array([0.0, -0.0, np.inf, np.inf, np.nan, np.expm1(np.float32(1)), np.nan], np.float32)
    for got in (np.asarray(fnp.expm1(fnp.asarray(z))), np.asarray(fgrad.jit(fnp.expm1)(fnp.asarray(z)))):
        np.testing.assert_array_equal(got.imag[:6], z.imag[:6])
        np.testing.assert_array_equal(np.signbit(got.imag[:6]), np.signbit(z.imag[:6]))
        np.testing.assert_allclose(got.real[:6], want_re[:6], rtol=1e-6)
        np.testing.assert_allclose(got[6], np.expm1(z[6]), rtol=1e-6)


def test_complex_convolutions_compile_natively():
    """conv_general_dilated of complex operands: four real convolutions under jit (no
    reference path), equal to eager within float32 rounding; also with a real kernel."""
    from tests.util import natively
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((2, 3, 6, 6)) + 1j * rng.standard_normal((2, 3, 6, 6))).astype(np.complex64)
    w = (rng.standard_normal((4, 3, 3, 3)) + 1j * rng.standard_normal((4, 3, 3, 3))).astype(np.complex64)
    conv = lambda a, b: lax.conv_general_dilated(a, b, (1, 2), "SAME", rhs_dilation=(1, 2))
    want = np.asarray(conv(fnp.asarray(x), fnp.asarray(w)))
    np.testing.assert_allclose(natively(conv, x, w), want, rtol=1e-5, atol=1e-5)
    real_w = w.real.astype(np.complex64)
    np.testing.assert_allclose(natively(conv, x, real_w), np.asarray(conv(fnp.asarray(x), fnp.asarray(real_w))),
                               rtol=1e-5, atol=1e-5)


def test_lax_max_min_on_complex_operands_follow_jax():
    """lax.max/min and fnp.maximum/minimum on complex numbers: JAX's lexicographic order, where
    a comparison with a NaN part is false, so the second operand is taken (recorded JAX 0.10.2)."""
    import fgrad
    a = fnp.asarray(np.array([1 + 2j, 1 + 2j, 3 + 0j, complex(np.nan, 0), complex(1, np.nan), 2 + 1j], np.complex64))
    b = fnp.asarray(np.array([1 + 3j, 2 - 5j, 3 + 0j, 1 + 1j, 1 + 1j, complex(2, np.nan)], np.complex64))
    want_max = np.array([1 + 3j, 2 - 5j, 3 + 0j, 1 + 1j, 1 + 1j, complex(2, np.nan)], np.complex64)
    want_min = np.array([1 + 2j, 1 + 2j, 3 + 0j, 1 + 1j, 1 + 1j, complex(2, np.nan)], np.complex64)
    for fmax, fmin in ((lax.max, lax.min), (fnp.maximum, fnp.minimum)):
        for f, want in ((fmax, want_max), (fmin, want_min)):
            for got in (f(a, b), fgrad.jit(f)(a, b)):
                np.testing.assert_array_equal(np.asarray(got), want)
    np.testing.assert_array_equal(np.asarray(fnp.maximum(fnp.asarray([1.0, np.nan]), 0.5)), [1.0, np.nan])


def test_complex_zero_to_a_power_is_jaxs():
    """JAX 0.10.2 (XLA): complex ``0 ** y`` is 1 for y == 0, 0 for a real y > 0, NaN otherwise.
    fgrad gave NumPy's 0 for any y with a positive real part eagerly, and 0 for every nonzero y
    compiled (0 ** -1 and 0 ** 1j: eager NaN, jit 0)."""
    y = np.array([0.5, -0.0, 1j, 1e-30, 3 + 1e-30j, -0.5, np.inf, np.nan, 0.5 + 1j, 2, -1], np.complex64)
    zero_re = [0, 1, np.nan, 0, np.nan, np.nan, 0, np.nan, np.nan, 0, np.nan]
    zero_im = [0, 0, np.nan, 0, np.nan, np.nan, 0, np.nan, np.nan, 0, np.nan]
    x = np.zeros_like(y)
    for got in (fnp.power(x, y), fgrad.jit(fnp.power)(x, y)):
        got = np.asarray(got)
        np.testing.assert_array_equal(got.real, zero_re)
        np.testing.assert_array_equal(got.imag, zero_im)
    np.testing.assert_allclose(np.asarray(fgrad.jit(fnp.power)(np.complex64(1 + 1j), np.complex64(-1))), 0.5 - 0.5j,
                               rtol=1e-6)


def test_arctan_and_arctanh_of_complex64_compile():
    """jit(fnp.arctan) and jit(fnp.arctanh) on complex64 raised a TypeError while lowering
    (atanh's float64 working precision met signbit's constant, narrowed to float32 without x64);
    finite values are JAX 0.10.2's."""
    z = np.array([0.5 + 0.5j, 2 + 3j, -0.3 + 1e-8j, 0.999 + 0j, complex(0.0, -0.0)], np.complex64)
    want_atanh = [0.40235949 + 0.55357438j, 0.14694665 + 1.33897257j, -0.30951962 + 1.0989011e-08j, 3.80020761 + 0j, 0j]
    want_atan = [0.55357438 + 0.40235949j, 1.40992105 + 0.22907269j, -0.29145682 + 9.174312e-09j, 0.78489792 + 0j, 0j]
    for f, want in ((fnp.arctanh, want_atanh), (fnp.arctan, want_atan)):
        got = fgrad.jit(f)(z)
        assert got.dtype == np.complex64
        np.testing.assert_allclose(np.asarray(got), want, rtol=2e-6)
        np.testing.assert_allclose(np.asarray(got), np.asarray(f(z)), rtol=2e-6)


def test_abs_of_a_complex_number_with_a_nan_part_is_nan_as_in_jax():
    """|inf + nan j| is NaN in JAX (NumPy and C99 give inf); eager and compiled agree with JAX."""
    for dtype in (np.complex64, np.complex128):
        with fgrad.config.override(enable_x64=dtype == np.complex128):
            v = np.array([complex(np.inf, np.nan), complex(np.nan, np.inf), complex(-np.inf, np.nan),
                          complex(np.inf, 1), complex(np.nan, 1), complex(1, np.inf), complex(np.inf, np.inf)],
                         dtype)
            want = np.array([np.nan, np.nan, np.nan, np.inf, np.nan, np.inf, np.inf])   # JAX 0.10.2
            np.testing.assert_array_equal(np.asarray(fnp.abs(v)), want.astype(np.asarray(fnp.abs(v)).dtype))
            np.testing.assert_array_equal(np.asarray(fgrad.jit(fnp.abs)(v)), np.asarray(fnp.abs(v)))


def test_exp_and_log_of_complex_special_values_are_jaxs_eagerly_and_compiled():
    """On every pair of {0, -0, 1, -1, inf, -inf, nan} parts, complex exp and log give the same
    bits eagerly and under jit, and JAX's values where NumPy's C99 special cases differ."""
    vals = [0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan]
    z = np.array([complex(a, b) for a in vals for b in vals], np.complex64)
    for fn in (fnp.exp, fnp.log):
        eager, compiled = np.asarray(fn(z)), np.asarray(fgrad.jit(fn)(z))
        np.testing.assert_array_equal(eager.real, compiled.real)
        np.testing.assert_array_equal(eager.imag, compiled.imag)
    recorded = {   # JAX 0.10.2
        (fnp.exp, complex(np.inf, np.inf)): complex(np.nan, np.nan),
        (fnp.exp, complex(np.inf, 1.0)): complex(np.inf, np.inf),
        (fnp.exp, complex(-np.inf, 1.0)): complex(0.0, 0.0),
        (fnp.log, complex(np.inf, np.nan)): complex(np.nan, np.nan),
        (fnp.log, complex(-np.inf, np.nan)): complex(np.nan, np.nan),
    }
    for (fn, arg), want in recorded.items():
        got = complex(np.asarray(fn(np.array([arg], np.complex64)))[0])
        np.testing.assert_array_equal([got.real, got.imag], [want.real, want.imag])


def _assert_same_parts(got, want, rtol):
    """Part by part: NaN where the other is NaN, zeros and infinities with the same sign, finite
    values within ``rtol``."""
    for g, w in zip(np.ravel(got), np.ravel(want)):
        for a, b in ((g.real, w.real), (g.imag, w.imag)):
            if np.isnan(a) or np.isnan(b):
                assert np.isnan(a) and np.isnan(b), (got, want)
            elif a == 0 or b == 0 or np.isinf(a) or np.isinf(b):
                assert a == b and np.signbit(a) == np.signbit(b), (g, w)
            else:
                np.testing.assert_allclose(a, b, rtol=rtol)


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_sqrt_sin_cos_sinh_cosh_of_complex_special_values_are_jaxs_eagerly_and_compiled(dtype):
    """On every pair of {0, -0, 1, -1, inf, -inf, nan} parts, complex sqrt, sin, cos, sinh and
    cosh give the same NaNs, infinities and zero signs eagerly and under jit (finite values to
    rounding); and JAX's where C99's special cases (NumPy's) differ: a zero factor gives +0
    even against an infinite one, sqrt ignores a zero's sign and gives NaN for a NaN part."""
    vals = [0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan]
    with fgrad.config.override(enable_x64=dtype == np.complex128):
        z = np.array([complex(a, b) for a in vals for b in vals], dtype)
        rtol = 1e-6 if dtype == np.complex64 else 1e-14
        for fn in (fnp.sqrt, fnp.sin, fnp.cos, fnp.sinh, fnp.cosh):
            _assert_same_parts(np.asarray(fgrad.jit(fn)(z)), np.asarray(fn(z)), rtol)
        inf, nan = np.inf, np.nan
        recorded = {   # JAX 0.10.2, complex64; NumPy's differ in every one of these
            (fnp.sin, complex(0.0, inf)): complex(0.0, inf),
            (fnp.sin, complex(-0.0, 1.0)): complex(0.0, 1.1752012),
            (fnp.sin, complex(inf, 0.0)): complex(nan, nan),
            (fnp.cos, complex(0.0, inf)): complex(inf, 0.0),
            (fnp.cos, complex(0.0, 1.0)): complex(1.5430806, 0.0),
            (fnp.cos, complex(inf, inf)): complex(nan, nan),
            (fnp.sinh, complex(inf, 0.0)): complex(inf, 0.0),
            (fnp.sinh, complex(-0.0, 1.0)): complex(0.0, 0.84147096),
            (fnp.sinh, complex(0.0, inf)): complex(nan, nan),
            (fnp.cosh, complex(inf, -0.0)): complex(inf, 0.0),
            (fnp.cosh, complex(-0.0, 1.0)): complex(0.5403023, 0.0),
            (fnp.cosh, complex(0.0, inf)): complex(nan, nan),
            (fnp.sqrt, complex(-1.0, -0.0)): complex(0.0, 1.0),
            (fnp.sqrt, complex(-inf, -0.0)): complex(0.0, inf),
            (fnp.sqrt, complex(1.0, -0.0)): complex(1.0, 0.0),
            (fnp.sqrt, complex(-1.0, inf)): complex(inf, inf),
            (fnp.sqrt, complex(0.0, -inf)): complex(inf, -inf),
            (fnp.sqrt, complex(nan, inf)): complex(nan, nan),
            (fnp.sqrt, complex(inf, nan)): complex(nan, nan),
        }
        for (fn, arg), want in recorded.items():
            for run in (fn, fgrad.jit(fn)):
                _assert_same_parts(np.asarray(run(np.array([arg], dtype))), np.array([want]), 1e-6)


def test_complex_values_inside_calls_of_real_arguments_compile_natively():
    # a custom_jvp, scan, cond or while of real operands and results computing in complex
    # inside: split_complex kept the call whole and compile_jaxpr split it again, for ever
    # (RecursionError)
    @fgrad.custom_jvp
    def cos2(x):
        z = fnp.exp(1j * x)
        return fnp.real(z * z)

    @cos2.defjvp
    def _cos2_jvp(primals, tangents):
        (x,), (dx,) = primals, tangents
        return cos2(x), -2 * fnp.sin(2 * x) * dx

    def body(c, x):
        z = fnp.exp(1j * x) * c
        return fnp.real(z) + 0.5, fnp.imag(z)

    xs = fnp.linspace(0.0, 1.0, 6)
    x = np.asarray(xs)
    np.testing.assert_allclose(natively(cos2, xs), np.cos(2 * x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(natively(fgrad.grad(lambda v: cos2(v).sum()), xs), -2 * np.sin(2 * x), rtol=1e-6)
    want = lax.scan(body, 1.0, xs)
    got = natively(lambda v: lax.scan(body, 1.0, v), xs)
    np.testing.assert_allclose(got[0], np.asarray(want[0]), rtol=1e-6)
    np.testing.assert_allclose(got[1], np.asarray(want[1]), rtol=1e-6, atol=1e-7)
    branch = natively(lambda v: lax.cond(v.sum() > 0, lambda u: fnp.real(fnp.exp(1j * u)), lambda u: u, v), xs)
    np.testing.assert_allclose(branch, np.cos(x), rtol=1e-6)
    loop = natively(lambda v: lax.while_loop(lambda c: c[1] < 3, lambda c: (fnp.real(fnp.exp(1j * c[0]) * 2),
                                                                            c[1] + 1), (v, 0))[0], xs)
    want_loop = x
    for _ in range(3):
        want_loop = np.real(np.exp(1j * want_loop) * 2)
    np.testing.assert_allclose(loop, want_loop, rtol=1e-5)
