"""``Array.view(dtype)`` and ``lax.bitcast_convert_type`` across widths, against NumPy's view
(this machine is little-endian, as every machine JAX runs on) and recorded JAX outputs."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import fgrad
import fgrad.numpy as fnp
from fgrad import lax
from tests.util import check_vmap, natively

DTYPES = [np.uint8, np.int8, np.uint16, np.int16, np.float16, np.uint32, np.int32, np.float32]


@st.composite
def _case(draw):
    old, new = draw(st.sampled_from(DTYPES)), draw(st.sampled_from(DTYPES + [np.bool_]))
    lead = draw(st.lists(st.integers(1, 3), max_size=2))
    multiple = max(np.dtype(new).itemsize // np.dtype(old).itemsize, 1)
    last = multiple * draw(st.integers(1, 3))
    raw = draw(st.binary(min_size=np.dtype(old).itemsize * last * int(np.prod(lead, dtype=int)),
                         max_size=np.dtype(old).itemsize * last * int(np.prod(lead, dtype=int))))
    return np.frombuffer(raw, old).reshape(*lead, last), new


def _numpy_view(x: np.ndarray, new) -> np.ndarray:
    if new is np.bool_:
        return x.view(np.uint8) != 0
    return x.view(new)


def _same_bits(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got.view(np.uint8) if got.dtype != np.bool_ else got,
                                  want.view(np.uint8) if want.dtype != np.bool_ else want)


@given(_case())
def test_view_reads_the_bits_as_numpy_does(case):
    x, new = case
    _same_bits(fnp.asarray(x).view(new), _numpy_view(x, new))


def _quieted(x: np.ndarray) -> np.ndarray:
    """float16 with each signaling NaN made quiet (its quiet bit set), else ``x``."""
    if x.dtype != np.float16:
        return x
    bits = x.view(np.uint16).copy()
    signaling = ((bits & 0x7C00) == 0x7C00) & ((bits & 0x03FF) != 0) & ((bits & 0x0200) == 0)
    bits[signaling] |= 0x0200
    return bits.view(np.float16)


@given(_case())
def test_view_under_jit_is_native_and_equal(case):
    """Bit for bit, but for one known difference: the native path computes float16 in float32,
    which quiets a signaling NaN (its quiet bit set, the rest of its payload kept)."""
    x, new = case
    got, want = natively(lambda a: a.view(new), x), _numpy_view(x, new)
    _same_bits(_quieted(np.asarray(got)), _quieted(want))


@pytest.mark.parametrize("new", [np.uint8, np.uint16, np.int32])
def test_view_under_vmap_is_a_loop(new):
    x = np.random.default_rng(0).standard_normal((3, 2, 4)).astype(np.float32)
    check_vmap(lambda r: r.view(new), (x,), rtol=0, atol=0)


def test_bool_views_and_dtype_none():
    assert np.array_equal(fnp.array([True, False]).view(np.uint8), [1, 0])
    assert np.array_equal(fnp.array([0, 1, 2], np.uint8).view(bool), [False, True, True])   # != 0, as JAX
    x = fnp.arange(3.0)
    assert x.view() is x and x.view(None) is x


def test_bitcast_convert_type_matches_recorded_jax():
    x = np.array([1.0, -2.0], np.float32)
    np.testing.assert_array_equal(lax.bitcast_convert_type(x, np.uint16), [[0, 16256], [0, 49152]])
    assert lax.bitcast_convert_type(x, np.uint8).shape == (2, 4)
    np.testing.assert_array_equal(lax.bitcast_convert_type(np.arange(8, dtype=np.uint8).reshape(2, 4), np.uint32),
                                  [50462976, 117835012])
    np.testing.assert_array_equal(lax.bitcast_convert_type(np.array([1, 256], np.int16), np.int8), [[1, 0], [0, 1]])
    np.testing.assert_array_equal(natively(lambda a: lax.bitcast_convert_type(a, np.uint8), x),
                                  x.view(np.uint8).reshape(2, 4))


def test_mistakes_name_the_fix():
    with pytest.raises(ValueError, match="must be a multiple of uint16's 2 bytes"):
        fnp.arange(3, dtype=np.uint8).view(np.uint16)
    with pytest.raises(ValueError, match="0-d array can only be viewed as a dtype of the same width"):
        fnp.array(1.0, np.float32).view(np.uint16)
    with pytest.raises(ValueError, match="type=.* is not supported"):
        fnp.arange(3.0).view(np.float32, type=np.ndarray)
    with pytest.raises(ValueError, match="needs a trailing axis of 4 parts"):
        lax.bitcast_convert_type(np.arange(6, dtype=np.uint8), np.uint32)
    with pytest.raises(TypeError, match="bool takes part only as bool to bool"):
        lax.bitcast_convert_type(np.array([True]), np.uint8)
