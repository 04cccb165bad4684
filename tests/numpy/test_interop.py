"""fgrad.numpy's host interop names (fgrad/numpy/_interop.py): printing, einsum_path, save/load,
buffers, and the functions JAX refuses (fromfile, fromiter)."""
import numpy as np
import pytest

from fgrad import numpy as fnp


def test_printing_helpers_follow_numpy_options():
    x = fnp.asarray([1.0, 2.5])
    assert fnp.array_repr(x) == "Array([1. , 2.5], dtype=float32)" and fnp.array_str(x) == "[1.  2.5]"
    with fnp.printoptions(precision=1):
        assert fnp.get_printoptions()["precision"] == 1
        assert fnp.array_str(fnp.asarray([1.26])) == "[1.3]"
    assert fnp.set_printoptions is np.set_printoptions and fnp.ComplexWarning is np.exceptions.ComplexWarning


def test_einsum_path_plans_from_shapes_only():
    shapes = [(2, 3), (3, 400000), (400000, 5)]      # no memory: zero-stride stand-ins
    operands = [fnp.ones(shapes[0]), np.broadcast_to(np.float32(0), shapes[1]), np.broadcast_to(np.float32(0), shapes[2])]
    path, report = fnp.einsum_path("ij,jk,kl->il", *operands)
    want = np.einsum_path("ij,jk,kl->il", *[np.broadcast_to(np.float32(0), s) for s in shapes])
    assert path == want[0] and "Optimized" in report


def test_save_load_and_buffers(tmp_path):
    path = tmp_path / "x.npy"
    fnp.save(path, np.asarray(fnp.arange(4.0)))
    loaded = fnp.load(path)
    assert isinstance(loaded, fnp.ndarray) and np.array_equal(np.asarray(loaded), np.arange(4.0))
    fnp.savez(tmp_path / "y.npz", a=np.ones(2))
    assert np.array_equal(fnp.load(tmp_path / "y.npz")["a"], np.ones(2))
    got = fnp.frombuffer(np.arange(5, dtype=np.int16).tobytes()[2:], dtype=np.uint8, count=4)
    assert np.array_equal(np.asarray(got), np.frombuffer(np.arange(5, dtype=np.int16).tobytes()[2:], np.uint8, 4))
    assert np.array_equal(np.asarray(fnp.fromstring("1 2 3", sep=" ")), np.float32([1, 2, 3]))
    for refused in (fnp.fromfile, fnp.fromiter):
        with pytest.raises(NotImplementedError, match="as in JAX"):
            refused("anything")


def test_iterable():
    assert fnp.iterable(fnp.ones(2)) and fnp.iterable([1]) and not fnp.iterable(fnp.ones(())) and not fnp.iterable(3)
