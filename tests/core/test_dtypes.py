"""dtypes: canonicalization under x64 on/off and JAX's promotion lattice with weak types."""
import itertools

import numpy as np
import pytest

import fgrad
from fgrad.core import dtypes
from fgrad.core.dtypes import bool_, float16, float32, float64, int32, int64, uint8, uint32

# JAX's promotion table (x64 on) restricted to fgrad's dtypes; i*/f* are the weak Python
# int/float types. Written out independently of fgrad's lattice code, as the oracle.
_NAMES = ["b1", "u1", "u4", "i4", "i8", "f2", "f4", "f8", "i*", "f*"]
_TABLE = """
b1: b1 u1 u4 i4 i8 f2 f4 f8 i* f*
u1: u1 u1 u4 i4 i8 f2 f4 f8 u1 f*
u4: u4 u4 u4 i8 i8 f2 f4 f8 u4 f*
i4: i4 i4 i8 i4 i8 f2 f4 f8 i4 f*
i8: i8 i8 i8 i8 i8 f2 f4 f8 i8 f*
f2: f2 f2 f2 f2 f2 f2 f4 f8 f2 f2
f4: f4 f4 f4 f4 f4 f4 f4 f8 f4 f4
f8: f8 f8 f8 f8 f8 f8 f8 f8 f8 f8
i*: i* u1 u4 i4 i8 f2 f4 f8 i* f*
f*: f* f* f* f* f* f2 f4 f8 f* f*
"""
_DTYPE = {"b1": bool_, "u1": uint8, "u4": uint32, "i4": int32, "i8": int64,
          "f2": float16, "f4": float32, "f8": float64}


def _typed(name, x64):
    """(dtype, weak) of a table entry; weak types take the default int/float."""
    if name == "i*":
        return (int64 if x64 else int32), True
    if name == "f*":
        return (float64 if x64 else float32), True
    return _DTYPE[name], False


_JOIN = {(line.split()[0][:-1], col): entry
         for line in _TABLE.strip().splitlines()
         for col, entry in zip(_NAMES, line.split()[1:])}


def _expected(row, col, x64):
    dtype, weak = _typed(_JOIN[row, col], x64)
    return dtypes.canonicalize(dtype), weak


def _names(x64):
    return _NAMES if x64 else [n for n in _NAMES if n not in ("i8", "f8")]


@pytest.mark.parametrize("x64", [False, True])
def test_promotion_matches_jax_table(x64):
    with fgrad.config.override(enable_x64=x64):
        for a, b in itertools.product(_names(x64), repeat=2):
            got = dtypes.promote(_typed(a, x64), _typed(b, x64))
            assert got == _expected(a, b, x64), f"{a} + {b}: got {got}"


@pytest.mark.parametrize("x64", [False, True])
def test_promotion_is_symmetric_idempotent_and_associative(x64):
    with fgrad.config.override(enable_x64=x64):
        typed = [_typed(n, x64) for n in _names(x64)]
        for a in typed:
            assert dtypes.promote(a, a) == a
        for a, b in itertools.product(typed, repeat=2):
            assert dtypes.promote(a, b) == dtypes.promote(b, a)
        for a, b, c in itertools.product(typed, repeat=3):
            left = dtypes.promote(dtypes.promote(a, b), c)
            right = dtypes.promote(a, dtypes.promote(b, c))
            assert left == right == dtypes.promote(a, b, c), (a, b, c)


def test_bool_is_the_bottom_and_weak_values_give_way_to_strong_ones():
    for dtype in (uint8, uint32, int32, float16, float32):
        assert dtypes.promote((bool_, False), (dtype, False)) == (dtype, False)
        assert dtypes.promote((dtype, False), (dtype, True)) == (dtype, False)


@pytest.mark.parametrize("array, scalar, expected", [
    ((uint8, False), (int32, True), (uint8, False)),        # uint8 array + 1 stays uint8
    ((float32, False), (float32, True), (float32, False)),  # f32 array * 2.0 stays f32
    ((float16, False), (float32, True), (float16, False)),  # so does f16
    ((int32, False), (float32, True), (float32, True)),     # int32 array + 1.5 -> (weak) f32
    ((uint8, False), (float32, True), (float32, True)),
    ((bool_, False), (int32, True), (int32, True)),         # bool array + 1 -> (weak) int32
    ((bool_, False), (float32, True), (float32, True)),
    ((int32, True), (float32, True), (float32, True)),      # 1 + 1.5
])
def test_weak_scalar_rules(array, scalar, expected):
    assert dtypes.promote(array, scalar) == expected
    assert dtypes.promote(scalar, array) == expected


def test_all_weak_operands_promote_as_their_strong_types_then_stay_weak():
    assert dtypes.promote((float16, True), (float16, True)) == (float16, True)
    assert dtypes.promote((uint8, True)) == (uint8, True)


def test_mixed_width_integers_need_x64_for_the_exact_join():
    assert dtypes.promote((uint32, False), (int32, False)) == (int32, False)
    with fgrad.config.override(enable_x64=True):
        assert dtypes.promote((uint32, False), (int32, False)) == (int64, False)
        assert dtypes.promote((int32, False), (float32, True)) == (float64, True)


def test_promote_needs_an_operand():
    with pytest.raises(TypeError, match="at least one"):
        dtypes.promote()


# --- canonicalization -------------------------------------------------------------------------

@pytest.mark.parametrize("given, narrow, wide", [
    (np.float64, float32, float64), (np.int64, int32, int64), (float, float32, float64),
    (int, int32, int64), ("float32", float32, float32), (np.uint8, uint8, uint8),
    (bool, bool_, bool_), (np.float16, float16, float16), (np.uint32, uint32, uint32),
])
def test_canonicalize_under_x64_off_and_on(given, narrow, wide):
    assert dtypes.canonicalize(given) == narrow
    with fgrad.config.override(enable_x64=True):
        assert dtypes.canonicalize(given) == wide


def test_uint64_narrows_without_x64_and_is_kept_with_it():
    # issue 17: with x64, sums of uint8 accumulate in uint64 (as NumPy and JAX), so it must exist
    assert dtypes.canonicalize(np.uint64) == uint32
    with fgrad.config.override(enable_x64=True):
        assert dtypes.canonicalize(np.uint64) == np.uint64
        assert dtypes.promote((np.dtype(np.uint64), False), (np.dtype(np.int64), False))[0] == np.float64
        assert dtypes.promote((np.dtype(np.uint8), False), (np.dtype(np.uint64), False))[0] == np.uint64


@pytest.mark.parametrize("bad", [np.clongdouble, np.longdouble if np.finfo(np.longdouble).bits > 64 else "U2", "S3", object])
def test_unsupported_dtypes_raise_a_type_error_listing_the_supported_ones(bad):
    with pytest.raises(TypeError, match="supported dtypes: .*float32"):
        dtypes.canonicalize(bad)


def test_not_a_dtype_raises_type_error():
    with pytest.raises(TypeError, match="not a dtype"):
        dtypes.canonicalize("no-such-dtype")


def test_defaults_and_python_scalars_follow_x64():
    assert (dtypes.default_float(), dtypes.default_int()) == (float32, int32)
    assert [dtypes.python_scalar_dtype(v) for v in (True, 1, 1.0)] == [bool_, int32, float32]
    with fgrad.config.override(enable_x64=True):
        assert (dtypes.default_float(), dtypes.default_int()) == (float64, int64)
        assert [dtypes.python_scalar_dtype(v) for v in (True, 1, 1.0)] == [bool_, int64, float64]
    assert dtypes.python_scalar_dtype(1j) == np.complex64   # complex128 narrows without x64, as in JAX
    with fgrad.config.override(enable_x64=True):
        assert dtypes.python_scalar_dtype(1j) == np.complex128


def test_short_names_and_kind_predicates():
    assert [dtypes.short_name(d) for d in (bool_, uint8, uint32, int32, float16, float32, float64)] == \
        ["bool", "u8", "u32", "i32", "f16", "f32", "f64"]
    assert dtypes.is_float(float16) and not dtypes.is_float(int32)
    assert dtypes.is_int(uint8) and dtypes.is_int(int64) and not dtypes.is_int(bool_)
    assert dtypes.is_differentiable(float32) and not dtypes.is_differentiable(uint32)
