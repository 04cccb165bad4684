"""fgrad.numpy as an array API namespace: __array_namespace__, __array_namespace_info__,
devices (x.device never None, to_device, device= on creation functions), DLPack both ways
(NumPy, PyTorch), nextafter and unstack."""
import inspect
import warnings

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, strategies as st

import fgrad
from fgrad import numpy as fnp
from fgrad.sharding import Mesh, NamedSharding, P


def test_namespace_and_version():
    x = fnp.arange(3)
    assert x.__array_namespace__() is fnp
    assert x.__array_namespace__(api_version="2023.12") is fnp
    assert fnp.__array_api_version__ == "2024.12"
    with pytest.raises(ValueError, match="api_version='2019.01' is not supported"):
        x.__array_namespace__(api_version="2019.01")
    traced = []
    fgrad.jit(lambda t: traced.append(t.__array_namespace__()) or t)(x)
    assert traced == [fnp]


def test_namespace_info():
    info = fnp.__array_namespace_info__()
    assert info.capabilities()["boolean indexing"] is False
    assert info.default_device() == fgrad.devices(backend="cpu")[0]
    assert info.default_device() in info.devices()
    assert info.default_dtypes() == {"real floating": fnp.float32, "complex floating": fnp.complex64,
                                     "integral": fnp.int32, "indexing": fnp.int32}   # as jax.numpy's
    assert set(info.dtypes(kind="complex floating")) == {"complex64"}
    assert set(info.dtypes(kind="integral")) == {"uint8", "uint16", "uint32", "int8", "int16", "int32"}
    assert set(info.dtypes(kind=("bool", "real floating"))) == {"bool", "float32"}   # the standard's only
    with fgrad.config.override(enable_x64=True):
        assert info.default_dtypes()["real floating"] == fnp.float64
        assert info.default_dtypes()["complex floating"] == fnp.complex128
        assert {"int64", "uint64", "float64", "complex128"} <= set(info.dtypes())
    with pytest.raises(ValueError, match="not a dtype kind"):
        info.dtypes(kind="floats")


def test_device_is_never_none():
    cpu0 = fgrad.devices(backend="cpu")[0]
    x = fnp.ones(3)
    assert x.device == cpu0 and x.committed_device is None
    assert fgrad.jit(lambda v: v * 2)(x).device == cpu0
    assert fgrad.grad(lambda v: (v * v).sum())(x).device == cpu0
    placed = x.to_device(cpu0)
    assert placed.committed_device == cpu0
    np.testing.assert_array_equal(np.asarray(placed), np.ones(3))
    with pytest.raises(ValueError, match="stream= is not supported"):
        x.to_device(cpu0, stream=1)


def test_sharded_arrays_report_their_sharding():
    mesh = Mesh(fgrad.devices(2), ("i",))
    sharding = NamedSharding(mesh, P("i"))
    x = fgrad.device_put(np.arange(4.0, dtype=np.float32), sharding)
    assert x.device == sharding


CREATORS = {
    "zeros": lambda d: fnp.zeros(3, device=d), "ones": lambda d: fnp.ones((2,), device=d),
    "empty": lambda d: fnp.empty(2, device=d), "full": lambda d: fnp.full(2, 7.0, device=d),
    "arange": lambda d: fnp.arange(4, device=d), "linspace": lambda d: fnp.linspace(0, 1, 5, device=d),
    "eye": lambda d: fnp.eye(3, device=d), "identity": lambda d: fnp.identity(2, device=d),
    "asarray": lambda d: fnp.asarray([1, 2], device=d), "array": lambda d: fnp.array([1.0], device=d),
    "astype": lambda d: fnp.astype(fnp.arange(3), fnp.float32, device=d),
    "zeros_like": lambda d: fnp.zeros_like(fnp.ones(2), device=d),
    "full_like": lambda d: fnp.full_like(fnp.ones(2), 3, device=d),
}


@pytest.mark.parametrize("name", sorted(CREATORS))
def test_creation_functions_take_a_device(name):
    cpu0 = fgrad.devices(backend="cpu")[0]
    plain, placed, by_name = CREATORS[name](None), CREATORS[name](cpu0), CREATORS[name]("cpu")
    assert plain.committed_device is None and placed.committed_device == cpu0 and by_name.committed_device == cpu0
    np.testing.assert_array_equal(np.asarray(placed), np.asarray(plain))
    with pytest.raises(ValueError, match="device='gpu7' is not a device"):
        CREATORS[name]("gpu7")


def test_like_functions_follow_their_prototype_and_keep_their_signature():
    cpu0 = fgrad.devices(backend="cpu")[0]
    proto = fnp.ones(2, device=cpu0)
    assert fnp.zeros_like(proto).committed_device == cpu0
    assert fnp.zeros_like(fnp.ones(2)).committed_device is None
    assert "device" in inspect.signature(fnp.zeros).parameters
    assert inspect.signature(fnp.zeros).parameters["device"].kind is inspect.Parameter.KEYWORD_ONLY


# --- DLPack -------------------------------------------------------------------------------------------

def test_dlpack_with_numpy_is_zero_copy_and_read_only():
    x = fnp.arange(5.0)
    host = np.from_dlpack(x)
    assert np.shares_memory(host, np.asarray(x)) and not host.flags.writeable
    np.testing.assert_array_equal(host, np.arange(5.0))
    assert x.__dlpack_device__() == (1, 0)
    legacy = x.__dlpack__()            # a consumer that cannot be told "read-only" gets a copy
    assert type(legacy).__name__ == "PyCapsule"
    with pytest.raises(BufferError):
        x.__dlpack__(copy=False)


def test_from_dlpack_shares_memory_unless_asked_to_copy():
    source = np.arange(4, dtype=np.float32)
    shared, copied = fnp.from_dlpack(source), fnp.from_dlpack(source, copy=True)
    source[0] = 9
    assert float(shared[0]) == 9 and float(copied[0]) == 0
    assert fnp.from_dlpack(fnp.arange(3)).dtype == fnp.int32
    with fgrad.config.override(enable_x64=False):
        narrowed = fnp.from_dlpack(np.arange(3.0))     # float64 data narrows, so it is copied
        assert narrowed.dtype == fnp.float32
        with pytest.raises(ValueError, match="needs a copy"):
            fnp.from_dlpack(np.arange(3.0), copy=False)
    assert fnp.from_dlpack(source, device="cpu").committed_device == fgrad.devices(backend="cpu")[0]


def test_dlpack_with_pytorch_both_ways():
    torch = pytest.importorskip("torch")
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    x = fnp.from_dlpack(t)
    np.testing.assert_array_equal(np.asarray(x), t.numpy())
    back = torch.from_dlpack(fnp.sin(x))
    np.testing.assert_allclose(back.numpy(), np.sin(t.numpy()), rtol=1e-6)
    assert np.shares_memory(np.asarray(x), t.numpy())


# --- nextafter, unstack, take_along_axis -------------------------------------------------------------

SPECIAL = [0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 1e-45, 5e-324, -3.5, 3.4e38, 1.7e308]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nextafter_is_bit_exact(dtype):
    with fgrad.config.override(enable_x64=True), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        values = np.array(SPECIAL, np.float64).astype(dtype)
        a, b = np.meshgrid(values, values)
        want = np.nextafter(a, b)
        for got in (fnp.nextafter(a, b), fgrad.jit(fnp.nextafter)(a, b)):
            got = np.asarray(got)
            assert got.dtype == dtype
            same = (got.view(f"u{got.itemsize}") == want.view(f"u{want.itemsize}")) | (np.isnan(got) & np.isnan(want))
            assert same.all(), (a[~same], b[~same], got[~same], want[~same])


@given(st.floats(width=32), st.floats(width=32))
def test_nextafter_matches_numpy_on_any_pair(x, y):
    want = np.nextafter(np.float32(x), np.float32(y))
    got = np.asarray(fnp.nextafter(np.float32(x), np.float32(y)))
    assert (np.isnan(got) and np.isnan(want)) or got.view(np.uint32) == want.view(np.uint32)


def test_nextafter_of_half_precision_and_integers():
    # float16 and bfloat16 as JAX (and NumPy / ml_dtypes): one ulp of the operand's own type
    assert_bits = lambda got, want: np.testing.assert_array_equal(  # noqa: E731
        np.asarray(got).view(np.uint16), np.asarray(want).view(np.uint16))
    assert_bits(fnp.nextafter(np.float16(1), np.float16(2)), np.float16(1.001))
    assert_bits(fnp.nextafter(np.array([1., 0.], ml_dtypes.bfloat16), np.array([2., -1.], ml_dtypes.bfloat16)),
                np.nextafter(np.array([1., 0.], ml_dtypes.bfloat16), np.array([2., -1.], ml_dtypes.bfloat16)))
    got = fnp.nextafter(np.arange(3), 5)    # integers promote to the default float, and broadcast
    assert got.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(got), np.nextafter(np.arange(3, dtype=np.float32), np.float32(5)))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_unstack_is_the_inverse_of_stack(axis):
    x = np.arange(24.0, dtype=np.float32).reshape(2, 3, 4)
    parts = fnp.unstack(x, axis=axis)
    assert isinstance(parts, tuple) and len(parts) == x.shape[axis]
    for got, want in zip(parts, np.moveaxis(x, axis, 0)):
        np.testing.assert_array_equal(np.asarray(got), want)
    np.testing.assert_array_equal(np.asarray(fnp.stack(parts, axis=axis)), x)
    jitted = fgrad.jit(lambda v: fnp.unstack(v, axis=axis))(x)
    np.testing.assert_array_equal(np.asarray(jitted[1]), np.moveaxis(x, axis, 0)[1])
    with pytest.raises(ValueError, match="at least one dimension"):
        fnp.unstack(fnp.float32(1))


def test_take_along_axis_defaults_to_the_last_axis():
    x = np.arange(6).reshape(2, 3)
    idx = np.array([[2, 0, 1], [0, 0, 0]])
    np.testing.assert_array_equal(np.asarray(fnp.take_along_axis(x, idx)), np.take_along_axis(x, idx, -1))
